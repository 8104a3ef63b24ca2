// Coordinator (node/coordinator/coordinator.h) driven without a cluster: the
// peers are played by the test, which answers (or fails) each call by hand.
#include <catch2/catch.hpp>

#include "node/coordinator/coordinator.h"
#include "node/replica/handoffs.h"
#include "tests/unit/component_env.h"

using namespace kv;
using namespace kv::node;
using kv::test::ComponentEnv;
using kv::test::minted_object;

namespace {

struct Sent {
    std::string to;  // peer id, or the client's route for replies
    Message message;
};

struct Fixture {
    explicit Fixture(NodeConfig node_config = config())
        : node(std::move(node_config)),
          membership({{"a", "tcp://a"}, {"b", "tcp://b"}, {"c", "tcp://c"}, {"d", "tcp://d"}}),
          placement("a", 3, 64),
          handoffs(env),
          hints(node, env, stats),
          replica(node, env, placement, handoffs, hints),
          peers(node, env, ids),
          coordinator(node, env, ids, stats, placement, peers, replica) {
        placement.refresh(membership, nullptr);
        replica.set_actor("a.1");
        ids.start(2);
        peers.start(env.now_ms(), nullptr);  // every peer reachable for the detection window
    }
    static const NodeConfig& config() {
        static const NodeConfig c = [] {
            NodeConfig c;
            c.node_id = "a";
            c.n_replicas = 3;
            // The cases here count a read's calls to every replica (budgets,
            // sibling limits); asking only r is node_test's.
            c.read_all_replicas = true;
            return c;
        }();
        return c;
    }
    std::vector<Sent> sent() {
        auto out = env.commit();
        REQUIRE(out.ok());
        std::vector<Sent> messages;
        for (auto& o : out.value())
            messages.push_back({o.to_peer ? o.peer_id : o.reply_to.route, std::move(o.message)});
        return messages;
    }
    // A key that this node ("a") does not replicate: a peer mints its writes.
    std::string remote_key() const {
        for (int i = 0;; ++i) {
            const std::string key = "k" + std::to_string(i);
            if (!has_id(placement.replicas(key), "a")) return key;
        }
    }

    NodeConfig node;
    ComponentEnv env;
    gossip::StaticMembership membership;
    Placement placement;
    NodeStats stats;
    Handoffs handoffs;
    HintStore hints;
    Replica replica;
    RequestIds ids;
    Peers peers;
    Coordinator coordinator;
};

const proto::Consistency kQuorum{proto::Level::quorum, 0, false};

}  // namespace

TEST_CASE("a minting replica the request cannot reach passes the turn to the next one") {
    Fixture f;
    const std::string key = f.remote_key();
    const std::vector<std::string> replicas = f.placement.replicas(key);
    f.coordinator.handle_write(ReplyTo{"client"}, 42, key, std::string("v"), std::nullopt, false,
                               kQuorum, 0);
    auto first = f.sent();
    REQUIRE(first.size() == 1);
    CHECK(first[0].to == replicas[0]);
    REQUIRE(std::holds_alternative<ReplicaWriteRequest>(first[0].message));

    // The runtime found no connection to the first replica: nothing was minted there.
    f.coordinator.on_send_failed(replicas[0], node::request_id(first[0].message));
    auto second = f.sent();
    REQUIRE(second.size() == 1);
    CHECK(second[0].to == replicas[1]);
    REQUIRE(std::holds_alternative<ReplicaWriteRequest>(second[0].message));
    CHECK(f.coordinator.in_flight() == 1);

    // The second mints; the coordinator replicates to the other two.
    f.coordinator.on_reply(replicas[1], ReplicaWriteResponse{node::request_id(second[0].message),
                                                             ErrorCode::ok,
                                                             {},
                                                             minted_object(replicas[1] + ".1", "v"),
                                                             std::nullopt});
    auto merges = f.sent();
    REQUIRE(merges.size() == 2);
    for (const auto& m : merges) REQUIRE(std::holds_alternative<ReplicaMergeRequest>(m.message));
    const Sent& to_third = merges[0].to == replicas[2] ? merges[0] : merges[1];
    REQUIRE(to_third.to == replicas[2]);
    f.coordinator.on_reply(
        replicas[2], ReplicaMergeResponse{node::request_id(to_third.message), ErrorCode::ok, {}});
    auto answer = f.sent();
    REQUIRE(answer.size() == 1);
    CHECK(answer[0].to == "client");
    REQUIRE(std::holds_alternative<proto::WriteResponse>(answer[0].message));
    const auto& reply = std::get<proto::WriteResponse>(answer[0].message);
    CHECK(reply.id == 42);
    CHECK(reply.code == ErrorCode::ok);
    CHECK(reply.info.replicas_answered == 2);
}

TEST_CASE("when no replica can be reached to mint, the write fails as unavailable") {
    Fixture f;
    const std::string key = f.remote_key();
    f.coordinator.handle_write(ReplyTo{"client"}, 43, key, std::string("v"), std::nullopt, false,
                               kQuorum, 0);
    std::vector<Sent> replies;
    for (int call = 0; call < 3; ++call) {
        auto out = f.sent();
        REQUIRE(out.size() == 1);
        if (!std::holds_alternative<ReplicaWriteRequest>(out[0].message)) {
            replies = std::move(out);
            break;
        }
        f.coordinator.on_send_failed(out[0].to, node::request_id(out[0].message));
    }
    if (replies.empty()) replies = f.sent();
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].to == "client");
    REQUIRE(std::holds_alternative<proto::WriteResponse>(replies[0].message));
    CHECK(std::get<proto::WriteResponse>(replies[0].message).code == ErrorCode::unavailable);
    CHECK(f.coordinator.in_flight() == 0);
}

TEST_CASE("a minting replica that answered with an error is not replaced: it may have minted") {
    Fixture f;
    const std::string key = f.remote_key();
    f.coordinator.handle_write(ReplyTo{"client"}, 44, key, std::string("v"), std::nullopt, false,
                               kQuorum, 0);
    auto first = f.sent();
    REQUIRE(first.size() == 1);
    f.coordinator.on_reply(
        first[0].to,
        ReplicaWriteResponse{
            node::request_id(first[0].message), ErrorCode::storage_error, "commit failed", {}, {}});
    auto replies = f.sent();
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].to == "client");
    CHECK(std::get<proto::WriteResponse>(replies[0].message).code == ErrorCode::storage_error);
}

TEST_CASE("a read returns at most siblings_max values and a context that keeps the others") {
    // Two replicas each hold 100 siblings (the limit), one of them different:
    // concurrent writes minted at two replicas, each within the limit there.
    // Their merge has 101; the read shows 100 and its context leaves the
    // 101st uncovered, so resolving with it cannot supersede a value unseen.
    Fixture f;
    const size_t limit = Fixture::config().siblings_max;
    Object base;
    for (size_t i = 0; i + 1 < limit; ++i) {
        auto next = update(base, {}, "b.1", "v" + std::to_string(i), limit, proto::kObjectBytesMax);
        REQUIRE(next.ok());
        base = std::move(next).value();
    }
    auto with_x = update(base, {}, "c.1", std::string("x"), limit, proto::kObjectBytesMax);
    auto with_y = update(base, {}, "d.1", std::string("y"), limit, proto::kObjectBytesMax);
    REQUIRE(with_x.ok());
    REQUIRE(with_y.ok());
    REQUIRE(with_x->siblings.size() == limit);

    const std::string key = f.remote_key();
    f.coordinator.handle(ReplyTo{"client"}, proto::GetRequest{50, key, kQuorum, 0});
    auto reads = f.sent();
    REQUIRE(reads.size() == 3);
    f.coordinator.on_reply(
        reads[0].to,
        ReplicaReadResponse{
            node::request_id(reads[0].message), ErrorCode::ok, {}, encode_object(with_x.value())});
    f.coordinator.on_reply(
        reads[1].to,
        ReplicaReadResponse{
            node::request_id(reads[1].message), ErrorCode::ok, {}, encode_object(with_y.value())});
    auto out = f.sent();
    const proto::GetResponse* reply = nullptr;
    for (const auto& m : out) {
        if (m.to == "client") reply = &std::get<proto::GetResponse>(m.message);
    }
    REQUIRE(reply != nullptr);
    CHECK(reply->code == ErrorCode::ok);
    CHECK(reply->values.size() == limit);
    CHECK(reply->info.sibling_count == limit + 1);
    CHECK_THAT(reply->message, Catch::Contains("101"));

    // Resolving with that context supersedes the 100 shown, not the one left out.
    auto context = decode_context(reply->context);
    REQUIRE(context.ok());
    const Object merged = merge(with_x.value(), with_y.value());
    auto resolved =
        update(merged, context.value(), "a.1", std::string("r"), limit, proto::kObjectBytesMax);
    REQUIRE(resolved.ok());
    CHECK(resolved->live_count() == 2);
}

namespace {

// The replica calls sent for one client read, and how to answer them.
struct ReadCalls {
    std::vector<Sent> calls;
    void answer(Fixture& f, size_t i) const {
        f.coordinator.on_reply(
            calls.at(i).to,
            ReplicaReadResponse{
                node::request_id(calls.at(i).message), ErrorCode::ok, {}, std::nullopt});
    }
};

ReadCalls start_read(Fixture& f, const std::string& client, uint64_t id, const std::string& key) {
    f.coordinator.handle(ReplyTo{client}, proto::GetRequest{id, key, kQuorum, 0});
    ReadCalls r{f.sent()};
    return r;
}

const proto::GetResponse* reply_to(const std::vector<Sent>& out, const std::string& client) {
    for (const auto& m : out) {
        if (m.to == client) return &std::get<proto::GetResponse>(m.message);
    }
    return nullptr;
}

}  // namespace

TEST_CASE("an answered read frees its client's slot at once, before every replica answered") {
    NodeConfig config = Fixture::config();
    config.requests_in_flight_max = 1;
    Fixture f(config);
    const std::string key = f.remote_key();
    ReadCalls first = start_read(f, "client", 60, key);
    REQUIRE(first.calls.size() == 3);
    first.answer(f, 0);
    first.answer(f, 1);                       // quorum: answered; the third replica is still out
    const std::vector<Sent> sent = f.sent();  // reply_to points into it
    const proto::GetResponse* reply = reply_to(sent, "client");
    REQUIRE(reply != nullptr);
    CHECK(reply->code == ErrorCode::not_found);

    // The slot is free although the op waits for the third replica (read repair).
    ReadCalls second = start_read(f, "client", 61, key);
    CHECK(reply_to(second.calls, "client") == nullptr);
    CHECK(second.calls.size() == 3);
    CHECK(f.stats.overloaded == 0);
}

TEST_CASE("requests in flight are limited per connection, in number and in bytes") {
    NodeConfig config = Fixture::config();
    config.connection_requests_max = 2;
    config.connection_bytes_max = 2 * Coordinator::kOpOverheadBytes + 3000;
    Fixture f(config);
    const std::string key = f.remote_key();
    start_read(f, "c1", 1, key);
    start_read(f, "c1", 2, key);
    CHECK(f.coordinator.client_ops() == 2);
    ReadCalls third = start_read(f, "c1", 3, key);
    const proto::GetResponse* refused = reply_to(third.calls, "c1");
    REQUIRE(refused != nullptr);
    CHECK(refused->code == ErrorCode::overloaded);
    CHECK(refused->message.find("from this connection") != std::string::npos);
    CHECK(refused->message.find("--connection-max-in-flight)") != std::string::npos);
    // Another connection is served meanwhile.
    ReadCalls other = start_read(f, "c2", 4, key);
    CHECK(reply_to(other.calls, "c2") == nullptr);
    CHECK(other.calls.size() == 3);

    // Bytes: one write of 2,000 bytes fits c3's budget, a second does not.
    f.coordinator.handle_write(ReplyTo{"c3"}, 5, key, std::string(2000, 'v'), std::nullopt, false,
                               kQuorum, 0);
    CHECK(f.sent().size() == 1);  // the mint request
    f.coordinator.handle_write(ReplyTo{"c3"}, 6, key, std::string(2000, 'v'), std::nullopt, false,
                               kQuorum, 0);
    auto out = f.sent();
    REQUIRE(out.size() == 1);
    const auto& write_refused = std::get<proto::WriteResponse>(out[0].message);
    CHECK(write_refused.code == ErrorCode::overloaded);
    CHECK(write_refused.message.find("--connection-max-in-flight-bytes") != std::string::npos);
    CHECK(f.stats.overloaded == 2);
}

TEST_CASE("a connection's budget entry outlives its last op until the next tick, as if absent") {
    // Entries at zero are dropped at a tick, not as the op ends, so that a
    // connection with one request at a time does not make and free one for
    // each; until then such an entry admits as an absent one does: a
    // connection's first request is admitted even past its byte budget.
    NodeConfig config = Fixture::config();
    config.connection_bytes_max = Coordinator::kOpOverheadBytes + 100;
    Fixture f(config);
    const std::string key = f.remote_key();
    ReadCalls read = start_read(f, "c1", 1, key);
    read.answer(f, 0);
    read.answer(f, 1);
    REQUIRE(reply_to(f.sent(), "c1") != nullptr);
    CHECK(f.coordinator.client_ops() == 0);
    CHECK(f.coordinator.connections_tracked() == 1);

    f.coordinator.handle_write(ReplyTo{"c1"}, 2, key, std::string(2000, 'v'), std::nullopt, false,
                               kQuorum, 0);
    auto out = f.sent();
    REQUIRE(out.size() == 1);
    CHECK(std::holds_alternative<ReplicaWriteRequest>(out[0].message));  // admitted: the mint call
    CHECK(f.coordinator.client_ops() == 1);

    ReadCalls other = start_read(f, "c2", 3, key);
    other.answer(f, 0);
    other.answer(f, 1);
    REQUIRE(reply_to(f.sent(), "c2") != nullptr);
    CHECK(f.coordinator.connections_tracked() == 2);
    f.coordinator.expire_due(f.env.now_ms());
    CHECK(f.coordinator.connections_tracked() == 1);  // c1's write is still in flight
    // A second large write from c1 now counts against c1's budget.
    f.coordinator.handle_write(ReplyTo{"c1"}, 4, key, std::string(2000, 'v'), std::nullopt, false,
                               kQuorum, 0);
    out = f.sent();
    REQUIRE(out.size() == 1);
    REQUIRE(std::holds_alternative<proto::WriteResponse>(out[0].message));
    CHECK(std::get<proto::WriteResponse>(out[0].message).code == ErrorCode::overloaded);
}

TEST_CASE("requests in flight are limited in total, in number and in bytes") {
    NodeConfig config = Fixture::config();
    config.requests_in_flight_max = 3;
    config.request_bytes_in_flight_max = 3 * Coordinator::kOpOverheadBytes + 5000;
    Fixture f(config);
    const std::string key = f.remote_key();
    f.coordinator.handle_write(ReplyTo{"w1"}, 1, key, std::string(2000, 'v'), std::nullopt, false,
                               kQuorum, 0);
    f.coordinator.handle_write(ReplyTo{"w2"}, 2, key, std::string(2000, 'v'), std::nullopt, false,
                               kQuorum, 0);
    CHECK(f.sent().size() == 2);
    CHECK(f.coordinator.client_bytes() == 2 * (key.size() + 2000 + Coordinator::kOpOverheadBytes));
    f.coordinator.handle_write(ReplyTo{"w3"}, 3, key, std::string(2000, 'v'), std::nullopt, false,
                               kQuorum, 0);
    auto out = f.sent();
    REQUIRE(out.size() == 1);
    CHECK(std::get<proto::WriteResponse>(out[0].message).code == ErrorCode::overloaded);
    CHECK(std::get<proto::WriteResponse>(out[0].message).message.find("--max-in-flight-bytes") !=
          std::string::npos);
    // A small read still fits the bytes; then the count is full for everyone.
    ReadCalls read = start_read(f, "r1", 4, key);
    CHECK(read.calls.size() == 3);
    ReadCalls refused = start_read(f, "r2", 5, key);
    const proto::GetResponse* reply = reply_to(refused.calls, "r2");
    REQUIRE(reply != nullptr);
    CHECK(reply->code == ErrorCode::overloaded);
    CHECK(reply->message.find("at this node (3, --max-in-flight)") != std::string::npos);
}

TEST_CASE("answered ops wait for their follow-up in a bounded background budget") {
    NodeConfig config = Fixture::config();
    config.background_ops_max = 1;
    Fixture f(config);
    const std::string key = f.remote_key();
    ReadCalls first = start_read(f, "c", 1, key);
    ReadCalls second = start_read(f, "c", 2, key);
    first.answer(f, 0);
    first.answer(f, 1);
    second.answer(f, 0);
    second.answer(f, 1);
    auto out = f.sent();
    REQUIRE(out.size() == 2);  // both clients answered
    CHECK(f.coordinator.client_ops() == 0);
    CHECK(f.coordinator.client_bytes() == 0);
    // The first waits for its third replica; the second's follow-up was dropped.
    CHECK(f.coordinator.background_ops() == 1);
    CHECK(f.coordinator.in_flight() == 1);
    CHECK(f.stats.background_dropped == 1);
    // The third replica's answer to the first finishes it; to the second it is ignored.
    first.answer(f, 2);
    second.answer(f, 2);
    CHECK(f.coordinator.in_flight() == 0);
    CHECK(f.coordinator.background_ops() == 0);
    CHECK(f.coordinator.background_bytes() == 0);
}

TEST_CASE(
    "replicas that sent the same bytes are answered from them; one that differs later is "
    "merged and the others repaired") {
    Fixture f;  // asks all three replicas
    const size_t limit = Fixture::config().siblings_max;
    auto x = update(Object{}, {}, "b.1", std::string("x"), limit, proto::kObjectBytesMax);
    REQUIRE(x.ok());
    auto y = update(x.value(), x->context, "c.1", std::string("y"), limit, proto::kObjectBytesMax);
    REQUIRE(y.ok());
    const std::string x_bytes = encode_object(x.value());
    const std::string key = f.remote_key();
    ReadCalls read = start_read(f, "client", 70, key);
    REQUIRE(read.calls.size() == 3);
    auto answer = [&](size_t i, const std::string& bytes) {
        f.coordinator.on_reply(
            read.calls.at(i).to,
            ReplicaReadResponse{
                node::request_id(read.calls.at(i).message), ErrorCode::ok, {}, bytes});
    };
    answer(0, x_bytes);
    answer(1, x_bytes);
    const std::vector<Sent> answered = f.sent();
    const proto::GetResponse* reply = reply_to(answered, "client");
    REQUIRE(reply != nullptr);
    CHECK(reply->code == ErrorCode::ok);
    CHECK(reply->values == std::vector<std::string>{"x"});
    CHECK(reply->context == encode_context(x->context));
    CHECK(reply->info.replicas_answered == 2);

    // The third holds a newer version: the two that agreed are repaired with it.
    answer(2, encode_object(y.value()));
    std::vector<std::string> repaired;
    for (const Sent& m : f.sent()) {
        const auto* merge_request = std::get_if<ReplicaMergeRequest>(&m.message);
        if (merge_request == nullptr) continue;
        repaired.push_back(m.to);
        auto object = decode_object(merge_request->object);
        REQUIRE(object.ok());
        CHECK(object.value() == y.value());
    }
    std::sort(repaired.begin(), repaired.end());
    std::vector<std::string> stale{read.calls[0].to, read.calls[1].to};
    std::sort(stale.begin(), stale.end());
    CHECK(repaired == stale);
}

TEST_CASE("a first answer that does not decode counts as a failed replica, not a version") {
    Fixture f;
    const std::string key = f.remote_key();
    ReadCalls read = start_read(f, "client", 71, key);
    REQUIRE(read.calls.size() == 3);
    auto answer = [&](size_t i, std::optional<std::string> bytes) {
        f.coordinator.on_reply(
            read.calls.at(i).to,
            ReplicaReadResponse{
                node::request_id(read.calls.at(i).message), ErrorCode::ok, {}, std::move(bytes)});
    };
    answer(0, std::string("\x92\x90\x91", 3));  // siblings promised, none there
    answer(1, std::nullopt);
    CHECK(reply_to(f.sent(), "client") == nullptr);  // one answer of the two quorum needs
    answer(2, std::nullopt);
    const std::vector<Sent> out = f.sent();
    const proto::GetResponse* reply = reply_to(out, "client");
    REQUIRE(reply != nullptr);
    CHECK(reply->code == ErrorCode::not_found);
    CHECK(reply->message == "no such key");
    CHECK(reply->info.replicas_answered == 2);
}
