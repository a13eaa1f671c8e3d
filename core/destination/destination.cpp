// core/destination/destination.cpp — name validation and wildcard matching.
#include "core/destination/destination.hpp"

namespace sb::core {

namespace {

// Splits off the next level of `s` (up to '.'); advances `s` past the dot.
std::string_view next_level(std::string_view& s) noexcept {
    const auto dot = s.find('.');
    std::string_view level = s.substr(0, dot);
    s = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
    return level;
}

}  // namespace

bool has_wildcard(std::string_view name) noexcept {
    while (!name.empty()) {
        const auto level = next_level(name);
        if (level == "*" || level == ">") return true;
    }
    return false;
}

bool valid_name(std::string_view name) noexcept {
    if (name.empty()) return false;
    if (name.front() == '.' || name.back() == '.') return false;
    if (name.find("..") != std::string_view::npos) return false;
    const auto gt = name.find('>');
    if (gt == std::string_view::npos) return true;
    // '>' must be a whole level and the last one.
    return gt == name.size() - 1 && (gt == 0 || name[gt - 1] == '.');
}

bool matches(std::string_view pattern, std::string_view name) noexcept {
    bool first = true;
    for (;;) {
        if (pattern.empty()) return name.empty();
        const auto p = next_level(pattern);
        // '>' matches zero or more levels, so "a.>" matches "a" (MQTT's "a/#" does too).
        if (p == ">") return !(first && !name.empty() && name.front() == '$');
        if (name.empty()) return false;
        const bool dollar = first && name.front() == '$';
        const auto n = next_level(name);
        if (p == "*") {
            if (dollar) return false;  // MQTT 5 §4.7.2: wildcards skip $-topics at the first level
        } else if (p != n) {
            return false;
        }
        first = false;
    }
}

}  // namespace sb::core
