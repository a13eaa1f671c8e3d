// tests/bench/amqp_wire.cpp — one AMQP 1.0 link on Proton C's connection driver (no Proton
// container, no proactor: the bench's peer owns the socket and its event loop).
//
// Messages are encoded and decoded here, not with pn_message: the bench sends one data section
// (and a header when durable) and reads the data section back, so a message costs a few byte
// copies on the client and the broker's cost is what is measured.
#include "tests/bench/amqp_wire.hpp"

#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

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

// ---- the connection -------------------------------------------------------------------------

struct amqp_endpoint::impl {
    impl(amqp_link_config c, amqp_events& e) : cfg(std::move(c)), ev(e) {}
    ~impl() {
        if (initialised) pn_connection_driver_destroy(&driver);
    }

    amqp_link_config cfg;
    amqp_events& ev;
    pn_connection_driver_t driver{};
    bool initialised = false;
    pn_link_t* link = nullptr;
    bool closing = false;
    bool failed = false;
    std::uint64_t next_tag = 0;
    std::string message;              // send(): the encoded message
    std::vector<char> received;       // a delivery's bytes
    // Reported once per feed(), after its frames were processed.
    bool ready = false;
    bool writable = false;
    std::uint64_t accepted = 0;

    void fail(std::string why) {
        if (failed || closing) return;
        failed = true;
        ev.amqp_failed(std::move(why));
    }

    static std::string describe(pn_condition_t* c, const char* what) {
        std::string s = what;
        if (c && pn_condition_is_set(c)) {
            s += ": ";
            s += pn_condition_get_name(c) ? pn_condition_get_name(c) : "";
            if (const char* d = pn_condition_get_description(c)) (s += " ") += d;
        }
        return s;
    }

    void on_delivery(pn_delivery_t* d) {
        if (cfg.sender) {
            if (!pn_delivery_updated(d)) return;
            const std::uint64_t state = pn_delivery_remote_state(d);
            if (state == PN_ACCEPTED || (state == 0 && pn_delivery_settled(d))) {
                ++accepted;
            } else if (state != 0) {
                const char* name = state == PN_REJECTED   ? "rejected"
                                   : state == PN_RELEASED ? "released"
                                   : state == PN_MODIFIED ? "modified"
                                                          : "an unexpected outcome";
                std::string why = std::string("a message was ") + name;
                if (state == PN_REJECTED) why = describe(pn_disposition_condition(pn_delivery_remote(d)), why.c_str());
                return fail(why);
            } else {
                return;  // a state without settlement (received): wait for the outcome
            }
            pn_delivery_settle(d);
            return;
        }
        // Receiver: whole messages only, in order (the link's current delivery).
        pn_link_t* l = pn_delivery_link(d);
        if (d != pn_link_current(l) || !pn_delivery_readable(d) || pn_delivery_partial(d)) return;
        const std::size_t n = pn_delivery_pending(d);
        received.resize(n);
        if (n > 0 && pn_link_recv(l, received.data(), n) != static_cast<ssize_t>(n)) return fail("short read of a delivery");
        pn_link_advance(l);
        if (!pn_delivery_settled(d)) pn_delivery_update(d, PN_ACCEPTED);
        pn_delivery_settle(d);
        const auto body = amqp_message_body(std::span<const std::uint8_t>(
            reinterpret_cast<const std::uint8_t*>(received.data()), received.size()));
        if (!body) return fail("a delivery without a data section");
        // Top the credit up at half: one flow frame per half window, not one per message.
        const int credit = pn_link_credit(l);
        if (credit < static_cast<int>(cfg.credit / 2)) pn_link_flow(l, static_cast<int>(cfg.credit) - credit);
        ev.amqp_message(*body);
    }

    void dispatch() {
        while (pn_event_t* e = pn_connection_driver_next_event(&driver)) {
            if (failed) continue;  // drain the collector; nothing more is reported
            switch (pn_event_type(e)) {
            case PN_LINK_REMOTE_OPEN: {
                pn_link_t* l = pn_event_link(e);
                // A refused attach carries no terminus; the detach with the reason follows.
                pn_terminus_t* t = cfg.sender ? pn_link_remote_target(l) : pn_link_remote_source(l);
                if (pn_terminus_get_type(t) == PN_UNSPECIFIED) break;
                if (!cfg.sender) pn_link_flow(l, static_cast<int>(cfg.credit));
                ready = true;
                break;
            }
            case PN_LINK_FLOW:
                if (cfg.sender) writable = true;
                break;
            case PN_DELIVERY:
                on_delivery(pn_event_delivery(e));
                break;
            case PN_LINK_REMOTE_CLOSE:
            case PN_LINK_REMOTE_DETACH:
                fail(describe(pn_link_remote_condition(pn_event_link(e)), "the broker detached the link"));
                break;
            case PN_SESSION_REMOTE_CLOSE:
                fail(describe(pn_session_remote_condition(pn_event_session(e)), "the broker ended the session"));
                break;
            case PN_CONNECTION_REMOTE_CLOSE:
                fail(describe(pn_connection_remote_condition(pn_event_connection(e)), "the broker closed the connection"));
                break;
            case PN_TRANSPORT_ERROR:
                fail(describe(pn_transport_condition(pn_event_transport(e)), "transport error"));
                break;
            default:
                break;
            }
        }
    }
};

amqp_endpoint::amqp_endpoint(amqp_link_config cfg, amqp_events& events)
    : p_(std::make_unique<impl>(std::move(cfg), events)) {}

amqp_endpoint::~amqp_endpoint() = default;

void amqp_endpoint::open() {
    impl& p = *p_;
    if (pn_connection_driver_init(&p.driver, nullptr, nullptr) != 0) return p.fail("cannot create a Proton connection");
    p.initialised = true;
    pn_connection_t* c = p.driver.connection;
    pn_sasl_t* sasl = pn_sasl(p.driver.transport);
    if (p.cfg.user.empty()) {
        pn_sasl_allowed_mechs(sasl, "ANONYMOUS");
    } else {
        pn_sasl_allowed_mechs(sasl, "PLAIN");
        pn_sasl_set_allow_insecure_mechs(sasl, true);  // loopback, no TLS
        pn_connection_set_user(c, p.cfg.user.c_str());
        pn_connection_set_password(c, p.cfg.password.c_str());
    }
    pn_connection_set_container(c, p.cfg.container_id.c_str());
    if (!p.cfg.hostname.empty()) pn_connection_set_hostname(c, p.cfg.hostname.c_str());
    pn_connection_open(c);
    pn_session_t* s = pn_session(c);
    pn_session_open(s);
    p.link = p.cfg.sender ? pn_sender(s, p.cfg.link_name.c_str()) : pn_receiver(s, p.cfg.link_name.c_str());
    pn_terminus_t* node = p.cfg.sender ? pn_link_target(p.link) : pn_link_source(p.link);
    pn_terminus_set_address(node, p.cfg.address.c_str());
    if (p.cfg.durable) pn_terminus_set_durability(node, PN_DELIVERIES);
    pn_link_set_snd_settle_mode(p.link, p.cfg.presettled ? PN_SND_SETTLED : PN_SND_UNSETTLED);
    pn_link_set_rcv_settle_mode(p.link, PN_RCV_FIRST);
    pn_link_open(p.link);
}

void amqp_endpoint::feed(std::span<const std::uint8_t> in) {
    impl& p = *p_;
    if (!p.initialised) return;
    while (!in.empty() && !p.failed) {
        const pn_rwbytes_t buf = pn_connection_driver_read_buffer(&p.driver);
        if (buf.size == 0) {
            p.dispatch();
            if (!p.failed) p.fail("the AMQP transport takes no more input");
            break;
        }
        const std::size_t n = std::min(buf.size, in.size());
        std::memcpy(buf.start, in.data(), n);
        pn_connection_driver_read_done(&p.driver, n);
        in = in.subspan(n);
        p.dispatch();
    }
    if (p.failed) return;
    // Callbacks last, once: they may send (pump) and must not re-enter the dispatch.
    if (std::exchange(p.ready, false)) p.ev.amqp_ready();
    if (p.failed) return;
    if (const std::uint64_t n = std::exchange(p.accepted, 0); n > 0) p.ev.amqp_settled(n);
    if (p.failed) return;
    if (std::exchange(p.writable, false)) p.ev.amqp_writable();
}

std::uint32_t amqp_endpoint::sendable() const {
    if (!p_->link || p_->failed) return 0;
    // pn_link_advance takes a credit for each message, sent or still queued.
    return static_cast<std::uint32_t>(std::max(0, pn_link_credit(p_->link)));
}

void amqp_endpoint::send(std::span<const std::uint8_t> body) {
    impl& p = *p_;
    if (!p.link || p.failed) return;
    p.message.clear();
    amqp_encode_message(p.message, body, p.cfg.durable);
    char tag[8];
    const std::uint64_t t = p.next_tag++;
    std::memcpy(tag, &t, sizeof tag);
    pn_delivery_t* d = pn_delivery(p.link, pn_dtag(tag, sizeof tag));
    pn_link_send(p.link, p.message.data(), p.message.size());
    pn_link_advance(p.link);
    if (p.cfg.presettled) pn_delivery_settle(d);
    unflushed_ += p.message.size() + 32;  // + the transfer performative
}

void amqp_endpoint::take_output(std::string& out) {
    impl& p = *p_;
    unflushed_ = 0;
    if (!p.initialised) return;
    for (;;) {
        const pn_bytes_t b = pn_connection_driver_write_buffer(&p.driver);
        if (b.size == 0) break;
        out.append(b.start, b.size);
        pn_connection_driver_write_done(&p.driver, b.size);
    }
}

void amqp_endpoint::close() {
    impl& p = *p_;
    if (!p.initialised || p.closing) return;
    p.closing = true;
    pn_connection_close(p.driver.connection);
}

}  // namespace sb::bench
