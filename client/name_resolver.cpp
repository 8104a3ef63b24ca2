#include "client/name_resolver.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>

namespace kv::client {

// What the owner and the resolver's thread share; the last of the two to
// let go of it closes the eventfd, so the thread never writes to a
// descriptor the process may have reused.
struct NameResolver::Shared {
    Shared(int event_fd_, Lookup lookup_) : event_fd(event_fd_), lookup(std::move(lookup_)) {}
    ~Shared() { ::close(event_fd); }

    struct Job {
        uint64_t ticket;
        TcpEndpoint endpoint;
    };

    const int event_fd;
    const Lookup lookup;
    mutable std::mutex mutex;
    std::condition_variable wake;  // the thread waits on it for jobs
    std::deque<Job> jobs;          // under mutex
    std::vector<Answer> answers;   // under mutex
    std::set<uint64_t> cancelled;  // asked, not yet answered, and cancelled; under mutex
    uint64_t running = 0;          // the ticket being looked up (0: none); under mutex
    bool closed = false;           // the owner is gone; under mutex

    void signal() const {
        const uint64_t one = 1;
        // A full counter (never, at one a lookup) or EINTR: the next answer
        // signals again, and take() collects every answer at once.
        (void)!::write(event_fd, &one, sizeof one);
    }

    static void run(std::shared_ptr<Shared> self) {
        std::unique_lock lock(self->mutex);
        for (;;) {
            self->wake.wait(lock, [&] { return self->closed || !self->jobs.empty(); });
            if (self->closed) return;
            Job job = std::move(self->jobs.front());
            self->jobs.pop_front();
            self->running = job.ticket;
            lock.unlock();
            Result<std::vector<SocketAddress>> found = self->lookup(job.endpoint);
            lock.lock();
            self->running = 0;
            if (self->closed) return;
            if (self->cancelled.erase(job.ticket) > 0) continue;
            self->answers.push_back(Answer{job.ticket, std::move(found)});
            self->signal();
        }
    }
};

Result<std::unique_ptr<NameResolver>> NameResolver::make(Lookup lookup) {
    const int event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd < 0) {
        return Status(ErrorCode::connection, std::string("eventfd: ") + std::strerror(errno));
    }
    return std::unique_ptr<NameResolver>(
        new NameResolver(std::make_shared<Shared>(event_fd, std::move(lookup))));
}

NameResolver::NameResolver(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

NameResolver::~NameResolver() {
    std::lock_guard lock(shared_->mutex);
    shared_->closed = true;
    shared_->wake.notify_one();
}

int NameResolver::fd() const {
    return shared_->event_fd;
}

Result<uint64_t> NameResolver::ask(const TcpEndpoint& endpoint) {
    Shared& s = *shared_;
    if (!thread_started_) {
        try {
            std::thread(Shared::run, shared_).detach();
        } catch (const std::system_error& e) {
            return Status(ErrorCode::connection,
                          std::string("cannot start the name resolver's thread: ") + e.what());
        }
        thread_started_ = true;
    }
    std::lock_guard lock(s.mutex);
    const uint64_t ticket = ++tickets_issued_;
    s.jobs.push_back(Shared::Job{ticket, endpoint});
    s.wake.notify_one();
    return ticket;
}

void NameResolver::cancel(uint64_t ticket) {
    Shared& s = *shared_;
    std::lock_guard lock(s.mutex);
    const auto queued = std::find_if(s.jobs.begin(), s.jobs.end(),
                                     [&](const Shared::Job& j) { return j.ticket == ticket; });
    if (queued != s.jobs.end()) {
        s.jobs.erase(queued);
        return;
    }
    const auto answered = std::find_if(s.answers.begin(), s.answers.end(),
                                       [&](const Answer& a) { return a.ticket == ticket; });
    if (answered != s.answers.end()) {
        s.answers.erase(answered);
        if (s.answers.empty()) {
            uint64_t count = 0;
            (void)!::read(s.event_fd, &count, sizeof count);  // nothing waits now
        }
        return;
    }
    if (s.running == ticket) s.cancelled.insert(ticket);
}

std::vector<NameResolver::Answer> NameResolver::take() {
    Shared& s = *shared_;
    // The reset and the taking under the mutex the thread pushes and signals
    // under: fd() is readable exactly while answers wait, never after they
    // were taken (an answer landing between the two would leave it so).
    std::lock_guard lock(s.mutex);
    uint64_t count = 0;
    (void)!::read(s.event_fd, &count, sizeof count);
    std::vector<Answer> out;
    out.swap(s.answers);
    return out;
}

size_t NameResolver::pending() const {
    std::lock_guard lock(shared_->mutex);
    return shared_->jobs.size() + (shared_->running != 0 ? 1 : 0);
}

}  // namespace kv::client
