// tests/bench/histogram.cpp — log-linear latency histogram.
#include "tests/bench/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace sb::bench {

histogram::histogram() : counts_(bucket_count, 0) {}

std::size_t histogram::bucket_of(std::uint64_t value) noexcept {
    if (value < sub_buckets) return static_cast<std::size_t>(value);
    // Keep the top 8 significant bits: `top` is in [128, 256) and `shift` >= 1.
    const unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(value));
    const unsigned shift = msb - (sub_bucket_bits - 1);
    const auto top = static_cast<std::size_t>(value >> shift);
    return sub_buckets + (shift - 1) * half + (top - half);
}

std::uint64_t histogram::bucket_lowest(std::size_t bucket) noexcept {
    if (bucket < sub_buckets) return bucket;
    const std::size_t k = bucket - sub_buckets;
    const auto shift = static_cast<unsigned>(k / half + 1);
    const auto top = static_cast<std::uint64_t>(k % half + half);
    return top << shift;
}

std::uint64_t histogram::bucket_highest(std::size_t bucket) noexcept {
    if (bucket < sub_buckets) return bucket;
    const auto shift = static_cast<unsigned>((bucket - sub_buckets) / half + 1);
    return bucket_lowest(bucket) + ((std::uint64_t{1} << shift) - 1);
}

void histogram::record(std::uint64_t value) noexcept {
    ++counts_[bucket_of(value)];
    ++total_;
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
    sum_ += static_cast<double>(value);
}

void histogram::merge(const histogram& other) noexcept {
    for (std::size_t i = 0; i < bucket_count; ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
    sum_ += other.sum_;
}

void histogram::reset() noexcept {
    std::fill(counts_.begin(), counts_.end(), 0);
    total_ = 0;
    min_ = UINT64_MAX;
    max_ = 0;
    sum_ = 0;
}

std::uint64_t histogram::percentile(double q) const noexcept {
    if (total_ == 0) return 0;
    q = std::clamp(q, 0.0, 1.0);
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
        seen += counts_[i];
        if (seen >= rank) return std::min(bucket_highest(i), max_);
    }
    return max_;
}

}  // namespace sb::bench
