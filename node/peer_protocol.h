// TEMPORARY shim until the peer-protocol branch lands.
#pragma once
#include "client/protocol.h"
namespace kv::node {
using proto::GossipRequest;
using proto::HandoffRequest;
using proto::HandoffResponse;
using proto::kGossipPayloadBytesMax;
using proto::kStreamKeysMax;
using proto::kTransferRangesMax;
using proto::Message;
using proto::PingRequest;
using proto::PingResponse;
using proto::ReplicaMergeRequest;
using proto::ReplicaMergeResponse;
using proto::ReplicaReadRequest;
using proto::ReplicaReadResponse;
using proto::ReplicaWriteRequest;
using proto::ReplicaWriteResponse;
using proto::request_id;
using proto::StreamRequest;
using proto::StreamResponse;
using proto::TokenRange;
using proto::type_name;
}  // namespace kv::node
