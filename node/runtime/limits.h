// Transport-side limits of kvnode (docs/PROTOCOL.md, "Limits"): what the
// ZeroMQ runtime needs beyond socket options to keep a node's memory bounded
// against a client that floods it. Single-threaded, like the runtime.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace kv::node {

// How late a request to a peer can still arrive, which tombstone GC's grace
// must exceed (docs/ARCHITECTURE.md, "Tombstone GC"): a send to a peer with
// no connection waits at most kPeerConnectGraceMs for one, then fails (and
// ZMQ_IMMEDIATE drops what was queued for a connection once it breaks); a
// peer connection silent for kPeerHeartbeatTimeoutMs is closed from both
// ends (ZMTP heartbeats, with that TTL; a member's link by TCP keepalive and
// TCP_USER_TIMEOUT within client::kLinkSilenceMs, no longer), so a partition
// cannot hold old requests in TCP's retransmission queue and deliver them
// when it heals.
constexpr uint64_t kPeerConnectGraceMs = 500;  // ZeroMQ reconnects every 100 ms
constexpr int kPeerHeartbeatIntervalMs = 1000;
constexpr int kPeerHeartbeatTimeoutMs = 3000;
constexpr uint64_t kTombstoneGraceMinMs = 5000;

// This process's resident anonymous memory (RssAnon in /proc/self/status,
// read from /proc/self/statm), in KiB: the heap and the ZeroMQ queues, but
// not LMDB's map, which is a file mapping the kernel may drop at will.
// nullopt where /proc is not readable. Any thread may call it.
std::optional<uint64_t> rss_anon_kib();

// Returns freed heap pages to the kernel (glibc's malloc_trim), so that
// RssAnon falls back after a burst; a no-op elsewhere.
void release_free_memory();

// Connections (ReplyTo routes) that let their replies pile up to the ROUTER's
// high-water mark: their requests are dropped unread until the penalty
// passes, since every answer would be dropped too. At most routes_max are
// remembered; when full, expired ones go first, then the mark is not kept.
class SlowReaders {
  public:
    SlowReaders(uint64_t penalty_ms, size_t routes_max)
        : penalty_ms_(penalty_ms), max_(routes_max) {}
    void mark(const std::string& route, uint64_t now_ms);
    bool blocked(const std::string& route, uint64_t now_ms);
    size_t size() const { return until_ms_.size(); }

  private:
    uint64_t penalty_ms_;
    size_t max_;
    std::map<std::string, uint64_t> until_ms_;
};

// What the runtime counts of its limits; logged when they change.
struct TransportStats {
    uint64_t replies_dropped = 0;    // a connection's reply queue was full
    uint64_t requests_shed = 0;      // from a connection marked slow
    uint64_t messages_too_long = 0;  // more than one frame after the routing id
    uint64_t gossip_evicted = 0;     // gossip endpoints closed to dial another
    uint64_t connection_resets = 0;  // the memory watchdog reset every connection
    bool operator==(const TransportStats&) const = default;
};

std::string describe(const TransportStats& stats);

}  // namespace kv::node
