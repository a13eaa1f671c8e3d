// core/kernel/topic.cpp — topics: fan-out, retained messages, shared groups, subscription matching.
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

// `matched` (optional) gets the number of subscriptions offered the message, before
// `reply` can run. `durables_done`: the durable subscriptions' copies are taken care of by
// the caller (a committed transaction stored and enqueues them itself).
void broker::shard::publish_topic(message_ptr msg, std::function<void(publish_status)> reply, std::size_t* matched,
                                  bool durables_done) {
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
    ++topic_publishes;
    matched_durables.clear();
    const auto& durable_hits = durables_done ? matched_durables : match_durables(*msg);
    // A persistent retained message is confirmed once the store has it too.
    const bool store_retained = msg->retain && msg->persistent;
    if (!durable_hits.empty() || store_retained) {
        auto join = std::make_shared<publish_join>();
        join->left = durable_hits.size() + 1 + (store_retained ? 1 : 0);
        join->reply = std::move(reply);
        if (store_retained) owner.store_.barrier([join] { join->part(publish_status::ok); });
        for (const auto* d : durable_hits) {
            auto& target = *owner.shards_[owner.shard_of(d->queue)];
            target.exec.post([&target, q = d->queue, msg = copy_for(*d, msg), join]() mutable {
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
        if (sub.selector && !selects(sub, *msg)) return;   // not selected: as if not subscribed
        if (!skips(sub, *msg)) ++hits;
        note(offer_once(sub, c, msg));
    };
    if (auto it = exact_subs.find(msg->dest.name); it != exact_subs.end())
        for (auto* sub : it->second) to(*sub);
    // Wildcard subscriptions after the exact ones, in the order they subscribed (the first of
    // a subscriber's overlapping filters takes the message).
    matched_subs.clear();
    wildcard_subs.match(msg->dest.name, matched_subs);
    for (auto* sub : matched_subs) to(*sub);
    matched_groups.clear();
    share_filters.match(msg->dest.name, matched_groups);
    for (auto* g : matched_groups) {
        ++hits;
        note(offer_shared(*g, c, msg));
    }
    if (matched) *matched = hits;
    if (!reply) return;
    if (slow) slow->held_replies.push_back(std::move(reply));
    else reply(publish_status::ok);
}

const std::vector<const durable_state*>& broker::shard::match_durables(const std::string& name) {
    matched_durables.clear();
    durable_filters.match(name, matched_durables);
    std::erase_if(matched_durables, [this](const durable_state* d) { return !first_for(d->mark); });
    return matched_durables;
}

const std::vector<const durable_state*>& broker::shard::match_durables(const message& msg) {
    match_durables(msg.dest.name);
    std::erase_if(matched_durables, [&](const durable_state* d) { return d->selector && !selects(d->selector, msg); });
    return matched_durables;
}

subscriber_mark* broker::shard::mark(std::uint64_t subscriber) {
    if (subscriber == 0) return nullptr;
    auto& m = subscribers[subscriber];
    ++m.refs;
    return &m;
}

void broker::shard::unmark(std::uint64_t subscriber, subscriber_mark* m) {
    if (!m || --m->refs > 0) return;
    subscribers.erase(subscriber);
}

consumer_state* broker::shard::offer_once(consumer_state& sub, counters& c, const message_ptr& msg) {
    if (skips(sub, *msg)) return nullptr;   // not taken: another subscription of the subscriber may take it
    if (!first_for(sub.mark)) return nullptr;
    return offer(sub, c, msg);
}

// One member of the group gets it: the next with credit, else the next in turn buffers it.
consumer_state* broker::shard::offer_shared(share_group& g, counters& c, const message_ptr& msg) {
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

// Returns the subscriber when it is congested (the publisher should wait for it).
consumer_state* broker::shard::offer(consumer_state& sub, counters& c, const message_ptr& msg) {
    if (skips(sub, *msg)) return nullptr;
    if (!sub.window) {
        ++c.dequeued;   // counted here, on the topic's shard, wherever its credit is
        take(sub, entry{msg, 0});
        return nullptr;
    }
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

void broker::shard::drain_pending(consumer_state& sub) {
    while (sub.has_credit() && !sub.pending.empty()) {
        entry e = std::move(sub.pending.front());
        sub.pending.pop_front();
        if (sub.window) ++topic_counters(e.msg->dest).dequeued;   // link: counted when taken
        deliver(sub, std::move(e));
    }
    if (!sub.held_replies.empty() && sub.pending.size() <= sub.max_pending / 4) release_replies(sub);
}

void broker::shard::release_replies(consumer_state& sub) {
    auto held = std::move(sub.held_replies);
    sub.held_replies.clear();
    for (auto& r : held) r(publish_status::ok);
}

void broker::shard::send_retained(consumer_state& c) {
    auto send = [&](const message_ptr& m) {
        if (c.no_local && m->origin_connection == c.connection) return;
        entry e{m, 0, true};
        if (!c.window) take(c, std::move(e));
        else if (c.has_credit()) deliver(c, std::move(e));
        else c.pending.push_back(std::move(e));
    };
    if (!c.wildcard) {
        if (auto it = retained.find(c.dest.name); it != retained.end()) send(it->second);
        return;
    }
    for (const auto& [name, m] : retained)
        if (matches(c.dest.name, name)) send(m);
}

void broker::shard::take(consumer_state& sub, entry e) {
    if (sub.credit_shard != index) {
        auto& target = *owner.shards_[sub.credit_shard];
        target.exec.post([&target, id = sub.id, e = std::move(e)]() mutable { target.take_forwarded(id, std::move(e)); });
        return;
    }
    if (sub.has_credit() && sub.pending.empty()) return deliver(sub, std::move(e));
    sub.pending.push_back(std::move(e));
    if (sub.pending.size() > sub.max_pending) {
        // Its credit is the client's to give (it holds no publisher): the oldest go, counted
        // on the topic's own shard when that is this one.
        const auto& name = sub.pending.front().msg->dest.name;
        if (owner.shard_of(name) == index) ++topic_counters(sub.pending.front().msg->dest).dropped;
        sub.pending.pop_front();
    }
}

void broker::shard::take_forwarded(consumer_id id, entry e) {
    auto it = consumers.find(id);
    if (it == consumers.end()) return;   // unsubscribed meanwhile
    take(*it->second, std::move(e));
}

}  // namespace sb::core
