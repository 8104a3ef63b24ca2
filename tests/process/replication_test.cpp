// Replication across real kvnode processes (3 nodes, n = 3): quorum survives a
// kill -9, `all` fails naming how many replicas answered, a restarted node is
// brought up to date by a read at `all` (hinted handoff off), and concurrent
// blind writes through two nodes become siblings that a write with the context
// resolves. With 5 nodes, `kvctl owners` names a key's homes, the two killed as
// down, and their stand-ins.
#include <algorithm>
#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <catch2/catch.hpp>

#include "client/client.h"
#include "client/protocol.h"
#include "tests/process/process_cluster.h"

namespace kv::test {
namespace {

const proto::Consistency kQuorum{proto::Level::quorum, 0, false};
const proto::Consistency kAll{proto::Level::all, 0, false};
constexpr uint64_t kShortDeadlineMs = 1500;

proto::WriteResponse put(RawClient& c, const std::string& key, const std::string& value,
                         const proto::Consistency& cl, std::optional<std::string> context = {},
                         uint64_t deadline_ms = 0) {
    auto reply = c.request(
        proto::PutRequest{next_request_id(), key, value, std::move(context), cl, deadline_ms});
    KV_REQUIRE_OK(reply.status());
    INFO(describe(reply.value()));
    REQUIRE(std::holds_alternative<proto::WriteResponse>(reply.value()));
    return std::get<proto::WriteResponse>(reply.value());
}

proto::GetResponse get(RawClient& c, const std::string& key, const proto::Consistency& cl,
                       uint64_t deadline_ms = 0) {
    auto reply = c.request(proto::GetRequest{next_request_id(), key, cl, deadline_ms});
    KV_REQUIRE_OK(reply.status());
    INFO(describe(reply.value()));
    REQUIRE(std::holds_alternative<proto::GetResponse>(reply.value()));
    return std::get<proto::GetResponse>(reply.value());
}

proto::GetResponse local_get(RawClient& c, const std::string& key) {
    auto reply = c.request(proto::LocalGetRequest{next_request_id(), key});
    KV_REQUIRE_OK(reply.status());
    REQUIRE(std::holds_alternative<proto::GetResponse>(reply.value()));
    return std::get<proto::GetResponse>(reply.value());
}

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

// The lines of `text`, each split at whitespace.
std::vector<std::vector<std::string>> words_by_line(const std::string& text) {
    std::vector<std::vector<std::string>> out;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream in(line);
        auto& words = out.emplace_back();
        for (std::string w; in >> w;) words.push_back(w);
    }
    return out;
}

}  // namespace

TEST_CASE(
    "3 nodes, n=3: quorum survives kill -9, all names 2 of 3, restart is repaired by a read at "
    "all") {
    ProcessCluster cluster("replication");
    KV_REQUIRE_OK(cluster.add_nodes(3, 3));
    // Read repair alone: hinted handoff and anti-entropy would bring the
    // restarted node up to date on their own (process_hinted_handoff_test,
    // process_anti_entropy_test).
    for (size_t i = 0; i < cluster.size(); ++i)
        cluster.set_extra_flags(i, {"--hinted-handoff", "false", "--anti-entropy", "false"});
    KV_REQUIRE_OK(cluster.start_all());
    RawClient n1(cluster.endpoint(0));
    RawClient n2(cluster.endpoint(1));

    auto first = put(n1, "key", "v1", kQuorum);
    REQUIRE(first.code == ErrorCode::ok);
    CHECK(first.info.replicas_asked == 3);
    CHECK(first.info.replicas_answered >= 2);
    // At `all`, so that the node killed next surely holds v1.
    auto first_everywhere = put(n1, "key", "v1", kAll, first.context);
    REQUIRE(first_everywhere.code == ErrorCode::ok);
    CHECK(first_everywhere.info.replicas_answered == 3);

    KV_REQUIRE_OK(cluster.kill_hard(2));

    // Before the failure is detected, `all` waits for its deadline and says how
    // many answered; quorum goes on working.
    auto all_write = put(n1, "other", "x", kAll, {}, kShortDeadlineMs);
    CHECK((all_write.code == ErrorCode::timeout || all_write.code == ErrorCode::unavailable));
    CHECK_THAT(all_write.message, Catch::Contains("2 of 3"));

    auto read = get(n2, "key", kQuorum);
    REQUIRE(read.code == ErrorCode::ok);
    CHECK(read.values == std::vector<std::string>{"v1"});
    auto second = put(n2, "key", "v2", kQuorum, read.context);
    REQUIRE(second.code == ErrorCode::ok);
    CHECK(second.info.replicas_answered == 2);
    CHECK(get(n1, "key", kQuorum).values == std::vector<std::string>{"v2"});

    // Once the node is known down, `all` fails at once, still naming 2 of 3.
    auto all_again = put(n1, "other", "y", kAll, {}, kShortDeadlineMs);
    CHECK((all_again.code == ErrorCode::timeout || all_again.code == ErrorCode::unavailable));
    CHECK_THAT(all_again.message, Catch::Contains("2 of 3"));
    CHECK(get(n1, "key", kAll, kShortDeadlineMs).code != ErrorCode::ok);

    KV_REQUIRE_OK(cluster.restart(2));
    RawClient n3(cluster.endpoint(2));
    CHECK(local_get(n3, "key").values == std::vector<std::string>{"v1"});  // it missed v2

    // Until its peers hear from it again and reconnect, they may count it
    // unreachable (unavailable) or fail to reach it (timeout): retry, bounded.
    proto::GetResponse all_read;
    for (int attempt = 0; attempt < 50; ++attempt) {
        all_read = get(n1, "key", kAll, kShortDeadlineMs);
        if (all_read.code == ErrorCode::ok) break;
        INFO(all_read.message);
        REQUIRE((all_read.code == ErrorCode::unavailable || all_read.code == ErrorCode::timeout));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    REQUIRE(all_read.code == ErrorCode::ok);
    CHECK(all_read.values == std::vector<std::string>{"v2"});
    // A read at `all` answers only after read repair: every replica holds v2.
    for (size_t i = 0; i < 3; ++i) {
        RawClient direct(cluster.endpoint(i));
        INFO("node " << cluster.node_id(i));
        CHECK(local_get(direct, "key").values == std::vector<std::string>{"v2"});
    }
}

TEST_CASE(
    "blind writes through two nodes become siblings; a put with the context leaves one value") {
    ProcessCluster cluster("siblings");
    KV_REQUIRE_OK(cluster.add_nodes(3, 3));
    KV_REQUIRE_OK(cluster.start_all());
    RawClient n1(cluster.endpoint(0));
    RawClient n2(cluster.endpoint(1));
    RawClient n3(cluster.endpoint(2));

    REQUIRE(put(n1, "doc", "from-n1", kQuorum).code == ErrorCode::ok);
    REQUIRE(put(n2, "doc", "from-n2", kQuorum).code == ErrorCode::ok);
    auto both = get(n3, "doc", kAll);
    REQUIRE(both.code == ErrorCode::ok);
    CHECK(sorted(both.values) == std::vector<std::string>{"from-n1", "from-n2"});
    CHECK(both.info.sibling_count == 2);

    auto resolved = put(n3, "doc", "merged", kQuorum, both.context);
    REQUIRE(resolved.code == ErrorCode::ok);
    CHECK(resolved.info.sibling_count == 1);
    for (RawClient* c : {&n1, &n2, &n3})
        CHECK(get(*c, "doc", kAll).values == std::vector<std::string>{"merged"});
}

TEST_CASE(
    "5 nodes, n=3: kvctl owners names the homes in order, two killed as down, and a "
    "stand-in for each") {
    ProcessCluster cluster("owners");
    KV_REQUIRE_OK(cluster.add_nodes(5, 3));
    KV_REQUIRE_OK(cluster.start_all());
    const std::string key = "owners:42";
    auto owners_from = [&](size_t i) {
        auto c = client::Client::connect({cluster.endpoint(i)});
        KV_REQUIRE_OK(c.status());
        auto o = c.value().owners(key);
        KV_REQUIRE_OK(o.status());
        return o.value();
    };
    const proto::OwnersResponse before = owners_from(0);
    REQUIRE(before.homes.size() == 3);
    CHECK(before.n_replicas == 3);
    CHECK(before.stand_ins.empty());
    std::vector<std::string> homes, others;
    for (const auto& h : before.homes) {
        CHECK(h.state == "up");
        homes.push_back(h.node_id);
    }
    size_t asked = cluster.size();  // a member that is no home: it names the others
    for (size_t i = 0; i < cluster.size(); ++i) {
        if (std::find(homes.begin(), homes.end(), cluster.node_id(i)) != homes.end()) continue;
        others.push_back(cluster.node_id(i));
        if (asked == cluster.size()) asked = i;
    }
    REQUIRE(others.size() == 2);

    for (size_t i = 0; i < cluster.size(); ++i) {
        if (cluster.node_id(i) == homes[1] || cluster.node_id(i) == homes[2]) {
            KV_REQUIRE_OK(cluster.kill_hard(i));
        }
    }
    // Until the asked node's failure detector gives up on them (--peer-down-after-ms).
    proto::OwnersResponse after;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    do {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        after = owners_from(asked);
    } while (after.stand_ins.size() < 2 && std::chrono::steady_clock::now() < deadline);
    CHECK(after.homes == std::vector<proto::HomeReplica>{
                             {homes[0], "up"}, {homes[1], "down"}, {homes[2], "down"}});
    REQUIRE(after.stand_ins.size() == 2);
    CHECK(after.stand_ins[0].for_home == homes[1]);
    CHECK(after.stand_ins[1].for_home == homes[2]);
    CHECK(sorted({after.stand_ins[0].node_id, after.stand_ins[1].node_id}) == sorted(others));
    CHECK(after.sloppy);

    // kvctl prints what the reply says: in text, homes in order, then the stand-ins.
    const std::string node = "--no-key --node " + cluster.endpoint(asked) + " ";
    const std::string text = run_kvctl(cluster, node + "owners " + key);
    INFO(text);
    const auto lines = words_by_line(text);
    using Words = std::vector<std::string>;
    auto at = [&](const Words& words) {
        return std::find(lines.begin(), lines.end(), words) - lines.begin();
    };
    const auto first = at({"1", homes[0], "up"});
    CHECK(first < static_cast<long>(lines.size()));
    CHECK(at({"2", homes[1], "down"}) == first + 1);
    CHECK(at({"3", homes[2], "down"}) == first + 2);
    CHECK(at({"STAND-IN", "FOR"}) == first + 3);
    CHECK(at({after.stand_ins[0].node_id, homes[1]}) == first + 4);
    CHECK(at({after.stand_ins[1].node_id, homes[2]}) == first + 5);

    // And in JSON.
    const std::string json = run_kvctl(cluster, node + "--json owners " + key);
    INFO(json);
    CHECK(json.find("{\"key\":\"" + key + "\",\"encoding\":\"utf8\"") == 0);
    CHECK(json.find(",\"n_replicas\":3,\"sloppy\":true,\"homes\":[{\"node_id\":\"" + homes[0] +
                    "\",\"state\":\"up\"},{\"node_id\":\"" + homes[1] +
                    "\",\"state\":\"down\"},{\"node_id\":\"" + homes[2] +
                    "\",\"state\":\"down\"}],\"stand_ins\":[{\"node_id\":\"" +
                    after.stand_ins[0].node_id + "\",\"for_home\":\"" + homes[1] +
                    "\"},{\"node_id\":\"" + after.stand_ins[1].node_id + "\",\"for_home\":\"" +
                    homes[2] + "\"}],\"new_owners\":[]}") != std::string::npos);

    // status shows the hint fields (none held: no write went to a stand-in).
    const std::string status = run_kvctl(cluster, node + "--json status");
    INFO(status);
    CHECK(status.find(",\"hints\":[],\"under_replicated_ranges\":0,\"anti_entropy\":{"
                      "\"tree_ready\":true,") != std::string::npos);
    // And anti-entropy's lines after them (ARCHITECTURE.md, "Anti-entropy").
    const auto status_lines = words_by_line(run_kvctl(cluster, node + "status"));
    REQUIRE(status_lines.size() >= 4);
    CHECK(status_lines[status_lines.size() - 4] == Words{"hints:", "none"});
    CHECK(status_lines[status_lines.size() - 3].at(0) == "anti-entropy:");
    CHECK(status_lines[status_lines.size() - 2].at(0) == "tombstones:");
    CHECK(status_lines.back().at(0) == "verified:");
}

}  // namespace kv::test
