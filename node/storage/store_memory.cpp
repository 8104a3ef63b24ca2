// MemoryStore: one ordered map per Space. std::map (never a hash map) so that
// scans, and therefore everything the simulator derives from them, are
// deterministic and in byte order.
#include <array>
#include <cassert>
#include <map>

#include "node/storage/store.h"

namespace kv::node {
namespace {

using SpaceMap = std::map<std::string, std::string, std::less<>>;

class MemoryStore final : public Store {
  public:
    Result<std::optional<std::string>> get(Space space, std::string_view key) const override {
        const SpaceMap& map = space_map(space);
        auto it = map.find(key);
        if (it == map.end()) return std::optional<std::string>{};
        return std::optional<std::string>{it->second};
    }

    Status write(const std::vector<StoreWrite>& batch) override {
        // A scan's iterator would dangle if its visitor wrote (see store.h).
        assert(scans_active_ == 0);
        // Validate everything first: a batch is applied entirely or not at all.
        for (const StoreWrite& w : batch) {
            if (w.key.empty()) return {ErrorCode::invalid_argument, "store: empty key"};
        }
        for (const StoreWrite& w : batch) apply(w);
        return {};
    }

    Status scan(
        Space space, std::string_view from, size_t limit,
        const std::function<bool(std::string_view, std::string_view)>& visit) const override {
        const SpaceMap& map = space_map(space);
        ++scans_active_;
        size_t visited = 0;
        for (auto it = map.lower_bound(from); it != map.end() && visited < limit; ++it) {
            ++visited;
            if (!visit(it->first, it->second)) break;
        }
        --scans_active_;
        return {};
    }

    Result<uint64_t> count(Space space) const override { return space_map(space).size(); }

  private:
    const SpaceMap& space_map(Space space) const {
        assert(static_cast<size_t>(space) < kSpaceCount);
        return maps_[static_cast<size_t>(space)];
    }
    SpaceMap& space_map(Space space) {
        assert(static_cast<size_t>(space) < kSpaceCount);
        return maps_[static_cast<size_t>(space)];
    }

    void apply(const StoreWrite& w) {
        SpaceMap& map = space_map(w.space);
        if (!w.value) {
            map.erase(w.key);
            return;
        }
        map.insert_or_assign(w.key, *w.value);
    }

    std::array<SpaceMap, kSpaceCount> maps_;
    mutable int scans_active_ = 0;  // a visitor may scan again, never write
};

}  // namespace

std::unique_ptr<Store> make_memory_store() {
    return std::make_unique<MemoryStore>();
}

}  // namespace kv::node
