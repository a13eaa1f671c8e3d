// gateway/relay.hpp — a client connection relayed to a backend server, byte for byte.
//
// The server is chosen by the backend's balance (backend::pick); a failed or timed-out connect
// tries the next one (`retries`). Once connected: the optional PROXY protocol header, the bytes
// read while detecting the protocol, then both directions pumped with back-pressure (nothing is
// read from one side until the other took what came before). Between plain sockets small reads
// go through the worker's scratch buffer (recv + send), and a stream whose reads fill it moves
// with splice(2) through a pipe, made then, so bulk payload never enters user space (HAProxy's
// splice-auto); a client behind a layer (TLS) goes through a buffer, reading and writing the top
// of its stack. Half-closes are passed on; the relay ends when both directions have, or at the first
// error, or when its server is declared down (the client reconnects and lands elsewhere).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <boost/asio/ip/tcp.hpp>

#include "gateway/backend.hpp"
#include "gateway/config.hpp"
#include "gateway/tcp_transport.hpp"

namespace sb::gateway {

// Creates the relay (not yet started). `proto`: the detected protocol, when known, for a
// refusal the client understands (MQTT CONNACK "server unavailable", STOMP ERROR) when no
// server can take the connection.
// `client`: the connection's transport stack; its bytes are spliced when the stack is plain.
std::shared_ptr<net::session> make_relay(transport_stack client, std::string head,
                                         std::shared_ptr<backend> b, std::optional<wire> proto, std::uint64_t conn);

// The PROXY protocol header (v1 text or v2 binary) announcing `client` → `local`.
std::string proxy_header(proxy_protocol v, const boost::asio::ip::tcp::endpoint& client,
                         const boost::asio::ip::tcp::endpoint& local);

}  // namespace sb::gateway
