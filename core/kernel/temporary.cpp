// core/kernel/temporary.cpp — temporary destinations (owned by a connection, deleted with it)
// and the kernel's per-connection table (its open transactions and temporary destinations).
#include "core/kernel/shard.hpp"
#include "core/transaction.hpp"

namespace sb::core {

using namespace kernel;

// ---- on the owner shard ----------------------------------------------------------------------

void broker::shard::create_temporary(const destination& d, std::uint64_t connection) {
    auto& t = temporaries[d.name];
    t.owner = connection;
    t.kind = d.kind;
    if (d.kind == dest_kind::temp_queue) {
        t.queue = std::make_unique<queue_state>();
        t.queue->name = d.name;
        t.queue->temporary = true;
    }
    advise_temporary(d, connection, true);
}

void broker::shard::drop_temporary(const std::string& name) {
    auto it = temporaries.find(name);
    if (it == temporaries.end()) return;
    auto& t = it->second;
    // Its consumers are the owner's, which is closing: they go with it, and what they hold in
    // flight too (a later ack, nack or unsubscribe of theirs finds nothing and is ignored).
    const auto& subs = t.queue ? t.queue->consumers : t.subs;
    for (auto* c : subs) {
        release_replies(*c);
        unmark(c->subscriber, c->mark);
        consumers.erase(c->id);
    }
    if (t.queue) {
        for (auto& h : t.queue->held)   // never enqueued: their producers learn it is gone
            if (h.reply) h.reply(publish_status::no_destination);
    }
    advise_temporary(destination{t.kind, name}, t.owner, false);
    temporaries.erase(it);
}

void broker::shard::publish_temporary(message_ptr msg, std::function<void(publish_status)> reply,
                                      std::size_t* matched) {
    auto it = temporaries.find(msg->dest.name);
    if (it == temporaries.end() || it->second.kind != msg->dest.kind) {
        if (matched) *matched = 0;
        if (reply) reply(publish_status::no_destination);
        return;
    }
    if (msg->persistent) {
        // Nothing of a temporary destination outlives its connection, so nothing is stored: a
        // persistent send is accepted as the non-persistent message it is here.
        auto copy = std::make_shared<message>(*msg);
        copy->persistent = false;
        msg = std::move(copy);
    }
    auto& t = it->second;
    if (t.queue) {
        auto& q = *t.queue;
        if (matched) *matched = 1;
        if (!q.held.empty() || q.memory >= settings().queue_memory_limit) {
            q.held.push_back({std::move(msg), std::move(reply), false});
            return;
        }
        enqueue(q, std::move(msg), std::move(reply));
        dispatch(q);
        return;
    }
    // A temporary topic: its own subscriptions only (no wildcard, shared or durable one
    // matches it, and it keeps no retained message).
    ++t.topic.enqueued;
    consumer_state* slow = nullptr;
    std::size_t hits = 0;
    for (auto* sub : t.subs) {
        if (!selects(*sub, *msg)) continue;
        if (!skips(*sub, *msg)) ++hits;
        if (auto* congested = offer(*sub, t.topic, msg); congested && !slow) slow = congested;
    }
    if (matched) *matched = hits;
    if (!reply) return;
    if (slow) slow->held_replies.push_back(std::move(reply));
    else reply(publish_status::ok);
}

subscribe_status broker::shard::subscribe_temporary(consumer_id id, const destination& dest,
                                                    const subscribe_options& opt,
                                                    const std::weak_ptr<consumer_sink>& sink, executor* home) {
    auto it = temporaries.find(dest.name);
    if (it == temporaries.end() || it->second.kind != dest.kind) return subscribe_status::no_destination;
    auto& t = it->second;
    // As ActiveMQ: only the connection that created a temporary destination consumes from it.
    if (opt.connection != t.owner) return subscribe_status::not_owner;
    auto& c = add_consumer(id, dest, opt, sink, home);
    c.credit_shard = index;   // its only copy: link credit is granted and taken here
    if (t.queue) {
        c.queue = t.queue.get();
        t.queue->consumers.push_back(&c);
        selective_joined(*t.queue, c);
        dispatch(*t.queue);
    } else {
        t.subs.push_back(&c);
    }
    return subscribe_status::ok;
}

// ---- public ----------------------------------------------------------------------------------

destination broker::create_temporary(std::uint64_t connection, dest_kind kind, std::function<void()> done) {
    executor* home = &calling_worker();
    auto& entry = connections_[home->index()].by_id[connection];
    const bool topic = kind == dest_kind::topic || kind == dest_kind::temp_topic;
    // ActiveMQ-style: "ID:" the broker, the connection, a count within the connection.
    destination d{topic ? dest_kind::temp_topic : dest_kind::temp_queue,
                  "ID:" + settings_.name + "-" + std::to_string(connection) + "-" +
                      std::to_string(++entry.temporaries_made)};
    entry.temporaries.push_back(d);
    auto& s = *shards_[shard_of(d.name)];
    s.exec.post([&s, d, connection, home, done = std::move(done)]() {
        s.create_temporary(d, connection);
        if (done) home->post(done);
    });
    return d;
}

void broker::subscribe_checked(consumer_id id, const destination& dest, subscribe_options opt,
                               std::weak_ptr<consumer_sink> sink, std::function<void(subscribe_status)> done) {
    if (!dest.is_temporary()) {
        std::function<void()> ok;
        if (done) ok = [done = std::move(done)]() { done(subscribe_status::ok); };
        return subscribe(id, dest, std::move(opt), std::move(sink), std::move(ok));
    }
    executor* home = &calling_worker();
    auto reply = on_home(home, std::move(done));
    auto& s = *shards_[shard_of(dest.name)];
    s.exec.post([&s, id, dest, opt = std::move(opt), sink = std::move(sink), home, reply = std::move(reply)]() {
        const auto status = s.subscribe_temporary(id, dest, opt, sink, home);
        if (reply) reply(status);
    });
}

void broker::connection_closed(std::uint64_t connection, std::function<void()> done) {
    executor* home = &calling_worker();
    auto& table = connections_[home->index()].by_id;
    auto it = table.find(connection);
    if (it == table.end()) {
        if (done) home->post(std::move(done));
        return;
    }
    auto entry = std::move(it->second);
    table.erase(it);   // first: a rollback below finds nothing to leave
    for (auto* tx : entry.transactions) tx->rollback();
    for (const auto& [id, dest] : entry.producers) {   // advisory.cpp
        auto& s = *shards_[shard_of(dest.name)];
        s.exec.post([&s, id = id] { s.remove_producer(id); });
    }
    if (entry.temporaries.empty()) {
        if (done) home->post(std::move(done));
        return;
    }
    auto one_done = countdown(entry.temporaries.size(), home, std::move(done));
    for (const auto& d : entry.temporaries) {
        auto& s = *shards_[shard_of(d.name)];
        s.exec.post([&s, name = d.name, one_done]() {
            s.drop_temporary(name);
            one_done();
        });
    }
}

}  // namespace sb::core
