// getpid() from memory (client/getpid_cache.cpp): the definition shared
// libraries resolve to, right in the process and in a fork's child.
#include <dlfcn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <zmq.hpp>

namespace {

pid_t kernel_pid() {
    return static_cast<pid_t>(::syscall(SYS_getpid));
}

}  // namespace

TEST_CASE("getpid: the cached pid is the process's") {
    REQUIRE(::getpid() == kernel_pid());
    REQUIRE(::getpid() == ::getpid());
}

TEST_CASE("getpid: shared libraries resolve getpid to the cache, not to libc's") {
    // The lookup a shared library's import goes through (libzmq's, LMDB's).
    void* global = ::dlsym(RTLD_DEFAULT, "getpid");
    void* libc = ::dlsym(RTLD_NEXT, "getpid");
    REQUIRE(global == reinterpret_cast<void*>(&::getpid));
    REQUIRE(libc != nullptr);
    REQUIRE(libc != global);
}

TEST_CASE("getpid: a fork's child reads its own pid, the parent keeps its own") {
    const pid_t parent = ::getpid();
    zmq::context_t ctx;  // libzmq asks getpid() as it works: it must agree with the kernel
    zmq::socket_t socket(ctx, zmq::socket_type::pull);
    zmq::message_t nothing;
    REQUIRE_FALSE(socket.recv(nothing, zmq::recv_flags::dontwait));
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // No Catch2 in the child: its exit code is the verdict.
        const pid_t mine = ::getpid();
        ::_exit(mine == kernel_pid() && mine != parent && mine == ::getpid() ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    REQUIRE(::getpid() == parent);
    REQUIRE(parent == kernel_pid());
}
