// tests/fuzz/openwire_codec_fuzz.cpp — libFuzzer target for adapters/openwire/codec.
// Input: byte 0 picks the wire format — bits 0-3 the version ((b & 15) % 12 + 1; 12 to 15 also
// select small limits), bit 4 tight encoding, bit 5 the marshalling cache, bit 6 no size
// prefix, bit 7 stack traces — the rest is a stream of frames (the seeds in
// corpus/openwire/ are the golden streams of tests/unit/adapters/openwire/golden/ behind their
// option byte). Checks, trapping on any failure: decoding never crashes or reads outside the
// input (ASan); every decoded frame that re-encodes decodes again and re-encodes to the same
// bytes, with both caches in step; the stream fed in small pieces gives the same frames as
// fed whole (need-more undoes the cache); the primitive readers survive message properties,
// bodies and WireFormatInfo properties.
#include "adapters/openwire/codec.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace {

namespace ow = sb::openwire;

#define SB_FUZZ_CHECK(cond)            \
    do {                               \
        if (!(cond)) __builtin_trap(); \
    } while (0)

ow::bytes as_bytes(std::string_view s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

// Reads every value of a primitive map (or, as a list, a stream body), nested ones too.
bool walk_values(ow::primitive_reader& r, ow::wire_format& wf, const ow::limits& lim, int count, bool keys, int depth);

void walk_value(const ow::primitive& v, ow::wire_format& wf, const ow::limits& lim, int depth) {
    if ((v.type == ow::primitive_type::map || v.type == ow::primitive_type::list) && v.count > 0 && depth < 8) {
        ow::primitive_reader n(as_bytes(v.s), wf, lim);
        // The outer reader measured the nested entries (strings unchecked): all read, nothing left.
        if (walk_values(n, wf, lim, v.count, v.type == ow::primitive_type::map, depth + 1)) SB_FUZZ_CHECK(n.at_end());
    }
    std::string again;
    ow::primitive_writer w(again);
    w.value(v);
}

bool walk_values(ow::primitive_reader& r, ow::wire_format& wf, const ow::limits& lim, int count, bool keys, int depth) {
    for (int i = 0; count < 0 ? !r.at_end() : i < count; ++i) {
        std::string_view k;
        ow::primitive v;
        if (keys && !r.read_key(k)) return false;
        if (!r.read_value(v)) return false;
        walk_value(v, wf, lim, depth);
    }
    return true;
}

void walk_map(ow::bytes b, ow::wire_format& wf, const ow::limits& lim) {
    if (ow::is_null(b)) return;
    ow::primitive_reader r(b, wf, lim);
    std::int32_t n = 0;
    if (r.read_map_size(n)) walk_values(r, wf, lim, n, true, 0);
}

void exercise(const ow::command& c, ow::wire_format& wf, const ow::limits& lim) {
    if (const auto* m = std::get_if<ow::message>(&c.value)) {
        walk_map(m->marshalled_properties, wf, lim);
        if (m->data_structure_type == ow::type::activemq_map_message) walk_map(m->content, wf, lim);
        if (m->data_structure_type == ow::type::activemq_stream_message && !ow::is_null(m->content)) {
            ow::primitive_reader r(m->content, wf, lim);
            walk_values(r, wf, lim, -1, false, 0);
        }
        if (m->data_structure_type == ow::type::activemq_text_message) {
            std::string_view text;
            if (ow::read_text_body(m->content, text, wf).empty()) {
                std::string again;
                ow::write_text_body(text, again);
            }
        }
    } else if (const auto* w = std::get_if<ow::wire_format_info>(&c.value)) {
        ow::wire_format_settings s;
        if (ow::read_settings(w->marshalled_properties, s, wf).empty()) {
            std::string again;
            ow::write_settings(s, again);
            ow::wire_format_settings t;
            SB_FUZZ_CHECK(ow::read_settings(as_bytes(again), t, wf).empty());
            SB_FUZZ_CHECK(t.cache_size == s.cache_size && t.max_frame_size == s.max_frame_size &&
                          t.tight_encoding_enabled == s.tight_encoding_enabled);
        }
    }
}

struct setup {
    ow::limits lim;
    ow::negotiated n;
};

setup options(std::uint8_t b) {
    setup s;
    s.n.version = (b & 15) % 12 + 1;
    if ((b & 15) >= 12) {
        s.lim.max_frame_size = 4096;
        s.lim.max_nesting = 4;
        s.lim.max_array_length = 16;
    }
    s.n.tight_encoding = b & 0x10;
    s.n.cache_enabled = b & 0x20;
    s.n.cache_size = (b & 15) >= 12 ? 120 : 1024;   // what clients negotiate (not the 16383 of 0)
    s.n.size_prefix_disabled = b & 0x40;
    s.n.stack_trace_enabled = b & 0x80;
    return s;
}

// Decodes the whole stream, `step` bytes at a time (0: all at once); returns the frames
// re-encoded (the canonical form), one after another, and where decoding stopped.
std::string run(std::string_view stream, const setup& s, std::size_t step, bool check) {
    ow::wire_format dec(s.lim), enc(s.lim), dec2(s.lim), enc2(s.lim);
    dec.apply(s.n);
    enc.apply(s.n);
    dec2.apply(s.n);
    enc2.apply(s.n);
    std::string buffer, canonical;
    std::size_t fed = 0;
    for (int guard = 0; guard < 100000; ++guard) {
        if (step == 0 && fed < stream.size()) {
            buffer.append(stream);
            fed = stream.size();
        }
        auto r = dec.decode(as_bytes(buffer));
        if (std::holds_alternative<ow::need_more>(r)) {
            SB_FUZZ_CHECK(std::get<ow::need_more>(r).at_least > buffer.size());
            if (fed >= stream.size()) break;
            const std::size_t n = std::min(step ? step : stream.size(), stream.size() - fed);
            buffer.append(stream.substr(fed, n));
            fed += n;
            continue;
        }
        if (const auto* e = std::get_if<ow::decode_error>(&r)) {
            SB_FUZZ_CHECK(!e->detail.empty());
            canonical += "!error";
            break;
        }
        const auto& d = std::get<ow::decoded>(r);
        SB_FUZZ_CHECK(d.consumed > 0 && d.consumed <= buffer.size());
        if (check) exercise(*d.frame, dec, s.lim);
        std::string once;
        if (enc.encode(*d.frame, once).empty()) {
            canonical += once;
            if (check) {
                auto r2 = dec2.decode(as_bytes(once));
                SB_FUZZ_CHECK(std::holds_alternative<ow::decoded>(r2));
                const auto& d2 = std::get<ow::decoded>(r2);
                SB_FUZZ_CHECK(d2.consumed == once.size());
                std::string twice;
                SB_FUZZ_CHECK(enc2.encode(*d2.frame, twice).empty());
                SB_FUZZ_CHECK(twice == once);
            }
        } else {
            SB_FUZZ_CHECK(once.empty());   // nothing written on failure
            canonical += "!unencodable";
        }
        buffer.erase(0, d.consumed);
    }
    return canonical;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const setup s = options(data[0]);
    const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
    const std::string whole = run(stream, s, 0, true);
    const std::string split = run(stream, s, 1 + size % 13, false);
    SB_FUZZ_CHECK(whole == split);
    return 0;
}
