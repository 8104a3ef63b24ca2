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
constexpr std::array<std::string_view, 24> kPeerTypeNames = {
    "r_read",
    "r_read_reply",
    "r_write",
    "r_write_reply",
    "r_merge",
    "r_merge_reply",
    "ping",
    "pong",
    "gossip",
    "stream",
    "stream_reply",
    "handoff",
    "handoff_reply",
    "catalog_sync",
    "catalog_sync_reply",
    "catalog_push",
    "hint_replay",
    "hint_replay_reply",
    "ae_compare",
    "ae_compare_reply",
    "ae_keys",
    "ae_keys_reply",
    "ae_push",
    "ae_push_reply",
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

void write_u64s(FieldWriter& w, std::string_view name, const std::vector<uint64_t>& values) {
    w.custom(name, values.size() * 9 + 5, [&](Packer& p) {
        p.pack_array(static_cast<uint32_t>(values.size()));
        for (uint64_t v : values) p.pack_uint64(v);
    });
}

void read_u64s(FieldReader& f, std::string_view name, std::vector<uint64_t>& out,
               size_t items_max) {
    const msgpack::object* o = f.lookup(name, Need::optional);
    if (o == nullptr) return;
    if (o->type != msgpack::type::ARRAY || o->via.array.size > items_max) {
        return f.fail(ErrorCode::bad_request, quoted(name) + " must be an array of at most " +
                                                  std::to_string(items_max) + " unsigned integers");
    }
    out.reserve(o->via.array.size);
    for (uint32_t i = 0; i < o->via.array.size; ++i) {
        const msgpack::object& v = o->via.array.ptr[i];
        if (v.type != msgpack::type::POSITIVE_INTEGER) {
            return f.fail(ErrorCode::bad_request,
                          "items of " + quoted(name) + " must be unsigned integers");
        }
        out.push_back(v.via.u64);
    }
}

// Interval bounds: lo, hi pairs with lo <= hi.
void read_bounds(FieldReader& f, std::vector<uint64_t>& out) {
    read_u64s(f, "bounds", out, 2 * kAeIntervalsMax);
    if (!f.ok()) return;
    if (out.size() % 2 != 0)
        return f.fail(ErrorCode::bad_request, "\"bounds\" must be lo, hi pairs");
    for (size_t i = 0; i < out.size(); i += 2) {
        if (out[i] > out[i + 1]) {
            return f.fail(ErrorCode::bad_request, "\"bounds\": an interval ends before it starts");
        }
    }
}

// A user record: {name, key, live, vc, vo, grants: [[perm, prefix, live, vc,
// vo, uvc, uvo], ...]} (v: version, uv: the user version a grant belongs to;
// c: counter, o: origin).
void pack_bin(Packer& p, std::string_view b) {
    p.pack_bin(static_cast<uint32_t>(b.size()));
    p.pack_bin_body(b.data(), static_cast<uint32_t>(b.size()));
}

void write_users(FieldWriter& w, const std::vector<UserRecord>& users) {
    size_t total = 0;
    for (const auto& u : users) {
        total += u.name.size() + u.public_key_z85.size() + u.version.origin.size() + 64;
        for (const auto& g : u.grants) {
            total += g.prefix.size() + g.version.origin.size() + g.user_version.origin.size() + 48;
        }
    }
    w.custom("users", total, [&](Packer& p) {
        p.pack_array(static_cast<uint32_t>(users.size()));
        for (const auto& u : users) {
            p.pack_map(6);
            proto::wire::pack_text(p, "name");
            proto::wire::pack_text(p, u.name);
            proto::wire::pack_text(p, "key");
            proto::wire::pack_text(p, u.public_key_z85);
            proto::wire::pack_text(p, "live");
            u.live ? p.pack_true() : p.pack_false();
            proto::wire::pack_text(p, "vc");
            p.pack_uint64(u.version.counter);
            proto::wire::pack_text(p, "vo");
            proto::wire::pack_text(p, u.version.origin);
            proto::wire::pack_text(p, "grants");
            p.pack_array(static_cast<uint32_t>(u.grants.size()));
            for (const auto& g : u.grants) {
                p.pack_array(7);
                proto::wire::pack_text(p, proto::permission_name(g.permission));
                pack_bin(p, g.prefix);
                g.live ? p.pack_true() : p.pack_false();
                p.pack_uint64(g.version.counter);
                proto::wire::pack_text(p, g.version.origin);
                p.pack_uint64(g.user_version.counter);
                proto::wire::pack_text(p, g.user_version.origin);
            }
        }
    });
}

bool read_grant(const msgpack::object& o, GrantRecord& g) {
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 7) return false;
    const msgpack::object* a = o.via.array.ptr;
    if (a[0].type != msgpack::type::STR) return false;
    auto perm = proto::permission_from_name(FieldReader::view(a[0]));
    if (!perm) return false;
    if (a[1].type != msgpack::type::BIN && a[1].type != msgpack::type::STR) return false;
    if (a[1].via.bin.size > kKeyBytesMax) return false;
    if (a[2].type != msgpack::type::BOOLEAN) return false;
    for (int i : {3, 5}) {
        if (a[i].type != msgpack::type::POSITIVE_INTEGER) return false;
    }
    for (int i : {4, 6}) {
        if (a[i].type != msgpack::type::STR || a[i].via.str.size > kIdBytesMax) return false;
    }
    g.permission = *perm;
    g.prefix.assign(FieldReader::view(a[1]));
    g.live = a[2].via.boolean;
    g.version = CatalogVersion{a[3].via.u64, std::string(FieldReader::view(a[4]))};
    g.user_version = CatalogVersion{a[5].via.u64, std::string(FieldReader::view(a[6]))};
    return true;
}

void read_users(FieldReader& f, std::vector<UserRecord>& out) {
    f.map_list("users", kCatalogUsersPerMessageMax, [&](FieldReader& sub, uint32_t) {
        UserRecord& u = out.emplace_back();
        sub.text("name", u.name, Need::required, proto::kUserNameBytesMax);
        sub.text("key", u.public_key_z85, Need::optional, kIdBytesMax);
        u.live = false;
        sub.flag("live", u.live);
        sub.uint("vc", u.version.counter, Need::required);
        sub.text("vo", u.version.origin, Need::required, kIdBytesMax);
        const msgpack::object* grants = sub.lookup("grants", Need::optional);
        if (grants == nullptr) return;
        if (grants->type != msgpack::type::ARRAY ||
            grants->via.array.size > kCatalogGrantsPerUserWireMax) {
            return sub.fail(ErrorCode::bad_request,
                            quoted("grants") + " must be an array of at most " +
                                std::to_string(kCatalogGrantsPerUserWireMax));
        }
        u.grants.resize(grants->via.array.size);
        for (uint32_t j = 0; j < grants->via.array.size && sub.ok(); ++j) {
            if (!read_grant(grants->via.array.ptr[j], u.grants[j])) {
                sub.fail(ErrorCode::bad_request,
                         "a grant must be [perm, prefix, live, vc, vo, uvc, uvo]");
            }
        }
    });
}

// Digests as one flat array: name, hash, name, hash, ...
void write_digests(FieldWriter& w, const std::vector<CatalogDigest>& digests) {
    size_t total = 0;
    for (const auto& d : digests) total += d.name.size() + 12;
    w.custom("digests", total, [&](Packer& p) {
        p.pack_array(static_cast<uint32_t>(digests.size() * 2));
        for (const auto& d : digests) {
            proto::wire::pack_text(p, d.name);
            p.pack_uint64(d.hash);
        }
    });
}

void read_digests(FieldReader& f, std::vector<CatalogDigest>& out) {
    const msgpack::object* o = f.lookup("digests", Need::optional);
    if (o == nullptr) return;
    if (o->type != msgpack::type::ARRAY || o->via.array.size % 2 != 0 ||
        o->via.array.size > 2 * kCatalogDigestsMax) {
        return f.fail(ErrorCode::bad_request,
                      quoted("digests") + " must be an array of name, hash pairs, at most " +
                          std::to_string(kCatalogDigestsMax));
    }
    for (uint32_t i = 0; i < o->via.array.size; i += 2) {
        const msgpack::object& a = o->via.array.ptr[i];
        const msgpack::object& b = o->via.array.ptr[i + 1];
        if (a.type != msgpack::type::STR || a.via.str.size > proto::kUserNameBytesMax ||
            b.type != msgpack::type::POSITIVE_INTEGER) {
            return f.fail(ErrorCode::bad_request,
                          "items of " + quoted("digests") + " must be name, hash pairs");
        }
        out.push_back(CatalogDigest{std::string(FieldReader::view(a)), b.via.u64});
    }
}

}  // namespace

// One overload per node-to-node alternative (the client ones are
// client/protocol.cpp's), found by argument-dependent lookup from
// proto::wire::encode_message, whose std::visit fails to compile when one is
// missing.
void write_fields(const ReplicaReadRequest& m, FieldWriter& w) {
    w.bytes("key", m.key);
    w.flag_if_true("stand_in", m.stand_in);
    w.flag_if_true("new_owner", m.new_owner);
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
    w.text_if_nonempty("hint_for", m.hint_for);
    w.flag_if_true("replace", m.replace);
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
    w.text_if_nonempty("hint_for", m.hint_for);
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

void write_fields(const CatalogSyncRequest& m, FieldWriter& w) {
    w.text("from", m.from_node);
    write_digests(w, m.digests);
}
void write_fields(const CatalogSyncResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
    write_users(w, m.users);
    w.text_list("wants", m.wants);
}
void write_fields(const CatalogPushRequest& m, FieldWriter& w) {
    w.text("from", m.from_node);
    write_users(w, m.users);
}
void write_fields(const HintReplayRequest& m, FieldWriter& w) {
    w.text("from", m.from_node);
    w.bytes_list("keys", m.keys);
    w.bytes_list("objs", m.objects);
}
void write_fields(const HintReplayResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
    w.bytes_list("not_owned", m.not_owned);
}

void write_fields(const AeCompareRequest& m, FieldWriter& w) {
    w.text("from", m.from_node);
    w.uint("ring", m.ring_digest);
    write_u64s(w, "bounds", m.bounds);
    write_u64s(w, "hashes", m.hashes);
}
void write_fields(const AeCompareResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
    write_u64s(w, "differ", m.differ);
    w.uint_if_nonzero("hints", m.hints_held);
}
void write_fields(const AeKeysRequest& m, FieldWriter& w) {
    w.text("from", m.from_node);
    w.uint("ring", m.ring_digest);
    write_u64s(w, "bounds", m.bounds);
    w.bytes_list("keys", m.keys);
    write_u64s(w, "hashes", m.hashes);
}
void write_fields(const AeKeysResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
    w.bytes_list("keys", m.keys);
    w.bytes_list("objs", m.objects);
    w.bytes_list("wants", m.wants);
    w.flag_if_true("truncated", m.truncated);
}
void write_fields(const AePushRequest& m, FieldWriter& w) {
    w.text("from", m.from_node);
    w.bytes_list("keys", m.keys);
    w.bytes_list("objs", m.objects);
}
void write_fields(const AePushResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
}

// One overload per node-to-node alternative; the decoder table of
// proto::wire::decode_message instantiates all of them, so a missing one fails
// to compile.
void read_fields(FieldReader& f, ReplicaReadRequest& m) {
    f.key(m.key);
    f.flag("stand_in", m.stand_in);
    f.flag("new_owner", m.new_owner);
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
    f.text("hint_for", m.hint_for, Need::optional, kIdBytesMax);
    f.flag("replace", m.replace);
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
    f.text("hint_for", m.hint_for, Need::optional, kIdBytesMax);
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
    f.optional_bytes("after", m.after_key, kStreamCursorBytesMax, ErrorCode::key_too_large);
    f.uint("keys_max", m.keys_max, Need::optional, kStreamKeysMax, ErrorCode::invalid_argument);
}
void read_fields(FieldReader& f, StreamResponse& m) {
    f.code(m.code);
    f.message(m.message);
    f.bytes_list("keys", m.keys, kKeyBytesMax, ErrorCode::key_too_large);
    f.bytes_list("objs", m.objects, kObjectBytesMax, ErrorCode::object_too_large);
    f.optional_bytes("last", m.last_key, kStreamCursorBytesMax, ErrorCode::key_too_large);
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

void read_fields(FieldReader& f, CatalogSyncRequest& m) {
    f.text("from", m.from_node, Need::required, kIdBytesMax);
    read_digests(f, m.digests);
}
void read_fields(FieldReader& f, CatalogSyncResponse& m) {
    f.code(m.code);
    f.message(m.message);
    read_users(f, m.users);
    f.text_list("wants", m.wants, kCatalogUsersPerMessageMax);
}
void read_fields(FieldReader& f, CatalogPushRequest& m) {
    f.text("from", m.from_node, Need::required, kIdBytesMax);
    read_users(f, m.users);
}
void read_fields(FieldReader& f, HintReplayRequest& m) {
    f.text("from", m.from_node, Need::required, kIdBytesMax);
    f.bytes_list("keys", m.keys, kKeyBytesMax, ErrorCode::key_too_large);
    f.bytes_list("objs", m.objects, kObjectBytesMax, ErrorCode::object_too_large);
    if (f.ok() && m.keys.size() != m.objects.size()) {
        f.fail(ErrorCode::bad_request, "\"keys\" and \"objs\" differ in length");
    }
    if (f.ok() && m.keys.size() > kHintBatchKeysMax) {
        f.fail(ErrorCode::bad_request,
               "a hint batch holds at most " + std::to_string(kHintBatchKeysMax) + " keys");
    }
}
void read_fields(FieldReader& f, HintReplayResponse& m) {
    f.code(m.code);
    f.message(m.message);
    f.bytes_list("not_owned", m.not_owned, kKeyBytesMax, ErrorCode::key_too_large);
}

void read_fields(FieldReader& f, AeCompareRequest& m) {
    f.text("from", m.from_node, Need::required, kIdBytesMax);
    f.uint("ring", m.ring_digest, Need::required);
    read_bounds(f, m.bounds);
    read_u64s(f, "hashes", m.hashes, kAeIntervalsMax);
    if (f.ok() && m.hashes.size() * 2 != m.bounds.size()) {
        f.fail(ErrorCode::bad_request, "\"hashes\" must hold one hash per interval");
    }
}
void read_fields(FieldReader& f, AeCompareResponse& m) {
    f.code(m.code);
    f.message(m.message);
    read_u64s(f, "differ", m.differ, kAeIntervalsMax);
    f.uint("hints", m.hints_held, Need::optional);
}
void read_fields(FieldReader& f, AeKeysRequest& m) {
    f.text("from", m.from_node, Need::required, kIdBytesMax);
    f.uint("ring", m.ring_digest, Need::required);
    read_bounds(f, m.bounds);
    f.bytes_list("keys", m.keys, kKeyBytesMax, ErrorCode::key_too_large);
    read_u64s(f, "hashes", m.hashes, kAeEntriesMax);
    if (f.ok() && (m.keys.size() != m.hashes.size() || m.keys.size() > kAeEntriesMax)) {
        f.fail(ErrorCode::bad_request, "\"keys\" and \"hashes\" differ in length or exceed " +
                                           std::to_string(kAeEntriesMax));
    }
}
void read_fields(FieldReader& f, AeKeysResponse& m) {
    f.code(m.code);
    f.message(m.message);
    f.bytes_list("keys", m.keys, kKeyBytesMax, ErrorCode::key_too_large);
    f.bytes_list("objs", m.objects, kObjectBytesMax, ErrorCode::object_too_large);
    f.bytes_list("wants", m.wants, kKeyBytesMax, ErrorCode::key_too_large);
    f.flag("truncated", m.truncated);
    if (f.ok() && m.keys.size() != m.objects.size()) {
        f.fail(ErrorCode::bad_request, "\"keys\" and \"objs\" differ in length");
    }
}
void read_fields(FieldReader& f, AePushRequest& m) {
    f.text("from", m.from_node, Need::required, kIdBytesMax);
    f.bytes_list("keys", m.keys, kKeyBytesMax, ErrorCode::key_too_large);
    f.bytes_list("objs", m.objects, kObjectBytesMax, ErrorCode::object_too_large);
    if (f.ok() && (m.keys.size() != m.objects.size() || m.keys.size() > kAeObjectsMax)) {
        f.fail(ErrorCode::bad_request,
               "\"keys\" and \"objs\" differ in length or exceed " + std::to_string(kAeObjectsMax));
    }
}
void read_fields(FieldReader& f, AePushResponse& m) {
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
