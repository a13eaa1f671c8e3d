// tests/fuzz/stomp_session_fuzz.cpp — libFuzzer target for a whole STOMP session: the session in
// its connection engine on a one-worker kernel with the memory store, driven like
// gateway/engine_driver drives it, but by the input.
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
#include "tests/unit/adapters/engine_harness.hpp"

namespace {

using namespace std::chrono_literals;

#define SB_FUZZ_CHECK(cond)              \
    do {                                 \
        if (!(cond)) __builtin_trap();   \
    } while (0)

// xorshift64*: the schedule, from the input's seed bytes.
struct schedule {
    std::uint64_t s;
    std::uint32_t next() noexcept {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return static_cast<std::uint32_t>((s * 0x2545F4914F6CDD1DULL) >> 32);
    }
    std::uint32_t below(std::uint32_t n) noexcept { return n ? next() % n : 0; }
};

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

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off);
    spdlog::default_logger()->set_level(spdlog::level::off);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 8) return 0;
    if (auto l = spdlog::get("stomp")) l->set_level(spdlog::level::off);
    schedule sched{0x9E3779B97F4A7C15ULL};
    for (std::size_t i = 1; i < 8; ++i) sched.s = (sched.s ^ data[i]) * 0x100000001B3ULL;
    if (sched.s == 0) sched.s = 1;
    const auto settings = settings_for(data[0]);
    std::string_view stream(reinterpret_cast<const char*>(data + 8), size - 8);

    sb::test::engine_harness h;
    h.open(sb::stomp::make_session(settings, h.broker(), h.auth(), 1));
    output_check out;
    bool holding = false;   // a write is in flight, not completed yet

    auto write_some = [&] {
        if (holding || h.conn->writing()) return;
        h.on_worker([&] {
            const auto bytes = h.conn->begin_write();
            if (bytes.empty()) return;
            h.held.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        });
        holding = !h.held.empty();
    };
    auto complete_write = [&] {
        if (!holding) return;
        out.add(h.held);
        h.on_worker([&] { h.conn->write_done(h.held.size()); });
        h.held.clear();
        holding = false;
    };

    for (int steps = 0; steps < 10000 && !h.conn->closed(); ++steps) {
        switch (sched.below(8)) {
        case 0:
        case 1:
        case 2: {   // a read
            if (stream.empty() || !h.conn->wants_read()) break;
            const std::size_t n = sched.below(4) == 0 ? stream.size() : 1 + sched.below(64);
            const auto chunk = stream.substr(0, n);
            stream.remove_prefix(chunk.size());
            h.on_worker([&] {
                h.conn->feed(std::span(reinterpret_cast<const std::uint8_t*>(chunk.data()), chunk.size()));
            });
            break;
        }
        case 3:   // kernel tasks, one at a time
            for (std::uint32_t k = sched.below(4); k > 0 && h.worker().run_one(); --k) {
            }
            break;
        case 4:
            write_some();
            complete_write();
            break;
        case 5: write_some(); break;   // the peer does not read yet
        case 6: {   // time passes
            h.driver->t += std::chrono::milliseconds(sched.below(4) == 0 ? 1 + sched.below(3000) : sched.below(100));
            if (h.conn->next_deadline() <= h.driver->t) h.on_worker([&] { h.conn->tick(h.driver->t); });
            break;
        }
        case 7:
            if (stream.empty()) {
                // Everything sent: the client may leave.
                if (sched.below(4) == 0) h.on_worker([&] { h.conn->read_closed(); });
                else if (sched.below(8) == 0) h.on_worker([&] { h.conn->stop(); });
                else h.run_kernel();
            }
            break;
        }
        if (h.conn->closed()) {
            // Closed: nothing more to write.
            h.on_worker([&] { SB_FUZZ_CHECK(h.conn->writing() || h.conn->begin_write().empty()); });
        }
        if (h.conn->closed() && holding) {
            h.on_worker([&] { h.conn->write_failed(); });
            h.held.clear();
            holding = false;
        }
        if (stream.empty() && h.worker().run_one() == false && !holding && !h.conn->writing() &&
            h.conn->queued_output() == 0 && steps > 200)
            break;
    }

    // The end: the peer reads everything, the server stops, the linger runs out.
    h.on_worker([&] { h.conn->stop(); });
    for (int i = 0; i < 100 && !h.conn->closed(); ++i) {
        h.run_kernel();
        complete_write();
        write_some();
        complete_write();
        h.driver->t += 100ms;
        h.on_worker([&] { h.conn->tick(h.driver->t); });
    }
    SB_FUZZ_CHECK(h.conn->closed());
    complete_write();
    h.run_kernel();
    SB_FUZZ_CHECK(!h.conn->holds_buffers());
    // Nothing the connection received stays in flight in the kernel.
    std::vector<sb::core::destination_stats> stats;
    h.on_worker([&] { h.broker().stats([&](std::vector<sb::core::destination_stats> s) { stats = std::move(s); }); });
    h.run_kernel();
    for (const auto& st : stats) SB_FUZZ_CHECK(st.inflight == 0);
    return 0;
}
