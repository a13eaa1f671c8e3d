// core/kernel/subscription.cpp — consumers: subscribe, attach, pause, unsubscribe (queues and topics).
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

broker::shard::consumer_state& broker::shard::add_consumer(consumer_id id, const destination& dest,
                                                          const subscribe_options& opt,
                                                          const std::weak_ptr<consumer_sink>& sink, executor* home) {
    auto c = std::make_unique<consumer_state>();
    c->id = id;
    c->home = home;
    c->sink = sink;
    // Shared group members are dispatched to by their credit on the topic's shard: window only.
    c->window = opt.credit == credit_mode::window || !opt.share_group.empty();
    c->prefetch = opt.prefetch.value_or(settings().default_prefetch);
    c->credit = c->prefetch;
    c->credit_shard = home->index();
    c->no_local = opt.no_local;
    c->connection = opt.connection;
    c->dest = dest;
    c->max_pending = opt.max_pending ? opt.max_pending : settings().topic_max_pending;
    c->selector = opt.selector;
    auto& added = *c;
    consumers[id] = std::move(c);
    return added;
}

void broker::shard::subscribe(consumer_id id, const destination& dest, const subscribe_options& opt,
                              const std::weak_ptr<consumer_sink>& sink, executor* home) {
    auto* raw = &add_consumer(id, dest, opt, sink, home);
    if (dest.is_queue() && has_wildcard(dest.name)) return subscribe_wildcard_queue(*raw);
    if (dest.is_queue()) {
        auto& q = queue(dest.name);
        if (opt.max_pending) q.max_depth = opt.max_pending;
        raw->queue = &q;
        add_queue_consumer(q, *raw, opt);
        selective_joined(q, *raw);
        advise_consumer(*raw, true);
        dispatch(q);
        return;
    }
    if (!opt.share_group.empty()) {
        // MQTT 5 §4.8.2: retained messages are not sent to shared subscriptions.
        raw->share_key = opt.share_group + '\x1f' + dest.name;
        auto [g, created] = shares.try_emplace(raw->share_key);
        if (created) {
            g->second.filter = dest.name;
            share_filters.insert(dest.name, &g->second);
        }
        g->second.members.push_back(raw);
        if (owner.shard_of(dest.name) == index) advise_consumer(*raw, true);
        return;
    }
    raw->subscriber = opt.subscriber;
    raw->mark = mark(opt.subscriber);
    if (has_wildcard(dest.name)) {
        raw->wildcard = true;
        wildcard_subs.insert(dest.name, raw);
    } else {
        exact_subs[dest.name].push_back(raw);
    }
    if (owner.shard_of(dest.name) == index) advise_consumer(*raw, true);
    replay_advisories(*raw);   // a watcher of advisory topics: what exists (advisory.cpp)
    if (opt.want_retained) send_retained(*raw);
}

void broker::shard::attach(consumer_id id, const std::weak_ptr<consumer_sink>& sink, executor* home) {
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
        post_delivery(c, delivery{f.e.msg, f.tag, f.e.redeliveries, f.e.retained, f.e.group_first});
    }
    after_settle(c);
}

void broker::shard::set_paused(consumer_id id, bool paused) {
    auto it = consumers.find(id);
    if (it == consumers.end()) return;
    auto& c = *it->second;
    if (c.paused == paused) return;
    c.paused = paused;
    if (paused) release_replies(c);   // producers held for it go on: it drops instead
    else after_settle(c);             // dispatch what waited for it
}

void broker::shard::unsubscribe(consumer_id id) {
    auto it = consumers.find(id);
    if (it == consumers.end()) return;
    auto owned = std::move(it->second);
    consumers.erase(it);
    auto& c = *owned;
    release_replies(c);
    unmark(c.subscriber, c.mark);
    if (c.queue) {
        auto& q = *c.queue;
        remove_queue_consumer(q, c);
        selective_left(q, c);
        std::vector<entry> back;
        for (auto& f : c.inflight)
            if (!f.settled) {
                --q.inflight;
                back.push_back(std::move(f.e));
            }
        requeue(q, std::move(back));
        release_held(q);
        dispatch(q);
    } else if (c.wild_queues) {
        unsubscribe_wildcard_queue(c);
    } else if (c.browse) {
        // A browser is in no queue's consumer list and no subscription index.
    } else if (!c.share_key.empty()) {
        if (auto g = shares.find(c.share_key); g != shares.end()) {
            std::erase(g->second.members, &c);
            if (g->second.members.empty()) {
                share_filters.erase(g->second.filter, &g->second);
                shares.erase(g);
            }
        }
    } else if (c.dest.kind == dest_kind::temp_topic) {
        if (auto t = temporaries.find(c.dest.name); t != temporaries.end()) std::erase(t->second.subs, &c);
    } else if (c.wildcard) {
        wildcard_subs.erase(c.dest.name, &c);
    } else if (auto e = exact_subs.find(c.dest.name); e != exact_subs.end()) {
        std::erase(e->second, &c);
        if (e->second.empty()) exact_subs.erase(e);
    }
    if (c.queue || owner.shard_of(c.dest.name) == index) advise_consumer(c, false);
}

}  // namespace sb::core
