// adapters/openwire/session.cpp — OpenWire (ActiveMQ 5.x JMS clients) connection state machine.
//
// Runs in an engine::connection (adapters/engine/connection.hpp), which owns the mechanics: the
// decode loop, the output queue, deadlines, flow control and closing. The codec
// (adapters/openwire/codec.hpp) turns bytes into commands and back; this file gives them their
// meaning on the kernel. docs/openwire.md has the command-by-command account.
//
// The conversation: both sides send a WireFormatInfo at once (ours from the constructor, so the
// health check and a client that waits for it see it first); the client's fixes the negotiated
// format, and BrokerInfo follows in it. ConnectionInfo authenticates (the commands behind it
// wait); then sessions, producers, consumers, sends, acks and transactions. A command with
// response_required is answered with a Response (or an ExceptionResponse naming a Java exception
// class the client rebuilds) once the kernel has done what it asked: a persistent send after
// the store made the message durable, a consumer once subscribed, a commit once durable.
//
// Acknowledgements: the client acknowledges every delivery (the broker never settles on write,
// but for browsers), naming them by the broker sequence id we put into each dispatched
// MessageId (a per-connection counter, so acks never depend on the producers' ids). What the
// client redelivers itself (session recover, a rolled-back transaction) never comes back to
// the broker until it gives up (a poison ack: to the dead-letter queue with the cause).
#include "adapters/openwire/session.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "adapters/openwire/mapping.hpp"
#include "core/broker.hpp"
#include "core/security/auth_pool.hpp"
#include "core/transaction.hpp"

namespace sb::openwire {

namespace {

spdlog::logger& logger() {
    static const auto l = [] {
        auto existing = spdlog::get("openwire");
        return existing ? existing : spdlog::default_logger()->clone("openwire");
    }();
    return *l;
}

using engine::never;
using engine::time_point;
using key = std::pair<std::int64_t, std::int64_t>;   // (session, value) of a consumer or producer id

struct unacked {
    core::delivery_tag tag = 0;
    std::int64_t seq = 0;             // the broker sequence id it was dispatched with
    core::consumer_id part = 0;       // the kernel consumer it came from
    bool marked = false;              // delivered-acked or acked in an open transaction: window extended
    std::int64_t tx = -1;             // acked in this open local transaction
};

struct jms_consumer;

// One kernel consumer of a JMS consumer (a composite destination "a,b" has one per part).
struct part : engine::consumer {
    jms_consumer* owner = nullptr;
};

struct jms_consumer {
    std::string connection;           // the consumer id, as the client made it
    std::int64_t session = 0, value = 0;
    std::uint8_t dest_type = type::activemq_queue;
    std::string dest_name;            // as the client named it (for MessageDispatch)
    std::vector<std::unique_ptr<part>> parts;
    std::uint32_t prefetch = 0;
    bool pull = false;                // prefetch 0: MessagePull gives credit
    // Subscribed with prefetch 0 (link credit), then given a window by ConsumerControl (the
    // failover transport restores consumers so, and sends their prefetch once it is ready):
    // the window is kept by granting a unit back per settled delivery.
    bool link_window = false;
    bool browser = false;
    std::string durable;              // the kernel's durable subscription name, if durable
    std::deque<unacked> pending;      // dispatched, not yet settled, in dispatch order
    std::uint32_t marked = 0;         // entries of `pending` marked
    std::uint32_t window = 0;         // the window last set in the kernel
    bool pull_waiting = false;        // a timed MessagePull not yet answered
    time_point pull_deadline = never;

    consumer_id wire_id() const { return consumer_id{connection, session, value}; }
};

struct producer_state {
    std::int32_t window = 0;          // ProducerInfo.windowSize: > 0 wants a ProducerAck per async send
    std::uint64_t kernel_id = 0;      // broker::add_producer's id (0: anonymous, not registered)
};

struct local_tx {
    std::unique_ptr<core::transaction> tx;
    std::vector<std::pair<key, std::int64_t>> acks;   // (consumer, seq) acked in it
};

// A ConnectionInfo waiting for its authentication.
struct connecting {
    std::int32_t command_id = 0;
    bool response_required = false;
    std::string connection_id, client_id, user;
};

std::string_view text_of(bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

class session final : public engine::connection, public temp_resolver {
public:
    session(std::shared_ptr<const settings> s, core::broker& broker, core::auth_pool& auth, std::uint64_t conn)
        : engine::connection(broker, *s, conn, logger()), settings_(std::move(s)), auth_(auth),
          wf_(settings_->codec) {
        broker_id_ = "ID:" + settings_->broker_name;
        broker_producer_ = "ID:" + settings_->broker_name + "-0";
        // Our WireFormatInfo goes out at once, in the format every version starts with.
        wire_format_settings ours;
        ours.tight_encoding_enabled = true;
        ours.cache_enabled = true;
        ours.cache_size = 1024;
        ours.stack_trace_enabled = true;
        ours.tcp_no_delay_enabled = true;
        ours.max_inactivity_duration = settings_->max_inactivity_ms;
        ours.max_inactivity_duration_initial_delay = settings_->max_inactivity_initial_delay_ms;
        ours.max_frame_size = static_cast<std::int64_t>(settings_->codec.max_frame_size);
        ours_ = ours;
        write_settings(ours, our_props_);
        wire_format_info info;
        info.magic = bytes(openwire_magic, sizeof openwire_magic);
        info.version = max_version;
        info.marshalled_properties = bytes(reinterpret_cast<const std::uint8_t*>(our_props_.data()), our_props_.size());
        if (auto e = wf_.encode(info, out()); !e.empty()) log(spdlog::level::err, "reason=encode detail=\"{}\"", e);
    }

private:
    // ---- engine::connection ------------------------------------------------------------

    engine::step decode(std::span<const std::uint8_t> in) override {
        auto r = wf_.decode(bytes(in.data(), in.size()));
        if (auto* m = std::get_if<need_more>(&r)) return engine::step::need_more(m->at_least);
        if (auto* e = std::get_if<decode_error>(&r)) return engine::step::error(e->detail);
        const auto& d = std::get<decoded>(r);
        frame_ = d.frame;
        return engine::step::frame(d.consumed);
    }

    void on_frame() override {
        if (frame_) handle(*frame_);
        frame_ = nullptr;
    }

    void deliver(engine::consumer& c, core::delivery d) override {
        auto& p = static_cast<part&>(c);
        auto& jc = *p.owner;
        message_dispatch md;
        const auto wire = jc.wire_id();
        md.consumer_id = wire;
        md.destination = destination{jc.dest_type, jc.dest_name};
        if (!d.msg) {   // the end of a browse: a dispatch without a message (ActiveMQ's)
            if (auto e = wf_.encode(md, out()); !e.empty()) log(spdlog::level::err, "reason=encode detail=\"{}\"", e);
            return;
        }
        if (d.msg->reply_to && d.msg->reply_to->is_temporary()) advise_reply_to(*d.msg->reply_to);
        const std::int64_t seq = ++next_seq_;
        message m;
        message_to_wire(*d.msg, *this, broker_producer_, scratch_, m);
        if (m.message_id) m.message_id->broker_sequence_id = seq;
        m.redelivery_counter = static_cast<std::int32_t>(d.redeliveries);
        m.jmsx_group_first_for_consumer = d.group_first;
        m.arrival = d.msg->timestamp_ms;
        md.message = &m;
        md.redelivery_counter = m.redelivery_counter;
        if (auto e = wf_.encode(md, out()); !e.empty()) {
            // Nothing the client could read: to the dead-letter queue, with why.
            log(spdlog::level::warn, "reason=undeliverable detail=\"{}\"", e);
            broker_.settle(p.id, {d.tag}, core::settle_outcome::rejected("OpenWire: " + std::string(e)));
            return;
        }
        if (jc.browser) {
            settle_on_write(p.id, d.tag);
        } else {
            jc.pending.push_back(unacked{d.tag, seq, p.id, false, -1});
        }
        jc.pull_waiting = false;
    }

    void on_browse_end(core::consumer_id id) override { on_delivery(id, core::delivery{}); }

    // ActiveMQ's client sends to a temporary destination only once its advisory consumer saw
    // it advised. With the kernel's advisories off (broker.advisories), a JMSReplyTo naming
    // another connection's temporary destination is advised here, to this connection's
    // watcher of ActiveMQ.Advisory.TempQueue / TempTopic only, before the message that names
    // it: request/reply across connections works without advisories.
    void advise_reply_to(const core::destination& d) {
        if (broker_.settings().advisories || !own_name(d).empty()) return;
        if (advised_.contains(d.name) || advised_.size() >= settings_->max_temporaries) return;
        const std::string_view topic = d.kind == core::dest_kind::temp_queue ? "ActiveMQ.Advisory.TempQueue"
                                                                             : "ActiveMQ.Advisory.TempTopic";
        for (auto& [k, jc] : consumers_) {
            for (auto& p : jc->parts) {
                if (!p->dest.is_topic() || p->dest.name != topic) continue;
                advised_.insert(d.name);
                destination_info info;
                info.destination = destination{d.kind == core::dest_kind::temp_queue ? type::activemq_temp_queue
                                                                                     : type::activemq_temp_topic,
                                               d.name};
                info.operation_type = destination_operation::add;
                data_structure ds;
                ds.value = info;
                message m;
                message_id mid;
                mid.producer_id = producer_id{broker_producer_, 0, 0};
                mid.producer_sequence_id = ++next_seq_;
                mid.broker_sequence_id = next_seq_;
                m.message_id = mid;
                m.producer_id = mid.producer_id;
                m.destination = destination{type::activemq_topic, topic};
                m.type = "Advisory";
                m.timestamp = core::now_ms();
                m.data_structure = &ds;
                message_dispatch md;
                md.consumer_id = jc->wire_id();
                md.destination = destination{jc->dest_type, jc->dest_name};
                md.message = &m;
                if (auto e = wf_.encode(md, out()); !e.empty()) log(spdlog::level::err, "reason=encode detail=\"{}\"", e);
                return;
            }
        }
    }

    void fail(const engine::error& e) override {
        if (e.kind == engine::error_kind::malformed) return connection_error("java.io.IOException", e.detail);
        if (e.kind == engine::error_kind::receive_timeout)
            log(spdlog::level::info, "reason=inactivity detail=\"no command for the negotiated inactivity duration\"");
        abort();
    }

    void on_closing() override {
        connecting_.reset();
        if (!client_id_.empty()) settings_->clients->release(client_id_);
        client_id_.clear();
        for (auto& [k, jc] : consumers_)
            for (auto& p : jc->parts) end_consumer(*p);
        consumers_.clear();
        txs_.clear();   // rolled back (nothing of ours is in them but sends)
    }

    void on_send_idle() override { write(keep_alive_info{}); }

    void on_timer(time_point now) override {
        time_point next = never;
        for (auto& [k, jc] : consumers_) {
            if (!jc->pull_waiting) continue;
            if (jc->pull_deadline <= now) {
                jc->pull_waiting = false;
                expire_pull(*jc);
            } else {
                next = std::min(next, jc->pull_deadline);
            }
        }
        set_timer(next);
    }

    // A ConnectionInfo being authenticated, or a commit under way: the commands behind it wait
    // (a send after a commit must not overtake the transaction's messages).
    bool input_held() const noexcept override { return connecting_ != nullptr || committing_ > 0; }

    // ---- temp_resolver ---------------------------------------------------------------------

    std::optional<core::destination> own_temporary(std::string_view name, bool queue) const override {
        auto it = temps_.find(std::string(name));
        if (it == temps_.end() || it->second.is_queue() != queue) return std::nullopt;
        return it->second;
    }

    std::string_view own_name(const core::destination& d) const override {
        auto it = temp_names_.find(d.name);
        return it == temp_names_.end() ? std::string_view() : std::string_view(it->second);
    }

    // ---- commands ----------------------------------------------------------------------

    void handle(const command& c) {
        if (!negotiated_) {
            if (const auto* w = std::get_if<wire_format_info>(&c.value)) return on_wire_format(*w);
            return connection_error("java.io.IOException", "the first command must be a WireFormatInfo");
        }
        std::visit(
            [this, &c](const auto& v) {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, connection_info>) on_connection_info(v);
                else if constexpr (std::is_same_v<T, keep_alive_info>) {
                    if (v.response_required) write(keep_alive_info{});
                } else if constexpr (std::is_same_v<T, shutdown_info>) close();
                else if constexpr (std::is_same_v<T, wire_format_info>) {}   // a repeat: ignored
                else if constexpr (std::is_base_of_v<base_command, T>) {
                    // Commands that need the connection wait for ConnectionInfo; the others
                    // (a failover transport's ConnectionControl comes first) ask nothing yet.
                    constexpr bool needs_connection =
                        std::is_same_v<T, session_info> || std::is_same_v<T, producer_info> ||
                        std::is_same_v<T, consumer_info> || std::is_same_v<T, remove_info> ||
                        std::is_same_v<T, remove_subscription_info> || std::is_same_v<T, message> ||
                        std::is_same_v<T, message_ack> || std::is_same_v<T, message_pull> ||
                        std::is_same_v<T, transaction_info> || std::is_same_v<T, destination_info>;
                    if (!connected_ && !needs_connection) return respond(v);
                    if (!connected_)
                        return fail_command(v, "java.lang.IllegalStateException",
                                            "ConnectionInfo must come first, not command type " + std::to_string(type_of(c)));
                    dispatch(v);
                } else {
                    connection_error("java.io.IOException", "not a command");
                }
            },
            c.value);
    }

    template <typename T>
    void dispatch(const T& v) {
        if constexpr (std::is_same_v<T, session_info>) on_session_info(v);
        else if constexpr (std::is_same_v<T, producer_info>) on_producer_info(v);
        else if constexpr (std::is_same_v<T, consumer_info>) on_consumer_info(v);
        else if constexpr (std::is_same_v<T, remove_info>) on_remove_info(v);
        else if constexpr (std::is_same_v<T, remove_subscription_info>) on_remove_subscription(v);
        else if constexpr (std::is_same_v<T, message>) on_message(v);
        else if constexpr (std::is_same_v<T, message_ack>) on_ack(v);
        else if constexpr (std::is_same_v<T, message_pull>) on_pull(v);
        else if constexpr (std::is_same_v<T, transaction_info>) on_transaction(v);
        else if constexpr (std::is_same_v<T, destination_info>) on_destination_info(v);
        else if constexpr (std::is_same_v<T, consumer_control>) on_consumer_control(v);
        // The rest (ConnectionControl, ConsumerControl, FlushCommand, ControlCommand, a
        // Response, ProducerAck...) asks nothing of a broker: answered if asked, else ignored.
        else respond(v);
    }

    void on_wire_format(const wire_format_info& w) {
        if (text_of(w.magic) != std::string_view("ActiveMQ", 8))
            return connection_error("java.io.IOException", "not an OpenWire WireFormatInfo (magic)");
        if (w.version < min_version) return connection_error("java.io.IOException", "unsupported OpenWire version");
        wire_format_settings theirs;
        if (auto e = read_settings(w.marshalled_properties, theirs, wf_); !e.empty())
            return connection_error("java.io.IOException", e);
        const auto n = negotiate(max_version, ours_, w.version, theirs);
        wf_.apply(n);
        negotiated_ = true;
        // The inactivity monitor (ActiveMQ's): on when both sides announce a duration, the
        // smaller one; each side writes at least every third of it, and reads within it.
        std::int64_t inactivity = 0;
        if (theirs.max_inactivity_duration > 0 && settings_->max_inactivity_ms > 0)
            inactivity = std::min<std::int64_t>(theirs.max_inactivity_duration, settings_->max_inactivity_ms);
        const std::int64_t delay = std::max<std::int64_t>(theirs.max_inactivity_duration_initial_delay,
                                                          settings_->max_inactivity_initial_delay_ms);
        using ms = std::chrono::milliseconds;
        open(inactivity > 0 ? ms(inactivity + delay) : ms(0), inactivity > 0 ? ms(std::max<std::int64_t>(inactivity / 3, 1)) : ms(0));
        inactivity_ = inactivity;
        broker_info b;
        b.broker_id = broker_id{broker_id_};
        b.broker_url = empty_string;
        b.broker_name = settings_->broker_name;
        b.connection_id = static_cast<std::int64_t>(id());
        write(b);
        log(spdlog::level::debug, "wire_format version={} tight={} cache={} inactivity_ms={}", n.version, n.tight_encoding,
            n.cache_enabled, inactivity);
    }

    void on_connection_info(const connection_info& c) {
        if (connected_ || connecting_) return fail_command(c, "java.lang.IllegalStateException", "already connected");
        if (!c.connection_id || c.connection_id->value.empty())
            return fail_command(c, "javax.jms.JMSException", "ConnectionInfo without a connection id");
        auto x = std::make_unique<connecting>();
        x->command_id = c.command_id;
        x->response_required = c.response_required;
        x->connection_id = std::string(c.connection_id->value);
        x->client_id = std::string(c.client_id);
        x->user = std::string(c.user_name);
        connecting_ = std::move(x);
        auto done = completion([this](core::auth_result r) { on_authenticated(std::move(r)); });
        // No user name but a TLS client certificate: its user (credentials sent win over it).
        if (c.user_name.empty() && !peer_identity().empty()) {
            connecting_->user = std::string(peer_identity());
            return auth_.authenticate_certificate_async(peer_identity(), std::move(done));
        }
        auth_.authenticate_async(c.user_name, c.password, std::move(done));
    }

    void on_authenticated(core::auth_result r) {
        if (!connecting_ || state() >= engine::phase::closing) return;
        const auto c = std::move(connecting_);
        if (r.status == core::auth_status::busy)
            return refuse_connection(*c, "java.lang.SecurityException", "server busy");
        if (r.status != core::auth_status::accepted)
            return refuse_connection(*c, "java.lang.SecurityException",
                                     "User name [" + c->user + "] or password is invalid.");
        if (!c->client_id.empty() && !settings_->clients->acquire(c->client_id))
            return refuse_connection(*c, "javax.jms.InvalidClientIDException",
                                     "Broker: " + settings_->broker_name + " - Client: " + c->client_id +
                                         " already connected from another connection");
        client_id_ = c->client_id;
        connection_id_ = c->connection_id;
        connected_ = true;
        if (c->response_required) write_response(c->command_id);
    }

    void refuse_connection(const connecting& c, std::string_view cls, const std::string& why) {
        log(spdlog::level::warn, "reason=connection_refused detail=\"{}\"", why);
        if (c.response_required) write_exception(c.command_id, cls, why);
        close();
    }

    void on_session_info(const session_info& s) {
        if (!s.session_id || !own(s.session_id->connection_id))
            return fail_command(s, "javax.jms.JMSException", "SessionInfo for another connection");
        respond(s);
    }

    void on_producer_info(const producer_info& p) {
        if (!p.producer_id || !own(p.producer_id->connection_id))
            return fail_command(p, "javax.jms.JMSException", "ProducerInfo for another connection");
        const key k{p.producer_id->session_id, p.producer_id->value};
        if (producers_.contains(k)) return fail_command(p, "javax.jms.JMSException", "producer id already in use");
        producer_state st{p.window_size, 0};
        // A producer with a destination is the kernel's too (ActiveMQ.Advisory.Producer.*);
        // an anonymous one names a destination per message and is not.
        if (p.destination) {
            if (auto d = to_kernel(*p.destination, *this); d && d->name.find(',') == std::string::npos) {
                st.kernel_id = broker_.next_consumer_id();
                broker_.add_producer(id(), st.kernel_id, *d);
            }
        }
        producers_[k] = st;
        respond(p);
    }

    // ---- consumers -----------------------------------------------------------------------

    void on_consumer_info(const consumer_info& ci) {
        if (!ci.consumer_id || !own(ci.consumer_id->connection_id))
            return fail_command(ci, "javax.jms.JMSException", "ConsumerInfo for another connection");
        const key k{ci.consumer_id->session_id, ci.consumer_id->value};
        if (consumers_.contains(k)) return fail_command(ci, "javax.jms.JMSException", "consumer id already in use");
        if (consumers_.size() >= settings_->max_consumers)
            return fail_command(ci, "javax.jms.ResourceAllocationException", "too many consumers on this connection");
        if (!ci.destination) return fail_command(ci, "javax.jms.InvalidDestinationException", "a consumer needs a destination");
        // The parts of a composite destination ("a,b", "queue://a,topic://b").
        std::vector<core::destination> dests;
        std::string_view names = ci.destination->physical_name;
        while (!names.empty()) {
            const auto comma = names.find(',');
            destination d{ci.destination->type, names.substr(0, comma)};
            names = comma == std::string_view::npos ? std::string_view() : names.substr(comma + 1);
            if (d.physical_name.starts_with("queue://")) d = destination{type::activemq_queue, d.physical_name.substr(8)};
            else if (d.physical_name.starts_with("topic://")) d = destination{type::activemq_topic, d.physical_name.substr(8)};
            auto kd = to_kernel(d, *this);
            if (!kd || (!kd->is_temporary() && !core::valid_name(kd->name)))
                return fail_command(ci, "javax.jms.InvalidDestinationException",
                                    "invalid destination: " + std::string(d.physical_name));
            dests.push_back(std::move(*kd));
        }
        if (dests.empty()) return fail_command(ci, "javax.jms.InvalidDestinationException", "a consumer needs a destination");

        core::subscribe_options opt;
        opt.connection = id();
        opt.no_local = ci.no_local;
        opt.exclusive = ci.exclusive;
        opt.priority = ci.priority;
        if (ci.maximum_pending_message_limit > 0) opt.max_pending = std::size_t(ci.maximum_pending_message_limit);
        const auto prefetch = std::uint32_t(std::max<std::int32_t>(ci.prefetch_size, 0));
        opt.prefetch = prefetch;
        if (prefetch == 0) opt.credit = core::credit_mode::link;   // pulls give credit, settling none
        if (!is_null(ci.selector) && ci.selector.find_first_not_of(" \t\r\n") != std::string_view::npos) {
            core::selector_error err;
            opt.selector = core::selector::compile(ci.selector, err, settings_->selector_limits);
            if (!opt.selector) return fail_command(ci, "javax.jms.InvalidSelectorException", err.message);
        }
        if (ci.retroactive) log(spdlog::level::warn, "reason=retroactive_refused detail=\"retroactive consumers are not supported; a plain consumer instead\"");
        const bool durable = !is_null(ci.subscription_name) && !ci.subscription_name.empty();
        if (durable && (dests.size() != 1 || !dests[0].is_topic() || dests[0].is_temporary()))
            return fail_command(ci, "javax.jms.InvalidDestinationException", "durable subscriptions are for topics");
        if (durable && client_id_.empty())
            return fail_command(ci, "javax.jms.JMSException", "a durable subscriber needs a client id");
        if (ci.browser && (dests.size() != 1 || !dests[0].is_queue() || core::has_wildcard(dests[0].name)))
            return fail_command(ci, "javax.jms.InvalidDestinationException", "browsing is for one queue");

        auto jc = std::make_unique<jms_consumer>();
        jc->connection = std::string(ci.consumer_id->connection_id);
        jc->session = k.first;
        jc->value = k.second;
        jc->dest_type = ci.destination->type;
        jc->dest_name = std::string(ci.destination->physical_name);
        jc->prefetch = prefetch;
        jc->window = prefetch;
        jc->pull = prefetch == 0;
        jc->browser = ci.browser;
        // The Response once every part is subscribed; a refusal (a temporary destination gone
        // or another connection's) answers instead.
        auto waiting = std::make_shared<std::size_t>(dests.size());
        auto refused = std::make_shared<bool>(false);
        const std::int32_t cid = ci.command_id;
        const bool reply = ci.response_required;
        auto subscribed = [this, waiting, refused, cid, reply] {
            if (--*waiting == 0 && !*refused && reply && state() < engine::phase::closing) write_response(cid);
        };
        for (auto& dest : dests) {
            auto p = std::make_unique<part>();
            p->owner = jc.get();
            p->id = broker_.next_consumer_id();
            p->dest = dest;
            add_consumer(*p);
            auto done = track_subscribe(*p, completion(subscribed));
            if (ci.browser) {
                broker_.browse(p->id, p->dest, opt, weak_from_this(), std::move(done));
            } else if (durable) {
                jc->durable = client_id_ + ":" + std::string(ci.subscription_name);
                const auto topic = p->dest;
                p->dest = core::broker::durable_queue(jc->durable);   // acks and unsubscribe go there
                auto o = opt;
                o.want_retained = false;   // a durable subscriber is not retroactive (ActiveMQ)
                broker_.subscribe_durable(p->id, jc->durable, topic, o, weak_from_this(), std::move(done));
            } else if (p->dest.is_temporary()) {
                broker_.subscribe_checked(
                    p->id, p->dest, opt, weak_from_this(),
                    completion([this, done = std::move(done), refused, cid, reply](core::subscribe_status st) {
                        if (st != core::subscribe_status::ok && !*refused) {
                            *refused = true;
                            if (reply && state() < engine::phase::closing)
                                write_exception(cid, "javax.jms.InvalidDestinationException",
                                                st == core::subscribe_status::not_owner
                                                    ? "Cannot use a Temporary destination from another Connection"
                                                    : "Cannot consume from a deleted Destination");
                        }
                        done();
                    }));
            } else {
                broker_.subscribe(p->id, p->dest, opt, weak_from_this(), std::move(done));
            }
            jc->parts.push_back(std::move(p));
        }
        consumers_.emplace(k, std::move(jc));
    }

    jms_consumer* find_consumer(const std::optional<consumer_id>& id) {
        if (!id) return nullptr;
        auto it = consumers_.find(key{id->session_id, id->value});
        return it == consumers_.end() ? nullptr : it->second.get();
    }

    // The consumer's window: its prefetch, plus what the client acknowledged as delivered (or
    // acked in an open transaction) and still holds (ActiveMQ's prefetch extension).
    void update_window(jms_consumer& jc) {
        if (jc.pull || jc.browser || jc.link_window) return;
        const std::uint32_t w = jc.prefetch + jc.marked;
        if (w == jc.window) return;
        jc.window = w;
        for (auto& p : jc.parts) broker_.set_credit(p->id, p->dest, w);
    }

    void end_jms_consumer(jms_consumer& jc, std::int64_t last_delivered) {
        // What was dispatched but never given to the application goes back as it was (not
        // counted as a redelivery); the kernel's unsubscribe counts the rest.
        if (last_delivered >= -1) {
            std::map<core::consumer_id, std::vector<core::delivery_tag>> unseen;
            for (const auto& u : jc.pending)
                if (u.seq > last_delivered && u.tx < 0) unseen[u.part].push_back(u.tag);
            for (auto& [part_id, tags] : unseen) broker_.settle(part_id, std::move(tags), core::settle_outcome::released());
        }
        for (auto& p : jc.parts) end_consumer(*p);
    }

    void on_remove_info(const remove_info& r) {
        std::visit(
            [&](const auto& id) {
                using T = std::decay_t<decltype(id)>;
                if constexpr (std::is_same_v<T, consumer_id>) {
                    auto it = consumers_.find(key{id.session_id, id.value});
                    if (it != consumers_.end()) {
                        end_jms_consumer(*it->second, r.last_delivered_sequence_id);
                        consumers_.erase(it);
                    }
                } else if constexpr (std::is_same_v<T, producer_id>) {
                    remove_producer(key{id.session_id, id.value});
                } else if constexpr (std::is_same_v<T, session_id>) {
                    for (auto it = consumers_.begin(); it != consumers_.end();) {
                        if (it->first.first != id.value) {
                            ++it;
                            continue;
                        }
                        end_jms_consumer(*it->second, r.last_delivered_sequence_id);
                        it = consumers_.erase(it);
                    }
                    std::vector<key> gone;
                    for (const auto& [k, p] : producers_)
                        if (k.first == id.value) gone.push_back(k);
                    for (const auto& k : gone) remove_producer(k);
                }
                // The connection's: answered; its ShutdownInfo (or the socket's end) closes.
            },
            r.object_id);
        respond(r);
    }

    void remove_producer(const key& k) {
        auto it = producers_.find(k);
        if (it == producers_.end()) return;
        if (it->second.kernel_id) broker_.remove_producer(id(), it->second.kernel_id);
        producers_.erase(it);
    }

    void on_remove_subscription(const remove_subscription_info& r) {
        const std::string client = is_null(r.client_id) || r.client_id.empty() ? client_id_ : std::string(r.client_id);
        if (client.empty()) return fail_command(r, "javax.jms.JMSException", "a durable subscription needs a client id");
        const std::string name = client + ":" + std::string(r.subscription_name);
        for (const auto& [k, jc] : consumers_)
            if (jc->durable == name) return fail_command(r, "javax.jms.JMSException", "Durable consumer is in use");
        const std::int32_t cid = r.command_id;
        const bool reply = r.response_required;
        broker_.unsubscribe_durable(name, completion([this, cid, reply] {
            if (reply && state() < engine::phase::closing) write_response(cid);
        }));
    }

    // ---- acknowledgements ----------------------------------------------------------------

    void on_ack(const message_ack& a) {
        auto* jc = find_consumer(a.consumer_id);
        // A consumer already removed (its acks raced its RemoveInfo): nothing to settle.
        if (!jc || !a.last_message_id) return respond(a);
        const std::int64_t last = a.last_message_id->broker_sequence_id;
        const std::int64_t first = a.first_message_id ? a.first_message_id->broker_sequence_id : last;
        local_tx* tx = nullptr;
        std::int64_t txid = -1;
        if (a.transaction_id) {
            const auto* local = std::get_if<local_transaction_id>(&*a.transaction_id);
            if (!local) return fail_command(a, "javax.jms.JMSException", "XA transactions are not supported");
            auto it = txs_.find(local->value);
            if (it == txs_.end()) return fail_command(a, "javax.jms.JMSException", "unknown transaction");
            tx = &it->second;
            txid = local->value;
        }
        switch (a.ack_type) {
        case ack_type::delivered:
            // Delivered to the application, not yet acknowledged: the window opens by as many.
            for (auto& u : jc->pending) {
                if (u.seq > last) break;   // in dispatch order: the rest came later
                if (!u.marked) {
                    u.marked = true;
                    ++jc->marked;
                }
            }
            update_window(*jc);
            break;
        case ack_type::standard:
        case ack_type::individual:
        case ack_type::unmatched:
        case ack_type::expired: {
            const bool one = a.ack_type == ack_type::individual;
            if (tx) {
                for (auto& u : jc->pending) {
                    if (u.tx >= 0 || (one ? u.seq != last : u.seq > last)) continue;
                    u.tx = txid;
                    if (!u.marked) {
                        u.marked = true;
                        ++jc->marked;
                    }
                    tx->acks.emplace_back(key{jc->session, jc->value}, u.seq);
                }
                update_window(*jc);
                break;
            }
            settle(*jc, last, [&](const unacked& u) { return u.tx < 0 && (!one || u.seq == last); },
                   core::settle_outcome::accepted());
            break;
        }
        case ack_type::poison: {
            // The client gave up redelivering (its redelivery policy): to the dead-letter queue,
            // the cause kept as ActiveMQ keeps it.
            std::string cause;   // none before version 7, as ActiveMQ
            if (a.poison_cause) {
                cause = std::string(a.poison_cause->class_name);
                if (!is_null(a.poison_cause->message)) cause += ": " + std::string(a.poison_cause->message);
            }
            settle(*jc, last, [&](const unacked& u) { return u.seq >= first; },
                   core::settle_outcome::rejected(std::move(cause)));
            break;
        }
        case ack_type::redelivered:   // the client redelivers locally; nothing changes here
        default: break;
        }
        respond(a);
    }

    // Settles the deliveries up to broker sequence id `last` that `which` picks. `pending` is in
    // dispatch order (sequence ids grow), so the walk ends at the first later one: a client
    // acknowledging every message (AUTO_ACKNOWLEDGE) pays for what it settles, not for the
    // prefetch window of deliveries behind it.
    template <typename Pred>
    void settle(jms_consumer& jc, std::int64_t last, Pred which, core::settle_outcome outcome) {
        // Per kernel consumer (one but for a composite destination), in first-seen order.
        std::vector<std::pair<core::consumer_id, std::vector<core::delivery_tag>>> tags;
        for (auto it = jc.pending.begin(); it != jc.pending.end() && it->seq <= last;) {
            if (!which(*it)) {
                ++it;
                continue;
            }
            auto t = std::find_if(tags.begin(), tags.end(), [&](const auto& e) { return e.first == it->part; });
            if (t == tags.end()) t = tags.emplace(tags.end(), it->part, std::vector<core::delivery_tag>{});
            t->second.push_back(it->tag);
            if (it->marked) --jc.marked;
            it = jc.pending.erase(it);
        }
        for (auto& [part_id, t] : tags) {
            const auto n = std::uint32_t(t.size());
            broker_.settle(part_id, std::move(t), outcome);
            if (jc.link_window) grant_back(jc, part_id, n);
        }
        update_window(jc);
    }

    void grant_back(jms_consumer& jc, core::consumer_id part_id, std::uint32_t n) {
        for (auto& p : jc.parts)
            if (p->id == part_id) broker_.grant(p->id, p->dest, n);
    }

    // A consumer's new prefetch (ActiveMQ's failover transport restores a consumer with
    // prefetch 0, then sends its real prefetch here once the client dropped what it held).
    void on_consumer_control(const consumer_control& cc) {
        auto* jc = find_consumer(cc.consumer_id);
        if (!jc || jc->browser || cc.close || cc.prefetch < 0) return respond(cc);
        const auto n = std::uint32_t(cc.prefetch);
        if (jc->pull || jc->link_window) {
            if (n == 0) return respond(cc);
            jc->pull = false;
            jc->link_window = true;
            jc->prefetch = n;
            const auto held = std::uint32_t(std::min<std::size_t>(jc->pending.size(), n));
            for (auto& p : jc->parts) broker_.set_credit(p->id, p->dest, n - held);
        } else {
            jc->prefetch = n;
            update_window(*jc);
        }
        respond(cc);
    }

    // ---- prefetch 0 ------------------------------------------------------------------------

    void on_pull(const message_pull& mp) {
        auto* jc = find_consumer(mp.consumer_id);
        if (!jc || !jc->pull) return respond(mp);
        for (auto& p : jc->parts) broker_.set_credit(p->id, p->dest, 1);
        if (mp.timeout < 0) {
            jc->pull_waiting = false;
            expire_pull(*jc);   // receiveNoWait: what is there now, else "nothing"
        } else if (mp.timeout > 0) {
            jc->pull_waiting = true;
            jc->pull_deadline = now() + std::chrono::milliseconds(mp.timeout);
            if (jc->pull_deadline < timer()) set_timer(jc->pull_deadline);
        }
        respond(mp);
    }

    // A pull's time is up: dispatch what is there within the credit, and if nothing went,
    // tell the client (a MessageDispatch without a message ends its receive with null).
    void expire_pull(jms_consumer& jc) {
        const key k{jc.session, jc.value};
        auto remaining = std::make_shared<std::size_t>(jc.parts.size());
        auto delivered = std::make_shared<std::uint32_t>(0);
        for (auto& p : jc.parts) {
            broker_.drain(p->id, p->dest, completion([this, k, remaining, delivered](core::drain_result r) {
                *delivered += r.delivered;
                if (--*remaining != 0 || *delivered != 0 || state() >= engine::phase::closing) return;
                auto it = consumers_.find(k);
                if (it == consumers_.end()) return;
                message_dispatch md;
                md.consumer_id = it->second->wire_id();
                md.destination = destination{it->second->dest_type, it->second->dest_name};
                if (auto e = wf_.encode(md, out()); !e.empty()) log(spdlog::level::err, "reason=encode detail=\"{}\"", e);
            }));
        }
    }

    // ---- sends -----------------------------------------------------------------------------

    void on_message(const message& m) {
        if (!m.destination) return fail_command(m, "javax.jms.InvalidDestinationException", "a message needs a destination");
        auto dest = to_kernel(*m.destination, *this);
        if (!dest || (!dest->is_temporary() && !core::valid_name(dest->name)))
            return fail_command(m, "javax.jms.InvalidDestinationException", "invalid destination");
        auto msg = std::make_shared<core::message>();
        if (auto e = message_from_wire(m, std::move(*dest), wf_, *this, settings_->codec.max_frame_size, *msg))
            return fail_command(m, e->exception_class, e->message);
        msg->id = broker_.next_message_id();
        if (msg->timestamp_ms == 0) msg->timestamp_ms = core::now_ms();
        msg->origin_connection = id();
        const std::int32_t cid = m.command_id;
        const bool reply = m.response_required;

        if (m.transaction_id) {
            const auto* local = std::get_if<local_transaction_id>(&*m.transaction_id);
            if (!local) return fail_command(m, "javax.jms.JMSException", "XA transactions are not supported");
            auto it = txs_.find(local->value);
            if (it == txs_.end()) return fail_command(m, "javax.jms.JMSException", "unknown transaction");
            if (it->second.tx->send(std::move(msg)) != core::tx_status::ok)
                return fail_command(m, "javax.jms.JMSException", "transaction too large");
            return respond(m);
        }
        // An async send from a producer with a window is answered with a ProducerAck of the
        // message's size (ActiveMQ's Message.getSize()) once the kernel took it.
        std::optional<producer_id> ack_to;
        std::int32_t size = 0;
        if (!reply && m.producer_id) {
            auto p = producers_.find(key{m.producer_id->session_id, m.producer_id->value});
            if (p != producers_.end() && p->second.window > 0) {
                ack_to = producer_id{connection_id_, m.producer_id->value, m.producer_id->session_id};
                size = static_cast<std::int32_t>(1024 + m.content.size() + m.marshalled_properties.size());
            }
        }
        begin_unconfirmed();
        broker_.publish(std::move(msg), completion([this, cid, reply, ack_to, size](core::publish_status st) {
            end_unconfirmed();
            if (state() >= engine::phase::closing) return;
            if (st == core::publish_status::ok) {
                if (reply) write_response(cid);
                else if (ack_to) write(producer_ack{{}, ack_to, size});
                return;
            }
            const char* why = st == core::publish_status::no_destination ? "Cannot publish to a deleted Destination"
                              : st == core::publish_status::invalid  ? "invalid scheduling properties"
                                                                     : "the broker could not store the message";
            const char* cls = st == core::publish_status::no_destination ? "javax.jms.InvalidDestinationException"
                              : st == core::publish_status::invalid  ? "javax.jms.JMSException"
                                                                     : "java.io.IOException";
            if (reply) write_exception(cid, cls, why);
            else log(spdlog::level::warn, "reason=send_failed detail=\"{}\"", why);
        }));
    }

    // ---- transactions ----------------------------------------------------------------------

    void on_transaction(const transaction_info& t) {
        // RECOVER (a transaction manager's recovery scan, XAResource.recover) names no id.
        if (!t.transaction_id && t.type == transaction_type::recover)
            return fail_command(t, "javax.transaction.xa.XAException", "XA transactions are not supported");
        if (!t.transaction_id) return fail_command(t, "javax.jms.JMSException", "TransactionInfo without a transaction id");
        const auto* local = std::get_if<local_transaction_id>(&*t.transaction_id);
        if (!local) return fail_command(t, "javax.transaction.xa.XAException", "XA transactions are not supported");
        const std::int64_t txid = local->value;
        auto it = txs_.find(txid);
        switch (t.type) {
        case transaction_type::begin:
            if (it != txs_.end()) return fail_command(t, "javax.jms.JMSException", "transaction already started");
            if (txs_.size() >= settings_->max_transactions)
                return fail_command(t, "javax.jms.JMSException", "too many transactions on this connection");
            txs_.emplace(txid, local_tx{broker_.begin_transaction(id(), settings_->max_transaction_frames), {}});
            return respond(t);
        case transaction_type::commit_one_phase: {
            if (it == txs_.end()) return fail_command(t, "javax.jms.JMSException", "unknown transaction");
            auto tx = std::move(it->second);
            txs_.erase(it);
            // The acks go into the kernel transaction now (not as they came: a rollback leaves
            // the client's deliveries where they are, for it to redeliver itself).
            std::map<core::consumer_id, std::vector<core::delivery_tag>> tags;
            for (const auto& [k, seq] : tx.acks) {
                auto c = consumers_.find(k);
                if (c == consumers_.end()) continue;
                auto& jc = *c->second;
                for (auto u = jc.pending.begin(); u != jc.pending.end(); ++u) {
                    if (u->seq != seq) continue;
                    tags[u->part].push_back(u->tag);
                    if (u->marked) --jc.marked;
                    if (jc.link_window) grant_back(jc, u->part, 1);
                    jc.pending.erase(u);
                    break;
                }
            }
            for (auto& [part_id, v] : tags)
                if (tx.tx->ack(part_id, std::move(v)) != core::tx_status::ok) {
                    tx.tx->rollback();
                    return fail_command(t, "javax.jms.TransactionRolledBackException", "transaction too large");
                }
            for (auto& [k, jc] : consumers_) update_window(*jc);
            ++committing_;
            const std::int32_t cid = t.command_id;
            const bool reply = t.response_required;
            tx.tx->commit(completion([this, cid, reply](core::publish_status st) {
                --committing_;
                if (state() >= engine::phase::closing) return;
                if (st != core::publish_status::ok) {
                    if (reply) write_exception(cid, "javax.jms.TransactionRolledBackException", "the broker could not store the transaction");
                    return close();
                }
                if (reply) write_response(cid);
            }));
            return;
        }
        case transaction_type::rollback:
            if (it == txs_.end()) return fail_command(t, "javax.jms.JMSException", "unknown transaction");
            // The client redelivers what it received in the transaction itself: those stay
            // dispatched to it, acked no more.
            for (auto& [k, jc] : consumers_)
                for (auto& u : jc->pending)
                    if (u.tx == txid) u.tx = -1;
            it->second.tx->rollback();
            txs_.erase(it);
            return respond(t);
        case transaction_type::end:
        case transaction_type::forget: return respond(t);
        default: return fail_command(t, "javax.jms.JMSException", "two-phase commit needs XA transactions, which are not supported");
        }
    }

    // ---- temporary destinations ------------------------------------------------------------

    void on_destination_info(const destination_info& d) {
        if (!d.destination) return respond(d);
        const auto t = d.destination->type;
        if (t != type::activemq_temp_queue && t != type::activemq_temp_topic) return respond(d);   // nothing to create
        const bool queue = t == type::activemq_temp_queue;
        const std::string name(d.destination->physical_name);
        if (d.operation_type == destination_operation::add) {
            if (temps_.contains(name)) return respond(d);
            if (temps_.size() >= settings_->max_temporaries)
                return fail_command(d, "javax.jms.ResourceAllocationException", "too many temporary destinations");
            const std::int32_t cid = d.command_id;
            const bool reply = d.response_required;
            auto kd = broker_.create_temporary(id(), queue ? core::dest_kind::temp_queue : core::dest_kind::temp_topic,
                                               completion([this, cid, reply] {
                                                   if (reply && state() < engine::phase::closing) write_response(cid);
                                               }));
            temp_names_.emplace(kd.name, name);
            temps_.emplace(name, std::move(kd));
            return;
        }
        // Remove: refused while this connection consumes from it (ActiveMQ's rule); the kernel
        // keeps it until the connection ends (it deletes temporaries with their connection).
        auto it = temps_.find(name);
        if (it != temps_.end()) {
            for (const auto& [k, jc] : consumers_)
                for (const auto& p : jc->parts)
                    if (p->dest == it->second)
                        return fail_command(d, "javax.jms.JMSException", "A consumer is consuming from the temporary destination");
        }
        respond(d);
    }

    // ---- answers ---------------------------------------------------------------------------

    bool own(std::string_view conn) const noexcept { return conn == connection_id_; }

    template <typename T>
    void write(const T& c) {
        if (auto e = wf_.encode(c, out()); !e.empty()) log(spdlog::level::err, "reason=encode detail=\"{}\"", e);
    }

    void write_response(std::int32_t correlation) {
        response r;
        r.correlation_id = correlation;
        write(r);
    }

    void write_exception(std::int32_t correlation, std::string_view cls, std::string_view why) {
        throwable t;
        t.class_name = cls;
        t.message = why;
        exception_response r;
        r.correlation_id = correlation;
        r.exception = &t;
        write(r);
    }

    template <typename T>
    void respond(const T& c) {
        if constexpr (std::is_base_of_v<base_command, T>)
            if (c.response_required) write_response(c.command_id);
    }

    // A command refused: an ExceptionResponse when the client waits for an answer (it throws
    // the exception there); otherwise only logged (an async command has nobody to tell).
    template <typename T>
    void fail_command(const T& c, std::string_view cls, std::string_view why) {
        log(spdlog::level::info, "reason=refused detail=\"{}: {}\"", cls, why);
        if constexpr (std::is_base_of_v<base_command, T>)
            if (c.response_required) write_exception(c.command_id, cls, why);
    }

    // The connection cannot go on: a ConnectionError, then close this connection only.
    void connection_error(std::string_view cls, std::string_view why) {
        if (state() >= engine::phase::closing) return;
        log(spdlog::level::warn, "reason=protocol_error detail=\"{}\"", why);
        throwable t;
        t.class_name = cls;
        t.message = why;
        openwire::connection_error e;
        e.exception = &t;
        write(e);
        close();
    }

    std::shared_ptr<const settings> settings_;
    core::auth_pool& auth_;
    wire_format wf_;
    const command* frame_ = nullptr;
    wire_format_settings ours_;
    std::string our_props_;
    std::string broker_id_, broker_producer_;
    bool negotiated_ = false;
    bool connected_ = false;
    std::int64_t inactivity_ = 0;
    std::unique_ptr<connecting> connecting_;
    std::size_t committing_ = 0;
    std::string connection_id_, client_id_;
    std::int64_t next_seq_ = 0;
    std::map<key, std::unique_ptr<jms_consumer>> consumers_;
    std::map<key, producer_state> producers_;
    std::unordered_map<std::int64_t, local_tx> txs_;
    std::unordered_map<std::string, core::destination> temps_;     // the client's name -> the kernel's
    std::unordered_map<std::string, std::string> temp_names_;      // the kernel's name -> the client's
    wire_scratch scratch_;
    std::unordered_set<std::string> advised_;   // temporary destinations advise_reply_to advised
};

}  // namespace

std::shared_ptr<engine::connection> make_session(std::shared_ptr<const settings> s, core::broker& broker,
                                                 core::auth_pool& auth, std::uint64_t connection_id) {
    return std::make_shared<session>(std::move(s), broker, auth, connection_id);
}

}  // namespace sb::openwire
