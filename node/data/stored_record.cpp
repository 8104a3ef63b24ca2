#include "node/data/stored_record.h"

#include <xxhash.h>

#include "ring/ring.h"

namespace kv::node {

namespace {
void put_u64(std::string& out, uint64_t v) {
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get_u64(std::string_view in) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
    return v;
}
}  // namespace

uint64_t entry_hash(std::string_view key, std::string_view object, bool tombstones_only) {
    // The key's hash seeds the object's: every change of a stored object
    // passes here, so the value is hashed where it lies, never copied.
    const uint64_t h = XXH3_64bits_withSeed(object.data(), object.size(), ring::hash64(key));
    return (h & ~uint64_t{1}) | (tombstones_only ? 1 : 0);
}

std::string stored_key(uint64_t token, std::string_view key) {
    std::string out;
    out.reserve(8 + key.size());
    put_u64(out, token);
    out.append(key);
    return out;
}

std::string stored_key(std::string_view key) {
    return stored_key(ring::hash64(key), key);
}

std::string stored_value(uint64_t hash, uint64_t since_ms, std::string_view object) {
    std::string out;
    out.reserve(kStoredHeaderBytes + object.size());
    put_u64(out, hash);
    put_u64(out, since_ms);
    out.append(object);
    return out;
}

std::optional<StoredRecordView> read_stored_record(std::string_view key, std::string_view value) {
    if (key.size() < 9 || value.size() < kStoredHeaderBytes) return std::nullopt;
    StoredRecordView r;
    r.token = get_u64(key);
    r.key = key.substr(8);
    r.hash = get_u64(value);
    r.since_ms = get_u64(value.substr(8));
    r.object = value.substr(kStoredHeaderBytes);
    return r;
}

}  // namespace kv::node
