// kvctl: command-line data and admin client (docs/CLIENT.md).
// Exit codes: 0 done, 1 key not found, 2 any other error (one line on stderr).
#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"
#include "client/json_util.h"
#include "client/keys.h"
#include "client/metrics.h"
#include "client/z85.h"

namespace po = boost::program_options;
using kv::ErrorCode;
using kv::Result;
using kv::Status;
using kv::client::base64_decode;
using kv::client::base64_encode;
using kv::client::is_valid_utf8;
using kv::client::json_quote;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitNotFound = 1;
constexpr int kExitError = 2;

constexpr const char* kUsage =
    "usage: kvctl [options] get|local-get KEY\n"
    "       kvctl [options] put KEY VALUE|-\n"
    "       kvctl [options] del KEY\n"
    "       kvctl [options] status\n"
    "       kvctl [options] stats\n"
    "       kvctl [options] owners KEY\n"
    "       kvctl [options] members\n"
    "       kvctl [options] leave\n"
    "       kvctl [options] removenode ID\n"
    "       kvctl [--server-key Z85] [--force] keygen FILE\n"
    "       kvctl [options] user add NAME PUBLIC_KEY | user del NAME | user list\n"
    "       kvctl [options] grant|revoke NAME read|write|admin PREFIX\n"
    "\n"
    "Commands:\n"
    "  get KEY          read KEY at the requested consistency; prints the value and a\n"
    "                   newline. With several siblings, prints each on its own line\n"
    "                   and says on stderr how many there are (use --json to get them\n"
    "                   unambiguously, with the context to resolve them).\n"
    "  local-get KEY    the first node's own replica of KEY, without coordination.\n"
    "  put KEY VALUE    write VALUE; VALUE '-' reads the value from stdin (binary-safe).\n"
    "                   Without --context this is a blind write: it becomes a sibling of\n"
    "                   whatever the key holds. Prints nothing unless --json.\n"
    "  del KEY          delete KEY (a tombstone). Prints nothing unless --json.\n"
    "  status           the node's view of the cluster: members, addresses, and whether\n"
    "                   each answers; then the range transfers under way (joins, leaves):\n"
    "                   peer, direction (in/out), state, ranges, keys moved so far;\n"
    "                   'leave:' when this node was asked to leave (queued, leaving,\n"
    "                   left, or refused and why); 'removal:' for a removenode it was\n"
    "                   asked for (queued, progress, done, refused) or one under way;\n"
    "                   the hints it holds as a stand-in,\n"
    "                   per target (the home replica they are for): keys, bytes, age\n"
    "                   of the oldest in ms, hints the target made durable and hints\n"
    "                   refused (store full) since the node started, and whether a\n"
    "                   replay is in flight; and how many token ranges it marked\n"
    "                   under-replicated because a hint for them was refused.\n"
    "  stats            the first --node's metrics, exactly as its --metrics-listen page\n"
    "                   serves them (Prometheus text: request counts and latencies by\n"
    "                   operation and level, errors by code, commits, connections,\n"
    "                   hints, anti-entropy, transfers, members by status;\n"
    "                   docs/OPERATIONS.md). --json: {\"families\":[{\"name\",\"type\",\n"
    "                   \"help\",\"samples\":[{\"name\",\"labels\",\"value\"}]}]}.\n"
    "  owners KEY       where KEY lives as the first --node sees it now: its home\n"
    "                   replicas in preference order, each up or down (that node's\n"
    "                   failure detector), then the stand-ins a write would use for\n"
    "                   the homes down, and the new owners while its range moves.\n"
    "                   Needs a read grant covering KEY.\n"
    "  members          each member the node knows: id, address, status (joining, up,\n"
    "                   suspect, down, leaving, left; or up/unreachable with --peers),\n"
    "                   tokens (virtual nodes) and share of the ring it owns.\n"
    "  leave            the first --node queues its leave: once every member has seen\n"
    "                   it and no other join or leave is under way (one at a time,\n"
    "                   cluster-wide), it hands its ranges to their new owners, then\n"
    "                   leaves the ring (status 'left'). Refused when fewer than n\n"
    "                   members would remain. Returns at once; watch it with\n"
    "                   'kvctl --node ENDPOINT status'; stop the node once it is left.\n"
    "  repair           the first --node starts an anti-entropy exchange with every\n"
    "                   other ring member now (--range START:END: only that ring range),\n"
    "                   then prints progress until all are done (--no-wait: at once).\n"
    "                   --stop-waiting-for ID[,ID]: instead, a node refilling after a\n"
    "                   lost disk stops waiting for those members (down for good);\n"
    "                   what only they held is missing from its reads until they return.\n"
    "                   Needs an admin grant.\n"
    "  removenode ID    the first --node removes member ID, down for good (killed, its\n"
    "                   data gone): in its turn (as leave), ID's ranges are copied from\n"
    "                   their surviving replicas to their new owners, then ID is left.\n"
    "                   Refused when ID is not a member, is the node itself, is not\n"
    "                   reported down by the failure detector, when fewer than n members\n"
    "                   would remain, or while another change is under way. Needs the\n"
    "                   admin grant. Watch it with 'kvctl status' ('removal:').\n"
    "  user add NAME PUBLIC_KEY\n"
    "                   add a user: NAME (1-64 of A-Z a-z 0-9 . _ -) owns the CURVE\n"
    "                   public key PUBLIC_KEY (40 Z85 characters, as keygen prints).\n"
    "  user del NAME    delete a user and its grants.\n"
    "  user list        the users, their public keys and grants (--json: a document).\n"
    "  grant NAME read|write|admin PREFIX\n"
    "                   let NAME read (get, local-get, owners) or write (put, del) the keys\n"
    "                   that start with PREFIX ('' for every key); admin (users,\n"
    "                   grants, leave, removenode; includes read and write) only with\n"
    "                   PREFIX ''.\n"
    "  revoke NAME read|write|admin PREFIX\n"
    "                   take such a grant back. The user and grant commands need the\n"
    "                   admin grant; a change spreads to every node within seconds\n"
    "                   (docs/SECURITY.md).\n"
    "  keygen FILE      make a CURVE key pair, write it to FILE (mode 0600; with\n"
    "                   --server-key also the 'server' line) and print the public key\n"
    "                   in Z85. Refuses to replace an existing FILE unless --force.\n"
    "\n"
    "Keys (docs/SECURITY.md): a node started with --cluster-key admits only known keys.\n"
    "kvctl uses the credentials file given by --key, else $KV_KEY_FILE, else\n"
    "$XDG_CONFIG_HOME/kvstore/credentials (default ~/.config/kvstore/credentials) when it\n"
    "exists; the cluster's public key comes from --server-key or the file's 'server'\n"
    "line. --no-key talks plain ZMTP (a node without --cluster-key). A node that\n"
    "refuses the key fails the command with 'unauthorized' at once.\n"
    "\n"
    "JSON output (--json): get prints\n"
    "  {\"key\":..,\"encoding\":\"utf8\",\"values\":[..],\"context\":\"<base64>\",\"info\":{..}}\n"
    "  \"encoding\" is \"utf8\" when the key and every value are valid UTF-8 (then they are\n"
    "  plain JSON strings) and \"base64\" otherwise (then the key and all values are\n"
    "  base64). The context is always base64; pass it back with --context. put and del\n"
    "  print {\"key\":..,\"encoding\":..,\"context\":\"<base64>\",\"info\":{..}}.\n"
    "\n"
    "Exit codes: 0 done, 1 key not found, 2 any other error (a one-line message\n"
    "\"kvctl: <error_code>: <details>\" on stderr).\n"
    "\n"
    "Failover: with several --node endpoints, reads that get no answer are retried on\n"
    "the next node; writes that got no answer are not (they fail with timeout: the\n"
    "write may or may not have happened).\n";

struct Args {
    std::vector<std::string> nodes;
    std::string consistency = "quorum";
    std::optional<uint32_t> r;
    std::optional<uint32_t> w;
    bool strict = false;
    uint64_t timeout_ms = 5000;
    bool json = false;
    std::optional<std::string> context_b64;
    std::vector<std::string> positional;
    std::optional<std::string> key_file;
    std::optional<std::string> server_key;
    bool no_key = false;
    bool force = false;                         // keygen: replace an existing file
    std::optional<std::string> range;           // repair: START:END
    bool no_wait = false;                       // repair: return once started
    std::vector<std::string> stop_waiting_for;  // repair: members the refill lets go
    bool stop_waiting_given = false;            // repair: --stop-waiting-for was given
};

int fail(const Status& status) {
    std::cerr << "kvctl: " << status.to_string() << "\n";
    return status.code() == ErrorCode::not_found ? kExitNotFound : kExitError;
}

int fail(ErrorCode code, const std::string& message) {
    return fail(Status(code, message));
}

// "--node a,b --node c" -> {a, b, c}.
std::vector<std::string> split_endpoints(const std::vector<std::string>& raw) {
    std::vector<std::string> out;
    for (const auto& item : raw) {
        size_t start = 0;
        while (start <= item.size()) {
            size_t comma = item.find(',', start);
            if (comma == std::string::npos) comma = item.size();
            std::string part = item.substr(start, comma - start);
            auto first = part.find_first_not_of(" \t");
            auto last = part.find_last_not_of(" \t");
            if (first != std::string::npos) out.push_back(part.substr(first, last - first + 1));
            start = comma + 1;
        }
    }
    return out;
}

std::string json_info(const kv::proto::ReplyInfo& info) {
    return "{\"replicas_asked\":" + std::to_string(info.replicas_asked) +
           ",\"replicas_answered\":" + std::to_string(info.replicas_answered) +
           ",\"stand_in_used\":" + (info.stand_in_used ? "true" : "false") +
           ",\"sibling_count\":" + std::to_string(info.sibling_count) + "}";
}

// Key and values share one encoding so a reader needs to check one field.
bool all_utf8(const std::string& key, const std::vector<std::string>& values) {
    if (!is_valid_utf8(key)) return false;
    for (const auto& v : values) {
        if (!is_valid_utf8(v)) return false;
    }
    return true;
}

std::string json_bytes(const std::string& bytes, bool utf8) {
    return utf8 ? json_quote(bytes) : json_quote(base64_encode(bytes));
}

std::string json_key_head(const std::string& key, bool utf8) {
    return "{\"key\":" + json_bytes(key, utf8) + ",\"encoding\":\"" + (utf8 ? "utf8" : "base64") +
           "\"";
}

void write_raw_line(const std::string& bytes) {
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    std::fputc('\n', stdout);
}

int print_get(const std::string& key, const kv::client::GetResult& r, bool json) {
    if (json) {
        bool utf8 = all_utf8(key, r.values);
        std::string out = json_key_head(key, utf8) + ",\"values\":[";
        for (size_t i = 0; i < r.values.size(); ++i) {
            if (i > 0) out += ',';
            out += json_bytes(r.values[i], utf8);
        }
        out += "],\"context\":\"" + base64_encode(r.context) + "\",\"info\":" + json_info(r.info) +
               "}";
        write_raw_line(out);
        return kExitOk;
    }
    if (r.values.size() > 1) std::cerr << "kvctl: " << r.values.size() << " siblings\n";
    for (const auto& v : r.values) write_raw_line(v);
    return kExitOk;
}

int print_write(const std::string& key, const kv::client::WriteResult& r, bool json) {
    if (!json) return kExitOk;
    bool utf8 = is_valid_utf8(key);
    write_raw_line(json_key_head(key, utf8) + ",\"context\":\"" + base64_encode(r.context) +
                   "\",\"info\":" + json_info(r.info) + "}");
    return kExitOk;
}

int print_status(const std::string& endpoint, const kv::proto::StatusResponse& s, bool json) {
    if (json) {
        std::string out = "{\"endpoint\":" + json_quote(endpoint) +
                          ",\"node_id\":" + json_quote(s.node_id) +
                          ",\"n_replicas\":" + std::to_string(s.n_replicas) +
                          ",\"n_effective\":" + std::to_string(s.n_effective) +
                          ",\"keys_stored\":" + std::to_string(s.keys_stored) + ",\"members\":[";
        for (size_t i = 0; i < s.members.size(); ++i) {
            const auto& m = s.members[i];
            if (i > 0) out += ',';
            out += "{\"node_id\":" + json_quote(m.node_id) +
                   ",\"endpoint\":" + json_quote(m.endpoint) + ",\"state\":" + json_quote(m.state) +
                   ",\"last_seen_ms_ago\":" + std::to_string(m.last_seen_ms_ago) + "}";
        }
        out += "],\"transfers\":[";
        for (size_t i = 0; i < s.transfers.size(); ++i) {
            const auto& t = s.transfers[i];
            if (i > 0) out += ',';
            out += "{\"peer\":" + json_quote(t.peer) + ",\"direction\":" + json_quote(t.direction) +
                   ",\"state\":" + json_quote(t.state) + ",\"ranges\":" + std::to_string(t.ranges) +
                   ",\"keys\":" + std::to_string(t.keys) + "}";
        }
        out += "]";
        if (!s.leave.empty()) out += ",\"leave\":" + json_quote(s.leave);
        if (!s.removal.empty()) out += ",\"removal\":" + json_quote(s.removal);
        out += ",\"hints\":[";
        for (size_t i = 0; i < s.hints.size(); ++i) {
            const auto& h = s.hints[i];
            if (i > 0) out += ',';
            out += "{\"target\":" + json_quote(h.target) + ",\"keys\":" + std::to_string(h.keys) +
                   ",\"bytes\":" + std::to_string(h.bytes) +
                   ",\"oldest_ms\":" + std::to_string(h.oldest_ms) +
                   ",\"replayed\":" + std::to_string(h.replayed) +
                   ",\"refused\":" + std::to_string(h.refused) +
                   ",\"replaying\":" + (h.replaying ? "true" : "false") + "}";
        }
        out += "],\"under_replicated_ranges\":" + std::to_string(s.under_replicated_ranges);
        if (s.anti_entropy) {
            const auto& ae = *s.anti_entropy;
            out += ",\"anti_entropy\":{\"tree_ready\":" +
                   std::string(ae.tree_ready ? "true" : "false") +
                   ",\"refilling\":" + std::string(ae.refilling ? "true" : "false") +
                   ",\"keys\":" + std::to_string(ae.keys_indexed) +
                   ",\"tombstones\":" + std::to_string(ae.tombstones) +
                   ",\"tombstones_purged\":" + std::to_string(ae.tombstones_purged) +
                   ",\"exchanges\":" + std::to_string(ae.exchanges) +
                   ",\"exchanges_failed\":" + std::to_string(ae.exchanges_failed) +
                   ",\"keys_received\":" + std::to_string(ae.keys_received) +
                   ",\"keys_sent\":" + std::to_string(ae.keys_sent) +
                   ",\"messages\":" + std::to_string(ae.messages) +
                   ",\"bytes_sent\":" + std::to_string(ae.bytes_sent) +
                   ",\"bytes_received\":" + std::to_string(ae.bytes_received) +
                   ",\"repair\":{\"total\":" + std::to_string(ae.repair_total) +
                   ",\"done\":" + std::to_string(ae.repair_done) +
                   ",\"failed\":" + std::to_string(ae.repair_failed) + "},\"peers\":[";
            for (size_t i = 0; i < ae.peers.size(); ++i) {
                const auto& v = ae.peers[i];
                if (i > 0) out += ',';
                out += "{\"peer\":" + json_quote(v.peer) + ",\"verified_ms_ago\":" +
                       (v.verified ? std::to_string(v.verified_ms_ago) : std::string("null")) +
                       ",\"refill_pending\":" + (v.refill_pending ? "true" : "false") + "}";
            }
            out += "]}";
        }
        write_raw_line(out + "}");
        return kExitOk;
    }
    // The configured n, and the replicas a key has in this node's ring now
    // when fewer (levels needing more answer unavailable until members join).
    std::string n_text = "n=" + std::to_string(s.n_replicas);
    if (s.n_effective != s.n_replicas) {
        n_text += " (effective " + std::to_string(s.n_effective) + ": the ring has fewer members)";
    }
    std::printf("node %s (answered at %s), %s, keys stored: %llu\n", s.node_id.c_str(),
                endpoint.c_str(), n_text.c_str(), static_cast<unsigned long long>(s.keys_stored));
    if (!s.leave.empty()) std::printf("leave: %s\n", s.leave.c_str());
    if (!s.removal.empty()) std::printf("removal: %s\n", s.removal.c_str());
    std::printf("%-20s %-32s %-12s %s\n", "NODE", "ENDPOINT", "STATE", "LAST_SEEN_MS_AGO");
    for (const auto& m : s.members) {
        std::printf("%-20s %-32s %-12s %llu\n", m.node_id.c_str(), m.endpoint.c_str(),
                    m.state.c_str(), static_cast<unsigned long long>(m.last_seen_ms_ago));
    }
    if (s.transfers.empty()) {
        std::printf("transfers: none\n");
    } else {
        std::printf("transfers:\n%-20s %-4s %-12s %-8s %s\n", "PEER", "DIR", "STATE", "RANGES",
                    "KEYS");
        for (const auto& t : s.transfers) {
            std::printf("%-20s %-4s %-12s %-8u %llu\n", t.peer.c_str(), t.direction.c_str(),
                        t.state.c_str(), t.ranges, static_cast<unsigned long long>(t.keys));
        }
    }
    if (s.hints.empty()) {
        std::printf("hints: none\n");
    } else {
        std::printf("hints:\n%-20s %10s %12s %12s %10s %10s %s\n", "TARGET", "KEYS", "BYTES",
                    "OLDEST_MS", "REPLAYED", "REFUSED", "REPLAYING");
        for (const auto& h : s.hints) {
            std::printf("%-20s %10llu %12llu %12llu %10llu %10llu %s\n", h.target.c_str(),
                        static_cast<unsigned long long>(h.keys),
                        static_cast<unsigned long long>(h.bytes),
                        static_cast<unsigned long long>(h.oldest_ms),
                        static_cast<unsigned long long>(h.replayed),
                        static_cast<unsigned long long>(h.refused), h.replaying ? "yes" : "no");
        }
    }
    if (s.under_replicated_ranges != 0) {
        std::printf("under-replicated ranges: %llu (a hint for them was refused)\n",
                    static_cast<unsigned long long>(s.under_replicated_ranges));
    }
    if (s.anti_entropy) {
        const auto& ae = *s.anti_entropy;
        auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
        std::printf(
            "anti-entropy: tree %s, %llu keys indexed; %llu exchanges (%llu failed), "
            "%llu keys received, %llu sent, %llu messages, %llu bytes sent, %llu "
            "received\n",
            ae.tree_ready ? "ready" : "building", u(ae.keys_indexed), u(ae.exchanges),
            u(ae.exchanges_failed), u(ae.keys_received), u(ae.keys_sent), u(ae.messages),
            u(ae.bytes_sent), u(ae.bytes_received));
        std::printf("tombstones: %llu held, %llu purged\n", u(ae.tombstones),
                    u(ae.tombstones_purged));
        uint64_t oldest = 0;
        bool all_verified = !ae.peers.empty();
        for (const auto& v : ae.peers) {
            if (!v.verified) all_verified = false;
            oldest = std::max(oldest, v.verified_ms_ago);
        }
        if (ae.peers.empty()) {
            std::printf("verified: no other ring member\n");
        } else if (all_verified) {
            std::printf("verified: every range with every peer, the oldest %llu ms ago\n",
                        u(oldest));
        } else {
            std::printf("verified:");
            for (const auto& v : ae.peers) {
                if (v.verified) {
                    std::printf(" %s %llu ms ago;", v.peer.c_str(), u(v.verified_ms_ago));
                } else {
                    std::printf(" %s never;", v.peer.c_str());
                }
            }
            std::printf("\n");
        }
        if (ae.refilling) {
            std::printf(
                "refilling: started on an empty data directory; replica reads answer "
                "unavailable until an exchange with");
            for (const auto& v : ae.peers) {
                if (v.refill_pending) std::printf(" %s", v.peer.c_str());
            }
            std::printf(" completes\n");
        }
        if (ae.repair_total != 0) {
            std::printf("repair: %llu of %llu exchanges done, %llu failed\n", u(ae.repair_done),
                        u(ae.repair_total), u(ae.repair_failed));
        }
    }
    return kExitOk;
}

int run_repair(kv::client::Client& client, const Args& a) {
    kv::proto::RepairRequest req;
    if (!a.stop_waiting_for.empty()) {
        req.stop_waiting_for = a.stop_waiting_for;
        auto released = client.repair(req);
        if (!released) return fail(released.status());
        // A node built before the field ignores it (unknown fields are) and
        // starts a repair: say so rather than report success.
        if (!released.value().starts_with("refill: ")) {
            return fail(ErrorCode::invalid_argument,
                        "the node at " + client.current_endpoint() +
                            " does not know --stop-waiting-for (a build from before it) and "
                            "answered: " +
                            released.value());
        }
        std::printf("%s: %s\n", client.current_endpoint().c_str(), released.value().c_str());
        return kExitOk;
    }
    if (a.range) {
        const auto colon = a.range->find(':');
        char* end = nullptr;
        const std::string lo = a.range->substr(0, colon);
        const std::string hi = colon == std::string::npos ? "" : a.range->substr(colon + 1);
        errno = 0;
        req.start = std::strtoull(lo.c_str(), &end, 10);
        bool ok = colon != std::string::npos && !lo.empty() && *end == '\0' && errno == 0;
        req.end = std::strtoull(hi.c_str(), &end, 10);
        ok = ok && !hi.empty() && *end == '\0' && errno == 0;
        if (!ok)
            return fail(ErrorCode::invalid_argument, "--range takes START:END (decimal tokens)");
        req.whole_ring = false;
    }
    auto started = client.repair(req);
    if (!started) return fail(started.status());
    std::printf("%s: %s\n", client.current_endpoint().c_str(), started.value().c_str());
    if (a.no_wait) return kExitOk;
    // Progress until every queued exchange is done or failed, bounded by 10
    // minutes (a repair of a large store may take longer: check status).
    for (int polls = 0; polls < 1200; ++polls) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        auto s = client.status();
        if (!s) return fail(s.status());
        if (!s->anti_entropy)
            return fail(ErrorCode::unavailable, "the node reports no anti-entropy");
        const auto& ae = *s->anti_entropy;
        std::printf(
            "repair: %llu of %llu exchanges done, %llu failed; %llu keys received, %llu sent\n",
            static_cast<unsigned long long>(ae.repair_done),
            static_cast<unsigned long long>(ae.repair_total),
            static_cast<unsigned long long>(ae.repair_failed),
            static_cast<unsigned long long>(ae.keys_received),
            static_cast<unsigned long long>(ae.keys_sent));
        if (ae.repair_done + ae.repair_failed >= ae.repair_total) {
            return ae.repair_failed == 0 ? kExitOk : kExitError;
        }
    }
    std::printf("repair: still running; see kvctl status\n");
    return kExitOk;
}

int print_owners(const std::string& endpoint, const std::string& key,
                 const kv::proto::OwnersResponse& o, bool json) {
    if (json) {
        std::string out = json_key_head(key, is_valid_utf8(key)) +
                          ",\"endpoint\":" + json_quote(endpoint) +
                          ",\"n_replicas\":" + std::to_string(o.n_replicas) +
                          ",\"sloppy\":" + (o.sloppy ? "true" : "false") + ",\"homes\":[";
        for (size_t i = 0; i < o.homes.size(); ++i) {
            if (i > 0) out += ',';
            out += "{\"node_id\":" + json_quote(o.homes[i].node_id) +
                   ",\"state\":" + json_quote(o.homes[i].state) + "}";
        }
        out += "],\"stand_ins\":[";
        for (size_t i = 0; i < o.stand_ins.size(); ++i) {
            if (i > 0) out += ',';
            out += "{\"node_id\":" + json_quote(o.stand_ins[i].node_id) +
                   ",\"for_home\":" + json_quote(o.stand_ins[i].for_home) + "}";
        }
        out += "],\"new_owners\":[";
        for (size_t i = 0; i < o.new_owners.size(); ++i) {
            if (i > 0) out += ',';
            out += json_quote(o.new_owners[i]);
        }
        write_raw_line(out + "]}");
        return kExitOk;
    }
    const std::string shown = is_valid_utf8(key) ? "'" + key + "'" : "base64:" + base64_encode(key);
    std::printf("key %s, n=%u, as %s sees it now\n", shown.c_str(), o.n_replicas, endpoint.c_str());
    std::printf("%-4s %-20s %s\n", "#", "HOME", "STATE");
    for (size_t i = 0; i < o.homes.size(); ++i) {
        std::printf("%-4zu %-20s %s\n", i + 1, o.homes[i].node_id.c_str(),
                    o.homes[i].state.c_str());
    }
    // Homes down that no stand-in covers: a write counts one replica fewer.
    std::vector<std::string> uncovered;
    for (const auto& h : o.homes) {
        if (h.state == "up") continue;
        bool covered = false;
        for (const auto& s : o.stand_ins) covered = covered || s.for_home == h.node_id;
        if (!covered) uncovered.push_back(h.node_id);
    }
    if (o.stand_ins.empty()) {
        const char* why = !o.sloppy && !o.new_owners.empty()
                              ? " (writes are strict while the key's range moves)"
                              : " (hinted handoff is off on this node)";
        std::printf("stand-ins: none%s\n", o.sloppy ? "" : why);
    } else {
        std::printf("%-4s %-20s %s\n", "", "STAND-IN", "FOR");
        for (const auto& s : o.stand_ins) {
            std::printf("%-4s %-20s %s\n", "", s.node_id.c_str(), s.for_home.c_str());
        }
    }
    if (o.sloppy && !uncovered.empty()) {
        std::string ids;
        for (const auto& id : uncovered) ids += (ids.empty() ? "" : ", ") + id;
        std::printf("no member left to stand in for: %s\n", ids.c_str());
    }
    if (!o.new_owners.empty()) {
        std::string ids;
        for (const auto& id : o.new_owners) ids += (ids.empty() ? "" : ", ") + id;
        std::printf("new owners (range moving): %s\n", ids.c_str());
    }
    return kExitOk;
}

int print_members(const kv::proto::StatusResponse& s, bool json) {
    if (json) {
        std::string out = "{\"node_id\":" + json_quote(s.node_id) + ",\"members\":[";
        for (size_t i = 0; i < s.members.size(); ++i) {
            const auto& m = s.members[i];
            if (i > 0) out += ',';
            out += "{\"node_id\":" + json_quote(m.node_id) +
                   ",\"endpoint\":" + json_quote(m.endpoint) +
                   ",\"status\":" + json_quote(m.state) +
                   ",\"tokens\":" + std::to_string(m.tokens) +
                   ",\"share\":" + std::to_string(m.share_ppm / 1e6) + "}";
        }
        write_raw_line(out + "]}");
        return kExitOk;
    }
    std::printf("%-20s %-32s %-10s %7s %7s\n", "ID", "ADDRESS", "STATUS", "TOKENS", "SHARE");
    for (const auto& m : s.members) {
        std::printf("%-20s %-32s %-10s %7u %6.2f%%\n", m.node_id.c_str(), m.endpoint.c_str(),
                    m.state.c_str(), m.tokens, m.share_ppm / 1e4);
    }
    return kExitOk;
}

// Binary-safe; reads one byte past the limit so an oversized value is refused
// here rather than sent.
std::optional<std::string> read_stdin_value() {
    std::string value;
    char buffer[65536];
    while (value.size() <= kv::proto::kValueBytesMax) {
        size_t n = std::fread(buffer, 1, sizeof buffer, stdin);
        if (n == 0) break;
        value.append(buffer, n);
    }
    if (std::ferror(stdin) || value.size() > kv::proto::kValueBytesMax) return std::nullopt;
    return value;
}

po::options_description option_descriptions() {
    po::options_description d("Options");
    d.add_options()("help,h", "show this help")("version", "print the version and exit")(
        "node,n", po::value<std::vector<std::string>>()->composing(),
        "node endpoint, may repeat or be a comma-separated list; the first is used until it "
        "stops answering (default tcp://127.0.0.1:7001)")(
        "consistency,c", po::value<std::string>()->default_value("quorum"),
        "one | two | three | quorum | all")("r", po::value<uint32_t>(),
                                            "explicit read count (get), overrides --consistency")(
        "w", po::value<uint32_t>(), "explicit write count (put, del), overrides --consistency")(
        "strict", po::bool_switch(), "count only the key's home replicas, never stand-ins")(
        "timeout-ms", po::value<uint64_t>()->default_value(5000),
        "node-side deadline in ms; kvctl gives up 1000 ms after it")(
        "json", po::bool_switch(), "machine-readable output (see below)")(
        "context", po::value<std::string>(),
        "base64 context from a previous 'get --json' (put, del): supersede what that get saw")(
        "key", po::value<std::string>(),
        "credentials file (public, secret and server lines) to talk to the cluster with "
        "(default: $KV_KEY_FILE, else ~/.config/kvstore/credentials if it exists)")(
        "server-key", po::value<std::string>(),
        "the cluster's public key in Z85 (default: the key file's 'server' line); with "
        "keygen, written as the new file's 'server' line")(
        "no-key", po::bool_switch(), "use no key file, even a default one (plain ZMTP)")(
        "force", po::bool_switch(), "keygen: replace FILE if it exists")(
        "range", po::value<std::string>(),
        "repair: only the ring range (START, END], tokens as decimal integers: START:END")(
        "no-wait", po::bool_switch(), "repair: return once the repair started")(
        "stop-waiting-for", po::value<std::string>(),
        "repair: a refilling node stops waiting for these members (comma-separated ids)");
    return d;
}

// Parses argv; nullopt after printing help or the version (exit 0). Throws po::error on bad input.
std::optional<Args> parse_args(int argc, char** argv) {
    auto visible = option_descriptions();
    po::options_description all;
    all.add(visible).add_options()("args", po::value<std::vector<std::string>>(), "");
    po::positional_options_description positional;
    positional.add("args", -1);
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
    if (vm.count("help") || argc == 1) {
        std::cout << kUsage << "\n" << visible << "\n";
        return std::nullopt;
    }
    if (vm.count("version")) {
        std::cout << "kvctl (kvstore) " << KV_VERSION << "\n";
        return std::nullopt;
    }
    Args a;
    a.nodes = split_endpoints(vm.count("node") ? vm["node"].as<std::vector<std::string>>()
                                               : std::vector<std::string>{});
    if (a.nodes.empty()) a.nodes.push_back("tcp://127.0.0.1:7001");
    a.consistency = vm["consistency"].as<std::string>();
    if (vm.count("r")) a.r = vm["r"].as<uint32_t>();
    if (vm.count("w")) a.w = vm["w"].as<uint32_t>();
    a.strict = vm["strict"].as<bool>();
    a.timeout_ms = vm["timeout-ms"].as<uint64_t>();
    a.json = vm["json"].as<bool>();
    if (vm.count("context")) a.context_b64 = vm["context"].as<std::string>();
    if (vm.count("args")) a.positional = vm["args"].as<std::vector<std::string>>();
    if (vm.count("key")) a.key_file = vm["key"].as<std::string>();
    if (vm.count("server-key")) a.server_key = vm["server-key"].as<std::string>();
    a.no_key = vm["no-key"].as<bool>();
    a.force = vm["force"].as<bool>();
    if (vm.count("range")) a.range = vm["range"].as<std::string>();
    a.no_wait = vm["no-wait"].as<bool>();
    if (vm.count("stop-waiting-for")) {
        a.stop_waiting_given = true;
        std::stringstream ids(vm["stop-waiting-for"].as<std::string>());
        for (std::string id; std::getline(ids, id, ',');) {
            if (!id.empty()) a.stop_waiting_for.push_back(id);
        }
    }
    return a;
}

// ---- users and grants (docs/SECURITY.md, "Users and grants") --------------------

bool is_access_command(const std::string& command) {
    return command == "user" || command == "grant" || command == "revoke";
}

std::optional<std::string> check_access_args(const Args& a) {
    const std::string& command = a.positional.front();
    if (a.r || a.w || a.context_b64) return "--r, --w and --context apply to data commands only";
    if (command != "user") {
        if (a.positional.size() != 4) return command + " takes NAME read|write|admin PREFIX";
        if (!kv::proto::permission_from_name(a.positional[2])) {
            return "the permission is read, write or admin, not '" + a.positional[2] + "'";
        }
        return std::nullopt;
    }
    const std::string sub = a.positional.size() > 1 ? a.positional[1] : "";
    const size_t want = sub == "add" ? 4 : sub == "del" ? 3 : sub == "list" ? 2 : 0;
    if (want == 0) return "user takes add NAME PUBLIC_KEY, del NAME or list";
    if (a.positional.size() != want) return "wrong number of arguments for user " + sub;
    return std::nullopt;
}

// Prefixes are bytes: shown as text when UTF-8, else as base64 (marked so).
std::string json_prefix(const std::string& prefix) {
    if (is_valid_utf8(prefix)) return "\"prefix\":" + json_quote(prefix);
    return "\"prefix_base64\":" + json_quote(base64_encode(prefix));
}

int print_users(const std::vector<kv::proto::UserInfo>& users, bool json) {
    if (json) {
        std::string out = "{\"users\":[";
        for (size_t i = 0; i < users.size(); ++i) {
            const auto& u = users[i];
            if (i > 0) out += ',';
            out += "{\"name\":" + json_quote(u.name) +
                   ",\"public_key\":" + json_quote(u.public_key) + ",\"grants\":[";
            for (size_t j = 0; j < u.grants.size(); ++j) {
                if (j > 0) out += ',';
                out += "{\"permission\":" +
                       json_quote(std::string(kv::proto::permission_name(u.grants[j].permission))) +
                       "," + json_prefix(u.grants[j].prefix) + "}";
            }
            out += "]}";
        }
        write_raw_line(out + "]}");
        return kExitOk;
    }
    std::printf("%-20s %-40s %s\n", "NAME", "PUBLIC_KEY", "GRANTS");
    for (const auto& u : users) {
        std::string grants;
        for (const auto& g : u.grants) {
            if (!grants.empty()) grants += ", ";
            grants += std::string(kv::proto::permission_name(g.permission)) + " ";
            grants += is_valid_utf8(g.prefix) ? "'" + g.prefix + "'"
                                              : "base64:" + base64_encode(g.prefix);
        }
        std::printf("%-20s %-40s %s\n", u.name.c_str(), u.public_key.c_str(),
                    grants.empty() ? "(none)" : grants.c_str());
    }
    return kExitOk;
}

int run_access(kv::client::Client& client, const Args& a) {
    const auto& p = a.positional;
    Result<std::string> done = Status(ErrorCode::internal, "no access command ran");
    if (p[0] == "user" && p[1] == "list") {
        auto users = client.user_list();
        return users ? print_users(users.value(), a.json) : fail(users.status());
    }
    if (p[0] == "user") {
        done = p[1] == "add" ? client.user_add(p[2], p[3]) : client.user_del(p[2]);
    } else {
        const auto permission = *kv::proto::permission_from_name(p[2]);
        done = p[0] == "grant" ? client.grant(p[1], permission, p[3])
                               : client.revoke(p[1], permission, p[3]);
    }
    if (!done) return fail(done.status());
    std::printf("%s: %s\n", client.current_endpoint().c_str(), done.value().c_str());
    return kExitOk;
}

// The key options, for every command.
std::optional<std::string> check_key_args(const std::string& command, const Args& a) {
    if (a.force && command != "keygen") return "--force applies to keygen only";
    if (a.no_key && a.key_file) return "--no-key and --key are exclusive";
    if (a.server_key && !kv::is_curve_key_z85(*a.server_key)) {
        return "--server-key is not a CURVE public key (40 characters of Z85)";
    }
    return std::nullopt;
}

// Checks the option combination for `command`; returns the problem, if any.
std::optional<std::string> check_args(const std::string& command, const Args& a) {
    if (auto problem = check_key_args(command, a)) return problem;
    if (is_access_command(command)) return check_access_args(a);
    static const std::vector<std::pair<std::string, size_t>> kArity = {
        {"get", 2},    {"local-get", 2}, {"put", 3},        {"del", 2},
        {"status", 1}, {"members", 1},   {"leave", 1},      {"keygen", 2},
        {"owners", 2}, {"repair", 1},    {"removenode", 2}, {"stats", 1}};
    bool known = false;
    for (const auto& [name, count] : kArity) {
        if (name != command) continue;
        known = true;
        if (a.positional.size() != count) return "wrong number of arguments for " + command;
    }
    if (!known)
        return "unknown command '" + command +
               "' (get, put, del, status, stats, owners, members, leave, repair, removenode, "
               "local-get, user, grant, revoke, keygen)";
    if ((a.range || a.no_wait || a.stop_waiting_given) && command != "repair")
        return "--range, --no-wait and --stop-waiting-for apply to repair only";
    if (a.stop_waiting_given && a.stop_waiting_for.empty())
        return "--stop-waiting-for takes member ids: ID[,ID]";
    if (a.stop_waiting_given && a.range)
        return "--stop-waiting-for starts no repair: it takes no --range";
    bool is_write = command == "put" || command == "del";
    if (a.r && command != "get") return "--r applies to get only";
    if (a.w && !is_write) return "--w applies to put and del only";
    if (a.context_b64 && !is_write) return "--context applies to put and del only";
    if (a.timeout_ms > kv::proto::kDeadlineMsMax) return "--timeout-ms is above 600000";
    return std::nullopt;
}

// keygen FILE: the pair goes to FILE, the public key to stdout (for
// --bootstrap-admin or 'user add'); the secret key is never printed.
int keygen(const Args& a) {
    auto pair = kv::client::generate_key_pair();
    if (!pair) return fail(pair.status());
    const std::string& path = a.positional[1];
    Status saved = kv::client::save_credentials(
        path, kv::client::Credentials{pair.value(), a.server_key},
        "CURVE key pair made by kvctl keygen; keep this file secret (mode 0600)", a.force);
    if (!saved.ok()) return fail(saved);
    std::printf("%s\n", pair->public_z85.c_str());
    return kExitOk;
}

// The CURVE settings of the command: from --key, $KV_KEY_FILE or the default
// file; none with --no-key or when there is no file at all.
kv::Result<std::optional<kv::client::CurveCredentials>> credentials_of(const Args& a) {
    if (a.no_key) return std::optional<kv::client::CurveCredentials>();
    std::optional<std::string> path =
        a.key_file ? a.key_file : kv::client::default_credentials_path();
    if (!path) {
        if (a.server_key) {
            return Status(ErrorCode::invalid_argument,
                          "--server-key needs a key file (--key FILE; kvctl keygen makes one)");
        }
        return std::optional<kv::client::CurveCredentials>();
    }
    auto loaded = kv::client::load_credentials(*path);
    if (!loaded) return loaded.status();
    auto curve = kv::client::to_curve_credentials(loaded.value(), a.server_key, *path);
    if (!curve) return curve.status();
    return std::optional<kv::client::CurveCredentials>(std::move(curve.value()));
}

int run(const Args& a) {
    const std::string& command = a.positional.front();
    if (auto problem = check_args(command, a)) return fail(ErrorCode::invalid_argument, *problem);
    if (command == "keygen") return keygen(a);
    auto level = kv::proto::level_from_name(a.consistency);
    if (!level) return fail(ErrorCode::invalid_argument, "unknown level '" + a.consistency + "'");

    kv::client::ClientOptions options;
    options.defaults.consistency = {*level, a.r.value_or(a.w.value_or(0)), a.strict};
    options.defaults.deadline_ms = a.timeout_ms;
    options.admin_timeout_ms = a.timeout_ms;
    auto curve = credentials_of(a);
    if (!curve) return fail(curve.status());
    options.curve = std::move(curve.value());

    std::optional<std::string> context;
    if (a.context_b64) {
        context = base64_decode(*a.context_b64);
        if (!context) return fail(ErrorCode::invalid_argument, "--context is not valid base64");
    }

    auto connected = kv::client::Client::connect(a.nodes, options);
    if (!connected) return fail(connected.status());
    auto& client = connected.value();
    if (is_access_command(command)) return run_access(client, a);

    if (command == "status") {
        auto s = client.status();
        return s ? print_status(client.current_endpoint(), s.value(), a.json) : fail(s.status());
    }
    if (command == "stats") {
        auto text = client.stats();
        if (!text) return fail(text.status());
        if (!a.json) {
            std::fwrite(text.value().data(), 1, text.value().size(), stdout);
            return kExitOk;
        }
        auto families = kv::metrics::parse(text.value());
        if (!families) return fail(families.status());
        std::printf("%s\n", kv::metrics::to_json(families.value()).c_str());
        return kExitOk;
    }
    if (command == "leave") {
        auto r = client.leave();
        if (!r) return fail(r.status());
        std::printf("%s: %s\n", client.current_endpoint().c_str(), r.value().c_str());
        return kExitOk;
    }
    if (command == "repair") return run_repair(client, a);
    if (command == "removenode") {
        auto r = client.removenode(a.positional[1]);
        if (!r) return fail(r.status());
        std::printf("%s: %s\n", client.current_endpoint().c_str(), r.value().c_str());
        return kExitOk;
    }
    if (command == "members") {
        auto s = client.status();
        return s ? print_members(s.value(), a.json) : fail(s.status());
    }
    const std::string& key = a.positional[1];
    if (command == "owners") {
        auto o = client.owners(key);
        return o ? print_owners(client.current_endpoint(), key, o.value(), a.json)
                 : fail(o.status());
    }
    if (command == "get" || command == "local-get") {
        auto r = command == "get" ? client.get(key) : client.local_get(key);
        return r ? print_get(key, r.value(), a.json) : fail(r.status());
    }
    if (command == "put") {
        std::optional<std::string> value = a.positional[2];
        if (*value == "-") value = read_stdin_value();
        if (!value) return fail(ErrorCode::value_too_large, "stdin unreadable or above 1 MiB");
        auto r = client.put(key, std::move(*value), context);
        return r ? print_write(key, r.value(), a.json) : fail(r.status());
    }
    auto r = client.del(key, context);
    return r ? print_write(key, r.value(), a.json) : fail(r.status());
}

}  // namespace

int main(int argc, char** argv) {
    std::optional<Args> args;
    try {
        args = parse_args(argc, argv);
    } catch (const po::error& e) {
        return fail(ErrorCode::invalid_argument, e.what());
    }
    if (!args) return kExitOk;
    if (args->positional.empty()) return fail(ErrorCode::invalid_argument, "no command given");
    return run(*args);
}
