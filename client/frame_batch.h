// Batch frames: several protocol messages bound for one connection in one
// ZeroMQ frame (docs/PROTOCOL.md, "Batch frames"). Every message costs
// ZeroMQ a pipe write, often a wake-up of its I/O thread through an eventfd,
// and the same again at the receiver; the messages a loop iteration sends to
// one connection go as one frame instead.
//
// Layout: the byte 0xc1 (never the first byte of a msgpack value, so never of
// a single message), then per message a u32 little-endian length and the
// message's own frame. Members send them to members; the client library
// (client.h) sends the requests its callbacks submit; a node answers a
// connection that sent one with batch frames too. Each message in a batch is
// checked and answered as if it had come alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "client/protocol.h"

namespace kv::proto {

constexpr char kBatchFrameMarker = static_cast<char>(0xc1);
// A batch is closed before it grows past this; a larger message goes alone.
constexpr size_t kBatchFrameBytesMax = size_t{1} << 20;
static_assert(kBatchFrameBytesMax <= kFrameBytesMax);

// A frame too large for one message is not read as a batch either: decoding
// it as a message answers message_too_large, as for any oversized frame.
inline bool is_batch_frame(std::string_view frame) {
    return !frame.empty() && frame.front() == kBatchFrameMarker &&
           frame.size() <= kFrameBytesMax;
}

// The messages of a batch frame, views into `frame`; false when it is
// malformed (a length past its end, or no message at all).
bool split_batch_frame(std::string_view frame, std::vector<std::string_view>& messages);

// Appends messages to a batch frame of at most `bytes_max` bytes (a lone
// message larger than that still goes, alone).
class BatchFrame {
  public:
    explicit BatchFrame(size_t bytes_max = kBatchFrameBytesMax)
        : bytes_(1, kBatchFrameMarker), bytes_max_(bytes_max) {}
    // Whether `message_bytes` more fit under bytes_max (always for the first).
    bool fits(size_t message_bytes) const {
        return count_ == 0 || bytes_.size() + 4 + message_bytes <= bytes_max_;
    }
    void add(std::string_view message);
    size_t count() const { return count_; }
    const std::string& bytes() const { return bytes_; }

  private:
    std::string bytes_;
    size_t bytes_max_;
    size_t count_ = 0;
};

}  // namespace kv::proto
