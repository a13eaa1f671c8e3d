// core/kernel/wildcard_queue.cpp — wildcard queue consumers (ActiveMQ's "/queue/a.>"): one
// consumer that competes in every queue whose name matches its pattern, those that exist when it
// subscribes and those created later. Its subscription is on every shard (queues are spread over
// the shards); on each it is a consumer of that shard's matching queues, and each delivery
// remembers its queue (inflight_entry::from), where an ack, a nack or the consumer's end settles
// it. Its credit is a window per shard, as a window topic subscription's.
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

bool broker::shard::wildcard_may_match(std::string_view pattern, std::string_view name) noexcept {
    // Kernel-internal queues (durable subscriptions' "$durable.<name>") are nobody's to consume.
    return !name.starts_with('$') && matches(pattern, name);
}

void broker::shard::subscribe_wildcard_queue(consumer_state& c) {
    c.wild_queues = std::make_unique<std::vector<queue_state*>>();
    queue_wildcards.insert(c.dest.name, &c);
    for (auto& [name, q] : queues) {
        if (!wildcard_may_match(c.dest.name, name)) continue;
        q->consumers.push_back(&c);
        selective_joined(*q, c);
        c.wild_queues->push_back(q.get());
    }
    for (auto* q : *c.wild_queues) dispatch(*q);
}

void broker::shard::join_wildcards(queue_state& q) {
    if (q.name.starts_with('$')) return;
    std::vector<consumer_state*> matched;   // a queue's creation is rare: its own scratch
    queue_wildcards.match(q.name, matched);
    for (auto* c : matched) {
        q.consumers.push_back(c);
        selective_joined(q, *c);
        c->wild_queues->push_back(&q);
    }
}

void broker::shard::unsubscribe_wildcard_queue(consumer_state& c) {
    queue_wildcards.erase(c.dest.name, &c);
    for (auto* q : *c.wild_queues) {
        remove_queue_consumer(*q, c);   // its groups too (groups.cpp)
        selective_left(*q, c);
    }
    // Unsettled deliveries go back to their own queues, in delivery order within each.
    for (auto* q : *c.wild_queues) {
        std::vector<entry> back;
        for (auto& f : c.inflight)
            if (!f.settled && f.from == q) {
                --q->inflight;
                back.push_back(std::move(f.e));
            }
        requeue(*q, std::move(back));
        release_held(*q);
        dispatch(*q);
    }
    c.wild_queues->clear();
}

void broker::shard::dispatch_wildcard(consumer_state& c) {
    auto& qs = *c.wild_queues;
    const std::size_t n = qs.size();
    if (n == 0) return;
    // Round robin over its queues, so that one busy queue does not take all the credit back
    // before the others are looked at.
    const std::size_t start = std::size_t(c.id + next_tag) % n;
    for (std::size_t i = 0; i < n && c.has_credit(); ++i) {
        auto& q = *qs[(start + i) % n];
        release_held(q);
        dispatch(q);
    }
}

}  // namespace sb::core
