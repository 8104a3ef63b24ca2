#include "client/frame_link.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kv::client {

namespace {

// Read room added at a time: a read fills what it can of it.
constexpr size_t kReadChunkBytes = size_t{64} << 10;
// A buffer above this is freed once empty (it held a large frame), so idle
// links keep little memory whatever they once carried.
constexpr size_t kKeptBufferBytes = 4 * kReadChunkBytes;

Status socket_error(const char* what, int error) {
    return {ErrorCode::connection, std::string(what) + ": " + std::strerror(error)};
}

uint32_t get_u32le(const char* p) {
    uint32_t v = 0;
    for (size_t i = 0; i < FrameLink::kHeaderBytes; ++i)
        v |= uint32_t{static_cast<uint8_t>(p[i])} << (8 * i);
    return v;
}

}  // namespace

FrameLink::FrameLink(int fd, size_t frame_bytes_max) : fd_(fd), frame_bytes_max_(frame_bytes_max) {
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags >= 0) ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
}

FrameLink::~FrameLink() {
    if (fd_ >= 0) ::close(fd_);
}

Status FrameLink::fill() {
    // Move what is left of a frame to the front, so the buffer holds at most
    // one frame in progress plus a chunk, however long the link lives.
    if (in_begin_ > 0) {
        std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
        in_end_ -= in_begin_;
        in_begin_ = 0;
    }
    if (in_end_ == 0 && in_.size() > kKeptBufferBytes) std::vector<char>().swap(in_);
    size_t read_total = 0;
    while (read_total < kReadBudgetBytes) {
        if (in_.size() - in_end_ < kReadChunkBytes / 4) in_.resize(in_end_ + kReadChunkBytes);
        const size_t room = in_.size() - in_end_;
        const ssize_t n = ::recv(fd_, in_.data() + in_end_, room, 0);
        if (n > 0) {
            in_end_ += static_cast<size_t>(n);
            read_total += static_cast<size_t>(n);
            // A short read means the kernel holds nothing more: no second
            // call only to learn EAGAIN.
            if (static_cast<size_t>(n) < room) return {};
            continue;
        }
        if (n == 0) return {ErrorCode::connection, "closed by the peer"};
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
        return socket_error("receive", errno);
    }
    return {};
}

Status FrameLink::next_frame(std::string_view& frame) {
    frame = {};
    const size_t held = in_end_ - in_begin_;
    if (held < kHeaderBytes) return {};
    const uint32_t bytes = get_u32le(in_.data() + in_begin_);
    if (bytes > frame_bytes_max_) {
        return {ErrorCode::message_too_large, "a frame of " + std::to_string(bytes) +
                                                  " bytes, above the limit of " +
                                                  std::to_string(frame_bytes_max_)};
    }
    if (held - kHeaderBytes < bytes) {
        // Room for the whole frame, so the reads that complete it need not
        // grow the buffer piece by piece.
        if (in_.size() - in_begin_ < kHeaderBytes + bytes)
            in_.resize(in_begin_ + kHeaderBytes + bytes);
        return {};
    }
    // A frame of no bytes still has a non-null view: data() null means none.
    frame = std::string_view(in_.data() + in_begin_ + kHeaderBytes, bytes);
    in_begin_ += kHeaderBytes + bytes;
    return {};
}

Status FrameLink::send(std::string_view frame) {
    if (frame.size() > frame_bytes_max_) {
        return {ErrorCode::message_too_large, "a frame of " + std::to_string(frame.size()) +
                                                  " bytes, above the limit of " +
                                                  std::to_string(frame_bytes_max_)};
    }
    if (out_at_ == out_.size()) {
        out_.clear();
        out_at_ = 0;
    }
    const auto bytes = static_cast<uint32_t>(frame.size());
    char header[kHeaderBytes];
    for (size_t i = 0; i < kHeaderBytes; ++i)
        header[i] = static_cast<char>((bytes >> (8 * i)) & 0xff);
    out_.append(header, kHeaderBytes);
    out_.append(frame);
    return {};
}

Status FrameLink::flush() {
    while (out_at_ < out_.size()) {
        // MSG_NOSIGNAL: a peer that went away is an error here, not SIGPIPE.
        const ssize_t n = ::send(fd_, out_.data() + out_at_, out_.size() - out_at_, MSG_NOSIGNAL);
        if (n >= 0) {
            out_at_ += static_cast<size_t>(n);
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
        return socket_error("send", errno);
    }
    if (out_.capacity() > kKeptBufferBytes) {
        std::string().swap(out_);
    } else {
        out_.clear();
    }
    out_at_ = 0;
    return {};
}

}  // namespace kv::client
