// The event loop's waiter (client/ready_waiter.h): it reports what is
// readable, sleeps when nothing is, and never leaves a socket's queued
// messages unreported once the loop has said it used the socket.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "client/ready_waiter.h"

namespace {

using kv::client::ReadyWaiter;

// Receives from a ROUTER until it has nothing (settling it); returns how
// many messages (routing id and body) it read.
int drain(zmq::socket_t& router) {
    int messages = 0;
    for (int i = 0; i < 1000; ++i) {
        zmq::message_t route;
        if (!router.recv(route, zmq::recv_flags::dontwait)) break;
        zmq::message_t body;
        REQUIRE(router.recv(body, zmq::recv_flags::dontwait));
        ++messages;
    }
    return messages;
}

// A ROUTER and a DEALER connected to it over loopback TCP, as the node's are,
// with one message through, so that the connection's setup (commands to the
// ROUTER's mailbox, which the waiter reports like any) is over.
struct Pair {
    zmq::context_t ctx;
    zmq::socket_t router{ctx, zmq::socket_type::router};
    zmq::socket_t dealer{ctx, zmq::socket_type::dealer};
    std::vector<zmq::pollitem_t> items;

    Pair() {
        router.set(zmq::sockopt::linger, 0);
        dealer.set(zmq::sockopt::linger, 0);
        router.bind("tcp://127.0.0.1:*");
        dealer.connect(router.get(zmq::sockopt::last_endpoint));
        items.push_back(zmq::pollitem_t{router.handle(), 0, ZMQ_POLLIN, 0});
        dealer.send(zmq::str_buffer("hello"), zmq::send_flags::none);
        router.set(zmq::sockopt::rcvtimeo, 2000);
        zmq::message_t route, body;
        REQUIRE(router.recv(route));
        REQUIRE(router.recv(body));
        router.set(zmq::sockopt::rcvtimeo, -1);
        REQUIRE(drain(router) == 0);
    }

    // A plain descriptor among the items, after the ROUTER: an eventfd, not
    // readable yet. The caller closes it.
    int add_eventfd() {
        const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        REQUIRE(fd >= 0);
        items.push_back(zmq::pollitem_t{nullptr, fd, ZMQ_POLLIN, 0});
        return fd;
    }
};

// Waits and receives (bounded: 200 waits of up to 10 ms) until `want`
// messages came, receiving only when the ROUTER is reported. The clock stays
// at 1 ms so that the backstop never reports it.
int received_within_2s(ReadyWaiter& waiter, std::vector<zmq::pollitem_t>& items,
                       zmq::socket_t& router, int want) {
    int got = 0;
    for (int i = 0; i < 200 && got < want; ++i) {
        waiter.wait(items, 10, 1);
        if (items[0].revents & ZMQ_POLLIN) got += drain(router);
    }
    return got;
}

}  // namespace

TEST_CASE("ready waiter: a new socket is reported once, then only when it has input",
          "[ready_waiter]") {
    Pair p;
    ReadyWaiter waiter;
    waiter.wait(p.items, 1000, 0);  // new: unsettled, so reported at once
    CHECK(p.items[0].revents == ZMQ_POLLIN);
    CHECK(drain(p.router) == 0);  // nothing there: the receive settles it
    waiter.wait(p.items, 20, 1);
    CHECK(p.items[0].revents == 0);

    p.dealer.send(zmq::str_buffer("one"), zmq::send_flags::none);
    CHECK(received_within_2s(waiter, p.items, p.router, 1) == 1);
    waiter.wait(p.items, 20, 1);
    CHECK(p.items[0].revents == 0);
    CHECK(waiter.registrations() == 1);
}

TEST_CASE("ready waiter: a socket left with messages queued is reported after unsettle",
          "[ready_waiter]") {
    Pair p;
    ReadyWaiter waiter;
    waiter.wait(p.items, 0, 0);
    drain(p.router);
    for (int i = 0; i < 3; ++i) p.dealer.send(zmq::str_buffer("m"), zmq::send_flags::none);
    // Take one message only, receiving only when the ROUTER is reported.
    int read = 0;
    for (int i = 0; i < 200 && read == 0; ++i) {
        waiter.wait(p.items, 10, 1);
        if ((p.items[0].revents & ZMQ_POLLIN) == 0) continue;
        zmq::message_t route, body;
        if (p.router.recv(route, zmq::recv_flags::dontwait)) {
            REQUIRE(p.router.recv(body, zmq::recv_flags::dontwait));
            ++read;
        }
    }
    REQUIRE(read == 1);
    // That receive processed the mailbox, consuming the descriptor's signal,
    // while two messages stay queued (or arrive into a pipe that is awake,
    // which signals nothing): only unsettle gets them reported.
    waiter.unsettle(p.router.handle());
    CHECK(received_within_2s(waiter, p.items, p.router, 2) == 2);
}

TEST_CASE("ready waiter: the backstop reports every socket each kBackstopMs", "[ready_waiter]") {
    Pair p;
    ReadyWaiter waiter;
    waiter.wait(p.items, 0, 0);  // the backstop's next turn is at kBackstopMs
    drain(p.router);
    waiter.wait(p.items, 0, ReadyWaiter::kBackstopMs - 1);
    CHECK(p.items[0].revents == 0);
    waiter.wait(p.items, 1000, ReadyWaiter::kBackstopMs);
    CHECK(p.items[0].revents == ZMQ_POLLIN);
}

TEST_CASE("ready waiter: a plain descriptor is reported while it is readable", "[ready_waiter]") {
    Pair p;
    const int fd = p.add_eventfd();
    ReadyWaiter waiter;
    waiter.wait(p.items, 0, 0);
    drain(p.router);
    waiter.wait(p.items, 20, 1);
    CHECK(p.items[1].revents == 0);
    const uint64_t one = 1;
    REQUIRE(::write(fd, &one, sizeof one) == sizeof one);
    waiter.wait(p.items, 1000, 1);
    CHECK(p.items[1].revents == ZMQ_POLLIN);
    CHECK(p.items[0].revents == 0);
    waiter.wait(p.items, 0, 1);  // level-triggered: still readable until read
    CHECK(p.items[1].revents == ZMQ_POLLIN);
    uint64_t value = 0;
    REQUIRE(::read(fd, &value, sizeof value) == sizeof value);
    waiter.wait(p.items, 20, 1);
    CHECK(p.items[1].revents == 0);
    ::close(fd);
}

TEST_CASE(
    "ready waiter: a socket unsettled before every wait still lets a descriptor through on the "
    "next",
    "[ready_waiter]") {
    Pair p;
    const int fd = p.add_eventfd();
    ReadyWaiter waiter;
    waiter.wait(p.items, 0, 0);  // asks epoll: the first wait always does
    drain(p.router);
    const uint64_t one = 1;
    REQUIRE(::write(fd, &one, sizeof one) == sizeof one);
    // As in a loop that answers a request each turn: the reply's send
    // unsettles the socket before each wait. The wait after one that asked
    // epoll reports the socket alone (an epoll_wait saved); the next asks.
    waiter.unsettle(p.router.handle());
    waiter.wait(p.items, 1000, 1);
    CHECK(p.items[0].revents == ZMQ_POLLIN);
    CHECK(p.items[1].revents == 0);
    CHECK(drain(p.router) == 0);
    waiter.unsettle(p.router.handle());
    waiter.wait(p.items, 1000, 1);
    CHECK(p.items[0].revents == ZMQ_POLLIN);
    CHECK(p.items[1].revents == ZMQ_POLLIN);
    // The backstop asks epoll whatever the last wait did.
    waiter.unsettle(p.router.handle());
    waiter.wait(p.items, 1000, ReadyWaiter::kBackstopMs);
    CHECK(p.items[1].revents == ZMQ_POLLIN);
    ::close(fd);
}

TEST_CASE("ready waiter: items changed start over, new sockets unsettled", "[ready_waiter]") {
    Pair p;
    ReadyWaiter waiter;
    waiter.wait(p.items, 0, 0);
    drain(p.router);
    // A second ROUTER, with input already queued before the waiter knows it.
    zmq::socket_t other(p.ctx, zmq::socket_type::router);
    other.set(zmq::sockopt::linger, 0);
    other.bind("tcp://127.0.0.1:*");
    zmq::socket_t sender(p.ctx, zmq::socket_type::dealer);
    sender.set(zmq::sockopt::linger, 0);
    sender.connect(other.get(zmq::sockopt::last_endpoint));
    sender.send(zmq::str_buffer("x"), zmq::send_flags::none);
    waiter.items_changed();
    p.items.push_back(zmq::pollitem_t{other.handle(), 0, ZMQ_POLLIN, 0});
    waiter.wait(p.items, 0, 1);  // every socket starts over unsettled
    CHECK(p.items[0].revents == ZMQ_POLLIN);
    CHECK(p.items[1].revents == ZMQ_POLLIN);
    CHECK(waiter.registrations() == 2);
    int got = 0;
    for (int i = 0; i < 200 && got == 0; ++i) {
        got = drain(other);
        if (got == 0) waiter.wait(p.items, 10, 1);
    }
    CHECK(got == 1);
}

TEST_CASE(
    "ready waiter: prepare says what a wait would report at once; fd() signals the rest, "
    "the same descriptor whatever the items",
    "[ready_waiter]") {
    Pair p;
    const int fd = p.add_eventfd();
    ReadyWaiter waiter;
    CHECK(waiter.prepare(p.items, 0));  // new sockets are unsettled
    CHECK(waiter.prepare(p.items, 0));  // and stay so: prepare consumes nothing
    const int registered = waiter.fd();
    waiter.wait(p.items, 0, 0);
    CHECK(p.items[0].revents == ZMQ_POLLIN);
    drain(p.router);
    CHECK_FALSE(waiter.prepare(p.items, 1));
    CHECK(waiter.fd() == registered);                          // the same items: the same set
    CHECK(waiter.prepare(p.items, ReadyWaiter::kBackstopMs));  // the backstop is due

    // The plain descriptor signals through fd(), for a caller polling it.
    pollfd outer{waiter.fd(), POLLIN, 0};
    CHECK(::poll(&outer, 1, 0) == 0);
    const uint64_t one = 1;
    REQUIRE(::write(fd, &one, sizeof one) == sizeof one);
    CHECK(::poll(&outer, 1, 1000) == 1);
    waiter.unsettle(p.router.handle());
    CHECK(waiter.prepare(p.items, 1));

    // Other items: the same descriptor (a caller registered it once), and an
    // item taken out no longer signals through it though it is still readable.
    drain(p.router);
    p.items.pop_back();
    CHECK(waiter.prepare(p.items, 1));
    CHECK(waiter.fd() == registered);
    CHECK(::poll(&outer, 1, 0) == 0);
    ::close(fd);
    // An item added later (likely under the closed one's number) signals
    // through it too.
    const int added = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    REQUIRE(added >= 0);
    p.items.push_back(zmq::pollitem_t{nullptr, added, ZMQ_POLLIN, 0});
    // Registers the items; `item` then signals through the same descriptor.
    auto signals_through_set = [&](int item) {
        CHECK(waiter.prepare(p.items, 1));
        CHECK(waiter.fd() == registered);
        CHECK(::poll(&outer, 1, 0) == 0);
        REQUIRE(::write(item, &one, sizeof one) == sizeof one);
        CHECK(::poll(&outer, 1, 1000) == 1);
    };
    signals_through_set(added);
    // A descriptor closed while registered, its number then reused by a new
    // one: the new one is registered (not taken for the old), and signals.
    ::close(added);
    const int reused = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    REQUIRE(reused >= 0);
    p.items.back().fd = reused;
    waiter.items_changed();  // as its owner says when it closes and makes descriptors
    signals_through_set(reused);
    ::close(reused);
}
