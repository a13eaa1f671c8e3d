// core/destination/destination.hpp — destination names and wildcard matching.
// Kernel names use '.' between levels; '*' matches one level, '>' the rest (ActiveMQ style).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace sb::core {

// temp_queue / temp_topic: a temporary destination (broker::create_temporary), owned by one
// connection and deleted with it. It behaves as a queue / topic (is_queue / is_topic), is
// never stored, matches no wildcard subscription and is distinct from a queue or topic with
// the same name.
enum class dest_kind : std::uint8_t { queue, topic, temp_queue, temp_topic };

struct destination {
    dest_kind kind = dest_kind::queue;
    std::string name;

    bool is_queue() const noexcept { return kind == dest_kind::queue || kind == dest_kind::temp_queue; }
    bool is_topic() const noexcept { return kind == dest_kind::topic || kind == dest_kind::temp_topic; }
    bool is_temporary() const noexcept { return kind == dest_kind::temp_queue || kind == dest_kind::temp_topic; }
    friend bool operator==(const destination&, const destination&) = default;
};

// True when `name` contains a wildcard level ('*' or '>' alone between dots).
bool has_wildcard(std::string_view name) noexcept;

// A name is valid when it is non-empty, has no empty level, and '>' (if any) is the last level.
bool valid_name(std::string_view name) noexcept;

// Does the concrete `name` match `pattern`? `pattern` may contain '*' and '>' levels.
// A level starting with '$' (e.g. MQTT's $SYS) is not matched by a leading wildcard.
bool matches(std::string_view pattern, std::string_view name) noexcept;

struct destination_hash {
    std::size_t operator()(const destination& d) const noexcept {
        return std::hash<std::string_view>{}(d.name) ^ static_cast<std::size_t>(d.kind);
    }
};

}  // namespace sb::core
