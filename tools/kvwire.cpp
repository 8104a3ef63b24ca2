// kvwire: what one message hop costs in CPU, over ZeroMQ as kvnode talks today
// and over plain TCP driven by epoll from the thread that handles the
// messages (issue 14, docs/BENCHMARKS.md). A forked server echoes every frame
// back; the client keeps --inflight frames in flight on one connection for
// --seconds, and both sides' user + system time is divided by the round trips.
// No encoding and no node logic: only the transport, so the two modes differ
// by what a transport owned by the node's event loop would save.
//  - zmq: DEALER to ROUTER over TCP loopback, one I/O thread per context, the
//    server draining its socket after each poll as kvnode's loop does.
//  - tcp: SecureLink (client/secure_link.h) over a FrameLink (4-byte
//    little-endian length, then the frame); each side reads what the kernel
//    holds after epoll says so and writes every reply of that read with one
//    send(2). With --seal, the handshake first, then every frame sealed.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "client/link_server.h"
#include "client/link_socket.h"
#include "client/secure_link.h"
#include "tools/forked_server.h"

namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;
using kv::client::SecureLink;

namespace {

constexpr size_t kFrameBytesMax = size_t{1} << 24;  // --frame-bytes' limit

struct Options {
    std::string mode = "tcp";
    uint32_t inflight = 1;
    uint32_t frame_bytes = 200;
    double seconds = 2.0;
    uint64_t requests = 0;        // 0: run for `seconds`
    bool curve = false;           // zmq: CurveZMQ on the connection, as with --cluster-key
    bool seal = false;            // tcp: a handshake, then every frame sealed (frame_handshake.h)
    bool refused = false;         // tcp --seal: the server admits no client key
    std::string cipher = "auto";  // tcp --seal: what the client offers
    bool link_server = false;     // tcp: the server runs a LinkServer (link_server.h)
    uint32_t idle_sockets = 0;    // the server also waits on this many sockets that stay silent
};

// One CurveZMQ key pair per run, made before the fork so both sides know the
// server's public key.
struct CurveKeys {
    char server_public[41] = {};
    char server_secret[41] = {};
    char client_public[41] = {};
    char client_secret[41] = {};
};

// The long-term keys of a sealed run, made before the fork: the server
// admits the client's key unless `refused`.
struct SealKeys {
    kv::client::CurveKeys server, client;
    bool refused = false;
};

struct Totals {
    uint64_t handshake_us = 0;  // tcp --seal: connect to established, at the client
    std::string cipher;         // tcp --seal: the cipher agreed
    uint64_t round_trips = 0;
    double wall_s = 0;
    double client_cpu_s = 0;
    double server_cpu_s = 0;
    std::vector<uint32_t> latency_us;  // sampled: one per round trip when inflight is 1
};

double cpu_seconds(const rusage& u) {
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double self_cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return cpu_seconds(u);
}

bool done(const Options& o, const Clock::time_point& start, uint64_t sent) {
    if (o.requests != 0) return sent >= o.requests;
    return Clock::now() - start >= std::chrono::duration<double>(o.seconds);
}

// ---- ZeroMQ ------------------------------------------------------------------------

int serve_zmq(int ready_fd, const CurveKeys* curve, uint32_t idle_sockets) {
    zmq::context_t ctx(1);
    zmq::socket_t router(ctx, zmq::socket_type::router);
    router.set(zmq::sockopt::linger, 0);
    if (curve != nullptr) {
        router.set(zmq::sockopt::curve_server, true);
        router.set(zmq::sockopt::curve_secretkey, std::string(curve->server_secret, 40));
    }
    router.bind("tcp://127.0.0.1:*");
    if (!kv::tools::announce_endpoint(ready_fd, router.get(zmq::sockopt::last_endpoint))) return 1;
    // kvnode's loop polls about ten: its ROUTER, a DEALER per peer and per
    // gossip endpoint, the commit thread's fd, monitor, gateway, metrics. Each
    // costs zmq_poll system calls whether it has news or not.
    std::vector<zmq::socket_t> idle;
    std::vector<zmq::pollitem_t> items{{router.handle(), 0, ZMQ_POLLIN, 0}};
    for (uint32_t i = 0; i < idle_sockets; ++i) {
        idle.emplace_back(ctx, zmq::socket_type::dealer);
        idle.back().set(zmq::sockopt::linger, 0);
        idle.back().bind("inproc://idle-" + std::to_string(i));
        items.push_back(zmq::pollitem_t{idle.back().handle(), 0, ZMQ_POLLIN, 0});
    }
    for (;;) {
        zmq::poll(items, std::chrono::milliseconds(-1));
        for (;;) {
            zmq::message_t route, frame;
            if (!router.recv(route, zmq::recv_flags::dontwait)) break;
            if (!router.recv(frame)) return 1;
            if (frame.size() == 0) return 0;  // the client is done
            router.send(route, zmq::send_flags::sndmore);
            router.send(frame, zmq::send_flags::none);
        }
    }
}

bool run_zmq(const Options& o, const std::string& endpoint, const CurveKeys* curve, Totals& t) {
    zmq::context_t ctx(1);
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 1000);
    if (curve != nullptr) {
        dealer.set(zmq::sockopt::curve_serverkey, std::string(curve->server_public, 40));
        dealer.set(zmq::sockopt::curve_publickey, std::string(curve->client_public, 40));
        dealer.set(zmq::sockopt::curve_secretkey, std::string(curve->client_secret, 40));
    }
    dealer.set(zmq::sockopt::rcvtimeo, 10'000);
    dealer.connect(endpoint);
    const std::string payload(o.frame_bytes, 'p');
    const auto start = Clock::now();
    const double cpu_before = self_cpu_seconds();
    uint64_t sent = 0, received = 0;
    Clock::time_point sent_at = start;  // of the one in flight, with --inflight 1
    for (uint32_t i = 0; i < o.inflight; ++i, ++sent) {
        dealer.send(zmq::buffer(payload), zmq::send_flags::none);
    }
    while (received < sent) {
        zmq::message_t reply;
        if (!dealer.recv(reply)) {
            std::fprintf(stderr, "kvwire: no reply within 10 s\n");
            return false;
        }
        if (reply.size() != o.frame_bytes) {
            std::fprintf(stderr, "kvwire: a reply of %zu bytes, expected %u\n", reply.size(),
                         o.frame_bytes);
            return false;
        }
        ++received;
        if (o.inflight == 1) {
            t.latency_us.push_back(static_cast<uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent_at)
                    .count()));
        }
        if (!done(o, start, sent)) {
            sent_at = Clock::now();
            dealer.send(zmq::buffer(payload), zmq::send_flags::none);
            ++sent;
        }
    }
    t.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
    t.client_cpu_s = self_cpu_seconds() - cpu_before;
    t.round_trips = received;
    dealer.send(zmq::message_t(), zmq::send_flags::none);  // stop the server
    return true;
}

// ---- plain TCP with epoll, through SecureLink (client/secure_link.h) ---------

// Writes what `link` has queued, waiting for the socket to drain when its
// buffer is full (a benchmark's side may block; a loop would wait on EPOLLOUT).
bool flush_all(SecureLink& link) {
    for (int waits = 0; waits < 1000; ++waits) {
        if (!link.flush().ok()) return false;
        if (!link.wants_write()) return true;
        pollfd p{link.fd(), POLLOUT, 0};
        ::poll(&p, 1, 10'000);
    }
    return false;
}

// Adds `count` sockets to `ep` that stay silent (socket pairs nobody writes,
// left open until the process ends): they cost epoll nothing until they have
// news, which is the point of measuring with them.
bool add_idle_sockets(int ep, uint32_t count) {
    for (uint32_t i = 0; i < count; ++i) {
        int pair[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) return false;
        epoll_event quiet{};
        quiet.events = EPOLLIN;
        quiet.data.fd = pair[0];
        ::epoll_ctl(ep, EPOLL_CTL_ADD, pair[0], &quiet);
    }
    return true;
}

// With `keys`, the first frames are the client's side of the handshake; then
// frames are opened on arrival and their echoes sealed.
int serve_tcp(int ready_fd, uint32_t idle_sockets, const SealKeys* keys) {
    auto listener = kv::client::LinkListener::listen({"127.0.0.1", 0});
    if (!listener) {
        std::fprintf(stderr, "kvwire: %s\n", listener.status().to_string().c_str());
        return 1;
    }
    if (!kv::tools::announce_endpoint(
            ready_fd, "tcp://127.0.0.1:" + std::to_string(listener.value()->port()))) {
        return 1;
    }
    int fd = -1;
    for (int waits = 0; fd < 0 && waits < 100; ++waits) {
        pollfd p{listener.value()->fd(), POLLIN, 0};
        ::poll(&p, 1, 100);
        auto accepted = listener.value()->accept_one();
        if (!accepted) return 1;
        fd = accepted.value();
    }
    if (fd < 0) return 1;  // no client within 10 s
    std::unique_ptr<SecureLink> link;
    if (keys == nullptr) {
        link = SecureLink::plain(fd, kFrameBytesMax);
    } else {
        const kv::client::CurveKey admitted = keys->client.public_key;
        const bool refused = keys->refused;
        link = SecureLink::server(
            fd, kFrameBytesMax, keys->server,
            [admitted, refused](const kv::client::CurveKey& key) {
                return !refused && key == admitted;
            },
            "");
    }
    const int ep = ::epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    if (!add_idle_sockets(ep, idle_sockets)) return 1;
    for (;;) {
        epoll_event got[4];
        if (::epoll_wait(ep, got, 4, -1) < 0 && errno != EINTR) return 1;
        bool stop = false;
        bool sent = true;
        const kv::Status read = link->receive([&](std::string_view frame) {
            if (stop) return;
            if (frame.empty()) stop = true;
            sent = sent && link->send(frame).ok();
        });
        if (stop) return flush_all(*link) ? 0 : 1;
        if (!read.ok()) {
            // A failed handshake: the ERROR saying why goes to the client,
            // which reports it. Otherwise the client is done.
            (void)link->flush();
            return 0;
        }
        if (!sent || !flush_all(*link)) return 1;
    }
}

// serve_tcp through a LinkServer (client/link_server.h), as a node's loop
// would: the loop waits on the server's one descriptor (and the idle
// sockets), then polls and flushes it. One client per run: its link closing
// ends the server.
int serve_link_server(int ready_fd, uint32_t idle_sockets, const SealKeys* keys) {
    kv::client::LinkServerOptions options;
    options.frame_bytes_max = kFrameBytesMax;
    if (keys != nullptr) {
        options.keys = keys->server;
        const kv::client::CurveKey admitted = keys->client.public_key;
        const bool refused = keys->refused;
        options.admit = [admitted, refused](const kv::client::CurveKey& key) {
            return !refused && key == admitted;
        };
    }
    bool stop = false, failed = false;
    kv::client::LinkServer* server = nullptr;
    kv::client::LinkServer::Callbacks callbacks;
    callbacks.on_frame = [&](uint64_t conn, std::string_view frame) {
        if (frame.empty())
            stop = true;
        else if (!server->send(conn, frame).ok())
            failed = true;
    };
    callbacks.on_closed = [&](uint64_t, kv::client::LinkClose, const kv::Status&) { stop = true; };
    auto made =
        kv::client::LinkServer::listen({"127.0.0.1", 0}, std::move(options), std::move(callbacks));
    if (!made) {
        std::fprintf(stderr, "kvwire: %s\n", made.status().to_string().c_str());
        return 1;
    }
    server = made.value().get();
    if (!kv::tools::announce_endpoint(ready_fd,
                                      "tcp://127.0.0.1:" + std::to_string(server->port()))) {
        return 1;
    }
    const int ep = ::epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = server->fd();
    ::epoll_ctl(ep, EPOLL_CTL_ADD, server->fd(), &ev);
    if (!add_idle_sockets(ep, idle_sockets)) return 1;
    const auto start = Clock::now();
    while (!stop && !failed) {
        epoll_event got[4];
        if (::epoll_wait(ep, got, 4, 10'000) < 0 && errno != EINTR) return 1;
        const auto now_ms = static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
        server->poll(now_ms);
        server->flush();
    }
    return failed ? 1 : 0;
}

// A connected socket to `endpoint` (link_socket.h), or -1 with why on stderr.
int connect_tcp(const std::string& endpoint) {
    auto parsed = kv::client::parse_tcp_endpoint(endpoint);
    kv::Result<int> started =
        parsed ? kv::client::start_connect(parsed.value()) : kv::Result<int>(parsed.status());
    if (!started) {
        std::fprintf(stderr, "kvwire: %s\n", started.status().to_string().c_str());
        return -1;
    }
    pollfd p{started.value(), POLLOUT, 0};
    const kv::Status done = ::poll(&p, 1, 10'000) == 1
                                ? kv::client::finish_connect(started.value())
                                : kv::Status(kv::ErrorCode::connection, "no connection in 10 s");
    if (!done.ok()) {
        std::fprintf(stderr, "kvwire: %s\n", done.to_string().c_str());
        ::close(started.value());
        return -1;
    }
    return started.value();
}

// Waits until `link` is established (its handshake done), flushing what it
// queues; false (and why on stderr) when it fails.
bool establish(SecureLink& link, int ep) {
    kv::Status failed;
    while (failed.ok() && !link.established()) {
        if (!flush_all(link)) {
            std::fprintf(stderr, "kvwire: the handshake could not send\n");
            return false;
        }
        epoll_event got[1];
        const int n = ::epoll_wait(ep, got, 1, 10'000);
        if (n == 0) {
            std::fprintf(stderr, "kvwire: no handshake reply within 10 s\n");
            return false;
        }
        if (n < 0) continue;
        failed = link.receive([](std::string_view) {});
    }
    if (!failed.ok()) {
        std::fprintf(stderr, "kvwire: the handshake failed: %s\n", failed.to_string().c_str());
        return false;
    }
    return true;
}

// The SealCipher bits `name` offers ("auto": every one this machine has).
uint8_t ciphers_named(const std::string& name) {
    if (name == "xsalsa20poly1305")
        return static_cast<uint8_t>(kv::client::SealCipher::xsalsa20poly1305);
    if (name == "aes256gcm") return static_cast<uint8_t>(kv::client::SealCipher::aes256gcm);
    return kv::client::ciphers_available();
}

bool run_tcp(const Options& o, const std::string& endpoint, const SealKeys* keys, Totals& t) {
    const auto connect_at = Clock::now();
    const int fd = connect_tcp(endpoint);
    if (fd < 0) return false;
    std::unique_ptr<SecureLink> secure =
        keys == nullptr ? SecureLink::plain(fd, kFrameBytesMax)
                        : SecureLink::client(fd, kFrameBytesMax, keys->client,
                                             keys->server.public_key, "", ciphers_named(o.cipher));
    SecureLink& link = *secure;
    bool queued_ok = true;
    auto send = [&](std::string_view frame) { queued_ok = link.send(frame).ok() && queued_ok; };
    const int ep = ::epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    if (keys != nullptr) {
        if (!establish(link, ep)) {
            ::close(ep);
            return false;
        }
        t.cipher = std::string(kv::client::cipher_name(*link.cipher()));
        t.handshake_us = static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - connect_at)
                .count());
    }
    const std::string payload(o.frame_bytes, 'p');
    Clock::time_point sent_at;
    const auto start = Clock::now();
    const double cpu_before = self_cpu_seconds();
    uint64_t sent = 0, received = 0;
    bool wrong_size = false;
    for (uint32_t i = 0; i < o.inflight; ++i, ++sent) send(payload);
    sent_at = Clock::now();
    bool ok = flush_all(link);
    while (ok && received < sent) {
        epoll_event got[4];
        const int n = ::epoll_wait(ep, got, 4, 10'000);
        if (n == 0) {
            std::fprintf(stderr, "kvwire: no reply within 10 s\n");
            ok = false;
            break;
        }
        if (n < 0) continue;
        const kv::Status read = link.receive([&](std::string_view frame) {
            if (frame.size() != o.frame_bytes) wrong_size = true;
            ++received;
            if (o.inflight == 1) {
                t.latency_us.push_back(static_cast<uint32_t>(
                    std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent_at)
                        .count()));
            }
            if (!done(o, start, sent)) {
                send(payload);
                ++sent;
            }
        });
        if (!read.ok()) {
            std::fprintf(stderr, "kvwire: the connection ended: %s\n", read.to_string().c_str());
            ok = false;
            break;
        }
        if (!queued_ok) {
            std::fprintf(stderr, "kvwire: a frame could not be queued\n");
            ok = false;
            break;
        }
        if (wrong_size) {
            std::fprintf(stderr, "kvwire: a reply of the wrong size\n");
            ok = false;
            break;
        }
        if (link.queued_bytes() > 0) {
            sent_at = Clock::now();
            ok = ok && flush_all(link);
        }
    }
    t.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
    t.client_cpu_s = self_cpu_seconds() - cpu_before;
    t.round_trips = received;
    send("");  // stop the server
    flush_all(link);
    ::close(ep);
    return ok;
}

uint32_t quantile(std::vector<uint32_t> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    bool json = false;
    po::options_description opts("kvwire: the CPU cost of a message hop, ZeroMQ against plain TCP");
    opts.add_options()("help", "this text")("mode", po::value(&o.mode)->default_value(o.mode),
                                            "zmq or tcp")(
        "inflight", po::value(&o.inflight)->default_value(o.inflight),
        "frames in flight on the one connection")(
        "frame-bytes", po::value(&o.frame_bytes)->default_value(o.frame_bytes),
        "bytes per frame, each way")("seconds", po::value(&o.seconds)->default_value(o.seconds),
                                     "how long to run")(
        "requests", po::value(&o.requests)->default_value(0),
        "stop after this many round trips instead (0: run for --seconds)")(
        "curve", po::bool_switch(&o.curve), "zmq: CurveZMQ on the connection")(
        "seal", po::bool_switch(&o.seal),
        "tcp: a handshake (CurveZMQ's commands), then every frame sealed and opened as its "
        "MESSAGE")("refused", po::bool_switch(&o.refused),
                   "tcp --seal: the server admits no client key (the handshake must fail)")(
        "link-server", po::bool_switch(&o.link_server),
        "tcp: the server accepts through a LinkServer, as a node would, instead of driving "
        "the one link itself")(
        "cipher", po::value(&o.cipher)->default_value(o.cipher),
        "tcp --seal: the cipher the client offers: auto (AES-256-GCM where the CPU has it), "
        "aes256gcm or xsalsa20poly1305")(
        "idle-sockets", po::value(&o.idle_sockets)->default_value(0),
        "silent sockets the server also waits on (kvnode's loop polls about ten)")(
        "json", po::bool_switch(&json), "one JSON line instead of text");
    po::variables_map vm;
    if (auto code = kv::tools::parse_options("kvwire", argc, argv, opts, vm)) return *code;
    if ((o.mode != "zmq" && o.mode != "tcp") || o.inflight == 0 || o.frame_bytes == 0 ||
        o.frame_bytes > kFrameBytesMax || o.seconds <= 0 || o.idle_sockets > 1000) {
        std::cerr << "kvwire: --mode is zmq or tcp; --inflight and --frame-bytes (at most 16 MiB) "
                     "at least 1; --seconds above 0; --idle-sockets at most 1000\n";
        return 2;
    }
    if (o.curve && o.mode != "zmq") {
        std::cerr << "kvwire: --curve is for --mode zmq\n";
        return 2;
    }
    if (o.seal && o.mode != "tcp") {
        std::cerr << "kvwire: --seal is for --mode tcp\n";
        return 2;
    }
    if (o.link_server && o.mode != "tcp") {
        std::cerr << "kvwire: --link-server is for --mode tcp\n";
        return 2;
    }
    if (o.refused && !o.seal) {
        std::cerr << "kvwire: --refused is for --seal\n";
        return 2;
    }
    if (o.cipher != "auto" && o.cipher != "aes256gcm" && o.cipher != "xsalsa20poly1305") {
        std::cerr << "kvwire: --cipher is auto, aes256gcm or xsalsa20poly1305\n";
        return 2;
    }
    SealKeys seal_keys;
    seal_keys.refused = o.refused;
    if (o.seal && (::sodium_init() < 0 ||
                   ::crypto_box_keypair(seal_keys.server.public_key.data(),
                                        seal_keys.server.secret_key.data()) != 0 ||
                   ::crypto_box_keypair(seal_keys.client.public_key.data(),
                                        seal_keys.client.secret_key.data()) != 0)) {
        std::cerr << "kvwire: libsodium could not make key pairs\n";
        return 1;
    }
    const SealKeys* sealing = o.seal ? &seal_keys : nullptr;
    CurveKeys keys;
    if (o.curve && (zmq_curve_keypair(keys.server_public, keys.server_secret) != 0 ||
                    zmq_curve_keypair(keys.client_public, keys.client_secret) != 0)) {
        std::cerr << "kvwire: this libzmq has no CURVE support\n";
        return 1;
    }
    const CurveKeys* curve = o.curve ? &keys : nullptr;
    // A peer that died is reported by the read that sees it, not by a signal.
    std::signal(SIGPIPE, SIG_IGN);
    const auto server = kv::tools::fork_server("kvwire", [&](int ready_fd) {
        return o.mode == "zmq" ? serve_zmq(ready_fd, curve, o.idle_sockets)
               : o.link_server ? serve_link_server(ready_fd, o.idle_sockets, sealing)
                               : serve_tcp(ready_fd, o.idle_sockets, sealing);
    });
    if (!server) return 1;
    const pid_t child = server->pid;
    const std::string& bound = server->endpoint;
    Totals t;
    const bool ok = o.mode == "zmq" ? run_zmq(o, bound, curve, t) : run_tcp(o, bound, sealing, t);
    if (!ok) ::kill(child, SIGKILL);
    int status = 0;
    rusage server_usage{};
    ::wait4(child, &status, 0, &server_usage);
    if (!ok) return 1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "kvwire: the server failed\n");
        return 1;
    }
    // The server's time includes its start, which is small beside a run.
    t.server_cpu_s = cpu_seconds(server_usage);
    const double per_rt = t.round_trips == 0 ? 0 : 1e6 / static_cast<double>(t.round_trips);
    const std::string variant = std::string(o.link_server ? "+server" : "") +
                                (o.curve ? "+curve" : (o.seal ? "+seal-" + t.cipher : ""));
    const double rate = t.wall_s > 0 ? static_cast<double>(t.round_trips) / t.wall_s : 0;
    if (json) {
        std::printf(
            "{\"mode\":\"%s%s\",\"idle_sockets\":%u,\"inflight\":%u,\"frame_bytes\":%u,\"round_"
            "trips\":%llu,"
            "\"per_s\":%.0f,\"client_cpu_us\":%.2f,\"server_cpu_us\":%.2f,\"p50_us\":%u,"
            "\"p99_us\":%u,\"handshake_us\":%llu}\n",
            o.mode.c_str(), variant.c_str(), o.idle_sockets, o.inflight, o.frame_bytes,
            static_cast<unsigned long long>(t.round_trips), rate, t.client_cpu_s * per_rt,
            t.server_cpu_s * per_rt, quantile(t.latency_us, 0.5), quantile(t.latency_us, 0.99),
            static_cast<unsigned long long>(t.handshake_us));
    } else {
        std::printf(
            "%s%s, %u in flight, %u-byte frames, %u idle sockets: %llu round trips, %.0f per s\n",
            o.mode.c_str(), variant.c_str(), o.inflight, o.frame_bytes, o.idle_sockets,
            static_cast<unsigned long long>(t.round_trips), rate);
        std::printf("cpu per round trip: client %.2f us, server %.2f us\n", t.client_cpu_s * per_rt,
                    t.server_cpu_s * per_rt);
        if (!t.latency_us.empty()) {
            std::printf("latency p50 %u us, p99 %u us\n", quantile(t.latency_us, 0.5),
                        quantile(t.latency_us, 0.99));
        }
        if (o.seal) {
            std::printf("handshake %llu us (connect to established, at the client)\n",
                        static_cast<unsigned long long>(t.handshake_us));
        }
    }
    return 0;
}
