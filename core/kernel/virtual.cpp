// core/kernel/virtual.cpp — destinations that stand for others: composite destinations (one
// send to several) and virtual topics (ActiveMQ's VirtualTopic.> with Consumer.<name>.<topic>
// queues), and the routing of a publish to the shard(s) that take it.
//
// Virtual topics: a consumer queue (virtual_topic_prefix with its '*' levels standing for a
// consumer name, then the topic, then virtual_topic_postfix; "Consumer.A.VirtualTopic.Orders"
// by default) exists for the kernel once a consumer subscribed to it: it is then registered
// on every shard as a durable subscription of the topic whose queue is the consumer queue, so
// the topic's shard posts each message published to the topic there (stored when persistent,
// the publish completing once it is), also while no consumer is attached, like ActiveMQ's
// queue that outlives its consumers. The registration is kept by the store (a subscription
// record "$virtual:<queue>"), so after a restart the queue keeps collecting before a consumer
// comes back. The copy a consumer queue gets is addressed to that queue and carries the
// topic as `original-destination` (as ActiveMQ's copy does).
#include "core/destination/composite.hpp"
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

namespace {

constexpr std::string_view virtual_record_prefix = "$virtual:";

// The levels of a name ("a.b.c" -> a, b, c); a trailing '.' adds no level.
std::vector<std::string_view> levels_of(std::string_view s) {
    std::vector<std::string_view> out;
    while (!s.empty()) {
        const auto dot = s.find('.');
        out.push_back(s.substr(0, dot));
        if (dot == std::string_view::npos) break;
        s.remove_prefix(dot + 1);
    }
    return out;
}

}  // namespace

void broker::route(message_ptr msg, std::function<void(publish_status)> reply) {
    if (is_composite(msg->dest.name)) {
        auto parts = composite_parts(msg->dest.name);
        if (parts.empty()) {
            if (reply) reply(publish_status::invalid);
            return;
        }
        auto join = std::make_shared<publish_join>();
        join->left = parts.size();
        join->reply = std::move(reply);
        for (auto& d : parts) {
            auto copy = std::make_shared<message>(*msg);
            copy->dest = std::move(d);
            auto& s = *shards_[shard_of(copy->dest.name)];
            s.exec.post([&s, copy = message_ptr(std::move(copy)), join]() mutable {
                s.publish(std::move(copy), [join](publish_status st) { join->part(st); });
            });
        }
        return;
    }
    auto& s = *shards_[shard_of(msg->dest.name)];
    s.exec.post([&s, msg = std::move(msg), reply = std::move(reply)]() mutable {
        s.publish(std::move(msg), std::move(reply));
    });
}

void broker::expand_sends(std::vector<message_ptr>& sends, std::vector<message_ptr>& later) const {
    bool any = false;
    for (const auto& m : sends) any |= scheduled(*m) || is_composite(m->dest.name);
    if (!any) return;
    std::vector<message_ptr> out;
    for (auto& m : sends) {
        if (scheduled(*m)) {
            later.push_back(std::move(m));
        } else if (is_composite(m->dest.name)) {
            for (auto& d : composite_parts(m->dest.name)) {
                auto copy = std::make_shared<message>(*m);
                copy->dest = std::move(d);
                out.push_back(std::move(copy));
            }
        } else {
            out.push_back(std::move(m));
        }
    }
    sends = std::move(out);
}

std::optional<std::string> broker::virtual_topic_of(std::string_view queue) const {
    const auto& st = settings_;
    if (st.virtual_topic_name.empty()) return std::nullopt;
    const auto prefix = levels_of(st.virtual_topic_prefix);
    std::string_view rest = queue;
    for (const auto& level : prefix) {
        const auto dot = rest.find('.');
        if (dot == std::string_view::npos) return std::nullopt;
        const auto got = rest.substr(0, dot);
        if (got.empty() || (level != "*" && level != got)) return std::nullopt;
        rest.remove_prefix(dot + 1);
    }
    if (!st.virtual_topic_postfix.empty()) {
        if (!rest.ends_with(st.virtual_topic_postfix) || rest.size() == st.virtual_topic_postfix.size())
            return std::nullopt;
        rest.remove_suffix(st.virtual_topic_postfix.size());
    }
    if (rest.empty() || has_wildcard(rest) || !valid_name(rest) || !matches(st.virtual_topic_name, rest))
        return std::nullopt;
    return std::string(rest);
}

void broker::register_virtual(const std::string& queue, const std::string& topic, std::function<void()> done) {
    executor* home = &calling_worker();
    {
        std::lock_guard lock(virtual_mutex_);
        if (!virtual_queues_.insert(queue).second) {
            // Registered before: every shard has it already.
            home->post(std::move(done));
            return;
        }
    }
    store_.put_subscription(subscription_record{std::string(virtual_record_prefix) + queue,
                                                destination{dest_kind::topic, topic}, {}});
    auto one_done = countdown(shards_.size(), home, std::move(done));
    for (auto& sp : shards_) {
        auto& s = *sp;
        s.exec.post([&s, queue, topic, one_done]() {
            s.register_virtual(queue, topic);
            one_done();
        });
    }
}

bool broker::recover_virtual(const subscription_record& r) {
    if (!r.name.starts_with(virtual_record_prefix)) return false;
    const std::string queue = r.name.substr(virtual_record_prefix.size());
    // Registered only while the settings still make it a consumer queue of that topic.
    if (virtual_topic_of(queue) == r.filter.name) {
        virtual_queues_.insert(queue);
        for (auto& s : shards_) s->register_virtual(queue, r.filter.name);
    } else {
        store_.remove_subscription(r.name);
    }
    return true;
}

void broker::shard::register_virtual(const std::string& queue, const std::string& topic) {
    const std::string name = std::string(virtual_record_prefix) + queue;
    register_durable(name, destination{dest_kind::topic, topic});
    auto& d = durables[name];
    d.queue = queue;
    d.virtual_queue = true;
}

message_ptr broker::shard::copy_for(const durable_state& d, const message_ptr& msg) {
    if (!d.virtual_queue) return msg;
    auto copy = std::make_shared<message>(*msg);
    copy->dest = destination{dest_kind::queue, d.queue};
    copy->properties.push_back(property{std::string(original_destination_property), "topic://" + msg->dest.name});
    return copy;
}

}  // namespace sb::core
