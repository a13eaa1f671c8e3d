// adapters/openwire/mapping.hpp — OpenWire (JMS) messages and destinations <-> kernel messages
// and destinations. The table is docs/mapping.md (the OpenWire column).
//
// Bodies: a TextMessage's text is kernel text (UTF-8); a BytesMessage's bytes and an
// ObjectMessage's serialized object (never deserialized; marked by content_type
// object_content_type) are kernel bytes; a MapMessage's and a StreamMessage's content stay in
// OpenWire's primitive map / list encoding, as kernel map / stream bodies; a plain Message has
// none. Compressed content (the client's useCompression) is inflated on the way in; what goes
// out is never compressed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "adapters/openwire/codec.hpp"
#include "adapters/openwire/commands.hpp"
#include "core/message/message.hpp"

namespace sb::openwire {

// The kernel property that carries the JMSMessageID the producer gave a message (its text,
// "ID:<connection>:<session>:<producer>:<sequence>"): a JMS consumer sees the same id, other
// protocols see it as a property (the AMQP adapter uses the same name for its message-id).
inline constexpr std::string_view message_id_property = "message-id";
// An ObjectMessage's content type in the kernel (the AMQP JMS mapping's name for it).
inline constexpr std::string_view object_content_type = "application/x-java-serialized-object";

// Temporary destinations as one connection sees them: the client names its own ("ID:<its
// connection id>:<n>"), the kernel names them itself (broker::create_temporary).
class temp_resolver {
public:
    // The kernel destination of this connection's temporary destination `name`, if it is one.
    virtual std::optional<core::destination> own_temporary(std::string_view name, bool queue) const = 0;
    // The client's name of kernel destination `d` when it is this connection's (else empty).
    virtual std::string_view own_name(const core::destination& d) const = 0;

protected:
    ~temp_resolver() = default;
};

// Why a message or destination is refused: the Java exception class the client is answered
// with and its message.
struct mapping_error {
    std::string_view exception_class;
    std::string message;
};

// A wire destination as the kernel names it (options after '?' dropped). nullopt: no name.
std::optional<core::destination> to_kernel(const destination& d, const temp_resolver& t);
// The wire destination of kernel destination `d`: views into `d` or into the resolver.
destination to_wire(const core::destination& d, const temp_resolver& t);

// The kernel message for message `m` (its destination already resolved to `dest`); the id,
// origin and (when the client sent none) the timestamp are the caller's. `max_body` bounds an
// inflated body.
std::optional<mapping_error> message_from_wire(const message& m, core::destination dest, wire_format& wf,
                                               const temp_resolver& t, std::size_t max_body, core::message& out);

// Storage for what message_to_wire's views point to besides the kernel message.
struct wire_scratch {
    std::string properties;
    std::string content;
    std::string id_text;
    destination_info advisory_info;
    data_structure advisory;
};

// Fills `out` for a dispatch of `m`. `broker_producer` names the producer of messages that came
// without a JMS message id (from other protocols); their sequence is the kernel id.
void message_to_wire(const core::message& m, const temp_resolver& t, std::string_view broker_producer,
                     wire_scratch& s, message& out);

// Parses "ID:<connection>:<session>:<producer>:<sequence>" (ActiveMQ's MessageId.toString)
// into `out` (views into `text`); false when it is not of that form.
bool parse_message_id(std::string_view text, message_id& out);

// Inflates a zlib stream (java.util.zip's Deflater output); false when malformed or larger
// than `max`.
bool inflate(bytes in, std::size_t max, std::string& out);

}  // namespace sb::openwire
