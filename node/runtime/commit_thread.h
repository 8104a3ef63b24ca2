// The writer thread of the ZeroMQ runtime: writes one batch of staged writes
// to the store (one LMDB transaction, synced) while the event loop goes on
// reading and handling requests, so nothing waits behind an fsync that does
// not depend on it (BufferedEnv::begin_commit holds back the batch's messages
// until it is durable, and keeps its writes readable meanwhile).
//
// Thread-safety: start(), done(), done_fd(), take_result() and wait() are called by
// the event loop only; the batch is read by both threads and written by
// neither until take_result() or wait() returned. Store::write runs on this
// thread while the loop reads the store (LMDB, MDB_NOTLS: a write transaction
// and read transactions may live on different threads at once).
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "client/status.h"
#include "node/storage/store.h"

namespace kv::node {

class CommitThread {
  public:
    explicit CommitThread(Store& store);
    ~CommitThread();
    CommitThread(const CommitThread&) = delete;
    CommitThread& operator=(const CommitThread&) = delete;

    // Starts writing `batch` (which must stay unchanged until the result is
    // taken); none may be in flight.
    void start(const std::vector<StoreWrite>* batch);
    bool busy() const { return busy_; }
    // Whether the batch in flight is written (its result waits to be taken):
    // a load, cheap enough for the loop to ask between two requests.
    bool done() const { return done_.load(std::memory_order_acquire); }
    // Readable (poll) once the batch in flight is written; take_result() clears it.
    int done_fd() const { return done_fd_; }
    // The batch's result once it is written, nullopt while it is not.
    std::optional<Status> take_result();
    // Blocks until the batch in flight is written; its result.
    Status wait();

  private:
    void run();

    Store& store_;
    int done_fd_ = -1;   // an eventfd
    bool busy_ = false;  // the loop's view: a batch was started and its result not taken
    std::mutex mutex_;
    std::condition_variable wake_;
    const std::vector<StoreWrite>* job_ = nullptr;  // guarded by mutex_
    std::optional<Status> result_;                  // guarded by mutex_
    bool stopping_ = false;                         // guarded by mutex_
    std::thread thread_;
    std::atomic<bool> done_{false};  // set with result_, cleared by take_result()
};

}  // namespace kv::node
