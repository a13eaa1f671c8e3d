// tests/bench/mqtt_wire_test.cpp — the bench's MQTT 3.1.1 packets: round trips, byte layouts
// from the spec, and need-more for every split.
#include <catch2/catch.hpp>

#include <vector>

#include "tests/bench/mqtt_wire.hpp"

using namespace sb::bench;

namespace {

std::span<const std::uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

mqtt_packet decode_one(const std::string& s) {
    const auto r = mqtt_decode(bytes(s), 1 << 20);
    const auto* d = std::get_if<mqtt_decoded>(&r);
    REQUIRE(d);
    REQUIRE(d->consumed == s.size());
    return d->packet;
}

}  // namespace

TEST_CASE("CONNECT is laid out as MQTT 3.1.1 §3.1 says", "[bench][mqtt]") {
    std::string out;
    mqtt_encode_connect(out, "ab", 60, true);
    const std::string want{"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02" "ab", 16};
    REQUIRE(out == want);
    const auto c = mqtt_parse_connect(decode_one(out));
    REQUIRE(c);
    CHECK(c->client_id == "ab");
    CHECK(c->keepalive_s == 60);
    CHECK(c->clean_session);
}

TEST_CASE("CONNECT with a user name and password sets both flags", "[bench][mqtt]") {
    std::string out;
    mqtt_encode_connect(out, "c", 0, true, "guest", "pw");
    const auto p = decode_one(out);
    REQUIRE(p.type == mqtt_type::connect);
    CHECK(p.body[7] == 0xc2);  // user name, password, clean session
}

TEST_CASE("PUBLISH round-trips at every QoS", "[bench][mqtt]") {
    const std::vector<std::uint8_t> payload{1, 2, 3, 0, 255};
    for (std::uint8_t qos : {0, 1, 2}) {
        std::string out;
        mqtt_encode_publish(out, "bench/0", qos, qos ? 513 : 0, payload);
        const auto v = mqtt_parse_publish(decode_one(out));
        REQUIRE(v);
        CHECK(v->topic == "bench/0");
        CHECK(v->qos == qos);
        CHECK(v->packet_id == (qos ? 513 : 0));
        CHECK(std::vector<std::uint8_t>(v->payload.begin(), v->payload.end()) == payload);
    }
}

TEST_CASE("a PUBLISH header written ahead of its payload matches the whole-packet encoder", "[bench][mqtt]") {
    const std::vector<std::uint8_t> payload(300, 7);  // remaining length needs two bytes
    std::string whole, split;
    mqtt_encode_publish(whole, "t", 1, 9, payload);
    mqtt_encode_publish_header(split, "t", 1, 9, payload.size());
    split.append(payload.begin(), payload.end());
    CHECK(whole == split);
}

TEST_CASE("acknowledgements carry their packet id; PUBREL has flags 0b0010", "[bench][mqtt]") {
    for (auto t : {mqtt_type::puback, mqtt_type::pubrec, mqtt_type::pubrel, mqtt_type::pubcomp}) {
        std::string out;
        mqtt_encode_ack(out, t, 0x1234);
        CHECK(out.size() == 4);
        const auto p = decode_one(out);
        CHECK(p.type == t);
        CHECK(p.flags == (t == mqtt_type::pubrel ? 2 : 0));
        CHECK(mqtt_parse_packet_id(p) == 0x1234);
    }
}

TEST_CASE("SUBSCRIBE, SUBACK and CONNACK round-trip", "[bench][mqtt]") {
    std::string out;
    mqtt_encode_subscribe(out, 7, "bench/3", 2);
    const auto sub = decode_one(out);
    CHECK(sub.flags == 2);
    const auto s = mqtt_parse_subscribe(sub);
    REQUIRE(s);
    CHECK(s->packet_id == 7);
    CHECK(s->filter == "bench/3");
    CHECK(s->qos == 2);

    out.clear();
    mqtt_encode_suback(out, 7, 0x80);
    CHECK(mqtt_parse_suback(decode_one(out)) == 0x80);

    out.clear();
    mqtt_encode_connack(out, 5);
    CHECK(mqtt_parse_connack(decode_one(out)) == 5);
}

TEST_CASE("a SUBSCRIBE with many filters, and a SUBACK with a code for each", "[bench][mqtt]") {
    std::vector<std::string> filters;
    for (int i = 0; i < 1000; ++i) filters.push_back("+/bg" + std::to_string(i) + "/#");
    std::string out;
    mqtt_encode_subscribe(out, 9, filters, 1);
    const auto sub = decode_one(out);
    CHECK(sub.flags == 2);
    const auto first = mqtt_parse_subscribe(sub);
    REQUIRE(first);
    CHECK(first->packet_id == 9);
    CHECK(first->filter == "+/bg0/#");
    CHECK(first->qos == 1);
    std::size_t bytes = 2;
    for (const auto& f : filters) bytes += 2 + f.size() + 1;
    CHECK(sub.body.size() == bytes);
    CHECK(sub.body.back() == 1);   // the last filter's QoS ends the packet

    // A broker's SUBACK: packet id, then one code per filter.
    const std::string suback{'\x90', 5, 0, 9, 0, '\x80', 1};
    const auto a = mqtt_parse_suback_all(decode_one(suback));
    REQUIRE(a);
    CHECK(a->packet_id == 9);
    CHECK(std::vector<std::uint8_t>(a->codes.begin(), a->codes.end()) == std::vector<std::uint8_t>{0, 0x80, 1});
}

TEST_CASE("PINGREQ, PINGRESP and DISCONNECT are two bytes", "[bench][mqtt]") {
    std::string out;
    mqtt_encode_pingreq(out);
    mqtt_encode_pingresp(out);
    mqtt_encode_disconnect(out);
    CHECK(out == std::string("\xc0\x00\xd0\x00\xe0\x00", 6));
}

TEST_CASE("decode reports need_more for every split of a packet stream", "[bench][mqtt]") {
    std::string stream;
    mqtt_encode_connack(stream, 0);
    mqtt_encode_publish(stream, "a/b", 1, 1, std::vector<std::uint8_t>(200, 'x'));
    mqtt_encode_ack(stream, mqtt_type::puback, 1);
    const auto all = bytes(stream);
    for (std::size_t cut = 0; cut <= all.size(); ++cut) {
        std::size_t pos = 0, packets = 0;
        auto feed = [&](std::span<const std::uint8_t> avail) {
            while (true) {
                const auto r = mqtt_decode(avail.subspan(pos), 1 << 20);
                REQUIRE_FALSE(std::holds_alternative<mqtt_malformed>(r));
                const auto* d = std::get_if<mqtt_decoded>(&r);
                if (!d) return;
                pos += d->consumed;
                ++packets;
            }
        };
        feed(all.first(cut));
        feed(all);
        CHECK(pos == all.size());
        CHECK(packets == 3);
    }
}

TEST_CASE("decode refuses reserved types, 5-byte lengths and oversized packets", "[bench][mqtt]") {
    const std::string reserved{"\x00\x00", 2};
    CHECK(std::holds_alternative<mqtt_malformed>(mqtt_decode(bytes(reserved), 1024)));
    const std::string five{"\x30\xff\xff\xff\xff\x01", 6};
    CHECK(std::holds_alternative<mqtt_malformed>(mqtt_decode(bytes(five), 1u << 30)));
    std::string big;
    mqtt_encode_publish_header(big, "t", 0, 0, 2000);
    CHECK(std::holds_alternative<mqtt_malformed>(mqtt_decode(bytes(big), 1024)));
}

TEST_CASE("malformed PUBLISH bodies are refused", "[bench][mqtt]") {
    const std::string qos3{"\x36\x03\x00\x01t", 5};
    CHECK_FALSE(mqtt_parse_publish(decode_one(qos3)));
    const std::string short_topic{"\x30\x02\x00\x05", 4};
    CHECK_FALSE(mqtt_parse_publish(decode_one(short_topic)));
    const std::string id_zero{"\x32\x05\x00\x01t\x00\x00", 7};
    CHECK_FALSE(mqtt_parse_publish(decode_one(id_zero)));
}
