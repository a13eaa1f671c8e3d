// adapters/mqtt/mapping.cpp — topics, PUBLISH -> core::message, core::message -> PUBLISH properties.
#include "adapters/mqtt/mapping.hpp"

#include <algorithm>

namespace sb::mqtt {

namespace {

std::string swap_topic(std::string_view in, bool to_kernel) {
    std::string out(in);
    for (auto& c : out) {
        if (c == '/') c = '.';
        else if (c == '.') c = '/';
        else if (to_kernel && c == '+') c = '*';
        else if (to_kernel && c == '#') c = '>';
        else if (!to_kernel && c == '*') c = '+';
        else if (!to_kernel && c == '>') c = '#';
    }
    return out;
}

}  // namespace

std::string to_kernel_topic(std::string_view mqtt_topic) { return swap_topic(mqtt_topic, true); }
std::string to_mqtt_topic(std::string_view kernel_name) { return swap_topic(kernel_name, false); }

std::optional<share> parse_share(std::string_view filter) noexcept {
    constexpr std::string_view prefix = "$share/";
    if (!filter.starts_with(prefix)) return std::nullopt;
    filter.remove_prefix(prefix.size());
    const auto slash = filter.find('/');
    if (slash == std::string_view::npos || slash == 0) return share{};
    const auto group = filter.substr(0, slash);
    // MQTT 5 §4.8.2: the share name has no wildcards.
    if (group.find_first_of("+#") != std::string_view::npos) return share{};
    return share{group, filter.substr(slash + 1)};
}

core::message message_from_publish(const publish& p, std::string_view topic, std::int64_t now_ms) {
    core::message m;
    m.dest = core::destination{core::dest_kind::topic, to_kernel_topic(topic)};
    m.persistent = p.qos > 0;
    m.origin_qos = p.qos;
    m.retain = p.retain;
    m.timestamp_ms = now_ms;
    const auto& pr = p.props;
    if (pr.message_expiry_interval) m.expiration_ms = now_ms + std::int64_t(*pr.message_expiry_interval) * 1000;
    if (pr.content_type) m.content_type = std::string(*pr.content_type);
    if (pr.response_topic)
        m.reply_to = core::destination{core::dest_kind::topic, to_kernel_topic(*pr.response_topic)};
    if (pr.correlation_data)
        m.correlation_id.assign(reinterpret_cast<const char*>(pr.correlation_data->data()), pr.correlation_data->size());
    for (const auto& up : pr.user_properties)
        m.properties.push_back(core::property{std::string(up.name), std::string(up.value)});
    m.kind = pr.payload_format_indicator.value_or(0) == 1 ? core::body_kind::text : core::body_kind::bytes;
    m.body.assign(reinterpret_cast<const char*>(p.payload.data()), p.payload.size());
    return m;
}

std::uint8_t message_qos(const core::message& m) noexcept {
    if (m.origin_qos > 0) return m.origin_qos;
    return m.persistent ? 2 : 0;
}

void publish_properties(const core::message& m, std::int64_t now_ms, properties& out,
                        std::vector<std::string>& storage) {
    storage.clear();
    // Reserve so that views into `storage` stay valid while it fills.
    storage.reserve(2 + m.properties.size());
    if (m.expiration_ms) {
        // MQTT 5 §3.3.2.3.3: send the remaining lifetime (the interval minus the time spent
        // here), to the nearest whole second: a message forwarded at once keeps its interval,
        // as with mosquitto's whole-second clock.
        const auto left_ms = std::max<std::int64_t>(m.expiration_ms - now_ms, 1000);
        out.message_expiry_interval = std::uint32_t(std::min<std::int64_t>((left_ms + 500) / 1000, 0xFFFFFFFF));
    }
    if (!m.content_type.empty()) out.content_type = m.content_type;
    if (m.reply_to) {
        storage.push_back(to_mqtt_topic(m.reply_to->name));
        out.response_topic = storage.back();
    }
    if (!m.correlation_id.empty())
        out.correlation_data = std::span(reinterpret_cast<const std::uint8_t*>(m.correlation_id.data()), m.correlation_id.size());
    if (m.kind == core::body_kind::text) out.payload_format_indicator = 1;
    for (const auto& p : m.properties) {
        if (const auto* s = std::get_if<std::string>(&p.value)) {
            out.user_properties.push_back(user_property{p.name, *s});
        } else {
            storage.push_back(core::to_text(p.value));
            out.user_properties.push_back(user_property{p.name, storage.back()});
        }
    }
}

}  // namespace sb::mqtt
