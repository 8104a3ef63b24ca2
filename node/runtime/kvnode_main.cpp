// kvnode: one node of the store. See `kvnode --help` and docs/OPERATIONS.md.
#include <iostream>

#include "node/runtime/config.h"
#include "node/runtime/zmq_runtime.h"

int main(int argc, char** argv) {
    bool help_shown = false;
    auto config = kv::node::parse_config(argc, argv, std::cout, &help_shown);
    if (help_shown) return kv::node::kExitStopped;
    if (!config) {
        std::cerr << "kvnode: " << config.status().message() << " (see kvnode --help)\n";
        return kv::node::kExitConfig;
    }
    return kv::node::run_node(config.value());
}
