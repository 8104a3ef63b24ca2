// kvnode's configuration: command-line flags, each also settable in a
// `--config FILE` (INI-style `name = value` lines; flags given on the command
// line win).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "client/status.h"
#include "gossip/membership.h"
#include "node/env.h"
#include "node/node.h"

namespace kv::node {

struct RuntimeConfig {
    NodeConfig node;
    std::string listen;                   // ZeroMQ endpoint the ROUTER binds
    std::string data_dir;                 // LMDB environment
    std::vector<gossip::Member> members;  // static membership (unused with node.seeds)
    bool sync = true;                     // fsync every commit
    uint64_t map_size_mb = 65536;
    LogLevel log_level = LogLevel::info;
    uint32_t batch_messages_max = 512;  // messages handled per commit (group commit)
};

// Parses argv. Returns the configuration, or an error; with --help writes the
// option reference to `help` and returns ErrorCode::ok in *help_shown.
Result<RuntimeConfig> parse_config(int argc, const char* const* argv, std::ostream& help,
                                   bool* help_shown);

}  // namespace kv::node
