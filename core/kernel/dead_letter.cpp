// core/kernel/dead_letter.cpp — dead letters: a message past max_redeliveries goes to its DLQ.
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

std::string broker::shard::dlq_for(const std::string& queue_name) const {
    if (settings().dead_letter == dead_letter_policy::shared) return std::string(shared_dlq_name);
    return std::string(dlq_prefix) + queue_name;
}

void broker::shard::dead_letter(queue_state& q, entry e) {
    ++q.stats.dead_lettered;
    forget(q, e.msg);
    const std::string dlq = dlq_for(q.name);
    if (dlq == q.name || q.name.starts_with(dlq_prefix)) {
        // A message that fails on a DLQ itself has nowhere further to go.
        return;
    }
    auto copy = std::make_shared<message>(*e.msg);
    copy->dest = destination{dest_kind::queue, dlq};
    copy->properties.push_back(property{std::string(original_destination_property),
                                        std::string("queue://") + q.name});
    auto& target = *owner.shards_[owner.shard_of(dlq)];
    target.exec.post([&target, copy = message_ptr(std::move(copy))]() mutable {
        target.publish(std::move(copy), {});
    });
}

}  // namespace sb::core
