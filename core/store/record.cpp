// core/store/record.cpp — journal record framing and the binary message form.
#include "core/store/record.hpp"

#include <cstring>

#include "core/store/crc32c.hpp"

namespace sb::core {

namespace {

// ---- writing -------------------------------------------------------------------------------

template <typename T>
void put(std::string& out, T v) {
    static_assert(std::is_integral_v<T>);
    using U = std::make_unsigned_t<T>;
    auto u = static_cast<U>(v);
    for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(char((u >> (8 * i)) & 0xFF));
}

void put_str(std::string& out, std::string_view s) {
    put<std::uint32_t>(out, std::uint32_t(s.size()));
    out.append(s);
}

void put_f64(std::string& out, double d) {
    std::uint64_t u;
    std::memcpy(&u, &d, sizeof u);
    put(out, u);
}

// ---- reading (bounds-checked: every read can fail) -------------------------------------------

struct reader {
    std::span<const std::uint8_t> in;
    std::size_t pos = 0;
    bool ok = true;

    template <typename T>
    T get() noexcept {
        using U = std::make_unsigned_t<T>;
        if (!ok || in.size() - pos < sizeof(T)) {
            ok = false;
            return T{};
        }
        U u = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i) u |= U(U(in[pos + i]) << (8 * i));
        pos += sizeof(T);
        return static_cast<T>(u);
    }

    std::string_view str() noexcept {
        const auto n = get<std::uint32_t>();
        if (!ok || in.size() - pos < n) {
            ok = false;
            return {};
        }
        std::string_view s(reinterpret_cast<const char*>(in.data() + pos), n);
        pos += n;
        return s;
    }

    double f64() noexcept {
        const auto u = get<std::uint64_t>();
        double d;
        std::memcpy(&d, &u, sizeof d);
        return d;
    }

    bool done() const noexcept { return ok && pos == in.size(); }
};

enum class value_tag : std::uint8_t { null, boolean, i8, i16, i32, i64, f32, f64, string, bytes };

void put_value(std::string& out, const property_value& v) {
    struct visitor {
        std::string& o;
        void operator()(std::monostate) const { put(o, std::uint8_t(value_tag::null)); }
        void operator()(bool b) const { put(o, std::uint8_t(value_tag::boolean)); put(o, std::uint8_t(b)); }
        void operator()(std::int8_t i) const { put(o, std::uint8_t(value_tag::i8)); put(o, i); }
        void operator()(std::int16_t i) const { put(o, std::uint8_t(value_tag::i16)); put(o, i); }
        void operator()(std::int32_t i) const { put(o, std::uint8_t(value_tag::i32)); put(o, i); }
        void operator()(std::int64_t i) const { put(o, std::uint8_t(value_tag::i64)); put(o, i); }
        void operator()(float f) const { put(o, std::uint8_t(value_tag::f32)); put_f64(o, f); }
        void operator()(double d) const { put(o, std::uint8_t(value_tag::f64)); put_f64(o, d); }
        void operator()(const std::string& s) const { put(o, std::uint8_t(value_tag::string)); put_str(o, s); }
        void operator()(const std::vector<std::uint8_t>& b) const {
            put(o, std::uint8_t(value_tag::bytes));
            put_str(o, std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
        }
    };
    std::visit(visitor{out}, v);
}

bool get_value(reader& r, property_value& v) {
    switch (value_tag(r.get<std::uint8_t>())) {
    case value_tag::null: v = std::monostate{}; break;
    case value_tag::boolean: v = r.get<std::uint8_t>() != 0; break;
    case value_tag::i8: v = r.get<std::int8_t>(); break;
    case value_tag::i16: v = r.get<std::int16_t>(); break;
    case value_tag::i32: v = r.get<std::int32_t>(); break;
    case value_tag::i64: v = r.get<std::int64_t>(); break;
    case value_tag::f32: v = float(r.f64()); break;
    case value_tag::f64: v = r.f64(); break;
    case value_tag::string: v = std::string(r.str()); break;
    case value_tag::bytes: {
        const auto s = r.str();
        v = std::vector<std::uint8_t>(s.begin(), s.end());
        break;
    }
    default: return false;
    }
    return r.ok;
}

enum flag : std::uint8_t { persistent = 1, retain = 2, has_reply_to = 4 };

}  // namespace

void append_record(std::string& out, record_type type, std::string_view payload) {
    std::string head;
    put<std::uint32_t>(head, std::uint32_t(payload.size()));
    head.push_back(char(type));
    auto crc = crc32c(std::span(reinterpret_cast<const std::uint8_t*>(head.data()), head.size()));
    crc = crc32c(std::span(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()), crc);
    put<std::uint32_t>(out, record_magic);
    put<std::uint32_t>(out, std::uint32_t(payload.size()));
    put<std::uint32_t>(out, crc);
    out.push_back(char(type));
    out.append(payload);
}

void encode_add(std::string& out, std::string_view queue, const message& m) {
    put_str(out, queue);
    put(out, m.id);
    put(out, std::uint8_t((m.persistent ? persistent : 0) | (m.retain ? retain : 0) |
                          (m.reply_to ? has_reply_to : 0)));
    put(out, std::uint8_t(m.dest.kind));
    put_str(out, m.dest.name);
    if (m.reply_to) {
        put(out, std::uint8_t(m.reply_to->kind));
        put_str(out, m.reply_to->name);
    }
    put_str(out, m.correlation_id);
    put_str(out, m.type);
    put_str(out, m.content_type);
    put_str(out, m.group_id);
    put(out, m.group_seq);
    put(out, m.priority);
    put(out, m.timestamp_ms);
    put(out, m.expiration_ms);
    put(out, m.deliver_at_ms);
    put<std::uint32_t>(out, std::uint32_t(m.broker_path.size()));
    for (const auto& b : m.broker_path) put_str(out, b);
    put<std::uint32_t>(out, std::uint32_t(m.properties.size()));
    for (const auto& p : m.properties) {
        put_str(out, p.name);
        put_value(out, p.value);
    }
    put(out, std::uint8_t(m.kind));
    put_str(out, m.body);
    put(out, m.origin_connection);
    put(out, m.origin_qos);
}

void encode_subscription(std::string& out, const subscription_record& s) {
    put_str(out, s.name);
    put(out, std::uint8_t(s.filter.kind));
    put_str(out, s.filter.name);
    put_str(out, s.data);
    if (!s.selector.empty()) put_str(out, s.selector);   // absent in records written before selectors
}

std::optional<subscription_record> decode_subscription(std::span<const std::uint8_t> payload) {
    reader r{payload};
    subscription_record s;
    s.name = std::string(r.str());
    const auto kind = r.get<std::uint8_t>();
    s.filter = destination{dest_kind(kind > 1 ? 1 : kind), std::string(r.str())};
    s.data = std::string(r.str());
    if (!r.done()) s.selector = std::string(r.str());
    if (!r.done() || kind > std::uint8_t(dest_kind::topic)) return std::nullopt;
    return s;
}

void encode_remove(std::string& out, std::string_view queue, message_id id) {
    put_str(out, queue);
    put(out, id);
}

void encode_tx_begin(std::string& out, std::uint64_t id, std::uint32_t records) {
    put(out, id);
    put(out, records);
}

void encode_tx_commit(std::string& out, std::uint64_t id) { put(out, id); }

std::optional<tx_begin_record> decode_tx_begin(std::span<const std::uint8_t> payload) noexcept {
    reader r{payload};
    tx_begin_record b;
    b.id = r.get<std::uint64_t>();
    b.records = r.get<std::uint32_t>();
    if (!r.done()) return std::nullopt;
    return b;
}

std::optional<std::uint64_t> decode_tx_commit(std::span<const std::uint8_t> payload) noexcept {
    reader r{payload};
    const auto id = r.get<std::uint64_t>();
    if (!r.done()) return std::nullopt;
    return id;
}

std::optional<add_record> decode_add(std::span<const std::uint8_t> payload) {
    reader r{payload};
    add_record a;
    a.queue = std::string(r.str());
    auto& m = a.msg;
    m.id = r.get<std::uint64_t>();
    const auto flags = r.get<std::uint8_t>();
    m.persistent = flags & persistent;
    m.retain = flags & retain;
    const auto kind = r.get<std::uint8_t>();
    if (kind > std::uint8_t(dest_kind::topic)) return std::nullopt;
    m.dest = destination{dest_kind(kind), std::string(r.str())};
    if (flags & has_reply_to) {
        // A persistent message may name a temporary destination to reply to (JMSReplyTo).
        const auto rk = r.get<std::uint8_t>();
        if (rk > std::uint8_t(dest_kind::temp_topic)) return std::nullopt;
        m.reply_to = destination{dest_kind(rk), std::string(r.str())};
    }
    m.correlation_id = std::string(r.str());
    m.type = std::string(r.str());
    m.content_type = std::string(r.str());
    m.group_id = std::string(r.str());
    m.group_seq = r.get<std::int32_t>();
    m.priority = r.get<std::uint8_t>();
    m.timestamp_ms = r.get<std::int64_t>();
    m.expiration_ms = r.get<std::int64_t>();
    m.deliver_at_ms = r.get<std::int64_t>();
    const auto hops = r.get<std::uint32_t>();
    // Each entry takes at least 4 bytes: a count past the input is corrupt, not a huge reserve.
    if (!r.ok || hops > (payload.size() - r.pos) / 4) return std::nullopt;
    for (std::uint32_t i = 0; i < hops && r.ok; ++i) m.broker_path.emplace_back(r.str());
    const auto props = r.get<std::uint32_t>();
    if (!r.ok || props > (payload.size() - r.pos) / 5) return std::nullopt;
    m.properties.reserve(props);
    for (std::uint32_t i = 0; i < props && r.ok; ++i) {
        property p;
        p.name = std::string(r.str());
        if (!get_value(r, p.value)) return std::nullopt;
        m.properties.push_back(std::move(p));
    }
    const auto body = r.get<std::uint8_t>();
    if (body > std::uint8_t(body_kind::stream)) return std::nullopt;
    m.kind = body_kind(body);
    m.body = std::string(r.str());
    m.origin_connection = r.get<std::uint64_t>();
    m.origin_qos = r.get<std::uint8_t>();
    if (!r.done() || m.priority > 9) return std::nullopt;
    return a;
}

std::optional<add_summary> peek_add(std::span<const std::uint8_t> payload) noexcept {
    reader r{payload};
    add_summary a;
    a.queue = r.str();
    a.id = r.get<std::uint64_t>();
    const auto flags = r.get<std::uint8_t>();
    r.get<std::uint8_t>();   // destination kind
    r.str();                 // destination name
    if (flags & has_reply_to) {
        r.get<std::uint8_t>();
        r.str();
    }
    for (int i = 0; i < 4; ++i) r.str();   // correlation id, type, content type, group id
    r.get<std::int32_t>();                 // group sequence
    a.priority = r.get<std::uint8_t>();
    if (!r.ok || a.priority > 9) return std::nullopt;
    return a;
}

std::optional<remove_record> decode_remove(std::span<const std::uint8_t> payload) noexcept {
    reader r{payload};
    remove_record rr;
    const auto q = r.str();
    rr.id = r.get<std::uint64_t>();
    if (!r.done()) return std::nullopt;
    try {
        rr.queue = std::string(q);
    } catch (...) {
        return std::nullopt;
    }
    return rr;
}

std::variant<framed, frame_problem> read_record(std::span<const std::uint8_t> in) noexcept {
    reader r{in};
    const auto m = r.get<std::uint32_t>();
    const auto len = r.get<std::uint32_t>();
    const auto crc = r.get<std::uint32_t>();
    const auto type = r.get<std::uint8_t>();
    if (!r.ok) {
        // A partial header: torn if what is there could be the start of a record.
        std::uint8_t want[4] = {std::uint8_t(record_magic), std::uint8_t(record_magic >> 8),
                                std::uint8_t(record_magic >> 16), std::uint8_t(record_magic >> 24)};
        for (std::size_t i = 0; i < in.size() && i < 4; ++i)
            if (in[i] != want[i]) return frame_problem::corrupt;
        return frame_problem::torn;
    }
    if (m != record_magic || len > record_max_payload_bytes) return frame_problem::corrupt;
    if (in.size() - record_header_bytes < len) return frame_problem::torn;
    const auto payload = in.subspan(record_header_bytes, len);
    std::uint8_t head[5] = {std::uint8_t(len), std::uint8_t(len >> 8), std::uint8_t(len >> 16),
                            std::uint8_t(len >> 24), type};
    auto c = crc32c(std::span<const std::uint8_t>(head, 5));
    c = crc32c(payload, c);
    if (c != crc) return frame_problem::corrupt;
    if (type < std::uint8_t(record_type::message_add) || type > std::uint8_t(record_type::tx_commit))
        return frame_problem::corrupt;
    return framed{record_type(type), payload, record_header_bytes + len};
}

std::size_t find_next_magic(std::span<const std::uint8_t> in) noexcept {
    for (std::size_t i = 1; i + 4 <= in.size(); ++i) {
        if (in[i] == std::uint8_t(record_magic) && in[i + 1] == std::uint8_t(record_magic >> 8) &&
            in[i + 2] == std::uint8_t(record_magic >> 16) && in[i + 3] == std::uint8_t(record_magic >> 24))
            return i;
    }
    return in.size();
}

}  // namespace sb::core
