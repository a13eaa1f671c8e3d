// core/message/message.cpp — message helpers: property lookup, sizes, clock, text forms.
#include "core/message/message.hpp"

#include <chrono>

namespace sb::core {

const property_value* message::find_property(std::string_view name) const noexcept {
    for (const auto& p : properties)
        if (p.name == name) return &p.value;
    return nullptr;
}

std::size_t message::memory_size() const noexcept {
    std::size_t n = sizeof(message) + body.size() + dest.name.size() + correlation_id.size() +
                    type.size() + content_type.size() + group_id.size();
    for (const auto& p : properties) {
        n += sizeof(property) + p.name.size();
        if (const auto* s = std::get_if<std::string>(&p.value)) n += s->size();
        if (const auto* b = std::get_if<std::vector<std::uint8_t>>(&p.value)) n += b->size();
    }
    return n;
}

std::int64_t now_ms() noexcept {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string to_text(const property_value& v) {
    struct visitor {
        std::string operator()(std::monostate) const { return {}; }
        std::string operator()(bool b) const { return b ? "true" : "false"; }
        std::string operator()(std::int8_t i) const { return std::to_string(i); }
        std::string operator()(std::int16_t i) const { return std::to_string(i); }
        std::string operator()(std::int32_t i) const { return std::to_string(i); }
        std::string operator()(std::int64_t i) const { return std::to_string(i); }
        std::string operator()(float f) const { return std::to_string(f); }
        std::string operator()(double d) const { return std::to_string(d); }
        std::string operator()(const std::string& s) const { return s; }
        std::string operator()(const std::vector<std::uint8_t>& b) const {
            return std::string(b.begin(), b.end());
        }
    };
    return std::visit(visitor{}, v);
}

}  // namespace sb::core
