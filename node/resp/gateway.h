// The Redis protocol (RESP2/RESP3) gateway: lets redis-cli, redis-benchmark
// and any Redis client library read and write this store (docs/REDIS.md).
//
// Pure and single-threaded like the node: the runtime hands it the bytes each
// connection sends and sends the bytes it returns; it turns commands into the
// node's client requests (GET into a get, SET into a replacing put, ...) sent
// through GatewayHost::submit from a route of its own, and the node's replies
// (on_reply) back into RESP. Replies leave in the order their commands came,
// whatever order the node answers in (pipelining).
//
// Bounds: a connection's input is parsed only while its requests in flight
// are fewer than GatewayConfig::requests_in_flight_max; what a client sends
// beyond that waits unparsed, up to GatewayConfig::input_bytes_max, past which
// the connection is closed. Its output is the runtime's to bound (a connection
// that does not read is closed).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client/protocol.h"
#include "node/access/principal.h"
#include "node/env.h"
#include "node/peer_protocol.h"
#include "node/resp/resp_parser.h"

namespace kv::node::resp {

class GatewayHost {
  public:
    virtual ~GatewayHost() = default;
    // Hands a client request to the node as if `who` had sent it from `to`;
    // the reply comes back through Gateway::on_reply.
    virtual void submit(const ReplyTo& to, Message request, const Principal& who) = 0;
    // The Z85 public key of the live user `name`; nullopt when there is none.
    virtual std::optional<std::string> public_key_of_user(std::string_view name) const = 0;
    // The live user a Z85 secret key belongs to, and its public key; nullopt
    // when the text is no secret key or its public key is no live user's.
    virtual std::optional<std::pair<std::string, std::string>> user_of_secret_key(
        std::string_view secret_z85) const = 0;
    // "name:value" lines (CRLF-ended) for INFO's server section.
    virtual std::string server_info() const = 0;
};

struct GatewayConfig {
    // The node checks credentials (it has a cluster key): a connection acts
    // as the user it AUTHenticated as, or as default_user, or may not touch data.
    bool credentials = false;
    std::string default_user;              // empty: AUTH first
    proto::Consistency consistency;        // a new connection's level (KV.CONSISTENCY)
    size_t requests_in_flight_max = 1000;  // per connection (--connection-max-in-flight)
    // Bytes a connection may have sent and not had parsed (it pipelines past
    // its requests in flight); past it the connection is closed, as Redis
    // closes a client past its query buffer limit.
    size_t input_bytes_max = size_t{64} << 20;
    // Commands of a connection waiting for their turn to answer (behind one
    // still waiting for the node): PINGs pipelined behind a slow GET cost no
    // request but would each hold an answer.
    size_t commands_waiting_max = 10000;
    ParserLimits limits;
};

struct GatewayStats {
    uint64_t connections_opened = 0;
    uint64_t commands = 0;
    uint64_t errors = 0;           // error replies, protocol errors included
    uint64_t protocol_errors = 0;  // connections closed for malformed input
};

class Gateway {
  public:
    Gateway(GatewayConfig config, GatewayHost& host);
    ~Gateway();

    // A client connected (`conn` never reused), sent bytes, or went away.
    void open(uint64_t conn);
    void receive(uint64_t conn, std::string_view bytes);
    void close(uint64_t conn);

    // Whether a reply the node addressed to `route` is the gateway's.
    static bool owns_route(std::string_view route);
    void on_reply(const ReplyTo& to, Message reply);

    struct Output {
        uint64_t conn = 0;
        std::string bytes;
        bool close_after = false;  // QUIT or a protocol error: close once sent
    };
    // Appends every connection's output ready to send; a connection returned
    // with close_after is forgotten (close() need not be called for it).
    void take_output(std::vector<Output>& out);

    size_t connections() const { return sessions_.size(); }
    const GatewayStats& stats() const { return stats_; }

  private:
    struct Session;
    struct Pending;
    struct Ticket {
        uint64_t conn = 0;
        uint64_t seq = 0;  // the command's place in its connection's order
        size_t index = 0;  // which of its keys
    };

    void pump(uint64_t conn, Session& s);
    bool next_command(Session& s, std::vector<std::string>& args, std::string& error);
    // Runs one command: answers it now or sends its requests.
    void execute(uint64_t conn, Session& s, std::vector<std::string>& args);
    Pending& push(Session& s, int kind);
    void answer_now(Session& s, std::string bytes);
    void send(uint64_t conn, Session& s, Pending& p, size_t index, Message request);
    std::optional<Principal> principal(const Session& s) const;
    void on_get(Session& s, Pending& p, size_t index, uint64_t conn, proto::GetResponse& r);
    void on_write(Session& s, Pending& p, size_t index, proto::WriteResponse& r);
    void on_failure(Pending& p, const std::string& error);
    void finish_ready(uint64_t conn, Session& s);
    void render(Session& s, Pending& p);

    // Command handlers that answer at once.
    std::string hello(Session& s, const std::vector<std::string>& args, uint64_t conn);
    std::string auth(Session& s, const std::vector<std::string>& args);
    std::string client(Session& s, const std::vector<std::string>& args, uint64_t conn);
    std::string command(const std::vector<std::string>& args, int protocol);
    std::string info(int protocol) const;
    std::string consistency(Session& s, const std::vector<std::string>& args);

    GatewayConfig config_;
    GatewayHost& host_;
    std::map<uint64_t, std::unique_ptr<Session>> sessions_;
    std::map<uint64_t, Ticket> tickets_;  // by request id
    uint64_t next_request_id_ = 1;
    std::vector<uint64_t> with_output_;  // connections with output or closing
    GatewayStats stats_;
};

// The route the gateway's requests come from (ReplyTo::route): distinct from
// every ZeroMQ routing id (those are 5 bytes, or set by a peer and then never
// starting with a zero byte).
std::string route_of(uint64_t conn);

}  // namespace kv::node::resp
