// core/destination/composite.hpp — composite destinations (ActiveMQ's): one name standing for
// several destinations, a message sent to it going to each. The kernel's form is the parts
// separated by ',' each with its kind spelled out: "queue://a,topic://b.c" (a protocol maps
// its own syntax onto it: STOMP's "/queue/a,/topic/b.c"). A name that does not start with
// "queue://" or "topic://" is never composite, so a topic named "a,b" (MQTT) stays one topic.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/destination/destination.hpp"

namespace sb::core {

inline constexpr std::string_view composite_queue_prefix = "queue://";
inline constexpr std::string_view composite_topic_prefix = "topic://";

bool is_composite(std::string_view name) noexcept;

// The parts of a composite name, in order, duplicates removed; empty when `name` is not one
// or a part is not a valid name.
std::vector<destination> composite_parts(std::string_view name);

// The kernel's composite name for `parts` (at least two).
std::string composite_name(const std::vector<destination>& parts);

}  // namespace sb::core
