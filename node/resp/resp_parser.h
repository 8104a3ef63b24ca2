// Reads Redis clients' commands (RESP2/RESP3 request syntax) from a byte
// stream that arrives in pieces. A command is an array of bulk strings
// ("*2\r\n$3\r\nGET\r\n$1\r\na\r\n"), what every client library sends, or an
// inline command (a line of words, what a person types over telnet).
//
// Input is hostile: every length is checked against Limits before anything is
// allocated for it, and a command is taken only once all of it has arrived,
// so a half-sent command holds its own bytes, plus room for the rest of one
// large argument whose length has arrived; once all is taken, the buffer keeps
// at most 64 KiB of room. After an error the stream
// cannot be resynchronised: the gateway answers the error and closes the
// connection, as Redis does.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace kv::node::resp {

struct ParserLimits {
    size_t args_max = 4097;                       // MSET of 2048 pairs, plus the name
    size_t bulk_bytes_max = 1 << 20;              // one argument (a value)
    size_t command_bytes_max = 20 * 1024 * 1024;  // one whole command, as sent
    size_t inline_bytes_max = 64 * 1024;          // one inline command line
};

class CommandParser {
  public:
    explicit CommandParser(ParserLimits limits = {}) : limits_(limits) {}

    // Appends what arrived; parse with next().
    void feed(std::string_view bytes);

    enum class Outcome { need_more, command, error };
    // The next whole command into `args` (command: at least one argument),
    // need_more when it has not all arrived, or error with `error` set to a
    // Redis-style text ("Protocol error: ..."), after which the parser only
    // answers error.
    Outcome next(std::vector<std::string>& args, std::string& error);

    // Bytes received and not yet taken as commands.
    size_t buffered_bytes() const { return buffer_.size() - pos_; }
    // Bytes allocated for them (and for commands taken, until compacted or
    // released).
    size_t capacity_bytes() const { return buffer_.capacity(); }

  private:
    Outcome parse_array(std::vector<std::string>& args, std::string& error);
    Outcome parse_inline(std::vector<std::string>& args, std::string& error);
    // The number after a type byte up to CRLF at `at`; need_more or error as next().
    Outcome read_length(size_t& at, char type, long long& length, std::string& error);
    Outcome fail(std::string& error, std::string text);
    // Room for the command being read up to the end of its argument at `at`.
    void make_room(size_t at, size_t length);
    void compact();
    void release();

    ParserLimits limits_;
    std::string buffer_;
    size_t pos_ = 0;  // start of the first command not yet taken
    bool failed_ = false;
    std::string failure_;
};

}  // namespace kv::node::resp
