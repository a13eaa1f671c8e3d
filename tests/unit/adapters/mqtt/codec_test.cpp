// tests/unit/adapters/mqtt/codec_test.cpp — MQTT codec: round trips, splits, limits, malformed
// packets, UTF-8 and topic rules, and bytes captured from mosquitto_pub / mosquitto_sub.
// Packets decoded from a buffer that is later changed are compared through their canonical
// encoding (an owned copy), so a view that outlives its buffer shows up as a failure.
#include "adapters/mqtt/codec.hpp"
#include "tests/unit/bytes.hpp"
#include "tests/unit/split_checks.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using namespace std::string_literals;
using namespace std::string_view_literals;
using sb::mqtt::decode_error;
using sb::mqtt::decode_result;
using sb::mqtt::decoded;
using sb::mqtt::limits;
using sb::mqtt::need_more;
using sb::mqtt::packet;
using sb::mqtt::packet_type;
using sb::mqtt::properties;
using sb::mqtt::reason;
using sb::mqtt::version;
namespace mqtt = sb::mqtt;

constexpr std::array all_versions{version::v3_1, version::v3_1_1, version::v5};

using sb::test::bytes;
using sb::test::text;

const char* version_name(version v) {
    switch (v) {
    case version::v3_1: return "3.1";
    case version::v3_1_1: return "3.1.1";
    case version::v5: return "5.0";
    }
    return "?";
}

std::string from_hex(std::string_view hex) {
    std::string out;
    int hi = -1;
    for (const char c : hex) {
        int d = -1;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        if (d < 0) continue;
        if (hi < 0) {
            hi = d;
        } else {
            out.push_back(static_cast<char>(hi << 4 | d));
            hi = -1;
        }
    }
    return out;
}

std::string to_hex(std::string_view s) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const char c : s) {
        const auto b = static_cast<unsigned char>(c);
        if (!out.empty()) out.push_back(' ');
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 15]);
    }
    return out;
}

// Wire building blocks for hand-made packets.
std::string u16(unsigned x) { return {static_cast<char>(x >> 8), static_cast<char>(x & 0xff)}; }
std::string u32(std::uint32_t x) { return u16(x >> 16) + u16(x & 0xffff); }
std::string vbi(std::size_t x) {
    std::string out;
    do {
        auto b = static_cast<unsigned char>(x & 0x7f);
        x >>= 7;
        if (x) b |= 0x80;
        out.push_back(static_cast<char>(b));
    } while (x);
    return out;
}
std::string str(std::string_view s) {
    return u16(static_cast<unsigned>(s.size())) + std::string(s);
}
std::string byte(unsigned b) { return std::string(1, static_cast<char>(b)); }
// A whole packet: first byte, remaining length, body.
std::string pkt(unsigned first, std::string_view body) {
    return byte(first) + vbi(body.size()) + std::string(body);
}
// A property block: length + properties.
std::string props(std::string_view list) { return vbi(list.size()) + std::string(list); }

std::string encode(const packet& p, version v) {
    std::string out;
    mqtt::encode(p, v, out);
    return out;
}

std::string describe(const decode_result& r) {
    if (const auto* e = std::get_if<decode_error>(&r))
        return std::string(mqtt::to_string(e->code)) + " \"" + std::string(e->detail) + '"';
    if (const auto* d = std::get_if<decoded>(&r))
        return "<decoded " + std::string(mqtt::to_string(type_of(d->frame))) + ", " +
               std::to_string(d->consumed) + " bytes>";
    return "<need_more " + std::to_string(std::get<need_more>(r).at_least) + ">";
}

decode_result run(std::string_view wire, version v, const limits& lim = {}) {
    return mqtt::decode(bytes(wire), lim, v);
}

// Decodes a packet that must take exactly all of `wire`.
packet decode_all(std::string_view wire, version v, const limits& lim = {}) {
    const decode_result r = run(wire, v, lim);
    INFO("version " << version_name(v) << " wire " << to_hex(wire) << " result " << describe(r));
    REQUIRE(std::holds_alternative<decoded>(r));
    CHECK(std::get<decoded>(r).consumed == wire.size());
    return std::get<decoded>(r).frame;
}

template <class T>
T decode_as(std::string_view wire, version v, const limits& lim = {}) {
    packet p = decode_all(wire, v, lim);
    REQUIRE(std::holds_alternative<T>(p));
    return std::get<T>(std::move(p));
}

// What a session sees when the peer's bytes arrive in the given chunks: each packet as its
// canonical encoding, the first error, and the bytes still buffered at the end when there
// is no error.
struct stream_result {
    std::vector<std::string> packets;
    std::string error;
    std::size_t leftover = 0;
    bool operator==(const stream_result&) const = default;
};

std::ostream& operator<<(std::ostream& os, const stream_result& s) {
    os << s.packets.size() << " packets, error \"" << s.error << "\", " << s.leftover
       << " left over";
    for (const auto& p : s.packets) os << "\n  " << to_hex(p);
    return os;
}

stream_result feed(std::string_view wire, const std::vector<std::size_t>& cuts, version v,
                   const limits& lim = {}) {
    stream_result res;
    std::string buf;
    std::size_t from = 0;
    auto chunks = cuts;
    chunks.push_back(wire.size());
    for (const std::size_t to : chunks) {
        buf.append(wire.substr(from, to - from));
        from = to;
        for (;;) {
            const decode_result r = run(buf, v, lim);
            if (const auto* d = std::get_if<decoded>(&r)) {
                REQUIRE(d->consumed >= 2);
                REQUIRE(d->consumed <= buf.size());
                res.packets.push_back(encode(d->frame, v));
                buf.erase(0, d->consumed);
            } else if (const auto* m = std::get_if<need_more>(&r)) {
                REQUIRE(m->at_least > buf.size());
                break;
            } else {
                res.error = describe(r);
                return res;
            }
        }
    }
    res.leftover = buf.size();
    return res;
}

// ---- sample packets --------------------------------------------------------------------

const std::string blob_a = "\x00\x01\x02\xff binary"s;
const std::string blob_b = "auth\x00data"s;

// Every property the table of MQTT 5 §2.2.2.2 allows in each place, set to non-default values.
properties connect_props() {
    properties p;
    p.session_expiry_interval = 3600;
    p.authentication_method = "SCRAM-SHA-1";
    p.authentication_data = bytes(blob_b);
    p.request_problem_information = false;
    p.request_response_information = true;
    p.receive_maximum = 100;
    p.topic_alias_maximum = 10;
    p.user_properties = {{"client", "test"}, {"client", "again"}, {"", ""}};
    p.maximum_packet_size = 65536;
    return p;
}

properties will_props() {
    properties p;
    p.payload_format_indicator = 1;
    p.message_expiry_interval = 60;
    p.content_type = "text/plain";
    p.response_topic = "replies/will";
    p.correlation_data = bytes(blob_a);
    p.will_delay_interval = 30;
    p.user_properties = {{"w", "1"}};
    return p;
}

properties connack_props() {
    properties p;
    p.session_expiry_interval = 0xffffffff;
    p.assigned_client_identifier = "auto-7f3a";
    p.server_keep_alive = 120;
    p.authentication_method = "SCRAM-SHA-1";
    p.authentication_data = bytes(blob_b);
    p.response_information = "resp/";
    p.server_reference = "other:1883";
    p.reason_string = "welcome";
    p.receive_maximum = 65535;
    p.topic_alias_maximum = 0;
    p.maximum_qos = 1;
    p.retain_available = false;
    p.user_properties = {{"server", "switchboard"}};
    p.maximum_packet_size = 1;
    p.wildcard_subscription_available = true;
    p.subscription_identifier_available = false;
    p.shared_subscription_available = true;
    return p;
}

properties publish_props() {
    properties p;
    p.payload_format_indicator = 0;
    p.message_expiry_interval = 0;
    p.content_type = "application/json";
    p.response_topic = "replies/1";
    p.correlation_data = bytes(blob_a);
    p.subscription_identifiers = {1, 127, 128, 16383, 16384, 268435455};
    p.topic_alias = 65535;
    p.user_properties = {{"k", "v"}, {"k", "v2"}, {"ünï", "cödé 𝄞"}};
    return p;
}

properties reason_props() {
    properties p;
    p.reason_string = "because";
    p.user_properties = {{"a", "b"}};
    return p;
}

const std::string payload_text = "payload with \0 and \xff bytes"s;

std::vector<packet> sample_packets(version v) {
    const bool v5 = v == version::v5;
    const auto pr = [v5](properties p) { return v5 ? p : properties{}; };
    std::vector<packet> out;

    mqtt::connect c;
    c.ver = v;
    c.protocol_name = v == version::v3_1 ? "MQIsdp" : "MQTT";
    c.clean_start = false;
    c.keep_alive = 65535;
    c.client_id = "client-1";
    c.props = pr(connect_props());
    c.will_msg = mqtt::will{1, true, pr(will_props()), "wills/client-1", bytes(payload_text)};
    c.username = "alice";
    c.password = bytes(blob_b);
    out.push_back(c);

    mqtt::connect bare;  // empty client id, no will, no credentials, clean start
    bare.ver = v;
    bare.protocol_name = c.protocol_name;
    out.push_back(bare);

    mqtt::connect will_qos2 = bare;  // will QoS 2 without retain, empty will payload
    will_qos2.will_msg = mqtt::will{2, false, {}, "w", {}};
    will_qos2.username = "";
    out.push_back(will_qos2);

    out.push_back(mqtt::connack{true, 0x00, pr(connack_props())});
    out.push_back(mqtt::connack{false, static_cast<std::uint8_t>(v5 ? 0x87 : 0x05), {}});

    for (std::uint8_t qos = 0; qos <= 2; ++qos) {
        mqtt::publish p;
        p.dup = qos > 0;
        p.qos = qos;
        p.retain = qos == 1;
        p.topic = "sensors/kitchen/temp";
        p.packet_id = qos ? static_cast<std::uint16_t>(qos * 1000) : 0;
        p.props = pr(publish_props());
        p.payload = bytes(payload_text);
        out.push_back(p);
    }
    mqtt::publish empty_payload;
    empty_payload.topic = "$SYS/x";
    out.push_back(empty_payload);
    if (v5) {  // an empty topic is allowed with a Topic Alias
        mqtt::publish aliased;
        aliased.qos = 1;
        aliased.packet_id = 65535;
        aliased.props.topic_alias = 3;
        aliased.payload = bytes("x"sv);
        out.push_back(aliased);
    }

    out.push_back(mqtt::puback{{1, 0, {}}});
    out.push_back(mqtt::pubrec{{2, 0, {}}});
    out.push_back(mqtt::pubrel{{3, 0, {}}});
    out.push_back(mqtt::pubcomp{{65535, 0, {}}});
    if (v5) {
        out.push_back(mqtt::puback{{7, 0x10, {}}});              // code only
        out.push_back(mqtt::pubrec{{8, 0x80, reason_props()}});   // code and properties
        out.push_back(mqtt::pubrel{{9, 0x92, reason_props()}});
        out.push_back(mqtt::pubcomp{{10, 0x00, reason_props()}});  // code 0 with properties
    }

    mqtt::subscribe s;
    s.packet_id = 42;
    s.topics = {
        {"a/+/b", 0, false, false, 0}, {"#", 1, false, false, 0}, {"$SYS/#", 2, false, false, 0}};
    if (v5) {
        s.props.subscription_identifiers = {268435455};
        s.props.user_properties = {{"s", "1"}};
        s.topics.push_back({"$share/g/x", 1, true, true, 2});
        s.topics.push_back({"c", 2, false, true, 1});
    }
    out.push_back(s);

    out.push_back(mqtt::suback{42, pr(reason_props()), {0x00, 0x01, 0x02, 0x80}});
    properties unsubscribe_props;
    unsubscribe_props.user_properties = {{"u", "v"}};
    out.push_back(mqtt::unsubscribe{43, pr(unsubscribe_props), {"a/b", "a/+", "€/#"}});
    out.push_back(mqtt::unsuback{
        43, pr(reason_props()),
        v5 ? std::vector<std::uint8_t>{0x00, 0x11, 0x87} : std::vector<std::uint8_t>{}});
    out.push_back(mqtt::pingreq{});
    out.push_back(mqtt::pingresp{});
    out.push_back(mqtt::disconnect{});
    if (v5) {
        properties dp;
        dp.session_expiry_interval = 10;
        dp.reason_string = "bye";
        dp.server_reference = "elsewhere";
        dp.user_properties = {{"d", "1"}};
        out.push_back(mqtt::disconnect{0x04, {}});  // code only
        out.push_back(mqtt::disconnect{0x8e, dp});
        out.push_back(mqtt::auth{});
        properties ap;
        ap.authentication_method = "SCRAM-SHA-1";
        ap.authentication_data = bytes(blob_a);
        ap.reason_string = "continue";
        ap.user_properties = {{"x", "y"}};
        out.push_back(mqtt::auth{0x18, ap});
        out.push_back(mqtt::auth{0x19, {}});
    }
    return out;
}

// Bytes captured from mosquitto 2.0.11 clients against a recording responder (see the note
// in the test that checks them).
const std::string captured_pub_v5 = from_hex(
    "1055 0004 4d51 5454 05ee 001e 1111 0000 003c 2600 026b 3100 0276 3121 0014 0004"
    "6361 7035 1218 0000 0005 0300 0a74 6578 742f 706c 6169 6e00 0a77 696c 6c73 2f63"
    "6170 3500 0362 7965 0005 616c 6963 6500 0673 6563 7265 7435 3000 0a73 656e 736f"
    "7273 2f74 3100 0119 0300 0a74 6578 742f 706c 6169 6e26 0001 6100 0162 0200 0000"
    "7868 656c 6c6f 2076 3562 0200 01e0 00");
const std::string captured_pub_v311 = from_hex(
    "102f 0004 4d51 5454 04c4 003c 0006 6361 7033 3131 000c 7769 6c6c 732f 6361 7033"
    "3131 0004 676f 6e65 0003 626f 6200 0270 7732 1900 0a73 656e 736f 7273 2f74 3200"
    "0168 656c 6c6f 2033 2e31 2e31 e000");
const std::string captured_pub_v31 = from_hex(
    "1013 0006 4d51 4973 6470 0302 003c 0005 6361 7033 3130 1500 0a73 656e 736f 7273"
    "2f74 3368 656c 6c6f 2033 2e31 e000");
const std::string captured_sub_v5 = from_hex(
    "1019 0004 4d51 5454 0502 003c 0811 0000 012c 2100 0100 0473 7562 3582 1800 0109"
    "0b07 2600 0178 0001 7900 0361 2f2b 0200 0362 2f23 02a2 1500 0207 2600 0175 0001"
    "7600 096f 6c64 2f74 6f70 6963 e000");
const std::string captured_sub_v311 = from_hex(
    "1012 0004 4d51 5454 0400 003c 0006 7375 6233 3131 8211 0001 0003 612f 2b01 0006"
    "2453 5953 2f23 01a2 0d00 0200 096f 6c64 2f74 6f70 6963 e000");

template <class T>
const T& nth(const std::vector<packet>& ps, std::size_t i) {
    REQUIRE(i < ps.size());
    REQUIRE(std::holds_alternative<T>(ps[i]));
    return std::get<T>(ps[i]);
}

const mqtt::ack_base* ack_of(const packet& p) {
    if (const auto* a = std::get_if<mqtt::puback>(&p)) return a;
    if (const auto* a = std::get_if<mqtt::pubrec>(&p)) return a;
    if (const auto* a = std::get_if<mqtt::pubrel>(&p)) return a;
    if (const auto* a = std::get_if<mqtt::pubcomp>(&p)) return a;
    return nullptr;
}

// Every property block of a packet (a CONNECT has two).
std::vector<const properties*> property_blocks(const packet& p) {
    std::vector<const properties*> out;
    std::visit(
        [&out](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (!std::is_same_v<T, mqtt::pingreq> && !std::is_same_v<T, mqtt::pingresp>)
                out.push_back(&x.props);
            if constexpr (std::is_same_v<T, mqtt::connect>)
                if (x.will_msg) out.push_back(&x.will_msg->props);
        },
        p);
    return out;
}

std::vector<packet> decode_stream(std::string_view wire, version v) {
    std::vector<packet> out;
    while (!wire.empty()) {
        const decode_result r = run(wire, v);
        INFO("at " << to_hex(wire.substr(0, 16)) << " result " << describe(r));
        REQUIRE(std::holds_alternative<decoded>(r));
        out.push_back(std::get<decoded>(r).frame);
        wire.remove_prefix(std::get<decoded>(r).consumed);
    }
    return out;
}

}  // namespace

TEST_CASE("encode then decode gives the same packet for every type and version", "[mqtt][codec]") {
    for (const version v : all_versions) {
        const std::vector<packet> samples = sample_packets(v);
        for (const packet& original : samples) {
            const std::string wire = encode(original, v);
            INFO("version " << version_name(v) << " " << mqtt::to_string(type_of(original)) << " "
                            << to_hex(wire));
            CHECK(decode_all(wire, v) == original);
            CHECK(encode(decode_all(wire, v), v) == wire);  // canonical
        }
    }
}

TEST_CASE("the sample packets cover every packet type with every v5 property", "[mqtt][codec]") {
    std::array<bool, 16> seen{};
    for (const packet& p : sample_packets(version::v5))
        seen[static_cast<std::size_t>(type_of(p))] = true;
    for (std::size_t t = 1; t <= 15; ++t) {
        INFO(mqtt::to_string(static_cast<packet_type>(t)));
        CHECK(seen[t]);
    }
    // Every property of MQTT 5 §2.2.2.2 is set in some sample, so the round trip covers it.
    const std::vector<packet> samples = sample_packets(version::v5);
    std::vector<const properties*> blocks;
    for (const packet& p : samples)
        for (const properties* b : property_blocks(p)) blocks.push_back(b);
    const auto any = [&blocks](auto has) {
        for (const properties* b : blocks)
            if (has(*b)) return true;
        return false;
    };
#define SB_ANY(field) CHECK(any([](const properties& p) { return bool(p.field); }))
    SB_ANY(payload_format_indicator);
    SB_ANY(message_expiry_interval);
    SB_ANY(content_type);
    SB_ANY(response_topic);
    SB_ANY(correlation_data);
    SB_ANY(subscription_identifiers.size());
    SB_ANY(session_expiry_interval);
    SB_ANY(assigned_client_identifier);
    SB_ANY(server_keep_alive);
    SB_ANY(authentication_method);
    SB_ANY(authentication_data);
    SB_ANY(request_problem_information);
    SB_ANY(will_delay_interval);
    SB_ANY(request_response_information);
    SB_ANY(response_information);
    SB_ANY(server_reference);
    SB_ANY(reason_string);
    SB_ANY(receive_maximum);
    SB_ANY(topic_alias_maximum);
    SB_ANY(topic_alias);
    SB_ANY(maximum_qos);
    SB_ANY(retain_available);
    SB_ANY(user_properties.size());
    SB_ANY(maximum_packet_size);
    SB_ANY(wildcard_subscription_available);
    SB_ANY(subscription_identifier_available);
    SB_ANY(shared_subscription_available);
#undef SB_ANY
    CHECK(properties{}.empty());
    for (const packet& p : sample_packets(version::v3_1_1))
        for (const properties* b : property_blocks(p)) CHECK(b->empty());
}

TEST_CASE("type_of follows the variant order of packet_type", "[mqtt][codec]") {
    CHECK(type_of(packet{mqtt::connect{}}) == packet_type::connect);
    CHECK(type_of(packet{mqtt::pubrel{}}) == packet_type::pubrel);
    CHECK(type_of(packet{mqtt::unsuback{}}) == packet_type::unsuback);
    CHECK(type_of(packet{mqtt::auth{}}) == packet_type::auth);
    CHECK(mqtt::to_string(packet_type::pingresp) == "PINGRESP");
}

TEST_CASE("a CONNECT is decoded by its own protocol level whatever the session's version",
          "[mqtt][codec]") {
    for (const version conn_v : all_versions) {
        mqtt::connect c;
        c.ver = conn_v;
        c.client_id = "x";
        if (conn_v == version::v5) c.props.session_expiry_interval = 5;
        const std::string wire = encode(c, version::v3_1_1);  // the argument is ignored for CONNECT
        for (const version session_v : all_versions) {
            const auto got = decode_as<mqtt::connect>(wire, session_v);
            CHECK(got.ver == conn_v);
            CHECK(got.protocol_name == (conn_v == version::v3_1 ? "MQIsdp" : "MQTT"));
            CHECK(got.props.session_expiry_interval == c.props.session_expiry_interval);
        }
    }
}

TEST_CASE("encode writes the expected bytes", "[mqtt][codec]") {
    mqtt::publish p;
    p.qos = 1;
    p.retain = true;
    p.topic = "a/b";
    p.packet_id = 10;
    p.payload = bytes("hi"sv);
    CHECK(to_hex(encode(p, version::v3_1_1)) == "33 09 00 03 61 2f 62 00 0a 68 69");
    CHECK(to_hex(encode(p, version::v5)) == "33 0a 00 03 61 2f 62 00 0a 00 68 69");
    p.props.topic_alias = 2;
    CHECK(to_hex(encode(p, version::v5)) == "33 0d 00 03 61 2f 62 00 0a 03 23 00 02 68 69");

    // MQTT 5 §3.4.2.1: the short forms of an ack.
    CHECK(to_hex(encode(mqtt::puback{{5, 0, {}}}, version::v5)) == "40 02 00 05");
    CHECK(to_hex(encode(mqtt::puback{{5, 0x10, {}}}, version::v5)) == "40 03 00 05 10");
    CHECK(to_hex(encode(mqtt::pubrel{{5, 0x10, {}}}, version::v3_1_1)) == "62 02 00 05");
    CHECK(to_hex(encode(mqtt::pubrec{{5, 0, reason_props()}}, version::v5)) ==
          "50 15 00 05 00 11 1f 00 07 62 65 63 61 75 73 65 26 00 01 61 00 01 62");
    CHECK(to_hex(encode(mqtt::disconnect{}, version::v5)) == "e0 00");
    CHECK(to_hex(encode(mqtt::disconnect{0x04, {}}, version::v5)) == "e0 01 04");
    CHECK(to_hex(encode(mqtt::disconnect{0x04, {}}, version::v3_1_1)) == "e0 00");
    CHECK(to_hex(encode(mqtt::auth{}, version::v5)) == "f0 00");
    CHECK(to_hex(encode(mqtt::auth{0x18, {}}, version::v5)) == "f0 02 18 00");
    CHECK(to_hex(encode(mqtt::pingreq{}, version::v5)) == "c0 00");
    CHECK(to_hex(encode(mqtt::unsuback{7, {}, {0x11}}, version::v3_1_1)) == "b0 02 00 07");
    CHECK(to_hex(encode(mqtt::unsuback{7, {}, {0x11}}, version::v5)) == "b0 04 00 07 00 11");
    CHECK(to_hex(encode(mqtt::connack{true, 0, {}}, version::v3_1_1)) == "20 02 01 00");
    CHECK(to_hex(encode(mqtt::connack{true, 0, {}}, version::v5)) == "20 03 01 00 00");

    // Subscription options: QoS, no local, retain as published, retain handling (v5 only).
    mqtt::subscribe s{1, {}, {{"t", 1, true, true, 2}}};
    CHECK(to_hex(encode(s, version::v5)) == "82 07 00 01 00 00 01 74 2d");
    CHECK(to_hex(encode(s, version::v3_1_1)) == "82 06 00 01 00 01 74 01");

    // CONNECT flags: user name, password, will retain, will QoS 1, will, clean start.
    mqtt::connect c;
    c.client_id = "id";
    c.will_msg = mqtt::will{1, true, {}, "w", bytes("x"sv)};
    c.username = "u";
    c.password = bytes("p"sv);
    CHECK(to_hex(encode(c, version::v3_1_1)) ==
          "10 1a 00 04 4d 51 54 54 04 ee 00 00 00 02 69 64 00 01 77 00 01 78 00 01 75 00 01 70");

    // A remaining length of 128 takes two bytes.
    mqtt::publish big;
    big.topic = "t";
    const std::string body(125, 'x');
    big.payload = bytes(body);
    CHECK(encode(big, version::v3_1_1).substr(0, 3) == "\x30\x80\x01"s);
}

TEST_CASE("encode appends to the buffer it is given", "[mqtt][codec]") {
    std::string out = "prefix|";
    mqtt::encode(mqtt::pingresp{}, version::v3_1_1, out);
    mqtt::encode(mqtt::pingreq{}, version::v5, out);
    CHECK(out == "prefix|\xd0\x00\xc0\x00"s);
}

TEST_CASE("encode_publish writes the same bytes as encode", "[mqtt][codec]") {
    const properties pp = publish_props();
    for (const version v : all_versions) {
        for (std::uint8_t qos = 0; qos <= 2; ++qos) {
            for (const properties* props : {static_cast<const properties*>(nullptr), &pp}) {
                mqtt::publish p;
                p.dup = qos == 2;
                p.qos = qos;
                p.retain = qos != 1;
                p.topic = "x/y/z";
                p.packet_id = qos ? 77 : 0;
                if (props && v == version::v5) p.props = *props;
                p.payload = bytes(payload_text);
                std::string direct = "keep";
                mqtt::encode_publish(direct, v, p.dup, qos, p.retain, p.topic, 77, props,
                                     p.payload);
                INFO("version " << version_name(v) << " qos " << int(qos) << " props "
                                << (props != nullptr));
                CHECK(direct == "keep" + encode(p, v));
                CHECK(decode_as<mqtt::publish>(std::string_view(direct).substr(4), v) == p);
            }
        }
    }
}

TEST_CASE("the captured mosquitto bytes decode to the expected packets", "[mqtt][codec]") {
    // Recorded from mosquitto_pub / mosquitto_sub 2.0.11 talking to a small Python responder
    // that answered CONNACK, PUBACK, PUBREC, PUBCOMP, SUBACK and UNSUBACK, e.g.
    //   mosquitto_pub -V mqttv5 -i cap5 -q 2 -r -t sensors/t1 -m 'hello v5' -u alice -P secret
    //     -k 30 --will-topic wills/cap5 --will-payload bye --will-qos 1 --will-retain
    //     -D connect session-expiry-interval 60 -D connect user-property k1 v1
    //     -D publish content-type text/plain -D publish user-property a b
    //     -D publish message-expiry-interval 120 -D will will-delay-interval 5
    //     -D will content-type text/plain
    SECTION("mosquitto_pub, MQTT 5, QoS 2 with will, credentials and properties") {
        const auto ps = decode_stream(captured_pub_v5, version::v5);
        REQUIRE(ps.size() == 4);
        const auto& c = nth<mqtt::connect>(ps, 0);
        CHECK(c.ver == version::v5);
        CHECK(c.client_id == "cap5");
        CHECK(c.keep_alive == 30);
        CHECK(c.clean_start);
        CHECK(c.props.session_expiry_interval == 60u);
        CHECK(c.props.receive_maximum == 20);  // mosquitto adds it by itself
        REQUIRE(c.props.user_properties.size() == 1);
        CHECK(c.props.user_properties[0] == mqtt::user_property{"k1", "v1"});
        REQUIRE(c.will_msg.has_value());
        CHECK(c.will_msg->qos == 1);
        CHECK(c.will_msg->retain);
        CHECK(c.will_msg->topic == "wills/cap5");
        CHECK(text(c.will_msg->payload) == "bye");
        CHECK(c.will_msg->props.will_delay_interval == 5u);
        CHECK(c.will_msg->props.content_type == "text/plain");
        CHECK(c.username == "alice");
        REQUIRE(c.password.has_value());
        CHECK(text(*c.password) == "secret");

        const auto& p = nth<mqtt::publish>(ps, 1);
        CHECK(p.qos == 2);
        CHECK(p.retain);
        CHECK_FALSE(p.dup);
        CHECK(p.topic == "sensors/t1");
        CHECK(p.packet_id == 1);
        CHECK(p.props.content_type == "text/plain");
        CHECK(p.props.message_expiry_interval == 120u);
        REQUIRE(p.props.user_properties.size() == 1);
        CHECK(p.props.user_properties[0] == mqtt::user_property{"a", "b"});
        CHECK(text(p.payload) == "hello v5");

        CHECK(nth<mqtt::pubrel>(ps, 2).packet_id == 1);
        CHECK(nth<mqtt::disconnect>(ps, 3).code == 0);
    }
    SECTION("mosquitto_pub, MQTT 3.1.1, QoS 1 with will and credentials, persistent session") {
        const auto ps = decode_stream(captured_pub_v311, version::v3_1_1);
        REQUIRE(ps.size() == 3);
        const auto& c = nth<mqtt::connect>(ps, 0);
        CHECK(c.ver == version::v3_1_1);
        CHECK_FALSE(c.clean_start);
        CHECK(c.keep_alive == 60);
        CHECK(c.client_id == "cap311");
        REQUIRE(c.will_msg.has_value());
        CHECK(c.will_msg->qos == 0);
        CHECK(c.will_msg->topic == "wills/cap311");
        CHECK(text(c.will_msg->payload) == "gone");
        CHECK(c.username == "bob");
        CHECK(text(c.password.value()) == "pw");
        const auto& p = nth<mqtt::publish>(ps, 1);
        CHECK(p.qos == 1);
        CHECK(p.packet_id == 1);
        CHECK(p.topic == "sensors/t2");
        CHECK(text(p.payload) == "hello 3.1.1");
        CHECK(std::holds_alternative<mqtt::disconnect>(ps[2]));
    }
    SECTION("mosquitto_pub, MQTT 3.1 (MQIsdp), QoS 0") {
        const auto ps = decode_stream(captured_pub_v31, version::v3_1);
        REQUIRE(ps.size() == 3);
        const auto& c = nth<mqtt::connect>(ps, 0);
        CHECK(c.ver == version::v3_1);
        CHECK(c.protocol_name == "MQIsdp");
        CHECK(c.client_id == "cap31");
        CHECK_FALSE(c.will_msg.has_value());
        CHECK_FALSE(c.username.has_value());
        const auto& p = nth<mqtt::publish>(ps, 1);
        CHECK(p.qos == 0);
        CHECK(p.topic == "sensors/t3");
        CHECK(text(p.payload) == "hello 3.1");
    }
    SECTION("mosquitto_sub, MQTT 5, SUBSCRIBE with a subscription identifier, UNSUBSCRIBE") {
        const auto ps = decode_stream(captured_sub_v5, version::v5);
        REQUIRE(ps.size() == 4);
        CHECK(nth<mqtt::connect>(ps, 0).props.session_expiry_interval == 300u);
        const auto& s = nth<mqtt::subscribe>(ps, 1);
        CHECK(s.packet_id == 1);
        CHECK(s.props.subscription_identifiers == std::vector<std::uint32_t>{7});
        REQUIRE(s.topics.size() == 2);
        CHECK(s.topics[0] == mqtt::subscription{"a/+", 2, false, false, 0});
        CHECK(s.topics[1] == mqtt::subscription{"b/#", 2, false, false, 0});
        const auto& u = nth<mqtt::unsubscribe>(ps, 2);
        CHECK(u.packet_id == 2);
        CHECK(u.filters == std::vector<std::string_view>{"old/topic"});
        REQUIRE(u.props.user_properties.size() == 1);
        CHECK(u.props.user_properties[0] == mqtt::user_property{"u", "v"});
    }
    SECTION("mosquitto_sub, MQTT 3.1.1, two filters and an UNSUBSCRIBE") {
        const auto ps = decode_stream(captured_sub_v311, version::v3_1_1);
        REQUIRE(ps.size() == 4);
        CHECK_FALSE(nth<mqtt::connect>(ps, 0).clean_start);
        const auto& s = nth<mqtt::subscribe>(ps, 1);
        REQUIRE(s.topics.size() == 2);
        CHECK(s.topics[0] == mqtt::subscription{"a/+", 1, false, false, 0});
        CHECK(s.topics[1] == mqtt::subscription{"$SYS/#", 1, false, false, 0});
        CHECK(nth<mqtt::unsubscribe>(ps, 2).filters == std::vector<std::string_view>{"old/topic"});
    }
    SECTION("each captured packet re-encodes to the bytes mosquitto sent") {
        // Without properties there is one encoding per packet. (mosquitto writes v5
        // properties in command-line order, ours in identifier order: those differ.)
        for (const auto& [wire, v] : {std::pair{captured_pub_v311, version::v3_1_1},
                                      std::pair{captured_pub_v31, version::v3_1},
                                      std::pair{captured_sub_v311, version::v3_1_1}}) {
            std::string again;
            for (const packet& p : decode_stream(wire, v)) mqtt::encode(p, v, again);
            CHECK(to_hex(again) == to_hex(wire));
        }
    }
}

TEST_CASE("decode gives the same packets for every split and one byte at a time", "[mqtt][codec]") {
    for (const version v : all_versions) {
        INFO("version " << version_name(v));
        std::string stream;
        std::size_t count = 0;
        for (const packet& p : sample_packets(v)) {
            stream += encode(p, v);
            ++count;
        }
        const stream_result whole = feed(stream, {}, v);
        REQUIRE(whole.error.empty());
        REQUIRE(whole.packets.size() == count);
        REQUIRE(whole.leftover == 0);

        sb::test::check_every_split(
            stream.size(), whole, [&](const std::vector<std::size_t>& cuts) { return feed(stream, cuts, v); }, 7, 11);

        // A stream that ends in a malformed packet reports the same error for every split.
        const std::string bad = stream + pkt(0x36, str("t") + u16(1));
        const stream_result bad_whole = feed(bad, {}, v);
        CHECK(bad_whole.error == "malformed_packet \"QoS 3\"");
        CHECK(bad_whole.packets == whole.packets);
        for (std::size_t i = 0; i <= bad.size(); i += 3) {
            INFO("split at " << i);
            REQUIRE(feed(bad, {i}, v) == bad_whole);
        }
    }

    std::vector<std::size_t> every_byte;
    for (std::size_t i = 1; i < captured_pub_v5.size(); ++i) every_byte.push_back(i);
    CHECK(feed(captured_pub_v5, every_byte, version::v5) == feed(captured_pub_v5, {}, version::v5));
}

TEST_CASE("decode reports need_more with one more byte until the length is known, then the total",
          "[mqtt][codec]") {
    CHECK(describe(run("", version::v5)) == "<need_more 1>");
    // 2 + 200 body bytes: the remaining length takes two bytes.
    mqtt::publish p;
    p.topic = "t";
    const std::string body(197, 'b');
    p.payload = bytes(body);
    const std::string wire = encode(p, version::v3_1_1);
    REQUIRE(wire.size() == 3 + 200);
    for (std::size_t i = 0; i < wire.size(); ++i) {
        INFO("prefix " << i);
        const decode_result r = run(std::string_view(wire).substr(0, i), version::v3_1_1);
        REQUIRE(std::holds_alternative<need_more>(r));
        CHECK(std::get<need_more>(r).at_least == (i < 3 ? i + 1 : wire.size()));
    }
    // Only the first packet of a buffer is decoded; the rest is left for the next call.
    const std::string two = wire + encode(mqtt::pingreq{}, version::v3_1_1);
    const decode_result r = run(two, version::v3_1_1);
    REQUIRE(std::holds_alternative<decoded>(r));
    CHECK(std::get<decoded>(r).consumed == wire.size());
}

TEST_CASE("a decoded PUBLISH points into the input and allocates nothing", "[mqtt][codec]") {
    const std::string wire = pkt(0x32, str("a/b") + u16(9) + "payload");
    const decode_result r = run(wire, version::v3_1_1);
    REQUIRE(std::holds_alternative<decoded>(r));
    const auto& p = std::get<mqtt::publish>(std::get<decoded>(r).frame);
    CHECK(p.topic.data() == wire.data() + 4);
    CHECK(p.payload.data() == bytes(wire).data() + 9);
    CHECK(p.payload.size() == 7);
    CHECK(p.props.user_properties.capacity() == 0);
    CHECK(p.props.subscription_identifiers.capacity() == 0);

    const std::string wire5 =
        pkt(0x30, str("a/b") + props(byte(0x01) + byte(1) + byte(0x23) + u16(4)) + "x");
    const auto p5 = decode_as<mqtt::publish>(wire5, version::v5);
    CHECK(p5.props.topic_alias == 4);
    CHECK(p5.props.payload_format_indicator == 1);
    CHECK(p5.props.user_properties.capacity() == 0);
}

TEST_CASE("max_packet_size accepts a packet of exactly that size and rejects one byte more",
          "[mqtt][codec]") {
    for (const version v : all_versions) {
        INFO("version " << version_name(v));
        mqtt::publish p;
        p.topic = "t";
        const std::string body(300, 'x');
        p.payload = bytes(body);
        const std::string wire = encode(p, v);
        limits lim;
        lim.max_packet_size = wire.size();
        CHECK(decode_as<mqtt::publish>(wire, v, lim) == p);

        lim.max_packet_size = wire.size() - 1;
        CHECK(describe(run(wire, v, lim)) == "packet_too_large \"exceeds max_packet_size\"");
        // Refused as soon as the fixed header is in, before the body arrives.
        CHECK(describe(run(std::string_view(wire).substr(0, 3), v, lim)) ==
              "packet_too_large \"exceeds max_packet_size\"");
        CHECK(std::holds_alternative<need_more>(run(std::string_view(wire).substr(0, 2), v, lim)));
    }
    // The largest remaining length (268,435,455) is refused by the default limit at once.
    CHECK(describe(run("\x30\xff\xff\xff\x7f"sv, version::v5)) ==
          "packet_too_large \"exceeds max_packet_size\"");
    limits huge;
    huge.max_packet_size = std::numeric_limits<std::size_t>::max();
    CHECK(describe(run("\x30\xff\xff\xff\x7f"sv, version::v5, huge)) == "<need_more 268435460>");
}

TEST_CASE("max_properties counts user properties and subscription identifiers per packet",
          "[mqtt][codec]") {
    limits lim;
    lim.max_properties = 4;
    const auto user = [](int i) {
        const std::string k = "k" + std::to_string(i);
        return byte(0x26) + str(k) + str("v");
    };
    std::string four, five;
    for (int i = 0; i < 4; ++i) four += user(i);
    five = four + user(4);
    const std::string mixed = user(0) + user(1) + byte(0x0b) + vbi(1) + byte(0x0b) + vbi(200);
    const std::string mixed_over = mixed + byte(0x0b) + vbi(3);

    const auto publish_with = [](const std::string& list) {
        return pkt(0x30, str("t") + props(list) + "x");
    };
    CHECK(decode_as<mqtt::publish>(publish_with(four), version::v5, lim)
              .props.user_properties.size() == 4);
    CHECK(describe(run(publish_with(five), version::v5, lim)) ==
          "malformed_packet \"too many properties\"");
    const std::string mixed_wire = publish_with(mixed);
    const auto m = decode_as<mqtt::publish>(mixed_wire, version::v5, lim);
    CHECK(m.props.subscription_identifiers == std::vector<std::uint32_t>{1, 200});
    CHECK(describe(run(publish_with(mixed_over), version::v5, lim)) ==
          "malformed_packet \"too many properties\"");

    // Acks and the other packets count the same way.
    CHECK(decode_as<mqtt::puback>(pkt(0x40, u16(1) + byte(0) + props(four)), version::v5, lim)
              .props.user_properties.size() == 4);
    CHECK(describe(run(pkt(0x40, u16(1) + byte(0) + props(five)), version::v5, lim)) ==
          "malformed_packet \"too many properties\"");

    // In a CONNECT, the will properties share the count with the connect properties.
    const auto connect_with = [](const std::string& connect_list, const std::string& will_list) {
        return pkt(0x10, str("MQTT") + byte(5) + byte(0x06) + u16(0) + props(connect_list) +
                             str("id") + props(will_list) + str("w") + str("p"));
    };
    const std::string four_wire = connect_with(user(0) + user(1), user(2) + user(3));
    const auto c = decode_as<mqtt::connect>(four_wire, version::v5, lim);
    CHECK(c.props.user_properties.size() == 2);
    CHECK(c.will_msg->props.user_properties.size() == 2);
    CHECK(describe(run(connect_with(user(0) + user(1), user(2) + user(3) + user(4)), version::v5,
                       lim)) == "malformed_packet \"too many properties\"");
}

TEST_CASE("by default only bytes bound a packet, not counts of properties or topics",
          "[mqtt][codec]") {
    std::string users, filters;
    for (int i = 0; i < 5000; ++i) {
        users += byte(0x26) + str("k" + std::to_string(i)) + str("v");
        filters += str("t" + std::to_string(i)) + byte(1);
    }
    const std::string connect_wire = pkt(0x10, str("MQTT") + byte(5) + byte(0x02) + u16(0) + props(users) + str("id"));
    CHECK(decode_as<mqtt::connect>(connect_wire, version::v5).props.user_properties.size() == 5000);
    const std::string subscribe_wire = pkt(0x82, u16(1) + props("") + filters);
    CHECK(decode_as<mqtt::subscribe>(subscribe_wire, version::v5).topics.size() == 5000);
}

TEST_CASE("max_topics bounds SUBSCRIBE and UNSUBSCRIBE entries", "[mqtt][codec]") {
    limits lim;
    lim.max_topics = 3;
    for (const version v : all_versions) {
        INFO("version " << version_name(v));
        const std::string pre = u16(1) + (v == version::v5 ? props("") : "");
        std::string sub3 = pre, unsub3 = pre;
        for (int i = 0; i < 3; ++i) {
            sub3 += str("t" + std::to_string(i)) + byte(1);
            unsub3 += str("t" + std::to_string(i));
        }
        CHECK(decode_as<mqtt::subscribe>(pkt(0x82, sub3), v, lim).topics.size() == 3);
        CHECK(decode_as<mqtt::unsubscribe>(pkt(0xa2, unsub3), v, lim).filters.size() == 3);
        CHECK(describe(run(pkt(0x82, sub3 + str("t3") + byte(0)), v, lim)) ==
              "malformed_packet \"too many topics\"");
        CHECK(describe(run(pkt(0xa2, unsub3 + str("t3")), v, lim)) ==
              "malformed_packet \"too many topics\"");
    }
}

namespace {

struct bad_case {
    const char* name;
    version v;
    std::string wire;
    reason code;
    std::string_view detail;
};

std::string connect_v(unsigned flags, std::string_view rest, unsigned level = 4,
                      std::string_view name = "MQTT") {
    return pkt(0x10, str(name) + byte(level) + byte(flags) + u16(60) + std::string(rest));
}

std::vector<bad_case> bad_cases() {
    constexpr auto v3 = version::v3_1_1;
    constexpr auto v5 = version::v5;
    constexpr auto malformed = reason::malformed_packet;
    constexpr auto protocol = reason::protocol_error;
    const auto pub5 = [](std::string_view list) { return pkt(0x30, str("t") + props(list)); };
    return {
        // Fixed header.
        {"remaining length of 5 bytes", v3, "\x30\xff\xff\xff\xff\x01"s, malformed,
         "remaining length over 4 bytes"},
        {"non-minimal remaining length", v3, "\xc0\x80\x00"s, malformed,
         "non-minimal variable byte integer"},
        {"packet type 0", v3, "\x00\x00"s, malformed, "packet type 0"},
        {"AUTH in 3.1.1", v3, "\xf0\x00"s, malformed, "AUTH before MQTT 5"},
        {"PUBLISH QoS 3", v3, pkt(0x36, str("t") + u16(1)), malformed, "QoS 3"},
        {"PUBLISH DUP on QoS 0", v3, pkt(0x38, str("t")), malformed, "DUP set on QoS 0"},
        {"CONNECT with reserved flags", v3, "\x11\x00"s, malformed, "reserved flag bits set"},
        {"PUBREL without its 0010 flags", v3, pkt(0x60, u16(1)), malformed,
         "reserved flag bits set"},
        {"SUBSCRIBE without its 0010 flags", v3, pkt(0x80, u16(1) + str("a") + byte(0)), malformed,
         "reserved flag bits set"},
        {"UNSUBSCRIBE with flags 0011", v3, pkt(0xa3, u16(1) + str("a")), malformed,
         "reserved flag bits set"},
        {"PINGREQ with a flag", v3, "\xc1\x00"s, malformed, "reserved flag bits set"},
        {"AUTH with a flag", v5, "\xf2\x00"s, malformed, "reserved flag bits set"},
        // Strings and UTF-8.
        {"topic with an invalid byte", v3, pkt(0x30, str("a\xff")), malformed, "invalid UTF-8"},
        {"topic with U+0000", v3, pkt(0x30, str("a\0b"sv)), malformed, "invalid UTF-8"},
        {"topic with a surrogate", v3, pkt(0x30, str("\xed\xa0\x80")), malformed, "invalid UTF-8"},
        {"topic with an overlong '/'", v3, pkt(0x30, str("a\xc0\xaf")), malformed, "invalid UTF-8"},
        {"topic with an overlong 3-byte form", v3, pkt(0x30, str("\xe0\x80\xaf")), malformed,
         "invalid UTF-8"},
        {"topic past U+10FFFF", v3, pkt(0x30, str("\xf4\x90\x80\x80")), malformed, "invalid UTF-8"},
        {"topic overruns the packet", v3, pkt(0x30, u16(10) + "abc"), malformed,
         "string overruns packet"},
        {"client id with a truncated sequence", v3, connect_v(0x02, str("\xe2\x82")), malformed,
         "invalid UTF-8"},
        {"user property value with invalid UTF-8", v5, pub5(byte(0x26) + str("k") + str("\x80")),
         malformed, "invalid UTF-8"},
        // Packet identifiers and fixed-size packets.
        {"PUBLISH QoS 1 with packet id 0", v3, pkt(0x32, str("t") + u16(0)), malformed,
         "packet identifier 0"},
        {"PUBACK with packet id 0", v3, pkt(0x40, u16(0)), malformed, "packet identifier 0"},
        {"SUBSCRIBE with packet id 0", v5, pkt(0x82, u16(0) + props("") + str("a") + byte(0)),
         malformed, "packet identifier 0"},
        {"3.1.1 PUBACK of 3 bytes", v3, pkt(0x40, u16(1) + byte(0)), malformed, "trailing bytes"},
        {"3.1.1 PUBCOMP of 1 byte", v3, pkt(0x70, byte(1)), malformed, "truncated packet"},
        {"3.1.1 UNSUBACK with a code", v3, pkt(0xb0, u16(1) + byte(0)), malformed,
         "trailing bytes"},
        {"PINGREQ with a body", v5, pkt(0xc0, byte(0)), malformed, "bad remaining length"},
        {"PINGRESP with a body", v3, pkt(0xd0, byte(0)), malformed, "bad remaining length"},
        {"3.1.1 DISCONNECT with a body", v3, pkt(0xe0, byte(0)), malformed, "bad remaining length"},
        {"CONNACK with reserved flags", v3, pkt(0x20, byte(0x02) + byte(0)), malformed,
         "reserved connack flags"},
        {"3.1.1 CONNACK of 3 bytes", v3, pkt(0x20, byte(0) + byte(0) + byte(0)), malformed,
         "trailing bytes"},
        {"SUBACK without codes", v3, pkt(0x90, u16(1)), malformed, "no reason codes"},
        {"v5 UNSUBACK without codes", v5, pkt(0xb0, u16(1) + props("")), malformed,
         "no reason codes"},
        // Properties.
        {"duplicate property", v5, pub5(byte(0x03) + str("a") + byte(0x03) + str("b")), protocol,
         "duplicate property"},
        {"property not allowed in PUBLISH", v5, pub5(byte(0x11) + u32(1)), malformed,
         "property not allowed in packet"},
        {"will property in CONNECT properties", v5,
         connect_v(0x02, props(byte(0x18) + u32(1)) + str("id"), 5), malformed,
         "property not allowed in packet"},
        {"reason string in PUBLISH", v5, pub5(byte(0x1f) + str("x")), malformed,
         "property not allowed in packet"},
        {"unknown property 0x05", v5, pub5(byte(0x05) + byte(0)), malformed, "unknown property"},
        {"unknown property 0x80", v5, pub5(byte(0x80) + byte(1)), malformed, "unknown property"},
        {"property length overruns packet", v5, pkt(0x30, str("t") + vbi(5) + byte(0x01)),
         malformed, "property length overruns packet"},
        {"property value overruns its block", v5,
         pkt(0x30, str("t") + vbi(2) + byte(0x02) + byte(0) + "xyz"), malformed,
         "truncated packet"},
        {"non-minimal property length", v5, pkt(0x30, str("t") + "\x80\x00"s), malformed,
         "non-minimal variable byte integer"},
        {"subscription identifier 0", v5, pub5(byte(0x0b) + vbi(0)), protocol,
         "subscription identifier 0"},
        {"two subscription identifiers in SUBSCRIBE", v5,
         pkt(0x82, u16(1) + props(byte(0x0b) + vbi(1) + byte(0x0b) + vbi(2)) + str("a") + byte(0)),
         protocol, "duplicate property"},
        {"topic alias 0", v5, pub5(byte(0x23) + u16(0)), reason::topic_alias_invalid, "topic alias 0"},
        {"receive maximum 0", v5, connect_v(0x02, props(byte(0x21) + u16(0)) + str("id"), 5),
         protocol, "receive maximum 0"},
        {"maximum packet size 0", v5, connect_v(0x02, props(byte(0x27) + u32(0)) + str("id"), 5),
         protocol, "maximum packet size 0"},
        {"payload format indicator 2", v5, pub5(byte(0x01) + byte(2)), protocol,
         "property value out of range"},
        {"request problem information 2", v5,
         connect_v(0x02, props(byte(0x17) + byte(2)) + str("id"), 5), protocol,
         "property value out of range"},
        {"maximum QoS 2", v5, pkt(0x20, byte(0) + byte(0) + props(byte(0x24) + byte(2))), protocol,
         "property value out of range"},
        {"retain available 7", v5, pkt(0x20, byte(0) + byte(0) + props(byte(0x25) + byte(7))),
         protocol, "property value out of range"},
        // PUBLISH topics.
        {"3.1.1 PUBLISH with an empty topic", v3, pkt(0x30, str("")), protocol, "empty topic name"},
        {"v5 PUBLISH with an empty topic and no alias", v5, pkt(0x30, str("") + props("")),
         protocol, "empty topic name"},
        // CONNECT.
        {"CONNECT with the reserved flag", v3, connect_v(0x03, str("id")), malformed,
         "reserved connect flag"},
        {"will QoS without will flag", v3, connect_v(0x0a, str("id")), malformed,
         "will flags without will"},
        {"will retain without will flag", v3, connect_v(0x22, str("id")), malformed,
         "will flags without will"},
        {"will QoS 3", v3, connect_v(0x1e, str("id") + str("w") + str("p")), malformed,
         "will QoS 3"},
        {"3.1.1 password without user name", v3, connect_v(0x42, str("id") + str("pw")), malformed,
         "password without user name"},
        {"CONNECT with trailing bytes", v3, connect_v(0x02, str("id") + "x"), malformed,
         "trailing bytes"},
        {"CONNECT cut after the protocol level", v3, pkt(0x10, str("MQTT") + byte(4)), malformed,
         "truncated packet"},
        {"CONNECT missing its will payload", v3, connect_v(0x06, str("id") + str("w")), malformed,
         "truncated packet"},
        {"CONNECT protocol name overruns", v3, pkt(0x10, u16(6) + "MQTT"), malformed,
         "string overruns packet"},
        {"authentication data without a method", v5,
         connect_v(0x02, props(byte(0x16) + str("secret")) + str("id"), 5), protocol,
         "authentication data without a method"},
        {"protocol name \"mqtt\"", v3, connect_v(0x02, str("id"), 4, "mqtt"),
         reason::unsupported_protocol_version, "unsupported protocol name or level"},
        {"protocol name \"MQTT\" level 3", v3, connect_v(0x02, str("id"), 3),
         reason::unsupported_protocol_version, "unsupported protocol name or level"},
        {"protocol name \"MQIsdp\" level 4", v3, connect_v(0x02, str("id"), 4, "MQIsdp"),
         reason::unsupported_protocol_version, "unsupported protocol name or level"},
        {"protocol level 6", v5, connect_v(0x02, str("id"), 6),
         reason::unsupported_protocol_version, "unsupported protocol name or level"},
        // SUBSCRIBE / UNSUBSCRIBE.
        {"SUBSCRIBE with no topics", v3, pkt(0x82, u16(1)), protocol, "no topic filters"},
        {"v5 SUBSCRIBE with no topics", v5, pkt(0x82, u16(1) + props("")), protocol,
         "no topic filters"},
        {"UNSUBSCRIBE with no topics", v3, pkt(0xa2, u16(1)), protocol, "no topic filters"},
        {"v5 subscription option bit 6", v5, pkt(0x82, u16(1) + props("") + str("a") + byte(0x40)),
         malformed, "reserved subscription option bits"},
        {"3.1.1 subscription option bit 2 (no local)", v3,
         pkt(0x82, u16(1) + str("a") + byte(0x04)), malformed, "reserved subscription option bits"},
        {"subscription QoS 3", v5, pkt(0x82, u16(1) + props("") + str("a") + byte(0x03)), malformed,
         "QoS 3"},
        {"retain handling 3", v5, pkt(0x82, u16(1) + props("") + str("a") + byte(0x30)), protocol,
         "retain handling 3"},
        {"SUBSCRIBE entry without options", v3, pkt(0x82, u16(1) + str("a")), malformed,
         "truncated packet"},
        {"SUBSCRIBE filter with invalid UTF-8", v3, pkt(0x82, u16(1) + str("\xc3") + byte(0)),
         malformed, "invalid UTF-8"},
        {"UNSUBSCRIBE filter overruns", v3, pkt(0xa2, u16(1) + u16(4) + "ab"), malformed,
         "string overruns packet"},
    };
}

}  // namespace

TEST_CASE("decode rejects malformed packets with the MQTT 5 reason", "[mqtt][codec]") {
    const std::vector<bad_case> cases = bad_cases();
    REQUIRE(cases.size() >= 25);
    for (const bad_case& c : cases) {
        INFO(c.name << " (" << version_name(c.v) << "): " << to_hex(c.wire));
        const decode_result r = run(c.wire, c.v);
        REQUIRE(std::holds_alternative<decode_error>(r));
        CHECK(mqtt::to_string(std::get<decode_error>(r).code) == mqtt::to_string(c.code));
        CHECK(std::get<decode_error>(r).detail == c.detail);
        // The same error arrives whatever the split, and never before its bytes do.
        for (std::size_t i = 0; i < c.wire.size(); ++i) {
            const decode_result part = run(std::string_view(c.wire).substr(0, i), c.v);
            if (std::holds_alternative<need_more>(part)) continue;
            INFO("prefix " << i << ": " << describe(part));
            REQUIRE(std::holds_alternative<decode_error>(part));
            CHECK(std::get<decode_error>(part).detail == c.detail);
        }
    }
}

TEST_CASE("reserved flag bits are checked for every packet type", "[mqtt][codec]") {
    for (const version v : {version::v3_1_1, version::v5}) {
        for (unsigned type = 1; type <= 15; ++type) {
            if (type == 3 || (type == 15 && v != version::v5)) continue;
            const unsigned required = (type == 6 || type == 8 || type == 10) ? 2 : 0;
            for (unsigned flags = 0; flags < 16; ++flags) {
                if (flags == required) continue;
                const std::string wire = byte(type << 4 | flags) + byte(0);
                INFO("version " << version_name(v) << " type " << type << " flags " << flags);
                CHECK(describe(run(wire, v)) == "malformed_packet \"reserved flag bits set\"");
            }
        }
    }
}

TEST_CASE("v5 acks, DISCONNECT and AUTH accept their short forms", "[mqtt][codec]") {
    constexpr auto v5 = version::v5;
    for (const unsigned first : {0x40u, 0x50u, 0x62u, 0x70u}) {
        INFO("first byte " << first);
        const packet full = decode_all(pkt(first, u16(9)), v5);
        const mqtt::ack_base* a = ack_of(full);
        REQUIRE(a != nullptr);
        CHECK(a->packet_id == 9);
        CHECK(a->code == 0);
        CHECK(a->props.empty());
        const auto coded = decode_all(pkt(first, u16(9) + byte(0x97)), v5);
        CHECK(encode(coded, v5) == pkt(first, u16(9) + byte(0x97)));
        const auto with_empty_props = decode_all(pkt(first, u16(9) + byte(0x97) + props("")), v5);
        CHECK(with_empty_props == coded);
    }
    CHECK(decode_as<mqtt::disconnect>("\xe0\x00"s, v5) == mqtt::disconnect{});
    CHECK(decode_as<mqtt::disconnect>("\xe0\x01\x04"s, v5).code == 0x04);
    CHECK(decode_as<mqtt::disconnect>("\xe0\x02\x8e\x00"s, v5).code == 0x8e);
    CHECK(decode_as<mqtt::auth>("\xf0\x00"s, v5) == mqtt::auth{});
    CHECK(decode_as<mqtt::auth>("\xf0\x02\x18\x00"s, v5).code == 0x18);
    // A CONNACK without its property length is read as one without properties.
    CHECK(decode_as<mqtt::connack>("\x20\x02\x01\x00"s, v5) == mqtt::connack{true, 0, {}});
}

TEST_CASE("password without user name is allowed in 3.1 and 5", "[mqtt][codec]") {
    for (const auto& [v, level, name] : {std::tuple{version::v3_1, 3u, "MQIsdp"},
                                         std::tuple{version::v5, 5u, "MQTT"}}) {
        const std::string rest = (v == version::v5 ? props("") : "") + str("id") + str("pw");
        const std::string wire = connect_v(0x42, rest, level, name);
        const auto c = decode_as<mqtt::connect>(wire, version::v3_1_1);
        CHECK_FALSE(c.username.has_value());
        REQUIRE(c.password.has_value());
        CHECK(text(*c.password) == "pw");
    }
}

TEST_CASE("strings may hold any well-formed UTF-8, binary data any bytes", "[mqtt][codec]") {
    // Control characters and non-characters are accepted (§1.5.4 lets a receiver allow them).
    const std::string topic =
        "ctl\x01\x1f\x7f/\xc2\x80/\xef\xbf\xbf/\xf0\x9f\x98\x80/\xf4\x8f\xbf\xbf";
    CHECK(decode_as<mqtt::publish>(pkt(0x30, str(topic) + "\0\xff"s), version::v3_1_1).topic ==
          topic);
    const std::string wire = connect_v(0xc2, str("") + str("u") + u16(3) + "\0\xff\x80"s);
    const auto c = decode_as<mqtt::connect>(wire, version::v3_1_1);
    CHECK(c.client_id.empty());
    CHECK(text(*c.password) == "\0\xff\x80"sv);
}

TEST_CASE("valid_utf8 follows MQTT 5 section 1.5.4", "[mqtt][codec]") {
    const std::pair<std::string_view, bool> table[] = {
        {""sv, true},
        {"plain ascii text that is longer than eight bytes"sv, true},
        {"caf\xc3\xa9"sv, true},
        {"\xe2\x82\xac"sv, true},                 // €
        {"\xf0\x9d\x84\x9e"sv, true},             // 𝄞
        {"\xed\x9f\xbf"sv, true},                 // U+D7FF, just below the surrogates
        {"\xee\x80\x80"sv, true},                 // U+E000, just above them
        {"\xf4\x8f\xbf\xbf"sv, true},             // U+10FFFF
        {"\x7f\x01"sv, true},                     // control characters are allowed
        {"\0"sv, false},                          // U+0000
        {"abcdefgh\0ijklmnop"sv, false},          // U+0000 inside an ASCII run
        {"abcdefghijklmno\0"sv, false},
        {"\xc0\x80"sv, false},                    // overlong U+0000
        {"\xc1\xbf"sv, false},                    // overlong
        {"\xe0\x9f\xbf"sv, false},                // overlong 3-byte
        {"\xf0\x8f\xbf\xbf"sv, false},            // overlong 4-byte
        {"\xed\xa0\x80"sv, false},                // U+D800
        {"\xed\xbf\xbf"sv, false},                // U+DFFF
        {"\xf4\x90\x80\x80"sv, false},            // U+110000
        {"\xf5\x80\x80\x80"sv, false},
        {"\xff"sv, false},
        {"\x80"sv, false},                        // lone continuation
        {"\xc3"sv, false},                        // truncated
        {"\xe2\x82"sv, false},
        {"\xf0\x9d\x84"sv, false},
        {"\xc3\x28"sv, false},                    // bad continuation
        {"abcdefgh\xe2\x82\xac" "abcdefgh"sv, true},
        {"abcdefgh\xe2\x82" "abcdefgh"sv, false},
    };
    for (const auto& [s, ok] : table) {
        INFO(to_hex(s));
        CHECK(mqtt::valid_utf8(s) == ok);
    }
}

TEST_CASE("valid_topic_name and valid_topic_filter follow MQTT 5 section 4.7", "[mqtt][codec]") {
    struct row {
        std::string_view s;
        bool name, filter;
    };
    const row table[] = {
        {"a/b/c", true, true},   {"a/+/b", false, true}, {"#", false, true},
        {"a/#", false, true},    {"+", false, true},     {"+/+", false, true},
        {"/+", false, true},     {"+/", false, true},    {"a+/b", false, false},
        {"a/b+", false, false},  {"a/+b", false, false}, {"a/#/b", false, false},
        {"a#", false, false},    {"#/", false, false},   {"##", false, false},
        {"", false, false},      {"$SYS/#", false, true}, {"$SYS/broker/load", true, true},
        {"/", true, true},       {"a//b", true, true},   {" ", true, true},
        {"€/x", true, true},     {"$share/g/a/+", false, true}, {"++", false, false},
    };
    for (const row& r : table) {
        INFO('"' << r.s << '"');
        CHECK(mqtt::valid_topic_name(r.s) == r.name);
        CHECK(mqtt::valid_topic_filter(r.s) == r.filter);
    }
}

TEST_CASE("reason codes have their spec values and names", "[mqtt][codec]") {
    CHECK(static_cast<int>(reason::normal_disconnection) == 0);
    CHECK(static_cast<int>(reason::granted_qos_0) == 0);
    CHECK(static_cast<int>(reason::malformed_packet) == 0x81);
    CHECK(static_cast<int>(reason::packet_too_large) == 0x95);
    CHECK(static_cast<int>(reason::wildcard_subscriptions_not_supported) == 0xa2);
    CHECK(mqtt::to_string(reason::malformed_packet) == "malformed_packet");
    CHECK(mqtt::to_string(reason::normal_disconnection) == "success");
    CHECK(mqtt::to_string(reason::topic_filter_invalid) == "topic_filter_invalid");
    CHECK(mqtt::to_string(static_cast<reason>(0x03)).empty());
    CHECK(mqtt::is_error(reason::unspecified_error));
    CHECK_FALSE(mqtt::is_error(reason::no_matching_subscribers));
    // Every defined value has a name: 43 in MQTT 5 §2.4.
    int named = 0;
    for (int i = 0; i < 256; ++i) named += !mqtt::to_string(static_cast<reason>(i)).empty();
    CHECK(named == 43);

    using mqtt::connack_v3;
    CHECK(mqtt::to_connack_v3(reason::success) == connack_v3::accepted);
    CHECK(mqtt::to_connack_v3(reason::unsupported_protocol_version) ==
          connack_v3::unacceptable_protocol_version);
    CHECK(mqtt::to_connack_v3(reason::client_identifier_not_valid) ==
          connack_v3::identifier_rejected);
    CHECK(mqtt::to_connack_v3(reason::bad_user_name_or_password) ==
          connack_v3::bad_user_name_or_password);
    CHECK(mqtt::to_connack_v3(reason::not_authorized) == connack_v3::not_authorized);
    CHECK(mqtt::to_connack_v3(reason::server_busy) == connack_v3::server_unavailable);
    CHECK(mqtt::to_string(connack_v3::identifier_rejected) == "identifier_rejected");
}
