// Sealing and opening the frames of an established session, under the key
// both ends derive from their short-term key pairs (crypto_box_beforenm) and
// the cipher the handshake agreed: CurveZMQ's MESSAGE command (RFC 26,
// XSalsa20-Poly1305), or AES-256-GCM where both ends have it. The nonce
// holds a 64-bit counter that rises by one with every frame. A sealed frame
// is the counter (8 bytes, big endian, as CurveZMQ's short nonce), the
// 16-byte tag, then the cipher text, whichever the cipher.
//
// Why: a FrameLink (client/frame_link.h) carries frames in the clear; a
// transport that replaces ZeroMQ must keep what CURVE gives every connection
// with --cluster-key (docs/SECURITY.md): confidentiality, integrity, and no
// frame replayed, dropped or reordered unnoticed. The opener accepts only the
// next counter: the stream is ordered, so anything else is an attack or a bug,
// and the session ends. Only the session's frames are here; the handshake
// that authenticates the long-term keys and makes the key is
// client/frame_handshake.h, and client/secure_link.h puts the two on a link.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "client/status.h"

namespace kv::client {

// crypto_box's sizes (libsodium), restated so callers need not include it.
inline constexpr size_t kSealKeyBytes = 32;
inline constexpr size_t kSealPrefixBytes = 16;
inline constexpr size_t kSealCounterBytes = 8;
inline constexpr size_t kSealTagBytes = 16;
inline constexpr size_t kSealOverheadBytes = kSealCounterBytes + kSealTagBytes;

using SealKey = std::array<unsigned char, kSealKeyBytes>;

// The key of a session between two short-term key pairs: ours (secret) and
// theirs (public); both ends get the same. Fails (connection) on a public key
// libsodium rejects.
Result<SealKey> session_key(const std::array<unsigned char, 32>& their_public,
                            const std::array<unsigned char, 32>& our_secret);

// How a session's frames are sealed, as the handshake agreed
// (client/frame_handshake.h): the values are the bits of its offer.
enum class SealCipher : uint8_t {
    // CurveZMQ's MESSAGE: XSalsa20-Poly1305 under the session key, the nonce a
    // 16-byte prefix naming the direction and the counter.
    xsalsa20poly1305 = 1,
    // AES-256-GCM under a key per direction derived from the session key
    // (BLAKE2b, crypto_kdf), the nonce 4 zero bytes and the counter. About a
    // third of XSalsa20-Poly1305's cost where the CPU has AES-NI and
    // PCLMULQDQ (docs/BENCHMARKS.md, issue 14, twenty-third step); libsodium
    // offers it only there (aes256gcm_available()).
    aes256gcm = 2,
};
std::string_view cipher_name(SealCipher cipher);
bool aes256gcm_available();

enum class SealDirection { client_to_server, server_to_client };

// What one direction of a session keeps: its cipher, its key, and its nonce
// (all but the counter fixed), and the counter of the next frame. Keys are
// wiped when the session ends.
class SealState {
  public:
    SealState(const SealState&) = delete;
    SealState& operator=(const SealState&) = delete;
    SealCipher cipher() const { return cipher_; }

  protected:
    // `session_key` is the key both ends derived (session_key()); asserts
    // that aes256gcm is available when asked for.
    SealState(SealCipher cipher, const SealKey& session_key, SealDirection direction);
    ~SealState();
    // Sets the nonce's counter bytes from the frame's 8 (big endian).
    void set_counter(const unsigned char* counter_be);
    const unsigned char* aes_nonce() const { return nonce_.data() + 12; }

    SealCipher cipher_;
    SealKey key_;
    // XSalsa20: prefix (16) + counter (8). AES-GCM: bytes 12-23 are its
    // 12-byte nonce, 4 zero bytes + counter (8).
    std::array<unsigned char, 24> nonce_{};
    // AES-GCM's expanded key (crypto_aead_aes256gcm_state: 512 bytes,
    // 16-aligned), made once per direction.
    alignas(16) std::array<unsigned char, 512> aes_state_{};
    uint64_t next_counter_ = 1;
};

// Seals the frames one end sends.
class FrameSealer : private SealState {
  public:
    FrameSealer(SealCipher cipher, const SealKey& session_key, SealDirection direction)
        : SealState(cipher, session_key, direction) {}
    using SealState::cipher;

    // Appends `plain` sealed to `out`. Fails (internal) only once the counter
    // would wrap, after 2^64 - 1 frames: the session must end before that.
    Status seal(std::string_view plain, std::string& out);
    uint64_t frames_sealed() const { return next_counter_ - 1; }
};

// Opens the frames the other end sent.
class FrameOpener : private SealState {
  public:
    FrameOpener(SealCipher cipher, const SealKey& session_key, SealDirection direction)
        : SealState(cipher, session_key, direction) {}
    using SealState::cipher;

    // Replaces `plain` with the opened frame. Not ok (bad_request) when the
    // frame is too short, its counter is not the next one (replayed, dropped
    // or reordered), or its tag fails (forged or damaged): the session is
    // then finished and every later frame fails too.
    Status open(std::string_view sealed, std::string& plain);
    uint64_t frames_opened() const { return next_counter_ - 1; }

  private:
    bool failed_ = false;
};

}  // namespace kv::client
