// core/message/message.hpp — the protocol-neutral message: immutable once published and shared
// by reference count, so fan-out to many subscribers copies no body.
#pragma once

#include <atomic>
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

class executor;

// The worker whose thread allocated a message (its memory is in that thread's malloc arena).
// broker::publish sets it; the kernel drops a message's last reference there (shard::release):
// glibc frees a chunk into the arena it came from under that arena's lock, and a shard freeing
// the messages of a settled batch one after the other on its own thread held the publishing
// worker's arena lock for most of the time while that worker allocated the next messages —
// threads slept on the lock (futex) for a third of the messages of a STOMP topic 1->1 whose
// topic lives on the consumer's worker. Only a hint: none, or a wrong one, costs speed only. A
// copy is a new allocation and has none.
struct message_home {
    std::atomic<executor*> worker{nullptr};
    message_home() = default;
    message_home(const message_home&) noexcept {}
    message_home& operator=(const message_home&) noexcept { return *this; }
};

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

    // Kernel bookkeeping, not content (see message_home).
    mutable message_home home;

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
