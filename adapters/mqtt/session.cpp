// adapters/mqtt/session.cpp — MQTT 3.1/3.1.1/5.0 connection state machine; talks to the kernel.
//
// One read loop, one write in flight (packets are encoded straight into `out_`), one timer for
// the CONNECT deadline, keep-alive and linger. Each subscription filter is one kernel consumer.
// Acknowledgements to the client (PUBACK, PUBREC, SUBACK, UNSUBACK) wait for the kernel and are
// sent in the order the packets arrived (MQTT 5 §4.6).
//
// Messages with the registry (any worker, under its mutex):
//   CONNECT     -> claim_id: fresh / resumed state, or "wait": the old live session is told
//                  on_taken_over() on its worker and the new one gets on_claimed() later
//   close       -> release: a persistent session's state is saved for the next connection
//   delayed will-> set_pending_will: cancelled if the client id connects again in time
#include "adapters/mqtt/session.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <unordered_set>
#include <unordered_map>

#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "adapters/mqtt/mapping.hpp"
#include "adapters/net/lazy_deque.hpp"
#include "adapters/net/read_buffer.hpp"
#include "adapters/net/write_settlements.hpp"
#include "core/broker.hpp"
#include "core/security/authenticator.hpp"

namespace sb::mqtt {

namespace {

using clock = std::chrono::steady_clock;
constexpr std::uint32_t never_expires = 0xFFFFFFFF;

std::shared_ptr<spdlog::logger> log() {
    static auto l = [] {
        auto existing = spdlog::get("mqtt");
        return existing ? existing : spdlog::default_logger();
    }();
    return l;
}

struct sub_state {
    std::string filter;              // as the client wrote it, "$share/g/..." included
    core::destination dest;          // what the consumer is on: the topic, or the durable queue
    core::destination topic;         // the kernel topic filter
    std::string durable;             // persistent sessions: the durable subscription's name
    std::string share_group;
    core::consumer_id consumer = 0;
    std::uint32_t prefetch = 0;      // the consumer's kernel prefetch (deliveries in flight)
    std::uint8_t qos = 0;
    bool no_local = false;
    bool retain_as_published = false;
    std::uint32_t subscription_id = 0;
    std::uint32_t overlaps = 0;      // other non-shared subscriptions whose filters may match a same topic
};

struct outbound {
    core::consumer_id consumer = 0;
    core::delivery_tag tag = 0;
    std::uint8_t qos = 1;
    bool released = false;           // QoS 2: PUBREL sent, waiting for PUBCOMP
};

// What a persistent session keeps between connections.
struct saved_state {
    std::vector<sub_state> subs;
    std::map<std::uint16_t, outbound> outbound_by_id;
    std::set<std::uint16_t> inbound_qos2;   // PUBREC sent, PUBREL not yet received
    std::uint32_t expiry_s = never_expires;
    clock::time_point disconnected_at{};
    std::uint64_t subscriber = 0;            // subscribe_options::subscriber (0: restored after a restart)

    bool expired(clock::time_point now) const noexcept {
        return expiry_s != never_expires && now - disconnected_at >= std::chrono::seconds(expiry_s);
    }
};

struct claim {
    bool resumed = false;
    std::shared_ptr<saved_state> state;     // resumed state
    std::shared_ptr<saved_state> discard;   // state the new session must end (clean start, expiry)
};

// A will waiting for its delay (MQTT 5 §3.1.2.5). Whoever sets `done` first decides: the timer
// publishes it, a new connection to the session drops it (or publishes it at once when that
// connection starts clean, which ends the session).
struct pending_will {
    std::atomic<bool> done{false};
    std::shared_ptr<core::message> msg;
};

class claimant {
public:
    // `clean_start`: the new connection's; a taken-over session that lives on sends no will.
    virtual void on_taken_over(bool clean_start) = 0;
    virtual void on_claimed(claim c) = 0;

protected:
    ~claimant() = default;
};

// A persistent session's subscriptions are durable subscriptions named after the client and
// the filter, so that they survive a broker restart; their settings ride along as `data`.
constexpr std::string_view durable_prefix = "mqtt:";
constexpr char durable_separator = '\x1f';

std::string durable_name(std::string_view client_id, std::string_view filter) {
    std::string n(durable_prefix);
    n += client_id;
    n += durable_separator;
    n += filter;
    return n;
}

std::string durable_data(const sub_state& s, std::uint32_t expiry_s) {
    return "qos=" + std::to_string(s.qos) + ";nl=" + std::to_string(int(s.no_local)) +
           ";rap=" + std::to_string(int(s.retain_as_published)) + ";sid=" + std::to_string(s.subscription_id) +
           ";exp=" + std::to_string(expiry_s);
}

// Reads one "key=value" of durable_data (0 when absent or malformed).
std::uint64_t data_field(std::string_view data, std::string_view key) {
    const auto at = data.find(std::string(key) + "=");
    if (at == std::string_view::npos) return 0;
    std::uint64_t v = 0;
    for (auto i = at + key.size() + 1; i < data.size() && data[i] >= '0' && data[i] <= '9'; ++i)
        v = v * 10 + std::uint64_t(data[i] - '0');
    return v;
}

// Topics a client may not write to (as mosquitto's ACL, whatever the users file says): the
// server's `$SYS` tree and `$share`, which names subscriptions, never a topic.
bool server_topic(std::string_view topic) noexcept {
    return topic.starts_with("$SYS") || topic.starts_with("$share");
}

// Whether two kernel topic filters may match a same topic (true when unsure): only then does a
// delivery through one need a look at the other (MQTT 5 §3.3.4).
bool may_overlap(std::string_view a, std::string_view b) noexcept {
    for (;;) {
        const auto da = a.find('.'), db = b.find('.');
        const auto la = a.substr(0, da), lb = b.substr(0, db);
        if (la == ">" || lb == ">") return true;
        if (la != "*" && lb != "*" && la != lb) return false;
        if (da == std::string_view::npos || db == std::string_view::npos)
            return da == db || (da != std::string_view::npos ? a.substr(da + 1) : b.substr(db + 1)) == ">";
        a.remove_prefix(da + 1);
        b.remove_prefix(db + 1);
    }
}

void end_state(core::broker& broker, const saved_state& s) {
    for (const auto& sub : s.subs) {
        if (sub.consumer) broker.unsubscribe(sub.consumer, sub.dest);
        if (!sub.durable.empty()) broker.unsubscribe_durable(sub.durable);
    }
}

}  // namespace

class registry {
public:
    explicit registry(core::broker& b) : broker_(b) {}

    core::broker& broker() noexcept { return broker_; }

    // On CONNECT. nullopt: an older session with this id is live and is being taken over;
    // `who->on_claimed` follows on `home` once it has gone.
    std::optional<claim> claim_id(const std::string& id, bool clean, const std::shared_ptr<claimant>& who,
                                  core::executor* home) {
        std::lock_guard lock(mutex_);
        auto& e = entries_[id];
        if (e.more && e.more->will_cancel) {
            // MQTT 5 §3.1.2.5: a reconnect within the will delay means no will; a clean start
            // ends the session, and a session's end sends the will at once (as Mosquitto does).
            if (!e.more->will_cancel->done.exchange(true) && clean) broker_.publish(e.more->will_cancel->msg, {});
            e.more->will_cancel.reset();
        }
        if (auto live = e.live.lock()) {
            auto& m = e.extra();
            if (m.waiting) {
                if (auto older = m.waiting->who.lock())
                    m.waiting->home->post([older, clean] { older->on_taken_over(clean); });
            }
            m.waiting = waiter{clean, who, home};
            e.live_home->post([live, clean] { live->on_taken_over(clean); });
            return std::nullopt;
        }
        e.live = who;
        e.live_home = home;
        return decide(e, clean);
    }

    // On close. `state` is the session to keep (persistent) or null (clean).
    void release(const std::string& id, const claimant* who, std::shared_ptr<saved_state> state) {
        std::lock_guard lock(mutex_);
        auto it = entries_.find(id);
        // `who` is alive (it is calling): a live entry that does not lock to it is another's.
        if (it == entries_.end() || it->second.live.lock().get() != who) return;
        auto& e = it->second;
        e.live.reset();
        if (state) {
            state->disconnected_at = clock::now();
            e.extra().saved = std::move(state);
        }
        if (e.more && e.more->waiting) {
            auto w = std::move(*e.more->waiting);
            e.more->waiting.reset();
            if (auto next = w.who.lock()) {
                e.live = w.who;
                e.live_home = w.home;
                w.home->post([next, c = decide(e, w.clean)]() mutable { next->on_claimed(std::move(c)); });
            }
        }
        e.shrink();
        if (e.live.expired() && !e.more) entries_.erase(it);
    }

    void set_pending_will(const std::string& id, std::shared_ptr<pending_will> cancel) {
        std::lock_guard lock(mutex_);
        entries_[id].extra().will_cancel = std::move(cancel);
    }

    void will_done(const std::string& id) {
        std::lock_guard lock(mutex_);
        auto it = entries_.find(id);
        if (it == entries_.end() || !it->second.more) return;
        it->second.more->will_cancel.reset();
        it->second.shrink();
        if (it->second.live.expired() && !it->second.more) entries_.erase(it);
    }

    // At start: persistent sessions rebuilt from the durable subscriptions the store kept.
    void restore(const std::vector<core::subscription_record>& records) {
        std::lock_guard lock(mutex_);
        for (const auto& r : records) {
            if (!r.name.starts_with(durable_prefix)) continue;
            const auto sep = r.name.find(durable_separator);
            if (sep == std::string::npos) continue;
            const auto client = r.name.substr(durable_prefix.size(), sep - durable_prefix.size());
            auto& saved = entries_[client].extra().saved;
            if (!saved) {
                saved = std::make_shared<saved_state>();
                saved->disconnected_at = clock::now();
            }
            sub_state s;
            s.filter = r.name.substr(sep + 1);
            s.topic = r.filter;
            s.durable = r.name;
            s.dest = core::broker::durable_queue(r.name);
            s.qos = std::uint8_t(std::min<std::uint64_t>(data_field(r.data, "qos"), 2));
            s.no_local = data_field(r.data, "nl") != 0;
            s.retain_as_published = data_field(r.data, "rap") != 0;
            s.subscription_id = std::uint32_t(data_field(r.data, "sid"));
            saved->expiry_s = std::uint32_t(data_field(r.data, "exp"));
            saved->subs.push_back(std::move(s));   // consumer 0: subscribed again on resume
        }
    }

    std::vector<std::shared_ptr<saved_state>> take_expired(clock::time_point now) {
        std::vector<std::shared_ptr<saved_state>> out;
        std::lock_guard lock(mutex_);
        for (auto it = entries_.begin(); it != entries_.end();) {
            auto& e = it->second;
            if (e.live.expired() && e.more && e.more->saved && e.more->saved->expired(now)) {
                out.push_back(std::move(e.more->saved));
                e.shrink();
                if (!e.more) {
                    it = entries_.erase(it);
                    continue;
                }
            }
            ++it;
        }
        return out;
    }

private:
    struct waiter {
        bool clean;
        std::weak_ptr<claimant> who;
        core::executor* home;
    };
    // What a client id has besides its live connection; most have nothing of it.
    struct entry_extra {
        std::shared_ptr<saved_state> saved;
        std::optional<waiter> waiting;
        std::shared_ptr<pending_will> will_cancel;
    };
    // One per connected client id (and per kept session): small, as every idle connection has one.
    struct entry {
        std::weak_ptr<claimant> live;
        core::executor* live_home = nullptr;
        std::unique_ptr<entry_extra> more;

        entry_extra& extra() {
            if (!more) more = std::make_unique<entry_extra>();
            return *more;
        }
        void shrink() {
            if (more && !more->saved && !more->waiting && !more->will_cancel) more.reset();
        }
    };

    claim decide(entry& e, bool clean) {
        claim c;
        if (!e.more || !e.more->saved) return c;
        auto& saved = e.more->saved;
        if (clean || saved->expired(clock::now())) {
            c.discard = std::move(saved);
        } else {
            c.state = std::move(saved);
            c.resumed = true;
        }
        e.shrink();
        return c;
    }

    core::broker& broker_;
    std::mutex mutex_;
    std::unordered_map<std::string, entry> entries_;
};

std::shared_ptr<registry> make_registry(core::broker& broker) { return std::make_shared<registry>(broker); }

void restore_sessions(registry& r, const std::vector<core::subscription_record>& records) { r.restore(records); }

void sweep_expired(registry& r) {
    for (const auto& s : r.take_expired(clock::now())) end_state(r.broker(), *s);
}

namespace {

enum class state { awaiting_connect, claiming, active, closing };

// An acknowledgement to the client that waits for kernel completions (in arrival order).
struct pending_ack {
    packet_type type;
    std::uint16_t packet_id = 0;
    std::size_t waiting = 0;
    std::uint8_t code = 0;                 // PUBACK / PUBREC reason
    std::vector<std::uint8_t> codes;       // SUBACK / UNSUBACK
    // Deliveries held until this ack is out: the client's own message (PUBACK / PUBREC) or
    // the subscriptions' retained messages (SUBACK).
    core::message_id msg = 0;
    std::vector<core::consumer_id> consumers{};
};

// A will waiting for its delay; fires unless the registry's flag is set first.
struct delayed_will {
    delayed_will(boost::asio::any_io_executor ex) : timer(ex) {}
    boost::asio::steady_timer timer;
};

// What a connection holds once it subscribes or sends QoS>0 messages. An idle connection (most
// of them, in a large deployment) holds none of it: one pointer instead of a dozen containers.
struct traffic {
    std::unordered_map<std::string, std::unique_ptr<sub_state>> subs;
    std::unordered_map<core::consumer_id, sub_state*> by_consumer;
    std::map<std::uint16_t, outbound> in_flight;   // QoS>0 sent, not yet acknowledged, by packet id
    std::unordered_map<core::delivery_tag, std::uint16_t> resend_ids;
    net::lazy_deque<std::pair<core::consumer_id, core::delivery>> waiting;
    std::uint16_t next_id = 0;
    std::set<std::uint16_t> inbound_qos2;
    // Deliveries waiting for an acknowledgement to go out first (see on_delivery), and what
    // they wait for: consumers whose SUBACK, messages whose PUBACK / PUBREC is still pending.
    net::lazy_deque<std::pair<core::consumer_id, core::delivery>> held;
    std::unordered_multiset<core::consumer_id> subscribing;
    std::unordered_multiset<core::message_id> acking;
    std::unordered_map<core::consumer_id, std::uint32_t> held_count;
    std::unordered_map<std::uint16_t, std::string> aliases;
    std::unordered_map<std::string, std::uint16_t> out_aliases;
    std::vector<std::string> storage;   // scratch for a delivery's v5 properties
};

class session final : public net::session,
                      public net::stream_handler,
                      public core::consumer_sink,
                      public net::flow_target,
                      public claimant,
                      public std::enable_shared_from_this<session> {
public:
    session(std::unique_ptr<net::transport> t, std::shared_ptr<const settings> s, core::broker& broker,
            const core::authenticator& auth, std::shared_ptr<registry> reg, std::uint64_t conn)
        : transport_(std::move(t)), settings_(std::move(s)), broker_(broker), auth_(auth),
          registry_(std::move(reg)), conn_(conn), timer_(transport_->get_executor()),
          home_(core::executor::current()), flow_(settings_->output) {}

    void start() override {
        last_read_ = clock::now();
        arm_timer(std::chrono::milliseconds(settings_->connect_timeout_ms));
        do_read();
    }

    void stop() override {
        if (state_ == state::closing) return;
        // MQTT 5: tell v5 clients why; wills are not published at a broker shutdown.
        will_.reset();
        if (version_ == version::v5 && state_ == state::active)
            send_disconnect(reason::server_shutting_down);
        begin_closing();
    }

    // ---- transport ---------------------------------------------------------------------

    // The socket is readable: take what is there (into the worker's scratch buffer), decode.
    void on_read(net::error_code ec, std::size_t) override {
        reading_ = false;
        if (ec) return close_now(true);
        const std::size_t n = in_.fill(*transport_, ec);
        if (ec && ec != boost::asio::error::would_block) return close_now(true);
        if (n == 0) return do_read();
        last_read_ = clock::now();
        if (state_ == state::closing) in_.clear();   // lingering: discard input until EOF
        else decode_packets();
        in_.compact();
        do_read();
    }

    void on_write(net::error_code ec, std::size_t) override {
        writing_ = false;
        if (ec) return close_now(true);
        wbuf_.clear();
        settlements_.write_done(broker_);
        flow_.written(*this, [this] { return out_.size() + wbuf_.size(); },
                      [this](core::consumer_id id, core::delivery d) { on_delivery(id, std::move(d)); });
        if (writing_) return;   // a delivery handed back started the next write
        if (!out_.empty()) return do_write();
        if (state_ == state::closing) return transport_->shutdown_send();
        resume();
    }

    // ---- kernel ------------------------------------------------------------------------

    void on_delivery(core::consumer_id id, core::delivery d) override {
        if (state_ == state::closing) return;   // a persistent session gets it again on attach
        if (!tr().held.empty() || held_back(id, *d.msg)) {
            // The acknowledgement of the packet that caused it goes first (MQTT 5 §3.8.4: SUBACK
            // before the retained messages; the PUBACK / PUBREC before the publisher's own copy).
            tr().held->push_back({id, std::move(d)});
            // But never at the price of a stall: an acknowledgement can wait for the kernel's
            // flow control, which waits for subscribers to drain, maybe this one. Once held
            // deliveries take a consumer's whole prefetch, the oldest go out as they are.
            if (++tr().held_count[id] >= held_limit(id)) release_held(id);
            return;
        }
        dispatch(id, std::move(d));
    }

    std::uint32_t held_limit(core::consumer_id id) const {
        auto it = traffic_->by_consumer.find(id);
        return it != traffic_->by_consumer.end() && it->second->prefetch ? it->second->prefetch : 1;
    }

    bool held_back(core::consumer_id id, const core::message& m) const {
        const auto& t = *traffic_;   // a delivery means a subscription
        return (!t.subscribing.empty() && t.subscribing.contains(id)) ||
               (m.origin_connection == conn_ && !t.acking.empty() && t.acking.contains(m.id));
    }

    // Deliveries whose acknowledgement has gone out, in arrival order; with `starved`, also
    // those before, until consumer `starved` has room in its prefetch again.
    void release_held(core::consumer_id starved = 0) {
        if (!traffic_) return;
        const auto starving = [&] {
            auto c = starved ? tr().held_count.find(starved) : tr().held_count.end();
            return c != tr().held_count.end() && c->second >= held_limit(starved);
        };
        while (!tr().held.empty()) {
            auto& [id, d] = tr().held->front();
            if (held_back(id, *d.msg) && !starving()) break;
            auto item = std::move(tr().held->front());
            tr().held->pop_front();
            if (auto c = tr().held_count.find(item.first); c != tr().held_count.end() && --c->second == 0) tr().held_count.erase(c);
            dispatch(item.first, std::move(item.second));
        }
        tr().held.release_if_empty();
    }

    void dispatch(core::consumer_id id, core::delivery d) {
        auto it = tr().by_consumer.find(id);
        if (it == tr().by_consumer.end()) return;
        if (flow_.hold(id, d, out_.size() + wbuf_.size())) return;   // output full: sent later
        const auto& sub = *it->second;
        const auto matched = match_subscriptions(sub, d, nullptr);
        if (!matched.any) {
            broker_.ack(id, {d.tag});
            return;
        }
        const std::uint8_t qos = matched.qos;
        if (qos > 0 && (tr().in_flight.size() >= client_receive_max_ || !tr().waiting.empty())) {
            // MQTT 5 §4.9: never more unacknowledged QoS>0 messages than the client allows.
            tr().waiting->push_back({id, std::move(d)});
            return;
        }
        send_delivery(sub, id, d, qos);
        flush();
    }

    // ---- registry ----------------------------------------------------------------------

    void on_taken_over(bool clean_start) override {
        if (state_ == state::closing) return;
        log()->info("conn={} client_id={} reason=session_taken_over", conn_, client_id_);
        if (version_ == version::v5) send_disconnect(reason::session_taken_over);
        abnormal_ = true;   // MQTT 5 §3.1.4: the old connection's will is published...
        // ...per §3.1.2.5: not at all when the session goes on in the new connection (it is
        // back within any delay), at once when the takeover ends the session (Mosquitto 2.0).
        if (!clean_start && session_expiry_s_ != 0) will_.reset();
        else will_delay_s_ = 0;
        begin_closing();
    }

    void on_claimed(claim c) override {
        if (state_ != state::claiming) {
            // We went away while waiting; hand the session on.
            registry_->release(client_id_, this, c.state);
            if (c.discard) end_state(broker_, *c.discard);
            return;
        }
        complete_connect(std::move(c));
    }

    // ---- output flow (net::flow_target) -------------------------------------------------

    void pause_consumers(bool pause) override {
        if (!traffic_) return;
        for (auto& [filter, sub] : traffic_->subs) {
            if (pause) broker_.pause(sub->consumer, sub->dest);
            else broker_.resume(sub->consumer, sub->dest);
        }
    }

    bool on_output_stalled(std::chrono::milliseconds stalled) override {
        if (state_ == state::closing || !subscribed()) return false;
        log()->warn("conn={} peer={} proto=mqtt client_id={} reason=slow_consumer detail=\"output not read for {} ms\"",
                    conn_, transport_->peer(), client_id_, stalled.count());
        close_now(true);
        return true;
    }

private:
    // ---- reading -----------------------------------------------------------------------

    bool over_watermark() const noexcept {
        return out_.size() + wbuf_.size() > settings_->output.high_watermark ||
               acks_.size() + unconfirmed_qos0_ >= settings_->receive_maximum;
    }

    void resume() {
        if (!paused_ || over_watermark() || state_ == state::closing || state_ == state::claiming) return;
        paused_ = false;
        decode_packets();
        in_.compact();
        do_read();
    }

    void do_read() {
        if (reading_ || paused_) return;
        if (state_ != state::closing && (over_watermark() || state_ == state::claiming)) {
            paused_ = true;
            return;
        }
        reading_ = true;
        transport_->async_wait_readable(shared_from_this());
    }

    void decode_packets() {
        while ((state_ == state::awaiting_connect || state_ == state::active) && in_.size() > 0) {
            if (need_ > in_.size()) break;
            const auto bytes = in_.data();
            auto r = decode(bytes, settings_->packet_limits, version_);
            if (auto* m = std::get_if<need_more>(&r)) {
                need_ = m->at_least;
                break;
            }
            need_ = 0;
            if (auto* e = std::get_if<decode_error>(&r)) return on_decode_error(*e, bytes);
            auto& d = std::get<decoded>(r);
            on_packet(d.frame);
            in_.consume(d.consumed);
            if (over_watermark() || state_ == state::claiming) break;
        }
    }

    // ---- packets -----------------------------------------------------------------------

    void on_packet(packet& p) {
        if (state_ == state::awaiting_connect) {
            if (auto* c = std::get_if<connect>(&p)) return on_connect(*c);
            return fail(reason::protocol_error, "the first packet must be CONNECT");
        }
        std::visit([this](auto& pk) { on(pk); }, p);
    }

    void on(connect&) { fail(reason::protocol_error, "second CONNECT"); }
    void on(publish& p) { on_publish(p); }
    void on(puback& a) { on_outbound_done(a.packet_id); }
    void on(pubrec& a) { on_pubrec(a); }
    void on(pubrel& a) { on_pubrel(a); }
    void on(pubcomp& a) { on_outbound_done(a.packet_id); }
    void on(subscribe& s) { on_subscribe(s); }
    void on(unsubscribe& u) { on_unsubscribe(u); }
    void on(pingreq&) {
        encode(packet{pingresp{}}, version_, out_);
        flush();
    }
    void on(disconnect& d) { on_disconnect(d); }
    void on(auth&) { fail(reason::protocol_error, "AUTH without an authentication method"); }
    template <typename T>
    void on(T&) { fail(reason::protocol_error, "packet not accepted from a client"); }

    void on_decode_error(const decode_error& e, std::span<const std::uint8_t> bytes) {
        if (state_ == state::awaiting_connect) {
            if (e.code == reason::unsupported_protocol_version) {
                // A later "MQTT" level gets the MQTT 5 answer (§3.1.2.2: CONNACK 0x84); older or
                // unknown ones the 3.1.1 return code 1 (§3.2.2.3), which every client can read.
                if (connect_level(bytes) > 5) {
                    connack ack;
                    ack.code = std::uint8_t(reason::unsupported_protocol_version);
                    encode(packet{ack}, version::v5, out_);
                } else {
                    encode(packet{connack{false, std::uint8_t(connack_v3::unacceptable_protocol_version), {}}},
                           version::v3_1_1, out_);
                }
                log()->warn("conn={} peer={} proto=mqtt reason=unsupported_protocol_version", conn_, transport_->peer());
                return begin_closing();
            }
            // A malformed CONNECT from a v5 client (level byte 5 at its fixed place) gets a
            // CONNACK with the reason; anything else is just closed (MQTT 5 §4.13.1).
            if (looks_like_v5_connect(bytes)) {
                version_ = version::v5;
                connack ack;
                ack.code = std::uint8_t(e.code);
                encode(packet{ack}, version::v5, out_);
            }
            log()->warn("conn={} peer={} proto=mqtt reason={} detail=\"{}\"", conn_, transport_->peer(),
                        to_string(e.code), e.detail);
            return begin_closing();
        }
        fail(e.code, e.detail);
    }

    // The protocol level of an "MQTT" CONNECT at the start of `b` (0 when it is not one).
    static unsigned connect_level(std::span<const std::uint8_t> b) {
        if (b.empty() || (b[0] >> 4) != 1) return 0;
        std::size_t i = 1;
        while (i < b.size() && i < 5 && (b[i] & 0x80)) ++i;
        ++i;   // past the remaining length
        // protocol name "MQTT" (2 + 4 bytes), then the level
        if (b.size() <= i + 6 || b[i] != 0 || b[i + 1] != 4 || b[i + 2] != 'M' || b[i + 3] != 'Q') return 0;
        return b[i + 6];
    }

    static bool looks_like_v5_connect(std::span<const std::uint8_t> b) { return connect_level(b) == 5; }

    void on_connect(connect& c) {
        version_ = c.ver;
        if (c.props.authentication_method) return refuse(reason::bad_authentication_method, connack_v3::not_authorized);
        std::string user = c.username ? std::string(*c.username) : std::string();
        std::string password;
        if (c.password) password.assign(reinterpret_cast<const char*>(c.password->data()), c.password->size());
        auto who = auth_.authenticate(user, password);
        if (!who) return refuse(reason::bad_user_name_or_password, connack_v3::bad_user_name_or_password);

        client_id_ = std::string(c.client_id);
        clean_start_ = c.clean_start;
        if (client_id_.empty()) {
            // MQTT 3.1.1 §3.1.3.1: an empty id needs a clean session; 3.1 needs an id.
            if (version_ == version::v3_1 || (version_ == version::v3_1_1 && !c.clean_start))
                return refuse(reason::client_identifier_not_valid, connack_v3::identifier_rejected);
            client_id_ = "sb-" + std::to_string(conn_) + "-" + std::to_string(std::random_device{}());
            assigned_id_ = true;
        }

        if (version_ == version::v5) {
            asked_session_expiry_s_ = c.props.session_expiry_interval.value_or(0);
            session_expiry_s_ = std::min(asked_session_expiry_s_, settings_->max_session_expiry_s);
            client_receive_max_ = c.props.receive_maximum.value_or(65535);
            client_alias_max_ = c.props.topic_alias_maximum.value_or(0);
            client_max_packet_ = c.props.maximum_packet_size.value_or(0);
        } else {
            session_expiry_s_ = c.clean_start ? 0 : never_expires;
            client_receive_max_ = 65535;
        }
        keepalive_s_ = c.keep_alive;
        if (keepalive_s_ == 0 || keepalive_s_ > settings_->max_keepalive_s) {
            // As mosquitto: no keep-alive (0) counts as longer than any; v5 is told the one imposed.
            keepalive_s_ = settings_->max_keepalive_s;
            server_keepalive_ = true;
        }
        if (c.will_msg) {
            if (c.will_msg->retain && !settings_->retain_available)
                return refuse(reason::retain_not_supported, connack_v3::not_authorized);
            if (!valid_topic_name(c.will_msg->topic)) {
                // 3.1.1 [MQTT-4.7.3-1], §4.8: a malformed CONNECT is closed without a CONNACK
                // (as mosquitto does); v5 is told why (§4.13.1 allows a CONNACK first).
                if (version_ != version::v5) return close_malformed_connect("invalid will topic");
                return refuse(reason::topic_name_invalid, connack_v3::not_authorized);
            }
            publish wp;
            wp.qos = c.will_msg->qos;
            wp.retain = c.will_msg->retain;
            wp.topic = c.will_msg->topic;
            wp.props = c.will_msg->props;
            wp.payload = c.will_msg->payload;
            auto m = std::make_shared<core::message>(message_from_publish(wp, wp.topic, core::now_ms()));
            will_ = m;
            will_delay_s_ = c.will_msg->props.will_delay_interval.value_or(0);
        }

        // Mosquitto accepts such a will and never publishes it: clients do not write there.
        if (c.will_msg && server_topic(c.will_msg->topic)) will_.reset();

        state_ = state::claiming;
        auto self = shared_from_this();
        auto c2 = registry_->claim_id(client_id_, clean_start_, self, home_);
        if (c2) complete_connect(std::move(*c2));
        // else: paused until on_claimed (the old session with this id is closing)
    }

    void refuse(reason v5, connack_v3 v3) {
        connack ack;
        ack.code = version_ == version::v5 ? std::uint8_t(v5) : std::uint8_t(v3);
        encode(packet{ack}, version_, out_);
        log()->warn("conn={} peer={} proto=mqtt reason={}", conn_, transport_->peer(), to_string(v5));
        will_.reset();
        begin_closing();
    }

    void close_malformed_connect(std::string_view detail) {
        log()->warn("conn={} peer={} proto=mqtt reason=malformed_packet detail=\"{}\"", conn_, transport_->peer(), detail);
        will_.reset();
        begin_closing();
    }

    void complete_connect(claim c) {
        if (c.discard) end_state(broker_, *c.discard);
        state_ = state::active;
        subscriber_ = c.resumed && c.state->subscriber ? c.state->subscriber : broker_.next_consumer_id();
        connack ack;
        // MQTT 3.1 has no session present flag: its CONNACK's first byte is always 0.
        ack.session_present = c.resumed && version_ != version::v3_1;
        if (version_ == version::v5) {
            // What mosquitto 2.0 sends: the limits, and a capability only when it is missing
            // (absent means available, MQTT 5 §3.2.2.3: wildcard, subscription identifier and
            // shared subscriptions always are here; maximum QoS is 2).
            auto& p = ack.props;
            p.receive_maximum = settings_->receive_maximum;
            if (settings_->topic_alias_maximum > 0) p.topic_alias_maximum = settings_->topic_alias_maximum;
            p.maximum_packet_size = std::uint32_t(settings_->packet_limits.max_packet_size);
            if (!settings_->retain_available) p.retain_available = false;
            if (assigned_id_) p.assigned_client_identifier = client_id_;
            if (server_keepalive_) p.server_keep_alive = keepalive_s_;
            // §3.2.2.3.2: only a value other than the client's is sent (mosquitto sends none).
            if (session_expiry_s_ != asked_session_expiry_s_) p.session_expiry_interval = session_expiry_s_;
        }
        encode(packet{ack}, version_, out_);
        flush();
        timer_.cancel();
        schedule_keepalive();
        log()->debug("conn={} peer={} client_id={} version={} session_present={}", conn_, transport_->peer(),
                     client_id_, int(version_), c.resumed);
        if (c.resumed) resume_state(*c.state);
        resume();
    }

    // A resumed persistent session: its subscriptions come back to this connection, unacked
    // messages are sent again (with DUP) and pending PUBRELs repeated.
    void resume_state(saved_state& s) {
        tr().inbound_qos2 = std::move(s.inbound_qos2);
        for (auto& [id, o] : s.outbound_by_id) {
            if (o.released) {
                tr().in_flight[id] = o;
                pubrel rel;
                rel.packet_id = id;
                encode(packet{rel}, version_, out_);
            } else {
                tr().resend_ids[o.tag] = id;   // the redelivery reuses its packet id
            }
        }
        for (auto& sub : s.subs) {
            auto owned = std::make_unique<sub_state>(std::move(sub));
            if (owned->consumer == 0) {
                // Restored after a broker restart: the durable subscription is there, its
                // consumer is not. Retained messages are not sent again on a resume.
                owned->consumer = broker_.next_consumer_id();
                auto opt = subscribe_options_for(*owned);
                owned->prefetch = opt.prefetch;
                opt.want_retained = false;
                broker_.subscribe_durable(owned->consumer, owned->durable, owned->topic, opt, weak_from_this(), {},
                                          durable_data(*owned, session_expiry_s_));
            } else {
                broker_.attach(owned->consumer, owned->dest, weak_from_this(), {});
            }
            tr().by_consumer[owned->consumer] = owned.get();
            owned->overlaps = 0;   // counted again among this connection's subscriptions
            link_overlaps(*owned);
            tr().subs[owned->filter] = std::move(owned);
        }
        flush();
    }

    void on_publish(publish& p) {
        std::string_view topic = p.topic;
        if (version_ == version::v5) {
            if (auto alias = p.props.topic_alias) {
                if (*alias == 0 || *alias > settings_->topic_alias_maximum)
                    return fail(reason::topic_alias_invalid, "topic alias out of range");
                if (!topic.empty()) {
                    tr().aliases[*alias] = std::string(topic);
                } else {
                    auto it = tr().aliases.find(*alias);
                    if (it == tr().aliases.end()) return fail(reason::protocol_error, "unknown topic alias");
                    topic = it->second;
                }
            }
        }
        // MQTT 5 §3.3.4: a PUBLISH from a client never carries a Subscription Identifier.
        if (!p.props.subscription_identifiers.empty())
            return fail(reason::protocol_error, "subscription identifier from a client");
        if (!valid_topic_name(topic)) return fail(reason::topic_name_invalid, "invalid topic name");
        if (p.retain && !settings_->retain_available) return fail(reason::retain_not_supported, "retain not supported");

        if (p.qos == 2 && tr().inbound_qos2.contains(p.packet_id)) {
            // A retransmission before PUBREL: already accepted once (exactly once).
            pending_ack a{packet_type::pubrec, p.packet_id, 0, 0, {}};
            acks_->push_back(std::move(a));
            return flush_acks();
        }
        if (p.qos > 0 && acks_.size() + tr().inbound_qos2.size() >= settings_->receive_maximum && version_ == version::v5)
            return fail(reason::receive_maximum_exceeded, "receive maximum exceeded");
        if (server_topic(topic)) {
            // Not published. v5 is told 0x87; v3 has no way to say it, so (like mosquitto) its
            // PUBACK/PUBREC is the ordinary one and the QoS 2 flow completes as usual.
            log()->debug("conn={} client_id={} publish to server topic refused topic={}", conn_, client_id_, topic);
            if (p.qos == 0) return;
            const auto code = version_ == version::v5 ? std::uint8_t(reason::not_authorized) : std::uint8_t(0);
            if (p.qos == 2 && code == 0) tr().inbound_qos2.insert(p.packet_id);
            acks_->push_back(pending_ack{p.qos == 1 ? packet_type::puback : packet_type::pubrec, p.packet_id, 0, code, {}});
            return flush_acks();
        }

        auto m = std::make_shared<core::message>(message_from_publish(p, topic, core::now_ms()));
        m->id = broker_.next_message_id();
        m->origin_connection = conn_;
        if (p.qos == 0) {
            // No acknowledgement goes back, but the completion still bounds how far a fast
            // publisher can run ahead of the kernel: reading stops at receive_maximum.
            ++unconfirmed_qos0_;
            broker_.publish(std::move(m), [self = shared_from_this()](core::publish_status) {
                --self->unconfirmed_qos0_;
                self->resume();
            });
            return;
        }
        if (p.qos == 2) tr().inbound_qos2.insert(p.packet_id);
        // Only a connection with subscriptions can get its own message back before this ack:
        // a publisher-only one (the common case) tracks nothing.
        const core::message_id own = tr().subs.empty() ? 0 : m->id;
        acks_->push_back(pending_ack{p.qos == 1 ? packet_type::puback : packet_type::pubrec, p.packet_id, 1, 0, {}, own, {}});
        if (own) tr().acking.insert(own);
        auto* a = &acks_->back();
        auto done = [self = shared_from_this(), a](core::publish_status s, std::size_t matched) {
            if (self->state_ == state::closing) return;
            if (s != core::publish_status::ok) a->code = std::uint8_t(reason::unspecified_error);
            // MQTT 5 §3.4.2.1: 0x10 No matching subscribers (v3 acks carry no code).
            else if (matched == 0) a->code = std::uint8_t(reason::no_matching_subscribers);
            --a->waiting;
            self->flush_acks();
            self->resume();
        };
        if (version_ == version::v5) return broker_.publish_counted(std::move(m), std::move(done));
        broker_.publish(std::move(m), [done = std::move(done)](core::publish_status s) { done(s, 1); });
    }

    void on_pubrel(const pubrel& r) {
        const bool known = tr().inbound_qos2.erase(r.packet_id) > 0;
        pending_ack a{packet_type::pubcomp, r.packet_id, 0, 0, {}};
        if (!known && version_ == version::v5) a.code = std::uint8_t(reason::packet_identifier_not_found);
        acks_->push_back(std::move(a));
        flush_acks();
    }

    void on_pubrec(const pubrec& r) {
        auto it = tr().in_flight.find(r.packet_id);
        if (it == tr().in_flight.end() || it->second.qos != 2) {
            if (version_ == version::v5) {
                pubrel rel;
                rel.packet_id = r.packet_id;
                rel.code = std::uint8_t(reason::packet_identifier_not_found);
                encode(packet{rel}, version_, out_);
                flush();
            }
            return;
        }
        if (r.code >= 0x80) return on_outbound_done(r.packet_id);   // the client refused it
        it->second.released = true;
        // The client has the message: settle it in the kernel now; PUBCOMP only frees the id.
        broker_.ack(it->second.consumer, {it->second.tag});
        pubrel rel;
        rel.packet_id = r.packet_id;
        encode(packet{rel}, version_, out_);
        flush();
    }

    void on_outbound_done(std::uint16_t id) {
        auto it = tr().in_flight.find(id);
        if (it == tr().in_flight.end()) return;   // MQTT tolerates a late or repeated ack
        if (!it->second.released) broker_.ack(it->second.consumer, {it->second.tag});
        tr().in_flight.erase(it);
        send_waiting();
    }

    void on_subscribe(subscribe& s) {
        pending_ack a{packet_type::suback, s.packet_id, 0, 0, {}};
        const std::uint32_t sub_id = s.props.subscription_identifiers.empty() ? 0 : s.props.subscription_identifiers.front();
        const bool v5 = version_ == version::v5;
        const std::uint8_t invalid = v5 ? std::uint8_t(reason::topic_filter_invalid) : 0x80;
        std::vector<std::pair<std::unique_ptr<sub_state>, core::subscribe_options>> adds;
        for (const auto& t : s.topics) {
            std::string_view filter = t.filter;
            std::string group;
            if (auto sh = parse_share(filter)) {
                if (sh->group.empty()) {
                    a.codes.push_back(invalid);
                    continue;
                }
                // MQTT 5 §3.8.3.1: No Local on a shared subscription is a protocol error.
                if (t.no_local) return fail(reason::protocol_error, "no local on a shared subscription");
                group = std::string(sh->group);
                filter = sh->filter;
            }
            if (!valid_topic_filter(filter)) {
                a.codes.push_back(invalid);
                continue;
            }
            if (auto old = tr().subs.find(std::string(t.filter)); old != tr().subs.end() && old->second->share_group == group) {
                // MQTT §3.8.4: the same filter again replaces the options but must not interrupt
                // the flow of messages (a resumed session re-subscribing keeps what was queued),
                // so the kernel subscription stays.
                auto& sub = *old->second;
                sub.qos = t.qos;
                sub.retain_as_published = t.retain_as_published;
                sub.subscription_id = sub_id;
                if (t.retain_handling == 0 && group.empty()) broker_.resend_retained(sub.consumer, sub.dest);
                a.codes.push_back(t.qos);
                a.consumers.push_back(sub.consumer);
                continue;
            }
            if (auto dup = std::find_if(adds.begin(), adds.end(), [&](const auto& e) { return e.first->filter == t.filter; });
                dup != adds.end()) {
                // The same filter again in this SUBSCRIBE: it replaces the earlier entry (MQTT
                // §3.8.4), still one subscription, and one SUBACK code per entry. Retained
                // messages go once, if either entry asks for them.
                auto& sub = *dup->first;
                sub.qos = t.qos;
                sub.no_local = t.no_local;
                sub.retain_as_published = t.retain_as_published;
                const bool want_retained = dup->second.want_retained || t.retain_handling == 0;
                dup->second = subscribe_options_for(sub);
                dup->second.want_retained = want_retained;
                a.codes.push_back(t.qos);
                continue;
            }
            auto sub = std::make_unique<sub_state>();
            sub->filter = std::string(t.filter);
            sub->topic = core::destination{core::dest_kind::topic, to_kernel_topic(filter)};
            sub->dest = sub->topic;
            if (session_expiry_s_ != 0 && group.empty()) {
                // A persistent session: a durable subscription, so it survives a restart too.
                sub->durable = durable_name(client_id_, sub->filter);
                sub->dest = core::broker::durable_queue(sub->durable);
            }
            sub->share_group = group;
            sub->qos = t.qos;
            sub->no_local = t.no_local;
            sub->retain_as_published = t.retain_as_published;
            sub->subscription_id = sub_id;
            sub->consumer = broker_.next_consumer_id();
            auto opt = subscribe_options_for(*sub);
            sub->prefetch = opt.prefetch;
            // MQTT 5 §3.3.1.3: retain handling 0 sends retained messages, 1 only for a new
            // subscription (this one is new: an existing filter was updated above), 2 never.
            opt.want_retained = t.retain_handling != 2;
            a.codes.push_back(t.qos);
            adds.emplace_back(std::move(sub), opt);
        }
        a.waiting = adds.size();
        for (auto& [sub, opt] : adds) a.consumers.push_back(sub->consumer);
        tr().subscribing.insert(a.consumers.begin(), a.consumers.end());
        acks_->push_back(std::move(a));
        auto* ack = &acks_->back();
        for (auto& [sub, opt] : adds) {
            if (auto old = tr().subs.find(sub->filter); old != tr().subs.end()) {
                // The same filter twice in one SUBSCRIBE: the later one wins.
                end_subscription(*old->second);
                tr().subs.erase(old);
            }
            tr().by_consumer[sub->consumer] = sub.get();
            auto done = [self = shared_from_this(), ack] { self->complete(ack); };
            if (!sub->durable.empty())
                broker_.subscribe_durable(sub->consumer, sub->durable, sub->topic, opt, weak_from_this(), std::move(done),
                                          durable_data(*sub, session_expiry_s_));
            else
                broker_.subscribe(sub->consumer, sub->dest, opt, weak_from_this(), std::move(done));
            auto key = sub->filter;
            link_overlaps(*sub);
            tr().subs[key] = std::move(sub);
        }
        flush_acks();
    }

    void on_unsubscribe(unsubscribe& u) {
        pending_ack a{packet_type::unsuback, u.packet_id, 0, 0, {}};
        std::vector<sub_state*> ends;
        std::set<std::string_view> seen;
        for (auto f : u.filters) {
            auto it = tr().subs.find(std::string(f));
            // A filter repeated in the same UNSUBSCRIBE finds nothing left the second time
            // (MQTT 5 §3.10.4: one reason code per filter; 0x11 No subscription existed).
            if (it == tr().subs.end() || !seen.insert(f).second) {
                a.codes.push_back(std::uint8_t(reason::no_subscription_existed));
                continue;
            }
            a.codes.push_back(0);
            ++a.waiting;
            ends.push_back(it->second.get());
        }
        acks_->push_back(std::move(a));
        auto* ack = &acks_->back();
        for (auto* s : ends) {
            end_subscription(*s, [self = shared_from_this(), ack] { self->complete(ack); });
            const std::string key = s->filter;   // not a reference into the erased element
            tr().subs.erase(key);
        }
        flush_acks();
    }

    void on_disconnect(const disconnect& d) {
        if (version_ == version::v5) {
            // MQTT 5 §3.14.2.2.2: a session expiry may not be set on DISCONNECT if CONNECT had 0.
            if (auto e = d.props.session_expiry_interval) {
                if (session_expiry_s_ == 0 && *e != 0) return fail(reason::protocol_error, "session expiry set on DISCONNECT");
                session_expiry_s_ = std::min(*e, settings_->max_session_expiry_s);
            }
            if (d.code == std::uint8_t(reason::disconnect_with_will_message)) abnormal_ = true;
        }
        if (!abnormal_) will_.reset();
        begin_closing();
    }

    // ---- acks to the client, in order ---------------------------------------------------

    traffic& tr() {
        if (!traffic_) traffic_ = std::make_unique<traffic>();
        return *traffic_;
    }
    bool subscribed() const noexcept { return traffic_ && !traffic_->subs.empty(); }

    void complete(pending_ack* a) {
        if (state_ == state::closing) return;
        --a->waiting;
        flush_acks();
        resume();
    }

    void flush_acks() {
        while (!acks_.empty() && acks_->front().waiting == 0) {
            auto& a = acks_->front();
            switch (a.type) {
            case packet_type::puback: encode(packet{puback{{a.packet_id, a.code, {}}}}, version_, out_); break;
            case packet_type::pubrec: encode(packet{pubrec{{a.packet_id, a.code, {}}}}, version_, out_); break;
            case packet_type::pubcomp: encode(packet{pubcomp{{a.packet_id, a.code, {}}}}, version_, out_); break;
            case packet_type::suback: encode(packet{suback{a.packet_id, {}, std::move(a.codes)}}, version_, out_); break;
            case packet_type::unsuback:
                encode(packet{unsuback{a.packet_id, {}, version_ == version::v5 ? std::move(a.codes) : std::vector<std::uint8_t>{}}},
                       version_, out_);
                break;
            default: break;
            }
            if (auto m = a.msg ? tr().acking.find(a.msg) : tr().acking.end(); m != tr().acking.end()) tr().acking.erase(m);
            for (auto c : a.consumers)
                if (auto it = tr().subscribing.find(c); it != tr().subscribing.end()) tr().subscribing.erase(it);
            acks_->pop_front();
        }
        acks_.release_if_empty();   // nothing waits on an element now: idle sessions hold nothing
        release_held();
        flush();
    }

    // ---- deliveries to the client ------------------------------------------------------

    std::uint16_t next_packet_id() {
        for (;;) {
            if (++tr().next_id == 0) tr().next_id = 1;
            if (!tr().in_flight.contains(tr().next_id)) return tr().next_id;
        }
    }

    core::subscribe_options subscribe_options_for(const sub_state& s) const {
        core::subscribe_options opt;
        opt.connection = conn_;
        opt.no_local = s.no_local;
        opt.share_group = s.share_group;
        opt.subscriber = subscriber_;
        opt.prefetch = std::min<std::uint32_t>(settings_->default_prefetch, client_receive_max_);
        opt.max_pending = settings_->max_queued_messages;
        return opt;
    }

    // `s` is about to join the subscriptions (or has just left it): the counts of the filters it may overlap.
    void link_overlaps(sub_state& s) {
        if (!s.share_group.empty()) return;
        for (auto& [f, o] : tr().subs) {
            if (o.get() == &s || !o->share_group.empty() || !may_overlap(o->topic.name, s.topic.name)) continue;
            ++o->overlaps;
            ++s.overlaps;
        }
    }

    void unlink_overlaps(sub_state& s) {
        if (!s.share_group.empty() || s.overlaps == 0) return;
        for (auto& [f, o] : tr().subs)
            if (o.get() != &s && o->share_group.empty() && o->overlaps > 0 && may_overlap(o->topic.name, s.topic.name))
                --o->overlaps;
        s.overlaps = 0;
    }

    // MQTT 5 §3.3.4: a message matching several of this client's subscriptions is delivered
    // once (the kernel gives it to one of them, `via`), at the highest QoS granted, with every
    // matching subscription identifier. A retained message sent for a new subscription, or
    // one to a shared subscription, is that subscription's alone. `any` is false when No Local
    // leaves no subscription for it.
    struct match {
        bool any = false;
        std::uint8_t qos = 0;
        bool retain_as_published = false;
    };

    match match_subscriptions(const sub_state& via, const core::delivery& d, std::vector<std::uint32_t>* ids) const {
        const auto& m = *d.msg;
        const std::uint8_t offered = message_qos(m);
        match r;
        const auto take = [&](const sub_state& s) {
            // A durable subscription's queue takes every message; No Local is applied here.
            if (s.no_local && m.origin_connection == conn_) return;
            r.any = true;
            r.qos = std::max(r.qos, std::min(s.qos, offered));
            r.retain_as_published |= s.retain_as_published;
            if (ids && s.subscription_id) ids->push_back(s.subscription_id);
        };
        if (d.retained || via.overlaps == 0 || !via.share_group.empty()) {
            take(via);
            return r;
        }
        for (const auto& [f, s] : traffic_->subs)
            if (s->share_group.empty() && core::matches(s->topic.name, m.dest.name)) take(*s);
        return r;
    }

    void send_delivery(const sub_state& sub, core::consumer_id id, const core::delivery& d, std::uint8_t qos) {
        const auto now = core::now_ms();
        const auto& m = *d.msg;
        if (m.expired_at(now)) return broker_.ack(id, {d.tag});
        properties props;
        const auto matched = match_subscriptions(sub, d, version_ == version::v5 ? &props.subscription_identifiers : nullptr);
        const bool retain = d.retained || (matched.retain_as_published && m.retain);
        const auto topic = to_mqtt_topic(m.dest.name);
        std::uint16_t alias = 0;
        bool send_topic = true;
        if (version_ == version::v5) {
            publish_properties(m, now, props, tr().storage);
            if (client_alias_max_ > 0) {
                if (auto it = tr().out_aliases.find(topic); it != tr().out_aliases.end()) {
                    alias = it->second;
                    send_topic = false;
                } else if (tr().out_aliases.size() < client_alias_max_) {
                    alias = std::uint16_t(tr().out_aliases.size() + 1);
                    tr().out_aliases.emplace(topic, alias);
                }
                if (alias) props.topic_alias = alias;
            }
        }
        std::uint16_t pid = 0;
        bool dup = false;
        if (qos > 0) {
            if (auto r = tr().resend_ids.find(d.tag); r != tr().resend_ids.end() && !tr().in_flight.contains(r->second)) {
                pid = r->second;
                dup = true;
                tr().resend_ids.erase(r);
            } else {
                pid = next_packet_id();
                dup = d.redeliveries > 0;
            }
        }
        const auto mark = out_.size();
        encode_publish(out_, version_, dup, qos, retain, send_topic ? std::string_view(topic) : std::string_view{}, pid,
                       version_ == version::v5 ? &props : nullptr,
                       std::span(reinterpret_cast<const std::uint8_t*>(m.body.data()), m.body.size()));
        if (client_max_packet_ && out_.size() - mark > client_max_packet_) {
            // MQTT 5 §3.1.2.11.4: a packet over the client's maximum is not sent; it is dropped.
            out_.resize(mark);
            if (alias && send_topic) tr().out_aliases.erase(topic);   // the alias was never sent
            return broker_.ack(id, {d.tag});
        }
        if (qos == 0) {
            settlements_.note(id, d.tag);
        } else {
            tr().in_flight[pid] = outbound{id, d.tag, qos, false};
        }
    }

    void send_waiting() {
        while (!tr().waiting.empty() && tr().in_flight.size() < client_receive_max_) {
            auto [id, d] = std::move(tr().waiting->front());
            tr().waiting->pop_front();
            auto it = tr().by_consumer.find(id);
            if (it == tr().by_consumer.end()) continue;
            send_delivery(*it->second, id, d, match_subscriptions(*it->second, d, nullptr).qos);
        }
        tr().waiting.release_if_empty();
        flush();
    }

    void flush() {
        if (!writing_ && !out_.empty()) do_write();
        flow_.grew(*this, out_.size() + wbuf_.size());
    }

    void do_write() {
        writing_ = true;
        std::swap(out_, wbuf_);
        settlements_.write_started();
        flow_.write_started(transport_->get_executor(), weak_from_this(), subscribed());
        transport_->async_write(std::as_bytes(std::span(wbuf_.data(), wbuf_.size())), shared_from_this());
    }

    void send_disconnect(reason r) {
        disconnect d;
        d.code = std::uint8_t(r);
        encode(packet{d}, version::v5, out_);
    }

    // ---- errors and closing ------------------------------------------------------------

    // A protocol violation: v5 gets DISCONNECT with the reason, v3 a close (MQTT 3.1.1 §4.8).
    void fail(reason r, std::string_view detail) {
        if (state_ == state::closing) return;
        log()->warn("conn={} peer={} proto=mqtt client_id={} reason={} detail=\"{}\"", conn_, transport_->peer(),
                    client_id_, to_string(r), detail);
        if (version_ == version::v5 && state_ == state::active) send_disconnect(r);
        abnormal_ = true;
        begin_closing();
    }

    void end_subscription(sub_state& s, std::function<void()> done = {}) {
        if (state_ != state::closing) unlink_overlaps(s);
        tr().by_consumer.erase(s.consumer);
        flow_.forget(s.consumer);   // kept, never encoded: unsettled, the kernel requeues them
        settlements_.settle_consumer(broker_, s.consumer);   // QoS 0 already encoded was sent
        std::erase_if(tr().in_flight, [&](const auto& o) { return o.second.consumer == s.consumer; });
        std::erase_if(*tr().waiting, [&](const auto& w) { return w.first == s.consumer; });
        if (!tr().held.empty()) std::erase_if(*tr().held, [&](const auto& w) { return w.first == s.consumer; });
        tr().held_count.erase(s.consumer);
        tr().subscribing.erase(s.consumer);
        broker_.unsubscribe(s.consumer, s.dest, std::move(done));
        if (!s.durable.empty()) broker_.unsubscribe_durable(s.durable);   // the session no longer wants it
    }

    void begin_closing() {
        if (state_ == state::closing) return;
        const bool was_connected = state_ == state::active || state_ == state::claiming;
        state_ = state::closing;
        timer_.cancel();
        flow_.stop();
        if (was_connected) {
            publish_will();
            hand_over_session();
        }
        arm_timer(std::chrono::milliseconds(settings_->linger_ms));   // for the peer to read our last packet
        if (!writing_ && out_.empty()) transport_->shutdown_send();
        else flush();
        if (paused_) {
            paused_ = false;
            do_read();
        }
    }

    // Keeps a persistent session for the next connection (subscriptions stay in the kernel and
    // queue messages); a clean one ends its subscriptions.
    void hand_over_session() {
        if (client_id_.empty()) return;
        std::shared_ptr<saved_state> keep;
        if (session_expiry_s_ != 0) {
            keep = std::make_shared<saved_state>();
            keep->expiry_s = session_expiry_s_;
            keep->subscriber = subscriber_;
            settlements_.settle_all(broker_);   // QoS 0 in flight was (being) written
            if (traffic_) {
                auto& t = *traffic_;
                keep->inbound_qos2 = std::move(t.inbound_qos2);
                for (auto& [id, o] : t.in_flight) keep->outbound_by_id[id] = o;
                for (auto& [f, s] : t.subs) {
                    keep->subs.push_back(*s);
                    broker_.attach(s->consumer, s->dest, {}, {});   // detached: queue, never hold producers
                }
            }
        } else if (traffic_) {
            for (auto& [f, s] : traffic_->subs) end_subscription(*s);
        }
        if (traffic_) {
            auto& t = *traffic_;
            t.subs.clear();
            t.by_consumer.clear();
            t.waiting.clear();
            t.held.clear();
            t.held_count.clear();
        }
        registry_->release(client_id_, this, std::move(keep));
    }

    void publish_will() {
        if (!will_ || !abnormal_) return;
        auto msg = std::move(will_);
        msg->id = broker_.next_message_id();
        std::uint32_t delay = will_delay_s_;
        if (session_expiry_s_ < delay) delay = session_expiry_s_;   // MQTT 5 §3.1.3.2.2
        if (delay == 0) {
            broker_.publish(msg, {});
            return;
        }
        auto cancel = std::make_shared<pending_will>();
        cancel->msg = msg;
        registry_->set_pending_will(client_id_, cancel);
        auto w = std::make_shared<delayed_will>(transport_->get_executor());
        w->timer.expires_after(std::chrono::seconds(delay));
        w->timer.async_wait([w, cancel, msg, reg = registry_, id = client_id_](net::error_code ec) {
            if (ec || cancel->done.exchange(true)) return;
            reg->broker().publish(msg, {});
            reg->will_done(id);
        });
    }

    void close_now(bool abnormal) {
        if (closed_) return;
        if (abnormal && state_ != state::closing) abnormal_ = true;
        if (state_ != state::closing) begin_closing();
        closed_ = true;
        timer_.cancel();
        transport_->close();
    }

    // ---- timers ------------------------------------------------------------------------

    void arm_timer(std::chrono::milliseconds after) {
        timer_.expires_after(after);
        timer_.async_wait([self = shared_from_this()](net::error_code ec) {
            if (!ec) self->on_timer();
        });
    }

    void schedule_keepalive() {
        if (keepalive_s_ == 0) return;
        arm_timer(std::chrono::milliseconds(std::max<std::uint32_t>(keepalive_s_ * 250u, 50)));
    }

    void on_timer() {
        if (closed_) return;
        if (state_ == state::awaiting_connect || state_ == state::claiming) {
            log()->info("conn={} peer={} proto=mqtt reason=connect_timeout", conn_, transport_->peer());
            return close_now(false);
        }
        if (state_ == state::closing) return close_now(false);
        // MQTT §3.1.2.10: one and a half keep-alive periods without a packet end the connection.
        if (clock::now() - last_read_ > std::chrono::milliseconds(keepalive_s_ * 1500u)) {
            log()->info("conn={} peer={} client_id={} reason=keep_alive_timeout", conn_, transport_->peer(), client_id_);
            if (version_ == version::v5) send_disconnect(reason::keep_alive_timeout);
            abnormal_ = true;
            return begin_closing();
        }
        schedule_keepalive();
    }

    std::unique_ptr<net::transport> transport_;
    std::shared_ptr<const settings> settings_;
    core::broker& broker_;
    const core::authenticator& auth_;
    std::shared_ptr<registry> registry_;
    const std::uint64_t conn_;
    boost::asio::steady_timer timer_;
    core::executor* home_;

    state state_ = state::awaiting_connect;
    version version_ = version::v3_1_1;
    std::string client_id_;
    bool clean_start_ = true, assigned_id_ = false, server_keepalive_ = false;
    bool reading_ = false, writing_ = false, paused_ = false, closed_ = false, abnormal_ = false;
    std::uint32_t session_expiry_s_ = 0;
    std::uint32_t asked_session_expiry_s_ = 0;   // v5: the client's, for CONNACK
    std::uint16_t keepalive_s_ = 0;
    std::uint32_t client_receive_max_ = 65535;
    std::uint16_t client_alias_max_ = 0;
    std::uint32_t client_max_packet_ = 0;
    std::uint64_t subscriber_ = 0;   // subscribe_options::subscriber of every subscription

    std::shared_ptr<core::message> will_;
    std::uint32_t will_delay_s_ = 0;

    net::read_buffer in_;
    std::size_t need_ = 0;
    std::string out_, wbuf_;
    net::write_settlements settlements_;   // QoS 0 deliveries, settled once written
    net::output_flow flow_;                // bounds the output: pauses consumers, ends stalled ones

    net::lazy_deque<pending_ack> acks_;
    std::size_t unconfirmed_qos0_ = 0;
    std::unique_ptr<traffic> traffic_;   // none until the client subscribes or publishes at QoS>0

    clock::time_point last_read_;
};

}  // namespace

std::shared_ptr<net::session> make_session(std::unique_ptr<net::transport> t,
                                           std::shared_ptr<const settings> s, core::broker& broker,
                                           const core::authenticator& auth, std::shared_ptr<registry> reg,
                                           std::uint64_t connection_id) {
    return std::make_shared<session>(std::move(t), std::move(s), broker, auth, std::move(reg), connection_id);
}

}  // namespace sb::mqtt
