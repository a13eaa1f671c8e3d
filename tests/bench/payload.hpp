// tests/bench/payload.hpp — the benchmark payload: send time and sequence in the first 16 bytes.
// Pure functions; byte order is fixed (little endian) so any client can read another's stamps.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace sb::bench {

// Bytes 0..7: send time (steady clock, ns); bytes 8..15: sequence. The rest is padding.
inline constexpr std::size_t stamp_bytes = 16;

struct stamp {
    std::uint64_t sent_ns = 0;
    std::uint64_t seq = 0;
    friend bool operator==(const stamp&, const stamp&) = default;
};

// A sequence names its producer (top 24 bits) and the producer's message number (low 40 bits),
// so a consumer can check per-producer order without a side channel.
inline constexpr unsigned seq_number_bits = 40;
inline constexpr std::uint64_t seq_number_mask = (std::uint64_t{1} << seq_number_bits) - 1;
inline constexpr std::uint32_t max_producers = (1u << 24) - 1;

constexpr std::uint64_t make_seq(std::uint32_t producer, std::uint64_t number) noexcept {
    return (std::uint64_t{producer} << seq_number_bits) | (number & seq_number_mask);
}
constexpr std::uint32_t seq_producer(std::uint64_t seq) noexcept {
    return static_cast<std::uint32_t>(seq >> seq_number_bits);
}
constexpr std::uint64_t seq_number(std::uint64_t seq) noexcept { return seq & seq_number_mask; }

constexpr void put_u64_le(std::uint8_t* p, std::uint64_t v) noexcept {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
constexpr std::uint64_t get_u64_le(const std::uint8_t* p) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= std::uint64_t{p[i]} << (8 * i);
    return v;
}

// Writes the stamp over the first 16 bytes; false (nothing written) when the payload is shorter.
constexpr bool write_stamp(std::span<std::uint8_t> payload, stamp s) noexcept {
    if (payload.size() < stamp_bytes) return false;
    put_u64_le(payload.data(), s.sent_ns);
    put_u64_le(payload.data() + 8, s.seq);
    return true;
}

constexpr std::optional<stamp> read_stamp(std::span<const std::uint8_t> payload) noexcept {
    if (payload.size() < stamp_bytes) return std::nullopt;
    return stamp{get_u64_le(payload.data()), get_u64_le(payload.data() + 8)};
}

// The clock of every stamp: monotonic and shared by all threads of this process (and by every
// process on the machine, which the latency across producer and consumer processes relies on).
inline std::uint64_t now_ns() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now().time_since_epoch()).count());
}

}  // namespace sb::bench
