#include "client/frame_seal.h"

#include <sodium.h>

#include <cassert>
#include <cstring>

namespace kv::client {

namespace {

static_assert(kSealKeyBytes == crypto_box_BEFORENMBYTES);
static_assert(kSealTagBytes == crypto_box_MACBYTES);
static_assert(kSealPrefixBytes + kSealCounterBytes == crypto_box_NONCEBYTES);
static_assert(crypto_box_PUBLICKEYBYTES == 32 && crypto_box_SECRETKEYBYTES == 32);
static_assert(crypto_aead_aes256gcm_KEYBYTES == kSealKeyBytes);
static_assert(crypto_aead_aes256gcm_ABYTES == kSealTagBytes);
static_assert(crypto_aead_aes256gcm_NPUBBYTES == 12);
static_assert(sizeof(crypto_aead_aes256gcm_state) == 512);
static_assert(crypto_kdf_KEYBYTES == kSealKeyBytes);

// libsodium picks its implementations once; safe to call from any thread,
// any number of times.
void init_sodium() {
    [[maybe_unused]] static const int ready = [] {
        const int rc = ::sodium_init();
        assert(rc >= 0);  // fails only without a usable random source
        return rc;
    }();
}

// XSalsa20-Poly1305's nonce prefixes, one per direction, as CurveZMQ names
// them.
constexpr std::string_view kClientToServerPrefix = "CurveZMQMESSAGEC";
constexpr std::string_view kServerToClientPrefix = "CurveZMQMESSAGES";

void put_counter(unsigned char* at, uint64_t counter) {
    for (size_t i = 0; i < kSealCounterBytes; ++i)
        at[i] = static_cast<unsigned char>(counter >> (8 * (kSealCounterBytes - 1 - i)));
}

uint64_t get_counter(const unsigned char* at) {
    uint64_t counter = 0;
    for (size_t i = 0; i < kSealCounterBytes; ++i) counter = (counter << 8) | at[i];
    return counter;
}

}  // namespace

Result<SealKey> session_key(const std::array<unsigned char, 32>& their_public,
                            const std::array<unsigned char, 32>& our_secret) {
    init_sodium();
    SealKey key;
    if (::crypto_box_beforenm(key.data(), their_public.data(), our_secret.data()) != 0) {
        return Status(ErrorCode::connection, "the peer's short-term public key is not usable");
    }
    return key;
}

std::string_view cipher_name(SealCipher cipher) {
    switch (cipher) {
        case SealCipher::xsalsa20poly1305:
            return "xsalsa20poly1305";
        case SealCipher::aes256gcm:
            return "aes256gcm";
    }
    return "?";
}

bool aes256gcm_available() {
    init_sodium();
    return ::crypto_aead_aes256gcm_is_available() == 1;
}

SealState::SealState(SealCipher cipher, const SealKey& session_key, SealDirection direction)
    : cipher_(cipher) {
    init_sodium();
    const bool to_server = direction == SealDirection::client_to_server;
    if (cipher == SealCipher::xsalsa20poly1305) {
        key_ = session_key;
        const std::string_view prefix = to_server ? kClientToServerPrefix : kServerToClientPrefix;
        std::memcpy(nonce_.data(), prefix.data(), kSealPrefixBytes);
        return;
    }
    assert(cipher == SealCipher::aes256gcm && aes256gcm_available());
    // A key per direction, so the two directions' counters never meet
    // under one key (the nonce has no room for a prefix).
    ::crypto_kdf_derive_from_key(key_.data(), key_.size(), to_server ? 1 : 2, "kvlinkv1",
                                 session_key.data());
    ::crypto_aead_aes256gcm_beforenm(
        reinterpret_cast<crypto_aead_aes256gcm_state*>(aes_state_.data()), key_.data());
}

SealState::~SealState() {
    ::sodium_memzero(key_.data(), key_.size());
    ::sodium_memzero(aes_state_.data(), aes_state_.size());
}

void SealState::set_counter(const unsigned char* counter_be) {
    std::memcpy(nonce_.data() + kSealPrefixBytes, counter_be, kSealCounterBytes);
}

Status FrameSealer::seal(std::string_view plain, std::string& out) {
    if (next_counter_ == 0) return {ErrorCode::internal, "the session sealed 2^64 - 1 frames"};
    const size_t at = out.size();
    out.resize(at + kSealOverheadBytes + plain.size());
    auto* sealed = reinterpret_cast<unsigned char*>(out.data() + at);
    put_counter(sealed, next_counter_);
    set_counter(sealed);
    const auto* bytes = reinterpret_cast<const unsigned char*>(plain.data());
    if (cipher_ == SealCipher::aes256gcm) {
        ::crypto_aead_aes256gcm_encrypt_detached_afternm(
            sealed + kSealOverheadBytes, sealed + kSealCounterBytes, nullptr, bytes, plain.size(),
            nullptr, 0, nullptr, aes_nonce(),
            reinterpret_cast<const crypto_aead_aes256gcm_state*>(aes_state_.data()));
    } else {
        ::crypto_box_detached_afternm(sealed + kSealOverheadBytes, sealed + kSealCounterBytes,
                                      bytes, plain.size(), nonce_.data(), key_.data());
    }
    ++next_counter_;
    return {};
}

Status FrameOpener::open(std::string_view sealed, std::string& plain) {
    if (failed_) return {ErrorCode::bad_request, "the session failed an earlier frame"};
    failed_ = true;  // until this frame opens
    if (sealed.size() < kSealOverheadBytes) {
        return {ErrorCode::bad_request, "a sealed frame shorter than its counter and tag"};
    }
    const auto* bytes = reinterpret_cast<const unsigned char*>(sealed.data());
    const uint64_t counter = get_counter(bytes);
    if (counter != next_counter_) {
        return {ErrorCode::bad_request, "frame counter " + std::to_string(counter) + " where " +
                                            std::to_string(next_counter_) +
                                            " was next (replayed, dropped or reordered)"};
    }
    set_counter(bytes);
    const size_t plain_bytes = sealed.size() - kSealOverheadBytes;
    plain.resize(plain_bytes);
    auto* out = reinterpret_cast<unsigned char*>(plain.data());
    const unsigned char* cipher_text = bytes + kSealOverheadBytes;
    const unsigned char* tag = bytes + kSealCounterBytes;
    const int rc =
        cipher_ == SealCipher::aes256gcm
            ? ::crypto_aead_aes256gcm_decrypt_detached_afternm(
                  out, nullptr, cipher_text, plain_bytes, tag, nullptr, 0, aes_nonce(),
                  reinterpret_cast<const crypto_aead_aes256gcm_state*>(aes_state_.data()))
            : ::crypto_box_open_detached_afternm(out, cipher_text, tag, plain_bytes, nonce_.data(),
                                                 key_.data());
    if (rc != 0) {
        plain.clear();
        return {ErrorCode::bad_request, "a sealed frame failed its authentication tag"};
    }
    ++next_counter_;
    failed_ = false;
    return {};
}

}  // namespace kv::client
