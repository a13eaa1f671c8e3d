// gateway/probe.hpp — what a health check of each type sends and how it judges the reply, without
// sockets: health_check runs these over a connection, the unit tests and the fuzzer run them
// over bytes. Each protocol's conversation is its descriptor's (gateway/protocols/<name>.cpp,
// written with the protocol's codec where there is one); `tcp` and `none` have none.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/config.hpp"

namespace sb::gateway {

struct probe_conversation;

// The conversation of one check type, without sockets (unit-tested on its own).
struct probe {
    enum class verdict { need_more, up, down };
    std::string request;                 // sent once connected (may be empty)
    // Looks at everything received so far. On up/down, `why` says what was seen.
    verdict judge(std::string_view received, std::string& why) const;
    // Sent after an `up` verdict, before closing (a polite goodbye, or the OpenWire reply).
    std::string goodbye(std::string_view received) const;

    check_type type = check_type::tcp;
    std::uint32_t http_status = 200;
    const probe_conversation* conversation = nullptr;   // null: connecting is the check
};

// One protocol's health check (its descriptor's `check`). Pure functions: no I/O.
struct probe_conversation {
    check_type type;
    // What is sent once connected (empty: the server speaks first).
    std::string (*request)(const check_config& c, std::string_view host, std::string_view client_id);
    // As probe::judge; a verdict other than need_more on a prefix is the verdict on the whole.
    probe::verdict (*judge)(const probe& p, std::string_view received, std::string& why);
    // As probe::goodbye; null: nothing.
    std::string (*goodbye)(std::string_view received);
};

std::string_view check_type_name(check_type t);

probe make_probe(const check_config& c, std::string_view host, std::string_view client_id);

// For `why`: at most `max` bytes of `s`, bytes that are not printable ASCII shown as '.'.
std::string printable(std::string_view s, std::size_t max = 60);

}  // namespace sb::gateway
