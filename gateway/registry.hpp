// gateway/registry.hpp — the adapter registry: what the gateway knows of each protocol, one
// descriptor per protocol, so that nothing else in gateway/ names a protocol.
//
// A descriptor holds the protocol's pure parts, written with its adapter's codec where one
// exists (gateway/protocols/<name>.cpp): the first-bytes detector, the health-check
// conversation, the refusal a client is sent when no backend server is up, and the WebSocket
// subprotocols that carry it. Whether the kernel speaks it, and how its sessions are made, is
// the other half of the registry (gateway/kernel_adapters.hpp): that half needs the sessions
// and Asio, this one nothing but the codecs (the fuzzer links it alone).
//
// Why in gateway/ rather than adapters/<proto>/: a descriptor is the protocol as the *process*
// sees it (routes keys, check types, refusals on the relay path), while adapters/ stay free of
// the gateway's vocabulary and of Asio. Dependency direction: gateway -> adapters -> core.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "gateway/config.hpp"
#include "gateway/probe.hpp"

namespace sb::gateway {

// One detector's answer on everything received so far: `maybe` while the bytes are a prefix of
// the protocol's opening, then `yes` or `no` for good (more bytes never change a decision).
enum class sniff { no, maybe, yes };

struct protocol_descriptor {
    wire id;
    // The routes key (`routes: { amqp: ... }`), the check type's name, `proto=` in the logs.
    std::string_view name;
    // Pure; never reads past `head`; decides within detect_max_bytes (gateway/detect.hpp).
    sniff (*detect)(std::span<const std::byte> head) noexcept;
    // The health check `check: { type: <name> }`: a handshake written with the protocol's codec.
    const probe_conversation* check;
    // What a client of this protocol is told when no server can take it (refusal_for in
    // gateway/detect.hpp has the contract); null: the connection is just closed.
    std::optional<std::string> (*refusal)(std::string_view head);
    // Sec-WebSocket-Protocol names that carry this protocol (for the WebSocket transport).
    std::span<const std::string_view> websocket_subprotocols;
};

// Every protocol, in `wire` order (the index of a descriptor is its id).
std::span<const protocol_descriptor* const> protocols() noexcept;
const protocol_descriptor& protocol_of(wire w) noexcept;
// Null when no protocol has that name.
const protocol_descriptor* protocol_named(std::string_view name) noexcept;

// For detectors: compares what has arrived of `head` from `at` with `sig`.
sniff match_at(std::span<const std::byte> head, std::size_t at, std::string_view sig) noexcept;

}  // namespace sb::gateway
