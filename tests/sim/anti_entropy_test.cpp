// Anti-entropy and tombstone GC (node/antientropy/) on the simulated cluster,
// with read repair and hinted handoff off so that nothing else repairs:
//  - a replica that missed writes converges with no read of the keys;
//  - tombstones are purged on every replica once anti-entropy confirmed them,
//    not while a replica that missed the delete is down, and deleted keys stay
//    deleted through a restart;
//  - a node wiped under a static member list and stopped before its refill
//    ended refills again at its next start; it waits for a member that is
//    down, and passes on the mint of a delete without a context while it
//    refills;
//  - the cost of an exchange grows with the difference, not the keyspace
//    (prints the figures of docs/BENCHMARKS.md, "Anti-entropy").
#include <catch2/catch.hpp>

#include <cstdio>
#include <map>
#include <optional>

#include "node/data/object.h"
#include "sim/cluster.h"

using namespace kv;

namespace {

sim::ClusterOptions options(uint32_t nodes, uint64_t seed = 5) {
    sim::ClusterOptions o;
    o.nodes = nodes;
    o.seed = seed;
    o.node_config.n_replicas = std::min<uint32_t>(nodes, 3);
    o.node_config.read_repair = false;
    o.node_config.hinted_handoff = false;
    o.node_config.anti_entropy_interval_ms = 500;
    o.node_config.tombstone_grace_ms = 1000;
    return o;
}

proto::Consistency quorum() {
    return proto::Consistency{proto::Level::quorum, 0, false};
}

// Sends each request to node 0 and waits for every reply; returns how many were ok.
size_t send_all(sim::Cluster& c, std::vector<node::Message> requests) {
    static uint64_t next_id = 1;
    std::set<uint64_t> waiting;
    for (auto& r : requests) {
        const uint64_t id = next_id++;
        std::visit([id](auto& m) { m.id = id; }, r);
        waiting.insert(id);
        c.client_send(0, "t", std::move(r));
    }
    size_t ok = 0;
    c.run_until(
        [&] {
            for (auto& m : c.take_replies("t")) {
                if (waiting.erase(node::request_id(m)) == 0) continue;
                if (auto* w = std::get_if<proto::WriteResponse>(&m)) {
                    ok += w->code == ErrorCode::ok;
                }
            }
            return waiting.empty();
        },
        60000);
    return ok;
}

std::string test_object(const std::string& actor, const std::string& value) {
    auto object = node::update(node::Object{}, {}, actor, value, 100, proto::kObjectBytesMax);
    REQUIRE(object.ok());
    return node::encode_object(object.value());
}

std::string key_of(int i) {
    return "key" + std::to_string(i);
}

// Puts of key_of(i) = "v" i at quorum, for i below `count`.
std::vector<node::Message> puts_of(int count) {
    std::vector<node::Message> puts;
    for (int i = 0; i < count; ++i) {
        puts.push_back(
            proto::PutRequest{0, key_of(i), "v" + std::to_string(i), std::nullopt, quorum(), 0});
    }
    return puts;
}

uint64_t data_keys(sim::Cluster& c, size_t node) {
    auto n = c.store(node).count(node::Space::objects);
    return n.ok() ? n.value() : ~uint64_t{0};
}

}  // namespace

TEST_CASE("a replica that missed writes gets every key from anti-entropy, with no read") {
    sim::Cluster c(options(3));
    c.run_for(3000);
    c.crash(2);
    REQUIRE(send_all(c, puts_of(300)) == 300);
    CHECK(data_keys(c, 2) == 0);
    c.restart(2);
    const uint64_t restarted = c.now_ms();
    const bool converged = c.run_until([&] { return data_keys(c, 2) == 300; }, 30000);
    CHECK(converged);
    INFO("converged after " << c.now_ms() - restarted << " ms");
    uint64_t received = 0;
    for (size_t i = 0; i < 3; ++i) received += c.node(i).stats().ae_keys_received;
    CHECK(received >= 300);
    for (size_t i = 0; i < 3; ++i) CHECK(c.node(i).stats().read_repairs == 0);
}

TEST_CASE("tombstones are purged once every replica is confirmed, and stay deleted") {
    sim::Cluster c(options(3));
    c.run_for(3000);
    std::vector<node::Message> puts;
    for (int i = 0; i < 100; ++i) {
        puts.push_back(proto::PutRequest{0, key_of(i), "v", std::nullopt, quorum(), 0});
    }
    REQUIRE(send_all(c, std::move(puts)) == 100);
    // Every replica holds every key before the deletes.
    REQUIRE(c.run_until([&] { return data_keys(c, 2) == 100; }, 30000));
    c.crash(2);
    std::vector<node::Message> dels;
    for (int i = 0; i < 100; ++i) {
        dels.push_back(proto::DelRequest{0, key_of(i), std::nullopt, quorum(), 0});
    }
    REQUIRE(send_all(c, std::move(dels)) == 100);
    // n3 holds the live values and is down: nothing may be purged meanwhile,
    // however long, or its values would come back once it returns.
    c.run_for(20000);
    CHECK(data_keys(c, 0) == 100);
    CHECK(data_keys(c, 1) == 100);
    CHECK(c.node(0).stats().tombstones_purged == 0);
    c.restart(2);
    const bool purged = c.run_until(
        [&] { return data_keys(c, 0) == 0 && data_keys(c, 1) == 0 && data_keys(c, 2) == 0; },
        60000);
    CHECK(purged);
    uint64_t purged_total = 0;
    for (size_t i = 0; i < 3; ++i) purged_total += c.node(i).stats().tombstones_purged;
    CHECK(purged_total == 300);
    // Through a restart and further exchanges, nothing comes back.
    c.crash(1);
    c.restart(1);
    c.run_for(10000);
    for (size_t i = 0; i < 3; ++i) CHECK(data_keys(c, i) == 0);
    std::vector<node::Message> gets;
    for (int i = 0; i < 100; ++i) gets.push_back(proto::GetRequest{0, key_of(i), quorum(), 0});
    static uint64_t id = 1000000;
    size_t not_found = 0;
    for (auto& g : gets) {
        std::visit([](auto& m) { m.id = ++id; }, g);
        c.client_send(0, "r", std::move(g));
    }
    c.run_for(5000);
    for (auto& m : c.take_replies("r")) {
        if (auto* r = std::get_if<proto::GetResponse>(&m)) {
            not_found +=
                r->code == ErrorCode::not_found || (r->code == ErrorCode::ok && r->values.empty());
        }
    }
    CHECK(not_found == 100);
}

// A wiped node (static list) refills before it counts as a replica; stopped
// before that refill ended, it must refill again at its next start, though its
// directory is no longer empty: counted with what little it received, a read
// quorum of it and n2 (which missed every write) would miss acknowledged writes.
TEST_CASE("a wiped node stopped before its refill ended refills again at its next start") {
    sim::ClusterOptions o = options(3);
    o.node_config.anti_entropy = false;  // only the refill repairs
    // n3's peers are not judged down while it is cut off, so its refill waits.
    o.node_config.peer_down_after_ms = 60000;
    sim::Cluster c(o);
    c.run_for(3000);
    c.crash(1);
    REQUIRE(send_all(c, puts_of(100)) == 100);
    c.restart(1);
    CHECK(data_keys(c, 1) == 0);

    c.wipe(2);
    c.partition({2}, false);
    c.restart(2);
    c.run_for(2000);
    REQUIRE(c.node(2).refilling());
    CHECK(data_keys(c, 2) == 0);
    c.crash(2);
    c.heal();
    c.restart(2);
    CHECK(c.node(2).refilling());
    REQUIRE(c.run_until([&] { return !c.node(2).refilling(); }, 30000));
    CHECK(data_keys(c, 2) == 100);

    // Every quorum read through n3 finds its value.
    constexpr uint64_t kFirstId = 2000000;
    for (int i = 0; i < 100; ++i)
        c.client_send(2, "w", proto::GetRequest{kFirstId + i, key_of(i), quorum(), 0});
    c.run_for(5000);
    size_t found = 0;
    for (auto& m : c.take_replies("w")) {
        if (auto* r = std::get_if<proto::GetResponse>(&m)) {
            const std::string key = key_of(static_cast<int>(r->id - kFirstId));
            INFO(key << ": " << error_name(r->code) << " " << r->message);
            CHECK(r->code == ErrorCode::ok);
            CHECK(r->values == std::vector<std::string>{"v" + key.substr(3)});
            ++found;
        }
    }
    CHECK(found == 100);

    // The refill's end erased the record: a later start serves at once.
    c.crash(2);
    c.restart(2);
    CHECK(!c.node(2).refilling());
}

namespace {

// Sends one request to `node` as client "q" and returns its reply (nullopt:
// none within 10 s).
std::optional<node::Message> ask(sim::Cluster& c, size_t node, node::Message request) {
    static uint64_t next_id = 3000000;
    const uint64_t id = next_id++;
    std::visit([id](auto& m) { m.id = id; }, request);
    c.client_send(node, "q", std::move(request));
    std::optional<node::Message> reply;
    c.run_until(
        [&] {
            for (auto& m : c.take_replies("q")) {
                if (node::request_id(m) == id) reply = std::move(m);
            }
            return reply.has_value();
        },
        10000);
    return reply;
}

// Quorum gets of key_of(i), i in [from, to), through `node`: how many had
// each outcome ("found": its value alone; else the code and how many values),
// as "outcome=count" in order.
std::string quorum_get_codes(sim::Cluster& c, size_t node, int from, int to) {
    std::map<std::string, int> codes;
    for (int i = from; i < to; ++i) {
        auto reply = ask(c, node, proto::GetRequest{0, key_of(i), quorum(), 0});
        const auto* r = reply ? std::get_if<proto::GetResponse>(&*reply) : nullptr;
        if (r == nullptr) {
            ++codes["no answer"];
        } else if (r->code == ErrorCode::ok &&
                   r->values == std::vector<std::string>{"v" + std::to_string(i)}) {
            ++codes["found"];
        } else {
            ++codes[std::string(error_name(r->code)) + "/" + std::to_string(r->values.size())];
        }
    }
    std::string out;
    for (const auto& [outcome, count] : codes)
        out += (out.empty() ? "" : " ") + outcome + "=" + std::to_string(count);
    return out;
}

}  // namespace

namespace {

// Three nodes, anti-entropy only for the refill; key0..key99 written while n2
// was down (on n1 and n3 only), key100..key199 on all three; then n1 goes
// down and n3 loses its disk and restarts: it refills from n2 and waits for
// n1, judged down after 10 s.
void wipe_n3_with_n1_down(sim::Cluster& c) {
    c.run_for(3000);
    // key0..key99 on n1 and n3 only; key100..key199 on all three.
    c.crash(1);
    REQUIRE(send_all(c, puts_of(100)) == 100);
    c.restart(1);
    std::vector<node::Message> more;
    for (int i = 100; i < 200; ++i)
        more.push_back(proto::PutRequest{0, key_of(i), "v" + std::to_string(i), std::nullopt,
                                         proto::Consistency{proto::Level::all, 0, false}, 0});
    REQUIRE(send_all(c, std::move(more)) == 100);
    REQUIRE(data_keys(c, 1) == 100);

    // n1 goes down and n3 loses its disk: n3 refills from n2 (keys 100-199)
    // and waits for n1, judged down meanwhile.
    c.crash(0);
    c.wipe(2);
    c.restart(2);
    c.run_for(10000);
}

sim::ClusterOptions refill_only(size_t nodes) {
    sim::ClusterOptions o = options(nodes);
    o.node_config.anti_entropy = false;  // only the refill repairs
    return o;
}

}  // namespace

// A wiped node whose refill got data from the members that are up waits for
// the member that is down: only it may hold what the lost disk held. Counted
// before that, it and a replica that missed the writes would answer a quorum
// read not_found for writes acknowledged at quorum.
TEST_CASE("a wiped node waits for a member that is down before it serves replica reads") {
    sim::Cluster c(refill_only(3));
    wipe_n3_with_n1_down(c);
    CHECK(c.node(2).refilling());
    CHECK(data_keys(c, 2) == 100);
    // Not counted, n3 leaves quorum reads through n2 failing, not wrong: n1
    // (down, not yet judged so by n2) never answers, so they time out.
    CHECK(quorum_get_codes(c, 1, 0, 20) == "timeout/0=20");

    c.restart(0);
    REQUIRE(c.run_until([&] { return !c.node(2).refilling(); }, 30000));
    CHECK(data_keys(c, 2) == 200);
    CHECK(quorum_get_codes(c, 2, 0, 200) == "found=200");
}

// The operator's way out when the member that is down is gone for good
// (kvctl repair --stop-waiting-for): the refill ends, and what only that
// member held is missing, as the operator was told.
TEST_CASE("an admin request lets a refill stop waiting for a member that is down") {
    sim::Cluster c(refill_only(3));
    const auto admin = [&](size_t node, std::vector<std::string> members) {
        auto reply = ask(c, node, proto::RepairRequest{0, true, 0, 0, std::move(members)});
        REQUIRE(reply);
        return std::get<proto::AdminResponse>(*reply);
    };
    const auto not_refilling = admin(1, {"n1"});
    CHECK(not_refilling.code == ErrorCode::invalid_argument);
    CHECK(not_refilling.message == "n2 is not refilling: it waits for no member");

    wipe_n3_with_n1_down(c);
    REQUIRE(c.node(2).refilling());
    const auto not_waited = admin(2, {"n2", "n9"});
    CHECK(not_waited.code == ErrorCode::invalid_argument);
    CHECK(not_waited.message == "the refill of n3 does not wait for n2, n9; it waits for n1");
    CHECK(c.node(2).refilling());

    const auto released = admin(2, {"n1", "n9"});
    INFO(released.message);
    CHECK(released.code == ErrorCode::ok);
    CHECK(released.message ==
          "refill: no longer waiting for n1 (n9 not waited for); done, replica reads are served");
    CHECK_FALSE(c.node(2).refilling());
    // n2 and n3 now answer for the keys only n1 held (key0..key99): missing.
    CHECK(quorum_get_codes(c, 2, 100, 200) == "found=100");
    CHECK(quorum_get_codes(c, 2, 0, 10) == "not_found/0=10");
    // Released for good: a restart does not refill again.
    c.crash(2);
    c.restart(2);
    CHECK_FALSE(c.node(2).refilling());
}

// A new cluster whose listed member never starts: every node starts empty and
// refills, nothing comes of its exchanges, so the member, once judged down, is
// not waited for, and the cluster serves.
TEST_CASE("a new cluster whose member never started serves reads once it is judged down") {
    sim::ClusterOptions o = options(4);
    sim::Cluster c(o);
    c.crash(3);  // before its first tick: no one ever hears from n4
    REQUIRE(c.run_until(
        [&] { return !c.node(0).refilling() && !c.node(1).refilling() && !c.node(2).refilling(); },
        20000));
    // Writes once n4 is judged down (until then a write that asks it first to
    // mint times out: a node that never started swallows requests here).
    c.run_for(o.node_config.peer_down_after_ms + 1000);
    REQUIRE(send_all(c, puts_of(50)) == 50);
    CHECK(quorum_get_codes(c, 0, 0, 50) == "found=50");
}

// A delete without a context removes what its minting replica holds; a
// refilling replica may hold nothing yet, so it passes the mint on.
TEST_CASE("a refilling replica passes the mint of a delete without a context to another") {
    sim::ClusterOptions o = options(3);
    o.node_config.anti_entropy = false;
    sim::Cluster c(o);
    c.run_for(3000);
    const proto::Consistency all{proto::Level::all, 0, false};
    auto put = ask(c, 0, proto::PutRequest{0, "gone", "old", std::nullopt, all, 0});
    REQUIRE(put);
    REQUIRE(std::get<proto::WriteResponse>(*put).code == ErrorCode::ok);

    c.wipe(2);
    c.restart(2);
    REQUIRE(c.node(2).refilling());
    // Through n3 itself, the home replica it would mint at first.
    auto del = ask(c, 2, proto::DelRequest{0, "gone", std::nullopt, all, 0});
    REQUIRE(del);
    const auto& w = std::get<proto::WriteResponse>(*del);
    INFO(error_name(w.code) << " " << w.message);
    CHECK(w.code == ErrorCode::ok);
    REQUIRE(c.run_until([&] { return !c.node(2).refilling(); }, 30000));
    for (size_t n = 0; n < 3; ++n) {
        auto got = ask(c, n, proto::GetRequest{0, "gone", all, 0});
        REQUIRE(got);
        const auto& r = std::get<proto::GetResponse>(*got);
        INFO("through n" << n + 1 << ": " << r.values.size() << " value(s)");
        CHECK(r.code == ErrorCode::not_found);
    }
}

TEST_CASE("an exchange costs the difference, not the keyspace") {
    const uint32_t keys = 100000;
    for (uint32_t differing : {10u, 1000u, 10000u}) {
        auto o = options(2, 9);
        o.node_config.n_replicas = 2;
        o.node_config.anti_entropy = false;  // only the exchange measured below
        o.trace_to_stderr = getenv("AE_TRACE") != nullptr;
        sim::Cluster c(o);
        c.run_for(2000);
        // The same objects on both nodes, then `differing` of them changed on
        // n2 (a newer version) and as many more present on n1 only; stored
        // while the nodes are down in the layout of format 1 without its
        // index, so at restart each moves them to format 2 (as kvnode does,
        // node/storage/upgrade.h) and builds its tree from them.
        const std::string same = test_object("a.1", "value");
        for (size_t n = 0; n < 2; ++n) c.crash(n);
        for (size_t n = 0; n < 2; ++n) {
            std::vector<node::StoreWrite> batch;
            for (uint32_t k = 0; k < keys; ++k) {
                std::string object = same;
                if (n == 1 && k < differing / 2) object = test_object("b.1", "newer");
                if (n == 0 && k >= keys - differing / 2) continue;  // n1 lacks these
                batch.push_back({node::Space::data, "k" + std::to_string(k), object});
            }
            // A directory of format 1 had no format record (and this one no index).
            batch.push_back({node::Space::meta, "format", std::nullopt});
            batch.push_back({node::Space::meta, "key_hashes", std::nullopt});
            REQUIRE(c.store(n).write(batch).ok());
        }
        for (size_t n = 0; n < 2; ++n) c.restart(n);
        c.run_for(5000);  // the index and tree builds
        static uint64_t id = 5000000;
        c.client_send(0, "r", proto::RepairRequest{++id, true, 0, 0, {}});
        const bool done = c.run_until(
            [&] {
                const auto& s = c.node(0).stats();
                return s.ae_exchanges + s.ae_exchanges_failed >= 1;
            },
            120000);
        REQUIRE(done);
        const auto& s = c.node(0).stats();
        CHECK(s.ae_exchanges == 1);
        std::printf(
            "figure: anti-entropy, %u keys, %u differing: %llu messages, %llu bytes sent, "
            "%llu bytes received, %llu keys received, %llu sent\n",
            keys, differing, static_cast<unsigned long long>(s.ae_messages),
            static_cast<unsigned long long>(s.ae_bytes_sent),
            static_cast<unsigned long long>(s.ae_bytes_received),
            static_cast<unsigned long long>(s.ae_keys_received),
            static_cast<unsigned long long>(s.ae_keys_sent));
        CHECK(s.ae_keys_received == differing);
        CHECK(s.ae_keys_sent == differing / 2);
        // Both stores now hold the same objects.
        for (uint32_t k = 0; k < keys; k += 997) {
            CHECK(c.stored_object(0, "k" + std::to_string(k)).value() ==
                  c.stored_object(1, "k" + std::to_string(k)).value());
        }
        // Cost follows the difference: well under one key's worth of bytes
        // per stored key for the small differences.
        const uint64_t bytes = s.ae_bytes_sent + s.ae_bytes_received;
        if (differing == 10) CHECK(bytes < 20 * 1024);
        if (differing == 1000) CHECK(bytes < 2 * 1024 * 1024);
    }
}
