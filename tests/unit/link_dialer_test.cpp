// LinkDialer (client/link_dialer.h) against a LinkServer over loopback TCP:
// a target comes up through the handshake and carries frames both ways; send
// fails while it is not up; a refusal, a server gone, nobody listening and a
// silent server each end an attempt with why, and the next attempt waits for
// the pace; a server back on its port is reached again; a name resolves off
// the owner's thread, and a lookup that stalls or fails ends its attempt
// without holding the others.
#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "client/link_dialer.h"
#include "client/link_server.h"
#include "client/link_socket.h"
#include "tests/unit/link_test_keys.h"
#include "tests/unit/scripted_lookup.h"

namespace {

using kv::ErrorCode;
using kv::client::CurveKey;
using kv::client::LinkDialer;
using kv::client::LinkDialerOptions;
using kv::client::LinkServer;
using kv::client::LinkServerOptions;
using kv::client::TcpEndpoint;
using kv::test::client_keys;
using kv::test::fresh_keys;
using kv::test::ScriptedLookup;
using kv::test::server_keys;

// An echoing LinkServer: each frame comes back with "re:" in front.
struct EchoServer {
    std::unique_ptr<LinkServer> server;
    explicit EchoServer(bool admit, uint16_t port = 0) {
        LinkServerOptions o;
        o.frame_bytes_max = 4096;
        o.keys = server_keys();
        const CurveKey admitted = client_keys().public_key;
        o.admit = [admitted, admit](const CurveKey& key) { return admit && key == admitted; };
        LinkServer::Callbacks callbacks;
        callbacks.on_frame = [this](uint64_t conn, std::string_view frame) {
            (void)server->send(conn, "re:" + std::string(frame));
        };
        auto made = LinkServer::listen({"127.0.0.1", port}, std::move(o), std::move(callbacks));
        REQUIRE(made.ok());
        server = std::move(made.value());
    }
    uint16_t port() const { return server->port(); }
};

struct Downs {
    bool was_up;
    kv::Status why;
};

struct Dialer {
    std::unique_ptr<LinkDialer> dialer;
    std::vector<std::string> ups;
    std::vector<std::string> frames;
    std::vector<Downs> downs;
    uint64_t now_ms = 1000;

    explicit Dialer(LinkDialerOptions o = sealed_options()) {
        LinkDialer::Callbacks callbacks;
        callbacks.on_up = [this](const std::string& target) { ups.push_back(target); };
        callbacks.on_frame = [this](const std::string&, std::string_view frame) {
            frames.emplace_back(frame);
        };
        callbacks.on_down = [this](const std::string&, bool was_up, const kv::Status& why) {
            downs.push_back({was_up, why});
        };
        auto made = LinkDialer::make(std::move(o), std::move(callbacks));
        REQUIRE(made.ok());
        dialer = std::move(made.value());
    }

    static LinkDialerOptions sealed_options() {
        LinkDialerOptions o;
        o.frame_bytes_max = 4096;
        o.keys = client_keys();
        o.server_key = server_keys().public_key;
        return o;
    }

    // Sealed options whose names `script` resolves.
    static LinkDialerOptions looked_up_by(ScriptedLookup& script) {
        LinkDialerOptions o = sealed_options();
        o.lookup = script.lookup();
        return o;
    }

    // Polls the dialer and the servers a bounded number of rounds at now_ms.
    void pump(std::vector<EchoServer*> servers, int rounds = 30) {
        for (int i = 0; i < rounds; ++i) {
            std::vector<pollfd> fds{{dialer->fd(), POLLIN, 0}};
            for (auto* s : servers) fds.push_back({s->server->fd(), POLLIN, 0});
            ::poll(fds.data(), fds.size(), 2);
            dialer->poll(now_ms);
            dialer->flush();
            for (auto* s : servers) {
                s->server->poll(now_ms);
                s->server->flush();
            }
        }
    }
};

}  // namespace

TEST_CASE("a target comes up through the handshake and carries frames both ways") {
    EchoServer server(true);
    Dialer d;
    d.dialer->add("n1", {"127.0.0.1", server.port()});
    CHECK(d.dialer->send("n1", "too early").code() == ErrorCode::connection);
    CHECK(d.dialer->next_due_ms() <= d.now_ms);  // the first attempt is due
    d.pump({&server});
    REQUIRE(d.ups == std::vector<std::string>{"n1"});
    CHECK(d.dialer->is_up("n1"));
    REQUIRE(d.dialer->send("n1", "ping").ok());
    d.pump({&server});
    CHECK(d.frames == std::vector<std::string>{"re:ping"});
    CHECK(d.downs.empty());
    CHECK(d.dialer->stats().attempts == 1);
    CHECK(d.dialer->stats().ups == 1);
    CHECK(d.dialer->send("n2", "nobody").code() == ErrorCode::connection);
}

TEST_CASE("a refused key ends each attempt with unauthorized, paced") {
    EchoServer server(false);
    Dialer d;
    d.dialer->add("n1", {"127.0.0.1", server.port()});
    d.pump({&server});
    REQUIRE(d.downs.size() == 1);
    CHECK_FALSE(d.downs[0].was_up);
    CHECK(d.downs[0].why.code() == ErrorCode::unauthorized);
    CHECK_THAT(d.downs[0].why.message(), Catch::Contains("not admitted"));
    CHECK(d.dialer->stats().refusals == 1);
    CHECK(d.ups.empty());
    // The next attempt waits 100 ms.
    d.now_ms += 99;
    d.pump({&server});
    CHECK(d.dialer->stats().attempts == 1);
    d.now_ms += 1;
    d.pump({&server});
    CHECK(d.dialer->stats().attempts == 2);
    CHECK(d.downs.size() == 2);
}

TEST_CASE("a server that goes away is reported down, and reached again once back") {
    uint16_t port = 0;
    auto server = std::make_unique<EchoServer>(true);
    port = server->port();
    Dialer d;
    d.dialer->add("n1", {"127.0.0.1", port});
    d.pump({server.get()});
    REQUIRE(d.dialer->is_up("n1"));
    server.reset();  // every link closed, the port free
    d.pump({});
    REQUIRE_FALSE(d.downs.empty());
    CHECK(d.downs[0].was_up);
    CHECK(d.dialer->stats().downs == 1);
    CHECK_FALSE(d.dialer->is_up("n1"));
    // Back on the same port: the dialer's next attempts reach it.
    server = std::make_unique<EchoServer>(true, port);
    for (int i = 0; i < 20 && !d.dialer->is_up("n1"); ++i) {
        d.now_ms += 200;
        d.pump({server.get()}, 5);
    }
    CHECK(d.dialer->is_up("n1"));
    CHECK(d.ups.size() == 2);
    REQUIRE(d.dialer->send("n1", "again").ok());
    d.pump({server.get()});
    CHECK(d.frames.back() == "re:again");
}

TEST_CASE("nobody listening: each attempt fails, and the delay doubles to its cap") {
    uint16_t port = 0;
    {
        auto listener = kv::client::LinkListener::listen({"127.0.0.1", 0});
        REQUIRE(listener.ok());
        port = listener.value()->port();
    }
    Dialer d;
    d.dialer->add("n1", {"127.0.0.1", port});
    std::vector<uint64_t> attempts_at;
    uint64_t last_attempts = 0;
    for (int step = 0; step < 500 && attempts_at.size() < 7; ++step) {
        d.pump({}, 3);
        if (d.dialer->stats().attempts != last_attempts) {
            last_attempts = d.dialer->stats().attempts;
            attempts_at.push_back(d.now_ms);
        }
        d.now_ms += 10;
    }
    REQUIRE(attempts_at.size() == 7);
    std::vector<uint64_t> gaps;
    for (size_t i = 1; i < attempts_at.size(); ++i)
        gaps.push_back(attempts_at[i] - attempts_at[i - 1]);
    CHECK(gaps == std::vector<uint64_t>{100, 200, 400, 800, 1000, 1000});
    CHECK(d.dialer->stats().connect_failures == d.dialer->stats().attempts);
    CHECK(d.ups.empty());
    for (const auto& down : d.downs) CHECK_FALSE(down.was_up);
}

TEST_CASE("a server that accepts and never answers fails the handshake at its deadline") {
    auto listener = kv::client::LinkListener::listen({"127.0.0.1", 0});
    REQUIRE(listener.ok());
    LinkDialerOptions o = Dialer::sealed_options();
    o.handshake_timeout_ms = 300;
    Dialer d(std::move(o));
    d.dialer->add("n1", {"127.0.0.1", listener.value()->port()});
    d.pump({}, 5);
    CHECK(d.downs.empty());
    d.now_ms += 300;
    d.pump({}, 5);
    REQUIRE(d.downs.size() == 1);
    CHECK(d.downs[0].why.code() == ErrorCode::timeout);
    CHECK(d.dialer->stats().handshake_failures == 1);
    // The connection the listener holds is closed by the dialer.
    auto accepted = listener.value()->accept_one();
    REQUIRE(accepted.ok());
    if (accepted.value() >= 0) ::close(accepted.value());
}

TEST_CASE("a target removed from its own frame callback is gone at once and safely") {
    EchoServer server(true);
    LinkDialer* raw = nullptr;
    std::vector<std::string> frames;
    LinkDialer::Callbacks callbacks;
    callbacks.on_frame = [&](const std::string& target, std::string_view frame) {
        frames.emplace_back(frame);
        raw->remove(target);
    };
    auto made = LinkDialer::make(Dialer::sealed_options(), std::move(callbacks));
    REQUIRE(made.ok());
    raw = made.value().get();
    raw->add("n1", {"127.0.0.1", server.port()});
    uint64_t now = 0;
    for (int i = 0; i < 30 && !raw->is_up("n1"); ++i) {
        raw->poll(now);
        raw->flush();
        server.server->poll(now);
        server.server->flush();
        pollfd p{raw->fd(), POLLIN, 0};
        ::poll(&p, 1, 2);
    }
    REQUIRE(raw->is_up("n1"));
    REQUIRE(raw->send("n1", "one").ok());
    REQUIRE(raw->send("n1", "two").ok());
    for (int i = 0; i < 30 && frames.empty(); ++i) {
        raw->flush();
        server.server->poll(now);
        server.server->flush();
        pollfd p{raw->fd(), POLLIN, 0};
        ::poll(&p, 1, 2);
        raw->poll(now);
    }
    // "re:two" may have come in the same read: it is not handed over.
    CHECK(frames == std::vector<std::string>{"re:one"});
    CHECK_FALSE(raw->is_up("n1"));
    CHECK(raw->send("n1", "more").code() == ErrorCode::connection);
}

TEST_CASE("a name resolves off the loop and its target comes up") {
    EchoServer server(true);
    ScriptedLookup script;
    Dialer d(Dialer::looked_up_by(script));
    d.dialer->add("n1", {"node-1.example", server.port()});
    d.pump({&server});
    REQUIRE(d.dialer->is_up("n1"));
    CHECK(script.names() == std::vector<std::string>{"node-1.example"});
    CHECK(d.dialer->stats().lookups == 1);
    // An address is not looked up.
    d.dialer->add("n2", {"127.0.0.1", server.port()});
    d.pump({&server});
    CHECK(d.dialer->is_up("n2"));
    CHECK(d.dialer->stats().lookups == 1);
    CHECK(d.downs.empty());
}

TEST_CASE("a lookup that stalls fails its attempt at the deadline while other targets serve") {
    EchoServer server(true);
    ScriptedLookup script;
    LinkDialerOptions o = Dialer::looked_up_by(script);
    o.resolve_timeout_ms = 3000;
    Dialer d(std::move(o));
    d.dialer->add("stalled", {"slow", server.port()});
    d.dialer->add("n2", {"127.0.0.1", server.port()});
    d.pump({&server});
    // "slow" blocks on the resolver's thread; the dialer's owner is not held.
    REQUIRE(script.wait_asked(1));
    REQUIRE(d.dialer->is_up("n2"));
    CHECK_FALSE(d.dialer->is_up("stalled"));
    REQUIRE(d.dialer->send("n2", "meanwhile").ok());
    d.pump({&server});
    CHECK(d.frames == std::vector<std::string>{"re:meanwhile"});
    CHECK(d.downs.empty());
    CHECK(d.dialer->next_due_ms() == 1000 + 3000);
    d.now_ms += 3000;
    d.pump({&server}, 3);
    REQUIRE(d.downs.size() == 1);
    CHECK_FALSE(d.downs[0].was_up);
    CHECK(d.downs[0].why.code() == ErrorCode::timeout);
    CHECK(d.downs[0].why.message() == "cannot resolve slow within 3000 ms");
    // The next attempt, after the pace, asks again; the stalled lookup's
    // answer, when it comes, is dropped, and the new one connects.
    d.now_ms += 100;
    d.pump({&server}, 3);
    CHECK(d.dialer->stats().lookups == 2);
    script.release();
    for (int i = 0; i < 100 && !d.dialer->is_up("stalled"); ++i) d.pump({&server}, 3);
    CHECK(d.dialer->is_up("stalled"));
    CHECK(script.names() == std::vector<std::string>{"slow", "slow"});
    CHECK(d.downs.size() == 1);
}

TEST_CASE("a name that does not resolve fails the attempt with the resolver's reason") {
    ScriptedLookup script;
    Dialer d(Dialer::looked_up_by(script));
    d.dialer->add("n1", {"bad", 7000});
    for (int i = 0; i < 100 && d.downs.empty(); ++i) d.pump({}, 3);
    REQUIRE(d.downs.size() == 1);
    CHECK(d.downs[0].why.code() == ErrorCode::connection);
    CHECK(d.downs[0].why.message() == "cannot resolve bad");
    CHECK(d.dialer->stats().connect_failures == 1);
}

TEST_CASE("an answer whose target is gone leaves the dialer's descriptor quiet") {
    ScriptedLookup script;
    Dialer d(Dialer::looked_up_by(script));
    d.dialer->add("n1", {"node-1.example", 7000});
    d.dialer->poll(d.now_ms);  // the lookup is asked
    for (int i = 0; i < 1000 && script.returned < 1; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(script.returned == 1);
    pollfd p{d.dialer->fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);  // the answer is there
    d.dialer->remove("n1");
    // Nothing is left for the owner to do: a descriptor that stayed readable
    // would make an owner waiting on it spin.
    CHECK(::poll(&p, 1, 0) == 0);
    d.dialer->poll(d.now_ms);
    CHECK(::poll(&p, 1, 0) == 0);
    CHECK(d.ups.empty());
    CHECK(d.downs.empty());
}
