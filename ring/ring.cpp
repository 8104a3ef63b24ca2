#include "ring/ring.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <utility>

namespace kv::ring {

namespace {

// 2^64 as a floating-point divisor: positions are uint64_t, so arc lengths
// are taken modulo 2^64 and scaled by this to give a share of the ring.
constexpr long double kRingSize = 18446744073709551616.0L;

bool token_less(const Token& a, const Token& b) {
    // node_index follows the sorted node ids, so equal positions break ties
    // by node id and every member builds the identical ring.
    if (a.position != b.position) return a.position < b.position;
    return a.node_index < b.node_index;
}

// Index of the token owning `hash`: the first token at or after it, wrapping
// to the first token of the ring.
size_t owner_token_index(const std::vector<Token>& tokens, uint64_t hash) {
    assert(!tokens.empty());
    auto it = std::lower_bound(tokens.begin(), tokens.end(), hash,
                               [](const Token& t, uint64_t h) { return t.position < h; });
    if (it == tokens.end()) return 0;
    return static_cast<size_t>(it - tokens.begin());
}

// Sorted, distinct token positions of both rings: the only points where a
// preference list of either ring can change.
std::vector<uint64_t> split_points(const Ring& before, const Ring& after) {
    std::vector<uint64_t> points;
    points.reserve(before.tokens().size() + after.tokens().size());
    for (const Token& t : before.tokens()) points.push_back(t.position);
    for (const Token& t : after.tokens()) points.push_back(t.position);
    std::sort(points.begin(), points.end());
    points.erase(std::unique(points.begin(), points.end()), points.end());
    return points;
}

bool same_change(const OwnershipChange& a, const OwnershipChange& b) {
    return a.before == b.before && a.after == b.after;
}

// Appends the piece, extending the previous change when they touch and agree.
void append_merged(std::vector<OwnershipChange>& changes, OwnershipChange piece) {
    if (!changes.empty()) {
        OwnershipChange& last = changes.back();
        if (last.range.end == piece.range.start && same_change(last, piece)) {
            last.range.end = piece.range.end;
            return;
        }
    }
    changes.push_back(std::move(piece));
}

// The last change may continue into the first across the top of the ring.
void merge_wrap_around(std::vector<OwnershipChange>& changes) {
    if (changes.size() < 2) return;
    OwnershipChange& first = changes.front();
    const OwnershipChange& last = changes.back();
    if (last.range.end == first.range.start && same_change(first, last)) {
        first.range.start = last.range.start;
        changes.pop_back();
    }
}

}  // namespace

uint64_t hash64(std::string_view bytes) {
    return XXH3_64bits(bytes.data(), bytes.size());
}

bool Range::contains(uint64_t hash) const {
    if (start == end) return true;
    if (start < end) return start < hash && hash <= end;
    return hash > start || hash <= end;
}

double Range::fraction() const {
    if (start == end) return 1.0;
    // Unsigned subtraction is the clockwise distance, wrap-around included.
    return static_cast<double>(static_cast<long double>(end - start) / kRingSize);
}

Ring::Ring(std::vector<std::string> node_ids, uint32_t vnodes) : nodes_(std::move(node_ids)) {
    std::sort(nodes_.begin(), nodes_.end());
    nodes_.erase(std::unique(nodes_.begin(), nodes_.end()), nodes_.end());

    tokens_.reserve(nodes_.size() * vnodes);
    for (uint32_t node = 0; node < nodes_.size(); ++node) {
        for (uint32_t i = 0; i < vnodes; ++i) {
            const std::string label = nodes_[node] + "#" + std::to_string(i);
            tokens_.push_back(Token{hash64(label), node});
        }
    }
    std::sort(tokens_.begin(), tokens_.end(), token_less);
    // A node hashing two of its own labels to one position would only add an
    // empty range; drop the copy so tokens stay strictly ordered.
    tokens_.erase(std::unique(tokens_.begin(), tokens_.end()), tokens_.end());
}

Ring Ring::from_tokens(std::vector<std::pair<std::string, std::vector<uint64_t>>> node_tokens) {
    std::sort(node_tokens.begin(), node_tokens.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    Ring ring;
    for (auto& [id, tokens] : node_tokens) {
        if (tokens.empty()) continue;
        if (ring.nodes_.empty() || ring.nodes_.back() != id) ring.nodes_.push_back(id);
        const auto node = static_cast<uint32_t>(ring.nodes_.size() - 1);
        for (uint64_t position : tokens) ring.tokens_.push_back(Token{position, node});
    }
    std::sort(ring.tokens_.begin(), ring.tokens_.end(), token_less);
    ring.tokens_.erase(std::unique(ring.tokens_.begin(), ring.tokens_.end()), ring.tokens_.end());
    return ring;
}

std::vector<std::string> Ring::preference_list(std::string_view key, uint32_t n) const {
    return preference_list_for_hash(hash64(key), n);
}

template <typename Visit>
void Ring::walk_distinct(uint64_t hash, uint32_t n, Visit&& visit) const {
    if (tokens_.empty() || n == 0) return;
    const size_t wanted = std::min<size_t>(n, nodes_.size());
    // The nodes found so far, looked up by a scan: n is a replica count, so
    // this is cheaper than a bitmap of every node allocated per call (every
    // request computes a preference list).
    constexpr size_t kInline = 8;
    std::array<uint32_t, kInline> inline_found{};
    std::vector<uint32_t> spilled;
    uint32_t* found = inline_found.data();
    if (wanted > kInline) {
        spilled.resize(wanted);
        found = spilled.data();
    }
    size_t count = 0;
    const size_t first = owner_token_index(tokens_, hash);
    // One lap visits every node (each has >= 1 token), so the walk is bounded.
    for (size_t step = 0; step < tokens_.size() && count < wanted; ++step) {
        const uint32_t node = tokens_[(first + step) % tokens_.size()].node_index;
        if (std::find(found, found + count, node) != found + count) continue;
        found[count++] = node;
        if (!visit(node)) return;
    }
    assert(count == wanted);
}

std::vector<std::string> Ring::preference_list_for_hash(uint64_t hash, uint32_t n) const {
    std::vector<std::string> result;
    result.reserve(std::min<size_t>(n, nodes_.size()));
    walk_distinct(hash, n, [&](uint32_t node) {
        result.push_back(nodes_[node]);
        return true;
    });
    return result;
}

bool Ring::in_preference_list(uint64_t hash, uint32_t n, std::string_view node) const {
    const auto it = std::lower_bound(nodes_.begin(), nodes_.end(), node);
    if (it == nodes_.end() || *it != node) return false;
    const auto index = static_cast<uint32_t>(it - nodes_.begin());
    bool in = false;
    walk_distinct(hash, n, [&](uint32_t visited) {
        in = visited == index;
        return !in;
    });
    return in;
}

std::vector<double> Ring::ownership() const {
    std::vector<double> shares(nodes_.size(), 0.0);
    if (tokens_.empty()) return shares;

    std::vector<long double> owned(nodes_.size(), 0.0L);
    long double total = 0.0L;
    uint64_t previous = tokens_.back().position;
    for (const Token& token : tokens_) {
        // Modulo-2^64 distance from the previous token; the first token's arc
        // wraps past zero. A token sharing its predecessor's position owns 0.
        const uint64_t arc = token.position - previous;
        owned[token.node_index] += static_cast<long double>(arc);
        total += static_cast<long double>(arc);
        previous = token.position;
    }
    if (total == 0.0L) {
        // All tokens on one point: the first of them owns the whole ring.
        shares[tokens_.front().node_index] = 1.0;
        return shares;
    }
    for (size_t node = 0; node < nodes_.size(); ++node) {
        shares[node] = static_cast<double>(owned[node] / kRingSize);
    }
    return shares;
}

std::vector<OwnershipChange> ownership_diff(const Ring& before, const Ring& after, uint32_t n) {
    std::vector<OwnershipChange> changes;
    const std::vector<uint64_t> points = split_points(before, after);
    if (points.empty()) return changes;

    // Piece k is (points[k-1], points[k]], piece 0 wrapping from the last
    // point. No token of either ring lies inside a piece, so one lookup at its
    // end gives the preference list of every hash in it.
    uint64_t previous = points.back();
    for (uint64_t point : points) {
        OwnershipChange piece{Range{previous, point}, before.preference_list_for_hash(point, n),
                              after.preference_list_for_hash(point, n)};
        previous = point;
        if (piece.before == piece.after) continue;
        append_merged(changes, std::move(piece));
    }
    merge_wrap_around(changes);
    return changes;
}

}  // namespace kv::ring
