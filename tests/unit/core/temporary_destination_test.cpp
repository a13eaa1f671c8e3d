// tests/unit/core/temporary_destination_test.cpp — temporary queues and topics: unique names,
// any connection sends, only the owner consumes, nothing stored, deleted with the owner's
// connection (then sends and subscribes answer no_destination), shown by stats while they live.
#include <catch2/catch.hpp>

#include "core/transaction.hpp"
#include "tests/unit/core/kernel_fixture.hpp"

using namespace sb::core;
using sb::test::kernel_fixture;
using sb::test::store_kind;

namespace {

constexpr std::uint64_t owner = 11;
constexpr std::uint64_t stranger = 12;

destination create(kernel_fixture& f, std::uint64_t connection, dest_kind kind) {
    destination d;
    bool done = false;
    f.w[0].call([&] { d = f.b->create_temporary(connection, kind, [&] { done = true; }); });
    REQUIRE(f.w.run_until([&] { return done; }));
    return d;
}

subscribe_options of(std::uint64_t connection) {
    subscribe_options o;
    o.connection = connection;
    return o;
}

void close(kernel_fixture& f, std::uint64_t connection) {
    bool done = false;
    f.w[0].call([&] { f.b->connection_closed(connection, [&] { done = true; }); });
    REQUIRE(f.w.run_until([&] { return done; }));
}

}  // namespace

TEST_CASE("temporary destinations have unique ActiveMQ-style names and show in stats while they live",
          "[core][broker][temporary]") {
    kernel_fixture f(store_kind::memory);
    const auto q1 = create(f, owner, dest_kind::queue);
    const auto q2 = create(f, owner, dest_kind::temp_queue);
    const auto t1 = create(f, owner, dest_kind::topic);
    const auto other = create(f, stranger, dest_kind::queue);
    CHECK(q1.kind == dest_kind::temp_queue);
    CHECK(q2.kind == dest_kind::temp_queue);
    CHECK(t1.kind == dest_kind::temp_topic);
    CHECK(q1.is_queue());
    CHECK(t1.is_topic());
    CHECK(q1.name.starts_with("ID:switchboard-11-"));
    CHECK(other.name.starts_with("ID:switchboard-12-"));
    const std::vector<std::string> names{q1.name, q2.name, t1.name, other.name};
    for (std::size_t i = 0; i < names.size(); ++i)
        for (std::size_t j = i + 1; j < names.size(); ++j) CHECK(names[i] != names[j]);
    CHECK(valid_name(q1.name));

    CHECK(f.has_stats(q1));
    CHECK(f.has_stats(t1));
    CHECK(!f.has_stats(destination{dest_kind::queue, q1.name}));   // not a queue of the same name
    close(f, owner);
    CHECK(!f.has_stats(q1));
    CHECK(!f.has_stats(q2));
    CHECK(!f.has_stats(t1));
    CHECK(f.has_stats(other));   // another connection's stays
}

TEST_CASE("a temporary queue takes sends from anyone, consumers from its owner only, and stores nothing",
          "[core][broker][temporary]") {
    const auto kind = GENERATE(store_kind::memory, store_kind::journal);
    INFO(to_string(kind));
    kernel_fixture f(kind);
    const auto q = create(f, owner, dest_kind::queue);

    auto refused = f.subscribe(q, of(stranger));
    CHECK(refused.status == subscribe_status::not_owner);
    auto sub = f.subscribe(q, of(owner));
    CHECK(sub.status == subscribe_status::ok);

    CHECK(f.publish(f.make(q, "volatile", false, stranger)) == publish_status::ok);
    CHECK(f.publish(f.make(q, "persistent", true, stranger)) == publish_status::ok);
    f.w.run();
    REQUIRE(sub.s->bodies() == std::vector<std::string>{"volatile", "persistent"});
    CHECK(!sub.s->got[1].msg->persistent);   // taken as the non-persistent message it is here
    CHECK(refused.s->got.empty());
    CHECK(f.stats_of(q).enqueued == 2);
    CHECK(f.stats_of(q).consumers == 1);

    // A transacted persistent send to it is not stored either, and still delivered.
    std::unique_ptr<transaction> tx;
    std::optional<publish_status> committed;
    f.w[0].call([&] {
        tx = f.b->begin_transaction(stranger);
        REQUIRE(tx->send(f.make(q, "transacted")) == tx_status::ok);
        tx->commit([&](publish_status s) { committed = s; });
    });
    REQUIRE(f.w.run_until([&] { return committed.has_value(); }));
    CHECK(*committed == publish_status::ok);
    f.w.run();
    CHECK(sub.s->bodies().back() == "transacted");

    if (kind == store_kind::journal) {
        // Not acknowledged, yet nothing comes back: nothing was written.
        f.restart();
        CHECK(f.recovered == 0);
    }
}

TEST_CASE("a temporary topic reaches its owner's subscriptions only, never a wildcard one",
          "[core][broker][temporary]") {
    kernel_fixture f(store_kind::memory);
    const auto t = create(f, owner, dest_kind::topic);
    auto sub = f.subscribe(t, of(owner));
    REQUIRE(sub.status == subscribe_status::ok);
    CHECK(f.subscribe(t, of(stranger)).status == subscribe_status::not_owner);
    auto wildcard = f.subscribe(destination{dest_kind::topic, ">"}, of(stranger));
    auto same_name = f.subscribe(destination{dest_kind::topic, t.name}, of(owner));

    std::optional<std::size_t> matched;
    f.w[0].call([&] {
        f.b->publish_counted(f.make(t, "ping", false, stranger),
                             [&](publish_status s, std::size_t n) {
                                 CHECK(s == publish_status::ok);
                                 matched = n;
                             });
    });
    REQUIRE(f.w.run_until([&] { return matched.has_value(); }));
    CHECK(*matched == 1);
    f.w.run();
    CHECK(sub.s->bodies() == std::vector<std::string>{"ping"});
    CHECK(wildcard.s->got.empty());
    CHECK(same_name.s->got.empty());
    CHECK(f.stats_of(t).enqueued == 1);
    CHECK(f.stats_of(t).dequeued == 1);
    CHECK(f.stats_of(t).consumers == 1);
}

TEST_CASE("a temporary destination goes with its owner's connection, with what it holds; then sends fail",
          "[core][broker][temporary]") {
    const auto kind = GENERATE(store_kind::memory, store_kind::journal);
    INFO(to_string(kind));
    kernel_fixture f(kind);
    const auto q = create(f, owner, dest_kind::queue);
    const auto t = create(f, owner, dest_kind::topic);
    subscribe_options small = of(owner);
    small.prefetch = 1;
    auto sub = f.subscribe(q, small);
    auto tsub = f.subscribe(t, of(owner));
    for (const char* b : {"m1", "m2", "m3"}) REQUIRE(f.publish(f.make(q, b, true, stranger)) == publish_status::ok);
    REQUIRE(f.stats_of(q).depth == 2);
    REQUIRE(f.stats_of(q).inflight == 1);

    close(f, owner);
    CHECK(!f.has_stats(q));
    CHECK(!f.has_stats(t));
    CHECK(f.publish(f.make(q, "late", false, stranger)) == publish_status::no_destination);
    CHECK(f.publish(f.make(t, "late", false, stranger)) == publish_status::no_destination);
    CHECK(f.subscribe(q, of(owner)).status == subscribe_status::no_destination);
    CHECK(f.subscribe(t, of(owner)).status == subscribe_status::no_destination);
    // The owner's consumers went with it: settling or ending them afterwards is harmless.
    f.w[0].call([&] {
        f.b->nack(sub.id, {sub.s->got[0].tag});
        f.b->unsubscribe(sub.id, q);
        f.b->unsubscribe(tsub.id, t);
    });
    f.w.run();
    CHECK(sub.s->got.size() == 1);
    CHECK(!f.has_stats(q));
    // A queue with the same name never was the temporary one.
    const destination plain{dest_kind::queue, q.name};
    CHECK(f.publish(f.make(plain, "plain", false)) == publish_status::ok);
    CHECK(f.stats_of(plain).enqueued == 1);
}

TEST_CASE("a link credit subscription of a temporary topic takes what it was granted, wherever it subscribed",
          "[core][broker][temporary]") {
    kernel_fixture f(store_kind::memory);
    const auto t = create(f, owner, dest_kind::topic);
    subscribe_options pull = of(owner);
    pull.credit = credit_mode::link;
    pull.prefetch = 0;
    // Subscribed from the worker that does not own the name: its only copy is on the owner shard.
    auto s = std::make_shared<sb::test::sink>();
    consumer_id id = 0;
    std::optional<subscribe_status> status;
    const std::size_t other = f.b->shard_of(t.name) == 0 ? 1 : 0;
    f.w[other].call([&] {
        id = f.b->next_consumer_id();
        f.b->subscribe_checked(id, t, pull, s, [&](subscribe_status st) { status = st; });
    });
    REQUIRE(f.w.run_until([&] { return status.has_value(); }));
    REQUIRE(*status == subscribe_status::ok);
    for (const char* b : {"m1", "m2", "m3"}) CHECK(f.publish(f.make(t, b, false, stranger)) == publish_status::ok);
    f.w.run();
    CHECK(s->got.empty());
    f.w[other].call([&] { f.b->grant(id, t, 2); });
    f.w.run();
    CHECK(s->bodies() == std::vector<std::string>{"m1", "m2"});
}

TEST_CASE("a temporary queue is browsed by its owner only", "[core][broker][temporary]") {
    kernel_fixture f(store_kind::memory);
    const auto q = create(f, owner, dest_kind::queue);
    REQUIRE(f.publish(f.make(q, "b1", false, stranger)) == publish_status::ok);
    // A plain queue with the same name is not what is browsed.
    REQUIRE(f.publish(f.make(destination{dest_kind::queue, q.name}, "plain", false)) == publish_status::ok);
    auto browse = [&](std::uint64_t connection) {
        auto s = std::make_shared<sb::test::sink>();
        f.w[0].call([&] { f.b->browse(f.b->next_consumer_id(), q, of(connection), s, {}); });
        f.w.run();
        return s->bodies();
    };
    CHECK(browse(owner) == std::vector<std::string>{"b1"});
    CHECK(browse(stranger).empty());
    CHECK(f.stats_of(q).depth == 1);   // browsing consumed nothing
}

TEST_CASE("a persistent message that names a temporary destination to reply to survives the journal",
          "[core][broker][temporary]") {
    kernel_fixture f(store_kind::journal);
    const auto reply = create(f, owner, dest_kind::queue);
    const destination requests{dest_kind::queue, "tmp.requests"};
    auto m = std::make_shared<message>(*f.make(requests, "request", true, owner));
    m->reply_to = reply;
    REQUIRE(f.publish(m) == publish_status::ok);
    f.restart();
    REQUIRE(f.recovered == 1);
    auto sub = f.subscribe(requests);
    f.w.run();
    REQUIRE(sub.s->got.size() == 1);
    REQUIRE(sub.s->got[0].msg->reply_to);
    CHECK(*sub.s->got[0].msg->reply_to == reply);   // kind temp_queue kept
    // The temporary queue itself did not survive the restart: a reply has nowhere to go.
    CHECK(f.publish(f.make(reply, "reply", false, stranger)) == publish_status::no_destination);
}
