// adapters/stomp/mapping.hpp — STOMP frames <-> kernel messages (DESIGN.md mapping table):
// /queue/A.B and /topic/A.B, persistent/priority/expires/reply-to/correlation-id/type headers,
// other headers as string properties, content-length -> bytes body, else text.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "adapters/stomp/frames.hpp"
#include "core/message/message.hpp"

namespace sb::stomp {

struct mapping_error { std::string_view message; };

// Parses "/queue/NAME" or "/topic/NAME". `for_send` rejects wildcards (a message goes to one
// destination); subscriptions accept them on topics.
std::variant<core::destination, mapping_error> parse_destination(std::string_view text, bool for_send);

// A SEND's destination: one as parse_destination(text, true), or ActiveMQ's composite
// destination "/queue/a,/topic/b" (a part without a prefix has the kind of the one before),
// mapped to the kernel's composite name (core/destination/composite.hpp).
std::variant<core::destination, mapping_error> parse_send_destination(std::string_view text);

std::string format_destination(const core::destination& d);

// Builds the kernel message for a SEND frame (id, timestamp and origin are filled by the caller).
std::variant<core::message, mapping_error> message_from_send(const frame& f);

// Appends a whole MESSAGE frame for `d` to `out`.
struct message_frame_args {
    std::string_view subscription;
    std::string_view ack;          // 1.2 `ack` header value; empty = none
    std::string_view broker_name;  // message-id prefix
};
void encode_message(std::string& out, version v, const core::message& m, std::uint32_t redeliveries,
                    const message_frame_args& args);

// message-id as written in MESSAGE frames, and back (nullopt if not ours).
std::string format_message_id(std::string_view broker_name, core::message_id id);
std::optional<core::message_id> parse_message_id(std::string_view text) noexcept;

}  // namespace sb::stomp
