// tests/unit/core/manual_executor.hpp — a worker for kernel tests: tasks queue up and run when
// the test says so, on the test's thread, so every interleaving is deterministic. post() may
// come from another thread too (a journal store's completions): run_until waits for those.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "core/executor.hpp"

namespace sb::test {

// Wakes a test waiting for posts from other threads.
struct post_signal {
    std::mutex mutex;
    std::condition_variable posted;
    std::uint64_t count = 0;
};

class manual_executor final : public core::executor {
public:
    explicit manual_executor(std::size_t index, std::shared_ptr<post_signal> signal = {})
        : index_(index), signal_(std::move(signal)) {}
    void post(core::task t) override {
        {
            std::lock_guard lock(mutex_);
            tasks_.push_back(std::move(t));
        }
        if (signal_) {
            std::lock_guard lock(signal_->mutex);
            ++signal_->count;
            signal_->posted.notify_all();
        }
    }
    std::size_t index() const noexcept override { return index_; }

    // Runs one task as if on this worker's thread; false when idle.
    bool run_one() {
        core::task t;
        {
            std::lock_guard lock(mutex_);
            if (tasks_.empty()) return false;
            t = std::move(tasks_.front());
            tasks_.pop_front();
        }
        set_current(this);
        t();
        set_current(nullptr);
        return true;
    }

    // Runs `f` as a call made on this worker (nested in another call: then back to that one).
    void call(const std::function<void()>& f) {
        auto* before = current();
        set_current(this);
        f();
        set_current(before);
    }

private:
    std::size_t index_;
    std::shared_ptr<post_signal> signal_;
    std::mutex mutex_;
    std::deque<core::task> tasks_;
};

// Several workers; `run()` drains them all until quiet, bounded in steps.
struct workers {
    explicit workers(std::size_t n) : signal(std::make_shared<post_signal>()) {
        for (std::size_t i = 0; i < n; ++i) owned.push_back(std::make_unique<manual_executor>(i, signal));
        for (auto& e : owned) ptrs.push_back(e.get());
    }
    std::size_t run(std::size_t max_steps = 1'000'000) {
        std::size_t steps = 0;
        for (bool progress = true; progress;) {
            progress = false;
            for (auto& e : owned)
                while (e->run_one()) {
                    progress = true;
                    if (++steps > max_steps) throw std::runtime_error("kernel did not go quiet");
                }
        }
        return steps;
    }
    // run() until `done()` holds, waiting (10 s at most) for posts from other threads between
    // rounds; returns done().
    bool run_until(const std::function<bool()>& done) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (;;) {
            std::uint64_t seen = 0;
            {
                std::lock_guard lock(signal->mutex);
                seen = signal->count;
            }
            run();
            if (done()) return true;
            std::unique_lock lock(signal->mutex);
            if (!signal->posted.wait_until(lock, deadline, [&] { return signal->count != seen; })) return done();
        }
    }
    manual_executor& operator[](std::size_t i) { return *owned[i]; }
    std::shared_ptr<post_signal> signal;
    std::vector<std::unique_ptr<manual_executor>> owned;
    std::vector<core::executor*> ptrs;
};

}  // namespace sb::test
