// wire::read_frame, the one-pass reader every frame goes through, against the
// reader it replaced: an allocation-free pre-pass (a msgpack visitor checking
// depth, container sizes, the object budget and string lengths, and picking up
// the top-level "id"), then msgpack::unpack into a zone. On well-formed frames
// of every msgpack type in every width, on hand-built edge cases and on random
// edits of both, the two must agree on the outcome (code and message), on the
// id, and on the tree they read.
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include "client/protocol.h"
#include "client/wire_codec.h"
#include "tests/unit/wire_frames.h"

namespace {

using namespace kv;
using namespace kv::proto;

// ---- the reference: pre-pass, then msgpack::unpack -------------------------------

namespace reference {

const msgpack::unpack_limit kUnpackLimit(kArrayItemsMax, kMapItemsMax, kFrameBytesMax,
                                         kFrameBytesMax, kIdBytesMax, kNestingDepthMax);

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

bool reference_frame(msgpack::type::object_type, size_t, void*) {
    return true;
}

Status read_frame_checked(std::string_view frame, msgpack::zone& zone, msgpack::object& root,
                          uint64_t& id) {
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
    root = msgpack::unpack(zone, frame.data(), frame.size(), offset, &reference_frame, nullptr,
                           kUnpackLimit);
    if (offset != frame.size()) {
        return Status(ErrorCode::bad_request, "trailing bytes after the message map");
    }
    return Status();
}

// As decode_frame turned msgpack's exceptions into a Status.
Status read_frame(std::string_view frame, msgpack::zone& zone, msgpack::object& root,
                  uint64_t& id) {
    id = 0;
    try {
        return read_frame_checked(frame, zone, root, id);
    } catch (const msgpack::insufficient_bytes&) {
        return Status(ErrorCode::bad_request, "truncated msgpack");
    } catch (const msgpack::size_overflow& e) {
        return Status(ErrorCode::bad_request, std::string("msgpack limit exceeded: ") + e.what());
    } catch (const msgpack::unpack_error& e) {
        return Status(ErrorCode::bad_request, std::string("malformed msgpack: ") + e.what());
    }
}

}  // namespace reference

// ---- comparing the two --------------------------------------------------------------

// Deep equality of two trees: bytes by content, floats by their bits (a NaN
// read alike is alike), nil by type alone.
bool same_tree(const msgpack::object& a, const msgpack::object& b) {
    if (a.type != b.type) return false;
    switch (a.type) {
        case msgpack::type::NIL:
            return true;
        case msgpack::type::BOOLEAN:
            return a.via.boolean == b.via.boolean;
        case msgpack::type::POSITIVE_INTEGER:
            return a.via.u64 == b.via.u64;
        case msgpack::type::NEGATIVE_INTEGER:
            return a.via.i64 == b.via.i64;
        case msgpack::type::FLOAT32:
        case msgpack::type::FLOAT64:
            return std::memcmp(&a.via.f64, &b.via.f64, sizeof(double)) == 0;
        case msgpack::type::STR:
        case msgpack::type::BIN:
            return std::string_view(a.via.str.ptr, a.via.str.size) ==
                   std::string_view(b.via.str.ptr, b.via.str.size);
        case msgpack::type::EXT:
            return a.via.ext.size == b.via.ext.size &&
                   std::memcmp(a.via.ext.ptr, b.via.ext.ptr, a.via.ext.size + 1) == 0;
        case msgpack::type::ARRAY:
            if (a.via.array.size != b.via.array.size) return false;
            for (uint32_t i = 0; i < a.via.array.size; ++i) {
                if (!same_tree(a.via.array.ptr[i], b.via.array.ptr[i])) return false;
            }
            return true;
        case msgpack::type::MAP:
            if (a.via.map.size != b.via.map.size) return false;
            for (uint32_t i = 0; i < a.via.map.size; ++i) {
                if (!same_tree(a.via.map.ptr[i].key, b.via.map.ptr[i].key) ||
                    !same_tree(a.via.map.ptr[i].val, b.via.map.ptr[i].val)) {
                    return false;
                }
            }
            return true;
    }
    return false;
}

struct Outcomes {
    size_t read = 0;     // frames both read whole
    size_t refused = 0;  // frames both refused
};

// Both readers on one frame: the same status, id and tree. True when read.
bool require_as_reference(const std::string& frame, Outcomes* outcomes = nullptr) {
    INFO("frame " << (frame.size() <= 256 ? test::hex(frame)
                                          : std::to_string(frame.size()) + " bytes"));
    msgpack::zone zone;
    msgpack::object ours;
    uint64_t our_id = 12345;
    Status our_status = wire::read_frame(frame, zone, ours, our_id);

    msgpack::zone reference_zone;
    msgpack::object theirs;
    uint64_t their_id = 12345;
    Status their_status = reference::read_frame(frame, reference_zone, theirs, their_id);

    REQUIRE(our_status.to_string() == their_status.to_string());
    REQUIRE(our_id == their_id);
    if (!our_status.ok()) {
        if (outcomes != nullptr) ++outcomes->refused;
        return false;
    }
    REQUIRE(same_tree(ours, theirs));
    if (outcomes != nullptr) ++outcomes->read;
    return true;
}

// ---- frames in every msgpack format -------------------------------------------------

// Writes msgpack by hand, so that each value can take any of the widths that
// can hold it (a packer picks the smallest).
class RawWriter {
  public:
    explicit RawWriter(std::mt19937_64& rng) : rng_(rng) {}
    std::string& out() { return out_; }

    void byte(uint8_t b) { out_ += static_cast<char>(b); }
    void be(uint64_t v, size_t width) {
        for (size_t i = width; i-- > 0;) byte(static_cast<uint8_t>(v >> (8 * i)));
    }

    // A non-negative integer in any format that holds it, signed ones included.
    void unsigned_any(uint64_t v) {
        std::vector<int> fits;
        if (v <= 0x7f) fits.push_back(0);
        if (v <= 0xff) fits.push_back(1);
        if (v <= 0xffff) fits.push_back(2);
        if (v <= 0xffffffff) fits.push_back(3);
        fits.push_back(4);
        if (v <= 0x7f) fits.push_back(5);
        if (v <= 0x7fff) fits.push_back(6);
        if (v <= 0x7fffffff) fits.push_back(7);
        if (v <= 0x7fffffffffffffff) fits.push_back(8);
        switch (fits[rng_() % fits.size()]) {
            case 0:
                return byte(static_cast<uint8_t>(v));
            case 1:
                return byte(0xcc), be(v, 1);
            case 2:
                return byte(0xcd), be(v, 2);
            case 3:
                return byte(0xce), be(v, 4);
            case 4:
                return byte(0xcf), be(v, 8);
            case 5:
                return byte(0xd0), be(v, 1);
            case 6:
                return byte(0xd1), be(v, 2);
            case 7:
                return byte(0xd2), be(v, 4);
            default:
                return byte(0xd3), be(v, 8);
        }
    }
    void negative_any(int64_t v) {  // v < 0
        std::vector<int> fits;
        if (v >= -32) fits.push_back(0);
        if (v >= -128) fits.push_back(1);
        if (v >= -32768) fits.push_back(2);
        if (v >= INT32_MIN) fits.push_back(3);
        fits.push_back(4);
        const auto u = static_cast<uint64_t>(v);
        switch (fits[rng_() % fits.size()]) {
            case 0:
                return byte(static_cast<uint8_t>(u));
            case 1:
                return byte(0xd0), be(u, 1);
            case 2:
                return byte(0xd1), be(u, 2);
            case 3:
                return byte(0xd2), be(u, 4);
            default:
                return byte(0xd3), be(u, 8);
        }
    }
    // str (is_str) or bin, header in any width that holds the size.
    void bytes_any(std::string_view body, bool is_str) {
        const size_t n = body.size();
        std::vector<int> fits;
        if (is_str && n <= 31) fits.push_back(0);
        if (n <= 0xff) fits.push_back(1);
        if (n <= 0xffff) fits.push_back(2);
        fits.push_back(3);
        switch (fits[rng_() % fits.size()]) {
            case 0:
                byte(static_cast<uint8_t>(0xa0 | n));
                break;
            case 1:
                byte(is_str ? 0xd9 : 0xc4), be(n, 1);
                break;
            case 2:
                byte(is_str ? 0xda : 0xc5), be(n, 2);
                break;
            default:
                byte(is_str ? 0xdb : 0xc6), be(n, 4);
                break;
        }
        out_.append(body);
    }
    void ext_any(uint32_t n) {
        const uint8_t fixed[] = {1, 2, 4, 8, 16};
        std::vector<int> fits;
        for (int i = 0; i < 5; ++i) {
            if (n == fixed[i]) fits.push_back(i);
        }
        if (n <= 0xff) fits.push_back(5);
        if (n <= 0xffff) fits.push_back(6);
        fits.push_back(7);
        int f = fits[rng_() % fits.size()];
        if (f < 5) {
            byte(static_cast<uint8_t>(0xd4 + f));
        } else {
            byte(static_cast<uint8_t>(0xc7 + (f - 5))), be(n, size_t{1} << (f - 5));
        }
        byte(static_cast<uint8_t>(rng_()));  // the ext's type
        for (uint32_t i = 0; i < n; ++i) byte(static_cast<uint8_t>(rng_()));
    }
    void array_header(uint32_t n) { container_header(n, 0x90, 0xdc); }
    void map_header(uint32_t n) { container_header(n, 0x80, 0xde); }

    // A random value; containers at most `depth_left` deep.
    void value(int depth_left) {
        switch (rng_() % (depth_left > 0 ? 12 : 9)) {
            case 0:
                return unsigned_any(small_or_large());
            case 1:
                return negative_any(-1 - static_cast<int64_t>(small_or_large() >> 1));
            case 2:
                return byte(0xc0);
            case 3:
                return byte(rng_() % 2 ? 0xc2 : 0xc3);
            case 4:
                return byte(0xca), be(rng_(), 4);  // any bits, NaNs included
            case 5:
                return byte(0xcb), be(rng_(), 8);
            case 6:
                return bytes_any(random_bytes(), true);
            case 7:
                return bytes_any(random_bytes(), false);
            case 8:
                return ext_any(ext_size());
            case 9:
            case 10: {
                uint32_t n = static_cast<uint32_t>(rng_() % 5);
                array_header(n);
                for (uint32_t i = 0; i < n; ++i) value(depth_left - 1);
                return;
            }
            default: {
                uint32_t n = static_cast<uint32_t>(rng_() % 4);
                map_header(n);
                for (uint32_t i = 0; i < n; ++i) {
                    if (rng_() % 4 == 0) {
                        value(depth_left - 1);  // a key of any type
                    } else {
                        bytes_any(random_name(), true);
                    }
                    value(depth_left - 1);
                }
                return;
            }
        }
    }

    // A frame: a top-level map whose "id" (if any) is in any integer format,
    // with fields of random values, sometimes nested past the depth limit.
    std::string frame() {
        out_.clear();
        size_t n = 1 + rng_() % 7;
        map_header(static_cast<uint32_t>(n));
        for (size_t i = 0; i < n; ++i) {
            switch (rng_() % 6) {
                case 0:  // "id", as any integer format, or as anything else
                    bytes_any("id", true);
                    if (rng_() % 4 == 0) {
                        value(2);
                    } else {
                        unsigned_any(small_or_large());
                    }
                    break;
                case 1:  // "id" as a bin key: not the id
                    bytes_any("id", false);
                    unsigned_any(rng_() % 1000);
                    break;
                default:
                    bytes_any(random_name(), true);
                    value(static_cast<int>(rng_() % (kNestingDepthMax + 1)));
                    break;
            }
        }
        return out_;
    }

  private:
    void container_header(uint32_t n, uint8_t fix, uint8_t wide16) {
        std::vector<int> fits;
        if (n <= 15) fits.push_back(0);
        if (n <= 0xffff) fits.push_back(1);
        fits.push_back(2);
        switch (fits[rng_() % fits.size()]) {
            case 0:
                return byte(static_cast<uint8_t>(fix | n));
            case 1:
                return byte(wide16), be(n, 2);
            default:
                return byte(static_cast<uint8_t>(wide16 + 1)), be(n, 4);
        }
    }
    uint64_t small_or_large() {
        switch (rng_() % 4) {
            case 0:
                return rng_() % 128;
            case 1:
                return rng_() % 70000;
            case 2:
                return rng_() >> (rng_() % 64);
            default:
                return rng_();
        }
    }
    std::string random_bytes() {
        size_t n = rng_() % 8 == 0 ? 250 + rng_() % 20 : rng_() % 40;
        std::string s(n, '\0');
        for (char& c : s) c = static_cast<char>(rng_());
        return s;
    }
    std::string random_name() {
        static const char* names[] = {"v", "t", "id", "key", "val", "x", "ids", "i"};
        return names[rng_() % 8];
    }
    uint32_t ext_size() {  // around kIdBytesMax, where the limit falls
        switch (rng_() % 3) {
            case 0:
                return static_cast<uint32_t>(rng_() % 20);
            case 1:
                return static_cast<uint32_t>(kIdBytesMax - 3 + rng_() % 6);
            default:
                return static_cast<uint32_t>(1u << (rng_() % 5));
        }
    }

    std::mt19937_64& rng_;
    std::string out_;
};

std::string mutated(const std::string& frame, std::mt19937_64& rng) {
    return test::edited(frame, rng, 3, /*truncations=*/true);
}

}  // namespace

TEST_CASE("the one-pass reader reads random frames in every width as the reference does",
          "[wire]") {
    std::mt19937_64 rng(20261203);
    RawWriter writer(rng);
    Outcomes whole, edited;
    for (int i = 0; i < 6000; ++i) {
        const std::string frame = writer.frame();
        require_as_reference(frame, &whole);
        require_as_reference(mutated(frame, rng), &edited);
    }
    // Both kinds of outcome must occur, or the run would not be comparing much.
    INFO("whole: " << whole.read << " read, " << whole.refused << " refused; edited: "
                   << edited.read << " read, " << edited.refused << " refused");
    CHECK(whole.read > 1000);
    CHECK(whole.refused > 200);  // too deep, ext too long
    CHECK(edited.read > 250);
    CHECK(edited.refused > 2000);
}

TEST_CASE("the one-pass reader reads real messages and their edits as the reference does",
          "[wire]") {
    std::mt19937_64 rng(611);
    Outcomes outcomes;
    for (const Message& m : test::client_sample_messages()) {
        const std::string frame = encode(m);
        for (size_t length = 0; length <= frame.size(); ++length) {
            require_as_reference(frame.substr(0, length), &outcomes);
        }
        for (int i = 0; i < 200; ++i) require_as_reference(mutated(frame, rng), &outcomes);
    }
    for (int i = 0; i < 3000; ++i) {  // garbage, half of it starting like a map
        std::string frame(rng() % 200, '\0');
        for (char& c : frame) c = static_cast<char>(rng());
        if (i % 2 == 0 && !frame.empty()) frame[0] = static_cast<char>(0x80 | (rng() % 16));
        require_as_reference(frame, &outcomes);
    }
    CHECK(outcomes.read > 100);
    CHECK(outcomes.refused > 1000);
}

TEST_CASE("the one-pass reader meets each limit where the reference does", "[wire][hostile]") {
    std::mt19937_64 rng(7);
    RawWriter w(rng);
    auto frame_with = [&w](const std::function<void()>& field) {
        w.out().clear();
        w.map_header(2);
        w.bytes_any("id", true);
        w.unsigned_any(77);
        w.bytes_any("x", true);
        field();
        return w.out();
    };
    for (int round = 0; round < 20; ++round) {  // headers in their random widths
        for (size_t depth = kNestingDepthMax - 2; depth <= kNestingDepthMax + 1; ++depth) {
            require_as_reference(frame_with([&] {  // depth arrays, the innermost empty
                for (size_t d = 1; d < depth; ++d) w.array_header(1);
                w.array_header(0);
            }));
            require_as_reference(frame_with([&] {  // depth maps
                for (size_t d = 1; d < depth; ++d) w.map_header(1), w.byte(0x01);
                w.map_header(0);
            }));
        }
        for (uint32_t items : {uint32_t{kArrayItemsMax}, uint32_t{kArrayItemsMax + 1}}) {
            require_as_reference(frame_with([&] {
                w.array_header(items);
                for (uint32_t i = 0; i < items; ++i) w.byte(0xc0);
            }));
            require_as_reference(frame_with([&] { w.array_header(items); }));  // truncated
        }
        for (uint32_t pairs : {uint32_t{kMapItemsMax}, uint32_t{kMapItemsMax + 1}}) {
            require_as_reference(frame_with([&] {
                w.map_header(pairs);
                for (uint32_t i = 0; i < pairs; ++i) w.unsigned_any(i), w.byte(0xc0);
            }));
        }
        for (uint32_t n = kIdBytesMax - 2; n <= kIdBytesMax + 1; ++n) {
            require_as_reference(frame_with([&] { w.ext_any(n); }));
        }
        require_as_reference(frame_with([&] {  // declared lengths far beyond the frame
            w.byte(0xdb), w.be(0xffffffff, 4), w.byte('a');
        }));
        require_as_reference(frame_with([&] { w.byte(0xc9), w.be(0xffffffff, 4), w.byte(1); }));
        require_as_reference(frame_with([&] { w.byte(0xdd), w.be(0xffffffff, 4); }));
        require_as_reference(frame_with([&] { w.byte(0xdf), w.be(0xffffffff, 4); }));
        require_as_reference(frame_with([&] { w.byte(0xc1); }));
    }
    // The object budget: arrays each within their limit, too many in all.
    for (size_t arrays :
         {kFrameObjectsMax / kArrayItemsMax - 1, kFrameObjectsMax / kArrayItemsMax}) {
        require_as_reference(frame_with([&] {
            w.array_header(static_cast<uint32_t>(arrays));
            for (size_t a = 0; a < arrays; ++a) {
                w.array_header(kArrayItemsMax);
                for (size_t i = 0; i < kArrayItemsMax; ++i) w.byte(0xc0);
            }
        }));
    }
    // A map's entries count twice (key and value): 1024 maps of 31 entries
    // fit the budget, of 32 do not.
    for (uint32_t pairs : {31u, 32u}) {
        require_as_reference(frame_with([&] {
            w.array_header(kArrayItemsMax);
            for (size_t a = 0; a < kArrayItemsMax; ++a) {
                w.map_header(pairs);
                for (uint32_t i = 0; i < pairs; ++i) w.byte(0x01), w.byte(0xc0);
            }
        }));
    }
}

TEST_CASE("the one-pass reader finds the id of a frame above the size limit as the reference does",
          "[wire][hostile]") {
    std::mt19937_64 rng(9);
    RawWriter w(rng);
    const std::string big(kFrameBytesMax, 'x');
    // The id before the big value, after it, and absent.
    for (int order = 0; order < 3; ++order) {
        w.out().clear();
        w.map_header(order == 2 ? 1 : 2);
        if (order == 0) w.bytes_any("id", true), w.unsigned_any(41);
        w.bytes_any("val", true), w.bytes_any(big, false);
        if (order == 1) w.bytes_any("id", true), w.unsigned_any(42);
        const std::string frame = w.out();
        REQUIRE(frame.size() > kFrameBytesMax);
        require_as_reference(frame);
    }
}
