// A ZMQ_STREAM socket for the protocols served beside the node's own (the
// Redis gateway, the metrics page): raw TCP, each connection a routing id; an
// empty message says a connection opened or closed, and sending one closes
// it. Numbers connections (never reused) for the pure protocol handlers and
// remembers those it closed, whose close notices may still arrive.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include <zmq.hpp>

namespace kv::node {

class StreamSocket {
  public:
    // Binds `endpoint` (throws zmq::error_t when it cannot).
    StreamSocket(zmq::context_t& ctx, const std::string& endpoint, int high_water_mark);

    void* handle() { return socket_.handle(); }

    struct Handler {
        std::function<void(uint64_t conn)> open;
        std::function<void(uint64_t conn, std::string_view bytes)> receive;
        std::function<void(uint64_t conn)> close;  // the client went away
    };
    // Reads up to `max` messages; returns how many. A receive error is
    // returned in `error` (empty when none) for the caller to log.
    uint32_t receive(uint32_t max, const Handler& handler, std::string& error);

    // False when the bytes could not be queued (a client that does not read,
    // or one gone): the caller closes it.
    bool send(uint64_t conn, std::string_view bytes, std::string& error);
    // Closes the connection (after what was sent to it).
    void close(uint64_t conn);

    size_t connections() const { return conns_.size(); }
    uint64_t opened() const { return next_conn_ - 1; }

  private:
    static constexpr size_t kClosedRemembered = 4096;

    zmq::socket_t socket_;
    std::map<std::string, uint64_t> conns_;   // routing id -> connection
    std::map<uint64_t, std::string> routes_;  // and back
    std::set<std::string> closed_;            // routing ids closed here
    uint64_t next_conn_ = 1;
};

}  // namespace kv::node
