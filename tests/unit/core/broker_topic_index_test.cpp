// tests/unit/core/broker_topic_index_test.cpp — topic fan-out through the shards' subscription
// tries: many subscriptions against matches(), the order among a subscriber's overlapping
// filters, shared groups and durable subscriptions that change filters.
#include <catch2/catch.hpp>

#include <random>

#include "core/broker.hpp"
#include "core/store/memory_store.hpp"
#include "tests/unit/core/kernel_helpers.hpp"
#include "tests/unit/core/manual_executor.hpp"

using namespace sb::core;
using sb::test::sink;
using sb::test::workers;

namespace {

struct fixture {
    explicit fixture(std::size_t n = 2) : w(n), b({}, w.ptrs, store) {}

    void publish(const std::string& topic, std::string body, bool persistent = false) {
        auto m = std::make_shared<message>();
        w[0].call([&] { m->id = b.next_message_id(); });
        m->dest = destination{dest_kind::topic, topic};
        m->body = std::move(body);
        m->persistent = persistent;
        w[0].call([&] { b.publish(m, {}); });
        w.run();
    }

    std::pair<consumer_id, std::shared_ptr<sink>> subscribe(const std::string& filter, subscribe_options opt = {},
                                                            std::size_t home = 0) {
        auto s = std::make_shared<sink>();
        consumer_id id = 0;
        opt.prefetch = 100000;
        w[home].call([&] {
            id = b.next_consumer_id();
            b.subscribe(id, destination{dest_kind::topic, filter}, opt, s, {});
        });
        w.run();
        return {id, s};
    }

    void unsubscribe(consumer_id id, const std::string& filter) {
        w[0].call([&] { b.unsubscribe(id, destination{dest_kind::topic, filter}); });
        w.run();
    }

    workers w;
    memory_store store;
    broker b;
};

}  // namespace

TEST_CASE("every subscription among many gets exactly the messages its filter matches, in order",
          "[core][broker][subscription_index]") {
    fixture f(3);
    std::mt19937 rng(17);
    const std::vector<std::string> levels{"a", "b", "$s", "", "*"};
    const auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
    const auto random_filter = [&] {
        std::string s;
        const std::size_t n = 1 + pick(3);
        for (std::size_t i = 0; i < n; ++i) s += (i ? "." : "") + levels[pick(levels.size())];
        if (pick(3) == 0) s += ".>";
        return s;
    };
    struct sub {
        std::string filter;
        consumer_id id;
        std::shared_ptr<sink> s;
        std::vector<std::string> expected;
        bool live = true;
    };
    std::vector<sub> subs;
    for (int i = 0; i < 300; ++i) {
        auto filter = i % 50 == 0 ? std::string(">") : random_filter();
        auto [id, s] = f.subscribe(filter, {}, std::size_t(i) % 3);
        subs.push_back(sub{filter, id, s, {}});
    }
    for (int i = 0; i < 200; ++i) {
        if (i % 20 == 10) {   // some go, their branches of the tries with them
            auto& gone = subs[pick(subs.size())];
            if (gone.live) f.unsubscribe(gone.id, gone.filter);
            gone.live = false;
        }
        std::string topic;
        const std::size_t n = 1 + pick(4);
        for (std::size_t l = 0; l < n; ++l) topic += (l ? "." : "") + levels[pick(levels.size() - 1)];
        const std::string body = std::to_string(i);
        f.publish(topic, body);
        for (auto& s : subs)
            if (s.live && matches(s.filter, topic)) s.expected.push_back(body);
    }
    std::size_t delivered = 0;
    for (const auto& s : subs) {
        INFO("filter " << s.filter);
        CHECK(s.s->bodies() == s.expected);
        delivered += s.expected.size();
    }
    CHECK(delivered > 1000);   // the filters and names do overlap
}

TEST_CASE("of a subscriber's overlapping wildcard filters, the first subscribed takes a message",
          "[core][broker][subscription_index]") {
    fixture f;
    subscribe_options mine;
    mine.subscriber = 5;
    // Subscribed in an order that is not the trie's walking order.
    auto [c1, s1] = f.subscribe("a.>", mine);
    auto [c2, s2] = f.subscribe("*.b", mine);
    auto [c3, s3] = f.subscribe("a.*", mine);
    f.publish("a.b", "1");
    CHECK(s1->bodies() == std::vector<std::string>{"1"});
    f.unsubscribe(c1, "a.>");
    f.publish("a.b", "2");
    CHECK(s2->bodies() == std::vector<std::string>{"2"});
    f.publish("a.c", "3");
    CHECK(s3->bodies() == std::vector<std::string>{"3"});
    auto [c4, s4] = f.subscribe("a.>", mine);   // subscribed again: now the last
    f.publish("a.b", "4");
    CHECK(s2->bodies() == std::vector<std::string>{"2", "4"});
    CHECK(s4->got.empty());
}

TEST_CASE("shared groups with the same filter are found separately, and leave the trie with their last member",
          "[core][broker][subscription_index]") {
    fixture f;
    const auto group = [](const char* name) {
        subscribe_options o;
        o.share_group = name;
        return o;
    };
    const auto g1 = group("group1"), g2 = group("group2");
    auto [a1, sa1] = f.subscribe("x.*", g1);
    auto [a2, sa2] = f.subscribe("x.*", g1, 1);
    auto [b1, sb1] = f.subscribe("x.*", g2);
    for (int i = 0; i < 4; ++i) f.publish("x.y", std::to_string(i));
    CHECK(sa1->bodies() == std::vector<std::string>{"0", "2"});
    CHECK(sa2->bodies() == std::vector<std::string>{"1", "3"});
    CHECK(sb1->got.size() == 4);
    f.unsubscribe(a1, "x.*");
    f.unsubscribe(a2, "x.*");
    f.publish("x.y", "4");
    CHECK(sa1->got.size() == 2);
    CHECK(sa2->got.size() == 2);
    CHECK(sb1->got.size() == 5);
    auto [a3, sa3] = f.subscribe("x.*", g1);   // the group again, from nothing
    f.publish("x.y", "5");
    CHECK(sa3->bodies() == std::vector<std::string>{"5"});
}

TEST_CASE("a durable subscription subscribed again with another filter collects by the new one only",
          "[core][broker][subscription_index]") {
    fixture f;
    auto s = std::make_shared<sink>();
    const auto durable = [&](const std::string& filter) {
        f.w[0].call([&] {
            f.b.subscribe_durable(f.b.next_consumer_id(), "c:d", destination{dest_kind::topic, filter}, {}, s, {});
        });
        f.w.run();
    };
    durable("old.*");
    f.publish("old.1", "a");
    durable("new.>");
    f.publish("old.2", "b");
    f.publish("new", "c");   // '>' matches the parent level too
    f.publish("new.x.y", "d");
    durable("new.>");        // the same filter again: still collected once
    f.publish("new.z", "e");
    CHECK(s->bodies() == std::vector<std::string>{"a", "c", "d", "e"});
    f.w[0].call([&] { f.b.unsubscribe_durable("c:d"); });
    f.w.run();
    f.publish("new.z", "f");
    CHECK(s->got.size() == 4);
}
