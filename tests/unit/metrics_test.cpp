// The metrics pieces without sockets: the exposition writer and parser
// (client/metrics.h), the latency histogram, the request tracker and the HTTP
// side of the metrics page (node/metrics/).
#include <catch2/catch.hpp>

#include <cmath>

#include "client/metrics.h"
#include "node/metrics/histogram.h"
#include "node/metrics/http_server.h"
#include "node/metrics/request_metrics.h"

using namespace kv;
using kv::metrics::Exposition;
using kv::metrics::Type;

namespace {

const kv::metrics::Sample* find(const std::vector<kv::metrics::Family>& families,
                                std::string_view name, std::vector<kv::metrics::Label> labels) {
    for (const auto& f : families) {
        for (const auto& s : f.samples) {
            if (s.name == name && s.labels == labels) return &s;
        }
    }
    return nullptr;
}

}  // namespace

TEST_CASE("exposition text round-trips through the parser, escapes included", "[metrics]") {
    Exposition out;
    out.family("kv_a_total", Type::counter, "help with \\ and\nnewline");
    out.sample("kv_a_total", {{"op", "get"}, {"code", "quote\" back\\ nl\n"}},
               uint64_t{18446744073709551615ULL});
    out.gauge("kv_b", "a gauge", 0.25);
    out.family("kv_c_seconds", Type::histogram, "h");
    node::metrics::LatencyHistogram h;
    h.observe(50);        // first bucket
    h.observe(100);       // bounds are inclusive
    h.observe(101);       // second
    h.observe(99999999);  // past 10 s: +Inf only
    h.write(out, "kv_c_seconds", {{"op", "put"}});

    auto parsed = kv::metrics::parse(out.text());
    REQUIRE(parsed);
    const auto& families = parsed.value();
    REQUIRE(families.size() == 3);
    CHECK(families[0].name == "kv_a_total");
    CHECK(families[0].type == Type::counter);
    CHECK(families[0].help == "help with \\ and\nnewline");
    REQUIRE(families[0].samples.size() == 1);
    CHECK(families[0].samples[0].labels[1].value == "quote\" back\\ nl\n");
    // Counters are written as integers: exact up to 2^53 once parsed as doubles.
    CHECK(out.text().find("} 18446744073709551615\n") != std::string::npos);
    CHECK(families[1].samples[0].value == 0.25);
    CHECK(families[2].type == Type::histogram);
    // 16 finite buckets, +Inf, sum, count: all in the histogram's family.
    CHECK(families[2].samples.size() == 19);
    CHECK(find(families, "kv_c_seconds_bucket", {{"op", "put"}, {"le", "0.0001"}})->value == 2);
    CHECK(find(families, "kv_c_seconds_bucket", {{"op", "put"}, {"le", "0.00025"}})->value == 3);
    CHECK(find(families, "kv_c_seconds_bucket", {{"op", "put"}, {"le", "10"}})->value == 3);
    CHECK(find(families, "kv_c_seconds_bucket", {{"op", "put"}, {"le", "+Inf"}})->value == 4);
    CHECK(find(families, "kv_c_seconds_count", {{"op", "put"}})->value == 4);
    CHECK(std::abs(find(families, "kv_c_seconds_sum", {{"op", "put"}})->value - 100.00025) < 1e-9);
    // Writing what was parsed gives the same families back (JSON is of them).
    CHECK(kv::metrics::to_json(families).find("\"type\":\"histogram\"") != std::string::npos);
}

TEST_CASE("the parser takes what Prometheus writes and refuses what it would", "[metrics]") {
    auto ok = kv::metrics::parse(
        "# a free comment\n"
        "untyped_metric 1 1700000000000\n"
        "  spaced{a=\"1\" , b=\"2\",} +Inf\n"
        "nan_metric NaN\n");
    REQUIRE(ok);
    REQUIRE(ok->size() == 3);
    CHECK(ok.value()[0].type == Type::untyped);
    CHECK(std::isinf(ok.value()[1].samples[0].value));
    CHECK(std::isnan(ok.value()[2].samples[0].value));
    for (const char* bad :
         {"1bad 1\n", "m{a=1} 1\n", "m{a=\"1} 1\n", "m{a=\"\\x\"} 1\n", "m 1 notatime\n", "m abc\n",
          "m\n", "# TYPE m sometype\n", "m{a=\"1\",a=\"2\"} 1\n", "m 1\n# TYPE m counter\n"}) {
        INFO(bad);
        auto parsed = kv::metrics::parse(bad);
        REQUIRE_FALSE(parsed);
        CHECK(parsed.status().code() == ErrorCode::invalid_argument);
        CHECK(parsed.status().message().find("line") != std::string::npos);
    }
}

TEST_CASE("request metrics time client requests from arrival to reply", "[metrics]") {
    node::metrics::RequestMetrics m;
    const node::ReplyTo alice{"alice"}, bob{"bob"};
    proto::Consistency one{proto::Level::one, 0, false};
    proto::Consistency strict{proto::Level::quorum, 0, true};
    m.on_request(alice, proto::GetRequest{1, "k", one, 0}, 1000);
    m.on_request(bob, proto::GetRequest{1, "k", strict, 0}, 1000);  // same id, other client
    m.on_request(alice, proto::PutRequest{2, "k", "v", std::nullopt, {}, 0, false}, 1000);
    m.on_request(alice, proto::StatusRequest{3}, 1000);
    // An explicit count, strict: level "count_strict".
    m.on_request(alice, proto::DelRequest{5, "k", std::nullopt, {proto::Level::all, 2, true}, 0},
                 1000);
    // A member's message is no client request, nor is a reply: ignored.
    m.on_request(alice, node::ReplicaReadRequest{4, "k"}, 1000);
    m.on_request(alice, proto::ErrorResponse{6, ErrorCode::timeout, ""}, 1000);
    CHECK(m.timed() == 5);

    m.on_reply(alice, proto::GetResponse{1, ErrorCode::ok, "", {"v"}, "", {}}, 1300);
    m.on_reply(bob, proto::ErrorResponse{1, ErrorCode::timeout, "late"}, 6000000);
    m.on_reply(alice, proto::WriteResponse{2, ErrorCode::not_found, "", "", {}}, 2000);
    proto::StatusResponse status;
    status.id = 3;
    m.on_reply(alice, status, 2000);
    m.on_reply(alice, proto::WriteResponse{5, ErrorCode::ok, "", "", {}}, 1050);
    m.on_reply(alice, proto::GetResponse{99, ErrorCode::ok, "", {}, "", {}}, 2000);  // unknown id
    CHECK(m.timed() == 0);

    Exposition out;
    m.write(out);
    auto parsed = kv::metrics::parse(out.text());
    REQUIRE(parsed);
    const auto& f = parsed.value();
    CHECK(find(f, "kv_requests_total", {{"op", "get"}})->value == 2);
    CHECK(find(f, "kv_requests_total", {{"op", "status"}})->value == 1);
    CHECK(find(f, "kv_requests_total", {{"op", "r_read"}}) == nullptr);
    CHECK(find(f, "kv_requests_total", {{"op", "error"}}) == nullptr);
    CHECK(find(f, "kv_request_duration_seconds_count", {{"op", "del"}, {"level", "count_strict"}})
              ->value == 1);
    CHECK(find(f, "kv_request_duration_seconds_bucket",
               {{"op", "get"}, {"level", "one"}, {"le", "0.0005"}})
              ->value == 1);
    CHECK(find(f, "kv_request_duration_seconds_bucket",
               {{"op", "get"}, {"level", "one"}, {"le", "0.00025"}})
              ->value == 0);
    CHECK(find(f, "kv_request_duration_seconds_bucket",
               {{"op", "get"}, {"level", "quorum_strict"}, {"le", "5"}})
              ->value == 0);
    CHECK(find(f, "kv_request_duration_seconds_bucket",
               {{"op", "get"}, {"level", "quorum_strict"}, {"le", "10"}})
              ->value == 1);
    CHECK(
        find(f, "kv_request_duration_seconds_count", {{"op", "put"}, {"level", "quorum"}})->value ==
        1);
    CHECK(find(f, "kv_request_errors_total", {{"op", "get"}, {"code", "timeout"}})->value == 1);
    CHECK(find(f, "kv_request_errors_total", {{"op", "put"}, {"code", "not_found"}})->value == 1);
}

TEST_CASE("request metrics stay bounded when replies never come", "[metrics]") {
    node::metrics::RequestMetrics m;
    const node::ReplyTo route{"r"};
    for (uint64_t id = 1; id <= node::metrics::RequestMetrics::kTimedMax + 10; ++id) {
        m.on_request(route, proto::GetRequest{id, "k", {}, 0}, 0);
    }
    CHECK(m.timed() == node::metrics::RequestMetrics::kTimedMax);
    Exposition out;
    m.write(out);
    auto parsed = kv::metrics::parse(out.text());
    REQUIRE(parsed);
    CHECK(find(parsed.value(), "kv_requests_untimed_total", {})->value == 10);
    CHECK(find(parsed.value(), "kv_requests_total", {{"op", "get"}})->value ==
          node::metrics::RequestMetrics::kTimedMax + 10);
}

namespace {

struct Http {
    int renders = 0;
    node::metrics::HttpServer server{[this] {
        ++renders;
        return std::string("# TYPE x counter\nx_total 1\n");
    }};
    std::vector<node::metrics::HttpServer::Output> take() {
        std::vector<node::metrics::HttpServer::Output> out;
        server.take_output(out);
        return out;
    }
};

}  // namespace

TEST_CASE("the metrics page speaks enough HTTP/1.1", "[metrics]") {
    Http h;
    h.server.open(1);
    // Arriving in pieces: nothing until the head is complete.
    h.server.receive(1, "GET /metrics?x=1 HTTP/1.1\r\nHo");
    CHECK(h.take().empty());
    h.server.receive(1, "st: a\r\nAccept-Encoding: gzip\r\n\r\n");
    auto out = h.take();
    REQUIRE(out.size() == 1);
    CHECK(out[0].bytes.rfind("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4", 0) == 0);
    CHECK(out[0].bytes.find("Content-Length: 27\r\n") != std::string::npos);
    CHECK(out[0].bytes.ends_with("\r\n\r\n# TYPE x counter\nx_total 1\n"));
    CHECK_FALSE(out[0].close_after);
    CHECK(h.renders == 1);

    // Pipelined: each answered in order; HEAD renders but sends no body.
    h.server.receive(1,
                     "HEAD /metrics HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n");
    out = h.take();
    REQUIRE(out.size() == 3);
    CHECK(out[0].bytes.ends_with("Content-Length: 27\r\n\r\n"));
    CHECK(out[1].bytes.rfind("HTTP/1.1 200 OK", 0) == 0);
    CHECK(out[2].bytes.rfind("HTTP/1.1 404 Not Found", 0) == 0);
    CHECK(h.server.connections() == 1);

    // Connection: close, and HTTP/1.0 without keep-alive, close after answering.
    h.server.receive(1, "GET /metrics HTTP/1.1\r\nConnection: Close\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    out = h.take();
    REQUIRE(out.size() == 1);  // nothing after the close is answered
    CHECK(out[0].close_after);
    CHECK(out[0].bytes.find("Connection: close\r\n") != std::string::npos);
    CHECK(h.server.connections() == 0);
    h.server.receive(1, "GET / HTTP/1.1\r\n\r\n");  // closed: ignored
    CHECK(h.take().empty());

    h.server.open(2);
    h.server.receive(2, "GET / HTTP/1.0\r\n\r\n");
    out = h.take();
    REQUIRE(out.size() == 1);
    CHECK(out[0].close_after);
    h.server.open(3);
    h.server.receive(3, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    out = h.take();
    REQUIRE(out.size() == 1);
    CHECK_FALSE(out[0].close_after);
    h.server.close(3);
    CHECK(h.server.connections() == 0);
}

TEST_CASE("the metrics page refuses what it does not serve, bounded", "[metrics]") {
    struct Case {
        std::string input;
        std::string status;
        bool closes;
    };
    const std::vector<Case> cases = {
        {"BAD\r\n\r\n", "400", true},
        {"GET / HTTP/1.1 extra\r\n\r\n", "400", true},
        {"GET / HTTP/2\r\n\r\n", "505", true},
        {"POST /metrics HTTP/1.1\r\n\r\n", "405", false},
        {"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", "400", true},
        {"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "400", true},
        {"GET / HTTP/1.1\r\n: empty name\r\n\r\n", "400", true},
        {std::string(node::metrics::HttpServer::kHeadBytesMax + 1, 'a'), "431", true},
        {"GET / HTTP/1.1\r\nX: " + std::string(node::metrics::HttpServer::kHeadBytesMax, 'a') +
             "\r\n\r\n",
         "431", true},
    };
    for (const auto& k : cases) {
        INFO(k.input.substr(0, 50));
        Http h;
        h.server.open(1);
        h.server.receive(1, k.input);
        auto out = h.take();
        REQUIRE(out.size() == 1);
        CHECK(out[0].bytes.rfind("HTTP/1.1 " + k.status + " ", 0) == 0);
        CHECK(out[0].close_after == k.closes);
        CHECK(h.renders == 0);
    }
    // Under the bound an unfinished head just waits.
    Http h;
    h.server.open(1);
    h.server.receive(1, std::string(node::metrics::HttpServer::kHeadBytesMax, 'a'));
    CHECK(h.take().empty());

    // Connections past the bound are answered 503 and closed; one closing makes room.
    for (uint64_t conn = 2; conn <= node::metrics::HttpServer::kConnectionsMax; ++conn) {
        h.server.open(conn);
    }
    CHECK(h.take().empty());
    CHECK(h.server.connections() == node::metrics::HttpServer::kConnectionsMax);
    h.server.open(1000);
    auto out = h.take();
    REQUIRE(out.size() == 1);
    CHECK(out[0].conn == 1000);
    CHECK(out[0].bytes.rfind("HTTP/1.1 503 ", 0) == 0);
    CHECK(out[0].close_after);
    h.server.receive(1000, "GET /metrics HTTP/1.1\r\n\r\n");  // never registered: ignored
    CHECK(h.take().empty());
    h.server.close(2);
    h.server.open(1001);
    CHECK(h.take().empty());
    CHECK(h.server.connections() == node::metrics::HttpServer::kConnectionsMax);
}
