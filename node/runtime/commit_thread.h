// The writer of the ZeroMQ runtime: writes batches of staged writes to the
// store (each one log record or LMDB transaction, synced) on threads of its
// own while the event loop goes on reading and handling requests, so nothing
// waits behind an fsync that does not depend on it (BufferedEnv::begin_commit
// holds back each batch's messages until it is durable, and keeps its writes
// readable meanwhile).
//
// Up to `depth` batches are in flight at once, each on its own thread: the
// store appends them in the order they were started (Store::append) and the
// second's record is written while the first one syncs (Store::make_durable);
// two syncs in flight on one file overlap as on two files (docs/BENCHMARKS.md,
// issue 14, twenty-ninth step). Results are taken in start order, each only
// once those before it were.
//
// Thread-safety: start(), can_start(), busy(), done(), done_fd(),
// take_result() and wait() are called by the event loop only; a batch is read
// by the writer threads and the loop and written by none until its result was
// taken. The store's writes run on the writer threads while the loop reads it
// (LMDB, MDB_NOTLS: a write transaction and read transactions may live on
// different threads at once; the logged store guards its memory).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "client/status.h"
#include "node/storage/store.h"

namespace kv::node {

class CommitThread {
  public:
    // depth: batches in flight at once, 1 or more.
    CommitThread(Store& store, size_t depth);
    ~CommitThread();
    CommitThread(const CommitThread&) = delete;
    CommitThread& operator=(const CommitThread&) = delete;

    // Starts writing `batch` (which must stay unchanged until its result is
    // taken) after those in flight; only while can_start().
    void start(const std::vector<StoreWrite>* batch);
    bool can_start() const { return in_flight_ < depth_; }
    // Whether a batch was started and its result not taken.
    bool busy() const { return in_flight_ > 0; }
    // Whether the oldest batch in flight is written (its result waits to be
    // taken): a load, cheap enough for the loop to ask between two requests.
    bool done() const { return busy() && finished_.load(std::memory_order_acquire) > taken_; }
    // Readable (poll) once a batch is written; take_result() clears it.
    int done_fd() const { return done_fd_; }
    // The oldest batch's result once it is written, nullopt while it is not.
    std::optional<Status> take_result();
    // Blocks until the oldest batch in flight is written; its result.
    Status wait();

  private:
    void run();

    Store& store_;
    const size_t depth_;
    int done_fd_ = -1;      // an eventfd
    size_t in_flight_ = 0;  // the loop's: started, result not taken
    uint64_t taken_ = 0;    // the loop's: results taken so far
    std::mutex mutex_;
    // Apart, so that each wakes only who waits for it: a thread told of
    // what it does not wait for costs a context switch on every commit.
    std::condition_variable job_started_;   // a batch to pick, or stopping: the threads
    std::condition_variable appended_;      // an append turn ended: a thread waiting its turn
    std::condition_variable result_ready_;  // a result: the loop in wait()
    struct Job {
        const std::vector<StoreWrite>* batch = nullptr;
        std::optional<Status> result;
    };
    // Guarded by mutex_: the jobs whose result was not taken, numbered from
    // taken_ (the loop's count, copied here as first_job_).
    std::deque<Job> jobs_;
    uint64_t first_job_ = 0;    // the number of jobs_.front()
    uint64_t next_pick_ = 0;    // the next job a thread takes
    uint64_t next_append_ = 0;  // the next job whose batch the store appends
    bool stopping_ = false;
    std::vector<std::thread> threads_;
    // Jobs from the first whose results are all in: done() compares it with
    // taken_ without the mutex.
    std::atomic<uint64_t> finished_{0};
};

}  // namespace kv::node
