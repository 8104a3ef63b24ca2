#include "node/buffered_env.h"

#include <algorithm>
#include <cassert>
#include <iterator>

namespace kv::node {

std::vector<StoreWrite>::const_iterator BufferedEnv::committing_from(
    const std::vector<StoreWrite>& batch, Space space, std::string_view key) {
    return std::lower_bound(batch.begin(), batch.end(), KeyRef{space, key},
                            [](const StoreWrite& w, const KeyRef& k) {
                                return KeyRef{w.space, w.key} < k;
                            });
}

const StoreWrite* BufferedEnv::committing_write(const std::vector<StoreWrite>& batch, Space space,
                                                std::string_view key) {
    auto it = committing_from(batch, space, key);
    if (it == batch.end() || it->space != space || it->key != key) return nullptr;
    return &*it;
}

Result<std::optional<std::string>> BufferedEnv::read(Space space, std::string_view key) {
    if (staged_.empty() && committing_.empty()) return store_.get(space, key);
    auto it = staged_.find(KeyRef{space, key});
    if (it != staged_.end()) return it->second;
    for (auto batch = committing_.rbegin(); batch != committing_.rend(); ++batch) {
        if (const StoreWrite* in_batch = committing_write(*batch, space, key))
            return in_batch->value;
    }
    return store_.get(space, key);
}

Status BufferedEnv::scan(Space space, std::string_view from, size_t limit,
                         const std::function<bool(std::string_view, std::string_view)>& visit) {
    if (committing_.empty()) return scan_over(staged_, space, from, limit, visit);
    // The batches in flight may or may not be in the store yet: overlay them,
    // oldest first, and the writes staged since over them. A copy of their
    // part of the space from `from` on: scans (anti-entropy, GC, hints,
    // transfers) are rare next to requests.
    Overlay merged;
    for (const std::vector<StoreWrite>& batch : committing_) {
        for (auto it = committing_from(batch, space, from); it != batch.end() && it->space == space;
             ++it) {
            merged.insert_or_assign(std::make_pair(it->space, it->key), it->value);
        }
    }
    for (auto it = staged_.lower_bound(KeyRef{space, from});
         it != staged_.end() && it->first.first == space; ++it) {
        merged.insert_or_assign(it->first, it->second);
    }
    return scan_over(merged, space, from, limit, visit);
}

// Merges the store's order with the staged keys, a chunk of stored keys at a
// time: staged keys are merged up to the last stored key of the chunk (all of
// them once the store has no more), so the merged order never skips a key, and
// staged erases that hide stored keys do not end the scan early.
Status BufferedEnv::scan_over(
    const Overlay& overlay, Space space, std::string_view from, size_t limit,
    const std::function<bool(std::string_view, std::string_view)>& visit) {
    auto staged = overlay.lower_bound(KeyRef{space, from});
    std::string cursor(from);
    bool first_chunk = true;
    size_t visited = 0;
    while (visited < limit) {
        std::vector<std::pair<std::string, std::string>> stored;
        const size_t wanted = limit - visited + (first_chunk ? 0 : 1);
        Status s = store_.scan(space, cursor, wanted, [&](std::string_view k, std::string_view v) {
            stored.emplace_back(k, v);
            return true;
        });
        if (!s.ok()) return s;
        const bool store_exhausted = stored.size() < wanted;
        if (!first_chunk && !stored.empty() && stored.front().first == cursor)
            stored.erase(stored.begin());  // visited in the previous chunk
        first_chunk = false;
        auto staged_in_reach = [&] {
            if (staged == overlay.end() || staged->first.first != space) return false;
            return store_exhausted ||
                   (!stored.empty() && staged->first.second <= stored.back().first);
        };
        size_t i = 0;
        while (visited < limit) {
            const bool have_stored = i < stored.size();
            const bool have_staged = staged_in_reach();
            if (!have_stored && !have_staged) break;
            std::string_view key;
            std::optional<std::string_view> value;
            if (have_staged && (!have_stored || staged->first.second <= stored[i].first)) {
                if (have_stored && staged->first.second == stored[i].first) ++i;  // staged wins
                key = staged->first.second;
                if (staged->second) value = *staged->second;
                ++staged;
            } else {
                key = stored[i].first;
                value = stored[i].second;
                ++i;
            }
            if (!value) continue;  // erased by a staged write
            ++visited;
            if (!visit(key, *value)) return {};
        }
        if (store_exhausted || stored.empty()) break;
        cursor = stored.back().first;
    }
    return {};
}

void BufferedEnv::stage_write(StoreWrite write) {
    if (!first_write_at_) first_write_at_ = std::min(handler_start_, outgoing_.size());
    staged_[std::make_pair(write.space, std::move(write.key))] = std::move(write.value);
}

void BufferedEnv::send(const std::string& peer_id, node::Message message) {
    outgoing_.push_back(Outgoing{true, peer_id, {}, {}, std::move(message)});
}

void BufferedEnv::send_to_endpoint(const std::string& endpoint, node::Message message) {
    outgoing_.push_back(Outgoing{true, {}, endpoint, {}, std::move(message)});
}

void BufferedEnv::send_ahead(const std::string& peer_id, node::Message message) {
    ahead_.push_back(Outgoing{true, peer_id, {}, {}, std::move(message)});
}

std::vector<Outgoing> BufferedEnv::take_leaving_spare(std::vector<Outgoing>& from) {
    std::vector<Outgoing> out;
    out.swap(from);
    if (!spares_.empty()) {
        from.swap(spares_.back());
        spares_.pop_back();
    }
    return out;
}

void BufferedEnv::recycle(std::vector<Outgoing> spent) {
    spent.clear();
    if (spent.capacity() == 0 || spent.capacity() > kSpareMessagesMax ||
        spares_.size() >= kSpareBuffers)
        return;
    spares_.push_back(std::move(spent));
}

std::vector<Outgoing> BufferedEnv::take_ahead() {
    if (ahead_.empty()) return {};
    return take_leaving_spare(ahead_);
}

std::vector<Outgoing> BufferedEnv::take_all_messages() {
    if (ahead_.empty()) return take_leaving_spare(outgoing_);
    std::vector<Outgoing> out = take_leaving_spare(ahead_);
    out.insert(out.end(), std::make_move_iterator(outgoing_.begin()),
               std::make_move_iterator(outgoing_.end()));
    outgoing_.clear();
    return out;
}

void BufferedEnv::reply(const ReplyTo& to, node::Message message) {
    outgoing_.push_back(Outgoing{false, {}, {}, to, std::move(message)});
}

Result<std::vector<Outgoing>> BufferedEnv::commit() {
    if (!staged_.empty()) {
        std::vector<StoreWrite> batch;
        batch.reserve(staged_.size());
        for (auto& [where, value] : staged_) {
            batch.push_back(StoreWrite{where.first, where.second, std::move(value)});
        }
        staged_.clear();
        first_write_at_.reset();
        Status s = store_.write(batch);
        if (!s.ok()) {
            outgoing_.clear();
            ahead_.clear();
            return s;
        }
    }
    return take_all_messages();
}

BufferedEnv::Batch BufferedEnv::begin_commit() {
    std::vector<StoreWrite>& writes = committing_.emplace_back();
    writes.reserve(staged_.size());
    while (!staged_.empty()) {
        auto node = staged_.extract(staged_.begin());
        writes.push_back(
            StoreWrite{node.key().first, std::move(node.key().second), std::move(node.mapped())});
    }
    Batch batch;
    batch.writes = &writes;
    batch.out = take_all_messages();
    first_write_at_.reset();
    handler_start_ = 0;
    return batch;
}

std::vector<Outgoing> BufferedEnv::take_sendable() {
    std::vector<Outgoing> out;
    if (!first_write_at_) {
        if (!outgoing_.empty()) out = take_leaving_spare(outgoing_);
        handler_start_ = 0;
        return out;
    }
    const auto split = outgoing_.begin() + static_cast<std::ptrdiff_t>(*first_write_at_);
    out.assign(std::make_move_iterator(outgoing_.begin()), std::make_move_iterator(split));
    outgoing_.erase(outgoing_.begin(), split);
    first_write_at_ = 0;
    handler_start_ = 0;
    return out;
}

void BufferedEnv::discard() {
    staged_.clear();
    committing_.clear();
    outgoing_.clear();
    ahead_.clear();
    first_write_at_.reset();
}

}  // namespace kv::node
