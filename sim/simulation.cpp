#include "sim/simulation.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstdio>
#include <optional>

#include "ring/ring.h"

namespace kv::sim {

// ---- faults and presets ----------------------------------------------------------

namespace {
struct FaultName {
    std::string_view name;
    bool FaultSet::*flag;
};
constexpr FaultName kFaultNames[] = {
    {"partition", &FaultSet::partition}, {"crash", &FaultSet::crash},
    {"loss", &FaultSet::loss},           {"dup", &FaultSet::dup},
    {"pause", &FaultSet::pause},         {"skew", &FaultSet::skew},
};
}  // namespace

Result<FaultSet> parse_faults(std::string_view list) {
    FaultSet out;
    if (list == "none" || list.empty()) return out;
    if (list == "all") {
        for (const auto& f : kFaultNames) out.*f.flag = true;
        return out;
    }
    while (!list.empty()) {
        const size_t comma = list.find(',');
        const std::string_view name = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        auto it = std::find_if(std::begin(kFaultNames), std::end(kFaultNames),
                               [&](const FaultName& f) { return f.name == name; });
        if (it == std::end(kFaultNames)) {
            return Status(ErrorCode::invalid_argument,
                          "unknown fault '" + std::string(name) +
                              "' (known: partition, crash, loss, dup, pause, skew, all, none)");
        }
        out.*it->flag = true;
    }
    return out;
}

std::string faults_text(const FaultSet& faults) {
    std::string out;
    for (const auto& f : kFaultNames) {
        if (!(faults.*f.flag)) continue;
        if (!out.empty()) out += ",";
        out += f.name;
    }
    if (out.empty()) return "none";
    return out == "partition,crash,loss,dup,pause,skew" ? "all" : out;
}

namespace {
SimOptions preset_options(uint32_t nodes, uint32_t clients, uint64_t duration_s, const char* faults,
                          uint32_t keys = 6) {
    SimOptions o;
    o.nodes = nodes;
    o.clients = clients;
    o.duration_s = duration_s;
    o.faults = parse_faults(faults).value();
    o.keys = keys;
    return o;
}
}  // namespace

const std::vector<Preset>& presets() {
    static const std::vector<Preset> all = [] {
        std::vector<Preset> p = {
            {"default", "5 nodes, 8 clients, 20 s under every fault",
             preset_options(5, 8, 20, "all")},
            {"calm", "5 nodes, no faults: the baseline", preset_options(5, 8, 20, "none")},
            {"partitions", "partitions only, one-way included",
             preset_options(5, 8, 30, "partition")},
            {"crashes", "crash/restart and pauses", preset_options(5, 8, 30, "crash,pause")},
            {"lossy", "loss and duplication with skewed clocks",
             preset_options(5, 8, 30, "loss,dup,skew")},
            {"hot-key", "every client on 2 keys under every fault",
             preset_options(5, 12, 20, "all", 2)},
            {"small", "3 nodes, 4 clients, 10 s under every fault",
             preset_options(3, 4, 10, "all")},
        };
        for (auto& preset : p) preset.options.preset = preset.name;
        return p;
    }();
    return all;
}

const Preset* find_preset(std::string_view name) {
    for (const auto& p : presets()) {
        if (p.name == name) return &p;
    }
    return nullptr;
}

std::string replay_command(const SimOptions& o) {
    return "kvsim --seed " + std::to_string(o.seed) + " --nodes " + std::to_string(o.nodes) +
           " --clients " + std::to_string(o.clients) + " --duration " +
           std::to_string(o.duration_s) + " --faults " + faults_text(o.faults) + " --keys " +
           std::to_string(o.keys) + " --replicas " + std::to_string(o.n_replicas) +
           (o.blind_deletes ? "" : " --no-blind-deletes");
}

// ---- one run -----------------------------------------------------------------------

namespace {

// Timing of the workload and the nemesis, in virtual milliseconds.
constexpr uint64_t kRequestDeadlineMs = 1000;  // the node's deadline for each request
// Past the node's deadline plus a slow round trip: a request unanswered by then is
// recorded as indeterminate.
constexpr uint64_t kClientTimeoutMs = 2500;
constexpr uint64_t kThinkMsMax = 30;
constexpr uint64_t kFaultGapMsMin = 200;
constexpr uint64_t kFaultGapMsMax = 1500;
constexpr uint64_t kFaultMsMin = 300;
constexpr uint64_t kFaultMsMax = 4000;
// After the faults stop: peers must be heard again (peer_down_after_ms) before
// the repair reads at `all` can reach every replica.
constexpr uint64_t kSettleMs = 5000;
constexpr uint64_t kRepairDeadlineMs = 5000;
constexpr int kRepairAttempts = 4;

enum class FollowUp : uint8_t { none, put, del };

struct Client {
    uint32_t id = 0;
    std::string name;
    uint64_t seq = 0;
    uint64_t request_id = 0;  // of the request in flight; 0 when idle
    int64_t entry = kNoOp;    // its history entry
    FollowUp follow_up = FollowUp::none;
};

class Run {
  public:
    explicit Run(const SimOptions& options);
    SimResult go();

  private:
    uint64_t uniform(uint64_t lo, uint64_t hi) {
        return std::uniform_int_distribution<uint64_t>(lo, hi)(cluster_.rng());
    }
    bool chance(double p) {
        return std::uniform_real_distribution<double>(0, 1)(cluster_.rng()) < p;
    }
    proto::Level random_level() {
        constexpr proto::Level levels[] = {proto::Level::one, proto::Level::two,
                                           proto::Level::quorum, proto::Level::all};
        return levels[uniform(0, 3)];
    }

    // Workload.
    void start_next(Client& c);
    void issue(Client& c, OpKind kind, const std::string& key, std::optional<std::string> context,
               int64_t context_from);
    void on_reply(const std::string& client, const proto::Message& m);
    void complete(Client& c, const proto::Message* reply);
    void after(Client& c);

    // Nemesis.
    void nemesis_step();
    void inject_partition();
    void inject_crash();
    void inject_pause();
    void inject_loss();
    void inject_dup();
    void apply_partitions();
    void stop_faults();

    // Quiet phase.
    void repair_reads();
    void collect_final_state();

    SimOptions options_;
    Cluster cluster_;
    SimResult result_;
    std::vector<Client> clients_;
    std::map<std::string, size_t> client_index_;
    bool stopping_ = false;
    uint64_t next_partition_ = 0;
    std::map<uint64_t, std::vector<std::pair<size_t, size_t>>> partitions_;
    uint32_t loss_periods_active_ = 0;
    uint32_t dup_periods_active_ = 0;
    std::optional<proto::Message> repair_reply_;
    uint64_t repair_request_id_ = 0;
    uint64_t repair_requests_ = 0;
};

ClusterOptions cluster_options(const SimOptions& o) {
    ClusterOptions c;
    c.seed = o.seed;
    c.nodes = o.nodes;
    c.node_config.n_replicas = o.n_replicas;
    c.trace_to_stderr = o.trace;
    c.latency_ms_min = 1;
    c.latency_ms_max = 5;
    // A thin tail of slow messages is part of every network: it reorders.
    c.latency_tail_probability = 0.02;
    c.latency_tail_ms_max = 60;
    if (o.faults.skew) {
        c.latency_tail_probability = 0.1;
        c.latency_tail_ms_max = 400;
        c.clock_offset_ms_max = 3'600'000;
        c.clock_drift_ppm_max = 20'000;  // 2%: far worse than quartz, to stress timers
    }
    return c;
}

Run::Run(const SimOptions& options) : options_(options), cluster_(cluster_options(options)) {
    result_.history.n_replicas = std::min(options_.n_replicas, options_.nodes);
    result_.faults.skewed_clocks = options_.faults.skew;
    for (uint32_t i = 0; i < options_.clients; ++i) {
        Client c;
        c.id = i + 1;
        c.name = "c" + std::to_string(c.id);
        client_index_[c.name] = clients_.size();
        clients_.push_back(std::move(c));
    }
    cluster_.on_client_reply(
        [this](const std::string& client, const proto::Message& m) { on_reply(client, m); });
}

void Run::start_next(Client& c) {
    if (stopping_) return;
    const std::string key = "k" + std::to_string(uniform(0, options_.keys - 1));
    const uint64_t pick = uniform(0, 99);
    // A client mostly reads, then writes with the context it read (the way a
    // store like this is meant to be used); a few blind writes make siblings.
    if (pick < 30) {
        c.follow_up = FollowUp::none;
        issue(c, OpKind::get, key, std::nullopt, kNoOp);
    } else if (pick < 65) {
        c.follow_up = FollowUp::put;
        issue(c, OpKind::get, key, std::nullopt, kNoOp);
    } else if (pick < 80) {
        c.follow_up = FollowUp::none;
        issue(c, OpKind::put, key, std::nullopt, kNoOp);
    } else if (pick < 96 || !options_.blind_deletes) {
        c.follow_up = FollowUp::del;
        issue(c, OpKind::get, key, std::nullopt, kNoOp);
    } else {
        c.follow_up = FollowUp::none;
        issue(c, OpKind::del, key, std::nullopt, kNoOp);
    }
}

void Run::issue(Client& c, OpKind kind, const std::string& key, std::optional<std::string> context,
                int64_t context_from) {
    HistoryEntry e;
    e.index = result_.history.entries.size();
    e.client = c.id;
    e.node = static_cast<uint32_t>(uniform(0, options_.nodes - 1));
    e.kind = kind;
    e.key = key;
    e.context = std::move(context);
    e.context_from = context_from;
    e.level = random_level();
    e.start_ms = cluster_.now_ms();
    ++c.seq;
    // Unique across the run, so the checker can tell every write apart.
    if (kind == OpKind::put) e.value = c.name + "-" + std::to_string(c.seq);
    c.request_id = (uint64_t{c.id} << 32) | c.seq;
    c.entry = static_cast<int64_t>(e.index);
    const proto::Consistency cl{e.level, 0, false};
    proto::Message request;
    switch (kind) {
        case OpKind::get:
            request = proto::GetRequest{c.request_id, key, cl, kRequestDeadlineMs};
            break;
        case OpKind::put:
            request =
                proto::PutRequest{c.request_id, key, e.value, e.context, cl, kRequestDeadlineMs};
            break;
        case OpKind::del:
            request = proto::DelRequest{c.request_id, key, e.context, cl, kRequestDeadlineMs};
            break;
    }
    const size_t node = e.node;
    result_.history.entries.push_back(std::move(e));
    cluster_.client_send(node, c.name, std::move(request));
    const uint64_t request_id = c.request_id;
    const size_t ci = client_index_[c.name];
    cluster_.at(kClientTimeoutMs, [this, ci, request_id] {
        Client& cl = clients_[ci];
        if (cl.request_id == request_id) complete(cl, nullptr);
    });
}

void Run::on_reply(const std::string& client, const proto::Message& m) {
    if (client == "repair") {
        if (proto::request_id(m) == repair_request_id_) repair_reply_ = m;
        cluster_.take_replies(client);
        return;
    }
    auto it = client_index_.find(client);
    assert(it != client_index_.end());
    Client& c = clients_[it->second];
    const proto::Message reply = m;
    cluster_.take_replies(client);
    if (c.request_id == 0 || proto::request_id(reply) != c.request_id) return;  // late: given up on
    complete(c, &reply);
}

void Run::complete(Client& c, const proto::Message* reply) {
    HistoryEntry& e = result_.history.entries[static_cast<size_t>(c.entry)];
    e.end_ms = cluster_.now_ms();
    c.request_id = 0;
    if (reply == nullptr) {
        e.outcome = Outcome::indeterminate;
        e.code = ErrorCode::timeout;
    } else if (const auto* g = std::get_if<proto::GetResponse>(reply)) {
        e.code = g->code;
        e.values = g->values;
        e.context_returned = g->context;
        e.outcome = g->code == ErrorCode::ok          ? Outcome::ok
                    : g->code == ErrorCode::not_found ? Outcome::not_found
                                                      : Outcome::failed;
    } else if (const auto* w = std::get_if<proto::WriteResponse>(reply)) {
        e.code = w->code;
        e.context_returned = w->context;
        e.outcome = w->code == ErrorCode::ok ? Outcome::ok : Outcome::failed;
    } else if (const auto* err = std::get_if<proto::ErrorResponse>(reply)) {
        e.code = err->code;
        e.outcome = Outcome::failed;
    } else {
        e.code = ErrorCode::internal;
        e.outcome = Outcome::failed;
    }
    ++result_.ops[{e.kind, e.outcome}];
    after(c);
}

void Run::after(Client& c) {
    const HistoryEntry& e = result_.history.entries[static_cast<size_t>(c.entry)];
    const FollowUp follow_up = e.kind == OpKind::get ? c.follow_up : FollowUp::none;
    c.follow_up = FollowUp::none;
    if (follow_up != FollowUp::none && !stopping_) {
        // Write with what the get returned; a get that returned no context makes
        // the write blind.
        const bool has_context = (e.outcome == Outcome::ok || e.outcome == Outcome::not_found) &&
                                 !e.context_returned.empty();
        std::optional<std::string> context;
        int64_t from = kNoOp;
        if (has_context) {
            context = e.context_returned;
            from = static_cast<int64_t>(e.index);
        }
        const std::string key = e.key;
        if (follow_up == FollowUp::del && !context && !options_.blind_deletes) {
            const size_t ci = client_index_[c.name];
            cluster_.at(uniform(0, kThinkMsMax), [this, ci] { start_next(clients_[ci]); });
            return;
        }
        issue(c, follow_up == FollowUp::put ? OpKind::put : OpKind::del, key, std::move(context),
              from);
        return;
    }
    const size_t ci = client_index_[c.name];
    cluster_.at(uniform(0, kThinkMsMax), [this, ci] { start_next(clients_[ci]); });
}

// ---- nemesis ------------------------------------------------------------------------

void Run::nemesis_step() {
    if (stopping_) return;
    std::vector<void (Run::*)()> kinds;
    if (options_.faults.partition) kinds.push_back(&Run::inject_partition);
    if (options_.faults.crash) kinds.push_back(&Run::inject_crash);
    if (options_.faults.pause) kinds.push_back(&Run::inject_pause);
    if (options_.faults.loss) kinds.push_back(&Run::inject_loss);
    if (options_.faults.dup) kinds.push_back(&Run::inject_dup);
    if (kinds.empty()) return;
    (this->*kinds[uniform(0, kinds.size() - 1)])();
    cluster_.at(uniform(kFaultGapMsMin, kFaultGapMsMax), [this] { nemesis_step(); });
}

void Run::inject_partition() {
    if (options_.nodes < 2) return;
    std::vector<size_t> side;
    while (side.empty() || side.size() == options_.nodes) {
        side.clear();
        for (size_t i = 0; i < options_.nodes; ++i) {
            if (chance(0.5)) side.push_back(i);
        }
    }
    const bool one_way = chance(0.3);
    std::vector<std::pair<size_t, size_t>> pairs;
    for (size_t a : side) {
        for (size_t b = 0; b < options_.nodes; ++b) {
            if (std::find(side.begin(), side.end(), b) != side.end()) continue;
            pairs.emplace_back(a, b);
            if (!one_way) pairs.emplace_back(b, a);
        }
    }
    const uint64_t id = next_partition_++;
    partitions_[id] = std::move(pairs);
    apply_partitions();
    ++result_.faults.partitions;
    if (one_way) ++result_.faults.one_way_partitions;
    cluster_.at(uniform(kFaultMsMin, kFaultMsMax), [this, id] {
        partitions_.erase(id);
        apply_partitions();
    });
}

void Run::apply_partitions() {
    cluster_.heal();
    for (const auto& [id, pairs] : partitions_) {
        for (const auto& [a, b] : pairs) cluster_.block(a, b, true);
    }
}

void Run::inject_crash() {
    std::vector<size_t> up;
    for (size_t i = 0; i < cluster_.size(); ++i) {
        if (cluster_.is_up(i)) up.push_back(i);
    }
    // Keep a majority up, or most requests would only fail.
    if (up.size() * 2 <= cluster_.size() + 1 && up.size() < cluster_.size()) return;
    const size_t victim = up[uniform(0, up.size() - 1)];
    cluster_.crash(victim);
    ++result_.faults.crashes;
    cluster_.at(uniform(kFaultMsMin, kFaultMsMax), [this, victim] { cluster_.restart(victim); });
}

void Run::inject_pause() {
    const size_t victim = uniform(0, cluster_.size() - 1);
    cluster_.pause(victim, uniform(100, 3000));
    ++result_.faults.pauses;
}

void Run::inject_loss() {
    cluster_.set_loss(0.01 * static_cast<double>(uniform(1, 20)));
    ++loss_periods_active_;
    ++result_.faults.loss_periods;
    cluster_.at(uniform(kFaultMsMin, kFaultMsMax), [this] {
        if (--loss_periods_active_ == 0) cluster_.set_loss(0);
    });
}

void Run::inject_dup() {
    cluster_.set_duplication(0.01 * static_cast<double>(uniform(5, 30)));
    ++dup_periods_active_;
    ++result_.faults.dup_periods;
    cluster_.at(uniform(kFaultMsMin, kFaultMsMax), [this] {
        if (--dup_periods_active_ == 0) cluster_.set_duplication(0);
    });
}

void Run::stop_faults() {
    // Pending undo events still fire later; they find nothing left to undo.
    partitions_.clear();
    cluster_.heal();
    cluster_.set_loss(0);
    cluster_.set_duplication(0);
    loss_periods_active_ = 0;
    dup_periods_active_ = 0;
    cluster_.unpause_all();
    for (size_t i = 0; i < cluster_.size(); ++i) cluster_.restart(i);
}

// ---- quiet phase --------------------------------------------------------------------

void Run::repair_reads() {
    for (uint32_t k = 0; k < options_.keys; ++k) {
        const std::string key = "k" + std::to_string(k);
        for (size_t node = 0; node < cluster_.size(); ++node) {
            bool done = false;
            for (int attempt = 0; attempt < kRepairAttempts && !done; ++attempt) {
                repair_reply_.reset();
                repair_request_id_ = (uint64_t{1} << 62) + ++repair_requests_;
                cluster_.client_send(
                    node, "repair",
                    proto::GetRequest{repair_request_id_, key,
                                      proto::Consistency{proto::Level::all, 0, false},
                                      kRepairDeadlineMs});
                cluster_.run_until([&] { return repair_reply_.has_value(); },
                                   kRepairDeadlineMs + 1000);
                if (!repair_reply_) continue;
                const auto* g = std::get_if<proto::GetResponse>(&*repair_reply_);
                done = g && (g->code == ErrorCode::ok || g->code == ErrorCode::not_found);
            }
            if (!done) ++result_.final_reads_failed;
        }
    }
}

void Run::collect_final_state() {
    std::vector<std::string> ids;
    for (size_t i = 0; i < cluster_.size(); ++i) ids.push_back(cluster_.node_id(i));
    const ring::Ring ring(ids, cluster_.options().node_config.vnodes);
    for (uint32_t k = 0; k < options_.keys; ++k) {
        const std::string key = "k" + std::to_string(k);
        auto& replicas = result_.final_state[key];
        for (const auto& id : ring.preference_list(key, result_.history.n_replicas)) {
            const size_t i =
                static_cast<size_t>(std::find(ids.begin(), ids.end(), id) - ids.begin());
            ReplicaState state{id, std::nullopt};
            auto stored = cluster_.store(i).get(node::Space::data, key);
            assert(stored.ok());
            if (stored.value()) {
                auto object = node::decode_object(*stored.value());
                assert(object.ok() && "a replica stored an undecodable object");
                if (object.ok()) state.object = std::move(object.value());
            }
            replicas.push_back(std::move(state));
        }
    }
}

SimResult Run::go() {
    const auto real_start = std::chrono::steady_clock::now();
    for (auto& c : clients_) {
        const size_t ci = client_index_[c.name];
        cluster_.at(uniform(0, 50), [this, ci] { start_next(clients_[ci]); });
    }
    cluster_.at(uniform(kFaultGapMsMin, kFaultGapMsMax), [this] { nemesis_step(); });
    cluster_.run_for(options_.duration_s * 1000);
    stopping_ = true;
    // Let requests in flight finish or time out under the same faults.
    cluster_.run_for(kClientTimeoutMs + 100);
    stop_faults();
    cluster_.run_for(kSettleMs);
    repair_reads();
    cluster_.run_for(1000);
    collect_final_state();
    result_.simulated_ms = cluster_.now_ms();
    result_.network = cluster_.network_stats();
    result_.digest = digest(result_.history);
    result_.violations = check(result_.history, result_.final_state);
    result_.real_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - real_start).count();
    return std::move(result_);
}

}  // namespace

SimResult run_simulation(const SimOptions& options) {
    assert(options.nodes >= 1 && options.keys >= 1);
    Run run(options);
    return run.go();
}

std::string summary(const SimOptions& o, const SimResult& r, size_t violations_shown) {
    std::string out;
    char line[512];
    std::snprintf(line, sizeof line,
                  "seed %llu: %u nodes (n=%u), %u clients, %llu s, faults %s%s\n",
                  static_cast<unsigned long long>(o.seed), o.nodes, r.history.n_replicas, o.clients,
                  static_cast<unsigned long long>(o.duration_s), faults_text(o.faults).c_str(),
                  o.preset.empty() ? "" : (" (preset " + o.preset + ")").c_str());
    out += line;
    out += "operations: " + std::to_string(r.history.entries.size()) + "\n";
    for (OpKind kind : {OpKind::get, OpKind::put, OpKind::del}) {
        out += "  " + std::string(op_kind_name(kind)) + ":";
        for (Outcome oc :
             {Outcome::ok, Outcome::not_found, Outcome::failed, Outcome::indeterminate}) {
            auto it = r.ops.find({kind, oc});
            out += " " + std::string(outcome_name(oc)) + "=" +
                   std::to_string(it == r.ops.end() ? 0 : it->second);
        }
        out += "\n";
    }
    const auto& f = r.faults;
    out += "faults: partitions=" + std::to_string(f.partitions) + " (one-way " +
           std::to_string(f.one_way_partitions) + ") crashes=" + std::to_string(f.crashes) +
           " pauses=" + std::to_string(f.pauses) +
           " loss-periods=" + std::to_string(f.loss_periods) +
           " dup-periods=" + std::to_string(f.dup_periods) +
           " skewed-clocks=" + (f.skewed_clocks ? "yes" : "no") + "\n";
    const auto& n = r.network;
    out += "network: sent=" + std::to_string(n.messages_sent) +
           " lost=" + std::to_string(n.messages_lost) +
           " blocked=" + std::to_string(n.messages_blocked) +
           " duplicated=" + std::to_string(n.messages_duplicated) +
           " to-dead=" + std::to_string(n.messages_to_dead) + "\n";
    out += "repair reads failed: " + std::to_string(r.final_reads_failed) + "\n";
    std::snprintf(line, sizeof line, "history digest: %016llx\n",
                  static_cast<unsigned long long>(r.digest));
    out += line;
    const double sim_s = static_cast<double>(r.simulated_ms) / 1000.0;
    std::snprintf(line, sizeof line,
                  "speed: %.1f simulated s in %.2f real s = %.1f simulated s per real s\n", sim_s,
                  r.real_seconds, r.real_seconds > 0 ? sim_s / r.real_seconds : 0.0);
    out += line;
    out += "violations: " + std::to_string(r.violations.size()) + "\n";
    for (size_t i = 0; i < r.violations.size() && i < violations_shown; ++i) {
        const Violation& v = r.violations[i];
        out += "  " + std::string(violation_name(v.kind)) + " on " + v.key + ": " + v.what + "\n";
        for (uint64_t op : v.ops) out += "    " + describe(r.history.entries[op]) + "\n";
    }
    if (!r.violations.empty()) out += "replay: " + replay_command(o) + "\n";
    return out;
}

}  // namespace kv::sim
