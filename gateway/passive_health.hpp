// gateway/passive_health.hpp — health seen by the relays themselves, HAProxy's `observe layer4`
// with `on-error mark-down`: a server whose connect is refused or reset is marked down at once,
// one whose relays end in a reset `error_limit` times within `error_window` too, without waiting
// for `fall` failed checks. The active checks bring it back after `rise` passed checks, counted
// from the mark-down (a check that started before it says nothing about the server now).
//
// What the relays report and the checker reads lives in server_state::passive; mark_down() is
// the one way a server goes down (the checker's `fall` uses it too), so that a relay and the
// checker taking the same server down at once count one transition.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string_view>

namespace sb::gateway {

class backend;
struct server_state;

// The times of a server's recent errors (relays ending in a reset, connects that timed out):
// `limit` of them within `window` is the signal. Any thread.
class error_window {
public:
    using clock = std::chrono::steady_clock;

    // Records an error at `now`. True when it makes `limit` errors within `window` (ending at
    // `now`): the caller marks the server down; the window starts again empty. limit 0: never.
    bool add(clock::time_point now, std::uint32_t limit, std::chrono::milliseconds window);
    void clear();
    // Errors now within `window` of `now` (for tests and logs).
    std::size_t count(clock::time_point now, std::chrono::milliseconds window);

private:
    std::mutex mutex_;
    std::deque<clock::time_point> times_;   // at most `limit` (the oldest dropped first)
};

// A server's passive-health state and counters (atomics: read by the admin endpoint).
struct passive_state {
    error_window errors;
    std::atomic<std::uint64_t> errors_seen{0};     // resets and timeouts the relays reported
    std::atomic<std::uint64_t> marked_down{0};     // mark-downs by the relays (not by checks)
    std::atomic<std::uint64_t> redispatched{0};    // connections moved on after a failed connect here
    // When the server was last taken down (steady clock, ns since its epoch; 0: never): the
    // checker restarts its `rise` count from here and ignores checks that began before.
    std::atomic<std::int64_t> down_at_ns{0};
};

// How a relay's connect to a server ended, as passive health sees it.
enum class connect_outcome {
    refused,   // ECONNREFUSED, or reset during the handshake: nothing listens, marked down at once
    timeout,   // no answer within connect_timeout: one error in the window
    other,     // anything else (unreachable, out of descriptors here): not the server's health
};
connect_outcome classify_connect_error(int err) noexcept;

// Takes `s` down now if it is up (any thread): up = false, one transition counted, its relays
// closed, down_at_ns stamped, a warning logged naming `cause`. `passive`: taken down by the
// relays (counted in passive.marked_down). True when this call took it down.
bool mark_down(backend& b, server_state& s, std::string_view cause, bool passive);

// What a relay on `b` saw of server `s` (each a no-op unless the backend observes layer4):
// a failed connect (`err`: errno of the failure, ETIMEDOUT for connect_timeout) ...
void report_connect_failure(backend& b, server_state& s, int err);
// ... and a relay that ended in a reset from the server.
void report_relay_reset(backend& b, server_state& s);

}  // namespace sb::gateway
