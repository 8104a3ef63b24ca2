// The user catalog's merge rule (node/access/catalog.h): concurrent changes
// made on different nodes converge whatever the order they meet in, and a
// delete or revoke is never undone by an older add.
#include <algorithm>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "client/z85.h"
#include "node/access/catalog.h"

using namespace kv;
using namespace kv::node;
using proto::Permission;

namespace {

const std::string kKeyA = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
const std::string kKeyB = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";

// Hands every record of `from` to `to`.
void sync(const Catalog& from, Catalog& to) {
    for (const auto& [name, u] : from.users()) to.merge(u);
}

std::string key_of(int i) {
    return *z85_encode(std::string(32, static_cast<char>('A' + i)));
}

// Two nodes' catalogs that both know bob (added on the first), no grants yet.
std::pair<Catalog, Catalog> two_nodes_with_bob() {
    Catalog n1;
    REQUIRE(n1.add_user("bob", kKeyA, "n1").ok());
    Catalog n2;
    sync(n1, n2);
    return {n1, n2};
}

bool same(const Catalog& a, const Catalog& b) {
    return a.users() == b.users();
}

}  // namespace

TEST_CASE("catalog: local changes are validated", "[catalog]") {
    Catalog c;
    CHECK(c.add_user("", kKeyA, "n1").status().code() == ErrorCode::invalid_argument);
    CHECK(c.add_user("a b", kKeyA, "n1").status().code() == ErrorCode::invalid_argument);
    CHECK(c.add_user("bob", "not a key", "n1").status().code() == ErrorCode::invalid_argument);
    REQUIRE(c.add_user("bob", kKeyA, "n1").ok());
    auto dup_name = c.add_user("bob", kKeyB, "n1");
    CHECK(dup_name.status().code() == ErrorCode::invalid_argument);
    auto dup_key = c.add_user("carol", kKeyA, "n1");
    CHECK(dup_key.status().code() == ErrorCode::invalid_argument);
    CHECK(dup_key.status().message().find("'bob'") != std::string::npos);
    auto prefixed_admin = c.set_grant("bob", Permission::admin, "a", true, "n1");
    CHECK(prefixed_admin.status().code() == ErrorCode::invalid_argument);
    CHECK(prefixed_admin.status().message().find("whole keyspace") != std::string::npos);
    CHECK(c.set_grant("nobody", Permission::read, "", true, "n1").status().code() ==
          ErrorCode::not_found);
    CHECK(
        c.set_grant("bob", Permission::read, std::string(proto::kKeyBytesMax + 1, 'p'), true, "n1")
            .status()
            .code() == ErrorCode::key_too_large);
    for (size_t i = 0; i < proto::kGrantsPerUserMax; ++i) {
        REQUIRE(c.set_grant("bob", Permission::read, "p" + std::to_string(i), true, "n1").ok());
    }
    CHECK(c.set_grant("bob", Permission::read, "one more", true, "n1").status().code() ==
          ErrorCode::invalid_argument);
    // Re-granting an existing one needs no new record.
    CHECK(c.set_grant("bob", Permission::read, "p0", true, "n1").ok());
    CHECK(c.user_of_key(kKeyA) == "bob");
    CHECK_FALSE(c.user_of_key(kKeyB));
}

TEST_CASE("catalog: grants cover exactly the keys under their prefix", "[catalog]") {
    Catalog c;
    REQUIRE(c.add_user("bob", kKeyA, "n1").ok());
    REQUIRE(c.set_grant("bob", Permission::read, "ab", true, "n1").ok());
    CHECK(c.allows("bob", Permission::read, "ab"));
    CHECK(c.allows("bob", Permission::read, "abc"));
    CHECK_FALSE(c.allows("bob", Permission::read, "a"));
    CHECK_FALSE(c.allows("bob", Permission::read, "b"));
    CHECK_FALSE(c.allows("bob", Permission::write, "abc"));
    CHECK_FALSE(c.allows("bob", Permission::admin, ""));
    REQUIRE(c.set_grant("bob", Permission::read, "ab", false, "n1").ok());
    CHECK_FALSE(c.allows("bob", Permission::read, "abc"));
    REQUIRE(c.set_grant("bob", Permission::admin, "", true, "n1").ok());
    CHECK(c.allows("bob", Permission::admin, ""));
    CHECK(c.allows("bob", Permission::write, "anything"));  // admin includes read and write
    CHECK_FALSE(c.allows("nobody", Permission::read, "x"));
}

TEST_CASE("catalog: concurrent grants on two nodes both survive, in either order", "[catalog]") {
    auto [n1, n2] = two_nodes_with_bob();
    REQUIRE(n1.set_grant("bob", Permission::read, "a", true, "n1").ok());
    REQUIRE(n2.set_grant("bob", Permission::write, "b", true, "n2").ok());
    Catalog x = n1, y = n2;
    sync(n2, x);  // n1 then n2
    sync(n1, y);  // n2 then n1
    CHECK(same(x, y));
    CHECK(x.allows("bob", Permission::read, "a1"));
    CHECK(x.allows("bob", Permission::write, "b1"));
    sync(x, x);  // idempotent
    CHECK(same(x, y));
}

TEST_CASE("catalog: a delete or revoke is never undone by an older add arriving late",
          "[catalog]") {
    Catalog n1;
    REQUIRE(n1.add_user("bob", kKeyA, "n1").ok());
    REQUIRE(n1.set_grant("bob", Permission::read, "", true, "n1").ok());
    const Catalog before_delete = n1;  // what a lagging node still sends
    REQUIRE(n1.delete_user("bob", "n1").ok());
    n1.merge(*before_delete.find("bob"));
    CHECK_FALSE(n1.user_of_key(kKeyA));
    CHECK_FALSE(n1.allows("bob", Permission::read, "x"));
    CHECK(n1.find("bob")->grants.empty());  // the deleted user's grants are dropped

    // Re-adding the name works and starts with no grants, whatever arrives late.
    REQUIRE(n1.add_user("bob", kKeyB, "n1").ok());
    n1.merge(*before_delete.find("bob"));
    CHECK(n1.user_of_key(kKeyB) == "bob");
    CHECK_FALSE(n1.user_of_key(kKeyA));
    CHECK_FALSE(n1.allows("bob", Permission::read, "x"));

    // Revoke, then the grant arrives again late.
    REQUIRE(n1.set_grant("bob", Permission::write, "w", true, "n1").ok());
    const UserRecord granted = *n1.find("bob");
    REQUIRE(n1.set_grant("bob", Permission::write, "w", false, "n1").ok());
    n1.merge(granted);
    CHECK_FALSE(n1.allows("bob", Permission::write, "w1"));
}

TEST_CASE("catalog: a delete on one node voids a grant made at once on another", "[catalog]") {
    auto [n1, n2] = two_nodes_with_bob();
    // n2's clock runs ahead, so its grant carries the higher version.
    for (int i = 0; i < 5; ++i) REQUIRE(n2.add_user("u" + std::to_string(i), key_of(i), "n2").ok());
    REQUIRE(n2.set_grant("bob", Permission::read, "", true, "n2").ok());
    REQUIRE(n1.delete_user("bob", "n1").ok());
    sync(n2, n1);
    sync(n1, n2);
    CHECK(same(n1, n2));
    CHECK_FALSE(n1.find("bob")->live);
    CHECK_FALSE(n2.allows("bob", Permission::read, "x"));
    // And a re-add on n2 does not bring the voided grant back.
    REQUIRE(n2.add_user("bob", kKeyA, "n2").ok());
    sync(n2, n1);
    CHECK_FALSE(n1.allows("bob", Permission::read, "x"));
}

TEST_CASE("catalog: merges commute over random orders", "[catalog]") {
    // Three nodes make interleaved changes; every delivery order of their
    // records ends in the same catalog.
    Catalog n[3];
    REQUIRE(n[0].add_user("bob", kKeyA, "n0").ok());
    REQUIRE(n[1].add_user("carol", kKeyB, "n1").ok());
    sync(n[0], n[1]);
    sync(n[1], n[2]);
    sync(n[1], n[0]);
    REQUIRE(n[0].set_grant("bob", Permission::read, "a", true, "n0").ok());
    REQUIRE(n[1].set_grant("bob", Permission::read, "a", false, "n1").ok());
    REQUIRE(n[2].set_grant("carol", Permission::write, "", true, "n2").ok());
    REQUIRE(n[2].delete_user("bob", "n2").ok());
    REQUIRE(n[1].set_grant("carol", Permission::read, "c", true, "n1").ok());
    std::vector<UserRecord> records;
    for (auto& c : n) {
        for (const auto& [name, u] : c.users()) records.push_back(u);
    }
    std::vector<size_t> order(records.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    Catalog first;
    for (size_t i : order) first.merge(records[i]);
    size_t permutations = 0;
    do {
        Catalog c;
        for (size_t i : order) c.merge(records[i]);
        REQUIRE(same(c, first));
        ++permutations;
    } while (std::next_permutation(order.begin(), order.end()) && permutations < 5000);
    CHECK_FALSE(first.find("bob")->live);
    CHECK(first.allows("carol", Permission::write, "x"));
    CHECK(first.allows("carol", Permission::read, "c1"));
}

TEST_CASE("catalog: two live users claiming one key admit neither", "[catalog]") {
    Catalog n1, n2;
    REQUIRE(n1.add_user("bob", kKeyA, "n1").ok());
    REQUIRE(n2.add_user("robert", kKeyA, "n2").ok());
    sync(n2, n1);
    CHECK_FALSE(n1.user_of_key(kKeyA));
    REQUIRE(n1.delete_user("robert", "n1").ok());
    CHECK(n1.user_of_key(kKeyA) == "bob");
}

TEST_CASE("catalog: bootstrap admins made apart are one record, and any change wins over it",
          "[catalog]") {
    Catalog n1, n2;
    REQUIRE(n1.add_bootstrap_admin("root", kKeyA).ok());
    REQUIRE(n2.add_user("bob", kKeyB, "n2").ok());  // n2's clock has moved on
    REQUIRE(n2.add_bootstrap_admin("root", kKeyA).ok());
    CHECK(*n1.find("root") == *n2.find("root"));
    CHECK(n1.allows("root", Permission::admin, ""));
    CHECK(n1.add_bootstrap_admin("root", kKeyA).status().code() == ErrorCode::invalid_argument);
    // An admin deletes it on n1; n2 merges it; a node starting afresh makes it
    // again, and loses to the deletion as soon as they meet.
    REQUIRE(n1.delete_user("root", "n1").ok());
    sync(n1, n2);
    CHECK_FALSE(n2.user_of_key(kKeyA));
    Catalog fresh;
    REQUIRE(fresh.add_bootstrap_admin("root", kKeyA).ok());
    sync(n1, fresh);
    CHECK_FALSE(fresh.user_of_key(kKeyA));
    CHECK_FALSE(fresh.allows("root", Permission::admin, ""));
    sync(fresh, n1);
    CHECK(same(n1, fresh));
}
