// Waits for a loop's ZeroMQ sockets and file descriptors with epoll, in
// place of zmq_poll: the node's event loop (node/runtime) and the client
// library's poll() use it.
//
// Why: zmq_poll asks every socket for ZMQ_EVENTS on each pass, and an idle
// socket answers with two system calls (its mailbox's getpid fork check and a
// poll of its eventfd); a pass that finds nothing waits and asks them all
// again. With about ten sockets that is 20-40 system calls per turn of the
// loop, and a system call costs about 1.1 us on the virtual machines we run
// on (docs/BENCHMARKS.md, issue 14, tenth step). epoll on the sockets'
// ZMQ_FDs asks only the sockets that have something.
//
// The catch (libzmq's ZMQ_FD contract): a socket's descriptor signals that
// its mailbox received commands, not that messages are waiting. Any
// operation on the socket (a send, or a receive that found a message) may
// process those commands and so consume the signal while messages stay
// queued. So a socket is "unsettled" after such an operation, and the next
// wait reports it readable without sleeping; its handler's receive then
// either finds messages or finds nothing, which processes the mailbox and
// leaves the socket settled: from then on its descriptor signals anything
// new. The caller says which sockets it used (unsettle). Every socket is also
// reported at least every kBackstopMs, so a missed unsettle costs a delay,
// not a stall.
#pragma once

#include <cstdint>
#include <vector>

#include <zmq.hpp>

namespace kv::client {

class ReadyWaiter {
  public:
    // A socket missed by unsettle waits at most this long for its input.
    static constexpr uint64_t kBackstopMs = 100;

    ReadyWaiter();  // throws zmq::error_t when epoll cannot be set up
    ~ReadyWaiter();
    ReadyWaiter(const ReadyWaiter&) = delete;
    ReadyWaiter& operator=(const ReadyWaiter&) = delete;

    // Waits up to timeout_ms (0: not at all) for any of `items` (ZMQ_POLLIN
    // items, as for zmq_poll) and sets each one's revents to ZMQ_POLLIN or 0.
    // Unlike zmq_poll, a socket may be reported with nothing to receive (it
    // was unsettled, or its descriptor signalled other commands): its handler
    // must then try a receive, which settles it. A new socket starts
    // unsettled. A wait that reports unsettled sockets asks epoll for the
    // other items only if the last wait did not (or the backstop is due), so
    // a readable item may be reported one wait late, never two. `now_ms` is
    // the caller's clock, for the backstop. Throws
    // zmq::error_t when epoll fails other than by a signal.
    void wait(std::vector<zmq::pollitem_t>& items, uint64_t timeout_ms, uint64_t now_ms);

    // For a caller that waits on this waiter's descriptor (fd()) among
    // others instead of calling wait(): registers `items` as wait() would and
    // says whether wait() would report one at once (a socket unsettled, or
    // the backstop due), not counting what the descriptor signals. Consumes
    // nothing: the following wait() reports the same.
    bool prepare(const std::vector<zmq::pollitem_t>& items, uint64_t now_ms);
    // The epoll set's descriptor, readable while a registered item signals.
    // The same for the waiter's life: new items are registered in this set.
    int fd() const { return epoll_fd_; }

    // The items will differ at the next wait (sockets closed or made): a
    // socket made after another closed may have its address and descriptor.
    void items_changed() { registered_.clear(); }

    // The caller sent on `socket`, or stopped receiving from it before a
    // receive found nothing: the next wait reports it without sleeping.
    void unsettle(void* socket);

    // How often items were registered anew (they changed).
    uint64_t registrations() const { return registrations_; }

  private:
    struct Registered {
        void* socket = nullptr;  // null for a plain descriptor
        int fd = -1;             // the socket's ZMQ_FD, or the descriptor
        bool unsettled = true;
    };

    bool same_items(const std::vector<zmq::pollitem_t>& items) const;
    void register_items(const std::vector<zmq::pollitem_t>& items);

    int epoll_fd_ = -1;
    std::vector<Registered> registered_;  // by item index
    std::vector<int> in_set_;             // the descriptors added to the set, for removal
    uint64_t next_backstop_ms_ = 0;
    bool epolled_last_ = false;  // the last wait() asked epoll
    uint64_t registrations_ = 0;
};

}  // namespace kv::client
