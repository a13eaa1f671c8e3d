// gateway/backend.hpp — a backend: the servers a listener relays connections to, their health
// (checked by health_checker), and the choice of a server for each new connection.
//
// Shared by every worker: server counters are atomics, the relays bound to a server sit in a
// mutex-guarded table so that a server going down can close them on their own workers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "gateway/config.hpp"
#include "gateway/passive_health.hpp"

namespace sb::gateway {

// A relayed connection as its server sees it: told to close when the server goes down, or
// when a server that outranks it comes up (on_server_up: close_backups).
class bound_connection {
public:
    // Any thread; the connection closes on its own worker. `why` is a string literal.
    virtual void close_from_server(const char* why) noexcept = 0;

protected:
    ~bound_connection() = default;
};

// A connection waiting in a backend's queue for a slot (every usable server at its
// max_connections; backend queue_timeout).
class slot_waiter {
public:
    // Any thread, at most once per wait: a slot may be free now (pick again; if the slot went
    // to someone else, wait again). A waiter that gave up meanwhile passes it on (wake_one).
    virtual void slot_free() noexcept = 0;

protected:
    ~slot_waiter() = default;
};

// What the operator set on the admin endpoint (HAProxy's `set server state`): ready takes new
// connections; drain takes none, its relays go on; maint takes none and its relays are closed.
// Checks run in every state; a server is used only when it is both up and ready.
enum class admin_state : std::uint8_t { ready, drain, maint };
std::string_view admin_state_name(admin_state s);
std::optional<admin_state> admin_state_named(std::string_view name);

// The outcome of a server's last health check, HAProxy's names: layer 4 (the connect), layer 6
// (the TLS handshake of check.tls), layer 7 (the protocol's handshake).
enum class check_status : std::uint8_t {
    unknown,   // not checked yet (HAProxy's INI), or check type none
    l4ok,      // connected (check type tcp)
    l4con,     // connect refused or failed
    l4tout,    // connect timed out
    l6ok,      // TLS handshake done (check type tcp with tls)
    l6tout,    // TLS handshake timed out
    l6rsp,     // TLS handshake failed (bad certificate, not TLS)
    l7ok,      // the protocol's handshake passed
    l7rsp,     // the reply was wrong or the server closed
    l7tout,    // no (complete) reply in time
    l7sts,     // an HTTP reply with another status
};
std::string_view check_status_name(check_status s);

struct server_state {
    explicit server_state(server_config c) : cfg(std::move(c)), weight(cfg.weight) {}

    server_config cfg;
    std::vector<boost::asio::ip::tcp::endpoint> endpoints;   // resolved at start

    std::atomic<bool> up{true};                  // servers start up; the first check runs at once
    std::atomic<std::size_t> active{0};          // relayed connections now
    std::atomic<std::uint64_t> total{0};         // relayed connections ever
    std::atomic<std::uint64_t> connect_failures{0};
    std::atomic<std::uint64_t> checks_ok{0};
    std::atomic<std::uint64_t> checks_failed{0};
    std::atomic<std::uint64_t> transitions{0};   // up <-> down changes
    std::atomic<std::uint32_t> check_latency_us{0};   // of the last successful check
    passive_state passive;                       // what the relays saw (observe: layer4)

    std::atomic<admin_state> admin{admin_state::ready};
    std::atomic<std::uint32_t> weight;           // cfg.weight until the admin changes it
    // Slow start: when the server last came back (up after checks, or ready again), in
    // steady_clock ticks; 0: not ramping.
    std::atomic<std::int64_t> ramp_start{0};
    class backend* owner = nullptr;              // the backend whose queue a freed slot wakes

    // The last check's outcome, for /status, /metrics and GET /backends (written by the checker).
    void set_check_result(check_status st, std::uint32_t duration_us, std::string detail);
    struct check_result {
        check_status status = check_status::unknown;
        std::uint32_t duration_us = 0;
        std::string detail;
    };
    check_result last_check() const;

    // Up, and ready to take new connections.
    bool usable() const noexcept { return up.load() && admin.load() == admin_state::ready; }

    // Health-check streaks: the checker's own (one strand).
    std::uint32_t ok_streak = 0;
    std::uint32_t fail_streak = 0;

    void bind(std::uint64_t id, std::weak_ptr<bound_connection> c);
    void unbind(std::uint64_t id);
    // Tells every bound connection to close (`why`: a string literal); returns how many.
    std::size_t close_bound(const char* why = "server down");
    // A reload replaced the backend: the connections bound to `from` (this same server in the
    // old backend) are told to close from here on (server down, a higher-priority server up).
    // Their own unbind still goes to `from`; the entries here expire with them.
    void take_bound(server_state& from);

private:
    std::mutex mutex_;
    std::unordered_map<std::uint64_t, std::weak_ptr<bound_connection>> bound_;
    mutable std::mutex check_mutex_;
    check_result check_;
};

class backend {
public:
    using clock = std::chrono::steady_clock;

    // Resolves every server's address (host names once, at start). Throws std::runtime_error
    // naming the server when one cannot be resolved.
    explicit backend(backend_config cfg);

    const backend_config& config() const noexcept { return cfg_; }
    std::span<const std::unique_ptr<server_state>> servers() const noexcept { return servers_; }

    // A server for a new connection, with a slot reserved (active + 1), or null when none is
    // usable. `tried` are servers already attempted for this connection (connect failed).
    //   first:      the first up server in declared order with a free slot
    //   roundrobin: the next up server in a weighted rotation
    //   leastconn:  the up server with the fewest active connections per weight
    // Backup servers are candidates only while no other server is up (with redispatch: no
    // other server is up and untried).
    server_state* pick(std::span<server_state* const> tried);
    // Gives the slot back (the connection ended or its connect failed), and wakes the first
    // connection waiting in its backend's queue.
    static void release(server_state& s) noexcept;

    // The weight a balance uses now, in thousandths: weight x 1000, ramped linearly over the
    // server's slow_start after it came back (at least 1).
    std::uint64_t effective_weight(const server_state& s, clock::time_point now) const noexcept;
    // The operator's runtime control. set_state to maint closes the server's relays (returns
    // how many); leaving maint or drain for ready starts the slow start. Thread-safe.
    std::size_t set_state(server_state& s, admin_state st);
    void set_weight(server_state& s, std::uint32_t w);
    // The checker saw `s` come up: starts its slow start, wakes the queue.
    void came_up(server_state& s);
    // Tests run the slow start on a manual clock.
    void set_clock(std::function<clock::time_point()> c) { clock_ = std::move(c); }
    clock::time_point now() const { return clock_ ? clock_() : clock::now(); }

    // The queue (queue_timeout > 0). A new connection queues when no server could take it but
    // one is usable (all at max_connections), or when others already wait (they go first).
    // enqueue returns false when max_queue are waiting (refused). `front`: a woken waiter
    // that lost its slot goes back to the head. dequeue: gave up (timeout, closed).
    bool should_queue() const;
    bool enqueue(std::uint64_t id, std::weak_ptr<slot_waiter> w, bool front = false);
    void dequeue(std::uint64_t id);
    void wake_one();
    std::size_t queued() const;
    std::atomic<std::uint64_t> queued_total{0};      // connections that waited
    std::atomic<std::uint64_t> queue_timeouts{0};    // ... and were closed after queue_timeout
    std::atomic<std::uint64_t> queue_full{0};        // refused because max_queue were waiting

    // `s` (one of this backend's servers) just came up. With on_server_up: close_backups and a
    // non-backup `s`, closes the relays on the servers it outranks: every backup server, and
    // with balance first the servers declared after it. Returns the number closed (0 without
    // the option).
    std::size_t close_outranked_by(const server_state& s);

    // Connections refused because no server could take them.
    std::atomic<std::uint64_t> refused{0};

private:
    server_state* pick_from(bool backups, std::span<server_state* const> tried);
    static bool try_reserve(server_state& s) noexcept;

    backend_config cfg_;
    std::vector<std::unique_ptr<server_state>> servers_;
    // roundrobin: smooth weighted rotation (weights 2 and 1 give a b a a b a); each server's
    // running score, under rr_mutex_ (weights change at runtime and during a slow start).
    std::mutex rr_mutex_;
    std::vector<std::int64_t> rr_score_;
    std::atomic<std::uint64_t> next_{0};
    std::function<clock::time_point()> clock_;
    mutable std::mutex queue_mutex_;
    std::deque<std::pair<std::uint64_t, std::weak_ptr<slot_waiter>>> queue_;
};

}  // namespace sb::gateway
