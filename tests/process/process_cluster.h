// Harness for multi-process tests: real kvnode processes on 127.0.0.1, started
// with fork/execv, each with its own data directory and log file under one
// temporary directory, plus a raw client that speaks single msgpack frames over
// a ZeroMQ DEALER.
//
// The binary is $KV_BIN_DIR/kvnode$KV_VARIANT_SUFFIX (set by kv_test in CMake, so
// the _asan test variant runs kvnode_asan); without KV_BIN_DIR it is looked up
// next to the test binary.
//
// Thread-safety: none; one test thread owns a ProcessCluster and its RawClients.
// Every wait is bounded. The destructor SIGKILLs every node still running, prints
// the tail of every node log when the test failed, and removes the temp dir
// (kept when KV_KEEP_TEST_DIRS is set).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "client/client.h"
#include "client/protocol.h"
#include "client/status.h"

namespace kv::test {

constexpr int kReadyTimeoutMs = 10'000;
constexpr int kExitTimeoutMs = 10'000;
constexpr int kReplyTimeoutMs = 10'000;

class ProcessCluster {
  public:
    // `name` only labels the temp dir (/tmp/kv-<name>-XXXXXX).
    explicit ProcessCluster(std::string_view name);
    ~ProcessCluster();
    ProcessCluster(const ProcessCluster&) = delete;
    ProcessCluster& operator=(const ProcessCluster&) = delete;

    // Declares nodes n1..n<count> on free loopback ports, each given every node as
    // a peer and --n n_replicas. Starts nothing. Call once.
    Status add_nodes(size_t count, uint32_t n_replicas);

    // Gossip instead of --peers: nodes started after this get --seeds (node 0's
    // endpoint, which node 0 itself also gets) and these extra flags (e.g.
    // small --gossip-interval-ms / --suspect-to-down-ms). Call before start.
    void use_gossip(std::vector<std::string> extra_flags);

    // Makes a cluster key pair (root dir/cluster.key) that every node started
    // from now on gets with --cluster-key; wait_ready then talks CURVE with it.
    Status use_cluster_key();
    // The cluster key as client credentials (its own pair, its public key as
    // the server's); nullopt before use_cluster_key().
    const std::optional<client::CurveCredentials>& cluster_credentials() const {
        return cluster_curve_;
    }
    const std::string& cluster_key_file() const { return cluster_key_file_; }

    size_t size() const { return nodes_.size(); }
    const std::string& node_id(size_t i) const { return nodes_.at(i).id; }
    const std::string& endpoint(size_t i) const { return nodes_.at(i).endpoint; }
    const std::string& data_dir(size_t i) const { return nodes_.at(i).data_dir; }
    pid_t pid(size_t i) const { return nodes_.at(i).pid; }
    const std::string& node_binary() const { return binary_; }

    // Flags added to node i's command line from its next start on (e.g.
    // {"--map-size-mb", "1"}); replaces any set before.
    void set_extra_flags(size_t i, std::vector<std::string> flags) {
        nodes_.at(i).extra_flags = std::move(flags);
    }
    // With gossip, node i's --seeds from its next start on (instead of node 0's
    // endpoint alone).
    void set_seeds(size_t i, std::vector<std::string> endpoints) {
        nodes_.at(i).seeds = std::move(endpoints);
    }
    // Node i binds this endpoint (e.g. tcp://*:PORT with its own port) instead
    // of its loopback endpoint from its next start on; clients still dial the latter.
    void set_listen(size_t i, std::string bind_endpoint) {
        nodes_.at(i).listen = std::move(bind_endpoint);
    }
    uint16_t port(size_t i) const { return nodes_.at(i).port; }
    // Node i gets this --cluster-key from its next start on instead of the
    // cluster's (empty: the cluster's again).
    void set_cluster_key_file(size_t i, std::string path) {
        nodes_.at(i).cluster_key_file = std::move(path);
    }
    // Forks and execs node i (not running) on its data dir; does not wait.
    Status start(size_t i);
    // Bounded wait until node i answers a StatusRequest with its own id; fails
    // early, with the log tail, when the process exits.
    Status wait_ready(size_t i, int timeout_ms = kReadyTimeoutMs);
    Status start_and_wait(size_t i);
    // Starts every node, waits for each to answer, then for each to end the
    // refill a node started on an empty data directory does (static lists).
    Status start_all();
    // Bounded wait until node i's status no longer reports it refilling.
    Status wait_refilled(size_t i, int timeout_ms = kReadyTimeoutMs);

    // True while node i's process has not exited (reaps it when it has).
    bool alive(size_t i);
    // SIGKILL and reap (bounded): a crash that loses everything not yet durable.
    Status kill_hard(size_t i);
    // SIGTERM, bounded wait, SIGKILL if it overran. The exit code on a normal
    // exit, 128 + signal when killed by one; an error Status when it overran.
    Result<int> terminate(size_t i, int timeout_ms = kExitTimeoutMs);
    // Bounded wait for node i to exit by itself; its exit code.
    Result<int> wait_exit(size_t i, int timeout_ms = kExitTimeoutMs);
    // kill_hard (if running), then start_and_wait on the same port and data dir.
    Status restart(size_t i);

    // The last `lines` lines of node i's log (all its runs, each headed by a marker).
    std::string log_tail(size_t i, size_t lines = 40) const;
    std::string all_log_tails(size_t lines = 40) const;

  private:
    struct Node {
        std::string id;
        uint16_t port = 0;
        std::string endpoint;
        std::string data_dir;
        std::string log_path;
        pid_t pid = -1;  // -1 when not running (reaped or never started)
        int starts = 0;
        std::vector<std::string> extra_flags;
        std::vector<std::string> seeds;  // empty: node 0's endpoint
        std::string listen;              // empty: `endpoint`
        std::string cluster_key_file;    // empty: the cluster's, if any
    };
    std::vector<std::string> node_args(const Node& node) const;
    std::string peers_arg() const;
    Result<int> reap(Node& node, int timeout_ms);

    std::string root_dir_;
    std::string binary_;
    uint32_t n_replicas_ = 1;
    bool gossip_ = false;
    std::vector<std::string> gossip_flags_;
    std::vector<Node> nodes_;
    uint64_t failures_at_start_ = 0;
    std::optional<client::CurveCredentials> cluster_curve_;
    std::string cluster_key_file_;
};

// One DEALER socket connected to a node. Frames go out as they are (so tests can
// send garbage); replies come back decoded with proto::decode. A node answers a
// connection that sent a batch frame with batch frames (client/frame_batch.h):
// their messages are returned one at a time, as if each had come alone.
class RawClient {
  public:
    // With `curve`, a CURVE client with those keys; else plain ZMTP.
    explicit RawClient(const std::string& endpoint,
                       const std::optional<client::CurveCredentials>& curve = std::nullopt);

    Status send_frame(std::string_view frame);
    // One ZeroMQ message of several frames (a protocol violation on purpose).
    Status send_multipart(const std::vector<std::string>& frames);
    Status send(const proto::Message& message);

    // The next reply frame; a timeout error when none arrives in time, an error
    // when a reply has more than one frame.
    Result<std::string> recv_frame(int timeout_ms = kReplyTimeoutMs);
    // recv_frame + decode; a reply that does not decode is an error.
    Result<proto::Message> recv(int timeout_ms = kReplyTimeoutMs);
    // Exactly `count` replies within timeout_ms overall (pipelining: send many, then collect).
    Result<std::vector<proto::Message>> collect(size_t count, int timeout_ms = kReplyTimeoutMs);
    // Sends and waits for the reply carrying the same id, dropping others.
    Result<proto::Message> request(const proto::Message& message, int timeout_ms = kReplyTimeoutMs);

  private:
    zmq::socket_t socket_;
    std::deque<std::string> batched_;  // the rest of the last batch frame received
};

// A fresh request id, unique within the test process.
uint64_t next_request_id();

// The error code a reply carries (ErrorResponse, GetResponse, WriteResponse), or
// nullopt for a reply without one.
std::optional<ErrorCode> reply_code(const proto::Message& reply);

// "ErrorResponse{id=3 code=bad_request message=...}" style text for failure messages.
std::string describe(const proto::Message& message);

// Node i's status reply, or nullopt when it does not give one within 2 s.
std::optional<proto::StatusResponse> status_of(const ProcessCluster& cluster, size_t i);

// Polls the status of every node in `observers` every 50 ms until `holds` is
// true of each reply; false when timeout_ms passes first.
bool wait_for_status(const ProcessCluster& cluster, const std::vector<size_t>& observers,
                     int timeout_ms,
                     const std::function<bool(const proto::StatusResponse&)>& holds);

// A loopback port nothing listens on, never handed out before in this process.
uint16_t free_loopback_port();

// Runs a shell command; its exit code and what it printed (stdout and stderr).
// The command itself must bound its run time (e.g. with timeout(1)).
struct CommandResult {
    int exit_code = -1;
    std::string output;
};
CommandResult run_command(const std::string& command);

// Runs kvctl (next to the kvnode under test) with `args` and returns what it
// printed, stdout and stderr together.
std::string run_kvctl(const ProcessCluster& cluster, const std::string& args);

// Changes one byte in the middle of the records of a write-ahead log file (a
// node's DATA_DIR/wal-0, the node stopped), as damage on disk would: kvnode
// then refuses to start unless given --wal-discard-damaged.
Status damage_log_middle(const std::string& wal_path);

}  // namespace kv::test

// REQUIRE that a Status is ok, showing its text when it is not.
#define KV_REQUIRE_OK(expr)                     \
    do {                                        \
        const ::kv::Status kv_status_ = (expr); \
        INFO(kv_status_.to_string());           \
        REQUIRE(kv_status_.ok());               \
    } while (0)
