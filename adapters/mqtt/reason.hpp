// adapters/mqtt/reason.hpp — MQTT 5 reason codes (§2.4) and the 3.1/3.1.1 CONNACK return codes.
// The decoder reports every error as an MQTT 5 reason; a v3 session turns it into a close.
#pragma once

#include <cstdint>
#include <string_view>

namespace sb::mqtt {

// MQTT 5 §2.4. Several names share a value, as in the spec (0x00 is "Success" in a PUBACK,
// "Normal disconnection" in a DISCONNECT and "Granted QoS 0" in a SUBACK).
enum class reason : std::uint8_t {
    success = 0x00,
    normal_disconnection = 0x00,
    granted_qos_0 = 0x00,
    granted_qos_1 = 0x01,
    granted_qos_2 = 0x02,
    disconnect_with_will_message = 0x04,
    no_matching_subscribers = 0x10,
    no_subscription_existed = 0x11,
    continue_authentication = 0x18,
    re_authenticate = 0x19,
    unspecified_error = 0x80,
    malformed_packet = 0x81,
    protocol_error = 0x82,
    implementation_specific_error = 0x83,
    unsupported_protocol_version = 0x84,
    client_identifier_not_valid = 0x85,
    bad_user_name_or_password = 0x86,
    not_authorized = 0x87,
    server_unavailable = 0x88,
    server_busy = 0x89,
    banned = 0x8A,
    server_shutting_down = 0x8B,
    bad_authentication_method = 0x8C,
    keep_alive_timeout = 0x8D,
    session_taken_over = 0x8E,
    topic_filter_invalid = 0x8F,
    topic_name_invalid = 0x90,
    packet_identifier_in_use = 0x91,
    packet_identifier_not_found = 0x92,
    receive_maximum_exceeded = 0x93,
    topic_alias_invalid = 0x94,
    packet_too_large = 0x95,
    message_rate_too_high = 0x96,
    quota_exceeded = 0x97,
    administrative_action = 0x98,
    payload_format_invalid = 0x99,
    retain_not_supported = 0x9A,
    qos_not_supported = 0x9B,
    use_another_server = 0x9C,
    server_moved = 0x9D,
    shared_subscriptions_not_supported = 0x9E,
    connection_rate_exceeded = 0x9F,
    maximum_connect_time = 0xA0,
    subscription_identifiers_not_supported = 0xA1,
    wildcard_subscriptions_not_supported = 0xA2,
};

// MQTT 5 §2.4: "Reason Code values of 0x80 or greater indicate failure".
constexpr bool is_error(reason r) noexcept { return static_cast<std::uint8_t>(r) >= 0x80; }

// The snake_case name, for logs (`reason=malformed_packet`). A value shared by several names
// prints as the first: 0x00 is "success". An unknown value gives "".
constexpr std::string_view to_string(reason r) noexcept {
    switch (r) {
    case reason::success: return "success";
    case reason::granted_qos_1: return "granted_qos_1";
    case reason::granted_qos_2: return "granted_qos_2";
    case reason::disconnect_with_will_message: return "disconnect_with_will_message";
    case reason::no_matching_subscribers: return "no_matching_subscribers";
    case reason::no_subscription_existed: return "no_subscription_existed";
    case reason::continue_authentication: return "continue_authentication";
    case reason::re_authenticate: return "re_authenticate";
    case reason::unspecified_error: return "unspecified_error";
    case reason::malformed_packet: return "malformed_packet";
    case reason::protocol_error: return "protocol_error";
    case reason::implementation_specific_error: return "implementation_specific_error";
    case reason::unsupported_protocol_version: return "unsupported_protocol_version";
    case reason::client_identifier_not_valid: return "client_identifier_not_valid";
    case reason::bad_user_name_or_password: return "bad_user_name_or_password";
    case reason::not_authorized: return "not_authorized";
    case reason::server_unavailable: return "server_unavailable";
    case reason::server_busy: return "server_busy";
    case reason::banned: return "banned";
    case reason::server_shutting_down: return "server_shutting_down";
    case reason::bad_authentication_method: return "bad_authentication_method";
    case reason::keep_alive_timeout: return "keep_alive_timeout";
    case reason::session_taken_over: return "session_taken_over";
    case reason::topic_filter_invalid: return "topic_filter_invalid";
    case reason::topic_name_invalid: return "topic_name_invalid";
    case reason::packet_identifier_in_use: return "packet_identifier_in_use";
    case reason::packet_identifier_not_found: return "packet_identifier_not_found";
    case reason::receive_maximum_exceeded: return "receive_maximum_exceeded";
    case reason::topic_alias_invalid: return "topic_alias_invalid";
    case reason::packet_too_large: return "packet_too_large";
    case reason::message_rate_too_high: return "message_rate_too_high";
    case reason::quota_exceeded: return "quota_exceeded";
    case reason::administrative_action: return "administrative_action";
    case reason::payload_format_invalid: return "payload_format_invalid";
    case reason::retain_not_supported: return "retain_not_supported";
    case reason::qos_not_supported: return "qos_not_supported";
    case reason::use_another_server: return "use_another_server";
    case reason::server_moved: return "server_moved";
    case reason::shared_subscriptions_not_supported: return "shared_subscriptions_not_supported";
    case reason::connection_rate_exceeded: return "connection_rate_exceeded";
    case reason::maximum_connect_time: return "maximum_connect_time";
    case reason::subscription_identifiers_not_supported:
        return "subscription_identifiers_not_supported";
    case reason::wildcard_subscriptions_not_supported:
        return "wildcard_subscriptions_not_supported";
    }
    return {};
}

// MQTT 3.1.1 §3.2.2.3 (the same values in 3.1): the only codes a v3 server can answer with.
enum class connack_v3 : std::uint8_t {
    accepted = 0,
    unacceptable_protocol_version = 1,
    identifier_rejected = 2,
    server_unavailable = 3,
    bad_user_name_or_password = 4,
    not_authorized = 5,
};

constexpr std::string_view to_string(connack_v3 c) noexcept {
    switch (c) {
    case connack_v3::accepted: return "accepted";
    case connack_v3::unacceptable_protocol_version: return "unacceptable_protocol_version";
    case connack_v3::identifier_rejected: return "identifier_rejected";
    case connack_v3::server_unavailable: return "server_unavailable";
    case connack_v3::bad_user_name_or_password: return "bad_user_name_or_password";
    case connack_v3::not_authorized: return "not_authorized";
    }
    return {};
}

// The v3 CONNACK a session sends for a CONNECT refused with a v5 reason. Reasons with no v3
// counterpart (malformed packet, banned, ...) become server_unavailable; a v3 server would
// usually just close for those.
constexpr connack_v3 to_connack_v3(reason r) noexcept {
    switch (r) {
    case reason::success: return connack_v3::accepted;
    case reason::unsupported_protocol_version: return connack_v3::unacceptable_protocol_version;
    case reason::client_identifier_not_valid: return connack_v3::identifier_rejected;
    case reason::bad_user_name_or_password: return connack_v3::bad_user_name_or_password;
    case reason::not_authorized: return connack_v3::not_authorized;
    default: return connack_v3::server_unavailable;
    }
}

}  // namespace sb::mqtt
