// gateway/probe.cpp — the health checks' conversations: requests, and judgements of replies.
// Pure (fuzzed with the detector: tests/fuzz/gateway_fuzz.cpp).
#include "gateway/probe.hpp"

namespace sb::gateway {

std::string_view check_type_name(check_type t) {
    switch (t) {
    case check_type::none: return "none";
    case check_type::tcp: return "tcp";
    case check_type::mqtt: return "mqtt";
    case check_type::stomp: return "stomp";
    case check_type::amqp: return "amqp";
    case check_type::openwire: return "openwire";
    case check_type::http: return "http";
    }
    return "?";
}

namespace {

void put16(std::string& s, std::size_t v) {
    s += static_cast<char>((v >> 8) & 0xFF);
    s += static_cast<char>(v & 0xFF);
}

std::uint32_t get32(std::string_view s, std::size_t at) {
    return (std::uint32_t{static_cast<unsigned char>(s[at])} << 24) |
           (std::uint32_t{static_cast<unsigned char>(s[at + 1])} << 16) |
           (std::uint32_t{static_cast<unsigned char>(s[at + 2])} << 8) | std::uint32_t{static_cast<unsigned char>(s[at + 3])};
}

std::string printable(std::string_view s, std::size_t max = 60) {
    std::string out;
    for (std::size_t i = 0; i < s.size() && i < max; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
    }
    return out;
}

}  // namespace

probe make_probe(const check_config& c, std::string_view host, std::string_view client_id) {
    probe p;
    p.type = c.type;
    p.http_status = c.http_status;
    switch (c.type) {
    case check_type::none:
    case check_type::tcp:
    case check_type::openwire:   // the server speaks first
        break;
    case check_type::mqtt: {
        std::string body;
        put16(body, 4);
        body += "MQTT";
        body += '\x04';          // 3.1.1
        body += '\x02';          // clean session
        put16(body, 30);         // keep-alive
        put16(body, client_id.size());
        body += client_id;
        p.request += '\x10';
        p.request += static_cast<char>(body.size());   // < 128 for any sane client id
        p.request += body;
        break;
    }
    case check_type::stomp:
        p.request = "CONNECT\naccept-version:1.0,1.1,1.2\nhost:" + std::string(host) + "\n\n";
        p.request += '\0';
        break;
    case check_type::amqp: {
        p.request = std::string("AMQP\x00\x01\x00\x00", 8);
        // open(container-id): described list, descriptor 0x10
        std::string body("\x00\x53\x10\xC0", 4);
        body += static_cast<char>(1 + 2 + client_id.size());   // list8 size
        body += '\x01';                                        // one field
        body += '\xA1';                                        // str8
        body += static_cast<char>(client_id.size());
        body += client_id;
        const std::size_t size = 8 + body.size();
        p.request += std::string("\x00\x00", 2);
        put16(p.request, size);
        p.request += std::string("\x02\x00\x00\x00", 4);        // doff 2, type AMQP, channel 0
        p.request += body;
        break;
    }
    case check_type::http:
        p.request = "GET " + c.http_path + " HTTP/1.1\r\nHost: " + std::string(host) +
                    "\r\nUser-Agent: switchboard-check\r\nConnection: close\r\n\r\n";
        break;
    }
    return p;
}

probe::verdict probe::judge(std::string_view r, std::string& why) const {
    switch (type) {
    case check_type::none:
    case check_type::tcp:
        why = "connected";
        return verdict::up;
    case check_type::mqtt:
        if (r.size() < 4) return verdict::need_more;
        if (r[0] != '\x20' || r[1] != '\x02') {
            why = "not a CONNACK: " + printable(r);
            return verdict::down;
        }
        switch (static_cast<unsigned char>(r[3])) {
        case 0: why = "CONNACK accepted"; return verdict::up;
        case 4:
        case 5: why = "CONNACK refused for credentials (broker answering)"; return verdict::up;
        default: why = "CONNACK refused rc=" + std::to_string(static_cast<unsigned char>(r[3])); return verdict::down;
        }
    case check_type::stomp: {
        std::size_t at = 0;
        while (at < r.size() && (r[at] == '\n' || r[at] == '\r')) ++at;   // heart-beats
        const auto rest = r.substr(at);
        if (rest.starts_with("CONNECTED\n") || rest.starts_with("CONNECTED\r\n")) {
            why = "CONNECTED";
            return verdict::up;
        }
        if (std::string_view("CONNECTED\n").starts_with(rest) || std::string_view("CONNECTED\r\n").starts_with(rest))
            return verdict::need_more;
        if (rest.starts_with("ERROR")) {
            if (rest.find('\0') == std::string_view::npos && rest.size() < 4096) return verdict::need_more;
            const auto m = rest.find("message:");
            why = "ERROR " + (m == std::string_view::npos ? printable(rest) : printable(rest.substr(m + 8)));
            return verdict::down;
        }
        if (rest.size() < 5 && std::string_view("ERROR").starts_with(rest)) return verdict::need_more;
        why = "not a STOMP reply: " + printable(rest);
        return verdict::down;
    }
    case check_type::amqp: {
        if (r.size() < 8) return std::string_view("AMQP").starts_with(r.substr(0, 4)) ? verdict::need_more : verdict::down;
        if (!r.starts_with("AMQP")) {
            why = "not an AMQP header: " + printable(r);
            return verdict::down;
        }
        if (r[4] == '\x03' || r[4] == '\x02') {
            why = "answers with the SASL/TLS protocol header";
            return verdict::up;
        }
        if (r.substr(4, 4) != std::string_view("\x00\x01\x00\x00", 4)) {
            why = "unsupported AMQP version " + printable(r.substr(4, 4));
            return verdict::down;
        }
        // Then the open frame: [size:4][doff][type][channel:2] ... descriptor 0x10
        if (r.size() < 8 + 8) return verdict::need_more;
        const std::size_t doff = static_cast<unsigned char>(r[12]) * 4u;
        if (doff < 8 || r.size() < 8 + doff + 3) return verdict::need_more;
        const auto perf = r.substr(8 + doff, 3);
        if (perf == std::string_view("\x00\x53\x10", 3)) {
            why = "open";
            return verdict::up;
        }
        why = "expected open, got " + printable(perf);
        return verdict::down;
    }
    case check_type::openwire: {
        if (r.size() < 13) return verdict::need_more;
        if (r[4] != '\x01' || r.substr(5, 8) != "ActiveMQ") {
            why = "not a WireFormatInfo: " + printable(r);
            return verdict::down;
        }
        const std::size_t size = get32(r, 0);
        if (size < 9 || size > 65536) {   // type + magic at least; capabilities are small
            why = "WireFormatInfo of " + std::to_string(size) + " bytes";
            return verdict::down;
        }
        if (r.size() < 4 + size) return verdict::need_more;
        why = "WireFormatInfo";
        return verdict::up;
    }
    case check_type::http: {
        const auto eol = r.find("\r\n");
        if (eol == std::string_view::npos) return r.size() < 1024 ? verdict::need_more : verdict::down;
        const auto line = r.substr(0, eol);
        // HTTP/1.x NNN reason
        if (!line.starts_with("HTTP/1.") || line.size() < 12 || line[8] != ' ') {
            why = "not an HTTP status line: " + printable(line);
            return verdict::down;
        }
        const auto code = line.substr(9, 3);
        why = "HTTP " + std::string(code);
        return code == std::to_string(http_status) ? verdict::up : verdict::down;
    }
    }
    return verdict::down;
}

std::string probe::goodbye(std::string_view received) const {
    switch (type) {
    case check_type::mqtt: return std::string("\xE0\x00", 2);
    case check_type::stomp: return std::string("DISCONNECT\n\n\0", 13);
    case check_type::openwire: {
        // The exchange completes with our WireFormatInfo: the server's own capabilities.
        return std::string(received.substr(0, 4 + get32(received, 0)));
    }
    default: return {};
    }
}

}  // namespace sb::gateway
