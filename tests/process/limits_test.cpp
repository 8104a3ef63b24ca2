// The memory and descriptor attacks of issue 11, replayed against real kvnode
// processes (insecure mode: no cluster key, loopback only), with the node's
// resident memory read from /proc/PID/status during and after each attack.
// Each test asserts that the node stays within the bound docs/PROTOCOL.md
// ("Limits") gives for the flags it runs with, and that another client is
// still served. Figures are printed (WARN) for the record.
//
// KV_LIMITS_OLD_BINARY=1 runs the attacks without the limit flags, so the
// tests can be pointed (KV_BIN_DIR) at a kvnode built before the limits:
// that is how each was seen to fail before the fix.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "gossip/gossip_codec.h"
#include "node/peer_protocol.h"
#include "tests/process/process_cluster.h"

namespace kv::test {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
// What the bounds below leave for everything the limits do not cover: the
// allocator's slack, ZeroMQ's batches and socket buffers.
constexpr uint64_t kSlackBytes = 64 * kMiB;

const proto::Consistency kOne{proto::Level::one, 0, false};
const proto::Consistency kAll{proto::Level::all, 0, false};

bool old_binary() {
    const char* v = std::getenv("KV_LIMITS_OLD_BINARY");
    return v != nullptr && std::string(v) == "1";
}

// False for the sanitizer variants (kvnode_asan): ASan's shadow memory and
// its quarantine of freed blocks (256 MiB) make RSS no measure of what the
// node holds, so those variants replay the attacks and check that the node
// survives and serves, without the memory bounds.
bool rss_is_meaningful() {
    const char* suffix = std::getenv("KV_VARIANT_SUFFIX");
    return suffix == nullptr || std::string(suffix).empty();
}

// Flags of the limits, left out when the binary predates them.
std::vector<std::string> limit_flags(std::vector<std::string> flags) {
    if (old_binary()) return {};
    return flags;
}

// A field of /proc/PID/status in bytes (VmRSS, RssAnon), 0 when unreadable.
uint64_t status_bytes(pid_t pid, const std::string& field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(field + ":", 0) == 0) {
            return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10) * 1024;
        }
    }
    return 0;
}

size_t open_descriptors(pid_t pid) {
    size_t n = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        ++n;
    }
    return n;
}

// Samples a process's RSS every 5 ms on a thread of its own, keeping the peak.
class RssSampler {
  public:
    explicit RssSampler(pid_t pid) : pid_(pid), thread_([this] { run(); }) {}
    ~RssSampler() { stop(); }
    void stop() {
        stop_.store(true);
        if (thread_.joinable()) thread_.join();
    }
    uint64_t peak_rss() const { return peak_rss_.load(); }
    uint64_t peak_anon() const { return peak_anon_.load(); }

  private:
    void run() {
        while (!stop_.load()) {
            peak_rss_.store(std::max(peak_rss_.load(), status_bytes(pid_, "VmRSS")));
            peak_anon_.store(std::max(peak_anon_.load(), status_bytes(pid_, "RssAnon")));
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
    pid_t pid_;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> peak_rss_{0};
    std::atomic<uint64_t> peak_anon_{0};
    std::thread thread_;
};

std::string mib(uint64_t bytes) {
    return std::to_string(bytes / kMiB) + " MiB";
}

// A request that must be served: retried (bounded) since a connection reset
// by the node's memory watchdog loses what was in flight on it.
bool served(RawClient& client, const proto::Message& request, int attempts = 5) {
    for (int i = 0; i < attempts; ++i) {
        auto reply = client.request(request, 3000);
        if (reply && reply_code(reply.value()) == ErrorCode::ok) return true;
    }
    return false;
}

bool log_contains(const ProcessCluster& cluster, size_t i, const std::string& text) {
    return cluster.log_tail(i, 2000).find(text) != std::string::npos;
}

// The count after the last `label` in node i's log (its "limits:" lines), 0 when none.
uint64_t last_logged(const ProcessCluster& cluster, size_t i, const std::string& label) {
    const std::string log = cluster.log_tail(i, 2000);
    const auto at = log.rfind(label);
    if (at == std::string::npos) return 0;
    return std::strtoull(log.c_str() + at + label.size(), nullptr, 10);
}

// ---- a raw ZMTP 3.0 peer (NULL mechanism) -------------------------------------------
// libzmq keeps the parts of an unfinished message in the sender's own pipe, so a
// never-ending message has to be written to the wire by hand.

int connect_tcp(const std::string& endpoint) {
    const auto colon = endpoint.rfind(':');
    const int port = std::stoi(endpoint.substr(colon + 1));
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    timeval timeout{5, 0};  // bounded: a node that stops reading fails the send
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

bool send_all(int fd, const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
        const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return false;  // the node closed the connection, or stopped reading
        sent += static_cast<size_t>(n);
    }
    return true;
}

std::string zmtp_handshake() {
    std::string greeting(64, '\0');
    greeting[0] = static_cast<char>(0xff);
    greeting[9] = 0x7f;
    greeting[10] = 3;  // ZMTP 3.0
    greeting[11] = 0;
    std::memcpy(&greeting[12], "NULL", 4);
    std::string body =
        std::string("\x05READY") + "\x0bSocket-Type" + std::string("\0\0\0\x06", 4) + "DEALER";
    std::string ready;
    ready += '\x04';  // a short command
    ready += static_cast<char>(body.size());
    return greeting + ready + body;
}

// Reads the node's greeting and READY command (64 + 2 + its size bytes), so
// that the frames that follow arrive after the handshake.
bool read_handshake(int fd) {
    auto read_exact = [fd](size_t n) {
        std::string buf(n, '\0');
        size_t got = 0;
        while (got < n) {
            const ssize_t r = ::recv(fd, buf.data() + got, n - got, 0);
            if (r <= 0) return std::string();
            got += static_cast<size_t>(r);
        }
        return buf;
    };
    if (read_exact(64).size() != 64) return false;
    const std::string head = read_exact(2);
    return head.size() == 2 &&
           read_exact(static_cast<uint8_t>(head[1])).size() == static_cast<uint8_t>(head[1]);
}

// One frame with the MORE flag, of `size` bytes (long form).
std::string more_frame(size_t size) {
    std::string frame;
    frame += '\x03';  // MORE | LONG
    for (int shift = 56; shift >= 0; shift -= 8) frame += static_cast<char>((size >> shift) & 0xff);
    frame.append(size, 'p');
    return frame;
}

}  // namespace

TEST_CASE("a message whose parts never end is bounded by the memory watchdog") {
    constexpr uint64_t kMemoryMaxMb = 192;
    constexpr size_t kPartBytes = 64 * 1024;
    constexpr uint64_t kAttackBytes = uint64_t{1} << 30;  // 1 GiB in one never-ending message
    if (!rss_is_meaningful()) {
        // The watchdog acts on RSS, which ASan inflates and never gives back.
        WARN("skipped in the sanitizer variant: the watchdog acts on RSS");
        return;
    }
    ProcessCluster cluster("limits-parts");
    KV_REQUIRE_OK(cluster.add_nodes(1, 1));
    cluster.set_extra_flags(0, limit_flags({"--memory-max-mb", std::to_string(kMemoryMaxMb)}));
    KV_REQUIRE_OK(cluster.start_all());
    RawClient good(cluster.endpoint(0));
    REQUIRE(served(good, proto::PutRequest{next_request_id(), "k", "v", {}, kOne, 0}));
    const uint64_t before = status_bytes(cluster.pid(0), "RssAnon");

    RssSampler sampler(cluster.pid(0));
    const int fd = connect_tcp(cluster.endpoint(0));
    REQUIRE(fd >= 0);
    REQUIRE(send_all(fd, zmtp_handshake()));
    REQUIRE(read_handshake(fd));
    const std::string part = more_frame(kPartBytes);
    uint64_t sent = 0;
    while (sent < kAttackBytes && send_all(fd, part)) sent += part.size();
    ::close(fd);
    // The attacker's connection was closed by the node before it sent it all.
    const bool cut_off = sent < kAttackBytes;
    const bool good_served =
        served(good, proto::GetRequest{next_request_id(), "k", kOne, 0}) && cluster.alive(0);
    // The node trims its heap after the reset, on its loop: on a loaded
    // machine that can take longer than the attack's last send. What is bounded
    // is where memory returns to, so wait for it (at most 5 s), not a fixed time.
    uint64_t after = status_bytes(cluster.pid(0), "RssAnon");
    for (int waited_ms = 0; after > kMemoryMaxMb * kMiB && waited_ms < 5000; waited_ms += 50) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        after = status_bytes(cluster.pid(0), "RssAnon");
    }
    sampler.stop();
    WARN("never-ending message: sent " << mib(sent) << "; node RssAnon before " << mib(before)
                                       << ", peak " << mib(sampler.peak_anon()) << ", after "
                                       << mib(after) << " (VmRSS peak " << mib(sampler.peak_rss())
                                       << ")");
    CHECK(cut_off);
    CHECK(good_served);
    // Bound (PROTOCOL.md "Limits"): --memory-max-mb, plus what arrives within
    // one 10 ms check, plus slack.
    CHECK(sampler.peak_anon() <= kMemoryMaxMb * kMiB + kSlackBytes);
    CHECK(after <= kMemoryMaxMb * kMiB);
    CHECK(log_contains(cluster, 0, "resetting every connection"));
}

TEST_CASE("a client that never reads its replies is bounded by the reply queue") {
    constexpr int kReplyQueueMax = 1000;
    constexpr size_t kValueBytes = 10 * 1024;
    constexpr size_t kGets = 100'000;
    ProcessCluster cluster("limits-slow-reader");
    KV_REQUIRE_OK(cluster.add_nodes(1, 1));
    cluster.set_extra_flags(0, limit_flags({"--reply-queue-max", std::to_string(kReplyQueueMax)}));
    KV_REQUIRE_OK(cluster.start_all());
    RawClient good(cluster.endpoint(0));
    const std::string value(kValueBytes, 'v');
    REQUIRE(served(good, proto::PutRequest{next_request_id(), "big", value, {}, kOne, 0}));
    const uint64_t before = status_bytes(cluster.pid(0), "RssAnon");

    RssSampler sampler(cluster.pid(0));
    {
        zmq::context_t context;
        zmq::socket_t attacker(context, zmq::socket_type::dealer);
        attacker.set(zmq::sockopt::linger, 0);
        attacker.set(zmq::sockopt::sndhwm, 0);
        attacker.set(zmq::sockopt::rcvhwm, 1);
        attacker.set(zmq::sockopt::rcvbuf, 4096);
        attacker.connect(cluster.endpoint(0));
        for (size_t i = 0; i < kGets; ++i) {
            const std::string frame =
                proto::encode(proto::GetRequest{next_request_id(), "big", kOne, 0});
            REQUIRE(attacker.send(zmq::buffer(frame), zmq::send_flags::none));
        }
        // Until the node has read them all (bounded): a status from the good
        // client queues behind nothing, so wait on the node's own counter log.
        bool good_served = false;
        for (int i = 0; i < 100 && !log_contains(cluster, 0, "requests dropped from slow readers");
             ++i) {
            good_served = served(good, proto::GetRequest{next_request_id(), "big", kOne, 0});
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        good_served = served(good, proto::GetRequest{next_request_id(), "big", kOne, 0});
        sampler.stop();
        const uint64_t during = status_bytes(cluster.pid(0), "RssAnon");
        WARN("slow reader: " << kGets << " gets of " << kValueBytes / 1024
                             << " KiB unread; node RssAnon before " << mib(before) << ", peak "
                             << mib(sampler.peak_anon()) << ", with the attacker still connected "
                             << mib(during));
        CHECK(good_served);
        // Bound: --reply-queue-max replies of this size queued for the connection.
        if (rss_is_meaningful()) {
            CHECK(sampler.peak_anon() <=
                  before + kReplyQueueMax * (kValueBytes + 1024) + kSlackBytes);
        }
        CHECK(log_contains(cluster, 0, "limits:"));
    }
    CHECK(cluster.alive(0));
}

TEST_CASE("requests with long deadlines are bounded per connection and do not starve others") {
    constexpr size_t kRequests = 20'000;
    constexpr size_t kValueBytes = 64 * 1024;
    constexpr uint64_t kTotalBytes = 64 * kMiB;
    constexpr uint64_t kConnectionBytes = 8 * kMiB;
    constexpr uint64_t kBackgroundBytes = 16 * kMiB;
    ProcessCluster cluster("limits-in-flight");
    KV_REQUIRE_OK(cluster.add_nodes(2, 2));
    for (size_t i = 0; i < 2; ++i) {
        std::vector<std::string> flags = {"--peer-down-after-ms", "600000"};
        for (const auto& f :
             limit_flags({"--max-in-flight-bytes", std::to_string(kTotalBytes),
                          "--connection-max-in-flight-bytes", std::to_string(kConnectionBytes),
                          "--background-max-bytes", std::to_string(kBackgroundBytes)})) {
            flags.push_back(f);
        }
        cluster.set_extra_flags(i, flags);
    }
    KV_REQUIRE_OK(cluster.start_all());
    RawClient good(cluster.endpoint(0));
    REQUIRE(served(good, proto::PutRequest{next_request_id(), "k", "v", {}, kAll, 0}));
    const uint64_t before = status_bytes(cluster.pid(0), "RssAnon");
    // n2 stops answering but stays "reachable": every write at `all` waits for it.
    REQUIRE(::kill(cluster.pid(1), SIGSTOP) == 0);

    RssSampler sampler(cluster.pid(0));
    RawClient attacker(cluster.endpoint(0));
    const std::string value(kValueBytes, 'a');
    for (size_t i = 0; i < kRequests; ++i) {
        KV_REQUIRE_OK(attacker.send(proto::PutRequest{
            next_request_id(), "a" + std::to_string(i), value, {}, kAll, proto::kDeadlineMsMax}));
    }
    // The attacker's refusals come back at once; count them (bounded wait).
    // The node reads the 1.25 GiB at its own pace: wait (bounded) until the
    // replies stop, those admitted never being answered.
    size_t overloaded = 0;
    size_t replies = 0;
    for (int quiet = 0; replies < kRequests && quiet < 10;) {
        auto reply = attacker.recv(1000);
        if (!reply) {
            ++quiet;
            continue;
        }
        quiet = 0;
        ++replies;
        if (reply_code(reply.value()) == ErrorCode::overloaded) ++overloaded;
    }
    // Another client is served meanwhile (w=one: n1 alone acknowledges).
    const bool good_served =
        served(good, proto::PutRequest{next_request_id(), "g", "v", {}, kOne, 0}, 2);
    sampler.stop();
    REQUIRE(::kill(cluster.pid(1), SIGCONT) == 0);
    WARN("long deadlines: " << kRequests << " puts of " << kValueBytes / 1024
                            << " KiB at all, one replica stopped: " << overloaded
                            << " refused overloaded; node RssAnon before " << mib(before)
                            << ", peak " << mib(sampler.peak_anon()));
    // Every request beyond the connection's budget was refused: answered
    // overloaded, or dropped unread when the attacker (busy sending) let its
    // replies pile up (the node logs both counts at most every 10 s).
    const uint64_t refused_min = kRequests - kConnectionBytes / kValueBytes;
    uint64_t refused = 0;
    for (int i = 0; i < 150 && refused < refused_min; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        refused = last_logged(cluster, 0, "requests refused overloaded ") +
                  last_logged(cluster, 0, "requests dropped from slow readers ");
    }
    INFO("overloaded replies read " << overloaded << " of " << replies);
    CHECK(good_served);
    CHECK(refused >= refused_min);
    // Bound: each admitted write is held by its op and queued once per other
    // replica: n x (--max-in-flight-bytes + --background-max-bytes).
    if (rss_is_meaningful()) {
        CHECK(sampler.peak_anon() <= before + 2 * (kTotalBytes + kBackgroundBytes) + kSlackBytes);
    }
}

TEST_CASE("gossip naming many reply endpoints opens a bounded number of sockets") {
    constexpr size_t kEndpointsMax = 16;
    constexpr size_t kSyns = 1100;
    ProcessCluster cluster("limits-gossip");
    KV_REQUIRE_OK(cluster.add_nodes(2, 1));
    cluster.use_gossip({"--gossip-interval-ms", "100", "--join-wait-ms", "300"});
    cluster.set_extra_flags(0,
                            limit_flags({"--gossip-endpoints-max", std::to_string(kEndpointsMax)}));
    KV_REQUIRE_OK(cluster.start_and_wait(0));
    const size_t fds_before = open_descriptors(cluster.pid(0));

    RawClient attacker(cluster.endpoint(0));
    for (size_t i = 0; i < kSyns; ++i) {
        // Ports in the discard range nobody listens on: each a socket to dial.
        const std::string ep = "tcp://127.0.0.1:" + std::to_string(20000 + i);
        gossip::GossipSyn syn{"fake" + std::to_string(i), ep, {}};
        KV_REQUIRE_OK(attacker.send_frame(node::encode(
            node::GossipRequest{next_request_id(), syn.from_id, gossip::encode(syn)})));
    }
    // Until the node has handled them: a status request queues behind them.
    RawClient good(cluster.endpoint(0));
    auto status = good.request(proto::StatusRequest{next_request_id()}, 10000);
    REQUIRE(status.ok());
    // Closed ZeroMQ sockets release their descriptors a moment later (the
    // reaper thread): read until three readings agree (bounded).
    const size_t fds_right_after = open_descriptors(cluster.pid(0));
    size_t fds_after = fds_right_after;
    for (int i = 0, same = 0; i < 50 && same < 3; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        const size_t now = open_descriptors(cluster.pid(0));
        same = now == fds_after ? same + 1 : 0;
        fds_after = now;
    }
    // A new node still joins through it.
    KV_REQUIRE_OK(cluster.start_and_wait(1));
    WARN("gossip endpoints: " << kSyns << " syns with distinct reply endpoints; node descriptors "
                              << fds_before << " before, " << fds_right_after << " right after, "
                              << fds_after << " once settled");
    // Bound: two descriptors per dialled endpoint (the TCP socket and the
    // ZeroMQ socket's mailbox), --gossip-endpoints-max of them, plus slack.
    CHECK(fds_after <= fds_before + 2 * kEndpointsMax + 16);
    CHECK(cluster.alive(0));
}

namespace {
// Each thread of `pid`: its name and scheduling policy (/proc/PID/task/TID/stat,
// field 41: 0 SCHED_OTHER, 3 SCHED_BATCH).
std::vector<std::pair<std::string, int>> thread_policies(pid_t pid) {
    std::vector<std::pair<std::string, int>> out;
    const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
    for (const auto& task : std::filesystem::directory_iterator(tasks)) {
        std::ifstream stat(task.path() / "stat");
        std::string line;
        std::getline(stat, line);
        const size_t open = line.find('(');
        const size_t close = line.rfind(')');
        if (open == std::string::npos || close == std::string::npos) continue;
        std::istringstream fields(line.substr(close + 2));  // from field 3 (state) on
        std::string field;
        for (int i = 3; i <= 41 && fields >> field; ++i) {
        }
        out.emplace_back(line.substr(open + 1, close - open - 1), std::stoi(field));
    }
    return out;
}
}  // namespace

TEST_CASE("the node's threads run under SCHED_BATCH, or the default policy with it off") {
    ProcessCluster cluster("sched-batch");
    KV_REQUIRE_OK(cluster.add_nodes(2, 1));
    cluster.set_extra_flags(1, {"--sched-batch", "false"});
    KV_REQUIRE_OK(cluster.start_all());
    for (size_t i = 0; i < 2; ++i) {
        // A write, so that every thread a commit needs has started.
        RawClient client(cluster.endpoint(i));
        REQUIRE(served(client, proto::PutRequest{next_request_id(), "k", "v", {}, kOne, 0}));
        const int expected = i == 0 ? SCHED_BATCH : SCHED_OTHER;
        const auto threads = thread_policies(cluster.pid(i));
        std::set<std::string> names;
        for (const auto& [name, policy] : threads) {
            INFO("node " << i << " thread " << name);
            CHECK(policy == expected);
            names.insert(name);
        }
        // The event loop (the main thread, named as the binary: kvnode, or
        // kvnode_asan), the commit thread and the checkpointer among them.
        std::ifstream comm("/proc/" + std::to_string(cluster.pid(i)) + "/comm");
        std::string main_thread;
        std::getline(comm, main_thread);
        CHECK(main_thread.rfind("kvnode", 0) == 0);
        CHECK(names.count(main_thread) == 1);
        CHECK(names.count("kv-commit") == 1);
        CHECK(names.count("kv-checkpoint") == 1);
    }
}

}  // namespace kv::test
