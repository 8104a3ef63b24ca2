// Listening, accepting and connecting for links (client/link_socket.h):
// endpoints parse as ZeroMQ's tcp:// form, a connect never blocks and says
// how it went, a refusing endpoint is paced, and a listener out of
// descriptors takes the waiting connection off its queue instead of spinning.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "client/link_socket.h"
#include "client/secure_link.h"

namespace {

using kv::ErrorCode;
using kv::client::finish_connect;
using kv::client::LinkListener;
using kv::client::parse_tcp_endpoint;
using kv::client::ReconnectPace;
using kv::client::start_connect;
using kv::client::TcpEndpoint;

// Waits (bounded) for `events` on `fd`.
bool wait_for(int fd, short events) {
    pollfd p{fd, events, 0};
    return ::poll(&p, 1, 5000) == 1;
}

TcpEndpoint loopback(uint16_t port) {
    return TcpEndpoint{"127.0.0.1", port};
}

// Accepts the next connection within 5 s (bounded), or -1.
int accept_within(LinkListener& listener) {
    for (int i = 0; i < 50; ++i) {
        if (!wait_for(listener.fd(), POLLIN)) continue;
        auto got = listener.accept_one();
        REQUIRE(got.ok());
        if (got.value() >= 0) return got.value();
    }
    return -1;
}

}  // namespace

TEST_CASE("endpoints parse as tcp://HOST:PORT") {
    auto v4 = parse_tcp_endpoint("tcp://127.0.0.1:7001");
    REQUIRE(v4.ok());
    CHECK(v4.value().host == "127.0.0.1");
    CHECK(v4.value().port == 7001);
    auto v6 = parse_tcp_endpoint("tcp://[::1]:80");
    REQUIRE(v6.ok());
    CHECK(v6.value().host == "::1");
    CHECK(v6.value().port == 80);
    auto any = parse_tcp_endpoint("tcp://*:0");
    REQUIRE(any.ok());
    CHECK(any.value().host == "*");
    CHECK(parse_tcp_endpoint("tcp://db-1.example:65535").ok());
    for (const char* bad :
         {"ipc:///tmp/x", "tcp://host", "tcp://:80", "tcp://h:65536", "tcp://h:8x",
          "tcp://h:", "tcp://[::1:80", "tcp://[::1]80", "tcp://h:-1"}) {
        INFO(bad);
        auto parsed = parse_tcp_endpoint(bad);
        CHECK(parsed.status().code() == ErrorCode::invalid_argument);
        CHECK_THAT(parsed.status().message(), Catch::Contains("tcp://HOST:PORT"));
    }
}

TEST_CASE("a connection is made without blocking and carries frames") {
    auto listener = LinkListener::listen(loopback(0));
    REQUIRE(listener.ok());
    const uint16_t port = listener.value()->port();
    CHECK(port != 0);
    CHECK(listener.value()->accept_one().value() == -1);  // nobody yet
    auto connecting = start_connect(loopback(port));
    REQUIRE(connecting.ok());
    REQUIRE(wait_for(connecting.value(), POLLOUT));
    REQUIRE(finish_connect(connecting.value()).ok());
    const int accepted = accept_within(*listener.value());
    REQUIRE(accepted >= 0);
    auto a = kv::client::SecureLink::plain(connecting.value(), 1024);
    auto b = kv::client::SecureLink::plain(accepted, 1024);
    REQUIRE(a->send("over tcp").ok());
    REQUIRE(a->flush().ok());
    REQUIRE(wait_for(b->fd(), POLLIN));
    std::vector<std::string> got;
    REQUIRE(b->receive([&](std::string_view f) { got.emplace_back(f); }).ok());
    CHECK(got == std::vector<std::string>{"over tcp"});
}

TEST_CASE("both ends of a link close on a silent peer within kLinkSilenceMs") {
    auto listener = LinkListener::listen(loopback(0));
    REQUIRE(listener.ok());
    auto connecting = start_connect(loopback(listener.value()->port()));
    REQUIRE(connecting.ok());
    REQUIRE(wait_for(connecting.value(), POLLOUT));
    REQUIRE(finish_connect(connecting.value()).ok());
    const int accepted = accept_within(*listener.value());
    REQUIRE(accepted >= 0);
    for (int fd : {connecting.value(), accepted}) {
        auto option = [fd](int level, int name) {
            int value = -1;
            socklen_t size = sizeof value;
            REQUIRE(::getsockopt(fd, level, name, &value, &size) == 0);
            return value;
        };
        CHECK(option(IPPROTO_TCP, TCP_NODELAY) == 1);
        CHECK(option(SOL_SOCKET, SO_KEEPALIVE) == 1);
        CHECK(option(IPPROTO_TCP, TCP_USER_TIMEOUT) == kv::client::kLinkSilenceMs);
        // Probes answer silence: the last unanswered one ends within the bound.
        CHECK((option(IPPROTO_TCP, TCP_KEEPIDLE) +
               option(IPPROTO_TCP, TCP_KEEPINTVL) * option(IPPROTO_TCP, TCP_KEEPCNT)) *
                  1000 <=
              kv::client::kLinkSilenceMs);
        ::close(fd);
    }
}

TEST_CASE("a connect to a port nobody listens on fails with the reason") {
    uint16_t port = 0;
    {
        auto listener = LinkListener::listen(loopback(0));
        REQUIRE(listener.ok());
        port = listener.value()->port();
    }  // closed: the port refuses now
    auto connecting = start_connect(loopback(port));
    if (connecting.ok()) {
        REQUIRE(wait_for(connecting.value(), POLLOUT));
        const kv::Status done = finish_connect(connecting.value());
        CHECK(done.code() == ErrorCode::connection);
        CHECK_THAT(done.message(), Catch::Contains("refused"));
        ::close(connecting.value());
    } else {
        CHECK_THAT(connecting.status().message(), Catch::Contains("refused"));
    }
}

TEST_CASE("a port in use cannot be listened on twice, and a bad host is named") {
    auto first = LinkListener::listen(loopback(0));
    REQUIRE(first.ok());
    auto second = LinkListener::listen(loopback(first.value()->port()));
    CHECK(second.status().code() == ErrorCode::connection);
    CHECK_THAT(second.status().message(), Catch::Contains("cannot listen"));
    auto nowhere = start_connect(TcpEndpoint{"no-such-host.invalid", 1});
    CHECK(nowhere.status().code() == ErrorCode::connection);
    CHECK_THAT(nowhere.status().message(), Catch::Contains("no-such-host.invalid"));
}

TEST_CASE("a listener out of descriptors takes the waiting connection off its queue") {
    auto listener = LinkListener::listen(loopback(0));
    REQUIRE(listener.ok());
    auto connecting = start_connect(loopback(listener.value()->port()));
    REQUIRE(connecting.ok());
    REQUIRE(wait_for(connecting.value(), POLLOUT));
    REQUIRE(finish_connect(connecting.value()).ok());  // in the listen queue now
    REQUIRE(wait_for(listener.value()->fd(), POLLIN));

    rlimit saved{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
    rlimit low = saved;
    low.rlim_cur = std::min<rlim_t>(saved.rlim_cur, 256);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    std::vector<int> filler;
    for (int i = 0; i < 512; ++i) {
        const int fd = ::dup(0);
        if (fd < 0) break;
        filler.push_back(fd);
    }
    auto accepted = listener.value()->accept_one();
    for (int fd : filler) ::close(fd);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);

    CHECK(accepted.status().code() == ErrorCode::connection);
    CHECK_THAT(accepted.status().message(), Catch::Contains("out of descriptors"));
    CHECK(listener.value()->refused() == 1);
    // The queue is empty: the listener no longer reads as ready.
    pollfd p{listener.value()->fd(), POLLIN, 0};
    CHECK(::poll(&p, 1, 0) == 0);
    // And the connection it refused sees its end.
    REQUIRE(wait_for(connecting.value(), POLLIN));
    char byte = 0;
    CHECK(::read(connecting.value(), &byte, 1) <= 0);
    ::close(connecting.value());
    // Descriptors back: the next connection is accepted as usual.
    auto again = start_connect(loopback(listener.value()->port()));
    REQUIRE(again.ok());
    const int fd = accept_within(*listener.value());
    CHECK(fd >= 0);
    ::close(fd);
    ::close(again.value());
}

TEST_CASE("reconnecting is paced: at once, then doubling delays up to the cap") {
    ReconnectPace pace(100, 1000);
    CHECK(pace.may_try(0));
    pace.failed(5000);
    CHECK_FALSE(pace.may_try(5099));
    CHECK(pace.may_try(5100));
    std::vector<uint64_t> delays;
    uint64_t now = 5100;
    for (int i = 0; i < 6; ++i) {
        pace.failed(now);
        delays.push_back(pace.next_try_ms() - now);
        now = pace.next_try_ms();
    }
    CHECK(delays == std::vector<uint64_t>{200, 400, 800, 1000, 1000, 1000});
    CHECK(pace.failures_in_a_row() == 7);
    pace.succeeded();
    CHECK(pace.may_try(now));
    CHECK(pace.failures_in_a_row() == 0);
    pace.failed(now);
    CHECK(pace.next_try_ms() == now + 100);  // the delay starts again from the first
}
