// One coordinated client request (coordinator.h), private to the coordinator.
#pragma once

#include <algorithm>
#include <cassert>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "node/coordinator/coordinator.h"

namespace kv::node {

// Per-op sets and maps keyed by replica id: at most n (<= 16) entries, so a
// vector kept sorted by id is one allocation where a std::map or std::set
// makes one per entry, and it iterates in the same order (read repairs are
// sent in that order, which the simulator's golden digests see).
template <typename Value>
class ReplicaMap {
  public:
    using Entry = std::pair<std::string, Value>;
    using const_iterator = typename std::vector<Entry>::const_iterator;

    // Adds the entry unless `replica` has one; true when it added.
    bool emplace(const std::string& replica, Value value) {
        if (entries_.empty()) entries_.reserve(kReserved);  // before any iterator is taken
        auto it = lower(replica);
        if (it != entries_.end() && it->first == replica) return false;
        entries_.emplace(it, replica, std::move(value));
        return true;
    }
    size_t count(const std::string& replica) const {
        auto it = lower(replica);
        return it != entries_.end() && it->first == replica ? 1 : 0;
    }
    const Value& at(const std::string& replica) const {
        auto it = lower(replica);
        assert(it != entries_.end() && it->first == replica);
        return it->second;
    }
    void erase(const_iterator it) { entries_.erase(it); }
    void clear() { entries_.clear(); }  // keeps the buffer
    size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    const_iterator begin() const { return entries_.begin(); }
    const_iterator end() const { return entries_.end(); }

  private:
    static constexpr size_t kReserved = 4;  // n = 3 and a stand-in, in one allocation
    typename std::vector<Entry>::iterator lower(const std::string& replica) {
        return std::lower_bound(entries_.begin(), entries_.end(), replica,
                                [](const Entry& e, const std::string& r) { return e.first < r; });
    }
    const_iterator lower(const std::string& replica) const {
        return std::lower_bound(entries_.begin(), entries_.end(), replica,
                                [](const Entry& e, const std::string& r) { return e.first < r; });
    }
    std::vector<Entry> entries_;
};

// The set counterpart: replica ids, sorted, in one vector.
class ReplicaSet {
  public:
    using const_iterator = std::vector<std::string>::const_iterator;

    void insert(const std::string& replica) {
        if (ids_.empty()) ids_.reserve(4);  // before any iterator is taken
        auto it = std::lower_bound(ids_.begin(), ids_.end(), replica);
        if (it != ids_.end() && *it == replica) return;
        ids_.insert(it, replica);
    }
    void clear() { ids_.clear(); }  // keeps the buffer
    size_t count(const std::string& replica) const {
        return std::binary_search(ids_.begin(), ids_.end(), replica) ? 1 : 0;
    }
    size_t size() const { return ids_.size(); }
    bool empty() const { return ids_.empty(); }
    const_iterator begin() const { return ids_.begin(); }
    const_iterator end() const { return ids_.end(); }

  private:
    std::vector<std::string> ids_;
};

struct Coordinator::Op {
    uint64_t id = 0;
    uint32_t slot = 0;  // where the coordinator's slab holds it
    // Back to a fresh op (every field at its default), keeping the buffers
    // of the vectors that most requests fill, for the next op to reuse.
    void clear_keeping_buffers();
    OpKind kind = OpKind::read;
    ReplyTo client;
    uint64_t client_request_id = 0;
    std::string key;
    std::vector<std::string> replicas;  // the replicas asked: home replicas (and stand-ins)
    uint32_t required = 0;              // r or w
    // Sloppy quorum (not strict, hinted handoff on): the stand-ins among
    // `replicas`, each with the home replica it stands in for.
    std::map<std::string, std::string> stand_in_for;
    bool sloppy = false;
    bool is_stand_in(const std::string& replica) const { return stand_in_for.count(replica) != 0; }
    // Reads: new owners of the key's range asked in place of home replicas
    // that handed it off (read_path.cpp, ask_new_owners), among `replicas`.
    std::vector<std::string> new_owners;
    bool is_new_owner(const std::string& replica) const {
        return std::find(new_owners.begin(), new_owners.end(), replica) != new_owners.end();
    }
    uint64_t deadline_at_ms = 0;
    bool answered = false;
    bool finished = false;
    // What the op is charged in the admission budgets (until answered), then
    // in the background budget (coordinator.h); zero before it is admitted.
    enum class Budget : uint8_t { none, client, background };
    size_t charged_bytes = 0;
    Budget budget = Budget::none;
    // While budget is client: the client connection's entry in
    // by_connection_, which lives while any of its ops is charged there
    // (found once, not by route at every charge).
    Usage* connection = nullptr;
    std::vector<uint64_t> peer_calls;

    // Reads: the replicas not asked yet, in the order to ask them (`replicas`
    // holds the ones asked), and when to ask them all if still unanswered.
    std::vector<std::string> spares;
    uint64_t spares_due_ms = 0;
    // Reads: what each replica answered (null: it holds nothing), decoded.
    // Shared and immutable, so that replicas that sent the same bytes share
    // one decoded object instead of each holding a copy (see on_read_reply).
    // A replica that answered is in `versions`, in `same_as_first` or in
    // `failed`, never two of them.
    ReplicaMap<std::shared_ptr<const Object>> versions;
    // The merge of `versions`, made at most once per change of them (the
    // answer and the read repairs both need it): reset whenever one is added
    // or removed.
    std::shared_ptr<const Object> merged;  // one of `versions` when they all agree
    size_t merged_charged_bytes = 0;       // what `merged` is charged (the largest it has been)
    // The encoded object the first replica to answer with one sent, and who
    // that was: a later answer with the same bytes (the usual case: replicas
    // agree) is the same version, neither decoded again nor compared.
    std::string first_object_bytes;
    std::string first_object_replica;
    // The replicas that answered with first_object_bytes while it is not
    // decoded: as long as no other answer needs comparing with it, the
    // client's answer is read from the bytes (first_view: read_view_of_encoded,
    // which validates as decode_object does), and no object is built.
    // decode_first() moves them into `versions` when one is needed (a
    // different answer, a merge, a repair).
    ReplicaSet same_as_first;
    std::optional<ReadView> first_view;
    std::set<std::string> failed;
    std::string last_failure;  // why the latest replica failed, for the client's error
    bool repairs_sent = false;
    bool repair_failed = false;
    std::set<std::string> repairs_waiting;

    // Writes: `replicas` holds the key's current replicas, then its new owners
    // while its range moves (all written; required counts them too).
    std::vector<std::string> mint_candidates;  // reachable replicas, in the order to try
    size_t mint_index = 0;
    std::optional<std::string> value;  // kept until minted, to try another replica
    std::optional<std::string> context;
    bool replace = false;  // proto::PutRequest::replace
    ReplicaSet acked;
    // The writer's context the minting replica returned (absent: it answered
    // a duplicate request), for write_reply.
    std::optional<std::string> written_context;
    uint32_t sibling_count = 0;
    // What the op's answer reveals of this node's writes, as a mark for
    // Env::reply_after_writes (0: none): for a write, Env::writes_staged()
    // after this node's last write for it (its mint, merge or hint); for a
    // read, Env::step_mark() after this node's read, or writes_staged()
    // after its read repair here. The answer waits for those writes to be
    // durable, not for later ones.
    uint64_t local_writes_mark = 0;
    bool replicating = false;
    // The key's home replicas, and the minted object (kept while hinted
    // handoff is on): when the op finishes, every home replica that did not
    // acknowledge and that no acknowledging stand-in covers gets a hint kept
    // by this node (Coordinator::keep_fallback_hints).
    std::vector<std::string> homes;
    std::string object;
    // Acknowledgements counted toward w on top of `acked` (only a planted bug
    // ever adds any: node/mutant.h, stand_in_counted_twice).
    size_t extra_acks = 0;
    // The op's follow-up was dropped (background budget full): its merges
    // are out, and no fallback hints are kept for it.
    bool follow_up_dropped = false;

    // Reads: the replicas that answered, with a version or with nothing.
    size_t answers() const { return versions.size() + same_as_first.size(); }
    size_t responded() const { return answers() + failed.size(); }
    // The level needs every replica (`all`): answered only once all have
    // answered and been repaired. New owners asked in place of replicas that
    // handed off do not count: they replace, they do not add.
    bool wants_all() const {
        return required == replicas.size() + spares.size() - new_owners.size();
    }
};

// "quorum", or "r=2" / "w=2" for an explicit count.
std::string level_text(const proto::Consistency& c, const char* which);

// Why a level needing `required` of the configured n cannot be met by a key
// that has only `replicas` replicas because the ring has fewer members than n.
std::string fewer_members_than_n(uint32_t required, const proto::Consistency& c, const char* which,
                                 uint32_t n, size_t replicas);

}  // namespace kv::node
