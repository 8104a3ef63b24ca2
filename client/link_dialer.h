// The dialing side of links (client/secure_link.h) as an event loop owns it:
// one link to each of a set of named targets (a node's members, a client's
// nodes), each kept connected, behind one descriptor the loop waits on.
//
// Why: what a ZeroMQ DEALER did for us by itself (connect in the background,
// reconnect after a loss at a paced interval, run the CURVE handshake, refuse
// sends while there is no connection when ZMQ_IMMEDIATE is set), a loop that
// owns its sockets must do without blocking. As LinkServer does for the
// accepting side, the set keeps its own epoll set (connects in progress,
// every link, links waiting to write) behind fd().
//
// Per target the states are: waiting (for its ReconnectPace), resolving
// (a host name, on the NameResolver's thread, at most resolve_timeout_ms;
// an address skips it), connecting (a non-blocking connect, at most
// connect_timeout_ms), handshaking (at most handshake_timeout_ms; none
// without keys), up. Every attempt resolves its name again, so a member
// whose name now points elsewhere is found there. Any failure closes the
// socket, tells the owner (on_down, with why: unauthorized when the server
// refused this client's key or did not prove the expected key), and waits
// for the pace before the next attempt; a link that came up resets the pace.
//
// send() queues only on a link that is up, and fails otherwise (as
// ZMQ_IMMEDIATE does): the owner decides whether to hold a message for the
// next connection or fail its call. Frames queued on a link that then fails
// are lost with it; the owner's own deadlines cover them.
// Thread-safety: none; one owner.
#pragma once

#include <cstddef>
#include <cstdint>
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
#include "client/name_resolver.h"
#include "client/secure_link.h"
#include "client/status.h"

namespace kv::client {

struct LinkDialerOptions {
    size_t frame_bytes_max = size_t{16} << 20;  // a frame's bytes, before sealing
    // A name's lookup, off the owner's thread; past the timeout the attempt
    // fails and the next one asks again (a lookup in progress is left to
    // finish, its answer dropped).
    uint64_t resolve_timeout_ms = 5000;
    NameResolver::Lookup lookup = resolve_endpoint;  // a test's stands in
    uint64_t connect_timeout_ms = 2000;
    uint64_t handshake_timeout_ms = 5000;
    uint64_t reconnect_initial_ms = 100;  // as ZMQ_RECONNECT_IVL
    uint64_t reconnect_max_ms = 1000;     // as ZMQ_RECONNECT_IVL_MAX
    // Bytes queued on one link beyond which send() refuses (overloaded):
    // the peer reads slower than we write.
    size_t queued_bytes_max = size_t{64} << 20;
    // With keys, every link runs the handshake as its client end and expects
    // server_key; without, frames pass as they are.
    std::optional<CurveKeys> keys;
    CurveKey server_key{};
    uint8_t ciphers = ciphers_available();
};

struct LinkDialerStats {
    uint64_t attempts = 0;          // attempts started (a lookup or a connect)
    uint64_t lookups = 0;           // names handed to the resolver's thread
    uint64_t connect_failures = 0;  // not resolved, refused, unreachable, timed out
    uint64_t handshake_failures = 0;
    uint64_t refusals = 0;  // handshakes the server refused (or that proved another key)
    uint64_t ups = 0;       // links that came up
    uint64_t downs = 0;     // links that were up and failed
};

class LinkDialer {
  public:
    struct Callbacks {
        std::function<void(const std::string& target)> on_up;
        // A frame from a link that is up; the view lives until it returns.
        std::function<void(const std::string& target, std::string_view frame)> on_frame;
        // An attempt failed or a link that was up went down.
        std::function<void(const std::string& target, bool was_up, const Status& why)> on_down;
    };

    static constexpr int kEventsPerPoll = 64;

    // Fails (connection) when no epoll set can be made.
    static Result<std::unique_ptr<LinkDialer>> make(LinkDialerOptions options, Callbacks callbacks);
    ~LinkDialer();
    LinkDialer(const LinkDialer&) = delete;
    LinkDialer& operator=(const LinkDialer&) = delete;

    // Readable when poll() has something to do (a connect finished, input,
    // room to write). Connect attempts and deadlines also need poll() calls
    // at the owner's pace (its tick): next_due_ms() says when the next is due.
    int fd() const { return epoll_fd_; }

    // Keeps a link to `endpoint` under `target` (the first attempt is made
    // by the next poll). Adding a target again with another endpoint closes
    // the old link and dials the new one.
    void add(const std::string& target, const TcpEndpoint& endpoint);
    // Closes and forgets a target (no on_down).
    void remove(const std::string& target);

    // Starts due connects, handles what is ready (at most kEventsPerPoll
    // events) and fails attempts past their deadline, at `now_ms`.
    void poll(uint64_t now_ms);
    // The earliest time poll() has a connect to start or a deadline to check
    // (UINT64_MAX: none).
    uint64_t next_due_ms() const;

    // Queues a frame to `target`, written by the next flush(). Fails
    // (connection) when its link is not up, (message_too_large) above
    // frame_bytes_max, (overloaded) when queued_bytes_max bytes wait already.
    Status send(const std::string& target, std::string_view frame);
    // Writes what send() queued; the rest waits for the links to be writable.
    void flush();

    bool is_up(const std::string& target) const;
    const LinkDialerStats& stats() const { return stats_; }

  private:
    enum class State { waiting, resolving, connecting, handshaking, up };
    struct Target {
        Target(std::string name_, TcpEndpoint endpoint_, ReconnectPace pace_)
            : name(std::move(name_)), endpoint(std::move(endpoint_)), pace(pace_) {}
        std::string name;
        TcpEndpoint endpoint;
        ReconnectPace pace;
        State state = State::waiting;
        int connecting_fd = -1;
        std::unique_ptr<SecureLink> link;
        uint64_t deadline_ms = 0;    // of the lookup, the connect or the handshake
        uint64_t lookup_ticket = 0;  // while resolving (NameResolver::ask)
        bool waits_for_output = false;
        bool dirty = false;
        // Asked for while the link was handing over frames, done once its
        // receive() returns (the link must outlive its own call).
        bool remove_pending = false;
        std::optional<Status> fail_pending;
    };

    LinkDialer(int epoll_fd, LinkDialerOptions options, Callbacks callbacks);
    void start(uint64_t id, Target& t, uint64_t now_ms);
    void connect_to(uint64_t id, Target& t, const std::vector<SocketAddress>& addresses,
                    uint64_t now_ms);
    void on_resolved(uint64_t now_ms);
    void forget_lookup(Target& t);
    void watch_resolver();
    void on_connected(uint64_t id, Target& t, uint64_t now_ms);
    void on_event(uint64_t id, Target& t, uint32_t events, uint64_t now_ms);
    void flush_target(uint64_t id, Target& t, uint64_t now_ms);
    void watch(uint64_t id, int fd, bool want_output, Target& t);
    void fail(uint64_t id, Target& t, const Status& why, uint64_t now_ms);
    void close_socket(Target& t);
    Target* find(const std::string& name, uint64_t* id = nullptr);
    const Target* find(const std::string& name) const;

    int epoll_fd_;
    LinkDialerOptions options_;
    Callbacks callbacks_;
    std::map<uint64_t, Target> targets_;  // by id (epoll data), never reused
    std::map<std::string, uint64_t> ids_;
    uint64_t next_id_ = 1;  // 0 is the resolver's epoll data
    // Made at the first name to resolve; its fd() is in the epoll set while
    // a target waits for a lookup, so a stale answer cannot keep it ready.
    std::unique_ptr<NameResolver> resolver_;
    std::map<uint64_t, uint64_t> resolving_;  // lookup ticket -> target id
    bool resolver_watched_ = false;
    std::vector<uint64_t> dirty_;     // targets send() queued on since the last flush()
    std::vector<uint64_t> flushing_;  // dirty_ while flush() works through it
    uint64_t receiving_id_ = 0;       // the target handing over frames now (0: none)
    uint64_t last_now_ms_ = 0;        // the clock of the last poll(), for send()'s failures
    LinkDialerStats stats_;
};

}  // namespace kv::client
