// How a replica's stored objects lie in the store (Space::objects): one record
// per key, ordered by token, carrying what anti-entropy needs beside the object.
//
//   key   = token (8 bytes, big endian: store order is token order) + the key
//   value = entry hash (8 bytes) + since_ms (8 bytes), big endian, + the
//           encoded object (node/data/object.h)
//
// The entry hash covers the key and its encoded object; its lowest bit says
// whether every sibling is a tombstone (what the exchange and tombstone GC look
// for). since_ms is this node's monotonic clock when it last changed the key.
// Keeping both in the object's own record (they used to be a second record, in
// an index space of their own) saves a store write per change, and the
// token order lets anti-entropy and range streaming scan the objects directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kv::node {

constexpr size_t kStoredHeaderBytes = 16;  // entry hash + since_ms

// The hash of a key's entry: `object` is its encoded stored object.
uint64_t entry_hash(std::string_view key, std::string_view object, bool tombstones_only);
// The record's key for a key (its token is ring::hash64(key)).
std::string stored_key(std::string_view key);

// The codec itself is inline and calls nothing, so that the fuzz targets can
// read records without the ring and xxHash.
namespace stored_detail {
inline void put_u64(std::string& out, uint64_t v) {
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline uint64_t get_u64(std::string_view in) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
    return v;
}
}  // namespace stored_detail

// The record's key for a key of token `token`, into `out` (replacing what it
// held; a caller that reuses one buffer allocates once, not at every read).
inline void stored_key_into(std::string& out, uint64_t token, std::string_view key) {
    out.clear();
    out.reserve(8 + key.size());
    stored_detail::put_u64(out, token);
    out.append(key);
}
inline std::string stored_key(uint64_t token, std::string_view key) {
    std::string out;
    stored_key_into(out, token, key);
    return out;
}

// The record's value.
inline std::string stored_value(uint64_t hash, uint64_t since_ms, std::string_view object) {
    std::string out;
    out.reserve(kStoredHeaderBytes + object.size());
    stored_detail::put_u64(out, hash);
    stored_detail::put_u64(out, since_ms);
    out.append(object);
    return out;
}

struct StoredRecordView {
    uint64_t token = 0;
    std::string_view key;
    uint64_t hash = 0;
    uint64_t since_ms = 0;
    std::string_view object;
};

// nullopt: not a well-formed record (a key under 9 bytes, a value under 16).
inline std::optional<StoredRecordView> read_stored_record(std::string_view key,
                                                          std::string_view value) {
    if (key.size() < 9 || value.size() < kStoredHeaderBytes) return std::nullopt;
    StoredRecordView r;
    r.token = stored_detail::get_u64(key);
    r.key = key.substr(8);
    r.hash = stored_detail::get_u64(value);
    r.since_ms = stored_detail::get_u64(value.substr(8));
    r.object = value.substr(kStoredHeaderBytes);
    return r;
}

}  // namespace kv::node
