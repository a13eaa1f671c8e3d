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
#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include <proton/codec.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/link.h>
#include <proton/message.h>
#include <proton/object.h>
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
#include <proton/annotation_key.hpp>
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
#include "adapters/amqp/terminus.hpp"
#include "core/broker.hpp"
#include "core/executor.hpp"
#include "core/security/auth_pool.hpp"
#include "core/transaction.hpp"

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

// Kernel delivery tags travel as the AMQP delivery tag (8 bytes, big-endian).
[[maybe_unused]] proton::binary tag_bytes(core::delivery_tag t) {
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

struct link_owner {
    std::weak_ptr<engine::connection> session;
    core::executor* worker = nullptr;
    pn_link_t* key = nullptr;
    std::uint64_t serial = 0;
};
// What a durable subscription collects: for a link that names it without a source (Qpid JMS
// looks a subscription up that way before unsubscribing).
struct known_subscription {
    core::destination filter;
    std::string selector;
};
}  // namespace

// Links by (container-id, role, link name): a name attached again by the same container steals
// the link (amqp:link:stolen; AMQP 1.0 §2.6.1, link names are unique per container pair). The
// links attached to each subscription made from a link (durable, shared), so that the last one
// to go deletes what should go with it. Touched on attach and detach only: one mutex.
struct link_registry {
    std::mutex mutex;
    std::unordered_map<std::string, link_owner> links;
    std::unordered_map<std::string, std::size_t> subscriptions;   // kernel subscription name -> links
    std::unordered_map<std::string, known_subscription> durables;   // durable ones, by kernel name
    bool loaded = false;   // the recovered subscriptions were read
    std::atomic<std::uint64_t> serials{0};
};

std::shared_ptr<link_registry> make_link_registry() { return std::make_shared<link_registry>(); }

namespace {

// An outgoing link (the client's receiver): a kernel consumer with link credit.
struct outgoing : engine::consumer {
    proton::sender link;
    std::uint64_t sent = 0;      // deliveries sent on the link
    std::uint64_t granted = 0;   // the kernel's credit limit, in `sent` terms: sent + credit when last told
    bool presettled = false;     // the client asked for settled deliveries (at most once)
    bool draining = false;
    std::string name_key;        // its entry in link_registry::links (empty: none)
    std::uint64_t serial = 0;
    std::string subscription;    // a durable (or shared) subscription's kernel name, else empty
    bool durable = false;        // the subscription outlives its links (else: it goes with the last)
    std::vector<core::delivery_tag> acks;   // accepted by the client, not yet told to the kernel (see settle())
};

// An incoming link (the client's sender): where its messages go.
struct incoming {
    proton::receiver link;
    std::optional<core::destination> target;   // nullopt: the anonymous relay (each message's `to`)
    bool coordinator = false;                  // the transaction coordinator (declare / discharge)
    std::string name_key;
    std::uint64_t serial = 0;
};

// The data of a kernel durable subscription that is a shared non-durable one.
constexpr std::string_view volatile_subscription_data = "amqp:volatile";
// ... and one made by an AMQP link (durable).
constexpr std::string_view durable_subscription_data = "amqp:durable";

// A transaction declared on a coordinator link (kernel core::transaction).
struct amqp_transaction {
    std::unique_ptr<core::transaction> tx;
    pn_link_t* coordinator = nullptr;
    bool failed = false;   // an operation was refused (too large): it can only roll back
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
            // EXTERNAL first when the transport vouches for a user (a TLS client certificate).
            std::vector<std::string_view> mechs;
            if (!peer_identity().empty()) mechs.push_back("EXTERNAL");
            mechs.push_back("PLAIN");
            if (settings_->allow_anonymous) mechs.push_back("ANONYMOUS");
            sasl::encode_mechanisms(out(), mechs);
            stage_ = stage::sasl;
            return;
        }
        case pending::amqp_header:
            // No SASL: the TLS client certificate's user, else the anonymous user if allowed.
            if (!peer_identity().empty()) {
                stage_ = stage::authenticating;
                return auth_.authenticate_certificate_async(peer_identity(), completion([this](core::auth_result r) {
                                                                on_authenticated(std::move(r), false);
                                                            }));
            }
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
            // The kernel used a unit of credit the client no longer gives: `granted` follows,
            // so that the client's next credit reaches the kernel again.
            if (o.granted > o.sent) --o.granted;
            broker_.settle(o.id, {d.tag}, core::settle_outcome::released());
            return;
        }
        // Encoded by hand and sent on the C link (what proton::sender::send does, without a
        // proton::message to fill and encode for each delivery).
        thread_local std::string encoded;
        encoded.clear();
        encode_amqp(*d.msg, d.redeliveries, settings_->broker_name, core::now_ms(), encoded);
        auto* l = raw(o.link);
        char tag[8];
        for (int i = 7; i >= 0; --i) tag[i] = static_cast<char>(d.tag >> (8 * (7 - i)));
        auto* dl = pn_delivery(l, pn_dtag(tag, sizeof tag));
        pn_link_send(l, encoded.data(), encoded.size());
        pn_link_advance(l);
        if (!pn_link_credit(l)) pn_link_drained(l);
        ++o.sent;
        if (o.presettled || pn_link_snd_settle_mode(l) == PN_SND_SETTLED) {
            pn_delivery_settle(dl);
            // Consumed once written: noted when pump() has moved its transfer into out().
            written_settles_.push_back({o.id, d.tag});
        }
        pump_later();
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
        for (auto& [key, o] : outs_) finish_outgoing(*o, false);
        outs_.clear();
        for (auto& [key, in] : ins_) release_name(in->name_key, in->serial);
        ins_.clear();
        txs_.clear();   // open transactions roll back (so would connection_closed)
    }

    void on_send_idle() override {
        if (stage_ == stage::amqp) out() += sasl::empty_frame;   // AMQP's heart-beat
    }

    // Authenticating, or a discharge committing: what follows it waits for the commit.
    bool input_held() const noexcept override { return stage_ == stage::authenticating || committing_ > 0; }

    // ---- SASL and the anonymous path -----------------------------------------------------

    void on_sasl_init() {
        const auto mech = init_.mechanism;
        if (mech == "PLAIN") {
            std::string_view user, password;
            if (!sasl::parse_plain(init_.response, user, password)) return refuse_sasl(sasl::code::auth, "malformed PLAIN response");
            return authenticate(user, password, true);
        }
        if (mech == "ANONYMOUS" && settings_->allow_anonymous) return authenticate({}, {}, true);
        if (mech == "EXTERNAL" && !peer_identity().empty()) {
            // RFC 4422 Appendix A: the response is an authorization identity; empty, or the
            // certificate's user itself (no acting as another).
            if (!init_.response.empty() && init_.response != peer_identity())
                return refuse_sasl(sasl::code::auth, "EXTERNAL authorization identity is not the certificate's user");
            stage_ = stage::authenticating;
            return auth_.authenticate_certificate_async(peer_identity(), completion([this](core::auth_result r) {
                                                            on_authenticated(std::move(r), true);
                                                        }));
        }
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

    // Everything read goes through Proton's transport first; its events are dispatched and its
    // output moved once, after the last chunk (one pass for a read's many frames).
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
        }
        pump();
    }

    // For work outside input (kernel deliveries and publish completions, which arrive one task
    // each): one pump() after the worker's current batch of tasks instead of one per message —
    // one pass over Proton's transport, one flow frame per link, dispositions in ranges, the
    // transfers in one buffer. Without a worker (tests driving by hand): at once.
    void pump_later() {
        if (pump_posted_) return;
        auto* worker = core::executor::current();
        if (!worker) return pump();
        pump_posted_ = true;
        worker->post(completion([this] {
            pump_posted_ = false;
            pump();
        }));
    }

    // Dispatches Proton's events to the handlers below and moves what it wrote into out().
    // Once Proton has written its last frame (a close), the connection closes.
    void pump() {
        if (!driver_) return;
        try {
            take_transfers();
            take_acceptances();
            driver_->dispatch();
            flush_acks();
        } catch (const std::exception& e) {
            close_on_exception(e.what());
        }
        // Proton's C++ layer throws on what it cannot decode (a message, a property map, a
        // terminus field), and its dispatch catches that itself, only noting it on the transport
        // as condition "exception": the event went unhandled, so the connection ends.
        if (auto* cond = pn_transport_condition(raw(driver_->transport()));
            !decode_failed_ && pn_condition_is_set(cond) && std::string_view(pn_condition_get_name(cond)) == "exception") {
            const char* what = pn_condition_get_description(cond);
            close_on_exception(what ? what : "undecodable input");
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
        // Pre-settled deliveries whose transfers are in out() now count as consumed once written.
        for (const auto& [consumer, tag] : written_settles_) settle_on_write(consumer, tag);
        written_settles_.clear();
        if (stage_ == stage::amqp && pn_transport_head_closed(raw(driver_->transport()))) {
            stage_ = stage::done;
            close();
        }
    }

    void close_on_exception(const char* what) {
        if (decode_failed_) return;
        decode_failed_ = true;
        log(spdlog::level::warn, "reason=protocol_error detail=\"{}\"", what);
        try {
            driver_->connection().close(proton::error_condition("amqp:decode-error", what));
        } catch (const std::exception&) {
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
        // What clients look for before using the feature (Qpid JMS: SHARED-SUBS for shared
        // subscriptions, DELAYED_DELIVERY for a delivery delay; ANONYMOUS-RELAY for a sender
        // without a target).
        std::vector<proton::symbol> caps{proton::symbol("ANONYMOUS-RELAY"), proton::symbol("SHARED-SUBS")};
        if (broker_.settings().scheduler_support) caps.emplace_back("DELAYED_DELIVERY");   // the kernel's scheduler
        c.open(proton::connection_options().offered_capabilities(caps));
        if (const char* id = pn_connection_remote_container(raw_as<pn_connection_t>(c))) container_ = id;
        load_subscriptions();
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
        // The session's links end with it (no link events follow), detached, not closed.
        for (auto it = outs_.begin(); it != outs_.end();) {
            if (it->second->link.session() == s) {
                finish_outgoing(*it->second, false);
                it = outs_.erase(it);
            } else {
                ++it;
            }
        }
        for (auto it = ins_.begin(); it != ins_.end();) {
            if (it->second->link.session() == s) {
                finish_incoming(*it->second);
                it = ins_.erase(it);
            } else {
                ++it;
            }
        }
    }

    // ---- link names and subscriptions shared between connections ---------------------------

    // Claims the link name of `key` for this container; a link holding it is stolen: detached
    // with amqp:link:stolen, on its own connection's worker. Returns the registry key and serial.
    std::pair<std::string, std::uint64_t> claim_name(pn_link_t* key) {
        if (container_.empty()) return {};
        std::string name_key =
            fmt::format("{}\x1f{}\x1f{}", container_, pn_link_is_sender(key) ? 's' : 'r', pn_link_name(key));
        auto& reg = *settings_->registry;
        const std::uint64_t serial = ++reg.serials;
        link_owner old;
        {
            std::lock_guard lock(reg.mutex);
            old = std::exchange(reg.links[name_key], link_owner{weak_from_this(), core::executor::current(), key, serial});
        }
        if (auto prev = std::static_pointer_cast<session>(old.session.lock())) {
            if (prev.get() == this)
                steal(old.key, old.serial, false);   // within Proton's dispatch: its output follows
            else if (old.worker)
                old.worker->post(prev->completion([prev, k = old.key, sr = old.serial] { prev->steal(k, sr, true); }));
        }
        return {std::move(name_key), serial};
    }

    void release_name(const std::string& name_key, std::uint64_t serial) {
        if (name_key.empty()) return;
        auto& reg = *settings_->registry;
        std::lock_guard lock(reg.mutex);
        if (auto it = reg.links.find(name_key); it != reg.links.end() && it->second.serial == serial) reg.links.erase(it);
    }

    // Another link of the same container took this one's name. `pump`: called outside Proton's
    // dispatch (a kernel-style event), so the detach is written here.
    void steal(pn_link_t* key, std::uint64_t serial, bool pump_now) {
        if (state() >= engine::phase::closing || stage_ != stage::amqp) return;
        const proton::error_condition why("amqp:link:stolen", "the link name was attached again by its container");
        if (auto it = outs_.find(key); it != outs_.end() && it->second->serial == serial) {
            auto link = it->second->link;
            end_outgoing(link, false);   // a durable subscription stays for the new link
            link.close(why);
        } else if (auto in = ins_.find(key); in != ins_.end() && in->second->serial == serial) {
            auto link = in->second->link;
            finish_incoming(*in->second);
            ins_.erase(in);
            link.close(why);
        } else {
            return;
        }
        log(spdlog::level::info, "reason=link_stolen");
        if (pump_now) pump();
    }

    void hold_subscription(const std::string& name) {
        auto& reg = *settings_->registry;
        std::lock_guard lock(reg.mutex);
        ++reg.subscriptions[name];
    }
    // One link less on subscription `name`: how many are left in the process.
    std::size_t drop_subscription(const std::string& name) {
        auto& reg = *settings_->registry;
        std::lock_guard lock(reg.mutex);
        const auto it = reg.subscriptions.find(name);
        if (it == reg.subscriptions.end()) return 0;
        if (--it->second > 0) return it->second;
        reg.subscriptions.erase(it);
        return 0;
    }

    void remember_durable(const std::string& name, const core::destination& filter, const core::selector_ptr& sel) {
        auto& reg = *settings_->registry;
        std::lock_guard lock(reg.mutex);
        reg.durables[name] = known_subscription{filter, sel ? sel->text() : std::string()};
    }
    void forget_durable(const std::string& name) {
        auto& reg = *settings_->registry;
        std::lock_guard lock(reg.mutex);
        reg.durables.erase(name);
    }
    std::optional<known_subscription> find_durable(const std::string& name) {
        auto& reg = *settings_->registry;
        std::lock_guard lock(reg.mutex);
        const auto it = reg.durables.find(name);
        if (it == reg.durables.end()) return std::nullopt;
        return it->second;
    }

    // Once per broker (registry), at the first connection: the durable subscriptions the store kept are
    // known by name; the shared non-durable ones (kernel durable subscriptions that go with
    // their last link) that a restart or a crash left without links are deleted.
    void load_subscriptions() {
        std::vector<std::string> stale;
        {
            auto& reg = *settings_->registry;
            std::lock_guard lock(reg.mutex);
            if (reg.loaded) return;
            reg.loaded = true;
            for (const auto& r : broker_.recovered_subscriptions()) {
                if (r.data == volatile_subscription_data)
                    stale.push_back(r.name);
                else if (r.data == durable_subscription_data)
                    reg.durables[r.name] = known_subscription{r.filter, r.selector};
            }
        }
        for (const auto& name : stale) broker_.unsubscribe_durable(name);
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
        auto* key = raw(r);
        if (pn_terminus_get_type(pn_link_remote_target(key)) == PN_COORDINATOR) return open_coordinator(r, std::move(in));
        const auto t = r.target();
        const auto address = t.address();
        if (t.dynamic()) return refuse_link(r, "amqp:not-implemented", "dynamic targets are not supported");
        if (!address.empty()) {
            const auto caps = capabilities_of(pn_terminus_capabilities(pn_link_remote_target(key)));
            auto parsed = parse_address(address, hint_of(caps), true);
            if (auto* e = std::get_if<address_error>(&parsed)) return refuse_link(r, "amqp:invalid-field", e->message);
            in->target = std::move(std::get<core::destination>(parsed));
        }
        // Our own credit and settlement: each message is accepted once the kernel took it.
        r.open(proton::receiver_options().auto_accept(false).credit_window(0));
        r.add_credit(settings_->link_credit);
        std::tie(in->name_key, in->serial) = claim_name(key);
        ins_[key] = std::move(in);
    }

    void end_incoming(const proton::receiver& r) {
        const auto it = ins_.find(raw(r));
        if (it == ins_.end()) return;
        finish_incoming(*it->second);
        ins_.erase(it);
    }
    void finish_incoming(incoming& in) {
        release_name(in.name_key, in.serial);
        // The transactions declared on a coordinator link roll back when it goes.
        if (in.coordinator) std::erase_if(txs_, [&](const auto& e) { return e.second.coordinator == raw(in.link); });
    }

    void on_receiver_close(proton::receiver& r) override { end_incoming(r); }
    void on_receiver_detach(proton::receiver& r) override { end_incoming(r); }

    void on_message(proton::delivery& d, proton::message& m) override {
        const auto it = ins_.find(raw(d.receiver()));
        if (it == ins_.end()) return;
        auto& in = *it->second;
        if (beyond_credit(raw(in.link), raw(d))) return;
        if (in.coordinator) return on_control(d, m, in);
        // A transactional send: the transfer's state names the transaction.
        auto* dl = raw(d);
        amqp_transaction* tx = nullptr;
        std::uint64_t txid = 0;
        if (pn_delivery_remote_state(dl) == transactional_state_code) {
            const auto id = transactional_state(pn_disposition_data(pn_delivery_remote(dl))).id;
            if (id) tx = find_tx(*id);
            if (!tx) {
                reject(d, "amqp:transaction:unknown-id", "no such transaction");
                in.link.add_credit(1);
                return;
            }
            txid = *id;
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
        delivery_delay(m, *msg);
        if (tx) {
            // Buffered in the kernel transaction: published when the discharge commits it.
            if (tx->failed || tx->tx->send(std::move(msg)) != core::tx_status::ok) {
                tx->failed = true;
                reject(d, "amqp:transaction:rollback", "the transaction is too large");
            } else if (d.settled()) {
                d.settle();
            } else {
                settle_transactional(dl, txid, accepted_code);
            }
            in.link.add_credit(1);
            return;
        }
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
        pump_later();
    }

    // A transfer beyond the credit we granted (AMQP 1.0 §2.6.7): the delivery is rejected and the
    // link closed with amqp:link:transfer-limit-exceeded; its entry goes with the peer's detach
    // (or the session), later transfers on it are not read. Proton counts a receiver's credit
    // down as each delivery is advanced past: what is left once `dl` is past must not be negative.
    bool beyond_credit(pn_link_t* l, pn_delivery_t* dl) {
        const int left = pn_link_credit(l) - (pn_link_current(l) == dl ? 1 : 0);
        if (left >= 0) return false;
        static constexpr const char* condition = "amqp:link:transfer-limit-exceeded";
        reject(dl, condition, "transfer beyond the link credit");
        log(spdlog::level::warn, "reason=credit_exceeded link={}", pn_link_name(l));
        auto* c = pn_link_condition(l);
        pn_condition_set_name(c, condition);
        pn_condition_set_description(c, "transfer beyond the link credit");
        pn_link_close(l);
        return true;
    }

    void reject(proton::delivery& d, const char* condition, const std::string& why) { reject(raw(d), condition, why); }
    static void reject(pn_delivery_t* dl, const char* condition, const std::string& why) {
        auto* c = pn_disposition_condition(pn_delivery_local(dl));
        pn_condition_set_name(c, condition);
        pn_condition_set_description(c, why.c_str());
        pn_delivery_update(dl, PN_REJECTED);
        pn_delivery_settle(dl);
    }

    // ---- incoming transfers without Proton's C++ message ----------------------------------------

    // Before dispatch: the complete transfers on our links to destinations (not a coordinator's,
    // not transactional) are read and published here, decoded by decode_amqp (no
    // proton::message for the common shape; Proton's decoder for the rest). The C++ layer's
    // event for such a delivery then finds it read (no longer the link's current): no
    // on_message. Everything else goes through on_message as before.
    void take_transfers() {
        for (auto& [l, in] : ins_) {
            if (in->coordinator) continue;
            // In order: each complete transfer at the head of the link (a partial one waits).
            while (pn_delivery_t* dl = pn_link_current(l)) {
                if (pn_link_state(l) & PN_LOCAL_CLOSED) break;   // (beyond_credit may close it)
                if (!pn_delivery_readable(dl) || pn_delivery_partial(dl) ||
                    pn_delivery_remote_state(dl) == transactional_state_code)
                    break;
                take_transfer(*in, l, dl);
            }
        }
    }

    void take_transfer(incoming& in, pn_link_t* l, pn_delivery_t* dl) {
        thread_local std::string bytes;
        bytes.resize(pn_delivery_pending(dl));
        const auto n = pn_link_recv(l, bytes.data(), bytes.size());
        bytes.resize(n > 0 ? std::size_t(n) : 0);
        pn_link_advance(l);
        if (beyond_credit(l, dl)) return;
        auto built = decode_amqp(bytes, in.target, core::now_ms());
        std::optional<proton::message> slow;   // the shapes decode_amqp leaves to Proton
        if (!built) {
            slow.emplace();
            slow->decode(std::vector<char>(bytes.begin(), bytes.end()));   // throws on bad bytes: see pump()
            built = message_from_amqp(*slow, in.target, core::now_ms());
        }
        if (auto* e = std::get_if<mapping_error>(&*built)) {
            reject(dl, e->condition.data(), e->message);
            pn_link_flow(l, 1);
            return;
        }
        auto msg = std::make_shared<core::message>(std::move(std::get<core::message>(*built)));
        msg->id = broker_.next_message_id();
        msg->timestamp_ms = core::now_ms();
        msg->origin_connection = id();
        if (slow) delivery_delay(*slow, *msg);
        begin_unconfirmed();
        pn_incref(dl);   // until the kernel's answer (as a proton::delivery would)
        broker_.publish(std::move(msg), completion([this, dl](core::publish_status st) {
                            end_unconfirmed();
                            on_published(st, dl);
                            pn_decref(dl);
                        }));
    }

    // on_published for a delivery taken by take_transfer.
    void on_published(core::publish_status s, pn_delivery_t* dl) {
        if (state() >= engine::phase::closing || stage_ != stage::amqp) return;
        if (pn_delivery_settled(dl)) {
            pn_delivery_settle(dl);   // pre-settled by the client: nothing to tell it
        } else if (s == core::publish_status::ok) {
            pn_delivery_update(dl, PN_ACCEPTED);
            pn_delivery_settle(dl);
        } else if (s == core::publish_status::no_destination) {
            reject(dl, "amqp:not-found", "the temporary destination does not exist");
        } else {
            reject(dl, "amqp:internal-error", "the broker could not store the message");
        }
        pn_link_t* l = pn_delivery_link(dl);
        if (pn_link_state(l) & PN_LOCAL_ACTIVE) pn_link_flow(l, 1);
        pump_later();
    }

    // Qpid JMS's delivery delay (the DELAYED_DELIVERY capability): the message annotation
    // x-opt-delivery-time (an absolute time) or x-opt-delivery-delay (ms) becomes the kernel's
    // scheduled delivery (AMQ_SCHEDULED_DELAY, held by the scheduler until then).
    static void delivery_delay(const proton::message& m, core::message& msg) {
        if (m.message_annotations().empty()) return;
        std::int64_t delay = 0;
        try {
            const auto& a = m.message_annotations();
            if (a.exists(proton::annotation_key(proton::symbol("x-opt-delivery-delay")))) {
                delay = proton::coerce<std::int64_t>(a.get(proton::annotation_key(proton::symbol("x-opt-delivery-delay"))));
            } else if (a.exists(proton::annotation_key(proton::symbol("x-opt-delivery-time")))) {
                const auto v = a.get(proton::annotation_key(proton::symbol("x-opt-delivery-time")));
                const std::int64_t at = v.type() == proton::TIMESTAMP ? proton::get<proton::timestamp>(v).milliseconds()
                                                                      : proton::coerce<std::int64_t>(v);
                delay = at - core::now_ms();
            }
        } catch (const std::exception&) {
            return;   // not a number: no delay
        }
        if (delay > 0) msg.properties.push_back({std::string(core::scheduled_delay_property), delay});
    }

    // ---- transactions: the coordinator link --------------------------------------------------

    // A sender whose target is a coordinator (AMQP 1.0 §4.2): its messages are declare and
    // discharge controls, one unit of credit at a time.
    void open_coordinator(proton::receiver& r, std::unique_ptr<incoming> in) {
        auto* key = raw(r);
        in->coordinator = true;
        // Our target is a coordinator too (with the client's capabilities, e.g.
        // amqp:local-transactions): that it is there tells the client transactions work.
        pn_terminus_copy(pn_link_target(key), pn_link_remote_target(key));
        r.open(proton::receiver_options().auto_accept(false).credit_window(0));
        r.add_credit(1);
        std::tie(in->name_key, in->serial) = claim_name(key);
        ins_[key] = std::move(in);
    }

    amqp_transaction* find_tx(std::uint64_t id) {
        const auto it = txs_.find(id);
        return it == txs_.end() ? nullptr : &it->second;
    }

    // Settles delivery `dl` with a transactional-state (txn-id, outcome `code`).
    static void settle_transactional(pn_delivery_t* dl, std::uint64_t txid, std::uint64_t code) {
        put_transactional_state(pn_disposition_data(pn_delivery_local(dl)), txid, code);
        pn_delivery_update(dl, transactional_state_code);
        pn_delivery_settle(dl);
    }

    // Transactional dispositions the client left unsettled (python-qpid-proton's
    // Transaction.accept does): Proton reports no event for them, so the discharge collects
    // them from the outgoing links' unsettled deliveries, into the transaction, and settles them.
    void collect_unsettled(std::uint64_t txid, amqp_transaction& t) {
        for (auto& [key, o] : outs_) {
            for (pn_delivery_t* dl = pn_unsettled_head(key); dl;) {
                pn_delivery_t* next = pn_unsettled_next(dl);
                if (pn_delivery_remote_state(dl) == transactional_state_code && !pn_delivery_settled(dl)) {
                    const auto st = transactional_state(pn_disposition_data(pn_delivery_remote(dl)));
                    const auto tag = pn_delivery_tag(dl);
                    const auto kernel_tag =
                        tag_of(proton::binary(reinterpret_cast<const std::uint8_t*>(tag.start),
                                              reinterpret_cast<const std::uint8_t*>(tag.start) + tag.size));
                    if (st.id == txid && kernel_tag) {
                        if (!t.failed && t.tx->settle(o->id, {*kernel_tag}, outcome_of(st)) != core::tx_status::ok)
                            t.failed = true;
                        pn_delivery_settle(dl);
                    }
                }
                dl = next;
            }
        }
    }

    static core::settle_outcome outcome_of(const txn_state& st) {
        switch (st.code) {
        case rejected_code: return core::settle_outcome::rejected("rejected by the AMQP consumer");
        case released_code: return core::settle_outcome::released();
        case modified_code: return core::settle_outcome::modified(st.delivery_failed, st.undeliverable_here);
        default: return core::settle_outcome::accepted();   // accepted, or none given
        }
    }

    // A declare or a discharge on the coordinator link.
    void on_control(proton::delivery& d, proton::message& m, incoming& in) {
        auto link = in.link;
        auto more_credit = [&] {
            if (link.active()) link.add_credit(1);
        };
        // The body is one amqp-value: declare(global-id?) or discharge(txn-id, fail?). Read
        // through Proton's C codec, which keeps described types.
        std::vector<char> bytes;
        m.encode(bytes);
        std::unique_ptr<pn_message_t, void (*)(pn_message_t*)> pm(pn_message(), pn_message_free);
        control ctl;
        if (pn_message_decode(pm.get(), bytes.data(), bytes.size()) == 0) ctl = read_control(pn_message_body(pm.get()));
        const auto code = ctl.code;
        const auto txid = ctl.txid;
        const bool fail = ctl.fail;
        auto* dl = raw(d);
        if (code == declare_code) {
            // A local transaction of the kernel, bounded by broker.max_transaction_frames.
            const std::uint64_t id = ++next_txn_;
            txs_.emplace(id, amqp_transaction{broker_.begin_transaction(this->id()), raw(link), false});
            put_declared(pn_disposition_data(pn_delivery_local(dl)), id);
            pn_delivery_update(dl, declared_code);
            pn_delivery_settle(dl);
            log(spdlog::level::debug, "txn={} declared", id);
            return more_credit();
        }
        if (code != discharge_code) {
            reject(d, "amqp:decode-error", "not a declare or discharge");
            return more_credit();
        }
        const auto it = txid ? txs_.find(*txid) : txs_.end();
        if (it == txs_.end()) {
            reject(d, "amqp:transaction:unknown-id", "no such transaction");
            return more_credit();
        }
        auto t = std::move(it->second);
        txs_.erase(it);
        collect_unsettled(*txid, t);
        if (fail || t.failed) {
            // Rolled back: the sends are dropped, the deliveries it settled go back to their
            // queues counted as a redelivery.
            t.tx->rollback();
            log(spdlog::level::debug, "txn={} rolled back", *txid);
            if (fail) {
                d.accept();
                d.settle();
            } else {
                reject(d, "amqp:transaction:rollback", "the transaction was too large and is rolled back");
            }
            return more_credit();
        }
        // The commit completes once the store transaction (acks' removes, sends' adds) is
        // durable: only then is the discharge accepted. Input waits for it, so what the client
        // sends next comes after the transaction.
        ++committing_;
        t.tx->commit(completion([this, d, link, id = *txid](core::publish_status s) mutable {
            --committing_;
            if (state() >= engine::phase::closing || stage_ != stage::amqp) return;
            log(spdlog::level::debug, "txn={} committed status={}", id, int(s));
            if (s == core::publish_status::ok) {
                d.accept();
                d.settle();
            } else {
                reject(d, "amqp:transaction:rollback", "the broker could not store the transaction");
            }
            if (link.active()) link.add_credit(1);
            pump();
        }));
    }

    // ---- outgoing links: deliveries to the client -----------------------------------------------

    void on_sender_open(proton::sender& s) override {
        auto* key = raw(s);
        const auto src = s.source();
        const auto caps = capabilities_of(pn_terminus_capabilities(pn_link_remote_source(key)));
        const auto hint = hint_of(caps);
        core::destination dest;
        const bool dynamic = src.dynamic();
        auto* rsrc = pn_link_remote_source(key);
        // No source (nor address): a durable subscription looked up by its link name (Qpid JMS,
        // before an unsubscribe, which then closes the link).
        std::optional<std::pair<std::string, known_subscription>> found;
        if (!dynamic && pn_terminus_get_type(rsrc) == PN_UNSPECIFIED) {
            found = lookup_durable(s.name());
            if (!found) return refuse_link(s, "amqp:not-found", "no durable subscription of that name");
            dest = found->second.filter;
        } else if (dynamic) {
            // A temporary queue (or topic) of this connection, deleted with it: request/reply.
            dest = broker_.create_temporary(id(), hint == capability_hint::topic ? core::dest_kind::temp_topic
                                                                                 : core::dest_kind::temp_queue);
        } else {
            auto parsed = parse_address(src.address(), hint, false);
            if (auto* e = std::get_if<address_error>(&parsed)) return refuse_link(s, "amqp:invalid-field", e->message);
            dest = std::move(std::get<core::destination>(parsed));
        }
        core::subscribe_options opt;
        link_filters filters;
        if (!read_filters(pn_terminus_filter(pn_link_remote_source(key)), filters))
            return refuse_link(s, "amqp:decode-error", "the source's filter set is not a map");
        if (found && !found->second.selector.empty()) filters.selector = found->second.selector;
        if (filters.selector) {
            // The kernel's selectors, on queues and topics (as Artemis: a bad one refuses the link).
            core::selector_error err;
            opt.selector = core::selector::compile(*filters.selector, err);
            if (!opt.selector) return refuse_link(s, "amqp:invalid-field", "invalid selector: " + err.message);
        }
        // A durable source on a topic, or the `shared` capability: a subscription named by the
        // container and the link (Qpid JMS), kept in the kernel apart from the link.
        const bool durable =
            found || (dest.is_topic() && !dynamic && pn_terminus_get_durability(rsrc) != PN_NONDURABLE);
        const bool shared = dest.is_topic() && !dynamic && has_capability(caps, "shared");
        const bool global = has_capability(caps, "global");
        std::string subscription;
        if (found) {
            subscription = found->first;
        } else if (durable || shared) {
            if (!global && container_.empty())
                return refuse_link(s, "amqp:invalid-field", "a durable or shared subscription needs a container-id");
            subscription = subscription_name(container_, s.name(), shared, global, durable);
        }
        // No-local applies to a topic subscription (JMS); a queue's receiver, and a durable or
        // shared subscription (whose queue the kernel fills from every publisher), ignore it,
        // and it is not echoed to them.
        filters.no_local = filters.no_local && dest.is_topic() && subscription.empty();
        opt.no_local = filters.no_local;

        auto o = std::make_unique<outgoing>();
        o->link = s;
        o->dest = dest;
        o->id = broker_.next_consumer_id();
        o->presettled = pn_link_remote_snd_settle_mode(key) == PN_SND_SETTLED;
        proton::sender_options so;
        so.auto_settle(false);
        if (o->presettled) so.delivery_mode(proton::delivery_mode::AT_MOST_ONCE);
        if (dynamic) {
            // The node's address goes back in our source (AMQP 1.0 §3.5.3). Set on the C terminus:
            // Proton's source_options do not set an address on a terminus that is dynamic.
            pn_terminus_set_address(pn_link_source(key), format_address(dest).c_str());
        }
        s.open(so);
        auto* lsrc = pn_link_source(key);
        echo_filters(pn_terminus_filter(lsrc), filters);
        if (found) {
            // The subscription's source, as it was attached.
            pn_terminus_set_type(lsrc, PN_SOURCE);
            pn_terminus_set_address(lsrc, format_address(dest).c_str());
            pn_terminus_set_durability(lsrc, PN_DELIVERIES);
            pn_terminus_set_expiry_policy(lsrc, PN_EXPIRE_NEVER);
        }
        if (!subscription.empty()) {
            if (!found) {
                pn_terminus_set_durability(lsrc, pn_terminus_get_durability(rsrc));
                pn_terminus_set_expiry_policy(lsrc, pn_terminus_get_expiry_policy(rsrc));
            }
            o->subscription = subscription;
            o->durable = durable;
            hold_subscription(subscription);
        }
        std::tie(o->name_key, o->serial) = claim_name(key);

        opt.credit = core::credit_mode::link;
        opt.prefetch = std::uint32_t(std::max(0, s.credit()));
        opt.connection = id();
        o->granted = *opt.prefetch;
        auto status = std::make_shared<core::subscribe_status>(core::subscribe_status::ok);
        if (!subscription.empty()) {
            // The kernel's durable subscription (a queue fed by the topic), attached to as a
            // queue: each link sharing it competes for its messages. A non-durable shared one is
            // one too, deleted with its last link (volatile_subscription_data marks it).
            o->dest = core::broker::durable_queue(subscription);
            opt.want_retained = false;   // a durable subscriber is not retroactive (ActiveMQ)
            add_consumer(*o);
            auto done = track_subscribe(*o, completion([this, status, key] { on_subscribed(*status, key); }));
            if (durable) remember_durable(subscription, dest, opt.selector);
            broker_.subscribe_durable(o->id, subscription, dest, std::move(opt), weak_from_this(), std::move(done),
                                      std::string(durable ? durable_subscription_data : volatile_subscription_data));
        } else {
            add_consumer(*o);
            auto done = track_subscribe(*o, completion([this, status, key] { on_subscribed(*status, key); }));
            broker_.subscribe_checked(o->id, o->dest, std::move(opt), weak_from_this(),
                                      [status, done = std::move(done)](core::subscribe_status st) {
                                          *status = st;
                                          done();
                                      });
        }
        log(spdlog::level::debug, "link=sender address={} dynamic={} subscription={}", format_address(dest), dynamic,
            subscription);
        outs_[key] = std::move(o);
    }

    // The durable subscription a link name (of this container, or global) names.
    std::optional<std::pair<std::string, known_subscription>> lookup_durable(std::string_view link_name) {
        for (const auto& name : {subscription_name(container_, link_name, false, false, true),
                                 subscription_name(container_, link_name, true, false, true),
                                 subscription_name({}, link_name, true, true, true)}) {
            if (container_.empty() && name.front() != ':') continue;
            if (auto k = find_durable(name)) return std::pair{name, std::move(*k)};
        }
        return std::nullopt;
    }

    static bool has_capability(const std::vector<std::string>& caps, std::string_view c) {
        return std::find(caps.begin(), caps.end(), c) != caps.end();
    }

    void on_subscribed(core::subscribe_status st, pn_link_t* key) {
        if (st == core::subscribe_status::ok) return;
        const auto it = outs_.find(key);
        if (it == outs_.end()) return;
        auto o = std::move(it->second);
        outs_.erase(it);
        release_name(o->name_key, o->serial);
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

    // `closed`: the client closed the link (detach with closed=true), which ends a durable
    // subscription once no other link is attached to it (JMS unsubscribe); a detach keeps it.
    void end_outgoing(const proton::sender& s, bool closed) {
        const auto it = outs_.find(raw(s));
        if (it == outs_.end()) return;
        auto o = std::move(it->second);
        outs_.erase(it);
        finish_outgoing(*o, closed);
    }

    void finish_outgoing(outgoing& o, bool closed) {
        flush_acks(o);   // accepted before the link ended: not redelivered
        release_name(o.name_key, o.serial);
        std::function<void()> then;
        if (!o.subscription.empty() && drop_subscription(o.subscription) == 0 && (closed || !o.durable)) {
            log(spdlog::level::debug, "subscription={} deleted", o.subscription);
            if (o.durable) forget_durable(o.subscription);
            then = [b = &broker_, name = o.subscription] { b->unsubscribe_durable(name); };
        }
        end_consumer(o, std::move(then));   // what it had unsettled goes back to the queue
    }

    void on_sender_close(proton::sender& s) override { end_outgoing(s, true); }
    void on_sender_detach(proton::sender& s) override { end_outgoing(s, false); }

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
        if (pn_delivery_remote_state(dl) == transactional_state_code) return settle_transactional_ack(t);
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
        if (auto* o = find_out(t.sender()); o && tag) {
            // Accepted ones go to the kernel together, once per pump (flush_acks): one kernel
            // call for a disposition range, not one per delivery. Any other outcome goes at
            // once, after the acceptances before it.
            if (oc.what == core::settle_outcome::kind::accepted) {
                if (o->acks.empty()) acks_pending_.push_back(raw(t.sender()));
                o->acks.push_back(*tag);
            } else {
                flush_acks(*o);
                broker_.settle(o->id, {*tag}, std::move(oc));
            }
        }
        t.settle();
    }

    // Before dispatch, as take_transfers() does for transfers: the client's settled acceptances
    // of our deliveries (a consumer's common disposition, one per message) are collected for the
    // kernel (flush_acks), the delivery settled and its update cleared, so that the C++ layer's
    // event for it finds nothing to report (no on_tracker_accept / on_tracker_settle, no
    // tracker wrappers). Clients accept in order: each link's unsettled deliveries are taken
    // from the oldest while they are such acceptances. Everything else (another outcome, a
    // transactional state, an unsettled disposition, an acceptance out of order) goes through
    // the handlers as before.
    void take_acceptances() {
        for (auto& [l, o] : outs_) {
            if (pn_link_unsettled(l) == 0) continue;
            // (pn_unsettled_head skips the settled deliveries Proton has not freed yet: called
            // once, then pn_unsettled_next from the one just taken.)
            for (pn_delivery_t* dl = pn_unsettled_head(l); dl;) {
                if (!pn_delivery_updated(dl) || !pn_delivery_settled(dl) || pn_delivery_remote_state(dl) != PN_ACCEPTED)
                    break;
                pn_delivery_t* next = pn_unsettled_next(dl);
                const pn_delivery_tag_t tag = pn_delivery_tag(dl);
                if (tag.size != 8) break;
                core::delivery_tag t = 0;
                for (std::size_t i = 0; i < 8; ++i) t = t << 8 | static_cast<std::uint8_t>(tag.start[i]);
                if (o->acks.empty()) acks_pending_.push_back(l);
                o->acks.push_back(t);
                pn_delivery_clear(dl);
                pn_delivery_settle(dl);
                dl = next;
            }
        }
    }

    void flush_acks(outgoing& o) {
        if (o.acks.empty()) return;
        broker_.settle(o.id, std::move(o.acks), core::settle_outcome::accepted());
        o.acks.clear();
    }
    void flush_acks() {
        for (auto* key : acks_pending_)
            if (auto it = outs_.find(key); it != outs_.end()) flush_acks(*it->second);
        acks_pending_.clear();
    }

    // A transactional disposition: its outcome is buffered in the transaction (until then the
    // delivery stays in flight); a rollback gives it back, counted as a redelivery. Applied
    // when the client settles it.
    void settle_transactional_ack(proton::tracker& t) {
        auto* dl = raw(t);
        const auto st = transactional_state(pn_disposition_data(pn_delivery_remote(dl)));
        const auto txid = st.id;
        auto* tx = txid ? find_tx(*txid) : nullptr;
        auto* o = find_out(t.sender());
        const auto tag = tag_of(t.tag());
        if (!tx) {
            // Nothing to apply it to: the link ends (as Artemis does), its deliveries go back.
            t.settle();
            if (o) {
                auto link = o->link;
                end_outgoing(link, false);
                link.close(proton::error_condition("amqp:transaction:unknown-id", "no such transaction"));
            }
            return;
        }
        if (o && tag && !tx->failed && tx->tx->settle(o->id, {*tag}, outcome_of(st)) != core::tx_status::ok)
            tx->failed = true;
        log(spdlog::level::debug, "txn={} disposition outcome={:#x}", *txid, st.code);
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
    bool pump_posted_ = false;   // pump_later(): a pump() is on its way
    std::vector<pn_link_t*> acks_pending_;   // outgoing links with acks to flush (flush_acks)
    std::vector<std::pair<core::consumer_id, core::delivery_tag>> written_settles_;   // see deliver()
    std::unordered_map<pn_link_t*, std::unique_ptr<outgoing>> outs_;
    std::unordered_map<pn_link_t*, std::unique_ptr<incoming>> ins_;
    std::string container_;   // the client's container-id (open): link names are unique within it
    std::unordered_map<std::uint64_t, amqp_transaction> txs_;   // declared, by txn-id
    std::uint64_t next_txn_ = 0;
    std::uint32_t committing_ = 0;   // discharges waiting for the kernel's commit
    bool decode_failed_ = false;     // a handler threw: the connection is closing with amqp:decode-error
};

}  // namespace

std::shared_ptr<engine::connection> make_session(std::shared_ptr<const settings> s, core::broker& broker,
                                                 core::auth_pool& auth, std::uint64_t connection_id) {
    return std::make_shared<session>(std::move(s), broker, auth, connection_id);
}

}  // namespace sb::amqp
