// core/kernel/dead_letter.cpp — dead letters: a message past max_redeliveries, rejected, or
// expired (process_expired) goes to its DLQ, named by the first dead_letter_rule matching its
// queue, else by the broker-wide settings (ActiveMQ's shared / individual dead letter
// strategies). A DLQ never loops: what fails or expires in a DLQ is dropped, and the copy a DLQ
// gets does not expire (ActiveMQ: expiration 0, the old one kept as `originalExpiration`).
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

namespace {

// The broker-wide policy as a rule (rebuilt on the rare paths that need it).
dead_letter_rule broker_wide(const broker_settings& s) {
    dead_letter_rule r;
    r.pattern = ">";
    r.strategy = s.dead_letter;
    r.queue = s.dead_letter_queue;
    r.prefix = s.dead_letter_prefix;
    r.suffix = s.dead_letter_suffix;
    r.process_expired = s.dead_letter_expired;
    r.process_non_persistent = s.dead_letter_non_persistent;
    return r;
}

bool names_dlq(const dead_letter_rule& r, const std::string& name) {
    if (name == r.queue) return true;
    return !r.prefix.empty() && name.size() > r.prefix.size() + r.suffix.size() && name.starts_with(r.prefix) &&
           name.ends_with(r.suffix);
}

}  // namespace

const dead_letter_rule& broker::shard::dead_letter_rule_for(const std::string& queue_name) const {
    for (const auto& r : settings().dead_letter_rules)
        if (matches(r.pattern, queue_name)) return r;
    thread_local dead_letter_rule wide;
    wide = broker_wide(settings());
    return wide;
}

bool broker::shard::is_dead_letter_queue(const std::string& queue_name) const {
    if (names_dlq(broker_wide(settings()), queue_name)) return true;
    for (const auto& r : settings().dead_letter_rules)
        if (r.strategy == dead_letter_policy::shared ? queue_name == r.queue : names_dlq(r, queue_name)) return true;
    return false;
}

std::string broker::shard::dlq_for(const std::string& queue_name) const {
    const auto& r = dead_letter_rule_for(queue_name);
    if (r.strategy == dead_letter_policy::shared) return r.queue;
    return r.prefix + queue_name + r.suffix;
}

void broker::shard::expire(queue_state& q, entry e) {
    ++q.stats.expired;
    const auto& r = dead_letter_rule_for(q.name);
    if (!r.process_expired || q.temporary || is_dead_letter_queue(q.name)) {
        forget(q, e.msg);
        return;
    }
    // Counted and advised as expired, not as a delivery failure.
    const std::string reason = "Message Expired. Expiration:" + std::to_string(e.msg->expiration_ms);
    to_dead_letter_queue(q, std::move(e), reason, {});
}

void broker::shard::dead_letter(queue_state& q, entry e, std::string_view reason,
                                const std::shared_ptr<settle_join>& join) {
    ++q.stats.dead_lettered;
    advise_message("MessageDLQd", q, *e.msg);
    to_dead_letter_queue(q, std::move(e), reason, join);
}

void broker::shard::to_dead_letter_queue(queue_state& q, entry e, std::string_view reason,
                                         const std::shared_ptr<settle_join>& join) {
    forget(q, e.msg);
    if (join && e.msg->persistent) {
        join->add();
        owner.store_.barrier([join] { join->part(); });
    }
    if (q.temporary) return;   // lives no longer than its connection: no dead letter queue
    // A message that fails on a DLQ itself has nowhere further to go.
    if (is_dead_letter_queue(q.name)) return;
    const auto& rule = dead_letter_rule_for(q.name);
    if (!e.msg->persistent && !rule.process_non_persistent) return;
    const std::string dlq = dlq_for(q.name);
    if (dlq == q.name) return;
    auto copy = std::make_shared<message>(*e.msg);
    copy->dest = destination{dest_kind::queue, dlq};
    copy->properties.push_back(property{std::string(original_destination_property),
                                        std::string("queue://") + q.name});
    if (!reason.empty())
        copy->properties.push_back(property{std::string(dlq_failure_cause_property), std::string(reason)});
    if (copy->expiration_ms != 0) {
        copy->properties.push_back(property{"originalExpiration", copy->expiration_ms});
        copy->expiration_ms = 0;
    }
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
