// tests/unit/core/advisory_test.cpp — advisory topics (ActiveMQ.Advisory.*): published by the
// kernel when broker_settings::advisories is on and someone subscribes to them; none otherwise.
#include <catch2/catch.hpp>

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
