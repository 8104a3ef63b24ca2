#include "tests/fuzz/decoders.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <utility>

#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/frame_batch.h"
#include "client/metrics.h"
#include "client/protocol.h"
#include "client/secure_link.h"
#include "client/z85.h"
#include "gossip/gossip.h"
#include "gossip/gossip_codec.h"
#include "node/data/object.h"
#include "node/data/stored_record.h"
#include "node/metrics/http_server.h"
#include "node/peer_protocol.h"
#include "node/resp/resp_parser.h"
#include "node/storage/meta_codec.h"

namespace kv::fuzz {

namespace {

size_t pieces_size(const std::vector<std::string_view>& pieces) {
    size_t total = 0;
    for (auto p : pieces) total += p.size();
    return total;
}

// A broken promise of a codec: abort, so that libFuzzer keeps the input and
// the regression test fails (abort is not an exception a caller can swallow).
void require(bool holds, const char* target, const char* what) {
    if (holds) return;
    std::fprintf(stderr, "fuzz target %s: %s\n", target, what);
    std::abort();
}

// decode(encode(m)) must give m back: the codecs promise that every message
// they accept survives a trip through the encoder unchanged (normalised
// forms, such as sorted tokens, are what decode returns in the first place).
template <typename Decode, typename T>
void require_round_trip(const char* target, const T& decoded, const std::string& encoded,
                        Decode decode) {
    auto again = decode(encoded);
    require(again.ok(), target, "re-encoding of a decoded input does not decode");
    require(again.value() == decoded, target, "decode(encode(decode(x))) != decode(x)");
}

}  // namespace

void client_frame(std::string_view input) {
    uint64_t id = 0;
    auto m = proto::decode(input, &id);
    if (!m.ok()) return;
    require(id == proto::request_id(m.value()), "client_frame",
            "id_out differs from the message id");
    require_round_trip("client_frame", m.value(), proto::encode(m.value()),
                       [](std::string_view f) { return proto::decode(f); });
}

// A batch frame from a client or a member (the node splits it, then decodes
// each message as node_frame does). What splits must be views into the input
// that BatchFrame writes back byte for byte.
void batch_frame(std::string_view input) {
    std::vector<std::string_view> messages;
    if (!proto::split_batch_frame(input, messages)) return;
    require(!messages.empty(), "batch_frame", "a batch split into no message");
    proto::BatchFrame again(input.size());
    for (std::string_view m : messages) {
        require(m.data() >= input.data() && m.data() + m.size() <= input.data() + input.size(),
                "batch_frame", "a message lies outside the frame");
        require(again.fits(m.size()), "batch_frame", "a split message does not fit back");
        again.add(m);
    }
    require(again.bytes() == input, "batch_frame", "BatchFrame(split(x)) != x");
    for (std::string_view m : messages) node_frame(m);
}

void node_frame(std::string_view input) {
    uint64_t id = 0;
    auto m = node::decode(input, &id);
    if (!m.ok()) return;
    require(id == node::request_id(m.value()), "node_frame", "id_out differs from the message id");
    require_round_trip("node_frame", m.value(), node::encode(m.value()),
                       [](std::string_view f) { return node::decode(f); });
    // A client message reads the same through both decoders.
    auto as_client = proto::decode(input);
    require(as_client.ok() == (m.value().index() < std::variant_size_v<proto::Message>),
            "node_frame", "node::decode and proto::decode disagree on a client message");
}

void gossip_payload(std::string_view input) {
    auto m = gossip::decode(input);
    if (!m.ok()) return;
    require_round_trip("gossip_payload", m.value(), gossip::encode(m.value()),
                       [](std::string_view f) { return gossip::decode(f); });
}

void stored_object(std::string_view input) {
    // The same bytes as a stored record's value (node/data/stored_record.h):
    // the header reads back as written, and the object after it decodes or
    // fails cleanly.
    if (auto record = node::read_stored_record(node::stored_key(0, "k"), input)) {
        require(node::stored_value(record->hash, record->since_ms, record->object) == input,
                "stored_object", "a stored record's value does not survive its codec");
        (void)node::decode_object(record->object);
    }
    auto object = node::decode_object(input);
    if (!object.ok()) return;
    const std::string encoded = node::encode_object(object.value());
    require(encoded.size() <= object.value().encoded_size_bound(), "stored_object",
            "encoded_size_bound() is below the encoded size");
    require_round_trip("stored_object", object.value(), encoded,
                       [](std::string_view f) { return node::decode_object(f); });
    // Merge is idempotent: a replica merging what it already holds keeps it.
    require(node::merge(object.value(), object.value()) == object.value(), "stored_object",
            "merge(x, x) != x");
    // An object's context passes through the context codec too (read replies
    // hand it to clients, whose next write sends it back).
    if (encoded.size() <= proto::kContextBytesMax) {
        const std::string context = node::encode_context(object.value().context);
        if (context.size() <= proto::kContextBytesMax) {
            auto back = node::decode_context(context);
            require(back.ok() && back.value() == object.value().context, "stored_object",
                    "an object's context does not survive the context codec");
        }
    }
}

// Two objects (a 2-byte little-endian length, that many bytes of the first,
// the rest the second), merged as replicas merge them: merge is commutative,
// associative and idempotent (object.h), and its result is a well-formed
// object that covers what both sides saw.
void object_merge(std::string_view input) {
    if (input.size() < 2) return;
    const size_t first_bytes = (static_cast<unsigned char>(input[0]) |
                                static_cast<size_t>(static_cast<unsigned char>(input[1])) << 8) %
                               (input.size() - 1);
    input.remove_prefix(2);
    auto a = node::decode_object(input.substr(0, first_bytes));
    auto b = node::decode_object(input.substr(first_bytes));
    if (!a.ok() || !b.ok()) return;
    // The promises hold for histories where a dot names one write (only its
    // replica mints it); two objects that disagree on a dot's value are not
    // such a history.
    for (const auto& s : a.value().siblings) {
        for (const auto& t : b.value().siblings) {
            if (s.dot == t.dot && s.value != t.value) return;
        }
    }
    const node::Object ab = node::merge(a.value(), b.value());
    require(ab == node::merge(b.value(), a.value()), "object_merge", "merge(a, b) != merge(b, a)");
    require(node::merge(ab, a.value()) == ab && node::merge(ab, b.value()) == ab, "object_merge",
            "merging a side again changes merge(a, b)");
    require(ab.context.descends(a.value().context) && ab.context.descends(b.value().context),
            "object_merge", "merge(a, b) does not descend from a and b");
    const std::string encoded = node::encode_object(ab);
    if (encoded.size() <= proto::kObjectBytesMax) {
        auto back = node::decode_object(encoded);
        require(back.ok() && back.value() == ab, "object_merge",
                "merge(a, b) is not a well-formed object");
    }
}

void causal_context(std::string_view input) {
    auto vv = node::decode_context(input);
    if (!vv.ok()) return;
    require_round_trip("causal_context", vv.value(), node::encode_context(vv.value()),
                       [](std::string_view f) { return node::decode_context(f); });
}

// The first byte picks the record, the rest is its stored value: one target
// for the few small decoders of the meta space.
void meta_record(std::string_view input) {
    if (input.empty()) return;
    const char kind = input[0];
    input.remove_prefix(1);
    switch (kind % 4) {
        case 0: {
            auto tokens = node::meta::decode_tokens(input, gossip::kGossipTokensPerMemberMax);
            if (!tokens) return;
            require(std::is_sorted(tokens->begin(), tokens->end()) &&
                        std::adjacent_find(tokens->begin(), tokens->end()) == tokens->end(),
                    "meta_record", "decoded tokens are not sorted and distinct");
            auto again = node::meta::decode_tokens(node::meta::encode_tokens(*tokens),
                                                   gossip::kGossipTokensPerMemberMax);
            require(again && *again == *tokens, "meta_record", "tokens round trip");
            return;
        }
        case 1: {
            auto handoffs = node::meta::decode_handoffs(input);
            if (!handoffs) return;
            auto again = node::meta::decode_handoffs(node::meta::encode_handoffs(*handoffs));
            require(again && *again == *handoffs, "meta_record", "handoffs round trip");
            return;
        }
        case 2: {
            auto v = node::meta::decode_u64_text(input);
            if (!v) return;
            // Decimal text has one spelling per value, but leading zeros also read.
            auto again = node::meta::decode_u64_text(node::meta::encode_u64_text(*v));
            require(again && *again == *v, "meta_record", "u64 text round trip");
            return;
        }
        default:
            (void)node::meta::check_format(std::string(input));
            return;
    }
}

void z85(std::string_view input) {
    auto bytes = z85_decode(input);
    if (is_curve_key_z85(input)) {
        require(bytes && bytes->size() == kCurveKeyBytes, "z85",
                "a curve key that does not decode");
    }
    if (!bytes) return;
    require(bytes->size() * 5 == input.size() * 4, "z85", "decoded size is not 4/5 of the text");
    // Z85 is canonical: each group of 5 characters is one number below 2^32.
    auto text = z85_encode(*bytes);
    require(text && *text == input, "z85", "z85_encode(z85_decode(x)) != x");
}

namespace {

// Every command the parser takes from `pieces` fed one after another, and
// whether it ended in a protocol error. Small limits, so inputs reach them.
std::pair<std::vector<std::vector<std::string>>, bool> parse_resp(
    const std::vector<std::string_view>& pieces) {
    node::resp::ParserLimits limits;
    limits.args_max = 8;
    limits.bulk_bytes_max = 64;
    limits.command_bytes_max = 256;
    limits.inline_bytes_max = 128;
    node::resp::CommandParser parser(limits);
    std::vector<std::vector<std::string>> commands;
    std::vector<std::string> args;
    std::string error;
    for (std::string_view piece : pieces) {
        parser.feed(piece);
        for (;;) {
            const auto outcome = parser.next(args, error);
            if (outcome == node::resp::CommandParser::Outcome::error) return {commands, true};
            if (outcome == node::resp::CommandParser::Outcome::need_more) break;
            require(!args.empty() && args.size() <= limits.args_max, "resp_command",
                    "a command with no or too many arguments");
            commands.push_back(args);
        }
    }
    require(parser.buffered_bytes() <= pieces_size(pieces), "resp_command",
            "more bytes buffered than were fed");
    return {commands, false};
}

}  // namespace

// The parser reads the same commands however the bytes are cut (the network
// cuts them anywhere), and each command it takes, sent again as a RESP array,
// reads back unchanged.
void resp_command(std::string_view input) {
    const auto whole = parse_resp({input});
    const size_t cut = input.empty() ? 0 : static_cast<unsigned char>(input[0]) % input.size();
    const auto cut_in_two = parse_resp({input.substr(0, cut), input.substr(cut)});
    require(whole == cut_in_two, "resp_command", "a cut in the input changed what was parsed");
    for (const auto& command : whole.first) {
        std::string encoded = "*" + std::to_string(command.size()) + "\r\n";
        for (const auto& arg : command) {
            encoded += "$" + std::to_string(arg.size()) + "\r\n" + arg + "\r\n";
        }
        const auto again = parse_resp({encoded});
        require(!again.second && again.first.size() == 1 && again.first[0] == command,
                "resp_command", "a parsed command does not survive re-encoding");
    }
}

namespace {

// What the metrics page answers to `pieces` of one connection's input, in
// order, with whether it closed after each.
std::vector<std::pair<std::string, bool>> serve_http(const std::vector<std::string_view>& pieces) {
    node::metrics::HttpServer server([] { return std::string("kv_x_total 1\n"); });
    server.open(1);
    std::vector<std::pair<std::string, bool>> answers;
    std::vector<node::metrics::HttpServer::Output> out;
    for (auto piece : pieces) {
        server.receive(1, piece);
        server.take_output(out);
        for (auto& o : out) answers.emplace_back(std::move(o.bytes), o.close_after);
    }
    return answers;
}

bool same_value(double a, double b) {
    return (std::isnan(a) && std::isnan(b)) || a == b;
}

bool same_families(const std::vector<kv::metrics::Family>& a,
                   const std::vector<kv::metrics::Family>& b) {
    if (a.size() != b.size()) return false;
    for (size_t f = 0; f < a.size(); ++f) {
        if (a[f].name != b[f].name || a[f].type != b[f].type || a[f].help != b[f].help ||
            a[f].samples.size() != b[f].samples.size()) {
            return false;
        }
        for (size_t i = 0; i < a[f].samples.size(); ++i) {
            const auto& x = a[f].samples[i];
            const auto& y = b[f].samples[i];
            if (x.name != y.name || x.labels != y.labels || !same_value(x.value, y.value)) {
                return false;
            }
        }
    }
    return true;
}

}  // namespace

// The metrics page answers the same however the bytes are cut; every answer
// is a whole HTTP/1.1 response, and nothing follows one that closes.
void http_request(std::string_view input) {
    const auto whole = serve_http({input});
    const size_t cut = input.empty() ? 0 : static_cast<unsigned char>(input[0]) % input.size();
    const auto cut_in_two = serve_http({input.substr(0, cut), input.substr(cut)});
    require(whole == cut_in_two, "http_request", "a cut in the input changed the answers");
    for (size_t i = 0; i < whole.size(); ++i) {
        const std::string& bytes = whole[i].first;
        require(bytes.rfind("HTTP/1.1 ", 0) == 0, "http_request",
                "an answer without a status line");
        const size_t head_end = bytes.find("\r\n\r\n");
        require(head_end != std::string::npos, "http_request", "an answer without a whole head");
        require(bytes.find("Content-Length: ") < head_end, "http_request",
                "an answer without Content-Length");
        require(!whole[i].second || i + 1 == whole.size(), "http_request",
                "an answer after the one that closed the connection");
    }
}

namespace {

// What a link's server end makes of `pieces` written one after another to the
// other end of a socket pair (read after each): the status code of its last
// receive (ok: waiting for more), and how many frames it handed over.
std::pair<ErrorCode, size_t> serve_link(const std::vector<std::string_view>& pieces) {
    // A fixed server key: the fuzzer cannot make boxes for it anyway.
    static const client::CurveKeys server_keys = [] {
        client::CurveKeys keys;
        std::array<unsigned char, crypto_box_SEEDBYTES> seed{};
        seed.fill(7);
        require(::sodium_init() >= 0, "link_bytes", "libsodium cannot start");
        ::crypto_box_seed_keypair(keys.public_key.data(), keys.secret_key.data(), seed.data());
        return keys;
    }();
    int fds[2];
    require(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0, "link_bytes", "no socket pair");
    auto link = client::SecureLink::server(
        fds[1], 1 << 16, server_keys, [](const client::CurveKey&) { return true; }, "");
    size_t handed = 0;
    Status last;
    for (std::string_view piece : pieces) {
        // Below the socket pair's buffer and one receive's budget (the
        // caller bounds the input), so one write and one receive take it all.
        require(::write(fds[0], piece.data(), piece.size()) == static_cast<ssize_t>(piece.size()),
                "link_bytes", "cannot write the input to the socket pair");
        if (last.ok()) last = link->receive([&](std::string_view) { ++handed; });
    }
    ::close(fds[0]);
    return {last.code(), handed};
}

}  // namespace

// Bytes anyone may send a node's link port before it is authenticated: the
// framing (FrameLink) and the handshake's server end read them. Without the
// server's keys no session can be made, so no frame is ever handed over; and
// the outcome is the same whether the bytes come whole or cut in two.
void link_bytes(std::string_view input) {
    if (input.size() > 65536) return;  // beyond one write to a socket pair
    const auto whole = serve_link({input});
    const size_t cut = input.empty() ? 0 : static_cast<unsigned char>(input[0]) % input.size();
    const auto cut_in_two = serve_link({input.substr(0, cut), input.substr(cut)});
    require(whole.second == 0 && cut_in_two.second == 0, "link_bytes",
            "a frame handed over without a session");
    require(whole.first == cut_in_two.first, "link_bytes",
            "a cut in the input changed the outcome");
}

// Text the parser accepts, written again by the writer, parses to the same
// families (kvctl stats --json shows what the node wrote).
void metrics_text(std::string_view input) {
    auto parsed = kv::metrics::parse(input);
    if (!parsed) return;
    kv::metrics::Exposition out;
    for (const auto& family : parsed.value()) {
        out.family(family.name, family.type, family.help);
        for (const auto& sample : family.samples) {
            std::vector<kv::metrics::LabelPair> labels;
            for (const auto& l : sample.labels) labels.emplace_back(l.name, l.value);
            out.sample_with(sample.name, labels, sample.value);
        }
    }
    auto again = kv::metrics::parse(out.text());
    require(again.ok(), "metrics_text", "written text does not parse");
    require(same_families(parsed.value(), again.value()), "metrics_text",
            "families changed through the writer");
}

const std::vector<Target>& targets() {
    static const std::vector<Target> all = {
        {"client_frame", &client_frame},     {"node_frame", &node_frame},
        {"gossip_payload", &gossip_payload}, {"stored_object", &stored_object},
        {"object_merge", &object_merge},     {"causal_context", &causal_context},
        {"meta_record", &meta_record},       {"z85", &z85},
        {"resp_command", &resp_command},     {"http_request", &http_request},
        {"metrics_text", &metrics_text},     {"batch_frame", &batch_frame},
        {"link_bytes", &link_bytes},
    };
    return all;
}

}  // namespace kv::fuzz
