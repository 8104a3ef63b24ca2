// The node's only window on the world (shared/DESIGN.md, "the one rule"). The
// Node never touches a clock, socket, file, thread or unseeded randomness
// except through this interface; the ZeroMQ runtime and the simulator each
// implement it.
//
// Effects contract: the runtime calls into the Node in steps (a request, a peer
// reply, a tick). Writes staged during a step are made durable, in one
// transaction per batch of steps, BEFORE any message sent in those steps
// leaves the node; a failed commit drops those messages, since they may
// acknowledge writes that did not happen. Reads see writes staged earlier.
// The one exception is send_ahead(), for replica merges (see there).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "client/status.h"
#include "node/peer_protocol.h"
#include "node/storage/store.h"

namespace kv::node {

// Who to answer: the transport's handle of a requester (a ZeroMQ routing id,
// or a simulated client or peer address). Opaque to the node.
struct ReplyTo {
    std::string route;
    bool operator==(const ReplyTo&) const = default;
};

enum class LogLevel : uint8_t { debug, info, warn, error };

class Env {
  public:
    virtual ~Env() = default;

    // This node's monotonic clock, in milliseconds (each node's may differ).
    virtual uint64_t now_ms() = 0;
    // Uniform random bits; seeded in the simulator.
    virtual uint64_t random_u64() = 0;

    virtual Result<std::optional<std::string>> read(Space space, std::string_view key) = 0;
    virtual void stage_write(StoreWrite write) = 0;
    // Keys in a space, as of the last commit.
    virtual Result<uint64_t> count(Space space) = 0;
    // Visits keys not before `from` in store order (node/storage/store.h, Store::scan),
    // staged writes included (a staged erase hides the key), until `visit`
    // returns false or `limit` keys were visited. `visit` must not stage writes.
    virtual Status scan(
        Space space, std::string_view from, size_t limit,
        const std::function<bool(std::string_view key, std::string_view value)>& visit) = 0;
    // The order scan() visits keys in (the store's).
    virtual StoreOrder store_order() const = 0;

    // To a peer node by member id, arriving at its ROUTER as a request.
    virtual void send(const std::string& peer_id, node::Message message) = 0;
    // To a node known only by its ROUTER endpoint (a seed, or a gossip peer
    // whose id is not a ring member yet), arriving there as a request. One-way:
    // used for gossip only, whose steps are never answered.
    virtual void send_to_endpoint(const std::string& endpoint, node::Message message) = 0;
    // To a peer like send(), but it may leave before the writes staged so far
    // are durable. Only for a replica merge (a version for the receiver to
    // make durable itself before it answers): it takes the coordinator's own
    // sync off a write's critical path, the merges travelling while it syncs.
    // Should this node lose those writes in a crash, nothing acknowledged
    // depended on them (acknowledgements still wait), and the node comes back
    // with a new actor (Node::start), so it never mints again a dot such a
    // message revealed (docs/ARCHITECTURE.md, "Dots stay unique").
    virtual void send_ahead(const std::string& peer_id, node::Message message) = 0;
    // To whoever sent a request (client or peer).
    virtual void reply(const ReplyTo& to, node::Message message) = 0;
    // How many writes this node has staged since it started: a mark for
    // reply_after_writes().
    virtual uint64_t writes_staged() const = 0;
    // As reply(), for an answer that reveals, of what this node holds, only
    // the writes it staged up to `mark` (a writes_staged() value; 0: none)
    // and what was durable before them: it leaves once those writes are
    // durable, without waiting for writes staged since (reply() waits for
    // every write in flight, as the answer may reveal any of them). A write's
    // acknowledgement waits for the commit of its own version, not for the
    // next one's.
    virtual void reply_after_writes(const ReplyTo& to, node::Message message, uint64_t mark) = 0;
    // The mark, for reply_after_writes(), of what the running step has read
    // and written so far: a value it read from a write not yet durable makes
    // it that write's (or a later one's), a write it staged the latest; a
    // value read from what is durable adds nothing. An answer that reveals
    // only what the step read may go once this mark is durable.
    virtual uint64_t step_mark() const = 0;

    virtual void log(LogLevel level, std::string_view text) = 0;
};

}  // namespace kv::node
