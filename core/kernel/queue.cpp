// core/kernel/queue.cpp — queues: publish, dispatch to competing consumers, ack / nack, requeue.
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

void broker::shard::publish(message_ptr msg, std::function<void(publish_status)> reply) {
    if (msg->dest.is_temporary()) return publish_temporary(std::move(msg), std::move(reply));
    if (msg->dest.is_topic()) return publish_topic(std::move(msg), std::move(reply));
    const std::string& name = msg->dest.name;   // taken before `msg` is moved from
    publish_queue(name, std::move(msg), std::move(reply));
}

// Enqueue on queue `name` (a message's own queue, or a durable subscription's).
// `stored`: the store already holds it on this queue (a committed transaction's send).
void broker::shard::publish_queue(const std::string& name, message_ptr msg, std::function<void(publish_status)> reply,
                                  bool as_retained, bool stored) {
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

void broker::shard::enqueue(queue_state& q, message_ptr msg, std::function<void(publish_status)> reply, bool as_retained,
                            bool stored) {
    ++q.stats.enqueued;
    q.memory += msg->memory_size();
    if (!q.choice && !msg->group_id.empty()) start_choice(q);   // groups.cpp
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

void broker::shard::release_held(queue_state& q) {
    bool any = false;
    while (!q.held.empty() && q.memory < settings().queue_memory_limit) {
        auto h = std::move(q.held.front());
        q.held.pop_front();
        enqueue(q, std::move(h.msg), std::move(h.reply), false, h.stored);
        any = true;
    }
    if (any) dispatch(q);
}

consumer_state* broker::shard::next_with_credit(queue_state& q) {
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

void broker::shard::dispatch(queue_state& q) {
    if (q.consumers.empty()) return;
    // Groups, exclusive consumers, priorities (groups.cpp; selectors too, when some consumer
    // has one), else selectors (selective.cpp), else round robin here.
    if (q.choice) return dispatch_chosen(q);
    if (q.selective) return dispatch_selective(q);
    const std::int64_t now = now_ms();
    std::vector<entry> skipped;   // refused by every consumer with credit: they wait, in order
    for (;;) {
        if (wants_page_in(q)) page_in(q);
        if (q.ready_count == 0) break;
        auto* c = next_with_credit(q);
        if (!c) break;
        entry e = q.pop();
        if (!e.msg->group_id.empty()) {   // the first grouped message: consumer choice from now on
            q.push_front(std::move(e));
            start_choice(q, c);
            break;
        }
        if (e.msg->expired_at(now)) {
            advise_message("Expired", q, *e.msg);
            expire(q, std::move(e));   // to the DLQ or dropped (dead_letter.cpp)
            continue;
        }
        if (!q.refused.empty()) {
            if (auto r = q.refused.find(e.msg->id); r != q.refused.end()) {
                c = allowed_with_credit(q, *c, r->second);
                if (!c) {
                    skipped.push_back(std::move(e));
                    continue;
                }
            }
        }
        deliver(*c, std::move(e), &q);
    }
    for (auto it = skipped.rbegin(); it != skipped.rend(); ++it) q.push_front(std::move(*it));
    if (q.choice) dispatch_chosen(q);
}

broker::shard::consumer_state* broker::shard::allowed_with_credit(queue_state& q, consumer_state& first,
                                                                   const std::vector<consumer_id>& refusers) {
    auto allowed = [&](const consumer_state& c) { return std::find(refusers.begin(), refusers.end(), c.id) == refusers.end(); };
    if (allowed(first)) return &first;
    for (auto* c : q.consumers)
        if (c != &first && c->has_credit() && allowed(*c)) return c;
    return nullptr;
}

// The message leaves the queue for good (acked, expired, dead-lettered).
// With `into`, the store's remove is collected there (a transaction's) instead of made.
void broker::shard::forget(queue_state& q, const message_ptr& msg, std::vector<store_transaction::remove_op>* into) {
    q.memory -= std::min(q.memory, msg->memory_size());
    if (!q.refused.empty()) q.refused.erase(msg->id);
    if (!msg->persistent) return;
    if (into) into->push_back(store_transaction::remove_op{q.name, msg->id});
    else owner.store_.remove(q.name, msg->id);
}

inflight_entry* broker::shard::find_inflight(consumer_state& c, delivery_tag tag) {
    if (c.inflight.empty() || tag < c.inflight.front().tag) return nullptr;
    // Tags ascend by at least one per entry, so `tag` is at most `tag - front` places in; with
    // this consumer the shard's only one taking deliveries (the usual case) it is exactly there,
    // found without the search (a binary search over a 1000-entry deque cost ~350 instructions
    // per settled delivery).
    const auto span = tag - c.inflight.front().tag;
    if (span < c.inflight.size() && c.inflight[span].tag == tag)
        return c.inflight[span].settled ? nullptr : &c.inflight[span];
    const auto end = span < c.inflight.size() ? c.inflight.begin() + static_cast<std::ptrdiff_t>(span) : c.inflight.end();
    auto it = std::lower_bound(c.inflight.begin(), end, tag,
                               [](const inflight_entry& f, delivery_tag t) { return f.tag < t; });
    if (it == c.inflight.end() || it->tag != tag || it->settled) return nullptr;
    return &*it;
}

void broker::shard::settle(consumer_state& c, inflight_entry& f) {
    f.settled = true;
    --c.unsettled;
    if (c.window) ++c.credit;   // window: settling gives the credit back
    if (f.from) --f.from->inflight;
}

void broker::shard::trim(consumer_state& c) {
    while (!c.inflight.empty() && c.inflight.front().settled) c.inflight.pop_front();
}

// Returns whether a persistent message was removed from the store. With `into` (a
// transaction's acks), the removes are collected there for one store transaction.
bool broker::shard::ack(consumer_id id, const std::vector<delivery_tag>& tags,
                        std::vector<store_transaction::remove_op>* into) {
    auto it = consumers.find(id);
    if (it == consumers.end()) return false;
    auto& c = *it->second;
    bool stored = false;
    for (auto tag : tags) {
        auto* f = find_inflight(c, tag);
        if (!f) continue;
        settle(c, *f);
        if (auto* q = f->from) {
            ++q->stats.dequeued;
            stored |= f->e.msg->persistent;
            forget(*q, f->e.msg, into);
        }
        release(f->e.msg);
    }
    send_home();
    trim(c);
    after_settle(c);
    return stored;
}

void broker::shard::release(message_ptr& m) {
    executor* home = m ? m->home.worker.load(std::memory_order_relaxed) : nullptr;
    // use_count 1: no other reference can appear (nobody else holds one to copy).
    if (!home || home == &exec || m.use_count() != 1) return m.reset();
    for (auto& [w, batch] : homeward)
        if (w == home) return batch.push_back(std::move(m));
    homeward.emplace_back(home, std::vector<message_ptr>{}).second.push_back(std::move(m));
}

void broker::shard::send_home() {
    for (auto& [w, batch] : homeward) {
        if (batch.empty()) continue;
        w->post([batch = std::move(batch)] {});   // destroyed there: freed on its own thread
        batch = {};
    }
}

void broker::shard::nack(consumer_id id, const std::vector<delivery_tag>& tags) {
    settle_with(id, tags, settle_outcome::modified(true, false), nullptr);
}

void broker::shard::settle_with(consumer_id id, const std::vector<delivery_tag>& tags, const settle_outcome& o,
                                const std::shared_ptr<settle_join>& join) {
    auto it = consumers.find(id);
    if (it == consumers.end()) return;
    auto& c = *it->second;
    std::vector<entry> back;
    std::vector<queue_state*> back_from;   // each entry's queue (a wildcard consumer has several)
    for (auto tag : tags) {
        auto* f = find_inflight(c, tag);
        if (!f) continue;
        settle(c, *f);
        if (f->from) {
            back.push_back(std::move(f->e));
            back_from.push_back(f->from);
        }
        f->e.msg.reset();
    }
    trim(c);
    auto apply = [&](queue_state& q, std::vector<entry> some) {
        using kind = settle_outcome::kind;
        switch (o.what) {
        case kind::accepted:   // broker::settle sends accepted to ack(); here for completeness
            for (auto& e : some) {
                ++q.stats.dequeued;
                forget(q, e.msg);
            }
            break;
        case kind::released:
            requeue(q, std::move(some), false, join);
            break;
        case kind::modified:
            if (o.undeliverable_here)
                for (const auto& e : some) q.refused[e.msg->id].push_back(c.id);
            requeue(q, std::move(some), o.delivery_failed, join);
            break;
        case kind::rejected:
            for (auto& e : some) dead_letter(q, std::move(e), o.reason, join);
            break;
        }
    };
    if (!back.empty()) {
        if (std::all_of(back_from.begin(), back_from.end(), [&](queue_state* q) { return q == back_from[0]; })) {
            apply(*back_from[0], std::move(back));
        } else {
            // Per queue, in delivery order within each.
            for (std::size_t i = 0; i < back.size(); ++i) {
                if (!back[i].msg) continue;
                queue_state* q = back_from[i];
                std::vector<entry> some;
                for (std::size_t j = i; j < back.size(); ++j)
                    if (back_from[j] == q && back[j].msg) some.push_back(std::move(back[j]));
                apply(*q, std::move(some));
            }
        }
    }
    after_settle(c);
}

void broker::shard::after_settle(consumer_state& c) {
    if (c.browse) {
        advance_browse(c);
    } else if (c.queue) {
        release_held(*c.queue);
        dispatch(*c.queue);
    } else if (c.wild_queues) {
        dispatch_wildcard(c);
    } else {
        drain_pending(c);
    }
}

// Puts `back` (in delivery order) at the head of the queue, each counted as a redelivery
// when `counted` (dead-lettered past max_redeliveries).
void broker::shard::requeue(queue_state& q, std::vector<entry> back, bool counted,
                            const std::shared_ptr<settle_join>& join) {
    for (auto it = back.rbegin(); it != back.rend(); ++it) {
        if (counted && ++it->redeliveries > settings().max_redeliveries) {
            dead_letter(q, std::move(*it), {}, join);
            continue;
        }
        q.push_front(std::move(*it));
    }
}

}  // namespace sb::core
