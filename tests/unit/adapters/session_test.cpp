// tests/unit/adapters/session_test.cpp — the STOMP and MQTT sessions on an in-memory transport
// with a real one-worker kernel: no sockets, bounded waits. Both run the engine under the
// gateway's Asio driver (gateway/engine_driver); the sessions' own behaviour is covered
// deterministically in tests/unit/adapters/{stomp,mqtt}/session_test.cpp.
#include <catch2/catch.hpp>

#include "adapters/mqtt/session.hpp"
#include "adapters/stomp/session.hpp"
#include "gateway/engine_driver.hpp"
#include "tests/unit/adapters/memory_transport.hpp"

using namespace std::string_literals;
using sb::test::session_harness;

namespace {

auto has(std::string needle) {
    return [needle = std::move(needle)](const std::string& out) { return out.find(needle) != std::string::npos; };
}

session_harness::factory stomp_factory() {
    auto settings = std::make_shared<const sb::stomp::settings>();
    return [settings](std::unique_ptr<sb::net::transport> t, sb::core::broker& b, sb::core::auth_pool& a) {
        return sb::gateway::drive(sb::stomp::make_session(settings, b, a, 1), std::move(t));
    };
}

// One registry per factory (and so per harness and kernel).
session_harness::factory mqtt_factory() {
    auto settings = std::make_shared<const sb::mqtt::settings>();
    auto reg = std::make_shared<std::shared_ptr<sb::mqtt::registry>>();
    return [settings, reg](std::unique_ptr<sb::net::transport> t, sb::core::broker& b, sb::core::auth_pool& a) {
        if (!*reg) *reg = sb::mqtt::make_registry(b);
        return sb::gateway::drive(sb::mqtt::make_session(settings, b, a, *reg, 2), std::move(t));
    };
}

// The bytes after the CONNACK at the start of `out`.
std::string after_connack(const std::string& out) {
    if (out.size() < 2) return {};
    return out.substr(std::min(out.size(), std::size_t(2) + std::uint8_t(out[1])));
}

}  // namespace

TEST_CASE("a STOMP session connects, takes a SEND with a receipt and delivers it", "[stomp][session]") {
    session_harness h;
    auto p = h.open(stomp_factory());
    h.send(p, "CONNECT\naccept-version:1.1,1.2\nhost:x\n\n\0"s);
    auto out = h.wait_for(p, has("CONNECTED"));
    CHECK_THAT(out, Catch::Contains("version:1.2"));
    h.send(p, "SUBSCRIBE\nid:s\ndestination:/queue/a\n\n\0SEND\ndestination:/queue/a\nreceipt:r1\n\nhello\0"s);
    out = h.wait_for(p, [](const std::string& o) { return o.find("receipt-id:r1") != std::string::npos && o.find("hello") != std::string::npos; });
    CHECK_THAT(out, Catch::Contains("receipt-id:r1"));
    CHECK_THAT(out, Catch::Contains("MESSAGE\nsubscription:s"));
    CHECK_THAT(out, Catch::Contains("hello"));
}

TEST_CASE("a malformed STOMP frame gets an ERROR and the session closes its side", "[stomp][session]") {
    session_harness h;
    auto p = h.open(stomp_factory());
    h.send(p, "CONNECT\naccept-version:1.2\n\n\0SEND\nno colon here\n\nx\0"s);
    const auto out = h.wait_for(p, has("ERROR"));
    CHECK_THAT(out, Catch::Contains("message:malformed header"));
    CHECK(session_harness::wait_shutdown(p));
}

TEST_CASE("an MQTT 5 session connects and acknowledges a QoS 1 PUBLISH", "[mqtt][session]") {
    session_harness h;
    auto p = h.open(mqtt_factory());
    // CONNECT v5, clean start, keep-alive 0, no properties, client id "c"
    h.send(p, "\x10\x0e\x00\x04MQTT\x05\x02\x00\x00\x00\x00\x01\x63"s);
    auto out = h.wait_for(p, [](const std::string& o) { return !o.empty(); });
    REQUIRE(out.size() >= 4);
    CHECK(std::uint8_t(out[0]) == 0x20);   // CONNACK
    CHECK(std::uint8_t(out[3]) == 0x00);   // success
    // PUBLISH QoS 1 to "t", packet id 7, no properties, payload "x"
    h.send(p, "\x32\x07\x00\x01t\x00\x07\x00x"s);
    out = h.wait_for(p, [](const std::string& o) { return after_connack(o).size() >= 5; });
    // PUBACK 7, reason 0x10: accepted, but nobody subscribed to "t" (MQTT 5 §3.4.2.1)
    CHECK(after_connack(out).substr(0, 5) == "\x40\x03\x00\x07\x10"s);
}

TEST_CASE("a malformed MQTT 5 packet gets DISCONNECT with its reason code", "[mqtt][session]") {
    session_harness h;
    auto p = h.open(mqtt_factory());
    h.send(p, "\x10\x0e\x00\x04MQTT\x05\x02\x00\x00\x00\x00\x01\x63"s);
    h.wait_for(p, [](const std::string& o) { return !o.empty(); });
    h.send(p, "\x36\x05\x00\x01t\x00\x00"s);   // PUBLISH with QoS 3: malformed
    const auto out = h.wait_for(p, [](const std::string& o) { return after_connack(o).size() >= 3; });
    const auto tail = after_connack(out);
    REQUIRE(tail.size() >= 3);
    CHECK(std::uint8_t(tail[0]) == 0xe0);   // DISCONNECT
    CHECK(std::uint8_t(tail[2]) == 0x81);   // malformed packet
    CHECK(session_harness::wait_shutdown(p));
}

TEST_CASE("an MQTT session lingers for its linger_ms setting, then closes", "[mqtt][session]") {
    auto settings = std::make_shared<sb::mqtt::settings>();
    settings->linger_ms = 50;
    auto reg = std::make_shared<std::shared_ptr<sb::mqtt::registry>>();
    session_harness h;
    auto p = h.open([settings = std::shared_ptr<const sb::mqtt::settings>(settings), reg](
                        std::unique_ptr<sb::net::transport> t, sb::core::broker& b, sb::core::auth_pool& a) {
        if (!*reg) *reg = sb::mqtt::make_registry(b);
        return sb::gateway::drive(sb::mqtt::make_session(settings, b, a, *reg, 3), std::move(t));
    });
    h.send(p, "\x10\x0e\x00\x04MQTT\x05\x02\x00\x00\x00\x00\x01\x63"s);
    h.wait_for(p, [](const std::string& o) { return !o.empty(); });
    h.send(p, "\x36\x05\x00\x01t\x00\x00"s);   // malformed: DISCONNECT, then the linger
    CHECK(session_harness::wait_shutdown(p));
    // The peer never closes its side: the session closes once its linger is over, well within
    // the 2 s that used to be hard-coded.
    std::unique_lock lock(p->mutex);
    CHECK(p->changed.wait_for(lock, std::chrono::milliseconds(1500), [&] { return p->session_closed; }));
}
