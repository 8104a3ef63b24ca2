// The coordinator of client requests (Dynamo §4.5): any node coordinates any
// key. For a key, the replicas come from Placement.
//  - get (read_path.cpp): ask the r replicas the level needs (this node
//    first), answer once r answered, merging their versions; ask the others
//    when one fails, when they disagree, or when the read is slow; after all
//    asked answered (or the deadline), read-repair the ones that were stale.
//    At r = n the answer waits for the repair.
//  - put/del (write_path.cpp): one replica (this node when it is one) mints
//    the new version from the value and the client's context, then the
//    coordinator merges that version into every other replica; success once w
//    replicas made it durable. While the key's range moves, its new owners are
//    written too and count on top of w.
// A request that cannot meet its level fails with unavailable (too few replicas
// reachable at the start) or timeout (deadline passed), naming how many were
// asked and how many answered. Nothing is acknowledged before it is durable
// (Env effects contract).
//
// Owns the request slab: every op in flight, its deadline and its peer calls.
// An op lives until every replica answered or its deadline passed; its client
// is answered at most once. Two budgets bound the slab (NodeConfig): an op
// counts against its client's and the total admission budget until its client
// is answered, then against the background budget (read repair, replication
// beyond w) until it finishes; when that is full its follow-up is dropped.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <vector>

#include "node/data/object.h"
#include "node/env.h"
#include "node/membership/peers.h"
#include "node/membership/placement.h"
#include "node/node_config.h"
#include "node/peer_protocol.h"
#include "node/replica/replica.h"

namespace kv::node {

class Coordinator {
  public:
    Coordinator(const NodeConfig& config, Env& env, RequestIds& ids, NodeStats& stats,
                const Placement& placement, const Peers& peers, Replica& replica);
    ~Coordinator();

    // `received_ms`: this node's clock when the request arrived (nullopt: now);
    // the deadline counts from it, and a request already past it is answered
    // timeout without touching any replica.
    void handle(const ReplyTo& from, proto::GetRequest req,
                std::optional<uint64_t> received_ms = std::nullopt);
    // `replace`: a put without a context supersedes all the minting replica
    // holds (proto::PutRequest::replace).
    void handle_write(const ReplyTo& from, uint64_t client_id, std::string key,
                      std::optional<std::string> value, std::optional<std::string> context,
                      bool replace, const proto::Consistency& consistency, uint64_t deadline_ms,
                      std::optional<uint64_t> received_ms = std::nullopt);
    // A peer's reply to one of the ops' calls; late or unknown replies are dropped.
    void on_reply(const std::string& peer_id, Message message);
    // The runtime could not hand a call to a peer: that replica fails now.
    void on_send_failed(const std::string& peer_id, uint64_t request_id);
    // Fails or finishes every op whose deadline passed; asks the spares of
    // every read still unanswered past its spares_due_ms; drops the
    // connections' budget entries left at zero ops.
    void expire_due(uint64_t now_ms);

    // Ops in the slab: answered or not.
    size_t in_flight() const { return ops_in_flight_; }
    // Ops whose client is not answered yet, and their bytes.
    size_t client_ops() const { return client_total_.ops; }
    size_t client_bytes() const { return client_total_.bytes; }
    // Client connections with a budget entry (ops in flight, or none since
    // the last expire_due).
    size_t connections_tracked() const { return by_connection_.size(); }
    // Answered ops kept for follow-up work, and their bytes.
    size_t background_ops() const { return background_.ops; }
    size_t background_bytes() const { return background_.bytes; }
    // Memory an op is charged on top of its key, value and context: the op,
    // its maps and its peer calls, measured as an upper bound for n <= 5.
    static constexpr size_t kOpOverheadBytes = 2048;

  private:
    enum class OpKind : uint8_t { read, write };
    struct Op;
    struct PendingPeerCall {
        Op* op = nullptr;  // in flight while the call is in pending_ (finish() erases it)
        std::string peer;
    };

    struct Usage {
        size_t ops = 0;
        size_t bytes = 0;
    };

    // Admission: nullopt when a request of `bytes` from `from` fits every
    // limit, else why not (the limit and its flag), counted as overloaded.
    std::optional<std::string> refuse_admission(const ReplyTo& from, size_t bytes);
    // Charges an admitted op to its client's and the total budgets.
    void charge_client(Op& op);
    // The op's client was just answered: its slots are freed at once, and it
    // moves to the background budget, or finishes when that is full.
    void on_answered(Op& op);
    // Adds bytes the op holds now (a replica's version) to whichever budget it is in.
    void charge_more(Op& op, size_t bytes);
    void release(const Op& op);

    // Slab.
    // A fresh op: a finished one's buffers reused when one is kept, so that
    // a request does not allocate its op and the op's vectors anew.
    std::unique_ptr<Op> new_op();
    Op& add_op(std::unique_ptr<Op> op, uint64_t deadline_at_ms);
    // When a request received at `received_ms` with `deadline_ms` (0: default) is due.
    uint64_t deadline_at(std::optional<uint64_t> received_ms, uint64_t deadline_ms);
    // The timeout answer of a request that was past its deadline before it was handled.
    std::string late_request_message(uint64_t deadline_at_ms, uint64_t deadline_ms);
    Op* find_call(uint64_t request_id, const std::string& peer_id);
    // `ahead`: a write's replica merge, which may leave before this node's own
    // copy is durable (Env::send_ahead).
    uint64_t call_peer(Op& op, const std::string& peer, Message request, bool ahead = false);
    void peer_call_failed(Op& op, const std::string& peer_id, const Status& failed);
    void fail(Op& op, ErrorCode code, const std::string& why);
    void fail_unavailable(Op& op, size_t succeeded, const char* verb);
    void expire(Op& op);
    // Removes the op from the slab; `op` is gone after it.
    void finish(Op& op);

    // Reads (read_path.cpp).
    // Asks one replica for the key: a peer call, or this node's read (whose
    // answer is handled before it returns).
    void ask_replica(Op& op, const std::string& replica);
    // Asks up to `count` of the op's spares (never this node: it is asked first).
    void ask_spares(Op& op, size_t count);
    // Asks the new owners of the key's range (while it moves) that are not
    // current replicas, in place of a home replica that handed it off.
    void ask_new_owners(Op& op);
    // `object` is taken: the first one decoded is kept to compare the others with.
    void on_read_reply(Op& op, const std::string& replica, const Status& status,
                       std::optional<std::string> object);
    void on_repair_reply(Op& op, const std::string& replica, const Status& status);
    void maybe_finish_read(Op& op);
    void send_read_repairs(Op& op);
    void answer_read(Op& op);
    // The merge of the versions the op's replicas answered, made once per change of them.
    const Object& merged_versions(Op& op);
    // Decodes the answers that were the first object's bytes (Op::same_as_first)
    // into the op's versions.
    void decode_first(Op& op);
    // Every replica that answered holds the same version (or none did).
    bool answers_agree(Op& op);

    // Writes (write_path.cpp).
    void send_mint(Op& op);
    // Gives the turn to mint to the next candidate when `replica`, the current
    // one, certainly minted nothing; false when there is no next candidate.
    bool pass_mint_turn(Op& op, const std::string& replica);
    // `live_count`: the minted object's live values, when the caller knows
    // them (a version minted here); otherwise the object is decoded.
    void on_write_reply(Op& op, const std::string& replica, const Status& status,
                        const std::string& object, const std::string* writer_context,
                        std::optional<size_t> live_count = std::nullopt);
    void start_replication(Op& op, const std::string& object_bytes);
    // A replica merge, or for a stand-in a merge kept as a hint for its home.
    void send_merge(Op& op, const std::string& replica, const std::string& object_bytes);
    // A home replica failed a sloppy write: the version goes to the next
    // reachable member past the homes that the op does not use yet, as a
    // stand-in for it; false when there is none.
    bool replace_failed_home(Op& op, const std::string& home);
    // The op finishes: hints, kept by this node, for the home replicas that
    // did not acknowledge and that no acknowledging stand-in covers.
    void keep_fallback_hints(const Op& op);
    void on_merge_reply(Op& op, const std::string& replica, const Status& status);

    const NodeConfig& config_;
    Env& env_;
    RequestIds& ids_;
    NodeStats& stats_;
    const Placement& placement_;
    const Peers& peers_;
    Replica& replica_;

    // The slab's tree nodes (deadlines_, spares_due_, pending_) come from
    // this pool and go back to it: a request makes no heap allocation for
    // them once the slab has held as many at a time (declared first: the
    // maps give their nodes back to it).
    std::pmr::unsynchronized_pool_resource node_pool_;
    // The ops in flight, by slot (Op::slot); a null slot is free.
    std::vector<std::unique_ptr<Op>> slots_;
    std::vector<uint32_t> free_slots_;
    size_t ops_in_flight_ = 0;
    // Finished ops kept, cleared, for their buffers (at most kRecycledOpsMax).
    std::vector<std::unique_ptr<Op>> recycled_ops_;
    static constexpr size_t kRecycledOpsMax = 64;
    // Ordered by (due time, op id): ops due at the same millisecond expire in
    // the order they were made.
    using DueOps = std::pmr::map<std::pair<uint64_t, uint64_t>, Op*>;
    DueOps deadlines_{&node_pool_};   // (deadline_ms, op id)
    DueOps spares_due_{&node_pool_};  // (spares_due_ms, op id): reads
    uint64_t reads_rotated_ = 0;      // turns the first remote replica a read asks
    std::pmr::map<uint64_t, PendingPeerCall> pending_{&node_pool_};  // peer request id -> op
    Usage client_total_;                                             // ops not answered yet
    // The same, by ReplyTo route; an entry at zero ops counts as absent and
    // is dropped at the next expire_due.
    std::map<std::string, Usage> by_connection_;
    Usage background_;  // answered, not finished
};

}  // namespace kv::node
