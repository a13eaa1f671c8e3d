// tests/bench/histogram.hpp — log-linear latency histogram (HdrHistogram's layout, ~0.8% error).
// One per client thread, merged after the threads stop; not thread-safe, never allocates after
// construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sb::bench {

// Values below 256 have a bucket each; above, every power-of-two range [2^k, 2^(k+1)) is split
// into 128 equal buckets, so a bucket is at most 1/128 of its values wide. 7424 buckets cover
// the whole uint64 range (58 KiB).
class histogram {
public:
    static constexpr unsigned sub_bucket_bits = 8;
    static constexpr std::size_t sub_buckets = std::size_t{1} << sub_bucket_bits;  // 256
    static constexpr std::size_t half = sub_buckets / 2;                           // 128
    static constexpr std::size_t bucket_count = sub_buckets + (64 - sub_bucket_bits) * half;

    histogram();

    void record(std::uint64_t value) noexcept;
    void merge(const histogram& other) noexcept;
    void reset() noexcept;

    std::uint64_t count() const noexcept { return total_; }
    std::uint64_t min() const noexcept { return total_ ? min_ : 0; }
    std::uint64_t max() const noexcept { return max_; }
    double mean() const noexcept { return total_ ? sum_ / static_cast<double>(total_) : 0.0; }

    // The value at quantile q (0..1): the highest value of the bucket holding the ceil(q·count)-th
    // smallest value, never above max(). 0 when empty; q outside [0,1] is clamped.
    std::uint64_t percentile(double q) const noexcept;

    static std::size_t bucket_of(std::uint64_t value) noexcept;
    static std::uint64_t bucket_lowest(std::size_t bucket) noexcept;
    static std::uint64_t bucket_highest(std::size_t bucket) noexcept;

private:
    std::vector<std::uint64_t> counts_;
    std::uint64_t total_ = 0;
    std::uint64_t min_ = UINT64_MAX;
    std::uint64_t max_ = 0;
    double sum_ = 0;  // a double: ns latencies times message counts overflow nothing here
};

}  // namespace sb::bench
