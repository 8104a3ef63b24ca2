// Error codes and result values shared by the wire protocol, the client library
// and the node. Errors cross module boundaries as values, never as exceptions.
// The numeric values are part of the wire protocol (docs/PROTOCOL.md): never
// renumber, only append.
#pragma once

#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace kv {

enum class ErrorCode : uint16_t {
    ok = 0,
    not_found = 1,            // the key has no live value (absent or deleted)
    bad_request = 2,          // malformed frame, truncated msgpack, wrong field types
    unsupported_version = 3,  // protocol version "v" not spoken by this node
    unknown_type = 4,         // message type "t" not known
    key_too_large = 5,
    value_too_large = 6,
    message_too_large = 7,
    bad_context = 8,        // the causal context could not be decoded
    unavailable = 9,        // too few replicas reachable to meet the consistency level
    timeout = 10,           // the deadline passed before the level was met
    sibling_limit = 11,     // the write would keep more siblings than allowed
    storage_error = 12,     // the store failed to read or commit
    unauthorized = 13,      // credentials missing or lacking the grant
    overloaded = 14,        // the node sheds load (queues full)
    internal = 15,          // a bug: reported rather than crashing the node
    invalid_argument = 16,  // well-formed but meaningless (empty key, r > n, ...)
    object_too_large = 17,  // the stored object (all siblings) would exceed its limit
    connection = 18,        // client side: could not reach any node
    not_owner = 19,         // node to node: the key's range is not (or no longer) this node's
};

// Stable lower_snake name of a code, as used on the wire docs and by kvctl.
std::string_view error_name(ErrorCode code);
// Inverse of error_name; nullopt for an unknown name.
std::optional<ErrorCode> error_from_name(std::string_view name);
// True for codes that are defined above (decoders map other numbers to internal).
bool is_known_error(uint64_t value);

// An operation's outcome: ok, or a code with a human-readable message.
class Status {
  public:
    Status() = default;
    Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
    static Status ok_status() { return {}; }

    bool ok() const { return code_ == ErrorCode::ok; }
    ErrorCode code() const { return code_; }
    const std::string& message() const { return message_; }
    // "code_name: message", for logs and CLI output.
    std::string to_string() const;

  private:
    ErrorCode code_ = ErrorCode::ok;
    std::string message_;
};

// A value or an error Status. Accessing the value of an error is a bug (asserted).
template <typename T>
class Result {
  public:
    Result(T value) : v_(std::move(value)) {}
    Result(Status error) : v_(std::move(error)) { assert(!std::get<Status>(v_).ok()); }

    bool ok() const { return std::holds_alternative<T>(v_); }
    explicit operator bool() const { return ok(); }
    T& value() & {
        assert(ok());
        return std::get<T>(v_);
    }
    const T& value() const& {
        assert(ok());
        return std::get<T>(v_);
    }
    T&& value() && {
        assert(ok());
        return std::get<T>(std::move(v_));
    }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Status& status() const {
        static const Status ok_status;
        return ok() ? ok_status : std::get<Status>(v_);
    }

  private:
    std::variant<T, Status> v_;
};

}  // namespace kv
