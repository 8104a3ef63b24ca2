#include "node/runtime/limits.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace kv::node {

std::optional<uint64_t> rss_anon_kib() {
    // /proc/self/statm, opened once and read again from its start: the
    // watchdog asks every 10 ms, and /proc/self/status, where RssAnon is
    // spelled out, is some 50 lines the kernel formats for one number
    // (an open, reads and a close each time). statm's resident pages less
    // its shared ones (file and shmem) are the same counter as RssAnon.
    static const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    static const long page_bytes = ::sysconf(_SC_PAGESIZE);
    if (fd < 0 || page_bytes <= 0) return std::nullopt;
    char text[128];
    const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
    if (n <= 0) return std::nullopt;
    text[n] = '\0';
    unsigned long long size = 0, resident = 0, shared = 0;
    if (std::sscanf(text, "%llu %llu %llu", &size, &resident, &shared) != 3 || shared > resident) {
        return std::nullopt;
    }
    return (resident - shared) * static_cast<uint64_t>(page_bytes) / 1024;
}

void release_free_memory() {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

void SlowReaders::mark(const std::string& route, uint64_t now_ms) {
    if (until_ms_.size() >= max_ && until_ms_.find(route) == until_ms_.end()) {
        for (auto it = until_ms_.begin(); it != until_ms_.end();) {
            it = it->second <= now_ms ? until_ms_.erase(it) : std::next(it);
        }
        if (until_ms_.size() >= max_) return;
    }
    until_ms_[route] = now_ms + penalty_ms_;
}

bool SlowReaders::blocked(const std::string& route, uint64_t now_ms) {
    if (until_ms_.empty()) return false;
    auto it = until_ms_.find(route);
    if (it == until_ms_.end()) return false;
    if (it->second > now_ms) return true;
    until_ms_.erase(it);
    return false;
}

std::string describe(const TransportStats& s) {
    return "replies dropped (reply queue full) " + std::to_string(s.replies_dropped) +
           ", requests dropped from slow readers " + std::to_string(s.requests_shed) +
           ", messages of more than one frame " + std::to_string(s.messages_too_long) +
           ", gossip endpoints closed " + std::to_string(s.gossip_evicted) +
           ", connection resets by the memory watchdog " + std::to_string(s.connection_resets);
}

}  // namespace kv::node
