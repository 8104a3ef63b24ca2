// Placement (node/membership/placement.h): the one place that says where keys
// live, from a static member list or from a gossip view, while nothing moves
// and while a join moves ranges.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "gossip/token_claim.h"
#include "node/membership/placement.h"

using namespace kv;
using namespace kv::node;

namespace {

gossip::MemberState member(const std::string& id, gossip::MemberStatus status,
                           std::vector<uint64_t> tokens) {
    gossip::MemberState s;
    s.id = id;
    s.endpoint = "tcp://" + id;
    s.declared = status;
    s.incarnation = 1;
    s.tokens = std::move(tokens);
    return s;
}

// A gossip view as `self` sees it: `up` members in the ring, and `joiner`
// (when set) joining with claimed tokens.
gossip::ClusterView view_of(const std::string& self, const std::vector<std::string>& up,
                            const std::string& joiner) {
    std::vector<gossip::NodeTokens> claimed;
    std::map<std::string, std::vector<uint64_t>> tokens;
    for (const auto& id : up) {
        tokens[id] = gossip::claim_tokens(claimed, id, 16, 3);
        claimed.push_back(gossip::NodeTokens{id, tokens[id]});
    }
    if (!joiner.empty()) tokens[joiner] = gossip::claim_tokens(claimed, joiner, 16, 3);
    auto status_of = [&](const std::string& id) {
        return id == joiner ? gossip::MemberStatus::joining : gossip::MemberStatus::up;
    };
    gossip::ClusterView view(member(self, status_of(self), tokens[self]), 64);
    for (const auto& [id, t] : tokens) {
        if (id != self) view.merge(member(id, status_of(id), t));
    }
    return view;
}

}  // namespace

TEST_CASE("a static member list: n is capped by the members, nothing moves, lists are stable") {
    gossip::StaticMembership two({{"a", "tcp://a"}, {"b", "tcp://b"}});
    Placement p("a", 3, 64);
    CHECK(p.refresh(two, nullptr));
    CHECK_FALSE(p.refresh(two, nullptr));  // same version: nothing to rebuild
    CHECK_FALSE(p.dynamic());
    CHECK_FALSE(p.moving());
    CHECK(p.n() == 2);
    CHECK(p.n_future() == 2);
    for (const std::string key : {"k1", "k2", "k3"}) {
        const auto replicas = p.replicas(key);
        CHECK(replicas.size() == 2);
        CHECK(replicas == p.ring().preference_list(key, 2));
        CHECK(replicas == p.replicas_for_hash(ring::hash64(key)));
        CHECK(p.pending_replicas(key).empty());
    }
    CHECK(p.diff().empty());
    CHECK(p.self_in_future());

    Placement other("b", 3, 64);
    other.refresh(two, nullptr);
    CHECK(other.digest() == p.digest());  // same rings everywhere
}

TEST_CASE("a gossip view with a joiner: new owners are pending, replicas stay current") {
    const std::vector<std::string> up = {"n1", "n2", "n3", "n4"};
    gossip::ClusterView view = view_of("n1", up, "n5");
    Placement p("n1", 3, 16);
    REQUIRE(p.refresh(view, &view));
    CHECK(p.dynamic());
    CHECK(p.moving());
    CHECK(p.ring().nodes() == up);
    CHECK(p.future_ring().nodes().size() == 5);
    CHECK(p.n() == 3);
    CHECK(p.n_future() == 3);
    size_t moving_keys = 0;
    for (int i = 0; i < 400; ++i) {
        const std::string key = "key" + std::to_string(i);
        const auto current = p.replicas(key);
        const auto pending = p.pending_replicas(key);
        CHECK(current.size() == 3);
        // Only the joiner gains ranges in a join.
        CHECK((pending.empty() || pending == std::vector<std::string>{"n5"}));
        if (!pending.empty()) {
            ++moving_keys;
            CHECK_FALSE(has_id(current, "n5"));
            CHECK(has_id(p.future_replicas_for_hash(ring::hash64(key)), "n5"));
        }
    }
    // About 3/5 of keys gain n5 as a replica; all of them, and only them, are pending.
    CHECK(moving_keys > 150);
    CHECK(moving_keys < 330);
    CHECK_FALSE(p.diff().empty());

    // The joiner sees the same rings: equal digests, the precondition of a transfer.
    gossip::ClusterView joiner_view = view_of("n5", up, "n5");
    Placement joiner("n5", 3, 16);
    joiner.refresh(joiner_view, &joiner_view);
    CHECK(joiner.digest() == p.digest());
    CHECK(joiner.self_in_future());
    CHECK_FALSE(has_id(joiner.ring().nodes(), "n5"));
}

TEST_CASE("a gossip view with nothing in transition does not move, and n follows the ring") {
    gossip::ClusterView view = view_of("n1", {"n1", "n2"}, "");
    Placement p("n1", 3, 16);
    REQUIRE(p.refresh(view, &view));
    CHECK(p.dynamic());
    CHECK_FALSE(p.moving());
    CHECK(p.n() == 2);
    CHECK(p.ring().tokens() == p.future_ring().tokens());
    CHECK(p.pending_replicas("x").empty());
}

TEST_CASE("no ring yet: refresh keeps trying and placement is empty") {
    gossip::ClusterView view(member("n1", gossip::MemberStatus::joining, {}), 64);
    Placement p("n1", 3, 16);
    CHECK(p.refresh(view, &view));
    CHECK(p.ring().empty());
    CHECK(p.refresh(view, &view));  // an empty ring is rebuilt on every call
    CHECK(p.n() == 0);
    CHECK(p.replicas("k").empty());
}
