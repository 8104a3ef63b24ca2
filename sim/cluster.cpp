#include "sim/cluster.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <deque>
#include <type_traits>

#include "node/data/stored_record.h"
#include "node/mutant.h"
#include "node/storage/upgrade.h"

namespace kv::sim {

namespace {
const std::string kClientPrefix = "client:";
const std::string kPeerPrefix = "peer:";
const std::string kEndpointPrefix = "sim://";
// Every node clock starts this far above zero: the node treats 0 as "never".
constexpr uint64_t kClockBaseMs = 1000;
// The start's refill ends well within this: one round trip per peer, or a
// peer judged down (peer_down_after_ms, 3 s by default).
constexpr uint64_t kRefillAtStartMsMax = 10000;
}  // namespace

// The Env of one simulated node: its own skewed, drifting view of the cluster's
// virtual clock, and the cluster's one random generator.
class SimEnv final : public node::BufferedEnv {
  public:
    SimEnv(node::Store& store, Cluster& cluster, size_t index, std::string id, bool log_to_stderr)
        : BufferedEnv(store),
          cluster_(cluster),
          index_(index),
          id_(std::move(id)),
          log_to_stderr_(log_to_stderr) {}
    uint64_t now_ms() override { return cluster_.node_clock_ms(index_); }
    uint64_t random_u64() override { return cluster_.rng()(); }
    void log(node::LogLevel level, std::string_view text) override {
        const auto& on_log = cluster_.options().on_log;
        if (on_log) on_log(index_, level, text);
        if (log_to_stderr_ && level >= node::LogLevel::info) {
            std::fprintf(stderr, "[%llu ms] %s: %.*s\n",
                         static_cast<unsigned long long>(cluster_.now_ms()), id_.c_str(),
                         static_cast<int>(text.size()), text.data());
        }
    }

  private:
    Cluster& cluster_;
    size_t index_;
    std::string id_;
    bool log_to_stderr_;
};

// A node's store: the memory store, whose commits fail while `fail_until_ms`
// is ahead of the cluster's clock (a full disk, an I/O error). A failed commit
// applies nothing and leaves the store usable (node/storage/store.h).
class FaultyStore final : public node::Store {
  public:
    explicit FaultyStore(const uint64_t& now_ms)
        : now_ms_(now_ms), inner_(node::make_memory_store()) {}
    Result<std::optional<std::string>> get(node::Space space, std::string_view key) const override {
        return inner_->get(space, key);
    }
    Status write(const std::vector<node::StoreWrite>& batch) override {
        if (now_ms_ < fail_until_ms)
            return Status(ErrorCode::storage_error, "simulated commit failure");
        return inner_->write(batch);
    }
    Status scan(
        node::Space space, std::string_view from, size_t limit,
        const std::function<bool(std::string_view, std::string_view)>& visit) const override {
        return inner_->scan(space, from, limit, visit);
    }
    Result<uint64_t> count(node::Space space) const override { return inner_->count(space); }

    uint64_t fail_until_ms = 0;

  private:
    const uint64_t& now_ms_;
    std::unique_ptr<node::Store> inner_;
};

struct Cluster::SimNode {
    std::string id;
    std::unique_ptr<FaultyStore> store;
    std::unique_ptr<SimEnv> env;
    std::unique_ptr<node::Node> node;  // null while crashed
    uint64_t incarnation = 0;          // drops events meant for an earlier life
    uint64_t paused_until_ms = 0;
    // With commit_batch_ms_max: the batches begun (BufferedEnv::begin_commit)
    // and not yet durable, oldest first, and when the newest is due.
    std::deque<const std::vector<node::StoreWrite>*> commits_in_flight;
    uint64_t last_commit_due_ms = 0;
    uint64_t pause_began_ms = 0;  // when the current unbroken pause began
    uint64_t clock_offset_ms = kClockBaseMs;
    int64_t clock_drift_ppm = 0;
};

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)), rng_(options_.seed) {
    assert(options_.seeds_per_node.empty() || options_.seeds_per_node.size() == options_.nodes);
    std::vector<gossip::Member> members;
    for (uint32_t i = 0; i < options_.nodes; ++i) {
        const std::string id = "n" + std::to_string(i + 1);
        members.push_back(gossip::Member{id, kEndpointPrefix + id});
    }
    membership_ = std::make_unique<gossip::StaticMembership>(members);
    for (uint32_t i = 0; i < options_.nodes; ++i) {
        auto n = std::make_unique<SimNode>();
        n->id = members[i].id;
        n->store = std::make_unique<FaultyStore>(now_ms_);
        if (options_.clock_offset_ms_max > 0) {
            n->clock_offset_ms +=
                std::uniform_int_distribution<uint64_t>(0, options_.clock_offset_ms_max)(rng_);
        }
        if (options_.clock_drift_ppm_max > 0) {
            const auto d =
                static_cast<int64_t>(std::min<uint32_t>(options_.clock_drift_ppm_max, 500'000));
            n->clock_drift_ppm = std::uniform_int_distribution<int64_t>(-d, d)(rng_);
        }
        nodes_.push_back(std::move(n));
    }
    for (size_t i = 0; i < nodes_.size(); ++i) restart(i);
    // Every node starts on an empty store, so under a static list each first
    // refills (an exchange with each peer, node/antientropy/anti_entropy.h)
    // before its replica reads count. A run starts once they have, as a real
    // cluster is in use once its nodes are: a few simulated ms.
    if (options_.seeds_per_node.empty()) {
        run_until(
            [this] {
                for (const auto& n : nodes_) {
                    if (n->node && n->node->refilling()) return false;
                }
                return true;
            },
            kRefillAtStartMsMax);
    }
}

Cluster::~Cluster() = default;

const std::string& Cluster::node_id(size_t i) const {
    return nodes_.at(i)->id;
}

node::Node& Cluster::node(size_t i) {
    assert(nodes_.at(i)->node);
    return *nodes_.at(i)->node;
}

node::Store& Cluster::store(size_t i) {
    return *nodes_.at(i)->store;
}

Result<std::optional<std::string>> Cluster::stored_object(size_t i, const std::string& key) {
    auto stored = store(i).get(node::Space::objects, node::stored_key(key));
    if (!stored) return stored.status();
    if (!stored.value()) return std::optional<std::string>();
    auto record = node::read_stored_record(node::stored_key(key), *stored.value());
    if (!record) return Status(ErrorCode::storage_error, "a stored record is malformed");
    return std::optional<std::string>(std::string(record->object));
}

bool Cluster::is_up(size_t i) const {
    return nodes_.at(i)->node != nullptr;
}

uint64_t Cluster::node_clock_ms(size_t i) const {
    const SimNode& n = *nodes_.at(i);
    // Integer arithmetic keeps it exact and monotonic: floor(t * d / 1e6) never
    // falls by more than 1 per step of t when d > -1e6.
    const auto t = static_cast<int64_t>(now_ms_);
    const int64_t drifted = t + (t * n.clock_drift_ppm) / 1'000'000;
    return n.clock_offset_ms + static_cast<uint64_t>(drifted);
}

int64_t Cluster::clock_drift_ppm(size_t i) const {
    return nodes_.at(i)->clock_drift_ppm;
}

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

bool Cluster::chance(double probability) {
    if (probability <= 0) return false;
    return std::uniform_real_distribution<double>(0, 1)(rng_) < probability;
}

uint64_t Cluster::latency() {
    if (chance(options_.latency_tail_probability)) {
        return std::uniform_int_distribution<uint64_t>(
            options_.latency_ms_max,
            std::max(options_.latency_ms_max, options_.latency_tail_ms_max))(rng_);
    }
    return std::uniform_int_distribution<uint64_t>(options_.latency_ms_min,
                                                   options_.latency_ms_max)(rng_);
}

void Cluster::on_node(size_t i, uint64_t life, std::function<void(node::Node&)> fn) {
    SimNode& n = *nodes_[i];
    if (!n.node || n.incarnation != life) {
        ++net_.messages_to_dead;
        return;
    }
    if (n.paused_until_ms > now_ms_) {
        // Re-queued in arrival order behind the pause: a stalled process's socket
        // buffer keeps its order.
        const uint64_t wait_ms = n.paused_until_ms - now_ms_;
        schedule(wait_ms, [this, i, life, fn = std::move(fn)]() mutable {
            on_node(i, life, std::move(fn));
        });
        return;
    }
    n.env->begin_handler();
    fn(*n.node);
    flush(i);
}

void Cluster::trace(const std::string& route, const node::Message& m) const {
    if (!options_.trace_to_stderr) return;
    std::string detail;
    std::visit(
        [&](const auto& x) {
            if constexpr (requires { x.key; }) detail += " key=" + x.key;
            if constexpr (requires { x.code; })
                detail += " code=" + std::string(error_name(x.code));
            if constexpr (requires { x.value; }) {
                if constexpr (std::is_same_v<std::decay_t<decltype(x.value)>, std::string>) {
                    detail += " value=" + x.value;
                } else {
                    detail += x.value ? " value=" + *x.value : " tombstone";
                }
            }
        },
        m);
    std::fprintf(stderr, "%8llu %s %.*s id=%llu%s\n", static_cast<unsigned long long>(now_ms_),
                 route.c_str(), static_cast<int>(node::type_name(m).size()),
                 node::type_name(m).data(), static_cast<unsigned long long>(node::request_id(m)),
                 detail.c_str());
}

void Cluster::crash(size_t i) {
    if (options_.trace_to_stderr)
        std::fprintf(stderr, "%8llu CRASH %s\n", static_cast<unsigned long long>(now_ms_),
                     nodes_.at(i)->id.c_str());
    SimNode& n = *nodes_.at(i);
    if (!n.node) return;
    // A batch in flight was handed to the disk: the crash may come after its
    // sync or before it, so an oldest-first run of them survives (a log keeps
    // its records in order), each with even odds, and the rest are lost. None
    // of their messages left: the loop had not seen them durable.
    bool durable = true;
    for (const std::vector<node::StoreWrite>* writes : n.commits_in_flight) {
        durable = durable && chance(0.5) && n.store->write(*writes).ok();
        if (!durable) ++net_.commits_lost;
    }
    n.commits_in_flight.clear();
    if (n.env->staged_writes() != 0) ++net_.commits_lost;
    n.env->discard();
    take_down(i);
}

void Cluster::wipe(size_t i) {
    crash(i);
    if (options_.trace_to_stderr)
        std::fprintf(stderr, "%8llu WIPE %s\n", static_cast<unsigned long long>(now_ms_),
                     nodes_.at(i)->id.c_str());
    nodes_.at(i)->store = std::make_unique<FaultyStore>(now_ms_);
}

void Cluster::take_down(size_t i) {
    SimNode& n = *nodes_.at(i);
    n.node.reset();
    n.env.reset();
    n.paused_until_ms = 0;
    n.commits_in_flight.clear();
    n.last_commit_due_ms = 0;
    ++n.incarnation;
}

void Cluster::stop(size_t i) {
    SimNode& n = *nodes_.at(i);
    if (!n.node) return;
    n.env->begin_handler();
    n.node->stop();
    // The batches in flight end first, in order; then everything staged and
    // sent is committed. A failed commit fail-stops the node (crash) instead.
    while (n.node && !n.commits_in_flight.empty()) end_oldest_commit(i);
    if (!n.node) return;
    commit(i);
    if (!n.node) return;
    if (options_.trace_to_stderr)
        std::fprintf(stderr, "%8llu STOP %s\n", static_cast<unsigned long long>(now_ms_),
                     n.id.c_str());
    take_down(i);
}

void Cluster::restart(size_t i) {
    SimNode& n = *nodes_.at(i);
    if (n.node) return;
    if (options_.trace_to_stderr)
        std::fprintf(stderr, "%8llu RESTART %s\n", static_cast<unsigned long long>(now_ms_),
                     n.id.c_str());
    node::NodeConfig config = options_.node_config;
    config.node_id = n.id;
    config.endpoint = kEndpointPrefix + n.id;
    if (!options_.seeds_per_node.empty()) config.seeds = options_.seeds_per_node.at(i);
    n.env = std::make_unique<SimEnv>(*n.store, *this, i, n.id, options_.log_to_stderr);
    // As kvnode does before it starts (a no-op on a store of this format).
    auto upgraded = node::upgrade_store(*n.store, n.env->now_ms(), [&](const std::string& line) {
        n.env->log(node::LogLevel::info, line);
    });
    assert(upgraded.ok());
    (void)upgraded;
    // Seeds in the options: every node gossips (its own view), else all share
    // the static list.
    n.node = config.seeds.empty() ? std::make_unique<node::Node>(config, *n.env, *membership_)
                                  : std::make_unique<node::Node>(config, *n.env);
    n.env->begin_handler();
    Status s = n.node->start();
    assert(s.ok());
    (void)s;
    commit(i);                     // as kvnode does before it serves
    if (n.node) schedule_tick(i);  // unless that commit failed and stopped it
}

void Cluster::fail_commits(size_t i, uint64_t ms) {
    nodes_.at(i)->store->fail_until_ms = ms == 0 ? 0 : now_ms_ + ms;
}

void Cluster::pause(size_t i, uint64_t ms) {
    SimNode& n = *nodes_.at(i);
    if (!n.node) return;
    if (n.paused_until_ms <= now_ms_) n.pause_began_ms = now_ms_;
    n.paused_until_ms = std::max(n.paused_until_ms, now_ms_ + ms);
    net_.longest_pause_ms = std::max(net_.longest_pause_ms, n.paused_until_ms - n.pause_began_ms);
}

bool Cluster::is_paused(size_t i) const {
    return nodes_.at(i)->paused_until_ms > now_ms_;
}

void Cluster::unpause_all() {
    // Waiting events keep their scheduled times; they run at the pause's original end.
    for (auto& n : nodes_) n->paused_until_ms = std::min(n->paused_until_ms, now_ms_);
}

void Cluster::schedule_tick(size_t i) {
    const uint64_t life = nodes_[i]->incarnation;
    schedule(options_.tick_interval_ms, [this, i, life] {
        SimNode& n = *nodes_[i];
        if (!n.node || n.incarnation != life) return;
        if (n.paused_until_ms > now_ms_) {
            // A paused process's timers fire late, once, when it resumes.
            schedule(n.paused_until_ms - now_ms_, [this, i, life] {
                if (nodes_[i]->incarnation != life) return;
                schedule_tick(i);
            });
            return;
        }
        n.env->begin_handler();
        n.node->tick();
        flush(i);
        if (n.node) schedule_tick(i);  // a failed commit stopped it
    });
}

void Cluster::block(size_t a, size_t b, bool blocked) {
    if (blocked) {
        blocked_.insert({a, b});
    } else {
        blocked_.erase({a, b});
    }
}

void Cluster::partition(const std::vector<size_t>& side, bool one_way) {
    std::set<size_t> in(side.begin(), side.end());
    for (size_t a : in) {
        for (size_t b = 0; b < nodes_.size(); ++b) {
            if (in.count(b)) continue;
            block(a, b, true);
            if (!one_way) block(b, a, true);
        }
    }
}

void Cluster::heal() {
    blocked_.clear();
}

void Cluster::client_send(size_t i, const std::string& client, node::Message request,
                          const node::Principal& who) {
    ++net_.messages_sent;
    if (chance(loss_probability_)) {
        ++net_.messages_lost;
        return;
    }
    std::string bytes = node::encode(request);
    const uint64_t life = nodes_.at(i)->incarnation;
    schedule(latency(), [this, i, life, client, who, bytes = std::move(bytes)] {
        // The node's clock at arrival: a paused node handles the request later,
        // and its deadline counts from here (node/node.h, on_request).
        const uint64_t received_ms = node_clock_ms(i);
        on_node(i, life, [cluster = this, i, client, who, bytes, received_ms](node::Node& n) {
            uint64_t id = 0;
            auto decoded = node::decode(bytes, &id);
            const node::ReplyTo from{kClientPrefix + client};
            if (decoded) {
                cluster->trace(client + "->" + cluster->node_id(i), decoded.value());
                n.on_request(from, std::move(decoded.value()), received_ms, who);
            } else {
                n.on_bad_frame(from, id, decoded.status());
            }
        });
    });
}

std::vector<node::Message> Cluster::take_replies(const std::string& client) {
    std::vector<node::Message> out;
    out.swap(client_inbox_[client]);
    return out;
}

void Cluster::flush(size_t i) {
    SimNode& n = *nodes_[i];
    if (!n.node) return;
    // Replica merges leave at once, as kvnode sends them (Env::send_ahead):
    // a crash before the commit leaves them with peers and not here.
    for (auto& o : n.env->take_ahead()) deliver_from(i, std::move(o));
    if (options_.commit_batch_ms_max == 0) return commit(i);
    // kvnode's writer (node/runtime/zmq_runtime.cpp, flush()): what depends
    // on nothing staged leaves now, or with the batch in flight it waits for;
    // the staged writes and the messages behind them begin a batch while
    // fewer than kCommitsInFlight are in flight. Each batch is durable 0 to
    // commit_batch_ms_max ms after it began, and batches end in order.
    for (auto& o : n.env->take_sendable()) deliver_from(i, std::move(o));
    if (n.commits_in_flight.size() >= kCommitsInFlight || !n.env->has_pending()) return;
    n.commits_in_flight.push_back(n.env->begin_commit());
    const uint64_t due_ms = std::max(
        now_ms_ + std::uniform_int_distribution<uint64_t>(0, options_.commit_batch_ms_max)(rng_),
        n.last_commit_due_ms);
    n.last_commit_due_ms = due_ms;
    schedule(due_ms - now_ms_, [this, i, life = n.incarnation] { on_commit_due(i, life); });
}

void Cluster::on_commit_due(size_t i, uint64_t life) {
    SimNode& n = *nodes_[i];
    if (!n.node || n.incarnation != life) return;
    if (n.paused_until_ms > now_ms_) {
        // The sync ends; a stalled loop sees it when it resumes. Later
        // batches' events re-queue behind this one, so they stay in order.
        schedule(n.paused_until_ms - now_ms_, [this, i, life] { on_commit_due(i, life); });
        return;
    }
    end_oldest_commit(i);
    flush(i);  // the loop's turn ends: the next batch may begin
}

void Cluster::end_oldest_commit(size_t i) {
    SimNode& n = *nodes_[i];
    assert(!n.commits_in_flight.empty());
    Status written = n.store->write(*n.commits_in_flight.front());
    n.commits_in_flight.pop_front();
    std::vector<node::Outgoing> out = n.env->end_commit();
    if (!written.ok()) return fail_stop(i, written);
    for (auto& o : out) deliver_from(i, std::move(o));
}

void Cluster::commit(size_t i) {
    SimNode& n = *nodes_[i];
    auto out = n.env->commit();
    if (!out.ok()) return fail_stop(i, out.status());
    for (auto& o : out.value()) deliver_from(i, std::move(o));
}

void Cluster::fail_stop(size_t i, const Status& why) {
    // As kvnode does (node/runtime/zmq_runtime.cpp, fail_stop): the node's
    // memory is ahead of its store, so it must not serve on. The failed
    // batch's messages are dropped; the crash drops the rest, and the batches
    // in flight after it, which fail too (Store::make_durable).
    ++net_.commits_failed;
#ifdef KV_MUTANTS
    // Planted (node/mutant.h): the node serves on with its memory ahead of
    // its store (minted dots, duplicate suppression, fences, gossip state).
    if (KV_MUTANT(serve_after_failed_commit)) return;
#endif
    if (options_.trace_to_stderr)
        std::fprintf(stderr, "%8llu FAIL-STOP %s: %s\n", static_cast<unsigned long long>(now_ms_),
                     nodes_[i]->id.c_str(), why.to_string().c_str());
    nodes_[i]->commits_in_flight.clear();
    crash(i);
    if (fail_stop_hook_) fail_stop_hook_(i);
}

void Cluster::deliver_from(size_t from, node::Outgoing out) {
    ++net_.messages_sent;
    if (client_reply_sent_hook_ && !out.to_peer && out.reply_to.route.rfind(kClientPrefix, 0) == 0)
        client_reply_sent_hook_(out.reply_to.route.substr(kClientPrefix.size()), out.message);
    if (chance(loss_probability_)) {
        ++net_.messages_lost;
        return;
    }
    std::string bytes = node::encode(out.message);
    if (!out.to_peer && out.reply_to.route.rfind(kClientPrefix, 0) == 0) {
        std::string client = out.reply_to.route.substr(kClientPrefix.size());
        schedule(latency(), [this, client = std::move(client), bytes = std::move(bytes)] {
            auto decoded = node::decode(bytes);
            assert(decoded.ok());
            trace("->" + client, decoded.value());
            client_inbox_[client].push_back(decoded.value());
            if (client_reply_hook_) client_reply_hook_(client, client_inbox_[client].back());
        });
        return;
    }
    const bool is_request = out.to_peer;
    size_t to = 0;
    if (is_request && !out.endpoint.empty()) {
        // By endpoint "sim://ID"; one that names no node goes nowhere.
        const std::string id = out.endpoint.rfind(kEndpointPrefix, 0) == 0
                                   ? out.endpoint.substr(kEndpointPrefix.size())
                                   : std::string();
        auto found =
            std::find_if(nodes_.begin(), nodes_.end(), [&](const auto& n) { return n->id == id; });
        if (found == nodes_.end()) {
            ++net_.messages_lost;
            return;
        }
        to = static_cast<size_t>(found - nodes_.begin());
    } else {
        to = is_request ? index_of(out.peer_id)
                        : index_of(out.reply_to.route.substr(kPeerPrefix.size()));
    }
    if (blocked_.count({from, to})) {
        ++net_.messages_blocked;
        return;
    }
    const uint64_t life = nodes_[to]->incarnation;
    const std::string sender = nodes_[from]->id;
    const int copies = chance(duplication_probability_) ? 2 : 1;
    net_.messages_duplicated += copies - 1;
    for (int c = 0; c < copies; ++c) {
        // Each copy draws its own latency, so a duplicate may arrive first.
        schedule(latency(), [this, to, life, is_request, sender, bytes] {
            const uint64_t received_ms = node_clock_ms(to);
            // By value: a paused node runs this later, after this frame is gone.
            on_node(to, life,
                    [cluster = this, to, is_request, sender, bytes, received_ms](node::Node& n) {
                        auto decoded = node::decode(bytes);
                        assert(decoded.ok());
                        cluster->trace(sender + "->" + cluster->node_id(to), decoded.value());
                        if (is_request) {
                            n.on_request(node::ReplyTo{kPeerPrefix + sender},
                                         std::move(decoded.value()), received_ms);
                        } else {
                            n.on_peer_reply(sender, std::move(decoded.value()));
                        }
                    });
        });
    }
}

void Cluster::step() {
    // The queue only hands out const refs; moving out is safe as the top is popped next.
    Event e = std::move(const_cast<Event&>(events_.top()));
    events_.pop();
    now_ms_ = e.at_ms;
    e.run();
}

void Cluster::run_for(uint64_t ms) {
    const uint64_t end = now_ms_ + ms;
    while (!events_.empty() && events_.top().at_ms <= end) step();
    now_ms_ = end;
}

bool Cluster::run_until(const std::function<bool()>& done, uint64_t ms_max) {
    const uint64_t end = now_ms_ + ms_max;
    while (!done()) {
        if (events_.empty() || events_.top().at_ms > end) {
            now_ms_ = end;
            return done();
        }
        step();
    }
    return true;
}

}  // namespace kv::sim
