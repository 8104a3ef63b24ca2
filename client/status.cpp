#include "client/status.h"

#include <array>

namespace kv {

namespace {
constexpr std::array<std::string_view, 20> kNames = {
    "ok",
    "not_found",
    "bad_request",
    "unsupported_version",
    "unknown_type",
    "key_too_large",
    "value_too_large",
    "message_too_large",
    "bad_context",
    "unavailable",
    "timeout",
    "sibling_limit",
    "storage_error",
    "unauthorized",
    "overloaded",
    "internal",
    "invalid_argument",
    "object_too_large",
    "connection",
    "not_owner",
};
}  // namespace

std::string_view error_name(ErrorCode code) {
    auto i = static_cast<size_t>(code);
    return i < kNames.size() ? kNames[i] : std::string_view("unknown_error");
}

std::optional<ErrorCode> error_from_name(std::string_view name) {
    for (size_t i = 0; i < kNames.size(); ++i) {
        if (kNames[i] == name) return static_cast<ErrorCode>(i);
    }
    return std::nullopt;
}

bool is_known_error(uint64_t value) {
    return value < kNames.size();
}

std::string Status::to_string() const {
    std::string s(error_name(code_));
    if (!message_.empty()) {
        s += ": ";
        s += message_;
    }
    return s;
}

}  // namespace kv
