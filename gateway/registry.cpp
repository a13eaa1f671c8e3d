// gateway/registry.cpp — the table of protocol descriptors (each in gateway/protocols/).
#include "gateway/registry.hpp"

#include <array>

namespace sb::gateway {

extern const protocol_descriptor stomp_protocol;
extern const protocol_descriptor mqtt_protocol;
extern const protocol_descriptor amqp_protocol;
extern const protocol_descriptor openwire_protocol;
extern const protocol_descriptor http_protocol;

namespace {

constexpr std::array<const protocol_descriptor*, wire_count> table{&stomp_protocol, &mqtt_protocol, &amqp_protocol,
                                                                   &openwire_protocol, &http_protocol};

}  // namespace

std::span<const protocol_descriptor* const> protocols() noexcept { return table; }

const protocol_descriptor& protocol_of(wire w) noexcept { return *table[static_cast<std::size_t>(w)]; }

const protocol_descriptor* protocol_named(std::string_view name) noexcept {
    for (const auto* p : table)
        if (p->name == name) return p;
    return nullptr;
}

sniff match_at(std::span<const std::byte> head, std::size_t at, std::string_view sig) noexcept {
    for (std::size_t i = 0; i < sig.size(); ++i) {
        if (at + i >= head.size()) return sniff::maybe;
        if (static_cast<char>(head[at + i]) != sig[i]) return sniff::no;
    }
    return sniff::yes;
}

}  // namespace sb::gateway
