// adapters/mqtt/mapping.hpp — MQTT packets <-> kernel messages (DESIGN.md mapping table):
// topics swap '/' and '.', '+' <-> '*', '#' <-> '>'; QoS >= 1 is persistent; v5 properties map
// to message fields (response topic -> reply-to, correlation data -> correlation-id, user
// properties -> string properties, content type, message expiry).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/mqtt/frames.hpp"
#include "core/message/message.hpp"

namespace sb::mqtt {

// "a/b.c" -> "a.b/c", "+" -> "*", "#" -> ">" (and back). Reversible for every valid topic.
std::string to_kernel_topic(std::string_view mqtt_topic);
std::string to_mqtt_topic(std::string_view kernel_name);

// "$share/<group>/<filter>" split into its parts; nullopt when `filter` is not a share, and
// a group of "" when it is one but malformed.
struct share { std::string_view group; std::string_view filter; };
std::optional<share> parse_share(std::string_view filter) noexcept;

// The kernel message for an inbound PUBLISH to `topic` (after alias resolution).
core::message message_from_publish(const publish& p, std::string_view topic, std::int64_t now_ms);

// The QoS a message is offered at: its MQTT QoS; from other protocols 2 when persistent (so a
// subscriber gets it at the QoS it was granted) and 0 when not.
std::uint8_t message_qos(const core::message& m) noexcept;

// v5 properties of an outbound PUBLISH. Views point into `m` and `storage`, which must live
// until the packet is encoded.
void publish_properties(const core::message& m, std::int64_t now_ms, properties& out,
                        std::vector<std::string>& storage);

}  // namespace sb::mqtt
