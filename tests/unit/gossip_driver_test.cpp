// GossipDriver (node/membership/gossip_driver.h) at start: what an earlier life
// persisted comes back, and a corrupt record stops the node instead of being
// guessed at.
#include <catch2/catch.hpp>

#include "node/membership/gossip_driver.h"
#include "node/storage/meta_codec.h"
#include "tests/unit/component_env.h"

using namespace kv;
using namespace kv::node;
using kv::test::ComponentEnv;

namespace {

NodeConfig config() {
    NodeConfig c;
    c.node_id = "n2";
    c.endpoint = "tcp://n2";
    c.seeds = {"tcp://n1"};
    return c;
}

void put_meta(ComponentEnv& env, std::string_view key, std::string value) {
    env.stage_write(StoreWrite{Space::meta, std::string(key), std::move(value)});
    REQUIRE(env.commit().ok());
}

Status start_driver(ComponentEnv& env, const NodeConfig& c) {
    RequestIds ids;
    GossipDriver driver(c, env, ids, [] {});
    return driver.start(env.now_ms());
}

}  // namespace

TEST_CASE("a fresh node starts at incarnation 1 with no tokens; a restart resumes its status") {
    ComponentEnv env;
    const NodeConfig c = config();
    RequestIds ids;
    {
        GossipDriver driver(c, env, ids, [] {});
        REQUIRE(driver.start(env.now_ms()).ok());
        CHECK(driver.view().self().incarnation == 1);
        CHECK(driver.view().self().tokens.empty());
        CHECK(driver.view().self().declared == gossip::MemberStatus::joining);
        REQUIRE(env.commit().ok());
    }
    put_meta(env, meta::kTokensKey, meta::encode_tokens({5, 9}));
    put_meta(env, meta::kStatusKey, "leaving");
    GossipDriver again(c, env, ids, [] {});
    REQUIRE(again.start(env.now_ms()).ok());
    CHECK(again.view().self().incarnation == 2);
    CHECK(again.view().self().tokens == std::vector<uint64_t>{5, 9});
    CHECK(again.view().self().declared == gossip::MemberStatus::leaving);
}

TEST_CASE("corrupt meta records stop the node with storage_error") {
    const NodeConfig c = config();
    SECTION("incarnation") {
        ComponentEnv env;
        put_meta(env, meta::kIncarnationKey, "twelve");
        CHECK(start_driver(env, c).code() == ErrorCode::storage_error);
    }
    SECTION("tokens") {
        ComponentEnv env;
        put_meta(env, meta::kTokensKey, "1234567");  // not a multiple of 8 bytes
        CHECK(start_driver(env, c).code() == ErrorCode::storage_error);
    }
    SECTION("status") {
        ComponentEnv env;
        put_meta(env, meta::kTokensKey, meta::encode_tokens({5}));
        put_meta(env, meta::kStatusKey, "upp");
        const Status s = start_driver(env, c);
        CHECK(s.code() == ErrorCode::storage_error);
        CHECK_THAT(s.message(), Catch::Contains("status"));
    }
    SECTION("view") {
        ComponentEnv env;
        put_meta(env, meta::kViewKey, "not a gossip frame");
        const Status s = start_driver(env, c);
        CHECK(s.code() == ErrorCode::storage_error);
        CHECK_THAT(s.message(), Catch::Contains("view"));
    }
}

TEST_CASE("a view too large for one gossip frame is a known limit: the node waits for gossip") {
    ComponentEnv env;
    put_meta(env, meta::kViewKey, std::string(gossip::kGossipFrameBytesMax + 1, 'x'));
    CHECK(start_driver(env, config()).ok());
}

TEST_CASE("only a node holding tokens starts above the incarnation it stored") {
    // Without tokens it may be a lost directory's new life under the id of a
    // member that holds tokens: started above that life, its tokenless entry
    // would replace the token holder's everywhere (gossip/cluster_view.h).
    const NodeConfig c = config();
    RequestIds ids;
    ComponentEnv env;
    put_meta(env, meta::kIncarnationKey, meta::encode_u64_text(7));
    {
        GossipDriver tokenless(c, env, ids, [] {});
        REQUIRE(tokenless.start(env.now_ms()).ok());
        CHECK(tokenless.view().self().incarnation == 1);
        REQUIRE(env.commit().ok());
    }
    put_meta(env, meta::kIncarnationKey, meta::encode_u64_text(7));
    put_meta(env, meta::kTokensKey, meta::encode_tokens({5, 9}));
    GossipDriver holder(c, env, ids, [] {});
    REQUIRE(holder.start(env.now_ms()).ok());
    CHECK(holder.view().self().incarnation == 8);
}

TEST_CASE("a node whose store holds an incarnation at the top of the range still starts") {
    // What a claim about the node at 2^64-2, refuted by an earlier build, left behind.
    ComponentEnv env;
    put_meta(env, meta::kIncarnationKey, meta::encode_u64_text(UINT64_MAX));
    put_meta(env, meta::kTokensKey, meta::encode_tokens({5}));
    RequestIds ids;
    const NodeConfig c = config();  // the driver keeps a reference to it
    GossipDriver driver(c, env, ids, [] {});
    REQUIRE(driver.start(env.now_ms()).ok());
    CHECK(driver.view().self().incarnation == gossip::kCounterMax);
}
