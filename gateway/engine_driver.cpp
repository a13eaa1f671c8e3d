// gateway/engine_driver.cpp — readiness, scratch reads, gathered writes and a per-worker timer
// heap for engine connections.
#include "gateway/engine_driver.hpp"

#include <algorithm>
#include <vector>

#include <boost/asio/error.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace sb::gateway {

namespace asio = boost::asio;

namespace {

using engine::time_point;

constexpr std::size_t scratch_bytes = 64 * 1024;

// One per worker thread: connections of a worker never read concurrently, and the engine keeps
// only an unfinished frame's bytes.
std::span<std::byte> scratch() {
    thread_local std::vector<std::byte> s(scratch_bytes);
    return s;
}

// The deadlines of one worker's connections: a min-heap of (deadline, weak connection) under
// one steady_timer. An entry whose connection moved its deadline is left in place and ignored
// when it comes up (the driver knows which one it asked for); a later deadline is asked for
// only when the earlier one came up, so a deadline that keeps moving (receive timeouts move
// with every read) costs nothing per read.
class deadline_service final : public asio::execution_context::service {
public:
    using key_type = deadline_service;
    static inline asio::execution_context::id id;

    explicit deadline_service(asio::execution_context& ctx) : service(ctx) {}

    void schedule(const asio::any_io_executor& ex, time_point at, std::weak_ptr<engine::connection> c) {
        heap_.push_back(entry{at, std::move(c)});
        std::push_heap(heap_.begin(), heap_.end(), later);
        if (!timer_) timer_ = std::make_unique<asio::steady_timer>(ex);
        arm();
    }

private:
    struct entry {
        time_point at;
        std::weak_ptr<engine::connection> c;
    };
    static bool later(const entry& a, const entry& b) noexcept { return a.at > b.at; }

    void shutdown() override {
        heap_.clear();
        timer_.reset();   // before the timer service is destroyed; its wait is dropped
    }

    void arm() {
        if (heap_.empty() || heap_.front().at >= armed_) return;
        armed_ = heap_.front().at;
        timer_->expires_at(armed_);
        timer_->async_wait([this](const boost::system::error_code& ec) {
            if (!ec) fire();   // aborted: re-armed earlier, or shut down
        });
    }

    void fire();

    std::vector<entry> heap_, due_;
    std::unique_ptr<asio::steady_timer> timer_;
    time_point armed_ = engine::never;
};

class engine_driver final : public engine::driver_hooks, public net::stream_handler, public net::session {
public:
    engine_driver(engine::connection& c, std::unique_ptr<net::transport> t)
        : conn_(c), transport_(std::move(t)),
          deadlines_(asio::use_service<deadline_service>(
              asio::query(transport_->get_executor(), asio::execution::context))) {}

    // ---- engine::driver_hooks
    time_point now() override { return engine::clock::now(); }
    void wake() override { pump(); }
    std::string_view peer() const noexcept override { return transport_->peer(); }

    // ---- net::session
    void start() override {
        conn_.start();
        pump();
    }
    void stop() override {
        conn_.stop();
        pump();
    }

    // ---- net::stream_handler
    // Readable (or EOF/error): take what is there into the scratch buffer, feed the engine.
    void on_read(net::error_code ec, std::size_t) override {
        reading_ = false;
        if (closed_) return;
        if (!ec) {
            const auto into = scratch();
            const std::size_t n = transport_->read_available(into, ec);
            if (n) conn_.feed(std::span(reinterpret_cast<const std::uint8_t*>(into.data()), n));
            else if (ec == asio::error::would_block) ec = {};
        }
        if (ec) conn_.read_closed();
        pump();
    }

    void on_write(net::error_code ec, std::size_t n) override {
        writing_ = false;
        if (ec) conn_.write_failed();
        else conn_.write_done(n);
        pump();
    }

    // A heap entry came up: only the one asked for last counts.
    void on_deadline(time_point at, time_point now) {
        if (at != scheduled_ || closed_) return;
        scheduled_ = engine::never;
        conn_.tick(now);
        pump();
    }

private:
    // Everything the engine may want after a call: close, write, shut, read, a deadline.
    void pump() {
        if (closed_) return;
        if (conn_.closed()) {
            closed_ = true;
            transport_->close();
            return;
        }
        if (!writing_) {
            const auto out = conn_.begin_write();
            if (!out.empty()) {
                writing_ = true;
                transport_->async_write(std::as_bytes(out), handler());
            }
        }
        if (!writing_ && !shut_ && conn_.send_finished()) {
            shut_ = true;
            transport_->shutdown_send();
        }
        if (!reading_ && conn_.wants_read()) {
            reading_ = true;
            transport_->async_wait_readable(handler());
        }
        const auto next = conn_.next_deadline();
        if (next < scheduled_) {
            scheduled_ = next;
            deadlines_.schedule(transport_->get_executor(), next, conn_.weak_from_this());
        }
    }

    // Pending operations keep the connection (and so this driver) alive.
    std::shared_ptr<net::stream_handler> handler() { return {conn_.shared_from_this(), this}; }

    engine::connection& conn_;
    std::unique_ptr<net::transport> transport_;
    deadline_service& deadlines_;
    time_point scheduled_ = engine::never;   // the heap entry that counts
    bool reading_ = false, writing_ = false, shut_ = false, closed_ = false;
};

void deadline_service::fire() {
    armed_ = engine::never;
    const auto now = engine::clock::now();
    // Take the due entries out first: their connections schedule again while this runs.
    while (!heap_.empty() && heap_.front().at <= now) {
        std::pop_heap(heap_.begin(), heap_.end(), later);
        due_.push_back(std::move(heap_.back()));
        heap_.pop_back();
    }
    auto due = std::move(due_);
    for (auto& e : due)
        if (auto c = e.c.lock())
            if (auto* d = static_cast<engine_driver*>(c->driver())) d->on_deadline(e.at, now);
    due.clear();
    due_ = std::move(due);
    if (heap_.empty() && heap_.capacity() > 64) std::vector<entry>().swap(heap_);
    arm();
}

}  // namespace

std::shared_ptr<net::session> drive(std::shared_ptr<engine::connection> c, std::unique_ptr<net::transport> t) {
    auto d = std::make_unique<engine_driver>(*c, std::move(t));
    auto* session = d.get();
    c->attach(std::move(d));
    return std::shared_ptr<net::session>(std::move(c), session);
}

}  // namespace sb::gateway
