// core/store/record.hpp — the journal's on-disk records: framing with a sync marker, length,
// CRC-32C and type, and the binary form of a message. Pure functions over byte spans (fuzzed).
//
// A record on disk:
//   magic u32 'SBJ1' | length u32 (payload bytes) | crc u32 | type u8 | payload
// all little endian; crc = CRC-32C over length, type and payload. The magic lets recovery find
// the next record after a corrupted one.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "core/message/message.hpp"
#include "core/store/store.hpp"

namespace sb::core {

inline constexpr std::uint32_t record_magic = 0x314A4253;   // "SBJ1"
inline constexpr std::size_t record_header_bytes = 13;
inline constexpr std::size_t record_max_payload_bytes = std::size_t{256} << 20;

enum class record_type : std::uint8_t {
    message_add = 1,      // queue name + message
    message_remove = 2,   // queue name + message id
    subscription_put = 3,     // durable subscription: name + filter
    subscription_remove = 4,  // durable subscription: name
    retained_put = 5,         // a topic's retained message: topic + message (as message_add)
    retained_remove = 6,      // topic
    // A local transaction: tx_begin (id, record count), then exactly that many records, then
    // tx_commit (id). Recovery applies the records in between only when the whole group is
    // there and intact: all of a transaction or none of it.
    tx_begin = 7,
    tx_commit = 8,
};

// Appends one framed record to `out`.
void append_record(std::string& out, record_type type, std::string_view payload);

// Payloads.
void encode_add(std::string& out, std::string_view queue, const message& m);
void encode_remove(std::string& out, std::string_view queue, message_id id);

void encode_subscription(std::string& out, const subscription_record& s);

struct add_record { std::string queue; message msg; };
std::optional<subscription_record> decode_subscription(std::span<const std::uint8_t> payload);
// subscription_remove's payload is the name itself.
struct remove_record { std::string queue; message_id id = 0; };

struct tx_begin_record { std::uint64_t id = 0; std::uint32_t records = 0; };
void encode_tx_begin(std::string& out, std::uint64_t id, std::uint32_t records);
void encode_tx_commit(std::string& out, std::uint64_t id);
std::optional<tx_begin_record> decode_tx_begin(std::span<const std::uint8_t> payload) noexcept;
std::optional<std::uint64_t> decode_tx_commit(std::span<const std::uint8_t> payload) noexcept;

// Parses a payload; nullopt when it is not a valid payload of that type.
std::optional<add_record> decode_add(std::span<const std::uint8_t> payload);

// The few fields of a message_add payload that recovery needs, read without copying the rest
// (views into the payload); nullopt when they cannot be read.
struct add_summary { std::string_view queue; message_id id = 0; std::uint8_t priority = 0; };
std::optional<add_summary> peek_add(std::span<const std::uint8_t> payload) noexcept;
std::optional<remove_record> decode_remove(std::span<const std::uint8_t> payload) noexcept;

// Framing. `torn`: the input ends inside a record (a crash mid-write); `corrupt`: the bytes at
// the start are not a valid record (bad magic, length past the limit, or CRC mismatch).
struct framed { record_type type; std::span<const std::uint8_t> payload; std::size_t consumed; };
enum class frame_problem : std::uint8_t { torn, corrupt };
std::variant<framed, frame_problem> read_record(std::span<const std::uint8_t> in) noexcept;

// The offset of the next possible record start (a record_magic) after position 0, or in.size().
std::size_t find_next_magic(std::span<const std::uint8_t> in) noexcept;

}  // namespace sb::core
