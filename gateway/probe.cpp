// gateway/probe.cpp — a health check's conversation, found in the adapter registry by check type.
// Pure (fuzzed with the detector: tests/fuzz/gateway_fuzz.cpp).
#include "gateway/probe.hpp"

#include "gateway/registry.hpp"

namespace sb::gateway {

namespace {

const protocol_descriptor* protocol_checked_by(check_type t) {
    for (const auto* p : protocols())
        if (p->check && p->check->type == t) return p;
    return nullptr;
}

}  // namespace

std::string_view check_type_name(check_type t) {
    switch (t) {
    case check_type::none: return "none";
    case check_type::tcp: return "tcp";
    default: break;
    }
    const auto* p = protocol_checked_by(t);
    return p ? p->name : "?";
}

std::string printable(std::string_view s, std::size_t max) {
    std::string out;
    for (std::size_t i = 0; i < s.size() && i < max; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
    }
    return out;
}

probe make_probe(const check_config& c, std::string_view host, std::string_view client_id) {
    probe p;
    p.type = c.type;
    p.http_status = c.http_status;
    if (const auto* proto = protocol_checked_by(c.type)) {
        p.conversation = proto->check;
        p.request = proto->check->request(c, host, client_id);
    }
    return p;
}

probe::verdict probe::judge(std::string_view received, std::string& why) const {
    if (!conversation) {
        why = "connected";
        return verdict::up;
    }
    return conversation->judge(*this, received, why);
}

std::string probe::goodbye(std::string_view received) const {
    return conversation && conversation->goodbye ? conversation->goodbye(received) : std::string();
}

}  // namespace sb::gateway
