// core/store/crc32c.hpp — CRC-32C (Castagnoli), the checksum of every journal record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace sb::core {

// Extends `crc` (0 to start) over `data`. Slicing-by-8 tables: ~2 GB/s without special
// instructions, far above the disk's rate.
std::uint32_t crc32c(std::span<const std::uint8_t> data, std::uint32_t crc = 0) noexcept;

}  // namespace sb::core
