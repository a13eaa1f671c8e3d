// tests/fuzz/journal_record_fuzz.cpp — libFuzzer target for the journal's records
// (core/store/record), what recovery reads from a disk that may hold anything after a crash or a
// bad sector. The input is walked as recovery walks a segment: framed records, torn tails and
// corruption (skipped to the next magic). Checks, trapping on any failure: framing never reads
// or consumes past the input; every decoded add re-encodes to a payload that decodes the same
// and peeks the same; removes and subscriptions round-trip.
#include "core/store/record.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>

namespace {

using namespace sb::core;

#define SB_FUZZ_CHECK(cond)            \
    do {                               \
        if (!(cond)) __builtin_trap(); \
    } while (0)

std::span<const std::uint8_t> bytes_of(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

void check_payload(record_type type, std::span<const std::uint8_t> payload) {
    switch (type) {
    case record_type::message_add:
    case record_type::retained_put: {
        const auto add = decode_add(payload);
        const auto peek = peek_add(payload);
        if (!add) return;
        SB_FUZZ_CHECK(peek && peek->queue == add->queue && peek->id == add->msg.id);
        std::string again;
        encode_add(again, add->queue, add->msg);
        const auto back = decode_add(bytes_of(again));
        SB_FUZZ_CHECK(back && back->queue == add->queue && back->msg.id == add->msg.id &&
                      back->msg.body == add->msg.body && back->msg.priority == add->msg.priority);
        std::string third;
        encode_add(third, back->queue, back->msg);
        SB_FUZZ_CHECK(third == again);
        break;
    }
    case record_type::message_remove: {
        const auto r = decode_remove(payload);
        if (!r) return;
        std::string again;
        encode_remove(again, r->queue, r->id);
        const auto back = decode_remove(bytes_of(again));
        SB_FUZZ_CHECK(back && back->queue == r->queue && back->id == r->id);
        break;
    }
    case record_type::subscription_put: {
        const auto s = decode_subscription(payload);
        if (!s) return;
        std::string again;
        encode_subscription(again, *s);
        const auto back = decode_subscription(bytes_of(again));
        SB_FUZZ_CHECK(back && back->name == s->name && back->data == s->data && back->filter.name == s->filter.name);
        break;
    }
    default:
        break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::uint8_t> in(data, size);
    for (int steps = 0; !in.empty() && steps < 10000; ++steps) {
        const auto r = read_record(in);
        if (const auto* f = std::get_if<framed>(&r)) {
            SB_FUZZ_CHECK(f->consumed >= record_header_bytes && f->consumed <= in.size());
            SB_FUZZ_CHECK(f->payload.data() >= in.data() && f->payload.data() + f->payload.size() <= in.data() + in.size());
            check_payload(f->type, f->payload);
            in = in.subspan(f->consumed);
            continue;
        }
        if (std::get<frame_problem>(r) == frame_problem::torn) break;
        const std::size_t next = find_next_magic(in);
        SB_FUZZ_CHECK(next >= 1 && next <= in.size());
        in = in.subspan(next);
    }
    // A record framed by our own writer reads back as itself.
    if (size <= 4096) {
        std::string framed_one;
        append_record(framed_one, record_type::message_remove, std::string_view(reinterpret_cast<const char*>(data), size));
        const auto r = read_record(bytes_of(framed_one));
        const auto* f = std::get_if<framed>(&r);
        SB_FUZZ_CHECK(f && f->consumed == framed_one.size() && f->payload.size() == size);
    }
    return 0;
}
