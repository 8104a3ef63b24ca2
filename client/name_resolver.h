// Host names resolved off the caller's thread, for an owner that waits on
// epoll (LinkDialer, client/link_dialer.h).
//
// Why: getaddrinfo blocks for as long as the name service takes. With a DNS
// server down that is glibc's timeout times its tries (5 s and 2 by default,
// for each server in resolv.conf); a node's event loop that resolved a
// member's name itself would answer no request for that long, at every
// reconnect. Here one thread of the resolver's own does the lookups, one at
// a time, and an eventfd (fd()) becomes readable when answers wait.
//
// The thread starts with the first ask() and is not joined: a lookup cannot
// be interrupted, and an owner that goes away (a node stopping, a client
// closed) must not wait for one. It keeps the state it shares with the
// owner alive until the lookup in progress returns, then ends; answers no
// one will take are dropped with it.
//
// Answers come in any order relative to asks that were cancelled; each
// carries its ticket. A ticket is never reused.
// Thread-safety: one owner calls every member function; the resolver's
// thread touches only the shared state, under its mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "client/link_socket.h"
#include "client/status.h"

namespace kv::client {

class NameResolver {
  public:
    // Resolves one endpoint, blocking (resolve_endpoint by default; a test
    // gives one that stalls).
    using Lookup = std::function<Result<std::vector<SocketAddress>>(const TcpEndpoint&)>;

    struct Answer {
        uint64_t ticket = 0;
        Result<std::vector<SocketAddress>> addresses;
    };

    // Fails (connection) when no eventfd can be made.
    static Result<std::unique_ptr<NameResolver>> make(Lookup lookup = resolve_endpoint);
    ~NameResolver();
    NameResolver(const NameResolver&) = delete;
    NameResolver& operator=(const NameResolver&) = delete;

    // Readable while answers wait to be taken.
    int fd() const;

    // Queues `endpoint` for the thread (started now if it is not running);
    // its answer carries the returned ticket. Fails (connection) when the
    // thread cannot be started.
    Result<uint64_t> ask(const TcpEndpoint& endpoint);
    // The answer to `ticket` will not be handed out: dropped from the queue
    // if its lookup has not started, else when it arrives.
    void cancel(uint64_t ticket);
    // The answers that arrived, oldest first, without cancelled ones; leaves
    // fd() unreadable until the next.
    std::vector<Answer> take();

    // Lookups queued or running (not yet answered), cancelled ones included.
    size_t pending() const;

  private:
    struct Shared;
    explicit NameResolver(std::shared_ptr<Shared> shared);
    std::shared_ptr<Shared> shared_;
    bool thread_started_ = false;
    uint64_t tickets_issued_ = 0;
};

}  // namespace kv::client
