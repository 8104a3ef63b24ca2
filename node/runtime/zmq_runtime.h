// The real runtime: drives one Node with a ZeroMQ poll loop, a steady clock and
// an LMDB store, on one thread. Messages are handled in batches; each batch's
// store writes commit in one transaction (group commit) before any reply or
// peer message of that batch is sent (node/env.h effects contract).
#pragma once

#include "node/runtime/config.h"

namespace kv::node {

// Runs until SIGTERM or SIGINT; returns the process exit code.
int run_node(const RuntimeConfig& config);

}  // namespace kv::node
