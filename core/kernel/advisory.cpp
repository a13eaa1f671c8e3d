// core/kernel/advisory.cpp — advisory topics (ActiveMQ's ActiveMQ.Advisory.*): the kernel
// publishes a message there when a consumer comes or goes, a temporary destination is created
// or deleted, or a queue message expires, for clients that watch them (docs/activemq-advisories.md).
//
// An advisory is built only when some subscription on this shard matches its topic (every
// shard holds every topic subscription), so a broker nobody watches pays one lookup per event.
// It is published, not persistent, from the topic's own shard like any publish.
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

namespace {

constexpr std::string_view prefix = "ActiveMQ.Advisory.";

void json_string(std::string& out, std::string_view s) {
    out += '"';
    for (char ch : s) {
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (static_cast<unsigned char>(ch) < 0x20) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\u00";
            out += hex[(ch >> 4) & 0xf];
            out += hex[ch & 0xf];
        } else {
            out += ch;
        }
    }
    out += '"';
}

// ActiveMQ's destination type names (ActiveMQDestination.getDestinationTypeAsString and the
// class names XStream writes).
std::string_view type_name(dest_kind k) {
    switch (k) {
    case dest_kind::queue: return "Queue";
    case dest_kind::topic: return "Topic";
    case dest_kind::temp_queue: return "TempQueue";
    case dest_kind::temp_topic: return "TempTopic";
    }
    return "Queue";
}

void json_destination(std::string& out, const destination& d) {
    out += R"({"@class":"ActiveMQ)";
    out += type_name(d.kind);
    out += R"(","string":)";
    json_string(out, d.name);
    out += '}';
}

void json_consumer_id(std::string& out, std::string_view broker, const consumer_state& c) {
    out += R"({"connectionId":)";
    json_string(out, "ID:" + std::string(broker) + "-" + std::to_string(c.connection));
    out += R"(,"value":)";
    out += std::to_string(c.id);
    out += '}';
}

}  // namespace

bool broker::shard::advisory_topic(const destination& d) noexcept {
    return d.is_topic() && std::string_view(d.name).starts_with(prefix);
}

bool broker::shard::watched(const std::string& topic) {
    if (auto e = exact_subs.find(topic); e != exact_subs.end() && !e->second.empty()) return true;
    std::vector<consumer_state*> subs;
    if (!wildcard_subs.empty()) wildcard_subs.match(topic, subs);
    if (!subs.empty()) return true;
    std::vector<const durable_state*> ds;
    if (!durable_filters.empty()) durable_filters.match(topic, ds);
    return !ds.empty();
}

void broker::shard::advise(std::string topic, std::string body, std::vector<property> props) {
    auto m = std::make_shared<message>();
    m->id = owner.next_message_id();
    m->dest = destination{dest_kind::topic, std::move(topic)};
    m->type = "Advisory";
    m->priority = 0;
    m->timestamp_ms = now_ms();
    m->kind = body_kind::text;
    m->body = std::move(body);
    props.push_back(property{"originBrokerName", settings().name});
    m->properties = std::move(props);
    auto& target = *owner.shards_[owner.shard_of(m->dest.name)];
    target.exec.post([&target, m = message_ptr(std::move(m))]() mutable { target.publish(std::move(m), {}); });
}

void broker::shard::advise_consumer(const consumer_state& c, bool added) {
    // Temporary destinations' consumers are their owner's own, and a wildcard queue consumer
    // (a queue pattern, no queue of its own) is in many queues: not advised.
    if (!settings().advisories || advisory_topic(c.dest) || c.browse || c.dest.is_temporary()) return;
    if (c.dest.is_queue() && !c.queue) return;
    std::string topic(prefix);
    topic += "Consumer.";
    topic += type_name(c.dest.kind);
    topic += '.';
    topic += c.dest.name;
    if (!watched(topic)) return;
    // consumerCount: the destination's consumers now, this one counted while it joins.
    std::int32_t count = 0;
    if (c.queue) {
        count = std::int32_t(c.queue->consumers.size());
    } else {
        for (const auto& [id, other] : consumers)
            if (!other->queue && !other->browse && other->dest == c.dest) ++count;
    }
    std::string body;
    if (added) {
        body = R"({"ConsumerInfo":{"consumerId":)";
        json_consumer_id(body, settings().name, c);
        body += R"(,"destination":)";
        json_destination(body, c.dest);
        body += R"(,"prefetchSize":)" + std::to_string(c.prefetch);
        body += R"(,"browser":false,"noLocal":)";
        body += c.no_local ? "true" : "false";
        body += R"(,"exclusive":)";
        body += c.exclusive ? "true" : "false";
        body += R"(,"priority":)" + std::to_string(int(c.priority)) + "}}";
    } else {
        body = R"({"RemoveInfo":{"objectId":)";
        json_consumer_id(body, settings().name, c);
        body.insert(body.size() - 1, R"(,"@class":"ConsumerId")");
        body += "}}";
    }
    advise(std::move(topic), std::move(body), {property{"consumerCount", count}});
}

void broker::shard::advise_temporary(const destination& d, std::uint64_t connection, bool added) {
    if (!settings().advisories) return;
    std::string topic(prefix);
    topic += type_name(d.kind);
    if (!watched(topic)) return;
    std::string body = R"({"DestinationInfo":{"connectionId":{"value":)";
    json_string(body, "ID:" + settings().name + "-" + std::to_string(connection));
    body += R"(},"destination":)";
    json_destination(body, d);
    body += R"(,"operationType":)";
    body += added ? "0" : "1";
    body += "}}";
    advise(std::move(topic), std::move(body), {});
}

void broker::shard::advise_message(std::string_view what, const queue_state& q, const message& m) {
    if (!settings().advisories) return;
    std::string topic(prefix);
    topic += what;
    topic += q.temporary ? ".TempQueue." : ".Queue.";
    topic += q.name;
    if (!watched(topic)) return;
    std::string id = "ID:" + settings().name + "-" + std::to_string(m.id);
    std::string body = R"({"Message":{"messageId":)";
    json_string(body, id);
    body += R"(,"destination":)";
    json_destination(body, m.dest);
    body += R"(,"expiration":)" + std::to_string(m.expiration_ms);
    body += R"(,"timestamp":)" + std::to_string(m.timestamp_ms);
    body += R"(,"persistent":)";
    body += m.persistent ? "true" : "false";
    body += R"(,"priority":)" + std::to_string(int(m.priority)) + "}}";
    // ActiveMQ's property name, misspelt as it is there.
    advise(std::move(topic), std::move(body), {property{"orignalMessageId", std::move(id)}});
}

}  // namespace sb::core
