// The move of a format 1 data directory to format 2 (node/storage/upgrade.h):
// every object lands in its token-ordered record with the entry the old index
// held, the old spaces end empty, a crash between pages loses nothing and the
// next start finishes the move; a node refuses format 1 objects it was not
// given moved.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gossip/membership.h"
#include "node/data/object.h"
#include "node/data/stored_record.h"
#include "node/node.h"
#include "node/storage/meta_codec.h"
#include "node/storage/store.h"
#include "node/storage/upgrade.h"
#include "ring/ring.h"
#include "tests/unit/component_env.h"
#include "tests/unit/temp_dir.h"

namespace {

using kv::ErrorCode;
using kv::Status;
using kv::node::Space;
using kv::node::Store;
using kv::node::StoreWrite;

constexpr uint64_t kNowMs = 777;

std::string be64(uint64_t v) {
    std::string out;
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return out;
}

// A tombstone-only object: a value minted, then deleted with its context.
std::string tombstone_object(const std::string& actor) {
    auto live = kv::node::update(kv::node::Object{}, {}, actor, std::string("v"), 100,
                                 kv::proto::kObjectBytesMax);
    REQUIRE(live.ok());
    auto gone = kv::node::update(live.value(), live.value().context, actor, std::nullopt, 100,
                                 kv::proto::kObjectBytesMax);
    REQUIRE(gone.ok());
    REQUIRE(gone.value().live_count() == 0);
    return kv::node::encode_object(gone.value());
}

struct OldKey {
    std::string object;
    std::optional<uint64_t> since_ms;  // its index entry's; nullopt: no entry
    bool tombstones_only = false;
};

// Writes a format 1 directory: `keys` objects in Space::data, their entries in
// Space::key_hashes (index key: token + key; value: hash, since, big endian),
// the meta records of format 1, a hint and an index entry without an object.
std::map<std::string, OldKey> write_format_1(Store& store, int keys, bool format_record) {
    std::map<std::string, OldKey> old;
    std::vector<StoreWrite> batch;
    for (int i = 0; i < keys; ++i) {
        const std::string key = "key/" + std::to_string(i);
        OldKey k;
        if (i == 11) {
            k.object = "\xc1 not an object";  // moved as it is, reported when read
        } else if (i % 5 == 3) {
            k.object = tombstone_object("a.1");
            k.tombstones_only = true;
        } else {
            k.object = kv::test::minted_object("a.1", "value " + std::to_string(i));
        }
        if (i % 7 != 0) k.since_ms = 5000 + static_cast<uint64_t>(i);
        batch.push_back({Space::data, key, k.object});
        if (k.since_ms) {
            const uint64_t token = kv::ring::hash64(key);
            batch.push_back(
                {Space::key_hashes, be64(token) + key,
                 be64(kv::node::entry_hash(key, k.object, k.tombstones_only)) + be64(*k.since_ms)});
        }
        old[key] = k;
    }
    batch.push_back({Space::key_hashes, be64(42) + "orphan", be64(1) + be64(2)});
    batch.push_back({Space::meta, std::string(kv::node::meta::kKeyHashesBuiltKey), "1"});
    batch.push_back({Space::meta, "actor", "n1.0000000000000001"});
    batch.push_back({Space::hints, "a hint", "held"});
    if (format_record) batch.push_back({Space::meta, "format", "1"});
    REQUIRE(store.write(batch).ok());
    return old;
}

uint64_t count(const Store& store, Space space) {
    auto n = store.count(space);
    REQUIRE(n.ok());
    return n.value();
}

// Every old key in its format 2 record, and nothing else in the old spaces.
void check_moved(const Store& store, const std::map<std::string, OldKey>& old) {
    CHECK(count(store, Space::data) == 0);
    CHECK(count(store, Space::key_hashes) == 0);
    CHECK(count(store, Space::objects) == old.size());
    for (const auto& [key, k] : old) {
        INFO(key);
        const std::string stored = kv::node::stored_key(key);
        auto value = store.get(Space::objects, stored);
        REQUIRE(value.ok());
        REQUIRE(value.value().has_value());
        auto record = kv::node::read_stored_record(stored, *value.value());
        REQUIRE(record.has_value());
        CHECK(record->key == key);
        CHECK(record->token == kv::ring::hash64(key));
        CHECK(record->object == k.object);
        CHECK(record->hash == kv::node::entry_hash(key, k.object, k.tombstones_only));
        CHECK(record->since_ms == k.since_ms.value_or(kNowMs));
    }
    // Records come in token order.
    uint64_t last_token = 0;
    Status scanned =
        store.scan(Space::objects, "", 1 << 20, [&](std::string_view key, std::string_view value) {
            auto record = kv::node::read_stored_record(key, value);
            REQUIRE(record.has_value());
            CHECK(record->token >= last_token);
            last_token = record->token;
            return true;
        });
    CHECK(scanned.ok());
    auto format = store.get(Space::meta, "format");
    REQUIRE(format.ok());
    CHECK(format.value() == std::optional<std::string>("2"));
    CHECK(store.get(Space::meta, kv::node::meta::kKeyHashesBuiltKey).value() == std::nullopt);
    CHECK(store.get(Space::meta, "actor").value() ==
          std::optional<std::string>("n1.0000000000000001"));
    CHECK(store.get(Space::hints, "a hint").value() == std::optional<std::string>("held"));
}

// A store whose writes fail from the `ok_writes`+1st on.
class FailingStore final : public Store {
  public:
    FailingStore(Store& base, int ok_writes) : base_(base), ok_writes_left_(ok_writes) {}
    kv::Result<std::optional<std::string>> get(Space space, std::string_view key) const override {
        return base_.get(space, key);
    }
    Status write(const std::vector<StoreWrite>& batch) override {
        if (ok_writes_left_ == 0) return Status(ErrorCode::storage_error, "planted failure");
        --ok_writes_left_;
        return base_.write(batch);
    }
    Status scan(
        Space space, std::string_view from, size_t limit,
        const std::function<bool(std::string_view, std::string_view)>& visit) const override {
        return base_.scan(space, from, limit, visit);
    }
    kv::Result<uint64_t> count(Space space) const override { return base_.count(space); }

  private:
    Store& base_;
    int ok_writes_left_;
};

std::vector<std::string> logged;
void log_line(const std::string& line) {
    logged.push_back(line);
}

}  // namespace

TEST_CASE("a new directory needs no move and gets no format record from the upgrade") {
    auto store = kv::node::make_memory_store();
    auto stats = kv::node::upgrade_store(*store, kNowMs, log_line);
    REQUIRE(stats.ok());
    CHECK(stats.value().objects_moved == 0);
    CHECK(store->get(Space::meta, "format").value() == std::nullopt);  // Node::start writes it
    CHECK(count(*store, Space::objects) == 0);
}

TEST_CASE("a format 1 directory moves every object with its index entry") {
    for (bool format_record : {false, true}) {
        INFO("format record: " << format_record);
        auto store = kv::node::make_memory_store();
        // 2,500 keys: three pages, the last one partial.
        auto old = write_format_1(*store, 2500, format_record);
        logged.clear();
        auto stats = kv::node::upgrade_store(*store, kNowMs, log_line);
        REQUIRE(stats.ok());
        CHECK(stats.value().objects_moved == 2500);
        CHECK(stats.value().entries_dropped == 1);  // the orphan
        check_moved(*store, old);
        CHECK(std::count_if(logged.begin(), logged.end(), [](const std::string& line) {
                  return line.find("corrupt") != std::string::npos;
              }) == 1);
        // Run again (the next start): nothing to do, nothing changed.
        auto again = kv::node::upgrade_store(*store, kNowMs + 1, log_line);
        REQUIRE(again.ok());
        CHECK(again.value().objects_moved == 0);
        check_moved(*store, old);
    }
}

TEST_CASE("a move cut off at any page leaves every key in one layout and the next start ends it") {
    for (int ok_writes = 0; ok_writes <= 4; ++ok_writes) {
        INFO("writes before the failure: " << ok_writes);
        auto store = kv::node::make_memory_store();
        auto old = write_format_1(*store, 2500, false);
        FailingStore failing(*store, ok_writes);
        auto cut = kv::node::upgrade_store(failing, kNowMs, log_line);
        // 3 pages of objects, 1 of the orphan entry, then the format record.
        REQUIRE_FALSE(cut.ok());
        CHECK(cut.status().code() == ErrorCode::storage_error);
        // Each key is in exactly one of the layouts.
        for (const auto& [key, k] : old) {
            const bool in_old = store->get(Space::data, key).value().has_value();
            const bool in_new =
                store->get(Space::objects, kv::node::stored_key(key)).value().has_value();
            CHECK(in_old != in_new);
        }
        CHECK(store->get(Space::meta, "format").value() == std::nullopt);
        auto finished = kv::node::upgrade_store(*store, kNowMs, log_line);
        REQUIRE(finished.ok());
        check_moved(*store, old);
    }
}

TEST_CASE("the upgrade leaves a format it does not move to the node's start") {
    for (std::string format : {"2", "3", "not a number"}) {
        auto store = kv::node::make_memory_store();
        REQUIRE(store->write({{Space::meta, "format", format}, {Space::data, "k", "v"}}).ok());
        auto stats = kv::node::upgrade_store(*store, kNowMs, log_line);
        REQUIRE(stats.ok());
        CHECK(stats.value().objects_moved == 0);
        CHECK(store->get(Space::data, "k").value() == std::optional<std::string>("v"));
        CHECK(store->get(Space::meta, "format").value() == std::optional<std::string>(format));
    }
}

TEST_CASE("a node refuses format 1 objects that were not moved, and format 1 itself") {
    kv::gossip::StaticMembership members(
        std::vector<kv::gossip::Member>{kv::gossip::Member{"n1", "inproc://n1"}});
    kv::node::NodeConfig config;
    config.node_id = "n1";
    config.endpoint = "inproc://n1";
    config.n_replicas = 1;
    SECTION("objects without a format record") {
        kv::test::ComponentEnv env;
        REQUIRE(env.store().write({{Space::data, "k", kv::test::minted_object("a.1", "v")}}).ok());
        kv::node::Node node(config, env, members);
        Status started = node.start();
        CHECK(started.code() == ErrorCode::storage_error);
        CHECK(started.message().find("format 1 objects not moved") != std::string::npos);
    }
    SECTION("an index entry without a format record") {
        kv::test::ComponentEnv env;
        REQUIRE(env.store().write({{Space::key_hashes, be64(1) + "k", be64(1) + be64(2)}}).ok());
        kv::node::Node node(config, env, members);
        CHECK(node.start().code() == ErrorCode::storage_error);
    }
    SECTION("format 1 recorded") {
        kv::test::ComponentEnv env;
        REQUIRE(env.store().write({{Space::meta, "format", "1"}}).ok());
        kv::node::Node node(config, env, members);
        Status started = node.start();
        CHECK(started.code() == ErrorCode::storage_error);
        CHECK(started.message().find("format 1 and was not moved") != std::string::npos);
    }
    SECTION("a new directory starts and records format 2") {
        kv::test::ComponentEnv env;
        kv::node::Node node(config, env, members);
        REQUIRE(node.start().ok());
        REQUIRE(env.commit().ok());
        CHECK(env.store().get(Space::meta, "format").value() == std::optional<std::string>("2"));
    }
}

TEST_CASE("the move runs the same over the logged LMDB store, and survives reopening") {
    kv::test::TempDir dir("kv_upgrade");
    kv::node::LmdbOptions options{
        .dir = dir.path(), .write_ahead_log = true, .wal_checkpoint_bytes = 64 * 1024};
    std::map<std::string, OldKey> old;
    {
        auto store = kv::node::open_lmdb_store(options);
        REQUIRE(store.ok());
        old = write_format_1(*store.value(), 3000, true);
        auto stats = kv::node::upgrade_store(*store.value(), kNowMs, log_line);
        REQUIRE(stats.ok());
        CHECK(stats.value().objects_moved == 3000);
        check_moved(*store.value(), old);
    }
    auto reopened = kv::node::open_lmdb_store(options);
    REQUIRE(reopened.ok());
    check_moved(*reopened.value(), old);
}
