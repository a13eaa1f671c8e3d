// gateway/probe.hpp — what a health check of each type sends and how it judges the reply, without
// sockets: health_check runs these over a connection, the unit tests and the fuzzer run them
// over bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/config.hpp"

namespace sb::gateway {

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
};

std::string_view check_type_name(check_type t);

probe make_probe(const check_config& c, std::string_view host, std::string_view client_id);

}  // namespace sb::gateway
