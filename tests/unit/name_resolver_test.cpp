// NameResolver (client/name_resolver.h): a name resolves on the resolver's
// thread and its answer makes fd() readable; a lookup that stalls holds
// neither the owner nor the answers queued behind it past its own end; a
// cancelled lookup's answer is never handed out; the owner may go away while
// a lookup is in progress.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/name_resolver.h"
#include "tests/unit/scripted_lookup.h"

namespace {

using kv::ErrorCode;
using kv::Result;
using kv::Status;
using kv::client::NameResolver;
using kv::client::SocketAddress;
using kv::client::TcpEndpoint;
using kv::test::ScriptedLookup;

bool readable(int fd, int wait_ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, wait_ms) == 1;
}

// Waits (at most 10 s) until fd() is readable, then takes what arrived.
std::vector<NameResolver::Answer> wait_answers(NameResolver& r) {
    for (int i = 0; i < 1000 && !readable(r.fd(), 10); ++i) {
    }
    return r.take();
}

}  // namespace

TEST_CASE("a name resolves on the resolver's thread and its answer makes fd() readable") {
    auto made = NameResolver::make();
    REQUIRE(made.ok());
    NameResolver& r = *made.value();
    CHECK_FALSE(readable(r.fd(), 0));
    auto ticket = r.ask(TcpEndpoint{"localhost", 4321});
    REQUIRE(ticket.ok());
    auto answers = wait_answers(r);
    REQUIRE(answers.size() == 1);
    CHECK(answers[0].ticket == ticket.value());
    REQUIRE(answers[0].addresses.ok());
    REQUIRE_FALSE(answers[0].addresses.value().empty());
    const SocketAddress& first = answers[0].addresses.value()[0];
    const auto family = first.address.ss_family;
    CHECK((family == AF_INET || family == AF_INET6));
    const uint16_t port =
        family == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in*>(&first.address)->sin_port)
                          : ntohs(reinterpret_cast<const sockaddr_in6*>(&first.address)->sin6_port);
    CHECK(port == 4321);
    CHECK_FALSE(readable(r.fd(), 0));  // taken: no longer ready
    CHECK(r.pending() == 0);

    auto nowhere = r.ask(TcpEndpoint{"no-such-host.invalid", 1});
    REQUIRE(nowhere.ok());
    CHECK(nowhere.value() != ticket.value());
    answers = wait_answers(r);
    REQUIRE(answers.size() == 1);
    CHECK(answers[0].addresses.status().code() == ErrorCode::connection);
    CHECK_THAT(answers[0].addresses.status().message(), Catch::Contains("no-such-host.invalid"));
}

TEST_CASE("a stalled lookup holds neither the owner nor, past its end, the names behind it") {
    ScriptedLookup script;
    auto made = NameResolver::make(script.lookup());
    REQUIRE(made.ok());
    NameResolver& r = *made.value();

    const auto before = std::chrono::steady_clock::now();
    auto slow = r.ask(TcpEndpoint{"slow", 1});
    auto fast = r.ask(TcpEndpoint{"fast", 2});
    auto queued_then_cancelled = r.ask(TcpEndpoint{"never", 3});
    auto bad = r.ask(TcpEndpoint{"bad", 4});
    REQUIRE((slow.ok() && fast.ok() && queued_then_cancelled.ok() && bad.ok()));
    // ask() returned at once although the first lookup blocks.
    CHECK(std::chrono::steady_clock::now() - before < std::chrono::seconds(1));
    REQUIRE(script.wait_asked(1));
    CHECK(r.pending() == 4);
    CHECK_FALSE(readable(r.fd(), 50));  // nothing answered while "slow" blocks

    r.cancel(queued_then_cancelled.value());  // still queued: never looked up
    r.cancel(slow.value());                   // in progress: its answer is dropped
    CHECK(r.pending() == 3);
    script.release();

    std::vector<NameResolver::Answer> answers;
    for (int i = 0; i < 100 && answers.size() < 2; ++i) {
        for (auto& a : wait_answers(r)) answers.push_back(std::move(a));
    }
    REQUIRE(answers.size() == 2);
    CHECK(answers[0].ticket == fast.value());
    REQUIRE(answers[0].addresses.ok());
    CHECK(answers[0].addresses.value().size() == 1);
    CHECK(answers[1].ticket == bad.value());
    CHECK(answers[1].addresses.status().message() == "cannot resolve bad");
    CHECK(script.names() == std::vector<std::string>{"slow", "fast", "bad"});
    CHECK(r.pending() == 0);
    CHECK_FALSE(readable(r.fd(), 0));
}

TEST_CASE("an answer that arrived and was then cancelled is not handed out") {
    ScriptedLookup script;
    auto made = NameResolver::make(script.lookup());
    REQUIRE(made.ok());
    NameResolver& r = *made.value();
    auto one = r.ask(TcpEndpoint{"one", 1});
    auto two = r.ask(TcpEndpoint{"two", 2});
    REQUIRE((one.ok() && two.ok()));
    for (int i = 0; i < 1000 && script.returned < 2; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(script.returned == 2);
    r.cancel(one.value());
    std::vector<NameResolver::Answer> answers;
    for (int i = 0; i < 100 && answers.empty(); ++i) answers = wait_answers(r);
    REQUIRE(answers.size() == 1);
    CHECK(answers[0].ticket == two.value());
    CHECK_FALSE(readable(r.fd(), 0));
}

TEST_CASE("the owner may go away while a lookup is in progress") {
    ScriptedLookup script;
    {
        auto made = NameResolver::make(script.lookup());
        REQUIRE(made.ok());
        REQUIRE(made.value()->ask(TcpEndpoint{"slow", 1}).ok());
        REQUIRE(made.value()->ask(TcpEndpoint{"after", 2}).ok());
        REQUIRE(script.wait_asked(1));
    }  // destroyed with "slow" blocking and "after" queued
    script.release();
    for (int i = 0; i < 1000 && script.returned < 1; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(script.returned == 1);
    // The thread ends after "slow" without looking up what was queued (and,
    // under the sanitizers, without touching what the owner freed).
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(script.names() == std::vector<std::string>{"slow"});
}
