// The handshake (client/frame_handshake.h): a client and a server that hold
// the expected keys end with one session and know each other's long-term
// keys; a wrong server key, a refused client key, a client naming a key it
// does not own, any damaged byte, a frame out of order and a replayed
// INITIATE each end the attempt without a session.
#include <sodium.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "client/frame_handshake.h"
#include "client/z85.h"
#include "tests/unit/link_test_keys.h"

namespace {

using kv::ErrorCode;
using kv::client::CurveKey;
using kv::client::CurveKeys;
using kv::client::HandshakeClient;
using kv::client::HandshakeServer;
using kv::client::HandshakeSession;
using kv::client::HandshakeStep;
using kv::client::kHandshakeFrameBytesMax;
using kv::client::kHandshakeMetadataBytesMax;
using kv::client::kHelloBytes;
using kv::client::SealCipher;

using kv::test::client_keys;
using kv::test::fresh_keys;
using kv::test::server_keys;

HandshakeServer::Admit admit_only(const CurveKey& key) {
    return [key](const CurveKey& proved) { return proved == key; };
}

// The frames of one handshake, and where it ended.
struct Run {
    std::vector<std::string> frames;  // HELLO, WELCOME, INITIATE, READY (as far as it got)
    HandshakeStep client_last, server_last;
    std::unique_ptr<HandshakeSession> client_session, server_session;
};

// Runs a handshake; `tamper(index, frame)` may change each frame (0: HELLO,
// 1: WELCOME, 2: INITIATE, 3: READY) on its way.
template <typename Tamper>
Run handshake(HandshakeClient& client, HandshakeServer& server, Tamper tamper) {
    Run run;
    std::string frame = client.hello().value();
    CHECK(frame.size() == kHelloBytes);
    tamper(0, frame);
    run.frames.push_back(frame);
    run.server_last = server.on_frame(frame);  // WELCOME
    if (!run.server_last.status.ok()) {
        if (!run.server_last.reply.empty())
            run.client_last = client.on_frame(run.server_last.reply);
        return run;
    }
    frame = run.server_last.reply;
    tamper(1, frame);
    run.frames.push_back(frame);
    run.client_last = client.on_frame(frame);  // INITIATE
    if (!run.client_last.status.ok()) return run;
    frame = run.client_last.reply;
    CHECK(frame.size() <= kHandshakeFrameBytesMax);
    tamper(2, frame);
    run.frames.push_back(frame);
    run.server_last = server.on_frame(frame);  // READY, or ERROR
    if (run.server_last.established) run.server_session = server.take_session();
    frame = run.server_last.reply;
    if (frame.empty()) return run;
    tamper(3, frame);
    run.frames.push_back(frame);
    run.client_last = client.on_frame(frame);
    if (run.client_last.established) run.client_session = client.take_session();
    return run;
}

Run handshake(HandshakeClient& client, HandshakeServer& server) {
    return handshake(client, server, [](int, std::string&) {});
}

std::string z85(const CurveKey& key) {
    return kv::z85_encode(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()))
        .value();
}

}  // namespace

TEST_CASE("a handshake gives both ends one session and each other's keys") {
    HandshakeClient client(client_keys(), server_keys().public_key, "from the client");
    HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "from the server");
    Run run = handshake(client, server);
    REQUIRE(run.server_last.status.ok());
    REQUIRE(run.server_last.established);
    REQUIRE(run.client_last.status.ok());
    REQUIRE(run.client_last.established);
    REQUIRE(run.frames.size() == 4);
    CHECK(run.client_last.reply.empty());  // nothing left to send
    // The client's long-term key travels only inside INITIATE's box.
    const std::string client_public(reinterpret_cast<const char*>(client_keys().public_key.data()),
                                    32);
    for (const auto& f : run.frames) CHECK(f.find(client_public) == std::string::npos);

    CHECK(run.server_session->peer_key == client_keys().public_key);
    CHECK(run.server_session->peer_metadata == "from the client");
    CHECK(run.client_session->peer_key == server_keys().public_key);
    CHECK(run.client_session->peer_metadata == "from the server");

    // Frames flow both ways, and only the right way.
    std::string sealed, plain;
    REQUIRE(run.client_session->sealer.seal("get a", sealed).ok());
    REQUIRE(run.server_session->opener.open(sealed, plain).ok());
    CHECK(plain == "get a");
    sealed.clear();
    REQUIRE(run.server_session->sealer.seal("value", sealed).ok());
    REQUIRE(run.client_session->opener.open(sealed, plain).ok());
    CHECK(plain == "value");
    sealed.clear();
    REQUIRE(run.client_session->sealer.seal("reflected", sealed).ok());
    CHECK_FALSE(run.client_session->opener.open(sealed, plain).ok());
}

TEST_CASE("the cipher is agreed: AES-256-GCM where both ends have it") {
    const bool aes = kv::client::aes256gcm_available();
    const auto expected = aes ? SealCipher::aes256gcm : SealCipher::xsalsa20poly1305;
    {
        HandshakeClient client(client_keys(), server_keys().public_key, "");
        HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "");
        Run run = handshake(client, server);
        REQUIRE(run.client_session);
        REQUIRE(run.server_session);
        CHECK(run.client_session->cipher == expected);
        CHECK(run.server_session->cipher == expected);
    }
    // A client that offers XSalsa20-Poly1305 alone gets it, and the frames open.
    HandshakeClient client(client_keys(), server_keys().public_key, "",
                           static_cast<uint8_t>(SealCipher::xsalsa20poly1305));
    HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "");
    Run run = handshake(client, server);
    REQUIRE(run.client_session);
    REQUIRE(run.server_session);
    CHECK(run.client_session->cipher == SealCipher::xsalsa20poly1305);
    CHECK(run.server_session->cipher == SealCipher::xsalsa20poly1305);
    std::string sealed, plain;
    REQUIRE(run.client_session->sealer.seal("frame", sealed).ok());
    REQUIRE(run.server_session->opener.open(sealed, plain).ok());
    CHECK(plain == "frame");
}

TEST_CASE("a client offering no cipher the server has is refused with the reason") {
    for (uint8_t offer : {uint8_t{0}, uint8_t{0x80}}) {
        HandshakeClient client(client_keys(), server_keys().public_key, "", offer);
        HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "");
        Run run = handshake(client, server);
        CHECK(run.server_last.status.code() == ErrorCode::connection);
        CHECK(run.client_last.status.code() == ErrorCode::bad_request);
        CHECK_THAT(run.client_last.status.message(), Catch::Contains("no cipher in common"));
        CHECK_FALSE(run.server_session);
        CHECK_FALSE(run.client_session);
    }
}

TEST_CASE("metadata up to its limit reaches the other end") {
    const std::string big(kHandshakeMetadataBytesMax, 'm');
    HandshakeClient client(client_keys(), server_keys().public_key, big);
    HandshakeServer server(server_keys(), admit_only(client_keys().public_key), big);
    Run run = handshake(client, server);
    REQUIRE(run.client_session);
    REQUIRE(run.server_session);
    CHECK(run.frames[2].size() == kHandshakeFrameBytesMax);
    CHECK(run.server_session->peer_metadata == big);
    CHECK(run.client_session->peer_metadata == big);
}

TEST_CASE("every session has its own key: a frame of one does not open in another") {
    HandshakeClient c1(client_keys(), server_keys().public_key, "");
    HandshakeServer s1(server_keys(), admit_only(client_keys().public_key), "");
    HandshakeClient c2(client_keys(), server_keys().public_key, "");
    HandshakeServer s2(server_keys(), admit_only(client_keys().public_key), "");
    Run one = handshake(c1, s1);
    Run two = handshake(c2, s2);
    REQUIRE(one.client_session);
    REQUIRE(two.server_session);
    CHECK(one.frames[0] != two.frames[0]);  // fresh short-term keys
    std::string sealed, plain;
    REQUIRE(one.client_session->sealer.seal("first frame", sealed).ok());
    CHECK_FALSE(two.server_session->opener.open(sealed, plain).ok());
}

TEST_CASE("a server without the key the client expects is refused, and says so") {
    const CurveKeys other = fresh_keys();
    SECTION("the server cannot open HELLO, and answers ERROR") {
        HandshakeClient client(client_keys(), other.public_key, "");
        HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "");
        Run run = handshake(client, server);
        CHECK(run.server_last.status.code() == ErrorCode::connection);
        CHECK_FALSE(run.server_last.reply.empty());
        CHECK(run.client_last.status.code() == ErrorCode::unauthorized);
        CHECK_THAT(run.client_last.status.message(),
                   Catch::Contains("does not hold the key the client expects"));
        CHECK_FALSE(run.client_session);
        CHECK_FALSE(run.server_session);
    }
    SECTION("an impostor's WELCOME (from another server) does not open at the client") {
        HandshakeClient client(client_keys(), server_keys().public_key, "");
        HandshakeClient bystander(client_keys(), other.public_key, "");
        HandshakeServer impostor(
            other, [](const CurveKey&) { return true; }, "");
        const HandshakeStep welcome = impostor.on_frame(bystander.hello().value());
        REQUIRE(welcome.status.ok());
        (void)client.hello();
        const HandshakeStep step = client.on_frame(welcome.reply);
        CHECK(step.status.code() == ErrorCode::unauthorized);
        CHECK_THAT(step.status.message(), Catch::Contains("did not prove the server key"));
        CHECK(step.reply.empty());
    }
}

TEST_CASE("a client key the server does not admit is refused at INITIATE") {
    const CurveKeys stranger = fresh_keys();
    std::vector<std::string> proved;
    HandshakeClient client(stranger, server_keys().public_key, "");
    HandshakeServer server(
        server_keys(),
        [&](const CurveKey& key) {
            proved.push_back(z85(key));
            return false;
        },
        "");
    Run run = handshake(client, server);
    CHECK(proved == std::vector<std::string>{z85(stranger.public_key)});
    CHECK(run.server_last.status.code() == ErrorCode::unauthorized);
    CHECK_FALSE(run.server_last.established);
    CHECK(run.client_last.status.code() == ErrorCode::unauthorized);
    CHECK_THAT(run.client_last.status.message(), Catch::Contains("not admitted"));
    CHECK_FALSE(run.client_session);
    CHECK_FALSE(run.server_session);
    // Both ends are finished with it.
    CHECK_FALSE(server.on_frame(run.frames[2]).status.ok());
    CHECK_FALSE(client.on_frame(run.frames[1]).status.ok());
}

TEST_CASE("a client that names a key it does not own fails the vouch, unasked") {
    // The admitted user's public key with a stranger's secret: the vouch is
    // boxed with a secret that does not match the key it names.
    CurveKeys forged = fresh_keys();
    forged.public_key = client_keys().public_key;
    bool asked = false;
    HandshakeClient client(forged, server_keys().public_key, "");
    HandshakeServer server(
        server_keys(),
        [&](const CurveKey&) {
            asked = true;
            return true;
        },
        "");
    Run run = handshake(client, server);
    CHECK(run.server_last.status.code() == ErrorCode::connection);
    CHECK_THAT(run.server_last.status.message(), Catch::Contains("vouch"));
    CHECK_FALSE(asked);
    CHECK_FALSE(run.server_session);
}

TEST_CASE("any byte damaged in any handshake frame leaves no session") {
    const size_t sizes[] = {kHelloBytes, 72, 0, 0};  // INITIATE and READY measured below
    size_t initiate_bytes = 0, ready_bytes = 0;
    {
        HandshakeClient client(client_keys(), server_keys().public_key, "meta");
        HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "data");
        Run run = handshake(client, server);
        REQUIRE(run.frames.size() == 4);
        CHECK(run.frames[1].size() == sizes[1]);
        initiate_bytes = run.frames[2].size();
        ready_bytes = run.frames[3].size();
    }
    const size_t frame_bytes[] = {sizes[0], sizes[1], initiate_bytes, ready_bytes};
    size_t attempts = 0;
    for (int which = 0; which < 4; ++which) {
        for (size_t at = 0; at < frame_bytes[which]; ++at) {
            HandshakeClient client(client_keys(), server_keys().public_key, "meta");
            HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "data");
            Run run = handshake(client, server, [&](int index, std::string& frame) {
                if (index == which) frame[at] = static_cast<char>(frame[at] ^ 0x20);
            });
            ++attempts;
            INFO("frame " << which << " byte " << at);
            // Damage to READY is found by the client alone: the server, which
            // sent it, has its session; the client's failure ends the
            // connection before any of it is used.
            CHECK_FALSE(run.client_session);
            if (which < 3) CHECK_FALSE(run.server_session);
        }
    }
    CHECK(attempts == kHelloBytes + 72 + initiate_bytes + ready_bytes);
}

TEST_CASE("short, long and empty frames are refused at every stage") {
    for (int which = 0; which < 4; ++which) {
        for (int cut : {-1, 1, 1000}) {
            HandshakeClient client(client_keys(), server_keys().public_key, "");
            HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "");
            Run run = handshake(client, server, [&](int index, std::string& frame) {
                if (index != which) return;
                if (cut < 0)
                    frame.clear();
                else if (cut == 1)
                    frame.pop_back();
                else
                    frame.append(static_cast<size_t>(cut), '\0');
            });
            INFO("frame " << which << " cut " << cut);
            CHECK_FALSE(run.client_session);
            if (which < 3) CHECK_FALSE(run.server_session);
        }
    }
}

TEST_CASE("a replayed HELLO and INITIATE do not open a new session") {
    HandshakeClient client(client_keys(), server_keys().public_key, "");
    HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "");
    Run recorded = handshake(client, server);
    REQUIRE(recorded.server_session);
    // An eavesdropper replays the client's frames to the server.
    HandshakeServer again(server_keys(), admit_only(client_keys().public_key), "");
    const HandshakeStep welcome = again.on_frame(recorded.frames[0]);
    REQUIRE(welcome.status.ok());  // a HELLO proves nothing yet
    CHECK(welcome.reply != recorded.frames[1]);
    const HandshakeStep initiate = again.on_frame(recorded.frames[2]);
    CHECK(initiate.status.code() == ErrorCode::connection);
    CHECK_FALSE(initiate.established);
}

TEST_CASE("frames out of order end the attempt") {
    SECTION("INITIATE-shaped bytes before HELLO") {
        HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "");
        const std::string initiate = std::string("\x08INITIATE", 9) + std::string(300, 'x');
        CHECK(server.on_frame(initiate).status.code() == ErrorCode::connection);
    }
    SECTION("a second HELLO after WELCOME") {
        HandshakeClient client(client_keys(), server_keys().public_key, "");
        HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "");
        const std::string hello = client.hello().value();
        REQUIRE(server.on_frame(hello).status.ok());
        CHECK(server.on_frame(hello).status.code() == ErrorCode::connection);
        CHECK_FALSE(server.on_frame(hello).status.ok());  // and it stays failed
    }
    SECTION("WELCOME twice at the client") {
        HandshakeClient client(client_keys(), server_keys().public_key, "");
        HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "");
        const HandshakeStep welcome = server.on_frame(client.hello().value());
        REQUIRE(client.on_frame(welcome.reply).status.ok());
        CHECK(client.on_frame(welcome.reply).status.code() == ErrorCode::connection);
    }
    SECTION("a frame after the session is taken") {
        HandshakeClient client(client_keys(), server_keys().public_key, "");
        HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "");
        Run run = handshake(client, server);
        REQUIRE(run.server_session);
        CHECK_FALSE(server.on_frame(run.frames[2]).status.ok());
        CHECK_FALSE(client.on_frame(run.frames[3]).status.ok());
    }
}

TEST_CASE("an ERROR's reason is read, bounded and printable") {
    CHECK(kv::client::handshake_error_reason(std::string("\x05"
                                                         "ERROR\x03"
                                                         "a\x01z",
                                                         10)) == std::optional<std::string>("a?z"));
    CHECK_FALSE(
        kv::client::handshake_error_reason(std::string("\x05"
                                                       "ERROR\x05"
                                                       "ab",
                                                       9)));
    CHECK_FALSE(kv::client::handshake_error_reason("\x05HELLO"));
    HandshakeClient client(client_keys(), server_keys().public_key, "");
    (void)client.hello();
    const HandshakeStep step =
        client.on_frame(std::string("\x05"
                                    "ERROR\x04"
                                    "busy",
                                    11));
    CHECK(step.status.code() == ErrorCode::bad_request);
    CHECK_THAT(step.status.message(), Catch::Contains("busy"));
}

TEST_CASE("keys of low order are refused at either end") {
    const CurveKey zero{};  // the identity point: every shared secret with it is zero
    HandshakeClient misconfigured(client_keys(), zero, "");
    auto hello = misconfigured.hello();
    CHECK(hello.status().code() == ErrorCode::invalid_argument);

    HandshakeClient client(client_keys(), server_keys().public_key, "");
    HandshakeServer server(server_keys(), admit_only(client_keys().public_key), "");
    std::string frame = client.hello().value();
    std::fill(frame.begin() + 80, frame.begin() + 112, '\0');  // C'
    const HandshakeStep step = server.on_frame(frame);
    CHECK(step.status.code() == ErrorCode::connection);
    CHECK_THAT(step.status.message(), Catch::Contains("not usable"));
}

TEST_CASE("key pairs are read from Z85 and checked") {
    const CurveKeys keys = fresh_keys();
    auto read = kv::client::curve_keys_of(z85(keys.public_key), z85(keys.secret_key));
    REQUIRE(read.ok());
    CHECK(read.value().public_key == keys.public_key);
    CHECK(read.value().secret_key == keys.secret_key);
    const CurveKeys other = fresh_keys();
    CHECK(kv::client::curve_keys_of(z85(other.public_key), z85(keys.secret_key)).status().code() ==
          ErrorCode::invalid_argument);
    CHECK_FALSE(kv::client::curve_keys_of("short", z85(keys.secret_key)).ok());
    CHECK_FALSE(kv::client::curve_key_of(std::string(40, '~')).ok());  // not Z85 digits
}
