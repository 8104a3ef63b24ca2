// SecureLink (client/secure_link.h) over real sockets: the handshake runs on
// the link, frames sent before it ends wait and then go sealed in order, a
// refused key reaches the client as the server's reason, a frame too long is
// refused before it is sealed (the session goes on), nothing is handed over
// after a failure, and without keys frames pass as they are.
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "client/frame_link.h"
#include "client/secure_link.h"
#include "tests/unit/link_test_keys.h"

namespace {

using kv::ErrorCode;
using kv::client::CurveKey;
using kv::client::CurveKeys;
using kv::client::FrameLink;
using kv::client::SecureLink;

using kv::test::client_keys;
using kv::test::fresh_keys;
using kv::test::server_keys;

constexpr size_t kFrameMax = 4096;

struct Ends {
    std::unique_ptr<SecureLink> client, server;
    std::vector<std::string> at_client, at_server;
    kv::Status client_status, server_status;

    // Moves bytes both ways until neither end has anything to write, at most
    // `rounds` times; records what each end handed over and its last status.
    void pump(int rounds = 8) {
        for (int i = 0; i < rounds; ++i) {
            // A failed end still flushes: the ERROR that says why goes out.
            (void)client->flush();
            (void)server->flush();
            if (client_status.ok()) {
                client_status =
                    client->receive([&](std::string_view f) { at_client.emplace_back(f); });
            }
            if (server_status.ok()) {
                server_status =
                    server->receive([&](std::string_view f) { at_server.emplace_back(f); });
            }
        }
    }
};

Ends sealed_ends(const CurveKeys& client_pair, const CurveKey& expected_server, bool admit = true) {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    Ends e;
    e.client = SecureLink::client(fds[0], kFrameMax, client_pair, expected_server, "client meta");
    const CurveKey admitted = client_keys().public_key;
    e.server = SecureLink::server(
        fds[1], kFrameMax, server_keys(),
        [admitted, admit](const CurveKey& key) { return admit && key == admitted; }, "server meta");
    return e;
}

}  // namespace

TEST_CASE("frames sent before the handshake ends go sealed, in order, once it has") {
    Ends e = sealed_ends(client_keys(), server_keys().public_key);
    CHECK_FALSE(e.client->established());
    REQUIRE(e.client->send("first").ok());
    REQUIRE(e.client->send("").ok());
    REQUIRE(e.client->send(std::string(kFrameMax, 'z')).ok());
    CHECK(e.client->queued_bytes() >= 5 + kFrameMax);
    e.pump();
    REQUIRE(e.client_status.ok());
    REQUIRE(e.server_status.ok());
    REQUIRE(e.client->established());
    REQUIRE(e.server->established());
    CHECK(e.at_server == std::vector<std::string>{"first", "", std::string(kFrameMax, 'z')});
    CHECK(*e.server->peer_key() == client_keys().public_key);
    CHECK(e.server->peer_metadata() == "client meta");
    CHECK(*e.client->peer_key() == server_keys().public_key);
    CHECK(e.client->peer_metadata() == "server meta");
    REQUIRE(e.client->cipher().has_value());
    CHECK(e.client->cipher() == e.server->cipher());
    CHECK(e.client->cipher() == (kv::client::aes256gcm_available()
                                     ? kv::client::SealCipher::aes256gcm
                                     : kv::client::SealCipher::xsalsa20poly1305));
    // And back.
    REQUIRE(e.server->send("reply").ok());
    e.pump();
    CHECK(e.at_client == std::vector<std::string>{"reply"});
    CHECK(e.client->queued_bytes() == 0);
}

TEST_CASE("what crosses the socket after the handshake is sealed") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    // The server end is read raw, as an eavesdropper would see it.
    auto client =
        SecureLink::client(fds[0], kFrameMax, client_keys(), server_keys().public_key, "");
    REQUIRE(client->send("a secret value").ok());
    REQUIRE(client->flush().ok());
    std::string wire(8192, '\0');
    const ssize_t n = ::read(fds[1], wire.data(), wire.size());
    REQUIRE(n > 0);
    wire.resize(static_cast<size_t>(n));
    CHECK(wire.find("a secret value") == std::string::npos);
    CHECK(wire.find("HELLO") != std::string::npos);  // only the HELLO so far
    ::close(fds[1]);
}

TEST_CASE("a refused client key reaches the client as the server's reason") {
    Ends e = sealed_ends(client_keys(), server_keys().public_key, /*admit=*/false);
    REQUIRE(e.client->send("never delivered").ok());
    e.pump();
    CHECK(e.server_status.code() == ErrorCode::unauthorized);
    CHECK(e.client_status.code() == ErrorCode::unauthorized);
    CHECK_THAT(e.client_status.message(), Catch::Contains("not admitted"));
    CHECK(e.at_server.empty());
    CHECK_FALSE(e.client->established());
    CHECK_FALSE(e.server->established());
    // A finished link refuses more.
    CHECK_FALSE(e.client->send("more").ok());
}

TEST_CASE("a server without the expected key is refused by the client") {
    const CurveKeys other = fresh_keys();
    Ends e = sealed_ends(client_keys(), other.public_key);
    e.pump();
    CHECK(e.server_status.code() == ErrorCode::connection);
    CHECK(e.client_status.code() == ErrorCode::unauthorized);
    CHECK(e.at_server.empty());
}

TEST_CASE("a frame above the limit is refused before it is sealed; the session goes on") {
    Ends e = sealed_ends(client_keys(), server_keys().public_key);
    e.pump();
    REQUIRE(e.client->established());
    CHECK(e.client->send(std::string(kFrameMax + 1, 'x')).code() == ErrorCode::message_too_large);
    REQUIRE(e.client->send("after").ok());
    e.pump();
    CHECK(e.server_status.ok());
    CHECK(e.at_server == std::vector<std::string>{"after"});
}

TEST_CASE("a damaged frame ends the link, and nothing after it is handed over") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    auto server = SecureLink::server(
        fds[1], kFrameMax, server_keys(), [](const CurveKey&) { return true; }, "");
    // The client end is a plain FrameLink driven by hand, so that a sealed
    // frame can be damaged on its way.
    FrameLink raw(fds[0], kFrameMax * 2);
    kv::client::HandshakeClient handshake(client_keys(), server_keys().public_key, "");
    REQUIRE(raw.send(handshake.hello().value()).ok());
    REQUIRE(raw.flush().ok());
    std::vector<std::string> at_server;
    auto server_receive = [&] {
        return server->receive([&](std::string_view f) { at_server.emplace_back(f); });
    };
    REQUIRE(server_receive().ok());
    REQUIRE(server->flush().ok());
    std::unique_ptr<kv::client::HandshakeSession> session;
    auto client_receive = [&] {
        return raw.receive([&](std::string_view f) {
            auto step = handshake.on_frame(f);
            REQUIRE(step.status.ok());
            if (!step.reply.empty()) REQUIRE(raw.send(step.reply).ok());
            if (step.established) session = handshake.take_session();
        });
    };
    REQUIRE(client_receive().ok());  // WELCOME, INITIATE queued
    REQUIRE(raw.flush().ok());
    REQUIRE(server_receive().ok());  // READY
    REQUIRE(server->flush().ok());
    REQUIRE(client_receive().ok());
    REQUIRE(session);
    std::string one, two, three;
    REQUIRE(session->sealer.seal("one", one).ok());
    REQUIRE(session->sealer.seal("two", two).ok());
    REQUIRE(session->sealer.seal("three", three).ok());
    two[two.size() - 1] = static_cast<char>(two.back() ^ 1);
    REQUIRE(raw.send(one).ok());
    REQUIRE(raw.send(two).ok());
    REQUIRE(raw.send(three).ok());
    REQUIRE(raw.flush().ok());
    const kv::Status s = server_receive();
    CHECK(s.code() == ErrorCode::bad_request);
    CHECK(at_server == std::vector<std::string>{"one"});
    CHECK(server_receive().code() == ErrorCode::bad_request);  // and it stays finished
    CHECK(at_server.size() == 1);
}

TEST_CASE("a peer that closes during the handshake ends the link") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    auto client =
        SecureLink::client(fds[0], kFrameMax, client_keys(), server_keys().public_key, "");
    REQUIRE(client->flush().ok());
    ::close(fds[1]);
    const kv::Status s = client->receive([](std::string_view) { FAIL("no frame expected"); });
    CHECK(s.code() == ErrorCode::connection);
    CHECK_FALSE(client->established());
}

TEST_CASE("without keys, frames pass as they are") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    auto a = SecureLink::plain(fds[0], kFrameMax);
    FrameLink b(fds[1], kFrameMax);
    CHECK(a->established());
    CHECK(a->peer_key() == nullptr);
    REQUIRE(a->send("as is").ok());
    REQUIRE(a->flush().ok());
    std::vector<std::string> got;
    REQUIRE(b.receive([&](std::string_view f) { got.emplace_back(f); }).ok());
    CHECK(got == std::vector<std::string>{"as is"});
    CHECK(a->send(std::string(kFrameMax + 1, 'x')).code() == ErrorCode::message_too_large);
}
