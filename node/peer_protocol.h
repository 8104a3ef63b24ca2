// The node-to-node messages of the wire protocol (docs/PROTOCOL.md, "Node-to-node
// messages"), and kv::node::Message: every message a node sends or receives,
// the client contract's (client/protocol.h) followed by these. They share the
// frame layout, limits and codec (client/wire_codec.h) of the client messages,
// so a node decodes a client's frame and a client a node's reply; a client
// that receives one of these types gets unknown_type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "client/protocol.h"
#include "client/status.h"
#include "node/access/catalog_record.h"

namespace kv::node {

// One gossip payload (equals gossip::kGossipFrameBytesMax).
constexpr size_t kGossipPayloadBytesMax = 1024 * 1024;

// ---- coordinator to replica -------------------------------------------------
// `object` fields carry a node-encoded versioned object (node/data/object.h), opaque
// to this layer.

struct ReplicaReadRequest {
    uint64_t id = 0;
    std::string key;
    // The receiver is asked as a stand-in (sloppy quorum): it answers with the
    // hints it holds for the key, merged, instead of checking it owns the key.
    bool stand_in = false;
    // The receiver is asked as a new owner of the key's range, in place of a
    // replica that handed the range off (not_owner) while the change is under
    // way: it answers once it has received the whole range
    // (Replica::check_new_owner_read), else refuses as any read.
    bool new_owner = false;
    bool operator==(const ReplicaReadRequest&) const = default;
};
struct ReplicaReadResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;
    std::string message;
    std::optional<std::string> object;  // absent: the replica has nothing for the key
    bool operator==(const ReplicaReadResponse&) const = default;
};

// The coordinating replica mints the new version (a dot of its own) from the
// value and context, stores it and returns the whole resulting object, which
// the coordinator then merges into the other replicas.
struct ReplicaWriteRequest {
    uint64_t id = 0;
    std::string key;
    std::optional<std::string> value;  // absent: a tombstone
    std::optional<std::string> context;
    uint32_t siblings_max = 0;
    // Every replica the coordinator writes to, moving ranges' new owners
    // included: a replica that knows of a new owner missing here refuses
    // (not_owner), so no write skips a range in transfer.
    std::vector<std::string> targets;
    // What is left of the client request's deadline when the coordinator sends
    // this (0: no limit). The replica does not apply a request that waited
    // longer than this between its arrival and its handling (it answers
    // timeout), so a write that timed out takes effect only within a bounded
    // window (docs/ARCHITECTURE.md, "Deadlines and replica budgets").
    uint64_t budget_ms = 0;
    // Non-empty: no home replica is reachable, and the receiver, a stand-in
    // for this home replica, mints the version with its stand-in actor (it
    // does not hold the key's history: docs/ARCHITECTURE.md, "Dots stay
    // unique") and keeps the result as a hint for it.
    std::string hint_for;
    // A put without a context that supersedes all the minting replica holds
    // (proto::PutRequest::replace).
    bool replace = false;
    bool operator==(const ReplicaWriteRequest&) const = default;
};
struct ReplicaWriteResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;
    std::string message;
    std::string object;
    // The writer's context (node/data/object.h, writer_context): what the
    // coordinator returns in write_reply. Absent when the replica answered a
    // duplicate request, whose writer's view it no longer knows.
    std::optional<std::string> context;
    bool operator==(const ReplicaWriteResponse&) const = default;
};

// Merge a version into the replica's own (replication, read repair).
struct ReplicaMergeRequest {
    uint64_t id = 0;
    std::string key;
    std::string object;
    std::vector<std::string> targets;  // as in ReplicaWriteRequest; empty for read repair
    // As in ReplicaWriteRequest for a write's replication; 0 for read repair,
    // which only spreads versions some replica already holds.
    uint64_t budget_ms = 0;
    // Non-empty: the receiver is a stand-in for this home replica and keeps
    // the version as a hint for it (node/replica/hint_store.h), not as its own.
    std::string hint_for;
    bool operator==(const ReplicaMergeRequest&) const = default;
};
struct ReplicaMergeResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;
    std::string message;
    bool operator==(const ReplicaMergeResponse&) const = default;
};

struct PingRequest {
    uint64_t id = 0;
    std::string from_node;
    bool operator==(const PingRequest&) const = default;
};
struct PingResponse {
    uint64_t id = 0;
    std::string node_id;
    bool operator==(const PingResponse&) const = default;
};

// One step of a gossip round (gossip/gossip.h: syn,
// ack or ack2), encoded by gossip/gossip_codec.h, opaque here. One-way: each
// step arrives at the receiver's ROUTER as a request and is never answered;
// the next step, if any, is a new GossipRequest back to the sender's endpoint.
struct GossipRequest {
    uint64_t id = 0;
    std::string from_node;
    std::string payload;
    bool operator==(const GossipRequest&) const = default;
};

// ---- range transfer (rebalancing) -------------------------------------------
// A range's new owner pulls it from the replica it displaces (docs/ARCHITECTURE.md,
// "Rebalancing"). Both sides must compute the same ring change: `ring_digest`
// (of both the current and the future ring) must match the source's, else
// the source answers not_owner and the owner retries once gossip settles.

// A token range (start, end] of the ring; start == end is the whole ring.
struct TokenRange {
    uint64_t start = 0;
    uint64_t end = 0;
    bool operator==(const TokenRange&) const = default;
};
constexpr size_t kTransferRangesMax = 256;  // per request
constexpr uint32_t kStreamKeysMax = 512;    // per page

// A stream's cursor: the stored key a page ended at (the token's 8 bytes and
// the key, node/data/stored_record.h), opaque to the requester.
constexpr size_t kStreamCursorBytesMax = proto::kKeyBytesMax + 8;

// One page: the stored objects after the cursor `after_key` (from the start
// when absent) whose token falls in one of `ranges`, in store (token) order.
struct StreamRequest {
    uint64_t id = 0;
    std::string from_node;
    uint64_t ring_digest = 0;
    std::vector<TokenRange> ranges;
    std::optional<std::string> after_key;
    uint32_t keys_max = 0;
    bool operator==(const StreamRequest&) const = default;
};
// keys[i] holds objects[i]; `done`: the scan reached the end of the store.
struct StreamResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;
    std::string message;
    std::vector<std::string> keys;
    std::vector<std::string> objects;
    std::optional<std::string> last_key;  // where the next page resumes
    bool done = false;
    bool operator==(const StreamResponse&) const = default;
};
// The new owner has all of the ranges: the source stops serving reads and
// writes of them (it answers not_owner) for as long as its ring keeps them moving.
struct HandoffRequest {
    uint64_t id = 0;
    std::string from_node;
    uint64_t ring_digest = 0;
    std::vector<TokenRange> ranges;
    bool operator==(const HandoffRequest&) const = default;
};
struct HandoffResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;
    std::string message;
    bool operator==(const HandoffResponse&) const = default;
};

// ---- hinted handoff (docs/ARCHITECTURE.md, "Hinted handoff") ------------------
// A stand-in replays the hints it holds for a home replica that is back: the
// home merges each version (never mints it again) and answers once they are
// durable; the stand-in then deletes them. Keys the receiver does not own now
// (its ranges moved) are named in `not_owned`, and the stand-in sends those
// to the key's current home replicas instead.
constexpr size_t kHintBatchKeysMax = 1024;
struct HintReplayRequest {
    uint64_t id = 0;
    std::string from_node;
    std::vector<std::string> keys;
    std::vector<std::string> objects;  // objects[i]: the hint for keys[i]
    bool operator==(const HintReplayRequest&) const = default;
};
struct HintReplayResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;  // not ok: nothing may be taken as durable
    std::string message;
    std::vector<std::string> not_owned;
    bool operator==(const HintReplayResponse&) const = default;
};

// ---- anti-entropy (docs/ARCHITECTURE.md, "Anti-entropy") ----------------------
// An exchange between two replicas (node/antientropy/exchange.h): the
// initiator sends the hashes of token intervals both replicate (ae_compare);
// the peer names those whose hash differs from its own, and the initiator
// descends into them. Intervals within one leaf of the tree are compared key
// by key (ae_keys): the peer answers with its objects the initiator lacks or
// holds differently, and the keys it wants; the initiator merges them and
// pushes what was wanted (ae_push). Both sides only merge (never mint). Both
// rings must be equal (`ring_digest`), else the peer answers not_owner.
// Intervals are flat [lo, hi] pairs of tokens, lo <= hi.
// Within the codec's 1,024 items per array (a bound is two items).
constexpr size_t kAeIntervalsMax = 512;  // per ae_compare and ae_keys
constexpr size_t kAeEntriesMax = 1024;   // key entries per ae_keys
constexpr size_t kAeObjectsMax = 1024;   // objects per ae_keys_reply and ae_push
struct AeCompareRequest {
    uint64_t id = 0;
    std::string from_node;
    uint64_t ring_digest = 0;
    std::vector<uint64_t> bounds;  // lo, hi, lo, hi, ...
    std::vector<uint64_t> hashes;  // hashes[i]: the initiator's for interval i
    bool operator==(const AeCompareRequest&) const = default;
};
struct AeCompareResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;
    std::string message;
    std::vector<uint64_t> differ;  // indices of the intervals whose hash differs
    uint64_t hints_held = 0;       // hints the peer holds as a stand-in (tombstone GC)
    bool operator==(const AeCompareResponse&) const = default;
};
// The initiator's entries (key, entry hash) in intervals within one leaf each.
struct AeKeysRequest {
    uint64_t id = 0;
    std::string from_node;
    uint64_t ring_digest = 0;
    std::vector<uint64_t> bounds;
    std::vector<std::string> keys;
    std::vector<uint64_t> hashes;  // hashes[i]: of keys[i]; lowest bit: tombstones only
    bool operator==(const AeKeysRequest&) const = default;
};
struct AeKeysResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;
    std::string message;
    std::vector<std::string> keys;  // the peer's objects the initiator lacks or differs on
    std::vector<std::string> objects;
    std::vector<std::string> wants;  // keys whose initiator's object the peer wants
    // Objects were left out to bound the reply: the initiator asks again.
    bool truncated = false;
    bool operator==(const AeKeysResponse&) const = default;
};
struct AePushRequest {
    uint64_t id = 0;
    std::string from_node;
    std::vector<std::string> keys;
    std::vector<std::string> objects;
    bool operator==(const AePushRequest&) const = default;
};
struct AePushResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;  // ok: every object is merged and durable
    std::string message;
    bool operator==(const AePushResponse&) const = default;
};

// ---- user catalog (docs/SECURITY.md, "Users and grants") ----------------------
// Only members send these (Node refuses them from a user key). Every handler
// is a merge, so lost, duplicated or reordered messages are harmless.

// Users per catalog message: a sync answer carries at most this many, the rest
// travel in the next round.
constexpr size_t kCatalogUsersPerMessageMax = 64;
// Grant records of one user in a catalog message. Above the admin limit
// (proto::kGrantsPerUserMax): grants made at once on several nodes may
// together exceed it.
constexpr size_t kCatalogGrantsPerUserWireMax = 64;
// Digests in one sync request; also the most user records a node keeps
// (twice the admin limit, proto::kUsersMax, for the same reason).
constexpr size_t kCatalogDigestsMax = 512;

// Round step 1 (one member per gossip interval, round robin): the sender's
// digest of every user record it holds.
struct CatalogSyncRequest {
    uint64_t id = 0;
    std::string from_node;
    std::vector<CatalogDigest> digests;
    bool operator==(const CatalogSyncRequest&) const = default;
};
// Step 2: the records whose digest differs or which the sender lacks, and the
// names the answering node lacks or holds differently (`wants`).
struct CatalogSyncResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;
    std::string message;
    std::vector<UserRecord> users;
    std::vector<std::string> wants;
    bool operator==(const CatalogSyncResponse&) const = default;
};
// Records to merge: step 3 (the wanted ones), and the fast path (a change
// pushed to every member as it is made). One-way: never answered.
struct CatalogPushRequest {
    uint64_t id = 0;
    std::string from_node;
    std::vector<UserRecord> users;
    bool operator==(const CatalogPushRequest&) const = default;
};

// Every message on the wire: the client messages in the order of
// proto::Message, then the node-to-node ones. Adding an alternative without
// handling it in a std::visit with an exhaustive overload set fails to compile.
using Message = std::variant<
    proto::GetRequest, proto::PutRequest, proto::DelRequest, proto::LocalGetRequest,
    proto::StatusRequest, proto::GetResponse, proto::WriteResponse, proto::StatusResponse,
    proto::ErrorResponse, proto::LeaveRequest, proto::AdminResponse, proto::UserAddRequest,
    proto::UserDelRequest, proto::UserListRequest, proto::UserListResponse, proto::GrantRequest,
    proto::RevokeRequest, proto::OwnersRequest, proto::OwnersResponse, proto::RepairRequest,
    proto::RemoveNodeRequest, proto::StatsRequest, proto::StatsResponse, ReplicaReadRequest,
    ReplicaReadResponse, ReplicaWriteRequest, ReplicaWriteResponse, ReplicaMergeRequest,
    ReplicaMergeResponse, PingRequest, PingResponse, GossipRequest, StreamRequest, StreamResponse,
    HandoffRequest, HandoffResponse, CatalogSyncRequest, CatalogSyncResponse, CatalogPushRequest,
    HintReplayRequest, HintReplayResponse, AeCompareRequest, AeCompareResponse, AeKeysRequest,
    AeKeysResponse, AePushRequest, AePushResponse>;

// The "t" string of a message type.
std::string_view type_name(const Message& m);
uint64_t request_id(const Message& m);

std::string encode(const Message& m);

// Decodes one frame, with the checks and Status codes of proto::decode.
Result<Message> decode(std::string_view frame, uint64_t* id_out = nullptr);

}  // namespace kv::node
