// Helpers for tests that drive sim::Cluster with client requests: one call,
// run until its reply, and the common cluster options.
#pragma once

#include <catch2/catch.hpp>

#include "sim/cluster.h"

namespace kv::test {

inline proto::Consistency level(proto::Level l) {
    return proto::Consistency{l, 0, false};
}

// Sends one request to node `i` and runs virtual time until its reply arrives.
// `who`: the sender as the transport authenticated it (node/access/principal.h).
inline node::Message call(sim::Cluster& c, size_t i, node::Message req, uint64_t ms_max = 20000,
                          const node::Principal& who = node::Principal::local()) {
    static uint64_t next_id = 1000;
    const uint64_t id = next_id++;
    std::visit([id](auto& m) { m.id = id; }, req);
    c.client_send(i, "tester", std::move(req), who);
    std::vector<node::Message> got;
    bool done = c.run_until(
        [&] {
            for (auto& m : c.take_replies("tester")) got.push_back(std::move(m));
            for (auto& m : got) {
                if (node::request_id(m) == id) return true;
            }
            return false;
        },
        ms_max);
    REQUIRE(done);
    for (auto& m : got) {
        if (node::request_id(m) == id) return m;
    }
    FAIL("unreachable");
    return {};
}

inline proto::WriteResponse put(sim::Cluster& c, size_t i, const std::string& key,
                                const std::string& value,
                                proto::Consistency cl = level(proto::Level::quorum),
                                std::optional<std::string> ctx = std::nullopt) {
    auto m = call(c, i, proto::PutRequest{0, key, value, std::move(ctx), cl, 0});
    REQUIRE(std::holds_alternative<proto::WriteResponse>(m));
    return std::get<proto::WriteResponse>(m);
}

inline proto::WriteResponse del(sim::Cluster& c, size_t i, const std::string& key,
                                std::optional<std::string> ctx = std::nullopt,
                                proto::Consistency cl = level(proto::Level::quorum)) {
    auto m = call(c, i, proto::DelRequest{0, key, std::move(ctx), cl, 0});
    REQUIRE(std::holds_alternative<proto::WriteResponse>(m));
    return std::get<proto::WriteResponse>(m);
}

inline proto::GetResponse get(sim::Cluster& c, size_t i, const std::string& key,
                              proto::Consistency cl = level(proto::Level::quorum)) {
    auto m = call(c, i, proto::GetRequest{0, key, cl, 0});
    REQUIRE(std::holds_alternative<proto::GetResponse>(m));
    return std::get<proto::GetResponse>(m);
}

inline proto::GetResponse local_get(sim::Cluster& c, size_t i, const std::string& key) {
    auto m = call(c, i, proto::LocalGetRequest{0, key});
    REQUIRE(std::holds_alternative<proto::GetResponse>(m));
    return std::get<proto::GetResponse>(m);
}

inline sim::ClusterOptions options(uint32_t nodes, uint64_t seed = 7) {
    sim::ClusterOptions o;
    o.nodes = nodes;
    o.seed = seed;
    return o;
}

using Values = std::vector<std::string>;

constexpr uint64_t kGossipIntervalMs = 200;
constexpr uint64_t kSuspectToDownMs = 1000;
constexpr double kPhiSuspect = 5.0;

inline sim::ClusterOptions gossip_options(uint32_t nodes, uint64_t seed = 11) {
    sim::ClusterOptions o = options(nodes, seed);
    o.node_config.seeds = {"sim://n1"};
    o.node_config.vnodes = 32;
    o.node_config.join_wait_ms = 3000;
    o.node_config.gossip.interval_ms = kGossipIntervalMs;
    o.node_config.gossip.detector.first_interval_ms = kGossipIntervalMs;
    o.node_config.gossip.detector.phi_suspect = kPhiSuspect;
    o.node_config.gossip.detector.suspect_to_down_ms = kSuspectToDownMs;
    return o;
}

inline const gossip::MemberState* seen_by(sim::Cluster& c, size_t i, const std::string& id) {
    return c.node(i).gossiper()->view().find(id);
}

// Every live node knows every node as up, with its tokens, and routes by the
// same ring.
inline bool all_joined(sim::Cluster& c) {
    for (size_t i = 0; i < c.size(); ++i) {
        if (!c.is_up(i)) return false;
        for (size_t j = 0; j < c.size(); ++j) {
            const gossip::MemberState* s = seen_by(c, i, c.node_id(j));
            if (s == nullptr || s->status() != gossip::MemberStatus::up || s->tokens.empty()) {
                return false;
            }
        }
        if (c.node(i).ring().tokens() != c.node(0).ring().tokens()) return false;
        if (c.node(i).ring().nodes() != c.node(0).ring().nodes()) return false;
    }
    return true;
}

// Keeps the last node away (crashed before its first tick) while the others
// form a gossip cluster; restart it to have it join.
inline void start_all_but_last(sim::Cluster& c) {
    const size_t last = c.size() - 1;
    c.crash(last);
    REQUIRE(c.run_until(
        [&] {
            for (size_t i = 0; i < last; ++i) {
                if (c.node(i).ring().nodes().size() != last) return false;
            }
            return true;
        },
        20000));
}

}  // namespace kv::test
