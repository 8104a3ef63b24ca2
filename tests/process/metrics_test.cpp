// The metrics page (--metrics-listen) and kvctl stats with real kvnode
// processes: scraped with a real HTTP client (Python's urllib) and parsed with
// Prometheus's own parser (python3-prometheus-client), the figures checked
// against the requests the test made; then input no scraper would send.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "client/client.h"
#include "client/keys.h"
#include "client/metrics.h"
#include "client/protocol.h"
#include "tests/process/process_cluster.h"
#include "tests/process/tcp_client.h"

using namespace kv;
using namespace kv::test;

namespace {

using Clock = std::chrono::steady_clock;

client::CurveCredentials new_user_credentials(const client::CurveCredentials& cluster) {
    auto pair = client::generate_key_pair();
    REQUIRE(pair);
    return {pair->public_z85, pair->secret_z85, cluster.server_public_z85};
}

// metrics_scrape.py's output: sample (name{labels}, labels sorted) -> value.
std::map<std::string, double> scraped(const CommandResult& result) {
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
    std::map<std::string, double> samples;
    std::istringstream lines(result.output);
    std::string line;
    while (std::getline(lines, line)) {
        const size_t space = line.rfind(' ');
        if (space == std::string::npos || line.rfind("families ", 0) == 0) continue;
        samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
    return samples;
}

CommandResult scrape(const std::string& source, const std::string& stdin_file = "") {
    return run_command("timeout 30 /usr/bin/python3 " KV_PROCESS_TEST_DIR "/metrics_scrape.py " +
                       source + (stdin_file.empty() ? "" : " < " + stdin_file));
}

double value(const std::map<std::string, double>& samples, const std::string& name) {
    auto it = samples.find(name);
    INFO(name);
    REQUIRE(it != samples.end());
    return it->second;
}

// Three nodes with a cluster key and a bootstrap admin, each serving its
// metrics page; node 0 also speaks Redis as the admin.
struct MetricsCluster {
    ProcessCluster cluster{"metrics"};
    client::CurveCredentials admin;
    std::vector<uint16_t> metrics_ports;
    uint16_t resp_port = free_loopback_port();

    MetricsCluster() {
        KV_REQUIRE_OK(cluster.add_nodes(3, 3));
        KV_REQUIRE_OK(cluster.use_cluster_key());
        admin = new_user_credentials(*cluster.cluster_credentials());
        for (size_t i = 0; i < cluster.size(); ++i) {
            metrics_ports.push_back(free_loopback_port());
            std::vector<std::string> flags = {
                "--bootstrap-admin", "admin=" + admin.client_public_z85, "--metrics-listen",
                "127.0.0.1:" + std::to_string(metrics_ports.back())};
            if (i == 0) {
                flags.insert(flags.end(),
                             {"--resp-listen", "tcp://127.0.0.1:" + std::to_string(resp_port),
                              "--resp-default-user", "admin"});
            }
            cluster.set_extra_flags(i, flags);
        }
        KV_REQUIRE_OK(cluster.start_all());
    }

    std::string url(size_t i) const {
        return "http://127.0.0.1:" + std::to_string(metrics_ports.at(i)) + "/metrics";
    }
};

}  // namespace

TEST_CASE("the metrics page and kvctl stats count what clients did", "[process][metrics]") {
    MetricsCluster c;
    client::ClientOptions options;
    options.curve = c.admin;
    auto as_admin = client::Client::connect({c.cluster.endpoint(0)}, options);
    KV_REQUIRE_OK(as_admin.status());
    auto& admin = as_admin.value();

    // What the test does, to be found in node 0's figures: 20 quorum puts,
    // 10 quorum gets, 5 gets at one, a get of a missing key, a get refused
    // for want of a grant, a Redis SET and GET.
    for (int i = 0; i < 20; ++i) {
        KV_REQUIRE_OK(admin.put("k" + std::to_string(i), "v").status());
    }
    for (int i = 0; i < 10; ++i) KV_REQUIRE_OK(admin.get("k" + std::to_string(i)).status());
    client::RequestOptions one;
    one.consistency.level = proto::Level::one;
    for (int i = 0; i < 5; ++i) KV_REQUIRE_OK(admin.get("k" + std::to_string(i), one).status());
    CHECK(admin.get("missing").status().code() == ErrorCode::not_found);

    const client::CurveCredentials nobody = new_user_credentials(*c.cluster.cluster_credentials());
    KV_REQUIRE_OK(admin.user_add("nobody", nobody.client_public_z85).status());
    client::ClientOptions nobody_options;
    nobody_options.curve = nobody;
    auto as_nobody = client::Client::connect({c.cluster.endpoint(0)}, nobody_options);
    KV_REQUIRE_OK(as_nobody.status());
    CHECK(as_nobody->get("k1").status().code() == ErrorCode::unauthorized);

    CHECK(
        run_command("timeout 20 redis-cli -p " + std::to_string(c.resp_port) + " set r 1").output ==
        "OK\n");
    CHECK(run_command("timeout 20 redis-cli -p " + std::to_string(c.resp_port) + " get r").output ==
          "1\n");

    const auto samples = scraped(scrape(c.url(0)));
    CHECK(value(samples, R"(kv_requests_total{op="put"})") == 21);
    CHECK(value(samples, R"(kv_requests_total{op="get"})") == 18);
    CHECK(value(samples, R"(kv_request_duration_seconds_count{level="quorum",op="put"})") == 21);
    CHECK(value(samples, R"(kv_request_duration_seconds_count{level="quorum",op="get"})") == 13);
    CHECK(value(samples, R"(kv_request_duration_seconds_count{level="one",op="get"})") == 5);
    CHECK(value(samples, R"(kv_request_duration_seconds_bucket{le="+Inf",level="one",op="get"})") ==
          5);
    // Loopback requests take well under the 10 s of the last finite bucket.
    CHECK(value(samples,
                R"(kv_request_duration_seconds_bucket{le="10",level="quorum",op="put"})") == 21);
    CHECK(value(samples, R"(kv_request_duration_seconds_sum{level="quorum",op="put"})") > 0);
    CHECK(value(samples, R"(kv_request_errors_total{code="not_found",op="get"})") == 1);
    CHECK(value(samples, R"(kv_request_errors_total{code="unauthorized",op="get"})") == 1);
    CHECK(value(samples, R"(kv_requests_refused_total{reason="unauthorized"})") == 1);
    CHECK(value(samples, R"(kv_redis_commands_total{})") == 2);
    CHECK(value(samples, R"(kv_members{status="up"})") == 3);
    CHECK(value(samples, R"(kv_ring_members{})") == 3);
    const std::string node_id = "node_id=\"" + c.cluster.node_id(0) + "\"}";
    bool info_found = false;
    for (const auto& [name, v] : samples) {
        info_found |= name.rfind("kv_node_info{actor=\"", 0) == 0 && name.ends_with(node_id);
    }
    CHECK(info_found);
    CHECK(value(samples, R"(kv_commit_duration_seconds_count{})") > 0);
    CHECK(value(samples, R"(kv_commit_writes_total{})") >= 21);
    CHECK(value(samples, R"(kv_connections{protocol="native"})") >= 2);  // admin, nobody, members
    CHECK(value(samples, R"(kv_connections{protocol="http"})") >= 1);    // this scrape
    CHECK(value(samples, R"(kv_store_keys{})") >= 21);
    CHECK(value(samples, R"(kv_store_disk_bytes{})") > 0);
    CHECK(value(samples, R"(process_cpu_seconds_total{})") > 0);
}

namespace {

std::string write_file(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

}  // namespace

TEST_CASE("kvctl stats prints the page's figures, as text and as JSON", "[process][metrics]") {
    MetricsCluster c;
    const std::string dir = std::filesystem::path(c.cluster.cluster_key_file()).parent_path();
    const std::string key_file = dir + "/admin.key";
    client::Credentials admin{{c.admin.client_public_z85, c.admin.client_secret_z85},
                              c.admin.server_public_z85};
    KV_REQUIRE_OK(client::save_credentials(key_file, admin));
    const std::string kvctl = "--key " + key_file + " --node " + c.cluster.endpoint(1) + " ";
    CHECK(run_kvctl(c.cluster, kvctl + "put a 1").empty());

    // The text parses with Prometheus's parser and has node 1's figures.
    const std::string text = run_kvctl(c.cluster, kvctl + "stats");
    const auto samples = scraped(scrape("-", write_file(dir + "/stats.txt", text)));
    CHECK(value(samples, R"(kv_requests_total{op="put"})") == 1);
    CHECK(value(samples, R"(kv_requests_total{op="stats"})") == 1);
    CHECK(value(samples, R"(kv_request_duration_seconds_count{level="quorum",op="put"})") == 1);

    // The same families as the page (the values move: the page is scraped later).
    const auto page = scraped(scrape(c.url(1)));
    std::set<std::string> text_names, page_names;
    for (const auto& [name, v] : samples) text_names.insert(name.substr(0, name.find('{')));
    for (const auto& [name, v] : page) page_names.insert(name.substr(0, name.find('{')));
    CHECK(text_names == page_names);

    // --json is the same text, parsed: valid JSON with every family.
    const std::string json = run_kvctl(c.cluster, kvctl + "--json stats");
    auto families = metrics::parse(text);
    KV_REQUIRE_OK(families.status());
    const CommandResult check = run_command(
        "/usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); "
        "print(len(d[\"families\"]), sum(len(f[\"samples\"]) for f in d[\"families\"]))' < " +
        write_file(dir + "/stats.json", json));
    INFO(json.substr(0, 400));
    CHECK(check.exit_code == 0);
    size_t sample_count = 0;
    for (const auto& f : families.value()) sample_count += f.samples.size();
    CHECK(check.output ==
          std::to_string(families->size()) + " " + std::to_string(sample_count) + "\n");
}

TEST_CASE("the metrics page answers bad HTTP with an error and serves on", "[process][metrics]") {
    MetricsCluster c;
    const uint16_t port = c.metrics_ports.at(0);
    struct Case {
        std::string request;
        std::string status_line;
    };
    const std::vector<Case> cases = {
        {"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request"},
        {"GET /metrics HTTP/2.0\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported"},
        {"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.1 400 Bad Request"},
        {"GET /metrics HTTP/1.1\r\nX: " + std::string(20'000, 'x') + "\r\n\r\n",
         "HTTP/1.1 431 Request Header Fields Too Large"},
        {"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", "HTTP/1.1 400 Bad Request"},
        // Never finished, past the bound: answered without waiting for the end.
        {std::string(20'000, 'x'), "HTTP/1.1 431 Request Header Fields Too Large"},
    };
    for (const auto& k : cases) {
        INFO(k.request.substr(0, 60));
        Tcp tcp(port);
        tcp.send(k.request);
        bool closed = false;
        const std::string got = tcp.receive(1 << 20, 5000, &closed);
        CHECK(got.rfind(k.status_line + "\r\n", 0) == 0);
        CHECK(closed);
    }
    {
        // Keep-alive: two pipelined requests, two answers in order, the
        // connection still open; then HTTP/1.0 closes after its answer.
        Tcp tcp(port);
        tcp.send("GET /nope HTTP/1.1\r\nHost: x\r\n\r\nHEAD /metrics HTTP/1.1\r\n\r\n");
        bool closed = false;
        const std::string got = tcp.receive(1 << 20, 1000, &closed);
        CHECK_FALSE(closed);
        CHECK(got.rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
        const size_t second = got.find("HTTP/1.1 200 OK\r\n");
        CHECK(second != std::string::npos);
        CHECK(got.find("# HELP") == std::string::npos);  // HEAD: no body
        tcp.send("POST /metrics HTTP/1.0\r\n\r\n");
        const std::string refused = tcp.receive(1 << 20, 5000, &closed);
        CHECK(refused.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0) == 0);
        CHECK(closed);
    }
    // The page still serves, and its scrape parses.
    const auto samples = scraped(scrape(c.url(0)));
    CHECK(value(samples, R"(kv_members{status="up"})") >= 1);
}
