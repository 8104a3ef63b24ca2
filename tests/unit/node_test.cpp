// The Node state machine, driven by the deterministic simulated cluster.
#include <algorithm>
#include <catch2/catch.hpp>

#include "sim/cluster.h"
#include "tests/unit/sim_calls.h"

using namespace kv;
using namespace kv::test;

TEST_CASE("a single node puts, gets and deletes") {
    auto o = options(1);
    o.node_config.n_replicas = 1;  // quorum of n = 3 needs 2 members
    sim::Cluster c(o);
    CHECK(get(c, 0, "a").code == ErrorCode::not_found);
    auto w = put(c, 0, "a", "1");
    REQUIRE(w.code == ErrorCode::ok);
    CHECK(w.info.replicas_answered == 1);
    auto r = get(c, 0, "a");
    REQUIRE(r.code == ErrorCode::ok);
    CHECK(r.values == Values{"1"});
    CHECK(put(c, 0, "a", "2", level(proto::Level::one), r.context).code == ErrorCode::ok);
    CHECK(get(c, 0, "a").values == Values{"2"});
    CHECK(del(c, 0, "a").code == ErrorCode::ok);
    auto gone = get(c, 0, "a");
    CHECK(gone.code == ErrorCode::not_found);
    CHECK(gone.values.empty());
    CHECK_FALSE(gone.context.empty());  // a later put can supersede the tombstone
}

// Issue 10: levels are judged against the configured n, not against how many
// members the ring has: a 1-node cluster with n = 3 once acknowledged quorum
// and all writes with one copy (n followed the ring: min(3, 1) = 1).
TEST_CASE("a cluster smaller than n answers unavailable for levels it cannot meet") {
    auto o = options(1);
    o.node_config.n_replicas = 3;
    sim::Cluster one(o);
    for (auto l : {proto::Level::quorum, proto::Level::all, proto::Level::two}) {
        auto w = put(one, 0, "k", "v", level(l));
        INFO(proto::level_name(l) << ": " << w.message);
        CHECK(w.code == ErrorCode::unavailable);
        CHECK(w.message.find("of n=3") != std::string::npos);
        CHECK(w.message.find("1 member") != std::string::npos);
        CHECK(get(one, 0, "k", level(l)).code == ErrorCode::unavailable);
        CHECK(del(one, 0, "k", std::nullopt, level(l)).code == ErrorCode::unavailable);
    }
    CHECK(one.stored_object(0, "k").value() == std::nullopt);  // nothing written
    REQUIRE(put(one, 0, "k", "v", level(proto::Level::one)).code == ErrorCode::ok);
    CHECK(get(one, 0, "k", level(proto::Level::one)).values == Values{"v"});
    // More than n is still a bad request, not a matter of members.
    auto four =
        call(one, 0, proto::GetRequest{0, "k", proto::Consistency{proto::Level::one, 4, false}, 0});
    CHECK(std::get<proto::GetResponse>(four).code == ErrorCode::invalid_argument);

    o = options(2);
    o.node_config.n_replicas = 3;
    sim::Cluster two(o);
    CHECK(put(two, 0, "k", "v", level(proto::Level::all)).code == ErrorCode::unavailable);
    auto w = put(two, 0, "k", "v", level(proto::Level::quorum));  // 2 of n=3: both members
    REQUIRE(w.code == ErrorCode::ok);
    CHECK(w.info.replicas_answered == 2);
    CHECK(get(two, 1, "k", level(proto::Level::quorum)).values == Values{"v"});
    CHECK(get(two, 1, "k", level(proto::Level::all)).code == ErrorCode::unavailable);
}

TEST_CASE("status reports the configured n and the n the ring gives") {
    auto o = options(2);
    o.node_config.n_replicas = 3;
    sim::Cluster c(o);
    auto status = std::get<proto::StatusResponse>(call(c, 0, proto::StatusRequest{}));
    CHECK(status.n_replicas == 3);
    CHECK(status.n_effective == 2);
    sim::Cluster three(options(3));
    status = std::get<proto::StatusResponse>(call(three, 1, proto::StatusRequest{}));
    CHECK(status.n_replicas == 3);
    CHECK(status.n_effective == 3);
}

TEST_CASE("a quorum write is on every replica and readable through any node") {
    sim::Cluster c(options(3));
    auto w = put(c, 0, "k", "v");
    REQUIRE(w.code == ErrorCode::ok);
    CHECK(w.info.replicas_asked == 3);
    CHECK(w.info.replicas_answered >= 2);
    for (size_t i = 0; i < 3; ++i) {
        auto r = get(c, i, "k");
        REQUIRE(r.code == ErrorCode::ok);
        CHECK(r.values == Values{"v"});
    }
    c.run_for(100);
    for (size_t i = 0; i < 3; ++i) CHECK(local_get(c, i, "k").values == Values{"v"});
}

TEST_CASE("concurrent blind writes become siblings; a write with the context resolves them") {
    sim::Cluster c(options(3));
    REQUIRE(put(c, 0, "k", "x").code == ErrorCode::ok);
    REQUIRE(put(c, 1, "k", "y").code == ErrorCode::ok);
    auto r = get(c, 2, "k", level(proto::Level::all));
    REQUIRE(r.code == ErrorCode::ok);
    std::sort(r.values.begin(), r.values.end());
    CHECK(r.values == Values{"x", "y"});
    CHECK(r.info.sibling_count == 2);
    REQUIRE(put(c, 2, "k", "xy", level(proto::Level::all), r.context).code == ErrorCode::ok);
    for (size_t i = 0; i < 3; ++i) CHECK(get(c, i, "k").values == Values{"xy"});
}

TEST_CASE("a write with an old context stays concurrent with what it did not see") {
    sim::Cluster c(options(3));
    REQUIRE(put(c, 0, "k", "a").code == ErrorCode::ok);
    auto first = get(c, 0, "k");
    REQUIRE(put(c, 1, "k", "b", level(proto::Level::quorum), first.context).code == ErrorCode::ok);
    // Stale context: saw "a" but not "b".
    REQUIRE(put(c, 2, "k", "c", level(proto::Level::quorum), first.context).code == ErrorCode::ok);
    auto r = get(c, 0, "k", level(proto::Level::all));
    std::sort(r.values.begin(), r.values.end());
    CHECK(r.values == Values{"b", "c"});
}

TEST_CASE("a write_reply context covers only what the writer saw and its own write") {
    sim::Cluster c(options(3));
    // Two blind puts race: neither saw the other, both are acknowledged.
    const auto x = put(c, 0, "k", "x");
    REQUIRE(x.code == ErrorCode::ok);
    const auto y = put(c, 1, "k", "y");
    REQUIRE(y.code == ErrorCode::ok);
    REQUIRE_FALSE(y.context.empty());
    // The second writer reuses its write_reply context: "y" is superseded,
    // "x" (which it never saw) must survive as a sibling.
    REQUIRE(put(c, 1, "k", "y2", level(proto::Level::quorum), y.context).code == ErrorCode::ok);
    auto r = get(c, 2, "k", level(proto::Level::all));
    std::sort(r.values.begin(), r.values.end());
    CHECK(r.values == Values{"x", "y2"});
    // And the first writer's context still supersedes only its own "x".
    REQUIRE(put(c, 0, "k", "x2", level(proto::Level::quorum), x.context).code == ErrorCode::ok);
    r = get(c, 2, "k", level(proto::Level::all));
    std::sort(r.values.begin(), r.values.end());
    CHECK(r.values == Values{"x2", "y2"});
    // A blind delete's reply covers what its minting replica held: a put with
    // it supersedes the tombstone and everything the delete removed.
    auto d = del(c, 2, "k", std::nullopt, level(proto::Level::all));
    REQUIRE(d.code == ErrorCode::ok);
    REQUIRE(put(c, 2, "k", "z", level(proto::Level::all), d.context).code == ErrorCode::ok);
    CHECK(get(c, 0, "k", level(proto::Level::all)).values == Values{"z"});
}

// Sends a put with a deadline to node `i` without waiting for its reply.
void send_put(sim::Cluster& c, size_t i, const std::string& key, const std::string& value,
              uint64_t deadline_ms) {
    c.client_send(
        i, "late",
        proto::PutRequest{1, key, value, std::nullopt, level(proto::Level::all), deadline_ms});
}

size_t index_of(sim::Cluster& c, const std::string& id) {
    for (size_t i = 0; i < c.size(); ++i) {
        if (c.node_id(i) == id) return i;
    }
    FAIL("no node " << id);
    return 0;
}

TEST_CASE("a replica request that waited past its budget is not applied") {
    auto o = options(4);
    o.node_config.n_replicas = 3;
    // The request alone: with hinted handoff the coordinator would keep a hint
    // for the replica that did not acknowledge, and replay it later.
    o.node_config.hinted_handoff = false;
    sim::Cluster c(o);
    // A key that n1 does not replicate, so n1 asks a peer to mint it.
    std::string key;
    for (int i = 0; key.empty(); ++i) {
        const std::string k = "k" + std::to_string(i);
        const auto replicas = c.node(0).ring().preference_list(k, 3);
        if (std::find(replicas.begin(), replicas.end(), "n1") == replicas.end()) key = k;
    }
    const auto replicas = c.node(0).ring().preference_list(key, 3);
    const size_t minter = index_of(c, replicas[0]);
    const size_t other = index_of(c, replicas[1]);

    // Stalls node `paused` for 2 s (with whatever reaches it queued), sends a
    // put with a 300 ms deadline through n1 and returns its answer's code.
    auto late_put = [&](size_t paused) {
        c.pause(paused, 2000);
        send_put(c, 0, key, "late", 300);
        c.run_for(3000);
        auto replies = c.take_replies("late");
        REQUIRE(replies.size() == 1);
        return std::get<proto::WriteResponse>(replies[0]).code;
    };
    SECTION("the mint") {
        // The minting replica stalls past the deadline with the request in its queue.
        CHECK(late_put(minter) == ErrorCode::timeout);
        for (size_t i = 0; i < c.size(); ++i) {
            INFO("node " << c.node_id(i));
            CHECK(local_get(c, i, key).code == ErrorCode::not_found);
        }
    }
    SECTION("the replication") {
        // The mint happens in time; one replica stalls with the merge in its queue.
        CHECK(late_put(other) == ErrorCode::timeout);
        CHECK(local_get(c, minter, key).values == Values{"late"});
        CHECK(local_get(c, other, key).code == ErrorCode::not_found);
    }
    SECTION("the coordinator") {
        // The coordinator itself stalls with the client's request in its queue.
        CHECK(late_put(0) == ErrorCode::timeout);
        for (size_t i = 0; i < c.size(); ++i) {
            INFO("node " << c.node_id(i));
            CHECK(local_get(c, i, key).code == ErrorCode::not_found);
        }
    }
}

TEST_CASE("with one replica down, quorum works, all fails naming 2 of 3, and heals after restart") {
    // Read repair alone (hinted_handoff_test has the hint that would heal it
    // first; anti_entropy_test the exchange that would).
    auto o = options(3);
    o.node_config.hinted_handoff = false;
    o.node_config.anti_entropy = false;
    sim::Cluster c(o);
    REQUIRE(put(c, 0, "k", "v1").code == ErrorCode::ok);
    c.crash(2);
    c.run_for(4000);  // past peer_down_after_ms: n3 is known unreachable
    auto w = put(c, 0, "k", "v2", level(proto::Level::quorum), get(c, 0, "k").context);
    REQUIRE(w.code == ErrorCode::ok);
    CHECK(get(c, 1, "k").values == Values{"v2"});
    auto all = put(c, 0, "k2", "x", level(proto::Level::all));
    CHECK(all.code == ErrorCode::unavailable);
    CHECK_THAT(all.message, Catch::Contains("2 of 3"));
    CHECK(get(c, 0, "k2", level(proto::Level::all)).code == ErrorCode::unavailable);

    c.restart(2);
    c.run_for(2000);                                     // pings find n3 again
    CHECK(local_get(c, 2, "k").values == Values{"v1"});  // missed v2
    auto r = get(c, 0, "k", level(proto::Level::all));
    INFO(r.message);
    REQUIRE(r.code == ErrorCode::ok);
    CHECK(r.values == Values{"v2"});
    // At `all` the answer waits for read repair: n3 holds v2 now.
    CHECK(local_get(c, 2, "k").values == Values{"v2"});
}

TEST_CASE("a write that cannot reach its level before the deadline times out, naming counts") {
    sim::Cluster c(options(3));
    c.run_for(10);
    c.crash(2);  // not yet detected: the coordinator asks it and waits
    auto m =
        call(c, 0, proto::PutRequest{0, "k", "v", std::nullopt, level(proto::Level::all), 500});
    auto w = std::get<proto::WriteResponse>(m);
    CHECK(w.code == ErrorCode::timeout);
    CHECK_THAT(w.message, Catch::Contains("2 of 3"));
    CHECK(w.info.replicas_answered == 2);
}

namespace {
// 3 nodes repaired by read repair alone (no hints, no anti-entropy).
sim::ClusterOptions read_repair_only() {
    auto o = options(3);
    o.node_config.hinted_handoff = false;
    o.node_config.anti_entropy = false;
    return o;
}

// n2 misses the quorum write of k = v: down while it is made, back up after.
void n2_misses_a_write(sim::Cluster& c) {
    c.crash(1);
    c.run_for(4000);  // past peer_down_after_ms: n2 is known unreachable
    REQUIRE(put(c, 0, "k", "v").code == ErrorCode::ok);
    c.restart(1);
    c.run_for(2000);  // pings find n2 again
}
}  // namespace

TEST_CASE("read repair brings a stale replica up to date after a quorum read") {
    auto o = read_repair_only();
    // Every replica asked: the read meets the stale one whichever two it needs.
    o.node_config.read_all_replicas = true;
    sim::Cluster c(o);
    n2_misses_a_write(c);
    CHECK(local_get(c, 1, "k").code == ErrorCode::not_found);
    auto r = get(c, 0, "k");
    CHECK(r.values == Values{"v"});
    CHECK(r.info.replicas_asked == 3);
    c.run_for(200);
    CHECK(local_get(c, 1, "k").values == Values{"v"});
    CHECK(c.node(0).stats().read_repairs >= 1);
}

uint64_t spares_asked(sim::Cluster& c) {
    uint64_t sum = 0;
    for (size_t i = 0; i < 3; ++i) sum += c.node(i).stats().read_spares_asked;
    return sum;
}

TEST_CASE("a node keeps its actor across a clean stop and mints as a new one after a crash") {
    sim::Cluster c(options(3));
    const std::string first = c.node(0).actor();
    c.stop(0);
    c.restart(0);
    CHECK(c.node(0).actor() == first);
    c.crash(0);
    c.restart(0);
    const std::string second = c.node(0).actor();
    CHECK(second != first);
    CHECK(second.rfind("n1.", 0) == 0);
    c.crash(0);
    c.restart(0);
    CHECK(c.node(0).actor() != second);
    CHECK(c.node(0).actor() != first);
}

TEST_CASE(
    "a write's merges leave before its coordinator's commit, and a crash then reuses no dot") {
    auto o = options(3);
    o.node_config.anti_entropy = false;  // the versions stay where the writes left them
    sim::Cluster c(o);
    // n1's commit fails, so it stops; the merges it sent ahead of that commit
    // reach n2 and n3, which make v1 durable although n1 never held it.
    c.fail_commits(0, 60000);
    c.client_send(0, "lost",
                  proto::PutRequest{1, "k", "v1", std::nullopt, level(proto::Level::quorum), 0});
    REQUIRE(c.run_until([&] { return !c.is_up(0); }, 1000));
    c.run_for(500);
    CHECK(local_get(c, 1, "k").values == Values{"v1"});
    CHECK(local_get(c, 2, "k").values == Values{"v1"});
    CHECK(c.take_replies("lost").empty());  // never acknowledged
    c.fail_commits(0, 0);
    c.restart(0);
    c.run_for(2000);  // pings find n1 again
    CHECK(local_get(c, 0, "k").values.empty());
    // n1 mints the next blind write of k; with the same actor and no record of
    // v1 it would give v2 v1's dot, and merging would keep only one of them.
    REQUIRE(put(c, 0, "k", "v2").code == ErrorCode::ok);
    auto r = get(c, 1, "k", level(proto::Level::all));
    REQUIRE(r.code == ErrorCode::ok);
    Values values = r.values;
    std::sort(values.begin(), values.end());
    CHECK(values == Values{"v1", "v2"});
}

TEST_CASE("a read asks only the replicas its level needs while they agree") {
    sim::Cluster c(options(3));
    REQUIRE(put(c, 0, "k", "v", level(proto::Level::all)).code == ErrorCode::ok);
    for (size_t i = 0; i < 6; ++i) {
        auto r = get(c, i % 3, "k");
        CHECK(r.values == Values{"v"});
        CHECK(r.info.replicas_asked == 2);
        CHECK(r.info.replicas_answered == 2);
        CHECK(get(c, i % 3, "k", level(proto::Level::one)).info.replicas_asked == 1);
        CHECK(get(c, i % 3, "k", level(proto::Level::all)).info.replicas_asked == 3);
    }
    CHECK(spares_asked(c) == 0);
}

TEST_CASE("a read whose replicas disagree asks the others too and repairs every one") {
    sim::Cluster c(read_repair_only());
    n2_misses_a_write(c);
    // n2 coordinates: it asks itself (nothing) and one other (v), which disagree.
    // The answer does not wait for the third; the repair does.
    auto r = get(c, 1, "k");
    CHECK(r.values == Values{"v"});
    CHECK(r.info.replicas_asked == 2);
    CHECK(c.node(1).stats().read_spares_asked == 1);
    c.run_for(200);
    CHECK(local_get(c, 1, "k").values == Values{"v"});
}

TEST_CASE("a replica that does not answer a read is replaced long before the deadline") {
    auto o = options(3);
    o.node_config.read_spares_after_ms = 10;
    sim::Cluster c(o);
    REQUIRE(put(c, 0, "k", "v", level(proto::Level::all)).code == ErrorCode::ok);
    c.crash(2);  // not detected yet: the coordinator asks it and hears nothing
    // The reads turn through n2 and n3 as the remote replica they ask first.
    for (int i = 0; i < 4; ++i) {
        const uint64_t start_ms = c.now_ms();
        auto r = get(c, 0, "k");
        CHECK(r.values == Values{"v"});
        // The spare is asked at the first tick (10 ms) past 10 ms.
        CHECK(c.now_ms() - start_ms <= 100);
    }
    // Two of the four asked n3 first.
    CHECK(c.node(0).stats().read_spares_asked == 2);
}

TEST_CASE("with read_all_replicas every read asks every replica") {
    auto o = options(3);
    o.node_config.read_all_replicas = true;
    sim::Cluster c(o);
    REQUIRE(put(c, 0, "k", "v").code == ErrorCode::ok);
    auto r = get(c, 2, "k", level(proto::Level::one));
    CHECK(r.values == Values{"v"});
    CHECK(r.info.replicas_asked == 3);
}

TEST_CASE("deletes win over what they saw and lose to what they did not") {
    sim::Cluster c(options(3));
    REQUIRE(put(c, 0, "k", "v").code == ErrorCode::ok);
    auto seen = get(c, 0, "k");
    REQUIRE(put(c, 1, "k", "later", level(proto::Level::all), seen.context).code == ErrorCode::ok);
    REQUIRE(del(c, 2, "k", seen.context, level(proto::Level::all)).code == ErrorCode::ok);
    CHECK(get(c, 0, "k", level(proto::Level::all)).values == Values{"later"});
    REQUIRE(del(c, 0, "k").code == ErrorCode::ok);  // no context: removes what the replica holds
    CHECK(get(c, 1, "k", level(proto::Level::all)).code == ErrorCode::not_found);
}

TEST_CASE("writes past the sibling limit fail with sibling_limit") {
    auto o = options(1);
    o.node_config.n_replicas = 1;
    o.node_config.siblings_max = 3;
    sim::Cluster c(o);
    for (int i = 0; i < 3; ++i) REQUIRE(put(c, 0, "k", std::to_string(i)).code == ErrorCode::ok);
    auto w = put(c, 0, "k", "3");
    CHECK(w.code == ErrorCode::sibling_limit);
    CHECK(get(c, 0, "k").values.size() == 3);
    auto r = get(c, 0, "k");
    CHECK(put(c, 0, "k", "merged", level(proto::Level::one), r.context).code == ErrorCode::ok);
    CHECK(get(c, 0, "k").values == Values{"merged"});
}

TEST_CASE("bad requests get their own error codes and change nothing") {
    sim::Cluster c(options(3));
    REQUIRE(put(c, 0, "k", "v").code == ErrorCode::ok);
    CHECK(put(c, 0, "k", "w", level(proto::Level::quorum), std::string("\xc1garbage")).code ==
          ErrorCode::bad_context);
    auto too_many =
        call(c, 0, proto::GetRequest{0, "k", proto::Consistency{proto::Level::one, 5, false}, 0});
    CHECK(std::get<proto::GetResponse>(too_many).code == ErrorCode::invalid_argument);
    auto not_a_request = call(c, 0, node::PingResponse{0, "x"});
    CHECK(std::get<proto::ErrorResponse>(not_a_request).code == ErrorCode::bad_request);
    CHECK(get(c, 0, "k").values == Values{"v"});
}

TEST_CASE("the same seed gives the same replies, byte for byte") {
    auto run = [](uint64_t seed) {
        sim::Cluster c(options(3, seed));
        std::string transcript;
        c.on_client_reply(
            [&](const std::string&, const node::Message& m) { transcript += node::encode(m); });
        for (int i = 0; i < 20; ++i) {
            c.client_send(i % 3, "w",
                          proto::PutRequest{uint64_t(i + 1), "k" + std::to_string(i % 4),
                                            "v" + std::to_string(i), std::nullopt,
                                            level(proto::Level::quorum), 0});
            c.run_for(3);
        }
        c.crash(1);
        c.run_for(50);
        c.restart(1);
        for (int i = 0; i < 4; ++i) {
            c.client_send(i % 3, "r",
                          proto::GetRequest{uint64_t(100 + i), "k" + std::to_string(i),
                                            level(proto::Level::all), 0});
        }
        c.run_for(6000);
        return transcript;
    };
    const std::string a = run(42);
    CHECK(a.size() > 100);
    CHECK(a == run(42));
}

// ---- gossip membership -----------------------------------------------------------

namespace {

bool all_others_see(sim::Cluster& c, size_t target, gossip::MemberStatus status) {
    for (size_t i = 0; i < c.size(); ++i) {
        if (i == target || !c.is_up(i)) continue;
        const gossip::MemberState* s = seen_by(c, i, c.node_id(target));
        if (s == nullptr || s->status() != status) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("nodes started from one seed all learn each other and compute the same ring",
          "[gossip]") {
    sim::Cluster c(gossip_options(5));
    REQUIRE(c.run_until([&] { return all_joined(c); }, 20000));
    INFO("joined after " << c.now_ms() << " ms");
    const ring::Ring& ring = c.node(0).ring();
    REQUIRE(ring.nodes().size() == 5);
    CHECK(ring.tokens().size() == 5 * 32);
    // Claims balance the ring: every node owns a fair share (1/5 = 0.2).
    for (double share : ring.ownership()) {
        CHECK(share > 0.12);
        CHECK(share < 0.28);
    }
    // The ring is usable: quorum writes and reads through any node.
    REQUIRE(put(c, 2, "k", "v").code == ErrorCode::ok);
    for (size_t i = 0; i < 5; ++i) CHECK(get(c, i, "k").values == Values{"v"});
    // kvctl members: every member with its tokens and share.
    auto m = call(c, 4, proto::StatusRequest{});
    auto& status = std::get<proto::StatusResponse>(m);
    REQUIRE(status.members.size() == 5);
    uint64_t ppm = 0;
    for (const auto& member : status.members) {
        CHECK(member.state == "up");
        CHECK(member.tokens == 32);
        ppm += member.share_ppm;
    }
    CHECK(ppm > 999'990);
    CHECK(ppm < 1'000'010);
}

// Issue 10: five nodes started together, each seeded with the others (n1 with
// itself too), once split into islands that never merged: a node gossiped to a
// seed only when its random live peer was not one, and here every peer is a
// seed, so two nodes that found each other first talked to nobody else. Before
// the fix 6 of these 50 seeds (2, 17, 23, 24, 45, 47) left n4 and n5 joining
// without tokens, seeing only each other. After it, 1,000 seeds all joined
// within 9.1 s of virtual time (join wait 3 s, then five joins one at a time).
TEST_CASE("nodes each seeded with the others, started together, always form one cluster",
          "[gossip]") {
    constexpr uint32_t kNodes = 5;
    constexpr uint64_t kJoinedBoundMs = 15000;
    uint64_t slowest_ms = 0;
    int failed = 0;
    for (uint64_t seed = 1; seed <= 50; ++seed) {
        auto o = gossip_options(kNodes, seed);
        o.seeds_per_node.resize(kNodes);
        for (uint32_t i = 0; i < kNodes; ++i) {
            for (uint32_t j = 0; j < kNodes; ++j) {
                if (i != j || i == 0)
                    o.seeds_per_node[i].push_back("sim://n" + std::to_string(j + 1));
            }
        }
        sim::Cluster c(o);
        if (c.run_until([&] { return all_joined(c); }, kJoinedBoundMs)) {
            slowest_ms = std::max(slowest_ms, c.now_ms());
            continue;
        }
        ++failed;
        std::string views;
        for (size_t i = 0; i < kNodes; ++i) {
            views += "\n" + c.node_id(i) + " sees";
            for (const auto& [id, s] : c.node(i).gossiper()->view().states()) {
                views += " " + id + "=" + std::string(gossip::status_name(s.status())) + "/" +
                         std::to_string(s.tokens.size());
            }
        }
        FAIL_CHECK("seed " << seed << ": not one cluster after " << kJoinedBoundMs << " ms"
                           << views);
    }
    std::printf(
        "5 nodes seeded with each other: %d of 50 seeds failed; the others joined within "
        "%llu ms (bound %llu ms)\n",
        failed, static_cast<unsigned long long>(slowest_ms),
        static_cast<unsigned long long>(kJoinedBoundMs));
    CHECK(failed == 0);
}

TEST_CASE("a crashed node is marked down by all others in time, and up again after restart",
          "[gossip]") {
    sim::Cluster c(gossip_options(4));
    REQUIRE(c.run_until([&] { return all_joined(c); }, 20000));
    c.run_for(5000);  // let the detectors learn the heartbeat rate
    REQUIRE(put(c, 0, "k", "before").code == ErrorCode::ok);
    const std::vector<uint64_t> tokens_before = seen_by(c, 0, "n3")->tokens;
    const uint64_t incarnation_before = seen_by(c, 0, "n3")->incarnation;

    c.crash(2);
    const uint64_t crashed_at = c.now_ms();
    REQUIRE(c.run_until([&] { return all_others_see(c, 2, gossip::MemberStatus::down); }, 30000));
    const uint64_t down_after_ms = c.now_ms() - crashed_at;
    // Phi reaches the threshold after phi / log10(e) mean intervals of silence;
    // then the suspicion timeout; allow rounds for the verdict to spread. The
    // mean is of arrivals through gossip, which news reaches indirectly: up
    // to 1.5 intervals apart on average at this size.
    const double detect_ms = kPhiSuspect / 0.4342944819 * kGossipIntervalMs * 1.5;
    const uint64_t bound_ms =
        static_cast<uint64_t>(detect_ms) + kSuspectToDownMs + 4 * kGossipIntervalMs;
    INFO("marked down by all after " << down_after_ms << " ms, bound " << bound_ms << " ms");
    CHECK(down_after_ms >= kSuspectToDownMs);
    CHECK(down_after_ms <= bound_ms);
    // Down counts as unreachable at once: a strict 'all' fails fast (a sloppy
    // one would use a stand-in), quorum still works.
    auto all = put(c, 0, "k2", "v", proto::Consistency{proto::Level::all, 0, true});
    bool n3_replica = false;
    for (const auto& r : c.node(0).ring().preference_list("k2", 3)) n3_replica |= r == "n3";
    if (n3_replica) CHECK(all.code == ErrorCode::unavailable);
    CHECK(get(c, 1, "k").values == Values{"before"});

    c.restart(2);
    REQUIRE(c.run_until([&] { return all_others_see(c, 2, gossip::MemberStatus::up); }, 10000));
    // A new life: higher incarnation, the same tokens (the ring did not move).
    CHECK(seen_by(c, 0, "n3")->incarnation > incarnation_before);
    CHECK(seen_by(c, 0, "n3")->tokens == tokens_before);
    CHECK(get(c, 2, "k").values == Values{"before"});
}

TEST_CASE("a node that joins later takes a share of the ring, seen the same by all", "[gossip]") {
    sim::Cluster c(gossip_options(4));
    start_all_but_last(c);  // n4 stays away while the first three form the cluster
    REQUIRE(put(c, 0, "k", "v").code == ErrorCode::ok);
    c.restart(3);
    REQUIRE(c.run_until([&] { return all_joined(c); }, 20000));
    const auto shares = c.node(0).ring().ownership();
    REQUIRE(shares.size() == 4);
    CHECK(shares[3] > 0.15);  // n4 claimed about a quarter
    CHECK(shares[3] < 0.35);
    // Through the newcomer too (rebalance_test checks what streamed to it).
    CHECK(get(c, 3, "k").values == Values{"v"});
}

TEST_CASE("gossip runs are deterministic: the same seed gives the same views and rings",
          "[gossip]") {
    auto run = [](uint64_t seed) {
        sim::Cluster c(gossip_options(4, seed));
        c.run_for(4000);
        c.crash(1);
        c.run_for(6000);
        std::vector<std::string> out;
        for (size_t i : {size_t{0}, size_t{2}, size_t{3}}) {
            for (const auto& [id, s] : c.node(i).gossiper()->view().states()) {
                out.push_back(
                    c.node_id(i) + ":" + id + ":" + std::to_string(s.incarnation) + ":" +
                    std::to_string(s.heartbeat) + ":" +
                    std::string(gossip::status_name(s.status())) + ":" +
                    std::to_string(s.tokens.size()) + ":" +
                    std::to_string(s.tokens.empty() ? 0 : s.tokens.front()) + ":" +
                    // Arrival times: these depend on latencies and peer choices.
                    std::to_string(c.node(i).gossiper()->detector().mean_interval_ms(id)));
            }
        }
        return out;
    };
    const auto first = run(5);
    CHECK(first == run(5));
    CHECK(first != run(6));  // the seed matters: the check can fail
}

// ---- owners (kvctl owners) ---------------------------------------------------------------

namespace {
proto::OwnersResponse owners(sim::Cluster& c, size_t i, const std::string& key) {
    auto m = call(c, i, proto::OwnersRequest{0, key});
    REQUIRE(std::holds_alternative<proto::OwnersResponse>(m));
    return std::get<proto::OwnersResponse>(m);
}
}  // namespace

TEST_CASE("owners: the homes in preference order, up or down, and a stand-in for each one down") {
    sim::Cluster c(options(5));
    const std::string key = "owners-key";
    // Every member in ring order from the key: the first 3 are its homes, the
    // next two the members a sloppy write would fall back to, in that order.
    const std::vector<std::string> walk = c.node(0).ring().preference_list(key, 5);
    REQUIRE(walk.size() == 5);

    auto all_up = owners(c, 0, key);
    CHECK(all_up.n_replicas == 3);
    CHECK(all_up.sloppy);
    CHECK(all_up.homes ==
          std::vector<proto::HomeReplica>{{walk[0], "up"}, {walk[1], "up"}, {walk[2], "up"}});
    CHECK(all_up.stand_ins.empty());
    CHECK(all_up.new_owners.empty());  // a static member list never moves

    // Two homes die; ask a member that is not a home, once its failure
    // detector has given up on them.
    c.crash(index_of(c, walk[1]));
    c.crash(index_of(c, walk[2]));
    const size_t asked = index_of(c, walk[4]);
    c.run_for(4000);  // past peer_down_after_ms
    auto two_down = owners(c, asked, key);
    CHECK(two_down.homes ==
          std::vector<proto::HomeReplica>{{walk[0], "up"}, {walk[1], "down"}, {walk[2], "down"}});
    // The next reachable members clockwise past the homes, one per home down,
    // in the homes' order.
    CHECK(two_down.stand_ins ==
          std::vector<proto::StandInReplica>{{walk[3], walk[1]}, {walk[4], walk[2]}});
    // The first home, whose detector agrees, gives the same answer.
    auto from_home = owners(c, index_of(c, walk[0]), key);
    CHECK(from_home.homes == two_down.homes);
    CHECK(from_home.stand_ins == two_down.stand_ins);

    // With --hinted-handoff false the node names no stand-in.
    auto o = options(5);
    o.node_config.hinted_handoff = false;
    sim::Cluster strict(o);
    strict.crash(index_of(strict, walk[1]));
    strict.crash(index_of(strict, walk[2]));
    strict.run_for(4000);
    auto no_stand_ins = owners(strict, index_of(strict, walk[4]), key);
    CHECK_FALSE(no_stand_ins.sloppy);
    CHECK(no_stand_ins.homes == two_down.homes);
    CHECK(no_stand_ins.stand_ins.empty());
}
