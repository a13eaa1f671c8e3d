// core/kernel/browse.cpp — queue browsers: a snapshot of a queue sent without consuming it.
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

void broker::shard::browse(consumer_id id, const destination& dest, const subscribe_options& opt,
                           const std::weak_ptr<consumer_sink>& sink, executor* home) {
    auto c = std::make_unique<consumer_state>();
    c->id = id;
    c->home = home;
    c->sink = sink;
    c->window = opt.credit == credit_mode::window;
    c->prefetch = opt.prefetch.value_or(settings().default_prefetch);
    c->credit = c->prefetch;
    c->credit_shard = index;
    c->dest = dest;
    c->selector = opt.selector;   // applied as the snapshot is sent (advance_browse)
    c->browse = std::make_unique<browse_cursor>();
    auto& b = *c->browse;
    b.queue = dest.name;
    const queue_state* src = nullptr;
    if (!dest.is_temporary()) {
        if (auto q = queues.find(dest.name); q != queues.end()) src = q->second.get();
    } else if (auto t = temporaries.find(dest.name);
               t != temporaries.end() && t->second.queue && t->second.owner == opt.connection) {
        src = t->second.queue.get();   // as its consumers, only its owner browses it
    }
    if (src) {
        // Dispatch order: by priority, and within one, what is in memory before what is paged
        // out (paged[p] is newer than ready[p]).
        const auto& qs = *src;
        b.items.reserve(qs.ready_count + qs.paged_count);
        for (std::size_t p = priority_levels; p-- > 0;) {
            for (const auto& e : qs.ready[p]) b.items.push_back(browse_item{e.msg, e.msg->id, e.redeliveries});
            for (const auto pid : qs.paged[p]) b.items.push_back(browse_item{nullptr, pid, 0});
        }
    }
    auto* raw = c.get();
    consumers[id] = std::move(c);
    advance_browse(*raw);
}

void broker::shard::advance_browse(consumer_state& c) {
    auto& b = *c.browse;
    const std::int64_t now = now_ms();
    std::vector<message_id> ids;
    std::vector<message_ptr> got;
    while (!b.ended) {
        if (b.next == b.items.size()) {
            b.ended = true;
            b.items = {};
            // Posted after its deliveries, to the same worker: the sink sees it last.
            c.home->post([sink = c.sink, id = c.id]() {
                if (auto s = sink.lock()) s->on_browse_end(id);
            });
            break;
        }
        if (!c.has_credit()) break;
        auto& item = b.items[b.next];
        if (!item.msg && !item.gone) {
            // Paged out: load this id and the paged-out ones after it, a batch at a time.
            ids.clear();
            for (std::size_t i = b.next; i < b.items.size() && ids.size() < page_in_ids; ++i) {
                if (b.items[i].msg || b.items[i].gone) break;
                ids.push_back(b.items[i].id);
            }
            got.clear();
            auto n = std::min(owner.store_.load(b.queue, ids, page_in_bytes, got), ids.size());
            if (n == 0) n = ids.size();   // the store handled none: take them as gone (see page_in)
            for (std::size_t i = 0; i < n; ++i) {
                auto& it = b.items[b.next + i];
                if (i < got.size() && got[i]) it.msg = std::move(got[i]);
                else it.gone = true;   // consumed since the browse began, or lost
            }
            continue;
        }
        // Expired, gone, or not selected by the browser's selector (selective.cpp): skipped.
        if (item.gone || item.msg->expired_at(now) || !selects(c, *item.msg, item.redeliveries)) {
            item.msg.reset();
            ++b.next;
            continue;
        }
        entry e{std::move(item.msg), item.redeliveries};
        ++b.next;
        deliver(c, std::move(e));
    }
}

}  // namespace sb::core
