// gateway/worker.hpp — one event loop on one thread: the unit of the share-nothing model.
// Connections are pinned to a worker for life; the kernel shard of the same index runs here.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "gateway/transport.hpp"
#include "core/executor.hpp"

namespace sb::gateway {

class worker final : public core::executor {
public:
    explicit worker(std::size_t index);
    ~worker() override;

    // core::executor: thread-safe; tasks posted between two wake-ups run as one batch.
    void post(core::task t) override;
    std::size_t index() const noexcept override { return index_; }

    boost::asio::io_context& context() noexcept { return ctx_; }

    void start();             // spawns the thread (named "sb-worker-<index>", as top -H shows it)
    void stop() noexcept;     // the loop returns once current handlers finish
    void join();

    // Live sessions of this worker; called on the worker's thread only.
    void add_session(std::uint64_t id, std::weak_ptr<net::session> s);
    void remove_session(std::uint64_t id);
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
    // Declared before the io_context so that they outlive it: handlers destroyed with the
    // context may release the last reference to a session, which then unregisters itself.
    std::unordered_map<std::uint64_t, std::weak_ptr<net::session>> sessions_;
    std::mutex mutex_;
    std::vector<core::task> inbox_;
    std::vector<core::task> running_;
    bool scheduled_ = false;

    boost::asio::io_context ctx_{1};
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
    boost::asio::steady_timer watchdog_{ctx_};
    std::chrono::milliseconds tick_{0};   // 0: no watchdog
    std::atomic<std::chrono::steady_clock::rep> last_beat_{0};
    std::thread thread_;
};

}  // namespace sb::gateway
