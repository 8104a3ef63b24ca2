#include "client/link_server.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>

namespace kv::client {

namespace {

constexpr uint64_t kListenerKey = 0;  // epoll data of the listener; links are 1, 2, ...

}  // namespace

std::string_view link_close_name(LinkClose why) {
    switch (why) {
        case LinkClose::peer_closed:
            return "peer_closed";
        case LinkClose::refused:
            return "refused";
        case LinkClose::handshake_failed:
            return "handshake_failed";
        case LinkClose::handshake_timeout:
            return "handshake_timeout";
        case LinkClose::bad_frame:
            return "bad_frame";
        case LinkClose::slow_reader:
            return "slow_reader";
        case LinkClose::closed_here:
            return "closed_here";
        case LinkClose::server_full:
            return "server_full";
    }
    return "?";
}

Result<std::unique_ptr<LinkServer>> LinkServer::listen(const TcpEndpoint& endpoint,
                                                       LinkServerOptions options,
                                                       Callbacks callbacks) {
    auto listener = LinkListener::listen(endpoint);
    if (!listener) return listener.status();
    const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) {
        return Status(ErrorCode::connection, std::string("epoll_create1: ") + std::strerror(errno));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerKey;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener.value()->fd(), &ev) != 0) {
        const int err = errno;
        ::close(epoll_fd);
        return Status(ErrorCode::connection, std::string("epoll_ctl: ") + std::strerror(err));
    }
    return std::unique_ptr<LinkServer>(new LinkServer(std::move(listener.value()), epoll_fd,
                                                      std::move(options), std::move(callbacks)));
}

LinkServer::LinkServer(std::unique_ptr<LinkListener> listener, int epoll_fd,
                       LinkServerOptions options, Callbacks callbacks)
    : listener_(std::move(listener)),
      epoll_fd_(epoll_fd),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)) {
    assert(!options_.keys || options_.admit);
}

LinkServer::~LinkServer() {
    links_.clear();  // closes every link's socket
    ::close(epoll_fd_);
}

void LinkServer::poll(uint64_t now_ms) {
    epoll_event events[kEventsPerPoll];
    const int n = ::epoll_wait(epoll_fd_, events, kEventsPerPoll, 0);
    for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == kListenerKey) {
            accept_ready(now_ms);
        } else {
            on_link_event(events[i].data.u64, events[i].events);
        }
    }
    expire_handshakes(now_ms);
}

void LinkServer::accept_ready(uint64_t now_ms) {
    for (int taken = 0; taken < kEventsPerPoll; ++taken) {
        auto accepted = listener_->accept_one();
        if (!accepted) {
            ++stats_.accept_errors;
            return;
        }
        const int fd = accepted.value();
        if (fd < 0) return;
        ++stats_.accepted;
        if (links_.size() >= options_.connections_max) {
            ::close(fd);
            ++stats_.closed[LinkClose::server_full];
            continue;
        }
        const uint64_t conn = next_conn_++;
        Link l;
        l.link = options_.keys ? SecureLink::server(fd, options_.frame_bytes_max, *options_.keys,
                                                    options_.admit, "")
                               : SecureLink::plain(fd, options_.frame_bytes_max);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = conn;
        if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
            ++stats_.accept_errors;
            continue;  // l's destructor closes the socket
        }
        auto& placed = links_.emplace(conn, std::move(l)).first->second;
        ++stats_.open;
        if (placed.link->established()) {
            note_established(conn, placed);
        } else {
            handshaking_.emplace_back(conn, now_ms);
        }
    }
}

void LinkServer::note_established(uint64_t conn, Link& l) {
    l.established = true;
    ++stats_.established;
    if (callbacks_.on_established) callbacks_.on_established(conn, l.link->peer_key());
}

void LinkServer::on_link_event(uint64_t conn, uint32_t events) {
    auto it = links_.find(conn);
    if (it == links_.end()) return;  // closed earlier in this poll
    Link& l = it->second;
    if ((events & EPOLLOUT) != 0) {
        flush_link(conn, l);
        if (!links_.contains(conn)) return;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) receive_from(conn, l);
}

void LinkServer::receive_from(uint64_t conn, Link& l) {
    receiving_conn_ = conn;
    const Status read = l.link->receive([&](std::string_view frame) {
        if (l.close_pending) return;  // the owner closed it: nothing more
        if (!l.established) note_established(conn, l);
        if (callbacks_.on_frame) callbacks_.on_frame(conn, frame);
    });
    receiving_conn_ = 0;
    if (l.close_pending) {
        auto [why, status] = std::move(*l.close_pending);
        return close_link(conn, why, status);
    }
    if (!read.ok()) {
        LinkClose why = LinkClose::peer_closed;
        if (l.link->failed_in_handshake()) {
            // The ERROR that says why goes out first (best effort).
            (void)l.link->flush();
            why = read.code() == ErrorCode::unauthorized ? LinkClose::refused
                                                         : LinkClose::handshake_failed;
        } else if (read.code() == ErrorCode::bad_request ||
                   read.code() == ErrorCode::message_too_large) {
            why = LinkClose::bad_frame;
        }
        return close_link(conn, why, read);
    }
    if (!l.established && l.link->established()) note_established(conn, l);
    // Handshake replies, and what the owner sent from on_frame.
    if (l.link->wants_write()) flush_link(conn, l);
}

Status LinkServer::send(uint64_t conn, std::string_view frame) {
    auto it = links_.find(conn);
    if (it == links_.end() || !it->second.established || it->second.close_pending) {
        return {ErrorCode::connection, "the link is closed"};
    }
    Link& l = it->second;
    Status queued = l.link->send(frame);
    if (!queued.ok()) {
        if (queued.code() != ErrorCode::message_too_large) {
            close_link(conn, LinkClose::peer_closed, queued);
        }
        return queued;
    }
    if (l.link->queued_bytes() > options_.queued_bytes_max) {
        Status slow(ErrorCode::overloaded,
                    "the peer does not read: " + std::to_string(l.link->queued_bytes()) +
                        " bytes queued, above " + std::to_string(options_.queued_bytes_max));
        close_link(conn, LinkClose::slow_reader, slow);
        return slow;
    }
    if (!l.dirty) {
        l.dirty = true;
        dirty_.push_back(conn);
    }
    return {};
}

void LinkServer::flush() {
    // Swapped with a kept buffer, not a new one: this runs every turn of
    // the loop. A close reported from here may queue on other links.
    // A callback that calls flush() again leaves its frames for the next.
    if (!flushing_.empty()) return;
    flushing_.swap(dirty_);
    for (uint64_t conn : flushing_) {
        auto it = links_.find(conn);
        if (it == links_.end()) continue;
        it->second.dirty = false;
        flush_link(conn, it->second);
    }
    flushing_.clear();
}

void LinkServer::flush_link(uint64_t conn, Link& l) {
    const Status written = l.link->flush();
    if (!written.ok()) return close_link(conn, LinkClose::peer_closed, written);
    watch_output(conn, l, l.link->wants_write());
}

void LinkServer::watch_output(uint64_t conn, Link& l, bool want) {
    if (want == l.waits_for_output) return;
    if (watch_link_output(epoll_fd_, l.link->fd(), conn, want)) l.waits_for_output = want;
}

void LinkServer::close(uint64_t conn) {
    close_link(conn, LinkClose::closed_here, Status(ErrorCode::connection, "closed by the owner"));
}

void LinkServer::close_link(uint64_t conn, LinkClose why, const Status& status) {
    auto it = links_.find(conn);
    if (it == links_.end()) return;
    if (conn == receiving_conn_) {
        if (!it->second.close_pending) it->second.close_pending.emplace(why, status);
        return;
    }
    // Its descriptor leaves the epoll set as the socket closes; said
    // explicitly, so the set never holds a number the process reuses.
    (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.link->fd(), nullptr);
    links_.erase(it);
    --stats_.open;
    ++stats_.closed[why];
    if (callbacks_.on_closed) callbacks_.on_closed(conn, why, status);
}

void LinkServer::expire_handshakes(uint64_t now_ms) {
    while (!handshaking_.empty() &&
           now_ms - handshaking_.front().second >= options_.handshake_timeout_ms) {
        const uint64_t conn = handshaking_.front().first;
        handshaking_.pop_front();
        auto it = links_.find(conn);
        if (it == links_.end() || it->second.link->established()) continue;
        close_link(
            conn, LinkClose::handshake_timeout,
            Status(ErrorCode::timeout,
                   "no handshake within " + std::to_string(options_.handshake_timeout_ms) + " ms"));
    }
}

}  // namespace kv::client
