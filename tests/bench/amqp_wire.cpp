// tests/bench/amqp_wire.cpp — one AMQP 1.0 link, framed by hand (no Proton): the bench's peer
// owns the socket and its event loop, this file the frames.
//
// A load generator's client must cost little next to the broker it measures, on the same cores:
// on Proton's connection driver this client took ~4x the CPU of the STOMP client per message
// (its object model, events and generic codec for every transfer and disposition). What one
// link of the bench needs is small: SASL ANONYMOUS or PLAIN, open, begin, one attach, then
// transfers, flows and dispositions, with the performatives laid out as Proton lays them out
// (AMQP 1.0 part 2). Everything else the broker sends is read past; a detach, end or close, a
// refused SASL exchange or bytes that are not AMQP fail the link with the broker's condition.
// Not implemented, as the bench never needs them: heart-beats (the peer's idle-time-out is
// longer than any run's silence), drain echoes, resuming links, more than one link.
//
// Messages are encoded and decoded here too: the bench sends one data section (and a header
// when durable) and reads the data section back.
#include "tests/bench/amqp_wire.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <utility>

namespace sb::bench {

// ---- encoding ---------------------------------------------------------------------------------

namespace {

constexpr std::uint8_t described = 0x00, smallulong = 0x53, ulong_ = 0x80;
constexpr std::uint8_t sym8 = 0xa3, sym32 = 0xb3, vbin8 = 0xa0, vbin32 = 0xb0;
constexpr std::uint64_t section_data = 0x75, section_value = 0x77;

std::uint32_t be32(const std::uint8_t* p) noexcept {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

// The size of the encoded value at `m[at]` (constructor included), or 0 when it is malformed or
// runs past the end. Described values are a descriptor followed by the value.
std::size_t value_size(std::span<const std::uint8_t> m, std::size_t at, int depth = 0) {
    if (at >= m.size() || depth > 4) return 0;
    const std::uint8_t c = m[at];
    if (c == described) {
        const std::size_t d = value_size(m, at + 1, depth + 1);
        if (d == 0) return 0;
        const std::size_t v = value_size(m, at + 1 + d, depth + 1);
        return v == 0 ? 0 : 1 + d + v;
    }
    std::size_t fixed = 0, width = 0;  // fixed-size payload, or the width of the size field
    switch (c >> 4) {
    case 0x4: fixed = 0; break;
    case 0x5: fixed = 1; break;
    case 0x6: fixed = 2; break;
    case 0x7: fixed = 4; break;
    case 0x8: fixed = 8; break;
    case 0x9: fixed = 16; break;
    case 0xa: case 0xc: case 0xe: width = 1; break;
    case 0xb: case 0xd: case 0xf: width = 4; break;
    default: return 0;
    }
    std::size_t n = 1 + fixed;
    if (width > 0) {
        if (at + 1 + width > m.size()) return 0;
        const std::size_t len = width == 1 ? m[at + 1] : be32(&m[at + 1]);
        n = 1 + width + len;
    }
    return at + n <= m.size() ? n : 0;
}

}  // namespace

void amqp_encode_message(std::string& out, std::span<const std::uint8_t> body, bool durable) {
    if (durable) {
        // header: list8 of one field, durable = true
        static constexpr char header[] = {0x00, 0x53, 0x70, static_cast<char>(0xc0), 0x02, 0x01, 0x41};
        out.append(header, sizeof header);
    }
    out.push_back(0x00);
    out.push_back(0x53);
    out.push_back(0x75);
    if (body.size() <= 255) {
        out.push_back(static_cast<char>(vbin8));
        out.push_back(static_cast<char>(body.size()));
    } else {
        out.push_back(static_cast<char>(vbin32));
        const auto n = static_cast<std::uint32_t>(body.size());
        for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>(n >> s));
    }
    out.append(reinterpret_cast<const char*>(body.data()), body.size());
}

std::optional<std::span<const std::uint8_t>> amqp_message_body(std::span<const std::uint8_t> m) {
    std::size_t at = 0;
    while (at < m.size()) {
        // A section: 0x00, a descriptor (ulong code, or a symbol), the value.
        if (m[at] != described || at + 1 >= m.size()) return std::nullopt;
        const std::size_t d = value_size(m, at + 1);
        if (d == 0) return std::nullopt;
        std::uint64_t code = ~std::uint64_t{0};
        if (m[at + 1] == smallulong) code = m[at + 2];
        else if (m[at + 1] == ulong_) code = (std::uint64_t{be32(&m[at + 2])} << 32) | be32(&m[at + 6]);
        else if (m[at + 1] != sym8 && m[at + 1] != sym32) return std::nullopt;
        const std::size_t v = at + 1 + d;
        const std::size_t n = value_size(m, v);
        if (n == 0) return std::nullopt;
        if ((code == section_data || code == section_value) && (m[v] == vbin8 || m[v] == vbin32)) {
            const std::size_t width = m[v] == vbin8 ? 1 : 4;
            return m.subspan(v + 1 + width, n - 1 - width);
        }
        at = v + n;
    }
    return std::nullopt;
}

// ---- framing ----------------------------------------------------------------------------------

namespace {

constexpr std::string_view sasl_header{"AMQP\x03\x01\x00\x00", 8};
constexpr std::string_view amqp_header{"AMQP\x00\x01\x00\x00", 8};
constexpr std::uint8_t frame_amqp = 0x00, frame_sasl = 0x01;
// Performatives (part 2) and SASL frames (part 5), by descriptor code.
constexpr std::uint64_t p_open = 0x10, p_begin = 0x11, p_attach = 0x12, p_flow = 0x13, p_transfer = 0x14,
                        p_disposition = 0x15, p_detach = 0x16, p_end = 0x17, p_close = 0x18;
constexpr std::uint64_t sasl_mechanisms = 0x40, sasl_init = 0x41, sasl_outcome = 0x44;
constexpr std::uint64_t error_code = 0x1d, source_code = 0x28, target_code = 0x29;
constexpr std::uint64_t state_accepted = 0x24, state_rejected = 0x25, state_released = 0x26, state_modified = 0x27;
constexpr std::uint32_t max_frame_in = 64u << 20;   // a bigger frame from the broker fails the link
constexpr std::uint32_t window = 0x7FFFFFFF;         // our session windows (Proton's)

// Appends AMQP encodings; lists are list32 with size and count filled in by end_list().
class writer {
public:
    explicit writer(std::string& o) : o_(o) {}
    std::size_t frame(std::uint8_t type) {
        const std::size_t at = o_.size();
        o_.append("\0\0\0\0\x02", 5);
        o_.push_back(static_cast<char>(type));
        o_.append("\0\0", 2);   // channel 0
        return at;
    }
    void end_frame(std::size_t at) { put32(at, static_cast<std::uint32_t>(o_.size() - at)); }
    // A described list (performative, terminus, outcome): returns what end_list() needs.
    std::size_t list(std::uint64_t code) {
        o_.append("\x00\x53", 2);
        o_.push_back(static_cast<char>(code));
        o_.push_back(static_cast<char>(0xd0));
        const std::size_t at = o_.size();
        o_.append(8, '\0');
        return at;
    }
    void end_list(std::size_t at, std::uint32_t count) {
        put32(at, static_cast<std::uint32_t>(o_.size() - at - 4));
        put32(at + 4, count);
    }
    void null() { o_.push_back(0x40); }
    void boolean(bool b) { o_.push_back(b ? 0x41 : 0x42); }
    void ubyte(std::uint8_t v) { o_.push_back(0x50), o_.push_back(static_cast<char>(v)); }
    void ushort(std::uint16_t v) { o_.push_back(0x60), o_.push_back(static_cast<char>(v >> 8)), o_.push_back(static_cast<char>(v)); }
    void uint(std::uint32_t v) {
        if (v == 0) return o_.push_back(0x43);
        if (v < 256) return o_.push_back(0x52), o_.push_back(static_cast<char>(v));
        o_.push_back(0x70);
        for (int s = 24; s >= 0; s -= 8) o_.push_back(static_cast<char>(v >> s));
    }
    void ulong0() { o_.push_back(0x44); }
    void variable(std::uint8_t small, std::string_view v) {
        if (v.size() <= 255) {
            o_.push_back(static_cast<char>(small));
            o_.push_back(static_cast<char>(v.size()));
        } else {
            o_.push_back(static_cast<char>(small + 0x10));
            for (int s = 24; s >= 0; s -= 8) o_.push_back(static_cast<char>(v.size() >> s));
        }
        o_.append(v);
    }
    void string(std::string_view v) { variable(0xa1, v); }
    void symbol(std::string_view v) { variable(0xa3, v); }
    void binary(std::string_view v) { variable(0xa0, v); }
    void raw(std::string_view v) { o_.append(v); }
    std::size_t size() const noexcept { return o_.size(); }

private:
    void put32(std::size_t at, std::uint32_t v) {
        for (int i = 0; i < 4; ++i) o_[at + i] = static_cast<char>(v >> (24 - 8 * i));
    }
    std::string& o_;
};

// The fields of a described list, read in order; fields past the list's count read as null.
// Any malformed encoding makes ok false (and every later read null).
class fields {
public:
    // `m[at]` is a described list (0x00, descriptor, list); code is its descriptor's ulong.
    fields(std::span<const std::uint8_t> m, std::size_t at) : m_(m) {
        const std::size_t total = value_size(m, at);
        if (total == 0 || m[at] != described) {
            fail();
            return;
        }
        std::size_t p = at + 1;
        if (m[p] == smallulong) code_ = m[p + 1], p += 2;
        else if (m[p] == ulong_) code_ = (std::uint64_t{be32(&m[p + 1])} << 32) | be32(&m[p + 5]), p += 9;
        else {
            fail();
            return;
        }
        // value_size() checked that the list's bytes are there; its size must hold the count.
        const std::uint8_t c = m[p];
        if (c == 0x45) left_ = 0, p += 1;
        else if (c == 0xc0 && m[p + 1] >= 1) left_ = m[p + 2], p += 3;
        else if (c == 0xd0 && be32(&m[p + 1]) >= 4) left_ = be32(&m[p + 5]), p += 9;
        else {
            fail();
            return;
        }
        at_ = p;
        end_ = at + total;
    }
    bool ok() const noexcept { return ok_; }
    std::uint64_t code() const noexcept { return code_; }
    std::size_t end() const noexcept { return end_; }   // where the list's bytes end

    // The next field's offset (or npos when absent, null or malformed), consumed.
    std::size_t next() {
        if (!ok_ || left_ == 0) return npos;
        --left_;
        const std::size_t n = value_size(m_, at_);
        if (n == 0 || at_ + n > end_) return fail(), npos;
        const std::size_t v = at_;
        at_ += n;
        return m_[v] == 0x40 ? npos : v;
    }
    void skip(int n = 1) {
        while (n-- > 0) next();
    }
    std::optional<std::uint64_t> number() {
        const std::size_t v = next();
        if (v == npos) return std::nullopt;
        switch (m_[v]) {
        case 0x43: case 0x44: return 0;
        case 0x50: case 0x52: case 0x53: return m_[v + 1];
        case 0x60: return (std::uint64_t{m_[v + 1]} << 8) | m_[v + 2];
        case 0x70: return be32(&m_[v + 1]);
        case 0x80: return (std::uint64_t{be32(&m_[v + 1])} << 32) | be32(&m_[v + 5]);
        default: return std::nullopt;
        }
    }
    bool flag(bool otherwise = false) {
        const std::size_t v = next();
        if (v == npos) return otherwise;
        if (m_[v] == 0x41) return true;
        if (m_[v] == 0x42) return false;
        if (m_[v] == 0x56) return m_[v + 1] != 0;
        return otherwise;
    }
    std::string_view text() {
        const std::size_t v = next();
        if (v == npos) return {};
        const std::uint8_t c = m_[v];
        const std::size_t width = (c == 0xa1 || c == 0xa3) ? 1 : (c == 0xb1 || c == 0xb3) ? 4 : 0;
        if (width == 0) return {};
        const std::size_t n = width == 1 ? m_[v + 1] : be32(&m_[v + 1]);
        return {reinterpret_cast<const char*>(&m_[v + 1 + width]), n};
    }
    // A described list as the next field (terminus, delivery state, error): its fields.
    std::optional<fields> nested() {
        const std::size_t v = next();
        if (v == npos) return std::nullopt;
        fields f(m_, v);
        if (!f.ok()) return std::nullopt;
        return f;
    }

private:
    static constexpr std::size_t npos = ~std::size_t{0};
    void fail() { ok_ = false, left_ = 0; }
    std::span<const std::uint8_t> m_;
    std::size_t at_ = 0, end_ = 0;
    std::uint32_t left_ = 0;
    std::uint64_t code_ = ~std::uint64_t{0};
    bool ok_ = true;
};

// "what: condition description" from an error (described list 0x1d), or `what` alone.
std::string describe(std::optional<fields> error, const char* what) {
    std::string s = what;
    if (error && error->code() == error_code) {
        const auto condition = error->text();
        const auto description = error->text();
        s += ": ";
        s += condition;
        if (!description.empty()) (s += " ") += description;
    }
    return s;
}

}  // namespace

// ---- the connection -------------------------------------------------------------------------

struct amqp_endpoint::impl {
    impl(amqp_link_config c, amqp_events& e) : cfg(std::move(c)), ev(e) {}

    enum class stage : std::uint8_t { idle, sasl_header, sasl, amqp_header, open, done };

    amqp_link_config cfg;
    amqp_events& ev;
    stage at = stage::idle;
    bool closing = false;
    bool failed = false;
    std::string out;        // encoded, not yet taken
    std::string pending;    // the start of a frame that has not arrived whole
    // The session: transfer ids (one per transfer frame) and the broker's incoming window.
    std::uint32_t next_outgoing_id = 0;
    std::uint32_t remote_incoming_limit = 0;   // next_outgoing_id may reach this
    std::uint32_t next_incoming_id = 0;
    std::uint32_t remote_max_frame = 0xFFFFFFFF;
    // The link.
    bool attached = false;
    std::uint32_t delivery_count = 0;   // sender: deliveries sent; receiver: received (+ the initial count)
    std::uint32_t credit = 0;           // sender: the broker's credit left; receiver: ours left
    std::uint32_t next_delivery_id = 0;
    std::uint64_t next_tag = 0;
    bool flow_due = false;              // receiver: our credit was topped up, not yet told
    bool ranging = false;               // receiver: accepted deliveries first..last not yet told
    std::uint32_t range_first = 0, range_last = 0;
    std::string partial;                // receiver: a delivery over several transfer frames
    bool partial_settled = false;
    std::uint32_t partial_id = 0;
    bool in_partial = false;
    std::string message;                // send(): the encoded message
    // Reported once per feed(), after its frames were processed.
    bool ready = false;
    bool writable = false;
    std::uint64_t accepted = 0;

    void fail(std::string why) {
        if (failed || closing) return;
        failed = true;
        at = stage::done;
        ev.amqp_failed(std::move(why));
    }

    // ---- what we write

    void write_sasl_init() {
        writer w(out);
        const auto f = w.frame(frame_sasl);
        const auto l = w.list(sasl_init);
        if (cfg.user.empty()) {
            w.symbol("ANONYMOUS");
            w.binary("anonymous");
        } else {
            w.symbol("PLAIN");
            std::string response(1, '\0');
            response += cfg.user;
            response += '\0';
            response += cfg.password;
            w.binary(response);
        }
        w.end_list(l, 2);
        w.end_frame(f);
    }

    void write_terminus(writer& w, std::uint64_t code, bool ours) {
        // address, durable, expiry-policy, timeout, dynamic
        const auto l = w.list(code);
        if (ours) w.string(cfg.address); else w.null();
        w.uint(ours && cfg.durable ? 2 : 0);   // unsettled-state: RabbitMQ declares a durable queue
        w.null();
        w.uint(0);
        w.boolean(false);
        w.end_list(l, 5);
    }

    void write_open_begin_attach() {
        writer w(out);
        w.raw(amqp_header);
        auto f = w.frame(frame_amqp);
        auto l = w.list(p_open);   // container-id, hostname, max-frame-size, channel-max
        w.string(cfg.container_id);
        if (cfg.hostname.empty()) w.null(); else w.string(cfg.hostname);
        w.null();
        w.ushort(0x7FFF);
        w.end_list(l, 4);
        w.end_frame(f);
        f = w.frame(frame_amqp);
        l = w.list(p_begin);   // remote-channel, next-outgoing-id, incoming-window, outgoing-window
        w.null();
        w.uint(next_outgoing_id);
        w.uint(window);
        w.uint(window);
        w.end_list(l, 4);
        w.end_frame(f);
        f = w.frame(frame_amqp);
        // name, handle, role, snd-settle-mode, rcv-settle-mode, source, target, unsettled,
        // incomplete-unsettled, initial-delivery-count, max-message-size
        l = w.list(p_attach);
        w.string(cfg.link_name);
        w.uint(0);
        w.boolean(!cfg.sender);                  // role: receiver = true
        w.ubyte(cfg.presettled ? 1 : 0);         // settled / unsettled
        w.ubyte(0);                              // first
        write_terminus(w, source_code, !cfg.sender);
        write_terminus(w, target_code, cfg.sender);
        w.null();
        w.boolean(false);
        w.uint(0);
        w.ulong0();
        w.end_list(l, 11);
        w.end_frame(f);
    }

    void write_flow() {
        writer w(out);
        const auto f = w.frame(frame_amqp);
        // next-incoming-id, incoming-window, next-outgoing-id, outgoing-window, handle,
        // delivery-count, link-credit, available, drain
        const auto l = w.list(p_flow);
        w.uint(next_incoming_id);
        w.uint(window);
        w.uint(next_outgoing_id);
        w.uint(window);
        w.uint(0);
        w.uint(delivery_count);
        w.uint(credit);
        w.null();
        w.boolean(false);
        w.end_list(l, 9);
        w.end_frame(f);
    }

    // Settled, accepted: deliveries first..last (receiver), or the sender settling what the
    // broker accepted without settling.
    void write_disposition(bool receiver, std::uint32_t first, std::uint32_t last) {
        writer w(out);
        const auto f = w.frame(frame_amqp);
        const auto l = w.list(p_disposition);   // role, first, last, settled, state
        w.boolean(receiver);
        w.uint(first);
        w.uint(last);
        w.boolean(true);
        const auto st = w.list(state_accepted);
        w.end_list(st, 0);
        w.end_list(l, 5);
        w.end_frame(f);
    }

    // What the frames of one feed() decided, written once.
    void flush_link_state() {
        if (ranging) {
            write_disposition(true, range_first, range_last);
            ranging = false;
        }
        if (flow_due) {
            write_flow();
            flow_due = false;
        }
    }

    // ---- what we read

    // Processes the whole frames at the start of `in`; returns the bytes used.
    std::size_t process(std::span<const std::uint8_t> in) {
        std::size_t used = 0;
        while (!failed && !closing && at != stage::done) {
            const auto rest = in.subspan(used);
            if (at == stage::sasl_header || at == stage::amqp_header) {
                if (rest.size() < 8) break;
                const std::string_view got(reinterpret_cast<const char*>(rest.data()), 8);
                const auto want = at == stage::sasl_header ? sasl_header : amqp_header;
                if (got != want) {
                    fail(std::string("transport error: the broker answered with another protocol header (") +
                         (got.starts_with("AMQP") ? "AMQP " + std::to_string(int(rest[4])) : std::string("not AMQP")) + ")");
                    break;
                }
                used += 8;
                at = at == stage::sasl_header ? stage::sasl : stage::open;
                continue;
            }
            if (rest.size() < 8) break;
            const std::uint32_t size = be32(rest.data());
            const std::size_t doff = std::size_t{rest[4]} * 4;
            if (size < 8 || doff < 8 || doff > size || size > max_frame_in) {
                fail("transport error: a malformed frame header");
                break;
            }
            if (rest.size() < size) break;
            const auto frame = rest.first(size);
            used += size;
            if (size > doff) on_frame(frame, doff);
            // else: an empty frame (heart-beat)
        }
        return used;
    }

    void on_frame(std::span<const std::uint8_t> frame, std::size_t doff) {
        fields f(frame, doff);
        if (!f.ok()) return fail("transport error: a frame that does not decode");
        const std::size_t payload_at = f.end();
        if (at == stage::sasl) return on_sasl(f);
        switch (f.code()) {
        case p_open:
            f.skip(2);   // container-id, hostname
            if (auto n = f.number(); n && *n >= 512) remote_max_frame = static_cast<std::uint32_t>(*n);
            return;
        case p_begin: {
            f.skip();   // remote-channel
            next_incoming_id = static_cast<std::uint32_t>(f.number().value_or(0));
            remote_incoming_limit = next_outgoing_id + static_cast<std::uint32_t>(f.number().value_or(0));
            return;
        }
        case p_attach: return on_attach(f);
        case p_flow: return on_flow(f);
        case p_transfer: return on_transfer(f, frame.subspan(payload_at));
        case p_disposition: return on_disposition(f);
        case p_detach: f.skip(2); return fail(describe(f.nested(), "the broker detached the link"));
        case p_end: return fail(describe(f.nested(), "the broker ended the session"));
        case p_close: return fail(describe(f.nested(), "the broker closed the connection"));
        default: return fail("transport error: an unknown performative");
        }
    }

    void on_sasl(fields& f) {
        if (f.code() == sasl_mechanisms) return write_sasl_init();
        if (f.code() != sasl_outcome) return fail("transport error: an unexpected SASL frame");
        const auto code = f.number();
        if (!code || *code != 0)
            return fail("transport error: amqp:unauthorized-access SASL authentication failed (outcome " +
                        std::to_string(code.value_or(99)) + ")");
        at = stage::amqp_header;
        write_open_begin_attach();
    }

    void on_attach(fields& f) {
        f.skip(5);   // name, handle, role, snd-settle-mode, rcv-settle-mode
        const auto source = f.nested();
        const auto target = f.nested();
        // A refused attach carries no terminus on our side's node; the detach with the reason follows.
        if (!(cfg.sender ? target : source)) return;
        f.skip(2);   // unsettled, incomplete-unsettled
        const auto initial = f.number();
        attached = true;
        ready = true;
        if (!cfg.sender) {
            delivery_count = static_cast<std::uint32_t>(initial.value_or(0));
            credit = cfg.credit;
            write_flow();
        }
    }

    void on_flow(fields& f) {
        const auto next_in = f.number();
        const auto in_window = f.number();
        f.skip(2);   // next-outgoing-id, outgoing-window
        remote_incoming_limit = static_cast<std::uint32_t>(next_in.value_or(0) + in_window.value_or(0));
        const auto handle = f.number();
        if (cfg.sender) {
            if (handle) {
                // credit = the receiver's delivery-count + its link-credit - ours
                const auto count = static_cast<std::uint32_t>(f.number().value_or(0));
                const auto link_credit = static_cast<std::uint32_t>(f.number().value_or(0));
                const std::uint32_t limit = count + link_credit;
                credit = static_cast<std::int32_t>(limit - delivery_count) > 0 ? limit - delivery_count : 0;
            }
            writable = true;
        }
    }

    void on_transfer(fields& f, std::span<const std::uint8_t> payload) {
        ++next_incoming_id;
        if (cfg.sender) return fail("transport error: a transfer on a sender link");
        f.skip();   // handle
        const auto id = f.number();
        f.skip(2);   // delivery-tag, message-format
        const bool settled = f.flag();
        const bool more = f.flag();
        f.skip(3);   // rcv-settle-mode, state, resume
        const bool aborted = f.flag();
        if (!in_partial) {
            if (!id) return fail("transport error: a transfer without a delivery-id");
            partial_id = static_cast<std::uint32_t>(*id);
            partial_settled = settled;
        } else {
            partial_settled = partial_settled || settled;
        }
        if (aborted) {
            in_partial = false;
            partial.clear();
            return;
        }
        std::span<const std::uint8_t> body_bytes = payload;
        if (more || in_partial) {
            partial.append(reinterpret_cast<const char*>(payload.data()), payload.size());
            in_partial = more;
            if (more) return;
            body_bytes = std::span(reinterpret_cast<const std::uint8_t*>(partial.data()), partial.size());
        }
        on_message(body_bytes);
        if (!in_partial) partial.clear();
    }

    void on_message(std::span<const std::uint8_t> m) {
        ++delivery_count;
        if (credit > 0) --credit;
        if (!partial_settled) {
            // Consecutive deliveries are accepted together: one disposition range per feed().
            if (ranging && partial_id == range_last + 1) {
                range_last = partial_id;
            } else {
                if (ranging) write_disposition(true, range_first, range_last);
                ranging = true;
                range_first = range_last = partial_id;
            }
        }
        // Top the credit up at half: one flow frame per half window, not one per message.
        if (credit == 0 || credit < cfg.credit / 2) {
            credit = cfg.credit;
            flow_due = true;
        }
        const auto body = amqp_message_body(m);
        if (!body) return fail("a delivery without a data section");
        ev.amqp_message(*body);
    }

    void on_disposition(fields& f) {
        if (!cfg.sender) return;   // the broker settling what we accepted: nothing to do
        f.skip();                  // role
        const auto first = f.number();
        if (!first) return fail("transport error: a disposition without first");
        const auto last = f.number().value_or(*first);
        const bool settled = f.flag();
        auto state = f.nested();
        if (cfg.presettled) return;   // nothing is awaited
        const std::uint64_t code = state ? state->code() : 0;
        if (code == state_accepted || (!state && settled)) {
            accepted += static_cast<std::uint32_t>(last - *first) + 1;
            if (!settled) write_disposition(false, static_cast<std::uint32_t>(*first), static_cast<std::uint32_t>(last));
            return;
        }
        if (!state) return;   // a state without settlement (received): wait for the outcome
        const char* name = code == state_rejected   ? "rejected"
                           : code == state_released ? "released"
                           : code == state_modified ? "modified"
                                                    : nullptr;
        if (!name) return;   // received, or another non-terminal state
        std::string why = std::string("a message was ") + name;
        if (code == state_rejected) why = describe(state->nested(), why.c_str());
        fail(why);
    }
};

amqp_endpoint::amqp_endpoint(amqp_link_config cfg, amqp_events& events)
    : p_(std::make_unique<impl>(std::move(cfg), events)) {}

amqp_endpoint::~amqp_endpoint() = default;

void amqp_endpoint::open() {
    impl& p = *p_;
    if (p.at != impl::stage::idle) return;
    // SASL first (ANONYMOUS, or PLAIN with the credentials), then the AMQP header, open, begin
    // and attach, once the outcome arrives.
    p.out.append(sasl_header);
    p.at = impl::stage::sasl_header;
}

void amqp_endpoint::feed(std::span<const std::uint8_t> in) {
    impl& p = *p_;
    if (p.at == impl::stage::idle || p.at == impl::stage::done || p.closing) return;
    if (p.pending.empty()) {
        const std::size_t used = p.process(in);
        if (!p.failed && used < in.size()) p.pending.assign(reinterpret_cast<const char*>(in.data() + used), in.size() - used);
    } else {
        p.pending.append(reinterpret_cast<const char*>(in.data()), in.size());
        const std::size_t used =
            p.process(std::span(reinterpret_cast<const std::uint8_t*>(p.pending.data()), p.pending.size()));
        p.pending.erase(0, used);
    }
    if (p.failed || p.closing) return;
    p.flush_link_state();
    // Callbacks last, once: they may send (pump) and must not re-enter the frame loop.
    if (std::exchange(p.ready, false)) p.ev.amqp_ready();
    if (p.failed) return;
    if (const std::uint64_t n = std::exchange(p.accepted, 0); n > 0) p.ev.amqp_settled(n);
    if (p.failed) return;
    if (std::exchange(p.writable, false)) p.ev.amqp_writable();
}

std::uint32_t amqp_endpoint::sendable() const {
    const impl& p = *p_;
    if (!p.attached || !p.cfg.sender || p.failed || p.closing) return 0;
    const std::uint32_t session = p.remote_incoming_limit - p.next_outgoing_id;
    return std::min(p.credit, static_cast<std::int32_t>(session) > 0 ? session : 0u);
}

void amqp_endpoint::send(std::span<const std::uint8_t> body) {
    impl& p = *p_;
    if (!p.attached || !p.cfg.sender || p.failed || p.closing) return;
    p.message.clear();
    amqp_encode_message(p.message, body, p.cfg.durable);
    const std::size_t before = p.out.size();
    writer w(p.out);
    char tag[8];
    const std::uint64_t t = p.next_tag++;
    std::memcpy(tag, &t, sizeof tag);
    // The message in transfer frames within the broker's max-frame-size (one, for the bench's sizes).
    const std::size_t room = p.remote_max_frame > 256 + 64 ? p.remote_max_frame - 64 : 256;
    std::string_view rest = p.message;
    bool first = true;
    do {
        const std::string_view chunk = rest.substr(0, room);
        rest.remove_prefix(chunk.size());
        const bool more = !rest.empty();
        const auto f = w.frame(frame_amqp);
        // handle, delivery-id, delivery-tag, message-format, settled, more
        const auto l = w.list(p_transfer);
        w.uint(0);
        std::uint32_t count = 1;
        if (first) {
            w.uint(p.next_delivery_id);
            w.binary(std::string_view(tag, sizeof tag));
            w.uint(0);
            count = 4;
        } else {
            w.null(), w.null(), w.null();
        }
        if (p.cfg.presettled || more) {
            if (p.cfg.presettled) w.boolean(true); else w.null();
            count = 5;
        }
        if (more) w.boolean(true), count = 6;
        w.end_list(l, count);
        w.raw(chunk);
        w.end_frame(f);
        ++p.next_outgoing_id;
        first = false;
    } while (!rest.empty());
    ++p.next_delivery_id;
    ++p.delivery_count;
    if (p.credit > 0) --p.credit;
    unflushed_ += p.out.size() - before;
}

void amqp_endpoint::take_output(std::string& out) {
    impl& p = *p_;
    unflushed_ = 0;
    if (p.out.empty()) return;
    if (out.empty()) out.swap(p.out);
    else out.append(p.out);
    p.out.clear();
}

void amqp_endpoint::close() {
    impl& p = *p_;
    if (p.at == impl::stage::idle || p.closing) return;
    if (p.at == impl::stage::open && !p.failed) p.flush_link_state();
    p.closing = true;
    writer w(p.out);
    const auto f = w.frame(p.at == impl::stage::sasl ? frame_sasl : frame_amqp);
    if (p.at == impl::stage::open || p.at == impl::stage::amqp_header) {
        const auto l = w.list(p_close);
        w.end_list(l, 0);
        w.end_frame(f);
    } else {
        // Before open: nothing to close politely; the socket's close ends it.
        p.out.resize(f);
    }
}

}  // namespace sb::bench
