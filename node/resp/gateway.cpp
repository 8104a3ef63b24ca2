#include "node/resp/gateway.h"

#include <algorithm>
#include <cassert>
#include <cctype>

#include "node/resp/resp_writer.h"

namespace kv::node::resp {

namespace {

constexpr std::string_view kRoutePrefix{"\0resp:", 6};
// What HELLO and INFO report as the Redis version whose commands this
// gateway answers the way Redis does (clients look at it to pick features).
constexpr std::string_view kRedisVersion = "7.0.0";

enum Kind : int {
    ready,    // answered at once
    get,      // GET
    mget,     // MGET
    exists,   // EXISTS
    del,      // DEL: a get of each key, then a delete of those found live
    set,      // SET and MSET: replacing puts
    getall,   // KV.GETALL
    kvwrite,  // KV.PUT, KV.DEL
};

std::string upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string error_text(std::string_view code_and_message) {
    std::string out;
    ReplyWriter(out, 2).error(code_and_message);
    return out;
}

std::string wrong_arity(std::string_view name) {
    return error_text("ERR wrong number of arguments for '" + lower(name) + "' command");
}

// "-CODE message" for a node's answer: the error code in capitals, as Redis
// names its error classes (NOPERM for a missing grant, as Redis's ACLs do).
std::string node_error(ErrorCode code, std::string_view message) {
    std::string name = code == ErrorCode::unauthorized ? "NOPERM" : upper(error_name(code));
    return name + " " + std::string(message);
}

std::string consistency_text(const proto::Consistency& c) {
    return std::string(proto::level_name(c.level)) + (c.strict ? " strict" : "");
}

struct CommandSpec {
    std::string_view name;
    int arity;  // Redis's: n exactly, -n at least n (the name counts)
    std::string_view flags;
    int first_key, last_key, step;
};

// COMMAND's table: every command the gateway knows, as Redis describes them.
constexpr CommandSpec kCommands[] = {
    {"get", 2, "readonly", 1, 1, 1},         {"set", -3, "write", 1, 1, 1},
    {"del", -2, "write", 1, -1, 1},          {"exists", -2, "readonly", 1, -1, 1},
    {"mget", -2, "readonly", 1, -1, 1},      {"mset", -3, "write", 1, -1, 2},
    {"ping", -1, "fast", 0, 0, 0},           {"echo", 2, "fast", 0, 0, 0},
    {"info", -1, "loading", 0, 0, 0},        {"hello", -1, "fast", 0, 0, 0},
    {"auth", -2, "fast", 0, 0, 0},           {"client", -2, "fast", 0, 0, 0},
    {"command", -1, "loading", 0, 0, 0},     {"quit", -1, "fast", 0, 0, 0},
    {"select", 2, "fast", 0, 0, 0},          {"config", -2, "admin", 0, 0, 0},
    {"kv.consistency", -1, "fast", 0, 0, 0}, {"kv.getall", 2, "readonly", 1, 1, 1},
    {"kv.put", 4, "write", 1, 1, 1},         {"kv.del", -2, "write", 1, 1, 1},
};

const CommandSpec* find_spec(std::string_view lower_name) {
    for (const auto& spec : kCommands) {
        if (spec.name == lower_name) return &spec;
    }
    return nullptr;
}

void write_spec(ReplyWriter& w, const CommandSpec& spec) {
    w.array(10);
    w.bulk(spec.name);
    w.integer(spec.arity);
    w.array(1);
    w.simple(spec.flags);
    w.integer(spec.first_key);
    w.integer(spec.last_key);
    w.integer(spec.step);
    for (int i = 0; i < 4; ++i) w.array(0);  // ACL categories, tips, key specs, subcommands
}

// The requests a command sends at most at once: one per key.
size_t requests_of(const std::vector<std::string>& args) {
    const std::string name = upper(args[0]);
    if (name == "MSET") return (args.size() - 1) / 2;
    if (name == "GET" || name == "SET" || name == "MGET" || name == "EXISTS" || name == "DEL" ||
        name == "KV.GETALL" || name == "KV.PUT" || name == "KV.DEL") {
        return args.size() - 1;
    }
    return 0;
}

}  // namespace

std::string route_of(uint64_t conn) {
    std::string route(kRoutePrefix);
    for (int shift = 56; shift >= 0; shift -= 8) {
        route.push_back(static_cast<char>((conn >> shift) & 0xff));
    }
    return route;
}

bool Gateway::owns_route(std::string_view route) {
    return route.size() == kRoutePrefix.size() + 8 &&
           route.substr(0, kRoutePrefix.size()) == kRoutePrefix;
}

// One command in a connection's order: answered (`ready`, `out` set) or
// waiting for the node's replies to its requests.
struct Gateway::Pending {
    int kind = ready;
    uint64_t seq = 0;
    int protocol = 2;
    bool done = false;
    std::string out;
    uint32_t waiting = 0;  // requests sent and not answered
    std::vector<std::string> keys;
    std::vector<std::optional<std::string>> values;  // MGET: a value, or nullopt
    std::vector<std::string> item_errors;            // MGET: an error per key ("" none)
    int64_t count = 0;                               // DEL, EXISTS
    std::string first_error;                         // the first error of any request
    std::string context;                             // KV.GETALL, KV.PUT, KV.DEL
    std::vector<std::string> siblings;               // KV.GETALL
};

struct Gateway::Session {
    explicit Session(const GatewayConfig& config)
        : parser(config.limits), consistency(config.consistency) {}
    CommandParser parser;
    int protocol = 2;
    std::optional<std::string> user;  // AUTH's user, and its public key
    std::string user_key;
    std::string name;  // CLIENT SETNAME
    proto::Consistency consistency;
    std::deque<Pending> pending;  // commands not yet written to `output`
    uint64_t next_seq = 0;
    size_t requests_in_flight = 0;
    std::vector<std::string> held;  // parsed, waiting for room in flight
    std::string output;
    bool closing = false;  // no more commands: QUIT or a protocol error
    bool listed = false;   // in with_output_
};

Gateway::Gateway(GatewayConfig config, GatewayHost& host)
    : config_(std::move(config)), host_(host) {}

Gateway::~Gateway() = default;

void Gateway::open(uint64_t conn) {
    sessions_.emplace(conn, std::make_unique<Session>(config_));
    ++stats_.connections_opened;
}

void Gateway::close(uint64_t conn) {
    // Tickets of its requests stay until the node answers them (then dropped).
    sessions_.erase(conn);
}

void Gateway::receive(uint64_t conn, std::string_view bytes) {
    auto it = sessions_.find(conn);
    if (it == sessions_.end()) return;
    Session& s = *it->second;
    if (s.closing) return;
    s.parser.feed(bytes);
    pump(conn, s);
    if (!s.closing && s.parser.buffered_bytes() > config_.input_bytes_max) {
        ++stats_.protocol_errors;
        ++stats_.errors;
        answer_now(s, error_text("ERR the connection sent more than " +
                                 std::to_string(config_.input_bytes_max) +
                                 " bytes the node could not take yet (pipelined past " +
                                 std::to_string(config_.requests_in_flight_max) +
                                 " requests in flight); closing it"));
        s.closing = true;
        finish_ready(conn, s);
    }
}

// Parses and runs commands while the connection has room for their requests.
void Gateway::pump(uint64_t conn, Session& s) {
    std::vector<std::string> args;
    std::string error;
    while (!s.closing && next_command(s, args, error)) execute(conn, s, args);
    finish_ready(conn, s);
}

// The next command to run: a held one, or the next parsed; false when there is
// none yet or no room for its requests (it is held then).
bool Gateway::next_command(Session& s, std::vector<std::string>& args, std::string& error) {
    auto has_room = [&](const std::vector<std::string>& command) {
        // A command is always let through alone, so no command waits forever.
        return s.requests_in_flight == 0 ||
               s.requests_in_flight + requests_of(command) <= config_.requests_in_flight_max;
    };
    if (!s.held.empty()) {
        if (!has_room(s.held)) return false;
        args.swap(s.held);
        s.held.clear();
        return true;
    }
    if (s.requests_in_flight >= config_.requests_in_flight_max ||
        s.pending.size() >= config_.commands_waiting_max) {
        return false;
    }
    switch (s.parser.next(args, error)) {
        case CommandParser::Outcome::need_more:
            return false;
        case CommandParser::Outcome::error:
            ++stats_.protocol_errors;
            ++stats_.errors;
            answer_now(s, error_text("ERR " + error));
            s.closing = true;
            return false;
        case CommandParser::Outcome::command:
            break;
    }
    if (has_room(args)) return true;
    s.held.swap(args);
    return false;
}

Gateway::Pending& Gateway::push(Session& s, int kind) {
    Pending& p = s.pending.emplace_back();
    p.kind = kind;
    p.seq = s.next_seq++;
    p.protocol = s.protocol;
    return p;
}

void Gateway::answer_now(Session& s, std::string bytes) {
    if (s.pending.empty()) {
        s.output.append(bytes);
        return;
    }
    Pending& p = push(s, ready);
    p.out = std::move(bytes);
    p.done = true;
}

std::optional<Principal> Gateway::principal(const Session& s) const {
    if (!config_.credentials) return Principal::local();
    if (s.user) return Principal::user(s.user_key);
    if (config_.default_user.empty()) return std::nullopt;
    auto key = host_.public_key_of_user(config_.default_user);
    if (!key) return std::nullopt;
    return Principal::user(*key);
}

void Gateway::send(uint64_t conn, Session& s, Pending& p, size_t index, Message request) {
    // Looked up for each request: a DEL's deletes go after its reads, and the
    // default user may have been deleted in between.
    const std::optional<Principal> who = principal(s);
    if (!who) return on_failure(p, "NOAUTH Authentication required.");
    const uint64_t id = next_request_id_++;
    std::visit([id](auto& m) { m.id = id; }, request);
    tickets_[id] = Ticket{conn, p.seq, index};
    ++p.waiting;
    ++s.requests_in_flight;
    host_.submit(ReplyTo{route_of(conn)}, std::move(request), *who);
}

void Gateway::execute(uint64_t conn, Session& s, std::vector<std::string>& args) {
    ++stats_.commands;
    const std::string name = upper(args[0]);
    const CommandSpec* spec = find_spec(lower(name));
    auto reply = [&](std::string bytes) {
        if (!bytes.empty() && bytes[0] == '-') ++stats_.errors;
        answer_now(s, std::move(bytes));
    };
    if (spec == nullptr) {
        std::string text = "ERR unknown command '" + args[0] + "', with args beginning with: ";
        for (size_t i = 1; i < args.size() && i < 4; ++i)
            text += "'" + args[i].substr(0, 64) + "' ";
        return reply(error_text(text));
    }
    const int arity = spec->arity;
    const int argc = static_cast<int>(args.size());
    if ((arity > 0 && argc != arity) || (arity < 0 && argc < -arity)) {
        return reply(wrong_arity(name));
    }
    std::string out;
    ReplyWriter w(out, s.protocol);
    // Commands that need no credentials.
    if (name == "PING") {
        if (argc > 2) return reply(wrong_arity(name));
        argc == 2 ? w.bulk(args[1]) : w.simple("PONG");
        return reply(std::move(out));
    }
    if (name == "ECHO") {
        w.bulk(args[1]);
        return reply(std::move(out));
    }
    if (name == "QUIT") {
        w.simple("OK");
        reply(std::move(out));
        s.closing = true;
        return;
    }
    if (name == "HELLO") return reply(hello(s, args, conn));
    if (name == "AUTH") return reply(auth(s, args));
    if (name == "CLIENT") return reply(client(s, args, conn));
    if (name == "COMMAND") return reply(command(args, s.protocol));
    if (name == "SELECT") {
        if (args[1] != "0") return reply(error_text("ERR DB index is out of range"));
        w.simple("OK");
        return reply(std::move(out));
    }
    if (name == "INFO") {
        w.bulk(info(s.protocol));
        return reply(std::move(out));
    }
    if (name == "CONFIG") {
        // Clients (redis-benchmark) read settings this store does not have.
        if (upper(args[1]) != "GET") {
            return reply(error_text("ERR CONFIG " + upper(args[1]) +
                                    " is not supported: configure kvnode with its flags"));
        }
        w.map(0);
        return reply(std::move(out));
    }
    if (name == "KV.CONSISTENCY") return reply(consistency(s, args));
    const std::optional<Principal> who = principal(s);
    if (!who) return reply(error_text("NOAUTH Authentication required."));
    if (requests_of(args) > config_.requests_in_flight_max) {
        return reply(error_text("ERR a command may name at most " +
                                std::to_string(config_.requests_in_flight_max) +
                                " keys (--connection-max-in-flight)"));
    }
    const proto::Consistency level = s.consistency;
    if (name == "GET" || name == "MGET" || name == "EXISTS" || name == "DEL" ||
        name == "KV.GETALL") {
        const int kind = name == "GET"      ? get
                         : name == "MGET"   ? mget
                         : name == "EXISTS" ? exists
                         : name == "DEL"    ? del
                                            : getall;
        Pending& p = push(s, kind);
        p.keys.assign(std::make_move_iterator(args.begin() + 1),
                      std::make_move_iterator(args.end()));
        if (kind == mget) {
            p.values.resize(p.keys.size());
            p.item_errors.resize(p.keys.size());
        }
        for (size_t i = 0; i < p.keys.size(); ++i) {
            send(conn, s, p, i, proto::GetRequest{0, p.keys[i], level, 0});
        }
        return;
    }
    if (name == "SET") {
        for (size_t i = 3; i < args.size(); ++i) {
            const std::string option = upper(args[i]);
            if (option == "NX" || option == "XX") {
                return reply(error_text(
                    "ERR SET " + option +
                    " is not supported: replicas accept writes independently, so no condition "
                    "holds across them; read with KV.GETALL and write with KV.PUT and its "
                    "context"));
            }
            if (option == "EX" || option == "PX" || option == "EXAT" || option == "PXAT" ||
                option == "KEEPTTL") {
                return reply(
                    error_text("ERR SET " + option + " is not supported: keys do not expire"));
            }
            if (option == "GET") {
                return reply(error_text("ERR SET GET is not supported: GET, then SET"));
            }
            return reply(error_text("ERR syntax error"));
        }
        Pending& p = push(s, set);
        p.keys.push_back(args[1]);
        send(conn, s, p, 0,
             proto::PutRequest{0, std::move(args[1]), std::move(args[2]), std::nullopt, level, 0,
                               true});
        return;
    }
    if (name == "MSET") {
        if (argc % 2 != 1) return reply(wrong_arity(name));
        Pending& p = push(s, set);
        for (size_t i = 1; i + 1 < args.size(); i += 2) {
            p.keys.push_back(args[i]);
            send(conn, s, p, p.keys.size() - 1,
                 proto::PutRequest{0, std::move(args[i]), std::move(args[i + 1]), std::nullopt,
                                   level, 0, true});
        }
        return;
    }
    if (name == "KV.PUT") {
        Pending& p = push(s, kvwrite);
        p.keys.push_back(args[1]);
        std::optional<std::string> context;
        if (!args[2].empty()) context = std::move(args[2]);
        send(conn, s, p, 0,
             proto::PutRequest{0, std::move(args[1]), std::move(args[3]), std::move(context), level,
                               0, false});
        return;
    }
    if (name == "KV.DEL") {
        if (argc > 3) return reply(wrong_arity(name));
        Pending& p = push(s, kvwrite);
        p.keys.push_back(args[1]);
        std::optional<std::string> context;
        if (argc == 3 && !args[2].empty()) context = std::move(args[2]);
        send(conn, s, p, 0, proto::DelRequest{0, std::move(args[1]), std::move(context), level, 0});
        return;
    }
    assert(false && "a command in kCommands without a handler");
    reply(error_text("ERR internal: no handler for " + name));
}

void Gateway::on_reply(const ReplyTo&, Message reply) {
    const uint64_t id = request_id(reply);
    auto ticket_it = tickets_.find(id);
    if (ticket_it == tickets_.end()) return;
    const Ticket ticket = ticket_it->second;
    tickets_.erase(ticket_it);
    auto session_it = sessions_.find(ticket.conn);
    if (session_it == sessions_.end()) return;  // the client went away
    Session& s = *session_it->second;
    assert(s.requests_in_flight > 0);
    --s.requests_in_flight;
    if (s.pending.empty() || ticket.seq < s.pending.front().seq) return;
    Pending& p = s.pending[ticket.seq - s.pending.front().seq];
    assert(p.seq == ticket.seq && p.waiting > 0);
    --p.waiting;
    if (auto* got = std::get_if<proto::GetResponse>(&reply)) {
        on_get(s, p, ticket.index, ticket.conn, *got);
    } else if (auto* wrote = std::get_if<proto::WriteResponse>(&reply)) {
        on_write(s, p, ticket.index, *wrote);
    } else if (auto* failed = std::get_if<proto::ErrorResponse>(&reply)) {
        on_failure(p, node_error(failed->code, failed->message));
    } else {
        on_failure(p, "ERR internal: unexpected reply " + std::string(type_name(reply)));
    }
    if (p.waiting == 0 && !p.done) render(s, p);
    finish_ready(ticket.conn, s);
    if (!s.closing) pump(ticket.conn, s);
}

void Gateway::on_failure(Pending& p, const std::string& error) {
    if (p.first_error.empty()) p.first_error = error;
}

void Gateway::on_get(Session& s, Pending& p, size_t index, uint64_t conn, proto::GetResponse& r) {
    const bool live = r.code == ErrorCode::ok;
    if (!live && r.code != ErrorCode::not_found) {
        const std::string error = node_error(r.code, r.message);
        if (p.kind == mget) {
            p.item_errors[index] = error;
        } else {
            on_failure(p, error);
        }
        return;
    }
    switch (p.kind) {
        case get:
        case mget: {
            if (live && r.values.size() > 1) {
                const std::string error = "SIBLINGS " + std::to_string(r.values.size()) +
                                          " concurrent values; read them with KV.GETALL, write the "
                                          "one to keep with KV.PUT";
                if (p.kind == mget) {
                    p.item_errors[index] = error;
                } else {
                    on_failure(p, error);
                }
            } else if (live) {
                if (p.kind == mget) {
                    p.values[index] = std::move(r.values.front());
                } else {
                    p.values.assign(1, std::move(r.values.front()));
                }
            }
            break;
        }
        case exists:
            if (live) ++p.count;
            break;
        case del:
            // Deletes what the read saw; a key not live is not counted, as Redis does.
            if (live) {
                send(conn, s, p, index,
                     proto::DelRequest{0, p.keys[index], std::move(r.context), s.consistency, 0});
            }
            break;
        case getall:
            p.context = std::move(r.context);
            p.siblings = std::move(r.values);
            if (!live) p.siblings.clear();
            break;
        default:
            on_failure(p, "ERR internal: a read reply for a write");
    }
}

void Gateway::on_write(Session&, Pending& p, size_t, proto::WriteResponse& r) {
    if (r.code != ErrorCode::ok) return on_failure(p, node_error(r.code, r.message));
    if (p.kind == del) ++p.count;
    if (p.kind == kvwrite) p.context = std::move(r.context);
}

void Gateway::render(Session&, Pending& p) {
    ReplyWriter w(p.out, p.protocol);
    p.done = true;
    if (p.kind == mget) {
        w.array(p.keys.size());
        for (size_t i = 0; i < p.keys.size(); ++i) {
            if (!p.item_errors[i].empty()) {
                w.error(p.item_errors[i]);
            } else if (p.values[i]) {
                w.bulk(*p.values[i]);
            } else {
                w.null();
            }
        }
        return;
    }
    if (!p.first_error.empty()) {
        ++stats_.errors;
        return w.error(p.first_error);
    }
    switch (p.kind) {
        case get:
            p.values.empty() ? w.null() : w.bulk(*p.values.front());
            break;
        case exists:
        case del:
            w.integer(p.count);
            break;
        case set:
            w.simple("OK");
            break;
        case getall:
            w.array(2);
            w.bulk(p.context);
            w.array(p.siblings.size());
            for (const auto& v : p.siblings) w.bulk(v);
            break;
        case kvwrite:
            w.bulk(p.context);
            break;
        default:
            w.error("ERR internal: nothing to answer");
    }
}

// Moves the answered commands at the head of the connection's order to its output.
void Gateway::finish_ready(uint64_t conn, Session& s) {
    while (!s.pending.empty() && s.pending.front().done) {
        s.output.append(s.pending.front().out);
        s.pending.pop_front();
    }
    if (!s.listed && (!s.output.empty() || (s.closing && s.pending.empty()))) {
        s.listed = true;
        with_output_.push_back(conn);
    }
}

void Gateway::take_output(std::vector<Output>& out) {
    for (uint64_t conn : with_output_) {
        auto it = sessions_.find(conn);
        if (it == sessions_.end()) continue;
        Session& s = *it->second;
        s.listed = false;
        const bool close_after = s.closing && s.pending.empty();
        if (s.output.empty() && !close_after) continue;
        out.push_back(Output{conn, std::move(s.output), close_after});
        s.output.clear();
        if (close_after) sessions_.erase(it);
    }
    with_output_.clear();
}

std::string Gateway::hello(Session& s, const std::vector<std::string>& args, uint64_t conn) {
    int protocol = s.protocol;
    size_t i = 1;
    if (args.size() > 1) {
        if (args[1] == "2" || args[1] == "3") {
            protocol = args[1][0] - '0';
        } else {
            return error_text("NOPROTO sorry, this protocol version is not supported.");
        }
        i = 2;
    }
    std::optional<std::string> name;
    for (; i < args.size(); ++i) {
        const std::string option = upper(args[i]);
        if (option == "AUTH" && i + 2 < args.size()) {
            std::string said = auth(s, {"AUTH", args[i + 1], args[i + 2]});
            if (said[0] == '-') return said;
            i += 2;
        } else if (option == "SETNAME" && i + 1 < args.size()) {
            name = args[++i];
        } else {
            return error_text("ERR Syntax error in HELLO option '" + args[i] + "'");
        }
    }
    if (name) s.name = *name;
    s.protocol = protocol;
    std::string out;
    ReplyWriter w(out, protocol);
    w.map(7);
    w.bulk("server");
    w.bulk("kvstore");
    w.bulk("version");
    w.bulk(kRedisVersion);
    w.bulk("proto");
    w.integer(protocol);
    w.bulk("id");
    w.integer(static_cast<int64_t>(conn));
    w.bulk("mode");
    w.bulk("standalone");
    w.bulk("role");
    w.bulk("master");
    w.bulk("modules");
    w.array(0);
    return out;
}

// AUTH [user] secret: the secret is the user's CURVE secret key (Z85), the
// one in its credentials file; with a user name, it must be that user's.
std::string Gateway::auth(Session& s, const std::vector<std::string>& args) {
    if (args.size() > 3) return error_text("ERR syntax error");
    if (!config_.credentials) {
        return error_text(
            "ERR AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?");
    }
    const std::string& secret = args.back();
    auto found = host_.user_of_secret_key(secret);
    if (!found || (args.size() == 3 && args[1] != found->first)) {
        return error_text("WRONGPASS invalid username-password pair or user is disabled.");
    }
    s.user = found->first;
    s.user_key = found->second;
    return "+OK\r\n";
}

std::string Gateway::client(Session& s, const std::vector<std::string>& args, uint64_t conn) {
    const std::string sub = upper(args[1]);
    std::string out;
    ReplyWriter w(out, s.protocol);
    if (sub == "SETNAME" && args.size() == 3) {
        if (args[2].find_first_of(" \n\r") != std::string::npos) {
            return error_text(
                "ERR Client names cannot contain spaces, newlines or special characters.");
        }
        s.name = args[2];
        w.simple("OK");
    } else if (sub == "GETNAME" && args.size() == 2) {
        s.name.empty() ? w.null() : w.bulk(s.name);
    } else if (sub == "SETINFO" && args.size() == 4) {
        w.simple("OK");  // library name and version: accepted, not kept
    } else if (sub == "ID" && args.size() == 2) {
        w.integer(static_cast<int64_t>(conn));
    } else if (sub == "INFO" && args.size() == 2) {
        w.bulk("id=" + std::to_string(conn) + " name=" + s.name + " resp=" +
               std::to_string(s.protocol) + " user=" + s.user.value_or(config_.default_user) +
               " consistency=" + consistency_text(s.consistency) + "\n");
    } else {
        return error_text("ERR unknown subcommand or wrong number of arguments for 'CLIENT|" + sub +
                          "'");
    }
    return out;
}

std::string Gateway::command(const std::vector<std::string>& args, int protocol) {
    std::string out;
    ReplyWriter w(out, protocol);
    const std::string sub = args.size() > 1 ? upper(args[1]) : "";
    if (sub.empty()) {
        w.array(std::size(kCommands));
        for (const auto& spec : kCommands) write_spec(w, spec);
    } else if (sub == "COUNT") {
        w.integer(static_cast<int64_t>(std::size(kCommands)));
    } else if (sub == "LIST") {
        w.array(std::size(kCommands));
        for (const auto& spec : kCommands) w.bulk(spec.name);
    } else if (sub == "INFO") {
        w.array(args.size() - 2);
        for (size_t i = 2; i < args.size(); ++i) {
            const CommandSpec* spec = find_spec(lower(args[i]));
            spec ? write_spec(w, *spec) : w.null_array();
        }
    } else if (sub == "DOCS") {
        w.map(0);  // no documentation through the protocol: docs/REDIS.md
    } else {
        return error_text("ERR unknown subcommand '" + args[1] + "'. Try COMMAND HELP.");
    }
    return out;
}

std::string Gateway::info(int) const {
    std::string text = "# Server\r\nredis_version:" + std::string(kRedisVersion) +
                       "\r\nredis_mode:standalone\r\n" + host_.server_info();
    text += "\r\n# Clients\r\nconnected_clients:" + std::to_string(sessions_.size()) + "\r\n";
    text +=
        "\r\n# Stats\r\ntotal_connections_received:" + std::to_string(stats_.connections_opened) +
        "\r\ntotal_commands_processed:" + std::to_string(stats_.commands) +
        "\r\ntotal_error_replies:" + std::to_string(stats_.errors) + "\r\n";
    return text;
}

// KV.CONSISTENCY: the level of this connection's reads and writes; with no
// argument, the current one.
std::string Gateway::consistency(Session& s, const std::vector<std::string>& args) {
    std::string out;
    ReplyWriter w(out, s.protocol);
    if (args.size() == 1) {
        w.bulk(consistency_text(s.consistency));
        return out;
    }
    auto level = proto::level_from_name(lower(args[1]));
    const bool strict = args.size() == 3 && upper(args[2]) == "STRICT";
    if (!level || args.size() > 3 || (args.size() == 3 && !strict)) {
        return error_text("ERR usage: KV.CONSISTENCY [one|two|three|quorum|all [STRICT]]");
    }
    s.consistency = proto::Consistency{*level, 0, strict};
    w.simple("OK");
    return out;
}

}  // namespace kv::node::resp
