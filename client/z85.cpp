#include "client/z85.h"

#include <array>
#include <cstdint>

namespace kv {

namespace {

constexpr std::string_view kAlphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

constexpr std::array<int8_t, 256> make_decoder() {
    std::array<int8_t, 256> table{};
    for (auto& v : table) v = -1;
    for (size_t i = 0; i < kAlphabet.size(); ++i) {
        table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
    }
    return table;
}
constexpr std::array<int8_t, 256> kDecoder = make_decoder();

}  // namespace

std::optional<std::string> z85_encode(std::string_view bytes) {
    if (bytes.size() % 4 != 0) return std::nullopt;
    std::string out;
    out.reserve(bytes.size() / 4 * 5);
    for (size_t i = 0; i < bytes.size(); i += 4) {
        uint32_t value = 0;
        for (size_t j = 0; j < 4; ++j)
            value = value * 256 + static_cast<unsigned char>(bytes[i + j]);
        char group[5];
        for (int j = 4; j >= 0; --j) {
            group[j] = kAlphabet[value % 85];
            value /= 85;
        }
        out.append(group, 5);
    }
    return out;
}

std::optional<std::string> z85_decode(std::string_view text) {
    if (text.size() % 5 != 0) return std::nullopt;
    std::string out;
    out.reserve(text.size() / 5 * 4);
    for (size_t i = 0; i < text.size(); i += 5) {
        uint64_t value = 0;  // 85^5 - 1 exceeds 2^32: checked below
        for (size_t j = 0; j < 5; ++j) {
            const int8_t digit = kDecoder[static_cast<unsigned char>(text[i + j])];
            if (digit < 0) return std::nullopt;
            value = value * 85 + static_cast<uint64_t>(digit);
        }
        if (value > 0xffffffffULL) return std::nullopt;
        for (int shift = 24; shift >= 0; shift -= 8) {
            out.push_back(static_cast<char>((value >> shift) & 0xff));
        }
    }
    return out;
}

bool is_curve_key_z85(std::string_view text) {
    if (text.size() != kCurveKeyZ85Chars) return false;
    auto raw = z85_decode(text);
    return raw && raw->size() == kCurveKeyBytes;
}

}  // namespace kv
