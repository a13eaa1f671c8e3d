// gateway/task_queue.hpp — a worker's inbox: any number of threads push tasks, one thread (the
// worker's) takes what is there in batches and runs it.
//
// The tasks sit in a ring of cells (a bounded multi-producer queue after Dmitry Vyukov's: each
// cell carries a sequence number saying whose turn it is). A push claims the next cell with one
// compare-and-swap on the ring's tail and publishes the task with a release store of the cell's
// sequence; the consumer walks the cells in order. No lock on this path, and the memory is
// contiguous: the consumer reads what producers wrote in sequence (two tasks per cache line,
// prefetched), where a linked node per task (the inbox before this one: an intrusive stack,
// nodes recycled between threads) made each post and each run chase a pointer into a line last
// written by the other core — three dependent cache misses per task, which cost more than the
// work of a QoS 0 MQTT message (tests/bench/compare.sh, MQTT 1→1: 0.73 of the mutex inbox).
//
// A full ring (a burst of more than `ring_size` tasks waiting) spills into an overflow vector
// under a mutex; while anything waits there every push goes there too, so no task overtakes
// one pushed before it. The consumer takes the overflow only after the ring is empty.
//
// Order: the tasks of one producer run in the order it pushed them; tasks of different
// producers in the order their pushes took effect (the tail's modification order, then the
// overflow's): a task pushed after another one finished pushing runs after it.
//
// Wake-ups: a flag says a wake-up of the consumer is on its way. run_all() clears it before it
// looks, a push sets it after it published; only the push that sets it asks for a wake-up, and
// a fence on each side makes sure that a push either is seen by the consumer's look or sees the
// flag cleared (the store-buffering pattern): no task is left without a wake-up.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "core/executor.hpp"

namespace sb::gateway {

class task_queue {
public:
    // Cells in the ring (a power of two): 40 bytes each, 160 KiB per worker.
    static constexpr std::size_t ring_size = 4096;

    task_queue() : cells_(std::make_unique<cell[]>(ring_size)) {
        for (std::size_t i = 0; i < ring_size; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
    }
    task_queue(const task_queue&) = delete;
    task_queue& operator=(const task_queue&) = delete;
    // Tasks pushed and never run are destroyed (with their cells and the overflow), not run.
    ~task_queue() = default;

    // Any thread. True when this push is the one that must wake the consumer: no wake-up was on
    // its way (the consumer took everything pushed earlier, or nothing was pushed); false when
    // an earlier push's wake-up, not consumed yet, will take this one along.
    bool push(core::task t) {
        // acquire: pairs with the release store under the mutex, so that a producer that saw
        // the overflow in use goes there (the mutex orders the rest).
        if (overflowing_.load(std::memory_order_acquire) || !try_ring(t)) {
            std::lock_guard lock(overflow_mutex_);
            overflow_.push_back(std::move(t));
            overflowing_.store(true, std::memory_order_release);
        }
        // The task is published; now the flag. seq_cst fence: pairs with run_all's (header).
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (wake_.load(std::memory_order_relaxed)) return false;
        return !wake_.exchange(true, std::memory_order_relaxed);
    }

    // The consumer's thread only. Runs every task pushed before the call, in push order, and
    // returns how many; tasks they push run on a later call (except while the ring overflows:
    // then the overflow is taken once the ring is empty, with what was pushed meanwhile). A
    // task whose push has claimed its cell but not yet published it stops the walk there: that
    // push finds the flag cleared and wakes the consumer again.
    std::size_t run_all() {
        wake_.store(false, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        std::size_t ran = run_ring(tail_.load(std::memory_order_relaxed));
        if (!overflowing_.load(std::memory_order_acquire)) return ran;
        // Before the overflow: everything claimed in the ring so far (those pushes may have
        // finished before a push into the overflow began).
        const std::size_t tail = tail_.load(std::memory_order_acquire);
        ran += run_ring(tail);
        if (head_.load(std::memory_order_relaxed) != tail) return ran;   // one still unpublished
        {
            std::lock_guard lock(overflow_mutex_);
            running_.swap(overflow_);
            overflowing_.store(false, std::memory_order_release);
        }
        struct clear {   // a task that throws leaves none behind to run twice
            std::vector<core::task>& v;
            ~clear() { v.clear(); }
        } c{running_};
        for (auto& t : running_) {
            ++ran;
            std::exchange(t, nullptr)();
        }
        return ran;
    }

    // Any thread, as a hint: whether nothing is waiting.
    bool empty() const noexcept {
        return tail_.load(std::memory_order_relaxed) == head_.load(std::memory_order_relaxed) &&
               !overflowing_.load(std::memory_order_relaxed);
    }

private:
    static constexpr std::size_t mask = ring_size - 1;
    static_assert((ring_size & mask) == 0, "ring_size is a power of two");

    struct cell {
        // == position: free for the push claiming that position; == position + 1: holds its
        // task; == position + ring_size: run, free for the push one lap later.
        std::atomic<std::size_t> seq;
        core::task t;
    };

    // Claims the tail's cell and publishes `t` there (moved from only then); false: the ring
    // is full.
    bool try_ring(core::task& t) {
        std::size_t pos = tail_.load(std::memory_order_relaxed);
        for (;;) {
            cell& c = cells_[pos & mask];
            // acquire: the consumer's release after it took the cell's previous task.
            const std::size_t seq = c.seq.load(std::memory_order_acquire);
            const auto lag = static_cast<std::intptr_t>(seq - pos);
            if (lag == 0) {
                if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
                    c.t = std::move(t);
                    c.seq.store(pos + 1, std::memory_order_release);
                    return true;
                }
            } else if (lag < 0) {
                return false;   // a lap behind: the consumer has not taken that task yet
            } else {
                pos = tail_.load(std::memory_order_relaxed);   // another push took it
            }
        }
    }

    // Runs the published tasks in the ring up to position `end`; stops at a cell claimed but
    // not published yet.
    std::size_t run_ring(std::size_t end) {
        std::size_t head = head_.load(std::memory_order_relaxed);
        std::size_t ran = 0;
        while (head != end) {
            cell& c = cells_[head & mask];
            if (c.seq.load(std::memory_order_acquire) != head + 1) break;
            core::task t = std::exchange(c.t, nullptr);
            c.seq.store(head + ring_size, std::memory_order_release);   // free for the next lap
            head_.store(++head, std::memory_order_relaxed);   // its own line: a plain store
            ++ran;
            t();
        }
        return ran;
    }

    // Each on a cache line of its own: the tail is written by every push; the flags are read
    // by every push and written about once per batch; the head is the consumer's.
    alignas(64) std::atomic<std::size_t> tail_{0};
    alignas(64) std::atomic<bool> wake_{false};       // a wake-up is on its way
    std::atomic<bool> overflowing_{false};            // overflow_ holds tasks
    alignas(64) std::atomic<std::size_t> head_{0};   // consumer; atomic only for empty()
    std::unique_ptr<cell[]> cells_;
    std::vector<core::task> running_;                 // the overflow being run (consumer)
    alignas(64) std::mutex overflow_mutex_;
    std::vector<core::task> overflow_;
};

}  // namespace sb::gateway
