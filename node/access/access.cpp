#include "node/access/access.h"

#include <algorithm>
#include <type_traits>

#include "node/storage/meta_codec.h"

namespace kv::node {

namespace {

using proto::Permission;

std::string meta_key(std::string_view name) {
    return std::string(meta::kUserKeyPrefix) + std::string(name);
}

// What a client message needs: a permission on its key, admin, or nothing.
struct Need {
    std::optional<Permission> permission;
    std::string_view key;  // empty with admin
};

std::optional<Need> need_of(const Message& m) {
    return std::visit(
        [](const auto& r) -> std::optional<Need> {
            using T = std::decay_t<decltype(r)>;
            if constexpr (std::is_same_v<T, proto::GetRequest> ||
                          std::is_same_v<T, proto::LocalGetRequest> ||
                          std::is_same_v<T, proto::OwnersRequest>) {
                // owners reveals only where the key lives, which a reader of
                // the key may know (its reads go there).
                return Need{Permission::read, r.key};
            } else if constexpr (std::is_same_v<T, proto::PutRequest> ||
                                 std::is_same_v<T, proto::DelRequest>) {
                return Need{Permission::write, r.key};
            } else if constexpr (std::is_same_v<T, proto::LeaveRequest> ||
                                 std::is_same_v<T, proto::RepairRequest> ||
                                 std::is_same_v<T, proto::RemoveNodeRequest> ||
                                 std::is_same_v<T, proto::UserAddRequest> ||
                                 std::is_same_v<T, proto::UserDelRequest> ||
                                 std::is_same_v<T, proto::UserListRequest> ||
                                 std::is_same_v<T, proto::GrantRequest> ||
                                 std::is_same_v<T, proto::RevokeRequest>) {
                return Need{Permission::admin, {}};
            } else {
                // status (any known user) and responses (refused as such by
                // the node); node-to-node requests are refused before this.
                return std::nullopt;
            }
        },
        m);
}

}  // namespace

bool is_peer_request(const Message& m) {
    return std::holds_alternative<ReplicaReadRequest>(m) ||
           std::holds_alternative<ReplicaWriteRequest>(m) ||
           std::holds_alternative<ReplicaMergeRequest>(m) ||
           std::holds_alternative<PingRequest>(m) || std::holds_alternative<GossipRequest>(m) ||
           std::holds_alternative<StreamRequest>(m) || std::holds_alternative<HandoffRequest>(m) ||
           std::holds_alternative<CatalogSyncRequest>(m) ||
           std::holds_alternative<CatalogPushRequest>(m) ||
           std::holds_alternative<HintReplayRequest>(m) ||
           std::holds_alternative<AeCompareRequest>(m) ||
           std::holds_alternative<AeKeysRequest>(m) || std::holds_alternative<AePushRequest>(m);
}

Access::Access(const NodeConfig& config, Env& env, RequestIds& ids)
    : config_(config), env_(env), ids_(ids) {}

Status Access::start(const std::string& origin) {
    origin_ = origin;
    Status decoded_all;
    Status scanned = env_.scan(
        Space::meta, meta::kUserKeyPrefix, kCatalogDigestsMax + 1,
        [&](std::string_view key, std::string_view value) {
            if (key.substr(0, meta::kUserKeyPrefix.size()) != meta::kUserKeyPrefix) return false;
            auto decoded = decode(value);
            if (!decoded || !std::holds_alternative<CatalogPushRequest>(decoded.value()) ||
                std::get<CatalogPushRequest>(decoded.value()).users.size() != 1) {
                decoded_all =
                    Status(ErrorCode::storage_error,
                           "corrupt user record '" + std::string(key) + "' in the meta space");
                return false;
            }
            catalog_.merge(std::get<CatalogPushRequest>(decoded.value()).users.front());
            return true;
        });
    if (!scanned.ok()) return scanned;
    if (!decoded_all.ok()) return decoded_all;
    for (const auto& admin : config_.bootstrap_admins) {
        // Any record of the name, a deletion included, wins over the flag:
        // an admin who deleted the bootstrap user meant it.
        if (catalog_.find(admin.name) != nullptr) continue;
        auto added = catalog_.add_bootstrap_admin(admin.name, admin.public_key_z85);
        if (!added) {
            return Status(added.status().code(),
                          "bootstrap admin '" + admin.name + "': " + added.status().message());
        }
        persist(added.value());
        env_.log(LogLevel::info, "access: bootstrap admin '" + admin.name + "' added");
    }
    return {};
}

std::optional<std::string> Access::refusal(const Principal& who, const Message& message) const {
    if (who.kind != Principal::Kind::user) return std::nullopt;
    if (is_peer_request(message)) {
        return "'" + std::string(type_name(message)) +
               "' is a node-to-node message; only cluster members may send it";
    }
    auto name = catalog_.user_of_key(who.public_key_z85);
    if (!name) return "this client key belongs to no user (deleted since it connected?)";
    auto need = need_of(message);
    if (!need || !need->permission) return std::nullopt;
    if (*need->permission == Permission::admin) {
        if (catalog_.allows(*name, Permission::admin, "")) return std::nullopt;
        return "user '" + *name + "' has no admin grant, which '" +
               std::string(type_name(message)) + "' needs";
    }
    if (catalog_.allows(*name, *need->permission, need->key)) return std::nullopt;
    // Never the key itself: a refusal must not echo what the user sent.
    return "user '" + *name + "' has no " + std::string(proto::permission_name(*need->permission)) +
           " grant on a prefix of this key";
}

// ---- admin requests ------------------------------------------------------------

void Access::persist(const UserRecord& record) {
    env_.stage_write(StoreWrite{Space::meta, meta_key(record.name),
                                encode(CatalogPushRequest{0, "", {record}})});
}

void Access::changed(const ReplyTo& from, uint64_t id, Result<UserRecord> record,
                     const gossip::Membership& members, const std::string& done) {
    if (!record) {
        env_.reply(from,
                   proto::AdminResponse{id, record.status().code(), record.status().message()});
        return;
    }
    persist(record.value());
    for (const auto& m : members.members()) {
        if (m.id == config_.node_id) continue;
        env_.send(m.id, CatalogPushRequest{ids_.next(), config_.node_id, {record.value()}});
    }
    env_.log(LogLevel::info, "access: " + done);
    env_.reply(from, proto::AdminResponse{id, ErrorCode::ok, done});
}

void Access::handle(const ReplyTo& from, const proto::UserAddRequest& req,
                    const gossip::Membership& members) {
    changed(from, req.id, catalog_.add_user(req.name, req.public_key, origin_), members,
            "user '" + req.name + "' added");
}

void Access::handle(const ReplyTo& from, const proto::UserDelRequest& req,
                    const gossip::Membership& members) {
    changed(from, req.id, catalog_.delete_user(req.name, origin_), members,
            "user '" + req.name + "' deleted, with its grants");
}

void Access::handle(const ReplyTo& from, const proto::UserListRequest& req) {
    proto::UserListResponse resp{req.id, ErrorCode::ok, {}, catalog_.list()};
    // The admin limits keep a list far inside one frame, but merges of
    // changes made at once on several nodes may exceed them: the list is then
    // cut where a frame's object budget (client/protocol.h) would be reached.
    constexpr size_t kObjectsPerUser = 8, kObjectsPerGrant = 4;
    const size_t total = resp.users.size();
    size_t objects = 16, bytes = 1024, kept = 0;
    for (; kept < total; ++kept) {
        const auto& u = resp.users[kept];
        objects += kObjectsPerUser + kObjectsPerGrant * u.grants.size();
        bytes += 128 + u.name.size() + u.public_key.size();
        for (const auto& g : u.grants) bytes += 16 + g.prefix.size();
        if (objects > proto::kFrameObjectsMax || bytes > proto::kFrameBytesMax ||
            kept >= proto::kArrayItemsMax) {
            break;
        }
    }
    if (kept < total) {
        resp.users.resize(kept);
        resp.message = "the first " + std::to_string(kept) + " of " + std::to_string(total) +
                       " users: the rest do not fit one reply";
    }
    env_.reply(from, std::move(resp));
}

void Access::handle(const ReplyTo& from, const proto::GrantRequest& req,
                    const gossip::Membership& members) {
    changed(from, req.id, catalog_.set_grant(req.name, req.permission, req.prefix, true, origin_),
            members,
            "granted " + std::string(proto::permission_name(req.permission)) + " to '" + req.name +
                "' on " +
                (req.prefix.empty() ? std::string("every key")
                                    : std::to_string(req.prefix.size()) + "-byte prefix"));
}

void Access::handle(const ReplyTo& from, const proto::RevokeRequest& req,
                    const gossip::Membership& members) {
    changed(from, req.id, catalog_.set_grant(req.name, req.permission, req.prefix, false, origin_),
            members,
            "revoked " + std::string(proto::permission_name(req.permission)) + " from '" +
                req.name + "' on " +
                (req.prefix.empty() ? std::string("every key")
                                    : std::to_string(req.prefix.size()) + "-byte prefix"));
}

// ---- spreading -------------------------------------------------------------------

void Access::merge_all(const std::vector<UserRecord>& users) {
    for (const auto& u : users) {
        if (!catalog_.merge(u)) continue;
        if (const UserRecord* now = catalog_.find(u.name)) persist(*now);
    }
}

void Access::handle(const ReplyTo& from, const CatalogSyncRequest& req) {
    CatalogSyncResponse resp;
    resp.id = req.id;
    std::map<std::string_view, uint64_t> theirs;
    for (const auto& d : req.digests) theirs.emplace(d.name, d.hash);
    for (const auto& [name, u] : catalog_.users()) {
        auto t = theirs.find(name);
        if (t != theirs.end() && t->second == Catalog::digest_of(u)) continue;
        if (resp.users.size() < kCatalogUsersPerMessageMax) resp.users.push_back(u);
        // Differing on both sides: each sends its own, both merge.
        if (t != theirs.end() && resp.wants.size() < kCatalogUsersPerMessageMax) {
            resp.wants.push_back(name);
        }
    }
    for (const auto& d : req.digests) {
        if (catalog_.find(d.name) == nullptr && resp.wants.size() < kCatalogUsersPerMessageMax) {
            resp.wants.push_back(d.name);
        }
    }
    env_.reply(from, std::move(resp));
}

void Access::handle(const CatalogPushRequest& req) {
    merge_all(req.users);
}

bool Access::on_reply(const std::string& peer_id, const Message& message) {
    const auto* resp = std::get_if<CatalogSyncResponse>(&message);
    if (resp == nullptr) return false;
    if (resp->code != ErrorCode::ok) return true;
    merge_all(resp->users);
    CatalogPushRequest push{ids_.next(), config_.node_id, {}};
    for (const auto& name : resp->wants) {
        const UserRecord* u = catalog_.find(name);
        if (u != nullptr && push.users.size() < kCatalogUsersPerMessageMax)
            push.users.push_back(*u);
    }
    if (!push.users.empty()) env_.send(peer_id, std::move(push));
    return true;
}

void Access::tick(uint64_t now_ms, const gossip::Membership& members) {
    // An empty catalog has nothing to offer; members holding records reach
    // this node in their own rounds (and an unused catalog costs nothing).
    if (catalog_.empty() || now_ms < next_sync_ms_) return;
    next_sync_ms_ = now_ms + config_.gossip.interval_ms;
    std::vector<const std::string*> others;
    size_t self_index = 0;
    for (const auto& m : members.members()) {
        if (m.id == config_.node_id) {
            self_index = others.size();
        } else {
            others.push_back(&m.id);
        }
    }
    if (others.empty()) return;
    // Round robin from the member after this one, so that nodes start their
    // cycles at different peers.
    const std::string& peer = *others[(self_index + sync_cursor_++) % others.size()];
    CatalogSyncRequest req{ids_.next(), config_.node_id, catalog_.digest()};
    if (req.digests.size() > kCatalogDigestsMax) req.digests.resize(kCatalogDigestsMax);
    env_.send(peer, std::move(req));
}

}  // namespace kv::node
