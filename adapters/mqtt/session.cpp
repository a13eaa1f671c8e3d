// adapters/mqtt/session.cpp — MQTT 3.1/3.1.1/5.0 connection state machine; talks to the kernel.
//
// A protocol in the connection engine (adapters/engine/connection.hpp): the engine reads,
// writes, keeps the deadlines (CONNECT, keep-alive, linger), bounds the output and closes; the
// session decodes packets and answers them. Each subscription filter is one kernel consumer.
// Acknowledgements to the client (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK) wait for the
// kernel and are sent in the order the packets arrived (MQTT 5 §4.6).
//
// Messages with the registry (any worker, under its mutex):
//   CONNECT     -> claim_id: fresh / resumed state, or "wait": the old live session is told
//                  on_taken_over() on its worker and the new one gets on_claimed() later
//   close       -> release: a persistent session's state is saved for the next connection
//   delayed will-> set_pending_will: cancelled if the client id connects again in time, else
//                  published by the expiry sweep once due
#include "adapters/mqtt/session.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <type_traits>
#include <unordered_set>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "adapters/engine/lazy_deque.hpp"
#include "adapters/engine/reply_queue.hpp"
#include "adapters/mqtt/mapping.hpp"
#include "core/broker.hpp"
#include "core/security/auth_pool.hpp"

namespace sb::mqtt {

namespace {

using clock = std::chrono::steady_clock;
constexpr std::uint32_t never_expires = 0xFFFFFFFF;

// One subscription filter: the engine's consumer (its id, and `dest`: what the consumer is on,
// the topic or the durable queue) and what MQTT needs of it.
struct sub_state : engine::consumer {
    std::string filter;              // as the client wrote it, "$share/g/..." included
    core::destination topic;         // the kernel topic filter
    std::string durable;             // persistent sessions: the durable subscription's name
    std::string share_group;
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

// A will waiting for its delay (MQTT 5 §3.1.2.5), in the registry: the expiry sweep publishes
// it once due, a new connection to the session drops it (or publishes it at once when that
// connection starts clean, which ends the session). No timer of its own.
struct pending_will {
    std::shared_ptr<core::message> msg;
    clock::time_point due;
};

class claimant {
public:
    // `clean_start`: the new connection's; a taken-over session that lives on sends no will.
    virtual void on_taken_over(bool clean_start) = 0;
    virtual void on_claimed(claim c) = 0;
    // The connection while it lives; empty once its last reference is gone (it is going).
    virtual std::shared_ptr<claimant> alive() noexcept = 0;
    // Its client id, unchanged from claim_id on.
    virtual const std::string& claimed_id() const noexcept = 0;

    // The registry's, under its mutex: a live connection whose client id has nothing else
    // there (no kept session, waiter or delayed will: most connections) is listed here, in
    // place, so that a connected client costs the registry no allocation. home_ is its worker,
    // set while it is listed.
    claimant* next_listed_ = nullptr;
    core::executor* home_ = nullptr;

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
        if (sub.id) broker.unsubscribe(sub.id, sub.dest);
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
        // References taken under the mutex are dropped after it: a connection's last reference
        // ends it, and its end (forget) takes the mutex.
        std::shared_ptr<claimant> live;
        std::lock_guard lock(mutex_);
        if (!entries_.contains(id)) {
            // Nothing kept for this id: listed in place, unless a live connection has it.
            claimant* listed = find_listed(id);
            if (listed) live = listed->alive();
            if (!live) {
                if (listed) unlist(id);   // going: its end has nothing left to release
                list(*who, home);
                return claim{};
            }
        }
        auto& e = entry_of(id, live);
        if (e.more && e.more->will) {
            // MQTT 5 §3.1.2.5: a reconnect within the will delay means no will; a clean start
            // ends the session, and a session's end sends the will at once (as Mosquitto does).
            if (clean) broker_.publish(std::move(e.more->will->msg), {});
            e.more->will.reset();
        }
        if ((live = e.live.lock())) {
            auto& m = e.extra();
            if (m.waiting) {
                m.waiting->home->post([older = std::move(m.waiting->who), clean] { older->on_taken_over(clean); });
            }
            m.waiting = waiter{clean, who, home};
            e.live_home->post([live, clean] { live->on_taken_over(clean); });
            return std::nullopt;
        }
        e.live = who;
        e.live_home = home;
        auto c = decide(e, clean);
        if (!e.more) {   // nothing else kept for the id: listed in place instead
            entries_.erase(id);
            list(*who, home);
        }
        return c;
    }

    // On close. `state` is the session to keep (persistent) or null (clean).
    void release(const std::string& id, const claimant* who, std::shared_ptr<saved_state> state) {
        std::lock_guard lock(mutex_);
        if (who->home_) {   // listed: the live connection of `id`, with nothing else kept
            unlist(id);
            if (state) {
                state->disconnected_at = clock::now();
                entries_[id].extra().saved = std::move(state);
            }
            return;
        }
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
            e.live = w.who;
            e.live_home = w.home;
            w.home->post([next = std::move(w.who), c = decide(e, w.clean)]() mutable { next->on_claimed(std::move(c)); });
        }
        e.shrink();
        if (e.live.expired() && !e.more) entries_.erase(it);
    }

    void set_pending_will(const std::string& id, pending_will w) {
        std::shared_ptr<claimant> live;   // dropped after the mutex (see claim_id)
        std::lock_guard lock(mutex_);
        entry_of(id, live).extra().will = std::move(w);
    }

    // A connection that claimed an id is destroyed: it is no longer listed (first thing in its
    // destructor, so that it is whole while another thread may still find it listed).
    void forget(claimant& c) {
        std::lock_guard lock(mutex_);
        if (c.home_) unlist(c.claimed_id());
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

    // Sessions expired at `now` (to end) and wills whose delay is over (to publish).
    void take_due(clock::time_point now, std::vector<std::shared_ptr<saved_state>>& expired,
                  std::vector<std::shared_ptr<core::message>>& wills) {
        std::lock_guard lock(mutex_);
        for (auto it = entries_.begin(); it != entries_.end();) {
            auto& e = it->second;
            if (!e.more) {
                ++it;
                continue;
            }
            if (e.more->will && e.more->will->due <= now) {
                wills.push_back(std::move(e.more->will->msg));
                e.more->will.reset();
            }
            if (e.live.expired() && e.more->saved && e.more->saved->expired(now)) expired.push_back(std::move(e.more->saved));
            e.shrink();
            if (e.live.expired() && !e.more) {
                it = entries_.erase(it);
                continue;
            }
            ++it;
        }
    }

private:
    // A connection waiting for the live one to go. Held strongly: while it waits it reads
    // nothing and has nothing else pending that would keep it alive.
    struct waiter {
        bool clean;
        std::shared_ptr<claimant> who;
        core::executor* home;
    };
    // What a client id has besides its live connection; most have nothing of it.
    struct entry_extra {
        std::shared_ptr<saved_state> saved;
        std::optional<waiter> waiting;
        std::optional<pending_will> will;
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
            if (more && !more->saved && !more->waiting && !more->will) more.reset();
        }
    };

    // The entry of `id`; a connection listed for it moves into it (`live` holds it, to be
    // dropped after the mutex).
    entry& entry_of(const std::string& id, std::shared_ptr<claimant>& live) {
        auto& e = entries_[id];
        if (claimant* c = find_listed(id)) {
            live = c->alive();
            e.live = live;   // empty when it is going
            e.live_home = c->home_;
            unlist(id);
        }
        return e;
    }

    // ---- the listed connections: an intrusive hash table (chains through next_listed_)
    static std::size_t hash(std::string_view id) noexcept { return std::hash<std::string_view>{}(id); }

    claimant** slot_of(std::string_view id) noexcept {
        if (buckets_.empty()) return nullptr;
        claimant** p = &buckets_[hash(id) & (buckets_.size() - 1)];
        while (*p && (*p)->claimed_id() != id) p = &(*p)->next_listed_;
        return *p ? p : nullptr;
    }
    claimant* find_listed(std::string_view id) noexcept {
        claimant** p = slot_of(id);
        return p ? *p : nullptr;
    }
    void list(claimant& c, core::executor* home) {
        if (listed_ >= buckets_.size()) rehash(std::max<std::size_t>(16, buckets_.size() * 2));
        claimant*& b = buckets_[hash(c.claimed_id()) & (buckets_.size() - 1)];
        c.next_listed_ = b;
        c.home_ = home;
        b = &c;
        ++listed_;
    }
    void unlist(std::string_view id) {
        claimant** p = slot_of(id);
        if (!p) return;
        claimant* c = *p;
        *p = c->next_listed_;
        c->next_listed_ = nullptr;
        c->home_ = nullptr;
        --listed_;
        if (buckets_.size() > 64 && listed_ < buckets_.size() / 8) rehash(buckets_.size() / 4);
    }
    void rehash(std::size_t n) {   // n: a power of two
        std::vector<claimant*> next(n, nullptr);
        for (claimant* b : buckets_) {
            while (b) {
                claimant* c = b;
                b = c->next_listed_;
                claimant*& to = next[hash(c->claimed_id()) & (n - 1)];
                c->next_listed_ = to;
                to = c;
            }
        }
        buckets_.swap(next);
    }

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
    std::unordered_map<std::string, entry> entries_;   // ids with more than a live connection
    std::vector<claimant*> buckets_;                   // listed connections (a power of two)
    std::size_t listed_ = 0;
};

std::shared_ptr<registry> make_registry(core::broker& broker) { return std::make_shared<registry>(broker); }

void restore_sessions(registry& r, const std::vector<core::subscription_record>& records) { r.restore(records); }

void sweep_expired(registry& r) {
    std::vector<std::shared_ptr<saved_state>> expired;
    std::vector<std::shared_ptr<core::message>> wills;
    r.take_due(clock::now(), expired, wills);
    // A will goes before its session's end: MQTT 5 §3.1.3.2.2 sends it "when the session ends"
    // at the latest, and its delay was already cut to the session expiry.
    for (auto& w : wills) r.broker().publish(std::move(w), {});
    for (const auto& s : expired) end_state(r.broker(), *s);
}

namespace {

// authenticating: CONNECT read, its credentials being checked (core::auth_pool); claiming: its
// client id being claimed in the registry. Reading pauses in both.
enum class stage : std::uint8_t { awaiting_connect, authenticating, claiming, active, closing };

// What a CONNECT is refused for besides its credentials: found while reading it, answered once
// the authentication answered (credentials are refused first, as they always were).
enum class connect_refusal : std::uint8_t { none, client_id, retain, will_topic };

// An acknowledgement to the client that waits for kernel completions (in arrival order).
struct pending_ack {
    packet_type type;
    std::uint16_t packet_id = 0;
    std::uint8_t code = 0;                 // PUBACK / PUBREC reason
    std::vector<std::uint8_t> codes{};     // SUBACK / UNSUBACK
    // Deliveries held until this ack is out: the client's own message (PUBACK / PUBREC) or
    // the subscriptions' retained messages (SUBACK).
    core::message_id msg = 0;
    std::vector<core::consumer_id> consumers{};
};

// What a connection holds once it subscribes or sends QoS>0 messages. An idle connection (most
// of them, in a large deployment) holds none of it: one pointer instead of a dozen containers.
struct traffic {
    std::unordered_map<std::string, std::unique_ptr<sub_state>> subs;   // by filter; in the engine's consumer table
    std::map<std::uint16_t, outbound> in_flight;   // QoS>0 sent, not yet acknowledged, by packet id
    std::unordered_map<core::delivery_tag, std::uint16_t> resend_ids;
    engine::lazy_deque<std::pair<core::consumer_id, core::delivery>> waiting;   // over the client's receive maximum
    std::uint16_t next_id = 0;
    std::set<std::uint16_t> inbound_qos2;
    // Deliveries waiting for an acknowledgement to go out first (see deliver), and what
    // they wait for: consumers whose SUBACK, messages whose PUBACK / PUBREC is still pending.
    engine::lazy_deque<std::pair<core::consumer_id, core::delivery>> held;
    std::unordered_multiset<core::consumer_id> subscribing;
    std::unordered_multiset<core::message_id> acking;
    std::unordered_map<core::consumer_id, std::uint32_t> held_count;
    std::unordered_map<std::uint16_t, std::string> aliases;
    std::unordered_map<std::string, std::uint16_t> out_aliases;
    std::vector<std::string> storage;   // scratch for a delivery's v5 properties
    std::uint64_t subscriber = 0;       // subscribe_options::subscriber of every subscription
};

// The packet decode() just reported, for on_frame() right after it. The engine calls the two
// back to back on the connection's worker, one connection at a time, so one per thread serves
// every connection: no idle connection holds the 800-odd bytes of a packet.
// Built in place by decode(), not moved there (moving a packet cost ~100 instructions for its
// v5 properties alone).
thread_local std::optional<decode_result> current_decode;

// Converts to what `f` returns, so that optional::emplace constructs it from f's result in
// place (guaranteed copy elision) instead of moving it.
template <typename F>
struct elide {
    F f;
    operator std::invoke_result_t<F&>() { return f(); }
};
template <typename F>
elide(F) -> elide<F>;

class session final : public engine::connection, public claimant {
public:
    session(std::shared_ptr<const settings> s, core::broker& broker, core::auth_pool& auth,
            std::shared_ptr<registry> reg, std::uint64_t conn)
        : engine::connection(broker, *s, conn, logger()), settings_(std::move(s)), auth_(auth),
          registry_(std::move(reg)) {}

    ~session() override {
        if (claimed_) registry_->forget(*this);
    }

    // ---- registry (posted to this worker) -----------------------------------------------

    std::shared_ptr<claimant> alive() noexcept override {
        return std::static_pointer_cast<session>(weak_from_this().lock());
    }
    const std::string& claimed_id() const noexcept override { return client_id_; }

    void on_taken_over(bool clean_start) override {
        completion([this, clean_start] { taken_over(clean_start); })();
    }

    void on_claimed(claim c) override {
        completion([this, c = std::move(c)]() mutable { claimed(std::move(c)); })();
    }

private:
    // ---- engine ------------------------------------------------------------------------

    engine::step decode(std::span<const std::uint8_t> in) override {
        auto& r = current_decode.emplace(elide{[&] { return mqtt::decode(in, settings_->packet_limits, version_); }});
        if (auto* m = std::get_if<need_more>(&r)) return engine::step::need_more(m->at_least);
        if (auto* e = std::get_if<decode_error>(&r)) {
            decode_error_ = e->code;
            connect_level_ = stage_ == stage::awaiting_connect ? std::uint8_t(connect_level(in)) : 0;
            return engine::step::error(e->detail);
        }
        return engine::step::frame(std::get<decoded>(r).consumed);
    }

    void on_frame() override { on_packet(std::get<decoded>(*current_decode).frame); }

    bool input_held() const noexcept override { return stage_ == stage::authenticating || stage_ == stage::claiming; }

    void fail(const engine::error& e) override {
        switch (e.kind) {
        case engine::error_kind::malformed: return on_decode_error(e.detail);
        case engine::error_kind::connect_timeout: return;   // never connected: no will
        case engine::error_kind::receive_timeout:
            // MQTT §3.1.2.10: one and a half keep-alive periods without a packet end the
            // connection, and its will is published.
            if (version_ == version::v5 && stage_ == stage::active) send_disconnect(reason::keep_alive_timeout);
            abnormal_ = true;
            return;
        case engine::error_kind::slow_consumer:
        case engine::error_kind::peer_closed: abnormal_ = true; return;
        }
    }

    void on_stop() override {
        // MQTT 5: tell v5 clients why; wills are not published at a broker shutdown.
        will_.reset();
        if (version_ == version::v5 && stage_ == stage::active) send_disconnect(reason::server_shutting_down);
    }

    void on_closing() override {
        const bool was_connected = stage_ == stage::active || stage_ == stage::claiming;
        stage_ = stage::closing;
        if (was_connected) {
            publish_will();
            hand_over_session();
        }
    }

    // ---- kernel ------------------------------------------------------------------------

    void deliver(engine::consumer& c, core::delivery d) override {
        auto& t = *traffic_;   // a consumer means a subscription
        if (!t.held.empty() || held_back(c.id, *d.msg)) {
            // The acknowledgement of the packet that caused it goes first (MQTT 5 §3.8.4: SUBACK
            // before the retained messages; the PUBACK / PUBREC before the publisher's own copy).
            t.held->push_back({c.id, std::move(d)});
            // But never at the price of a stall: an acknowledgement can wait for the kernel's
            // flow control, which waits for subscribers to drain, maybe this one. Once held
            // deliveries take a consumer's whole prefetch, the oldest go out as they are.
            if (++t.held_count[c.id] >= held_limit(c.id)) release_held(c.id);
            return;
        }
        dispatch(static_cast<sub_state&>(c), std::move(d));
    }

    std::uint32_t held_limit(core::consumer_id id) const {
        const auto* c = static_cast<const sub_state*>(find_consumer(id));
        return c && c->prefetch ? c->prefetch : 1;
    }

    bool held_back(core::consumer_id id, const core::message& m) const {
        const auto& t = *traffic_;
        return (!t.subscribing.empty() && t.subscribing.contains(id)) ||
               (m.origin_connection == this->id() && !t.acking.empty() && t.acking.contains(m.id));
    }

    // Deliveries whose acknowledgement has gone out, in arrival order; with `starved`, also
    // those before, until consumer `starved` has room in its prefetch again.
    void release_held(core::consumer_id starved = 0) {
        if (!traffic_) return;
        auto& t = *traffic_;
        const auto starving = [&] {
            auto c = starved ? t.held_count.find(starved) : t.held_count.end();
            return c != t.held_count.end() && c->second >= held_limit(starved);
        };
        while (!t.held.empty()) {
            auto& [id, d] = t.held->front();
            if (held_back(id, *d.msg) && !starving()) break;
            auto item = std::move(t.held->front());
            t.held->pop_front();
            if (auto c = t.held_count.find(item.first); c != t.held_count.end() && --c->second == 0) t.held_count.erase(c);
            if (auto* sub = find_consumer(item.first)) dispatch(static_cast<sub_state&>(*sub), std::move(item.second));
        }
        t.held.release_if_empty();
    }

    void dispatch(sub_state& sub, core::delivery d) {
        auto& t = *traffic_;
        const auto matched = match_subscriptions(sub, d, nullptr);
        if (!matched.any) return broker_.ack(sub.id, {d.tag});
        const std::uint8_t qos = matched.qos;
        if (qos > 0 && (t.in_flight.size() >= client_receive_max_ || !t.waiting.empty())) {
            // MQTT 5 §4.9: never more unacknowledged QoS>0 messages than the client allows.
            t.waiting->push_back({sub.id, std::move(d)});
            return;
        }
        send_delivery(sub, d, qos);
    }

    // ---- registry ----------------------------------------------------------------------

    void taken_over(bool clean_start) {
        if (stage_ == stage::closing) return;
        log(spdlog::level::info, "client_id={} reason=session_taken_over", client_id_);
        if (version_ == version::v5) send_disconnect(reason::session_taken_over);
        abnormal_ = true;   // MQTT 5 §3.1.4: the old connection's will is published...
        // ...per §3.1.2.5: not at all when the session goes on in the new connection (it is
        // back within any delay), at once when the takeover ends the session (Mosquitto 2.0).
        if (!clean_start && session_expiry_s_ != 0) will_.reset();
        else if (will_) will_->delay_s = 0;
        close();
    }

    void claimed(claim c) {
        if (stage_ != stage::claiming) {
            // We went away while waiting; hand the session on.
            registry_->release(client_id_, this, c.state);
            if (c.discard) end_state(broker_, *c.discard);
            return;
        }
        complete_connect(std::move(c));
    }

    // ---- packets -----------------------------------------------------------------------

    void on_packet(packet& p) {
        if (stage_ == stage::awaiting_connect) {
            if (auto* c = std::get_if<connect>(&p)) return on_connect(*c);
            return violation(reason::protocol_error, "the first packet must be CONNECT");
        }
        std::visit([this](auto& pk) { on(pk); }, p);
    }

    void on(connect&) { violation(reason::protocol_error, "second CONNECT"); }
    void on(publish& p) { on_publish(p); }
    void on(puback& a) { on_outbound_done(a.packet_id); }
    void on(pubrec& a) { on_pubrec(a); }
    void on(pubrel& a) { on_pubrel(a); }
    void on(pubcomp& a) { on_outbound_done(a.packet_id); }
    void on(subscribe& s) { on_subscribe(s); }
    void on(unsubscribe& u) { on_unsubscribe(u); }
    void on(pingreq&) { encode(packet{pingresp{}}, version_, out()); }
    void on(disconnect& d) { on_disconnect(d); }
    void on(auth&) { violation(reason::protocol_error, "AUTH without an authentication method"); }
    template <typename T>
    void on(T&) { violation(reason::protocol_error, "packet not accepted from a client"); }

    // The decoder refused the input (`decode_error_`); the engine closes once this returns.
    void on_decode_error(std::string_view detail) {
        if (stage_ == stage::awaiting_connect) {
            if (decode_error_ == reason::unsupported_protocol_version) {
                // A later "MQTT" level gets the MQTT 5 answer (§3.1.2.2: CONNACK 0x84); older or
                // unknown ones the 3.1.1 return code 1 (§3.2.2.3), which every client can read.
                if (connect_level_ > 5) {
                    connack ack;
                    ack.code = std::uint8_t(reason::unsupported_protocol_version);
                    encode(packet{ack}, version::v5, out());
                } else {
                    encode(packet{connack{false, std::uint8_t(connack_v3::unacceptable_protocol_version), {}}},
                           version::v3_1_1, out());
                }
                log(spdlog::level::warn, "reason=unsupported_protocol_version");
                return;
            }
            // A malformed CONNECT from a v5 client (level byte 5 at its fixed place) gets a
            // CONNACK with the reason; anything else is just closed (MQTT 5 §4.13.1).
            if (connect_level_ == 5) {
                version_ = version::v5;
                connack ack;
                ack.code = std::uint8_t(decode_error_);
                encode(packet{ack}, version::v5, out());
            }
            log(spdlog::level::warn, "reason={} detail=\"{}\"", to_string(decode_error_), detail);
            return;
        }
        violation(decode_error_, detail);
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

    // CONNECT: everything but the credentials is read and checked now (the packet lives only
    // during this call); the credentials are checked off the worker (core::auth_pool), and
    // the answer follows theirs.
    void on_connect(connect& c) {
        version_ = c.ver;
        if (c.props.authentication_method) return refuse(reason::bad_authentication_method, connack_v3::not_authorized);
        const std::string_view user = c.username ? *c.username : std::string_view();
        std::string_view password;
        if (c.password) password = std::string_view(reinterpret_cast<const char*>(c.password->data()), c.password->size());
        refusal_ = read_connect(c);
        stage_ = stage::authenticating;   // reading pauses until the answer
        auto done = completion([this](core::auth_result r) { on_authenticated(r.status); });
        // No user name but a TLS client certificate: its user (credentials sent win over it).
        if (user.empty() && !peer_identity().empty()) return auth_.authenticate_certificate_async(peer_identity(), std::move(done));
        auth_.authenticate_async(user, password, std::move(done));
    }

    void on_authenticated(core::auth_status status) {
        if (stage_ != stage::authenticating) return;   // closed meanwhile
        if (status == core::auth_status::busy) return refuse(reason::server_busy, connack_v3::server_unavailable);
        if (status != core::auth_status::accepted)
            return refuse(reason::bad_user_name_or_password, connack_v3::bad_user_name_or_password);
        switch (refusal_) {
        case connect_refusal::none: break;
        case connect_refusal::client_id: return refuse(reason::client_identifier_not_valid, connack_v3::identifier_rejected);
        case connect_refusal::retain: return refuse(reason::retain_not_supported, connack_v3::not_authorized);
        case connect_refusal::will_topic:
            // 3.1.1 [MQTT-4.7.3-1], §4.8: a malformed CONNECT is closed without a CONNACK
            // (as mosquitto does); v5 is told why (§4.13.1 allows a CONNACK first).
            if (version_ != version::v5) return close_malformed_connect("invalid will topic");
            return refuse(reason::topic_name_invalid, connack_v3::not_authorized);
        }

        stage_ = stage::claiming;   // reading pauses until the registry answers
        auto self = std::static_pointer_cast<session>(shared_from_this());
        // This worker (the connection's) is where the registry's answers come back.
        claimed_ = true;
        auto claimed_now = registry_->claim_id(client_id_, clean_start_, self, core::executor::current());
        if (claimed_now) complete_connect(std::move(*claimed_now));
        // else: on_claimed follows (the old session with this id is closing)
    }

    // The session's settings from CONNECT (the client id, expiry, limits, keep-alive, will),
    // and the first reason it must be refused, if any.
    connect_refusal read_connect(connect& c) {
        client_id_ = std::string(c.client_id);
        clean_start_ = c.clean_start;
        if (client_id_.empty()) {
            // MQTT 3.1.1 §3.1.3.1: an empty id needs a clean session; 3.1 needs an id.
            if (version_ == version::v3_1 || (version_ == version::v3_1_1 && !c.clean_start))
                return connect_refusal::client_id;
            client_id_ = "sb-" + std::to_string(id()) + "-" + std::to_string(std::random_device{}());
            assigned_id_ = true;
        }
        if (version_ == version::v5) {
            const std::uint32_t asked = c.props.session_expiry_interval.value_or(0);
            session_expiry_s_ = std::min(asked, settings_->max_session_expiry_s);
            expiry_capped_ = session_expiry_s_ != asked;
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
            if (c.will_msg->retain && !settings_->retain_available) return connect_refusal::retain;
            if (!valid_topic_name(c.will_msg->topic)) return connect_refusal::will_topic;
            publish wp;
            wp.qos = c.will_msg->qos;
            wp.retain = c.will_msg->retain;
            wp.topic = c.will_msg->topic;
            wp.props = c.will_msg->props;
            wp.payload = c.will_msg->payload;
            will_ = std::make_unique<will_state>(will_state{
                std::make_shared<core::message>(message_from_publish(wp, wp.topic, core::now_ms())),
                c.will_msg->props.will_delay_interval.value_or(0)});
        }

        // Mosquitto accepts such a will and never publishes it: clients do not write there.
        if (c.will_msg && server_topic(c.will_msg->topic)) will_.reset();
        return connect_refusal::none;
    }

    void refuse(reason v5, connack_v3 v3) {
        connack ack;
        ack.code = version_ == version::v5 ? std::uint8_t(v5) : std::uint8_t(v3);
        encode(packet{ack}, version_, out());
        log(spdlog::level::warn, "reason={}", to_string(v5));
        will_.reset();
        close();
    }

    void close_malformed_connect(std::string_view detail) {
        log(spdlog::level::warn, "reason=malformed_packet detail=\"{}\"", detail);
        will_.reset();
        close();
    }

    void complete_connect(claim c) {
        if (c.discard) end_state(broker_, *c.discard);
        stage_ = stage::active;
        if (c.resumed && c.state->subscriber) tr().subscriber = c.state->subscriber;
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
            if (expiry_capped_) p.session_expiry_interval = session_expiry_s_;
        }
        encode(packet{ack}, version_, out());
        // MQTT §3.1.2.10: one and a half keep-alive periods without a packet end the connection.
        open(std::chrono::milliseconds(std::uint64_t(keepalive_s_) * 1500u));
        log(spdlog::level::debug, "client_id={} version={} session_present={}", client_id_, int(version_), c.resumed);
        if (c.resumed) resume_state(*c.state);
    }

    // A resumed persistent session: its subscriptions come back to this connection, unacked
    // messages are sent again (with DUP) and pending PUBRELs repeated.
    void resume_state(saved_state& s) {
        auto& t = tr();
        t.inbound_qos2 = std::move(s.inbound_qos2);
        for (auto& [id, o] : s.outbound_by_id) {
            if (o.released) {
                t.in_flight[id] = o;
                pubrel rel;
                rel.packet_id = id;
                encode(packet{rel}, version_, out());
            } else {
                t.resend_ids[o.tag] = id;   // the redelivery reuses its packet id
            }
        }
        for (auto& sub : s.subs) {
            auto owned = std::make_unique<sub_state>(std::move(sub));
            if (owned->id == 0) {
                // Restored after a broker restart: the durable subscription is there, its
                // consumer is not. Retained messages are not sent again on a resume.
                owned->id = broker_.next_consumer_id();
                auto opt = subscribe_options_for(*owned);
                owned->prefetch = *opt.prefetch;
                opt.want_retained = false;
                broker_.subscribe_durable(owned->id, owned->durable, owned->topic, opt, weak_from_this(),
                                          track_subscribe(*owned, {}), durable_data(*owned, session_expiry_s_));
            } else {
                broker_.attach(owned->id, owned->dest, weak_from_this(), {});
            }
            add_consumer(*owned);
            owned->overlaps = 0;   // counted again among this connection's subscriptions
            link_overlaps(*owned);
            t.subs[owned->filter] = std::move(owned);
        }
    }

    void on_publish(publish& p) {
        std::string_view topic = p.topic;
        if (version_ == version::v5) {
            if (auto alias = p.props.topic_alias) {
                if (*alias == 0 || *alias > settings_->topic_alias_maximum)
                    return violation(reason::topic_alias_invalid, "topic alias out of range");
                auto& aliases = tr().aliases;
                if (!topic.empty()) {
                    aliases[*alias] = std::string(topic);
                } else {
                    auto it = aliases.find(*alias);
                    if (it == aliases.end()) return violation(reason::protocol_error, "unknown topic alias");
                    topic = it->second;
                }
            }
        }
        // MQTT 5 §3.3.4: a PUBLISH from a client never carries a Subscription Identifier.
        if (!p.props.subscription_identifiers.empty())
            return violation(reason::protocol_error, "subscription identifier from a client");
        if (!valid_topic_name(topic)) return violation(reason::topic_name_invalid, "invalid topic name");
        if (p.retain && !settings_->retain_available) return violation(reason::retain_not_supported, "retain not supported");

        if (p.qos == 2 && tr().inbound_qos2.contains(p.packet_id)) {
            // A retransmission before PUBREL: already accepted once (exactly once).
            push_ack(pending_ack{packet_type::pubrec, p.packet_id}, 0);
            return flush_acks();
        }
        if (p.qos > 0 && acks_.size() + tr().inbound_qos2.size() >= settings_->receive_maximum && version_ == version::v5)
            return violation(reason::receive_maximum_exceeded, "receive maximum exceeded");
        if (server_topic(topic)) {
            // Not published. v5 is told 0x87; v3 has no way to say it, so (like mosquitto) its
            // PUBACK/PUBREC is the ordinary one and the QoS 2 flow completes as usual.
            log(spdlog::level::debug, "client_id={} publish to server topic refused topic={}", client_id_, topic);
            if (p.qos == 0) return;
            const auto code = version_ == version::v5 ? std::uint8_t(reason::not_authorized) : std::uint8_t(0);
            if (p.qos == 2 && code == 0) tr().inbound_qos2.insert(p.packet_id);
            push_ack(pending_ack{p.qos == 1 ? packet_type::puback : packet_type::pubrec, p.packet_id, code}, 0);
            return flush_acks();
        }

        auto m = std::make_shared<core::message>(message_from_publish(p, topic, core::now_ms()));
        m->id = broker_.next_message_id();
        m->origin_connection = id();
        if (p.qos == 0) {
            // No acknowledgement goes back, but the completion still bounds how far a fast
            // publisher can run ahead of the kernel: reading stops at receive_maximum.
            begin_unconfirmed();
            broker_.publish(std::move(m), completion([this](core::publish_status) { end_unconfirmed(); }));
            return;
        }
        auto& t = tr();
        if (p.qos == 2) t.inbound_qos2.insert(p.packet_id);
        // Only a connection with subscriptions can get its own message back before this ack:
        // a publisher-only one (the common case) tracks nothing.
        const core::message_id own = t.subs.empty() ? 0 : m->id;
        const auto ticket =
            push_ack(pending_ack{p.qos == 1 ? packet_type::puback : packet_type::pubrec, p.packet_id, 0, {}, own}, 1);
        if (own) t.acking.insert(own);
        auto done = completion([this, ticket](core::publish_status s, std::size_t matched) {
            auto* a = acks_.find(ticket);
            if (!a || stage_ == stage::closing) return;
            if (s != core::publish_status::ok) a->code = std::uint8_t(reason::unspecified_error);
            // MQTT 5 §3.4.2.1: 0x10 No matching subscribers (v3 acks carry no code).
            else if (matched == 0) a->code = std::uint8_t(reason::no_matching_subscribers);
            complete(ticket);
        });
        if (version_ == version::v5) return broker_.publish_counted(std::move(m), std::move(done));
        broker_.publish(std::move(m), [done = std::move(done)](core::publish_status s) mutable { done(s, std::size_t{1}); });
    }

    void on_pubrel(const pubrel& r) {
        const bool known = traffic_ && traffic_->inbound_qos2.erase(r.packet_id) > 0;
        pending_ack a{packet_type::pubcomp, r.packet_id};
        if (!known && version_ == version::v5) a.code = std::uint8_t(reason::packet_identifier_not_found);
        push_ack(std::move(a), 0);
        flush_acks();
    }

    void on_pubrec(const pubrec& r) {
        auto* o = traffic_ ? find_in_flight(r.packet_id) : nullptr;
        if (!o || o->qos != 2) {
            if (version_ == version::v5) {
                pubrel rel;
                rel.packet_id = r.packet_id;
                rel.code = std::uint8_t(reason::packet_identifier_not_found);
                encode(packet{rel}, version_, out());
            }
            return;
        }
        if (r.code >= 0x80) return on_outbound_done(r.packet_id);   // the client refused it
        o->released = true;
        // The client has the message: settle it in the kernel now; PUBCOMP only frees the id.
        broker_.ack(o->consumer, {o->tag});
        pubrel rel;
        rel.packet_id = r.packet_id;
        encode(packet{rel}, version_, out());
    }

    outbound* find_in_flight(std::uint16_t id) {
        auto it = traffic_->in_flight.find(id);
        return it == traffic_->in_flight.end() ? nullptr : &it->second;
    }

    void on_outbound_done(std::uint16_t id) {
        if (!traffic_) return;
        auto& t = *traffic_;
        auto it = t.in_flight.find(id);
        if (it == t.in_flight.end()) return;   // MQTT tolerates a late or repeated ack
        if (!it->second.released) broker_.ack(it->second.consumer, {it->second.tag});
        t.in_flight.erase(it);
        send_waiting();
    }

    void on_subscribe(subscribe& s) {
        auto& t = tr();
        pending_ack a{packet_type::suback, s.packet_id};
        const std::uint32_t sub_id = s.props.subscription_identifiers.empty() ? 0 : s.props.subscription_identifiers.front();
        const bool v5 = version_ == version::v5;
        const std::uint8_t invalid = v5 ? std::uint8_t(reason::topic_filter_invalid) : 0x80;
        std::vector<std::pair<std::unique_ptr<sub_state>, core::subscribe_options>> adds;
        for (const auto& f : s.topics) {
            std::string_view filter = f.filter;
            std::string group;
            if (auto sh = parse_share(filter)) {
                if (sh->group.empty()) {
                    a.codes.push_back(invalid);
                    continue;
                }
                // MQTT 5 §3.8.3.1: No Local on a shared subscription is a protocol error.
                if (f.no_local) return violation(reason::protocol_error, "no local on a shared subscription");
                group = std::string(sh->group);
                filter = sh->filter;
            }
            if (!valid_topic_filter(filter)) {
                a.codes.push_back(invalid);
                continue;
            }
            if (auto old = t.subs.find(std::string(f.filter)); old != t.subs.end() && old->second->share_group == group) {
                // MQTT §3.8.4: the same filter again replaces the options but must not interrupt
                // the flow of messages (a resumed session re-subscribing keeps what was queued),
                // so the kernel subscription stays.
                auto& sub = *old->second;
                sub.qos = f.qos;
                sub.retain_as_published = f.retain_as_published;
                sub.subscription_id = sub_id;
                if (f.retain_handling == 0 && group.empty()) broker_.resend_retained(sub.id, sub.dest);
                a.codes.push_back(f.qos);
                a.consumers.push_back(sub.id);
                continue;
            }
            if (auto dup = std::find_if(adds.begin(), adds.end(), [&](const auto& e) { return e.first->filter == f.filter; });
                dup != adds.end()) {
                // The same filter again in this SUBSCRIBE: it replaces the earlier entry (MQTT
                // §3.8.4), still one subscription, and one SUBACK code per entry. Retained
                // messages go once, if either entry asks for them.
                auto& sub = *dup->first;
                sub.qos = f.qos;
                sub.no_local = f.no_local;
                sub.retain_as_published = f.retain_as_published;
                const bool want_retained = dup->second.want_retained || f.retain_handling == 0;
                dup->second = subscribe_options_for(sub);
                dup->second.want_retained = want_retained;
                a.codes.push_back(f.qos);
                continue;
            }
            auto sub = std::make_unique<sub_state>();
            sub->filter = std::string(f.filter);
            sub->topic = core::destination{core::dest_kind::topic, to_kernel_topic(filter)};
            sub->dest = sub->topic;
            if (session_expiry_s_ != 0 && group.empty()) {
                // A persistent session: a durable subscription, so it survives a restart too.
                sub->durable = durable_name(client_id_, sub->filter);
                sub->dest = core::broker::durable_queue(sub->durable);
            }
            sub->share_group = group;
            sub->qos = f.qos;
            sub->no_local = f.no_local;
            sub->retain_as_published = f.retain_as_published;
            sub->subscription_id = sub_id;
            sub->id = broker_.next_consumer_id();
            auto opt = subscribe_options_for(*sub);
            sub->prefetch = *opt.prefetch;
            // MQTT 5 §3.3.1.3: retain handling 0 sends retained messages, 1 only for a new
            // subscription (this one is new: an existing filter was updated above), 2 never.
            opt.want_retained = f.retain_handling != 2;
            a.codes.push_back(f.qos);
            adds.emplace_back(std::move(sub), opt);
        }
        for (auto& [sub, opt] : adds) a.consumers.push_back(sub->id);
        t.subscribing.insert(a.consumers.begin(), a.consumers.end());
        const auto ticket = push_ack(std::move(a), adds.size());
        for (auto& [sub, opt] : adds) {
            if (auto old = t.subs.find(sub->filter); old != t.subs.end()) {
                // The same filter twice in one SUBSCRIBE: the later one wins.
                end_subscription(*old->second);
                t.subs.erase(old);
            }
            add_consumer(*sub);
            // Tracked: an UNSUBSCRIBE (or a close) before it completes waits for it.
            auto done = track_subscribe(*sub, completion([this, ticket] { complete(ticket); }));
            if (!sub->durable.empty())
                broker_.subscribe_durable(sub->id, sub->durable, sub->topic, opt, weak_from_this(), std::move(done),
                                          durable_data(*sub, session_expiry_s_));
            else
                broker_.subscribe(sub->id, sub->dest, opt, weak_from_this(), std::move(done));
            auto key = sub->filter;
            link_overlaps(*sub);
            t.subs[key] = std::move(sub);
        }
        flush_acks();
    }

    void on_unsubscribe(unsubscribe& u) {
        auto& t = tr();
        pending_ack a{packet_type::unsuback, u.packet_id};
        std::vector<sub_state*> ends;
        std::set<std::string_view> seen;
        for (auto f : u.filters) {
            auto it = t.subs.find(std::string(f));
            // A filter repeated in the same UNSUBSCRIBE finds nothing left the second time
            // (MQTT 5 §3.10.4: one reason code per filter; 0x11 No subscription existed).
            if (it == t.subs.end() || !seen.insert(f).second) {
                a.codes.push_back(std::uint8_t(reason::no_subscription_existed));
                continue;
            }
            a.codes.push_back(0);
            ends.push_back(it->second.get());
        }
        const auto ticket = push_ack(std::move(a), ends.size());
        for (auto* s : ends) {
            end_subscription(*s, completion([this, ticket] { complete(ticket); }));
            const std::string key = s->filter;   // not a reference into the erased element
            t.subs.erase(key);
        }
        flush_acks();
    }

    void on_disconnect(const disconnect& d) {
        if (version_ == version::v5) {
            // MQTT 5 §3.14.2.2.2: a session expiry may not be set on DISCONNECT if CONNECT had 0.
            if (auto e = d.props.session_expiry_interval) {
                if (session_expiry_s_ == 0 && *e != 0)
                    return violation(reason::protocol_error, "session expiry set on DISCONNECT");
                session_expiry_s_ = std::min(*e, settings_->max_session_expiry_s);
            }
            if (d.code == std::uint8_t(reason::disconnect_with_will_message)) abnormal_ = true;
        }
        if (!abnormal_) will_.reset();
        close();
    }

    // ---- acks to the client, in order ---------------------------------------------------

    // Queues `a` behind the earlier acks; until it is out it counts against receive_maximum
    // (the engine stops reading there).
    engine::reply_queue<pending_ack>::ticket push_ack(pending_ack a, std::size_t waiting) {
        begin_unconfirmed();
        return acks_.push(std::move(a), waiting);
    }

    void complete(engine::reply_queue<pending_ack>::ticket t) {
        if (stage_ == stage::closing || !acks_.complete(t)) return;
        flush_acks();
    }

    void flush_acks() {
        acks_.release([this](pending_ack& a) {
            switch (a.type) {
            case packet_type::puback: encode(packet{puback{{a.packet_id, a.code, {}}}}, version_, out()); break;
            case packet_type::pubrec: encode(packet{pubrec{{a.packet_id, a.code, {}}}}, version_, out()); break;
            case packet_type::pubcomp: encode(packet{pubcomp{{a.packet_id, a.code, {}}}}, version_, out()); break;
            case packet_type::suback: encode(packet{suback{a.packet_id, {}, std::move(a.codes)}}, version_, out()); break;
            case packet_type::unsuback:
                encode(packet{unsuback{a.packet_id, {}, version_ == version::v5 ? std::move(a.codes) : std::vector<std::uint8_t>{}}},
                       version_, out());
                break;
            default: break;
            }
            end_unconfirmed();
            if (!traffic_) return;
            auto& t = *traffic_;
            if (auto m = a.msg ? t.acking.find(a.msg) : t.acking.end(); m != t.acking.end()) t.acking.erase(m);
            for (auto c : a.consumers)
                if (auto it = t.subscribing.find(c); it != t.subscribing.end()) t.subscribing.erase(it);
        });
        release_held();
    }

    // ---- deliveries to the client ------------------------------------------------------

    std::uint16_t next_packet_id() {
        auto& t = *traffic_;
        for (;;) {
            if (++t.next_id == 0) t.next_id = 1;
            if (!t.in_flight.contains(t.next_id)) return t.next_id;
        }
    }

    core::subscribe_options subscribe_options_for(const sub_state& s) {
        core::subscribe_options opt;
        opt.connection = id();
        opt.no_local = s.no_local;
        opt.share_group = s.share_group;
        auto& t = tr();
        if (!t.subscriber) t.subscriber = broker_.next_consumer_id();   // on the first subscription
        opt.subscriber = t.subscriber;
        opt.prefetch = std::min<std::uint32_t>(settings_->default_prefetch, client_receive_max_);
        opt.max_pending = settings_->max_queued_messages;
        return opt;
    }

    // `s` is about to join the subscriptions (or has just left them): the counts of the filters
    // it may overlap.
    void link_overlaps(sub_state& s) {
        if (!s.share_group.empty()) return;
        for (auto& [f, o] : traffic_->subs) {
            if (o.get() == &s || !o->share_group.empty() || !may_overlap(o->topic.name, s.topic.name)) continue;
            ++o->overlaps;
            ++s.overlaps;
        }
    }

    void unlink_overlaps(sub_state& s) {
        if (!s.share_group.empty() || s.overlaps == 0) return;
        for (auto& [f, o] : traffic_->subs)
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
            if (s.no_local && m.origin_connection == id()) return;
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

    void send_delivery(const sub_state& sub, const core::delivery& d, std::uint8_t qos) {
        auto& t = *traffic_;
        const auto now = core::now_ms();
        const auto& m = *d.msg;
        if (m.expired_at(now)) return broker_.ack(sub.id, {d.tag});
        properties props;
        const auto matched = match_subscriptions(sub, d, version_ == version::v5 ? &props.subscription_identifiers : nullptr);
        const bool retain = d.retained || (matched.retain_as_published && m.retain);
        const auto topic = to_mqtt_topic(m.dest.name);
        std::uint16_t alias = 0;
        bool send_topic = true;
        if (version_ == version::v5) {
            publish_properties(m, now, props, t.storage);
            if (client_alias_max_ > 0) {
                if (auto it = t.out_aliases.find(topic); it != t.out_aliases.end()) {
                    alias = it->second;
                    send_topic = false;
                } else if (t.out_aliases.size() < client_alias_max_) {
                    alias = std::uint16_t(t.out_aliases.size() + 1);
                    t.out_aliases.emplace(topic, alias);
                }
                if (alias) props.topic_alias = alias;
            }
        }
        std::uint16_t pid = 0;
        bool dup = false;
        if (qos > 0) {
            if (auto r = t.resend_ids.find(d.tag); r != t.resend_ids.end() && !t.in_flight.contains(r->second)) {
                pid = r->second;
                dup = true;
                t.resend_ids.erase(r);
            } else {
                pid = next_packet_id();
                dup = d.redeliveries > 0;
            }
        }
        auto& o = out();
        const auto mark = o.size();
        encode_publish(o, version_, dup, qos, retain, send_topic ? std::string_view(topic) : std::string_view{}, pid,
                       version_ == version::v5 ? &props : nullptr,
                       std::span(reinterpret_cast<const std::uint8_t*>(m.body.data()), m.body.size()));
        if (client_max_packet_ && o.size() - mark > client_max_packet_) {
            // MQTT 5 §3.1.2.11.4: a packet over the client's maximum is not sent; it is dropped.
            o.resize(mark);
            if (alias && send_topic) t.out_aliases.erase(topic);   // the alias was never sent
            return broker_.ack(sub.id, {d.tag});
        }
        if (qos == 0) settle_on_write(sub.id, d.tag);
        else t.in_flight[pid] = outbound{sub.id, d.tag, qos, false};
    }

    void send_waiting() {
        auto& t = *traffic_;
        while (!t.waiting.empty() && t.in_flight.size() < client_receive_max_) {
            auto [cid, d] = std::move(t.waiting->front());
            t.waiting->pop_front();
            auto* c = static_cast<sub_state*>(find_consumer(cid));
            if (!c) continue;
            send_delivery(*c, d, match_subscriptions(*c, d, nullptr).qos);
        }
        t.waiting.release_if_empty();
    }

    void send_disconnect(reason r) {
        disconnect d;
        d.code = std::uint8_t(r);
        encode(packet{d}, version::v5, out());
    }

    // ---- errors and closing ------------------------------------------------------------

    // A protocol violation: v5 gets DISCONNECT with the reason, v3 a close (MQTT 3.1.1 §4.8).
    void violation(reason r, std::string_view detail) {
        if (stage_ == stage::closing) return;
        log(spdlog::level::warn, "client_id={} reason={} detail=\"{}\"", client_id_, to_string(r), detail);
        if (version_ == version::v5 && stage_ == stage::active) send_disconnect(r);
        abnormal_ = true;
        close();
    }

    // Ends one subscription: its deliveries not yet acknowledged go back to the kernel.
    void end_subscription(sub_state& s, std::function<void()> done = {}) {
        auto& t = *traffic_;
        if (stage_ != stage::closing) unlink_overlaps(s);
        std::erase_if(t.in_flight, [&](const auto& o) { return o.second.consumer == s.id; });
        if (!t.waiting.empty()) std::erase_if(*t.waiting, [&](const auto& w) { return w.first == s.id; });
        if (!t.held.empty()) std::erase_if(*t.held, [&](const auto& w) { return w.first == s.id; });
        t.held_count.erase(s.id);
        t.subscribing.erase(s.id);
        end_consumer(s, std::move(done));   // kept deliveries requeued, QoS 0 already encoded settled
        if (!s.durable.empty()) broker_.unsubscribe_durable(s.durable);   // the session no longer wants it
    }

    // Keeps a persistent session for the next connection (subscriptions stay in the kernel and
    // queue messages); a clean one ends its subscriptions.
    void hand_over_session() {
        if (client_id_.empty()) return;
        std::shared_ptr<saved_state> keep;
        if (session_expiry_s_ != 0) {
            keep = std::make_shared<saved_state>();
            keep->expiry_s = session_expiry_s_;
            keep->subscriber = traffic_ ? traffic_->subscriber : 0;
            settle_written_all();   // QoS 0 in flight was (being) written
            if (traffic_) {
                auto& t = *traffic_;
                keep->inbound_qos2 = std::move(t.inbound_qos2);
                for (auto& [pid, o] : t.in_flight) keep->outbound_by_id[pid] = o;
                for (auto& [f, s] : t.subs) {
                    keep->subs.push_back(*s);
                    release_consumer(*s);
                    broker_.attach(s->id, s->dest, {}, {});   // detached: queue, never hold producers
                }
            }
        } else if (traffic_) {
            for (auto& [f, s] : traffic_->subs) end_subscription(*s);
        }
        if (traffic_) {
            auto& t = *traffic_;
            t.subs.clear();
            t.waiting.clear();
            t.held.clear();
            t.held_count.clear();
        }
        registry_->release(client_id_, this, std::move(keep));
    }

    void publish_will() {
        if (!will_ || !abnormal_) return;
        auto msg = std::move(will_->msg);
        const std::uint32_t will_delay_s = will_->delay_s;
        will_.reset();
        msg->id = broker_.next_message_id();
        std::uint32_t delay = will_delay_s;
        if (session_expiry_s_ < delay) delay = session_expiry_s_;   // MQTT 5 §3.1.3.2.2
        if (delay == 0) {
            broker_.publish(msg, {});
            return;
        }
        registry_->set_pending_will(client_id_, pending_will{std::move(msg), clock::now() + std::chrono::seconds(delay)});
    }

    traffic& tr() {
        if (!traffic_) traffic_ = std::make_unique<traffic>();
        return *traffic_;
    }

    static spdlog::logger& logger() {
        static auto l = [] {
            auto existing = spdlog::get("mqtt");
            return existing ? existing : spdlog::default_logger()->clone("mqtt");
        }();
        return *l;
    }

    std::shared_ptr<const settings> settings_;   // also the engine's limits: held here
    core::auth_pool& auth_;
    std::shared_ptr<registry> registry_;

    std::string client_id_;
    // The will of CONNECT, with its delay (v5): held apart, as most clients have none.
    struct will_state {
        std::shared_ptr<core::message> msg;
        std::uint32_t delay_s = 0;
    };
    std::unique_ptr<will_state> will_;
    std::uint32_t session_expiry_s_ = 0;
    std::uint32_t client_max_packet_ = 0;
    std::uint16_t client_receive_max_ = 65535;
    std::uint16_t keepalive_s_ = 0;
    std::uint16_t client_alias_max_ = 0;
    stage stage_ = stage::awaiting_connect;
    version version_ = version::v3_1_1;
    reason decode_error_ = reason::success;   // what decode() refused, for fail()
    std::uint8_t connect_level_ = 0;          // of a refused CONNECT
    connect_refusal refusal_ = connect_refusal::none;   // CONNECT, while authenticating
    bool clean_start_ = true, assigned_id_ = false, server_keepalive_ = false, abnormal_ = false;
    bool claimed_ = false;   // claim_id was called: the registry may list this connection
    bool expiry_capped_ = false;   // v5: the session expiry is not the client's (CONNACK says which)

    engine::reply_queue<pending_ack> acks_;
    std::unique_ptr<traffic> traffic_;   // none until the client subscribes or publishes at QoS>0
};

}  // namespace

std::shared_ptr<engine::connection> make_session(std::shared_ptr<const settings> s, core::broker& broker,
                                                 core::auth_pool& auth, std::shared_ptr<registry> reg,
                                                 std::uint64_t connection_id) {
    return std::make_shared<session>(std::move(s), broker, auth, std::move(reg), connection_id);
}

}  // namespace sb::mqtt
