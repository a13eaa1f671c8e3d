// adapters/stomp/codec.hpp — STOMP 1.0/1.1/1.2 frame decoder and encoder.
// Pure functions over byte spans: no I/O, no logging, no exceptions; decode allocates only
// when the caller's reused `frame::headers` / `scratch` must grow past their capacity.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "adapters/stomp/frames.hpp"

namespace sb::stomp {

// Filled from the listener's config; every check happens before the bytes are copied.
struct limits {
    std::size_t max_frame_bytes = 16 * 1024 * 1024;  // whole frame: command, headers, body, NUL
    std::size_t max_headers = 1000;
    std::size_t max_header_bytes = 10240;  // one header line (name:value, escaped form, no EOL)
};

// Total buffered bytes needed before decode can progress; 0 = unknown, call again with more.
// Exact only once the headers are complete and carry a content-length.
struct need_more {
    std::size_t at_least;
};

// `message` is static text that the session sends as the ERROR frame's `message` header:
// "unknown command", "malformed header", "too many headers", "header too long",
// "invalid escape", "bad content-length", "frame too large".
struct decode_error {
    std::string_view message;
};

// One or more bare EOLs (LF or CRLF) between frames (STOMP 1.2 §Heart-beating).
struct heartbeat {
    std::size_t consumed;
};

// `out` holds the frame; `consumed` includes the NUL but not the EOLs that may follow it
// (those come back as a heartbeat on the next call).
struct decoded {
    std::size_t consumed;
};

using decode_result = std::variant<decoded, need_more, heartbeat, decode_error>;

// Decodes one frame from the start of `in`; call it on the connection's worker, as often as
// bytes arrive. `out` and `scratch` are owned by the caller and reused between calls (their
// capacity is kept). On `decoded`, header views point into `in` or into `scratch` (unescaped
// text) and `body` points into `in`: all valid until `in`'s bytes are consumed or decode is
// called again. On any other result `out` holds nothing meaningful.
//
// Frames are accepted with LF or CRLF line ends in every version. Header escapes (\\ \n \c \r)
// are decoded for 1.1 and 1.2 except in CONNECT, STOMP and CONNECTED frames (STOMP 1.2
// §Value Encoding). Each call starts from the beginning of `in`, so a caller that feeds bytes
// one at a time pays a rescan; read in chunks and use need_more::at_least when it is known.
decode_result decode(std::span<const std::uint8_t> in, const limits& lim, version v,
                     frame& out, std::string& scratch) noexcept;

// Encoders append to the caller-owned `out` and never fail. They do not validate: a 1.0 or
// unescaped header whose name holds ':' or LF, or whose value holds LF or ends in CR, cannot
// be represented and comes out broken; a body holding NUL needs a content-length header.

// "SEND\n"
void encode_command(std::string& out, command c);

// "name:value\n". With escape == true and v >= 1.1, '\\', LF, ':' and CR are written as
// \\ \n \c \r (CR is a 1.2 escape; we use it in 1.1 too, because a raw CR at the end of a value
// would read back as part of a CRLF line end, and our decoder accepts \r in 1.1).
void encode_header(std::string& out, std::string_view name, std::string_view value, version v,
                   bool escape);

// "\n" + body + "\0"
void encode_body(std::string& out, std::span<const std::uint8_t> body);

// The whole frame. Escapes headers unless cmd is CONNECT, STOMP or CONNECTED. Does not add
// content-length: callers that send a body with NULs put it in `f.headers`.
void encode(std::string& out, const frame& f, version v);

}  // namespace sb::stomp
