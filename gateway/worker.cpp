// gateway/worker.cpp — io_context + thread + a batched inbox for cross-worker posts.
#include "gateway/worker.hpp"

#include <boost/asio/post.hpp>

namespace sb::gateway {

worker::worker(std::size_t index) : index_(index), guard_(ctx_.get_executor()) {}

worker::~worker() {
    stop();
    join();
}

void worker::post(core::task t) {
    bool wake = false;
    {
        std::lock_guard lock(mutex_);
        inbox_.push_back(std::move(t));
        wake = !scheduled_;
        scheduled_ = true;
    }
    // One Asio handler per batch, not per task: the cost of crossing threads is shared.
    if (wake) boost::asio::post(ctx_, [this] { drain(); });
}

void worker::drain() {
    {
        std::lock_guard lock(mutex_);
        running_.swap(inbox_);
        scheduled_ = false;
    }
    for (auto& t : running_) t();
    running_.clear();
}

void worker::start() {
    thread_ = std::thread([this] {
        set_current(this);
        ctx_.run();
        set_current(nullptr);
    });
}

void worker::stop() noexcept {
    guard_.reset();
    ctx_.stop();
}

void worker::join() {
    if (thread_.joinable()) thread_.join();
}

void worker::add_session(std::uint64_t id, std::weak_ptr<net::session> s) { sessions_[id] = std::move(s); }

void worker::remove_session(std::uint64_t id) { sessions_.erase(id); }

void worker::stop_sessions() {
    // Copy first: stop() may complete synchronously and remove entries.
    std::vector<std::shared_ptr<net::session>> live;
    for (auto& [id, w] : sessions_)
        if (auto s = w.lock()) live.push_back(std::move(s));
    for (auto& s : live) s->stop();
}

}  // namespace sb::gateway
