// The decode budget of stored objects and contexts (node/data/object.h,
// object_decode_bytes_max): decoding S hostile bytes allocates at most about
// twice S plus a fixed bound, whatever their shape, while valid objects at the
// limits still decode. The peak is measured by counting every malloc of this
// process (the operators new of libstdc++ and msgpack's zone both call malloc),
// so this test is its own executable.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <catch2/catch.hpp>

#include "client/protocol.h"
#include "node/data/object.h"

// AddressSanitizer replaces malloc with its own allocator; counting around it
// would bypass its checks, so the asan variant of this test measures nothing.
#if !defined(__SANITIZE_ADDRESS__)
#define KV_COUNT_ALLOCATIONS 1

extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_realloc(void*, size_t);
extern "C" void __libc_free(void*);
extern "C" void* __libc_memalign(size_t, size_t);

namespace {
std::atomic<size_t> g_live_bytes{0};
std::atomic<size_t> g_peak_bytes{0};

void count_alloc(void* p) {
    if (p == nullptr) return;
    const size_t now = g_live_bytes += malloc_usable_size(p);
    size_t peak = g_peak_bytes.load();
    while (now > peak && !g_peak_bytes.compare_exchange_weak(peak, now)) {
    }
}
void count_free(void* p) {
    if (p != nullptr) g_live_bytes -= malloc_usable_size(p);
}
}  // namespace

extern "C" void* malloc(size_t size) {
    void* p = __libc_malloc(size);
    count_alloc(p);
    return p;
}
extern "C" void* calloc(size_t n, size_t size) {
    void* p = __libc_calloc(n, size);
    count_alloc(p);
    return p;
}
extern "C" void* realloc(void* old, size_t size) {
    count_free(old);
    void* p = __libc_realloc(old, size);
    count_alloc(p != nullptr || size == 0 ? p : old);
    return p;
}
// The aligned forms too, so that free() never subtracts what was not counted.
extern "C" void* memalign(size_t alignment, size_t size) {
    void* p = __libc_memalign(alignment, size);
    count_alloc(p);
    return p;
}
extern "C" void* aligned_alloc(size_t alignment, size_t size) {
    return memalign(alignment, size);
}
extern "C" int posix_memalign(void** out, size_t alignment, size_t size) {
    void* p = memalign(alignment, size);
    if (p == nullptr) return ENOMEM;
    *out = p;
    return 0;
}
extern "C" void free(void* p) {
    count_free(p);
    __libc_free(p);
}
#endif

namespace {

using namespace kv;
using namespace kv::node;

// The most `decode` allocated at once beyond what was live before it.
template <typename Decode>
size_t peak_bytes_of(Decode decode) {
#ifdef KV_COUNT_ALLOCATIONS
    const size_t before = g_live_bytes.load();
    g_peak_bytes = before;
    decode();
    return g_peak_bytes.load() - before;
#else
    decode();
    return 0;
#endif
}

void append_array_header(std::string& out, uint32_t items) {
    if (items < 16) {
        out.push_back(static_cast<char>(0x90 | items));
    } else {
        out.push_back('\xdd');
        for (int shift = 24; shift >= 0; shift -= 8)
            out.push_back(static_cast<char>(items >> shift));
    }
}

// [[], [A, A, ...]] where each A is an array of `inner` empty arrays, filled
// to `bytes`: the cheapest input per allocated msgpack object, the shape that
// cost 383 MB for 16 MiB before the budget.
std::string empty_arrays_object(size_t bytes, uint32_t inner) {
    const size_t inner_bytes = 5 + inner;
    const uint32_t outer = static_cast<uint32_t>((bytes - 1 - 1 - 5) / inner_bytes);
    std::string out;
    out.reserve(bytes);
    append_array_header(out, 2);
    append_array_header(out, 0);
    append_array_header(out, outer);
    for (uint32_t i = 0; i < outer; ++i) {
        append_array_header(out, inner);
        out.append(inner, '\x90');
    }
    return out;
}

// `o` survives its encoding, and decoding it stays within the budget.
void check_decodes_within_budget(const Object& o) {
    const std::string bytes = encode_object(o);
    REQUIRE(bytes.size() <= proto::kObjectBytesMax);
    Result<Object> decoded = Status(ErrorCode::internal, "not run");
    const size_t peak = peak_bytes_of([&] { decoded = decode_object(bytes); });
    REQUIRE(decoded.ok());
    CHECK(decoded.value() == o);
    INFO("peak " << peak << " bytes for " << bytes.size() << " input bytes");
    CHECK(peak <= object_decode_bytes_max(bytes.size()));
}

}  // namespace

TEST_CASE("a 16 MiB object of empty arrays is refused within the decode budget",
          "[object][budget]") {
    const std::string hostile = empty_arrays_object(proto::kObjectBytesMax, 65535);
    REQUIRE(hostile.size() <= proto::kObjectBytesMax);
    REQUIRE(hostile.size() > proto::kObjectBytesMax - 70000);
    Result<Object> decoded = Status(ErrorCode::internal, "not run");
    const size_t peak = peak_bytes_of([&] { decoded = decode_object(hostile); });
    CHECK_FALSE(decoded.ok());
    CHECK(decoded.status().code() == ErrorCode::bad_request);
    INFO("peak " << peak << " bytes for " << hostile.size() << " input bytes");
    CHECK(peak <= object_decode_bytes_max(hostile.size()));
}

TEST_CASE("hostile shapes of every size stay within the decode budget", "[object][budget]") {
    for (uint32_t inner : {0u, 1u, 15u, 16u, 1000u, 65535u}) {
        for (size_t bytes : {size_t{64}, size_t{4096}, size_t{1} << 20}) {
            if (bytes < 16 + inner) continue;  // no room for one inner array
            const std::string hostile = empty_arrays_object(bytes, inner);
            Result<Object> decoded = Status(ErrorCode::internal, "not run");
            const size_t peak = peak_bytes_of([&] { decoded = decode_object(hostile); });
            INFO("inner " << inner << ", " << hostile.size() << " bytes: peak " << peak);
            CHECK(peak <= object_decode_bytes_max(hostile.size()));
            CHECK_FALSE(decoded.ok());
        }
    }
}

TEST_CASE("valid objects at the limits decode within the budget", "[object][budget]") {
    SECTION("15 siblings of 1 MiB values, just under kObjectBytesMax") {
        Object o;
        for (uint64_t c = 1; c <= 15; ++c) {
            o.context.set("n1.0000000000000001", c);
            o.siblings.push_back({Dot{"n1.0000000000000001", c},
                                  std::string(proto::kValueBytesMax, static_cast<char>(c))});
        }
        check_decodes_within_budget(o);
    }
    SECTION("the most siblings and context entries a decode takes, each minimal") {
        // One sibling per actor, then more dots of the last actor: every
        // sibling's value empty, every actor short.
        Object o;
        for (size_t a = 0; a < kDecodeActorsMax; ++a) {
            char name[8];
            std::snprintf(name, sizeof name, "a%04zu", a);
            o.context.set(name, 1);
            o.siblings.push_back({Dot{name, 1}, std::string()});
        }
        const std::string last = o.context.entries().rbegin()->first;
        uint64_t counter = 1;
        while (o.siblings.size() < kDecodeSiblingsMax)
            o.siblings.push_back({Dot{last, ++counter}, std::nullopt});
        o.context.set(last, counter);
        check_decodes_within_budget(o);
    }
    SECTION("a context with the most exceptions a decode takes") {
        VersionVector vv;
        const size_t exceptions = kDecodeExceptionsMax;
        vv.set("n1.0000000000000001", 2 * exceptions + 1);
        for (uint64_t c = 1; c <= exceptions; ++c) vv.remove(Dot{"n1.0000000000000001", 2 * c});
        Object o;
        o.context = vv;
        check_decodes_within_budget(o);
    }
}
