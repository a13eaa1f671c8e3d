// gateway/protocols/amqp.cpp — AMQP 1.0 as the gateway sees it: "AMQP" + protocol id first, and
// a health check that does the SASL exchange (ANONYMOUS) then header + open (the probe's few
// bytes are written and read here). The kernel's side is
// protocols/amqp_kernel.cpp (adapters/amqp). No refusal: a client is closed (an AMQP close frame
// needs the open exchange first).
#include "gateway/registry.hpp"

namespace sb::gateway {

namespace {

sniff detect(std::span<const std::byte> head) noexcept { return match_at(head, 0, "AMQP"); }

void put16(std::string& s, std::size_t v) {
    s += static_cast<char>((v >> 8) & 0xFF);
    s += static_cast<char>(v & 0xFF);
}

// [size:4][doff][type][channel:2] + body: one frame of `type` (0 AMQP, 1 SASL) on channel 0.
void put_frame(std::string& out, char type, std::string_view body) {
    const std::size_t size = 8 + body.size();
    out += std::string("\x00\x00", 2);
    put16(out, size);
    out += '\x02';   // doff 2
    out += type;
    out += std::string("\x00\x00", 2);
    out += body;
}

// The SASL exchange, pipelined (AMQP 1.0 §5.3.2 lets a client send its init before it has seen
// the mechanisms): the SASL header and sasl-init(ANONYMOUS), then the AMQP header and
// open(container-id). A server that demands SASL answers mechanisms, outcome, header and open.
std::string request(const check_config&, std::string_view, std::string_view client_id) {
    std::string out("AMQP\x03\x01\x00\x00", 8);
    // sasl-init(mechanism): described list, descriptor 0x41, one sym8 field
    std::string init("\x00\x53\x41\xC0\x0C\x01\xA3\x09" "ANONYMOUS", 17);
    put_frame(out, '\x01', init);
    out += std::string("AMQP\x00\x01\x00\x00", 8);
    // open(container-id): described list, descriptor 0x10
    std::string body("\x00\x53\x10\xC0", 4);
    body += static_cast<char>(1 + 2 + client_id.size());   // list8 size
    body += '\x01';                                        // one field
    body += '\xA1';                                        // str8
    body += static_cast<char>(client_id.size());
    body += client_id;
    put_frame(out, '\x00', body);
    return out;
}

// The AMQP part of a reply, from its header on: the header, then the open frame.
probe::verdict judge_amqp(std::string_view r, std::string& why) {
    if (r.size() < 8) return probe::verdict::need_more;
    if (r.substr(4, 4) != std::string_view("\x00\x01\x00\x00", 4)) {
        why = "unsupported AMQP version " + printable(r.substr(4, 4));
        return probe::verdict::down;
    }
    // Then the open frame: [size:4][doff][type][channel:2] ... descriptor 0x10
    if (r.size() < 8 + 8) return probe::verdict::need_more;
    const std::size_t doff = static_cast<unsigned char>(r[12]) * 4u;
    if (doff < 8 || r.size() < 8 + doff + 3) return probe::verdict::need_more;
    const auto perf = r.substr(8 + doff, 3);
    if (perf == std::string_view("\x00\x53\x10", 3)) {
        if (why.empty()) why = "open";
        else why += ", open";
        return probe::verdict::up;
    }
    why = "expected open, got " + printable(perf);
    return probe::verdict::down;
}

// The SASL frames after the SASL header: mechanisms, then the outcome; after an ok outcome the
// AMQP header and open follow.
probe::verdict judge_sasl(std::string_view r, std::string& why) {
    std::size_t at = 8;
    for (;;) {
        if (r.size() < at + 8) return probe::verdict::need_more;
        const auto size = std::size_t(static_cast<unsigned char>(r[at])) << 24 | std::size_t(static_cast<unsigned char>(r[at + 1])) << 16 |
                          std::size_t(static_cast<unsigned char>(r[at + 2])) << 8 | static_cast<unsigned char>(r[at + 3]);
        const std::size_t doff = static_cast<unsigned char>(r[at + 4]) * 4u;
        if (size < 8 || doff < 8 || doff > size || r[at + 5] != '\x01') {
            why = "malformed SASL frame";
            return probe::verdict::down;
        }
        if (r.size() < at + size) return probe::verdict::need_more;
        const auto body = r.substr(at + doff, size - doff);
        at += size;
        if (body.size() < 3 || body.substr(0, 2) != std::string_view("\x00\x53", 2)) {
            why = "malformed SASL frame";
            return probe::verdict::down;
        }
        if (body[2] == '\x40') continue;   // sasl-mechanisms
        if (body[2] != '\x44') {
            why = "unexpected SASL frame " + printable(body.substr(0, 3));
            return probe::verdict::down;
        }
        // sasl-outcome: list0 (no code: malformed), or list8/list32 whose first field is the
        // code, a ubyte (0x50 XX).
        std::size_t field = 0;
        if (body.size() >= 4 && body[3] == '\xC0') field = 6;
        else if (body.size() >= 4 && body[3] == '\xD0') field = 12;
        if (!field || body.size() < field + 2 || body[field] != '\x50') {
            why = "malformed sasl-outcome";
            return probe::verdict::down;
        }
        const auto code = static_cast<unsigned char>(body[field + 1]);
        if (code == 1) {
            // auth: this probe has no credentials; the server answers and runs its SASL.
            why = "SASL ANONYMOUS refused (the server wants credentials)";
            return probe::verdict::up;
        }
        if (code != 0) {
            why = "SASL outcome " + std::string(code == 2 ? "sys" : code == 3 ? "sys-perm" : code == 4 ? "sys-temp" : "code " + std::to_string(code));
            return probe::verdict::down;
        }
        why = "SASL ok";
        const auto rest = r.substr(at);
        if (rest.size() < 4) return std::string_view("AMQP").starts_with(rest) ? probe::verdict::need_more : probe::verdict::down;
        if (!rest.starts_with("AMQP")) {
            why = "after SASL, not an AMQP header: " + printable(rest);
            return probe::verdict::down;
        }
        return judge_amqp(rest, why);
    }
}

probe::verdict judge(const probe&, std::string_view r, std::string& why) {
    if (r.size() < 8) return std::string_view("AMQP").starts_with(r.substr(0, 4)) ? probe::verdict::need_more : probe::verdict::down;
    if (!r.starts_with("AMQP")) {
        why = "not an AMQP header: " + printable(r);
        return probe::verdict::down;
    }
    if (r[4] == '\x03') return judge_sasl(r, why);
    if (r[4] == '\x02') {
        why = "answers with the TLS protocol header";
        return probe::verdict::up;
    }
    // No SASL layer: the AMQP header, then open (a server that skips SASL).
    return judge_amqp(r, why);
}

constexpr probe_conversation check{check_type::amqp, request, judge, nullptr};

constexpr std::string_view websocket[] = {"amqp"};

}  // namespace

extern constinit const protocol_descriptor amqp_protocol{wire::amqp, "amqp", detect, &check, nullptr, websocket};

}  // namespace sb::gateway
