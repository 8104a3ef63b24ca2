// A real kvnode under a storm of hostile frames: random garbage, every truncation
// of valid frames, unknown types, wrong versions, wrong field types, oversized
// keys, values and frames, hostile msgpack headers and multi-frame messages.
// Every frame must get exactly one error reply (with the documented code where
// the code is determined), and afterwards the node must still be alive, still
// hold what was written before, and still serve reads and writes.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include "client/protocol.h"
#include "tests/process/process_cluster.h"

namespace kv::test {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

constexpr uint64_t kGarbageSeed = 0x6b76'7374'6f72'6d31;  // printed on failure
constexpr size_t kGarbageFrames = 2000;
constexpr size_t kGarbageBytesMax = 300;
constexpr size_t kPipelineDepth = 200;  // frames in flight before collecting their replies
constexpr size_t kSurvivorKeys = 50;
constexpr size_t kMismatchesShown = 5;

const proto::Consistency kOne{proto::Level::one, 0, false};

// One group of bad frames that share an expectation about their replies.
struct Batch {
    explicit Batch(std::string label_text, std::optional<ErrorCode> expected_code = std::nullopt,
                   bool error_response_only_ = true)
        : label(std::move(label_text)),
          expected(expected_code),
          error_response_only(error_response_only_) {}
    std::string label;
    std::vector<std::string> frames;
    std::vector<uint64_t> ids;          // per frame: the id it carries, 0 when none
    std::optional<ErrorCode> expected;  // nullopt: any error code will do
    bool error_response_only = true;    // false: a typed response with the code also counts
    void add(std::string frame, uint64_t id = 0) {
        frames.push_back(std::move(frame));
        ids.push_back(id);
    }
};

// ---- valid frames to start from ---------------------------------------------------

std::vector<proto::Message> base_requests() {
    const std::string key = "base-key";
    proto::Consistency strict_two{proto::Level::one, 1, true};
    return {
        proto::GetRequest{next_request_id(), key, kOne, 0},
        proto::GetRequest{next_request_id(), key, strict_two, 500},
        proto::PutRequest{
            next_request_id(), key, "a value of moderate length, 42 bytes long", {}, kOne, 0},
        proto::PutRequest{next_request_id(), key, std::string(300, 'p'), "ctx", kOne, 250},
        proto::DelRequest{next_request_id(), key, {}, kOne, 0},
        proto::LocalGetRequest{next_request_id(), key},
        proto::StatusRequest{next_request_id()},
    };
}

std::vector<std::string> real_type_names() {
    std::vector<std::string> names;
    [&names]<size_t... I>(std::index_sequence<I...>) {
        (names.emplace_back(
             proto::type_name(proto::Message{std::variant_alternative_t<I, proto::Message>{}})),
         ...);
    }
    (std::make_index_sequence<std::variant_size_v<proto::Message>>{});
    return names;
}

// ---- msgpack surgery on valid frames --------------------------------------------------

std::string key_text(const msgpack::object& key) {
    if (key.type == msgpack::type::STR) return {key.via.str.ptr, key.via.str.size};
    return "?";
}

// A field inside a frame: indices of map entries / array items from the top.
struct FieldPath {
    std::vector<uint32_t> indices;
    std::string name;  // "key", "consistency.level", ...
    msgpack::type::object_type type;
};

void list_fields(const msgpack::object& obj, std::vector<uint32_t>& prefix,
                 const std::string& prefix_name, std::vector<FieldPath>& out) {
    auto visit = [&](uint32_t i, const msgpack::object& value, const std::string& name) {
        prefix.push_back(i);
        out.push_back({prefix, name, value.type});
        if (value.type == msgpack::type::MAP || value.type == msgpack::type::ARRAY) {
            list_fields(value, prefix, name, out);
        }
        prefix.pop_back();
    };
    const std::string dot = prefix_name.empty() ? "" : prefix_name + ".";
    if (obj.type == msgpack::type::MAP) {
        for (uint32_t i = 0; i < obj.via.map.size; ++i) {
            visit(i, obj.via.map.ptr[i].val, dot + key_text(obj.via.map.ptr[i].key));
        }
    } else if (obj.type == msgpack::type::ARRAY) {
        for (uint32_t i = 0; i < obj.via.array.size; ++i) {
            visit(i, obj.via.array.ptr[i], prefix_name + "[" + std::to_string(i) + "]");
        }
    }
}

using Replacement = std::function<void(Packer&)>;

// Packs `obj` with the value at `path` replaced.
void pack_replaced(Packer& pk, const msgpack::object& obj, std::span<const uint32_t> path,
                   const Replacement& replacement) {
    if (path.empty()) {
        replacement(pk);
        return;
    }
    if (obj.type == msgpack::type::MAP) {
        pk.pack_map(obj.via.map.size);
        for (uint32_t i = 0; i < obj.via.map.size; ++i) {
            pk.pack(obj.via.map.ptr[i].key);
            if (i == path[0]) {
                pack_replaced(pk, obj.via.map.ptr[i].val, path.subspan(1), replacement);
            } else {
                pk.pack(obj.via.map.ptr[i].val);
            }
        }
    } else {
        pk.pack_array(obj.via.array.size);
        for (uint32_t i = 0; i < obj.via.array.size; ++i) {
            if (i == path[0]) {
                pack_replaced(pk, obj.via.array.ptr[i], path.subspan(1), replacement);
            } else {
                pk.pack(obj.via.array.ptr[i]);
            }
        }
    }
}

std::string replaced(const msgpack::object& frame, const std::vector<uint32_t>& path,
                     const Replacement& replacement) {
    msgpack::sbuffer buffer;
    Packer pk(buffer);
    pack_replaced(pk, frame, path, replacement);
    return {buffer.data(), buffer.size()};
}

std::optional<std::vector<uint32_t>> top_field(const msgpack::object& frame,
                                               const std::string& name) {
    for (uint32_t i = 0; i < frame.via.map.size; ++i) {
        if (key_text(frame.via.map.ptr[i].key) == name) return std::vector<uint32_t>{i};
    }
    return std::nullopt;
}

// Values of a type the field does not have; nil is never used, since an optional
// field may legitimately read nil as absent.
std::vector<Replacement> wrong_values_for(msgpack::type::object_type type) {
    const Replacement as_int = [](Packer& pk) { pk.pack(7); };
    const Replacement as_str = [](Packer& pk) { pk.pack(std::string("seven")); };
    const Replacement as_array = [](Packer& pk) { pk.pack_array(0); };
    switch (type) {
        case msgpack::type::STR:
        case msgpack::type::BIN:
        case msgpack::type::NIL:
            return {as_int, as_array};
        case msgpack::type::POSITIVE_INTEGER:
        case msgpack::type::NEGATIVE_INTEGER:
        case msgpack::type::BOOLEAN:
            return {as_str, as_array};
        case msgpack::type::MAP:
        case msgpack::type::ARRAY:
            return {as_int, as_str};
        default:
            return {as_str};
    }
}

// ---- the batches --------------------------------------------------------------------

Batch garbage_batch() {
    Batch batch("random garbage (seed " + std::to_string(kGarbageSeed) + ")");
    std::mt19937_64 rng(kGarbageSeed);
    std::uniform_int_distribution<size_t> length(1, kGarbageBytesMax);
    std::uniform_int_distribution<int> byte(0, 255);
    for (size_t f = 0; f < kGarbageFrames; ++f) {
        std::string frame(length(rng), '\0');
        for (auto& c : frame) c = static_cast<char>(byte(rng));
        // A quarter start like a small map, so the decoder gets past the first byte.
        if (f % 4 == 0) frame[0] = static_cast<char>(0x80 | (byte(rng) & 0x0f));
        batch.add(std::move(frame));
    }
    return batch;
}

Batch truncated_batch() {
    // Any strict prefix of a msgpack object is incomplete (the format is self-delimiting).
    Batch batch{"truncated valid frames, every offset (incl. empty)", ErrorCode::bad_request};
    for (const auto& request : base_requests()) {
        const std::string frame = proto::encode(request);
        for (size_t length = 0; length < frame.size(); ++length) {
            batch.add(frame.substr(0, length), proto::request_id(request));
        }
    }
    return batch;
}

Batch unknown_type_batch() {
    Batch batch{"valid maps with an unknown \"t\"", ErrorCode::unknown_type};
    const auto names = real_type_names();
    const std::set<std::string> known(names.begin(), names.end());
    std::vector<std::string> unknown = {"nope", "get_", "xget", "status2", "PUT", "Get"};
    for (const auto& name : names) {
        std::string upper = name;
        std::transform(upper.begin(), upper.end(), upper.begin(),
                       [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
        unknown.insert(unknown.end(), {name + "_x", "x_" + name, upper});
    }
    for (const auto& request : base_requests()) {
        const std::string frame = proto::encode(request);
        auto handle = msgpack::unpack(frame.data(), frame.size());
        const auto path = top_field(handle.get(), "t");
        REQUIRE(path);
        for (const auto& name : unknown) {
            if (known.count(name) != 0) continue;
            batch.add(replaced(handle.get(), *path, [&name](Packer& pk) { pk.pack(name); }),
                      proto::request_id(request));
        }
    }
    return batch;
}

Batch wrong_version_batch() {
    Batch batch{"valid maps with a wrong \"v\"", ErrorCode::unsupported_version};
    const std::vector<uint64_t> versions = {0, 2, 3, 100, 65'535, UINT64_MAX};
    for (const auto& request : base_requests()) {
        const std::string frame = proto::encode(request);
        auto handle = msgpack::unpack(frame.data(), frame.size());
        const auto path = top_field(handle.get(), "v");
        REQUIRE(path);
        for (uint64_t v : versions) {
            batch.add(replaced(handle.get(), *path, [v](Packer& pk) { pk.pack(v); }),
                      proto::request_id(request));
        }
    }
    return batch;
}

// Wrong types in "v" and "t" may be reported as a version or type problem, so only
// the other fields have a determined code (bad_request, client/status.h).
std::pair<Batch, Batch> wrong_type_batches() {
    Batch fields{"wrong field types", ErrorCode::bad_request};
    Batch header{"wrong types of \"v\" / \"t\""};
    for (const auto& request : base_requests()) {
        const std::string frame = proto::encode(request);
        auto handle = msgpack::unpack(frame.data(), frame.size());
        std::vector<FieldPath> paths;
        std::vector<uint32_t> prefix;
        list_fields(handle.get(), prefix, "", paths);
        for (const auto& path : paths) {
            Batch& batch = (path.name == "v" || path.name == "t") ? header : fields;
            for (const auto& wrong : wrong_values_for(path.type)) {
                batch.add(replaced(handle.get(), path.indices, wrong), proto::request_id(request));
            }
        }
    }
    return {fields, header};
}

Batch oversized_key_batch() {
    Batch batch{"keys over kKeyBytesMax", ErrorCode::key_too_large, false};
    for (size_t bytes : {proto::kKeyBytesMax + 1, size_t{2000}, size_t{64 * 1024}}) {
        const std::string key(bytes, 'k');
        const std::vector<proto::Message> requests = {
            proto::GetRequest{next_request_id(), key, kOne, 0},
            proto::PutRequest{next_request_id(), key, "v", {}, kOne, 0},
            proto::DelRequest{next_request_id(), key, {}, kOne, 0},
            proto::LocalGetRequest{next_request_id(), key},
        };
        for (const auto& r : requests) batch.add(proto::encode(r), proto::request_id(r));
    }
    return batch;
}

Batch oversized_value_batch() {
    Batch batch{"values over kValueBytesMax", ErrorCode::value_too_large, false};
    for (size_t bytes :
         {proto::kValueBytesMax + 1, 2 * proto::kValueBytesMax, 10 * proto::kValueBytesMax}) {
        proto::PutRequest put{next_request_id(), "big-value", std::string(bytes, 'v'), {}, kOne, 0};
        batch.add(proto::encode(put), put.id);
    }
    return batch;
}

Batch oversized_frame_batch() {
    Batch batch{"frames over kFrameBytesMax", ErrorCode::message_too_large};
    batch.add(std::string(proto::kFrameBytesMax + 1, '\xc1'));  // 0xc1: never valid msgpack
    proto::PutRequest put{
        next_request_id(), "huge", std::string(proto::kFrameBytesMax, 'h'), {}, kOne, 0};
    batch.add(proto::encode(put), put.id);
    return batch;
}

// Batch frames (client/frame_batch.h) whose lengths run past their end
// or that hold nothing.
Batch malformed_batch_frame_batch() {
    Batch batch{"malformed batch frames", ErrorCode::bad_request};
    batch.add(std::string(1, '\xc1'));
    batch.add(std::string("\xc1\x05\x00\x00", 4));
    batch.add(std::string("\xc1\xff\xff\xff\x7f", 5) + "abc");
    batch.add(std::string("\xc1\x01\x00\x00\x00\x80\x09\x00\x00\x00", 10) + "short");
    return batch;
}

std::string bytes_of(std::initializer_list<int> bytes) {
    std::string out;
    for (int b : bytes) out.push_back(static_cast<char>(b));
    return out;
}

std::string repeated(const std::string& piece, size_t times) {
    std::string out;
    out.reserve(piece.size() * times);
    for (size_t i = 0; i < times; ++i) out += piece;
    return out;
}

// Headers that promise far more than the frame holds, nesting far past
// kNestingDepthMax, and well-formed msgpack that is not a request map.
Batch hostile_batch() {
    Batch batch{"hostile msgpack headers and non-request objects", std::nullopt};
    batch.add(bytes_of({0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}));          // array32 of 4G items
    batch.add(bytes_of({0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x76}));    // map32 of 4G entries
    batch.add(bytes_of({0xdb, 0xff, 0xff, 0xff, 0xff, 0x61}));          // str32 of 4 GiB
    batch.add(bytes_of({0xc6, 0xff, 0xff, 0xff, 0xff, 0x00}));          // bin32 of 4 GiB
    batch.add(repeated(bytes_of({0x91}), 100'000) + bytes_of({0x01}));  // arrays 100k deep
    batch.add(repeated(bytes_of({0x81, 0xa1, 'v'}), 5000) + bytes_of({0x01}));  // {"v":{"v":..}}
    // Well-formed msgpack that is no request map: int, nil, true, "get", [1,"get",5], {}.
    for (const char* not_a_map :
         {"\x01", "\xc0", "\xc3", "\xa3get", "\x93\x01\xa3get\x05", "\x80"}) {
        batch.add(not_a_map);
    }
    batch.add(std::string("\x00", 1));
    batch.add("\x82\xa1t\xa6status\xa2id\x05", 5);  // {"t":"status","id":5}: no "v"
    batch.add("\x82\xa1v\x01\xa2id\x05", 5);        // {"v":1,"id":5}: no "t"
    // Deep nesting inside an otherwise valid request.
    proto::GetRequest get{next_request_id(), "deep", kOne, 0};
    const std::string frame = proto::encode(get);
    auto handle = msgpack::unpack(frame.data(), frame.size());
    if (auto path = top_field(handle.get(), "key")) {
        batch.add(replaced(handle.get(), *path,
                           [](Packer& pk) {
                               for (int d = 0; d < 1000; ++d) pk.pack_array(1);
                               pk.pack(1);
                           }),
                  get.id);
    }
    return batch;
}

// ---- sending and checking ------------------------------------------------------------

struct Mismatch {
    size_t count = 0;
    std::vector<std::string> examples;
    void note(std::string what) {
        ++count;
        if (examples.size() < kMismatchesShown) examples.push_back(std::move(what));
    }
};

// Sends the batch in pipelined chunks; every frame must get exactly one reply
// carrying an error code (the expected one when determined), and a reply id that
// is not 0 must be the id of a frame in the chunk.
size_t check_batch(RawClient& client, const Batch& batch) {
    INFO(batch.label << ": " << batch.frames.size() << " frames");
    Mismatch mismatch;
    for (size_t first = 0; first < batch.frames.size(); first += kPipelineDepth) {
        const size_t last = std::min(batch.frames.size(), first + kPipelineDepth);
        std::multiset<uint64_t> ids_in_flight;
        for (size_t f = first; f < last; ++f) {
            KV_REQUIRE_OK(client.send_frame(batch.frames[f]));
            if (batch.ids[f] != 0) ids_in_flight.insert(batch.ids[f]);
        }
        auto replies = client.collect(last - first);
        KV_REQUIRE_OK(replies.status());
        for (const auto& reply : replies.value()) {
            const auto code = reply_code(reply);
            const uint64_t id = proto::request_id(reply);
            if (!code || *code == ErrorCode::ok) {
                mismatch.note("not an error: " + describe(reply));
            } else if (batch.expected && *code != *batch.expected) {
                mismatch.note("expected " + std::string(error_name(*batch.expected)) + ", got " +
                              describe(reply));
            } else if (batch.error_response_only &&
                       !std::holds_alternative<proto::ErrorResponse>(reply)) {
                mismatch.note("expected an ErrorResponse, got " + describe(reply));
            }
            if (id != 0) {
                auto it = ids_in_flight.find(id);
                if (it == ids_in_flight.end()) {
                    mismatch.note("reply id matches no frame in flight: " + describe(reply));
                } else {
                    ids_in_flight.erase(it);
                }
            }
        }
    }
    std::string examples;
    for (const auto& example : mismatch.examples) examples += example + "\n";
    INFO(mismatch.count << " mismatched replies, e.g.\n" << examples);
    REQUIRE(mismatch.count == 0);
    return batch.frames.size();
}

// Several frames in one ZeroMQ message: one bad_request reply for the message.
size_t check_multipart(RawClient& client) {
    const std::string status = proto::encode(proto::StatusRequest{next_request_id()});
    const std::string put =
        proto::encode(proto::PutRequest{next_request_id(), "multi", "part", {}, kOne, 0});
    const std::vector<std::vector<std::string>> messages = {
        {status, status},      {put, ""}, {"", put}, {"\xc1\xc1", std::string("\x00", 1)},
        {status, put, status},
    };
    for (const auto& frames : messages) KV_REQUIRE_OK(client.send_multipart(frames));
    auto replies = client.collect(messages.size());
    KV_REQUIRE_OK(replies.status());
    for (const auto& reply : replies.value()) {
        INFO(describe(reply));
        REQUIRE(std::holds_alternative<proto::ErrorResponse>(reply));
        REQUIRE(std::get<proto::ErrorResponse>(reply).code == ErrorCode::bad_request);
    }
    return messages.size();
}

void put_ok(RawClient& client, const std::string& key, const std::string& value) {
    auto reply = client.request(proto::PutRequest{next_request_id(), key, value, {}, kOne, 0});
    KV_REQUIRE_OK(reply.status());
    INFO("put " << key << ": " << describe(reply.value()));
    REQUIRE(std::holds_alternative<proto::WriteResponse>(reply.value()));
    REQUIRE(std::get<proto::WriteResponse>(reply.value()).code == ErrorCode::ok);
}

void get_equals(RawClient& client, const std::string& key, const std::string& value) {
    auto reply = client.request(proto::GetRequest{next_request_id(), key, kOne, 0});
    KV_REQUIRE_OK(reply.status());
    INFO("get " << key << ": " << describe(reply.value()));
    REQUIRE(std::holds_alternative<proto::GetResponse>(reply.value()));
    const auto& got = std::get<proto::GetResponse>(reply.value());
    REQUIRE(got.code == ErrorCode::ok);
    REQUIRE(got.values == std::vector<std::string>{value});
}

std::string survivor_key(size_t i) {
    return "survivor-" + std::to_string(i);
}
std::string survivor_value(size_t i) {
    return "value-before-storm-" + std::to_string(i * 7919);
}

}  // namespace

TEST_CASE("a node answers every malformed frame with an error and keeps serving",
          "[process][malformed]") {
    ProcessCluster cluster("malformed");
    KV_REQUIRE_OK(cluster.add_nodes(1, 1));
    KV_REQUIRE_OK(cluster.start_all());
    RawClient client(cluster.endpoint(0));

    for (size_t i = 0; i < kSurvivorKeys; ++i) put_ok(client, survivor_key(i), survivor_value(i));

    size_t frames_sent = 0;
    auto [wrong_fields, wrong_header] = wrong_type_batches();
    const std::vector<Batch> batches = {
        garbage_batch(),
        truncated_batch(),
        unknown_type_batch(),
        wrong_version_batch(),
        std::move(wrong_fields),
        std::move(wrong_header),
        oversized_key_batch(),
        oversized_value_batch(),
        hostile_batch(),
        oversized_frame_batch(),
        malformed_batch_frame_batch(),
    };
    for (const auto& batch : batches) {
        REQUIRE(!batch.frames.empty());
        frames_sent += check_batch(client, batch);
        REQUIRE(cluster.alive(0));
    }
    frames_sent += check_multipart(client);
    INFO("bad frames sent: " << frames_sent);
    REQUIRE(frames_sent >= 3000);

    // Exactly one reply per frame: nothing may still be on its way.
    auto stray = client.recv_frame(300);
    REQUIRE(stray.status().code() == ErrorCode::timeout);
    REQUIRE(cluster.alive(0));

    // What was written before the storm is intact, over the old and a new connection.
    RawClient fresh(cluster.endpoint(0));
    for (size_t i = 0; i < kSurvivorKeys; ++i) {
        get_equals(client, survivor_key(i), survivor_value(i));
        get_equals(fresh, survivor_key(i), survivor_value(i));
    }
    for (size_t i = 0; i < kSurvivorKeys; ++i) {
        put_ok(fresh, "after-" + std::to_string(i), "after-value-" + std::to_string(i));
    }
    for (size_t i = 0; i < kSurvivorKeys; ++i) {
        get_equals(client, "after-" + std::to_string(i), "after-value-" + std::to_string(i));
    }
    auto status = fresh.request(proto::StatusRequest{next_request_id()});
    KV_REQUIRE_OK(status.status());
    REQUIRE(std::holds_alternative<proto::StatusResponse>(status.value()));
    REQUIRE(cluster.alive(0));
}

}  // namespace kv::test
