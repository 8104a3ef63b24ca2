#include "node/replica/replica.h"

#include <cassert>
#include <cstdio>

#include "node/data/stored_record.h"
#include "node/mutant.h"
#include "node/storage/meta_codec.h"
#include "ring/ring.h"

namespace kv::node {

namespace {
bool tombstones_only(const Object& object) {
    return !object.siblings.empty() && object.live_count() == 0;
}

Replica::Previous previous_of(const std::optional<std::string>& stored, const Object& object) {
    return Replica::Previous{stored ? &*stored : nullptr, stored && tombstones_only(object)};
}

std::string join(const std::vector<std::string>& ids) {
    std::string out;
    for (const auto& id : ids) out += (out.empty() ? "" : ",") + id;
    return out;
}
}  // namespace

Replica::Replica(const NodeConfig& config, Env& env, const Placement& placement,
                 const Handoffs& handoffs, HintStore& hints)
    : config_(config), env_(env), placement_(placement), handoffs_(handoffs), hints_(hints) {}

Result<std::optional<std::string>> Replica::read(const std::string& key) {
    // Record keys are longer than std::string holds inline: one buffer, reused.
    stored_key_into(read_key_, ring::hash64(key), key);
    auto stored = env_.read(Space::objects, read_key_);
    if (!stored) return Status(ErrorCode::storage_error, stored.status().message());
    if (stored.value()) {
        if (stored.value()->size() < kStoredHeaderBytes) {
            env_.log(LogLevel::error, "stored record of a key is shorter than its header");
            return Status(ErrorCode::storage_error, "stored object is corrupt");
        }
        stored.value()->erase(0, kStoredHeaderBytes);
    }
    return stored;
}

Result<Object> Replica::load(const std::string& key) {
    std::optional<std::string> bytes;
    return load(key, bytes);
}

Result<Object> Replica::load(const std::string& key, std::optional<std::string>& bytes) {
    auto stored = read(key);
    if (!stored) return stored.status();
    bytes = std::move(stored.value());
    return decode_stored(bytes);
}

Result<Object> Replica::decode_stored(const std::optional<std::string>& bytes) {
    if (!bytes) return Object{};
    auto decoded = decode_object(*bytes);
    if (!decoded) {
        env_.log(LogLevel::error,
                 "stored object of a key is corrupt: " + decoded.status().message());
        return Status(ErrorCode::storage_error, "stored object is corrupt");
    }
    return std::move(decoded.value());
}

Result<Replica::Minted> Replica::mint(const std::string& key, std::optional<std::string> value,
                                      const std::optional<std::string>& context, bool replace) {
    assert(!actor_.empty());
    std::optional<std::string> stored;
    auto loaded = load(key, stored);
    if (!loaded) return loaded.status();
    Object local = std::move(loaded.value());
    const Previous previous = previous_of(stored, local);
    // Above every counter of a purged history (purge()): the counters skipped
    // were superseded there or never minted for this key, so seeing them is true.
    local.context.raise(actor_, purge_floor_);
    VersionVector seen;
    bool use_context = context && !context->empty();
#ifdef KV_MUTANTS
    // Planted (node/mutant.h): every put is minted blind, so what the writer
    // superseded stays as a sibling; no-resurrection must catch it.
    if (KV_MUTANT(context_ignored_on_put) && value) use_context = false;
#endif
    if (use_context) {
        auto decoded = decode_context(*context);
        if (!decoded) return decoded.status();
        seen = std::move(decoded.value());
    } else if (!value || replace) {
        // What this replica holds is what the write removes: while it refills
        // it may lack versions the other replicas acknowledged (a delete at
        // `all` after a put at `all` would leave that put standing). Refused
        // before anything is minted; the coordinator passes the turn on.
        if (refilling_) return Status(ErrorCode::unavailable, *refilling_);
        seen =
            local.context;  // a delete (or replace) without context removes all this replica holds
    }
    const bool is_delete = !value.has_value();
    auto updated = update(std::move(local), seen, actor_, std::move(value), config_.siblings_max,
                          proto::kObjectBytesMax);
    if (!updated) return updated.status();
    const size_t siblings = updated->siblings.size();
    if (siblings >= config_.siblings_warn && !is_delete) {
        env_.log(LogLevel::warn, "a key has " + std::to_string(siblings) +
                                     " siblings; writers should pass the context of a get (limit " +
                                     std::to_string(config_.siblings_max) + ")");
    }
    const Dot minted{actor_, updated->context.get(actor_)};
    Minted out{encode_object(updated.value()),
               encode_context(writer_context(updated.value(), seen, minted)),
               updated->live_count()};
    stage(key, previous, updated.value(), out.object);
    return out;
}

Result<Replica::Minted> Replica::mint_as_stand_in(const std::string& home, const std::string& key,
                                                  std::optional<std::string> value,
                                                  const std::optional<std::string>& context,
                                                  bool replace) {
    auto held = hints_.merged_for_key(key);
    if (!held) return held.status();
    VersionVector seen;
    if (context && !context->empty()) {
        auto decoded = decode_context(*context);
        if (!decoded) return decoded.status();
        seen = std::move(decoded.value());
    } else if (!value || replace) {
        seen = held->context;  // a delete (or replace) without context removes every hint held
    }
    // This life's stand-in actor and its counter for the key: new dots
    // whatever this node minted for the key before (in an earlier life, or in
    // hints since replayed and deleted). Past kStandInKeysMax keys the actor
    // is renewed, which bounds the counters kept.
    if (stand_in_counters_.size() >= kStandInKeysMax && !stand_in_counters_.count(key)) {
        stand_in_counters_.clear();
        lifetime_bits_ = env_.random_u64();
    }
    char bits[17];
    std::snprintf(bits, sizeof bits, "%016llx", static_cast<unsigned long long>(lifetime_bits_));
    const std::string actor = config_.node_id + "~" + bits;
    uint64_t& counter = stand_in_counters_[key];
    auto updated = update(std::move(held.value()), seen, actor, std::move(value),
                          config_.siblings_max, proto::kObjectBytesMax, counter);
    if (!updated) return updated.status();
    counter = updated->context.get(actor);
    const Dot minted{actor, updated->context.get(actor)};
    Minted out{encode_object(updated.value()),
               encode_context(writer_context(updated.value(), seen, minted)),
               updated->live_count()};
    Status kept = keep_hint(home, key, out.object);
    if (!kept.ok()) return kept;
    return out;
}

Result<std::optional<std::string>> Replica::read_hints(const std::string& key) {
    auto held = hints_.merged_for_key(key);
    if (!held) return held.status();
    if (held->empty()) return std::optional<std::string>();
    return std::optional<std::string>(encode_object(held.value()));
}

Status Replica::keep_hint(const std::string& home, const std::string& key,
                          std::string_view object_bytes) {
    return hints_.add(home, key, object_bytes, placement_.range_of(ring::hash64(key)));
}

Status Replica::merge(const std::string& key, std::string_view object_bytes) {
    auto read_stored = read(key);
    if (!read_stored) {
        auto incoming = decode_object(object_bytes);  // a malformed version's error first
        return incoming ? read_stored.status() : incoming.status();
    }
    const std::optional<std::string>& stored = read_stored.value();
#ifdef KV_MUTANTS
    // The planted bug below needs the merged object.
    const bool shortcut_allowed = !KV_MUTANT(tombstone_gc_on_merge);
#else
    constexpr bool shortcut_allowed = true;
#endif
    if (shortcut_allowed) {
        // The usual replication of a put: the incoming version descends the
        // stored one (or repeats it), and the union is one of the two as
        // encoded, so nothing is decoded, merged or encoded.
        const EncodedMerge shortcut = merge_of_encoded(
            stored ? std::optional<std::string_view>(*stored) : std::nullopt, object_bytes);
        const Previous previous{stored ? &*stored : nullptr,
                                stored && shortcut.stored_tombstones_only};
        switch (shortcut.result) {
            case EncodedMerge::Result::stored:
                return {};
            case EncodedMerge::Result::incoming:
                stage(key, previous, shortcut.incoming_tombstones_only, std::string(object_bytes));
                return {};
            case EncodedMerge::Result::unknown:
                break;
        }
    }
    auto incoming = decode_object(object_bytes);
    if (!incoming) return incoming.status();
    auto loaded = decode_stored(stored);
    if (!loaded) return loaded.status();
    Object local = std::move(loaded.value());
    const Previous previous = previous_of(stored, local);
    Object merged = node::merge(local, std::move(incoming.value()));
#ifdef KV_MUTANTS
    // Planted (node/mutant.h): a tombstone-only object is erased, context and
    // all, so an older copy merged later brings its values back; no-resurrection
    // and convergence must catch it.
    if (KV_MUTANT(tombstone_gc_on_merge) && !merged.siblings.empty() && merged.live_count() == 0) {
        stage_erase(key, previous);
        return {};
    }
#endif
    if (!(merged == local)) stage(key, previous, merged, encode_object(merged));
    return {};
}

Status Replica::load_purge_floor() {
    auto stored = env_.read(Space::meta, meta::kPurgeFloorKey);
    if (!stored) return stored.status();
    if (!stored.value()) return {};
    auto floor = meta::decode_u64_text(*stored.value());
    if (!floor) return Status(ErrorCode::storage_error, "the purge_floor meta record is corrupt");
    purge_floor_ = *floor;
    return {};
}

Result<bool> Replica::purge(const std::string& key, std::string_view expected) {
    auto held = read(key);
    if (!held) return held.status();
    if (!held.value() || *held.value() != expected) return false;
    auto object = decode_object(*held.value());
    if (!object) return object.status();
    if (object->siblings.empty() || object->live_count() != 0) return false;
    const uint64_t own = object->context.get(actor_);
    if (own > purge_floor_) {
        purge_floor_ = own;
        env_.stage_write(StoreWrite{Space::meta, std::string(meta::kPurgeFloorKey),
                                    meta::encode_u64_text(purge_floor_)});
    }
    stage_erase(key, Previous{&*held.value(), true});
    return true;
}

void Replica::stage(const std::string& key, const Previous& previous, const Object& object,
                    std::string bytes) {
    stage(key, previous, tombstones_only(object), std::move(bytes));
}

void Replica::stage(const std::string& key, const Previous& previous, bool tombstones,
                    std::string bytes) {
    env_.stage_write(
        StoreWrite{Space::objects, stored_key(key),
                   stored_value(entry_hash(key, bytes, tombstones), env_.now_ms(), bytes)});
    const std::optional<std::string> staged(std::move(bytes));
    for (const auto& observer : observers_) observer(key, previous, staged, tombstones);
}

void Replica::stage_erase(const std::string& key, const Previous& previous) {
    env_.stage_write(StoreWrite{Space::objects, stored_key(key), std::nullopt});
    for (const auto& observer : observers_) observer(key, previous, std::nullopt, false);
}

Status Replica::check_owner(const std::string& key, bool is_write,
                            const std::vector<std::string>& targets) const {
    // A static member list never moves ranges; every node computes one ring.
    if (!placement_.dynamic()) return {};
    const std::string& self = config_.node_id;
    const uint64_t hash = ring::hash64(key);
    // Asked of every write and read a replica receives: answered without
    // building a preference list unless the answer is a refusal or the key's
    // range moves.
    const bool in_current = placement_.is_replica_for_hash(hash, self);
    if (!placement_.moving()) {
        if (in_current) return {};
        return Status(ErrorCode::not_owner, "node " + self +
                                                " does not replicate this key (its replicas: " +
                                                join(placement_.replicas_for_hash(hash)) + ")");
    }
    const bool in_future = placement_.is_future_replica_for_hash(hash, self);
    if (!in_current && !in_future) {
        return Status(ErrorCode::not_owner, "node " + self + " does not replicate this key");
    }
    if (!in_future && handoffs_.fenced(hash)) {
        return Status(ErrorCode::not_owner,
                      "node " + self + " handed this key's range to its new owner");
    }
    if (!is_write && !in_current) {
        return Status(ErrorCode::not_owner, "this key's range is still moving to node " + self);
    }
    if (is_write && !targets.empty()) {
        const std::vector<std::string> current = placement_.replicas_for_hash(hash);
        for (const auto& id : placement_.future_replicas_for_hash(hash)) {
            if (!has_id(current, id) && !has_id(targets, id)) {
                return Status(ErrorCode::not_owner,
                              "the write skips " + id + ", a new owner of the key's range");
            }
        }
    }
    return {};
}

Status Replica::check_new_owner_read(const std::string& key) const {
    Status owner = check_owner(key, false, {});
    if (owner.ok() || !placement_.dynamic() || !placement_.moving()) return owner;
    // Every page of the range merged here: with the key's other current
    // replicas this node is its future preference list, which holds w copies
    // of every acknowledged write (docs/ARCHITECTURE.md, "Reads stay correct").
    const uint64_t hash = ring::hash64(key);
    const std::string& self = config_.node_id;
    if (!placement_.is_replica_for_hash(hash, self) &&
        placement_.is_future_replica_for_hash(hash, self) && handoffs_.has_received(hash))
        return {};
    return owner;
}

// ---- peer requests --------------------------------------------------------------

void Replica::handle(const ReplyTo& from, const ReplicaReadRequest& req) {
    if (req.stand_in) {
        // Asked as a stand-in: what it holds of the key are its hints.
        auto held = read_hints(req.key);
        return env_.reply_after_writes(
            from,
            ReplicaReadResponse{req.id, held.status().code(), held.status().message(),
                                held ? held.value() : std::nullopt},
            env_.step_mark());
    }
    Status owner = req.new_owner ? check_new_owner_read(req.key) : check_owner(req.key, false, {});
    if (owner.ok()) owner = check_readable();
    if (!owner.ok()) {
        return env_.reply(from,
                          ReplicaReadResponse{req.id, owner.code(), owner.message(), std::nullopt});
    }
    auto stored = read(req.key);
    // It reveals what the read found: it waits for that to be durable, not
    // for the commits of other keys' writes (Env::step_mark).
    env_.reply_after_writes(
        from,
        ReplicaReadResponse{req.id, stored.status().code(), stored.status().message(),
                            stored ? stored.value() : std::nullopt},
        env_.step_mark());
}

Status Replica::check_readable() const {
    if (!refilling_) return {};
    return Status(ErrorCode::unavailable, *refilling_);
}

Status Replica::check_budget(uint64_t budget_ms, std::optional<uint64_t> received_ms) {
    if (budget_ms == 0 || !received_ms) return {};
    const uint64_t now = env_.now_ms();
    const uint64_t waited_ms = now > *received_ms ? now - *received_ms : 0;
    if (waited_ms < budget_ms) return {};
    return Status(ErrorCode::timeout, "the request waited " + std::to_string(waited_ms) +
                                          " ms at replica " + config_.node_id +
                                          ", past its budget of " + std::to_string(budget_ms) +
                                          " ms; not applied");
}

void Replica::handle(const ReplyTo& from, const ReplicaWriteRequest& req,
                     std::optional<uint64_t> received_ms) {
    // First: a request past its budget changes nothing, duplicate or not.
    if (Status budget = check_budget(req.budget_ms, received_ms); !budget.ok()) {
        return env_.reply(from,
                          ReplicaWriteResponse{req.id, budget.code(), budget.message(), {}, {}});
    }
    auto request = std::make_pair(from.route, req.id);
    bool duplicate = minted_.count(request) != 0;
#ifdef KV_MUTANTS
    // Planted (node/mutant.h): a duplicated request mints again; no lost write
    // and read-your-writes must catch it (docs/SIMULATOR.md, seed 2819789231).
    if (KV_MUTANT(duplicate_suppression_off)) duplicate = false;
#endif
    if (duplicate) {
        // A duplicate: answer with what the replica holds now, which includes
        // the first copy's version or what superseded it. No writer context:
        // what the first copy's writer saw is no longer known, and the whole
        // object's context would cover siblings the writer never saw.
        std::optional<std::string> held;
        bool ok = false;
        if (!req.hint_for.empty() && req.hint_for != config_.node_id) {
            auto hinted = hints_.merged_for_key(req.key);  // a stand-in mint's duplicate
            ok = hinted.ok() && !hinted->empty();
            if (ok) held = encode_object(hinted.value());
        } else {
            auto stored = read(req.key);
            ok = stored.ok() && stored.value().has_value();
            if (ok) held = std::move(*stored.value());
        }
        env_.reply(from, ReplicaWriteResponse{
                             req.id, ok ? ErrorCode::ok : ErrorCode::storage_error,
                             ok ? std::string() : "duplicate write request and no stored version",
                             ok ? std::move(*held) : std::string(), std::nullopt});
        return;
    }
    // A stand-in mint (no home replica reachable): this node need not own the key.
    const bool stand_in = !req.hint_for.empty() && req.hint_for != config_.node_id;
    if (!stand_in) {
        Status owner = check_owner(req.key, true, req.targets);
        if (!owner.ok()) {
            return env_.reply(from,
                              ReplicaWriteResponse{req.id, owner.code(), owner.message(), {}, {}});
        }
    }
    // The coordinator's limit is not trusted beyond this node's own.
    auto written =
        stand_in ? mint_as_stand_in(req.hint_for, req.key, req.value, req.context, req.replace)
                 : mint(req.key, req.value, req.context, req.replace);
    if (!written.ok()) {
        return env_.reply(from,
                          ReplicaWriteResponse{
                              req.id, written.status().code(), written.status().message(), {}, {}});
    }
    remember_minted(std::move(request));
    env_.reply(from, ReplicaWriteResponse{req.id,
                                          ErrorCode::ok,
                                          {},
                                          std::move(written->object),
                                          std::move(written->writer_context)});
}

void Replica::remember_minted(std::pair<std::string, uint64_t> request) {
    minted_.insert(request);
    minted_order_.push_back(std::move(request));
    if (minted_order_.size() > config_.minted_requests_remembered) {
        minted_.erase(minted_order_.front());
        minted_order_.pop_front();
    }
}

void Replica::handle(const ReplyTo& from, const ReplicaMergeRequest& req,
                     std::optional<uint64_t> received_ms) {
    Status s = check_budget(req.budget_ms, received_ms);
    // Sent to this node as a stand-in: kept as a hint, whatever it owns.
    if (s.ok() && !req.hint_for.empty() && req.hint_for != config_.node_id) {
        s = keep_hint(req.hint_for, req.key, req.object);
        return env_.reply(from, ReplicaMergeResponse{req.id, s.code(), s.message()});
    }
    if (s.ok()) s = check_owner(req.key, true, req.targets);
#ifdef KV_MUTANTS
    // Planted (node/mutant.h): ok without storing, every merge or only a
    // delete's (no live value); read-your-writes, no-resurrection and
    // convergence must catch them.
    bool drop = KV_MUTANT(merge_acked_not_stored);
    if (KV_MUTANT(delete_not_replicated)) {
        auto incoming = decode_object(req.object);
        drop = incoming && incoming->live_count() == 0;
    }
    if (drop) return env_.reply(from, ReplicaMergeResponse{req.id, s.code(), s.message()});
#endif
    if (s.ok()) s = merge(req.key, req.object);
    env_.reply(from, ReplicaMergeResponse{req.id, s.code(), s.message()});
}

void Replica::handle(const ReplyTo& from, const HintReplayRequest& req) {
    HintReplayResponse resp;
    resp.id = req.id;
    for (size_t i = 0; i < req.keys.size(); ++i) {
        const std::string& key = req.keys[i];
        if (!check_owner(key, true, {}).ok()) {
            resp.not_owned.push_back(key);
            continue;
        }
        Status merged;
#ifdef KV_MUTANTS
        // Planted (node/mutant.h): the hint's live values are written again
        // as new versions (blind puts) instead of merged, so what superseded
        // them since is ignored; no-resurrection and convergence must catch it.
        if (KV_MUTANT(replay_remints)) {
            auto decoded = decode_object(req.objects[i]);
            if (decoded) {
                for (auto& v : decoded->live_values()) {
                    auto m = mint(key, std::move(v), std::nullopt);
                    if (!m) merged = m.status();
                }
                if (merged.ok()) continue;
            }
        }
#endif
        merged = merge(key, req.objects[i]);
        if (!merged.ok()) {
            // Nothing of this batch may be taken as durable: it is sent again,
            // and merging what was merged already changes nothing.
            resp.code = merged.code();
            resp.message = "hint for a key not merged: " + merged.message();
            resp.not_owned.clear();
            break;
        }
    }
    env_.reply(from, std::move(resp));
}

void Replica::handle(const ReplyTo& from, const proto::LocalGetRequest& req) {
    proto::GetResponse resp;
    resp.id = req.id;
    auto loaded = load(req.key);
    if (!loaded) {
        resp.code = loaded.status().code();
        resp.message = loaded.status().message();
        return env_.reply(from, std::move(resp));
    }
    // As a coordinated read: at most siblings_max values, a context that does
    // not cover those held back (object.h, read_view).
    ReadView view = read_view(loaded.value(), config_.siblings_max);
    resp.values = std::move(view.values);
    resp.code = resp.values.empty() ? ErrorCode::not_found : ErrorCode::ok;
    if (!view.held_back.empty()) resp.message = view.held_back;
    resp.context = std::move(view.context);
    resp.info = proto::ReplyInfo{1, 1, false, static_cast<uint32_t>(view.live)};
    env_.reply(from, std::move(resp));
}

}  // namespace kv::node
