// core/schedule/cron.cpp — cron entries: parsing and the next matching minute.
#include "core/schedule/cron.hpp"

#include <charconv>
#include <ctime>
#include <vector>

namespace sb::core {

namespace {

bool number(std::string_view s, int& out) {
    if (s.empty()) return false;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

// One field into a bit set over [lo, hi]; `star` says whether it was a bare `*`.
bool field(std::string_view text, int lo, int hi, std::uint64_t& bits, bool& star, std::string* error,
           const char* what) {
    auto fail = [&](std::string_view why) {
        if (error) *error = std::string(what) + ": " + std::string(why);
        return false;
    };
    bits = 0;
    star = text == "*";
    while (!text.empty()) {
        const auto comma = text.find(',');
        std::string_view part = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        if (part.empty()) return fail("empty list item");
        int step = 1;
        if (const auto slash = part.find('/'); slash != std::string_view::npos) {
            if (!number(part.substr(slash + 1), step) || step <= 0) return fail("bad step");
            part = part.substr(0, slash);
        }
        int a = lo, b = hi;
        if (part != "*") {
            const auto dash = part.find('-');
            if (dash == std::string_view::npos) {
                if (!number(part, a)) return fail("not a number");
                b = step > 1 ? hi : a;   // "5/15": from 5 on, every 15
            } else if (!number(part.substr(0, dash), a) || !number(part.substr(dash + 1), b)) {
                return fail("bad range");
            }
        }
        if (hi == 6 && a == 7 && b == 7) a = b = 0;   // day of week 7 = Sunday
        else if (hi == 6 && b == 7) b = 6, bits |= 1;
        if (a < lo || b > hi || a > b) return fail("out of range");
        for (int v = a; v <= b; v += step) bits |= std::uint64_t{1} << v;
    }
    if (bits == 0) return fail("empty");
    return true;
}

}  // namespace

std::optional<cron_schedule> parse_cron(std::string_view text, std::string* error) {
    std::vector<std::string_view> f;
    while (!text.empty()) {
        const auto start = text.find_first_not_of(" \t");
        if (start == std::string_view::npos) break;
        text.remove_prefix(start);
        const auto end = text.find_first_of(" \t");
        f.push_back(text.substr(0, end));
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end);
    }
    if (f.size() != 5) {
        if (error) *error = "a cron entry has 5 fields";
        return std::nullopt;
    }
    cron_schedule c;
    std::uint64_t bits = 0;
    bool star = false;
    if (!field(f[0], 0, 59, bits, star, error, "minute")) return std::nullopt;
    c.minutes = bits;
    if (!field(f[1], 0, 23, bits, star, error, "hour")) return std::nullopt;
    c.hours = std::uint32_t(bits);
    if (!field(f[2], 1, 31, bits, c.any_day, error, "day of month")) return std::nullopt;
    c.days = std::uint32_t(bits);
    if (!field(f[3], 1, 12, bits, star, error, "month")) return std::nullopt;
    c.months = std::uint16_t(bits);
    if (!field(f[4], 0, 6, bits, c.any_weekday, error, "day of week")) return std::nullopt;
    c.weekdays = std::uint8_t(bits);
    return c;
}

std::int64_t next_cron_time(const cron_schedule& c, std::int64_t after_ms) {
    std::time_t t = std::time_t(after_ms / 60000 + 1) * 60;   // the next whole minute
    std::tm tm{};
    localtime_r(&t, &tm);
    tm.tm_sec = 0;
    const std::time_t limit = t + std::time_t(5) * 366 * 24 * 3600;
    // Each step moves to the start of the next month / day / hour / minute that can match,
    // so the loop is bounded by a few thousand steps over five years.
    for (int guard = 0; guard < 100000; ++guard) {
        tm.tm_isdst = -1;
        const std::time_t now = std::mktime(&tm);
        if (now == -1 || now > limit) return 0;
        localtime_r(&now, &tm);
        if (!(c.months >> (tm.tm_mon + 1) & 1)) {
            tm.tm_mon += 1, tm.tm_mday = 1, tm.tm_hour = 0, tm.tm_min = 0;
            continue;
        }
        const bool dom = c.days >> tm.tm_mday & 1, dow = c.weekdays >> tm.tm_wday & 1;
        const bool day = c.any_day && c.any_weekday ? true
                         : c.any_day                ? dow
                         : c.any_weekday            ? dom
                                                    : (dom || dow);
        if (!day) {
            tm.tm_mday += 1, tm.tm_hour = 0, tm.tm_min = 0;
            continue;
        }
        if (!(c.hours >> tm.tm_hour & 1)) {
            tm.tm_hour += 1, tm.tm_min = 0;
            continue;
        }
        if (!(c.minutes >> tm.tm_min & 1)) {
            tm.tm_min += 1;
            continue;
        }
        return std::int64_t(now) * 1000;
    }
    return 0;
}

}  // namespace sb::core
