#include "tests/process/process_cluster.h"

#include "client/frame_batch.h"
#include "client/keys.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <thread>

// Listeners need Catch's reporter interfaces, which the single header hides by default.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

// ---- failure detection ----------------------------------------------------------
// CHECK failures do not throw, so the destructor cannot see them through
// std::uncaught_exceptions(); a listener counts every failed assertion instead.
namespace {

std::atomic<uint64_t> g_failed_assertions{0};

struct KvProcessFailureCounter : Catch::TestEventListenerBase {
    using TestEventListenerBase::TestEventListenerBase;
    bool assertionEnded(const Catch::AssertionStats& stats) override {
        if (!stats.assertionResult.isOk()) g_failed_assertions.fetch_add(1);
        return true;
    }
};

}  // namespace

CATCH_REGISTER_LISTENER(KvProcessFailureCounter)

namespace kv::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---- ports ----------------------------------------------------------------------
// Below Linux's ephemeral range (32768+), so no outgoing connection holds them.
// Each test process starts scanning at an offset derived from its pid, so tests
// that ctest runs in parallel rarely probe the same ports; the bind test skips
// ports in use, and ports handed out once are not handed out again.
constexpr uint32_t kPortFirst = 20'000;
constexpr uint32_t kPortCount = 12'000;

bool port_is_free(uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return free;
}

uint16_t pick_free_port() {
    static std::set<uint16_t> handed_out;
    static uint32_t cursor = (static_cast<uint32_t>(::getpid()) * 97u) % kPortCount;
    for (uint32_t attempt = 0; attempt < kPortCount; ++attempt) {
        const auto port = static_cast<uint16_t>(kPortFirst + cursor % kPortCount);
        ++cursor;
        if (handed_out.count(port) == 0 && port_is_free(port)) {
            handed_out.insert(port);
            return port;
        }
    }
    return 0;
}

// ---- files ----------------------------------------------------------------------

std::string env_or_empty(const char* name) {
    const char* value = std::getenv(name);
    return value ? value : "";
}

// $KV_BIN_DIR/kvnode$KV_VARIANT_SUFFIX, else next to this test binary (whose own
// name ends in _asan for the sanitized variant).
std::string find_node_binary() {
    std::string suffix = env_or_empty("KV_VARIANT_SUFFIX");
    std::string dir = env_or_empty("KV_BIN_DIR");
    if (dir.empty()) {
        std::error_code ec;
        const fs::path self = fs::read_symlink("/proc/self/exe", ec);
        dir = self.parent_path().string();
        const std::string name = self.filename().string();
        if (suffix.empty() && name.size() > 5 && name.ends_with("_asan")) suffix = "_asan";
    }
    return dir + "/kvnode" + suffix;
}

std::string make_temp_root(std::string_view name) {
    std::string base = env_or_empty("TMPDIR");
    if (base.empty()) base = "/tmp";
    std::string pattern = base + "/kv-" + std::string(name) + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return "";
    return pattern;
}

std::string tail_of_file(const std::string& path, size_t lines_max) {
    std::ifstream in(path);
    if (!in) return "(no log at " + path + ")\n";
    std::deque<std::string> lines;
    std::string line;
    while (std::getline(in, line)) {
        lines.push_back(std::move(line));
        if (lines.size() > lines_max) lines.pop_front();
    }
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

void append_to_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::app);
    out << text;
}

// The child side of fork: only async-signal-safe calls until execv.
[[noreturn]] void exec_child(int log_fd, const std::vector<char*>& argv) {
    // A node must not outlive a test that crashed or was killed by ctest's timeout.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    // The test's ZeroMQ sockets and other descriptors stay out of the node.
    if (::close_range(3, ~0u, 0) != 0) {
        for (int fd = 3; fd < 4096; ++fd) ::close(fd);
    }
    ::execv(argv[0], argv.data());
    static const char kExecFailed[] = "process_cluster: execv failed\n";
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, kExecFailed, sizeof kExecFailed - 1);
    ::_exit(127);
}

int exit_code_of(int wait_status) {
    if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
    return -1;
}

zmq::context_t& zmq_context() {
    static zmq::context_t context;
    return context;
}

}  // namespace

// ---- ProcessCluster --------------------------------------------------------------

ProcessCluster::ProcessCluster(std::string_view name)
    : root_dir_(make_temp_root(name)),
      binary_(find_node_binary()),
      failures_at_start_(g_failed_assertions.load()) {}

ProcessCluster::~ProcessCluster() {
    for (auto& node : nodes_) {
        if (node.pid > 0) {
            ::kill(node.pid, SIGKILL);
            (void)reap(node, kExitTimeoutMs);
        }
    }
    const bool failed =
        g_failed_assertions.load() > failures_at_start_ || std::uncaught_exceptions() > 0;
    if (failed && !nodes_.empty()) {
        std::fprintf(stderr, "---- test failed; node logs (tails) ----\n%s",
                     all_log_tails().c_str());
    }
    if (root_dir_.empty()) return;
    if (!env_or_empty("KV_KEEP_TEST_DIRS").empty()) {
        std::fprintf(stderr, "process_cluster: kept %s\n", root_dir_.c_str());
        return;
    }
    std::error_code ec;
    fs::remove_all(root_dir_, ec);
}

Status ProcessCluster::add_nodes(size_t count, uint32_t n_replicas) {
    if (root_dir_.empty()) return {ErrorCode::internal, "could not create a temp dir"};
    if (!nodes_.empty()) return {ErrorCode::invalid_argument, "add_nodes called twice"};
    if (::access(binary_.c_str(), X_OK) != 0) {
        return {ErrorCode::internal, "node binary not found or not executable: " + binary_ +
                                         " (build the kvnode target first)"};
    }
    n_replicas_ = n_replicas;
    for (size_t i = 0; i < count; ++i) {
        Node node;
        node.id = "n" + std::to_string(i + 1);
        node.port = pick_free_port();
        if (node.port == 0) return {ErrorCode::internal, "no free loopback port"};
        node.endpoint = "tcp://127.0.0.1:" + std::to_string(node.port);
        node.data_dir = root_dir_ + "/" + node.id;
        node.log_path = root_dir_ + "/" + node.id + ".log";
        std::error_code ec;
        fs::create_directories(node.data_dir, ec);
        if (ec)
            return {ErrorCode::internal, "cannot create " + node.data_dir + ": " + ec.message()};
        nodes_.push_back(std::move(node));
    }
    return {};
}

std::string ProcessCluster::peers_arg() const {
    std::string peers;
    for (const auto& node : nodes_) {
        if (!peers.empty()) peers += ",";
        peers += node.id + "=" + node.endpoint;
    }
    return peers;
}

void ProcessCluster::use_gossip(std::vector<std::string> extra_flags) {
    gossip_ = true;
    gossip_flags_ = std::move(extra_flags);
}

std::vector<std::string> ProcessCluster::node_args(const Node& node) const {
    const std::string& listen = node.listen.empty() ? node.endpoint : node.listen;
    std::vector<std::string> args = {binary_,       "--id", node.id,
                                     "--listen",    listen, "--data-dir",
                                     node.data_dir, "--n",  std::to_string(n_replicas_),
                                     "--log-level", "info"};
    if (!node.cluster_key_file.empty()) {
        args.insert(args.end(), {"--cluster-key", node.cluster_key_file});
    } else if (cluster_curve_) {
        args.insert(args.end(), {"--cluster-key", cluster_key_file_});
    }
    args.insert(args.end(), node.extra_flags.begin(), node.extra_flags.end());
    if (!gossip_) {
        args.insert(args.end(), {"--peers", peers_arg()});
        return args;
    }
    std::string seeds;
    for (const auto& seed : node.seeds) seeds += (seeds.empty() ? "" : ",") + seed;
    args.insert(args.end(), {"--seeds", seeds.empty() ? nodes_.front().endpoint : seeds});
    args.insert(args.end(), gossip_flags_.begin(), gossip_flags_.end());
    return args;
}

Status ProcessCluster::start(size_t i) {
    Node& node = nodes_.at(i);
    if (node.pid > 0) return {ErrorCode::invalid_argument, node.id + " is already running"};
    std::vector<std::string> args = node_args(node);
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);

    ++node.starts;
    append_to_file(node.log_path,
                   "==== process_cluster: start #" + std::to_string(node.starts) + " ====\n");
    const int log_fd = ::open(node.log_path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (log_fd < 0) return {ErrorCode::internal, "cannot open " + node.log_path};
    std::fflush(nullptr);  // the child must not flush our buffered output twice
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(log_fd);
        return {ErrorCode::internal, std::string("fork failed: ") + std::strerror(errno)};
    }
    if (pid == 0) exec_child(log_fd, argv);
    ::close(log_fd);
    node.pid = pid;
    return {};
}

Status ProcessCluster::wait_ready(size_t i, int timeout_ms) {
    const Node& node = nodes_.at(i);
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    const auto resend_every = std::chrono::milliseconds(500);
    RawClient client(node.endpoint, cluster_curve_);
    auto next_send = Clock::now();
    std::string last_problem = "no reply";
    while (Clock::now() < deadline) {
        if (!alive(i)) {
            return {ErrorCode::unavailable,
                    node.id + " exited while starting; log tail:\n" + log_tail(i)};
        }
        if (Clock::now() >= next_send) {
            // ZeroMQ queues the request until the node binds; resending covers a
            // request lost to a half-open first connection.
            Status sent = client.send(proto::StatusRequest{next_request_id()});
            if (!sent.ok()) return sent;
            next_send = Clock::now() + resend_every;
        }
        auto reply = client.recv(50);
        if (!reply.ok()) {
            if (reply.status().code() != ErrorCode::timeout)
                last_problem = reply.status().to_string();
            continue;
        }
        if (const auto* status = std::get_if<proto::StatusResponse>(&reply.value())) {
            if (status->node_id == node.id) return {};
            last_problem = "status from '" + status->node_id + "', expected '" + node.id + "'";
        } else {
            last_problem = "unexpected reply " + describe(reply.value());
        }
    }
    return {ErrorCode::timeout, node.id + " did not answer a StatusRequest within " +
                                    std::to_string(timeout_ms) + " ms (" + last_problem +
                                    "); log tail:\n" + log_tail(i)};
}

Status ProcessCluster::start_and_wait(size_t i) {
    Status started = start(i);
    if (!started.ok()) return started;
    return wait_ready(i);
}

Status ProcessCluster::start_all() {
    for (size_t i = 0; i < nodes_.size(); ++i) {
        Status started = start(i);
        if (!started.ok()) return started;
    }
    for (size_t i = 0; i < nodes_.size(); ++i) {
        Status ready = wait_ready(i);
        if (!ready.ok()) return ready;
    }
    // A static cluster's nodes start on empty data directories, so each first
    // refills (one exchange with each peer) before its replica reads count;
    // a test's first quorum read should meet a cluster in service.
    for (size_t i = 0; i < nodes_.size(); ++i) {
        Status refilled = wait_refilled(i);
        if (!refilled.ok()) return refilled;
    }
    return {};
}

Status ProcessCluster::wait_refilled(size_t i, int timeout_ms) {
    const Node& node = nodes_.at(i);
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    RawClient client(node.endpoint, cluster_curve_);
    std::string last_problem = "no reply";
    while (Clock::now() < deadline) {
        const auto left_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        auto reply = client.request(proto::StatusRequest{next_request_id()},
                                    static_cast<int>(std::max<long long>(left_ms, 1)));
        if (!reply.ok()) {
            last_problem = reply.status().to_string();
        } else if (const auto* status = std::get_if<proto::StatusResponse>(&reply.value())) {
            if (!status->anti_entropy || !status->anti_entropy->refilling) return {};
            last_problem = "still refilling";
        } else {
            last_problem = "unexpected reply " + describe(reply.value());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return {ErrorCode::timeout, node.id + " did not finish its refill within " +
                                    std::to_string(timeout_ms) + " ms (" + last_problem +
                                    "); log tail:\n" + log_tail(i)};
}

bool ProcessCluster::alive(size_t i) {
    Node& node = nodes_.at(i);
    if (node.pid <= 0) return false;
    int wait_status = 0;
    if (::waitpid(node.pid, &wait_status, WNOHANG) == 0) return true;
    node.pid = -1;
    return false;
}

Result<int> ProcessCluster::reap(Node& node, int timeout_ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
        int wait_status = 0;
        const pid_t done = ::waitpid(node.pid, &wait_status, WNOHANG);
        if (done == node.pid) {
            node.pid = -1;
            return exit_code_of(wait_status);
        }
        if (done < 0) {
            node.pid = -1;
            return Status{ErrorCode::internal, std::string("waitpid: ") + std::strerror(errno)};
        }
        if (Clock::now() >= deadline) {
            return Status{ErrorCode::timeout,
                          node.id + " did not exit within " + std::to_string(timeout_ms) + " ms"};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

Status ProcessCluster::kill_hard(size_t i) {
    Node& node = nodes_.at(i);
    if (node.pid <= 0) return {ErrorCode::invalid_argument, node.id + " is not running"};
    ::kill(node.pid, SIGKILL);
    auto exited = reap(node, kExitTimeoutMs);
    return exited.ok() ? Status{} : exited.status();
}

Result<int> ProcessCluster::terminate(size_t i, int timeout_ms) {
    Node& node = nodes_.at(i);
    if (node.pid <= 0) return Status{ErrorCode::invalid_argument, node.id + " is not running"};
    ::kill(node.pid, SIGTERM);
    auto exited = reap(node, timeout_ms);
    if (exited.ok()) return exited;
    ::kill(node.pid, SIGKILL);
    (void)reap(node, kExitTimeoutMs);
    return Status{ErrorCode::timeout, node.id + " ignored SIGTERM for " +
                                          std::to_string(timeout_ms) + " ms; log tail:\n" +
                                          log_tail(i)};
}

Result<int> ProcessCluster::wait_exit(size_t i, int timeout_ms) {
    Node& node = nodes_.at(i);
    if (node.pid <= 0) return Status{ErrorCode::invalid_argument, node.id + " is not running"};
    return reap(node, timeout_ms);
}

Status ProcessCluster::use_cluster_key() {
    auto pair = client::generate_key_pair();
    if (!pair) return pair.status();
    cluster_key_file_ = root_dir_ + "/cluster.key";
    Status saved = client::save_credentials(cluster_key_file_,
                                            client::Credentials{pair.value(), std::nullopt});
    if (!saved.ok()) return saved;
    cluster_curve_ = client::CurveCredentials{pair->public_z85, pair->secret_z85, pair->public_z85};
    return {};
}

Status ProcessCluster::restart(size_t i) {
    if (alive(i)) {
        Status killed = kill_hard(i);
        if (!killed.ok()) return killed;
    }
    return start_and_wait(i);
}

std::string ProcessCluster::log_tail(size_t i, size_t lines) const {
    return tail_of_file(nodes_.at(i).log_path, lines);
}

std::string ProcessCluster::all_log_tails(size_t lines) const {
    std::string out;
    for (size_t i = 0; i < nodes_.size(); ++i) {
        out += "---- " + nodes_[i].id + " (" + nodes_[i].log_path + ") ----\n";
        out += log_tail(i, lines);
    }
    return out;
}

// ---- RawClient --------------------------------------------------------------------

RawClient::RawClient(const std::string& endpoint,
                     const std::optional<client::CurveCredentials>& curve)
    : socket_(zmq_context(), zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    if (curve) {
        socket_.set(zmq::sockopt::curve_serverkey, curve->server_public_z85);
        socket_.set(zmq::sockopt::curve_publickey, curve->client_public_z85);
        socket_.set(zmq::sockopt::curve_secretkey, curve->client_secret_z85);
    }
    // Unbounded queues: a test pipelines thousands of frames before reading replies,
    // and a full queue would block the send or make the node's ROUTER drop replies.
    socket_.set(zmq::sockopt::sndhwm, 0);
    socket_.set(zmq::sockopt::rcvhwm, 0);
    socket_.connect(endpoint);
}

Status RawClient::send_frame(std::string_view frame) {
    try {
        if (!socket_.send(zmq::buffer(frame.data(), frame.size()), zmq::send_flags::none)) {
            return {ErrorCode::overloaded, "send would block"};
        }
    } catch (const zmq::error_t& e) {
        return {ErrorCode::connection, std::string("send: ") + e.what()};
    }
    return {};
}

Status RawClient::send_multipart(const std::vector<std::string>& frames) {
    try {
        for (size_t k = 0; k < frames.size(); ++k) {
            const auto flags =
                k + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
            if (!socket_.send(zmq::buffer(frames[k].data(), frames[k].size()), flags)) {
                return {ErrorCode::overloaded, "send would block"};
            }
        }
    } catch (const zmq::error_t& e) {
        return {ErrorCode::connection, std::string("send: ") + e.what()};
    }
    return {};
}

Status RawClient::send(const proto::Message& message) {
    return send_frame(proto::encode(message));
}

Result<std::string> RawClient::recv_frame(int timeout_ms) {
    if (!batched_.empty()) {
        std::string next = std::move(batched_.front());
        batched_.pop_front();
        return next;
    }
    try {
        socket_.set(zmq::sockopt::rcvtimeo, timeout_ms);
        zmq::message_t frame;
        if (!socket_.recv(frame, zmq::recv_flags::none)) {
            return Status{ErrorCode::timeout,
                          "no reply within " + std::to_string(timeout_ms) + " ms"};
        }
        std::string bytes = frame.to_string();
        std::vector<std::string_view> messages;
        if (!frame.more() && proto::split_batch_frame(bytes, messages)) {
            for (size_t i = 1; i < messages.size(); ++i) batched_.emplace_back(messages[i]);
            return std::string(messages.front());
        }
        if (!frame.more()) return bytes;
        // Drain the rest so the next receive starts at a message boundary.
        size_t parts = 1;
        while (frame.more() && socket_.recv(frame, zmq::recv_flags::none)) ++parts;
        return Status{ErrorCode::bad_request,
                      "reply had " + std::to_string(parts) + " frames, expected one"};
    } catch (const zmq::error_t& e) {
        return Status{ErrorCode::connection, std::string("recv: ") + e.what()};
    }
}

Result<proto::Message> RawClient::recv(int timeout_ms) {
    auto frame = recv_frame(timeout_ms);
    if (!frame.ok()) return frame.status();
    auto decoded = proto::decode(frame.value());
    if (!decoded.ok()) {
        return Status{decoded.status().code(),
                      "reply frame of " + std::to_string(frame.value().size()) +
                          " bytes does not decode: " + decoded.status().message()};
    }
    return decoded;
}

Result<std::vector<proto::Message>> RawClient::collect(size_t count, int timeout_ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    std::vector<proto::Message> replies;
    replies.reserve(count);
    while (replies.size() < count) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            return Status{ErrorCode::timeout, "got " + std::to_string(replies.size()) + " of " +
                                                  std::to_string(count) + " replies within " +
                                                  std::to_string(timeout_ms) + " ms"};
        }
        auto reply = recv(static_cast<int>(left.count()));
        if (!reply.ok()) {
            if (reply.status().code() == ErrorCode::timeout) continue;
            return Status{reply.status().code(), "after " + std::to_string(replies.size()) +
                                                     " replies: " + reply.status().message()};
        }
        replies.push_back(std::move(reply).value());
    }
    return replies;
}

Result<proto::Message> RawClient::request(const proto::Message& message, int timeout_ms) {
    const uint64_t id = proto::request_id(message);
    Status sent = send(message);
    if (!sent.ok()) return sent;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            return Status{ErrorCode::timeout, "no reply to request id " + std::to_string(id) +
                                                  " within " + std::to_string(timeout_ms) + " ms"};
        }
        auto reply = recv(static_cast<int>(left.count()));
        if (!reply.ok()) {
            if (reply.status().code() == ErrorCode::timeout) continue;
            return reply;
        }
        if (proto::request_id(reply.value()) == id) return reply;
    }
}

// ---- helpers ----------------------------------------------------------------------

uint64_t next_request_id() {
    static uint64_t next = 1;
    return next++;
}

std::optional<ErrorCode> reply_code(const proto::Message& reply) {
    if (const auto* r = std::get_if<proto::ErrorResponse>(&reply)) return r->code;
    if (const auto* r = std::get_if<proto::GetResponse>(&reply)) return r->code;
    if (const auto* r = std::get_if<proto::WriteResponse>(&reply)) return r->code;
    return std::nullopt;
}

std::string describe(const proto::Message& message) {
    std::string text = std::string(proto::type_name(message)) +
                       "{id=" + std::to_string(proto::request_id(message));
    if (auto code = reply_code(message)) text += " code=" + std::string(error_name(*code));
    std::visit(
        [&text](const auto& m) {
            if constexpr (requires { m.message; }) {
                if (!m.message.empty()) text += " message=\"" + m.message + "\"";
            }
        },
        message);
    return text + "}";
}

std::optional<proto::StatusResponse> status_of(const ProcessCluster& cluster, size_t i) {
    RawClient client(cluster.endpoint(i));
    auto reply = client.request(proto::StatusRequest{next_request_id()}, 2000);
    if (!reply) return std::nullopt;
    if (auto* s = std::get_if<proto::StatusResponse>(&reply.value())) return *s;
    return std::nullopt;
}

bool wait_for_status(const ProcessCluster& cluster, const std::vector<size_t>& observers,
                     int timeout_ms,
                     const std::function<bool(const proto::StatusResponse&)>& holds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
        bool all = true;
        for (size_t i : observers) {
            auto s = status_of(cluster, i);
            all = all && s && holds(*s);
        }
        if (all) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

uint16_t free_loopback_port() {
    return pick_free_port();
}

CommandResult run_command(const std::string& command) {
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((command + " 2>&1").c_str(), "r"), pclose);
    REQUIRE(pipe != nullptr);
    CommandResult result;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, pipe.get())) result.output.append(buf, n);
    const int status = pclose(pipe.release());
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

std::string run_kvctl(const ProcessCluster& cluster, const std::string& args) {
    const auto bin = std::filesystem::path(cluster.node_binary()).parent_path() / "kvctl";
    const std::string command = bin.string() + " " + args + " 2>&1";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
    REQUIRE(pipe != nullptr);
    std::string out;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, pipe.get())) out.append(buf, n);
    return out;
}

Status damage_log_middle(const std::string& wal_path) {
    std::fstream f(wal_path, std::ios::in | std::ios::out | std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    // The log is written with zeros ahead of its records.
    const size_t logged = bytes.find_last_not_of('\0');
    if (logged == std::string::npos || logged < 1000) {
        return {ErrorCode::internal, wal_path + " holds too few records to damage"};
    }
    const size_t middle = logged / 2;
    f.clear();
    f.seekp(static_cast<std::streamoff>(middle));
    f.put(static_cast<char>(bytes[middle] ^ 0x5a));
    f.flush();
    if (!f.good()) return {ErrorCode::internal, "cannot write " + wal_path};
    return {};
}

}  // namespace kv::test
