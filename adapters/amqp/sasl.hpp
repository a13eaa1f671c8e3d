// adapters/amqp/sasl.hpp — the server side of AMQP 1.0's SASL layer (AMQP 1.0 §5.3), done here
// rather than by Proton so that credentials go to Switchboard's authenticator (asynchronous,
// core::auth_pool) and never to Cyrus SASL. Pure: bytes in, frames out; fuzzable.
//
// The exchange: the client sends the SASL header, we answer with the header and
// sasl-mechanisms; the client sends sasl-init (mechanism, initial response); we answer with
// sasl-outcome. Then the AMQP header follows and Proton takes over.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace sb::amqp::sasl {

inline constexpr std::string_view amqp_header{"AMQP\x00\x01\x00\x00", 8};
inline constexpr std::string_view sasl_header{"AMQP\x03\x01\x00\x00", 8};
// SASL frames are small: the largest we take (the minimum max-frame-size of the spec).
inline constexpr std::size_t max_frame = 512;
// An empty AMQP frame (a heart-beat, §2.4.5).
inline constexpr std::string_view empty_frame{"\x00\x00\x00\x08\x02\x00\x00\x00", 8};

// sasl-outcome codes.
enum class code : std::uint8_t { ok = 0, auth = 1, sys = 2, sys_perm = 3, sys_temp = 4 };

// Appends a sasl-mechanisms frame offering `mechanisms` (e.g. {"PLAIN", "ANONYMOUS"}).
void encode_mechanisms(std::string& out, std::span<const std::string_view> mechanisms);
// Appends a sasl-outcome frame.
void encode_outcome(std::string& out, code c);

struct init {
    std::string_view mechanism;
    std::string_view response;   // initial-response, empty when absent
};
struct need_more {
    std::size_t at_least;
};
struct frame_error {
    std::string_view message;   // static text
};
struct decoded {
    init value;
    std::size_t consumed;
};

// Decodes one SASL frame from the start of `in`: a sasl-init, or an error for anything else
// (another performative, a bad encoding, a frame over max_frame). Views point into `in`.
std::variant<decoded, need_more, frame_error> decode_init(std::span<const std::uint8_t> in);

// PLAIN's response "authzid NUL authcid NUL passwd" (RFC 4616): false when malformed.
bool parse_plain(std::string_view response, std::string_view& user, std::string_view& password) noexcept;

}  // namespace sb::amqp::sasl
