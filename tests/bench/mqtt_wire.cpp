// tests/bench/mqtt_wire.cpp — MQTT 3.1.1 packets for the load generator and its sink.
#include "tests/bench/mqtt_wire.hpp"

namespace sb::bench {
namespace {

std::uint16_t get_u16(const std::uint8_t* p) noexcept {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

void put_u16(std::string& out, std::uint16_t v) {
    out.push_back(static_cast<char>(v >> 8));
    out.push_back(static_cast<char>(v & 0xff));
}

void put_string(std::string& out, std::string_view s) {
    put_u16(out, static_cast<std::uint16_t>(s.size()));
    out.append(s);
}

// §2.2.3: 7 bits per byte, continuation bit 0x80, at most 4 bytes (268,435,455).
void put_remaining_length(std::string& out, std::size_t n) {
    do {
        auto byte = static_cast<std::uint8_t>(n % 128);
        n /= 128;
        if (n > 0) byte |= 0x80;
        out.push_back(static_cast<char>(byte));
    } while (n > 0);
}

void put_fixed_header(std::string& out, mqtt_type t, std::uint8_t flags, std::size_t remaining) {
    out.push_back(static_cast<char>((static_cast<std::uint8_t>(t) << 4) | flags));
    put_remaining_length(out, remaining);
}

// A length-prefixed string at `pos`; advances `pos`.
std::optional<std::string_view> get_string(std::span<const std::uint8_t> b, std::size_t& pos) noexcept {
    if (pos > b.size() || b.size() - pos < 2) return std::nullopt;
    const std::size_t len = get_u16(b.data() + pos);
    pos += 2;
    if (b.size() - pos < len) return std::nullopt;
    std::string_view s(reinterpret_cast<const char*>(b.data() + pos), len);
    pos += len;
    return s;
}

}  // namespace

mqtt_decode_result mqtt_decode(std::span<const std::uint8_t> in, std::size_t max_packet_bytes) noexcept {
    if (in.size() < 2) return mqtt_need_more{};
    const std::uint8_t type = in[0] >> 4;
    if (type < 1 || type > 14) return mqtt_malformed{"reserved packet type"};
    std::size_t remaining = 0;
    std::size_t i = 1;
    for (unsigned shift = 0;; shift += 7, ++i) {
        if (i > 4) return mqtt_malformed{"remaining length over 4 bytes"};
        if (i >= in.size()) return mqtt_need_more{};
        remaining |= std::size_t(in[i] & 0x7f) << shift;
        if ((in[i] & 0x80) == 0) break;
    }
    const std::size_t header = i + 1;
    if (remaining > max_packet_bytes) return mqtt_malformed{"packet too large"};
    if (in.size() < header + remaining) return mqtt_need_more{};
    return mqtt_decoded{mqtt_packet{static_cast<mqtt_type>(type),
                                    static_cast<std::uint8_t>(in[0] & 0x0f),
                                    in.subspan(header, remaining)},
                        header + remaining};
}

std::optional<mqtt_publish_view> mqtt_parse_publish(const mqtt_packet& p) noexcept {
    if (p.type != mqtt_type::publish) return std::nullopt;
    mqtt_publish_view v;
    v.qos = (p.flags >> 1) & 3;
    if (v.qos == 3) return std::nullopt;  // §3.3.1.2: QoS 3 is malformed
    v.retain = p.flags & 1;
    v.dup = p.flags & 8;
    std::size_t pos = 0;
    auto topic = get_string(p.body, pos);
    if (!topic) return std::nullopt;
    v.topic = *topic;
    if (v.qos > 0) {
        if (p.body.size() - pos < 2) return std::nullopt;
        v.packet_id = get_u16(p.body.data() + pos);
        pos += 2;
        if (v.packet_id == 0) return std::nullopt;  // §2.3.1: non-zero
    }
    v.payload = p.body.subspan(pos);
    return v;
}

std::optional<std::uint16_t> mqtt_parse_packet_id(const mqtt_packet& p) noexcept {
    if (p.body.size() < 2) return std::nullopt;
    return get_u16(p.body.data());
}

std::optional<std::uint8_t> mqtt_parse_connack(const mqtt_packet& p) noexcept {
    if (p.type != mqtt_type::connack || p.body.size() != 2) return std::nullopt;
    return p.body[1];
}

std::optional<std::uint8_t> mqtt_parse_suback(const mqtt_packet& p) noexcept {
    if (p.type != mqtt_type::suback || p.body.size() < 3) return std::nullopt;
    return p.body[2];
}

std::optional<mqtt_suback_view> mqtt_parse_suback_all(const mqtt_packet& p) noexcept {
    if (p.type != mqtt_type::suback || p.body.size() < 3) return std::nullopt;
    return mqtt_suback_view{get_u16(p.body.data()), p.body.subspan(2)};
}

std::optional<mqtt_connect_view> mqtt_parse_connect(const mqtt_packet& p) noexcept {
    if (p.type != mqtt_type::connect) return std::nullopt;
    std::size_t pos = 0;
    auto name = get_string(p.body, pos);
    // §3.1.2.1-2: "MQTT" level 4 (3.1.1), or "MQIsdp" level 3 (3.1) which has the same layout.
    if (!name || (*name != "MQTT" && *name != "MQIsdp")) return std::nullopt;
    if (p.body.size() - pos < 4) return std::nullopt;
    const std::uint8_t flags = p.body[pos + 1];
    mqtt_connect_view v;
    v.clean_session = flags & 0x02;
    v.keepalive_s = get_u16(p.body.data() + pos + 2);
    pos += 4;
    auto id = get_string(p.body, pos);
    if (!id) return std::nullopt;
    v.client_id = *id;
    return v;
}

std::optional<mqtt_subscribe_view> mqtt_parse_subscribe(const mqtt_packet& p) noexcept {
    if (p.type != mqtt_type::subscribe || p.body.size() < 2) return std::nullopt;
    mqtt_subscribe_view v;
    v.packet_id = get_u16(p.body.data());
    std::size_t pos = 2;
    auto filter = get_string(p.body, pos);
    if (!filter || pos >= p.body.size()) return std::nullopt;
    v.filter = *filter;
    v.qos = p.body[pos] & 3;
    if (v.qos == 3) return std::nullopt;
    return v;
}

void mqtt_encode_connect(std::string& out, std::string_view client_id, std::uint16_t keepalive_s,
                         bool clean_session, std::string_view user, std::string_view password) {
    std::uint8_t flags = clean_session ? 0x02 : 0;
    std::size_t remaining = 10 + 2 + client_id.size();  // "MQTT", level, flags, keep-alive
    if (!user.empty()) {
        flags |= 0x80;
        remaining += 2 + user.size();
        if (!password.empty()) {
            flags |= 0x40;
            remaining += 2 + password.size();
        }
    }
    put_fixed_header(out, mqtt_type::connect, 0, remaining);
    put_string(out, "MQTT");
    out.push_back(4);  // protocol level 4 = 3.1.1
    out.push_back(static_cast<char>(flags));
    put_u16(out, keepalive_s);
    put_string(out, client_id);
    if (!user.empty()) {
        put_string(out, user);
        if (!password.empty()) put_string(out, password);
    }
}

void mqtt_encode_connack(std::string& out, std::uint8_t return_code) {
    put_fixed_header(out, mqtt_type::connack, 0, 2);
    out.push_back(0);  // session present: never, the sink keeps no sessions
    out.push_back(static_cast<char>(return_code));
}

void mqtt_encode_publish_header(std::string& out, std::string_view topic, std::uint8_t qos,
                                std::uint16_t packet_id, std::size_t payload_bytes) {
    const std::size_t remaining = 2 + topic.size() + (qos > 0 ? 2 : 0) + payload_bytes;
    put_fixed_header(out, mqtt_type::publish, static_cast<std::uint8_t>(qos << 1), remaining);
    put_string(out, topic);
    if (qos > 0) put_u16(out, packet_id);
}

void mqtt_encode_publish(std::string& out, std::string_view topic, std::uint8_t qos,
                         std::uint16_t packet_id, std::span<const std::uint8_t> payload) {
    mqtt_encode_publish_header(out, topic, qos, packet_id, payload.size());
    out.append(reinterpret_cast<const char*>(payload.data()), payload.size());
}

void mqtt_encode_ack(std::string& out, mqtt_type type, std::uint16_t packet_id) {
    put_fixed_header(out, type, type == mqtt_type::pubrel ? 0x02 : 0, 2);
    put_u16(out, packet_id);
}

void mqtt_encode_subscribe(std::string& out, std::uint16_t packet_id, std::string_view filter,
                           std::uint8_t qos) {
    // §3.8.1: SUBSCRIBE's fixed-header flags are 0b0010.
    put_fixed_header(out, mqtt_type::subscribe, 0x02, 2 + 2 + filter.size() + 1);
    put_u16(out, packet_id);
    put_string(out, filter);
    out.push_back(static_cast<char>(qos));
}

void mqtt_encode_subscribe(std::string& out, std::uint16_t packet_id, std::span<const std::string> filters,
                           std::uint8_t qos) {
    std::size_t remaining = 2;
    for (const auto& f : filters) remaining += 2 + f.size() + 1;
    put_fixed_header(out, mqtt_type::subscribe, 0x02, remaining);
    put_u16(out, packet_id);
    for (const auto& f : filters) {
        put_string(out, f);
        out.push_back(static_cast<char>(qos));
    }
}

void mqtt_encode_suback(std::string& out, std::uint16_t packet_id, std::uint8_t return_code) {
    put_fixed_header(out, mqtt_type::suback, 0, 3);
    put_u16(out, packet_id);
    out.push_back(static_cast<char>(return_code));
}

void mqtt_encode_pingreq(std::string& out) { put_fixed_header(out, mqtt_type::pingreq, 0, 0); }
void mqtt_encode_pingresp(std::string& out) { put_fixed_header(out, mqtt_type::pingresp, 0, 0); }
void mqtt_encode_disconnect(std::string& out) { put_fixed_header(out, mqtt_type::disconnect, 0, 0); }

}  // namespace sb::bench
