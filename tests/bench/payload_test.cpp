// tests/bench/payload_test.cpp — the payload stamp: byte layout, round trip, short payloads.
#include <catch2/catch.hpp>

#include <array>
#include <vector>

#include "tests/bench/payload.hpp"

using namespace sb::bench;

TEST_CASE("the stamp is two little-endian u64s: send time then sequence", "[bench][payload]") {
    std::array<std::uint8_t, 20> buf{};
    buf.fill(0xee);
    REQUIRE(write_stamp(buf, stamp{0x0102030405060708ull, 0x1112131415161718ull}));
    const std::array<std::uint8_t, 20> want{0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
                                            0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,
                                            0xee, 0xee, 0xee, 0xee};
    REQUIRE(buf == want);  // the padding after the stamp is untouched
}

TEST_CASE("a written stamp reads back unchanged", "[bench][payload]") {
    std::vector<std::uint8_t> buf(128);
    for (std::uint64_t v : {std::uint64_t{0}, std::uint64_t{1}, now_ns(), UINT64_MAX}) {
        const stamp s{v, make_seq(12345, v)};
        REQUIRE(write_stamp(buf, s));
        REQUIRE(read_stamp(buf) == s);
    }
}

TEST_CASE("payloads shorter than 16 bytes carry no stamp", "[bench][payload]") {
    std::array<std::uint8_t, 15> small{};
    REQUIRE_FALSE(write_stamp(small, stamp{1, 2}));
    REQUIRE_FALSE(read_stamp(small).has_value());
    REQUIRE_FALSE(read_stamp({}).has_value());
}

TEST_CASE("a sequence names its producer and the producer's message number", "[bench][payload]") {
    const std::uint64_t s = make_seq(max_producers, seq_number_mask);
    REQUIRE(seq_producer(s) == max_producers);
    REQUIRE(seq_number(s) == seq_number_mask);
    REQUIRE(seq_producer(make_seq(3, 99)) == 3);
    REQUIRE(seq_number(make_seq(3, 99)) == 99);
    static_assert(seq_number(make_seq(1, 5)) == 5);
}

TEST_CASE("the clock is monotonic", "[bench][payload]") {
    const auto a = now_ns();
    const auto b = now_ns();
    REQUIRE(b >= a);
}
