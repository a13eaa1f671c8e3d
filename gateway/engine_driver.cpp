// gateway/engine_driver.cpp — readiness, scratch reads, gathered writes and a per-worker timer
// heap for engine connections.
#include "gateway/engine_driver.hpp"

#include <algorithm>
#include <cstdint>
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

class engine_driver;

// The drivers woken inside the current wake_batch scopes of this thread, kept alive until
// they looked.
struct wake_state {
    unsigned depth = 0;
    std::vector<std::pair<std::shared_ptr<engine::connection>, engine_driver*>> woken;
};

wake_state& wakes() noexcept {
    thread_local wake_state w;
    return w;
}

// The deadlines of one worker's connections: a min-heap of their drivers under one
// steady_timer. Each driver is in it at most once and knows its place (slot), so a deadline
// moved earlier is moved in place and a connection that wants none (an idle STOMP connection
// after CONNECT) leaves the heap at once instead of leaving a stale entry behind. A later
// deadline is not moved: the driver asks for it when the earlier one came up, so a deadline
// that keeps moving (receive timeouts move with every read) costs nothing per read.
class deadline_service final : public asio::execution_context::service {
public:
    using key_type = deadline_service;
    static inline asio::execution_context::id id;
    static constexpr std::uint32_t npos = static_cast<std::uint32_t>(-1);

    explicit deadline_service(asio::execution_context& ctx) : service(ctx) {}

    // Enters `d` at d.scheduled_, or moves it there (earlier than where it was).
    void schedule(const asio::any_io_executor& ex, engine_driver& d);
    // Takes `d` out (it no longer wants a deadline, or it is destroyed).
    void remove(engine_driver& d) noexcept;

private:
    void shutdown() override;
    void arm();
    void fire();
    void place(std::size_t i, engine_driver* d) noexcept;
    void sift_up(std::size_t i) noexcept;
    void sift_down(std::size_t i) noexcept;

    std::vector<engine_driver*> heap_;
    std::vector<std::pair<std::weak_ptr<engine::connection>, time_point>> due_;
    std::unique_ptr<asio::steady_timer> timer_;
    time_point armed_ = engine::never;
    bool shut_ = false;
};

class engine_driver final : public engine::driver_hooks, public net::stream_handler, public net::session {
public:
    engine_driver(engine::connection& c, std::unique_ptr<net::transport> t)
        : conn_(c), transport_(std::move(t)) {}
    ~engine_driver() override {
        if (slot_ != deadline_service::npos) deadlines().remove(*this);
    }

    // ---- engine::driver_hooks
    time_point now() override { return engine::clock::now(); }
    void wake() override {
        if (woken_) return;   // already listed for this batch
        auto& w = wakes();
        if (w.depth == 0) return pump();
        woken_ = true;
        w.woken.emplace_back(conn_.shared_from_this(), this);
    }
    // The end of the wake_batch that listed it.
    void woken() {
        woken_ = false;
        pump();
    }
    std::string_view peer() const noexcept override { return transport_->peer(); }
    std::string_view peer_identity() const noexcept override { return transport_->peer_identity(); }

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
        wake_batch batch;
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
        wake_batch batch;
        writing_ = false;
        if (ec) conn_.write_failed();
        else conn_.write_done(n);
        pump();
    }

    // A heap entry came up: only the one asked for last counts.
    void on_deadline(time_point at, time_point now) {
        if (at != scheduled_ || slot_ != deadline_service::npos || closed_) return;
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
            const auto ex = transport_->get_executor();
            asio::use_service<deadline_service>(asio::query(ex, asio::execution::context)).schedule(ex, *this);
        } else if (next == engine::never && slot_ != deadline_service::npos) {
            scheduled_ = engine::never;   // no stale entry for a connection without deadline
            deadlines().remove(*this);
        }
    }

    // Looked up, not kept: only when a deadline moves earlier or leaves (not per read or write).
    deadline_service& deadlines() {
        return asio::use_service<deadline_service>(asio::query(transport_->get_executor(), asio::execution::context));
    }

    // Pending operations keep the connection (and so this driver) alive.
    std::shared_ptr<net::stream_handler> handler() { return {conn_.shared_from_this(), this}; }

    engine::connection& conn_;
    std::unique_ptr<net::transport> transport_;
    friend class deadline_service;
    time_point scheduled_ = engine::never;      // the deadline asked for (heap key)
    // Its place in the heap; npos: not in it. With the flags, one word: an idle connection's
    // driver is 56 bytes (a 64-byte malloc chunk).
    std::uint32_t slot_ = deadline_service::npos;
    bool reading_ : 1 = false, writing_ : 1 = false, shut_ : 1 = false, closed_ : 1 = false;
    bool woken_ : 1 = false;   // listed by the current wake_batch
};

// Every idle connection has one (see the member comment); a larger one costs a malloc size class.
static_assert(sizeof(void*) != 8 || sizeof(engine_driver) <= 56);

void deadline_service::schedule(const asio::any_io_executor& ex, engine_driver& d) {
    if (shut_) return;
    if (d.slot_ == npos) {
        d.slot_ = static_cast<std::uint32_t>(heap_.size());
        heap_.push_back(&d);
    }
    sift_up(d.slot_);
    if (!timer_) timer_ = std::make_unique<asio::steady_timer>(ex);
    arm();
}

void deadline_service::remove(engine_driver& d) noexcept {
    const std::uint32_t i = d.slot_;
    d.slot_ = npos;
    if (i == npos || i >= heap_.size()) return;
    engine_driver* last = heap_.back();
    heap_.pop_back();
    if (i == heap_.size()) return;
    place(i, last);
    sift_down(i);
    sift_up(last->slot_);
    // The timer stays armed for an earlier time than needed at worst: fire() finds nothing due.
}

void deadline_service::place(std::size_t i, engine_driver* d) noexcept {
    heap_[i] = d;
    d->slot_ = static_cast<std::uint32_t>(i);
}

void deadline_service::sift_up(std::size_t i) noexcept {
    engine_driver* d = heap_[i];
    while (i > 0) {
        const std::size_t parent = (i - 1) / 2;
        if (!(d->scheduled_ < heap_[parent]->scheduled_)) break;
        place(i, heap_[parent]);
        i = parent;
    }
    place(i, d);
}

void deadline_service::sift_down(std::size_t i) noexcept {
    engine_driver* d = heap_[i];
    const std::size_t n = heap_.size();
    for (;;) {
        std::size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && heap_[child + 1]->scheduled_ < heap_[child]->scheduled_) ++child;
        if (!(heap_[child]->scheduled_ < d->scheduled_)) break;
        place(i, heap_[child]);
        i = child;
    }
    place(i, d);
}

void deadline_service::shutdown() {
    shut_ = true;
    for (auto* d : heap_) d->slot_ = npos;   // drivers destroyed later do not look here
    heap_.clear();
    due_.clear();
    timer_.reset();   // before the timer service is destroyed; its wait is dropped
}

void deadline_service::arm() {
    if (heap_.empty() || heap_.front()->scheduled_ >= armed_) return;
    armed_ = heap_.front()->scheduled_;
    timer_->expires_at(armed_);
    timer_->async_wait([this](const boost::system::error_code& ec) {
        if (!ec) fire();   // aborted: re-armed earlier, or shut down
    });
}

void deadline_service::fire() {
    armed_ = engine::never;
    const auto now = engine::clock::now();
    // Take the due drivers out first: their connections schedule again while this runs, and
    // one connection's tick may end another's life (hence weak references until the call).
    while (!heap_.empty() && heap_.front()->scheduled_ <= now) {
        engine_driver* d = heap_.front();
        due_.emplace_back(d->conn_.weak_from_this(), d->scheduled_);
        remove(*d);
    }
    auto due = std::move(due_);
    wake_batch batch;
    for (auto& [w, at] : due)
        if (auto c = w.lock())
            if (auto* d = static_cast<engine_driver*>(c->driver())) d->on_deadline(at, now);
    due.clear();
    due_ = std::move(due);
    if (heap_.empty() && heap_.capacity() > 64) std::vector<engine_driver*>().swap(heap_);
    arm();
}

}  // namespace

wake_batch::wake_batch() noexcept { ++wakes().depth; }

wake_batch::~wake_batch() {
    auto& w = wakes();
    if (w.depth == 1) {
        // Still inside the scope while the drivers look: what they do wakes nobody at once, and
        // a driver woken meanwhile is appended and looks in this loop too.
        for (std::size_t i = 0; i < w.woken.size(); ++i) {
            auto [keep, d] = std::move(w.woken[i]);
            d->woken();
        }
        w.woken.clear();
    }
    --w.depth;
}

std::shared_ptr<net::session> drive(std::shared_ptr<engine::connection> c, std::unique_ptr<net::transport> t) {
    auto d = std::make_unique<engine_driver>(*c, std::move(t));
    auto* session = d.get();
    c->attach(std::move(d));
    return std::shared_ptr<net::session>(std::move(c), session);
}

}  // namespace sb::gateway
