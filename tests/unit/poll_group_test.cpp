// PollGroup (client/client.h): several AsyncClients driven from one thread.
// Fake nodes in this thread (a LinkServer for link:// clients, ROUTERs for
// ZeroMQ ones) answer gets; the group's poll must send each client's
// requests, wake for any client's replies, complete each request exactly
// once, and expire a request no node answers.
#include <poll.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "client/client.h"
#include "client/frame_batch.h"
#include "client/link_server.h"
#include "client/protocol.h"

namespace {

using kv::ErrorCode;
using kv::client::AsyncClient;
using kv::client::ClientOptions;
using kv::client::GetResult;
using kv::client::LinkServer;
using kv::client::PollGroup;
using kv::client::RequestOptions;
namespace proto = kv::proto;
using Clock = std::chrono::steady_clock;

constexpr int kWaitMs = 5000;  // generous: each step needs only a loopback hop
constexpr int kStepMs = 5;

uint64_t now_ms() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
            .count());
}

// The answer to every get in `frame` (a batch frame or a lone request), in
// the same shape; empty when `frame` holds no get.
std::vector<std::string> answers_to(std::string_view frame) {
    std::vector<std::string_view> parts;
    if (proto::is_batch_frame(frame)) {
        REQUIRE(proto::split_batch_frame(frame, parts));
    } else {
        parts.push_back(frame);
    }
    std::vector<std::string> out;
    for (std::string_view part : parts) {
        auto decoded = proto::decode(part);
        REQUIRE(decoded.ok());
        const auto* get = std::get_if<proto::GetRequest>(&decoded.value());
        if (get == nullptr) continue;
        proto::GetResponse reply;
        reply.id = get->id;
        reply.values = {"value of " + get->key};
        reply.context = "ctx";
        out.push_back(proto::encode(reply));
    }
    return out;
}

// A node over links that answers every get, or none when `silent`.
struct LinkNode {
    std::unique_ptr<LinkServer> server;
    bool silent = false;
    uint64_t frames = 0;

    LinkNode() {
        LinkServer::Callbacks callbacks;
        callbacks.on_established = [](uint64_t, const kv::client::CurveKey*) {};
        callbacks.on_frame = [this](uint64_t conn, std::string_view frame) {
            ++frames;
            if (silent) return;
            for (const std::string& answer : answers_to(frame)) {
                REQUIRE(server->send(conn, answer).ok());
            }
        };
        callbacks.on_closed = [](uint64_t, kv::client::LinkClose, const kv::Status&) {};
        kv::client::LinkServerOptions options;
        options.frame_bytes_max = proto::kFrameBytesMax;
        auto made = LinkServer::listen({"127.0.0.1", 0}, std::move(options), std::move(callbacks));
        REQUIRE(made.ok());
        server = std::move(made.value());
    }
    std::string endpoint() const { return "link://127.0.0.1:" + std::to_string(server->port()); }
    void step() {
        server->poll(now_ms());
        server->flush();
    }
};

// A ZeroMQ node: a ROUTER answering every get.
struct ZmqNode {
    zmq::context_t ctx{1};
    zmq::socket_t socket{ctx, zmq::socket_type::router};
    std::string endpoint;

    ZmqNode() {
        socket.set(zmq::sockopt::linger, 0);
        socket.bind("tcp://127.0.0.1:*");
        endpoint = socket.get(zmq::sockopt::last_endpoint);
    }
    void step() {
        for (;;) {
            zmq::message_t route;
            zmq::message_t frame;
            if (!socket.recv(route, zmq::recv_flags::dontwait)) return;
            REQUIRE(socket.recv(frame, zmq::recv_flags::none));
            for (const std::string& answer : answers_to(frame.to_string_view())) {
                socket.send(zmq::buffer(route.to_string_view()), zmq::send_flags::sndmore);
                socket.send(zmq::buffer(answer), zmq::send_flags::none);
            }
        }
    }
};

AsyncClient connect_to(const std::string& endpoint) {
    auto client = AsyncClient::connect({endpoint}, ClientOptions{});
    REQUIRE(client.ok());
    return std::move(client.value());
}

// Submits `count` gets on `client`; each answer or error lands in `got`.
void submit_gets(AsyncClient& client, const std::string& prefix, int count,
                 std::map<std::string, std::string>& got, RequestOptions options = {}) {
    for (int i = 0; i < count; ++i) {
        const std::string key = prefix + std::to_string(i);
        client.submit_get(key, options, [&got, key](kv::Result<GetResult> r) {
            REQUIRE(got.count(key) == 0);  // exactly once
            got[key] = r.ok() ? r->values.at(0) : std::string(kv::error_name(r.status().code()));
        });
    }
}

// Steps the nodes and polls the group until `done` holds or kWaitMs passes.
template <typename Step, typename Done>
bool run_until(PollGroup& group, Step step_nodes, Done done) {
    const auto until = Clock::now() + std::chrono::milliseconds(kWaitMs);
    while (!done()) {
        if (Clock::now() > until) return false;
        step_nodes();
        group.poll(kStepMs);
    }
    return true;
}

}  // namespace

TEST_CASE("poll group: link clients each complete through one group", "[poll_group]") {
    LinkNode a;
    LinkNode b;
    AsyncClient to_a = connect_to(a.endpoint());
    AsyncClient to_b = connect_to(b.endpoint());
    AsyncClient to_a_too = connect_to(a.endpoint());
    auto group = PollGroup::make({&to_a, &to_b, &to_a_too});
    REQUIRE(group.ok());
    std::map<std::string, std::string> got;
    submit_gets(to_a, "a", 5, got);
    submit_gets(to_b, "b", 5, got);
    submit_gets(to_a_too, "c", 5, got);
    REQUIRE(run_until(
        group.value(),
        [&] {
            a.step();
            b.step();
        },
        [&] { return got.size() == 15; }));
    for (const auto& [key, value] : got) CHECK(value == "value of " + key);
    // A second round on the same links: callbacks' submissions go at the next poll.
    to_b.submit_get("again", RequestOptions{}, [&](kv::Result<GetResult> r) {
        got["again"] = r.ok() ? r->values.at(0) : "error";
        submit_gets(to_a, "then", 1, got);
    });
    REQUIRE(run_until(
        group.value(),
        [&] {
            a.step();
            b.step();
        },
        [&] { return got.count("then0") == 1; }));
    CHECK(got["again"] == "value of again");
    CHECK(got["then0"] == "value of then0");
    CHECK(to_a.in_flight() + to_b.in_flight() + to_a_too.in_flight() == 0);
}

TEST_CASE("poll group: ZeroMQ clients each complete through one group", "[poll_group]") {
    ZmqNode a;
    ZmqNode b;
    AsyncClient to_a = connect_to(a.endpoint);
    AsyncClient to_b = connect_to(b.endpoint);
    auto group = PollGroup::make({&to_a, nullptr, &to_b});
    REQUIRE(group.ok());
    std::map<std::string, std::string> got;
    submit_gets(to_a, "a", 4, got);
    submit_gets(to_b, "b", 4, got);
    REQUIRE(run_until(
        group.value(),
        [&] {
            a.step();
            b.step();
        },
        [&] { return got.size() == 8; }));
    for (const auto& [key, value] : got) CHECK(value == "value of " + key);
}

TEST_CASE("poll group: a request no node answers expires while the others complete",
          "[poll_group]") {
    LinkNode answering;
    LinkNode silent;
    silent.silent = true;
    AsyncClient to_answering = connect_to(answering.endpoint());
    AsyncClient to_silent = connect_to(silent.endpoint());
    auto group = PollGroup::make({&to_silent, &to_answering});
    REQUIRE(group.ok());
    std::map<std::string, std::string> got;
    RequestOptions short_deadline;
    short_deadline.deadline_ms = 200;
    submit_gets(to_silent, "lost", 1, got, short_deadline);
    submit_gets(to_answering, "kept", 3, got);
    REQUIRE(run_until(
        group.value(),
        [&] {
            answering.step();
            silent.step();
        },
        [&] { return got.size() == 4; }));
    CHECK(got["lost0"] == "timeout");
    CHECK(silent.frames >= 1);  // it was sent, and went unanswered
    for (const char* key : {"kept0", "kept1", "kept2"}) {
        CHECK(got[key] == std::string("value of ") + key);
    }
}

TEST_CASE("poll group: with nothing in flight a poll returns at once", "[poll_group]") {
    LinkNode a;
    AsyncClient to_a = connect_to(a.endpoint());
    auto group = PollGroup::make({&to_a});
    REQUIRE(group.ok());
    const auto start = Clock::now();
    CHECK(group.value().poll(kWaitMs * 2) == 0);
    // Bound far above any scheduling delay: the call must not wait its timeout.
    CHECK(Clock::now() - start < std::chrono::milliseconds(kWaitMs));
}

// A group of one client polls it alone (its own set, no group set around
// it); a group of two goes through the group's set. Both must sleep.
TEST_CASE("poll group: a link client waiting on a silent node sleeps, not spins", "[poll_group]") {
    LinkNode silent;
    silent.silent = true;
    AsyncClient to_silent = connect_to(silent.endpoint());
    LinkNode other;
    other.silent = true;
    AsyncClient to_other = connect_to(other.endpoint());
    std::vector<AsyncClient*> clients{&to_silent};
    SECTION("one client") {}
    SECTION("two clients") {
        clients.push_back(&to_other);
    }
    auto group = PollGroup::make(clients);
    REQUIRE(group.ok());
    std::map<std::string, std::string> got;
    RequestOptions long_deadline;
    long_deadline.deadline_ms = 20000;  // stays in flight through the whole test
    submit_gets(to_silent, "unanswered", 1, got, long_deadline);
    if (clients.size() == 2) submit_gets(to_other, "also-unanswered", 1, got, long_deadline);
    REQUIRE(run_until(
        group.value(),
        [&] {
            silent.step();
            other.step();
        },
        [&] { return silent.frames >= 1 && (clients.size() == 1 || other.frames >= 1); }));
    // Past the waiter's backstop (ready_waiter.h, 100 ms), which once made
    // every pass of a group of link clients return at once: each poll(20)
    // must now wait its 20 ms, so 400 ms hold about 20 passes. A busy loop
    // makes thousands; a slow machine makes fewer, never more.
    const auto until = Clock::now() + std::chrono::milliseconds(400);
    int passes = 0;
    while (Clock::now() < until) {
        silent.step();
        other.step();
        CHECK(group.value().poll(20) == 0);
        ++passes;
    }
    CHECK(passes <= 60);
    CHECK(got.empty());
    CHECK(to_silent.in_flight() == 1);
    CHECK(to_other.in_flight() == clients.size() - 1);
}
