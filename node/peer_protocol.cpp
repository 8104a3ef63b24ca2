#include "node/peer_protocol.h"

#include <array>
#include <type_traits>
#include <utility>

#include "client/wire_codec.h"

namespace kv::node {

namespace {

using proto::kContextBytesMax;
using proto::kDeadlineMsMax;
using proto::kIdBytesMax;
using proto::kKeyBytesMax;
using proto::kObjectBytesMax;
using proto::kReplicasMax;
using proto::kValueBytesMax;
using proto::wire::FieldReader;
using proto::wire::FieldWriter;
using proto::wire::Need;
using proto::wire::Packer;
using proto::wire::quoted;

constexpr size_t kClientTypes = std::variant_size_v<proto::Message>;

// Indexed like the node-to-node alternatives of Message; docs/PROTOCOL.md
// lists the same strings.
constexpr std::array<std::string_view, 13> kPeerTypeNames = {
    "r_read", "r_read_reply", "r_write", "r_write_reply", "r_merge", "r_merge_reply", "ping",
    "pong",   "gossip",       "stream",  "stream_reply",  "handoff", "handoff_reply",
};
static_assert(std::variant_size_v<Message> == kClientTypes + kPeerTypeNames.size());

template <size_t... Is>
constexpr bool starts_with_client_messages(std::index_sequence<Is...>) {
    return (std::is_same_v<std::variant_alternative_t<Is, proto::Message>,
                           std::variant_alternative_t<Is, Message>> &&
            ...);
}
static_assert(starts_with_client_messages(std::make_index_sequence<kClientTypes>{}),
              "Message must start with proto::Message's alternatives, in their order");

constexpr proto::wire::TypeNames<Message> make_type_names() {
    proto::wire::TypeNames<Message> names{};
    for (size_t i = 0; i < kClientTypes; ++i) names[i] = proto::kMessageTypeNames[i];
    for (size_t i = 0; i < kPeerTypeNames.size(); ++i) names[kClientTypes + i] = kPeerTypeNames[i];
    return names;
}
constexpr auto kTypeNames = make_type_names();

// Ranges as one flat array: start, end, start, end, ...
void write_ranges(FieldWriter& w, const std::vector<TokenRange>& ranges) {
    w.custom("ranges", ranges.size() * 18, [&](Packer& p) {
        p.pack_array(static_cast<uint32_t>(ranges.size() * 2));
        for (const auto& r : ranges) {
            p.pack_uint64(r.start);
            p.pack_uint64(r.end);
        }
    });
}

void read_ranges(FieldReader& f, std::vector<TokenRange>& out) {
    const msgpack::object* o = f.lookup("ranges", Need::required);
    if (o == nullptr) return;
    if (o->type != msgpack::type::ARRAY || o->via.array.size % 2 != 0 ||
        o->via.array.size > 2 * kTransferRangesMax) {
        return f.fail(ErrorCode::bad_request,
                      quoted("ranges") + " must be an array of start, end pairs, at most " +
                          std::to_string(kTransferRangesMax));
    }
    for (uint32_t i = 0; i < o->via.array.size; i += 2) {
        const msgpack::object& a = o->via.array.ptr[i];
        const msgpack::object& b = o->via.array.ptr[i + 1];
        if (a.type != msgpack::type::POSITIVE_INTEGER ||
            b.type != msgpack::type::POSITIVE_INTEGER) {
            return f.fail(ErrorCode::bad_request,
                          "items of " + quoted("ranges") + " must be unsigned integers");
        }
        out.push_back(TokenRange{a.via.u64, b.via.u64});
    }
}

}  // namespace

// One overload per node-to-node alternative (the client ones are
// client/protocol.cpp's), found by argument-dependent lookup from
// proto::wire::encode_message, whose std::visit fails to compile when one is
// missing.
void write_fields(const ReplicaReadRequest& m, FieldWriter& w) {
    w.bytes("key", m.key);
}
void write_fields(const ReplicaReadResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
    w.bytes_if("obj", m.object);
}
void write_fields(const ReplicaWriteRequest& m, FieldWriter& w) {
    w.bytes("key", m.key);
    w.bytes_if("val", m.value);
    w.bytes_if("ctx", m.context);
    w.uint_if_nonzero("siblings_max", m.siblings_max);
    w.text_list("targets", m.targets);
    w.uint_if_nonzero("budget_ms", m.budget_ms);
}
void write_fields(const ReplicaWriteResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
    w.bytes_if_nonempty("obj", m.object);
    w.bytes_if("ctx", m.context);
}
void write_fields(const ReplicaMergeRequest& m, FieldWriter& w) {
    w.bytes("key", m.key);
    w.bytes("obj", m.object);
    w.text_list("targets", m.targets);
    w.uint_if_nonzero("budget_ms", m.budget_ms);
}
void write_fields(const ReplicaMergeResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
}
void write_fields(const PingRequest& m, FieldWriter& w) {
    w.text("from", m.from_node);
}
void write_fields(const PingResponse& m, FieldWriter& w) {
    w.text("node", m.node_id);
}
void write_fields(const GossipRequest& m, FieldWriter& w) {
    w.text("from", m.from_node);
    w.bytes("payload", m.payload);
}
void write_fields(const StreamRequest& m, FieldWriter& w) {
    w.text("from", m.from_node);
    w.uint("ring", m.ring_digest);
    write_ranges(w, m.ranges);
    w.bytes_if("after", m.after_key);
    w.uint_if_nonzero("keys_max", m.keys_max);
}
void write_fields(const StreamResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
    w.bytes_list("keys", m.keys);
    w.bytes_list("objs", m.objects);
    w.bytes_if("last", m.last_key);
    w.flag_if_true("done", m.done);
}
void write_fields(const HandoffRequest& m, FieldWriter& w) {
    w.text("from", m.from_node);
    w.uint("ring", m.ring_digest);
    write_ranges(w, m.ranges);
}
void write_fields(const HandoffResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
}

// One overload per node-to-node alternative; the decoder table of
// proto::wire::decode_message instantiates all of them, so a missing one fails
// to compile.
void read_fields(FieldReader& f, ReplicaReadRequest& m) {
    f.key(m.key);
}
void read_fields(FieldReader& f, ReplicaReadResponse& m) {
    f.code(m.code);
    f.message(m.message);
    f.optional_bytes("obj", m.object, kObjectBytesMax, ErrorCode::object_too_large);
}
void read_fields(FieldReader& f, ReplicaWriteRequest& m) {
    f.key(m.key);
    f.optional_bytes("val", m.value, kValueBytesMax, ErrorCode::value_too_large);
    f.optional_bytes("ctx", m.context, kContextBytesMax, ErrorCode::bad_context);
    f.uint("siblings_max", m.siblings_max, Need::optional);
    f.text_list("targets", m.targets, 2 * kReplicasMax);
    f.uint("budget_ms", m.budget_ms, Need::optional, kDeadlineMsMax, ErrorCode::invalid_argument);
}
void read_fields(FieldReader& f, ReplicaWriteResponse& m) {
    f.code(m.code);
    f.message(m.message);
    f.bytes("obj", m.object, Need::optional, kObjectBytesMax, ErrorCode::object_too_large);
    f.optional_bytes("ctx", m.context, kContextBytesMax, ErrorCode::bad_context);
}
void read_fields(FieldReader& f, ReplicaMergeRequest& m) {
    f.key(m.key);
    f.bytes("obj", m.object, Need::required, kObjectBytesMax, ErrorCode::object_too_large);
    f.text_list("targets", m.targets, 2 * kReplicasMax);
    f.uint("budget_ms", m.budget_ms, Need::optional, kDeadlineMsMax, ErrorCode::invalid_argument);
}
void read_fields(FieldReader& f, ReplicaMergeResponse& m) {
    f.code(m.code);
    f.message(m.message);
}
void read_fields(FieldReader& f, PingRequest& m) {
    f.text("from", m.from_node, Need::required, kIdBytesMax);
}
void read_fields(FieldReader& f, PingResponse& m) {
    f.text("node", m.node_id, Need::required, kIdBytesMax);
}
void read_fields(FieldReader& f, GossipRequest& m) {
    f.text("from", m.from_node, Need::required, kIdBytesMax);
    f.bytes("payload", m.payload, Need::required, kGossipPayloadBytesMax,
            ErrorCode::message_too_large);
}
void read_fields(FieldReader& f, StreamRequest& m) {
    f.text("from", m.from_node, Need::required, kIdBytesMax);
    f.uint("ring", m.ring_digest, Need::required);
    read_ranges(f, m.ranges);
    f.optional_bytes("after", m.after_key, kKeyBytesMax, ErrorCode::key_too_large);
    f.uint("keys_max", m.keys_max, Need::optional, kStreamKeysMax, ErrorCode::invalid_argument);
}
void read_fields(FieldReader& f, StreamResponse& m) {
    f.code(m.code);
    f.message(m.message);
    f.bytes_list("keys", m.keys, kKeyBytesMax, ErrorCode::key_too_large);
    f.bytes_list("objs", m.objects, kObjectBytesMax, ErrorCode::object_too_large);
    f.optional_bytes("last", m.last_key, kKeyBytesMax, ErrorCode::key_too_large);
    f.flag("done", m.done);
    if (f.ok() && m.keys.size() != m.objects.size()) {
        f.fail(ErrorCode::bad_request, "\"keys\" and \"objs\" differ in length");
    }
}
void read_fields(FieldReader& f, HandoffRequest& m) {
    f.text("from", m.from_node, Need::required, kIdBytesMax);
    f.uint("ring", m.ring_digest, Need::required);
    read_ranges(f, m.ranges);
}
void read_fields(FieldReader& f, HandoffResponse& m) {
    f.code(m.code);
    f.message(m.message);
}

std::string_view type_name(const Message& m) {
    return kTypeNames[m.index()];
}

uint64_t request_id(const Message& m) {
    return std::visit([](const auto& msg) { return msg.id; }, m);
}

std::string encode(const Message& m) {
    return proto::wire::encode_message(m, kTypeNames);
}

Result<Message> decode(std::string_view frame, uint64_t* id_out) {
    return proto::wire::decode_message<Message>(frame, kTypeNames, id_out);
}

}  // namespace kv::node
