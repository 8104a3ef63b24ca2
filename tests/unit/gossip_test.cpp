// Tests of gossip/: the merge rule's laws, push-pull convergence in simulated
// clusters of 10, 50 and 200 nodes (every message through the codec), failure
// detection timing, balanced token claims, and hostile input to the decoder.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gossip/cluster_view.h"
#include "gossip/failure_detector.h"
#include "gossip/gossip.h"
#include "gossip/gossip_codec.h"
#include "gossip/token_claim.h"
#include "ring/ring.h"

using namespace kv::gossip;

namespace {

MemberState member(std::string id, uint64_t incarnation, uint64_t heartbeat,
                   MemberStatus declared = MemberStatus::up, Liveness liveness = Liveness::alive) {
    MemberState s;
    s.endpoint = "tcp://" + id;
    s.id = std::move(id);
    s.declared = declared;
    s.liveness = liveness;
    s.incarnation = incarnation;
    s.heartbeat = heartbeat;
    s.tokens = {1, 2, 3};
    return s;
}

// A random entry about "x" from a small space, so that collisions of version
// and of content happen often.
MemberState random_entry(std::mt19937_64& rng) {
    static const MemberStatus kDeclared[] = {MemberStatus::joining, MemberStatus::up,
                                             MemberStatus::leaving, MemberStatus::left};
    MemberState s =
        member("x", rng() % 3, rng() % 3, kDeclared[rng() % 4], static_cast<Liveness>(rng() % 3));
    s.endpoint = "tcp://x:" + std::to_string(rng() % 2);
    s.tokens = {rng() % 2, 7};
    return s;
}

ClusterView observer() {
    return ClusterView(member("observer", 1, 0), 64);
}

}  // namespace

// ---- merge laws ----------------------------------------------------------------

TEST_CASE("merge: newer incarnation, then heartbeat, wins") {
    ClusterView view = observer();
    REQUIRE(view.merge(member("a", 1, 5)).changed);
    CHECK_FALSE(view.merge(member("a", 1, 4)).changed);  // older heartbeat
    CHECK(view.find("a")->heartbeat == 5);
    const MergeOutcome newer = view.merge(member("a", 1, 6));
    CHECK(newer.changed);
    CHECK(newer.heard_from);
    CHECK(view.find("a")->heartbeat == 6);
    CHECK_FALSE(view.merge(member("a", 0, 100)).changed);  // older incarnation loses
    CHECK(view.merge(member("a", 2, 0)).changed);          // restart: new incarnation
    CHECK(view.find("a")->incarnation == 2);
    CHECK(view.find("a")->heartbeat == 0);
}

TEST_CASE("merge is commutative, associative and idempotent") {
    std::mt19937_64 rng(20240501);
    for (int trial = 0; trial < 300; ++trial) {
        std::vector<MemberState> entries;
        for (int i = 0; i < 6; ++i) entries.push_back(random_entry(rng));
        std::optional<MemberState> first_result;
        for (int order = 0; order < 8; ++order) {
            std::shuffle(entries.begin(), entries.end(), rng);
            ClusterView view = observer();
            for (const auto& e : entries) view.merge(e);
            const MemberState result = *view.find("x");
            if (!first_result) first_result = result;
            REQUIRE(result == *first_result);
            // Idempotent: hearing everything again changes nothing.
            const uint64_t version = view.view_version();
            for (const auto& e : entries) CHECK_FALSE(view.merge(e).changed);
            CHECK(view.view_version() == version);
        }
        // The result is one of the inputs, and it supersedes every other input.
        CHECK(std::find(entries.begin(), entries.end(), *first_result) != entries.end());
        for (const auto& e : entries) CHECK_FALSE(supersedes(e, *first_result));
    }
}

TEST_CASE("merge: suspicion raises at the same version, a newer heartbeat clears it") {
    ClusterView view = observer();
    view.merge(member("a", 1, 5));
    CHECK(view.merge(member("a", 1, 5, MemberStatus::up, Liveness::suspect)).changed);
    CHECK(view.find("a")->status() == MemberStatus::suspect);
    CHECK_FALSE(view.merge(member("a", 1, 5)).changed);  // alive at the same version: no news
    CHECK(view.merge(member("a", 1, 5, MemberStatus::up, Liveness::down)).changed);
    CHECK(view.find("a")->status() == MemberStatus::down);
    CHECK(view.merge(member("a", 1, 6)).heard_from);
    CHECK(view.find("a")->status() == MemberStatus::up);
}

TEST_CASE("merge: 'left' is final for its incarnation, a restart overrides it") {
    ClusterView view = observer();
    view.merge(member("a", 3, 10, MemberStatus::left));
    CHECK_FALSE(view.merge(member("a", 3, 999)).changed);
    CHECK_FALSE(view.merge(member("a", 3, 999, MemberStatus::up, Liveness::down)).changed);
    CHECK(view.find("a")->status() == MemberStatus::left);
    CHECK_FALSE(view.raise_liveness("a", Liveness::suspect));
    CHECK(view.merge(member("a", 4, 0, MemberStatus::joining)).changed);
    CHECK(view.find("a")->status() == MemberStatus::joining);
}

TEST_CASE("a node refutes suspicion about itself with a higher incarnation") {
    ClusterView self(member("me", 7, 3), 64);
    const MergeOutcome outcome =
        self.merge(member("me", 7, 3, MemberStatus::up, Liveness::suspect));
    CHECK(outcome.refuted);
    CHECK(self.self().incarnation == 8);
    CHECK(self.self().liveness == Liveness::alive);
    // Others that believed the suspicion take the refutation.
    ClusterView other = observer();
    other.merge(member("me", 7, 3, MemberStatus::up, Liveness::suspect));
    CHECK(other.merge(self.self()).changed);
    CHECK(other.find("me")->status() == MemberStatus::up);
    // Stale news about ourselves is ignored.
    CHECK_FALSE(self.merge(member("me", 7, 100, MemberStatus::up, Liveness::down)).changed);
    // News from a previous life with a higher incarnation is outbid too.
    CHECK(self.merge(member("me", 20, 0, MemberStatus::left)).refuted);
    CHECK(self.self().incarnation == 21);
    CHECK(self.self().declared == MemberStatus::up);
}

TEST_CASE(
    "removal: the remover's entry overrides all the member said of its life, and left is final") {
    ClusterView remover(member("r", 1, 0), 64);
    remover.merge(member("a", 5, 100));
    ClusterView stale = observer();  // heard more of a's life than the remover did
    stale.merge(member("a", 5, 250));
    REQUIRE(remover.remove_member("a"));
    const MemberState removal = *remover.find("a");
    CHECK(removal.declared == MemberStatus::leaving);  // in the ring until re-replicated
    CHECK(removal.removed_by == "r");
    CHECK(removal.incarnation == 5 + kRemovalIncarnationStep);
    CHECK(removal.liveness == Liveness::down);
    CHECK(removal.tokens == std::vector<uint64_t>{1, 2, 3});
    CHECK(stale.merge(removal).changed);
    CHECK(stale.active_change() == "a");
    // Nothing a's own lives said, or could say without being heard by anyone
    // for kRemovalIncarnationStep starts, overrides it.
    for (const MemberState& own :
         {member("a", 5, 1'000'000), member("a", 6, 0), member("a", 5, 9, MemberStatus::left),
          member("a", 5 + kRemovalIncarnationStep - 1, 3)}) {
        CHECK_FALSE(stale.merge(own).changed);
    }
    CHECK(*stale.find("a") == removal);
    // Only the remover completes it; left is final for that incarnation.
    CHECK_FALSE(stale.complete_removal("a"));
    REQUIRE(remover.complete_removal("a"));
    const MemberState done = *remover.find("a");
    CHECK(done.declared == MemberStatus::left);
    CHECK(stale.merge(done).changed);
    CHECK_FALSE(stale.merge(removal).changed);
    CHECK(stale.find("a")->status() == MemberStatus::left);
    CHECK(stale.ring_input().size() == 1);  // the observer alone: a is out of the ring
    // Merge stays a max over a total order with removal entries in the mix.
    std::mt19937_64 rng(7);
    std::vector<MemberState> entries = {member("a", 5, 100), member("a", 5, 250), removal, done,
                                        member("a", 6, 0)};
    for (int order = 0; order < 20; ++order) {
        std::shuffle(entries.begin(), entries.end(), rng);
        ClusterView view = observer();
        for (const auto& e : entries) view.merge(e);
        CHECK(*view.find("a") == done);
    }
    // Not removable: itself, unknown or left members.
    CHECK_FALSE(remover.remove_member("r"));
    CHECK_FALSE(remover.remove_member("zz"));
    CHECK_FALSE(remover.remove_member("a"));
}

TEST_CASE("removal of a member outside the ring is left at once") {
    ClusterView remover(member("r", 1, 0), 64);
    remover.merge(member("j", 2, 7, MemberStatus::joining));  // claimed tokens, died joining
    REQUIRE(remover.remove_member("j"));
    CHECK(remover.find("j")->declared == MemberStatus::left);
    CHECK(remover.active_change().empty());
}

TEST_CASE(
    "a removed member restarted with its data stops; with a fresh directory it rejoins later") {
    ClusterView remover(member("r", 1, 0), 64);
    remover.merge(member("a", 5, 100));
    REQUIRE(remover.remove_member("a"));
    const MemberState removal = *remover.find("a");
    // Restarted with its old data: incarnation 6, up with its tokens. It does
    // not refute (that would put it back in the ring holding stale data).
    ClusterView old_life(member("a", 6, 0), 64);
    const MergeOutcome heard = old_life.merge(removal);
    CHECK(heard.removed);
    CHECK_FALSE(heard.changed);
    CHECK_FALSE(heard.refuted);
    CHECK(old_life.self().incarnation == 6);
    // And its own entry loses everywhere.
    ClusterView other = observer();
    other.merge(removal);
    CHECK_FALSE(other.merge(old_life.self()).changed);
    // A fresh data directory under the old id (incarnation 1, no tokens):
    // waits while the removal re-replicates (a refutation would take a out of
    // the ring before its ranges are copied) ...
    MemberState fresh = member("a", 1, 0, MemberStatus::joining);
    fresh.tokens.clear();
    ClusterView new_life(fresh, 64);
    const MergeOutcome during = new_life.merge(removal);
    CHECK_FALSE(during.removed);
    CHECK_FALSE(during.refuted);
    CHECK(new_life.self().incarnation == 1);
    // ... then, once it is left, refutes it and joins as a new node.
    REQUIRE(remover.complete_removal("a"));
    const MergeOutcome after = new_life.merge(*remover.find("a"));
    CHECK(after.refuted);
    CHECK(new_life.self().incarnation == removal.incarnation + 1);
    CHECK(new_life.self().declared == MemberStatus::joining);
    CHECK(new_life.self().removed_by.empty());
    CHECK(other.merge(*remover.find("a")).changed);
    CHECK(other.merge(new_life.self()).changed);
    CHECK(other.find("a")->declared == MemberStatus::joining);
    CHECK_FALSE(other.find("a")->holds_tokens());
}

TEST_CASE("a fresh data directory under the id of a ring member waits for its removal") {
    // Refuting would replace the entry holding tokens with a tokenless one:
    // the ring would drop those ranges with no transfer to their new owners.
    MemberState fresh = member("a", 1, 0, MemberStatus::joining);
    fresh.tokens.clear();
    ClusterView new_life(fresh, 64);
    const MergeOutcome heard = new_life.merge(member("a", 5, 100));
    CHECK(heard.earlier_life_holds_tokens);
    CHECK_FALSE(heard.refuted);
    CHECK(new_life.self().incarnation == 1);
    // An earlier life without tokens (it never claimed, or left) is refuted
    // as before.
    CHECK(new_life.merge(member("a", 5, 100, MemberStatus::left)).refuted);
    ClusterView other(fresh, 64);
    MemberState never_claimed = member("a", 3, 4, MemberStatus::joining);
    never_claimed.tokens.clear();
    CHECK(other.merge(never_claimed).refuted);
}

TEST_CASE("members() lists token holders sorted by id; version() tracks them") {
    ClusterView view(member("m", 1, 0, MemberStatus::joining), 64);
    // A joiner with tokens takes writes (it is a member) but owns nothing yet.
    CHECK(view.members().size() == 1);
    CHECK(view.ring_input().empty());
    CHECK(view.future_ring_input().size() == 1);
    const uint64_t v0 = view.version();
    view.merge(member("z", 1, 0));
    view.merge(member("b", 1, 0));
    view.merge(member("c", 1, 0, MemberStatus::leaving));
    MemberState tokenless = member("d", 1, 0);
    tokenless.tokens.clear();
    view.merge(tokenless);
    std::vector<std::string> ids;
    for (const auto& m : view.members()) ids.push_back(m.id);
    CHECK(ids == std::vector<std::string>{"b", "c", "m", "z"});
    auto input_ids = [](const std::vector<NodeTokens>& input) {
        std::vector<std::string> out;
        for (const auto& n : input) out.push_back(n.id);
        return out;
    };
    // Leaving: in the ring until its data moved; not in the ring after. One
    // change at a time: c (the smaller id) is active, joiner m waits.
    CHECK(input_ids(view.ring_input()) == std::vector<std::string>{"b", "c", "z"});
    CHECK(view.active_change() == "c");
    CHECK(input_ids(view.future_ring_input()) == std::vector<std::string>{"b", "z"});
    view.merge(member("c", 1, 1, MemberStatus::left));
    CHECK(view.active_change() == "m");
    CHECK(input_ids(view.future_ring_input()) == std::vector<std::string>{"b", "m", "z"});
    const uint64_t v1 = view.version();
    CHECK(v1 != v0);
    view.merge(member("z", 1, 1));  // heartbeat only
    view.raise_liveness("z", Liveness::down);
    CHECK(view.version() == v1);  // down members keep their ranges
    CHECK(view.members().size() == 3);
    const uint64_t views = view.view_version();
    view.beat();
    CHECK(view.view_version() != views);
    CHECK(view.version() == v1);
    view.declare(MemberStatus::up);  // joining -> up changes the ring, not the members
    CHECK(view.version() != v1);
    CHECK(view.members().size() == 3);
    CHECK(view.ring_input().size() == 3);
    CHECK(view.active_change().empty());
    view.merge(member("b", 1, 2, MemberStatus::left));
    CHECK(view.members().size() == 2);
    CHECK(view.ring_input().size() == 2);
}

TEST_CASE("the view holds at most members_max members") {
    ClusterView view(member("m", 1, 0), 3);
    CHECK(view.merge(member("a", 1, 0)).changed);
    CHECK(view.merge(member("b", 1, 0)).changed);
    CHECK(view.merge(member("c", 1, 0)).rejected);
    CHECK(view.size() == 3);
    CHECK(view.merge(member("a", 1, 1)).changed);  // known members still update
}

// ---- codec ---------------------------------------------------------------------

TEST_CASE("codec round-trips every message") {
    MemberState e = member("node-a", 12, 34, MemberStatus::leaving, Liveness::suspect);
    e.tokens = {0, 5, UINT64_MAX};
    e.change_ticket = 7;
    MemberState removed =
        member("gone", 9 + kRemovalIncarnationStep, 0, MemberStatus::leaving, Liveness::down);
    removed.removed_by = "node-a";  // a 9th field
    const std::vector<GossipMessage> messages = {
        GossipSyn{"a",
                  "tcp://a:1",
                  {DigestEntry{"a", 1, 2, MemberStatus::up, Liveness::alive},
                   DigestEntry{"b", 3, 4, MemberStatus::left, Liveness::down}}},
        GossipAck{"b", "tcp://b:1", {e}, {"c", "d"}},
        GossipAck2{"a", {e, member("z", 0, 0, MemberStatus::joining)}},
        GossipAck2{"a", {removed}},
        GossipSyn{"a", "tcp://a:1", {}},
    };
    for (const auto& m : messages) {
        auto decoded = decode(encode(m));
        REQUIRE(decoded.ok());
        CHECK(decoded.value() == m);
    }
}

TEST_CASE("codec carries link endpoints beside the entries, which builds without them read") {
    MemberState linked = member("l", 3, 4);
    linked.link_endpoint = "tcp://127.0.0.1:7201";
    const MemberState plain = member("p", 5, 6);
    for (const GossipMessage& m : {GossipMessage{GossipAck{"b", "tcp://b:1", {plain, linked}, {}}},
                                   GossipMessage{GossipAck2{"a", {linked, plain}}}}) {
        const std::string frame = encode(m);
        auto decoded = decode(frame);
        REQUIRE(decoded.ok());
        CHECK(decoded.value() == m);
        // The entries themselves are the 8 fields older builds read: the
        // endpoint is only under "le", which they ignore.
        CHECK(frame.find("\xa2le") != std::string::npos);
    }
    // Without any, the frame is what it was before links.
    const std::string before = encode(GossipAck2{"a", {plain}});
    CHECK(before.find("\xa2le") == std::string::npos);
    // A hostile "le": an endpoint too long, or not a pair.
    MemberState too_long = linked;
    too_long.link_endpoint = std::string(300, 'x');
    CHECK_FALSE(decode(encode(GossipAck2{"a", {too_long}})).ok());
    // At the same version the entry that carries a link endpoint wins
    // (a copy relayed by a build that dropped it does not replace it).
    ClusterView view(member("m", 1, 0), 8);
    CHECK(view.merge(linked).changed);
    MemberState stripped = linked;
    stripped.link_endpoint.clear();
    CHECK_FALSE(view.merge(stripped).changed);
    REQUIRE(view.find("l") != nullptr);
    CHECK(view.find("l")->link_endpoint == linked.link_endpoint);
    // The ring's members say where to dial.
    bool listed = false;
    for (const auto& rm : view.members()) {
        if (rm.id == "l") listed = rm.link_endpoint == linked.link_endpoint;
    }
    CHECK(listed);
}

TEST_CASE("codec reads entries of 7 fields, as saved before change tickets") {
    // An ack2 {"t":"gack2","from":"a","e":[["b","ep",1,0,5,6,[9]]]} written by hand.
    const std::vector<unsigned char> bytes = {
        0x83, 0xa1, 't',  0xa5, 'g',  'a', 'c',  'k', '2', 0xa4, 'f',  'r',  'o',  'm',  0xa1, 'a',
        0xa1, 'e',  0x91, 0x97, 0xa1, 'b', 0xa2, 'e', 'p', 0x01, 0x00, 0x05, 0x06, 0x91, 0x09};
    const std::string frame(bytes.begin(), bytes.end());
    auto decoded = decode(frame);
    REQUIRE(decoded.ok());
    const auto& entries = std::get<GossipAck2>(decoded.value()).entries;
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].id == "b");
    CHECK(entries[0].tokens == std::vector<uint64_t>{9});
    CHECK(entries[0].change_ticket == 0);
}

TEST_CASE("codec rejects hostile frames without crashing") {
    const std::string good = encode(GossipAck{"b", "tcp://b", {member("a", 1, 1)}, {"x"}});
    SECTION("truncated at every length") {
        for (size_t n = 0; n < good.size(); ++n) CHECK_FALSE(decode(good.substr(0, n)).ok());
    }
    SECTION("trailing bytes") {
        CHECK_FALSE(decode(good + "x").ok());
    }
    SECTION("oversized frame") {
        auto r = decode(std::string(kGossipFrameBytesMax + 1, '\x90'));
        REQUIRE_FALSE(r.ok());
        CHECK(r.status().code() == kv::ErrorCode::message_too_large);
    }
    SECTION("too many digests") {
        GossipSyn syn{"a", "tcp://a", {}};
        for (size_t i = 0; i <= kGossipItemsMax; ++i) {
            syn.digests.push_back(DigestEntry{"n" + std::to_string(i), 1, 1});
        }
        CHECK_FALSE(decode(encode(syn)).ok());
        syn.digests.pop_back();
        CHECK(decode(encode(syn)).ok());
    }
    SECTION("too many tokens, too long an id, an empty id, a bad status") {
        MemberState e = member("a", 1, 1);
        e.tokens.resize(kGossipTokensPerMemberMax + 1);
        for (size_t i = 0; i < e.tokens.size(); ++i) e.tokens[i] = i;
        CHECK_FALSE(decode(encode(GossipAck2{"b", {e}})).ok());
        CHECK_FALSE(decode(encode(GossipAck2{"b", {member(std::string(300, 'x'), 1, 1)}})).ok());
        CHECK_FALSE(decode(encode(GossipAck2{"b", {member("", 1, 1)}})).ok());
        CHECK_FALSE(decode(encode(GossipAck2{"", {}})).ok());
        CHECK_FALSE(decode(encode(GossipAck2{"b", {member("a", 1, 1, MemberStatus::down)}})).ok());
        CHECK_FALSE(decode(encode(GossipSyn{"a", "", {}})).ok());  // nowhere to answer
    }
    SECTION("unknown type and non-map frames") {
        auto r = decode(
            "\x82\xa1t\xa3xyz\xa4"
            "from\xa1"
            "a");
        REQUIRE_FALSE(r.ok());
        CHECK(r.status().code() == kv::ErrorCode::unknown_type);
        CHECK_FALSE(decode("\x91\x01").ok());
        CHECK_FALSE(decode("").ok());
    }
    SECTION("random mutations never crash and never decode to nonsense ids") {
        std::mt19937_64 rng(7);
        for (int i = 0; i < 3000; ++i) {
            std::string frame = good;
            for (int flips = 0; flips < 3; ++flips) {
                frame[rng() % frame.size()] = static_cast<char>(rng() & 0xff);
            }
            auto r = decode(frame);
            if (!r.ok()) continue;
            if (auto* ack = std::get_if<GossipAck>(&r.value())) {
                for (const auto& e : ack->entries) CHECK_FALSE(e.id.empty());
            }
        }
    }
}

// ---- simulated clusters ------------------------------------------------------------

namespace {

constexpr uint64_t kIntervalMs = 1'000;

// Nodes gossiping in rounds of virtual time; every message goes through
// encode/decode. A crashed node neither ticks nor receives.
class SimCluster {
  public:
    explicit SimCluster(uint64_t seed, GossipConfig config = {}) : rng_(seed), config_(config) {
        config_.interval_ms = kIntervalMs;
    }

    size_t add(std::string seed_endpoint, uint64_t incarnation = 1) {
        const size_t index = nodes_.size();
        const std::string id = "n" + std::to_string(1000 + index);
        MemberState self = member(id, incarnation, 0);
        self.endpoint = "sim://" + id;
        self.tokens = default_tokens(id, 4);
        std::vector<std::string> seeds;
        if (!seed_endpoint.empty()) seeds.push_back(seed_endpoint);
        nodes_.push_back(std::make_unique<Gossiper>(config_, self, seeds, now_ms_));
        crashed_.push_back(false);
        by_endpoint_[self.endpoint] = index;
        return index;
    }

    // Every live node learns every entry directly (a converged start).
    void converge_directly() {
        std::vector<MemberState> all;
        for (const auto& n : nodes_) all.push_back(n->view().self());
        for (auto& n : nodes_) n->handle(GossipAck2{"bootstrap", all}, now_ms_);
    }

    // Every node starts its exchange from its state at the start of the round,
    // so news travels at most a few hops per round, as with concurrent rounds.
    void round() {
        now_ms_ += kIntervalMs;
        for (size_t i = 0; i < nodes_.size(); ++i) {
            if (crashed_[i]) continue;
            for (auto& out : nodes_[i]->tick(now_ms_, rng_)) queue_.push_back(std::move(out));
        }
        deliver_all();
    }

    void deliver_all() {
        while (!queue_.empty()) {
            Outgoing out = std::move(queue_.front());
            queue_.pop_front();
            auto it = by_endpoint_.find(out.endpoint);
            REQUIRE(it != by_endpoint_.end());
            if (crashed_[it->second]) continue;
            auto decoded = decode(encode(out.message));
            REQUIRE(decoded.ok());
            REQUIRE(decoded.value() == out.message);
            for (auto& reply : nodes_[it->second]->handle(decoded.value(), now_ms_)) {
                queue_.push_back(std::move(reply));
            }
        }
    }

    bool all_live_know(const std::string& id) const {
        for (size_t i = 0; i < nodes_.size(); ++i) {
            if (!crashed_[i] && nodes_[i]->view().find(id) == nullptr) return false;
        }
        return true;
    }

    // Rounds until every live node knows `id` (or round_max).
    int rounds_until_known(const std::string& id, int round_max) {
        int rounds = 0;
        while (!all_live_know(id) && rounds < round_max) {
            round();
            ++rounds;
        }
        return rounds;
    }

    Gossiper& node(size_t i) { return *nodes_[i]; }
    size_t size() const { return nodes_.size(); }
    void crash(size_t i) { crashed_[i] = true; }
    // Node i starts again under its id with an empty data directory: the
    // incarnation its earlier life started with, no tokens, joining, seeded
    // with node `seed`.
    void restart_fresh(size_t i, size_t seed) {
        MemberState self = nodes_[i]->view().self();
        self.incarnation = 1;
        self.heartbeat = 0;
        self.tokens.clear();
        self.declared = MemberStatus::joining;
        self.change_ticket = 0;
        nodes_[i] = std::make_unique<Gossiper>(config_, self,
                                               std::vector<std::string>{endpoint(seed)}, now_ms_);
        crashed_[i] = false;
    }
    void revive(size_t i) { crashed_[i] = false; }
    uint64_t now_ms() const { return now_ms_; }
    std::string endpoint(size_t i) const { return nodes_[i]->view().self().endpoint; }
    std::string id(size_t i) const { return nodes_[i]->view().self_id(); }

    // The liveness each other live node gives node `target`.
    std::vector<MemberStatus> statuses_of(size_t target) const {
        std::vector<MemberStatus> out;
        for (size_t i = 0; i < nodes_.size(); ++i) {
            if (i == target || crashed_[i]) continue;
            const MemberState* s = nodes_[i]->view().find(id(target));
            out.push_back(s == nullptr ? MemberStatus::left : s->status());
        }
        return out;
    }

  private:
    std::mt19937_64 rng_;
    GossipConfig config_;
    std::vector<std::unique_ptr<Gossiper>> nodes_;
    std::vector<bool> crashed_;
    std::map<std::string, size_t> by_endpoint_;
    std::deque<Outgoing> queue_;
    uint64_t now_ms_ = 0;
};

bool all_equal(const std::vector<MemberStatus>& v, MemberStatus s) {
    return std::all_of(v.begin(), v.end(), [&](MemberStatus x) { return x == s; });
}

}  // namespace

TEST_CASE("a new member spreads to clusters of 10, 50 and 200 in O(log N) rounds") {
    const uint64_t kSeeds[] = {1, 2, 3, 4, 5};
    for (size_t n : {10, 50, 200}) {
        const int bound = static_cast<int>(4 * std::log2(static_cast<double>(n)) + 10);
        int worst = 0;
        int total = 0;
        for (uint64_t seed : kSeeds) {
            SimCluster sim(seed);
            for (size_t i = 0; i < n; ++i) sim.add("");
            sim.converge_directly();
            for (int r = 0; r < 3; ++r) sim.round();  // settle heartbeats
            const size_t joiner = sim.add(sim.endpoint(0));
            const int rounds = sim.rounds_until_known(sim.id(joiner), 200);
            CHECK(rounds <= bound);
            worst = std::max(worst, rounds);
            total += rounds;
        }
        std::printf("gossip spread: N=%zu rounds mean %.1f max %d (bound %d, log2 N = %.1f)\n", n,
                    static_cast<double>(total) / std::size(kSeeds), worst, bound,
                    std::log2(static_cast<double>(n)));
    }
}

TEST_CASE("nodes that know only a seed find each other") {
    SimCluster sim(99);
    sim.add("");
    for (int i = 1; i < 30; ++i) sim.add(sim.endpoint(0));
    int rounds = 0;
    auto everyone_knows_everyone = [&] {
        for (size_t i = 0; i < sim.size(); ++i) {
            if (sim.node(i).view().size() != sim.size()) return false;
        }
        return true;
    };
    while (!everyone_knows_everyone() && rounds < 100) {
        sim.round();
        ++rounds;
    }
    std::printf("bootstrap through one seed: N=30 full views after %d rounds\n", rounds);
    CHECK(everyone_knows_everyone());
    CHECK(rounds <= 4 * std::log2(30.0) + 10);
}

// Issue 10: nodes seeded with each other split into islands for good when a
// node that knew one seed kept choosing it and never tried the others.
TEST_CASE("a node contacts every seed it has not heard from, each round, and never itself") {
    std::mt19937_64 rng(5);
    GossipConfig config;
    config.interval_ms = kIntervalMs;
    MemberState self = member("a", 1, 0, MemberStatus::joining);
    self.tokens.clear();
    uint64_t now_ms = 0;
    Gossiper alone(config, self, {"tcp://a"}, now_ms);
    for (int round = 0; round < 5; ++round) {
        now_ms += kIntervalMs;
        CHECK(alone.tick(now_ms, rng).empty());  // its own endpoint is no seed
    }

    Gossiper g(config, self, {"tcp://a", "tcp://b", "tcp://c", "tcp://d"}, now_ms);
    g.handle(GossipAck2{"b", {member("b", 1, 0, MemberStatus::joining)}}, now_ms);
    std::map<std::string, int> contacted;
    for (int round = 0; round < 20; ++round) {
        now_ms += kIntervalMs;
        bool unheard_seed = false;
        for (const auto& out : g.tick(now_ms, rng)) {
            CHECK(out.endpoint != "tcp://a");
            ++contacted[out.endpoint];
            unheard_seed = unheard_seed || out.endpoint == "tcp://c" || out.endpoint == "tcp://d";
        }
        CHECK(unheard_seed);
    }
    CHECK(contacted["tcp://b"] == 20);  // the one live peer, as before
    CHECK(contacted["tcp://c"] + contacted["tcp://d"] == 20);
    CHECK(contacted["tcp://c"] > 0);
    CHECK(contacted["tcp://d"] > 0);

    // Once every seed is known and heard from each round, one live peer per
    // round: seeds are not flooded.
    for (uint64_t round = 1; round <= 20; ++round) {
        g.handle(GossipAck2{"c",
                            {member("b", 1, round, MemberStatus::joining),
                             member("c", 1, round, MemberStatus::joining),
                             member("d", 1, round, MemberStatus::joining)}},
                 now_ms);
        now_ms += kIntervalMs;
        const auto out = g.tick(now_ms, rng);
        REQUIRE(out.size() == 1);
        CHECK(out[0].endpoint != "tcp://a");
        CHECK_FALSE(out[0].peer_id.empty());
    }
}

TEST_CASE("a small message budget defers entries but the cluster still converges") {
    GossipConfig config;
    config.entries_bytes_max = 1'000;  // about ten entries per ack
    SimCluster sim(3, config);
    sim.add("");
    for (int i = 1; i < 50; ++i) sim.add(sim.endpoint(0));
    int rounds = 0;
    auto full_views = [&] {
        for (size_t i = 0; i < sim.size(); ++i) {
            if (sim.node(i).view().size() != sim.size()) return false;
        }
        return true;
    };
    while (!full_views() && rounds < 200) {
        sim.round();
        ++rounds;
    }
    std::printf("bootstrap with a 1000-byte entry budget: N=50 full views after %d rounds\n",
                rounds);
    CHECK(full_views());
    uint64_t deferred = 0;
    for (size_t i = 0; i < sim.size(); ++i) deferred += sim.node(i).stats().entries_deferred;
    CHECK(deferred > 0);
}

TEST_CASE("the same seed gives the same views") {
    auto run = [](uint64_t seed) {
        SimCluster sim(seed);
        sim.add("");
        for (int i = 1; i < 20; ++i) sim.add(sim.endpoint(0));
        for (int r = 0; r < 15; ++r) sim.round();
        std::vector<MemberState> states;
        for (size_t i = 0; i < sim.size(); ++i) {
            for (const auto& [id, s] : sim.node(i).view().states()) states.push_back(s);
        }
        return states;
    };
    CHECK(run(5) == run(5));
    CHECK(run(5) != run(6));
}

TEST_CASE("a silent member becomes suspect, then down, then up when it speaks") {
    struct Case {
        size_t n;
        double phi_suspect;
        uint64_t suspect_to_down_ms;
    };
    for (const Case c : {Case{10, 8.0, 10'000}, Case{50, 8.0, 10'000}, Case{10, 4.0, 2'000},
                         Case{50, 4.0, 2'000}}) {
        const size_t n = c.n;
        GossipConfig config;
        config.detector.phi_suspect = c.phi_suspect;
        config.detector.suspect_to_down_ms = c.suspect_to_down_ms;
        SimCluster sim(42, config);
        for (size_t i = 0; i < n; ++i) sim.add("");
        sim.converge_directly();
        for (int r = 0; r < 30; ++r) sim.round();  // train the detectors
        for (size_t i = 1; i < n; ++i) REQUIRE(all_equal(sim.statuses_of(i), MemberStatus::up));

        const size_t victim = 3;
        sim.crash(victim);
        const uint64_t crashed_ms = sim.now_ms();
        std::optional<uint64_t> first_suspect_ms, all_suspect_or_down_ms, all_down_ms;
        while (!all_down_ms && sim.now_ms() - crashed_ms < 120'000) {
            sim.round();
            const auto statuses = sim.statuses_of(victim);
            const bool any_suspect = std::any_of(statuses.begin(), statuses.end(), [](auto s) {
                return s == MemberStatus::suspect || s == MemberStatus::down;
            });
            if (any_suspect && !first_suspect_ms) first_suspect_ms = sim.now_ms() - crashed_ms;
            const bool none_up = std::none_of(statuses.begin(), statuses.end(),
                                              [](auto s) { return s == MemberStatus::up; });
            if (none_up && !all_suspect_or_down_ms) {
                all_suspect_or_down_ms = sim.now_ms() - crashed_ms;
            }
            if (all_equal(statuses, MemberStatus::down)) all_down_ms = sim.now_ms() - crashed_ms;
        }
        REQUIRE(first_suspect_ms);
        REQUIRE(all_suspect_or_down_ms);
        REQUIRE(all_down_ms);
        // Not before phi could reach the threshold with a mean near one round...
        CHECK(*first_suspect_ms >= c.phi_suspect / 0.4342944819 * kIntervalMs);
        // ...and all down within phi's time at a generous mean of 2 rounds plus
        // the suspicion timeout and a few rounds of spread.
        const double phi_time_ms = c.phi_suspect * 2 * kIntervalMs / 0.4342944819;
        CHECK(*all_down_ms <= phi_time_ms + c.suspect_to_down_ms + 10 * kIntervalMs);
        std::printf(
            "failure detection: N=%zu phi=%.0f suspect_to_down=%.0fs interval=1s: first suspect "
            "%.0fs, all suspect %.0fs, all down %.0fs\n",
            n, c.phi_suspect, c.suspect_to_down_ms / 1000.0, *first_suspect_ms / 1000.0,
            *all_suspect_or_down_ms / 1000.0, *all_down_ms / 1000.0);

        // Speaking again (a newer heartbeat) brings it back up everywhere.
        sim.revive(victim);
        int rounds = 0;
        while (!all_equal(sim.statuses_of(victim), MemberStatus::up) && rounds < 100) {
            sim.round();
            ++rounds;
        }
        CHECK(all_equal(sim.statuses_of(victim), MemberStatus::up));
        CHECK(rounds <= 4 * std::log2(static_cast<double>(n)) + 10);
        CHECK(sim.node(victim).view().self().liveness == Liveness::alive);
    }
}

TEST_CASE("a live cluster raises no suspicion") {
    SimCluster sim(8);
    for (int i = 0; i < 50; ++i) sim.add("");
    sim.converge_directly();
    for (int r = 0; r < 200; ++r) sim.round();
    for (size_t i = 0; i < sim.size(); ++i) CHECK(all_equal(sim.statuses_of(i), MemberStatus::up));
}

TEST_CASE("a restarted node overrides its old entry through gossip") {
    SimCluster sim(11);
    for (int i = 0; i < 10; ++i) sim.add("");
    sim.converge_directly();
    for (int r = 0; r < 5; ++r) sim.round();
    // Node 0 leaves for good (incarnation 1), then a node with its id returns
    // with incarnation 2.
    MemberState left = sim.node(0).view().self();
    left.declared = MemberStatus::left;
    left.heartbeat += 1;
    for (size_t i = 1; i < sim.size(); ++i) sim.node(i).handle(GossipAck2{"x", {left}}, 0);
    CHECK(sim.node(5).view().find(sim.id(0))->status() == MemberStatus::left);
    MemberState reborn = left;
    reborn.declared = MemberStatus::up;
    reborn.incarnation = 2;
    reborn.heartbeat = 0;
    sim.node(1).handle(GossipAck2{"x", {reborn}}, 0);
    for (int r = 0; r < 20; ++r) sim.round();
    for (size_t i = 1; i < sim.size(); ++i) {
        CHECK(sim.node(i).view().find(sim.id(0))->incarnation >= 2);
        CHECK(sim.node(i).view().find(sim.id(0))->status() != MemberStatus::left);
    }
}

TEST_CASE("a fresh directory under a token holder's id never overtakes its earlier life") {
    // The earlier life ran a few rounds only (a low heartbeat), as a node
    // that dies soon after its join; the fresh one gossips far longer.
    SimCluster sim(17);
    for (int i = 0; i < 4; ++i) sim.add(i == 0 ? "" : sim.endpoint(0));
    sim.converge_directly();
    for (int r = 0; r < 5; ++r) sim.round();
    const std::string id = sim.id(3);
    const uint64_t earlier_heartbeat = sim.node(0).view().find(id)->heartbeat;
    REQUIRE(sim.node(0).view().find(id)->holds_tokens());
    sim.crash(3);
    for (int r = 0; r < 3; ++r) sim.round();
    sim.restart_fresh(3, 0);
    for (int r = 0; r < static_cast<int>(earlier_heartbeat) + 40; ++r) sim.round();
    // It heard of its earlier life and waits for its removal, silent.
    CHECK(sim.node(3).earlier_life_holds_tokens());
    CHECK(sim.node(3).view().self().heartbeat < earlier_heartbeat);
    for (size_t i = 0; i < 3; ++i) {
        const MemberState* seen = sim.node(i).view().find(id);
        REQUIRE(seen != nullptr);
        CHECK(seen->holds_tokens());                  // the ring keeps its ranges
        CHECK(seen->status() == MemberStatus::down);  // so it can be removed
    }
}

TEST_CASE("phi grows with silence relative to the mean interval") {
    FailureDetector fd(FailureDetectorConfig{});
    for (uint64_t t = 0; t <= 10'000; t += 500) fd.heard("a", t);
    CHECK(fd.mean_interval_ms("a") == Approx(500));
    CHECK(fd.phi("a", 10'000) == 0.0);
    CHECK(fd.phi("a", 10'500) == Approx(0.4343).epsilon(0.001));
    CHECK(fd.phi("a", 19'210) == Approx(8.0).epsilon(0.01));
    fd.heard("a", 60'000);  // an outage is not a sample
    CHECK(fd.mean_interval_ms("a") == Approx(500));
}

// ---- token claims -------------------------------------------------------------------

namespace {
// Share of keys each member replicates with n copies, from a ring of the claims.
std::vector<double> replica_load(const std::vector<NodeTokens>& nodes, uint32_t n) {
    std::vector<std::pair<std::string, std::vector<uint64_t>>> input;
    for (const auto& node : nodes) input.emplace_back(node.id, node.tokens);
    const kv::ring::Ring r = kv::ring::Ring::from_tokens(input);
    std::map<std::string, double> load;
    constexpr int kKeys = 20000;
    for (int k = 0; k < kKeys; ++k) {
        for (const auto& id : r.preference_list("key" + std::to_string(k), n))
            load[id] += 1.0 / kKeys;
    }
    std::vector<double> out;
    for (const auto& [id, l] : load) out.push_back(l);
    return out;
}
}  // namespace

TEST_CASE("token claims keep replica load and ring shares even through 10 joins") {
    // Bounds on the deviation from the mean, by vnodes: replica load with n = 3
    // (what a member stores and serves), first-replica share.
    const std::vector<std::tuple<uint32_t, double, double>> bounds = {{64, 0.15, 0.35},
                                                                      {256, 0.08, 0.20}};
    for (const auto& [vnodes, load_bound, share_bound] : bounds) {
        std::vector<NodeTokens> ring;
        double worst_load = 0;
        double worst_share = 0;
        for (int joins = 1; joins <= 11; ++joins) {
            const std::string id = "node" + std::to_string(joins);
            std::vector<uint64_t> tokens = claim_tokens(ring, id, vnodes, 3);
            REQUIRE(tokens.size() == vnodes);
            for (const auto& other : ring) {
                for (uint64_t t : tokens) {
                    CHECK_FALSE(std::binary_search(other.tokens.begin(), other.tokens.end(), t));
                }
            }
            CHECK(claim_tokens(ring, id, vnodes, 3) == tokens);  // deterministic
            ring.push_back(NodeTokens{id, tokens});
            const std::vector<double> shares = token_ownership(ring);
            const double mean = 1.0 / ring.size();
            double sum = 0;
            for (double s : shares) {
                INFO(ring.size() << " members, vnodes " << vnodes);
                CHECK(std::abs(s - mean) <= share_bound * mean);
                worst_share = std::max(worst_share, std::abs(s - mean) / mean);
                sum += s;
            }
            CHECK(sum == Approx(1.0));
            if (ring.size() <= 3) continue;  // every member replicates every key
            const double load_mean = 3.0 / ring.size();
            for (double l : replica_load(ring, 3)) {
                INFO(ring.size() << " members, vnodes " << vnodes);
                CHECK(std::abs(l - load_mean) <= load_bound * load_mean);
                worst_load = std::max(worst_load, std::abs(l - load_mean) / load_mean);
            }
        }
        std::printf(
            "token claim: vnodes=%u, 1..11 nodes, worst n=3 load deviation %.1f%%, worst share "
            "deviation %.1f%% of mean\n",
            vnodes, 100 * worst_load, 100 * worst_share);
    }
}

TEST_CASE("token_ownership agrees with ring::Ring on hashed tokens") {
    std::vector<std::string> ids = {"b", "a", "c", "d"};
    std::vector<NodeTokens> nodes;
    for (const auto& id : ids) nodes.push_back(NodeTokens{id, default_tokens(id, 32)});
    const std::vector<double> mine = token_ownership(nodes);
    const kv::ring::Ring ring(ids, 32);
    const std::vector<double> theirs = ring.ownership();  // by sorted id
    REQUIRE(theirs.size() == 4);
    for (size_t i = 0; i < ids.size(); ++i) {
        const size_t sorted_index = static_cast<size_t>(
            std::find(ring.nodes().begin(), ring.nodes().end(), ids[i]) - ring.nodes().begin());
        CHECK(mine[i] == Approx(theirs[sorted_index]).epsilon(1e-9));
    }
    // And the hashed tokens are exactly the ring's.
    std::vector<uint64_t> ring_tokens;
    for (const auto& t : ring.tokens()) {
        if (ring.nodes()[t.node_index] == "c") ring_tokens.push_back(t.position);
    }
    CHECK(ring_tokens == default_tokens("c", 32));
}

TEST_CASE("two changes announced at once: one goes, the other after it completes") {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
        SimCluster c(seed);
        for (int i = 0; i < 4; ++i) c.add(i == 0 ? "" : "sim://n1000");
        c.converge_directly();
        c.node(1).announce_change();
        c.node(2).announce_change();
        auto goes = [&](size_t i) {
            return c.node(i).change_turn().state == ChangeTurn::State::go;
        };
        int rounds = 0;
        while (!goes(1) && !goes(2) && rounds < 50) {
            c.round();
            ++rounds;
        }
        INFO("seed " << seed);
        REQUIRE((goes(1) || goes(2)));
        // Never both: each saw the other's ticket acknowledged before going.
        const size_t first = goes(1) ? 1 : 2;
        const size_t second = first == 1 ? 2 : 1;
        CHECK_FALSE(goes(second));
        c.node(first).declare(MemberStatus::leaving);
        for (int r = 0; r < 10; ++r) {
            c.round();
            CHECK_FALSE(goes(second));
        }
        CHECK(c.node(second).change_turn().waiting_for.find(c.id(first)) == 0);
        c.node(first).declare(MemberStatus::left);  // completes: the ticket is cleared
        rounds = 0;
        while (!goes(second) && rounds < 50) {
            c.round();
            ++rounds;
        }
        CHECK(goes(second));
    }
}

TEST_CASE("a change waits for the acknowledgement of a silent token holder") {
    SimCluster c(5);
    for (int i = 0; i < 3; ++i) c.add(i == 0 ? "" : "sim://n1000");
    c.converge_directly();
    c.crash(2);
    c.node(1).announce_change();
    for (int r = 0; r < 40; ++r) c.round();
    const ChangeTurn waiting = c.node(1).change_turn();
    CHECK(waiting.state == ChangeTurn::State::waiting);
    CHECK(waiting.waiting_for == "acknowledgement from " + c.id(2));
    CHECK(c.node(1).change_acknowledged_by() == std::vector<std::string>{c.id(0)});
    c.revive(2);
    int rounds = 0;
    while (c.node(1).change_turn().state != ChangeTurn::State::go && rounds < 50) {
        c.round();
        ++rounds;
    }
    CHECK(c.node(1).change_turn().state == ChangeTurn::State::go);
    // Withdrawn, the ticket is gone from every view in a few rounds.
    c.node(1).withdraw_change();
    for (int r = 0; r < 10; ++r) c.round();
    CHECK(c.node(0).view().find(c.id(1))->change_ticket == 0);
}

TEST_CASE("a removal goes without the removed member's acknowledgement, one change at a time") {
    SimCluster c(9);
    for (int i = 0; i < 4; ++i) c.add(i == 0 ? "" : "sim://n1000");
    c.converge_directly();
    c.crash(3);
    for (int r = 0; r < 5; ++r) c.round();
    // A leave waits for the dead member's acknowledgement forever ...
    c.node(2).announce_change();
    // ... the removal of that member does not.
    c.node(1).announce_removal(c.id(3));
    CHECK(c.node(1).removal_target() == c.id(3));
    int rounds = 0;
    while (c.node(1).change_turn().state != ChangeTurn::State::go && rounds < 50) {
        c.round();
        ++rounds;
    }
    REQUIRE(c.node(1).change_turn().state == ChangeTurn::State::go);
    CHECK(c.node(2).change_turn().state == ChangeTurn::State::waiting);
    REQUIRE(c.node(1).start_removal());
    for (int r = 0; r < 10; ++r) c.round();
    for (size_t i : {0, 1, 2}) {
        const MemberState* s = c.node(i).view().find(c.id(3));
        CHECK(s->declared == MemberStatus::leaving);
        CHECK(s->removed_by == c.id(1));
        CHECK(c.node(i).view().active_change() == c.id(3));
    }
    CHECK(c.node(2).change_turn().waiting_for == c.id(3) + "'s leave (under way)");
    // The dead member comes back with its old state: it hears it was removed,
    // and its old life does not override the removal anywhere.
    c.revive(3);
    for (int r = 0; r < 10; ++r) c.round();
    CHECK(c.node(3).removed_by() == c.id(1));
    for (size_t i : {0, 1, 2}) CHECK(c.node(i).view().find(c.id(3))->removed_by == c.id(1));
    c.crash(3);
    // Completed, the member is left; the ticket goes and the leave's turn comes.
    REQUIRE(c.node(1).complete_removal(c.id(3)));
    c.node(1).withdraw_change();
    CHECK(c.node(1).removal_target().empty());
    rounds = 0;
    while (c.node(2).change_turn().state != ChangeTurn::State::go && rounds < 50) {
        c.round();
        ++rounds;
    }
    CHECK(c.node(2).change_turn().state == ChangeTurn::State::go);
    for (int r = 0; r < 10; ++r) c.round();
    for (size_t i : {0, 1, 2}) {
        CHECK(c.node(i).view().find(c.id(3))->status() == MemberStatus::left);
    }
}

TEST_CASE(
    "a change that lacks the acknowledgement of a member down says so; its removal does not") {
    SimCluster c(13);
    for (int i = 0; i < 4; ++i) c.add(i == 0 ? "" : "sim://n1000");
    c.converge_directly();
    c.node(2).announce_change();
    CHECK(c.node(2).change_needs_down_member().empty());  // all alive
    c.crash(3);
    int rounds = 0;
    while (c.node(2).view().find(c.id(3))->status() != MemberStatus::down && rounds < 200) {
        c.round();
        ++rounds;
    }
    REQUIRE(c.node(2).view().find(c.id(3))->status() == MemberStatus::down);
    // Acknowledged by n1000 and n1001 by now, not by the dead n1003.
    CHECK(c.node(2).change_needs_down_member() == c.id(3));
    c.node(2).withdraw_change();
    CHECK(c.node(2).change_needs_down_member() == c.id(3));  // before announcing, too
    c.node(1).announce_removal(c.id(3));
    CHECK(c.node(1).change_needs_down_member().empty());
}

// ---- counter overflow (issue 11) ------------------------------------------------

TEST_CASE("a claim about a node itself at the top of the counter range cannot wrap it") {
    ClusterView self(member("me", 7, 3), 64);
    self.merge(member("me", UINT64_MAX - 1, 0, MemberStatus::left));
    self.merge(member("me", UINT64_MAX, UINT64_MAX, MemberStatus::left));
    // Its incarnation never wrapped, never reached a value its next start
    // cannot raise, and it still says it is up.
    CHECK(self.self().incarnation >= 7);
    CHECK(self.self().incarnation < UINT64_MAX - 1);
    CHECK(self.self().heartbeat < UINT64_MAX);
    CHECK(self.self().declared == MemberStatus::up);
    // A sane claim of a later life is still refuted.
    CHECK(self.merge(member("me", 20, 0, MemberStatus::left)).refuted);
    CHECK(self.self().incarnation == 21);
}

TEST_CASE("an entry with an absurd incarnation or heartbeat cannot evict a member") {
    ClusterView view = observer();
    REQUIRE(view.merge(member("x", 5, 9)).changed);
    CHECK_FALSE(view.merge(member("x", UINT64_MAX, 0, MemberStatus::left)).changed);
    CHECK_FALSE(view.merge(member("x", 5, UINT64_MAX, MemberStatus::left)).changed);
    // A jump far above what is known is refused too, so the top of the range
    // cannot be reached a step at a time either.
    CHECK_FALSE(view.merge(member("x", 5 + (uint64_t{1} << 40), 0, MemberStatus::left)).changed);
    CHECK(view.find("x")->declared == MemberStatus::up);
    CHECK(view.find("x")->incarnation == 5);
    // A member's real next life still gets in.
    CHECK(view.merge(member("x", 6, 0, MemberStatus::left)).changed);
}

TEST_CASE("codec refuses counters beyond the sane bound") {
    GossipAck2 ack{"n1", {member("x", UINT64_MAX, 0, MemberStatus::left)}};
    CHECK_FALSE(decode(encode(GossipMessage{ack})).ok());
    GossipSyn syn{
        "n1", "tcp://n1", {DigestEntry{"x", 1, UINT64_MAX, MemberStatus::up, Liveness::alive}}};
    CHECK_FALSE(decode(encode(GossipMessage{syn})).ok());
    ack.entries[0].incarnation = 3;
    CHECK(decode(encode(GossipMessage{ack})).ok());
}
