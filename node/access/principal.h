// Who sent a request, as the transport authenticated it (docs/SECURITY.md).
// The node checks every request against it: peer-only messages need a peer,
// client requests a user's grant. Header-only: the runtime and the simulator
// build it, the node reads it.
#pragma once

#include <cstdint>
#include <string>

namespace kv::node {

struct Principal {
    enum class Kind : uint8_t {
        // No credentials configured (protected or insecure mode, the
        // simulator's default): the transport proves nothing, everything is allowed.
        local,
        // Holds the cluster key: a member node. Allowed everything.
        peer,
        // A client user, by the CURVE public key it proved at the handshake.
        user,
    };
    Kind kind = Kind::local;
    std::string public_key_z85;  // user: the 40-character Z85 CURVE public key

    static Principal local() { return {}; }
    static Principal peer() { return {Kind::peer, {}}; }
    static Principal user(std::string public_key_z85) {
        return {Kind::user, std::move(public_key_z85)};
    }
    bool operator==(const Principal&) const = default;
};

}  // namespace kv::node
