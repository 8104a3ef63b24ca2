// Access: who may do what (docs/SECURITY.md, "Users and grants"). Owns the
// replicated user catalog (catalog.h): answers the admin requests that change
// it, persists every record in the meta space before the messages that
// announce it leave (Env effects contract), spreads changes, and checks each
// request of a user principal against the grants.
//
// Spreading: a change is pushed to every member at once (catalog_push, the
// fast path); and each gossip interval a node whose catalog is not empty runs
// one sync round with the next member in round-robin order (catalog_sync:
// digests, then the differing records both ways). Every member is thus synced
// with every other within (members - 1) intervals, which bounds how long a
// node that was down or cut off misses a change once it is reachable again.
// A node with an empty catalog sends nothing (members that hold records reach it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "client/status.h"
#include "gossip/membership.h"
#include "node/access/catalog.h"
#include "node/access/principal.h"
#include "node/env.h"
#include "node/node_config.h"
#include "node/peer_protocol.h"

namespace kv::node {

// Messages only cluster members send (node/peer_protocol.h): each handler
// trusts its sender to be a member (docs/SECURITY.md).
bool is_peer_request(const Message& m);

class Access {
  public:
    Access(const NodeConfig& config, Env& env, RequestIds& ids);

    // Loads the catalog from the meta space (a corrupt record stops the node),
    // then adds each bootstrap admin whose name the catalog has no record of.
    // `origin`: this node's actor id, the origin of the versions it mints.
    Status start(const std::string& origin);

    // Why `who` may not send `message`; nullopt when it may. Local and peer
    // principals may send everything; a user never a node-to-node message,
    // and a client request only as its grants allow.
    std::optional<std::string> refusal(const Principal& who, const Message& message) const;

    void handle(const ReplyTo& from, const proto::UserAddRequest& req,
                const gossip::Membership& members);
    void handle(const ReplyTo& from, const proto::UserDelRequest& req,
                const gossip::Membership& members);
    void handle(const ReplyTo& from, const proto::UserListRequest& req);
    void handle(const ReplyTo& from, const proto::GrantRequest& req,
                const gossip::Membership& members);
    void handle(const ReplyTo& from, const proto::RevokeRequest& req,
                const gossip::Membership& members);
    void handle(const ReplyTo& from, const CatalogSyncRequest& req);
    void handle(const CatalogPushRequest& req);
    // A reply to a sync this node started; false when `message` is not one.
    bool on_reply(const std::string& peer_id, const Message& message);
    // Starts a sync round when one is due.
    void tick(uint64_t now_ms, const gossip::Membership& members);

    std::optional<std::string> user_of_key(std::string_view public_key_z85) const {
        return catalog_.user_of_key(public_key_z85);
    }
    const Catalog& catalog() const { return catalog_; }

  private:
    // Persists a changed record, pushes it to every other member, answers ok.
    void changed(const ReplyTo& from, uint64_t id, Result<UserRecord> record,
                 const gossip::Membership& members, const std::string& done);
    void persist(const UserRecord& record);
    void merge_all(const std::vector<UserRecord>& users);

    const NodeConfig& config_;
    Env& env_;
    RequestIds& ids_;
    Catalog catalog_;
    std::string origin_;
    uint64_t next_sync_ms_ = 0;
    size_t sync_cursor_ = 0;  // round robin over the other members, by id
};

}  // namespace kv::node
