// The handshake that opens a sealed session over frames (client/frame_link.h):
// CurveZMQ's (RFC 26) HELLO, WELCOME, INITIATE, READY and ERROR commands, each
// one frame, ending with both ends holding the session's FrameSealer and
// FrameOpener (client/frame_seal.h), the server knowing the client's
// long-term key, and the client knowing it reached the holder of the server
// key it expected.
//
// Why CurveZMQ's: the cluster already rests on its keys (Curve25519 pairs in
// Z85, docs/SECURITY.md) and on what it proves: the server proves its
// long-term key (the cluster key) before the client reveals anything; the
// client proves its long-term key (a member's or a user's) with a vouch bound
// to this session's short-term keys, so it cannot be replayed into another;
// every session's key comes from short-term key pairs wiped once it is made
// (forward secrecy). A transport without ZeroMQ must keep all of that.
//
// What differs from RFC 26, and why:
// - No cookie. A ZeroMQ server forgets its short-term key between WELCOME and
//   INITIATE so that a flood of HELLOs costs it no memory; here each
//   connection has its state anyway (its FrameLink), so WELCOME carries only
//   the server's short-term key, and INITIATE no cookie.
// - ERROR frames name what failed in words (a client with the wrong server
//   key, a refused client key), for the operator reading the client's error;
//   they are unauthenticated, like RFC 26's, so a client only ever treats one
//   as the end of the attempt.
// - Metadata is opaque bytes (at most kHandshakeMetadataBytesMax), not
//   RFC 23 properties: the runtime decides what it needs (a node's id).
// - The session's cipher is agreed inside the boxes: the client offers in
//   INITIATE, the server chooses in READY (AES-256-GCM when both have it, a
//   third of XSalsa20-Poly1305's cost), so no one on the path can push a
//   session to another cipher.
//
// Layouts (bytes; box[...](A->B) is crypto_box from A's secret to B's public
// key; C, S are the long-term public keys, C', S' the short-term ones):
//   HELLO     "\x05HELLO" 0x01 0x00, 72 zero bytes (so that no reply is larger
//             than what asked for it), C', nonce 8, box[64 zero bytes](C'->S)
//             under "CurveZMQHELLO---" + nonce: 200 bytes.
//   WELCOME   "\x07WELCOME", nonce 16, box[S'](S->C') under "WELCOME-" + nonce:
//             72 bytes.
//   INITIATE  "\x08INITIATE", nonce 8, box[C, vouch nonce 16, vouch, ciphers
//             offered 1, metadata](C'->S') under "CurveZMQINITIATE" + nonce,
//             where vouch is box[C', S](C->S') under "VOUCH---" + vouch nonce.
//   READY     "\x05READY", nonce 8, box[cipher chosen 1, metadata](S'->C')
//             under "CurveZMQREADY---" + nonce.
//   ERROR     "\x05ERROR", reason length 1, reason.
//
// Driving it: the owner moves frames between the link and these objects; they
// neither read nor write sockets, nor keep time (the owner ends an attempt
// that takes too long). Any frame that is not the one expected next, or whose
// box does not open, fails the attempt; a failed or finished handshake takes
// no more frames. Counting and logging refusals is the owner's business.
// Thread-safety: none; one owner per object.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "client/frame_seal.h"
#include "client/status.h"

namespace kv::client {

using CurveKey = std::array<unsigned char, 32>;

// A long-term key pair in bytes. The secret is wiped when it is destroyed.
struct CurveKeys {
    CurveKey public_key{};
    CurveKey secret_key{};
    CurveKeys() = default;
    CurveKeys(const CurveKeys&) = default;
    CurveKeys& operator=(const CurveKeys&) = default;
    ~CurveKeys();
};

// A key pair in Z85 (as a credentials file holds it, client/keys.h) in bytes.
// Fails (invalid_argument) when either key is not Z85 of 32 bytes, or the
// public key is not the secret key's.
Result<CurveKeys> curve_keys_of(std::string_view public_z85, std::string_view secret_z85);
// A Z85 public key in bytes; fails (invalid_argument) when it is not one.
Result<CurveKey> curve_key_of(std::string_view public_z85);

inline constexpr size_t kHandshakeMetadataBytesMax = 1024;
inline constexpr size_t kHelloBytes = 200;
// The largest handshake frame (an INITIATE with the most metadata): a
// FrameLink that carries a handshake must accept frames this large.
inline constexpr size_t kHandshakeFrameBytesMax =
    9 + 8 + 16 + 32 + 16 + 80 + 1 + kHandshakeMetadataBytesMax;

// The ciphers this end can seal with, as the bits of a handshake's offer:
// AES-256-GCM where libsodium has it (AES-NI and PCLMULQDQ), and
// XSalsa20-Poly1305 always.
uint8_t ciphers_available();

// An established session: what one end seals with and opens with, and who is
// at the other end.
struct HandshakeSession {
    HandshakeSession(SealCipher cipher, const SealKey& key, bool client, const CurveKey& peer_key,
                     std::string peer_metadata);
    SealCipher cipher;
    FrameSealer sealer;
    FrameOpener opener;
    // The server's long-term key at the client (the one it expected), the
    // client's at the server (the one it proved).
    CurveKey peer_key;
    std::string peer_metadata;
};

// What one end of a handshake keeps secret until the session is made (then
// wiped, as on failure and destruction): its short-term pair, and the box
// keys made from it (each made once: a Curve25519 multiplication costs tens
// of microseconds, a box after it about one).
struct HandshakeSecrets {
    CurveKeys short_pair;  // C', c' at the client; S', s' at the server
    SealKey hello_key{};   // boxes between C' and S (HELLO, WELCOME)
    SealKey short_key{};   // boxes between C' and S' (INITIATE, READY), the session's key
    void wipe();
    ~HandshakeSecrets() { wipe(); }
};

// What one end makes of a frame it received.
struct HandshakeStep {
    // Not ok: the attempt failed; send `reply` (an ERROR) if any, then close.
    //   connection: a frame out of order, malformed, or whose box fails
    //     (at the server, a HELLO for another server key too);
    //   unauthorized: at the server, a client key not admitted; at the
    //     client, a server without the expected key, or a refusal;
    //   bad_request: an ERROR from the other end that is not about keys.
    Status status;
    // A frame to send now (before closing, when `status` is not ok).
    std::string reply;
    // The session is ready: take it with take_session().
    bool established = false;
};

class HandshakeClient {
  public:
    // `ours` is the client's long-term pair; `server_key` the key the server
    // must prove; `metadata` (at most kHandshakeMetadataBytesMax, asserted)
    // reaches the server once it has admitted us. `ciphers` (SealCipher bits)
    // is what the client offers; the server picks one, AES-256-GCM first.
    HandshakeClient(const CurveKeys& ours, const CurveKey& server_key, std::string metadata,
                    uint8_t ciphers = ciphers_available());
    HandshakeClient(const HandshakeClient&) = delete;
    HandshakeClient& operator=(const HandshakeClient&) = delete;

    // The first frame, HELLO; once. Fails (invalid_argument) when the server
    // key is not a usable Curve25519 key (of low order).
    Result<std::string> hello();
    // WELCOME gives INITIATE to send; READY establishes the session.
    HandshakeStep on_frame(std::string_view frame);
    // The session, once established (then the object is spent).
    std::unique_ptr<HandshakeSession> take_session();

  private:
    enum class Stage { start, hello_sent, initiate_sent, established, taken, failed };
    HandshakeStep fail(Status status);

    Stage stage_ = Stage::start;
    CurveKeys ours_;
    CurveKey server_key_;
    std::string metadata_;
    HandshakeSecrets secrets_;
    CurveKey server_short_{};  // S'
    uint8_t ciphers_offered_;
    uint64_t next_nonce_ = 1;
    std::unique_ptr<HandshakeSession> session_;
};

class HandshakeServer {
  public:
    // Whether a client that proved `client_key` may have a session.
    using Admit = std::function<bool(const CurveKey& client_key)>;

    // `ours` is the server's long-term pair (the cluster key); `metadata` (at
    // most kHandshakeMetadataBytesMax, asserted) reaches an admitted client.
    HandshakeServer(const CurveKeys& ours, Admit admit, std::string metadata);
    HandshakeServer(const HandshakeServer&) = delete;
    HandshakeServer& operator=(const HandshakeServer&) = delete;

    // HELLO gives WELCOME to send; INITIATE gives READY and establishes the
    // session, or ERROR when the client's key is not admitted.
    HandshakeStep on_frame(std::string_view frame);
    std::unique_ptr<HandshakeSession> take_session();

  private:
    enum class Stage { start, welcome_sent, established, taken, failed };
    HandshakeStep fail(Status status, std::string_view error_reason);
    HandshakeStep on_hello(std::string_view frame);
    HandshakeStep on_initiate(std::string_view frame);

    Stage stage_ = Stage::start;
    CurveKeys ours_;
    Admit admit_;
    std::string metadata_;
    HandshakeSecrets secrets_;
    CurveKey client_short_{};  // C'
    std::unique_ptr<HandshakeSession> session_;
};

// The ERROR command's reason, when `frame` is one (for an owner that wants to
// log what the other end said).
std::optional<std::string> handshake_error_reason(std::string_view frame);

}  // namespace kv::client
