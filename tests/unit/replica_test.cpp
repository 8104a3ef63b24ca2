// Replica (node/replica/replica.h): the only writer of the data space, driven
// without a cluster: minting, merging, the change observers, duplicate
// suppression, ownership checks and the handoff fence.
#include <catch2/catch.hpp>

#include "gossip/token_claim.h"
#include "node/antientropy/key_index.h"
#include "node/data/stored_record.h"
#include "node/membership/placement.h"
#include "node/replica/handoffs.h"
#include "node/replica/replica.h"
#include "ring/ring.h"
#include "tests/unit/component_env.h"

using namespace kv;
using namespace kv::node;
using kv::test::ComponentEnv;

namespace {

struct Fixture {
    explicit Fixture(std::vector<gossip::Member> members = {{"a", "tcp://a"}})
        : membership(std::move(members)),
          placement("a", 3, 64),
          handoffs(env),
          replica(config(), env, placement, handoffs, hints) {
        placement.refresh(membership, nullptr);
        replica.set_actor("a.0001");
        replica.add_observer([this](const std::string& key, const Replica::Previous&,
                                    const std::optional<std::string>& object,
                                    bool) { changes.emplace_back(key, object.value_or("")); });
    }
    static const NodeConfig& config() {
        static const NodeConfig c = [] {
            NodeConfig c;
            c.node_id = "a";
            c.siblings_max = 3;
            c.minted_requests_remembered = 2;
            return c;
        }();
        return c;
    }
    // The replies the replica sent, once its staged writes committed.
    std::vector<Message> replies() {
        auto out = env.commit();
        REQUIRE(out.ok());
        std::vector<Message> messages;
        for (auto& o : out.value()) messages.push_back(std::move(o.message));
        return messages;
    }

    ComponentEnv env;
    gossip::StaticMembership membership;
    Placement placement;
    Handoffs handoffs;
    NodeStats stats;
    HintStore hints{config(), env, stats};
    Replica replica;
    std::vector<std::pair<std::string, std::string>> changes;
};

}  // namespace

TEST_CASE("mint versions a write with the replica's actor and reports the change") {
    Fixture f;
    auto first = f.replica.mint("k", std::string("v1"), std::nullopt);
    REQUIRE(first.ok());
    auto loaded = f.replica.load("k");
    REQUIRE(loaded.ok());
    CHECK(loaded->live_values() == std::vector<std::string>{"v1"});
    CHECK(loaded->siblings.front().dot == Dot{"a.0001", 1});
    REQUIRE(f.changes.size() == 1);
    CHECK(f.changes[0] == std::make_pair(std::string("k"), first->object));

    // With the context of what it saw, a write supersedes it.
    const std::string context = encode_context(loaded->context);
    REQUIRE(f.replica.mint("k", std::string("v2"), context).ok());
    CHECK(f.replica.load("k")->live_values() == std::vector<std::string>{"v2"});
    // A blind write becomes a sibling; the sibling limit is enforced.
    REQUIRE(f.replica.mint("k", std::string("v3"), std::nullopt).ok());
    auto v4 = f.replica.mint("k", std::string("v4"), std::nullopt);
    REQUIRE(v4.ok());
    // The blind write's writer context covers its own version only, not the
    // siblings v2 and v3 it never saw.
    auto v4_context = decode_context(v4->writer_context);
    REQUIRE(v4_context.ok());
    auto after_v4 = f.replica.load("k");
    REQUIRE(after_v4.ok());
    REQUIRE(after_v4->siblings.size() == 3);
    for (const auto& s : after_v4->siblings)
        CHECK(v4_context->covers(s.dot) == (s.value == std::string("v4")));
    CHECK(f.replica.mint("k", std::string("v5"), std::nullopt).status().code() ==
          ErrorCode::sibling_limit);
    CHECK(f.changes.size() == 4);  // the refused write changed nothing
    // A replacing put without a context supersedes everything the replica
    // holds (the Redis gateway's SET), and its writer context covers it all.
    auto replaced = f.replica.mint("k", std::string("r"), std::nullopt, true);
    REQUIRE(replaced.ok());
    CHECK(f.replica.load("k")->live_values() == std::vector<std::string>{"r"});
    auto replaced_context = decode_context(replaced->writer_context);
    REQUIRE(replaced_context.ok());
    for (const auto& s : after_v4->siblings) CHECK(replaced_context->covers(s.dot));
    REQUIRE(f.replica.mint("k", std::string("v3"), std::nullopt).ok());
    REQUIRE(f.replica.mint("k", std::string("v4"), std::nullopt).ok());
    // A delete without a context removes everything the replica holds.
    REQUIRE(f.replica.mint("k", std::nullopt, std::nullopt).ok());
    CHECK(f.replica.load("k")->live_values().empty());
    CHECK(f.replica.mint("k", std::string("x"), std::string("garbage")).status().code() ==
          ErrorCode::bad_context);
}

TEST_CASE("a stored object's record holds its entry, and a short or corrupt one is an error") {
    Fixture f;
    f.env.now_ms_value = 4321;
    auto minted = f.replica.mint("k", std::string("v"), std::nullopt);
    REQUIRE(minted.ok());
    REQUIRE(f.replies().empty());
    const std::string stored = stored_key("k");
    CHECK(stored.substr(8) == "k");
    auto record_bytes = f.env.store().get(Space::objects, stored);
    REQUIRE(record_bytes.ok());
    REQUIRE(record_bytes.value().has_value());
    auto record = read_stored_record(stored, *record_bytes.value());
    REQUIRE(record.has_value());
    CHECK(record->token == ring::hash64("k"));
    CHECK(record->object == minted->object);
    CHECK(record->hash == entry_hash("k", minted->object, false));
    CHECK(record->since_ms == 4321);
    CHECK(f.replica.read("k").value() == std::optional<std::string>(minted->object));
    // Shorter than its header; then a header before bytes that are no object.
    REQUIRE(f.env.store().write({{Space::objects, stored, std::string(15, 'x')}}).ok());
    CHECK(f.replica.read("k").status().code() == ErrorCode::storage_error);
    REQUIRE(f.env.store().write({{Space::objects, stored, std::string(16, 'x') + "\xc1"}}).ok());
    CHECK(f.replica.load("k").status().code() == ErrorCode::storage_error);
}

TEST_CASE("merge stages and reports only real changes, and refuses undecodable objects") {
    Fixture f;
    Object incoming;
    incoming.siblings.push_back(Sibling{Dot{"b.0002", 1}, std::string("from-b")});
    incoming.context.set("b.0002", 1);
    const std::string bytes = encode_object(incoming);
    REQUIRE(f.replica.merge("k", bytes).ok());
    CHECK(f.changes.size() == 1);
    REQUIRE(f.replica.merge("k", bytes).ok());  // idempotent: nothing new to write
    CHECK(f.changes.size() == 1);
    CHECK(f.replica.load("k")->live_values() == std::vector<std::string>{"from-b"});
    CHECK(f.replica.merge("k", "not an object").code() != ErrorCode::ok);
    CHECK(f.changes.size() == 1);
}

TEST_CASE("a duplicated minting request is answered without minting again") {
    Fixture f;
    const ReplyTo coordinator{"route-1"};
    ReplicaWriteRequest req{7, "k", std::string("v"), std::nullopt, 0, {}, 0, ""};
    f.replica.handle(coordinator, req);
    f.replica.handle(coordinator, req);  // the network duplicated it
    auto replies = f.replies();
    REQUIRE(replies.size() == 2);
    for (const auto& m : replies) {
        REQUIRE(std::holds_alternative<ReplicaWriteResponse>(m));
        CHECK(std::get<ReplicaWriteResponse>(m).code == ErrorCode::ok);
    }
    CHECK(f.changes.size() == 1);
    CHECK(f.replica.load("k")->siblings.size() == 1);
    // The same id from another route is another request.
    f.replica.handle(ReplyTo{"route-2"}, req);
    CHECK(f.changes.size() == 2);
    // The window is bounded (2 here): the oldest request is forgotten.
    // (A delete without a context: it keeps the sibling count under the limit of 3.)
    f.replica.handle(coordinator, ReplicaWriteRequest{8, "k", std::nullopt, {}, 0, {}, 0, ""});
    f.replica.handle(coordinator, req);
    CHECK(f.changes.size() == 4);
}

TEST_CASE("read and merge requests are answered from the store") {
    Fixture f;
    f.replica.handle(ReplyTo{"c"}, ReplicaReadRequest{1, "k"});
    REQUIRE(f.replica.mint("k", std::string("v"), std::nullopt).ok());
    f.replica.handle(ReplyTo{"c"}, ReplicaReadRequest{2, "k"});
    f.replica.handle(ReplyTo{"c"}, ReplicaMergeRequest{3, "k", "junk", {}, 0, ""});
    auto replies = f.replies();
    REQUIRE(replies.size() == 3);
    CHECK_FALSE(std::get<ReplicaReadResponse>(replies[0]).object.has_value());
    CHECK(std::get<ReplicaReadResponse>(replies[1]).object.has_value());
    CHECK(std::get<ReplicaMergeResponse>(replies[2]).code != ErrorCode::ok);
}

TEST_CASE("with gossip placement a replica serves only its keys and not what it handed off") {
    ComponentEnv env;
    NodeConfig config;
    config.node_id = "n1";
    // Four members up: n1 replicates about 3/4 of the keys.
    std::vector<gossip::NodeTokens> claimed;
    gossip::MemberState self;
    self.id = "n1";
    self.declared = gossip::MemberStatus::up;
    self.incarnation = 1;
    self.tokens = gossip::claim_tokens(claimed, "n1", 16, 3);
    claimed.push_back({"n1", self.tokens});
    gossip::ClusterView view(self, 64);
    for (const std::string id : {"n2", "n3", "n4"}) {
        gossip::MemberState s;
        s.id = id;
        s.declared = gossip::MemberStatus::up;
        s.incarnation = 1;
        s.tokens = gossip::claim_tokens(claimed, id, 16, 3);
        claimed.push_back({id, s.tokens});
        view.merge(s);
    }
    Placement placement("n1", 3, 16);
    placement.refresh(view, &view);
    REQUIRE(placement.dynamic());
    REQUIRE_FALSE(placement.moving());
    Handoffs handoffs(env);
    NodeStats stats;
    HintStore hints(config, env, stats);
    Replica replica(config, env, placement, handoffs, hints);
    size_t owned = 0;
    size_t refused = 0;
    for (int i = 0; i < 200; ++i) {
        const std::string key = "key" + std::to_string(i);
        const bool mine = has_id(placement.replicas(key), "n1");
        const Status s = replica.check_owner(key, false, {});
        CHECK(s.ok() == mine);
        if (!mine) CHECK(s.code() == ErrorCode::not_owner);
        owned += mine;
        refused += !mine;
        // The coordinator's own check is skipped while nothing moves.
        CHECK(replica.check_local_owner(key, true, {}).ok());
    }
    CHECK(owned > 100);
    CHECK(refused > 20);
}

TEST_CASE("handoffs persist, fence their ranges and reload; a corrupt record stops the node") {
    ComponentEnv env;
    {
        Handoffs h(env);
        REQUIRE(h.load().ok());
        CHECK(h.empty());
        h.record("n5", {ring::Range{100, 200}, ring::Range{UINT64_MAX - 10, 5}});
        CHECK(h.fenced(150));
        CHECK(h.fenced(200));
        CHECK_FALSE(h.fenced(100));
        CHECK(h.fenced(UINT64_MAX));
        CHECK(h.fenced(0));
        CHECK_FALSE(h.fenced(6));
        CHECK(h.handed_off("n5", ring::Range{120, 180}));
        CHECK_FALSE(h.handed_off("n6", ring::Range{120, 180}));
        CHECK_FALSE(h.handed_off("n5", ring::Range{50, 180}));
        REQUIRE(env.commit().ok());
    }
    {
        Handoffs reloaded(env);
        REQUIRE(reloaded.load().ok());
        CHECK(reloaded.fenced(150));
        CHECK(reloaded.fenced(2));
        CHECK(reloaded.handed_off("n5", ring::Range{UINT64_MAX - 10, 5}));
        reloaded.clear();
        REQUIRE(env.commit().ok());
        Handoffs cleared(env);
        REQUIRE(cleared.load().ok());
        CHECK(cleared.empty());
    }
    env.stage_write(StoreWrite{Space::meta, "handoffs", std::string("\x05\x00", 2)});
    Handoffs corrupt(env);
    CHECK(corrupt.load().code() == ErrorCode::storage_error);
}

TEST_CASE("a stand-in mints a new dot for a key even after its earlier hint was replayed") {
    Fixture f;
    f.replica.set_lifetime(7);
    auto first = f.replica.mint_as_stand_in("h", "k", std::string("v1"), std::nullopt);
    REQUIRE(first.ok());
    // The home made the hint durable: it is deleted here, and with it the
    // only record of the dot this node minted for the key.
    auto sent = f.hints.batch("h", 10, 1 << 20);
    REQUIRE(sent.ok());
    REQUIRE(f.hints.remove_if_unchanged("h", "k", sent->front().generation));
    auto second = f.replica.mint_as_stand_in("h", "k", std::string("v2"), std::nullopt);
    REQUIRE(second.ok());
    auto o1 = decode_object(first->object);
    auto o2 = decode_object(second->object);
    REQUIRE(o1.ok());
    REQUIRE(o2.ok());
    const Dot d1 = o1->siblings.front().dot;
    const Dot d2 = o2->siblings.front().dot;
    CHECK(d1.actor == d2.actor);
    CHECK(d1.actor.find("a~") == 0);
    CHECK(d2.counter == d1.counter + 1);
    // The second write did not see the first: a home merging both keeps both,
    // and the second's context does not claim the first's dot.
    CHECK(merge(o1.value(), o2.value()).live_values() == std::vector<std::string>{"v1", "v2"});
    CHECK_FALSE(o2->context.covers(d1));
}

TEST_CASE("a purge erases only the tombstones judged, and no later mint reuses their dots") {
    Fixture f;
    REQUIRE(f.replica.mint("k", std::string("v1"), std::nullopt).ok());  // (a.0001, 1)
    const std::string before_delete = *f.replica.read("k").value();
    // A client read v1 and keeps its context.
    const std::string old_context = encode_context(f.replica.load("k")->context);
    // A live value is never purged.
    CHECK_FALSE(f.replica.purge("k", before_delete).value());
    REQUIRE(f.replica.mint("k", std::nullopt, std::nullopt).ok());  // tombstone (a.0001, 2)
    const std::string tombstone = *f.replica.read("k").value();
    // Only the object judged: after a change, nothing is purged.
    CHECK_FALSE(f.replica.purge("k", before_delete).value());
    REQUIRE(f.replica.purge("k", tombstone).value());
    CHECK_FALSE(f.replica.read("k").value().has_value());
    CHECK(f.changes.back() == std::make_pair(std::string("k"), std::string()));  // erased
    // The floor is durable (meta purge_floor) ...
    REQUIRE(f.replies().empty());
    CHECK(f.env.read(Space::meta, "purge_floor").value() == std::optional<std::string>("2"));
    // ... and a blind write after the purge mints above every purged counter:
    // (a.0001, 1) again would be superseded by the old client's context.
    auto again = f.replica.mint("k", std::string("v3"), std::nullopt);
    REQUIRE(again.ok());
    auto held = f.replica.load("k");
    REQUIRE(held->siblings.size() == 1);
    CHECK(held->siblings.front().dot == Dot{"a.0001", 3});
    CHECK(held->context.exception_count() == 0);
    auto old = decode_context(old_context);
    REQUIRE(old.ok());
    CHECK_FALSE(old->covers(held->siblings.front().dot));
    // A fresh replica over the same store reads the floor back.
    Replica restarted(Fixture::config(), f.env, f.placement, f.handoffs, f.hints);
    restarted.set_actor("a.0001");
    REQUIRE(restarted.load_purge_floor().ok());
    auto other = restarted.mint("k2", std::string("x"), std::nullopt);
    REQUIRE(other.ok());
    CHECK(restarted.load("k2")->siblings.front().dot == Dot{"a.0001", 3});
}

namespace {

// Builds a KeyIndex from what the store holds, as a restart does.
void build_from_store(KeyIndex& index) {
    REQUIRE(index.start().ok());
    for (int i = 0; i < 100 && !index.ready(); ++i) index.tick();
    REQUIRE(index.ready());
}

}  // namespace

TEST_CASE("anti-entropy's index and tree follow every change the replica reports") {
    // The index learns each change from the replica's observer, which passes
    // the object the key held before; its tree must equal one rebuilt from the
    // stored index, and every index record the hash of the stored object.
    Fixture f;
    KeyIndex index(f.env);
    build_from_store(index);
    f.replica.add_observer([&index](const std::string& key, const Replica::Previous& previous,
                                    const std::optional<std::string>& object, bool tombstones) {
        index.on_change(key, previous.object, previous.tombstones_only, object, tombstones);
    });
    const auto agrees_with_store = [&] {
        CHECK(f.replies().empty());  // commits what was staged
        KeyIndex rebuilt(f.env);
        build_from_store(rebuilt);
        CHECK(rebuilt.root() == index.root());
        CHECK(rebuilt.keys() == index.keys());
        // Status answers `keys stored` from the index's count once it is ready.
        CHECK(index.keys() == f.env.count(Space::objects).value());
        CHECK(rebuilt.tombstones() == index.tombstones());
        for (const std::string key : {"k1", "k2", "k3"}) {
            auto stored = f.replica.read(key);
            REQUIRE(stored.ok());
            auto entry = index.find(key);
            REQUIRE(entry.ok());
            REQUIRE(entry.value().has_value() == stored.value().has_value());
            if (!stored.value()) continue;
            const std::string& bytes = *stored.value();
            auto object = decode_object(bytes);
            REQUIRE(object.ok());
            const bool tombstones = !object->siblings.empty() && object->live_count() == 0;
            CHECK(entry.value()->hash == entry_hash(key, bytes, tombstones));
        }
    };
    REQUIRE(f.replica.mint("k1", std::string("v1"), std::nullopt).ok());
    REQUIRE(f.replica.mint("k2", std::string("v2"), std::nullopt).ok());
    agrees_with_store();
    CHECK(index.keys() == 2);
    // A concurrent version from elsewhere: k1 gets a sibling.
    REQUIRE(f.replica.merge("k1", kv::test::minted_object("b.0001", "w1")).ok());
    // A key first stored by a merge.
    REQUIRE(f.replica.merge("k3", kv::test::minted_object("b.0001", "w3")).ok());
    agrees_with_store();
    CHECK(index.keys() == 3);
    // A delete leaves a tombstone; the tombstone-only bit moves with it.
    REQUIRE(f.replica.mint("k2", std::nullopt, std::nullopt).ok());
    agrees_with_store();
    CHECK(index.tombstones() == 1);
    // A write over a tombstone, then the tombstone of another key purged.
    REQUIRE(f.replica.mint("k3", std::nullopt, std::nullopt).ok());
    agrees_with_store();
    CHECK(index.tombstones() == 2);
    REQUIRE(f.replica.mint("k2", std::string("back"), std::nullopt).ok());
    const std::string k3_tombstone = *f.replica.read("k3").value();
    REQUIRE(f.replica.purge("k3", k3_tombstone).value());
    agrees_with_store();
    CHECK(index.keys() == 2);
    CHECK(index.tombstones() == 0);
}
