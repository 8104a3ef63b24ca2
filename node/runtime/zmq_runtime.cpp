#include "node/runtime/zmq_runtime.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "client/frame_batch.h"
#include "client/frame_handshake.h"
#include "client/link_dialer.h"
#include "client/link_server.h"
#include "client/metrics.h"
#include "client/ready_waiter.h"
#include "client/z85.h"
#include "node/access/access.h"
#include "node/buffered_env.h"
#include "node/metrics/histogram.h"
#include "node/metrics/http_server.h"
#include "node/metrics/request_metrics.h"
#include "node/resp/gateway.h"
#include "node/runtime/commit_thread.h"
#include "node/runtime/limits.h"
#include "node/runtime/stream_socket.h"
#include "node/storage/upgrade.h"

namespace kv::node {

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int) {
    g_stop.store(true);
}

void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: let the poll return EINTR
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
}

const char* level_word(LogLevel level) {
    switch (level) {
        case LogLevel::debug:
            return "debug";
        case LogLevel::info:
            return "info";
        case LogLevel::warn:
            return "warn";
        case LogLevel::error:
            return "error";
    }
    return "?";
}

// Clock, randomness and logging of a real process.
class ProcessEnv final : public BufferedEnv {
  public:
    ProcessEnv(Store& store, std::string node_id, LogLevel min_level)
        : BufferedEnv(store),
          node_id_(std::move(node_id)),
          min_level_(min_level),
          start_(std::chrono::steady_clock::now()),
          rng_(std::random_device{}()) {}

    uint64_t now_ms() override {
        // Offset by 1 s so that 0 never means "now" in the node's bookkeeping.
        return 1000 + static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::steady_clock::now() - start_)
                                                .count());
    }
    uint64_t random_u64() override { return rng_(); }
    void log(LogLevel level, std::string_view text) override { write_log(level, text); }

    void write_log(LogLevel level, std::string_view text) {
        if (level < min_level_) return;
        const auto now = std::chrono::system_clock::now();
        const std::time_t secs = std::chrono::system_clock::to_time_t(now);
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
            1000;
        std::tm tm{};
        gmtime_r(&secs, &tm);
        char stamp[32];
        std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        std::fprintf(stderr, "%s.%03dZ %-5s %s: %.*s\n", stamp, static_cast<int>(ms),
                     level_word(level), node_id_.c_str(), static_cast<int>(text.size()),
                     text.data());
    }

  private:
    std::string node_id_;
    LogLevel min_level_;
    std::chrono::steady_clock::time_point start_;
    std::mt19937_64 rng_;
};

constexpr int64_t kMaxMsgSizeBytes =
    int64_t{64} * 1024 * 1024;  // beyond this ZeroMQ drops the connection
constexpr int kHighWaterMark = 100000;
constexpr uint64_t kTickIntervalMs = 10;
constexpr size_t kUnsentMax = 10000;
// Gossip messages to one endpoint queued while it is not connected: few, since
// each round repeats the news and stale rounds are worth nothing.
constexpr int kGossipHighWaterMark = 16;
constexpr uint64_t kRefusalLogIntervalMs = 10000;  // refused handshakes: one log line per 10 s
// The memory watchdog reads RssAnon this often (a read costs tens of
// microseconds), and resets connections at most once per kMemoryResetGapMs
// (the I/O thread frees the queues of closed connections a moment later).
constexpr uint64_t kMemoryCheckIntervalMs = 10;
constexpr uint64_t kMemoryResetGapMs = 1000;
constexpr size_t kSlowReadersMax = 65536;
// A client's replies are batched into frames of at most this, so that the
// --reply-queue-max messages queued for a connection that does not read hold
// at most that many times 64 KiB of small replies (a lone larger reply still
// goes alone, as before); a member's, up to proto::kBatchFrameBytesMax.
constexpr size_t kClientReplyBatchBytesMax = size_t{64} << 10;
constexpr size_t kPeerRoutesMax = 4096;  // connections remembered as members or batching
constexpr uint64_t kLimitsLogIntervalMs = 10000;
constexpr uint64_t kWaitFailingStopMs = 30000;  // see poll_once
static_assert(client::kLinkSilenceMs <= kPeerHeartbeatTimeoutMs,
              "a member's link must end a silent peer as soon as its DEALER would (limits.h)");
// Links open at once on --link-listen; the next is accepted and closed.
constexpr size_t kLinkConnectionsMax = 4096;

// A link's replies are routed as "\0link:" and its connection number (8
// bytes, big-endian). ZeroMQ's routing ids start with a 0 byte and are 5
// bytes long, and the Redis gateway's say "\0resp:", so none is mistaken
// for another.
constexpr std::string_view kLinkRoutePrefix{"\0link:", 6};

std::string link_route(uint64_t conn) {
    std::string route(kLinkRoutePrefix);
    for (int shift = 56; shift >= 0; shift -= 8) route.push_back(static_cast<char>(conn >> shift));
    return route;
}

// A CURVE key as the catalog and ZAP spell it: 40 characters of Z85.
std::string key_z85(const client::CurveKey& key) {
    // 32 bytes, a multiple of 4: always encodable.
    return z85_encode(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()))
        .value();
}

std::optional<uint64_t> link_conn_of(std::string_view route) {
    if (route.size() != kLinkRoutePrefix.size() + 8 || !route.starts_with(kLinkRoutePrefix)) {
        return std::nullopt;
    }
    uint64_t conn = 0;
    for (size_t i = kLinkRoutePrefix.size(); i < route.size(); ++i) {
        conn = (conn << 8) | static_cast<unsigned char>(route[i]);
    }
    return conn;
}

class Runtime {
  public:
    Runtime(const RuntimeConfig& config, Store& store)
        : config_(config),
          store_(store),
          writer_(config.commit_thread
                      ? std::make_unique<CommitThread>(store, config.commits_in_flight)
                      : nullptr),
          env_(store, config.node.node_id, config.log_level),
          membership_(config.members),
          node_(config.node.seeds.empty() ? Node(config.node, env_, membership_)
                                          : Node(config.node, env_)),
          router_(ctx_, zmq::socket_type::router),
          slow_readers_(config.slow_reader_ms, kSlowReadersMax) {}

    // The node as the Redis gateway sees it (node/resp/gateway.h).
    class GatewayHostImpl final : public resp::GatewayHost {
      public:
        explicit GatewayHostImpl(Runtime& r) : r_(r) {}
        void submit(const ReplyTo& to, Message request, const Principal& who) override {
            r_.request_metrics_.on_request(to, request, now_us());
            r_.env_.begin_handler();
            r_.node_.on_request(to, std::move(request), std::nullopt, who);
            r_.resp_submitted_ = true;
        }
        std::optional<std::string> public_key_of_user(std::string_view name) const override {
            const UserRecord* user = r_.node_.access().catalog().find(name);
            if (user == nullptr || !user->live) return std::nullopt;
            // A key two live users claim admits neither (Catalog::user_of_key).
            if (r_.node_.user_of_key(user->public_key_z85) != std::string(name))
                return std::nullopt;
            return user->public_key_z85;
        }
        std::optional<std::pair<std::string, std::string>> user_of_secret_key(
            std::string_view secret_z85) const override {
            std::optional<std::string> key = client::public_key_of(secret_z85);
            if (!key) return std::nullopt;
            std::optional<std::string> user = r_.node_.user_of_key(*key);
            if (!user) return std::nullopt;
            return std::make_pair(*user, *key);
        }
        std::string server_info() const override {
            return "kvstore_node:" + r_.config_.node.node_id +
                   "\r\nprocess_id:" + std::to_string(::getpid()) +
                   "\r\nuptime_in_seconds:" + std::to_string(r_.env_.now_ms() / 1000) +
                   "\r\nresp_listen:" + r_.config_.resp_listen + "\r\nlisten:" + r_.config_.listen +
                   "\r\n";
        }

      private:
        Runtime& r_;
    };

    int run() {
        // Before the sockets: a node moving an old directory is not yet one
        // that peers or clients could reach and wait on.
        auto upgraded = upgrade_store(store_, env_.now_ms(), [this](const std::string& line) {
            env_.write_log(LogLevel::info, line);
        });
        if (!upgraded) {
            env_.write_log(LogLevel::error,
                           "cannot move the data directory to this build's format: " +
                               upgraded.status().to_string());
            return kExitFailed;
        }
        try {
            if (Status opened = open_sockets(); !opened.ok()) {
                env_.write_log(LogLevel::error, opened.message());
                return kExitFailed;
            }
        } catch (const zmq::error_t& e) {
            env_.write_log(LogLevel::error,
                           std::string("cannot listen on ") + config_.listen + ": " + e.what());
            return kExitFailed;
        }
        Status started = node_.start();
        if (!started.ok() || !flush_all()) {
            env_.write_log(LogLevel::error, "cannot start: " + started.to_string());
            return kExitFailed;
        }
        // An insecure node says so as a warning, so log filters keep it.
        env_.write_log(
            transport_mode(config_) == TransportMode::insecure ? LogLevel::warn : LogLevel::info,
            "listening on " + config_.listen +
                (link_server_ ? " and for links on " + config_.link_listen : std::string()) +
                ", data in " + config_.data_dir + "; " + describe_transport(config_));
        if (resp_) {
            env_.write_log(LogLevel::info,
                           "serving the Redis protocol on " + config_.resp_listen +
                               (config_.cluster_key
                                    ? (config_.resp_default_user.empty()
                                           ? std::string("; clients AUTH with a user's secret key")
                                           : "; clients act as " + config_.resp_default_user +
                                                 " until they AUTH")
                                    : std::string("; no credentials (protected mode)")));
        }
        uint64_t next_tick_ms = 0;
        while (!g_stop.load()) {
            sync_peers();
            // Gateway work left from the last turn (replies that arrived in
            // the last commit) must not wait for the poll's timeout.
            poll_once(resp_replies_.empty() ? kTickIntervalMs : 0);
            if (waits_failing_too_long()) return stop_unable_to_wait();
            serve_transport_events();
            serve_metrics();
            handle_batch();
            const uint64_t now = env_.now_ms();
            // Links: what is ready, and at each tick the handshakes' deadlines.
            if (link_server_ &&
                ((items_[link_item_].revents & ZMQ_POLLIN) != 0 || now >= next_tick_ms)) {
                link_server_->poll(now);
            }
            if ((items_[peer_links_item_].revents & ZMQ_POLLIN) != 0 || now >= next_tick_ms) {
                peer_links_->poll(now);
            }
            if (now >= next_tick_ms) {
                env_.begin_handler();
                node_.tick();
                next_tick_ms = now + kTickIntervalMs;
            }
            if (flush()) retry_unsent();
            serve_resp();
            if (link_server_) link_server_->flush();
            peer_links_->flush();
            if (commit_failed_) return fail_stop();
            watch_memory(now);
            log_limits(now);
        }
        env_.write_log(LogLevel::info, "stopping: signal received");
        node_.stop();
        flush_all();
        if (link_server_) link_server_->flush();
        peer_links_->flush();
        if (commit_failed_) return fail_stop();
        router_.set(zmq::sockopt::linger, 200);
        env_.write_log(LogLevel::info, "stopped");
        return kExitStopped;
    }

  private:
    Status open_sockets() {
        waiter_.emplace();
        // The ROUTER is the first poll item (handle_batch reads items_[0]);
        // the others record their own index as they are added.
        items_.push_back(zmq::pollitem_t{router_.handle(), 0, ZMQ_POLLIN, 0});
        // The ZAP handler exists before the ROUTER binds, so no connection is
        // ever accepted without being asked about (libzmq admits every key
        // when no handler is bound at inproc://zeromq.zap.01).
        if (config_.cluster_key) open_transport_security();
        open_router_monitor();
        router_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(config_.frame_bytes_max));
        router_.set(zmq::sockopt::sndhwm, config_.reply_queue_max);
        router_.set(zmq::sockopt::router_mandatory, 1);  // a full reply queue fails the send
        router_.set(zmq::sockopt::rcvhwm, kHighWaterMark);
        router_.set(zmq::sockopt::linger, 0);
        router_.bind(config_.listen);
        // The writer's eventfd wakes the loop when a commit is durable.
        if (writer_) items_.push_back(zmq::pollitem_t{nullptr, writer_->done_fd(), ZMQ_POLLIN, 0});
        if (!config_.resp_listen.empty()) open_resp();
        if (!config_.metrics_listen.empty()) open_metrics();
        if (!config_.link_listen.empty()) {
            if (Status opened = open_links(); !opened.ok()) return opened;
        }
        if (Status opened = open_peer_links(); !opened.ok()) return opened;
        fixed_poll_items_ = items_.size();
        return {};
    }

    // Links to the members that advertise one (gossip's link endpoints):
    // peer messages go over them while they are up, else over the DEALERs.
    // With a cluster key each proves it, as the DEALERs do.
    Status open_peer_links() {
        client::LinkDialerOptions options;
        options.frame_bytes_max = static_cast<size_t>(kMaxMsgSizeBytes);
        options.reconnect_initial_ms = 100;  // as the DEALERs
        options.reconnect_max_ms = 1000;
        if (config_.cluster_key) {
            auto keys = cluster_curve_keys();
            if (!keys) return keys.status();
            options.keys = keys.value();
            options.server_key = keys->public_key;
        }
        client::LinkDialer::Callbacks callbacks;
        callbacks.on_up = [this](const std::string& id) { peer_links_refused_.erase(id); };
        callbacks.on_frame = [this](const std::string& id, std::string_view frame) {
            on_peer_frames(id, frame);
        };
        callbacks.on_down = [this](const std::string& id, bool, const Status& why) {
            // A member that refuses the cluster key is misconfigured: said
            // once until its link comes up (the DEALER is refused as well).
            if (why.code() == ErrorCode::unauthorized && peer_links_refused_.insert(id).second) {
                env_.write_log(LogLevel::warn, "link to member " + id + ": " + why.message());
            }
        };
        auto made = client::LinkDialer::make(std::move(options), std::move(callbacks));
        if (!made) return made.status();
        peer_links_ = std::move(made.value());
        peer_links_item_ = items_.size();
        items_.push_back(zmq::pollitem_t{nullptr, peer_links_->fd(), ZMQ_POLLIN, 0});
        return {};
    }

    // Dials the members' link endpoints as gossip advertises them.
    void sync_peer_links(const gossip::Membership& members) {
        std::set<std::string> present;
        for (const auto& m : members.members()) {
            if (m.id == config_.node.node_id) continue;
            present.insert(m.id);
            auto known = peer_link_endpoints_.find(m.id);
            if (known != peer_link_endpoints_.end() && known->second == m.link_endpoint) continue;
            auto endpoint = client::parse_tcp_endpoint(m.link_endpoint);
            if (m.link_endpoint.empty() || !endpoint) {
                if (!m.link_endpoint.empty()) {
                    env_.write_log(LogLevel::warn, "member " + m.id + " advertises link endpoint " +
                                                       m.link_endpoint +
                                                       ", which is not tcp://HOST:PORT");
                }
                peer_links_->remove(m.id);
            } else {
                peer_links_->add(m.id, endpoint.value());
            }
            peer_link_endpoints_[m.id] = m.link_endpoint;
        }
        for (auto it = peer_link_endpoints_.begin(); it != peer_link_endpoints_.end();) {
            if (present.contains(it->first)) {
                ++it;
                continue;
            }
            peer_links_->remove(it->first);
            it = peer_link_endpoints_.erase(it);
        }
    }

    // ---- links (client/link_server.h) -----------------------------------------

    // The cluster key pair as links use it (with --cluster-key only).
    Result<client::CurveKeys> cluster_curve_keys() const {
        auto keys = client::curve_keys_of(config_.cluster_key->pair.public_z85,
                                          config_.cluster_key->pair.secret_z85);
        if (!keys) {
            return Status(ErrorCode::invalid_argument, "--cluster-key: " + keys.status().message());
        }
        return keys;
    }

    // The same requests as the ROUTER's, over links: with a cluster key each
    // runs the CURVE handshake as its server end and admits the keys ZAP
    // admits (the cluster key: a member; a live user's: that user).
    Status open_links() {
        auto endpoint = client::parse_tcp_endpoint(config_.link_listen);
        if (!endpoint) return Status(ErrorCode::invalid_argument, endpoint.status().message());
        client::LinkServerOptions options;
        options.frame_bytes_max = config_.frame_bytes_max;
        options.connections_max = kLinkConnectionsMax;
        // As the ROUTER's --reply-queue-max replies of at most a client batch frame.
        options.queued_bytes_max =
            static_cast<size_t>(std::max(config_.reply_queue_max, 1)) * kClientReplyBatchBytesMax;
        if (config_.cluster_key) {
            auto keys = cluster_curve_keys();
            if (!keys) return keys.status();
            options.keys = keys.value();
            options.admit = [this](const client::CurveKey& key) {
                const std::string z85 = key_z85(key);
                const bool admitted = z85 == config_.cluster_key->pair.public_z85 ||
                                      node_.user_of_key(z85).has_value();
                if (!admitted) link_refused_key_ = z85;  // for link_closed's log line
                return admitted;
            };
        }
        client::LinkServer::Callbacks callbacks;
        callbacks.on_established = [this](uint64_t conn, const client::CurveKey* key) {
            link_established(conn, key);
        };
        callbacks.on_frame = [this](uint64_t conn, std::string_view frame) {
            link_frame(conn, frame);
        };
        callbacks.on_closed = [this](uint64_t conn, client::LinkClose why, const Status& status) {
            link_closed(conn, why, status);
        };
        auto server =
            client::LinkServer::listen(endpoint.value(), std::move(options), std::move(callbacks));
        if (!server) {
            return Status(server.status().code(), "cannot listen on --link-listen " +
                                                      config_.link_listen + ": " +
                                                      server.status().message());
        }
        link_server_ = std::move(server.value());
        link_item_ = items_.size();
        items_.push_back(zmq::pollitem_t{nullptr, link_server_->fd(), ZMQ_POLLIN, 0});
        return {};
    }

    void link_established(uint64_t conn, const client::CurveKey* key) {
        Principal who = Principal::local();
        if (key != nullptr) {
            const std::string z85 = key_z85(*key);
            who = z85 == config_.cluster_key->pair.public_z85 ? Principal::peer()
                                                              : Principal::user(z85);
        }
        if (who.kind == Principal::Kind::peer) note_peer_route(link_route(conn));
        link_principals_.insert_or_assign(conn, std::move(who));
    }

    void link_frame(uint64_t conn, std::string_view frame) {
        auto who = link_principals_.find(conn);
        if (who == link_principals_.end()) return;  // never: frames come after on_established
        on_request_frame(ReplyTo{link_route(conn)}, frame, who->second);
    }

    void link_closed(uint64_t conn, client::LinkClose why, const Status& status) {
        link_principals_.erase(conn);
        const std::string route = link_route(conn);
        peer_routes_.erase(route);
        batch_routes_.erase(route);
        if (why == client::LinkClose::refused || why == client::LinkClose::handshake_failed) {
            note_refusal("link connection " + std::to_string(conn),
                         why == client::LinkClose::refused ? link_refused_key_ : "none",
                         status.message());
        } else if (why == client::LinkClose::slow_reader) {
            ++transport_stats_.replies_dropped;
        }
    }

    // ---- transport security (docs/SECURITY.md) -------------------------------

    // Binds the ZAP handler and makes the ROUTER a CURVE server with the
    // cluster key. The handler is polled with the others; libzmq holds each
    // handshake until the ZAP reply comes, so answering in the loop is enough.
    void open_transport_security() {
        zap_.emplace(ctx_, zmq::socket_type::rep);
        zap_->set(zmq::sockopt::linger, 0);
        zap_->bind("inproc://zeromq.zap.01");
        zap_item_ = items_.size();
        items_.push_back(zmq::pollitem_t{zap_->handle(), 0, ZMQ_POLLIN, 0});
        router_.set(zmq::sockopt::curve_server, 1);
        router_.set(zmq::sockopt::curve_secretkey, config_.cluster_key->pair.secret_z85);
        router_.set(zmq::sockopt::zap_domain, "kv");
    }

    // A monitor of the ROUTER: connections accepted and closed (the
    // kv_connections metric) and, with a cluster key, the handshakes that fail
    // before ZAP is asked (no CURVE, another mechanism, garbage), which only a
    // monitor sees. Polled with the others.
    void open_router_monitor() {
        int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED;
        if (config_.cluster_key) {
            events |= ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
        }
        const char* monitor_endpoint = "inproc://kv-router-monitor";
        if (zmq_socket_monitor(router_.handle(), monitor_endpoint, events) != 0) {
            throw zmq::error_t();
        }
        router_monitor_.emplace(ctx_, zmq::socket_type::pair);
        router_monitor_->set(zmq::sockopt::linger, 0);
        router_monitor_->connect(monitor_endpoint);
        monitor_item_ = items_.size();
        items_.push_back(zmq::pollitem_t{router_monitor_->handle(), 0, ZMQ_POLLIN, 0});
    }

    // Every DEALER dials a member, which proves at the handshake that it holds
    // the cluster secret key; this node proves the same with the same pair.
    void make_curve_client(zmq::socket_t& dealer) {
        if (!config_.cluster_key) return;
        dealer.set(zmq::sockopt::curve_serverkey, config_.cluster_key->pair.public_z85);
        dealer.set(zmq::sockopt::curve_publickey, config_.cluster_key->pair.public_z85);
        dealer.set(zmq::sockopt::curve_secretkey, config_.cluster_key->pair.secret_z85);
    }

    // Answers pending ZAP requests and reads the handshake monitor (bounded
    // per call, like every other receive of the loop).
    void serve_transport_events() {
        // Only when the poll saw an event: an empty receive costs system calls.
        if (zap_ && (items_[zap_item_].revents & ZMQ_POLLIN) != 0) {
            uint32_t answered = 0;
            while (answered < config_.batch_messages_max && answer_zap_request()) ++answered;
            if (answered != 0) waiter_->unsettle(zap_->handle());  // it sent the answers
        }
        if ((items_[monitor_item_].revents & ZMQ_POLLIN) != 0) {
            uint32_t read = 0;
            while (read < config_.batch_messages_max && read_router_monitor()) ++read;
            if (read == config_.batch_messages_max) waiter_->unsettle(router_monitor_->handle());
        }
        report_refusals();
    }

    // One whole message of an inproc socket (ZAP or monitor), if one is ready.
    bool receive_security_event(zmq::socket_t& socket, std::vector<zmq::message_t>& parts) {
        try {
            return zmq::recv_multipart(socket, std::back_inserter(parts), zmq::recv_flags::dontwait)
                .has_value();
        } catch (const zmq::error_t& e) {
            env_.write_log(LogLevel::warn, std::string("security socket receive: ") + e.what());
            return false;
        }
    }

    // ZAP (ZeroMQ RFC 27): version, request id, domain, address, routing id,
    // mechanism, then one credential frame for CURVE: the client's public key.
    bool answer_zap_request() {
        std::vector<zmq::message_t> request;
        if (!receive_security_event(*zap_, request)) return false;
        const std::string request_id = request.size() > 1 ? request[1].to_string() : "";
        const std::string address = request.size() > 3 ? request[3].to_string() : "?";
        std::string status = "400", text = "unknown key", user_id;
        std::optional<std::string> key;
        if (request.size() == 7 && request[0].to_string_view() == "1.0" &&
            request[5].to_string_view() == "CURVE" && request[6].size() == kCurveKeyBytes) {
            key = z85_encode(request[6].to_string_view());
        }
        if (!key) {
            text = "not a CURVE handshake";
        } else if (*key == config_.cluster_key->pair.public_z85) {
            status = "200", text = "cluster member", user_id = *key;
        } else if (node_.user_of_key(*key)) {
            status = "200", text = "user", user_id = *key;
        }
        if (status != "200") note_refusal(address, key.value_or("?"), text);
        std::array<zmq::const_buffer, 6> reply = {zmq::str_buffer("1.0"), zmq::buffer(request_id),
                                                  zmq::buffer(status),    zmq::buffer(text),
                                                  zmq::buffer(user_id),   zmq::const_buffer()};
        try {
            zmq::send_multipart(*zap_, reply);
        } catch (const zmq::error_t& e) {
            env_.write_log(LogLevel::warn, std::string("zap reply: ") + e.what());
        }
        return true;
    }

    // A monitor event is two frames: 6 bytes (event number, value), endpoint.
    bool read_router_monitor() {
        std::vector<zmq::message_t> event;
        if (!receive_security_event(*router_monitor_, event)) return false;
        if (!event.empty() && event[0].size() >= 2) {
            uint16_t number = 0;
            std::memcpy(&number, event[0].data(), sizeof number);
            if (number == ZMQ_EVENT_ACCEPTED) {
                ++native_accepted_;
            } else if (number == ZMQ_EVENT_DISCONNECTED) {
                ++native_disconnected_;
            } else if (number == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                       number == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
                note_refusal("an address the monitor does not report", "none",
                             "the handshake failed before any key was offered (no CURVE?)");
            }
        }
        return true;
    }

    // Counts a refused handshake; logs the first at once and then at most one
    // line per kRefusalLogIntervalMs, so a flood of attempts cannot flood the log.
    void note_refusal(const std::string& address, const std::string& key, const std::string& why) {
        ++handshakes_refused_;
        ++refusals_unlogged_;
        last_refusal_ = "from " + address + " key " + key + ": " + why;
        report_refusals();
    }

    void report_refusals() {
        if (refusals_unlogged_ == 0) return;
        const uint64_t now = env_.now_ms();
        if (last_refusal_log_ms_ != 0 && now - last_refusal_log_ms_ < kRefusalLogIntervalMs) return;
        env_.write_log(LogLevel::warn, "refused " + std::to_string(refusals_unlogged_) +
                                           " handshake(s) since the last report (" +
                                           std::to_string(handshakes_refused_) +
                                           " since start); last " + last_refusal_);
        refusals_unlogged_ = 0;
        last_refusal_log_ms_ = now;
    }

    // Who sent a message the ROUTER received: libzmq attaches the User-Id
    // the ZAP handler gave its connection to every message of it.
    // Connections that proved the cluster key (only with --cluster-key: without
    // it nothing tells a peer from a client). Bounded: forgotten wholesale when
    // full, as reconnecting members make new routing ids.
    void note_peer_route(const std::string& route) {
        if (peer_routes_.size() >= kPeerRoutesMax && !peer_routes_.contains(route)) {
            peer_routes_.clear();
        }
        peer_routes_.insert(route);
    }

    Principal principal_of(zmq::message_t& message) const {
        if (!config_.cluster_key) return Principal::local();
        const char* user_id = zmq_msg_gets(message.handle(), "User-Id");
        if (user_id == nullptr) return Principal::user("");  // never: every key passed ZAP
        if (config_.cluster_key->pair.public_z85 == user_id) return Principal::peer();
        return Principal::user(user_id);
    }

    zmq::socket_t make_dealer(const std::string& endpoint, bool immediate, int high_water_mark) {
        zmq::socket_t dealer(ctx_, zmq::socket_type::dealer);
        dealer.set(zmq::sockopt::linger, 0);
        dealer.set(zmq::sockopt::immediate, immediate ? 1 : 0);
        dealer.set(zmq::sockopt::sndhwm, high_water_mark);
        dealer.set(zmq::sockopt::rcvhwm, kHighWaterMark);
        dealer.set(zmq::sockopt::maxmsgsize, kMaxMsgSizeBytes);
        dealer.set(zmq::sockopt::reconnect_ivl, 100);
        dealer.set(zmq::sockopt::reconnect_ivl_max, 1000);
        if (immediate) {
            // A silent connection is closed, and what it held dropped (limits.h).
            dealer.set(zmq::sockopt::heartbeat_ivl, kPeerHeartbeatIntervalMs);
            dealer.set(zmq::sockopt::heartbeat_timeout, kPeerHeartbeatTimeoutMs);
            dealer.set(zmq::sockopt::heartbeat_ttl, kPeerHeartbeatTimeoutMs);
        }
        make_curve_client(dealer);
        dealer.connect(endpoint);
        return dealer;
    }

    // One DEALER per ring member, (re)made when the membership adds a member
    // or moves one to a new endpoint: the static list once, gossip as it learns.
    void sync_peers() {
        const gossip::Membership& members = node_.membership();
        if (synced_version_ == members.version() && !peer_ids_.empty()) return;
        synced_version_ = members.version();
        sync_peer_links(members);
        bool changed = false;
        for (const auto& m : members.members()) {
            if (m.id == config_.node.node_id) continue;
            auto known = peer_endpoints_.find(m.id);
            if (known != peer_endpoints_.end() && known->second == m.endpoint) continue;
            try {
                // Without a live connection, drop instead of queueing: the node's
                // deadlines and failure detection deal with absent peers.
                zmq::socket_t dealer = make_dealer(m.endpoint, true, kHighWaterMark);
                dealers_.insert_or_assign(m.id, std::move(dealer));
            } catch (const zmq::error_t& e) {
                env_.write_log(LogLevel::warn,
                               "cannot dial " + m.id + " at " + m.endpoint + ": " + e.what());
                continue;
            }
            if (known == peer_endpoints_.end()) peer_ids_.push_back(m.id);
            peer_endpoints_[m.id] = m.endpoint;
            changed = true;
        }
        if (changed) rebuild_poll_items();
    }

    // The gossip DEALER of an endpoint, made on first use; null when it
    // cannot be made or too many are open.
    zmq::socket_t* gossip_dealer(const std::string& endpoint) {
        auto it = gossip_dealers_.find(endpoint);
        if (it != gossip_dealers_.end()) {
            // Most recently used last: the first is the one to close next.
            auto pos = std::find(gossip_endpoints_.begin(), gossip_endpoints_.end(), endpoint);
            std::rotate(pos, pos + 1, gossip_endpoints_.end());
            return &it->second;
        }
        // Bounded (--gossip-endpoints-max): endpoints come from gossip messages,
        // so a flood of them must not open a socket each.
        if (gossip_dealers_.size() >= config_.gossip_endpoints_max) evict_gossip_dealer();
        try {
            // Queued while connecting (a few rounds at most): a seed's first
            // syn must not be lost just because the connection is new.
            auto made = gossip_dealers_.emplace(endpoint,
                                                make_dealer(endpoint, false, kGossipHighWaterMark));
            gossip_endpoints_.push_back(endpoint);
            rebuild_poll_items();
            return &made.first->second;
        } catch (const zmq::error_t& e) {
            env_.write_log(LogLevel::warn, "cannot dial " + endpoint + ": " + e.what());
            return nullptr;
        }
    }

    void evict_gossip_dealer() {
        const std::string oldest = gossip_endpoints_.front();
        gossip_endpoints_.erase(gossip_endpoints_.begin());
        gossip_dealers_.erase(oldest);
        ++transport_stats_.gossip_evicted;
        rebuild_poll_items();
    }

    void rebuild_poll_items() {
        // A socket closed and another made may share its address or descriptor.
        waiter_->items_changed();
        items_.resize(fixed_poll_items_);  // the ROUTER and the security sockets stay first
        for (const auto& id : peer_ids_) {
            items_.push_back(zmq::pollitem_t{dealers_.at(id).handle(), 0, ZMQ_POLLIN, 0});
        }
        // Poll order is fixed here: gossip_endpoints_ reorders as it is used.
        gossip_polled_ = gossip_endpoints_;
        for (const auto& ep : gossip_polled_) {
            items_.push_back(zmq::pollitem_t{gossip_dealers_.at(ep).handle(), 0, ZMQ_POLLIN, 0});
        }
    }

    // A failed wait (epoll failing other than by a signal: out of descriptors
    // or memory, which may pass, or a broken descriptor, which recurs) is not
    // spun on: the loop sleeps out the timeout, logs the first failure and
    // then one line every kLimitsLogIntervalMs, and stops the node once waits
    // have failed for kWaitFailingStopMs (it serves nothing meanwhile).
    void poll_once(uint64_t timeout_ms) {
        try {
            waiter_->wait(items_, timeout_ms, env_.now_ms());
            wait_failing_since_ms_.reset();
            return;
        } catch (const zmq::error_t& e) {
            const uint64_t now = env_.now_ms();
            if (!wait_failing_since_ms_) {
                wait_failing_since_ms_ = now;
                last_wait_failure_log_ms_.reset();
            }
            if (!last_wait_failure_log_ms_ ||
                now - *last_wait_failure_log_ms_ >= kLimitsLogIntervalMs) {
                env_.write_log(LogLevel::error, "the event loop cannot wait for its sockets (" +
                                                    std::string(e.what()) + "), for " +
                                                    std::to_string(now - *wait_failing_since_ms_) +
                                                    " ms now");
                last_wait_failure_log_ms_ = now;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(std::max<uint64_t>(timeout_ms, 1)));
    }

    bool waits_failing_too_long() {
        return wait_failing_since_ms_ &&
               env_.now_ms() - *wait_failing_since_ms_ >= kWaitFailingStopMs;
    }

    int stop_unable_to_wait() {
        env_.write_log(LogLevel::error,
                       "stopping: the event loop has not been able to wait for its sockets for " +
                           std::to_string(kWaitFailingStopMs / 1000) +
                           " s (see the errors above); nothing acknowledged is lost, restart it");
        router_.set(zmq::sockopt::linger, 0);
        return kExitFailed;
    }

    // Reads up to batch_messages_max messages, round robin over the sockets the
    // last poll found readable, each until it has no more. A receive that finds
    // nothing costs libzmq two system calls (its mailbox's poll and getpid), so
    // a socket that had nothing at the poll is not asked before the next poll,
    // which sees whatever arrived since.
    void handle_batch() {
        const size_t peers = peer_ids_.size();
        const size_t gossips = gossip_polled_.size();
        ready_.assign(1 + peers + gossips, 0);
        if (items_.size() == fixed_poll_items_ + peers + gossips) {
            ready_[0] = (items_[0].revents & ZMQ_POLLIN) != 0;
            for (size_t i = 0; i < peers + gossips; ++i) {
                ready_[1 + i] = (items_[fixed_poll_items_ + i].revents & ZMQ_POLLIN) != 0;
            }
        } else {
            ready_.assign(ready_.size(), 1);  // the items were rebuilt since the poll
        }
        uint32_t handled = 0;
        if (resp_ && (items_[resp_item_].revents & ZMQ_POLLIN) != 0) {
            handled += recv_resp();
            if (handled == config_.batch_messages_max) waiter_->unsettle(resp_socket_->handle());
        }
        bool progress = true;
        while (progress && handled < config_.batch_messages_max) {
            progress = false;
            if (ready_[0]) {
                ready_[0] = recv_from_router();
                handled += ready_[0];
                progress |= ready_[0] != 0;
            }
            for (size_t i = 0; i < peers; ++i) {
                if (!ready_[1 + i]) continue;
                ready_[1 + i] = recv_from_peer(peer_ids_[i]);
                handled += ready_[1 + i];
                progress |= ready_[1 + i] != 0;
            }
            for (size_t j = 0; j < gossips; ++j) {
                if (!ready_[1 + peers + j]) continue;
                ready_[1 + peers + j] = drain_gossip_dealer(gossip_polled_[j]);
                progress |= ready_[1 + peers + j] != 0;
            }
        }
        // A socket left before a receive found nothing may hold messages its
        // descriptor will not signal again (ready_waiter.h).
        if (ready_[0]) waiter_->unsettle(router_.handle());
        for (size_t i = 0; i < peers; ++i) {
            if (ready_[1 + i]) waiter_->unsettle(dealers_.at(peer_ids_[i]).handle());
        }
        for (size_t j = 0; j < gossips; ++j) {
            if (ready_[1 + peers + j]) {
                waiter_->unsettle(gossip_dealers_.at(gossip_polled_[j]).handle());
            }
        }
    }

    // One message from the ROUTER, read part by part: the routing id, the
    // request frame, and any further parts counted and dropped as they are
    // read, so that at most two parts are held whatever a sender puts in one
    // message (libzmq itself queues a message's parts until its last arrives:
    // see the memory watchdog).
    bool recv_from_router() {
        zmq::message_t route;
        zmq::message_t frame;
        size_t frames = 0;
        try {
            if (!router_.recv(route, zmq::recv_flags::dontwait)) return false;
            // The parts of a message are delivered together: the rest is there.
            bool more = route.more();
            if (more && router_.recv(frame, zmq::recv_flags::dontwait)) {
                frames = 1;
                more = frame.more();
            }
            while (more) {
                zmq::message_t rest;
                if (!router_.recv(rest, zmq::recv_flags::dontwait)) break;
                ++frames;
                more = rest.more();
            }
        } catch (const zmq::error_t& e) {
            env_.write_log(LogLevel::warn, std::string("receive: ") + e.what());
            return false;
        }
        ReplyTo from{route.to_string()};
        const Principal who = principal_of(frame);
        if (who.kind == Principal::Kind::peer) note_peer_route(from.route);
        if (who.kind != Principal::Kind::peer && slow_readers_.blocked(from.route, env_.now_ms())) {
            // Its replies would be dropped too: its queue was full moments ago.
            ++transport_stats_.requests_shed;
            return true;
        }
        if (frames != 1) {
            ++transport_stats_.messages_too_long;
            env_.begin_handler();
            node_.on_bad_frame(
                from, 0,
                Status(ErrorCode::bad_request,
                       "a request must be exactly one frame, got " + std::to_string(frames)));
            return true;
        }
        on_request_frame(from, frame.to_string_view(), who);
        return true;
    }

    // A request frame from a connection (the ROUTER's or a link), alone or a batch.
    void on_request_frame(const ReplyTo& from, std::string_view frame, const Principal& who) {
        if (proto::is_batch_frame(frame)) {
            handle_batch_request(from, frame, who);
        } else {
            handle_request(from, frame, who);
        }
    }

    // One request frame, alone or from a batch: decoded, then answered by the
    // node, which checks `who` may send it (node/access). True when it was a
    // node-to-node request (whether or not `who` may send one).
    bool handle_request(const ReplyTo& from, std::string_view frame, const Principal& who) {
        if (commit_failed_) return false;  // stopping: the store is behind memory
        uint64_t id = 0;
        auto decoded = node::decode(frame, &id);
        env_.begin_handler();
        if (!decoded) {
            node_.on_bad_frame(from, id, decoded.status());
            return false;
        }
        const bool peer_request = is_peer_request(decoded.value());
        request_metrics_.on_request(from, decoded.value(), now_us());
        if (const auto* stats = std::get_if<proto::StatsRequest>(&decoded.value());
            stats != nullptr && !node_.access().refusal(who, decoded.value())) {
            // The runtime's figures with the node's: the node alone knows only its own.
            env_.reply(from, proto::StatsResponse{stats->id, render_metrics()});
            return false;
        }
        node_.on_request(from, std::move(decoded.value()), std::nullopt, who);
        collect_commit();
        return peer_request;
    }

    // A batch frame on the ROUTER: the requests of one member's loop
    // iteration, or those a client's callbacks submitted together
    // (client/frame_batch.h). Each is checked and answered as if it came alone.
    void handle_batch_request(const ReplyTo& from, std::string_view frame, const Principal& who) {
        if (!proto::split_batch_frame(frame, batch_parts_)) {
            env_.begin_handler();
            node_.on_bad_frame(from, 0, Status(ErrorCode::bad_request, "malformed batch frame"));
            return;
        }
        bool peer_requests = false;
        for (std::string_view part : batch_parts_) {
            peer_requests = handle_request(from, part, who) || peer_requests;
        }
        // A member's replies go in frames as large as its requests may be; a
        // client's are capped (kClientReplyBatchBytesMax). Without
        // --cluster-key nothing proves who is a member, so a connection that
        // sends node-to-node requests is taken for one: such a sender may do
        // anything in that mode anyway.
        const bool member = who.kind == Principal::Kind::peer ||
                            (who.kind == Principal::Kind::local && peer_requests);
        note_batch_route(from.route,
                         member ? proto::kBatchFrameBytesMax : kClientReplyBatchBytesMax);
    }

    // Connections that sent a batch frame (members and clients of this
    // version, which read batch frames too), so their replies are batched, in
    // frames of at most the bytes kept here. Bounded as peer_routes_.
    void note_batch_route(const std::string& route, size_t reply_frame_bytes_max) {
        if (batch_routes_.size() >= kPeerRoutesMax && !batch_routes_.contains(route)) {
            batch_routes_.clear();
        }
        size_t& kept = batch_routes_[route];
        // A member's connection keeps its larger frames should one batch of it
        // carry client requests alone.
        kept = std::max(kept, reply_frame_bytes_max);
    }

    void on_peer_frame(const std::string& peer_id, std::string_view frame) {
        if (commit_failed_) return;  // stopping: the store is behind memory
        auto decoded = node::decode(frame);
        if (!decoded) {
            env_.write_log(LogLevel::warn, "undecodable reply from " + peer_id + ": " +
                                               decoded.status().to_string());
            return;
        }
        env_.begin_handler();
        node_.on_peer_reply(peer_id, std::move(decoded.value()));
        collect_commit();
    }

    // Between two messages of a turn: a commit the writer has finished has
    // its messages delivered and sent now, not at the end of the turn. A turn
    // that handles a client's batch frame of puts lasts hundreds of
    // microseconds, and every put's replica acknowledgements wait for a
    // commit on each replica: collected here, a commit took 0.57-0.58 ms
    // from start to delivery instead of 0.60-0.67 (docs/BENCHMARKS.md,
    // issue 14, twenty-sixth step). The next commit still starts at the end of the
    // turn (flush()), with everything the turn staged: starting it here too
    // made commits half as large and twice as many, and puts slower.
    // Sending from inside the links' receive callbacks is what they allow
    // (a link that fails meanwhile is closed once its receive returns).
    void collect_commit() {
        if (!writer_ || !writer_->done()) return;
        while (std::optional<Status> written = writer_->take_result()) {
            if (!end_commit(*written)) return;
        }
        if (link_server_) link_server_->flush();
        peer_links_->flush();
    }

    bool recv_from_peer(const std::string& peer_id) {
        zmq::message_t frame;
        std::optional<size_t> got;
        try {
            got = dealers_.at(peer_id).recv(frame, zmq::recv_flags::dontwait);
        } catch (const zmq::error_t& e) {
            return false;
        }
        if (!got) return false;
        while (frame.more()) {  // a peer never sends more than one frame; drain junk
            zmq::message_t rest;
            if (!dealers_.at(peer_id).recv(rest, zmq::recv_flags::dontwait)) break;
            if (!rest.more()) return true;
        }
        on_peer_frames(peer_id, frame.to_string_view());
        return true;
    }

    // A member's frame of replies (its DEALER's or its link's), alone or a batch.
    void on_peer_frames(const std::string& peer_id, std::string_view frame) {
        if (!proto::is_batch_frame(frame)) return on_peer_frame(peer_id, frame);
        if (!proto::split_batch_frame(frame, batch_parts_)) {
            env_.write_log(LogLevel::warn, "malformed batch frame from " + peer_id);
            return;
        }
        for (std::string_view part : batch_parts_) on_peer_frame(peer_id, part);
    }

    // Gossip is one-way: anything coming back (an error from a peer that could
    // not decode) is read only to keep the socket from filling up.
    bool drain_gossip_dealer(const std::string& endpoint) {
        zmq::message_t frame;
        try {
            return gossip_dealers_.at(endpoint).recv(frame, zmq::recv_flags::dontwait).has_value();
        } catch (const zmq::error_t&) {
            return false;
        }
    }

    // Commits staged writes, then sends what depended on them. With the
    // writer thread (--commit-thread) the commit runs there while the loop
    // goes on: this collects a finished one (its messages go now), sends what
    // depends on nothing staged, and starts the next. False when a commit
    // failed: its messages are dropped and the node must stop.
    bool flush() {
        // A commit collected mid-turn failed (collect_commit): nothing more
        // goes out; the run loop stops the node.
        if (commit_failed_) return false;
        // Replica merges first, before the commit they need not wait for
        // (Env::send_ahead): they travel while this node syncs.
        deliver_all(env_.take_ahead());
        if (!writer_) return commit_here();
        while (std::optional<Status> written = writer_->take_result()) {
            if (!end_commit(*written)) return false;
        }
        // What depends on no staged write goes now, or with the commit in
        // flight it waits for (BufferedEnv::take_sendable).
        std::vector<Outgoing> sendable = env_.take_sendable();
        if (!sendable.empty()) {
            deliver_all(std::move(sendable));
        } else {
            env_.recycle(std::move(sendable));
        }
        // A second commit starts while the first syncs (--commits-in-flight):
        // its record is written meanwhile and its sync overlaps.
        if (!env_.has_pending() || !writer_->can_start()) return true;
        const std::vector<StoreWrite>* writes = env_.begin_commit();
        // Only commits that write are timed: a batch of messages alone costs no sync.
        in_flight_started_us_.push_back(writes->empty() ? 0 : now_us());
        commit_writes_ += writes->size();
        writer_->start(writes);
        return true;
    }

    // Everything staged and sent so far made durable and delivered, waiting
    // for it (start and stop).
    bool flush_all() {
        while (writer_ && writer_->busy()) {
            if (!end_commit(writer_->wait())) return false;
        }
        return commit_here();
    }

    // The oldest commit in flight is written.
    bool end_commit(const Status& written) {
        const uint64_t started_us = in_flight_started_us_.front();
        in_flight_started_us_.pop_front();
        if (started_us != 0) commit_latency_.observe(now_us() - started_us);
        std::vector<Outgoing> out = env_.end_commit();
        // After a failed commit, those after it fail too (Store::make_durable)
        // and nothing more goes out: the node stops.
        if (commit_failed_) return false;
        if (!written.ok()) return commit_failed(written);
        deliver_all(std::move(out));
        return true;
    }

    bool commit_failed(const Status& why) {
        env_.write_log(LogLevel::error,
                       "store commit failed, dropping the batch's replies: " + why.to_string());
        commit_failed_ = true;
        return false;
    }

    bool commit_here() {
        if (!env_.has_pending()) return true;
        const size_t writes = env_.staged_writes();
        const uint64_t started_us = writes == 0 ? 0 : now_us();
        auto out = env_.commit();
        if (writes != 0) commit_latency_.observe(now_us() - started_us);
        commit_writes_ += writes;
        if (!out) return commit_failed(out.status());
        deliver_all(std::move(out.value()));
        return true;
    }

    // Messages bound for one member (its DEALER) or for a member's connection
    // (replies through the ROUTER to a connection that sent a batch frame) go
    // as batch frames, in the order they were sent; the rest one by one.
    void deliver_all(std::vector<Outgoing> out) {
        // The groups are members: nothing a delivery calls delivers more.
        assert(std::all_of(to_peer_.begin(), to_peer_.end(),
                           [](const auto& g) { return g.second.empty(); }));
        const uint64_t now = env_.now_ms();
        const uint64_t leaving_us = now_us();
        for (auto& o : out) {
            if (!o.to_peer) request_metrics_.on_reply(o.reply_to, o.message, leaving_us);
            if (!o.to_peer && resp_ && resp::Gateway::owns_route(o.reply_to.route)) {
                resp_replies_.push_back(std::move(o));
            } else if (o.to_peer && o.endpoint.empty()) {
                to_peer_[o.peer_id].push_back(&o);
            } else if (!o.to_peer && batch_routes_.contains(o.reply_to.route)) {
                to_route_[o.reply_to.route].push_back(&o);
            } else if (!deliver(o)) {
                hold_or_fail(o, now);
            }
        }
        for (auto& [peer, group] : to_peer_) {
            if (!group.empty()) deliver_batched(group, now, proto::kBatchFrameBytesMax);
        }
        for (auto& [route, group] : to_route_) {
            if (!group.empty()) deliver_batched(group, now, batch_routes_.at(route));
        }
        keep_used_groups(to_peer_);
        keep_used_groups(to_route_);
        env_.recycle(std::move(out));
    }

    // A destination's group stays, emptied, for the next turns (its entry and
    // buffer are not made anew every turn: at 50 requests in flight a turn
    // often has nothing for one member or connection, then something again);
    // once there are more than kKeptGroupsMax, the ones this turn did not use
    // are dropped, so connections that come and go do not pile up.
    static void keep_used_groups(std::map<std::string, std::vector<Outgoing*>>& groups) {
        const bool prune = groups.size() > kKeptGroupsMax;
        for (auto it = groups.begin(); it != groups.end();) {
            if (prune && it->second.empty()) {
                it = groups.erase(it);
            } else {
                it->second.clear();
                ++it;
            }
        }
    }

    // One destination's messages, as few frames of at most `frame_bytes_max`
    // as that allows; a message alone in its frame goes as its own frame. Each
    // is encoded once.
    void deliver_batched(const std::vector<Outgoing*>& group, uint64_t now,
                         size_t frame_bytes_max) {
        if (group.size() == 1) {
            if (!deliver(*group.front())) hold_or_fail(*group.front(), now);
            return;
        }
        std::vector<std::string> payloads;
        payloads.reserve(group.size());
        for (const Outgoing* o : group) payloads.push_back(node::encode(o->message));
        size_t first = 0;
        while (first < group.size()) {
            proto::BatchFrame frame(frame_bytes_max);
            size_t end = first;
            while (end < group.size() && frame.fits(payloads[end].size()))
                frame.add(payloads[end++]);
            const bool alone = end - first == 1;
            if (!send_payload(*group[first], alone ? payloads[first] : frame.bytes())) {
                for (size_t i = first; i < end; ++i) hold_or_fail(*group[i], now);
            }
            first = end;
        }
    }

    // A peer message that found no connection waits for one (retry_unsent);
    // anything else not sent is lost, as a reply to a gone client is.
    void hold_or_fail(Outgoing& o, uint64_t now) {
        // Gossip (addressed by endpoint) is not retried: the next round repeats it.
        if (!o.to_peer || !o.endpoint.empty()) return;
        if (unsent_.size() < kUnsentMax) {
            unsent_.push_back(Unsent{std::move(o), now});
        } else {
            env_.begin_handler();
            node_.on_send_failed(o.peer_id, node::request_id(o.message));
        }
    }

    // Fail-stop (LevelDB's bg_error_): after a failed commit the node's memory
    // (minted dots, duplicate suppression, fences, gossip state) is ahead of
    // its store, and serving on could acknowledge what a restart forgets. A
    // restart rebuilds memory from the store, which holds every acknowledged write.
    int fail_stop() {
        env_.write_log(LogLevel::error,
                       "stopping: a store commit failed, so this node's memory is ahead of its "
                       "store; restart it once the store is writable (it recovers from the store)");
        router_.set(zmq::sockopt::linger, 0);
        return kExitFailed;
    }

    // Retries peer messages that found no connection. A connection may just be
    // (re)connecting: only after kPeerConnectGraceMs is the call failed, so a peer
    // that is really gone costs its callers that long instead of their deadline.
    void retry_unsent() {
        if (unsent_.empty()) return;
        const uint64_t now = env_.now_ms();
        std::deque<Unsent> still;
        bool failed_any = false;
        for (auto& u : unsent_) {
            if (deliver(u.out)) continue;
            if (now - u.first_try_ms < kPeerConnectGraceMs) {
                still.push_back(std::move(u));
            } else {
                env_.begin_handler();
                node_.on_send_failed(u.out.peer_id, node::request_id(u.out.message));
                failed_any = true;
            }
        }
        unsent_.swap(still);
        if (failed_any) flush();
    }

    // False when the message could not be handed to ZeroMQ (a peer with no
    // live connection: ZMQ_IMMEDIATE makes the send fail instead of queueing).
    bool deliver(Outgoing& o) { return send_payload(o, node::encode(o.message)); }

    // Sends a frame (one message's, or a batch) to where `o` is bound.
    bool send_payload(const Outgoing& o, const std::string& payload) {
        try {
            if (o.to_peer && !o.endpoint.empty()) {
                zmq::socket_t* dealer = gossip_dealer(o.endpoint);
                if (dealer == nullptr) return false;
                waiter_->unsettle(dealer->handle());
                return dealer->send(zmq::buffer(payload), zmq::send_flags::dontwait).has_value();
            }
            if (o.to_peer) {
                // Its link while it is up (and takes the frame), else its DEALER.
                if (peer_links_->is_up(o.peer_id) && peer_links_->send(o.peer_id, payload).ok()) {
                    ++peer_frames_over_links_;
                    return true;
                }
                auto it = dealers_.find(o.peer_id);
                if (it == dealers_.end()) return false;
                waiter_->unsettle(it->second.handle());
                const bool sent =
                    it->second.send(zmq::buffer(payload), zmq::send_flags::dontwait).has_value();
                peer_frames_over_zmq_ += sent ? 1 : 0;
                return sent;
            }
            return send_reply(o.reply_to, payload);
        } catch (const zmq::error_t& e) {
            env_.write_log(LogLevel::warn, std::string("send: ") + e.what());
            return false;
        }
    }

    // A reply through the ROUTER. With ZMQ_ROUTER_MANDATORY a connection whose
    // queue holds --reply-queue-max replies fails the send (EAGAIN) instead of
    // growing: the reply is dropped and the connection marked a slow reader.
    // libzmq 4.3 cannot close one accepted connection, so its requests are
    // dropped for --slow-reader-ms instead (docs/PROTOCOL.md, "Limits"). A
    // connection gone (EHOSTUNREACH) just loses the reply, as before.
    bool send_reply(const ReplyTo& to, const std::string& payload) {
        if (std::optional<uint64_t> conn = link_conn_of(to.route)) {
            // A link whose queue passed its bound is closed (link_closed counts
            // it); one gone just loses the reply, as a gone ROUTER peer does.
            return link_server_ && link_server_->send(*conn, payload).ok();
        }
        waiter_->unsettle(router_.handle());
        try {
            if (!router_.send(zmq::buffer(to.route),
                              zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
                ++transport_stats_.replies_dropped;
                // A member is never shed: its calls have deadlines of their own,
                // and shedding a busy peer would fail writes cluster-wide.
                if (!peer_routes_.contains(to.route)) slow_readers_.mark(to.route, env_.now_ms());
                return false;
            }
        } catch (const zmq::error_t& e) {
            if (e.num() == EHOSTUNREACH) return false;
            throw;
        }
        // The routing id went in, so the pipe has room for the message's end.
        return router_.send(zmq::buffer(payload), zmq::send_flags::dontwait).has_value();
    }

    // The backstop for what no limit of ours can see: libzmq queues the parts
    // of an unfinished message in its pipe, unbounded, until the last part
    // arrives. Past --memory-max-mb of anonymous memory, the ROUTER endpoint is
    // unbound, which closes every connection accepted through it and frees
    // their queues, and bound again; peers and clients reconnect by themselves.
    void watch_memory(uint64_t now_ms) {
        if (rebind_pending_) return rebind(now_ms);
        if (config_.memory_max_mb == 0 || now_ms < next_memory_check_ms_) return;
        next_memory_check_ms_ = now_ms + kMemoryCheckIntervalMs;
        std::optional<uint64_t> kib = rss_anon_kib();
        if (!kib || *kib <= (config_.memory_max_mb << 10)) return;
        // Pages freed but kept by the allocator count too (a burst that is
        // over, or the queues of the last reset, freed by ZeroMQ's I/O thread).
        release_free_memory();
        kib = rss_anon_kib();
        if (!kib || *kib <= (config_.memory_max_mb << 10)) return;
        ++transport_stats_.connection_resets;
        env_.write_log(LogLevel::warn,
                       "memory: anonymous memory " + std::to_string(*kib >> 10) +
                           " MiB is past --memory-max-mb " + std::to_string(config_.memory_max_mb) +
                           ": resetting every connection (reset " +
                           std::to_string(transport_stats_.connection_resets) + ")");
        // Links hold their queues in this process too: closed alike (each
        // is bounded, but there may be thousands).
        if (link_server_) {
            std::vector<uint64_t> links;
            for (const auto& [conn, who] : link_principals_) links.push_back(conn);
            for (uint64_t conn : links) link_server_->close(conn);
        }
        waiter_->unsettle(router_.handle());
        try {
            router_.unbind(router_.get(zmq::sockopt::last_endpoint));
        } catch (const zmq::error_t& e) {
            env_.write_log(LogLevel::error, std::string("memory: unbind: ") + e.what());
        }
        rebind_pending_ = true;
        next_memory_check_ms_ = now_ms + kMemoryResetGapMs;
        rebind(now_ms);
    }

    // The unbound listener is closed by ZeroMQ's I/O thread: until then the
    // port is busy, so the bind is retried each turn of the loop.
    void rebind(uint64_t now_ms) {
        waiter_->unsettle(router_.handle());
        try {
            router_.bind(config_.listen);
        } catch (const zmq::error_t& e) {
            if (e.num() != EADDRINUSE) {
                env_.write_log(LogLevel::error, std::string("memory: bind again: ") + e.what());
            }
            return;
        }
        rebind_pending_ = false;
        release_free_memory();
        const std::optional<uint64_t> kib = rss_anon_kib();
        env_.write_log(LogLevel::warn,
                       "memory: listening again on " + config_.listen +
                           (kib ? ", anonymous memory " + std::to_string(*kib >> 10) + " MiB"
                                : std::string()));
        next_memory_check_ms_ = std::max(next_memory_check_ms_, now_ms + kMemoryCheckIntervalMs);
    }

    // The limits' counters, logged when they changed, at most every 10 s.
    void log_limits(uint64_t now_ms) {
        const NodeStats& node = node_.stats();
        if (now_ms < next_limits_log_ms_ ||
            (transport_stats_ == logged_stats_ && node.overloaded == logged_overloaded_ &&
             node.background_dropped == logged_background_dropped_)) {
            return;
        }
        next_limits_log_ms_ = now_ms + kLimitsLogIntervalMs;
        logged_stats_ = transport_stats_;
        logged_overloaded_ = node.overloaded;
        logged_background_dropped_ = node.background_dropped;
        env_.write_log(LogLevel::warn,
                       "limits: requests refused overloaded " + std::to_string(node.overloaded) +
                           ", background work dropped " + std::to_string(node.background_dropped) +
                           ", " + describe(transport_stats_));
    }

    // ---- the Redis protocol gateway (node/resp/gateway.h) -------------------

    void open_resp() {
        resp::GatewayConfig gateway;
        gateway.credentials = config_.cluster_key.has_value();
        gateway.default_user = config_.resp_default_user;
        gateway.consistency = config_.resp_consistency;
        gateway.requests_in_flight_max = config_.node.connection_requests_max;
        gateway.limits.command_bytes_max = proto::kFrameBytesMax;
        resp_host_ = std::make_unique<GatewayHostImpl>(*this);
        resp_ = std::make_unique<resp::Gateway>(gateway, *resp_host_);
        resp_socket_.emplace(ctx_, config_.resp_listen, kHighWaterMark);
        resp_item_ = items_.size();
        items_.push_back(zmq::pollitem_t{resp_socket_->handle(), 0, ZMQ_POLLIN, 0});
    }

    // Reads what the Redis connections sent, up to batch_messages_max messages.
    uint32_t recv_resp() {
        const StreamSocket::Handler handler{
            [this](uint64_t conn) { resp_->open(conn); },
            [this](uint64_t conn, std::string_view bytes) { resp_->receive(conn, bytes); },
            [this](uint64_t conn) { resp_->close(conn); }};
        std::string error;
        const uint32_t handled = resp_socket_->receive(config_.batch_messages_max, handler, error);
        if (!error.empty()) env_.write_log(LogLevel::warn, "redis receive: " + error);
        return handled;
    }

    // Hands the node's replies to the gateway (which may send the next
    // pipelined commands to the node) and sends what it has to say; the node
    // work it started is flushed at once rather than after the next poll.
    void serve_resp() {
        if (!resp_) return;
        for (int round = 0; round < 2; ++round) {
            std::vector<Outgoing> replies;
            replies.swap(resp_replies_);
            for (auto& o : replies) resp_->on_reply(o.reply_to, std::move(o.message));
            send_resp_output();
            if (!resp_submitted_) break;
            resp_submitted_ = false;
            flush();
        }
    }

    void send_resp_output() {
        resp_output_.clear();
        resp_->take_output(resp_output_);
        if (!resp_output_.empty()) waiter_->unsettle(resp_socket_->handle());
        for (auto& o : resp_output_) {
            std::string error;
            const bool sent = resp_socket_->send(o.conn, o.bytes, error);
            if (!error.empty()) env_.write_log(LogLevel::warn, "redis send: " + error);
            // A client that does not read its replies is closed, as Redis closes
            // one past its output buffer limit.
            if (!sent && !o.close_after) {
                ++transport_stats_.replies_dropped;
                resp_->close(o.conn);
                o.close_after = true;
            }
            if (o.close_after) resp_socket_->close(o.conn);
        }
    }

    // ---- the metrics page (node/metrics/http_server.h) ------------------------

    void open_metrics() {
        metrics_http_.emplace([this] { return render_metrics(); });
        metrics_socket_.emplace(ctx_, config_.metrics_listen, kHighWaterMark);
        metrics_item_ = items_.size();
        items_.push_back(zmq::pollitem_t{metrics_socket_->handle(), 0, ZMQ_POLLIN, 0});
    }

    void serve_metrics() {
        if (!metrics_socket_ || (items_[metrics_item_].revents & ZMQ_POLLIN) == 0) return;
        const StreamSocket::Handler handler{
            [this](uint64_t conn) { metrics_http_->open(conn); },
            [this](uint64_t conn, std::string_view bytes) { metrics_http_->receive(conn, bytes); },
            [this](uint64_t conn) { metrics_http_->close(conn); }};
        std::string error;
        const uint32_t received =
            metrics_socket_->receive(config_.batch_messages_max, handler, error);
        if (!error.empty()) env_.write_log(LogLevel::warn, "metrics receive: " + error);
        std::vector<metrics::HttpServer::Output> output;
        metrics_http_->take_output(output);
        if (received == config_.batch_messages_max || !output.empty()) {
            waiter_->unsettle(metrics_socket_->handle());
        }
        for (auto& o : output) {
            const bool sent = metrics_socket_->send(o.conn, o.bytes, error);
            if (!sent) metrics_http_->close(o.conn);
            if (!sent || o.close_after) metrics_socket_->close(o.conn);
        }
    }

    static uint64_t now_us() {
        return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                         std::chrono::steady_clock::now().time_since_epoch())
                                         .count());
    }

    // The whole page: what the runtime sees, then the node's own figures.
    std::string render_metrics() {
        using kv::metrics::Type;
        kv::metrics::Exposition out;
        out.family("kv_build_info", Type::gauge, "The kvnode build serving: its version.");
        out.sample("kv_build_info", {{"version", kv_version()}}, uint64_t{1});
        request_metrics_.write(out);
        out.family("kv_commit_duration_seconds", Type::histogram,
                   "Store commits (one transaction, synced, per batch of the loop's steps), from "
                   "start to durable.");
        commit_latency_.write(out, "kv_commit_duration_seconds", {});
        out.counter("kv_commit_writes_total", "Store writes made durable by those commits.",
                    commit_writes_);
        out.family("kv_connections", Type::gauge,
                   "Open connections, by protocol (native: clients and members on --listen).");
        out.sample("kv_connections", {{"protocol", "native"}},
                   native_accepted_ - std::min(native_accepted_, native_disconnected_));
        if (resp_socket_) {
            out.sample("kv_connections", {{"protocol", "redis"}},
                       static_cast<uint64_t>(resp_socket_->connections()));
        }
        if (link_server_) {
            out.sample("kv_connections", {{"protocol", "link"}}, link_server_->stats().open);
        }
        out.sample("kv_connections", {{"protocol", "http"}},
                   static_cast<uint64_t>(metrics_socket_ ? metrics_socket_->connections() : 0));
        out.family("kv_connections_opened_total", Type::counter,
                   "Connections accepted since start, by protocol.");
        out.sample("kv_connections_opened_total", {{"protocol", "native"}}, native_accepted_);
        if (resp_socket_) {
            out.sample("kv_connections_opened_total", {{"protocol", "redis"}},
                       resp_socket_->opened());
        }
        if (link_server_) {
            out.sample("kv_connections_opened_total", {{"protocol", "link"}},
                       link_server_->stats().accepted);
            out.family("kv_link_closed_total", Type::counter,
                       "Links (--link-listen) closed since start, by why.");
            for (const auto& [why, count] : link_server_->stats().closed) {
                out.sample("kv_link_closed_total",
                           {{"reason", std::string(client::link_close_name(why))}}, count);
            }
        }
        out.family("kv_peer_frames_sent_total", Type::counter,
                   "Frames of messages to members, by transport: link (the member advertises a "
                   "--link-listen and its link is up) or zmq (its DEALER).");
        out.sample("kv_peer_frames_sent_total", {{"transport", "link"}}, peer_frames_over_links_);
        out.sample("kv_peer_frames_sent_total", {{"transport", "zmq"}}, peer_frames_over_zmq_);
        out.counter("kv_handshakes_refused_total",
                    "Connections refused at the CURVE handshake (unknown key, no CURVE).",
                    handshakes_refused_);
        out.family("kv_transport_dropped_total", Type::counter,
                   "Messages the transport dropped: replies to a connection whose queue was full "
                   "(reply_queue_full), requests from a connection marked slow (slow_reader), "
                   "requests of more than one frame (too_many_frames).");
        out.sample("kv_transport_dropped_total", {{"reason", "reply_queue_full"}},
                   transport_stats_.replies_dropped);
        out.sample("kv_transport_dropped_total", {{"reason", "slow_reader"}},
                   transport_stats_.requests_shed);
        out.sample("kv_transport_dropped_total", {{"reason", "too_many_frames"}},
                   transport_stats_.messages_too_long);
        out.counter("kv_memory_resets_total",
                    "Times the memory watchdog reset every connection (--memory-max-mb).",
                    transport_stats_.connection_resets);
        if (resp_) {
            const resp::GatewayStats& g = resp_->stats();
            out.counter("kv_redis_commands_total", "Redis protocol commands received.", g.commands);
            out.counter("kv_redis_errors_total",
                        "Redis protocol error replies, protocol errors included.", g.errors);
            out.counter("kv_redis_protocol_errors_total",
                        "Redis connections closed for malformed input.", g.protocol_errors);
        }
        write_process_metrics(out);
        node_.write_metrics(out);
        return out.take();
    }

    void write_process_metrics(kv::metrics::Exposition& out) {
        rusage usage{};
        if (getrusage(RUSAGE_SELF, &usage) == 0) {
            const double cpu =
                static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
            out.family("process_cpu_seconds_total", kv::metrics::Type::counter,
                       "User and system CPU time of the kvnode process.");
            out.sample("process_cpu_seconds_total", {}, cpu);
        }
        if (std::optional<uint64_t> kib = rss_anon_kib()) {
            out.gauge("kv_memory_anon_bytes",
                      "Anonymous resident memory (RssAnon), what --memory-max-mb bounds.",
                      static_cast<double>(*kib) * 1024);
        }
        out.gauge("process_start_time_seconds", "Start time of the process, Unix seconds.",
                  static_cast<double>(started_unix_s_));
        // What the data directory takes on disk (allocated blocks: LMDB's
        // file is sparse), walked at each scrape: a handful of files.
        uint64_t bytes = 0;
        std::error_code ec;
        for (auto it = std::filesystem::recursive_directory_iterator(config_.data_dir, ec);
             !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
            struct stat st {};
            if (it->is_regular_file(ec) && ::stat(it->path().c_str(), &st) == 0) {
                bytes += static_cast<uint64_t>(st.st_blocks) * 512;
            }
        }
        out.gauge("kv_store_disk_bytes", "Disk space the data directory takes.",
                  static_cast<double>(bytes));
    }

    const RuntimeConfig& config_;
    Store& store_;  // read by the upgrade before start; then only through env_
    std::unique_ptr<CommitThread> writer_;  // null with --commit-thread false
    ProcessEnv env_;
    gossip::StaticMembership membership_;
    Node node_;
    zmq::context_t ctx_{1};
    zmq::socket_t router_;
    std::map<std::string, zmq::socket_t> dealers_;         // by member id
    std::map<std::string, std::string> peer_endpoints_;    // member id -> endpoint dialled
    std::vector<std::string> peer_ids_;                    // dealers_ in poll order
    std::map<std::string, zmq::socket_t> gossip_dealers_;  // by endpoint
    std::vector<std::string> gossip_endpoints_;  // gossip_dealers_, least recently used first
    // gossip_dealers_ in poll order (items_ after the DEALERs), as of rebuild_poll_items.
    std::vector<std::string> gossip_polled_;
    uint64_t synced_version_ = 0;
    std::vector<zmq::pollitem_t> items_;
    std::optional<client::ReadyWaiter> waiter_;  // waits on items_ (made in open_sockets)
    std::vector<char> ready_;      // handle_batch: ROUTER, DEALERs, gossip DEALERs still to read
    size_t fixed_poll_items_ = 1;  // items_ before the DEALERs: ROUTER, ZAP, monitor, ...
    std::optional<zmq::socket_t> zap_;  // with a cluster key only
    size_t zap_item_ = 0;               // its poll item
    std::optional<zmq::socket_t> router_monitor_;
    size_t monitor_item_ = 0;  // its poll item
    uint64_t handshakes_refused_ = 0;
    uint64_t refusals_unlogged_ = 0;
    uint64_t last_refusal_log_ms_ = 0;
    std::string last_refusal_;
    SlowReaders slow_readers_;
    std::unordered_set<std::string> peer_routes_;           // see note_peer_route
    std::unordered_map<std::string, size_t> batch_routes_;  // see note_batch_route
    std::vector<std::string_view> batch_parts_;             // split_batch_frame's, reused
    TransportStats transport_stats_;
    TransportStats logged_stats_;
    uint64_t logged_overloaded_ = 0;
    uint64_t logged_background_dropped_ = 0;
    uint64_t next_limits_log_ms_ = 0;
    uint64_t next_memory_check_ms_ = 0;
    bool rebind_pending_ = false;  // the watchdog unbound the ROUTER; bind it again

    struct Unsent {
        Outgoing out;
        uint64_t first_try_ms = 0;
    };
    std::deque<Unsent> unsent_;
    // When the batches the writer is committing started, oldest first (0: a
    // batch of messages alone, not timed). Their messages wait in env_.
    std::deque<uint64_t> in_flight_started_us_;
    // Set by flush() or collect_commit(); the run loop then stops the node.
    bool commit_failed_ = false;
    std::optional<uint64_t> wait_failing_since_ms_;     // see poll_once
    std::optional<uint64_t> last_wait_failure_log_ms_;  // see poll_once

    // The Redis gateway (with --resp-listen only).
    std::unique_ptr<GatewayHostImpl> resp_host_;
    std::unique_ptr<resp::Gateway> resp_;
    std::optional<StreamSocket> resp_socket_;
    size_t resp_item_ = 0;                // its poll item
    std::vector<Outgoing> resp_replies_;  // the node's replies, for the gateway
    // deliver_all's batches by member and by batch route, kept between turns
    // (keep_used_groups).
    static constexpr size_t kKeptGroupsMax = 128;
    std::map<std::string, std::vector<Outgoing*>> to_peer_, to_route_;
    std::vector<resp::Gateway::Output> resp_output_;
    bool resp_submitted_ = false;  // the gateway gave the node work

    // Metrics (with --metrics-listen the page is served; kvctl stats always).
    std::optional<metrics::HttpServer> metrics_http_;
    std::optional<StreamSocket> metrics_socket_;
    size_t metrics_item_ = 0;
    metrics::RequestMetrics request_metrics_;

    // Links (with --link-listen only).
    std::unique_ptr<client::LinkServer> link_server_;
    size_t link_item_ = 0;                                     // its poll item
    std::unordered_map<uint64_t, Principal> link_principals_;  // by connection, once established
    std::string link_refused_key_;                             // the last key the handshake refused
    // Links to members (always made; used for members that advertise one).
    std::unique_ptr<client::LinkDialer> peer_links_;
    size_t peer_links_item_ = 0;
    std::map<std::string, std::string> peer_link_endpoints_;  // member id -> link endpoint dialled
    std::set<std::string> peer_links_refused_;  // refusals logged, until the link is up
    uint64_t peer_frames_over_links_ = 0;       // frames to members, by transport
    uint64_t peer_frames_over_zmq_ = 0;
    metrics::LatencyHistogram commit_latency_;
    uint64_t commit_writes_ = 0;
    uint64_t native_accepted_ = 0;  // from the ROUTER's monitor
    uint64_t native_disconnected_ = 0;
    uint64_t started_unix_s_ = static_cast<uint64_t>(std::time(nullptr));
};

}  // namespace

namespace {
// SCHED_BATCH for this thread and every thread it starts after (the store's
// checkpointer, the commit thread, ZeroMQ's): each stays in the fair class at
// its nice value, but a wake-up (a message for the loop, a finished sync for
// the commit thread) no longer preempts the thread running on that core. The
// node's threads hand work to each other thousands of times a second, and on
// a busy machine each such preemption was a switch away and back again:
// 8-21% more puts and gets a second at 50 x 1 on 2 cores (docs/BENCHMARKS.md,
// issue 14, thirty-seventh step). Needs no privilege; refused, it is logged.
void use_batch_scheduling(const RuntimeConfig& config) {
    if (!config.sched_batch) return;
    sched_param param{};
    param.sched_priority = 0;
    if (::sched_setscheduler(0, SCHED_BATCH, &param) != 0) {
        std::fprintf(stderr,
                     "kvnode: %s: SCHED_BATCH refused (%s); running under the default policy\n",
                     config.data_dir.c_str(), std::strerror(errno));
    }
}
}  // namespace

int run_node(const RuntimeConfig& config) {
    install_signal_handlers();
    use_batch_scheduling(config);
    LmdbOptions options;
    options.dir = config.data_dir;
    options.sync = config.sync;
    options.write_ahead_log = config.write_ahead_log;
    options.wal_checkpoint_bytes = config.wal_checkpoint_mb << 20;
    options.wal_discard_damaged = config.wal_discard_damaged;
    options.log = [&config](const std::string& line) {
        std::fprintf(stderr, "kvnode: %s: %s\n", config.data_dir.c_str(), line.c_str());
    };
    options.map_size_bytes = config.map_size_mb << 20;
    bool refused_damaged_log = false;
    options.refused_damaged_log = &refused_damaged_log;
    auto store = open_lmdb_store(options);
    if (!store) {
        std::fprintf(stderr, "kvnode: cannot open store in %s: %s\n", config.data_dir.c_str(),
                     store.status().to_string().c_str());
        return refused_damaged_log ? kExitDataNeedsOperator : kExitFailed;
    }
    Runtime runtime(config, *store.value());
    return runtime.run();
}

}  // namespace kv::node
