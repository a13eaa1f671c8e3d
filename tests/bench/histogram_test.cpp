// tests/bench/histogram_test.cpp — the latency histogram: bucket layout, precision, percentiles, merge.
#include <catch2/catch.hpp>

#include <random>

#include "tests/bench/histogram.hpp"

using sb::bench::histogram;

TEST_CASE("values below 256 each have their own bucket", "[bench][histogram]") {
    for (std::uint64_t v = 0; v < 256; ++v) {
        REQUIRE(histogram::bucket_of(v) == v);
        REQUIRE(histogram::bucket_lowest(v) == v);
        REQUIRE(histogram::bucket_highest(v) == v);
    }
}

TEST_CASE("buckets tile the whole uint64 range without gaps or overlaps", "[bench][histogram]") {
    for (std::size_t b = 0; b + 1 < histogram::bucket_count; ++b) {
        REQUIRE(histogram::bucket_highest(b) + 1 == histogram::bucket_lowest(b + 1));
        REQUIRE(histogram::bucket_of(histogram::bucket_lowest(b)) == b);
        REQUIRE(histogram::bucket_of(histogram::bucket_highest(b)) == b);
    }
    REQUIRE(histogram::bucket_of(UINT64_MAX) == histogram::bucket_count - 1);
    REQUIRE(histogram::bucket_highest(histogram::bucket_count - 1) == UINT64_MAX);
}

TEST_CASE("a bucket is at most 1/128 of its values wide", "[bench][histogram]") {
    for (std::size_t b = 256; b < histogram::bucket_count; ++b) {
        const auto lo = static_cast<long double>(histogram::bucket_lowest(b));
        const auto width = static_cast<long double>(histogram::bucket_highest(b)) - lo + 1;
        REQUIRE(width / lo <= 1.0L / 128);
    }
}

TEST_CASE("an empty histogram reports zeros", "[bench][histogram]") {
    histogram h;
    REQUIRE(h.count() == 0);
    REQUIRE(h.min() == 0);
    REQUIRE(h.max() == 0);
    REQUIRE(h.percentile(0.5) == 0);
    REQUIRE(h.mean() == 0);
}

TEST_CASE("percentiles of 1..100000 are within 1% of the exact values", "[bench][histogram]") {
    histogram h;
    for (std::uint64_t v = 1; v <= 100000; ++v) h.record(v);
    REQUIRE(h.count() == 100000);
    REQUIRE(h.min() == 1);
    REQUIRE(h.max() == 100000);
    REQUIRE(h.mean() == Approx(50000.5));
    for (double q : {0.5, 0.9, 0.99, 0.999}) {
        const double exact = q * 100000;
        REQUIRE(static_cast<double>(h.percentile(q)) >= exact);
        REQUIRE(static_cast<double>(h.percentile(q)) <= exact * 1.01);
    }
    REQUIRE(h.percentile(1.0) == 100000);
    REQUIRE(h.percentile(2.0) == 100000);  // clamped
}

TEST_CASE("a percentile never exceeds the largest recorded value", "[bench][histogram]") {
    histogram h;
    h.record(1'000'001);  // inside a bucket ~7800 wide
    REQUIRE(h.percentile(0.5) == 1'000'001);
    REQUIRE(h.percentile(0.0) == 1'000'001);
}

TEST_CASE("merging per-thread histograms equals recording everything in one", "[bench][histogram]") {
    std::mt19937_64 rng(42);
    std::lognormal_distribution<double> latency(11.0, 1.5);  // around 60 us, long tail
    histogram a, b, all;
    for (int i = 0; i < 50000; ++i) {
        const auto v = static_cast<std::uint64_t>(latency(rng));
        (i % 3 ? a : b).record(v);
        all.record(v);
    }
    a.merge(b);
    REQUIRE(a.count() == all.count());
    REQUIRE(a.min() == all.min());
    REQUIRE(a.max() == all.max());
    REQUIRE(a.mean() == Approx(all.mean()));
    for (double q : {0.0, 0.5, 0.99, 0.999, 1.0}) REQUIRE(a.percentile(q) == all.percentile(q));
}

TEST_CASE("merging an empty histogram changes nothing, and reset empties", "[bench][histogram]") {
    histogram h, empty;
    h.record(7);
    h.merge(empty);
    REQUIRE(h.count() == 1);
    REQUIRE(h.min() == 7);
    h.reset();
    REQUIRE(h.count() == 0);
    REQUIRE(h.max() == 0);
}
