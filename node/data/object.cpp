#include "node/data/object.h"

#include <algorithm>
#include <msgpack.hpp>
#include <tuple>

#include "client/protocol.h"
#include "client/zone_lease.h"
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

bool holds_dot(const Object& o, const Dot& dot) {
    return std::binary_search(o.siblings.begin(), o.siblings.end(), Sibling{dot, std::nullopt},
                              [](const Sibling& x, const Sibling& y) { return x.dot < y.dot; });
}

// Siblings of `from` that `other` has not seen superseded.
void keep_survivors(const Object& from, const Object& other, std::vector<Sibling>& out) {
    for (const auto& s : from.siblings) {
#ifdef KV_MUTANTS
        // Planted (node/mutant.h): superseded siblings survive a merge;
        // no-resurrection must catch it.
        if (KV_MUTANT(merge_ignores_context)) {
            out.push_back(s);
            continue;
        }
#endif
        if (!other.context.covers(s.dot) || holds_dot(other, s.dot)) out.push_back(s);
    }
}

void sort_unique(std::vector<Sibling>& siblings) {
    std::stable_sort(siblings.begin(), siblings.end(),
                     [](const Sibling& x, const Sibling& y) { return x.dot < y.dot; });
    siblings.erase(std::unique(siblings.begin(), siblings.end(),
                               [](const Sibling& x, const Sibling& y) { return x.dot == y.dot; }),
                   siblings.end());
}

}  // namespace

Object merge(const Object& a, const Object& b) {
    Object out;
    out.context = a.context;
    out.context.merge(b.context);
    out.siblings.reserve(a.siblings.size() + b.siblings.size());
    keep_survivors(a, b, out.siblings);
    keep_survivors(b, a, out.siblings);
    sort_unique(out.siblings);
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
    return out;
}

Result<Object> update(const Object& local, const VersionVector& seen, const std::string& actor,
                      std::optional<std::string> value, size_t siblings_max,
                      size_t object_bytes_max, uint64_t counter_floor) {
    Object out;
    for (const auto& s : local.siblings) {
        if (!seen.covers(s.dot)) out.siblings.push_back(s);
    }
    out.context = local.context;
    out.context.merge(seen);
    // One past anything this actor ever minted for the key, even if `seen`
    // claims more: dots must stay unique per actor.
    const uint64_t highest = std::max({local.context.get(actor), seen.get(actor), counter_floor});
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
    out.context.add(Dot{actor, counter});
    out.siblings.push_back(Sibling{Dot{actor, counter}, std::move(value)});
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
    view.context = object.context;
    for (const auto& s : object.siblings) {
        if (!s.value) continue;
        ++view.live;
        if (view.values.size() < values_max) {
            view.values.push_back(*s.value);
        } else {
            view.context.remove(s.dot);
        }
    }
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

// Deepest legal nesting: object -> context -> entry -> unseen counters.
constexpr size_t kDepthMax = 4;
// The msgpack objects (array items) of the largest object the limits allow:
// the root's 2, per actor its entry and the entry's 3 items, the unseen
// counters, per sibling its array and 3 items.
constexpr size_t kObjectsDecodeMax =
    2 + kActorsMax * 4 + kExceptionsDecodeMax + kSiblingsDecodeMax * 4;

// The allocation-free pre-pass (as client/wire_codec.cpp's FrameScan): msgpack
// allocates an array's items when it reads the array's header, before the
// items arrive, so without it a few header bytes claim megabytes (a 16 MiB
// object of nested empty arrays cost 536 MB). The walk checks the input is
// whole, counts every array item against kObjectsDecodeMax and refuses maps
// (objects and contexts have none); only then does unpack allocate.
class BudgetScan : public msgpack::null_visitor {
  public:
    bool start_array(uint32_t items) {
        if (++depth_ > kDepthMax) return false;
        objects_ += items;
        return objects_ <= kObjectsDecodeMax;
    }
    bool end_array() {
        --depth_;
        return true;
    }
    bool start_map(uint32_t) { return false; }
    bool visit_str(const char*, uint32_t size) { return size <= kActorBytesMax; }
    bool visit_bin(const char*, uint32_t size) { return size <= proto::kValueBytesMax; }
    bool visit_ext(const char*, uint32_t) { return false; }
    void parse_error(size_t, size_t) {}
    void insufficient_bytes(size_t, size_t) {}

  private:
    size_t depth_ = 0;
    size_t objects_ = 0;
};

msgpack::unpack_limit decode_limits() {
    return msgpack::unpack_limit(/*array=*/kSiblingsDecodeMax, /*map=*/0,
                                 /*str=*/kActorBytesMax, /*bin=*/proto::kValueBytesMax,
                                 /*ext=*/0, /*depth=*/kDepthMax);
}

// Zero-copy: str and bin objects point into the input, which outlives the
// handle (decode_object and decode_context copy what they keep).
bool reference_input(msgpack::type::object_type, size_t, void*) {
    return true;
}

bool read_str(const msgpack::object& o, std::string& out) {
    if (o.type != msgpack::type::STR) return false;
    out.assign(o.via.str.ptr, o.via.str.size);
    return true;
}

bool read_vv(const msgpack::object& o, VersionVector& vv) {
    if (o.type != msgpack::type::ARRAY || o.via.array.size > kActorsMax) return false;
    std::string prev;
    size_t unseen_total = 0;
    for (uint32_t i = 0; i < o.via.array.size; ++i) {
        const auto& e = o.via.array.ptr[i];
        if (e.type != msgpack::type::ARRAY || (e.via.array.size != 2 && e.via.array.size != 3))
            return false;
        std::string actor;
        if (!read_str(e.via.array.ptr[0], actor) || actor.empty()) return false;
        if (e.via.array.ptr[1].type != msgpack::type::POSITIVE_INTEGER) return false;
        const uint64_t counter = e.via.array.ptr[1].via.u64;
        if (counter == 0 || counter > kCounterMax) return false;
        if (i > 0 && actor <= prev) return false;  // canonical: sorted, unique
        vv.set(actor, counter);
        if (e.via.array.size == 3) {
            // Canonical: non-empty, ascending, each below the highest.
            const auto& unseen = e.via.array.ptr[2];
            if (unseen.type != msgpack::type::ARRAY || unseen.via.array.size == 0) return false;
            unseen_total += unseen.via.array.size;
            if (unseen_total > kExceptionsDecodeMax) return false;
            uint64_t last = 0;
            for (uint32_t j = 0; j < unseen.via.array.size; ++j) {
                const auto& c = unseen.via.array.ptr[j];
                if (c.type != msgpack::type::POSITIVE_INTEGER) return false;
                if (c.via.u64 <= last || c.via.u64 >= counter) return false;
                last = c.via.u64;
                vv.remove(Dot{actor, last});
            }
        }
        prev = std::move(actor);
    }
    return true;
}

// Unpacks into `zone` (a ZoneLease's: the objects die with it).
Result<msgpack::object> unpack_all(msgpack::zone& zone, std::string_view bytes) {
    try {
        BudgetScan scan;
        size_t scanned = 0;
        if (!msgpack::parse(bytes.data(), bytes.size(), scanned, scan)) {
            return Status(ErrorCode::bad_request, "malformed, or beyond the decode budget");
        }
        if (scanned != bytes.size()) return Status(ErrorCode::bad_request, "trailing bytes");
        std::size_t offset = 0;
        msgpack::object root = msgpack::unpack(zone, bytes.data(), bytes.size(), offset,
                                               &reference_input, nullptr, decode_limits());
        if (offset != bytes.size()) return Status(ErrorCode::bad_request, "trailing bytes");
        return root;
    } catch (const std::exception& e) {
        return Status(ErrorCode::bad_request, std::string("undecodable: ") + e.what());
    }
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
    // Fixed costs, each above what the allocator hands out for it: a
    // msgpack::object; a Sibling (its actor and value bytes are counted with
    // the input); a std::set node of an unseen counter; a std::map node of an
    // actor (twice: entries and exceptions). The smallest encodings of each: 1
    // byte per object, 5 per sibling ([str, uint, nil] with a 1-byte actor), 1
    // per unseen counter and 4 per actor.
    constexpr size_t kPerObject = sizeof(msgpack::object);
    constexpr size_t kPerSibling = sizeof(Sibling) + 16;
    constexpr size_t kPerException = 64;
    constexpr size_t kPerActor = 256;
    const size_t s = input_bytes;
    return 2 * s + kPerObject * std::min(s, kObjectsDecodeMax) +
           kPerSibling * std::min(s / 5, kSiblingsDecodeMax) +
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
    ZoneLease lease;
    auto unpacked = unpack_all(lease.zone(), bytes);
    if (!unpacked) return unpacked.status();
    const msgpack::object& root = unpacked.value();
    const Status bad(ErrorCode::bad_request, "malformed object");
    if (root.type != msgpack::type::ARRAY || root.via.array.size != 2) return bad;
    Object out;
    if (!read_vv(root.via.array.ptr[0], out.context)) return bad;
    const auto& sibs = root.via.array.ptr[1];
    if (sibs.type != msgpack::type::ARRAY) return bad;
    // Exact: the pre-pass found every item in the input (no doubling growth).
    out.siblings.reserve(sibs.via.array.size);
    for (uint32_t i = 0; i < sibs.via.array.size; ++i) {
        const auto& e = sibs.via.array.ptr[i];
        if (e.type != msgpack::type::ARRAY || e.via.array.size != 3) return bad;
        Sibling s;
        if (!read_str(e.via.array.ptr[0], s.dot.actor) || s.dot.actor.empty()) return bad;
        if (e.via.array.ptr[1].type != msgpack::type::POSITIVE_INTEGER) return bad;
        s.dot.counter = e.via.array.ptr[1].via.u64;
        const auto& v = e.via.array.ptr[2];
        if (v.type == msgpack::type::BIN) {
            s.value.emplace(v.via.bin.ptr, v.via.bin.size);
        } else if (v.type != msgpack::type::NIL) {
            return bad;
        }
        // Counters start at 1: a zero dot is "covered" by every context, so a
        // merge with any other object would silently drop it.
        if (s.dot.counter == 0 || !out.context.covers(s.dot)) return bad;
        if (!out.siblings.empty() && !(out.siblings.back().dot < s.dot)) return bad;
        out.siblings.push_back(std::move(s));
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
    ZoneLease lease;
    auto unpacked = unpack_all(lease.zone(), bytes);
    VersionVector vv;
    if (!unpacked || !read_vv(unpacked.value(), vv)) {
        return Status(
            ErrorCode::bad_context,
            "the context is not one this store issued; pass back the context a get returned");
    }
    return vv;
}

}  // namespace kv::node
