// HintReplay (node/hints/hint_replay.h) driven by hand: batches go only to a
// target that is reachable, at the rate limit; a hint is deleted only when the
// target answered ok and the hint did not change since; keys the target says
// it does not own, and hints for a member that is not in the ring, go to the
// key's current home replicas.
#include <catch2/catch.hpp>

#include "node/hints/hint_replay.h"
#include "node/replica/handoffs.h"
#include "tests/unit/component_env.h"

using namespace kv;
using namespace kv::node;
using kv::test::ComponentEnv;
using kv::test::minted_object;

namespace {

struct Fixture {
    Fixture()
        : membership({{"a", "tcp://a"}, {"b", "tcp://b"}, {"c", "tcp://c"}}),
          placement("a", 3, 16),
          handoffs(env),
          hints(config(), env, stats),
          replica(config(), env, placement, handoffs, hints),
          peers(config(), env, ids),
          replay(config(), env, ids, stats, placement, peers, replica, hints) {
        placement.refresh(membership, nullptr);
        replica.set_actor("a.1");
        ids.start(2);
        REQUIRE(hints.load().ok());
        peers.start(env.now_ms(), nullptr);  // every peer reachable for the detection window
    }
    static const NodeConfig& config() {
        static const NodeConfig c = [] {
            NodeConfig c;
            c.node_id = "a";
            c.hint_replay_keys_per_s = 1000;
            c.hint_replay_batch_keys = 2;
            // Longer than the transfer timeout: peers stay reachable across it.
            c.peer_down_after_ms = 20000;
            return c;
        }();
        return c;
    }
    // The replay batches sent, once staged writes committed.
    std::vector<std::pair<std::string, HintReplayRequest>> sent() {
        auto out = env.commit();
        REQUIRE(out.ok());
        std::vector<std::pair<std::string, HintReplayRequest>> batches;
        for (auto& o : out.value()) {
            if (auto* r = std::get_if<HintReplayRequest>(&o.message))
                batches.emplace_back(o.peer_id, std::move(*r));
        }
        return batches;
    }
    void add(const std::string& target, const std::string& key, const std::string& value) {
        REQUIRE(hints.add(target, key, minted_object("x.1", value), ring::Range{0, 0}).ok());
    }

    ComponentEnv env;
    NodeStats stats;
    gossip::StaticMembership membership;
    Placement placement;
    Handoffs handoffs;
    HintStore hints;
    Replica replica;
    RequestIds ids;
    Peers peers;
    HintReplay replay;
};

}  // namespace

TEST_CASE("hints go to their target in batches at the rate limit, deleted once it answered ok") {
    Fixture f;
    f.add("b", "k1", "v1");
    f.add("b", "k2", "v2");
    f.add("b", "k3", "v3");
    f.replay.tick(f.env.now_ms());
    auto first = f.sent();
    REQUIRE(first.size() == 1);
    CHECK(first[0].first == "b");
    CHECK(first[0].second.keys == std::vector<std::string>{"k1", "k2"});
    CHECK(f.replay.replaying("b"));
    // One batch in flight per target: nothing more until it is answered.
    f.replay.tick(f.env.now_ms());
    CHECK(f.sent().empty());

    REQUIRE(f.replay.on_reply("b", HintReplayResponse{first[0].second.id, ErrorCode::ok, {}, {}}));
    CHECK(f.hints.summary().keys == 1);
    CHECK(f.stats.hints_replayed == 2);
    // 2 keys at 1000 keys/s: the next batch waits 2 ms.
    f.env.now_ms_value += 1;
    f.replay.tick(f.env.now_ms());
    CHECK(f.sent().empty());
    f.env.now_ms_value += 1;
    f.replay.tick(f.env.now_ms());
    auto second = f.sent();
    REQUIRE(second.size() == 1);
    CHECK(second[0].second.keys == std::vector<std::string>{"k3"});
}

TEST_CASE("a failed batch, or a hint that changed while out, is kept and sent again") {
    Fixture f;
    f.add("b", "k1", "v1");
    f.replay.tick(f.env.now_ms());
    auto first = f.sent();
    REQUIRE(first.size() == 1);
    REQUIRE(f.replay.on_reply(
        "b", HintReplayResponse{first[0].second.id, ErrorCode::storage_error, "disk", {}}));
    CHECK(f.hints.summary().keys == 1);

    f.env.now_ms_value += f.config().transfer_retry_ms;
    f.replay.tick(f.env.now_ms());
    auto second = f.sent();
    REQUIRE(second.size() == 1);
    f.add("b", "k1", "newer");  // merged into the hint while the batch is out
    REQUIRE(f.replay.on_reply("b", HintReplayResponse{second[0].second.id, ErrorCode::ok, {}, {}}));
    CHECK(f.hints.summary().keys == 1);
    CHECK(f.stats.hints_replayed == 0);

    // An unanswered batch is sent again after the transfer timeout.
    f.env.now_ms_value += 10;
    f.replay.tick(f.env.now_ms());
    auto third = f.sent();
    REQUIRE(third.size() == 1);
    f.env.now_ms_value += f.config().transfer_timeout_ms;
    f.replay.tick(f.env.now_ms());
    CHECK(f.sent().size() == 1);
}

TEST_CASE("a target that is not reachable gets nothing") {
    Fixture f;
    f.add("b", "k1", "v1");
    f.env.now_ms_value += f.config().peer_down_after_ms + 1;  // never heard from b or c
    f.replay.tick(f.env.now_ms());
    CHECK(f.sent().empty());
    f.peers.heard_from("b");
    f.replay.tick(f.env.now_ms());
    CHECK(f.sent().size() == 1);
}

TEST_CASE("keys the target does not own, and hints for a member not in the ring, go to the homes") {
    Fixture f;
    // "z" is no member: its hint goes to the key's homes (a, b, c): merged
    // here, and kept as a hint for b and for c.
    f.add("z", "k1", "v1");
    f.replay.tick(f.env.now_ms());
    f.sent();
    CHECK(f.hints.targets() == std::vector<std::string>{"b", "c"});
    auto local = f.replica.load("k1");
    REQUIRE(local.ok());
    CHECK(local->live_values() == std::vector<std::string>{"v1"});

    // b answers that it does not own k1 now while this node's ring says it
    // does: the rings differ for now, and the hint stays for b.
    f.replay.tick(f.env.now_ms());
    auto batches = f.sent();
    REQUIRE(batches.size() == 2);
    for (const auto& [target, req] : batches) {
        REQUIRE(f.replay.on_reply(target, HintReplayResponse{req.id, ErrorCode::ok, {}, {"k1"}}));
    }
    CHECK(f.hints.summary().keys == 2);
}
