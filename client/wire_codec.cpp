#include "client/wire_codec.h"

#include <new>

#include "client/zone_lease.h"

namespace kv::proto::wire {

namespace {

// Byte strings may be as large as a whole frame at the msgpack level so that
// the per-field checks can answer with the precise code (value_too_large,
// object_too_large, ...); they cost nothing more because decode references the
// frame instead of copying (see reference_frame).
const msgpack::unpack_limit kUnpackLimit(kArrayItemsMax, kMapItemsMax, kFrameBytesMax,
                                         kFrameBytesMax, kIdBytesMax, kNestingDepthMax);

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
    // msgpack's signed formats (int 8..64) arrive here whatever their sign;
    // encoders of languages without unsigned types (Java, JavaScript) write a
    // non-negative id so, and it is the same id as in an unsigned format.
    bool visit_negative_integer(int64_t v) {
        if (v >= 0) return visit_positive_integer(static_cast<uint64_t>(v));
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

// The header fields, then the body of the type "t" names. `id` was already
// taken from the pre-pass.
Status decode_map(const msgpack::object_map& map, uint64_t id, const FrameBody& body) {
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

    const std::optional<std::string_view> type = f.text_view("t", Need::required, kIdBytesMax);
    if (!type) return f.status();
    return body(*type, id, f);
}

Status decode_checked(std::string_view frame, uint64_t& id, const FrameBody& body) {
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
    ZoneLease lease;
    const msgpack::object root = msgpack::unpack(lease.zone(), frame.data(), frame.size(), offset,
                                                 &reference_frame, nullptr, kUnpackLimit);
    if (offset != frame.size()) {
        return Status(ErrorCode::bad_request, "trailing bytes after the message map");
    }
    if (root.type != msgpack::type::MAP) {
        return Status(ErrorCode::bad_request, "a message must be a msgpack map");
    }
    return decode_map(root.via.map, id, body);
}

}  // namespace

Status decode_frame(std::string_view frame, uint64_t* id_out, const FrameBody& body) {
    uint64_t id = 0;
    Status result(ErrorCode::internal, "decode did not finish");
    // Nothing may escape: msgpack throws for limits and malformed input, and
    // allocation can fail; each becomes a Status for the sender.
    try {
        result = decode_checked(frame, id, body);
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

// ---- encoding ----------------------------------------------------------------

void pack_text(Packer& packer, std::string_view s) {
    packer.pack_str(static_cast<uint32_t>(s.size()));
    packer.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void pack_header(Packer& packer, std::string_view type, uint64_t id, uint32_t fields) {
    packer.pack_map(3 + fields);
    packer.pack_str(1).pack_str_body("v", 1).pack_uint32(kProtocolVersion);
    packer.pack_str(1).pack_str_body("t", 1);
    packer.pack_str(static_cast<uint32_t>(type.size()))
        .pack_str_body(type.data(), static_cast<uint32_t>(type.size()));
    packer.pack_str(2).pack_str_body("id", 2).pack_uint64(id);
}

bool FieldWriter::begin(std::string_view name, size_t value_bytes) {
    ++count_;
    bytes_estimate_ += name.size() + value_bytes + 10;
    if (packer_ == nullptr) return false;
    pack_text(*packer_, name);
    return true;
}

void FieldWriter::bytes(std::string_view name, std::string_view value) {
    if (begin(name, value.size())) {
        packer_->pack_bin(static_cast<uint32_t>(value.size()));
        packer_->pack_bin_body(value.data(), static_cast<uint32_t>(value.size()));
    }
}

void FieldWriter::text(std::string_view name, std::string_view value) {
    if (begin(name, value.size())) pack_text(*packer_, value);
}

void FieldWriter::uint(std::string_view name, uint64_t value) {
    if (begin(name, 0)) packer_->pack_uint64(value);
}

void FieldWriter::flag_if_true(std::string_view name, bool value) {
    if (value && begin(name, 0)) packer_->pack_true();
}

void FieldWriter::bytes_list(std::string_view name, const std::vector<std::string>& values) {
    size_t total = 0;
    for (const auto& v : values) total += v.size() + 5;
    if (!begin(name, total)) return;
    packer_->pack_array(static_cast<uint32_t>(values.size()));
    for (const auto& v : values) {
        packer_->pack_bin(static_cast<uint32_t>(v.size()));
        packer_->pack_bin_body(v.data(), static_cast<uint32_t>(v.size()));
    }
}

void FieldWriter::text_list(std::string_view name, const std::vector<std::string>& values) {
    if (values.empty()) return;
    size_t total = 0;
    for (const auto& v : values) total += v.size() + 5;
    if (!begin(name, total)) return;
    packer_->pack_array(static_cast<uint32_t>(values.size()));
    for (const auto& v : values) pack_text(*packer_, v);
}

// ---- decoding: fields of a map --------------------------------------------------

std::string quoted(std::string_view name) {
    std::string s = "field \"";
    s += name;
    s += '"';
    return s;
}

FieldReader::FieldReader(const msgpack::object_map& map) : map_(map) {
    reject_duplicates();
}

const msgpack::object* FieldReader::find(std::string_view name) const {
    for (uint32_t i = 0; i < map_.size; ++i) {
        const msgpack::object& key = map_.ptr[i].key;
        if (key.type == msgpack::type::STR && view(key) == name) return &map_.ptr[i].val;
    }
    return nullptr;
}

const msgpack::object* FieldReader::lookup(std::string_view name, Need need) {
    if (!ok()) return nullptr;
    const msgpack::object* o = find(name);
    if (o == nullptr && need == Need::required) {
        fail(ErrorCode::bad_request, "missing " + quoted(name));
    }
    return o;
}

void FieldReader::adopt(const FieldReader& sub, const std::string& path) {
    if (!sub.ok()) fail(sub.status().code(), path + ": " + sub.status().message());
}

void FieldReader::key(std::string& out) {
    bytes("key", out, Need::required, kKeyBytesMax, ErrorCode::key_too_large);
    if (ok() && out.empty()) fail(ErrorCode::invalid_argument, "empty key");
}

void FieldReader::bytes(std::string_view name, std::string& out, Need need, size_t bytes_max,
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

void FieldReader::optional_bytes(std::string_view name, std::optional<std::string>& out,
                                 size_t bytes_max, ErrorCode too_large) {
    if (!ok() || find(name) == nullptr) return;
    out.emplace();
    bytes(name, *out, Need::required, bytes_max, too_large);
}

void FieldReader::text(std::string_view name, std::string& out, Need need, size_t bytes_max) {
    if (auto v = text_view(name, need, bytes_max)) out.assign(*v);
}

std::optional<std::string_view> FieldReader::text_view(std::string_view name, Need need,
                                                       size_t bytes_max) {
    const msgpack::object* o = lookup(name, need);
    if (o == nullptr) return std::nullopt;
    if (o->type != msgpack::type::STR) {
        fail(ErrorCode::bad_request, quoted(name) + " must be str");
        return std::nullopt;
    }
    std::string_view v = view(*o);
    if (v.size() > bytes_max) {
        fail(ErrorCode::bad_request,
             quoted(name) + " longer than " + std::to_string(bytes_max) + " bytes");
        return std::nullopt;
    }
    return v;
}

void FieldReader::flag(std::string_view name, bool& out) {
    const msgpack::object* o = lookup(name, Need::optional);
    if (o == nullptr) return;
    if (o->type != msgpack::type::BOOLEAN) {
        return fail(ErrorCode::bad_request, quoted(name) + " must be a boolean");
    }
    out = o->via.boolean;
}

void FieldReader::code(ErrorCode& out) {
    uint64_t number = 0;
    uint("code", number, Need::required);
    if (ok()) out = is_known_error(number) ? static_cast<ErrorCode>(number) : ErrorCode::internal;
}

void FieldReader::bytes_list(std::string_view name, std::vector<std::string>& out,
                             size_t item_bytes_max, ErrorCode too_large) {
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

void FieldReader::text_list(std::string_view name, std::vector<std::string>& out,
                            size_t items_max) {
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

void FieldReader::reject_duplicates() {
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

}  // namespace kv::proto::wire
