// core/kernel/advisory.cpp — advisory topics (ActiveMQ's ActiveMQ.Advisory.*): the kernel
// publishes a message there when a consumer comes or goes, a temporary destination is created
// or deleted, or a queue message expires, for clients that watch them (docs/activemq-advisories.md).
//
// An advisory is built only when some subscription on this shard matches its topic (every
// shard holds every topic subscription), so a broker nobody watches pays one lookup per event.
// It is published, not persistent, from the topic's own shard like any publish.
//
// Producers (broker::add_producer, for the protocols that register them) are kept on their
// destination's shard for their advisories only. A new watcher of Consumer.*, Producer.*,
// TempQueue or TempTopic is first sent what exists (ActiveMQ's AdvisoryBroker replays it the
// same way): each shard, as it registers its copy of the subscription, sends it the advisories
// of the consumers, producers and temporary destinations it advises, to that subscription only.
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

namespace {

constexpr std::string_view prefix = "ActiveMQ.Advisory.";
constexpr std::string_view consumer_prefix = "ActiveMQ.Advisory.Consumer.";
constexpr std::string_view producer_prefix = "ActiveMQ.Advisory.Producer.";

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

void json_producer_id(std::string& out, std::string_view broker, std::uint64_t connection, producer_id id) {
    out += R"({"connectionId":)";
    json_string(out, "ID:" + std::string(broker) + "-" + std::to_string(connection));
    out += R"(,"value":)";
    out += std::to_string(id);
    out += '}';
}

// Whether consumer `c` is advised: temporary destinations' consumers are their owner's own, a
// wildcard queue consumer (a queue pattern, no queue of its own) is in many queues, and
// neither browsers nor watchers of advisory topics are advised.
bool advisable(const consumer_state& c) noexcept {
    if (c.browse || c.dest.is_temporary()) return false;
    if (c.dest.is_topic() && std::string_view(c.dest.name).starts_with(prefix)) return false;
    return !c.dest.is_queue() || c.queue;
}

std::string consumer_topic(const destination& d) {
    std::string topic(consumer_prefix);
    topic += type_name(d.kind);
    topic += '.';
    topic += d.name;
    return topic;
}

// ActiveMQ's getProducerAdvisoryTopic: Queue for queues and temporary queues, Topic otherwise,
// a ',' (a composite destination's) written as "&sbquo;".
std::string producer_topic(const destination& d) {
    std::string topic(producer_prefix);
    topic += d.is_queue() ? "Queue." : "Topic.";
    for (const char ch : d.name) {
        if (ch == ',') topic += "&sbquo;";
        else topic += ch;
    }
    return topic;
}

std::string consumer_info(std::string_view broker, const consumer_state& c) {
    std::string body = R"({"ConsumerInfo":{"consumerId":)";
    json_consumer_id(body, broker, c);
    body += R"(,"destination":)";
    json_destination(body, c.dest);
    body += R"(,"prefetchSize":)" + std::to_string(c.prefetch);
    body += R"(,"browser":false,"noLocal":)";
    body += c.no_local ? "true" : "false";
    body += R"(,"exclusive":)";
    body += c.exclusive ? "true" : "false";
    body += R"(,"priority":)" + std::to_string(int(c.priority)) + "}}";
    return body;
}

std::string producer_info(std::string_view broker, std::uint64_t connection, producer_id id, const destination& d) {
    std::string body = R"({"ProducerInfo":{"producerId":)";
    json_producer_id(body, broker, connection, id);
    body += R"(,"destination":)";
    json_destination(body, d);
    body += R"(,"dispatchAsync":false,"windowSize":0}})";
    return body;
}

// ActiveMQ's RemoveInfo: the object's id, with its class.
std::string remove_info(std::string id, std::string_view id_class) {
    std::string body = R"({"RemoveInfo":{"objectId":)";
    id.pop_back();
    body += id;
    body += R"(,"@class":)";
    json_string(body, id_class);
    body += "}}}";
    return body;
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
    auto m = advisory(std::move(topic), std::move(body), std::move(props));
    auto& target = *owner.shards_[owner.shard_of(m->dest.name)];
    target.exec.post([&target, m = std::move(m)]() mutable { target.publish(std::move(m), {}); });
}

message_ptr broker::shard::advisory(std::string topic, std::string body, std::vector<property> props) {
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
    return m;
}

std::int32_t broker::shard::consumer_count(const consumer_state& c) const {
    // The destination's consumers now, this one counted while it joins.
    if (c.queue) return std::int32_t(c.queue->consumers.size());
    std::int32_t count = 0;
    for (const auto& [id, other] : consumers)
        if (!other->queue && !other->browse && other->dest == c.dest) ++count;
    return count;
}

void broker::shard::advise_consumer(const consumer_state& c, bool added) {
    if (!settings().advisories || !advisable(c)) return;
    auto topic = consumer_topic(c.dest);
    if (!watched(topic)) return;
    std::string body;
    if (added) {
        body = consumer_info(settings().name, c);
    } else {
        std::string id;
        json_consumer_id(id, settings().name, c);
        body = remove_info(std::move(id), "ConsumerId");
    }
    advise(std::move(topic), std::move(body), {property{"consumerCount", consumer_count(c)}});
}

void broker::shard::add_producer(std::uint64_t connection, producer_id id, const destination& dest) {
    if (advisory_topic(dest) || !producers.try_emplace(id, producer_state{connection, dest}).second) return;
    auto topic = producer_topic(dest);
    const auto count = ++producer_counts[topic];
    if (!watched(topic)) return;
    advise(std::move(topic), producer_info(settings().name, connection, id, dest),
           {property{"producerCount", std::int32_t(count)}});
}

void broker::shard::remove_producer(producer_id id) {
    const auto it = producers.find(id);
    if (it == producers.end()) return;
    const auto p = std::move(it->second);
    producers.erase(it);
    auto topic = producer_topic(p.dest);
    std::uint32_t count = 0;
    if (auto c = producer_counts.find(topic); c != producer_counts.end()) {
        count = --c->second;
        if (count == 0) producer_counts.erase(c);
    }
    if (!watched(topic)) return;
    std::string pid;
    json_producer_id(pid, settings().name, p.connection, id);
    advise(std::move(topic), remove_info(std::move(pid), "ProducerId"), {property{"producerCount", std::int32_t(count)}});
}

void broker::shard::replay_advisories(consumer_state& sub) {
    if (!settings().advisories || !advisory_topic(sub.dest)) return;
    const std::string_view filter = sub.dest.name;
    // Sorted by the id of what they advise, so that each shard's replay has a stable order.
    std::vector<std::pair<std::uint64_t, message_ptr>> out;
    auto add = [&](std::uint64_t key, std::string topic, auto body, std::vector<property> props) {
        if (!matches(filter, topic)) return;
        auto m = advisory(std::move(topic), body(), std::move(props));
        if (selects(sub, *m)) out.emplace_back(key, std::move(m));
    };
    if (filter.starts_with(consumer_prefix)) {
        for (const auto& [id, c] : consumers) {
            // Advised here: a queue consumer on its queue's shard, a topic subscription (on
            // every shard) on its topic's.
            if (!advisable(*c) || (!c->queue && owner.shard_of(c->dest.name) != index)) continue;
            add(id, consumer_topic(c->dest), [&] { return consumer_info(settings().name, *c); },
                {property{"consumerCount", consumer_count(*c)}});
        }
    }
    if (filter.starts_with(producer_prefix)) {
        for (const auto& [id, p] : producers) {
            const auto topic = producer_topic(p.dest);
            const auto n = producer_counts.find(topic);
            add(id, topic, [&] { return producer_info(settings().name, p.connection, id, p.dest); },
                {property{"producerCount", std::int32_t(n == producer_counts.end() ? 0 : n->second)}});
        }
    }
    if (filter == std::string(prefix) + "TempQueue" || filter == std::string(prefix) + "TempTopic") {
        for (const auto& [name, t] : temporaries) {
            std::string topic(prefix);
            topic += type_name(t.kind);
            add(t.owner, std::move(topic),
                [&] { return temporary_info(destination{t.kind, name}, t.owner, true); }, {});
        }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    counters scratch;   // not the advisory topic's counters: those are its own shard's
    for (auto& [key, m] : out) offer(sub, scratch, m);
}


std::string broker::shard::temporary_info(const destination& d, std::uint64_t connection, bool added) const {
    std::string body = R"({"DestinationInfo":{"connectionId":{"value":)";
    json_string(body, "ID:" + settings().name + "-" + std::to_string(connection));
    body += R"(},"destination":)";
    json_destination(body, d);
    body += R"(,"operationType":)";
    body += added ? "0" : "1";
    body += "}}";
    return body;
}

void broker::shard::advise_temporary(const destination& d, std::uint64_t connection, bool added) {
    if (!settings().advisories) return;
    std::string topic(prefix);
    topic += type_name(d.kind);
    if (!watched(topic)) return;
    advise(std::move(topic), temporary_info(d, connection, added), {});
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

// ---- the public producer calls (broker.hpp) ----------------------------------------------

void broker::add_producer(std::uint64_t connection, producer_id id, const destination& dest) {
    if (!settings_.advisories || dest.name.empty()) return;
    executor* home = &calling_worker();
    connections_[home->index()].by_id[connection].producers.emplace_back(id, dest);
    auto& s = *shards_[shard_of(dest.name)];
    s.exec.post([&s, connection, id, dest] { s.add_producer(connection, id, dest); });
}

void broker::remove_producer(std::uint64_t connection, producer_id id) {
    if (!settings_.advisories) return;
    executor* home = &calling_worker();
    auto& table = connections_[home->index()].by_id;
    const auto it = table.find(connection);
    if (it == table.end()) return;
    auto& list = it->second.producers;
    const auto p = std::find_if(list.begin(), list.end(), [id](const auto& e) { return e.first == id; });
    if (p == list.end()) return;
    auto& s = *shards_[shard_of(p->second.name)];
    list.erase(p);
    if (it->second.empty()) table.erase(it);
    s.exec.post([&s, id] { s.remove_producer(id); });
}

}  // namespace sb::core
