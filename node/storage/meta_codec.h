// The node's own records in the meta space (Space::meta): their keys and the one
// codec they are written with. Every meta record a node writes is named here, so
// a reader of a data directory finds its whole layout in one page.
//
// Versioned: the record `format` holds kMetaFormat. A directory without it was
// written by a node of format 1, the first, or is new. Format 2 moved the
// stored objects and their anti-entropy entries into one space
// (node/storage/upgrade.h, which kvnode runs before start). A node that finds
// a format it does not know, or format 1 data not yet moved, stops instead of
// guessing (node/node.h, start()).
//
// Integers inside binary records are 8-byte little-endian (put_u64/get_u64, the
// only such codec of node/); counters are decimal text.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/status.h"
#include "ring/ring.h"

namespace kv::node::meta {

constexpr uint32_t kMetaFormat = 2;

// The format of this directory's meta records (decimal).
constexpr std::string_view kFormatKey = "format";
// The actor id this node mints with: node id "." 16 hex digits, fresh per
// directory and again after every start that follows an unclean stop.
constexpr std::string_view kActorKey = "actor";
// Present while a life of the node runs, erased by a clean stop (Node::stop):
// found at start, the last life crashed, and the versions it had sent ahead
// of its commits (Env::send_ahead) may be held by peers but not here.
constexpr std::string_view kRunningKey = "running";
// Gossip: the incarnation of this node's latest life (decimal), and the ring
// positions it claimed (tokens), kept across restarts so that the ring does
// not move when a member comes back.
constexpr std::string_view kIncarnationKey = "incarnation";
constexpr std::string_view kTokensKey = "tokens";
// The status this node last declared (joining, up, leaving, left), so that a
// restart resumes a join or a leave instead of starting over as up.
constexpr std::string_view kStatusKey = "status";
// The other members as last seen (a gossip ack2 frame: endpoint, status,
// tokens), so that a restarted node routes by the ring it knew, not by a ring
// of itself alone until gossip reaches it.
constexpr std::string_view kViewKey = "view";
// A leave this node was asked for (GossipDriver::queue_leave): "queued" while
// it waits for its turn, so a restart announces it again instead of forgetting
// a leave the operator was told is queued; "refused: " and the reason once it
// was refused in its turn (status keeps showing why). Absent once leaving.
constexpr std::string_view kLeaveKey = "leave";
// The member that removed this node (kvctl removenode), written when this node
// heard of its removal while holding tokens: its data is of a life the cluster
// removed, so the node refuses to start with it (delete the directory to join
// again as a new node).
constexpr std::string_view kRemovedKey = "removed";
// Every handoff this node accepted: by new owner, the ranges it stopped serving.
constexpr std::string_view kHandoffsKey = "handoffs";
// Hinted handoff (node/replica/hint_store.h): by target, the token ranges in
// which a hint was refused because the target's hints were full (the handoffs
// codec); anti-entropy takes them over.
constexpr std::string_view kUnderReplicatedKey = "under_replicated";
// Tombstone GC (node/replica/replica.h, purge): the highest counter of this
// node's actor in any object it purged (encode_u64_text), so that no later
// mint reuses a dot the purged history held.
constexpr std::string_view kPurgeFloorKey = "purge_floor";
// Format 1 only: anti-entropy's index (Space::key_hashes) was complete. The
// upgrade to format 2 erases it.
constexpr std::string_view kKeyHashesBuiltKey = "key_hashes";
// Written by the store when it opened a damaged write-ahead log by dropping
// records (kvnode --wal-discard-damaged; node/storage/store_logged.cpp): what
// was dropped. Node::start then refills as a wiped node does; the refill's end
// erases it.
constexpr std::string_view kLostWritesKey = "lost_writes";
// Written by Node::start when a node with a static member list starts on an
// empty data directory (it may be a member that lost its disk): why it
// refills. The refill's end erases it, so a node stopped or crashed before
// its refill ended refills again at its next start instead of serving replica
// reads with what little it received.
constexpr std::string_view kRefillKey = "refill";
// The user catalog (node/access/catalog.h): one record per user name under
// this prefix and the name, each a catalog_push frame holding that one user
// record with its grant records (node/peer_protocol.h).
constexpr std::string_view kUserKeyPrefix = "user:";

void put_u64(std::string& out, uint64_t v);
// Reads 8 bytes from the front of `in` and drops them; false when fewer remain.
bool get_u64(std::string_view& in, uint64_t& v);

std::string encode_u64_text(uint64_t v);
std::optional<uint64_t> decode_u64_text(std::string_view text);

// Tokens: 8 bytes each. Decoding sorts them and drops duplicates; nullopt when
// the size is not a multiple of 8 or more than tokens_max tokens are held.
std::string encode_tokens(const std::vector<uint64_t>& tokens);
std::optional<std::vector<uint64_t>> decode_tokens(std::string_view bytes, size_t tokens_max);

// Handoffs: per target, its id (length-prefixed), then its ranges (count, then
// start and end of each).
using HandoffRecord = std::map<std::string, std::vector<ring::Range>>;
std::string encode_handoffs(const HandoffRecord& handoffs);
std::optional<HandoffRecord> decode_handoffs(std::string_view bytes);

// Whether a stored format record (nullopt: none yet) is one this build reads:
// none, or kMetaFormat (format 1 is read only by the upgrade).
Status check_format(const std::optional<std::string>& stored);

}  // namespace kv::node::meta
