// adapters/amqp/mapping.cpp — proton::message <-> core::message (docs/mapping.md).
#include "adapters/amqp/mapping.hpp"

#include <algorithm>
#include <map>

#include <proton/binary.hpp>
#include <proton/codec/map.hpp>
#include <proton/message_id.hpp>
#include <proton/scalar.hpp>
#include <proton/symbol.hpp>
#include <proton/timestamp.hpp>
#include <proton/types.hpp>
#include <proton/uuid.hpp>
#include <proton/value.hpp>

#include "adapters/amqp/address.hpp"

namespace sb::amqp {

namespace {

// A message-id / correlation-id as text: strings as they are, other kinds (ulong, uuid,
// binary) in Proton's printed form.
std::string id_text(const proton::message_id& id) {
    switch (id.type()) {
    case proton::NULL_TYPE: return {};
    case proton::STRING: return proton::get<std::string>(id);
    case proton::BINARY: {
        const auto b = proton::get<proton::binary>(id);
        return std::string(b.begin(), b.end());
    }
    default: return proton::to_string(id);
    }
}

core::property_value from_scalar(const proton::scalar& s) {
    switch (s.type()) {
    case proton::NULL_TYPE: return std::monostate{};
    case proton::BOOLEAN: return proton::get<bool>(s);
    case proton::BYTE: return proton::get<std::int8_t>(s);
    case proton::UBYTE: return std::int16_t(proton::get<std::uint8_t>(s));
    case proton::SHORT: return proton::get<std::int16_t>(s);
    case proton::USHORT: return std::int32_t(proton::get<std::uint16_t>(s));
    case proton::INT: return proton::get<std::int32_t>(s);
    case proton::UINT: return std::int64_t(proton::get<std::uint32_t>(s));
    case proton::LONG: return proton::get<std::int64_t>(s);
    case proton::ULONG: return std::int64_t(proton::get<std::uint64_t>(s));
    case proton::FLOAT: return proton::get<float>(s);
    case proton::DOUBLE: return proton::get<double>(s);
    case proton::TIMESTAMP: return std::int64_t(proton::get<proton::timestamp>(s).milliseconds());
    case proton::STRING: return proton::get<std::string>(s);
    case proton::SYMBOL: return std::string(proton::get<proton::symbol>(s));
    case proton::BINARY: {
        const auto b = proton::get<proton::binary>(s);
        return std::vector<std::uint8_t>(b.begin(), b.end());
    }
    default: return proton::to_string(s);   // char, decimal, uuid: as text
    }
}

proton::scalar to_scalar(const core::property_value& v) {
    return std::visit(
        [](const auto& x) -> proton::scalar {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::monostate>) return proton::scalar();
            else if constexpr (std::is_same_v<T, std::vector<std::uint8_t>>) return proton::binary(x.begin(), x.end());
            else return proton::scalar(x);
        },
        v);
}

}  // namespace

std::variant<core::message, mapping_error> message_from_amqp(const proton::message& m,
                                                             const std::optional<core::destination>& link_target,
                                                             std::int64_t now_ms) {
    core::message out;
    if (link_target) {
        out.dest = *link_target;
    } else {
        const auto to = m.to();
        if (to.empty()) return mapping_error{"amqp:precondition-failed", "anonymous relay: the message has no 'to'"};
        auto parsed = parse_address(to, capability_hint::none, true);
        if (auto* e = std::get_if<address_error>(&parsed)) return mapping_error{"amqp:invalid-field", std::string(e->message)};
        out.dest = std::move(std::get<core::destination>(parsed));
    }
    out.persistent = m.durable();
    out.priority = std::min<std::uint8_t>(m.priority(), 9);
    if (const auto expiry = m.expiry_time().milliseconds(); expiry > 0) out.expiration_ms = expiry;
    else if (const auto ttl = m.ttl().milliseconds(); ttl > 0) out.expiration_ms = now_ms + std::int64_t(ttl);
    if (const auto reply = m.reply_to(); !reply.empty()) {
        auto parsed = parse_address(reply, capability_hint::none, true);
        if (auto* d = std::get_if<core::destination>(&parsed)) out.reply_to = std::move(*d);
        else out.properties.push_back({"reply-to", reply});   // a foreign address: kept as text
    }
    out.correlation_id = id_text(m.correlation_id());
    out.type = m.subject();
    out.content_type = m.content_type();
    out.group_id = m.group_id();
    out.group_seq = m.group_sequence();
    if (auto id = id_text(m.id()); !id.empty()) out.properties.push_back({std::string(message_id_property), std::move(id)});
    if (!m.properties().empty()) {
        std::map<std::string, proton::scalar> props;
        proton::get(m.properties().value(), props);
        for (auto& [name, value] : props) {
            if (name == message_id_property) continue;
            out.properties.push_back({name, from_scalar(value)});
        }
    }
    const auto& body = m.body();
    switch (body.type()) {
    case proton::NULL_TYPE: out.kind = core::body_kind::none; break;
    case proton::BINARY: {
        // A data section (inferred) or an amqp-value binary: bytes either way.
        const auto b = proton::get<proton::binary>(body);
        out.kind = core::body_kind::bytes;
        out.body.assign(b.begin(), b.end());
        break;
    }
    case proton::STRING:
        out.kind = core::body_kind::text;
        out.body = proton::get<std::string>(body);
        break;
    case proton::SYMBOL:
        out.kind = core::body_kind::text;
        out.body = std::string(proton::get<proton::symbol>(body));
        break;
    default:
        return mapping_error{"amqp:not-implemented",
                             "body of type " + proton::type_name(body.type()) + " is not supported (data or a string)"};
    }
    return out;
}

void message_to_amqp(const core::message& m, std::uint32_t redeliveries, std::string_view broker_name,
                     std::int64_t now_ms, proton::message& out) {
    out.clear();
    std::string id;
    for (const auto& p : m.properties) {
        if (p.name == message_id_property) {
            if (const auto* s = std::get_if<std::string>(&p.value)) id = *s;
        } else {
            out.properties().put(p.name, to_scalar(p.value));
        }
    }
    if (id.empty()) {
        id = "ID:";
        id += broker_name;
        id += '-';
        id += std::to_string(m.id);
    }
    out.id(id);
    out.to(format_address(m.dest));
    out.durable(m.persistent);
    if (m.priority != core::default_priority) out.priority(m.priority);
    if (m.expiration_ms) {
        out.expiry_time(proton::timestamp(m.expiration_ms));
        out.ttl(proton::duration(std::max<std::int64_t>(m.expiration_ms - now_ms, 1)));
    }
    if (redeliveries) out.delivery_count(redeliveries);
    if (m.reply_to) out.reply_to(format_address(*m.reply_to));
    if (!m.correlation_id.empty()) out.correlation_id(m.correlation_id);
    if (!m.type.empty()) out.subject(m.type);
    if (!m.content_type.empty()) out.content_type(m.content_type);
    if (m.timestamp_ms) out.creation_time(proton::timestamp(m.timestamp_ms));
    if (!m.group_id.empty()) {
        out.group_id(m.group_id);
        out.group_sequence(m.group_seq);
    }
    switch (m.kind) {
    case core::body_kind::none: break;
    case core::body_kind::text: out.body(m.body); break;
    default:
        out.body(proton::binary(m.body.begin(), m.body.end()));
        out.inferred(true);   // a data section, not an amqp-value
        break;
    }
}

}  // namespace sb::amqp
