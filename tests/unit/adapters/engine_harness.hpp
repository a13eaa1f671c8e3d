// tests/unit/adapters/engine_harness.hpp — drives one engine::connection (any protocol) by hand:
// no threads, no sockets, no sleeps. A manual clock, a one-worker kernel on the manual
// executor and the memory store; the test feeds bytes, runs kernel completions, moves the
// clock, and reads what the connection wrote. Used by the session unit tests and the session
// fuzz targets.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "adapters/engine/connection.hpp"
#include "core/broker.hpp"
#include "core/security/auth_pool.hpp"
#include "core/security/authenticator.hpp"
#include "core/store/memory_store.hpp"
#include "tests/unit/core/manual_executor.hpp"

namespace sb::test {

// The driver side the engine sees: a clock the test moves, wake-ups counted.
struct manual_driver final : engine::driver_hooks {
    engine::time_point t{std::chrono::hours(1)};
    std::size_t wakes = 0;
    engine::time_point now() override { return t; }
    void wake() override { ++wakes; }
    std::string_view peer() const noexcept override { return "test:1"; }
};

// Accepts everyone but the user "intruder". A lookup (no hashing): the auth_pool answers at
// once, posting the answer to the worker, so sessions authenticate deterministically; with
// `hashing`, every request goes to the pool's queue (which the busy tests make full).
struct test_authenticator final : core::authenticator {
    std::optional<core::principal> authenticate(std::string_view user, std::string_view) const noexcept override {
        if (user == "intruder") return std::nullopt;
        return core::principal{std::string(user), user.empty()};
    }
    bool hashes(std::string_view) const noexcept override { return hashing; }
    bool hashing = false;
};

class engine_harness {
public:
    explicit engine_harness(core::broker_settings bs = {}, core::auth_pool_settings as = {1, 16})
        : broker_(std::move(bs), workers_.ptrs, store_), pool_(auth_, as) {}
    ~engine_harness() {
        // The connection's completions may still be queued: let them go before the kernel.
        if (conn) on_worker([&] { conn->stop(); });
        run_kernel();
        conn.reset();
    }

    core::broker& broker() noexcept { return broker_; }
    // The sessions' authentication: an auth_pool over test_authenticator.
    core::auth_pool& auth() noexcept { return pool_; }
    test_authenticator& authenticator() noexcept { return auth_; }
    manual_executor& worker() { return workers_[0]; }

    // Attaches the manual driver and starts `c` (made by a protocol's factory on this broker).
    void open(std::shared_ptr<engine::connection> c) {
        conn = std::move(c);
        auto d = std::make_unique<manual_driver>();
        driver = d.get();
        conn->attach(std::move(d));
        on_worker([&] { conn->start(); });
        pump();
    }

    // Bytes from the peer (one read), then everything that follows from them settles.
    void send(std::string_view bytes) {
        on_worker([&] {
            if (conn->wants_read() && !conn->closed())
                conn->feed(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
            else
                unread += bytes;   // the driver would not read now: the bytes wait in the socket
        });
        pump();
    }

    // The peer closed its side.
    void peer_close() {
        on_worker([&] { conn->read_closed(); });
        pump();
    }

    // Moves the clock and handles what is due.
    void advance(std::chrono::milliseconds by) {
        driver->t += by;
        if (conn->next_deadline() <= driver->t) on_worker([&] { conn->tick(driver->t); });
        pump();
    }

    // Runs kernel tasks (completions, deliveries) until quiet; bounded.
    std::size_t run_kernel() { return workers_.run(100000); }

    // Until quiet: kernel tasks, writes (completed at once unless `hold_writes`), the send
    // side's shutdown, and input that waited while reading was paused.
    void pump() {
        for (int round = 0; round < 1000; ++round) {
            bool progress = run_kernel() > 0;
            if (!conn) return;
            if (!hold_writes && !conn->writing()) {
                on_worker([&] {
                    const auto out = conn->begin_write();
                    if (out.empty()) return;
                    wire.append(reinterpret_cast<const char*>(out.data()), out.size());
                    writes++;
                    conn->write_done(out.size());
                    progress = true;
                });
            }
            if (conn->send_finished()) shut = true;
            if (!unread.empty() && conn->wants_read() && !conn->closed()) {
                std::string bytes;
                bytes.swap(unread);
                on_worker([&] { conn->feed(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size())); });
                progress = true;
            }
            if (!progress) return;
        }
        throw std::runtime_error("the connection did not go quiet");
    }

    // Bytes from the peer, decoded now; kernel completions stay queued until pump().
    void feed_only(std::string_view bytes) {
        on_worker([&] { conn->feed(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size())); });
    }

    // Takes the bytes the connection wrote so far.
    std::string take() {
        std::string s;
        s.swap(wire);
        return s;
    }

    // A write the test holds (hold_writes): started, not completed.
    std::size_t start_held_write() {
        std::size_t n = 0;
        on_worker([&] {
            const auto out = conn->begin_write();
            held.assign(reinterpret_cast<const char*>(out.data()), out.size());
            n = out.size();
        });
        return n;
    }
    void finish_held_write() {
        on_worker([&] {
            wire += held;
            conn->write_done(held.size());
            held.clear();
        });
        pump();
    }

    template <typename F>
    void on_worker(F&& f) {
        workers_[0].call(std::forward<F>(f));
    }

    std::shared_ptr<engine::connection> conn;
    manual_driver* driver = nullptr;
    std::string wire;      // written by the connection, not yet taken
    std::string unread;    // sent by the peer while the connection did not read
    std::string held;      // hold_writes: the write in flight
    std::size_t writes = 0;
    bool shut = false;     // the connection shut its send side
    bool hold_writes = false;

private:
    workers workers_{1};
    core::memory_store store_;
    core::broker broker_;
    test_authenticator auth_;
    core::auth_pool pool_;
};

}  // namespace sb::test
