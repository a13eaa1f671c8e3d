// gateway/passive_health.cpp — the error window and the mark-down shared by relays and checks.
#include "gateway/passive_health.hpp"

#include <cerrno>
#include <string>

#include "gateway/backend.hpp"
#include "gateway/log.hpp"

namespace sb::gateway {

bool error_window::add(clock::time_point now, std::uint32_t limit, std::chrono::milliseconds window) {
    if (limit == 0) return false;
    std::lock_guard lock(mutex_);
    while (!times_.empty() && now - times_.front() >= window) times_.pop_front();
    times_.push_back(now);
    while (times_.size() > limit) times_.pop_front();
    if (times_.size() < limit) return false;
    times_.clear();
    return true;
}

void error_window::clear() {
    std::lock_guard lock(mutex_);
    times_.clear();
}

std::size_t error_window::count(clock::time_point now, std::chrono::milliseconds window) {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto t : times_) n += now - t < window;
    return n;
}

connect_outcome classify_connect_error(int err) noexcept {
    switch (err) {
    case ECONNREFUSED:
    case ECONNRESET:
        return connect_outcome::refused;
    case ETIMEDOUT:
        return connect_outcome::timeout;
    default:
        return connect_outcome::other;
    }
}

bool mark_down(backend& b, server_state& s, std::string_view cause, bool passive) {
    bool was_up = true;
    if (!s.up.compare_exchange_strong(was_up, false)) return false;
    ++s.transitions;
    s.passive.down_at_ns = std::chrono::steady_clock::now().time_since_epoch().count();
    s.passive.errors.clear();
    if (passive) ++s.passive.marked_down;
    const std::size_t closed = s.close_bound();
    log()->warn("backend={} server={} is DOWN: {}; closing {} relayed connections", b.config().name, s.cfg.name, cause,
                closed);
    return true;
}

void report_connect_failure(backend& b, server_state& s, int err) {
    if (!b.config().observe_layer4) return;
    switch (classify_connect_error(err)) {
    case connect_outcome::refused:
        ++s.passive.errors_seen;
        mark_down(b, s, std::string("observe=layer4: connect ") + (err == ECONNRESET ? "reset" : "refused"), true);
        return;
    case connect_outcome::timeout:
        ++s.passive.errors_seen;
        if (s.passive.errors.add(std::chrono::steady_clock::now(), b.config().error_limit,
                                 std::chrono::milliseconds(b.config().error_window_ms)))
            mark_down(b, s, "observe=layer4: " + std::to_string(b.config().error_limit) + " errors within " +
                                std::to_string(b.config().error_window_ms) + " ms (the last a connect timeout)",
                      true);
        return;
    case connect_outcome::other:
        return;
    }
}

void report_relay_reset(backend& b, server_state& s) {
    if (!b.config().observe_layer4) return;
    ++s.passive.errors_seen;
    if (s.passive.errors.add(std::chrono::steady_clock::now(), b.config().error_limit,
                             std::chrono::milliseconds(b.config().error_window_ms)))
        mark_down(b, s, "observe=layer4: " + std::to_string(b.config().error_limit) + " relays reset by the server within " +
                            std::to_string(b.config().error_window_ms) + " ms",
                  true);
}

}  // namespace sb::gateway
