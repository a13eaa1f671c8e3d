// tests/unit/core/kernel_v2_test.cpp — kernel API v2 on the memory and the journal store:
// consumer credit (window and link; grant, take back, drain, pull with prefetch 0), settle
// outcomes (accepted, released, modified, rejected), queue browsing.
//
// The workers are manual (the test runs their tasks), but locked: the journal completes its
// writes on its own thread, which posts the completions to them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>

#include "core/broker.hpp"
#include "core/executor.hpp"
#include "core/store/journal_store.hpp"
#include "core/store/memory_store.hpp"

using namespace sb::core;
namespace fs = std::filesystem;

namespace {

class locked_executor final : public executor {
public:
    locked_executor(std::size_t index, std::mutex& m, std::condition_variable& cv) : index_(index), m_(m), cv_(cv) {}
    void post(task t) override {
        {
            std::lock_guard lock(m_);
            tasks_.push_back(std::move(t));
        }
        cv_.notify_all();
    }
    std::size_t index() const noexcept override { return index_; }
    bool run_one() {
        task t;
        {
            std::lock_guard lock(m_);
            if (tasks_.empty()) return false;
            t = std::move(tasks_.front());
            tasks_.pop_front();
        }
        set_current(this);
        t();
        set_current(nullptr);
        return true;
    }
    void call(const std::function<void()>& f) {
        set_current(this);
        f();
        set_current(nullptr);
    }

private:
    std::size_t index_;
    std::mutex& m_;
    std::condition_variable& cv_;
    std::deque<task> tasks_;
};

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::random_device rd;
        path = fs::temp_directory_path() / ("sb-kv2-" + std::to_string(rd()) + std::to_string(rd()));
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// Records deliveries and the browse end marker, in the order they arrive.
struct rec_sink final : consumer_sink {
    std::vector<delivery> got;
    std::vector<std::string> events;   // body of each delivery, "<end>" for the end marker
    void on_delivery(consumer_id, delivery d) override {
        events.push_back(d.msg->body);
        got.push_back(std::move(d));
    }
    void on_browse_end(consumer_id) override { events.push_back("<end>"); }
    std::vector<std::string> bodies() const {
        std::vector<std::string> b;
        for (const auto& d : got) b.push_back(d.msg->body);
        return b;
    }
    std::vector<delivery_tag> tags() const {
        std::vector<delivery_tag> t;
        for (const auto& d : got) t.push_back(d.tag);
        return t;
    }
    bool ended() const { return std::find(events.begin(), events.end(), "<end>") != events.end(); }
};

const destination q{dest_kind::queue, "orders"};

// A kernel on two locked manual workers over a memory store (loadable: it pages) or a journal
// that survives restart().
struct env {
    explicit env(bool journal, broker_settings s = {}) : journal_(journal), settings_(std::move(s)) {
        for (std::size_t i = 0; i < 2; ++i) owned_.push_back(std::make_unique<locked_executor>(i, m_, cv_));
        for (auto& e : owned_) ptrs_.push_back(e.get());
        start();
    }
    ~env() {
        b.reset();
        st.reset();
    }

    void start() {
        if (journal_) {
            journal_settings js;
            js.dir = dir_.path.string();
            js.sync = sync_mode::never;
            st = std::make_unique<journal_store>(js);
        } else {
            st = std::make_unique<memory_store>(true);
        }
        b = std::make_unique<broker>(settings_, ptrs_, *st);
        recovered = b->recover();
    }
    // A new kernel and store on the same journal (the memory store starts empty).
    void restart() {
        quiet();
        b.reset();
        st.reset();
        start();
    }

    // Runs every worker's tasks until none is left; whether any ran.
    bool run() {
        bool any = false;
        for (std::size_t steps = 0; steps < 1'000'000;) {
            bool progress = false;
            for (auto& e : owned_)
                while (e->run_one()) {
                    progress = any = true;
                    if (++steps >= 1'000'000) FAIL("the kernel did not go quiet");
                }
            if (!progress) break;
        }
        return any;
    }
    // Runs until quiet and the store has completed what was written (its completions posted
    // back and run): a store barrier, then the tasks it released, until a round adds nothing.
    void quiet() {
        for (int round = 0; round < 1000; ++round) {
            run();
            bool flag = false;
            st->barrier([&] {
                {
                    std::lock_guard lock(m_);
                    flag = true;
                }
                cv_.notify_all();
            });
            {
                std::unique_lock lock(m_);
                REQUIRE(cv_.wait_for(lock, std::chrono::seconds(10), [&] { return flag; }));
            }
            if (!run()) return;
        }
        FAIL("the store did not go quiet");
    }
    void on(std::size_t w, const std::function<void()>& f) {
        owned_[w]->call(f);
        quiet();
    }

    message_ptr make(const destination& d, std::string body, bool persistent = true, std::uint8_t priority = 4) {
        auto m = std::make_shared<message>();
        owned_[0]->call([&] { m->id = b->next_message_id(); });
        m->dest = d;
        m->body = std::move(body);
        m->persistent = persistent;
        m->priority = priority;
        return m;
    }
    void publish(const destination& d, std::string body, bool persistent = true, std::uint8_t priority = 4) {
        auto m = make(d, std::move(body), persistent, priority);
        on(0, [&] { b->publish(m, {}); });
    }
    std::pair<consumer_id, std::shared_ptr<rec_sink>> subscribe(const destination& d, subscribe_options opt = {},
                                                                std::size_t home = 0) {
        auto s = std::make_shared<rec_sink>();
        consumer_id id = 0;
        bool done = false;
        on(home, [&] {
            id = b->next_consumer_id();
            b->subscribe(id, d, opt, s, [&] { done = true; });
        });
        REQUIRE(done);
        return {id, s};
    }
    std::pair<consumer_id, std::shared_ptr<rec_sink>> browse(const destination& d, subscribe_options opt = {},
                                                             std::size_t home = 0) {
        auto s = std::make_shared<rec_sink>();
        consumer_id id = 0;
        bool done = false;
        on(home, [&] {
            id = b->next_consumer_id();
            b->browse(id, d, opt, s, [&] { done = true; });
        });
        REQUIRE(done);
        return {id, s};
    }
    // Settles and returns whether `done` ran.
    bool settle(consumer_id id, std::vector<delivery_tag> tags, settle_outcome o) {
        bool done = false;
        on(0, [&] { b->settle(id, std::move(tags), std::move(o), [&] { done = true; }); });
        return done;
    }
    void grant(consumer_id id, const destination& d, std::uint32_t n, std::size_t home = 0) {
        on(home, [&] { b->grant(id, d, n); });
    }
    void set_credit(consumer_id id, const destination& d, std::uint32_t n) {
        on(0, [&] { b->set_credit(id, d, n); });
    }
    drain_result drain(consumer_id id, const destination& d, std::size_t home = 0) {
        std::optional<drain_result> r;
        on(home, [&] { b->drain(id, d, [&](drain_result x) { r = x; }); });
        REQUIRE(r);
        return *r;
    }
    destination_stats stats_of(const destination& d) {
        std::vector<destination_stats> all;
        on(0, [&] { b->stats([&](std::vector<destination_stats> s) { all = std::move(s); }); });
        for (auto& s : all)
            if (s.dest == d) return s;
        return {};
    }

    bool journal_;
    broker_settings settings_;
    temp_dir dir_;
    std::mutex m_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<locked_executor>> owned_;
    std::vector<executor*> ptrs_;
    std::unique_ptr<store> st;
    std::unique_ptr<broker> b;
    std::size_t recovered = 0;
};

subscribe_options credit(credit_mode mode, std::optional<std::uint32_t> prefetch) {
    subscribe_options o;
    o.credit = mode;
    o.prefetch = prefetch;
    return o;
}

std::string text_property(const message& m, std::string_view name) {
    const auto* v = m.find_property(name);
    if (!v) return "<none>";
    const auto* s = std::get_if<std::string>(v);
    return s ? *s : "<not text>";
}

std::vector<std::string> numbered(int n, const std::string& prefix = "m") {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back(prefix + (i < 10 ? "0" : "") + std::to_string(i));
    return out;
}

}  // namespace

// ---- credit ----------------------------------------------------------------------------------

TEST_CASE("prefetch 0 is a pull consumer: nothing is dispatched until credit is granted", "[core][kernel_v2][credit]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    env e(journal);
    for (const auto& body : numbered(3)) e.publish(q, body);

    SECTION("link credit: each delivery uses one unit, settling gives none back") {
        auto [c, s] = e.subscribe(q, credit(credit_mode::link, 0));
        CHECK(s->got.empty());
        e.grant(c, q, 2);
        REQUIRE(s->bodies() == std::vector<std::string>{"m00", "m01"});
        e.settle(c, s->tags(), settle_outcome::accepted());
        CHECK(s->got.size() == 2);   // accepted, but no credit came back
        e.grant(c, q, 5);
        CHECK(s->bodies() == numbered(3));
        e.publish(q, "later");       // 4 units left
        CHECK(s->got.size() == 4);
        CHECK(e.stats_of(q).depth == 0);
    }
    SECTION("window credit: a granted window is replenished as deliveries are settled") {
        auto [c, s] = e.subscribe(q, credit(credit_mode::window, 0));
        CHECK(s->got.empty());
        e.grant(c, q, 1);
        REQUIRE(s->bodies() == std::vector<std::string>{"m00"});
        e.settle(c, {s->got[0].tag}, settle_outcome::accepted());
        REQUIRE(s->bodies() == std::vector<std::string>{"m00", "m01"});
        e.settle(c, {s->got[1].tag}, settle_outcome::accepted());
        CHECK(s->bodies() == numbered(3));
    }
    SECTION("no prefetch given: the broker default") {
        auto [c, s] = e.subscribe(q, credit(credit_mode::window, std::nullopt));
        CHECK(s->got.size() == 3);
    }
}

TEST_CASE("credit taken back stops dispatch; what is in flight stays", "[core][kernel_v2][credit]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    env e(journal);
    for (const auto& body : numbered(10)) e.publish(q, body);

    SECTION("window: a smaller window lets through only once the in-flight count is below it") {
        auto [c, s] = e.subscribe(q, credit(credit_mode::window, 5));
        REQUIRE(s->got.size() == 5);
        e.set_credit(c, q, 2);
        e.settle(c, {s->got[0].tag, s->got[1].tag, s->got[2].tag}, settle_outcome::accepted());
        CHECK(s->got.size() == 5);   // 2 in flight = the window
        e.settle(c, {s->got[3].tag}, settle_outcome::accepted());
        CHECK(s->got.size() == 6);
        e.set_credit(c, q, 0);
        e.settle(c, {s->got[4].tag, s->got[5].tag}, settle_outcome::accepted());
        CHECK(s->got.size() == 6);
        e.grant(c, q, 3);
        CHECK(s->got.size() == 9);
        auto first9 = numbered(10);
        first9.pop_back();
        CHECK(s->bodies() == first9);
    }
    SECTION("link: set_credit lowers (or zeroes) what was granted and not used") {
        const destination empty{dest_kind::queue, "orders.empty"};
        auto [c, s] = e.subscribe(empty, credit(credit_mode::link, 0));
        e.grant(c, empty, 5);
        e.set_credit(c, empty, 2);
        for (const auto& body : numbered(4)) e.publish(empty, body);
        CHECK(s->bodies() == std::vector<std::string>{"m00", "m01"});
        e.grant(c, empty, 1);
        CHECK(s->got.size() == 3);
        e.set_credit(c, empty, 0);
        e.settle(c, s->tags(), settle_outcome::accepted());
        CHECK(s->got.size() == 3);
        CHECK(e.stats_of(empty).depth == 1);
    }
}

TEST_CASE("drain uses up the credit left after what was available, and reports it", "[core][kernel_v2][credit]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    env e(journal);
    for (const auto& body : numbered(2)) e.publish(q, body);

    SECTION("link") {
        auto [c, s] = e.subscribe(q, credit(credit_mode::link, 0));
        std::optional<drain_result> r;
        std::size_t seen_at_done = 0;
        e.on(0, [&, c = c, s = s] {
            e.b->grant(c, q, 5);
            e.b->drain(c, q, [&, s = s](drain_result x) {
                r = x;
                seen_at_done = s->got.size();
            });
        });
        REQUIRE(r);
        CHECK(seen_at_done == 2);   // the deliveries reached the sink before the drain's answer
        CHECK(r->unused == 3);
        e.publish(q, "after the drain");
        CHECK(s->got.size() == 2);  // no credit left
        e.grant(c, q, 1);
        CHECK(s->bodies() == std::vector<std::string>{"m00", "m01", "after the drain"});
    }
    SECTION("window: the window becomes 0, settling brings nothing back") {
        auto [c, s] = e.subscribe(q, credit(credit_mode::window, 4));
        REQUIRE(s->got.size() == 2);
        const auto r = e.drain(c, q);
        CHECK(r.delivered == 0);
        CHECK(r.unused == 2);
        e.publish(q, "after the drain");
        e.settle(c, s->tags(), settle_outcome::accepted());
        CHECK(s->got.size() == 2);
        e.grant(c, q, 1);
        CHECK(s->got.size() == 3);
    }
    SECTION("a paused consumer: the credit is used up without deliveries") {
        auto [c, s] = e.subscribe(q, credit(credit_mode::link, 0));
        e.on(0, [&, c = c] {
            e.b->pause(c, q);
            e.b->grant(c, q, 3);
        });
        const auto r = e.drain(c, q);
        CHECK(r.delivered == 0);
        CHECK(r.unused == 3);
        e.on(0, [&, c = c] { e.b->resume(c, q); });
        CHECK(s->got.empty());
    }
    SECTION("an unknown consumer") {
        const auto r = e.drain(12345, q);
        CHECK(r.delivered == 0);
        CHECK(r.unused == 0);
    }
}

TEST_CASE("link credit on a topic subscription is exact across the shards its topics live on",
          "[core][kernel_v2][credit]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    env e(journal);
    // One topic on each shard.
    std::vector<destination> topics(2);
    for (int i = 0; topics[0].name.empty() || topics[1].name.empty(); ++i) {
        REQUIRE(i < 1000);
        const std::string name = "prices.t" + std::to_string(i);
        auto& slot = topics[e.b->shard_of(name)];
        if (slot.name.empty()) slot = destination{dest_kind::topic, name};
    }
    const destination filter{dest_kind::topic, "prices.>"};
    // Home on worker 1: its credit lives on shard 1; shard 0's matches are forwarded there.
    auto [c, s] = e.subscribe(filter, credit(credit_mode::link, 3), 1);
    for (int i = 0; i < 4; ++i)
        for (const auto& t : topics) e.publish(t, t.name + "/" + std::to_string(i), false);
    CHECK(s->got.size() == 3);
    e.settle(c, s->tags(), settle_outcome::accepted());
    CHECK(s->got.size() == 3);   // the backlog waits for credit
    e.grant(c, filter, 4, 1);
    CHECK(s->got.size() == 7);
    const auto r = e.drain(c, filter, 1);
    CHECK(r.unused == 0);
    e.grant(c, filter, 10, 1);
    CHECK(s->got.size() == 8);   // the whole backlog, each message once
    std::vector<std::string> bodies = s->bodies();
    std::sort(bodies.begin(), bodies.end());
    CHECK(std::adjacent_find(bodies.begin(), bodies.end()) == bodies.end());
    // Publishing counts each message as delivered on its topic's shard once.
    CHECK(e.stats_of(topics[0]).dequeued == 4);
    CHECK(e.stats_of(topics[1]).dequeued == 4);
}

TEST_CASE("credit applies to a durable subscription's queue", "[core][kernel_v2][credit]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    env e(journal);
    const destination filter{dest_kind::topic, "prices.>"};
    const destination topic{dest_kind::topic, "prices.eur"};
    const auto dq = broker::durable_queue("c1:s1");
    auto s = std::make_shared<rec_sink>();
    consumer_id c = 0;
    e.on(0, [&] {
        c = e.b->next_consumer_id();
        e.b->subscribe_durable(c, "c1:s1", filter, credit(credit_mode::link, 0), s, {});
    });
    e.publish(topic, "a");
    e.publish(topic, "b");
    CHECK(s->got.empty());
    CHECK(e.stats_of(dq).depth == 2);
    e.grant(c, dq, 1);
    CHECK(s->bodies() == std::vector<std::string>{"a"});
    CHECK(e.stats_of(dq).depth == 1);
}

// ---- settle outcomes -------------------------------------------------------------------------

TEST_CASE("released goes back to the head of the queue without counting a redelivery",
          "[core][kernel_v2][settle]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    env e(journal);   // max_redeliveries 6
    for (const auto& body : numbered(2)) e.publish(q, body);
    auto [c, s] = e.subscribe(q, credit(credit_mode::window, 1));
    for (int i = 0; i < 10; ++i) {
        REQUIRE(s->got.size() == std::size_t(i + 1));
        CHECK(s->got.back().msg->body == "m00");   // back at the head, before m01
        CHECK(s->got.back().redeliveries == 0);
        CHECK(e.settle(c, {s->got.back().tag}, settle_outcome::released()));
    }
    CHECK(e.stats_of(q).dead_lettered == 0);
    CHECK(e.stats_of(destination{dest_kind::queue, std::string(shared_dlq_name)}).depth == 0);
    // modified with neither flag is a release too.
    e.settle(c, {s->got.back().tag}, settle_outcome::modified(false, false));
    CHECK(s->got.back().msg->body == "m00");
    CHECK(s->got.back().redeliveries == 0);
}

TEST_CASE("modified delivery_failed counts a redelivery and dead-letters past the limit",
          "[core][kernel_v2][settle]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    broker_settings bs;
    bs.max_redeliveries = 2;
    env e(journal, bs);
    e.publish(q, "poison");
    auto [c, s] = e.subscribe(q, credit(credit_mode::window, 1));
    for (std::uint32_t i = 0; i <= 2; ++i) {
        REQUIRE(s->got.size() == i + 1);
        CHECK(s->got.back().redeliveries == i);
        CHECK(e.settle(c, {s->got.back().tag}, settle_outcome::modified(true, false)));
    }
    CHECK(s->got.size() == 3);
    const destination dlq{dest_kind::queue, std::string(shared_dlq_name)};
    CHECK(e.stats_of(dlq).depth == 1);
    CHECK(e.stats_of(q).dead_lettered == 1);
    auto [d, ds] = e.subscribe(dlq);
    REQUIRE(ds->got.size() == 1);
    CHECK(ds->got[0].msg->find_property(dlq_failure_cause_property) == nullptr);   // not rejected
}

TEST_CASE("modified undeliverable_here is never sent to that consumer again; others get it",
          "[core][kernel_v2][settle]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    env e(journal);
    auto [a, sa] = e.subscribe(q, credit(credit_mode::window, 1));
    auto [b, sb] = e.subscribe(q, credit(credit_mode::window, 0));   // no credit yet
    e.publish(q, "m00");
    REQUIRE(sa->bodies() == std::vector<std::string>{"m00"});
    e.settle(a, {sa->got[0].tag}, settle_outcome::modified(false, true));
    // A has credit again, but m00 is not for it: m01 overtakes it, m00 waits for B.
    e.publish(q, "m01");
    CHECK(sa->bodies() == std::vector<std::string>{"m00", "m01"});
    CHECK(sb->got.empty());
    CHECK(e.stats_of(q).depth == 1);
    e.grant(b, q, 1);
    REQUIRE(sb->bodies() == std::vector<std::string>{"m00"});
    CHECK(sb->got[0].redeliveries == 0);   // not counted
    e.settle(a, {sa->got[1].tag}, settle_outcome::accepted());
    e.settle(b, {sb->got[0].tag}, settle_outcome::released());
    // Released by B: back to the queue; A has credit but still refused it; B gets it again.
    CHECK(sa->got.size() == 2);
    REQUIRE(sb->got.size() == 2);
    CHECK(sb->got[1].msg->body == "m00");
    e.settle(b, {sb->got[1].tag}, settle_outcome::accepted());
    CHECK(e.stats_of(q).depth == 0);
    CHECK(e.stats_of(q).dequeued == 2);
}

TEST_CASE("modified with both flags counts the redelivery and gives the message to another consumer",
          "[core][kernel_v2][settle]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    env e(journal);
    auto [a, sa] = e.subscribe(q, credit(credit_mode::link, 1));
    auto [b, sb] = e.subscribe(q, credit(credit_mode::link, 0));
    e.publish(q, "m00");
    REQUIRE(sa->got.size() == 1);
    e.grant(a, q, 5);
    e.settle(a, {sa->got[0].tag}, settle_outcome::modified(true, true));
    CHECK(sa->got.size() == 1);   // A has credit, but not for this message
    e.grant(b, q, 1);
    REQUIRE(sb->got.size() == 1);
    CHECK(sb->got[0].msg->body == "m00");
    CHECK(sb->got[0].redeliveries == 1);
}

TEST_CASE("rejected goes to the dead-letter queue at once with the reason, across a restart",
          "[core][kernel_v2][settle]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    broker_settings bs;
    bs.dead_letter = dead_letter_policy::per_destination;
    env e(journal, bs);
    e.publish(q, "bad");
    e.publish(q, "good");
    auto [c, s] = e.subscribe(q, credit(credit_mode::window, 2));
    REQUIRE(s->got.size() == 2);
    CHECK(e.settle(c, {s->got[0].tag}, settle_outcome::rejected("schema mismatch")));
    CHECK(e.settle(c, {s->got[1].tag}, settle_outcome::accepted()));
    const destination dlq{dest_kind::queue, std::string(dlq_prefix) + q.name};
    CHECK(e.stats_of(q).dead_lettered == 1);
    CHECK(e.stats_of(q).depth == 0);
    CHECK(e.stats_of(dlq).depth == 1);
    if (journal) {
        e.restart();
        CHECK(e.recovered == 1);   // only the dead-lettered copy: "bad" left orders, "good" was accepted
        CHECK(e.stats_of(q).depth == 0);
    }
    auto [d, ds] = e.subscribe(dlq);
    REQUIRE(ds->got.size() == 1);
    CHECK(ds->got[0].msg->body == "bad");
    CHECK(ds->got[0].redeliveries == 0);
    CHECK(text_property(*ds->got[0].msg, dlq_failure_cause_property) == "schema mismatch");
    CHECK(text_property(*ds->got[0].msg, original_destination_property) == "queue://orders");
}

TEST_CASE("accepted completes after the removal is durable; it stays removed across a restart",
          "[core][kernel_v2][settle]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    env e(journal);
    for (const auto& body : numbered(3)) e.publish(q, body);
    auto [c, s] = e.subscribe(q);
    REQUIRE(s->got.size() == 3);
    CHECK(e.settle(c, {s->got[0].tag, s->got[2].tag}, settle_outcome::accepted()));
    CHECK(e.settle(c, {999}, settle_outcome::released()));   // unknown tags: done all the same
    if (!journal) return;
    e.restart();
    CHECK(e.recovered == 1);
    auto [c2, s2] = e.subscribe(q);
    CHECK(s2->bodies() == std::vector<std::string>{"m01"});
}

TEST_CASE("a topic delivery settled with any outcome is only settled", "[core][kernel_v2][settle]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    env e(journal);
    const destination t{dest_kind::topic, "prices.eur"};
    auto [c, s] = e.subscribe(t, credit(credit_mode::window, 1));
    e.publish(t, "a", false);
    e.publish(t, "b", false);
    REQUIRE(s->got.size() == 1);
    e.settle(c, {s->got[0].tag}, settle_outcome::rejected("no"));
    REQUIRE(s->bodies() == std::vector<std::string>{"a", "b"});   // the window came back
    e.settle(c, {s->got[1].tag}, settle_outcome::released());
    CHECK(s->got.size() == 2);
    CHECK(e.stats_of(destination{dest_kind::queue, std::string(shared_dlq_name)}).depth == 0);
}

// ---- browsing --------------------------------------------------------------------------------

TEST_CASE("a browser sees every queued message once, in order, consumes nothing, then the end",
          "[core][kernel_v2][browse]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    env e(journal);
    e.publish(q, "low", true, 1);
    for (const auto& body : numbered(3)) e.publish(q, body);
    e.publish(q, "high", true, 9);
    auto [br, sb] = e.browse(q);
    const std::vector<std::string> order{"high", "m00", "m01", "m02", "low"};
    CHECK(sb->events == std::vector<std::string>{"high", "m00", "m01", "m02", "low", "<end>"});
    e.publish(q, "after the browse");   // not in its snapshot
    CHECK(sb->got.size() == 5);
    auto st = e.stats_of(q);
    CHECK(st.depth == 6);
    CHECK(st.consumers == 0);
    CHECK(st.inflight == 0);
    // Settling browsed deliveries consumes nothing either.
    e.settle(br, sb->tags(), settle_outcome::accepted());
    CHECK(e.stats_of(q).depth == 6);
    e.on(0, [&, br = br] { e.b->unsubscribe(br, q); });
    auto [c, s] = e.subscribe(q);
    CHECK(s->got.size() == 6);
    // An unknown (empty) queue: only the end marker.
    auto [br2, sb2] = e.browse(destination{dest_kind::queue, "nothing.here"});
    CHECK(sb2->events == std::vector<std::string>{"<end>"});
}

TEST_CASE("a browser honours its credit and ends only after its last delivery", "[core][kernel_v2][browse]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    env e(journal);
    for (const auto& body : numbered(5)) e.publish(q, body);
    SECTION("window") {
        auto [br, sb] = e.browse(q, credit(credit_mode::window, 2));
        REQUIRE(sb->events == std::vector<std::string>{"m00", "m01"});
        e.settle(br, sb->tags(), settle_outcome::accepted());
        REQUIRE(sb->events == std::vector<std::string>{"m00", "m01", "m02", "m03"});
        e.settle(br, {sb->got[2].tag}, settle_outcome::accepted());
        CHECK(sb->events == std::vector<std::string>{"m00", "m01", "m02", "m03", "m04", "<end>"});
    }
    SECTION("link, pulled") {
        auto [br, sb] = e.browse(q, credit(credit_mode::link, 0));
        CHECK(sb->events.empty());
        e.grant(br, q, 4);
        CHECK(sb->events == std::vector<std::string>{"m00", "m01", "m02", "m03"});
        const auto r = e.drain(br, q);
        CHECK(r.unused == 0);
        e.grant(br, q, 1);
        CHECK(sb->events == std::vector<std::string>{"m00", "m01", "m02", "m03", "m04", "<end>"});
    }
    CHECK(e.stats_of(q).depth == 5);
}

TEST_CASE("a browser sees paged-out messages, loaded from the store, in order", "[core][kernel_v2][browse]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    broker_settings bs;
    message one;
    one.dest = q;
    one.body = "m00";
    bs.queue_memory_limit = 4 * one.memory_size();
    env e(journal, bs);
    const auto all = numbered(40);
    for (const auto& body : all) e.publish(q, body);
    auto before = e.stats_of(q);
    REQUIRE(before.paged > 30);
    auto [br, sb] = e.browse(q, credit(credit_mode::window, 7));
    for (int round = 0; round < 100 && !sb->ended(); ++round) {
        std::vector<delivery_tag> unsettled;
        for (const auto& d : sb->got) unsettled.push_back(d.tag);
        e.settle(br, unsettled, settle_outcome::accepted());   // settled tags are ignored
    }
    CHECK(sb->bodies() == all);
    CHECK(sb->events.back() == "<end>");
    auto after = e.stats_of(q);
    CHECK(after.depth == 40);
    CHECK(after.paged == before.paged);       // browsing pages nothing in
    CHECK(after.memory_bytes == before.memory_bytes);
    if (journal) {
        e.restart();
        CHECK(e.recovered == 40);            // nothing was consumed
    }
}

TEST_CASE("a browse concurrent with a consumer: each message at most once, in order, then the end",
          "[core][kernel_v2][browse]") {
    const bool journal = GENERATE(false, true);
    INFO((journal ? "journal" : "memory"));
    broker_settings bs;
    message one;
    one.dest = q;
    one.body = "m00";
    bs.queue_memory_limit = 6 * one.memory_size();   // some in memory, the rest paged out
    env e(journal, bs);
    const auto all = numbered(30);
    for (const auto& body : all) e.publish(q, body);
    auto [br, sb] = e.browse(q, credit(credit_mode::link, 2));
    auto [c, s] = e.subscribe(q, credit(credit_mode::window, 3));
    // The consumer takes and accepts everything while the browser is pulled two at a time.
    for (int round = 0; round < 200 && !(sb->ended() && s->got.size() == all.size()); ++round) {
        e.settle(c, s->tags(), settle_outcome::accepted());
        e.grant(br, q, 2);
    }
    CHECK(s->bodies() == all);                 // the consumer got every message once
    REQUIRE(sb->ended());
    CHECK(sb->events.back() == "<end>");
    const auto seen = sb->bodies();
    CHECK(std::is_sorted(seen.begin(), seen.end()));
    CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
    CHECK(seen.size() >= 2);                   // what it had before the consumer came
    CHECK(e.stats_of(q).depth == 0);
}
