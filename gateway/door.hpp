// gateway/door.hpp — protection at a listener's door: how many connections one source address
// may hold open, and how many new ones per second it (and the listener as a whole) may open.
// HAProxy does this with stick tables (`src_conn_cur`, `src_conn_rate`) and `rate-limit
// sessions`; here they are listener settings: max_connections_per_source, max_rate_per_source,
// max_rate.
//
// Rates are token buckets holding one second's worth: a source may open `rate` connections in a
// burst, then one every 1/rate s. No sockets here: the listener asks admit() at accept (one
// thread), and a connection that was admitted gives its source slot back with release() when it
// ends (any thread). Time is passed in, so the unit tests run on a manual clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace sb::gateway {

class door_limits {
public:
    using clock = std::chrono::steady_clock;
    enum class verdict { admitted, max_connections_per_source, max_rate_per_source, max_rate };

    // 0: that limit is off.
    door_limits(std::size_t max_connections_per_source, std::uint32_t max_rate_per_source, std::uint32_t max_rate);

    // Whether a connection from `source` (an address's text) may come in now. Admitted, it
    // counts against its source until release(source) (only with max_connections_per_source).
    verdict admit(const std::string& source, clock::time_point now);
    void release(const std::string& source);

    // Whether connections hold a slot that release() must give back.
    bool counts_open() const noexcept { return max_open_ != 0; }
    // Sources tracked now (open connections, or a bucket not yet full again).
    std::size_t tracked() const;

private:
    struct bucket {
        double tokens = 0;
        clock::time_point at{};
        // Refills at `rate` per second up to `rate`; takes one if there is one.
        bool take(std::uint32_t rate, clock::time_point now);
    };
    struct source_entry {
        std::size_t open = 0;
        bucket rate;
        bool rate_started = false;
    };
    void sweep(clock::time_point now);

    const std::size_t max_open_;
    const std::uint32_t source_rate_;
    const std::uint32_t rate_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, source_entry> sources_;
    bucket listener_;
    bool listener_started_ = false;
    std::size_t admits_since_sweep_ = 0;
};

}  // namespace sb::gateway
