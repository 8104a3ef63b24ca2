// The real runtime: drives one Node with a ZeroMQ poll loop, a steady clock and
// an LMDB store, on one thread. Messages are handled in batches; each batch's
// store writes commit in one transaction (group commit) before any reply or
// peer message of that batch is sent (node/env.h effects contract).
#pragma once

#include "node/runtime/config.h"

namespace kv::node {

// kvnode's exit codes. A service manager restarts the node after
// kExitFailed (a full disk, descriptors run out: cured by time or room) but
// not after the others, which a restart would only repeat.
constexpr int kExitStopped = 0;            // SIGTERM or SIGINT: a clean stop
constexpr int kExitFailed = 1;             // a failure that trying again may cure
constexpr int kExitConfig = 2;             // a configuration error
constexpr int kExitDataNeedsOperator = 3;  // the data directory must be restored or repaired
                                           // (a write-ahead log damaged in its middle)

// Runs until SIGTERM or SIGINT; returns the process exit code (above).
int run_node(const RuntimeConfig& config);

}  // namespace kv::node
