// tests/unit/core/broker_transaction_test.cpp — local transactions in the kernel (one store
// transaction per commit, completion after it, sends visible only then, across shards) and
// paging against a store that answers nothing.
#include <catch2/catch.hpp>

#include <algorithm>

#include "core/broker.hpp"
#include "core/store/memory_store.hpp"
#include "core/transaction.hpp"
#include "tests/unit/core/manual_executor.hpp"
#include "tests/unit/core/kernel_helpers.hpp"

using namespace sb::core;
using sb::test::sink;
using sb::test::workers;

namespace {

// A memory store that records each commit and holds its completion until the test releases
// it (the fsync the test decides the end of). `empty_loads`: load() handles no id at all, as a
// broken store would; it counts the calls and gives up (answers properly) after `load_limit`,
// so that a kernel that keeps asking ends the test with a failure rather than a hang.
class scripted_store final : public store {
public:
    explicit scripted_store(bool loadable) : inner(loadable) {}

    void add(std::string_view queue, const message_ptr& msg, add_done done) override {
        ++adds;
        inner.add(queue, msg, std::move(done));
    }
    void remove(std::string_view queue, message_id id) override { inner.remove(queue, id); }
    void commit(store_transaction tx, add_done done) override {
        commits.push_back(tx);
        if (fail_commits) {
            held.push_back([done] { done(store_status::failed); });
            return;
        }
        held.push_back([this, tx = std::move(tx), done]() mutable { inner.commit(std::move(tx), done); });
    }
    void release() {
        auto all = std::move(held);
        held.clear();
        for (auto& h : all) h();
    }
    void barrier(std::function<void()> done) override { inner.barrier(std::move(done)); }
    void put_subscription(const subscription_record& s) override { inner.put_subscription(s); }
    void remove_subscription(std::string_view name) override { inner.remove_subscription(name); }
    void put_retained(const message_ptr& m) override { inner.put_retained(m); }
    void remove_retained(std::string_view topic) override { inner.remove_retained(topic); }
    void recover(const recover_each& each) override { inner.recover(each); }
    bool can_load() const noexcept override { return inner.can_load(); }
    std::size_t load(std::string_view queue, std::span<const message_id> ids, std::size_t max_bytes,
                     std::vector<message_ptr>& out) override {
        ++loads;
        if (empty_loads && loads <= load_limit) return 0;
        return inner.load(queue, ids, max_bytes, out);
    }
    void recover_subscriptions(const std::function<void(const subscription_record&)>& each) override {
        inner.recover_subscriptions(each);
    }
    void recover_retained(const std::function<void(message_ptr)>& each) override { inner.recover_retained(each); }
    std::string_view kind() const noexcept override { return "scripted"; }

    memory_store inner;
    std::vector<store_transaction> commits;
    std::vector<std::function<void()>> held;
    bool fail_commits = false;
    bool empty_loads = false;
    std::size_t load_limit = 1000;
    std::size_t loads = 0;
    std::size_t adds = 0;
};

struct fixture {
    explicit fixture(broker_settings s = {}, bool loadable = false)
        : w(2), st(loadable), b(std::move(s), w.ptrs, st) {}

    message_ptr make(const destination& d, std::string body, bool persistent = true) {
        auto m = std::make_shared<message>();
        w[0].call([&] { m->id = b.next_message_id(); });
        m->dest = d;
        m->body = std::move(body);
        m->persistent = persistent;
        return m;
    }
    void publish(const destination& d, std::string body, bool persistent = true) {
        auto m = make(d, std::move(body), persistent);
        w[0].call([&] { b.publish(m, {}); });
        w.run();
    }
    std::pair<consumer_id, std::shared_ptr<sink>> subscribe(const destination& d) {
        auto s = std::make_shared<sink>();
        consumer_id id = 0;
        w[0].call([&] {
            id = b.next_consumer_id();
            b.subscribe(id, d, {}, s, {});
        });
        w.run();
        return {id, s};
    }
    // Commits from worker 0; the result is set once `done` ran.
    std::shared_ptr<std::optional<publish_status>> commit(local_transaction tx) {
        auto result = std::make_shared<std::optional<publish_status>>();
        w[0].call([&] { b.commit(std::move(tx), [result](publish_status s) { *result = s; }); });
        w.run();
        return result;
    }
    destination_stats stats_of(const destination& d) { return sb::test::stats_of(w, b, d); }
    std::vector<std::string> stored_bodies() {
        std::vector<std::string> out;
        st.inner.recover_loaded([&](std::string_view q, message_ptr m) { out.push_back(std::string(q) + ":" + m->body); });
        std::sort(out.begin(), out.end());
        return out;
    }

    workers w;
    scripted_store st;
    broker b;
};

// Two queue names owned by different shards of a two-worker broker.
std::pair<destination, destination> queues_on_two_shards(const broker& b) {
    destination first{dest_kind::queue, "tx.a"};
    for (int i = 0; i < 100; ++i) {
        destination other{dest_kind::queue, "tx.b" + std::to_string(i)};
        if (b.shard_of(other.name) != b.shard_of(first.name)) return {first, other};
    }
    FAIL("no two queue names on different shards");
    return {};
}

}  // namespace

TEST_CASE("a commit is one store transaction across shards, completed and visible only once durable",
          "[core][broker][transaction]") {
    fixture f;
    const auto [qa, qb] = queues_on_two_shards(f.b);
    f.publish(qa, "a1");
    f.publish(qa, "a2");
    f.publish(qb, "b1");
    auto [ca, sa] = f.subscribe(qa);
    auto [cb, sb] = f.subscribe(qb);
    REQUIRE(sa->bodies() == std::vector<std::string>{"a1", "a2"});
    REQUIRE(sb->bodies() == std::vector<std::string>{"b1"});
    const auto adds_before = f.st.adds;

    local_transaction tx;
    tx.sends = {f.make(qa, "sa"), f.make(qb, "sb"), f.make(qb, "volatile", false)};
    tx.acks = {{ca, sa->got[0].tag}, {cb, sb->got[0].tag}};
    auto result = f.commit(std::move(tx));

    // One store transaction with both persistent sends and both removes; nothing else stored.
    REQUIRE(f.st.commits.size() == 1);
    const auto& c = f.st.commits.front();
    CHECK(c.adds.size() == 2);
    CHECK(c.removes.size() == 2);
    CHECK(f.st.adds == adds_before);
    // Not durable yet: no completion, and the sends are not visible to consumers.
    CHECK(!result->has_value());
    CHECK(sa->got.size() == 2);
    CHECK(sb->got.size() == 1);
    CHECK(f.stored_bodies() == std::vector<std::string>{qa.name + ":a1", qa.name + ":a2", qb.name + ":b1"});

    f.st.release();
    f.w.run();
    REQUIRE(result->has_value());
    CHECK(**result == publish_status::ok);
    CHECK(sa->bodies() == std::vector<std::string>{"a1", "a2", "sa"});
    CHECK(sb->bodies() == std::vector<std::string>{"b1", "sb", "volatile"});
    CHECK(f.stored_bodies() == std::vector<std::string>{qa.name + ":a2", qa.name + ":sa", qb.name + ":sb"});
    CHECK(f.st.adds == adds_before);   // the committed sends were not stored a second time
    CHECK(f.stats_of(qa).dequeued == 1);
    CHECK(f.stats_of(qb).dequeued == 1);
}

TEST_CASE("a commit the store fails completes with store_failed and publishes nothing",
          "[core][broker][transaction]") {
    fixture f;
    const destination q{dest_kind::queue, "tx.fail"};
    auto [c, s] = f.subscribe(q);
    f.st.fail_commits = true;
    local_transaction tx;
    tx.sends = {f.make(q, "never")};
    auto result = f.commit(std::move(tx));
    f.st.release();
    f.w.run();
    REQUIRE(result->has_value());
    CHECK(**result == publish_status::store_failed);
    CHECK(s->got.empty());
}

TEST_CASE("a commit with nothing persistent completes without a store transaction", "[core][broker][transaction]") {
    fixture f;
    const destination q{dest_kind::queue, "tx.volatile"};
    auto [c, s] = f.subscribe(q);
    local_transaction tx;
    tx.sends = {f.make(q, "v1", false), f.make(q, "v2", false)};
    auto result = f.commit(std::move(tx));
    CHECK(f.st.commits.empty());
    REQUIRE(result->has_value());
    CHECK(**result == publish_status::ok);
    CHECK(s->bodies() == std::vector<std::string>{"v1", "v2"});
}

TEST_CASE("a transacted persistent topic send is stored for each durable subscription in the same transaction",
          "[core][broker][transaction]") {
    fixture f;
    const destination topic{dest_kind::topic, "tx.prices"};
    auto durable = std::make_shared<sink>();
    consumer_id id = 0;
    f.w[1].call([&] {
        id = f.b.next_consumer_id();
        f.b.subscribe_durable(id, "c:s", destination{dest_kind::topic, "tx.>"}, {}, durable, {});
    });
    f.w.run();
    auto [plain, live] = f.subscribe(topic);

    local_transaction tx;
    tx.sends = {f.make(topic, "t1")};
    auto result = f.commit(std::move(tx));
    REQUIRE(f.st.commits.size() == 1);
    REQUIRE(f.st.commits.front().adds.size() == 1);
    CHECK(f.st.commits.front().adds.front().queue == broker::durable_queue("c:s").name);
    CHECK(durable->got.empty());
    f.st.release();
    f.w.run();
    REQUIRE(result->has_value());
    CHECK(**result == publish_status::ok);
    CHECK(durable->bodies() == std::vector<std::string>{"t1"});   // once, not once more by the fan-out
    CHECK(live->bodies() == std::vector<std::string>{"t1"});
    CHECK(f.st.adds == 0);
}

TEST_CASE("acks of unknown tags in a commit are ignored", "[core][broker][transaction]") {
    fixture f;
    const destination q{dest_kind::queue, "tx.unknown"};
    f.publish(q, "m");
    auto [c, s] = f.subscribe(q);
    local_transaction tx;
    tx.acks = {{c, s->got[0].tag + 100}, {c + 1, s->got[0].tag}};
    auto result = f.commit(std::move(tx));
    CHECK(f.st.commits.empty());   // nothing to write
    REQUIRE(result->has_value());
    CHECK(f.stats_of(q).inflight == 1);
}

TEST_CASE("paging in ends when the store's load handles no id: those ids are dropped and counted",
          "[core][broker][paging]") {
    broker_settings bs;
    bs.queue_memory_limit = 1;   // every persistent message beyond the first is paged out
    fixture f(bs, true);
    const destination q{dest_kind::queue, "tx.paged"};
    for (int i = 0; i < 5; ++i) f.publish(q, "m" + std::to_string(i));
    REQUIRE(f.stats_of(q).paged >= 4);
    f.st.empty_loads = true;
    f.st.load_limit = 50;
    auto [c, s] = f.subscribe(q);
    // One round of load() that answers nothing, not a loop until the store relents.
    CHECK(f.st.loads <= 2);
    const auto st = f.stats_of(q);
    CHECK(st.paged == 0);
    CHECK(st.dropped >= 4);
    CHECK(st.depth == 0);
    CHECK(s->got.size() == 5 - st.dropped);
}

TEST_CASE("a core::transaction completes its commit only after the store transaction, its sends visible only then",
          "[core][broker][transaction][ktx]") {
    fixture f;
    const auto [qa, qb] = queues_on_two_shards(f.b);
    f.publish(qa, "a1");
    auto [ca, sa] = f.subscribe(qa);
    auto [cb, sb] = f.subscribe(qb);
    std::unique_ptr<transaction> tx;
    f.w[0].call([&] { tx = f.b.begin_transaction(5); });
    CHECK(tx->send(f.make(qb, "s1")) == tx_status::ok);
    CHECK(tx->ack(ca, {sa->got[0].tag}) == tx_status::ok);
    std::optional<publish_status> result;
    f.w[0].call([&] { CHECK(tx->commit([&](publish_status s) { result = s; }) == tx_status::ok); });
    f.w.run();
    REQUIRE(f.st.commits.size() == 1);
    CHECK(f.st.commits.front().adds.size() == 1);
    CHECK(f.st.commits.front().removes.size() == 1);
    CHECK(!result);         // the store transaction is not durable yet
    CHECK(sb->got.empty());   // nor is the send visible
    f.st.release();
    f.w.run();
    REQUIRE(result);
    CHECK(*result == publish_status::ok);
    CHECK(sb->bodies() == std::vector<std::string>{"s1"});
    CHECK(f.stored_bodies() == std::vector<std::string>{qb.name + ":s1"});
}
