// adapters/stomp/frames.hpp — STOMP 1.0/1.1/1.2 frames as plain values.
// A decoded frame is a set of views into the read buffer (and the decoder's scratch string);
// it is valid until the caller consumes those bytes or decodes again. No I/O, no allocation.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace sb::stomp {

enum class version : std::uint8_t { v1_0, v1_1, v1_2 };

enum class command : std::uint8_t {
    connect, stomp, connected, send, subscribe, unsubscribe, ack, nack,
    begin, commit, abort, disconnect, message, receipt, error
};

// The command as it appears on the wire: "CONNECT", "SEND", ...
constexpr std::string_view to_string(command c) noexcept {
    switch (c) {
    case command::connect: return "CONNECT";
    case command::stomp: return "STOMP";
    case command::connected: return "CONNECTED";
    case command::send: return "SEND";
    case command::subscribe: return "SUBSCRIBE";
    case command::unsubscribe: return "UNSUBSCRIBE";
    case command::ack: return "ACK";
    case command::nack: return "NACK";
    case command::begin: return "BEGIN";
    case command::commit: return "COMMIT";
    case command::abort: return "ABORT";
    case command::disconnect: return "DISCONNECT";
    case command::message: return "MESSAGE";
    case command::receipt: return "RECEIPT";
    case command::error: return "ERROR";
    }
    return {};
}

// Exact, case-sensitive match of a command line (without its EOL). STOMP 1.2 §Augmented BNF:
// commands are upper case; "send" or "SEND " is not a command.
constexpr std::optional<command> parse_command(std::string_view s) noexcept {
    // Dispatch on the first letter so the hot path does at most three comparisons.
    auto is = [s](command c) { return s == to_string(c); };
    if (s.empty()) return std::nullopt;
    switch (s[0]) {
    case 'A':
        if (is(command::ack)) return command::ack;
        if (is(command::abort)) return command::abort;
        break;
    case 'B':
        if (is(command::begin)) return command::begin;
        break;
    case 'C':
        if (is(command::connect)) return command::connect;
        if (is(command::connected)) return command::connected;
        if (is(command::commit)) return command::commit;
        break;
    case 'D':
        if (is(command::disconnect)) return command::disconnect;
        break;
    case 'E':
        if (is(command::error)) return command::error;
        break;
    case 'M':
        if (is(command::message)) return command::message;
        break;
    case 'N':
        if (is(command::nack)) return command::nack;
        break;
    case 'R':
        if (is(command::receipt)) return command::receipt;
        break;
    case 'S':
        if (is(command::send)) return command::send;
        if (is(command::subscribe)) return command::subscribe;
        if (is(command::stomp)) return command::stomp;
        break;
    case 'U':
        if (is(command::unsubscribe)) return command::unsubscribe;
        break;
    default:
        break;
    }
    return std::nullopt;
}

// One header with its decoded (unescaped) name and value.
struct header {
    std::string_view name;
    std::string_view value;
};

struct frame {
    command cmd{};
    std::vector<header> headers;         // in wire order, repeated names kept
    std::span<const std::uint8_t> body;  // view into the input
    bool has_content_length = false;

    // STOMP 1.2 §Repeated Header Entries: only the first occurrence is used.
    std::optional<std::string_view> get(std::string_view name) const noexcept {
        for (const header& h : headers)
            if (h.name == name) return h.value;
        return std::nullopt;
    }
};

}  // namespace sb::stomp
