// tests/unit/core/advisory_test.cpp — advisory topics (ActiveMQ.Advisory.*): published by the
// kernel when broker_settings::advisories is on and someone subscribes to them; none otherwise.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "tests/unit/core/kernel_fixture.hpp"

using namespace sb::core;
using sb::test::kernel_fixture;
using sb::test::store_kind;

namespace {

const destination q{dest_kind::queue, "orders"};

broker_settings with_advisories(bool on) {
    broker_settings s;
    s.advisories = on;
    s.max_redeliveries = 0;
    return s;
}

destination advisory(std::string name) { return destination{dest_kind::topic, "ActiveMQ.Advisory." + std::move(name)}; }

std::string text_of(const message& m, std::string_view name) {
    const auto* v = m.find_property(name);
    return v ? to_text(*v) : std::string("(none)");
}

void unsubscribe(kernel_fixture& f, const kernel_fixture::subscription& s, const destination& d) {
    bool done = false;
    f.w[0].call([&] { f.b->unsubscribe(s.id, d, [&] { done = true; }); });
    REQUIRE(f.w.run_until([&] { return done; }));
}

}  // namespace

TEST_CASE("advisories: a queue consumer's arrival and departure, with the consumer count", "[core][broker][advisory]") {
    kernel_fixture f(store_kind::memory, with_advisories(true));
    auto watcher = f.subscribe(advisory("Consumer.Queue.orders"));
    auto all = f.subscribe(advisory("Consumer.>"));
    auto c1 = f.subscribe(q);
    auto c2 = f.subscribe(q);
    unsubscribe(f, c1, q);
    f.w.run();
    REQUIRE(watcher.s->got.size() == 3);
    const auto& added = *watcher.s->got[0].msg;
    CHECK(added.type == "Advisory");
    CHECK(added.dest == advisory("Consumer.Queue.orders"));
    CHECK(text_of(added, "consumerCount") == "1");
    CHECK(text_of(added, "originBrokerName") == "switchboard");
    CHECK(added.body.starts_with(R"({"ConsumerInfo":{)"));
    CHECK(added.body.find(R"("destination":{"@class":"ActiveMQQueue","string":"orders"})") != std::string::npos);
    CHECK(text_of(*watcher.s->got[1].msg, "consumerCount") == "2");
    const auto& removed = *watcher.s->got[2].msg;
    CHECK(text_of(removed, "consumerCount") == "1");
    CHECK(removed.body.starts_with(R"({"RemoveInfo":)"));
    CHECK(all.s->got.size() == 3);   // a wildcard watcher too
}

TEST_CASE("advisories: topic subscriptions are advised once, from the topic's shard", "[core][broker][advisory]") {
    kernel_fixture f(store_kind::memory, with_advisories(true));
    auto watcher = f.subscribe(advisory("Consumer.Topic.prices"));
    const destination t{dest_kind::topic, "prices"};
    auto s1 = f.subscribe(t);
    auto s2 = f.subscribe(t);
    unsubscribe(f, s2, t);
    f.w.run();
    REQUIRE(watcher.s->got.size() == 3);
    CHECK(text_of(*watcher.s->got[0].msg, "consumerCount") == "1");
    CHECK(text_of(*watcher.s->got[1].msg, "consumerCount") == "2");
    CHECK(text_of(*watcher.s->got[2].msg, "consumerCount") == "1");
    CHECK(watcher.s->got[0].msg->body.find(R"("@class":"ActiveMQTopic")") != std::string::npos);
}

TEST_CASE("advisories: off by default, and a subscription to an advisory topic is not advised",
          "[core][broker][advisory]") {
    kernel_fixture off(store_kind::memory, with_advisories(false));
    auto w1 = off.subscribe(advisory("Consumer.Queue.orders"));
    auto c = off.subscribe(q);
    off.w.run();
    CHECK(w1.s->got.empty());

    kernel_fixture on(store_kind::memory, with_advisories(true));
    auto w2 = on.subscribe(advisory("Consumer.Topic.>"));
    auto w3 = on.subscribe(advisory("Consumer.Topic.ActiveMQ.Advisory.Consumer.Topic.x"));
    on.w.run();
    CHECK(w2.s->got.empty());
    CHECK(w3.s->got.empty());
}

TEST_CASE("advisories: temporary destinations created and deleted", "[core][broker][advisory]") {
    kernel_fixture f(store_kind::memory, with_advisories(true));
    auto watcher = f.subscribe(advisory("TempQueue"));
    destination d;
    bool made = false;
    f.w[0].call([&] { d = f.b->create_temporary(7, dest_kind::temp_queue, [&] { made = true; }); });
    REQUIRE(f.w.run_until([&] { return made; }));
    bool closed = false;
    f.w[0].call([&] { f.b->connection_closed(7, [&] { closed = true; }); });
    REQUIRE(f.w.run_until([&] { return closed; }));
    f.w.run();
    REQUIRE(watcher.s->got.size() == 2);
    CHECK(watcher.s->got[0].msg->body.find(R"("operationType":0)") != std::string::npos);
    CHECK(watcher.s->got[0].msg->body.find(d.name) != std::string::npos);
    CHECK(watcher.s->got[1].msg->body.find(R"("operationType":1)") != std::string::npos);
}

TEST_CASE("advisories: expired and dead-lettered queue messages", "[core][broker][advisory]") {
    const auto kind = GENERATE(store_kind::memory, store_kind::journal);
    INFO(to_string(kind));
    kernel_fixture f(kind, with_advisories(true));
    auto expired = f.subscribe(advisory("Expired.Queue.orders"));
    auto dlqd = f.subscribe(advisory("MessageDLQd.Queue.orders"));
    auto m = f.make(q, "old");
    const_cast<message&>(*m).expiration_ms = 1;   // long past
    REQUIRE(f.publish(m) == publish_status::ok);
    REQUIRE(f.publish(q, "bad") == publish_status::ok);
    auto c = f.subscribe(q);
    f.w.run();
    REQUIRE(c.s->bodies() == std::vector<std::string>{"bad"});
    f.w[0].call([&] { f.b->nack(c.id, {c.s->got[0].tag}); });   // max_redeliveries 0: dead-lettered
    f.w.run();
    REQUIRE(expired.s->got.size() == 1);
    CHECK(text_of(*expired.s->got[0].msg, "orignalMessageId") == "ID:switchboard-" + std::to_string(m->id));
    REQUIRE(dlqd.s->got.size() == 1);
    CHECK(dlqd.s->got[0].msg->body.starts_with(R"({"Message":{)"));
}

// ---- producers (broker::add_producer) and the replay to a new watcher ------------------------

namespace {

void add_producer(kernel_fixture& f, std::uint64_t connection, producer_id id, const destination& d) {
    f.w[0].call([&] { f.b->add_producer(connection, id, d); });
    f.w.run();
}

void remove_producer(kernel_fixture& f, std::uint64_t connection, producer_id id) {
    f.w[0].call([&] { f.b->remove_producer(connection, id); });
    f.w.run();
}

void close_connection(kernel_fixture& f, std::uint64_t connection) {
    bool closed = false;
    f.w[0].call([&] { f.b->connection_closed(connection, [&] { closed = true; }); });
    REQUIRE(f.w.run_until([&] { return closed; }));
    f.w.run();
}

}  // namespace

TEST_CASE("advisories: producers registered and removed, with the producer count", "[core][broker][advisory]") {
    kernel_fixture f(store_kind::memory, with_advisories(true));
    auto queue_watcher = f.subscribe(advisory("Producer.Queue.orders"));
    auto topic_watcher = f.subscribe(advisory("Producer.Topic.>"));
    add_producer(f, 7, 100, q);
    add_producer(f, 8, 101, q);
    add_producer(f, 7, 102, destination{dest_kind::topic, "prices"});
    add_producer(f, 7, 103, advisory("Consumer.Queue.orders"));   // to an advisory topic: not advised
    remove_producer(f, 7, 100);
    remove_producer(f, 7, 100);   // again: nothing
    REQUIRE(queue_watcher.s->got.size() == 3);
    const auto& added = *queue_watcher.s->got[0].msg;
    CHECK(added.dest == advisory("Producer.Queue.orders"));
    CHECK(added.type == "Advisory");
    CHECK(text_of(added, "producerCount") == "1");
    CHECK(added.body.starts_with(R"({"ProducerInfo":{"producerId":{"connectionId":"ID:switchboard-7","value":100})"));
    CHECK(added.body.find(R"("destination":{"@class":"ActiveMQQueue","string":"orders"})") != std::string::npos);
    CHECK(text_of(*queue_watcher.s->got[1].msg, "producerCount") == "2");
    const auto& removed = *queue_watcher.s->got[2].msg;
    CHECK(text_of(removed, "producerCount") == "1");
    CHECK(removed.body ==
          R"({"RemoveInfo":{"objectId":{"connectionId":"ID:switchboard-7","value":100,"@class":"ProducerId"}}})");
    REQUIRE(topic_watcher.s->got.size() == 1);
    CHECK(topic_watcher.s->got[0].msg->dest == advisory("Producer.Topic.prices"));

    // The connection's end removes what it still has: 102 (prices); 101 is connection 8's.
    close_connection(f, 7);
    REQUIRE(topic_watcher.s->got.size() == 2);
    CHECK(text_of(*topic_watcher.s->got[1].msg, "producerCount") == "0");
    CHECK(queue_watcher.s->got.size() == 3);
    close_connection(f, 8);
    REQUIRE(queue_watcher.s->got.size() == 4);
    CHECK(text_of(*queue_watcher.s->got[3].msg, "producerCount") == "0");
}

TEST_CASE("advisories: producers are not registered while advisories are off", "[core][broker][advisory]") {
    kernel_fixture f(store_kind::memory, with_advisories(false));
    auto watcher = f.subscribe(advisory("Producer.Queue.orders"));
    add_producer(f, 7, 100, q);
    remove_producer(f, 7, 100);
    close_connection(f, 7);
    CHECK(watcher.s->got.empty());
}

TEST_CASE("advisories: a new watcher is first sent the consumers, producers and temporary destinations that exist",
          "[core][broker][advisory]") {
    kernel_fixture f(store_kind::memory, with_advisories(true));
    // Destinations whose names land on both shards, so that both replay.
    std::vector<destination> queues;
    for (int i = 0; queues.size() < 4; ++i) queues.push_back(destination{dest_kind::queue, "replay." + std::to_string(i)});
    std::vector<kernel_fixture::subscription> consumers;
    for (const auto& d : queues) consumers.push_back(f.subscribe(d));
    consumers.push_back(f.subscribe(queues[0]));   // a second consumer of replay.0
    const destination t{dest_kind::topic, "replay.topic"};
    auto topic_sub = f.subscribe(t);
    add_producer(f, 7, 500, queues[1]);
    add_producer(f, 7, 501, t);
    destination temp_q, temp_t;
    bool made = false;
    f.w[0].call([&] {
        temp_q = f.b->create_temporary(9, dest_kind::temp_queue);
        temp_t = f.b->create_temporary(9, dest_kind::temp_topic, [&] { made = true; });
    });
    REQUIRE(f.w.run_until([&] { return made; }));
    f.w.run();

    SECTION("Consumer.Queue.>: every queue consumer, with its queue's consumer count; no topic subscription") {
        auto w = f.subscribe(advisory("Consumer.Queue.>"));
        f.w.run();
        REQUIRE(w.s->got.size() == 5);
        std::map<std::string, std::vector<std::string>> counts;
        for (const auto& d : w.s->got) {
            CHECK(d.msg->body.starts_with(R"({"ConsumerInfo":)"));
            counts[d.msg->dest.name].push_back(text_of(*d.msg, "consumerCount"));
        }
        CHECK(counts["ActiveMQ.Advisory.Consumer.Queue.replay.0"] == std::vector<std::string>{"2", "2"});
        CHECK(counts["ActiveMQ.Advisory.Consumer.Queue.replay.3"] == std::vector<std::string>{"1"});
        // Only to the new watcher, and only once: live advisories follow as before.
        auto later = f.subscribe(queues[2]);
        f.w.run();
        CHECK(w.s->got.size() == 6);
    }
    SECTION("Consumer.Topic.<name>: the topic's subscriptions, once (every shard holds a copy)") {
        auto w = f.subscribe(advisory("Consumer.Topic.replay.topic"));
        f.w.run();
        REQUIRE(w.s->got.size() == 1);
        CHECK(w.s->got[0].msg->dest == advisory("Consumer.Topic.replay.topic"));
        CHECK(text_of(*w.s->got[0].msg, "consumerCount") == "1");
    }
    SECTION("Producer.>: each producer on its own topic") {
        auto w = f.subscribe(advisory("Producer.>"));
        f.w.run();
        REQUIRE(w.s->got.size() == 2);
        std::set<std::string> topics;
        for (const auto& d : w.s->got) {
            topics.insert(d.msg->dest.name);
            CHECK(d.msg->body.starts_with(R"({"ProducerInfo":)"));
            CHECK(text_of(*d.msg, "producerCount") == "1");
        }
        CHECK(topics == std::set<std::string>{"ActiveMQ.Advisory.Producer.Queue.replay.1",
                                              "ActiveMQ.Advisory.Producer.Topic.replay.topic"});
    }
    SECTION("TempQueue and TempTopic: the temporary destinations of each kind") {
        auto wq = f.subscribe(advisory("TempQueue"));
        auto wt = f.subscribe(advisory("TempTopic"));
        f.w.run();
        REQUIRE(wq.s->got.size() == 1);
        CHECK(wq.s->got[0].msg->body.find(R"("operationType":0)") != std::string::npos);
        CHECK(wq.s->got[0].msg->body.find(temp_q.name) != std::string::npos);
        REQUIRE(wt.s->got.size() == 1);
        CHECK(wt.s->got[0].msg->body.find(temp_t.name) != std::string::npos);
    }
    SECTION("no replay to a subscription that is not to one of those advisory topics") {
        auto all = f.subscribe(destination{dest_kind::topic, "ActiveMQ.Advisory.>"});
        auto everything = f.subscribe(destination{dest_kind::topic, ">"});
        f.w.run();
        // Both get the live advisory of `everything` (a topic subscription to ">"), nothing else.
        for (const auto* w : {&all, &everything}) {
            REQUIRE(w->s->got.size() == 1);
            CHECK(w->s->got[0].msg->dest == advisory("Consumer.Topic.>"));
        }
    }
}

TEST_CASE("advisories: the replay respects the watcher's selector", "[core][broker][advisory]") {
    kernel_fixture f(store_kind::memory, with_advisories(true));
    auto c1 = f.subscribe(destination{dest_kind::queue, "sel.a"});
    auto c2 = f.subscribe(destination{dest_kind::queue, "sel.b"});
    auto c3 = f.subscribe(destination{dest_kind::queue, "sel.b"});
    subscribe_options opt;
    selector_error err;
    opt.selector = selector::compile("consumerCount > 1", err);
    REQUIRE(opt.selector);
    auto w = f.subscribe(advisory("Consumer.Queue.sel.*"), opt);
    f.w.run();
    REQUIRE(w.s->got.size() == 2);
    for (const auto& d : w.s->got) CHECK(d.msg->dest == advisory("Consumer.Queue.sel.b"));
}
