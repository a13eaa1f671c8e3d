// core/schedule/timer_wheel.hpp — a hierarchical timer wheel of millisecond ticks, holding
// 32-bit handles (the scheduler's job indices), not callbacks: one wheel for every scheduled
// message, never a timer per message.
//
// Four levels of 256 slots: level 0 holds what is due within the current 256 ms window, level
// L what is due within the current 256^(L+1) ms window but not the one below; an entry
// cascades down as the window it waits in comes up (at most three times). Beyond 2^32 ms
// (49 days) entries wait in a min-heap and enter the wheel once within reach. An entry is a
// link in a singly linked list per slot, kept in the owner's slab (`Slab::next(h)` is h's link,
// `Slab::due(h)` its due time), so insertion is O(1), firing O(1) per entry, and an entry costs
// the wheel nothing beyond its link. Each level keeps a bit per non-empty slot, so finding the
// next deadline (for a thread that sleeps until it) and skipping an empty window look at a
// few words, not 256 slots. Not thread-safe: the scheduler holds its lock around it.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <functional>
#include <limits>
#include <queue>
#include <utility>
#include <vector>

namespace sb::core {

template <typename Slab>
class timer_wheel {
public:
    using handle = std::uint32_t;
    static constexpr handle none = std::numeric_limits<handle>::max();
    static constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();

    explicit timer_wheel(Slab& slab) : slab_(slab) {
        for (auto& l : wheel_) l.head.fill(none);
    }

    // The wheel's time starts at `now_ms` (else the first insert/advance sets it).
    void start(std::int64_t now_ms) {
        if (started_) return;
        now_ = now_ms;
        started_ = true;
    }

    // Files `h` (whose Slab::due is set) to fire; one already due fires at the next advance().
    // The wheel must have been started.
    void insert(handle h) {
        ++size_;
        file(h);
    }

    // Moves the wheel's time to `now_ms`, appending every handle due by then to `out`, in due
    // order at millisecond granularity.
    void advance(std::int64_t now_ms, std::vector<handle>& out) {
        start(now_ms);
        for (auto h : overdue_) out.push_back(h);
        size_ -= overdue_.size();
        overdue_.clear();
        while (now_ < now_ms) {
            if (size_ == 0) {
                now_ = now_ms;
                break;
            }
            // Skip to the next used slot of level 0, or to the end of its window.
            const std::size_t cur = std::size_t(now_) & mask;
            const std::size_t used = first_used(0, cur + 1);
            const std::int64_t window_end = (now_ | std::int64_t(mask)) + 1;
            std::int64_t target = used < slots ? (now_ & ~std::int64_t(mask)) + std::int64_t(used) : window_end;
            if (target > now_ms) {
                now_ = now_ms;
                break;
            }
            now_ = target;
            if ((now_ & std::int64_t(mask)) == 0) {
                for (int l = 1; l < levels; ++l) {
                    cascade(l);
                    if (((now_ >> (bits * l)) & std::int64_t(mask)) != 0) break;
                }
                if (!far_.empty()) pull_far();
            }
            const std::size_t slot = std::size_t(now_) & mask;
            for (handle h = take(0, slot); h != none;) {
                const handle n = slab_.next(h);
                out.push_back(h);
                --size_;
                h = n;
            }
        }
    }

    // A time at or before the earliest entry's due time (exact within the current 256 ms
    // window; a higher level's slot start otherwise), or `never` when empty.
    std::int64_t next_deadline() const noexcept {
        if (!overdue_.empty()) return now_;
        for (int l = 0; l < levels; ++l) {
            const std::size_t cur = std::size_t(now_ >> (bits * l)) & mask;
            const std::size_t s = first_used(l, cur + 1);
            if (s < slots) {
                const int shift = bits * (l + 1);
                return ((now_ >> shift) << shift) | (std::int64_t(s) << (bits * l));
            }
        }
        if (!far_.empty()) {
            // Entered into the wheel at the start of the top level's next window at the latest.
            const int shift = bits * levels;
            return std::min(far_.top().first, ((now_ >> shift) + 1) << shift);
        }
        return never;
    }

    std::size_t size() const noexcept { return size_; }
    std::int64_t now() const noexcept { return now_; }

    // Looking ahead without changing the wheel (the scheduler's prefetch): the end of the
    // current 256 ms window; f(h) for each entry of level 0's slot for time `t` (within the
    // window, after now()); f(h) for each entry filed for the next window (level 1's next slot,
    // when that window is within level 1's; entries due anywhere in that window).
    std::int64_t window_end() const noexcept { return (now_ | std::int64_t(mask)) + 1; }
    template <typename F>
    void visit_slot(std::int64_t t, F&& f) const {
        if (t <= now_ || (t >> bits) != (now_ >> bits)) return;
        for (handle h = wheel_[0].head[std::size_t(t) & mask]; h != none; h = slab_.next(h)) f(h);
    }
    template <typename F>
    void visit_next_window(F&& f) const {
        const std::int64_t next = (now_ >> bits) + 1;
        if ((next >> bits) != (now_ >> (2 * bits))) return;
        for (handle h = wheel_[1].head[std::size_t(next) & mask]; h != none; h = slab_.next(h)) f(h);
    }

private:
    static constexpr int levels = 4;
    static constexpr int bits = 8;
    static constexpr std::size_t slots = std::size_t{1} << bits;
    static constexpr std::size_t mask = slots - 1;
    struct level {
        std::array<handle, slots> head;
        std::array<std::uint64_t, slots / 64> used{};
    };

    // Level L holds what shares now_'s bits above 8(L+1) but not above 8L.
    void file(handle h) {
        const std::int64_t due = slab_.due(h);
        if (due <= now_) {
            overdue_.push_back(h);
            return;
        }
        for (int l = 0; l < levels; ++l) {
            const int shift = bits * (l + 1);
            if ((due >> shift) == (now_ >> shift)) {
                push(l, std::size_t(due >> (bits * l)) & mask, h);
                return;
            }
        }
        far_.emplace(due, h);
    }
    void push(int l, std::size_t slot, handle h) {
        slab_.next(h) = wheel_[l].head[slot];
        wheel_[l].head[slot] = h;
        wheel_[l].used[slot / 64] |= std::uint64_t{1} << (slot % 64);
    }
    handle take(int l, std::size_t slot) {
        const handle h = wheel_[l].head[slot];
        wheel_[l].head[slot] = none;
        wheel_[l].used[slot / 64] &= ~(std::uint64_t{1} << (slot % 64));
        return h;
    }
    // now_ entered a new window of level l-1: level l's slot for it comes down.
    void cascade(int l) {
        const std::size_t slot = std::size_t(now_ >> (bits * l)) & mask;
        for (handle h = take(l, slot); h != none;) {
            const handle n = slab_.next(h);
            refile(h);
            h = n;
        }
    }
    // Re-filed at the current time: due now goes straight into level 0's current slot.
    void refile(handle h) {
        if (slab_.due(h) <= now_) push(0, std::size_t(now_) & mask, h);
        else file(h);
    }
    void pull_far() {
        const int shift = bits * levels;
        while (!far_.empty() && (far_.top().first >> shift) == (now_ >> shift)) {
            const handle h = far_.top().second;
            far_.pop();
            refile(h);
        }
    }
    std::size_t first_used(int l, std::size_t from) const noexcept {
        for (std::size_t w = from / 64; w < slots / 64; ++w) {
            std::uint64_t word = wheel_[l].used[w];
            if (w == from / 64) word &= ~std::uint64_t{0} << (from % 64);
            if (word) return w * 64 + std::size_t(std::countr_zero(word));
        }
        return slots;
    }

    Slab& slab_;
    std::array<level, levels> wheel_;
    std::priority_queue<std::pair<std::int64_t, handle>, std::vector<std::pair<std::int64_t, handle>>, std::greater<>>
        far_;
    std::vector<handle> overdue_;   // filed already due: fired by the next advance
    std::int64_t now_ = 0;
    bool started_ = false;
    std::size_t size_ = 0;
};

}  // namespace sb::core
