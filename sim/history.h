// The record a simulated workload keeps of what its clients asked and were told,
// in the order the operations started. It is the checker's only view of the
// workload (sim/checker.h) and, serialized, the thing whose digest must be equal
// for two runs of the same seed (determinism is checked, not hoped for).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "client/protocol.h"
#include "client/status.h"

namespace kv::sim {

enum class OpKind : uint8_t { get, put, del };
// ok and not_found are answers; failed is any other code the node replied;
// indeterminate: no reply before the client's timeout (the op may yet happen).
enum class Outcome : uint8_t { ok, not_found, failed, indeterminate };

std::string_view op_kind_name(OpKind kind);
std::string_view outcome_name(Outcome outcome);

constexpr int64_t kNoOp = -1;

struct HistoryEntry {
    uint64_t index = 0;  // position in the history (start order)
    uint32_t client = 0;
    uint32_t node = 0;  // the coordinator the request went to
    OpKind kind = OpKind::get;
    std::string key;
    std::string value;                   // put: unique per put in a run
    std::optional<std::string> context;  // put/del: the context carried, if any
    // put/del: the history index of the operation whose returned context was
    // carried: a get, or a put whose write_reply context it reuses (a client
    // writing the key it just wrote again); kNoOp for a write without context.
    int64_t context_from = kNoOp;
    // A client's retry of a write that failed or went unanswered: the history
    // index of the first attempt (kNoOp for a first attempt). A retry is a new
    // request with the first attempt's value and context, so one value may take
    // effect through any attempt, each within its own effect window, and twice
    // when more than one took effect.
    int64_t retry_of = kNoOp;
    // The same request (same request id) was also sent, at start_ms, to this
    // coordinator (possibly the same node again): both copies may take effect,
    // as two writes of one value. The outcome is the first reply's.
    std::optional<uint32_t> also_sent_to;
    proto::Level level = proto::Level::quorum;
    // Sent with Consistency::strict: only the key's home replicas counted
    // toward r or w, never stand-ins. The quorum-intersection rules of the
    // checker bind only pairs where both sides were strict.
    bool strict = false;
    uint64_t start_ms = 0;
    uint64_t end_ms = 0;  // when the answer arrived; for indeterminate, when the client gave up
    Outcome outcome = Outcome::indeterminate;
    ErrorCode code = ErrorCode::ok;
    std::vector<std::string> values;  // get: the values read
    std::string context_returned;     // get and write responses
    // The answer's info.stand_in_used: a stand-in's answer or acknowledgement
    // counted toward r or w (a sloppy quorum served it).
    bool stand_in_used = false;
};

struct History {
    uint32_t n_replicas = 3;  // the configured n: what the node judges every level against
    std::vector<HistoryEntry> entries;
};

// One line per entry; contexts in hex. Stable across runs and platforms.
std::string serialize(const History& history);
std::string describe(const HistoryEntry& entry);
// 64-bit FNV-1a of serialize(history).
uint64_t digest(const History& history);
uint64_t fnv1a64(std::string_view bytes, uint64_t seed = 0xcbf29ce484222325ULL);

}  // namespace kv::sim
