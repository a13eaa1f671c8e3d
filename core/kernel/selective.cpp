// core/kernel/selective.cpp — message selectors in the kernel: queue dispatch past messages no
// consumer with credit selects (without rescanning them per dispatch), and the filter topics
// and durable subscriptions apply.
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

bool broker::shard::selects(const selector_ptr& s, const message& msg, std::uint32_t redeliveries) const noexcept {
    if (!s) return true;
    selector_context ctx;
    ctx.broker_name = settings().name;
    ctx.redeliveries = redeliveries;
    return s->matches(msg, ctx);
}

bool broker::shard::selects(const consumer_state& c, const message& msg, std::uint32_t redeliveries) const noexcept {
    return selects(c.selector, msg, redeliveries);
}

void broker::shard::selective_joined(queue_state& q, consumer_state& c) {
    if (!c.selector && !q.selective) return;
    if (!q.selective) q.selective = std::make_unique<selective_queue>();   // its epoch looks at everything again
    if (c.selector) ++q.selective->selectors;
    c.awaited = true;   // it may select messages that wait for it
}

void broker::shard::selective_left(queue_state& q, consumer_state& c) {
    if (!c.selector || !q.selective) return;
    // The messages are still in ready[], in order: plain dispatch takes over from here.
    if (--q.selective->selectors == 0) q.selective.reset();
}

broker::shard::consumer_state* broker::shard::choose_selecting(queue_state& q, const entry& e, bool awaited_only) {
    const std::size_t n = q.consumers.size();
    const std::vector<consumer_id>* refusers = nullptr;
    if (!q.refused.empty())
        if (auto r = q.refused.find(e.msg->id); r != q.refused.end()) refusers = &r->second;
    for (std::size_t i = 0; i < n; ++i) {
        auto* c = q.consumers[(q.next_consumer + i) % n];
        if (!c->has_credit() || (awaited_only && !c->awaited)) continue;
        if (!selects(*c, *e.msg, e.redeliveries)) continue;
        if (refusers && std::find(refusers->begin(), refusers->end(), c->id) != refusers->end()) continue;
        q.next_consumer = (q.next_consumer + i + 1) % n;
        return c;
    }
    return nullptr;
}

// Two passes over ready[], highest priority first:
//   1. the waiting part ([0, waiting[p])), only when an awaited consumer has credit now, and
//      offered to the awaited consumers only (the others had credit when these messages were
//      looked at and did not select them);
//   2. the rest, from waiting[p] on: each message goes to the next consumer with credit that
//      selects it, or joins the waiting part, marking the consumers without credit that select
//      it as awaited.
// So a message nobody selects is looked at once per consumer change, not per dispatch.
void broker::shard::dispatch_selective(queue_state& q) {
    if (q.consumers.empty()) return;
    auto& s = *q.selective;
    if (s.epoch != q.front_epoch) {
        // Messages were put back at (or taken from) the head: look at all of them again.
        s.waiting.fill(0);
        s.waiting_total = 0;
        s.epoch = q.front_epoch;
        for (auto* c : q.consumers) c->awaited = true;
    }
    const std::int64_t now = now_ms();
    // Takes ready[p][i] out of the queue (not through pop(): the head did not change for us).
    auto take = [&q](std::size_t p, std::size_t i) {
        entry e = std::move(q.ready[p][i]);
        q.ready[p].erase(q.ready[p].begin() + std::ptrdiff_t(i));
        --q.ready_count;
        return e;
    };

    if (s.waiting_total > 0) {
        std::size_t eligible = 0;
        for (auto* c : q.consumers) eligible += c->awaited && c->has_credit();
        for (std::size_t p = priority_levels; p-- > 0 && eligible > 0;) {
            for (std::size_t i = 0; i < s.waiting[p] && eligible > 0;) {
                const entry& e = q.ready[p][i];
                if (e.msg->expired_at(now)) {
                    entry gone = take(p, i);
                    --s.waiting[p];
                    --s.waiting_total;
                    expire(q, std::move(gone));   // to the DLQ or dropped (dead_letter.cpp)
                    continue;
                }
                auto* c = choose_selecting(q, e, true);
                if (!c) {
                    ++i;
                    continue;
                }
                --s.waiting[p];
                --s.waiting_total;
                deliver(*c, take(p, i), &q);
                if (!c->has_credit()) --eligible;
            }
        }
        // Those with credit left were offered every waiting message: none waits for them now.
        for (auto* c : q.consumers)
            if (c->awaited && c->has_credit()) c->awaited = false;
    }

    // Consumers with credit are counted only when a message finds none that selects it (the
    // common case, a message that some consumer takes, costs one choose_selecting).
    auto any_credit = [&q] {
        return std::any_of(q.consumers.begin(), q.consumers.end(), [](const consumer_state* c) { return c->has_credit(); });
    };
    for (;;) {
        for (std::size_t p = priority_levels; p-- > 0;) {
            while (s.waiting[p] < q.ready[p].size()) {
                const std::size_t i = s.waiting[p];
                const entry& e = q.ready[p][i];
                if (e.msg->expired_at(now)) {
                    entry gone = take(p, i);
                    expire(q, std::move(gone));   // to the DLQ or dropped (dead_letter.cpp)
                    continue;
                }
                if (auto* c = choose_selecting(q, e, false)) {
                    deliver(*c, take(p, i), &q);
                    continue;
                }
                if (!any_credit()) return;
                for (auto* c : q.consumers)
                    if (!c->awaited && !c->has_credit() && selects(*c, *e.msg, e.redeliveries)) c->awaited = true;
                ++s.waiting[p];
                ++s.waiting_total;
            }
        }
        if (q.paged_count == 0 || !any_credit()) return;
        // Paged-out messages come back when the queue wants them, or when everything in memory
        // waits (what is paged out may be selected).
        if (!wants_page_in(q) && s.waiting_total < q.ready_count) return;
        const std::size_t before = q.paged_count;
        page_in(q);
        if (q.paged_count == before) return;
    }
}

}  // namespace sb::core
