// A BufferedEnv over an in-memory store, for driving one node component
// without a cluster: fixed time and randomness, sends and replies kept for
// inspection (commit() hands them out), logs dropped.
#pragma once

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "node/buffered_env.h"
#include "node/data/object.h"

namespace kv::test {

class ComponentEnv final : public node::BufferedEnv {
  public:
    ComponentEnv() : ComponentEnv(node::make_memory_store()) {}
    uint64_t now_ms() override { return now_ms_value; }
    uint64_t random_u64() override { return 4; }
    void log(node::LogLevel, std::string_view) override {}
    node::Store& store() { return *store_; }

    uint64_t now_ms_value = 1000;

  private:
    explicit ComponentEnv(std::unique_ptr<node::Store> store)
        : BufferedEnv(*store), store_(std::move(store)) {}
    std::unique_ptr<node::Store> store_;
};

// The encoding of an object holding one value, minted by `actor` with no context.
inline std::string minted_object(const std::string& actor, const std::string& value) {
    auto object = node::update(node::Object{}, {}, actor, value, 100, proto::kObjectBytesMax);
    REQUIRE(object.ok());
    return node::encode_object(object.value());
}

}  // namespace kv::test
