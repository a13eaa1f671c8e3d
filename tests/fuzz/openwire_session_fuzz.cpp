// tests/fuzz/openwire_session_fuzz.cpp — libFuzzer target for a whole OpenWire session: the
// codec (every version, tight and loose, the marshalling cache) and the session's commands
// (connection, consumers, sends, acks, pulls, transactions, temporary destinations) in the
// connection engine on a one-worker kernel with the memory store, driven like
// gateway/engine_driver drives it but by the input (the loop: tests/fuzz/session_fuzz.hpp).
//
// Input: 8 schedule bytes, then the byte stream from the client. Byte 0 picks the settings
// (small max frame size, output watermarks, unconfirmed-send limit, few consumers and
// transactions); bytes 1..7 seed the schedule. Seeds in tests/fuzz/corpus/openwire_session/
// are the client's side of real sessions of ActiveMQ's 5.17 JMS client (the README there).
//
// Checks, trapping on failure (besides ASan/UBSan): what the session writes is a sequence of
// size-prefixed commands of known types (the first a WireFormatInfo), nothing is written once
// closed; at the end (stop, linger over) the connection is closed, holds no buffers, and the
// kernel holds no delivery in flight for it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "adapters/openwire/session.hpp"
#include "tests/fuzz/session_fuzz.hpp"

namespace {

using namespace std::chrono_literals;

std::shared_ptr<const sb::openwire::settings> settings_for(std::uint8_t b) {
    auto s = std::make_shared<sb::openwire::settings>();
    s->connect_timeout_ms = 1000;
    s->linger_ms = 200;
    s->max_inactivity_ms = 2000;
    s->max_inactivity_initial_delay_ms = 500;
    if (b & 1) s->codec.max_frame_size = 4096;
    if (b & 2) {
        s->output.high_watermark = 300;
        s->output.low_watermark = 100;
        s->output.stall_timeout = 3000ms;
    }
    if (b & 4) s->max_unconfirmed_sends = 2;
    if (b & 8) {
        s->max_consumers = 2;
        s->max_transactions = 1;
        s->max_temporaries = 1;
    }
    if (b & 16) s->max_transaction_frames = 2;
    return s;
}

// Size-prefixed commands, whole or continued in the next write; the first is a WireFormatInfo.
struct output_check {
    std::string pending;
    bool first = true;

    void add(const std::string& bytes) {
        pending += bytes;
        std::size_t at = 0;
        while (pending.size() - at >= 5) {
            const auto* p = reinterpret_cast<const unsigned char*>(pending.data() + at);
            const std::uint32_t size = std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
            SB_FUZZ_CHECK(size >= 1 && size < (1u << 30));
            const std::uint8_t type = p[4];
            SB_FUZZ_CHECK(!first || type == sb::openwire::type::wire_format_info);
            SB_FUZZ_CHECK(type >= 1 && type <= 40 && type != 13);
            first = false;
            if (pending.size() - at < 4 + std::size_t(size)) break;
            at += 4 + size;
        }
        pending.erase(0, at);
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 8) return 0;
    sb::fuzz::quiet("openwire");
    auto sched = sb::fuzz::schedule::of(data);
    const auto settings = settings_for(data[0]);
    std::string_view stream(reinterpret_cast<const char*>(data + 8), size - 8);

    sb::test::engine_harness h;
    h.open(sb::openwire::make_session(settings, h.broker(), h.auth(), 1));
    output_check out;
    out.add(h.wire);   // what the start wrote (our WireFormatInfo), before the input's schedule
    sb::fuzz::drive(h, sched, stream, [&](const std::string& w) { out.add(w); });
    return 0;
}
