#include "client/client.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "client/frame_batch.h"
#include "client/frame_handshake.h"
#include "client/link_dialer.h"
#include "client/ready_waiter.h"
#include "client/z85.h"

namespace kv::client {

namespace {

using Clock = std::chrono::steady_clock;

// What a node of an earlier version answered a client's batch frame with
// under --cluster-key (id 0, unauthorized), reading nothing in it.
constexpr std::string_view kBatchRefused = "batch frames are for members only";
using Completion = std::function<void(Result<proto::Message>)>;

// Bounds the work of one poll() so a flood of replies cannot starve expiry.
constexpr size_t kReceiveBatchMax = 4096;

Status connection_error(std::string message) {
    return Status(ErrorCode::connection, std::move(message));
}

// A node must never report an error with code ok; treat one as a node bug.
Status node_error(ErrorCode code, const std::string& message) {
    if (code == ErrorCode::ok) return Status(ErrorCode::internal, "error reply with code ok");
    return Status(code, message.empty() ? std::string(error_name(code)) : message);
}

Status unexpected_reply(const proto::Message& m) {
    return Status(ErrorCode::internal,
                  "unexpected reply type '" + std::string(proto::type_name(m)) + "'");
}

Result<GetResult> to_get_result(Result<proto::Message> r) {
    if (!r) return r.status();
    auto* g = std::get_if<proto::GetResponse>(&r.value());
    if (g == nullptr) return unexpected_reply(r.value());
    if (g->code != ErrorCode::ok) return node_error(g->code, g->message);
    return GetResult{std::move(g->values), std::move(g->context), g->info};
}

Result<WriteResult> to_write_result(Result<proto::Message> r) {
    if (!r) return r.status();
    auto* w = std::get_if<proto::WriteResponse>(&r.value());
    if (w == nullptr) return unexpected_reply(r.value());
    if (w->code != ErrorCode::ok) return node_error(w->code, w->message);
    return WriteResult{std::move(w->context), w->info};
}

Result<proto::StatusResponse> to_status_result(Result<proto::Message> r) {
    if (!r) return r.status();
    auto* s = std::get_if<proto::StatusResponse>(&r.value());
    if (s == nullptr) return unexpected_reply(r.value());
    return std::move(*s);
}

Result<proto::OwnersResponse> to_owners_result(Result<proto::Message> r) {
    if (!r) return r.status();
    auto* o = std::get_if<proto::OwnersResponse>(&r.value());
    if (o == nullptr) return unexpected_reply(r.value());
    return std::move(*o);
}

Result<std::string> to_admin_result(Result<proto::Message> r) {
    if (!r) return r.status();
    auto* a = std::get_if<proto::AdminResponse>(&r.value());
    if (a == nullptr) return unexpected_reply(r.value());
    if (a->code != ErrorCode::ok) return Status(a->code, a->message);
    return std::move(a->message);
}

constexpr std::string_view kLinkScheme = "link://";

uint64_t ms_of(Clock::time_point t) {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

uint64_t steady_ms() {
    return ms_of(Clock::now());
}

bool looks_like_endpoint(const std::string& endpoint) {
    auto scheme_end = endpoint.find("://");
    return scheme_end != std::string::npos && scheme_end > 0 && scheme_end + 3 < endpoint.size() &&
           endpoint.size() <= proto::kIdBytesMax;
}

// One ZeroMQ context for every client in the process, as libzmq advises: its
// I/O thread serves all their connections, so a process with 50 clients pays
// the wake-ups of one I/O thread, not of 50 (each a thread hand-off per
// request and per reply). Made with the first client, ended with the last.
// The holder is never destroyed: a client made or ended while statics are
// torn down must still find it. The child of a fork gets a context of its own
// (the parent's I/O thread is not in it), as it did with one per client.
std::shared_ptr<zmq::context_t> shared_context() {
    static auto* const mutex = new std::mutex;
    static auto* const shared = new std::weak_ptr<zmq::context_t>;
    static pid_t made_by = 0;
    std::lock_guard<std::mutex> lock(*mutex);
    const pid_t pid = ::getpid();
    if (std::shared_ptr<zmq::context_t> context = shared->lock(); context && made_by == pid) {
        return context;
    }
    auto context = std::make_shared<zmq::context_t>(1);
    *shared = context;
    made_by = pid;
    return context;
}

}  // namespace

struct AsyncClient::Impl {
    struct Pending {
        std::string frame;  // encoded once; a retried read resends it unchanged
        Completion done;
        size_t endpoint = 0;
        size_t endpoints_tried = 1;
        bool sent = false;
        bool batched = false;   // sent in a batch frame (resent alone if that was refused)
        bool may_move = true;   // false for local_get (node-specific)
        bool retryable = true;  // a read: may be resent after no answer
        uint64_t reply_wait_ms = 0;
        Clock::time_point expires_at;
    };

    struct Endpoint {
        std::string address;
        std::optional<zmq::socket_t> socket;  // connected lazily
        // PAIR reading the socket's failed handshakes (libzmq's socket monitor).
        std::optional<zmq::socket_t> monitor;
        std::deque<uint64_t> unsent;  // FIFO, so pipelined order is kept
        bool batching = true;         // until the node refuses a batch frame
        // link://HOST:PORT: a link of `dialer` instead of a socket, its
        // target named by the endpoint's index (link_target).
        bool link = false;
        bool link_added = false;  // dialer keeps a link to it
        std::string link_target;
    };

    // Shared by every client of the process (shared_context()); declared
    // before the sockets, so it outlives this client's.
    std::shared_ptr<zmq::context_t> context = shared_context();
    ClientOptions options;
    std::vector<Endpoint> endpoints;
    size_t current = 0;
    uint64_t next_id = 1;
    uint64_t stale_replies = 0;
    std::map<uint64_t, Pending> pending;
    std::set<std::pair<Clock::time_point, uint64_t>> expiries;
    // Completed requests whose callbacks run at the end of the next poll().
    std::deque<std::function<void()>> ready;
    // poll() waits with it (fewer system calls than zmq_poll: ready_waiter.h).
    ReadyWaiter waiter;
    std::vector<zmq::pollitem_t> items;  // wait_and_receive's, reused
    std::vector<size_t> item_endpoint;
    std::vector<std::string_view> batch_parts;  // on_frame's, reused
    // The links to link:// endpoints, made with the first of them; targets
    // are named by endpoint index.
    std::unique_ptr<LinkDialer> dialer;
    std::vector<size_t> links_refused;  // removed from dialer once its poll returns

    // ---- sockets ----------------------------------------------------------

    bool ensure_socket(size_t index) {
        Endpoint& e = endpoints[index];
        if (e.link) return ensure_link(index);
        if (e.socket) return true;
        try {
            zmq::socket_t s(*context, zmq::socket_type::dealer);
            s.set(zmq::sockopt::linger, 0);
            s.set(zmq::sockopt::sndhwm, options.send_hwm_messages);
            // Without IMMEDIATE a send to a node that is down would sit in a
            // queue forever instead of failing over.
            s.set(zmq::sockopt::immediate, 1);
            s.set(zmq::sockopt::reconnect_ivl, options.reconnect_ivl_ms);
            s.set(zmq::sockopt::reconnect_ivl_max, options.reconnect_ivl_ms);
            s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(proto::kFrameBytesMax));
            if (options.curve) {
                s.set(zmq::sockopt::curve_serverkey, options.curve->server_public_z85);
                s.set(zmq::sockopt::curve_publickey, options.curve->client_public_z85);
                s.set(zmq::sockopt::curve_secretkey, options.curve->client_secret_z85);
            }
            // Watched before connecting, so even the first handshake is seen.
            zmq::socket_t monitor = watch_handshakes(s, index);
            s.connect(e.address);
            e.socket = std::move(s);
            e.monitor = std::move(monitor);
            waiter.items_changed();
            return true;
        } catch (const zmq::error_t&) {
            return false;
        }
    }

    // ---- links -------------------------------------------------------------

    bool ensure_dialer() {
        if (dialer) return true;
        LinkDialerOptions o;
        o.frame_bytes_max = proto::kFrameBytesMax;
        o.connect_timeout_ms = options.connect_timeout_ms;
        o.reconnect_initial_ms = static_cast<uint64_t>(std::max(options.reconnect_ivl_ms, 1));
        o.reconnect_max_ms = o.reconnect_initial_ms;  // as the DEALERs' _IVL and _IVL_MAX
        if (options.curve) {
            auto keys =
                curve_keys_of(options.curve->client_public_z85, options.curve->client_secret_z85);
            auto server = curve_key_of(options.curve->server_public_z85);
            if (!keys || !server) return false;
            o.keys = keys.value();
            o.server_key = server.value();
        }
        LinkDialer::Callbacks callbacks;
        callbacks.on_up = [](const std::string&) {};  // the next flush sends what waits
        callbacks.on_frame = [this](const std::string& target, std::string_view frame) {
            on_frame(std::stoul(target), frame);
        };
        callbacks.on_down = [this](const std::string& target, bool was_up, const Status& why) {
            on_link_down(std::stoul(target), was_up, why);
        };
        auto made = LinkDialer::make(std::move(o), std::move(callbacks));
        if (!made) return false;
        dialer = std::move(made.value());
        return true;
    }

    bool ensure_link(size_t index) {
        Endpoint& e = endpoints[index];
        if (e.link_added) return true;
        auto endpoint = parse_tcp_endpoint("tcp://" + e.address.substr(kLinkScheme.size()));
        if (!endpoint || !ensure_dialer()) return false;
        dialer->add(e.link_target, endpoint.value());
        e.link_added = true;
        return true;
    }

    // A refused handshake fails every request of the endpoint at once, as
    // read_handshake_events does for a socket, and the link is dropped (the
    // next request dials again: the key may have been added since). A link
    // lost while up takes the requests sent on it: a read moves on to the
    // next endpoint (or fails), a write fails as a timeout does (it may have
    // been applied). An attempt that failed otherwise just waits for the next.
    void on_link_down(size_t index, bool was_up, const Status& why) {
        Endpoint& e = endpoints[index];
        if (why.code() == ErrorCode::unauthorized) {
            fail_endpoint(index, Status(ErrorCode::unauthorized,
                                        "the node at " + e.address + " refused this client (" +
                                            why.message() +
                                            "): the key is not a user of the cluster, or the "
                                            "node does not hold the cluster key given"));
            links_refused.push_back(index);
            return;
        }
        if (!was_up) return;
        std::vector<uint64_t> lost;
        for (const auto& [id, p] : pending) {
            if (p.endpoint == index && p.sent) lost.push_back(id);
        }
        if (!lost.empty()) note_unresponsive(index);
        for (uint64_t id : lost) {
            Pending& p = pending.at(id);
            if (p.retryable && p.may_move && p.endpoints_tried < endpoints.size()) {
                move_on(id, p);
            } else {
                complete(id,
                         Status(ErrorCode::timeout,
                                "the connection to " + e.address + " was lost before the reply (" +
                                    why.message() + "); a write may have been applied"));
            }
        }
    }

    void poll_links() {
        if (!dialer) return;
        dialer->poll(steady_ms());
        for (size_t index : links_refused) {
            dialer->remove(endpoints[index].link_target);
            endpoints[index].link_added = false;
        }
        links_refused.clear();
    }

    // A refused handshake is otherwise silent: with ZMQ_IMMEDIATE the
    // requests would wait for a connection that never completes and fail as
    // timeouts. The monitor turns the refusal into an error at once.
    zmq::socket_t watch_handshakes(zmq::socket_t& s, size_t index) {
        // A fresh name per socket: a closed socket's monitor endpoint is
        // released asynchronously, so reusing its name could fail.
        static std::atomic<uint64_t> monitors_made{0};  // in the process: the context is shared
        const std::string address = "inproc://kv-client-monitor-" + std::to_string(index) + "-" +
                                    std::to_string(monitors_made.fetch_add(1));
        constexpr int kEvents = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
        if (zmq_socket_monitor(s.handle(), address.c_str(), kEvents) != 0) throw zmq::error_t();
        zmq::socket_t monitor(*context, zmq::socket_type::pair);
        monitor.set(zmq::sockopt::linger, 0);
        monitor.connect(address);
        return monitor;
    }

    // Reads the monitor's events (two frames: 6 bytes of event number and
    // value, then the endpoint) and fails every request of the endpoint on a
    // failed handshake: no retry or failover would help, as every node of a
    // cluster admits the same keys. libzmq does not redial after a ZAP
    // refusal (it does after other handshake failures), so the socket is
    // dropped too: the next request makes a new one, which tries again (the
    // key may have been added since).
    void read_handshake_events(size_t index) {
        Endpoint& e = endpoints[index];
        for (size_t i = 0; i < kReceiveBatchMax; ++i) {
            std::vector<zmq::message_t> event;
            try {
                if (!zmq::recv_multipart(*e.monitor, std::back_inserter(event),
                                         zmq::recv_flags::dontwait)) {
                    return;
                }
            } catch (const zmq::error_t&) {
                return;
            }
            if (event.empty() || event[0].size() < 6) continue;
            uint16_t number = 0;
            uint32_t value = 0;
            std::memcpy(&number, event[0].data(), sizeof number);
            std::memcpy(&value, static_cast<const char*>(event[0].data()) + 2, sizeof value);
            std::string why;
            if (number == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
                why = "the node refused this client key at the handshake (" + e.address +
                      ", ZAP status " + std::to_string(value) +
                      "): the key is not a user of the cluster, or not the cluster key";
            } else {
                why = "the security handshake with " + e.address + " failed: " +
                      (options.curve ? "this client offers CURVE keys"
                                     : "this client offers no CURVE key") +
                      ", which the node does not accept (is it started with" +
                      (options.curve ? "out" : "") + " --cluster-key? kvctl --key FILE)";
            }
            fail_endpoint(index, Status(ErrorCode::unauthorized, why));
            e.monitor.reset();
            e.socket.reset();
            waiter.items_changed();
            return;
        }
        waiter.unsettle(e.monitor->handle());  // stopped before a receive found nothing
    }

    void fail_endpoint(size_t index, const Status& why) {
        std::vector<uint64_t> doomed;
        for (const auto& [id, p] : pending) {
            if (p.endpoint == index) doomed.push_back(id);
        }
        for (uint64_t id : doomed) complete(id, why);
    }

    // ---- bookkeeping -------------------------------------------------------

    void schedule(uint64_t id, Pending& p, Clock::time_point at) {
        expiries.erase({p.expires_at, id});
        p.expires_at = at;
        expiries.insert({at, id});
    }

    // Removes the request and queues its callback; callbacks never run inside
    // submit_*, so callers need not be reentrant.
    void complete(uint64_t id, Result<proto::Message> result) {
        auto it = pending.find(id);
        assert(it != pending.end());
        Pending& p = it->second;
        expiries.erase({p.expires_at, id});
        if (!p.sent) {
            auto& q = endpoints[p.endpoint].unsent;
            q.erase(std::remove(q.begin(), q.end(), id), q.end());
        }
        ready.push_back(
            [done = std::move(p.done), r = std::move(result)]() mutable { done(std::move(r)); });
        pending.erase(it);
    }

    uint64_t fail_now(Completion done, Status error) {
        uint64_t id = next_id++;
        ready.push_back([done = std::move(done), e = std::move(error)]() mutable { done(e); });
        return id;
    }

    uint64_t wait_ms_for(uint64_t deadline_ms) const {
        uint64_t node_ms = deadline_ms == 0 ? options.node_default_deadline_ms : deadline_ms;
        return node_ms + options.local_margin_ms;
    }

    uint64_t submit(const proto::Message& request, uint64_t id, uint64_t reply_wait_ms,
                    bool is_read, bool may_move, Completion done) {
        if (pending.size() >= options.in_flight_max) {
            return fail_now(
                std::move(done),
                Status(ErrorCode::overloaded, "client in-flight limit reached (" +
                                                  std::to_string(options.in_flight_max) + ")"));
        }
        Pending p;
        p.frame = proto::encode(request);
        p.done = std::move(done);
        p.endpoint = current;
        p.retryable = is_read;
        p.may_move = may_move;
        p.reply_wait_ms = reply_wait_ms;
        auto [it, inserted] = pending.emplace(id, std::move(p));
        assert(inserted);
        enqueue(id, it->second, current);
        return id;
    }

    void enqueue(uint64_t id, Pending& p, size_t index) {
        p.endpoint = index;
        p.sent = false;
        schedule(id, p, Clock::now() + std::chrono::milliseconds(options.connect_timeout_ms));
        ensure_socket(index);  // on failure the request waits and then expires
        endpoints[index].unsent.push_back(id);
        // Sent by the next poll(), with whatever else is queued by then.
    }

    // Hands queued frames to ZeroMQ until it pushes back (not connected, or
    // the high-water mark is reached): several at once as batch frames when
    // batching, else one by one.
    void flush(size_t index) {
        Endpoint& e = endpoints[index];
        if (e.link ? !(e.link_added && dialer->is_up(e.link_target)) : !e.socket) return;
        // A send may process the socket's mailbox, consuming its descriptor's signal.
        if (!e.unsent.empty() && e.socket) waiter.unsettle(e.socket->handle());
        while (!e.unsent.empty()) {
            const bool batch = e.batching && options.batch_requests && e.unsent.size() > 1;
            if (!(batch ? send_batch(e) : send_one(e))) return;
        }
    }

    // Hands one frame to the endpoint's socket or link. True when it took
    // it; false when it pushed back (not connected, or its queue is full), or
    // failed for this frame, then with `error` set.
    bool transmit(Endpoint& e, std::string_view bytes, std::optional<Status>& error) {
        if (e.link) {
            Status sent = dialer->send(e.link_target, bytes);
            if (sent.code() == ErrorCode::message_too_large) error = sent;
            return sent.ok();
        }
        try {
            return e.socket->send(zmq::buffer(bytes), zmq::send_flags::dontwait).has_value();
        } catch (const zmq::error_t& err) {
            error = connection_error("send to " + e.address + ": " + err.what());
            return false;
        }
    }

    // Sends the first queued request alone; false when the transport pushed back.
    bool send_one(Endpoint& e) {
        uint64_t id = e.unsent.front();
        Pending& p = pending.at(id);
        std::optional<Status> error;
        if (!transmit(e, p.frame, error)) {
            if (!error) return false;
            complete(id, *error);
            return true;
        }
        e.unsent.pop_front();
        mark_sent(id, p, false);
        return true;
    }

    // Sends the queued requests that fit in one batch frame (at least the
    // first); false when ZeroMQ pushed back, and then none of them went.
    bool send_batch(Endpoint& e) {
        proto::BatchFrame frame;
        size_t count = 0;
        for (uint64_t id : e.unsent) {
            const std::string& bytes = pending.at(id).frame;
            if (!frame.fits(bytes.size())) break;
            frame.add(bytes);
            ++count;
        }
        if (count == 1) return send_one(e);
        std::optional<Status> error;
        if (!transmit(e, frame.bytes(), error)) {
            if (!error) return false;
            for (size_t i = 0; i < count; ++i) {
                uint64_t id = e.unsent.front();
                e.unsent.pop_front();
                complete(id, *error);
            }
            return true;
        }
        for (size_t i = 0; i < count; ++i) {
            uint64_t id = e.unsent.front();
            e.unsent.pop_front();
            mark_sent(id, pending.at(id), true);
        }
        return true;
    }

    void mark_sent(uint64_t id, Pending& p, bool batched) {
        p.sent = true;
        p.batched = batched;
        schedule(id, p, Clock::now() + std::chrono::milliseconds(p.reply_wait_ms));
    }

    // A node of an earlier version refused a batch frame (with --cluster-key
    // it answered every batch from a client so, reading nothing in it): this
    // connection sends one by one from now on, starting with what it batched.
    void stop_batching(size_t index) {
        Endpoint& e = endpoints[index];
        if (!e.batching) return;
        e.batching = false;
        std::vector<uint64_t> again;
        for (auto& [id, p] : pending) {
            if (p.endpoint == index && p.sent && p.batched) again.push_back(id);
        }
        // Ids grow with submission, so this is the order they were sent in.
        for (auto it = again.rbegin(); it != again.rend(); ++it) {
            Pending& p = pending.at(*it);
            p.sent = false;
            p.batched = false;
            schedule(*it, p, Clock::now() + std::chrono::milliseconds(options.connect_timeout_ms));
            e.unsent.push_front(*it);
        }
        flush(index);
    }

    // Later requests go to the next endpoint; a no-op when another failure
    // already moved on, so N concurrent timeouts advance only once.
    void note_unresponsive(size_t index) {
        if (current == index) current = (current + 1) % endpoints.size();
    }

    // ---- replies -----------------------------------------------------------

    void on_frame(size_t index, std::string_view frame) {
        if (proto::is_batch_frame(frame)) {
            // Completions only queue callbacks, so nothing reenters here meanwhile.
            if (proto::split_batch_frame(frame, batch_parts)) {
                for (std::string_view part : batch_parts) on_message(index, part);
            } else {
                ++stale_replies;  // a malformed batch: its requests time out
            }
            return;
        }
        on_message(index, frame);
    }

    void on_message(size_t index, std::string_view frame) {
        uint64_t id = 0;
        auto decoded = proto::decode(frame, &id);
        if (!decoded) {
            if (id != 0 && pending.count(id) != 0) {
                complete(id, Status(decoded.status().code(),
                                    "undecodable reply: " + decoded.status().message()));
            } else {
                ++stale_replies;
            }
            return;
        }
        id = proto::request_id(decoded.value());
        if (const auto* e = std::get_if<proto::ErrorResponse>(&decoded.value());
            e != nullptr && id == 0 && e->code == ErrorCode::unauthorized &&
            e->message == kBatchRefused) {
            stop_batching(index);
            return;
        }
        if (pending.count(id) == 0) {
            ++stale_replies;  // answered after a timeout or failover
            return;
        }
        if (auto* e = std::get_if<proto::ErrorResponse>(&decoded.value())) {
            complete(id, node_error(e->code, e->message));
            return;
        }
        complete(id, std::move(decoded));
    }

    void receive_all(size_t index) {
        Endpoint& e = endpoints[index];
        for (size_t i = 0; i < kReceiveBatchMax; ++i) {
            zmq::message_t part;
            std::string last_part;
            try {
                if (!e.socket->recv(part, zmq::recv_flags::dontwait)) return;
                // A node should send one frame; tolerate a delimiter-framed
                // reply by using its last part.
                while (part.more()) {
                    if (!e.socket->recv(part, zmq::recv_flags::none)) return;
                }
            } catch (const zmq::error_t&) {
                return;
            }
            on_frame(index, part.to_string_view());
            // Nothing in flight: no reply is due, so a receive that would only
            // find nothing (a system call) is left to the next wait, which
            // reports the socket unsettled and makes it once for this and for
            // the send a callback may make now (ready_waiter.h).
            if (pending.empty()) break;
        }
        waiter.unsettle(e.socket->handle());  // stopped before a receive found nothing
    }

    // ---- expiry ------------------------------------------------------------

    void expire(uint64_t id) {
        Pending& p = pending.at(id);
        const std::string& address = endpoints[p.endpoint].address;
        note_unresponsive(p.endpoint);
        bool others_left = p.endpoints_tried < endpoints.size();
        if (!p.sent) {
            auto& q = endpoints[p.endpoint].unsent;
            q.erase(std::remove(q.begin(), q.end(), id), q.end());
            // Never handed to a node, so moving it cannot duplicate a write.
            if (p.may_move && others_left) return move_on(id, p);
            p.sent = true;  // already removed from the queue
            complete(id, connection_error("could not send to " + address + " within " +
                                          std::to_string(options.connect_timeout_ms) + " ms"));
            return;
        }
        if (p.retryable && p.may_move && others_left) return move_on(id, p);
        complete(id, Status(ErrorCode::timeout, "no reply from " + address + " within " +
                                                    std::to_string(p.reply_wait_ms) + " ms"));
    }

    void move_on(uint64_t id, Pending& p) {
        size_t next = (p.endpoint + 1) % endpoints.size();
        ++p.endpoints_tried;
        enqueue(id, p, next);
    }

    void expire_due(Clock::time_point now) {
        while (!expiries.empty() && expiries.begin()->first <= now) {
            expire(expiries.begin()->second);
        }
    }

    // ---- the loop ----------------------------------------------------------

    int wait_ms(int timeout_ms) const {
        // No time to wait: no clock to read.
        if (!ready.empty() || timeout_ms <= 0) return 0;
        return wait_ms_at(timeout_ms, Clock::now());
    }

    // The same as of `now`: a PollGroup reads the clock once a turn for all
    // its clients, where each client's own reads (two for each of 50 clients
    // in every turn) were 4% of kvbench's CPU.
    int wait_ms_at(int timeout_ms, Clock::time_point now) const {
        if (!ready.empty() || timeout_ms <= 0) return 0;
        int64_t wait = timeout_ms;
        if (!expiries.empty()) {
            auto until =
                std::chrono::duration_cast<std::chrono::milliseconds>(expiries.begin()->first - now)
                    .count();
            // +1: poll's millisecond granularity would otherwise wake just early.
            wait = std::min<int64_t>(wait, until + 1);
        }
        // A link's next connect attempt or deadline.
        if (dialer && dialer->next_due_ms() != UINT64_MAX) {
            const uint64_t now_ms = ms_of(now);
            const uint64_t due = dialer->next_due_ms();
            wait = std::min<int64_t>(wait, due <= now_ms ? 0 : static_cast<int64_t>(due - now_ms));
        }
        return static_cast<int>(std::clamp<int64_t>(wait, 0, timeout_ms));
    }

    // What poll() waits on, appended to `out`: each socket (also for room to
    // send while it holds unsent requests), then each socket's monitor, then
    // the links' descriptor; `endpoint_of` gets each socket's endpoint.
    // Returns whether a socket holds unsent requests.
    bool collect_items(std::vector<zmq::pollitem_t>& out, std::vector<size_t>& endpoint_of) {
        const size_t first = out.size();
        bool sending = false;
        for (size_t i = 0; i < endpoints.size(); ++i) {
            if (!endpoints[i].socket) continue;
            short events = ZMQ_POLLIN;
            if (!endpoints[i].unsent.empty()) {
                events |= ZMQ_POLLOUT;
                sending = true;
            }
            out.push_back({endpoints[i].socket->handle(), 0, events, 0});
            endpoint_of.push_back(i);
        }
        const size_t sockets = out.size() - first;
        for (size_t k = 0; k < sockets; ++k) {
            out.push_back(
                {endpoints[endpoint_of[endpoint_of.size() - sockets + k]].monitor->handle(), 0,
                 ZMQ_POLLIN, 0});
        }
        if (dialer) out.push_back({nullptr, dialer->fd(), ZMQ_POLLIN, 0});
        return sending;
    }

    void wait_and_receive(int timeout_ms) {
        items.clear();
        item_endpoint.clear();
        const bool sending = collect_items(items, item_endpoint);
        const size_t sockets = item_endpoint.size();
        if (items.empty()) {
            // No socket could be created: wait out the connect timeout.
            std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms(timeout_ms)));
            return;
        }
        // Links alone, and no time to wait: the dialer's own poll asks its
        // descriptors (one epoll_wait), so asking the waiter's set first, which
        // holds only the dialer's descriptor, is a system call that tells
        // nothing. In a PollGroup turn that was one of a link client's two.
        if (links_alone(items) && wait_ms(timeout_ms) == 0) {
            serve_links();
            return;
        }
        try {
            if (sending) {
                // Waiting for room to send (a node not connected yet, or a
                // full queue) is zmq_poll's: the waiter watches input only.
                zmq::poll(items, std::chrono::milliseconds(wait_ms(timeout_ms)));
                // Its ZMQ_EVENTS queries consumed the descriptors' signals.
                for (const auto& item : items) {
                    if (item.socket != nullptr) waiter.unsettle(item.socket);
                }
            } else {
                waiter.wait(items, static_cast<uint64_t>(wait_ms(timeout_ms)), steady_ms());
            }
        } catch (const zmq::error_t& err) {
            // A signal ends the wait early; any other failure (ready_waiter.h:
            // out of descriptors or memory, say) is waited out, not spun on.
            // Either way the requests' deadlines still expire them.
            if (err.num() != EINTR) {
                std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms(timeout_ms)));
            }
            return;
        }
        for (size_t k = 0; k < sockets; ++k) {
            Endpoint& e = endpoints[item_endpoint[k]];
            if (items[k].revents & ZMQ_POLLIN) receive_all(item_endpoint[k]);
            if (items[sockets + k].revents & ZMQ_POLLIN) read_handshake_events(item_endpoint[k]);
            if (!e.unsent.empty()) flush(item_endpoint[k]);
        }
        if (dialer) serve_links();
    }

    // Links: their input, connects and deadlines (a cheap call when nothing
    // is ready), then what waited for a link to come up.
    void serve_links() {
        poll_links();
        for (size_t i = 0; i < endpoints.size(); ++i) {
            if (endpoints[i].link && !endpoints[i].unsent.empty()) flush(i);
        }
        dialer->flush();
    }

    size_t run_ready() {
        // Only those queued so far: callbacks that fail new submissions at
        // once must not make this loop unbounded.
        size_t count = ready.size();
        for (size_t i = 0; i < count; ++i) {
            auto callback = std::move(ready.front());
            ready.pop_front();
            callback();
        }
        return count;
    }

    // Sends what was submitted since the last poll, together.
    void flush_all() {
        for (size_t i = 0; i < endpoints.size(); ++i) {
            if (!endpoints[i].unsent.empty()) flush(i);
        }
        if (dialer) dialer->flush();
    }

    bool has_work() const { return !pending.empty() || !ready.empty(); }

    // Whether the items collect_items() returned are the dialer's
    // descriptor alone: the client waits on links only.
    bool links_alone(const std::vector<zmq::pollitem_t>& collected) const {
        return collected.size() == 1 && collected[0].socket == nullptr && dialer &&
               collected[0].fd == dialer->fd();
    }

    // The descriptor a PollGroup watches for this client, given the items
    // collect_items() returned: the dialer's own epoll set when the client
    // waits on links alone (one level of epoll less for every wake-up), else
    // the waiter's. Each lives as long as the client.
    int group_fd(const std::vector<zmq::pollitem_t>& collected) const {
        return links_alone(collected) ? dialer->fd() : waiter.fd();
    }

    size_t poll(int timeout_ms) {
        if (!has_work()) return 0;
        flush_all();
        wait_and_receive(std::max(timeout_ms, 0));
        expire_due(Clock::now());
        return run_ready();
    }
};

// ---- AsyncClient ------------------------------------------------------------

AsyncClient::AsyncClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AsyncClient::AsyncClient(AsyncClient&&) noexcept = default;
AsyncClient& AsyncClient::operator=(AsyncClient&&) noexcept = default;
AsyncClient::~AsyncClient() = default;

Result<AsyncClient> AsyncClient::connect(std::vector<std::string> endpoints,
                                         ClientOptions options) {
    if (endpoints.empty()) return Status(ErrorCode::invalid_argument, "no endpoints given");
    for (const auto& e : endpoints) {
        if (!looks_like_endpoint(e)) {
            return Status(ErrorCode::invalid_argument, "malformed endpoint '" + e + "'");
        }
    }
    if (options.curve) {
        for (const std::string* key :
             {&options.curve->client_public_z85, &options.curve->client_secret_z85,
              &options.curve->server_public_z85}) {
            if (!is_curve_key_z85(*key)) {
                return Status(ErrorCode::invalid_argument,
                              "CURVE credentials: a key is not 40 characters of Z85");
            }
        }
    }
    std::unique_ptr<Impl> impl;
    try {
        impl = std::make_unique<Impl>();
    } catch (const zmq::error_t& err) {
        return connection_error(std::string("zmq context: ") + err.what());
    }
    impl->options = options;
    for (auto& e : endpoints) {
        Impl::Endpoint endpoint;
        endpoint.link = e.starts_with(kLinkScheme);
        if (endpoint.link) endpoint.link_target = std::to_string(impl->endpoints.size());
        endpoint.address = std::move(e);
        impl->endpoints.push_back(std::move(endpoint));
    }
    if (!impl->ensure_socket(0)) {
        return Status(ErrorCode::invalid_argument,
                      "cannot connect to '" + impl->endpoints[0].address + "'");
    }
    return AsyncClient(std::move(impl));
}

uint64_t AsyncClient::submit_get(std::string key, const RequestOptions& options, GetCallback done) {
    uint64_t id = impl_->next_id++;
    proto::GetRequest r{id, std::move(key), options.consistency, options.deadline_ms};
    return impl_->submit(
        r, id, impl_->wait_ms_for(options.deadline_ms), true, true,
        [done = std::move(done)](Result<proto::Message> m) { done(to_get_result(std::move(m))); });
}

uint64_t AsyncClient::submit_put(std::string key, std::string value,
                                 std::optional<std::string> context, const RequestOptions& options,
                                 WriteCallback done) {
    uint64_t id = impl_->next_id++;
    proto::PutRequest r{id,
                        std::move(key),
                        std::move(value),
                        std::move(context),
                        options.consistency,
                        options.deadline_ms};
    return impl_->submit(r, id, impl_->wait_ms_for(options.deadline_ms), false, true,
                         [done = std::move(done)](Result<proto::Message> m) {
                             done(to_write_result(std::move(m)));
                         });
}

uint64_t AsyncClient::submit_del(std::string key, std::optional<std::string> context,
                                 const RequestOptions& options, WriteCallback done) {
    uint64_t id = impl_->next_id++;
    proto::DelRequest r{id, std::move(key), std::move(context), options.consistency,
                        options.deadline_ms};
    return impl_->submit(r, id, impl_->wait_ms_for(options.deadline_ms), false, true,
                         [done = std::move(done)](Result<proto::Message> m) {
                             done(to_write_result(std::move(m)));
                         });
}

uint64_t AsyncClient::submit_local_get(std::string key, GetCallback done) {
    uint64_t id = impl_->next_id++;
    proto::LocalGetRequest r{id, std::move(key)};
    return impl_->submit(
        r, id, impl_->options.admin_timeout_ms, true, false,
        [done = std::move(done)](Result<proto::Message> m) { done(to_get_result(std::move(m))); });
}

uint64_t AsyncClient::submit_status(StatusCallback done) {
    uint64_t id = impl_->next_id++;
    proto::StatusRequest r{id};
    return impl_->submit(r, id, impl_->options.admin_timeout_ms, true, true,
                         [done = std::move(done)](Result<proto::Message> m) {
                             done(to_status_result(std::move(m)));
                         });
}

uint64_t AsyncClient::submit_stats(std::function<void(Result<std::string>)> done) {
    uint64_t id = impl_->next_id++;
    proto::StatsRequest r{id};
    return impl_->submit(r, id, impl_->options.admin_timeout_ms, true, true,
                         [done = std::move(done)](Result<proto::Message> m) {
                             if (!m) return done(m.status());
                             auto* s = std::get_if<proto::StatsResponse>(&m.value());
                             if (s == nullptr) return done(unexpected_reply(m.value()));
                             done(std::move(s->text));
                         });
}

uint64_t AsyncClient::submit_owners(std::string key, OwnersCallback done) {
    uint64_t id = impl_->next_id++;
    proto::OwnersRequest r{id, std::move(key)};
    return impl_->submit(r, id, impl_->options.admin_timeout_ms, true, true,
                         [done = std::move(done)](Result<proto::Message> m) {
                             done(to_owners_result(std::move(m)));
                         });
}

uint64_t AsyncClient::submit_repair(proto::RepairRequest request,
                                    std::function<void(Result<std::string>)> done) {
    uint64_t id = impl_->next_id++;
    request.id = id;
    return impl_->submit(request, id, impl_->options.admin_timeout_ms, true, false,
                         [done = std::move(done)](Result<proto::Message> m) {
                             done(to_admin_result(std::move(m)));
                         });
}

uint64_t AsyncClient::submit_leave(std::function<void(Result<std::string>)> done) {
    uint64_t id = impl_->next_id++;
    proto::LeaveRequest r{id};
    return impl_->submit(r, id, impl_->options.admin_timeout_ms, true, false,
                         [done = std::move(done)](Result<proto::Message> m) {
                             done(to_admin_result(std::move(m)));
                         });
}

uint64_t AsyncClient::submit_removenode(std::string node_id,
                                        std::function<void(Result<std::string>)> done) {
    uint64_t id = impl_->next_id++;
    proto::RemoveNodeRequest r{id, std::move(node_id)};
    return impl_->submit(r, id, impl_->options.admin_timeout_ms, true, false,
                         [done = std::move(done)](Result<proto::Message> m) {
                             done(to_admin_result(std::move(m)));
                         });
}

uint64_t AsyncClient::submit_user_add(std::string name, std::string public_key_z85,
                                      AdminCallback done) {
    uint64_t id = impl_->next_id++;
    proto::UserAddRequest r{id, std::move(name), std::move(public_key_z85)};
    return impl_->submit(r, id, impl_->options.admin_timeout_ms, false, true,
                         [done = std::move(done)](Result<proto::Message> m) {
                             done(to_admin_result(std::move(m)));
                         });
}

uint64_t AsyncClient::submit_user_del(std::string name, AdminCallback done) {
    uint64_t id = impl_->next_id++;
    proto::UserDelRequest r{id, std::move(name)};
    return impl_->submit(r, id, impl_->options.admin_timeout_ms, false, true,
                         [done = std::move(done)](Result<proto::Message> m) {
                             done(to_admin_result(std::move(m)));
                         });
}

uint64_t AsyncClient::submit_user_list(UserListCallback done) {
    uint64_t id = impl_->next_id++;
    proto::UserListRequest r{id};
    return impl_->submit(r, id, impl_->options.admin_timeout_ms, true, true,
                         [done = std::move(done)](Result<proto::Message> m) {
                             if (!m) return done(m.status());
                             auto* l = std::get_if<proto::UserListResponse>(&m.value());
                             if (l == nullptr) return done(unexpected_reply(m.value()));
                             if (l->code != ErrorCode::ok) return done(Status(l->code, l->message));
                             done(std::move(l->users));
                         });
}

uint64_t AsyncClient::submit_grant(std::string name, proto::Permission permission,
                                   std::string prefix, AdminCallback done) {
    uint64_t id = impl_->next_id++;
    proto::GrantRequest r{id, std::move(name), permission, std::move(prefix)};
    return impl_->submit(r, id, impl_->options.admin_timeout_ms, false, true,
                         [done = std::move(done)](Result<proto::Message> m) {
                             done(to_admin_result(std::move(m)));
                         });
}

uint64_t AsyncClient::submit_revoke(std::string name, proto::Permission permission,
                                    std::string prefix, AdminCallback done) {
    uint64_t id = impl_->next_id++;
    proto::RevokeRequest r{id, std::move(name), permission, std::move(prefix)};
    return impl_->submit(r, id, impl_->options.admin_timeout_ms, false, true,
                         [done = std::move(done)](Result<proto::Message> m) {
                             done(to_admin_result(std::move(m)));
                         });
}

size_t AsyncClient::poll(int timeout_ms) {
    return impl_->poll(timeout_ms);
}
size_t AsyncClient::in_flight() const {
    return impl_->pending.size() + impl_->ready.size();
}
const std::string& AsyncClient::current_endpoint() const {
    return impl_->endpoints[impl_->current].address;
}
const ClientOptions& AsyncClient::options() const {
    return impl_->options;
}
uint64_t AsyncClient::stale_replies() const {
    return impl_->stale_replies;
}

// ---- PollGroup ----------------------------------------------------------------

// One epoll set over the clients' waiters (ready_waiter.h), or over their
// dialers' sets for clients on links alone: each descriptor is readable while
// one of its client's sockets or links signals, so a turn costs one wait plus
// a poll(0) of each client that woke, whatever the number of clients (for a
// client on links, that poll's one epoll_wait is its dialer's).
struct PollGroup::Impl {
    // A client that cannot send yet (a ZeroMQ connection not up) or has no
    // socket is polled again after this long: the waiters watch input only.
    static constexpr int kRetryMs = 1;

    std::vector<AsyncClient*> clients;
    int epoll_fd = -1;
    std::vector<int> registered_fd;  // each client's waiter descriptor in epoll_fd, -1: none
    std::vector<uint8_t> due;        // this turn's: poll the client
    std::vector<zmq::pollitem_t> items;
    std::vector<size_t> endpoint_of;
    bool epolled_last = false;  // the last poll() asked epoll_fd

    ~Impl() {
        if (epoll_fd >= 0) ::close(epoll_fd);
    }

    // The client's descriptor (AsyncClient::Impl::group_fd) in the group's
    // set. A waiter keeps its descriptor when its items change
    // (ready_waiter.h) and a dialer is made once, so a client switches at
    // most between those two, both still open: the old one is taken out.
    bool watch(size_t i, int fd) {
        if (registered_fd[i] == fd) return true;
        if (registered_fd[i] >= 0) {
            ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, registered_fd[i], nullptr);
            registered_fd[i] = -1;
        }
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.u64 = i;
        if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) return false;
        registered_fd[i] = fd;
        return true;
    }

    size_t poll(int timeout_ms) {
        // One client waits on its own set: the group's, which would hold only
        // that set's descriptor, is an epoll_wait a turn that tells nothing.
        if (clients.size() == 1) return clients[0]->impl_->poll(timeout_ms);
        int wait = std::max(timeout_ms, 0);
        bool any = false;
        bool at_once = false;
        bool retrying = false;
        const Clock::time_point turn = Clock::now();
        const uint64_t now = ms_of(turn);
        for (size_t i = 0; i < clients.size(); ++i) {
            due[i] = 0;
            AsyncClient::Impl& c = *clients[i]->impl_;
            if (!c.has_work()) continue;
            any = true;
            c.flush_all();
            wait = c.wait_ms_at(wait, turn);
            items.clear();
            endpoint_of.clear();
            // Nothing to wait on (no socket could be made), or a socket that
            // cannot send yet: poll() itself waits these out, here retried.
            const bool retry = c.collect_items(items, endpoint_of) || items.empty();
            retrying = retrying || retry;
            bool ready = retry;
            const int fd = c.group_fd(items);
            // A client on links alone never waits with its waiter (its poll
            // asks the dialer), so the waiter's backstop, due once it has not
            // waited for 100 ms, must not make the group spin.
            if (fd == c.waiter.fd()) {
                try {
                    ready = c.waiter.prepare(items, now) || ready;
                } catch (const zmq::error_t&) {
                    ready = true;  // the client's own poll meets the failure and handles it
                }
            }
            if (!watch(i, fd)) ready = true;
            due[i] = ready ? 1 : 0;
            at_once = at_once || (ready && !retry);
        }
        if (!any) return 0;
        int timeout = at_once ? 0 : wait;
        if (retrying) timeout = std::min(timeout, kRetryMs);
        // As a waiter does (ready_waiter.cpp): with clients due at once, the
        // others are asked only every other turn.
        int n = 0;
        std::array<epoll_event, 64> events;
        if (at_once && epolled_last) {
            epolled_last = false;
        } else {
            epolled_last = true;
            n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), timeout);
        }
        for (int e = 0; e < n; ++e) {
            const size_t i = events[static_cast<size_t>(e)].data.u64;
            if (i < due.size()) due[i] = 1;
        }
        size_t ran = 0;
        const Clock::time_point woke = Clock::now();
        for (size_t i = 0; i < clients.size(); ++i) {
            AsyncClient::Impl& c = *clients[i]->impl_;
            if (!c.has_work()) continue;
            // wait_ms_at(1) is 0 when callbacks, an expiry or a link's deadline are due.
            if (due[i] != 0 || c.wait_ms_at(1, woke) == 0) ran += c.poll(0);
        }
        return ran;
    }
};

PollGroup::PollGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PollGroup::PollGroup(PollGroup&&) noexcept = default;
PollGroup& PollGroup::operator=(PollGroup&&) noexcept = default;
PollGroup::~PollGroup() = default;

Result<PollGroup> PollGroup::make(std::vector<AsyncClient*> clients) {
    auto impl = std::make_unique<Impl>();
    impl->epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (impl->epoll_fd < 0) {
        return connection_error(std::string("epoll: ") + std::strerror(errno));
    }
    std::erase(clients, nullptr);
    impl->registered_fd.assign(clients.size(), -1);
    impl->due.assign(clients.size(), 0);
    impl->clients = std::move(clients);
    return PollGroup(std::move(impl));
}

size_t PollGroup::poll(int timeout_ms) {
    return impl_->poll(timeout_ms);
}

// ---- Client -------------------------------------------------------------------

Result<Client> Client::connect(std::vector<std::string> endpoints, ClientOptions options) {
    auto async = AsyncClient::connect(std::move(endpoints), options);
    if (!async) return async.status();
    return Client(std::move(async).value());
}

template <typename T>
Result<T> Client::wait_for(std::optional<Result<T>>& slot) {
    // Every request completes by its local deadline, so this loop ends.
    while (!slot) async_.poll(100);
    return std::move(*slot);
}

Result<GetResult> Client::get(std::string key, std::optional<RequestOptions> options) {
    std::optional<Result<GetResult>> slot;
    async_.submit_get(std::move(key), options.value_or(async_.options().defaults),
                      [&slot](Result<GetResult> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<WriteResult> Client::put(std::string key, std::string value,
                                std::optional<std::string> context,
                                std::optional<RequestOptions> options) {
    std::optional<Result<WriteResult>> slot;
    async_.submit_put(std::move(key), std::move(value), std::move(context),
                      options.value_or(async_.options().defaults),
                      [&slot](Result<WriteResult> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<WriteResult> Client::del(std::string key, std::optional<std::string> context,
                                std::optional<RequestOptions> options) {
    std::optional<Result<WriteResult>> slot;
    async_.submit_del(std::move(key), std::move(context),
                      options.value_or(async_.options().defaults),
                      [&slot](Result<WriteResult> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<GetResult> Client::local_get(std::string key) {
    std::optional<Result<GetResult>> slot;
    async_.submit_local_get(std::move(key),
                            [&slot](Result<GetResult> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<proto::StatusResponse> Client::status() {
    std::optional<Result<proto::StatusResponse>> slot;
    async_.submit_status([&slot](Result<proto::StatusResponse> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<std::string> Client::stats() {
    std::optional<Result<std::string>> slot;
    async_.submit_stats([&slot](Result<std::string> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<proto::OwnersResponse> Client::owners(std::string key) {
    std::optional<Result<proto::OwnersResponse>> slot;
    async_.submit_owners(std::move(key),
                         [&slot](Result<proto::OwnersResponse> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<std::string> Client::repair(proto::RepairRequest request) {
    std::optional<Result<std::string>> slot;
    async_.submit_repair(std::move(request),
                         [&slot](Result<std::string> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<std::string> Client::leave() {
    std::optional<Result<std::string>> slot;
    async_.submit_leave([&slot](Result<std::string> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<std::string> Client::removenode(std::string node_id) {
    std::optional<Result<std::string>> slot;
    async_.submit_removenode(std::move(node_id),
                             [&slot](Result<std::string> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<std::string> Client::user_add(std::string name, std::string public_key_z85) {
    std::optional<Result<std::string>> slot;
    async_.submit_user_add(std::move(name), std::move(public_key_z85),
                           [&slot](Result<std::string> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<std::string> Client::user_del(std::string name) {
    std::optional<Result<std::string>> slot;
    async_.submit_user_del(std::move(name),
                           [&slot](Result<std::string> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<std::vector<proto::UserInfo>> Client::user_list() {
    std::optional<Result<std::vector<proto::UserInfo>>> slot;
    async_.submit_user_list(
        [&slot](Result<std::vector<proto::UserInfo>> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<std::string> Client::grant(std::string name, proto::Permission permission,
                                  std::string prefix) {
    std::optional<Result<std::string>> slot;
    async_.submit_grant(std::move(name), permission, std::move(prefix),
                        [&slot](Result<std::string> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<std::string> Client::revoke(std::string name, proto::Permission permission,
                                   std::string prefix) {
    std::optional<Result<std::string>> slot;
    async_.submit_revoke(std::move(name), permission, std::move(prefix),
                         [&slot](Result<std::string> r) { slot.emplace(std::move(r)); });
    return wait_for(slot);
}

Result<std::string> get_resolved(Client& client, std::string key, const SiblingResolver& resolve,
                                 std::optional<RequestOptions> options) {
    auto read = client.get(key, options);
    if (!read) return read.status();
    auto& values = read->values;
    if (values.size() == 1) return std::move(values.front());
    if (values.empty()) return Status(ErrorCode::internal, "get succeeded with no values");
    std::string merged = resolve(values);
    auto written = client.put(std::move(key), merged, std::move(read->context), options);
    if (!written) return written.status();
    return merged;
}

}  // namespace kv::client
