// gateway/worker.cpp — io_context + thread + a lock-free batched inbox for cross-worker posts.
#include "gateway/worker.hpp"

#include <algorithm>
#include <string>

#include <boost/asio/post.hpp>
#include <pthread.h>

#include "gateway/engine_driver.hpp"
#include "gateway/fd_reactor.hpp"

namespace sb::gateway {

worker::worker(std::size_t index) : index_(index), guard_(ctx_.get_executor()) {
    sessions_.prev_ = sessions_.next_ = &sessions_;
    // The epoll set of the worker's TCP connections, made now rather than with the first
    // connection: the process's descriptors are all open once the workers are up.
    fd_reactor::of(ctx_);
}

worker::~worker() {
    stop();
    join();
}

void worker::post(core::task t) {
    // One Asio handler per batch, not per task: the cost of crossing threads is shared. A post
    // that finds tasks waiting adds to the batch whose drain() is already on its way.
    if (inbox_.push(std::move(t))) boost::asio::post(ctx_, [this] { drain(); });
}

void worker::drain() {
    wake_batch batch;   // a connection woken by many of the tasks writes once, after them
    inbox_.run_all();
}

void worker::start() {
    thread_ = std::thread([this] {
        set_current(this);
        ctx_.run();
        set_current(nullptr);
    });
    const std::string name = "sb-worker-" + std::to_string(index_);
    ::pthread_setname_np(thread_.native_handle(), name.substr(0, 15).c_str());
}

void worker::start_watchdog(std::chrono::milliseconds tick) {
    tick_ = tick;
    last_beat_ = std::chrono::steady_clock::now().time_since_epoch().count();
    boost::asio::post(ctx_, [this] { watchdog_tick(); });
}

void worker::watchdog_tick() {
    last_beat_.store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    watchdog_.expires_after(tick_);
    watchdog_.async_wait([this](boost::system::error_code ec) {
        if (!ec) watchdog_tick();
    });
}

std::chrono::milliseconds worker::stalled_for(std::chrono::steady_clock::time_point now) const noexcept {
    if (tick_.count() == 0) return std::chrono::milliseconds(0);
    const std::chrono::steady_clock::time_point last{
        std::chrono::steady_clock::duration(last_beat_.load(std::memory_order_relaxed))};
    const auto late = std::chrono::duration_cast<std::chrono::milliseconds>(now - last) - tick_;
    return std::max(late, std::chrono::milliseconds(0));
}

void worker::stop() noexcept {
    guard_.reset();
    ctx_.stop();
}

void worker::join() {
    if (thread_.joinable()) thread_.join();
}

void worker::add_session(session_link& l, std::weak_ptr<net::session> s) {
    l.session_ = std::move(s);
    if (l.prev_) return;
    l.prev_ = sessions_.prev_;
    l.next_ = &sessions_;
    sessions_.prev_->next_ = &l;
    sessions_.prev_ = &l;
}

void worker::stop_sessions() {
    // Copy first: stop() may complete synchronously and remove entries.
    std::vector<std::shared_ptr<net::session>> live;
    for (auto* l = sessions_.next_; l != &sessions_; l = l->next_)
        if (auto s = l->session_.lock()) live.push_back(std::move(s));
    for (auto& s : live) s->stop();
}

}  // namespace sb::gateway
