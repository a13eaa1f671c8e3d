// core/kernel/shard.hpp — the kernel's internals: one shard's state and the types it is made of.
//
// Private to core/ (the kernel's .cpp files include it; nothing outside core/ does). A shard is
// the part of the kernel one worker owns (see core/broker.hpp); its member functions are
// defined by part:
//   queue.cpp         publish to a queue, dispatch to its consumers, ack / nack, requeue
//   paging.cpp        persistent messages beyond a queue's memory limit, kept in the store only
//   topic.cpp         topic fan-out, retained messages, shared groups, subscription matching
//   subscription.cpp  subscribe / attach / pause / unsubscribe of queue and topic consumers
//   durable.cpp       durable topic subscriptions and their queues
//   dead_letter.cpp   dead-letter queues
//   shard.cpp         statistics
//   transaction.cpp   broker::commit (local transactions across shards)
//   temporary.cpp     temporary destinations and the connections that own them
//   credit.cpp        consumer credit: grant, set, drain
//   browse.cpp        queue browsers
//   groups.cpp        consumer choice on queues: message groups, exclusive consumers, priority
//   advisory.cpp      advisory topics (ActiveMQ.Advisory.*)
//   wildcard_queue.cpp  wildcard queue consumers (one consumer in every matching queue)
//   selective.cpp     message selectors: queue dispatch past unselected messages, topic filtering
// and core/broker.cpp holds the public broker:: methods, which post work to the shards.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/broker.hpp"
#include "core/destination/subscription_index.hpp"
#include "core/kernel/groups.hpp"

namespace sb::core {

namespace kernel {

constexpr unsigned tag_shard_shift = 56;
constexpr std::size_t priority_levels = 10;
// Paging in: ids asked of the store per load() call, and bytes read per round at most.
constexpr std::size_t page_in_ids = 256;
constexpr std::size_t page_in_bytes = std::size_t{4} << 20;

inline std::shared_ptr<spdlog::logger> log() {
    static auto l = [] {
        auto existing = spdlog::get("core");
        return existing ? existing : spdlog::default_logger()->clone("core");
    }();
    return l;
}

inline std::size_t level_of(const message& m) noexcept { return std::min<std::size_t>(m.priority, priority_levels - 1); }

struct entry {
    message_ptr msg;
    std::uint32_t redeliveries = 0;
    bool retained = false;
    // Its group was assigned to a consumer with it (JMSXGroupFirstForConsumer); like ActiveMQ's
    // flag on the message, it stays set for its redeliveries.
    bool group_first = false;
};

struct queue_state;

struct inflight_entry {
    delivery_tag tag = 0;
    entry e;
    bool settled = false;
    queue_state* from = nullptr;      // queue deliveries: the queue it came from (it goes back there)
};

// A browser's snapshot of its queue (broker::browse), in dispatch order. Paged-out messages are
// ids until the cursor reaches them, then loaded from the store.
struct browse_item {
    message_ptr msg;                  // null: paged out (load `id`), or `gone`
    message_id id = 0;
    std::uint32_t redeliveries = 0;
    bool gone = false;                // paged out and no longer in the store: skipped
};

struct browse_cursor {
    std::string queue;
    std::vector<browse_item> items;
    std::size_t next = 0;
    bool ended = false;               // on_browse_end was posted
};

// One subscriber's subscriptions on one shard (subscribe_options::subscriber): the publish it
// last took, so that it takes each only once. Shared by its consumers and durable
// subscriptions there, and gone with the last of them.
struct subscriber_mark {
    std::uint64_t last = 0;
    std::size_t refs = 0;
};

// One consumer as one shard sees it. Queue consumers live on the queue's shard only; topic
// subscriptions have a copy on every shard.
struct consumer_state {
    consumer_id id = 0;
    executor* home = nullptr;
    std::weak_ptr<consumer_sink> sink;
    // Credit (credit_mode): `credit` is what may be dispatched now. Window: prefetch - unsettled
    // (below 0 while a lowered window still has more in flight); link: what grants left.
    std::int64_t credit = 0;
    std::uint32_t prefetch = 0;       // the window (window mode)
    bool window = true;               // credit_mode::window: settling gives credit back
    // A link credit topic subscription's copies on other shards forward what they match here.
    std::size_t credit_shard = 0;
    bool no_local = false;
    std::uint64_t connection = 0;
    destination dest;                 // queue name, or topic pattern
    bool wildcard = false;
    queue_state* queue = nullptr;     // queue consumers
    std::deque<inflight_entry> inflight;   // delivery order; tags ascend
    std::uint32_t unsettled = 0;
    bool paused = false;              // broker::pause: its sink takes nothing more for now
    std::deque<entry> pending;        // topic subscriptions: waiting for credit
    std::size_t max_pending = 0;
    std::string share_key;            // shared subscriptions: group + filter
    std::uint64_t subscriber = 0;     // subscribe_options::subscriber
    subscriber_mark* mark = nullptr;  // its mark on this shard (topic subscriptions with a subscriber)
    // Topic producer flow control: publish completions held while this subscriber is
    // congested, released once it drains (so publishers slow down instead of losing messages).
    std::vector<std::function<void(publish_status)>> held_replies;
    std::unique_ptr<browse_cursor> browse;   // browsers only
    // Queue consumers: consumer choice (groups.cpp, subscribe_options::exclusive / priority).
    bool exclusive = false;
    std::int8_t priority = 0;
    std::uint32_t groups = 0;         // message groups assigned to it (ActiveMQ's count)
    // A wildcard queue consumer (a queue pattern such as "a.>"): the queues of this shard it is a
    // consumer of (`queue` stays null); set on every shard, empty where none matches yet.
    std::unique_ptr<std::vector<queue_state*>> wild_queues;
    // Selectors (selective.cpp): null = every message. `awaited`: a queue message this consumer
    // selects may be waiting for its credit (see selective_queue).
    selector_ptr selector;
    bool awaited = false;

    // Congested: an attached subscriber whose backlog passed half its limit. A detached one
    // (a persistent session offline) never holds producers: it drops its oldest instead; nor
    // does a paused one (its connection does not take its output): one stalled subscriber
    // must not stop a topic's publishers and its other subscribers.
    // A link credit subscription holds none either: its credit is the client's to give.
    bool congested() const noexcept {
        return pending.size() >= std::max<std::size_t>(1, max_pending / 2) && !paused && window && !sink.expired();
    }

    // A detached consumer (a persistent session offline) takes no deliveries: messages wait in
    // `pending` and are first deliveries (not redeliveries) when it is attached again.
    bool has_credit() const noexcept { return credit > 0 && !paused && !sink.expired(); }
};

struct counters {
    std::uint64_t enqueued = 0, dequeued = 0, dead_lettered = 0, expired = 0, dropped = 0;
};

struct held_publish {
    message_ptr msg;
    std::function<void(publish_status)> reply;
    bool stored = false;   // already in the store (a committed transaction's send)
};

// A queue with a consumer that has a selector (selective.cpp). Messages stay in ready[], in
// order; ready[p][0 .. waiting[p]) were looked at and no consumer with credit selected them.
// Dispatch goes on from waiting[p], and looks at the waiting ones again only for a consumer that
// is `awaited` and has credit now (a new one, or one that had none), so a message nobody selects
// costs nothing per dispatch and never holds up those behind it.
struct selective_queue {
    std::array<std::size_t, priority_levels> waiting{};
    std::size_t waiting_total = 0;             // the sum of waiting[]
    std::uint64_t epoch = ~std::uint64_t{0};   // queue_state::front_epoch that `waiting` counts from
    std::size_t selectors = 0;                 // consumers with a selector
};

struct queue_state {
    std::string name;
    std::array<std::deque<entry>, priority_levels> ready;  // index = priority
    std::size_t ready_count = 0;
    // Paged out: persistent messages whose body is only in the store (beyond the memory
    // limit), by priority. Every id in paged[p] is newer than every entry in ready[p], so
    // loading from the front of paged[p] onto the back of ready[p] keeps FIFO order.
    std::array<std::deque<message_id>, priority_levels> paged;
    std::size_t paged_count = 0;
    std::vector<consumer_state*> consumers;
    std::size_t next_consumer = 0;
    std::size_t memory = 0;
    std::size_t inflight = 0;
    std::deque<held_publish> held;    // producer flow control: over the memory limit
    std::size_t max_depth = 0;        // > 0: the oldest ready messages are dropped beyond it
    bool temporary = false;           // a temporary queue (no store, no dead letter queue)
    // settle_outcome modified{undeliverable_here}: message -> consumers never to be sent it
    // again. Empty on the fast path; an entry goes with its message.
    std::unordered_map<message_id, std::vector<consumer_id>> refused;
    // Groups, exclusive consumers, priorities (groups.cpp); null: plain round robin.
    std::unique_ptr<consumer_choice> choice;
    counters stats;
    // Selectors: set while a consumer with a selector is on the queue. front_epoch counts
    // changes at the head of ready[] (a push_front or pop), which void selective->waiting.
    std::unique_ptr<selective_queue> selective;
    std::uint64_t front_epoch = 0;

    void push_back(entry e) {
        auto& level = ready[level_of(*e.msg)];
        level.push_back(std::move(e));
        ++ready_count;
    }
    void push_front(entry e) {
        auto& level = ready[level_of(*e.msg)];
        level.push_front(std::move(e));
        ++ready_count;
        ++front_epoch;
    }
    // The highest priority level holding a message in memory / paged out; -1 when none.
    int top_ready() const noexcept {
        for (std::size_t p = priority_levels; p-- > 0;)
            if (!ready[p].empty()) return int(p);
        return -1;
    }
    int top_paged() const noexcept {
        for (std::size_t p = priority_levels; p-- > 0;)
            if (!paged[p].empty()) return int(p);
        return -1;
    }

    entry pop() {
        for (std::size_t p = priority_levels; p-- > 0;) {
            if (ready[p].empty()) continue;
            entry e = std::move(ready[p].front());
            ready[p].pop_front();
            --ready_count;
            ++front_epoch;
            return e;
        }
        assert(false && "pop on an empty queue");
        return {};
    }
};

// A durable subscription as every shard sees it: its filter and the queue it feeds.
struct durable_state {
    destination filter;
    std::string queue;
    std::uint64_t subscriber = 0;     // subscribe_options::subscriber (0 until subscribed again after a restart)
    subscriber_mark* mark = nullptr;
    selector_ptr selector;            // only selected messages enter its queue
    bool virtual_queue = false;       // sched: a virtual topic's consumer queue (gets a copy addressed to it)
};

// Completes a publish once each of its parts (the topic fan-out and one enqueue per durable
// subscription) is done; parts finish on different workers.
struct publish_join {
    std::atomic<std::size_t> left;
    std::atomic<bool> failed{false};
    std::function<void(publish_status)> reply;
    void part(publish_status s) {
        if (s != publish_status::ok) failed = true;
        if (left.fetch_sub(1) == 1 && reply) reply(failed ? publish_status::store_failed : publish_status::ok);
    }
};

// Completes a broker::settle once every shard applied its part and what they wrote to the
// store is durable. Each part takes a unit (add) before it starts and gives it back (part); the
// caller holds one unit until everything was started, so `left` reaches 0 only at the end.
struct settle_join {
    std::atomic<std::size_t> left{1};
    std::function<void()> done;   // posts the caller's completion to its worker
    void add() noexcept { left.fetch_add(1); }
    void part() {
        if (left.fetch_sub(1) == 1 && done) done();
    }
};

// A temporary destination on the shard that owns its name (broker::create_temporary). Its
// consumers are all of the owner connection; they live on this shard only.
struct temporary_state {
    std::uint64_t owner = 0;                 // the connection that created it
    dest_kind kind = dest_kind::temp_queue;
    std::unique_ptr<queue_state> queue;      // temp_queue
    counters topic;                          // temp_topic
    std::vector<consumer_state*> subs;       // temp_topic: its subscriptions
};

// A shared subscription group (MQTT $share/<group>/<filter>) on one shard.
struct share_group {
    std::string filter;
    std::vector<consumer_state*> members;
    std::size_t next = 0;
};

// ---- helpers of the public methods -----------------------------------------------------------

// Wraps `done` so that it runs on `home`, whichever thread calls the wrapper.
template <typename... Args>
std::function<void(Args...)> on_home(executor* home, std::function<void(Args...)> done) {
    if (!done) return {};
    return [home, done = std::move(done)](Args... args) mutable {
        home->post([done = std::move(done), args...]() mutable { done(args...); });
    };
}

inline executor& calling_worker() {
    executor* e = executor::current();
    assert(e && "kernel calls are made on a worker thread");
    return *e;
}

// Runs `done` on `home` after `n` shards have each called the returned function.
inline std::function<void()> countdown(std::size_t n, executor* home, std::function<void()> done) {
    auto left = std::make_shared<std::atomic<std::size_t>>(n);
    return [left, home, done = std::move(done)]() {
        if (left->fetch_sub(1) == 1 && done) home->post(done);
    };
}

}  // namespace kernel

struct broker::shard {
    using entry = kernel::entry;
    using inflight_entry = kernel::inflight_entry;
    using subscriber_mark = kernel::subscriber_mark;
    using consumer_state = kernel::consumer_state;
    using counters = kernel::counters;
    using queue_state = kernel::queue_state;
    using durable_state = kernel::durable_state;
    using share_group = kernel::share_group;
    using temporary_state = kernel::temporary_state;

    broker& owner;
    executor& exec;
    std::size_t index;
    delivery_tag next_tag;

    std::unordered_map<std::string, std::unique_ptr<queue_state>> queues;
    std::unordered_map<consumer_id, std::unique_ptr<consumer_state>> consumers;
    // Last references of messages of other workers, dropped by release() and sent home by
    // send_home() (message_home): one batch per worker.
    std::vector<std::pair<executor*, std::vector<message_ptr>>> homeward;
    // Topic subscriptions: exact names in a map, wildcard filters in a trie (a publish walks
    // only the branches its name can take, however many other subscriptions there are).
    std::unordered_map<std::string, std::vector<consumer_state*>> exact_subs;
    subscription_index<consumer_state*> wildcard_subs;
    std::unordered_map<std::string, counters> topics;
    std::unordered_map<std::string, message_ptr> retained;        // topics owned by this shard
    // Shared groups and durable subscriptions: node-based maps (the tries point into them),
    // exact or wildcard filters alike in a trie.
    std::unordered_map<std::string, share_group> shares;          // key: group '\x1f' filter
    subscription_index<share_group*> share_filters;
    std::unordered_map<std::string, durable_state> durables;      // by name, on every shard
    subscription_index<const durable_state*> durable_filters;
    // Scratch of publish_topic / match_durables, reused so that a publish allocates nothing.
    std::vector<consumer_state*> matched_subs;
    std::vector<share_group*> matched_groups;
    std::vector<const durable_state*> matched_durables;
    std::unordered_map<std::uint64_t, subscriber_mark> subscribers;   // node-based: marks stay put
    std::uint64_t topic_publishes = 0;                            // the current one, for subscriber_mark::last
    // Wildcard queue consumers, by pattern: a new queue whose name matches gets them.
    subscription_index<consumer_state*> queue_wildcards;
    // Temporary destinations whose names this shard owns. Separate from `queues` and `topics`:
    // a temporary destination is not the queue or topic of the same name.
    std::unordered_map<std::string, temporary_state> temporaries;
    // Producers (broker::add_producer) of the destinations this shard owns, kept for their
    // advisories only; their count per producer advisory topic.
    struct producer_state {
        std::uint64_t connection = 0;
        destination dest;
    };
    std::unordered_map<producer_id, producer_state> producers;
    std::unordered_map<std::string, std::uint32_t> producer_counts;
    counters gone_topic;   // counts for a temporary topic no longer there (never read)

    shard(broker& b, executor& e, std::size_t i)
        : owner(b), exec(e), index(i), next_tag((delivery_tag(i) << kernel::tag_shard_shift) + 1) {}

    const broker_settings& settings() const noexcept { return owner.settings_; }

    queue_state& queue(const std::string& name) {
        auto& q = queues[name];
        if (!q) {
            q = std::make_unique<queue_state>();
            q->name = name;
            if (!queue_wildcards.empty()) join_wildcards(*q);
        }
        return *q;
    }

    // ---- queues (queue.cpp) ----------------------------------------------------------------
    void publish(message_ptr msg, std::function<void(publish_status)> reply);
    // Enqueue on queue `name` (a message's own queue, or a durable subscription's).
    // `stored`: the store already holds it on this queue (a committed transaction's send).
    void publish_queue(const std::string& name, message_ptr msg, std::function<void(publish_status)> reply,
                       bool as_retained = false, bool stored = false);
    void enqueue(queue_state& q, message_ptr msg, std::function<void(publish_status)> reply, bool as_retained = false,
                 bool stored = false);
    void release_held(queue_state& q);
    consumer_state* next_with_credit(queue_state& q);
    void dispatch(queue_state& q);
    // The message leaves the queue for good (acked, expired, dead-lettered).
    // With `into`, the store's remove is collected there (a transaction's) instead of made.
    void forget(queue_state& q, const message_ptr& msg, std::vector<store_transaction::remove_op>* into = nullptr);
    inflight_entry* find_inflight(consumer_state& c, delivery_tag tag);
    void settle(consumer_state& c, inflight_entry& f);
    void trim(consumer_state& c);
    // Returns whether a persistent message was removed from the store. With `into` (a
    // transaction's acks), the removes are collected there for one store transaction.
    bool ack(consumer_id id, const std::vector<delivery_tag>& tags,
             std::vector<store_transaction::remove_op>* into = nullptr);
    // Drops `m`; its last reference, of a message another worker allocated, is kept for
    // send_home() instead (message_home).
    void release(message_ptr& m);
    // Posts what release() kept to the workers it came from.
    void send_home();
    void nack(consumer_id id, const std::vector<delivery_tag>& tags);
    // Any outcome but accepted (broker::settle). `join` (optional) gets a unit for each store
    // write or dead-letter copy it must wait for.
    void settle_with(consumer_id id, const std::vector<delivery_tag>& tags, const settle_outcome& o,
                     const std::shared_ptr<kernel::settle_join>& join);
    void after_settle(consumer_state& c);
    // Puts `back` (in delivery order) at the head of the queue, each counted as a redelivery
    // when `counted` (dead-lettered past max_redeliveries).
    void requeue(queue_state& q, std::vector<entry> back, bool counted = true,
                 const std::shared_ptr<kernel::settle_join>& join = {});
    // The next consumer with credit that has not refused the message (modified
    // undeliverable_here): `first` if it has not, else another; null when none.
    consumer_state* allowed_with_credit(queue_state& q, consumer_state& first, const std::vector<consumer_id>& refusers);

    // ---- consumer choice (groups.cpp) ------------------------------------------------------
    // A queue consumer joins / leaves q.consumers (its groups are forgotten, the exclusive
    // consumer chosen again); the caller requeues and dispatches.
    void add_queue_consumer(queue_state& q, consumer_state& c, const subscribe_options& opt);
    void remove_queue_consumer(queue_state& q, consumer_state& c);
    // Turns q's consumer choice on (it stays on): the consumers in ActiveMQ's order, from
    // `in_turn` (the round robin's next; null: q.next_consumer).
    void start_choice(queue_state& q, const consumer_state* in_turn = nullptr);
    // dispatch() of a queue with a consumer_choice.
    void dispatch_chosen(queue_state& q);
    // The consumer that takes `e` now, null when none may (see groups.hpp).
    consumer_state* choose(queue_state& q, const entry& e);
    // After `c` was chosen for `e`: the group's bookkeeping (e.group_first when assigned).
    void take_group(queue_state& q, consumer_state& c, entry& e);
    // `c` moves behind the others of its rank (round robin), unless exclusive.
    void rotate(queue_state& q, consumer_state& c);

    // ---- advisory topics (advisory.cpp) ----------------------------------------------------
    // Each publishes its advisory (when broker_settings::advisories and a subscription matches
    // the advisory topic): a consumer came or went (on the queue's shard, or for a topic
    // subscription on the topic's shard), a temporary destination was created or deleted, a
    // queue message expired or was dead-lettered (`what`: "Expired", "MessageDLQd").
    void advise_consumer(const consumer_state& c, bool added);
    void advise_temporary(const destination& d, std::uint64_t connection, bool added);
    void advise_message(std::string_view what, const queue_state& q, const message& m);
    static bool advisory_topic(const destination& d) noexcept;
    bool watched(const std::string& topic);
    void advise(std::string topic, std::string body, std::vector<property> props);
    message_ptr advisory(std::string topic, std::string body, std::vector<property> props);
    std::int32_t consumer_count(const consumer_state& c) const;
    std::string temporary_info(const destination& d, std::uint64_t connection, bool added) const;
    // Producers (broker::add_producer), on their destination's shard: kept, and advised.
    void add_producer(std::uint64_t connection, producer_id id, const destination& dest);
    void remove_producer(producer_id id);
    // A new subscription `sub` to an advisory topic (this shard's copy of it) is sent what this
    // shard knows that such a watcher would have been advised of, as ActiveMQ replays it: the
    // consumers (Consumer.*), producers (Producer.*) or temporary destinations (TempQueue,
    // TempTopic) that exist, each advisory to `sub` alone, where its filter matches its topic.
    void replay_advisories(consumer_state& sub);

    // ---- credit (credit.cpp) ---------------------------------------------------------------
    // Whether this copy of a link credit topic subscription forwards to its credit shard.
    bool forwards(const consumer_state& c) const noexcept {
        return !c.window && !c.queue && !c.browse && !c.wild_queues && c.credit_shard != index;
    }
    void add_credit(consumer_id id, std::uint32_t n, bool set);
    drain_result drain(consumer_id id);

    // ---- browsing (browse.cpp) -------------------------------------------------------------
    void browse(consumer_id id, const destination& dest, const subscribe_options& opt,
                const std::weak_ptr<consumer_sink>& sink, executor* home);
    // Sends the browser what its credit allows; the end marker once the snapshot is done.
    void advance_browse(consumer_state& c);

    // ---- paging (paging.cpp) ---------------------------------------------------------------
    // A persistent message beyond the memory limit stays in the store only (when the store
    // can load it back), rather than holding its producer; so does one behind paged-out
    // messages of its priority, to keep their order. Non-persistent messages are not paged:
    // they hold producers beyond the limit, and may overtake paged-out persistent ones (JMS
    // leaves the order across delivery modes open).
    bool pages_out(const queue_state& q, const message& m, bool as_retained) const noexcept;
    void page_out(queue_state& q, message_ptr msg, std::function<void(publish_status)> reply, bool stored);
    // Whether paged-out messages should come back now: the queue has nothing else to deliver,
    // is below half its memory limit, or a paged-out message outranks every one in memory.
    bool wants_page_in(const queue_state& q) const noexcept;
    // Loads paged-out messages back (highest priority first, oldest first) until the queue is
    // at its memory limit or page_in_bytes were read; at least one id leaves `paged`.
    void page_in(queue_state& q);
    // A queue with a depth cap (an offline MQTT session's) keeps the newest, like mosquitto's
    // max_queued_messages, rather than holding every producer of the topic.
    void trim_depth(queue_state& q);
    // Forgets the oldest message of the lowest priority present, in memory or paged out.
    void drop_oldest(queue_state& q);

    // ---- topics (topic.cpp) ----------------------------------------------------------------
    // `matched` (optional) gets the number of subscriptions offered the message, before
    // `reply` can run. `durables_done`: the durable subscriptions' copies are taken care of by
    // the caller (a committed transaction stored and enqueues them itself).
    void publish_topic(message_ptr msg, std::function<void(publish_status)> reply, std::size_t* matched = nullptr,
                       bool durables_done = false);
    // The durable subscriptions whose filter matches topic `name`, in the order they were
    // registered, that take this publish (first_for: one per subscriber), in matched_durables.
    const std::vector<const durable_state*>& match_durables(const std::string& name);
    // match_durables(msg.dest.name) less those whose selector does not select `msg`.
    const std::vector<const durable_state*>& match_durables(const message& msg);
    subscriber_mark* mark(std::uint64_t subscriber);
    void unmark(std::uint64_t subscriber, subscriber_mark* m);
    consumer_state* offer_once(consumer_state& sub, counters& c, const message_ptr& msg);
    // One member of the group gets it: the next with credit, else the next in turn buffers it.
    consumer_state* offer_shared(share_group& g, counters& c, const message_ptr& msg);
    // Returns the subscriber when it is congested (the publisher should wait for it).
    consumer_state* offer(consumer_state& sub, counters& c, const message_ptr& msg);
    // A link credit subscription takes a matched message: on its credit shard, delivered or
    // kept in its backlog (the oldest dropped beyond max_pending); elsewhere forwarded there.
    void take(consumer_state& sub, entry e);
    void take_forwarded(consumer_id id, entry e);
    void drain_pending(consumer_state& sub);
    static void release_replies(consumer_state& sub);
    void send_retained(consumer_state& c);
    // Whether the subscriber (if any) has not taken the message being published yet; it has now.
    bool first_for(subscriber_mark* m) noexcept;
    // No Local: a subscriber never gets what its own connection published.
    static bool skips(const consumer_state& sub, const message& msg) noexcept;
    // `from`: the queue a queue delivery comes from (settling it acts there).
    void deliver(consumer_state& c, entry e, queue_state* from = nullptr);
    // A consumer whose sink is gone (a persistent session offline) keeps the delivery in flight;
    // attach() sends it again.
    static void post_delivery(const consumer_state& c, delivery d);

    // ---- subscriptions (subscription.cpp) --------------------------------------------------
    // A new consumer in `consumers`, registered nowhere yet.
    consumer_state& add_consumer(consumer_id id, const destination& dest, const subscribe_options& opt,
                                 const std::weak_ptr<consumer_sink>& sink, executor* home);
    void subscribe(consumer_id id, const destination& dest, const subscribe_options& opt,
                   const std::weak_ptr<consumer_sink>& sink, executor* home);
    void attach(consumer_id id, const std::weak_ptr<consumer_sink>& sink, executor* home);
    void set_paused(consumer_id id, bool paused);
    void unsubscribe(consumer_id id);

    // ---- durable subscriptions (durable.cpp) -----------------------------------------------
    // Returns whether the subscription existed with another selector (it is then a new one).
    bool register_durable(const std::string& name, const destination& filter, std::uint64_t subscriber = 0,
                          selector_ptr selector = {});
    void forget_durable(const std::string& name);
    // A new durable subscription that wants retained messages gets this shard's matching ones
    // as its first queued messages (marked retained).
    void copy_retained(const std::string& queue_name, const destination& filter);
    // On the durable queue's shard: the queue and what it holds go.
    void drop_durable_queue(const std::string& queue_name);

    // ---- dead letters (dead_letter.cpp) ----------------------------------------------------
    std::string dlq_for(const std::string& queue_name) const;
    // `reason` (rejected): kept on the copy as dlq_failure_cause_property. `join` (optional):
    // a unit until the removal and the copy are durable.
    void dead_letter(queue_state& q, entry e, std::string_view reason = {},
                     const std::shared_ptr<kernel::settle_join>& join = {});

    // ---- wildcard queue consumers (wildcard_queue.cpp) --------------------------------------
    // Whether a queue pattern can match queue `name` (kernel-internal queues, "$...", never).
    static bool wildcard_may_match(std::string_view pattern, std::string_view name) noexcept;
    // The new consumer `c` (pattern c.dest.name) joins every matching queue of this shard, now
    // and as they are created.
    void subscribe_wildcard_queue(consumer_state& c);
    // A new queue gets the wildcard consumers whose pattern matches it.
    void join_wildcards(queue_state& q);
    // `c` leaves its queues (its unsettled deliveries go back to theirs, counted as redelivered).
    void unsubscribe_wildcard_queue(consumer_state& c);
    // Dispatches the queues of `c` (after its credit came back), starting after the last one.
    void dispatch_wildcard(consumer_state& c);

    // ---- sched: virtual topics (virtual.cpp), dead-letter policies (dead_letter.cpp) ---------
    void register_virtual(const std::string& queue, const std::string& topic);
    // What a durable subscription's queue gets of `msg`: the message itself, or for a virtual
    // topic's consumer queue a copy addressed to that queue.
    static message_ptr copy_for(const durable_state& d, const message_ptr& msg);
    const dead_letter_rule& dead_letter_rule_for(const std::string& queue_name) const;
    bool is_dead_letter_queue(const std::string& queue_name) const;
    // An expired message leaves `q`: to its DLQ (process_expired), else dropped.
    void expire(queue_state& q, entry e);
    // dead_letter without its counting and advisory: the message leaves `q` for its DLQ (if it
    // has one and the policy takes it).
    void to_dead_letter_queue(queue_state& q, entry e, std::string_view reason,
                              const std::shared_ptr<kernel::settle_join>& join);

    // ---- temporary destinations (temporary.cpp) --------------------------------------------
    void create_temporary(const destination& d, std::uint64_t connection);
    // Deletes it with what it holds, and its consumers (their deliveries in flight too).
    void drop_temporary(const std::string& name);
    // A publish to a temporary destination (msg->dest.is_temporary()); no_destination when it
    // does not exist. Persistent messages are taken as non-persistent.
    void publish_temporary(message_ptr msg, std::function<void(publish_status)> reply,
                           std::size_t* matched = nullptr);
    subscribe_status subscribe_temporary(consumer_id id, const destination& dest, const subscribe_options& opt,
                                         const std::weak_ptr<consumer_sink>& sink, executor* home);
    // The counters of topic `d`, a temporary one's included.
    counters& topic_counters(const destination& d) {
        if (!d.is_temporary()) return topics[d.name];
        auto it = temporaries.find(d.name);
        return it == temporaries.end() ? gone_topic : it->second.topic;
    }

    // ---- selectors (selective.cpp) ---------------------------------------------------------
    // Whether consumer `c` takes `msg` (no selector: yes).
    bool selects(const consumer_state& c, const message& msg, std::uint32_t redeliveries = 0) const noexcept;
    bool selects(const selector_ptr& s, const message& msg, std::uint32_t redeliveries = 0) const noexcept;
    // A queue consumer joins / leaves queue `q` (its selective state begins and ends here).
    void selective_joined(queue_state& q, consumer_state& c);
    void selective_left(queue_state& q, consumer_state& c);
    // dispatch() of a queue with selective state.
    void dispatch_selective(queue_state& q);
    // The next consumer (round robin) with credit that selects `e` and has not refused it; with
    // `awaited_only`, among the awaited ones only.
    consumer_state* choose_selecting(queue_state& q, const entry& e, bool awaited_only);

    // ---- statistics (shard.cpp) ------------------------------------------------------------
    void collect(std::vector<destination_stats>& out) const;
};

// ---- the hot path, inline: every delivery of every part goes through it ----------------------

// Whether the subscriber (if any) has not taken the message being published yet; it has now.
inline bool broker::shard::first_for(subscriber_mark* m) noexcept {
    if (!m) return true;
    if (m->last == topic_publishes) return false;
    m->last = topic_publishes;
    return true;
}

// No Local: a subscriber never gets what its own connection published.
inline bool broker::shard::skips(const consumer_state& sub, const message& msg) noexcept {
    return sub.no_local && msg.origin_connection != 0 && msg.origin_connection == sub.connection;
}

inline void broker::shard::deliver(consumer_state& c, entry e, queue_state* from) {
    const delivery_tag tag = next_tag++;
    delivery d{e.msg, tag, e.redeliveries, e.retained, e.group_first};
    c.inflight.push_back(inflight_entry{tag, std::move(e), false, from});
    ++c.unsettled;
    --c.credit;
    if (from) ++from->inflight;
    post_delivery(c, std::move(d));
}

// A consumer whose sink is gone (a persistent session offline) keeps the delivery in flight;
// attach() sends it again.
inline void broker::shard::post_delivery(const consumer_state& c, delivery d) {
    c.home->post([sink = c.sink, id = c.id, d = std::move(d)]() mutable {
        if (auto s = sink.lock()) s->on_delivery(id, std::move(d));
    });
}

}  // namespace sb::core
