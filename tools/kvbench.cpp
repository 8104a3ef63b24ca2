// kvbench: closed-loop load generator over the pipelined AsyncClient
// (docs/CLIENT.md). Each connection has its own client, generator and
// statistics (merged at the end), all share the keys' last causal contexts
// (ContextTable); --threads threads drive them, each its share
// of the connections through one kv::client::PollGroup, as redis-benchmark's
// one event loop drives its -c connections.
#include <algorithm>
#include <array>
#include <bit>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "client/client.h"
#include "client/json_util.h"
#include "client/keys.h"

namespace po = boost::program_options;
using kv::ErrorCode;
using kv::Result;
using kv::client::AsyncClient;
using kv::client::GetResult;
using kv::client::WriteResult;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint64_t kKeysMax = 100'000'000;
constexpr uint32_t kPipelineMax = 100'000;
constexpr uint32_t kConnectionsMax = 1024;

// Log-linear latency histogram: exact below 128 us, then 64 buckets per power
// of two (< 1.6% relative error); bounded memory whatever the run length.
class Histogram {
  public:
    void record(uint64_t us) {
        size_t i = index(us);
        if (i >= counts_.size()) counts_.resize(i + 1, 0);
        ++counts_[i];
        ++count_;
        max_us_ = std::max(max_us_, us);
    }
    void merge(const Histogram& o) {
        if (o.counts_.size() > counts_.size()) counts_.resize(o.counts_.size(), 0);
        for (size_t i = 0; i < o.counts_.size(); ++i) counts_[i] += o.counts_[i];
        count_ += o.count_;
        max_us_ = std::max(max_us_, o.max_us_);
    }
    uint64_t count() const { return count_; }
    uint64_t max_us() const { return max_us_; }
    // Upper bound of the bucket holding quantile q (never above the max seen).
    uint64_t quantile_us(double q) const {
        if (count_ == 0) return 0;
        auto rank = static_cast<uint64_t>(q * static_cast<double>(count_ - 1)) + 1;
        uint64_t seen = 0;
        for (size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= rank) return std::min(upper(i), max_us_);
        }
        return max_us_;
    }

  private:
    static constexpr uint64_t kLinear = 128;
    static constexpr uint64_t kSub = 64;
    static size_t index(uint64_t v) {
        if (v < kLinear) return v;
        uint64_t shift = std::bit_width(v) - 7;  // top 7 bits kept: mantissa in [64, 128)
        return kLinear + (shift - 1) * kSub + ((v >> shift) - kSub);
    }
    static uint64_t upper(size_t i) {
        if (i < kLinear) return i;
        uint64_t shift = (i - kLinear) / kSub + 1;
        uint64_t mantissa = (i - kLinear) % kSub + kSub;
        return ((mantissa + 1) << shift) - 1;
    }
    std::vector<uint64_t> counts_;
    uint64_t count_ = 0;
    uint64_t max_us_ = 0;
};

struct Config {
    std::vector<std::string> nodes;
    uint64_t ops = 0;  // 0: bounded by duration only
    double duration_s = 0;
    uint64_t keys = 1000;
    size_t value_bytes = 100;
    std::string mix = "ycsb-a";
    double read_fraction = 0.5;
    kv::client::RequestOptions request;
    std::string consistency = "quorum";
    uint32_t pipeline = 16;
    uint32_t connections = 1;
    uint32_t threads = 1;  // at most connections
    uint64_t seed = 1;
    bool load = false;
    bool prime = false;
    bool json = false;
    std::optional<std::string> key_file;    // --key, else the default credentials file
    std::optional<std::string> server_key;  // --server-key, else the file's server line
    bool no_key = false;
};

struct Stats {
    Histogram get;
    Histogram put;
    uint64_t completed = 0;
    std::map<ErrorCode, uint64_t> errors;
    std::optional<std::string> fatal;  // could not even connect

    void merge(const Stats& o) {
        get.merge(o.get);
        put.merge(o.put);
        completed += o.completed;
        for (auto [code, n] : o.errors) errors[code] += n;
        if (o.fatal && !fatal) fatal = o.fatal;
    }
};

std::string key_name(uint64_t k) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "key%010llu", static_cast<unsigned long long>(k));
    return buf;
}

// The last causal context kvbench saw for each key, shared by all its
// connections as one application's view of its keys: an update then
// supersedes what any connection last wrote or read, as a Redis SET replaces
// the value. With a table per connection, each connection's first put to a
// key was blind and every other connection's value stayed a sibling, so a put
// round left keys with 2-4 siblings and the gets after it read them all.
// Locked in stripes when --threads drive connections in parallel; one
// thread takes no lock (a lock and unlock a reply was 2% of kvbench's CPU).
class ContextTable {
  public:
    ContextTable(uint64_t keys, bool shared_by_threads)
        : contexts_(keys), locked_(shared_by_threads) {}

    // Empty when none was seen.
    std::string get(uint64_t k) {
        std::unique_lock lock = stripe(k);
        return contexts_[k];
    }
    void set(uint64_t k, std::string context) {
        std::unique_lock lock = stripe(k);
        contexts_[k] = std::move(context);
    }

  private:
    std::unique_lock<std::mutex> stripe(uint64_t k) {
        std::mutex& m = stripes_[k % stripes_.size()];
        return locked_ ? std::unique_lock(m) : std::unique_lock(m, std::defer_lock);
    }

    std::vector<std::string> contexts_;  // by key index
    std::array<std::mutex, 64> stripes_;
    const bool locked_;
};

// One connection's closed loop: at most `pipeline` requests in flight.
class Worker {
  public:
    Worker(const Config& c, uint32_t index, AsyncClient client, ContextTable& contexts)
        : c_(c),
          client_(std::move(client)),
          rng_(c.seed * 1000003 + index),
          contexts_(contexts),
          index_(index) {
        std::uniform_int_distribution<int> letter('a', 'z');
        value_.resize(c.value_bytes);
        for (auto& ch : value_) ch = static_cast<char>(letter(rng_));
    }

    AsyncClient& client() { return client_; }
    Stats take_stats() { return std::exchange(stats_, Stats{}); }

    // Read-then-write (`write`) or a read only of each key in this worker's
    // slice: re-loading a keyspace supersedes what is there instead of adding
    // siblings; a read only learns each key's context (--prime). Tops up the
    // requests in flight; false once the slice is done.
    bool load_step(bool write) {
        if (!load_started_) {
            load_started_ = true;
            load_next_ = c_.keys * index_ / c_.connections;
            load_end_ = c_.keys * (index_ + 1) / c_.connections;
        }
        while (load_next_ < load_end_ && client_.in_flight() < c_.pipeline) {
            load_key(load_next_++, write);
        }
        return load_next_ < load_end_ || client_.in_flight() > 0;
    }

    // Tops up the requests in flight, bounded by `ops` when given, by
    // `stop_at` when given (at least one is); false once done.
    bool run_step(std::optional<uint64_t> ops, std::optional<Clock::time_point> stop_at) {
        // The clock read for the stop time is also the request's start: a
        // read fewer a request.
        Clock::time_point now{};
        auto may_submit = [&] {
            if (ops && submitted_ >= *ops) return false;
            now = Clock::now();
            return !stop_at || now < *stop_at;
        };
        while (client_.in_flight() < c_.pipeline && may_submit()) {
            submit_one(now);
            ++submitted_;
        }
        return client_.in_flight() > 0 || may_submit();
    }

  private:
    void load_key(uint64_t k, bool write) {
        Stats& s = stats_;
        client_.submit_get(key_name(k), c_.request, [this, k, write, &s](Result<GetResult> r) {
            std::optional<std::string> context;
            if (r) context = r->context;
            if (!r && r.status().code() != ErrorCode::not_found) ++s.errors[r.status().code()];
            if (!write) {
                ++s.completed;
                if (context) contexts_.set(k, std::move(*context));
                return;
            }
            client_.submit_put(key_name(k), value_, context, c_.request,
                               [this, k, &s](Result<WriteResult> w) {
                                   ++s.completed;
                                   if (w) contexts_.set(k, std::move(w->context));
                                   if (!w) ++s.errors[w.status().code()];
                               });
        });
    }

    void submit_one(Clock::time_point start) {
        Stats& s = stats_;
        uint64_t k = std::uniform_int_distribution<uint64_t>(0, c_.keys - 1)(rng_);
        bool is_read = std::uniform_real_distribution<double>(0, 1)(rng_) < c_.read_fraction;
        auto elapsed_us = [start] {
            return static_cast<uint64_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start)
                    .count());
        };
        if (is_read) {
            client_.submit_get(key_name(k), c_.request, [this, k, &s, elapsed_us](auto r) {
                ++s.completed;
                // Kept only when this run puts too: a get-only run never
                // uses it, and the copy was 3% of kvbench's CPU.
                if (r && c_.read_fraction < 1) contexts_.set(k, std::move(r->context));
                bool answered = r || r.status().code() == ErrorCode::not_found;
                if (answered) s.get.record(elapsed_us());
                if (!r) ++s.errors[r.status().code()];
            });
            return;
        }
        // The last context seen for the key, so an update supersedes it rather
        // than piling up siblings (blind only for a key never seen).
        std::optional<std::string> context;
        if (std::string seen = contexts_.get(k); !seen.empty()) context = std::move(seen);
        client_.submit_put(key_name(k), value_, std::move(context), c_.request,
                           [this, k, &s, elapsed_us](auto r) {
                               ++s.completed;
                               if (r) {
                                   contexts_.set(k, std::move(r->context));
                                   s.put.record(elapsed_us());
                               } else {
                                   ++s.errors[r.status().code()];
                               }
                           });
    }

    const Config& c_;
    AsyncClient client_;
    std::mt19937_64 rng_;
    ContextTable& contexts_;
    std::string value_;
    uint32_t index_;
    Stats stats_;  // the phase's so far (take_stats)
    bool load_started_ = false;
    uint64_t load_next_ = 0;
    uint64_t load_end_ = 0;
    uint64_t submitted_ = 0;  // by run_step
};

std::optional<double> read_fraction_of(const std::string& mix) {
    if (mix == "ycsb-a") return 0.5;
    if (mix == "ycsb-b") return 0.95;
    if (mix == "ycsb-c" || mix == "get-only") return 1.0;
    if (mix == "put-only") return 0.0;
    return std::nullopt;
}

std::vector<std::string> split_endpoints(const std::vector<std::string>& raw) {
    std::vector<std::string> out;
    for (const auto& item : raw) {
        size_t start = 0;
        while (start <= item.size()) {
            size_t comma = item.find(',', start);
            if (comma == std::string::npos) comma = item.size();
            if (comma > start) out.push_back(item.substr(start, comma - start));
            start = comma + 1;
        }
    }
    return out;
}

// The workers one thread drives (worker i on thread i mod threads) and the
// PollGroup over their clients, made before any thread starts so that a
// failure is reported once, by main.
struct Driver {
    std::vector<size_t> workers;
    kv::client::PollGroup group;
};

kv::Result<std::vector<Driver>> make_drivers(std::vector<Worker>& workers, uint32_t threads) {
    std::vector<Driver> drivers;
    for (size_t first = 0; first < threads; ++first) {
        std::vector<size_t> mine;
        std::vector<AsyncClient*> clients;
        for (size_t i = first; i < workers.size(); i += threads) {
            mine.push_back(i);
            clients.push_back(&workers[i].client());
        }
        auto group = kv::client::PollGroup::make(clients);
        if (!group) return group.status();
        drivers.push_back(Driver{std::move(mine), std::move(group).value()});
    }
    return drivers;
}

// Drives the workers, a thread per driver, until `step` (Worker&, index) is
// false for all of them; merged statistics.
template <typename Step>
Stats run_parallel(std::vector<Worker>& workers, std::vector<Driver>& drivers, Step step) {
    auto drive = [&](Driver& driver) {
        const std::vector<size_t>& mine = driver.workers;
        std::vector<bool> done(mine.size(), false);
        for (;;) {
            bool active = false;
            for (size_t m = 0; m < mine.size(); ++m) {
                if (!done[m]) done[m] = !step(workers[mine[m]], mine[m]);
                active = active || !done[m];
            }
            if (!active) return;
            driver.group.poll(100);
        }
    };
    std::vector<std::thread> pool;
    for (Driver& driver : drivers) pool.emplace_back(drive, std::ref(driver));
    for (auto& t : pool) t.join();
    Stats total;
    for (auto& w : workers) total.merge(w.take_stats());
    return total;
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string latency_json(const Histogram& h) {
    return "{\"count\":" + std::to_string(h.count()) +
           ",\"p50\":" + std::to_string(h.quantile_us(0.5)) +
           ",\"p99\":" + std::to_string(h.quantile_us(0.99)) +
           ",\"p999\":" + std::to_string(h.quantile_us(0.999)) +
           ",\"max\":" + std::to_string(h.max_us()) + "}";
}

void report(const Config& c, const Stats& s, double elapsed_s, double load_s) {
    double ops_per_s = elapsed_s > 0 ? static_cast<double>(s.completed) / elapsed_s : 0;
    if (c.json) {
        std::string errors;
        for (auto [code, n] : s.errors) {
            if (!errors.empty()) errors += ',';
            errors += kv::client::json_quote(kv::error_name(code)) + ":" + std::to_string(n);
        }
        std::printf(
            "{\"mix\":%s,\"consistency\":%s,\"connections\":%u,\"threads\":%u,\"pipeline\":%u,"
            "\"keys\":%llu,"
            "\"value_bytes\":%zu,\"seed\":%llu,\"load_s\":%.3f,\"ops\":%llu,\"elapsed_s\":%.3f,"
            "\"ops_per_s\":%.1f,\"latency_us\":{\"get\":%s,\"put\":%s},\"errors\":{%s}}\n",
            kv::client::json_quote(c.mix).c_str(), kv::client::json_quote(c.consistency).c_str(),
            c.connections, c.threads, c.pipeline, static_cast<unsigned long long>(c.keys),
            c.value_bytes, static_cast<unsigned long long>(c.seed), load_s,
            static_cast<unsigned long long>(s.completed), elapsed_s, ops_per_s,
            latency_json(s.get).c_str(), latency_json(s.put).c_str(), errors.c_str());
        return;
    }
    if (c.load || c.prime) {
        std::printf("%s: %llu keys in %.3f s\n", c.load ? "load" : "prime",
                    (unsigned long long)c.keys, load_s);
    }
    std::printf("%llu ops in %.3f s = %.0f ops/s (mix %s, %u connection(s) x pipeline %u, %s)\n",
                static_cast<unsigned long long>(s.completed), elapsed_s, ops_per_s, c.mix.c_str(),
                c.connections, c.pipeline, c.consistency.c_str());
    std::printf("%-4s %10s %10s %10s %10s %10s\n", "op", "count", "p50_us", "p99_us", "p999_us",
                "max_us");
    for (auto [name, h] : {std::pair{"get", &s.get}, std::pair{"put", &s.put}}) {
        std::printf("%-4s %10llu %10llu %10llu %10llu %10llu\n", name,
                    static_cast<unsigned long long>(h->count()),
                    static_cast<unsigned long long>(h->quantile_us(0.5)),
                    static_cast<unsigned long long>(h->quantile_us(0.99)),
                    static_cast<unsigned long long>(h->quantile_us(0.999)),
                    static_cast<unsigned long long>(h->max_us()));
    }
    std::printf("errors:");
    if (s.errors.empty()) std::printf(" none");
    for (auto [code, n] : s.errors) {
        std::printf(" %s=%llu", std::string(kv::error_name(code)).c_str(),
                    static_cast<unsigned long long>(n));
    }
    std::printf("\n");
}

// Throws po::error on bad input; nullopt after printing help or the version.
std::optional<Config> parse(int argc, char** argv) {
    po::options_description d(
        "usage: kvbench [options]\nCloses the loop on --pipeline requests in flight per "
        "connection; stops after --ops or --duration-s, whichever comes first.\nOptions");
    d.add_options()("help,h", "show this help")("version", "print the version and exit")(
        "node,n", po::value<std::vector<std::string>>()->composing(),
        "node endpoint, may repeat or be comma-separated (default tcp://127.0.0.1:7001)")(
        "ops", po::value<uint64_t>(),
        "operations to run in total (default 10000 without "
        "--duration-s)")("duration-s", po::value<double>(), "run for this many seconds")(
        "keys", po::value<uint64_t>()->default_value(1000), "keyspace size (uniform choice)")(
        "value-bytes", po::value<size_t>()->default_value(100), "bytes per written value")(
        "mix", po::value<std::string>()->default_value("ycsb-a"),
        "ycsb-a (50% get / 50% put), ycsb-b (95/5), ycsb-c (100% get), put-only, get-only")(
        "consistency", po::value<std::string>()->default_value("quorum"),
        "one | two | three | quorum | all")("strict", po::bool_switch(),
                                            "count only home replicas")(
        "timeout-ms", po::value<uint64_t>()->default_value(5000), "node-side deadline per request")(
        "pipeline", po::value<uint32_t>()->default_value(16), "requests in flight per connection")(
        "connections", po::value<uint32_t>()->default_value(1),
        "client connections, each its own client")(
        "threads", po::value<uint32_t>()->default_value(1),
        "threads driving the connections, each an event loop over its share "
        "(at most --connections)")("seed", po::value<uint64_t>()->default_value(1),
                                   "generator seed")("load", po::bool_switch(),
                                                     "write every key once before measuring")(
        "prime", po::bool_switch(),
        "read every key once before measuring, so that each put supersedes what the key "
        "holds (a put to a key this run has not seen is blind: it adds a sibling)")(
        "json", po::bool_switch(), "one JSON object on stdout")(
        "key", po::value<std::string>(),
        "credentials file, as kvctl --key (default: $KV_KEY_FILE, else "
        "~/.config/kvstore/credentials if it exists)")(
        "server-key", po::value<std::string>(),
        "the cluster's public key in Z85 (default: the key file's 'server' line)")(
        "no-key", po::bool_switch(), "use no key file, even a default one");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, d), vm);
    po::notify(vm);
    if (vm.count("help")) {
        std::cout << d
                  << "\nLatencies are in microseconds, for replies (ok or not_found); "
                     "other errors are counted by code.\n";
        return std::nullopt;
    }
    if (vm.count("version")) {
        std::cout << "kvbench (kvstore) " << KV_VERSION << "\n";
        return std::nullopt;
    }
    Config c;
    c.nodes = split_endpoints(vm.count("node") ? vm["node"].as<std::vector<std::string>>()
                                               : std::vector<std::string>{});
    if (c.nodes.empty()) c.nodes.push_back("tcp://127.0.0.1:7001");
    if (vm.count("ops")) c.ops = vm["ops"].as<uint64_t>();
    if (vm.count("duration-s")) c.duration_s = vm["duration-s"].as<double>();
    if (c.ops == 0 && c.duration_s <= 0) c.ops = 10000;
    c.keys = vm["keys"].as<uint64_t>();
    c.value_bytes = vm["value-bytes"].as<size_t>();
    c.mix = vm["mix"].as<std::string>();
    c.consistency = vm["consistency"].as<std::string>();
    c.pipeline = vm["pipeline"].as<uint32_t>();
    c.connections = vm["connections"].as<uint32_t>();
    c.threads = vm["threads"].as<uint32_t>();
    c.seed = vm["seed"].as<uint64_t>();
    c.load = vm["load"].as<bool>();
    c.prime = vm["prime"].as<bool>();
    c.json = vm["json"].as<bool>();
    c.request.deadline_ms = vm["timeout-ms"].as<uint64_t>();
    c.request.consistency.strict = vm["strict"].as<bool>();
    if (vm.count("key")) c.key_file = vm["key"].as<std::string>();
    if (vm.count("server-key")) c.server_key = vm["server-key"].as<std::string>();
    c.no_key = vm["no-key"].as<bool>();
    return c;
}

std::optional<std::string> validate(Config& c) {
    auto fraction = read_fraction_of(c.mix);
    if (!fraction) return "unknown --mix '" + c.mix + "'";
    c.read_fraction = *fraction;
    auto level = kv::proto::level_from_name(c.consistency);
    if (!level) return "unknown --consistency '" + c.consistency + "'";
    c.request.consistency.level = *level;
    if (c.keys == 0 || c.keys > kKeysMax) return "--keys must be in 1..100000000";
    if (c.value_bytes > kv::proto::kValueBytesMax) return "--value-bytes is above 1 MiB";
    if (c.pipeline == 0 || c.pipeline > kPipelineMax) return "--pipeline must be in 1..100000";
    if (c.connections == 0 || c.connections > kConnectionsMax) {
        return "--connections must be in 1..1024";
    }
    if (c.threads == 0) return "--threads must be at least 1";
    c.threads = std::min(c.threads, c.connections);
    if (c.request.deadline_ms > kv::proto::kDeadlineMsMax) return "--timeout-ms above 600000";
    return std::nullopt;
}

int fail(ErrorCode code, const std::string& message) {
    std::cerr << "kvbench: " << kv::error_name(code) << ": " << message << "\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::optional<Config> config;
    try {
        config = parse(argc, argv);
    } catch (const po::error& e) {
        return fail(ErrorCode::invalid_argument, e.what());
    }
    if (!config) return 0;
    Config& c = *config;
    if (auto problem = validate(c)) return fail(ErrorCode::invalid_argument, *problem);

    kv::client::ClientOptions options;
    options.defaults = c.request;
    options.in_flight_max = c.pipeline * 2;  // a load step keeps a get and a put per slot
    const std::optional<std::string> key_file = c.no_key ? std::nullopt
                                                : c.key_file
                                                    ? c.key_file
                                                    : kv::client::default_credentials_path();
    if (key_file) {
        auto loaded = kv::client::load_credentials(*key_file);
        if (!loaded) return fail(loaded.status().code(), loaded.status().message());
        auto curve = kv::client::to_curve_credentials(loaded.value(), c.server_key, *key_file);
        if (!curve) return fail(curve.status().code(), curve.status().message());
        options.curve = std::move(curve.value());
    }
    ContextTable contexts(c.keys, c.threads > 1);
    std::vector<Worker> workers;
    workers.reserve(c.connections);
    for (uint32_t i = 0; i < c.connections; ++i) {
        // Connection i starts at node i (mod the list), so that every node coordinates.
        std::vector<std::string> nodes = c.nodes;
        std::rotate(nodes.begin(), nodes.begin() + (i % nodes.size()), nodes.end());
        auto client = AsyncClient::connect(nodes, options);
        if (!client) return fail(client.status().code(), client.status().message());
        workers.emplace_back(c, i, std::move(client).value(), contexts);
    }

    double load_s = 0;
    auto drivers = make_drivers(workers, c.threads);
    if (!drivers) return fail(drivers.status().code(), drivers.status().message());
    // --load reads and writes every key; --prime alone reads them. Either
    // leaves the context table full, so the measured puts are updates.
    if (c.load || c.prime) {
        auto start = Clock::now();
        bool write = c.load;
        Stats loaded = run_parallel(workers, drivers.value(),
                                    [write](Worker& w, size_t) { return w.load_step(write); });
        load_s = seconds_since(start);
        for (auto [code, n] : loaded.errors) {
            std::cerr << "kvbench: " << (write ? "load" : "prime") << ": " << n << " x "
                      << kv::error_name(code) << "\n";
        }
    }

    auto start = Clock::now();
    std::optional<Clock::time_point> stop_at;
    if (c.duration_s > 0) {
        stop_at = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(c.duration_s));
    }
    Stats total = run_parallel(workers, drivers.value(), [&](Worker& w, size_t i) {
        uint64_t share = c.ops / c.connections + (i < c.ops % c.connections ? 1 : 0);
        return w.run_step(c.ops == 0 ? std::nullopt : std::optional<uint64_t>(share), stop_at);
    });
    report(c, total, seconds_since(start), load_s);
    bool all_failed = total.completed > 0 && total.get.count() + total.put.count() == 0;
    return all_failed ? 2 : 0;
}
