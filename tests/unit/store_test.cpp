// One suite run against both Store implementations (MemoryStore and LmdbStore in
// a fresh temp dir), so the simulator's store behaves like the real one; then the
// LMDB-only properties: a failed commit, persistence across reopen, open errors.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "node/storage/store.h"
#include "node/storage/store_lmdb_testing.h"
#include "tests/unit/temp_dir.h"

namespace {

using kv::ErrorCode;
using kv::node::kStoreOrderedPrefixBytes;
using kv::node::LmdbOptions;
using kv::node::Space;
using kv::node::Store;
using kv::node::StoreWrite;
using Entries = std::vector<std::pair<std::string, std::string>>;

using kv::test::TempDir;

std::unique_ptr<Store> open_lmdb(const LmdbOptions& options) {
    auto store = kv::node::open_lmdb_store(options);
    INFO(store.status().to_string());
    REQUIRE(store.ok());
    return std::move(store).value();
}

struct MemoryStoreKind {
    std::unique_ptr<Store> open() { return kv::node::make_memory_store(); }
};

struct LmdbStoreKind {
    TempDir dir;
    std::unique_ptr<Store> open() { return open_lmdb({.dir = dir.path() + "/db"}); }
};

// With the write-ahead log, checkpointing every few hundred bytes of log, so
// the suite reads across the memtables, checkpoints in flight and LMDB.
struct LoggedStoreKind {
    TempDir dir;
    std::unique_ptr<Store> open() {
        return open_lmdb(
            {.dir = dir.path() + "/db", .write_ahead_log = true, .wal_checkpoint_bytes = 300});
    }
};

void put(Store& store, Space space, const std::string& key, const std::string& value) {
    kv::Status status = store.write({StoreWrite{space, key, value}});
    INFO(status.to_string());
    REQUIRE(status.ok());
}

void erase(Store& store, Space space, const std::string& key) {
    kv::Status status = store.write({StoreWrite{space, key, std::nullopt}});
    INFO(status.to_string());
    REQUIRE(status.ok());
}

std::optional<std::string> get(const Store& store, Space space, std::string_view key) {
    auto value = store.get(space, key);
    INFO(value.status().to_string());
    REQUIRE(value.ok());
    return value.value();
}

uint64_t count(const Store& store, Space space) {
    auto n = store.count(space);
    INFO(n.status().to_string());
    REQUIRE(n.ok());
    return n.value();
}

Entries scan(const Store& store, Space space, std::string_view from, size_t limit = SIZE_MAX) {
    Entries seen;
    kv::Status status =
        store.scan(space, from, limit, [&](std::string_view key, std::string_view value) {
            seen.emplace_back(key, value);
            return true;
        });
    INFO(status.to_string());
    REQUIRE(status.ok());
    return seen;
}

// Pages through a space by resuming from the last key seen, as store.h prescribes.
Entries scan_in_pages(const Store& store, Space space, size_t page_keys) {
    Entries all = scan(store, space, "", page_keys);
    for (size_t loops = 0; loops < 100000 && !all.empty(); ++loops) {
        Entries page = scan(store, space, all.back().first, page_keys + 1);
        REQUIRE(!page.empty());
        REQUIRE(page.front() == all.back());
        if (page.size() == 1) return all;
        all.insert(all.end(), page.begin() + 1, page.end());
    }
    REQUIRE(all.empty());
    return all;
}

// Whether `keys` (in scan order) ascend strictly in the store's order.
bool ascend_in_store_order(const Store& store, const Entries& entries) {
    const kv::node::StoreOrder order = store.order();
    for (size_t i = 1; i < entries.size(); ++i) {
        if (!order.less(entries[i - 1].first, entries[i].first)) return false;
    }
    return true;
}

// What a scan from `from` visits, given a whole scan: the keys not before it.
Entries not_before(const Store& store, const Entries& all, std::string_view from) {
    const kv::node::StoreOrder order = store.order();
    Entries out;
    for (const auto& entry : all) {
        if (!order.less(entry.first, from)) out.push_back(entry);
    }
    return out;
}

std::string binary_bytes() {
    std::string bytes;
    for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
    return bytes;
}

// Deterministic filler: byte i of a key/value depends on seed and i.
std::string pattern(size_t bytes, uint32_t seed) {
    std::string out(bytes, '\0');
    uint32_t x = seed * 2654435761u + 1;
    for (char& c : out) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>(x >> 24);
    }
    return out;
}

}  // namespace

TEMPLATE_TEST_CASE("store: get of a missing key", "[store]", MemoryStoreKind, LmdbStoreKind,
                   LoggedStoreKind) {
    TestType kind;
    auto store = kind.open();
    CHECK(get(*store, Space::data, "absent") == std::nullopt);
    CHECK(get(*store, Space::data, "") == std::nullopt);
    put(*store, Space::data, "b", "1");
    CHECK(get(*store, Space::data, "a") == std::nullopt);
    CHECK(get(*store, Space::data, "bb") == std::nullopt);
    CHECK(get(*store, Space::data, std::string(1024, 'b')) == std::nullopt);
    CHECK(get(*store, Space::meta, "b") == std::nullopt);
}

TEMPLATE_TEST_CASE("store: put, get, overwrite, erase", "[store]", MemoryStoreKind, LmdbStoreKind,
                   LoggedStoreKind) {
    TestType kind;
    auto store = kind.open();
    put(*store, Space::data, "k", "v1");
    CHECK(get(*store, Space::data, "k") == "v1");
    put(*store, Space::data, "k", "second value");
    CHECK(get(*store, Space::data, "k") == "second value");
    erase(*store, Space::data, "k");
    CHECK(get(*store, Space::data, "k") == std::nullopt);
    erase(*store, Space::data, "never written");  // erasing the absent is not an error
    put(*store, Space::data, "empty", "");
    CHECK(get(*store, Space::data, "empty") == std::string());
    CHECK(count(*store, Space::data) == 1);
}

TEMPLATE_TEST_CASE("store: spaces are separate", "[store]", MemoryStoreKind, LmdbStoreKind,
                   LoggedStoreKind) {
    TestType kind;
    auto store = kind.open();
    put(*store, Space::data, "k", "data");
    put(*store, Space::meta, "k", "meta");
    put(*store, Space::hints, "k", "hints");
    put(*store, Space::hints, "h2", "x");
    CHECK(get(*store, Space::data, "k") == "data");
    CHECK(get(*store, Space::meta, "k") == "meta");
    CHECK(get(*store, Space::hints, "k") == "hints");
    CHECK(count(*store, Space::data) == 1);
    CHECK(count(*store, Space::hints) == 2);
    erase(*store, Space::meta, "k");
    CHECK(get(*store, Space::meta, "k") == std::nullopt);
    CHECK(get(*store, Space::data, "k") == "data");
    CHECK(scan(*store, Space::hints, "") == Entries{{"h2", "x"}, {"k", "hints"}});
}

TEMPLATE_TEST_CASE("store: a batch applies in order and all or nothing", "[store]", MemoryStoreKind,
                   LmdbStoreKind, LoggedStoreKind) {
    TestType kind;
    auto store = kind.open();
    put(*store, Space::data, "gone", "x");
    kv::Status status = store->write({{Space::data, "k", "1"},
                                      {Space::meta, "m", "meta"},
                                      {Space::data, "k", "2"},
                                      {Space::data, "gone", std::nullopt},
                                      {Space::data, "j", "3"},
                                      {Space::data, "j", std::nullopt}});
    REQUIRE(status.ok());
    CHECK(get(*store, Space::data, "k") == "2");
    CHECK(get(*store, Space::meta, "m") == "meta");
    CHECK(get(*store, Space::data, "gone") == std::nullopt);
    CHECK(get(*store, Space::data, "j") == std::nullopt);

    // The invalid write comes last, after writes that would otherwise apply.
    status = store->write({{Space::data, "new", "1"},
                           {Space::data, "k", "overwritten"},
                           {Space::meta, "m", std::nullopt},
                           {Space::data, std::string(700, 'L'), "long"},
                           {Space::data, "", "empty key"}});
    CHECK(status.code() == ErrorCode::invalid_argument);
    CHECK(get(*store, Space::data, "new") == std::nullopt);
    CHECK(get(*store, Space::data, "k") == "2");
    CHECK(get(*store, Space::meta, "m") == "meta");
    CHECK(get(*store, Space::data, std::string(700, 'L')) == std::nullopt);
    CHECK(count(*store, Space::data) == 1);

    put(*store, Space::data, "after", "works");
    CHECK(get(*store, Space::data, "after") == "works");
    CHECK(store->write({}).ok());
}

TEMPLATE_TEST_CASE("store: a batch of views applies as the same batch of writes", "[store]",
                   MemoryStoreKind, LmdbStoreKind, LoggedStoreKind) {
    // write_views: the logged store's checkpoints reach LMDB this way; the
    // other stores copy the views into a batch. The bytes are the caller's.
    TestType kind;
    auto store = kind.open();
    put(*store, Space::data, "gone", "x");
    const std::string value(3000, 'v');
    const std::string empty;
    const std::string long_key(700, 'L');
    kv::Status status = store->write_views({{Space::data, "k", std::string_view(value)},
                                            {Space::meta, "m", std::string_view("meta")},
                                            {Space::data, "gone", std::nullopt},
                                            {Space::data, "e", std::string_view(empty)},
                                            {Space::data, long_key, std::string_view("long")}});
    REQUIRE(status.ok());
    CHECK(get(*store, Space::data, "k") == value);
    CHECK(get(*store, Space::meta, "m") == "meta");
    CHECK(get(*store, Space::data, "gone") == std::nullopt);
    CHECK(get(*store, Space::data, "e") == std::string());
    CHECK(get(*store, Space::data, long_key) == "long");
    // All or nothing, as write(): an empty key refuses the whole batch.
    status = store->write_views({{Space::data, "k", std::string_view("changed")},
                                 {Space::data, "", std::string_view("empty key")}});
    CHECK(status.code() == ErrorCode::invalid_argument);
    CHECK(get(*store, Space::data, "k") == value);
    CHECK(count(*store, Space::data) == 3);
}

TEMPLATE_TEST_CASE("store: scan order, from, limit and early stop", "[store]", MemoryStoreKind,
                   LmdbStoreKind, LoggedStoreKind) {
    TestType kind;
    auto store = kind.open();
    // Written out of order; bytes >= 0x80 must sort after ASCII (unsigned order).
    for (const char* key : {"b", "\xff", "ab", "a", "\x01", "c", "a\x80", "aa"}) {
        put(*store, Space::data, key, std::string("v_") + key);
    }
    put(*store, Space::meta, "a0", "other space");
    const std::vector<std::string> sorted = {"\x01", "a", "aa", "ab", "a\x80", "b", "c", "\xff"};
    Entries all = scan(*store, Space::data, "");
    REQUIRE(all.size() == sorted.size());
    for (size_t i = 0; i < sorted.size(); ++i) {
        CHECK(all[i].first == sorted[i]);
        CHECK(all[i].second == "v_" + sorted[i]);
    }
    CHECK(scan(*store, Space::data, "a") == Entries(all.begin() + 1, all.end()));
    CHECK(scan(*store, Space::data, "a0") == Entries(all.begin() + 2, all.end()));
    CHECK(scan(*store, Space::data, "ab\x01") == Entries(all.begin() + 4, all.end()));
    CHECK(scan(*store, Space::data, "a", 2) == Entries(all.begin() + 1, all.begin() + 3));
    CHECK(scan(*store, Space::data, "\xff\xff").empty());
    CHECK(scan(*store, Space::data, "", 0).empty());

    std::vector<std::string> visited;
    kv::Status status =
        store->scan(Space::data, "", SIZE_MAX, [&](std::string_view key, std::string_view) {
            visited.emplace_back(key);
            return visited.size() < 3;
        });
    REQUIRE(status.ok());
    CHECK(visited == std::vector<std::string>(sorted.begin(), sorted.begin() + 3));
}

TEMPLATE_TEST_CASE("store: count", "[store]", MemoryStoreKind, LmdbStoreKind, LoggedStoreKind) {
    TestType kind;
    auto store = kind.open();
    CHECK(count(*store, Space::data) == 0);
    std::vector<StoreWrite> batch;
    for (int i = 0; i < 50; ++i) batch.push_back({Space::data, "k" + std::to_string(i), "v"});
    batch.push_back({Space::data, std::string(1000, 'x'), "long"});
    REQUIRE(store->write(batch).ok());
    CHECK(count(*store, Space::data) == 51);
    put(*store, Space::data, "k7", "overwrite keeps the count");
    put(*store, Space::data, std::string(1000, 'x'), "overwrite keeps the count");
    CHECK(count(*store, Space::data) == 51);
    erase(*store, Space::data, "k7");
    erase(*store, Space::data, std::string(1000, 'x'));
    CHECK(count(*store, Space::data) == 49);
    CHECK(count(*store, Space::meta) == 0);
}

TEMPLATE_TEST_CASE("store: binary keys and values with NUL bytes", "[store]", MemoryStoreKind,
                   LmdbStoreKind, LoggedStoreKind) {
    TestType kind;
    auto store = kind.open();
    const std::string nul(1, '\0');
    const std::string a_nul_b = std::string("a") + '\0' + "b";
    const std::string a_nul_c = std::string("a") + '\0' + "c";
    put(*store, Space::data, "a", "plain");
    put(*store, Space::data, a_nul_b, binary_bytes());
    put(*store, Space::data, a_nul_c, nul + nul);
    put(*store, Space::data, nul, "nul key");
    CHECK(get(*store, Space::data, "a") == "plain");
    CHECK(get(*store, Space::data, a_nul_b) == binary_bytes());
    CHECK(get(*store, Space::data, a_nul_c) == nul + nul);
    CHECK(get(*store, Space::data, nul) == "nul key");
    CHECK(get(*store, Space::data, std::string("a") + '\0') == std::nullopt);
    CHECK(
        scan(*store, Space::data, "") ==
        Entries{{nul, "nul key"}, {"a", "plain"}, {a_nul_b, binary_bytes()}, {a_nul_c, nul + nul}});
}

TEMPLATE_TEST_CASE("store: 1024-byte keys and 1 MiB values", "[store]", MemoryStoreKind,
                   LmdbStoreKind, LoggedStoreKind) {
    TestType kind;
    auto store = kind.open();
    const std::string key = pattern(1024, 1);
    const std::string value = pattern(1 << 20, 2);
    const std::string other_value = pattern(1 << 20, 3);
    put(*store, Space::data, key, value);
    put(*store, Space::data, "short", other_value);
    CHECK(get(*store, Space::data, key) == value);
    CHECK(get(*store, Space::data, "short") == other_value);
    Entries expected = {{key, value}, {"short", other_value}};
    std::sort(expected.begin(), expected.end());
    CHECK(scan(*store, Space::data, "") == expected);
    CHECK(scan(*store, Space::data, key, 1) == Entries{{key, value}});
    put(*store, Space::data, key, other_value);
    CHECK(get(*store, Space::data, key) == other_value);
    erase(*store, Space::data, key);
    CHECK(get(*store, Space::data, key) == std::nullopt);
    CHECK(count(*store, Space::data) == 1);
}

// Lengths around every boundary of LMDB's 511-byte key limit, plus keys that are
// prefixes of each other and keys that differ only in their last byte
// (last bytes last_from to last_to - 1 of each kind).
std::set<std::string> keys_sharing_a_long_prefix(int last_from, int last_to) {
    const std::string prefix = pattern(1000, 7);
    std::set<std::string> keys;
    for (size_t bytes : {1u, 400u, 501u, 502u, 503u, 509u, 510u, 511u, 512u, 513u, 600u, 1000u}) {
        keys.insert(prefix.substr(0, bytes));
    }
    for (int last = last_from; last < last_to; ++last) {
        keys.insert(prefix + std::string(23, 'z') + static_cast<char>(last));
        keys.insert(prefix.substr(0, 511) + static_cast<char>(last));
        keys.insert(prefix.substr(0, 505) + static_cast<char>(last));
    }
    return keys;
}

TEMPLATE_TEST_CASE("store: long keys sharing a long prefix stay distinct", "[store]",
                   MemoryStoreKind, LmdbStoreKind, LoggedStoreKind) {
    TestType kind;
    auto store = kind.open();
    const std::string prefix = pattern(1000, 7);
    const std::set<std::string> unique_keys = keys_sharing_a_long_prefix(0, 20);
    // Written in reverse byte order, so that neither order comes for free.
    std::vector<std::string> keys(unique_keys.begin(), unique_keys.end());
    std::reverse(keys.begin(), keys.end());
    REQUIRE(keys.size() > 60);
    std::vector<StoreWrite> batch;
    for (const std::string& key : keys) batch.push_back({Space::data, key, "v" + key});
    REQUIRE(store->write(batch).ok());
    REQUIRE(count(*store, Space::data) == keys.size());
    for (const std::string& key : keys) CHECK(get(*store, Space::data, key) == "v" + key);
    CHECK(get(*store, Space::data, prefix + "missing") == std::nullopt);

    // Every key exactly once, with its own value, whole or paged.
    Entries expected;
    for (const std::string& key : keys) expected.emplace_back(key, "v" + key);
    std::sort(expected.begin(), expected.end());
    Entries all = scan(*store, Space::data, "");
    Entries sorted_all = all;
    std::sort(sorted_all.begin(), sorted_all.end());
    CHECK(sorted_all == expected);
    CHECK(ascend_in_store_order(*store, all));  // the order the store states is the one it keeps
    CHECK(scan_in_pages(*store, Space::data, 3) == all);
    CHECK(scan_in_pages(*store, Space::data, 1) == all);

    // A `from` that is not stored visits the keys not before it in store order.
    for (const std::string& key : keys) {
        std::string below = key;
        below.back() = static_cast<char>(below.back() - 1);
        for (const std::string& from : {key + '\0', below, key.substr(0, key.size() - 1)}) {
            if (unique_keys.count(from) != 0) continue;
            CHECK(scan(*store, Space::data, from) == not_before(*store, all, from));
        }
    }

    // Erasing some leaves the others untouched.
    for (size_t i = 0; i < keys.size(); i += 2) erase(*store, Space::data, keys[i]);
    for (size_t i = 0; i < keys.size(); ++i) {
        CHECK(get(*store, Space::data, keys[i]) ==
              (i % 2 == 0 ? std::nullopt : std::optional<std::string>("v" + keys[i])));
    }
    CHECK(count(*store, Space::data) == keys.size() / 2);
}

TEMPLATE_TEST_CASE("store: keys differing within the ordered prefix scan in byte order", "[store]",
                   MemoryStoreKind, LmdbStoreKind, LoggedStoreKind) {
    TestType kind;
    auto store = kind.open();
    std::vector<std::string> keys;
    for (int i = 0; i < 40; ++i) {
        // Each key differs from the others before byte kStoreOrderedPrefixBytes.
        std::string key = pattern(300 + static_cast<size_t>(i) * 18, static_cast<uint32_t>(i));
        key[0] = static_cast<char>('a' + i % 5);
        keys.push_back(key);
    }
    std::vector<StoreWrite> batch;
    for (const std::string& key : keys) batch.push_back({Space::data, key, "v"});
    REQUIRE(store->write(batch).ok());
    std::sort(keys.begin(), keys.end());
    REQUIRE(keys.back().size() > 1000);
    const Entries all = scan(*store, Space::data, "");
    std::vector<std::string> scanned;
    for (auto& [key, value] : all) scanned.push_back(key);
    CHECK(scanned == keys);
    // A long `from` that is not stored starts where the store's order puts it:
    // among the keys sharing its first kStoreOrderedPrefixBytes (the longest
    // key alone here) by hash, before every key above them in byte order.
    const auto longest = std::max_element(keys.begin(), keys.end(),
                                          [](auto& a, auto& b) { return a.size() < b.size(); });
    std::string from = *longest;
    from.back() = static_cast<char>(from.back() ^ 1);
    REQUIRE(from.size() > kStoreOrderedPrefixBytes + 100);
    const Entries after = scan(*store, Space::data, from);
    CHECK(after == not_before(*store, all, from));
    CHECK(after.size() <= 1);  // the longest key sorts last in byte order
}

// ---- LMDB only ----

// The memtables of the logged store hold the keys written since its last
// checkpoint, LMDB the rest; its scans merge the two. Long keys that LMDB
// orders by hash, some in each: every scan, whole, paged or from a key erased
// since, is the one order LMDB keeps (a merge by byte order visited some twice
// and missed others).
TEST_CASE("store: logged scans merge long keys in LMDB's order", "[store][lmdb]") {
    TempDir dir;
    const LmdbOptions options{
        .dir = dir.path(), .write_ahead_log = true, .wal_checkpoint_bytes = uint64_t{1} << 30};
    const std::set<std::string> keys = keys_sharing_a_long_prefix(0, 60);
    std::map<std::string, std::string> model;
    {
        auto store = open_lmdb(options);
        std::vector<StoreWrite> batch;
        for (const std::string& key : keys) {
            batch.push_back({Space::hints, key, "a"});
            model[key] = "a";
        }
        REQUIRE(store->write(batch).ok());
    }
    auto store = open_lmdb(options);  // the log is applied to LMDB as it opens
    std::vector<StoreWrite> batch;
    std::vector<std::string> erased;
    size_t i = 0;
    for (const std::string& key : keys) {
        if (i % 5 == 0) {
            batch.push_back({Space::hints, key, std::nullopt});
            model.erase(key);
            erased.push_back(key);
        } else if (i % 3 == 0) {
            batch.push_back({Space::hints, key, "b"});
            model[key] = "b";
        }
        ++i;
    }
    for (const std::string& key : keys_sharing_a_long_prefix(60, 90)) {
        if (keys.count(key) != 0) continue;
        batch.push_back({Space::hints, key, "c"});  // only in the memtable
        model[key] = "c";
    }
    REQUIRE(store->write(batch).ok());  // into the memtable: no checkpoint for 1 GiB of log

    for (int round = 0; round < 2; ++round) {
        INFO("round " << round << (round == 0 ? ": LMDB and memtable" : ": reopened, LMDB"));
        Entries all = scan(*store, Space::hints, "");
        Entries sorted_all = all;
        std::sort(sorted_all.begin(), sorted_all.end());
        CHECK(sorted_all == Entries(model.begin(), model.end()));
        CHECK(ascend_in_store_order(*store, all));
        for (size_t page : {1, 3, 7, 40}) CHECK(scan_in_pages(*store, Space::hints, page) == all);
        for (const std::string& from : erased) {
            CHECK(scan(*store, Space::hints, from) == not_before(*store, all, from));
        }
        store.reset();
        store = open_lmdb(options);
    }
}

TEST_CASE("store: lmdb commit that fails (MAP_FULL) applies nothing", "[store][lmdb]") {
    TempDir dir;
    auto store = open_lmdb({.dir = dir.path(), .map_size_bytes = 1 << 20});
    put(*store, Space::data, "keep", "1");
    kv::Status status = store->write({{Space::data, "small", "x"},
                                      {Space::meta, "keep", std::nullopt},
                                      {Space::data, "big", pattern(2 << 20, 1)}});
    CHECK(status.code() == ErrorCode::storage_error);
    CHECK_THAT(status.message(), Catch::Contains("MDB_MAP_FULL"));
    CHECK(get(*store, Space::data, "small") == std::nullopt);
    CHECK(get(*store, Space::data, "big") == std::nullopt);
    CHECK(get(*store, Space::data, "keep") == "1");

    // Many small writes that overflow only at the end, in one batch.
    std::vector<StoreWrite> batch;
    for (int i = 0; i < 200; ++i)
        batch.push_back({Space::data, "k" + std::to_string(i), pattern(8000, 2)});
    CHECK(store->write(batch).code() == ErrorCode::storage_error);
    CHECK(count(*store, Space::data) == 1);

    put(*store, Space::data, "after", "works");
    CHECK(get(*store, Space::data, "after") == "works");
    store.reset();
    store = open_lmdb({.dir = dir.path(), .map_size_bytes = 1 << 20});
    CHECK(scan(*store, Space::data, "") == Entries{{"after", "works"}, {"keep", "1"}});
}

TEST_CASE("store persistence", "[store][lmdb]") {
    TempDir dir;
    const std::string long_key = pattern(1024, 9);
    const std::string big_value = pattern(1 << 20, 10);
    Entries data_before;
    {
        auto store = open_lmdb({.dir = dir.path() + "/nested/db"});
        REQUIRE(store
                    ->write({{Space::data, "a", "1"},
                             {Space::data, long_key, big_value},
                             {Space::data, std::string("nul\0key", 7), binary_bytes()},
                             {Space::meta, "ring", "tokens"},
                             {Space::hints, "h", ""},
                             {Space::data, "erased", "x"}})
                    .ok());
        erase(*store, Space::data, "erased");
        data_before = scan(*store, Space::data, "");
        REQUIRE(data_before.size() == 3);
    }
    auto store = open_lmdb({.dir = dir.path() + "/nested/db"});
    CHECK(get(*store, Space::data, "a") == "1");
    CHECK(get(*store, Space::data, long_key) == big_value);
    CHECK(get(*store, Space::data, std::string("nul\0key", 7)) == binary_bytes());
    CHECK(get(*store, Space::data, "erased") == std::nullopt);
    CHECK(get(*store, Space::meta, "ring") == "tokens");
    CHECK(get(*store, Space::hints, "h") == "");
    CHECK(scan(*store, Space::data, "") == data_before);
    CHECK(count(*store, Space::meta) == 1);
    CHECK(count(*store, Space::hints) == 1);
}

TEST_CASE("store: lmdb 10,000 keys in 100-key batches survive reopen", "[store][lmdb]") {
    TempDir dir;
    constexpr int kKeys = 10000;
    constexpr int kBatchKeys = 100;
    auto key_of = [](int i) { return "key/" + std::to_string(i); };
    auto value_of = [](int i) {
        return pattern(static_cast<size_t>(i % 300), static_cast<uint32_t>(i));
    };
    {
        auto store = open_lmdb({.dir = dir.path()});
        for (int first = 0; first < kKeys; first += kBatchKeys) {
            std::vector<StoreWrite> batch;
            for (int i = first; i < first + kBatchKeys; ++i) {
                batch.push_back({Space::data, key_of(i), value_of(i)});
            }
            REQUIRE(store->write(batch).ok());
        }
    }
    auto store = open_lmdb({.dir = dir.path()});
    REQUIRE(count(*store, Space::data) == kKeys);
    int mismatches = 0;
    for (int i = 0; i < kKeys; ++i) {
        if (get(*store, Space::data, key_of(i)) != value_of(i)) ++mismatches;
    }
    CHECK(mismatches == 0);
    CHECK(scan(*store, Space::data, "").size() == kKeys);
}

TEST_CASE("store: lmdb without sync still persists across a clean reopen", "[store][lmdb]") {
    TempDir dir;
    REQUIRE(open_lmdb({.dir = dir.path(), .sync = false})->write({{Space::data, "k", "v"}}).ok());
    CHECK(get(*open_lmdb({.dir = dir.path(), .sync = false}), Space::data, "k") == "v");
}

TEST_CASE("store: lmdb open errors are values", "[store][lmdb]") {
    TempDir dir;
    const std::string file = dir.path() + "/a_file";
    REQUIRE(std::ofstream(file).put('x').good());
    auto under_file = kv::node::open_lmdb_store({.dir = file + "/db"});
    CHECK(under_file.status().code() == ErrorCode::storage_error);
    auto on_file = kv::node::open_lmdb_store({.dir = file});
    CHECK(on_file.status().code() == ErrorCode::storage_error);
}

TEST_CASE("store: lmdb long keys whose hashes collide stay distinct", "[store][lmdb]") {
    TempDir dir;
    // Every long key collides, so keys sharing a 502-byte prefix share one probe group.
    auto constant_hash = [](std::string_view) -> uint64_t { return 42; };
    auto open_colliding = [&] {
        auto store = kv::node::open_lmdb_store_with_hash({.dir = dir.path()}, constant_hash);
        REQUIRE(store.ok());
        return std::move(store).value();
    };
    auto store = open_colliding();
    const std::string prefix(600, 'p');
    auto key_of = [&](int i) { return prefix + std::to_string(i); };
    std::set<std::string> stored;
    std::vector<StoreWrite> batch;
    for (int i = 0; i < 256; ++i) {
        batch.push_back({Space::data, key_of(i), "v" + std::to_string(i)});
        stored.insert(key_of(i));
    }
    REQUIRE(store->write(batch).ok());
    put(*store, Space::data, std::string(510, 'p'), "inline neighbour");
    stored.insert(std::string(510, 'p'));

    // A 257th colliding key has no probe left: refused, and its batch undone.
    kv::Status full = store->write({{Space::data, "other", "x"}, {Space::data, key_of(256), "x"}});
    CHECK(full.code() == kv::ErrorCode::storage_error);
    CHECK(get(*store, Space::data, "other") == std::nullopt);
    CHECK(get(*store, Space::data, key_of(256)) == std::nullopt);

    for (int i = 0; i < 256; ++i)
        CHECK(get(*store, Space::data, key_of(i)) == "v" + std::to_string(i));
    put(*store, Space::data, key_of(7), "overwritten");  // in place, no new probe
    CHECK(count(*store, Space::data) == 257);

    // Erasing frees a probe in the middle of the group; the next key takes it.
    erase(*store, Space::data, key_of(100));
    stored.erase(key_of(100));
    put(*store, Space::data, key_of(256), "v256");
    stored.insert(key_of(256));
    CHECK(get(*store, Space::data, key_of(100)) == std::nullopt);
    CHECK(get(*store, Space::data, key_of(256)) == "v256");
    CHECK(get(*store, Space::data, key_of(7)) == "overwritten");
    CHECK(get(*store, Space::data, key_of(255)) == "v255");

    Entries all = scan(*store, Space::data, "");
    std::vector<std::string> all_keys;
    for (auto& [k, v] : all) all_keys.push_back(k);
    std::sort(all_keys.begin(), all_keys.end());
    CHECK(all_keys == std::vector<std::string>(stored.begin(), stored.end()));
    CHECK(scan_in_pages(*store, Space::data, 10) == all);
    // From an absent key of the group: the group's keys at or above it in byte
    // order (LMDB holds them by probe), then what follows the group in store
    // order, here the inline neighbour ('p' sorts after the hash's first byte).
    std::string absent_from = key_of(55) + "0";  // between key_of(55) and key_of(56)
    std::vector<std::string> visited;
    for (auto& [k, v] : scan(*store, Space::data, absent_from)) visited.push_back(k);
    std::sort(visited.begin(), visited.end());
    std::vector<std::string> expected(stored.lower_bound(absent_from), stored.end());
    expected.push_back(std::string(510, 'p'));
    std::sort(expected.begin(), expected.end());
    CHECK(visited == expected);

    store.reset();
    store = open_colliding();
    CHECK(get(*store, Space::data, key_of(256)) == "v256");
    CHECK(get(*store, Space::data, key_of(42)) == "v42");
}
