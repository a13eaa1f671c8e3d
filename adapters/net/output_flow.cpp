// adapters/net/output_flow.cpp — the stall watch of a connection's output.
#include "adapters/net/output_flow.hpp"

#include <algorithm>

namespace sb::net {

namespace {

// A write pending this long pauses the consumers (the peer is not reading for now).
constexpr auto stuck_pause = std::chrono::seconds(1);

}  // namespace

// One process-wide count with the engine's.
std::uint64_t output_flow::slow_consumers_disconnected() noexcept {
    return engine::output_flow::slow_consumers_disconnected();
}

output_flow::clock::duration output_flow::stuck_after() const noexcept {
    const clock::duration pause = stuck_pause;
    if (limits_->stall_timeout.count() > 0) return std::min(pause, clock::duration(limits_->stall_timeout));
    return pause;
}

void output_flow::write_started(const boost::asio::any_io_executor& ex, std::weak_ptr<flow_target> t,
                                bool consumers) {
    writing_ = true;
    since_ = clock::now();
    if (armed_ || stopped_ || !consumers) return;
    if (!timer_) timer_ = std::make_unique<boost::asio::steady_timer>(ex);
    arm(stuck_after(), std::move(t));
}

void output_flow::arm(clock::duration after, std::weak_ptr<flow_target> t) {
    armed_ = true;
    timer_->expires_after(after);
    timer_->async_wait([this, t = std::move(t)](const boost::system::error_code& ec) {
        if (ec) return;
        // Alive target: alive session, and this object is one of its members.
        if (t.lock()) on_timer(t);
    });
}

// Runs at most once per stuck_after() while writes are in progress; an idle connection's
// timer is freed (the next write makes one again).
void output_flow::on_timer(const std::weak_ptr<flow_target>& weak) {
    armed_ = false;
    auto t = weak.lock();
    if (!t || stopped_) return;
    if (!writing_) {
        timer_.reset();   // safe in its own handler: the handler was moved out of the timer
        return;
    }
    const auto now = clock::now();
    const auto stuck = now - since_;
    const clock::duration stall = limits_->stall_timeout;
    if (stall.count() > 0 && stuck >= stall) {
        if (t->on_output_stalled(std::chrono::duration_cast<std::chrono::milliseconds>(stuck)))
            engine::output_flow::count_slow_consumer();
        return;
    }
    if (!paused_ && stuck >= stuck_after()) set_paused(*t, true);
    // Next: the pause (if still ahead) or the stall deadline; nothing when neither is.
    clock::duration next = clock::duration::max();
    if (!paused_) next = stuck_after() - stuck;
    if (stall.count() > 0) next = std::min(next, stall - stuck);
    if (next != clock::duration::max()) arm(std::max(next, clock::duration(std::chrono::milliseconds(1))), weak);
}

void output_flow::forget(core::consumer_id c) {
    if (held_.empty()) return;
    std::erase_if(*held_, [c](const auto& h) { return h.first == c; });
    held_.release_if_empty();
}

void output_flow::stop() {
    stopped_ = true;
    held_.clear();
    if (timer_) timer_->cancel();
}

}  // namespace sb::net
