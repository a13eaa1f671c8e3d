// tests/unit/gateway/task_queue_test.cpp — the workers' inbox (a lock-free ring, its overflow): its wake-up contract,
// and under several producer threads nothing lost, duplicated or reordered per producer; then
// the same through worker::post on a running worker.
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <semaphore>
#include <thread>
#include <vector>

#include "gateway/task_queue.hpp"
#include "gateway/worker.hpp"

using sb::gateway::task_queue;

namespace {

constexpr std::size_t producers = 4;
constexpr std::size_t per_producer = 50000;

// What the consumer saw: for each producer, the sequence numbers in the order they ran.
struct tally {
    std::vector<std::vector<std::size_t>> seen = std::vector<std::vector<std::size_t>>(producers);
    std::size_t total = 0;

    void check() const {
        for (std::size_t p = 0; p < producers; ++p) {
            INFO("producer " << p);
            REQUIRE(seen[p].size() == per_producer);
            for (std::size_t i = 0; i < per_producer; ++i) REQUIRE(seen[p][i] == i);   // in order, once each
        }
    }
};

}  // namespace

TEST_CASE("task_queue: only a push onto an empty queue asks for a wake-up", "[gateway][task_queue]") {
    task_queue q;
    std::vector<int> ran;
    CHECK(q.empty());
    CHECK(q.push([&] { ran.push_back(1); }));
    CHECK_FALSE(q.push([&] { ran.push_back(2); }));
    CHECK_FALSE(q.push([&] { ran.push_back(3); }));
    CHECK(ran.empty());   // nothing runs inside push
    CHECK(q.run_all() == 3);
    CHECK(ran == std::vector<int>{1, 2, 3});
    CHECK(q.empty());
    CHECK(q.run_all() == 0);
    // A task pushing onto its own queue: runs on a later call, and its push asks for a wake-up
    // (the batch it belongs to was already taken).
    bool woke = false;
    CHECK(q.push([&] { woke = q.push([&] { ran.push_back(5); }); ran.push_back(4); }));
    CHECK(q.run_all() == 1);
    CHECK(woke);
    CHECK(ran == std::vector<int>{1, 2, 3, 4});
    CHECK(q.run_all() == 1);
    CHECK(ran == std::vector<int>{1, 2, 3, 4, 5});
}

TEST_CASE("task_queue: tasks never run are destroyed with the queue", "[gateway][task_queue]") {
    auto token = std::make_shared<int>(0);
    {
        task_queue q;
        for (int i = 0; i < 10; ++i) q.push([token] { ++*token; });
        CHECK(token.use_count() == 11);
    }
    CHECK(token.use_count() == 1);
    CHECK(*token == 0);
}

TEST_CASE("task_queue: several producers, one consumer: nothing lost, duplicated or reordered per producer",
          "[gateway][task_queue]") {
    task_queue q;
    tally t;   // touched by the consumer thread only (until it is joined)
    // The consumer runs a batch only when a push asked for a wake-up, as a worker does: a task
    // pushed without a wake-up on its way would be left behind, and the tally would miss it.
    std::counting_semaphore<> woken(0);
    std::atomic<std::size_t> wakes{0};
    std::vector<std::thread> threads;
    for (std::size_t p = 0; p < producers; ++p)
        threads.emplace_back([&, p] {
            for (std::size_t i = 0; i < per_producer; ++i)
                if (q.push([&t, p, i] {
                        t.seen[p].push_back(i);
                        ++t.total;
                    })) {
                    wakes.fetch_add(1, std::memory_order_relaxed);
                    woken.release();
                }
        });
    // Bounded in time: a lost wake-up ends the wait at the deadline, and the tally fails.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::thread consumer([&] {
        while (t.total < producers * per_producer && woken.try_acquire_until(deadline)) q.run_all();
    });
    for (auto& th : threads) th.join();
    consumer.join();
    t.check();
    CHECK(q.empty());
    // Only pushes that found no wake-up on its way asked for one (not one per task).
    CHECK(wakes.load() >= 1);
    CHECK(wakes.load() <= producers * per_producer);
}

TEST_CASE("worker::post from several threads runs every task once, in order per producer, on the worker",
          "[gateway][task_queue]") {
    sb::gateway::worker w(0);
    w.start();
    tally t;
    std::mutex m;
    std::condition_variable cv;
    bool all_done = false;
    std::atomic<std::size_t> off_thread{0};
    std::atomic<bool> posting{false};
    std::atomic<std::size_t> inside_post{0};
    std::vector<std::thread> threads;
    for (std::size_t p = 0; p < producers; ++p)
        threads.emplace_back([&, p] {
            for (std::size_t i = 0; i < per_producer; ++i)
                w.post([&, p, i] {
                    if (sb::core::executor::current() != &w) off_thread.fetch_add(1);
                    t.seen[p].push_back(i);
                    if (++t.total == producers * per_producer) {
                        // A post from the worker's own thread runs later, never inside post().
                        posting = true;
                        w.post([&] {
                            if (posting) inside_post.fetch_add(1);
                            std::lock_guard lock(m);
                            all_done = true;
                            cv.notify_all();
                        });
                        posting = false;
                    }
                });
        });
    for (auto& th : threads) th.join();
    {
        std::unique_lock lock(m);
        REQUIRE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return all_done; }));
    }
    w.stop();
    w.join();
    t.check();
    CHECK(off_thread.load() == 0);
    CHECK(inside_post.load() == 0);
}

TEST_CASE("task_queue: the ring's cells are reused lap after lap, their tasks released once run",
          "[gateway][task_queue]") {
    task_queue q;
    auto token = std::make_shared<int>(0);
    std::vector<int> ran;
    // Three rounds of 3,000 go round the ring (task_queue::ring_size cells) more than once.
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 3000; ++i) q.push([token, &ran, i] { ran.push_back(i); });
        CHECK(token.use_count() == 3001);
        CHECK(q.run_all() == 3000);
        CHECK(token.use_count() == 1);   // what each task held went when it ran
        REQUIRE(ran.size() == 3000);
        for (int i = 0; i < 3000; ++i) REQUIRE(ran[static_cast<std::size_t>(i)] == i);
        ran.clear();
        CHECK(q.empty());
    }
}

TEST_CASE("task_queue: a full ring spills into the overflow; order, wake-ups and run_all's batch stay the same",
          "[gateway][task_queue]") {
    task_queue q;
    const std::size_t n = task_queue::ring_size * 2 + 10;
    auto token = std::make_shared<int>(0);
    std::vector<std::size_t> ran;
    std::size_t wakes = 0;
    for (std::size_t i = 0; i < n; ++i)
        if (q.push([token, &ran, i] { ran.push_back(i); })) ++wakes;
    CHECK(wakes == 1);   // one wake-up for the whole burst, ring and overflow
    CHECK(token.use_count() == static_cast<long>(n) + 1);
    CHECK_FALSE(q.empty());
    CHECK(q.run_all() == n);
    CHECK(token.use_count() == 1);
    REQUIRE(ran.size() == n);
    for (std::size_t i = 0; i < n; ++i) REQUIRE(ran[i] == i);
    CHECK(q.empty());
    ran.clear();
    // Full again; a task of the ring pushes more: it lands in the overflow behind what waits
    // there, not in a cell freed meanwhile.
    bool woke = false;
    for (std::size_t i = 0; i < task_queue::ring_size; ++i)
        q.push([&ran, &q, &woke, i] {
            ran.push_back(i);
            if (i == 0) woke = q.push([&ran] { ran.push_back(999999); });
        });
    q.push([&ran] { ran.push_back(777777); });   // the ring is full: overflow
    const std::size_t first = q.run_all();
    CHECK(woke);   // pushed during run_all, which had cleared the wake-up flag
    // The overflow was taken once the ring was empty, with the task pushed meanwhile.
    CHECK(first == task_queue::ring_size + 2);
    REQUIRE(ran.size() == task_queue::ring_size + 2);
    for (std::size_t i = 0; i < task_queue::ring_size; ++i) REQUIRE(ran[i] == i);
    CHECK(ran[task_queue::ring_size] == 777777);
    CHECK(ran[task_queue::ring_size + 1] == 999999);
    CHECK(q.empty());
    CHECK(q.run_all() == 0);
    // Back on the ring: a push after the overflow drained asks for a wake-up again.
    CHECK(q.push([&ran] { ran.push_back(1); }));
    CHECK(q.run_all() == 1);
}
