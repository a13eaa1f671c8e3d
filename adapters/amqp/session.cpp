// adapters/amqp/session.cpp — AMQP 1.0 connection state machine on Proton's connection_driver.
//
// Runs in an engine::connection (adapters/engine/connection.hpp), which owns the mechanics: input
// and output buffers, deadlines, flow control and closing. The AMQP frames themselves are
// Proton's: in the `amqp` stage every byte read goes into the connection_driver (read_buffer /
// read_done), its events are dispatched to this session (a proton::messaging_handler), and what
// it writes (write_buffer / write_done) is moved into out(). No Proton container, no second
// loop: Proton never sees a socket or a thread.
//
// Before Proton: the protocol header and SASL (adapters/amqp/sasl.hpp) are ours, so that
// credentials go to the broker's asynchronous authenticator.
//
// Links:
//   client sender  -> our receiver (incoming): each message is published to the kernel; the
//                     delivery is accepted once the kernel accepted it (after the store for a
//                     persistent message), and the link's credit is refilled then.
//   client receiver -> our sender (outgoing): a kernel consumer with link credit
//                     (core::credit_mode::link): the client's credit is granted to the kernel as
//                     it grows, a drain drains the kernel consumer; each disposition settles the
//                     kernel delivery with its outcome.
#include "adapters/amqp/session.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <vector>

#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/link.h>
#include <proton/terminus.h>
#include <proton/transport.h>

#include <proton/binary.hpp>
#include <proton/connection.hpp>
#include <proton/connection_options.hpp>
#include <proton/delivery.hpp>
#include <proton/delivery_mode.hpp>
#include <proton/error_condition.hpp>
#include <proton/io/connection_driver.hpp>
#include <proton/link.hpp>
#include <proton/message.hpp>
#include <proton/messaging_handler.hpp>
#include <proton/receiver.hpp>
#include <proton/receiver_options.hpp>
#include <proton/sender.hpp>
#include <proton/sender_options.hpp>
#include <proton/session.hpp>
#include <proton/source.hpp>
#include <proton/symbol.hpp>
#include <proton/target.hpp>
#include <proton/tracker.hpp>
#include <proton/transfer.hpp>
#include <proton/transport.hpp>

#include "adapters/amqp/address.hpp"
#include "adapters/amqp/mapping.hpp"
#include "adapters/amqp/sasl.hpp"
#include "core/broker.hpp"
#include "core/security/auth_pool.hpp"

namespace sb::amqp {

namespace {

spdlog::logger& logger() {
    static const auto l = [] {
        auto existing = spdlog::get("amqp");
        return existing ? existing : spdlog::default_logger()->clone("amqp");
    }();
    return *l;
}

// The Proton C object behind a C++ wrapper (pn_link_t* of a sender, pn_delivery_t* of a
// tracker...): for what the C++ API does not show (the modified outcome's flags, a rejection's
// error, the link's settle mode, whether the transport finished writing). The accessor is
// protected in proton::internal::object; a pointer to it is formed through a derived class.
template <typename T, typename W>
T* raw_as(const W& w) {
    using base = proton::internal::object<T>;
    struct access : W {
        static T* get(const base& x) {
            T* (base::*f)() const = &access::pn_object;
            return (x.*f)();
        }
    };
    return access::get(w);
}
pn_link_t* raw(const proton::link& l) { return raw_as<pn_link_t>(l); }
pn_delivery_t* raw(const proton::transfer& t) { return raw_as<pn_delivery_t>(t); }
pn_transport_t* raw(const proton::transport& t) { return raw_as<pn_transport_t>(t); }
pn_connection_t* raw(const proton::connection& c) { return raw_as<pn_connection_t>(c); }

// A close frame on channel 0 with error(condition, description), as Proton would encode it
// (both strings cut short enough for sym8 / str8 inside list8s).
void encode_close(std::string& out, std::string_view condition, std::string_view description) {
    condition = condition.substr(0, 64);
    description = description.substr(0, 160);
    std::string error("\x00\x53\x1d\xc0", 4);
    error += char(1 + 2 + condition.size() + 2 + description.size());   // list8 size: count + fields
    error += '\x02';
    error += '\xa3';
    error += char(condition.size());
    error += condition;
    error += '\xa1';
    error += char(description.size());
    error += description;
    std::string body("\x00\x53\x18\xc0", 4);
    body += char(1 + error.size());
    body += '\x01';
    body += error;
    const std::uint32_t size = std::uint32_t(8 + body.size());
    for (int shift = 24; shift >= 0; shift -= 8) out += char((size >> shift) & 0xFF);
    out += std::string("\x02\x00\x00\x00", 4);   // doff 2, AMQP frame, channel 0
    out += body;
}

std::vector<std::string> capabilities_of(const std::vector<proton::symbol>& caps) {
    return std::vector<std::string>(caps.begin(), caps.end());
}

// Kernel delivery tags travel as the AMQP delivery tag (8 bytes, big-endian).
proton::binary tag_bytes(core::delivery_tag t) {
    proton::binary b(8);
    for (int i = 7; i >= 0; --i) {
        b[std::size_t(i)] = std::uint8_t(t & 0xFF);
        t >>= 8;
    }
    return b;
}

std::optional<core::delivery_tag> tag_of(const proton::binary& b) {
    if (b.size() != 8) return std::nullopt;
    core::delivery_tag t = 0;
    for (auto c : b) t = t << 8 | c;
    return t;
}

// An outgoing link (the client's receiver): a kernel consumer with link credit.
struct outgoing : engine::consumer {
    proton::sender link;
    std::uint64_t sent = 0;      // deliveries sent on the link
    std::uint64_t granted = 0;   // the kernel's credit limit, in `sent` terms: sent + credit when last told
    bool presettled = false;     // the client asked for settled deliveries (at most once)
    bool draining = false;
};

// An incoming link (the client's sender): where its messages go.
struct incoming {
    proton::receiver link;
    std::optional<core::destination> target;   // nullopt: the anonymous relay (each message's `to`)
};

class session final : public engine::connection, private proton::messaging_handler {
public:
    session(std::shared_ptr<const settings> s, core::broker& broker, core::auth_pool& auth, std::uint64_t conn)
        : engine::connection(broker, *s, conn, logger()), settings_(std::move(s)), auth_(auth) {}

private:
    enum class stage : std::uint8_t {
        header,           // the protocol header: SASL or AMQP
        sasl,             // mechanisms sent, waiting for sasl-init
        authenticating,   // the authenticator has the credentials: input held
        amqp_header,      // SASL done: the AMQP header must follow
        amqp,             // Proton has the connection
        done,             // refused or finished: input dropped
    };
    enum class pending : std::uint8_t { none, sasl_header, amqp_header, sasl_init, bytes };

    // ---- engine::connection ------------------------------------------------------------

    engine::step decode(std::span<const std::uint8_t> in) override {
        switch (stage_) {
        case stage::header: {
            const std::string_view got(reinterpret_cast<const char*>(in.data()), std::min<std::size_t>(in.size(), 8));
            const bool is_sasl = sasl::sasl_header.starts_with(got), is_amqp = sasl::amqp_header.starts_with(got);
            if (!is_sasl && !is_amqp) return engine::step::error("not an AMQP 1.0 protocol header");
            if (got.size() < 8) return engine::step::need_more(8);
            pending_ = is_sasl ? pending::sasl_header : pending::amqp_header;
            return engine::step::frame(8);
        }
        case stage::sasl: {
            auto r = sasl::decode_init(in);
            if (auto* m = std::get_if<sasl::need_more>(&r)) return engine::step::need_more(m->at_least);
            if (auto* e = std::get_if<sasl::frame_error>(&r)) return engine::step::error(e->message);
            const auto& d = std::get<sasl::decoded>(r);
            init_ = d.value;
            pending_ = pending::sasl_init;
            return engine::step::frame(d.consumed);
        }
        case stage::amqp_header: {
            // Only the AMQP header goes to Proton: another SASL header would start Proton's own
            // SASL layer, which must never see a client.
            const std::string_view got(reinterpret_cast<const char*>(in.data()), std::min<std::size_t>(in.size(), 8));
            if (!sasl::amqp_header.starts_with(got)) return engine::step::error("expected the AMQP header after SASL");
            if (got.size() < 8) return engine::step::need_more(8);
            pending_ = pending::bytes;
            input_ = in.first(8);
            stage_ = stage::amqp;
            return engine::step::frame(8);
        }
        case stage::amqp:
            pending_ = pending::bytes;
            input_ = in;
            return engine::step::frame(in.size());
        case stage::authenticating:
        case stage::done: break;
        }
        return engine::step::skip(in.size());
    }

    void on_frame() override {
        const auto p = std::exchange(pending_, pending::none);
        switch (p) {
        case pending::sasl_header: {
            out() += sasl::sasl_header;
            std::vector<std::string_view> mechs{"PLAIN"};
            if (settings_->allow_anonymous) mechs.push_back("ANONYMOUS");
            sasl::encode_mechanisms(out(), mechs);
            stage_ = stage::sasl;
            return;
        }
        case pending::amqp_header:
            // No SASL: the anonymous user, if the broker allows one.
            return authenticate({}, {}, false);
        case pending::sasl_init: return on_sasl_init();
        case pending::bytes: return feed_proton(std::exchange(input_, {}));
        case pending::none: return;
        }
    }

    void deliver(engine::consumer& c, core::delivery d) override {
        auto& o = static_cast<outgoing&>(c);
        // Only within the client's credit: a delivery the kernel sent before the client took its
        // credit back goes back to the queue, not counted as a redelivery.
        if (!o.link.active() || o.link.credit() <= 0) {
            broker_.settle(o.id, {d.tag}, core::settle_outcome::released());
            return;
        }
        thread_local proton::message pm;
        message_to_amqp(*d.msg, d.redeliveries, settings_->broker_name, core::now_ms(), pm);
        auto t = o.link.send(pm, tag_bytes(d.tag));
        ++o.sent;
        if (o.presettled) {
            t.settle();
            settle_on_write(o.id, d.tag);
        }
        pump();
    }

    void fail(const engine::error& e) override {
        switch (e.kind) {
        case engine::error_kind::malformed:
            // Not AMQP 1.0 (or a bad SASL frame): the header we speak, then the end.
            log(spdlog::level::warn, "reason=protocol_error detail=\"{}\"", e.detail);
            if (stage_ == stage::header) out() += sasl::sasl_header;
            stage_ = stage::done;
            return close();
        case engine::error_kind::receive_timeout:
            return close_with("amqp:resource-limit-exceeded", "local-idle-timeout expired");
        case engine::error_kind::connect_timeout:
            return close_with("amqp:resource-limit-exceeded", "connection not opened in time");
        default: return abort();
        }
    }

    void on_closing() override {
        for (auto& [key, o] : outs_) end_consumer(*o);
        outs_.clear();
        ins_.clear();
    }

    void on_send_idle() override {
        if (stage_ == stage::amqp) out() += sasl::empty_frame;   // AMQP's heart-beat
    }

    bool input_held() const noexcept override { return stage_ == stage::authenticating; }

    // ---- SASL and the anonymous path -----------------------------------------------------

    void on_sasl_init() {
        const auto mech = init_.mechanism;
        if (mech == "PLAIN") {
            std::string_view user, password;
            if (!sasl::parse_plain(init_.response, user, password)) return refuse_sasl(sasl::code::auth, "malformed PLAIN response");
            return authenticate(user, password, true);
        }
        if (mech == "ANONYMOUS" && settings_->allow_anonymous) return authenticate({}, {}, true);
        refuse_sasl(sasl::code::auth, "mechanism not offered");
    }

    void authenticate(std::string_view user, std::string_view password, bool with_sasl) {
        stage_ = stage::authenticating;   // the frames after it wait for the answer
        auth_.authenticate_async(user, password, completion([this, with_sasl](core::auth_result r) {
                                     on_authenticated(std::move(r), with_sasl);
                                 }));
    }

    void on_authenticated(core::auth_result r, bool with_sasl) {
        if (stage_ != stage::authenticating || state() != engine::phase::opening) return;   // closed meanwhile
        if (r.status != core::auth_status::accepted) {
            const char* why = r.status == core::auth_status::busy ? "server busy" : "authentication failed";
            if (!with_sasl) {
                // AMQP 1.0 §5.3.1: the header of the layer we require, then the end.
                log(spdlog::level::warn, "reason=sasl_required");
                out() += sasl::sasl_header;
                stage_ = stage::done;
                return close();
            }
            return refuse_sasl(r.status == core::auth_status::busy ? sasl::code::sys_temp : sasl::code::auth, why);
        }
        if (with_sasl) sasl::encode_outcome(out(), sasl::code::ok);
        user_ = std::move(r.who.user);
        stage_ = with_sasl ? stage::amqp_header : stage::amqp;
        start_proton();
        if (!with_sasl) {
            // The AMQP header that started it all belongs to Proton.
            const auto* h = reinterpret_cast<const std::uint8_t*>(sasl::amqp_header.data());
            feed_proton(std::span(h, sasl::amqp_header.size()));
        }
    }

    void refuse_sasl(sasl::code c, std::string_view why) {
        log(spdlog::level::warn, "reason=authentication_failed detail=\"{}\"", why);
        sasl::encode_outcome(out(), c);
        stage_ = stage::done;
        close();
    }

    // ---- Proton --------------------------------------------------------------------------

    void start_proton() {
        driver_ = std::make_unique<proton::io::connection_driver>(settings_->broker_name);
        proton::connection_options o;
        o.handler(*this)
            .max_frame_size(settings_->max_frame_size)
            .max_sessions(settings_->channel_max)
            .sasl_enabled(false)   // done above, before Proton
            .offered_capabilities({proton::symbol("ANONYMOUS-RELAY")});
        if (settings_->idle_timeout_ms) o.idle_timeout(proton::duration(settings_->idle_timeout_ms));
        driver_->accept(o);
    }

    void feed_proton(std::span<const std::uint8_t> data) {
        while (!data.empty() && driver_ && stage_ == stage::amqp) {
            auto b = driver_->read_buffer();
            if (b.size == 0) {
                pump();
                if (!driver_ || stage_ != stage::amqp) break;
                b = driver_->read_buffer();
                if (b.size == 0) break;   // Proton reads no more (closed): the rest is dropped
            }
            const std::size_t n = std::min(b.size, data.size());
            std::memcpy(b.data, data.data(), n);
            driver_->read_done(n);
            data = data.subspan(n);
            pump();
        }
    }

    // Dispatches Proton's events to the handlers below and moves what it wrote into out().
    // Once Proton has written its last frame (a close), the connection closes.
    void pump() {
        if (!driver_) return;
        try {
            driver_->dispatch();
        } catch (const std::exception& e) {
            // Proton's C++ layer throws on what it cannot decode (a message, a property map).
            log(spdlog::level::warn, "reason=protocol_error detail=\"{}\"", e.what());
            try {
                driver_->connection().close(proton::error_condition("amqp:decode-error", e.what()));
            } catch (const std::exception&) {
            }
        }
        // Proton stops reading at a frame it cannot dispatch (an unknown performative, a body
        // that does not decode) without closing the connection or saying why (other protocol
        // errors get its own close, with the transport's condition set): that close is ours.
        if (auto* t = raw(driver_->transport());
            stage_ == stage::amqp && pn_transport_tail_closed(t) && !pn_condition_is_set(pn_transport_condition(t)) &&
            !(pn_connection_state(raw(driver_->connection())) & (PN_LOCAL_CLOSED | PN_REMOTE_CLOSED))) {
            log(spdlog::level::warn, "reason=protocol_error detail=\"undecodable frame\"");
            driver_->connection().close(proton::error_condition("amqp:decode-error", "a frame could not be decoded"));
        }
        for (;;) {
            const auto b = driver_->write_buffer();
            if (b.size == 0) break;
            out().append(b.data, b.size);
            driver_->write_done(b.size);
        }
        if (stage_ == stage::amqp && pn_transport_head_closed(raw(driver_->transport()))) {
            stage_ = stage::done;
            close();
        }
    }

    // Ends the connection with an AMQP close carrying `condition` (a plain close before Proton).
    void close_with(const char* condition, const char* description) {
        if (driver_ && stage_ == stage::amqp) {
            log(spdlog::level::warn, "reason=closed condition={} detail=\"{}\"", condition, description);
            auto c = driver_->connection();
            if (c.uninitialized()) {
                // The client never sent open: Proton sends no close before it has one, so our
                // open goes out through Proton and the close is written here.
                c.open();
                pump();
                encode_close(out(), condition, description);
            } else {
                c.close(proton::error_condition(condition, description));
                pump();
            }
        }
        stage_ = stage::done;
        close();
    }

    // ---- proton::messaging_handler: connection and sessions --------------------------------

    void on_connection_open(proton::connection& c) override {
        c.open();
        // The peer's idle-time-out: we send something within half of it.
        const std::uint32_t peer_idle = c.idle_timeout();
        open(std::chrono::milliseconds(settings_->idle_timeout_ms), std::chrono::milliseconds(peer_idle / 2));
        log(spdlog::level::debug, "user={} container={} peer-idle-timeout={}", user_, c.container_id(), peer_idle);
    }

    void on_connection_close(proton::connection&) override {}   // Proton closes ours; pump() ends it

    void on_transport_error(proton::transport& t) override {
        log(spdlog::level::warn, "reason=protocol_error detail=\"{}\"", t.error().what());
    }

    void on_session_open(proton::session& s) override {
        if (s.uninitialized()) s.open();
    }

    void on_session_close(proton::session& s) override {
        // The session's links end with it (no link events follow).
        for (auto it = outs_.begin(); it != outs_.end();) {
            if (it->second->link.session() == s) {
                end_consumer(*it->second);
                it = outs_.erase(it);
            } else {
                ++it;
            }
        }
        std::erase_if(ins_, [&](const auto& e) { return e.second->link.session() == s; });
    }

    // Refuses a link: attached (as the peer expects an answer) and closed with `condition`.
    template <typename Link>
    void refuse_link(Link& l, const char* condition, std::string_view why) {
        log(spdlog::level::info, "reason=link_refused condition={} detail=\"{}\"", condition, why);
        l.open();
        l.close(proton::error_condition(condition, std::string(why)));
    }

    // ---- incoming links: messages from the client ---------------------------------------------

    void on_receiver_open(proton::receiver& r) override {
        auto in = std::make_unique<incoming>();
        in->link = r;
        const auto t = r.target();
        const auto address = t.address();
        if (t.dynamic()) return refuse_link(r, "amqp:not-implemented", "dynamic targets are not supported");
        if (!address.empty()) {
            const auto caps = capabilities_of(t.capabilities());
            auto parsed = parse_address(address, hint_of(caps), true);
            if (auto* e = std::get_if<address_error>(&parsed)) return refuse_link(r, "amqp:invalid-field", e->message);
            in->target = std::move(std::get<core::destination>(parsed));
        }
        // Our own credit and settlement: each message is accepted once the kernel took it.
        r.open(proton::receiver_options().auto_accept(false).credit_window(0));
        r.add_credit(settings_->link_credit);
        ins_[raw(r)] = std::move(in);
    }

    void on_receiver_close(proton::receiver& r) override { ins_.erase(raw(r)); }
    void on_receiver_detach(proton::receiver& r) override { ins_.erase(raw(r)); }

    void on_message(proton::delivery& d, proton::message& m) override {
        const auto it = ins_.find(raw(d.receiver()));
        if (it == ins_.end()) return;
        auto& in = *it->second;
        if (in.link.credit() < 0) {
            // More transfers than the credit we granted (AMQP 1.0 §2.6.7): the link ends, the
            // message is not taken.
            reject(d, "amqp:link:transfer-limit-exceeded", "transfer beyond the link credit");
            log(spdlog::level::warn, "reason=credit_exceeded link={}", in.link.name());
            in.link.close(proton::error_condition("amqp:link:transfer-limit-exceeded", "transfer beyond the link credit"));
            ins_.erase(it);
            return;
        }
        auto built = message_from_amqp(m, in.target, core::now_ms());
        if (auto* e = std::get_if<mapping_error>(&built)) {
            reject(d, e->condition.data(), e->message);
            in.link.add_credit(1);
            return;
        }
        auto msg = std::make_shared<core::message>(std::move(std::get<core::message>(built)));
        msg->id = broker_.next_message_id();
        msg->timestamp_ms = core::now_ms();
        msg->origin_connection = id();
        begin_unconfirmed();
        broker_.publish(std::move(msg), completion([this, d, link = in.link](core::publish_status s) mutable {
                            end_unconfirmed();
                            on_published(s, d, link);
                        }));
    }

    // The kernel took the message (stored, for a persistent one): the delivery is accepted and
    // its unit of credit comes back.
    void on_published(core::publish_status s, proton::delivery& d, proton::receiver& link) {
        if (state() >= engine::phase::closing || stage_ != stage::amqp) return;
        if (d.settled()) {
            d.settle();   // pre-settled by the client: nothing to tell it
        } else if (s == core::publish_status::ok) {
            d.accept();
        } else if (s == core::publish_status::no_destination) {
            reject(d, "amqp:not-found", "the temporary destination does not exist");
        } else {
            reject(d, "amqp:internal-error", "the broker could not store the message");
        }
        if (link.active()) link.add_credit(1);
        pump();
    }

    void reject(proton::delivery& d, const char* condition, const std::string& why) {
        auto* dl = raw(d);
        auto* c = pn_disposition_condition(pn_delivery_local(dl));
        pn_condition_set_name(c, condition);
        pn_condition_set_description(c, why.c_str());
        pn_delivery_update(dl, PN_REJECTED);
        pn_delivery_settle(dl);
    }

    // ---- outgoing links: deliveries to the client -----------------------------------------------

    void on_sender_open(proton::sender& s) override {
        const auto src = s.source();
        const auto caps = capabilities_of(src.capabilities());
        const auto hint = hint_of(caps);
        core::destination dest;
        const bool dynamic = src.dynamic();
        if (dynamic) {
            // A temporary queue (or topic) of this connection, deleted with it: request/reply.
            dest = broker_.create_temporary(id(), hint == capability_hint::topic ? core::dest_kind::temp_topic
                                                                                 : core::dest_kind::temp_queue);
        } else {
            auto parsed = parse_address(src.address(), hint, false);
            if (auto* e = std::get_if<address_error>(&parsed)) return refuse_link(s, "amqp:invalid-field", e->message);
            dest = std::move(std::get<core::destination>(parsed));
        }
        auto o = std::make_unique<outgoing>();
        o->link = s;
        o->dest = dest;
        o->id = broker_.next_consumer_id();
        o->presettled = pn_link_remote_snd_settle_mode(raw(s)) == PN_SND_SETTLED;
        proton::sender_options so;
        so.auto_settle(false);
        if (o->presettled) so.delivery_mode(proton::delivery_mode::AT_MOST_ONCE);
        if (dynamic) {
            // The node's address goes back in our source (AMQP 1.0 §3.5.3). Set on the C terminus:
            // Proton's source_options do not set an address on a terminus that is dynamic.
            pn_terminus_set_address(pn_link_source(raw(s)), format_address(dest).c_str());
        }
        s.open(so);

        core::subscribe_options opt;
        opt.credit = core::credit_mode::link;
        opt.prefetch = std::uint32_t(std::max(0, s.credit()));
        opt.connection = id();
        o->granted = *opt.prefetch;
        add_consumer(*o);
        auto* key = raw(s);
        auto status = std::make_shared<core::subscribe_status>(core::subscribe_status::ok);
        auto done = track_subscribe(*o, completion([this, status, key] { on_subscribed(*status, key); }));
        broker_.subscribe_checked(o->id, o->dest, opt, weak_from_this(),
                                  [status, done = std::move(done)](core::subscribe_status st) {
                                      *status = st;
                                      done();
                                  });
        log(spdlog::level::debug, "link=sender address={} dynamic={}", format_address(dest), dynamic);
        outs_[key] = std::move(o);
    }

    void on_subscribed(core::subscribe_status st, pn_link_t* key) {
        if (st == core::subscribe_status::ok) return;
        const auto it = outs_.find(key);
        if (it == outs_.end()) return;
        auto o = std::move(it->second);
        outs_.erase(it);
        release_consumer(*o);
        if (o->link.active())
            o->link.close(proton::error_condition(st == core::subscribe_status::not_owner ? "amqp:unauthorized-access"
                                                                                           : "amqp:not-found",
                                                  "no such temporary destination, or not its owner"));
        pump();
    }

    outgoing* find_out(const proton::sender& s) {
        const auto it = outs_.find(raw(s));
        return it == outs_.end() ? nullptr : it->second.get();
    }

    // The client's credit grew: the kernel gets the difference.
    void credit_changed(outgoing& o) {
        const std::uint64_t limit = o.sent + std::uint64_t(std::max(0, o.link.credit()));
        if (limit <= o.granted) return;
        broker_.grant(o.id, o.dest, std::uint32_t(std::min<std::uint64_t>(limit - o.granted, 0xFFFFFFFF)));
        o.granted = limit;
    }

    void on_sendable(proton::sender& s) override {
        if (auto* o = find_out(s)) credit_changed(*o);
    }

    void on_sender_drain_start(proton::sender& s) override {
        auto* o = find_out(s);
        if (!o || o->draining) return;
        credit_changed(*o);
        o->draining = true;
        auto* key = raw(s);
        // What the kernel has goes out within the credit; then the rest of the credit is used
        // up and the client hears so (the drain's flow echo).
        broker_.drain(o->id, o->dest, completion([this, key](core::drain_result) {
                          const auto it = outs_.find(key);
                          if (it == outs_.end()) return;
                          auto& out = *it->second;
                          out.draining = false;
                          if (out.link.active()) out.link.return_credit();
                          out.granted = out.sent;
                          pump();
                      }));
    }

    void end_outgoing(const proton::sender& s) {
        const auto it = outs_.find(raw(s));
        if (it == outs_.end()) return;
        end_consumer(*it->second);   // what it had unsettled goes back to the queue
        outs_.erase(it);
    }

    void on_sender_close(proton::sender& s) override { end_outgoing(s); }
    void on_sender_detach(proton::sender& s) override { end_outgoing(s); }

    // A disposition from the client. Outcomes are applied once: when the delivery is settled
    // remotely (on_tracker_settle), or at once when the client keeps it unsettled (second mode:
    // we settle it then).
    void on_tracker_accept(proton::tracker& t) override { if (!t.settled()) settle(t); }
    void on_tracker_reject(proton::tracker& t) override { if (!t.settled()) settle(t); }
    void on_tracker_release(proton::tracker& t) override { if (!t.settled()) settle(t); }
    void on_tracker_settle(proton::tracker& t) override { settle(t); }

    void settle(proton::tracker& t) {
        auto* dl = raw(t);
        core::settle_outcome oc;
        auto* remote = pn_delivery_remote(dl);
        switch (pn_delivery_remote_state(dl)) {
        case 0:   // settled without an outcome: consumed
        case PN_ACCEPTED: oc = core::settle_outcome::accepted(); break;
        case PN_REJECTED: {
            auto* c = pn_disposition_condition(remote);
            const char* why = pn_condition_is_set(c) ? pn_condition_get_description(c) : nullptr;
            oc = core::settle_outcome::rejected(why ? why : "rejected by the AMQP consumer");
            break;
        }
        case PN_RELEASED: oc = core::settle_outcome::released(); break;
        case PN_MODIFIED:
            oc = core::settle_outcome::modified(pn_disposition_is_failed(remote), pn_disposition_is_undeliverable(remote));
            break;
        default: return;   // `received`: not an outcome
        }
        const auto tag = tag_of(t.tag());
        if (auto* o = find_out(t.sender()); o && tag) broker_.settle(o->id, {*tag}, std::move(oc));
        t.settle();
    }

    std::shared_ptr<const settings> settings_;
    core::auth_pool& auth_;
    stage stage_ = stage::header;
    pending pending_ = pending::none;
    std::span<const std::uint8_t> input_;   // pending::bytes: valid until on_frame returns
    sasl::init init_{};                     // pending::sasl_init: the same
    std::string user_;
    std::unique_ptr<proton::io::connection_driver> driver_;
    std::unordered_map<pn_link_t*, std::unique_ptr<outgoing>> outs_;
    std::unordered_map<pn_link_t*, std::unique_ptr<incoming>> ins_;
};

}  // namespace

std::shared_ptr<engine::connection> make_session(std::shared_ptr<const settings> s, core::broker& broker,
                                                 core::auth_pool& auth, std::uint64_t connection_id) {
    return std::make_shared<session>(std::move(s), broker, auth, connection_id);
}

}  // namespace sb::amqp
