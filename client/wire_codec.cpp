#include "client/wire_codec.h"

#include <cstring>
#include <new>

#include "client/zone_lease.h"

namespace kv::proto::wire {

namespace {

// Reads one msgpack value into msgpack::objects in a zone in a single pass,
// enforcing as it goes what a frame may hold: nesting depth, per-container
// sizes, the whole-frame object budget and str/bin/ext lengths. Each check is
// made where msgpack's own parser would reach it (a container's at its
// header, a string's once its bytes are known to be there), so the first
// failure in the frame is the one reported. What it allocates before a
// failure is bounded by the object budget (kFrameObjectsMax objects), never
// by a declared length. str, bin and ext objects point into the frame. It
// also picks up the top-level "id" so that even a frame refused later
// (truncated, too deep, too large) can be answered with its request id.
class FrameReader {
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

    // With stop_at_id the read ends (unfinished, no failure) once the id is known.
    FrameReader(std::string_view frame, msgpack::zone& zone, bool stop_at_id)
        : at_(frame.data()),
          end_(frame.data() + frame.size()),
          zone_(zone),
          stop_at_id_(stop_at_id) {}

    // True when one whole value was read into `root`.
    bool read_root(msgpack::object& root) { return read(root, 0, Slot::other); }

    Failure failure() const { return failure_; }
    std::optional<uint64_t> id() const { return id_; }
    // Bytes not yet read (after a successful read_root: trailing bytes).
    size_t bytes_left() const { return static_cast<size_t>(end_ - at_); }

  private:
    // Where a value sits: a top-level map's key, the value of its "id" key, or
    // anywhere else.
    enum class Slot { top_key, id_value, other };

    bool fail(Failure f) {
        failure_ = f;
        return false;
    }
    bool have(size_t bytes) const { return bytes_left() >= bytes; }

    template <typename U>
    U load_be() {
        U v;
        std::memcpy(&v, at_, sizeof(U));
        at_ += sizeof(U);
        if constexpr (sizeof(U) == 2) v = __builtin_bswap16(v);
        if constexpr (sizeof(U) == 4) v = __builtin_bswap32(v);
        if constexpr (sizeof(U) == 8) v = __builtin_bswap64(v);
        return v;
    }
    // A length of `width` bytes after the type byte; false (truncated) when
    // the bytes are not there.
    bool length(size_t width, uint32_t& out) {
        if (!have(width)) return fail(Failure::truncated);
        if (width == 1) out = load_be<uint8_t>();
        if (width == 2) out = load_be<uint16_t>();
        if (width == 4) out = load_be<uint32_t>();
        return true;
    }

    bool unsigned_value(uint64_t v, Slot slot, msgpack::object& out) {
        out.type = msgpack::type::POSITIVE_INTEGER;
        out.via.u64 = v;
        if (slot == Slot::id_value && !id_) {
            id_ = v;
            if (stop_at_id_) return false;
        }
        return true;
    }
    // msgpack's signed formats may hold a non-negative value: it reads as
    // unsigned, as msgpack-c reads it (encoders of languages without unsigned
    // types write ids so).
    bool signed_value(int64_t v, Slot slot, msgpack::object& out) {
        if (v >= 0) return unsigned_value(static_cast<uint64_t>(v), slot, out);
        out.type = msgpack::type::NEGATIVE_INTEGER;
        out.via.i64 = v;
        return true;
    }
    template <typename U>
    bool read_unsigned(Slot slot, msgpack::object& out) {
        if (!have(sizeof(U))) return fail(Failure::truncated);
        return unsigned_value(load_be<U>(), slot, out);
    }
    template <typename U>
    bool read_signed(Slot slot, msgpack::object& out) {
        if (!have(sizeof(U))) return fail(Failure::truncated);
        using S = std::make_signed_t<U>;
        return signed_value(static_cast<S>(load_be<U>()), slot, out);
    }

    // The body of a str or bin of `size` bytes. Either may be as large as a
    // whole frame here, so that each field's own check answers with its
    // precise code (value_too_large, object_too_large, ...); that costs nothing
    // more, as the object points into the frame instead of copying it.
    bool bytes(msgpack::type::object_type type, uint32_t size, Slot slot, msgpack::object& out) {
        if (!have(size)) return fail(Failure::truncated);
        if (size > kFrameBytesMax) return fail(Failure::string_too_long);
        out.type = type;
        out.via.str.ptr = at_;  // str and bin share one layout
        out.via.str.size = size;
        if (slot == Slot::top_key) {
            key_is_id_ = type == msgpack::type::STR && std::string_view(at_, size) == "id";
        }
        at_ += size;
        return true;
    }
    // An ext of `size` data bytes after its type byte.
    bool ext(uint32_t size, msgpack::object& out) {
        const uint64_t with_type = uint64_t{size} + 1;
        if (!have(with_type)) return fail(Failure::truncated);
        if (with_type > kIdBytesMax) return fail(Failure::string_too_long);
        out.type = msgpack::type::EXT;
        out.via.ext.ptr = at_;
        out.via.ext.size = size;
        at_ += with_type;
        return true;
    }

    bool enter(size_t objects, size_t depth) {
        if (depth + 1 > kNestingDepthMax) return fail(Failure::too_deep);
        objects_ += objects;
        if (objects_ > kFrameObjectsMax) return fail(Failure::too_many_objects);
        return true;
    }
    bool array(uint32_t items, size_t depth, msgpack::object& out) {
        if (items > kArrayItemsMax) return fail(Failure::container_too_long);
        if (!enter(items, depth)) return false;
        out.type = msgpack::type::ARRAY;
        out.via.array.size = 0;
        out.via.array.ptr =
            items == 0
                ? nullptr
                : static_cast<msgpack::object*>(zone_.allocate_align(
                      sizeof(msgpack::object) * items, MSGPACK_ZONE_ALIGNOF(msgpack::object)));
        for (uint32_t i = 0; i < items; ++i) {
            if (!read(out.via.array.ptr[i], depth + 1, Slot::other)) return false;
            out.via.array.size = i + 1;
        }
        return true;
    }
    bool map(uint32_t pairs, size_t depth, msgpack::object& out) {
        if (pairs > kMapItemsMax) return fail(Failure::container_too_long);
        if (!enter(size_t{2} * pairs, depth)) return false;
        out.type = msgpack::type::MAP;
        out.via.map.size = 0;
        out.via.map.ptr = pairs == 0 ? nullptr
                                     : static_cast<msgpack::object_kv*>(zone_.allocate_align(
                                           sizeof(msgpack::object_kv) * pairs,
                                           MSGPACK_ZONE_ALIGNOF(msgpack::object_kv)));
        const bool top = depth == 0;
        for (uint32_t i = 0; i < pairs; ++i) {
            msgpack::object_kv& kv = out.via.map.ptr[i];
            key_is_id_ = false;
            if (!read(kv.key, depth + 1, top ? Slot::top_key : Slot::other)) return false;
            const Slot value_slot = top && key_is_id_ ? Slot::id_value : Slot::other;
            if (!read(kv.val, depth + 1, value_slot)) return false;
            out.via.map.size = i + 1;
        }
        return true;
    }

    // One value at `depth` (the number of containers around it).
    bool read(msgpack::object& out, size_t depth, Slot slot) {
        if (!have(1)) return fail(Failure::truncated);
        const uint8_t head = static_cast<uint8_t>(*at_++);
        if (head <= 0x7f) return unsigned_value(head, slot, out);
        if (head >= 0xe0) return signed_value(static_cast<int8_t>(head), slot, out);
        if (head >= 0xa0 && head <= 0xbf) return bytes(msgpack::type::STR, head & 0x1f, slot, out);
        if (head >= 0x90 && head <= 0x9f) return array(head & 0x0f, depth, out);
        if (head >= 0x80 && head <= 0x8f) return map(head & 0x0f, depth, out);
        uint32_t n = 0;
        switch (head) {
            case 0xc0:
                out.type = msgpack::type::NIL;
                return true;
            case 0xc2:
            case 0xc3:
                out.type = msgpack::type::BOOLEAN;
                out.via.boolean = head == 0xc3;
                return true;
            case 0xc4:
            case 0xc5:
            case 0xc6:
                return length(size_t{1} << (head - 0xc4), n) &&
                       bytes(msgpack::type::BIN, n, slot, out);
            case 0xc7:
            case 0xc8:
            case 0xc9:
                return length(size_t{1} << (head - 0xc7), n) && ext(n, out);
            case 0xca: {
                if (!have(4)) return fail(Failure::truncated);
                const uint32_t bits = load_be<uint32_t>();
                float f;
                std::memcpy(&f, &bits, sizeof f);
                out.type = msgpack::type::FLOAT32;
                out.via.f64 = f;
                return true;
            }
            case 0xcb: {
                if (!have(8)) return fail(Failure::truncated);
                const uint64_t bits = load_be<uint64_t>();
                double d;
                std::memcpy(&d, &bits, sizeof d);
                out.type = msgpack::type::FLOAT64;
                out.via.f64 = d;
                return true;
            }
            case 0xcc:
                return read_unsigned<uint8_t>(slot, out);
            case 0xcd:
                return read_unsigned<uint16_t>(slot, out);
            case 0xce:
                return read_unsigned<uint32_t>(slot, out);
            case 0xcf:
                return read_unsigned<uint64_t>(slot, out);
            case 0xd0:
                return read_signed<uint8_t>(slot, out);
            case 0xd1:
                return read_signed<uint16_t>(slot, out);
            case 0xd2:
                return read_signed<uint32_t>(slot, out);
            case 0xd3:
                return read_signed<uint64_t>(slot, out);
            case 0xd4:
            case 0xd5:
            case 0xd6:
            case 0xd7:
            case 0xd8:
                return ext(uint32_t{1} << (head - 0xd4), out);
            case 0xd9:
            case 0xda:
            case 0xdb:
                return length(size_t{1} << (head - 0xd9), n) &&
                       bytes(msgpack::type::STR, n, slot, out);
            case 0xdc:
            case 0xdd:
                return length(size_t{2} << (head - 0xdc), n) && array(n, depth, out);
            case 0xde:
            case 0xdf:
                return length(size_t{2} << (head - 0xde), n) && map(n, depth, out);
            default:  // 0xc1, never used
                return fail(Failure::malformed);
        }
    }

    const char* at_;
    const char* end_;
    msgpack::zone& zone_;
    bool stop_at_id_;
    Failure failure_ = Failure::none;
    size_t objects_ = 0;
    bool key_is_id_ = false;
    std::optional<uint64_t> id_;
};

Status read_failure_status(FrameReader::Failure f) {
    switch (f) {
        case FrameReader::Failure::truncated:
            return {ErrorCode::bad_request, "truncated msgpack"};
        case FrameReader::Failure::malformed:
        case FrameReader::Failure::none:
            return {ErrorCode::bad_request, "malformed msgpack"};
        case FrameReader::Failure::too_deep:
            return {ErrorCode::bad_request,
                    "nesting deeper than " + std::to_string(kNestingDepthMax)};
        case FrameReader::Failure::container_too_long:
            return {ErrorCode::bad_request, "array longer than " + std::to_string(kArrayItemsMax) +
                                                " items or map longer than " +
                                                std::to_string(kMapItemsMax) + " entries"};
        case FrameReader::Failure::too_many_objects:
            return {ErrorCode::bad_request,
                    "more than " + std::to_string(kFrameObjectsMax) + " objects in one frame"};
        case FrameReader::Failure::string_too_long:
            return {ErrorCode::bad_request, "str, bin or ext longer than allowed"};
    }
    return {ErrorCode::internal, "unhandled read failure"};
}

// The header fields, then the body of the type "t" names. `id` was already
// picked up by the read.
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
    ZoneLease lease;
    msgpack::object root;
    Status read = read_frame(frame, lease.zone(), root, id);
    if (!read.ok()) return read;
    if (root.type != msgpack::type::MAP) {
        return Status(ErrorCode::bad_request, "a message must be a msgpack map");
    }
    return decode_map(root.via.map, id, body);
}

}  // namespace

Status read_frame(std::string_view frame, msgpack::zone& zone, msgpack::object& root,
                  uint64_t& id) {
    if (frame.size() > kFrameBytesMax) {
        FrameReader probe(frame, zone, /*stop_at_id=*/true);
        probe.read_root(root);
        id = probe.id().value_or(0);
        return Status(ErrorCode::message_too_large,
                      "frame larger than " + std::to_string(kFrameBytesMax) + " bytes");
    }
    FrameReader reader(frame, zone, /*stop_at_id=*/false);
    const bool read = reader.read_root(root);
    id = reader.id().value_or(0);
    if (!read) return read_failure_status(reader.failure());
    if (reader.bytes_left() != 0) {
        return Status(ErrorCode::bad_request, "trailing bytes after the message map");
    }
    return Status();
}

Status decode_frame(std::string_view frame, uint64_t* id_out, const FrameBody& body) {
    uint64_t id = 0;
    Status result(ErrorCode::internal, "decode did not finish");
    // Nothing may escape: allocation can fail, and a message's own reader
    // may throw; each becomes a Status for the sender.
    try {
        result = decode_checked(frame, id, body);
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
    out.reserve(out.size() + o->via.array.size);  // one allocation, not one per doubling
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
