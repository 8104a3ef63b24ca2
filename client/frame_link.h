// One end of a stream of frames over a connected stream socket (TCP or Unix)
// in non-blocking mode, driven by its owner's epoll: the transport an event
// loop can own, with no ZeroMQ I/O thread between the loop and the kernel.
//
// Why: on our machines ZeroMQ's I/O thread and the hand-offs to it are a
// quarter of a node's CPU per quorum get and a sixth per put, and a lone
// request costs the node 19 system calls (docs/BENCHMARKS.md, issue 14,
// seventh and twenty-third steps); a socket read and written by the loop
// itself costs one read and one write per batch of frames. This is the framing
// layer only: it carries opaque frames. Nothing in kvnode or the client
// library uses it yet (kvwire's tcp mode does); authentication and encryption
// go on top of it, frame by frame, before either does.
//
// On the wire a frame is its length (4 bytes, little endian) and then that
// many bytes. A length above frame_bytes_max ends the link: the peer is
// broken or hostile, and skipping its bytes would only resynchronise on
// garbage.
//
// Neither call blocks. receive() reads what the kernel holds (up to a budget,
// so one busy link cannot starve the others of a loop) and hands over each
// whole frame; send() queues a frame; flush() writes what the kernel takes,
// and wants_write() says the rest waits for EPOLLOUT. A link is used by one
// thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "client/status.h"

namespace kv::client {

class FrameLink {
  public:
    static constexpr size_t kHeaderBytes = 4;
    // Bytes receive() reads in one call before it returns, frames taken.
    static constexpr size_t kReadBudgetBytes = size_t{256} << 10;

    // Takes `fd` (a connected stream socket), closed by the destructor, and
    // makes it non-blocking.
    FrameLink(int fd, size_t frame_bytes_max);
    ~FrameLink();
    FrameLink(const FrameLink&) = delete;
    FrameLink& operator=(const FrameLink&) = delete;

    int fd() const { return fd_; }
    size_t frame_bytes_max() const { return frame_bytes_max_; }

    // Reads what the kernel holds, at most kReadBudgetBytes (a level-triggered
    // epoll reports the rest), and calls on_frame(std::string_view) with each
    // whole frame in order; a view lives until on_frame returns. Frames that
    // arrived before the peer closed are handed over first. Not ok once the
    // link is finished: the peer closed it (connection, "closed by the peer"),
    // a frame was longer than frame_bytes_max (message_too_large), or the
    // socket failed (connection); then the owner closes the link.
    template <typename OnFrame>
    Status receive(OnFrame&& on_frame) {
        const Status read = fill();
        std::string_view frame;
        Status taken;
        while ((taken = next_frame(frame)).ok() && frame.data() != nullptr) on_frame(frame);
        if (!taken.ok()) return taken;
        return read;
    }

    // Queues one frame (copied: frames are small, and one buffer goes out in
    // one write). Nothing is written until flush(). A frame longer than
    // frame_bytes_max is refused (message_too_large) and nothing is queued.
    Status send(std::string_view frame);
    // Writes what is queued, as far as the kernel takes it. Ok with bytes
    // left (wants_write()) when the socket's buffer is full; not ok when the
    // socket failed (the peer is gone): the link is finished.
    Status flush();
    bool wants_write() const { return out_at_ < out_.size(); }
    // Bytes queued and not yet written: a caller bounds what it queues for a
    // slow reader by this.
    size_t queued_bytes() const { return out_.size() - out_at_; }

  private:
    // Reads into in_ until EAGAIN, end of stream, an error or the budget.
    Status fill();
    // The next whole frame in in_ (data() null when there is none yet), or
    // message_too_large.
    Status next_frame(std::string_view& frame);

    int fd_;
    size_t frame_bytes_max_;
    // Received bytes are in_[in_begin_, in_end_). Reads go straight into its
    // spare room, grown without zero-filling it again; it holds at most one
    // frame in progress plus a read chunk, and is given back once it is empty
    // after a large frame (as out_ is once written).
    std::vector<char> in_;
    size_t in_begin_ = 0;
    size_t in_end_ = 0;
    std::string out_;  // queued frames, header and bytes; out_[out_at_, size) unwritten
    size_t out_at_ = 0;
};

}  // namespace kv::client
