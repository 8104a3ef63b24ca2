// Batch frames: several peer-protocol messages bound for one member in one
// ZeroMQ frame (docs/PROTOCOL.md, "Batch frames"). Every message costs
// ZeroMQ a pipe write, often a wake-up of its I/O thread through an eventfd,
// and the same again at the receiver; the messages a loop iteration sends to
// one member go as one frame instead.
//
// Layout: the byte 0xc1 (never the first byte of a msgpack value, so never of
// a single message), then per message a u32 little-endian length and the
// message's own frame. Only members send them (requests on their DEALERs, and
// replies to a connection that sent one); a ROUTER refuses one from a client.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "client/protocol.h"

namespace kv::node {

constexpr char kBatchFrameMarker = static_cast<char>(0xc1);
// A batch is closed before it grows past this; a larger message goes alone.
constexpr size_t kBatchFrameBytesMax = size_t{1} << 20;
static_assert(kBatchFrameBytesMax <= proto::kFrameBytesMax);

// A frame too large for one message is not read as a batch either: decoding
// it as a message answers message_too_large, as for any oversized frame.
inline bool is_batch_frame(std::string_view frame) {
    return !frame.empty() && frame.front() == kBatchFrameMarker &&
           frame.size() <= proto::kFrameBytesMax;
}

// The messages of a batch frame, views into `frame`; false when it is
// malformed (a length past its end, or no message at all).
bool split_batch_frame(std::string_view frame, std::vector<std::string_view>& messages);

// Appends messages to a batch frame.
class BatchFrame {
  public:
    BatchFrame() : bytes_(1, kBatchFrameMarker) {}
    // Whether `message_bytes` more fit under kBatchFrameBytesMax (always for the first).
    bool fits(size_t message_bytes) const {
        return count_ == 0 || bytes_.size() + 4 + message_bytes <= kBatchFrameBytesMax;
    }
    void add(std::string_view message);
    size_t count() const { return count_; }
    const std::string& bytes() const { return bytes_; }

  private:
    std::string bytes_;
    size_t count_ = 0;
};

}  // namespace kv::node
