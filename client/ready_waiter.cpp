#include "client/ready_waiter.h"

#include <sys/epoll.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <cerrno>

namespace kv::client {

ReadyWaiter::ReadyWaiter() : epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (epoll_fd_ < 0) throw zmq::error_t();
}

ReadyWaiter::~ReadyWaiter() {
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

bool ReadyWaiter::same_items(const std::vector<zmq::pollitem_t>& items) const {
    if (items.size() != registered_.size()) return false;
    for (size_t i = 0; i < items.size(); ++i) {
        if (items[i].socket != registered_[i].socket) return false;
        if (items[i].socket == nullptr && items[i].fd != registered_[i].fd) return false;
    }
    return true;
}

// The new items into the same epoll set: its descriptor is what a caller of
// fd() (a PollGroup) watches, so it stays for the waiter's life. Each
// descriptor added before is taken out first. One whose file was closed left
// the set with it, and the removal fails harmlessly (ENOENT, or EBADF): epoll
// knows an entry by its file and number together, so a number reused by a
// socket made since is not mistaken for the old entry.
void ReadyWaiter::register_items(const std::vector<zmq::pollitem_t>& items) {
    for (int fd : in_set_) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    in_set_.clear();
    registered_.clear();
    registered_.reserve(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
        Registered r;
        r.socket = items[i].socket;
        if (r.socket != nullptr) {
            size_t size = sizeof r.fd;
            if (zmq_getsockopt(r.socket, ZMQ_FD, &r.fd, &size) != 0) throw zmq::error_t();
        } else {
            r.fd = items[i].fd;
        }
        epoll_event event{};
        event.events = EPOLLIN;  // level-triggered: a signal not yet consumed fires again
        event.data.u64 = i;
        if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, r.fd, &event) != 0) throw zmq::error_t();
        in_set_.push_back(r.fd);
        registered_.push_back(r);
    }
    ++registrations_;
}

void ReadyWaiter::wait(std::vector<zmq::pollitem_t>& items, uint64_t timeout_ms, uint64_t now_ms) {
    if (!same_items(items)) register_items(items);
    const bool backstop = now_ms >= next_backstop_ms_;
    if (backstop) next_backstop_ms_ = now_ms + kBackstopMs;
    // An unsettled socket is reported as it is, not asked for ZMQ_EVENTS:
    // its handler's receive asks as cheaply (two system calls when it finds
    // nothing), and must be made anyway when something is there.
    bool ready = false;
    for (size_t i = 0; i < items.size(); ++i) {
        items[i].revents = 0;
        Registered& r = registered_[i];
        if (r.socket == nullptr || !(r.unsettled || backstop)) continue;
        r.unsettled = false;
        items[i].revents = ZMQ_POLLIN;
        ready = true;
    }
    // A wait that reports unsettled sockets asks epoll for the rest only
    // every other time: the one before did, and the next will, so a
    // descriptor waits at most one more turn, while a loop that answers one
    // request at a time skips an epoll_wait a request (its reply's send
    // unsettles the socket, and the next wait only settles it).
    if (ready && !backstop && epolled_last_) {
        epolled_last_ = false;
        return;
    }
    epolled_last_ = true;
    std::array<epoll_event, 64> events;
    const int timeout = ready ? 0 : static_cast<int>(std::min<uint64_t>(timeout_ms, 1000));
    const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout);
    // EINTR (a signal): the caller checks for a stop and waits again. Any
    // other error would recur at once, so it is thrown rather than spun on.
    if (n < 0 && errno != EINTR) throw zmq::error_t();
    for (int e = 0; e < n; ++e) {
        const size_t i = events[static_cast<size_t>(e)].data.u64;
        if (i < items.size()) items[i].revents = ZMQ_POLLIN;
    }
}

bool ReadyWaiter::prepare(const std::vector<zmq::pollitem_t>& items, uint64_t now_ms) {
    if (!same_items(items)) register_items(items);
    if (now_ms >= next_backstop_ms_) return true;
    for (const Registered& r : registered_) {
        if (r.socket != nullptr && r.unsettled) return true;
    }
    return false;
}

void ReadyWaiter::unsettle(void* socket) {
    for (auto& r : registered_) {
        if (r.socket == socket) {
            r.unsettled = true;
            return;
        }
    }
}

}  // namespace kv::client
