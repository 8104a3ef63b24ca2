// Links (--link-listen, docs/PROTOCOL.md "Links"): real kvnode processes
// serving the native protocol over kv_link beside their ZeroMQ ROUTER, and
// the client library dialling them as link://HOST:PORT. The same requests,
// the same credentials and grants, the same data whichever way a client comes.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"
#include "client/keys.h"
#include "client/link_dialer.h"
#include "client/protocol.h"
#include "tests/process/process_cluster.h"

using namespace kv;
using namespace kv::test;

namespace {

using Clock = std::chrono::steady_clock;

const proto::Consistency kQuorum{proto::Level::quorum, 0, false};
const proto::Consistency kOne{proto::Level::one, 0, false};

int64_t ms_since(Clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Gives every node of `cluster` a --link-listen on a free loopback port
// (with `flags` before it); returns the client endpoints, link://127.0.0.1:PORT.
std::vector<std::string> listen_for_links(ProcessCluster& cluster,
                                          const std::vector<std::string>& flags = {}) {
    std::vector<std::string> endpoints;
    for (size_t i = 0; i < cluster.size(); ++i) {
        const std::string port = std::to_string(free_loopback_port());
        std::vector<std::string> node_flags = flags;
        node_flags.push_back("--link-listen");
        node_flags.push_back("tcp://127.0.0.1:" + port);
        cluster.set_extra_flags(i, node_flags);
        endpoints.push_back("link://127.0.0.1:" + port);
    }
    return endpoints;
}

// Declares `count` nodes (n = `n_replicas`) with links and starts them all.
std::vector<std::string> start_with_links(ProcessCluster& cluster, size_t count,
                                          uint32_t n_replicas) {
    KV_REQUIRE_OK(cluster.add_nodes(count, n_replicas));
    const std::vector<std::string> links = listen_for_links(cluster);
    KV_REQUIRE_OK(cluster.start_all());
    return links;
}

client::Client connect_client(std::vector<std::string> endpoints,
                              std::optional<client::CurveCredentials> curve = std::nullopt,
                              proto::Consistency consistency = kQuorum) {
    client::ClientOptions options;
    options.curve = std::move(curve);
    options.defaults.consistency = consistency;
    options.defaults.deadline_ms = 3000;
    options.connect_timeout_ms = 2000;
    options.admin_timeout_ms = 3000;
    auto connected = client::Client::connect(std::move(endpoints), options);
    KV_REQUIRE_OK(connected.status());
    return std::move(connected).value();
}

client::CurveCredentials user_credentials(const client::CurveCredentials& cluster) {
    auto pair = client::generate_key_pair();
    REQUIRE(pair);
    return {pair->public_z85, pair->secret_z85, cluster.server_public_z85};
}

// The value of one sample of the node's metrics page, read over `c`.
std::optional<double> metric(client::Client& c, const std::string& sample) {
    auto page = c.stats();
    if (!page) return std::nullopt;
    const std::string& text = page.value();
    size_t at = 0;
    while ((at = text.find(sample + " ", at)) != std::string::npos) {
        if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + sample.size() + 1));
        at += sample.size();
    }
    return std::nullopt;
}

}  // namespace

TEST_CASE(
    "link: a cluster serves pipelined writes and reads over links, the same data as over "
    "ZeroMQ") {
    ProcessCluster cluster("link-serve");
    const std::vector<std::string> links = start_with_links(cluster, 3, 3);

    client::ClientOptions options;
    options.defaults.consistency = kQuorum;
    options.defaults.deadline_ms = 5000;
    auto made = client::AsyncClient::connect({links[0]}, options);
    KV_REQUIRE_OK(made.status());
    client::AsyncClient async = std::move(made).value();

    // 500 writes in flight at once, then 500 reads: batch frames both ways.
    constexpr int kKeys = 500;
    int writes_ok = 0;
    std::vector<std::string> failures;
    for (int k = 0; k < kKeys; ++k) {
        async.submit_put("key" + std::to_string(k), "value" + std::to_string(k), std::nullopt,
                         options.defaults, [&](Result<client::WriteResult> r) {
                             if (r) {
                                 ++writes_ok;
                             } else {
                                 failures.push_back(r.status().to_string());
                             }
                         });
    }
    const auto started = Clock::now();
    while (async.in_flight() > 0 && ms_since(started) < 30'000) async.poll(100);
    INFO((failures.empty() ? std::string() : failures.front()));
    REQUIRE(writes_ok == kKeys);

    std::map<int, std::string> read;
    for (int k = 0; k < kKeys; ++k) {
        async.submit_get("key" + std::to_string(k), options.defaults,
                         [&read, k](Result<client::GetResult> r) {
                             read[k] = r ? (r->values.size() == 1 ? r->values[0] : "siblings")
                                         : r.status().to_string();
                         });
    }
    while (async.in_flight() > 0 && ms_since(started) < 60'000) async.poll(100);
    REQUIRE(read.size() == kKeys);
    for (int k = 0; k < kKeys; ++k) {
        INFO(k);
        CHECK(read[k] == "value" + std::to_string(k));
    }

    // The same data through another node's ROUTER, and writes over ZeroMQ
    // read back over a link of a third node.
    client::Client zmq_client = connect_client({cluster.endpoint(1)});
    auto over_zmq = zmq_client.get("key7");
    KV_REQUIRE_OK(over_zmq.status());
    CHECK(over_zmq->values == std::vector<std::string>{"value7"});
    KV_REQUIRE_OK(zmq_client.put("written-over-zmq", "z").status());
    client::Client link_client = connect_client({links[2]});
    auto over_link = link_client.get("written-over-zmq");
    KV_REQUIRE_OK(over_link.status());
    CHECK(over_link->values == std::vector<std::string>{"z"});

    // The node counts its links.
    const std::optional<double> open = metric(link_client, "kv_connections{protocol=\"link\"}");
    REQUIRE(open);
    CHECK(*open >= 1);
}

TEST_CASE("link: a frame that does not decode gets a clear error and the link keeps serving") {
    ProcessCluster cluster("link-bad-frame");
    const std::vector<std::string> links = start_with_links(cluster, 1, 1);

    // A bare link (no client library) that sends what it likes.
    std::vector<std::string> replies;
    bool up = false;
    client::LinkDialer::Callbacks callbacks;
    callbacks.on_up = [&](const std::string&) { up = true; };
    callbacks.on_frame = [&](const std::string&, std::string_view frame) {
        replies.emplace_back(frame);
    };
    callbacks.on_down = [&](const std::string&, bool, const Status&) { up = false; };
    auto made = client::LinkDialer::make({}, callbacks);
    KV_REQUIRE_OK(made.status());
    client::LinkDialer& dialer = *made.value();
    auto endpoint = client::parse_tcp_endpoint("tcp://" + links[0].substr(7));
    KV_REQUIRE_OK(endpoint.status());
    dialer.add("node", endpoint.value());
    auto now_ms = [] {
        return static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
                .count());
    };
    auto pump_until = [&](const std::function<bool()>& done) {
        const auto started = Clock::now();
        while (!done() && ms_since(started) < 5000) {
            dialer.poll(now_ms());
            dialer.flush();
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return done();
    };
    REQUIRE(pump_until([&] { return up; }));

    KV_REQUIRE_OK(dialer.send("node", "\xc1 not msgpack"));
    REQUIRE(pump_until([&] { return replies.size() == 1; }));
    auto error = proto::decode(replies[0]);
    KV_REQUIRE_OK(error.status());
    REQUIRE(std::holds_alternative<proto::ErrorResponse>(error.value()));
    CHECK(std::get<proto::ErrorResponse>(error.value()).code == ErrorCode::bad_request);

    // The link still serves.
    const uint64_t id = next_request_id();
    KV_REQUIRE_OK(dialer.send("node", proto::encode(proto::GetRequest{id, "k", kOne, 1000})));
    REQUIRE(pump_until([&] { return replies.size() == 2; }));
    auto answer = proto::decode(replies[1]);
    KV_REQUIRE_OK(answer.status());
    CHECK(proto::request_id(answer.value()) == id);
    CHECK(reply_code(answer.value()) == ErrorCode::not_found);
    CHECK(up);
}

TEST_CASE(
    "link: with a cluster key, links admit members and users by grant and refuse "
    "strangers at the handshake") {
    ProcessCluster cluster("link-keys");
    KV_REQUIRE_OK(cluster.add_nodes(1, 1));
    KV_REQUIRE_OK(cluster.use_cluster_key());
    const client::CurveCredentials cluster_key = *cluster.cluster_credentials();
    const client::CurveCredentials admin = user_credentials(cluster_key);
    const std::vector<std::string> links =
        listen_for_links(cluster, {"--bootstrap-admin", "admin=" + admin.client_public_z85});
    KV_REQUIRE_OK(cluster.start_all());

    client::Client as_admin = connect_client(links, admin, kOne);
    KV_REQUIRE_OK(as_admin.put("r/a", "1").status());
    const client::CurveCredentials reader = user_credentials(cluster_key);
    KV_REQUIRE_OK(as_admin.user_add("reader", reader.client_public_z85).status());
    KV_REQUIRE_OK(as_admin.grant("reader", proto::Permission::read, "r/").status());

    client::Client as_reader = connect_client(links, reader, kOne);
    auto read = as_reader.get("r/a");
    KV_REQUIRE_OK(read.status());
    CHECK(read->values == std::vector<std::string>{"1"});
    CHECK(as_reader.put("r/b", "2").status().code() == ErrorCode::unauthorized);
    CHECK(as_reader.get("w/x").status().code() == ErrorCode::unauthorized);

    // The cluster key is a member's: everything is allowed.
    client::Client as_member = connect_client(links, cluster_key, kOne);
    KV_REQUIRE_OK(as_member.put("w/x", "3").status());

    // A stranger is refused at the handshake, at once rather than at a deadline.
    client::Client as_stranger = connect_client(links, user_credentials(cluster_key), kOne);
    const auto started = Clock::now();
    auto refused = as_stranger.get("r/a");
    CHECK(refused.status().code() == ErrorCode::unauthorized);
    CHECK(ms_since(started) < 1500);
    const std::optional<double> counted = metric(as_admin, "kv_handshakes_refused_total");
    REQUIRE(counted);
    CHECK(*counted >= 1);

    // A client that expects another cluster key refuses the node.
    client::CurveCredentials wrong_server = admin;
    wrong_server.server_public_z85 = user_credentials(cluster_key).client_public_z85;
    client::Client misled = connect_client(links, wrong_server, kOne);
    CHECK(misled.get("r/a").status().code() == ErrorCode::unauthorized);

    // A user deleted loses its rights on the link it holds open.
    KV_REQUIRE_OK(as_admin.user_del("reader").status());
    CHECK(as_reader.get("r/a").status().code() == ErrorCode::unauthorized);
}

TEST_CASE(
    "link: a node killed with kill -9 and restarted keeps every acknowledged write, and the "
    "client's link comes back") {
    ProcessCluster cluster("link-restart");
    const std::vector<std::string> links = start_with_links(cluster, 1, 1);

    client::Client c = connect_client(links, std::nullopt, kOne);
    constexpr int kKeys = 100;
    for (int k = 0; k < kKeys; ++k) {
        KV_REQUIRE_OK(c.put("durable" + std::to_string(k), std::to_string(k)).status());
    }
    KV_REQUIRE_OK(cluster.kill_hard(0));
    // The link is gone: a read fails (no connection, or lost), bounded by the
    // connect timeout rather than hanging.
    const auto failed_at = Clock::now();
    CHECK_FALSE(c.get("durable0").ok());
    CHECK(ms_since(failed_at) < 6000);

    KV_REQUIRE_OK(cluster.start_and_wait(0));
    std::optional<Result<client::GetResult>> first;
    const auto started = Clock::now();
    while (ms_since(started) < 10'000) {
        first = c.get("durable0");
        if (first->ok()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    REQUIRE(first);
    KV_REQUIRE_OK(first->status());
    for (int k = 0; k < kKeys; ++k) {
        INFO(k);
        auto read = c.get("durable" + std::to_string(k));
        KV_REQUIRE_OK(read.status());
        CHECK(read->values == std::vector<std::string>{std::to_string(k)});
    }
}

TEST_CASE(
    "link: members advertise their links by gossip, send each other everything over them, and "
    "keep serving across a kill -9") {
    ProcessCluster cluster("link-members");
    cluster.use_gossip({"--gossip-interval-ms", "100", "--join-wait-ms", "3000"});
    KV_REQUIRE_OK(cluster.add_nodes(3, 3));
    // With a cluster key: a member's link must prove it to be taken for one
    // (a user's key could not send node-to-node requests at all).
    KV_REQUIRE_OK(cluster.use_cluster_key());
    const client::CurveCredentials member = *cluster.cluster_credentials();
    listen_for_links(cluster);
    KV_REQUIRE_OK(cluster.start_all());

    // Every node has both other members' links in, and a write at `all` passes.
    std::vector<client::Client> over_zmq;
    for (size_t i = 0; i < cluster.size(); ++i) {
        over_zmq.push_back(connect_client({cluster.endpoint(i)}, member, kQuorum));
    }
    auto meshed = [&] {
        for (auto& c : over_zmq) {
            const std::optional<double> in = metric(c, "kv_connections{protocol=\"link\"}");
            if (!in || *in < 2) return false;
        }
        return over_zmq[0]
            .put("probe", "1", std::nullopt,
                 client::RequestOptions{proto::Consistency{proto::Level::all, 0, false}, 2000})
            .ok();
    };
    auto wait_meshed = [&] {
        const auto started = Clock::now();
        while (!meshed() && ms_since(started) < 30'000) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return meshed();
    };
    REQUIRE(wait_meshed());

    // The coordinator's messages to its replicas go over links only.
    client::Client& coordinator = over_zmq[0];
    const std::string over_links = "kv_peer_frames_sent_total{transport=\"link\"}";
    const std::string over_dealers = "kv_peer_frames_sent_total{transport=\"zmq\"}";
    const std::optional<double> links_before = metric(coordinator, over_links);
    const std::optional<double> dealers_before = metric(coordinator, over_dealers);
    REQUIRE(links_before);
    REQUIRE(dealers_before);
    constexpr int kKeys = 100;
    for (int k = 0; k < kKeys; ++k) {
        KV_REQUIRE_OK(coordinator.put("m" + std::to_string(k), std::to_string(k)).status());
    }
    for (int k = 0; k < kKeys; ++k) {
        auto read = coordinator.get("m" + std::to_string(k));
        KV_REQUIRE_OK(read.status());
        CHECK(read->values == std::vector<std::string>{std::to_string(k)});
    }
    // Each write and read asked two replicas: at least one frame each.
    CHECK(metric(coordinator, over_links).value_or(0) - *links_before >= 2 * kKeys);
    CHECK(metric(coordinator, over_dealers).value_or(-1) == *dealers_before);

    // A replica killed: quorum writes go on over the survivors' links.
    KV_REQUIRE_OK(cluster.kill_hard(2));
    for (int k = 0; k < kKeys; ++k) {
        KV_REQUIRE_OK(coordinator.put("a" + std::to_string(k), std::to_string(k)).status());
    }
    // Back on its ports: its links come back both ways.
    KV_REQUIRE_OK(cluster.start_and_wait(2));
    over_zmq[2] = connect_client({cluster.endpoint(2)}, member, kQuorum);
    REQUIRE(wait_meshed());
    const client::RequestOptions all{proto::Consistency{proto::Level::all, 0, false}, 3000};
    for (int k = 0; k < kKeys; ++k) {
        INFO(k);
        for (const char* prefix : {"m", "a"}) {
            auto read = over_zmq[2].get(prefix + std::to_string(k), all);
            KV_REQUIRE_OK(read.status());
            CHECK(read->values == std::vector<std::string>{std::to_string(k)});
        }
    }
}

TEST_CASE(
    "link: kvbench drives many connections from a few threads and every operation is "
    "answered, over links and over ZeroMQ") {
    ProcessCluster cluster("link-kvbench");
    const std::vector<std::string> links = start_with_links(cluster, 3, 3);
    const auto kvbench = std::filesystem::path(cluster.node_binary()).parent_path() / "kvbench";
    const std::string zmq_nodes =
        cluster.endpoint(0) + "," + cluster.endpoint(1) + "," + cluster.endpoint(2);
    for (const std::string& nodes : {links[0] + "," + links[1] + "," + links[2], zmq_nodes}) {
        INFO(nodes);
        // 7 connections over 3 threads: groups of 3, 2 and 2 clients (PollGroup).
        const CommandResult run =
            run_command(kvbench.string() + " --no-key --node " + nodes +
                        " --keys 300 --load --mix ycsb-a --ops 1500 --connections 7 --threads 3"
                        " --pipeline 4 --timeout-ms 5000 --json");
        INFO(run.output);
        REQUIRE(run.exit_code == 0);
        CHECK(run.output.find("\"threads\":3,") != std::string::npos);
        CHECK(run.output.find("\"ops\":1500,") != std::string::npos);
        CHECK(run.output.find("\"errors\":{}") != std::string::npos);
    }
}

TEST_CASE(
    "link: kvbench's connections share the keys' contexts, so after --prime their puts "
    "update the keys instead of leaving siblings") {
    ProcessCluster cluster("link-kvbench-prime");
    const std::vector<std::string> links = start_with_links(cluster, 3, 3);
    const auto kvbench = std::filesystem::path(cluster.node_binary()).parent_path() / "kvbench";
    const std::string nodes = links[0] + "," + links[1] + "," + links[2];
    const std::string common = kvbench.string() + " --no-key --node " + nodes +
                               " --keys 2000 --timeout-ms 5000 --json --mix put-only";
    const CommandResult loaded = run_command(common + " --load --ops 1 --connections 2");
    INFO(loaded.output);
    REQUIRE(loaded.exit_code == 0);
    // A new process, as each benchmark round is: it knows no context until
    // --prime reads every key. Each connection then puts about one key in
    // two; with a context table per connection (or without --prime) each
    // connection's first put to a key was blind, and ~9 in 10 keys ended with
    // 2 or more siblings. Four puts in flight over 2,000 keys rarely meet on
    // one key (a few keys in the run), so a sample of 40 keys shows at most a
    // couple.
    const CommandResult run =
        run_command(common + " --prime --ops 4000 --connections 4 --threads 2 --pipeline 1");
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    CHECK(run.output.find("\"errors\":{}") != std::string::npos);
    client::Client c = connect_client({cluster.endpoint(0)});
    int with_siblings = 0;
    for (int k = 0; k < 2000; k += 50) {
        char key[32];
        std::snprintf(key, sizeof key, "key%010d", k);
        auto got = c.get(key);
        KV_REQUIRE_OK(got.status());
        if (got->values.size() > 1) ++with_siblings;
    }
    CHECK(with_siblings <= 3);
}
