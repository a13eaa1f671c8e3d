// tests/unit/adapters/memory_transport.hpp — an in-memory net::transport and a one-worker
// kernel, so a protocol session can be tested without sockets: the test feeds bytes in and
// reads what the session wrote. The session runs on a real worker thread; the test waits for
// its output with a bounded deadline.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include "gateway/transport.hpp"
#include "core/broker.hpp"
#include "core/security/auth_pool.hpp"
#include "core/security/authenticator.hpp"
#include "core/store/memory_store.hpp"
#include "gateway/worker.hpp"

namespace sb::test {

// What both ends see: bytes towards the session, bytes it wrote, and how it ended.
struct pipe_state {
    std::mutex mutex;
    std::condition_variable changed;
    std::string to_session;
    std::string from_session;
    bool peer_closed = false;          // the test side closed (EOF for the session)
    bool session_shutdown = false;     // the session shut its sending side
    bool session_closed = false;
    std::shared_ptr<net::stream_handler> waiting;   // a session waiting for readability
};

class memory_transport final : public net::transport {
public:
    memory_transport(boost::asio::any_io_executor ex, std::shared_ptr<pipe_state> p)
        : ex_(std::move(ex)), pipe_(std::move(p)) {}

    void async_read_some(std::span<std::byte>, std::shared_ptr<net::stream_handler> h) override {
        async_wait_readable(std::move(h));   // the sessions use wait + read_available
    }
    void async_wait_readable(std::shared_ptr<net::stream_handler> h) override {
        std::lock_guard lock(pipe_->mutex);
        if (!pipe_->to_session.empty() || pipe_->peer_closed || pipe_->session_closed) {
            boost::asio::post(ex_, [h] { h->on_read({}, 0); });
            return;
        }
        pipe_->waiting = std::move(h);
    }
    std::size_t read_available(std::span<std::byte> into, net::error_code& ec) override {
        std::lock_guard lock(pipe_->mutex);
        if (pipe_->session_closed) {
            ec = boost::asio::error::operation_aborted;
            return 0;
        }
        if (pipe_->to_session.empty()) {
            ec = pipe_->peer_closed ? net::error_code(boost::asio::error::eof) : boost::asio::error::would_block;
            return 0;
        }
        const auto n = std::min(into.size(), pipe_->to_session.size());
        std::memcpy(into.data(), pipe_->to_session.data(), n);
        pipe_->to_session.erase(0, n);
        ec = {};
        return n;
    }
    void async_write(std::span<const std::byte> data, std::shared_ptr<net::stream_handler> h) override {
        {
            std::lock_guard lock(pipe_->mutex);
            pipe_->from_session.append(reinterpret_cast<const char*>(data.data()), data.size());
        }
        pipe_->changed.notify_all();
        boost::asio::post(ex_, [h, n = data.size()] { h->on_write({}, n); });
    }
    void shutdown_send() noexcept override {
        {
            std::lock_guard lock(pipe_->mutex);
            pipe_->session_shutdown = true;
        }
        pipe_->changed.notify_all();
    }
    void close() noexcept override {
        std::shared_ptr<net::stream_handler> w;
        {
            std::lock_guard lock(pipe_->mutex);
            pipe_->session_closed = true;
            w = std::move(pipe_->waiting);
        }
        pipe_->changed.notify_all();
        if (w) boost::asio::post(ex_, [w] { w->on_read(boost::asio::error::operation_aborted, 0); });
    }
    boost::asio::any_io_executor get_executor() override { return ex_; }
    const std::string& peer() const noexcept override { return peer_; }

private:
    boost::asio::any_io_executor ex_;
    std::shared_ptr<pipe_state> pipe_;
    std::string peer_ = "memory:1";
};

// A running worker with a kernel on it, and sessions on in-memory pipes.
class session_harness {
public:
    using factory = std::function<std::shared_ptr<net::session>(std::unique_ptr<net::transport>, core::broker&,
                                                                core::auth_pool&)>;

    session_harness()
        : worker_(0), broker_({}, std::vector<core::executor*>{&worker_}, store_),
          auth_(core::make_authenticator(true, "")), pool_(*auth_, {1, 16}) {
        worker_.start();
    }
    ~session_harness() {
        worker_.stop();
        worker_.join();
        // A session waiting for input is held by its pipe (a socket's pending operation would
        // be owned by Asio instead): let go, so the sessions end with the worker.
        for (auto& p : pipes_) p->waiting.reset();
    }

    // Creates and starts a session on the worker; returns the test's end of its pipe.
    std::shared_ptr<pipe_state> open(factory make) {
        auto p = std::make_shared<pipe_state>();
        pipes_.push_back(p);
        std::promise<void> started;
        boost::asio::post(worker_.context(), [&, p] {
            auto t = std::make_unique<memory_transport>(worker_.context().get_executor(), p);
            auto s = make(std::move(t), broker_, pool_);
            sessions_.push_back(s);
            s->start();
            started.set_value();
        });
        started.get_future().wait();
        return p;
    }

    // Bytes towards the session (wakes it if it waits).
    void send(const std::shared_ptr<pipe_state>& p, std::string_view bytes) {
        std::shared_ptr<net::stream_handler> w;
        {
            std::lock_guard lock(p->mutex);
            p->to_session.append(bytes);
            w = std::move(p->waiting);
        }
        if (w) boost::asio::post(worker_.context(), [w] { w->on_read({}, 0); });
    }

    // Waits (bounded) until `done(output so far)` holds; returns the output.
    static std::string wait_for(const std::shared_ptr<pipe_state>& p, const std::function<bool(const std::string&)>& done,
                                std::chrono::milliseconds limit = std::chrono::seconds(5)) {
        std::unique_lock lock(p->mutex);
        p->changed.wait_for(lock, limit, [&] { return done(p->from_session); });
        return p->from_session;
    }

    static bool wait_shutdown(const std::shared_ptr<pipe_state>& p, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
        std::unique_lock lock(p->mutex);
        return p->changed.wait_for(lock, limit, [&] { return p->session_shutdown || p->session_closed; });
    }

private:
    gateway::worker worker_;
    core::memory_store store_;
    core::broker broker_;
    std::unique_ptr<core::authenticator> auth_;
    core::auth_pool pool_;   // stopped before the worker's context goes (after its thread)
    std::vector<std::shared_ptr<net::session>> sessions_;   // touched on the worker only
    std::vector<std::shared_ptr<pipe_state>> pipes_;
};

}  // namespace sb::test
