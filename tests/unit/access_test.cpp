// Users and grants in a simulated cluster (docs/SECURITY.md, "Users and
// grants"): every request of a user principal is allowed exactly when a grant
// covers it, and the catalog spreads to every node, heals after partitions and
// survives restarts.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "client/metrics.h"
#include "client/z85.h"
#include "node/access/access.h"
#include "sim/cluster.h"
#include "tests/unit/sim_calls.h"

using namespace kv;
using namespace kv::test;
using proto::Permission;

namespace {

std::string key_of(int i) {
    return *z85_encode(std::string(32, static_cast<char>('A' + i)));
}

node::Principal as(int i) {
    return node::Principal::user(key_of(i));
}

// An admin request (as the local principal unless told), answered with admin_reply.
proto::AdminResponse admin(sim::Cluster& c, size_t i, node::Message req,
                           const node::Principal& who = node::Principal::local()) {
    auto m = call(c, i, std::move(req), 20000, who);
    if (auto* e = std::get_if<proto::ErrorResponse>(&m)) {
        return proto::AdminResponse{e->id, e->code, e->message};
    }
    REQUIRE(std::holds_alternative<proto::AdminResponse>(m));
    return std::get<proto::AdminResponse>(m);
}

void must(const proto::AdminResponse& r) {
    INFO(r.message);
    REQUIRE(r.code == ErrorCode::ok);
}

// The code and message of any reply.
std::pair<ErrorCode, std::string> outcome(const node::Message& m) {
    return std::visit(
        [](const auto& r) -> std::pair<ErrorCode, std::string> {
            if constexpr (requires { r.code; }) {
                return {r.code, r.message};
            } else {
                return {ErrorCode::ok, ""};
            }
        },
        m);
}

uint64_t unauthorized(sim::Cluster& c) {
    uint64_t n = 0;
    for (size_t i = 0; i < c.size(); ++i) n += c.is_up(i) ? c.node(i).stats().unauthorized : 0;
    return n;
}

const node::Catalog& catalog(sim::Cluster& c, size_t i) {
    return c.node(i).access().catalog();
}

bool everyone_has(sim::Cluster& c, const std::function<bool(const node::Catalog&)>& pred) {
    for (size_t i = 0; i < c.size(); ++i) {
        if (!c.is_up(i) || !pred(catalog(c, i))) return false;
    }
    return true;
}

bool same_everywhere(sim::Cluster& c) {
    for (size_t i = 1; i < c.size(); ++i) {
        if (catalog(c, i).users() != catalog(c, 0).users()) return false;
    }
    return true;
}

sim::ClusterOptions access_options(uint32_t nodes, uint64_t seed = 5) {
    sim::ClusterOptions o = options(nodes, seed);
    o.node_config.gossip.interval_ms = 200;  // the catalog's sync interval
    return o;
}

}  // namespace

TEST_CASE("every user x prefix x operation is allowed exactly when a grant covers the key",
          "[access]") {
    sim::Cluster c(access_options(3));
    const std::vector<std::string> prefixes = {"", "a", "ab", "b"};
    struct Grant {
        int user;
        Permission permission;
        std::string prefix;
    };
    // Overlapping on purpose: "" covers "a" covers "ab"; users share prefixes.
    const std::vector<Grant> grants = {
        {0, Permission::read, ""},   {0, Permission::write, "ab"}, {1, Permission::read, "a"},
        {1, Permission::read, "ab"}, {1, Permission::write, "a"},  {2, Permission::write, ""},
        {2, Permission::read, "b"},  {2, Permission::write, "b"},
    };
    for (int u = 0; u < 3; ++u) {
        must(admin(c, 0, proto::UserAddRequest{0, "user" + std::to_string(u), key_of(u)}));
    }
    for (const auto& g : grants) {
        must(admin(
            c, 0, proto::GrantRequest{0, "user" + std::to_string(g.user), g.permission, g.prefix}));
    }
    REQUIRE(c.run_until([&] { return same_everywhere(c); }, 5000));

    // The expectation, computed here and not by the node: a grant covers a
    // key when the key starts with its prefix.
    auto expected = [&](int user, Permission p, const std::string& key) {
        return std::any_of(grants.begin(), grants.end(), [&](const Grant& g) {
            return g.user == user && g.permission == p &&
                   key.compare(0, g.prefix.size(), g.prefix) == 0;
        });
    };
    // One key under each prefix and none; "#k" marks key bytes a refusal must
    // not echo.
    const std::vector<std::string> keys = {"#k", "a#k", "ab#k", "abc#k", "b#k", "ba#k", "c#k"};
    size_t allowed = 0, refused = 0;
    for (int u = 0; u < 3; ++u) {
        for (const auto& key : keys) {
            for (int op = 0; op < 5; ++op) {
                // owners (op 4) reveals placement only: a read grant allows it.
                const Permission p = op < 2 || op == 4 ? Permission::read : Permission::write;
                node::Message req;
                switch (op) {
                    case 0:
                        req = proto::GetRequest{0, key, level(proto::Level::one), 0};
                        break;
                    case 1:
                        req = proto::LocalGetRequest{0, key};
                        break;
                    case 2:
                        req = proto::PutRequest{0, key, "VAL#v", {}, level(proto::Level::one), 0};
                        break;
                    case 4:
                        req = proto::OwnersRequest{0, key};
                        break;
                    default:
                        req = proto::DelRequest{0, key, {}, level(proto::Level::one), 0};
                        break;
                }
                const std::string name = std::string(node::type_name(req));
                const uint64_t before = unauthorized(c);
                const node::Message reply = call(c, static_cast<size_t>(u), req, 20000, as(u));
                auto [code, message] = outcome(reply);
                INFO("user" << u << " " << name << " " << key << ": " << message);
                if (expected(u, p, key)) {
                    ++allowed;
                    CHECK(code != ErrorCode::unauthorized);
                    if (op == 4) CHECK(std::holds_alternative<proto::OwnersResponse>(reply));
                    CHECK(unauthorized(c) == before);
                } else {
                    ++refused;
                    CHECK(code == ErrorCode::unauthorized);
                    CHECK(message == "user 'user" + std::to_string(u) + "' has no " +
                                         std::string(proto::permission_name(p)) +
                                         " grant on a prefix of this key");
                    CHECK(message.find("#") == std::string::npos);
                    CHECK(unauthorized(c) == before + 1);
                }
            }
        }
    }
    CHECK(allowed > 20);
    CHECK(refused > 20);
    // A refused put stored nothing: only keys some user could write exist.
    for (const auto& key : keys) {
        bool writable = false;
        for (int u = 0; u < 3; ++u) writable = writable || expected(u, Permission::write, key);
        if (writable) continue;
        INFO(key);
        CHECK(get(c, 0, key, level(proto::Level::all)).code == ErrorCode::not_found);
        for (size_t i = 0; i < c.size(); ++i) {
            CHECK(c.stored_object(i, key).value() == std::nullopt);
        }
    }
}

TEST_CASE("a revoke and a user delete take effect on every node", "[access]") {
    sim::Cluster c(access_options(3));
    must(admin(c, 0, proto::UserAddRequest{0, "bob", key_of(0)}));
    must(admin(c, 0, proto::GrantRequest{0, "bob", Permission::read, "a"}));
    REQUIRE(c.run_until([&] { return same_everywhere(c); }, 5000));
    for (size_t i = 0; i < c.size(); ++i) {
        CHECK(outcome(call(c, i, proto::GetRequest{0, "a1", {}, 0}, 20000, as(0))).first ==
              ErrorCode::not_found);
    }
    must(admin(c, 1, proto::RevokeRequest{0, "bob", Permission::read, "a"}));
    REQUIRE(c.run_until([&] { return same_everywhere(c); }, 5000));
    for (size_t i = 0; i < c.size(); ++i) {
        CHECK(outcome(call(c, i, proto::GetRequest{0, "a1", {}, 0}, 20000, as(0))).first ==
              ErrorCode::unauthorized);
        // status and stats need no grant, only a known user
        CHECK(std::holds_alternative<proto::StatusResponse>(
            call(c, i, proto::StatusRequest{}, 20000, as(0))));
        const node::Message stats = call(c, i, proto::StatsRequest{}, 20000, as(0));
        REQUIRE(std::holds_alternative<proto::StatsResponse>(stats));
        // A node answering alone (no runtime) gives its own figures.
        auto families = kv::metrics::parse(std::get<proto::StatsResponse>(stats).text);
        REQUIRE(families);
        bool named = false;
        for (const auto& f : families.value()) {
            for (const auto& sample : f.samples) {
                named |= sample.name == "kv_node_info" && !sample.labels.empty() &&
                         sample.labels[0].value == c.node_id(i);
            }
        }
        CHECK(named);
    }
    must(admin(c, 2, proto::UserDelRequest{0, "bob"}));
    REQUIRE(c.run_until([&] { return same_everywhere(c); }, 5000));
    for (size_t i = 0; i < c.size(); ++i) {
        CHECK_FALSE(c.node(i).user_of_key(key_of(0)));
        auto [code, message] = outcome(call(c, i, proto::StatusRequest{}, 20000, as(0)));
        CHECK(code == ErrorCode::unauthorized);  // a deleted user is refused everything
        CHECK(message.find("no user") != std::string::npos);
        CHECK(outcome(call(c, i, proto::StatsRequest{}, 20000, as(0))).first ==
              ErrorCode::unauthorized);
    }
    // The name can be added again, and starts with no grants.
    must(admin(c, 0, proto::UserAddRequest{0, "bob", key_of(1)}));
    CHECK(c.node(0).user_of_key(key_of(1)) == "bob");
    CHECK(outcome(call(c, 0, proto::GetRequest{0, "a1", {}, 0}, 20000, as(1))).first ==
          ErrorCode::unauthorized);
}

TEST_CASE("admin messages are refused to users without the admin grant", "[access]") {
    sim::Cluster c(access_options(3));
    must(admin(c, 0, proto::UserAddRequest{0, "bob", key_of(0)}));
    must(admin(c, 0, proto::GrantRequest{0, "bob", Permission::read, ""}));
    must(admin(c, 0, proto::GrantRequest{0, "bob", Permission::write, ""}));
    const std::vector<node::Message> admin_only = {
        proto::UserAddRequest{0, "eve", key_of(5)},
        proto::UserDelRequest{0, "bob"},
        proto::UserListRequest{0},
        proto::GrantRequest{0, "bob", Permission::admin, ""},
        proto::RevokeRequest{0, "bob", Permission::read, ""},
        proto::LeaveRequest{0},
        proto::RepairRequest{0, true, 0, 0, {}},
        proto::RemoveNodeRequest{0, "n2"},
    };
    for (const auto& m : admin_only) {
        auto [code, message] = outcome(call(c, 0, m, 20000, as(0)));
        INFO(node::type_name(m) << ": " << message);
        CHECK(code == ErrorCode::unauthorized);
        CHECK(message == "user 'bob' has no admin grant, which '" +
                             std::string(node::type_name(m)) + "' needs");
    }
    CHECK(catalog(c, 0).list().size() == 1);  // nothing changed
    CHECK(c.node(0).leave_refusal().empty());
    // Prefixed admin grants are refused, whoever asks.
    auto prefixed = admin(c, 0, proto::GrantRequest{0, "bob", Permission::admin, "a"});
    CHECK(prefixed.code == ErrorCode::invalid_argument);
    CHECK(prefixed.message.find("whole keyspace") != std::string::npos);
    // With the admin grant, bob manages users.
    must(admin(c, 0, proto::GrantRequest{0, "bob", Permission::admin, ""}));
    must(admin(c, 0, proto::UserAddRequest{0, "carol", key_of(2)}, as(0)));
    auto list = call(c, 0, proto::UserListRequest{}, 20000, as(0));
    REQUIRE(std::holds_alternative<proto::UserListResponse>(list));
    const auto& users = std::get<proto::UserListResponse>(list).users;
    REQUIRE(users.size() == 2);
    CHECK(users[0].name == "bob");
    CHECK(users[0].public_key == key_of(0));
    CHECK(users[0].grants == std::vector<proto::GrantInfo>{{Permission::read, ""},
                                                           {Permission::write, ""},
                                                           {Permission::admin, ""}});
    CHECK(users[1].name == "carol");
    CHECK(users[1].grants.empty());
}

TEST_CASE("node-to-node messages from a user are refused and change nothing", "[access]") {
    sim::Cluster c(access_options(3));
    must(admin(c, 0, proto::UserAddRequest{0, "bob", key_of(0)}));
    for (auto p : {Permission::read, Permission::write, Permission::admin}) {
        must(admin(c, 0, proto::GrantRequest{0, "bob", p, ""}));
    }
    REQUIRE(c.run_until([&] { return same_everywhere(c); }, 5000));
    const auto users_before = catalog(c, 0).users();
    const auto members_before = c.node(0).membership().members();
    node::UserRecord forged{"mallory", key_of(7), true, {1000, "x"}, {}};
    forged.grants.push_back(
        node::GrantRecord{Permission::admin, "", true, {1001, "x"}, forged.version});
    const std::vector<node::Message> peer_only = {
        node::ReplicaWriteRequest{0, "k", std::string("forged"), std::nullopt, 0, {}, 0, ""},
        node::ReplicaMergeRequest{0, "k", "forged object", {}, 0, ""},
        node::ReplicaReadRequest{0, "k"},
        node::PingRequest{0, "n9"},
        node::GossipRequest{0, "n9", "payload"},
        node::StreamRequest{0, "n9", 1, {{0, 0}}, std::nullopt, 10},
        node::HandoffRequest{0, "n9", 1, {{0, 0}}},
        node::CatalogSyncRequest{0, "n9", {}},
        node::CatalogPushRequest{0, "n9", {forged}},
        node::HintReplayRequest{0, "n9", {"k"}, {"forged object"}},
        node::AeCompareRequest{0, "n9", 1, {0, 5}, {1}},
        node::AeKeysRequest{0, "n9", 1, {0, 5}, {"k"}, {2}},
        node::AePushRequest{0, "n9", {"k"}, {"forged object"}},
    };
    const uint64_t before = unauthorized(c);
    for (const auto& m : peer_only) {
        auto [code, message] = outcome(call(c, 0, m, 20000, as(0)));
        INFO(node::type_name(m) << ": " << message);
        CHECK(code == ErrorCode::unauthorized);
    }
    CHECK(unauthorized(c) == before + peer_only.size());
    c.run_for(1000);
    for (size_t i = 0; i < c.size(); ++i) {
        CHECK(c.stored_object(i, "k").value() == std::nullopt);
        CHECK(catalog(c, i).users() == users_before);
        CHECK_FALSE(c.node(i).user_of_key(key_of(7)));
    }
    CHECK(c.node(0).membership().members() == members_before);
    // From a member, the same push is merged: the check is on the sender, not the message.
    c.node(1).on_request(node::ReplyTo{"peer:n1"}, node::CatalogPushRequest{0, "n1", {forged}},
                         std::nullopt, node::Principal::peer());
    CHECK(c.node(1).user_of_key(key_of(7)) == "mallory");
}

TEST_CASE("the catalog spreads to every node, heals after a partition, survives restarts",
          "[access]") {
    sim::Cluster c(access_options(5));
    const uint64_t interval = c.options().node_config.gossip.interval_ms;
    c.run_for(500);
    uint64_t t0 = c.now_ms();
    must(admin(c, 0, proto::UserAddRequest{0, "bob", key_of(0)}));
    REQUIRE(c.run_until(
        [&] { return everyone_has(c, [](const node::Catalog& k) { return k.find("bob"); }); },
        5000));
    const uint64_t push_ms = c.now_ms() - t0;
    WARN("push: every node of 5 has the user " << push_ms << " ms after the add was sent");
    CHECK(push_ms < interval);  // the fast path, not a sync round

    // Node 4 is cut off while a grant is made; it misses the push.
    c.partition({4}, false);
    must(admin(c, 0, proto::GrantRequest{0, "bob", Permission::write, "w"}));
    c.run_for(3 * interval);
    CHECK_FALSE(catalog(c, 4).allows("bob", Permission::write, "w1"));
    CHECK(catalog(c, 3).allows("bob", Permission::write, "w1"));
    c.heal();
    t0 = c.now_ms();
    REQUIRE(c.run_until([&] { return catalog(c, 4).allows("bob", Permission::write, "w1"); },
                        20 * interval));
    const uint64_t heal_ms = c.now_ms() - t0;
    WARN("sync: the cut-off node has the grant " << heal_ms << " ms after the partition healed");
    // The documented bound: (members - 1) sync intervals, plus a round trip.
    CHECK(heal_ms <= 4 * interval + 100);
    REQUIRE(c.run_until([&] { return same_everywhere(c); }, 5000));

    // Every node restarts with the catalog it stored.
    for (size_t i = 0; i < c.size(); ++i) {
        c.crash(i);
        c.restart(i);
        CHECK(catalog(c, i).allows("bob", Permission::write, "w1"));
        CHECK(c.node(i).user_of_key(key_of(0)) == "bob");
    }
    CHECK(same_everywhere(c));
}

TEST_CASE("a node that was down converges once it is back, within the documented bound",
          "[access]") {
    sim::Cluster c(access_options(5, 9));
    const uint64_t interval = c.options().node_config.gossip.interval_ms;
    c.crash(2);
    must(admin(c, 0, proto::UserAddRequest{0, "bob", key_of(0)}));
    must(admin(c, 1, proto::GrantRequest{0, "bob", Permission::read, "r"}));
    c.run_for(2 * interval);
    c.restart(2);
    const uint64_t t0 = c.now_ms();
    REQUIRE(c.run_until([&] { return catalog(c, 2).allows("bob", Permission::read, "r1"); },
                        20 * interval));
    const uint64_t ms = c.now_ms() - t0;
    WARN("restart: the node that was down has the grant " << ms << " ms after it restarted");
    CHECK(ms <= 4 * interval + 100);
}

TEST_CASE("concurrent grants on two nodes both survive; a late add does not resurrect a delete",
          "[access]") {
    sim::Cluster c(access_options(3));
    must(admin(c, 0, proto::UserAddRequest{0, "bob", key_of(0)}));
    REQUIRE(c.run_until([&] { return same_everywhere(c); }, 5000));
    c.partition({0}, false);
    must(admin(c, 0, proto::GrantRequest{0, "bob", Permission::read, "x"}));
    must(admin(c, 1, proto::GrantRequest{0, "bob", Permission::write, "y"}));
    c.run_for(1000);
    c.heal();
    REQUIRE(c.run_until([&] { return same_everywhere(c); }, 5000));
    for (size_t i = 0; i < c.size(); ++i) {
        CHECK(catalog(c, i).allows("bob", Permission::read, "x1"));
        CHECK(catalog(c, i).allows("bob", Permission::write, "y1"));
    }

    // Node 2 is cut off with bob live; bob is deleted meanwhile. When it comes
    // back, its stale live record must lose everywhere.
    const node::UserRecord stale = *catalog(c, 2).find("bob");
    c.partition({2}, false);
    must(admin(c, 0, proto::UserDelRequest{0, "bob"}));
    c.run_for(1000);
    CHECK(c.node(2).user_of_key(key_of(0)) == "bob");
    c.heal();
    REQUIRE(c.run_until([&] { return same_everywhere(c); }, 5000));
    // And the same old record delivered again, late, changes nothing.
    c.node(1).on_request(node::ReplyTo{"peer:n3"}, node::CatalogPushRequest{0, "n3", {stale}},
                         std::nullopt, node::Principal::peer());
    c.run_for(1000);
    for (size_t i = 0; i < c.size(); ++i) {
        CHECK_FALSE(c.node(i).user_of_key(key_of(0)));
        CHECK_FALSE(catalog(c, i).find("bob")->live);
    }
}

TEST_CASE("a bootstrap admin is made once, and not again after an admin deleted it", "[access]") {
    sim::ClusterOptions o = access_options(3);
    o.node_config.bootstrap_admins = {{"root", key_of(9)}};
    sim::Cluster c(o);
    // Every node made the very same record on its own: nothing to reconcile.
    CHECK(same_everywhere(c));
    CHECK(catalog(c, 0).find("root")->version == node::CatalogVersion{});
    c.run_for(1000);
    REQUIRE(same_everywhere(c));
    CHECK(catalog(c, 0).live_users() == 1);
    CHECK(catalog(c, 0).allows("root", Permission::admin, ""));
    // The bootstrap admin manages users, from any node.
    must(admin(c, 2, proto::UserAddRequest{0, "alice", key_of(1)}, as(9)));
    must(admin(c, 1, proto::GrantRequest{0, "alice", Permission::admin, ""}, as(9)));
    REQUIRE(c.run_until([&] { return same_everywhere(c); }, 5000));
    // Restarts do not make it again (nor change its record).
    const auto before = catalog(c, 0).users();
    for (size_t i = 0; i < c.size(); ++i) {
        c.crash(i);
        c.restart(i);
    }
    c.run_for(1000);
    CHECK(catalog(c, 0).users() == before);
    must(admin(c, 0, proto::UserDelRequest{0, "root"}, as(1)));
    REQUIRE(c.run_until([&] { return same_everywhere(c); }, 5000));
    for (size_t i = 0; i < c.size(); ++i) {
        c.crash(i);
        c.restart(i);
    }
    c.run_for(1000);
    for (size_t i = 0; i < c.size(); ++i) {
        CHECK_FALSE(c.node(i).user_of_key(key_of(9)));
        CHECK(c.node(i).user_of_key(key_of(1)) == "alice");
    }
    CHECK(outcome(call(c, 0, proto::UserListRequest{}, 20000, as(9))).first ==
          ErrorCode::unauthorized);
}

TEST_CASE("a user list beyond one frame is cut and says so", "[access]") {
    // Only merges can grow the catalog past the admin limits (changes made at
    // once on several nodes); pushes from a member stand in for them here.
    sim::Cluster c(access_options(1));
    // 400 users x (7 + 64 grants x 3) msgpack objects: more than a frame's 65536.
    const size_t users = 400, grants = node::kCatalogGrantsPerUserWireMax;
    std::vector<node::UserRecord> batch;
    for (size_t i = 0; i < users; ++i) {
        node::UserRecord u{"u" + std::to_string(i),
                           *z85_encode(std::string(28, 'k') + std::to_string(1000 + i)),
                           true,
                           {1, "n9"},
                           {}};
        for (size_t g = 0; g < grants; ++g) {
            u.grants.push_back(node::GrantRecord{
                Permission::read, "p" + std::to_string(g), true, {2, "n9"}, u.version});
        }
        batch.push_back(std::move(u));
        if (batch.size() == node::kCatalogUsersPerMessageMax || i + 1 == users) {
            c.node(0).on_request(node::ReplyTo{"peer:n9"},
                                 node::CatalogPushRequest{0, "n9", std::move(batch)}, std::nullopt,
                                 node::Principal::peer());
            batch.clear();
        }
    }
    REQUIRE(catalog(c, 0).live_users() == users);
    auto m = call(c, 0, proto::UserListRequest{});  // the reply decoded: it fits a frame
    REQUIRE(std::holds_alternative<proto::UserListResponse>(m));
    const auto& list = std::get<proto::UserListResponse>(m);
    CHECK(list.code == ErrorCode::ok);
    CHECK(list.users.size() < users);
    CHECK(list.users.size() > 200);
    CHECK(list.message == "the first " + std::to_string(list.users.size()) +
                              " of 400 users: the rest do not fit one reply");
}
