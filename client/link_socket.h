// The sockets under a SecureLink (client/secure_link.h): listening, accepting
// and connecting without blocking, for an owner that waits on epoll, and the
// pace of reconnecting to an endpoint that refuses.
//
// Why not ZeroMQ's: the point of the links is that no I/O thread stands
// between the loop and the kernel, so the loop itself accepts and connects.
// What ZeroMQ did for us and this must still do:
// - connections are TCP_NODELAY (frames are small and waited for);
// - a connection whose peer falls silent is closed within kLinkSilenceMs, as
//   ZMTP heartbeats closed a member's DEALER connection: TCP keepalive probes
//   after 1 s idle, and TCP_USER_TIMEOUT aborts a connection whose sent bytes
//   stay unacknowledged that long. So a partition cannot keep old requests in
//   TCP's retransmission queue and deliver them when it heals (tombstone GC's
//   grace relies on it: node/runtime/limits.h);
// - a connect in progress never blocks the loop: start_connect() returns at
//   once, the owner waits for the socket to be writable, finish_connect()
//   says how it went;
// - an endpoint that refuses is retried with a growing delay (ReconnectPace,
//   as ZMQ_RECONNECT_IVL and ZMQ_RECONNECT_IVL_MAX), not in a tight loop;
// - running out of descriptors does not spin the loop: a listener that
//   cannot accept (EMFILE, ENFILE) closes the waiting connection with a spare
//   descriptor it keeps for that, so the listening socket stops being ready.
//
// Endpoints are ZeroMQ's TCP form, as --listen and the members' gossip
// endpoints already are: tcp://HOST:PORT with HOST an IPv4 address, [IPv6],
// a name, or * (listen on every address). A name is resolved by
// getaddrinfo, which blocks for as long as the resolver takes (with a DNS
// server down, glibc's default is 5 s a try, 2 tries a server): listen()
// and start_connect(endpoint) resolve in the caller, which suits start-up
// and tools; an event loop resolves names off its thread (NameResolver,
// client/name_resolver.h) and connects with start_connect(addresses).
// Thread-safety: none; one owner per object.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "client/status.h"

namespace kv::client {

// How long a link's peer may stay silent (or leave what was sent to it
// unacknowledged) before the connection is aborted.
constexpr int kLinkSilenceMs = 3000;

struct TcpEndpoint {
    std::string host;  // as written, without brackets; "*" for any address
    uint16_t port = 0;
};

// One address an endpoint resolved to, as connect() takes it.
struct SocketAddress {
    sockaddr_storage address{};
    socklen_t length = 0;
};

// True when `host` is an IPv4 or IPv6 address (or "*"): resolving it never
// asks a name service, so it never blocks.
bool is_numeric_host(std::string_view host);

// The addresses of `endpoint` to connect to, by getaddrinfo: blocks while
// a name resolves (never for a numeric host). Fails (connection) with the
// resolver's reason when the name does not resolve.
Result<std::vector<SocketAddress>> resolve_endpoint(const TcpEndpoint& endpoint);

// Parses tcp://HOST:PORT. Fails (invalid_argument) on another scheme, a
// missing or out-of-range port, an empty host, or an unclosed '['.
Result<TcpEndpoint> parse_tcp_endpoint(std::string_view endpoint);

class LinkListener {
  public:
    // Binds and listens, non-blocking (port 0: the kernel picks one; see
    // port()). Fails (connection) when the address cannot be bound or
    // resolved.
    static Result<std::unique_ptr<LinkListener>> listen(const TcpEndpoint& endpoint,
                                                        int backlog = 128);
    ~LinkListener();
    LinkListener(const LinkListener&) = delete;
    LinkListener& operator=(const LinkListener&) = delete;

    int fd() const { return fd_; }
    uint16_t port() const { return port_; }

    // One waiting connection, non-blocking and TCP_NODELAY, or -1 when none
    // waits. Not ok (connection) when one waited but could not be taken: out
    // of descriptors (it was closed, and counted in refused()), or another
    // error of accept; the owner logs it and goes on.
    Result<int> accept_one();
    uint64_t refused() const { return refused_; }

  private:
    LinkListener(int fd, uint16_t port);

    int fd_;
    uint16_t port_;
    int spare_fd_;  // held open to take and close a connection when out of descriptors
    uint64_t refused_ = 0;
};

// Starts connecting to the first of `addresses` (those of `endpoint`) whose
// connect starts: a non-blocking socket whose connect is done or in
// progress. The owner waits for it to be writable, then calls
// finish_connect(). Fails (connection) when there is no address or no socket
// can be made. Never blocks.
Result<int> start_connect(const std::vector<SocketAddress>& addresses, const TcpEndpoint& endpoint);
// The same after resolve_endpoint(endpoint): blocks while a name resolves.
Result<int> start_connect(const TcpEndpoint& endpoint);
// After the socket became writable (or in error): ok when connected, else
// connection with the reason (refused, unreachable, timed out).
Status finish_connect(int fd);

// Sets what an epoll set waits for on a link's socket: input, and output too
// when `want_output` (its queue waits for room). `key` is the epoll data
// (u64) the owner knows the link by. False when epoll_ctl fails; the caller
// keeps its old idea of what is registered.
bool watch_link_output(int epoll_fd, int fd, uint64_t key, bool want_output);

// When to try an endpoint again: at once the first time, then after a delay
// that doubles with each failure in a row from initial_ms to max_ms, back to
// at once after a success (a connection established, the handshake done).
class ReconnectPace {
  public:
    ReconnectPace(uint64_t initial_ms, uint64_t max_ms)
        : initial_ms_(initial_ms), max_ms_(max_ms) {}
    bool may_try(uint64_t now_ms) const { return now_ms >= next_try_ms_; }
    uint64_t next_try_ms() const { return next_try_ms_; }
    void failed(uint64_t now_ms);
    void succeeded() {
        delay_ms_ = 0;
        next_try_ms_ = 0;
        failures_ = 0;
    }
    uint64_t failures_in_a_row() const { return failures_; }

  private:
    uint64_t initial_ms_, max_ms_;
    uint64_t delay_ms_ = 0;
    uint64_t next_try_ms_ = 0;
    uint64_t failures_ = 0;
};

}  // namespace kv::client
