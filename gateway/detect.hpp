// gateway/detect.hpp — which protocol a connection speaks, from its first bytes.
//
// Every supported client speaks first, and each protocol's opening is distinctive (each
// protocol's detector is its descriptor's in the adapter registry, gateway/registry.hpp):
//   MQTT      0x10 (CONNECT packet type)
//   STOMP     "CONNECT" or "STOMP" followed by an end of line (after optional heart-beat EOLs)
//   AMQP 1.0  "AMQP" + protocol id (0 plain, 2 TLS, 3 SASL) + 1.0.0
//   OpenWire  4-byte size, type 1 (WireFormatInfo), magic "ActiveMQ"
//   HTTP      a request method and a space ("GET /mqtt HTTP/1.1": WebSockets start here)
//   TLS       0x16 0x03 (handshake record): terminated first, then detection starts over
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "gateway/config.hpp"

namespace sb::gateway {

enum class sniff_result : std::uint8_t { need_more, known, unknown, tls };

struct detection {
    sniff_result result = sniff_result::need_more;
    wire proto = wire::stomp;   // when result == known
};

// The bytes that decide are never more than this many.
inline constexpr std::size_t detect_max_bytes = 16;

// `head` is everything received so far (any length). Pure; never reads past head.
detection detect(std::span<const std::byte> head) noexcept;

std::string_view wire_name(wire w) noexcept;

// What a client of `proto` is told when no server is available (empty: just close); the
// protocol's descriptor writes it with its codec. `head` is
// what it sent so far. An MQTT client gets the CONNACK "server unavailable" of its CONNECT's
// version (0x88 with properties for MQTT 5, return code 3 before), a STOMP client an ERROR
// frame: nullopt while `head` does not hold the whole CONNECT yet (read more and ask again), so
// nothing is left unread when the connection closes; empty (just close) for a malformed MQTT one.
std::optional<std::string> refusal_for(std::optional<wire> proto, std::string_view head);

// The most a refusal reads of a CONNECT; a longer MQTT one is closed without a CONNACK, a
// longer STOMP one gets its ERROR at once.
inline constexpr std::size_t refusal_max_connect_bytes = 64 * 1024;

}  // namespace sb::gateway
