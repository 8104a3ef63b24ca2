// The replicated catalog of users and grants (docs/SECURITY.md, "Users and
// grants"): user name -> CURVE public key, and grants of read, write or admin
// on key prefixes. Pure data and its merge rule; Access (access.h) persists,
// spreads and consults it.
//
// A state-based CRDT: per user name a last-writer-wins register (a tombstone
// for a deleted user), and per (user incarnation, permission, prefix) another
// (a tombstone for a revoked grant). Merging is commutative, associative and
// idempotent, so any order of pushes and sync rounds converges, concurrent
// grants made on two nodes both survive, and a delete or revoke is never undone
// by an older add that arrives late. A grant counts only while its user's
// record is live with the version it was granted under (GrantRecord), so a
// deleted user's grants are void at once and are dropped from memory.
//
// Not thread-safe; owned by one Access.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/protocol.h"
#include "client/status.h"
#include "node/access/catalog_record.h"

namespace kv::node {

class Catalog {
  public:
    // ---- local changes (admin requests); each mints a version from the
    // Lamport clock and returns the changed user record, to persist and spread.
    // Errors: invalid_argument (bad name, key, prefix, a key already used, a
    // name already live, a limit reached, a prefixed admin grant), not_found
    // (no such live user).
    Result<UserRecord> add_user(std::string_view name, std::string_view public_key_z85,
                                const std::string& origin);
    Result<UserRecord> delete_user(std::string_view name, const std::string& origin);
    Result<UserRecord> set_grant(std::string_view name, proto::Permission permission,
                                 std::string_view prefix, bool live, const std::string& origin);

    // A bootstrap admin (NodeConfig::bootstrap_admins): the user with admin on
    // "", both at version (0, ""), so every node started with the same flag
    // makes the very same record whenever it starts, and any change an admin
    // makes later (counter 1 or more) wins over it. Errors as add_user's, and
    // invalid_argument when the catalog has any record of the name.
    Result<UserRecord> add_bootstrap_admin(std::string_view name, std::string_view public_key_z85);

    // Merges a record from a peer or the store; true when anything changed.
    bool merge(const UserRecord& incoming);

    // ---- queries
    const UserRecord* find(std::string_view name) const;
    // The live user owning a key; nullopt when none, or when two live users
    // claim it (adds made at once on two nodes): then neither is admitted
    // until an admin deletes one.
    std::optional<std::string> user_of_key(std::string_view public_key_z85) const;
    // Whether the live user `name` holds `permission` on a prefix of `key`
    // (admin on "" includes read and write).
    bool allows(std::string_view name, proto::Permission permission, std::string_view key) const;
    // Live users and their live grants, by name.
    std::vector<proto::UserInfo> list() const;
    size_t live_users() const;
    size_t records() const { return users_.size(); }
    bool empty() const { return users_.empty(); }
    const std::map<std::string, UserRecord, std::less<>>& users() const { return users_; }

    // A hash of one record and its grants; equal records hash equally on
    // every node.
    static uint64_t digest_of(const UserRecord& user);
    std::vector<CatalogDigest> digest() const;

  private:
    CatalogVersion mint(const std::string& origin);
    void observe(const CatalogVersion& v);
    // Drops grant records of older incarnations and sorts the rest.
    static void normalize(UserRecord& user);
    void reindex();

    std::map<std::string, UserRecord, std::less<>> users_;
    std::map<std::string, std::vector<std::string>, std::less<>> names_by_key_;  // live users
    uint64_t clock_ = 0;  // Lamport: the highest counter seen
};

}  // namespace kv::node
