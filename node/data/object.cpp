#include "node/data/object.h"

#include <algorithm>
#include <cassert>
#include <msgpack.hpp>
#include <tuple>
#include <type_traits>
#include <utility>

#include "client/protocol.h"
#include "node/mutant.h"

namespace kv::node {

VersionVector::Entries::const_iterator VersionVector::lower(std::string_view actor) const {
    return std::lower_bound(entries_.begin(), entries_.end(), actor,
                            [](const auto& entry, std::string_view a) { return entry.first < a; });
}

uint64_t& VersionVector::counter_of(const std::string& actor) {
    auto it = entries_.begin() + (lower(actor) - entries_.cbegin());
    if (it == entries_.end() || it->first != actor) it = entries_.emplace(it, actor, 0);
    return it->second;
}

void VersionVector::erase_entry(const std::string& actor) {
    auto it = lower(actor);
    if (it != entries_.cend() && it->first == actor) entries_.erase(it);
}

uint64_t VersionVector::get(const std::string& actor) const {
    auto it = lower(actor);
    return it == entries_.cend() || it->first != actor ? 0 : it->second;
}

void VersionVector::raise(const std::string& actor, uint64_t counter) {
    if (counter > get(actor)) counter_of(actor) = counter;
}

void VersionVector::set(const std::string& actor, uint64_t counter) {
    exceptions_.erase(actor);
    if (counter == 0) {
        erase_entry(actor);
    } else {
        counter_of(actor) = counter;
    }
}

void VersionVector::add(const Dot& dot) {
    if (dot.counter == 0) return;
    const uint64_t highest = get(dot.actor);
    if (dot.counter > highest) {
        // Callers add the next dot of an actor (update) or dots below its
        // highest (decoding), so this gap is empty or small.
        for (uint64_t c = highest + 1; c < dot.counter; ++c) exceptions_[dot.actor].insert(c);
        counter_of(dot.actor) = dot.counter;
        return;
    }
    auto it = exceptions_.find(dot.actor);
    if (it == exceptions_.end()) return;
    it->second.erase(dot.counter);
    if (it->second.empty()) exceptions_.erase(it);
}

void VersionVector::remove(const Dot& dot) {
    if (dot.counter == 0 || !covers(dot)) return;
    uint64_t& highest = counter_of(dot.actor);
    if (dot.counter < highest) {
        exceptions_[dot.actor].insert(dot.counter);
        return;
    }
    // The highest goes: lower it past the exceptions just below it, so that
    // the entry stays the highest counter seen and exceptions stay below it.
    --highest;
    auto it = exceptions_.find(dot.actor);
    if (it != exceptions_.end()) {
        while (highest > 0 && it->second.erase(highest) == 1) --highest;
        if (it->second.empty()) exceptions_.erase(it);
    }
    if (highest == 0) erase_entry(dot.actor);
}

bool VersionVector::covers(const Dot& dot) const {
    if (get(dot.actor) < dot.counter) return false;
    auto it = exceptions_.find(dot.actor);
    return it == exceptions_.end() || it->second.count(dot.counter) == 0;
}

size_t VersionVector::exception_count() const {
    size_t count = 0;
    for (const auto& [actor, counters] : exceptions_) count += counters.size();
    return count;
}

bool VersionVector::descends(const VersionVector& other) const {
    for (const auto& [actor, counter] : other.entries_) {
        if (get(actor) < counter) return false;
        auto mine = exceptions_.find(actor);
        if (mine == exceptions_.end()) continue;
        for (uint64_t e : mine->second) {
            if (e > counter) break;
            if (other.covers(Dot{actor, e})) return false;
        }
    }
    return true;
}

void VersionVector::merge(const VersionVector& other) {
    // counter_of() below may insert into entries_, which would invalidate
    // the loop over other.entries_ were other this vector; merging a vector
    // with itself changes nothing, so it returns at once.
    if (&other == this) return;
    for (const auto& [actor, counter] : other.entries_) {
        // A dot stays unseen only when neither side has seen it.
        std::set<uint64_t> unseen;
        auto mine = exceptions_.find(actor);
        if (mine != exceptions_.end()) {
            for (uint64_t e : mine->second) {
                if (!other.covers(Dot{actor, e})) unseen.insert(e);
            }
        }
        auto theirs = other.exceptions_.find(actor);
        if (theirs != other.exceptions_.end()) {
            for (uint64_t e : theirs->second) {
                if (!covers(Dot{actor, e})) unseen.insert(e);
            }
        }
        uint64_t& highest = counter_of(actor);
        highest = std::max(highest, counter);
        if (unseen.empty()) {
            exceptions_.erase(actor);
        } else {
            exceptions_[actor] = std::move(unseen);
        }
    }
}

std::vector<std::string> Object::live_values() const {
    std::vector<std::string> values;
    for (const auto& s : siblings) {
        if (s.value) values.push_back(*s.value);
    }
    return values;
}

size_t Object::live_count() const {
    return static_cast<size_t>(std::count_if(siblings.begin(), siblings.end(),
                                             [](const Sibling& s) { return s.value.has_value(); }));
}

size_t Object::encoded_size_bound() const {
    // msgpack headers are at most 9 bytes per element; a dot is actor + u64.
    size_t bytes = 16;
    for (const auto& [actor, counter] : context.entries()) bytes += actor.size() + 20;
    bytes += context.exceptions().size() * 5 + context.exception_count() * 9;
    for (const auto& s : siblings)
        bytes += s.dot.actor.size() + 30 + (s.value ? s.value->size() : 0);
    return bytes;
}

namespace {

// Compares a sibling's dot with a dot either way round: the search below
// needs no Sibling built for the dot it looks for (a copy of its actor id,
// an allocation past 15 bytes, at every superseded sibling a merge meets).
struct DotOrder {
    bool operator()(const Sibling& x, const Dot& y) const { return x.dot < y; }
    bool operator()(const Dot& x, const Sibling& y) const { return x < y.dot; }
};

bool holds_dot(const Object& o, const Dot& dot) {
    return std::binary_search(o.siblings.begin(), o.siblings.end(), dot, DotOrder{});
}

// Siblings of `from` that `other` has not seen superseded: copied from a
// const vector, moved from one the caller gives up.
template <typename Siblings>
void keep_survivors(Siblings& from, const Object& other, std::vector<Sibling>& out) {
    for (auto& s : from) {
        bool survives = !other.context.covers(s.dot) || holds_dot(other, s.dot);
#ifdef KV_MUTANTS
        // Planted (node/mutant.h): superseded siblings survive a merge;
        // no-resurrection must catch it.
        if (KV_MUTANT(merge_ignores_context)) survives = true;
#endif
        if (!survives) continue;
        if constexpr (std::is_const_v<Siblings>) {
            out.push_back(s);
        } else {
            out.push_back(std::move(s));
        }
    }
}

// Up to this many siblings are sorted by insertion: std::stable_sort takes a
// buffer from the heap even for two, and a key's siblings are usually one or
// two runs of a few, already sorted (a merge's survivors of each side).
constexpr size_t kInsertionSortMax = 32;

void sort_unique(std::vector<Sibling>& siblings) {
    if (siblings.size() < 2) return;
    const auto by_dot = [](const Sibling& x, const Sibling& y) { return x.dot < y.dot; };
    if (siblings.size() <= kInsertionSortMax) {
        // Stable, as std::stable_sort: of equal dots, the first stays first.
        for (size_t i = 1; i < siblings.size(); ++i) {
            if (!by_dot(siblings[i], siblings[i - 1])) continue;
            Sibling moving = std::move(siblings[i]);
            size_t j = i;
            do {
                siblings[j] = std::move(siblings[j - 1]);
                --j;
            } while (j > 0 && by_dot(moving, siblings[j - 1]));
            siblings[j] = std::move(moving);
        }
    } else {
        std::stable_sort(siblings.begin(), siblings.end(), by_dot);
    }
    siblings.erase(std::unique(siblings.begin(), siblings.end(),
                               [](const Sibling& x, const Sibling& y) { return x.dot == y.dot; }),
                   siblings.end());
}

}  // namespace

namespace {
void lww_if_planted([[maybe_unused]] Object& out) {
#ifdef KV_MUTANTS
    // Planted (node/mutant.h): last write wins, by the largest counter; the
    // concurrent siblings are dropped and no-lost-write must catch it.
    if (KV_MUTANT(lww_merge) && out.siblings.size() > 1) {
        auto last = std::max_element(
            out.siblings.begin(), out.siblings.end(), [](const Sibling& x, const Sibling& y) {
                return std::tie(x.dot.counter, x.dot.actor) < std::tie(y.dot.counter, y.dot.actor);
            });
        out.siblings = {*last};
    }
#endif
}
}  // namespace

Object merge(const Object& a, const Object& b) {
    Object out;
    out.context = a.context;
    out.context.merge(b.context);
    out.siblings.reserve(a.siblings.size() + b.siblings.size());
    keep_survivors(a.siblings, b, out.siblings);
    keep_survivors(b.siblings, a, out.siblings);
    sort_unique(out.siblings);
    lww_if_planted(out);
    return out;
}

Object merge(const Object& a, Object&& b) {
    assert(&a != &b);  // b is emptied while a is read
    Object out;
    out.siblings.reserve(a.siblings.size() + b.siblings.size());
    // a's survivors first, while b is whole (they are judged against it),
    // then b's, moved; the union of the contexts is the same either way round.
    keep_survivors(a.siblings, b, out.siblings);
    keep_survivors(b.siblings, a, out.siblings);
    sort_unique(out.siblings);
    out.context = std::move(b.context);
    out.context.merge(a.context);
    lww_if_planted(out);
    return out;
}

Result<Object> update(Object local, const VersionVector& seen, const std::string& actor,
                      std::optional<std::string> value, size_t siblings_max,
                      size_t object_bytes_max, uint64_t counter_floor) {
    // One past anything this actor ever minted for the key, even if `seen`
    // claims more: dots must stay unique per actor.
    const uint64_t highest = std::max({local.context.get(actor), seen.get(actor), counter_floor});
    Object out;
    out.siblings.reserve(local.siblings.size() + 1);
    for (auto& s : local.siblings) {
        if (!seen.covers(s.dot)) out.siblings.push_back(std::move(s));
    }
    out.context = std::move(local.context);
    out.context.merge(seen);
    if (highest >= kCounterMax) {
        return Status(ErrorCode::bad_context,
                      "the context's counter for this replica is at its limit; pass back the "
                      "context a get returned");
    }
    uint64_t counter = highest + 1;
#ifdef KV_MUTANTS
    // Planted (node/mutant.h): the dot of the previous write is minted again, so
    // two writes share it and merges keep either; no-lost-write and convergence
    // must catch it.
    if (KV_MUTANT(dot_reused) && highest > 0) counter = highest;
#endif
    out.siblings.push_back(Sibling{Dot{actor, counter}, std::move(value)});
    out.context.add(out.siblings.back().dot);
    sort_unique(out.siblings);
    if (out.siblings.size() > siblings_max) {
        return Status(ErrorCode::sibling_limit,
                      "the write would leave " + std::to_string(out.siblings.size()) +
                          " siblings, more than the limit of " + std::to_string(siblings_max) +
                          "; read the key and write with its context to resolve them");
    }
    if (out.encoded_size_bound() > object_bytes_max) {
        return Status(ErrorCode::object_too_large,
                      "the key's siblings would exceed " + std::to_string(object_bytes_max) +
                          " bytes; resolve siblings by writing with the context");
    }
    return out;
}

VersionVector writer_context(const Object& written, const VersionVector& seen, const Dot& minted) {
    VersionVector out = written.context;
    for (const auto& s : written.siblings) {
        if (s.dot != minted && !seen.covers(s.dot)) out.remove(s.dot);
    }
    return out;
}

ReadView read_view(const Object& object, size_t values_max) {
    ReadView view;
    std::optional<VersionVector> narrowed;  // only when a sibling is held back
    for (const auto& s : object.siblings) {
        if (!s.value) continue;
        ++view.live;
        if (view.values.size() < values_max) {
            view.values.push_back(*s.value);
        } else {
            if (!narrowed) narrowed = object.context;
            narrowed->remove(s.dot);
        }
    }
    const VersionVector& context = narrowed ? *narrowed : object.context;
    if (!context.empty()) view.context = encode_context(context);
    if (view.live > view.values.size()) {
        view.held_back = "the key has " + std::to_string(view.live) +
                         " siblings, more than the limit: " + std::to_string(view.values.size()) +
                         " returned; put their resolution with this context, then get again "
                         "for the rest";
    }
    return view;
}

namespace {

template <class Stream>
void pack_vv(msgpack::packer<Stream>& pk, const VersionVector& vv) {
    pk.pack_array(static_cast<uint32_t>(vv.entries().size()));
    for (const auto& [actor, counter] : vv.entries()) {
        // [actor, highest] or, with unseen counters below it, [actor, highest,
        // [unseen ascending]]: the two-item form is the encoding contexts had
        // before exceptions, so stored objects and old contexts still decode.
        auto unseen = vv.exceptions().find(actor);
        const bool has_unseen = unseen != vv.exceptions().end();
        pk.pack_array(has_unseen ? 3 : 2);
        pk.pack_str(static_cast<uint32_t>(actor.size()));
        pk.pack_str_body(actor.data(), static_cast<uint32_t>(actor.size()));
        pk.pack_uint64(counter);
        if (has_unseen) {
            pk.pack_array(static_cast<uint32_t>(unseen->second.size()));
            for (uint64_t e : unseen->second) pk.pack_uint64(e);
        }
    }
}

// Limits for decoding node-made encodings, which still arrive over the network
// (object.h, "The decode budget").
constexpr size_t kActorsMax = kDecodeActorsMax;
constexpr size_t kActorBytesMax = proto::kIdBytesMax;
constexpr size_t kSiblingsDecodeMax = kDecodeSiblingsMax;
constexpr size_t kExceptionsDecodeMax = kDecodeExceptionsMax;

// Decoding reads the input once, in place, with a cursor that knows only the
// msgpack types objects and contexts use (arrays, str, bin, nil, integers),
// and builds the result as it goes: no msgpack::object tree, no zone, no
// pre-pass. Every count is checked against the limits above, and against the
// bytes left, before anything is reserved for it, so a few header bytes
// cannot claim memory (a 16 MiB object of nested empty arrays once cost 536 MB
// through msgpack::unpack). Accepts exactly what the msgpack-object decoder it
// replaced accepted (tests/unit/object_test.cpp compares the two).
class Reader {
  public:
    explicit Reader(std::string_view in)
        : at_(reinterpret_cast<const uint8_t*>(in.data())), end_(at_ + in.size()) {}

    bool at_end() const { return at_ == end_; }
    size_t left() const { return static_cast<size_t>(end_ - at_); }

    // An array header; its item count in `items`.
    bool array(uint32_t& items) {
        if (at_ == end_) return false;
        const uint8_t tag = *at_;
        if (tag >= 0x90 && tag <= 0x9f) {
            ++at_;
            items = tag & 0x0f;
            return true;
        }
        if (tag == 0xdc && big_endian(1, 2, items)) return shortest_if(items > 0x0f);
        if (tag == 0xdd && big_endian(1, 4, items)) return shortest_if(items > 0xffff);
        return false;
    }
    // A str of at most `max` bytes, as a view into the input.
    bool str(std::string_view& out, size_t max) {
        if (at_ == end_) return false;
        const uint8_t tag = *at_;
        if (tag >= 0xa0 && tag <= 0xbf) {
            ++at_;
            return body(tag & 0x1f, max, out);
        }
        return sized_body(0xd9, 0x1f, max, out);  // str8, str16, str32
    }
    // A bin of at most `max` bytes (a view into the input), or nil (nullopt).
    bool bin_or_nil(std::optional<std::string_view>& out, size_t max) {
        if (at_ == end_) return false;
        if (*at_ == 0xc0) {
            ++at_;
            out.reset();
            return true;
        }
        std::string_view bytes;
        if (!sized_body(0xc4, 0, max, bytes)) return false;  // bin8, bin16, bin32
        out = bytes;
        return true;
    }
    // An integer of any msgpack width whose value is not negative (msgpack-c
    // reads a signed format holding one as a positive integer too).
    bool uint(uint64_t& out) {
        if (at_ == end_) return false;
        const uint8_t tag = *at_;
        if (tag <= 0x7f) {
            ++at_;
            out = tag;
            return true;
        }
        if (tag >= 0xcc && tag <= 0xcf) {
            const unsigned w = tag - 0xcc;
            uint64_t v = 0;
            if (!big_endian(1, size_t{1} << w, v)) return false;
            out = v;
            // The shortest: above what the next narrower form holds.
            constexpr uint64_t kNarrowerMax[] = {0x7f, 0xff, 0xffff, 0xffffffff};
            return shortest_if(v > kNarrowerMax[w]);
        }
        if (tag >= 0xd0 && tag <= 0xd3) {
            const size_t width = size_t{1} << (tag - 0xd0);
            if (left() < 1 + width || (at_[1] & 0x80) != 0) return false;  // negative
            uint64_t v = 0;
            if (!big_endian(1, width, v)) return false;
            out = v;
            return shortest_if(false);  // encode_object writes unsigned forms
        }
        return false;
    }

    // True while every item read so far was in the form encode_object writes
    // (msgpack-c's packer: the shortest form of each type); such an encoding
    // is the one encode_object makes of what it decodes to.
    bool shortest() const { return shortest_; }

  private:
    // Reads a `width`-byte big-endian number after `skip` tag bytes.
    template <typename T>
    bool big_endian(size_t skip, size_t width, T& out) {
        if (left() < skip + width) return false;
        uint64_t v = 0;
        for (size_t i = 0; i < width; ++i) v = (v << 8) | at_[skip + i];
        at_ += skip + width;
        out = static_cast<T>(v);
        return true;
    }
    // A body whose length is 1, 2 or 4 bytes after a tag of `tag8`,
    // `tag8 + 1` or `tag8 + 2` (msgpack's 8, 16 and 32-bit forms); a fixed
    // form (fixstr) holds sizes up to `fixed_max` (0: none, as bin).
    bool sized_body(uint8_t tag8, uint32_t fixed_max, size_t max, std::string_view& out) {
        const uint8_t tag = *at_;
        if (tag < tag8 || tag > tag8 + 2) return false;
        const unsigned w = tag - tag8;
        uint32_t size = 0;
        if (!big_endian(1, size_t{1} << w, size) || !body(size, max, out)) return false;
        const uint32_t narrower_max[] = {fixed_max, 0xff, 0xffff};
        return shortest_if(size > narrower_max[w] || (w == 0 && fixed_max == 0));
    }
    bool shortest_if(bool shortest) {
        shortest_ = shortest_ && shortest;
        return true;
    }
    bool body(uint32_t size, size_t max, std::string_view& out) {
        if (size > max || size > left()) return false;
        out = std::string_view(reinterpret_cast<const char*>(at_), size);
        at_ += size;
        return true;
    }

    const uint8_t* at_;
    const uint8_t* end_;
    bool shortest_ = true;
};

// The smallest encoding of a sibling: [str, uint, nil] with a 1-byte actor.
constexpr size_t kSiblingBytesMin = 5;

bool read_vv(Reader& in, VersionVector& vv) {
    uint32_t actors = 0;
    if (!in.array(actors) || actors > kActorsMax) return false;
    // One allocation for the entries, not one each time the vector grows;
    // bounded by the bytes left, as each entry takes at least 3.
    vv.reserve(std::min<size_t>(actors, in.left() / 3));
    std::string_view prev;
    size_t unseen_total = 0;
    for (uint32_t i = 0; i < actors; ++i) {
        uint32_t items = 0;
        if (!in.array(items) || (items != 2 && items != 3)) return false;
        std::string_view actor_bytes;
        if (!in.str(actor_bytes, kActorBytesMax) || actor_bytes.empty()) return false;
        uint64_t counter = 0;
        if (!in.uint(counter)) return false;
        if (counter == 0 || counter > kCounterMax) return false;
        if (i > 0 && actor_bytes <= prev) return false;  // canonical: sorted, unique
        const std::string actor(actor_bytes);
        vv.set(actor, counter);
        if (items == 3) {
            // Canonical: non-empty, ascending, each below the highest.
            uint32_t unseen = 0;
            if (!in.array(unseen) || unseen == 0) return false;
            unseen_total += unseen;
            if (unseen_total > kExceptionsDecodeMax || unseen > in.left()) return false;
            uint64_t last = 0;
            for (uint32_t j = 0; j < unseen; ++j) {
                uint64_t c = 0;
                if (!in.uint(c)) return false;
                if (c <= last || c >= counter) return false;
                last = c;
                vv.remove(Dot{actor, last});
            }
        }
        prev = actor_bytes;
    }
    return true;
}

// An object's sibling count, within the limits and the bytes left.
bool read_sibling_count(Reader& in, uint32_t& siblings) {
    return in.array(siblings) && siblings <= kSiblingsDecodeMax &&
           siblings <= in.left() / kSiblingBytesMin;
}

// One sibling, [actor, counter, value or nil], viewed in place (the dot's
// own checks are the caller's).
bool read_sibling(Reader& in, std::string_view& actor, uint64_t& counter,
                  std::optional<std::string_view>& value) {
    uint32_t items = 0;
    return in.array(items) && items == 3 && in.str(actor, kActorBytesMax) && !actor.empty() &&
           in.uint(counter) && in.bin_or_nil(value, proto::kValueBytesMax);
}

// Encodings are packed into a buffer each thread reuses and then copied out at
// their exact size: one allocation per encoding, where a fresh msgpack::sbuffer
// allocated 8 KiB, and the copy out of it a second block. The buffer keeps at
// most kEncodeScratchKeptBytes between encodings: an object may encode to
// kObjectBytesMax, which no thread should hold on to for the rare big one.
constexpr size_t kEncodeScratchKeptBytes = 64 * 1024;

struct ScratchSink {
    std::string& bytes;
    void write(const char* data, size_t size) { bytes.append(data, size); }
};

std::string& encode_scratch() {
    thread_local std::string scratch;
    scratch.clear();
    return scratch;
}

// The encoding at its size; the scratch is released if it grew past what it keeps.
std::string take_encoding(std::string& scratch) {
    std::string out = scratch;
    if (scratch.capacity() > kEncodeScratchKeptBytes) std::string().swap(scratch);
    return out;
}

}  // namespace

size_t object_decode_bytes_max(size_t input_bytes) {
    // The decoder reads the input in place and allocates only the Object:
    // each byte string once (the input bounds them), and fixed costs, each
    // above what the allocator hands out for it: a Sibling (its actor and
    // value bytes are counted with the input); a std::set node of an unseen
    // counter; a std::map node of an actor (twice: entries and exceptions).
    // The smallest encodings of each: 5 bytes per sibling ([str, uint, nil]
    // with a 1-byte actor), 1 per unseen counter and 4 per actor.
    constexpr size_t kPerSibling = sizeof(Sibling) + 16;
    constexpr size_t kPerException = 64;
    constexpr size_t kPerActor = 256;
    const size_t s = input_bytes;
    return 2 * s + kPerSibling * std::min(s / kSiblingBytesMin, kSiblingsDecodeMax) +
           kPerException * std::min(s, kExceptionsDecodeMax) +
           kPerActor * std::min(s / 4, kActorsMax) + 64 * 1024;
}

std::string encode_object(const Object& object) {
    std::string& buf = encode_scratch();
    ScratchSink sink{buf};
    msgpack::packer<ScratchSink> pk(sink);
    pk.pack_array(2);
    pack_vv(pk, object.context);
    pk.pack_array(static_cast<uint32_t>(object.siblings.size()));
    for (const auto& s : object.siblings) {
        pk.pack_array(3);
        pk.pack_str(static_cast<uint32_t>(s.dot.actor.size()));
        pk.pack_str_body(s.dot.actor.data(), static_cast<uint32_t>(s.dot.actor.size()));
        pk.pack_uint64(s.dot.counter);
        if (s.value) {
            pk.pack_bin(static_cast<uint32_t>(s.value->size()));
            pk.pack_bin_body(s.value->data(), static_cast<uint32_t>(s.value->size()));
        } else {
            pk.pack_nil();
        }
    }
    return take_encoding(buf);
}

Result<Object> decode_object(std::string_view bytes) {
    if (bytes.size() > proto::kObjectBytesMax) {
        return Status(ErrorCode::object_too_large, "object exceeds its size limit");
    }
    const Status bad(ErrorCode::bad_request, "malformed object");
    Reader in(bytes);
    uint32_t items = 0;
    if (!in.array(items) || items != 2) return bad;
    Object out;
    if (!read_vv(in, out.context)) return bad;
    uint32_t siblings = 0;
    if (!read_sibling_count(in, siblings)) return bad;
    out.siblings.reserve(siblings);
    for (uint32_t i = 0; i < siblings; ++i) {
        std::string_view actor;
        uint64_t counter = 0;
        std::optional<std::string_view> value;
        if (!read_sibling(in, actor, counter, value)) return bad;
        Sibling s{Dot{std::string(actor), counter}, std::nullopt};
        if (value) s.value.emplace(*value);
        // Counters start at 1: a zero dot is "covered" by every context, so a
        // merge with any other object would silently drop it.
        if (s.dot.counter == 0 || !out.context.covers(s.dot)) return bad;
        if (!out.siblings.empty() && !(out.siblings.back().dot < s.dot)) return bad;
        out.siblings.push_back(std::move(s));
    }
    if (!in.at_end()) return Status(ErrorCode::bad_request, "trailing bytes");
    return out;
}

namespace {

// An object's encoding read where it lies, for what can be answered without
// building an Object (its siblings, dots, values and version vector each an
// allocation).
struct EncodedObject {
    struct Entry {
        std::string_view actor;
        uint64_t counter = 0;
    };
    struct EncodedSibling {
        std::string_view actor;
        uint64_t counter = 0;
        std::optional<std::string_view> value;
    };
    std::string_view context;              // the context's own bytes
    std::vector<Entry> entries;            // sorted by actor; no unseen counters
    std::vector<EncodedSibling> siblings;  // in dot order
    size_t live = 0;
    bool shortest = true;  // in encode_object's forms: the bytes it makes of the object

    bool tombstones_only() const { return !siblings.empty() && live == 0; }
    // Empty, as an absent object; buffers past a few hundred items freed (a
    // thread keeps these between requests, and one object may hold 64 Ki
    // siblings).
    void clear() {
        constexpr size_t kKeptItems = 256;
        if (entries.capacity() > kKeptItems) std::vector<Entry>().swap(entries);
        if (siblings.capacity() > kKeptItems) std::vector<EncodedSibling>().swap(siblings);
        entries.clear();
        siblings.clear();
        context = {};
        live = 0;
        shortest = true;
    }
    // The counter the context has seen of `actor` (0: none).
    uint64_t seen(std::string_view actor) const {
        auto e = std::lower_bound(entries.begin(), entries.end(), actor,
                                  [](const Entry& x, std::string_view a) { return x.actor < a; });
        return e != entries.end() && e->actor == actor ? e->counter : 0;
    }
    bool covers(std::string_view actor, uint64_t counter) const { return counter <= seen(actor); }
    // The sibling with this dot (null: none).
    const EncodedSibling* find(std::string_view actor, uint64_t counter) const {
        auto s = std::lower_bound(siblings.begin(), siblings.end(), std::tie(actor, counter),
                                  [](const EncodedSibling& x, const auto& dot) {
                                      return std::tie(x.actor, x.counter) < dot;
                                  });
        return s != siblings.end() && s->actor == actor && s->counter == counter ? &*s : nullptr;
    }
    bool holds(std::string_view actor, uint64_t counter) const {
        return find(actor, counter) != nullptr;
    }
    // This context has seen everything `other`'s has.
    bool descends(const EncodedObject& other) const {
        for (const Entry& e : other.entries) {
            if (seen(e.actor) < e.counter) return false;
        }
        return true;
    }
};

// Reads `bytes` into `out` (its buffers reused), checking what decode_object
// checks. False when it cannot be read so: whatever decode_object refuses
// (whose errors the caller gets by decoding), and a context with unseen
// counters (which covers() above does not know).
bool read_encoded(std::string_view bytes, EncodedObject& out) {
    out.clear();
    if (bytes.size() > proto::kObjectBytesMax) return false;
    Reader in(bytes);
    uint32_t items = 0;
    if (!in.array(items) || items != 2) return false;
    const size_t context_at = bytes.size() - in.left();
    uint32_t actors = 0;
    if (!in.array(actors) || actors > kActorsMax) return false;
    for (uint32_t i = 0; i < actors; ++i) {
        if (!in.array(items) || items != 2) return false;  // 3: unseen counters
        std::string_view actor;
        uint64_t counter = 0;
        if (!in.str(actor, kActorBytesMax) || actor.empty() || !in.uint(counter)) return false;
        if (counter == 0 || counter > kCounterMax) return false;
        if (i > 0 && actor <= out.entries.back().actor) return false;  // canonical: sorted, unique
        out.entries.push_back({actor, counter});
    }
    out.context = bytes.substr(context_at, bytes.size() - in.left() - context_at);
    uint32_t siblings = 0;
    if (!read_sibling_count(in, siblings)) return false;
    for (uint32_t i = 0; i < siblings; ++i) {
        EncodedObject::EncodedSibling s;
        if (!read_sibling(in, s.actor, s.counter, s.value)) return false;
        // Covered by the context, and after the sibling before it in dot order.
        if (s.counter == 0 || !out.covers(s.actor, s.counter)) return false;
        if (i > 0) {
            const auto& prev = out.siblings.back();
            if (!(std::tie(prev.actor, prev.counter) < std::tie(s.actor, s.counter))) return false;
        }
        if (s.value) ++out.live;
        out.siblings.push_back(s);
    }
    out.shortest = in.shortest();
    return in.at_end();
}

// Per thread, reused: the encodings read on the request path.
EncodedObject& encoded_scratch(size_t which) {
    thread_local EncodedObject scratch[2];
    return scratch[which];
}

}  // namespace

Result<ReadView> read_view_of_encoded(std::string_view bytes, size_t values_max) {
    EncodedObject& object = encoded_scratch(0);
    // Unseen counters, held-back siblings (the context must be narrowed,
    // which read_view does), or bytes decode_object refuses (its errors).
    if (!read_encoded(bytes, object) || object.live > values_max) {
        auto decoded = decode_object(bytes);
        if (!decoded) return decoded.status();
        return read_view(decoded.value(), values_max);
    }
    ReadView view;
    view.live = object.live;
    view.values.reserve(object.live);
    for (const auto& s : object.siblings) {
        if (s.value) view.values.emplace_back(*s.value);
    }
    if (!object.entries.empty()) view.context.assign(object.context);
    return view;
}

EncodedMerge merge_of_encoded(std::optional<std::string_view> stored, std::string_view incoming) {
#ifdef KV_MUTANTS
    // The planted merge bugs live in merge(): it must run.
    if (KV_MUTANT(lww_merge) || KV_MUTANT(merge_ignores_context)) return {};
#endif
    EncodedObject& in = encoded_scratch(0);
    EncodedObject& at = encoded_scratch(1);
    if (!read_encoded(incoming, in)) return {};
    if (stored) {
        if (!read_encoded(*stored, at)) return {};
    } else {
        at.clear();
    }
    EncodedMerge out;
    out.stored_tombstones_only = at.tombstones_only();
    // merge(at, in) keeps a sibling of one side unless the other side's
    // context covers its dot and the other side does not hold it.
    const auto survives = [](const EncodedObject& other, const auto& s) {
        return !other.covers(s.actor, s.counter) || other.holds(s.actor, s.counter);
    };
    if (at.descends(in) && std::all_of(at.siblings.begin(), at.siblings.end(),
                                       [&](const auto& s) { return survives(in, s); })) {
        // Every sibling of `in` is covered by at's context, so it survives
        // only as one `at` holds: the union is `at`.
        out.result = EncodedMerge::Result::stored;
        return out;
    }
    // The union is `in` when at's context adds nothing, each of in's siblings
    // survives, and at's siblings that survive (those `in` holds) are in's:
    // merge keeps the stored copy of a dot both hold, so their values must
    // be the same bytes (they are, while a dot names one write; a peer that
    // broke that gets what merge gives).
    const auto same_in_incoming = [&](const auto& s) {
        const auto* other = in.find(s.actor, s.counter);
        return other == nullptr || other->value == s.value;
    };
    if (in.shortest && in.descends(at) &&
        std::all_of(in.siblings.begin(), in.siblings.end(),
                    [&](const auto& s) { return survives(at, s); }) &&
        std::all_of(at.siblings.begin(), at.siblings.end(), same_in_incoming)) {
        out.result = EncodedMerge::Result::incoming;
        out.incoming_tombstones_only = in.tombstones_only();
    }
    return out;
}

std::string encode_context(const VersionVector& context) {
    std::string& buf = encode_scratch();
    ScratchSink sink{buf};
    msgpack::packer<ScratchSink> pk(sink);
    pack_vv(pk, context);
    return take_encoding(buf);
}

Result<VersionVector> decode_context(std::string_view bytes) {
    if (bytes.size() > proto::kContextBytesMax) {
        return Status(ErrorCode::bad_context, "context exceeds its size limit");
    }
    Reader in(bytes);
    VersionVector vv;
    if (!read_vv(in, vv) || !in.at_end()) {
        return Status(
            ErrorCode::bad_context,
            "the context is not one this store issued; pass back the context a get returned");
    }
    return vv;
}

}  // namespace kv::node
