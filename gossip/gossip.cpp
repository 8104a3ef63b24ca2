#include "gossip/gossip.h"

#include <algorithm>
#include <cassert>
#include <map>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

namespace kv::gossip {

namespace {

// Uniform enough for peer choice (bias below 2^-50 for any realistic size)
// and, unlike std::uniform_int_distribution, the same on every library.
size_t pick(std::mt19937_64& rng, size_t count) {
    assert(count > 0);
    return static_cast<size_t>(rng() % count);
}

DigestEntry digest_of(const MemberState& s) {
    return DigestEntry{s.id, s.incarnation, s.heartbeat, s.declared, s.liveness};
}

int compare_to_digest(const MemberState& mine, const DigestEntry& d) {
    return compare_version(mine.incarnation, mine.declared == MemberStatus::left, mine.heartbeat,
                           mine.liveness, d.incarnation, d.declared == MemberStatus::left,
                           d.heartbeat, d.liveness);
}

// Send order when the budget is short: what the peer has never heard of, then
// changes of state, then plain heartbeats (which the next round repeats anyway).
enum class Priority { unknown_to_peer = 0, state_change = 1, heartbeat_only = 2 };

Priority priority(const MemberState& mine, const DigestEntry* theirs) {
    if (theirs == nullptr) return Priority::unknown_to_peer;
    const bool same_state = mine.incarnation == theirs->incarnation &&
                            mine.declared == theirs->declared && mine.liveness == theirs->liveness;
    return same_state ? Priority::heartbeat_only : Priority::state_change;
}

size_t estimated_bytes(const MemberState& s) {
    return 48 + s.id.size() + s.endpoint.size() + s.removed_by.size() + 9 * s.tokens.size() +
           (s.link_endpoint.empty() ? 0 : 4 + s.id.size() + s.link_endpoint.size());
}

}  // namespace

Gossiper::Gossiper(GossipConfig config, MemberState self, std::vector<std::string> seed_endpoints,
                   uint64_t now_ms)
    : config_(config),
      view_(std::move(self), config.members_max),
      detector_(config.detector),
      next_round_ms_(now_ms) {
    assert(config_.interval_ms > 0);
    assert(config_.members_max <= kGossipItemsMax);
    assert(config_.entries_bytes_max + 64 * kGossipIdBytesMax < kGossipFrameBytesMax);
    assert(view_.self().tokens.size() <= kGossipTokensPerMemberMax);
    const std::string& own = view_.self().endpoint;
    for (auto& seed : seed_endpoints) {
        if (seed.empty() || seed == own) continue;
        if (std::find(seeds_.begin(), seeds_.end(), seed) != seeds_.end()) continue;
        seeds_.push_back(std::move(seed));
    }
}

GossipSyn Gossiper::make_syn() const {
    GossipSyn syn{view_.self_id(), view_.self().endpoint, {}};
    syn.digests.reserve(view_.size());
    for (const auto& [id, s] : view_.states()) syn.digests.push_back(digest_of(s));
    return syn;
}

std::vector<Outgoing> Gossiper::tick(uint64_t now_ms, std::mt19937_64& rng) {
    if (now_ms < next_round_ms_) return {};
    next_round_ms_ = now_ms + config_.interval_ms;
    ++stats_.rounds;
    // A fresh node whose earlier life still holds tokens under its id keeps
    // its entry where it is. Both lives start at incarnation 1, so its beats
    // would overtake the earlier life's heartbeat, and peers would then take
    // the tokenless entry for the token holder's: the ring would drop those
    // ranges uncopied, and the member would no longer count as down, so its
    // removal would be refused. It stays silent (reported down) until that
    // life is removed; its refutation then raises its incarnation.
    if (!earlier_life_holds_tokens_) view_.beat();
    run_detector(now_ms);
    std::vector<Outgoing> out = choose_peers(rng);
    if (out.empty()) return out;
    const GossipSyn syn = make_syn();
    for (auto& o : out) o.message = syn;
    return out;
}

void Gossiper::run_detector(uint64_t now_ms) {
    for (const auto& [id, liveness] : detector_.judge(view_, now_ms)) {
        view_.raise_liveness(id, liveness);
    }
}

// Cassandra's Gossiper.doGossip: one random live peer; sometimes an unreachable
// one (so a recovered node is noticed); then a seed, as below.
std::vector<Outgoing> Gossiper::choose_peers(std::mt19937_64& rng) const {
    std::vector<const MemberState*> live;
    std::vector<const MemberState*> down;
    std::set<std::string_view> known_endpoints;
    for (const auto& [id, s] : view_.states()) {
        known_endpoints.insert(s.endpoint);
        if (id == view_.self_id() || s.declared == MemberStatus::left) continue;
        (s.liveness == Liveness::down ? down : live).push_back(&s);
    }
    std::vector<Outgoing> out;
    auto add = [&](std::string id, const std::string& endpoint) {
        for (const auto& o : out) {
            if (o.endpoint == endpoint) return;
        }
        out.push_back(Outgoing{std::move(id), endpoint, GossipSyn{}});
    };
    bool seed_reached = false;
    if (!live.empty()) {
        const MemberState* peer = live[pick(rng, live.size())];
        add(peer->id, peer->endpoint);
        seed_reached = std::find(seeds_.begin(), seeds_.end(), peer->endpoint) != seeds_.end();
    }
    if (!down.empty() && pick(rng, live.size() + 1) < down.size()) {
        const MemberState* peer = down[pick(rng, down.size())];
        add(peer->id, peer->endpoint);
    }
    // A seed never heard from (no member of the view has its endpoint) is
    // contacted every round, one at a time, until every seed is known. Without
    // this, nodes seeded with each other split into islands for good (issue
    // 10): two that found each other first kept choosing each other, a seed,
    // and so never gossiped outside. Once one view holds every seed, the
    // islands it joined are one.
    std::vector<const std::string*> unheard;
    for (const auto& seed : seeds_) {
        if (known_endpoints.count(seed) == 0) unheard.push_back(&seed);
    }
    if (!unheard.empty()) {
        add("", *unheard[pick(rng, unheard.size())]);
        return out;
    }
    // Every seed known: now and then one at random, so that partitions heal
    // through the seeds; when the live peer was not one, or while fewer live
    // members are known than seeds (Cassandra's rule).
    if (!seeds_.empty() && (!seed_reached || live.size() < seeds_.size())) {
        const size_t known = live.size() + down.size();
        if (live.empty() || pick(rng, known + 1) < seeds_.size()) {
            add("", seeds_[pick(rng, seeds_.size())]);
        }
    }
    return out;
}

std::vector<Outgoing> Gossiper::handle(const GossipMessage& message, uint64_t now_ms) {
    std::vector<Outgoing> out = std::visit(
        [&](const auto& m) -> std::vector<Outgoing> {
            using T = std::decay_t<decltype(m)>;
            if (m.from_id == view_.self_id()) return {};  // our own echo: nothing to learn
            if constexpr (std::is_same_v<T, GossipSyn>) {
                return on_syn(m, now_ms);
            } else if constexpr (std::is_same_v<T, GossipAck>) {
                return on_ack(m, now_ms);
            } else if constexpr (std::is_same_v<T, GossipAck2>) {
                return on_ack2(m, now_ms);
            } else {
                static_assert(sizeof(T) == 0, "unhandled gossip message");
            }
        },
        message);
    // A syn to every member whose newly announced change this node just
    // learnt of: that syn is the member's acknowledgement (change_turn()).
    if (!ticket_news_.empty()) {
        const GossipSyn syn = make_syn();
        for (const auto& id : ticket_news_) {
            const MemberState* s = view_.find(id);
            if (s == nullptr || s->endpoint.empty()) continue;
            out.push_back(Outgoing{id, s->endpoint, syn});
        }
        ticket_news_.clear();
    }
    return out;
}

std::vector<Outgoing> Gossiper::on_syn(const GossipSyn& syn, uint64_t) {
    note_change_ack(syn);
    std::map<std::string_view, const DigestEntry*> theirs;
    GossipAck ack{view_.self_id(), view_.self().endpoint, {}, {}};
    for (const auto& d : syn.digests) {
        if (!theirs.emplace(d.id, &d).second) continue;  // duplicate id: first wins
        const MemberState* mine = view_.find(d.id);
        if (mine == nullptr || compare_to_digest(*mine, d) < 0) ack.wants.push_back(d.id);
    }
    std::vector<const MemberState*> ranked[3];
    for (const auto& [id, s] : view_.states()) {
        auto it = theirs.find(id);
        const DigestEntry* d = it == theirs.end() ? nullptr : it->second;
        if (d != nullptr && compare_to_digest(s, *d) <= 0) continue;
        ranked[static_cast<int>(priority(s, d))].push_back(&s);
    }
    std::vector<const MemberState*> all;
    for (const auto& r : ranked) all.insert(all.end(), r.begin(), r.end());
    ack.entries = within_budget(std::move(all));
    if (ack.entries.empty() && ack.wants.empty()) return {};
    return {Outgoing{syn.from_id, syn.from_endpoint, std::move(ack)}};
}

std::vector<Outgoing> Gossiper::on_ack(const GossipAck& ack, uint64_t now_ms) {
    merge_entries(ack.entries, now_ms);
    std::vector<const MemberState*> wanted;
    for (const auto& id : ack.wants) {
        const MemberState* s = view_.find(id);
        if (s != nullptr && std::find(wanted.begin(), wanted.end(), s) == wanted.end()) {
            wanted.push_back(s);
        }
    }
    if (wanted.empty()) return {};
    GossipAck2 ack2{view_.self_id(), within_budget(std::move(wanted))};
    return {Outgoing{ack.from_id, ack.from_endpoint, std::move(ack2)}};
}

std::vector<Outgoing> Gossiper::on_ack2(const GossipAck2& ack2, uint64_t now_ms) {
    merge_entries(ack2.entries, now_ms);
    return {};
}

void Gossiper::merge_entries(const std::vector<MemberState>& entries, uint64_t now_ms) {
    for (const auto& e : entries) {
        const MemberState* before = view_.find(e.id);
        const uint64_t ticket_before = before == nullptr ? 0 : before->change_ticket;
        const MergeOutcome outcome = view_.merge(e);
        const MemberState* after = view_.find(e.id);
        if (outcome.changed && e.id != view_.self_id() && after != nullptr &&
            after->change_ticket != 0 && after->change_ticket != ticket_before &&
            std::find(ticket_news_.begin(), ticket_news_.end(), e.id) == ticket_news_.end()) {
            ticket_news_.push_back(e.id);
        }
        if (outcome.heard_from) detector_.heard(e.id, now_ms);
        if (outcome.removed && removed_by_.empty()) removed_by_ = e.removed_by;
        if (outcome.earlier_life_holds_tokens) earlier_life_holds_tokens_ = true;
        if (outcome.refuted) earlier_life_holds_tokens_ = false;
        if (outcome.refuted) ++stats_.refutations;
        if (outcome.rejected) ++stats_.members_rejected;
    }
}

std::vector<MemberState> Gossiper::within_budget(std::vector<const MemberState*> ranked) {
    std::vector<MemberState> chosen;
    size_t bytes = 0;
    for (const MemberState* s : ranked) {
        const size_t size = estimated_bytes(*s);
        if (!chosen.empty() && bytes + size > config_.entries_bytes_max) {
            ++stats_.entries_deferred;
            continue;
        }
        bytes += size;
        chosen.push_back(*s);
    }
    return chosen;
}

}  // namespace kv::gossip

namespace kv::gossip {

// ---- one membership change at a time (gossip.h, announce_change) ----------------

void Gossiper::announce_change() {
    view_.set_change_ticket(view_.next_change_ticket());
    const MemberState& self = view_.self();
    change_announced_ = Version{self.incarnation, self.heartbeat};
    change_acks_.clear();
}

void Gossiper::withdraw_change() {
    if (view_.self().change_ticket != 0) view_.set_change_ticket(0);
    change_acks_.clear();
    removal_target_.clear();
}

void Gossiper::announce_removal(std::string id) {
    announce_change();
    removal_target_ = std::move(id);
}

std::string Gossiper::change_needs_down_member() const {
    for (const auto& [id, s] : view_.states()) {
        if (id == view_.self_id() || s.declared == MemberStatus::left || id == removal_target_) {
            continue;
        }
        const bool required = s.holds_tokens() || s.change_ticket != 0;
        if (required && s.liveness == Liveness::down && !change_acked_by(s)) return id;
    }
    return {};
}

bool Gossiper::start_removal() {
    return !removal_target_.empty() && view_.remove_member(removal_target_);
}

void Gossiper::note_change_ack(const GossipSyn& syn) {
    if (view_.self().change_ticket == 0) return;
    const DigestEntry* of_self = nullptr;
    const DigestEntry* of_sender = nullptr;
    for (const auto& d : syn.digests) {
        if (d.id == view_.self_id() && of_self == nullptr) of_self = &d;
        if (d.id == syn.from_id && of_sender == nullptr) of_sender = &d;
    }
    if (of_self == nullptr || of_sender == nullptr) return;
    // The sender's view held this node's entry at or after the announcement:
    // it had seen the ticket (the entry keeps it until the change ends).
    if (std::tie(of_self->incarnation, of_self->heartbeat) <
        std::tie(change_announced_.incarnation, change_announced_.heartbeat)) {
        return;
    }
    auto known = change_acks_.find(syn.from_id);
    if (known != change_acks_.end()) {
        const MemberState* sender = view_.find(syn.from_id);
        if (sender != nullptr && change_acked_by(*sender)) return;  // keep a complete one
    }
    ChangeAck ack{Version{of_sender->incarnation, of_sender->heartbeat}, {}};
    for (const auto& d : syn.digests) {
        if (d.id == view_.self_id()) continue;
        const MemberState* mine = view_.find(d.id);
        if (mine == nullptr ||
            std::tie(mine->incarnation, mine->heartbeat) < std::tie(d.incarnation, d.heartbeat)) {
            ack.newer.emplace_back(d.id, Version{d.incarnation, d.heartbeat});
        }
    }
    change_acks_[syn.from_id] = std::move(ack);
}

// Acknowledged, and this node knows everything the acknowledger knew when it
// acknowledged (its own state and every entry its digest held), so whatever
// change anyone had announced or started by then is visible here. An
// acknowledgement from an earlier life of the acknowledger does not count.
bool Gossiper::change_acked_by(const MemberState& member) const {
    auto it = change_acks_.find(member.id);
    if (it == change_acks_.end()) return false;
    const ChangeAck& ack = it->second;
    if (member.incarnation != ack.sender.incarnation || member.heartbeat < ack.sender.heartbeat) {
        return false;
    }
    for (const auto& [id, version] : ack.newer) {
        const MemberState* mine = view_.find(id);
        if (mine == nullptr || std::tie(mine->incarnation, mine->heartbeat) <
                                   std::tie(version.incarnation, version.heartbeat)) {
            return false;
        }
    }
    return true;
}

std::vector<std::string> Gossiper::change_acknowledged_by() const {
    std::vector<std::string> out;
    for (const auto& [id, s] : view_.states()) {
        if (id != view_.self_id() && change_acked_by(s)) out.push_back(id);
    }
    return out;
}

ChangeTurn Gossiper::change_turn() const {
    const MemberState& self = view_.self();
    if (self.change_ticket == 0) return {};
    if (self.in_transition()) return ChangeTurn{ChangeTurn::State::go, {}};
    auto kind = [](const MemberState& s) {
        return s.declared == MemberStatus::joining ? std::string("join") : std::string("leave");
    };
    std::string missing;
    const MemberState* earlier = nullptr;
    for (const auto& [id, s] : view_.states()) {
        if (id == view_.self_id() || s.declared == MemberStatus::left) continue;
        // The member this node removes is down for good: it acknowledges
        // nothing, and a change of its own (a join or leave it died in) is
        // what the removal ends.
        if (id == removal_target_) continue;
        if (s.in_transition()) {
            return ChangeTurn{ChangeTurn::State::waiting, id + "'s " + kind(s) + " (under way)"};
        }
        const bool required = s.holds_tokens() || s.change_ticket != 0;
        if (required && !change_acked_by(s)) missing += (missing.empty() ? "" : ", ") + id;
        if (s.change_ticket != 0 && earlier == nullptr &&
            std::tie(s.change_ticket, id) < std::tie(self.change_ticket, view_.self_id())) {
            earlier = &s;
        }
    }
    if (!missing.empty()) {
        return ChangeTurn{ChangeTurn::State::waiting, "acknowledgement from " + missing};
    }
    if (earlier != nullptr) {
        return ChangeTurn{ChangeTurn::State::waiting,
                          earlier->id + "'s " + kind(*earlier) + " (requested first)"};
    }
    return ChangeTurn{ChangeTurn::State::go, {}};
}

}  // namespace kv::gossip
