// core/broker.cpp — kernel shards: queue dispatch, topic fan-out, acks, redelivery and DLQ.
#include "core/broker.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <deque>
#include <mutex>
#include <unordered_map>

#include <spdlog/spdlog.h>

namespace sb::core {

namespace {

constexpr unsigned tag_shard_shift = 56;
constexpr std::size_t priority_levels = 10;
// Paging in: ids asked of the store per load() call, and bytes read per round at most.
constexpr std::size_t page_in_ids = 256;
constexpr std::size_t page_in_bytes = std::size_t{4} << 20;

std::shared_ptr<spdlog::logger> log() {
    static auto l = [] {
        auto existing = spdlog::get("core");
        return existing ? existing : spdlog::default_logger()->clone("core");
    }();
    return l;
}

std::size_t level_of(const message& m) noexcept { return std::min<std::size_t>(m.priority, priority_levels - 1); }

struct entry {
    message_ptr msg;
    std::uint32_t redeliveries = 0;
    bool retained = false;
};

struct inflight_entry {
    delivery_tag tag = 0;
    entry e;
    bool settled = false;
};

struct queue_state;

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
    std::uint32_t prefetch = 0;
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

    // Congested: an attached subscriber whose backlog passed half its limit. A detached one
    // (a persistent session offline) never holds producers: it drops its oldest instead; nor
    // does a paused one (its connection does not take its output): one stalled subscriber
    // must not stop a topic's publishers and its other subscribers.
    bool congested() const noexcept {
        return pending.size() >= std::max<std::size_t>(1, max_pending / 2) && !paused && !sink.expired();
    }

    // A detached consumer (a persistent session offline) takes no deliveries: messages wait in
    // `pending` and are first deliveries (not redeliveries) when it is attached again.
    bool has_credit() const noexcept { return unsettled < prefetch && !paused && !sink.expired(); }
};

struct counters {
    std::uint64_t enqueued = 0, dequeued = 0, dead_lettered = 0, expired = 0, dropped = 0;
};

struct held_publish {
    message_ptr msg;
    std::function<void(publish_status)> reply;
    bool stored = false;   // already in the store (a committed transaction's send)
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
    counters stats;

    void push_back(entry e) {
        auto& level = ready[level_of(*e.msg)];
        level.push_back(std::move(e));
        ++ready_count;
    }
    void push_front(entry e) {
        auto& level = ready[level_of(*e.msg)];
        level.push_front(std::move(e));
        ++ready_count;
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
            return e;
        }
        assert(false && "pop on an empty queue");
        return {};
    }
};

}  // namespace

// A durable subscription as every shard sees it: its filter and the queue it feeds.
struct durable_state {
    destination filter;
    std::string queue;
    std::uint64_t subscriber = 0;     // subscribe_options::subscriber (0 until subscribed again after a restart)
    subscriber_mark* mark = nullptr;
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

// A shared subscription group (MQTT $share/<group>/<filter>) on one shard.
struct share_group {
    std::string filter;
    std::vector<consumer_state*> members;
    std::size_t next = 0;
};

struct broker::shard {
    broker& owner;
    executor& exec;
    std::size_t index;
    delivery_tag next_tag;

    std::unordered_map<std::string, std::unique_ptr<queue_state>> queues;
    std::unordered_map<consumer_id, std::unique_ptr<consumer_state>> consumers;
    // Topic subscriptions: exact names in a map, wildcard patterns in a list.
    std::unordered_map<std::string, std::vector<consumer_state*>> exact_subs;
    std::vector<consumer_state*> wildcard_subs;
    std::unordered_map<std::string, counters> topics;
    std::unordered_map<std::string, message_ptr> retained;        // topics owned by this shard
    std::unordered_map<std::string, share_group> shares;          // key: group '\x1f' filter
    std::unordered_map<std::string, durable_state> durables;      // by name, on every shard
    std::unordered_map<std::uint64_t, subscriber_mark> subscribers;   // node-based: marks stay put
    std::uint64_t topic_publishes = 0;                            // the current one, for subscriber_mark::last

    shard(broker& b, executor& e, std::size_t i)
        : owner(b), exec(e), index(i), next_tag((delivery_tag(i) << tag_shard_shift) + 1) {}

    const broker_settings& settings() const noexcept { return owner.settings_; }

    queue_state& queue(const std::string& name) {
        auto& q = queues[name];
        if (!q) {
            q = std::make_unique<queue_state>();
            q->name = name;
        }
        return *q;
    }

    // ---- publish -------------------------------------------------------------------------

    void publish(message_ptr msg, std::function<void(publish_status)> reply) {
        if (msg->dest.is_topic()) return publish_topic(std::move(msg), std::move(reply));
        const std::string& name = msg->dest.name;   // taken before `msg` is moved from
        publish_queue(name, std::move(msg), std::move(reply));
    }

    // Enqueue on queue `name` (a message's own queue, or a durable subscription's).
    // `stored`: the store already holds it on this queue (a committed transaction's send).
    void publish_queue(const std::string& name, message_ptr msg, std::function<void(publish_status)> reply,
                       bool as_retained = false, bool stored = false) {
        auto& q = queue(name);
        if (pages_out(q, *msg, as_retained)) {
            page_out(q, std::move(msg), std::move(reply), stored);
            dispatch(q);
            return;
        }
        if (!q.held.empty() || q.memory >= settings().queue_memory_limit) {
            q.held.push_back({std::move(msg), std::move(reply), stored});
            return;
        }
        enqueue(q, std::move(msg), std::move(reply), as_retained, stored);
        dispatch(q);
    }

    // A persistent message beyond the memory limit stays in the store only (when the store
    // can load it back), rather than holding its producer; so does one behind paged-out
    // messages of its priority, to keep their order. Non-persistent messages are not paged:
    // they hold producers beyond the limit, and may overtake paged-out persistent ones (JMS
    // leaves the order across delivery modes open).
    bool pages_out(const queue_state& q, const message& m, bool as_retained) const noexcept {
        return owner.paging_ && m.persistent && !as_retained &&
               (q.memory >= settings().queue_memory_limit || !q.paged[level_of(m)].empty());
    }

    void page_out(queue_state& q, message_ptr msg, std::function<void(publish_status)> reply, bool stored) {
        ++q.stats.enqueued;
        q.paged[level_of(*msg)].push_back(msg->id);
        ++q.paged_count;
        if (stored) {
            if (reply) reply(publish_status::ok);
        } else {
            owner.store_.add(q.name, msg, [reply = std::move(reply)](store_status s) {
                if (reply) reply(s == store_status::ok ? publish_status::ok : publish_status::store_failed);
            });
        }
        trim_depth(q);
    }

    // Whether paged-out messages should come back now: the queue has nothing else to deliver,
    // is below half its memory limit, or a paged-out message outranks every one in memory.
    bool wants_page_in(const queue_state& q) const noexcept {
        if (q.paged_count == 0) return false;
        if (q.ready_count == 0 || q.memory < settings().queue_memory_limit / 2) return true;
        return q.top_paged() > q.top_ready();
    }

    // Loads paged-out messages back (highest priority first, oldest first) until the queue is
    // at its memory limit or page_in_bytes were read; at least one id leaves `paged`.
    void page_in(queue_state& q) {
        const auto limit = settings().queue_memory_limit;
        std::size_t budget = std::min(page_in_bytes, limit > q.memory ? limit - q.memory : 0);
        std::vector<message_id> ids;
        std::vector<message_ptr> got;
        bool first = true;
        while (q.paged_count > 0 && (first || budget > 0)) {
            first = false;
            const auto p = std::size_t(q.top_paged());
            auto& level = q.paged[p];
            ids.assign(level.begin(), level.begin() + std::ptrdiff_t(std::min(page_in_ids, level.size())));
            got.clear();
            auto n = std::min(owner.store_.load(q.name, ids, budget, got), ids.size());
            if (n == 0) {
                // load() handled none of them (it must handle at least one): asked again, the
                // store would answer the same, forever. Take the ids as lost.
                n = ids.size();
            }
            level.erase(level.begin(), level.begin() + std::ptrdiff_t(n));
            q.paged_count -= n;
            std::size_t lost = 0;
            for (std::size_t i = 0; i < n; ++i) {
                if (i >= got.size() || !got[i]) {
                    // The store lost it (it failed, the record is corrupt, or the id was never
                    // written): nothing to deliver and nothing to remove.
                    ++q.stats.dropped;
                    ++lost;
                    continue;
                }
                const auto size = got[i]->memory_size();
                budget -= std::min(budget, size);
                q.memory += size;
                q.ready[p].push_back(entry{std::move(got[i]), 0});
                ++q.ready_count;
            }
            if (lost) log()->error("queue={} reason=store_lost_messages count={} detail=\"paged-out messages could not be loaded; dropped\"", q.name, lost);
        }
    }

    // A queue with a depth cap (an offline MQTT session's) keeps the newest, like mosquitto's
    // max_queued_messages, rather than holding every producer of the topic.
    void trim_depth(queue_state& q) {
        while (q.max_depth && q.ready_count + q.paged_count > q.max_depth) {
            drop_oldest(q);
            ++q.stats.dropped;
        }
    }

    // Forgets the oldest message of the lowest priority present, in memory or paged out.
    void drop_oldest(queue_state& q) {
        for (std::size_t p = 0; p < priority_levels; ++p) {
            if (!q.ready[p].empty()) {
                entry e = std::move(q.ready[p].front());
                q.ready[p].pop_front();
                --q.ready_count;
                forget(q, e.msg);
                return;
            }
            if (!q.paged[p].empty()) {
                owner.store_.remove(q.name, q.paged[p].front());
                q.paged[p].pop_front();
                --q.paged_count;
                return;
            }
        }
    }

    void enqueue(queue_state& q, message_ptr msg, std::function<void(publish_status)> reply, bool as_retained = false,
                 bool stored = false) {
        ++q.stats.enqueued;
        q.memory += msg->memory_size();
        if (msg->persistent && !stored) {
            // The reply only posts to its home worker, so the store may run it on any thread.
            owner.store_.add(q.name, msg, [reply = std::move(reply)](store_status s) {
                if (reply) reply(s == store_status::ok ? publish_status::ok : publish_status::store_failed);
            });
        } else if (reply) {
            reply(publish_status::ok);
        }
        q.push_back(entry{std::move(msg), 0, as_retained});
        trim_depth(q);
    }

    void release_held(queue_state& q) {
        bool any = false;
        while (!q.held.empty() && q.memory < settings().queue_memory_limit) {
            auto h = std::move(q.held.front());
            q.held.pop_front();
            enqueue(q, std::move(h.msg), std::move(h.reply), false, h.stored);
            any = true;
        }
        if (any) dispatch(q);
    }

    // `matched` (optional) gets the number of subscriptions offered the message, before
    // `reply` can run. `durables_done`: the durable subscriptions' copies are taken care of by
    // the caller (a committed transaction stored and enqueues them itself).
    void publish_topic(message_ptr msg, std::function<void(publish_status)> reply, std::size_t* matched = nullptr,
                       bool durables_done = false) {
        if (msg->retain) {
            // MQTT 5 §3.3.1.3: an empty retained payload removes the retained message.
            if (msg->body.empty()) {
                if (retained.erase(msg->dest.name)) owner.store_.remove_retained(msg->dest.name);
            } else {
                retained[msg->dest.name] = msg;
                owner.store_.put_retained(msg);
            }
        }
        // Durable subscriptions get their copy in their own queue (stored when persistent);
        // the publish completes when every copy is accepted.
        std::vector<const durable_state*> durable_hits;
        ++topic_publishes;
        if (!durables_done)
            for (const auto& [name, d] : durables)
                if (matches(d.filter.name, msg->dest.name) && first_for(d.mark)) durable_hits.push_back(&d);
        // A persistent retained message is confirmed once the store has it too.
        const bool store_retained = msg->retain && msg->persistent;
        if (!durable_hits.empty() || store_retained) {
            auto join = std::make_shared<publish_join>();
            join->left = durable_hits.size() + 1 + (store_retained ? 1 : 0);
            join->reply = std::move(reply);
            if (store_retained) owner.store_.barrier([join] { join->part(publish_status::ok); });
            for (const auto* d : durable_hits) {
                auto& target = *owner.shards_[owner.shard_of(d->queue)];
                target.exec.post([&target, q = d->queue, msg, join]() mutable {
                    target.publish_queue(q, std::move(msg), [join](publish_status s) { join->part(s); });
                });
            }
            reply = [join](publish_status s) { join->part(s); };
        }
        auto& c = topics[msg->dest.name];
        ++c.enqueued;
        consumer_state* slow = nullptr;
        std::size_t hits = durable_hits.size();
        auto note = [&slow](consumer_state* s) { if (s && !slow) slow = s; };
        auto to = [&](consumer_state& sub) {
            if (!skips(sub, *msg)) ++hits;
            note(offer_once(sub, c, msg));
        };
        if (auto it = exact_subs.find(msg->dest.name); it != exact_subs.end())
            for (auto* sub : it->second) to(*sub);
        for (auto* sub : wildcard_subs)
            if (matches(sub->dest.name, msg->dest.name)) to(*sub);
        for (auto& [key, g] : shares)
            if (!g.members.empty() && matches(g.filter, msg->dest.name)) {
                ++hits;
                note(offer_shared(g, c, msg));
            }
        if (matched) *matched = hits;
        if (!reply) return;
        if (slow) slow->held_replies.push_back(std::move(reply));
        else reply(publish_status::ok);
    }

    // Whether the subscriber (if any) has not taken the message being published yet; it has now.
    bool first_for(subscriber_mark* m) noexcept {
        if (!m) return true;
        if (m->last == topic_publishes) return false;
        m->last = topic_publishes;
        return true;
    }

    subscriber_mark* mark(std::uint64_t subscriber) {
        if (subscriber == 0) return nullptr;
        auto& m = subscribers[subscriber];
        ++m.refs;
        return &m;
    }

    void unmark(std::uint64_t subscriber, subscriber_mark* m) {
        if (!m || --m->refs > 0) return;
        subscribers.erase(subscriber);
    }

    consumer_state* offer_once(consumer_state& sub, counters& c, const message_ptr& msg) {
        if (skips(sub, *msg)) return nullptr;   // not taken: another subscription of the subscriber may take it
        if (!first_for(sub.mark)) return nullptr;
        return offer(sub, c, msg);
    }

    // One member of the group gets it: the next with credit, else the next in turn buffers it.
    consumer_state* offer_shared(share_group& g, counters& c, const message_ptr& msg) {
        const std::size_t n = g.members.size();
        for (std::size_t i = 0; i < n; ++i) {
            auto* m = g.members[(g.next + i) % n];
            if (m->has_credit() && m->pending.empty()) {
                g.next = (g.next + i + 1) % n;
                ++c.dequeued;
                deliver(*m, entry{msg, 0});
                return nullptr;
            }
        }
        auto* m = g.members[g.next % n];
        g.next = (g.next + 1) % n;
        return offer(*m, c, msg);
    }

    // No Local: a subscriber never gets what its own connection published.
    static bool skips(const consumer_state& sub, const message& msg) noexcept {
        return sub.no_local && msg.origin_connection != 0 && msg.origin_connection == sub.connection;
    }

    // Returns the subscriber when it is congested (the publisher should wait for it).
    consumer_state* offer(consumer_state& sub, counters& c, const message_ptr& msg) {
        if (skips(sub, *msg)) return nullptr;
        if (sub.has_credit() && sub.pending.empty()) {
            ++c.dequeued;
            deliver(sub, entry{msg, 0});
            return nullptr;
        }
        sub.pending.push_back(entry{msg, 0});
        // The hard cap: an offline persistent session keeps `max_pending`; an attached
        // subscriber holds its producers from max_pending / 2 on, and is capped higher so that
        // what the producers already had in flight still fits.
        const std::size_t cap = sub.sink.expired() ? sub.max_pending
                                                   : std::max(sub.max_pending, settings().topic_max_pending);
        if (sub.pending.size() > cap) {
            // Slow subscriber on a non-durable topic: drop the oldest, as ActiveMQ's
            // constant pending message limit does, rather than grow without bound.
            sub.pending.pop_front();
            ++c.dropped;
        }
        return sub.congested() ? &sub : nullptr;
    }

    // ---- dispatch ------------------------------------------------------------------------

    void deliver(consumer_state& c, entry e) {
        const delivery_tag tag = next_tag++;
        delivery d{e.msg, tag, e.redeliveries, e.retained};
        c.inflight.push_back(inflight_entry{tag, std::move(e), false});
        ++c.unsettled;
        if (c.queue) ++c.queue->inflight;
        post_delivery(c, std::move(d));
    }

    // A consumer whose sink is gone (a persistent session offline) keeps the delivery in flight;
    // attach() sends it again.
    static void post_delivery(const consumer_state& c, delivery d) {
        c.home->post([sink = c.sink, id = c.id, d = std::move(d)]() mutable {
            if (auto s = sink.lock()) s->on_delivery(id, std::move(d));
        });
    }

    consumer_state* next_with_credit(queue_state& q) {
        const std::size_t n = q.consumers.size();
        for (std::size_t i = 0; i < n; ++i) {
            auto* c = q.consumers[(q.next_consumer + i) % n];
            if (c->has_credit()) {
                q.next_consumer = (q.next_consumer + i + 1) % n;
                return c;
            }
        }
        return nullptr;
    }

    void dispatch(queue_state& q) {
        if (q.consumers.empty()) return;
        const std::int64_t now = now_ms();
        for (;;) {
            if (wants_page_in(q)) page_in(q);
            if (q.ready_count == 0) break;
            auto* c = next_with_credit(q);
            if (!c) break;
            entry e = q.pop();
            if (e.msg->expired_at(now)) {
                ++q.stats.expired;
                forget(q, e.msg);
                continue;
            }
            deliver(*c, std::move(e));
        }
    }

    void drain_pending(consumer_state& sub) {
        while (sub.has_credit() && !sub.pending.empty()) {
            entry e = std::move(sub.pending.front());
            sub.pending.pop_front();
            ++topics[e.msg->dest.name].dequeued;
            deliver(sub, std::move(e));
        }
        if (!sub.held_replies.empty() && sub.pending.size() <= sub.max_pending / 4) release_replies(sub);
    }

    static void release_replies(consumer_state& sub) {
        auto held = std::move(sub.held_replies);
        sub.held_replies.clear();
        for (auto& r : held) r(publish_status::ok);
    }

    // The message leaves the queue for good (acked, expired, dead-lettered).
    // With `into`, the store's remove is collected there (a transaction's) instead of made.
    void forget(queue_state& q, const message_ptr& msg, std::vector<store_transaction::remove_op>* into = nullptr) {
        q.memory -= std::min(q.memory, msg->memory_size());
        if (!msg->persistent) return;
        if (into) into->push_back(store_transaction::remove_op{q.name, msg->id});
        else owner.store_.remove(q.name, msg->id);
    }

    // ---- settlement ----------------------------------------------------------------------

    inflight_entry* find_inflight(consumer_state& c, delivery_tag tag) {
        auto it = std::lower_bound(c.inflight.begin(), c.inflight.end(), tag,
                                   [](const inflight_entry& f, delivery_tag t) { return f.tag < t; });
        if (it == c.inflight.end() || it->tag != tag || it->settled) return nullptr;
        return &*it;
    }

    void settle(consumer_state& c, inflight_entry& f) {
        f.settled = true;
        --c.unsettled;
        if (c.queue) --c.queue->inflight;
    }

    void trim(consumer_state& c) {
        while (!c.inflight.empty() && c.inflight.front().settled) c.inflight.pop_front();
    }

    // Returns whether a persistent message was removed from the store. With `into` (a
    // transaction's acks), the removes are collected there for one store transaction.
    bool ack(consumer_id id, const std::vector<delivery_tag>& tags,
             std::vector<store_transaction::remove_op>* into = nullptr) {
        auto it = consumers.find(id);
        if (it == consumers.end()) return false;
        auto& c = *it->second;
        bool stored = false;
        for (auto tag : tags) {
            auto* f = find_inflight(c, tag);
            if (!f) continue;
            settle(c, *f);
            if (c.queue) {
                ++c.queue->stats.dequeued;
                stored |= f->e.msg->persistent;
                forget(*c.queue, f->e.msg, into);
            }
            f->e.msg.reset();
        }
        trim(c);
        after_settle(c);
        return stored;
    }

    void nack(consumer_id id, const std::vector<delivery_tag>& tags) {
        auto it = consumers.find(id);
        if (it == consumers.end()) return;
        auto& c = *it->second;
        std::vector<entry> back;
        for (auto tag : tags) {
            auto* f = find_inflight(c, tag);
            if (!f) continue;
            settle(c, *f);
            if (c.queue) back.push_back(std::move(f->e));
            f->e.msg.reset();
        }
        trim(c);
        if (c.queue) requeue(*c.queue, std::move(back));
        after_settle(c);
    }

    void after_settle(consumer_state& c) {
        if (c.queue) {
            release_held(*c.queue);
            dispatch(*c.queue);
        } else {
            drain_pending(c);
        }
    }

    // Puts `back` (in delivery order) at the head of the queue, each counted as a redelivery.
    void requeue(queue_state& q, std::vector<entry> back) {
        for (auto it = back.rbegin(); it != back.rend(); ++it) {
            ++it->redeliveries;
            if (it->redeliveries > settings().max_redeliveries) {
                dead_letter(q, std::move(*it));
                continue;
            }
            q.push_front(std::move(*it));
        }
    }

    std::string dlq_for(const std::string& queue_name) const {
        if (settings().dead_letter == dead_letter_policy::shared) return std::string(shared_dlq_name);
        return std::string(dlq_prefix) + queue_name;
    }

    void dead_letter(queue_state& q, entry e) {
        ++q.stats.dead_lettered;
        forget(q, e.msg);
        const std::string dlq = dlq_for(q.name);
        if (dlq == q.name || q.name.starts_with(dlq_prefix)) {
            // A message that fails on a DLQ itself has nowhere further to go.
            return;
        }
        auto copy = std::make_shared<message>(*e.msg);
        copy->dest = destination{dest_kind::queue, dlq};
        copy->properties.push_back(property{std::string(original_destination_property),
                                            std::string("queue://") + q.name});
        auto& target = *owner.shards_[owner.shard_of(dlq)];
        target.exec.post([&target, copy = message_ptr(std::move(copy))]() mutable {
            target.publish(std::move(copy), {});
        });
    }

    // ---- subscriptions -------------------------------------------------------------------

    void subscribe(consumer_id id, const destination& dest, const subscribe_options& opt,
                   const std::weak_ptr<consumer_sink>& sink, executor* home) {
        auto c = std::make_unique<consumer_state>();
        c->id = id;
        c->home = home;
        c->sink = sink;
        c->prefetch = opt.prefetch ? opt.prefetch : settings().default_prefetch;
        c->no_local = opt.no_local;
        c->connection = opt.connection;
        c->dest = dest;
        c->max_pending = opt.max_pending ? opt.max_pending : settings().topic_max_pending;
        auto* raw = c.get();
        consumers[id] = std::move(c);
        if (dest.is_queue()) {
            auto& q = queue(dest.name);
            if (opt.max_pending) q.max_depth = opt.max_pending;
            raw->queue = &q;
            q.consumers.push_back(raw);
            dispatch(q);
            return;
        }
        if (!opt.share_group.empty()) {
            // MQTT 5 §4.8.2: retained messages are not sent to shared subscriptions.
            raw->share_key = opt.share_group + '\x1f' + dest.name;
            auto& g = shares[raw->share_key];
            g.filter = dest.name;
            g.members.push_back(raw);
            return;
        }
        raw->subscriber = opt.subscriber;
        raw->mark = mark(opt.subscriber);
        if (has_wildcard(dest.name)) {
            raw->wildcard = true;
            wildcard_subs.push_back(raw);
        } else {
            exact_subs[dest.name].push_back(raw);
        }
        if (opt.want_retained) send_retained(*raw);
    }

    void send_retained(consumer_state& c) {
        auto send = [&](const message_ptr& m) {
            if (c.no_local && m->origin_connection == c.connection) return;
            entry e{m, 0, true};
            if (c.has_credit()) deliver(c, std::move(e));
            else c.pending.push_back(std::move(e));
        };
        if (!c.wildcard) {
            if (auto it = retained.find(c.dest.name); it != retained.end()) send(it->second);
            return;
        }
        for (const auto& [name, m] : retained)
            if (matches(c.dest.name, name)) send(m);
    }

    void attach(consumer_id id, const std::weak_ptr<consumer_sink>& sink, executor* home) {
        auto it = consumers.find(id);
        if (it == consumers.end()) return;
        auto& c = *it->second;
        c.sink = sink;
        c.home = home;
        c.paused = false;     // a new sink starts ready
        release_replies(c);   // a new (or no) sink: producers held for the old one go on
        for (auto& f : c.inflight) {
            if (f.settled) continue;
            ++f.e.redeliveries;
            post_delivery(c, delivery{f.e.msg, f.tag, f.e.redeliveries, f.e.retained});
        }
        after_settle(c);
    }

    void set_paused(consumer_id id, bool paused) {
        auto it = consumers.find(id);
        if (it == consumers.end()) return;
        auto& c = *it->second;
        if (c.paused == paused) return;
        c.paused = paused;
        if (paused) release_replies(c);   // producers held for it go on: it drops instead
        else after_settle(c);             // dispatch what waited for it
    }

    void unsubscribe(consumer_id id) {
        auto it = consumers.find(id);
        if (it == consumers.end()) return;
        auto owned = std::move(it->second);
        consumers.erase(it);
        auto& c = *owned;
        release_replies(c);
        unmark(c.subscriber, c.mark);
        if (c.queue) {
            auto& q = *c.queue;
            std::erase(q.consumers, &c);
            q.next_consumer = q.consumers.empty() ? 0 : q.next_consumer % q.consumers.size();
            std::vector<entry> back;
            for (auto& f : c.inflight)
                if (!f.settled) {
                    --q.inflight;
                    back.push_back(std::move(f.e));
                }
            requeue(q, std::move(back));
            release_held(q);
            dispatch(q);
        } else if (!c.share_key.empty()) {
            if (auto g = shares.find(c.share_key); g != shares.end()) {
                std::erase(g->second.members, &c);
                if (g->second.members.empty()) shares.erase(g);
            }
        } else if (c.wildcard) {
            std::erase(wildcard_subs, &c);
        } else if (auto e = exact_subs.find(c.dest.name); e != exact_subs.end()) {
            std::erase(e->second, &c);
            if (e->second.empty()) exact_subs.erase(e);
        }
    }

    void register_durable(const std::string& name, const destination& filter, std::uint64_t subscriber = 0) {
        auto& d = durables[name];
        auto* m = mark(subscriber);   // before the old one goes: it may be the same
        unmark(d.subscriber, d.mark);
        d = durable_state{filter, durable_queue(name).name, subscriber, m};
    }

    void forget_durable(const std::string& name) {
        auto it = durables.find(name);
        if (it == durables.end()) return;
        unmark(it->second.subscriber, it->second.mark);
        durables.erase(it);
    }

    // A new durable subscription that wants retained messages gets this shard's matching ones
    // as its first queued messages (marked retained).
    void copy_retained(const std::string& queue_name, const destination& filter) {
        auto& target = *owner.shards_[owner.shard_of(queue_name)];
        for (const auto& [topic, m] : retained) {
            if (!matches(filter.name, topic)) continue;
            target.exec.post([&target, queue_name, m]() { target.publish_queue(queue_name, m, {}, true); });
        }
    }

    // On the durable queue's shard: the queue and what it holds go.
    void drop_durable_queue(const std::string& queue_name) {
        auto it = queues.find(queue_name);
        if (it == queues.end()) return;
        auto& q = *it->second;
        while (q.ready_count > 0) {
            entry e = q.pop();
            forget(q, e.msg);
        }
        for (auto& level : q.paged)
            for (const auto id : level) owner.store_.remove(q.name, id);
        q.paged = {};
        q.paged_count = 0;
        for (auto& h : q.held)   // never enqueued: their producers just go on
            if (h.reply) h.reply(publish_status::ok);
        q.held.clear();
        if (q.consumers.empty() && q.inflight == 0) queues.erase(it);
    }

    void collect(std::vector<destination_stats>& out) const {
        for (const auto& [name, q] : queues) {
            destination_stats s;
            s.dest = destination{dest_kind::queue, name};
            s.enqueued = q->stats.enqueued;
            s.dequeued = q->stats.dequeued;
            s.dead_lettered = q->stats.dead_lettered;
            s.dropped = q->stats.dropped;
            s.expired = q->stats.expired;
            s.depth = q->ready_count + q->paged_count + q->held.size();
            s.paged = q->paged_count;
            s.inflight = q->inflight;
            s.consumers = q->consumers.size();
            s.memory_bytes = q->memory;
            out.push_back(std::move(s));
        }
        for (const auto& [name, c] : topics) {
            destination_stats s;
            s.dest = destination{dest_kind::topic, name};
            s.enqueued = c.enqueued;
            s.dequeued = c.dequeued;
            s.dropped = c.dropped;
            s.retained = retained.contains(name);
            if (auto e = exact_subs.find(name); e != exact_subs.end()) s.consumers = e->second.size();
            out.push_back(std::move(s));
        }
    }
};

// ---- broker --------------------------------------------------------------------------------

namespace {

// Wraps `done` so that it runs on `home`, whichever thread calls the wrapper.
template <typename... Args>
std::function<void(Args...)> on_home(executor* home, std::function<void(Args...)> done) {
    if (!done) return {};
    return [home, done = std::move(done)](Args... args) mutable {
        home->post([done = std::move(done), args...]() mutable { done(args...); });
    };
}

executor& calling_worker() {
    executor* e = executor::current();
    assert(e && "kernel calls are made on a worker thread");
    return *e;
}

// Runs `done` on `home` after `n` shards have each called the returned function.
std::function<void()> countdown(std::size_t n, executor* home, std::function<void()> done) {
    auto left = std::make_shared<std::atomic<std::size_t>>(n);
    return [left, home, done = std::move(done)]() {
        if (left->fetch_sub(1) == 1 && done) home->post(done);
    };
}

}  // namespace

broker::broker(broker_settings settings, std::vector<executor*> workers, store& st)
    : settings_(std::move(settings)), store_(st), paging_(st.can_load()), message_ids_(workers.size()),
      consumer_ids_(workers.size()) {
    assert(!workers.empty() && workers.size() < 256);
    for (std::size_t i = 0; i < workers.size(); ++i)
        shards_.push_back(std::make_unique<shard>(*this, *workers[i], i));
}

broker::~broker() = default;

std::size_t broker::recover() {
    std::size_t n = 0;
    message_id highest = 0;
    store_.recover([&](std::string_view queue, recovered_message r) {
        auto& s = *shards_[shard_of(queue)];
        auto& q = s.queue(std::string(queue));
        ++q.stats.enqueued;
        highest = std::max(highest, r.id & ((message_id(1) << tag_shard_shift) - 1));
        ++n;
        if (!r.msg) {
            // Left on disk: loaded when the queue has consumers and room (dispatch).
            q.paged[std::min<std::size_t>(r.priority, priority_levels - 1)].push_back(r.id);
            ++q.paged_count;
            return;
        }
        q.memory += r.msg->memory_size();
        q.push_back(entry{std::move(r.msg), 0});
    });
    store_.recover_retained([&](message_ptr m) {
        auto& s = *shards_[shard_of(m->dest.name)];
        s.topics[m->dest.name];
        s.retained[m->dest.name] = std::move(m);
    });
    store_.recover_subscriptions([&](const subscription_record& r) {
        recovered_subs_.push_back(r);
        for (auto& s : shards_) s->register_durable(r.name, r.filter);
    });
    // New ids must not collide with recovered ones.
    for (auto& c : message_ids_) c.next = std::max(c.next, highest);
    return n;
}

std::size_t broker::shard_of(std::string_view destination_name) const noexcept {
    return std::hash<std::string_view>{}(destination_name) % shards_.size();
}

message_id broker::next_message_id() noexcept {
    const auto w = calling_worker().index();
    return (message_id(w) << tag_shard_shift) | ++message_ids_[w].next;
}

consumer_id broker::next_consumer_id() noexcept {
    const auto w = calling_worker().index();
    return (consumer_id(w) << tag_shard_shift) | ++consumer_ids_[w].next;
}

void broker::publish(message_ptr msg, std::function<void(publish_status)> done) {
    auto reply = on_home(&calling_worker(), std::move(done));
    auto& s = *shards_[shard_of(msg->dest.name)];
    s.exec.post([&s, msg = std::move(msg), reply = std::move(reply)]() mutable {
        s.publish(std::move(msg), std::move(reply));
    });
}

void broker::publish_counted(message_ptr msg, std::function<void(publish_status, std::size_t)> done) {
    // One block for the count and the completion (on the hot path of every MQTT 5 QoS 1/2
    // publish): `matched` is written on the owner shard before the reply is posted home.
    struct counted {
        executor* home;
        std::size_t matched = 1;
        std::function<void(publish_status, std::size_t)> done;
    };
    std::shared_ptr<counted> c;
    std::function<void(publish_status)> reply;
    if (done) {
        c = std::make_shared<counted>(counted{&calling_worker(), 1, std::move(done)});
        reply = [c](publish_status st) { c->home->post([c, st] { c->done(st, c->matched); }); };
    }
    auto& s = *shards_[shard_of(msg->dest.name)];
    s.exec.post([&s, msg = std::move(msg), reply = std::move(reply), c = std::move(c)]() mutable {
        if (msg->dest.is_topic()) s.publish_topic(std::move(msg), std::move(reply), c ? &c->matched : nullptr);
        else s.publish(std::move(msg), std::move(reply));
    });
}

void broker::subscribe(consumer_id id, const destination& dest, subscribe_options opt,
                       std::weak_ptr<consumer_sink> sink, std::function<void()> done) {
    executor* home = &calling_worker();
    if (dest.is_queue()) {
        auto& s = *shards_[shard_of(dest.name)];
        s.exec.post([&s, id, dest, opt, sink = std::move(sink), home, done = std::move(done)]() {
            s.subscribe(id, dest, opt, sink, home);
            if (done) home->post(done);
        });
        return;
    }
    auto one_done = countdown(shards_.size(), home, std::move(done));
    for (auto& sp : shards_) {
        auto& s = *sp;
        s.exec.post([&s, id, dest, opt, sink, home, one_done]() {
            s.subscribe(id, dest, opt, sink, home);
            one_done();
        });
    }
}

void broker::attach(consumer_id id, const destination& dest, std::weak_ptr<consumer_sink> sink,
                    std::function<void()> done) {
    executor* home = &calling_worker();
    const bool all = dest.is_topic();
    auto one_done = countdown(all ? shards_.size() : 1, home, std::move(done));
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        if (!all && i != shard_of(dest.name)) continue;
        auto& s = *shards_[i];
        s.exec.post([&s, id, sink, home, one_done]() {
            s.attach(id, sink, home);
            one_done();
        });
    }
}

destination broker::durable_queue(std::string_view name) {
    return destination{dest_kind::queue, "$durable." + std::string(name)};
}

void broker::subscribe_durable(consumer_id id, const std::string& name, const destination& filter,
                               subscribe_options opt, std::weak_ptr<consumer_sink> sink, std::function<void()> done,
                               std::string data) {
    executor* home = &calling_worker();
    store_.put_subscription(subscription_record{name, filter, std::move(data)});
    // Registered on every shard first, then the consumer attaches to the durable queue.
    auto attach = [this, id, name, opt, sink = std::move(sink), done = std::move(done)]() mutable {
        subscribe(id, durable_queue(name), opt, std::move(sink), std::move(done));
    };
    auto one_done = countdown(shards_.size(), home, std::move(attach));
    for (auto& sp : shards_) {
        auto& s = *sp;
        s.exec.post([&s, name, filter, want = opt.want_retained, subscriber = opt.subscriber, one_done]() {
            s.register_durable(name, filter, subscriber);
            if (want) s.copy_retained(durable_queue(name).name, filter);
            one_done();
        });
    }
}

void broker::unsubscribe_durable(const std::string& name, std::function<void()> done) {
    executor* home = &calling_worker();
    store_.remove_subscription(name);
    const auto q = durable_queue(name).name;
    auto drop = [this, q, home, done = std::move(done)]() mutable {
        auto& s = *shards_[shard_of(q)];
        s.exec.post([&s, q, home, done = std::move(done)]() mutable {
            s.drop_durable_queue(q);
            if (done) home->post(std::move(done));
        });
    };
    auto one_done = countdown(shards_.size(), home, std::move(drop));
    for (auto& sp : shards_) {
        auto& s = *sp;
        s.exec.post([&s, name, one_done]() {
            s.forget_durable(name);
            one_done();
        });
    }
}

void broker::pause(consumer_id id, const destination& dest) {
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        if (dest.is_queue() && i != shard_of(dest.name)) continue;
        auto& s = *shards_[i];
        s.exec.post([&s, id]() { s.set_paused(id, true); });
    }
}

void broker::resume(consumer_id id, const destination& dest) {
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        if (dest.is_queue() && i != shard_of(dest.name)) continue;
        auto& s = *shards_[i];
        s.exec.post([&s, id]() { s.set_paused(id, false); });
    }
}

void broker::resend_retained(consumer_id id, const destination& dest) {
    if (!dest.is_topic()) return;
    for (auto& sp : shards_) {
        auto& s = *sp;
        s.exec.post([&s, id]() {
            if (auto it = s.consumers.find(id); it != s.consumers.end() && it->second->share_key.empty())
                s.send_retained(*it->second);
        });
    }
}

void broker::unsubscribe(consumer_id id, const destination& dest, std::function<void()> done) {
    executor* home = &calling_worker();
    if (dest.is_queue()) {
        auto& s = *shards_[shard_of(dest.name)];
        s.exec.post([&s, id, home, done = std::move(done)]() {
            s.unsubscribe(id);
            if (done) home->post(done);
        });
        return;
    }
    auto one_done = countdown(shards_.size(), home, std::move(done));
    for (auto& sp : shards_) {
        auto& s = *sp;
        s.exec.post([&s, id, one_done]() {
            s.unsubscribe(id);
            one_done();
        });
    }
}

namespace {

// Splits tags by the shard that issued them (the tag's top byte); single-shard fast path.
template <typename F>
void by_shard(std::vector<delivery_tag> tags, std::size_t shards, F&& each) {
    if (tags.empty()) return;
    const std::size_t first = tags.front() >> tag_shard_shift;
    if (std::all_of(tags.begin(), tags.end(),
                    [first](delivery_tag t) { return (t >> tag_shard_shift) == first; })) {
        if (first < shards) each(first, std::move(tags));
        return;
    }
    std::vector<std::vector<delivery_tag>> split(shards);
    for (auto t : tags)
        if (const std::size_t s = t >> tag_shard_shift; s < shards) split[s].push_back(t);
    for (std::size_t s = 0; s < shards; ++s)
        if (!split[s].empty()) each(s, std::move(split[s]));
}

}  // namespace

void broker::ack(consumer_id id, std::vector<delivery_tag> tags, std::function<void()> done) {
    if (!done) {
        by_shard(std::move(tags), shards_.size(), [&](std::size_t i, std::vector<delivery_tag> t) {
            auto& s = *shards_[i];
            s.exec.post([&s, id, t = std::move(t)]() { s.ack(id, t); });
        });
        return;
    }
    executor* home = &calling_worker();
    std::vector<std::pair<std::size_t, std::vector<delivery_tag>>> parts;
    by_shard(std::move(tags), shards_.size(),
             [&](std::size_t i, std::vector<delivery_tag> t) { parts.emplace_back(i, std::move(t)); });
    if (parts.empty()) {
        home->post(std::move(done));
        return;
    }
    auto one_done = countdown(parts.size(), home, std::move(done));
    for (auto& [i, t] : parts) {
        auto& s = *shards_[i];
        s.exec.post([&s, this, id, t = std::move(t), one_done]() {
            if (s.ack(id, t)) store_.barrier(one_done);
            else one_done();
        });
    }
}

// A commit in three steps (see broker.hpp): the acks are settled on the shards that issued
// them, each sending back the store removes it owes; one store transaction then holds those
// removes and the adds of every persistent send; once it is durable, the sends go to their
// destinations' shards, already stored.
struct broker::commit_state {
    std::mutex mutex;
    store_transaction batch;
    std::size_t shards_left = 0;
    std::vector<message_ptr> sends;
    // Per send: the durable subscription queues a persistent topic message was stored for.
    std::vector<std::vector<std::string>> durable_copies;
    executor* home = nullptr;
    std::function<void(publish_status)> done;
};

void broker::commit(local_transaction tx, std::function<void(publish_status)> done) {
    executor* home = &calling_worker();
    auto st = std::make_shared<commit_state>();
    st->home = home;
    st->done = std::move(done);
    st->sends = std::move(tx.sends);
    st->durable_copies.resize(st->sends.size());
    // The calling worker is a shard too, and every shard knows every durable subscription:
    // the durable copies of a persistent topic message are decided (and stored) here.
    auto& local = *shards_[home->index()];   // this worker's shard: its durables copy every shard's
    for (std::size_t i = 0; i < st->sends.size(); ++i) {
        const auto& m = st->sends[i];
        if (!m->persistent) continue;
        if (m->dest.is_queue()) {
            st->batch.adds.push_back(store_transaction::add_op{m->dest.name, m});
            continue;
        }
        ++local.topic_publishes;   // one copy per subscriber, as publish_topic does
        for (const auto& [name, d] : local.durables) {
            if (!matches(d.filter.name, m->dest.name) || !local.first_for(d.mark)) continue;
            st->batch.adds.push_back(store_transaction::add_op{d.queue, m});
            st->durable_copies[i].push_back(d.queue);
        }
    }
    // Acks by issuing shard, then by consumer.
    std::vector<std::unordered_map<consumer_id, std::vector<delivery_tag>>> acks(shards_.size());
    for (const auto& [consumer, tag] : tx.acks)
        if (const std::size_t i = tag >> tag_shard_shift; i < shards_.size()) acks[i][consumer].push_back(tag);
    for (const auto& a : acks) st->shards_left += a.empty() ? 0 : 1;
    if (st->shards_left == 0) return write_commit(std::move(st));
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        if (acks[i].empty()) continue;
        auto& s = *shards_[i];
        s.exec.post([this, &s, st, mine = std::move(acks[i])]() {
            std::vector<store_transaction::remove_op> removes;
            for (const auto& [consumer, tags] : mine) s.ack(consumer, tags, &removes);
            bool last = false;
            {
                std::lock_guard lock(st->mutex);
                for (auto& r : removes) st->batch.removes.push_back(std::move(r));
                last = --st->shards_left == 0;
            }
            if (last) write_commit(st);
        });
    }
}

// Any thread: once every shard settled its acks.
void broker::write_commit(std::shared_ptr<commit_state> st) {
    auto publish_all = [this, st](publish_status status) {
        st->home->post([this, st, status]() { publish_committed(st, status); });
    };
    if (st->batch.empty()) return publish_all(publish_status::ok);
    auto batch = std::move(st->batch);
    store_.commit(std::move(batch), [publish_all](store_status s) {
        publish_all(s == store_status::ok ? publish_status::ok : publish_status::store_failed);
    });
}

// On the committing worker, after the store transaction is durable: the sends go out, in order
// (one post per destination shard keeps their order), and `done` runs once all were accepted.
void broker::publish_committed(std::shared_ptr<commit_state> st, publish_status status) {
    if (status != publish_status::ok || st->sends.empty()) {
        if (st->done) st->done(status);
        return;
    }
    auto join = std::make_shared<publish_join>();
    std::size_t parts = 0;
    for (std::size_t i = 0; i < st->sends.size(); ++i) parts += 1 + st->durable_copies[i].size();
    join->left = parts;
    join->reply = on_home(st->home, std::move(st->done));
    auto part = [join](publish_status s) { join->part(s); };
    for (std::size_t i = 0; i < st->sends.size(); ++i) {
        auto& m = st->sends[i];
        for (const auto& q : st->durable_copies[i]) {
            auto& target = *shards_[shard_of(q)];
            target.exec.post([&target, q, m, part]() { target.publish_queue(q, m, part, false, true); });
        }
        auto& s = *shards_[shard_of(m->dest.name)];
        if (m->dest.is_queue()) {
            s.exec.post([&s, m, part]() { s.publish_queue(m->dest.name, m, part, false, m->persistent); });
        } else {
            const bool stored = m->persistent;
            s.exec.post([&s, m, part, stored]() { s.publish_topic(m, part, nullptr, stored); });
        }
    }
}

void broker::nack(consumer_id id, std::vector<delivery_tag> tags) {
    by_shard(std::move(tags), shards_.size(), [&](std::size_t i, std::vector<delivery_tag> t) {
        auto& s = *shards_[i];
        s.exec.post([&s, id, t = std::move(t)]() { s.nack(id, t); });
    });
}

void broker::stats(std::function<void(std::vector<destination_stats>)> done) {
    executor* home = &calling_worker();
    struct gather {
        std::mutex mutex;
        std::vector<destination_stats> all;
        std::size_t left;
    };
    auto g = std::make_shared<gather>();
    g->left = shards_.size();
    for (auto& sp : shards_) {
        auto& s = *sp;
        s.exec.post([&s, g, home, done]() {
            std::vector<destination_stats> mine;
            s.collect(mine);
            std::lock_guard lock(g->mutex);
            for (auto& m : mine) g->all.push_back(std::move(m));
            if (--g->left == 0) {
                home->post([g, done]() {
                    // Topic subscriptions live on every shard; counts come from the topic's own
                    // shard only, so no merging is needed.
                    done(std::move(g->all));
                });
            }
        });
    }
}

}  // namespace sb::core
