// FrameLink (client/frame_link.h): frames arrive whole and in order however
// the bytes are cut, a length above the limit ends the link, a closed peer is
// reported after its last frames, and writes the kernel cannot take now wait.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "client/frame_link.h"

namespace {

using kv::ErrorCode;
using kv::client::FrameLink;

// A connected pair of stream sockets: links over both ends, or one link and
// the raw other end.
struct Pair {
    int a = -1;
    int b = -1;
    Pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, &a) == 0); }
};

std::string header(uint32_t bytes) {
    std::string h(4, '\0');
    for (int i = 0; i < 4; ++i)
        h[static_cast<size_t>(i)] = static_cast<char>((bytes >> (8 * i)) & 0xff);
    return h;
}

void write_raw(int fd, const std::string& bytes) {
    REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
}

// Frames received by `link` in one receive() call.
std::vector<std::string> receive_all(FrameLink& link, kv::Status* status = nullptr) {
    std::vector<std::string> got;
    kv::Status s = link.receive([&](std::string_view f) { got.emplace_back(f); });
    if (status != nullptr) *status = s;
    return got;
}

std::string pattern(size_t bytes, uint32_t seed) {
    std::string s(bytes, '\0');
    for (size_t i = 0; i < bytes; ++i) s[i] = static_cast<char>((i * 131 + seed * 7) & 0xff);
    return s;
}

}  // namespace

TEST_CASE("frames of any size go through in order, empty ones included") {
    Pair p;
    FrameLink sender(p.a, 1 << 20);
    FrameLink receiver(p.b, 1 << 20);
    const std::vector<std::string> frames{"", "x", pattern(100, 1), "", pattern(4096, 2)};
    for (const auto& f : frames) REQUIRE(sender.send(f).ok());
    CHECK(sender.queued_bytes() == 4 * frames.size() + 1 + 100 + 4096);
    REQUIRE(sender.flush().ok());
    CHECK_FALSE(sender.wants_write());
    CHECK(sender.queued_bytes() == 0);
    kv::Status s;
    CHECK(receive_all(receiver, &s) == frames);
    CHECK(s.ok());
    // Nothing more: a receive finds nothing and the link stays open.
    CHECK(receive_all(receiver, &s).empty());
    CHECK(s.ok());
}

TEST_CASE("a frame cut anywhere is handed over only once whole") {
    const std::string body = pattern(300, 3);
    const std::string wire = header(300) + body + header(2) + "ok";
    for (size_t cut = 1; cut < wire.size(); cut += 7) {
        Pair p;
        FrameLink receiver(p.b, 1024);
        write_raw(p.a, wire.substr(0, cut));
        std::vector<std::string> got = receive_all(receiver);
        write_raw(p.a, wire.substr(cut));
        for (auto& f : receive_all(receiver)) got.push_back(f);
        REQUIRE(got == std::vector<std::string>{body, "ok"});
        ::close(p.a);
    }
}

TEST_CASE("a length above the limit ends the link, and no frame of it is handed over") {
    Pair p;
    FrameLink receiver(p.b, 64);
    write_raw(p.a, header(3) + "abc" + header(65) + std::string(65, 'z'));
    kv::Status s;
    const auto got = receive_all(receiver, &s);
    CHECK(got == std::vector<std::string>{"abc"});
    CHECK(s.code() == ErrorCode::message_too_large);
    // The limit itself is allowed.
    Pair q;
    FrameLink at_limit(q.b, 64);
    write_raw(q.a, header(64) + std::string(64, 'y'));
    CHECK(receive_all(at_limit, &s) == std::vector<std::string>{std::string(64, 'y')});
    CHECK(s.ok());
    ::close(p.a);
    ::close(q.a);
}

TEST_CASE("a frame above the limit is refused on the sending side and nothing is queued") {
    Pair p;
    FrameLink sender(p.a, 8);
    CHECK(sender.send("123456789").code() == ErrorCode::message_too_large);
    CHECK(sender.queued_bytes() == 0);
    CHECK(sender.send("12345678").ok());
    CHECK(sender.queued_bytes() == 12);
    ::close(p.b);
}

TEST_CASE("the peer's last frames come before its close") {
    Pair p;
    FrameLink receiver(p.b, 1024);
    write_raw(p.a,
              header(1) + "a" + header(1) + "b" + header(5) + "par");  // the last one cut short
    ::close(p.a);
    // A read that was short returns without learning of the end of stream;
    // the next call (epoll reports the closed socket readable) does.
    kv::Status s;
    std::vector<std::string> got;
    for (int call = 0; call < 3 && s.ok(); ++call) {
        for (auto& f : receive_all(receiver, &s)) got.push_back(f);
    }
    CHECK(got == std::vector<std::string>{"a", "b"});
    CHECK(s.code() == ErrorCode::connection);
    CHECK(s.message() == "closed by the peer");
}

TEST_CASE("writes the kernel cannot take now wait for the reader, then all arrive intact") {
    Pair p;
    const int small = 4096;
    REQUIRE(::setsockopt(p.a, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    FrameLink sender(p.a, 1 << 20);
    FrameLink receiver(p.b, 1 << 20);
    std::vector<std::string> sent;
    for (uint32_t i = 0; i < 64; ++i) {
        sent.push_back(pattern(16 * 1024 + i, i));
        REQUIRE(sender.send(sent.back()).ok());
    }
    REQUIRE(sender.flush().ok());
    CHECK(sender.wants_write());  // 1 MiB does not fit a 4 KiB buffer
    std::vector<std::string> got;
    int rounds = 0;
    for (; rounds < 10'000 && (sender.wants_write() || got.size() < sent.size()); ++rounds) {
        pollfd fds[2] = {{p.a, POLLOUT, 0}, {p.b, POLLIN, 0}};
        REQUIRE(::poll(fds, 2, 1000) > 0);
        if (sender.wants_write()) REQUIRE(sender.flush().ok());
        kv::Status s = receiver.receive([&](std::string_view f) { got.emplace_back(f); });
        REQUIRE(s.ok());
    }
    CHECK(rounds < 10'000);
    CHECK(got == sent);
    CHECK(sender.queued_bytes() == 0);
}

TEST_CASE("one receive reads at most its budget, and the next takes the rest") {
    Pair p;
    const int big = 4 << 20;
    ::setsockopt(p.a, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    ::setsockopt(p.b, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    FrameLink sender(p.a, 1 << 20);
    FrameLink receiver(p.b, 1 << 20);
    const size_t frames = 2 * FrameLink::kReadBudgetBytes / 1024 + 8;
    for (size_t i = 0; i < frames; ++i) REQUIRE(sender.send(pattern(1020, 9)).ok());
    size_t got = 0;
    int calls = 0;
    for (; calls < 1000 && got < frames; ++calls) {
        if (sender.wants_write()) REQUIRE(sender.flush().ok());
        size_t this_call = 0;
        REQUIRE(receiver
                    .receive([&](std::string_view f) {
                        CHECK(f.size() == 1020);
                        ++this_call;
                    })
                    .ok());
        // The budget is checked before each read of at most a chunk (64 KiB) and the room left.
        CHECK(this_call * 1024 <= FrameLink::kReadBudgetBytes + (size_t{128} << 10));
        got += this_call;
    }
    CHECK(got == frames);
    CHECK(calls > 2);
}

TEST_CASE("writing to a peer that went away is an error, not a signal") {
    Pair p;
    FrameLink sender(p.a, 1024);
    ::close(p.b);
    REQUIRE(sender.send("lost").ok());
    kv::Status s = sender.flush();
    CHECK(s.code() == ErrorCode::connection);
    CHECK(s.message().rfind("send: ", 0) == 0);
}

TEST_CASE("the link closes its socket") {
    Pair p;
    { FrameLink link(p.a, 16); }
    char byte = 0;
    CHECK(::read(p.b, &byte, 1) == 0);  // end of stream: the other end is closed
    ::close(p.b);
}
