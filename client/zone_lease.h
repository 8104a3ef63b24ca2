// A msgpack zone to unpack into, reused per thread: unpacking then allocates
// nothing unless the input outgrows the zone's first chunk (the chunks past it
// are freed when the lease ends), where a fresh zone costs an 8 KiB chunk's
// allocation and free per unpack. A lease taken while the thread's zone is
// leased (a decode nested in another) gets a zone of its own. Objects unpacked
// into the zone die with the lease; copy what outlives it.
#pragma once

#include <msgpack.hpp>
#include <optional>

namespace kv {

class ZoneLease {
  public:
    ZoneLease() {
        if (!thread_zone_busy()) {
            thread_zone_busy() = true;
            zone_ = &thread_zone();
        } else {
            zone_ = &own_.emplace();
        }
    }
    ~ZoneLease() {
        if (zone_ == &thread_zone()) {
            zone_->clear();
            thread_zone_busy() = false;
        }
    }
    ZoneLease(const ZoneLease&) = delete;
    ZoneLease& operator=(const ZoneLease&) = delete;
    msgpack::zone& zone() { return *zone_; }

  private:
    static msgpack::zone& thread_zone() {
        thread_local msgpack::zone zone;
        return zone;
    }
    static bool& thread_zone_busy() {
        thread_local bool busy = false;
        return busy;
    }
    msgpack::zone* zone_ = nullptr;
    std::optional<msgpack::zone> own_;
};

}  // namespace kv
