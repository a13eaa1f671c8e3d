// core/kernel/durable.cpp — durable topic subscriptions: registered on every shard, each feeding its own queue.
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

bool broker::shard::register_durable(const std::string& name, const destination& filter, std::uint64_t subscriber,
                                     selector_ptr selector) {
    auto [it, created] = durables.try_emplace(name);
    auto& d = it->second;
    const auto text = [](const selector_ptr& s) { return s ? std::string_view(s->text()) : std::string_view(); };
    const bool reselected = !created && text(d.selector) != text(selector);
    auto* m = mark(subscriber);   // before the old one goes: it may be the same
    unmark(d.subscriber, d.mark);
    // The trie points at `d`, which stays put; a new filter is filed again (and comes last).
    const bool refile = created || d.filter.name != filter.name;
    if (refile && !created) durable_filters.erase(d.filter.name, &d);
    d = durable_state{filter, durable_queue(name).name, subscriber, m, std::move(selector)};
    if (refile) durable_filters.insert(d.filter.name, &d);
    return reselected;
}

void broker::shard::forget_durable(const std::string& name) {
    auto it = durables.find(name);
    if (it == durables.end()) return;
    unmark(it->second.subscriber, it->second.mark);
    durable_filters.erase(it->second.filter.name, &it->second);
    durables.erase(it);
}

// A new durable subscription that wants retained messages gets this shard's matching ones
// as its first queued messages (marked retained).
void broker::shard::copy_retained(const std::string& queue_name, const destination& filter) {
    auto& target = *owner.shards_[owner.shard_of(queue_name)];
    const auto d = durables.find(queue_name.substr(durable_queue("").name.size()));
    const selector_ptr sel = d != durables.end() ? d->second.selector : selector_ptr{};
    for (const auto& [topic, m] : retained) {
        if (!matches(filter.name, topic) || !selects(sel, *m)) continue;
        target.exec.post([&target, queue_name, m = m]() { target.publish_queue(queue_name, m, {}, true); });
    }
}

// On the durable queue's shard: the queue and what it holds go.
void broker::shard::drop_durable_queue(const std::string& queue_name) {
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

}  // namespace sb::core
