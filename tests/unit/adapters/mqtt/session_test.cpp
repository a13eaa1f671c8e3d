// tests/unit/adapters/mqtt/session_test.cpp — the MQTT session in its connection engine,
// driven deterministically: a manual clock, the manual executor with the memory store, no
// threads and no sleeps (tests/unit/adapters/engine_harness.hpp).
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "adapters/mqtt/session.hpp"
#include "tests/unit/adapters/engine_harness.hpp"

using namespace std::chrono_literals;
using namespace std::string_literals;
using sb::engine::phase;
using sb::test::engine_harness;
namespace mqtt = sb::mqtt;

namespace {

std::shared_ptr<mqtt::settings> settings() {
    auto s = std::make_shared<mqtt::settings>();
    s->connect_timeout_ms = 1000;
    s->linger_ms = 500;
    return s;
}

// The engine harness with an MQTT session registry on its kernel.
struct mqtt_harness : engine_harness {
    std::shared_ptr<mqtt::registry> reg = mqtt::make_registry(broker());
};

// A session on `h`'s kernel (a new one replaces the last: takeovers, wills, retained messages
// and persistent sessions carry over through the kernel and the registry).
void open(mqtt_harness& h, std::shared_ptr<const mqtt::settings> s = settings()) {
    h.open(mqtt::make_session(std::move(s), h.broker(), h.auth(), h.reg, 9));
}

std::string bytes(const mqtt::packet& p, mqtt::version v) {
    std::string out;
    mqtt::encode(p, v, out);
    return out;
}

struct will_args {
    std::string_view topic;
    std::string_view payload;
    bool retain = false;
};

std::string connect(mqtt::version v, std::string_view client_id, std::uint16_t keep_alive,
                    std::optional<will_args> w = std::nullopt) {
    mqtt::connect c;
    c.ver = v;
    c.protocol_name = "MQTT";
    c.client_id = client_id;
    c.keep_alive = keep_alive;
    if (w) {
        mqtt::will wm;
        wm.topic = w->topic;
        wm.payload = std::span(reinterpret_cast<const std::uint8_t*>(w->payload.data()), w->payload.size());
        wm.retain = w->retain;
        c.will_msg = wm;
    }
    return bytes(mqtt::packet{c}, v);
}

std::string publish(mqtt::version v, std::string_view topic, std::uint8_t qos, std::uint16_t id, std::string_view body,
                    std::optional<std::uint16_t> alias = std::nullopt) {
    mqtt::publish p;
    p.qos = qos;
    p.topic = topic;
    p.packet_id = id;
    p.payload = std::span(reinterpret_cast<const std::uint8_t*>(body.data()), body.size());
    p.props.topic_alias = alias;
    return bytes(mqtt::packet{p}, v);
}

std::string subscribe(mqtt::version v, std::uint16_t id, std::string_view filter, std::uint8_t qos) {
    mqtt::subscribe s;
    s.packet_id = id;
    s.topics.push_back(mqtt::subscription{filter, qos});
    return bytes(mqtt::packet{s}, v);
}

// The packets in `wire` (server to client), decoded with `v`; `wire` must outlive them.
std::vector<mqtt::packet> packets(const std::string& wire, mqtt::version v) {
    std::vector<mqtt::packet> out;
    auto in = std::span(reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size());
    mqtt::limits lim;
    while (!in.empty()) {
        auto r = mqtt::decode(in, lim, v);
        auto* d = std::get_if<mqtt::decoded>(&r);
        if (!d) throw std::runtime_error("the session wrote a packet that does not decode");
        out.push_back(d->frame);
        in = in.subspan(d->consumed);
    }
    return out;
}

template <typename T>
const T& as(const mqtt::packet& p) {
    const auto* t = std::get_if<T>(&p);
    if (!t) throw std::runtime_error("another packet type");
    return *t;
}

// A v3.1.1 client that connected (CONNACK taken).
void connected(mqtt_harness& h, std::string_view id = "c", std::uint16_t keep_alive = 60,
               mqtt::version v = mqtt::version::v3_1_1) {
    h.send(connect(v, id, keep_alive));
    REQUIRE(h.conn->state() == phase::open);
    h.take();
}

}  // namespace

TEST_CASE("MQTT 3.1.1 CONNECT gets CONNACK 0 and opens with a keep-alive of 1.5 x", "[mqtt][session][engine]") {
    mqtt_harness h;
    open(h);
    CHECK(h.conn->state() == phase::opening);
    const auto started = h.driver->t;
    h.send(connect(mqtt::version::v3_1_1, "c311", 10));
    CHECK(h.take() == "\x20\x02\x00\x00"s);
    CHECK(h.conn->state() == phase::open);
    CHECK(h.conn->next_deadline() == started + 15s);   // MQTT §3.1.2.10
    CHECK_FALSE(h.conn->holds_buffers());              // idle: no input, no output storage
}

TEST_CASE("MQTT 5 CONNECT gets a CONNACK with the server's limits and an assigned client id", "[mqtt][session][engine]") {
    mqtt_harness h;
    open(h);
    h.send(connect(mqtt::version::v5, "", 0));
    const auto wire = h.take();
    const auto ps = packets(wire, mqtt::version::v5);
    REQUIRE(ps.size() == 1);
    const auto& ack = as<mqtt::connack>(ps[0]);
    CHECK(ack.code == 0);
    CHECK_FALSE(ack.session_present);
    CHECK(ack.props.receive_maximum == std::optional<std::uint16_t>(1024));
    CHECK(ack.props.topic_alias_maximum == std::optional<std::uint16_t>(64));
    REQUIRE(ack.props.assigned_client_identifier);
    CHECK(ack.props.assigned_client_identifier->starts_with("sb-9-"));
    CHECK(ack.props.server_keep_alive == std::optional<std::uint16_t>(65535));   // keep-alive 0: the maximum
    CHECK(h.conn->state() == phase::open);
}

TEST_CASE("MQTT CONNECT refusals: bad credentials, and an unsupported protocol level", "[mqtt][session][engine]") {
    mqtt_harness h;
    open(h);
    SECTION("v3.1.1, refused user: return code 4, then closing") {
        mqtt::connect c;
        c.protocol_name = "MQTT";
        c.client_id = "x";
        c.username = "intruder";
        h.send(bytes(mqtt::packet{c}, mqtt::version::v3_1_1));
        CHECK(h.take() == "\x20\x02\x00\x04"s);
        CHECK(h.conn->state() == phase::closing);
        CHECK(h.shut);
    }
    SECTION("level 6: the MQTT 5 answer 0x84") {
        h.send("\x10\x0d\x00\x04MQTT\x06\x02\x00\x3c\x00\x01x"s);
        const auto out = h.take();
        REQUIRE(out.size() >= 4);
        CHECK(std::uint8_t(out[0]) == 0x20);
        CHECK(std::uint8_t(out[3]) == 0x84);
        CHECK(h.conn->state() == phase::closing);
    }
}

TEST_CASE("an MQTT connection without CONNECT in time is closed at the connect deadline", "[mqtt][session][engine]") {
    mqtt_harness h;
    open(h);
    h.advance(999ms);
    CHECK(h.conn->state() == phase::opening);
    h.advance(1ms);
    CHECK(h.conn->closed());
    CHECK(h.take().empty());
}

TEST_CASE("MQTT keep-alive: silence for 1.5 periods ends the connection, and its will goes out", "[mqtt][session][engine]") {
    mqtt_harness h;
    open(h);
    h.send(connect(mqtt::version::v5, "k", 10, will_args{"wills/k", "gone", true}));
    h.take();
    h.advance(9s);
    h.send(bytes(mqtt::packet{mqtt::pingreq{}}, mqtt::version::v5));   // a packet: the period starts again
    CHECK(h.take() == "\xd0\x00"s);
    h.advance(14999ms);
    CHECK(h.conn->state() == phase::open);
    h.advance(1ms);
    // MQTT 5: DISCONNECT 0x8D Keep alive timeout, then the linger.
    CHECK(h.take() == "\xe0\x01\x8d"s);
    CHECK(h.conn->state() == phase::closing);
    h.advance(500ms);
    CHECK(h.conn->closed());

    // The will was published (retained): a new subscriber gets it.
    open(h);
    connected(h, "watcher");
    h.send(subscribe(mqtt::version::v3_1_1, 1, "wills/#", 0));
    const auto wire = h.take();
    const auto ps = packets(wire, mqtt::version::v3_1_1);
    REQUIRE(ps.size() == 2);
    CHECK(std::holds_alternative<mqtt::suback>(ps[0]));
    const auto& will = as<mqtt::publish>(ps[1]);
    CHECK(will.topic == "wills/k");
    CHECK(will.retain);
}

TEST_CASE("MQTT stops reading at receive_maximum unacknowledged QoS 1 publishes and resumes as they complete",
          "[mqtt][session][engine]") {
    auto s = settings();
    s->receive_maximum = 2;
    s->max_unconfirmed_sends = 2;
    mqtt_harness h;
    open(h, s);
    connected(h);
    const auto v = mqtt::version::v3_1_1;
    h.feed_only(publish(v, "t", 1, 1, "a") + publish(v, "t", 1, 2, "b") + publish(v, "t", 1, 3, "c"));
    CHECK(h.conn->unconfirmed() == 2);   // the kernel has not answered yet
    CHECK_FALSE(h.conn->wants_read());
    CHECK(h.conn->buffered_input() > 0);   // the third PUBLISH waits, undecoded
    h.pump();
    // PUBACK 1, 2, then the third is decoded and acknowledged too.
    CHECK(h.take() == "\x40\x02\x00\x01\x40\x02\x00\x02\x40\x02\x00\x03"s);
    CHECK(h.conn->wants_read());
    CHECK(h.conn->unconfirmed() == 0);
    CHECK(h.conn->buffered_input() == 0);
}

TEST_CASE("MQTT QoS 0 publishes count as unconfirmed until the kernel took them", "[mqtt][session][engine]") {
    auto s = settings();
    s->max_unconfirmed_sends = 3;
    mqtt_harness h;
    open(h, s);
    connected(h);
    std::string burst;
    for (int i = 0; i < 5; ++i) burst += publish(mqtt::version::v3_1_1, "q0", 0, 0, "x");
    h.feed_only(burst);
    CHECK(h.conn->unconfirmed() == 3);
    CHECK_FALSE(h.conn->wants_read());
    h.pump();
    CHECK(h.conn->unconfirmed() == 0);
    CHECK(h.conn->wants_read());
    CHECK(h.conn->buffered_input() == 0);
    CHECK(h.take().empty());   // QoS 0: nothing goes back
}

TEST_CASE("MQTT output over the high watermark pauses consumers and reading until it drains", "[mqtt][session][engine]") {
    auto s = settings();
    s->output.high_watermark = 400;
    s->output.low_watermark = 100;
    mqtt_harness h;
    open(h, s);
    connected(h);
    const auto v = mqtt::version::v3_1_1;
    h.send(subscribe(v, 1, "big", 0));
    CHECK(h.take() == "\x90\x03\x00\x01\x00"s);

    h.hold_writes = true;   // the peer stops reading
    const std::string body(150, 'b');
    for (int i = 0; i < 6; ++i) h.send(publish(v, "big", 0, 0, body));
    CHECK(h.start_held_write() > 0);
    h.pump();
    CHECK(h.conn->queued_output() > 400);
    CHECK(h.conn->consumers_paused());
    CHECK_FALSE(h.conn->wants_read());
    h.send(bytes(mqtt::packet{mqtt::pingreq{}}, v));   // waits in the socket
    CHECK_FALSE(h.unread.empty());

    // The peer reads: the output drains, the consumers resume, the PINGREQ is answered.
    h.hold_writes = false;
    h.finish_held_write();
    const auto wire = h.take();
    CHECK_FALSE(h.conn->consumers_paused());
    CHECK(h.conn->wants_read());
    CHECK(h.unread.empty());
    const auto ps = packets(wire, v);
    std::size_t published = 0, pingresps = 0;
    for (const auto& p : ps) {
        published += std::holds_alternative<mqtt::publish>(p);
        pingresps += std::holds_alternative<mqtt::pingresp>(p);
    }
    CHECK(published == 6);
    CHECK(pingresps == 1);
}

TEST_CASE("MQTT acks go out in packet order: a PUBCOMP that is ready waits behind a PUBACK awaiting the store",
          "[mqtt][session][engine]") {
    mqtt_harness h;
    open(h);
    connected(h, "o", 60, mqtt::version::v5);
    const auto v = mqtt::version::v5;
    mqtt::pubrel rel;
    rel.packet_id = 77;
    // A QoS 1 publish (its PUBACK waits for the store's confirmation), then a PUBREL (its
    // PUBCOMP needs no kernel at all).
    h.feed_only(publish(v, "ordered", 1, 5, "x") + bytes(mqtt::packet{rel}, v));
    CHECK(h.conn->queued_output() == 0);   // the PUBCOMP is ready but may not overtake
    h.pump();
    const auto wire = h.take();
    const auto ps = packets(wire, v);
    REQUIRE(ps.size() == 2);
    const auto& ack = as<mqtt::puback>(ps[0]);
    CHECK(ack.packet_id == 5);
    CHECK(ack.code == 0x10);   // no matching subscribers (MQTT 5 §3.4.2.1)
    const auto& comp = as<mqtt::pubcomp>(ps[1]);
    CHECK(comp.packet_id == 77);
    CHECK(comp.code == 0x92);   // packet identifier not found
}

TEST_CASE("MQTT SUBACK goes before the retained messages of the subscription", "[mqtt][session][engine]") {
    mqtt_harness h;
    open(h);
    connected(h);
    const auto v = mqtt::version::v3_1_1;
    mqtt::publish keep;
    keep.qos = 1;
    keep.retain = true;
    keep.topic = "r/1";
    keep.packet_id = 1;
    const std::string body = "kept";   // an empty retained payload would clear the topic
    keep.payload = std::span(reinterpret_cast<const std::uint8_t*>(body.data()), body.size());
    h.send(bytes(mqtt::packet{keep}, v));
    CHECK(h.take() == "\x40\x02\x00\x01"s);
    h.send(subscribe(v, 2, "r/#", 1));
    const auto wire = h.take();
    const auto ps = packets(wire, v);
    REQUIRE(ps.size() == 2);
    CHECK(as<mqtt::suback>(ps[0]).packet_id == 2);
    CHECK(as<mqtt::publish>(ps[1]).retain);
}

TEST_CASE("MQTT DISCONNECT closes: the send side shut, no will, closed once the peer leaves", "[mqtt][session][engine]") {
    mqtt_harness h;
    open(h);
    h.send(connect(mqtt::version::v3_1_1, "d", 60, will_args{"wills/d", "never", true}));
    h.take();
    h.send(bytes(mqtt::packet{mqtt::disconnect{}}, mqtt::version::v3_1_1));
    CHECK(h.conn->state() == phase::closing);
    CHECK(h.shut);
    CHECK(h.take().empty());
    h.peer_close();
    CHECK(h.conn->closed());

    // A normal DISCONNECT discards the will.
    open(h);
    connected(h, "watcher");
    h.send(subscribe(mqtt::version::v3_1_1, 1, "wills/#", 0));
    CHECK(h.take() == "\x90\x03\x00\x01\x00"s);
}

TEST_CASE("MQTT protocol errors close: v5 gets DISCONNECT with the reason, v3 just a close", "[mqtt][session][engine]") {
    mqtt_harness h;
    open(h);
    SECTION("v5: topic alias 0 is DISCONNECT 0x94, then the linger, then closed") {
        connected(h, "e5", 60, mqtt::version::v5);
        h.send(publish(mqtt::version::v5, "t", 0, 0, "x", std::uint16_t(0)));
        CHECK(h.take() == "\xe0\x01\x94"s);
        CHECK(h.conn->state() == phase::closing);
        CHECK(h.shut);
        h.send(bytes(mqtt::packet{mqtt::pingreq{}}, mqtt::version::v5));   // drained, not answered
        CHECK(h.take().empty());
        h.advance(500ms);
        CHECK(h.conn->closed());
    }
    SECTION("v5: a malformed packet is DISCONNECT 0x81") {
        connected(h, "m5", 60, mqtt::version::v5);
        h.send("\x30\x02\x00\x05"s);   // PUBLISH whose topic runs past the packet
        const auto out = h.take();
        REQUIRE(out.size() == 3);
        CHECK(out.substr(0, 2) == "\xe0\x01"s);
        CHECK(std::uint8_t(out[2]) == 0x81);
        CHECK(h.conn->state() == phase::closing);
    }
    SECTION("v3.1.1: a second CONNECT closes without a word") {
        connected(h, "e3");
        h.send(connect(mqtt::version::v3_1_1, "e3", 60));
        CHECK(h.take().empty());
        CHECK(h.conn->state() == phase::closing);
        CHECK(h.shut);
    }
    SECTION("a packet before CONNECT") {
        h.send(bytes(mqtt::packet{mqtt::pingreq{}}, mqtt::version::v3_1_1));
        CHECK(h.take().empty());
        CHECK(h.conn->state() == phase::closing);
    }
}

TEST_CASE("MQTT 5 at a broker shutdown: DISCONNECT 0x8B and no will", "[mqtt][session][engine]") {
    mqtt_harness h;
    open(h);
    h.send(connect(mqtt::version::v5, "s", 60, will_args{"wills/s", "no", true}));
    h.take();
    h.on_worker([&] { h.conn->stop(); });
    h.pump();
    CHECK(h.take() == "\xe0\x01\x8b"s);
    CHECK(h.conn->state() == phase::closing);
    h.peer_close();
    CHECK(h.conn->closed());

    open(h);
    connected(h, "watcher");
    h.send(subscribe(mqtt::version::v3_1_1, 1, "wills/#", 0));
    CHECK(h.take() == "\x90\x03\x00\x01\x00"s);   // SUBACK alone: no retained will
}

// ---- the kernel API v2: asynchronous authentication, connection_closed ----------------------

namespace {

// A kernel whose auth_pool lets no request wait for its hashing thread: every CONNECT with a
// user name is answered busy.
struct busy_harness : engine_harness {
    busy_harness() : engine_harness({}, {1, 0}) { authenticator().hashing = true; }
    std::shared_ptr<mqtt::registry> reg = mqtt::make_registry(broker());
};

std::string connect_as(mqtt::version v, std::string_view client_id, std::string_view user, bool clean = true) {
    mqtt::connect c;
    c.ver = v;
    c.protocol_name = "MQTT";
    c.client_id = client_id;
    c.clean_start = clean;
    c.keep_alive = 60;
    c.username = user;
    return bytes(mqtt::packet{c}, v);
}

}  // namespace

TEST_CASE("MQTT packets right after CONNECT wait for the asynchronous authentication, then go in order",
          "[mqtt][session][engine][auth]") {
    mqtt_harness h;
    open(h);
    const auto v = mqtt::version::v5;
    h.feed_only(connect(v, "early", 60) + publish(v, "t", 1, 1, "a") + publish(v, "t", 1, 2, "b"));
    // The answer is posted to the worker: until it runs, no CONNACK, and the packets after
    // CONNECT wait undecoded with reading paused.
    CHECK(h.conn->state() == phase::opening);
    CHECK(h.conn->queued_output() == 0);
    CHECK_FALSE(h.conn->wants_read());
    CHECK(h.conn->buffered_input() > 0);
    CHECK(h.conn->unconfirmed() == 0);
    REQUIRE(h.worker().run_one());   // the authentication's answer
    CHECK(h.conn->state() == phase::open);
    CHECK(h.conn->buffered_input() == 0);
    h.pump();
    const auto wire = h.take();
    const auto ps = packets(wire, v);
    REQUIRE(ps.size() == 3);
    CHECK(as<mqtt::connack>(ps[0]).code == 0);
    CHECK(as<mqtt::puback>(ps[1]).packet_id == 1);
    CHECK(as<mqtt::puback>(ps[2]).packet_id == 2);
}

TEST_CASE("MQTT CONNECT is refused as busy when the authentication queue is full", "[mqtt][session][engine][auth]") {
    busy_harness h;
    auto make = [&] { h.open(mqtt::make_session(settings(), h.broker(), h.auth(), h.reg, 9)); };
    make();
    SECTION("v5: CONNACK 0x89 Server busy") {
        h.send(connect_as(mqtt::version::v5, "b5", "someone") + bytes(mqtt::packet{mqtt::pingreq{}}, mqtt::version::v5));
        const auto wire = h.take();
        const auto ps = packets(wire, mqtt::version::v5);
        REQUIRE(ps.size() == 1);   // the PINGREQ after it was never handled
        CHECK(as<mqtt::connack>(ps[0]).code == 0x89);
    }
    SECTION("v3.1.1: return code 3, Server unavailable") {
        h.send(connect_as(mqtt::version::v3_1_1, "b3", "someone"));
        CHECK(h.take() == "\x20\x02\x00\x03"s);
    }
    CHECK(h.conn->state() == phase::closing);
    CHECK(h.shut);
}

TEST_CASE("MQTT CONNECT refusals keep their order with the asynchronous check: credentials first",
          "[mqtt][session][engine][auth]") {
    mqtt_harness h;
    open(h);
    // v3.1.1: an empty client id needs a clean session (return code 2) ...
    SECTION("good credentials: identifier rejected") {
        h.send(connect_as(mqtt::version::v3_1_1, "", "someone", false));
        CHECK(h.take() == "\x20\x02\x00\x02"s);
    }
    SECTION("refused credentials: bad user name or password") {   // ... but credentials go first
        h.send(connect_as(mqtt::version::v3_1_1, "", "intruder", false));
        CHECK(h.take() == "\x20\x02\x00\x04"s);
    }
    CHECK(h.conn->state() == phase::closing);
}

TEST_CASE("an MQTT connection that closes while its authentication is pending ignores the answer",
          "[mqtt][session][engine][auth]") {
    mqtt_harness h;
    open(h);
    h.feed_only(connect(mqtt::version::v3_1_1, "gone", 60, will_args{"wills/gone", "w", true}));
    h.on_worker([&] { h.conn->read_closed(); });
    CHECK(h.conn->closed());
    h.pump();
    CHECK(h.conn->closed());
    CHECK(h.take().empty());
    // Never connected: no will, and the client id is free.
    open(h);
    connected(h, "watcher");
    h.send(subscribe(mqtt::version::v3_1_1, 1, "wills/#", 0));
    CHECK(h.take() == "\x90\x03\x00\x01\x00"s);
    open(h);
    connected(h, "gone");
}

TEST_CASE("an MQTT connection's close deletes the temporary queue the kernel kept for it",
          "[mqtt][session][engine][auth]") {
    mqtt_harness h;
    open(h);
    connected(h, "t");
    sb::core::destination temp;
    h.on_worker([&] { temp = h.broker().create_temporary(9, sb::core::dest_kind::temp_queue); });
    h.run_kernel();
    auto publish_to_temp = [&] {
        std::optional<sb::core::publish_status> st;
        h.on_worker([&] {
            auto m = std::make_shared<sb::core::message>();
            m->dest = temp;
            m->id = h.broker().next_message_id();
            h.broker().publish(m, [&](sb::core::publish_status s) { st = s; });
        });
        h.run_kernel();
        return st;
    };
    CHECK(publish_to_temp() == sb::core::publish_status::ok);
    h.send(bytes(mqtt::packet{mqtt::disconnect{}}, mqtt::version::v3_1_1));
    REQUIRE(h.conn->state() >= phase::closing);
    CHECK(publish_to_temp() == sb::core::publish_status::no_destination);
}
