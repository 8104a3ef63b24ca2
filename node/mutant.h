// Planted bugs (mutants), to measure what the simulator's checker catches
// (docs/SIMULATOR.md, "Mutants"). Test-only: everything here, and every hook
// `#ifdef KV_MUTANTS` in node/ and sim/, is compiled only into kv_core_mutants,
// kv_sim_mutants and kvsim_mutants (sim/CMakeLists.txt). kvnode, kv_core and the
// normal kvsim are built without KV_MUTANTS and contain none of it.
//
// One build holds every mutant, each a runtime switch, so the catalogue costs one
// extra build of the node core instead of one per mutant. A hook is the smallest
// change that plants its bug, guarded by `if (KV_MUTANT(name))`, with a comment
// naming the checker rule that should catch it.
#pragma once

#ifdef KV_MUTANTS

#include <cstdint>
#include <string_view>

namespace kv::mutant {

enum class Mutant : uint8_t {
    none,
    early_ack,
    ack_at_w_minus_1,
    read_quorum_off_by_one,
    read_ignores_one_replica,
    read_repair_off,
    lww_merge,
    merge_ignores_context,
    context_ignored_on_put,
    duplicate_suppression_off,
    merge_acked_not_stored,
    delete_not_replicated,
    tombstone_gc_on_merge,
    dot_reused,
    joiner_up_early,
    serve_after_failed_commit,
    hint_deleted_before_synced,
    stand_in_counted_twice,
    replay_remints,
    purge_unconfirmed,
    actor_kept_after_crash,
    answer_before_durable,
};

struct Info {
    Mutant mutant;
    std::string_view name;
    std::string_view plants;  // what the bug does
    std::string_view rule;    // the checker rule that should catch it
};

inline constexpr Info kCatalogue[] = {
    {Mutant::early_ack, "early_ack",
     "the coordinator acknowledges a write once the minting replica has it, whatever w asked",
     "read-your-writes (stale_read)"},
    {Mutant::ack_at_w_minus_1, "ack_at_w_minus_1",
     "the coordinator acknowledges a write once w-1 replicas have it (at least one)",
     "read-your-writes (stale_read)"},
    {Mutant::read_quorum_off_by_one, "read_quorum_off_by_one",
     "a get is answered once r-1 replicas answered (at least one)",
     "read-your-writes (stale_read)"},
    {Mutant::read_ignores_one_replica, "read_ignores_one_replica",
     "a get's answer leaves out the first replica's version when two or more answered",
     "read-your-writes (stale_read)"},
    {Mutant::read_repair_off, "read_repair_off", "reads never repair stale replicas",
     "convergence (divergence)"},
    {Mutant::lww_merge, "lww_merge",
     "merge keeps only the sibling with the largest dot (last write wins)",
     "no lost write (lost_write)"},
    {Mutant::merge_ignores_context, "merge_ignores_context",
     "merge keeps every sibling of both sides, superseded or not", "no resurrection; convergence"},
    {Mutant::context_ignored_on_put, "context_ignored_on_put",
     "a replica mints every put as if it had no context (blind)", "no resurrection"},
    {Mutant::duplicate_suppression_off, "duplicate_suppression_off",
     "a replica mints a duplicated ReplicaWriteRequest again", "no lost write; read-your-writes"},
    {Mutant::merge_acked_not_stored, "merge_acked_not_stored",
     "a replica answers ok to a peer's merge (replication, read repair) but stores nothing",
     "read-your-writes; convergence"},
    {Mutant::delete_not_replicated, "delete_not_replicated",
     "a replica answers ok to the replication of a delete (no live value) but stores nothing",
     "no resurrection; convergence"},
    {Mutant::tombstone_gc_on_merge, "tombstone_gc_on_merge",
     "a replica erases a key once a merge leaves it only tombstones (and their context)",
     "no resurrection; convergence"},
    {Mutant::dot_reused, "dot_reused",
     "a replica mints its next dot equal to its highest (reusing it) instead of one past it",
     "no lost write; convergence"},
    {Mutant::joiner_up_early, "joiner_up_early",
     "a joiner declares itself up while one range transfer is still pending",
     "convergence; no lost write (needs enough keys that the range holds some)"},
    {Mutant::serve_after_failed_commit, "serve_after_failed_commit",
     "the simulated runtime keeps a node serving after a failed commit (kvnode fail-stops)",
     "no lost write; no resurrection (memory ahead of the store)"},
    {Mutant::hint_deleted_before_synced, "hint_deleted_before_synced",
     "a stand-in deletes a hint when it sends it to the home replica, not once the home "
     "answered that it is durable",
     "convergence from hint replay (divergence); no lost write"},
    {Mutant::stand_in_counted_twice, "stand_in_counted_twice",
     "a stand-in's acknowledgement counts twice toward w",
     "acknowledged copies (a write acknowledged with fewer than w durable copies)"},
    {Mutant::replay_remints, "replay_remints",
     "the home replica mints a replayed hint's live values as new writes instead of merging it",
     "no resurrection; convergence"},
    {Mutant::purge_unconfirmed, "purge_unconfirmed",
     "tombstone GC purges a tombstone once its grace passed, without anti-entropy's confirmation",
     "no resurrection"},
    {Mutant::actor_kept_after_crash, "actor_kept_after_crash",
     "a node restarted after a crash mints with its old actor, though versions it sent ahead "
     "of a lost commit hold dots its store no longer knows",
     "dot uniqueness (dot_reuse)"},
    {Mutant::answer_before_durable, "answer_before_durable",
     "an answer that waits for its own writes (reply_after_writes) leaves once their batch has "
     "begun, not once it is durable",
     "acknowledged copies (ack_copies); no lost write"},
};

// The planted bug of this process (none: the real node). Set once before a
// simulation starts, never during one; the simulator is single-threaded.
inline Mutant active = Mutant::none;

inline const Info* find(std::string_view name) {
    for (const Info& info : kCatalogue) {
        if (info.name == name) return &info;
    }
    return nullptr;
}

}  // namespace kv::mutant

#define KV_MUTANT(name) (::kv::mutant::active == ::kv::mutant::Mutant::name)

#endif  // KV_MUTANTS
