#include "client/protocol.h"

#include <array>
#include <cassert>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

#include <msgpack.hpp>

namespace kv::proto {

namespace {

constexpr size_t kAlternatives = std::variant_size_v<Message>;

// Indexed like Message's alternatives; docs/PROTOCOL.md lists the same strings.
constexpr std::array<std::string_view, kAlternatives> kTypeNames = {
    "get",          "put",          "del",           "local_get",     "status",
    "get_reply",    "write_reply",  "status_reply",  "error",         "r_read",
    "r_read_reply", "r_write",      "r_write_reply", "r_merge",       "r_merge_reply",
    "ping",         "pong",         "gossip",        "leave",         "admin_reply",
    "stream",       "stream_reply", "handoff",       "handoff_reply",
};

constexpr std::array<std::string_view, 5> kLevelNames = {"one", "two", "three", "quorum", "all"};

// Byte strings may be as large as a whole frame at the msgpack level so that
// the per-field checks can answer with the precise code (value_too_large,
// object_too_large, ...); they cost nothing more because decode references the
// frame instead of copying (see reference_frame).
const msgpack::unpack_limit kUnpackLimit(kArrayItemsMax, kMapItemsMax, kFrameBytesMax,
                                         kFrameBytesMax, kIdBytesMax, kNestingDepthMax);

// ---- encoding ----------------------------------------------------------------

// Appends straight into the result string: one allocation, no sbuffer copy.
struct StringSink {
    std::string* out;
    void write(const char* bytes, size_t size) { out->append(bytes, size); }
};
using Packer = msgpack::packer<StringSink>;

// Writes a message's fields, or with no packer only counts them and their
// size, so that the map header (which needs the count) and the reserve can
// come first while each message lists its fields in one place.
class FieldWriter {
  public:
    explicit FieldWriter(Packer* packer) : packer_(packer) {}
    uint32_t count() const { return count_; }
    size_t bytes_estimate() const { return bytes_estimate_; }

    void bytes(std::string_view name, std::string_view value) {
        if (begin(name, value.size())) {
            packer_->pack_bin(static_cast<uint32_t>(value.size()));
            packer_->pack_bin_body(value.data(), static_cast<uint32_t>(value.size()));
        }
    }
    void bytes_if(std::string_view name, const std::optional<std::string>& value) {
        if (value) bytes(name, *value);
    }
    void bytes_if_nonempty(std::string_view name, std::string_view value) {
        if (!value.empty()) bytes(name, value);
    }
    void text(std::string_view name, std::string_view value) {
        if (begin(name, value.size())) pack_text(value);
    }
    void text_if_nonempty(std::string_view name, std::string_view value) {
        if (!value.empty()) text(name, value);
    }
    void uint(std::string_view name, uint64_t value) {
        if (begin(name, 0)) packer_->pack_uint64(value);
    }
    void uint_if_nonzero(std::string_view name, uint64_t value) {
        if (value != 0) uint(name, value);
    }
    void flag_if_true(std::string_view name, bool value) {
        if (value && begin(name, 0)) packer_->pack_true();
    }
    void code(ErrorCode value) { uint("code", static_cast<uint64_t>(value)); }

    void bytes_list(std::string_view name, const std::vector<std::string>& values) {
        size_t total = 0;
        for (const auto& v : values) total += v.size() + 5;
        if (!begin(name, total)) return;
        packer_->pack_array(static_cast<uint32_t>(values.size()));
        for (const auto& v : values) {
            packer_->pack_bin(static_cast<uint32_t>(v.size()));
            packer_->pack_bin_body(v.data(), static_cast<uint32_t>(v.size()));
        }
    }

    void text_list(std::string_view name, const std::vector<std::string>& values) {
        if (values.empty()) return;
        size_t total = 0;
        for (const auto& v : values) total += v.size() + 5;
        if (!begin(name, total)) return;
        packer_->pack_array(static_cast<uint32_t>(values.size()));
        for (const auto& v : values) pack_text(v);
    }

    // Ranges as one flat array: start, end, start, end, ...
    void ranges(const std::vector<TokenRange>& ranges) {
        if (!begin("ranges", ranges.size() * 18)) return;
        packer_->pack_array(static_cast<uint32_t>(ranges.size() * 2));
        for (const auto& r : ranges) {
            packer_->pack_uint64(r.start);
            packer_->pack_uint64(r.end);
        }
    }

    void transfers(const std::vector<TransferStatus>& transfers) {
        if (transfers.empty()) return;
        size_t total = 0;
        for (const auto& t : transfers) total += t.peer.size() + 80;
        if (!begin("transfers", total)) return;
        packer_->pack_array(static_cast<uint32_t>(transfers.size()));
        for (const auto& t : transfers) {
            packer_->pack_map(5);
            pack_text("peer");
            pack_text(t.peer);
            pack_text("dir");
            pack_text(t.direction);
            pack_text("state");
            pack_text(t.state);
            pack_text("ranges");
            packer_->pack_uint32(t.ranges);
            pack_text("keys");
            packer_->pack_uint64(t.keys);
        }
    }

    void info(const ReplyInfo& info) {
        if (!begin("info", 40)) return;
        packer_->pack_map(4);
        pack_text("asked");
        packer_->pack_uint32(info.replicas_asked);
        pack_text("answered");
        packer_->pack_uint32(info.replicas_answered);
        pack_text("stand_in");
        info.stand_in_used ? packer_->pack_true() : packer_->pack_false();
        pack_text("siblings");
        packer_->pack_uint32(info.sibling_count);
    }

    void members(const std::vector<MemberStatus>& members) {
        size_t total = 0;
        for (const auto& m : members) total += m.node_id.size() + m.endpoint.size() + 64;
        if (!begin("members", total)) return;
        packer_->pack_array(static_cast<uint32_t>(members.size()));
        for (const auto& m : members) {
            packer_->pack_map(6);
            pack_text("node");
            pack_text(m.node_id);
            pack_text("endpoint");
            pack_text(m.endpoint);
            pack_text("state");
            pack_text(m.state);
            pack_text("last_seen_ms_ago");
            packer_->pack_uint64(m.last_seen_ms_ago);
            pack_text("tokens");
            packer_->pack_uint32(m.tokens);
            pack_text("share_ppm");
            packer_->pack_uint32(m.share_ppm);
        }
    }

  private:
    // Counts the field; true when it should be written (its key already is).
    bool begin(std::string_view name, size_t value_bytes) {
        ++count_;
        bytes_estimate_ += name.size() + value_bytes + 10;
        if (packer_ == nullptr) return false;
        pack_text(name);
        return true;
    }
    void pack_text(std::string_view s) {
        packer_->pack_str(static_cast<uint32_t>(s.size()));
        packer_->pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
    }

    Packer* packer_;
    uint32_t count_ = 0;
    size_t bytes_estimate_ = 0;
};

// The explicit count travels as "r" on reads and "w" on writes.
void write_consistency(std::string_view count_name, const Consistency& c, FieldWriter& w) {
    w.text("cl", level_name(c.level));
    w.uint_if_nonzero(count_name, c.count);
    w.flag_if_true("strict", c.strict);
}

// One overload per alternative: std::visit in encode() fails to compile
// when one is missing.
void write_fields(const GetRequest& m, FieldWriter& w) {
    w.bytes("key", m.key);
    write_consistency("r", m.consistency, w);
    w.uint_if_nonzero("deadline_ms", m.deadline_ms);
}
void write_fields(const PutRequest& m, FieldWriter& w) {
    w.bytes("key", m.key);
    w.bytes("val", m.value);
    w.bytes_if("ctx", m.context);
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
    w.info(m.info);
}
void write_fields(const WriteResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
    w.bytes_if_nonempty("ctx", m.context);
    w.info(m.info);
}
void write_fields(const StatusResponse& m, FieldWriter& w) {
    w.text("node", m.node_id);
    w.uint("n", m.n_replicas);
    w.members(m.members);
    w.uint("keys_stored", m.keys_stored);
    w.transfers(m.transfers);
}
void write_fields(const ErrorResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
}
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
}
void write_fields(const ReplicaWriteResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
    w.bytes_if_nonempty("obj", m.object);
}
void write_fields(const ReplicaMergeRequest& m, FieldWriter& w) {
    w.bytes("key", m.key);
    w.bytes("obj", m.object);
    w.text_list("targets", m.targets);
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
void write_fields(const LeaveRequest&, FieldWriter&) {}
void write_fields(const AdminResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
}
void write_fields(const StreamRequest& m, FieldWriter& w) {
    w.text("from", m.from_node);
    w.uint("ring", m.ring_digest);
    w.ranges(m.ranges);
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
    w.ranges(m.ranges);
}
void write_fields(const HandoffResponse& m, FieldWriter& w) {
    w.code(m.code);
    w.text_if_nonempty("msg", m.message);
}

template <typename T>
std::string encode_as(const T& m, std::string_view type) {
    FieldWriter counter(nullptr);
    write_fields(m, counter);

    std::string out;
    out.reserve(32 + counter.bytes_estimate());
    StringSink sink{&out};
    Packer packer(sink);
    packer.pack_map(3 + counter.count());
    packer.pack_str(1).pack_str_body("v", 1).pack_uint32(kProtocolVersion);
    packer.pack_str(1).pack_str_body("t", 1);
    packer.pack_str(static_cast<uint32_t>(type.size()))
        .pack_str_body(type.data(), static_cast<uint32_t>(type.size()));
    packer.pack_str(2).pack_str_body("id", 2).pack_uint64(m.id);
    FieldWriter writer(&packer);
    write_fields(m, writer);
    assert(writer.count() == counter.count());
    return out;
}

// ---- decoding: the allocation-free pre-pass -----------------------------------

// Walks the raw frame before anything is allocated: enforces nesting depth,
// per-container sizes and the whole-frame object budget, and picks up the
// top-level "id" so that even a frame rejected later (truncated, too deep, too
// large) can be answered with its request id.
class FrameScan : public msgpack::null_visitor {
  public:
    enum class Failure {
        none,
        truncated,
        malformed,
        too_deep,
        container_too_long,
        too_many_objects,
        string_too_long
    };

    // With stop_at_id the walk ends as soon as the id is known.
    explicit FrameScan(bool stop_at_id) : stop_at_id_(stop_at_id) {}

    Failure failure() const { return failure_; }
    std::optional<uint64_t> id() const { return id_; }

    bool visit_positive_integer(uint64_t v) {
        if (in_top_value() && value_is_id_ && !id_) {
            id_ = v;
            if (stop_at_id_) return false;
        }
        return true;
    }
    bool visit_str(const char* bytes, uint32_t size) {
        if (depth_ == 1 && at_top_key_) key_is_id_ = std::string_view(bytes, size) == "id";
        return size <= kFrameBytesMax || fail(Failure::string_too_long);
    }
    bool visit_bin(const char*, uint32_t size) {
        return size <= kFrameBytesMax || fail(Failure::string_too_long);
    }
    bool visit_ext(const char*, uint32_t size) {
        return size <= kIdBytesMax || fail(Failure::string_too_long);
    }
    bool start_array(uint32_t items) {
        if (items > kArrayItemsMax) return fail(Failure::container_too_long);
        return enter(items);
    }
    bool end_array() {
        --depth_;
        return true;
    }
    bool start_map(uint32_t pairs) {
        if (pairs > kMapItemsMax) return fail(Failure::container_too_long);
        return enter(size_t{2} * pairs);
    }
    bool start_map_key() {
        if (depth_ == 1) {
            at_top_key_ = true;
            key_is_id_ = false;
        }
        return true;
    }
    bool end_map_key() {
        if (depth_ == 1) at_top_key_ = false;
        return true;
    }
    bool start_map_value() {
        if (depth_ == 1) value_is_id_ = key_is_id_;
        return true;
    }
    bool end_map_value() {
        if (depth_ == 1) value_is_id_ = false;
        return true;
    }
    bool end_map() {
        --depth_;
        return true;
    }
    void parse_error(size_t, size_t) { failure_ = Failure::malformed; }
    void insufficient_bytes(size_t, size_t) { failure_ = Failure::truncated; }

  private:
    bool enter(size_t objects) {
        if (depth_ + 1 > kNestingDepthMax) return fail(Failure::too_deep);
        objects_ += objects;
        if (objects_ > kFrameObjectsMax) return fail(Failure::too_many_objects);
        ++depth_;
        return true;
    }
    bool fail(Failure f) {
        failure_ = f;
        return false;
    }
    bool in_top_value() const { return depth_ == 1 && !at_top_key_; }

    bool stop_at_id_;
    Failure failure_ = Failure::none;
    size_t depth_ = 0;
    size_t objects_ = 0;
    bool at_top_key_ = false;
    bool key_is_id_ = false;
    bool value_is_id_ = false;
    std::optional<uint64_t> id_;
};

Status scan_failure_status(FrameScan::Failure f) {
    switch (f) {
        case FrameScan::Failure::truncated:
            return {ErrorCode::bad_request, "truncated msgpack"};
        case FrameScan::Failure::malformed:
        case FrameScan::Failure::none:
            return {ErrorCode::bad_request, "malformed msgpack"};
        case FrameScan::Failure::too_deep:
            return {ErrorCode::bad_request,
                    "nesting deeper than " + std::to_string(kNestingDepthMax)};
        case FrameScan::Failure::container_too_long:
            return {ErrorCode::bad_request, "array longer than " + std::to_string(kArrayItemsMax) +
                                                " items or map longer than " +
                                                std::to_string(kMapItemsMax) + " entries"};
        case FrameScan::Failure::too_many_objects:
            return {ErrorCode::bad_request,
                    "more than " + std::to_string(kFrameObjectsMax) + " objects in one frame"};
        case FrameScan::Failure::string_too_long:
            return {ErrorCode::bad_request, "str, bin or ext longer than allowed"};
    }
    return {ErrorCode::internal, "unhandled scan failure"};
}

// Zero-copy: str and bin objects point into the frame, which outlives them.
bool reference_frame(msgpack::type::object_type, size_t, void*) {
    return true;
}

// ---- decoding: fields of a map --------------------------------------------------

enum class Need { required, optional };

std::string quoted(std::string_view name) {
    std::string s = "field \"";
    s += name;
    s += '"';
    return s;
}

// Reads the fields of one msgpack map. The first failure sticks and later
// reads become no-ops, so a message's reader is a flat list of fields.
class FieldReader {
  public:
    explicit FieldReader(const msgpack::object_map& map) : map_(map) { reject_duplicates(); }

    bool ok() const { return status_.ok(); }
    const Status& status() const { return status_; }
    void fail(ErrorCode code, std::string message) {
        if (status_.ok()) status_ = Status(code, std::move(message));
    }

    // The value of the first entry whose key is the str `name`.
    const msgpack::object* find(std::string_view name) const {
        for (uint32_t i = 0; i < map_.size; ++i) {
            const msgpack::object& key = map_.ptr[i].key;
            if (key.type == msgpack::type::STR && view(key) == name) return &map_.ptr[i].val;
        }
        return nullptr;
    }

    void key(std::string& out) {
        bytes("key", out, Need::required, kKeyBytesMax, ErrorCode::key_too_large);
        if (ok() && out.empty()) fail(ErrorCode::invalid_argument, "empty key");
    }

    // Byte strings are sent as bin but accepted as str too (clients whose
    // language cannot tell bytes from text).
    void bytes(std::string_view name, std::string& out, Need need, size_t bytes_max,
               ErrorCode too_large) {
        const msgpack::object* o = lookup(name, need);
        if (o == nullptr) return;
        if (o->type != msgpack::type::BIN && o->type != msgpack::type::STR) {
            return fail(ErrorCode::bad_request, quoted(name) + " must be bin");
        }
        std::string_view v = view(*o);
        if (v.size() > bytes_max) {
            return fail(too_large,
                        quoted(name) + " longer than " + std::to_string(bytes_max) + " bytes");
        }
        out.assign(v);
    }
    void optional_bytes(std::string_view name, std::optional<std::string>& out, size_t bytes_max,
                        ErrorCode too_large) {
        if (!ok() || find(name) == nullptr) return;
        out.emplace();
        bytes(name, *out, Need::required, bytes_max, too_large);
    }

    void text(std::string_view name, std::string& out, Need need, size_t bytes_max) {
        const msgpack::object* o = lookup(name, need);
        if (o == nullptr) return;
        if (o->type != msgpack::type::STR) {
            return fail(ErrorCode::bad_request, quoted(name) + " must be str");
        }
        std::string_view v = view(*o);
        if (v.size() > bytes_max) {
            return fail(ErrorCode::bad_request,
                        quoted(name) + " longer than " + std::to_string(bytes_max) + " bytes");
        }
        out.assign(v);
    }

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

    void flag(std::string_view name, bool& out) {
        const msgpack::object* o = lookup(name, Need::optional);
        if (o == nullptr) return;
        if (o->type != msgpack::type::BOOLEAN) {
            return fail(ErrorCode::bad_request, quoted(name) + " must be a boolean");
        }
        out = o->via.boolean;
    }

    void consistency(std::string_view count_name, Consistency& out) {
        if (const msgpack::object* o = lookup("cl", Need::optional); o != nullptr) {
            if (o->type != msgpack::type::STR) {
                return fail(ErrorCode::bad_request, quoted("cl") + " must be str");
            }
            auto level = level_from_name(view(*o));
            if (!level) {
                return fail(
                    ErrorCode::invalid_argument,
                    "unknown consistency level \"" + std::string(view(*o)).substr(0, 32) + "\"");
            }
            out.level = *level;
        }
        uint(count_name, out.count, Need::optional, kReplicasMax, ErrorCode::invalid_argument);
        flag("strict", out.strict);
    }

    void deadline(uint64_t& out) {
        uint("deadline_ms", out, Need::optional, kDeadlineMsMax, ErrorCode::invalid_argument);
    }

    // A code this build does not know (sent by a newer peer) reads as internal,
    // keeping the rest of the response (its id, its message) usable.
    void code(ErrorCode& out) {
        uint64_t number = 0;
        uint("code", number, Need::required);
        if (ok())
            out = is_known_error(number) ? static_cast<ErrorCode>(number) : ErrorCode::internal;
    }

    void message(std::string& out) { text("msg", out, Need::optional, kMessageTextBytesMax); }

    void values(std::vector<std::string>& out) {
        const msgpack::object* o = lookup("vals", Need::optional);
        if (o == nullptr) return;
        if (o->type != msgpack::type::ARRAY) {
            return fail(ErrorCode::bad_request, quoted("vals") + " must be an array");
        }
        if (o->via.array.size > kArrayItemsMax) {
            return fail(ErrorCode::bad_request, quoted("vals") + " has too many items");
        }
        out.reserve(o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; ++i) {
            const msgpack::object& item = o->via.array.ptr[i];
            if (item.type != msgpack::type::BIN && item.type != msgpack::type::STR) {
                return fail(ErrorCode::bad_request, "items of " + quoted("vals") + " must be bin");
            }
            if (item.via.bin.size > kValueBytesMax) {
                return fail(ErrorCode::value_too_large, "a value of " + quoted("vals") +
                                                            " is longer than " +
                                                            std::to_string(kValueBytesMax));
            }
            out.emplace_back(view(item));
        }
    }

    // An array of byte strings, each at most item_bytes_max.
    void bytes_list(std::string_view name, std::vector<std::string>& out, size_t item_bytes_max,
                    ErrorCode too_large) {
        const msgpack::object* o = lookup(name, Need::optional);
        if (o == nullptr) return;
        if (o->type != msgpack::type::ARRAY) {
            return fail(ErrorCode::bad_request, quoted(name) + " must be an array");
        }
        out.reserve(o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; ++i) {
            const msgpack::object& item = o->via.array.ptr[i];
            if (item.type != msgpack::type::BIN && item.type != msgpack::type::STR) {
                return fail(ErrorCode::bad_request, "items of " + quoted(name) + " must be bin");
            }
            if (item.via.bin.size > item_bytes_max) {
                return fail(too_large, "an item of " + quoted(name) + " is longer than " +
                                           std::to_string(item_bytes_max));
            }
            out.emplace_back(view(item));
        }
    }

    void text_list(std::string_view name, std::vector<std::string>& out, size_t items_max) {
        const msgpack::object* o = lookup(name, Need::optional);
        if (o == nullptr) return;
        if (o->type != msgpack::type::ARRAY || o->via.array.size > items_max) {
            return fail(ErrorCode::bad_request, quoted(name) + " must be an array of at most " +
                                                    std::to_string(items_max) + " str");
        }
        for (uint32_t i = 0; i < o->via.array.size; ++i) {
            const msgpack::object& item = o->via.array.ptr[i];
            if (item.type != msgpack::type::STR || item.via.str.size > kIdBytesMax) {
                return fail(ErrorCode::bad_request, "items of " + quoted(name) +
                                                        " must be str of at most " +
                                                        std::to_string(kIdBytesMax) + " bytes");
            }
            out.emplace_back(view(item));
        }
    }

    void ranges(std::vector<TokenRange>& out) {
        const msgpack::object* o = lookup("ranges", Need::required);
        if (o == nullptr) return;
        if (o->type != msgpack::type::ARRAY || o->via.array.size % 2 != 0 ||
            o->via.array.size > 2 * kTransferRangesMax) {
            return fail(ErrorCode::bad_request,
                        quoted("ranges") + " must be an array of start, end pairs, at most " +
                            std::to_string(kTransferRangesMax));
        }
        for (uint32_t i = 0; i < o->via.array.size; i += 2) {
            const msgpack::object& a = o->via.array.ptr[i];
            const msgpack::object& b = o->via.array.ptr[i + 1];
            if (a.type != msgpack::type::POSITIVE_INTEGER ||
                b.type != msgpack::type::POSITIVE_INTEGER) {
                return fail(ErrorCode::bad_request,
                            "items of " + quoted("ranges") + " must be unsigned integers");
            }
            out.push_back(TokenRange{a.via.u64, b.via.u64});
        }
    }

    void transfers(std::vector<TransferStatus>& out) {
        const msgpack::object* o = lookup("transfers", Need::optional);
        if (o == nullptr) return;
        if (o->type != msgpack::type::ARRAY) {
            return fail(ErrorCode::bad_request, quoted("transfers") + " must be an array");
        }
        for (uint32_t i = 0; i < o->via.array.size && ok(); ++i) {
            const msgpack::object& item = o->via.array.ptr[i];
            if (item.type != msgpack::type::MAP) {
                return fail(ErrorCode::bad_request,
                            "items of " + quoted("transfers") + " must be maps");
            }
            FieldReader sub(item.via.map);
            TransferStatus& t = out.emplace_back();
            sub.text("peer", t.peer, Need::required, kIdBytesMax);
            sub.text("dir", t.direction, Need::optional, kIdBytesMax);
            sub.text("state", t.state, Need::optional, kIdBytesMax);
            sub.uint("ranges", t.ranges, Need::optional);
            sub.uint("keys", t.keys, Need::optional);
            adopt(sub, "transfers[" + std::to_string(i) + "]");
        }
    }

    void info(ReplyInfo& out) {
        const msgpack::object* o = lookup("info", Need::optional);
        if (o == nullptr) return;
        if (o->type != msgpack::type::MAP) {
            return fail(ErrorCode::bad_request, quoted("info") + " must be a map");
        }
        FieldReader sub(o->via.map);
        sub.uint("asked", out.replicas_asked, Need::optional);
        sub.uint("answered", out.replicas_answered, Need::optional);
        sub.flag("stand_in", out.stand_in_used);
        sub.uint("siblings", out.sibling_count, Need::optional);
        adopt(sub, "info");
    }

    void members(std::vector<MemberStatus>& out) {
        const msgpack::object* o = lookup("members", Need::optional);
        if (o == nullptr) return;
        if (o->type != msgpack::type::ARRAY) {
            return fail(ErrorCode::bad_request, quoted("members") + " must be an array");
        }
        out.reserve(o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size && ok(); ++i) {
            const msgpack::object& item = o->via.array.ptr[i];
            if (item.type != msgpack::type::MAP) {
                return fail(ErrorCode::bad_request,
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
            adopt(sub, "members[" + std::to_string(i) + "]");
        }
    }

  private:
    static std::string_view view(const msgpack::object& o) {
        // str and bin share one layout in msgpack::object's union.
        return {o.via.str.ptr, o.via.str.size};
    }

    // The field's value; nullptr when absent (a failure if required) or when
    // an earlier field already failed.
    const msgpack::object* lookup(std::string_view name, Need need) {
        if (!ok()) return nullptr;
        const msgpack::object* o = find(name);
        if (o == nullptr && need == Need::required) {
            fail(ErrorCode::bad_request, "missing " + quoted(name));
        }
        return o;
    }

    void adopt(const FieldReader& sub, const std::string& path) {
        if (!sub.ok()) fail(sub.status().code(), path + ": " + sub.status().message());
    }

    // Two readers of one frame must never disagree about which duplicate
    // counts, so duplicates are refused outright.
    void reject_duplicates() {
        for (uint32_t i = 0; i < map_.size; ++i) {
            const msgpack::object& a = map_.ptr[i].key;
            if (a.type != msgpack::type::STR) continue;
            for (uint32_t j = i + 1; j < map_.size; ++j) {
                const msgpack::object& b = map_.ptr[j].key;
                if (b.type == msgpack::type::STR && view(a) == view(b)) {
                    return fail(ErrorCode::bad_request, "duplicate " + quoted(view(a)));
                }
            }
        }
    }

    const msgpack::object_map& map_;
    Status status_;
};

// One overload per alternative; kDecoders below instantiates all of them, so
// a missing one fails to compile.
void read_fields(FieldReader& f, GetRequest& m) {
    f.key(m.key);
    f.consistency("r", m.consistency);
    f.deadline(m.deadline_ms);
}
void read_fields(FieldReader& f, PutRequest& m) {
    f.key(m.key);
    f.bytes("val", m.value, Need::required, kValueBytesMax, ErrorCode::value_too_large);
    f.optional_bytes("ctx", m.context, kContextBytesMax, ErrorCode::bad_context);
    f.consistency("w", m.consistency);
    f.deadline(m.deadline_ms);
}
void read_fields(FieldReader& f, DelRequest& m) {
    f.key(m.key);
    f.optional_bytes("ctx", m.context, kContextBytesMax, ErrorCode::bad_context);
    f.consistency("w", m.consistency);
    f.deadline(m.deadline_ms);
}
void read_fields(FieldReader& f, LocalGetRequest& m) {
    f.key(m.key);
}
void read_fields(FieldReader&, StatusRequest&) {}
void read_fields(FieldReader& f, GetResponse& m) {
    f.code(m.code);
    f.message(m.message);
    f.values(m.values);
    f.bytes("ctx", m.context, Need::optional, kContextBytesMax, ErrorCode::bad_context);
    f.info(m.info);
}
void read_fields(FieldReader& f, WriteResponse& m) {
    f.code(m.code);
    f.message(m.message);
    f.bytes("ctx", m.context, Need::optional, kContextBytesMax, ErrorCode::bad_context);
    f.info(m.info);
}
void read_fields(FieldReader& f, StatusResponse& m) {
    f.text("node", m.node_id, Need::required, kIdBytesMax);
    f.uint("n", m.n_replicas, Need::required);
    f.members(m.members);
    f.uint("keys_stored", m.keys_stored, Need::optional);
    f.transfers(m.transfers);
}
void read_fields(FieldReader& f, ErrorResponse& m) {
    f.code(m.code);
    f.message(m.message);
}
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
}
void read_fields(FieldReader& f, ReplicaWriteResponse& m) {
    f.code(m.code);
    f.message(m.message);
    f.bytes("obj", m.object, Need::optional, kObjectBytesMax, ErrorCode::object_too_large);
}
void read_fields(FieldReader& f, ReplicaMergeRequest& m) {
    f.key(m.key);
    f.bytes("obj", m.object, Need::required, kObjectBytesMax, ErrorCode::object_too_large);
    f.text_list("targets", m.targets, 2 * kReplicasMax);
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
void read_fields(FieldReader&, LeaveRequest&) {}
void read_fields(FieldReader& f, AdminResponse& m) {
    f.code(m.code);
    f.message(m.message);
}
void read_fields(FieldReader& f, StreamRequest& m) {
    f.text("from", m.from_node, Need::required, kIdBytesMax);
    f.uint("ring", m.ring_digest, Need::required);
    f.ranges(m.ranges);
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
    f.ranges(m.ranges);
}
void read_fields(FieldReader& f, HandoffResponse& m) {
    f.code(m.code);
    f.message(m.message);
}

using Decoder = Message (*)(FieldReader&, uint64_t);

template <size_t I>
Message decode_alternative(FieldReader& f, uint64_t id) {
    std::variant_alternative_t<I, Message> m;
    m.id = id;
    read_fields(f, m);
    return Message(std::in_place_index<I>, std::move(m));
}

template <size_t... Is>
constexpr std::array<Decoder, sizeof...(Is)> make_decoders(std::index_sequence<Is...>) {
    return {&decode_alternative<Is>...};
}
constexpr auto kDecoders = make_decoders(std::make_index_sequence<kAlternatives>{});

std::optional<size_t> type_index(std::string_view name) {
    for (size_t i = 0; i < kTypeNames.size(); ++i) {
        if (kTypeNames[i] == name) return i;
    }
    return std::nullopt;
}

// The header fields, then the body of the type "t" names. `id` was already
// taken from the pre-pass.
Result<Message> decode_map(const msgpack::object_map& map, uint64_t id) {
    FieldReader f(map);
    uint64_t parsed_id = 0;
    f.uint("id", parsed_id, Need::required);
    if (!f.ok()) return f.status();
    assert(parsed_id == id);

    const msgpack::object* version = f.find("v");
    if (version == nullptr || (version->type != msgpack::type::POSITIVE_INTEGER &&
                               version->type != msgpack::type::NEGATIVE_INTEGER)) {
        return Status(ErrorCode::bad_request, "missing or non-integer field \"v\"");
    }
    if (version->type != msgpack::type::POSITIVE_INTEGER || version->via.u64 != kProtocolVersion) {
        return Status(ErrorCode::unsupported_version,
                      "this node speaks protocol version " + std::to_string(kProtocolVersion));
    }

    std::string type;
    f.text("t", type, Need::required, kIdBytesMax);
    if (!f.ok()) return f.status();
    std::optional<size_t> index = type_index(type);
    if (!index) return Status(ErrorCode::unknown_type, "unknown message type \"" + type + "\"");

    Message message = kDecoders[*index](f, id);
    if (!f.ok()) return f.status();
    return message;
}

Result<Message> decode_checked(std::string_view frame, uint64_t& id) {
    if (frame.size() > kFrameBytesMax) {
        FrameScan probe(/*stop_at_id=*/true);
        msgpack::parse(frame.data(), frame.size(), probe);
        id = probe.id().value_or(0);
        return Status(ErrorCode::message_too_large,
                      "frame larger than " + std::to_string(kFrameBytesMax) + " bytes");
    }

    FrameScan scan(/*stop_at_id=*/false);
    size_t scanned_bytes = 0;
    bool parsed = msgpack::parse(frame.data(), frame.size(), scanned_bytes, scan);
    id = scan.id().value_or(0);
    if (!parsed) return scan_failure_status(scan.failure());
    if (scanned_bytes != frame.size()) {
        return Status(ErrorCode::bad_request, "trailing bytes after the message map");
    }

    size_t offset = 0;
    msgpack::object_handle handle = msgpack::unpack(frame.data(), frame.size(), offset,
                                                    &reference_frame, nullptr, kUnpackLimit);
    if (offset != frame.size()) {
        return Status(ErrorCode::bad_request, "trailing bytes after the message map");
    }
    const msgpack::object& root = handle.get();
    if (root.type != msgpack::type::MAP) {
        return Status(ErrorCode::bad_request, "a message must be a msgpack map");
    }
    return decode_map(root.via.map, id);
}

}  // namespace

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
    return kTypeNames[m.index()];
}

uint64_t request_id(const Message& m) {
    return std::visit([](const auto& msg) { return msg.id; }, m);
}

std::string encode(const Message& m) {
    std::string_view type = type_name(m);
    return std::visit([type](const auto& msg) { return encode_as(msg, type); }, m);
}

Result<Message> decode(std::string_view frame, uint64_t* id_out) {
    uint64_t id = 0;
    Result<Message> result = Status(ErrorCode::internal, "decode did not finish");
    // Nothing may escape: msgpack throws for limits and malformed input, and
    // allocation can fail; each becomes a Status for the sender.
    try {
        result = decode_checked(frame, id);
    } catch (const msgpack::insufficient_bytes&) {
        result = Status(ErrorCode::bad_request, "truncated msgpack");
    } catch (const msgpack::size_overflow& e) {
        result = Status(ErrorCode::bad_request, std::string("msgpack limit exceeded: ") + e.what());
    } catch (const msgpack::unpack_error& e) {
        result = Status(ErrorCode::bad_request, std::string("malformed msgpack: ") + e.what());
    } catch (const std::bad_alloc&) {
        result = Status(ErrorCode::overloaded, "out of memory decoding a frame");
    } catch (const std::exception& e) {
        result = Status(ErrorCode::bad_request, std::string("undecodable frame: ") + e.what());
    } catch (...) {
        result = Status(ErrorCode::internal, "unexpected exception decoding a frame");
    }
    if (id_out != nullptr) *id_out = id;
    return result;
}

}  // namespace kv::proto
