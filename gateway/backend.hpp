// gateway/backend.hpp — a backend: the servers a listener relays connections to, their health
// (checked by health_checker), and the choice of a server for each new connection.
//
// Shared by every worker: server counters are atomics, the relays bound to a server sit in a
// mutex-guarded table so that a server going down can close them on their own workers.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
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

struct server_state {
    explicit server_state(server_config c) : cfg(std::move(c)) {}

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
};

class backend {
public:
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
    // Gives the slot back (the connection ended or its connect failed).
    static void release(server_state& s) noexcept;

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
    std::vector<std::size_t> rotation_;          // roundrobin: server indexes, weight times each, interleaved
    std::atomic<std::uint64_t> next_{0};
};

}  // namespace sb::gateway
