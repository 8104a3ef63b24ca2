// kvnode's configuration: command-line flags, each also settable in a
// `--config FILE` (INI-style `name = value` lines; flags given on the command
// line win).
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/keys.h"
#include "client/status.h"
#include "gossip/membership.h"
#include "node/env.h"
#include "node/node.h"

namespace kv::node {

struct RuntimeConfig {
    NodeConfig node;
    std::string listen;                   // ZeroMQ endpoint the ROUTER binds
    std::string data_dir;                 // LMDB environment
    std::vector<gossip::Member> members;  // static membership (unused with node.seeds)
    bool sync = true;                     // fsync every commit
    bool write_ahead_log = true;          // commit to a log; LMDB in background checkpoints
    uint64_t wal_checkpoint_mb = 32;      // log written between checkpoints
    bool wal_discard_damaged = false;     // open a damaged log, dropping what follows the damage
    // Commits on a writer thread while the loop handles the next requests
    // (false: the loop commits itself, waiting for each sync).
    bool commit_thread = true;
    // Commits in flight at once with the commit thread: the next batch's log
    // record is written while the one before syncs (node/runtime/commit_thread.h).
    uint32_t commits_in_flight = 2;
    // Runs the node's threads under SCHED_BATCH (run_node): a thread woken by
    // a message or a finished sync waits for the running one's slice instead
    // of preempting it. Same CPU share; fewer involuntary context switches.
    bool sched_batch = true;
    uint64_t map_size_mb = 65536;
    LogLevel log_level = LogLevel::info;
    uint32_t batch_messages_max = 512;  // messages handled per commit (group commit)

    // Transport security (docs/SECURITY.md). With a cluster key the ROUTER is
    // a CURVE server and every DEALER a CURVE client with that key pair;
    // without one the node is in protected mode (loopback only) unless
    // `insecure` says the operator wants it reachable without authentication.
    std::optional<client::Credentials> cluster_key;  // from --cluster-key FILE
    std::string cluster_key_file;
    bool insecure = false;

    // Transport limits (docs/PROTOCOL.md, "Limits"; node/runtime/limits.h).
    // Largest frame a socket accepts (ZMQ_MAXMSGSIZE): a bigger one closes
    // the connection it came on.
    uint64_t frame_bytes_max = uint64_t{64} << 20;
    // Replies queued for one connection (the ROUTER's send high-water mark per
    // pipe). A connection that lets this many pile up loses the reply that did
    // not fit and its requests are dropped for slow_reader_ms.
    int reply_queue_max = 1000;
    uint64_t slow_reader_ms = 2000;
    // Endpoints dialled for gossip (not ring members: seeds and joiners),
    // least recently used first out.
    size_t gossip_endpoints_max = 64;
    // Anonymous memory (RssAnon) past which every client connection is reset
    // (the ROUTER endpoint is unbound and bound again); 0: never.
    uint64_t memory_max_mb = 4096;

    // The Redis protocol gateway (docs/REDIS.md): the endpoint it listens on
    // (empty: none), the user a connection that did not AUTH acts as (empty:
    // AUTH first; only with --cluster-key), and a new connection's level.
    std::string resp_listen;
    std::string resp_default_user;
    proto::Consistency resp_consistency;

    // The Prometheus metrics page (docs/OPERATIONS.md, "Metrics"): the TCP
    // endpoint it is served on, tcp://HOST:PORT (empty: none).
    std::string metrics_listen;

    // Links (client/link_server.h): the same requests as --listen over a
    // transport of our own, tcp://HOST:PORT (empty: none). With --cluster-key
    // every link runs the CURVE handshake against the cluster key and admits
    // the same keys as ZAP; without it, loopback unless --insecure.
    std::string link_listen;
};

// This build's version (the project's, as the package's).
std::string_view kv_version();

enum class TransportMode {
    authenticated,       // --cluster-key: CURVE on every socket, ZAP admits keys
    protected_loopback,  // no key: binds loopback endpoints only
    insecure,            // no key, --insecure: any endpoint, nothing authenticated
};
TransportMode transport_mode(const RuntimeConfig& config);
// The start log's description of the mode.
std::string describe_transport(const RuntimeConfig& config);

// True for endpoints only this machine can reach: tcp://127.x.x.x:PORT,
// tcp://[::1]:PORT, tcp://localhost:PORT, ipc://..., inproc://... Wildcards
// (tcp://*:PORT, tcp://0.0.0.0:PORT), other addresses, interface names and
// other transports are not.
bool is_loopback_endpoint(std::string_view endpoint);

// Parses argv. Returns the configuration, or an error; with --help writes the
// option reference (with --version, the version) to `help` and sets *help_shown.
Result<RuntimeConfig> parse_config(int argc, const char* const* argv, std::ostream& help,
                                   bool* help_shown);

}  // namespace kv::node
