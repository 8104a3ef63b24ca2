#include "node/runtime/config.h"

#include "client/link_socket.h"
#include "client/z85.h"
#include "node/runtime/limits.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <fstream>
#include <ostream>

namespace kv::node {

namespace po = boost::program_options;

namespace {

// Flags of transport security, parsed by describe() into these.
struct SecurityFlags {
    std::string resp_consistency = "quorum";
    std::string cluster_key_file;
    bool insecure = false;
    std::vector<std::string> bootstrap_admins;  // NAME=PUBLIC_KEY_Z85
};

po::options_description describe(RuntimeConfig& c, std::string& peers, std::string& seeds,
                                 std::string& config_file, std::string& log_level,
                                 SecurityFlags& security) {
    po::options_description d(
        "kvnode options (each may also be set in --config FILE as name = value)");
    d.add_options()("help,h", "print this reference and exit")(
        "version", "print the version and exit")("config", po::value(&config_file),
                                                 "read options from this file (INI: name = value)")(
        "id", po::value(&c.node.node_id), "this node's unique id, e.g. n1 (required)")(
        "listen", po::value(&c.listen),
        "ZeroMQ endpoint to bind for clients and peers, e.g. tcp://127.0.0.1:7001 (required)")(
        "data-dir", po::value(&c.data_dir), "directory of the node's LMDB store (required)")(
        "peers", po::value(&peers),
        "all cluster members, this node included: id=endpoint,id=endpoint,... "
        "(default: a cluster of this node alone)")(
        "seeds", po::value(&seeds),
        "gossip membership instead of --peers: endpoints to join through, "
        "ENDPOINT,ENDPOINT,... (the first node may list itself); --listen must be the "
        "address peers dial")("gossip-interval-ms",
                              po::value(&c.node.gossip.interval_ms)->default_value(1000),
                              "gossip: one round (exchange with a random peer) per interval")(
        "phi-suspect", po::value(&c.node.gossip.detector.phi_suspect)->default_value(8.0),
        "gossip: phi accrual threshold at which a silent member becomes suspect")(
        "suspect-to-down-ms",
        po::value(&c.node.gossip.detector.suspect_to_down_ms)->default_value(10000),
        "gossip: a member suspect this long without news is down")(
        "join-wait-ms", po::value(&c.node.join_wait_ms)->default_value(5000),
        "gossip: a seed that hears from no other seed this long starts a cluster alone")(
        "n", po::value(&c.node.n_replicas)->default_value(3), "replicas per key (N)")(
        "vnodes", po::value(&c.node.vnodes)->default_value(256), "virtual nodes per member")(
        "siblings-max", po::value(&c.node.siblings_max)->default_value(100),
        "writes that would leave more siblings fail with sibling_limit")(
        "siblings-warn", po::value(&c.node.siblings_warn)->default_value(25),
        "log a warning when a key reaches this many siblings")(
        "default-deadline-ms", po::value(&c.node.default_deadline_ms)->default_value(5000),
        "deadline of requests that set none")(
        "ping-interval-ms", po::value(&c.node.ping_interval_ms)->default_value(1000),
        "how often peers are pinged")(
        "peer-down-after-ms", po::value(&c.node.peer_down_after_ms)->default_value(3000),
        "a peer silent this long is unreachable: requests needing it fail fast")(
        "max-in-flight", po::value(&c.node.requests_in_flight_max)->default_value(20000),
        "client requests in flight (not answered yet) before new ones get 'overloaded'")(
        "max-in-flight-bytes",
        po::value(&c.node.request_bytes_in_flight_max)->default_value(size_t{256} << 20),
        "bytes of client requests in flight (key + value + context + 2 KiB each)")(
        "connection-max-in-flight", po::value(&c.node.connection_requests_max)->default_value(1000),
        "client requests in flight from one connection")(
        "connection-max-in-flight-bytes",
        po::value(&c.node.connection_bytes_max)->default_value(size_t{32} << 20),
        "bytes of client requests in flight from one connection")(
        "background-max", po::value(&c.node.background_ops_max)->default_value(20000),
        "answered requests kept for read repair or replication beyond w; more are dropped")(
        "background-max-bytes",
        po::value(&c.node.background_bytes_max)->default_value(size_t{128} << 20),
        "bytes of answered requests kept for read repair or replication beyond w")(
        "hinted-handoff", po::value(&c.node.hinted_handoff)->default_value(true),
        "sloppy quorums: a home replica that is down is replaced by a stand-in that keeps a "
        "hint for it and replays it once it is back (false: every request counts home "
        "replicas only, as with --strict, and no hint is kept)")(
        "hints-max-per-target", po::value(&c.node.hints_per_target_max)->default_value(100000),
        "hints kept for one home replica; past it a hinted write is refused as a hint and "
        "the key's range is marked under-replicated")(
        "hint-bytes-max-per-target",
        po::value(&c.node.hint_bytes_per_target_max)->default_value(size_t{256} << 20),
        "bytes of hints kept for one home replica")(
        "hint-replay-rate", po::value(&c.node.hint_replay_keys_per_s)->default_value(5000),
        "hints replayed per second to one home replica that is back")(
        "read-repair", po::value(&c.node.read_repair)->default_value(true),
        "reads repair the replicas they find stale (false: only to test the other repairs)")(
        "read-all-replicas", po::value(&c.node.read_all_replicas)->default_value(false),
        "a get asks every replica at once (false: only the r its level needs; the others "
        "when one fails, when they disagree, or after --read-spares-after-ms)")(
        "read-spares-after-ms", po::value(&c.node.read_spares_after_ms)->default_value(10),
        "a get still unanswered this long after it started asks the replicas it did not "
        "ask yet (checked every 10 ms)")(
        "anti-entropy", po::value(&c.node.anti_entropy)->default_value(true),
        "Merkle-tree exchanges with the other replicas in the background (false: only "
        "kvctl repair starts them; tombstone GC then waits for one)")(
        "anti-entropy-interval-ms",
        po::value(&c.node.anti_entropy_interval_ms)->default_value(2000),
        "one exchange starts every this many ms, with the next ring member in turn: each "
        "member is verified within (members - 1) times this")(
        "tombstone-gc", po::value(&c.node.tombstone_gc)->default_value(true),
        "purge tombstones anti-entropy confirmed on every replica")(
        "tombstone-grace-ms", po::value(&c.node.tombstone_grace_ms)->default_value(60000),
        "a tombstone is purged no sooner than this after this node stored it, and only once "
        "anti-entropy confirmed it")(
        "frame-bytes-max", po::value(&c.frame_bytes_max)->default_value(uint64_t{64} << 20),
        "largest frame accepted; a bigger one closes its connection")(
        "reply-queue-max", po::value(&c.reply_queue_max)->default_value(1000),
        "replies queued for one connection; a connection past it loses replies and its "
        "requests are dropped for --slow-reader-ms")(
        "slow-reader-ms", po::value(&c.slow_reader_ms)->default_value(2000),
        "how long the requests of a connection that does not read its replies are dropped")(
        "gossip-endpoints-max", po::value(&c.gossip_endpoints_max)->default_value(64),
        "endpoints dialled for gossip at once (seeds, joiners); least recently used closed first")(
        "memory-max-mb", po::value(&c.memory_max_mb)->default_value(4096),
        "anonymous memory (RssAnon) past which every connection is reset; 0: never")(
        "sync", po::value(&c.sync)->default_value(true),
        "fsync every commit (false: faster, but a machine crash may lose acknowledged writes)")(
        "wal", po::value(&c.write_ahead_log)->default_value(true),
        "commit each batch as one appended record of a write-ahead log and apply batches to "
        "LMDB in background checkpoints (false: each commit is an LMDB transaction; a log left by "
        "an earlier "
        "start is applied first)")(
        "wal-checkpoint-mb", po::value(&c.wal_checkpoint_mb)->default_value(32),
        "log written between two checkpoints into LMDB; up to about twice this of written data "
        "is held in memory")(
        "wal-discard-damaged", po::bool_switch(&c.wal_discard_damaged),
        "open a write-ahead log damaged in its middle by keeping the records before the damage "
        "and dropping the rest (logged; the node then refills from its replicas before serving "
        "replica reads). Without it such a log stops the node at start")(
        "commit-thread", po::value(&c.commit_thread)->default_value(true),
        "commit on a writer thread while requests go on being handled (false: the event loop "
        "waits for each commit)")(
        "sched-batch", po::value(&c.sched_batch)->default_value(true),
        "run the node's threads under the SCHED_BATCH policy: a thread woken by a message or a "
        "finished sync does not preempt the running one (the same CPU share; fewer context "
        "switches). false: the default policy")(
        "commits-in-flight", po::value(&c.commits_in_flight)->default_value(2),
        "with the commit thread, commits in flight at once, 1 or 2: the next one's log record "
        "is written while the one before syncs (2 needs --wal; without it, commits go one at a "
        "time)")("map-size-mb", po::value(&c.map_size_mb)->default_value(65536),
                 "LMDB map size: the most data the store can hold (address space, not disk)")(
        "batch-max", po::value(&c.batch_messages_max)->default_value(512),
        "messages handled per store commit (group commit)")(
        "log-level", po::value(&log_level)->default_value("info"), "debug, info, warn or error")(
        "cluster-key", po::value(&security.cluster_key_file),
        "credentials file (public and secret lines, mode 0600; kvctl keygen makes one) of the "
        "cluster key pair every node holds: the node then speaks CURVE on every socket and "
        "admits at the handshake only this key (other nodes) and keys of catalog users. "
        "Without it the node runs in protected mode (loopback endpoints only)")(
        "insecure", po::bool_switch(&security.insecure),
        "without --cluster-key, allow a --listen endpoint other hosts can reach; everything "
        "is then served to anyone who can connect, unauthenticated and unencrypted")(
        "bootstrap-admin", po::value(&security.bootstrap_admins)->composing(),
        "NAME=PUBLIC_KEY_Z85 (repeatable): make this user an administrator at start unless "
        "the catalog already has the name (needs --cluster-key)")(
        "resp-listen", po::value(&c.resp_listen),
        "also serve the Redis protocol (RESP2/RESP3) on this TCP endpoint, e.g. "
        "tcp://127.0.0.1:6379 (docs/REDIS.md); plain TCP, so loopback unless the network is "
        "trusted")(
        "resp-default-user", po::value(&c.resp_default_user),
        "with --cluster-key: the user a Redis connection acts as until it AUTHs (default: "
        "none, AUTH first)")(
        "resp-consistency", po::value(&security.resp_consistency)->default_value("quorum"),
        "a Redis connection's level until KV.CONSISTENCY changes it: one, two, three, quorum, "
        "all, or LEVEL-strict (e.g. quorum-strict)")(
        "metrics-listen", po::value(&c.metrics_listen),
        "serve Prometheus metrics over HTTP at http://HOST:PORT/metrics, e.g. 127.0.0.1:9100 "
        "(docs/OPERATIONS.md); unauthenticated, counters only (no keys or values)")(
        "link-listen", po::value(&c.link_listen),
        "also serve the native protocol over links on this TCP endpoint, e.g. "
        "tcp://127.0.0.1:7201 (docs/PROTOCOL.md, \"Links\"): the same requests and credentials "
        "as --listen, without ZeroMQ; clients reach it as link://HOST:PORT");
    return d;
}

// The Redis gateway's settings; the error says what to change.
Status apply_resp(RuntimeConfig& c, const SecurityFlags& flags) {
    std::string level = flags.resp_consistency;
    bool strict = false;
    if (level.size() > 7 && level.ends_with("-strict")) {
        strict = true;
        level.resize(level.size() - 7);
    }
    auto parsed = proto::level_from_name(level);
    if (!parsed) {
        return Status(ErrorCode::invalid_argument,
                      "--resp-consistency must be one, two, three, quorum or all, optionally "
                      "with -strict, got '" +
                          flags.resp_consistency + "'");
    }
    c.resp_consistency = proto::Consistency{*parsed, 0, strict};
    if (c.resp_listen.empty()) return {};
    if (!c.resp_listen.starts_with("tcp://")) {
        return Status(ErrorCode::invalid_argument,
                      "--resp-listen must be a TCP endpoint, e.g. tcp://127.0.0.1:6379");
    }
    if (!c.cluster_key && !c.insecure && !is_loopback_endpoint(c.resp_listen)) {
        return Status(ErrorCode::invalid_argument,
                      "--resp-listen " + c.resp_listen +
                          " is reachable from other hosts, and without --cluster-key nothing "
                          "authenticates who connects: bind a loopback address, or give "
                          "--cluster-key FILE (then Redis clients AUTH), or --insecure");
    }
    if (!c.resp_default_user.empty() && !c.cluster_key) {
        return Status(ErrorCode::invalid_argument,
                      "--resp-default-user needs --cluster-key: without it there are no users "
                      "and every connection may do everything");
    }
    return {};
}

// The link endpoint: tcp://HOST:PORT, loopback unless credentials or --insecure.
Status apply_link(const RuntimeConfig& c) {
    if (c.link_listen.empty()) return {};
    if (auto parsed = client::parse_tcp_endpoint(c.link_listen); !parsed) {
        return Status(ErrorCode::invalid_argument,
                      "--link-listen must be tcp://HOST:PORT, e.g. tcp://127.0.0.1:7201: " +
                          parsed.status().message());
    }
    if (c.link_listen.size() > proto::kIdBytesMax) {
        return Status(ErrorCode::invalid_argument, "--link-listen is over 256 bytes");
    }
    if (!c.cluster_key && !c.insecure && !is_loopback_endpoint(c.link_listen)) {
        return Status(ErrorCode::invalid_argument,
                      "--link-listen " + c.link_listen +
                          " is reachable from other hosts, and without --cluster-key nothing "
                          "authenticates who connects: bind a loopback address, or give "
                          "--cluster-key FILE, or --insecure");
    }
    return {};
}

// The metrics endpoint: HOST:PORT (or tcp://HOST:PORT) made a ZeroMQ endpoint.
Status apply_metrics(RuntimeConfig& c) {
    if (c.metrics_listen.empty()) return {};
    std::string endpoint = c.metrics_listen;
    if (!endpoint.starts_with("tcp://")) endpoint = "tcp://" + endpoint;
    const size_t colon = endpoint.rfind(':');
    const std::string port = colon == std::string::npos ? "" : endpoint.substr(colon + 1);
    const bool numeric = !port.empty() && port.size() <= 5 &&
                         port.find_first_not_of("0123456789") == std::string::npos;
    if (colon <= 6 || !numeric || std::stoul(port) == 0 || std::stoul(port) > 65535) {
        return Status(ErrorCode::invalid_argument,
                      "--metrics-listen must be HOST:PORT, e.g. 127.0.0.1:9100, got '" +
                          c.metrics_listen + "'");
    }
    c.metrics_listen = endpoint;
    return {};
}

// Fills the transport settings from the flags; the error says what to change.
Status apply_security(RuntimeConfig& c, const SecurityFlags& security) {
    c.insecure = security.insecure;
    if (!security.cluster_key_file.empty()) {
        if (security.insecure) {
            return Status(ErrorCode::invalid_argument,
                          "--insecure and --cluster-key are exclusive: with a cluster key every "
                          "connection is authenticated");
        }
        auto key = client::load_credentials(security.cluster_key_file);
        if (!key) {
            return Status(ErrorCode::invalid_argument, "--cluster-key: " + key.status().message());
        }
        c.cluster_key = std::move(key.value());
        c.cluster_key_file = security.cluster_key_file;
    } else if (!security.insecure && !is_loopback_endpoint(c.listen)) {
        return Status(ErrorCode::invalid_argument,
                      "--listen " + c.listen +
                          " is reachable from other hosts, and without --cluster-key nothing "
                          "authenticates who connects (protected mode binds loopback only: "
                          "tcp://127.0.0.1:PORT, tcp://[::1]:PORT, tcp://localhost:PORT, "
                          "ipc://PATH). Give --cluster-key FILE, or --insecure to serve "
                          "anyone who can connect");
    }
    for (const auto& item : security.bootstrap_admins) {
        const size_t eq = item.find('=');  // names have no '='; Z85 keys may
        if (eq == std::string::npos || eq == 0) {
            return Status(ErrorCode::invalid_argument,
                          "--bootstrap-admin must be NAME=PUBLIC_KEY_Z85, got '" + item + "'");
        }
        BootstrapUser user{item.substr(0, eq), item.substr(eq + 1)};
        if (user.name.size() > proto::kIdBytesMax ||
            user.name.find_first_of(" \t,") != std::string::npos) {
            return Status(ErrorCode::invalid_argument,
                          "--bootstrap-admin: the name '" + user.name +
                              "' must be at most 256 bytes without blanks or commas");
        }
        if (!is_curve_key_z85(user.public_key_z85)) {
            return Status(ErrorCode::invalid_argument,
                          "--bootstrap-admin " + user.name +
                              ": the key is not a CURVE public key (40 characters of Z85, as "
                              "kvctl keygen prints)");
        }
        c.node.bootstrap_admins.push_back(std::move(user));
    }
    if (!c.node.bootstrap_admins.empty() && !c.cluster_key) {
        return Status(ErrorCode::invalid_argument,
                      "--bootstrap-admin needs --cluster-key: without it no client key is "
                      "checked, so a user would be meaningless");
    }
    return {};
}

}  // namespace

TransportMode transport_mode(const RuntimeConfig& config) {
    if (config.cluster_key) return TransportMode::authenticated;
    return config.insecure ? TransportMode::insecure : TransportMode::protected_loopback;
}

std::string describe_transport(const RuntimeConfig& config) {
    switch (transport_mode(config)) {
        case TransportMode::authenticated:
            return "mode authenticated: CURVE on every socket, cluster key " +
                   config.cluster_key->pair.public_z85 + " from " + config.cluster_key_file +
                   "; the handshake admits only the cluster key and catalog users";
        case TransportMode::protected_loopback:
            return "mode protected: no --cluster-key, so loopback endpoints only and no "
                   "authentication (anyone on this host may do anything)";
        case TransportMode::insecure:
            return "mode INSECURE: no --cluster-key and --insecure given: anyone who can reach " +
                   config.listen +
                   " may read, write, join and remove members, unauthenticated and unencrypted";
    }
    return "mode ?";
}

bool is_loopback_endpoint(std::string_view endpoint) {
    for (std::string_view local : {"ipc://", "inproc://"}) {
        if (endpoint.substr(0, local.size()) == local) return true;
    }
    constexpr std::string_view kTcp = "tcp://";
    if (endpoint.substr(0, kTcp.size()) != kTcp) return false;
    std::string_view rest = endpoint.substr(kTcp.size());
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return false;
    const std::string_view host = rest.substr(0, colon);
    if (host == "localhost" || host == "[::1]") return true;
    // 127.0.0.0/8: four dot-separated decimal parts, the first 127.
    if (host.substr(0, 4) != "127.") return false;
    int dots = 0, digits = 0, value = 0;
    for (char ch : host) {
        if (ch == '.') {
            if (digits == 0) return false;
            ++dots;
            digits = value = 0;
        } else if (ch >= '0' && ch <= '9') {
            value = value * 10 + (ch - '0');
            if (++digits > 3 || value > 255) return false;
        } else {
            return false;
        }
    }
    return dots == 3 && digits > 0;
}

Result<RuntimeConfig> parse_config(int argc, const char* const* argv, std::ostream& help,
                                   bool* help_shown) {
    RuntimeConfig c;
    std::string peers, seeds, config_file, log_level;
    SecurityFlags security;
    *help_shown = false;
    auto desc = describe(c, peers, seeds, config_file, log_level, security);
    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, desc), vm);
        if (vm.count("help")) {
            help << "kvnode: one node of the key-value store\n\n"
                 << "Transport modes (docs/SECURITY.md, docs/OPERATIONS.md):\n"
                 << "  authenticated  --cluster-key FILE: CURVE on every socket; the handshake\n"
                 << "                 admits the cluster key (nodes) and catalog users' keys\n"
                 << "  protected      no --cluster-key: --listen must be a loopback endpoint\n"
                 << "  INSECURE       no --cluster-key, --insecure: any --listen, no checks\n\n"
                 << desc << "\n";
            *help_shown = true;
            return c;
        }
        if (vm.count("version")) {
            help << "kvnode (kvstore) " << KV_VERSION << "\n";
            *help_shown = true;
            return c;
        }
        if (vm.count("config")) {
            std::ifstream in(vm["config"].as<std::string>());
            if (!in) {
                return Status(ErrorCode::invalid_argument,
                              "cannot read config file " + vm["config"].as<std::string>());
            }
            po::store(po::parse_config_file(in, desc), vm);
        }
        po::notify(vm);
    } catch (const po::error& e) {
        return Status(ErrorCode::invalid_argument, e.what());
    }
    for (const char* required : {"id", "listen", "data-dir"}) {
        const std::string& v = std::string(required) == "id"       ? c.node.node_id
                               : std::string(required) == "listen" ? c.listen
                                                                   : c.data_dir;
        if (v.empty())
            return Status(ErrorCode::invalid_argument,
                          std::string("--") + required + " is required");
    }
    // The actor id is the node id plus 17 characters and must fit the wire's id limit.
    if (c.node.node_id.size() > 200 || c.node.node_id.find_first_of(",= \t") != std::string::npos) {
        return Status(ErrorCode::invalid_argument,
                      "--id must be at most 200 bytes, without commas, '=' or blanks");
    }
    if (!seeds.empty()) {
        if (!peers.empty()) {
            return Status(ErrorCode::invalid_argument, "--seeds and --peers are exclusive");
        }
        size_t start = 0;
        while (start <= seeds.size()) {
            const size_t comma = std::min(seeds.find(',', start), seeds.size());
            const std::string seed = seeds.substr(start, comma - start);
            if (seed.empty() || seed.size() > proto::kIdBytesMax) {
                return Status(ErrorCode::invalid_argument,
                              "--seeds: empty or over-long endpoint in '" + seeds + "'");
            }
            c.node.seeds.push_back(seed);
            start = comma + 1;
        }
        c.node.endpoint = c.listen;
        if (c.listen.size() > proto::kIdBytesMax) {
            return Status(ErrorCode::invalid_argument, "--listen is over 256 bytes");
        }
        if (c.node.gossip.interval_ms < 10 || c.node.gossip.detector.phi_suspect <= 0) {
            return Status(ErrorCode::invalid_argument,
                          "--gossip-interval-ms must be >= 10 and --phi-suspect > 0");
        }
        // The detector's first guess of the heartbeat rate is the round interval.
        c.node.gossip.detector.first_interval_ms = c.node.gossip.interval_ms;
        c.node.gossip.detector.interval_max_ms =
            std::max(c.node.gossip.detector.interval_max_ms, 10 * c.node.gossip.interval_ms);
        c.members = {gossip::Member{c.node.node_id, c.listen}};
    } else if (peers.empty()) {
        c.members = {gossip::Member{c.node.node_id, c.listen}};
    } else {
        auto parsed = gossip::parse_member_list(peers);
        if (!parsed) return parsed.status();
        c.members = std::move(parsed.value());
        bool self = false;
        for (const auto& m : c.members) self = self || m.id == c.node.node_id;
        if (!self)
            return Status(ErrorCode::invalid_argument, "--peers must include this node's --id");
    }
    if (c.node.n_replicas < 1 || c.node.n_replicas > proto::kReplicasMax) {
        return Status(ErrorCode::invalid_argument, "--n must be between 1 and 16");
    }
    if (c.node.vnodes < 1 || c.node.vnodes > 4096) {
        return Status(ErrorCode::invalid_argument, "--vnodes must be between 1 and 4096");
    }
    if (c.node.tombstone_gc && c.node.tombstone_grace_ms < kTombstoneGraceMinMs) {
        return Status(ErrorCode::invalid_argument,
                      "--tombstone-grace-ms must be at least " +
                          std::to_string(kTombstoneGraceMinMs) +
                          ": it bounds how late a version sent before a delete may still "
                          "arrive (a peer connection silent for " +
                          std::to_string(kPeerHeartbeatTimeoutMs) + " ms is closed)");
    }
    if (c.node.siblings_max < 1)
        return Status(ErrorCode::invalid_argument, "--siblings-max must be >= 1");
    // One request of the largest size (key, value and context limits) must
    // always fit, or a client could never send it.
    constexpr size_t kRequestBytesMin = size_t{2} << 20;
    if (c.node.request_bytes_in_flight_max < kRequestBytesMin ||
        c.node.connection_bytes_max < kRequestBytesMin ||
        c.node.background_bytes_max < kRequestBytesMin) {
        return Status(ErrorCode::invalid_argument,
                      "--max-in-flight-bytes, --connection-max-in-flight-bytes and "
                      "--background-max-bytes must be at least 2 MiB (one request of the "
                      "largest size)");
    }
    if (c.node.requests_in_flight_max < 1 || c.node.connection_requests_max < 1) {
        return Status(ErrorCode::invalid_argument,
                      "--max-in-flight and --connection-max-in-flight must be >= 1");
    }
    // A client frame of the largest request must pass (client/protocol.h).
    if (c.frame_bytes_max < proto::kFrameBytesMax) {
        return Status(ErrorCode::invalid_argument, "--frame-bytes-max must be at least 20 MiB");
    }
    if (c.node.anti_entropy_interval_ms < 10) {
        return Status(ErrorCode::invalid_argument, "--anti-entropy-interval-ms must be >= 10");
    }
    if (c.node.hint_replay_keys_per_s < 1) {
        return Status(ErrorCode::invalid_argument, "--hint-replay-rate must be >= 1");
    }
    if (c.reply_queue_max < 1 || c.gossip_endpoints_max < 1) {
        return Status(ErrorCode::invalid_argument,
                      "--reply-queue-max and --gossip-endpoints-max must be >= 1");
    }
    if (c.batch_messages_max < 1)
        return Status(ErrorCode::invalid_argument, "--batch-max must be >= 1");
    if (c.commits_in_flight < 1 || c.commits_in_flight > 2)
        return Status(ErrorCode::invalid_argument, "--commits-in-flight must be 1 or 2");
    if (c.wal_checkpoint_mb < 1 || c.wal_checkpoint_mb > 4096)
        return Status(ErrorCode::invalid_argument, "--wal-checkpoint-mb must be 1 to 4096");
    if (Status secured = apply_security(c, security); !secured.ok()) return secured;
    if (Status resp = apply_resp(c, security); !resp.ok()) return resp;
    if (Status metrics = apply_metrics(c); !metrics.ok()) return metrics;
    if (Status link = apply_link(c); !link.ok()) return link;
    // Advertised to members as it is, so only an address they can dial: a
    // wildcard serves clients but members keep to the ROUTER.
    if (auto parsed = client::parse_tcp_endpoint(c.link_listen);
        parsed && parsed->host != "*" && parsed->host != "0.0.0.0" && parsed->host != "::") {
        c.node.link_endpoint = c.link_listen;
    }
    if (log_level == "debug") {
        c.log_level = LogLevel::debug;
    } else if (log_level == "info") {
        c.log_level = LogLevel::info;
    } else if (log_level == "warn") {
        c.log_level = LogLevel::warn;
    } else if (log_level == "error") {
        c.log_level = LogLevel::error;
    } else {
        return Status(ErrorCode::invalid_argument,
                      "--log-level must be debug, info, warn or error");
    }
    return c;
}

std::string_view kv_version() {
    return KV_VERSION;
}

}  // namespace kv::node
