// adapters/stomp/mapping.cpp — SEND -> core::message, core::message -> MESSAGE.
#include "adapters/stomp/mapping.hpp"

#include <array>
#include <charconv>
#include <vector>

#include "adapters/stomp/codec.hpp"
#include "core/destination/composite.hpp"

namespace sb::stomp {

namespace {

constexpr std::string_view queue_prefix = "/queue/";
constexpr std::string_view topic_prefix = "/topic/";
constexpr std::string_view temp_queue_prefix = "/temp-queue/";
constexpr std::string_view temp_topic_prefix = "/temp-topic/";
constexpr std::string_view remote_temp_queue_prefix = "/remote-temp-queue/";
constexpr std::string_view remote_temp_topic_prefix = "/remote-temp-topic/";

// Headers that describe the frame or map to message fields, never copied as properties.
constexpr std::array<std::string_view, 17> reserved_headers = {
    "destination", "content-length", "content-type", "receipt", "transaction", "persistent",
    "priority", "expires", "reply-to", "correlation-id", "type", "JMSXGroupID", "JMSXGroupSeq",
    "message-id", "subscription", "ack", "JMSXGroupFirstForConsumer"};

bool reserved(std::string_view name) noexcept {
    for (auto r : reserved_headers)
        if (r == name) return true;
    return false;
}

template <typename Int>
bool parse_int(std::string_view s, Int& out) noexcept {
    if (s.empty()) return false;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

void header_int(std::string& out, std::string_view name, std::int64_t value, version v) {
    std::array<char, 24> buf;
    const auto [p, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
    encode_header(out, name, std::string_view(buf.data(), std::size_t(p - buf.data())), v, false);
}

// A destination as this connection calls it: its own temporary ones by the client's name.
std::string name_of(const core::destination& d, const temp_destinations* temps) {
    if (d.is_temporary() && temps) {
        if (auto own = temps->own_name(d); !own.empty()) return std::string(own);
    }
    return format_destination(d);
}

// The kernel writes a dead-lettered or virtual topic copy's origin as "queue://x" / "topic://x";
// STOMP clients read destinations as "/queue/x" / "/topic/x" (ActiveMQ's header).
std::string original_destination_text(std::string value) {
    if (value.starts_with(core::composite_queue_prefix))
        return std::string(queue_prefix) + value.substr(core::composite_queue_prefix.size());
    if (value.starts_with(core::composite_topic_prefix))
        return std::string(topic_prefix) + value.substr(core::composite_topic_prefix.size());
    return value;
}

}  // namespace

std::variant<core::destination, mapping_error> parse_destination(std::string_view text, bool for_send) {
    core::destination d;
    if (text.starts_with(queue_prefix)) {
        d.kind = core::dest_kind::queue;
        text.remove_prefix(queue_prefix.size());
    } else if (text.starts_with(topic_prefix)) {
        d.kind = core::dest_kind::topic;
        text.remove_prefix(topic_prefix.size());
    } else {
        return mapping_error{"destination must start with /queue/ or /topic/"};
    }
    if (!core::valid_name(text)) return mapping_error{"invalid destination name"};
    if (core::has_wildcard(text)) {
        if (for_send) return mapping_error{"cannot send to a wildcard destination"};
        if (d.kind == core::dest_kind::queue) return mapping_error{"wildcards are only supported on topics"};
    }
    d.name = std::string(text);
    return d;
}

std::variant<core::destination, mapping_error> parse_send_destination(std::string_view text) {
    if (text.find(',') == std::string_view::npos) return parse_destination(text, true);
    // ActiveMQ's composite destination: "/queue/a,/topic/b", a part without a prefix of the
    // kind of the one before it ("/queue/a,b": two queues).
    std::vector<core::destination> parts;
    while (true) {
        const auto comma = text.find(',');
        std::string_view part = text.substr(0, comma);
        if (part.starts_with('/') || parts.empty()) {
            auto d = parse_destination(part, true);
            if (auto* e = std::get_if<mapping_error>(&d)) return *e;
            parts.push_back(std::move(std::get<core::destination>(d)));
        } else {
            if (!core::valid_name(part) || core::has_wildcard(part)) return mapping_error{"invalid destination name"};
            parts.push_back(core::destination{parts.back().kind, std::string(part)});
        }
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
    }
    core::destination d{parts.front().kind, core::composite_name(parts)};
    if (core::composite_parts(d.name).size() == 1) return parts.front();   // "/queue/a,/queue/a"
    return d;
}

std::string format_destination(const core::destination& d) {
    std::string s(d.is_temporary() ? (d.is_queue() ? remote_temp_queue_prefix : remote_temp_topic_prefix)
                                   : (d.is_queue() ? queue_prefix : topic_prefix));
    s += d.name;
    return s;
}

std::optional<temp_reference> parse_temp_destination(std::string_view text) noexcept {
    constexpr std::array<std::pair<std::string_view, temp_reference>, 4> forms = {{
        {temp_queue_prefix, {core::dest_kind::temp_queue, {}, false}},
        {temp_topic_prefix, {core::dest_kind::temp_topic, {}, false}},
        {remote_temp_queue_prefix, {core::dest_kind::temp_queue, {}, true}},
        {remote_temp_topic_prefix, {core::dest_kind::temp_topic, {}, true}},
    }};
    for (const auto& [prefix, ref] : forms) {
        if (!text.starts_with(prefix) || text.size() == prefix.size()) continue;
        auto r = ref;
        r.name = text.substr(prefix.size());
        return r;
    }
    return std::nullopt;
}

std::variant<core::destination, mapping_error> parse_stomp_destination(std::string_view text, bool for_send,
                                                                       temp_destinations* temps) {
    if (auto t = parse_temp_destination(text)) {
        if (!temps) return mapping_error{"temporary destinations are not available here"};
        auto d = temps->resolve(*t);
        if (!d) return mapping_error{"too many temporary destinations"};
        return std::move(*d);
    }
    if (!for_send && text.starts_with(queue_prefix)) {
        // ActiveMQ's wildcard queue consumers: parse as a topic pattern, then make it a queue.
        std::string as_topic(topic_prefix);
        as_topic += text.substr(queue_prefix.size());
        auto r = parse_destination(as_topic, false);
        if (auto* d = std::get_if<core::destination>(&r)) d->kind = core::dest_kind::queue;
        return r;
    }
    return parse_destination(text, for_send);
}

std::variant<core::message, mapping_error> message_from_send(const frame& f, temp_destinations* temps) {
    core::message m;
    const auto dest = f.get("destination");
    if (!dest) return mapping_error{"SEND requires a destination header"};
    // A composite destination ("/queue/a,/topic/b") names no temporary one (sched).
    auto parsed = dest->find(',') != std::string_view::npos ? parse_send_destination(*dest)
                  : temps ? parse_stomp_destination(*dest, true, temps)
                          : parse_destination(*dest, true);
    if (auto* e = std::get_if<mapping_error>(&parsed)) return *e;
    m.dest = std::move(std::get<core::destination>(parsed));

    for (std::size_t i = 0; i < f.headers.size(); ++i) {
        const auto& h = f.headers[i];
        // STOMP 1.2: the first occurrence of a repeated header wins.
        bool repeated = false;
        for (std::size_t j = 0; j < i && !repeated; ++j) repeated = f.headers[j].name == h.name;
        if (repeated) continue;
        if (h.name == "persistent") {
            m.persistent = h.value == "true";
        } else if (h.name == "priority") {
            int p = 0;
            if (!parse_int(h.value, p) || p < 0 || p > 9) return mapping_error{"priority must be 0..9"};
            m.priority = std::uint8_t(p);
        } else if (h.name == "expires") {
            std::int64_t e = 0;
            if (!parse_int(h.value, e) || e < 0) return mapping_error{"expires must be a time in ms"};
            m.expiration_ms = e;
        } else if (h.name == "reply-to") {
            auto r = temps ? parse_stomp_destination(h.value, true, temps) : parse_destination(h.value, true);
            if (auto* d = std::get_if<core::destination>(&r)) m.reply_to = std::move(*d);
            else m.properties.push_back({"reply-to", std::string(h.value)});  // foreign naming
        } else if (h.name == "correlation-id") {
            m.correlation_id = std::string(h.value);
        } else if (h.name == "type") {
            m.type = std::string(h.value);
        } else if (h.name == "content-type") {
            m.content_type = std::string(h.value);
        } else if (h.name == "JMSXGroupID") {
            m.group_id = std::string(h.value);
        } else if (h.name == "JMSXGroupSeq") {
            if (!parse_int(h.value, m.group_seq)) return mapping_error{"JMSXGroupSeq must be an integer"};
        } else if (!reserved(h.name)) {
            m.properties.push_back({std::string(h.name), std::string(h.value)});
        }
    }
    // ActiveMQ's rule: content-length marks a bytes message, its absence a text message.
    m.kind = f.has_content_length ? core::body_kind::bytes : core::body_kind::text;
    m.body.assign(reinterpret_cast<const char*>(f.body.data()), f.body.size());
    return m;
}

std::string format_message_id(std::string_view broker_name, core::message_id id) {
    std::string s = "ID:";
    s += broker_name;
    s += '-';
    s += std::to_string(id);
    return s;
}

std::optional<core::message_id> parse_message_id(std::string_view text) noexcept {
    if (!text.starts_with("ID:")) return std::nullopt;
    const auto dash = text.rfind('-');
    if (dash == std::string_view::npos) return std::nullopt;
    core::message_id id = 0;
    if (!parse_int(text.substr(dash + 1), id)) return std::nullopt;
    return id;
}

void encode_message(std::string& out, version v, const core::message& m, std::uint32_t redeliveries,
                    const message_frame_args& args) {
    encode_command(out, command::message);
    encode_header(out, "subscription", args.subscription, v, true);
    encode_header(out, "message-id", format_message_id(args.broker_name, m.id), v, true);
    encode_header(out, "destination", name_of(m.dest, args.temps), v, true);
    if (!args.ack.empty()) encode_header(out, "ack", args.ack, v, false);
    if (m.persistent) encode_header(out, "persistent", "true", v, false);
    if (m.priority != core::default_priority) header_int(out, "priority", m.priority, v);
    header_int(out, "expires", m.expiration_ms, v);
    header_int(out, "timestamp", m.timestamp_ms, v);
    if (redeliveries > 0) encode_header(out, "redelivered", "true", v, false);
    if (m.reply_to) encode_header(out, "reply-to", name_of(*m.reply_to, args.temps), v, true);
    if (!m.correlation_id.empty()) encode_header(out, "correlation-id", m.correlation_id, v, true);
    if (!m.type.empty()) encode_header(out, "type", m.type, v, true);
    // ActiveMQ's STOMP marks its advisory messages' JSON bodies so (the kernel's advisories).
    if (m.type == "Advisory" && m.dest.name.starts_with("ActiveMQ.Advisory."))
        encode_header(out, "transformation", "jms-advisory-json", v, false);
    if (!m.group_id.empty()) {
        encode_header(out, "JMSXGroupID", m.group_id, v, true);
        header_int(out, "JMSXGroupSeq", m.group_seq, v);
        if (args.group_first) encode_header(out, "JMSXGroupFirstForConsumer", "true", v, false);
    }
    if (!m.content_type.empty()) encode_header(out, "content-type", m.content_type, v, true);
    for (const auto& p : m.properties) {
        if (reserved(p.name)) continue;
        if (p.name == "original-destination") {   // sched: as ActiveMQ writes it, "/queue/x"
            encode_header(out, p.name, original_destination_text(core::to_text(p.value)), v, true);
            continue;
        }
        encode_header(out, p.name, core::to_text(p.value), v, true);
    }
    header_int(out, "content-length", std::int64_t(m.body.size()), v);
    encode_body(out, std::span(reinterpret_cast<const std::uint8_t*>(m.body.data()), m.body.size()));
}

void encode_browse_end(std::string& out, version v, std::string_view subscription, const core::destination& dest,
                       const temp_destinations* temps) {
    encode_command(out, command::message);
    encode_header(out, "subscription", subscription, v, true);
    encode_header(out, "destination", name_of(dest, temps), v, true);
    encode_header(out, "message-id", "0", v, false);
    encode_header(out, "browser", "end", v, false);
    header_int(out, "content-length", 0, v);
    encode_body(out, {});
}

}  // namespace sb::stomp
