// core/kernel/paging.cpp — paging: persistent messages beyond a queue's memory limit stay in the store only.
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

// A persistent message beyond the memory limit stays in the store only (when the store
// can load it back), rather than holding its producer; so does one behind paged-out
// messages of its priority, to keep their order. Non-persistent messages are not paged:
// they hold producers beyond the limit, and may overtake paged-out persistent ones (JMS
// leaves the order across delivery modes open).
bool broker::shard::pages_out(const queue_state& q, const message& m, bool as_retained) const noexcept {
    return owner.paging_ && m.persistent && !as_retained &&
           (q.memory >= settings().queue_memory_limit || !q.paged[level_of(m)].empty());
}

void broker::shard::page_out(queue_state& q, message_ptr msg, std::function<void(publish_status)> reply, bool stored) {
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
bool broker::shard::wants_page_in(const queue_state& q) const noexcept {
    if (q.paged_count == 0) return false;
    if (q.ready_count == 0 || q.memory < settings().queue_memory_limit / 2) return true;
    return q.top_paged() > q.top_ready();
}

// Loads paged-out messages back (highest priority first, oldest first) until the queue is
// at its memory limit or page_in_bytes were read; at least one id leaves `paged`.
void broker::shard::page_in(queue_state& q) {
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
void broker::shard::trim_depth(queue_state& q) {
    while (q.max_depth && q.ready_count + q.paged_count > q.max_depth) {
        drop_oldest(q);
        ++q.stats.dropped;
    }
}

// Forgets the oldest message of the lowest priority present, in memory or paged out.
void broker::shard::drop_oldest(queue_state& q) {
    for (std::size_t p = 0; p < priority_levels; ++p) {
        if (!q.ready[p].empty()) {
            entry e = std::move(q.ready[p].front());
            q.ready[p].pop_front();
            --q.ready_count;
            ++q.front_epoch;
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

}  // namespace sb::core
