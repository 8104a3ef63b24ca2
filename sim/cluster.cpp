#include "sim/cluster.h"

#include <cassert>
#include <cstdio>

namespace kv::sim {

namespace {
const std::string kClientPrefix = "client:";
const std::string kPeerPrefix = "peer:";
}  // namespace

// The Env of one simulated node: the cluster's virtual clock and random generator.
class SimEnv final : public node::BufferedEnv {
public:
    SimEnv(node::Store& store, Cluster& cluster, std::string id, bool log_to_stderr)
        : BufferedEnv(store), cluster_(cluster), id_(std::move(id)), log_to_stderr_(log_to_stderr) {}
    uint64_t now_ms() override { return cluster_.now_ms() + 1000; }
    uint64_t random_u64() override { return cluster_.rng()(); }
    void log(node::LogLevel level, std::string_view text) override {
        if (log_to_stderr_ && level >= node::LogLevel::info) {
            std::fprintf(stderr, "[%llu ms] %s: %.*s\n", static_cast<unsigned long long>(cluster_.now_ms()),
                         id_.c_str(), static_cast<int>(text.size()), text.data());
        }
    }

private:
    Cluster& cluster_;
    std::string id_;
    bool log_to_stderr_;
};

struct Cluster::SimNode {
    std::string id;
    std::unique_ptr<node::Store> store;
    std::unique_ptr<SimEnv> env;
    std::unique_ptr<node::Node> node;  // null while crashed
    uint64_t incarnation = 0;          // drops events meant for an earlier life
};

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)), rng_(options_.seed) {
    std::vector<gossip::Member> members;
    for (uint32_t i = 0; i < options_.nodes; ++i) {
        const std::string id = "n" + std::to_string(i + 1);
        members.push_back(gossip::Member{id, "sim://" + id});
    }
    membership_ = std::make_unique<gossip::StaticMembership>(members);
    for (uint32_t i = 0; i < options_.nodes; ++i) {
        auto n = std::make_unique<SimNode>();
        n->id = members[i].id;
        n->store = node::make_memory_store();
        nodes_.push_back(std::move(n));
    }
    for (size_t i = 0; i < nodes_.size(); ++i) restart(i);
}

Cluster::~Cluster() = default;

const std::string& Cluster::node_id(size_t i) const { return nodes_.at(i)->id; }

node::Node& Cluster::node(size_t i) {
    assert(nodes_.at(i)->node);
    return *nodes_.at(i)->node;
}

node::Store& Cluster::store(size_t i) { return *nodes_.at(i)->store; }

bool Cluster::is_up(size_t i) const { return nodes_.at(i)->node != nullptr; }

size_t Cluster::index_of(const std::string& node_id) const {
    for (size_t i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i]->id == node_id) return i;
    }
    assert(false && "unknown node id");
    return 0;
}

void Cluster::schedule(uint64_t delay_ms, std::function<void()> run) {
    events_.push(Event{now_ms_ + delay_ms, seq_++, std::move(run)});
}

uint64_t Cluster::latency() {
    std::uniform_int_distribution<uint64_t> d(options_.latency_ms_min, options_.latency_ms_max);
    return d(rng_);
}

void Cluster::crash(size_t i) {
    SimNode& n = *nodes_.at(i);
    if (!n.node) return;
    n.env->discard();
    n.node.reset();
    n.env.reset();
    ++n.incarnation;
}

void Cluster::restart(size_t i) {
    SimNode& n = *nodes_.at(i);
    if (n.node) return;
    node::NodeConfig config = options_.node_config;
    config.node_id = n.id;
    n.env = std::make_unique<SimEnv>(*n.store, *this, n.id, options_.log_to_stderr);
    n.node = std::make_unique<node::Node>(config, *n.env, *membership_);
    Status s = n.node->start();
    assert(s.ok());
    (void)s;
    flush(i);
    schedule_tick(i);
}

void Cluster::schedule_tick(size_t i) {
    const uint64_t life = nodes_[i]->incarnation;
    schedule(options_.tick_interval_ms, [this, i, life] {
        SimNode& n = *nodes_[i];
        if (!n.node || n.incarnation != life) return;
        n.node->tick();
        flush(i);
        schedule_tick(i);
    });
}

void Cluster::block(size_t a, size_t b, bool blocked) {
    if (blocked) {
        blocked_.insert({a, b});
    } else {
        blocked_.erase({a, b});
    }
}

void Cluster::heal() { blocked_.clear(); }

void Cluster::client_send(size_t i, const std::string& client, proto::Message request) {
    std::string bytes = proto::encode(request);
    schedule(latency(), [this, i, client, bytes = std::move(bytes)] {
        SimNode& n = *nodes_[i];
        if (!n.node) return;  // a crashed node drops what arrives
        uint64_t id = 0;
        auto decoded = proto::decode(bytes, &id);
        const node::ReplyTo from{kClientPrefix + client};
        if (decoded) {
            n.node->on_request(from, std::move(decoded.value()));
        } else {
            n.node->on_bad_frame(from, id, decoded.status());
        }
        flush(i);
    });
}

std::vector<proto::Message> Cluster::take_replies(const std::string& client) {
    std::vector<proto::Message> out;
    out.swap(client_inbox_[client]);
    return out;
}

void Cluster::flush(size_t i) {
    SimNode& n = *nodes_[i];
    if (!n.node) return;
    auto out = n.env->commit();
    assert(out.ok() && "the memory store never fails a commit");
    for (auto& o : out.value()) deliver_from(i, std::move(o));
}

void Cluster::deliver_from(size_t from, node::Outgoing out) {
    std::string bytes = proto::encode(out.message);
    if (!out.to_peer && out.reply_to.route.rfind(kClientPrefix, 0) == 0) {
        std::string client = out.reply_to.route.substr(kClientPrefix.size());
        schedule(latency(), [this, client = std::move(client), bytes = std::move(bytes)] {
            auto decoded = proto::decode(bytes);
            assert(decoded.ok());
            client_inbox_[client].push_back(decoded.value());
            if (client_reply_hook_) client_reply_hook_(client, client_inbox_[client].back());
        });
        return;
    }
    const bool is_request = out.to_peer;
    const size_t to = is_request ? index_of(out.peer_id)
                                 : index_of(out.reply_to.route.substr(kPeerPrefix.size()));
    if (blocked_.count({from, to})) return;
    if (loss_probability_ > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < loss_probability_) return;
    const uint64_t life = nodes_[to]->incarnation;
    const std::string sender = nodes_[from]->id;
    schedule(latency(), [this, to, life, is_request, sender, bytes = std::move(bytes)] {
        SimNode& n = *nodes_[to];
        if (!n.node || n.incarnation != life) return;
        auto decoded = proto::decode(bytes);
        assert(decoded.ok());
        if (is_request) {
            n.node->on_request(node::ReplyTo{kPeerPrefix + sender}, std::move(decoded.value()));
        } else {
            n.node->on_peer_reply(sender, std::move(decoded.value()));
        }
        flush(to);
    });
}

void Cluster::run_for(uint64_t ms) {
    const uint64_t end = now_ms_ + ms;
    while (!events_.empty() && events_.top().at_ms <= end) {
        Event e = events_.top();
        events_.pop();
        now_ms_ = e.at_ms;
        e.run();
    }
    now_ms_ = end;
}

bool Cluster::run_until(const std::function<bool()>& done, uint64_t ms_max) {
    const uint64_t end = now_ms_ + ms_max;
    while (!done()) {
        if (events_.empty() || events_.top().at_ms > end) {
            now_ms_ = end;
            return done();
        }
        Event e = events_.top();
        events_.pop();
        now_ms_ = e.at_ms;
        e.run();
    }
    return true;
}

}  // namespace kv::sim
