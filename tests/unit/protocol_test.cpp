// The wire codec of the client messages: every message round-trips, the bytes
// on the wire are exactly those docs/PROTOCOL.md shows, and hostile frames
// (truncated, garbage, deeply nested, lying about lengths, over the limits)
// come back as a Status with the documented code and, where it could be read,
// the request id. The node-to-node messages: peer_protocol_test.cpp.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <limits>
#include <new>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include "client/protocol.h"
#include "client/wire_codec.h"
#include "tests/unit/wire_frames.h"

// ---- allocation watch ----------------------------------------------------------
// Replacing the global operator new lets the hostile-frame tests assert that no
// single allocation follows a length the frame merely claims. GCC flags the
// malloc/free pair inside the replacements as mismatched once they are inlined
// into callers of new/delete; it is the documented way to replace them.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<bool> g_watch_allocations{false};
std::atomic<size_t> g_largest_allocation{0};
}  // namespace

namespace {
void* watched_allocation(size_t size) noexcept {
    if (g_watch_allocations.load(std::memory_order_relaxed)) {
        size_t seen = g_largest_allocation.load(std::memory_order_relaxed);
        while (size > seen && !g_largest_allocation.compare_exchange_weak(seen, size)) {
        }
    }
    return std::malloc(size == 0 ? 1 : size);
}
void* watched_allocation_or_throw(size_t size) {
    if (void* p = watched_allocation(size)) return p;
    throw std::bad_alloc();
}
}  // namespace

// Every unaligned form is replaced so that each pointer is freed by the family
// that allocated it (ASan checks).
void* operator new(size_t size) {
    return watched_allocation_or_throw(size);
}
void* operator new[](size_t size) {
    return watched_allocation_or_throw(size);
}
void* operator new(size_t size, const std::nothrow_t&) noexcept {
    return watched_allocation(size);
}
void* operator new[](size_t size, const std::nothrow_t&) noexcept {
    return watched_allocation(size);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, size_t) noexcept {
    std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}

namespace {

using namespace kv;
using namespace kv::proto;
using namespace kv::test;

struct AllocationWatch {
    AllocationWatch() {
        g_largest_allocation = 0;
        g_watch_allocations = true;
    }
    ~AllocationWatch() { g_watch_allocations = false; }
    size_t largest() const { return g_largest_allocation; }
};

const Codec<Message> kCodec{&encode, &decode, &request_id, &type_name};

Status decode_error(const std::string& frame, uint64_t expected_id = kId) {
    return test::decode_error(kCodec, frame, expected_id);
}

Message decode_ok(const std::string& frame) {
    return test::decode_ok(kCodec, frame);
}

std::vector<Field> get_fields() {
    return with(header("get"), bin_field("key", "k"));
}
std::vector<Field> put_fields() {
    return with(with(header("put"), bin_field("key", "k")), bin_field("val", "value"));
}

}  // namespace

// ---- names and replica counts --------------------------------------------------------

TEST_CASE("level names round-trip and unknown names are rejected", "[protocol]") {
    const std::vector<std::pair<Level, std::string_view>> table = {{Level::one, "one"},
                                                                   {Level::two, "two"},
                                                                   {Level::three, "three"},
                                                                   {Level::quorum, "quorum"},
                                                                   {Level::all, "all"}};
    for (const auto& [level, name] : table) {
        CHECK(level_name(level) == name);
        CHECK(level_from_name(name) == level);
    }
    CHECK_FALSE(level_from_name("QUORUM").has_value());
    CHECK_FALSE(level_from_name("").has_value());
    CHECK_FALSE(level_from_name("each_quorum").has_value());
}

TEST_CASE("replicas_required follows the level table and the explicit count", "[protocol]") {
    struct Row {
        Level level;
        uint32_t count;
        uint32_t n;
        uint32_t expected;
    };
    const std::vector<Row> rows = {
        {Level::one, 0, 1, 1},    {Level::one, 0, 3, 1},    {Level::two, 0, 3, 2},
        {Level::two, 0, 1, 0},    {Level::three, 0, 3, 3},  {Level::three, 0, 2, 0},
        {Level::quorum, 0, 1, 1}, {Level::quorum, 0, 2, 2}, {Level::quorum, 0, 3, 2},
        {Level::quorum, 0, 4, 3}, {Level::quorum, 0, 5, 3}, {Level::quorum, 0, 16, 9},
        {Level::all, 0, 1, 1},    {Level::all, 0, 5, 5},    {Level::all, 2, 5, 2},
        {Level::one, 3, 3, 3},    {Level::one, 4, 3, 0},    {Level::quorum, 1, 5, 1},
        {Level::one, 0, 0, 0},    {Level::quorum, 0, 0, 0}, {Level::all, 0, 0, 0},
        {Level::one, 1, 0, 0},
    };
    for (const Row& r : rows) {
        INFO("level " << level_name(r.level) << " count " << r.count << " n " << r.n);
        CHECK(replicas_required(Consistency{r.level, r.count, false}, r.n) == r.expected);
        // strict changes who may count, never how many.
        CHECK(replicas_required(Consistency{r.level, r.count, true}, r.n) == r.expected);
    }
}

TEST_CASE("type names are the documented strings", "[protocol]") {
    check_type_names(kCodec, client_type_names());
    CHECK(request_id(PutRequest{42, "k", "v", {}, {}, 0}) == 42);
}

// ---- round trips -----------------------------------------------------------------------

TEST_CASE("every message alternative round-trips", "[protocol]") {
    check_round_trips(kCodec, client_sample_messages());
}

TEST_CASE("values at exactly the limits round-trip", "[protocol]") {
    std::string key(kKeyBytesMax, '\0');
    std::string value(kValueBytesMax, '\x7f');
    std::string context(kContextBytesMax, '\x01');
    Message put = PutRequest{
        1, key, value, context, Consistency{Level::one, kReplicasMax, true}, kDeadlineMsMax};
    CHECK(decode_ok(encode(put)) == put);
    Message replace = PutRequest{2, key, value, std::nullopt, Consistency{}, 0, true};
    CHECK(decode_ok(encode(replace)) == replace);

    std::vector<std::string> values(kArrayItemsMax, "v");
    Message reply =
        GetResponse{3, ErrorCode::ok, std::string(kMessageTextBytesMax, 'm'), values, "", {}};
    CHECK(decode_ok(encode(reply)) == reply);
}

// ---- the exact bytes on the wire ----------------------------------------------------------

TEST_CASE("a get request encodes to the documented bytes", "[protocol]") {
    // The worked example of docs/PROTOCOL.md: change both together.
    Message get = GetRequest{1, "user:42", Consistency{Level::quorum, 0, false}, 2000};
    const std::string expected =
        "86 a1 76 01 a1 74 a3 67 65 74 a2 69 64 01 a3 6b 65 79 c4 07 75 73 65 72 3a 34 32 "
        "a2 63 6c a6 71 75 6f 72 75 6d ab 64 65 61 64 6c 69 6e 65 5f 6d 73 cd 07 d0";
    CHECK(hex(encode(get)) == hex(unhex(expected)));
    CHECK(decode_ok(unhex(expected)) == get);
}

TEST_CASE("a get reply encodes to the documented bytes", "[protocol]") {
    Message reply = GetResponse{
        1, ErrorCode::ok, "", {"Ada"}, std::string("\x01\x02\x03", 3), ReplyInfo{3, 3, false, 1}};
    const std::string expected =
        "87 a1 76 01 a1 74 a9 67 65 74 5f 72 65 70 6c 79 a2 69 64 01 a4 63 6f 64 65 00 "
        "a4 76 61 6c 73 91 c4 03 41 64 61 a3 63 74 78 c4 03 01 02 03 "
        "a4 69 6e 66 6f 84 a5 61 73 6b 65 64 03 a8 61 6e 73 77 65 72 65 64 03 "
        "a8 73 74 61 6e 64 5f 69 6e c2 a8 73 69 62 6c 69 6e 67 73 01";
    CHECK(hex(encode(reply)) == hex(unhex(expected)));
    CHECK(decode_ok(unhex(expected)) == reply);
}

TEST_CASE("a put built by hand with msgpack decodes field by field", "[protocol]") {
    // Another implementation may order fields differently and pick other
    // integer widths; only names and types matter.
    msgpack::sbuffer buffer;
    Packer p(buffer);
    p.pack_map(9);
    p.pack_str(3).pack_str_body("val", 3).pack_bin(3).pack_bin_body("a\0b", 3);
    p.pack_str(2).pack_str_body("id", 2).pack_fix_uint64(99);
    p.pack_str(1).pack_str_body("t", 1).pack_str(3).pack_str_body("put", 3);
    p.pack_str(3).pack_str_body("key", 3).pack_bin(2).pack_bin_body("k1", 2);
    p.pack_str(1).pack_str_body("v", 1).pack_fix_uint8(1);
    p.pack_str(3).pack_str_body("ctx", 3).pack_bin(1).pack_bin_body("\xff", 1);
    p.pack_str(2).pack_str_body("cl", 2).pack_str(3).pack_str_body("all", 3);
    p.pack_str(1).pack_str_body("w", 1).pack_fix_uint32(2);
    p.pack_str(11).pack_str_body("deadline_ms", 11).pack_fix_uint16(750);

    Message m = decode_ok(std::string(buffer.data(), buffer.size()));
    REQUIRE(std::holds_alternative<PutRequest>(m));
    const auto& put = std::get<PutRequest>(m);
    CHECK(put.id == 99);
    CHECK(put.key == "k1");
    CHECK(put.value == std::string("a\0b", 3));
    CHECK(put.context == std::string("\xff"));
    CHECK(put.consistency == Consistency{Level::all, 2, false});
    CHECK(put.deadline_ms == 750);
}

TEST_CASE("keys and values sent as str are accepted and re-encoded as bin", "[protocol]") {
    auto frame = build(with(with(with(header("put"), str_field("key", "k")), str_field("val", "v")),
                            str_field("ctx", "c")));
    Message m = decode_ok(frame);
    Message expected = PutRequest{kId, "k", "v", std::string("c"), Consistency{}, 0};
    CHECK(m == expected);
    std::string again = encode(m);
    CHECK(again.find(std::string("\xa3key\xc4\x01k", 7)) != std::string::npos);
    CHECK(again.find(std::string("\xa3val\xc4\x01v", 7)) != std::string::npos);

    auto reply = build(
        with(with(header("get_reply"), uint_field("code", 0)), raw_field("vals", [](Packer& p) {
                 p.pack_array(2);
                 p.pack_str(1).pack_str_body("x", 1);
                 p.pack_bin(1).pack_bin_body("y", 1);
             })));
    auto values = std::get<GetResponse>(decode_ok(reply)).values;
    CHECK(values == std::vector<std::string>{"x", "y"});
}

TEST_CASE("unknown fields are ignored", "[protocol]") {
    auto base = decode_ok(build(get_fields()));
    auto extended = with(get_fields(), raw_field("future", [](Packer& p) {
                             p.pack_map(2);
                             p.pack_str(1).pack_str_body("a", 1).pack_array(3);
                             p.pack_nil().pack_double(1.5).pack_int64(-3);
                             p.pack_str(1).pack_str_body("b", 1).pack_bin(0);
                         }));
    extended = with(extended, str_field("trace", "abc"));
    extended = with(extended, uint_field("w", 3));  // a put field, meaningless for get
    CHECK(decode_ok(build(extended)) == base);

    // A non-str key cannot name a field; it is skipped as unknown.
    msgpack::sbuffer buffer;
    Packer p(buffer);
    p.pack_map(5);
    p.pack_uint64(7).pack_str(3).pack_str_body("odd", 3);
    for (const Field& f : get_fields()) {
        p.pack_str(static_cast<uint32_t>(f.key.size())).pack_str_body(f.key.data(), f.key.size());
        f.pack(p);
    }
    CHECK(decode_ok(std::string(buffer.data(), buffer.size())) == base);
}

TEST_CASE("optional fields default when absent", "[protocol]") {
    Message reply = decode_ok(build(with(header("get_reply"), uint_field("code", 1))));
    CHECK(reply == Message(GetResponse{kId, ErrorCode::not_found, "", {}, "", {}}));

    Message get = decode_ok(build(get_fields()));
    CHECK(get == Message(GetRequest{kId, "k", Consistency{Level::quorum, 0, false}, 0}));

    // r = 0 is the same as no r.
    CHECK(decode_ok(build(with(get_fields(), uint_field("r", 0)))) == get);
}

// ---- hostile input: frame-level errors -------------------------------------------------

TEST_CASE("frame-level errors", "[protocol][hostile]") {
    SECTION("empty frame") {
        CHECK(decode_error("", 0).code() == ErrorCode::bad_request);
    }
    SECTION("top level is not a map") {
        CHECK(decode_error(unhex("93 01 02 03"), 0).code() == ErrorCode::bad_request);
        CHECK(decode_error(unhex("2a"), 0).code() == ErrorCode::bad_request);
        CHECK(decode_error(unhex("a3 67 65 74"), 0).code() == ErrorCode::bad_request);
    }
    SECTION("trailing bytes after the map") {
        CHECK(decode_error(build(get_fields()) + '\0').code() == ErrorCode::bad_request);
        CHECK(decode_error(build(get_fields()) + build(get_fields())).code() ==
              ErrorCode::bad_request);
    }
    SECTION("reserved byte 0xc1") {
        std::string frame = build(get_fields());
        frame[0] = static_cast<char>(frame[0] + 1);  // one more field: "x" -> 0xc1
        frame += "\xa1x\xc1";
        CHECK(decode_error(frame).code() == ErrorCode::bad_request);
        CHECK(decode_error(std::string("\xc1"), 0).code() == ErrorCode::bad_request);
    }
    SECTION("duplicate field") {
        std::vector<Field> fields = get_fields();
        fields.push_back(bin_field("key", "other"));
        CHECK(decode_error(build(fields)).code() == ErrorCode::bad_request);
    }
    SECTION("frame above kFrameBytesMax, id still echoed") {
        auto frame = build(with(put_fields(), bin_field("val", std::string(kFrameBytesMax, 'x'))));
        REQUIRE(frame.size() > kFrameBytesMax);
        Status s = decode_error(frame);
        CHECK(s.code() == ErrorCode::message_too_large);
    }
    SECTION("too many fields in a map") {
        auto fields = get_fields();
        for (int i = 0; i < 62; ++i) fields.push_back(uint_field("f" + std::to_string(i), 1));
        REQUIRE(fields.size() == kMapItemsMax + 2);
        // Refused at the map header, before its "id" is reached.
        CHECK(decode_error(build(fields), 0).code() == ErrorCode::bad_request);
        fields.pop_back();
        fields.pop_back();
        CHECK(std::holds_alternative<GetRequest>(decode_ok(build(fields))));
    }
    SECTION("array longer than kArrayItemsMax") {
        auto fields = with(get_fields(), raw_field("x", [](Packer& p) {
                               p.pack_array(kArrayItemsMax + 1);
                               for (size_t i = 0; i <= kArrayItemsMax; ++i) p.pack_nil();
                           }));
        CHECK(decode_error(build(fields)).code() == ErrorCode::bad_request);
    }
    SECTION("more objects in one frame than kFrameObjectsMax") {
        // Each array is within its own limit; together they exceed the budget.
        auto fields = with(get_fields(), raw_field("x", [](Packer& p) {
                               size_t arrays = kFrameObjectsMax / kArrayItemsMax + 1;
                               p.pack_array(static_cast<uint32_t>(arrays));
                               for (size_t a = 0; a < arrays; ++a) {
                                   p.pack_array(kArrayItemsMax);
                                   for (size_t i = 0; i < kArrayItemsMax; ++i) p.pack_nil();
                               }
                           }));
        Status s = decode_error(build(fields));
        CHECK(s.code() == ErrorCode::bad_request);
        CHECK(s.message().find("objects") != std::string::npos);
    }
}

TEST_CASE("nesting depth is limited", "[protocol][hostile]") {
    auto nested = [](size_t arrays) {
        return raw_field("x", [arrays](Packer& p) {
            for (size_t i = 0; i < arrays; ++i) p.pack_array(1);
            p.pack_nil();
        });
    };
    // The top-level map is depth 1.
    CHECK(std::holds_alternative<GetRequest>(
        decode_ok(build(with(get_fields(), nested(kNestingDepthMax - 1))))));
    CHECK(decode_error(build(with(get_fields(), nested(kNestingDepthMax)))).code() ==
          ErrorCode::bad_request);

    std::string deep = build(with(get_fields(), nested(100)));
    std::string bare(100000, '\x91');  // 100000 nested one-item arrays, no map at all
    AllocationWatch watch;
    CHECK(decode_error(deep).code() == ErrorCode::bad_request);
    CHECK(decode_error(bare, 0).code() == ErrorCode::bad_request);
    CHECK(watch.largest() < 64 * 1024);
}

TEST_CASE("huge declared lengths are refused without allocating them", "[protocol][hostile]") {
    AllocationWatch watch;
    std::string prefix = build(header("put"));
    prefix[0] = '\x85';  // two more fields follow: key, then val
    prefix += unhex("a3 6b 65 79 c4 01 6b a3 76 61 6c");

    SECTION("bin claiming 4 GiB") {
        Status s = decode_error(prefix + unhex("c6 ff ff ff ff 01 02 03"));
        CHECK(s.code() == ErrorCode::bad_request);
        CHECK(s.message().find("truncated") != std::string::npos);
    }
    SECTION("str claiming 4 GiB") {
        CHECK(decode_error(prefix + unhex("db ff ff ff ff 41")).code() == ErrorCode::bad_request);
    }
    SECTION("array claiming 2^32-1 items") {
        Status s = decode_error(prefix + unhex("dd ff ff ff ff c0 c0"));
        CHECK(s.code() == ErrorCode::bad_request);
        CHECK(s.message().find("array longer") != std::string::npos);
    }
    SECTION("map claiming 2^32-1 entries") {
        CHECK(decode_error(prefix + unhex("df ff ff ff ff c0 c0")).code() ==
              ErrorCode::bad_request);
    }
    SECTION("top-level map claiming 2^32-1 entries") {
        CHECK(decode_error(unhex("df ff ff ff ff a1 76 01"), 0).code() == ErrorCode::bad_request);
    }
    SECTION("ext claiming 4 GiB") {
        CHECK(decode_error(prefix + unhex("c9 ff ff ff ff 01 00")).code() ==
              ErrorCode::bad_request);
    }
    CHECK(watch.largest() < 64 * 1024);
}

// ---- hostile input: header and field errors -----------------------------------------------

TEST_CASE("version, id and type errors", "[protocol][hostile]") {
    SECTION("missing v") {
        CHECK(decode_error(build(without(get_fields(), "v"))).code() == ErrorCode::bad_request);
    }
    SECTION("non-integer v") {
        CHECK(decode_error(build(with(get_fields(), str_field("v", "1")))).code() ==
              ErrorCode::bad_request);
        // 1.5, not 1.0: msgpack-c packs integral doubles as integers.
        auto float_version = raw_field("v", [](Packer& p) { p.pack_double(1.5); });
        CHECK(decode_error(build(with(get_fields(), float_version))).code() ==
              ErrorCode::bad_request);
    }
    SECTION("other versions") {
        CHECK(decode_error(build(with(get_fields(), uint_field("v", 2)))).code() ==
              ErrorCode::unsupported_version);
        CHECK(decode_error(build(with(get_fields(), uint_field("v", 0)))).code() ==
              ErrorCode::unsupported_version);
        CHECK(decode_error(build(with(get_fields(), int_field("v", -1)))).code() ==
              ErrorCode::unsupported_version);
    }
    SECTION("version is checked before the type") {
        auto fields = with(with(get_fields(), uint_field("v", 9)), str_field("t", "from_future"));
        CHECK(decode_error(build(fields)).code() == ErrorCode::unsupported_version);
    }
    SECTION("missing id") {
        CHECK(decode_error(build(without(get_fields(), "id")), 0).code() == ErrorCode::bad_request);
    }
    SECTION("id of the wrong type") {
        CHECK(decode_error(build(with(get_fields(), str_field("id", "7"))), 0).code() ==
              ErrorCode::bad_request);
        CHECK(decode_error(build(with(get_fields(), int_field("id", -7))), 0).code() ==
              ErrorCode::bad_request);
    }
    SECTION("an id in a signed format (Java and JavaScript encoders) is the same id") {
        for (auto pack : std::vector<PackFn>{
                 [](Packer& p) { p.pack_fix_int8(7); }, [](Packer& p) { p.pack_fix_int16(7); },
                 [](Packer& p) { p.pack_fix_int32(7); }, [](Packer& p) { p.pack_fix_int64(7); }}) {
            const std::string frame = build(with(get_fields(), raw_field("id", pack)));
            uint64_t id = 0;
            auto decoded = proto::decode(frame, &id);
            REQUIRE(decoded.ok());
            CHECK(id == 7);
            CHECK(proto::request_id(decoded.value()) == 7);
            // Errors echo it too.
            auto bad = with(with(get_fields(), raw_field("id", pack)), bin_field("key", ""));
            CHECK(decode_error(build(bad), 7).code() == ErrorCode::invalid_argument);
        }
    }
    SECTION("id read even when it comes last and the rest is wrong") {
        auto fields = without(get_fields(), "id");
        fields = with(fields, bin_field("key", ""));
        fields.push_back(uint_field("id", 5));
        CHECK(decode_error(build(fields), 5).code() == ErrorCode::invalid_argument);
    }
    SECTION("missing or non-str type") {
        CHECK(decode_error(build(without(get_fields(), "t"))).code() == ErrorCode::bad_request);
        CHECK(decode_error(build(with(get_fields(), bin_field("t", "get")))).code() ==
              ErrorCode::bad_request);
    }
    SECTION("unknown type") {
        Status s = decode_error(build(with(get_fields(), str_field("t", "frobnicate"))));
        CHECK(s.code() == ErrorCode::unknown_type);
        CHECK(s.message().find("frobnicate") != std::string::npos);
        CHECK(decode_error(build(with(get_fields(), str_field("t", "GET")))).code() ==
              ErrorCode::unknown_type);
    }
}

TEST_CASE("missing required fields name the field", "[protocol][hostile]") {
    struct Case {
        std::vector<Field> fields;
        std::string missing;
    };
    const std::vector<Case> cases = {
        {header("get"), "key"},
        {with(header("put"), bin_field("key", "k")), "val"},
        {with(header("put"), bin_field("val", "v")), "key"},
        {header("del"), "key"},
        {header("local_get"), "key"},
        {header("get_reply"), "code"},
        {header("write_reply"), "code"},
        {header("error"), "code"},
        {with(header("status_reply"), uint_field("n", 3)), "node"},
        {with(header("status_reply"), str_field("node", "a")), "n"},
        {header("owners"), "key"},
        {header("owners_reply"), "n"},
    };
    for (const Case& c : cases) check_names_field(kCodec, build(c.fields), c.missing);
    // The minimal forms decode.
    CHECK(std::holds_alternative<StatusRequest>(decode_ok(build(header("status")))));
}

TEST_CASE("fields of the wrong type name the field", "[protocol][hostile]") {
    const std::vector<std::pair<std::vector<Field>, std::string>> cases = {
        {with(get_fields(), uint_field("key", 1)), "key"},
        {with(get_fields(), bool_field("key", true)), "key"},
        {with(put_fields(), raw_field("val", [](Packer& p) { p.pack_nil(); })), "val"},
        {with(put_fields(), uint_field("ctx", 5)), "ctx"},
        {with(get_fields(), bin_field("cl", "one")), "cl"},
        {with(get_fields(), str_field("r", "2")), "r"},
        {with(put_fields(), int_field("w", -1)), "w"},
        {with(get_fields(), uint_field("strict", 1)), "strict"},
        {with(get_fields(), str_field("deadline_ms", "5")), "deadline_ms"},
        {with(header("error"), str_field("code", "bad_request")), "code"},
        {with(with(header("error"), uint_field("code", 2)), bin_field("msg", "m")), "msg"},
        {with(with(header("get_reply"), uint_field("code", 0)), bin_field("vals", "v")), "vals"},
        {with(with(header("get_reply"), uint_field("code", 0)), uint_field("info", 1)), "info"},
        {with(with(header("get_reply"), uint_field("code", 0)),
              raw_field("info",
                        [](Packer& p) {
                            p.pack_map(1)
                                .pack_str(5)
                                .pack_str_body("asked", 5)
                                .pack_str(1)
                                .pack_str_body("3", 1);
                        })),
         "asked"},
        {with(with(header("status_reply"), str_field("node", "a")), int_field("n", -3)), "n"},
        {with(with(with(header("status_reply"), str_field("node", "a")), uint_field("n", 3)),
              raw_field("members", [](Packer& p) { p.pack_array(1).pack_uint64(1); })),
         "members"},
        {with(with(with(header("status_reply"), str_field("node", "a")), uint_field("n", 3)),
              raw_field("members",
                        [](Packer& p) {
                            p.pack_array(1).pack_map(1).pack_str(5).pack_str_body("state", 5);
                            p.pack_str(2).pack_str_body("up", 2);
                        })),
         "node"},
    };
    for (const auto& [fields, name] : cases) check_names_field(kCodec, build(fields), name);
}

TEST_CASE("size limits answer with their own codes", "[protocol][hostile]") {
    SECTION("empty key") {
        CHECK(decode_error(build(with(get_fields(), bin_field("key", "")))).code() ==
              ErrorCode::invalid_argument);
    }
    SECTION("key too large") {
        std::string key(kKeyBytesMax + 1, 'k');
        CHECK(decode_error(build(with(get_fields(), bin_field("key", key)))).code() ==
              ErrorCode::key_too_large);
        CHECK(decode_error(build(with(put_fields(), str_field("key", key)))).code() ==
              ErrorCode::key_too_large);
    }
    SECTION("value too large") {
        std::string value(kValueBytesMax + 1, 'v');
        CHECK(decode_error(build(with(put_fields(), bin_field("val", value)))).code() ==
              ErrorCode::value_too_large);
        auto reply = with(with(header("get_reply"), uint_field("code", 0)),
                          raw_field("vals", [&](Packer& p) {
                              p.pack_array(1).pack_bin(static_cast<uint32_t>(value.size()));
                              p.pack_bin_body(value.data(), value.size());
                          }));
        CHECK(decode_error(build(reply)).code() == ErrorCode::value_too_large);
    }
    SECTION("context too large") {
        std::string context(kContextBytesMax + 1, 'c');
        CHECK(decode_error(build(with(put_fields(), bin_field("ctx", context)))).code() ==
              ErrorCode::bad_context);
        CHECK(decode_error(build(with(with(header("del"), bin_field("key", "k")),
                                      bin_field("ctx", context))))
                  .code() == ErrorCode::bad_context);
        CHECK(decode_error(build(with(with(header("write_reply"), uint_field("code", 0)),
                                      bin_field("ctx", context))))
                  .code() == ErrorCode::bad_context);
    }
    SECTION("text fields too long") {
        std::string id_text(kIdBytesMax + 1, 'n');
        CHECK(
            decode_error(build(with(with(header("error"), uint_field("code", 2)),
                                    str_field("msg", std::string(kMessageTextBytesMax + 1, 'm')))))
                .code() == ErrorCode::bad_request);
        auto member_with_long_endpoint = [&](Packer& p) {
            p.pack_array(1).pack_map(2);
            p.pack_str(4).pack_str_body("node", 4).pack_str(1).pack_str_body("a", 1);
            p.pack_str(8).pack_str_body("endpoint", 8);
            p.pack_str(static_cast<uint32_t>(id_text.size()))
                .pack_str_body(id_text.data(), id_text.size());
        };
        CHECK(decode_error(build(with(with(with(header("status_reply"), str_field("node", "a")),
                                           uint_field("n", 3)),
                                      raw_field("members", member_with_long_endpoint))))
                  .code() == ErrorCode::bad_request);
    }
}

TEST_CASE("meaningless requests are invalid_argument", "[protocol][hostile]") {
    CHECK(decode_error(build(with(get_fields(), str_field("cl", "most")))).code() ==
          ErrorCode::invalid_argument);
    CHECK(decode_error(build(with(get_fields(), uint_field("r", kReplicasMax + 1)))).code() ==
          ErrorCode::invalid_argument);
    CHECK(decode_error(build(with(put_fields(), uint_field("w", 1ull << 40)))).code() ==
          ErrorCode::invalid_argument);
    CHECK(decode_error(build(with(get_fields(), uint_field("deadline_ms", kDeadlineMsMax + 1))))
              .code() == ErrorCode::invalid_argument);
    CHECK(decode_error(build(with(put_fields(),
                                  uint_field("deadline_ms", std::numeric_limits<uint64_t>::max()))))
              .code() == ErrorCode::invalid_argument);

    auto at_limits = with(with(get_fields(), uint_field("r", kReplicasMax)),
                          uint_field("deadline_ms", kDeadlineMsMax));
    auto get = std::get<GetRequest>(decode_ok(build(at_limits)));
    CHECK(get.consistency.count == kReplicasMax);
    CHECK(get.deadline_ms == kDeadlineMsMax);
}

TEST_CASE("unknown error codes in responses read as internal", "[protocol][hostile]") {
    for (uint64_t code : {uint64_t{20}, uint64_t{999}, uint64_t{1} << 40}) {
        auto frame = build(with(with(header("error"), uint_field("code", code)),
                                str_field("msg", "from the future")));
        auto e = std::get<ErrorResponse>(decode_ok(frame));
        CHECK(e.code == ErrorCode::internal);
        CHECK(e.message == "from the future");
        CHECK(e.id == kId);
    }
    auto known = build(with(header("write_reply"), uint_field("code", 18)));
    CHECK(std::get<WriteResponse>(decode_ok(known)).code == ErrorCode::connection);
}

// ---- hostile input: truncation and garbage ----------------------------------------------

TEST_CASE("every truncation of a valid frame is an error, never a crash", "[protocol][hostile]") {
    Message put = PutRequest{kId,
                             bytes_with_nuls("key"),
                             bytes_with_nuls("value"),
                             bytes_with_nuls("ctx"),
                             Consistency{Level::two, 0, true},
                             300};
    std::string frame = encode(put);
    // map(1) "v"(2) 1(1) "t"(2) "put"(4) "id"(3) uint64(9)
    const size_t id_end = 1 + 2 + 1 + 2 + 4 + 3 + 9;
    REQUIRE(frame.size() > id_end);
    for (size_t length = 0; length < frame.size(); ++length) {
        INFO("prefix of " << length << " bytes");
        uint64_t id = 12345;
        Result<Message> r = decode(std::string_view(frame).substr(0, length), &id);
        REQUIRE_FALSE(r.ok());
        CHECK(r.status().code() == ErrorCode::bad_request);
        CHECK(id == (length >= id_end ? kId : 0));
    }
    CHECK(decode_ok(frame) == put);

    Message status = StatusResponse{5,  "node-a", 3,  {{"node-a", "tcp://h:1", "self", 0}},
                                    9,  {},       1,  "",
                                    {}, 0,        "", std::nullopt};
    std::string status_frame = encode(status);
    for (size_t length = 0; length < status_frame.size(); ++length) {
        CHECK_FALSE(decode(std::string_view(status_frame).substr(0, length)).ok());
    }
}

TEST_CASE("random garbage and mutated frames never crash", "[protocol][hostile]") {
    std::vector<std::string> seeds;
    for (const Message& m : client_sample_messages()) seeds.push_back(encode(m));
    check_garbage_and_mutations(kCodec, seeds);
}

// ---- users and grants ----------------------------------------------------------------

TEST_CASE("permission names round-trip and user names follow the documented rule", "[protocol]") {
    for (auto p : {Permission::read, Permission::write, Permission::admin}) {
        CHECK(permission_from_name(permission_name(p)) == p);
    }
    CHECK_FALSE(permission_from_name("owner"));
    CHECK_FALSE(permission_from_name(""));
    CHECK(is_valid_user_name("a"));
    CHECK(is_valid_user_name("Bob.smith_2-x"));
    CHECK(is_valid_user_name(std::string(kUserNameBytesMax, 'n')));
    CHECK_FALSE(is_valid_user_name(""));
    CHECK_FALSE(is_valid_user_name(std::string(kUserNameBytesMax + 1, 'n')));
    for (const std::string& bad :
         std::vector<std::string>{"a b", "a/b", "a:b", "é", std::string("a\0b", 3)}) {
        INFO(bad);
        CHECK_FALSE(is_valid_user_name(bad));
    }
}

TEST_CASE("user and grant requests refuse bad fields with their own codes", "[protocol][hostile]") {
    auto grant = [](Field perm, std::string prefix) {
        return build(with(with(with(header("grant"), str_field("name", "bob")), std::move(perm)),
                          bin_field("prefix", std::move(prefix))));
    };
    CHECK(decode_error(grant(str_field("perm", "owner"), "")).code() ==
          ErrorCode::invalid_argument);
    CHECK(decode_error(grant(uint_field("perm", 1), "")).code() == ErrorCode::bad_request);
    CHECK(
        decode_error(grant(str_field("perm", "read"), std::string(kKeyBytesMax + 1, 'p'))).code() ==
        ErrorCode::key_too_large);
    auto ok = decode_ok(grant(str_field("perm", "read"), std::string(kKeyBytesMax, 'p')));
    CHECK(std::get<GrantRequest>(ok).prefix.size() == kKeyBytesMax);
    // The prefix may be left out: the whole keyspace.
    auto whole = decode_ok(
        build(with(with(header("revoke"), str_field("name", "bob")), str_field("perm", "write"))));
    CHECK(std::get<RevokeRequest>(whole).prefix.empty());
    CHECK(decode_error(build(with(header("user_del"), str_field("name", std::string(65, 'n')))))
              .code() == ErrorCode::bad_request);
    CHECK(decode_error(build(with(header("user_add"), str_field("name", "bob")))).message() ==
          "missing field \"key\"");
}

// ---- status hints and owners (issue 12) ------------------------------------------------

namespace {
std::vector<Field> status_fields() {
    return with(with(header("status_reply"), str_field("node", "n1")), uint_field("n", 3));
}
// A map {target: "n2", ...} with one field left out or changed.
PackFn hint_item(const std::string& target_field, Field extra) {
    return [=](Packer& p) {
        p.pack_array(1).pack_map(2);
        p.pack_str(static_cast<uint32_t>(target_field.size()))
            .pack_str_body(target_field.data(), target_field.size());
        p.pack_str(2).pack_str_body("n2", 2);
        p.pack_str(static_cast<uint32_t>(extra.key.size()))
            .pack_str_body(extra.key.data(), extra.key.size());
        extra.pack(p);
    };
}
}  // namespace

TEST_CASE("status hints: an older node's frame decodes without them", "[protocol]") {
    // What a node from before issue 12 sends: no "hints", no "under_replicated".
    auto s = std::get<StatusResponse>(decode_ok(build(status_fields())));
    CHECK(s.hints.empty());
    CHECK(s.under_replicated_ranges == 0);
    // And a reply without hints sends neither field (an older client ignores them anyway).
    Message none = StatusResponse{kId, "n1", 3, {}, 0, {}, 3, "", {}, 0, "", std::nullopt};
    const std::string frame = encode(none);
    CHECK(frame.find("hints") == std::string::npos);
    CHECK(frame.find("under_replicated") == std::string::npos);
    // Every field of a hint but the target is optional.
    auto minimal = std::get<StatusResponse>(
        decode_ok(build(with(status_fields(), raw_field("hints", [](Packer& p) {
                                 p.pack_array(1).pack_map(1).pack_str(6).pack_str_body("target", 6);
                                 p.pack_str(2).pack_str_body("n2", 2);
                             })))));
    REQUIRE(minimal.hints.size() == 1);
    CHECK(minimal.hints[0] == HintStatus{"n2", 0, 0, 0, 0, 0, false});
}

TEST_CASE("status hints and owners replies refuse malformed fields", "[protocol][hostile]") {
    const std::vector<std::pair<std::vector<Field>, std::string>> cases = {
        {with(status_fields(), uint_field("hints", 1)), "hints"},
        {with(status_fields(), raw_field("hints", hint_item("node", uint_field("keys", 1)))),
         "target"},
        {with(status_fields(), raw_field("hints", hint_item("target", str_field("keys", "1")))),
         "keys"},
        {with(status_fields(), raw_field("hints", hint_item("target", uint_field("replaying", 1)))),
         "replaying"},
        {with(status_fields(), str_field("under_replicated", "2")), "under_replicated"},
        {with(with(header("owners_reply"), uint_field("n", 3)),
              raw_field("homes",
                        [](Packer& p) { p.pack_array(1).pack_str(2).pack_str_body("n1", 2); })),
         "homes"},
        {with(with(header("owners_reply"), uint_field("n", 3)),
              raw_field("stand_ins",
                        [](Packer& p) {
                            p.pack_array(1).pack_map(1).pack_str(4).pack_str_body("node", 4);
                            p.pack_str(2).pack_str_body("n1", 2);
                        })),
         "for"},
        {with(with(header("owners_reply"), uint_field("n", 3)), bin_field("new_owners", "n6")),
         "new_owners"},
        {with(with(header("owners_reply"), uint_field("n", 3)), str_field("sloppy", "yes")),
         "sloppy"},
    };
    for (const auto& [fields, name] : cases) check_names_field(kCodec, build(fields), name);

    // A key is a key: the limits of get apply to owners.
    CHECK(decode_error(build(with(header("owners"), bin_field("key", "")))).code() ==
          ErrorCode::invalid_argument);
    CHECK(decode_error(
              build(with(header("owners"), bin_field("key", std::string(kKeyBytesMax + 1, 'k')))))
              .code() == ErrorCode::key_too_large);
    // A key has at most kReplicasMax homes: longer lists are refused before they are read.
    auto homes = [](uint32_t count) {
        return build(with(with(header("owners_reply"), uint_field("n", 3)),
                          raw_field("homes", [count](Packer& p) {
                              p.pack_array(count);
                              for (uint32_t i = 0; i < count; ++i) {
                                  p.pack_map(1).pack_str(4).pack_str_body("node", 4);
                                  p.pack_str(1).pack_str_body("n", 1);
                              }
                          })));
    };
    CHECK(std::get<OwnersResponse>(decode_ok(homes(kReplicasMax))).homes.size() == kReplicasMax);
    check_names_field(kCodec, homes(kReplicasMax + 1), "homes");
}

TEST_CASE("a frame decoded while another is decoding leaves the outer one intact", "[protocol]") {
    // Frames unpack into a zone each thread reuses; a body that decodes other
    // frames must not have the outer frame's objects overwritten under it.
    proto::GetRequest outer;
    outer.id = 11;
    outer.key = "outer-key";
    proto::PutRequest inner;
    inner.id = 12;
    inner.key = "inner-key-that-is-longer";
    inner.value = std::string(300, 'v');
    const std::string outer_frame = proto::encode(proto::Message{outer});
    const std::string inner_frame = proto::encode(proto::Message{inner});
    size_t inner_decodes = 0;
    std::string outer_key_after;
    const Status status = proto::wire::decode_frame(
        outer_frame, nullptr,
        [&](std::string_view type, uint64_t id, proto::wire::FieldReader& fields) {
            CHECK(type == "get");
            CHECK(id == 11);
            for (int i = 0; i < 2; ++i) {
                auto decoded = proto::decode(inner_frame);
                REQUIRE(decoded.ok());
                CHECK(std::get<proto::PutRequest>(decoded.value()) == inner);
                ++inner_decodes;
            }
            fields.key(outer_key_after);
            return fields.status();
        });
    CHECK(status.ok());
    CHECK(inner_decodes == 2);
    CHECK(outer_key_after == "outer-key");
    // And the thread's zone serves the next frame as before.
    auto again = proto::decode(outer_frame);
    REQUIRE(again.ok());
    CHECK(std::get<proto::GetRequest>(again.value()) == outer);
}
