// adapters/net/output_flow.hpp — bounds what a connection's output holds for its consumers.
//
// A session encodes deliveries into its output buffer and writes it to the socket. When the
// peer reads slower than the kernel dispatches (or not at all), that buffer would grow without
// bound. With output_flow:
//  - past the high watermark, deliveries are kept unencoded (their messages are the kernel's
//    in-flight ones, nothing is copied) and encoded in order as the output drains;
//  - past the high watermark, or when a write has not completed for a second (small messages
//    use up the prefetch before the watermark), the session's consumers are paused in the
//    kernel (broker::pause): nothing more is dispatched to them, a queue's messages go to its
//    other consumers, a topic's wait in the subscription's backlog (oldest dropped beyond
//    topic_max_pending) and hold no publisher; below the low watermark they resume;
//  - a write that does not complete within `stall_timeout` means the peer stopped reading: the
//    session disconnects it (ActiveMQ's abort-slow-consumer strategy), counted process-wide.
// All calls on the connection's worker. Costs an idle connection a few words: the stall watch
// (a timer) exists only while a connection with consumers has output in flight.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "adapters/engine/output_flow.hpp"
#include "adapters/net/lazy_deque.hpp"
#include "core/broker.hpp"

namespace sb::net {

using output_limits = engine::output_limits;   // one type for the sessions on and off the engine

// What a session does for its output_flow.
class flow_target {
public:
    // Pauses (true) or resumes (false) every consumer of the connection in the kernel.
    virtual void pause_consumers(bool pause) = 0;
    // The output made no progress for stall_timeout. Returns whether the session disconnects
    // (a connection without subscriptions is no slow consumer).
    virtual bool on_output_stalled(std::chrono::milliseconds stalled) = 0;

protected:
    ~flow_target() = default;
};

class output_flow {
public:
    using clock = std::chrono::steady_clock;

    explicit output_flow(const output_limits& limits) : limits_(&limits) {}

    // From on_delivery, before encoding: keeps `d` (true) while the output is over the high
    // watermark or earlier deliveries are kept, so that order holds.
    bool hold(core::consumer_id c, core::delivery& d, std::size_t queued) {
        if (replaying_ || (held_.empty() && queued <= limits_->high_watermark)) return false;
        held_->emplace_back(c, std::move(d));
        return true;
    }

    // After encoding: output at `queued` bytes.
    void grew(flow_target& t, std::size_t queued) {
        if (!paused_ && queued > limits_->high_watermark) set_paused(t, true);
    }

    // A write starts. With `consumers` (the session has subscriptions) the stall watch runs
    // on `ex` and tells `t` (if still alive); a connection without them is no slow consumer.
    void write_started(const boost::asio::any_io_executor& ex, std::weak_ptr<flow_target> t, bool consumers);

    // A write completed. Kept deliveries go back to `deliver(consumer_id, delivery&&)` (the
    // session's on_delivery) in order while `queued()` stays under the high watermark; the
    // consumers resume once nothing is kept and the output is under the low watermark.
    template <typename Queued, typename Deliver>
    void written(flow_target& t, Queued&& queued, Deliver&& deliver) {
        writing_ = false;
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
        if (paused_ && held_.empty() && queued() <= limits_->low_watermark) set_paused(t, false);
    }

    // A subscription ended: its kept deliveries go (unsettled, the kernel requeues them).
    void forget(core::consumer_id c);

    // The connection closes: nothing more is kept or watched.
    void stop();

    bool paused() const noexcept { return paused_; }

    // Connections disconnected as slow consumers since the process started (all workers).
    static std::uint64_t slow_consumers_disconnected() noexcept;

private:
    void set_paused(flow_target& t, bool p) {
        paused_ = p;
        t.pause_consumers(p);
    }
    void arm(clock::duration after, std::weak_ptr<flow_target> t);
    void on_timer(const std::weak_ptr<flow_target>& t);
    clock::duration stuck_after() const noexcept;

    const output_limits* limits_;
    lazy_deque<std::pair<core::consumer_id, core::delivery>> held_;
    std::unique_ptr<boost::asio::steady_timer> timer_;
    clock::time_point since_{};   // the write in progress started
    bool writing_ = false, paused_ = false, replaying_ = false, armed_ = false, stopped_ = false;
};

}  // namespace sb::net
