// tests/unit/core/consumer_choice_test.cpp — consumer choice on queues, as ActiveMQ's Queue
// dispatches: message groups (one owner at a time, closed by sequence -1, reassigned when the
// owner leaves, JMSXGroupFirstForConsumer, a bounded group map), exclusive consumers (failover
// to the next exclusive one, then to every consumer) and consumer priority.
#include <catch2/catch.hpp>

#include "core/selector/selector.hpp"
#include "tests/unit/core/kernel_fixture.hpp"

using namespace sb::core;
using sb::test::kernel_fixture;
using sb::test::store_kind;

namespace {

const destination q{dest_kind::queue, "orders"};

// Publishes "<group><n>" bodies with the group id and sequence set.
void send_grouped(kernel_fixture& f, const std::string& group, std::int32_t seq, const std::string& body) {
    auto m = std::make_shared<message>();
    f.w[0].call([&] { m->id = f.b->next_message_id(); });
    m->dest = q;
    m->body = body;
    m->persistent = true;
    m->group_id = group;
    m->group_seq = seq;
    REQUIRE(f.publish(m) == publish_status::ok);
}

subscribe_options choice(std::int8_t priority = 0, bool exclusive = false, std::optional<std::uint32_t> prefetch = {}) {
    subscribe_options o;
    o.priority = priority;
    o.exclusive = exclusive;
    o.prefetch = prefetch;
    return o;
}

void unsubscribe(kernel_fixture& f, const kernel_fixture::subscription& s) {
    bool done = false;
    f.w[0].call([&] { f.b->unsubscribe(s.id, q, [&] { done = true; }); });
    REQUIRE(f.w.run_until([&] { return done; }));
}

void ack_all(kernel_fixture& f, const kernel_fixture::subscription& s) {
    std::vector<delivery_tag> tags;
    for (const auto& d : s.s->got) tags.push_back(d.tag);
    f.ack(s, tags);
}

// Bodies delivered to `s` whose JMSXGroupFirstForConsumer flag is set.
std::vector<std::string> firsts(const kernel_fixture::subscription& s) {
    std::vector<std::string> out;
    for (const auto& d : s.s->got)
        if (d.group_first) out.push_back(d.msg->body);
    return out;
}

using bodies = std::vector<std::string>;

}  // namespace

TEST_CASE("message groups: each group goes to one consumer, the first message of each flagged",
          "[core][broker][groups]") {
    const auto kind = GENERATE(store_kind::memory, store_kind::journal);
    INFO(to_string(kind));
    kernel_fixture f(kind);
    auto c1 = f.subscribe(q);
    auto c2 = f.subscribe(q);
    const std::string groups = "ABCDABCDAB";
    for (std::size_t i = 0; i < groups.size(); ++i) send_grouped(f, std::string(1, groups[i]), 0, groups[i] + std::to_string(i));
    f.w.run();
    // As ActiveMQ: new groups go to the consumer owning fewer, so A and C share one, B and D the other.
    CHECK(c1.s->bodies() == bodies{"A0", "C2", "A4", "C6", "A8"});
    CHECK(c2.s->bodies() == bodies{"B1", "D3", "B5", "D7", "B9"});
    CHECK(firsts(c1) == bodies{"A0", "C2"});
    CHECK(firsts(c2) == bodies{"B1", "D3"});
}

TEST_CASE("message groups: sequence -1 closes the group after its owner got it", "[core][broker][groups]") {
    kernel_fixture f(store_kind::memory);
    auto c1 = f.subscribe(q);
    auto c2 = f.subscribe(q);
    send_grouped(f, "A", 0, "a1");
    send_grouped(f, "A", 0, "a2");
    send_grouped(f, "A", -1, "a3");   // the last of the group: still to its owner
    send_grouped(f, "A", 0, "a4");    // a new group of the same id: the next consumer in turn
    f.w.run();
    CHECK(c1.s->bodies() == bodies{"a1", "a2", "a3"});
    CHECK(c2.s->bodies() == bodies{"a4"});
    CHECK(firsts(c1) == bodies{"a1"});
    CHECK(firsts(c2) == bodies{"a4"});
}

TEST_CASE("message groups: when the owner leaves, its unacked and later messages go to another, flagged first",
          "[core][broker][groups]") {
    const auto kind = GENERATE(store_kind::memory, store_kind::journal);
    INFO(to_string(kind));
    kernel_fixture f(kind);
    auto c1 = f.subscribe(q);
    auto c2 = f.subscribe(q);
    send_grouped(f, "A", 0, "a1");
    send_grouped(f, "B", 0, "b1");
    send_grouped(f, "A", 0, "a2");
    f.w.run();
    REQUIRE(c1.s->bodies() == bodies{"a1", "a2"});
    REQUIRE(c2.s->bodies() == bodies{"b1"});
    unsubscribe(f, c1);   // a1, a2 unacked: back to the queue, to the group's new owner
    send_grouped(f, "A", 0, "a3");
    f.w.run();
    CHECK(c2.s->bodies() == bodies{"b1", "a1", "a2", "a3"});
    CHECK(firsts(c2) == bodies{"b1", "a1"});
    REQUIRE(c2.s->got.size() == 4);
    CHECK(c2.s->got[1].redeliveries == 1);   // counted as a redelivery, as any unacked message
    CHECK(c2.s->got[3].redeliveries == 0);
    ack_all(f, c2);
    CHECK(f.stats_of(q).depth == 0);
    CHECK(f.stats_of(q).inflight == 0);
}

TEST_CASE("message groups: a group waits for its full owner while other groups go on", "[core][broker][groups]") {
    kernel_fixture f(store_kind::memory);
    auto c1 = f.subscribe(q, choice(0, false, 1));
    auto c2 = f.subscribe(q, choice(0, false, 5));
    send_grouped(f, "A", 0, "a1");
    send_grouped(f, "A", 0, "a2");   // c1 is full: waits, not to c2
    send_grouped(f, "B", 0, "b1");   // overtakes a2
    f.w.run();
    CHECK(c1.s->bodies() == bodies{"a1"});
    CHECK(c2.s->bodies() == bodies{"b1"});
    ack_all(f, c1);
    f.w.run();
    CHECK(c1.s->bodies() == bodies{"a1", "a2"});
    CHECK(firsts(c1) == bodies{"a1"});
}

TEST_CASE("message groups: the group map is bounded; a forgotten group gets an owner anew", "[core][broker][groups]") {
    broker_settings s;
    s.max_message_groups = 1;
    kernel_fixture f(store_kind::memory, s);
    auto c1 = f.subscribe(q);
    send_grouped(f, "A", 0, "a1");
    send_grouped(f, "B", 0, "b1");   // the map holds one group: A is forgotten
    send_grouped(f, "A", 0, "a2");   // assigned again (to the only consumer), so flagged first
    send_grouped(f, "A", 0, "a3");
    f.w.run();
    CHECK(c1.s->bodies() == bodies{"a1", "b1", "a2", "a3"});
    CHECK(firsts(c1) == bodies{"a1", "b1", "a2"});
}

TEST_CASE("message groups: sequence 1 opens the group again with the consumer in turn", "[core][broker][groups]") {
    kernel_fixture f(store_kind::memory);
    auto c1 = f.subscribe(q);
    auto c2 = f.subscribe(q);
    send_grouped(f, "A", 1, "a1");
    send_grouped(f, "A", 2, "a2");
    send_grouped(f, "A", 1, "a1'");   // ActiveMQ: a first message takes the group to whoever is first in turn
    send_grouped(f, "A", 2, "a2'");
    f.w.run();
    CHECK(c1.s->bodies() == bodies{"a1", "a2"});
    CHECK(c2.s->bodies() == bodies{"a1'", "a2'"});
    CHECK(firsts(c1) == bodies{"a1"});
    CHECK(firsts(c2) == bodies{"a1'"});
}

TEST_CASE("exclusive consumer: it alone gets the queue; on leaving, the next exclusive one, then everyone",
          "[core][broker][exclusive]") {
    const auto kind = GENERATE(store_kind::memory, store_kind::journal);
    INFO(to_string(kind));
    kernel_fixture f(kind);
    auto normal = f.subscribe(q);
    auto x1 = f.subscribe(q, choice(0, true));
    auto x2 = f.subscribe(q, choice(0, true));
    for (int i = 0; i < 4; ++i) REQUIRE(f.publish(q, "m" + std::to_string(i)) == publish_status::ok);
    f.w.run();
    CHECK(normal.s->got.empty());
    CHECK(x1.s->bodies() == bodies{"m0", "m1", "m2", "m3"});
    CHECK(x2.s->got.empty());
    f.ack(x1, {x1.s->got[0].tag});
    unsubscribe(f, x1);   // m1..m3 unacked: to the next exclusive consumer
    REQUIRE(f.publish(q, "m4") == publish_status::ok);
    f.w.run();
    CHECK(x2.s->bodies() == bodies{"m1", "m2", "m3", "m4"});
    CHECK(normal.s->got.empty());
    unsubscribe(f, x2);   // no exclusive consumer left: the others share the queue again
    f.w.run();
    CHECK(normal.s->bodies() == bodies{"m1", "m2", "m3", "m4"});
}

TEST_CASE("exclusive consumer: a later one of higher priority takes over", "[core][broker][exclusive]") {
    kernel_fixture f(store_kind::memory);
    auto x1 = f.subscribe(q, choice(0, true));
    REQUIRE(f.publish(q, "m0") == publish_status::ok);
    auto x2 = f.subscribe(q, choice(3, true));
    auto x3 = f.subscribe(q, choice(1, true));   // lower than x2: does not
    REQUIRE(f.publish(q, "m1") == publish_status::ok);
    f.w.run();
    CHECK(x1.s->bodies() == bodies{"m0"});
    CHECK(x2.s->bodies() == bodies{"m1"});
    CHECK(x3.s->got.empty());
}

TEST_CASE("exclusive consumer: while it is full, nobody else gets the queue", "[core][broker][exclusive]") {
    kernel_fixture f(store_kind::memory);
    auto x = f.subscribe(q, choice(0, true, 1));
    auto normal = f.subscribe(q);
    REQUIRE(f.publish(q, "m0") == publish_status::ok);
    REQUIRE(f.publish(q, "m1") == publish_status::ok);
    f.w.run();
    CHECK(x.s->bodies() == bodies{"m0"});
    CHECK(normal.s->got.empty());
    f.ack(x, {x.s->got[0].tag});
    f.w.run();
    CHECK(x.s->bodies() == bodies{"m0", "m1"});
}

TEST_CASE("consumer priority: the highest get messages round robin while they have credit, lower ones the rest",
          "[core][broker][priority]") {
    const auto kind = GENERATE(store_kind::memory, store_kind::journal);
    INFO(to_string(kind));
    kernel_fixture f(kind);
    auto low = f.subscribe(q, choice(1, false, 2));
    auto high1 = f.subscribe(q, choice(5, false, 2));
    auto high2 = f.subscribe(q, choice(5, false, 2));
    for (int i = 0; i < 7; ++i) REQUIRE(f.publish(q, "m" + std::to_string(i)) == publish_status::ok);
    f.w.run();
    CHECK(high1.s->bodies() == bodies{"m0", "m2"});
    CHECK(high2.s->bodies() == bodies{"m1", "m3"});
    CHECK(low.s->bodies() == bodies{"m4", "m5"});
    f.ack(high2, {high2.s->got[0].tag});   // credit back to a high one: the next goes there
    f.w.run();
    CHECK(high2.s->bodies() == bodies{"m1", "m3", "m6"});
    CHECK(low.s->bodies() == bodies{"m4", "m5"});
}

TEST_CASE("consumer choice: a queue without groups, exclusive consumers or priorities stays round robin",
          "[core][broker][priority]") {
    kernel_fixture f(store_kind::memory);
    auto c1 = f.subscribe(q);
    auto c2 = f.subscribe(q);
    auto c3 = f.subscribe(q);
    for (int i = 0; i < 6; ++i) REQUIRE(f.publish(q, "m" + std::to_string(i)) == publish_status::ok);
    f.w.run();
    CHECK(c1.s->bodies() == bodies{"m0", "m3"});
    CHECK(c2.s->bodies() == bodies{"m1", "m4"});
    CHECK(c3.s->bodies() == bodies{"m2", "m5"});
    CHECK(firsts(c1).empty());
}

TEST_CASE("consumer choice with selectors: a group goes to a consumer that selects its first message",
          "[core][broker][groups][selector]") {
    kernel_fixture f(store_kind::memory);
    selector_error err;
    auto only_b = choice();
    only_b.selector = selector::compile("JMSXGroupID = 'B'", err);
    REQUIRE(only_b.selector);
    auto c1 = f.subscribe(q, only_b);   // first in turn, but selects group B only
    auto c2 = f.subscribe(q);
    send_grouped(f, "A", 0, "a1");
    send_grouped(f, "B", 0, "b1");
    send_grouped(f, "A", 0, "a2");
    send_grouped(f, "B", 0, "b2");
    f.w.run();
    CHECK(c1.s->bodies() == bodies{"b1", "b2"});
    CHECK(c2.s->bodies() == bodies{"a1", "a2"});
    CHECK(firsts(c1) == bodies{"b1"});
    CHECK(firsts(c2) == bodies{"a1"});
}

TEST_CASE("message groups after a restart: recovered grouped messages are assigned anew (the map is not stored)",
          "[core][broker][groups]") {
    kernel_fixture f(store_kind::journal);
    for (int i = 0; i < 6; ++i) send_grouped(f, i % 2 ? "B" : "A", 0, std::string(i % 2 ? "b" : "a") + std::to_string(i));
    f.restart();
    REQUIRE(f.recovered == 6);
    auto c1 = f.subscribe(q, choice(0, false, 1));
    auto c2 = f.subscribe(q, choice(0, false, 1));
    f.w.run();
    // Each takes one group's first message; the next of each group waits for its owner.
    CHECK(c1.s->bodies() == bodies{"a0"});
    CHECK(c2.s->bodies() == bodies{"b1"});
    f.ack(c2, {c2.s->got[0].tag});
    f.w.run();
    CHECK(c2.s->bodies() == bodies{"b1", "b3"});   // not a2: group A is c1's
    CHECK(c1.s->bodies() == bodies{"a0"});
    CHECK(firsts(c1) == bodies{"a0"});
    CHECK(firsts(c2) == bodies{"b1"});
}
