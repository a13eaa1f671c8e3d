// gateway/protocols/http.cpp — HTTP as the gateway sees it: a request method and a space first
// (WebSocket upgrades start here), and a `GET path` health check judged by the status line. The
// kernel serves no HTTP (WebSockets come with their transport). No refusal.
#include "gateway/registry.hpp"

namespace sb::gateway {

namespace {

// Only at the very start: heart-beat EOLs come before a STOMP CONNECT, never before a method.
sniff detect(std::span<const std::byte> head) noexcept {
    sniff seen = sniff::no;
    for (std::string_view method : {"GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT "}) {
        const sniff m = match_at(head, 0, method);
        if (m == sniff::yes) return m;
        if (m == sniff::maybe) seen = m;
    }
    return seen;
}

std::string request(const check_config& c, std::string_view host, std::string_view) {
    return "GET " + c.http_path + " HTTP/1.1\r\nHost: " + std::string(host) +
           "\r\nUser-Agent: switchboard-check\r\nConnection: close\r\n\r\n";
}

probe::verdict judge(const probe& p, std::string_view r, std::string& why) {
    const auto eol = r.find("\r\n");
    if (eol == std::string_view::npos) return r.size() < 1024 ? probe::verdict::need_more : probe::verdict::down;
    const auto line = r.substr(0, eol);
    // HTTP/1.x NNN reason
    if (!line.starts_with("HTTP/1.") || line.size() < 12 || line[8] != ' ') {
        why = "not an HTTP status line: " + printable(line);
        return probe::verdict::down;
    }
    const auto code = line.substr(9, 3);
    why = "HTTP " + std::string(code);
    return code == std::to_string(p.http_status) ? probe::verdict::up : probe::verdict::down;
}

constexpr probe_conversation check{check_type::http, request, judge, nullptr};

}  // namespace

extern constinit const protocol_descriptor http_protocol{wire::http, "http", detect, &check, nullptr, {}};

}  // namespace sb::gateway
