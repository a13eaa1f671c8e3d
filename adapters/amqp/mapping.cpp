// adapters/amqp/mapping.cpp — proton::message <-> core::message (docs/mapping.md).
#include "adapters/amqp/mapping.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
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

namespace {

// AMQP 1.0 part 1 encodings, written by hand for the delivery path. Bytes go through an inline
// cursor into `out`, grown ahead in steps (not std::string::push_back per byte, an out-of-line
// call that also writes the terminator): a delivery is ~100 single-byte writes. The string's
// size is right again when the encoder goes (or at size()/truncate()).
class encoder {
public:
    explicit encoder(std::string& out) : o_(out), n_(out.size()) { o_.resize(n_ + 256); }
    ~encoder() { o_.resize(n_); }
    encoder(const encoder&) = delete;
    encoder& operator=(const encoder&) = delete;

    // Room for `k` more bytes; the returned pointer is valid until the next call.
    char* room(std::size_t k) {
        if (o_.size() - n_ < k) o_.resize(std::max(o_.size() * 2, n_ + k + 256));
        char* p = o_.data() + n_;
        n_ += k;
        return p;
    }
    void byte(std::uint8_t b) { *room(1) = static_cast<char>(b); }
    void put_be(char* p, std::uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; --i, v >>= 8) p[i] = static_cast<char>(v & 0xFF);
    }
    void be(std::uint64_t v, int bytes) { put_be(room(static_cast<std::size_t>(bytes)), v, bytes); }
    void raw(std::string_view v) {
        if (!v.empty()) std::memcpy(room(v.size()), v.data(), v.size());
    }
    void null() { byte(0x40); }
    void boolean(bool b) { byte(b ? 0x41 : 0x42); }
    void uint(std::uint32_t v) {
        if (v == 0) return byte(0x43);
        if (v < 256) {
            char* p = room(2);
            p[0] = 0x52;
            p[1] = static_cast<char>(v);
            return;
        }
        char* p = room(5);
        p[0] = 0x70;
        put_be(p + 1, v, 4);
    }
    void timestamp(std::int64_t ms) {
        char* p = room(9);
        p[0] = static_cast<char>(0x83);
        put_be(p + 1, static_cast<std::uint64_t>(ms), 8);
    }
    // The constructor and size of a str8/str32 (0xa1/0xb1), sym (0xa3/0xb3) or vbin (0xa0/0xb0)
    // of `n` bytes: the small code, +0x10 for 32-bit sizes.
    void variable_header(std::uint8_t small_code, std::size_t n) {
        if (n <= 255) {
            char* p = room(2);
            p[0] = static_cast<char>(small_code);
            p[1] = static_cast<char>(n);
        } else {
            char* p = room(5);
            p[0] = static_cast<char>(small_code + 0x10);
            put_be(p + 1, n, 4);
        }
    }
    void variable(std::uint8_t small_code, std::string_view v) {
        variable_header(small_code, v.size());
        raw(v);
    }
    void string(std::string_view v) { variable(0xa1, v); }
    // format_address(d) as a string, without building it.
    void address(const core::destination& d) {
        std::string_view prefix;
        switch (d.kind) {
        case core::dest_kind::queue: break;
        case core::dest_kind::topic: prefix = "topic://"; break;
        case core::dest_kind::temp_queue: prefix = "temp-queue://"; break;
        case core::dest_kind::temp_topic: prefix = "temp-topic://"; break;
        }
        variable_header(0xa1, prefix.size() + d.name.size());
        raw(prefix);
        raw(d.name);
    }
    void symbol(std::string_view v) { variable(0xa3, v); }
    void binary(std::string_view v) { variable(0xa0, v); }
    void section(std::uint8_t code) {
        char* p = room(3);
        p[0] = 0x00;
        p[1] = 0x53;
        p[2] = static_cast<char>(code);
    }

    // A list32/map32 whose size and count are filled in by end(); fields appended between.
    std::size_t begin(std::uint8_t code32) {
        char* p = room(9);
        p[0] = static_cast<char>(code32);
        return n_ - 8;
    }
    void end(std::size_t at, std::uint32_t count) {
        const auto size = static_cast<std::uint32_t>(n_ - at - 4);
        put_be(o_.data() + at, size, 4);
        put_be(o_.data() + at + 4, count, 4);
    }
    std::size_t size() const noexcept { return n_; }
    void truncate(std::size_t n) { n_ = n; }

    void value(const core::property_value& v) {
        std::visit(
            [this](const auto& x) {
                using T = std::decay_t<decltype(x)>;
                if constexpr (std::is_same_v<T, std::monostate>) null();
                else if constexpr (std::is_same_v<T, bool>) boolean(x);
                else if constexpr (std::is_same_v<T, std::int8_t>) byte(0x51), be(static_cast<std::uint8_t>(x), 1);
                else if constexpr (std::is_same_v<T, std::int16_t>) byte(0x61), be(static_cast<std::uint16_t>(x), 2);
                else if constexpr (std::is_same_v<T, std::int32_t>) byte(0x71), be(static_cast<std::uint32_t>(x), 4);
                else if constexpr (std::is_same_v<T, std::int64_t>) byte(0x81), be(static_cast<std::uint64_t>(x), 8);
                else if constexpr (std::is_same_v<T, float>) {
                    std::uint32_t bits;
                    std::memcpy(&bits, &x, 4);
                    byte(0x72), be(bits, 4);
                } else if constexpr (std::is_same_v<T, double>) {
                    std::uint64_t bits;
                    std::memcpy(&bits, &x, 8);
                    byte(0x82), be(bits, 8);
                } else if constexpr (std::is_same_v<T, std::string>) string(x);
                else binary(std::string_view(reinterpret_cast<const char*>(x.data()), x.size()));
            },
            v);
    }

private:
    std::string& o_;
    std::size_t n_;   // bytes written; o_.size() - n_ is room
};

// The fields of a list with trailing nulls left out (as Proton writes them): count() is the
// number up to the last one given, and finish() drops the nulls after it.
class field_list {
public:
    field_list(encoder& e, std::uint8_t section_code) : e_(e) {
        e_.section(section_code);
        at_ = e_.begin(0xd0);
        kept_ = e_.size();
    }
    // Field i (in order) is null: a placeholder unless a later field is given.
    void skip() { e_.null(), ++n_; }
    // Field i was just written by the caller after a given() call.
    void given() {
        ++n_;
        kept_ = e_.size();
        count_ = n_;
    }
    void finish() {
        e_.truncate(kept_);
        e_.end(at_, count_);
    }

private:
    encoder& e_;
    std::size_t at_ = 0, kept_ = 0;
    std::uint32_t n_ = 0, count_ = 0;
};

}  // namespace

void encode_amqp(const core::message& m, std::uint32_t redeliveries, std::string_view broker_name,
                 std::int64_t now_ms, std::string& out) {
    encoder e(out);
    // header: durable, priority, ttl, first-acquirer, delivery-count
    const bool prio = m.priority != core::default_priority;
    if (m.persistent || prio || m.expiration_ms || redeliveries) {
        field_list h(e, 0x70);
        if (m.persistent) e.boolean(true), h.given(); else h.skip();
        if (prio) e.byte(0x50), e.byte(m.priority), h.given(); else h.skip();
        if (m.expiration_ms)
            e.uint(static_cast<std::uint32_t>(std::clamp<std::int64_t>(m.expiration_ms - now_ms, 1, 0xFFFFFFFF))), h.given();
        else h.skip();
        h.skip();   // first-acquirer
        if (redeliveries) e.uint(redeliveries), h.given(); else h.skip();
        h.finish();
    }
    // properties: message-id, user-id, to, subject, reply-to, correlation-id, content-type,
    // content-encoding, absolute-expiry-time, creation-time, group-id, group-sequence
    {
        field_list p(e, 0x73);
        const std::string* client_id = nullptr;
        for (const auto& prop : m.properties)
            if (prop.name == message_id_property)
                if (const auto* s = std::get_if<std::string>(&prop.value); s && !s->empty()) client_id = s;
        if (client_id) {
            e.string(*client_id);
        } else {
            char digits[24];
            const auto end = std::to_chars(digits, digits + sizeof digits, m.id).ptr;
            const std::size_t n = 3 + broker_name.size() + 1 + static_cast<std::size_t>(end - digits);
            e.variable_header(0xa1, n);
            e.raw("ID:");
            e.raw(broker_name);
            e.byte('-');
            e.raw(std::string_view(digits, static_cast<std::size_t>(end - digits)));
        }
        p.given();
        p.skip();   // user-id
        e.address(m.dest), p.given();
        if (!m.type.empty()) e.string(m.type), p.given(); else p.skip();
        if (m.reply_to) e.string(format_address(*m.reply_to)), p.given(); else p.skip();
        if (!m.correlation_id.empty()) e.string(m.correlation_id), p.given(); else p.skip();
        if (!m.content_type.empty()) e.symbol(m.content_type), p.given(); else p.skip();
        p.skip();   // content-encoding
        if (m.expiration_ms) e.timestamp(m.expiration_ms), p.given(); else p.skip();
        if (m.timestamp_ms) e.timestamp(m.timestamp_ms), p.given(); else p.skip();
        if (!m.group_id.empty()) {
            e.string(m.group_id), p.given();
            e.uint(static_cast<std::uint32_t>(m.group_seq)), p.given();
        }
        p.finish();
    }
    // application-properties: the last of a repeated name wins (as a map put would).
    std::uint32_t pairs = 0;
    std::size_t at = 0;
    const auto& props = m.properties;
    for (std::size_t i = 0; i < props.size(); ++i) {
        if (props[i].name == message_id_property) continue;
        bool repeated = false;
        for (std::size_t j = i + 1; j < props.size() && !repeated; ++j) repeated = props[j].name == props[i].name;
        if (repeated) continue;
        if (pairs++ == 0) {
            e.section(0x74);
            at = e.begin(0xd1);
        }
        e.string(props[i].name);
        e.value(props[i].value);
    }
    if (pairs) e.end(at, 2 * pairs);
    switch (m.kind) {
    case core::body_kind::none: break;
    case core::body_kind::text:
        e.section(0x77);
        e.string(m.body);
        break;
    default:
        e.section(0x75);
        e.binary(m.body);
        break;
    }
}

namespace {

// A reader over AMQP 1.0 encoded values; any surprise (an unexpected type, the end of the bytes)
// makes ok false, and the decoder gives up (Proton decodes the message instead).
class reader {
public:
    explicit reader(std::string_view b) : b_(b) {}

    bool ok() const noexcept { return ok_; }
    bool done() const noexcept { return at_ >= b_.size(); }
    void fail() noexcept { ok_ = false; }

    std::uint8_t peek() {
        if (at_ >= b_.size()) return fail(), 0;
        return static_cast<std::uint8_t>(b_[at_]);
    }
    std::uint8_t byte() {
        const std::uint8_t c = peek();
        if (ok_) ++at_;
        return c;
    }
    std::uint64_t be(int n) {
        if (b_.size() - at_ < static_cast<std::size_t>(n) || at_ > b_.size()) return fail(), 0;
        std::uint64_t v = 0;
        for (int i = 0; i < n; ++i) v = v << 8 | static_cast<std::uint8_t>(b_[at_++]);
        return v;
    }
    std::string_view take(std::size_t n) {
        if (b_.size() - at_ < n) return fail(), std::string_view();
        const auto v = b_.substr(at_, n);
        at_ += n;
        return v;
    }
    // The payload of str/sym/vbin given its constructor (small code `c8`, c8 + 0x10 for 32-bit sizes).
    std::string_view variable(std::uint8_t code, std::uint8_t c8) {
        if (code == c8) return take(be(1));
        if (code == c8 + 0x10) return take(be(4));
        return fail(), std::string_view();
    }
    // A section's descriptor: 0x00 0x53 <code>.
    std::uint8_t section() {
        if (byte() != 0x00 || byte() != 0x53) return fail(), 0;
        return byte();
    }
    // A list's (or map's) header: how many elements; `end` is where its bytes end.
    std::uint32_t compound(std::uint8_t code, bool map, std::size_t& end) {
        std::uint64_t size = 0, count = 0;
        if (code == 0x45 && !map) {
            end = at_;
            return 0;
        }
        if (code == (map ? 0xc1 : 0xc0)) size = be(1), count = be(1), size = size ? size - 1 : 0;
        else if (code == (map ? 0xd1 : 0xd0)) size = be(4), count = be(4), size = size >= 4 ? size - 4 : 0;
        else return fail(), 0;
        end = at_ + size;
        if (end > b_.size() || (map && count % 2)) fail();
        return ok_ ? static_cast<std::uint32_t>(count) : 0;
    }
    std::size_t at() const noexcept { return at_; }

private:
    std::string_view b_;
    std::size_t at_ = 0;
    bool ok_ = true;
};

// A list field that may be null: its constructor, or 0 for null (or a list cut short).
std::uint8_t field(reader& r, std::uint32_t& left) {
    if (left == 0) return 0;
    --left;
    const std::uint8_t c = r.byte();
    return c == 0x40 ? 0 : c;
}

std::optional<std::string_view> string_field(reader& r, std::uint32_t& left, std::uint8_t c8 = 0xa1) {
    const std::uint8_t c = field(r, left);
    if (c == 0) return std::nullopt;
    return r.variable(c, c8);
}

std::optional<std::uint64_t> uint_field(reader& r, std::uint8_t c) {
    if (c == 0x43) return 0;
    if (c == 0x52) return r.be(1);
    if (c == 0x70) return r.be(4);
    return r.fail(), std::nullopt;
}

// An application property value, mapped as from_scalar maps Proton's scalars.
core::property_value scalar(reader& r) {
    const std::uint8_t c = r.byte();
    switch (c) {
    case 0x40: return std::monostate{};
    case 0x41: return true;
    case 0x42: return false;
    case 0x56: return r.be(1) != 0;
    case 0x50: return std::int16_t(r.be(1));
    case 0x51: return std::int8_t(static_cast<std::uint8_t>(r.be(1)));
    case 0x60: return std::int32_t(r.be(2));
    case 0x61: return std::int16_t(static_cast<std::uint16_t>(r.be(2)));
    case 0x43: case 0x52: case 0x70: return std::int64_t(*uint_field(r, c));
    case 0x54: return std::int32_t(std::int8_t(static_cast<std::uint8_t>(r.be(1))));
    case 0x71: return std::int32_t(static_cast<std::uint32_t>(r.be(4)));
    case 0x44: return std::int64_t(0);
    case 0x53: return std::int64_t(r.be(1));
    case 0x80: return std::int64_t(r.be(8));
    case 0x55: return std::int64_t(std::int8_t(static_cast<std::uint8_t>(r.be(1))));
    case 0x81: case 0x83: return std::int64_t(r.be(8));
    case 0x72: {
        const auto bits = static_cast<std::uint32_t>(r.be(4));
        float f;
        std::memcpy(&f, &bits, 4);
        return f;
    }
    case 0x82: {
        const std::uint64_t bits = r.be(8);
        double d;
        std::memcpy(&d, &bits, 8);
        return d;
    }
    case 0xa1: case 0xb1: return std::string(r.variable(c, 0xa1));
    case 0xa3: case 0xb3: return std::string(r.variable(c, 0xa3));
    case 0xa0: case 0xb0: {
        const auto v = r.variable(c, 0xa0);
        return std::vector<std::uint8_t>(v.begin(), v.end());
    }
    default: r.fail(); return std::monostate{};
    }
}

}  // namespace

std::optional<std::variant<core::message, mapping_error>> decode_amqp(std::string_view bytes,
                                                                     const std::optional<core::destination>& link_target,
                                                                     std::int64_t now_ms) {
    reader r(bytes);
    bool durable = false, have_body = false;
    std::uint64_t priority = 4, ttl = 0, expiry = 0, group_seq = 0;
    std::string_view id, to, subject, reply, correlation, content_type, group_id;
    std::vector<std::pair<std::string_view, core::property_value>> props;
    core::body_kind kind = core::body_kind::none;
    std::string_view body;
    std::uint8_t last = 0;
    while (r.ok() && !r.done()) {
        const std::uint8_t code = r.section();
        // Sections in the order the spec gives, each at most once.
        if (!r.ok() || code <= last || have_body) return std::nullopt;
        last = code;
        switch (code) {
        case 0x70: {   // header
            std::size_t end = 0;
            std::uint32_t n = r.compound(r.byte(), false, end);
            if (std::uint8_t c = field(r, n)) durable = c == 0x41 ? true : c == 0x42 ? false : (r.fail(), false);
            if (std::uint8_t c = field(r, n)) priority = c == 0x50 ? r.be(1) : (r.fail(), 0);
            if (std::uint8_t c = field(r, n)) ttl = uint_field(r, c).value_or(0);
            if (std::uint8_t c = field(r, n); c && c != 0x41 && c != 0x42) r.fail();   // first-acquirer
            if (std::uint8_t c = field(r, n)) (void)uint_field(r, c);                    // delivery-count
            if (n != 0 || r.at() != end) return std::nullopt;
            break;
        }
        case 0x73: {   // properties
            std::size_t end = 0;
            std::uint32_t n = r.compound(r.byte(), false, end);
            id = string_field(r, n).value_or("");
            if (std::uint8_t c = field(r, n)) (void)r.variable(c, 0xa0);   // user-id: not carried
            to = string_field(r, n).value_or("");
            subject = string_field(r, n).value_or("");
            reply = string_field(r, n).value_or("");
            correlation = string_field(r, n).value_or("");
            content_type = string_field(r, n, 0xa3).value_or("");
            (void)string_field(r, n, 0xa3);   // content-encoding: not carried
            if (std::uint8_t c = field(r, n)) expiry = c == 0x83 ? r.be(8) : (r.fail(), 0);
            if (std::uint8_t c = field(r, n); c) c == 0x83 ? (void)r.be(8) : r.fail();   // creation-time: the broker's own
            group_id = string_field(r, n).value_or("");
            if (std::uint8_t c = field(r, n)) group_seq = uint_field(r, c).value_or(0);
            (void)string_field(r, n);   // reply-to-group-id
            if (n != 0 || r.at() != end) return std::nullopt;
            break;
        }
        case 0x74: {   // application-properties
            std::size_t end = 0;
            const std::uint32_t n = r.compound(r.byte(), true, end);
            for (std::uint32_t i = 0; i < n / 2 && r.ok(); ++i) {
                const auto name = r.variable(r.byte(), 0xa1);
                props.emplace_back(name, scalar(r));
            }
            if (r.at() != end) return std::nullopt;
            break;
        }
        case 0x75: {   // one data section
            body = r.variable(r.byte(), 0xa0);
            kind = core::body_kind::bytes;
            have_body = true;
            break;
        }
        case 0x77: {   // amqp-value
            const std::uint8_t c = r.byte();
            if (c == 0x40) kind = core::body_kind::none;
            else if (c == 0xa1 || c == 0xb1) body = r.variable(c, 0xa1), kind = core::body_kind::text;
            else if (c == 0xa3 || c == 0xb3) body = r.variable(c, 0xa3), kind = core::body_kind::text;
            else if (c == 0xa0 || c == 0xb0) body = r.variable(c, 0xa0), kind = core::body_kind::bytes;
            else return std::nullopt;
            have_body = true;
            break;
        }
        default: return std::nullopt;   // annotations, amqp-sequence, footer
        }
    }
    if (!r.ok()) return std::nullopt;

    // From here as message_from_amqp does it.
    core::message out;
    if (link_target) {
        out.dest = *link_target;
    } else {
        if (to.empty()) return mapping_error{"amqp:precondition-failed", "anonymous relay: the message has no 'to'"};
        auto parsed = parse_address(to, capability_hint::none, true);
        if (auto* e = std::get_if<address_error>(&parsed)) return mapping_error{"amqp:invalid-field", std::string(e->message)};
        out.dest = std::move(std::get<core::destination>(parsed));
    }
    out.persistent = durable;
    out.priority = static_cast<std::uint8_t>(std::min<std::uint64_t>(priority, 9));
    if (expiry > 0) out.expiration_ms = static_cast<std::int64_t>(expiry);
    else if (ttl > 0) out.expiration_ms = now_ms + static_cast<std::int64_t>(ttl);
    if (!reply.empty()) {
        auto parsed = parse_address(reply, capability_hint::none, true);
        if (auto* d = std::get_if<core::destination>(&parsed)) out.reply_to = std::move(*d);
        else out.properties.push_back({"reply-to", std::string(reply)});
    }
    // (Each assigned only when given: most messages carry none of them.)
    if (!correlation.empty()) out.correlation_id = correlation;
    if (!subject.empty()) out.type = subject;
    if (!content_type.empty()) out.content_type = content_type;
    if (!group_id.empty()) out.group_id = group_id;
    out.group_seq = static_cast<std::int32_t>(group_seq);
    if (!id.empty()) out.properties.push_back({std::string(message_id_property), std::string(id)});
    // In name order, the last of a repeated name kept: as a std::map filled from the map would.
    std::stable_sort(props.begin(), props.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t i = 0; i < props.size(); ++i) {
        if (i + 1 < props.size() && props[i + 1].first == props[i].first) continue;
        if (props[i].first == message_id_property) continue;
        out.properties.push_back({std::string(props[i].first), std::move(props[i].second)});
    }
    out.kind = kind;
    out.body = body;
    return out;
}

}  // namespace sb::amqp
