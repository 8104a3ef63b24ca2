#include <set>

#include "client/frame_batch.h"
#include "client/protocol.h"
#include "client/z85.h"
#include "gossip/gossip.h"
#include "gossip/gossip_codec.h"
#include "node/data/object.h"
#include "node/peer_protocol.h"
#include "node/storage/meta_codec.h"
#include "tests/fuzz/decoders.h"
#include "tests/unit/wire_frames.h"

namespace kv::fuzz {

namespace {

// One sample of each client message type: the seed needs the shapes, not
// every variation (the fuzzer makes those).
std::vector<Seed> client_seeds() {
    std::vector<Seed> out;
    std::set<size_t> seen;
    for (const proto::Message& m : test::client_sample_messages()) {
        if (!seen.insert(m.index()).second) continue;
        out.push_back({std::string(proto::type_name(m)), proto::encode(m)});
    }
    // Frames other encoders write: byte strings as str, an id in a signed
    // format, fields this version does not know (ignored), nested deeper.
    using namespace kv::test;
    // The status fields a node before issue 12 did not send (the first status
    // sample above has none).
    out.push_back(
        {"status_reply_hints",
         proto::encode(proto::StatusResponse{
             9,
             "n1",
             3,
             {},
             4,
             {},
             3,
             "",
             {{"n2", 2, 300, 1500, 1, 1, true}},
             2,
             "",
             proto::AntiEntropyStatus{
                 true, 10, 1, 2, 3, 0, 4, 5, 6, 7, 8, 1, 1, 0, {{"n2", true, 900, true}}, true}})});
    out.push_back({"put_str_bytes",
                   build(with(with(header("put"), str_field("key", "k")), str_field("val", "v")))});
    out.push_back({"get_signed_id",
                   build(with(with(header("get"), int_field("id", 7)), bin_field("key", "k")))});
    out.push_back(
        {"status_unknown_fields", build(with(with(header("status"), bool_field("future", true)),
                                             raw_field("nested", [](Packer& p) {
                                                 p.pack_array(1).pack_map(1);
                                                 p.pack_str(1).pack_str_body("x", 1);
                                                 p.pack_nil();
                                             })))});
    return out;
}

node::Object sample_object() {
    node::Object o;
    o.context.set("n1.00000000000000a1", 3);
    o.context.set("n2.00000000000000b2", 7);
    o.context.remove(node::Dot{"n2.00000000000000b2", 5});
    o.siblings.push_back({node::Dot{"n1.00000000000000a1", 3}, std::string("value one")});
    o.siblings.push_back({node::Dot{"n2.00000000000000b2", 6}, std::nullopt});
    o.siblings.push_back({node::Dot{"n2.00000000000000b2", 7}, std::string("v\0two", 5)});
    return o;
}

node::UserRecord sample_user() {
    node::UserRecord u;
    u.name = "alice";
    u.public_key_z85 = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
    u.version = {3, "n1.00000000000000a1"};
    u.grants.push_back({proto::Permission::read, "", true, {4, "n1.00000000000000a1"}, u.version});
    u.grants.push_back(
        {proto::Permission::write, "app/", false, {5, "n2.00000000000000b2"}, u.version});
    return u;
}

std::vector<Seed> node_seeds() {
    using namespace kv::node;
    const std::string object = encode_object(sample_object());
    const std::vector<TokenRange> ranges = {{1, 2}, {UINT64_MAX - 5, 3}};
    const std::vector<Message> messages = {
        ReplicaReadRequest{19, "key"},
        ReplicaReadResponse{20, ErrorCode::ok, "", object},
        ReplicaWriteRequest{24,
                            "key",
                            std::string("value"),
                            encode_context(sample_object().context),
                            64,
                            {"n1", "n2"},
                            2500,
                            "n3"},
        ReplicaWriteResponse{26, ErrorCode::ok, "", object, std::string("ctx")},
        ReplicaMergeRequest{28, "key", object, {"n1"}, 1, "n2"},
        ReplicaMergeResponse{29, ErrorCode::storage_error, "commit failed"},
        HintReplayRequest{30, "n1", {"key"}, {object}},
        HintReplayResponse{32, ErrorCode::ok, "", {"key"}},
        AeCompareRequest{33, "n1", 9, {0, 100, 200, 300}, {1, 2}},
        AeCompareResponse{34, ErrorCode::ok, "", {1}, 3},
        AeKeysRequest{35, "n1", 9, {0, 100}, {"key"}, {5}},
        AeKeysResponse{36, ErrorCode::ok, "", {"key"}, {object}, {"key2"}, false},
        AePushRequest{37, "n1", {"key"}, {object}},
        AePushResponse{38, ErrorCode::ok, ""},
        PingRequest{31, "node-a"},
        PingResponse{0, "node-b"},
        GossipRequest{32, "node-a", gossip::encode(gossip::GossipSyn{"node-a", "tcp://h:1", {}})},
        StreamRequest{36, "n4", 0xfeedULL, ranges, std::string("after"), 128},
        StreamResponse{38, ErrorCode::ok, "", {"k1", "k2"}, {object, object}, "k2", false},
        HandoffRequest{40, "n4", 99, {{10, 20}}},
        HandoffResponse{41, ErrorCode::not_owner, "ring differs"},
        CatalogSyncRequest{
            42, "n1", {CatalogDigest{"alice", 0x1234abcdULL}, CatalogDigest{"bob", 7}}},
        CatalogSyncResponse{43, ErrorCode::ok, "", {sample_user()}, {"bob"}},
        CatalogPushRequest{
            44, "n2", {sample_user(), UserRecord{"gone", "", false, {9, "n1.ab"}, {}}}},
        proto::GetRequest{1, "k", proto::Consistency{proto::Level::two, 0, true}, 2500},
        proto::OwnersRequest{2, "k"},
    };
    std::vector<Seed> out;
    for (const Message& m : messages) out.push_back({std::string(type_name(m)), encode(m)});
    return out;
}

std::vector<Seed> gossip_seeds() {
    using namespace kv::gossip;
    MemberState a{"n1",
                  "tcp://127.0.0.1:7001",
                  MemberStatus::up,
                  Liveness::alive,
                  3,
                  99,
                  {5, 1u << 20, UINT64_MAX},
                  0,
                  ""};
    MemberState b{
        "n2", "tcp://127.0.0.1:7002", MemberStatus::joining, Liveness::suspect, 1, 4, {7}, 12, ""};
    MemberState removal = a;  // an entry written by the member that removed n1
    removal.declared = MemberStatus::leaving;
    removal.liveness = Liveness::down;
    removal.incarnation += kRemovalIncarnationStep;
    removal.removed_by = "n2";
    return {
        {"gsyn", encode(GossipSyn{"n1",
                                  "tcp://127.0.0.1:7001",
                                  {{"n1", 3, 99, MemberStatus::up, Liveness::alive},
                                   {"n2", 1, 4, MemberStatus::leaving, Liveness::down}}})},
        {"gack", encode(GossipAck{"n2", "tcp://127.0.0.1:7002", {a}, {"n3"}})},
        {"gack2", encode(GossipAck2{"n1", {a, b}})},
        {"gack2_removal", encode(GossipAck2{"n1", {removal}})},
    };
}

std::vector<Seed> object_seeds() {
    node::Object tombstone;
    tombstone.context.set("n1.0000000000000001", 1);
    tombstone.siblings.push_back({node::Dot{"n1.0000000000000001", 1}, std::nullopt});
    node::Object superseded;  // everything seen, nothing left: a context alone
    superseded.context.set("n3.0000000000000003", 9);
    return {
        {"empty", node::encode_object(node::Object{})},
        {"siblings", node::encode_object(sample_object())},
        {"tombstone", node::encode_object(tombstone)},
        {"context_only", node::encode_object(superseded)},
        // [[], [[...]]]: a sibling whose dot the context does not cover.
        {"uncovered_dot", std::string("\x92\x90\x91\x93\xa2n1\x01\xc0", 9)},
    };
}

// A 2-byte little-endian length of the first object, then both (decoders.cpp).
std::string object_pair(const node::Object& a, const node::Object& b) {
    const std::string first = node::encode_object(a);
    std::string out;
    out.push_back(static_cast<char>(first.size() & 0xff));
    out.push_back(static_cast<char>(first.size() >> 8));
    return out + first + node::encode_object(b);
}

std::vector<Seed> merge_seeds() {
    // Two replicas of a key: one wrote over the sample's first sibling, the
    // other saw a concurrent write; and an object against an empty one.
    const node::Object sample = sample_object();
    node::Object overwritten = sample;
    overwritten.context.set("n1.00000000000000a1", 4);
    overwritten.siblings.erase(overwritten.siblings.begin());
    overwritten.siblings.insert(overwritten.siblings.begin(),
                                {node::Dot{"n1.00000000000000a1", 4}, std::string("newer")});
    node::Object concurrent = sample;
    concurrent.context.set("n3.00000000000000c3", 1);
    concurrent.siblings.push_back({node::Dot{"n3.00000000000000c3", 1}, std::string("other")});
    return {
        {"overwrite_vs_concurrent", object_pair(overwritten, concurrent)},
        {"with_empty", object_pair(sample, node::Object{})},
    };
}

std::vector<Seed> context_seeds() {
    node::VersionVector gaps;
    gaps.set("n1.0000000000000001", 10);
    gaps.remove(node::Dot{"n1.0000000000000001", 4});
    gaps.remove(node::Dot{"n1.0000000000000001", 9});
    gaps.set("n2.0000000000000002", 1);
    return {
        {"empty", node::encode_context(node::VersionVector{})},
        {"object_context", node::encode_context(sample_object().context)},
        {"exceptions", node::encode_context(gaps)},
        // A counter above kCounterMax: refused.
        {"counter_max", std::string("\x91\x92\xa2n1\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 14)},
    };
}

std::vector<Seed> meta_seeds() {
    // The first byte picks the decoder (decoders.cpp, meta_record).
    node::meta::HandoffRecord handoffs;
    handoffs["n2"] = {{1, 5}, {9, 9}};
    handoffs["n3"] = {};
    return {
        {"tokens", '\0' + node::meta::encode_tokens({9, 3, 3, UINT64_MAX})},
        {"handoffs", '\1' + node::meta::encode_handoffs(handoffs)},
        {"u64_text", '\2' + node::meta::encode_u64_text(18446744073709551615u)},
        {"format", '\3' + node::meta::encode_u64_text(node::meta::kMetaFormat)},
    };
}

std::vector<Seed> resp_seeds() {
    return {
        {"get", "*2\r\n$3\r\nGET\r\n$1\r\na\r\n"},
        {"set_binary", std::string("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n\0\r\n\xff\r\n", 30)},
        {"pipeline", "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n"},
        {"inline", "SET a 1\r\nGET a\n\r\n"},
        {"empty_arrays", "*0\r\n*-1\r\nPING\r\n"},
        {"bad_length", "*1\r\n$x\r\n"},
        {"unterminated", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$60\r\nabc"},
    };
}

std::vector<Seed> http_seeds() {
    return {
        {"scrape", "GET /metrics HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n"},
        {"pipelined",
         "HEAD /metrics HTTP/1.1\r\n\r\nGET / HTTP/1.0\r\n\r\nGET /x HTTP/1.1\r\n\r\n"},
        {"close", "GET /metrics HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n"},
        {"body", "POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"},
        {"bad", "GET\r\n\r\nGET / HTTP/9\r\n\r\n"},
        {"unfinished", "GET /metrics HTTP/1.1\r\nHost: "},
    };
}

std::vector<Seed> metrics_text_seeds() {
    return {
        {"counter",
         "# HELP kv_a_total A \\ counter\\n.\n# TYPE kv_a_total counter\n"
         "kv_a_total{op=\"get\",code=\"a\\\"b\\\\c\\n\"} 3\n"},
        {"histogram",
         "# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
         "h_sum 0.25\nh_count 2\n"},
        {"special", "g NaN\ng2 -Inf 1700000000000\n# free comment\nuntyped{a=\"\",} 1e-9\n"},
        {"bad", "m{a=1} 1\n"},
    };
}

std::vector<Seed> z85_seeds() {
    // ZeroMQ RFC 32's test vector and a curve key.
    return {
        {"rfc32", "HelloWorld"},
        {"curve_key", *z85_encode(std::string(kCurveKeyBytes, '\x5a'))},
        {"above_2_32", "%%%%%"},
        {"empty", ""},
    };
}

// Batches as the client library and members write them, and the malformed
// shapes split_batch_frame refuses.
std::vector<Seed> batch_seeds() {
    const auto batch_of = [](const std::vector<Seed>& parts) {
        proto::BatchFrame frame;
        for (const Seed& part : parts) frame.add(part.bytes);
        return frame.bytes();
    };
    const std::vector<Seed> client = client_seeds();
    const std::vector<Seed> node = node_seeds();
    std::string one_message = batch_of({client.front()});
    std::string length_past_end = one_message;
    length_past_end[1] = static_cast<char>(length_past_end[1] + 1);
    return {
        {"client_requests", batch_of({client.begin(), client.begin() + 4})},
        {"node_messages", batch_of({node.begin(), node.begin() + 6})},
        {"one_message", one_message},
        {"empty_message", batch_of({Seed{"", ""}, client.front()})},
        {"length_past_end", length_past_end},
        {"marker_only", std::string(1, proto::kBatchFrameMarker)},
    };
}

// Bytes on a link's port: frames (a 4-byte little-endian length, then the
// bytes) shaped as the handshake's commands, whose boxes do not open.
std::vector<Seed> link_seeds() {
    const auto frame = [](const std::string& bytes) {
        std::string out(4, '\0');
        for (size_t i = 0; i < 4; ++i) out[i] = static_cast<char>((bytes.size() >> (8 * i)) & 0xff);
        return out + bytes;
    };
    std::string hello("\x05HELLO\x01", 7);
    hello.push_back('\0');
    hello.append(72, '\0');
    hello.append(32, 'C');     // a short-term key
    hello.append(8, '\0');     // nonce
    hello.append(80, '\x5a');  // a box that does not open
    const std::string initiate = std::string("\x08INITIATE", 9) + std::string(300, 'i');
    return {
        {"hello_shape", frame(hello)},
        {"initiate_first", frame(initiate)},
        {"empty_then_hello", frame("") + frame(hello)},
        {"length_too_large", std::string("\xff\xff\xff\x7f", 4)},
        {"header_only", std::string("\xc8\0\0", 3)},
        {"error_command", frame(std::string("\x05"
                                            "ERROR\x03"
                                            "bad",
                                            10))},
    };
}

}  // namespace

std::vector<Seed> seeds(std::string_view target) {
    if (target == "link_bytes") return link_seeds();
    if (target == "batch_frame") return batch_seeds();
    if (target == "client_frame") return client_seeds();
    if (target == "node_frame") return node_seeds();
    if (target == "gossip_payload") return gossip_seeds();
    if (target == "stored_object") return object_seeds();
    if (target == "object_merge") return merge_seeds();
    if (target == "causal_context") return context_seeds();
    if (target == "meta_record") return meta_seeds();
    if (target == "z85") return z85_seeds();
    if (target == "resp_command") return resp_seeds();
    if (target == "http_request") return http_seeds();
    if (target == "metrics_text") return metrics_text_seeds();
    return {};
}

}  // namespace kv::fuzz
