// tests/unit/adapters/mqtt/mapping_test.cpp — MQTT topics and PUBLISH <-> message, per DESIGN.md.
#include <catch2/catch.hpp>

#include "adapters/mqtt/mapping.hpp"

using namespace sb::mqtt;
namespace core = sb::core;

TEST_CASE("MQTT topics swap '/' and '.' and map wildcards to kernel names", "[mqtt][mapping]") {
    CHECK(to_kernel_topic("a/b.c") == "a.b/c");
    CHECK(to_kernel_topic("sensors/+/temp") == "sensors.*.temp");
    CHECK(to_kernel_topic("sensors/#") == "sensors.>");
    CHECK(to_kernel_topic("/leading") == ".leading");
    CHECK(to_mqtt_topic("a.b/c") == "a/b.c");
    CHECK(to_mqtt_topic("x.*.>") == "x/+/#");
    for (std::string t : {"a/b", "a//b", "$SYS/x", "a.b.c/d", "/"})
        CHECK(to_mqtt_topic(to_kernel_topic(t)) == t);
}

TEST_CASE("shared subscription filters are split into group and filter", "[mqtt][mapping]") {
    auto s = parse_share("$share/g1/a/+/c");
    REQUIRE(s);
    CHECK(s->group == "g1");
    CHECK(s->filter == "a/+/c");
    CHECK_FALSE(parse_share("a/b"));
    CHECK(parse_share("$share/g1")->group.empty());      // no filter: malformed
    CHECK(parse_share("$share//a")->group.empty());      // empty group
    CHECK(parse_share("$share/g+/a")->group.empty());    // wildcard in the group
}

TEST_CASE("an inbound PUBLISH becomes a kernel message with its v5 properties", "[mqtt][mapping]") {
    const std::string payload("\x00\xff" "bytes", 7);
    const std::string corr = "c-1";
    publish p;
    p.qos = 1;
    p.retain = true;
    p.topic = "a/b";
    p.payload = std::span(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size());
    p.props.message_expiry_interval = 30;
    p.props.content_type = "application/octet-stream";
    p.props.response_topic = "replies/x";
    p.props.correlation_data = std::span(reinterpret_cast<const std::uint8_t*>(corr.data()), corr.size());
    p.props.user_properties.push_back({"k", "v"});
    p.props.user_properties.push_back({"k", "w"});   // MQTT allows repeats; both are kept
    const auto m = message_from_publish(p, p.topic, 1'000'000);
    CHECK(m.dest == core::destination{core::dest_kind::topic, "a.b"});
    CHECK(m.persistent);
    CHECK(m.origin_qos == 1);
    CHECK(m.retain);
    CHECK(m.expiration_ms == 1'030'000);
    CHECK(m.content_type == "application/octet-stream");
    REQUIRE(m.reply_to);
    CHECK(m.reply_to->name == "replies.x");
    CHECK(m.correlation_id == "c-1");
    CHECK(m.kind == core::body_kind::bytes);
    CHECK(m.body == payload);
    REQUIRE(m.properties.size() == 2);
    CHECK(std::get<std::string>(m.properties[1].value) == "w");
}

TEST_CASE("outbound properties carry the remaining expiry and the mapped fields", "[mqtt][mapping]") {
    core::message m;
    m.expiration_ms = 1'010'500;
    m.reply_to = core::destination{core::dest_kind::topic, "r.s"};
    m.correlation_id = "id";
    m.kind = core::body_kind::text;
    m.properties.push_back({"n", std::int32_t(5)});
    m.properties.push_back({"s", std::string("t")});
    properties out;
    std::vector<std::string> storage;
    publish_properties(m, 1'000'000, out, storage);
    CHECK(out.message_expiry_interval == 11u);   // 10.5 s left, to the nearest second
    CHECK(out.response_topic == "r/s");
    CHECK(out.payload_format_indicator == 1);
    REQUIRE(out.user_properties.size() == 2);
    CHECK(out.user_properties[0].value == "5");
    CHECK(out.user_properties[1].value == "t");
    std::vector<std::string> storage2;
    for (const auto& [left_ms, sent] : {std::pair{9'998, 10u}, {7'800, 8u}, {1'200, 1u}, {1, 1u}}) {
        properties again;
        publish_properties(m, m.expiration_ms - left_ms, again, storage2);
        CHECK(again.message_expiry_interval == sent);
    }
}

TEST_CASE("messages from other protocols are offered at QoS 2 when persistent, else 0", "[mqtt][mapping]") {
    core::message m;
    CHECK(message_qos(m) == 0);
    m.persistent = true;
    CHECK(message_qos(m) == 2);
    m.origin_qos = 1;
    CHECK(message_qos(m) == 1);
}
