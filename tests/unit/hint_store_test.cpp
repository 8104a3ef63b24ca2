// HintStore (node/replica/hint_store.h): one merged record per (target, key),
// bounded per target in keys and bytes, refused hints marking their range
// under-replicated durably, deletes only of the generation that was sent, and
// an index rebuilt from the store at start.
#include <catch2/catch.hpp>

#include "node/replica/hint_store.h"
#include "tests/unit/component_env.h"

using namespace kv;
using namespace kv::node;
using kv::test::ComponentEnv;
using kv::test::minted_object;

namespace {

NodeConfig config(size_t keys_max, size_t bytes_max) {
    NodeConfig c;
    c.node_id = "s";
    c.hints_per_target_max = keys_max;
    c.hint_bytes_per_target_max = bytes_max;
    return c;
}

void commit(ComponentEnv& env) {
    REQUIRE(env.commit().ok());
}

// A loaded store over an empty hints space.
struct Fixture {
    explicit Fixture(size_t keys_max = 10, size_t bytes_max = 1 << 20)
        : c(config(keys_max, bytes_max)), hints(c, env, stats) {
        REQUIRE(hints.load().ok());
    }
    ComponentEnv env;
    NodeStats stats;
    NodeConfig c;
    HintStore hints;
};

const ring::Range kRange{10, 20};

}  // namespace

TEST_CASE("hint keys split back into target and key, whatever bytes either holds") {
    for (const auto& [target, key] : std::vector<std::pair<std::string, std::string>>{
             {"n1", "k"}, {"a", std::string("\0x\0", 3)}, {std::string(300, 't'), "key"}}) {
        auto split = split_hint_key(hint_key(target, key));
        REQUIRE(split);
        CHECK(split->first == target);
        CHECK(split->second == key);
    }
    CHECK_FALSE(split_hint_key(""));
    CHECK_FALSE(split_hint_key(std::string("\0\5ab", 4)));  // shorter than its target length
}

TEST_CASE("hints for one target and key merge into one record") {
    Fixture f;
    auto& [env, stats, c, hints] = f;
    REQUIRE(hints.add("h1", "k", minted_object("x.1", "a"), kRange).ok());
    REQUIRE(hints.add("h1", "k", minted_object("y.1", "b"), kRange).ok());
    REQUIRE(hints.add("h2", "k", minted_object("z.1", "c"), kRange).ok());
    commit(env);
    CHECK(hints.summary().keys == 2);
    CHECK(hints.targets() == std::vector<std::string>{"h1", "h2"});
    auto merged = hints.merged_for_key("k");
    REQUIRE(merged.ok());
    CHECK(merged->live_values() == std::vector<std::string>{"a", "b", "c"});
    auto batch = hints.batch("h1", 10, 1 << 20);
    REQUIRE(batch.ok());
    REQUIRE(batch->size() == 1);
    auto decoded = decode_object(batch->front().object);
    REQUIRE(decoded.ok());
    CHECK(decoded->live_values() == std::vector<std::string>{"a", "b"});
    CHECK(stats.hints_stored == 3);
}

TEST_CASE("a hint is deleted only if it did not change since it was sent") {
    Fixture f;
    auto& [env, stats, c, hints] = f;
    REQUIRE(hints.add("h1", "k", minted_object("x.1", "a"), kRange).ok());
    auto sent = hints.batch("h1", 10, 1 << 20);
    REQUIRE(sent.ok());
    REQUIRE(sent->size() == 1);
    // A newer version arrives while the batch is out.
    REQUIRE(hints.add("h1", "k", minted_object("y.1", "b"), kRange).ok());
    CHECK_FALSE(hints.remove_if_unchanged("h1", "k", sent->front().generation));
    CHECK(hints.summary().keys == 1);
    auto again = hints.batch("h1", 10, 1 << 20);
    REQUIRE(again.ok());
    CHECK(hints.remove_if_unchanged("h1", "k", again->front().generation));
    commit(env);
    CHECK(hints.summary().keys == 0);
    CHECK(hints.summary().bytes == 0);
    CHECK(env.store().count(Space::hints).value() == 0);
    CHECK(hints.status().front().replayed == 1);
}

TEST_CASE("a full target refuses hints and marks their range under-replicated, durably") {
    Fixture f(2);
    auto& [env, stats, c, hints] = f;
    REQUIRE(hints.add("h1", "k1", minted_object("x.1", "a"), kRange).ok());
    REQUIRE(hints.add("h1", "k2", minted_object("x.1", "a"), kRange).ok());
    Status full = hints.add("h1", "k3", minted_object("x.1", "a"), ring::Range{30, 40});
    CHECK(full.code() == ErrorCode::overloaded);
    CHECK_THAT(full.message(), Catch::Contains("--hints-max-per-target"));
    // A key already held still merges: it takes no new slot.
    CHECK(hints.add("h1", "k1", minted_object("y.1", "b"), kRange).ok());
    // Another target has its own bound.
    CHECK(hints.add("h2", "k3", minted_object("x.1", "a"), kRange).ok());
    // A hint moved from a target that no longer owns the key is taken past the bound.
    CHECK(hints.add("h1", "k4", minted_object("x.1", "a"), kRange, true).ok());
    commit(env);
    CHECK(stats.hints_refused == 1);
    CHECK(hints.under_replicated_ranges() == 1);
    CHECK(hints.under_replicated().at("h1").contains(35));

    // A restart finds the same hints and the same mark.
    HintStore reloaded(c, env, stats);
    REQUIRE(reloaded.load().ok());
    CHECK(reloaded.summary().keys == hints.summary().keys);
    CHECK(reloaded.summary().bytes == hints.summary().bytes);
    CHECK(reloaded.under_replicated_ranges() == 1);
    CHECK(reloaded.targets() == std::vector<std::string>{"h1", "h2"});
}

TEST_CASE("a target's hints are bounded in bytes too") {
    const std::string big(1000, 'v');
    Fixture f(100, 1500);
    auto& hints = f.hints;
    REQUIRE(hints.add("h1", "k1", minted_object("x.1", big), kRange).ok());
    Status full = hints.add("h1", "k2", minted_object("x.1", big), kRange);
    CHECK(full.code() == ErrorCode::overloaded);
    CHECK_THAT(full.message(), Catch::Contains("--hint-bytes-max-per-target"));
    CHECK(hints.summary().keys == 1);
}

TEST_CASE("an undecodable hint is refused and nothing is stored") {
    Fixture f;
    auto& [env, stats, c, hints] = f;
    CHECK_FALSE(hints.add("h1", "k", "not an object", kRange).ok());
    commit(env);
    CHECK(hints.summary().keys == 0);
    CHECK(env.store().count(Space::hints).value() == 0);
}
