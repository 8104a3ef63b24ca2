#include "gossip/cluster_view.h"

#include <algorithm>
#include <cassert>
#include <tuple>
#include <utility>

namespace kv::gossip {

namespace {

void normalize_tokens(std::vector<uint64_t>& tokens) {
    std::sort(tokens.begin(), tokens.end());
    tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
}

bool ring_fields_differ(const MemberState& a, const MemberState& b) {
    if (a.holds_tokens() != b.holds_tokens()) return true;
    if (!a.holds_tokens()) return false;
    // removed_by decides where re-replicated ranges are handed off.
    return a.declared != b.declared || a.endpoint != b.endpoint || a.tokens != b.tokens ||
           a.removed_by != b.removed_by || a.link_endpoint != b.link_endpoint;
}

}  // namespace

std::string_view status_name(MemberStatus status) {
    switch (status) {
        case MemberStatus::joining:
            return "joining";
        case MemberStatus::up:
            return "up";
        case MemberStatus::suspect:
            return "suspect";
        case MemberStatus::down:
            return "down";
        case MemberStatus::leaving:
            return "leaving";
        case MemberStatus::left:
            return "left";
    }
    return "unknown";
}

bool is_declarable(MemberStatus status) {
    return status == MemberStatus::joining || status == MemberStatus::up ||
           status == MemberStatus::leaving || status == MemberStatus::left;
}

MemberStatus MemberState::status() const {
    if (declared == MemberStatus::left) return MemberStatus::left;
    if (liveness == Liveness::down) return MemberStatus::down;
    if (liveness == Liveness::suspect) return MemberStatus::suspect;
    return declared;
}

bool MemberState::in_ring() const {
    return (declared == MemberStatus::up || declared == MemberStatus::leaving) && !tokens.empty();
}

bool MemberState::in_transition() const {
    return (declared == MemberStatus::joining && !tokens.empty()) ||
           (declared == MemberStatus::leaving && !tokens.empty());
}

bool MemberState::holds_tokens() const {
    return in_ring() || (declared == MemberStatus::joining && !tokens.empty());
}

int compare_version(uint64_t a_incarnation, bool a_left, uint64_t a_heartbeat, Liveness a_liveness,
                    uint64_t b_incarnation, bool b_left, uint64_t b_heartbeat,
                    Liveness b_liveness) {
    const auto a = std::make_tuple(a_incarnation, a_left, a_heartbeat, a_liveness);
    const auto b = std::make_tuple(b_incarnation, b_left, b_heartbeat, b_liveness);
    if (a < b) return -1;
    return a == b ? 0 : 1;
}

bool supersedes(const MemberState& a, const MemberState& b) {
    const int by_version =
        compare_version(a.incarnation, a.declared == MemberStatus::left, a.heartbeat, a.liveness,
                        b.incarnation, b.declared == MemberStatus::left, b.heartbeat, b.liveness);
    if (by_version != 0) return by_version > 0;
    // Same version, different content only if a member reused a version (a
    // bug or a restart that kept its incarnation): any fixed order keeps merge
    // commutative; the member refutes as soon as it hears of it.
    // A link endpoint last: at the same version an entry that carries one
    // wins over a copy relayed by a build that dropped it.
    return std::tie(a.declared, a.endpoint, a.tokens, a.change_ticket, a.removed_by,
                    a.link_endpoint) > std::tie(b.declared, b.endpoint, b.tokens, b.change_ticket,
                                                b.removed_by, b.link_endpoint);
}

ClusterView::ClusterView(MemberState self, uint32_t members_max)
    : self_id_(self.id), members_max_(members_max) {
    assert(!self.id.empty());
    assert(is_declarable(self.declared));
    assert(members_max_ >= 1);
    self.liveness = Liveness::alive;
    normalize_tokens(self.tokens);
    states_.emplace(self.id, std::move(self));
    rebuild_ring_members();
}

const MemberState& ClusterView::self() const {
    auto it = states_.find(self_id_);
    assert(it != states_.end());
    return it->second;
}

const MemberState* ClusterView::find(std::string_view id) const {
    auto it = states_.find(id);
    return it == states_.end() ? nullptr : &it->second;
}

std::vector<NodeTokens> ClusterView::ring_input() const {
    std::vector<NodeTokens> out;
    for (const auto& [id, s] : states_) {
        if (s.in_ring()) out.push_back(NodeTokens{id, s.tokens});
    }
    return out;
}

std::string ClusterView::active_change() const {
    for (const auto& [id, s] : states_) {  // ordered by id: the first is the smallest
        if (s.in_transition()) return id;
    }
    return {};
}

std::vector<NodeTokens> ClusterView::future_ring_input() const {
    const std::string active = active_change();
    std::vector<NodeTokens> out;
    for (const auto& [id, s] : states_) {
        const bool in_future = id == active ? s.declared == MemberStatus::joining : s.in_ring();
        if (in_future) out.push_back(NodeTokens{id, s.tokens});
    }
    return out;
}

MergeOutcome ClusterView::merge(const MemberState& heard_in) {
    assert(!heard_in.id.empty());
    if (heard_in.incarnation > kCounterMax || heard_in.heartbeat > kCounterMax ||
        heard_in.change_ticket > kCounterMax) {
        return MergeOutcome{.rejected = true};
    }
    MemberState heard = heard_in;
    normalize_tokens(heard.tokens);
    auto it = states_.find(heard.id);
    if (it != states_.end() && implausible_jump(it->second, heard)) {
        return MergeOutcome{.rejected = true};
    }
    if (heard.id == self_id_) return refute(heard);

    if (it == states_.end()) {
        if (states_.size() >= members_max_) return MergeOutcome{.rejected = true};
        MemberState empty;
        auto& slot = states_.emplace(heard.id, heard).first->second;
        empty.id = heard.id;
        changed(empty, slot);
        return MergeOutcome{.changed = true, .heard_from = true};
    }
    MemberState& mine = it->second;
    if (!supersedes(heard, mine)) return {};
    const bool advanced =
        std::tie(heard.incarnation, heard.heartbeat) > std::tie(mine.incarnation, mine.heartbeat);
    const MemberState before = std::exchange(mine, std::move(heard));
    changed(before, mine);
    return MergeOutcome{.changed = true, .heard_from = advanced};
}

bool ClusterView::implausible_jump(const MemberState& mine, const MemberState& heard) {
    if (heard.incarnation > mine.incarnation) {
        return heard.incarnation - mine.incarnation > kCounterJumpMax;
    }
    return heard.incarnation == mine.incarnation && heard.heartbeat > mine.heartbeat &&
           heard.heartbeat - mine.heartbeat > kCounterJumpMax;
}

// SWIM §4.2: only the member can clear suspicion about itself, by speaking
// with an incarnation above anything said of it.
MergeOutcome ClusterView::refute(const MemberState& heard) {
    MemberState& mine = states_.find(self_id_)->second;
    if (!supersedes(heard, mine)) return {};
    if (!heard.removed_by.empty()) {
        // Removed by an operator as dead for good. With tokens this node is
        // an old life holding stale data: refuting would put it back in the
        // ring as a replica of ranges others now hold. Without tokens (a
        // fresh data directory) it must not cut the re-replication short
        // either: it joins as a new node only once the removal is left.
        if (!mine.tokens.empty()) return MergeOutcome{.removed = true};
        if (heard.declared != MemberStatus::left) return {};
    } else if (mine.tokens.empty() && heard.holds_tokens()) {
        // A fresh data directory under the id of a member that holds ranges:
        // refuting would drop those ranges from the ring uncopied.
        return MergeOutcome{.earlier_life_holds_tokens = true};
    }
    const MemberState before = mine;
    // Never above kCounterMax, so that peers' codecs accept this node's
    // entry: a claim already at the bound (2^30 lies in a row, see
    // kCounterJumpMax) is then matched, not outbid.
    mine.incarnation = std::min(std::max(mine.incarnation, heard.incarnation) + 1, kCounterMax);
    mine.heartbeat = std::min(mine.heartbeat + 1, kCounterMax);
    changed(before, mine);
    return MergeOutcome{.changed = true, .refuted = true};
}

bool ClusterView::raise_liveness(std::string_view id, Liveness liveness) {
    if (id == self_id_) return false;
    auto it = states_.find(id);
    if (it == states_.end()) return false;
    MemberState& s = it->second;
    if (s.declared == MemberStatus::left || s.liveness >= liveness) return false;
    const MemberState before = s;
    s.liveness = liveness;
    changed(before, s);
    return true;
}

void ClusterView::beat() {
    MemberState& mine = states_.find(self_id_)->second;
    const MemberState before = mine;
    mine.heartbeat += 1;
    changed(before, mine);
}

void ClusterView::declare(MemberStatus status) {
    assert(is_declarable(status));
    MemberState& mine = states_.find(self_id_)->second;
    const MemberState before = mine;
    mine.declared = status;
    if (status == MemberStatus::up || status == MemberStatus::left) mine.change_ticket = 0;
    mine.heartbeat += 1;
    changed(before, mine);
}

void ClusterView::set_change_ticket(uint64_t ticket) {
    MemberState& mine = states_.find(self_id_)->second;
    const MemberState before = mine;
    mine.change_ticket = ticket;
    mine.heartbeat += 1;
    changed(before, mine);
}

uint64_t ClusterView::next_change_ticket() const {
    uint64_t highest = 0;
    for (const auto& [id, s] : states_) highest = std::max(highest, s.change_ticket);
    return std::min(highest + 1, kCounterMax);  // merge refuses tickets above it
}

bool ClusterView::remove_member(std::string_view id) {
    auto it = states_.find(id);
    if (id == self_id_ || it == states_.end() || it->second.declared == MemberStatus::left) {
        return false;
    }
    MemberState& s = it->second;
    const MemberState before = s;
    // A ring member's ranges must be re-replicated first: it stays in the
    // current ring as a leaver (out of the future ring) until then. A member
    // not in the ring (a joiner) holds nothing anyone counts on.
    s.declared = s.in_ring() ? MemberStatus::leaving : MemberStatus::left;
    s.liveness = Liveness::down;
    s.incarnation = std::min(s.incarnation + kRemovalIncarnationStep, kCounterMax);
    s.heartbeat = 0;
    s.change_ticket = 0;
    s.removed_by = self_id_;
    changed(before, s);
    return true;
}

bool ClusterView::complete_removal(std::string_view id) {
    auto it = states_.find(id);
    if (it == states_.end() || it->second.removed_by != self_id_ ||
        it->second.declared == MemberStatus::left) {
        return false;
    }
    MemberState& s = it->second;
    const MemberState before = s;
    s.declared = MemberStatus::left;
    s.heartbeat += 1;
    changed(before, s);
    return true;
}

void ClusterView::set_tokens(std::vector<uint64_t> tokens) {
    normalize_tokens(tokens);
    MemberState& mine = states_.find(self_id_)->second;
    const MemberState before = mine;
    mine.tokens = std::move(tokens);
    mine.heartbeat += 1;
    changed(before, mine);
}

void ClusterView::changed(const MemberState& before, const MemberState& after) {
    ++view_version_;
    if (ring_fields_differ(before, after)) {
        ++ring_version_;
        rebuild_ring_members();
    }
}

void ClusterView::rebuild_ring_members() {
    ring_members_.clear();
    for (const auto& [id, s] : states_) {
        if (s.holds_tokens()) ring_members_.push_back(Member{id, s.endpoint, s.link_endpoint});
    }
}

}  // namespace kv::gossip
