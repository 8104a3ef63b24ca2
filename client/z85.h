// Z85 (ZeroMQ RFC 32), the text form of CURVE keys: 4 bytes become 5
// printable characters, so a 32-byte key is 40 characters. Pure code (no
// ZeroMQ), shared by the node (which validates keys in admin requests) and
// the tools (which read and print them).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace kv {

constexpr size_t kCurveKeyBytes = 32;
constexpr size_t kCurveKeyZ85Chars = 40;

// `bytes.size()` must be a multiple of 4.
std::optional<std::string> z85_encode(std::string_view bytes);
// nullopt unless `text` is Z85: a multiple of 5 characters of the alphabet,
// each group encoding a value below 2^32.
std::optional<std::string> z85_decode(std::string_view text);
// A 40-character Z85 string that decodes to 32 bytes.
bool is_curve_key_z85(std::string_view text);

}  // namespace kv
