// gateway/task_queue.hpp — a worker's inbox: any number of threads push tasks, one thread (the
// worker's) takes them all at once and runs them. No lock: a push is one compare-and-swap on
// the head of an intrusive stack, a take is one exchange of that head with null; the taken
// stack is reversed into push order.
//
// Order: the tasks of one producer run in the order it pushed them; tasks of different
// producers in the order their pushes took effect (the head's modification order).
// No ABA problem: the consumer never pops one node, it only swaps the whole stack out, and a
// producer's compare-and-swap only links a node nobody else can see yet.
//
// Nodes are recycled through a small per-thread cache instead of the allocator: a worker runs
// the nodes it was posted and reuses them for the posts it makes, so in steady state (a worker
// posting to itself or to a peer that posts back) a post allocates nothing. Where the traffic
// is one-way (a shard delivering to a consumer's worker that posts little back), the consumer's
// cache fills up; the nodes it runs then go to the queue's spare stack, which a producer that
// finds its own cache empty takes whole (one exchange, no ABA either): a post allocates nothing
// there too (before, one malloc on the producer's thread and a free on the consumer's).
#pragma once

#include <atomic>
#include <cstddef>
#include <utility>

#include "core/executor.hpp"

namespace sb::gateway {

class task_queue {
public:
    task_queue() = default;
    task_queue(const task_queue&) = delete;
    task_queue& operator=(const task_queue&) = delete;

    // Tasks pushed and never run are destroyed, not run.
    ~task_queue() {
        free_list(head_.exchange(nullptr, std::memory_order_acquire));
        free_list(batch_);
        free_list(spare_.exchange(nullptr, std::memory_order_acquire));
    }

    // Any thread. True when the queue was empty before this push: the consumer has taken
    // everything pushed earlier (or nothing was), so it may be idle and must be woken; false
    // when an earlier push, whose wake-up has not been consumed yet, will take this one along.
    bool push(core::task t) {
        node* n = take_node(spare_);
        n->t = std::move(t);
        node* old = head_.load(std::memory_order_relaxed);
        do {
            n->next = old;
            // release: the consumer's acquire exchange that takes `n` sees the task written
            // above. A failed attempt publishes nothing and reloads `old`: relaxed.
        } while (!head_.compare_exchange_weak(old, n, std::memory_order_release, std::memory_order_relaxed));
        return old == nullptr;
    }

    // The consumer's thread only. Runs every task pushed before the call, in push order, and
    // returns how many; tasks they push run on a later call. A push that finds the queue
    // empty after the exchange below returns true, so none is left without a wake-up.
    std::size_t run_all() {
        // acquire: synchronizes with the release push of every node taken. Each push is a
        // read-modify-write of head_, so every earlier push is in the release sequence that
        // this exchange reads from.
        node* n = head_.exchange(nullptr, std::memory_order_acquire);
        node* fifo = nullptr;
        while (n) {   // newest first -> oldest first
            node* next = n->next;
            n->next = fifo;
            fifo = n;
            n = next;
        }
        std::size_t ran = 0;
        batch_ = fifo;   // owned by the queue while it runs: a task that throws leaks nothing
        struct release {
            task_queue& q;
            node* n = nullptr;                                     // running
            node *spare_first = nullptr, *spare_last = nullptr;   // run, beyond this thread's cache
            ~release() {
                if (n) give_node(n, spare_first, spare_last);
                if (spare_first) q.give_spare(spare_first, spare_last);
            }
        } r{*this};
        while (batch_) {
            node* cur = batch_;
            batch_ = cur->next;
            ++ran;
            r.n = cur;
            cur->t();
            r.n = nullptr;
            give_node(cur, r.spare_first, r.spare_last);
        }
        return ran;
    }

    // The consumer's thread (or any thread, as a hint): whether nothing is waiting.
    bool empty() const noexcept { return head_.load(std::memory_order_relaxed) == nullptr; }

private:
    struct node {
        core::task t;
        node* next;
    };

    // Free nodes of the calling thread (their task empty), at most `cache_limit`.
    struct node_cache {
        node* head;
        std::size_t size;
        ~node_cache() { free_list(head); }
    };
    static constexpr std::size_t cache_limit = 1024;

    static node_cache& cache() noexcept {
        static thread_local node_cache c{nullptr, 0};
        return c;
    }

    static node* take_node(std::atomic<node*>& spare) {
        node_cache& c = cache();
        if (!c.head) {
            // The queue's whole spare stack, if any (acquire: pairs with give_spare's release).
            node* s = spare.load(std::memory_order_relaxed) ? spare.exchange(nullptr, std::memory_order_acquire) : nullptr;
            if (!s) return new node{{}, nullptr};
            std::size_t n = 0;
            for (node* i = s; i; i = i->next) ++n;
            c.head = s;
            c.size = n;
        }
        node* n = c.head;
        c.head = n->next;
        --c.size;
        return n;
    }

    // The consumer's thread: `n` has run. Into this thread's cache, or else onto the chain
    // [first, last] for give_spare().
    static void give_node(node* n, node*& first, node*& last) noexcept {
        n->t = nullptr;   // what the task held goes now, not when the node is reused
        node_cache& c = cache();
        if (c.size >= cache_limit) {
            n->next = first;
            first = n;
            if (!last) last = n;
            return;
        }
        n->next = c.head;
        c.head = n;
        ++c.size;
    }

    // The consumer's thread: the one that pushes onto spare_ (producers only take it whole).
    void give_spare(node* first, node* last) noexcept {
        node* old = spare_.load(std::memory_order_relaxed);
        do {
            last->next = old;
        } while (!spare_.compare_exchange_weak(old, first, std::memory_order_release, std::memory_order_relaxed));
    }
    static void free_list(node* n) noexcept {
        while (n) {
            node* next = n->next;
            delete n;
            n = next;
        }
    }

    std::atomic<node*> head_{nullptr};
    node* batch_ = nullptr;   // the batch being run (consumer only)
    std::atomic<node*> spare_{nullptr};   // nodes run here, for the producers (header comment)
};

}  // namespace sb::gateway
