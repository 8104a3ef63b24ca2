// The part of Env that both runtimes share: staged writes with read-through,
// and outgoing messages held back until the writes they depend on are durable.
// Subclasses supply the clock, randomness and logging.
#pragma once

#include <map>
#include <utility>
#include <vector>

#include "node/env.h"

namespace kv::node {

struct Outgoing {
    bool to_peer = false;
    std::string peer_id;   // when to_peer, unless endpoint is set
    std::string endpoint;  // when to_peer and addressed by endpoint (send_to_endpoint)
    ReplyTo reply_to;      // otherwise
    node::Message message;
};

class BufferedEnv : public Env {
  public:
    explicit BufferedEnv(Store& store) : store_(store) {}

    Result<std::optional<std::string>> read(Space space, std::string_view key) override;
    void stage_write(StoreWrite write) override;
    Result<uint64_t> count(Space space) override { return store_.count(space); }
    Status scan(Space space, std::string_view from, size_t limit,
                const std::function<bool(std::string_view, std::string_view)>& visit) override;
    void send(const std::string& peer_id, node::Message message) override;
    void send_to_endpoint(const std::string& endpoint, node::Message message) override;
    void reply(const ReplyTo& to, node::Message message) override;

    // Commits every staged write in one transaction. On success returns the
    // messages to deliver, in the order they were sent; on failure drops both.
    Result<std::vector<Outgoing>> commit();
    bool has_pending() const { return !staged_.empty() || !outgoing_.empty(); }
    // Forgets staged writes and messages (a simulated crash).
    void discard();

  private:
    Store& store_;
    // Latest staged value per (space, key); std::map keeps commit order deterministic.
    std::map<std::pair<Space, std::string>, std::optional<std::string>> staged_;
    std::vector<Outgoing> outgoing_;
};

}  // namespace kv::node
