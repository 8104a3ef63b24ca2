// kvcodec: what encoding and decoding one message costs the node (issue 14,
// docs/BENCHMARKS.md). Encodes and decodes the frames of a quorum get and put
// (the client's request, the replica requests and their answers, with values
// and objects of --value-bytes) in a loop, checks that every decode gives back
// the message encoded, and prints the CPU time per encode and per decode (the
// latter includes that check, a comparison of the message's fields: the same
// in any two builds compared).
// One thread, no sockets: the codec alone, so variants of it compare on one
// machine without a cluster's noise.
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <string>
#include <vector>

#include "node/peer_protocol.h"

namespace po = boost::program_options;

namespace {

// CPU time of this thread, in microseconds.
double thread_cpu_us() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_nsec) / 1e3;
}

struct Shape {
    const char* name;
    kv::node::Message message;
};

std::vector<Shape> shapes(size_t value_bytes) {
    using namespace kv;
    using namespace kv::node;
    const std::string key = "user000000012345";
    const std::string value(value_bytes, 'v');
    // An object of one version is about the value plus 80 bytes of clock and dot.
    const std::string object(value_bytes + 80, 'o');
    const std::vector<std::string> targets = {"n1", "n2", "n3"};
    std::vector<Shape> out;
    proto::GetRequest get;
    get.id = 1001;
    get.key = key;
    out.push_back({"get", get});
    proto::GetResponse get_reply;
    get_reply.id = 1001;
    get_reply.values = {value};
    get_reply.context = object;
    out.push_back({"get_reply", get_reply});
    ReplicaReadRequest read;
    read.id = 1002;
    read.key = key;
    out.push_back({"r_read", read});
    ReplicaReadResponse read_reply;
    read_reply.id = 1002;
    read_reply.object = object;
    out.push_back({"r_read_reply", read_reply});
    proto::PutRequest put;
    put.id = 1003;
    put.key = key;
    put.value = value;
    out.push_back({"put", put});
    ReplicaMergeRequest merge;
    merge.id = 1004;
    merge.key = key;
    merge.object = object;
    merge.targets = targets;
    merge.budget_ms = 2000;
    out.push_back({"r_merge", merge});
    ReplicaMergeResponse merge_reply;
    merge_reply.id = 1004;
    out.push_back({"r_merge_reply", merge_reply});
    proto::WriteResponse write_reply;
    write_reply.id = 1003;
    write_reply.context = object;
    out.push_back({"write_reply", write_reply});
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    size_t iterations = 200000;
    size_t value_bytes = 100;
    po::options_description options(
        "kvcodec: CPU per encode and decode of the request path's messages");
    options.add_options()("help", "this text")("iterations",
                                               po::value(&iterations)->default_value(iterations),
                                               "encodes and decodes of each message")(
        "value-bytes", po::value(&value_bytes)->default_value(value_bytes),
        "bytes of each value (objects carry 80 more)");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, options), vm);
        po::notify(vm);
    } catch (const std::exception& e) {
        std::cerr << "kvcodec: " << e.what() << "\n" << options;
        return 2;
    }
    if (vm.count("help")) {
        std::cout << options;
        return 0;
    }
    if (iterations == 0) {
        std::cerr << "kvcodec: --iterations must be at least 1\n";
        return 2;
    }

    std::printf("%-14s %7s %11s %11s\n", "message", "bytes", "encode_us", "decode_us");
    double encode_total_us = 0;
    double decode_total_us = 0;
    size_t count = 0;
    for (const Shape& shape : shapes(value_bytes)) {
        std::string frame;
        const double encode_start = thread_cpu_us();
        for (size_t i = 0; i < iterations; ++i) frame = kv::node::encode(shape.message);
        const double encode_us = (thread_cpu_us() - encode_start) / static_cast<double>(iterations);

        const double decode_start = thread_cpu_us();
        for (size_t i = 0; i < iterations; ++i) {
            kv::Result<kv::node::Message> decoded = kv::node::decode(frame, nullptr);
            if (!decoded.ok() || decoded.value() != shape.message) {
                std::fprintf(
                    stderr, "kvcodec: %s did not decode to what was encoded: %s\n", shape.name,
                    decoded.ok() ? "different fields" : decoded.status().message().c_str());
                return 1;
            }
        }
        const double decode_us = (thread_cpu_us() - decode_start) / static_cast<double>(iterations);
        std::printf("%-14s %7zu %11.3f %11.3f\n", shape.name, frame.size(), encode_us, decode_us);
        encode_total_us += encode_us;
        decode_total_us += decode_us;
        ++count;
    }
    std::printf("%-14s %7s %11.3f %11.3f\n", "mean", "",
                encode_total_us / static_cast<double>(count),
                decode_total_us / static_cast<double>(count));
    return 0;
}
