// gateway/protocols/stomp.cpp — STOMP as the gateway sees it: CONNECT or STOMP first (after
// optional heart-beat EOLs), a CONNECT / CONNECTED health check and the ERROR refusal, written
// with the STOMP codec.
#include <variant>

#include "adapters/stomp/codec.hpp"
#include "gateway/detect.hpp"
#include "gateway/registry.hpp"

namespace sb::gateway {

namespace {

std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// "CONNECT" or "STOMP" and an end of line, after at most 8 heart-beat EOLs. HTTP's CONNECT
// method is followed by a space instead, which tells the two apart.
sniff detect(std::span<const std::byte> head) noexcept {
    constexpr std::size_t max_eols = 8;
    std::size_t at = 0;
    while (at < head.size() && at <= max_eols && (head[at] == std::byte{'\n'} || head[at] == std::byte{'\r'})) ++at;
    if (at > max_eols) return sniff::no;
    if (at == head.size()) return sniff::maybe;
    sniff seen = sniff::no;
    for (std::string_view verb : {std::string_view("CONNECT"), std::string_view("STOMP")}) {
        const sniff m = match_at(head, at, verb);
        if (m == sniff::maybe) seen = sniff::maybe;
        if (m != sniff::yes) continue;
        const std::size_t end = at + verb.size();
        if (end >= head.size()) return sniff::maybe;
        const auto c = static_cast<char>(head[end]);
        return c == '\n' || c == '\r' ? sniff::yes : sniff::no;
    }
    return seen;
}

std::string request(const check_config&, std::string_view host, std::string_view) {
    stomp::frame f;
    f.cmd = stomp::command::connect;
    f.headers = {{"accept-version", "1.0,1.1,1.2"}, {"host", host}};
    std::string out;
    stomp::encode(out, f, stomp::version::v1_2);
    return out;
}

// The command line decides (a CONNECTED is the broker answering, whatever follows it); an
// ERROR frame is read whole by the codec so that its message can be logged.
probe::verdict judge(const probe&, std::string_view r, std::string& why) {
    std::size_t at = 0;
    while (at < r.size() && (r[at] == '\n' || r[at] == '\r')) ++at;   // heart-beats
    const auto rest = r.substr(at);
    if (rest.starts_with("CONNECTED\n") || rest.starts_with("CONNECTED\r\n")) {
        why = "CONNECTED";
        return probe::verdict::up;
    }
    if (std::string_view("CONNECTED\n").starts_with(rest) || std::string_view("CONNECTED\r\n").starts_with(rest))
        return probe::verdict::need_more;
    if (rest.starts_with("ERROR\n") || rest.starts_with("ERROR\r\n")) {
        stomp::limits lim;
        lim.max_frame_bytes = 4096;
        stomp::frame f;
        std::string scratch;
        const auto d = stomp::decode(bytes_of(rest), lim, stomp::version::v1_2, f, scratch);
        // A NUL ends every frame: one that the codec has not read as the end is no ERROR frame.
        if (std::holds_alternative<stomp::need_more>(d) && rest.find('\0') == std::string_view::npos)
            return probe::verdict::need_more;
        const auto message = std::holds_alternative<stomp::decoded>(d) ? f.get("message") : std::nullopt;
        why = "ERROR " + printable(message ? *message : rest);
        return probe::verdict::down;
    }
    if (std::string_view("ERROR\r\n").starts_with(rest) || std::string_view("ERROR\n").starts_with(rest))
        return probe::verdict::need_more;
    why = "not a STOMP reply: " + printable(rest);
    return probe::verdict::down;
}

std::string goodbye(std::string_view) {
    stomp::frame f;
    f.cmd = stomp::command::disconnect;
    std::string out;
    stomp::encode(out, f, stomp::version::v1_2);
    return out;
}

constexpr probe_conversation check{check_type::stomp, request, judge, goodbye};

// As for MQTT: the ERROR goes out once the client's whole CONNECT frame is in (read by the
// codec, heart-beat EOLs before it skipped), so the close that follows is no reset.
std::optional<std::string> refusal(std::string_view head) {
    stomp::limits lim;
    lim.max_frame_bytes = refusal_max_connect_bytes;
    stomp::frame in;
    std::string scratch;
    auto bytes = bytes_of(head);
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
    err.headers = {{"content-type", "text/plain"}, {"message", "no server available"}, {"content-length", length}};
    err.body = bytes_of(body);
    std::string out;
    stomp::encode(out, err, stomp::version::v1_2);
    return out;
}

constexpr std::string_view websocket[] = {"v12.stomp", "v11.stomp", "v10.stomp"};

}  // namespace

extern constinit const protocol_descriptor stomp_protocol{wire::stomp, "stomp", detect, &check, refusal, websocket};

}  // namespace sb::gateway
