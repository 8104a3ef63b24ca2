// The C++ client library: a pipelined asynchronous client (AsyncClient) and a
// synchronous one built on it (Client), both speaking the wire protocol of
// client/protocol.h over ZeroMQ.
//
// Transport: one DEALER socket per node endpoint, each request one frame (the
// encoded message, no delimiter frame); the node answers each with one frame,
// possibly out of order, matched by request id. An endpoint link://HOST:PORT
// is a node's --link-listen: the same frames over a link of one LinkDialer
// (client/link_dialer.h) instead of a DEALER; a link that breaks fails the
// requests it carried at once (docs/CLIENT.md, "Links"). The client talks to ONE node at
// a time (the "current" endpoint, initially the first one given).
//
// Failover (docs/CLIENT.md): when the current node does not answer in time (or
// cannot be reached), the client makes the next endpoint current for later
// requests. A read (get, status, owners) that got no answer is retried on the next
// endpoint, each endpoint at most once per request. A write (put, del) that was
// handed to a node is NEVER retried: a second blind write could leave a
// duplicate sibling; it fails with ErrorCode::timeout and the caller decides. A
// request that could not even be handed to a node (no connection within
// connect_timeout_ms) was never sent, so any request except local_get moves on
// to the next endpoint. local_get reads one node's replica and is never moved.
//
// Errors are values: every outcome is a Result whose Status carries an
// ErrorCode. Node-reported codes are passed through; a key without a live value
// is ErrorCode::not_found; no answer in time is ErrorCode::timeout; a ZeroMQ
// failure or no reachable endpoint is ErrorCode::connection; a node that refuses
// the security handshake (ClientOptions::curve) is ErrorCode::unauthorized,
// reported as soon as the handshake fails. Nothing throws.
//
// Thread-safety: none. Each AsyncClient / Client object must be used by one
// thread at a time (ZeroMQ sockets are not thread-safe); use one object per
// thread for parallelism. Objects are movable, not copyable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/protocol.h"
#include "client/status.h"

namespace kv::client {

// Per-request settings.
struct RequestOptions {
    proto::Consistency consistency;
    // Node-side deadline, sent with get/put/del; 0 asks for the node's default.
    // The client itself waits deadline_ms + ClientOptions::local_margin_ms.
    uint64_t deadline_ms = 5000;
};

// CURVE credentials (docs/SECURITY.md): this client's key pair and the
// cluster's public key, each 40 characters of Z85 (client/keys.h reads them
// from a credentials file).
struct CurveCredentials {
    std::string client_public_z85;
    std::string client_secret_z85;
    std::string server_public_z85;
};

struct ClientOptions {
    RequestOptions defaults;  // used when a call passes no RequestOptions
    // Extra local wait beyond the node deadline, for the reply's trip back.
    uint64_t local_margin_ms = 1000;
    // Local wait assumed for deadline_ms == 0 (the node's default is unknown here).
    uint64_t node_default_deadline_ms = 10000;
    // Local wait for status and local_get, which carry no node-side deadline.
    uint64_t admin_timeout_ms = 2000;
    // How long a request may wait for its endpoint to accept it (connected and
    // below the high-water mark) before that endpoint counts as unreachable.
    uint64_t connect_timeout_ms = 1000;
    // Requests submitted but not yet completed, per client object.
    size_t in_flight_max = 65536;
    int send_hwm_messages = 10000;  // ZMQ_SNDHWM per socket
    int reconnect_ivl_ms = 100;     // ZMQ_RECONNECT_IVL (and _MAX)
    // Set on every socket before it connects. Without it the client speaks
    // plain ZMTP, which only a node without --cluster-key accepts. A node that
    // refuses the handshake (an unknown key, or CURVE on one side only) fails
    // the requests waiting on it with ErrorCode::unauthorized at once.
    std::optional<CurveCredentials> curve;
    // AsyncClient: the requests one poll() sends to a node (all submitted
    // since the last poll) go together, as batch frames (client/frame_batch.h),
    // and the node answers them in batch frames: fewer ZeroMQ messages on both
    // sides. A node
    // of an earlier version that refuses a batch frame (it did so only with
    // --cluster-key) gets that connection's batched requests again one by one,
    // and no more batches.
    bool batch_requests = true;
};

// A successful get: the live siblings (at least one; at most the node's sibling
// limit, with info.sibling_count counting any held back) and the causal context
// to pass to a later put/del that should supersede exactly those.
struct GetResult {
    std::vector<std::string> values;
    std::string context;
    proto::ReplyInfo info;
};

struct WriteResult {
    std::string context;  // the key's context after the write
    proto::ReplyInfo info;
};

using GetCallback = std::function<void(Result<GetResult>)>;
using WriteCallback = std::function<void(Result<WriteResult>)>;
using StatusCallback = std::function<void(Result<proto::StatusResponse>)>;
// An admin change's outcome: the node's message, or why not.
using AdminCallback = std::function<void(Result<std::string>)>;
using UserListCallback = std::function<void(Result<std::vector<proto::UserInfo>>)>;
using OwnersCallback = std::function<void(Result<proto::OwnersResponse>)>;

// Many requests in flight over one connection. submit_* never block, never
// send and never run a callback: a request is queued, and the next poll()
// sends everything queued since the last one together (as batch frames, see
// ClientOptions::batch_requests). Callbacks run only inside poll(), on the
// polling thread, each exactly once (with the reply, or an error such as
// timeout). A callback may submit further requests. The returned id is the
// wire request id (unique among this client's requests).
class AsyncClient {
  public:
    // Fails with invalid_argument for an empty list or a malformed endpoint
    // ("tcp://host:port", "ipc://path", "link://host:port", ...), connection
    // for a ZeroMQ failure.
    static Result<AsyncClient> connect(std::vector<std::string> endpoints,
                                       ClientOptions options = {});

    AsyncClient(AsyncClient&&) noexcept;
    AsyncClient& operator=(AsyncClient&&) noexcept;
    ~AsyncClient();

    uint64_t submit_get(std::string key, const RequestOptions& options, GetCallback done);
    uint64_t submit_put(std::string key, std::string value, std::optional<std::string> context,
                        const RequestOptions& options, WriteCallback done);
    uint64_t submit_del(std::string key, std::optional<std::string> context,
                        const RequestOptions& options, WriteCallback done);
    // Served by the node the request is sent to; never moved to another node.
    uint64_t submit_local_get(std::string key, GetCallback done);
    uint64_t submit_status(StatusCallback done);
    // The node's metrics as Prometheus text (kvctl stats; client/metrics.h
    // parses it). A read: retried like status.
    uint64_t submit_stats(std::function<void(Result<std::string>)> done);
    // Where `key` lives as the answering node sees it: its home replicas in
    // preference order (up or down), the stand-ins a write would use now, and
    // the new owners while its range moves. A read: retried like status.
    // Needs a read grant covering the key when credentials are in use.
    uint64_t submit_owners(std::string key, OwnersCallback done);
    // Asks the node to leave the ring (kvctl leave); idempotent, never moved to
    // another node. Completes with the node's message once it started leaving.
    uint64_t submit_leave(std::function<void(Result<std::string>)> done);
    // kvctl repair: the node starts anti-entropy exchanges with every other
    // member (proto::RepairRequest); the admin reply's message on success.
    uint64_t submit_repair(proto::RepairRequest request,
                           std::function<void(Result<std::string>)> done);
    // Asks the node to remove member `node_id`, down for good (kvctl
    // removenode); idempotent, never moved to another node. Completes with the
    // node's message once the removal is queued.
    uint64_t submit_removenode(std::string node_id, std::function<void(Result<std::string>)> done);
    // Users and grants (docs/SECURITY.md, "Users and grants"); each needs the
    // admin grant when credentials are in use. A change is made on the node it
    // reaches and spreads from there; like a write, one that got no answer is
    // not retried (it fails with timeout and may have happened).
    uint64_t submit_user_add(std::string name, std::string public_key_z85, AdminCallback done);
    uint64_t submit_user_del(std::string name, AdminCallback done);
    uint64_t submit_user_list(UserListCallback done);
    uint64_t submit_grant(std::string name, proto::Permission permission, std::string prefix,
                          AdminCallback done);
    uint64_t submit_revoke(std::string name, proto::Permission permission, std::string prefix,
                           AdminCallback done);

    // Sends what was submitted since the last poll (and what could not be sent
    // yet), waits up to timeout_ms (0: do not wait) for replies, expires
    // requests whose local deadline passed, then runs the callbacks of
    // completed requests. Returns how many callbacks ran. Returns at once when
    // nothing is in flight.
    size_t poll(int timeout_ms);

    // Submitted requests whose callback has not run yet.
    size_t in_flight() const;
    const std::string& current_endpoint() const;
    const ClientOptions& options() const;
    // Replies that matched no in-flight request (late answers after a timeout
    // or failover); for diagnostics.
    uint64_t stale_replies() const;

  private:
    friend class PollGroup;
    struct Impl;
    explicit AsyncClient(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Drives several AsyncClients from one thread, as one event loop serves many
// connections (kvbench --threads): a thread per client pays a thread wake-up
// for each reply. The clients stay independent (their own connections, ids
// and failover); the group only shares the waiting.
class PollGroup {
  public:
    // Fails with connection when epoll cannot be set up. The clients must
    // outlive the group; they may still be polled on their own between the
    // group's polls.
    static Result<PollGroup> make(std::vector<AsyncClient*> clients);

    PollGroup(PollGroup&&) noexcept;
    PollGroup& operator=(PollGroup&&) noexcept;
    ~PollGroup();

    // AsyncClient::poll for all of them: sends what each has submitted, waits
    // up to timeout_ms (0: not at all; less when a request of any of them
    // expires sooner) until any of them has input, then polls each one that
    // has input or something due. Returns how many callbacks ran in all; at
    // once when none has a request in flight. A callback may submit to any of
    // the clients: what it submits goes at the next call.
    size_t poll(int timeout_ms);

  private:
    struct Impl;
    explicit PollGroup(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Blocking calls; each submits one request and polls until it completes.
// Default RequestOptions come from ClientOptions::defaults.
class Client {
  public:
    static Result<Client> connect(std::vector<std::string> endpoints, ClientOptions options = {});

    Result<GetResult> get(std::string key, std::optional<RequestOptions> options = std::nullopt);
    // Without a context: a blind write (a sibling of whatever is stored).
    Result<WriteResult> put(std::string key, std::string value,
                            std::optional<std::string> context = std::nullopt,
                            std::optional<RequestOptions> options = std::nullopt);
    Result<WriteResult> del(std::string key, std::optional<std::string> context = std::nullopt,
                            std::optional<RequestOptions> options = std::nullopt);
    Result<GetResult> local_get(std::string key);
    Result<proto::StatusResponse> status();
    Result<std::string> stats();
    Result<proto::OwnersResponse> owners(std::string key);
    // The node this client is connected to hands its ranges over and leaves
    // the ring; returns at once with the node's message (progress: status()).
    Result<std::string> leave();
    Result<std::string> repair(proto::RepairRequest request);
    // The node this client is connected to removes member `node_id` (down for
    // good); returns at once with the node's message (progress: status()).
    Result<std::string> removenode(std::string node_id);
    // Users and grants: see AsyncClient. An empty prefix is the whole keyspace.
    Result<std::string> user_add(std::string name, std::string public_key_z85);
    Result<std::string> user_del(std::string name);
    Result<std::vector<proto::UserInfo>> user_list();
    Result<std::string> grant(std::string name, proto::Permission permission, std::string prefix);
    Result<std::string> revoke(std::string name, proto::Permission permission, std::string prefix);

    const std::string& current_endpoint() const { return async_.current_endpoint(); }
    // The underlying pipelined client, e.g. to mix in async requests.
    AsyncClient& async() { return async_; }

  private:
    explicit Client(AsyncClient async) : async_(std::move(async)) {}
    template <typename T>
    Result<T> wait_for(std::optional<Result<T>>& slot);

    AsyncClient async_;
};

// Merges siblings into one value; called only with two or more values.
using SiblingResolver = std::function<std::string(const std::vector<std::string>& siblings)>;

// Reads `key`; with several siblings, calls `resolve` and writes its result
// back with the read's context, so the key ends with one value (unless another
// writer raced this one). Returns the value the key now holds: the single value
// as read, or the resolved one. Errors: not_found, and any get/put error (the
// resolved value is not returned when its write-back failed).
Result<std::string> get_resolved(Client& client, std::string key, const SiblingResolver& resolve,
                                 std::optional<RequestOptions> options = std::nullopt);

}  // namespace kv::client
