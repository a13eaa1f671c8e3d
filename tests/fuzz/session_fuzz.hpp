// tests/fuzz/session_fuzz.hpp — what the whole-session fuzz targets share: the schedule drawn
// from the input's seed bytes, and the loop that drives one connection engine the way
// gateway/engine_driver does, but as the input says (tests/unit/adapters/engine_harness.hpp
// holds the kernel, the manual clock and the connection).
//
// Input: 8 schedule bytes, then the byte stream from the client. Byte 0 is the target's (its
// settings); bytes 1..7 seed the schedule that splits the stream into reads and, between reads,
// runs some kernel tasks (one at a time, so completions interleave with frames), holds or
// completes writes, and moves the manual clock (keep-alive / heart-beats, connect timeout,
// linger).
//
// Checks, trapping on failure (besides ASan/UBSan): every write goes to the target's `written`
// check; nothing is written once closed; at the end (stop, linger over) the connection is
// closed, holds no buffers, and (with `settled`: the protocol kept no session state in the
// kernel for a later connection) the kernel holds no delivery in flight for it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "tests/unit/adapters/engine_harness.hpp"

#define SB_FUZZ_CHECK(cond)              \
    do {                                 \
        if (!(cond)) __builtin_trap();   \
    } while (0)

// A whole-session target logs nothing (each includes this header once).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off);
    spdlog::default_logger()->set_level(spdlog::level::off);
    return 0;
}

namespace sb::fuzz {

// A protocol's logger is made on its first use, after LLVMFuzzerInitialize: silence it too.
inline void quiet(const char* logger) {
    if (auto l = spdlog::get(logger)) l->set_level(spdlog::level::off);
}

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

    // Seeded from bytes 1..7 of an input of at least 8 bytes.
    static schedule of(const std::uint8_t* data) noexcept {
        schedule sched{0x9E3779B97F4A7C15ULL};
        for (std::size_t i = 1; i < 8; ++i) sched.s = (sched.s ^ data[i]) * 0x100000001B3ULL;
        if (sched.s == 0) sched.s = 1;
        return sched;
    }
};

// Drives `h.conn` (opened by the target) through `stream` as `sched` says, then to its end;
// `written(const std::string&)` sees every write, in order.
template <typename Written>
void drive(test::engine_harness& h, schedule& sched, std::string_view stream, Written&& written, bool settled = true) {
    using namespace std::chrono_literals;
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
        written(h.held);
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
    if (!settled) return;
    // Nothing the connection received stays in flight in the kernel.
    std::vector<core::destination_stats> stats;
    h.on_worker([&] { h.broker().stats([&](std::vector<core::destination_stats> s) { stats = std::move(s); }); });
    h.run_kernel();
    for (const auto& st : stats) SB_FUZZ_CHECK(st.inflight == 0);
}

}  // namespace sb::fuzz
