// AsyncClient's batch frames (client/client.h, ClientOptions::batch_requests)
// against a fake node: a ROUTER in this thread, stepped between polls. What
// was submitted since the last poll() (callbacks included) goes as one batch
// frame, and the replies of a batch frame complete each request; a node that
// refuses batch frames (as nodes of earlier versions did with --cluster-key)
// gets the batched requests again one by one, and no batch after that.
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "client/client.h"
#include "client/frame_batch.h"
#include "client/protocol.h"

namespace {

using kv::ErrorCode;
using kv::client::AsyncClient;
using kv::client::ClientOptions;
using kv::client::GetResult;
using kv::client::RequestOptions;
namespace proto = kv::proto;

constexpr int kWaitMs = 5000;  // generous: each step needs only a loopback hop
constexpr int kStepMs = 5;     // the fake node's and the client's turns alternate

// A ROUTER standing in for a node: one connection, frames in and out as they are.
class FakeNode {
  public:
    FakeNode() : socket_(ctx_, zmq::socket_type::router) {
        socket_.set(zmq::sockopt::rcvtimeo, kStepMs);
        socket_.set(zmq::sockopt::linger, 0);
        socket_.bind("tcp://127.0.0.1:*");
        endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    }
    const std::string& endpoint() const { return endpoint_; }

    // The next frame a client sent (empty when none came within kStepMs).
    std::string recv_frame() {
        zmq::message_t route;
        zmq::message_t frame;
        if (!socket_.recv(route, zmq::recv_flags::none)) return {};
        REQUIRE(route.more());
        REQUIRE(socket_.recv(frame, zmq::recv_flags::none));
        REQUIRE_FALSE(frame.more());
        route_ = route.to_string();
        return frame.to_string();
    }
    void send_frame(const std::string& frame) {
        socket_.send(zmq::buffer(route_), zmq::send_flags::sndmore);
        socket_.send(zmq::buffer(frame), zmq::send_flags::none);
    }

  private:
    zmq::context_t ctx_{1};
    zmq::socket_t socket_;
    std::string endpoint_;
    std::string route_;
};

proto::GetRequest decode_get(std::string_view frame) {
    auto decoded = proto::decode(frame);
    INFO(decoded.status().to_string() << " (" << frame.size() << " bytes)");
    REQUIRE(decoded.ok());
    const auto* get = std::get_if<proto::GetRequest>(&decoded.value());
    REQUIRE(get != nullptr);
    return *get;
}

std::string reply_to(const proto::GetRequest& get) {
    proto::GetResponse reply;
    reply.id = get.id;
    reply.values = {"value of " + get.key};
    reply.context = "ctx";
    return proto::encode(reply);
}

// Polls until `done` holds or kWaitMs passes.
template <typename Done>
bool poll_until(AsyncClient& client, Done done) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
    while (!done()) {
        if (std::chrono::steady_clock::now() > until) return false;
        client.poll(50);
    }
    return true;
}

struct Harness {
    FakeNode node;
    std::optional<AsyncClient> client;
    std::map<std::string, std::string> got;  // key -> value or error text

    explicit Harness(bool batch_requests) {
        ClientOptions options;
        options.batch_requests = batch_requests;
        auto connected = AsyncClient::connect({node.endpoint()}, options);
        REQUIRE(connected.ok());
        client.emplace(std::move(connected.value()));
    }

    // The next frame the client sends; the client polls meanwhile, since it
    // sends only once its connection is up (ZMQ_IMMEDIATE).
    std::string recv() {
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
        while (std::chrono::steady_clock::now() < until) {
            std::string frame = node.recv_frame();
            if (!frame.empty()) return frame;
            client->poll(kStepMs);
        }
        FAIL("the client sent nothing within " << kWaitMs << " ms");
        return {};
    }

    void get(const std::string& key, std::vector<std::string> then = {}) {
        client->submit_get(key, RequestOptions{},
                           [this, key, then = std::move(then)](kv::Result<GetResult> r) {
                               got[key] = r.ok() ? r->values.at(0) : r.status().to_string();
                               for (const auto& next : then) get(next);
                           });
    }

    // Each of `keys` arrives in a frame of its own, in order, and is answered.
    void answer_alone(const std::vector<std::string>& keys) {
        for (const auto& k : keys) {
            INFO(k);
            const std::string alone = recv();
            REQUIRE_FALSE(proto::is_batch_frame(alone));
            const proto::GetRequest get = decode_get(alone);
            CHECK(get.key == k);
            node.send_frame(reply_to(get));
        }
    }

    // The first get goes alone at once; its callback submits `then`.
    void answer_first(const std::vector<std::string>& then) {
        get("a", then);
        const proto::GetRequest first = decode_get(recv());
        CHECK(first.key == "a");
        node.send_frame(reply_to(first));
        REQUIRE(poll_until(*client, [&] { return got.count("a") == 1; }));
        CHECK(got["a"] == "value of a");
    }
};

}  // namespace

TEST_CASE(
    "async client: what callbacks submit goes as one batch frame; batch replies complete each",
    "[async_client]") {
    Harness h(true);
    h.answer_first({"b", "c", "d"});

    const std::string frame = h.recv();
    std::vector<std::string_view> parts;
    REQUIRE(proto::split_batch_frame(frame, parts));
    REQUIRE(parts.size() == 3);
    proto::BatchFrame replies;
    std::vector<std::string> keys;
    for (std::string_view part : parts) {
        const proto::GetRequest get = decode_get(part);
        keys.push_back(get.key);
        replies.add(reply_to(get));
    }
    CHECK(keys == std::vector<std::string>{"b", "c", "d"});
    h.node.send_frame(replies.bytes());
    REQUIRE(poll_until(*h.client, [&] { return h.got.size() == 4; }));
    for (const char* k : {"b", "c", "d"}) CHECK(h.got[k] == std::string("value of ") + k);
    CHECK(h.client->in_flight() == 0);
    CHECK(h.client->stale_replies() == 0);
}

TEST_CASE("async client: requests submitted between polls go together, in submission order",
          "[async_client]") {
    Harness h(true);
    h.answer_first({});
    for (const char* k : {"p", "q", "r", "s"}) h.get(k);
    const std::string frame = h.recv();
    std::vector<std::string_view> parts;
    REQUIRE(proto::split_batch_frame(frame, parts));
    std::vector<std::string> keys;
    for (std::string_view part : parts) {
        const proto::GetRequest get = decode_get(part);
        keys.push_back(get.key);
        h.node.send_frame(reply_to(get));  // answered one by one: the client reads both kinds
    }
    CHECK(keys == std::vector<std::string>{"p", "q", "r", "s"});
    REQUIRE(poll_until(*h.client, [&] { return h.got.size() == 5; }));
    CHECK(h.got["s"] == "value of s");
}

TEST_CASE("async client: a node that refuses batch frames gets the requests again one by one",
          "[async_client]") {
    Harness h(true);
    h.answer_first({"b", "c"});

    const std::string batch = h.recv();
    REQUIRE(proto::is_batch_frame(batch));
    // What a node of an earlier version answered, with --cluster-key.
    h.node.send_frame(proto::encode(
        proto::ErrorResponse{0, ErrorCode::unauthorized, "batch frames are for members only"}));
    h.answer_alone({"b", "c"});
    REQUIRE(poll_until(*h.client, [&] { return h.got.size() == 3; }));
    CHECK(h.got["b"] == "value of b");
    CHECK(h.got["c"] == "value of c");

    // And no batch frames after that.
    h.got.clear();
    h.answer_first({"e", "f"});
    h.answer_alone({"e", "f"});
    REQUIRE(poll_until(*h.client, [&] { return h.got.size() == 3; }));
    CHECK(h.client->in_flight() == 0);
}

TEST_CASE("async client: with batch_requests off every request goes alone", "[async_client]") {
    Harness h(false);
    h.answer_first({"b", "c"});
    h.answer_alone({"b", "c"});
    REQUIRE(poll_until(*h.client, [&] { return h.got.size() == 3; }));
}

// With nothing in flight after a reply, the client stops reading (a receive
// would most likely find nothing): a reply queued behind it, one no request
// awaits, is read and counted at the next poll with work, and does not hold
// up the reply that work is waiting for.
TEST_CASE("async client: a reply queued behind the last awaited one is read at the next poll",
          "[async_client]") {
    Harness h(false);
    h.get("a");
    const proto::GetRequest first = decode_get(h.recv());
    h.node.send_frame(reply_to(first));
    proto::GetRequest unknown = first;
    unknown.id = first.id + 1000;  // no request of the client has this id
    h.node.send_frame(reply_to(unknown));
    REQUIRE(poll_until(*h.client, [&] { return h.got.count("a") == 1; }));
    CHECK(h.got["a"] == "value of a");
    h.get("b");
    const proto::GetRequest second = decode_get(h.recv());
    h.node.send_frame(reply_to(second));
    REQUIRE(poll_until(*h.client, [&] { return h.got.count("b") == 1; }));
    CHECK(h.got["b"] == "value of b");
    CHECK(h.client->stale_replies() == 1);
    CHECK(h.client->in_flight() == 0);
}

namespace {

size_t threads_in_process() {
    size_t n = 0;
    for ([[maybe_unused]] const auto& entry :
         std::filesystem::directory_iterator("/proc/self/task")) {
        ++n;
    }
    return n;
}

}  // namespace

// Clients of one process share one ZeroMQ context: one I/O thread serves all
// their connections (a context each made 50 clients 50 I/O threads, each a
// thread wake-up per request and per reply). A client ended leaves the
// others working; one made after all ended gets a context that works.
TEST_CASE("async client: the clients of a process share one ZeroMQ I/O thread", "[async_client]") {
    FakeNode node;  // its context's threads start here, before the count
    std::vector<std::unique_ptr<AsyncClient>> clients;
    std::map<std::string, std::string> got;
    auto answer_one = [&](AsyncClient& client, const std::string& key) {
        client.submit_get(key, RequestOptions{}, [&got, key](kv::Result<GetResult> r) {
            got[key] = r.ok() ? r->values.at(0) : r.status().to_string();
        });
        std::string frame;
        for (int i = 0; i < kWaitMs / kStepMs && frame.empty(); ++i) {
            client.poll(0);
            frame = node.recv_frame();
        }
        REQUIRE_FALSE(frame.empty());
        node.send_frame(reply_to(decode_get(frame)));
        REQUIRE(poll_until(client, [&] { return got.count(key) == 1; }));
        CHECK(got[key] == "value of " + key);
    };
    const size_t before = threads_in_process();
    for (int i = 0; i < 8; ++i) {
        auto connected = AsyncClient::connect({node.endpoint()});
        REQUIRE(connected.ok());
        clients.push_back(std::make_unique<AsyncClient>(std::move(connected.value())));
        answer_one(*clients.back(), "k" + std::to_string(i));
    }
    // libzmq's I/O thread and its reaper, once for all eight.
    CHECK(threads_in_process() <= before + 2);
    clients.erase(clients.begin());
    answer_one(*clients.front(), "after-one-ended");
    clients.clear();
    auto again = AsyncClient::connect({node.endpoint()});
    REQUIRE(again.ok());
    answer_one(again.value(), "after-all-ended");
}
