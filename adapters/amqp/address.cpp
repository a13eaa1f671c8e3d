// adapters/amqp/address.cpp — AMQP 1.0 addresses <-> kernel destinations (see address.hpp).
#include "adapters/amqp/address.hpp"

#include <array>
#include <utility>

namespace sb::amqp {

namespace {

struct prefix {
    std::string_view text;
    core::dest_kind kind;
};

constexpr std::array<prefix, 6> prefixes{{
    {"queue://", core::dest_kind::queue},
    {"topic://", core::dest_kind::topic},
    {"/queue/", core::dest_kind::queue},
    {"/topic/", core::dest_kind::topic},
    {"temp-queue://", core::dest_kind::temp_queue},
    {"temp-topic://", core::dest_kind::temp_topic},
}};

}  // namespace

capability_hint hint_of(std::span<const std::string> capabilities) noexcept {
    for (const auto& c : capabilities) {
        if (c == "queue" || c == "temporary-queue") return capability_hint::queue;
        if (c == "topic" || c == "temporary-topic") return capability_hint::topic;
    }
    return capability_hint::none;
}

std::variant<core::destination, address_error> parse_address(std::string_view text, capability_hint hint,
                                                             bool for_send) {
    core::destination d;
    d.kind = hint == capability_hint::topic ? core::dest_kind::topic : core::dest_kind::queue;
    for (const auto& p : prefixes) {
        if (text.starts_with(p.text)) {
            d.kind = p.kind;
            text.remove_prefix(p.text.size());
            break;
        }
    }
    if (text.empty()) return address_error{"empty address"};
    if (!core::valid_name(text)) return address_error{"invalid destination name"};
    if (core::has_wildcard(text)) {
        if (for_send) return address_error{"cannot send to a wildcard address"};
        if (!d.is_topic() || d.is_temporary()) return address_error{"wildcards are only supported on topics"};
    }
    d.name = std::string(text);
    return d;
}

std::string format_address(const core::destination& d) {
    std::string s;
    switch (d.kind) {
    case core::dest_kind::queue: break;
    case core::dest_kind::topic: s = "topic://"; break;
    case core::dest_kind::temp_queue: s = "temp-queue://"; break;
    case core::dest_kind::temp_topic: s = "temp-topic://"; break;
    }
    s += d.name;
    return s;
}

std::string subscription_name(std::string_view container, std::string_view link_name, bool shared, bool global,
                              bool durable) {
    std::string_view name = link_name;
    if (shared) name = name.substr(0, name.find('|'));
    std::string out;
    out.reserve(container.size() + name.size() + 10);
    if (!global) out += container;
    out += ':';
    out += name;
    if (!durable) out += "|volatile";
    return out;
}

}  // namespace sb::amqp
