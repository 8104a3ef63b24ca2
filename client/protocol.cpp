#include "client/protocol.h"

#include <array>
#include <cassert>
#include <iterator>
#include <utility>

#include "client/wire_codec.h"

namespace kv::proto {

namespace {

using wire::FieldReader;
using wire::FieldWriter;
using wire::Need;
using wire::pack_text;
using wire::Packer;
using wire::quoted;

constexpr std::array<std::string_view, 5> kLevelNames = {"one", "two", "three", "quorum", "all"};
constexpr std::array<std::string_view, 3> kPermissionNames = {"read", "write", "admin"};

// ---- fields of the client messages' own shapes -------------------------------------

// The explicit count travels as "r" on reads and "w" on writes.
void write_consistency(std::string_view count_name, const Consistency& c, FieldWriter& w) {
    w.text("cl", level_name(c.level));
    w.uint_if_nonzero(count_name, c.count);
    w.flag_if_true("strict", c.strict);
}

void read_consistency(FieldReader& f, std::string_view count_name, Consistency& out) {
    if (const msgpack::object* o = f.lookup("cl", Need::optional); o != nullptr) {
        if (o->type != msgpack::type::STR) {
            return f.fail(ErrorCode::bad_request, quoted("cl") + " must be str");
        }
        auto level = level_from_name(FieldReader::view(*o));
        if (!level) {
            return f.fail(ErrorCode::invalid_argument,
                          "unknown consistency level \"" +
                              std::string(FieldReader::view(*o)).substr(0, 32) + "\"");
        }
        out.level = *level;
    }
    f.uint(count_name, out.count, Need::optional, kReplicasMax, ErrorCode::invalid_argument);
    f.flag("strict", out.strict);
}

void read_deadline(FieldReader& f, uint64_t& out) {
    f.uint("deadline_ms", out, Need::optional, kDeadlineMsMax, ErrorCode::invalid_argument);
}

void read_values(FieldReader& f, std::vector<std::string>& out) {
    const msgpack::object* o = f.lookup("vals", Need::optional);
    if (o == nullptr) return;
    if (o->type != msgpack::type::ARRAY) {
        return f.fail(ErrorCode::bad_request, quoted("vals") + " must be an array");
    }
    if (o->via.array.size > kArrayItemsMax) {
        return f.fail(ErrorCode::bad_request, quoted("vals") + " has too many items");
    }
    out.reserve(o->via.array.size);
    for (uint32_t i = 0; i < o->via.array.size; ++i) {
        const msgpack::object& item = o->via.array.ptr[i];
        if (item.type != msgpack::type::BIN && item.type != msgpack::type::STR) {
            return f.fail(ErrorCode::bad_request, "items of " + quoted("vals") + " must be bin");
        }
        if (item.via.bin.size > kValueBytesMax) {
            return f.fail(ErrorCode::value_too_large, "a value of " + quoted("vals") +
                                                          " is longer than " +
                                                          std::to_string(kValueBytesMax));
        }
        out.emplace_back(FieldReader::view(item));
    }
}

void write_info(FieldWriter& w, const ReplyInfo& info) {
    w.custom("info", 40, [&](Packer& p) {
        p.pack_map(4);
        pack_text(p, "asked");
        p.pack_uint32(info.replicas_asked);
        pack_text(p, "answered");
        p.pack_uint32(info.replicas_answered);
        pack_text(p, "stand_in");
        info.stand_in_used ? p.pack_true() : p.pack_false();
        pack_text(p, "siblings");
        p.pack_uint32(info.sibling_count);
    });
}

void read_info(FieldReader& f, ReplyInfo& out) {
    const msgpack::object* o = f.lookup("info", Need::optional);
    if (o == nullptr) return;
    if (o->type != msgpack::type::MAP) {
        return f.fail(ErrorCode::bad_request, quoted("info") + " must be a map");
    }
    FieldReader sub(o->via.map);
    sub.uint("asked", out.replicas_asked, Need::optional);
    sub.uint("answered", out.replicas_answered, Need::optional);
    sub.flag("stand_in", out.stand_in_used);
    sub.uint("siblings", out.sibling_count, Need::optional);
    f.adopt(sub, "info");
}

void write_members(FieldWriter& w, const std::vector<MemberStatus>& members) {
    size_t total = 0;
    for (const auto& m : members) total += m.node_id.size() + m.endpoint.size() + 64;
    w.custom("members", total, [&](Packer& p) {
        p.pack_array(static_cast<uint32_t>(members.size()));
        for (const auto& m : members) {
            p.pack_map(6);
            pack_text(p, "node");
            pack_text(p, m.node_id);
            pack_text(p, "endpoint");
            pack_text(p, m.endpoint);
            pack_text(p, "state");
            pack_text(p, m.state);
            pack_text(p, "last_seen_ms_ago");
            p.pack_uint64(m.last_seen_ms_ago);
            pack_text(p, "tokens");
            p.pack_uint32(m.tokens);
            pack_text(p, "share_ppm");
            p.pack_uint32(m.share_ppm);
        }
    });
}

void read_members(FieldReader& f, std::vector<MemberStatus>& out) {
    const msgpack::object* o = f.lookup("members", Need::optional);
    if (o == nullptr) return;
    if (o->type != msgpack::type::ARRAY) {
        return f.fail(ErrorCode::bad_request, quoted("members") + " must be an array");
    }
    out.reserve(o->via.array.size);
    for (uint32_t i = 0; i < o->via.array.size && f.ok(); ++i) {
        const msgpack::object& item = o->via.array.ptr[i];
        if (item.type != msgpack::type::MAP) {
            return f.fail(ErrorCode::bad_request,
                          "items of " + quoted("members") + " must be maps");
        }
        FieldReader sub(item.via.map);
        MemberStatus& m = out.emplace_back();
        sub.text("node", m.node_id, Need::required, kIdBytesMax);
        sub.text("endpoint", m.endpoint, Need::optional, kIdBytesMax);
        sub.text("state", m.state, Need::optional, kIdBytesMax);
        sub.uint("last_seen_ms_ago", m.last_seen_ms_ago, Need::optional);
        sub.uint("tokens", m.tokens, Need::optional);
        sub.uint("share_ppm", m.share_ppm, Need::optional);
        f.adopt(sub, "members[" + std::to_string(i) + "]");
    }
}

void write_transfers(FieldWriter& w, const std::vector<TransferStatus>& transfers) {
    if (transfers.empty()) return;
    size_t total = 0;
    for (const auto& t : transfers) total += t.peer.size() + 80;
    w.custom("transfers", total, [&](Packer& p) {
        p.pack_array(static_cast<uint32_t>(transfers.size()));
        for (const auto& t : transfers) {
            p.pack_map(5);
            pack_text(p, "peer");
            pack_text(p, t.peer);
            pack_text(p, "dir");
            pack_text(p, t.direction);
            pack_text(p, "state");
            pack_text(p, t.state);
            pack_text(p, "ranges");
            p.pack_uint32(t.ranges);
            pack_text(p, "keys");
            p.pack_uint64(t.keys);
        }
    });
}

void read_transfers(FieldReader& f, std::vector<TransferStatus>& out) {
    const msgpack::object* o = f.lookup("transfers", Need::optional);
    if (o == nullptr) return;
    if (o->type != msgpack::type::ARRAY) {
        return f.fail(ErrorCode::bad_request, quoted("transfers") + " must be an array");
    }
    for (uint32_t i = 0; i < o->via.array.size && f.ok(); ++i) {
        const msgpack::object& item = o->via.array.ptr[i];
        if (item.type != msgpack::type::MAP) {
            return f.fail(ErrorCode::bad_request,
                          "items of " + quoted("transfers") + " must be maps");
        }
        FieldReader sub(item.via.map);
        TransferStatus& t = out.emplace_back();
        sub.text("peer", t.peer, Need::required, kIdBytesMax);
        sub.text("dir", t.direction, Need::optional, kIdBytesMax);
        sub.text("state", t.state, Need::optional, kIdBytesMax);
        sub.uint("ranges", t.ranges, Need::optional);
        sub.uint("keys", t.keys, Need::optional);
        f.adopt(sub, "transfers[" + std::to_string(i) + "]");
    }
}

// Hints held, by target: nothing when there are none (and a node that
// predates the field sends none), so older peers' frames still decode.
void write_hints(FieldWriter& w, const std::vector<HintStatus>& hints) {
    if (hints.empty()) return;
    size_t total = 0;
    for (const auto& h : hints) total += h.target.size() + 96;
    w.custom("hints", total, [&](Packer& p) {
        p.pack_array(static_cast<uint32_t>(hints.size()));
        for (const auto& h : hints) {
            p.pack_map(7);
            pack_text(p, "target");
            pack_text(p, h.target);
            pack_text(p, "keys");
            p.pack_uint64(h.keys);
            pack_text(p, "bytes");
            p.pack_uint64(h.bytes);
            pack_text(p, "oldest_ms");
            p.pack_uint64(h.oldest_ms);
            pack_text(p, "replayed");
            p.pack_uint64(h.replayed);
            pack_text(p, "refused");
            p.pack_uint64(h.refused);
            pack_text(p, "replaying");
            h.replaying ? p.pack_true() : p.pack_false();
        }
    });
}

void read_hints(FieldReader& f, std::vector<HintStatus>& out) {
    f.map_list("hints", kArrayItemsMax, [&](FieldReader& sub, uint32_t) {
        HintStatus& h = out.emplace_back();
        sub.text("target", h.target, Need::required, kIdBytesMax);
        sub.uint("keys", h.keys, Need::optional);
        sub.uint("bytes", h.bytes, Need::optional);
        sub.uint("oldest_ms", h.oldest_ms, Need::optional);
        sub.uint("replayed", h.replayed, Need::optional);
        sub.uint("refused", h.refused, Need::optional);
        sub.flag("replaying", h.replaying);
    });
}

// {tree_ready, keys, tombstones, ..., peers: [{peer, verified, ago}]}. The
// counters by wire name, for both directions.
constexpr std::pair<const char*, uint64_t AntiEntropyStatus::*> kAeCounters[] = {
    {"keys", &AntiEntropyStatus::keys_indexed},
    {"tombstones", &AntiEntropyStatus::tombstones},
    {"purged", &AntiEntropyStatus::tombstones_purged},
    {"exchanges", &AntiEntropyStatus::exchanges},
    {"failed", &AntiEntropyStatus::exchanges_failed},
    {"keys_received", &AntiEntropyStatus::keys_received},
    {"keys_sent", &AntiEntropyStatus::keys_sent},
    {"messages", &AntiEntropyStatus::messages},
    {"bytes_sent", &AntiEntropyStatus::bytes_sent},
    {"bytes_received", &AntiEntropyStatus::bytes_received},
    {"repair_total", &AntiEntropyStatus::repair_total},
    {"repair_done", &AntiEntropyStatus::repair_done},
    {"repair_failed", &AntiEntropyStatus::repair_failed},
};

void write_anti_entropy(FieldWriter& w, const std::optional<AntiEntropyStatus>& ae) {
    if (!ae) return;
    size_t total = 256;
    for (const auto& p : ae->peers) total += p.peer.size() + 40;
    w.custom("anti_entropy", total, [&](Packer& p) {
        p.pack_map(static_cast<uint32_t>(std::size(kAeCounters)) + 3);
        pack_text(p, "tree_ready");
        ae->tree_ready ? p.pack_true() : p.pack_false();
        pack_text(p, "refilling");
        ae->refilling ? p.pack_true() : p.pack_false();
        for (const auto& [name, member] : kAeCounters) {
            pack_text(p, name);
            p.pack_uint64((*ae).*member);
        }
        pack_text(p, "peers");
        p.pack_array(static_cast<uint32_t>(ae->peers.size()));
        for (const auto& v : ae->peers) {
            p.pack_map(2 + (v.verified ? 1 : 0) + (v.refill_pending ? 1 : 0));
            pack_text(p, "peer");
            pack_text(p, v.peer);
            pack_text(p, "verified");
            v.verified ? p.pack_true() : p.pack_false();
            if (v.verified) {
                pack_text(p, "ago_ms");
                p.pack_uint64(v.verified_ms_ago);
            }
            if (v.refill_pending) {
                pack_text(p, "refill_pending");
                p.pack_true();
            }
        }
    });
}

void read_anti_entropy(FieldReader& f, std::optional<AntiEntropyStatus>& out) {
    bool present = false;
    AntiEntropyStatus ae;
    const msgpack::object* o = f.lookup("anti_entropy", Need::optional);
    if (o == nullptr) return;
    if (o->type != msgpack::type::MAP) {
        return f.fail(ErrorCode::bad_request, "\"anti_entropy\" must be a map");
    }
    present = true;
    FieldReader sub(o->via.map);
    sub.flag("tree_ready", ae.tree_ready);
    sub.flag("refilling", ae.refilling);
    for (const auto& [name, member] : kAeCounters) sub.uint(name, ae.*member, Need::optional);
    sub.map_list("peers", kArrayItemsMax, [&](FieldReader& item, uint32_t) {
        PeerVerified& v = ae.peers.emplace_back();
        item.text("peer", v.peer, Need::required, kIdBytesMax);
        item.flag("verified", v.verified);
        item.uint("ago_ms", v.verified_ms_ago, Need::optional);
        // Only a verified peer has an age (the encoder writes none otherwise).
        if (!v.verified) v.verified_ms_ago = 0;
        item.flag("refill_pending", v.refill_pending);
    });
    f.adopt(sub, "anti_entropy");
    if (f.ok() && present) out = std::move(ae);
}

// Homes as [{node, state}], stand-ins as [{node, for}]; each list holds at
// most one item per replica, so at most kReplicasMax.
void write_homes(FieldWriter& w, const std::vector<HomeReplica>& homes) {
    size_t total = 0;
    for (const auto& h : homes) total += h.node_id.size() + h.state.size() + 24;
    w.custom("homes", total, [&](Packer& p) {
        p.pack_array(static_cast<uint32_t>(homes.size()));
        for (const auto& h : homes) {
            p.pack_map(2);
            pack_text(p, "node");
            pack_text(p, h.node_id);
            pack_text(p, "state");
            pack_text(p, h.state);
        }
    });
}

void write_stand_ins(FieldWriter& w, const std::vector<StandInReplica>& stand_ins) {
    if (stand_ins.empty()) return;
    size_t total = 0;
    for (const auto& s : stand_ins) total += s.node_id.size() + s.for_home.size() + 24;
    w.custom("stand_ins", total, [&](Packer& p) {
        p.pack_array(static_cast<uint32_t>(stand_ins.size()));
        for (const auto& s : stand_ins) {
            p.pack_map(2);
            pack_text(p, "node");
            pack_text(p, s.node_id);
            pack_text(p, "for");
            pack_text(p, s.for_home);
        }
    });
}

void read_permission(FieldReader& f, Permission& out) {
    const msgpack::object* o = f.lookup("perm", Need::required);
    if (o == nullptr) return;
    if (o->type != msgpack::type::STR) {
        return f.fail(ErrorCode::bad_request, quoted("perm") + " must be str");
    }
    auto p = permission_from_name(FieldReader::view(*o));
    if (!p) {
        return f.fail(ErrorCode::invalid_argument,
                      quoted("perm") + " must be \"read\", \"write\" or \"admin\"");
    }
    out = *p;
}

// Names are checked by the node (invalid_argument, with the rule); the codec
// only bounds their size.
void read_user_name(FieldReader& f, std::string& out) {
    f.text("name", out, Need::required, kUserNameBytesMax);
}

void read_prefix(FieldReader& f, std::string& out) {
    f.bytes("prefix", out, Need::optional, kKeyBytesMax, ErrorCode::key_too_large);
}

// Users as an array of maps {name, key, grants: [[perm, prefix], ...]}.
void write_users(FieldWriter& w, const std::vector<UserInfo>& users) {
    size_t total = 0;
    for (const auto& u : users) {
        total += u.name.size() + u.public_key.size() + 32;
        for (const auto& g : u.grants) total += g.prefix.size() + 16;
    }
    w.custom("users", total, [&](Packer& p) {
        p.pack_array(static_cast<uint32_t>(users.size()));
        for (const auto& u : users) {
            p.pack_map(3);
            pack_text(p, "name");
            pack_text(p, u.name);
            pack_text(p, "key");
            pack_text(p, u.public_key);
            pack_text(p, "grants");
            p.pack_array(static_cast<uint32_t>(u.grants.size()));
            for (const auto& g : u.grants) {
                p.pack_array(2);
                pack_text(p, permission_name(g.permission));
                p.pack_bin(static_cast<uint32_t>(g.prefix.size()));
                p.pack_bin_body(g.prefix.data(), static_cast<uint32_t>(g.prefix.size()));
            }
        }
    });
}

void read_grant_pair(FieldReader& f, const msgpack::object& item, GrantInfo& out) {
    if (item.type != msgpack::type::ARRAY || item.via.array.size != 2 ||
        item.via.array.ptr[0].type != msgpack::type::STR ||
        (item.via.array.ptr[1].type != msgpack::type::BIN &&
         item.via.array.ptr[1].type != msgpack::type::STR)) {
        return f.fail(ErrorCode::bad_request, "a grant must be [perm, prefix]");
    }
    auto p = permission_from_name(FieldReader::view(item.via.array.ptr[0]));
    std::string_view prefix = FieldReader::view(item.via.array.ptr[1]);
    if (!p) return f.fail(ErrorCode::bad_request, "unknown permission in a grant");
    if (prefix.size() > kKeyBytesMax) {
        return f.fail(ErrorCode::key_too_large, "a grant's prefix is longer than a key");
    }
    out.permission = *p;
    out.prefix.assign(prefix);
}

void read_users(FieldReader& f, std::vector<UserInfo>& out) {
    f.map_list("users", kArrayItemsMax, [&](FieldReader& sub, uint32_t) {
        UserInfo& u = out.emplace_back();
        sub.text("name", u.name, Need::required, kUserNameBytesMax);
        sub.text("key", u.public_key, Need::required, kIdBytesMax);
        const msgpack::object* grants = sub.lookup("grants", Need::optional);
        if (grants == nullptr) return;
        if (grants->type != msgpack::type::ARRAY) {
            return sub.fail(ErrorCode::bad_request, quoted("grants") + " must be an array");
        }
        for (uint32_t j = 0; j < grants->via.array.size && sub.ok(); ++j) {
            read_grant_pair(sub, grants->via.array.ptr[j], u.grants.emplace_back());
        }
    });
}

}  // namespace

// One overload per alternative, found by argument-dependent lookup from
// wire::encode_message, whose std::visit fails to compile when one is missing.
void write_fields(const GetRequest& m, FieldWriter& w) {
    w.bytes("key", m.key);
    write_consistency("r", m.consistency, w);
    w.uint_if_nonzero("deadline_ms", m.deadline_ms);
}
void write_fields(const PutRequest& m, FieldWriter& w) {
    w.bytes("key", m.key);
    w.bytes("val", m.value);
    w.bytes_if("ctx", m.context);
    w.flag_if_true("replace", m.replace);
    write_consistency("w", m.consistency, w);
    w.uint_if_nonzero("deadline_ms", m.deadline_ms);
}
void write_fields(const DelRequest& m, FieldWriter& w) {
    w.bytes("key", m.key);
    w.bytes_if("ctx", m.context);
    write_consistency("w", m.consistency, w);
    w.uint_if_nonzero("deadline_ms", m.deadline_ms);
}
void write_fields(const LocalGetRequest& m, FieldWriter& w) {
    w.bytes("key", m.key);
}
void write_fields(const StatusRequest&, FieldWriter&) {}
void write_fields(const GetResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
    w.bytes_list("vals", m.values);
    w.bytes_if_nonempty("ctx", m.context);
    write_info(w, m.info);
}
void write_fields(const WriteResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
    w.bytes_if_nonempty("ctx", m.context);
    write_info(w, m.info);
}
void write_fields(const StatusResponse& m, FieldWriter& w) {
    w.text("node", m.node_id);
    w.uint("n", m.n_replicas);
    w.uint("n_effective", m.n_effective);
    write_members(w, m.members);
    w.uint("keys_stored", m.keys_stored);
    write_transfers(w, m.transfers);
    w.text_if_nonempty("leave", m.leave);
    w.text_if_nonempty("removal", m.removal);
    write_hints(w, m.hints);
    w.uint_if_nonzero("under_replicated", m.under_replicated_ranges);
    write_anti_entropy(w, m.anti_entropy);
}
void write_fields(const ErrorResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
}
void write_fields(const LeaveRequest&, FieldWriter&) {}
void write_fields(const AdminResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
}

void write_fields(const UserAddRequest& m, FieldWriter& w) {
    w.text("name", m.name);
    w.text("key", m.public_key);
}
void write_fields(const UserDelRequest& m, FieldWriter& w) {
    w.text("name", m.name);
}
void write_fields(const UserListRequest&, FieldWriter&) {}
void write_fields(const UserListResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
    write_users(w, m.users);
}
void write_fields(const GrantRequest& m, FieldWriter& w) {
    w.text("name", m.name);
    w.text("perm", permission_name(m.permission));
    w.bytes("prefix", m.prefix);
}
void write_fields(const RevokeRequest& m, FieldWriter& w) {
    w.text("name", m.name);
    w.text("perm", permission_name(m.permission));
    w.bytes("prefix", m.prefix);
}
void write_fields(const RemoveNodeRequest& m, FieldWriter& w) {
    w.text("node", m.node_id);
}
void write_fields(const StatsRequest&, FieldWriter&) {}
void write_fields(const StatsResponse& m, FieldWriter& w) {
    w.bytes("text", m.text);
}
void write_fields(const OwnersRequest& m, FieldWriter& w) {
    w.bytes("key", m.key);
}
void write_fields(const RepairRequest& m, FieldWriter& w) {
    if (!m.stop_waiting_for.empty()) w.text_list("stop_waiting_for", m.stop_waiting_for);
    if (m.whole_ring) return;
    w.uint("start", m.start);
    w.uint("end", m.end);
}
void write_fields(const OwnersResponse& m, FieldWriter& w) {
    write_homes(w, m.homes);
    write_stand_ins(w, m.stand_ins);
    w.text_list("new_owners", m.new_owners);
    w.uint("n", m.n_replicas);
    w.flag_if_true("sloppy", m.sloppy);
}

// One overload per alternative; the decoder table of wire::decode_message
// instantiates all of them, so a missing one fails to compile.
void read_fields(FieldReader& f, GetRequest& m) {
    f.key(m.key);
    read_consistency(f, "r", m.consistency);
    read_deadline(f, m.deadline_ms);
}
void read_fields(FieldReader& f, PutRequest& m) {
    f.key(m.key);
    f.bytes("val", m.value, Need::required, kValueBytesMax, ErrorCode::value_too_large);
    f.optional_bytes("ctx", m.context, kContextBytesMax, ErrorCode::bad_context);
    f.flag("replace", m.replace);
    read_consistency(f, "w", m.consistency);
    read_deadline(f, m.deadline_ms);
}
void read_fields(FieldReader& f, DelRequest& m) {
    f.key(m.key);
    f.optional_bytes("ctx", m.context, kContextBytesMax, ErrorCode::bad_context);
    read_consistency(f, "w", m.consistency);
    read_deadline(f, m.deadline_ms);
}
void read_fields(FieldReader& f, LocalGetRequest& m) {
    f.key(m.key);
}
void read_fields(FieldReader&, StatusRequest&) {}
void read_fields(FieldReader& f, GetResponse& m) {
    f.code(m.code);
    f.message(m.message);
    read_values(f, m.values);
    f.bytes("ctx", m.context, Need::optional, kContextBytesMax, ErrorCode::bad_context);
    read_info(f, m.info);
}
void read_fields(FieldReader& f, WriteResponse& m) {
    f.code(m.code);
    f.message(m.message);
    f.bytes("ctx", m.context, Need::optional, kContextBytesMax, ErrorCode::bad_context);
    read_info(f, m.info);
}
void read_fields(FieldReader& f, StatusResponse& m) {
    f.text("node", m.node_id, Need::required, kIdBytesMax);
    f.uint("n", m.n_replicas, Need::required);
    f.uint("n_effective", m.n_effective, Need::optional);
    read_members(f, m.members);
    f.uint("keys_stored", m.keys_stored, Need::optional);
    read_transfers(f, m.transfers);
    f.text("leave", m.leave, Need::optional, kMessageTextBytesMax);
    f.text("removal", m.removal, Need::optional, kMessageTextBytesMax);
    read_hints(f, m.hints);
    f.uint("under_replicated", m.under_replicated_ranges, Need::optional);
    read_anti_entropy(f, m.anti_entropy);
}
void read_fields(FieldReader& f, ErrorResponse& m) {
    f.code(m.code);
    f.message(m.message);
}
void read_fields(FieldReader&, LeaveRequest&) {}
void read_fields(FieldReader& f, AdminResponse& m) {
    f.code(m.code);
    f.message(m.message);
}

void read_fields(FieldReader& f, UserAddRequest& m) {
    read_user_name(f, m.name);
    f.text("key", m.public_key, Need::required, kIdBytesMax);
}
void read_fields(FieldReader& f, UserDelRequest& m) {
    read_user_name(f, m.name);
}
void read_fields(FieldReader&, UserListRequest&) {}
void read_fields(FieldReader& f, UserListResponse& m) {
    f.code(m.code);
    f.message(m.message);
    read_users(f, m.users);
}
void read_fields(FieldReader& f, GrantRequest& m) {
    read_user_name(f, m.name);
    read_permission(f, m.permission);
    read_prefix(f, m.prefix);
}
void read_fields(FieldReader& f, RevokeRequest& m) {
    read_user_name(f, m.name);
    read_permission(f, m.permission);
    read_prefix(f, m.prefix);
}
void read_fields(FieldReader& f, RepairRequest& m) {
    const bool ranged =
        f.lookup("start", Need::optional) != nullptr || f.lookup("end", Need::optional) != nullptr;
    m.whole_ring = !ranged;
    if (ranged) {
        f.uint("start", m.start, Need::required);
        f.uint("end", m.end, Need::required);
    }
    f.text_list("stop_waiting_for", m.stop_waiting_for, kArrayItemsMax);
}
void read_fields(FieldReader& f, RemoveNodeRequest& m) {
    f.text("node", m.node_id, Need::required, kIdBytesMax);
}
void read_fields(FieldReader&, StatsRequest&) {}
void read_fields(FieldReader& f, StatsResponse& m) {
    f.bytes("text", m.text, Need::required, kFrameBytesMax, ErrorCode::bad_request);
}
void read_fields(FieldReader& f, OwnersRequest& m) {
    f.key(m.key);
}
void read_fields(FieldReader& f, OwnersResponse& m) {
    f.map_list("homes", kReplicasMax, [&](FieldReader& sub, uint32_t) {
        HomeReplica& h = m.homes.emplace_back();
        sub.text("node", h.node_id, Need::required, kIdBytesMax);
        sub.text("state", h.state, Need::optional, kIdBytesMax);
    });
    f.map_list("stand_ins", kReplicasMax, [&](FieldReader& sub, uint32_t) {
        StandInReplica& s = m.stand_ins.emplace_back();
        sub.text("node", s.node_id, Need::required, kIdBytesMax);
        sub.text("for", s.for_home, Need::required, kIdBytesMax);
    });
    f.text_list("new_owners", m.new_owners, kReplicasMax);
    f.uint("n", m.n_replicas, Need::required);
    f.flag("sloppy", m.sloppy);
}

std::string_view permission_name(Permission p) {
    auto i = static_cast<size_t>(p);
    assert(i < kPermissionNames.size());
    return kPermissionNames[i];
}

std::optional<Permission> permission_from_name(std::string_view name) {
    for (size_t i = 0; i < kPermissionNames.size(); ++i) {
        if (kPermissionNames[i] == name) return static_cast<Permission>(i);
    }
    return std::nullopt;
}

bool is_valid_user_name(std::string_view name) {
    if (name.empty() || name.size() > kUserNameBytesMax) return false;
    for (char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

std::string_view level_name(Level level) {
    auto i = static_cast<size_t>(level);
    assert(i < kLevelNames.size());
    return kLevelNames[i];
}

std::optional<Level> level_from_name(std::string_view name) {
    for (size_t i = 0; i < kLevelNames.size(); ++i) {
        if (kLevelNames[i] == name) return static_cast<Level>(i);
    }
    return std::nullopt;
}

uint32_t replicas_required(const Consistency& c, uint32_t n) {
    if (n == 0) return 0;
    uint32_t needed = c.count;
    if (needed == 0) {
        switch (c.level) {
            case Level::one:
                needed = 1;
                break;
            case Level::two:
                needed = 2;
                break;
            case Level::three:
                needed = 3;
                break;
            case Level::quorum:
                needed = n / 2 + 1;
                break;
            case Level::all:
                needed = n;
                break;
        }
    }
    return needed <= n ? needed : 0;
}

std::string_view type_name(const Message& m) {
    return kMessageTypeNames[m.index()];
}

uint64_t request_id(const Message& m) {
    return std::visit([](const auto& msg) { return msg.id; }, m);
}

std::string encode(const Message& m) {
    return wire::encode_message(m, kMessageTypeNames);
}

Result<Message> decode(std::string_view frame, uint64_t* id_out) {
    return wire::decode_message<Message>(frame, kMessageTypeNames, id_out);
}

}  // namespace kv::proto
