// core/destination/destination.cpp — name validation and wildcard matching.
#include "core/destination/destination.hpp"

namespace sb::core {

namespace {

// Walks the '.'-separated levels of a name. Empty levels are real levels ("a..b" has three,
// "a." two), because MQTT topics may have them ("/a/b", "a//b").
struct levels {
    std::string_view rest;
    bool done = false;

    explicit levels(std::string_view s) noexcept : rest(s) {}

    std::string_view next() noexcept {
        const auto dot = rest.find('.');
        if (dot == std::string_view::npos) {
            done = true;
            return rest;
        }
        const auto level = rest.substr(0, dot);
        rest.remove_prefix(dot + 1);
        return level;
    }
};

}  // namespace

bool has_wildcard(std::string_view name) noexcept {
    for (levels l(name); !l.done;) {
        const auto level = l.next();
        if (level == "*" || level == ">") return true;
    }
    return false;
}

bool valid_name(std::string_view name) noexcept {
    if (name.empty()) return false;
    for (levels l(name); !l.done;) {
        const auto level = l.next();
        if (level == ">") {
            if (!l.done) return false;   // '>' only as the last level
            continue;
        }
        if (level == "*") continue;
        if (level.find_first_of("*>") != std::string_view::npos) return false;  // "a*", "b>"
    }
    return true;
}

bool matches(std::string_view pattern, std::string_view name) noexcept {
    levels p(pattern), n(name);
    for (bool first = true;; first = false) {
        if (p.done) return n.done;
        const auto pl = p.next();
        // MQTT 5 §4.7.2: wildcards at the first level do not match names starting with '$'.
        const bool dollar = first && !name.empty() && name.front() == '$';
        // '>' matches zero or more levels, so "a.>" matches "a" (MQTT's "a/#" does too).
        if (pl == ">") return !dollar;
        if (n.done) return false;
        const auto nl = n.next();
        if (pl == "*") {
            if (dollar) return false;
        } else if (pl != nl) {
            return false;
        }
    }
}

}  // namespace sb::core
