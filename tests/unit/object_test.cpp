// Tests of versioned objects (dotted version vectors): merge laws and write
// semantics checked on random REACHABLE histories (replicas doing updates and
// merges, clients writing with contexts read earlier), against an oracle that
// shares no code with merge; the limits of update; and the encodings, which
// must round-trip and must reject every malformed or truncated input.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <msgpack.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "client/protocol.h"
#include "client/zone_lease.h"
#include "node/data/object.h"

using kv::ErrorCode;
using kv::node::decode_context;
using kv::node::decode_object;
using kv::node::Dot;
using kv::node::encode_context;
using kv::node::encode_object;
using kv::node::merge;
using kv::node::Object;
using kv::node::Sibling;
using kv::node::update;
using kv::node::VersionVector;

namespace {

constexpr size_t kNoSiblingLimit = size_t{1} << 20;
constexpr size_t kNoByteLimit = size_t{1} << 40;

using Value = std::optional<std::string>;

VersionVector vv(std::initializer_list<std::pair<std::string, uint64_t>> entries) {
    VersionVector v;
    for (const auto& [actor, counter] : entries) v.set(actor, counter);
    return v;
}

// A write that must succeed (no limits in play).
Object write(const Object& local, const VersionVector& seen, const std::string& actor,
             Value value) {
    auto result = update(local, seen, actor, std::move(value), kNoSiblingLimit, kNoByteLimit);
    REQUIRE(result.ok());
    return std::move(result).value();
}

std::string show_bytes(const std::string& s) {
    std::ostringstream out;
    for (unsigned char c : s) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out << c;
        } else {
            out << "\\x" << std::hex << (c >> 4) << (c & 0xf) << std::dec;
        }
    }
    return out.str();
}

std::string show(const VersionVector& v) {
    std::ostringstream out;
    out << "{";
    for (const auto& [actor, counter] : v.entries())
        out << " " << show_bytes(actor) << ":" << counter;
    out << " }";
    return out.str();
}

std::string show(const Object& o) {
    std::ostringstream out;
    out << "ctx=" << show(o.context) << " sibs=[";
    for (const auto& s : o.siblings) {
        out << " " << show_bytes(s.dot.actor) << ":" << s.dot.counter << "="
            << (s.value ? "'" + show_bytes(*s.value) + "'" : std::string("TOMB"));
    }
    out << " ]";
    return out.str();
}

// The header's invariants; empty when the object is well formed.
std::string invariant_violation(const Object& o) {
    for (const auto& [actor, counter] : o.context.entries()) {
        if (actor.empty() || counter == 0) return "context has an empty actor or zero counter";
    }
    for (size_t i = 0; i < o.siblings.size(); ++i) {
        const Dot& dot = o.siblings[i].dot;
        if (dot.actor.empty() || dot.counter == 0) return "sibling has a null dot";
        if (!o.context.covers(dot)) return "sibling dot not covered by the context";
        if (i > 0 && !(o.siblings[i - 1].dot < dot)) return "siblings not sorted/unique";
    }
    return "";
}

bool holds(const Object& o, const Dot& dot) {
    return std::any_of(o.siblings.begin(), o.siblings.end(),
                       [&](const Sibling& s) { return s.dot == dot; });
}

std::string random_bytes(std::mt19937_64& rng, size_t length_max) {
    std::string s(rng() % (length_max + 1), '\0');
    for (auto& c : s) c = static_cast<char>(rng() % 4 == 0 ? 0 : rng() % 256);
    return s;
}

// ---------------------------------------------------------------------------
// A random reachable history. Replicas ("a", "b", "c") take writes from
// clients whose contexts were read at any earlier time from any replica (or
// from a coordinator that merged two replies), and merge each other's current
// or stale (delayed-message) states. Every state is recorded in `history`.

struct WriteRecord {
    Dot dot;
    Value value;
    VersionVector seen;
};

struct World {
    std::mt19937_64 rng;
    std::vector<std::string> actors{"a", "b", "c"};
    std::vector<Object> replicas{3};
    std::vector<Object> history;
    std::vector<WriteRecord> writes;
    std::map<Dot, Value> minted;  // every dot ever minted, with its value

    explicit World(uint64_t seed) : rng(seed) {}

    size_t pick(size_t n) { return static_cast<size_t>(rng() % n); }
    const Object& any_past_state() { return history[pick(history.size())]; }

    Value random_value() {
        if (pick(6) == 0) return std::nullopt;  // a delete
        return random_bytes(rng, 6);
    }

    VersionVector random_seen(size_t replica) {
        if (history.empty()) return {};
        switch (pick(10)) {
            case 0:
            case 1:
                return {};  // blind write
            case 2:
            case 3:
            case 4:
                return replicas[replica].context;  // read then write at the same replica
            case 5:
            case 6:
            case 7:
                return any_past_state().context;  // a stale read from anywhere
            default:
                return merge(any_past_state(), any_past_state()).context;  // coordinator read
        }
    }

    // One client write, checked against update's contract.
    void client_write() {
        const size_t r = pick(replicas.size());
        const VersionVector seen = random_seen(r);
        const Value value = random_value();
        const Object& local = replicas[r];
        const Object out = write(local, seen, actors[r], value);

        INFO("local=" << show(local) << "\nseen=" << show(seen) << "\nout=" << show(out));
        REQUIRE(invariant_violation(out).empty());
        // Exactly one new sibling, at this actor, carrying the value.
        std::vector<Sibling> fresh;
        for (const auto& s : out.siblings) {
            if (!holds(local, s.dot)) fresh.push_back(s);
        }
        REQUIRE(fresh.size() == 1);
        const Sibling& added = fresh.front();
        REQUIRE(added.dot.actor == actors[r]);
        REQUIRE(added.value == value);
        // Never a dot that names another write, and not one the write claims to have seen.
        REQUIRE(minted.count(added.dot) == 0);
        REQUIRE_FALSE(seen.covers(added.dot));
        REQUIRE_FALSE(local.context.covers(added.dot));
        // Supersedes exactly what `seen` covers.
        for (const auto& s : local.siblings) REQUIRE(holds(out, s.dot) == !seen.covers(s.dot));
        // The context is local + seen + the new dot, nothing else.
        VersionVector want = local.context;
        want.merge(seen);
        want.set(added.dot.actor, added.dot.counter);
        REQUIRE(out.context == want);

        minted[added.dot] = value;
        writes.push_back({added.dot, value, seen});
        replicas[r] = out;
        history.push_back(out);
    }

    void replica_merge() {
        const size_t to = pick(replicas.size());
        // A current peer state, or a stale one (a delayed anti-entropy/handoff message).
        const Object from =
            pick(3) == 0 ? any_past_state() : replicas[(to + 1 + pick(2)) % replicas.size()];
        replicas[to] = merge(replicas[to], from);
        history.push_back(replicas[to]);
    }

    void run(size_t steps) {
        for (size_t i = 0; i < steps; ++i) {
            if (history.empty() || pick(5) < 3) {
                client_write();
            } else {
                replica_merge();
            }
        }
    }

    // What every replica must hold once all writes are everywhere, from first
    // principles: a write survives unless a write whose context covered it
    // exists; the context is every minted dot.
    Object expected_final() const {
        Object want;
        for (const auto& w : writes) {
            want.context.set(w.dot.actor, std::max(want.context.get(w.dot.actor), w.dot.counter));
            const bool superseded = std::any_of(
                writes.begin(), writes.end(), [&](const auto& o) { return o.seen.covers(w.dot); });
            if (!superseded) want.siblings.push_back({w.dot, w.value});
        }
        std::sort(want.siblings.begin(), want.siblings.end(),
                  [](const Sibling& x, const Sibling& y) { return x.dot < y.dot; });
        return want;
    }
};

uint64_t base_seed() {
    return 0x6f626a6563740001ULL;
}

}  // namespace

// ---------------------------------------------------------------------------
// Merge laws over reachable objects.

TEST_CASE("merge is commutative, associative, idempotent, has the empty object as identity",
          "[object][merge][property]") {
    size_t laws_checked = 0;
    size_t with_siblings = 0;
    size_t with_tombstones = 0;
    for (uint64_t i = 0; i < 250; ++i) {
        const uint64_t seed = base_seed() + i;
        CAPTURE(seed);
        World world(seed);
        world.run(40);
        std::mt19937_64 pick_rng(seed ^ 0x5eed);
        const auto& h = world.history;
        for (int k = 0; k < 16; ++k) {
            const Object& x = h[pick_rng() % h.size()];
            const Object& y = h[pick_rng() % h.size()];
            const Object& z = h[pick_rng() % h.size()];
            INFO("x=" << show(x) << "\ny=" << show(y) << "\nz=" << show(z));
            const Object xy = merge(x, y);
            REQUIRE(invariant_violation(xy).empty());
            REQUIRE(xy == merge(y, x));
            // The overload that takes its second argument (Replica::merge) is the same union.
            REQUIRE(merge(x, Object(y)) == xy);
            REQUIRE(merge(y, Object(x)) == xy);
            REQUIRE(merge(xy, z) == merge(x, merge(y, z)));
            REQUIRE(merge(x, x) == x);
            REQUIRE(merge(x, Object{}) == x);
            REQUIRE(merge(Object{}, x) == x);
            REQUIRE(xy.context.descends(x.context));
            REQUIRE(xy.context.descends(y.context));
            // The least upper bound: it adds nothing either side lacks.
            VersionVector pointwise_max = x.context;
            pointwise_max.merge(y.context);
            REQUIRE(xy.context == pointwise_max);
            REQUIRE(merge(xy, x) == xy);  // absorption
            // A sibling is lost only when the other side saw it superseded.
            for (const auto& s : x.siblings) {
                REQUIRE(holds(xy, s.dot) == (!y.context.covers(s.dot) || holds(y, s.dot)));
            }
            laws_checked += 1;
            with_siblings += xy.siblings.size() >= 2;
            with_tombstones += xy.live_count() < xy.siblings.size();
        }
    }
    // The generator must produce interesting objects, or the laws prove little.
    CHECK(laws_checked == 250 * 16);
    CHECK(with_siblings > laws_checked / 4);
    CHECK(with_tombstones > laws_checked / 20);
}

TEST_CASE("random replicas exchanging states in random order converge to the oracle",
          "[object][merge][property]") {
    size_t nontrivial = 0;
    for (uint64_t i = 0; i < 300; ++i) {
        const uint64_t seed = base_seed() + 10'000 + i;
        CAPTURE(seed);
        World world(seed);
        world.run(30);
        const Object want = world.expected_final();
        INFO("oracle=" << show(want));

        // Folding every state ever held, in random order, gives the oracle.
        std::vector<Object> states = world.history;
        std::shuffle(states.begin(), states.end(), world.rng);
        Object folded;
        for (const auto& s : states) folded = merge(folded, s);
        REQUIRE(folded == want);

        // Gossip: random one-way pulls until every replica has (transitively)
        // heard from every other; the step bound only guards against a hang.
        std::vector<unsigned> heard_from{1, 2, 4};
        const unsigned everyone = 7;
        for (int step = 0; step < 10'000; ++step) {
            if (std::all_of(heard_from.begin(), heard_from.end(),
                            [&](unsigned h) { return h == everyone; })) {
                break;
            }
            const size_t from = world.rng() % 3;
            const size_t to = world.rng() % 3;
            world.replicas[to] = merge(world.replicas[to], world.replicas[from]);
            heard_from[to] |= heard_from[from];
        }
        for (size_t r = 0; r < 3; ++r) {
            INFO("replica " << r << " = " << show(world.replicas[r]));
            REQUIRE(world.replicas[r] == want);
        }
        nontrivial += want.siblings.size() >= 2;
    }
    CHECK(nontrivial > 30);
}

TEST_CASE("every dot minted in a reachable history names one write", "[object][update][property]") {
    // World::client_write REQUIREs that each new dot is fresh; this only makes
    // sure many writes ran, with contexts that claim other replicas' dots.
    World world(base_seed() + 20'000);
    world.run(2000);
    CHECK(world.minted.size() > 1000);
    const size_t foreign_seen =
        std::count_if(world.writes.begin(), world.writes.end(), [](const WriteRecord& w) {
            return std::any_of(w.seen.entries().begin(), w.seen.entries().end(),
                               [&](const auto& e) { return e.first != w.dot.actor; });
        });
    CHECK(foreign_seen > 500);
}

// ---------------------------------------------------------------------------
// Write semantics, scenario by scenario.

TEST_CASE("a write with a context supersedes exactly the siblings it saw", "[object][update]") {
    Object a;
    a = write(a, {}, "a", "v1");
    const VersionVector read_ctx = a.context;      // the client saw only v1
    a = write(a, {}, "a", "v2");                   // a concurrent blind write
    a = merge(a, write(Object{}, {}, "b", "v3"));  // and one from another replica
    REQUIRE(a.live_values() == std::vector<std::string>{"v1", "v2", "v3"});

    const Object out = write(a, read_ctx, "a", "v4");
    CHECK(out.live_values() == std::vector<std::string>{"v2", "v4", "v3"});  // dot order
    CHECK_FALSE(holds(out, Dot{"a", 1}));
    CHECK(holds(out, Dot{"a", 2}));
    CHECK(holds(out, Dot{"b", 1}));
    CHECK(holds(out, Dot{"a", 3}));
    CHECK(out.context == vv({{"a", 3}, {"b", 1}}));
}

TEST_CASE("blind writes become siblings", "[object][update]") {
    Object o;
    for (int i = 0; i < 5; ++i) o = write(o, {}, "a", "v" + std::to_string(i));
    CHECK(o.live_count() == 5);
    CHECK(o.context == vv({{"a", 5}}));
    // A read of all five then one write collapses them.
    o = write(o, o.context, "a", "final");
    CHECK(o.live_values() == std::vector<std::string>{"final"});
    CHECK(o.siblings.front().dot == Dot{"a", 6});
}

TEST_CASE("merges keep every concurrent sibling once, sorted by dot, at every count",
          "[object][merge]") {
    // Past 32 siblings the sort is std::stable_sort, below it an insertion
    // sort: both sides of that line, with dots both sides share (kept once)
    // and dots that interleave between the sides.
    std::mt19937_64 rng(7);
    for (size_t count : {2, 3, 5, 17, 31, 32, 33, 40, 70}) {
        std::vector<std::string> actors;
        for (size_t i = 0; i < 2 * count; ++i) actors.push_back("actor-" + std::to_string(i));
        std::shuffle(actors.begin(), actors.end(), rng);
        Object a;
        Object b;
        std::set<Dot> expected;
        for (size_t i = 0; i < count; ++i) {
            a = write(a, {}, actors[i], "a" + std::to_string(i));
            expected.insert(Dot{actors[i], 1});
        }
        b = a;  // b shares a's first writes...
        b.siblings.resize(count / 2);
        b.context = VersionVector{};
        for (const auto& sibling : b.siblings) b.context.add(sibling.dot);
        for (size_t i = count; i < 2 * count; ++i) {  // ...then has its own
            b = write(b, {}, actors[i], "b" + std::to_string(i));
            expected.insert(Dot{actors[i], 1});
        }
        for (const Object& merged : {merge(a, b), merge(b, a), merge(a, Object(b))}) {
            std::vector<Dot> dots;
            for (const auto& sibling : merged.siblings) dots.push_back(sibling.dot);
            CHECK(dots == std::vector<Dot>(expected.begin(), expected.end()));
            CHECK(merged.live_count() == 2 * count);
        }
    }
}

TEST_CASE(
    "concurrent writes at two replicas give two siblings; a write with the merged context "
    "leaves one value everywhere",
    "[object][update][merge]") {
    // All three replicas start from the same value.
    const Object base = write(Object{}, {}, "a", "v0");
    std::vector<Object> replicas{base, base, base};
    const VersionVector ctx0 = base.context;
    replicas[0] = write(replicas[0], ctx0, "a", "from-a");
    replicas[1] = write(replicas[1], ctx0, "b", "from-b");
    replicas[0] = merge(replicas[0], replicas[1]);
    replicas[1] = merge(replicas[1], replicas[0]);
    replicas[2] = merge(replicas[2], replicas[1]);
    for (const auto& r : replicas) {
        CHECK(r.live_values() == std::vector<std::string>{"from-a", "from-b"});
    }
    // A client reads the merged siblings at c and resolves them there.
    const VersionVector merged_ctx = replicas[2].context;
    replicas[2] = write(replicas[2], merged_ctx, "c", "resolved");
    // Merge back in different orders.
    replicas[0] = merge(replicas[0], replicas[2]);
    replicas[1] = merge(replicas[2], replicas[1]);
    for (const auto& r : replicas) {
        INFO(show(r));
        CHECK(r.live_values() == std::vector<std::string>{"resolved"});
        CHECK(r.siblings.size() == 1);
        CHECK(r == replicas[2]);
    }
}

TEST_CASE("a write with a context from another replica drops what it saw there",
          "[object][update][merge]") {
    // b holds a value a never received; the client read it at b, writes at a.
    const Object b = write(Object{}, {}, "b", "at-b");
    Object a = write(Object{}, {}, "a", "at-a");
    a = write(a, b.context, "a", "new");  // saw b's value, not a's own one
    CHECK(a.live_values() == std::vector<std::string>{"at-a", "new"});
    const Object joined = merge(a, b);
    CHECK(joined == merge(b, a));
    CHECK(joined.live_values() == std::vector<std::string>{"at-a", "new"});
}

TEST_CASE("tombstones: a delete with context leaves no live value; a concurrent put survives it",
          "[object][update][tombstone]") {
    Object a = write(Object{}, {}, "a", "v1");
    Object b = merge(Object{}, a);

    SECTION("delete with context") {
        const Object deleted = write(a, a.context, "a", std::nullopt);
        CHECK(deleted.live_count() == 0);
        CHECK(deleted.live_values().empty());
        REQUIRE(deleted.siblings.size() == 1);
        CHECK_FALSE(deleted.siblings.front().value.has_value());
        CHECK_FALSE(deleted.empty());  // the tombstone keeps the key's history
        // Replicas holding only the old value learn of the delete.
        const Object at_b = merge(b, deleted);
        CHECK(at_b.live_count() == 0);
        CHECK(at_b == deleted);
    }
    SECTION("concurrent put and delete") {
        const VersionVector ctx = a.context;
        a = write(a, ctx, "a", std::nullopt);  // delete at a
        b = write(b, ctx, "b", "put");         // concurrent put at b
        const Object ab = merge(a, b);
        CHECK(ab == merge(b, a));
        CHECK(ab.live_values() == std::vector<std::string>{"put"});
        CHECK(ab.siblings.size() == 2);  // the tombstone is a sibling too
        // Reading and deleting again with the merged context removes the put.
        const Object gone = write(ab, ab.context, "a", std::nullopt);
        CHECK(gone.live_count() == 0);
        CHECK(merge(gone, b).live_count() == 0);
    }
    SECTION("blind delete does not remove a value it did not see") {
        const Object blind = write(a, {}, "a", std::nullopt);
        CHECK(blind.live_values() == std::vector<std::string>{"v1"});
    }
}

TEST_CASE("the counter minted by update is unique per actor", "[object][update]") {
    Object a = write(Object{}, {}, "a", "v1");
    a = write(a, {}, "a", "v2");
    REQUIRE(a.context.get("a") == 2);

    SECTION("seen claims a higher counter for the writing actor") {
        const VersionVector inflated = vv({{"a", 7}, {"b", 3}});
        const Object out = write(a, inflated, "a", "v3");
        REQUIRE(out.siblings.size() == 1);
        CHECK(out.siblings.front().dot == Dot{"a", 8});
        CHECK(out.context == vv({{"a", 8}, {"b", 3}}));
        // And the next write continues past it.
        CHECK(write(out, {}, "a", "v4").context.get("a") == 9);
    }
    SECTION("a replica that lost its copy is not fooled into reusing a dot") {
        // The client still holds the context of the lost copy.
        const Object out = write(Object{}, a.context, "a", "again");
        CHECK(out.siblings.front().dot == Dot{"a", 3});
    }
    SECTION("a stale seen does not rewind the counter") {
        const Object out = write(a, vv({{"a", 1}}), "a", "v3");
        CHECK(out.siblings.back().dot == Dot{"a", 3});
        CHECK(out.live_values() == std::vector<std::string>{"v2", "v3"});
    }
    SECTION("other actors' counters do not affect this actor's") {
        const Object out = write(a, vv({{"b", 50}}), "c", "v3");
        CHECK(holds(out, Dot{"c", 1}));
    }
}

// ---------------------------------------------------------------------------
// Limits.

TEST_CASE("sibling_limit: exactly at the limit is accepted, one past fails, nothing partial",
          "[object][update][limits]") {
    Object o;
    for (int i = 0; i < 4; ++i) o = write(o, {}, "a", "v" + std::to_string(i));
    const Object before = o;

    // 4 siblings + 1 blind write = 5.
    auto at_limit = update(o, {}, "a", "x", 5, kNoByteLimit);
    REQUIRE(at_limit.ok());
    CHECK(at_limit->siblings.size() == 5);

    auto over = update(o, {}, "a", "x", 4, kNoByteLimit);
    REQUIRE_FALSE(over.ok());
    CHECK(over.status().code() == ErrorCode::sibling_limit);
    CHECK_FALSE(over.status().message().empty());
    CHECK(o == before);

    // Tombstones count as siblings.
    auto tomb = update(o, {}, "a", std::nullopt, 4, kNoByteLimit);
    CHECK(tomb.status().code() == ErrorCode::sibling_limit);

    // A write that resolves some siblings fits again: it saw v0 and v1.
    auto resolving = update(o, vv({{"a", 2}}), "a", "x", 3, kNoByteLimit);
    REQUIRE(resolving.ok());
    CHECK(resolving->live_values() == std::vector<std::string>{"v2", "v3", "x"});
    CHECK(update(o, vv({{"a", 2}}), "a", "x", 2, kNoByteLimit).status().code() ==
          ErrorCode::sibling_limit);

    // A limit of one still allows a write that resolves everything.
    CHECK(update(o, o.context, "a", "x", 1, kNoByteLimit).ok());
}

TEST_CASE("object_too_large: exactly at the limit is accepted, one byte less fails",
          "[object][update][limits]") {
    Object o = write(Object{}, {}, "a", std::string(1000, 'x'));
    o = merge(o, write(Object{}, {}, "b", std::string(500, '\0')));
    const Object before = o;
    const std::string value(2000, 'y');
    const Object unlimited = write(o, {}, "c", value);
    const size_t bytes = unlimited.encoded_size_bound();
    // The bound must really bound the encoding, or the limit is not one.
    REQUIRE(encode_object(unlimited).size() <= bytes);
    REQUIRE(bytes > 3500);

    auto at_limit = update(o, {}, "c", value, kNoSiblingLimit, bytes);
    REQUIRE(at_limit.ok());
    CHECK(at_limit.value() == unlimited);

    auto over = update(o, {}, "c", value, kNoSiblingLimit, bytes - 1);
    REQUIRE_FALSE(over.ok());
    CHECK(over.status().code() == ErrorCode::object_too_large);
    CHECK(o == before);

    // Superseding the big siblings makes room again.
    auto resolving = update(o, o.context, "c", value, kNoSiblingLimit, bytes - 1);
    REQUIRE(resolving.ok());
    CHECK(resolving->live_values() == std::vector<std::string>{value});
}

TEST_CASE("encoded_size_bound bounds the encoding with the widest msgpack headers",
          "[object][limits]") {
    // str16 actors, 9-byte counters, bin32 and bin16 values, an array16 of siblings.
    Object o;
    for (uint64_t i = 0; i < 20; ++i) {
        const std::string actor(kv::proto::kIdBytesMax - i, static_cast<char>('a' + i));
        Value value = std::string(i % 2 == 0 ? 70'000 : 300, 'v');
        if (i % 5 == 0) value = std::nullopt;
        // Counters above 2^32 take msgpack's widest (9-byte) integer form.
        o = merge(o, write(Object{}, vv({{actor, kv::node::kCounterMax - 1 - i}}), actor, value));
    }
    REQUIRE(o.siblings.size() == 20);
    INFO("encoded=" << encode_object(o).size() << " bound=" << o.encoded_size_bound());
    CHECK(encode_object(o).size() <= o.encoded_size_bound());
}

TEST_CASE("encoded_size_bound bounds the real encoding of reachable objects",
          "[object][limits][property]") {
    for (uint64_t i = 0; i < 50; ++i) {
        const uint64_t seed = base_seed() + 30'000 + i;
        CAPTURE(seed);
        World world(seed);
        world.run(40);
        for (const auto& o : world.history) {
            INFO(show(o));
            REQUIRE(encode_object(o).size() <= o.encoded_size_bound());
        }
    }
}

// ---------------------------------------------------------------------------
// Encodings.

namespace {

// A sibling or context entry written exactly as given (any order, any counter),
// in the same layout as encode_object, to build malformed inputs.
struct RawSibling {
    std::string actor;
    uint64_t counter;
    Value value;
};
using RawContext = std::vector<std::pair<std::string, uint64_t>>;

void pack_str(msgpack::packer<msgpack::sbuffer>& pk, const std::string& s) {
    pk.pack_str(static_cast<uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void pack_raw_context(msgpack::packer<msgpack::sbuffer>& pk, const RawContext& context) {
    pk.pack_array(static_cast<uint32_t>(context.size()));
    for (const auto& [actor, counter] : context) {
        pk.pack_array(2);
        pack_str(pk, actor);
        pk.pack_uint64(counter);
    }
}

std::string raw_context(const RawContext& context) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pack_raw_context(pk, context);
    return std::string(buf.data(), buf.size());
}

std::string raw_object(const RawContext& context, const std::vector<RawSibling>& siblings) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_array(2);
    pack_raw_context(pk, context);
    pk.pack_array(static_cast<uint32_t>(siblings.size()));
    for (const auto& s : siblings) {
        pk.pack_array(3);
        pack_str(pk, s.actor);
        pk.pack_uint64(s.counter);
        if (s.value) {
            pk.pack_bin(static_cast<uint32_t>(s.value->size()));
            pk.pack_bin_body(s.value->data(), static_cast<uint32_t>(s.value->size()));
        } else {
            pk.pack_nil();
        }
    }
    return std::string(buf.data(), buf.size());
}

template <typename... Items>
std::string packed(const Items&... items) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    (pk.pack(items), ...);
    return std::string(buf.data(), buf.size());
}

// An object with many actors, NUL bytes in actors and values, and tombstones.
Object rich_object() {
    Object o;
    for (int i = 0; i < 40; ++i) {
        std::string actor = "node-" + std::to_string(i);
        if (i % 7 == 0) actor += std::string("\0x", 2);
        Value value = std::string("v\0al", 4) + std::to_string(i);
        if (i % 5 == 0) value = std::nullopt;
        if (i % 3 == 0) value = std::string();  // an empty value is not a tombstone
        o = merge(o, write(Object{}, {}, actor, value));
    }
    return write(o, vv({{"node-1", 1}}), "node-2", std::string(3, '\0'));
}

void require_bad_object(const std::string& bytes) {
    INFO("bytes=" << show_bytes(bytes));
    const auto decoded = decode_object(bytes);
    REQUIRE_FALSE(decoded.ok());
    CHECK(decoded.status().code() == ErrorCode::bad_request);
}

void require_bad_context(const std::string& bytes) {
    INFO("bytes=" << show_bytes(bytes));
    const auto decoded = decode_context(bytes);
    REQUIRE_FALSE(decoded.ok());
    CHECK(decoded.status().code() == ErrorCode::bad_context);
}

}  // namespace

TEST_CASE("the raw builder matches encode_object, so the rejection tests test the decoder",
          "[object][encoding]") {
    const Object o = write(write(Object{}, {}, "a", "x"), {}, "b", std::nullopt);
    CHECK(raw_object({{"a", 1}, {"b", 1}}, {{"a", 1, "x"}, {"b", 1, std::nullopt}}) ==
          encode_object(o));
    CHECK(raw_context({{"a", 1}, {"b", 1}}) == encode_context(o.context));
}

TEST_CASE("objects and contexts round-trip through their encodings", "[object][encoding]") {
    SECTION("the empty object and context") {
        auto o = decode_object(encode_object(Object{}));
        REQUIRE(o.ok());
        CHECK(o->empty());
        auto c = decode_context(encode_context(VersionVector{}));
        REQUIRE(c.ok());
        CHECK(c->empty());
    }
    SECTION("NUL bytes, empty values, tombstones, many actors") {
        const Object o = rich_object();
        REQUIRE(o.context.entries().size() == 40);
        REQUIRE(o.live_count() < o.siblings.size());
        auto decoded = decode_object(encode_object(o));
        REQUIRE(decoded.ok());
        CHECK(decoded.value() == o);
        auto ctx = decode_context(encode_context(o.context));
        REQUIRE(ctx.ok());
        CHECK(ctx.value() == o.context);
    }
    SECTION("large counters and the longest actor id") {
        const std::string actor(kv::proto::kIdBytesMax, 'n');
        const Object o = write(Object{}, vv({{actor, kv::node::kCounterMax - 1}}), actor, "v");
        REQUIRE(o.siblings.front().dot.counter == kv::node::kCounterMax);
        auto decoded = decode_object(encode_object(o));
        REQUIRE(decoded.ok());
        CHECK(decoded.value() == o);
    }
    SECTION("as many siblings as an array may hold") {
        Object o;
        for (size_t i = 0; i < kv::proto::kArrayItemsMax; ++i) o = write(o, {}, "a", "v");
        auto decoded = decode_object(encode_object(o));
        REQUIRE(decoded.ok());
        CHECK(decoded.value() == o);
    }
    SECTION("every reachable object") {
        for (uint64_t i = 0; i < 50; ++i) {
            const uint64_t seed = base_seed() + 40'000 + i;
            CAPTURE(seed);
            World world(seed);
            world.run(30);
            for (const auto& o : world.history) {
                auto decoded = decode_object(encode_object(o));
                REQUIRE(decoded.ok());
                REQUIRE(decoded.value() == o);
                auto ctx = decode_context(encode_context(o.context));
                REQUIRE(ctx.ok());
                REQUIRE(ctx.value() == o.context);
            }
        }
    }
}

TEST_CASE("decoders reject every truncation and trailing bytes", "[object][encoding]") {
    const Object o = rich_object();
    const std::string bytes = encode_object(o);
    for (size_t n = 0; n < bytes.size(); ++n) {
        CAPTURE(n);
        require_bad_object(bytes.substr(0, n));
    }
    require_bad_object(bytes + '\0');
    require_bad_object(bytes + bytes);

    const std::string ctx = encode_context(o.context);
    for (size_t n = 0; n < ctx.size(); ++n) {
        CAPTURE(n);
        require_bad_context(ctx.substr(0, n));
    }
    require_bad_context(ctx + '\xc0');
}

TEST_CASE("decode_object rejects objects that break the invariants", "[object][encoding]") {
    // Each malformed case next to the well-formed one it differs from.
    REQUIRE(decode_object(raw_object({{"a", 2}, {"b", 1}}, {{"a", 2, "x"}, {"b", 1, "y"}})).ok());

    SECTION("unsorted or duplicate actors in the context") {
        require_bad_object(raw_object({{"b", 1}, {"a", 2}}, {{"a", 2, "x"}, {"b", 1, "y"}}));
        require_bad_object(raw_object({{"a", 2}, {"a", 2}}, {{"a", 2, "x"}}));
        require_bad_object(raw_object({{"a", 1}, {"a", 2}}, {{"a", 2, "x"}}));
    }
    SECTION("zero counters") {
        require_bad_object(raw_object({{"a", 2}, {"b", 0}}, {{"a", 2, "x"}}));
        require_bad_object(raw_object({{"a", 2}}, {{"a", 0, "x"}}));
        // A zero dot of an actor absent from the context is covered by any
        // context, so only an explicit check catches it.
        require_bad_object(raw_object({{"a", 2}}, {{"a", 2, "x"}, {"z", 0, "y"}}));
        require_bad_object(raw_object({}, {{"z", 0, "y"}}));
    }
    SECTION("empty actors") {
        require_bad_object(raw_object({{"", 1}}, {}));
        require_bad_object(raw_object({{"a", 2}}, {{"", 1, "x"}}));
    }
    SECTION("a sibling whose dot the context does not cover") {
        require_bad_object(raw_object({{"a", 2}}, {{"a", 3, "x"}}));
        require_bad_object(raw_object({{"a", 2}}, {{"a", 2, "x"}, {"b", 1, "y"}}));
        require_bad_object(raw_object({}, {{"a", 1, std::nullopt}}));
    }
    SECTION("unsorted or duplicate siblings") {
        require_bad_object(raw_object({{"a", 2}, {"b", 1}}, {{"b", 1, "y"}, {"a", 2, "x"}}));
        require_bad_object(raw_object({{"a", 2}}, {{"a", 2, "x"}, {"a", 1, "y"}}));
        require_bad_object(raw_object({{"a", 2}}, {{"a", 2, "x"}, {"a", 2, "x"}}));
        require_bad_object(raw_object({{"a", 2}}, {{"a", 2, "x"}, {"a", 2, std::nullopt}}));
    }
}

TEST_CASE("decode_object rejects wrong types", "[object][encoding]") {
    using Entry = std::tuple<std::string, uint64_t>;
    using Sib = std::tuple<std::string, uint64_t, msgpack::type::nil_t>;
    // Positive control: the tuple form of a well-formed object decodes.
    REQUIRE(decode_object(packed(std::make_tuple(std::vector<Entry>{{"a", 1}},
                                                 std::vector<Sib>{{"a", 1, {}}})))
                .ok());

    require_bad_object(packed(std::map<std::string, int>{{"a", 1}}));  // a map root
    require_bad_object(packed(std::string("object")));
    require_bad_object(packed(42));
    require_bad_object(packed(msgpack::type::nil_t{}));
    require_bad_object(packed(std::vector<int>{}));                     // root of 0 items
    require_bad_object(packed(std::make_tuple(std::vector<Entry>{})));  // root of 1 item
    require_bad_object(packed(std::make_tuple(std::vector<Entry>{}, std::vector<Sib>{}, 1)));
    // A context that is not an array of [str, uint] pairs.
    require_bad_object(
        packed(std::make_tuple(std::map<std::string, int>{{"a", 1}}, std::vector<Sib>{})));
    require_bad_object(packed(std::make_tuple(
        std::vector<std::tuple<std::string, int64_t>>{{"a", -1}}, std::vector<Sib>{})));
    require_bad_object(packed(std::make_tuple(
        std::vector<std::tuple<std::string, std::string>>{{"a", "1"}}, std::vector<Sib>{})));
    require_bad_object(
        packed(std::make_tuple(std::vector<std::tuple<int, int>>{{1, 1}}, std::vector<Sib>{})));
    require_bad_object(packed(std::make_tuple(
        std::vector<std::tuple<std::string, uint64_t, int>>{{"a", 1, 0}}, std::vector<Sib>{})));
    require_bad_object(packed(std::make_tuple(
        std::vector<std::tuple<std::string, double>>{{"a", 1.5}}, std::vector<Sib>{})));
    // Siblings of the wrong shape.
    const std::vector<Entry> ctx{{"a", 1}};
    require_bad_object(packed(std::make_tuple(ctx, 7)));
    require_bad_object(packed(std::make_tuple(ctx, std::vector<Entry>{{"a", 1}})));
    require_bad_object(packed(std::make_tuple(
        ctx,
        std::vector<std::tuple<std::string, uint64_t, std::string>>{{"a", 1, "str, not bin"}})));
    require_bad_object(packed(
        std::make_tuple(ctx, std::vector<std::tuple<std::string, uint64_t, int>>{{"a", 1, 0}})));
    require_bad_object(packed(std::make_tuple(
        ctx, std::vector<std::tuple<std::string, int64_t, msgpack::type::nil_t>>{{"a", -1, {}}})));
    require_bad_object(packed(std::make_tuple(
        ctx, std::vector<std::tuple<std::string, uint64_t, msgpack::type::nil_t, int>>{
                 {"a", 1, {}, 0}})));
    require_bad_object(packed(std::make_tuple(
        ctx, std::vector<std::tuple<int, uint64_t, msgpack::type::nil_t>>{{1, 1, {}}})));
}

TEST_CASE("decode_context rejects what is not a context with bad_context", "[object][encoding]") {
    REQUIRE(decode_context(raw_context({{"a", 1}, {"b", 2}})).ok());
    require_bad_context(raw_context({{"b", 2}, {"a", 1}}));
    require_bad_context(raw_context({{"a", 1}, {"a", 1}}));
    require_bad_context(raw_context({{"a", 1}, {"b", 0}}));
    require_bad_context(raw_context({{"", 1}}));
    require_bad_context(encode_object(rich_object()));  // an object is not a context
    require_bad_context(encode_object(Object{}));
    require_bad_context(packed(std::map<std::string, int>{{"a", 1}}));
    require_bad_context(packed(std::string("context")));
    require_bad_context("");
    require_bad_context("\xff\xff\xff");
    require_bad_context(std::string(kv::proto::kContextBytesMax + 1, '\x90'));
}

TEST_CASE("counters past kCounterMax are refused, and update never mints past it",
          "[object][encoding][update]") {
    using kv::node::kCounterMax;
    REQUIRE(decode_context(raw_context({{"a", kCounterMax}})).ok());
    require_bad_context(raw_context({{"a", kCounterMax + 1}}));
    require_bad_context(raw_context({{"a", UINT64_MAX}}));
    REQUIRE(decode_object(raw_object({{"a", kCounterMax}}, {{"a", kCounterMax, "x"}})).ok());
    require_bad_object(raw_object({{"a", kCounterMax + 1}}, {{"a", kCounterMax + 1, "x"}}));
    require_bad_object(raw_object({{"a", UINT64_MAX}}, {{"a", 1, "x"}}));

    // A forged context at the limit for the writing replica: refused, not wrapped to 0.
    auto at_limit = update(Object{}, vv({{"a", kCounterMax}}), "a", std::string("v"),
                           kNoSiblingLimit, kNoByteLimit);
    REQUIRE_FALSE(at_limit.ok());
    CHECK(at_limit.status().code() == ErrorCode::bad_context);
    // One below: the new dot is exactly the limit, and it decodes again.
    const Object last = write(Object{}, vv({{"a", kCounterMax - 1}}), "a", "v");
    CHECK(last.siblings.front().dot == Dot{"a", kCounterMax});
    auto again = decode_object(encode_object(last));
    REQUIRE(again.ok());
    CHECK(again.value() == last);
    // Another actor's counter at the limit does not stop this replica from writing.
    const Object other = write(Object{}, vv({{"b", kCounterMax}}), "a", "v");
    CHECK(other.siblings.front().dot == Dot{"a", 1});
    CHECK(decode_object(encode_object(other)).ok());
}

TEST_CASE("decode_object refuses oversized input before parsing", "[object][encoding]") {
    const auto decoded = decode_object(std::string(kv::proto::kObjectBytesMax + 1, '\x90'));
    REQUIRE_FALSE(decoded.ok());
    CHECK(decoded.status().code() == ErrorCode::object_too_large);
}

namespace {

// The decoder decode_object and decode_context replaced (they now read the
// bytes in place): msgpack::unpack into an object tree with the limits it
// had, then the same checks. What the two accept, and what they decode it to,
// must agree on every input below.
namespace reference {

bool read_vv(const msgpack::object& o, VersionVector& vv) {
    if (o.type != msgpack::type::ARRAY || o.via.array.size > kv::node::kDecodeActorsMax) {
        return false;
    }
    std::string prev;
    size_t unseen_total = 0;
    for (uint32_t i = 0; i < o.via.array.size; ++i) {
        const auto& e = o.via.array.ptr[i];
        if (e.type != msgpack::type::ARRAY || (e.via.array.size != 2 && e.via.array.size != 3))
            return false;
        const auto& a = e.via.array.ptr[0];
        if (a.type != msgpack::type::STR || a.via.str.size == 0) return false;
        std::string actor(a.via.str.ptr, a.via.str.size);
        if (e.via.array.ptr[1].type != msgpack::type::POSITIVE_INTEGER) return false;
        const uint64_t counter = e.via.array.ptr[1].via.u64;
        if (counter == 0 || counter > kv::node::kCounterMax) return false;
        if (i > 0 && actor <= prev) return false;
        vv.set(actor, counter);
        if (e.via.array.size == 3) {
            const auto& unseen = e.via.array.ptr[2];
            if (unseen.type != msgpack::type::ARRAY || unseen.via.array.size == 0) return false;
            unseen_total += unseen.via.array.size;
            if (unseen_total > kv::node::kDecodeExceptionsMax) return false;
            uint64_t last = 0;
            for (uint32_t j = 0; j < unseen.via.array.size; ++j) {
                const auto& c = unseen.via.array.ptr[j];
                if (c.type != msgpack::type::POSITIVE_INTEGER) return false;
                if (c.via.u64 <= last || c.via.u64 >= counter) return false;
                last = c.via.u64;
                vv.remove(Dot{actor, last});
            }
        }
        prev = std::move(actor);
    }
    return true;
}

// The whole input as one msgpack object, or nullopt (malformed, trailing
// bytes, beyond the old limits).
std::optional<msgpack::object> unpack(msgpack::zone& zone, const std::string& bytes) {
    const msgpack::unpack_limit limits(/*array=*/kv::node::kDecodeSiblingsMax, /*map=*/0,
                                       /*str=*/kv::proto::kIdBytesMax,
                                       /*bin=*/kv::proto::kValueBytesMax, /*ext=*/0, /*depth=*/4);
    try {
        std::size_t offset = 0;
        msgpack::object root =
            msgpack::unpack(zone, bytes.data(), bytes.size(), offset, nullptr, nullptr, limits);
        if (offset != bytes.size()) return std::nullopt;
        return root;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::optional<Object> decode_object(const std::string& bytes) {
    msgpack::zone zone;
    const auto root = unpack(zone, bytes);
    if (!root || root->type != msgpack::type::ARRAY || root->via.array.size != 2) {
        return std::nullopt;
    }
    Object out;
    if (!read_vv(root->via.array.ptr[0], out.context)) return std::nullopt;
    const auto& sibs = root->via.array.ptr[1];
    if (sibs.type != msgpack::type::ARRAY) return std::nullopt;
    for (uint32_t i = 0; i < sibs.via.array.size; ++i) {
        const auto& e = sibs.via.array.ptr[i];
        if (e.type != msgpack::type::ARRAY || e.via.array.size != 3) return std::nullopt;
        const auto& a = e.via.array.ptr[0];
        if (a.type != msgpack::type::STR || a.via.str.size == 0) return std::nullopt;
        Sibling s;
        s.dot.actor.assign(a.via.str.ptr, a.via.str.size);
        if (e.via.array.ptr[1].type != msgpack::type::POSITIVE_INTEGER) return std::nullopt;
        s.dot.counter = e.via.array.ptr[1].via.u64;
        const auto& v = e.via.array.ptr[2];
        if (v.type == msgpack::type::BIN) {
            s.value.emplace(v.via.bin.ptr, v.via.bin.size);
        } else if (v.type != msgpack::type::NIL) {
            return std::nullopt;
        }
        if (s.dot.counter == 0 || !out.context.covers(s.dot)) return std::nullopt;
        if (!out.siblings.empty() && !(out.siblings.back().dot < s.dot)) return std::nullopt;
        out.siblings.push_back(std::move(s));
    }
    return out;
}

std::optional<VersionVector> decode_context(const std::string& bytes) {
    msgpack::zone zone;
    const auto root = unpack(zone, bytes);
    VersionVector vv;
    if (!root || !read_vv(*root, vv)) return std::nullopt;
    return vv;
}

}  // namespace reference

// Checks that the decoders agree with the reference on `bytes`.
// read_view_of_encoded gives what read_view of the decoded object gives, and
// fails where decode_object fails, with its code; for an encoding that
// encode_object would make, its context is the very bytes encode_context makes.
void require_view_as_decoded(const std::string& bytes) {
    INFO("bytes=" << show_bytes(bytes));
    const auto object = decode_object(bytes);
    for (size_t values_max : {size_t{1}, size_t{2}, size_t{1000}}) {
        CAPTURE(values_max);
        const auto view = kv::node::read_view_of_encoded(bytes, values_max);
        REQUIRE(view.ok() == object.ok());
        if (!object.ok()) {
            REQUIRE(view.status().code() == object.status().code());
            continue;
        }
        const kv::node::ReadView expected = kv::node::read_view(object.value(), values_max);
        REQUIRE(view.value().values == expected.values);
        REQUIRE(view.value().live == expected.live);
        REQUIRE(view.value().held_back == expected.held_back);
        REQUIRE(view.value().context.empty() == expected.context.empty());
        if (!expected.context.empty()) {
            const auto got = decode_context(view.value().context);
            REQUIRE(got.ok());
            REQUIRE(got.value() == decode_context(expected.context).value());
        }
        if (encode_object(object.value()) == bytes)
            REQUIRE(view.value().context == expected.context);
    }
}

// merge_of_encoded with nothing stored: the union is the incoming object, so
// it is named as the answer exactly when `bytes` are what encode_object makes
// of it (read_encoded's shortest-form check against the encoder itself), and
// its context has no unseen counters; an empty object leaves nothing to write.
void require_shortcut_as_decoded(const std::string& bytes) {
    using Shortcut = kv::node::EncodedMerge::Result;
    const auto object = decode_object(bytes);
    const auto got = kv::node::merge_of_encoded(std::nullopt, bytes);
    if (!object.ok()) {
        REQUIRE(got.result == Shortcut::unknown);
        return;
    }
    const bool is_encoders = encode_object(object.value()) == bytes;
    const bool unseen = object.value().context.exception_count() > 0;
    if (object.value().empty() && !unseen) {
        REQUIRE(got.result == Shortcut::stored);
    } else if (is_encoders && !unseen) {
        REQUIRE(got.result == Shortcut::incoming);
        REQUIRE(got.incoming_tombstones_only ==
                (!object.value().siblings.empty() && object.value().live_count() == 0));
    } else {
        REQUIRE(got.result == Shortcut::unknown);
    }
}

void require_as_reference(const std::string& bytes) {
    INFO("bytes=" << show_bytes(bytes));
    const auto object = decode_object(bytes);
    const auto object_ref = reference::decode_object(bytes);
    REQUIRE(object.ok() == object_ref.has_value());
    if (object_ref) REQUIRE(object.value() == *object_ref);
    const auto context = decode_context(bytes);
    const auto context_ref = reference::decode_context(bytes);
    REQUIRE(context.ok() == context_ref.has_value());
    if (context_ref) REQUIRE(context.value() == *context_ref);
    require_view_as_decoded(bytes);
    require_shortcut_as_decoded(bytes);
}

// `object` packed with a randomly chosen msgpack format for every item,
// not only the shortest one encode_object uses (uint64 for a small counter,
// str16 for a short actor, a signed format for a counter, ...), which every
// msgpack writer may produce and both decoders read alike. With `widen`,
// every item is in its shortest form but the widen-th (from 0), which is in a
// wider one (none past the last item: then the bytes are encode_object's).
std::string packed_in_any_width(const Object& object, std::mt19937_64& rng,
                                std::optional<size_t> widen = std::nullopt) {
    std::string out;
    auto put = [&](uint64_t v, size_t width) {
        for (size_t i = width; i-- > 0;) out.push_back(static_cast<char>(v >> (8 * i)));
    };
    auto array_any = [&](uint32_t n) {
        switch (rng() % 3) {
            case 0:
                if (n < 16) {
                    out.push_back(static_cast<char>(0x90 | n));
                    return;
                }
                [[fallthrough]];
            case 1:
                if (n < 65536) {
                    out.push_back('\xdc');
                    put(n, 2);
                    return;
                }
                [[fallthrough]];
            default:
                out.push_back('\xdd');
                put(n, 4);
        }
    };
    auto uint_any = [&](uint64_t v) {
        const int choice = static_cast<int>(rng() % 9);
        if (choice == 0 && v < 128) {
            out.push_back(static_cast<char>(v));
            return;
        }
        // uint8..uint64 (0xcc..0xcf), or int8..int64 (0xd0..0xd3) holding v.
        for (int w = choice % 4; w < 4; ++w) {
            const size_t width = size_t{1} << w;
            const bool is_signed = choice >= 5;
            const int bits = static_cast<int>(8 * width) - (is_signed ? 1 : 0);
            if (bits >= 64 || v < (uint64_t{1} << bits)) {
                out.push_back(static_cast<char>((is_signed ? 0xd0 : 0xcc) + w));
                put(v, width);
                return;
            }
        }
        out.push_back('\xcf');
        put(v, 8);
    };
    auto bytes_any = [&](std::string_view b, bool bin) {
        const uint32_t n = static_cast<uint32_t>(b.size());
        const int choice = static_cast<int>(rng() % 4);
        if (!bin && choice == 0 && n < 32) {
            out.push_back(static_cast<char>(0xa0 | n));
        } else if (choice <= 1 && n < 256) {
            out.push_back(bin ? '\xc4' : '\xd9');
            put(n, 1);
        } else if (choice <= 2 && n < 65536) {
            out.push_back(bin ? '\xc5' : '\xda');
            put(n, 2);
        } else {
            out.push_back(bin ? '\xc6' : '\xdb');
            put(n, 4);
        }
        out.append(b);
    };
    size_t items = 0;
    const auto emit = [&](const auto& any_form, const auto& shortest_form) {
        const size_t item = items++;
        if (!widen) return any_form();
        msgpack::sbuffer buffer;
        msgpack::packer<msgpack::sbuffer> pk(buffer);
        shortest_form(pk);
        const std::string_view shortest(buffer.data(), buffer.size());
        if (item == *widen) {
            for (int tries = 0; tries < 256; ++tries) {
                const size_t at = out.size();
                any_form();
                if (std::string_view(out).substr(at) != shortest) return;
                out.resize(at);
            }
            FAIL("no wider form found");
        }
        out.append(shortest);
    };
    auto array = [&](uint32_t n) {
        emit([&] { array_any(n); }, [&](auto& pk) { pk.pack_array(n); });
    };
    auto uint = [&](uint64_t v) {
        emit([&] { uint_any(v); }, [&](auto& pk) { pk.pack_uint64(v); });
    };
    auto bytes = [&](std::string_view b, bool bin) {
        const auto n = static_cast<uint32_t>(b.size());
        emit([&] { bytes_any(b, bin); },
             [&](auto& pk) {
                 if (bin) {
                     pk.pack_bin(n);
                     pk.pack_bin_body(b.data(), n);
                 } else {
                     pk.pack_str(n);
                     pk.pack_str_body(b.data(), n);
                 }
             });
    };
    array(2);
    const auto& entries = object.context.entries();
    array(static_cast<uint32_t>(entries.size()));
    for (const auto& [actor, counter] : entries) {
        auto unseen = object.context.exceptions().find(actor);
        const bool has_unseen = unseen != object.context.exceptions().end();
        array(has_unseen ? 3 : 2);
        bytes(actor, false);
        uint(counter);
        if (has_unseen) {
            array(static_cast<uint32_t>(unseen->second.size()));
            for (uint64_t e : unseen->second) uint(e);
        }
    }
    array(static_cast<uint32_t>(object.siblings.size()));
    for (const auto& s : object.siblings) {
        array(3);
        bytes(s.dot.actor, false);
        uint(s.dot.counter);
        if (s.value) {
            bytes(*s.value, true);
        } else {
            out.push_back('\xc0');
        }
    }
    return out;
}

}  // namespace

TEST_CASE("objects packed in any msgpack width decode, as the reference decodes them",
          "[object][encoding][fuzz]") {
    const uint64_t seed = base_seed() + 60'000;
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    std::vector<Object> objects{rich_object(), Object{}};
    World world(seed);
    world.run(30);
    for (size_t i = 0; i < world.history.size(); i += 3) objects.push_back(world.history[i]);
    size_t mutated_accepted = 0;
    for (const Object& o : objects) {
        for (int round = 0; round < 20; ++round) {
            const std::string wide = packed_in_any_width(o, rng);
            INFO("bytes=" << show_bytes(wide));
            auto decoded = decode_object(wide);
            REQUIRE(decoded.ok());
            REQUIRE(decoded.value() == o);
            require_as_reference(wide);
            // One byte changed: both decoders still agree (a negative signed
            // counter, a width that no longer fits, a truncated length, ...).
            std::string mutated = wide;
            const size_t at = rng() % mutated.size();
            mutated[at] = static_cast<char>(rng() % 256);
            require_as_reference(mutated);
            if (decode_object(mutated).ok()) mutated_accepted += 1;
            mutated = wide;
            mutated.erase(rng() % mutated.size(), 1);
            require_as_reference(mutated);
        }
    }
    CHECK(mutated_accepted > 0);  // some mutations stay well formed: the comparison ran
}

TEST_CASE("a merge read from the encodings is merge's, and is found whenever an input is the union",
          "[object][merge][encoding][property]") {
    // A replica stores the incoming bytes as they came when merge_of_encoded
    // says the union is the incoming object, and writes nothing when it says
    // the stored one: both must be merge's own answer (the stored bytes then
    // equal what encode_object makes of the merge, which anti-entropy hashes),
    // and on exception-free canonical inputs it must not miss either case,
    // or puts fall back to decoding.
    using Shortcut = kv::node::EncodedMerge::Result;
    size_t stored_found = 0;
    size_t incoming_found = 0;
    size_t neither = 0;
    size_t wide_refused = 0;
    size_t widened_once = 0;
    for (uint64_t i = 0; i < 120; ++i) {
        const uint64_t seed = base_seed() + 70'000 + i;
        CAPTURE(seed);
        World world(seed);
        world.run(40);
        std::mt19937_64 rng(seed ^ 0x6d65);
        const auto& h = world.history;
        for (int k = 0; k < 24; ++k) {
            // Mostly a state and a later one of the same history (a put's
            // replication), sometimes any two.
            const size_t a = rng() % h.size();
            const size_t b = rng() % 2 == 0 ? a + rng() % (h.size() - a) : rng() % h.size();
            const Object& x = h[a];
            const Object& y = h[b];
            INFO("stored=" << show(x) << "\nincoming=" << show(y));
            const Object union_ = merge(x, y);
            const bool plain = x.context.exception_count() == 0 && y.context.exception_count() == 0;
            const std::string xs = encode_object(x);
            const std::string ys = encode_object(y);
            const auto got = kv::node::merge_of_encoded(xs, ys);
            const bool x_tombstones = !x.siblings.empty() && x.live_count() == 0;
            const bool y_tombstones = !y.siblings.empty() && y.live_count() == 0;
            if (got.result == Shortcut::stored) {
                REQUIRE(union_ == x);
                REQUIRE(got.stored_tombstones_only == x_tombstones);
                stored_found += 1;
            } else if (got.result == Shortcut::incoming) {
                REQUIRE(union_ == y);
                REQUIRE(encode_object(union_) == ys);
                REQUIRE(got.stored_tombstones_only == x_tombstones);
                REQUIRE(got.incoming_tombstones_only == y_tombstones);
                incoming_found += 1;
            } else {
                REQUIRE((!plain || (union_ != x && union_ != y)));
                neither += 1;
            }
            // The incoming bytes in other msgpack widths: never stored as
            // they came (they would hash differently from the same object
            // stored as encode_object's), but still nothing to write when
            // the stored object is the union.
            const std::string wide = packed_in_any_width(y, rng);
            const auto wide_got = kv::node::merge_of_encoded(xs, wide);
            if (wide != ys) {
                REQUIRE(wide_got.result != Shortcut::incoming);
                wide_refused +=
                    wide_got.result == Shortcut::unknown && got.result == Shortcut::incoming;
            }
            if (wide_got.result == Shortcut::stored) REQUIRE(union_ == x);
            if (plain && union_ == x) REQUIRE(wide_got.result == Shortcut::stored);
            // Each item alone in a wider form (a counter, an actor's or a
            // value's length, an array's count): never taken as encode_object's.
            if (k % 6 == 0) {
                for (size_t item = 0;; ++item) {
                    const std::string once = packed_in_any_width(y, rng, item);
                    if (once == ys) break;  // past the last item
                    REQUIRE(decode_object(once).value() == y);
                    REQUIRE(kv::node::merge_of_encoded(xs, once).result != Shortcut::incoming);
                    REQUIRE(kv::node::merge_of_encoded(std::nullopt, once).result !=
                            Shortcut::incoming);
                    widened_once += 1;
                }
            }
        }
    }
    CHECK(widened_once > 1000);
    // Both shortcuts and the decode path all ran.
    CHECK(stored_found > 200);
    CHECK(incoming_found > 200);
    CHECK(neither > 100);
    CHECK(wide_refused > 50);
}

namespace {
// A well-formed object no history need reach: any context over three actors,
// any subset of the dots it covers as siblings, values or tombstones.
Object random_well_formed(std::mt19937_64& rng) {
    Object o;
    for (const std::string actor : {"a", "b", "c"}) {
        const uint64_t counter = rng() % 4;
        if (counter == 0) continue;
        o.context.set(actor, counter);
        for (uint64_t c = 1; c <= counter; ++c) {
            if (rng() % 3 != 0) continue;
            o.siblings.push_back({Dot{actor, c}, rng() % 4 == 0 ? Value() : Value("v" + actor)});
        }
    }
    return o;
}
}  // namespace

TEST_CASE("a merge read from the encodings is merge's on well-formed objects no history reaches",
          "[object][merge][encoding][property]") {
    // Reachable histories never hold a context that descends the other's while a
    // sibling the other superseded survives; a peer's bytes need not be reachable.
    using Shortcut = kv::node::EncodedMerge::Result;
    std::mt19937_64 rng(base_seed() + 80'000);
    size_t stored_found = 0;
    size_t incoming_found = 0;
    size_t descends_but_neither = 0;
    for (int i = 0; i < 20'000; ++i) {
        const Object x = random_well_formed(rng);
        Object y = random_well_formed(rng);
        if (i % 2 == 0) y = merge(x, y);             // the incoming descends the stored
        if (i % 4 == 1) y.context.merge(x.context);  // descends, siblings unchanged
        INFO("stored=" << show(x) << "\nincoming=" << show(y));
        const Object union_ = merge(x, y);
        const auto got = kv::node::merge_of_encoded(encode_object(x), encode_object(y));
        switch (got.result) {
            case Shortcut::stored:
                REQUIRE(union_ == x);
                stored_found += 1;
                break;
            case Shortcut::incoming:
                REQUIRE(union_ == y);
                incoming_found += 1;
                break;
            case Shortcut::unknown:
                REQUIRE(union_ != x);
                REQUIRE(union_ != y);
                descends_but_neither += y.context.descends(x.context);
                break;
        }
    }
    CHECK(stored_found > 1000);
    CHECK(incoming_found > 1000);
    CHECK(descends_but_neither > 1000);
}

TEST_CASE("decoders never crash on random or mutated bytes, and what they accept is well formed",
          "[object][encoding][fuzz]") {
    const uint64_t seed = base_seed() + 50'000;
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    std::vector<std::string> valid{encode_object(rich_object()), encode_object(Object{})};
    World world(seed);
    world.run(30);
    for (size_t i = 0; i < world.history.size(); i += 3) {
        valid.push_back(encode_object(world.history[i]));
        valid.push_back(encode_context(world.history[i].context));
    }

    size_t accepted = 0;
    auto probe = [&](const std::string& bytes) {
        require_as_reference(bytes);
        INFO("bytes=" << show_bytes(bytes));
        if (auto o = decode_object(bytes)) {
            accepted += 1;
            REQUIRE(invariant_violation(o.value()).empty());
            auto again = decode_object(encode_object(o.value()));
            REQUIRE(again.ok());
            REQUIRE(again.value() == o.value());
        } else {
            REQUIRE((o.status().code() == ErrorCode::bad_request ||
                     o.status().code() == ErrorCode::object_too_large));
        }
        if (auto c = decode_context(bytes)) {
            auto again = decode_context(encode_context(c.value()));
            REQUIRE(again.ok());
            REQUIRE(again.value() == c.value());
        } else {
            REQUIRE(c.status().code() == ErrorCode::bad_context);
        }
    };
    for (int i = 0; i < 3000; ++i) {
        std::string bytes = random_bytes(rng, 64);
        // Often start like an object, so the decoder gets past the first byte.
        if (!bytes.empty() && rng() % 2 == 0) bytes[0] = '\x92';
        probe(bytes);
    }
    for (int i = 0; i < 5000; ++i) {
        std::string bytes = valid[rng() % valid.size()];
        const int edits = 1 + static_cast<int>(rng() % 3);
        for (int e = 0; e < edits && !bytes.empty(); ++e) {
            const size_t at = rng() % bytes.size();
            switch (rng() % 4) {
                case 0:
                    bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8)));
                    break;
                case 1:
                    bytes[at] = static_cast<char>(rng() % 256);
                    break;
                case 2:
                    bytes.erase(at, 1);
                    break;
                default:
                    bytes.insert(at, 1, static_cast<char>(rng() % 256));
            }
        }
        probe(bytes);
    }
    CHECK(accepted > 0);  // some mutations stay well formed: the check above ran
}

// ---- exceptions and writer contexts ----------------------------------------------------

TEST_CASE("a version vector with exceptions covers exactly the dots of a set model",
          "[object][exceptions]") {
    // Every operation is checked against a plain set of dots; encodings round-trip
    // and stay canonical (the highest entry is covered, exceptions lie below it).
    const std::vector<std::string> actors = {"a", "b", "c"};
    constexpr uint64_t kTop = 10;
    std::mt19937_64 rng(99);
    auto pick = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); };
    auto random_dot = [&] { return Dot{actors[pick(actors.size())], 1 + pick(kTop)}; };
    using Model = std::set<std::pair<std::string, uint64_t>>;
    auto same = [&](const VersionVector& v, const Model& m) {
        for (const auto& actor : actors) {
            for (uint64_t c = 1; c <= kTop + 1; ++c) {
                if (v.covers(Dot{actor, c}) != (m.count({actor, c}) == 1)) return false;
            }
        }
        for (const auto& [actor, highest] : v.entries()) {
            if (!v.covers(Dot{actor, highest})) return false;
        }
        return true;
    };
    for (int round = 0; round < 300; ++round) {
        VersionVector x, y;
        Model mx, my;
        for (int step = 0; step < 30; ++step) {
            const Dot d = random_dot();
            switch (pick(4)) {
                case 0:
                    x.add(d);
                    mx.insert({d.actor, d.counter});
                    break;
                case 1:
                    x.remove(d);
                    mx.erase({d.actor, d.counter});
                    break;
                case 2:
                    y.add(d);
                    my.insert({d.actor, d.counter});
                    break;
                default: {
                    const bool x_descends =
                        std::includes(mx.begin(), mx.end(), my.begin(), my.end());
                    REQUIRE(x.descends(y) == x_descends);
                    x.merge(y);
                    mx.insert(my.begin(), my.end());
                }
            }
            INFO("round " << round << " step " << step);
            REQUIRE(same(x, mx));
            REQUIRE(same(y, my));
            auto decoded = decode_context(encode_context(x));
            REQUIRE(decoded.ok());
            REQUIRE(decoded.value() == x);
        }
    }
}

TEST_CASE("a writer context supersedes the writer's own value and what it saw, nothing else",
          "[object][exceptions]") {
    // Replica a holds x (a blind write); y is written blind at a too, so the
    // object's context covers x, but y's writer never saw it.
    const Object with_x = write(Object{}, {}, "a", "x");
    const Object with_xy = write(with_x, {}, "a", "y");
    const Dot y_dot{"a", 2};
    const VersionVector y_ctx = kv::node::writer_context(with_xy, {}, y_dot);
    CHECK(y_ctx.covers(y_dot));
    CHECK_FALSE(y_ctx.covers(Dot{"a", 1}));
    CHECK(with_xy.context.covers(Dot{"a", 1}));  // what write_reply used to return

    SECTION("at the replica that minted it") {
        const Object next = write(with_xy, y_ctx, "a", "y2");
        CHECK(next.live_values() == std::vector<std::string>{"x", "y2"});
    }
    SECTION("at another replica, which then merges with the first") {
        const Object b = write(with_xy, y_ctx, "b", "y2");
        CHECK(b.live_values() == std::vector<std::string>{"x", "y2"});
        // Replica c holds nothing yet; its write with y's context must not
        // claim x, or merging with a would drop x.
        const Object c = write(Object{}, y_ctx, "c", "y3");
        CHECK_FALSE(c.context.covers(Dot{"a", 1}));
        const Object joined = merge(c, with_xy);
        CHECK(joined.live_values() == std::vector<std::string>{"x", "y3"});
        auto decoded = decode_object(encode_object(c));
        REQUIRE(decoded.ok());
        CHECK(decoded.value() == c);
    }
    SECTION("a chain of writes with reply contexts keeps the context small") {
        Object o = with_xy;
        VersionVector ctx = y_ctx;
        for (int i = 0; i < 50; ++i) {
            o = write(o, ctx, "a", "y" + std::to_string(i));
            ctx = kv::node::writer_context(o, ctx, Dot{"a", o.context.get("a")});
        }
        CHECK(o.live_values().size() == 2);
        CHECK(ctx.exception_count() == 1);  // only x, never the superseded chain
        CHECK_FALSE(ctx.covers(Dot{"a", 1}));
    }
    SECTION("a blind delete's context covers what its replica held") {
        const Object deleted = write(with_xy, with_xy.context, "a", std::nullopt);
        const VersionVector d_ctx = kv::node::writer_context(deleted, with_xy.context, Dot{"a", 3});
        CHECK(d_ctx == deleted.context);
    }
}

TEST_CASE("contexts with exceptions reject non-canonical encodings", "[object][exceptions]") {
    auto with_unseen = [](std::vector<uint64_t> unseen, uint64_t highest) {
        msgpack::sbuffer buf;
        msgpack::packer<msgpack::sbuffer> pk(buf);
        pk.pack_array(1);
        pk.pack_array(3);
        pk.pack(std::string("a"));
        pk.pack_uint64(highest);
        pk.pack_array(static_cast<uint32_t>(unseen.size()));
        for (uint64_t u : unseen) pk.pack_uint64(u);
        return std::string(buf.data(), buf.size());
    };
    auto good = decode_context(with_unseen({1, 3}, 5));
    REQUIRE(good.ok());
    CHECK_FALSE(good->covers(Dot{"a", 1}));
    CHECK(good->covers(Dot{"a", 2}));
    CHECK_FALSE(good->covers(Dot{"a", 3}));
    CHECK(good->covers(Dot{"a", 5}));
    require_bad_context(with_unseen({}, 5));      // empty list: use the two-item form
    require_bad_context(with_unseen({3, 1}, 5));  // not ascending
    require_bad_context(with_unseen({2, 2}, 5));  // repeated
    require_bad_context(with_unseen({5}, 5));     // the highest itself
    require_bad_context(with_unseen({0}, 5));     // counters start at 1
}

TEST_CASE("encodings and decodes reuse per-thread buffers without sharing results",
          "[object][encoding]") {
    // encode_object and encode_context pack into one scratch buffer per
    // thread, and decodes unpack into one zone per thread: each result must
    // stay its own, and a decode made while the thread's zone is leased (a
    // decode inside a frame's decode) gets a zone of its own.
    const Object small = write(Object{}, {}, "a", "x");
    // Its encoding outgrows what the scratch buffer keeps between encodings.
    const Object big =
        write(write(Object{}, {}, "b", std::string(kv::proto::kValueBytesMax, 'v')), {}, "c", "y");
    const std::string small_bytes = encode_object(small);
    const std::string big_bytes = encode_object(big);
    const std::string context_bytes = encode_context(big.context);
    CHECK(small_bytes == raw_object({{"a", 1}}, {{"a", 1, "x"}}));
    CHECK(small_bytes.size() < big_bytes.size());
    CHECK(context_bytes == raw_context({{"b", 1}, {"c", 1}}));
    CHECK(encode_object(small) == small_bytes);  // after bigger encodings
    CHECK(encode_object(big) == big_bytes);      // after the scratch was released
    // A big object, then small ones again, each decoded into the same zone.
    for (int i = 0; i < 3; ++i) {
        auto b = decode_object(big_bytes);
        REQUIRE(b.ok());
        CHECK(b.value() == big);
        auto s = decode_object(small_bytes);
        REQUIRE(s.ok());
        CHECK(s.value() == small);
    }
    {
        kv::ZoneLease outer;  // the thread's zone, as a frame decode holds it
        auto nested = decode_object(big_bytes);
        REQUIRE(nested.ok());
        CHECK(nested.value() == big);
        auto context = decode_context(context_bytes);
        REQUIRE(context.ok());
        CHECK(context.value() == big.context);
    }
    // A failed decode leaves the zone usable for the next.
    CHECK_FALSE(decode_object(big_bytes.substr(0, big_bytes.size() - 1)).ok());
    auto again = decode_object(small_bytes);
    REQUIRE(again.ok());
    CHECK(again.value() == small);
}
