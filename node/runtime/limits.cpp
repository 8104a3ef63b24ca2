#include "node/runtime/limits.h"

#include <cstdio>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace kv::node {

std::optional<uint64_t> rss_anon_kib() {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (f == nullptr) return std::nullopt;
    char line[256];
    std::optional<uint64_t> kib;
    while (std::fgets(line, sizeof line, f) != nullptr) {
        unsigned long long value = 0;
        if (std::strncmp(line, "RssAnon:", 8) == 0 && std::sscanf(line + 8, "%llu", &value) == 1) {
            kib = value;
            break;
        }
    }
    std::fclose(f);
    return kib;
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
