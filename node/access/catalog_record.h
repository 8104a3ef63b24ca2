// The records of the replicated user catalog (docs/SECURITY.md, "Users and
// grants"), as nodes store and exchange them. Plain values: the merge rule is
// node/access/catalog.h's, the wire form node/peer_protocol.cpp's.
//
// Each record is a last-writer-wins register with a Lamport version (counter,
// origin): the origin is the minting node's actor id, fresh per data directory,
// so no two records ever share a version. A deleted user or a revoked grant is a
// record with `live` false (a tombstone), so a late copy of an older add cannot
// bring it back.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "client/protocol.h"

namespace kv::node {

struct CatalogVersion {
    // A constructor rather than an aggregate: GCC 12 at -O3 takes the string of
    // an aggregate temporary inside another one for uninitialized
    // (-Wmaybe-uninitialized) wherever a record is brace-built and copied.
    CatalogVersion(uint64_t counter_ = 0, std::string origin_ = {})
        : counter(counter_), origin(std::move(origin_)) {}
    uint64_t counter = 0;
    std::string origin;
    auto operator<=>(const CatalogVersion&) const = default;
    bool operator==(const CatalogVersion&) const = default;
};

// A grant of one incarnation of a user: it counts only while the user's
// record is live with exactly `user_version`, so deleting a user (a newer user
// version) voids its grants at once, and re-adding the name starts with none.
struct GrantRecord {
    proto::Permission permission = proto::Permission::read;
    std::string prefix;
    bool live = true;
    CatalogVersion version;
    CatalogVersion user_version;
    bool operator==(const GrantRecord&) const = default;
};

// One user name and every grant record of its current (or a newer) incarnation.
struct UserRecord {
    std::string name;
    std::string public_key_z85;  // empty in a tombstone
    bool live = true;
    CatalogVersion version;
    std::vector<GrantRecord> grants;  // sorted by (user_version, permission, prefix)
    bool operator==(const UserRecord&) const = default;
};

// The digest of one user record and its grants (Catalog::digest_of).
struct CatalogDigest {
    std::string name;
    uint64_t hash = 0;
    bool operator==(const CatalogDigest&) const = default;
};

}  // namespace kv::node
