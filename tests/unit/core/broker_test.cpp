// tests/unit/core/broker_test.cpp — the kernel on manual workers: dispatch, credit, acks,
// redelivery, DLQ, topics, flow control, persistence through the store.
#include <catch2/catch.hpp>

#include <algorithm>

#include "core/broker.hpp"
#include "core/store/memory_store.hpp"
#include "tests/unit/core/manual_executor.hpp"
#include "tests/unit/core/kernel_helpers.hpp"

using namespace sb::core;
using sb::test::sink;
using sb::test::workers;

namespace {

struct fixture {
    // `paging`: the store can load messages back, so queues page out beyond their limit.
    explicit fixture(std::size_t n = 2, broker_settings s = {}, bool paging = false)
        : w(n), store(paging), b(std::move(s), w.ptrs, store) {}

    message_ptr make(const destination& d, std::string body, std::uint8_t priority = 4, bool persistent = false) {
        auto m = std::make_shared<message>();
        w[0].call([&] { m->id = b.next_message_id(); });
        m->dest = d;
        m->body = std::move(body);
        m->priority = priority;
        m->persistent = persistent;
        return m;
    }

    // Publishes from worker 0; returns how many completions ran.
    int publish(const destination& d, std::string body, std::uint8_t priority = 4, bool persistent = false) {
        auto m = make(d, std::move(body), priority, persistent);
        // Shared: a held completion may run after this returns (flow control).
        auto done = std::make_shared<int>(0);
        w[0].call([&] { b.publish(m, [done](publish_status s) { *done += s == publish_status::ok; }); });
        w.run();
        return *done;
    }

    std::pair<consumer_id, std::shared_ptr<sink>> subscribe(const destination& d, std::uint32_t prefetch = 0,
                                                            std::size_t home = 0, subscribe_options opt = {}) {
        auto s = std::make_shared<sink>();
        consumer_id id = 0;
        bool done = false;
        if (prefetch) opt.prefetch = prefetch;   // 0 here: the broker default
        w[home].call([&] {
            id = b.next_consumer_id();
            b.subscribe(id, d, opt, s, [&] { done = true; });
        });
        w.run();
        REQUIRE(done);
        return {id, s};
    }

    void ack(consumer_id id, std::vector<delivery_tag> tags) {
        w[0].call([&] { b.ack(id, std::move(tags)); });
        w.run();
    }
    void nack(consumer_id id, std::vector<delivery_tag> tags) {
        w[0].call([&] { b.nack(id, std::move(tags)); });
        w.run();
    }
    void unsubscribe(consumer_id id, const destination& d) {
        w[0].call([&] { b.unsubscribe(id, d); });
        w.run();
    }
    destination_stats stats_of(const destination& d) { return sb::test::stats_of(w, b, d); }

    workers w;
    memory_store store;
    broker b;
};

const destination q{dest_kind::queue, "orders"};
const destination t{dest_kind::topic, "prices.eur"};

std::vector<delivery_tag> tags_of(const sink& s) {
    std::vector<delivery_tag> tags;
    for (const auto& d : s.got) tags.push_back(d.tag);
    return tags;
}

}  // namespace

TEST_CASE("a queue message reaches exactly one of two consumers, round-robin", "[core][broker]") {
    fixture f;
    auto [c1, s1] = f.subscribe(q);
    auto [c2, s2] = f.subscribe(q, 0, 1);
    for (int i = 0; i < 10; ++i) CHECK(f.publish(q, "m" + std::to_string(i)) == 1);
    CHECK(s1->got.size() == 5);
    CHECK(s2->got.size() == 5);
    auto all = s1->bodies();
    for (auto& b : s2->bodies()) all.push_back(b);
    std::sort(all.begin(), all.end());
    CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
}

TEST_CASE("messages published before a consumer subscribes wait in the queue", "[core][broker]") {
    fixture f;
    for (int i = 0; i < 3; ++i) f.publish(q, std::to_string(i));
    CHECK(f.stats_of(q).depth == 3);
    auto [c, s] = f.subscribe(q);
    CHECK(s->bodies() == std::vector<std::string>{"0", "1", "2"});
    CHECK(f.stats_of(q).depth == 0);
    CHECK(f.stats_of(q).inflight == 3);
}

TEST_CASE("prefetch bounds unacknowledged deliveries and acks release more", "[core][broker]") {
    fixture f;
    auto [c, s] = f.subscribe(q, 2);
    for (int i = 0; i < 5; ++i) f.publish(q, std::to_string(i));
    REQUIRE(s->got.size() == 2);
    f.ack(c, {s->got[0].tag});
    CHECK(s->got.size() == 3);
    f.ack(c, {s->got[1].tag, s->got[2].tag});
    CHECK(s->got.size() == 5);
    f.ack(c, tags_of(*s));
    auto st = f.stats_of(q);
    CHECK(st.dequeued == 5);
    CHECK(st.inflight == 0);
    CHECK(st.memory_bytes == 0);
}

TEST_CASE("a nacked message is redelivered with its count, then dead-lettered", "[core][broker]") {
    broker_settings bs;
    bs.max_redeliveries = 2;
    fixture f(2, bs);
    auto [c, s] = f.subscribe(q);
    f.publish(q, "poison");
    for (std::uint32_t round = 0; round <= 2; ++round) {
        REQUIRE(s->got.size() == round + 1);
        CHECK(s->got.back().redeliveries == round);
        f.nack(c, {s->got.back().tag});
    }
    CHECK(s->got.size() == 3);   // 1 delivery + 2 redeliveries, then the DLQ
    auto [dc, ds] = f.subscribe(destination{dest_kind::queue, std::string(shared_dlq_name)});
    REQUIRE(ds->got.size() == 1);
    CHECK(ds->got[0].msg->body == "poison");
    const auto* origin = ds->got[0].msg->find_property(original_destination_property);
    REQUIRE(origin);
    CHECK(std::get<std::string>(*origin) == "queue://orders");
    CHECK(f.stats_of(q).dead_lettered == 1);
}

TEST_CASE("per-destination dead-letter queues are named DLQ.<queue>", "[core][broker]") {
    broker_settings bs;
    bs.max_redeliveries = 0;
    bs.dead_letter = dead_letter_policy::per_destination;
    fixture f(2, bs);
    auto [c, s] = f.subscribe(q);
    f.publish(q, "x");
    f.nack(c, {s->got.at(0).tag});
    auto [dc, ds] = f.subscribe(destination{dest_kind::queue, "DLQ.orders"});
    CHECK(ds->bodies() == std::vector<std::string>{"x"});
}

TEST_CASE("a closing consumer's unacked messages go to the other consumer, redelivered", "[core][broker]") {
    fixture f;
    auto [c1, s1] = f.subscribe(q, 10);
    for (int i = 0; i < 3; ++i) f.publish(q, std::to_string(i));
    REQUIRE(s1->got.size() == 3);
    f.ack(c1, {s1->got[0].tag});
    auto [c2, s2] = f.subscribe(q, 10, 1);
    CHECK(s2->got.empty());
    f.unsubscribe(c1, q);
    CHECK(s2->bodies() == std::vector<std::string>{"1", "2"});
    for (auto& d : s2->got) CHECK(d.redeliveries == 1);
}

TEST_CASE("acks naming another consumer's tags are ignored", "[core][broker]") {
    fixture f;
    auto [c1, s1] = f.subscribe(q, 10);
    f.publish(q, "a");
    f.ack(c1 + 12345, tags_of(*s1));
    CHECK(f.stats_of(q).inflight == 1);
}

TEST_CASE("higher priority messages are dispatched first", "[core][broker]") {
    fixture f;
    f.publish(q, "low", 1);
    f.publish(q, "high", 9);
    f.publish(q, "normal", 4);
    auto [c, s] = f.subscribe(q);
    CHECK(s->bodies() == std::vector<std::string>{"high", "normal", "low"});
}

TEST_CASE("expired messages are not delivered", "[core][broker]") {
    fixture f;
    auto m = f.make(q, "stale");
    const_cast<message&>(*m).expiration_ms = now_ms() - 1;
    f.w[0].call([&] { f.b.publish(m, {}); });
    f.w.run();
    f.publish(q, "fresh");
    auto [c, s] = f.subscribe(q);
    CHECK(s->bodies() == std::vector<std::string>{"fresh"});
    CHECK(f.stats_of(q).expired == 1);
}

TEST_CASE("a topic fans out to every subscriber, exact and wildcard", "[core][broker]") {
    fixture f(3);
    auto [c1, s1] = f.subscribe(t, 0, 0);
    auto [c2, s2] = f.subscribe(destination{dest_kind::topic, "prices.*"}, 0, 1);
    auto [c3, s3] = f.subscribe(destination{dest_kind::topic, "prices.>"}, 0, 2);
    auto [c4, s4] = f.subscribe(destination{dest_kind::topic, "stocks.*"}, 0, 2);
    f.publish(t, "1.10");
    f.publish(destination{dest_kind::topic, "prices.eur.spot"}, "deep");
    CHECK(s1->bodies() == std::vector<std::string>{"1.10"});
    CHECK(s2->bodies() == std::vector<std::string>{"1.10"});
    CHECK(s3->bodies() == std::vector<std::string>{"1.10", "deep"});
    CHECK(s4->got.empty());
    // The same message object is shared, not copied per subscriber.
    CHECK(s1->got[0].msg.get() == s2->got[0].msg.get());
}

// message_home: a shard freeing another worker's messages contends for that worker's malloc
// arena lock, so the last reference goes back to the publisher's worker.
TEST_CASE("a settled message's last reference is dropped on the worker that published it", "[core][broker]") {
    fixture f;
    std::string name = "home.0";
    for (int i = 1; f.b.shard_of(name) != 1 && i < 100; ++i) name = "home." + std::to_string(i);
    REQUIRE(f.b.shard_of(name) == 1);   // the topic lives on worker 1, the publisher is worker 0
    const destination topic{dest_kind::topic, name};
    auto [c, s] = f.subscribe(topic, 0, 1);
    auto m = f.make(topic, "x");
    const std::weak_ptr<const message> weak = m;
    f.w[0].call([&] { f.b.publish(std::move(m), {}); });
    f.w.run();
    REQUIRE(s->got.size() == 1);
    const auto tags = tags_of(*s);
    s->got.clear();   // the sink's reference: the shard's in-flight entry holds the last one
    f.w[1].call([&] { f.b.ack(c, tags); });
    while (f.w[1].run_one()) {}   // the shard settles it
    CHECK_FALSE(weak.expired());  // ... and sends it home
    while (f.w[0].run_one()) {}
    CHECK(weak.expired());
    CHECK(f.w.run() == 0);
}

TEST_CASE("topic messages published before subscribing are not received", "[core][broker]") {
    fixture f;
    f.publish(t, "early");
    auto [c, s] = f.subscribe(t);
    f.publish(t, "late");
    CHECK(s->bodies() == std::vector<std::string>{"late"});
}

TEST_CASE("no-local subscriptions skip their own connection's messages", "[core][broker]") {
    fixture f;
    subscribe_options opt;
    opt.no_local = true;
    opt.connection = 7;
    auto [c, s] = f.subscribe(t, 0, 0, opt);
    auto mine = f.make(t, "mine");
    const_cast<message&>(*mine).origin_connection = 7;
    f.w[0].call([&] { f.b.publish(mine, {}); });
    f.w.run();
    f.publish(t, "theirs");
    CHECK(s->bodies() == std::vector<std::string>{"theirs"});
}

TEST_CASE("a slow topic subscriber loses the oldest messages past the pending limit", "[core][broker]") {
    broker_settings bs;
    bs.topic_max_pending = 3;
    fixture f(1, bs);
    auto [c, s] = f.subscribe(t, 1);
    for (int i = 0; i < 6; ++i) f.publish(t, std::to_string(i));
    REQUIRE(s->bodies() == std::vector<std::string>{"0"});
    // 1..5 waited; the pending limit of 3 kept 3, 4 and 5.
    for (int i = 0; i < 3; ++i) f.ack(c, {s->got.back().tag});
    CHECK(s->bodies() == std::vector<std::string>{"0", "3", "4", "5"});
    CHECK(f.stats_of(t).dropped == 2);
}

TEST_CASE("unsubscribed topic subscribers receive nothing more", "[core][broker]") {
    fixture f;
    auto [c, s] = f.subscribe(t);
    f.publish(t, "a");
    f.unsubscribe(c, t);
    f.publish(t, "b");
    CHECK(s->bodies() == std::vector<std::string>{"a"});
}

TEST_CASE("producers are held while a queue is over its memory limit", "[core][broker]") {
    broker_settings bs;
    bs.queue_memory_limit = 1;   // any message fills it
    fixture f(2, bs);
    CHECK(f.publish(q, "first") == 1);
    CHECK(f.publish(q, "second") == 0);   // held: no completion yet
    CHECK(f.stats_of(q).depth == 2);
    auto [c, s] = f.subscribe(q, 10);
    REQUIRE(s->got.size() == 1);
    f.ack(c, tags_of(*s));   // memory drops below the limit: "second" is admitted
    CHECK(s->bodies() == std::vector<std::string>{"first", "second"});
}

TEST_CASE("persistent messages go through the store and leave it when acked", "[core][broker]") {
    fixture f;
    f.publish(q, "kept", 4, true);
    f.publish(q, "volatile", 4, false);
    CHECK(f.store.size() == 1);
    auto [c, s] = f.subscribe(q);
    f.ack(c, tags_of(*s));
    CHECK(f.store.size() == 0);
}

TEST_CASE("recover loads the store's pending messages into their queues", "[core][broker]") {
    workers w(2);
    memory_store st;
    message_id old_id = 0;
    {
        broker b({}, w.ptrs, st);
        auto m = std::make_shared<message>();
        w[0].call([&] { m->id = old_id = b.next_message_id(); });
        m->dest = q;
        m->persistent = true;
        m->body = "survivor";
        w[0].call([&] { b.publish(m, {}); });
        w.run();
    }
    broker b2({}, w.ptrs, st);
    CHECK(b2.recover() == 1);
    auto s = std::make_shared<sink>();
    w[1].call([&] { b2.subscribe(b2.next_consumer_id(), q, {}, s, {}); });
    w.run();
    REQUIRE(s->bodies() == std::vector<std::string>{"survivor"});
    message_id fresh = 0;
    w[0].call([&] { fresh = b2.next_message_id(); });
    CHECK(fresh != old_id);
}

TEST_CASE("a retained topic message reaches later subscribers, marked retained", "[core][broker]") {
    fixture f;
    auto m = f.make(t, "last");
    const_cast<message&>(*m).retain = true;
    f.w[0].call([&] { f.b.publish(m, {}); });
    f.w.run();
    auto [c1, s1] = f.subscribe(t, 0, 1);
    auto [c2, s2] = f.subscribe(destination{dest_kind::topic, "prices.>"});
    subscribe_options none;
    none.want_retained = false;
    auto [c3, s3] = f.subscribe(t, 0, 0, none);
    REQUIRE(s1->bodies() == std::vector<std::string>{"last"});
    CHECK(s1->got[0].retained);
    CHECK(s2->bodies() == std::vector<std::string>{"last"});
    CHECK(s3->got.empty());
    // An empty retained message clears it.
    auto clear = f.make(t, "");
    const_cast<message&>(*clear).retain = true;
    f.w[0].call([&] { f.b.publish(clear, {}); });
    f.w.run();
    auto [c4, s4] = f.subscribe(t);
    CHECK(s4->got.empty());
}

TEST_CASE("a shared subscription group splits messages among its members", "[core][broker]") {
    fixture f(2);
    subscribe_options opt;
    opt.share_group = "g";
    const destination filter{dest_kind::topic, "prices.*"};
    auto [c1, s1] = f.subscribe(filter, 0, 0, opt);
    auto [c2, s2] = f.subscribe(filter, 0, 1, opt);
    auto [c3, s3] = f.subscribe(filter);   // an ordinary subscriber sees everything
    for (int i = 0; i < 10; ++i) f.publish(t, std::to_string(i));
    CHECK(s1->got.size() == 5);
    CHECK(s2->got.size() == 5);
    CHECK(s3->got.size() == 10);
    f.unsubscribe(c1, filter);
    f.publish(t, "after");
    CHECK(s2->got.size() == 6);
}

TEST_CASE("overlapping subscriptions of one subscriber get a message once", "[core][broker]") {
    fixture f(3);
    subscribe_options mine;
    mine.subscriber = 42;
    auto [c1, s1] = f.subscribe(t, 0, 0, mine);
    auto [c2, s2] = f.subscribe(destination{dest_kind::topic, "prices.*"}, 0, 0, mine);
    auto [c3, s3] = f.subscribe(destination{dest_kind::topic, "prices.>"}, 0, 1);   // another subscriber
    subscribe_options shared = mine;
    shared.share_group = "g";                                    // shared: delivered on its own
    auto [c4, s4] = f.subscribe(destination{dest_kind::topic, "prices.*"}, 0, 0, shared);
    f.publish(t, "both");
    f.publish(destination{dest_kind::topic, "prices.gbp"}, "wildcard only");
    CHECK(s1->bodies() == std::vector<std::string>{"both"});
    CHECK(s2->bodies() == std::vector<std::string>{"wildcard only"});
    CHECK(s3->bodies() == std::vector<std::string>{"both", "wildcard only"});
    CHECK(s4->bodies() == std::vector<std::string>{"both", "wildcard only"});
    // No Local on the first: the other subscription of the subscriber takes it instead.
    f.unsubscribe(c1, t);
    mine.no_local = true;
    mine.connection = 7;
    auto [c5, s5] = f.subscribe(t, 0, 0, mine);
    auto own = f.make(t, "own");
    const_cast<message&>(*own).origin_connection = 7;
    f.w[0].call([&] { f.b.publish(own, {}); });
    f.w.run();
    CHECK(s5->got.empty());
    CHECK(s2->bodies() == std::vector<std::string>{"wildcard only", "own"});
}

TEST_CASE("overlapping durable subscriptions of one subscriber collect a message once", "[core][broker]") {
    fixture f;
    subscribe_options opt;
    opt.subscriber = 9;
    auto s1 = std::make_shared<sink>();
    auto s2 = std::make_shared<sink>();
    f.w[0].call([&] {
        f.b.subscribe_durable(f.b.next_consumer_id(), "c:a", t, opt, s1, {});
        f.b.subscribe_durable(f.b.next_consumer_id(), "c:b", destination{dest_kind::topic, "prices.>"}, opt, s2, {});
    });
    f.w.run();
    f.publish(t, "once", 4, true);
    f.publish(destination{dest_kind::topic, "prices.x.y"}, "deep", 4, true);
    CHECK(s1->got.size() + s2->got.size() == 2);
    CHECK(s2->bodies().back() == "deep");
    CHECK(f.store.size() == 2);   // one stored copy each, not one per subscription
}

TEST_CASE("publish_counted reports how many subscriptions a message matched", "[core][broker]") {
    fixture f(2);
    const auto count = [&f](const destination& d, std::uint64_t from = 0) {
        auto m = f.make(d, "x");
        const_cast<message&>(*m).origin_connection = from;
        std::size_t matched = 99;
        bool done = false;
        f.w[0].call([&] { f.b.publish_counted(m, [&](publish_status, std::size_t n) { matched = n; done = true; }); });
        f.w.run();
        REQUIRE(done);
        return matched;
    };
    CHECK(count(t) == 0);
    subscribe_options own;
    own.no_local = true;
    own.connection = 7;
    f.subscribe(t, 0, 0, own);
    CHECK(count(t, 7) == 0);   // its own no-local subscription skips it
    CHECK(count(t, 8) == 1);
    f.subscribe(destination{dest_kind::topic, "prices.*"}, 0, 1);
    subscribe_options shared;
    shared.share_group = "g";
    f.subscribe(destination{dest_kind::topic, "prices.>"}, 0, 0, shared);
    f.subscribe(destination{dest_kind::topic, "prices.>"}, 0, 1, shared);
    CHECK(count(t, 8) == 3);   // a shared group counts once
    CHECK(count(destination{dest_kind::topic, "prices.usd"}) == 2);
    CHECK(count(destination{dest_kind::queue, "orders"}) == 1);
}

TEST_CASE("attach moves a consumer to a new sink and resends what was unacked", "[core][broker]") {
    fixture f;
    auto [c, old_sink] = f.subscribe(t, 2);
    for (int i = 0; i < 4; ++i) f.publish(t, std::to_string(i));
    REQUIRE(old_sink->got.size() == 2);   // 2 in flight, 2 pending (no credit)
    f.ack(c, {old_sink->got[0].tag});
    old_sink.reset();                     // the session went away; the consumer stays
    f.publish(t, "offline");
    auto fresh = std::make_shared<sink>();
    bool done = false;
    f.w[1].call([&] { f.b.attach(c, t, fresh, [&] { done = true; }); });
    f.w.run();
    REQUIRE(done);
    REQUIRE(fresh->got.size() >= 2);
    CHECK(fresh->got[0].msg->body == "1");
    CHECK(fresh->got[0].redeliveries == 1);
    f.ack(c, tags_of(*fresh));
    std::vector<std::string> all = fresh->bodies();
    CHECK(all == std::vector<std::string>{"1", "2", "3", "offline"});
}

TEST_CASE("topic publishers are held while a subscriber is congested, not dropped", "[core][broker]") {
    fixture f(1);
    subscribe_options opt;
    opt.max_pending = 4;   // congested at 2 pending, released at 1
    auto [c, s] = f.subscribe(t, 1, 0, opt);
    CHECK(f.publish(t, "0") == 1);   // delivered
    CHECK(f.publish(t, "1") == 1);   // pending 1
    CHECK(f.publish(t, "2") == 0);   // pending 2: congested, the completion is held
    f.ack(c, {s->got.back().tag});   // "1" delivered, pending 1: released
    CHECK(s->bodies() == std::vector<std::string>{"0", "1"});
    int released = 0;
    // The held completion ran during the ack: a new publish goes through again.
    auto m3 = f.make(t, "3");
    f.w[0].call([&] { f.b.publish(m3, [&](publish_status) { ++released; }); });
    f.w.run();
    CHECK(released == 0);            // pending is 2 again: held
    f.unsubscribe(c, t);             // the subscriber goes: held producers go on
    CHECK(released == 1);
    CHECK(f.stats_of(t).dropped == 0);
}

TEST_CASE("a paused queue consumer is dispatched nothing; the others get its share until it resumes",
          "[core][broker][flow]") {
    fixture f;
    auto [c1, s1] = f.subscribe(q);
    auto [c2, s2] = f.subscribe(q, 0, 1);
    f.w[0].call([&] { f.b.pause(c1, q); });
    f.w.run();
    for (int i = 0; i < 6; ++i) CHECK(f.publish(q, std::to_string(i)) == 1);
    CHECK(s1->got.empty());
    CHECK(s2->got.size() == 6);
    f.ack(c2, tags_of(*s2));
    f.unsubscribe(c2, q);
    for (int i = 6; i < 9; ++i) f.publish(q, std::to_string(i));
    CHECK(s1->got.empty());                  // the queue keeps them for it
    CHECK(f.stats_of(q).depth == 3);
    f.w[0].call([&] { f.b.resume(c1, q); });
    f.w.run();
    CHECK(s1->bodies() == std::vector<std::string>{"6", "7", "8"});
}

TEST_CASE("a paused topic subscriber holds no publisher: it drops its oldest beyond the pending limit",
          "[core][broker][flow]") {
    broker_settings bs;
    bs.topic_max_pending = 4;
    fixture f(2, bs);
    subscribe_options opt;
    opt.max_pending = 4;   // congested at 2 pending, were it not paused
    auto [stalled, s1] = f.subscribe(t, 1, 0, opt);
    auto [other, s2] = f.subscribe(t, 0, 1);
    CHECK(f.publish(t, "0") == 1);            // the stalled one's credit is used up by "0"
    CHECK(f.publish(t, "1") == 1);            // pending 1
    CHECK(f.publish(t, "2") == 0);            // pending 2: congested, held
    f.w[1].call([&] { f.b.pause(stalled, t); });
    f.w.run();
    int done = 0;
    for (int i = 3; i < 10; ++i) done += f.publish(t, std::to_string(i));
    CHECK(done == 7);                          // no publish is held by a paused subscriber
    CHECK(s2->got.size() == 10);               // the other subscriber gets every message
    CHECK(s1->bodies() == std::vector<std::string>{"0"});
    CHECK(f.stats_of(t).dropped == 5);         // 1..9 waited; the newest 4 are kept
    f.w[1].call([&] { f.b.resume(stalled, t); });
    f.w.run();
    f.ack(stalled, {s1->got.back().tag});
    CHECK(s1->bodies() == std::vector<std::string>{"0", "6"});
}

TEST_CASE("a durable subscription keeps collecting while no consumer is attached", "[core][broker]") {
    fixture f;
    const destination filter{dest_kind::topic, "prices.>"};
    const auto dq = broker::durable_queue("c1:s1");
    auto s1 = std::make_shared<sink>();
    consumer_id id = 0;
    bool done = false;
    f.w[0].call([&] {
        id = f.b.next_consumer_id();
        f.b.subscribe_durable(id, "c1:s1", filter, {}, s1, [&] { done = true; });
    });
    f.w.run();
    REQUIRE(done);
    f.publish(t, "live", 4, true);
    REQUIRE(s1->bodies() == std::vector<std::string>{"live"});
    CHECK(s1->got[0].msg->dest == t);   // delivered as the topic's message
    f.ack(id, tags_of(*s1));
    f.unsubscribe(id, dq);              // the consumer goes; the subscription stays
    f.publish(t, "while away", 4, true);
    f.publish(destination{dest_kind::topic, "other"}, "not matched", 4, true);
    CHECK(f.stats_of(dq).depth == 1);
    CHECK(f.store.size() == 1);         // the persistent copy is stored under the durable queue

    // A restart: a new kernel on the same store finds the subscription and its message.
    workers w2(2);
    broker b2({}, w2.ptrs, f.store);
    CHECK(b2.recover() == 1);
    auto s2 = std::make_shared<sink>();
    w2[1].call([&] { b2.subscribe_durable(b2.next_consumer_id(), "c1:s1", filter, {}, s2, {}); });
    w2.run();
    REQUIRE(s2->bodies() == std::vector<std::string>{"while away"});
    // Still collecting after the restart.
    auto m = std::make_shared<message>();
    w2[0].call([&] { m->id = b2.next_message_id(); });
    m->dest = t;
    m->body = "after restart";
    w2[0].call([&] { b2.publish(m, {}); });
    w2.run();
    CHECK(s2->bodies() == std::vector<std::string>{"while away", "after restart"});
    // Deleted: nothing is collected any more and the store forgets it.
    w2[0].call([&] { b2.unsubscribe_durable("c1:s1"); });
    w2.run();
    std::size_t subs = 0;
    f.store.recover_subscriptions([&](const subscription_record&) { ++subs; });
    CHECK(subs == 0);
}

namespace {

// Bytes one small test message counts against a queue's memory limit.
std::size_t one_message_bytes(std::string body = "m00") {
    message m;
    m.dest = q;
    m.body = std::move(body);
    return m.memory_size();
}

std::string name_of(int i) { return (i < 10 ? "m0" : "m") + std::to_string(i); }

// Acks everything `s` received, until nothing more arrives (bounded).
void drain(fixture& f, consumer_id c, sink& s) {
    std::size_t acked = 0;
    for (int round = 0; round < 1000 && acked < s.got.size(); ++round) {
        std::vector<delivery_tag> tags;
        for (; acked < s.got.size(); ++acked) tags.push_back(s.got[acked].tag);
        f.ack(c, std::move(tags));
    }
}

}  // namespace

TEST_CASE("persistent messages beyond the memory limit are paged out, not held, and return in order",
          "[core][broker][paging]") {
    broker_settings bs;
    bs.queue_memory_limit = 4 * one_message_bytes();
    fixture f(2, bs, true);
    for (int i = 0; i < 50; ++i) CHECK(f.publish(q, name_of(i), 4, true) == 1);   // none held
    auto st = f.stats_of(q);
    CHECK(st.depth == 50);
    CHECK(st.paged == 46);
    CHECK(st.memory_bytes <= bs.queue_memory_limit);
    CHECK(f.store.size() == 50);

    auto [c, s] = f.subscribe(q, 3);
    CHECK(s->got.size() == 3);
    drain(f, c, *s);
    CHECK(s->got.size() == 50);
    // More while the queue pages in: they queue behind what is paged out.
    for (int i = 50; i < 60; ++i) CHECK(f.publish(q, name_of(i), 4, true) == 1);
    drain(f, c, *s);
    std::vector<std::string> want;
    for (int i = 0; i < 60; ++i) want.push_back(name_of(i));
    CHECK(s->bodies() == want);
    CHECK(f.store.size() == 0);
    st = f.stats_of(q);
    CHECK(st.depth == 0);
    CHECK(st.paged == 0);
    CHECK(st.memory_bytes == 0);
}

TEST_CASE("order holds across the memory/disk boundary while consumers and producers interleave",
          "[core][broker][paging]") {
    broker_settings bs;
    bs.queue_memory_limit = 3 * one_message_bytes();
    fixture f(2, bs, true);
    auto [c, s] = f.subscribe(q, 2, 1);
    int next = 0;
    std::size_t acked = 0;
    for (int round = 0; round < 20; ++round) {
        for (int k = 0; k < 7; ++k) f.publish(q, name_of(next++), 4, true);
        // Ack one of what arrived: the queue grows, pages out, and pages in as it drains.
        if (acked < s->got.size()) f.ack(c, {s->got[acked++].tag});
    }
    drain(f, c, *s);
    std::vector<std::string> want;
    for (int i = 0; i < next; ++i) want.push_back(name_of(i));
    CHECK(s->bodies() == want);
    CHECK(f.store.size() == 0);
}

TEST_CASE("a paged-out message of a higher priority is loaded and delivered first", "[core][broker][paging]") {
    broker_settings bs;
    bs.queue_memory_limit = 2 * one_message_bytes("a");
    fixture f(2, bs, true);
    for (auto b : {"a", "b", "c", "d"}) f.publish(q, b, 4, true);
    for (auto b : {"h1", "h2"}) f.publish(q, b, 9, true);
    CHECK(f.stats_of(q).paged == 4);   // c, d, h1, h2
    auto [c, s] = f.subscribe(q, 1);
    drain(f, c, *s);
    CHECK(s->bodies() == std::vector<std::string>{"h1", "h2", "a", "b", "c", "d"});
}

TEST_CASE("a paged-out message is redelivered when nacked and leaves the store when acked",
          "[core][broker][paging]") {
    broker_settings bs;
    bs.queue_memory_limit = 1;   // one message fills it: the rest is paged out
    fixture f(2, bs, true);
    for (auto b : {"x", "y", "z"}) CHECK(f.publish(q, b, 4, true) == 1);
    CHECK(f.stats_of(q).paged == 2);
    auto [c, s] = f.subscribe(q, 1);
    REQUIRE(s->got.size() == 1);
    f.ack(c, {s->got[0].tag});
    REQUIRE(s->got.size() == 2);
    CHECK(s->got[1].msg->body == "y");   // loaded back
    f.nack(c, {s->got[1].tag});
    REQUIRE(s->got.size() == 3);
    CHECK(s->got[2].msg->body == "y");
    CHECK(s->got[2].redeliveries == 1);
    f.ack(c, {s->got[2].tag});
    REQUIRE(s->got.size() == 4);
    CHECK(s->got[3].msg->body == "z");
    CHECK(f.store.size() == 1);
    f.ack(c, {s->got[3].tag});
    CHECK(f.store.size() == 0);
    // Non-persistent messages are not paged: beyond the limit they still hold producers.
    CHECK(f.publish(q, "np1") == 1);
    CHECK(f.publish(q, "np2") == 0);
}

TEST_CASE("recovery leaves bodies in a loadable store until consumers need them", "[core][broker][paging]") {
    workers w(2);
    memory_store st(true);
    {
        broker b({}, w.ptrs, st);
        for (int i = 0; i < 20; ++i) {
            auto m = std::make_shared<message>();
            w[0].call([&] { m->id = b.next_message_id(); });
            m->dest = q;
            m->persistent = true;
            m->body = name_of(i);
            w[0].call([&] { b.publish(m, {}); });
        }
        w.run();
    }
    broker_settings bs;
    bs.queue_memory_limit = 4 * one_message_bytes();
    broker b2(bs, w.ptrs, st);
    CHECK(b2.recover() == 20);
    std::vector<destination_stats> all;
    w[0].call([&] { b2.stats([&](std::vector<destination_stats> v) { all = std::move(v); }); });
    w.run();
    REQUIRE(all.size() == 1);
    CHECK(all[0].paged == 20);
    CHECK(all[0].memory_bytes == 0);
    auto s = std::make_shared<sink>();
    consumer_id id = 0;
    w[1].call([&] {
        id = b2.next_consumer_id();
        subscribe_options opt;
        opt.prefetch = 2;
        b2.subscribe(id, q, opt, s, {});
    });
    w.run();
    std::size_t acked = 0;
    for (int round = 0; round < 100 && acked < s->got.size(); ++round) {
        std::vector<delivery_tag> tags;
        for (; acked < s->got.size(); ++acked) tags.push_back(s->got[acked].tag);
        w[1].call([&] { b2.ack(id, std::move(tags)); });
        w.run();
    }
    std::vector<std::string> want;
    for (int i = 0; i < 20; ++i) want.push_back(name_of(i));
    CHECK(s->bodies() == want);
    CHECK(st.size() == 0);
}
