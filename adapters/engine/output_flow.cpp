// adapters/engine/output_flow.cpp — the stall watch of a connection's output, as a deadline.
#include "adapters/engine/output_flow.hpp"

#include <algorithm>
#include <atomic>

namespace sb::engine {

namespace {

std::atomic<std::uint64_t> slow_consumers{0};

// A write pending this long pauses the consumers (the peer is not reading for now).
constexpr auto stuck_pause = std::chrono::seconds(1);

}  // namespace

std::uint64_t output_flow::slow_consumers_disconnected() noexcept { return slow_consumers.load(std::memory_order_relaxed); }

void output_flow::count_slow_consumer() noexcept { slow_consumers.fetch_add(1, std::memory_order_relaxed); }

clock::duration output_flow::stuck_after() const noexcept {
    const clock::duration pause = stuck_pause;
    if (limits_->stall_timeout.count() > 0) return std::min(pause, clock::duration(limits_->stall_timeout));
    return pause;
}

time_point output_flow::deadline() const noexcept {
    if (!writing_ || !watched_ || stopped_) return never;
    const clock::duration stall = limits_->stall_timeout;
    time_point next = never;
    if (!paused_) next = since_ + stuck_after();
    if (stall.count() > 0) next = std::min(next, since_ + stall);
    return next;
}

output_flow::verdict output_flow::on_deadline(time_point now, std::chrono::milliseconds& stuck) {
    if (!writing_ || !watched_ || stopped_) return verdict::none;
    const auto pending = now - since_;
    const clock::duration stall = limits_->stall_timeout;
    if (stall.count() > 0 && pending >= stall) {
        stuck = std::chrono::duration_cast<std::chrono::milliseconds>(pending);
        watched_ = false;
        return verdict::stalled;
    }
    if (!paused_ && pending >= stuck_after()) {
        paused_ = true;
        return verdict::pause;
    }
    return verdict::none;
}

void output_flow::forget(core::consumer_id c) {
    if (held_.empty()) return;
    std::erase_if(*held_, [c](const auto& h) { return h.first == c; });
    held_.release_if_empty();
}

void output_flow::stop() {
    stopped_ = true;
    held_.clear();
}

}  // namespace sb::engine
