// Concurrent membership changes (issue 10): leave requests sent to several
// nodes at the same instant, and a leave racing a join, through the real Node
// in the simulated cluster. At most one member may be in transition at any
// moment (judged from each member's own state, not from anyone's view), the
// ring never goes below n members, and every acknowledged write stays readable.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "sim/cluster.h"
#include "tests/unit/sim_calls.h"

using namespace kv;
using namespace kv::test;

namespace {

constexpr int kKeys = 150;
constexpr uint32_t kN = 3;

std::string key_name(int i) {
    return "key-" + std::to_string(i);
}

// Members in transition by their own word: leaving, or joining with tokens.
size_t in_transition(sim::Cluster& c) {
    size_t count = 0;
    for (size_t i = 0; i < c.size(); ++i) {
        if (!c.is_up(i)) continue;
        count += c.node(i).gossiper()->view().self().in_transition() ? 1 : 0;
    }
    return count;
}

gossip::MemberStatus declared(sim::Cluster& c, size_t i) {
    return c.node(i).gossiper()->view().self().declared;
}

// Members whose own entry says they are in the ring (up or leaving).
size_t ring_members(sim::Cluster& c) {
    size_t count = 0;
    for (size_t i = 0; i < c.size(); ++i) {
        if (c.is_up(i) && c.node(i).gossiper()->view().self().in_ring()) ++count;
    }
    return count;
}

// No one in transition, and every live node routes by the same settled ring.
bool settled(sim::Cluster& c) {
    if (in_transition(c) != 0) return false;
    std::optional<size_t> ref;
    for (size_t i = 0; i < c.size(); ++i) {
        if (!c.is_up(i)) continue;
        const auto& n = c.node(i);
        if (n.transfers_pending()) return false;
        if (n.ring().tokens() != n.future_ring().tokens()) return false;
        if (!ref) {
            ref = i;
        } else if (n.ring().nodes() != c.node(*ref).ring().nodes() ||
                   n.ring().tokens() != c.node(*ref).ring().tokens()) {
            return false;
        }
    }
    return true;
}

struct Watch {
    size_t transition_max = 0;
    size_t ring_min = SIZE_MAX;
};

// Runs until `done`, checking after every event that at most one member is in
// transition and that the ring keeps at least n members.
bool run_watched(sim::Cluster& c, Watch& w, const std::function<bool()>& done, uint64_t ms_max) {
    return c.run_until(
        [&] {
            w.transition_max = std::max(w.transition_max, in_transition(c));
            w.ring_min = std::min(w.ring_min, ring_members(c));
            return done();
        },
        ms_max);
}

// Through every live node in turn.
void write_keys(sim::Cluster& c, const std::string& prefix) {
    std::vector<size_t> live;
    for (size_t i = 0; i < c.size(); ++i) {
        if (c.is_up(i)) live.push_back(i);
    }
    for (int k = 0; k < kKeys; ++k) {
        auto w = put(c, live[k % live.size()], key_name(k), prefix + std::to_string(k));
        REQUIRE(w.code == ErrorCode::ok);
    }
}

// Every key reads back at quorum through a member, and each of its replicas in
// the settled ring holds it (local_get: no read repair involved).
void check_every_key(sim::Cluster& c, size_t via, const std::string& prefix) {
    const ring::Ring ring = c.node(via).ring();
    for (int k = 0; k < kKeys; ++k) {
        INFO("key " << key_name(k));
        CHECK(get(c, via, key_name(k)).values == Values{prefix + std::to_string(k)});
        for (const auto& id : ring.preference_list(key_name(k), kN)) {
            size_t i = 0;
            while (c.node_id(i) != id) ++i;
            INFO("replica " << id);
            CHECK(local_get(c, i, key_name(k)).values == Values{prefix + std::to_string(k)});
        }
    }
}

// Sends a leave to each of `nodes` at the same instant; returns the replies.
std::map<size_t, proto::AdminResponse> leave_at_once(sim::Cluster& c, Watch& w,
                                                     const std::vector<size_t>& nodes) {
    std::map<uint64_t, size_t> by_id;
    for (size_t i : nodes) {
        const uint64_t id = 900 + i;
        by_id[id] = i;
        c.client_send(i, "admin", proto::LeaveRequest{id});
    }
    std::map<size_t, proto::AdminResponse> replies;
    REQUIRE(run_watched(
        c, w,
        [&] {
            for (auto& m : c.take_replies("admin")) {
                auto* a = std::get_if<proto::AdminResponse>(&m);
                REQUIRE(a != nullptr);
                replies[by_id.at(a->id)] = *a;
            }
            return replies.size() == nodes.size();
        },
        5000));
    return replies;
}

// Every member up, then kKeys keys written at quorum.
void form_and_write(sim::Cluster& c) {
    REQUIRE(c.run_until([&] { return all_joined(c); }, 20000));
    write_keys(c, "v");
}

// Runs until `changed` holds and the ring settled, then checks that the
// changes ran one at a time, that the ring never had fewer than n members,
// that it is `ring` now, and that every key is where it belongs.
void settles_one_at_a_time(sim::Cluster& c, Watch& w, const std::function<bool()>& changed,
                           const std::vector<std::string>& ring) {
    REQUIRE(run_watched(
        c, w, [&] { return changed() && settled(c); }, 120000));
    CHECK(w.transition_max == 1);
    CHECK(w.ring_min >= kN);
    CHECK(c.node(0).ring().nodes() == ring);
    check_every_key(c, 0, "v");
}

sim::ClusterOptions cluster_of(uint32_t nodes, uint64_t seed) {
    sim::ClusterOptions o = gossip_options(nodes, seed);
    o.node_config.vnodes = 16;
    o.node_config.n_replicas = kN;
    return o;
}

}  // namespace

TEST_CASE("two leaves at once in a 3-node cluster with n=3 are both refused", "[membership]") {
    sim::Cluster c(cluster_of(3, 41));
    form_and_write(c);
    Watch w;
    auto replies = leave_at_once(c, w, {1, 2});
    for (auto& [i, r] : replies) {
        INFO(c.node_id(i) << ": " << error_name(r.code) << " " << r.message);
        CHECK(r.code == ErrorCode::invalid_argument);
    }
    run_watched(
        c, w, [] { return false; }, 10000);
    CHECK(w.transition_max == 0);
    CHECK(w.ring_min == 3);
    CHECK(c.node(0).ring().nodes().size() == 3);
    check_every_key(c, 0, "v");
}

TEST_CASE("two leaves at once with n=3 on 4 nodes: one leaves, the other is refused",
          "[membership]") {
    sim::Cluster c(cluster_of(4, 43));
    form_and_write(c);
    Watch w;
    auto replies = leave_at_once(c, w, {1, 2});
    for (auto& [i, r] : replies) UNSCOPED_INFO(c.node_id(i) << ": " << r.message);
    // Give the cluster time to act on both, then to settle.
    run_watched(
        c, w, [] { return false; }, 5000);
    REQUIRE(run_watched(
        c, w, [&] { return settled(c); }, 60000));
    CHECK(w.transition_max == 1);
    CHECK(w.ring_min >= kN);
    std::vector<size_t> left;
    for (size_t i : {size_t{1}, size_t{2}}) {
        if (declared(c, i) == gossip::MemberStatus::left) left.push_back(i);
    }
    REQUIRE(left.size() == 1);
    const size_t stayed = left[0] == 1 ? 2 : 1;
    CHECK(declared(c, stayed) == gossip::MemberStatus::up);
    CHECK(c.node(0).ring().nodes().size() == 3);
    // The member that stays says why, in its reply or its status.
    auto status = std::get<proto::StatusResponse>(call(c, stayed, proto::StatusRequest{}));
    INFO("reply: " << replies[stayed].message << "; status leave: " << status.leave);
    CHECK(
        (replies[stayed].code == ErrorCode::invalid_argument || status.leave.find("refused") == 0));
    if (replies[stayed].code == ErrorCode::ok) {
        // Refused after it was queued: a restart does not forget why.
        c.crash(stayed);
        c.restart(stayed);
        c.run_for(1000);
        auto again = std::get<proto::StatusResponse>(call(c, stayed, proto::StatusRequest{}));
        CHECK(again.leave == status.leave);
        CHECK(declared(c, stayed) == gossip::MemberStatus::up);
    }
    check_every_key(c, 0, "v");
}

TEST_CASE("two leaves at once across a partition with n=3 on 5 nodes: one at a time",
          "[membership]") {
    sim::Cluster c(cluster_of(5, 47));
    form_and_write(c);
    Watch w;
    // n2 and n3 cannot hear each other, nor the side of the other, for 4 s.
    c.partition({0, 1}, false);
    auto replies = leave_at_once(c, w, {1, 2});
    for (auto& [i, r] : replies) {
        INFO(c.node_id(i) << ": " << r.message);
        CHECK(r.code == ErrorCode::ok);
    }
    run_watched(
        c, w, [] { return false; }, 4000);
    c.heal();
    settles_one_at_a_time(c, w,
                          [&] {
                              return declared(c, 1) == gossip::MemberStatus::left &&
                                     declared(c, 2) == gossip::MemberStatus::left;
                          },
                          {"n1", "n4", "n5"});
}

TEST_CASE("a leave asked as a joiner claims its tokens waits for the join", "[membership]") {
    sim::Cluster c(cluster_of(5, 53));
    start_all_but_last(c);
    REQUIRE(c.run_until(
        [&] {
            for (size_t i = 0; i + 1 < c.size(); ++i) {
                if (declared(c, i) != gossip::MemberStatus::up) return false;
            }
            return settled(c);
        },
        20000));
    write_keys(c, "v");
    Watch w;
    c.restart(4);
    // The instant n5 claims its tokens, before gossip carries the claim, n2
    // is asked to leave.
    REQUIRE(run_watched(
        c, w, [&] { return !c.node(4).gossiper()->view().self().tokens.empty(); }, 30000));
    auto replies = leave_at_once(c, w, {1});
    INFO(replies[1].message);
    CHECK(replies[1].code == ErrorCode::ok);
    settles_one_at_a_time(c, w,
                          [&] {
                              return declared(c, 1) == gossip::MemberStatus::left &&
                                     declared(c, 4) == gossip::MemberStatus::up;
                          },
                          {"n1", "n3", "n4", "n5"});
}

TEST_CASE("a queued leave waits for a cut-off member, survives a restart, then happens",
          "[membership]") {
    sim::Cluster c(cluster_of(4, 59));
    form_and_write(c);
    Watch w;
    c.partition({3}, false);  // n4 cannot acknowledge
    auto replies = leave_at_once(c, w, {1});
    INFO(replies[1].message);
    REQUIRE(replies[1].code == ErrorCode::ok);
    CHECK(replies[1].message.find("leave queued") == 0);
    run_watched(
        c, w, [] { return false; }, 5000);
    CHECK(declared(c, 1) == gossip::MemberStatus::up);
    auto status = std::get<proto::StatusResponse>(call(c, 1, proto::StatusRequest{}));
    // n4 is down by now: the leave does not hold its place in line while it
    // waits for n4 (it would hold back n4's removal), and says what it waits for.
    CHECK(status.leave ==
          "queued: waiting for n4, which is down, to return or be removed "
          "(kvctl removenode)");
    auto again = std::get<proto::AdminResponse>(call(c, 1, proto::LeaveRequest{}));
    CHECK(again.code == ErrorCode::ok);
    CHECK(again.message.find("leave already queued") == 0);
    c.crash(1);
    c.run_for(500);
    c.restart(1);
    run_watched(
        c, w, [] { return false; }, 2000);
    CHECK(declared(c, 1) == gossip::MemberStatus::up);
    c.heal();
    settles_one_at_a_time(c, w, [&] { return declared(c, 1) == gossip::MemberStatus::left; },
                          {"n1", "n3", "n4"});
    status = std::get<proto::StatusResponse>(call(c, 1, proto::StatusRequest{}));
    CHECK(status.leave == "left");
}

TEST_CASE("a member down for good is removed; a leave queued while it was down goes after",
          "[membership]") {
    for (uint64_t seed : {61, 62, 63}) {
        INFO("seed " << seed);
        sim::Cluster c(cluster_of(5, seed));
        form_and_write(c);
        Watch w;
        c.crash(4);  // n5, for good
        REQUIRE(c.run_until(
            [&] {
                const auto* s = c.node(0).gossiper()->view().find("n5");
                return s != nullptr && s->status() == gossip::MemberStatus::down;
            },
            20000));
        auto leave = leave_at_once(c, w, {1});
        REQUIRE(leave[1].code == ErrorCode::ok);
        // Long enough for every member to see n2's ticket: the removal's
        // ticket orders after it.
        run_watched(
            c, w, [] { return false; }, 3000);
        auto waiting = std::get<proto::StatusResponse>(call(c, 1, proto::StatusRequest{}));
        CHECK(waiting.leave ==
              "queued: waiting for n5, which is down, to return or be removed (kvctl removenode)");
        // A live member cannot be removed; a dead one can.
        auto live = std::get<proto::AdminResponse>(call(c, 0, proto::RemoveNodeRequest{0, "n3"}));
        CHECK(live.code == ErrorCode::invalid_argument);
        CHECK(live.message.find("n3 is up, not down") != std::string::npos);
        auto removal =
            std::get<proto::AdminResponse>(call(c, 0, proto::RemoveNodeRequest{0, "n5"}));
        INFO(removal.message);
        REQUIRE(removal.code == ErrorCode::ok);
        CHECK(removal.message.find("removal of n5 queued") == 0);
        // Both happen, one at a time: n5's ranges come back from the
        // survivors, then n2 hands its own over.
        settles_one_at_a_time(c, w,
                              [&] {
                                  const auto* s = c.node(0).gossiper()->view().find("n5");
                                  return s != nullptr &&
                                         s->declared == gossip::MemberStatus::left &&
                                         declared(c, 1) == gossip::MemberStatus::left;
                              },
                              {"n1", "n3", "n4"});
        auto status = std::get<proto::StatusResponse>(call(c, 0, proto::StatusRequest{}));
        CHECK(status.removal == "n5 removed");
    }
}
