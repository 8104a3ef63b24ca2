// Key pairs for the link tests (frame_handshake_test, secure_link_test): a
// fresh pair each call, and one server and one client pair per test binary.
#pragma once

#include <sodium.h>

#include <catch2/catch.hpp>

#include "client/frame_handshake.h"

namespace kv::test {

inline client::CurveKeys fresh_keys() {
    REQUIRE(::sodium_init() >= 0);
    client::CurveKeys keys;
    REQUIRE(::crypto_box_keypair(keys.public_key.data(), keys.secret_key.data()) == 0);
    return keys;
}

inline const client::CurveKeys& server_keys() {
    static const client::CurveKeys keys = fresh_keys();
    return keys;
}

inline const client::CurveKeys& client_keys() {
    static const client::CurveKeys keys = fresh_keys();
    return keys;
}

}  // namespace kv::test
