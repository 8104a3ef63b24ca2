// Anti-entropy and tombstone GC across real kvnode processes (3 nodes, n = 3,
// hinted handoff and read repair off, so nothing else repairs):
//  - a node killed (kill -9) while 1,000 keys are written at quorum holds every
//    one of them (local_get, no coordinated read) within the documented repair
//    interval of its restart, and status reports the bytes exchanged;
//  - after the 1,000 keys are deleted, every replica purges their tombstones
//    (status counts), and they stay deleted through a restart and a repair;
//  - a node restarted on an empty data directory (static member list) is not
//    counted by reads until it has exchanged with the other members: quorum
//    reads it coordinates at once find every key another replica missed; it
//    waits for a member that is down (killed) that alone holds writes.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <variant>

#include <catch2/catch.hpp>

#include "client/protocol.h"
#include "tests/process/process_cluster.h"

namespace kv::test {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kKeys = 1000;

// docs/OPERATIONS.md, "Anti-entropy": each node starts an exchange every
// --anti-entropy-interval-ms (500 ms here) with the next member in turn, so a
// returning node is compared with every peer within 2 x 500 ms of being seen
// up (200 ms pings). The bound is ten times that, for a shared, loaded machine.
constexpr int kRepairBoundMs = 15'000;
// Tombstone GC needs a whole round of exchanges after the delete with every
// member, and the 5 s grace (the least kvnode accepts): 20 s in all.
constexpr int kPurgeBoundMs = 20'000;

const proto::Consistency kQuorum{proto::Level::quorum, 0, false};

proto::StatusResponse status(RawClient& c) {
    auto reply = c.request(proto::StatusRequest{next_request_id()});
    KV_REQUIRE_OK(reply.status());
    REQUIRE(std::holds_alternative<proto::StatusResponse>(reply.value()));
    return std::get<proto::StatusResponse>(reply.value());
}

ErrorCode write(RawClient& c, const proto::Message& m) {
    auto reply = c.request(m);
    KV_REQUIRE_OK(reply.status());
    REQUIRE(std::holds_alternative<proto::WriteResponse>(reply.value()));
    return std::get<proto::WriteResponse>(reply.value()).code;
}

std::string key_of(int i) {
    return "ae-key-" + std::to_string(i);
}

// Writes key_of(i) = "v<i>" for every i at quorum, each acknowledged.
void put_all(RawClient& client) {
    for (int i = 0; i < kKeys; ++i) {
        REQUIRE(
            write(client, proto::PutRequest{next_request_id(), key_of(i), "v" + std::to_string(i),
                                            std::nullopt, kQuorum, 5000}) == ErrorCode::ok);
    }
}

// With hints off a write is sent to every home replica, the one that is down
// included, and the runtime holds a send to a peer with no connection for up
// to 500 ms (node/runtime/limits.h, kPeerConnectGraceMs), delivering it if the
// peer is back by then. Waiting this long before restarting a killed node
// lets every such send fail first, so only a repair can bring it the writes.
void let_held_sends_fail() {
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
}

// Polls `done` every 100 ms for at most `bound_ms`; the ms it took, or -1.
template <class Done>
long long wait_ms(int bound_ms, Done done) {
    const auto start = Clock::now();
    while (Clock::now() - start < std::chrono::milliseconds(bound_ms)) {
        if (done()) {
            return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)
                .count();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
}

}  // namespace

TEST_CASE("3 nodes, n=3: anti-entropy refills a restarted node; tombstones are purged and stay") {
    ProcessCluster cluster("anti-entropy");
    KV_REQUIRE_OK(cluster.add_nodes(3, 3));
    for (size_t i = 0; i < cluster.size(); ++i) {
        cluster.set_extra_flags(
            i, {"--ping-interval-ms", "200", "--peer-down-after-ms", "1000", "--hinted-handoff",
                "false", "--read-repair", "false", "--anti-entropy-interval-ms", "500",
                "--tombstone-grace-ms", "5000"});
    }
    KV_REQUIRE_OK(cluster.start_all());
    RawClient client(cluster.endpoint(0));

    KV_REQUIRE_OK(cluster.kill_hard(2));
    // Bounded: the coordinator sees n3 down before writing (quorum needs 2 of 3).
    put_all(client);
    let_held_sends_fail();
    const auto restart_began = Clock::now();
    KV_REQUIRE_OK(cluster.restart(2));
    RawClient restarted(cluster.endpoint(2));
    const long long waited_ms =
        wait_ms(kRepairBoundMs, [&] { return status(restarted).keys_stored == kKeys; });
    REQUIRE(waited_ms >= 0);
    std::printf(
        "anti-entropy: the restarted node holds all %d keys %lld ms after its restart "
        "began\n",
        kKeys,
        static_cast<long long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - restart_began)
                .count()));
    // Each key, read from that replica alone.
    for (int i = 0; i < kKeys; ++i) {
        auto reply = restarted.request(proto::LocalGetRequest{next_request_id(), key_of(i)});
        KV_REQUIRE_OK(reply.status());
        REQUIRE(std::holds_alternative<proto::GetResponse>(reply.value()));
        CHECK(std::get<proto::GetResponse>(reply.value()).values ==
              std::vector<std::string>{"v" + std::to_string(i)});
    }
    uint64_t bytes = 0, received = 0;
    for (size_t i = 0; i < cluster.size(); ++i) {
        RawClient direct(cluster.endpoint(i));
        const auto s = status(direct);
        REQUIRE(s.anti_entropy.has_value());
        bytes += s.anti_entropy->bytes_sent;
        if (i == 2) received = s.anti_entropy->keys_received;
    }
    std::printf("anti-entropy: %llu payload bytes sent by the three nodes; n3 merged %llu keys\n",
                static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(received));
    // Every key came by anti-entropy (two peers may both push one: at least).
    CHECK(received >= static_cast<uint64_t>(kKeys));
    CHECK(bytes > 0);

    for (int i = 0; i < kKeys; ++i) {
        REQUIRE(write(client, proto::DelRequest{next_request_id(), key_of(i), std::nullopt, kQuorum,
                                                5000}) == ErrorCode::ok);
    }
    const long long purge_ms = wait_ms(kPurgeBoundMs, [&] {
        for (size_t i = 0; i < cluster.size(); ++i) {
            RawClient direct(cluster.endpoint(i));
            const auto s = status(direct);
            if (s.keys_stored != 0 || s.anti_entropy->tombstones != 0) return false;
        }
        return true;
    });
    std::printf("tombstone GC: every replica purged the %d tombstones %lld ms after the deletes\n",
                kKeys, purge_ms);
    REQUIRE(purge_ms >= 0);
    for (size_t i = 0; i < cluster.size(); ++i) {
        RawClient direct(cluster.endpoint(i));
        CHECK(status(direct).anti_entropy->tombstones_purged >= static_cast<uint64_t>(kKeys));
    }

    // Through a restart and a full repair, nothing comes back.
    KV_REQUIRE_OK(cluster.restart(1));
    auto repair = client.request(proto::RepairRequest{next_request_id(), true, 0, 0, {}});
    KV_REQUIRE_OK(repair.status());
    REQUIRE(std::holds_alternative<proto::AdminResponse>(repair.value()));
    CHECK(std::get<proto::AdminResponse>(repair.value()).code == ErrorCode::ok);
    const long long repaired_ms = wait_ms(kRepairBoundMs, [&] {
        const auto s = status(client);
        return s.anti_entropy->repair_done + s.anti_entropy->repair_failed >=
               s.anti_entropy->repair_total;
    });
    REQUIRE(repaired_ms >= 0);
    CHECK(status(client).anti_entropy->repair_failed == 0);
    for (size_t i = 0; i < cluster.size(); ++i) {
        RawClient direct(cluster.endpoint(i));
        CHECK(status(direct).keys_stored == 0);
    }
    for (int i = 0; i < kKeys; i += 37) {
        auto reply = client.request(proto::GetRequest{next_request_id(), key_of(i), kQuorum, 5000});
        KV_REQUIRE_OK(reply.status());
        REQUIRE(std::holds_alternative<proto::GetResponse>(reply.value()));
        const auto& got = std::get<proto::GetResponse>(reply.value());
        CHECK(got.values.empty());
    }
}

namespace {

// The refill tests' nodes: nothing repairs but the refill (no hints, no read
// repair, no scheduled exchanges), and a member is judged down within 1 s.
std::vector<std::string> refill_flags() {
    return {"--ping-interval-ms", "200",   "--peer-down-after-ms", "1000",
            "--hinted-handoff",   "false", "--read-repair",        "false",
            "--anti-entropy",     "false"};
}

// How n3 loses writes it acknowledged, in the refill test below.
enum class Loss { wiped, damaged_log };

// Nothing repairs on its own (no hints, no read repair, no scheduled
// exchanges); n2 misses every write (n1 and n3 hold them, a quorum of 3); then
// n3 loses them and comes back under its old id, so n1 alone holds the writes,
// and a read quorum of n3 and n2 (stale) would miss them. Reads through n3
// must never miss them, and its refill, the only repair running, fills it.
void lose_then_refill(Loss loss) {
    ProcessCluster cluster(loss == Loss::wiped ? "refill" : "refillLog");
    KV_REQUIRE_OK(cluster.add_nodes(3, 3));
    const std::vector<std::string> flags = refill_flags();
    for (size_t i = 0; i < cluster.size(); ++i) cluster.set_extra_flags(i, flags);
    KV_REQUIRE_OK(cluster.start_all());
    RawClient client(cluster.endpoint(0));

    KV_REQUIRE_OK(cluster.kill_hard(1));
    put_all(client);
    let_held_sends_fail();
    KV_REQUIRE_OK(cluster.restart(1));
    {
        RawClient n2(cluster.endpoint(1));
        REQUIRE(status(n2).keys_stored == 0);  // stale, and nothing repairs it
    }
    KV_REQUIRE_OK(cluster.kill_hard(2));
    if (loss == Loss::wiped) {
        std::filesystem::remove_all(cluster.data_dir(2));
    } else {
        // A byte changed in the middle of its log: the node refuses to start
        // (store_logged_test, durability_test) until told to drop the rest.
        KV_REQUIRE_OK(damage_log_middle(cluster.data_dir(2) + "/wal-0"));
        std::vector<std::string> discard = flags;
        discard.push_back("--wal-discard-damaged");
        cluster.set_extra_flags(2, discard);
    }
    const auto restart_began = Clock::now();
    KV_REQUIRE_OK(cluster.restart(2));
    if (loss == Loss::damaged_log) {
        CHECK_THAT(cluster.log_tail(2), Catch::Contains("this node lost acknowledged writes"));
    }
    RawClient lost(cluster.endpoint(2));
    int found = 0, unavailable = 0;
    for (int i = 0; i < kKeys; ++i) {
        auto reply = lost.request(proto::GetRequest{next_request_id(), key_of(i), kQuorum, 5000});
        KV_REQUIRE_OK(reply.status());
        REQUIRE(std::holds_alternative<proto::GetResponse>(reply.value()));
        const auto& got = std::get<proto::GetResponse>(reply.value());
        if (got.code == ErrorCode::unavailable) {
            ++unavailable;  // n1 or n2 slow to answer while n3 refills: no wrong answer
            continue;
        }
        INFO(key_of(i) << ": " << error_name(got.code) << " " << got.message);
        REQUIRE(got.values == std::vector<std::string>{"v" + std::to_string(i)});
        ++found;
    }
    const char* what = loss == Loss::wiped ? "wiped node" : "node that dropped a damaged log";
    std::printf(
        "refill: %d of %d quorum reads through the %s found the key, %d unavailable, none "
        "missed it\n",
        found, kKeys, what, unavailable);
    CHECK(found > kKeys / 2);
    KV_REQUIRE_OK(cluster.wait_refilled(2, kRepairBoundMs));
    std::printf("refill: the %s served replica reads %lld ms after its restart began\n", what,
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           Clock::now() - restart_began)
                                           .count()));
    // The refill, not read repair (off) or the schedule (off), filled it.
    const auto s = status(lost);
    CHECK(s.keys_stored == static_cast<uint64_t>(kKeys));
    REQUIRE(s.anti_entropy.has_value());
    CHECK(!s.anti_entropy->refilling);
    if (loss == Loss::wiped) {
        CHECK(s.anti_entropy->keys_received == static_cast<uint64_t>(kKeys));
    } else {
        // The writes after the damage, and only those, came back.
        std::printf("refill: the %s received %llu of %d keys\n", what,
                    static_cast<unsigned long long>(s.anti_entropy->keys_received), kKeys);
        CHECK(s.anti_entropy->keys_received > 0);
        CHECK(s.anti_entropy->keys_received < static_cast<uint64_t>(kKeys));
        // The refill's end erased the mark: the next start (flag kept) does not refill.
        KV_REQUIRE_OK(cluster.terminate(2).status());
        KV_REQUIRE_OK(cluster.start_and_wait(2));
        const std::string logs = cluster.log_tail(2, 100000);
        size_t marks_seen = 0;
        for (size_t at = logs.find("this node lost acknowledged writes"); at != std::string::npos;
             at = logs.find("this node lost acknowledged writes", at + 1))
            ++marks_seen;
        CHECK(marks_seen == 1);
        RawClient again(cluster.endpoint(2));
        REQUIRE(status(again).anti_entropy.has_value());
        CHECK(!status(again).anti_entropy->refilling);
    }
}

}  // namespace

TEST_CASE("static list: a node wiped and restarted is not counted by reads until refilled") {
    lose_then_refill(Loss::wiped);
}

TEST_CASE("a node that dropped a damaged log's writes is not counted by reads until refilled") {
    lose_then_refill(Loss::damaged_log);
}

// n1 and n3 hold 200 keys n2 missed; n2 and n3 hold 100 more. n1 is killed
// and n3 loses its disk: its refill gets the 100 from n2 and must then wait
// for n1, the only member left with the 200. Counted before n1 is back, n3
// and n2 would answer quorum reads of those keys not_found.
TEST_CASE("static list: a wiped node waits for a member that is down before reads count it") {
    ProcessCluster cluster("refillWait");
    KV_REQUIRE_OK(cluster.add_nodes(3, 3));
    const std::vector<std::string> flags = refill_flags();
    for (size_t i = 0; i < cluster.size(); ++i) cluster.set_extra_flags(i, flags);
    KV_REQUIRE_OK(cluster.start_all());
    constexpr int kOnN1 = 200;  // fewer than put_all's: this test's time goes on puts
    constexpr int kShared = 100;
    {
        RawClient client(cluster.endpoint(0));
        KV_REQUIRE_OK(cluster.kill_hard(1));
        for (int i = 0; i < kOnN1; ++i) {
            REQUIRE(write(client,
                          proto::PutRequest{next_request_id(), key_of(i), "v" + std::to_string(i),
                                            std::nullopt, kQuorum, 5000}) == ErrorCode::ok);
        }
        let_held_sends_fail();
        KV_REQUIRE_OK(cluster.restart(1));
    }
    {
        RawClient n2(cluster.endpoint(1));
        const proto::Consistency all{proto::Level::all, 0, false};
        for (int i = 0; i < kShared; ++i) {
            REQUIRE(write(n2, proto::PutRequest{next_request_id(), "shared-" + std::to_string(i),
                                                "s", std::nullopt, all, 5000}) == ErrorCode::ok);
        }
        REQUIRE(status(n2).keys_stored == static_cast<uint64_t>(kShared));
    }
    KV_REQUIRE_OK(cluster.kill_hard(0));
    KV_REQUIRE_OK(cluster.kill_hard(2));
    std::filesystem::remove_all(cluster.data_dir(2));
    KV_REQUIRE_OK(cluster.restart(2));

    // n3 got n2's keys and waits for n1 (judged down after 1 s).
    RawClient wiped(cluster.endpoint(2));
    const long long waiting_ms = wait_ms(kRepairBoundMs, [&] {
        return cluster.log_tail(2, 200).find("refill: waiting for n1") != std::string::npos;
    });
    INFO(cluster.log_tail(2));
    REQUIRE(waiting_ms >= 0);
    const auto s = status(wiped);
    REQUIRE(s.anti_entropy.has_value());
    CHECK(s.anti_entropy->refilling);
    CHECK(s.keys_stored == static_cast<uint64_t>(kShared));
    // Quorum reads through n2 of the keys only n1 holds: never a wrong not_found.
    RawClient n2(cluster.endpoint(1));
    int unavailable = 0;
    // (Each waits ~0.5 s: n2 holds its send to n1, which has no connection,
    // for kPeerConnectGraceMs before the read fails.)
    for (int i = 0; i < 10; ++i) {
        auto reply = n2.request(proto::GetRequest{next_request_id(), key_of(i), kQuorum, 5000});
        KV_REQUIRE_OK(reply.status());
        REQUIRE(std::holds_alternative<proto::GetResponse>(reply.value()));
        const auto& got = std::get<proto::GetResponse>(reply.value());
        INFO(key_of(i) << ": " << error_name(got.code) << " " << got.message);
        CHECK((got.code == ErrorCode::unavailable || got.code == ErrorCode::timeout));
        unavailable += got.code == ErrorCode::unavailable;
    }
    std::printf(
        "refill: with n1 down, 10 of 10 quorum reads through n2 failed (%d unavailable), "
        "none missed a key\n",
        unavailable);
    // The operator's release (kvctl repair --stop-waiting-for), asked of the
    // wrong node and for the wrong member: refused, and the wait goes on.
    const std::string on_n2 =
        run_kvctl(cluster, "--node " + cluster.endpoint(1) + " repair --stop-waiting-for n1");
    CHECK_THAT(on_n2, Catch::Contains("n2 is not refilling: it waits for no member"));
    const std::string for_n9 =
        run_kvctl(cluster, "--node " + cluster.endpoint(2) + " repair --stop-waiting-for n9");
    CHECK_THAT(for_n9, Catch::Contains("the refill of n3 does not wait for n9; it waits for n1"));
    const std::string no_ids =
        run_kvctl(cluster, "--node " + cluster.endpoint(2) + " repair --stop-waiting-for ,");
    CHECK_THAT(no_ids, Catch::Contains("--stop-waiting-for takes member ids"));
    CHECK(status(wiped).anti_entropy->refilling);

    const auto back = Clock::now();
    KV_REQUIRE_OK(cluster.restart(0));
    KV_REQUIRE_OK(cluster.wait_refilled(2, kRepairBoundMs));
    std::printf(
        "refill: the wiped node served replica reads %lld ms after n1's restart began\n",
        static_cast<long long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - back).count()));
    CHECK(status(wiped).keys_stored == static_cast<uint64_t>(kOnN1 + kShared));
    for (int i = 0; i < kOnN1; i += 10) {
        auto reply = n2.request(proto::GetRequest{next_request_id(), key_of(i), kQuorum, 5000});
        KV_REQUIRE_OK(reply.status());
        REQUIRE(std::holds_alternative<proto::GetResponse>(reply.value()));
        CHECK(std::get<proto::GetResponse>(reply.value()).values ==
              std::vector<std::string>{"v" + std::to_string(i)});
    }
}

TEST_CASE("kvnode refuses a tombstone grace shorter than a late request can arrive") {
    ProcessCluster cluster("grace-floor");
    KV_REQUIRE_OK(cluster.add_nodes(1, 1));
    cluster.set_extra_flags(0, {"--tombstone-grace-ms", "4999"});
    KV_REQUIRE_OK(cluster.start(0));
    auto exited = cluster.wait_exit(0);
    KV_REQUIRE_OK(exited.status());
    CHECK(exited.value() == 2);
    CHECK(cluster.log_tail(0, 5).find("--tombstone-grace-ms must be at least 5000") !=
          std::string::npos);
    // With GC off the grace is unused, so any value is accepted.
    cluster.set_extra_flags(0, {"--tombstone-grace-ms", "0", "--tombstone-gc", "false"});
    KV_REQUIRE_OK(cluster.start_and_wait(0));
}

}  // namespace kv::test
