// adapters/stomp/mapping.hpp — STOMP frames <-> kernel messages (DESIGN.md mapping table):
// /queue/A.B and /topic/A.B, persistent/priority/expires/reply-to/correlation-id/type headers,
// other headers as string properties, content-length -> bytes body, else text.
#pragma once

#include <optional>
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

// Temporary destinations are written "/remote-temp-queue/<name>" (see temp_reference).
std::string format_destination(const core::destination& d);

// ActiveMQ's temporary destinations over STOMP. "/temp-queue/<name>" and "/temp-topic/<name>"
// name one of the connection's own, by a name the client chose (created on first use);
// "/remote-temp-queue/<id>" and "/remote-temp-topic/<id>" another connection's, by the kernel
// name it was given, which is how MESSAGE frames write it (reply-to, destination) for every
// connection but its owner.
struct temp_reference {
    core::dest_kind kind = core::dest_kind::temp_queue;   // temp_queue or temp_topic
    std::string_view name;
    bool remote = false;
};
std::optional<temp_reference> parse_temp_destination(std::string_view text) noexcept;

// A session's temporary destinations, as the mapping needs them.
class temp_destinations {
public:
    // The kernel destination `r` names: a remote one by its name, an own one looked up or
    // created. nullopt: it cannot be made (the connection has too many).
    virtual std::optional<core::destination> resolve(const temp_reference& r) = 0;
    // "/temp-queue/<name>" for a kernel temporary destination of this connection; empty for
    // another connection's.
    virtual std::string_view own_name(const core::destination& d) const noexcept = 0;

protected:
    ~temp_destinations() = default;
};

// A destination header of a SEND (for_send) or SUBSCRIBE: "/queue/NAME", "/topic/NAME", or a
// temporary one (through `temps`; refused without). A SUBSCRIBE may name wildcards on queues
// too (ActiveMQ's wildcard queue consumers), not on temporary destinations.
std::variant<core::destination, mapping_error> parse_stomp_destination(std::string_view text, bool for_send,
                                                                       temp_destinations* temps);

// Builds the kernel message for a SEND frame (id, timestamp and origin are filled by the caller).
// `temps` resolves temporary destinations in `destination` and `reply-to` (without it they are
// refused, and a temporary reply-to is kept as a plain property).
std::variant<core::message, mapping_error> message_from_send(const frame& f, temp_destinations* temps = nullptr);

// Appends a whole MESSAGE frame for `d` to `out`.
struct message_frame_args {
    std::string_view subscription;
    std::string_view ack;          // 1.2 `ack` header value; empty = none
    std::string_view broker_name;  // message-id prefix
    const temp_destinations* temps = nullptr;   // names the connection's own temporary destinations
    bool group_first = false;      // JMSXGroupFirstForConsumer:true (core::delivery::group_first)
};
// The end of a browse (SUBSCRIBE browser:true), as ActiveMQ writes it: a MESSAGE with
// `browser:end`, message-id 0 and no body.
void encode_browse_end(std::string& out, version v, std::string_view subscription, const core::destination& dest,
                       const temp_destinations* temps);
void encode_message(std::string& out, version v, const core::message& m, std::uint32_t redeliveries,
                    const message_frame_args& args);

// message-id as written in MESSAGE frames, and back (nullopt if not ours).
std::string format_message_id(std::string_view broker_name, core::message_id id);
std::optional<core::message_id> parse_message_id(std::string_view text) noexcept;

}  // namespace sb::stomp
