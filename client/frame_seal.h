// Sealing and opening the frames of an established session, as CurveZMQ's
// MESSAGE command does (RFC 26): XSalsa20-Poly1305 under the key both ends
// derive from their short-term key pairs (crypto_box_beforenm), with a 24-byte
// nonce made of a 16-byte prefix naming the direction and a 64-bit counter
// that rises by one with every frame. A sealed frame is the counter (8 bytes,
// big endian, as CurveZMQ's short nonce), the 16-byte tag, then the cipher
// text.
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

// One direction's prefixes, as CurveZMQ names them.
inline constexpr std::string_view kClientToServerPrefix = "CurveZMQMESSAGEC";
inline constexpr std::string_view kServerToClientPrefix = "CurveZMQMESSAGES";

// What one direction of a session keeps: its key, and its nonce (the
// direction's prefix, then the counter of the next frame). The key is wiped
// when the session ends.
class SealState {
  public:
    SealState(const SealState&) = delete;
    SealState& operator=(const SealState&) = delete;

  protected:
    // `prefix` is 16 bytes (kClientToServerPrefix or kServerToClientPrefix).
    SealState(const SealKey& key, std::string_view prefix);
    ~SealState();

    SealKey key_;
    std::array<unsigned char, 24> nonce_{};
    uint64_t next_counter_ = 1;
};

// Seals the frames one end sends.
class FrameSealer : private SealState {
  public:
    FrameSealer(const SealKey& key, std::string_view prefix) : SealState(key, prefix) {}

    // Appends `plain` sealed to `out`. Fails (internal) only once the counter
    // would wrap, after 2^64 - 1 frames: the session must end before that.
    Status seal(std::string_view plain, std::string& out);
    uint64_t frames_sealed() const { return next_counter_ - 1; }
};

// Opens the frames the other end sent.
class FrameOpener : private SealState {
  public:
    FrameOpener(const SealKey& key, std::string_view prefix) : SealState(key, prefix) {}

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
