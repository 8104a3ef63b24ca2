// The client contract of the wire protocol: every message a client sends or
// receives, as one std::variant, and its msgpack codec. docs/PROTOCOL.md is the
// normative description; this header and that document must agree. The
// node-to-node messages are not part of it: node/peer_protocol.h declares them.
//
// A frame is one msgpack map: {"v": 1, "t": "<type>", "id": <u64>, ...fields}.
// Decoding treats input as hostile: every size and nesting depth is checked
// before anything is allocated for it, unknown fields are ignored, and every
// failure is a Status (never an exception or a crash).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "client/status.h"

namespace kv::proto {

constexpr uint32_t kProtocolVersion = 1;

// Enforced limits (docs/PROTOCOL.md, "Limits"). A request beyond them is
// answered with the matching error code and changes nothing.
constexpr size_t kKeyBytesMax = 1024;
constexpr size_t kValueBytesMax = 1 << 20;            // 1 MiB
constexpr size_t kContextBytesMax = 64 * 1024;        // opaque causal context
constexpr size_t kObjectBytesMax = 16 * 1024 * 1024;  // one key's siblings, encoded
constexpr size_t kFrameBytesMax = 20 * 1024 * 1024;   // one message frame
constexpr size_t kIdBytesMax = 256;                   // node ids, endpoints, messages
constexpr size_t kMessageTextBytesMax = 4096;         // error message text
constexpr size_t kNestingDepthMax = 8;
constexpr size_t kArrayItemsMax = 1024;  // values, members, ...
constexpr size_t kMapItemsMax = 64;      // fields in one map
// Array items plus map keys and values in one whole frame: bounds what a
// decoder allocates, whatever the nesting (a 3-byte array header per item
// could otherwise demand kilobytes each).
constexpr size_t kFrameObjectsMax = 64 * 1024;
constexpr uint32_t kReplicasMax = 16;  // largest n, r or w
constexpr uint64_t kDeadlineMsMax = 600'000;

// How many replicas must answer. `count`, when non-zero, overrides `level`
// (the explicit r of a read or w of a write). `strict` counts only the key's
// home replicas, never stand-ins.
enum class Level : uint8_t { one, two, three, quorum, all };
std::string_view level_name(Level level);
std::optional<Level> level_from_name(std::string_view name);

struct Consistency {
    Level level = Level::quorum;
    uint32_t count = 0;
    bool strict = false;
    bool operator==(const Consistency&) const = default;
};
// Replicas needed out of n; 0 when the request asks for more than n (invalid).
uint32_t replicas_required(const Consistency& c, uint32_t n);

// What a coordinator did for a request; part of every data response.
struct ReplyInfo {
    uint32_t replicas_asked = 0;
    uint32_t replicas_answered = 0;
    bool stand_in_used = false;  // a replica outside the key's home set served
    uint32_t sibling_count = 0;
    bool operator==(const ReplyInfo&) const = default;
};

// ---- client -> node --------------------------------------------------------

struct GetRequest {
    uint64_t id = 0;
    std::string key;
    Consistency consistency;
    uint64_t deadline_ms = 0;  // relative to receipt; 0 = the node's default
    bool operator==(const GetRequest&) const = default;
};

// Create or update. Without a context it is a blind write (becomes a sibling of
// whatever is there); with the context of a get it supersedes what that get saw.
// `replace` without a context: supersedes everything the minting replica holds
// for the key, as a delete without a context does (what other replicas hold and
// it has not seen yet stays a sibling); the RESP gateway's SET.
struct PutRequest {
    uint64_t id = 0;
    std::string key;
    std::string value;
    std::optional<std::string> context;
    Consistency consistency;
    uint64_t deadline_ms = 0;
    bool replace = false;
    bool operator==(const PutRequest&) const = default;
};

// Writes a tombstone. Without a context it supersedes everything the
// coordinating replica holds for the key.
struct DelRequest {
    uint64_t id = 0;
    std::string key;
    std::optional<std::string> context;
    Consistency consistency;
    uint64_t deadline_ms = 0;
    bool operator==(const DelRequest&) const = default;
};

// This node's own replica of a key, without coordination (debugging, tests).
struct LocalGetRequest {
    uint64_t id = 0;
    std::string key;
    bool operator==(const LocalGetRequest&) const = default;
};

struct StatusRequest {
    uint64_t id = 0;
    bool operator==(const StatusRequest&) const = default;
};

// Asks the node to leave the ring: it declares itself leaving, its ranges
// stream to their new owners, then it declares itself left (kvctl leave).
struct LeaveRequest {
    uint64_t id = 0;
    bool operator==(const LeaveRequest&) const = default;
};

// kvctl repair: the answering node starts an anti-entropy exchange with every
// other ring member now, over every range it shares with each, or only the
// ring range (start, end] when !whole_ring. Answered with AdminResponse;
// progress shows in status (AntiEntropyStatus::repair_*). Admin grant.
// With stop_waiting_for (kvctl repair --stop-waiting-for), it starts nothing:
// a refilling node (node/antientropy/anti_entropy.h, begin_refill) stops
// waiting for those members, which may be gone for good; what only they and
// its lost data held is not seen in its replica reads until they are back.
struct RepairRequest {
    uint64_t id = 0;
    bool whole_ring = true;
    uint64_t start = 0;
    uint64_t end = 0;
    std::vector<std::string> stop_waiting_for;  // member ids
    bool operator==(const RepairRequest&) const = default;
};

// Asks the node to remove member `node_id`, which is down for good (kvctl
// removenode): its ranges are re-replicated from the surviving replicas, then
// it is left. Answered with AdminResponse.
struct RemoveNodeRequest {
    uint64_t id = 0;
    std::string node_id;
    bool operator==(const RemoveNodeRequest&) const = default;
};

// kvctl stats: the answering node's metrics, as its --metrics-listen page
// serves them (client/metrics.h). Like status, any known user may ask.
struct StatsRequest {
    uint64_t id = 0;
    bool operator==(const StatsRequest&) const = default;
};
struct StatsResponse {
    uint64_t id = 0;
    std::string text;  // Prometheus text exposition, format 0.0.4
    bool operator==(const StatsResponse&) const = default;
};

// Where a key lives as the answering node sees it now (kvctl owners, like
// Cassandra's nodetool getendpoints): answered with OwnersResponse. Reveals
// placement only, so a read grant covering the key allows it.
struct OwnersRequest {
    uint64_t id = 0;
    std::string key;
    bool operator==(const OwnersRequest&) const = default;
};

// ---- users and grants (admin; docs/PROTOCOL.md section 5.9) ----------------

// What a grant allows on the keys under its prefix: read (get, local_get, owners),
// write (put, del), or admin (users, grants, leave and removenode; only on the empty
// prefix, and it includes read and write everywhere).
enum class Permission : uint8_t { read, write, admin };
std::string_view permission_name(Permission p);
std::optional<Permission> permission_from_name(std::string_view name);

// Limits of the user catalog (docs/PROTOCOL.md, "Limits").
constexpr size_t kUserNameBytesMax = 64;
// User records a node accepts an add for: live and deleted ones (a deleted
// name's record must outlive every stale copy of the user, so it stays until
// the name is added again).
constexpr size_t kUsersMax = 256;
// Grant records of one user (granted and revoked ones) a node accepts a grant for.
constexpr size_t kGrantsPerUserMax = 16;

// A name of 1..kUserNameBytesMax bytes of [A-Za-z0-9._-].
bool is_valid_user_name(std::string_view name);

// Adds a user: `name` owns the CURVE public key `public_key` (Z85, 40
// characters). Refused (invalid_argument) when the name or the key belongs to a
// user already. Answered with AdminResponse.
struct UserAddRequest {
    uint64_t id = 0;
    std::string name;
    std::string public_key;
    bool operator==(const UserAddRequest&) const = default;
};
// Deletes a user and its grants. Answered with AdminResponse.
struct UserDelRequest {
    uint64_t id = 0;
    std::string name;
    bool operator==(const UserDelRequest&) const = default;
};
// Lists the users and their grants. Answered with UserListResponse.
struct UserListRequest {
    uint64_t id = 0;
    bool operator==(const UserListRequest&) const = default;
};
// Gives (grant) or takes back (revoke) `permission` on the keys that start
// with `prefix` (empty: every key). Answered with AdminResponse.
struct GrantRequest {
    uint64_t id = 0;
    std::string name;
    Permission permission = Permission::read;
    std::string prefix;
    bool operator==(const GrantRequest&) const = default;
};
struct RevokeRequest {
    uint64_t id = 0;
    std::string name;
    Permission permission = Permission::read;
    std::string prefix;
    bool operator==(const RevokeRequest&) const = default;
};

// ---- node -> client --------------------------------------------------------

// code ok: `values` holds every live sibling (at least one); code not_found:
// no live value (a deleted key still returns its context).
struct GetResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;
    std::string message;
    std::vector<std::string> values;
    std::string context;
    ReplyInfo info;
    bool operator==(const GetResponse&) const = default;
};

// Answer to put and del. `context` covers what the write's own context saw
// plus the write itself (not concurrent siblings it never saw), so a next
// write with it supersedes exactly those; empty when the node could not tell
// (docs/PROTOCOL.md, section 10).
struct WriteResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;
    std::string message;
    std::string context;
    ReplyInfo info;
    bool operator==(const WriteResponse&) const = default;
};

struct MemberStatus {
    std::string node_id;
    std::string endpoint;
    // "self", "up", "unreachable"; with gossip membership the member's gossip
    // status: "joining", "up", "suspect", "down", "leaving" or "left".
    std::string state;
    uint64_t last_seen_ms_ago = 0;
    uint32_t tokens = 0;     // ring positions (virtual nodes) it holds
    uint32_t share_ppm = 0;  // share of the ring it owns as first replica, in millionths
    bool operator==(const MemberStatus&) const = default;
};

// One range transfer of a membership change, as this node sees it.
struct TransferStatus {
    std::string peer;       // the node data comes from ("in") or goes to ("out")
    std::string direction;  // "in" or "out"
    std::string state;      // "streaming", "handing_off", "waiting" or "done"
    uint32_t ranges = 0;    // token ranges in the transfer
    uint64_t keys = 0;      // keys received ("in") or sent ("out") so far
    bool operator==(const TransferStatus&) const = default;
};

// Hints the answering node holds as a stand-in for one target (the home
// replica they are meant for), and their replay (docs/PROTOCOL.md, "status").
struct HintStatus {
    std::string target;
    uint64_t keys = 0;
    uint64_t bytes = 0;      // of the stored objects
    uint64_t oldest_ms = 0;  // age of the oldest hint held (since this node started, at most)
    uint64_t replayed = 0;   // hints the target made durable, since this node started
    uint64_t refused = 0;    // hints refused for it (its hint store full), since start
    bool replaying = false;  // a replay batch is in flight to it now
    bool operator==(const HintStatus&) const = default;
};

// Anti-entropy and tombstone GC as the answering node sees them (since it
// started, for the counters).
struct PeerVerified {
    std::string peer;
    bool verified = false;         // an exchange with it completed since start
    uint64_t verified_ms_ago = 0;  // since the last one started
    bool refill_pending = false;   // the answering node's refill waits for it
    bool operator==(const PeerVerified&) const = default;
};
struct AntiEntropyStatus {
    bool tree_ready = false;
    uint64_t keys_indexed = 0;
    uint64_t tombstones = 0;  // keys held whose siblings are all tombstones
    uint64_t tombstones_purged = 0;
    uint64_t exchanges = 0;
    uint64_t exchanges_failed = 0;
    uint64_t keys_received = 0;  // merged here from peers
    uint64_t keys_sent = 0;
    uint64_t messages = 0;
    uint64_t bytes_sent = 0;
    uint64_t bytes_received = 0;
    uint64_t repair_total = 0;  // exchanges the last kvctl repair queued
    uint64_t repair_done = 0;
    uint64_t repair_failed = 0;
    std::vector<PeerVerified> peers;  // every other ring member
    // Started on an empty data directory (static member list), its replica
    // reads wait for an exchange with each peer marked refill_pending.
    bool refilling = false;
    bool operator==(const AntiEntropyStatus&) const = default;
};

struct StatusResponse {
    uint64_t id = 0;
    std::string node_id;
    uint32_t n_replicas = 0;
    std::vector<MemberStatus> members;
    uint64_t keys_stored = 0;
    std::vector<TransferStatus> transfers;
    // Replicas a key has in the answering node's current ring: min(n_replicas,
    // ring members). Levels are judged against n_replicas, so while this is
    // smaller the levels needing more than it answer unavailable. 0 from a node
    // that predates the field.
    uint32_t n_effective = 0;
    // This node's leave, when one was asked: "queued: <what it waits for>",
    // "leaving", "left" or "refused: <why>"; empty when none (PROTOCOL.md 5.8).
    std::string leave;
    // Hints held, by target (empty when none), and the token ranges this node
    // marked under-replicated because a hint for them was refused.
    std::vector<HintStatus> hints;
    uint64_t under_replicated_ranges = 0;
    // A removal (kvctl removenode) this node was asked for or knows to be under
    // way: "queued: ...", "removing X: ...", "X removed", "refused: ..." or
    // "X is being removed by Y"; empty when none (PROTOCOL.md 5.8).
    std::string removal;
    std::optional<AntiEntropyStatus> anti_entropy;  // absent from nodes before issue 13
    bool operator==(const StatusResponse&) const = default;
};

// A home replica of a key and whether the answering node's failure detector
// has it reachable now ("up") or not ("down"; the node itself is always up).
struct HomeReplica {
    std::string node_id;
    std::string state;
    bool operator==(const HomeReplica&) const = default;
};
// A member that would stand in for a home replica that is down (Dynamo §4.6:
// it keeps what it receives as a hint for that home).
struct StandInReplica {
    std::string node_id;
    std::string for_home;
    bool operator==(const StandInReplica&) const = default;
};
// Answer to owners: computed from the answering node's current ring and its
// own view of which members are reachable, so two nodes may answer differently
// while their views differ (docs/PROTOCOL.md, "owners").
struct OwnersResponse {
    uint64_t id = 0;
    std::vector<HomeReplica> homes;  // the key's preference list, in order
    // One per home that is down and has a reachable member to stand in for
    // it, in the homes' order; empty when the node uses no stand-ins.
    std::vector<StandInReplica> stand_ins;
    // Members that are taking the key's range over while it moves (a join or
    // a leave under way); writes go to them as well.
    std::vector<std::string> new_owners;
    uint32_t n_replicas = 0;  // the configured n
    // The answering node coordinates with stand-ins (--hinted-handoff).
    bool sloppy = false;
    bool operator==(const OwnersResponse&) const = default;
};

// Answer to an admin request (leave): ok, or why not.
struct AdminResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;
    std::string message;
    bool operator==(const AdminResponse&) const = default;
};

struct GrantInfo {
    Permission permission = Permission::read;
    std::string prefix;
    bool operator==(const GrantInfo&) const = default;
};
struct UserInfo {
    std::string name;
    std::string public_key;
    std::vector<GrantInfo> grants;
    bool operator==(const UserInfo&) const = default;
};
// Answer to user_list: the users the answering node knows, by name, each
// with its grants in (permission, prefix) order.
struct UserListResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::ok;
    std::string message;
    std::vector<UserInfo> users;
    bool operator==(const UserListResponse&) const = default;
};

// For a frame that could not be understood; `id` is the request id when it
// could be read, else 0.
struct ErrorResponse {
    uint64_t id = 0;
    ErrorCode code = ErrorCode::bad_request;
    std::string message;
    bool operator==(const ErrorResponse&) const = default;
};

// Every message a client sends or receives. Adding an alternative without
// handling it in a std::visit with an exhaustive overload set fails to compile.
using Message =
    std::variant<GetRequest, PutRequest, DelRequest, LocalGetRequest, StatusRequest, GetResponse,
                 WriteResponse, StatusResponse, ErrorResponse, LeaveRequest, AdminResponse,
                 UserAddRequest, UserDelRequest, UserListRequest, UserListResponse, GrantRequest,
                 RevokeRequest, OwnersRequest, OwnersResponse, RepairRequest, RemoveNodeRequest,
                 StatsRequest, StatsResponse>;

// The "t" string of a message type.
std::string_view type_name(const Message& m);
uint64_t request_id(const Message& m);

std::string encode(const Message& m);

// Decodes one frame. On failure the Status says why (bad_request,
// unsupported_version, unknown_type, message_too_large, key_too_large,
// value_too_large, ...) and *id_out, when given, holds the request id if the
// "id" field could be read, else 0.
Result<Message> decode(std::string_view frame, uint64_t* id_out = nullptr);

}  // namespace kv::proto
