// The accepting side of links (client/secure_link.h) as an event loop owns
// it: one listening socket and every connection accepted through it, behind
// one descriptor the loop waits on beside its others.
//
// Why one descriptor: the node's loop waits on a fixed set of ZeroMQ sockets
// and descriptors (client/ready_waiter.h) that knows nothing of writes.
// LinkServer keeps an epoll set of its own (the listener, every link, and the
// links that wait to write); that set's descriptor is readable whenever any
// of them has news, so the loop adds fd() once, calls poll() when it is
// readable, and never learns how many connections there are.
//
// What a production listener must do, done here so the runtime does not:
// - every connection runs the handshake before any frame reaches the owner
//   (with keys), and one that has not finished it within
//   handshake_timeout_ms is closed: a silent connection costs a descriptor,
//   not forever;
// - refusals (a key not admitted, a wrong server key, a broken handshake)
//   are counted by kind, for the owner to log and export;
// - at most connections_max links are open; the next connection is accepted
//   and closed at once (counted), so the backlog does not fill with them;
// - a link whose peer does not read (more than queued_bytes_max waiting) is
//   closed instead of growing without bound: unlike a ZeroMQ ROUTER, a
//   listener of our own can close one connection;
// - no step blocks, and one poll() handles at most kEventsPerPoll events, so
//   a flood of connections cannot starve the loop's other work.
//
// Connections are numbered from 1, never reused: a reply for a connection
// that has closed is dropped (send() says so), never delivered to another.
// Thread-safety: none; one owner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client/frame_handshake.h"
#include "client/link_socket.h"
#include "client/secure_link.h"
#include "client/status.h"

namespace kv::client {

struct LinkServerOptions {
    size_t frame_bytes_max = size_t{16} << 20;  // a frame's bytes, before sealing
    uint64_t handshake_timeout_ms = 5000;
    size_t connections_max = 1024;
    // Bytes queued for one link beyond which it is closed as a slow reader.
    size_t queued_bytes_max = size_t{64} << 20;
    // With keys, every link runs the handshake as its server end; without,
    // frames pass as they are (protected and insecure modes).
    std::optional<CurveKeys> keys;
    HandshakeServer::Admit admit;  // with keys: which client keys may have a session
};

// Why a link closed, as LinkServer counts it.
enum class LinkClose {
    peer_closed,        // the peer ended the connection, or it failed (reset)
    refused,            // the handshake refused the client's key (not admitted)
    handshake_failed,   // any other handshake failure (a client expecting another
                        // server key, a forged vouch, garbage)
    handshake_timeout,  // not established within handshake_timeout_ms
    bad_frame,          // after the handshake: a frame that did not open, or too long
    slow_reader,        // more than queued_bytes_max waited to be written
    closed_here,        // the owner closed it (close())
    server_full,        // accepted beyond connections_max and closed at once
};
std::string_view link_close_name(LinkClose why);

struct LinkServerStats {
    uint64_t accepted = 0;  // connections taken from the listener (server_full included)
    uint64_t established = 0;
    uint64_t open = 0;           // links open now
    uint64_t accept_errors = 0;  // accept failed (out of descriptors: the connection was dropped)
    std::map<LinkClose, uint64_t> closed;  // by why
};

class LinkServer {
  public:
    // The owner's side of the events. Each is called from poll() (on_closed
    // also from close() and send()).
    struct Callbacks {
        // A link may carry frames now: with keys, `peer_key` is the key its
        // client proved; without, null.
        std::function<void(uint64_t conn, const CurveKey* peer_key)> on_established;
        // A frame from an established link; the view lives until it returns.
        std::function<void(uint64_t conn, std::string_view frame)> on_frame;
        // A link is gone; `status` says why in words (for a log line).
        std::function<void(uint64_t conn, LinkClose why, const Status& status)> on_closed;
    };

    static constexpr int kEventsPerPoll = 64;

    // Listens on `endpoint` (client/link_socket.h). Fails (connection) when it
    // cannot, or when no epoll set can be made.
    static Result<std::unique_ptr<LinkServer>> listen(const TcpEndpoint& endpoint,
                                                      LinkServerOptions options,
                                                      Callbacks callbacks);
    ~LinkServer();
    LinkServer(const LinkServer&) = delete;
    LinkServer& operator=(const LinkServer&) = delete;

    // Readable when poll() has something to do.
    int fd() const { return epoll_fd_; }
    uint16_t port() const { return listener_->port(); }

    // Accepts, reads and writes what is ready (at most kEventsPerPoll events),
    // and closes the links whose handshake outlived its time at `now_ms` (the
    // owner's clock, milliseconds). Never blocks.
    void poll(uint64_t now_ms);
    // Queues a frame for an established link, written by the next flush().
    // Not ok: no such open link (closed: the frame is dropped), the frame is
    // too long (message_too_large), or the link's queue passed
    // queued_bytes_max (the link is closed as a slow reader).
    Status send(uint64_t conn, std::string_view frame);
    // Writes what send() queued, on every link that has something; what the
    // kernel does not take now waits for the link to be writable (poll()).
    void flush();
    // Closes a link (what is queued and not yet written is lost).
    void close(uint64_t conn);

    bool is_open(uint64_t conn) const { return links_.contains(conn); }
    const LinkServerStats& stats() const { return stats_; }

  private:
    struct Link {
        std::unique_ptr<SecureLink> link;
        bool established = false;       // on_established was called
        bool waits_for_output = false;  // EPOLLOUT registered
        bool dirty = false;             // in dirty_
        // A close asked for while the link was handing over frames, done
        // once receive() returns (the link must outlive its own call).
        std::optional<std::pair<LinkClose, Status>> close_pending;
    };

    LinkServer(std::unique_ptr<LinkListener> listener, int epoll_fd, LinkServerOptions options,
               Callbacks callbacks);
    void accept_ready(uint64_t now_ms);
    void on_link_event(uint64_t conn, uint32_t events);
    void receive_from(uint64_t conn, Link& l);
    void note_established(uint64_t conn, Link& l);
    void flush_link(uint64_t conn, Link& l);
    void watch_output(uint64_t conn, Link& l, bool want);
    void close_link(uint64_t conn, LinkClose why, const Status& status);
    void expire_handshakes(uint64_t now_ms);

    std::unique_ptr<LinkListener> listener_;
    int epoll_fd_;
    LinkServerOptions options_;
    Callbacks callbacks_;
    std::map<uint64_t, Link> links_;
    uint64_t next_conn_ = 1;
    // Links in handshake, oldest first (conn, accepted at): closed at their deadline.
    std::deque<std::pair<uint64_t, uint64_t>> handshaking_;
    std::vector<uint64_t> dirty_;     // links send() queued on since the last flush()
    std::vector<uint64_t> flushing_;  // dirty_ while flush() works through it
    uint64_t receiving_conn_ = 0;     // the link handing over frames now (0: none)
    LinkServerStats stats_;
};

}  // namespace kv::client
