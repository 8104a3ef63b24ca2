// Unit test for client/json_util.h (to be wired as tests/unit/json_util_test.cpp).
#include <catch2/catch.hpp>
#include <random>
#include <string>

#include "client/json_util.h"

using namespace kv::client;

TEST_CASE("base64 matches RFC 4648 test vectors") {
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_encode("foob") == "Zm9vYg==");
    CHECK(base64_encode("fooba") == "Zm9vYmE=");
    CHECK(base64_encode("foobar") == "Zm9vYmFy");
    CHECK(base64_decode("Zm9vYmE=").value() == "fooba");
    CHECK(base64_decode("").value().empty());
}

TEST_CASE("base64 round-trips arbitrary bytes") {
    std::mt19937 rng(7);
    for (size_t len = 0; len < 300; ++len) {
        std::string bytes(len, '\0');
        for (auto& c : bytes) c = static_cast<char>(rng() & 0xff);
        auto decoded = base64_decode(base64_encode(bytes));
        REQUIRE(decoded.has_value());
        CHECK(*decoded == bytes);
    }
}

TEST_CASE("base64 decoding is strict") {
    CHECK_FALSE(base64_decode("Zg=").has_value());       // length not a multiple of 4
    CHECK_FALSE(base64_decode("Z*==").has_value());      // bad symbol
    CHECK_FALSE(base64_decode("Zh==").has_value());      // non-zero unused bits
    CHECK_FALSE(base64_decode("Zg==Zg==").has_value());  // padding in the middle
    CHECK_FALSE(base64_decode("Zm9v\n").has_value());
}

TEST_CASE("UTF-8 validation follows RFC 3629") {
    CHECK(is_valid_utf8("plain"));
    CHECK(is_valid_utf8("h\xc3\xa9"));         // é
    CHECK(is_valid_utf8("\xf0\x9f\x98\x80"));  // U+1F600
    CHECK_FALSE(is_valid_utf8("\xff"));
    CHECK_FALSE(is_valid_utf8("\xc3"));              // truncated
    CHECK_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
    CHECK_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
    CHECK_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
}

TEST_CASE("json_quote escapes and always yields valid JSON") {
    CHECK(json_quote("a\"b\\c") == "\"a\\\"b\\\\c\"");
    CHECK(json_quote(std::string("\n\t\x01", 3)) == "\"\\n\\t\\u0001\"");
    CHECK(json_quote(std::string("\0", 1)) == "\"\\u0000\"");
    CHECK(json_quote("h\xc3\xa9") == "\"h\xc3\xa9\"");
    CHECK(json_quote("x\xffy") == "\"x\\ufffdy\"");
    CHECK(is_valid_utf8(json_quote("\xc3\x28\xe2\x82")));
}
