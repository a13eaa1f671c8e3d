// tests/fuzz/stomp_codec_fuzz.cpp — libFuzzer target for adapters/stomp/codec.
// Input: byte 0 picks the version (% 3; seeds use '0', '1', '2') and, with its top bit, small
// limits; the rest is a stream of frames. Checks, trapping on any failure: results stay inside
// the input; every decoded frame re-encodes and decodes to the same frame; a prefix of the
// input gives need_more or the same result (so splits cannot change what a session sees).
#include "adapters/stomp/codec.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <variant>

namespace {

using namespace sb::stomp;

#define SB_FUZZ_CHECK(cond)              \
    do {                                 \
        if (!(cond)) __builtin_trap();   \
    } while (0)

bool escapes_apply(command c, version v) {
    return v != version::v1_0 && c != command::connect && c != command::stomp &&
           c != command::connected;
}

bool within(const void* p, std::size_t n, const void* base, std::size_t base_n) {
    const auto* b = static_cast<const char*>(base);
    const auto* q = static_cast<const char*>(p);
    return n == 0 || (q >= b && q + n <= b + base_n);
}

bool same_frame(const frame& a, const frame& b) {
    if (a.cmd != b.cmd || a.has_content_length != b.has_content_length) return false;
    if (a.headers.size() != b.headers.size()) return false;
    for (std::size_t i = 0; i < a.headers.size(); ++i)
        if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value)
            return false;
    const std::string_view ab(reinterpret_cast<const char*>(a.body.data()), a.body.size());
    const std::string_view bb(reinterpret_cast<const char*>(b.body.data()), b.body.size());
    return ab == bb;
}

// Without escaping, a value ending in CR reads back as part of a CRLF line end: the encoder
// documents it as unrepresentable, so such frames are left out of the round trip.
bool representable(const frame& f, version v) {
    if (escapes_apply(f.cmd, v)) return true;
    for (const header& h : f.headers)
        if (!h.value.empty() && h.value.back() == '\r') return false;
    return true;
}

struct state {
    limits lim;
    version v = version::v1_2;
    frame f, f2, f3;
    std::string scratch, scratch2, scratch3, wire;
};

void check_result_bounds(std::span<const std::uint8_t> in, const decode_result& r, const frame& f,
                         const std::string& scratch) {
    if (const auto* d = std::get_if<decoded>(&r)) {
        SB_FUZZ_CHECK(d->consumed > 0 && d->consumed <= in.size());
        SB_FUZZ_CHECK(in[d->consumed - 1] == 0);
        SB_FUZZ_CHECK(within(f.body.data(), f.body.size(), in.data(), d->consumed - 1));
        for (const header& h : f.headers)
            for (const std::string_view s : {h.name, h.value})
                SB_FUZZ_CHECK(within(s.data(), s.size(), in.data(), d->consumed) ||
                              within(s.data(), s.size(), scratch.data(), scratch.size()));
    } else if (const auto* h = std::get_if<heartbeat>(&r)) {
        SB_FUZZ_CHECK(h->consumed > 0 && h->consumed <= in.size());
        for (std::size_t i = 0; i < h->consumed; ++i) {
            if (in[i] == '\n') continue;
            SB_FUZZ_CHECK(in[i] == '\r' && i + 1 < h->consumed && in[i + 1] == '\n');
        }
    } else if (const auto* m = std::get_if<need_more>(&r)) {
        SB_FUZZ_CHECK(m->at_least == 0 || m->at_least > in.size());
    } else {
        SB_FUZZ_CHECK(!std::get<decode_error>(r).message.empty());
    }
}

// Decoding the first `cut` bytes must wait for more or agree with decoding all of `in`.
void check_prefix(state& s, std::span<const std::uint8_t> in, std::size_t cut,
                  const decode_result& full) {
    const auto part = in.first(cut);
    const decode_result r = decode(part, s.lim, s.v, s.f3, s.scratch3);
    check_result_bounds(part, r, s.f3, s.scratch3);
    if (const auto* m = std::get_if<need_more>(&r)) {
        if (const auto* d = std::get_if<decoded>(&full)) {
            SB_FUZZ_CHECK(cut < d->consumed);
            SB_FUZZ_CHECK(m->at_least == 0 || m->at_least == d->consumed);
        } else if (const auto* h = std::get_if<heartbeat>(&full)) {
            SB_FUZZ_CHECK(cut <= h->consumed);
        } else if (const auto* fm = std::get_if<need_more>(&full)) {
            SB_FUZZ_CHECK(m->at_least == 0 || m->at_least == fm->at_least);
        }
        return;
    }
    if (const auto* d = std::get_if<decoded>(&r)) {
        const auto* fd = std::get_if<decoded>(&full);
        SB_FUZZ_CHECK(fd && fd->consumed == d->consumed && same_frame(s.f3, s.f));
    } else if (const auto* h = std::get_if<heartbeat>(&r)) {
        const auto* fh = std::get_if<heartbeat>(&full);
        SB_FUZZ_CHECK(fh && h->consumed <= fh->consumed);
    } else {
        const auto* fe = std::get_if<decode_error>(&full);
        SB_FUZZ_CHECK(fe && fe->message == std::get<decode_error>(r).message);
    }
}

void check_round_trip(state& s) {
    if (!representable(s.f, s.v)) return;
    s.wire.clear();
    encode(s.wire, s.f, s.v);
    // Escaping may lengthen a line or a frame past the limits it came in under.
    constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
    const limits wide{none, none, none};
    const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(s.wire.data()),
                                              s.wire.size());
    const decode_result r = decode(bytes, wide, s.v, s.f2, s.scratch2);
    const auto* d = std::get_if<decoded>(&r);
    SB_FUZZ_CHECK(d && d->consumed == s.wire.size());
    SB_FUZZ_CHECK(same_frame(s.f, s.f2));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    static state s;  // reused like a session's buffers, so stale capacity is exercised too
    s.v = static_cast<version>(data[0] % 3);
    s.lim = (data[0] & 0x80) ? limits{96, 4, 24} : limits{};
    std::span<const std::uint8_t> in(data + 1, size - 1);

    for (std::size_t step = 0; !in.empty(); ++step) {
        const decode_result r = decode(in, s.lim, s.v, s.f, s.scratch);
        check_result_bounds(in, r, s.f, s.scratch);
        // Prefixes: the one just short of the result, one that moves around, and the two
        // around each of the first LFs, where CR-or-CRLF and line-limit decisions are made.
        std::size_t end = in.size();
        if (const auto* d = std::get_if<decoded>(&r)) end = d->consumed;
        if (const auto* h = std::get_if<heartbeat>(&r)) end = h->consumed;
        check_prefix(s, in, end - 1, r);
        check_prefix(s, in, (step * 7919 + size) % (end + 1), r);
        for (std::size_t i = 0, lfs = 0; i < end && lfs < 32; ++i) {
            if (in[i] != '\n') continue;
            ++lfs;
            check_prefix(s, in, i, r);
            check_prefix(s, in, i + 1, r);
        }

        if (const auto* d = std::get_if<decoded>(&r)) {
            check_round_trip(s);
            in = in.subspan(d->consumed);
        } else if (const auto* h = std::get_if<heartbeat>(&r)) {
            in = in.subspan(h->consumed);
        } else {
            break;  // need_more at the end of the input, or an error that closes the connection
        }
    }
    return 0;
}
