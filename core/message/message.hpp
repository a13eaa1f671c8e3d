// core/message/message.hpp — the protocol-neutral message: immutable once published and shared
// by reference count, so fan-out to many subscribers copies no body.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/destination/destination.hpp"

namespace sb::core {

using message_id = std::uint64_t;

// Typed property values (JMS / AMQP application properties).
using property_value = std::variant<std::monostate, bool, std::int8_t, std::int16_t, std::int32_t,
                                    std::int64_t, float, double, std::string, std::vector<std::uint8_t>>;

struct property {
    std::string name;
    property_value value;
};

enum class body_kind : std::uint8_t { none, bytes, text, map, stream };

inline constexpr std::uint8_t default_priority = 4;

struct message {
    message_id id = 0;                 // broker-assigned, unique in this broker
    destination dest;
    std::optional<destination> reply_to;
    std::string correlation_id;
    std::string type;
    std::string content_type;
    std::string group_id;
    std::int32_t group_seq = 0;
    std::uint8_t priority = default_priority;  // 0..9
    bool persistent = false;
    std::int64_t timestamp_ms = 0;     // wall clock when the broker accepted it
    std::int64_t expiration_ms = 0;    // absolute wall clock; 0 = never
    std::int64_t deliver_at_ms = 0;    // scheduled delivery; 0 = now
    std::vector<std::string> broker_path;  // brokers this message travelled (network loops)
    std::vector<property> properties;
    body_kind kind = body_kind::none;
    std::string body;

    // Topics only: also keep this as the topic's retained message (an empty body clears it);
    // new subscribers of any protocol receive it (MQTT retained messages).
    bool retain = false;

    // Origin hints: never needed for correctness in another protocol.
    std::uint64_t origin_connection = 0;  // for no-local subscriptions
    std::uint8_t origin_qos = 0;          // MQTT QoS the publisher used

    const property_value* find_property(std::string_view name) const noexcept;

    // Approximate bytes held in memory, for memory limits.
    std::size_t memory_size() const noexcept;

    bool expired_at(std::int64_t now_ms) const noexcept {
        return expiration_ms != 0 && now_ms >= expiration_ms;
    }
};

using message_ptr = std::shared_ptr<const message>;

// Wall clock in milliseconds since the epoch.
std::int64_t now_ms() noexcept;

// Text form of a property value as protocols without types (STOMP headers) carry it.
std::string to_text(const property_value& v);

}  // namespace sb::core
