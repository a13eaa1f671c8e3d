// tests/bench/mqtt_wire.hpp — the few MQTT 3.1.1 packets the load generator and its sink need.
// Pure functions over byte spans (no I/O, no exceptions). Not the broker's codec: it trusts
// well-formed peers a little more and covers only v3.1.1 (adapters/mqtt/ is the real one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace sb::bench {

// MQTT 3.1.1 §2.2.1 control packet types.
enum class mqtt_type : std::uint8_t {
    connect = 1, connack, publish, puback, pubrec, pubrel, pubcomp,
    subscribe, suback, unsubscribe, unsuback, pingreq, pingresp, disconnect
};

// A packet as it arrived: the fixed header's type and flags, and a view of its body (the
// variable header and payload) into the input.
struct mqtt_packet {
    mqtt_type type{};
    std::uint8_t flags = 0;
    std::span<const std::uint8_t> body;
};

struct mqtt_decoded {
    mqtt_packet packet;
    std::size_t consumed = 0;
};
struct mqtt_need_more {};
struct mqtt_malformed {
    std::string_view why;  // static text
};
using mqtt_decode_result = std::variant<mqtt_decoded, mqtt_need_more, mqtt_malformed>;

// Splits one packet off the front of `in` (§2.2.3 remaining length, at most 4 bytes).
mqtt_decode_result mqtt_decode(std::span<const std::uint8_t> in, std::size_t max_packet_bytes) noexcept;

struct mqtt_publish_view {
    std::string_view topic;
    std::uint8_t qos = 0;
    bool retain = false;
    bool dup = false;
    std::uint16_t packet_id = 0;  // 0 for QoS 0
    std::span<const std::uint8_t> payload;
};
std::optional<mqtt_publish_view> mqtt_parse_publish(const mqtt_packet& p) noexcept;

// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK: the packet identifier (first two bytes).
std::optional<std::uint16_t> mqtt_parse_packet_id(const mqtt_packet& p) noexcept;

// CONNACK return code (§3.2.2.3: 0 accepted, 1..5 refused).
std::optional<std::uint8_t> mqtt_parse_connack(const mqtt_packet& p) noexcept;

// SUBACK: the return code of the first topic filter (0..2 granted QoS, 0x80 failure).
std::optional<std::uint8_t> mqtt_parse_suback(const mqtt_packet& p) noexcept;

// SUBACK of a SUBSCRIBE with several filters: its packet identifier and every return code.
struct mqtt_suback_view {
    std::uint16_t packet_id = 0;
    std::span<const std::uint8_t> codes;
};
std::optional<mqtt_suback_view> mqtt_parse_suback_all(const mqtt_packet& p) noexcept;

struct mqtt_connect_view {
    std::string_view client_id;
    std::uint16_t keepalive_s = 0;
    bool clean_session = false;
};
std::optional<mqtt_connect_view> mqtt_parse_connect(const mqtt_packet& p) noexcept;

struct mqtt_subscribe_view {
    std::uint16_t packet_id = 0;
    std::string_view filter;  // the first filter only: the bench subscribes to one at a time
    std::uint8_t qos = 0;
};
std::optional<mqtt_subscribe_view> mqtt_parse_subscribe(const mqtt_packet& p) noexcept;

// Encoders append to `out` and never fail.
void mqtt_encode_connect(std::string& out, std::string_view client_id, std::uint16_t keepalive_s,
                         bool clean_session, std::string_view user = {},
                         std::string_view password = {});
void mqtt_encode_connack(std::string& out, std::uint8_t return_code);
// Fixed header + topic (+ packet id) for a payload of `payload_bytes` that the caller appends
// next, so a producer can write its stamp straight into the output buffer.
void mqtt_encode_publish_header(std::string& out, std::string_view topic, std::uint8_t qos,
                                std::uint16_t packet_id, std::size_t payload_bytes);
void mqtt_encode_publish(std::string& out, std::string_view topic, std::uint8_t qos,
                         std::uint16_t packet_id, std::span<const std::uint8_t> payload);
// PUBACK, PUBREC, PUBREL (flags 0b0010, §3.6.1), PUBCOMP, UNSUBACK.
void mqtt_encode_ack(std::string& out, mqtt_type type, std::uint16_t packet_id);
void mqtt_encode_subscribe(std::string& out, std::uint16_t packet_id, std::string_view filter,
                           std::uint8_t qos);
// One SUBSCRIBE carrying every filter of `filters`, each at `qos`.
void mqtt_encode_subscribe(std::string& out, std::uint16_t packet_id, std::span<const std::string> filters,
                           std::uint8_t qos);
void mqtt_encode_suback(std::string& out, std::uint16_t packet_id, std::uint8_t return_code);
void mqtt_encode_pingreq(std::string& out);
void mqtt_encode_pingresp(std::string& out);
void mqtt_encode_disconnect(std::string& out);

}  // namespace sb::bench
