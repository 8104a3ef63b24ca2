// Pipelined commits (node/buffered_env.h, node/runtime/commit_thread.h): a
// batch in flight stays readable until it ends, messages wait for the writes
// they may depend on, and the writer thread commits to LMDB while this thread
// reads it.
#include <catch2/catch.hpp>

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "node/buffered_env.h"
#include "node/runtime/commit_thread.h"
#include "tests/unit/temp_dir.h"

using namespace kv;
using namespace kv::node;

namespace {

struct TestEnv final : BufferedEnv {
    using BufferedEnv::BufferedEnv;
    uint64_t now_ms() override { return 0; }
    uint64_t random_u64() override { return 4; }
    void log(LogLevel, std::string_view) override {}
};

std::optional<std::string> read(TestEnv& env, std::string_view key) {
    auto r = env.read(Space::data, key);
    REQUIRE(r.ok());
    return r.value();
}

std::vector<std::string> scan_all(TestEnv& env) {
    std::vector<std::string> seen;
    REQUIRE(env.scan(Space::data, "", 100,
                     [&](std::string_view k, std::string_view v) {
                         seen.push_back(std::string(k) + "=" + std::string(v));
                         return true;
                     })
                .ok());
    return seen;
}

std::vector<uint64_t> ping_ids(const std::vector<Outgoing>& out) {
    std::vector<uint64_t> ids;
    for (const auto& o : out) ids.push_back(std::get<PingRequest>(o.message).id);
    return ids;
}

}  // namespace

TEST_CASE("a batch in flight stays readable, under what was staged since") {
    auto store = make_memory_store();
    REQUIRE(store
                ->write({{Space::data, "a", std::string("stored-a")},
                         {Space::data, "c", std::string("stored-c")}})
                .ok());
    TestEnv env(*store);
    env.stage_write({Space::data, "b", std::string("batch-b")});
    env.stage_write({Space::data, "c", std::nullopt});
    env.stage_write({Space::data, "d", std::string("batch-d")});
    const std::vector<StoreWrite>* batch = env.begin_commit();
    REQUIRE(batch != nullptr);
    CHECK(batch->size() == 3);
    CHECK(env.committing());
    // Not written yet: the overlay answers.
    CHECK(read(env, "b") == std::optional<std::string>("batch-b"));
    CHECK(read(env, "c") == std::nullopt);
    CHECK(scan_all(env) == std::vector<std::string>{"a=stored-a", "b=batch-b", "d=batch-d"});
    // Staged after the batch began: wins over it.
    env.stage_write({Space::data, "d", std::string("staged-d")});
    env.stage_write({Space::data, "a", std::nullopt});
    CHECK(read(env, "d") == std::optional<std::string>("staged-d"));
    CHECK(scan_all(env) == std::vector<std::string>{"b=batch-b", "d=staged-d"});
    // Written (as the writer thread would), then ended: the store answers.
    REQUIRE(store->write(*batch).ok());
    env.end_commit();
    CHECK(!env.committing());
    CHECK(read(env, "b") == std::optional<std::string>("batch-b"));
    CHECK(read(env, "c") == std::nullopt);
    CHECK(scan_all(env) == std::vector<std::string>{"b=batch-b", "d=staged-d"});
}

TEST_CASE("a batch in flight is found by space and exact key") {
    auto store = make_memory_store();
    REQUIRE(store->write({{Space::meta, "k", std::string("stored-meta-k")}}).ok());
    TestEnv env(*store);
    const std::string high("k\xff", 2);  // sorts after every "k" + ASCII key
    env.stage_write({Space::meta, "k2", std::string("meta-k2")});
    env.stage_write({Space::data, high, std::string("data-high")});
    env.stage_write({Space::data, "k", std::string("data-k")});
    env.stage_write({Space::data, "kk", std::string("data-kk")});
    env.stage_write({Space::hints, "a", std::string("hints-a")});
    const std::vector<StoreWrite>* batch = env.begin_commit();
    REQUIRE(batch->size() == 5);
    // In (space, key byte) order, as the store is given it.
    std::vector<std::pair<Space, std::string>> order;
    for (const auto& w : *batch) order.emplace_back(w.space, w.key);
    CHECK(order == std::vector<std::pair<Space, std::string>>{{Space::data, "k"},
                                                              {Space::data, "kk"},
                                                              {Space::data, high},
                                                              {Space::meta, "k2"},
                                                              {Space::hints, "a"}});
    CHECK(read(env, "k") == std::optional<std::string>("data-k"));
    CHECK(read(env, high) == std::optional<std::string>("data-high"));
    CHECK(read(env, "k2") == std::nullopt);  // in the batch, but in another space
    CHECK(read(env, "kkk") == std::nullopt);
    auto meta = env.read(Space::meta, "k");
    REQUIRE(meta.ok());
    CHECK(meta.value() == std::optional<std::string>("stored-meta-k"));  // from the store
    CHECK(scan_all(env) == std::vector<std::string>{"k=data-k", "kk=data-kk", high + "=data-high"});
    std::vector<std::string> from_kk;
    REQUIRE(env.scan(Space::data, "kk", 10,
                     [&](std::string_view k, std::string_view) {
                         from_kk.emplace_back(k);
                         return true;
                     })
                .ok());
    CHECK(from_kk == std::vector<std::string>{"kk", high});
    env.end_commit();
}

TEST_CASE("messages go with the writes of their handler, and before later ones") {
    auto store = make_memory_store();
    TestEnv env(*store);
    env.begin_handler();
    env.send("n2", PingRequest{1, "n1"});  // reads only
    env.begin_handler();
    env.send("n2", PingRequest{2, "n1"});  // replies, then stages: held with the write
    env.stage_write({Space::data, "k", std::string("v")});
    env.begin_handler();
    env.send("n2", PingRequest{3, "n1"});
    CHECK(ping_ids(env.take_sendable()) == std::vector<uint64_t>{1});
    const std::vector<StoreWrite>* batch = env.begin_commit();
    // While the batch is in flight, nothing more goes with it.
    env.begin_handler();
    env.send("n2", PingRequest{4, "n1"});
    env.begin_handler();
    env.stage_write({Space::data, "k2", std::string("v")});
    env.send("n2", PingRequest{5, "n1"});
    REQUIRE(store->write(*batch).ok());
    CHECK(ping_ids(env.end_commit()) == std::vector<uint64_t>{2, 3});
    // 4 depended at most on the batch, now durable; 5 waits for its own write.
    CHECK(ping_ids(env.take_sendable()) == std::vector<uint64_t>{4});
    env.begin_commit();
    CHECK(ping_ids(env.end_commit()) == std::vector<uint64_t>{5});
    // Nothing staged: everything may go.
    env.begin_handler();
    env.send("n2", PingRequest{6, "n1"});
    CHECK(ping_ids(env.take_sendable()) == std::vector<uint64_t>{6});
    CHECK(!env.has_pending());
}

TEST_CASE("messages sent ahead leave at once; the rest still wait for their writes") {
    auto store = make_memory_store();
    TestEnv env(*store);
    env.begin_handler();
    env.stage_write({Space::data, "k", std::string("v")});
    env.send("n2", PingRequest{1, "n1"});
    env.send_ahead("n2", PingRequest{2, "n1"});
    CHECK(ping_ids(env.take_ahead()) == std::vector<uint64_t>{2});
    CHECK(env.take_ahead().empty());
    CHECK(env.take_sendable().empty());  // 1 waits for k
    const std::vector<StoreWrite>* batch = env.begin_commit();
    // Sent ahead while a batch is in flight: still at once.
    env.begin_handler();
    env.send_ahead("n2", PingRequest{3, "n1"});
    CHECK(ping_ids(env.take_ahead()) == std::vector<uint64_t>{3});
    REQUIRE(store->write(*batch).ok());
    CHECK(ping_ids(env.end_commit()) == std::vector<uint64_t>{1});
    // Not taken before a commit: they go with it, first.
    env.begin_handler();
    env.send("n2", PingRequest{4, "n1"});
    env.send_ahead("n2", PingRequest{5, "n1"});
    CHECK(env.has_pending());
    auto out = env.commit();
    REQUIRE(out.ok());
    CHECK(ping_ids(out.value()) == std::vector<uint64_t>{5, 4});
    // A crash (discard) drops those not yet taken.
    env.send_ahead("n2", PingRequest{6, "n1"});
    env.discard();
    CHECK(env.take_ahead().empty());
    CHECK(!env.has_pending());
}

TEST_CASE("an answer after its own writes waits for their batch, not the newest or the next") {
    auto store = make_memory_store();
    TestEnv env(*store);
    const ReplyTo client{"c"};
    CHECK(env.writes_staged() == 0);
    // Write 1 (and 2), then a batch begins with them.
    env.begin_handler();
    env.stage_write({Space::data, "a", std::string("1")});
    env.stage_write({Space::data, "b", std::string("1")});
    const uint64_t first_mark = env.writes_staged();
    CHECK(first_mark == 2);
    env.reply_after_writes(client, PingRequest{1, "n1"}, first_mark);  // its handler's writes
    CHECK(env.take_sendable().empty());
    const std::vector<StoreWrite>* first = env.begin_commit();
    // Write 3, the second batch.
    env.begin_handler();
    env.stage_write({Space::data, "c", std::string("3")});
    const uint64_t second_mark = env.writes_staged();
    const std::vector<StoreWrite>* second = env.begin_commit();
    CHECK(env.batches_in_flight() == 2);
    // Write 4, staged; then, after it in the same turn, the answers of
    // handlers that stage nothing.
    env.begin_handler();
    env.stage_write({Space::data, "d", std::string("4")});
    env.begin_handler();
    env.reply_after_writes(client, PingRequest{2, "n1"}, first_mark);   // with the first
    env.reply(client, PingRequest{3, "n1"});                            // waits for write 4
    env.reply_after_writes(client, PingRequest{4, "n1"}, second_mark);  // with the second
    env.reply_after_writes(client, PingRequest{5, "n1"}, 0);            // none of its writes
    env.reply_after_writes(client, PingRequest{6, "n1"}, env.writes_staged());  // write 4
    CHECK(ping_ids(env.take_sendable()) == std::vector<uint64_t>{5});
    CHECK(env.take_sendable().empty());
    REQUIRE(store->write(*first).ok());
    CHECK(ping_ids(env.end_commit()) == std::vector<uint64_t>{1, 2});
    // The first is durable: an answer after its writes goes at once, one
    // after the second's waits for it, and one without a mark for the newest.
    env.begin_handler();
    env.reply_after_writes(client, PingRequest{7, "n1"}, 1);
    env.reply_after_writes(client, PingRequest{8, "n1"}, second_mark);
    CHECK(ping_ids(env.take_sendable()) == std::vector<uint64_t>{7});
    const std::vector<StoreWrite>* third = env.begin_commit();  // write 4
    env.begin_handler();
    env.reply(client, PingRequest{9, "n1"});  // may reveal write 4: with the third
    CHECK(env.take_sendable().empty());
    REQUIRE(store->write(*second).ok());
    CHECK(ping_ids(env.end_commit()) == std::vector<uint64_t>{4, 8});
    REQUIRE(store->write(*third).ok());
    CHECK(ping_ids(env.end_commit()) == std::vector<uint64_t>{3, 6, 9});
    CHECK(!env.has_pending());
    // A commit in one step (the simulator's) sends everything, in the order sent.
    env.begin_handler();
    env.stage_write({Space::data, "e", std::string("5")});
    env.reply_after_writes(client, PingRequest{10, "n1"}, 0);
    env.reply(client, PingRequest{11, "n1"});
    env.reply_after_writes(client, PingRequest{12, "n1"}, env.writes_staged());
    auto out = env.commit();
    REQUIRE(out.ok());
    CHECK(ping_ids(out.value()) == std::vector<uint64_t>{10, 11, 12});
    CHECK(env.writes_staged() == 5);
}

TEST_CASE("a step's mark: what it read from writes not yet durable, and what it wrote") {
    auto store = make_memory_store();
    REQUIRE(store->write({{Space::data, "stored", std::string("s")}}).ok());
    TestEnv env(*store);
    env.begin_handler();
    CHECK(read(env, "stored") == std::optional<std::string>("s"));
    CHECK(env.step_mark() == 0);  // durable, nothing in flight
    env.stage_write({Space::data, "a", std::string("1")});
    env.stage_write({Space::data, "b", std::string("2")});
    CHECK(env.step_mark() == 2);  // it wrote
    env.begin_commit();           // a and b, through mark 2
    env.begin_handler();
    env.stage_write({Space::data, "c", std::string("3")});
    env.begin_commit();  // c, through mark 3
    env.begin_handler();
    env.stage_write({Space::data, "d", std::string("4")});
    // A step that reads only what is durable, with batches in flight and a
    // write staged: its answer depends on none of them.
    env.begin_handler();
    CHECK(env.step_mark() == 0);
    CHECK(read(env, "stored") == std::optional<std::string>("s"));
    CHECK(read(env, "nothing") == std::nullopt);
    CHECK(env.step_mark() == 0);
    // From the first batch in flight, then the second: the later one's mark.
    CHECK(read(env, "a") == std::optional<std::string>("1"));
    CHECK(env.step_mark() == 2);
    CHECK(read(env, "c") == std::optional<std::string>("3"));
    CHECK(env.step_mark() == 3);
    CHECK(read(env, "b") == std::optional<std::string>("2"));
    CHECK(env.step_mark() == 3);  // never lowered within a step
    // Staged, not begun: the newest mark (it goes with the next batch).
    env.begin_handler();
    CHECK(read(env, "d") == std::optional<std::string>("4"));
    CHECK(env.step_mark() == 4);
    // A scan does not tell its sources apart.
    env.begin_handler();
    scan_all(env);
    CHECK(env.step_mark() == 4);
    // An answer with the mark of a read from the first batch goes with it.
    env.begin_handler();
    read(env, "a");
    env.reply_after_writes(ReplyTo{"c"}, PingRequest{1, "n1"}, env.step_mark());
    CHECK(env.take_sendable().empty());
    CHECK(ping_ids(env.end_commit()) == std::vector<uint64_t>{1});
    env.end_commit();
}

TEST_CASE("the writer thread commits to LMDB while the loop reads it") {
    const std::string dir =
        std::filesystem::temp_directory_path() / ("kv-commit-thread-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    {
        auto opened = open_lmdb_store(LmdbOptions{dir, uint64_t{1} << 30, true});
        REQUIRE(opened.ok());
        Store& store = *opened.value();
        TestEnv env(store);
        CommitThread writer(store, 1);
        for (int round = 0; round < 20; ++round) {
            for (int i = 0; i < 200; ++i) {
                env.stage_write({Space::data, "r" + std::to_string(round) + "-" + std::to_string(i),
                                 std::string(100, 'x')});
            }
            env.send("n2", PingRequest{static_cast<uint64_t>(round), "n1"});
            const std::vector<StoreWrite>* batch = env.begin_commit();
            writer.start(batch);
            CHECK(writer.busy());
            // Reads of this and the earlier rounds meanwhile, whatever the writer reached.
            for (int i = 0; i < 200; i += 20) {
                for (int r = 0; r <= round; ++r) {
                    CHECK(read(env, "r" + std::to_string(r) + "-" + std::to_string(i)).has_value());
                }
            }
            // Readable once written, then taken.
            pollfd p{writer.done_fd(), POLLIN, 0};
            REQUIRE(::poll(&p, 1, 10'000) == 1);
            std::optional<Status> written = writer.take_result();
            REQUIRE(written.has_value());
            CHECK(written->ok());
            CHECK(!writer.busy());
            CHECK(ping_ids(env.end_commit()) ==
                  std::vector<uint64_t>{static_cast<uint64_t>(round)});
        }
        auto count = store.count(Space::data);
        REQUIRE(count.ok());
        CHECK(count.value() == 20 * 200);
        // wait() blocks until written.
        env.stage_write({Space::data, "last", std::string("v")});
        const std::vector<StoreWrite>* batch = env.begin_commit();
        writer.start(batch);
        CHECK(writer.wait().ok());
        env.end_commit();
        CHECK(store.get(Space::data, "last").value() == std::optional<std::string>("v"));
    }
    std::filesystem::remove_all(dir);
}

TEST_CASE("two batches in flight: reads and scans see the newest; they end in order") {
    auto store = make_memory_store();
    REQUIRE(store->write({{Space::data, "a", std::string("stored-a")}}).ok());
    TestEnv env(*store);
    env.begin_handler();
    env.stage_write({Space::data, "a", std::string("first-a")});
    env.stage_write({Space::data, "b", std::string("first-b")});
    env.send("n2", PingRequest{1, "n1"});
    const std::vector<StoreWrite>* first = env.begin_commit();
    // A read reply while the first is in flight: it may reveal the first's
    // writes, so it goes with it (the newest in flight), not with the second.
    env.begin_handler();
    env.send("n2", PingRequest{2, "n1"});
    env.begin_handler();
    env.stage_write({Space::data, "a", std::string("second-a")});
    env.stage_write({Space::data, "c", std::nullopt});
    env.send("n2", PingRequest{3, "n1"});
    CHECK(env.take_sendable().empty());  // 2 is filed with the first
    const std::vector<StoreWrite>* second = env.begin_commit();
    CHECK(env.batches_in_flight() == 2);
    env.begin_handler();
    env.stage_write({Space::data, "d", std::string("staged-d")});
    CHECK(read(env, "a") == std::optional<std::string>("second-a"));
    CHECK(read(env, "b") == std::optional<std::string>("first-b"));
    CHECK(read(env, "d") == std::optional<std::string>("staged-d"));
    CHECK(scan_all(env) == std::vector<std::string>{"a=second-a", "b=first-b", "d=staged-d"});
    // The first is written and ends; the second, still in flight, still wins.
    REQUIRE(store->write(*first).ok());
    CHECK(ping_ids(env.end_commit()) == std::vector<uint64_t>{1, 2});
    CHECK(env.batches_in_flight() == 1);
    CHECK(read(env, "a") == std::optional<std::string>("second-a"));
    CHECK(scan_all(env) == std::vector<std::string>{"a=second-a", "b=first-b", "d=staged-d"});
    REQUIRE(store->write(*second).ok());
    CHECK(ping_ids(env.end_commit()) == std::vector<uint64_t>{3});
    CHECK(!env.committing());
    CHECK(read(env, "a") == std::optional<std::string>("second-a"));
}

TEST_CASE("two commits in flight on the logged store: appended in order, read meanwhile") {
    const std::string dir =
        std::filesystem::temp_directory_path() / ("kv-commit-depth-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    {
        // Checkpoints every ~64 KiB: a freeze waits for the record in flight.
        LmdbOptions options{.dir = dir,
                            .write_ahead_log = true,
                            .wal_checkpoint_bytes = 64 << 10,
                            .wal_checkpoint_step_bytes = 16 << 10};
        auto opened = open_lmdb_store(options);
        REQUIRE(opened.ok());
        Store& store = *opened.value();
        TestEnv env(store);
        CommitThread writer(store, 2);
        uint64_t next_ping = 0;
        std::vector<uint64_t> delivered;
        size_t most_in_flight = 0;
        for (int round = 0; round < 300; ++round) {
            // Every round writes key "same" (the last round's must win) and
            // keys of its own.
            env.begin_handler();
            env.stage_write({Space::data, "same", std::to_string(round)});
            for (int i = 0; i < 20; ++i) {
                env.stage_write({Space::data, "r" + std::to_string(round) + "-" + std::to_string(i),
                                 std::string(100, 'x')});
            }
            env.send("n2", PingRequest{next_ping++, "n1"});
            while (!writer.can_start()) {
                pollfd p{writer.done_fd(), POLLIN, 0};
                REQUIRE(::poll(&p, 1, 10'000) == 1);
                while (std::optional<Status> written = writer.take_result()) {
                    REQUIRE(written->ok());
                    for (const uint64_t id : ping_ids(env.end_commit())) delivered.push_back(id);
                }
            }
            const std::vector<StoreWrite>* batch = env.begin_commit();
            writer.start(batch);
            most_in_flight = std::max(most_in_flight, env.batches_in_flight());
            CHECK(read(env, "same") == std::optional<std::string>(std::to_string(round)));
            for (int r = std::max(0, round - 3); r <= round; ++r) {
                CHECK(read(env, "r" + std::to_string(r) + "-7").has_value());
            }
        }
        while (writer.busy()) {
            REQUIRE(writer.wait().ok());
            for (const uint64_t id : ping_ids(env.end_commit())) delivered.push_back(id);
        }
        CHECK(most_in_flight == 2);
        // Delivered in the order sent, each once.
        REQUIRE(delivered.size() == 300);
        for (uint64_t i = 0; i < delivered.size(); ++i) CHECK(delivered[i] == i);
        CHECK(store.get(Space::data, "same").value() == std::optional<std::string>("299"));
        CHECK(store.count(Space::data).value() == 300 * 20 + 1);
    }
    {
        // What was acknowledged is what a reopen reads.
        auto reopened = open_lmdb_store(LmdbOptions{.dir = dir, .write_ahead_log = true});
        REQUIRE(reopened.ok());
        CHECK(reopened.value()->get(Space::data, "same").value() ==
              std::optional<std::string>("299"));
        CHECK(reopened.value()->count(Space::data).value() == 300 * 20 + 1);
    }
    std::filesystem::remove_all(dir);
}

namespace {

// A store that counts the records its scans hand out: what a layer above
// copies before merging its own keys.
struct CountingStore final : Store {
    explicit CountingStore(Store& base) : base_(base) {}
    Result<std::optional<std::string>> get(Space space, std::string_view key) const override {
        return base_.get(space, key);
    }
    Status write(const std::vector<StoreWrite>& batch) override { return base_.write(batch); }
    Status scan(
        Space space, std::string_view from, size_t limit,
        const std::function<bool(std::string_view, std::string_view)>& visit) const override {
        return base_.scan(space, from, limit, [&](std::string_view k, std::string_view v) {
            ++records_read;
            return visit(k, v);
        });
    }
    Result<uint64_t> count(Space space) const override { return base_.count(space); }
    StoreOrder order() const override { return base_.order(); }
    Store& base_;
    mutable size_t records_read = 0;
};

std::string key_at(int i) {
    std::string n = std::to_string(i);
    return "k" + std::string(3 - n.size(), '0') + n;
}

// Scans of Space::data from each key, with each limit, match the model's.
void check_scans(TestEnv& env, const std::map<std::string, std::string>& model,
                 const std::vector<std::string>& froms, const std::vector<size_t>& limits) {
    for (const std::string& from : froms) {
        for (size_t limit : limits) {
            INFO("from '" << from << "', limit " << limit);
            std::vector<std::string> got, want;
            REQUIRE(env.scan(Space::data, from, limit,
                             [&](std::string_view k, std::string_view v) {
                                 got.push_back(std::string(k) + "=" + std::string(v));
                                 return true;
                             })
                        .ok());
            for (auto it = model.lower_bound(from); it != model.end() && want.size() < limit;
                 ++it) {
                want.push_back(it->first + "=" + it->second);
            }
            CHECK(got == want);
        }
    }
}

}  // namespace

TEST_CASE("a scan reads the store a growing chunk at a time, merged in order with what is staged") {
    auto memory = make_memory_store();
    CountingStore store(*memory);
    // 200 keys: even ones stored; odd ones staged; every fifth stored one
    // erased by a staged write (runs of them cross chunk ends: 16, 48, 112).
    std::map<std::string, std::string> model;
    std::vector<StoreWrite> stored;
    for (int i = 0; i < 200; i += 2) {
        stored.push_back({Space::data, key_at(i), "s" + std::to_string(i)});
        model[key_at(i)] = "s" + std::to_string(i);
    }
    REQUIRE(store.write(stored).ok());
    TestEnv env(store);
    for (int i = 0; i < 200; ++i) {
        if (i % 2 == 1) {
            env.stage_write({Space::data, key_at(i), "t" + std::to_string(i)});
            model[key_at(i)] = "t" + std::to_string(i);
        } else if (i % 10 == 0 || (i >= 20 && i < 60) || (i >= 200 - 40)) {
            env.stage_write({Space::data, key_at(i), std::nullopt});
            model.erase(key_at(i));
        }
    }
    check_scans(env, model, {"", "k000", "k015", "k047", "k111", "k150"},
                {1, 15, 16, 17, 40, 100, 2050});
    // A visitor that stops at once (anti-entropy listing one token interval
    // with a page's limit) costs the first chunk, not the limit.
    store.records_read = 0;
    int visited = 0;
    REQUIRE(env.scan(Space::data, "k100", 2050,
                     [&](std::string_view, std::string_view) { return ++visited < 2; })
                .ok());
    CHECK(visited == 2);
    CHECK(store.records_read <= 32);  // a first chunk (kScanFirstChunkKeys); was 50, all from k100
    // A whole scan reads each stored record about once, chunk ends read twice.
    store.records_read = 0;
    CHECK(scan_all(env).size() == std::min<size_t>(model.size(), 100));
    CHECK(store.records_read <= 100 + 8);
}

TEST_CASE("staged writes merge into an LMDB scan in its order, long keys too") {
    // Keys longer than LMDB's 511-byte keys that share 505 bytes: LMDB orders
    // them by hash (store.h, StoreOrder), so a merge of staged keys by byte
    // order visited some twice and missed others.
    kv::test::TempDir dir;
    auto opened = open_lmdb_store(LmdbOptions{.dir = dir.path()});
    REQUIRE(opened.ok());
    Store& store = *opened.value();
    const std::string prefix(505, 'p');
    auto key_of = [&](int i, size_t extra) { return prefix + std::string(extra, 'x') + char(i); };
    std::map<std::string, std::string> model;
    std::vector<StoreWrite> stored;
    for (int i = 0; i < 40; ++i) {
        for (size_t extra : {size_t{0}, size_t{10}, size_t{100}}) {
            stored.push_back({Space::data, key_of(i, extra), "s"});
            model[key_of(i, extra)] = "s";
        }
    }
    REQUIRE(store.write(stored).ok());
    TestEnv env(store);
    // Half in a batch in flight, half staged after it: new keys, rewrites, erases.
    for (int i = 40; i < 60; ++i) {
        env.stage_write({Space::data, key_of(i, 100), "t"});
        model[key_of(i, 100)] = "t";
    }
    for (int i = 0; i < 40; i += 3) {
        env.stage_write({Space::data, key_of(i, 100), std::nullopt});
        model.erase(key_of(i, 100));
    }
    const std::vector<StoreWrite>* in_flight = env.begin_commit();
    for (int i = 1; i < 40; i += 4) {
        env.stage_write({Space::data, key_of(i, 10), "u"});
        model[key_of(i, 10)] = "u";
        env.stage_write({Space::data, key_of(i, 0), std::nullopt});
        model.erase(key_of(i, 0));
    }
    auto scan_from = [&](const std::string& from, size_t limit) {
        std::vector<std::pair<std::string, std::string>> seen;
        REQUIRE(env.scan(Space::data, from, limit,
                         [&](std::string_view k, std::string_view v) {
                             seen.emplace_back(k, v);
                             return true;
                         })
                    .ok());
        return seen;
    };
    for (int round = 0; round < 2; ++round) {
        INFO((round == 0 ? "a batch in flight" : "the batch written and ended"));
        const auto all = scan_from("", SIZE_MAX);
        auto sorted = all;
        std::sort(sorted.begin(), sorted.end());
        CHECK(sorted ==
              std::vector<std::pair<std::string, std::string>>(model.begin(), model.end()));
        const StoreOrder order = store.order();
        bool ascending = true;
        for (size_t i = 1; i < all.size(); ++i)
            ascending &= order.less(all[i - 1].first, all[i].first);
        CHECK(ascending);
        // Paged from the last key seen, as store.h prescribes.
        for (size_t page : {size_t{1}, size_t{5}, size_t{17}}) {
            auto paged = scan_from("", page);
            for (int pages = 0; pages < 1000 && !paged.empty(); ++pages) {
                auto next = scan_from(paged.back().first, page + 1);
                REQUIRE(!next.empty());
                if (next.size() == 1) break;
                paged.insert(paged.end(), next.begin() + 1, next.end());
            }
            CHECK(paged == all);
        }
        if (round == 0) {
            REQUIRE(store.write(*in_flight).ok());
            env.end_commit();
        }
    }
}

TEST_CASE("a scan overlays batches in flight and staged writes, newest first, from any key") {
    auto store = make_memory_store();
    TestEnv env(*store);
    std::map<std::string, std::string> model;
    std::vector<StoreWrite> stored;
    for (int i = 0; i < 120; i += 2) {
        stored.push_back({Space::data, key_at(i), "s"});
        model[key_at(i)] = "s";
    }
    stored.push_back({Space::meta, "k050", "other space"});
    REQUIRE(store->write(stored).ok());
    // Three batches in flight and writes staged after them, each writing
    // keys of the others (rewrites and erases), some in another space.
    std::vector<const std::vector<StoreWrite>*> in_flight;
    uint32_t x = 7;
    for (int round = 0; round < 4; ++round) {
        for (int n = 0; n < 30; ++n) {
            x = x * 1103515245u + 12345u;
            const std::string key = key_at(static_cast<int>((x >> 16) % 120));
            if ((x >> 8) % 4 == 0) {
                env.stage_write({Space::data, key, std::nullopt});
                model.erase(key);
            } else {
                const std::string value = "r" + std::to_string(round) + "." + std::to_string(n);
                env.stage_write({Space::data, key, value});
                model[key] = value;
            }
            env.stage_write({Space::meta, key, "meta"});
        }
        if (round < 3) in_flight.push_back(env.begin_commit());
    }
    REQUIRE(env.batches_in_flight() == 3);
    check_scans(env, model, {"", "k000", "k001", "k050", "k077", "k119", "k2"},
                {1, 7, 16, 17, 200});
    for (const auto* batch : in_flight) {
        REQUIRE(store->write(*batch).ok());
        env.end_commit();
    }
}
