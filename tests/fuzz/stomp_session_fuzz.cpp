// tests/fuzz/stomp_session_fuzz.cpp — libFuzzer target for a whole STOMP session: the session in
// its connection engine on a one-worker kernel with the memory store, driven like
// gateway/engine_driver drives it, but by the input (the loop: tests/fuzz/session_fuzz.hpp).
//
// Input: 8 schedule bytes, then the byte stream from the client. Byte 0 picks the settings
// (small frame limits, watermarks, unconfirmed-send limit); bytes 1..7 seed the schedule that
// splits the stream into reads and, between reads, runs some kernel tasks (one at a time, so
// completions interleave with frames), holds or completes writes, and moves the manual clock
// (heart-beats, connect timeout, linger). Seeds in tests/fuzz/corpus/stomp_session/ are real
// sessions.
//
// Checks, trapping on failure (besides ASan/UBSan): what the session writes is a sequence of
// well-formed STOMP frames and heart-beats, nothing follows an ERROR frame, nothing is written
// once closed; at the end (stop, linger over) the connection is closed, holds no buffers, and
// the kernel holds no delivery in flight for it.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>

#include <spdlog/spdlog.h>

#include "adapters/stomp/codec.hpp"
#include "adapters/stomp/session.hpp"
#include "tests/fuzz/session_fuzz.hpp"

namespace {

using namespace std::chrono_literals;

std::shared_ptr<const sb::stomp::settings> settings_for(std::uint8_t b) {
    auto s = std::make_shared<sb::stomp::settings>();
    s->connect_timeout_ms = 1000;
    s->linger_ms = 200;
    s->heartbeat_floor_ms = 50;
    if (b & 1) s->frame_limits = sb::stomp::limits{512, 8, 128};
    if (b & 2) {
        s->output.high_watermark = 300;
        s->output.low_watermark = 100;
        s->output.stall_timeout = 3000ms;
    }
    if (b & 4) s->max_unconfirmed_sends = 2;
    if (b & 8) {
        s->max_subscriptions = 2;
        s->max_transactions = 2;
        s->max_transaction_frames = 3;
    }
    return s;
}

// What the session wrote must read back as server frames; nothing after ERROR.
struct output_check {
    std::string pending;
    bool error_seen = false;
    sb::stomp::frame f;
    std::string scratch;

    void add(const std::string& bytes) {
        if (bytes.empty()) return;
        SB_FUZZ_CHECK(!error_seen);
        pending += bytes;
        constexpr std::size_t none = ~std::size_t{0};
        const sb::stomp::limits wide{none, none, none};
        std::span<const std::uint8_t> in(reinterpret_cast<const std::uint8_t*>(pending.data()), pending.size());
        while (!in.empty()) {
            // Version 1.0: no unescaping, so any header value the session wrote reads back.
            const auto r = sb::stomp::decode(in, wide, sb::stomp::version::v1_0, f, scratch);
            if (const auto* h = std::get_if<sb::stomp::heartbeat>(&r)) {
                in = in.subspan(h->consumed);
            } else if (const auto* d = std::get_if<sb::stomp::decoded>(&r)) {
                using sb::stomp::command;
                SB_FUZZ_CHECK(f.cmd == command::connected || f.cmd == command::message || f.cmd == command::receipt ||
                              f.cmd == command::error);
                SB_FUZZ_CHECK(!error_seen);
                error_seen = f.cmd == command::error;
                in = in.subspan(d->consumed);
            } else {
                // Writes carry whole frames: nothing may be left unfinished or malformed.
                __builtin_trap();
            }
        }
        pending.clear();
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 8) return 0;
    sb::fuzz::quiet("stomp");
    auto sched = sb::fuzz::schedule::of(data);
    const auto settings = settings_for(data[0]);
    std::string_view stream(reinterpret_cast<const char*>(data + 8), size - 8);

    sb::test::engine_harness h;
    h.open(sb::stomp::make_session(settings, h.broker(), h.auth(), 1));
    output_check out;
    sb::fuzz::drive(h, sched, stream, [&](const std::string& w) { out.add(w); });
    return 0;
}
