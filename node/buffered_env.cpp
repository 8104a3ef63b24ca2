#include "node/buffered_env.h"

namespace kv::node {

Result<std::optional<std::string>> BufferedEnv::read(Space space, std::string_view key) {
    auto it = staged_.find(std::make_pair(space, std::string(key)));
    if (it != staged_.end()) return it->second;
    return store_.get(space, key);
}

void BufferedEnv::stage_write(StoreWrite write) {
    staged_[std::make_pair(write.space, std::move(write.key))] = std::move(write.value);
}

void BufferedEnv::send(const std::string& peer_id, proto::Message message) {
    outgoing_.push_back(Outgoing{true, peer_id, {}, {}, std::move(message)});
}

void BufferedEnv::send_to_endpoint(const std::string& endpoint, proto::Message message) {
    outgoing_.push_back(Outgoing{true, {}, endpoint, {}, std::move(message)});
}

void BufferedEnv::reply(const ReplyTo& to, proto::Message message) {
    outgoing_.push_back(Outgoing{false, {}, {}, to, std::move(message)});
}

Result<std::vector<Outgoing>> BufferedEnv::commit() {
    if (!staged_.empty()) {
        std::vector<StoreWrite> batch;
        batch.reserve(staged_.size());
        for (auto& [where, value] : staged_) {
            batch.push_back(StoreWrite{where.first, where.second, std::move(value)});
        }
        staged_.clear();
        Status s = store_.write(batch);
        if (!s.ok()) {
            outgoing_.clear();
            return s;
        }
    }
    std::vector<Outgoing> out;
    out.swap(outgoing_);
    return out;
}

void BufferedEnv::discard() {
    staged_.clear();
    outgoing_.clear();
}

}  // namespace kv::node
