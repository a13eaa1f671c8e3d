// adapters/amqp/mapping.hpp — AMQP 1.0 messages (Proton's proton::message) <-> kernel messages.
// The table is docs/mapping.md. Includes Proton: only adapters/amqp/ and its tests include it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <proton/message.hpp>

#include "core/message/message.hpp"

namespace sb::amqp {

struct mapping_error {
    std::string_view condition;   // AMQP error condition (amqp:invalid-field, ...)
    std::string message;
};

// The kernel property that carries an AMQP message-id set by the sender (as text), so that an
// AMQP consumer sees it again; other protocols show the broker's id (STOMP reserves the name).
inline constexpr std::string_view message_id_property = "message-id";

// The kernel message for an incoming AMQP message. `link_target` is the destination of the
// link it came on; nullopt for the anonymous relay, where the message's `to` names it. Id,
// timestamp and origin are the caller's.
std::variant<core::message, mapping_error> message_from_amqp(const proton::message& m,
                                                             const std::optional<core::destination>& link_target,
                                                             std::int64_t now_ms);

// Fills `out` (cleared first) for a delivery of `m` that was delivered `redeliveries` times
// before; `broker_name` makes the message-id of messages that came without one.
void message_to_amqp(const core::message& m, std::uint32_t redeliveries, std::string_view broker_name,
                     std::int64_t now_ms, proton::message& out);

// The same message as message_to_amqp gives, encoded straight into `out` (appended): the
// header (when a field differs from its default), properties, application-properties and the
// body (an amqp-value string for text, a data section otherwise, none without a body). The
// delivery path's encoder: no proton::message, no allocation once `out` has grown.
void encode_amqp(const core::message& m, std::uint32_t redeliveries, std::string_view broker_name,
                 std::int64_t now_ms, std::string& out);

// The kernel message for the encoded AMQP message `bytes`, as message_from_amqp gives it for the
// same message decoded by Proton — when the message has the common shape: sections header,
// properties (ids as strings), application-properties (scalar values), and one data section or
// an amqp-value that is null, a string, a symbol or binary, each descriptor a small ulong.
// nullopt for anything else (annotations, footers, other ids, bodies or encodings, malformed
// bytes): the caller then decodes with Proton. The receive path's decoder.
std::optional<std::variant<core::message, mapping_error>> decode_amqp(std::string_view bytes,
                                                                     const std::optional<core::destination>& link_target,
                                                                     std::int64_t now_ms);

}  // namespace sb::amqp
