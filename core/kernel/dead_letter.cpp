// core/kernel/dead_letter.cpp — dead letters: a message past max_redeliveries, or rejected, goes to its DLQ.
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

std::string broker::shard::dlq_for(const std::string& queue_name) const {
    if (settings().dead_letter == dead_letter_policy::shared) return std::string(shared_dlq_name);
    return std::string(dlq_prefix) + queue_name;
}

void broker::shard::dead_letter(queue_state& q, entry e, std::string_view reason,
                                const std::shared_ptr<settle_join>& join) {
    ++q.stats.dead_lettered;
    advise_message("MessageDLQd", q, *e.msg);
    forget(q, e.msg);
    if (join && e.msg->persistent) {
        join->add();
        owner.store_.barrier([join] { join->part(); });
    }
    if (q.temporary) return;   // lives no longer than its connection: no dead letter queue
    const std::string dlq = dlq_for(q.name);
    if (dlq == q.name || q.name.starts_with(dlq_prefix)) {
        // A message that fails on a DLQ itself has nowhere further to go.
        return;
    }
    auto copy = std::make_shared<message>(*e.msg);
    copy->dest = destination{dest_kind::queue, dlq};
    copy->properties.push_back(property{std::string(original_destination_property),
                                        std::string("queue://") + q.name});
    if (!reason.empty())
        copy->properties.push_back(property{std::string(dlq_failure_cause_property), std::string(reason)});
    std::function<void(publish_status)> reply;
    if (join) {
        join->add();
        reply = [join](publish_status) { join->part(); };
    }
    auto& target = *owner.shards_[owner.shard_of(dlq)];
    target.exec.post([&target, copy = message_ptr(std::move(copy)), reply = std::move(reply)]() mutable {
        target.publish(std::move(copy), std::move(reply));
    });
}

}  // namespace sb::core
