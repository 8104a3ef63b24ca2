// What kvfloor and kvwire share: their command line, and a server forked as a
// process of its own (as kvnode is one), which says where it listens once it
// serves. Header-only: two small tools, no library of their own.
#pragma once

#include <sched.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>
#include <string>

namespace kv::tools {

// Parses the command line into `vm`. Returns the exit code to end with (0
// after --help, 2 on a bad option, said on stderr), or nothing to go on.
inline std::optional<int> parse_options(const char* tool, int argc, char** argv,
                                        const boost::program_options::options_description& opts,
                                        boost::program_options::variables_map& vm) {
    namespace po = boost::program_options;
    try {
        po::store(po::parse_command_line(argc, argv, opts), vm);
        po::notify(vm);
    } catch (const std::exception& e) {
        std::cerr << tool << ": " << e.what() << "\n" << opts;
        return 2;
    }
    if (vm.count("help")) {
        std::cout << opts;
        return 0;
    }
    return std::nullopt;
}

// For the server: says the endpoint it bound, once it serves.
inline bool announce_endpoint(int ready_fd, const std::string& endpoint) {
    const std::string line = endpoint + "\n";
    const bool ok =
        ::write(ready_fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ::close(ready_fd);
    return ok;
}

// Confines the calling thread, and the threads it makes after, to the CPUs
// in `list` ("0", "0,1"): a side's ZeroMQ I/O thread is made with its
// context, so pinning before the context pins both of that side's threads.
// An empty list leaves the scheduler free. False, said on stderr, for a
// malformed list or CPUs this process may not use.
inline bool pin_to_cpus(const char* tool, const std::string& list) {
    if (list.empty()) return true;
    cpu_set_t set;
    CPU_ZERO(&set);
    size_t at = 0;
    while (at <= list.size()) {
        const size_t comma = std::min(list.find(',', at), list.size());
        const std::string cpu = list.substr(at, comma - at);
        if (cpu.empty() || cpu.size() > 4 ||
            cpu.find_first_not_of("0123456789") != std::string::npos ||
            std::stoi(cpu) >= CPU_SETSIZE) {
            std::fprintf(stderr, "%s: bad CPU list '%s' (CPU numbers, e.g. 0 or 0,1)\n", tool,
                         list.c_str());
            return false;
        }
        CPU_SET(std::stoi(cpu), &set);
        at = comma + 1;
    }
    if (::sched_setaffinity(0, sizeof set, &set) != 0) {
        std::fprintf(stderr, "%s: cannot run on CPUs %s: %s\n", tool, list.c_str(),
                     std::strerror(errno));
        return false;
    }
    return true;
}

struct ForkedServer {
    pid_t pid = -1;
    std::string endpoint;
};

// Forks a child that runs serve(ready_fd) and exits with what it returns;
// serve calls announce_endpoint once it serves. Waits for that line. Nothing
// when the fork failed or the child ended without announcing (then it is
// reaped); why is said on stderr.
inline std::optional<ForkedServer> fork_server(const char* tool,
                                               const std::function<int(int ready_fd)>& serve) {
    int ready[2];
    if (::pipe(ready) != 0) {
        std::fprintf(stderr, "%s: pipe: %s\n", tool, std::strerror(errno));
        return std::nullopt;
    }
    const pid_t child = ::fork();
    if (child < 0) {
        std::fprintf(stderr, "%s: fork: %s\n", tool, std::strerror(errno));
        ::close(ready[0]);
        ::close(ready[1]);
        return std::nullopt;
    }
    if (child == 0) {
        ::close(ready[0]);
        ::_exit(serve(ready[1]));
    }
    ::close(ready[1]);
    ForkedServer server{child, {}};
    char c = 0;
    while (::read(ready[0], &c, 1) == 1 && c != '\n') server.endpoint.push_back(c);
    ::close(ready[0]);
    if (server.endpoint.empty()) {
        ::waitpid(child, nullptr, 0);
        std::fprintf(stderr, "%s: the server did not start\n", tool);
        return std::nullopt;
    }
    return server;
}

}  // namespace kv::tools
