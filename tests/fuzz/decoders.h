// The fuzz targets: one entry point per decoder of bytes that arrive from the
// network or the disk. Each decodes its input and, when that succeeds,
// encodes the result and decodes it again, aborting (with a message on
// stderr) when the codec breaks the round trip it promises. A crash, a
// sanitizer report or an abort is a finding.
//
// Built twice: by clang with libFuzzer (tests/fuzz/CMakeLists.txt, one binary
// per target, fuzz_main.cpp) and by the normal build into fuzz_regression_test,
// which replays tests/fuzz/corpus/<target>/ and tests/fuzz/regressions/<target>/
// through the same functions on every build (docs/TESTING.md).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kv::fuzz {

using TargetFn = void (*)(std::string_view input);

struct Target {
    std::string_view name;  // the folder under corpus/ and regressions/
    TargetFn run;
};

// Every target, in a fixed order.
const std::vector<Target>& targets();

void client_frame(std::string_view input);    // kv::proto::decode
void batch_frame(std::string_view input);     // kv::proto::split_batch_frame, then each message
void node_frame(std::string_view input);      // kv::node::decode (every node-to-node message)
void gossip_payload(std::string_view input);  // kv::gossip::decode
void stored_object(std::string_view input);   // kv::node::decode_object, read_stored_record
void object_merge(std::string_view input);    // two stored objects, then kv::node::merge
void causal_context(std::string_view input);  // kv::node::decode_context
void meta_record(std::string_view input);     // node/storage/meta_codec.h decoders
void z85(std::string_view input);             // kv::z85_decode
void resp_command(std::string_view input);    // node/resp/resp_parser.h (Redis commands)
void http_request(std::string_view input);    // node/metrics/http_server.h (the metrics page)
void metrics_text(std::string_view input);    // client/metrics.h parse (kvctl stats)
void link_bytes(std::string_view input);      // client/secure_link.h server end, before a session

// Small valid encodings and edge cases of each target's input, by target
// name: the seed corpus (written to tests/fuzz/corpus/ by
// `KV_FUZZ_WRITE_CORPUS=DIR fuzz_regression_test`). Defined in seeds.cpp,
// which only fuzz_regression_test compiles (it borrows the unit tests' samples).
struct Seed {
    std::string name;
    std::string bytes;
};
std::vector<Seed> seeds(std::string_view target);

}  // namespace kv::fuzz
