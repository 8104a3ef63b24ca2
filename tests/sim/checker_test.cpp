// The checker flags each kind of violation in hand-made histories, and accepts
// the legitimate histories that differ from them in one detail.
#include <catch2/catch.hpp>

#include "sim/checker.h"

using namespace kv;
using namespace kv::sim;

namespace {

HistoryEntry op(OpKind kind, const std::string& key, proto::Level level, uint64_t start_ms,
                uint64_t end_ms, Outcome outcome = Outcome::ok) {
    HistoryEntry e;
    e.kind = kind;
    e.key = key;
    e.level = level;
    e.start_ms = start_ms;
    e.end_ms = end_ms;
    e.outcome = outcome;
    return e;
}

HistoryEntry put(const std::string& value, proto::Level level, uint64_t start_ms, uint64_t end_ms,
                 int64_t context_from = kNoOp, Outcome outcome = Outcome::ok) {
    HistoryEntry e = op(OpKind::put, "k", level, start_ms, end_ms, outcome);
    e.value = value;
    e.context_from = context_from;
    if (context_from != kNoOp) e.context = "ctx";
    return e;
}

HistoryEntry get(std::vector<std::string> values, proto::Level level, uint64_t start_ms,
                 uint64_t end_ms) {
    HistoryEntry e = op(OpKind::get, "k", level, start_ms, end_ms,
                        values.empty() ? Outcome::not_found : Outcome::ok);
    e.values = std::move(values);
    return e;
}

HistoryEntry del(int64_t context_from, uint64_t start_ms, uint64_t end_ms,
                 Outcome outcome = Outcome::ok) {
    HistoryEntry e = op(OpKind::del, "k", proto::Level::quorum, start_ms, end_ms, outcome);
    e.context_from = context_from;
    if (context_from != kNoOp) e.context = "ctx";
    return e;
}

History history(std::vector<HistoryEntry> entries) {
    History h;
    h.n_replicas = 3;
    for (size_t i = 0; i < entries.size(); ++i) entries[i].index = i;
    h.entries = std::move(entries);
    return h;
}

node::Object object_with(const std::vector<std::pair<uint64_t, std::string>>& siblings) {
    node::Object o;
    for (const auto& [counter, value] : siblings) {
        o.siblings.push_back(node::Sibling{node::Dot{"a", counter}, value});
        o.context.set("a", std::max(o.context.get("a"), counter));
    }
    return o;
}

FinalState converged(const node::Object& o) {
    return FinalState{{"k", {{"n1", o}, {"n2", o}, {"n3", o}}}};
}

using proto::Level;

}  // namespace

TEST_CASE(
    "checker: an acknowledged put missing from the final state and never superseded is lost") {
    const History h = history({put("v1", Level::one, 0, 10), put("v2", Level::one, 20, 30)});
    auto violations = check(h, converged(object_with({{2, "v2"}})));
    REQUIRE(violations.size() == 1);
    CHECK(violations[0].kind == ViolationKind::lost_write);
    CHECK(violations[0].ops == std::vector<uint64_t>{0});
    // Present as a sibling: not lost.
    CHECK(check(h, converged(object_with({{1, "v1"}, {2, "v2"}}))).empty());
}

TEST_CASE(
    "checker: a put superseded by a write with the context of a get that saw it is not lost") {
    const History h = history({put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30),
                               put("v2", Level::one, 40, 50, /*context_from=*/1)});
    CHECK(check_lost_writes(h, converged(object_with({{2, "v2"}}))).empty());
    // Superseded by a delete with that context, even one that failed (it may have applied).
    const History d = history({put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30),
                               del(1, 40, 50, Outcome::failed)});
    CHECK(check_lost_writes(d, converged(object_with({}))).empty());
    // A get that did not return v1 gives no licence to drop it.
    const History blind = history({put("v1", Level::one, 0, 10), get({}, Level::one, 5, 8),
                                   put("v2", Level::one, 40, 50, 1)});
    auto v = check_lost_writes(blind, converged(object_with({{2, "v2"}})));
    REQUIRE(v.size() == 1);
    CHECK(v[0].kind == ViolationKind::lost_write);
}

TEST_CASE("checker: a context-less delete supersedes only puts it may have seen") {
    // The delete ended before the put started: it cannot have removed it.
    const History before = history({del(kNoOp, 0, 10), put("v1", Level::one, 20, 30)});
    REQUIRE(check_lost_writes(before, converged(object_with({}))).size() == 1);
    const History after = history({put("v1", Level::one, 0, 30), del(kNoOp, 20, 40)});
    CHECK(check_lost_writes(after, converged(object_with({}))).empty());
}

TEST_CASE("checker: a quorum read after a quorum write that misses it is stale") {
    const History h = history({put("v1", Level::quorum, 0, 10), get({}, Level::quorum, 20, 30)});
    auto violations = check_read_your_writes(h);
    REQUIRE(violations.size() == 1);
    CHECK(violations[0].kind == ViolationKind::stale_read);
    CHECK(violations[0].ops == std::vector<uint64_t>{1, 0});
    // Also at r=1 after w=all, and r=all after w=1.
    CHECK(
        check_read_your_writes(history({put("v1", Level::all, 0, 10), get({}, Level::one, 20, 30)}))
            .size() == 1);
    CHECK(
        check_read_your_writes(history({put("v1", Level::one, 0, 10), get({}, Level::all, 20, 30)}))
            .size() == 1);
}

TEST_CASE("checker: reads the levels do not promise, or that overlap the write, are not stale") {
    // r + w = n: no promise.
    CHECK(
        check_read_your_writes(history({put("v1", Level::one, 0, 10), get({}, Level::two, 20, 30)}))
            .empty());
    // The read started before the write was acknowledged.
    CHECK(
        check_read_your_writes(history({put("v1", Level::all, 0, 25), get({}, Level::all, 20, 30)}))
            .empty());
    // Unacknowledged writes promise nothing.
    CHECK(check_read_your_writes(history({put("v1", Level::all, 0, 10, kNoOp, Outcome::failed),
                                          get({}, Level::all, 20, 30)}))
              .empty());
    // Returning the value is fine.
    CHECK(check_read_your_writes(
              history({put("v1", Level::all, 0, 10), get({"v1"}, Level::one, 20, 30)}))
              .empty());
}

TEST_CASE(
    "checker: a read may return what transitively superseded the write, if it started in time") {
    // v1 <- v2 (context of #1) <- delete (context of #3); a read after all of it sees nothing.
    std::vector<HistoryEntry> e = {put("v1", Level::quorum, 0, 10),
                                   get({"v1"}, Level::one, 11, 12),
                                   put("v2", Level::one, 13, 14, 1),
                                   get({"v2"}, Level::one, 15, 16),
                                   del(3, 17, 18),
                                   get({}, Level::quorum, 30, 40)};
    CHECK(check_read_your_writes(history(e)).empty());
    // The same read ending before the superseding delete began is stale for v2's
    // chain: v1 is neither returned nor superseded by anything that had started.
    e[5] = get({}, Level::quorum, 12, 13);
    e[5].start_ms = 11;
    auto v = check_read_your_writes(history(e));
    REQUIRE(v.size() == 1);
    CHECK(v[0].kind == ViolationKind::stale_read);
}

TEST_CASE("checker: replicas holding different objects diverge") {
    const node::Object a = object_with({{1, "v1"}});
    const node::Object b = object_with({{1, "v1"}, {2, "v2"}});
    FinalState state{{"k", {{"n1", a}, {"n2", b}, {"n3", b}}}};
    auto violations = check_convergence(state);
    REQUIRE(violations.size() == 1);
    CHECK(violations[0].kind == ViolationKind::divergence);
    CHECK(violations[0].key == "k");
    // A replica holding nothing differs from one holding a tombstone.
    node::Object tomb;
    tomb.context.set("a", 1);
    tomb.siblings.push_back(node::Sibling{node::Dot{"a", 1}, std::nullopt});
    CHECK(check_convergence(FinalState{{"k", {{"n1", tomb}, {"n2", std::nullopt}}}}).size() == 1);
    CHECK(check_convergence(converged(b)).empty());
}

TEST_CASE("history digests differ when any recorded detail differs") {
    History a = history({put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30)});
    History b = a;
    CHECK(digest(a) == digest(b));
    b.entries[1].end_ms = 31;
    CHECK(digest(a) != digest(b));
    b = a;
    b.entries[1].values = {"v2"};
    CHECK(digest(a) != digest(b));
}
