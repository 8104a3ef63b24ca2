// kvsyncprobe: what a synced append costs on this machine's disk, alone and
// with other writers syncing beside it (issue 14, docs/BENCHMARKS.md). Each
// writer thread writes a file (its own, or --per-file share one), written with
// zeros first (64 MiB, as the write-ahead log writes ahead of its records, so a
// sync writes data, not the file's size); once every file is, each loops for
// --seconds: pwrite --bytes at its next offset (round its part of the 64 MiB),
// fdatasync.
// Prints every sync's latency percentiles over all writers and the share of
// the syncing time spent in syncs slower than --slow-ms: a node whose commit
// takes one of those holds every reply of that batch meanwhile.
// Three writers stand for three nodes on one disk, as tools/bench runs them;
// --per-file 2 gives each file two writers, each in its own half of it, as a
// node with two commits in flight on its log would sync it twice at once.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <latch>
#include <string>
#include <thread>
#include <vector>

namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

namespace {

struct Config {
    uint32_t writers = 1;
    uint32_t per_file = 1;  // writers sharing one file
    size_t bytes = 6000;
    double seconds = 3;
    double slow_ms = 2;
    std::string dir;
};

// One writer's sync latencies in microseconds; empty with `error` set on failure.
struct WriterResult {
    std::vector<double> sync_us;
    std::string error;
};

// The bytes each file is written with zeros over before the clock starts;
// records go round in them, over blocks written already, as the log reuses
// its files.
constexpr size_t kSpanBytes = size_t{64} << 20;

// The files are filled before the writers start; the clock starts once every
// writer has opened its file, so neither is part of what is measured.
struct Start {
    std::latch filled;
    std::latch go{1};
    Clock::time_point stop_at;  // written before `go` opens
    explicit Start(uint32_t writers) : filled(writers) {}
};

// Fills the file with zeros and syncs it; empty on success, else why not.
std::string fill(int fd, const std::string& path, size_t span) {
    const std::string zeros(size_t{1} << 20, '\0');
    for (size_t at = 0; at < span; at += zeros.size()) {
        if (::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(at)) < 0) {
            return "write " + path + ": " + std::strerror(errno);
        }
    }
    if (::fsync(fd) != 0) return "fsync " + path + ": " + std::strerror(errno);
    return {};
}

std::string file_path(const Config& c, uint32_t file) {
    return c.dir + "/kvsyncprobe-" + std::to_string(file);
}

// A file's span: each of its writers goes round in its own slice of it.
size_t span_bytes(const Config& c) {
    return std::max(kSpanBytes, c.bytes * c.per_file);
}

// Creates and fills one file; empty on success, else why not.
std::string make_file(const Config& c, uint32_t file) {
    const std::string path = file_path(c, file);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return "open " + path + ": " + std::strerror(errno);
    std::string error = fill(fd, path, span_bytes(c));
    ::close(fd);
    return error;
}

WriterResult run_writer(const Config& c, uint32_t index, Start& start) {
    WriterResult out;
    const std::string path = file_path(c, index / c.per_file);
    const size_t slice = span_bytes(c) / c.per_file;
    const size_t first = slice * (index % c.per_file);
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) out.error = "open " + path + ": " + std::strerror(errno);
    // Counted down on failure too, so the others never wait for this one.
    start.filled.count_down();
    start.go.wait();
    const std::string record(c.bytes, 'r');
    size_t offset = first;
    while (out.error.empty() && Clock::now() < start.stop_at) {
        const auto started = Clock::now();
        if (::pwrite(fd, record.data(), record.size(), static_cast<off_t>(offset)) < 0 ||
            ::fdatasync(fd) != 0) {
            out.error = "write or sync " + path + ": " + std::strerror(errno);
            break;
        }
        out.sync_us.push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - started).count());
        offset += record.size();
        if (offset + record.size() > first + slice) offset = first;
    }
    if (fd >= 0) ::close(fd);
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    Config c;
    po::options_description options(
        "usage: kvsyncprobe [options]\nSynced appends of --bytes by --writers threads, each "
        "on a file in --dir (--per-file of them each), for --seconds; prints the syncs' latencies");
    options.add_options()("help,h", "this help")("writers", po::value(&c.writers)->default_value(1),
                                                 "threads, each syncing a file")(
        "per-file", po::value(&c.per_file)->default_value(1),
        "writers sharing one file, each in its own part of it (--writers a multiple of it)")(
        "bytes", po::value(&c.bytes)->default_value(6000), "bytes written before each sync")(
        "seconds", po::value(&c.seconds)->default_value(3.0), "how long each writer runs")(
        "slow-ms", po::value(&c.slow_ms)->default_value(2.0),
        "a sync at least this long counts as slow")("dir", po::value(&c.dir)->default_value("."),
                                                    "directory for the files (removed after)");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, options), vm);
        po::notify(vm);
    } catch (const std::exception& e) {
        std::cerr << "kvsyncprobe: " << e.what() << "\n";
        return 2;
    }
    if (vm.count("help")) {
        std::cout << options << "\n";
        return 0;
    }
    if (c.writers < 1 || c.writers > 64 || c.bytes < 1 || c.bytes > (size_t{16} << 20) ||
        c.seconds <= 0 || c.seconds > 3600 || c.per_file < 1 || c.per_file > 8 ||
        c.writers % c.per_file != 0) {
        std::cerr << "kvsyncprobe: --writers must be 1-64, --bytes 1 to 16 MiB, --seconds "
                     "above 0 and at most 3600, --per-file 1-8 and a divisor of --writers\n";
        return 2;
    }
    if (!std::filesystem::is_directory(c.dir)) {
        std::cerr << "kvsyncprobe: --dir " << c.dir << " is not a directory\n";
        return 2;
    }
    const uint32_t files = c.writers / c.per_file;
    const auto remove_files = [&] {
        for (uint32_t f = 0; f < files; ++f) ::unlink(file_path(c, f).c_str());
    };
    for (uint32_t f = 0; f < files; ++f) {
        if (std::string error = make_file(c, f); !error.empty()) {
            std::cerr << "kvsyncprobe: " << error << "\n";
            remove_files();
            return 1;
        }
    }
    Start start(c.writers);
    std::vector<WriterResult> results(c.writers);
    std::vector<std::thread> threads;
    for (uint32_t i = 0; i < c.writers; ++i) {
        threads.emplace_back([&, i] { results[i] = run_writer(c, i, start); });
    }
    start.filled.wait();
    start.stop_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(c.seconds));
    start.go.count_down();
    for (auto& t : threads) t.join();
    remove_files();
    std::vector<double> all;
    for (const auto& r : results) {
        if (!r.error.empty()) {
            std::cerr << "kvsyncprobe: " << r.error << "\n";
            return 1;
        }
        all.insert(all.end(), r.sync_us.begin(), r.sync_us.end());
    }
    if (all.empty()) {
        std::cerr << "kvsyncprobe: no sync completed\n";
        return 1;
    }
    std::sort(all.begin(), all.end());
    double total_us = 0, slow_us = 0;
    size_t slow = 0;
    for (double us : all) {
        total_us += us;
        if (us >= c.slow_ms * 1000) {
            slow_us += us;
            ++slow;
        }
    }
    const auto at = [&](double q) { return all[static_cast<size_t>(q * (all.size() - 1))]; };
    std::printf(
        "%u writer(s) (%u a file) x %zu bytes: %zu syncs, %.0f/s; sync us: mean %.0f p50 %.0f p99 "
        "%.0f "
        "p999 %.0f max %.0f; %zu syncs >= %.1f ms, %.0f%% of the time syncing\n",
        c.writers, c.per_file, c.bytes, all.size(), static_cast<double>(all.size()) / c.seconds,
        total_us / static_cast<double>(all.size()), at(0.5), at(0.99), at(0.999), all.back(), slow,
        c.slow_ms, 100 * slow_us / total_us);
    return 0;
}
