// Helpers for the wire codec tests (protocol_test for the client messages,
// peer_protocol_test for the node-to-node ones): frames built by hand with
// msgpack, decode checks over either message set, sample client messages and
// the garbage-and-mutation run.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include "client/protocol.h"
#include "client/status.h"

namespace kv::test {

inline std::string hex(std::string_view bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        if (!out.empty()) out += ' ';
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

inline std::string unhex(std::string_view text) {
    std::string out;
    int nibble = -1;
    for (char c : text) {
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) continue;
        if (nibble < 0) {
            nibble = v;
        } else {
            out += static_cast<char>(nibble * 16 + v);
            nibble = -1;
        }
    }
    return out;
}

// ---- hand-built frames -----------------------------------------------------------

using Packer = msgpack::packer<msgpack::sbuffer>;
using PackFn = std::function<void(Packer&)>;
struct Field {
    std::string key;
    PackFn pack;
};

inline Field str_field(std::string key, std::string value) {
    return {std::move(key), [value](Packer& p) {
                p.pack_str(static_cast<uint32_t>(value.size()))
                    .pack_str_body(value.data(), value.size());
            }};
}
inline Field bin_field(std::string key, std::string value) {
    return {std::move(key), [value](Packer& p) {
                p.pack_bin(static_cast<uint32_t>(value.size()))
                    .pack_bin_body(value.data(), value.size());
            }};
}
inline Field uint_field(std::string key, uint64_t value) {
    return {std::move(key), [value](Packer& p) { p.pack_uint64(value); }};
}
inline Field int_field(std::string key, int64_t value) {
    return {std::move(key), [value](Packer& p) { p.pack_int64(value); }};
}
inline Field bool_field(std::string key, bool value) {
    return {std::move(key), [value](Packer& p) { value ? p.pack_true() : p.pack_false(); }};
}
inline Field raw_field(std::string key, PackFn pack) {
    return {std::move(key), std::move(pack)};
}

inline std::string build(const std::vector<Field>& fields) {
    msgpack::sbuffer buffer;
    Packer p(buffer);
    p.pack_map(static_cast<uint32_t>(fields.size()));
    for (const Field& f : fields) {
        p.pack_str(static_cast<uint32_t>(f.key.size())).pack_str_body(f.key.data(), f.key.size());
        f.pack(p);
    }
    return std::string(buffer.data(), buffer.size());
}

// Replaces the field of the same key, or appends.
inline std::vector<Field> with(std::vector<Field> fields, Field field) {
    auto it = std::find_if(fields.begin(), fields.end(),
                           [&](const Field& f) { return f.key == field.key; });
    if (it != fields.end()) {
        *it = std::move(field);
    } else {
        fields.push_back(std::move(field));
    }
    return fields;
}
inline std::vector<Field> without(std::vector<Field> fields, const std::string& key) {
    fields.erase(
        std::remove_if(fields.begin(), fields.end(), [&](const Field& f) { return f.key == key; }),
        fields.end());
    return fields;
}

constexpr uint64_t kId = 0x1122334455667788ull;

inline std::vector<Field> header(const std::string& type) {
    return {uint_field("v", proto::kProtocolVersion), str_field("t", type), uint_field("id", kId)};
}

inline std::string bytes_with_nuls(std::string_view tag) {
    std::string s(tag);
    s += std::string("\0\x01\xff\x80\0", 5);
    return s;
}

// ---- decode checks over one message set --------------------------------------------

// The codec functions of a message set (proto:: or node::).
template <typename Message>
struct Codec {
    std::string (*encode)(const Message&);
    Result<Message> (*decode)(std::string_view, uint64_t*);
    uint64_t (*request_id)(const Message&);
    std::string_view (*type_name)(const Message&);
};

// Decodes a frame expected to fail and checks the code and the echoed id.
template <typename Message>
Status decode_error(const Codec<Message>& codec, const std::string& frame,
                    uint64_t expected_id = kId) {
    uint64_t id = 12345;  // must be overwritten
    Result<Message> r = codec.decode(frame, &id);
    REQUIRE_FALSE(r.ok());
    CHECK(id == expected_id);
    CHECK_FALSE(r.status().message().empty());
    return r.status();
}

template <typename Message>
Message decode_ok(const Codec<Message>& codec, const std::string& frame) {
    uint64_t id = 12345;
    Result<Message> r = codec.decode(frame, &id);
    INFO(r.status().to_string());
    REQUIRE(r.ok());
    CHECK(id == codec.request_id(r.value()));
    return r.value();
}

// A frame refused as bad_request, naming `field`.
template <typename Message>
void check_names_field(const Codec<Message>& codec, const std::string& frame,
                       const std::string& field) {
    Status s = decode_error(codec, frame);
    INFO(s.to_string());
    CHECK(s.code() == ErrorCode::bad_request);
    CHECK(s.message().find('"' + field + '"') != std::string::npos);
}

// `table` names every alternative once, with its "t" string.
template <typename Message>
void check_type_names(const Codec<Message>& codec,
                      const std::vector<std::pair<Message, std::string_view>>& table) {
    REQUIRE(table.size() == std::variant_size_v<Message>);
    std::set<size_t> indices;
    for (const auto& [message, name] : table) {
        CHECK(codec.type_name(message) == name);
        indices.insert(message.index());
    }
    CHECK(indices.size() == std::variant_size_v<Message>);
}

// Every sample survives a round trip, and the samples cover every alternative.
template <typename Message>
void check_round_trips(const Codec<Message>& codec, const std::vector<Message>& samples) {
    std::set<size_t> covered;
    for (const Message& m : samples) {
        INFO("type " << codec.type_name(m) << " id " << codec.request_id(m));
        std::string frame = codec.encode(m);
        CHECK(frame.size() <= proto::kFrameBytesMax);
        Message back = decode_ok(codec, frame);
        CHECK(back == m);
        CHECK(back.index() == m.index());
        covered.insert(m.index());
    }
    CHECK(covered.size() == std::variant_size_v<Message>);
}

// Random edits of a frame: 1 to edits_max of a byte changed, up to 8 bytes
// removed, a byte inserted, and with truncations the frame cut short.
inline std::string edited(std::string frame, std::mt19937_64& rng, int edits_max,
                          bool truncations) {
    int edits = 1 + static_cast<int>(rng() % static_cast<uint64_t>(edits_max));
    for (int e = 0; e < edits && !frame.empty(); ++e) {
        size_t at = rng() % frame.size();
        switch (rng() % (truncations ? 4 : 3)) {
            case 0:
                frame[at] = static_cast<char>(rng());
                break;
            case 1:
                frame.erase(at, 1 + rng() % 8);
                break;
            case 2:
                frame.insert(at, 1, static_cast<char>(rng()));
                break;
            default:
                frame.resize(at);
                break;
        }
    }
    return frame;
}

// Random bytes and random edits of `seeds` (valid frames): every outcome is a
// Status with a known code, or a message that survives a round trip unchanged.
template <typename Message>
void check_garbage_and_mutations(const Codec<Message>& codec,
                                 const std::vector<std::string>& seeds) {
    std::mt19937_64 rng(20240611);

    auto check_outcome = [&codec](const std::string& frame) {
        uint64_t id = 12345;
        Result<Message> r = codec.decode(frame, &id);
        if (r.ok()) {
            // Whatever was accepted must survive a round trip unchanged.
            CHECK(id == codec.request_id(r.value()));
            Result<Message> again = codec.decode(codec.encode(r.value()), nullptr);
            REQUIRE(again.ok());
            CHECK(again.value() == r.value());
        } else {
            CHECK(r.status().code() != ErrorCode::ok);
            CHECK(is_known_error(static_cast<uint64_t>(r.status().code())));
            CHECK_FALSE(r.status().message().empty());
        }
        return r.ok();
    };

    size_t accepted = 0;
    for (int i = 0; i < 3000; ++i) {
        std::string frame(rng() % 200, '\0');
        for (char& c : frame) c = static_cast<char>(rng());
        // Half start like a map so the walk gets past the first byte.
        if (i % 2 == 0 && !frame.empty()) frame[0] = static_cast<char>(0x80 | (rng() % 16));
        check_outcome(frame);
    }
    for (int i = 0; i < 3000; ++i) {
        std::string frame = edited(seeds[rng() % seeds.size()], rng, 4, /*truncations=*/false);
        accepted += check_outcome(frame) ? 1 : 0;
    }
    // Some single-byte edits land in payload bytes and stay valid; if none
    // were accepted the mutation would not be exercising the decoder's depth.
    CHECK(accepted > 0);
}

// ---- sample client messages ---------------------------------------------------------

// Every client alternative with every field set to something non-default, and
// the variations of its optional fields.
inline std::vector<proto::Message> client_sample_messages() {
    using namespace kv::proto;
    Consistency strict_two{Level::two, 0, true};
    Consistency explicit_count{Level::all, 3, false};
    ReplyInfo info{3, 2, true, 2};
    return {
        GetRequest{1, bytes_with_nuls("key"), strict_two, 2500},
        GetRequest{2, "k", Consistency{}, 0},
        GetRequest{3, "k", explicit_count, kDeadlineMsMax},
        PutRequest{4, bytes_with_nuls("key"), bytes_with_nuls("value"), bytes_with_nuls("ctx"),
                   strict_two, 100},
        PutRequest{5, "k", "", std::nullopt, Consistency{Level::one, 0, false}, 0},
        PutRequest{6, "k", "v", std::string(), explicit_count, 1},
        DelRequest{7, bytes_with_nuls("key"), bytes_with_nuls("ctx"), strict_two, 9},
        DelRequest{8, "k", std::nullopt, Consistency{Level::three, 0, false}, 0},
        LocalGetRequest{9, bytes_with_nuls("key")},
        StatusRequest{10},
        GetResponse{11,
                    ErrorCode::ok,
                    "",
                    {bytes_with_nuls("a"), bytes_with_nuls("b"), ""},
                    bytes_with_nuls("ctx"),
                    info},
        GetResponse{12, ErrorCode::not_found, "no live value", {}, bytes_with_nuls("ctx"), {}},
        GetResponse{
            13, ErrorCode::unavailable, "1 of 2 replicas answered", {}, "", {3, 1, false, 0}},
        WriteResponse{14, ErrorCode::ok, "", bytes_with_nuls("ctx"), info},
        WriteResponse{15, ErrorCode::timeout, "deadline passed", "", {3, 0, false, 0}},
        StatusResponse{16,
                       "node-a",
                       3,
                       {{"node-a", "tcp://127.0.0.1:7000", "self", 0, 256, 500000},
                        {"node-b", "tcp://127.0.0.1:7001", "unreachable", 12000, 0, 0}},
                       123456789,
                       {},
                       2,
                       "",
                       {},
                       0,
                       "",
                       std::nullopt},
        StatusResponse{17, "solo", 1, {}, 0, {}, 0, "", {}, 0, "", std::nullopt},
        ErrorResponse{18, ErrorCode::bad_request, "field \"key\" must be bin"},
        ErrorResponse{std::numeric_limits<uint64_t>::max(), ErrorCode::object_too_large, ""},
        LeaveRequest{33},
        RemoveNodeRequest{36, "n4"},
        StatsRequest{37},
        StatsResponse{38, "# HELP kv_up 1 when up.\n# TYPE kv_up gauge\nkv_up{node_id=\"n1\"} 1\n"},
        AdminResponse{34, ErrorCode::ok, "leaving"},
        AdminResponse{35, ErrorCode::invalid_argument, "already leaving"},
        StatusResponse{44,
                       "n1",
                       3,
                       {},
                       9,
                       {{"n2", "in", "streaming", 12, 3456}},
                       3,
                       "",
                       {},
                       0,
                       "",
                       std::nullopt},
        StatusResponse{45,
                       "n2",
                       3,
                       {},
                       9,
                       {},
                       2,
                       "queued: waiting for acknowledgement from n1, n4",
                       {},
                       0,
                       "",
                       std::nullopt},
        StatusResponse{48,
                       "n1",
                       3,
                       {},
                       9,
                       {},
                       3,
                       "",
                       {},
                       0,
                       "removing n4: 12 of 200 ranges copied to 3 new owners",
                       std::nullopt},
        UserAddRequest{46, "bob", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"},
        UserDelRequest{47, "bob.smith-2_x"},
        UserListRequest{48},
        UserListResponse{49,
                         ErrorCode::ok,
                         "",
                         {{"alice",
                           "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
                           {{Permission::admin, ""}, {Permission::read, bytes_with_nuls("a")}}},
                          {"bob", "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID", {}}}},
        UserListResponse{50, ErrorCode::unauthorized, "no admin grant", {}},
        GrantRequest{51, "bob", Permission::write, bytes_with_nuls("pre")},
        GrantRequest{52, "bob", Permission::admin, ""},
        RevokeRequest{53, "bob", Permission::read, ""},
        StatusResponse{54,
                       "n1",
                       3,
                       {},
                       9,
                       {},
                       3,
                       "",
                       {{"n2", 120, 65536, 4200, 17, 3, true}, {"n4", 1, 0, 0, 0, 0, false}},
                       5,
                       "",
                       std::nullopt},
        StatusResponse{55, "n1", 3, {}, 0, {}, 3, "", {}, 1, "", std::nullopt},
        StatusResponse{58,
                       "n1",
                       3,
                       {},
                       0,
                       {},
                       3,
                       "",
                       {},
                       0,
                       "",
                       AntiEntropyStatus{true,
                                         100,
                                         7,
                                         3,
                                         12,
                                         1,
                                         40,
                                         20,
                                         90,
                                         4096,
                                         8192,
                                         2,
                                         1,
                                         0,
                                         {{"n2", true, 1500, false}, {"n3", false, 0, true}},
                                         true}},
        RepairRequest{59, true, 0, 0, {}},
        RepairRequest{60, false, 17, 3, {}},
        RepairRequest{61, true, 0, 0, {"n1", "n4"}},
        OwnersRequest{56, bytes_with_nuls("key")},
        OwnersResponse{57,
                       {{"n2", "up"}, {"n4", "down"}, {"n5", "down"}},
                       {{"n1", "n4"}, {"n3", "n5"}},
                       {"n6"},
                       3,
                       true},
        OwnersResponse{58, {}, {}, {}, 1, false},
    };
}

// The "t" string of every client alternative (docs/PROTOCOL.md).
inline std::vector<std::pair<proto::Message, std::string_view>> client_type_names() {
    using namespace kv::proto;
    return {
        {GetRequest{}, "get"},
        {PutRequest{}, "put"},
        {DelRequest{}, "del"},
        {LocalGetRequest{}, "local_get"},
        {StatusRequest{}, "status"},
        {GetResponse{}, "get_reply"},
        {WriteResponse{}, "write_reply"},
        {StatusResponse{}, "status_reply"},
        {ErrorResponse{}, "error"},
        {LeaveRequest{}, "leave"},
        {AdminResponse{}, "admin_reply"},
        {UserAddRequest{}, "user_add"},
        {UserDelRequest{}, "user_del"},
        {UserListRequest{}, "user_list"},
        {UserListResponse{}, "user_list_reply"},
        {GrantRequest{}, "grant"},
        {RevokeRequest{}, "revoke"},
        {OwnersRequest{}, "owners"},
        {OwnersResponse{}, "owners_reply"},
        {RepairRequest{}, "repair"},
        {RemoveNodeRequest{}, "removenode"},
        {StatsRequest{}, "stats"},
        {StatsResponse{}, "stats_reply"},
    };
}

}  // namespace kv::test
