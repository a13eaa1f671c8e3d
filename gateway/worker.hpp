// gateway/worker.hpp — one event loop on one thread: the unit of the share-nothing model.
// Connections are pinned to a worker for life; the kernel shard of the same index runs here.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "gateway/transport.hpp"
#include "core/executor.hpp"
#include "gateway/task_queue.hpp"

namespace sb::gateway {

// A live connection as its worker lists it, embedded in the connection (its bottom transport):
// no allocation per connection, and leaving the list is the link's destruction. Linked and
// unlinked on the worker's thread.
class session_link {
public:
    session_link() = default;
    session_link(const session_link&) = delete;
    session_link& operator=(const session_link&) = delete;
    ~session_link() { unlink(); }

    void unlink() noexcept {
        if (!prev_) return;
        prev_->next_ = next_;
        next_->prev_ = prev_;
        prev_ = next_ = nullptr;
    }

private:
    friend class worker;
    session_link* prev_ = nullptr;
    session_link* next_ = nullptr;
    std::weak_ptr<net::session> session_;
};

class worker final : public core::executor {
public:
    explicit worker(std::size_t index);
    ~worker() override;

    // core::executor: thread-safe and lock-free; tasks posted between two wake-ups run as one
    // batch, and only a post that finds the inbox empty (the loop may be idle) wakes the loop.
    void post(core::task t) override;
    std::size_t index() const noexcept override { return index_; }

    boost::asio::io_context& context() noexcept { return ctx_; }

    void start();             // spawns the thread (named "sb-worker-<index>", as top -H shows it)
    void stop() noexcept;     // the loop returns once current handlers finish
    void join();

    // Live sessions of this worker; called on the worker's thread only. `l` (in the
    // connection) is listed until it is destroyed; adding it again replaces its session (the
    // front hands a connection to the session its protocol needs).
    void add_session(session_link& l, std::weak_ptr<net::session> s);
    void stop_sessions();     // graceful stop of every session (shutdown)

    // The watchdog: once started, the loop stamps the time every `tick`; a loop held up by a
    // handler that does not return stops stamping. stalled_for() is how long ago the last
    // stamp was, less one tick (0 while the loop turns); any thread, never blocks.
    void start_watchdog(std::chrono::milliseconds tick);
    std::chrono::milliseconds stalled_for(std::chrono::steady_clock::time_point now) const noexcept;

private:
    void drain();
    void watchdog_tick();

    const std::size_t index_;
    // Declared before the io_context so that it outlives it: handlers destroyed with the
    // context may release the last reference to a session, which then unlinks itself. The
    // head of a circular list.
    session_link sessions_;
    task_queue inbox_;

    boost::asio::io_context ctx_{1};
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
    boost::asio::steady_timer watchdog_{ctx_};
    std::chrono::milliseconds tick_{0};   // 0: no watchdog
    std::atomic<std::chrono::steady_clock::rep> last_beat_{0};
    std::thread thread_;
};

}  // namespace sb::gateway
