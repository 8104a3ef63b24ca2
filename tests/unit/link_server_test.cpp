// LinkServer (client/link_server.h) over loopback TCP: frames reach the owner
// only from established links, replies go back to the right connection, and
// each way a link can end (refused key, broken handshake, handshake too slow,
// a slow reader, too many connections, the peer gone, the owner's close) is
// taken, counted and reported once.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client/link_server.h"
#include "client/link_socket.h"
#include "client/secure_link.h"
#include "tests/unit/link_test_keys.h"

namespace {

using kv::ErrorCode;
using kv::client::CurveKey;
using kv::client::LinkClose;
using kv::client::LinkServer;
using kv::client::LinkServerOptions;
using kv::client::SecureLink;
using kv::test::client_keys;
using kv::test::fresh_keys;
using kv::test::server_keys;

struct Events {
    std::vector<uint64_t> established;
    std::map<uint64_t, std::string> peer_keys;  // conn -> key bytes
    std::vector<std::pair<uint64_t, std::string>> frames;
    std::vector<std::pair<uint64_t, LinkClose>> closed;
};

struct Harness {
    Events events;
    std::unique_ptr<LinkServer> server;
    uint64_t now_ms = 1000;
    // What the owner answers each frame with (none when empty).
    std::string echo_prefix = "re:";

    explicit Harness(LinkServerOptions options) {
        LinkServer::Callbacks callbacks;
        callbacks.on_established = [this](uint64_t conn, const CurveKey* key) {
            events.established.push_back(conn);
            if (key != nullptr) {
                events.peer_keys[conn] =
                    std::string(reinterpret_cast<const char*>(key->data()), key->size());
            }
        };
        callbacks.on_frame = [this](uint64_t conn, std::string_view frame) {
            events.frames.emplace_back(conn, std::string(frame));
            if (!echo_prefix.empty()) (void)server->send(conn, echo_prefix + std::string(frame));
        };
        callbacks.on_closed = [this](uint64_t conn, LinkClose why, const kv::Status&) {
            events.closed.emplace_back(conn, why);
        };
        auto made = LinkServer::listen({"127.0.0.1", 0}, std::move(options), std::move(callbacks));
        REQUIRE(made.ok());
        server = std::move(made.value());
    }

    // A connected client socket (plain TCP), accepted by the next poll.
    int connect() {
        auto fd = kv::client::start_connect({"127.0.0.1", server->port()});
        REQUIRE(fd.ok());
        pollfd p{fd.value(), POLLOUT, 0};
        REQUIRE(::poll(&p, 1, 5000) == 1);
        REQUIRE(kv::client::finish_connect(fd.value()).ok());
        return fd.value();
    }

    // Runs the server's poll and flush and each client's flush and receive,
    // a bounded number of rounds; frames the clients get are appended to `got`.
    void pump(std::vector<SecureLink*> clients, std::vector<std::string>* got = nullptr,
              int rounds = 20) {
        for (int i = 0; i < rounds; ++i) {
            pollfd p{server->fd(), POLLIN, 0};
            ::poll(&p, 1, 5);
            server->poll(now_ms);
            server->flush();
            for (SecureLink* c : clients) {
                (void)c->flush();
                (void)c->receive([&](std::string_view f) {
                    if (got != nullptr) got->emplace_back(f);
                });
            }
        }
    }
};

LinkServerOptions sealed_options() {
    LinkServerOptions o;
    o.frame_bytes_max = 4096;
    o.keys = server_keys();
    const CurveKey admitted = client_keys().public_key;
    o.admit = [admitted](const CurveKey& key) { return key == admitted; };
    return o;
}

LinkServerOptions plain_options() {
    LinkServerOptions o;
    o.frame_bytes_max = 4096;
    return o;
}

}  // namespace

TEST_CASE("frames from established links reach the owner and replies go back to each") {
    Harness h(sealed_options());
    auto a = SecureLink::client(h.connect(), 4096, client_keys(), server_keys().public_key, "");
    auto b = SecureLink::client(h.connect(), 4096, client_keys(), server_keys().public_key, "");
    REQUIRE(a->send("from a").ok());
    REQUIRE(b->send("from b").ok());
    std::vector<std::string> at_a, at_b;
    for (int i = 0; i < 20; ++i) {
        h.pump({}, nullptr, 1);
        (void)a->flush();
        (void)b->flush();
        (void)a->receive([&](std::string_view f) { at_a.emplace_back(f); });
        (void)b->receive([&](std::string_view f) { at_b.emplace_back(f); });
    }
    CHECK(at_a == std::vector<std::string>{"re:from a"});
    CHECK(at_b == std::vector<std::string>{"re:from b"});
    REQUIRE(h.events.established.size() == 2);
    CHECK(h.events.established[0] != h.events.established[1]);
    const std::string client_key(reinterpret_cast<const char*>(client_keys().public_key.data()),
                                 32);
    for (uint64_t conn : h.events.established) CHECK(h.events.peer_keys[conn] == client_key);
    CHECK(h.events.frames.size() == 2);
    CHECK(h.server->stats().established == 2);
    CHECK(h.server->stats().open == 2);
    CHECK(h.events.closed.empty());
}

TEST_CASE("a refused key and a wrong server key close the link before any frame") {
    Harness h(sealed_options());
    const auto stranger = fresh_keys();
    auto refused = SecureLink::client(h.connect(), 4096, stranger, server_keys().public_key, "");
    auto wrong = SecureLink::client(h.connect(), 4096, client_keys(), stranger.public_key, "");
    REQUIRE(refused->send("never").ok());
    REQUIRE(wrong->send("never").ok());
    h.pump({refused.get(), wrong.get()});
    CHECK(h.events.frames.empty());
    CHECK(h.events.established.empty());
    CHECK(h.server->stats().closed.at(LinkClose::refused) == 1);
    CHECK(h.server->stats().closed.at(LinkClose::handshake_failed) == 1);
    CHECK(h.server->stats().open == 0);
    // The refused client read why.
    const kv::Status why = refused->receive([](std::string_view) {});
    CHECK(why.code() == ErrorCode::unauthorized);
    CHECK_THAT(why.message(), Catch::Contains("not admitted"));
}

TEST_CASE("a connection that does not finish its handshake in time is closed") {
    LinkServerOptions o = sealed_options();
    o.handshake_timeout_ms = 500;
    Harness h(std::move(o));
    const int silent = h.connect();
    h.pump({});
    CHECK(h.server->stats().open == 1);
    h.now_ms += 499;
    h.pump({});
    CHECK(h.server->stats().open == 1);
    h.now_ms += 1;
    h.pump({});
    CHECK(h.server->stats().open == 0);
    CHECK(h.server->stats().closed.at(LinkClose::handshake_timeout) == 1);
    REQUIRE(h.events.closed.size() == 1);
    CHECK(h.events.closed[0].second == LinkClose::handshake_timeout);
    char byte = 0;
    pollfd p{silent, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
    CHECK(::read(silent, &byte, 1) == 0);  // the server closed it
    ::close(silent);
}

TEST_CASE("a peer that does not read is closed once its queue passes the bound") {
    LinkServerOptions o = plain_options();
    o.queued_bytes_max = 1 << 20;
    Harness h(std::move(o));
    h.echo_prefix.clear();
    const int fd = h.connect();
    auto client = SecureLink::plain(fd, 4096);
    REQUIRE(client->send("hello").ok());
    h.pump({client.get()});
    REQUIRE(h.events.established.size() == 1);
    const uint64_t conn = h.events.established[0];
    // The client never reads: the kernel's buffers fill, then the queue.
    const std::string chunk(4000, 'x');
    kv::Status sent;
    int sends = 0;
    for (; sends < 10000 && sent.ok(); ++sends) {
        sent = h.server->send(conn, chunk);
        h.server->flush();
    }
    CHECK(sent.code() == ErrorCode::overloaded);
    CHECK(sends < 10000);
    CHECK_FALSE(h.server->is_open(conn));
    CHECK(h.server->stats().closed.at(LinkClose::slow_reader) == 1);
    CHECK(h.server->send(conn, "late").code() == ErrorCode::connection);  // dropped
}

TEST_CASE("beyond connections_max a connection is accepted and closed at once") {
    LinkServerOptions o = plain_options();
    o.connections_max = 2;
    Harness h(std::move(o));
    const int one = h.connect();
    const int two = h.connect();
    const int three = h.connect();
    h.pump({});
    CHECK(h.server->stats().open == 2);
    CHECK(h.server->stats().accepted == 3);
    CHECK(h.server->stats().closed.at(LinkClose::server_full) == 1);
    // Which one was refused: the one the server closed reads end of stream.
    int ended = 0;
    for (int fd : {one, two, three}) {
        pollfd p{fd, POLLIN, 0};
        char byte = 0;
        if (::poll(&p, 1, 200) == 1 && ::read(fd, &byte, 1) == 0) ++ended;
        ::close(fd);
    }
    CHECK(ended == 1);
}

TEST_CASE("a peer that goes away, a bad frame and the owner's close end a link once each") {
    Harness h(plain_options());
    auto gone = SecureLink::plain(h.connect(), 1 << 20);
    auto too_long = SecureLink::plain(h.connect(), 1 << 20);
    auto closed_here = SecureLink::plain(h.connect(), 1 << 20);
    for (auto* c : {gone.get(), too_long.get(), closed_here.get()}) REQUIRE(c->send("hi").ok());
    h.pump({gone.get(), too_long.get(), closed_here.get()});
    REQUIRE(h.events.established.size() == 3);
    gone.reset();                                          // closes its socket
    REQUIRE(too_long->send(std::string(5000, 'x')).ok());  // above the server's 4096
    h.server->close(h.events.established[2]);
    h.pump({too_long.get()});
    CHECK(h.server->stats().closed.at(LinkClose::peer_closed) == 1);
    CHECK(h.server->stats().closed.at(LinkClose::bad_frame) == 1);
    CHECK(h.server->stats().closed.at(LinkClose::closed_here) == 1);
    CHECK(h.events.closed.size() == 3);
    CHECK(h.server->stats().open == 0);
}

TEST_CASE("the owner may close a link from its own frame callback") {
    // The callback closes the link on its first frame: the second, sent in
    // the same write, is not handed over, and the link closes once.
    Events events;
    LinkServer* server_ptr = nullptr;
    LinkServer::Callbacks callbacks;
    callbacks.on_frame = [&](uint64_t conn, std::string_view frame) {
        events.frames.emplace_back(conn, std::string(frame));
        server_ptr->close(conn);
    };
    callbacks.on_closed = [&](uint64_t conn, LinkClose why, const kv::Status&) {
        events.closed.emplace_back(conn, why);
    };
    auto made = LinkServer::listen({"127.0.0.1", 0}, plain_options(), std::move(callbacks));
    REQUIRE(made.ok());
    server_ptr = made.value().get();
    auto fd = kv::client::start_connect({"127.0.0.1", server_ptr->port()});
    REQUIRE(fd.ok());
    pollfd p{fd.value(), POLLOUT, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
    auto c = SecureLink::plain(fd.value(), 4096);
    REQUIRE(c->send("one").ok());
    REQUIRE(c->send("two").ok());
    REQUIRE(c->flush().ok());
    for (int i = 0; i < 20 && events.closed.empty(); ++i) {
        pollfd q{server_ptr->fd(), POLLIN, 0};
        ::poll(&q, 1, 10);
        server_ptr->poll(0);
    }
    CHECK(events.frames.size() == 1);
    REQUIRE(events.closed.size() == 1);
    CHECK(events.closed[0].second == LinkClose::closed_here);
    CHECK(server_ptr->stats().open == 0);
}
