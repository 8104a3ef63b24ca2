// A raw TCP connection for the process tests of the TCP protocols a node
// serves beside its own (Redis, HTTP metrics): input no client library would
// send. Every wait is bounded.
#pragma once

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

namespace kv::test {

class Tcp {
  public:
    explicit Tcp(uint16_t port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }
    ~Tcp() { ::close(fd_); }
    Tcp(const Tcp&) = delete;
    Tcp& operator=(const Tcp&) = delete;

    void send(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            REQUIRE(n > 0);
            bytes.remove_prefix(static_cast<size_t>(n));
        }
    }
    // What arrives until `want` bytes came, the peer closed, or timeout_ms passed.
    std::string receive(size_t want, int timeout_ms, bool* closed = nullptr) {
        std::string got;
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            char buf[65536];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) {
                if (closed) *closed = true;
                break;
            }
            got.append(buf, static_cast<size_t>(n));
        }
        return got;
    }

    // Whether everything sent was taken by the peer's kernel (none of it left
    // unsent or unacknowledged) within timeout_ms.
    bool wait_taken(int timeout_ms) {
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        for (;;) {
            int unacknowledged = 0;
            REQUIRE(::ioctl(fd_, SIOCOUTQ, &unacknowledged) == 0);
            if (unacknowledged == 0) return true;
            if (std::chrono::steady_clock::now() >= deadline) return false;
            ::poll(nullptr, 0, 10);
        }
    }

  private:
    int fd_ = -1;
};

}  // namespace kv::test
