#include "client/link_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace kv::client {

namespace {

Status errno_status(const std::string& what, int err) {
    return {ErrorCode::connection, what + ": " + std::strerror(err)};
}

// Every link's socket: no Nagle delay, and an end to a silent peer within
// kLinkSilenceMs (link_socket.h says why): a keepalive probe after 1 s idle,
// then every second, 2 unanswered closing it; bytes unacknowledged that long
// abort it.
void tune_link_socket(int fd) {
    const int one = 1;
    const int idle_s = 1, interval_s = 1, probes = 2;
    const unsigned int user_timeout_ms = kLinkSilenceMs;
    // Fail only on sockets that are not TCP (a test's socket pair): harmless.
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof interval_s);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

// The addresses of `endpoint` (passive: for bind, "*" meaning any).
Result<addrinfo*> resolve(const TcpEndpoint& endpoint, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    const std::string port = std::to_string(endpoint.port);
    const char* host = endpoint.host == "*" ? nullptr : endpoint.host.c_str();
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(host, port.c_str(), &hints, &found);
    if (rc != 0) {
        return Status(ErrorCode::connection,
                      "cannot resolve " + endpoint.host + ": " + ::gai_strerror(rc));
    }
    return found;
}

struct AddrinfoFree {
    void operator()(addrinfo* a) const { ::freeaddrinfo(a); }
};

// The first socket, non-blocking, over the addresses of `endpoint` that
// use(fd, address) takes (returns ok for); the last failure when none does.
template <typename Use>
Result<int> first_socket(const TcpEndpoint& endpoint, bool passive, Use use) {
    auto found = resolve(endpoint, passive);
    if (!found) return found.status();
    std::unique_ptr<addrinfo, AddrinfoFree> addrs(found.value());
    Status last(ErrorCode::connection, "no address for " + endpoint.host);
    for (addrinfo* a = addrs.get(); a != nullptr; a = a->ai_next) {
        const int fd =
            ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last = errno_status("socket", errno);
            continue;
        }
        Status used = use(fd, *a);
        if (used.ok()) return fd;
        last = std::move(used);
        ::close(fd);
    }
    return last;
}

uint16_t bound_port(int fd) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
    if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

}  // namespace

Result<TcpEndpoint> parse_tcp_endpoint(std::string_view endpoint) {
    constexpr std::string_view kScheme = "tcp://";
    const auto bad = [&](const std::string& why) {
        return Status(ErrorCode::invalid_argument,
                      "endpoint '" + std::string(endpoint) + "': " + why +
                          " (expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:7001)");
    };
    if (!endpoint.starts_with(kScheme)) return bad("not tcp://");
    std::string_view rest = endpoint.substr(kScheme.size());
    TcpEndpoint out;
    std::string_view port;
    if (rest.starts_with('[')) {
        const size_t close = rest.find(']');
        if (close == std::string_view::npos) return bad("an unclosed '['");
        out.host = std::string(rest.substr(1, close - 1));
        if (rest.substr(close + 1, 1) != ":") return bad("no port");
        port = rest.substr(close + 2);
    } else {
        const size_t colon = rest.rfind(':');
        if (colon == std::string_view::npos) return bad("no port");
        out.host = std::string(rest.substr(0, colon));
        port = rest.substr(colon + 1);
    }
    if (out.host.empty()) return bad("no host");
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
        return bad("the port is not a number from 0 to 65535");
    }
    out.port = static_cast<uint16_t>(value);
    return out;
}

// ---- listening ----

LinkListener::LinkListener(int fd, uint16_t port)
    : fd_(fd), port_(port), spare_fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {}

LinkListener::~LinkListener() {
    ::close(fd_);
    if (spare_fd_ >= 0) ::close(spare_fd_);
}

Result<std::unique_ptr<LinkListener>> LinkListener::listen(const TcpEndpoint& endpoint,
                                                           int backlog) {
    auto fd = first_socket(endpoint, true, [&](int fd, const addrinfo& a) {
        const int one = 1;
        // A restarted node binds its port again at once, past TIME_WAIT.
        (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, a.ai_addr, a.ai_addrlen) == 0 && ::listen(fd, backlog) == 0) return Status();
        return errno_status(
            "cannot listen on " + endpoint.host + ":" + std::to_string(endpoint.port), errno);
    });
    if (!fd) return fd.status();
    return std::unique_ptr<LinkListener>(new LinkListener(fd.value(), bound_port(fd.value())));
}

Result<int> LinkListener::accept_one() {
    const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
        tune_link_socket(fd);
        return fd;
    }
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return -1;
    // A connection the peer dropped while it waited: nothing to take.
    if (err == ECONNABORTED) return -1;
    if ((err == EMFILE || err == ENFILE) && spare_fd_ >= 0) {
        // Left waiting, it keeps the listener ready and the loop spinning:
        // take it with the spare descriptor and close it at once.
        ::close(spare_fd_);
        const int taken = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (taken >= 0) ::close(taken);
        spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        ++refused_;
        return errno_status("a connection refused, out of descriptors", err);
    }
    return errno_status("accept", err);
}

// ---- connecting ----

bool is_numeric_host(std::string_view host) {
    if (host == "*") return true;
    const std::string text(host);
    in6_addr scratch{};
    return ::inet_pton(AF_INET, text.c_str(), &scratch) == 1 ||
           ::inet_pton(AF_INET6, text.c_str(), &scratch) == 1;
}

Result<std::vector<SocketAddress>> resolve_endpoint(const TcpEndpoint& endpoint) {
    auto found = resolve(endpoint, false);
    if (!found) return found.status();
    std::unique_ptr<addrinfo, AddrinfoFree> addrs(found.value());
    std::vector<SocketAddress> out;
    for (const addrinfo* a = addrs.get(); a != nullptr; a = a->ai_next) {
        if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
        SocketAddress one;
        std::memcpy(&one.address, a->ai_addr, a->ai_addrlen);
        one.length = a->ai_addrlen;
        out.push_back(one);
    }
    return out;
}

Result<int> start_connect(const std::vector<SocketAddress>& addresses,
                          const TcpEndpoint& endpoint) {
    // The first address whose connect starts (a refusal shows only later, in
    // finish_connect; the next attempt resolves again).
    Status last(ErrorCode::connection, "no address for " + endpoint.host);
    for (const SocketAddress& a : addresses) {
        const int fd = ::socket(a.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last = errno_status("socket", errno);
            continue;
        }
        tune_link_socket(fd);
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&a.address), a.length) == 0 ||
            errno == EINPROGRESS) {
            return fd;
        }
        last = errno_status("connect to " + endpoint.host + ":" + std::to_string(endpoint.port),
                            errno);
        ::close(fd);
    }
    return last;
}

Result<int> start_connect(const TcpEndpoint& endpoint) {
    auto addresses = resolve_endpoint(endpoint);
    if (!addresses) return addresses.status();
    return start_connect(addresses.value(), endpoint);
}

Status finish_connect(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) return errno_status("connect", err);
    // Writable without an error can still mean not connected (a spurious
    // wake-up): only a peer address proves it.
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
        return {ErrorCode::connection, "connect: not connected (asked before it was writable)"};
    }
    return {};
}

bool watch_link_output(int epoll_fd, int fd, uint64_t key, bool want_output) {
    epoll_event ev{};
    ev.events = EPOLLIN | (want_output ? EPOLLOUT : 0u);
    ev.data.u64 = key;
    return ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev) == 0;
}

// ---- pace ----

void ReconnectPace::failed(uint64_t now_ms) {
    ++failures_;
    delay_ms_ = delay_ms_ == 0 ? initial_ms_ : std::min(delay_ms_ * 2, max_ms_);
    next_try_ms_ = now_ms + delay_ms_;
}

}  // namespace kv::client
