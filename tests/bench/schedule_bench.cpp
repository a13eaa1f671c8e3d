// tests/bench/schedule_bench.cpp — switchboard-schedule-bench: the kernel's scheduled delivery
// under load (issue 18, done-when 3). Schedules --count messages (AMQ_SCHEDULED_DELAY spread
// uniformly over [--min-delay, --min-delay + --spread] ms) on one queue of a broker with
// --workers worker threads and the journal (--persistent) or memory store, reports the RSS the
// held messages cost (after all were accepted, minus before), then consumes them as they fire
// and reports how late each arrived at its consumer (delivery time - due time) as percentiles.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/broker.hpp"
#include "core/store/journal_store.hpp"
#include "core/store/memory_store.hpp"

using namespace sb::core;

namespace {

// A worker: a thread running posted tasks in order.
class thread_executor final : public executor {
public:
    explicit thread_executor(std::size_t i) : index_(i), thread_([this] { loop(); }) {}
    ~thread_executor() override {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }
    void post(task t) override {
        {
            std::lock_guard lock(mutex_);
            tasks_.push_back(std::move(t));
        }
        cv_.notify_one();
    }
    std::size_t index() const noexcept override { return index_; }

private:
    void loop() {
        set_current(this);
        std::deque<task> batch;
        for (;;) {
            {
                std::unique_lock lock(mutex_);
                cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
                if (tasks_.empty()) return;
                batch.swap(tasks_);
            }
            for (auto& t : batch) t();
            batch.clear();
        }
    }
    std::size_t index_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<task> tasks_;
    bool stop_ = false;
    std::thread thread_;
};

std::size_t status_kib(const char* key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key, 0) == 0) return std::strtoull(line.c_str() + std::strlen(key), nullptr, 10);
    return 0;
}

struct consumer final : consumer_sink {
    broker* b = nullptr;
    std::vector<std::int64_t> late;   // reserved up front: no allocation while measuring
    std::atomic<std::size_t> count{0};
    void on_delivery(consumer_id id, delivery d) override {
        const auto now = now_ms();
        const auto due = std::strtoll(d.msg->body.c_str(), nullptr, 10);
        const auto n = count.load(std::memory_order_relaxed);
        if (n < late.size()) late[n] = now - due;
        count.store(n + 1, std::memory_order_release);
        b->ack(id, {d.tag});
    }
};

std::int64_t arg(int argc, char** argv, const char* name, std::int64_t def) {
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string(argv[i]) == name) return std::strtoll(argv[i + 1], nullptr, 10);
    return def;
}

bool flag(int argc, char** argv, const char* name) {
    for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == name) return true;
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    if (flag(argc, argv, "--help")) {
        std::puts("switchboard-schedule-bench [--count N] [--min-delay MS] [--spread MS] [--workers N] "
                  "[--persistent] [--body BYTES]");
        return 0;
    }
    const auto count = std::size_t(arg(argc, argv, "--count", 1'000'000));
    const auto min_delay = arg(argc, argv, "--min-delay", 30'000);
    const auto spread = arg(argc, argv, "--spread", 30'000);
    const auto nworkers = std::size_t(arg(argc, argv, "--workers", 2));
    const auto body_bytes = std::size_t(arg(argc, argv, "--body", 0));
    const bool persistent = flag(argc, argv, "--persistent");

    const auto dir = std::filesystem::temp_directory_path() / ("sb-sched-bench-" + std::to_string(::getpid()));
    std::unique_ptr<store> st;
    if (persistent) {
        journal_settings js;
        js.dir = dir.string();
        js.sync = sync_mode::never;   // the scheduler is measured, not the disk
        st = std::make_unique<journal_store>(js);
    } else {
        st = std::make_unique<memory_store>();
    }
    std::vector<std::unique_ptr<thread_executor>> owned;
    std::vector<executor*> ws;
    for (std::size_t i = 0; i < nworkers; ++i) {
        owned.push_back(std::make_unique<thread_executor>(i));
        ws.push_back(owned.back().get());
    }
    broker_settings bs;
    auto b = std::make_unique<broker>(bs, ws, *st);
    b->recover();
    auto sink = std::make_shared<consumer>();
    sink->b = b.get();
    sink->late.assign(count, 0);   // touched now: not part of the scheduled messages' cost
    const destination q{dest_kind::queue, "bench.scheduled"};

    // The consumer is there first: each message reaches it as it fires.
    std::atomic<bool> subscribed{false};
    ws[0]->post([&] { b->subscribe(b->next_consumer_id(), q, {}, sink, [&] { subscribed = true; }); });
    while (!subscribed.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const std::size_t rss_before = status_kib("VmRSS:");
    const auto t0 = std::chrono::steady_clock::now();
    std::atomic<std::size_t> accepted{0};
    std::mt19937_64 rng(1);
    const std::string pad(body_bytes, 'x');
    // Publish from worker 0 in batches, at most `window` unconfirmed.
    constexpr std::size_t batch = 1000, window = 200'000;
    for (std::size_t sent = 0; sent < count;) {
        while (sent - accepted.load() > window) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        const std::size_t n = std::min(batch, count - sent);
        std::vector<std::int64_t> delays(n);
        for (auto& d : delays) d = min_delay + std::int64_t(rng() % std::uint64_t(spread + 1));
        ws[0]->post([&, delays = std::move(delays)]() {
            for (const auto d : delays) {
                auto m = std::make_shared<message>();
                m->id = b->next_message_id();
                m->dest = q;
                m->persistent = persistent;
                const auto due = now_ms() + d;
                m->body = std::to_string(due) + pad;   // the consumer reads the due time back
                m->properties.push_back(property{std::string(scheduled_delay_property), std::to_string(d)});
                b->publish(std::move(m), [&accepted](publish_status) { accepted.fetch_add(1); });
            }
        });
        sent += n;
    }
    while (accepted.load() < count) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const double publish_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::size_t rss_held = status_kib("VmRSS:");
    if (sink->count.load() > 0) std::printf("warning: %zu fired while publishing (raise --min-delay)\n", sink->count.load());
    std::printf("scheduled %zu %s messages (body %zu B + due time) in %.1f s; scheduler holds %zu jobs\n", count,
                persistent ? "persistent (journal)" : "non-persistent (memory store)", body_bytes, publish_s,
                b->scheduled_count());
    std::printf("RSS before %.1f MiB, with all held %.1f MiB: delta %.1f MiB (%.0f B per message)\n",
                double(rss_before) / 1024, double(rss_held) / 1024, double(rss_held - rss_before) / 1024,
                double(rss_held - rss_before) * 1024 / double(count));

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(min_delay + spread + 120'000);
    while (sink->count.load(std::memory_order_acquire) < count && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto got = std::min(sink->count.load(), count);
    std::vector<std::int64_t> late(sink->late.begin(), sink->late.begin() + std::ptrdiff_t(got));
    std::sort(late.begin(), late.end());
    auto pct = [&](double p) { return late.empty() ? 0 : late[std::min(late.size() - 1, std::size_t(p * double(late.size())))]; };
    std::printf("delivered %zu of %zu; lateness ms: min %lld p50 %lld p90 %lld p99 %lld p99.9 %lld max %lld; "
                "within 10 ms: %.4f %%\n",
                got, count, (long long)(late.empty() ? 0 : late.front()), (long long)pct(0.5), (long long)pct(0.9),
                (long long)pct(0.99), (long long)pct(0.999), (long long)(late.empty() ? 0 : late.back()),
                late.empty() ? 0.0
                             : 100.0 * double(std::count_if(late.begin(), late.end(), [](auto x) { return x <= 10; })) /
                                   double(late.size()));
    std::printf("peak RSS %.1f MiB\n", double(status_kib("VmHWM:")) / 1024);
    b->stop();       // the firings' store work is done, while the workers run
    owned.clear();   // every task has run: nothing is due, the broker's threads are idle
    b.reset();
    st.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return got == count ? 0 : 1;
}
