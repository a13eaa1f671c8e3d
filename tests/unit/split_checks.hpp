// tests/unit/split_checks.hpp — for codec tests: the same bytes fed in any split must decode to
// the same result. `feed(cuts)` decodes the stream delivered in pieces cut at `cuts`.
#pragma once

#include <cstddef>
#include <vector>

#include <catch2/catch.hpp>

namespace sb::test {

// Every cut position, every byte on its own, and pairs of cuts over strides (to keep it quick).
template <typename Feed, typename Result>
void check_every_split(std::size_t size, const Result& whole, Feed&& feed, std::size_t stride_a, std::size_t stride_b) {
    for (std::size_t i = 0; i <= size; ++i) {
        INFO("split at " << i);
        REQUIRE(feed(std::vector<std::size_t>{i}) == whole);
    }
    std::vector<std::size_t> every_byte;
    for (std::size_t i = 1; i < size; ++i) every_byte.push_back(i);
    CHECK(feed(every_byte) == whole);
    for (std::size_t i = 0; i <= size; i += stride_a)
        for (std::size_t j = i; j <= size; j += stride_b) {
            INFO("splits at " << i << " and " << j);
            REQUIRE(feed(std::vector<std::size_t>{i, j}) == whole);
        }
}

}  // namespace sb::test
