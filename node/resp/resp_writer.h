// Writes RESP2 and RESP3 replies (https://redis.io/docs/reference/protocol-spec/)
// by appending to a connection's output. Where the two differ (null, maps,
// doubles), the connection's protocol version, set by HELLO, decides.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kv::node::resp {

class ReplyWriter {
  public:
    ReplyWriter(std::string& out, int protocol) : out_(out), protocol_(protocol) {}

    // "+text": `text` must hold no CR or LF (they become spaces).
    void simple(std::string_view text);
    // "-CODE message": CR and LF in it become spaces, so no reply can split.
    void error(std::string_view code_and_message);
    void integer(int64_t value);
    void bulk(std::string_view bytes);
    // RESP2 "$-1", RESP3 "_".
    void null();
    // RESP2 "*-1", RESP3 "_" (MGET's absent elements are null bulk strings instead).
    void null_array();
    void array(size_t items);
    // RESP3 "%n"; RESP2 an array of 2n items (key, value, ...).
    void map(size_t pairs);

  private:
    void line(char type, std::string_view text);
    std::string& out_;
    int protocol_;
};

}  // namespace kv::node::resp
