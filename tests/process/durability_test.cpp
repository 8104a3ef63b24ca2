// Acknowledged writes survive a crash: a real kvnode is killed with SIGKILL (no
// chance to flush anything) right after its acknowledgements, restarted on the
// same data dir, and must return every acknowledged value, and must not bring
// back an acknowledged delete. A SIGTERM stop must exit 0 and lose nothing.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include <catch2/catch.hpp>

#include "client/protocol.h"
#include "node/runtime/zmq_runtime.h"
#include "tests/process/process_cluster.h"

namespace kv::test {
namespace {

constexpr size_t kAckedPuts = 1000;
constexpr size_t kPipelineDepth = 100;  // puts in flight before collecting their acks
constexpr uint64_t kValueSeed = 0x6475'7261'626c'6521;

const proto::Consistency kOne{proto::Level::one, 0, false};

struct Entry {
    std::string key;
    std::string value;
};

// Distinct keys and values; value lengths vary so that no two entries share bytes
// by accident and a value mixed up with another's cannot pass.
std::vector<Entry> make_entries() {
    std::mt19937_64 rng(kValueSeed);
    std::uniform_int_distribution<size_t> extra_bytes(0, 200);
    std::uniform_int_distribution<int> letter('a', 'z');
    std::vector<Entry> entries;
    for (size_t i = 0; i < kAckedPuts; ++i) {
        std::string value = "value-" + std::to_string(i) + "-";
        for (size_t n = extra_bytes(rng); n > 0; --n)
            value.push_back(static_cast<char>(letter(rng)));
        entries.push_back({"durable-" + std::to_string(i), std::move(value)});
    }
    return entries;
}

// Pipelined puts; every one must be acknowledged with code ok.
void put_all_acked(RawClient& client, const std::vector<Entry>& entries) {
    for (size_t first = 0; first < entries.size(); first += kPipelineDepth) {
        const size_t last = std::min(entries.size(), first + kPipelineDepth);
        std::map<uint64_t, size_t> entry_of_id;
        for (size_t e = first; e < last; ++e) {
            proto::PutRequest put{next_request_id(), entries[e].key, entries[e].value, {}, kOne, 0};
            entry_of_id[put.id] = e;
            KV_REQUIRE_OK(client.send(put));
        }
        auto replies = client.collect(last - first);
        KV_REQUIRE_OK(replies.status());
        for (const auto& reply : replies.value()) {
            INFO(describe(reply));
            REQUIRE(std::holds_alternative<proto::WriteResponse>(reply));
            REQUIRE(std::get<proto::WriteResponse>(reply).code == ErrorCode::ok);
            REQUIRE(entry_of_id.erase(proto::request_id(reply)) == 1);
        }
    }
}

// Pipelined gets; each must return exactly the acknowledged value.
void expect_all_values(RawClient& client, const std::vector<Entry>& entries) {
    size_t wrong = 0;
    std::string examples;  // the first few, shown on failure
    for (size_t first = 0; first < entries.size(); first += kPipelineDepth) {
        const size_t last = std::min(entries.size(), first + kPipelineDepth);
        std::map<uint64_t, size_t> entry_of_id;
        for (size_t e = first; e < last; ++e) {
            proto::GetRequest get{next_request_id(), entries[e].key, kOne, 0};
            entry_of_id[get.id] = e;
            KV_REQUIRE_OK(client.send(get));
        }
        auto replies = client.collect(last - first);
        KV_REQUIRE_OK(replies.status());
        for (const auto& reply : replies.value()) {
            INFO(describe(reply));
            REQUIRE(std::holds_alternative<proto::GetResponse>(reply));
            const auto it = entry_of_id.find(proto::request_id(reply));
            REQUIRE(it != entry_of_id.end());
            const Entry& entry = entries[it->second];
            entry_of_id.erase(it);
            const auto& got = std::get<proto::GetResponse>(reply);
            if (got.code != ErrorCode::ok || got.values != std::vector<std::string>{entry.value}) {
                if (wrong < 5) {
                    examples += entry.key + ": " + describe(reply) + " with " +
                                std::to_string(got.values.size()) + " value(s)\n";
                }
                ++wrong;
            }
        }
    }
    INFO(wrong << " of " << entries.size() << " keys lost or wrong, e.g.\n" << examples);
    REQUIRE(wrong == 0);
}

proto::Message request_ok(RawClient& client, const proto::Message& request) {
    auto reply = client.request(request);
    KV_REQUIRE_OK(reply.status());
    return std::move(reply).value();
}

ErrorCode write_code(const proto::Message& reply) {
    INFO(describe(reply));
    REQUIRE(std::holds_alternative<proto::WriteResponse>(reply));
    return std::get<proto::WriteResponse>(reply).code;
}

proto::GetResponse get_of(RawClient& client, const std::string& key) {
    const proto::Message reply =
        request_ok(client, proto::GetRequest{next_request_id(), key, kOne, 0});
    INFO(describe(reply));
    REQUIRE(std::holds_alternative<proto::GetResponse>(reply));
    return std::get<proto::GetResponse>(reply);
}

// A one-node cluster that acknowledged every entry, then killed with SIGKILL.
void acked_then_killed(ProcessCluster& cluster, const std::vector<Entry>& entries) {
    KV_REQUIRE_OK(cluster.add_nodes(1, 1));
    KV_REQUIRE_OK(cluster.start_all());
    {
        RawClient client(cluster.endpoint(0));
        put_all_acked(client, entries);
    }
    KV_REQUIRE_OK(cluster.kill_hard(0));
}

}  // namespace

TEST_CASE("acknowledged puts survive kill -9 and restart", "[process][durability]") {
    ProcessCluster cluster("durability");
    const std::vector<Entry> entries = make_entries();
    acked_then_killed(cluster, entries);
    REQUIRE_FALSE(cluster.alive(0));

    KV_REQUIRE_OK(cluster.start_and_wait(0));
    RawClient client(cluster.endpoint(0));
    expect_all_values(client, entries);
    // It may have sent versions ahead of a commit it lost: a new actor now.
    CHECK_THAT(cluster.log_tail(0, 10000), Catch::Contains("did not stop cleanly: minting as n"));

    // A second crash right after the restart must not lose anything either
    // (recovery itself must not leave the store in a fragile state).
    KV_REQUIRE_OK(cluster.restart(0));
    RawClient again(cluster.endpoint(0));
    expect_all_values(again, entries);
}

TEST_CASE("an acknowledged delete stays deleted after kill -9", "[process][durability]") {
    ProcessCluster cluster("delete");
    KV_REQUIRE_OK(cluster.add_nodes(1, 1));
    KV_REQUIRE_OK(cluster.start_all());
    {
        RawClient client(cluster.endpoint(0));
        REQUIRE(write_code(request_ok(
                    client,
                    proto::PutRequest{next_request_id(), "doomed", "soon gone", {}, kOne, 0})) ==
                ErrorCode::ok);
        REQUIRE(
            write_code(request_ok(
                client, proto::PutRequest{next_request_id(), "kept", "still here", {}, kOne, 0})) ==
            ErrorCode::ok);
        REQUIRE(get_of(client, "doomed").code == ErrorCode::ok);
        REQUIRE(write_code(request_ok(
                    client, proto::DelRequest{next_request_id(), "doomed", {}, kOne, 0})) ==
                ErrorCode::ok);
    }
    KV_REQUIRE_OK(cluster.kill_hard(0));
    KV_REQUIRE_OK(cluster.start_and_wait(0));

    RawClient client(cluster.endpoint(0));
    const proto::GetResponse doomed = get_of(client, "doomed");
    CHECK(doomed.code == ErrorCode::not_found);
    CHECK(doomed.values.empty());
    const proto::GetResponse kept = get_of(client, "kept");
    CHECK(kept.code == ErrorCode::ok);
    CHECK(kept.values == std::vector<std::string>{"still here"});
}

TEST_CASE("SIGTERM stops a node cleanly and loses nothing", "[process][durability]") {
    ProcessCluster cluster("sigterm");
    KV_REQUIRE_OK(cluster.add_nodes(1, 1));
    KV_REQUIRE_OK(cluster.start_all());
    std::vector<Entry> entries = make_entries();
    entries.resize(100);
    {
        RawClient client(cluster.endpoint(0));
        put_all_acked(client, entries);
    }
    auto exit_code = cluster.terminate(0);
    KV_REQUIRE_OK(exit_code.status());
    // Under ASan a leak or error at exit turns into a non-zero exit code here.
    INFO("log tail:\n" << cluster.log_tail(0));
    REQUIRE(exit_code.value() == 0);

    KV_REQUIRE_OK(cluster.start_and_wait(0));
    RawClient client(cluster.endpoint(0));
    expect_all_values(client, entries);
    // A clean stop keeps the actor.
    CHECK_THAT(cluster.log_tail(0, 10000), !Catch::Contains("did not stop cleanly"));
}

// A write-ahead log damaged in its middle after a crash (a byte flipped on
// disk) would replay only up to the damage and silently drop the acknowledged
// writes after it: the node refuses to start, naming the file and the way out,
// and starts with --wal-discard-damaged, after which the log is whole again.
TEST_CASE("a log damaged in its middle stops the node until the damage is discarded",
          "[process][durability]") {
    ProcessCluster cluster("walDamage");
    const std::vector<Entry> entries = make_entries();
    acked_then_killed(cluster, entries);

    const std::string wal = cluster.data_dir(0) + "/wal-0";
    KV_REQUIRE_OK(damage_log_middle(wal));
    KV_REQUIRE_OK(cluster.start(0));
    auto refused = cluster.wait_exit(0);
    KV_REQUIRE_OK(refused.status());
    INFO(cluster.log_tail(0));
    CHECK(refused.value() == kv::node::kExitDataNeedsOperator);
    CHECK_THAT(cluster.log_tail(0), Catch::Contains(wal + " is damaged at byte"));
    CHECK_THAT(cluster.log_tail(0), Catch::Contains("start once with --wal-discard-damaged"));

    cluster.set_extra_flags(0, {"--wal-discard-damaged"});
    KV_REQUIRE_OK(cluster.start_and_wait(0));
    CHECK_THAT(cluster.log_tail(0), Catch::Contains("discarding every record after"));
    size_t kept = 0;
    {
        RawClient client(cluster.endpoint(0));
        for (const Entry& e : entries) {
            const proto::GetResponse got = get_of(client, e.key);
            if (got.code == ErrorCode::ok && got.values == std::vector<std::string>{e.value})
                ++kept;
        }
        // With one replica nothing brings the dropped writes back.
        CHECK(kept > 0);
        CHECK(kept < entries.size());
        REQUIRE(write_code(request_ok(
                    client, proto::PutRequest{next_request_id(), "after", "1", {}, kOne, 0})) ==
                ErrorCode::ok);
    }
    // Without the flag again, after another crash: the log is whole.
    cluster.set_extra_flags(0, {});
    KV_REQUIRE_OK(cluster.restart(0));
    RawClient client(cluster.endpoint(0));
    CHECK(get_of(client, "after").values == std::vector<std::string>{"1"});
}

// Fail-stop: a commit that fails (here the LMDB map is full, found by a
// checkpoint of the write-ahead log or, with --wal false, by the commit) leaves the node's
// memory ahead of its store, so the node stops instead of serving on; every
// write it acknowledged before is in the store and reads back after a restart.
TEST_CASE("a failed commit stops the node, and what it acknowledged survives",
          "[process][durability]") {
    const std::string wal = GENERATE(as<std::string>{}, "true", "false");
    INFO("--wal " << wal);
    ProcessCluster cluster("failstop");
    KV_REQUIRE_OK(cluster.add_nodes(1, 1));
    cluster.set_extra_flags(0, {"--map-size-mb", "1", "--wal", wal, "--wal-checkpoint-mb", "1"});
    KV_REQUIRE_OK(cluster.start_all());
    const std::string value(64 * 1024, 'f');
    std::vector<std::string> acked;
    bool refused = false;
    {
        RawClient client(cluster.endpoint(0));
        // 64 KiB values cannot fit a 1 MiB map for long. With the write-ahead
        // log (the default) the failure comes at a checkpoint into LMDB (one
        // per MiB of log here): a write after it is refused.
        for (int i = 0; i < 160 && !refused; ++i) {
            const std::string key = "full-" + std::to_string(i);
            auto reply =
                client.request(proto::PutRequest{next_request_id(), key, value, {}, kOne, 0}, 3000);
            if (reply.ok() && write_code(reply.value()) == ErrorCode::ok) {
                acked.push_back(key);
            } else {
                refused = true;
            }
        }
    }
    INFO(cluster.log_tail(0));
    REQUIRE(refused);
    REQUIRE(acked.size() >= 3);  // the map held some before it filled
    bool exited = false;
    for (int waited_ms = 0; waited_ms < kExitTimeoutMs && !exited; waited_ms += 100) {
        exited = !cluster.alive(0);
        if (!exited) usleep(100 * 1000);
    }
    REQUIRE(exited);
    CHECK(cluster.log_tail(0).find("stopping: a store commit failed") != std::string::npos);

    cluster.set_extra_flags(0, {"--wal", wal});  // the default map: room again
    KV_REQUIRE_OK(cluster.start_and_wait(0));
    RawClient client(cluster.endpoint(0));
    for (const auto& key : acked) {
        const proto::GetResponse got = get_of(client, key);
        INFO(key);
        CHECK(got.code == ErrorCode::ok);
        CHECK(got.values == std::vector<std::string>{value});
    }
}

}  // namespace kv::test
