// gateway/ws_transport.hpp — the WebSocket layer of a transport stack (RFC 6455, server side):
// net::transport over a Boost.Beast websocket stream that wraps any inner net::transport (TCP,
// TLS, the bytes read while detecting), so that kernel sessions and relays run unchanged on it.
// Beast stays in the .cpp (compiled once: BOOST_BEAST_SEPARATE_COMPILATION, gateway/asio_impl.cpp).
//
// The byte stream is the concatenation of the client's data messages: a protocol packet may be
// split across WebSocket frames or messages, several may share one, empty ones are skipped
// (MQTT-6.0.0-2, stompjs' split frames). Every write goes out as one binary message: MQTT and
// AMQP require binary (MQTT-6.0.0-1), and STOMP bodies may be any bytes, which a text message
// could not carry (stompjs reads binary messages too). Text messages from the client are
// accepted (their UTF-8 is checked: invalid → close 1007) except for MQTT and AMQP (close 1003).
// Pings are answered, a client's close is echoed; the layer's own shutdown_send sends close
// 1000; protocol errors close with 1002, a message over max_message_bytes with 1009.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/config.hpp"
#include "gateway/transport.hpp"

namespace sb::gateway {

// What the handshake answers a request with, decided from its target, its
// Sec-WebSocket-Protocol offers and its Origin (pure: unit-tested alone).
//   - The path (target without its query) must be one of cfg.paths: otherwise 404.
//   - With allowed_origins set, an Origin header must be one of them (case-insensitively):
//     otherwise 403. A request without Origin (not a browser) is let through.
//   - Offered subprotocols known to the registry (websocket_subprotocols) and allowed by the
//     path (its protocol's, or every protocol's for an `auto` path): the protocol of the first
//     such offer wins, and of that protocol's names offered the one the registry lists first
//     (v12.stomp over v11.stomp over v10.stomp; mqtt over mqttv3.1); it is echoed.
//   - None offered: the path's protocol, nothing echoed (RFC 6455 §4.2.2); an `auto` path
//     leaves the protocol to detection on the first bytes inside the WebSocket.
//   - Offers but none usable: 400, or with fail_if_no_subprotocol false as if none offered.
struct ws_decision {
    int status = 101;               // 101: upgrade; otherwise the HTTP status of the refusal
    std::string why;                // for the log and the refusal's body (status != 101)
    std::optional<wire> proto;      // 101: the protocol; nullopt: detect from the first bytes
    std::string subprotocol;        // 101: echoed in Sec-WebSocket-Protocol; empty: none
};
ws_decision ws_negotiate(const websocket_config& cfg, std::string_view target, std::string_view offered,
                         std::optional<std::string_view> origin);

class ws_transport : public net::transport {
public:
    // Reads the HTTP request from the inner transport and answers it: 101 and the WebSocket
    // from then on, or an HTTP refusal after which done gets an error (the request was not an
    // upgrade: 404 when `plain_http_404`, otherwise 426; the handshake's own checks — method,
    // version, Host, key, Sec-WebSocket-Version — are Beast's: 400, or 426 for a version not
    // 13; garbage: 400). A refused client's output is drained (bounded) after the answer so
    // that it reads the status rather than a reset; the caller closes after done. `owner`, as
    // for tls_transport::async_handshake, is held while the inner transport has an operation
    // pending. done(ec, proto) on the transport's executor: proto as ws_negotiate decided.
    virtual void async_accept(std::shared_ptr<void> owner,
                              std::function<void(net::error_code, std::optional<wire>)> done) = 0;
    // The protocol now running on it: MQTT and AMQP accept binary messages only.
    virtual void set_protocol(wire w) noexcept = 0;
    // The request's target and subprotocol once accepted (for the logs).
    virtual const std::string& target() const noexcept = 0;
    virtual const std::string& subprotocol() const noexcept = 0;
    // Why the handshake failed ("404 no WebSocket endpoint at /x"), after done got an error.
    virtual const std::string& refusal() const noexcept = 0;
};

// The server layer over `inner`, which it owns.
std::unique_ptr<ws_transport> make_ws_transport(std::unique_ptr<net::transport> inner, const websocket_config& cfg,
                                                bool plain_http_404);

}  // namespace sb::gateway
