#include "node/buffered_env.h"

#include <algorithm>
#include <cassert>
#include <iterator>

#include "node/mutant.h"

namespace kv::node {

std::vector<StoreWrite>::const_iterator BufferedEnv::committing_from(
    const std::vector<StoreWrite>& batch, Space space, std::string_view key) const {
    const KeyOrder& before = staged_.key_comp();
    return std::lower_bound(batch.begin(), batch.end(), KeyRef{space, key},
                            [&](const StoreWrite& w, const KeyRef& k) {
                                return before(KeyRef{w.space, w.key}, k);
                            });
}

const StoreWrite* BufferedEnv::committing_write(const std::vector<StoreWrite>& batch, Space space,
                                                std::string_view key) const {
    auto it = committing_from(batch, space, key);
    if (it == batch.end() || it->space != space || it->key != key) return nullptr;
    return &*it;
}

Result<std::optional<std::string>> BufferedEnv::read(Space space, std::string_view key) {
    if (staged_.empty() && committing_.empty()) return store_.get(space, key);
    auto it = staged_.find(KeyRef{space, key});
    if (it != staged_.end()) {
        step_mark_ = writes_staged_;
        return it->second;
    }
    for (auto batch = committing_.rbegin(); batch != committing_.rend(); ++batch) {
        if (const StoreWrite* in_batch = committing_write(batch->writes, space, key)) {
            step_mark_ = std::max(step_mark_, batch->writes_through);
            return in_batch->value;
        }
    }
    // Not written since what is durable: the store's answer is durable.
    return store_.get(space, key);
}

Status BufferedEnv::scan(Space space, std::string_view from, size_t limit,
                         const std::function<bool(std::string_view, std::string_view)>& visit) {
    // What a scan visits is not told apart by where it came from.
    if (!staged_.empty() || !committing_.empty()) step_mark_ = writes_staged_;
    // The batches in flight may or may not be in the store yet: overlaid,
    // oldest first, and the writes staged since over them, each read where it
    // is. A copy of them from `from` on, per scan, was most of an
    // anti-entropy listing's cost under puts: a listing scans once for each
    // of up to 512 token intervals, and every copy held the values too.
    return scan_over(OverlayCursor(*this, space, from), space, from, limit, visit);
}

BufferedEnv::OverlayCursor::OverlayCursor(const BufferedEnv& env, Space space,
                                          std::string_view from)
    : env_(env), space_(space), staged_(env.staged_.lower_bound(KeyRef{space, from})) {
    batches_.reserve(env.committing_.size());
    for (const InFlightBatch& batch : env.committing_) {
        batches_.emplace_back(env.committing_from(batch.writes, space, from), batch.writes.end());
    }
    settle();
}

void BufferedEnv::OverlayCursor::settle() {
    const KeyOrder& before = env_.staged_.key_comp();
    key_ = nullptr;
    value_ = nullptr;
    // Oldest first, so a newer source holding the same key takes its place.
    for (auto& [at, end] : batches_) {
        if (at == end || at->space != space_) continue;
        if (key_ == nullptr || !before(KeyRef{space_, *key_}, KeyRef{space_, at->key})) {
            key_ = &at->key;
            value_ = &at->value;
        }
    }
    if (staged_ != env_.staged_.end() && staged_->first.first == space_ &&
        (key_ == nullptr || !before(KeyRef{space_, *key_}, staged_->first))) {
        key_ = &staged_->first.second;
        value_ = &staged_->second;
    }
}

void BufferedEnv::OverlayCursor::next() {
    assert(!done());
    const std::string_view passed = *key_;  // every source holding it moves on
    for (auto& [at, end] : batches_) {
        if (at != end && at->space == space_ && at->key == passed) ++at;
    }
    if (staged_ != env_.staged_.end() && staged_->first.first == space_ &&
        staged_->first.second == passed) {
        ++staged_;
    }
    settle();
}

// Merges the store's order with the overlay's keys, a chunk of stored keys at
// a time: overlay keys are merged up to the last stored key of the chunk (all
// of them once the store has no more), so the merged order never skips a key,
// and erases that hide stored keys do not end the scan early.
Status BufferedEnv::scan_over(
    OverlayCursor overlay, Space space, std::string_view from, size_t limit,
    const std::function<bool(std::string_view, std::string_view)>& visit) {
    const StoreOrder& order = staged_.key_comp().order;
    std::string cursor(from);
    bool first_chunk = true;
    size_t visited = 0;
    size_t chunk_keys = kScanFirstChunkKeys;  // store.h: doubles per chunk
    while (visited < limit) {
        std::vector<std::pair<std::string, std::string>> stored;
        const size_t wanted = std::min(limit - visited, chunk_keys) + (first_chunk ? 0 : 1);
        chunk_keys = chunk_keys <= limit / 2 ? chunk_keys * 2 : limit;
        Status s = store_.scan(space, cursor, wanted, [&](std::string_view k, std::string_view v) {
            stored.emplace_back(k, v);
            return true;
        });
        if (!s.ok()) return s;
        const bool store_exhausted = stored.size() < wanted;
        if (!first_chunk && !stored.empty() && stored.front().first == cursor)
            stored.erase(stored.begin());  // visited in the previous chunk
        first_chunk = false;
        auto overlay_in_reach = [&] {
            if (overlay.done()) return false;
            return store_exhausted ||
                   (!stored.empty() && !order.less(stored.back().first, overlay.key()));
        };
        size_t i = 0;
        while (visited < limit) {
            const bool have_stored = i < stored.size();
            const bool have_overlay = overlay_in_reach();
            if (!have_stored && !have_overlay) break;
            // Views into the overlay's writes and this chunk: both outlive the visit.
            std::string_view key;
            std::optional<std::string_view> value;
            if (have_overlay && (!have_stored || !order.less(stored[i].first, overlay.key()))) {
                if (have_stored && overlay.key() == stored[i].first) ++i;  // the overlay wins
                key = overlay.key();
                if (overlay.value()) value = *overlay.value();
                overlay.next();
            } else {
                key = stored[i].first;
                value = stored[i].second;
                ++i;
            }
            if (!value) continue;  // erased by a write staged or in flight
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
    step_mark_ = ++writes_staged_;
    staged_[std::make_pair(write.space, std::move(write.key))] = std::move(write.value);
}

void BufferedEnv::send(const std::string& peer_id, node::Message message) {
    outgoing_.push_back(Outgoing{true, peer_id, {}, {}, std::move(message), {}});
}

void BufferedEnv::send_to_endpoint(const std::string& endpoint, node::Message message) {
    outgoing_.push_back(Outgoing{true, {}, endpoint, {}, std::move(message), {}});
}

void BufferedEnv::send_ahead(const std::string& peer_id, node::Message message) {
    ahead_.push_back(Outgoing{true, peer_id, {}, {}, std::move(message), {}});
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
    outgoing_.push_back(Outgoing{false, {}, {}, to, std::move(message), {}});
}

void BufferedEnv::reply_after_writes(const ReplyTo& to, node::Message message, uint64_t mark) {
    assert(mark <= writes_staged_);
    outgoing_.push_back(Outgoing{false, {}, {}, to, std::move(message), mark});
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
    assert(committing_.empty());
    begun_through_ = durable_through_ = writes_staged_;
    return take_all_messages();
}

const std::vector<StoreWrite>* BufferedEnv::begin_commit() {
    InFlightBatch& batch = committing_.emplace_back();
    batch.writes.reserve(staged_.size());
    while (!staged_.empty()) {
        auto node = staged_.extract(staged_.begin());
        batch.writes.push_back(
            StoreWrite{node.key().first, std::move(node.key().second), std::move(node.mapped())});
    }
    batch.out = take_all_messages();
    batch.writes_through = begun_through_ = writes_staged_;
    first_write_at_.reset();
    handler_start_ = 0;
    return &batch.writes;
}

std::vector<Outgoing> BufferedEnv::end_commit() {
    if (committing_.empty()) return {};
    std::vector<Outgoing> out = std::move(committing_.front().out);
    durable_through_ = committing_.front().writes_through;
    committing_.pop_front();
    return out;
}

void BufferedEnv::file_sendable(Outgoing&& message, std::vector<Outgoing>& now) {
    // Without a mark it may reveal what any batch in flight wrote: it waits
    // for the newest. With one, for the batch that holds the mark's write
    // (batches cover consecutive writes, oldest first), if not yet durable.
    InFlightBatch* with = committing_.empty() ? nullptr : &committing_.back();
    if (message.after_writes) {
        const uint64_t mark = *message.after_writes;
        assert(mark <= begun_through_);
        bool durable = mark <= durable_through_;
#ifdef KV_MUTANTS
        // Planted (node/mutant.h): the batch holding the mark's write is taken
        // for durable once it has begun; ack_copies must catch the answer.
        if (KV_MUTANT(answer_before_durable)) durable = true;
#endif
        if (durable) {
            with = nullptr;
        } else {
            for (InFlightBatch& batch : committing_) {
                if (batch.writes_through >= mark) {
                    with = &batch;
                    break;
                }
            }
        }
    }
    (with != nullptr ? with->out : now).push_back(std::move(message));
}

std::vector<Outgoing> BufferedEnv::take_sendable() {
    std::vector<Outgoing> now;
    // Nothing staged and nothing in flight: everything goes.
    if (!first_write_at_ && committing_.empty()) {
        if (!outgoing_.empty()) now = take_leaving_spare(outgoing_);
        handler_start_ = 0;
        return now;
    }
    if (!spares_.empty()) {
        now.swap(spares_.back());
        spares_.pop_back();
    }
    const size_t before_writes = first_write_at_.value_or(outgoing_.size());
    size_t kept = 0;
    for (size_t i = 0; i < outgoing_.size(); ++i) {
        Outgoing& o = outgoing_[i];
        const bool writes_begun = !o.after_writes || *o.after_writes <= begun_through_;
        if (writes_begun && (i < before_writes || o.after_writes)) {
            file_sendable(std::move(o), now);
        } else {
            if (kept != i) outgoing_[kept] = std::move(o);
            ++kept;
        }
    }
    outgoing_.erase(outgoing_.begin() + static_cast<std::ptrdiff_t>(kept), outgoing_.end());
    if (first_write_at_) first_write_at_ = 0;
    handler_start_ = 0;
    return now;
}

void BufferedEnv::discard() {
    staged_.clear();
    committing_.clear();
    outgoing_.clear();
    ahead_.clear();
    first_write_at_.reset();
    begun_through_ = durable_through_ = writes_staged_;
}

}  // namespace kv::node
