// adapters/mqtt/codec.cpp — MQTT 3.1/3.1.1/5.0 packet decoder and encoder.
// Decoding waits for the whole packet (its size is in the fixed header), then parses the body
// with a bounds-checked reader. Encoding runs each writer twice, once counting and once
// appending, so the remaining length is known before the first byte and `out` grows once.
#include "adapters/mqtt/codec.hpp"

#include <array>
#include <cstring>
#include <type_traits>

namespace sb::mqtt {
namespace {

// Static details for decode_error; the session logs them as `detail="..."`.
constexpr std::string_view truncated = "truncated packet";
constexpr std::string_view trailing_bytes = "trailing bytes";
constexpr std::string_view string_overrun = "string overruns packet";
constexpr std::string_view invalid_utf8 = "invalid UTF-8";
constexpr std::string_view non_minimal_length = "non-minimal variable byte integer";
constexpr std::string_view length_too_long = "variable byte integer over 4 bytes";
constexpr std::string_view packet_id_zero = "packet identifier 0";
constexpr std::string_view bad_length = "bad remaining length";

// ---------------------------------------------------------------------------------------------
// Reading

// Bounds-checked reads over one packet body. Each read either succeeds or records the error
// and returns false; callers return false at once, so `err` is the first failure.
struct reader {
    const std::uint8_t* p;
    const std::uint8_t* end;
    decode_error err{reason::success, {}};

    std::size_t left() const noexcept { return static_cast<std::size_t>(end - p); }

    bool fail(reason code, std::string_view detail) noexcept {
        err = decode_error{code, detail};
        return false;
    }
    bool malformed(std::string_view detail) noexcept {
        return fail(reason::malformed_packet, detail);
    }

    bool u8(std::uint8_t& v) noexcept {
        if (p == end) return malformed(truncated);
        v = *p++;
        return true;
    }
    bool u16(std::uint16_t& v) noexcept {
        if (left() < 2) return malformed(truncated);
        v = static_cast<std::uint16_t>(p[0] << 8 | p[1]);
        p += 2;
        return true;
    }
    bool u32(std::uint32_t& v) noexcept {
        if (left() < 4) return malformed(truncated);
        v = std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
        p += 4;
        return true;
    }
    // MQTT 5 §1.5.5: at most 4 bytes, and [MQTT-1.5.5-1] the fewest bytes that hold the value
    // (a multi-byte integer whose last byte is 0 could have been shorter).
    bool vbi(std::uint32_t& v) noexcept {
        std::uint32_t x = 0;
        for (unsigned i = 0; i < 4; ++i) {
            if (p == end) return malformed(truncated);
            const std::uint8_t b = *p++;
            x |= std::uint32_t(b & 0x7f) << (7 * i);
            if ((b & 0x80) == 0) {
                if (i > 0 && b == 0) return malformed(non_minimal_length);
                v = x;
                return true;
            }
        }
        return malformed(length_too_long);
    }
    bool binary(std::span<const std::uint8_t>& v) noexcept {
        std::uint16_t n = 0;
        if (!u16(n)) return false;
        if (left() < n) return malformed(string_overrun);
        v = {p, n};
        p += n;
        return true;
    }
    // A length-prefixed string taken as bytes (protocol names are compared, not validated).
    bool raw_string(std::string_view& v) noexcept {
        std::span<const std::uint8_t> b;
        if (!binary(b)) return false;
        v = {reinterpret_cast<const char*>(b.data()), b.size()};
        return true;
    }
    // MQTT 5 §1.5.4: a receiver of ill-formed UTF-8 treats the packet as malformed.
    bool string(std::string_view& v) noexcept {
        if (!raw_string(v)) return false;
        if (!valid_utf8(v)) return malformed(invalid_utf8);
        return true;
    }
    bool packet_id(std::uint16_t& v) noexcept {
        if (!u16(v)) return false;
        if (v == 0) return malformed(packet_id_zero);
        return true;
    }
    bool at_end() noexcept { return p == end || malformed(trailing_bytes); }
};

// Where a property block sits, as bits, for the table of MQTT 5 §2.2.2.2.
enum where : std::uint16_t {
    in_connect = 1 << 0,
    in_connack = 1 << 1,
    in_publish = 1 << 2,
    in_will = 1 << 3,
    in_puback = 1 << 4,
    in_pubrec = 1 << 5,
    in_pubrel = 1 << 6,
    in_pubcomp = 1 << 7,
    in_subscribe = 1 << 8,
    in_suback = 1 << 9,
    in_unsubscribe = 1 << 10,
    in_unsuback = 1 << 11,
    in_disconnect = 1 << 12,
    in_auth = 1 << 13,
};

// MQTT 5 §2.2.2.2: the packets each property may appear in; 0 = not a property.
constexpr std::array<std::uint16_t, 0x2B> allowed_in = [] {
    std::array<std::uint16_t, 0x2B> a{};
    const auto set = [&a](property_id id, unsigned w) {
        a[static_cast<std::size_t>(id)] = static_cast<std::uint16_t>(w);
    };
    using enum property_id;
    set(payload_format_indicator, in_publish | in_will);
    set(message_expiry_interval, in_publish | in_will);
    set(content_type, in_publish | in_will);
    set(response_topic, in_publish | in_will);
    set(correlation_data, in_publish | in_will);
    set(subscription_identifier, in_publish | in_subscribe);
    set(session_expiry_interval, in_connect | in_connack | in_disconnect);
    set(assigned_client_identifier, in_connack);
    set(server_keep_alive, in_connack);
    set(authentication_method, in_connect | in_connack | in_auth);
    set(authentication_data, in_connect | in_connack | in_auth);
    set(request_problem_information, in_connect);
    set(will_delay_interval, in_will);
    set(request_response_information, in_connect);
    set(response_information, in_connack);
    set(server_reference, in_connack | in_disconnect);
    set(reason_string, in_connack | in_puback | in_pubrec | in_pubrel | in_pubcomp | in_suback |
                           in_unsuback | in_disconnect | in_auth);
    set(receive_maximum, in_connect | in_connack);
    set(topic_alias_maximum, in_connect | in_connack);
    set(topic_alias, in_publish);
    set(maximum_qos, in_connack);
    set(retain_available, in_connack);
    set(user_property, 0x3fff);  // every packet that has properties
    set(maximum_packet_size, in_connect | in_connack);
    set(wildcard_subscription_available, in_connack);
    set(subscription_identifier_available, in_connack);
    set(shared_subscription_available, in_connack);
    return a;
}();

constexpr std::string_view duplicate_property = "duplicate property";
constexpr std::string_view out_of_range = "property value out of range";

// One property block: reads the values into `out`, counting user properties and
// subscription identifiers into `counted` (shared by the blocks of one packet).
class property_reader {
public:
    property_reader(reader& r, properties& out, const limits& lim, std::size_t& counted) noexcept
        : r_(r), out_(out), lim_(lim), counted_(counted) {}

    bool read(where w) noexcept {
        std::uint32_t len = 0;
        if (!r_.vbi(len)) return false;
        if (len > r_.left()) return r_.malformed("property length overruns packet");
        const std::uint8_t* const stop = r_.p + len;
        // Reading through a copy bounded at `stop` keeps a value from running past the block.
        reader block{r_.p, stop};
        while (block.p != stop) {
            if (!one(block, w)) {
                r_.err = block.err;
                return false;
            }
        }
        r_.p = stop;
        return true;
    }

private:
    template <class T>
    bool fresh(reader& b, const std::optional<T>& slot) noexcept {
        // MQTT 5 §2.2.2.2: "It is a Protocol Error to include [a property] more than once"
        // (all but User Property, and Subscription Identifier in PUBLISH).
        return !slot || b.fail(reason::protocol_error, duplicate_property);
    }
    bool count_one(reader& b) noexcept {
        if (++counted_ > lim_.max_properties) return b.malformed("too many properties");
        return true;
    }
    bool flag(reader& b, std::optional<bool>& slot) noexcept {
        std::uint8_t v = 0;
        if (!fresh(b, slot) || !b.u8(v)) return false;
        if (v > 1) return b.fail(reason::protocol_error, out_of_range);
        slot = v == 1;
        return true;
    }
    bool small(reader& b, std::optional<std::uint8_t>& slot) noexcept {
        std::uint8_t v = 0;
        if (!fresh(b, slot) || !b.u8(v)) return false;
        if (v > 1) return b.fail(reason::protocol_error, out_of_range);  // 0/1 only (§3.2.2.3.4)
        slot = v;
        return true;
    }
    // A non-empty `zero_detail` makes 0 a Protocol Error.
    bool two(reader& b, std::optional<std::uint16_t>& slot,
             std::string_view zero_detail = {}) noexcept {
        std::uint16_t v = 0;
        if (!fresh(b, slot) || !b.u16(v)) return false;
        if (v == 0 && !zero_detail.empty()) return b.fail(reason::protocol_error, zero_detail);
        slot = v;
        return true;
    }
    bool four(reader& b, std::optional<std::uint32_t>& slot,
              std::string_view zero_detail = {}) noexcept {
        std::uint32_t v = 0;
        if (!fresh(b, slot) || !b.u32(v)) return false;
        if (v == 0 && !zero_detail.empty()) return b.fail(reason::protocol_error, zero_detail);
        slot = v;
        return true;
    }
    bool text(reader& b, std::optional<std::string_view>& slot) noexcept {
        std::string_view v;
        if (!fresh(b, slot) || !b.string(v)) return false;
        slot = v;
        return true;
    }
    bool data(reader& b, std::optional<std::span<const std::uint8_t>>& slot) noexcept {
        std::span<const std::uint8_t> v;
        if (!fresh(b, slot) || !b.binary(v)) return false;
        slot = v;
        return true;
    }

    bool one(reader& b, where w) noexcept {
        // The identifier is a variable byte integer (§2.2.2.2), but every defined one is below
        // 0x80, so any byte with the top bit set starts an unknown identifier.
        std::uint8_t id = 0;
        if (!b.u8(id)) return false;
        if (id >= allowed_in.size() || allowed_in[id] == 0) return b.malformed("unknown property");
        if ((allowed_in[id] & w) == 0) return b.malformed("property not allowed in packet");
        properties& o = out_;
        switch (static_cast<property_id>(id)) {
        case property_id::payload_format_indicator: return small(b, o.payload_format_indicator);
        case property_id::message_expiry_interval: return four(b, o.message_expiry_interval);
        case property_id::content_type: return text(b, o.content_type);
        case property_id::response_topic: return text(b, o.response_topic);
        case property_id::correlation_data: return data(b, o.correlation_data);
        case property_id::subscription_identifier: {
            // §3.8.2.1.2: at most one in SUBSCRIBE; a PUBLISH to a client carries one per
            // matching subscription.
            if (w == in_subscribe && !o.subscription_identifiers.empty())
                return b.fail(reason::protocol_error, duplicate_property);
            std::uint32_t v = 0;
            if (!b.vbi(v)) return false;
            if (v == 0) return b.fail(reason::protocol_error, "subscription identifier 0");
            if (!count_one(b)) return false;
            o.subscription_identifiers.push_back(v);
            return true;
        }
        case property_id::session_expiry_interval: return four(b, o.session_expiry_interval);
        case property_id::assigned_client_identifier: return text(b, o.assigned_client_identifier);
        case property_id::server_keep_alive: return two(b, o.server_keep_alive);
        case property_id::authentication_method: return text(b, o.authentication_method);
        case property_id::authentication_data: return data(b, o.authentication_data);
        case property_id::request_problem_information:
            return flag(b, o.request_problem_information);
        case property_id::will_delay_interval: return four(b, o.will_delay_interval);
        case property_id::request_response_information:
            return flag(b, o.request_response_information);
        case property_id::response_information: return text(b, o.response_information);
        case property_id::server_reference: return text(b, o.server_reference);
        case property_id::reason_string: return text(b, o.reason_string);
        // §3.1.2.11.3, §3.2.2.3.3: a Receive Maximum of 0 is a Protocol Error.
        case property_id::receive_maximum: return two(b, o.receive_maximum, "receive maximum 0");
        case property_id::topic_alias_maximum: return two(b, o.topic_alias_maximum);
        // §3.3.2.3.4: "A Topic Alias of 0 is not permitted"; §3.3.4 answers it with 0x94.
        case property_id::topic_alias:
            if (!two(b, o.topic_alias)) return false;
            if (*o.topic_alias == 0) return b.fail(reason::topic_alias_invalid, "topic alias 0");
            return true;
        case property_id::maximum_qos: return small(b, o.maximum_qos);
        case property_id::retain_available: return flag(b, o.retain_available);
        case property_id::user_property: {
            user_property up;
            if (!b.string(up.name) || !b.string(up.value)) return false;
            if (!count_one(b)) return false;
            o.user_properties.push_back(up);
            return true;
        }
        // §3.1.2.11.4: a Maximum Packet Size of 0 is a Protocol Error.
        case property_id::maximum_packet_size:
            return four(b, o.maximum_packet_size, "maximum packet size 0");
        case property_id::wildcard_subscription_available:
            return flag(b, o.wildcard_subscription_available);
        case property_id::subscription_identifier_available:
            return flag(b, o.subscription_identifier_available);
        case property_id::shared_subscription_available:
            return flag(b, o.shared_subscription_available);
        }
        return b.malformed("unknown property");  // unreachable: the table lists every id
    }

    reader& r_;
    properties& out_;
    const limits& lim_;
    std::size_t& counted_;
};

// What a packet body is read with, besides its bytes.
struct context {
    version v;             // the connection's (CONNECT uses its own level)
    std::uint8_t flags;    // low nibble of the first byte
    const limits& lim;
};

bool read_properties(reader& r, properties& out, where w, const context& c) noexcept {
    std::size_t counted = 0;
    return property_reader(r, out, c.lim, counted).read(w);
}

// ---- read(r, packet, c): one overload per packet type, over the body only ------------------

bool read(reader& r, connect& out, const context& c) noexcept {
    // MQTT 5 §3.1.2.1-2, 3.1.1 §3.1.2.1-2, 3.1 §3.1: the name decides how to read the level.
    if (!r.raw_string(out.protocol_name)) return false;
    std::uint8_t level = 0;
    if (!r.u8(level)) return false;
    if (out.protocol_name == "MQTT" && level == 4) out.ver = version::v3_1_1;
    else if (out.protocol_name == "MQTT" && level == 5) out.ver = version::v5;
    else if (out.protocol_name == "MQIsdp" && level == 3) out.ver = version::v3_1;
    else return r.fail(reason::unsupported_protocol_version, "unsupported protocol name or level");

    std::uint8_t flags = 0;
    if (!r.u8(flags)) return false;
    // §3.1.2.3: the reserved bit must be 0, else malformed.
    if (flags & 0x01) return r.malformed("reserved connect flag");
    out.clean_start = (flags & 0x02) != 0;
    const bool will_flag = (flags & 0x04) != 0;
    const auto will_qos = static_cast<std::uint8_t>((flags >> 3) & 0x03);
    const bool will_retain = (flags & 0x20) != 0;
    const bool password_flag = (flags & 0x40) != 0;
    const bool username_flag = (flags & 0x80) != 0;
    if (will_qos == 3) return r.malformed("will QoS 3");
    // §3.1.2.6-7: without the will flag, will QoS and will retain must be 0.
    if (!will_flag && (will_qos != 0 || will_retain)) return r.malformed("will flags without will");
    // 3.1.1 §3.1.2.9 [MQTT-3.1.2-22]; MQTT 5 dropped the rule, and 3.1 brokers accepted it.
    if (out.ver == version::v3_1_1 && password_flag && !username_flag)
        return r.malformed("password without user name");
    if (!r.u16(out.keep_alive)) return false;

    const bool v5 = out.ver == version::v5;
    std::size_t counted = 0;  // the connect and will properties share max_properties
    if (v5 && !property_reader(r, out.props, c.lim, counted).read(in_connect)) return false;
    // §3.1.2.11.10: "It is a Protocol Error to include Authentication Data if there is no
    // Authentication Method".
    if (out.props.authentication_data && !out.props.authentication_method)
        return r.fail(reason::protocol_error, "authentication data without a method");
    if (!r.string(out.client_id)) return false;
    if (will_flag) {
        will& w = out.will_msg.emplace();
        w.qos = will_qos;
        w.retain = will_retain;
        if (v5 && !property_reader(r, w.props, c.lim, counted).read(in_will)) return false;
        if (!r.string(w.topic) || !r.binary(w.payload)) return false;
    }
    if (username_flag && !r.string(out.username.emplace())) return false;
    if (password_flag && !r.binary(out.password.emplace())) return false;
    return r.at_end();
}

bool read(reader& r, connack& out, const context& c) noexcept {
    std::uint8_t flags = 0;
    if (!r.u8(flags)) return false;
    // §3.2.2.1: bits 7-1 are reserved.
    if (flags & 0xfe) return r.malformed("reserved connack flags");
    out.session_present = (flags & 0x01) != 0;
    if (!r.u8(out.code)) return false;
    // Lenient: a v5 CONNACK without a property length reads as one with no properties.
    if (c.v == version::v5 && r.left() > 0 && !read_properties(r, out.props, in_connack, c))
        return false;
    return r.at_end();
}

bool read(reader& r, publish& out, const context& c) noexcept {
    out.dup = (c.flags & 0x08) != 0;  // QoS 3 and DUP on QoS 0 were refused on the first byte
    out.qos = static_cast<std::uint8_t>((c.flags >> 1) & 0x03);
    out.retain = (c.flags & 0x01) != 0;
    if (!r.string(out.topic)) return false;
    if (out.qos > 0 && !r.packet_id(out.packet_id)) return false;
    if (c.v == version::v5 && !read_properties(r, out.props, in_publish, c)) return false;
    // MQTT 5 §3.3.2.1: an empty topic needs a Topic Alias; before v5 it is never valid
    // (3.1.1 [MQTT-4.7.3-1]).
    if (out.topic.empty() && !out.props.topic_alias)
        return r.fail(reason::protocol_error, "empty topic name");
    out.payload = {r.p, r.left()};
    r.p = r.end;
    return true;
}

bool read_ack(reader& r, ack_base& out, where w, const context& c) noexcept {
    if (!r.packet_id(out.packet_id)) return false;
    if (c.v == version::v5) {
        // MQTT 5 §3.4.2.1: no code means 0; no property length means no properties.
        if (r.left() > 0 && !r.u8(out.code)) return false;
        if (r.left() > 0 && !read_properties(r, out.props, w, c)) return false;
    }
    return r.at_end();  // 3.1.1 §3.4.1: exactly the packet id
}

bool read(reader& r, puback& out, const context& c) noexcept {
    return read_ack(r, out, in_puback, c);
}
bool read(reader& r, pubrec& out, const context& c) noexcept {
    return read_ack(r, out, in_pubrec, c);
}
bool read(reader& r, pubrel& out, const context& c) noexcept {
    return read_ack(r, out, in_pubrel, c);
}
bool read(reader& r, pubcomp& out, const context& c) noexcept {
    return read_ack(r, out, in_pubcomp, c);
}

// Counts the entries of a SUBSCRIBE (with an options byte) or UNSUBSCRIBE payload, so that
// the limit is checked, and the vector sized, before anything is stored.
bool count_entries(reader r, bool with_options, const limits& lim, std::size_t& n,
                   reader& report) noexcept {
    n = 0;
    while (r.left() > 0) {
        std::uint16_t len = 0;
        if (!r.u16(len)) return report.fail(r.err.code, r.err.detail);
        const std::size_t need = std::size_t(len) + (with_options ? 1 : 0);
        if (r.left() < need) return report.malformed(len > r.left() ? string_overrun : truncated);
        r.p += need;
        if (++n > lim.max_topics) return report.malformed("too many topics");
    }
    return true;
}

bool read(reader& r, subscribe& out, const context& c) noexcept {
    if (!r.packet_id(out.packet_id)) return false;
    const bool v5 = c.v == version::v5;
    if (v5 && !read_properties(r, out.props, in_subscribe, c)) return false;
    // MQTT 5 §3.8.3: "A SUBSCRIBE packet with no Payload is a Protocol Error".
    if (r.left() == 0) return r.fail(reason::protocol_error, "no topic filters");
    std::size_t n = 0;
    if (!count_entries(r, true, c.lim, n, r)) return false;
    out.topics.reserve(n);
    while (r.left() > 0) {
        subscription& s = out.topics.emplace_back();
        std::uint8_t o = 0;
        if (!r.string(s.filter) || !r.u8(o)) return false;
        // §3.8.3.1: bits 7-6 reserved in v5; 3.1.1 §3.8.3.1: bits 7-2 reserved.
        if (o & (v5 ? 0xc0 : 0xfc)) return r.malformed("reserved subscription option bits");
        s.qos = o & 0x03;
        if (s.qos == 3) return r.malformed("QoS 3");
        if (v5) {
            s.no_local = (o & 0x04) != 0;
            s.retain_as_published = (o & 0x08) != 0;
            s.retain_handling = static_cast<std::uint8_t>((o >> 4) & 0x03);
            if (s.retain_handling == 3) return r.fail(reason::protocol_error, "retain handling 3");
        }
    }
    return true;
}

bool read_codes(reader& r, std::vector<std::uint8_t>& codes) noexcept {
    // One code per topic of the request, so at least one.
    if (r.left() == 0) return r.malformed("no reason codes");
    codes.assign(r.p, r.end);
    r.p = r.end;
    return true;
}

bool read(reader& r, suback& out, const context& c) noexcept {
    if (!r.packet_id(out.packet_id)) return false;
    if (c.v == version::v5 && !read_properties(r, out.props, in_suback, c)) return false;
    return read_codes(r, out.codes);
}

bool read(reader& r, unsubscribe& out, const context& c) noexcept {
    if (!r.packet_id(out.packet_id)) return false;
    if (c.v == version::v5 && !read_properties(r, out.props, in_unsubscribe, c)) return false;
    // MQTT 5 §3.10.3: "An UNSUBSCRIBE packet with no Payload is a Protocol Error".
    if (r.left() == 0) return r.fail(reason::protocol_error, "no topic filters");
    std::size_t n = 0;
    if (!count_entries(r, false, c.lim, n, r)) return false;
    out.filters.reserve(n);
    while (r.left() > 0)
        if (!r.string(out.filters.emplace_back())) return false;
    return true;
}

bool read(reader& r, unsuback& out, const context& c) noexcept {
    if (!r.packet_id(out.packet_id)) return false;
    if (c.v != version::v5) return r.at_end();  // 3.1.1 §3.11: the packet id only
    if (!read_properties(r, out.props, in_unsuback, c)) return false;
    return read_codes(r, out.codes);
}

bool read_empty(reader& r) noexcept { return r.left() == 0 || r.malformed(bad_length); }

bool read(reader& r, pingreq&, const context&) noexcept { return read_empty(r); }
bool read(reader& r, pingresp&, const context&) noexcept { return read_empty(r); }

// DISCONNECT and AUTH in v5: code and properties may both be left out (§3.14.2.1, §3.15.2.1).
bool read_code_and_properties(reader& r, std::uint8_t& code, properties& props, where w,
                              const context& c) noexcept {
    if (r.left() > 0 && !r.u8(code)) return false;
    if (r.left() > 0 && !read_properties(r, props, w, c)) return false;
    return r.at_end();
}

bool read(reader& r, disconnect& out, const context& c) noexcept {
    if (c.v != version::v5) return read_empty(r);  // 3.1.1 §3.14: no variable header
    return read_code_and_properties(r, out.code, out.props, in_disconnect, c);
}

bool read(reader& r, auth& out, const context& c) noexcept {
    return read_code_and_properties(r, out.code, out.props, in_auth, c);  // v5 only
}

// First-byte checks, made before the length is read (MQTT 5 §2.1.3, 3.1.1 §2.2.2).
const decode_error* check_first_byte(unsigned type, unsigned flags, version v) noexcept {
    static constexpr decode_error type_zero{reason::malformed_packet, "packet type 0"};
    static constexpr decode_error auth_before_v5{reason::malformed_packet, "AUTH before MQTT 5"};
    static constexpr decode_error reserved_flags{reason::malformed_packet,
                                                 "reserved flag bits set"};
    static constexpr decode_error qos_3{reason::malformed_packet, "QoS 3"};
    static constexpr decode_error dup_on_qos_0{reason::malformed_packet, "DUP set on QoS 0"};
    switch (static_cast<packet_type>(type)) {
    case packet_type::publish:
        if ((flags & 0x06) == 0x06) return &qos_3;
        // [MQTT-3.3.1-2]: DUP must be 0 for QoS 0.
        if ((flags & 0x06) == 0 && (flags & 0x08)) return &dup_on_qos_0;
        return nullptr;
    case packet_type::pubrel:
    case packet_type::subscribe:
    case packet_type::unsubscribe:
        return flags == 0x02 ? nullptr : &reserved_flags;
    case packet_type::auth:
        if (v != version::v5) return &auth_before_v5;
        return flags == 0 ? nullptr : &reserved_flags;
    default:
        if (type == 0) return &type_zero;
        return flags == 0 ? nullptr : &reserved_flags;
    }
}

// Reads a T made directly as the result's alternative and filled where it lies (a PUBLISH
// is never copied; building a default CONNECT first cost ~10% per PUBLISH).
template <class T>
decode_result run(std::size_t total, reader& r, const context& c) noexcept {
    decode_result res{std::in_place_type<decoded>, decoded{packet(std::in_place_type<T>), total}};
    if (!read(r, *std::get_if<T>(&std::get_if<decoded>(&res)->frame), c)) res = r.err;
    return res;
}

// ---------------------------------------------------------------------------------------------
// Writing

constexpr std::size_t vbi_size(std::size_t x) noexcept {
    return x < 0x80 ? 1 : x < 0x4000 ? 2 : x < 0x200000 ? 3 : 4;
}

// The two sinks every writer runs on: counting, then appending.
struct counter {
    std::size_t n = 0;
    void byte(std::uint8_t) noexcept { ++n; }
    void u16(std::uint16_t) noexcept { n += 2; }
    void u32(std::uint32_t) noexcept { n += 4; }
    void vbi(std::size_t x) noexcept { n += vbi_size(x); }
    void raw(const void*, std::size_t k) noexcept { n += k; }
};

struct appender {
    std::string& out;
    void byte(std::uint8_t b) { out.push_back(static_cast<char>(b)); }
    void u16(std::uint16_t x) {
        const char b[2] = {static_cast<char>(x >> 8), static_cast<char>(x)};
        out.append(b, 2);
    }
    void u32(std::uint32_t x) {
        const char b[4] = {static_cast<char>(x >> 24), static_cast<char>(x >> 16),
                           static_cast<char>(x >> 8), static_cast<char>(x)};
        out.append(b, 4);
    }
    void vbi(std::size_t x) {
        do {
            auto b = static_cast<std::uint8_t>(x & 0x7f);
            x >>= 7;
            if (x) b |= 0x80;
            byte(b);
        } while (x);
    }
    void raw(const void* p, std::size_t k) {
        if (k) out.append(static_cast<const char*>(p), k);
    }
};

template <class S>
void put_binary(S& s, std::span<const std::uint8_t> b) {
    s.u16(static_cast<std::uint16_t>(b.size()));
    s.raw(b.data(), b.size());
}

template <class S>
void put_string(S& s, std::string_view v) {
    s.u16(static_cast<std::uint16_t>(v.size()));
    s.raw(v.data(), v.size());
}

template <class S>
void put_property_list(S& s, const properties& p) {
    const auto id = [&s](property_id i) { s.byte(static_cast<std::uint8_t>(i)); };
    const auto b = [&](property_id i, const auto& v) {
        if (v) { id(i); s.byte(static_cast<std::uint8_t>(*v)); }
    };
    const auto two = [&](property_id i, const std::optional<std::uint16_t>& v) {
        if (v) { id(i); s.u16(*v); }
    };
    const auto four = [&](property_id i, const std::optional<std::uint32_t>& v) {
        if (v) { id(i); s.u32(*v); }
    };
    const auto text = [&](property_id i, const std::optional<std::string_view>& v) {
        if (v) { id(i); put_string(s, *v); }
    };
    const auto data = [&](property_id i, const std::optional<std::span<const std::uint8_t>>& v) {
        if (v) { id(i); put_binary(s, *v); }
    };
    using enum property_id;
    b(payload_format_indicator, p.payload_format_indicator);
    four(message_expiry_interval, p.message_expiry_interval);
    text(content_type, p.content_type);
    text(response_topic, p.response_topic);
    data(correlation_data, p.correlation_data);
    for (const std::uint32_t sid : p.subscription_identifiers) {
        id(subscription_identifier);
        s.vbi(sid);
    }
    four(session_expiry_interval, p.session_expiry_interval);
    text(assigned_client_identifier, p.assigned_client_identifier);
    two(server_keep_alive, p.server_keep_alive);
    text(authentication_method, p.authentication_method);
    data(authentication_data, p.authentication_data);
    b(request_problem_information, p.request_problem_information);
    four(will_delay_interval, p.will_delay_interval);
    b(request_response_information, p.request_response_information);
    text(response_information, p.response_information);
    text(server_reference, p.server_reference);
    text(reason_string, p.reason_string);
    two(receive_maximum, p.receive_maximum);
    two(topic_alias_maximum, p.topic_alias_maximum);
    two(topic_alias, p.topic_alias);
    b(maximum_qos, p.maximum_qos);
    b(retain_available, p.retain_available);
    // §2.2.2.2: the order of user properties is kept; their place among the others is free.
    for (const sb::mqtt::user_property& up : p.user_properties) {
        id(user_property);
        put_string(s, up.name);
        put_string(s, up.value);
    }
    four(maximum_packet_size, p.maximum_packet_size);
    b(wildcard_subscription_available, p.wildcard_subscription_available);
    b(subscription_identifier_available, p.subscription_identifier_available);
    b(shared_subscription_available, p.shared_subscription_available);
}

std::size_t property_list_size(const properties& p) noexcept {
    counter c;
    put_property_list(c, p);
    return c.n;
}

// Property length + properties.
template <class S>
void put_properties(S& s, const properties& p) {
    const std::size_t n = property_list_size(p);
    s.vbi(n);
    if constexpr (std::is_same_v<S, counter>) s.n += n;
    else put_property_list(s, p);
}

template <class S>
void put_body(S& s, const connect& c, version) {
    const bool v5 = c.ver == version::v5;
    std::string_view name = c.protocol_name;
    if (name.empty()) name = c.ver == version::v3_1 ? "MQIsdp" : "MQTT";
    put_string(s, name);
    s.byte(static_cast<std::uint8_t>(c.ver));
    std::uint8_t flags = c.clean_start ? 0x02 : 0;
    if (c.will_msg) {
        flags |= static_cast<std::uint8_t>(0x04 | (c.will_msg->qos & 0x03) << 3);
        if (c.will_msg->retain) flags |= 0x20;
    }
    if (c.password) flags |= 0x40;
    if (c.username) flags |= 0x80;
    s.byte(flags);
    s.u16(c.keep_alive);
    if (v5) put_properties(s, c.props);
    put_string(s, c.client_id);
    if (c.will_msg) {
        if (v5) put_properties(s, c.will_msg->props);
        put_string(s, c.will_msg->topic);
        put_binary(s, c.will_msg->payload);
    }
    if (c.username) put_string(s, *c.username);
    if (c.password) put_binary(s, *c.password);
}

template <class S>
void put_body(S& s, const connack& c, version v) {
    s.byte(c.session_present ? 1 : 0);
    s.byte(c.code);
    if (v == version::v5) put_properties(s, c.props);
}

template <class S>
void put_publish_body(S& s, version v, std::uint8_t qos, std::string_view topic,
                      std::uint16_t packet_id, const properties* props,
                      std::span<const std::uint8_t> payload) {
    put_string(s, topic);
    if (qos > 0) s.u16(packet_id);
    if (v == version::v5) {
        if (props) put_properties(s, *props);
        else s.vbi(0);
    }
    s.raw(payload.data(), payload.size());
}

template <class S>
void put_body(S& s, const publish& p, version v) {
    put_publish_body(s, v, p.qos, p.topic, p.packet_id, &p.props, p.payload);
}

template <class S>
void put_body(S& s, const ack_base& a, version v) {
    s.u16(a.packet_id);
    if (v != version::v5) return;
    const bool no_props = a.props.empty();
    if (a.code == 0 && no_props) return;  // §3.4.2.1: remaining length 2
    s.byte(a.code);
    if (!no_props) put_properties(s, a.props);
}

template <class S>
void put_body(S& s, const subscribe& p, version v) {
    const bool v5 = v == version::v5;
    s.u16(p.packet_id);
    if (v5) put_properties(s, p.props);
    for (const subscription& t : p.topics) {
        put_string(s, t.filter);
        auto o = static_cast<std::uint8_t>(t.qos & 0x03);
        if (v5) {
            if (t.no_local) o |= 0x04;
            if (t.retain_as_published) o |= 0x08;
            o |= static_cast<std::uint8_t>((t.retain_handling & 0x03) << 4);
        }
        s.byte(o);
    }
}

template <class S>
void put_body(S& s, const suback& p, version v) {
    s.u16(p.packet_id);
    if (v == version::v5) put_properties(s, p.props);
    s.raw(p.codes.data(), p.codes.size());
}

template <class S>
void put_body(S& s, const unsubscribe& p, version v) {
    s.u16(p.packet_id);
    if (v == version::v5) put_properties(s, p.props);
    for (const std::string_view f : p.filters) put_string(s, f);
}

template <class S>
void put_body(S& s, const unsuback& p, version v) {
    s.u16(p.packet_id);
    if (v != version::v5) return;
    put_properties(s, p.props);
    s.raw(p.codes.data(), p.codes.size());
}

template <class S>
void put_body(S&, const pingreq&, version) {}

template <class S>
void put_body(S&, const pingresp&, version) {}

// DISCONNECT and AUTH: nothing at all for code 0 without properties.
template <class S>
void put_code_and_properties(S& s, std::uint8_t code, const properties& props,
                             bool allow_code_only) {
    const bool no_props = props.empty();
    if (code == 0 && no_props) return;
    s.byte(code);
    // AUTH has no "code only" form (§3.15.2.1), DISCONNECT has (§3.14.2.1).
    if (!no_props || !allow_code_only) put_properties(s, props);
}

template <class S>
void put_body(S& s, const disconnect& p, version v) {
    if (v == version::v5) put_code_and_properties(s, p.code, p.props, true);
}

template <class S>
void put_body(S& s, const auth& p, version) {
    put_code_and_properties(s, p.code, p.props, false);
}

constexpr std::uint8_t first_byte(const connect&) noexcept { return 0x10; }
constexpr std::uint8_t first_byte(const connack&) noexcept { return 0x20; }
constexpr std::uint8_t publish_first_byte(bool dup, std::uint8_t qos, bool retain) noexcept {
    return static_cast<std::uint8_t>(0x30 | (dup ? 0x08 : 0) | (qos & 0x03) << 1 |
                                     (retain ? 0x01 : 0));
}
constexpr std::uint8_t first_byte(const publish& p) noexcept {
    return publish_first_byte(p.dup, p.qos, p.retain);
}
constexpr std::uint8_t first_byte(const puback&) noexcept { return 0x40; }
constexpr std::uint8_t first_byte(const pubrec&) noexcept { return 0x50; }
constexpr std::uint8_t first_byte(const pubrel&) noexcept { return 0x62; }
constexpr std::uint8_t first_byte(const pubcomp&) noexcept { return 0x70; }
constexpr std::uint8_t first_byte(const subscribe&) noexcept { return 0x82; }
constexpr std::uint8_t first_byte(const suback&) noexcept { return 0x90; }
constexpr std::uint8_t first_byte(const unsubscribe&) noexcept { return 0xa2; }
constexpr std::uint8_t first_byte(const unsuback&) noexcept { return 0xb0; }
constexpr std::uint8_t first_byte(const pingreq&) noexcept { return 0xc0; }
constexpr std::uint8_t first_byte(const pingresp&) noexcept { return 0xd0; }
constexpr std::uint8_t first_byte(const disconnect&) noexcept { return 0xe0; }
constexpr std::uint8_t first_byte(const auth&) noexcept { return 0xf0; }

template <class P>
void encode_one(const P& p, version v, std::string& out) {
    counter c;
    put_body(c, p, v);
    out.reserve(out.size() + 1 + vbi_size(c.n) + c.n);
    appender a{out};
    a.byte(first_byte(p));
    a.vbi(c.n);
    put_body(a, p, v);
}

}  // namespace

decode_result decode(std::span<const std::uint8_t> in, const limits& lim, version v) noexcept {
    const std::size_t n = in.size();
    if (n == 0) return need_more{1};
    const unsigned type = in[0] >> 4;
    const unsigned flags = in[0] & 0x0f;
    if (const decode_error* e = check_first_byte(type, flags, v)) return *e;

    // MQTT 5 §2.1.4: the remaining length, a variable byte integer of 1 to 4 bytes.
    std::size_t remaining = 0;
    std::size_t i = 1;  // the byte being read
    for (;; ++i) {
        if (i > 4) return decode_error{reason::malformed_packet, "remaining length over 4 bytes"};
        if (i >= n) return need_more{n + 1};
        remaining |= std::size_t(in[i] & 0x7f) << (7 * (i - 1));
        if ((in[i] & 0x80) == 0) {
            if (i > 1 && in[i] == 0)
                return decode_error{reason::malformed_packet, non_minimal_length};
            break;
        }
    }
    const std::size_t total = i + 1 + remaining;
    // Checked before the body is buffered: a peer cannot make us wait for (or hold) more.
    if (total > lim.max_packet_size)
        return decode_error{reason::packet_too_large, "exceeds max_packet_size"};
    if (n < total) return need_more{total};

    reader r{in.data() + i + 1, in.data() + total};
    const context c{v, static_cast<std::uint8_t>(flags), lim};
    switch (static_cast<packet_type>(type)) {
    case packet_type::connect: return run<connect>(total, r, c);
    case packet_type::connack: return run<connack>(total, r, c);
    case packet_type::publish: return run<publish>(total, r, c);
    case packet_type::puback: return run<puback>(total, r, c);
    case packet_type::pubrec: return run<pubrec>(total, r, c);
    case packet_type::pubrel: return run<pubrel>(total, r, c);
    case packet_type::pubcomp: return run<pubcomp>(total, r, c);
    case packet_type::subscribe: return run<subscribe>(total, r, c);
    case packet_type::suback: return run<suback>(total, r, c);
    case packet_type::unsubscribe: return run<unsubscribe>(total, r, c);
    case packet_type::unsuback: return run<unsuback>(total, r, c);
    case packet_type::pingreq: return run<pingreq>(total, r, c);
    case packet_type::pingresp: return run<pingresp>(total, r, c);
    case packet_type::disconnect: return run<disconnect>(total, r, c);
    case packet_type::auth: return run<auth>(total, r, c);
    }
    return decode_error{reason::malformed_packet, "packet type 0"};  // unreachable
}

void encode(const packet& p, version v, std::string& out) {
    std::visit([&](const auto& x) { encode_one(x, v, out); }, p);
}

void encode_publish(std::string& out, version v, bool dup, std::uint8_t qos, bool retain,
                    std::string_view topic, std::uint16_t packet_id, const properties* props,
                    std::span<const std::uint8_t> payload) {
    counter c;
    put_publish_body(c, v, qos, topic, packet_id, props, payload);
    out.reserve(out.size() + 1 + vbi_size(c.n) + c.n);
    appender a{out};
    a.byte(publish_first_byte(dup, qos, retain));
    a.vbi(c.n);
    put_publish_body(a, v, qos, topic, packet_id, props, payload);
}

bool valid_utf8(std::string_view s) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* const end = p + s.size();
    constexpr std::uint64_t high = 0x8080808080808080ull;
    constexpr std::uint64_t ones = 0x0101010101010101ull;
    while (p < end) {
        // Topics are mostly ASCII: check 8 bytes at a time for a high bit or a NUL.
        while (end - p >= 8) {
            std::uint64_t w = 0;
            std::memcpy(&w, p, 8);
            if (w & high) break;
            if ((w - ones) & ~w & high) return false;  // some byte is 0
            p += 8;
        }
        if (p == end) break;
        const unsigned c = *p;
        if (c < 0x80) {
            if (c == 0) return false;  // §1.5.4: U+0000 is not allowed
            ++p;
            continue;
        }
        const auto cont = [](unsigned char b) { return (b & 0xc0) == 0x80; };
        if (c < 0xc2) return false;  // a continuation byte, or an overlong 2-byte form
        if (c < 0xe0) {
            if (end - p < 2 || !cont(p[1])) return false;
            p += 2;
        } else if (c < 0xf0) {
            if (end - p < 3 || !cont(p[1]) || !cont(p[2])) return false;
            if (c == 0xe0 && p[1] < 0xa0) return false;   // overlong
            if (c == 0xed && p[1] >= 0xa0) return false;  // U+D800..U+DFFF, surrogates
            p += 3;
        } else if (c < 0xf5) {
            if (end - p < 4 || !cont(p[1]) || !cont(p[2]) || !cont(p[3])) return false;
            if (c == 0xf0 && p[1] < 0x90) return false;   // overlong
            if (c == 0xf4 && p[1] >= 0x90) return false;  // past U+10FFFF
            p += 4;
        } else {
            return false;
        }
    }
    return true;
}

bool valid_topic_name(std::string_view s) noexcept {
    return !s.empty() && s.find_first_of("+#") == std::string_view::npos;
}

bool valid_topic_filter(std::string_view s) noexcept {
    if (s.empty()) return false;
    const std::size_t n = s.size();
    for (std::size_t i = 0; i < n; ++i) {
        const char c = s[i];
        if (c != '+' && c != '#') continue;
        if (i > 0 && s[i - 1] != '/') return false;            // must start its level
        if (c == '+' && i + 1 < n && s[i + 1] != '/') return false;  // and fill it
        if (c == '#' && i + 1 != n) return false;              // '#' is the last character
    }
    return true;
}

}  // namespace sb::mqtt
