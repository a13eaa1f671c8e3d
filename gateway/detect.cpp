// gateway/detect.cpp — first-bytes protocol detection: TLS here (a transport layer, terminated
// before detection starts over), each protocol by its own detector in the adapter registry; and
// the refusal a client of each protocol understands, also the registry's.
#include "gateway/detect.hpp"

#include "gateway/registry.hpp"

namespace sb::gateway {

std::string_view wire_name(wire w) noexcept { return protocol_of(w).name; }

detection detect(std::span<const std::byte> head) noexcept {
    if (head.empty()) return {};
    if (static_cast<unsigned char>(head[0]) == 0x16) {   // a TLS handshake record
        if (head.size() < 2) return {};
        return {static_cast<unsigned char>(head[1]) == 0x03 ? sniff_result::tls : sniff_result::unknown, wire::stomp};
    }
    // The protocols' openings are disjoint: at most one says yes, whatever the order.
    bool maybe = false;
    for (const auto* p : protocols()) {
        switch (p->detect(head)) {
        case sniff::yes: return {sniff_result::known, p->id};
        case sniff::maybe: maybe = true; break;
        case sniff::no: break;
        }
    }
    return maybe ? detection{} : detection{sniff_result::unknown, wire::stomp};
}

std::optional<std::string> refusal_for(std::optional<wire> proto, std::string_view head) {
    if (!proto) return std::string();
    const auto refuse = protocol_of(*proto).refusal;
    return refuse ? refuse(head) : std::string();
}

}  // namespace sb::gateway
