// The part of Env that both runtimes share: staged writes with read-through,
// and outgoing messages held back until the writes they depend on are durable.
// Subclasses supply the clock, randomness and logging.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "node/env.h"

namespace kv::node {

struct Outgoing {
    bool to_peer = false;
    std::string peer_id;   // when to_peer, unless endpoint is set
    std::string endpoint;  // when to_peer and addressed by endpoint (send_to_endpoint)
    ReplyTo reply_to;      // otherwise
    node::Message message;
    // From reply_after_writes(): the message depends on none of this node's
    // writes staged after this mark. Absent: on any staged before it left.
    std::optional<uint64_t> after_writes;
};

class BufferedEnv : public Env {
  public:
    explicit BufferedEnv(Store& store) : store_(store) {}

    Result<std::optional<std::string>> read(Space space, std::string_view key) override;
    void stage_write(StoreWrite write) override;
    Result<uint64_t> count(Space space) override { return store_.count(space); }
    Status scan(Space space, std::string_view from, size_t limit,
                const std::function<bool(std::string_view, std::string_view)>& visit) override;
    StoreOrder store_order() const override { return staged_.key_comp().order; }
    void send(const std::string& peer_id, node::Message message) override;
    void send_to_endpoint(const std::string& endpoint, node::Message message) override;
    void send_ahead(const std::string& peer_id, node::Message message) override;
    void reply(const ReplyTo& to, node::Message message) override;
    uint64_t writes_staged() const override { return writes_staged_; }
    uint64_t step_mark() const override { return step_mark_; }
    void reply_after_writes(const ReplyTo& to, node::Message message, uint64_t mark) override;

    // The messages sent with send_ahead() since the last call: the runtime
    // delivers them at once, before it commits what was staged with them.
    std::vector<Outgoing> take_ahead();
    // Commits every staged write in one transaction. On success returns the
    // messages to deliver, in the order they were sent (those sent ahead and
    // not yet taken first); on failure drops them all.
    Result<std::vector<Outgoing>> commit();
    bool has_pending() const { return !staged_.empty() || !outgoing_.empty() || !ahead_.empty(); }
    size_t staged_writes() const { return staged_.size(); }
    // Forgets staged writes and messages (a simulated crash).
    void discard();

    // Pipelined commits (the ZeroMQ runtime's writer, commit_thread.h):
    // begin_commit() takes the staged writes and every message sent so far
    // (those sent ahead and not yet taken included) as one batch; the caller
    // writes them to the store, on another thread, while the node goes on,
    // and once that write is durable ends the batch (end_commit()), which
    // hands back the messages to deliver. Until then a batch's writes stay
    // readable here (read and scan look at the writes staged since, then the
    // batches in flight, newest first, then the store), so the node sees its
    // own writes whatever the writer has reached. Batches may be begun while
    // others are in flight; they end in the order they began (end_commit()
    // ends the oldest). A batch's writes stay owned here (not copied, at an
    // address that does not change); the writer only reads them, as does
    // this thread, until their end_commit().
    const std::vector<StoreWrite>* begin_commit();
    // The messages that may go now, before the next commit begins:
    // - those of the handlers that ran before the first one that staged a
    //   write since the last batch began, which depend on nothing staged,
    //   only on what is durable and the batches in flight: at once when none
    //   is in flight, else they go with the newest (end_commit() hands them
    //   back), as they may reveal what one in flight wrote;
    // - those of reply_after_writes() whose writes are no longer staged: at
    //   once when those are durable, else with the batch in flight that
    //   holds the last of them.
    // The rest wait for the next batch. Handlers are told apart by
    // begin_handler(), which the runtime calls before it hands the node a
    // message or a tick; a handler may reply first and stage after, so a
    // message is held with the writes of its own handler.
    std::vector<Outgoing> take_sendable();
    // A vector of messages the runtime is done with: emptied, its buffer
    // takes the next ones, so that a turn does not grow its vectors of
    // messages from nothing (at most kSpareBuffers, each of at most
    // kSpareMessagesMax, are kept).
    void recycle(std::vector<Outgoing> spent);
    void begin_handler() {
        handler_start_ = outgoing_.size();
        step_mark_ = 0;
    }
    // The oldest batch in flight is durable: the messages that waited for it.
    std::vector<Outgoing> end_commit();
    bool committing() const { return !committing_.empty(); }
    size_t batches_in_flight() const { return committing_.size(); }

  private:
    // Every message not yet taken: those sent ahead first, then the others.
    std::vector<Outgoing> take_all_messages();
    // The messages of `from`, which gets a spare buffer in their place.
    std::vector<Outgoing> take_leaving_spare(std::vector<Outgoing>& from);
    // Where take_sendable() files a message: `now`, or with a batch in flight.
    void file_sendable(Outgoing&& message, std::vector<Outgoing>& now);
    // Keys ordered by space, then as the store orders them (StoreOrder), so
    // scans merge staged keys into the store's; looked up by (space,
    // string_view) as well, so a read or scan copies no key to find it.
    using KeyRef = std::pair<Space, std::string_view>;
    struct KeyOrder {
        using is_transparent = void;
        StoreOrder order;
        static KeyRef ref(const std::pair<Space, std::string>& k) { return {k.first, k.second}; }
        static KeyRef ref(const KeyRef& k) { return k; }
        template <class A, class B>
        bool operator()(const A& a, const B& b) const {
            const KeyRef x = ref(a), y = ref(b);
            return order.less(x.first, x.second, y.first, y.second);
        }
    };
    using Overlay = std::map<std::pair<Space, std::string>, std::optional<std::string>, KeyOrder>;
    // The write for (space, key) in a batch in flight, or null.
    const StoreWrite* committing_write(const std::vector<StoreWrite>& batch, Space space,
                                       std::string_view key) const;
    // The first write of a batch in flight at or after (space, key).
    std::vector<StoreWrite>::const_iterator committing_from(const std::vector<StoreWrite>& batch,
                                                            Space space,
                                                            std::string_view key) const;
    // The writes staged and in flight for one space from a key on, in
    // staged_'s order, each key once with its newest write (staged, then the
    // newest batch in flight): read where they are, not copied.
    class OverlayCursor {
      public:
        OverlayCursor(const BufferedEnv& env, Space space, std::string_view from);
        bool done() const { return key_ == nullptr; }
        std::string_view key() const { return *key_; }
        const std::optional<std::string>& value() const { return *value_; }
        void next();

      private:
        void settle();  // key_ and value_: the lowest key of every source, newest write
        const BufferedEnv& env_;
        Space space_;
        // Batches in flight, oldest first: each one's writes not yet passed.
        std::vector<std::pair<std::vector<StoreWrite>::const_iterator,
                              std::vector<StoreWrite>::const_iterator>>
            batches_;
        Overlay::const_iterator staged_;
        const std::string* key_ = nullptr;
        const std::optional<std::string>* value_ = nullptr;
    };
    Status scan_over(OverlayCursor overlay, Space space, std::string_view from, size_t limit,
                     const std::function<bool(std::string_view, std::string_view)>& visit);

    Store& store_;
    // Latest staged value per (space, key); std::map keeps commit order deterministic.
    Overlay staged_{KeyOrder{store_.order()}};
    // The batches begin_commit() handed out, oldest first, each until its
    // end_commit(): its writes in staged_'s order, so its keys are found by
    // binary search; the messages that wait for it; the writes_staged_ it
    // covers (those after the batch before it, up to this). A deque, so a
    // batch stays where the writer reads it while others are added and ended.
    struct InFlightBatch {
        std::vector<StoreWrite> writes;
        std::vector<Outgoing> out;
        uint64_t writes_through = 0;
    };
    std::deque<InFlightBatch> committing_;
    uint64_t writes_staged_ = 0;    // stage_write() calls, ever
    uint64_t begun_through_ = 0;    // of those, the last in a batch begun (or committed)
    uint64_t durable_through_ = 0;  // of those, the last in a batch durable
    // step_mark(): raised by reads and writes, reset by begin_handler() (a
    // runtime that never calls it only raises it: later, never wrong).
    uint64_t step_mark_ = 0;
    std::vector<Outgoing> outgoing_;
    std::vector<Outgoing> ahead_;  // send_ahead(), until take_ahead()
    static constexpr size_t kSpareBuffers = 4;
    static constexpr size_t kSpareMessagesMax = 512;
    std::vector<std::vector<Outgoing>> spares_;  // empty, with room (recycle())
    // handler_start_ when the first write was staged since the last batch
    // began (nullopt: none staged since).
    std::optional<size_t> first_write_at_;
    size_t handler_start_ = 0;  // outgoing_.size() when the running handler began
};

}  // namespace kv::node
