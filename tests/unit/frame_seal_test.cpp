// FrameSealer and FrameOpener (client/frame_seal.h): what one end seals the
// other opens, in order, and anything replayed, dropped, reordered, forged,
// damaged or sealed for the other direction ends the session.
#include <sodium.h>

#include <array>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "client/frame_seal.h"

namespace {

using kv::ErrorCode;
using kv::client::FrameOpener;
using kv::client::FrameSealer;
using kv::client::kSealOverheadBytes;
using kv::client::SealCipher;
using kv::client::SealDirection;
using kv::client::SealKey;
using kv::client::session_key;

struct KeyPair {
    std::array<unsigned char, 32> public_key{};
    std::array<unsigned char, 32> secret_key{};
    KeyPair() {
        REQUIRE(::sodium_init() >= 0);
        REQUIRE(::crypto_box_keypair(public_key.data(), secret_key.data()) == 0);
    }
};

// The key both ends of a session derive.
SealKey shared_key() {
    static const SealKey key = [] {
        KeyPair client, server;
        auto at_client = session_key(server.public_key, client.secret_key);
        auto at_server = session_key(client.public_key, server.secret_key);
        REQUIRE(at_client.ok());
        REQUIRE(at_server.ok());
        REQUIRE(at_client.value() == at_server.value());
        return at_client.value();
    }();
    return key;
}

constexpr SealDirection to_server = SealDirection::client_to_server;
constexpr SealDirection to_client = SealDirection::server_to_client;

// Each case runs for every cipher this machine has (AES-256-GCM needs AES-NI).
SealCipher any_cipher() {
    if (!kv::client::aes256gcm_available()) {
        WARN("this CPU has no AES-256-GCM in libsodium: XSalsa20-Poly1305 only");
        return SealCipher::xsalsa20poly1305;
    }
    return GENERATE(SealCipher::xsalsa20poly1305, SealCipher::aes256gcm);
}

std::string sealed(FrameSealer& sealer, const std::string& plain) {
    std::string out;
    REQUIRE(sealer.seal(plain, out).ok());
    return out;
}

}  // namespace

TEST_CASE("frames sealed at one end open at the other, in order") {
    const SealCipher cipher = any_cipher();
    CAPTURE(kv::client::cipher_name(cipher));
    FrameSealer sealer(cipher, shared_key(), to_server);
    FrameOpener opener(cipher, shared_key(), to_server);
    const std::vector<std::string> frames{"", "a", std::string(100, 'x'),
                                          std::string(1 << 20, 'y')};
    for (const auto& f : frames) {
        const std::string s = sealed(sealer, f);
        CHECK(s.size() == f.size() + kSealOverheadBytes);
        if (f.size() >= 16)
            CHECK(s.find(f.substr(0, 16)) == std::string::npos);  // not in the clear
        std::string plain = "left over";
        REQUIRE(opener.open(s, plain).ok());
        CHECK(plain == f);
    }
    CHECK(sealer.frames_sealed() == frames.size());
    CHECK(opener.frames_opened() == frames.size());
}

TEST_CASE("the same frame sealed twice differs on the wire") {
    const SealCipher cipher = any_cipher();
    CAPTURE(kv::client::cipher_name(cipher));
    FrameSealer sealer(cipher, shared_key(), to_client);
    CHECK(sealed(sealer, "same") != sealed(sealer, "same"));
}

TEST_CASE("a damaged byte anywhere ends the session") {
    const SealCipher cipher = any_cipher();
    CAPTURE(kv::client::cipher_name(cipher));
    for (size_t at = 0; at < kSealOverheadBytes + 5; ++at) {
        FrameSealer sealer(cipher, shared_key(), to_server);
        FrameOpener opener(cipher, shared_key(), to_server);
        std::string first = sealed(sealer, "hello");
        const std::string second = sealed(sealer, "world");
        first[at] = static_cast<char>(first[at] ^ 0x01);
        std::string plain;
        const kv::Status s = opener.open(first, plain);
        CHECK(s.code() == ErrorCode::bad_request);
        CHECK(plain.empty());
        // Even the untouched next frame no longer opens.
        CHECK(opener.open(second, plain).code() == ErrorCode::bad_request);
    }
}

TEST_CASE("a replayed, dropped or reordered frame ends the session") {
    const SealCipher cipher = any_cipher();
    CAPTURE(kv::client::cipher_name(cipher));
    std::string plain;
    SECTION("replayed") {
        FrameSealer sealer(cipher, shared_key(), to_server);
        FrameOpener opener(cipher, shared_key(), to_server);
        const std::string one = sealed(sealer, "one");
        REQUIRE(opener.open(one, plain).ok());
        const kv::Status s = opener.open(one, plain);
        CHECK(s.code() == ErrorCode::bad_request);
        CHECK(s.message().find("replayed, dropped or reordered") != std::string::npos);
    }
    SECTION("dropped") {
        FrameSealer sealer(cipher, shared_key(), to_server);
        FrameOpener opener(cipher, shared_key(), to_server);
        (void)sealed(sealer, "one");
        CHECK(opener.open(sealed(sealer, "two"), plain).code() == ErrorCode::bad_request);
    }
    SECTION("reordered") {
        FrameSealer sealer(cipher, shared_key(), to_server);
        FrameOpener opener(cipher, shared_key(), to_server);
        const std::string one = sealed(sealer, "one");
        const std::string two = sealed(sealer, "two");
        CHECK(opener.open(two, plain).code() == ErrorCode::bad_request);
        CHECK(opener.open(one, plain).code() == ErrorCode::bad_request);  // finished
    }
}

TEST_CASE("a frame sealed for the other direction, or under another key, does not open") {
    const SealCipher cipher = any_cipher();
    CAPTURE(kv::client::cipher_name(cipher));
    std::string plain;
    FrameSealer from_server(cipher, shared_key(), to_client);
    FrameOpener client_to_server(cipher, shared_key(), to_server);
    CHECK(client_to_server.open(sealed(from_server, "x"), plain).code() == ErrorCode::bad_request);

    KeyPair a, b;
    auto other = session_key(a.public_key, b.secret_key);
    REQUIRE(other.ok());
    REQUIRE(other.value() != shared_key());
    FrameSealer stranger(cipher, other.value(), to_server);
    FrameOpener opener(cipher, shared_key(), to_server);
    CHECK(opener.open(sealed(stranger, "x"), plain).code() == ErrorCode::bad_request);
}

TEST_CASE("a frame sealed with one cipher does not open with the other") {
    if (!kv::client::aes256gcm_available()) {
        WARN("this CPU has no AES-256-GCM in libsodium: nothing to compare");
        return;
    }
    std::string plain;
    FrameSealer aes(SealCipher::aes256gcm, shared_key(), to_server);
    FrameOpener salsa(SealCipher::xsalsa20poly1305, shared_key(), to_server);
    CHECK(salsa.open(sealed(aes, "x"), plain).code() == ErrorCode::bad_request);
    FrameSealer salsa_sealer(SealCipher::xsalsa20poly1305, shared_key(), to_server);
    FrameOpener aes_opener(SealCipher::aes256gcm, shared_key(), to_server);
    CHECK(aes_opener.open(sealed(salsa_sealer, "x"), plain).code() == ErrorCode::bad_request);
}

TEST_CASE("a frame shorter than counter and tag is refused") {
    const SealCipher cipher = any_cipher();
    CAPTURE(kv::client::cipher_name(cipher));
    FrameOpener opener(cipher, shared_key(), to_server);
    std::string plain;
    CHECK(opener.open(std::string(kSealOverheadBytes - 1, '\0'), plain).code() ==
          ErrorCode::bad_request);
}

TEST_CASE("a public key of low order gives no session key") {
    KeyPair ours;
    const std::array<unsigned char, 32> zero{};  // the identity: every shared secret would be 0
    CHECK(session_key(zero, ours.secret_key).status().code() == ErrorCode::connection);
}
