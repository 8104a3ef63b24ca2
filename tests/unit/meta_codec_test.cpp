// The meta-record codec (node/storage/meta_codec.h): every record round-trips,
// corrupt records are refused, and a format this build does not know stops it.
#include <catch2/catch.hpp>

#include "node/storage/meta_codec.h"

using namespace kv;
using namespace kv::node;

TEST_CASE("little-endian integers round-trip and refuse short input") {
    std::string bytes;
    meta::put_u64(bytes, 0x0102030405060708ULL);
    meta::put_u64(bytes, UINT64_MAX);
    CHECK(bytes.size() == 16);
    CHECK(bytes[0] == 0x08);
    std::string_view in = bytes;
    uint64_t a = 0, b = 0, c = 0;
    CHECK(meta::get_u64(in, a));
    CHECK(meta::get_u64(in, b));
    CHECK_FALSE(meta::get_u64(in, c));
    CHECK(a == 0x0102030405060708ULL);
    CHECK(b == UINT64_MAX);
}

TEST_CASE("decimal counters round-trip; junk and overflow are refused") {
    CHECK(meta::decode_u64_text(meta::encode_u64_text(0)) == 0u);
    CHECK(meta::decode_u64_text(meta::encode_u64_text(UINT64_MAX)) == UINT64_MAX);
    CHECK_FALSE(meta::decode_u64_text(""));
    CHECK_FALSE(meta::decode_u64_text("12a"));
    CHECK_FALSE(meta::decode_u64_text("18446744073709551616"));
}

TEST_CASE("tokens decode sorted and distinct, within their bound") {
    const std::string bytes = meta::encode_tokens({9, 3, 9, 1});
    CHECK(bytes.size() == 32);
    CHECK(meta::decode_tokens(bytes, 16) == std::vector<uint64_t>{1, 3, 9});
    CHECK_FALSE(meta::decode_tokens(bytes, 3));             // more tokens than allowed
    CHECK_FALSE(meta::decode_tokens(bytes.substr(1), 16));  // not a multiple of 8
    CHECK(meta::decode_tokens("", 16) == std::vector<uint64_t>{});
}

TEST_CASE("handoff records round-trip; truncated ones are refused") {
    meta::HandoffRecord record;
    record["n4"] = {ring::Range{1, 2}, ring::Range{UINT64_MAX, 7}};
    record["n5"] = {};
    const std::string bytes = meta::encode_handoffs(record);
    CHECK(meta::decode_handoffs(bytes) == record);
    CHECK(meta::decode_handoffs("") == meta::HandoffRecord{});
    for (size_t cut = 1; cut < bytes.size(); cut += 7) {
        INFO("cut at " << cut);
        auto decoded = meta::decode_handoffs(bytes.substr(0, cut));
        CHECK((!decoded || *decoded != record));
    }
    CHECK_FALSE(meta::decode_handoffs(std::string(8, '\xff')));
}

TEST_CASE("the meta format: absent or known reads, a newer one stops the node") {
    CHECK(meta::check_format(std::nullopt).ok());
    CHECK(meta::check_format(meta::encode_u64_text(meta::kMetaFormat)).ok());
    const Status newer = meta::check_format(meta::encode_u64_text(meta::kMetaFormat + 1));
    CHECK(newer.code() == ErrorCode::storage_error);
    CHECK_THAT(newer.message(), Catch::Contains("format 2"));
    CHECK(meta::check_format(std::string("x")).code() == ErrorCode::storage_error);
}
