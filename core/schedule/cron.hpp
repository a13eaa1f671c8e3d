// core/schedule/cron.hpp — the 5-field cron entries of AMQ_SCHEDULED_CRON (ActiveMQ's syntax):
// "minute hour day-of-month month day-of-week", each field `*`, a number, a range `a-b`, a list
// `a,b,c`, with an optional step `/n` on `*` or a range. Ranges: minute 0-59, hour 0-23, day of
// month 1-31, month 1-12, day of week 0-6 (0 = Sunday; 7 is taken as Sunday too). When both
// day fields are restricted a day matching either is taken (as cron does). Times are the
// process's local time, as ActiveMQ's (the JVM's default time zone).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sb::core {

struct cron_schedule {
    std::uint64_t minutes = 0;   // bit n: minute n
    std::uint32_t hours = 0;
    std::uint32_t days = 0;      // bit 1..31
    std::uint16_t months = 0;    // bit 1..12
    std::uint8_t weekdays = 0;   // bit 0..6
    bool any_day = true;         // day of month was `*`
    bool any_weekday = true;     // day of week was `*`
};

// Parses an entry; nullopt with `error` set when it is not valid.
std::optional<cron_schedule> parse_cron(std::string_view text, std::string* error = nullptr);

// The first whole minute strictly after `after_ms` (ms since the epoch) that the entry
// matches, in ms; 0 when there is none within five years (e.g. "0 0 31 2 *").
std::int64_t next_cron_time(const cron_schedule& c, std::int64_t after_ms);

}  // namespace sb::core
