// The codec toolkit behind the wire protocol, shared by the client contract
// (client/protocol.h) and the node-to-node messages (node/peer_protocol.h).
// Not a client API: applications use client/protocol.h.
//
// A message set is a std::variant of message structs, each with a `uint64_t id`,
// plus one "t" string per alternative (indexed like the variant) and, found by
// argument-dependent lookup in the struct's namespace, one
//     void write_fields(const T&, wire::FieldWriter&);
//     void read_fields(wire::FieldReader&, T&);
// pair per alternative. encode_message and decode_message instantiate both for
// every alternative, so a missing overload fails to compile.
//
// Decoding treats input as hostile (client/protocol.h): decode_frame reads the
// frame in one pass that checks every length and count before it allocates for
// it (what it allocates is bounded by kFrameObjectsMax objects, whatever the
// frame declares) and turns every failure, exceptions included, into a Status.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <msgpack.hpp>

#include "client/protocol.h"
#include "client/status.h"

namespace kv::proto::wire {

// ---- encoding ----------------------------------------------------------------

// Appends straight into the result string: one allocation, no sbuffer copy.
struct StringSink {
    std::string* out;
    void write(const char* bytes, size_t size) { out->append(bytes, size); }
};
using Packer = msgpack::packer<StringSink>;

// Packs a msgpack str (field names, text values).
void pack_text(Packer& packer, std::string_view s);

// Writes a message's fields, or with no packer only counts them and their
// size, so that the map header (which needs the count) and the reserve can
// come first while each message lists its fields in one place.
class FieldWriter {
  public:
    explicit FieldWriter(Packer* packer) : packer_(packer) {}
    uint32_t count() const { return count_; }
    size_t bytes_estimate() const { return bytes_estimate_; }

    void bytes(std::string_view name, std::string_view value);
    void bytes_if(std::string_view name, const std::optional<std::string>& value) {
        if (value) bytes(name, *value);
    }
    void bytes_if_nonempty(std::string_view name, std::string_view value) {
        if (!value.empty()) bytes(name, value);
    }
    void text(std::string_view name, std::string_view value);
    void text_if_nonempty(std::string_view name, std::string_view value) {
        if (!value.empty()) text(name, value);
    }
    void uint(std::string_view name, uint64_t value);
    void uint_if_nonzero(std::string_view name, uint64_t value) {
        if (value != 0) uint(name, value);
    }
    void flag_if_true(std::string_view name, bool value);
    void code(ErrorCode value) { uint("code", static_cast<uint64_t>(value)); }
    void bytes_list(std::string_view name, const std::vector<std::string>& values);
    // Nothing when empty.
    void text_list(std::string_view name, const std::vector<std::string>& values);

    // A field of a message set's own shape: `pack(Packer&)` packs its value
    // (`value_bytes` estimates that value's size, for the reserve).
    template <typename Pack>
    void custom(std::string_view name, size_t value_bytes, Pack&& pack) {
        if (begin(name, value_bytes)) pack(*packer_);
    }

  private:
    // Counts the field; true when it should be written (its key already is).
    bool begin(std::string_view name, size_t value_bytes);

    Packer* packer_;
    uint32_t count_ = 0;
    size_t bytes_estimate_ = 0;
};

// The map header and the "v", "t" and "id" fields of a frame with `fields`
// more fields.
void pack_header(Packer& packer, std::string_view type, uint64_t id, uint32_t fields);

template <typename T>
std::string encode_fields(const T& m, std::string_view type) {
    FieldWriter counter(nullptr);
    write_fields(m, counter);

    std::string out;
    out.reserve(32 + counter.bytes_estimate());
    StringSink sink{&out};
    Packer packer(sink);
    pack_header(packer, type, m.id, counter.count());
    FieldWriter writer(&packer);
    write_fields(m, writer);
    assert(writer.count() == counter.count());
    return out;
}

// `names[i]` is the "t" string of the variant's alternative i.
template <typename Variant>
using TypeNames = std::array<std::string_view, std::variant_size_v<Variant>>;

// std::visit instantiates write_fields for every alternative: a missing
// overload fails to compile.
template <typename Variant>
std::string encode_message(const Variant& m, const TypeNames<Variant>& names) {
    const std::string_view type = names[m.index()];
    return std::visit([type](const auto& msg) { return encode_fields(msg, type); }, m);
}

// ---- decoding: fields of a map --------------------------------------------------

enum class Need { required, optional };

// `field "name"`, for error messages.
std::string quoted(std::string_view name);

// Reads the fields of one msgpack map. The first failure sticks and later
// reads become no-ops, so a message's reader is a flat list of fields.
class FieldReader {
  public:
    // Refuses duplicate str keys: two readers of one frame must never
    // disagree about which duplicate counts.
    explicit FieldReader(const msgpack::object_map& map);

    bool ok() const { return status_.ok(); }
    const Status& status() const { return status_; }
    void fail(ErrorCode code, std::string message) {
        if (status_.ok()) status_ = Status(code, std::move(message));
    }

    // The value of the first entry whose key is the str `name`.
    const msgpack::object* find(std::string_view name) const;
    // The field's value; nullptr when absent (a failure if required) or when
    // an earlier field already failed. For fields of a message set's own shape.
    const msgpack::object* lookup(std::string_view name, Need need);
    // The bytes of a str or bin object (they share one layout).
    static std::string_view view(const msgpack::object& o) {
        return {o.via.str.ptr, o.via.str.size};
    }
    // Takes over the failure of a reader of a nested map, prefixed with `path`.
    void adopt(const FieldReader& sub, const std::string& path);

    // A non-empty bin "key" of at most kKeyBytesMax bytes.
    void key(std::string& out);

    // Byte strings are sent as bin but accepted as str too (clients whose
    // language cannot tell bytes from text).
    void bytes(std::string_view name, std::string& out, Need need, size_t bytes_max,
               ErrorCode too_large);
    void optional_bytes(std::string_view name, std::optional<std::string>& out, size_t bytes_max,
                        ErrorCode too_large);
    void text(std::string_view name, std::string& out, Need need, size_t bytes_max);
    // The same checks as text(), without a copy: a view into the frame, valid
    // while it is; nullopt when absent or failed.
    std::optional<std::string_view> text_view(std::string_view name, Need need, size_t bytes_max);

    template <typename U>
    void uint(std::string_view name, U& out, Need need, uint64_t max, ErrorCode too_large) {
        static_assert(std::is_unsigned_v<U>);
        const msgpack::object* o = lookup(name, need);
        if (o == nullptr) return;
        if (o->type != msgpack::type::POSITIVE_INTEGER) {
            return fail(ErrorCode::bad_request, quoted(name) + " must be an unsigned integer");
        }
        if (o->via.u64 > max || o->via.u64 > std::numeric_limits<U>::max()) {
            return fail(too_large, quoted(name) + " above " + std::to_string(max));
        }
        out = static_cast<U>(o->via.u64);
    }
    template <typename U>
    void uint(std::string_view name, U& out, Need need) {
        uint(name, out, need, std::numeric_limits<U>::max(), ErrorCode::bad_request);
    }

    void flag(std::string_view name, bool& out);

    // An optional array of at most items_max maps: `read(item_reader, index)`
    // for each, a failure of one taken over with its index in the path.
    template <typename Read>
    void map_list(std::string_view name, size_t items_max, Read&& read) {
        const msgpack::object* o = lookup(name, Need::optional);
        if (o == nullptr) return;
        if (o->type != msgpack::type::ARRAY || o->via.array.size > items_max) {
            return fail(ErrorCode::bad_request, quoted(name) + " must be an array of at most " +
                                                    std::to_string(items_max) + " maps");
        }
        for (uint32_t i = 0; i < o->via.array.size && ok(); ++i) {
            const msgpack::object& item = o->via.array.ptr[i];
            if (item.type != msgpack::type::MAP) {
                return fail(ErrorCode::bad_request, "items of " + quoted(name) + " must be maps");
            }
            FieldReader sub(item.via.map);
            read(sub, i);
            adopt(sub, std::string(name) + "[" + std::to_string(i) + "]");
        }
    }

    // A code this build does not know (sent by a newer peer) reads as internal,
    // keeping the rest of the response (its id, its message) usable.
    void code(ErrorCode& out);
    void message(std::string& out) { text("msg", out, Need::optional, kMessageTextBytesMax); }

    // An array of byte strings, each at most item_bytes_max.
    void bytes_list(std::string_view name, std::vector<std::string>& out, size_t item_bytes_max,
                    ErrorCode too_large);
    // An array of at most items_max str, each at most kIdBytesMax bytes.
    void text_list(std::string_view name, std::vector<std::string>& out, size_t items_max);

  private:
    void reject_duplicates();

    const msgpack::object_map& map_;
    Status status_;
};

// ---- decoding: a whole frame ------------------------------------------------------

// Reads the body of a frame whose header checked out: `type` is its "t", `id`
// its "id"; the reader is positioned on the top-level map. Returns the
// frame's outcome (unknown_type when the type is not the message set's).
using FrameBody = std::function<Status(std::string_view type, uint64_t id, FieldReader& fields)>;

// Reads one frame's msgpack into `root`, in `zone`, in one pass: its size
// (message_too_large above kFrameBytesMax), nesting depth, container sizes, the
// object budget, str/bin/ext lengths, and no trailing bytes. The first failure
// in the frame is the one reported, as bad_request. str, bin and ext objects
// point into `frame`. `id` is the top-level "id" if it was read before any
// failure (an unsigned value, or a signed format holding one), else 0.
Status read_frame(std::string_view frame, msgpack::zone& zone, msgpack::object& root, uint64_t& id);

// Reads one frame (read_frame), checks for a top-level map with "id", "v" and
// "t", then hands it to `body`. Nothing escapes: allocation failures and
// exceptions become a Status. *id_out, when given, holds the request id if the
// "id" field could be read, else 0.
Status decode_frame(std::string_view frame, uint64_t* id_out, const FrameBody& body);

template <typename Variant, size_t I>
Variant decode_alternative(FieldReader& f, uint64_t id) {
    std::variant_alternative_t<I, Variant> m;
    m.id = id;
    read_fields(f, m);
    return Variant(std::in_place_index<I>, std::move(m));
}

template <typename Variant, size_t... Is>
constexpr auto make_decoders(std::index_sequence<Is...>) {
    using Decoder = Variant (*)(FieldReader&, uint64_t);
    return std::array<Decoder, sizeof...(Is)>{&decode_alternative<Variant, Is>...};
}

// One decoder per alternative, found by the frame's "t"; the table instantiates
// read_fields for every alternative, so a missing overload fails to compile.
template <typename Variant>
Result<Variant> decode_message(std::string_view frame, const TypeNames<Variant>& names,
                               uint64_t* id_out) {
    static constexpr auto kDecoders =
        make_decoders<Variant>(std::make_index_sequence<std::variant_size_v<Variant>>{});
    std::optional<Variant> decoded;
    Status status =
        decode_frame(frame, id_out, [&](std::string_view type, uint64_t id, FieldReader& f) {
            for (size_t i = 0; i < names.size(); ++i) {
                if (names[i] != type) continue;
                decoded.emplace(kDecoders[i](f, id));
                return f.status();
            }
            return Status(ErrorCode::unknown_type,
                          "unknown message type \"" + std::string(type) + "\"");
        });
    if (!status.ok()) return status;
    return std::move(*decoded);
}

}  // namespace kv::proto::wire

namespace kv::proto {

// The client messages (client/protocol.h): their "t" strings, indexed like
// proto::Message, and their fields (client/protocol.cpp). Declared here so
// that a message set embedding them (node/peer_protocol.h) encodes and decodes
// them exactly as the client contract does.
inline constexpr wire::TypeNames<Message> kMessageTypeNames = {
    "get",         "put",         "del",          "local_get",    "status",
    "get_reply",   "write_reply", "status_reply", "error",        "leave",
    "admin_reply", "user_add",    "user_del",     "user_list",    "user_list_reply",
    "grant",       "revoke",      "owners",       "owners_reply", "repair",
    "removenode",  "stats",       "stats_reply",
};

void write_fields(const GetRequest& m, wire::FieldWriter& w);
void write_fields(const PutRequest& m, wire::FieldWriter& w);
void write_fields(const DelRequest& m, wire::FieldWriter& w);
void write_fields(const LocalGetRequest& m, wire::FieldWriter& w);
void write_fields(const StatusRequest& m, wire::FieldWriter& w);
void write_fields(const GetResponse& m, wire::FieldWriter& w);
void write_fields(const WriteResponse& m, wire::FieldWriter& w);
void write_fields(const StatusResponse& m, wire::FieldWriter& w);
void write_fields(const ErrorResponse& m, wire::FieldWriter& w);
void write_fields(const LeaveRequest& m, wire::FieldWriter& w);
void write_fields(const AdminResponse& m, wire::FieldWriter& w);
void write_fields(const UserAddRequest& m, wire::FieldWriter& w);
void write_fields(const UserDelRequest& m, wire::FieldWriter& w);
void write_fields(const UserListRequest& m, wire::FieldWriter& w);
void write_fields(const UserListResponse& m, wire::FieldWriter& w);
void write_fields(const GrantRequest& m, wire::FieldWriter& w);
void write_fields(const RevokeRequest& m, wire::FieldWriter& w);
void write_fields(const OwnersRequest& m, wire::FieldWriter& w);
void write_fields(const OwnersResponse& m, wire::FieldWriter& w);
void write_fields(const RepairRequest& m, wire::FieldWriter& w);
void write_fields(const RemoveNodeRequest& m, wire::FieldWriter& w);
void write_fields(const StatsRequest& m, wire::FieldWriter& w);
void write_fields(const StatsResponse& m, wire::FieldWriter& w);

void read_fields(wire::FieldReader& f, GetRequest& m);
void read_fields(wire::FieldReader& f, PutRequest& m);
void read_fields(wire::FieldReader& f, DelRequest& m);
void read_fields(wire::FieldReader& f, LocalGetRequest& m);
void read_fields(wire::FieldReader& f, StatusRequest& m);
void read_fields(wire::FieldReader& f, GetResponse& m);
void read_fields(wire::FieldReader& f, WriteResponse& m);
void read_fields(wire::FieldReader& f, StatusResponse& m);
void read_fields(wire::FieldReader& f, ErrorResponse& m);
void read_fields(wire::FieldReader& f, LeaveRequest& m);
void read_fields(wire::FieldReader& f, AdminResponse& m);
void read_fields(wire::FieldReader& f, UserAddRequest& m);
void read_fields(wire::FieldReader& f, UserDelRequest& m);
void read_fields(wire::FieldReader& f, UserListRequest& m);
void read_fields(wire::FieldReader& f, UserListResponse& m);
void read_fields(wire::FieldReader& f, GrantRequest& m);
void read_fields(wire::FieldReader& f, RevokeRequest& m);
void read_fields(wire::FieldReader& f, OwnersRequest& m);
void read_fields(wire::FieldReader& f, OwnersResponse& m);
void read_fields(wire::FieldReader& f, RepairRequest& m);
void read_fields(wire::FieldReader& f, RemoveNodeRequest& m);
void read_fields(wire::FieldReader& f, StatsRequest& m);
void read_fields(wire::FieldReader& f, StatsResponse& m);

}  // namespace kv::proto
