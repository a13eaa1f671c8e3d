// gateway/protocols/mqtt.cpp — MQTT as the gateway sees it: CONNECT first (0x10), a CONNECT /
// CONNACK health check and the CONNACK "server unavailable" refusal, all through the MQTT codec.
#include <variant>

#include "adapters/mqtt/codec.hpp"
#include "gateway/detect.hpp"
#include "gateway/registry.hpp"

namespace sb::gateway {

namespace {

sniff detect(std::span<const std::byte> head) noexcept {
    if (head.empty()) return sniff::maybe;
    return static_cast<unsigned char>(head[0]) == 0x10 ? sniff::yes : sniff::no;
}

std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// CONNECT 3.1.1, clean session, keep-alive 30 s: what every MQTT broker accepts.
std::string request(const check_config&, std::string_view, std::string_view client_id) {
    mqtt::connect c;
    c.ver = mqtt::version::v3_1_1;
    c.clean_start = true;
    c.keep_alive = 30;
    c.client_id = client_id;
    std::string out;
    mqtt::encode(c, mqtt::version::v3_1_1, out);
    return out;
}

probe::verdict judge(const probe&, std::string_view r, std::string& why) {
    // A 3.1.1 CONNACK is 0x20 0x02 and two bytes: anything else is known from its first two
    // bytes, without waiting for the rest of whatever packet (or protocol) it is.
    if ((!r.empty() && r[0] != '\x20') || (r.size() > 1 && r[1] != '\x02')) {
        why = "not a CONNACK: " + printable(r);
        return probe::verdict::down;
    }
    mqtt::limits lim;
    lim.max_packet_size = 64 * 1024;
    const auto result = mqtt::decode(bytes_of(r), lim, mqtt::version::v3_1_1);
    if (std::holds_alternative<mqtt::need_more>(result)) return probe::verdict::need_more;
    const auto* d = std::get_if<mqtt::decoded>(&result);
    const auto* ack = d ? std::get_if<mqtt::connack>(&d->frame) : nullptr;
    if (!ack) {
        why = "not a CONNACK: " + printable(r);
        return probe::verdict::down;
    }
    switch (static_cast<mqtt::connack_v3>(ack->code)) {
    case mqtt::connack_v3::accepted: why = "CONNACK accepted"; return probe::verdict::up;
    case mqtt::connack_v3::bad_user_name_or_password:
    case mqtt::connack_v3::not_authorized:
        why = "CONNACK refused for credentials (broker answering)";
        return probe::verdict::up;
    default: why = "CONNACK refused rc=" + std::to_string(ack->code); return probe::verdict::down;
    }
}

std::string goodbye(std::string_view) {
    std::string out;
    mqtt::encode(mqtt::disconnect{}, mqtt::version::v3_1_1, out);
    return out;
}

constexpr probe_conversation check{check_type::mqtt, request, judge, goodbye};

// The version is the CONNECT's, read by the codec: a refusal is sent only once the whole packet
// is in (nothing left unread, so the close that follows is no reset).
std::optional<std::string> refusal(std::string_view head) {
    mqtt::limits lim;
    lim.max_packet_size = refusal_max_connect_bytes;
    lim.max_properties = refusal_max_connect_bytes;   // the size bounds them
    const auto r = mqtt::decode(bytes_of(head), lim, mqtt::version::v3_1_1);
    if (std::holds_alternative<mqtt::need_more>(r)) return std::nullopt;
    const auto* d = std::get_if<mqtt::decoded>(&r);
    const auto* c = d ? std::get_if<mqtt::connect>(&d->frame) : nullptr;
    if (!c) return std::string();   // malformed, or not a CONNECT: just close
    mqtt::connack ack;
    ack.code = c->ver == mqtt::version::v5 ? static_cast<std::uint8_t>(mqtt::reason::server_unavailable)
                                           : static_cast<std::uint8_t>(mqtt::connack_v3::server_unavailable);
    std::string out;
    mqtt::encode(ack, c->ver, out);
    return out;
}

constexpr std::string_view websocket[] = {"mqtt", "mqttv3.1"};

}  // namespace

extern constinit const protocol_descriptor mqtt_protocol{wire::mqtt, "mqtt", detect, &check, refusal, websocket};

}  // namespace sb::gateway
