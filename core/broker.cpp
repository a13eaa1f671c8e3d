// core/broker.cpp — the public broker:: methods: each posts its work to the shard(s) that own
// what it touches (core/kernel/shard.hpp; the shards' parts are in core/kernel/*.cpp).
#include "core/broker.hpp"

#include "core/destination/composite.hpp"
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

namespace {

// A queue consumer (or browser) lives on its queue's shard only; a topic subscription, and a
// wildcard queue consumer (its queues are on every shard), on every shard.
bool on_one_shard(const destination& dest) noexcept {
    return dest.is_queue() && !has_wildcard(dest.name);
}

}  // namespace

broker::broker(broker_settings settings, std::vector<executor*> workers, store& st)
    : settings_(std::move(settings)), store_(st), paging_(st.can_load()), message_ids_(workers.size()),
      consumer_ids_(workers.size()), connections_(workers.size()) {
    assert(!workers.empty() && workers.size() < 256);
    for (std::size_t i = 0; i < workers.size(); ++i)
        shards_.push_back(std::make_unique<shard>(*this, *workers[i], i));
    start_scheduler();
}

broker::~broker() { stop(std::chrono::milliseconds(0)); }

std::size_t broker::recover() {
    std::size_t n = 0;
    message_id highest = 0;
    std::vector<recovered_message> jobs;   // the scheduler's (sched)
    store_.recover([&](std::string_view queue, recovered_message r) {
        if (queue == scheduled_store_queue) {
            highest = std::max(highest, r.id & ((message_id(1) << tag_shard_shift) - 1));
            jobs.push_back(std::move(r));
            return;
        }
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
        if (recover_virtual(r)) return;   // a virtual topic's consumer queue (sched)
        recovered_subs_.push_back(r);
        selector_ptr sel;
        if (!r.selector.empty()) {
            selector_error err;
            sel = selector::compile(r.selector, err, selector_limits{std::max<std::size_t>(r.selector.size(), 4096), 64});
            if (!sel) log()->error("durable subscription {}: its stored selector no longer compiles ({}); it takes every message", r.name, err.message);
        }
        for (auto& s : shards_) s->register_durable(r.name, r.filter, 0, sel);
    });
    // New ids must not collide with recovered ones.
    for (auto& c : message_ids_) c.next = std::max(c.next, highest);
    scheduler_ids_ = std::max<std::uint64_t>(scheduler_ids_, highest);
    recover_scheduled(std::move(jobs));
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

// The publisher's worker allocated the message (unless it republishes one it received).
static void note_home(const message& m, executor& w) noexcept {
    executor* none = nullptr;
    m.home.worker.compare_exchange_strong(none, &w, std::memory_order_relaxed);
}

void broker::publish(message_ptr msg, std::function<void(publish_status)> done) {
    note_home(*msg, calling_worker());
    auto reply = on_home(&calling_worker(), std::move(done));
    if (scheduled(*msg)) return schedule(std::move(msg), std::move(reply));
    route(std::move(msg), std::move(reply));
}

void broker::publish_counted(message_ptr msg, std::function<void(publish_status, std::size_t)> done) {
    // One block for the count and the completion (on the hot path of every MQTT 5 QoS 1/2
    // publish): `matched` is written on the owner shard before the reply is posted home.
    struct counted {
        executor* home;
        std::size_t matched = 1;
        std::function<void(publish_status, std::size_t)> done;
    };
    note_home(*msg, calling_worker());
    std::shared_ptr<counted> c;
    std::function<void(publish_status)> reply;
    if (done) {
        c = std::make_shared<counted>(counted{&calling_worker(), 1, std::move(done)});
        reply = [c](publish_status st) { c->home->post([c, st] { c->done(st, c->matched); }); };
    }
    if (scheduled(*msg) || is_composite(msg->dest.name)) {
        if (scheduled(*msg)) return schedule(std::move(msg), std::move(reply));
        return route(std::move(msg), std::move(reply));
    }
    auto& s = *shards_[shard_of(msg->dest.name)];
    s.exec.post([&s, msg = std::move(msg), reply = std::move(reply), c = std::move(c)]() mutable {
        if (msg->dest.is_temporary()) s.publish_temporary(std::move(msg), std::move(reply), c ? &c->matched : nullptr);
        else if (msg->dest.is_topic()) s.publish_topic(std::move(msg), std::move(reply), c ? &c->matched : nullptr);
        else s.publish(std::move(msg), std::move(reply));
    });
}

void broker::subscribe(consumer_id id, const destination& dest, subscribe_options opt,
                       std::weak_ptr<consumer_sink> sink, std::function<void()> done) {
    if (dest.is_temporary()) {
        std::function<void(subscribe_status)> any;
        if (done) any = [done = std::move(done)](subscribe_status) { done(); };
        return subscribe_checked(id, dest, std::move(opt), std::move(sink), std::move(any));
    }
    if (dest.is_queue() && !dest.is_temporary()) {
        if (auto topic = virtual_topic_of(dest.name)) {
            // A virtual topic's consumer queue: registered on every shard first (sched).
            return register_virtual(dest.name, *topic, [this, id, dest, opt, sink = std::move(sink),
                                                         done = std::move(done)]() mutable {
                subscribe_registered(id, dest, std::move(opt), std::move(sink), std::move(done));
            });
        }
    }
    subscribe_registered(id, dest, std::move(opt), std::move(sink), std::move(done));
}

void broker::subscribe_registered(consumer_id id, const destination& dest, subscribe_options opt,
                                  std::weak_ptr<consumer_sink> sink, std::function<void()> done) {
    executor* home = &calling_worker();
    if (on_one_shard(dest)) {
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
    const bool all = !on_one_shard(dest);
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
    // The selector filters what enters the subscription's queue; its consumer takes it all.
    selector_ptr sel = std::move(opt.selector);
    opt.selector.reset();
    store_.put_subscription(subscription_record{name, filter, std::move(data), sel ? sel->text() : std::string()});
    // Registered on every shard first, then the consumer attaches to the durable queue.
    auto attach = [this, id, name, opt, sink = std::move(sink), done = std::move(done)]() mutable {
        subscribe(id, durable_queue(name), opt, std::move(sink), std::move(done));
    };
    auto one_done = countdown(shards_.size(), home, std::move(attach));
    for (auto& sp : shards_) {
        auto& s = *sp;
        s.exec.post([this, &s, name, filter, want = opt.want_retained, subscriber = opt.subscriber, sel, one_done]() {
            const auto q = durable_queue(name).name;
            // Another selector than before: a new subscription (ActiveMQ), what it held goes.
            if (s.register_durable(name, filter, subscriber, sel) && shard_of(q) == s.index) s.drop_durable_queue(q);
            if (want) s.copy_retained(q, filter);
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
        if (on_one_shard(dest) && i != shard_of(dest.name)) continue;
        auto& s = *shards_[i];
        s.exec.post([&s, id]() { s.set_paused(id, true); });
    }
}

void broker::resume(consumer_id id, const destination& dest) {
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        if (on_one_shard(dest) && i != shard_of(dest.name)) continue;
        auto& s = *shards_[i];
        s.exec.post([&s, id]() { s.set_paused(id, false); });
    }
}

void broker::grant(consumer_id id, const destination& dest, std::uint32_t n) {
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        if (on_one_shard(dest) && i != shard_of(dest.name)) continue;
        auto& s = *shards_[i];
        s.exec.post([&s, id, n]() { s.add_credit(id, n, false); });
    }
}

void broker::set_credit(consumer_id id, const destination& dest, std::uint32_t n) {
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        if (on_one_shard(dest) && i != shard_of(dest.name)) continue;
        auto& s = *shards_[i];
        s.exec.post([&s, id, n]() { s.add_credit(id, n, true); });
    }
}

void broker::drain(consumer_id id, const destination& dest, std::function<void(drain_result)> done) {
    executor* home = &calling_worker();
    struct gather {
        std::atomic<std::uint32_t> delivered{0}, unused{0};
        std::atomic<std::size_t> left{0};
        std::function<void(drain_result)> done;
    };
    auto g = std::make_shared<gather>();
    g->left = on_one_shard(dest) ? 1 : shards_.size();
    g->done = std::move(done);
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        if (on_one_shard(dest) && i != shard_of(dest.name)) continue;
        auto& s = *shards_[i];
        s.exec.post([&s, id, g, home]() {
            const auto r = s.drain(id);
            g->delivered += r.delivered;
            g->unused += r.unused;
            // Posted after this shard's deliveries to the same worker: they arrive first.
            if (g->left.fetch_sub(1) == 1 && g->done)
                home->post([g]() { g->done(drain_result{g->delivered.load(), g->unused.load()}); });
        });
    }
}

void broker::browse(consumer_id id, const destination& dest, subscribe_options opt, std::weak_ptr<consumer_sink> sink,
                    std::function<void()> done) {
    executor* home = &calling_worker();
    auto& s = *shards_[shard_of(dest.name)];
    s.exec.post([&s, id, dest, opt = std::move(opt), sink = std::move(sink), home, done = std::move(done)]() {
        s.browse(id, dest, opt, sink, home);
        if (done) home->post(done);
    });
}

void broker::resend_retained(consumer_id id, const destination& dest) {
    if (!dest.is_topic() || dest.is_temporary()) return;   // a temporary topic retains nothing
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
    if (on_one_shard(dest)) {
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

void broker::settle(consumer_id id, std::vector<delivery_tag> tags, settle_outcome outcome,
                    std::function<void()> done) {
    if (outcome.what == settle_outcome::kind::accepted) return ack(id, std::move(tags), std::move(done));
    std::shared_ptr<settle_join> join;
    if (done) {
        join = std::make_shared<settle_join>();
        join->done = [home = &calling_worker(), done = std::move(done)]() { home->post(done); };
    }
    auto o = std::make_shared<const settle_outcome>(std::move(outcome));
    by_shard(std::move(tags), shards_.size(), [&](std::size_t i, std::vector<delivery_tag> t) {
        auto& s = *shards_[i];
        if (join) join->add();
        s.exec.post([&s, id, t = std::move(t), o, join]() {
            s.settle_with(id, t, *o, join);
            if (join) join->part();
        });
    });
    if (join) join->part();   // the caller's unit: every part has been started
}

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

void broker::nack(consumer_id id, std::vector<delivery_tag> tags) {
    settle(id, std::move(tags), settle_outcome::modified(true, false));
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
