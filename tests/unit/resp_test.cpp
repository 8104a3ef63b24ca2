// The Redis gateway without sockets: the parser's limits and errors, and the
// gateway's commands against a fake node that answers what the test says.
#include <catch2/catch.hpp>

#include "node/resp/gateway.h"
#include "node/resp/resp_parser.h"

using namespace kv;
using namespace kv::node;
using kv::node::resp::CommandParser;
using kv::node::resp::Gateway;
using Outcome = CommandParser::Outcome;
using namespace std::string_literals;

namespace {

std::vector<std::string> parse_all(CommandParser& p, Outcome* last = nullptr) {
    std::vector<std::string> args;
    std::string error;
    Outcome o = p.next(args, error);
    if (last) *last = o;
    return args;
}

// A node that keeps the requests, and users known by secret key.
struct FakeHost : resp::GatewayHost {
    struct Sent {
        ReplyTo to;
        Message request;
        Principal who;
    };
    std::vector<Sent> sent;
    std::map<std::string, std::pair<std::string, std::string>> users_by_secret;
    void submit(const ReplyTo& to, Message request, const Principal& who) override {
        sent.push_back({to, std::move(request), who});
    }
    std::optional<std::string> public_key_of_user(std::string_view name) const override {
        for (const auto& [secret, user] : users_by_secret) {
            if (user.first == name) return user.second;
        }
        return std::nullopt;
    }
    std::optional<std::pair<std::string, std::string>> user_of_secret_key(
        std::string_view secret) const override {
        auto it = users_by_secret.find(std::string(secret));
        if (it == users_by_secret.end()) return std::nullopt;
        return it->second;
    }
    std::string server_info() const override { return "kvstore_node:n1\r\n"; }
};

struct Fixture {
    explicit Fixture(resp::GatewayConfig config = {}) : gateway(config, host) { gateway.open(1); }
    FakeHost host;
    Gateway gateway;

    std::string output(uint64_t conn = 1, bool* closed = nullptr) {
        std::vector<Gateway::Output> out;
        gateway.take_output(out);
        std::string bytes;
        for (auto& o : out) {
            if (o.conn != conn) continue;
            bytes += o.bytes;
            if (closed) *closed = o.close_after;
        }
        return bytes;
    }
    std::string say(std::string_view bytes, uint64_t conn = 1) {
        gateway.receive(conn, bytes);
        return output(conn);
    }
    // Answers the i-th request sent so far.
    void answer(size_t i, Message reply) {
        std::visit([&](auto& m) { m.id = request_id(host.sent.at(i).request); }, reply);
        gateway.on_reply(host.sent.at(i).to, std::move(reply));
    }
    void found(size_t i, std::vector<std::string> values, std::string context = "ctx") {
        answer(i,
               proto::GetResponse{0, ErrorCode::ok, "", std::move(values), std::move(context), {}});
    }
    void not_found(size_t i) {
        answer(i, proto::GetResponse{0, ErrorCode::not_found, "", {}, "ctx", {}});
    }
    void written(size_t i, std::string context = "new-ctx") {
        answer(i, proto::WriteResponse{0, ErrorCode::ok, "", std::move(context), {}});
    }
};

}  // namespace

TEST_CASE("parser: arrays of bulk strings, in pieces, and inline commands") {
    CommandParser p;
    const std::string command = "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$5\r\nh\r\nlo\r\n";
    Outcome o;
    for (size_t i = 0; i + 1 < command.size(); ++i) {
        p.feed(command.substr(i, 1));
        REQUIRE(parse_all(p, &o).empty());
        REQUIRE(o == Outcome::need_more);
    }
    p.feed(command.substr(command.size() - 1));
    CHECK(parse_all(p, &o) == std::vector<std::string>{"SET", "a", "h\r\nlo"});
    p.feed("PING  hello\r\nGET x\n");
    CHECK(parse_all(p) == std::vector<std::string>{"PING", "hello"});
    CHECK(parse_all(p) == std::vector<std::string>{"GET", "x"});
    CHECK(parse_all(p, &o).empty());
    CHECK(o == Outcome::need_more);
    CHECK(p.buffered_bytes() == 0);
}

TEST_CASE("parser: a header of the longest length reads the same cut anywhere") {
    // 32 bytes of header ('*' or '$' and its digits) is the most accepted; cut
    // between its '\r' and '\n' it was refused as too long (a fuzzer found it).
    const std::string header = "*" + std::string(30, '0') + "1";
    REQUIRE(header.size() == 32);
    const std::string command = header + "\r\n$" + std::string(30, '0') + "1\r\nx\r\n";
    for (size_t cut = 0; cut <= command.size(); ++cut) {
        CAPTURE(cut);
        CommandParser p;
        p.feed(command.substr(0, cut));
        Outcome o;
        std::vector<std::string> args = parse_all(p, &o);
        if (args.empty()) {
            REQUIRE(o == Outcome::need_more);
            p.feed(command.substr(cut));
            args = parse_all(p, &o);
        }
        CHECK(args == std::vector<std::string>{"x"});
    }
    // One byte more is refused, cut or whole.
    for (const std::string& longer : {"*" + std::string(32, '1'), "*" + std::string(32, '1') + "\r",
                                      "*" + std::string(32, '1') + "\r\n"}) {
        CAPTURE(longer);
        CommandParser p;
        p.feed(longer);
        std::vector<std::string> args;
        std::string error;
        const Outcome o = p.next(args, error);
        CHECK((o == Outcome::error || (longer.back() != '\n' && o == Outcome::need_more)));
        if (o == Outcome::need_more) {
            p.feed("\n");
            CHECK(p.next(args, error) == Outcome::error);
        }
    }
}

TEST_CASE("parser: a large argument gets its room once, and holds only that") {
    CommandParser p;
    const std::string value(1 << 20, 'v');
    // A command taken first, then the large one's headers and its first bytes.
    p.feed("PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n" + value.substr(0, 4096));
    CHECK(parse_all(p) == std::vector<std::string>{"PING"});
    Outcome o;
    CHECK(parse_all(p, &o).empty());
    REQUIRE(o == Outcome::need_more);
    const size_t room = p.capacity_bytes();
    const size_t headers = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n"s.size();
    CHECK(room >= headers + value.size() + 2);
    CHECK(room < headers + value.size() + 2 + 4096);  // the command, not what was taken before it
    // The rest arrives as a socket delivers it: no reallocation on the way.
    for (size_t at = 4096; at < value.size(); at += 8192) {
        p.feed(std::string_view(value).substr(at, 8192));
        REQUIRE(parse_all(p, &o).empty());
        REQUIRE(o == Outcome::need_more);
        REQUIRE(p.capacity_bytes() == room);
    }
    p.feed("\r\n");
    const auto args = parse_all(p, &o);
    REQUIRE(o == Outcome::command);
    CHECK(args.size() == 3);
    CHECK(args.back() == value);
    CHECK(p.buffered_bytes() == 0);
    // Taken, it leaves no large buffer behind on an idle connection.
    CHECK(p.capacity_bytes() <= 64 * 1024);
    p.feed("PING\r\n");
    CHECK(parse_all(p) == std::vector<std::string>{"PING"});

    // Nor when empty commands (skipped) came last, in the same read as it.
    CommandParser r;
    r.feed("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n" + value + "\r\n*0\r\n\r\n");
    CHECK(parse_all(r).size() == 3);
    CHECK(r.capacity_bytes() > 64 * 1024);  // the empty commands are not taken yet
    CHECK(parse_all(r, &o).empty());
    CHECK(o == Outcome::need_more);
    CHECK(r.buffered_bytes() == 0);
    CHECK(r.capacity_bytes() <= 64 * 1024);

    // A small argument still arriving gets no room ahead of its bytes.
    CommandParser q;
    q.feed("*2\r\n$3\r\nGET\r\n$30000\r\nabc");
    CHECK(parse_all(q, &o).empty());
    CHECK(q.capacity_bytes() < 30000);
}

TEST_CASE("parser: malformed or oversized input is a protocol error, and stays one") {
    struct Case {
        std::string input;
        std::string error;
    };
    resp::ParserLimits limits;
    limits.bulk_bytes_max = 100;
    limits.args_max = 4;
    limits.inline_bytes_max = 50;
    limits.command_bytes_max = 200;
    const std::vector<Case> cases = {
        {"*x\r\n", "invalid multibulk length"},
        {"*5\r\n", "invalid multibulk length"},
        {"*1\r\n$101\r\n", "invalid bulk length"},
        {"*1\r\n$-1\r\n", "invalid bulk length"},
        {"*1\r\n+PING\r\n", "expected '$', got '+'"},
        {"*1\r\n$4\r\nPINGxx", "does not end with CRLF"},
        {"*1\r\n$99999999999999999999999999999999999\r\n", "invalid bulk length"},
        {"*1" + std::string(40, '1'), "invalid multibulk length"},  // no CRLF, header too long
        {std::string(51, 'a'), "too big inline request"},
        {"*3\r\n$90\r\n" + std::string(90, 'a') + "\r\n$90\r\n" + std::string(90, 'a') +
             "\r\n$90\r\n",
         "command larger than"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.input);
        CommandParser p(limits);
        p.feed(c.input);
        std::vector<std::string> args;
        std::string error;
        REQUIRE(p.next(args, error) == Outcome::error);
        CHECK_THAT(error, Catch::Contains(c.error));
        p.feed("PING\r\n");  // nothing after an error is read
        CHECK(p.next(args, error) == Outcome::error);
        CHECK(p.buffered_bytes() == 0);
    }
}

TEST_CASE("gateway: connection commands answered at once") {
    Fixture f;
    CHECK(f.say("PING\r\n") == "+PONG\r\n");
    CHECK(f.say("*2\r\n$4\r\nECHO\r\n$3\r\na\0b\r\n"s) == "$3\r\na\0b\r\n"s);
    CHECK(f.say("SELECT 0\r\n") == "+OK\r\n");
    CHECK(f.say("SELECT 1\r\n") == "-ERR DB index is out of range\r\n");
    CHECK(f.say("CLIENT SETNAME app\r\nCLIENT GETNAME\r\n") == "+OK\r\n$3\r\napp\r\n");
    CHECK(f.say("FLUSHALL\r\n") ==
          "-ERR unknown command 'FLUSHALL', with args beginning with: \r\n");
    CHECK(f.say("GET\r\n") == "-ERR wrong number of arguments for 'get' command\r\n");
    CHECK(f.say("COMMAND COUNT\r\n") == ":20\r\n");
    CHECK(f.say("CONFIG GET save\r\n") == "*0\r\n");
    CHECK(f.say("AUTH secret\r\n").starts_with("-ERR AUTH <password> called without"));
    CHECK(f.say("KV.CONSISTENCY\r\n") == "$6\r\nquorum\r\n");
    CHECK(f.say("KV.CONSISTENCY one strict\r\nKV.CONSISTENCY\r\n") ==
          "+OK\r\n$10\r\none strict\r\n");
    CHECK(f.say("KV.CONSISTENCY most\r\n").starts_with("-ERR usage"));
    CHECK(f.host.sent.empty());
    // HELLO 3 switches to RESP3: a map, and null as "_".
    const std::string hello = f.say("HELLO 3\r\n");
    CHECK(hello.starts_with("%7\r\n$6\r\nserver\r\n$7\r\nkvstore\r\n"));
    CHECK(f.say("CLIENT GETNAME\r\nCLIENT SETNAME x\r\nHELLO 4\r\n") ==
          "$3\r\napp\r\n+OK\r\n-NOPROTO sorry, this protocol version is not supported.\r\n");
    bool closed = false;
    f.gateway.receive(1, "QUIT\r\nPING\r\n");
    CHECK(f.output(1, &closed) == "+OK\r\n");
    CHECK(closed);
    CHECK(f.gateway.connections() == 0);
}

TEST_CASE("gateway: GET, SET, DEL, EXISTS, MGET, MSET become the node's requests") {
    Fixture f;
    CHECK(f.say("SET k v\r\n").empty());
    REQUIRE(f.host.sent.size() == 1);
    const auto& put = std::get<proto::PutRequest>(f.host.sent[0].request);
    CHECK(put.key == "k");
    CHECK(put.value == "v");
    CHECK(put.replace);
    CHECK(!put.context);
    CHECK(put.consistency == proto::Consistency{});
    CHECK(resp::Gateway::owns_route(f.host.sent[0].to.route));
    CHECK(f.host.sent[0].who == Principal::local());
    f.written(0);
    CHECK(f.output() == "+OK\r\n");

    f.say("GET k\r\n");
    f.found(1, {"v"});
    CHECK(f.output() == "$1\r\nv\r\n");
    f.say("GET gone\r\n");
    f.not_found(2);
    CHECK(f.output() == "$-1\r\n");
    f.say("GET two\r\n");
    f.found(3, {"a", "b"});
    CHECK(f.output().starts_with("-SIBLINGS 2 concurrent values"));

    // MGET: in order, whatever order the node answers in.
    f.say("MGET a b c\r\n");
    REQUIRE(f.host.sent.size() == 7);
    f.found(6, {"C"});
    f.not_found(5);
    CHECK(f.output().empty());
    f.answer(4, proto::GetResponse{0, ErrorCode::unavailable, "2 replicas required", {}, {}, {}});
    CHECK(f.output() == "*3\r\n-UNAVAILABLE 2 replicas required\r\n$-1\r\n$1\r\nC\r\n");

    // DEL reads, deletes what it found live with the read's context, counts it.
    f.say("DEL a b\r\n");
    f.found(7, {"x"}, "ctx-a");
    f.not_found(8);
    REQUIRE(f.host.sent.size() == 10);
    const auto& del = std::get<proto::DelRequest>(f.host.sent[9].request);
    CHECK(del.key == "a");
    CHECK(del.context == std::optional<std::string>("ctx-a"));
    CHECK(f.output().empty());
    f.written(9);
    CHECK(f.output() == ":1\r\n");

    f.say("EXISTS a a b\r\n");
    f.found(10, {"x"});
    f.found(11, {"x"});
    f.not_found(12);
    CHECK(f.output() == ":2\r\n");

    f.say("MSET a 1 b 2\r\n");
    REQUIRE(f.host.sent.size() == 15);
    f.written(13);
    f.answer(14, proto::WriteResponse{0, ErrorCode::timeout, "deadline passed", "", {}});
    CHECK(f.output() == "-TIMEOUT deadline passed\r\n");
    CHECK(f.say("MSET a 1 b\r\n") == "-ERR wrong number of arguments for 'mset' command\r\n");
    CHECK(f.say("SET a 1 NX\r\n").starts_with("-ERR SET NX is not supported"));
    CHECK(f.say("SET a 1 EX 10\r\n").starts_with("-ERR SET EX is not supported"));
}

TEST_CASE("gateway: pipelined replies keep the commands' order") {
    Fixture f;
    f.say("GET a\r\nPING\r\nSET b 1\r\nECHO e\r\n");
    REQUIRE(f.host.sent.size() == 2);
    f.written(1);
    CHECK(f.output().empty());
    f.found(0, {"A"});
    CHECK(f.output() == "$1\r\nA\r\n+PONG\r\n+OK\r\n$1\r\ne\r\n");
}

TEST_CASE("gateway: a connection stops reading past its requests in flight") {
    resp::GatewayConfig config;
    config.requests_in_flight_max = 2;
    Fixture f(config);
    f.say("GET a\r\nGET b\r\nGET c\r\n");
    CHECK(f.host.sent.size() == 2);
    CHECK(f.say("MGET a b c\r\n") == "");  // waits, parsed, after GET c
    f.found(0, {"A"});
    CHECK(f.host.sent.size() == 3);  // GET c went
    CHECK(f.output() == "$1\r\nA\r\n");
    f.found(1, {"B"});
    f.found(2, {"C"});
    // MGET's three keys are more than the limit of two: refused, not sent.
    CHECK(f.output() ==
          "$1\r\nB\r\n$1\r\nC\r\n-ERR a command may name at most 2 keys "
          "(--connection-max-in-flight)\r\n");
    CHECK(f.host.sent.size() == 3);
    CHECK(f.say("PING\r\n") == "+PONG\r\n");
}

TEST_CASE("gateway: input past its bound while requests are in flight closes the connection") {
    resp::GatewayConfig config;
    config.requests_in_flight_max = 1;
    config.input_bytes_max = 64;
    Fixture f(config);
    f.say("GET a\r\n");
    std::string pipelined;
    for (int i = 0; i < 10; ++i) pipelined += "GET b\r\n";  // 70 bytes, none parsed yet
    CHECK(f.say(pipelined).empty());
    f.gateway.receive(1, "GET c\r\n");
    CHECK(f.host.sent.size() == 1);
    f.found(0, {"A"});
    bool closed = false;
    const std::string out = f.output(1, &closed);
    CHECK(out.starts_with("$1\r\nA\r\n-ERR the connection sent more than 64 bytes"));
    CHECK(closed);
}

TEST_CASE("gateway: answers waiting behind a slow command are bounded too") {
    resp::GatewayConfig config;
    config.commands_waiting_max = 3;
    config.input_bytes_max = 64;
    Fixture f(config);
    f.say("GET a\r\nPING\r\nPING\r\nPING\r\nPING\r\n");  // the fourth PING waits unparsed
    f.found(0, {"A"});
    CHECK(f.output() == "$1\r\nA\r\n+PONG\r\n+PONG\r\n+PONG\r\n+PONG\r\n");
    f.say("GET b\r\n");
    bool closed = false;
    std::string pings;
    for (int i = 0; i < 20; ++i) pings += "PING\r\n";  // two parsed, 108 bytes left unparsed
    f.gateway.receive(1, pings);
    f.found(1, {"B"});
    const std::string out = f.output(1, &closed);
    CHECK(out.starts_with("$1\r\nB\r\n+PONG\r\n+PONG\r\n-ERR the connection sent more than 64"));
    CHECK(closed);
}

TEST_CASE("gateway: KV.GETALL and KV.PUT carry siblings and the context") {
    Fixture f;
    f.say("KV.GETALL k\r\n");
    f.found(0, {"a", "b"}, "CTX");
    CHECK(f.output() == "*2\r\n$3\r\nCTX\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    f.say("*4\r\n$6\r\nKV.PUT\r\n$1\r\nk\r\n$3\r\nCTX\r\n$1\r\nc\r\n");
    const auto& put = std::get<proto::PutRequest>(f.host.sent[1].request);
    CHECK(put.context == std::optional<std::string>("CTX"));
    CHECK(!put.replace);
    f.written(1, "CTX2");
    CHECK(f.output() == "$4\r\nCTX2\r\n");
}

TEST_CASE("gateway: with credentials, data needs AUTH or a default user") {
    resp::GatewayConfig config;
    config.credentials = true;
    Fixture f(config);
    f.host.users_by_secret["S1"] = {"alice", "P1"};
    CHECK(f.say("GET a\r\n") == "-NOAUTH Authentication required.\r\n");
    CHECK(f.say("PING\r\n") == "+PONG\r\n");
    CHECK(f.say("AUTH wrong\r\n").starts_with("-WRONGPASS"));
    CHECK(f.say("AUTH bob S1\r\n").starts_with("-WRONGPASS"));
    CHECK(f.say("AUTH alice S1\r\n") == "+OK\r\n");
    f.say("GET a\r\n");
    REQUIRE(f.host.sent.size() == 1);
    CHECK(f.host.sent[0].who == Principal::user("P1"));
    f.answer(0, proto::GetResponse{0, ErrorCode::unauthorized, "alice may not read a", {}, {}, {}});
    CHECK(f.output() == "-NOPERM alice may not read a\r\n");

    config.default_user = "alice";
    Fixture g(config);
    g.host.users_by_secret["S1"] = {"alice", "P1"};
    g.say("GET a\r\n");
    REQUIRE(g.host.sent.size() == 1);
    CHECK(g.host.sent[0].who == Principal::user("P1"));
    g.found(0, {"A"});
    CHECK(g.output() == "$1\r\nA\r\n");
    g.host.users_by_secret.clear();  // alice deleted
    CHECK(g.say("GET a\r\n") == "-NOAUTH Authentication required.\r\n");
}

TEST_CASE("gateway: a protocol error is answered, then the connection closes") {
    Fixture f;
    f.gateway.receive(1, "PING\r\n*1\r\n$x\r\n");
    bool closed = false;
    CHECK(f.output(1, &closed) == "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n");
    CHECK(closed);
    CHECK(f.gateway.stats().protocol_errors == 1);
    // A reply for a closed connection is dropped.
    Fixture g;
    g.say("GET a\r\n");
    g.gateway.close(1);
    g.found(0, {"A"});
    CHECK(g.output().empty());
}
