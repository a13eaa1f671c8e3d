// core/kernel/shard.cpp — a shard's statistics.
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

void broker::shard::collect(std::vector<destination_stats>& out) const {
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

}  // namespace sb::core
