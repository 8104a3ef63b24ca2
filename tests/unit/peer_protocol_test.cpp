// The wire codec of the node-to-node messages (node/peer_protocol.h): every
// message a node speaks round-trips, the peer messages' limits hold, malformed
// peer frames come back as a Status naming the field, and the client and node
// codecs read each other's frames (the frame checks themselves are
// protocol_test.cpp's).
#include <limits>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <catch2/catch.hpp>

#include "client/protocol.h"
#include "node/peer_protocol.h"
#include "tests/unit/wire_frames.h"

namespace {

using namespace kv;
using namespace kv::node;
using namespace kv::test;

const Codec<Message> kCodec{&encode, &decode, &request_id, &type_name};
const Codec<proto::Message> kClientCodec{&proto::encode, &proto::decode, &proto::request_id,
                                         &proto::type_name};

Status decode_error(const std::string& frame, uint64_t expected_id = kId) {
    return test::decode_error(kCodec, frame, expected_id);
}

Message decode_ok(const std::string& frame) {
    return test::decode_ok(kCodec, frame);
}

Message to_node(const proto::Message& m) {
    return std::visit([](const auto& alternative) { return Message(alternative); }, m);
}

UserRecord sample_user() {
    UserRecord u{"alice", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", true, {7, "n1.00ff"}, {}};
    u.grants.push_back(GrantRecord{proto::Permission::admin, "", true, {8, "n1.00ff"}, u.version});
    u.grants.push_back(
        GrantRecord{proto::Permission::read, bytes_with_nuls("p"), false, {12, "n2.1"}, u.version});
    return u;
}

// Every node-to-node alternative with every field set to something
// non-default, and the variations of its optional fields.
std::vector<Message> peer_sample_messages() {
    return {
        ReplicaReadRequest{19, bytes_with_nuls("key")},
        ReplicaReadResponse{20, ErrorCode::ok, "", bytes_with_nuls("object")},
        ReplicaReadResponse{21, ErrorCode::ok, "", std::nullopt},
        ReplicaReadResponse{22, ErrorCode::ok, "", std::string()},
        ReplicaReadResponse{23, ErrorCode::storage_error, "disk full", std::nullopt},
        ReplicaWriteRequest{24,
                            bytes_with_nuls("key"),
                            bytes_with_nuls("value"),
                            bytes_with_nuls("ctx"),
                            64,
                            {},
                            proto::kDeadlineMsMax,
                            ""},
        ReplicaWriteRequest{25, "k", std::nullopt, std::nullopt, 0, {}, 0, "n2"},
        ReplicaWriteRequest{34, "k", std::string("v"), std::nullopt, 0, {}, 0, "", true},
        ReplicaWriteResponse{26, ErrorCode::ok, "", bytes_with_nuls("object"),
                             bytes_with_nuls("ctx")},
        ReplicaWriteResponse{27, ErrorCode::sibling_limit, "too many siblings", "", std::nullopt},
        ReplicaMergeRequest{28, bytes_with_nuls("key"), bytes_with_nuls("object"), {}, 0, ""},
        ReplicaMergeRequest{33, "k", bytes_with_nuls("object"), {"n1"}, 1, "n3"},
        ReplicaMergeResponse{29, ErrorCode::ok, ""},
        ReplicaMergeResponse{30, ErrorCode::storage_error, "commit failed"},
        PingRequest{31, "node-a"},
        PingResponse{0, "node-b"},
        GossipRequest{32, "node-a", bytes_with_nuls("gossip payload")},
        StreamRequest{36, "n4", 0xfeedULL, {{1, 2}, {UINT64_MAX - 5, 3}}, std::nullopt, 128},
        StreamRequest{37, "n4", 7, {{5, 5}}, bytes_with_nuls("last key"), 0},
        StreamResponse{38,
                       ErrorCode::ok,
                       "",
                       {bytes_with_nuls("k1"), "k2"},
                       {bytes_with_nuls("o1"), "o2"},
                       std::string("k2"),
                       false},
        StreamResponse{39, ErrorCode::not_owner, "ring differs", {}, {}, std::nullopt, true},
        HandoffRequest{40, "n4", 99, {{10, 20}}},
        HandoffResponse{41, ErrorCode::ok, ""},
        ReplicaWriteRequest{42, "k", std::string("v"), std::nullopt, 0, {"n1", "n2", "n4"}, 0, ""},
        ReplicaMergeRequest{43, "k", bytes_with_nuls("object"), {"n2"}, 0, ""},
        CatalogSyncRequest{44, "n1", {{"alice", 0x1234}, {"bob", UINT64_MAX}}},
        CatalogSyncRequest{45, "n1", {}},
        CatalogSyncResponse{46, ErrorCode::ok, "", {sample_user()}, {"carol"}},
        CatalogSyncResponse{47, ErrorCode::ok, "", {}, {}},
        CatalogPushRequest{
            48, "n2", {sample_user(), UserRecord{"gone", "", false, {9, "n3.ab"}, {}}}},
        ReplicaReadRequest{49, "k", true},
        ReplicaReadRequest{49, "k", false, true},
        HintReplayRequest{50, "n1", {bytes_with_nuls("k1"), "k2"}, {bytes_with_nuls("o1"), "o2"}},
        HintReplayRequest{51, "n1", {}, {}},
        HintReplayResponse{52, ErrorCode::ok, "", {"k2"}},
        HintReplayResponse{53, ErrorCode::storage_error, "commit failed", {}},
        AeCompareRequest{60, "n1", 77, {0, 5, 6, ~uint64_t{0}}, {1, 2}},
        AeCompareRequest{61, "n1", 77, {}, {}},
        AeCompareResponse{62, ErrorCode::ok, "", {0, 3}, 12},
        AeCompareResponse{63, ErrorCode::not_owner, "rings differ", {}, 0},
        AeKeysRequest{64, "n1", 77, {4, 9}, {bytes_with_nuls("k1"), "k2"}, {11, 12}},
        AeKeysResponse{65, ErrorCode::ok, "", {bytes_with_nuls("k1")}, {"o1"}, {"k2"}, true},
        AePushRequest{66, "n1", {"k2"}, {bytes_with_nuls("o2")}},
        AePushResponse{67, ErrorCode::ok, ""},
    };
}

// Every message a node speaks: the client samples, then the peer ones.
std::vector<Message> sample_messages() {
    std::vector<Message> out;
    for (const proto::Message& m : client_sample_messages()) out.push_back(to_node(m));
    for (Message& m : peer_sample_messages()) out.push_back(std::move(m));
    return out;
}

}  // namespace

// ---- names -----------------------------------------------------------------------------

TEST_CASE("peer type names are the documented strings", "[peer_protocol]") {
    std::vector<std::pair<Message, std::string_view>> table;
    for (const auto& [message, name] : client_type_names())
        table.emplace_back(to_node(message), name);
    const std::vector<std::pair<Message, std::string_view>> peer_table = {
        {ReplicaReadRequest{}, "r_read"},
        {ReplicaReadResponse{}, "r_read_reply"},
        {ReplicaWriteRequest{}, "r_write"},
        {ReplicaWriteResponse{}, "r_write_reply"},
        {ReplicaMergeRequest{}, "r_merge"},
        {ReplicaMergeResponse{}, "r_merge_reply"},
        {PingRequest{}, "ping"},
        {PingResponse{}, "pong"},
        {GossipRequest{}, "gossip"},
        {StreamRequest{}, "stream"},
        {StreamResponse{}, "stream_reply"},
        {HandoffRequest{}, "handoff"},
        {HandoffResponse{}, "handoff_reply"},
        {CatalogSyncRequest{}, "catalog_sync"},
        {CatalogSyncResponse{}, "catalog_sync_reply"},
        {CatalogPushRequest{}, "catalog_push"},
        {HintReplayRequest{}, "hint_replay"},
        {HintReplayResponse{}, "hint_replay_reply"},
        {AeCompareRequest{}, "ae_compare"},
        {AeCompareResponse{}, "ae_compare_reply"},
        {AeKeysRequest{}, "ae_keys"},
        {AeKeysResponse{}, "ae_keys_reply"},
        {AePushRequest{}, "ae_push"},
        {AePushResponse{}, "ae_push_reply"},
    };
    table.insert(table.end(), peer_table.begin(), peer_table.end());
    check_type_names(kCodec, table);
    CHECK(request_id(PingResponse{7, "n"}) == 7);
    CHECK(node::request_id(proto::PutRequest{42, "k", "v", {}, {}, 0}) == 42);
}

// ---- round trips -----------------------------------------------------------------------

TEST_CASE("every node message alternative round-trips", "[peer_protocol]") {
    check_round_trips(kCodec, sample_messages());
}

TEST_CASE("peer values at exactly the limits round-trip", "[peer_protocol]") {
    Message merge =
        ReplicaMergeRequest{2, "k", std::string(proto::kObjectBytesMax, 'o'), {}, 0, ""};
    CHECK(decode_ok(encode(merge)) == merge);

    Message pong = PingResponse{4, std::string(proto::kIdBytesMax, 'n')};
    CHECK(decode_ok(encode(pong)) == pong);

    Message gossip = GossipRequest{5, "n1", std::string(kGossipPayloadBytesMax, 'g')};
    CHECK(decode_ok(encode(gossip)) == gossip);
}

TEST_CASE("a gossip payload above its limit is refused as too large", "[peer_protocol]") {
    const std::string frame =
        encode(GossipRequest{6, "n1", std::string(kGossipPayloadBytesMax + 1, 'g')});
    Status s = decode_error(frame, 6);
    CHECK(s.code() == ErrorCode::message_too_large);
    CHECK(s.message().find("payload") != std::string::npos);
}

// ---- the client contract and the node codec -----------------------------------------------

TEST_CASE("client and node codecs read each other's frames", "[peer_protocol]") {
    for (const proto::Message& m : client_sample_messages()) {
        INFO("type " << proto::type_name(m) << " id " << proto::request_id(m));
        const std::string client_frame = proto::encode(m);
        // A client's request reaches a node as the same message...
        CHECK(decode_ok(client_frame) == to_node(m));
        // ...and a node's reply reaches a client as the same message.
        const std::string node_frame = encode(to_node(m));
        CHECK(test::decode_ok(kClientCodec, node_frame) == m);
        CHECK(node_frame == client_frame);
    }
    for (const Message& m : peer_sample_messages()) {
        INFO("type " << type_name(m));
        Status s = test::decode_error(kClientCodec, encode(m), request_id(m));
        CHECK(s.code() == ErrorCode::unknown_type);
        CHECK(s.message().find(std::string(type_name(m))) != std::string::npos);
    }
}

// ---- hostile input: peer fields ----------------------------------------------------------

TEST_CASE("missing required peer fields name the field", "[peer_protocol][hostile]") {
    struct Case {
        std::vector<Field> fields;
        std::string missing;
    };
    const std::vector<Case> cases = {
        {header("r_read"), "key"},
        {header("r_write"), "key"},
        {with(header("r_merge"), bin_field("key", "k")), "obj"},
        {header("r_read_reply"), "code"},
        {header("r_write_reply"), "code"},
        {header("r_merge_reply"), "code"},
        {header("ping"), "from"},
        {header("pong"), "node"},
        {with(header("gossip"), bin_field("payload", "p")), "from"},
        {with(header("gossip"), str_field("from", "a")), "payload"},
    };
    for (const Case& c : cases) check_names_field(kCodec, build(c.fields), c.missing);
    // The minimal form decodes.
    CHECK(std::holds_alternative<ReplicaWriteRequest>(
        decode_ok(build(with(header("r_write"), bin_field("key", "k"))))));
}

TEST_CASE("peer fields of the wrong type name the field", "[peer_protocol][hostile]") {
    const std::vector<std::pair<std::vector<Field>, std::string>> cases = {
        {with(header("ping"), bin_field("from", "n")), "from"},
        {with(with(header("r_write"), bin_field("key", "k")), bool_field("siblings_max", false)),
         "siblings_max"},
        {with(header("r_write"), bin_field("key", "k")), ""},  // sentinel: valid
    };
    for (const auto& [fields, name] : cases) {
        if (name.empty()) {
            CHECK(std::holds_alternative<ReplicaWriteRequest>(decode_ok(build(fields))));
            continue;
        }
        check_names_field(kCodec, build(fields), name);
    }
}

TEST_CASE("peer size limits answer with their own codes", "[peer_protocol][hostile]") {
    SECTION("empty key") {
        CHECK(decode_error(
                  build(with(with(header("r_merge"), bin_field("obj", "o")), str_field("key", ""))))
                  .code() == ErrorCode::invalid_argument);
    }
    SECTION("key too large") {
        std::string key(proto::kKeyBytesMax + 1, 'k');
        CHECK(decode_error(build(with(header("r_read"), bin_field("key", key)))).code() ==
              ErrorCode::key_too_large);
    }
    SECTION("value too large") {
        std::string value(proto::kValueBytesMax + 1, 'v');
        CHECK(decode_error(build(with(with(header("r_write"), bin_field("key", "k")),
                                      bin_field("val", value))))
                  .code() == ErrorCode::value_too_large);
    }
    SECTION("object too large") {
        std::string object(proto::kObjectBytesMax + 1, 'o');
        CHECK(decode_error(build(with(with(header("r_merge"), bin_field("key", "k")),
                                      bin_field("obj", object))))
                  .code() == ErrorCode::object_too_large);
        CHECK(decode_error(build(with(with(header("r_read_reply"), uint_field("code", 0)),
                                      bin_field("obj", object))))
                  .code() == ErrorCode::object_too_large);
    }
    SECTION("budget above the longest deadline") {
        CHECK(decode_error(build(with(with(with(header("r_merge"), bin_field("key", "k")),
                                           bin_field("obj", "o")),
                                      uint_field("budget_ms", proto::kDeadlineMsMax + 1))))
                  .code() == ErrorCode::invalid_argument);
        CHECK(decode_error(build(with(with(header("r_write"), bin_field("key", "k")),
                                      uint_field("budget_ms", proto::kDeadlineMsMax + 1))))
                  .code() == ErrorCode::invalid_argument);
    }
    SECTION("text fields too long") {
        std::string id_text(proto::kIdBytesMax + 1, 'n');
        CHECK(decode_error(build(with(header("pong"), str_field("node", id_text)))).code() ==
              ErrorCode::bad_request);
        CHECK(decode_error(build(with(header("ping"), str_field("from", id_text)))).code() ==
              ErrorCode::bad_request);
    }
}

// ---- hostile input: garbage ---------------------------------------------------------------

TEST_CASE("random garbage and mutated node frames never crash", "[peer_protocol][hostile]") {
    std::vector<std::string> seeds;
    for (const Message& m : sample_messages()) seeds.push_back(encode(m));
    check_garbage_and_mutations(kCodec, seeds);
}

TEST_CASE("catalog messages keep within their limits", "[peer_protocol][hostile]") {
    CatalogPushRequest push{kId, "n1", {}};
    for (size_t i = 0; i <= kCatalogUsersPerMessageMax; ++i) push.users.push_back(sample_user());
    CHECK(decode_error(encode(push)).code() == ErrorCode::bad_request);
    push.users.pop_back();
    CHECK(std::get<CatalogPushRequest>(decode_ok(encode(push))).users.size() ==
          kCatalogUsersPerMessageMax);

    UserRecord many = sample_user();
    many.grants.assign(kCatalogGrantsPerUserWireMax + 1, many.grants.front());
    CHECK(decode_error(encode(CatalogPushRequest{kId, "n1", {many}})).code() ==
          ErrorCode::bad_request);

    CatalogSyncRequest sync{kId, "n1", {}};
    for (size_t i = 0; i <= kCatalogDigestsMax; ++i) sync.digests.push_back({"u", i});
    CHECK(decode_error(encode(sync)).code() == ErrorCode::bad_request);

    UserRecord bad_grant = sample_user();
    bad_grant.grants.front().prefix.assign(proto::kKeyBytesMax + 1, 'p');
    CHECK(decode_error(encode(CatalogPushRequest{kId, "n1", {bad_grant}})).code() ==
          ErrorCode::bad_request);
}
