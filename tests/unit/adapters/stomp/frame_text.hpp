// tests/unit/adapters/stomp/frame_text.hpp — a STOMP frame as a client writes it (no escaping,
// NUL-terminated), for the session tests to feed.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace sb::test {

using stomp_headers = std::initializer_list<std::pair<std::string_view, std::string_view>>;

inline std::string frame(std::string_view cmd, stomp_headers hs = {}, std::string_view body = {}) {
    std::string f(cmd);
    f += '\n';
    for (const auto& [k, v] : hs) {
        f += k;
        f += ':';
        f += v;
        f += '\n';
    }
    f += '\n';
    f += body;
    f += '\0';
    return f;
}

}  // namespace sb::test
