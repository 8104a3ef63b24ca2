// libFuzzer entry point of one target: KV_FUZZ_TARGET names a function of
// tests/fuzz/decoders.h (tests/fuzz/CMakeLists.txt builds one binary each).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/decoders.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    kv::fuzz::KV_FUZZ_TARGET(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
}
