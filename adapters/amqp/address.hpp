// adapters/amqp/address.hpp — AMQP 1.0 link and message addresses <-> kernel destinations.
// No Proton here: the rules are pure and unit-tested on their own.
//
// Accepted forms (docs/amqp.md):
//   NAME                  a queue (unless the terminus says `topic`)
//   queue://NAME          ActiveMQ's prefixes
//   topic://NAME
//   /queue/NAME           the STOMP form (RabbitMQ 3.x's AMQP 1.0 plugin accepts it too)
//   /topic/NAME
//   temp-queue://NAME     a temporary destination (what a dynamic node's address is)
//   temp-topic://NAME
// A terminus capability `queue` or `topic` decides the kind of a bare name; a prefix wins
// over a capability.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "core/destination/destination.hpp"

namespace sb::amqp {

struct address_error {
    std::string_view message;   // static text
};

enum class capability_hint : std::uint8_t { none, queue, topic };

// `for_send`: a message goes to one destination (no wildcards); a subscription may use
// wildcards on topics.
std::variant<core::destination, address_error> parse_address(std::string_view text, capability_hint hint,
                                                             bool for_send);

// The hint the terminus capabilities give (`queue`, `topic`, `temporary-queue`,
// `temporary-topic`; others ignored).
capability_hint hint_of(std::span<const std::string> capabilities) noexcept;

// The address an AMQP peer sees: queues bare, topics `topic://NAME`, temporary ones
// `temp-queue://NAME` / `temp-topic://NAME` (parse_address reads each back as it was).
std::string format_address(const core::destination& d);

// The kernel name of the subscription a receiving link makes of a topic with a durable source
// or the `shared` capability (Qpid JMS's naming, as Artemis reads it):
//   - scoped by the client's container-id ("<container>:<name>", the STOMP durable
//     subscription of client-id <container> and that name too), or, with the `global`
//     capability, by nothing (":<name>");
//   - a shared subscription's links are named "<name>", "<name>|2", "<name>|global",
//     "<name>|volatile1"...: the name is the link name up to its first '|'; an exclusive one's
//     is the whole link name;
//   - a non-durable (shared) one is kept apart from the durable one of the same name
//     ("...|volatile").
std::string subscription_name(std::string_view container, std::string_view link_name, bool shared, bool global,
                              bool durable);

}  // namespace sb::amqp
