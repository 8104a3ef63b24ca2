// msgpack encoding of gossip messages, for the node to carry as the body of
// its own peer message. A frame is a map {"t": "gsyn"|"gack"|"gack2",
// "from": id, "ep": endpoint, "d": digests, "e": entries, "w": wants} with
// digests [id, incarnation, heartbeat, declared, liveness] and entries
// [id, endpoint, declared, liveness, incarnation, heartbeat, [tokens]]
// (enums as their numbers in cluster_view.h), and "le": [[id, link endpoint]]
// for the entries that have one, only then (a key of its own, which builds
// without links ignore, rather than a field they would count as one too
// many). Unknown map keys are ignored.
#pragma once

#include <string>
#include <string_view>

#include "client/status.h"
#include "gossip/gossip.h"

namespace kv::gossip {

std::string encode(const GossipMessage& message);

// Treats the frame as hostile: its size, every count, length and depth are
// checked against the kGossip* limits before use; failures are bad_request
// (message_too_large for an oversized frame), never exceptions.
Result<GossipMessage> decode(std::string_view frame);

}  // namespace kv::gossip
