// kvfloor: the latency floor of a lone get at `one` on one node (issue 14,
// docs/BENCHMARKS.md): a bare ZeroMQ round trip over TCP loopback between two
// processes (DEALER to ROUTER, as kvbench and kvnode talk) whose server does
// one LMDB read of a value (a read transaction, mdb_get, abort) per request.
// No encoding, no node logic, no sync: what no store built this way can beat.
// The server is a forked child with its own ZeroMQ context, as kvnode is its
// own process; the client sends one request at a time. It links the getpid
// cache kvnode links (client/getpid_cache.cpp), so libzmq's fork checks cost
// the floor no system call that they no longer cost the node.
#include <lmdb.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "tools/forked_server.h"

namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kStopFrame = "stop";

bool check(int rc, const char* what) {
    if (rc == 0) return true;
    std::fprintf(stderr, "kvfloor: %s: %s\n", what, mdb_strerror(rc));
    return false;
}

// Fills `keys` keys of `value_bytes` each, then serves reads until told to stop.
// Writes the endpoint it bound to `ready_fd` once it serves.
int serve(const std::string& endpoint, const std::string& dir, uint32_t keys, uint32_t value_bytes,
          const std::string& cpus, int ready_fd) {
    if (!kv::tools::pin_to_cpus("kvfloor", cpus)) return 1;
    MDB_env* env = nullptr;
    if (!check(mdb_env_create(&env), "mdb_env_create")) return 1;
    if (!check(mdb_env_set_mapsize(env, size_t{1} << 30), "mdb_env_set_mapsize")) return 1;
    if (!check(mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0644), "mdb_env_open")) return 1;
    MDB_dbi dbi = 0;
    {
        MDB_txn* txn = nullptr;
        if (!check(mdb_txn_begin(env, nullptr, 0, &txn), "mdb_txn_begin")) return 1;
        if (!check(mdb_dbi_open(txn, nullptr, 0, &dbi), "mdb_dbi_open")) return 1;
        const std::string value(value_bytes, 'v');
        for (uint32_t i = 0; i < keys; ++i) {
            std::string key = "k" + std::to_string(i);
            MDB_val k{key.size(), key.data()};
            MDB_val v{value.size(), const_cast<char*>(value.data())};
            if (!check(mdb_put(txn, dbi, &k, &v, 0), "mdb_put")) return 1;
        }
        if (!check(mdb_txn_commit(txn), "mdb_txn_commit")) return 1;
    }
    zmq::context_t ctx(1);
    zmq::socket_t router(ctx, zmq::socket_type::router);
    router.set(zmq::sockopt::linger, 0);
    router.bind(endpoint);
    if (!kv::tools::announce_endpoint(ready_fd, router.get(zmq::sockopt::last_endpoint))) return 1;
    for (;;) {
        zmq::message_t route, request;
        if (!router.recv(route) || !router.recv(request)) continue;
        if (request.to_string_view() == kStopFrame) break;
        // The request names the key; the reply carries its value.
        const std::string key(request.to_string_view());
        MDB_txn* txn = nullptr;
        if (!check(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), "mdb_txn_begin")) return 1;
        MDB_val k{key.size(), const_cast<char*>(key.data())};
        MDB_val v{0, nullptr};
        const int rc = mdb_get(txn, dbi, &k, &v);
        zmq::message_t reply(rc == 0 ? v.mv_size : 0);
        if (rc == 0) std::memcpy(reply.data(), v.mv_data, v.mv_size);
        mdb_txn_abort(txn);
        router.send(route, zmq::send_flags::sndmore);
        router.send(reply, zmq::send_flags::none);
    }
    mdb_env_close(env);
    return 0;
}

uint64_t quantile_us(const std::vector<uint64_t>& sorted, double q) {
    if (sorted.empty()) return 0;
    const auto i = static_cast<size_t>(q * static_cast<double>(sorted.size() - 1));
    return sorted[i];
}

}  // namespace

int main(int argc, char** argv) {
    uint16_t port = 0;
    uint32_t requests = 0, keys = 0, value_bytes = 0, warmup = 0;
    bool json = false;
    std::string server_cpus, client_cpus;
    po::options_description opts("kvfloor: a bare ZeroMQ round trip plus an LMDB read");
    opts.add_options()("help", "this text")(
        "port", po::value(&port)->default_value(0),
        "TCP port on 127.0.0.1 for the server (0: any free one)")(
        "requests", po::value(&requests)->default_value(20000), "timed round trips")(
        "warmup", po::value(&warmup)->default_value(2000), "untimed round trips first")(
        "keys", po::value(&keys)->default_value(100000), "keys stored and read at random")(
        "value-bytes", po::value(&value_bytes)->default_value(100), "bytes per value")(
        "json", po::bool_switch(&json), "one JSON line instead of a table")(
        "server-cpus", po::value(&server_cpus),
        "CPUs the server's threads run on, e.g. 0 (default: wherever the scheduler puts them)")(
        "client-cpus", po::value(&client_cpus), "CPUs the client's threads run on, e.g. 1");
    po::variables_map vm;
    if (auto code = kv::tools::parse_options("kvfloor", argc, argv, opts, vm)) return *code;
    if (keys == 0 || requests == 0) {
        std::cerr << "kvfloor: --keys and --requests must be at least 1\n";
        return 2;
    }
    const std::string endpoint =
        "tcp://127.0.0.1:" + (port == 0 ? std::string("*") : std::to_string(port));
    char dir_template[] = "/tmp/kvfloor-XXXXXX";
    if (::mkdtemp(dir_template) == nullptr) {
        std::perror("kvfloor: mkdtemp");
        return 1;
    }
    const std::string dir = dir_template;
    // The server's endpoint, once it is filled and bound.
    const auto server = kv::tools::fork_server("kvfloor", [&](int ready_fd) {
        return serve(endpoint, dir, keys, value_bytes, server_cpus, ready_fd);
    });
    if (!server) {
        std::filesystem::remove_all(dir);
        return 1;
    }
    const pid_t child = server->pid;
    const std::string& bound = server->endpoint;

    int rc = kv::tools::pin_to_cpus("kvfloor", client_cpus) ? 0 : 1;
    std::vector<uint64_t> us;
    if (rc == 0) {
        zmq::context_t ctx(1);
        zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
        dealer.set(zmq::sockopt::linger, 0);
        dealer.set(zmq::sockopt::rcvtimeo, 10'000);
        dealer.connect(bound);
        uint64_t state = 88172645463325252ull;  // xorshift: keys at random, no allocation
        us.reserve(requests);
        for (uint32_t i = 0; i < warmup + requests; ++i) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            const std::string key = "k" + std::to_string(state % keys);
            const auto start = Clock::now();
            dealer.send(zmq::buffer(key), zmq::send_flags::none);
            zmq::message_t reply;
            if (!dealer.recv(reply)) {
                std::fprintf(stderr, "kvfloor: no reply within 10 s\n");
                rc = 1;
                break;
            }
            const auto took =
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
            if (reply.size() != value_bytes) {
                std::fprintf(stderr, "kvfloor: a reply of %zu bytes, expected %u\n", reply.size(),
                             value_bytes);
                rc = 1;
                break;
            }
            if (i >= warmup) us.push_back(static_cast<uint64_t>(took));
        }
        dealer.set(zmq::sockopt::sndtimeo, 1000);
        dealer.send(zmq::str_buffer("stop"), zmq::send_flags::none);
    } else {
        ::kill(child, SIGTERM);  // it serves until told to stop, and nothing will tell it
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    std::filesystem::remove_all(dir);
    if (rc != 0) return rc;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "kvfloor: the server failed\n");
        return 1;
    }
    std::sort(us.begin(), us.end());
    const uint64_t p50 = quantile_us(us, 0.5), p99 = quantile_us(us, 0.99),
                   p999 = quantile_us(us, 0.999);
    if (json) {
        std::printf("{\"requests\":%zu,\"p50_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu}\n",
                    us.size(), static_cast<unsigned long long>(p50),
                    static_cast<unsigned long long>(p99), static_cast<unsigned long long>(p999));
    } else {
        std::printf("floor: %zu round trips (ZeroMQ over loopback + one LMDB read of %u bytes)\n",
                    us.size(), value_bytes);
        std::printf("p50 %llu us, p99 %llu us, p999 %llu us\n",
                    static_cast<unsigned long long>(p50), static_cast<unsigned long long>(p99),
                    static_cast<unsigned long long>(p999));
    }
    return 0;
}
