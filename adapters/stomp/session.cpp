// adapters/stomp/session.cpp — STOMP 1.0–1.2 connection state machine; talks to the kernel.
//
// Runs in an engine::connection (adapters/engine/connection.hpp), which owns the mechanics: the
// decode loop, the output queue, deadlines, flow control and closing. Frames are encoded into
// out(); kernel calls complete later on this worker (wrapped in completion()); receipts are
// sent in frame order (engine::reply_queue).
#include "adapters/stomp/session.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <deque>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "adapters/engine/reply_queue.hpp"
#include "adapters/stomp/mapping.hpp"
#include "core/broker.hpp"
#include "core/security/auth_pool.hpp"
#include "core/transaction.hpp"

namespace sb::stomp {

namespace {

enum class ack_mode { auto_, client, client_individual };

struct unacked_delivery {
    core::delivery_tag tag;
    core::message_id id;
};

// engine::consumer: `id` is the kernel consumer, `dest` where it consumes.
struct subscription : engine::consumer {
    std::string name;   // the STOMP subscription id
    ack_mode mode = ack_mode::auto_;
    bool browser = false;   // browser:true: a queue browser (every delivery settled once written)
    std::deque<unacked_delivery> unacked;   // client modes: delivered, not yet acked, in order
};

// RECEIPTs waiting for the operations before them; an entry is the receipt id.
using receipts = engine::reply_queue<std::string>;
using receipt = receipts::ticket;
constexpr receipt no_receipt = receipts::none;

spdlog::logger& logger() {
    static const auto l = [] {
        auto existing = spdlog::get("stomp");
        return existing ? existing : spdlog::default_logger()->clone("stomp");
    }();
    return *l;
}

// The frame being decoded and its unescaped text: one per worker thread, since a connection's
// frame lives only from decode() to the end of on_frame(), and connections of a worker never
// decode at the same time. Connections hold no decoder storage.
struct decoder_state {
    frame f;
    std::string scratch;
};

decoder_state& decoding() {
    thread_local decoder_state d;
    return d;
}

template <typename Int>
bool parse_uint(std::string_view s, Int& out) noexcept {
    if (s.empty()) return false;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

std::optional<version> negotiate(std::optional<std::string_view> accept) {
    if (!accept) return version::v1_0;  // STOMP 1.1 §Protocol Negotiation: absent means 1.0
    std::optional<version> best;
    std::string_view s = *accept;
    while (!s.empty()) {
        const auto comma = s.find(',');
        const auto v = s.substr(0, comma);
        s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
        std::optional<version> got;
        if (v == "1.0") got = version::v1_0;
        else if (v == "1.1") got = version::v1_1;
        else if (v == "1.2") got = version::v1_2;
        if (got && (!best || *got > *best)) best = got;
    }
    return best;
}

std::string_view version_text(version v) {
    switch (v) {
    case version::v1_0: return "1.0";
    case version::v1_1: return "1.1";
    case version::v1_2: return "1.2";
    }
    return "1.0";
}

// ActiveMQ's consumer headers on SUBSCRIBE that shape the kernel subscription (the ack mode,
// the destination and the durable name are read by on_subscribe). nullptr, or why the frame is
// refused.
struct consumer_headers {
    bool browser = false;   // browser:true (queues only)
};
const char* read_consumer_headers(const frame& f, core::subscribe_options& opt, consumer_headers& out) {
    if (auto p = f.get("activemq.prefetchSize")) {
        // 0 is ActiveMQ's pull consumer, and STOMP has no pull: ActiveMQ accepts it and never
        // dispatches anything to it; refused here so that the client learns it at once (see
        // docs/activemq-differences.md).
        std::uint32_t n = 0;
        if (!parse_uint(*p, n) || n == 0) return "invalid activemq.prefetchSize";
        opt.prefetch = n;
    }
    opt.no_local = f.get("activemq.noLocal").value_or("false") == "true";
    out.browser = f.get("browser").value_or("false") == "true";
    return nullptr;
}

// A CONNECT waiting for its authentication (core::auth_pool): what it asked for besides.
struct connecting {
    std::string client_id;
    std::optional<std::string> receipt;   // a STOMP frame's receipt header: named by its ERROR
    const char* problem = nullptr;     // refused after the credentials (a bad heart-beat header)
    std::uint32_t sx = 0, sy = 0;      // heart-beats: we send every sx, expect every sy
};

class session final : public engine::connection, public temp_destinations {
public:
    session(std::shared_ptr<const settings> s, core::broker& broker, core::auth_pool& auth, std::uint64_t conn)
        : engine::connection(broker, *s, conn, logger()), settings_(std::move(s)), auth_(auth) {}

private:
    // ---- engine::connection ------------------------------------------------------------

    engine::step decode(std::span<const std::uint8_t> in) override {
        auto& d = decoding();
        auto r = stomp::decode(in, settings_->frame_limits, version_, d.f, d.scratch);
        if (auto* m = std::get_if<need_more>(&r)) return engine::step::need_more(m->at_least);
        if (auto* h = std::get_if<heartbeat>(&r)) return engine::step::skip(h->consumed);
        if (auto* e = std::get_if<decode_error>(&r)) return engine::step::error(e->message);
        return engine::step::frame(std::get<decoded>(r).consumed);
    }

    void on_frame() override { handle(decoding().f); }

    void deliver(engine::consumer& c, core::delivery d) override {
        auto& sub = static_cast<subscription&>(c);
        if (!d.msg) return encode_browse_end(out(), version_, sub.name, sub.dest, this);   // see on_browse_end
        std::string ack_value;
        if (sub.mode != ack_mode::auto_ && !sub.browser) {
            sub.unacked.push_back(unacked_delivery{d.tag, d.msg->id});
        } else {
            settle_on_write(sub.id, d.tag);
        }
        if (version_ == version::v1_2) ack_value = std::to_string(d.tag);
        encode_message(out(), version_, *d.msg, d.redeliveries,
                       message_frame_args{sub.name, ack_value, settings_->broker_name, this, d.group_first});
    }

    // The end of a browse: a delivery without a message, through the engine's on_delivery so
    // that it follows the browser's last message (kept by output flow or not).
    void on_browse_end(core::consumer_id id) override { on_delivery(id, core::delivery{}); }

    // ---- temporary destinations (mapping's temp_destinations) --------------------------

    std::optional<core::destination> resolve(const temp_reference& r) override {
        if (r.remote) return core::destination{r.kind, std::string(r.name)};
        auto& x = more();
        std::string key(r.kind == core::dest_kind::temp_queue ? "/temp-queue/" : "/temp-topic/");
        key += r.name;
        if (auto it = x.temps.find(key); it != x.temps.end()) return it->second;
        if (x.temps.size() >= settings_->max_subscriptions) return std::nullopt;
        // Returned at once; what this connection sends or subscribes to it next arrives after it.
        auto d = broker_.create_temporary(id(), r.kind);
        x.temp_names.emplace(d.name, key);
        x.temps.emplace(std::move(key), d);
        return d;
    }

    std::string_view own_name(const core::destination& d) const noexcept override {
        if (!more_) return {};
        auto it = more_->temp_names.find(d.name);
        return it == more_->temp_names.end() ? std::string_view() : std::string_view(it->second);
    }

    void fail(const engine::error& e) override {
        if (e.kind == engine::error_kind::malformed) return fail(e.detail, {});
        abort();   // timeouts, a slow consumer, the peer gone: nothing more to say
    }

    // Stops taking frames: the subscriptions end. The open transactions roll back in the
    // kernel (the engine's broker::connection_closed follows; dropping them here would too).
    void on_closing() override {
        receipts_.clear();
        connecting_.reset();
        if (!more_) return;
        for (auto& [name, sub] : more_->subs) end_consumer(*sub);
        more_.reset();
    }

    void on_send_idle() override { out().push_back('\n'); }   // a heart-beat

    // A COMMIT under way also stops the input: a SEND after it must not overtake the
    // transaction's messages, which the kernel publishes only once the commit is durable. So
    // does a CONNECT being authenticated: the frames after it wait for the answer.
    bool input_held() const noexcept override { return committing_ > 0 || connecting_ != nullptr; }

    // ---- frames ------------------------------------------------------------------------

    void handle(const frame& f) {
        if (disconnecting_) return;   // nothing after DISCONNECT
        const bool connect = f.cmd == command::connect || f.cmd == command::stomp;
        if (state() == engine::phase::opening && !connect)
            return fail("CONNECT must be the first frame", f);
        switch (f.cmd) {
        case command::connect:
        case command::stomp: return on_connect(f);
        case command::send: return on_send(f);
        case command::subscribe: return on_subscribe(f);
        case command::unsubscribe: return on_unsubscribe(f);
        case command::ack: return on_ack(f, true);
        case command::nack: return on_ack(f, false);
        case command::begin: return on_begin(f);
        case command::commit: return on_commit(f);
        case command::abort: return on_abort(f);
        case command::disconnect: return on_disconnect(f);
        default: return fail("frame not accepted from a client", f);
        }
    }

    void on_connect(const frame& f) {
        if (state() != engine::phase::opening) return fail("already connected", f);
        const auto v = negotiate(f.get("accept-version"));
        if (!v) {
            auto& out = this->out();
            encode_command(out, command::error);
            encode_header(out, "version", "1.0,1.1,1.2", version::v1_0, false);
            encode_header(out, "content-type", "text/plain", version::v1_0, false);
            encode_header(out, "message", "Supported protocol versions are 1.0,1.1,1.2", version::v1_0, false);
            encode_body(out, {});
            log(spdlog::level::warn, "reason=unsupported_version");
            return close();
        }
        version_ = *v;
        // The password is checked off the worker (core::auth_pool); the rest of CONNECT is read
        // now (the frame lives only during this call) and its answer given with the
        // authentication's, in the order as before: credentials first.
        auto c = std::make_unique<connecting>();
        if (f.cmd == command::stomp) {   // CONNECT's ERROR never names a receipt (see fail)
            if (auto r = f.get("receipt")) c->receipt = std::string(*r);
        }
        if (auto client_id = f.get("client-id"); client_id && !client_id->empty()) c->client_id = *client_id;
        std::uint32_t cx = 0, cy = 0;
        if (auto hb = f.get("heart-beat"); hb && version_ != version::v1_0) {
            const auto comma = hb->find(',');
            if (comma == std::string_view::npos || !parse_uint(hb->substr(0, comma), cx) ||
                !parse_uint(hb->substr(comma + 1), cy))
                c->problem = "invalid heart-beat header";
        }
        // STOMP 1.2 §Heart-beating: each side uses the larger of what one can do and the
        // other wants; we accept the client's rates, bounded below by the floor.
        const std::uint32_t floor = settings_->heartbeat_floor_ms;
        c->sx = cy ? std::max(cy, floor) : 0;  // we send every sx
        c->sy = cx ? std::max(cx, floor) : 0;  // we expect every sy
        connecting_ = std::move(c);   // input is held until the answer
        auto done = completion([this](core::auth_result r) { on_authenticated(std::move(r)); });
        // No login but a TLS client certificate: its user (credentials sent win over it).
        const auto login = f.get("login").value_or("");
        if (login.empty() && !peer_identity().empty()) return auth_.authenticate_certificate_async(peer_identity(), std::move(done));
        auth_.authenticate_async(login, f.get("passcode").value_or(""), std::move(done));
    }

    void on_authenticated(core::auth_result r) {
        if (!connecting_ || state() != engine::phase::opening) return;   // closed meanwhile
        const auto c = std::move(connecting_);
        if (r.status == core::auth_status::busy) return fail_connect("server busy", *c);
        if (r.status != core::auth_status::accepted) return fail_connect("Authentication failed", *c);
        if (c->problem) return fail_connect(c->problem, *c);
        if (!c->client_id.empty()) more().client_id = std::move(c->client_id);
        const std::uint32_t sx = c->sx, sy = c->sy;
        // Silence past `grace` times the interval we expect ends the connection.
        const auto receive_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(sy * settings_->heartbeat_grace));
        open(receive_timeout, std::chrono::milliseconds(sx));

        auto& out = this->out();
        encode_command(out, command::connected);
        encode_header(out, "version", version_text(version_), version_, false);
        encode_header(out, "server", settings_->server, version_, false);
        encode_header(out, "session", std::to_string(id()), version_, false);
        if (version_ != version::v1_0)
            encode_header(out, "heart-beat", std::to_string(sx) + "," + std::to_string(sy), version_, false);
        encode_body(out, {});
        log(spdlog::level::debug, "user={} version={} heart-beat={},{}", r.who.user, version_text(version_), sx, sy);
    }

    void on_send(const frame& f) {
        auto built = message_from_send(f, this);
        if (auto* e = std::get_if<mapping_error>(&built)) return fail(e->message, f);
        auto m = std::make_shared<core::message>(std::move(std::get<core::message>(built)));
        m->id = broker_.next_message_id();
        m->timestamp_ms = core::now_ms();
        m->origin_connection = id();
        if (auto txid = f.get("transaction")) {
            auto* tx = find_tx(*txid, f);
            if (!tx) return;
            if (tx->send(std::move(m)) != core::tx_status::ok) return fail("transaction too large", f);
            return receipt_now(f);
        }
        const auto r = add_receipt(f, 1);
        begin_unconfirmed();
        broker_.publish(std::move(m), completion([this, r](core::publish_status s) { on_published(s, r); }));
    }

    void on_published(core::publish_status s, receipt r) {
        end_unconfirmed();
        if (state() >= engine::phase::closing) return;
        if (s == core::publish_status::invalid) return fail("invalid AMQ_SCHEDULED_* property or destination", {});
        if (s == core::publish_status::no_destination) return fail("the temporary destination does not exist", {});
        if (s != core::publish_status::ok) return fail("the broker could not store the message", {});
        receipts_.complete(r);
        if (r != no_receipt || disconnecting_) flush_receipts();
    }

    void on_subscribe(const frame& f) {
        const auto dest_text = f.get("destination");
        if (!dest_text) return fail("SUBSCRIBE requires a destination header", f);
        auto id = f.get("id");
        if (!id && version_ != version::v1_0) return fail("SUBSCRIBE requires an id header", f);
        std::string sub_id(id ? *id : *dest_text);   // 1.0: the destination names the subscription
        if (more().subs.contains(sub_id)) return fail("subscription id already in use", f);
        if (more().subs.size() >= settings_->max_subscriptions) return fail("too many subscriptions", f);
        auto parsed = parse_stomp_destination(*dest_text, false, this);
        if (auto* e = std::get_if<mapping_error>(&parsed)) return fail(e->message, f);

        ack_mode mode = ack_mode::auto_;
        const auto ack = f.get("ack").value_or("auto");
        if (ack == "client") mode = ack_mode::client;
        else if (ack == "client-individual") mode = ack_mode::client_individual;
        else if (ack != "auto") return fail("ack must be auto, client or client-individual", f);

        core::subscribe_options opt;
        opt.connection = this->id();
        consumer_headers extra;
        if (const char* problem = read_consumer_headers(f, opt, extra)) return fail(problem, f);
        if (!parse_selector(f, opt)) return;
        consumer_choice(f, opt);

        auto sub = std::make_unique<subscription>();
        sub->name = sub_id;
        sub->id = broker_.next_consumer_id();
        sub->dest = std::move(std::get<core::destination>(parsed));
        sub->mode = mode;
        sub->browser = extra.browser;
        const auto durable = durable_name(f);
        if (durable && !sub->dest.is_topic()) return fail("durable subscriptions are for topics", f);
        if (durable && client_id().empty()) return fail("a durable subscription needs a client-id header on CONNECT", f);
        if (sub->browser && (!sub->dest.is_queue() || core::has_wildcard(sub->dest.name)))
            return fail("browsing is for one queue", f);
        add_consumer(*sub);
        const auto r = add_receipt(f, 1);
        auto done = track_subscribe(*sub, completion([this, r] { complete(r); }));
        if (sub->browser) {
            broker_.browse(sub->id, sub->dest, opt, weak_from_this(), std::move(done));
        } else if (durable) {
            // ActiveMQ: the subscription is "<client-id>:<name>" and outlives the connection.
            const auto name = std::string(client_id()) + ":" + std::string(*durable);
            const auto topic = sub->dest;
            sub->dest = core::broker::durable_queue(name);   // acks and unsubscribe go there
            opt.want_retained = false;   // a durable subscriber is not retroactive (ActiveMQ)
            broker_.subscribe_durable(sub->id, name, topic, opt, weak_from_this(), std::move(done));
        } else if (sub->dest.is_temporary()) {
            // Refused for a temporary destination that is gone, or another connection's (only
            // its owner consumes from it): an ERROR naming the receipt, and no RECEIPT.
            std::optional<std::string> rid;
            if (auto x = f.get("receipt")) rid = std::string(*x);
            broker_.subscribe_checked(
                sub->id, sub->dest, opt, weak_from_this(),
                completion([this, done = std::move(done), rid = std::move(rid)](core::subscribe_status st) {
                    if (st == core::subscribe_status::ok) return done();
                    if (state() >= engine::phase::closing) return;
                    send_error(st == core::subscribe_status::not_owner
                                   ? "only the connection that created a temporary destination consumes from it"
                                   : "the temporary destination does not exist",
                               rid ? std::optional<std::string_view>(*rid) : std::nullopt);
                }));
        } else {
            broker_.subscribe(sub->id, sub->dest, opt, weak_from_this(), std::move(done));
        }
        more().subs.emplace(std::move(sub_id), std::move(sub));
    }

    // ActiveMQ's consumer choice on queues: activemq.exclusive (true / false) and
    // activemq.priority (a byte; higher first). A priority that is not a byte is ignored, as
    // ActiveMQ ignores it (the subscription gets the default, 0).
    static void consumer_choice(const frame& f, core::subscribe_options& opt) {
        opt.exclusive = f.get("activemq.exclusive").value_or("false") == "true";
        if (auto p = f.get("activemq.priority")) {
            int n = 0;
            const auto [end, ec] = std::from_chars(p->data(), p->data() + p->size(), n);
            if (ec == std::errc{} && end == p->data() + p->size() && n >= -128 && n <= 127) opt.priority = std::int8_t(n);
        }
    }

    // The `selector` header (ActiveMQ's, a JMS message selector), compiled once for the kernel.
    // Blank = none. Invalid: ERROR with the compiler's message (what and at which position).
    bool parse_selector(const frame& f, core::subscribe_options& opt) {
        const auto text = f.get("selector");
        if (!text || text->find_first_not_of(" \t\r\n") == std::string_view::npos) return true;
        core::selector_error err;
        opt.selector = core::selector::compile(*text, err, settings_->selector_limits);
        if (!opt.selector) fail("invalid selector: " + err.message, f);
        return opt.selector != nullptr;
    }

    // activemq.subscriptionName (ActiveMQ) or durable-subscription-name (Artemis).
    static std::optional<std::string_view> durable_name(const frame& f) {
        if (auto n = f.get("activemq.subscriptionName"); n && !n->empty()) return n;
        if (auto n = f.get("durable-subscription-name"); n && !n->empty()) return n;
        return std::nullopt;
    }

    void on_unsubscribe(const frame& f) {
        auto id = f.get("id");
        if (!id && version_ == version::v1_0) id = f.get("destination");
        const auto durable = durable_name(f);
        if (!id && !durable) return fail("UNSUBSCRIBE requires an id header", f);
        auto it = id ? more().subs.find(std::string(*id)) : more().subs.end();
        if (it == more().subs.end() && !durable) return fail("no such subscription", f);
        const auto r = add_receipt(f, 1);
        std::function<void()> done = completion([this, r] { complete(r); });
        if (it != more().subs.end()) {
            end_consumer(*it->second, durable ? std::function<void()>{} : done);
            more().subs.erase(it);
        }
        if (durable) {
            // With the subscription name, UNSUBSCRIBE deletes the durable subscription itself.
            if (client_id().empty()) return fail("a durable subscription needs a client-id header on CONNECT", f);
            broker_.unsubscribe_durable(std::string(client_id()) + ":" + std::string(*durable), std::move(done));
        }
    }

    // Finds the deliveries an ACK/NACK names; removes them from the subscription's unacked
    // list. Client mode is cumulative: everything delivered up to the named message.
    bool take_acked(const frame& f, subscription*& sub_out, std::vector<core::delivery_tag>& tags) {
        std::optional<core::delivery_tag> tag;
        std::optional<core::message_id> mid;
        if (version_ == version::v1_2) {
            const auto id = f.get("id");
            if (!id) return fail("ACK/NACK requires an id header", f), false;
            core::delivery_tag t = 0;
            if (!parse_uint(*id, t)) return fail("unknown ack id", f), false;
            tag = t;
        } else {
            const auto id = f.get("message-id");
            if (!id) return fail("ACK/NACK requires a message-id header", f), false;
            mid = parse_message_id(*id);
            if (!mid) return fail("unknown message-id", f), false;
        }
        const auto named_sub = version_ == version::v1_1 ? f.get("subscription") : std::nullopt;
        for (auto& [sid, sub] : more().subs) {
            if (named_sub && *named_sub != sid) continue;
            auto& list = sub->unacked;
            auto it = std::find_if(list.begin(), list.end(), [&](const unacked_delivery& u) {
                return tag ? u.tag == *tag : u.id == *mid;
            });
            if (it == list.end()) continue;
            if (sub->mode == ack_mode::client) {
                for (auto j = list.begin(); j != it + 1; ++j) tags.push_back(j->tag);
                list.erase(list.begin(), it + 1);
            } else {
                tags.push_back(it->tag);
                list.erase(it);
            }
            sub_out = sub.get();
            return true;
        }
        fail("no unacknowledged message with that id", f);
        return false;
    }

    void on_ack(const frame& f, bool positive) {
        subscription* sub = nullptr;
        std::vector<core::delivery_tag> tags;
        core::transaction* tx = nullptr;
        if (auto txid = f.get("transaction")) {
            tx = find_tx(*txid, f);
            if (!tx) return;
        }
        if (!take_acked(f, sub, tags)) return;
        if (tx) {
            // Buffered in the kernel transaction: until COMMIT the deliveries stay in flight.
            const auto st = positive ? tx->ack(sub->id, std::move(tags)) : tx->nack(sub->id, std::move(tags));
            if (st != core::tx_status::ok) return fail("transaction too large", f);
        } else if (positive) {
            // The RECEIPT follows the durable removal: an ACK confirmed to the client is never
            // undone by a crash (the message does not come back).
            if (const auto r = add_receipt(f, 1); r != no_receipt) {
                broker_.ack(sub->id, std::move(tags), completion([this, r] { complete(r); }));
                return;
            }
            broker_.ack(sub->id, std::move(tags));
        } else {
            broker_.nack(sub->id, std::move(tags));
        }
        receipt_now(f);
    }

    core::transaction* find_tx(std::string_view id, const frame& f) {
        auto it = more().txs.find(std::string(id));
        if (it == more().txs.end()) return fail("unknown transaction", f), nullptr;
        return it->second.get();
    }

    void on_begin(const frame& f) {
        const auto id = f.get("transaction");
        if (!id) return fail("BEGIN requires a transaction header", f);
        if (more().txs.contains(std::string(*id))) return fail("transaction already started", f);
        if (more().txs.size() >= settings_->max_transactions) return fail("too many transactions", f);
        // The kernel keeps it (core::transaction): bounded by stomp.max_transaction_frames, and
        // rolled back by broker::connection_closed if the connection ends with it open.
        more().txs.emplace(std::string(*id), broker_.begin_transaction(this->id(), settings_->max_transaction_frames));
        receipt_now(f);
    }

    void on_commit(const frame& f) {
        const auto id = f.get("transaction");
        if (!id) return fail("COMMIT requires a transaction header", f);
        auto it = more().txs.find(std::string(*id));
        if (it == more().txs.end()) return fail("unknown transaction", f);
        auto tx = std::move(it->second);
        more().txs.erase(it);
        // The kernel commits the sends and acks as one unit: the RECEIPT follows the durable
        // removal of every acked message and the durable storage of every sent one, written
        // together (after a crash, all of the transaction or none of it). Its NACKs give their
        // deliveries back at once (nothing to make durable).
        const auto r = add_receipt(f, 1);
        ++committing_;
        tx->commit(completion([this, r](core::publish_status s) { on_committed(s, r); }));
    }

    void on_committed(core::publish_status s, receipt r) {
        --committing_;
        if (state() >= engine::phase::closing) return;
        if (s != core::publish_status::ok) return fail("the broker could not store the transaction", {});
        receipts_.complete(r);
        flush_receipts();
    }

    void on_abort(const frame& f) {
        const auto id = f.get("transaction");
        if (!id) return fail("ABORT requires a transaction header", f);
        auto it = more().txs.find(std::string(*id));
        if (it == more().txs.end()) return fail("unknown transaction", f);
        auto tx = std::move(it->second);
        more().txs.erase(it);
        // ActiveMQ redelivers what an aborted transaction acknowledged: the kernel gives each
        // delivery back to its queue, counted as a redelivery.
        tx->rollback();
        receipt_now(f);
    }

    void on_disconnect(const frame& f) {
        disconnecting_ = true;
        if (f.get("receipt")) add_receipt(f, 0);
        flush_receipts();
    }

    // ---- receipts ----------------------------------------------------------------------

    // Registers a receipt for `f` (if it asks for one) that waits for `waiting` completions.
    receipt add_receipt(const frame& f, std::size_t waiting) {
        const auto id = f.get("receipt");
        if (!id) return no_receipt;
        return receipts_.push(std::string(*id), waiting);
    }

    void receipt_now(const frame& f) {
        if (add_receipt(f, 0) != no_receipt) flush_receipts();
    }

    void complete(receipt r) {
        if (receipts_.complete(r)) flush_receipts();
    }

    void flush_receipts() {
        receipts_.release([this](const std::string& id) {
            encode_command(out(), command::receipt);
            encode_header(out(), "receipt-id", id, version_, true);
            encode_body(out(), {});
        });
        if (disconnecting_ && receipts_.empty() && unconfirmed() == 0 && committing_ == 0) close();
    }

    // ---- errors ------------------------------------------------------------------------

    // The STOMP answer to a protocol error: an ERROR frame, then close this connection only.
    void fail(std::string_view message, const frame& f) {
        std::optional<std::string_view> receipt_id;
        if (state() != engine::phase::opening || f.cmd != command::connect) receipt_id = f.get("receipt");
        send_error(message, receipt_id);
    }

    // A CONNECT refused once its authentication answered (the frame is gone: what it said is
    // in `c`).
    void fail_connect(std::string_view message, const connecting& c) {
        std::optional<std::string_view> receipt_id;
        if (c.receipt) receipt_id = *c.receipt;
        send_error(message, receipt_id);
    }

    void send_error(std::string_view message, std::optional<std::string_view> receipt_id) {
        if (state() >= engine::phase::closing) return;
        log(spdlog::level::warn, "reason=protocol_error detail=\"{}\"", message);
        auto& out = this->out();
        encode_command(out, command::error);
        encode_header(out, "content-type", "text/plain", version_, false);
        encode_header(out, "message", message, version_, true);
        if (receipt_id) encode_header(out, "receipt-id", *receipt_id, version_, true);
        encode_body(out, std::span(reinterpret_cast<const std::uint8_t*>(message.data()), message.size()));
        close();
    }

    std::shared_ptr<const settings> settings_;
    core::auth_pool& auth_;

    version version_ = version::v1_0;
    bool disconnecting_ = false;
    // What a connection has once it subscribes, begins a transaction or names its client: one
    // block allocated on first use, so a connection that does none of it holds nothing for them.
    struct extras {
        std::string client_id;   // CONNECT client-id: names durable subscriptions
        std::unordered_map<std::string, std::unique_ptr<subscription>> subs;
        std::unordered_map<std::string, std::unique_ptr<core::transaction>> txs;   // kernel transactions
        // Temporary destinations this connection made ("/temp-queue/<name>" -> kernel
        // destination) and back (kernel name -> "/temp-queue/<name>"); the kernel deletes them
        // when the connection closes (broker::connection_closed).
        std::unordered_map<std::string, core::destination> temps;
        std::unordered_map<std::string, std::string> temp_names;
    };
    std::unique_ptr<extras> more_;
    extras& more() {
        if (!more_) more_ = std::make_unique<extras>();
        return *more_;
    }
    std::string_view client_id() const noexcept { return more_ ? std::string_view(more_->client_id) : std::string_view(); }
    // While a CONNECT is being authenticated: what else it asked for.
    std::unique_ptr<connecting> connecting_;
    receipts receipts_;
    std::size_t committing_ = 0;   // COMMITs handed to the kernel, not yet completed
};

}  // namespace

std::shared_ptr<engine::connection> make_session(std::shared_ptr<const settings> s, core::broker& broker,
                                                 core::auth_pool& auth, std::uint64_t connection_id) {
    return std::make_shared<session>(std::move(s), broker, auth, connection_id);
}

}  // namespace sb::stomp
