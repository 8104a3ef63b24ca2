#include "node/metrics/request_metrics.h"

#include <algorithm>
#include <type_traits>
#include <variant>
#include <vector>

namespace kv::node::metrics {

namespace {

// What the node answers a client with (an ErrorResponse goes to members too;
// the lookup sorts that out).
bool is_client_reply(const Message& m) {
    return std::holds_alternative<proto::GetResponse>(m) ||
           std::holds_alternative<proto::WriteResponse>(m) ||
           std::holds_alternative<proto::ErrorResponse>(m) ||
           std::holds_alternative<proto::StatusResponse>(m) ||
           std::holds_alternative<proto::StatsResponse>(m) ||
           std::holds_alternative<proto::AdminResponse>(m) ||
           std::holds_alternative<proto::UserListResponse>(m) ||
           std::holds_alternative<proto::OwnersResponse>(m);
}

// The client's requests: the client messages (node::Message starts with
// proto::Message's alternatives, peer_protocol.h) that are not replies, so a
// request type added to the protocol is counted without a change here.
bool is_client_request(const Message& m) {
    return m.index() < std::variant_size_v<proto::Message> && !is_client_reply(m);
}

const proto::Consistency* consistency_of(const Message& m) {
    if (const auto* g = std::get_if<proto::GetRequest>(&m)) return &g->consistency;
    if (const auto* p = std::get_if<proto::PutRequest>(&m)) return &p->consistency;
    if (const auto* d = std::get_if<proto::DelRequest>(&m)) return &d->consistency;
    return nullptr;
}

// on_request takes a timed request's histogram row from its variant index.
static_assert(std::is_same_v<std::variant_alternative_t<0, Message>, proto::GetRequest> &&
              std::is_same_v<std::variant_alternative_t<1, Message>, proto::PutRequest> &&
              std::is_same_v<std::variant_alternative_t<2, Message>, proto::DelRequest>);

constexpr std::array<std::string_view, 3> kOpNames = {"get", "put", "del"};
constexpr std::array<std::string_view, 6> kLevelLabels = {"one",    "two", "three",
                                                          "quorum", "all", "count"};

}  // namespace

void RequestMetrics::on_request(const ReplyTo& from, const Message& request, uint64_t now_us) {
    if (!is_client_request(request)) return;
    const std::string_view op = node::type_name(request);
    ++requests_[request.index()];
    request_names_[request.index()] = op;
    if (timed_.size() >= kTimedMax) {
        ++untimed_;
        return;
    }
    Timed t;
    t.op = op;
    t.start_us = now_us;
    if (const proto::Consistency* c = consistency_of(request)) {
        t.kind = static_cast<uint8_t>(request.index());  // get, put, del are 0, 1, 2
        t.level = c->count != 0 ? 5 : static_cast<uint8_t>(c->level);
        t.strict = c->strict;
    }
    // A client reusing an id it is still waiting on gets the newer time.
    timed_.insert_or_assign(Key{node::request_id(request), from.route}, t);
}

void RequestMetrics::on_reply(const ReplyTo& to, const Message& reply, uint64_t now_us) {
    if (!is_client_reply(reply) || timed_.empty()) return;
    auto it = timed_.find(Key{node::request_id(reply), to.route});
    if (it == timed_.end()) return;
    const Timed& t = it->second;
    if (t.kind < kOps) {
        histograms_[t.kind][t.level][t.strict ? 1 : 0].observe(
            now_us > t.start_us ? now_us - t.start_us : 0);
    }
    ErrorCode code = ErrorCode::ok;
    if (const auto* e = std::get_if<proto::ErrorResponse>(&reply)) code = e->code;
    if (const auto* g = std::get_if<proto::GetResponse>(&reply)) code = g->code;
    if (const auto* w = std::get_if<proto::WriteResponse>(&reply)) code = w->code;
    if (const auto* a = std::get_if<proto::AdminResponse>(&reply)) code = a->code;
    if (code != ErrorCode::ok) ++errors_[{t.op, code}];
    timed_.erase(it);
}

void RequestMetrics::write(kv::metrics::Exposition& out) const {
    using kv::metrics::Type;
    out.family("kv_requests_total", Type::counter,
               "Client requests received, by operation (the protocol's message type).");
    std::vector<std::pair<std::string_view, uint64_t>> by_name;
    for (size_t i = 0; i < requests_.size(); ++i) {
        if (requests_[i] != 0) by_name.emplace_back(request_names_[i], requests_[i]);
    }
    std::sort(by_name.begin(), by_name.end());
    for (const auto& [op, count] : by_name) out.sample("kv_requests_total", {{"op", op}}, count);
    out.family("kv_request_duration_seconds", Type::histogram,
               "Client get, put and del requests from arrival to reply (after the commit "
               "the reply waited for), by operation and consistency level.");
    for (size_t op = 0; op < kOps; ++op) {
        for (size_t level = 0; level < kLevels; ++level) {
            for (size_t strict = 0; strict < 2; ++strict) {
                const LatencyHistogram& h = histograms_[op][level][strict];
                if (h.count() == 0) continue;
                std::string label(kLevelLabels[level]);
                if (strict != 0) label += "_strict";
                h.write(out, "kv_request_duration_seconds",
                        {{"op", kOpNames[op]}, {"level", label}});
            }
        }
    }
    out.family("kv_request_errors_total", Type::counter,
               "Client requests answered with an error code (not_found included), by operation "
               "and code.");
    for (const auto& [key, count] : errors_) {
        out.sample("kv_request_errors_total", {{"op", key.first}, {"code", error_name(key.second)}},
                   count);
    }
    out.counter("kv_requests_untimed_total",
                "Client requests counted but not timed: 100000 were awaiting their reply.",
                untimed_);
}

}  // namespace kv::node::metrics
