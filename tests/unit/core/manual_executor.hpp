// tests/unit/core/manual_executor.hpp — a worker for kernel tests: tasks queue up and run when
// the test says so, on the test's thread, so every interleaving is deterministic.
#pragma once

#include <deque>
#include <functional>
#include <stdexcept>
#include <vector>

#include "core/executor.hpp"

namespace sb::test {

class manual_executor final : public core::executor {
public:
    explicit manual_executor(std::size_t index) : index_(index) {}
    void post(core::task t) override { tasks_.push_back(std::move(t)); }
    std::size_t index() const noexcept override { return index_; }

    // Runs one task as if on this worker's thread; false when idle.
    bool run_one() {
        if (tasks_.empty()) return false;
        auto t = std::move(tasks_.front());
        tasks_.pop_front();
        set_current(this);
        t();
        set_current(nullptr);
        return true;
    }

    // Runs `f` as a call made on this worker.
    void call(const std::function<void()>& f) {
        set_current(this);
        f();
        set_current(nullptr);
    }

private:
    std::size_t index_;
    std::deque<core::task> tasks_;
};

// Several workers; `run()` drains them all until quiet, bounded in steps.
struct workers {
    explicit workers(std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) owned.push_back(std::make_unique<manual_executor>(i));
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
    manual_executor& operator[](std::size_t i) { return *owned[i]; }
    std::vector<std::unique_ptr<manual_executor>> owned;
    std::vector<core::executor*> ptrs;
};

}  // namespace sb::test
