// Cluster membership as one node sees it. For now a static list given at start
// (flags or config file); gossip will implement the same interface, so the node
// never depends on where its view comes from.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "client/status.h"

namespace kv::gossip {

struct Member {
    std::string id;        // unique, stable node id (also its ring identity)
    std::string endpoint;  // ZeroMQ endpoint of its ROUTER socket
    // tcp://HOST:PORT of its --link-listen (node/runtime), empty when it has
    // none (or the membership does not say: static lists, the simulator).
    std::string link_endpoint = {};
    bool operator==(const Member&) const = default;
};

class Membership {
public:
    virtual ~Membership() = default;
    // Members sorted by id, including this node.
    virtual const std::vector<Member>& members() const = 0;
    // Changes whenever members() changes, so users can cache derived state (the ring).
    virtual uint64_t version() const = 0;
};

class StaticMembership final : public Membership {
public:
    explicit StaticMembership(std::vector<Member> members);
    const std::vector<Member>& members() const override { return members_; }
    uint64_t version() const override { return 1; }

private:
    std::vector<Member> members_;
};

// Parses "id=endpoint,id=endpoint,...": ids unique and non-empty, endpoints
// non-empty. Errors name the offending entry.
Result<std::vector<Member>> parse_member_list(std::string_view text);

}  // namespace kv::gossip
