// tests/unit/core/schedule_test.cpp — scheduled delivery (cron entries, the timer wheel, the
// kernel's AMQ_SCHEDULED_* jobs on both stores and across a restart of the journal), virtual
// topics, composite destinations and dead-letter policies.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <condition_variable>
#include <random>
#include <thread>

#include "core/broker.hpp"
#include "core/destination/composite.hpp"
#include "core/schedule/cron.hpp"
#include "core/schedule/timer_wheel.hpp"
#include "core/store/journal_store.hpp"
#include "core/store/memory_store.hpp"
#include "tests/unit/core/kernel_helpers.hpp"
#include "tests/unit/core/manual_executor.hpp"

using namespace sb::core;
using sb::test::sink;
using sb::test::workers;

namespace {

void utc() {
    ::setenv("TZ", "UTC", 1);
    ::tzset();
}

std::int64_t at(int y, int mo, int d, int h, int mi) {
    std::tm tm{};
    tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d, tm.tm_hour = h, tm.tm_min = mi;
    return std::int64_t(timegm(&tm)) * 1000;
}

struct manual_clock final : time_source {
    std::int64_t now = 0;
    std::int64_t now_ms() const noexcept override { return now; }
};

// A slab for the wheel alone.
struct test_slab {
    std::vector<std::uint32_t> links;
    std::vector<std::int64_t> dues;
    std::uint32_t& next(std::uint32_t h) { return links[h]; }
    std::int64_t due(std::uint32_t h) { return dues[h]; }
};

enum class kind { memory, journal };

// A broker on two manual workers with a manual clock, restartable on the same journal.
struct sched_fixture {
    explicit sched_fixture(kind which, broker_settings s = {}) : k(which), settings(std::move(s)), w(2) {
        std::random_device rd;
        dir = std::filesystem::temp_directory_path() / ("sb-sched-" + std::to_string(rd()) + std::to_string(rd()));
        clock.now = now_ms();
        start();
    }
    ~sched_fixture() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    void start() {
        if (k == kind::memory) {
            st = std::make_unique<memory_store>();
        } else {
            journal_settings js;
            js.dir = dir.string();
            st = std::make_unique<journal_store>(js);
        }
        b = std::make_unique<broker>(settings, w.ptrs, *st);
        b->use_time_source(clock);
        b->recover();
    }
    void stop() {
        // Let the firings' store work end (a repeat's next occurrence is committed on a worker),
        // so that a restart finds each job once (its record removed, its next occurrence
        // stored). The broker itself needs no wait: see "the broker may go while a firing's
        // store work is under way".
        CHECK(settle([&] { return b->firings_in_flight() == 0; }));
        b.reset();
        st.reset();
        w.run();
    }
    void restart() {
        stop();
        start();
    }
    message_ptr make(const destination& d, std::string body, std::vector<property> props, bool persistent = true) {
        auto m = std::make_shared<message>();
        w[0].call([&] { m->id = b->next_message_id(); });
        m->dest = d;
        m->body = std::move(body);
        m->persistent = persistent;
        m->properties = std::move(props);
        return m;
    }
    publish_status publish(message_ptr m) {
        std::optional<publish_status> r;
        w[0].call([&] { b->publish(std::move(m), [&r](publish_status s) { r = s; }); });
        REQUIRE(w.run_until([&] { return r.has_value(); }));
        return *r;
    }
    std::shared_ptr<sink> subscribe(const destination& d) {
        auto s = std::make_shared<sink>();
        bool done = false;
        w[0].call([&] { b->subscribe(b->next_consumer_id(), d, {}, s, [&] { done = true; }); });
        REQUIRE(w.run_until([&] { return done; }));
        return s;
    }
    // Moves the clock by `ms`, fires what is due and waits until `pred` holds (the journal
    // completes from its writer thread).
    void advance(std::int64_t ms, const std::function<bool()>& pred = [] { return true; }) {
        clock.now += ms;
        b->run_scheduled();
        REQUIRE(settle(pred));
    }
    // Runs the workers until `pred` holds (10 s at most). Polled: the journal's completions that
    // file a job (or remove its record) run on its writer thread and post to no worker to wait for.
    bool settle(const std::function<bool()>& pred) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (;;) {
            w.run();
            if (pred()) return true;
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    destination_stats stats_of(const destination& d) { return sb::test::stats_of(w, *b, d); }

    kind k;
    broker_settings settings;
    std::filesystem::path dir;
    manual_clock clock;
    workers w;
    std::unique_ptr<store> st;
    std::unique_ptr<broker> b;
};

const destination q{dest_kind::queue, "sched.q"};

property prop(std::string_view name, std::string v) { return property{std::string(name), std::move(v)}; }

bool has_prop(const message& m, std::string_view name) { return m.find_property(name) != nullptr; }

}  // namespace

// ---- cron ---------------------------------------------------------------------------------

TEST_CASE("cron entries: valid and invalid", "[core][schedule][cron]") {
    for (auto ok : {"* * * * *", "0 0 * * *", "*/5 * * * *", "0,15,30,45 8-18 * * 1-5", "5/10 * 1 1 0",
                    "59 23 31 12 6", "0 12 * * 7", "  1   2 3 4 5 "})
        CHECK(parse_cron(ok).has_value());
    std::string error;
    for (auto bad : {"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
                     "* * * * 8", "a * * * *", "*/0 * * * *", "5-1 * * * *", "1,,2 * * * *"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_cron(bad, &error).has_value());
        CHECK_FALSE(error.empty());
    }
}

TEST_CASE("cron entries: the next matching minute", "[core][schedule][cron]") {
    utc();
    const auto t0 = at(2026, 12, 7, 17, 39) + 12345;   // a Monday, 17:39:12.345
    auto next = [&](const char* e, std::int64_t after) { return next_cron_time(*parse_cron(e), after); };
    CHECK(next("* * * * *", t0) == at(2026, 12, 7, 17, 40));
    CHECK(next("* * * * *", at(2026, 12, 7, 17, 40)) == at(2026, 12, 7, 17, 41));   // strictly after
    CHECK(next("*/15 * * * *", t0) == at(2026, 12, 7, 17, 45));
    CHECK(next("0 * * * *", t0) == at(2026, 12, 7, 18, 0));
    CHECK(next("30 9 * * *", t0) == at(2026, 12, 8, 9, 30));
    CHECK(next("0 0 1 * *", t0) == at(2027, 1, 1, 0, 0));
    CHECK(next("0 12 * * 0", t0) == at(2026, 12, 13, 12, 0));   // Sunday
    CHECK(next("0 12 * * 7", t0) == at(2026, 12, 13, 12, 0));   // 7 = Sunday too
    CHECK(next("0 8 * * 1-5", t0) == at(2026, 12, 8, 8, 0));
    CHECK(next("0 0 29 2 *", t0) == at(2028, 2, 29, 0, 0));     // the next leap day
    CHECK(next("0 0 13 * 5", t0) == at(2026, 12, 11, 0, 0));    // either day field: Friday the 11th
    CHECK(next("0 0 31 2 *", t0) == 0);                         // never
}

// ---- the timer wheel ------------------------------------------------------------------------

TEST_CASE("timer wheel: every entry fires at its millisecond, near and far", "[core][schedule][wheel]") {
    test_slab slab;
    timer_wheel<test_slab> wheel(slab);
    const std::int64_t start = 1'700'000'000'123;
    wheel.start(start);
    std::mt19937_64 rng(42);
    std::vector<std::int64_t> offsets = {0, 1, 255, 256, 257, 65535, 65536, 65537, 16'777'216, 16'777'217,
                                         (std::int64_t(1) << 32) + 5, (std::int64_t(1) << 33) + 7};
    for (int i = 0; i < 2000; ++i) offsets.push_back(std::int64_t(rng() % 3'000'000));
    for (std::uint32_t h = 0; h < offsets.size(); ++h) {
        slab.links.push_back(0);
        slab.dues.push_back(start + offsets[h]);
        wheel.insert(h);
    }
    CHECK(wheel.size() == offsets.size());
    std::vector<std::uint32_t> out;
    wheel.advance(start, out);   // the one already due
    REQUIRE(out.size() == 1);
    CHECK(slab.dues[out[0]] == start);
    // Walk in irregular steps; each entry fires exactly when the wheel reaches its due time.
    std::int64_t now = start;
    std::size_t fired = 1;
    while (wheel.size() > 0) {
        const auto deadline = wheel.next_deadline();
        REQUIRE(deadline > now);
        const std::int64_t step = std::min<std::int64_t>(deadline - now, 1 + std::int64_t(rng() % 700));
        now += step;
        out.clear();
        wheel.advance(now, out);
        for (auto h : out) {
            CHECK(slab.dues[h] <= now);
            CHECK(slab.dues[h] > now - step);   // not late: fired in the step it fell due
        }
        fired += out.size();
        if (deadline - now > 10'000) now = deadline - 1;   // skip the long empty stretches
    }
    CHECK(fired == offsets.size());
    CHECK(wheel.next_deadline() == timer_wheel<test_slab>::never);
}

TEST_CASE("timer wheel: next_deadline is never after the earliest entry", "[core][schedule][wheel]") {
    test_slab slab;
    timer_wheel<test_slab> wheel(slab);
    wheel.start(1000);
    for (std::int64_t due : {5000, 1'000'000, 1300}) {
        slab.links.push_back(0);
        slab.dues.push_back(due);
        wheel.insert(std::uint32_t(slab.dues.size() - 1));
    }
    CHECK(wheel.next_deadline() <= 1300);
    std::vector<std::uint32_t> out;
    wheel.advance(1299, out);
    CHECK(out.empty());
    wheel.advance(1300, out);
    CHECK(out.size() == 1);
    CHECK(wheel.next_deadline() <= 5000);
    CHECK(wheel.next_deadline() > 1300);
}

// ---- scheduled delivery in the kernel --------------------------------------------------------

// The firing thread reads the bodies of jobs kept in the store ahead of their time (while it
// has nothing due), across the wheel's 256 ms windows, so that a firing waits for no store.
TEST_CASE("scheduler: bodies kept in the store are loaded before their jobs are due", "[core][schedule]") {
    // A manual clock stepped a millisecond at a time, run_due() doing what the thread does.
    constexpr std::int64_t ahead = 200;
    constexpr std::int64_t window = 256;   // the wheel's first level: the next one is read at once
    manual_clock clock;
    clock.now = 1'000'000;
    std::map<message_id, std::int64_t> loaded_at, fired_at;
    std::vector<std::pair<message_id, bool>> fired;   // id, with its body
    scheduler s(clock, [&](std::vector<scheduler::job>& jobs) {
        for (const auto& j : jobs) {
            fired.emplace_back(j.id, j.msg != nullptr);
            fired_at[j.id] = clock.now;
        }
    });
    s.use(clock, false);
    s.prefetch(
        [&](std::vector<scheduler::job>& jobs) {
            for (auto& j : jobs) {
                CHECK_FALSE(loaded_at.contains(j.id));   // each asked for once
                loaded_at[j.id] = clock.now;
                auto msg = std::make_shared<message>();
                msg->id = j.id;
                j.msg = std::move(msg);
            }
        },
        ahead);
    const auto t0 = clock.now;
    std::map<message_id, std::int64_t> due;
    for (int i = 0; i < 30; ++i) {
        due[1000 + i] = t0 + 300 + i * 10;   // 0.3 .. 0.59 s: across a window boundary or two
        s.add(due[1000 + i], 1000 + i, nullptr);
    }
    for (int step = 0; step <= 1000 && fired.size() < 30; ++step) {
        clock.now = t0 + step;
        s.run_due();
    }
    REQUIRE(fired.size() == 30);
    for (const auto& [id, with_body] : fired) {
        CAPTURE(id);
        CHECK(with_body);
        CHECK(fired_at[id] == due[id]);
        REQUIRE(loaded_at.contains(id));
        CHECK(loaded_at[id] < due[id]);
        CHECK(loaded_at[id] >= due[id] - ahead - window);   // not long before
    }
    CHECK(s.size() == 0);
}

TEST_CASE("a delayed message is held until its time, then delivered without the schedule properties",
          "[core][schedule]") {
    for (auto k : {kind::memory, kind::journal}) {
        CAPTURE(int(k));
        sched_fixture f(k);
        auto s = f.subscribe(q);
        f.publish(f.make(q, "now", {}));
        CHECK(f.publish(f.make(q, "later", {prop(scheduled_delay_property, "1000")})) == publish_status::ok);
        f.publish(f.make(q, "now2", {}));
        f.w.run();
        CHECK(s->bodies() == std::vector<std::string>{"now", "now2"});
        CHECK(f.b->scheduled_count() == 1);
        f.advance(999);
        CHECK(s->bodies().size() == 2);
        f.advance(1, [&] { return s->got.size() == 3; });
        const auto& m = *s->got.back().msg;
        CHECK(m.body == "later");
        CHECK_FALSE(has_prop(m, scheduled_delay_property));
        CHECK(has_prop(m, scheduled_job_id_property));
        CHECK(f.b->scheduled_count() == 0);
    }
}

TEST_CASE("delayed messages fire in the order of their times", "[core][schedule]") {
    sched_fixture f(kind::memory);
    auto s = f.subscribe(q);
    for (auto [body, delay] : std::vector<std::pair<std::string, std::string>>{{"c", "3000"}, {"a", "1000"}, {"b", "2000"}})
        f.publish(f.make(q, body, {prop(scheduled_delay_property, delay)}, false));
    f.advance(3000, [&] { return s->got.size() == 3; });
    CHECK(s->bodies() == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("repeat: period and count, new ids, the last firing removes the job", "[core][schedule]") {
    for (auto k : {kind::memory, kind::journal}) {
        CAPTURE(int(k));
        sched_fixture f(k);
        auto s = f.subscribe(q);
        f.publish(f.make(q, "tick", {prop(scheduled_delay_property, "100"), prop(scheduled_period_property, "500"),
                                     prop(scheduled_repeat_property, "2")}));
        f.advance(99);
        CHECK(s->got.empty());
        f.advance(1, [&] { return s->got.size() == 1 && f.b->scheduled_count() == 1; });
        f.advance(499);
        CHECK(s->got.size() == 1);
        f.advance(1, [&] { return s->got.size() == 2 && f.b->scheduled_count() == 1; });
        f.advance(500, [&] { return s->got.size() == 3 && f.b->scheduled_count() == 0; });
        f.advance(5000);
        CHECK(s->got.size() == 3);   // 1 + repeat 2
        CHECK(s->got[0].msg->id != s->got[1].msg->id);
        CHECK(s->got[1].msg->id != s->got[2].msg->id);
    }
}

TEST_CASE("a period without a delay waits one period first", "[core][schedule]") {
    sched_fixture f(kind::memory);
    auto s = f.subscribe(q);
    f.publish(f.make(q, "p", {prop(scheduled_period_property, "700")}, false));
    f.advance(699);
    CHECK(s->got.empty());
    f.advance(1, [&] { return s->got.size() == 1; });
    f.advance(5000);
    CHECK(s->got.size() == 1);   // no repeat: once
}

TEST_CASE("malformed schedule properties are refused", "[core][schedule]") {
    sched_fixture f(kind::memory);
    CHECK(f.publish(f.make(q, "x", {prop(scheduled_delay_property, "soon")})) == publish_status::invalid);
    CHECK(f.publish(f.make(q, "x", {prop(scheduled_cron_property, "61 * * * *")})) == publish_status::invalid);
    CHECK(f.publish(f.make(q, "x", {prop(scheduled_delay_property, "-5")})) == publish_status::invalid);
    CHECK(f.b->scheduled_count() == 0);
}

TEST_CASE("scheduler_support off: scheduled messages are delivered at once", "[core][schedule]") {
    broker_settings s;
    s.scheduler_support = false;
    sched_fixture f(kind::memory, s);
    auto sub = f.subscribe(q);
    f.publish(f.make(q, "x", {prop(scheduled_delay_property, "100000")}));
    f.w.run();
    CHECK(sub->bodies() == std::vector<std::string>{"x"});
    CHECK(has_prop(*sub->got[0].msg, scheduled_delay_property));
}

TEST_CASE("cron: delivered at each matching minute; with repeat, each minute starts a run", "[core][schedule]") {
    utc();
    sched_fixture f(kind::memory);
    f.clock.now = at(2026, 12, 7, 10, 0) + 10'000;
    auto s = f.subscribe(q);
    f.publish(f.make(q, "cron", {prop(scheduled_cron_property, "* * * * *")}, false));
    f.advance(49'999);
    CHECK(s->got.empty());
    f.advance(1, [&] { return s->got.size() == 1; });   // 10:01
    f.advance(60'000, [&] { return s->got.size() == 2; });   // 10:02
    CHECK(f.b->scheduled_count() == 1);                     // for ever

    const destination r{dest_kind::queue, "sched.runs"};
    auto runs = f.subscribe(r);
    f.publish(f.make(r, "run", {prop(scheduled_cron_property, "*/10 * * * *"), prop(scheduled_delay_property, "1000"),
                                prop(scheduled_period_property, "1000"), prop(scheduled_repeat_property, "2")}, false));
    // As ActiveMQ: the cron job is due at the cron time plus the delay (10:10:01); it then
    // starts a run of its own (delay, period, repeat), delivering nothing itself.
    f.advance(8 * 60'000 + 1000);
    CHECK(runs->got.empty());
    CHECK(f.b->scheduled_count() == 3);   // the two cron jobs and the run
    for (int i = 1; i <= 3; ++i) f.advance(1000, [&] { return runs->got.size() == std::size_t(i); });
    f.advance(30'000);
    CHECK(runs->got.size() == 3);
}

TEST_CASE("scheduling across a restart of the journal", "[core][schedule][journal]") {
    sched_fixture f(kind::journal);
    f.publish(f.make(q, "d", {prop(scheduled_delay_property, "10000")}));
    f.publish(f.make(q, "late", {prop(scheduled_delay_property, "1000")}));
    f.publish(f.make(q, "rep", {prop(scheduled_delay_property, "5000"), prop(scheduled_period_property, "10000"),
                                prop(scheduled_repeat_property, "1")}));
    f.publish(f.make(q, "np", {prop(scheduled_delay_property, "1000")}, false));   // not stored
    CHECK(f.b->scheduled_count() == 4);
    f.restart();
    CHECK(f.b->scheduled_count() == 3);   // the persistent ones
    auto s = f.subscribe(q);
    f.advance(6000, [&] { return s->got.size() == 2 && f.b->scheduled_count() == 2; });   // late fires at once
    CHECK(s->bodies() == std::vector<std::string>{"late", "rep"});
    // The repeat's next occurrence was stored: it survives another restart.
    f.restart();
    CHECK(f.b->scheduled_count() == 2);
    s = f.subscribe(q);
    std::vector<std::string> got;
    // The journal gave back the delivered copies too (not acked): skip them.
    f.w.run();
    const auto before = s->got.size();
    f.advance(4000, [&] { return s->got.size() == before + 1; });   // d at 10 s
    CHECK(s->got.back().msg->body == "d");
    f.advance(5000, [&] { return s->got.size() == before + 2 && f.b->scheduled_count() == 0; });   // rep at 15 s
    CHECK(s->got.back().msg->body == "rep");
    f.restart();
    CHECK(f.b->scheduled_count() == 0);   // fired for the last time: gone from the store
}

// A firing's store work continues on the journal's thread and on a worker (a repeat's next
// occurrence is committed there); the broker may be destroyed (stop) in between: what is left
// then does nothing, and the store holds the job exactly once (its old record, which fires
// again, or its next occurrence).
TEST_CASE("the broker may go while a firing's store work is under way", "[core][schedule][journal]") {
    for (const bool commit_issued : {false, true}) {
        CAPTURE(commit_issued);
        sched_fixture f(kind::journal);
        f.publish(f.make(q, "rep", {prop(scheduled_delay_property, "100"), prop(scheduled_period_property, "100"),
                                    prop(scheduled_repeat_property, "3")}));
        auto wait_post = [&](std::uint64_t seen) {
            std::unique_lock lock(f.w.signal->mutex);
            return f.w.signal->posted.wait_for(lock, std::chrono::seconds(10), [&] { return f.w.signal->count != seen; });
        };
        auto posts = [&] {
            std::lock_guard lock(f.w.signal->mutex);
            return f.w.signal->count;
        };
        f.clock.now += 100;
        REQUIRE(f.b->run_scheduled() == 1);
        CHECK(f.b->firings_in_flight() == 1);
        const auto seen = posts();
        f.w.run();   // the copy reaches its queue and is stored; its completion posts the commit
        REQUIRE(wait_post(seen));
        if (commit_issued) f.w.run();   // the store transaction (remove this, add the next) is made
        f.b.reset();   // stop(0): nothing of the firing is left on the journal's thread
        f.w.run();     // what was posted runs after the broker is gone: nothing
        f.st.reset();
        f.start();
        CHECK(f.b->scheduled_count() == 1);
        CHECK(f.stats_of(q).depth == 1);   // the copy
        // The old record fires again at once (delivered twice, never lost); the next occurrence
        // at its time.
        auto s = f.subscribe(q);
        f.advance(commit_issued ? 100 : 0, [&] { return s->got.size() == 2; });
        CHECK(s->bodies() == std::vector<std::string>{"rep", "rep"});
    }
}

// ---- virtual topics, composite destinations --------------------------------------------------

TEST_CASE("virtual topic: each consumer queue gets every message, its consumers compete", "[core][virtual]") {
    sched_fixture f(kind::memory);
    const destination topic{dest_kind::topic, "VirtualTopic.Orders"};
    const destination qa{dest_kind::queue, "Consumer.A.VirtualTopic.Orders"};
    const destination qb{dest_kind::queue, "Consumer.B.VirtualTopic.Orders"};
    auto a1 = f.subscribe(qa);
    auto a2 = f.subscribe(qa);
    auto b1 = f.subscribe(qb);
    auto plain = f.subscribe(topic);
    for (int i = 0; i < 4; ++i) f.publish(f.make(topic, "m" + std::to_string(i), {}));
    f.w.run();
    CHECK(a1->got.size() + a2->got.size() == 4);
    CHECK(a1->got.size() == 2);
    CHECK(b1->bodies() == std::vector<std::string>{"m0", "m1", "m2", "m3"});
    CHECK(plain->got.size() == 4);
    CHECK(b1->got[0].msg->dest == qb);
    CHECK(plain->got[0].msg->dest == topic);
    // Not a consumer queue: no copy. A topic outside VirtualTopic.>: none either.
    CHECK(f.stats_of(destination{dest_kind::queue, "Consumer.C.VirtualTopic.Orders"}).enqueued == 0);
}

TEST_CASE("virtual topic: the consumer queue keeps collecting after its consumers left and a restart",
          "[core][virtual][journal]") {
    sched_fixture f(kind::journal);
    const destination topic{dest_kind::topic, "VirtualTopic.X"};
    const destination qa{dest_kind::queue, "Consumer.A.VirtualTopic.X"};
    {
        auto a = f.subscribe(qa);
        f.w.run();
    }
    f.restart();
    f.publish(f.make(topic, "while-away", {}));
    auto a = f.subscribe(qa);
    REQUIRE(f.w.run_until([&] { return a->got.size() == 1; }));
    CHECK(a->bodies() == std::vector<std::string>{"while-away"});
}

TEST_CASE("virtual topic names follow the prefix / postfix settings", "[core][virtual]") {
    broker_settings s;
    s.virtual_topic_name = ">";
    s.virtual_topic_prefix = "VTC.*.";
    s.virtual_topic_postfix = ".mirror";
    sched_fixture f(kind::memory, s);
    auto c = f.subscribe(destination{dest_kind::queue, "VTC.app.events.x.mirror"});
    auto old = f.subscribe(destination{dest_kind::queue, "Consumer.A.events.x"});
    f.publish(f.make(destination{dest_kind::topic, "events.x"}, "e", {}));
    f.w.run();
    CHECK(c->bodies() == std::vector<std::string>{"e"});
    CHECK(old->got.empty());
}

TEST_CASE("composite destination: one send reaches every part", "[core][composite]") {
    CHECK(is_composite("queue://a,topic://b"));
    CHECK_FALSE(is_composite("a,b"));   // an MQTT topic with a comma stays one topic
    CHECK(composite_parts("queue://a,topic://b.c,queue://a").size() == 2);
    CHECK(composite_parts("queue://a,b").empty());
    sched_fixture f(kind::memory);
    const destination a{dest_kind::queue, "comp.a"}, b{dest_kind::queue, "comp.b"}, t{dest_kind::topic, "comp.t"};
    auto sa = f.subscribe(a), sb = f.subscribe(b), st = f.subscribe(t);
    const destination comp{dest_kind::queue, composite_name({a, b, t})};
    CHECK(f.publish(f.make(comp, "all", {})) == publish_status::ok);
    // Scheduled to a composite: split when it fires.
    f.publish(f.make(comp, "later", {prop(scheduled_delay_property, "10")}, false));
    f.advance(10, [&] { return sa->got.size() == 2 && sb->got.size() == 2 && st->got.size() == 2; });
    CHECK(sa->bodies() == std::vector<std::string>{"all", "later"});
    CHECK(sa->got[0].msg->dest == a);
    CHECK(st->got[0].msg->dest == t);
}

// ---- dead-letter policies --------------------------------------------------------------------

namespace {

// Nacks every delivery of `s` on `q` past max_redeliveries.
void poison(sched_fixture& f, const destination& d, const std::string& body, bool persistent = true) {
    auto c = std::make_shared<sink>();
    consumer_id id = 0;
    bool done = false;
    f.w[0].call([&] {
        id = f.b->next_consumer_id();
        f.b->subscribe(id, d, {}, c, [&] { done = true; });
    });
    REQUIRE(f.w.run_until([&] { return done; }));
    f.publish(f.make(d, body, {}, persistent));
    for (std::uint32_t i = 0; i <= f.settings.max_redeliveries; ++i) {
        REQUIRE(f.w.run_until([&] { return c->got.size() == i + 1; }));
        f.w[0].call([&] { f.b->nack(id, {c->got.back().tag}); });
    }
    f.w.run();
    f.w[0].call([&] { f.b->unsubscribe(id, d); });
    f.w.run();
}

}  // namespace

TEST_CASE("dead-letter rules: per-queue strategy, prefix and suffix, first match wins", "[core][dlq]") {
    broker_settings s;
    s.max_redeliveries = 1;
    s.dead_letter_rules.push_back(dead_letter_rule{"orders.>", dead_letter_policy::per_destination, "", "DLQ.", ".dead", true, true});
    s.dead_letter_rules.push_back(dead_letter_rule{"billing.*", dead_letter_policy::shared, "Billing.DLQ", "", "", true, true});
    s.dead_letter_rules.push_back(dead_letter_rule{">", dead_letter_policy::shared, "ActiveMQ.DLQ", "", "", true, false});
    sched_fixture f(kind::memory, s);
    poison(f, destination{dest_kind::queue, "orders.eu"}, "o");
    poison(f, destination{dest_kind::queue, "billing.x"}, "b");
    poison(f, destination{dest_kind::queue, "other"}, "p");
    poison(f, destination{dest_kind::queue, "other"}, "np", false);   // non-persistent: dropped by the last rule
    CHECK(f.stats_of(destination{dest_kind::queue, "DLQ.orders.eu.dead"}).depth == 1);
    CHECK(f.stats_of(destination{dest_kind::queue, "Billing.DLQ"}).depth == 1);
    CHECK(f.stats_of(destination{dest_kind::queue, "ActiveMQ.DLQ"}).depth == 1);
    CHECK(f.stats_of(destination{dest_kind::queue, "other"}).dead_lettered == 2);
}

TEST_CASE("expired messages go to the DLQ (process_expired) or are dropped; a DLQ never loops", "[core][dlq]") {
    for (bool process : {true, false}) {
        CAPTURE(process);
        broker_settings s;
        s.max_redeliveries = 0;
        s.dead_letter_expired = process;
        sched_fixture f(kind::memory, s);
        auto m = std::make_shared<message>(*f.make(q, "stale", {}));
        m->expiration_ms = now_ms() - 1;
        f.publish(m);
        auto sub = f.subscribe(q);
        f.w.run();
        CHECK(sub->got.empty());
        CHECK(f.stats_of(q).expired == 1);
        const destination dlq{dest_kind::queue, "ActiveMQ.DLQ"};
        CHECK(f.stats_of(dlq).depth == (process ? 1u : 0u));
        if (!process) continue;
        // The copy does not expire, and failing on the DLQ drops it: nothing goes anywhere else.
        poison(f, destination{dest_kind::queue, "x"}, "p");   // a second message in the DLQ
        auto d = std::make_shared<sink>();
        consumer_id id = 0;
        f.w[0].call([&] {
            id = f.b->next_consumer_id();
            f.b->subscribe(id, dlq, {}, d, {});
        });
        REQUIRE(f.w.run_until([&] { return d->got.size() == 2; }));
        CHECK(d->got[0].msg->expiration_ms == 0);
        CHECK(has_prop(*d->got[0].msg, "originalExpiration"));
        CHECK(has_prop(*d->got[0].msg, dlq_failure_cause_property));
        f.w[0].call([&] { f.b->nack(id, {d->got[0].tag, d->got[1].tag}); });
        f.w.run();
        CHECK(f.stats_of(dlq).dead_lettered == 2);
        CHECK(f.stats_of(dlq).depth == 0);
        CHECK(f.stats_of(destination{dest_kind::queue, "DLQ.ActiveMQ.DLQ"}).enqueued == 0);
    }
}
