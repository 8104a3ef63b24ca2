#include "client/frame_handshake.h"

#include <sodium.h>

#include <cassert>
#include <cstring>

#include "client/z85.h"

namespace kv::client {

namespace {

static_assert(crypto_box_PUBLICKEYBYTES == 32 && crypto_box_SECRETKEYBYTES == 32);
static_assert(crypto_box_NONCEBYTES == 24 && crypto_box_MACBYTES == 16);
static_assert(crypto_scalarmult_BYTES == 32 && crypto_scalarmult_SCALARBYTES == 32);

constexpr size_t kMac = crypto_box_MACBYTES;
constexpr size_t kKey = 32;

constexpr std::string_view kHelloCommand{"\x05HELLO", 6};
constexpr std::string_view kWelcomeCommand{"\x07WELCOME", 8};
constexpr std::string_view kInitiateCommand{"\x08INITIATE", 9};
constexpr std::string_view kReadyCommand{"\x05READY", 6};
constexpr std::string_view kErrorCommand{
    "\x05"
    "ERROR",
    6};  // E would extend \x05

constexpr size_t kHelloPaddingBytes = 72;
constexpr size_t kHelloSignatureBytes = 64;  // the zeros HELLO's box holds
constexpr size_t kVouchBytes = kKey + kKey + kMac;
constexpr size_t kInitiateFixedBytes = kKey + 16 + kVouchBytes + 1;  // before the metadata
constexpr size_t kReadyFixedBytes = 1;  // the cipher chosen, before the metadata
constexpr size_t kWelcomeBytes = kWelcomeCommand.size() + 16 + kKey + kMac;

static_assert(kHelloBytes == kHelloCommand.size() + 2 + kHelloPaddingBytes + kKey + 8 +
                                 kHelloSignatureBytes + kMac);
static_assert(kHandshakeFrameBytesMax == kInitiateCommand.size() + 8 + kInitiateFixedBytes +
                                             kHandshakeMetadataBytesMax + kMac);

// The reasons a server gives in ERROR when it refuses keys: fixed words, so
// the client can tell a refusal from other failures.
constexpr std::string_view kRefusedClientKey = "this client key is not admitted";
constexpr std::string_view kWrongServerKey = "this server does not hold the key the client expects";

void init_sodium() {
    [[maybe_unused]] static const int ready = [] {
        const int rc = ::sodium_init();
        assert(rc >= 0);  // fails only without a usable random source
        return rc;
    }();
}

using Nonce = std::array<unsigned char, crypto_box_NONCEBYTES>;

// A nonce of a 16-byte prefix and a 64-bit big-endian counter.
Nonce short_nonce(std::string_view prefix, uint64_t counter) {
    assert(prefix.size() == 16);
    Nonce n{};
    std::memcpy(n.data(), prefix.data(), 16);
    for (size_t i = 0; i < 8; ++i) n[16 + i] = static_cast<unsigned char>(counter >> (56 - 8 * i));
    return n;
}

// A nonce of an 8-byte prefix and 16 bytes taken from the frame.
Nonce long_nonce(std::string_view prefix, const unsigned char* random16) {
    assert(prefix.size() == 8);
    Nonce n{};
    std::memcpy(n.data(), prefix.data(), 8);
    std::memcpy(n.data() + 8, random16, 16);
    return n;
}

const unsigned char* bytes_of(std::string_view s) {
    return reinterpret_cast<const unsigned char*>(s.data());
}

void append(std::string& out, const void* bytes, size_t n) {
    out.append(static_cast<const char*>(bytes), n);
}

// The key of the boxes between two key pairs, made once per pair and used for
// every box between them (a Curve25519 multiplication costs tens of
// microseconds; the boxes after it, one). False when `their_public` is of low
// order (libsodium refuses an all-zero shared secret).
bool box_key(const CurveKey& their_public, const CurveKey& our_secret, SealKey& key) {
    return ::crypto_box_beforenm(key.data(), their_public.data(), our_secret.data()) == 0;
}

// Appends box[plain] under `key` and `nonce`.
void append_box(std::string& out, std::string_view plain, const Nonce& nonce, const SealKey& key) {
    const size_t at = out.size();
    out.resize(at + plain.size() + kMac);
    ::crypto_box_easy_afternm(reinterpret_cast<unsigned char*>(out.data() + at), bytes_of(plain),
                              plain.size(), nonce.data(), key.data());
}

// Opens a box under `key` and `nonce` into `plain`.
bool open_box(std::string_view boxed, const Nonce& nonce, const SealKey& key, std::string& plain) {
    if (boxed.size() < kMac) return false;
    plain.resize(boxed.size() - kMac);
    if (::crypto_box_open_easy_afternm(reinterpret_cast<unsigned char*>(plain.data()),
                                       bytes_of(boxed), boxed.size(), nonce.data(),
                                       key.data()) != 0) {
        ::sodium_memzero(plain.data(), plain.size());
        plain.clear();
        return false;
    }
    return true;
}

void wipe(SealKey& key) {
    ::sodium_memzero(key.data(), key.size());
}

CurveKey key_at(std::string_view s, size_t at) {
    CurveKey k;
    std::memcpy(k.data(), s.data() + at, kKey);
    return k;
}

CurveKeys fresh_short_term_pair() {
    init_sodium();
    CurveKeys pair;
    ::crypto_box_keypair(pair.public_key.data(), pair.secret_key.data());
    return pair;
}

void wipe(CurveKeys& pair) {
    ::sodium_memzero(pair.secret_key.data(), pair.secret_key.size());
}

std::string error_frame(std::string_view reason) {
    assert(reason.size() <= 255);
    std::string frame(kErrorCommand);
    frame.push_back(static_cast<char>(reason.size()));
    frame.append(reason);
    return frame;
}

// What a client makes of an ERROR from the server.
Status status_of_error(std::string_view frame) {
    const auto reason = handshake_error_reason(frame);
    if (!reason) return {ErrorCode::connection, "a malformed ERROR from the server"};
    const bool about_keys = *reason == kRefusedClientKey || *reason == kWrongServerKey;
    return {about_keys ? ErrorCode::unauthorized : ErrorCode::bad_request,
            "the server ended the handshake: " + *reason};
}

// Exactly one known cipher's bit.
bool is_one_cipher(uint8_t bits) {
    return bits == static_cast<uint8_t>(SealCipher::xsalsa20poly1305) ||
           bits == static_cast<uint8_t>(SealCipher::aes256gcm);
}

bool starts_with(std::string_view frame, std::string_view command) {
    return frame.substr(0, command.size()) == command;
}

}  // namespace

uint8_t ciphers_available() {
    uint8_t bits = static_cast<uint8_t>(SealCipher::xsalsa20poly1305);
    if (aes256gcm_available()) bits |= static_cast<uint8_t>(SealCipher::aes256gcm);
    return bits;
}

CurveKeys::~CurveKeys() {
    ::sodium_memzero(secret_key.data(), secret_key.size());
}

Result<CurveKey> curve_key_of(std::string_view public_z85) {
    const auto bytes = is_curve_key_z85(public_z85) ? z85_decode(public_z85) : std::nullopt;
    if (!bytes || bytes->size() != kKey) {
        return Status(ErrorCode::invalid_argument, "not a Z85 CURVE key (40 characters)");
    }
    return key_at(*bytes, 0);
}

Result<CurveKeys> curve_keys_of(std::string_view public_z85, std::string_view secret_z85) {
    auto pub = curve_key_of(public_z85);
    auto sec = curve_key_of(secret_z85);
    if (!pub || !sec) {
        return Status(ErrorCode::invalid_argument, "a key of the pair is not a Z85 CURVE key");
    }
    init_sodium();
    CurveKeys keys;
    keys.public_key = pub.value();
    keys.secret_key = sec.value();
    CurveKey derived{};
    if (::crypto_scalarmult_base(derived.data(), keys.secret_key.data()) != 0 ||
        ::sodium_memcmp(derived.data(), keys.public_key.data(), kKey) != 0) {
        return Status(ErrorCode::invalid_argument, "the public key is not the secret key's");
    }
    return keys;
}

std::optional<std::string> handshake_error_reason(std::string_view frame) {
    if (!starts_with(frame, kErrorCommand) || frame.size() < kErrorCommand.size() + 1) {
        return std::nullopt;
    }
    const size_t length = static_cast<unsigned char>(frame[kErrorCommand.size()]);
    if (frame.size() != kErrorCommand.size() + 1 + length) return std::nullopt;
    std::string reason(frame.substr(kErrorCommand.size() + 1));
    // Words from an unauthenticated peer end up in logs: printable only.
    for (char& c : reason) {
        if (c < 0x20 || c > 0x7e) c = '?';
    }
    return reason;
}

HandshakeSession::HandshakeSession(SealCipher cipher_chosen, const SealKey& key, bool client,
                                   const CurveKey& peer, std::string metadata)
    : cipher(cipher_chosen),
      sealer(cipher_chosen, key,
             client ? SealDirection::client_to_server : SealDirection::server_to_client),
      opener(cipher_chosen, key,
             client ? SealDirection::server_to_client : SealDirection::client_to_server),
      peer_key(peer),
      peer_metadata(std::move(metadata)) {}

void HandshakeSecrets::wipe() {
    kv::client::wipe(short_pair);
    kv::client::wipe(hello_key);
    kv::client::wipe(short_key);
}

// ---- client ----

HandshakeClient::HandshakeClient(const CurveKeys& ours, const CurveKey& server_key,
                                 std::string metadata, uint8_t ciphers)
    : ours_(ours),
      server_key_(server_key),
      metadata_(std::move(metadata)),
      ciphers_offered_(ciphers) {
    assert(metadata_.size() <= kHandshakeMetadataBytesMax);
}

HandshakeStep HandshakeClient::fail(Status status) {
    stage_ = Stage::failed;
    secrets_.wipe();
    return HandshakeStep{std::move(status), {}, false};
}

Result<std::string> HandshakeClient::hello() {
    assert(stage_ == Stage::start);
    secrets_.short_pair = fresh_short_term_pair();
    if (!box_key(server_key_, secrets_.short_pair.secret_key, secrets_.hello_key)) {
        fail({});
        return Status(ErrorCode::invalid_argument,
                      "the server key is not a usable Curve25519 public key");
    }
    const uint64_t nonce = next_nonce_++;
    std::string frame(kHelloCommand);
    frame.push_back(1);  // version 1.0
    frame.push_back(0);
    frame.append(kHelloPaddingBytes, '\0');
    append(frame, secrets_.short_pair.public_key.data(), kKey);
    const Nonce n = short_nonce("CurveZMQHELLO---", nonce);
    append(frame, n.data() + 16, 8);
    append_box(frame, std::string(kHelloSignatureBytes, '\0'), n, secrets_.hello_key);
    assert(frame.size() == kHelloBytes);
    stage_ = Stage::hello_sent;
    return frame;
}

HandshakeStep HandshakeClient::on_frame(std::string_view frame) {
    if (stage_ == Stage::failed) {
        return {Status(ErrorCode::connection, "the handshake already failed"), {}, false};
    }
    if (stage_ != Stage::hello_sent && stage_ != Stage::initiate_sent) {
        return fail({ErrorCode::connection, "a handshake frame where none was expected"});
    }
    if (starts_with(frame, kErrorCommand)) return fail(status_of_error(frame));
    std::string plain;
    if (stage_ == Stage::hello_sent) {
        if (frame.size() != kWelcomeBytes || !starts_with(frame, kWelcomeCommand)) {
            return fail({ErrorCode::connection, "expected WELCOME from the server"});
        }
        const Nonce n = long_nonce("WELCOME-", bytes_of(frame) + kWelcomeCommand.size());
        if (!open_box(frame.substr(kWelcomeCommand.size() + 16), n, secrets_.hello_key, plain)) {
            return fail({ErrorCode::unauthorized,
                         "the server did not prove the server key this client expects (a "
                         "wrong server key, or not a node of this cluster)"});
        }
        server_short_ = key_at(plain, 0);
        SealKey vouch_key{};
        if (!box_key(server_short_, secrets_.short_pair.secret_key, secrets_.short_key) ||
            !box_key(server_short_, ours_.secret_key, vouch_key)) {
            return fail({ErrorCode::connection, "the server's short-term key is not usable"});
        }
        // The vouch: our long-term key stands for our short-term one, towards
        // this server, in this session only (it is boxed to S').
        std::string vouched;
        append(vouched, secrets_.short_pair.public_key.data(), kKey);
        append(vouched, server_key_.data(), kKey);
        std::array<unsigned char, 16> vouch_nonce{};
        ::randombytes_buf(vouch_nonce.data(), vouch_nonce.size());
        std::string inner;
        append(inner, ours_.public_key.data(), kKey);
        append(inner, vouch_nonce.data(), vouch_nonce.size());
        append_box(inner, vouched, long_nonce("VOUCH---", vouch_nonce.data()), vouch_key);
        wipe(vouch_key);
        inner.push_back(static_cast<char>(ciphers_offered_));
        inner.append(metadata_);
        const Nonce in = short_nonce("CurveZMQINITIATE", next_nonce_++);
        std::string reply(kInitiateCommand);
        append(reply, in.data() + 16, 8);
        append_box(reply, inner, in, secrets_.short_key);
        stage_ = Stage::initiate_sent;
        return {Status(), std::move(reply), false};
    }
    // initiate_sent: READY
    constexpr size_t kReadyMin = kReadyCommand.size() + 8 + kReadyFixedBytes + kMac;
    if (frame.size() < kReadyMin || !starts_with(frame, kReadyCommand) ||
        frame.size() > kReadyMin + kHandshakeMetadataBytesMax) {
        return fail({ErrorCode::connection, "expected READY from the server"});
    }
    Nonce n = short_nonce("CurveZMQREADY---", 0);
    std::memcpy(n.data() + 16, frame.data() + kReadyCommand.size(), 8);
    if (!open_box(frame.substr(kReadyCommand.size() + 8), n, secrets_.short_key, plain)) {
        return fail({ErrorCode::connection, "READY did not open (damaged or forged)"});
    }
    const uint8_t chosen = static_cast<uint8_t>(plain[0]);
    if (!is_one_cipher(chosen) || (chosen & ciphers_offered_) == 0) {
        return fail({ErrorCode::connection, "the server chose a cipher this client did not offer"});
    }
    session_ =
        std::make_unique<HandshakeSession>(static_cast<SealCipher>(chosen), secrets_.short_key,
                                           true, server_key_, plain.substr(kReadyFixedBytes));
    secrets_.wipe();
    stage_ = Stage::established;
    return {Status(), {}, true};
}

std::unique_ptr<HandshakeSession> HandshakeClient::take_session() {
    assert(stage_ == Stage::established);
    stage_ = Stage::taken;
    return std::move(session_);
}

// ---- server ----

HandshakeServer::HandshakeServer(const CurveKeys& ours, Admit admit, std::string metadata)
    : ours_(ours), admit_(std::move(admit)), metadata_(std::move(metadata)) {
    assert(metadata_.size() <= kHandshakeMetadataBytesMax);
}

HandshakeStep HandshakeServer::fail(Status status, std::string_view error_reason) {
    stage_ = Stage::failed;
    secrets_.wipe();
    return {std::move(status), error_reason.empty() ? std::string() : error_frame(error_reason),
            false};
}

HandshakeStep HandshakeServer::on_frame(std::string_view frame) {
    switch (stage_) {
        case Stage::start:
            return on_hello(frame);
        case Stage::welcome_sent:
            return on_initiate(frame);
        case Stage::failed:
            return {Status(ErrorCode::connection, "the handshake already failed"), {}, false};
        case Stage::established:
        case Stage::taken:
            break;
    }
    return fail({ErrorCode::connection, "a handshake frame after the handshake"}, {});
}

HandshakeStep HandshakeServer::on_hello(std::string_view frame) {
    if (frame.size() != kHelloBytes || !starts_with(frame, kHelloCommand)) {
        return fail({ErrorCode::connection, "expected HELLO from the client"}, {});
    }
    // Exactly 1.0: the version bytes are outside every box, so a later
    // version must confirm what it negotiates inside them, not here.
    if (frame[kHelloCommand.size()] != 1 || frame[kHelloCommand.size() + 1] != 0) {
        return fail({ErrorCode::connection, "HELLO of an unknown version"},
                    "this server speaks handshake version 1.0");
    }
    if (::sodium_is_zero(bytes_of(frame) + kHelloCommand.size() + 2, kHelloPaddingBytes) != 1) {
        return fail({ErrorCode::connection, "HELLO's padding is not zeros"}, {});
    }
    size_t at = kHelloCommand.size() + 2 + kHelloPaddingBytes;
    client_short_ = key_at(frame, at);
    at += kKey;
    Nonce n = short_nonce("CurveZMQHELLO---", 0);
    std::memcpy(n.data() + 16, frame.data() + at, 8);
    at += 8;
    if (!box_key(client_short_, ours_.secret_key, secrets_.hello_key)) {
        return fail({ErrorCode::connection, "the client's short-term key is not usable"}, {});
    }
    std::string plain;
    if (!open_box(frame.substr(at), n, secrets_.hello_key, plain) ||
        ::sodium_is_zero(bytes_of(plain), plain.size()) != 1) {
        return fail({ErrorCode::connection,
                     "HELLO did not open with this server's key (the client expects another "
                     "server key, or the frame was damaged)"},
                    kWrongServerKey);
    }
    secrets_.short_pair = fresh_short_term_pair();
    std::array<unsigned char, 16> nonce16{};
    ::randombytes_buf(nonce16.data(), nonce16.size());
    std::string reply(kWelcomeCommand);
    append(reply, nonce16.data(), nonce16.size());
    append_box(reply,
               std::string_view(
                   reinterpret_cast<const char*>(secrets_.short_pair.public_key.data()), kKey),
               long_nonce("WELCOME-", nonce16.data()), secrets_.hello_key);
    wipe(secrets_.hello_key);
    assert(reply.size() == kWelcomeBytes);
    stage_ = Stage::welcome_sent;
    return {Status(), std::move(reply), false};
}

HandshakeStep HandshakeServer::on_initiate(std::string_view frame) {
    constexpr size_t kInitiateMin = kInitiateCommand.size() + 8 + kInitiateFixedBytes + kMac;
    if (frame.size() < kInitiateMin || frame.size() > kHandshakeFrameBytesMax ||
        !starts_with(frame, kInitiateCommand)) {
        return fail({ErrorCode::connection, "expected INITIATE from the client"}, {});
    }
    Nonce n = short_nonce("CurveZMQINITIATE", 0);
    std::memcpy(n.data() + 16, frame.data() + kInitiateCommand.size(), 8);
    std::string inner;
    if (!box_key(client_short_, secrets_.short_pair.secret_key, secrets_.short_key) ||
        !open_box(frame.substr(kInitiateCommand.size() + 8), n, secrets_.short_key, inner)) {
        return fail({ErrorCode::connection, "INITIATE did not open (damaged or forged)"}, {});
    }
    const CurveKey client_key = key_at(inner, 0);
    const auto* vouch_nonce = bytes_of(inner) + kKey;
    std::string vouched;
    SealKey vouch_key{};
    const bool vouch_opens = box_key(client_key, secrets_.short_pair.secret_key, vouch_key) &&
                             open_box(std::string_view(inner).substr(kKey + 16, kVouchBytes),
                                      long_nonce("VOUCH---", vouch_nonce), vouch_key, vouched);
    wipe(vouch_key);
    if (!vouch_opens || ::sodium_memcmp(bytes_of(vouched), client_short_.data(), kKey) != 0 ||
        ::sodium_memcmp(bytes_of(vouched) + kKey, ours_.public_key.data(), kKey) != 0) {
        return fail({ErrorCode::connection,
                     "the client's vouch does not hold (it does not own the key it names)"},
                    {});
    }
    if (!admit_(client_key)) {
        return fail({ErrorCode::unauthorized, "the client's key is not admitted"},
                    kRefusedClientKey);
    }
    const uint8_t offered = static_cast<uint8_t>(inner[kInitiateFixedBytes - 1]);
    const uint8_t common = offered & ciphers_available();
    if (common == 0) {
        return fail({ErrorCode::connection, "no cipher in common with the client"},
                    "no cipher in common");
    }
    const SealCipher cipher = (common & static_cast<uint8_t>(SealCipher::aes256gcm)) != 0
                                  ? SealCipher::aes256gcm
                                  : SealCipher::xsalsa20poly1305;
    std::string ready_inner(1, static_cast<char>(cipher));
    ready_inner.append(metadata_);
    std::string reply(kReadyCommand);
    const Nonce rn = short_nonce("CurveZMQREADY---", 1);
    append(reply, rn.data() + 16, 8);
    append_box(reply, ready_inner, rn, secrets_.short_key);
    session_ = std::make_unique<HandshakeSession>(cipher, secrets_.short_key, false, client_key,
                                                  inner.substr(kInitiateFixedBytes));
    secrets_.wipe();
    stage_ = Stage::established;
    return {Status(), std::move(reply), true};
}

std::unique_ptr<HandshakeSession> HandshakeServer::take_session() {
    assert(stage_ == Stage::established);
    stage_ = Stage::taken;
    return std::move(session_);
}

}  // namespace kv::client
