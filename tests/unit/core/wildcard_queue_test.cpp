// tests/unit/core/wildcard_queue_test.cpp — wildcard queue consumers ("orders.>" on queues): one
// consumer in every matching queue of every shard, existing or created later; acks, nacks and
// its end act on the queue each delivery came from; it competes with the queues' own consumers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>

#include "tests/unit/core/kernel_fixture.hpp"

using namespace sb::core;
using sb::test::kernel_fixture;
using sb::test::store_kind;

namespace {

destination queue_named(std::string name) { return destination{dest_kind::queue, std::move(name)}; }

// Queue names under `prefix` that land on both shards (the broker hashes names to shards).
std::vector<std::string> names_on_both_shards(const broker& b, const std::string& prefix) {
    std::vector<std::string> out;
    bool seen[2] = {false, false};
    for (int i = 0; i < 64 && !(seen[0] && seen[1] && out.size() >= 4); ++i) {
        auto name = prefix + ".q" + std::to_string(i);
        const auto s = b.shard_of(name);
        if (out.size() >= 4 && seen[s]) continue;
        seen[s] = true;
        out.push_back(std::move(name));
    }
    REQUIRE(seen[0]);
    REQUIRE(seen[1]);
    return out;
}

std::map<std::string, std::vector<std::string>> by_queue(const std::vector<delivery>& got) {
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& d : got) out[d.msg->dest.name].push_back(d.msg->body);
    return out;
}

void unsubscribe(kernel_fixture& f, consumer_id id, const destination& d) {
    bool done = false;
    f.w[0].call([&] { f.b->unsubscribe(id, d, [&] { done = true; }); });
    REQUIRE(f.w.run_until([&] { return done; }));
}

}  // namespace

TEST_CASE("a wildcard queue consumer gets the messages of every matching queue, existing or new",
          "[core][broker][wildcard_queue]") {
    const auto kind = GENERATE(store_kind::memory, store_kind::journal);
    INFO(to_string(kind));
    kernel_fixture f(kind);
    const auto names = names_on_both_shards(*f.b, "orders");
    // Waiting before it subscribes: the first half of the queues.
    const std::size_t half = names.size() / 2;
    for (std::size_t i = 0; i < half; ++i) CHECK(f.publish(queue_named(names[i]), names[i] + "-old") == publish_status::ok);
    CHECK(f.publish(queue_named("other.q"), "other") == publish_status::ok);
    CHECK(f.publish(queue_named("orders"), "bare") == publish_status::ok);   // '>' matches zero levels

    auto sub = f.subscribe(queue_named("orders.>"));
    REQUIRE(sub.status == subscribe_status::ok);
    f.w.run();
    // Created after it subscribed: the other half, and a deeper one.
    for (std::size_t i = half; i < names.size(); ++i) CHECK(f.publish(queue_named(names[i]), names[i] + "-new") == publish_status::ok);
    CHECK(f.publish(queue_named("orders.eu.fr"), "deep") == publish_status::ok);
    f.w.run();

    auto got = by_queue(sub.s->got);
    for (std::size_t i = 0; i < names.size(); ++i)
        CHECK(got[names[i]] == std::vector<std::string>{names[i] + (i < half ? "-old" : "-new")});
    CHECK(got["orders"] == std::vector<std::string>{"bare"});
    CHECK(got["orders.eu.fr"] == std::vector<std::string>{"deep"});
    CHECK(got.count("other.q") == 0);
    CHECK(sub.s->got.size() == names.size() + 2);

    // Acked: gone from each queue.
    std::vector<delivery_tag> tags;
    for (const auto& d : sub.s->got) tags.push_back(d.tag);
    f.ack(sub, tags);
    for (const auto& n : names) {
        const auto st = f.stats_of(queue_named(n));
        CHECK(st.depth == 0);
        CHECK(st.inflight == 0);
        CHECK(st.dequeued == 1);
    }
    CHECK(f.stats_of(queue_named("other.q")).depth == 1);
}

TEST_CASE("a wildcard queue consumer's nacks and end give each message back to its own queue",
          "[core][broker][wildcard_queue]") {
    kernel_fixture f(store_kind::memory);
    const auto names = names_on_both_shards(*f.b, "jobs");
    auto sub = f.subscribe(queue_named("jobs.*"));
    for (const auto& n : names) CHECK(f.publish(queue_named(n), n + "-1") == publish_status::ok);
    f.w.run();
    REQUIRE(sub.s->got.size() == names.size());

    // A nack of all of them at once (they came from several queues on several shards): each
    // comes back from its own queue, counted as a redelivery.
    std::vector<delivery_tag> tags;
    for (const auto& d : sub.s->got) tags.push_back(d.tag);
    sub.s->got.clear();
    f.w[0].call([&] { f.b->nack(sub.id, tags); });
    f.w.run();
    REQUIRE(sub.s->got.size() == names.size());
    for (const auto& d : sub.s->got) CHECK(d.redeliveries == 1);
    auto again = by_queue(sub.s->got);
    for (const auto& n : names) CHECK(again[n] == std::vector<std::string>{n + "-1"});

    // Its end: the unsettled deliveries go back to their queues, where each queue's own
    // consumer gets its message (a second redelivery), and the wildcard one gets nothing more.
    unsubscribe(f, sub.id, queue_named("jobs.*"));
    for (const auto& n : names) {
        auto direct = f.subscribe(queue_named(n));
        f.w.run();
        REQUIRE(direct.s->got.size() == 1);
        CHECK(direct.s->got[0].msg->body == n + "-1");
        CHECK(direct.s->got[0].redeliveries == 2);
    }
    const auto before = sub.s->got.size();
    CHECK(f.publish(queue_named(names[0]), "later") == publish_status::ok);
    f.w.run();
    CHECK(sub.s->got.size() == before);
}

TEST_CASE("a wildcard queue consumer competes with a queue's own consumer within its window",
          "[core][broker][wildcard_queue]") {
    kernel_fixture f(store_kind::memory);
    subscribe_options one;
    one.prefetch = 1;
    auto wild = f.subscribe(queue_named("share.>"), one);
    auto direct = f.subscribe(queue_named("share.q"), one);
    for (int i = 0; i < 4; ++i) CHECK(f.publish(queue_named("share.q"), "m" + std::to_string(i)) == publish_status::ok);
    f.w.run();
    // One each (prefetch 1, nothing settled), the rest waits in the queue.
    REQUIRE(wild.s->got.size() == 1);
    REQUIRE(direct.s->got.size() == 1);
    CHECK(f.stats_of(queue_named("share.q")).depth == 2);
    CHECK(f.stats_of(queue_named("share.q")).consumers == 2);
    // The wildcard consumer's ack brings it the next one.
    f.ack(wild, {wild.s->got[0].tag});
    f.w.run();
    REQUIRE(wild.s->got.size() == 2);
    CHECK(direct.s->got.size() == 1);
    CHECK(f.stats_of(queue_named("share.q")).depth == 1);
}

TEST_CASE("a wildcard queue consumer never consumes a durable subscription's queue",
          "[core][broker][wildcard_queue]") {
    kernel_fixture f(store_kind::memory);
    // A durable subscription's queue is "$durable.<name>": kernel-internal.
    const auto durable = broker::durable_queue("client:sub");
    CHECK(f.publish(durable, "kept") == publish_status::ok);
    auto wild = f.subscribe(queue_named(">"));
    CHECK(f.publish(queue_named("plain"), "p") == publish_status::ok);
    f.w.run();
    CHECK(wild.s->bodies() == std::vector<std::string>{"p"});
    CHECK(f.stats_of(durable).depth == 1);
}
