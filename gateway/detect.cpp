// gateway/detect.cpp — first-bytes protocol detection (see detect.hpp for the signatures), and
// the refusal a client of each protocol understands.
#include "gateway/detect.hpp"

#include <array>
#include <variant>

#include "adapters/mqtt/codec.hpp"
#include "adapters/stomp/codec.hpp"

namespace sb::gateway {

namespace {

// Compares what has arrived of `head` with `sig`: 1 = all of sig matched, 0 = a prefix of sig
// matched so far, -1 = mismatch.
int match(std::span<const std::byte> head, std::size_t at, std::string_view sig) noexcept {
    for (std::size_t i = 0; i < sig.size(); ++i) {
        if (at + i >= head.size()) return 0;
        if (static_cast<char>(head[at + i]) != sig[i]) return -1;
    }
    return 1;
}

}  // namespace

std::string_view wire_name(wire w) noexcept {
    switch (w) {
    case wire::stomp: return "stomp";
    case wire::mqtt: return "mqtt";
    case wire::amqp: return "amqp";
    case wire::openwire: return "openwire";
    case wire::http: return "http";
    }
    return "?";
}

detection detect(std::span<const std::byte> head) noexcept {
    if (head.empty()) return {};
    const auto b0 = static_cast<unsigned char>(head[0]);
    if (b0 == 0x10) return {sniff_result::known, wire::mqtt};
    if (b0 == 0x16) {
        if (head.size() < 2) return {};
        return {static_cast<unsigned char>(head[1]) == 0x03 ? sniff_result::tls : sniff_result::unknown, wire::stomp};
    }
    if (b0 == 'A') {
        switch (match(head, 0, "AMQP")) {
        case 1: return {sniff_result::known, wire::amqp};
        case 0: return {};
        default: break;
        }
    }
    if (b0 == 0x00) {
        // OpenWire: [size:4][type=1][magic "ActiveMQ"]
        if (head.size() < 5) return {};
        if (static_cast<unsigned char>(head[4]) != 1) return {sniff_result::unknown, wire::stomp};
        switch (match(head, 5, "ActiveMQ")) {
        case 1: return {sniff_result::known, wire::openwire};
        case 0: return {};
        default: return {sniff_result::unknown, wire::stomp};
        }
    }
    // STOMP, possibly after heart-beat EOLs; then "CONNECT" or "STOMP" and an EOL. HTTP's
    // CONNECT method is followed by a space, which tells the two apart.
    constexpr std::size_t max_eols = 8;
    std::size_t at = 0;
    while (at < head.size() && at <= max_eols && (head[at] == std::byte{'\n'} || head[at] == std::byte{'\r'})) ++at;
    if (at > max_eols) return {sniff_result::unknown, wire::stomp};
    if (at == head.size()) return {};
    int partial = -1;
    for (std::string_view verb : {std::string_view("CONNECT"), std::string_view("STOMP")}) {
        const int m = match(head, at, verb);
        if (m == 0) partial = 0;
        if (m != 1) continue;
        const std::size_t end = at + verb.size();
        if (end >= head.size()) return {};
        const auto c = static_cast<char>(head[end]);
        if (c == '\n' || c == '\r') return {sniff_result::known, wire::stomp};
        if (c == ' ' && verb == "CONNECT" && at == 0) return {sniff_result::known, wire::http};
        return {sniff_result::unknown, wire::stomp};
    }
    if (at == 0) {
        for (std::string_view method : {"GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH "}) {
            const int m = match(head, 0, method);
            if (m == 1) return {sniff_result::known, wire::http};
            if (m == 0) partial = 0;
        }
    }
    return partial == 0 ? detection{} : detection{sniff_result::unknown, wire::stomp};
}

std::optional<std::string> refusal_for(std::optional<wire> proto, std::string_view head) {
    if (!proto) return std::string();
    if (*proto == wire::mqtt) {
        // The version is the CONNECT's, read by the codec: a refusal is sent only once the whole
        // packet is in (nothing left unread, so the close that follows is no reset).
        mqtt::limits lim;
        lim.max_packet_size = refusal_max_connect_bytes;
        lim.max_properties = refusal_max_connect_bytes;   // the size bounds them
        const auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(head.data()), head.size());
        const auto r = mqtt::decode(bytes, lim, mqtt::version::v3_1_1);
        if (std::holds_alternative<mqtt::need_more>(r)) return std::nullopt;
        const auto* d = std::get_if<mqtt::decoded>(&r);
        const auto* c = d ? std::get_if<mqtt::connect>(&d->frame) : nullptr;
        if (!c) return std::string();   // malformed, or not a CONNECT: just close
        mqtt::connack ack;
        ack.code = c->ver == mqtt::version::v5 ? static_cast<std::uint8_t>(mqtt::reason::server_unavailable)
                                               : static_cast<std::uint8_t>(mqtt::connack_v3::server_unavailable);
        std::string out;
        mqtt::encode(ack, c->ver, out);
        return out;
    }
    if (*proto == wire::stomp) {
        // As for MQTT: the ERROR goes out once the client's whole CONNECT frame is in (read by
        // the codec, heart-beat EOLs before it skipped), so the close that follows is no reset.
        stomp::limits lim;
        lim.max_frame_bytes = refusal_max_connect_bytes;
        stomp::frame in;
        std::string scratch;
        auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(head.data()), head.size());
        for (;;) {
            const auto r = stomp::decode(bytes, lim, stomp::version::v1_2, in, scratch);
            if (const auto* hb = std::get_if<stomp::heartbeat>(&r)) {
                bytes = bytes.subspan(hb->consumed);
                continue;
            }
            if (std::holds_alternative<stomp::need_more>(r)) return std::nullopt;
            break;   // a frame, or bytes that are none: the ERROR says why we close either way
        }
        static constexpr std::string_view body =
            "Switchboard has no backend server available for this connection; retry later.";
        const std::string length = std::to_string(body.size());
        stomp::frame err;
        err.cmd = stomp::command::error;
        err.headers = {{"content-type", "text/plain"}, {"message", "no server available"},
                       {"content-length", length}};
        err.body = std::span(reinterpret_cast<const std::uint8_t*>(body.data()), body.size());
        std::string out;
        stomp::encode(out, err, stomp::version::v1_2);
        return out;
    }
    return std::string();
}

}  // namespace sb::gateway
