// adapters/amqp/sasl.cpp — AMQP 1.0 SASL frames (see sasl.hpp). Only the few encodings a
// sasl-init uses are read: described list (list0/8/32), symbol, binary, string, null.
#include "adapters/amqp/sasl.hpp"

namespace sb::amqp::sasl {

namespace {

void put32(std::string& s, std::uint32_t v) {
    s += char((v >> 24) & 0xFF);
    s += char((v >> 16) & 0xFF);
    s += char((v >> 8) & 0xFF);
    s += char(v & 0xFF);
}

std::uint32_t get32(const std::uint8_t* p) noexcept {
    return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}

// Frame header (size, doff 2, type 1 = SASL, channel 0) around `body`.
void frame(std::string& out, std::string_view body) {
    put32(out, std::uint32_t(8 + body.size()));
    out += std::string_view("\x02\x01\x00\x00", 4);
    out += body;
}

// A cursor over an AMQP-encoded value sequence.
struct reader {
    const std::uint8_t* p;
    const std::uint8_t* end;
    bool ok = true;

    std::size_t left() const noexcept { return std::size_t(end - p); }
    std::uint8_t byte() noexcept {
        if (p >= end) return ok = false, 0;
        return *p++;
    }
    std::uint32_t u32() noexcept {
        if (left() < 4) return ok = false, 0;
        const auto v = get32(p);
        p += 4;
        return v;
    }
    std::string_view bytes(std::size_t n) noexcept {
        if (left() < n) return ok = false, std::string_view{};
        std::string_view v(reinterpret_cast<const char*>(p), n);
        p += n;
        return v;
    }
    // A symbol, string or binary (or null: empty); anything else fails.
    std::string_view variable(bool& present) noexcept {
        present = true;
        switch (byte()) {
        case 0x40: present = false; return {};
        case 0xA0: case 0xA1: case 0xA3: return bytes(byte());
        case 0xB0: case 0xB1: case 0xB3: return bytes(u32());
        default: ok = false; return {};
        }
    }
};

}  // namespace

void encode_mechanisms(std::string& out, std::span<const std::string_view> mechanisms) {
    // array8 of sym8: [0xE0][size][count][0xA3]([len][bytes])...
    std::string array;
    array += char(mechanisms.size());
    array += '\xA3';
    for (auto m : mechanisms) {
        array += char(m.size());
        array += m;
    }
    std::string body("\x00\x53\x40\xC0", 4);   // sasl-mechanisms: described list8
    body += char(1 + 1 + 1 + array.size());     // size: count + array constructor + array size + array
    body += '\x01';                             // one field
    body += '\xE0';
    body += char(array.size());
    body += array;
    frame(out, body);
}

void encode_outcome(std::string& out, code c) {
    std::string body("\x00\x53\x44\xC0\x03\x01\x50", 7);   // sasl-outcome: list8 size 3, count 1, ubyte
    body += char(c);
    frame(out, body);
}

std::variant<decoded, need_more, frame_error> decode_init(std::span<const std::uint8_t> in) {
    if (in.size() < 8) return need_more{8};
    const std::uint32_t size = get32(in.data());
    if (size < 8) return frame_error{"SASL frame too small"};
    if (size > max_frame) return frame_error{"SASL frame too large"};
    if (in.size() < size) return need_more{size};
    const std::size_t doff = std::size_t(in[4]) * 4;
    if (doff < 8 || doff > size) return frame_error{"bad data offset"};
    if (in[5] != 0x01) return frame_error{"not a SASL frame"};
    reader r{in.data() + doff, in.data() + size};
    // Descriptor: 0x00 then smallulong 0x41 or ulong 0x41 (sasl-init); a symbol descriptor
    // "amqp:sasl-init:list" is allowed too.
    if (r.byte() != 0x00) return frame_error{"expected a described performative"};
    bool is_init = false;
    switch (r.byte()) {
    case 0x53: is_init = r.byte() == 0x41; break;
    case 0x80: {
        const auto hi = r.u32();
        const auto lo = r.u32();
        is_init = hi == 0 && lo == 0x41;
        break;
    }
    case 0xA3: is_init = r.bytes(r.byte()) == "amqp:sasl-init:list"; break;
    case 0xB3: is_init = r.bytes(r.u32()) == "amqp:sasl-init:list"; break;
    default: break;
    }
    if (!r.ok || !is_init) return frame_error{"expected sasl-init"};
    std::uint32_t count = 0;
    switch (r.byte()) {
    case 0x45: count = 0; break;
    case 0xC0: r.byte(); count = r.byte(); break;
    case 0xD0: r.u32(); count = r.u32(); break;
    default: return frame_error{"sasl-init is not a list"};
    }
    if (!r.ok || count == 0) return frame_error{"sasl-init without a mechanism"};
    init v;
    bool present = false;
    v.mechanism = r.variable(present);
    if (!r.ok || !present || v.mechanism.empty()) return frame_error{"sasl-init without a mechanism"};
    if (count > 1) v.response = r.variable(present);   // hostname (field 3) is not needed
    if (!r.ok) return frame_error{"malformed sasl-init"};
    return decoded{v, size};
}

bool parse_plain(std::string_view response, std::string_view& user, std::string_view& password) noexcept {
    const auto first = response.find('\0');
    if (first == std::string_view::npos) return false;
    const auto second = response.find('\0', first + 1);
    if (second == std::string_view::npos) return false;
    user = response.substr(first + 1, second - first - 1);
    password = response.substr(second + 1);
    return !user.empty();
}

}  // namespace sb::amqp::sasl
