// tests/unit/core/kernel_selector_test.cpp — selectors in the kernel: queue consumers get only
// what they select, a message nobody selects never holds up the ones behind it, topics filter
// per subscriber, durable subscriptions keep their selector across a restart and become new
// subscriptions when it changes.
#include <catch2/catch.hpp>

#include "core/broker.hpp"
#include "core/store/memory_store.hpp"
#include "core/store/record.hpp"
#include "tests/unit/core/kernel_helpers.hpp"
#include "tests/unit/core/manual_executor.hpp"

using namespace sb::core;
using sb::test::sink;
using sb::test::workers;

namespace {

selector_ptr sel(std::string_view text) {
    selector_error err;
    auto s = selector::compile(text, err);
    INFO(err.message);
    REQUIRE(s);
    return s;
}

struct fixture {
    explicit fixture(std::size_t n = 2) : w(n), b({}, w.ptrs, store) {}

    message_ptr make(const destination& d, std::string body, std::string k, std::uint8_t priority = 4,
                     bool persistent = false) {
        auto m = std::make_shared<message>();
        w[0].call([&] { m->id = b.next_message_id(); });
        m->dest = d;
        m->body = std::move(body);
        m->priority = priority;
        m->persistent = persistent;
        if (!k.empty()) m->properties.push_back({"k", std::move(k)});
        return m;
    }

    // Publishes a message with property k (none when empty); returns the matched count.
    std::size_t publish(const destination& d, std::string body, std::string k = {}, std::uint8_t priority = 4,
                        bool persistent = false) {
        auto m = make(d, std::move(body), std::move(k), priority, persistent);
        std::size_t matched = 0;
        w[0].call([&] { b.publish_counted(m, [&](publish_status, std::size_t n) { matched = n; }); });
        w.run();
        return matched;
    }

    std::pair<consumer_id, std::shared_ptr<sink>> subscribe(const destination& d, selector_ptr s,
                                                            std::uint32_t prefetch = 100, std::size_t home = 0) {
        auto snk = std::make_shared<sink>();
        consumer_id id = 0;
        subscribe_options opt;
        opt.prefetch = prefetch;
        opt.selector = std::move(s);
        w[home].call([&] {
            id = b.next_consumer_id();
            b.subscribe(id, d, opt, snk, {});
        });
        w.run();
        return {id, snk};
    }

    std::pair<consumer_id, std::shared_ptr<sink>> durable(const std::string& name, const destination& filter,
                                                          selector_ptr s) {
        auto snk = std::make_shared<sink>();
        consumer_id id = 0;
        subscribe_options opt;
        opt.selector = std::move(s);
        w[1].call([&] {
            id = b.next_consumer_id();
            b.subscribe_durable(id, name, filter, opt, snk, {});
        });
        w.run();
        return {id, snk};
    }

    void ack_all(consumer_id id, const sink& s) {
        std::vector<delivery_tag> tags;
        for (const auto& d : s.got) tags.push_back(d.tag);
        w[0].call([&] { b.ack(id, tags); });
        w.run();
    }

    workers w;
    memory_store store;
    broker b;
};

const destination q{dest_kind::queue, "orders"};
const destination t{dest_kind::topic, "prices.eur"};

using bodies = std::vector<std::string>;

}  // namespace

TEST_CASE("selector: queue consumers get only the messages they select", "[core][selector][kernel]") {
    fixture f;
    auto [a, sa] = f.subscribe(q, sel("k = 'a'"));
    auto [b, sb] = f.subscribe(q, sel("k = 'b'"), 100, 1);
    f.publish(q, "a1", "a");
    f.publish(q, "b1", "b");
    f.publish(q, "a2", "a");
    f.publish(q, "b2", "b");
    CHECK(sa->bodies() == bodies{"a1", "a2"});
    CHECK(sb->bodies() == bodies{"b1", "b2"});
    CHECK(sb->got[0].msg->find_property("k") != nullptr);
}

TEST_CASE("selector: a message nobody selects waits without holding up those behind it", "[core][selector][kernel]") {
    fixture f;
    auto [a, sa] = f.subscribe(q, sel("k = 'a'"));
    f.publish(q, "x1", "x");
    f.publish(q, "a1", "a");
    f.publish(q, "none");          // no property: UNKNOWN, not selected
    f.publish(q, "a2", "a");
    CHECK(sa->bodies() == bodies{"a1", "a2"});
    CHECK(sb::test::stats_of(f.w, f.b, q).depth == 2);
    // A consumer that selects them takes them, in order.
    auto [all, sall] = f.subscribe(q, nullptr);
    CHECK(sall->bodies() == bodies{"x1", "none"});
    CHECK(sb::test::stats_of(f.w, f.b, q).depth == 0);
}

TEST_CASE("selector: a consumer out of credit does not hold up another's messages", "[core][selector][kernel]") {
    fixture f;
    auto [a, sa] = f.subscribe(q, sel("k = 'a'"), 1);
    auto [b, sb] = f.subscribe(q, sel("k = 'b'"), 1);
    f.publish(q, "a1", "a");
    f.publish(q, "a2", "a");
    f.publish(q, "a3", "a");
    f.publish(q, "b1", "b");
    CHECK(sa->bodies() == bodies{"a1"});
    CHECK(sb->bodies() == bodies{"b1"});
    f.publish(q, "b2", "b");
    f.ack_all(b, *sb);
    CHECK(sb->bodies() == bodies{"b1", "b2"});
    // a's credit comes back: its waiting messages follow, in order.
    f.ack_all(a, *sa);
    CHECK(sa->bodies() == bodies{"a1", "a2"});
    f.ack_all(a, *sa);
    CHECK(sa->bodies() == bodies{"a1", "a2", "a3"});
    CHECK(sb::test::stats_of(f.w, f.b, q).depth == 0);
}

TEST_CASE("selector: consumers selecting the same messages share them round robin", "[core][selector][kernel]") {
    fixture f;
    auto [a, sa] = f.subscribe(q, sel("k IN ('a', 'b')"));
    auto [b, sb] = f.subscribe(q, sel("k LIKE '_'"));
    auto [c, sc] = f.subscribe(q, sel("k = 'zz'"));
    for (int i = 0; i < 6; ++i) f.publish(q, std::to_string(i), i % 2 ? "a" : "b");
    CHECK(sa->got.size() == 3);
    CHECK(sb->got.size() == 3);
    CHECK(sc->got.empty());
}

TEST_CASE("selector: priorities still order the selected messages", "[core][selector][kernel]") {
    fixture f;
    for (int i = 0; i < 3; ++i) f.publish(q, "low" + std::to_string(i), "a", 1);
    f.publish(q, "high-x", "x", 9);
    f.publish(q, "high-a", "a", 9);
    auto [a, sa] = f.subscribe(q, sel("k = 'a'"));
    CHECK(sa->bodies() == bodies{"high-a", "low0", "low1", "low2"});
}

TEST_CASE("selector: nacked messages come back to a consumer that selects them", "[core][selector][kernel]") {
    fixture f;
    auto [a, sa] = f.subscribe(q, sel("k = 'a'"));
    f.publish(q, "x", "x");
    f.publish(q, "a1", "a");
    REQUIRE(sa->bodies() == bodies{"a1"});
    f.w[0].call([&] { f.b.nack(a, {sa->got[0].tag}); });
    f.w.run();
    REQUIRE(sa->bodies() == bodies{"a1", "a1"});
    CHECK(sa->got[1].redeliveries == 1);
    // JMSRedelivered is visible to selectors.
    auto [r, sr] = f.subscribe(q, sel("JMSRedelivered = TRUE"));
    f.w[0].call([&] { f.b.nack(a, {sa->got[1].tag}); });
    f.w.run();
    CHECK(sr->bodies().size() + sa->got.size() == 3);
    CHECK(sb::test::stats_of(f.w, f.b, q).depth == 1);   // x still waits
}

TEST_CASE("selector: the last selecting consumer leaving returns the queue to plain dispatch", "[core][selector][kernel]") {
    fixture f;
    auto [a, sa] = f.subscribe(q, sel("k = 'a'"));
    f.publish(q, "x1", "x");
    f.publish(q, "a1", "a");
    f.publish(q, "x2", "x");
    f.w[0].call([&] { f.b.unsubscribe(a, q); });
    f.w.run();   // a1 is back at the head, unacknowledged
    auto [p, sp] = f.subscribe(q, nullptr);
    CHECK(sp->bodies() == bodies{"a1", "x1", "x2"});
}

TEST_CASE("selector: the queue's own consumer with no selector and selecting ones together", "[core][selector][kernel]") {
    fixture f;
    auto [a, sa] = f.subscribe(q, sel("k = 'a'"), 1);
    auto [p, sp] = f.subscribe(q, nullptr, 1);
    f.publish(q, "a1", "a");   // to a (first in turn)
    f.publish(q, "x1", "x");   // to p
    f.publish(q, "a2", "a");   // both out of credit: waits
    f.publish(q, "x2", "x");
    CHECK(sa->bodies() == bodies{"a1"});
    CHECK(sp->bodies() == bodies{"x1"});
    f.ack_all(p, *sp);   // p takes the next in order, whatever it is
    CHECK(sp->bodies() == bodies{"x1", "a2"});
    f.ack_all(a, *sa);
    f.ack_all(p, *sp);
    CHECK(sp->bodies() == bodies{"x1", "a2", "x2"});
}

TEST_CASE("selector: topic subscribers each get what they select", "[core][selector][kernel]") {
    fixture f;
    auto [a, sa] = f.subscribe(t, sel("k = 'a'"));
    auto [b, sb] = f.subscribe(destination{dest_kind::topic, "prices.>"}, sel("k <> 'a'"), 100, 1);
    auto [c, sc] = f.subscribe(t, nullptr);
    CHECK(f.publish(t, "a1", "a") == 2);
    CHECK(f.publish(t, "b1", "b") == 2);
    CHECK(f.publish(t, "n") == 1);
    CHECK(sa->bodies() == bodies{"a1"});
    CHECK(sb->bodies() == bodies{"b1"});
    CHECK(sc->bodies() == bodies{"a1", "b1", "n"});
}

TEST_CASE("selector: a durable subscription collects only what it selects, across a restart", "[core][selector][kernel]") {
    fixture f;
    const auto dq = broker::durable_queue("c:s");
    auto [id, s1] = f.durable("c:s", t, sel("k = 'a'"));
    f.publish(t, "a1", "a", 4, true);
    f.publish(t, "b1", "b", 4, true);
    CHECK(s1->bodies() == bodies{"a1"});
    f.ack_all(id, *s1);
    f.w[0].call([&] { f.b.unsubscribe(id, dq); });
    f.w.run();
    f.publish(t, "a2", "a", 4, true);
    f.publish(t, "b2", "b", 4, true);
    CHECK(sb::test::stats_of(f.w, f.b, dq).depth == 1);

    // The store keeps the selector with the subscription.
    std::string stored;
    f.store.recover_subscriptions([&](const subscription_record& r) { stored = r.selector; });
    CHECK(stored == "k = 'a'");

    // A restart: the recovered subscription still selects, before anyone subscribes again.
    workers w2(2);
    broker b2({}, w2.ptrs, f.store);
    CHECK(b2.recover() == 1);
    REQUIRE(b2.recovered_subscriptions().size() == 1);
    CHECK(b2.recovered_subscriptions()[0].selector == "k = 'a'");
    for (const char* k : {"a", "b"}) {
        auto m = std::make_shared<message>();
        w2[0].call([&] { m->id = b2.next_message_id(); });
        m->dest = t;
        m->body = std::string(k) + "3";
        m->properties.push_back({"k", std::string(k)});
        w2[0].call([&] { b2.publish(m, {}); });
        w2.run();
    }
    // The same selector again: the same subscription, with what it held.
    auto s2 = std::make_shared<sink>();
    subscribe_options opt;
    opt.selector = sel("k = 'a'");
    w2[1].call([&] { b2.subscribe_durable(b2.next_consumer_id(), "c:s", t, opt, s2, {}); });
    w2.run();
    CHECK(s2->bodies() == bodies{"a2", "a3"});
}

TEST_CASE("selector: a durable subscription re-made with another selector is a new one", "[core][selector][kernel]") {
    fixture f;
    const auto dq = broker::durable_queue("c:s");
    auto [id, s1] = f.durable("c:s", t, sel("k = 'a'"));
    f.w[0].call([&] { f.b.unsubscribe(id, dq); });
    f.w.run();
    f.publish(t, "a1", "a", 4, true);
    CHECK(sb::test::stats_of(f.w, f.b, dq).depth == 1);
    CHECK(f.store.size() == 1);
    auto [id2, s2] = f.durable("c:s", t, sel("k = 'b'"));
    CHECK(s2->got.empty());         // what the old one held is gone
    CHECK(f.store.size() == 0);
    f.publish(t, "a2", "a", 4, true);
    f.publish(t, "b2", "b", 4, true);
    CHECK(s2->bodies() == bodies{"b2"});
    // Without a selector: new again.
    f.w[0].call([&] { f.b.unsubscribe(id2, dq); });
    f.w.run();
    f.publish(t, "b3", "b", 4, true);
    auto [id3, s3] = f.durable("c:s", t, nullptr);
    CHECK(s3->got.empty());
    f.publish(t, "a4", "a", 4, true);
    CHECK(s3->bodies() == bodies{"a4"});
}

TEST_CASE("selector: a subscription record keeps its selector in the journal encoding", "[core][selector][store]") {
    subscription_record r{"c:s", destination{dest_kind::topic, "a.>"}, "data", "x > 3"};
    std::string out;
    encode_subscription(out, r);
    auto back = decode_subscription(std::span(reinterpret_cast<const std::uint8_t*>(out.data()), out.size()));
    REQUIRE(back);
    CHECK(back->selector == "x > 3");
    CHECK(back->data == "data");
    // A record written before selectors (no trailing field) still decodes, with none.
    r.selector.clear();
    out.clear();
    encode_subscription(out, r);
    back = decode_subscription(std::span(reinterpret_cast<const std::uint8_t*>(out.data()), out.size()));
    REQUIRE(back);
    CHECK(back->selector.empty());
}

TEST_CASE("selector: a queue browser is sent only what it selects", "[core][selector][kernel]") {
    fixture f;
    for (int i = 0; i < 4; ++i) f.publish(q, "m" + std::to_string(i), i % 2 ? "a" : "b");
    auto s = std::make_shared<sink>();
    subscribe_options opt;
    opt.selector = sel("k = 'a'");
    f.w[0].call([&] { f.b.browse(f.b.next_consumer_id(), q, opt, s, {}); });
    f.w.run();
    CHECK(s->bodies() == bodies{"m1", "m3"});
    CHECK(sb::test::stats_of(f.w, f.b, q).depth == 4);   // nothing consumed
}
