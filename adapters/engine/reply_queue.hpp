// adapters/engine/reply_queue.hpp — replies to the peer that wait for kernel completions and go
// out in the order their requests came (STOMP RECEIPTs, MQTT PUBACK/PUBREC/PUBCOMP/SUBACK/
// UNSUBACK, AMQP dispositions).
//
// push() returns a ticket for the entry; each kernel completion the entry waits for calls
// complete(ticket); release() hands the ready entries at the front to the protocol's encoder
// and drops them. A ticket stays safe to use after its entry is gone (released, or the queue
// cleared when the connection closes): complete() and find() then do nothing, so completions
// that come back late need no state check of their own. Costs nothing while empty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>

#include "adapters/engine/lazy_deque.hpp"

namespace sb::engine {

template <typename T>
class reply_queue {
public:
    using ticket = std::uint64_t;
    static constexpr ticket none = std::numeric_limits<ticket>::max();

    // Queues `v` behind every earlier entry; it is ready once `waiting` completions came.
    ticket push(T v, std::size_t waiting) {
        q_->emplace_back(std::move(v), waiting);
        return front_ + q_.size() - 1;
    }

    // The entry of `t`, or nullptr once it is gone.
    T* find(ticket t) {
        if (t == none || t < front_ || t - front_ >= q_.size()) return nullptr;
        return &(*q_)[t - front_].value;
    }

    // One completion for `t`; false when the entry is gone (nothing to do).
    bool complete(ticket t) {
        if (t == none || t < front_ || t - front_ >= q_.size()) return false;
        auto& e = (*q_)[t - front_];
        if (e.waiting) --e.waiting;
        return true;
    }

    // Hands every ready entry at the front, in order, to `emit(T&)`, and drops it. Returns how
    // many went.
    template <typename Emit>
    std::size_t release(Emit&& emit) {
        std::size_t n = 0;
        while (!q_.empty() && q_->front().waiting == 0) {
            emit(q_->front().value);
            q_->pop_front();
            ++front_;
            ++n;
        }
        q_.release_if_empty();
        return n;
    }

    bool empty() const noexcept { return q_.empty(); }
    std::size_t size() const noexcept { return q_.size(); }

    // Drops every entry (the connection closes); their tickets go stale.
    void clear() noexcept {
        front_ += q_.size();
        q_.clear();
    }

private:
    struct entry {
        // A constructor, not an aggregate: emplace_back builds it in place, and clang 14 (the
        // fuzz build) has no parenthesized aggregate initialization.
        entry(T v, std::size_t w) : value(std::move(v)), waiting(w) {}
        T value;
        std::size_t waiting;
    };
    lazy_deque<entry> q_;
    ticket front_ = 0;   // ticket of the front entry
};

}  // namespace sb::engine
