// getpid() answered from memory, for the executables that link this file
// (kvnode, kvbench, and kvfloor, whose floor must not pay what kvnode does not):
// never the client library, whose users own their process.
//
// Why: libzmq checks getpid() against the pid it saw at start-up on every
// mailbox operation (its fork check: each receive that finds nothing, each
// signal between a socket and its I/O thread), and glibc has made every
// getpid() a system call since 2.25. Under quorum gets that was 6 of a node
// loop's 13 system calls per turn and 45% of all a node made; a system call
// costs about 1.1 us on the machines we run on (docs/BENCHMARKS.md, issue
// 14, thirteenth step). glibc's own internal calls do not come here, but
// every shared library's do: a definition in the executable takes precedence
// over libc's for the symbols shared libraries import (libzmq, LMDB).
//
// The cache is what glibc did until 2.24, and what systemd and Ruby do: the
// pid is read once, and forgotten in the child of a fork (pthread_atfork), so
// the child reads its own. A child made by a raw clone() without fork()'s
// handlers would see its parent's pid: nothing in these executables does
// that.
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

namespace {

std::atomic<pid_t> g_cached_pid{0};  // 0: not read since start or fork (no process has pid 0)

void forget_pid_in_child() {
    g_cached_pid.store(0, std::memory_order_relaxed);
}

// Registered before main: nothing in these executables forks before then.
const bool g_fork_handler_registered = [] {
    if (::pthread_atfork(nullptr, nullptr, forget_pid_in_child) != 0) std::abort();
    return true;
}();

}  // namespace

extern "C" __attribute__((visibility("default"))) pid_t getpid() noexcept {
    pid_t pid = g_cached_pid.load(std::memory_order_relaxed);
    if (pid == 0) {
        // Threads racing here all read the same value: the store is benign.
        pid = static_cast<pid_t>(::syscall(SYS_getpid));
        g_cached_pid.store(pid, std::memory_order_relaxed);
    }
    return pid;
}
