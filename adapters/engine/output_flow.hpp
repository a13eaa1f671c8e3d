// adapters/engine/output_flow.hpp — bounds what a connection's output holds for its consumers.
//
// A connection encodes deliveries into its output and the driver writes it to the transport.
// When the peer reads slower than the kernel dispatches (or not at all), that output would
// grow without bound. With output_flow:
//  - past the high watermark, deliveries are kept unencoded (their messages are the kernel's
//    in-flight ones, nothing is copied) and encoded in order as the output drains;
//  - past the high watermark, or when a write has not completed for a second (small messages
//    use up the prefetch before the watermark), the connection's consumers are paused in the
//    kernel (broker::pause): nothing more is dispatched to them, a queue's messages go to its
//    other consumers, a topic's wait in the subscription's backlog (oldest dropped beyond
//    topic_max_pending) and hold no publisher; below the low watermark they resume;
//  - a write that does not complete within `stall_timeout` means the peer stopped reading: the
//    connection is disconnected (ActiveMQ's abort-slow-consumer strategy), counted
//    process-wide.
// No timer of its own: the stall watch is a deadline of the engine (deadline()/on_deadline()),
// so an idle connection holds nothing for it. Methods report the pause transitions they cause;
// the engine applies them to its consumers. All calls on the connection's worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <utility>

#include "adapters/engine/lazy_deque.hpp"
#include "core/broker.hpp"

namespace sb::engine {

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;
inline constexpr time_point never = time_point::max();

struct output_limits {
    std::size_t high_watermark = std::size_t{4} << 20;   // bytes queued: pause (and stop reading)
    std::size_t low_watermark = std::size_t{1} << 20;    // bytes queued: resume
    std::chrono::milliseconds stall_timeout{30000};      // no write progress: disconnect (0: never)
};

class output_flow {
public:
    explicit output_flow(const output_limits& limits) : limits_(&limits) {}

    // Before encoding a delivery: keeps `d` (true) while the output is over the high watermark
    // or earlier deliveries are kept, so that order holds.
    bool hold(core::consumer_id c, core::delivery& d, std::size_t queued) {
        if (replaying_ || (held_.empty() && queued <= limits_->high_watermark)) return false;
        held_->emplace_back(c, std::move(d));
        return true;
    }

    // After encoding: output at `queued` bytes. True when the consumers must pause now.
    bool grew(std::size_t queued) { return !paused_ && queued > limits_->high_watermark && (paused_ = true); }

    // A write starts at `now`. With `consumers` (the connection has subscriptions) the stall
    // watch runs; a connection without them is no slow consumer.
    void write_started(time_point now, bool consumers) {
        writing_ = true;
        watched_ = consumers && !stopped_;
        since_ = now;
    }

    // A write completed. Kept deliveries go back to `deliver(consumer_id, delivery&&)` in order
    // while `queued()` stays under the high watermark. True when the consumers must resume
    // (nothing kept, the output under the low watermark).
    template <typename Queued, typename Deliver>
    bool written(Queued&& queued, Deliver&& deliver) {
        writing_ = false;
        watched_ = false;
        if (!held_.empty()) {
            replaying_ = true;
            while (!held_.empty() && queued() <= limits_->high_watermark) {
                auto [c, d] = std::move(held_->front());
                held_->pop_front();
                deliver(c, std::move(d));
            }
            replaying_ = false;
            held_.release_if_empty();
        }
        if (paused_ && held_.empty() && queued() <= limits_->low_watermark) {
            paused_ = false;
            return true;
        }
        return false;
    }

    // The next moment the stall watch must look (never when no watched write is pending).
    time_point deadline() const noexcept;

    enum class verdict : std::uint8_t { none, pause, stalled };
    // At `now` (>= deadline()): pause the consumers, disconnect (stalled: the write is pending
    // for `stuck`), or nothing yet.
    verdict on_deadline(time_point now, std::chrono::milliseconds& stuck);

    // A subscription ended: its kept deliveries go (unsettled, the kernel requeues them).
    void forget(core::consumer_id c);

    // The connection closes: nothing more is kept or watched.
    void stop();

    bool paused() const noexcept { return paused_; }

    // Connections disconnected as slow consumers since the process started (all workers).
    static std::uint64_t slow_consumers_disconnected() noexcept;
    static void count_slow_consumer() noexcept;

private:
    clock::duration stuck_after() const noexcept;

    const output_limits* limits_;
    lazy_deque<std::pair<core::consumer_id, core::delivery>> held_;
    time_point since_{};   // the write in progress started
    bool writing_ = false, watched_ = false, paused_ = false, replaying_ = false, stopped_ = false;
};

}  // namespace sb::engine
