// tests/fuzz/amqp_session_fuzz.cpp — libFuzzer target for a whole AMQP 1.0 session: our protocol
// header and SASL handling, then Proton's connection_driver, in the connection engine on a
// one-worker kernel with the memory store, driven like gateway/engine_driver drives it but by the
// input (the loop: tests/fuzz/session_fuzz.hpp).
//
// Input: 8 schedule bytes, then the byte stream from the client. Byte 0 picks the settings
// (small max-frame-size, output watermarks, unconfirmed-send limit, small link credit, anonymous
// off); bytes 1..7 seed the schedule. Seeds in tests/fuzz/corpus/amqp_session/ are real sessions
// of python3-qpid-proton clients (tests/fuzz/corpus/amqp_session/README).
//
// Checks, trapping on failure (besides ASan/UBSan): what the session writes is a sequence of
// protocol headers and well-formed frames (size at least 8, data offset inside the frame),
// nothing is written once closed; at the end (stop, linger over) the connection is closed, holds
// no buffers, and the kernel holds no delivery in flight for it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "adapters/amqp/session.hpp"
#include "tests/fuzz/session_fuzz.hpp"

namespace {

using namespace std::chrono_literals;

std::shared_ptr<const sb::amqp::settings> settings_for(std::uint8_t b) {
    auto s = std::make_shared<sb::amqp::settings>();
    s->connect_timeout_ms = 1000;
    s->linger_ms = 200;
    s->idle_timeout_ms = 2000;
    if (b & 1) s->max_frame_size = 512;
    if (b & 2) {
        s->output.high_watermark = 300;
        s->output.low_watermark = 100;
        s->output.stall_timeout = 3000ms;
    }
    if (b & 4) s->max_unconfirmed_sends = 2;
    if (b & 8) s->link_credit = 2;
    if (b & 16) s->allow_anonymous = false;
    return s;
}

// Protocol headers ("AMQP" + 4 bytes) and frames, whole or continued in the next write.
struct output_check {
    std::string pending;

    void add(const std::string& bytes) {
        pending += bytes;
        std::size_t at = 0;
        while (pending.size() - at >= 8) {
            const auto* p = reinterpret_cast<const unsigned char*>(pending.data() + at);
            if (pending.compare(at, 4, "AMQP") == 0) {
                at += 8;
                continue;
            }
            const std::uint32_t size = std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
            SB_FUZZ_CHECK(size >= 8);
            SB_FUZZ_CHECK(p[4] >= 2 && std::size_t(p[4]) * 4 <= size);
            SB_FUZZ_CHECK(p[5] == 0 || p[5] == 1);   // AMQP or SASL
            if (pending.size() - at < size) break;
            at += size;
        }
        pending.erase(0, at);
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 8) return 0;
    sb::fuzz::quiet("amqp");
    auto sched = sb::fuzz::schedule::of(data);
    const auto settings = settings_for(data[0]);
    std::string_view stream(reinterpret_cast<const char*>(data + 8), size - 8);

    sb::test::engine_harness h;
    h.open(sb::amqp::make_session(settings, h.broker(), h.auth(), 1));
    output_check out;
    sb::fuzz::drive(h, sched, stream, [&](const std::string& w) { out.add(w); });
    return 0;
}
