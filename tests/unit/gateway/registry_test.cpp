// tests/unit/gateway/registry_test.cpp — the adapter registry: one descriptor per protocol, found
// by wire and by name; detectors that are disjoint on each protocol's opening; probes built on
// the protocol's codec; the kernel's half (which protocols it speaks).
#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <variant>

#include "adapters/mqtt/codec.hpp"
#include "adapters/stomp/codec.hpp"
#include "gateway/kernel_adapters.hpp"
#include "gateway/registry.hpp"

using namespace sb::gateway;

namespace {

std::span<const std::byte> bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

}  // namespace

TEST_CASE("registry: one descriptor per wire, found by id and by name", "[gateway][registry]") {
    REQUIRE(protocols().size() == wire_count);
    std::set<std::string_view> names;
    for (std::size_t i = 0; i < wire_count; ++i) {
        const auto* p = protocols()[i];
        CHECK(p->id == static_cast<wire>(i));
        CHECK(&protocol_of(p->id) == p);
        CHECK(protocol_named(p->name) == p);
        CHECK(p->detect != nullptr);
        names.insert(p->name);
    }
    CHECK(names.size() == wire_count);
    CHECK(protocol_named("websocket") == nullptr);
    CHECK(protocol_named("") == nullptr);
}

TEST_CASE("registry: each opening is claimed by its own detector only", "[gateway][registry]") {
    const std::pair<wire, std::string> openings[] = {
        {wire::stomp, "CONNECT\n"},
        {wire::stomp, "\r\nSTOMP\r\n"},
        {wire::mqtt, std::string("\x10\x0f\x00\x04MQTT", 8)},
        {wire::amqp, std::string("AMQP\x00\x01\x00\x00", 8)},
        {wire::openwire, std::string("\x00\x00\x01\x00\x01" "ActiveMQ", 13)},
        {wire::http, "GET /mqtt HTTP/1.1"},
        {wire::http, "CONNECT host:1 HTTP/1.1"},
    };
    for (const auto& [w, opening] : openings) {
        for (const auto* p : protocols()) {
            INFO(p->name << " on an opening of " << protocol_of(w).name);
            CHECK(p->detect(bytes(opening)) == (p->id == w ? sniff::yes : sniff::no));
        }
    }
    // Nothing yet: every protocol is still possible.
    for (const auto* p : protocols()) CHECK(p->detect({}) == sniff::maybe);
}

TEST_CASE("registry: the kernel speaks STOMP, MQTT, AMQP and OpenWire; HTTP has no kernel adapter yet", "[gateway][registry]") {
    CHECK(kernel_speaks(wire::stomp));
    CHECK(kernel_speaks(wire::mqtt));
    CHECK(kernel_speaks(wire::amqp));
    CHECK(kernel_speaks(wire::openwire));
    CHECK_FALSE(kernel_speaks(wire::http));
    CHECK(wire_of(protocol::stomp) == wire::stomp);
    CHECK(wire_of(protocol::mqtt) == wire::mqtt);
    CHECK(wire_of(protocol::amqp) == wire::amqp);
    CHECK(wire_of(protocol::openwire) == wire::openwire);
    CHECK(!wire_of(protocol::automatic));
    CHECK(!wire_of(protocol::tcp));
}

TEST_CASE("registry: WebSocket subprotocols, refusals and checks per protocol", "[gateway][registry]") {
    auto subprotocols = [](wire w) {
        const auto s = protocol_of(w).websocket_subprotocols;
        return std::set<std::string_view>(s.begin(), s.end());
    };
    CHECK(subprotocols(wire::mqtt) == std::set<std::string_view>{"mqtt", "mqttv3.1"});
    CHECK(subprotocols(wire::stomp) == std::set<std::string_view>{"v10.stomp", "v11.stomp", "v12.stomp"});
    CHECK(subprotocols(wire::amqp) == std::set<std::string_view>{"amqp"});
    CHECK(subprotocols(wire::openwire).empty());
    // Only the protocols whose clients understand one are told why they are closed.
    CHECK(protocol_of(wire::stomp).refusal != nullptr);
    CHECK(protocol_of(wire::mqtt).refusal != nullptr);
    CHECK(protocol_of(wire::amqp).refusal == nullptr);
    // Every protocol has a check, named as the protocol.
    for (const auto* p : protocols()) {
        REQUIRE(p->check != nullptr);
        CHECK(check_type_name(p->check->type) == p->name);
    }
    CHECK(check_type_name(check_type::tcp) == "tcp");
    CHECK(check_type_name(check_type::none) == "none");
}

TEST_CASE("registry: the MQTT and STOMP checks speak what their codecs read back", "[gateway][registry][check]") {
    check_config c;
    c.type = check_type::mqtt;
    const probe m = make_probe(c, "h", "check-1");
    const auto mb = std::span(reinterpret_cast<const std::uint8_t*>(m.request.data()), m.request.size());
    const auto md = sb::mqtt::decode(mb, {}, sb::mqtt::version::v3_1_1);
    const auto* d = std::get_if<sb::mqtt::decoded>(&md);
    REQUIRE(d);
    const auto* connect = std::get_if<sb::mqtt::connect>(&d->frame);
    REQUIRE(connect);
    CHECK(connect->client_id == "check-1");
    CHECK(connect->clean_start);
    CHECK(d->consumed == m.request.size());
    std::string why;
    // A CONNACK with reserved flags set is no CONNACK (the codec says so).
    CHECK(m.judge(std::string_view("\x20\x02\x02\x00", 4), why) == probe::verdict::down);

    c.type = check_type::stomp;
    const probe s = make_probe(c, "broker.example", "id");
    const auto sb_ = std::span(reinterpret_cast<const std::uint8_t*>(s.request.data()), s.request.size());
    sb::stomp::frame f;
    std::string scratch;
    const auto sd = sb::stomp::decode(sb_, {}, sb::stomp::version::v1_2, f, scratch);
    REQUIRE(std::holds_alternative<sb::stomp::decoded>(sd));
    CHECK(f.cmd == sb::stomp::command::connect);
    CHECK(f.get("host") == "broker.example");
    // An ERROR frame's message comes from the codec, escapes and all; a malformed one is down at
    // once, without waiting for a NUL.
    CHECK(s.judge(std::string("ERROR\nmessage:full\\cdisk\n\n\0", 27), why) == probe::verdict::down);
    CHECK(why == "ERROR full:disk");
    CHECK(s.judge("ERROR\nno colon here\n", why) == probe::verdict::down);
}
