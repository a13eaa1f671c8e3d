// tests/unit/core/kernel_transaction_test.cpp — core::transaction, the kernel's local
// transaction: commit (one store batch, the sends visible and the acks applied only after it),
// rollback (the sends dropped, the settled deliveries back and counted as redelivered), its
// bound, its end with the connection, and what a restart of the journal keeps of each.
#include <catch2/catch.hpp>

#include "core/transaction.hpp"
#include "tests/unit/core/kernel_fixture.hpp"

using namespace sb::core;
using sb::test::kernel_fixture;
using sb::test::store_kind;

namespace {

const destination queue_a{dest_kind::queue, "ktx.a"};
const destination queue_out{dest_kind::queue, "ktx.out"};

std::unique_ptr<transaction> begin(kernel_fixture& f, std::uint64_t connection, std::size_t max_frames = 0) {
    std::unique_ptr<transaction> tx;
    f.w[0].call([&] { tx = f.b->begin_transaction(connection, max_frames); });
    return tx;
}

// Commits on worker 0 and waits for the completion.
publish_status commit(kernel_fixture& f, transaction& tx) {
    std::optional<publish_status> r;
    tx_status started = tx_status::ended;
    f.w[0].call([&] { started = tx.commit([&r](publish_status s) { r = s; }); });
    REQUIRE(started == tx_status::ok);
    REQUIRE(f.w.run_until([&] { return r.has_value(); }));
    return *r;
}

void on_worker(kernel_fixture& f, const std::function<void()>& fn) {
    f.w[0].call(fn);
    f.w.run();
}

}  // namespace

TEST_CASE("a kernel transaction's commit acks and publishes as one unit", "[core][broker][transaction][ktx]") {
    const auto kind = GENERATE(store_kind::memory, store_kind::journal);
    INFO(to_string(kind));
    kernel_fixture f(kind);
    REQUIRE(f.publish(queue_a, "a1") == publish_status::ok);
    REQUIRE(f.publish(queue_a, "a2") == publish_status::ok);
    auto sub = f.subscribe(queue_a);
    REQUIRE(sub.s->bodies() == std::vector<std::string>{"a1", "a2"});
    auto out = f.subscribe(queue_out);

    auto tx = begin(f, 7);
    on_worker(f, [&] {
        CHECK(tx->ack(sub.id, {sub.s->got[0].tag}) == tx_status::ok);
        CHECK(tx->send(f.make(queue_out, "s1")) == tx_status::ok);
        CHECK(tx->send(f.make(queue_out, "s2", false)) == tx_status::ok);
    });
    // Nothing before the commit: the ack is not applied, the sends are not published.
    CHECK(tx->frames() == 3);
    CHECK(f.stats_of(queue_a).inflight == 2);
    CHECK(f.stats_of(queue_a).dequeued == 0);
    CHECK(out.s->got.empty());

    CHECK(commit(f, *tx) == publish_status::ok);
    f.w.run();
    CHECK(!tx->open());
    CHECK(out.s->bodies() == std::vector<std::string>{"s1", "s2"});
    CHECK(f.stats_of(queue_a).dequeued == 1);
    CHECK(f.stats_of(queue_a).inflight == 1);
    on_worker(f, [&] {
        CHECK(tx->send(f.make(queue_out, "late")) == tx_status::ended);
        CHECK(tx->rollback() == tx_status::ended);
        CHECK(tx->commit({}) == tx_status::ended);
    });
    CHECK(out.s->got.size() == 2);
}

TEST_CASE("a kernel transaction's rollback drops its sends and redelivers what it settled, counted",
          "[core][broker][transaction][ktx]") {
    const auto kind = GENERATE(store_kind::memory, store_kind::journal);
    INFO(to_string(kind));
    kernel_fixture f(kind);
    REQUIRE(f.publish(queue_a, "a1") == publish_status::ok);
    REQUIRE(f.publish(queue_a, "a2") == publish_status::ok);
    subscribe_options one;
    one.prefetch = 2;
    auto sub = f.subscribe(queue_a, one);
    REQUIRE(sub.s->got.size() == 2);
    auto out = f.subscribe(queue_out);

    auto tx = begin(f, 7);
    on_worker(f, [&] {
        REQUIRE(tx->ack(sub.id, {sub.s->got[0].tag}) == tx_status::ok);
        REQUIRE(tx->nack(sub.id, {sub.s->got[1].tag}) == tx_status::ok);
        REQUIRE(tx->send(f.make(queue_out, "never")) == tx_status::ok);
        CHECK(tx->rollback() == tx_status::ok);
    });
    f.w.run();
    CHECK(!tx->open());
    CHECK(out.s->got.empty());
    CHECK(f.stats_of(queue_out).enqueued == 0);
    // Both back, in their order, each delivered once before.
    REQUIRE(sub.s->got.size() == 4);
    CHECK(sub.s->got[2].msg->body == "a1");
    CHECK(sub.s->got[3].msg->body == "a2");
    CHECK(sub.s->got[2].redeliveries == 1);
    CHECK(sub.s->got[3].redeliveries == 1);
    CHECK(f.stats_of(queue_a).dequeued == 0);
}

TEST_CASE("a kernel transaction's nack takes effect at its commit, counted as a redelivery",
          "[core][broker][transaction][ktx]") {
    kernel_fixture f(store_kind::memory);
    REQUIRE(f.publish(queue_a, "a1") == publish_status::ok);
    REQUIRE(f.publish(queue_a, "a2") == publish_status::ok);
    auto sub = f.subscribe(queue_a);
    auto tx = begin(f, 7);
    on_worker(f, [&] {
        REQUIRE(tx->ack(sub.id, {sub.s->got[0].tag}) == tx_status::ok);
        REQUIRE(tx->nack(sub.id, {sub.s->got[1].tag}) == tx_status::ok);
    });
    CHECK(sub.s->got.size() == 2);   // not before the commit
    CHECK(commit(f, *tx) == publish_status::ok);
    f.w.run();
    REQUIRE(sub.s->got.size() == 3);
    CHECK(sub.s->got[2].msg->body == "a2");
    CHECK(sub.s->got[2].redeliveries == 1);
    CHECK(f.stats_of(queue_a).dequeued == 1);
}

TEST_CASE("a kernel transaction is bounded in sends and settled deliveries", "[core][broker][transaction][ktx]") {
    kernel_fixture f(store_kind::memory);
    REQUIRE(f.publish(queue_a, "a1") == publish_status::ok);
    auto sub = f.subscribe(queue_a);
    auto tx = begin(f, 7, 2);
    CHECK(tx->max_frames() == 2);
    on_worker(f, [&] {
        CHECK(tx->send(f.make(queue_out, "1")) == tx_status::ok);
        CHECK(tx->send(f.make(queue_out, "2")) == tx_status::ok);
        CHECK(tx->send(f.make(queue_out, "3")) == tx_status::too_large);
        CHECK(tx->ack(sub.id, {sub.s->got[0].tag}) == tx_status::too_large);
    });
    CHECK(tx->frames() == 2);   // the refused ones were not added
    CHECK(tx->open());

    // The broker's default bound applies when none is given.
    auto dflt = begin(f, 8);
    CHECK(dflt->max_frames() == f.settings.max_transaction_frames);
}

TEST_CASE("a kernel transaction still open is rolled back when its connection closes or it is destroyed",
          "[core][broker][transaction][ktx]") {
    kernel_fixture f(store_kind::memory);
    REQUIRE(f.publish(queue_a, "a1") == publish_status::ok);
    REQUIRE(f.publish(queue_a, "a2") == publish_status::ok);
    auto sub = f.subscribe(queue_a);
    auto out = f.subscribe(queue_out);
    auto closed = begin(f, 7);
    auto other = begin(f, 8);   // another connection's: not touched
    auto dropped = begin(f, 9);
    on_worker(f, [&] {
        REQUIRE(closed->ack(sub.id, {sub.s->got[0].tag}) == tx_status::ok);
        REQUIRE(closed->send(f.make(queue_out, "never")) == tx_status::ok);
        REQUIRE(dropped->ack(sub.id, {sub.s->got[1].tag}) == tx_status::ok);
    });
    bool done = false;
    on_worker(f, [&] { f.b->connection_closed(7, [&] { done = true; }); });
    CHECK(done);
    CHECK(!closed->open());
    CHECK(other->open());
    REQUIRE(sub.s->got.size() == 3);
    CHECK(sub.s->got[2].msg->body == "a1");
    CHECK(sub.s->got[2].redeliveries == 1);
    on_worker(f, [&] { CHECK(closed->send(f.make(queue_out, "late")) == tx_status::ended); });

    on_worker(f, [&] { dropped.reset(); });
    REQUIRE(sub.s->got.size() == 4);
    CHECK(sub.s->got[3].msg->body == "a2");
    CHECK(sub.s->got[3].redeliveries == 1);
    CHECK(out.s->got.empty());

    // Closing again, or a connection with nothing, completes too.
    done = false;
    on_worker(f, [&] { f.b->connection_closed(7, [&] { done = true; }); });
    CHECK(done);
    on_worker(f, [&] { other.reset(); });
}

TEST_CASE("after a restart of the journal a committed transaction is there whole, a rolled-back or open one not at all",
          "[core][broker][transaction][ktx]") {
    kernel_fixture f(store_kind::journal);
    for (const char* b : {"m1", "m2", "m3", "m4"}) REQUIRE(f.publish(queue_a, b) == publish_status::ok);
    auto sub = f.subscribe(queue_a);
    REQUIRE(sub.s->got.size() == 4);
    // m4 is acknowledged outside any transaction, as a reference.
    f.ack(sub, {sub.s->got[3].tag});

    auto committed = begin(f, 7);
    auto rolled_back = begin(f, 7);
    auto open = begin(f, 8);
    on_worker(f, [&] {
        REQUIRE(committed->ack(sub.id, {sub.s->got[0].tag}) == tx_status::ok);
        REQUIRE(committed->send(f.make(queue_out, "c1")) == tx_status::ok);
        REQUIRE(committed->send(f.make(queue_out, "c2")) == tx_status::ok);
        REQUIRE(rolled_back->ack(sub.id, {sub.s->got[1].tag}) == tx_status::ok);
        REQUIRE(rolled_back->send(f.make(queue_out, "r1")) == tx_status::ok);
        REQUIRE(open->ack(sub.id, {sub.s->got[2].tag}) == tx_status::ok);
        REQUIRE(open->send(f.make(queue_out, "u1")) == tx_status::ok);
    });
    REQUIRE(commit(f, *committed) == publish_status::ok);
    on_worker(f, [&] { REQUIRE(rolled_back->rollback() == tx_status::ok); });

    // The process goes with `open` still open: it never reached the store.
    committed.reset();
    rolled_back.reset();
    open.reset();
    f.restart();
    CHECK(f.recovered == 4);   // m2, m3 (not acknowledged durably) and c1, c2
    CHECK(f.drain(queue_a) == std::vector<std::string>{"m2", "m3"});
    CHECK(f.drain(queue_out) == std::vector<std::string>{"c1", "c2"});
}

TEST_CASE("a kernel transaction's other settle outcomes take effect at its commit, and roll back counted",
          "[core][broker][transaction][ktx]") {
    kernel_fixture f(store_kind::memory);
    for (const char* b : {"a1", "a2", "a3"}) REQUIRE(f.publish(queue_a, b) == publish_status::ok);
    subscribe_options three;
    three.prefetch = 3;
    auto sub = f.subscribe(queue_a, three);
    REQUIRE(sub.s->got.size() == 3);
    const destination dlq{dest_kind::queue, std::string(shared_dlq_name)};

    auto tx = begin(f, 7);
    on_worker(f, [&] {
        REQUIRE(tx->settle(sub.id, {sub.s->got[0].tag}, settle_outcome::released()) == tx_status::ok);
        REQUIRE(tx->settle(sub.id, {sub.s->got[1].tag}, settle_outcome::rejected("bad")) == tx_status::ok);
        REQUIRE(tx->settle(sub.id, {sub.s->got[2].tag}, settle_outcome::accepted()) == tx_status::ok);
    });
    CHECK(sub.s->got.size() == 3);
    CHECK(f.stats_of(dlq).enqueued == 0);
    CHECK(commit(f, *tx) == publish_status::ok);
    f.w.run();
    // released: back without a redelivery counted; rejected: dead-lettered; accepted: gone.
    REQUIRE(sub.s->got.size() == 4);
    CHECK(sub.s->got[3].msg->body == "a1");
    CHECK(sub.s->got[3].redeliveries == 0);
    CHECK(f.stats_of(dlq).enqueued == 1);
    CHECK(f.stats_of(queue_a).dequeued == 1);

    // Rolled back, even a release counts the redelivery (the transaction's work is undone).
    auto undone = begin(f, 7);
    on_worker(f, [&] {
        REQUIRE(undone->settle(sub.id, {sub.s->got[3].tag}, settle_outcome::released()) == tx_status::ok);
        REQUIRE(undone->rollback() == tx_status::ok);
    });
    REQUIRE(sub.s->got.size() == 5);
    CHECK(sub.s->got[4].msg->body == "a1");
    CHECK(sub.s->got[4].redeliveries == 1);
}
