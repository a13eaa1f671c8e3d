// gateway/protocols/openwire.cpp — OpenWire (ActiveMQ) as the gateway sees it: a WireFormatInfo
// first ([size:4][type 1]["ActiveMQ"]), from the client and from the server alike; the health
// check reads the server's and sends the same capabilities back. The kernel has no OpenWire
// adapter yet: the bytes are read here until adapters/openwire's codec exists. No refusal.
#include "gateway/registry.hpp"

namespace sb::gateway {

namespace {

std::uint32_t get32(std::string_view s, std::size_t at) {
    return (std::uint32_t{static_cast<unsigned char>(s[at])} << 24) |
           (std::uint32_t{static_cast<unsigned char>(s[at + 1])} << 16) |
           (std::uint32_t{static_cast<unsigned char>(s[at + 2])} << 8) | std::uint32_t{static_cast<unsigned char>(s[at + 3])};
}

sniff detect(std::span<const std::byte> head) noexcept {
    if (head.empty()) return sniff::maybe;
    if (head[0] != std::byte{0}) return sniff::no;   // a WireFormatInfo is far below 16 MiB
    if (head.size() < 5) return sniff::maybe;
    if (head[4] != std::byte{1}) return sniff::no;
    return match_at(head, 5, "ActiveMQ");
}

std::string request(const check_config&, std::string_view, std::string_view) { return {}; }   // the server speaks first

probe::verdict judge(const probe&, std::string_view r, std::string& why) {
    if (r.size() < 13) return probe::verdict::need_more;
    if (r[4] != '\x01' || r.substr(5, 8) != "ActiveMQ") {
        why = "not a WireFormatInfo: " + printable(r);
        return probe::verdict::down;
    }
    const std::size_t size = get32(r, 0);
    if (size < 9 || size > 65536) {   // type + magic at least; capabilities are small
        why = "WireFormatInfo of " + std::to_string(size) + " bytes";
        return probe::verdict::down;
    }
    if (r.size() < 4 + size) return probe::verdict::need_more;
    why = "WireFormatInfo";
    return probe::verdict::up;
}

// The exchange completes with our WireFormatInfo: the server's own capabilities.
std::string goodbye(std::string_view received) { return std::string(received.substr(0, 4 + get32(received, 0))); }

constexpr probe_conversation check{check_type::openwire, request, judge, goodbye};

}  // namespace

extern constinit const protocol_descriptor openwire_protocol{wire::openwire, "openwire", detect, &check, nullptr, {}};

}  // namespace sb::gateway
