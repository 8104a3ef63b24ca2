// The checker flags each kind of violation in hand-made histories, and accepts
// the legitimate histories that differ from them in one detail. The excusals
// the first checker granted and this one must not (a timed-out blind delete
// long before a put; a context write that never took effect) have cases here.
#include <catch2/catch.hpp>

#include "sim/checker.h"

using namespace kv;
using namespace kv::sim;

namespace {

constexpr uint64_t kWindowMs = 3000;

HistoryEntry op(OpKind kind, const std::string& key, proto::Level level, uint64_t start_ms,
                uint64_t end_ms, Outcome outcome = Outcome::ok) {
    HistoryEntry e;
    e.kind = kind;
    e.key = key;
    e.level = level;
    e.start_ms = start_ms;
    e.end_ms = end_ms;
    e.outcome = outcome;
    // Strict unless a case says otherwise: the quorum-intersection rules bind
    // only strict pairs (the cases below on sloppy requests turn it off).
    e.strict = true;
    if (outcome == Outcome::failed || outcome == Outcome::indeterminate)
        e.code = ErrorCode::timeout;
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
                 Outcome outcome = Outcome::ok, proto::Level level = proto::Level::quorum) {
    HistoryEntry e = op(OpKind::del, "k", level, start_ms, end_ms, outcome);
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

// An object holding `values` (nullopt: a tombstone) as siblings of one actor.
node::Object object_with(const std::vector<std::optional<std::string>>& values) {
    node::Object o;
    uint64_t counter = 0;
    for (const auto& value : values) {
        o.siblings.push_back(node::Sibling{node::Dot{"a", ++counter}, value});
        o.context.set("a", counter);
    }
    return o;
}

FinalState converged(const node::Object& o) {
    return FinalState{{"k", {{"n1", o}, {"n2", o}, {"n3", o}}}};
}

FinalRead final_read(uint32_t node, std::vector<std::string> values) {
    FinalRead r;
    r.key = "k";
    r.node = node;
    r.outcome = values.empty() ? Outcome::not_found : Outcome::ok;
    r.code = values.empty() ? ErrorCode::not_found : ErrorCode::ok;
    r.values = std::move(values);
    return r;
}

// A settled run whose stores before and after the reads hold `o` on every
// replica and whose final reads return its live values.
CheckInput settled(const node::Object& o) {
    CheckInput in;
    in.write_effect_window_ms = kWindowMs;
    in.stores_before_reads = converged(o);
    in.stores_after_reads = converged(o);
    for (uint32_t node = 0; node < 3; ++node)
        in.final_reads.push_back(final_read(node, o.live_values()));
    return in;
}

// Only the history: no final ring (as in an unsettled run).
CheckInput history_only() {
    CheckInput in;
    in.write_effect_window_ms = kWindowMs;
    in.settled = false;
    return in;
}

std::vector<Violation> of_kind(const CheckReport& r, ViolationKind kind) {
    std::vector<Violation> out;
    for (const auto& v : r.violations) {
        if (v.kind == kind) out.push_back(v);
    }
    return out;
}

using proto::Level;

}  // namespace

TEST_CASE(
    "checker: an acknowledged put no replica holds before the reads, never superseded, is "
    "lost") {
    const History h = history({put("v1", Level::one, 0, 10), put("v2", Level::one, 20, 30)});
    const CheckReport r = check(h, settled(object_with({"v2"})));
    REQUIRE(r.violations.size() == 2);  // the stores and the final reads both miss it
    CHECK(r.violations[0].kind == ViolationKind::lost_write);
    CHECK(r.violations[0].ops == std::vector<uint64_t>{0});
    CHECK(r.violations[1].kind == ViolationKind::lost_write);
    CHECK(r.stats.at("lost_write (stores before reads)").checked == 2);
    CHECK(r.stats.at("lost_write (stores before reads)").passed == 1);
    CHECK(r.stats.at("lost_write (stores before reads)").violated == 1);
    // Present as a sibling: not lost.
    CHECK(check(h, settled(object_with({"v1", "v2"}))).violations.empty());
}

TEST_CASE("checker: durability is judged from the stores before the reads, on any one replica") {
    const History h = history({put("v1", Level::quorum, 0, 10)});
    // Only n3 holds it before the reads (read repair has not run): held.
    CheckInput in = settled(object_with({"v1"}));
    in.stores_before_reads = FinalState{
        {"k", {{"n1", std::nullopt}, {"n2", std::nullopt}, {"n3", object_with({"v1"})}}}};
    CHECK(check(h, in).violations.empty());
    // No replica holds it before the reads, though the reads and the stores
    // after them have it back: lost before anything of the simulator repaired it.
    in.stores_before_reads =
        FinalState{{"k", {{"n1", std::nullopt}, {"n2", std::nullopt}, {"n3", std::nullopt}}}};
    const CheckReport r = check(h, in);
    REQUIRE(r.violations.size() == 1);
    CHECK(r.violations[0].kind == ViolationKind::lost_write);
    CHECK(r.violations[0].what.find("before the final reads") != std::string::npos);
}

TEST_CASE("checker: a final read that misses an acknowledged put the stores held loses it") {
    const History h = history({put("v1", Level::quorum, 0, 10)});
    CheckInput in = settled(object_with({"v1"}));
    in.final_reads[1] = final_read(1, {});
    const CheckReport r = check(h, in);
    REQUIRE(r.violations.size() == 1);
    CHECK(r.violations[0].kind == ViolationKind::lost_write);
    CHECK(r.violations[0].what.find("final read at all through n2") != std::string::npos);
    CHECK(r.stats.at("lost_write (final reads)").violated == 1);
}

TEST_CASE("checker: a put superseded by an acknowledged write whose context saw it is not lost") {
    const History h = history({put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30),
                               put("v2", Level::one, 40, 50, /*context_from=*/1)});
    const CheckReport r = check(h, settled(object_with({"v2"})));
    CHECK(r.violations.empty());
    CHECK(r.stats.at("lost_write (stores before reads)")
              .excused.at("superseded by an acknowledged write, which surely saw it") == 1);
    // An acknowledged delete with that context too.
    const History d =
        history({put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30), del(1, 40, 50)});
    CHECK(check(d, settled(object_with({std::nullopt}))).violations.empty());
    // A get that did not return v1 gives no licence to drop it.
    const History blind = history({put("v1", Level::one, 0, 10), get({}, Level::one, 5, 8),
                                   put("v2", Level::one, 40, 50, 1)});
    auto v = check(blind, settled(object_with({"v2"}))).violations;
    REQUIRE(!v.empty());
    CHECK(v[0].kind == ViolationKind::lost_write);
}

TEST_CASE("checker: a context write that never took effect excuses nothing") {
    // v2 carried a context that saw v1, but failed, and nothing shows it took
    // effect: its value was never read nor stored. The first checker let any
    // such write excuse v1's loss whatever its outcome.
    for (Outcome outcome : {Outcome::failed, Outcome::indeterminate}) {
        const History h = history({put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30),
                                   put("v2", Level::one, 40, 50, 1, outcome)});
        auto v = check(h, settled(object_with({}))).violations;
        REQUIRE(v.size() == 2);
        CHECK(v[0].kind == ViolationKind::lost_write);
        CHECK(v[0].ops == std::vector<uint64_t>{0});
        // The same delete with context, failed: no excuse either.
        const History d = history({put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30),
                                   del(1, 40, 50, outcome)});
        CHECK(of_kind(check(d, settled(object_with({}))), ViolationKind::lost_write).size() == 2);
    }
    // The failed write is known to have taken effect when a read returned its value...
    const History read = history({put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30),
                                  put("v2", Level::one, 40, 50, 1, Outcome::failed),
                                  get({"v2"}, Level::one, 60, 70), del(3, 80, 90)});
    const CheckReport r = check(read, settled(object_with({std::nullopt})));
    CHECK(r.violations.empty());
    // ... or a store holds it.
    const History stored = history({put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30),
                                    put("v2", Level::one, 40, 50, 1, Outcome::failed)});
    const CheckReport s = check(stored, settled(object_with({"v2"})));
    CHECK(s.violations.empty());
    CHECK(s.stats.at("lost_write (stores before reads)")
              .excused.at("superseded by an unacknowledged write that was read or stored, which "
                          "surely saw it") == 1);
}

TEST_CASE(
    "checker: a blind delete supersedes only what may have taken effect before its own "
    "effect ended") {
    // Acknowledged before the put started: it cannot have removed it.
    const History before = history({del(kNoOp, 0, 10), put("v1", Level::one, 20, 30)});
    CHECK(of_kind(check(before, settled(object_with({std::nullopt}))), ViolationKind::lost_write)
              .size() == 2);
    // Overlapping the put, acknowledged: it may have.
    const History after = history({put("v1", Level::one, 0, 30), del(kNoOp, 20, 40)});
    CHECK(check(after, settled(object_with({std::nullopt}))).violations.empty());
}

TEST_CASE("checker: a timed-out blind delete long before a put does not excuse its loss") {
    // The delete timed out at 2.5 s; the put started at 20 s, long after the
    // delete's effect window (3 s) closed. The first checker let it excuse
    // every later put of the key forever.
    for (Outcome outcome : {Outcome::failed, Outcome::indeterminate}) {
        const History h =
            history({del(kNoOp, 0, 2500, outcome), put("v1", Level::one, 20'000, 20'010)});
        auto v = of_kind(check(h, settled(object_with({std::nullopt}))), ViolationKind::lost_write);
        REQUIRE(v.size() == 2);
        CHECK(v[0].ops == std::vector<uint64_t>{1});
    }
    // Inside its window, a stored tombstone shows some delete took effect: excused.
    const History inside =
        history({del(kNoOp, 0, 2500, Outcome::indeterminate), put("v1", Level::one, 1000, 1010)});
    const CheckReport r = check(inside, settled(object_with({std::nullopt})));
    CHECK(r.violations.empty());
    CHECK(r.stats.at("lost_write (stores before reads)")
              .excused.count("superseded by an unacknowledged delete (a tombstone of its key is "
                             "stored), which may have seen it") == 1);
    // Inside its window but with no trace of any delete having taken effect: lost.
    CHECK(of_kind(check(inside, settled(object_with({}))), ViolationKind::lost_write).size() == 2);
}

TEST_CASE("checker: a get that returned nothing may have seen a delete, and passes it on") {
    // v1; a blind delete overlapping it, timed out; a get returning nothing
    // (the tombstone is in its context); v2 with that context, acknowledged.
    // v1 may have been removed by the delete, which v2's context then covered.
    const History h = history({put("v1", Level::one, 0, 10), del(kNoOp, 5, 2505, Outcome::failed),
                               get({}, Level::one, 100, 110), put("v2", Level::one, 120, 130, 2)});
    CHECK(check(h, settled(object_with({"v2"}))).violations.empty());
    // The same get ending before the delete started saw no delete: v1 is lost.
    History early = h;
    early.entries[2].start_ms = 1;
    early.entries[2].end_ms = 4;
    CHECK(of_kind(check(early, settled(object_with({"v2"}))), ViolationKind::lost_write).size() ==
          2);
}

TEST_CASE("checker: a write with a write reply's context saw that write and what it saw") {
    const History h = history({put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30),
                               put("v2", Level::quorum, 40, 50, 1),
                               put("v3", Level::quorum, 60, 70, /*context_from=*/2),
                               get({"v1"}, Level::quorum, 80, 90)});
    // v1 and v2 are superseded by v3: a quorum read after it returning v1 is a resurrection.
    const CheckReport r = check(h, settled(object_with({"v3"})));
    CHECK(of_kind(r, ViolationKind::lost_write).empty());
    auto v = of_kind(r, ViolationKind::resurrection);
    REQUIRE(v.size() == 1);
    CHECK(v[0].ops == std::vector<uint64_t>{4, 0, 2});  // the first acknowledged superseder
}

TEST_CASE("checker: a value superseded by an acknowledged write must not come back") {
    // v1; a get sees it; v2 with that context acknowledged at quorum (w=2).
    std::vector<HistoryEntry> e = {put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30),
                                   put("v2", Level::quorum, 40, 50, 1),
                                   get({"v1"}, Level::quorum, 60, 70)};
    // A quorum read (r=2, r + w > 3) after the acknowledgement returns v1.
    CheckReport r = check(history(e), history_only());
    auto v = of_kind(r, ViolationKind::resurrection);
    REQUIRE(v.size() == 1);
    CHECK(v[0].ops == std::vector<uint64_t>{3, 0, 2});
    CHECK(r.stats.at("resurrection (puts)").violated == 1);
    // At one (r + w = 3): no promise; counted as excused.
    e[3].level = Level::one;
    r = check(history(e), history_only());
    CHECK(r.violations.empty());
    CHECK(r.stats.at("resurrection (puts)").excused.at("read again only where r + w <= n") == 1);
    // Started before the acknowledgement: no promise either.
    e[3].level = Level::quorum;
    e[3].start_ms = 45;
    CHECK(check(history(e), history_only()).violations.empty());
    // An unacknowledged v2 promises nothing.
    e[3].start_ms = 60;
    e[2].outcome = Outcome::failed;
    CHECK(of_kind(check(history(e), history_only()), ViolationKind::resurrection).empty());
}

TEST_CASE("checker: a value sent more than once may come back; its loss is still judged") {
    // v1 first timed out, then its retry was acknowledged: two versions of v1
    // may exist. The get saw v1 (one version or both); v2 with that context
    // was acknowledged at quorum; a later quorum read returning v1 may show the
    // version the get never saw, so it is no resurrection, but it is counted.
    std::vector<HistoryEntry> e = {
        put("v1", Level::one, 0, 2500, kNoOp, Outcome::indeterminate),
        put("v1", Level::one, 2600, 2610), get({"v1"}, Level::one, 2620, 2630),
        put("v2", Level::quorum, 2640, 2650, 2), get({"v1", "v2"}, Level::quorum, 2660, 2670)};
    e[1].retry_of = 0;
    CheckReport r = check(history(e), history_only());
    CHECK(of_kind(r, ViolationKind::resurrection).empty());
    CHECK(r.stats.at("resurrection (puts)")
              .excused.at("what it superseded was sent more than once (a retry or a duplicated "
                          "request)") == 1);
    // Without the retry (two distinct puts of one value cannot happen in a
    // run, so: the same history as one put) it is a resurrection.
    std::vector<HistoryEntry> once = {e[1], e[2], e[3], e[4]};
    once[0].retry_of = kNoOp;
    once[2].context_from = 1;
    CHECK(of_kind(check(history(once), history_only()), ViolationKind::resurrection).size() == 1);
    // A request sent to two coordinators is two sends too.
    once[0].also_sent_to = 2;
    CHECK(of_kind(check(history(once), history_only()), ViolationKind::resurrection).empty());
    // A resent value's loss is judged as any other's: excused only by a write
    // known to have taken effect that may have seen it. Here v2 did: excused.
    r = check(history(e), settled(object_with({"v2"})));
    CHECK(of_kind(r, ViolationKind::lost_write).empty());
    // Without v2's acknowledgement (and no read of v2) nothing excuses losing
    // the acknowledged retry.
    e[3].outcome = Outcome::failed;
    e[3].code = ErrorCode::unavailable;
    e[4].values = {"v1"};
    r = check(history(e), settled(object_with({})));
    CHECK(of_kind(r, ViolationKind::lost_write).size() >= 1);
}

TEST_CASE("checker: a request sent to two coordinators may take effect after its reply") {
    // A blind delete sent to two coordinators, acknowledged through one at 20;
    // a put acknowledged at 40 is gone at the end: the other copy of the
    // delete may have minted after it (within the effect window).
    std::vector<HistoryEntry> e = {del(kNoOp, 0, 20), put("v1", Level::quorum, 30, 40)};
    e[0].also_sent_to = 1;
    CHECK(
        of_kind(check(history(e), settled(object_with({std::nullopt}))), ViolationKind::lost_write)
            .empty());
    // Sent once, the delete ended before the put started: the loss is a violation.
    e[0].also_sent_to.reset();
    CHECK(
        of_kind(check(history(e), settled(object_with({std::nullopt}))), ViolationKind::lost_write)
            .size() == 2);
}

TEST_CASE("checker: a value an acknowledged delete superseded must not come back") {
    // Deletes are checked like puts: one with the context of a get that saw v1.
    std::vector<HistoryEntry> e = {put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30),
                                   del(1, 40, 50, Outcome::ok, Level::all),
                                   get({"v1"}, Level::one, 60, 70)};
    CheckReport r = check(history(e), history_only());
    REQUIRE(of_kind(r, ViolationKind::resurrection).size() == 1);
    CHECK(r.stats.at("resurrection (deletes)").checked == 1);
    CHECK(r.stats.at("resurrection (deletes)").violated == 1);
    // A blind delete after a put acknowledged at all: every replica held the
    // put, so the delete's minting replica removed it.
    const History blind = history(
        {put("v1", Level::all, 0, 10), del(kNoOp, 20, 30), get({"v1"}, Level::quorum, 40, 50)});
    CHECK(of_kind(check(blind, history_only()), ViolationKind::resurrection).size() == 1);
    // After a put at quorum, the minting replica may not have held it.
    History quorum = blind;
    quorum.entries[0].level = Level::quorum;
    CHECK(check(quorum, history_only()).violations.empty());
}

TEST_CASE("checker: no final read and no store after the reads may hold a superseded value") {
    const History h = history({put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30),
                               put("v2", Level::one, 40, 50, 1)});
    // A final read returning v1 next to v2, although v2 (w=1) superseded it.
    CheckInput in = settled(object_with({"v2"}));
    in.final_reads[2] = final_read(2, {"v1", "v2"});
    auto v = of_kind(check(h, in), ViolationKind::resurrection);
    REQUIRE(v.size() == 1);
    CHECK(v[0].what.find("final read") != std::string::npos);
    // A store after the reads still holding it.
    in = settled(object_with({"v2"}));
    in.stores_after_reads["k"][1].object = object_with({"v1", "v2"});
    v = of_kind(check(h, in), ViolationKind::resurrection);
    REQUIRE(v.size() == 1);
    CHECK(v[0].what.find("after the final reads") != std::string::npos);
    // Before the reads a lagging replica may still hold it: not a violation today.
    in = settled(object_with({"v2"}));
    in.stores_before_reads["k"][1].object = object_with({"v1"});
    CHECK(check(h, in).violations.empty());
}

TEST_CASE("checker: a quorum read after a quorum write that misses it is stale") {
    const History h = history({put("v1", Level::quorum, 0, 10), get({}, Level::quorum, 20, 30)});
    auto violations = check(h, history_only()).violations;
    REQUIRE(violations.size() == 1);
    CHECK(violations[0].kind == ViolationKind::stale_read);
    CHECK(violations[0].ops == std::vector<uint64_t>{1, 0});
    // Also at r=1 after w=all, and r=all after w=1.
    CHECK(
        check(history({put("v1", Level::all, 0, 10), get({}, Level::one, 20, 30)}), history_only())
            .violations.size() == 1);
    CHECK(
        check(history({put("v1", Level::one, 0, 10), get({}, Level::all, 20, 30)}), history_only())
            .violations.size() == 1);
}

TEST_CASE("checker: reads the levels do not promise, or that overlap the write, are not stale") {
    // r + w = n: no promise.
    CHECK(
        check(history({put("v1", Level::one, 0, 10), get({}, Level::two, 20, 30)}), history_only())
            .violations.empty());
    // The read started before the write was acknowledged.
    CHECK(
        check(history({put("v1", Level::all, 0, 25), get({}, Level::all, 20, 30)}), history_only())
            .violations.empty());
    // Unacknowledged writes promise nothing.
    CHECK(check(history({put("v1", Level::all, 0, 10, kNoOp, Outcome::failed),
                         get({}, Level::all, 20, 30)}),
                history_only())
              .violations.empty());
    // Returning the value is fine.
    const CheckReport r = check(
        history({put("v1", Level::all, 0, 10), get({"v1"}, Level::one, 20, 30)}), history_only());
    CHECK(r.violations.empty());
    CHECK(r.stats.at("stale_read").checked == 1);
    CHECK(r.stats.at("stale_read").passed == 1);
}

TEST_CASE(
    "checker: a read may miss what a write that may supersede it replaced, if it started in time") {
    // v1 <- v2 (context of #1) <- delete (context of #3); a read after all of it sees nothing.
    std::vector<HistoryEntry> e = {put("v1", Level::quorum, 0, 10),
                                   get({"v1"}, Level::one, 11, 12),
                                   put("v2", Level::one, 13, 14, 1),
                                   get({"v2"}, Level::one, 15, 16),
                                   del(3, 17, 18),
                                   get({}, Level::quorum, 30, 40)};
    CHECK(check(history(e), history_only()).violations.empty());
    // The same read ending before anything superseding v1 began is stale.
    e[5] = get({}, Level::quorum, 12, 13);
    e[5].start_ms = 11;
    auto v = check(history(e), history_only()).violations;
    REQUIRE(v.size() == 1);
    CHECK(v[0].kind == ViolationKind::stale_read);
    // A blind delete that timed out long before v1 does not excuse the miss.
    const History late =
        history({del(kNoOp, 0, 2500, Outcome::indeterminate),
                 put("v1", Level::quorum, 20'000, 20'010), get({}, Level::quorum, 20'020, 20'030)});
    REQUIRE(check(late, history_only()).violations.size() == 1);
}

TEST_CASE("checker: a final read that never succeeded is a violation") {
    CheckInput in = settled(object_with({"v1"}));
    in.final_reads[0].outcome = Outcome::failed;
    in.final_reads[0].code = ErrorCode::timeout;
    in.final_reads[0].values.clear();
    const CheckReport r = check(history({put("v1", Level::one, 0, 10)}), in);
    auto v = of_kind(r, ViolationKind::final_read_failed);
    REQUIRE(v.size() == 1);
    CHECK(v[0].what.find("n1") != std::string::npos);
    CHECK(r.stats.at("final_read_failed").checked == 3);
}

TEST_CASE(
    "checker: replicas diverge if they differ after the final reads; before them only when "
    "asked") {
    const node::Object a = object_with({"v1"});
    const node::Object b = object_with({"v1", "v2"});
    const History h = history({put("v1", Level::one, 0, 10), put("v2", Level::one, 0, 10)});
    CheckInput in = settled(b);
    in.stores_after_reads = FinalState{{"k", {{"n1", a}, {"n2", b}, {"n3", b}}}};
    auto v = of_kind(check(h, in), ViolationKind::divergence);
    REQUIRE(v.size() == 1);
    CHECK(v[0].key == "k");
    // Before the reads replicas may differ today (read repair is the only repair) ...
    in = settled(b);
    in.stores_before_reads = FinalState{{"k", {{"n1", a}, {"n2", b}, {"n3", b}}}};
    const CheckReport counted = check(h, in);
    CHECK(counted.violations.empty());
    CHECK(counted.stats.at("divergence (before reads)").checked == 1);
    CHECK(counted.stats.at("divergence (before reads)").violated == 0);
    CHECK(counted.stats.at("divergence (before reads)")
              .excused.at(
                  "replicas differ; the run does not make convergence before reads judgeable") ==
          1);
    // ... and must not where the run makes it judgeable (hint replay alone).
    in.convergence_before_reads = true;
    CHECK(of_kind(check(h, in), ViolationKind::divergence).size() == 1);
    // A replica holding nothing equals one holding only tombstones (tombstone
    // GC purges replica by replica), but not one holding a value.
    in = settled(object_with({std::nullopt}));
    in.stores_after_reads["k"][1].object = std::nullopt;
    CHECK(of_kind(check(history({}), in), ViolationKind::divergence).empty());
    in = settled(object_with({"v1"}));
    in.stores_after_reads["k"][1].object = std::nullopt;
    CHECK(of_kind(check(history({}), in), ViolationKind::divergence).size() == 1);
}

TEST_CASE("checker: a key no node holds any more was purged, which excuses its puts' loss") {
    // v1 acknowledged, then an unacknowledged blind delete: with the key gone
    // from every node (tombstone GC), the delete took effect.
    const History h =
        history({put("v1", Level::one, 0, 10), del(kNoOp, 20, 30, Outcome::indeterminate)});
    CheckInput in = settled(object_with({}));
    CHECK(of_kind(check(h, in), ViolationKind::lost_write).size() == 2);  // copies unknown
    in.copies_complete = true;
    CHECK(of_kind(check(h, in), ViolationKind::lost_write).empty());
    // A copy on a node that is not a home replica (it gave the range away, or
    // left) is not read by anything: still evidence.
    in.copies_before_reads.push_back(StoredCopy{"n4", "k", std::nullopt, object_with({"v0"})});
    CHECK(of_kind(check(h, in), ViolationKind::lost_write).empty());
    // A hint for the key somewhere: no such evidence.
    in.copies_before_reads.push_back(StoredCopy{"n5", "k", std::string("n1"), object_with({"v0"})});
    CHECK(of_kind(check(h, in), ViolationKind::lost_write).size() == 2);
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
    b = a;
    b.entries[0].strict = !b.entries[0].strict;
    CHECK(digest(a) != digest(b));
    b = a;
    b.entries[1].stand_in_used = true;
    CHECK(digest(a) != digest(b));
}

TEST_CASE("checker: quorums bind a read to a write only when both were strict") {
    // A quorum get after a quorum put that misses it: stale when both were strict.
    std::vector<HistoryEntry> e = {put("v1", Level::quorum, 0, 10), get({}, Level::quorum, 20, 30)};
    REQUIRE(of_kind(check(history(e), history_only()), ViolationKind::stale_read).size() == 1);
    // A sloppy put may sit on stand-ins a strict get never asks; a sloppy get
    // may count stand-ins that hold no hint of the key. Counted, excused.
    const std::string reason =
        "the get or the put was not strict (the put may sit on stand-ins the get did not ask)";
    for (size_t sloppy : {0, 1}) {
        std::vector<HistoryEntry> s = e;
        s[sloppy].strict = false;
        const CheckReport r = check(history(s), history_only());
        CHECK(r.violations.empty());
        CHECK(r.stats.at("stale_read").checked == 1);
        CHECK(r.stats.at("stale_read").excused.at(reason) == 1);
    }
    // Resurrection through a get: v2 (context of a get that saw v1) at quorum,
    // then a quorum get returning v1 again.
    std::vector<HistoryEntry> res = {put("v1", Level::one, 0, 10), get({"v1"}, Level::one, 20, 30),
                                     put("v2", Level::quorum, 40, 50, 1),
                                     get({"v1"}, Level::quorum, 60, 70)};
    REQUIRE(of_kind(check(history(res), history_only()), ViolationKind::resurrection).size() == 1);
    for (size_t sloppy : {2, 3}) {
        std::vector<HistoryEntry> s = res;
        s[sloppy].strict = false;
        const CheckReport r = check(history(s), history_only());
        CHECK(r.violations.empty());
        CHECK(r.stats.at("resurrection (puts)")
                  .excused.at("read again only by a get or after a write that was not strict "
                              "(stand-ins may have served)") == 1);
    }
    // The final reads (strict, at all, after every hint was replayed) still
    // bind a sloppy write: one returning v1 is a resurrection.
    res[2].strict = false;
    res.pop_back();
    CheckInput in = settled(object_with({"v2"}));
    in.final_reads[1] = final_read(1, {"v1", "v2"});
    CHECK(of_kind(check(history(res), in), ViolationKind::resurrection).size() == 1);
}

TEST_CASE("checker: a blind delete surely removed a put at all only when both were strict") {
    const History strict = history(
        {put("v1", Level::all, 0, 10), del(kNoOp, 20, 30), get({"v1"}, Level::quorum, 40, 50)});
    REQUIRE(of_kind(check(strict, history_only()), ViolationKind::resurrection).size() == 1);
    // A sloppy put at all may be held by stand-ins, not by the delete's minting
    // home; a sloppy delete may be minted by a stand-in that held nothing of it.
    for (size_t sloppy : {0, 1}) {
        History h = strict;
        h.entries[sloppy].strict = false;
        CHECK(check(h, history_only()).violations.empty());
    }
}

namespace {
StoredCopy copy_of(const std::string& node_id, std::optional<std::string> hint_for,
                   node::Object object) {
    return StoredCopy{node_id, "k", std::move(hint_for), std::move(object)};
}
}  // namespace

TEST_CASE("checker: no two different values of a key ever carry the same dot") {
    const History h = history({put("v1", Level::one, 0, 10), put("v2", Level::one, 20, 30)});
    // Clean: one dot per value, the same version in a home's data and in a
    // stand-in's hint for another home, before and after the reads.
    node::Object both = object_with({"v1", "v2"});
    CheckInput in = settled(both);
    in.copies_before_reads = {copy_of("n1", std::nullopt, both),
                              copy_of("n4", "n2", object_with({"v1"}))};
    in.copies_after_reads = {copy_of("n1", std::nullopt, both), copy_of("n2", std::nullopt, both)};
    CheckReport r = check(h, in);
    CHECK(r.violations.empty());
    CHECK(r.stats.at("dot_reuse").checked == 2);  // (k, a:1) and (k, a:2)
    CHECK(r.stats.at("dot_reuse").passed == 2);
    // Forged: a stand-in's hint carries v2 under the dot a:1 that n1's data
    // gives v1 (a mint that reused a dot). Flagged once, naming both copies.
    node::Object forged;
    forged.siblings.push_back(node::Sibling{node::Dot{"a", 1}, "v2"});
    forged.context.set("a", 1);
    in.copies_before_reads[1] = copy_of("n4", "n2", forged);
    r = check(h, in);
    auto v = of_kind(r, ViolationKind::dot_reuse);
    REQUIRE(v.size() == 1);
    CHECK(v[0].key == "k");
    CHECK(v[0].what.find("a:1") != std::string::npos);
    CHECK(v[0].what.find("n4's hint for n2") != std::string::npos);
    CHECK(r.stats.at("dot_reuse").violated == 1);
    // A value and a tombstone under one dot, across the two collections.
    in.copies_before_reads[1] = copy_of("n4", "n2", object_with({"v1"}));
    in.copies_after_reads[1] = copy_of("n2", std::nullopt, object_with({std::nullopt}));
    v = of_kind(check(h, in), ViolationKind::dot_reuse);
    REQUIRE(v.size() == 1);
    CHECK(v[0].what.find("<tombstone>") != std::string::npos);
    CHECK(v[0].what.find("after the final reads") != std::string::npos);
    // Different keys may carry the same dot (a dot is per key's history).
    in = settled(both);
    StoredCopy other = copy_of("n1", std::nullopt, object_with({"v9"}));
    other.key = "k2";
    in.copies_before_reads = {copy_of("n1", std::nullopt, both), other};
    CHECK(of_kind(check(h, in), ViolationKind::dot_reuse).empty());
}

TEST_CASE("checker: an acknowledged put must be durable on w nodes when its ack arrives") {
    const History h = history({put("v1", Level::quorum, 0, 10), put("v2", Level::all, 20, 30),
                               put("v3", Level::quorum, 40, 50, kNoOp, Outcome::failed)});
    CheckInput in = history_only();
    in.copies_at_ack = {{0, 2}, {1, 3}};
    CheckReport r = check(h, in);
    CHECK(r.violations.empty());
    CHECK(r.stats.at("ack_copies").checked == 2);
    CHECK(r.stats.at("ack_copies").passed == 2);
    // A sloppy put counts stand-ins, but each node once: two acknowledgements
    // at quorum from one stand-in leave one copy.
    History sloppy = h;
    sloppy.entries[0].strict = false;
    in.copies_at_ack = {{0, 1}, {1, 3}};
    r = check(sloppy, in);
    auto v = of_kind(r, ViolationKind::ack_copies);
    REQUIRE(v.size() == 1);
    CHECK(v[0].ops == std::vector<uint64_t>{0});
    CHECK(v[0].what.find("w=2, sloppy") != std::string::npos);
    // An unacknowledged put promises nothing.
    in.copies_at_ack = {{2, 0}};
    CHECK(check(h, in).violations.empty());
}
