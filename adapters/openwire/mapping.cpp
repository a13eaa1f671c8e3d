// adapters/openwire/mapping.cpp — OpenWire (JMS) messages <-> kernel messages (docs/mapping.md).
#include "adapters/openwire/mapping.hpp"

#include <algorithm>
#include <charconv>

#include <nlohmann/json.hpp>
#include <zlib.h>

namespace sb::openwire {

namespace {

std::string_view without_options(std::string_view name) {
    const auto q = name.find('?');
    return q == std::string_view::npos ? name : name.substr(0, q);
}

std::string_view text_of(bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }
bytes bytes_of(std::string_view s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

bool parse_int(std::string_view s, std::int64_t& out) {
    if (s.empty()) return false;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

// The message's properties (a primitive map) as kernel properties. Nested maps and lists have
// no kernel type: dropped, as JMS allows none.
std::optional<mapping_error> read_properties(bytes props, wire_format& wf, std::vector<core::property>& out) {
    if (is_null(props) || props.empty()) return std::nullopt;
    primitive_reader r(props, wf);
    std::int32_t n = 0;
    if (!r.read_map_size(n)) return mapping_error{"java.io.IOException", "malformed message properties: " + std::string(r.error())};
    for (std::int32_t i = 0; i < n; ++i) {
        std::string_view key;
        primitive v;
        if (!r.read_key(key) || !r.read_value(v))
            return mapping_error{"java.io.IOException", "malformed message properties: " + std::string(r.error())};
        core::property p{std::string(key), {}};
        switch (v.type) {
        case primitive_type::null: break;
        case primitive_type::boolean: p.value = v.b; break;
        case primitive_type::byte: p.value = static_cast<std::int8_t>(v.i); break;
        case primitive_type::short_: p.value = static_cast<std::int16_t>(v.i); break;
        case primitive_type::char_: p.value = static_cast<std::int32_t>(v.i); break;
        case primitive_type::integer: p.value = static_cast<std::int32_t>(v.i); break;
        case primitive_type::long_: p.value = v.i; break;
        case primitive_type::double_: p.value = v.d; break;
        case primitive_type::float_: p.value = static_cast<float>(v.d); break;
        case primitive_type::string:
        case primitive_type::big_string: p.value = std::string(v.s); break;
        case primitive_type::byte_array: p.value = std::vector<std::uint8_t>(v.s.begin(), v.s.end()); break;
        case primitive_type::map:
        case primitive_type::list: continue;
        }
        // Fields of their own in the kernel, should a client send them as properties.
        if (p.name == "JMSXGroupID" || p.name == "JMSXGroupSeq") continue;
        out.push_back(std::move(p));
    }
    return std::nullopt;
}

void write_properties(const core::message& m, std::string& out) {
    std::int32_t n = 0;
    for (const auto& p : m.properties)
        if (p.name != message_id_property) ++n;
    if (n == 0) return;
    primitive_writer w(out);
    w.map_size(n);
    for (const auto& p : m.properties) {
        if (p.name == message_id_property) continue;
        w.key(p.name);
        std::visit(
            [&w](const auto& v) {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, std::monostate>) w.null();
                else if constexpr (std::is_same_v<T, bool>) w.boolean(v);
                else if constexpr (std::is_same_v<T, std::int8_t>) w.byte(v);
                else if constexpr (std::is_same_v<T, std::int16_t>) w.short_(v);
                else if constexpr (std::is_same_v<T, std::int32_t>) w.integer(v);
                else if constexpr (std::is_same_v<T, std::int64_t>) w.long_(v);
                else if constexpr (std::is_same_v<T, float>) w.float_(v);
                else if constexpr (std::is_same_v<T, double>) w.double_(v);
                else if constexpr (std::is_same_v<T, std::string>) w.string(v);
                else w.byte_array(bytes(v.data(), v.size()));
            },
            p.value);
    }
}

std::uint8_t wire_type(core::dest_kind k) {
    switch (k) {
    case core::dest_kind::queue: return type::activemq_queue;
    case core::dest_kind::topic: return type::activemq_topic;
    case core::dest_kind::temp_queue: return type::activemq_temp_queue;
    case core::dest_kind::temp_topic: return type::activemq_temp_topic;
    }
    return type::activemq_queue;
}

// A kernel advisory about a temporary destination (core/kernel/advisory.cpp writes its body as
// ActiveMQ's XStream JSON) as the DestinationInfo ActiveMQ's client reads from the message's
// data structure (its AdvisoryConsumer keeps the live temporary destinations with them).
bool advisory_info(const core::message& m, const temp_resolver& t, wire_scratch& s) {
    constexpr std::string_view temp_advisory = "ActiveMQ.Advisory.Temp";
    if (!m.dest.is_topic() || !std::string_view(m.dest.name).starts_with(temp_advisory)) return false;
    const auto j = nlohmann::json::parse(m.body, nullptr, false);
    if (j.is_discarded() || !j.contains("DestinationInfo")) return false;
    const auto& info = j["DestinationInfo"];
    if (!info.contains("destination") || !info["destination"].is_object()) return false;
    const auto& d = info["destination"];
    if (!d.contains("@class") || !d.contains("string") || !d["string"].is_string()) return false;
    const bool queue = d["@class"] == "ActiveMQTempQueue";
    s.id_text = d["string"].get<std::string>();
    core::destination kd{queue ? core::dest_kind::temp_queue : core::dest_kind::temp_topic, s.id_text};
    s.advisory_info = destination_info{};
    s.advisory_info.destination = to_wire(kd, t);
    if (s.advisory_info.destination->physical_name.data() == kd.name.data())
        s.advisory_info.destination->physical_name = s.id_text;   // kd is gone after this call
    s.advisory_info.operation_type =
        info.value("operationType", 0) == 1 ? destination_operation::remove : destination_operation::add;
    s.advisory.value = s.advisory_info;
    return true;
}

}  // namespace

std::optional<core::destination> to_kernel(const destination& d, const temp_resolver& t) {
    const auto name = without_options(d.physical_name);
    if (is_null(d.physical_name) || name.empty()) return std::nullopt;
    switch (d.type) {
    case type::activemq_queue: return core::destination{core::dest_kind::queue, std::string(name)};
    case type::activemq_topic: return core::destination{core::dest_kind::topic, std::string(name)};
    case type::activemq_temp_queue:
    case type::activemq_temp_topic: {
        const bool queue = d.type == type::activemq_temp_queue;
        if (auto own = t.own_temporary(name, queue)) return own;
        // Another connection's: named as the kernel names it (that is how it was shown here).
        return core::destination{queue ? core::dest_kind::temp_queue : core::dest_kind::temp_topic, std::string(name)};
    }
    default: return std::nullopt;
    }
}

destination to_wire(const core::destination& d, const temp_resolver& t) {
    destination out;
    out.type = wire_type(d.kind);
    out.physical_name = d.name;
    if (d.is_temporary())
        if (auto own = t.own_name(d); !own.empty()) out.physical_name = own;
    return out;
}

bool parse_message_id(std::string_view text, message_id& out) {
    // From the right: sequence, producer, session; the connection id (with colons) is the rest.
    std::int64_t n[3] = {0, 0, 0};
    std::string_view rest = text;
    for (auto& v : n) {
        const auto colon = rest.rfind(':');
        if (colon == std::string_view::npos || !parse_int(rest.substr(colon + 1), v)) return false;
        rest = rest.substr(0, colon);
    }
    if (rest.empty()) return false;
    out = message_id{};
    out.producer_id = producer_id{rest, n[1], n[2]};
    out.producer_sequence_id = n[0];
    return true;
}

bool inflate(bytes in, std::size_t max, std::string& out) {
    out.clear();
    z_stream z{};
    if (inflateInit(&z) != Z_OK) return false;
    z.next_in = const_cast<Bytef*>(in.data());
    z.avail_in = static_cast<uInt>(in.size());
    int rc = Z_OK;
    char buf[16384];
    while (rc == Z_OK) {
        z.next_out = reinterpret_cast<Bytef*>(buf);
        z.avail_out = sizeof buf;
        rc = ::inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) break;
        out.append(buf, sizeof buf - z.avail_out);
        if (out.size() > max) rc = Z_MEM_ERROR;
        else if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) rc = Z_DATA_ERROR;   // truncated
    }
    inflateEnd(&z);
    return rc == Z_STREAM_END;
}

std::optional<mapping_error> message_from_wire(const message& m, core::destination dest, wire_format& wf,
                                               const temp_resolver& t, std::size_t max_body, core::message& out) {
    out.dest = std::move(dest);
    if (m.reply_to) {
        auto r = to_kernel(*m.reply_to, t);
        if (!r) return mapping_error{"javax.jms.InvalidDestinationException", "JMSReplyTo has no name"};
        out.reply_to = std::move(r);
    }
    out.correlation_id = std::string(m.correlation_id);
    out.type = std::string(m.type);
    out.group_id = std::string(m.group_id);
    out.group_seq = m.group_sequence;
    out.priority = static_cast<std::uint8_t>(std::clamp<int>(m.priority, 0, 9));
    out.persistent = m.persistent;
    out.timestamp_ms = m.timestamp;
    out.expiration_ms = m.expiration > 0 ? m.expiration : 0;
    if (m.message_id) out.properties.push_back(core::property{std::string(message_id_property), to_string(*m.message_id)});
    if (auto e = read_properties(m.marshalled_properties, wf, out.properties)) return e;

    // The content, inflated when the client compressed it: a BytesMessage's as a 4-byte
    // length and the deflated bytes (ActiveMQBytesMessage), the others' deflated whole.
    bytes content = m.content;
    std::string inflated;
    if (m.compressed && !is_null(content)) {
        bytes z = content;
        std::size_t length = 0;
        const bool bytes_message = m.data_structure_type == type::activemq_bytes_message;
        if (bytes_message) {
            if (z.size() < 4) return mapping_error{"java.io.IOException", "compressed content too short"};
            length = std::size_t(z[0]) << 24 | std::size_t(z[1]) << 16 | std::size_t(z[2]) << 8 | z[3];
            z = z.subspan(4);
        }
        if (!inflate(z, max_body, inflated)) return mapping_error{"java.io.IOException", "malformed compressed content"};
        if (bytes_message) {
            // The length is the body's: ActiveMQBytesMessage deflates its whole write buffer
            // (zeros after the body included) and reads back only `length` bytes of it.
            if (inflated.size() < length) return mapping_error{"java.io.IOException", "compressed content shorter than its length"};
            inflated.resize(length);
        }
        content = bytes_of(inflated);
    }
    switch (m.data_structure_type) {
    case type::activemq_text_message: {
        out.kind = core::body_kind::text;
        if (is_null(content)) break;
        std::string_view text;
        if (auto e = read_text_body(content, text, wf); !e.empty())
            return mapping_error{"java.io.IOException", "malformed text: " + std::string(e)};
        out.body = std::string(text);
        break;
    }
    case type::activemq_bytes_message:
        out.kind = core::body_kind::bytes;
        out.body = std::string(text_of(content));
        break;
    case type::activemq_object_message:
        out.kind = core::body_kind::bytes;
        out.content_type = std::string(object_content_type);
        out.body = std::string(text_of(content));
        break;
    case type::activemq_map_message:
        out.kind = core::body_kind::map;
        out.body = std::string(text_of(content));
        break;
    case type::activemq_stream_message:
        out.kind = core::body_kind::stream;
        out.body = std::string(text_of(content));
        break;
    default:   // Message (and a BlobMessage, whose blob is elsewhere): no body
        out.kind = core::body_kind::none;
        break;
    }
    return std::nullopt;
}

void message_to_wire(const core::message& m, const temp_resolver& t, std::string_view broker_producer,
                     wire_scratch& s, message& out) {
    out = message{};
    s.properties.clear();
    s.content.clear();
    out.destination = to_wire(m.dest, t);
    if (m.reply_to) out.reply_to = to_wire(*m.reply_to, t);
    message_id id;
    const auto* given = m.find_property(message_id_property);
    const auto* text = given ? std::get_if<std::string>(given) : nullptr;
    if (!text || !parse_message_id(*text, id)) {
        id = message_id{};
        id.producer_id = producer_id{broker_producer, 0, 0};
        id.producer_sequence_id = static_cast<std::int64_t>(m.id);
        if (text) id.text_view = *text;
    }
    out.message_id = id;
    out.producer_id = id.producer_id;
    out.correlation_id = m.correlation_id.empty() ? std::string_view() : std::string_view(m.correlation_id);
    out.type = m.type.empty() ? std::string_view() : std::string_view(m.type);
    out.group_id = m.group_id.empty() ? std::string_view() : std::string_view(m.group_id);
    out.group_sequence = m.group_seq;
    out.priority = static_cast<std::int8_t>(m.priority);
    out.persistent = m.persistent;
    out.timestamp = m.timestamp_ms;
    out.expiration = m.expiration_ms;
    write_properties(m, s.properties);
    if (!s.properties.empty()) out.marshalled_properties = bytes_of(s.properties);

    if (advisory_info(m, t, s)) {
        out.data_structure_type = type::activemq_message;
        out.data_structure = &s.advisory;
        return;
    }
    switch (m.kind) {
    case core::body_kind::text:
        out.data_structure_type = type::activemq_text_message;
        write_text_body(m.body, s.content);
        out.content = bytes_of(s.content);
        break;
    case core::body_kind::bytes:
        out.data_structure_type =
            m.content_type == object_content_type ? type::activemq_object_message : type::activemq_bytes_message;
        out.content = m.body.empty() ? empty_bytes : bytes_of(m.body);
        break;
    case core::body_kind::map:
        out.data_structure_type = type::activemq_map_message;
        out.content = m.body.empty() ? empty_bytes : bytes_of(m.body);
        break;
    case core::body_kind::stream:
        out.data_structure_type = type::activemq_stream_message;
        out.content = m.body.empty() ? empty_bytes : bytes_of(m.body);
        break;
    case core::body_kind::none:
        out.data_structure_type = type::activemq_message;
        break;
    }
}

}  // namespace sb::openwire
