// gateway/door.cpp — per-source connection counts and token buckets (see door.hpp).
#include "gateway/door.hpp"

#include <algorithm>

namespace sb::gateway {

door_limits::door_limits(std::size_t max_connections_per_source, std::uint32_t max_rate_per_source,
                         std::uint32_t max_rate)
    : max_open_(max_connections_per_source), source_rate_(max_rate_per_source), rate_(max_rate) {}

bool door_limits::bucket::take(std::uint32_t rate, clock::time_point now) {
    const double elapsed = std::chrono::duration<double>(now - at).count();
    tokens = std::min<double>(rate, tokens + std::max(elapsed, 0.0) * rate);
    at = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
}

door_limits::verdict door_limits::admit(const std::string& source, clock::time_point now) {
    std::lock_guard lock(mutex_);
    if (max_open_ == 0 && source_rate_ == 0 && rate_ == 0) return verdict::admitted;
    if (++admits_since_sweep_ >= 1024) sweep(now);
    source_entry* e = nullptr;
    if (max_open_ || source_rate_) {
        e = &sources_[source];
        if (max_open_ && e->open >= max_open_) return verdict::max_connections_per_source;
        if (source_rate_) {
            if (!e->rate_started) {   // a new source starts with a full bucket
                e->rate = bucket{static_cast<double>(source_rate_), now};
                e->rate_started = true;
            }
            // The listener's bucket is asked after: a source over its own rate does not use
            // the listener's tokens. A refusal by the listener's rate gives the token back.
            if (!e->rate.take(source_rate_, now)) return verdict::max_rate_per_source;
        }
    }
    if (rate_) {
        if (!listener_started_) {
            listener_ = bucket{static_cast<double>(rate_), now};
            listener_started_ = true;
        }
        if (!listener_.take(rate_, now)) {
            if (e && source_rate_) e->rate.tokens += 1;
            return verdict::max_rate;
        }
    }
    if (e && max_open_) ++e->open;
    return verdict::admitted;
}

void door_limits::release(const std::string& source) {
    std::lock_guard lock(mutex_);
    const auto it = sources_.find(source);
    if (it == sources_.end()) return;
    if (it->second.open > 0) --it->second.open;
    if (it->second.open == 0 && source_rate_ == 0) sources_.erase(it);
}

// Forgets the sources with nothing open whose bucket has filled up again: they would start
// the same if they came back.
void door_limits::sweep(clock::time_point now) {
    admits_since_sweep_ = 0;
    for (auto it = sources_.begin(); it != sources_.end();) {
        const auto& e = it->second;
        const bool full = !e.rate_started ||
                          e.rate.tokens + std::chrono::duration<double>(now - e.rate.at).count() * source_rate_ >= source_rate_;
        if (e.open == 0 && full) it = sources_.erase(it);
        else ++it;
    }
}

std::size_t door_limits::tracked() const {
    std::lock_guard lock(mutex_);
    return sources_.size();
}

}  // namespace sb::gateway
