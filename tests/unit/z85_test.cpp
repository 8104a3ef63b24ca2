#include <catch2/catch.hpp>
#include <string>

#include "client/z85.h"

using namespace kv;

TEST_CASE("z85 matches the RFC 32 test vector", "[z85]") {
    const std::string bytes("\x86\x4F\xD2\x6F\xB5\x59\xF7\x5B", 8);
    REQUIRE(z85_encode(bytes) == std::optional<std::string>("HelloWorld"));
    REQUIRE(z85_decode("HelloWorld") == std::optional<std::string>(bytes));
}

TEST_CASE("z85 round-trips every byte value and rejects what is not Z85", "[z85]") {
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    auto text = z85_encode(all);
    REQUIRE(text);
    REQUIRE(text->size() == 320);
    REQUIRE(z85_decode(*text) == std::optional<std::string>(all));

    CHECK_FALSE(z85_encode("abc"));  // not a multiple of 4 bytes
    CHECK_FALSE(
        z85_decode("Hello"
                   "Worl"));           // not a multiple of 5 characters
    CHECK_FALSE(z85_decode("Hell,"));  // ',' is not in the alphabet
    CHECK_FALSE(z85_decode("%%%%%"));  // 84 * (85^4 + ... + 1) > 2^32 - 1
    CHECK(z85_decode("%nSc0") == std::optional<std::string>(std::string(4, '\xff')));
}

TEST_CASE("is_curve_key_z85 takes exactly 40 valid characters", "[z85]") {
    const std::string key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";  // ZeroMQ's example
    CHECK(is_curve_key_z85(key));
    CHECK_FALSE(is_curve_key_z85(key.substr(0, 35)));
    CHECK_FALSE(is_curve_key_z85(key + "00000"));
    CHECK_FALSE(is_curve_key_z85(std::string(40, ' ')));
}
