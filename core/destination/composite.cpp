// core/destination/composite.cpp — composite destination names.
#include "core/destination/composite.hpp"

#include <algorithm>

namespace sb::core {

bool is_composite(std::string_view name) noexcept {
    return (name.starts_with(composite_queue_prefix) || name.starts_with(composite_topic_prefix)) &&
           name.find(',') != std::string_view::npos;
}

std::vector<destination> composite_parts(std::string_view name) {
    std::vector<destination> out;
    if (!is_composite(name)) return out;
    while (true) {
        const auto comma = name.find(',');
        std::string_view part = name.substr(0, comma);
        destination d;
        if (part.starts_with(composite_queue_prefix)) {
            d.kind = dest_kind::queue;
            part.remove_prefix(composite_queue_prefix.size());
        } else if (part.starts_with(composite_topic_prefix)) {
            d.kind = dest_kind::topic;
            part.remove_prefix(composite_topic_prefix.size());
        } else {
            return {};
        }
        if (!valid_name(part) || has_wildcard(part)) return {};
        d.name = std::string(part);
        if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(std::move(d));
        if (comma == std::string_view::npos) break;
        name.remove_prefix(comma + 1);
    }
    return out;
}

std::string composite_name(const std::vector<destination>& parts) {
    std::string s;
    for (const auto& d : parts) {
        if (!s.empty()) s += ',';
        s += d.is_queue() ? composite_queue_prefix : composite_topic_prefix;
        s += d.name;
    }
    return s;
}

}  // namespace sb::core
