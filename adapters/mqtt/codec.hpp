// adapters/mqtt/codec.hpp — MQTT 3.1/3.1.1/5.0 packet decoder and encoder.
// Pure functions over byte spans: no I/O, no logging, no exceptions. Decoding allocates only
// for the lists a packet carries (user properties, subscription identifiers, SUBSCRIBE and
// UNSUBSCRIBE entries, SUBACK/UNSUBACK codes): a PUBLISH without user properties allocates
// nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "adapters/mqtt/frames.hpp"
#include "adapters/mqtt/reason.hpp"

namespace sb::mqtt {

// Filled from the listener's config; each is checked before the bytes it covers are copied
// or buffered. A packet is bounded by its size in bytes, as in MQTT and Mosquitto: the counts
// are unlimited unless an embedder sets them (a CONNECT with 5,000 user properties is valid).
struct limits {
    std::size_t max_packet_size = 1 << 20;  // whole packet, fixed header included
    std::size_t max_properties = std::numeric_limits<std::size_t>::max();  // user properties + subscription ids, per packet
    std::size_t max_topics = std::numeric_limits<std::size_t>::max();      // entries per SUBSCRIBE / UNSUBSCRIBE
};

// The total number of buffered bytes decode needs before it can progress: exact once the
// fixed header is complete, else one more than was buffered.
struct need_more {
    std::size_t at_least;
};

// `code` is the MQTT 5 reason a v5 session sends in its DISCONNECT (or CONNACK, for a CONNECT):
// malformed_packet, protocol_error, packet_too_large or unsupported_protocol_version. A v3
// session closes the connection (or, for unsupported_protocol_version, answers CONNACK 0x01).
// `detail` is static text for the log: "QoS 3", "invalid UTF-8", "duplicate property", ...
struct decode_error {
    reason code;
    std::string_view detail;
};

// `frame` holds views into the input; `consumed` is the whole packet, fixed header included.
struct decoded {
    packet frame;
    std::size_t consumed;
};

using decode_result = std::variant<decoded, need_more, decode_error>;

// Decodes one packet from the start of `in`. Call it on the connection's worker as bytes
// arrive; on `decoded`, consume `consumed` bytes and call again. `v` is the connection's
// negotiated version; a CONNECT is decoded whatever `v` says (its protocol level decides, and
// sets connect::ver). The result depends only on the bytes of the packet, so any split of the
// same stream gives the same packets and errors. The size limit is checked as soon as the
// fixed header is in, before the body is waited for.
//
// Checks here are those of the packet alone (MQTT 5 §1.5, §2, §3): reserved bits, lengths,
// UTF-8, QoS, packet identifiers, property ids, placement and duplicates. Checks that need
// the session (wildcards in topic names via valid_topic_name, filter syntax via
// valid_topic_filter, topic alias ranges, a Subscription Identifier sent by a client,
// no_local on a shared subscription, reason codes allowed in an ack) are the session's.
decode_result decode(std::span<const std::uint8_t> in, const limits& lim, version v) noexcept;

// Encoders append to the caller-owned `out` and never fail on valid packets; they do not
// validate. Properties (and v5-only fields: reason codes, subscription options past QoS) are
// written only for v5. A CONNECT is written for its own `ver`, whatever `v` says. Acks,
// DISCONNECT and AUTH use the short forms of MQTT 5 §3.4.2.1 / §3.14.2.1 / §3.15.2.1 when the
// code is 0 and there are no properties. Strings longer than 65535 bytes and a packet over
// 268,435,455 bytes cannot be represented and come out broken.
void encode(const packet& p, version v, std::string& out);

// Hot path: a PUBLISH straight from its parts, without building a packet first. `props` may
// be null; `packet_id` is written only for QoS 1 and 2.
void encode_publish(std::string& out, version v, bool dup, std::uint8_t qos, bool retain,
                    std::string_view topic, std::uint16_t packet_id, const properties* props,
                    std::span<const std::uint8_t> payload);

// MQTT 5 §1.5.4 (3.1.1 §1.5.3): well-formed UTF-8 (no overlong forms, no surrogates, nothing
// past U+10FFFF) with no U+0000. Control characters and non-characters are allowed: the spec
// lets a receiver accept them.
bool valid_utf8(std::string_view s) noexcept;

// MQTT 5 §4.7: a topic name is non-empty and holds no wildcard ('+' or '#'). Assumes `s` is
// valid UTF-8 (the decoder checked it).
bool valid_topic_name(std::string_view s) noexcept;

// MQTT 5 §4.7.1: non-empty; '+' fills a whole level; '#' fills the whole last level.
// "$share/..." is accepted as an ordinary filter; shared-subscription syntax is the session's.
bool valid_topic_filter(std::string_view s) noexcept;

}  // namespace sb::mqtt
