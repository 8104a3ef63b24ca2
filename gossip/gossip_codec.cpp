#include "gossip/gossip_codec.h"

#include <algorithm>
#include <exception>
#include <optional>
#include <type_traits>

#include <msgpack.hpp>

namespace kv::gossip {

namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

// Deepest legal nesting: map -> entries array -> entry array -> tokens array.
constexpr size_t kDepthMax = 4;
constexpr size_t kMapItemsMax = 16;

void pack_str(Packer& pk, std::string_view s) {
    pk.pack_str(static_cast<uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void pack_digests(Packer& pk, const std::vector<DigestEntry>& digests) {
    pk.pack_array(static_cast<uint32_t>(digests.size()));
    for (const auto& d : digests) {
        pk.pack_array(5);
        pack_str(pk, d.id);
        pk.pack_uint64(d.incarnation);
        pk.pack_uint64(d.heartbeat);
        pk.pack_uint8(static_cast<uint8_t>(d.declared));
        pk.pack_uint8(static_cast<uint8_t>(d.liveness));
    }
}

void pack_entries(Packer& pk, const std::vector<MemberState>& entries) {
    pk.pack_array(static_cast<uint32_t>(entries.size()));
    for (const auto& e : entries) {
        // The 9th field only on removal entries: other entries stay readable
        // by builds that know 8.
        pk.pack_array(e.removed_by.empty() ? 8 : 9);
        pack_str(pk, e.id);
        pack_str(pk, e.endpoint);
        pk.pack_uint8(static_cast<uint8_t>(e.declared));
        pk.pack_uint8(static_cast<uint8_t>(e.liveness));
        pk.pack_uint64(e.incarnation);
        pk.pack_uint64(e.heartbeat);
        pk.pack_array(static_cast<uint32_t>(e.tokens.size()));
        for (uint64_t t : e.tokens) pk.pack_uint64(t);
        pk.pack_uint64(e.change_ticket);
        if (!e.removed_by.empty()) pack_str(pk, e.removed_by);
    }
}

bool any_link_endpoint(const std::vector<MemberState>& entries) {
    return std::any_of(entries.begin(), entries.end(),
                       [](const MemberState& e) { return !e.link_endpoint.empty(); });
}

// "le": the entries' link endpoints, by id.
void pack_link_endpoints(Packer& pk, const std::vector<MemberState>& entries) {
    pack_str(pk, "le");
    size_t count = 0;
    for (const auto& e : entries) count += e.link_endpoint.empty() ? 0 : 1;
    pk.pack_array(static_cast<uint32_t>(count));
    for (const auto& e : entries) {
        if (e.link_endpoint.empty()) continue;
        pk.pack_array(2);
        pack_str(pk, e.id);
        pack_str(pk, e.link_endpoint);
    }
}

void pack_strings(Packer& pk, const std::vector<std::string>& items) {
    pk.pack_array(static_cast<uint32_t>(items.size()));
    for (const auto& s : items) pack_str(pk, s);
}

// ---- decoding ---------------------------------------------------------------

// Field readers: the first failure sticks, later reads are no-ops.
class Reader {
  public:
    bool ok() const { return error_.empty(); }
    const std::string& error() const { return error_; }
    void fail(std::string what) {
        if (error_.empty()) error_ = std::move(what);
    }

    std::string str(const msgpack::object& o, std::string_view what, bool allow_empty) {
        if (!ok()) return {};
        if (o.type != msgpack::type::STR) return fail_with(what, "is not a string"), "";
        if (o.via.str.size > kGossipIdBytesMax) return fail_with(what, "is too long"), "";
        if (o.via.str.size == 0 && !allow_empty) return fail_with(what, "is empty"), "";
        return std::string(o.via.str.ptr, o.via.str.size);
    }
    uint64_t uint(const msgpack::object& o, std::string_view what) {
        if (!ok()) return 0;
        if (o.type != msgpack::type::POSITIVE_INTEGER) {
            fail_with(what, "is not an unsigned integer");
            return 0;
        }
        return o.via.u64;
    }
    // An incarnation, heartbeat or ticket: at most kCounterMax (cluster_view.h).
    uint64_t counter(const msgpack::object& o, std::string_view what) {
        const uint64_t v = uint(o, what);
        if (v > kCounterMax) fail_with(what, "is beyond 2^62");
        return v;
    }
    MemberStatus declared(const msgpack::object& o) {
        const uint64_t v = uint(o, "declared status");
        if (ok() && (v > static_cast<uint64_t>(MemberStatus::left) ||
                     !is_declarable(static_cast<MemberStatus>(v)))) {
            fail_with("declared status", "is not joining, up, leaving or left");
        }
        return ok() ? static_cast<MemberStatus>(v) : MemberStatus::joining;
    }
    Liveness liveness(const msgpack::object& o) {
        const uint64_t v = uint(o, "liveness");
        if (ok() && v > static_cast<uint64_t>(Liveness::down)) fail_with("liveness", "is unknown");
        return ok() ? static_cast<Liveness>(v) : Liveness::alive;
    }
    // An array of at most `max` items (each of `arity` items when arity > 0).
    const msgpack::object_array* array(const msgpack::object& o, std::string_view what, size_t max,
                                       size_t arity = 0) {
        if (!ok()) return nullptr;
        if (o.type != msgpack::type::ARRAY) return fail_with(what, "is not an array"), nullptr;
        if (o.via.array.size > max) return fail_with(what, "has too many items"), nullptr;
        if (arity != 0 && o.via.array.size != arity) {
            return fail_with(what, "has the wrong number of fields"), nullptr;
        }
        return &o.via.array;
    }

  private:
    void fail_with(std::string_view what, std::string_view problem) {
        fail(std::string(what) + " " + std::string(problem));
    }
    std::string error_;
};

std::vector<DigestEntry> read_digests(Reader& r, const msgpack::object& o) {
    std::vector<DigestEntry> out;
    const auto* items = r.array(o, "digests", kGossipItemsMax);
    for (uint32_t i = 0; items != nullptr && i < items->size && r.ok(); ++i) {
        const auto* f = r.array(items->ptr[i], "digest", 5, 5);
        if (f == nullptr) break;
        DigestEntry d;
        d.id = r.str(f->ptr[0], "digest id", false);
        d.incarnation = r.counter(f->ptr[1], "incarnation");
        d.heartbeat = r.counter(f->ptr[2], "heartbeat");
        d.declared = r.declared(f->ptr[3]);
        d.liveness = r.liveness(f->ptr[4]);
        out.push_back(std::move(d));
    }
    return out;
}

std::vector<uint64_t> read_tokens(Reader& r, const msgpack::object& o) {
    std::vector<uint64_t> tokens;
    const auto* items = r.array(o, "tokens", kGossipTokensPerMemberMax);
    if (items == nullptr) return tokens;
    tokens.reserve(items->size);
    for (uint32_t i = 0; i < items->size && r.ok(); ++i) {
        tokens.push_back(r.uint(items->ptr[i], "token"));
    }
    std::sort(tokens.begin(), tokens.end());
    tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
    return tokens;
}

std::vector<MemberState> read_entries(Reader& r, const msgpack::object& o) {
    std::vector<MemberState> out;
    const auto* items = r.array(o, "entries", kGossipItemsMax);
    for (uint32_t i = 0; items != nullptr && i < items->size && r.ok(); ++i) {
        // 7 fields as written before change tickets existed (a view saved by
        // an older build), 8 since, 9 for a removal (removed_by).
        const auto* f = r.array(items->ptr[i], "entry", 9);
        if (f != nullptr && (f->size < 7 || f->size > 9)) {
            r.fail("entry has the wrong number of fields");
        }
        if (f == nullptr || !r.ok()) break;
        MemberState e;
        e.id = r.str(f->ptr[0], "entry id", false);
        e.endpoint = r.str(f->ptr[1], "endpoint", true);
        e.declared = r.declared(f->ptr[2]);
        e.liveness = r.liveness(f->ptr[3]);
        e.incarnation = r.counter(f->ptr[4], "incarnation");
        e.heartbeat = r.counter(f->ptr[5], "heartbeat");
        e.tokens = read_tokens(r, f->ptr[6]);
        if (f->size >= 8) e.change_ticket = r.counter(f->ptr[7], "change ticket");
        if (f->size == 9) e.removed_by = r.str(f->ptr[8], "removed by", false);
        out.push_back(std::move(e));
    }
    return out;
}

// "le" onto the entries it names (a name no entry has is ignored).
void read_link_endpoints(Reader& r, const msgpack::object& o, std::vector<MemberState>& entries) {
    const auto* items = r.array(o, "link endpoints", kGossipItemsMax);
    for (uint32_t i = 0; items != nullptr && i < items->size && r.ok(); ++i) {
        const auto* f = r.array(items->ptr[i], "link endpoint", 2, 2);
        if (f == nullptr || !r.ok()) break;
        const std::string id = r.str(f->ptr[0], "link endpoint id", false);
        std::string endpoint = r.str(f->ptr[1], "link endpoint", false);
        for (auto& e : entries) {
            if (e.id == id) e.link_endpoint = endpoint;
        }
    }
}

std::vector<std::string> read_wants(Reader& r, const msgpack::object& o) {
    std::vector<std::string> out;
    const auto* items = r.array(o, "wants", kGossipItemsMax);
    for (uint32_t i = 0; items != nullptr && i < items->size && r.ok(); ++i) {
        out.push_back(r.str(items->ptr[i], "wanted id", false));
    }
    return out;
}

// The first value under `key` in the top-level map, or null.
const msgpack::object* field(const msgpack::object_map& map, std::string_view key) {
    for (uint32_t i = 0; i < map.size; ++i) {
        const auto& k = map.ptr[i].key;
        if (k.type == msgpack::type::STR &&
            std::string_view(k.via.str.ptr, k.via.str.size) == key) {
            return &map.ptr[i].val;
        }
    }
    return nullptr;
}

Result<GossipMessage> read_message(const msgpack::object& root) {
    if (root.type != msgpack::type::MAP) return Status(ErrorCode::bad_request, "not a map");
    const auto& map = root.via.map;
    const msgpack::object* type = field(map, "t");
    const msgpack::object* from = field(map, "from");
    if (type == nullptr || from == nullptr) {
        return Status(ErrorCode::bad_request, "gossip frame lacks \"t\" or \"from\"");
    }
    Reader r;
    const std::string t = r.str(*type, "type", false);
    const std::string from_id = r.str(*from, "from", false);
    const msgpack::object* ep = field(map, "ep");
    const std::string endpoint = ep == nullptr ? std::string() : r.str(*ep, "ep", true);
    msgpack::object empty_array;  // what an absent list reads as
    empty_array.type = msgpack::type::ARRAY;
    empty_array.via.array = msgpack::object_array{0, nullptr};
    auto list = [&](std::string_view key) -> const msgpack::object& {
        const msgpack::object* o = field(map, key);
        return o == nullptr ? empty_array : *o;
    };
    std::optional<GossipMessage> message;
    if (t == "gsyn") {
        message = GossipSyn{from_id, endpoint, read_digests(r, list("d"))};
    } else if (t == "gack") {
        auto entries = read_entries(r, list("e"));
        read_link_endpoints(r, list("le"), entries);
        message = GossipAck{from_id, endpoint, std::move(entries), read_wants(r, list("w"))};
    } else if (t == "gack2") {
        auto entries = read_entries(r, list("e"));
        read_link_endpoints(r, list("le"), entries);
        message = GossipAck2{from_id, std::move(entries)};
    } else if (r.ok()) {
        return Status(ErrorCode::unknown_type, "unknown gossip message type '" + t + "'");
    }
    if (!r.ok()) return Status(ErrorCode::bad_request, "gossip: " + r.error());
    if (std::holds_alternative<GossipSyn>(*message) ||
        std::holds_alternative<GossipAck>(*message)) {
        // Syn and ack are answered at this endpoint.
        if (endpoint.empty()) return Status(ErrorCode::bad_request, "gossip: \"ep\" is missing");
    }
    return std::move(*message);
}

}  // namespace

std::string encode(const GossipMessage& message) {
    msgpack::sbuffer buffer;
    Packer pk(&buffer);
    std::visit(
        [&](const auto& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, GossipSyn>) {
                pk.pack_map(4);
                pack_str(pk, "t");
                pack_str(pk, "gsyn");
                pack_str(pk, "from");
                pack_str(pk, m.from_id);
                pack_str(pk, "ep");
                pack_str(pk, m.from_endpoint);
                pack_str(pk, "d");
                pack_digests(pk, m.digests);
            } else if constexpr (std::is_same_v<T, GossipAck>) {
                const bool links = any_link_endpoint(m.entries);
                pk.pack_map(links ? 6 : 5);
                pack_str(pk, "t");
                pack_str(pk, "gack");
                pack_str(pk, "from");
                pack_str(pk, m.from_id);
                pack_str(pk, "ep");
                pack_str(pk, m.from_endpoint);
                pack_str(pk, "e");
                pack_entries(pk, m.entries);
                if (links) pack_link_endpoints(pk, m.entries);
                pack_str(pk, "w");
                pack_strings(pk, m.wants);
            } else if constexpr (std::is_same_v<T, GossipAck2>) {
                const bool links = any_link_endpoint(m.entries);
                pk.pack_map(links ? 4 : 3);
                pack_str(pk, "t");
                pack_str(pk, "gack2");
                pack_str(pk, "from");
                pack_str(pk, m.from_id);
                pack_str(pk, "e");
                pack_entries(pk, m.entries);
                if (links) pack_link_endpoints(pk, m.entries);
            } else {
                static_assert(sizeof(T) == 0, "unhandled gossip message");
            }
        },
        message);
    return std::string(buffer.data(), buffer.size());
}

Result<GossipMessage> decode(std::string_view frame) {
    if (frame.size() > kGossipFrameBytesMax) {
        return Status(
            ErrorCode::message_too_large,
            "gossip frame larger than " + std::to_string(kGossipFrameBytesMax) + " bytes");
    }
    // msgpack checks these per container while parsing, before allocating;
    // the frame size bounds the total object count.
    const msgpack::unpack_limit limit(std::max(kGossipItemsMax, kGossipTokensPerMemberMax),
                                      kMapItemsMax, kGossipIdBytesMax, kGossipIdBytesMax, 0,
                                      kDepthMax);
    try {
        size_t offset = 0;
        msgpack::object_handle handle =
            msgpack::unpack(frame.data(), frame.size(), offset, nullptr, nullptr, limit);
        if (offset != frame.size()) {
            return Status(ErrorCode::bad_request, "gossip: trailing bytes after the frame");
        }
        return read_message(handle.get());
    } catch (const std::exception& e) {
        return Status(ErrorCode::bad_request,
                      std::string("gossip: malformed msgpack: ") + e.what());
    }
}

}  // namespace kv::gossip
