// tests/unit/bytes.hpp — text <-> byte-span views for codec tests (codecs take spans of bytes).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace sb::test {

inline std::span<const std::uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

inline std::string_view text(std::span<const std::uint8_t> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace sb::test
