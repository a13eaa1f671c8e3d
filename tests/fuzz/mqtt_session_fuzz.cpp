// tests/fuzz/mqtt_session_fuzz.cpp — libFuzzer target for a whole MQTT session: the session in
// its connection engine on a one-worker kernel with the memory store, driven like
// gateway/engine_driver drives it, but by the input (tests/fuzz/session_fuzz.hpp).
//
// Input: 8 schedule bytes, then the byte stream from the client. Byte 0 picks the settings
// (small packet limits and receive maximum, watermarks, no retain, no topic aliases, a capped
// session expiry); bytes 1..7 seed the schedule. Seeds in tests/fuzz/corpus/mqtt_session/ are
// real sessions (v3.1.1 and v5, QoS 0/1/2 both ways, wills, aliases, persistent sessions).
//
// Checks, besides the shared ones: what the session writes is a sequence of well-formed
// server packets (CONNACK first and once, nothing a server never sends), nothing after a
// DISCONNECT; a connection that kept no session for later leaves nothing in flight.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>

#include <spdlog/spdlog.h>

#include "adapters/mqtt/codec.hpp"
#include "adapters/mqtt/session.hpp"
#include "tests/fuzz/session_fuzz.hpp"

namespace {

using namespace std::chrono_literals;
namespace mqtt = sb::mqtt;

std::shared_ptr<const mqtt::settings> settings_for(std::uint8_t b) {
    auto s = std::make_shared<mqtt::settings>();
    s->connect_timeout_ms = 1000;
    s->linger_ms = 200;
    s->max_keepalive_s = 5;
    if (b & 1) {
        s->packet_limits.max_packet_size = 512;
        s->packet_limits.max_properties = 8;
    }
    if (b & 2) {
        s->output.high_watermark = 300;
        s->output.low_watermark = 100;
        s->output.stall_timeout = 3000ms;
    }
    if (b & 4) {
        s->receive_maximum = 2;
        s->max_unconfirmed_sends = 2;
        s->default_prefetch = 2;
    }
    if (b & 8) {
        s->retain_available = false;
        s->topic_alias_maximum = 0;
        s->max_session_expiry_s = 1;
    }
    return s;
}

// The client's CONNECT (the first packet), as far as the checks need it.
struct client_connect {
    mqtt::version v = mqtt::version::v3_1_1;   // what the session writes in
    bool clean = true;   // no session beyond the connection: nothing of it may stay in flight
};

client_connect first_connect(std::span<const std::uint8_t> stream) {
    client_connect cc;
    const auto r = mqtt::decode(stream, mqtt::limits{}, mqtt::version::v3_1_1);
    const auto* d = std::get_if<mqtt::decoded>(&r);
    const auto* c = d ? std::get_if<mqtt::connect>(&d->frame) : nullptr;
    if (!c) return cc;   // no CONNECT: never connected
    cc.v = c->ver == mqtt::version::v5 ? mqtt::version::v5 : mqtt::version::v3_1_1;
    cc.clean = c->clean_start && (c->ver != mqtt::version::v5 || c->props.session_expiry_interval.value_or(0) == 0);
    return cc;
}

// What the session wrote must read back as server packets: CONNACK first and once, nothing a
// server never sends, nothing after DISCONNECT.
struct output_check {
    std::string pending;
    mqtt::version v;   // the client's; a refused CONNECT may be answered in the other
    bool connack_seen = false, disconnect_seen = false;

    void add(const std::string& bytes) {
        if (bytes.empty()) return;
        SB_FUZZ_CHECK(!disconnect_seen);
        pending += bytes;
        mqtt::limits wide;
        wide.max_packet_size = ~std::size_t{0} >> 1;
        wide.max_properties = ~std::size_t{0} >> 1;
        std::span<const std::uint8_t> in(reinterpret_cast<const std::uint8_t*>(pending.data()), pending.size());
        while (!in.empty()) {
            auto r = mqtt::decode(in, wide, v);
            if (!std::holds_alternative<mqtt::decoded>(r))
                r = mqtt::decode(in, wide, v == mqtt::version::v5 ? mqtt::version::v3_1_1 : mqtt::version::v5);
            const auto* d = std::get_if<mqtt::decoded>(&r);
            // Writes carry whole packets: nothing may be left unfinished or malformed.
            SB_FUZZ_CHECK(d != nullptr);
            SB_FUZZ_CHECK(!disconnect_seen);
            const auto& p = d->frame;
            if (std::holds_alternative<mqtt::connack>(p)) {
                SB_FUZZ_CHECK(!connack_seen);
                connack_seen = true;
            } else if (std::holds_alternative<mqtt::disconnect>(p)) {
                disconnect_seen = true;   // may come without a CONNACK (a refused v5 CONNECT gets one)
            } else {
                // Everything else only on an accepted connection, and only what a server sends.
                SB_FUZZ_CHECK(connack_seen);
                SB_FUZZ_CHECK(std::holds_alternative<mqtt::publish>(p) || std::holds_alternative<mqtt::puback>(p) ||
                              std::holds_alternative<mqtt::pubrec>(p) || std::holds_alternative<mqtt::pubrel>(p) ||
                              std::holds_alternative<mqtt::pubcomp>(p) || std::holds_alternative<mqtt::suback>(p) ||
                              std::holds_alternative<mqtt::unsuback>(p) || std::holds_alternative<mqtt::pingresp>(p));
            }
            in = in.subspan(d->consumed);
        }
        pending.clear();
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 8) return 0;
    sb::fuzz::quiet("mqtt");
    auto sched = sb::fuzz::schedule::of(data);
    const auto settings = settings_for(data[0]);
    const std::span<const std::uint8_t> bytes(data + 8, size - 8);
    std::string_view stream(reinterpret_cast<const char*>(bytes.data()), bytes.size());

    sb::test::engine_harness h;
    auto reg = mqtt::make_registry(h.broker());
    h.open(mqtt::make_session(settings, h.broker(), h.auth(), reg, 1));
    const auto cc = first_connect(bytes);
    output_check out{{}, cc.v};
    sb::fuzz::drive(h, sched, stream, [&](const std::string& w) { out.add(w); }, cc.clean);
    // Wills delayed past the close, and a kept session's expiry: the sweep must cope.
    h.on_worker([&] { mqtt::sweep_expired(*reg); });
    h.run_kernel();
    return 0;
}
