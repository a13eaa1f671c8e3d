// adapters/mqtt/frames.hpp — MQTT 3.1/3.1.1/5.0 control packets as plain values.
// A decoded packet holds views into the read buffer: it is valid until the caller consumes
// those bytes. Whatever must outlive the buffer is copied once, by the session's mapping.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "adapters/mqtt/reason.hpp"

namespace sb::mqtt {

// The CONNECT protocol level (MQTT 5 §3.1.2.2): 3 is MQTT 3.1 ("MQIsdp"), 4 is 3.1.1, 5 is 5.0.
enum class version : std::uint8_t { v3_1 = 3, v3_1_1 = 4, v5 = 5 };

// MQTT 5 §2.1.2, the high nibble of the first byte. Same order as the `packet` variant:
// packet_type(p.index() + 1) is the type of p.
enum class packet_type : std::uint8_t {
    connect = 1, connack, publish, puback, pubrec, pubrel, pubcomp,
    subscribe, suback, unsubscribe, unsuback, pingreq, pingresp, disconnect, auth
};

constexpr std::string_view to_string(packet_type t) noexcept {
    switch (t) {
    case packet_type::connect: return "CONNECT";
    case packet_type::connack: return "CONNACK";
    case packet_type::publish: return "PUBLISH";
    case packet_type::puback: return "PUBACK";
    case packet_type::pubrec: return "PUBREC";
    case packet_type::pubrel: return "PUBREL";
    case packet_type::pubcomp: return "PUBCOMP";
    case packet_type::subscribe: return "SUBSCRIBE";
    case packet_type::suback: return "SUBACK";
    case packet_type::unsubscribe: return "UNSUBSCRIBE";
    case packet_type::unsuback: return "UNSUBACK";
    case packet_type::pingreq: return "PINGREQ";
    case packet_type::pingresp: return "PINGRESP";
    case packet_type::disconnect: return "DISCONNECT";
    case packet_type::auth: return "AUTH";
    }
    return {};
}

// MQTT 5 §2.2.2.2, the property identifiers.
enum class property_id : std::uint8_t {
    payload_format_indicator = 0x01,
    message_expiry_interval = 0x02,
    content_type = 0x03,
    response_topic = 0x08,
    correlation_data = 0x09,
    subscription_identifier = 0x0B,
    session_expiry_interval = 0x11,
    assigned_client_identifier = 0x12,
    server_keep_alive = 0x13,
    authentication_method = 0x15,
    authentication_data = 0x16,
    request_problem_information = 0x17,
    will_delay_interval = 0x18,
    request_response_information = 0x19,
    response_information = 0x1A,
    server_reference = 0x1C,
    reason_string = 0x1F,
    receive_maximum = 0x21,
    topic_alias_maximum = 0x22,
    topic_alias = 0x23,
    maximum_qos = 0x24,
    retain_available = 0x25,
    user_property = 0x26,
    maximum_packet_size = 0x27,
    wildcard_subscription_available = 0x28,
    subscription_identifier_available = 0x29,
    shared_subscription_available = 0x2A,
};

// Byte-wise equality of two views (spans compare by address otherwise).
constexpr bool same_bytes(std::span<const std::uint8_t> a,
                          std::span<const std::uint8_t> b) noexcept {
    return std::ranges::equal(a, b);
}
constexpr bool same_bytes(const std::optional<std::span<const std::uint8_t>>& a,
                          const std::optional<std::span<const std::uint8_t>>& b) noexcept {
    return a.has_value() == b.has_value() && (!a || same_bytes(*a, *b));
}

struct user_property {
    std::string_view name;
    std::string_view value;
    bool operator==(const user_property&) const = default;
};

// MQTT 5 §2.2.2: every property, empty when absent. Only v5 packets carry them; the decoder
// accepts each one only in the packets the table of §2.2.2.2 allows. Fields are in property
// identifier order.
struct properties {
    std::optional<std::uint8_t> payload_format_indicator;               // 0x01: 0 bytes, 1 UTF-8
    std::optional<std::uint32_t> message_expiry_interval;               // 0x02: seconds
    std::optional<std::string_view> content_type;                       // 0x03
    std::optional<std::string_view> response_topic;                     // 0x08
    std::optional<std::span<const std::uint8_t>> correlation_data;      // 0x09
    std::vector<std::uint32_t> subscription_identifiers;                // 0x0B: several in PUBLISH
    std::optional<std::uint32_t> session_expiry_interval;               // 0x11: seconds
    std::optional<std::string_view> assigned_client_identifier;         // 0x12
    std::optional<std::uint16_t> server_keep_alive;                     // 0x13: seconds
    std::optional<std::string_view> authentication_method;              // 0x15
    std::optional<std::span<const std::uint8_t>> authentication_data;   // 0x16
    std::optional<bool> request_problem_information;                    // 0x17
    std::optional<std::uint32_t> will_delay_interval;                   // 0x18: seconds
    std::optional<bool> request_response_information;                   // 0x19
    std::optional<std::string_view> response_information;               // 0x1A
    std::optional<std::string_view> server_reference;                   // 0x1C
    std::optional<std::string_view> reason_string;                      // 0x1F
    std::optional<std::uint16_t> receive_maximum;                       // 0x21: never 0
    std::optional<std::uint16_t> topic_alias_maximum;                   // 0x22
    std::optional<std::uint16_t> topic_alias;                           // 0x23: never 0
    std::optional<std::uint8_t> maximum_qos;                            // 0x24: 0 or 1
    std::optional<bool> retain_available;                               // 0x25
    std::vector<user_property> user_properties;                         // 0x26: in wire order
    std::optional<std::uint32_t> maximum_packet_size;                   // 0x27: never 0
    std::optional<bool> wildcard_subscription_available;                // 0x28
    std::optional<bool> subscription_identifier_available;              // 0x29
    std::optional<bool> shared_subscription_available;                  // 0x2A

    bool empty() const noexcept {
        return !payload_format_indicator && !message_expiry_interval && !content_type &&
               !response_topic && !correlation_data && subscription_identifiers.empty() &&
               !session_expiry_interval && !assigned_client_identifier && !server_keep_alive &&
               !authentication_method && !authentication_data && !request_problem_information &&
               !will_delay_interval && !request_response_information && !response_information &&
               !server_reference && !reason_string && !receive_maximum && !topic_alias_maximum &&
               !topic_alias && !maximum_qos && !retain_available && user_properties.empty() &&
               !maximum_packet_size && !wildcard_subscription_available &&
               !subscription_identifier_available && !shared_subscription_available;
    }

    // Structural: binary properties compare by content.
    friend bool operator==(const properties& a, const properties& b) noexcept {
        return a.payload_format_indicator == b.payload_format_indicator &&
               a.message_expiry_interval == b.message_expiry_interval &&
               a.content_type == b.content_type && a.response_topic == b.response_topic &&
               same_bytes(a.correlation_data, b.correlation_data) &&
               a.subscription_identifiers == b.subscription_identifiers &&
               a.session_expiry_interval == b.session_expiry_interval &&
               a.assigned_client_identifier == b.assigned_client_identifier &&
               a.server_keep_alive == b.server_keep_alive &&
               a.authentication_method == b.authentication_method &&
               same_bytes(a.authentication_data, b.authentication_data) &&
               a.request_problem_information == b.request_problem_information &&
               a.will_delay_interval == b.will_delay_interval &&
               a.request_response_information == b.request_response_information &&
               a.response_information == b.response_information &&
               a.server_reference == b.server_reference && a.reason_string == b.reason_string &&
               a.receive_maximum == b.receive_maximum &&
               a.topic_alias_maximum == b.topic_alias_maximum && a.topic_alias == b.topic_alias &&
               a.maximum_qos == b.maximum_qos && a.retain_available == b.retain_available &&
               a.user_properties == b.user_properties &&
               a.maximum_packet_size == b.maximum_packet_size &&
               a.wildcard_subscription_available == b.wildcard_subscription_available &&
               a.subscription_identifier_available == b.subscription_identifier_available &&
               a.shared_subscription_available == b.shared_subscription_available;
    }
};

// The will of a CONNECT (MQTT 5 §3.1.2.5, §3.1.3.2-4). `props` are the will properties.
struct will {
    std::uint8_t qos = 0;
    bool retain = false;
    properties props;
    std::string_view topic;
    std::span<const std::uint8_t> payload;

    friend bool operator==(const will& a, const will& b) noexcept {
        return a.qos == b.qos && a.retain == b.retain && a.props == b.props &&
               a.topic == b.topic && same_bytes(a.payload, b.payload);
    }
};

// `ver` comes from the protocol level. `protocol_name` is the name as sent ("MQTT" or
// "MQIsdp"); the encoder writes it when set and the canonical name for `ver` when empty.
struct connect {
    version ver = version::v3_1_1;
    std::string_view protocol_name;
    bool clean_start = true;  // "clean session" before v5
    std::uint16_t keep_alive = 0;
    std::string_view client_id;
    properties props;
    std::optional<will> will_msg;
    std::optional<std::string_view> username;
    std::optional<std::span<const std::uint8_t>> password;

    friend bool operator==(const connect& a, const connect& b) noexcept {
        return a.ver == b.ver && a.protocol_name == b.protocol_name &&
               a.clean_start == b.clean_start && a.keep_alive == b.keep_alive &&
               a.client_id == b.client_id && a.props == b.props && a.will_msg == b.will_msg &&
               a.username == b.username && same_bytes(a.password, b.password);
    }
};

// `code` is a `reason` in v5 and a `connack_v3` in 3.1/3.1.1.
struct connack {
    bool session_present = false;
    std::uint8_t code = 0;
    properties props;
    bool operator==(const connack&) const = default;
};

// `topic` may be empty in v5 only when props.topic_alias is set. `packet_id` is 0 for QoS 0.
struct publish {
    bool dup = false;
    std::uint8_t qos = 0;
    bool retain = false;
    std::string_view topic;
    std::uint16_t packet_id = 0;
    properties props;
    std::span<const std::uint8_t> payload;

    friend bool operator==(const publish& a, const publish& b) noexcept {
        return a.dup == b.dup && a.qos == b.qos && a.retain == b.retain && a.topic == b.topic &&
               a.packet_id == b.packet_id && a.props == b.props && same_bytes(a.payload, b.payload);
    }
};

// PUBACK/PUBREC/PUBREL/PUBCOMP; `code` and `props` exist on the wire in v5 only.
struct ack_base {
    std::uint16_t packet_id = 0;
    std::uint8_t code = 0;
    properties props;
    bool operator==(const ack_base&) const = default;
};
struct puback : ack_base {};
struct pubrec : ack_base {};
struct pubrel : ack_base {};
struct pubcomp : ack_base {};

// One SUBSCRIBE entry; no_local, retain_as_published and retain_handling are v5 only.
struct subscription {
    std::string_view filter;
    std::uint8_t qos = 0;
    bool no_local = false;
    bool retain_as_published = false;
    std::uint8_t retain_handling = 0;
    bool operator==(const subscription&) const = default;
};

struct subscribe {
    std::uint16_t packet_id = 0;
    properties props;
    std::vector<subscription> topics;
    bool operator==(const subscribe&) const = default;
};

// One code per topic: a `reason` in v5; 0, 1, 2 or 0x80 in v3.
struct suback {
    std::uint16_t packet_id = 0;
    properties props;
    std::vector<std::uint8_t> codes;
    bool operator==(const suback&) const = default;
};

struct unsubscribe {
    std::uint16_t packet_id = 0;
    properties props;
    std::vector<std::string_view> filters;
    bool operator==(const unsubscribe&) const = default;
};

// `codes` is v5 only (v3 UNSUBACK has none).
struct unsuback {
    std::uint16_t packet_id = 0;
    properties props;
    std::vector<std::uint8_t> codes;
    bool operator==(const unsuback&) const = default;
};

struct pingreq {
    bool operator==(const pingreq&) const = default;
};
struct pingresp {
    bool operator==(const pingresp&) const = default;
};

// `code` and `props` are v5 only.
struct disconnect {
    std::uint8_t code = 0;
    properties props;
    bool operator==(const disconnect&) const = default;
};

// v5 only.
struct auth {
    std::uint8_t code = 0;
    properties props;
    bool operator==(const auth&) const = default;
};

using packet = std::variant<connect, connack, publish, puback, pubrec, pubrel, pubcomp, subscribe,
                            suback, unsubscribe, unsuback, pingreq, pingresp, disconnect, auth>;

constexpr packet_type type_of(const packet& p) noexcept {
    return static_cast<packet_type>(p.index() + 1);
}

}  // namespace sb::mqtt
