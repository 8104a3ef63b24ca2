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

CommitThread::CommitThread(Store& store) : store_(store) {
    done_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (done_fd_ < 0) {
        throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    }
    thread_ = std::thread([this] { run(); });
}

CommitThread::~CommitThread() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    ::close(done_fd_);
}

void CommitThread::start(const std::vector<StoreWrite>* batch) {
    assert(!busy_ && batch != nullptr);
    busy_ = true;
    {
        std::lock_guard lock(mutex_);
        job_ = batch;
        result_.reset();
    }
    wake_.notify_all();
}

std::optional<Status> CommitThread::take_result() {
    if (!busy_) return std::nullopt;
    std::optional<Status> out;
    {
        std::lock_guard lock(mutex_);
        if (!result_) return std::nullopt;
        out = std::move(result_);
        result_.reset();
    }
    uint64_t drained = 0;
    // Clears the readiness; EAGAIN when it was cleared already.
    [[maybe_unused]] ssize_t n = ::read(done_fd_, &drained, sizeof drained);
    busy_ = false;
    done_.store(false, std::memory_order_relaxed);
    return out;
}

Status CommitThread::wait() {
    assert(busy_);
    {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return result_.has_value(); });
    }
    return *take_result();
}

void CommitThread::run() {
    // Named so that `top -H` and per-thread profiles tell it from the loop.
    ::pthread_setname_np(::pthread_self(), "kv-commit");
    for (;;) {
        const std::vector<StoreWrite>* job = nullptr;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || job_ != nullptr; });
            if (job_ == nullptr) return;  // stopping, nothing in flight
            job = job_;
        }
        Status written = store_.write(*job);
        {
            std::lock_guard lock(mutex_);
            job_ = nullptr;
            result_ = std::move(written);
            done_.store(true, std::memory_order_release);
        }
        wake_.notify_all();
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(done_fd_, &one, sizeof one);
    }
}

}  // namespace kv::node
