#include "node/access/catalog.h"

#include <algorithm>
#include <tuple>

#include "client/z85.h"
#include "node/peer_protocol.h"
#include "ring/ring.h"

namespace kv::node {

namespace {

using proto::Permission;

auto grant_slot(const GrantRecord& g) {
    return std::tie(g.user_version, g.permission, g.prefix);
}

// Deterministic winner of two records of one register: the higher version;
// on a tie (which distinct origins rule out) the tombstone, then the larger
// content, so every node picks the same one whatever the order.
bool grant_wins(const GrantRecord& a, const GrantRecord& b) {
    if (a.version != b.version) return a.version > b.version;
    return !a.live && b.live;
}

// Records a peer or the store may hand over that this build could not have
// made: skipped rather than merged.
bool well_formed(const UserRecord& u) {
    if (!proto::is_valid_user_name(u.name)) return false;
    if (u.live && !is_curve_key_z85(u.public_key_z85)) return false;
    return true;
}

bool grant_well_formed(const GrantRecord& g) {
    if (g.prefix.size() > proto::kKeyBytesMax) return false;
    return g.permission != Permission::admin || g.prefix.empty();
}

}  // namespace

CatalogVersion Catalog::mint(const std::string& origin) {
    return CatalogVersion{++clock_, origin};
}

void Catalog::observe(const CatalogVersion& v) {
    clock_ = std::max(clock_, v.counter);
}

void Catalog::normalize(UserRecord& user) {
    auto& g = user.grants;
    g.erase(std::remove_if(g.begin(), g.end(),
                           [&](const GrantRecord& r) {
                               return r.user_version < user.version || !grant_well_formed(r);
                           }),
            g.end());
    std::sort(g.begin(), g.end(), [](const GrantRecord& a, const GrantRecord& b) {
        return grant_slot(a) < grant_slot(b);
    });
    // Bounded whatever peers send; the admin limit keeps real catalogs far below.
    if (g.size() > kCatalogGrantsPerUserWireMax) g.resize(kCatalogGrantsPerUserWireMax);
    if (!user.live) user.public_key_z85.clear();
}

void Catalog::reindex() {
    names_by_key_.clear();
    for (const auto& [name, u] : users_) {
        if (u.live) names_by_key_[u.public_key_z85].push_back(name);
    }
}

Result<UserRecord> Catalog::add_user(std::string_view name, std::string_view public_key_z85,
                                     const std::string& origin) {
    if (!proto::is_valid_user_name(name)) {
        return Status(ErrorCode::invalid_argument, "a user name is 1 to " +
                                                       std::to_string(proto::kUserNameBytesMax) +
                                                       " bytes of A-Z a-z 0-9 . _ -");
    }
    if (!is_curve_key_z85(public_key_z85)) {
        return Status(ErrorCode::invalid_argument,
                      "a public key is 40 characters of Z85 (kvctl keygen prints one)");
    }
    if (auto owner = names_by_key_.find(public_key_z85); owner != names_by_key_.end()) {
        return Status(ErrorCode::invalid_argument,
                      "this public key already belongs to user '" + owner->second.front() + "'");
    }
    auto it = users_.find(name);
    if (it != users_.end() && it->second.live) {
        return Status(ErrorCode::invalid_argument, "user '" + std::string(name) + "' exists");
    }
    if (it == users_.end() && users_.size() >= proto::kUsersMax) {
        return Status(ErrorCode::invalid_argument,
                      "the catalog holds " + std::to_string(users_.size()) +
                          " user records (live and deleted), its limit; add a deleted name again");
    }
    UserRecord u{std::string(name), std::string(public_key_z85), true, mint(origin), {}};
    if (it != users_.end()) u.grants = it->second.grants;  // normalize drops them all
    normalize(u);
    users_[u.name] = u;
    reindex();
    return u;
}

Result<UserRecord> Catalog::add_bootstrap_admin(std::string_view name,
                                                std::string_view public_key_z85) {
    if (users_.count(name) != 0) {
        return Status(ErrorCode::invalid_argument,
                      "the catalog already has a record of '" + std::string(name) + "'");
    }
    auto made = add_user(name, public_key_z85, "");
    if (!made) return made.status();
    UserRecord& u = users_.at(made->name);
    u.version = CatalogVersion{};
    u.grants = {GrantRecord{Permission::admin, "", true, CatalogVersion{}, CatalogVersion{}}};
    return u;
}

Result<UserRecord> Catalog::delete_user(std::string_view name, const std::string& origin) {
    auto it = users_.find(name);
    if (it == users_.end() || !it->second.live) {
        return Status(ErrorCode::not_found, "no user '" + std::string(name) + "'");
    }
    UserRecord& u = it->second;
    u.live = false;
    u.version = mint(origin);
    normalize(u);
    reindex();
    return u;
}

Result<UserRecord> Catalog::set_grant(std::string_view name, Permission permission,
                                      std::string_view prefix, bool live,
                                      const std::string& origin) {
    if (prefix.size() > proto::kKeyBytesMax) {
        return Status(ErrorCode::key_too_large,
                      "a prefix is at most " + std::to_string(proto::kKeyBytesMax) + " bytes");
    }
    if (permission == Permission::admin && !prefix.empty()) {
        return Status(ErrorCode::invalid_argument,
                      "admin is granted on the whole keyspace only (the empty prefix)");
    }
    auto it = users_.find(name);
    if (it == users_.end() || !it->second.live) {
        return Status(ErrorCode::not_found, "no user '" + std::string(name) + "'");
    }
    UserRecord& u = it->second;
    auto g = std::find_if(u.grants.begin(), u.grants.end(), [&](const GrantRecord& r) {
        return r.user_version == u.version && r.permission == permission && r.prefix == prefix;
    });
    if (g == u.grants.end()) {
        size_t current = 0;
        for (const auto& r : u.grants) current += r.user_version == u.version ? 1 : 0;
        if (current >= proto::kGrantsPerUserMax) {
            return Status(ErrorCode::invalid_argument,
                          "user '" + u.name + "' has " + std::to_string(current) +
                              " grant records (granted and revoked), the limit; delete and add "
                              "the user again to start afresh");
        }
        // A revoke of a grant not known here is still recorded: the grant may
        // be on its way from another node, and this revoke must win over it.
        u.grants.push_back(GrantRecord{permission, std::string(prefix), live, {}, u.version});
        g = u.grants.end() - 1;
    }
    g->live = live;
    g->version = mint(origin);
    normalize(u);
    return u;
}

bool Catalog::merge(const UserRecord& incoming) {
    if (!well_formed(incoming)) return false;
    observe(incoming.version);
    for (const auto& g : incoming.grants) {
        observe(g.version);
        observe(g.user_version);
    }
    auto it = users_.find(incoming.name);
    if (it == users_.end()) {
        if (users_.size() >= kCatalogDigestsMax) return false;
        UserRecord u = incoming;
        normalize(u);
        users_.emplace(u.name, std::move(u));
        reindex();
        return true;
    }
    const UserRecord& have = it->second;
    UserRecord merged = have;
    const bool take_header =
        incoming.version > have.version ||
        (incoming.version == have.version && std::tie(have.live, have.public_key_z85) <
                                                 std::tie(incoming.live, incoming.public_key_z85));
    if (take_header) {
        merged.public_key_z85 = incoming.public_key_z85;
        merged.live = incoming.live;
        merged.version = incoming.version;
    }
    for (const auto& g : incoming.grants) {
        auto mine =
            std::find_if(merged.grants.begin(), merged.grants.end(),
                         [&](const GrantRecord& r) { return grant_slot(r) == grant_slot(g); });
        if (mine == merged.grants.end()) {
            merged.grants.push_back(g);
        } else if (grant_wins(g, *mine)) {
            *mine = g;
        }
    }
    normalize(merged);
    if (merged == have) return false;
    it->second = std::move(merged);
    reindex();
    return true;
}

const UserRecord* Catalog::find(std::string_view name) const {
    auto it = users_.find(name);
    return it == users_.end() ? nullptr : &it->second;
}

std::optional<std::string> Catalog::user_of_key(std::string_view public_key_z85) const {
    auto it = names_by_key_.find(public_key_z85);
    if (it == names_by_key_.end() || it->second.size() != 1) return std::nullopt;
    return it->second.front();
}

bool Catalog::allows(std::string_view name, Permission permission, std::string_view key) const {
    const UserRecord* u = find(name);
    if (u == nullptr || !u->live) return false;
    for (const auto& g : u->grants) {
        if (!g.live || g.user_version != u->version) continue;
        if (g.permission != permission && g.permission != Permission::admin) continue;
        if (key.substr(0, g.prefix.size()) == g.prefix) return true;
    }
    return false;
}

std::vector<proto::UserInfo> Catalog::list() const {
    std::vector<proto::UserInfo> out;
    for (const auto& [name, u] : users_) {
        if (!u.live) continue;
        proto::UserInfo info{name, u.public_key_z85, {}};
        for (const auto& g : u.grants) {
            if (g.live && g.user_version == u.version) {
                info.grants.push_back(proto::GrantInfo{g.permission, g.prefix});
            }
        }
        std::sort(info.grants.begin(), info.grants.end(), [](const auto& a, const auto& b) {
            return std::tie(a.permission, a.prefix) < std::tie(b.permission, b.prefix);
        });
        out.push_back(std::move(info));
    }
    return out;
}

size_t Catalog::live_users() const {
    size_t n = 0;
    for (const auto& [name, u] : users_) n += u.live ? 1 : 0;
    return n;
}

uint64_t Catalog::digest_of(const UserRecord& u) {
    // Length-prefixed fields, so that no two records serialize alike.
    std::string s;
    auto add = [&s](std::string_view field) {
        s += std::to_string(field.size());
        s += ':';
        s += field;
    };
    add(u.name);
    add(u.public_key_z85);
    add(u.live ? "1" : "0");
    add(std::to_string(u.version.counter));
    add(u.version.origin);
    for (const auto& g : u.grants) {
        add(proto::permission_name(g.permission));
        add(g.prefix);
        add(g.live ? "1" : "0");
        add(std::to_string(g.version.counter));
        add(g.version.origin);
        add(std::to_string(g.user_version.counter));
        add(g.user_version.origin);
    }
    return ring::hash64(s);
}

std::vector<CatalogDigest> Catalog::digest() const {
    std::vector<CatalogDigest> out;
    out.reserve(users_.size());
    for (const auto& [name, u] : users_) out.push_back(CatalogDigest{name, digest_of(u)});
    return out;
}

}  // namespace kv::node
