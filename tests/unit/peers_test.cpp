// Peers (node/membership/peers.h): liveness of the other members as the
// coordinator and the rebalancer see it, driven without a cluster.
#include <catch2/catch.hpp>

#include "node/membership/peers.h"
#include "tests/unit/component_env.h"

using namespace kv;
using namespace kv::node;
using kv::test::ComponentEnv;

namespace {

NodeConfig config() {
    NodeConfig c;
    c.node_id = "a";
    c.ping_interval_ms = 1000;
    c.peer_down_after_ms = 3000;
    return c;
}

// The messages sent since the last call, as (peer, message).
std::vector<std::pair<std::string, Message>> sent(ComponentEnv& env) {
    auto out = env.commit();
    REQUIRE(out.ok());
    std::vector<std::pair<std::string, Message>> messages;
    for (auto& o : out.value()) {
        messages.emplace_back(o.to_peer ? o.peer_id : o.reply_to.route, std::move(o.message));
    }
    return messages;
}

}  // namespace

TEST_CASE("a peer never heard from is reachable for the detection window after start only") {
    ComponentEnv env;
    const NodeConfig c = config();
    RequestIds ids;
    Peers peers(c, env, ids);
    env.now_ms_value = 10'000;
    peers.start(env.now_ms_value, nullptr);
    CHECK(peers.reachable("a"));  // itself, always
    CHECK(peers.reachable("b"));
    CHECK(peers.last_seen_ms_ago("b") == UINT64_MAX);
    env.now_ms_value += 2999;
    CHECK(peers.reachable("b"));
    env.now_ms_value += 1;
    CHECK_FALSE(peers.reachable("b"));
    CHECK(peers.reachable("a"));
}

TEST_CASE("hearing from a peer keeps it reachable until it has been silent too long") {
    ComponentEnv env;
    const NodeConfig c = config();
    RequestIds ids;
    Peers peers(c, env, ids);
    peers.start(env.now_ms_value, nullptr);
    env.now_ms_value += 10'000;
    CHECK_FALSE(peers.reachable("b"));
    peers.heard_from("b");
    CHECK(peers.reachable("b"));
    env.now_ms_value += 3000;
    CHECK(peers.reachable("b"));
    CHECK(peers.last_seen_ms_ago("b") == 3000);
    env.now_ms_value += 1;
    CHECK_FALSE(peers.reachable("b"));
}

TEST_CASE("gossip's down verdict wins over a recent reply") {
    ComponentEnv env;
    const NodeConfig c = config();
    RequestIds ids;
    gossip::MemberState self;
    self.id = "a";
    self.declared = gossip::MemberStatus::up;
    self.incarnation = 1;
    gossip::ClusterView view(self, 16);
    gossip::MemberState b;
    b.id = "b";
    b.declared = gossip::MemberStatus::up;
    b.incarnation = 1;
    view.merge(b);
    Peers peers(c, env, ids);
    peers.start(env.now_ms_value, &view);
    peers.heard_from("b");
    CHECK(peers.reachable("b"));
    view.raise_liveness("b", gossip::Liveness::down);
    CHECK_FALSE(peers.reachable("b"));
}

TEST_CASE("every other member is pinged once per interval; pings are answered") {
    ComponentEnv env;
    const NodeConfig c = config();
    RequestIds ids;
    ids.start(2);
    Peers peers(c, env, ids);
    gossip::StaticMembership members({{"a", "tcp://a"}, {"b", "tcp://b"}, {"c", "tcp://c"}});
    peers.start(env.now_ms_value, nullptr);
    peers.tick(members);
    auto first = sent(env);
    REQUIRE(first.size() == 2);
    CHECK(first[0].first == "b");
    CHECK(first[1].first == "c");
    CHECK(std::get<PingRequest>(first[0].second).from_node == "a");
    CHECK(node::request_id(first[0].second) != node::request_id(first[1].second));
    env.now_ms_value += 999;
    peers.tick(members);
    CHECK(sent(env).empty());
    env.now_ms_value += 1;
    peers.tick(members);
    CHECK(sent(env).size() == 2);

    // A ping from a member counts as hearing from it; one from a stranger does not.
    env.now_ms_value += 10'000;
    peers.handle(ReplyTo{"route-b"}, PingRequest{7, "b"}, members);
    peers.handle(ReplyTo{"route-x"}, PingRequest{8, "x"}, members);
    auto pongs = sent(env);
    REQUIRE(pongs.size() == 2);
    CHECK(pongs[0].first == "route-b");
    CHECK(std::get<PingResponse>(pongs[0].second).node_id == "a");
    CHECK(node::request_id(pongs[1].second) == 8);
    CHECK(peers.reachable("b"));
    CHECK_FALSE(peers.reachable("x"));
}
