// Versioned objects: dotted version vectors (Preguiça et al., "Dotted Version
// Vectors", 2010; Riak 2.0's dvvset). A stored key holds a set of siblings, each
// stamped with the dot (actor, counter) of the write that made it, and one causal
// context: a version vector that covers every dot the object has seen.
//
// Invariants of a well-formed Object:
//  - every sibling's dot is covered by the context;
//  - siblings are sorted by dot and no two share a dot;
//  - a dot covered by the context but absent from the siblings was superseded.
// Only replicas mint dots (update), always one past what their own stored copy
// has seen from their actor, so a dot never names two different writes.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "client/status.h"

namespace kv::node {

struct Dot {
    std::string actor;
    uint64_t counter = 0;
    auto operator<=>(const Dot&) const = default;
};

// The largest counter a dot or a context may hold. Every write mints one past
// its actor's highest, so no honest history comes near it; a context or object
// claiming more is refused when decoded (bad_context / bad_request), and update()
// refuses to mint past it, so a forged counter near 2^64 cannot wrap an actor's
// counter and make a key unusable on every replica.
constexpr uint64_t kCounterMax = uint64_t{1} << 62;

// The dots a replica or a writer has seen: per actor, the highest counter seen
// and the counters below it that were NOT seen (exceptions: Malkhi & Terry's
// "version vectors with exceptions"). An object's context is contiguous while
// it only learns from other objects; exceptions come from a writer's context
// (writer_context below), which covers a new dot but not the concurrent
// siblings below it that the writer never saw. Entries are kept sorted by
// actor, which keeps encoding and iteration deterministic.
class VersionVector {
  public:
    // Per actor, the highest counter seen, sorted by actor. A flat vector: an
    // object names a few actors (the replicas that minted its versions), and
    // every object decoded on the request path builds one, so one allocation
    // for all of them beats a std::map's one per actor.
    using Entries = std::vector<std::pair<std::string, uint64_t>>;

    // The highest counter seen from `actor` (0: none).
    uint64_t get(const std::string& actor) const;
    // Sees every dot of `actor` up to `counter` (and none above), no exceptions.
    void set(const std::string& actor, uint64_t counter);
    // Sees `dot` too; the counters between the highest seen and the dot become exceptions.
    void add(const Dot& dot);
    // Sees every counter of `actor` up to `counter` that is above its highest
    // seen (keeping the exceptions below it); nothing when it is not above.
    void raise(const std::string& actor, uint64_t counter);
    // No longer sees `dot` (it becomes an exception, or lowers the highest).
    void remove(const Dot& dot);
    bool covers(const Dot& dot) const;
    // True when this has seen everything `other` has seen.
    bool descends(const VersionVector& other) const;
    // Union of what both have seen.
    void merge(const VersionVector& other);
    const Entries& entries() const { return entries_; }
    // Per actor, the counters below its entry that are not seen (never empty sets).
    const std::map<std::string, std::set<uint64_t>>& exceptions() const { return exceptions_; }
    size_t exception_count() const;
    bool empty() const { return entries_.empty(); }
    // Room for `actors` entries: a decode knows how many it will set.
    void reserve(size_t actors) { entries_.reserve(actors); }
    bool operator==(const VersionVector&) const = default;

  private:
    // The first entry whose actor is not below `actor`.
    Entries::const_iterator lower(std::string_view actor) const;
    // The counter of `actor`, a new entry of 0 if it has none.
    uint64_t& counter_of(const std::string& actor);
    void erase_entry(const std::string& actor);

    Entries entries_;
    // Usually empty (an empty std::map allocates nothing).
    std::map<std::string, std::set<uint64_t>> exceptions_;
};

struct Sibling {
    Dot dot;
    std::optional<std::string> value;  // nullopt: a tombstone (a delete)
    bool operator==(const Sibling&) const = default;
};

struct Object {
    VersionVector context;
    std::vector<Sibling> siblings;
    bool operator==(const Object&) const = default;

    bool empty() const { return siblings.empty() && context.empty(); }
    // Live (non-tombstone) values, in dot order.
    std::vector<std::string> live_values() const;
    size_t live_count() const;
    // Siblings' bytes plus encoding overhead, as encode_object would produce
    // (an upper bound, for limit checks before encoding).
    size_t encoded_size_bound() const;
};

// The union of what two replicas know: commutative, associative, idempotent.
// A sibling survives unless the other side's context covers its dot and the
// other side no longer holds it (then the other side saw it superseded).
Object merge(const Object& a, const Object& b);
// The same union, taking b's siblings and context instead of copying them.
Object merge(const Object& a, Object&& b);

// A write at a replica whose actor id is `actor`: the new sibling (value, or a
// tombstone when value is nullopt) supersedes exactly the siblings whose dots
// `seen` covers; the others stay as concurrent siblings. Fails with
// sibling_limit when more than `siblings_max` siblings would remain, with
// object_too_large when the object would exceed `object_bytes_max`, and with
// bad_context when the new dot's counter would pass kCounterMax.
// `counter_floor`: the new dot's counter is also above it (a stand-in's
// per-key counter of this life, Replica::mint_as_stand_in); counters between
// what the context saw and the new one stay unseen (exceptions). `local` is
// taken: a replica done with its stored version moves it in, uncopied.
Result<Object> update(Object local, const VersionVector& seen, const std::string& actor,
                      std::optional<std::string> value, size_t siblings_max,
                      size_t object_bytes_max, uint64_t counter_floor = 0);

// The context a writer gets back for the write that produced `written` (the
// object update() returned from a write whose context was `seen` and whose new
// dot is `minted`): it covers what the writer saw, its own new version, and the
// versions `written` already knows were superseded, but none of the concurrent
// siblings the writer never saw. A later write with it supersedes exactly the
// writer's value and what it had seen; those concurrent siblings survive.
// Its exceptions are at most the siblings of `written`, so it stays small.
VersionVector writer_context(const Object& written, const VersionVector& seen, const Dot& minted);

// What a read returns of `object`: its live values, at most `values_max` of them
// (the first in dot order), and a context that covers the object's context but
// not the live siblings left out, so a write with it supersedes only what the
// reader was shown and the others survive for the next read. Siblings can pass
// the write limit only through merges of replicas that each met it (concurrent
// writes minted at different replicas); acknowledged values are never dropped
// to meet it, only held back from one reply.
struct ReadView {
    std::vector<std::string> values;
    // The context to hand the reader, encoded (encode_context; empty when the
    // context is): the object's own, encoded where it lies, unless siblings
    // were held back and it had to be narrowed.
    std::string context;
    size_t live = 0;        // live siblings the object holds, shown or not
    std::string held_back;  // when some were held back: a message for the reader
};
ReadView read_view(const Object& object, size_t values_max);

// Binary encodings (msgpack). Decoders validate the invariants above and treat
// input as hostile; a violation is bad_request / bad_context.
//
// The decode budget. Merge has no sibling cap (refusing a merge would leave
// replicas diverged), so decode_object takes any object merges can build: up
// to n (<= 16) replicas' worth of siblings_max siblings each, far below
// kDecodeSiblingsMax. A context holds at most kDecodeActorsMax actors and
// kDecodeExceptionsMax unseen counters (a writer's context has one per sibling
// of the key). Beyond those an input is refused before anything is allocated
// for it: decoding reads the input once, in place, and checks each count
// before it reserves anything.
constexpr size_t kDecodeActorsMax = 1024;
constexpr size_t kDecodeSiblingsMax = 64 * 1024;
constexpr size_t kDecodeExceptionsMax = 64 * 1024;
// The most bytes decoding `input_bytes` bytes may allocate at once (the
// decoded Object included): twice the input for the byte strings it copies,
// plus per sibling, unseen counter and actor a fixed cost,
// each count bounded both by the input size and by the limits above. For a
// 16 MiB input this is about 3 times the input, whatever its shape.
size_t object_decode_bytes_max(size_t input_bytes);
std::string encode_object(const Object& object);
Result<Object> decode_object(std::string_view bytes);
std::string encode_context(const VersionVector& context);
Result<VersionVector> decode_context(std::string_view bytes);
// read_view(decode_object(bytes), values_max), read from the encoding where it
// lies: the same validation and the same errors as decode_object, the same
// values, live count and message, and a context that decodes to the same
// version vector (the encoding's own bytes, so equal to encode_context's
// when the object was encoded by encode_object). No Object is built (its
// siblings, dots, values and version vector each an allocation) unless the
// context has unseen counters or siblings are held back: then it decodes.
// For a read whose replicas all sent the same bytes.
Result<ReadView> read_view_of_encoded(std::string_view bytes, size_t values_max);

// merge(decode_object(stored), decode_object(incoming)) when it is one of its
// inputs, found from the two encodings where they lie (no Object built,
// merged or encoded): a replica's write path, where the incoming version
// usually descends the stored one (or repeats it). `stored` nullopt: nothing
// stored (the empty object).
struct EncodedMerge {
    enum class Result {
        unknown,   // decode and merge (siblings of both sides survive, a
                   // context has unseen counters, an input is malformed or
                   // the incoming bytes are not encode_object's)
        stored,    // the union is the stored object: nothing to write
        incoming,  // the union is the incoming object, and `incoming` is the
                   // encoding encode_object makes of it: store those bytes
    };
    Result result = Result::unknown;
    bool stored_tombstones_only = false;    // the stored object's siblings are all
                                            // tombstones (not when unknown)
    bool incoming_tombstones_only = false;  // likewise the incoming's (when incoming)
};
EncodedMerge merge_of_encoded(std::optional<std::string_view> stored, std::string_view incoming);

}  // namespace kv::node
