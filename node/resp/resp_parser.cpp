#include "node/resp/resp_parser.h"

#include <charconv>

namespace kv::node::resp {

namespace {
// "*<n>\r\n" and "$<n>\r\n" fit in this many bytes; a longer header is garbage.
constexpr size_t kHeaderBytesMax = 32;
// An argument at least this long gets room for all of it once its header has
// arrived (as Redis does from the same size).
constexpr size_t kLargeBulkBytes = 32 * 1024;
// A buffer all taken keeps at most this much room for the next commands; a
// larger one (a large argument's) is given back, so an idle connection holds
// no more than this.
constexpr size_t kIdleRoomBytesMax = 64 * 1024;
}  // namespace

void CommandParser::feed(std::string_view bytes) {
    if (failed_) return;
    compact();
    buffer_.append(bytes);
}

// Drops the bytes of commands already taken, once they are most of the buffer
// (so a pipeline of small commands does not move the rest after each one). A
// buffer all taken was already released by next().
void CommandParser::compact() {
    if (pos_ > 0 && pos_ >= buffer_.size() / 2) {
        buffer_.erase(0, pos_);
        pos_ = 0;
    }
}

// Everything received was taken (the commands' arguments are copies): the
// buffer starts over, giving back room past kIdleRoomBytesMax.
void CommandParser::release() {
    pos_ = 0;
    if (buffer_.capacity() > kIdleRoomBytesMax) {
        std::string().swap(buffer_);
    } else {
        buffer_.clear();
    }
}

// A large argument is still arriving: the buffer gets room for the command up
// to the end of that argument now, so its bytes are copied in once. Left to
// grow by doubling, the buffer would copy them about twice more and leave
// allocations of up to twice the argument, counting the blocks it freed on the
// way. The room is address space until the bytes arrive, and is never more
// than what the connection sent plus one argument's limit (lengths are checked
// before this).
void CommandParser::make_room(size_t at, size_t length) {
    if (pos_ > 0) {  // commands already taken need no room
        buffer_.erase(0, pos_);
        at -= pos_;
        pos_ = 0;
    }
    buffer_.reserve(at + length + 2);
}

CommandParser::Outcome CommandParser::fail(std::string& error, std::string text) {
    failed_ = true;
    failure_ = std::move(text);
    error = failure_;
    buffer_.clear();
    buffer_.shrink_to_fit();
    pos_ = 0;
    return Outcome::error;
}

CommandParser::Outcome CommandParser::next(std::vector<std::string>& args, std::string& error) {
    args.clear();
    if (failed_) {
        error = failure_;
        return Outcome::error;
    }
    while (pos_ < buffer_.size()) {
        Outcome outcome =
            buffer_[pos_] == '*' ? parse_array(args, error) : parse_inline(args, error);
        // An empty array or a blank line is no command: Redis skips them too.
        if (outcome == Outcome::command && args.empty()) continue;
        if (outcome == Outcome::command && pos_ == buffer_.size()) release();
        return outcome;
    }
    if (pos_ > 0) release();  // all taken, the last of it empty commands
    return Outcome::need_more;
}

CommandParser::Outcome CommandParser::read_length(size_t& at, char type, long long& length,
                                                  std::string& error) {
    if (at >= buffer_.size()) return Outcome::need_more;
    if (buffer_[at] != type) {
        return fail(error, std::string("Protocol error: expected '") + type + "', got '" +
                               (buffer_[at] >= 32 && buffer_[at] < 127 ? std::string(1, buffer_[at])
                                                                       : std::string("?")) +
                               "'");
    }
    const size_t end = buffer_.find("\r\n", at + 1);
    if (end == std::string::npos) {
        // A header of kHeaderBytesMax may be here with its '\r', its '\n'
        // still to come: refused only past that, as it would be once whole.
        if (buffer_.size() - at > kHeaderBytesMax + 1) {
            return fail(error, type == '*' ? "Protocol error: invalid multibulk length"
                                           : "Protocol error: invalid bulk length");
        }
        return Outcome::need_more;
    }
    const char* first = buffer_.data() + at + 1;
    const char* last = buffer_.data() + end;
    auto [ptr, ec] = std::from_chars(first, last, length);
    if (ec != std::errc() || ptr != last || end - at > kHeaderBytesMax) {
        return fail(error, type == '*' ? "Protocol error: invalid multibulk length"
                                       : "Protocol error: invalid bulk length");
    }
    at = end + 2;
    return Outcome::command;
}

CommandParser::Outcome CommandParser::parse_array(std::vector<std::string>& args,
                                                  std::string& error) {
    size_t at = pos_;
    long long count = 0;
    if (Outcome o = read_length(at, '*', count, error); o != Outcome::command) return o;
    if (count > static_cast<long long>(limits_.args_max)) {
        return fail(error, "Protocol error: invalid multibulk length (more than " +
                               std::to_string(limits_.args_max) + " arguments)");
    }
    if (count <= 0) {  // *0 and *-1: nothing to do
        pos_ = at;
        return Outcome::command;
    }
    // First check that the whole command is here, then copy it: a command
    // still arriving costs a scan of its headers, never an allocation.
    std::vector<std::pair<size_t, size_t>> spans;  // offset, length of each argument
    spans.reserve(static_cast<size_t>(count));
    for (long long i = 0; i < count; ++i) {
        long long length = 0;
        if (Outcome o = read_length(at, '$', length, error); o != Outcome::command) return o;
        if (length < 0 || static_cast<unsigned long long>(length) > limits_.bulk_bytes_max) {
            return fail(error, "Protocol error: invalid bulk length (an argument is limited to " +
                                   std::to_string(limits_.bulk_bytes_max) + " bytes)");
        }
        if (at - pos_ + static_cast<size_t>(length) > limits_.command_bytes_max) {
            return fail(error, "Protocol error: command larger than " +
                                   std::to_string(limits_.command_bytes_max) + " bytes");
        }
        if (buffer_.size() < at + static_cast<size_t>(length) + 2) {
            if (static_cast<size_t>(length) >= kLargeBulkBytes) make_room(at, length);
            return Outcome::need_more;
        }
        if (buffer_[at + length] != '\r' || buffer_[at + length + 1] != '\n') {
            return fail(error, "Protocol error: a bulk string does not end with CRLF");
        }
        spans.emplace_back(at, static_cast<size_t>(length));
        at += static_cast<size_t>(length) + 2;
    }
    args.reserve(spans.size());
    for (const auto& [offset, length] : spans) args.emplace_back(buffer_, offset, length);
    pos_ = at;
    return Outcome::command;
}

CommandParser::Outcome CommandParser::parse_inline(std::vector<std::string>& args,
                                                   std::string& error) {
    const size_t end = buffer_.find('\n', pos_);
    if (end == std::string::npos) {
        if (buffer_.size() - pos_ > limits_.inline_bytes_max) {
            return fail(error, "Protocol error: too big inline request");
        }
        return Outcome::need_more;
    }
    if (end - pos_ > limits_.inline_bytes_max) {
        return fail(error, "Protocol error: too big inline request");
    }
    std::string_view line(buffer_.data() + pos_, end - pos_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // Words split at spaces and tabs (Redis also reads quotes; we do not).
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        const size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
        if (i > start) {
            if (args.size() >= limits_.args_max) {
                return fail(error, "Protocol error: too many arguments in an inline request");
            }
            if (i - start > limits_.bulk_bytes_max) {  // the limit of an argument, however sent
                return fail(error, "Protocol error: an inline argument is longer than " +
                                       std::to_string(limits_.bulk_bytes_max) + " bytes");
            }
            args.emplace_back(line.substr(start, i - start));
        }
    }
    pos_ = end + 1;
    return Outcome::command;
}

}  // namespace kv::node::resp
