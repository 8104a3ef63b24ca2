// Client requests as the runtime sees them, from the frame that arrived to
// the reply that leaves, after the commit it waited for: what a client
// measures, less the network. Counted by operation, timed by operation and
// consistency level, error replies counted by code (docs/OPERATIONS.md,
// "Metrics"). Only client messages are looked at; a member's are not
// requests of anyone's.
//
// Times come from the caller (microseconds of a monotonic clock), so this is
// as testable as the node. Not thread-safe: the runtime's loop owns it.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory_resource>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "client/metrics.h"
#include "node/env.h"
#include "node/metrics/histogram.h"
#include "node/peer_protocol.h"

namespace kv::node::metrics {

class RequestMetrics {
  public:
    // Requests timed at once; past it a request is counted but not timed (a
    // reply the node never sent would otherwise hold its entry forever; the
    // node answers every request by its deadline, so it takes a flood).
    static constexpr size_t kTimedMax = 100000;

    // A request arrived from `from` at `now_us`.
    void on_request(const ReplyTo& from, const Message& request, uint64_t now_us);
    // A reply is leaving for `to` at `now_us`.
    void on_reply(const ReplyTo& to, const Message& reply, uint64_t now_us);

    // kv_requests_total{op}, kv_request_duration_seconds{op,level} and
    // kv_request_errors_total{op,code}. The level label: "one", "two",
    // "three", "quorum" or "all", "count" for an explicit replica count, with
    // "_strict" appended for a strict request.
    void write(kv::metrics::Exposition& out) const;

    size_t timed() const { return timed_.size(); }

  private:
    enum Op : uint8_t { get, put, del, kOps };
    static constexpr size_t kLevels = 6;  // the five levels and an explicit count

    // Ordered by id first: ids differ between a client's requests, so the
    // route (a connection's few bytes) is rarely compared.
    struct Key {
        uint64_t id = 0;
        std::string route;
        auto operator<=>(const Key&) const = default;
    };
    struct Timed {
        std::string_view op;  // the request's type name (static)
        uint8_t kind = kOps;  // get, put or del: timed by level; kOps: counted only
        uint8_t level = 0;    // index into histograms_' second dimension
        bool strict = false;
        uint64_t start_us = 0;
    };

    // Indexed [op][level][strict]: fixed, so a request allocates nothing here.
    std::array<std::array<std::array<LatencyHistogram, 2>, kLevels>, kOps> histograms_{};
    // By the request's message type (its index in Message, and its static
    // type name): counted without a lookup, sorted by name when written.
    std::array<uint64_t, std::variant_size_v<Message>> requests_{};
    std::array<std::string_view, std::variant_size_v<Message>> request_names_{};
    std::map<std::pair<std::string_view, ErrorCode>, uint64_t> errors_;  // by op and code
    // Its tree nodes come from this pool and go back to it: a request
    // allocates nothing here once as many were in flight before (declared
    // first: the map gives its nodes back to it).
    std::pmr::unsynchronized_pool_resource timed_pool_;
    std::pmr::map<Key, Timed> timed_{&timed_pool_};
    uint64_t untimed_ = 0;
};

}  // namespace kv::node::metrics
