// gateway/protocols/amqp.cpp — AMQP 1.0 as the gateway sees it: "AMQP" + protocol id first, and
// a header + open health check (the probe's few bytes are written here). The kernel's side is
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

// The AMQP 1.0 header, then open(container-id) on channel 0.
std::string request(const check_config&, std::string_view, std::string_view client_id) {
    std::string out("AMQP\x00\x01\x00\x00", 8);
    // open(container-id): described list, descriptor 0x10
    std::string body("\x00\x53\x10\xC0", 4);
    body += static_cast<char>(1 + 2 + client_id.size());   // list8 size
    body += '\x01';                                        // one field
    body += '\xA1';                                        // str8
    body += static_cast<char>(client_id.size());
    body += client_id;
    const std::size_t size = 8 + body.size();
    out += std::string("\x00\x00", 2);
    put16(out, size);
    out += std::string("\x02\x00\x00\x00", 4);   // doff 2, type AMQP, channel 0
    out += body;
    return out;
}

// Header + open passes; a SASL (or TLS) header in reply passes too: the broker speaks AMQP.
probe::verdict judge(const probe&, std::string_view r, std::string& why) {
    if (r.size() < 8) return std::string_view("AMQP").starts_with(r.substr(0, 4)) ? probe::verdict::need_more : probe::verdict::down;
    if (!r.starts_with("AMQP")) {
        why = "not an AMQP header: " + printable(r);
        return probe::verdict::down;
    }
    if (r[4] == '\x03' || r[4] == '\x02') {
        why = "answers with the SASL/TLS protocol header";
        return probe::verdict::up;
    }
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
        why = "open";
        return probe::verdict::up;
    }
    why = "expected open, got " + printable(perf);
    return probe::verdict::down;
}

constexpr probe_conversation check{check_type::amqp, request, judge, nullptr};

constexpr std::string_view websocket[] = {"amqp"};

}  // namespace

extern constinit const protocol_descriptor amqp_protocol{wire::amqp, "amqp", detect, &check, nullptr, websocket};

}  // namespace sb::gateway
