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

// libsodium picks its implementations once; safe to call from any thread,
// any number of times.
void init_sodium() {
    [[maybe_unused]] static const int ready = [] {
        const int rc = ::sodium_init();
        assert(rc >= 0);  // fails only without a usable random source
        return rc;
    }();
}

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

SealState::SealState(const SealKey& key, std::string_view prefix) : key_(key) {
    init_sodium();
    assert(prefix.size() == kSealPrefixBytes);
    std::memcpy(nonce_.data(), prefix.data(), kSealPrefixBytes);
}

SealState::~SealState() {
    ::sodium_memzero(key_.data(), key_.size());
}

Status FrameSealer::seal(std::string_view plain, std::string& out) {
    if (next_counter_ == 0) return {ErrorCode::internal, "the session sealed 2^64 - 1 frames"};
    const size_t at = out.size();
    out.resize(at + kSealOverheadBytes + plain.size());
    auto* sealed = reinterpret_cast<unsigned char*>(out.data() + at);
    put_counter(sealed, next_counter_);
    std::memcpy(nonce_.data() + kSealPrefixBytes, sealed, kSealCounterBytes);
    ::crypto_box_detached_afternm(sealed + kSealOverheadBytes, sealed + kSealCounterBytes,
                                  reinterpret_cast<const unsigned char*>(plain.data()),
                                  plain.size(), nonce_.data(), key_.data());
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
    std::memcpy(nonce_.data() + kSealPrefixBytes, bytes, kSealCounterBytes);
    const size_t plain_bytes = sealed.size() - kSealOverheadBytes;
    plain.resize(plain_bytes);
    if (::crypto_box_open_detached_afternm(reinterpret_cast<unsigned char*>(plain.data()),
                                           bytes + kSealOverheadBytes, bytes + kSealCounterBytes,
                                           plain_bytes, nonce_.data(), key_.data()) != 0) {
        plain.clear();
        return {ErrorCode::bad_request, "a sealed frame failed its authentication tag"};
    }
    ++next_counter_;
    failed_ = false;
    return {};
}

}  // namespace kv::client
