#include "client/link_dialer.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <limits>

namespace kv::client {

Result<std::unique_ptr<LinkDialer>> LinkDialer::make(LinkDialerOptions options,
                                                     Callbacks callbacks) {
    const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) {
        return Status(ErrorCode::connection, std::string("epoll_create1: ") + std::strerror(errno));
    }
    return std::unique_ptr<LinkDialer>(
        new LinkDialer(epoll_fd, std::move(options), std::move(callbacks)));
}

LinkDialer::LinkDialer(int epoll_fd, LinkDialerOptions options, Callbacks callbacks)
    : epoll_fd_(epoll_fd), options_(std::move(options)), callbacks_(std::move(callbacks)) {}

namespace {
constexpr uint64_t kResolverId = 0;  // the resolver's epoll data; targets' ids start at 1
}  // namespace

LinkDialer::~LinkDialer() {
    for (auto& [id, t] : targets_) close_socket(t);
    ::close(epoll_fd_);
}

LinkDialer::Target* LinkDialer::find(const std::string& name, uint64_t* id) {
    auto it = ids_.find(name);
    if (it == ids_.end()) return nullptr;
    if (id != nullptr) *id = it->second;
    return &targets_.at(it->second);
}

const LinkDialer::Target* LinkDialer::find(const std::string& name) const {
    auto it = ids_.find(name);
    return it == ids_.end() ? nullptr : &targets_.at(it->second);
}

void LinkDialer::add(const std::string& target, const TcpEndpoint& endpoint) {
    if (const Target* t = find(target)) {
        if (t->endpoint.host == endpoint.host && t->endpoint.port == endpoint.port) return;
        remove(target);
    }
    const uint64_t id = next_id_++;
    targets_.emplace(
        id, Target(target, endpoint,
                   ReconnectPace(options_.reconnect_initial_ms, options_.reconnect_max_ms)));
    ids_[target] = id;
}

void LinkDialer::remove(const std::string& target) {
    uint64_t id = 0;
    Target* t = find(target, &id);
    if (t == nullptr) return;
    ids_.erase(target);  // at once: nothing more is sent to it
    if (id == receiving_id_) {
        t->remove_pending = true;
        return;
    }
    close_socket(*t);
    std::erase(dirty_, id);
    targets_.erase(id);
}

void LinkDialer::close_socket(Target& t) {
    forget_lookup(t);
    if (t.connecting_fd >= 0) {
        (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, t.connecting_fd, nullptr);
        ::close(t.connecting_fd);
        t.connecting_fd = -1;
    }
    if (t.link) {
        (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, t.link->fd(), nullptr);
        t.link.reset();  // closes its socket
    }
    t.waits_for_output = false;
    t.dirty = false;
}

uint64_t LinkDialer::next_due_ms() const {
    uint64_t due = std::numeric_limits<uint64_t>::max();
    for (const auto& [id, t] : targets_) {
        if (t.state == State::waiting) due = std::min(due, t.pace.next_try_ms());
        if (t.state == State::resolving || t.state == State::connecting ||
            t.state == State::handshaking) {
            due = std::min(due, t.deadline_ms);
        }
    }
    return due;
}

void LinkDialer::poll(uint64_t now_ms) {
    last_now_ms_ = now_ms;
    // Copies of the ids: a callback may add or remove targets.
    std::vector<uint64_t> due;
    for (const auto& [id, t] : targets_) {
        const bool start_now = t.state == State::waiting && t.pace.may_try(now_ms);
        const bool expired = (t.state == State::resolving || t.state == State::connecting ||
                              t.state == State::handshaking) &&
                             now_ms >= t.deadline_ms;
        if (start_now || expired) due.push_back(id);
    }
    for (uint64_t id : due) {
        auto it = targets_.find(id);
        if (it == targets_.end()) continue;
        Target& t = it->second;
        if (t.state == State::waiting) {
            start(id, t, now_ms);
        } else if (t.state == State::resolving) {
            ++stats_.connect_failures;
            fail(
                id, t,
                Status(ErrorCode::timeout, "cannot resolve " + t.endpoint.host + " within " +
                                               std::to_string(options_.resolve_timeout_ms) + " ms"),
                now_ms);
        } else if (t.state == State::connecting) {
            ++stats_.connect_failures;
            fail(
                id, t,
                Status(ErrorCode::timeout, "no connection within " +
                                               std::to_string(options_.connect_timeout_ms) + " ms"),
                now_ms);
        } else if (t.state == State::handshaking) {
            ++stats_.handshake_failures;
            fail(id, t,
                 Status(ErrorCode::timeout, "no handshake within " +
                                                std::to_string(options_.handshake_timeout_ms) +
                                                " ms"),
                 now_ms);
        }
    }
    // One link, up and not waiting to write (a client's usual case): its
    // input is read at once. Asking the set first costs a system call as the
    // receive does, and an owner that polls because the set was readable (a
    // PollGroup, a node's waiter) finds the input in that one receive. The
    // set needs no draining: an epoll set waited on from outside drops the
    // entries that are no longer ready, and new input wakes its waiters.
    if (targets_.size() == 1) {
        auto only = targets_.begin();
        if (only->second.state == State::up && !only->second.waits_for_output) {
            return on_event(only->first, only->second, EPOLLIN, now_ms);
        }
    }
    epoll_event events[kEventsPerPoll];
    const int n = ::epoll_wait(epoll_fd_, events, kEventsPerPoll, 0);
    for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == kResolverId) {
            on_resolved(now_ms);
            continue;
        }
        auto it = targets_.find(events[i].data.u64);
        if (it == targets_.end()) continue;  // removed by a callback in this poll
        on_event(it->first, it->second, events[i].events, now_ms);
    }
}

void LinkDialer::start(uint64_t id, Target& t, uint64_t now_ms) {
    ++stats_.attempts;
    if (is_numeric_host(t.endpoint.host)) {
        // An address: getaddrinfo only parses it, without a name service.
        auto addresses = resolve_endpoint(t.endpoint);
        if (!addresses) {
            ++stats_.connect_failures;
            return fail(id, t, addresses.status(), now_ms);
        }
        return connect_to(id, t, addresses.value(), now_ms);
    }
    if (!resolver_) {
        auto made = NameResolver::make(options_.lookup);
        if (!made) {
            ++stats_.connect_failures;
            return fail(id, t, made.status(), now_ms);
        }
        resolver_ = std::move(made.value());
    }
    auto ticket = resolver_->ask(t.endpoint);
    if (!ticket) {
        ++stats_.connect_failures;
        return fail(id, t, ticket.status(), now_ms);
    }
    ++stats_.lookups;
    t.lookup_ticket = ticket.value();
    resolving_[t.lookup_ticket] = id;
    t.state = State::resolving;
    t.deadline_ms = now_ms + options_.resolve_timeout_ms;
    watch_resolver();
}

void LinkDialer::on_resolved(uint64_t now_ms) {
    for (auto& answer : resolver_->take()) {
        auto ticket = resolving_.find(answer.ticket);
        if (ticket == resolving_.end()) continue;  // its attempt ended meanwhile
        const uint64_t id = ticket->second;
        resolving_.erase(ticket);
        auto it = targets_.find(id);
        if (it == targets_.end()) continue;
        Target& t = it->second;
        t.lookup_ticket = 0;
        if (!answer.addresses) {
            ++stats_.connect_failures;
            fail(id, t, answer.addresses.status(), now_ms);
        } else {
            connect_to(id, t, answer.addresses.value(), now_ms);
        }
    }
    watch_resolver();
}

void LinkDialer::forget_lookup(Target& t) {
    if (t.lookup_ticket == 0) return;
    resolver_->cancel(t.lookup_ticket);
    resolving_.erase(t.lookup_ticket);
    t.lookup_ticket = 0;
    watch_resolver();
}

void LinkDialer::watch_resolver() {
    const bool want = !resolving_.empty();
    if (want == resolver_watched_) return;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kResolverId;
    // A failed epoll_ctl leaves the old state recorded: a lookup not watched
    // then ends at its deadline, as one that never answers.
    if (::epoll_ctl(epoll_fd_, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, resolver_->fd(), &ev) == 0) {
        resolver_watched_ = want;
    }
}

void LinkDialer::connect_to(uint64_t id, Target& t, const std::vector<SocketAddress>& addresses,
                            uint64_t now_ms) {
    auto fd = start_connect(addresses, t.endpoint);
    if (!fd) {
        ++stats_.connect_failures;
        return fail(id, t, fd.status(), now_ms);
    }
    t.connecting_fd = fd.value();
    t.state = State::connecting;
    t.deadline_ms = now_ms + options_.connect_timeout_ms;
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = id;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, t.connecting_fd, &ev) != 0) {
        ++stats_.connect_failures;
        fail(id, t,
             Status(ErrorCode::connection, std::string("epoll_ctl: ") + std::strerror(errno)),
             now_ms);
    }
}

void LinkDialer::on_connected(uint64_t id, Target& t, uint64_t now_ms) {
    const int fd = t.connecting_fd;
    (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    t.connecting_fd = -1;
    t.link = options_.keys ? SecureLink::client(fd, options_.frame_bytes_max, *options_.keys,
                                                options_.server_key, "", options_.ciphers)
                           : SecureLink::plain(fd, options_.frame_bytes_max);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = id;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        ++stats_.connect_failures;
        return fail(
            id, t, Status(ErrorCode::connection, std::string("epoll_ctl: ") + std::strerror(errno)),
            now_ms);
    }
    t.waits_for_output = false;
    if (t.link->established()) {
        t.state = State::up;
        t.pace.succeeded();
        ++stats_.ups;
        if (callbacks_.on_up) callbacks_.on_up(t.name);
        return;
    }
    t.state = State::handshaking;
    t.deadline_ms = now_ms + options_.handshake_timeout_ms;
    flush_target(id, t, now_ms);  // HELLO
}

void LinkDialer::on_event(uint64_t id, Target& t, uint32_t events, uint64_t now_ms) {
    if (t.state == State::connecting) {
        const Status connected = finish_connect(t.connecting_fd);
        if (!connected.ok()) {
            ++stats_.connect_failures;
            return fail(id, t, connected, now_ms);
        }
        return on_connected(id, t, now_ms);
    }
    if (!t.link) return;
    if ((events & EPOLLOUT) != 0) {
        flush_target(id, t, now_ms);
        if (!targets_.contains(id) || !t.link) return;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0) return;
    const std::string name = t.name;
    receiving_id_ = id;
    const Status read = t.link->receive([&](std::string_view frame) {
        if (t.remove_pending || t.fail_pending) return;
        if (callbacks_.on_frame) callbacks_.on_frame(name, frame);
    });
    receiving_id_ = 0;
    if (t.remove_pending) {
        close_socket(t);
        std::erase(dirty_, id);
        targets_.erase(id);
        return;
    }
    if (t.fail_pending) {
        const Status why = std::move(*t.fail_pending);
        t.fail_pending.reset();
        return fail(id, t, why, now_ms);
    }
    if (!read.ok()) {
        if (t.state == State::handshaking) {
            ++stats_.handshake_failures;
            if (read.code() == ErrorCode::unauthorized) ++stats_.refusals;
        }
        return fail(id, t, read, now_ms);
    }
    if (t.state == State::handshaking && t.link->established()) {
        t.state = State::up;
        t.pace.succeeded();
        ++stats_.ups;
        if (callbacks_.on_up) callbacks_.on_up(name);
        if (!targets_.contains(id)) return;
    }
    if (t.link->wants_write()) flush_target(id, t, now_ms);
}

Status LinkDialer::send(const std::string& target, std::string_view frame) {
    uint64_t id = 0;
    Target* t = find(target, &id);
    if (t == nullptr || t->state != State::up) {
        return {ErrorCode::connection, "no link to " + target + " is up"};
    }
    if (t->link->queued_bytes() > options_.queued_bytes_max) {
        return {ErrorCode::overloaded, "the link to " + target + " has " +
                                           std::to_string(t->link->queued_bytes()) +
                                           " bytes waiting"};
    }
    Status queued = t->link->send(frame);
    if (!queued.ok()) {
        if (queued.code() != ErrorCode::message_too_large) fail(id, *t, queued, last_now_ms_);
        return queued;
    }
    if (!t->dirty) {
        t->dirty = true;
        dirty_.push_back(id);
    }
    return {};
}

void LinkDialer::flush() {
    // Swapped with a kept buffer, not a new one: this runs every turn of
    // the loop. A failure reported from here may queue on other links.
    // A callback that calls flush() again leaves its frames for the next.
    if (!flushing_.empty()) return;
    flushing_.swap(dirty_);
    for (uint64_t id : flushing_) {
        auto it = targets_.find(id);
        if (it == targets_.end() || !it->second.link) continue;
        it->second.dirty = false;
        flush_target(id, it->second, last_now_ms_);
    }
    flushing_.clear();
}

void LinkDialer::flush_target(uint64_t id, Target& t, uint64_t now_ms) {
    const Status written = t.link->flush();
    if (!written.ok()) return fail(id, t, written, now_ms);
    watch(id, t.link->fd(), t.link->wants_write(), t);
}

void LinkDialer::watch(uint64_t id, int fd, bool want_output, Target& t) {
    if (want_output == t.waits_for_output) return;
    if (watch_link_output(epoll_fd_, fd, id, want_output)) t.waits_for_output = want_output;
}

void LinkDialer::fail(uint64_t id, Target& t, const Status& why, uint64_t now_ms) {
    if (id == receiving_id_) {
        if (!t.fail_pending) t.fail_pending = why;
        return;
    }
    const bool was_up = t.state == State::up;
    if (was_up) ++stats_.downs;
    close_socket(t);
    std::erase(dirty_, id);
    t.state = State::waiting;
    t.pace.failed(now_ms);
    const std::string name = t.name;
    if (callbacks_.on_down) callbacks_.on_down(name, was_up, why);
}

bool LinkDialer::is_up(const std::string& target) const {
    const Target* t = find(target);
    return t != nullptr && t->state == State::up;
}

}  // namespace kv::client
