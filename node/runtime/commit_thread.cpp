#include "node/runtime/commit_thread.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace kv::node {

CommitThread::CommitThread(Store& store, size_t depth) : store_(store), depth_(depth) {
    assert(depth >= 1);
    done_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (done_fd_ < 0) {
        throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    }
    for (size_t i = 0; i < depth_; ++i) threads_.emplace_back([this] { run(); });
}

CommitThread::~CommitThread() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    job_started_.notify_all();
    for (std::thread& t : threads_) t.join();
    ::close(done_fd_);
}

void CommitThread::start(const std::vector<StoreWrite>* batch) {
    assert(can_start() && batch != nullptr);
    ++in_flight_;
    {
        std::lock_guard lock(mutex_);
        jobs_.push_back(Job{batch, std::nullopt});
    }
    job_started_.notify_one();
}

std::optional<Status> CommitThread::take_result() {
    if (!done()) return std::nullopt;
    uint64_t drained = 0;
    // Clears the readiness (EAGAIN when it was cleared already) before the
    // result is taken: a result posted since makes it readable again.
    [[maybe_unused]] ssize_t n = ::read(done_fd_, &drained, sizeof drained);
    std::optional<Status> out;
    {
        std::lock_guard lock(mutex_);
        assert(!jobs_.empty() && jobs_.front().result.has_value());
        out = std::move(jobs_.front().result);
        jobs_.pop_front();
        ++first_job_;
    }
    ++taken_;
    --in_flight_;
    return out;
}

Status CommitThread::wait() {
    assert(busy());
    {
        std::unique_lock lock(mutex_);
        result_ready_.wait(lock, [this] { return jobs_.front().result.has_value(); });
    }
    return *take_result();
}

void CommitThread::run() {
    // Named so that `top -H` and per-thread profiles tell it from the loop.
    ::pthread_setname_np(::pthread_self(), "kv-commit");
    for (;;) {
        std::unique_lock lock(mutex_);
        job_started_.wait(lock,
                          [this] { return stopping_ || next_pick_ < first_job_ + jobs_.size(); });
        if (next_pick_ >= first_job_ + jobs_.size()) return;  // stopping, nothing to pick
        const uint64_t number = next_pick_++;
        const std::vector<StoreWrite>* batch = jobs_[number - first_job_].batch;
        // The store appends in start order: a thread that picked a later job
        // first waits its turn.
        appended_.wait(lock, [&] { return next_append_ == number; });
        lock.unlock();
        Result<uint64_t> ticket = store_.append(*batch);
        lock.lock();
        ++next_append_;
        lock.unlock();
        appended_.notify_all();
        Status written = ticket ? store_.make_durable(ticket.value()) : ticket.status();
        lock.lock();
        jobs_[number - first_job_].result = std::move(written);
        uint64_t finished = finished_.load(std::memory_order_relaxed);
        while (finished < first_job_ + jobs_.size() && jobs_[finished - first_job_].result) {
            ++finished;
        }
        finished_.store(finished, std::memory_order_release);
        lock.unlock();
        result_ready_.notify_one();
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(done_fd_, &one, sizeof one);
    }
}

}  // namespace kv::node
