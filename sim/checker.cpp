#include "sim/checker.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <set>

namespace kv::sim {

std::string_view violation_name(ViolationKind kind) {
    switch (kind) {
        case ViolationKind::lost_write:
            return "lost_write";
        case ViolationKind::stale_read:
            return "stale_read";
        case ViolationKind::resurrection:
            return "resurrection";
        case ViolationKind::final_read_failed:
            return "final_read_failed";
        case ViolationKind::divergence:
            return "divergence";
        case ViolationKind::unsettled:
            return "unsettled";
        case ViolationKind::dot_reuse:
            return "dot_reuse";
        case ViolationKind::hints_not_drained:
            return "hints_not_drained";
        case ViolationKind::ack_copies:
            return "ack_copies";
    }
    return "?";
}

namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

// Rule names, as summary() prints them and docs/SIMULATOR.md lists them.
constexpr const char* kLostBeforeReads = "lost_write (stores before reads)";
constexpr const char* kLostFinalReads = "lost_write (final reads)";
constexpr const char* kStaleRead = "stale_read";
constexpr const char* kResurrectionPuts = "resurrection (puts)";
constexpr const char* kResurrectionDeletes = "resurrection (deletes)";
constexpr const char* kFinalReads = "final_read_failed";
constexpr const char* kConvergence = "divergence";
constexpr const char* kDotReuse = "dot_reuse";
constexpr const char* kAckCopies = "ack_copies";
// Judged only with CheckInput::convergence_before_reads; else differing keys
// are counted as excused.
constexpr const char* kConvergenceBeforeReads = "divergence (before reads)";
// Excusal reasons.
constexpr const char* kByAcked = "superseded by an acknowledged write";
constexpr const char* kByObserved = "superseded by an unacknowledged write that was read or stored";
constexpr const char* kByTombstone =
    "superseded by an unacknowledged delete (a tombstone of its key is stored)";
constexpr const char* kSurely = ", which surely saw it";
constexpr const char* kMaybe = ", which may have seen it";
constexpr const char* kBySureSuperseder =
    "a write that surely supersedes it started before the get ended";
constexpr const char* kByMaybeSuperseder =
    "a write that may supersede it started before the get ended";
constexpr const char* kResentOnly =
    "what it superseded was sent more than once (a retry or a duplicated request)";
constexpr const char* kUnbound = "read again only where r + w <= n";
constexpr const char* kUnboundSloppy =
    "read again only by a get or after a write that was not strict (stand-ins may have served)";
constexpr const char* kSloppyPair =
    "the get or the put was not strict (the put may sit on stand-ins the get did not ask)";
constexpr const char* kLostWithDisk = "its only copy was on a node whose disk was lost";
constexpr const char* kSupersederLostWithDisk =
    "the superseding write's only copy was on a node whose disk was lost";
constexpr const char* kNotJudgeable =
    "replicas differ; the run does not make convergence before reads judgeable";

bool answered(const HistoryEntry& e) {
    return e.outcome == Outcome::ok || e.outcome == Outcome::not_found;
}
bool contains(const std::vector<std::string>& values, const std::string& v) {
    return std::find(values.begin(), values.end(), v) != values.end();
}
uint32_t replicas(proto::Level level, uint32_t n) {
    return proto::replicas_required(proto::Consistency{level, 0, false}, n);
}

// A fixed-size set of a key's writes, by position in the key's write list.
class Bits {
  public:
    Bits() = default;
    explicit Bits(size_t size) : words_((size + 63) / 64, 0) {}
    void set(size_t i) { words_[i / 64] |= uint64_t{1} << (i % 64); }
    void reset(size_t i) { words_[i / 64] &= ~(uint64_t{1} << (i % 64)); }
    bool test(size_t i) const { return (words_[i / 64] >> (i % 64)) & 1; }
    void unite(const Bits& o) {
        for (size_t w = 0; w < words_.size(); ++w) words_[w] |= o.words_[w];
    }
    // Clears every position from `size` on.
    void keep_below(size_t size) {
        for (size_t w = 0; w < words_.size(); ++w) {
            if (w * 64 >= size) {
                words_[w] = 0;
            } else if (w * 64 + 64 > size) {
                words_[w] &= (uint64_t{1} << (size - w * 64)) - 1;
            }
        }
    }
    bool any() const {
        return std::any_of(words_.begin(), words_.end(), [](uint64_t w) { return w != 0; });
    }
    template <typename Fn>
    void each(Fn fn) const {
        for (size_t w = 0; w < words_.size(); ++w) {
            uint64_t bits = words_[w];
            while (bits) {
                const int b = __builtin_ctzll(bits);
                fn(w * 64 + static_cast<size_t>(b));
                bits &= bits - 1;
            }
        }
    }

  private:
    std::vector<uint64_t> words_;
};

// Everything the rules need to know about the run besides the history, indexed once.
struct Observations {
    std::set<std::string> values_seen;     // returned by a get or final read, or stored live
    std::set<std::string> tombstone_keys;  // a store holds a tombstone of the key
    std::map<std::string, std::vector<const FinalRead*>> final_reads_ok;  // key -> reads
};

void observe_stores(const FinalState& stores, Observations& obs) {
    for (const auto& [key, replicas] : stores) {
        for (const auto& r : replicas) {
            if (!r.object) continue;
            for (const auto& s : r.object->siblings) {
                if (s.value) {
                    obs.values_seen.insert(*s.value);
                } else {
                    obs.tombstone_keys.insert(key);
                }
            }
        }
    }
}

bool stored_live(const std::vector<ReplicaState>& replicas, const std::string& value) {
    for (const auto& r : replicas) {
        if (!r.object) continue;
        for (const auto& s : r.object->siblings) {
            if (s.value && *s.value == value) return true;
        }
    }
    return false;
}

// The oracle's model of one key: its writes in start order and, for each, the
// writes it may have seen (may_past: over-approximated, used to excuse) and
// surely saw (must_past: under-approximated, used to accuse).
struct KeyModel {
    std::vector<uint64_t> writes;         // history indexes of puts and deletes
    std::map<uint64_t, size_t> position;  // history index -> position in writes
    std::vector<uint64_t> gets;           // history indexes of gets
    std::vector<Bits> may_past;
    std::vector<Bits> must_past;
    // Per write: its must past held a put whose value was sent more than once
    // (a client retry or a duplicated request), which the must past then drops.
    std::vector<bool> saw_resent;
};

class Model {
  public:
    Model(const History& h, uint64_t window_ms) : h_(h), window_ms_(window_ms) {
        for (const auto& e : h.entries) {
            KeyModel& k = keys_[e.key];
            if (e.kind == OpKind::get) {
                k.gets.push_back(e.index);
                continue;
            }
            k.position[e.index] = k.writes.size();
            k.writes.push_back(e.index);
            if (e.kind == OpKind::put) {
                put_of_value_[e.value] = e.index;
                if (e.retry_of != kNoOp || e.also_sent_to) {
                    resent_values_.insert(e.value);
                }
            }
        }
        for (auto& [key, k] : keys_) {
            build(k);
            drop_resent_from_must_pasts(k);
        }
    }

    // The latest time a write may have taken effect at a replica: its
    // acknowledgement, or for any other outcome the end of its effect window.
    // A request also sent to a second coordinator (also_sent_to) may take
    // effect through the copy that did not answer until its own window ends,
    // after the acknowledgement (seed 7015 of `retries`: a duplicated blind
    // delete acknowledged through n5 minted at n4 after a later put).
    uint64_t effect_end_ms(const HistoryEntry& e) const {
        if (e.outcome == Outcome::ok && !e.also_sent_to) return e.end_ms;
        return std::max(e.end_ms, e.start_ms + window_ms_);
    }
    const std::map<std::string, KeyModel>& keys() const { return keys_; }
    const KeyModel* key(const std::string& key) const {
        auto it = keys_.find(key);
        return it == keys_.end() ? nullptr : &it->second;
    }
    // The put of `value` on `key`, as a position in the key's writes.
    std::optional<size_t> put_position(const KeyModel& k, const std::string& value) const {
        auto it = put_of_value_.find(value);
        if (it == put_of_value_.end()) return std::nullopt;
        auto pos = k.position.find(it->second);
        if (pos == k.position.end()) return std::nullopt;
        return pos->second;
    }

  private:
    void build(KeyModel& k) {
        const size_t size = k.writes.size();
        k.may_past.assign(size, Bits(size));
        k.must_past.assign(size, Bits(size));
        // Deletes so far in start order with the union of what each may have
        // seen: a get may have seen every delete that started before it ended.
        std::vector<uint64_t> delete_starts;
        std::vector<Bits> deletes_may;  // prefix unions
        for (size_t i = 0; i < size; ++i) {
            const HistoryEntry& w = h_.entries[k.writes[i]];
            Bits& may = k.may_past[i];
            Bits& must = k.must_past[i];
            const bool has_context = w.context && !w.context->empty();
            if (w.context_from != kNoOp) {
                const HistoryEntry& src = h_.entries[static_cast<size_t>(w.context_from)];
                if (src.kind == OpKind::get) {
                    for (const auto& v : src.values) {
                        auto p = put_position(k, v);
                        if (!p || *p >= i) continue;
                        must.set(*p);
                        must.unite(k.must_past[*p]);
                        may.set(*p);
                        may.unite(k.may_past[*p]);
                    }
                    const size_t seen = static_cast<size_t>(
                        std::lower_bound(delete_starts.begin(), delete_starts.end(), src.end_ms) -
                        delete_starts.begin());
                    if (seen > 0) may.unite(deletes_may[seen - 1]);
                    // Whatever G's context covered had started before G ended
                    // (positions are in start order).
                    size_t before = i;
                    while (before > 0 && h_.entries[k.writes[before - 1]].start_ms >= src.end_ms)
                        --before;
                    may.keep_below(before);
                } else if (auto x = k.position.find(src.index);
                           x != k.position.end() && x->second < i) {
                    // A write reply's context: that write and what it saw.
                    must.set(x->second);
                    must.unite(k.must_past[x->second]);
                    may.set(x->second);
                    may.unite(k.may_past[x->second]);
                }
            } else if (w.kind == OpKind::del && !has_context) {
                // A blind delete removes what its minting replica held: anything
                // that may have taken effect before the delete did.
                const uint64_t until = effect_end_ms(w);
                for (size_t j = 0; j < size; ++j) {
                    if (j != i && h_.entries[k.writes[j]].start_ms < until) may.set(j);
                }
                // The minting replica surely held (or had seen superseded) every
                // put acknowledged by all n home replicas before the delete
                // began. Only when both were strict: a sloppy put's w acks may
                // be stand-ins', and a sloppy delete may be minted by a stand-in
                // (no home up) that holds nothing of the key.
                for (size_t j = 0; j < i && w.strict; ++j) {
                    const HistoryEntry& p = h_.entries[k.writes[j]];
                    if (p.kind != OpKind::put || p.outcome != Outcome::ok || !p.strict) continue;
                    if (replicas(p.level, h_.n_replicas) < h_.n_replicas) continue;
                    if (p.end_ms >= w.start_ms) continue;
                    must.set(j);
                    must.unite(k.must_past[j]);
                }
            } else if (has_context) {
                // A context of unknown origin: it may cover anything that started before.
                for (size_t j = 0; j < i; ++j) {
                    if (h_.entries[k.writes[j]].start_ms < w.start_ms) may.set(j);
                }
            }
            if (w.kind == OpKind::del) {
                Bits cumulative = deletes_may.empty() ? Bits(size) : deletes_may.back();
                cumulative.set(i);
                cumulative.unite(may);
                delete_starts.push_back(w.start_ms);
                deletes_may.push_back(std::move(cumulative));
            }
        }
    }

    // A value sent more than once (a retry, or one request sent to two
    // coordinators) may have been minted as several versions, each its own
    // sibling. A get that returned the value shows that at least one of them
    // existed, not which: a write with its context surely superseded only the
    // versions that get saw, and another may surface later, legitimately. So
    // no write surely saw such a put: it stays in may pasts (excusing a loss
    // is sound) and leaves the must pasts (no resurrection is claimed for it).
    // The resurrection rule counts the writes this spared (docs/SIMULATOR.md).
    void drop_resent_from_must_pasts(KeyModel& k) const {
        k.saw_resent.assign(k.writes.size(), false);
        for (size_t p = 0; p < k.writes.size(); ++p) {
            const HistoryEntry& e = h_.entries[k.writes[p]];
            if (e.kind != OpKind::put || !resent_values_.count(e.value)) continue;
            for (size_t i = 0; i < k.writes.size(); ++i) {
                if (!k.must_past[i].test(p)) continue;
                k.must_past[i].reset(p);
                k.saw_resent[i] = true;
            }
        }
    }

    const History& h_;
    uint64_t window_ms_;
    std::map<std::string, KeyModel> keys_;
    std::map<std::string, uint64_t> put_of_value_;  // value -> history index (its last attempt)
    std::set<std::string> resent_values_;           // values of puts sent more than once
};

std::string object_text(const std::optional<node::Object>& object) {
    if (!object) return "(nothing)";
    std::string out = "{ctx:";
    for (const auto& [actor, counter] : object->context.entries()) {
        out += " " + actor + "=" + std::to_string(counter);
    }
    out += "; siblings:";
    for (const auto& s : object->siblings) {
        out += " " + s.dot.actor + ":" + std::to_string(s.dot.counter) + "=" +
               (s.value ? *s.value : std::string("<tombstone>"));
    }
    return out + "}";
}

class Checker {
  public:
    Checker(const History& h, const CheckInput& in)
        : h_(h), in_(in), model_(h, in.write_effect_window_ms) {
        for (const auto& e : h.entries) {
            if (e.kind == OpKind::get && answered(e)) {
                for (const auto& v : e.values) obs_.values_seen.insert(v);
            }
        }
        if (in.settled) {
            observe_stores(in.stores_before_reads, obs_);
            observe_stores(in.stores_after_reads, obs_);
            // Tombstone GC erases a key once it holds only tombstones: a key
            // that some acknowledged put stored (durably, on w >= 1 nodes) and
            // that no home replica of the final ring holds any more, nor any
            // hint, was purged, so a delete of it took effect, as a stored
            // tombstone would show. (Nodes that gave the key's range away, or
            // left, keep their old copies; nothing reads them.)
            std::set<std::string> held;
            for (const auto* copies : {&in.copies_before_reads, &in.copies_after_reads}) {
                for (const auto& c : *copies) {
                    if (c.hint_for) held.insert(c.key);
                }
            }
            for (const auto* stores : {&in.stores_before_reads, &in.stores_after_reads}) {
                for (const auto& [key, replicas] : *stores) {
                    for (const auto& r : replicas) {
                        if (r.object && !r.object->empty()) held.insert(key);
                    }
                }
            }
            for (const auto& e : h.entries) {
                if (in.copies_complete && e.kind == OpKind::put && e.outcome == Outcome::ok &&
                    held.count(e.key) == 0)
                    obs_.tombstone_keys.insert(e.key);
            }
            for (const auto& r : in.final_reads) {
                if (!answered_final(r)) continue;
                obs_.final_reads_ok[r.key].push_back(&r);
                for (const auto& v : r.values) obs_.values_seen.insert(v);
            }
        }
        for (const char* rule :
             {kStaleRead, kResurrectionPuts, kResurrectionDeletes, kDotReuse, kAckCopies})
            report_.stats[rule];
        if (in.settled) {
            for (const char* rule : {kLostBeforeReads, kLostFinalReads, kFinalReads, kConvergence})
                report_.stats[rule];
        }
    }

    CheckReport run() {
        if (in_.settled) {
            for (const auto& [key, k] : model_.keys()) lost_writes(key, k);
        }
        for (const auto& [key, k] : model_.keys()) stale_reads(k);
        for (const auto& [key, k] : model_.keys()) resurrections(key, k);
        dot_reuse();
        ack_copies();
        if (in_.settled) {
            final_reads_failed();
            convergence(in_.stores_after_reads, "after the final reads", kConvergence, true);
            convergence(in_.stores_before_reads, "before the final reads", kConvergenceBeforeReads,
                        in_.convergence_before_reads);
        }
        return std::move(report_);
    }

  private:
    static bool answered_final(const FinalRead& r) {
        return r.outcome == Outcome::ok || r.outcome == Outcome::not_found;
    }

    // Why a write is known to have taken effect, or nullptr if it is not.
    const char* known_effect(const HistoryEntry& w) const {
        if (w.outcome == Outcome::ok) return kByAcked;
        if (w.kind == OpKind::put && obs_.values_seen.count(w.value)) return kByObserved;
        if (w.kind == OpKind::del && obs_.tombstone_keys.count(w.key)) return kByTombstone;
        return nullptr;
    }

    // The writes of a key whose loss is excused, by reason: those in the may
    // past of a write known to have taken effect. The reason says whether that
    // write surely saw the lost one (its must past) or only may have.
    std::map<std::string, Bits> excusable(const KeyModel& k) const {
        std::map<std::string, Bits> out;
        for (size_t i = 0; i < k.writes.size(); ++i) {
            const char* reason = known_effect(h_.entries[k.writes[i]]);
            if (reason == nullptr) continue;
            for (const auto& [suffix, past] :
                 {std::pair{kSurely, &k.must_past[i]}, std::pair{kMaybe, &k.may_past[i]}}) {
                auto it =
                    out.try_emplace(std::string(reason) + suffix, Bits(k.writes.size())).first;
                it->second.unite(*past);
            }
        }
        return out;
    }
    // The strongest reason that excuses the loss of the write at `p`, or empty.
    static std::string excuse(const std::map<std::string, Bits>& excusable, size_t p) {
        for (const char* suffix : {kSurely, kMaybe}) {
            for (const char* base : {kByAcked, kByObserved, kByTombstone}) {
                auto it = excusable.find(std::string(base) + suffix);
                if (it != excusable.end() && it->second.test(p)) return it->first;
            }
        }
        return {};
    }

    void lost_writes(const std::string& key, const KeyModel& k) {
        const auto excused = excusable(k);
        static const std::vector<ReplicaState> kNone;
        auto stores = in_.stores_before_reads.find(key);
        const auto& replicas = stores == in_.stores_before_reads.end() ? kNone : stores->second;
        auto reads = obs_.final_reads_ok.find(key);
        RuleStats& before = report_.stats[kLostBeforeReads];
        RuleStats& after = report_.stats[kLostFinalReads];
        for (size_t p = 0; p < k.writes.size(); ++p) {
            const HistoryEntry& put = h_.entries[k.writes[p]];
            if (put.kind != OpKind::put || put.outcome != Outcome::ok) continue;
            std::string reason = excuse(excused, p);
            if (reason.empty() && in_.lost_with_disk.count(put.index)) reason = kLostWithDisk;
            ++before.checked;
            if (stored_live(replicas, put.value)) {
                ++before.passed;
            } else if (!reason.empty()) {
                ++before.excused[reason];
            } else {
                ++before.violated;
                report_.violations.push_back(Violation{
                    ViolationKind::lost_write,
                    key,
                    {put.index},
                    "acknowledged put of " + put.value +
                        " is held by no home replica before the final reads, and no write known "
                        "to have taken effect may have superseded it"});
            }
            if (reads == obs_.final_reads_ok.end()) continue;
            ++after.checked;
            const FinalRead* missed = nullptr;
            for (const FinalRead* r : reads->second) {
                if (!contains(r->values, put.value)) {
                    missed = r;
                    break;
                }
            }
            if (missed == nullptr) {
                ++after.passed;
            } else if (!reason.empty()) {
                ++after.excused[reason];
            } else {
                ++after.violated;
                report_.violations.push_back(
                    Violation{ViolationKind::lost_write,
                              key,
                              {put.index},
                              "the final read at all through n" + std::to_string(missed->node + 1) +
                                  " did not return acknowledged " + put.value +
                                  ", and no write known to have taken effect may have "
                                  "superseded it"});
            }
        }
    }

    void stale_reads(const KeyModel& k) {
        const uint32_t n = h_.n_replicas;
        // Earliest start of a write whose may past holds each write.
        std::vector<uint64_t> earliest(k.writes.size(), kNever);
        std::vector<uint64_t> earliest_sure(k.writes.size(), kNever);
        for (size_t x = 0; x < k.writes.size(); ++x) {
            const uint64_t start = h_.entries[k.writes[x]].start_ms;
            k.may_past[x].each([&](size_t p) { earliest[p] = std::min(earliest[p], start); });
            k.must_past[x].each(
                [&](size_t p) { earliest_sure[p] = std::min(earliest_sure[p], start); });
        }
        RuleStats& stats = report_.stats[kStaleRead];
        for (uint64_t ri : k.gets) {
            const HistoryEntry& r = h_.entries[ri];
            if (!answered(r)) continue;
            const uint32_t reads = replicas(r.level, n);
            for (size_t p = 0; p < k.writes.size(); ++p) {
                const HistoryEntry& put = h_.entries[k.writes[p]];
                if (put.index >= r.index) break;  // started after r started: cannot precede it
                if (put.kind != OpKind::put || put.outcome != Outcome::ok) continue;
                if (put.end_ms >= r.start_ms) continue;
                const uint32_t writes = replicas(put.level, n);
                if (reads + writes <= n) continue;
                ++stats.checked;
                if (!put.strict || !r.strict) {
                    // Quorums intersect only among home replicas: a sloppy put
                    // may be held by stand-ins alone, and a sloppy get may count
                    // stand-ins that hold no hint of the key.
                    ++stats.excused[kSloppyPair];
                    continue;
                }
                if (contains(r.values, put.value)) {
                    ++stats.passed;
                    continue;
                }
                if (earliest_sure[p] < r.end_ms) {
                    ++stats.excused[kBySureSuperseder];
                    continue;
                }
                if (earliest[p] < r.end_ms) {
                    ++stats.excused[kByMaybeSuperseder];
                    continue;
                }
                if (in_.lost_with_disk.count(put.index)) {
                    ++stats.excused[kLostWithDisk];
                    continue;
                }
                ++stats.violated;
                report_.violations.push_back(Violation{
                    ViolationKind::stale_read,
                    r.key,
                    {r.index, put.index},
                    "get at " + std::string(proto::level_name(r.level)) +
                        " (r=" + std::to_string(reads) + ") missed " + put.value +
                        ", acknowledged at " + std::string(proto::level_name(put.level)) +
                        " (w=" + std::to_string(writes) +
                        ") before the get started, and nothing that may supersede it was written"});
            }
        }
    }

    void resurrections(const std::string& key, const KeyModel& k) {
        const uint32_t n = h_.n_replicas;
        // Gets returning each write's value, by position.
        std::map<size_t, std::vector<uint64_t>> reads_of;
        for (uint64_t ri : k.gets) {
            const HistoryEntry& r = h_.entries[ri];
            if (!answered(r)) continue;
            for (const auto& v : r.values) {
                if (auto p = model_.put_position(k, v)) reads_of[*p].push_back(ri);
            }
        }
        std::vector<const FinalRead*> finals;
        if (auto it = obs_.final_reads_ok.find(key); it != obs_.final_reads_ok.end())
            finals = it->second;
        const std::vector<ReplicaState>* after = nullptr;
        if (in_.settled && !finals.empty()) {
            // Only after a successful read at `all` has every home replica been repaired.
            auto it = in_.stores_after_reads.find(key);
            if (it != in_.stores_after_reads.end()) after = &it->second;
        }
        // Each (read, value) pair is reported once, against the first write
        // acknowledged that makes it a resurrection.
        std::set<std::pair<uint64_t, size_t>> reported_reads;
        std::set<size_t> reported_final;
        for (size_t ki = 0; ki < k.writes.size(); ++ki) {
            const HistoryEntry& w = h_.entries[k.writes[ki]];
            if (w.outcome != Outcome::ok) continue;
            bool supersedes_value = false;
            k.must_past[ki].each(
                [&](size_t p) { supersedes_value |= h_.entries[k.writes[p]].kind == OpKind::put; });
            RuleStats& stats =
                report_.stats[w.kind == OpKind::put ? kResurrectionPuts : kResurrectionDeletes];
            if (!supersedes_value) {
                if (k.saw_resent[ki]) {
                    ++stats.checked;
                    ++stats.excused[kResentOnly];
                }
                continue;
            }
            ++stats.checked;
            if (in_.lost_with_disk.count(w.index)) {
                // What it superseded is all that is left of the key.
                ++stats.excused[kSupersederLostWithDisk];
                continue;
            }
            const uint32_t writes = replicas(w.level, n);
            bool violated = false;
            bool unbound = false;
            bool sloppy = false;
            k.must_past[ki].each([&](size_t p) {
                const HistoryEntry& old = h_.entries[k.writes[p]];
                if (old.kind != OpKind::put) return;
                for (uint64_t ri : reads_of[p]) {
                    const HistoryEntry& r = h_.entries[ri];
                    if (r.start_ms <= w.end_ms) continue;
                    const uint32_t reads = replicas(r.level, n);
                    if (reads + writes <= n) {
                        unbound = true;
                        continue;
                    }
                    if (!r.strict || !w.strict) {
                        // As for stale_read: quorums intersect among home
                        // replicas only. The final reads below are strict at
                        // `all` after every hint was replayed, so they bind.
                        sloppy = true;
                        continue;
                    }
                    violated = true;
                    if (!reported_reads.insert({ri, p}).second) continue;
                    report_.violations.push_back(Violation{
                        ViolationKind::resurrection,
                        key,
                        {ri, old.index, w.index},
                        "get at " + std::string(proto::level_name(r.level)) +
                            " (r=" + std::to_string(reads) + ") returned " + old.value +
                            ", superseded by a " + std::string(op_kind_name(w.kind)) +
                            " acknowledged at " + std::string(proto::level_name(w.level)) +
                            " (w=" + std::to_string(writes) + ") before the get started"});
                }
                for (const FinalRead* f : finals) {
                    if (!contains(f->values, old.value)) continue;
                    violated = true;
                    if (!reported_final.insert(p).second) continue;
                    report_.violations.push_back(Violation{
                        ViolationKind::resurrection,
                        key,
                        {old.index, w.index},
                        "the final read at all through n" + std::to_string(f->node + 1) +
                            " returned " + old.value + ", superseded by an acknowledged " +
                            std::string(op_kind_name(w.kind))});
                }
                if (after != nullptr && stored_live(*after, old.value)) {
                    violated = true;
                    if (!reported_final.insert(p).second) return;
                    report_.violations.push_back(
                        Violation{ViolationKind::resurrection,
                                  key,
                                  {old.index, w.index},
                                  "a home replica still holds " + old.value +
                                      " after the final reads, superseded by an acknowledged " +
                                      std::string(op_kind_name(w.kind))});
                }
            });
            if (violated) {
                ++stats.violated;
            } else if (unbound) {
                ++stats.excused[kUnbound];
            } else if (sloppy) {
                ++stats.excused[kUnboundSloppy];
            } else {
                ++stats.passed;
            }
        }
    }

    void final_reads_failed() {
        RuleStats& stats = report_.stats[kFinalReads];
        for (const auto& r : in_.final_reads) {
            ++stats.checked;
            if (answered_final(r)) {
                ++stats.passed;
                continue;
            }
            ++stats.violated;
            report_.violations.push_back(
                Violation{ViolationKind::final_read_failed,
                          r.key,
                          {},
                          "the final read at all through n" + std::to_string(r.node + 1) +
                              " never succeeded (last: " + std::string(error_name(r.code)) + ")"});
        }
    }

    // A dot names one mint: no two different values, or a value and a
    // tombstone, of one key may carry it, anywhere (any node's data or hints,
    // before or after the final reads). A stand-in that minted with an actor
    // id another life of it used, a replay that re-minted, a replica that
    // reused its counter: each shows here however the versions later merge.
    void dot_reuse() {
        RuleStats& stats = report_.stats[kDotReuse];
        struct Seen {
            std::optional<std::string> value;
            const StoredCopy* where = nullptr;
            const char* when = "";
            bool reported = false;
        };
        std::map<std::pair<std::string, node::Dot>, Seen> seen;
        auto where = [](const StoredCopy& c, const char* when) {
            return c.node_id + (c.hint_for ? "'s hint for " + *c.hint_for : "'s data") + " (" +
                   when + ")";
        };
        auto sibling_text = [](const std::optional<std::string>& v) {
            return v ? *v : std::string("<tombstone>");
        };
        for (const auto& [copies, when] :
             {std::pair{&in_.copies_before_reads, "before the final reads"},
              std::pair{&in_.copies_after_reads, "after the final reads"}}) {
            for (const StoredCopy& c : *copies) {
                for (const auto& sib : c.object.siblings) {
                    auto [it, fresh] =
                        seen.try_emplace({c.key, sib.dot}, Seen{sib.value, &c, when});
                    if (fresh) {
                        ++stats.checked;
                        ++stats.passed;
                        continue;
                    }
                    Seen& first = it->second;
                    if (first.value == sib.value || first.reported) continue;
                    first.reported = true;
                    --stats.passed;
                    ++stats.violated;
                    report_.violations.push_back(
                        Violation{ViolationKind::dot_reuse,
                                  c.key,
                                  {},
                                  "dot " + sib.dot.actor + ":" + std::to_string(sib.dot.counter) +
                                      " carries " + sibling_text(first.value) + " in " +
                                      where(*first.where, first.when) + " and " +
                                      sibling_text(sib.value) + " in " + where(c, when)});
                }
            }
        }
    }

    // An acknowledgement at w promises w replicas (home replicas, or stand-ins
    // with a hint, when not strict) made the version durable before it was
    // sent. Counted by the simulator when the coordinator sent it: nodes whose data
    // or hints hold the value or a context covering its dot (a later write
    // may already have superseded it there; a replay may have moved a hint to
    // its target, which then holds it). Catches a coordinator that counts an
    // acknowledgement it did not get, or one twice: sloppy writes promise no
    // read-your-writes, so no read-side rule sees that.
    void ack_copies() {
        RuleStats& stats = report_.stats[kAckCopies];
        for (const auto& [index, copies] : in_.copies_at_ack) {
            const HistoryEntry& e = h_.entries[index];
            if (e.kind != OpKind::put || e.outcome != Outcome::ok) continue;
            ++stats.checked;
            const uint32_t w = replicas(e.level, h_.n_replicas);
            if (copies >= w) {
                ++stats.passed;
                continue;
            }
            ++stats.violated;
            report_.violations.push_back(Violation{
                ViolationKind::ack_copies,
                e.key,
                {e.index},
                "put of " + e.value + " acknowledged at " +
                    std::string(proto::level_name(e.level)) + " (w=" + std::to_string(w) +
                    (e.strict ? ", strict" : ", sloppy") + ") but " + std::to_string(copies) +
                    " node(s) held it when the acknowledgement was sent"});
        }
    }

    // `judged` false: only counts (as excused) the keys whose replicas differ.
    void convergence(const FinalState& stores, const std::string& when, const char* rule,
                     bool judged) {
        RuleStats& stats = report_.stats[rule];
        for (const auto& [key, replicas] : stores) {
            if (replicas.empty()) continue;
            ++stats.checked;
            // Tombstones only equal nothing: tombstone GC purges them replica
            // by replica, and for every reader a purged key and a deleted one
            // are the same (docs/SIMULATOR.md, "Convergence").
            const auto normal = [](const std::optional<node::Object>& o) {
                if (!o || (!o->siblings.empty() && o->live_count() == 0)) return node::Object{};
                return *o;
            };
            const node::Object first = normal(replicas.front().object);
            bool same = true;
            for (const auto& r : replicas) same = same && normal(r.object) == first;
            if (same) {
                ++stats.passed;
                continue;
            }
            if (!judged) {
                ++stats.excused[kNotJudgeable];
                continue;
            }
            ++stats.violated;
            std::string what = "replicas differ " + when + ":";
            for (const auto& r : replicas)
                what += " " + r.node_id + " " + object_text(r.object) + ";";
            report_.violations.push_back(Violation{ViolationKind::divergence, key, {}, what});
        }
    }

    const History& h_;
    const CheckInput& in_;
    Model model_;
    Observations obs_;
    CheckReport report_;
};

}  // namespace

CheckReport check(const History& history, const CheckInput& input) {
    return Checker(history, input).run();
}

}  // namespace kv::sim
