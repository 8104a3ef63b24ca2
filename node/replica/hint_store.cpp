#include "node/replica/hint_store.h"

#include <algorithm>

#include "node/storage/meta_codec.h"

namespace kv::node {

std::string hint_key(std::string_view target, std::string_view key) {
    std::string out;
    out.reserve(2 + target.size() + key.size());
    out.push_back(static_cast<char>((target.size() >> 8) & 0xff));
    out.push_back(static_cast<char>(target.size() & 0xff));
    out.append(target);
    out.append(key);
    return out;
}

std::optional<std::pair<std::string, std::string>> split_hint_key(std::string_view stored) {
    if (stored.size() < 2) return std::nullopt;
    const size_t len = (static_cast<size_t>(static_cast<uint8_t>(stored[0])) << 8) |
                       static_cast<uint8_t>(stored[1]);
    if (len == 0 || stored.size() < 2 + len + 1) return std::nullopt;
    return std::make_pair(std::string(stored.substr(2, len)), std::string(stored.substr(2 + len)));
}

HintStore::HintStore(const NodeConfig& config, Env& env, NodeStats& stats)
    : config_(config), env_(env), stats_(stats) {}

Status HintStore::load() {
    targets_.clear();
    const uint64_t now = env_.now_ms();
    std::string from;
    bool corrupt = false;
    // Paged, so a large hints space is not visited in one call; each page
    // resumes at the last key seen (Store::scan), which is skipped.
    for (;;) {
        size_t seen = 0;
        std::string last;
        Status s = env_.scan(Space::hints, from, 1024, [&](std::string_view k, std::string_view v) {
            ++seen;
            last.assign(k);
            if (!from.empty() && k == from) return true;
            auto split = split_hint_key(k);
            if (!split) {
                corrupt = true;
                return false;
            }
            Target& t = targets_[split->first];
            t.keys[split->second] = Held{v.size(), next_generation_++, now};
            t.bytes += v.size();
            return true;
        });
        if (!s.ok()) return s;
        if (corrupt) return Status(ErrorCode::storage_error, "a malformed key in the hints space");
        if (seen < 1024 || last == from) break;
        from = last;
    }
    auto stored = env_.read(Space::meta, meta::kUnderReplicatedKey);
    if (!stored) return stored.status();
    under_replicated_.clear();
    if (stored.value()) {
        auto decoded = meta::decode_handoffs(*stored.value());
        if (!decoded) {
            return Status(ErrorCode::storage_error,
                          "corrupt under-replicated record in the meta space");
        }
        for (const auto& [target, ranges] : *decoded) {
            for (const auto& r : ranges) under_replicated_[target].add(r);
        }
    }
    return {};
}

Status HintStore::add(const std::string& target, const std::string& key, std::string_view object,
                      const ring::Range& range, bool retarget) {
    auto incoming = decode_object(object);
    if (!incoming) return incoming.status();
    Target& t = targets_[target];
    auto held = t.keys.find(key);
    const std::string stored_key = hint_key(target, key);
    Object merged = std::move(incoming.value());
    uint64_t old_bytes = 0;
    if (held != t.keys.end()) {
        auto stored = env_.read(Space::hints, stored_key);
        if (!stored) return Status(ErrorCode::storage_error, stored.status().message());
        if (stored.value()) {
            auto local = decode_object(*stored.value());
            if (!local) {
                env_.log(LogLevel::error, "a stored hint is corrupt: " + local.status().message());
                return Status(ErrorCode::storage_error, "a stored hint is corrupt");
            }
            merged = merge(local.value(), merged);
        }
        old_bytes = held->second.bytes;
    }
    std::string bytes = encode_object(merged);
    if (!retarget) {
        const bool new_key = held == t.keys.end();
        const char* full = nullptr;
        if (new_key && t.keys.size() >= config_.hints_per_target_max) {
            full = "keys (--hints-max-per-target)";
        } else if (t.bytes - old_bytes + bytes.size() > config_.hint_bytes_per_target_max) {
            full = "bytes (--hint-bytes-max-per-target)";
        }
        if (full != nullptr) {
            ++t.refused;
            ++stats_.hints_refused;
            mark_under_replicated(target, range);
            if (t.keys.empty()) targets_.erase(target);
            return Status(ErrorCode::overloaded,
                          "the hints this node holds for " + target + " are at their limit of " +
                              std::string(full) + "; the key's range is marked under-replicated");
        }
    }
    ++stats_.hints_stored;
    t.bytes = t.bytes - old_bytes + bytes.size();
    Held& h = t.keys[key];
    if (held == t.keys.end() || h.since_ms == 0) h.since_ms = env_.now_ms();
    h.bytes = bytes.size();
    h.generation = next_generation_++;
    env_.stage_write(StoreWrite{Space::hints, stored_key, std::move(bytes)});
    return {};
}

Result<Object> HintStore::merged_for_key(const std::string& key) {
    Object out;
    for (const auto& [target, t] : targets_) {
        if (!t.keys.count(key)) continue;
        auto stored = env_.read(Space::hints, hint_key(target, key));
        if (!stored) return Status(ErrorCode::storage_error, stored.status().message());
        if (!stored.value()) continue;
        auto decoded = decode_object(*stored.value());
        if (!decoded) return Status(ErrorCode::storage_error, "a stored hint is corrupt");
        out = merge(out, decoded.value());
    }
    return out;
}

std::vector<std::string> HintStore::targets() const {
    std::vector<std::string> out;
    for (const auto& [target, t] : targets_) {
        if (!t.keys.empty()) out.push_back(target);
    }
    return out;
}

Result<std::vector<HintStore::Pending>> HintStore::batch(const std::string& target, size_t keys_max,
                                                         size_t bytes_max) {
    std::vector<Pending> out;
    auto it = targets_.find(target);
    if (it == targets_.end()) return out;
    size_t bytes = 0;
    for (const auto& [key, held] : it->second.keys) {
        if (out.size() >= keys_max || (!out.empty() && bytes + held.bytes > bytes_max)) break;
        auto stored = env_.read(Space::hints, hint_key(target, key));
        if (!stored) return Status(ErrorCode::storage_error, stored.status().message());
        if (!stored.value()) continue;
        bytes += stored.value()->size();
        out.push_back(Pending{key, std::move(*stored.value()), held.generation});
    }
    return out;
}

bool HintStore::remove_if_unchanged(const std::string& target, const std::string& key,
                                    uint64_t generation) {
    auto it = targets_.find(target);
    if (it == targets_.end()) return false;
    auto held = it->second.keys.find(key);
    if (held == it->second.keys.end() || held->second.generation != generation) return false;
    it->second.bytes -= held->second.bytes;
    it->second.keys.erase(held);
    ++it->second.replayed;
    env_.stage_write(StoreWrite{Space::hints, hint_key(target, key), std::nullopt});
    return true;
}

HintSummary HintStore::summary() const {
    HintSummary out;
    for (const auto& [target, t] : targets_) {
        out.keys += t.keys.size();
        out.bytes += t.bytes;
    }
    return out;
}

std::vector<proto::HintStatus> HintStore::status() const {
    std::vector<proto::HintStatus> out;
    const uint64_t now = env_.now_ms();
    for (const auto& [target, t] : targets_) {
        proto::HintStatus s;
        s.target = target;
        s.keys = t.keys.size();
        s.bytes = t.bytes;
        uint64_t oldest = now;
        for (const auto& [key, held] : t.keys) oldest = std::min(oldest, held.since_ms);
        s.oldest_ms = t.keys.empty() ? 0 : now - oldest;
        s.replayed = t.replayed;
        s.refused = t.refused;
        out.push_back(std::move(s));
    }
    return out;
}

size_t HintStore::under_replicated_ranges() const {
    size_t n = 0;
    for (const auto& [target, ranges] : under_replicated_) n += ranges.ranges().size();
    return n;
}

void HintStore::mark_under_replicated(const std::string& target, const ring::Range& range) {
    ring::RangeSet& set = under_replicated_[target];
    if (set.covers(range)) return;
    set.add(range);
    persist_under_replicated();
}

void HintStore::persist_under_replicated() {
    meta::HandoffRecord record;
    for (const auto& [target, ranges] : under_replicated_) record[target] = ranges.ranges();
    std::string bytes = meta::encode_handoffs(record);
    env_.stage_write(StoreWrite{Space::meta, std::string(meta::kUnderReplicatedKey),
                                bytes.empty() ? std::nullopt : std::optional(bytes)});
}

}  // namespace kv::node
