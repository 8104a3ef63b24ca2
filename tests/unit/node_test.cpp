// The Node state machine, driven by the deterministic simulated cluster.
#include <catch2/catch.hpp>

#include "sim/cluster.h"

using namespace kv;

namespace {

proto::Consistency level(proto::Level l) { return proto::Consistency{l, 0, false}; }

// Sends one request to node `i` and runs virtual time until its reply arrives.
proto::Message call(sim::Cluster& c, size_t i, proto::Message req, uint64_t ms_max = 20000) {
    static uint64_t next_id = 1000;
    const uint64_t id = next_id++;
    std::visit([id](auto& m) { m.id = id; }, req);
    c.client_send(i, "tester", std::move(req));
    std::vector<proto::Message> got;
    bool done = c.run_until(
        [&] {
            for (auto& m : c.take_replies("tester")) got.push_back(std::move(m));
            for (auto& m : got) {
                if (proto::request_id(m) == id) return true;
            }
            return false;
        },
        ms_max);
    REQUIRE(done);
    for (auto& m : got) {
        if (proto::request_id(m) == id) return m;
    }
    FAIL("unreachable");
    return {};
}

proto::WriteResponse put(sim::Cluster& c, size_t i, const std::string& key, const std::string& value,
                         proto::Consistency cl = level(proto::Level::quorum),
                         std::optional<std::string> ctx = std::nullopt) {
    auto m = call(c, i, proto::PutRequest{0, key, value, std::move(ctx), cl, 0});
    REQUIRE(std::holds_alternative<proto::WriteResponse>(m));
    return std::get<proto::WriteResponse>(m);
}

proto::WriteResponse del(sim::Cluster& c, size_t i, const std::string& key,
                         std::optional<std::string> ctx = std::nullopt,
                         proto::Consistency cl = level(proto::Level::quorum)) {
    auto m = call(c, i, proto::DelRequest{0, key, std::move(ctx), cl, 0});
    REQUIRE(std::holds_alternative<proto::WriteResponse>(m));
    return std::get<proto::WriteResponse>(m);
}

proto::GetResponse get(sim::Cluster& c, size_t i, const std::string& key,
                       proto::Consistency cl = level(proto::Level::quorum)) {
    auto m = call(c, i, proto::GetRequest{0, key, cl, 0});
    REQUIRE(std::holds_alternative<proto::GetResponse>(m));
    return std::get<proto::GetResponse>(m);
}

proto::GetResponse local_get(sim::Cluster& c, size_t i, const std::string& key) {
    auto m = call(c, i, proto::LocalGetRequest{0, key});
    REQUIRE(std::holds_alternative<proto::GetResponse>(m));
    return std::get<proto::GetResponse>(m);
}

sim::ClusterOptions options(uint32_t nodes, uint64_t seed = 7) {
    sim::ClusterOptions o;
    o.nodes = nodes;
    o.seed = seed;
    return o;
}

using Values = std::vector<std::string>;

}  // namespace

TEST_CASE("a single node puts, gets and deletes") {
    sim::Cluster c(options(1));
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

TEST_CASE("with one replica down, quorum works, all fails naming 2 of 3, and heals after restart") {
    sim::Cluster c(options(3));
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
    c.run_for(2000);  // pings find n3 again
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
    auto m = call(c, 0,
                  proto::PutRequest{0, "k", "v", std::nullopt, level(proto::Level::all), 500});
    auto w = std::get<proto::WriteResponse>(m);
    CHECK(w.code == ErrorCode::timeout);
    CHECK_THAT(w.message, Catch::Contains("2 of 3"));
    CHECK(w.info.replicas_answered == 2);
}

TEST_CASE("read repair brings a stale replica up to date after a quorum read") {
    sim::Cluster c(options(3));
    c.crash(1);
    c.run_for(4000);
    REQUIRE(put(c, 0, "k", "v").code == ErrorCode::ok);
    c.restart(1);
    c.run_for(2000);
    CHECK(local_get(c, 1, "k").code == ErrorCode::not_found);
    CHECK(get(c, 0, "k").values == Values{"v"});
    c.run_for(200);
    CHECK(local_get(c, 1, "k").values == Values{"v"});
    CHECK(c.node(0).stats().read_repairs >= 1);
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
    auto too_many = call(c, 0, proto::GetRequest{0, "k", proto::Consistency{proto::Level::one, 5, false}, 0});
    CHECK(std::get<proto::GetResponse>(too_many).code == ErrorCode::invalid_argument);
    auto not_a_request = call(c, 0, proto::PingResponse{0, "x"});
    CHECK(std::get<proto::ErrorResponse>(not_a_request).code == ErrorCode::bad_request);
    CHECK(get(c, 0, "k").values == Values{"v"});
}

TEST_CASE("the same seed gives the same replies, byte for byte") {
    auto run = [](uint64_t seed) {
        sim::Cluster c(options(3, seed));
        std::string transcript;
        c.on_client_reply([&](const std::string&, const proto::Message& m) { transcript += proto::encode(m); });
        for (int i = 0; i < 20; ++i) {
            c.client_send(i % 3, "w", proto::PutRequest{uint64_t(i + 1), "k" + std::to_string(i % 4),
                                                        "v" + std::to_string(i), std::nullopt,
                                                        level(proto::Level::quorum), 0});
            c.run_for(3);
        }
        c.crash(1);
        c.run_for(50);
        c.restart(1);
        for (int i = 0; i < 4; ++i) {
            c.client_send(i % 3, "r", proto::GetRequest{uint64_t(100 + i), "k" + std::to_string(i),
                                                        level(proto::Level::all), 0});
        }
        c.run_for(6000);
        return transcript;
    };
    const std::string a = run(42);
    CHECK(a.size() > 100);
    CHECK(a == run(42));
}
