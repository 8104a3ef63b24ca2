// A name lookup a test controls, for NameResolver and LinkDialer
// (client/name_resolver.h): it records the names it is asked, in order;
// "slow" blocks until release(); "bad" fails; any other name is 127.0.0.1 at
// the endpoint's port.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "client/name_resolver.h"

namespace kv::test {

struct ScriptedLookup {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<std::string> asked;
    bool released = false;
    std::atomic<int> returned{0};
    int inside = 0;  // lookups in progress

    // A resolver's thread may still be in a lookup when a test ends: let it
    // out, and wait (at most 10 s) until it has left.
    ~ScriptedLookup() {
        std::unique_lock lock(mutex);
        released = true;
        changed.notify_all();
        changed.wait_for(lock, std::chrono::seconds(10), [&] { return inside == 0; });
    }

    client::NameResolver::Lookup lookup() {
        return [this](const client::TcpEndpoint& e) -> Result<std::vector<client::SocketAddress>> {
            std::unique_lock lock(mutex);
            ++inside;
            asked.push_back(e.host);
            changed.notify_all();
            if (e.host == "slow") changed.wait(lock, [&] { return released; });
            ++returned;
            --inside;
            changed.notify_all();
            if (e.host == "bad") return Status(ErrorCode::connection, "cannot resolve bad");
            client::SocketAddress a;
            auto* in = reinterpret_cast<sockaddr_in*>(&a.address);
            in->sin_family = AF_INET;
            in->sin_port = htons(e.port);
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.length = sizeof(sockaddr_in);
            return std::vector<client::SocketAddress>{a};
        };
    }
    void release() {
        std::lock_guard lock(mutex);
        released = true;
        changed.notify_all();
    }
    // Waits (at most 10 s) until `n` names were asked.
    bool wait_asked(size_t n) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, std::chrono::seconds(10), [&] { return asked.size() >= n; });
    }
    std::vector<std::string> names() {
        std::lock_guard lock(mutex);
        return asked;
    }
};

}  // namespace kv::test
