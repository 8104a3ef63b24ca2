// node/runtime/limits.h: the memory watchdog's reading of anonymous memory.
#include "node/runtime/limits.h"

#include <sys/mman.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>

namespace {

// RssAnon as /proc/self/status spells it, in KiB.
std::optional<uint64_t> status_rss_anon_kib() {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (f == nullptr) return std::nullopt;
    char line[256];
    std::optional<uint64_t> kib;
    while (std::fgets(line, sizeof line, f) != nullptr) {
        unsigned long long value = 0;
        if (std::strncmp(line, "RssAnon:", 8) == 0 && std::sscanf(line + 8, "%llu", &value) == 1) {
            kib = value;
        }
    }
    std::fclose(f);
    return kib;
}

}  // namespace

TEST_CASE("rss_anon_kib reads RssAnon and follows memory touched and returned") {
    const std::optional<uint64_t> before = kv::node::rss_anon_kib();
    const std::optional<uint64_t> spelled = status_rss_anon_kib();
    REQUIRE(before.has_value());
    REQUIRE(spelled.has_value());
    // The same counter, read a moment apart with nothing allocated between.
    CHECK(*before + 1024 >= *spelled);
    CHECK(*spelled + 1024 >= *before);

    constexpr size_t kBytes = 64u << 20;
    void* block =
        ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(block != MAP_FAILED);
    std::memset(block, 1, kBytes);  // every page faulted in
    const std::optional<uint64_t> touched = kv::node::rss_anon_kib();
    REQUIRE(touched.has_value());
    CHECK(*touched >= *before + (kBytes >> 10) - 4096);
    // Under AddressSanitizer the block's shadow (a byte for every 8) is
    // anonymous memory too.
    CHECK(*touched <= *before + (kBytes >> 10) * 9 / 8 + 4096);
    const std::optional<uint64_t> touched_spelled = status_rss_anon_kib();
    REQUIRE(touched_spelled.has_value());
    CHECK(*touched + 1024 >= *touched_spelled);
    CHECK(*touched_spelled + 1024 >= *touched);

    REQUIRE(::munmap(block, kBytes) == 0);
    const std::optional<uint64_t> after = kv::node::rss_anon_kib();
    REQUIRE(after.has_value());
    CHECK(*after + (kBytes >> 10) - 4096 <= *touched);
}
