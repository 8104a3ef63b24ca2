// Gossip membership across real kvnode processes: three nodes found through one
// seed, data written at quorum, a fourth node joining by seed and seen by all
// in `members` (the status reply), a kill -9 reported as down by every other
// node within the configured detection time, and the data still readable at
// quorum. The joiner streams in the ranges it gains before it declares itself
// up. A second test has a member leave with `kvctl leave`; a third sends two
// leaves at once, of which only one may happen (n=3 on 4 nodes).
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <catch2/catch.hpp>

#include "client/protocol.h"
#include "tests/process/process_cluster.h"

namespace kv::test {
namespace {

using Clock = std::chrono::steady_clock;

const proto::Consistency kQuorum{proto::Level::quorum, 0, false};

// Small thresholds so the test runs in seconds: a round every 100 ms, suspect
// at phi 5 (about 11.5 mean heartbeat intervals of silence), down 1 s later.
constexpr int kGossipIntervalMs = 100;
constexpr double kPhiSuspect = 5.0;
constexpr int kSuspectToDownMs = 1000;
constexpr uint32_t kVnodes = 64;
// Phi 5 after 11.5 mean arrival intervals (mean up to ~2 rounds through
// indirect gossip), the suspicion timeout, and a few rounds to spread the verdict.
constexpr int kDownWithinMs = static_cast<int>(kPhiSuspect / 0.4343 * 2 * kGossipIntervalMs) +
                              kSuspectToDownMs + 10 * kGossipIntervalMs;

std::vector<std::string> gossip_flags() {
    return {"--gossip-interval-ms",
            std::to_string(kGossipIntervalMs),
            "--phi-suspect",
            std::to_string(kPhiSuspect),
            "--suspect-to-down-ms",
            std::to_string(kSuspectToDownMs),
            "--join-wait-ms",
            "3000",
            "--vnodes",
            std::to_string(kVnodes)};
}

std::optional<proto::StatusResponse> members_of(ProcessCluster& cluster, size_t i) {
    return status_of(cluster, i);
}

const proto::MemberStatus* find_member(const proto::StatusResponse& s, const std::string& id) {
    for (const auto& m : s.members) {
        if (m.node_id == id) return &m;
    }
    return nullptr;
}

// Polls every `observers` node until `holds` is true of each one's member list.
template <typename Pred>
bool wait_for(ProcessCluster& cluster, const std::vector<size_t>& observers, int timeout_ms,
              Pred holds) {
    return wait_for_status(cluster, observers, timeout_ms, holds);
}

// Every node in `ids` is listed up with its tokens.
auto all_up(std::vector<std::string> ids) {
    return [ids](const proto::StatusResponse& s) {
        for (const auto& id : ids) {
            const proto::MemberStatus* m = find_member(s, id);
            if (m == nullptr || m->state != "up" || m->tokens != kVnodes) return false;
        }
        return true;
    };
}

proto::Message request(ProcessCluster& cluster, size_t i, proto::Message message) {
    RawClient client(cluster.endpoint(i));
    auto reply = client.request(message);
    KV_REQUIRE_OK(reply.status());
    return reply.value();
}

// How many of the keys node i holds itself (local_get: no coordination, no repair).
int keys_held(ProcessCluster& cluster, size_t i, int keys) {
    int held = 0;
    for (int k = 0; k < keys; ++k) {
        const std::string key = "key" + std::to_string(k);
        auto reply = request(cluster, i, proto::LocalGetRequest{next_request_id(), key});
        const auto& got = std::get<proto::GetResponse>(reply);
        if (got.code == ErrorCode::ok) {
            CHECK(got.values == std::vector<std::string>{"v" + key});
            ++held;
        }
    }
    return held;
}

}  // namespace

TEST_CASE("gossip: 3 nodes by seed, a 4th joins, kill -9 is reported down in time, data stays") {
    ProcessCluster cluster("gossip");
    cluster.use_gossip(gossip_flags());
    KV_REQUIRE_OK(cluster.add_nodes(4, 3));
    for (size_t i = 0; i < 3; ++i) KV_REQUIRE_OK(cluster.start_and_wait(i));
    REQUIRE(wait_for(cluster, {0, 1, 2}, 20000, all_up({"n1", "n2", "n3"})));

    constexpr int kKeys = 120;
    for (int k = 0; k < kKeys; ++k) {
        const std::string key = "key" + std::to_string(k);
        auto reply = request(cluster, k % 3,
                             proto::PutRequest{next_request_id(), key, "v" + key, {}, kQuorum, 0});
        INFO(describe(reply));
        REQUIRE(reply_code(reply) == ErrorCode::ok);
    }

    // A fourth node joins through the seed and is seen by all, with a share.
    KV_REQUIRE_OK(cluster.start_and_wait(3));
    REQUIRE(wait_for(cluster, {0, 1, 2, 3}, 20000, all_up({"n1", "n2", "n3", "n4"})));
    auto view = members_of(cluster, 0);
    REQUIRE(view);
    uint64_t ppm_total = 0;
    for (const auto& m : view->members) {
        INFO(m.node_id << " share_ppm " << m.share_ppm);
        CHECK(m.share_ppm > 150'000);  // about a quarter each
        ppm_total += m.share_ppm;
    }
    CHECK(ppm_total > 999'000);
    CHECK(ppm_total < 1'001'000);
    // n4 received its ranges by streaming (no read touched it): with n=3 over
    // 4 nodes it replicates most keys, and its store holds exactly those.
    const int held = keys_held(cluster, 3, kKeys);
    auto n4 = members_of(cluster, 3);
    REQUIRE(n4);
    std::printf("gossip process test: n4 holds %d of %d keys after joining\n", held, kKeys);
    CHECK(held >= kKeys / 3);
    CHECK(n4->keys_stored == static_cast<uint64_t>(held));
    for (const auto& t : n4->transfers) CHECK(t.state == "done");

    // kill -9 of n2: every other node reports it down within the detection time.
    KV_REQUIRE_OK(cluster.kill_hard(1));
    const auto killed_at = Clock::now();
    const bool down = wait_for(cluster, {0, 2, 3}, 4 * kDownWithinMs, [](const auto& s) {
        const proto::MemberStatus* m = find_member(s, "n2");
        return m != nullptr && m->state == "down";
    });
    const auto down_after_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed_at).count();
    std::printf(
        "gossip process test: n2 reported down by n1, n3, n4 %lld ms after kill -9 "
        "(interval %d ms, phi %.1f, suspect-to-down %d ms; bound %d ms)\n",
        static_cast<long long>(down_after_ms), kGossipIntervalMs, kPhiSuspect, kSuspectToDownMs,
        kDownWithinMs);
    REQUIRE(down);
    CHECK(down_after_ms >= kSuspectToDownMs);
    CHECK(down_after_ms <= kDownWithinMs);

    // Every acknowledged write is still readable at quorum, through any survivor.
    for (int k = 0; k < kKeys; ++k) {
        const std::string key = "key" + std::to_string(k);
        for (size_t i : {size_t{0}, size_t{3}}) {
            auto reply = request(cluster, i, proto::GetRequest{next_request_id(), key, kQuorum, 0});
            INFO("node " << cluster.node_id(i) << ": " << describe(reply));
            REQUIRE(std::holds_alternative<proto::GetResponse>(reply));
            const auto& got = std::get<proto::GetResponse>(reply);
            CHECK(got.code == ErrorCode::ok);
            CHECK(got.values == std::vector<std::string>{"v" + key});
        }
    }
}

// Issue 10: five nodes, each seeded with others, once split into islands that
// never merged (1 of 9 starts: n4 and n5 saw only each other, joining without
// tokens, for minutes): a node gossiped to a seed only when its random live
// peer was not one, so two seeds that found each other first talked to nobody
// else. Each node is seeded with every other (n1 with itself too). The
// deterministic regression is node_test's (50 simulated starts, 6 of them
// islands before the fix); here real processes started together must form one
// cluster (islands are rarer with real timing: 8 runs before the fix passed).
constexpr size_t kSeededNodes = 5;
constexpr int kJoinedWithinMs = 30000;

void seed_each_with_the_others(ProcessCluster& cluster) {
    for (size_t i = 0; i < cluster.size(); ++i) {
        std::vector<std::string> seeds;
        for (size_t j = 0; j < cluster.size(); ++j) {
            if (i != j || i == 0) seeds.push_back(cluster.endpoint(j));
        }
        cluster.set_seeds(i, std::move(seeds));
    }
}

// Every node lists all of them up with tokens within the bound; then one
// cluster serves a quorum write and read, and every process stops cleanly.
void require_one_cluster(ProcessCluster& cluster, Clock::time_point started, const char* what) {
    std::vector<std::string> ids;
    std::vector<size_t> all;
    for (size_t i = 0; i < cluster.size(); ++i) {
        ids.push_back(cluster.node_id(i));
        all.push_back(i);
    }
    const bool joined = wait_for(cluster, all, kJoinedWithinMs, all_up(ids));
    const auto joined_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    if (!joined) {
        for (size_t i = 0; i < cluster.size(); ++i) {
            auto s = members_of(cluster, i);
            std::string seen;
            for (const auto& m : s ? s->members : std::vector<proto::MemberStatus>{})
                seen += " " + m.node_id + "=" + m.state + "/" + std::to_string(m.tokens);
            UNSCOPED_INFO(cluster.node_id(i) << " sees" << seen);
        }
    }
    REQUIRE(joined);
    std::printf("gossip process test: %s: all up in every view after %lld ms (bound %d ms)\n", what,
                static_cast<long long>(joined_ms), kJoinedWithinMs);
    auto put = request(cluster, cluster.size() - 1,
                       proto::PutRequest{next_request_id(), "k", "v", {}, kQuorum, 0});
    INFO(describe(put));
    REQUIRE(reply_code(put) == ErrorCode::ok);
    auto got = request(cluster, 0, proto::GetRequest{next_request_id(), "k", kQuorum, 0});
    REQUIRE(std::holds_alternative<proto::GetResponse>(got));
    CHECK(std::get<proto::GetResponse>(got).values == std::vector<std::string>{"v"});
    for (size_t i = 0; i < cluster.size(); ++i) {
        auto code = cluster.terminate(i);
        KV_REQUIRE_OK(code.status());
        CHECK(code.value() == 0);
    }
}

TEST_CASE("gossip: 5 nodes started together, each seeded with the others, form one cluster") {
    ProcessCluster cluster("gossip-seeds");
    cluster.use_gossip(gossip_flags());
    KV_REQUIRE_OK(cluster.add_nodes(kSeededNodes, 3));
    seed_each_with_the_others(cluster);
    const auto started = Clock::now();
    KV_REQUIRE_OK(cluster.start_all());
    require_one_cluster(cluster, started, "5 nodes seeded with each other, started together");
}

constexpr int kLeaveKeys = 120;

// Four gossip members with n=3, all up, and kLeaveKeys keys written at quorum.
void start_four_with_keys(ProcessCluster& cluster) {
    cluster.use_gossip(gossip_flags());
    KV_REQUIRE_OK(cluster.add_nodes(4, 3));
    for (size_t i = 0; i < 4; ++i) KV_REQUIRE_OK(cluster.start_and_wait(i));
    REQUIRE(wait_for(cluster, {0, 1, 2, 3}, 20000, all_up({"n1", "n2", "n3", "n4"})));
    for (int k = 0; k < kLeaveKeys; ++k) {
        const std::string key = "key" + std::to_string(k);
        auto reply = request(cluster, k % 4,
                             proto::PutRequest{next_request_id(), key, "v" + key, {}, kQuorum, 0});
        REQUIRE(reply_code(reply) == ErrorCode::ok);
    }
}

// n=3 over the 3 members that remain: each holds every key, and every key
// reads at quorum through the first and the last of them.
void check_three_hold_every_key(ProcessCluster& cluster, const std::vector<size_t>& remaining) {
    for (size_t i : remaining) CHECK(keys_held(cluster, i, kLeaveKeys) == kLeaveKeys);
    for (int k = 0; k < kLeaveKeys; ++k) {
        const std::string key = "key" + std::to_string(k);
        auto reply = request(cluster, k % 2 == 0 ? remaining.front() : remaining.back(),
                             proto::GetRequest{next_request_id(), key, kQuorum, 0});
        INFO(describe(reply));
        CHECK(std::get<proto::GetResponse>(reply).values == std::vector<std::string>{"v" + key});
    }
}

TEST_CASE("gossip: kvctl leave hands a member's ranges over, then it is left") {
    ProcessCluster cluster("leave");
    start_four_with_keys(cluster);
    const std::string said = run_kvctl(cluster, "--node " + cluster.endpoint(1) + " leave");
    INFO(said);
    REQUIRE(said.find("leave queued") != std::string::npos);
    REQUIRE(wait_for(cluster, {0, 2, 3}, 20000, [](const auto& s) {
        const proto::MemberStatus* m = find_member(s, "n2");
        return m != nullptr && m->state == "left" && m->tokens == 0;
    }));
    const std::string status = run_kvctl(cluster, "--node " + cluster.endpoint(1) + " status");
    INFO(status);
    CHECK(status.find("left") != std::string::npos);
    check_three_hold_every_key(cluster, {0, 2, 3});
    auto done = cluster.terminate(1);
    KV_REQUIRE_OK(done.status());
}

TEST_CASE("gossip: two leaves sent at once to a 4-node cluster with n=3: one leaves") {
    ProcessCluster cluster("two-leaves");
    start_four_with_keys(cluster);
    // Both sent before either answer is read: well within one gossip round.
    RawClient to_n2(cluster.endpoint(1));
    RawClient to_n3(cluster.endpoint(2));
    KV_REQUIRE_OK(to_n2.send(proto::LeaveRequest{next_request_id()}));
    KV_REQUIRE_OK(to_n3.send(proto::LeaveRequest{next_request_id()}));
    auto n2_said = to_n2.recv();
    auto n3_said = to_n3.recv();
    KV_REQUIRE_OK(n2_said.status());
    KV_REQUIRE_OK(n3_said.status());
    INFO("n2: " << describe(n2_said.value()) << "; n3: " << describe(n3_said.value()));
    // Settled: one member left, the other up with its leave refused, and the
    // ring of every remaining member has 3 members.
    REQUIRE(wait_for(cluster, {0, 3}, 30000, [](const auto& s) {
        const proto::MemberStatus* a = find_member(s, "n2");
        const proto::MemberStatus* b = find_member(s, "n3");
        if (a == nullptr || b == nullptr) return false;
        return (a->state == "left" && b->state == "up") || (a->state == "up" && b->state == "left");
    }));
    std::this_thread::sleep_for(std::chrono::milliseconds(2000));
    auto n1 = members_of(cluster, 0);
    REQUIRE(n1);
    const bool n2_left = find_member(*n1, "n2")->state == "left";
    const size_t stayed = n2_left ? 2 : 1;
    auto stayed_status = members_of(cluster, stayed);
    REQUIRE(stayed_status);
    INFO("the member that stayed: leave '" << stayed_status->leave << "'");
    CHECK(find_member(*n1, n2_left ? "n3" : "n2")->state == "up");
    const auto& stayed_reply = stayed == 1 ? n2_said.value() : n3_said.value();
    CHECK((reply_code(stayed_reply) == ErrorCode::invalid_argument ||
           stayed_status->leave.find("refused") == 0));
    check_three_hold_every_key(cluster, {0, stayed, 3});
}

}  // namespace kv::test
