// adapters/stomp/session.cpp — STOMP 1.0–1.2 connection state machine; talks to the kernel.
//
// One read loop (do_read -> on_read -> decode until need_more), one write in flight (frames are
// encoded straight into `out_`; a write takes the whole buffer), one timer for the CONNECT
// deadline, heart-beats and the linger after an ERROR. Kernel calls complete later on this
// worker; receipts are sent in frame order.
#include "adapters/stomp/session.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <deque>
#include <unordered_map>

#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "adapters/net/read_buffer.hpp"
#include "adapters/net/write_settlements.hpp"
#include "adapters/stomp/mapping.hpp"
#include "core/broker.hpp"
#include "core/security/authenticator.hpp"

namespace sb::stomp {

namespace {

using clock = std::chrono::steady_clock;

enum class state { awaiting_connect, active, closing };
enum class ack_mode { auto_, client, client_individual };

struct unacked_delivery {
    core::delivery_tag tag;
    core::message_id id;
};

struct subscription {
    std::string id;
    core::consumer_id consumer = 0;
    core::destination dest;
    ack_mode mode = ack_mode::auto_;
    std::deque<unacked_delivery> unacked;   // client modes: delivered, not yet acked, in order
};

// A kernel ack/nack the transaction applies at COMMIT.
struct tx_settle {
    core::consumer_id consumer;
    core::delivery_tag tag;
    bool ack;
};

struct transaction {
    std::vector<core::message_ptr> sends;
    std::vector<tx_settle> settles;
};

// A RECEIPT waiting for the operations before it.
struct pending_receipt {
    std::string id;
    std::size_t waiting = 0;   // kernel completions still outstanding for this frame
};

std::shared_ptr<spdlog::logger> log() {
    static auto l = [] {
        auto existing = spdlog::get("stomp");
        return existing ? existing : spdlog::default_logger()->clone("stomp");
    }();
    return l;
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

class session final : public net::session,
                      public net::stream_handler,
                      public core::consumer_sink,
                      public net::flow_target,
                      public std::enable_shared_from_this<session> {
public:
    session(std::unique_ptr<net::transport> t, std::shared_ptr<const settings> s,
            core::broker& broker, const core::authenticator& auth, std::uint64_t conn)
        : transport_(std::move(t)), settings_(std::move(s)), broker_(broker), auth_(auth),
          conn_(conn), timer_(transport_->get_executor()), flow_(settings_->output) {}

    void start() override {
        last_read_ = last_write_ = clock::now();
        arm_timer(std::chrono::milliseconds(settings_->connect_timeout_ms));
        do_read();
    }

    void stop() override {
        if (state_ == state::closing) return;
        begin_closing();
    }

    // ---- transport callbacks -----------------------------------------------------------

    // The socket is readable: take what is there (into the worker's scratch buffer), decode.
    void on_read(net::error_code ec, std::size_t) override {
        reading_ = false;
        if (ec) return close_now();
        const std::size_t n = in_.fill(*transport_, ec);
        if (ec && ec != boost::asio::error::would_block) return close_now();
        if (n == 0) return do_read();
        last_read_ = clock::now();
        if (state_ == state::closing) {
            // Lingering after an ERROR: discard input until EOF so the peer reads our ERROR
            // instead of a reset.
            in_.clear();
        } else {
            decode_frames();
        }
        in_.compact();
        do_read();
    }

    void on_write(net::error_code ec, std::size_t) override {
        writing_ = false;
        if (ec) return close_now();
        last_write_ = clock::now();
        wbuf_.clear();
        settlements_.write_done(broker_);
        flow_.written(*this, [this] { return out_.size() + wbuf_.size(); },
                      [this](core::consumer_id id, core::delivery d) { on_delivery(id, std::move(d)); });
        if (writing_) return;   // a delivery handed back started the next write
        if (!out_.empty()) return do_write();
        if (state_ == state::closing) return finish_close();
        resume();
    }

    // ---- kernel callbacks --------------------------------------------------------------

    void on_delivery(core::consumer_id id, core::delivery d) override {
        auto it = by_consumer_.find(id);
        if (state_ == state::closing || it == by_consumer_.end()) return;  // the kernel requeues
        if (flow_.hold(id, d, out_.size() + wbuf_.size())) return;   // output full: encoded later
        auto& sub = *it->second;
        std::string ack_value;
        if (sub.mode != ack_mode::auto_) {
            sub.unacked.push_back(unacked_delivery{d.tag, d.msg->id});
        } else {
            settlements_.note(id, d.tag);
        }
        if (version_ == version::v1_2) ack_value = std::to_string(d.tag);
        encode_message(out_, version_, *d.msg, d.redeliveries,
                       message_frame_args{sub.id, ack_value, settings_->broker_name});
        flush();
    }

    // ---- output flow (net::flow_target) -------------------------------------------------

    void pause_consumers(bool pause) override {
        for (auto& [sid, sub] : subs_) {
            if (pause) broker_.pause(sub->consumer, sub->dest);
            else broker_.resume(sub->consumer, sub->dest);
        }
    }

    bool on_output_stalled(std::chrono::milliseconds stalled) override {
        if (state_ == state::closing || subs_.empty()) return false;
        log()->warn("conn={} peer={} proto=stomp reason=slow_consumer detail=\"output not read for {} ms\"", conn_,
                    transport_->peer(), stalled.count());
        close_now();
        return true;
    }

private:
    // ---- reading and decoding ----------------------------------------------------------

    // A COMMIT under way also stops the input: a SEND after it must not overtake the
    // transaction's messages, which the kernel publishes only once the commit is durable.
    bool over_watermark() const noexcept {
        return out_.size() + wbuf_.size() > settings_->output.high_watermark ||
               unconfirmed_ >= settings_->max_unconfirmed_sends || committing_ > 0;
    }

    // Continues after back-pressure: first the frames already buffered, then the socket.
    void resume() {
        if (!paused_ || over_watermark() || state_ == state::closing) return;
        paused_ = false;
        decode_frames();
        in_.compact();
        do_read();
    }

    void do_read() {
        if (reading_ || paused_) return;
        if (state_ != state::closing && over_watermark()) {
            paused_ = true;   // back-pressure: the peer or the kernel is slower than the input
            return;
        }
        reading_ = true;
        transport_->async_wait_readable(shared_from_this());
    }

    void decode_frames() {
        while (state_ != state::closing && in_.size() > 0) {
            if (need_ > in_.size()) break;
            auto r = decode(in_.data(), settings_->frame_limits, version_, frame_, scratch_);
            if (auto* m = std::get_if<need_more>(&r)) {
                need_ = m->at_least;
                break;
            }
            need_ = 0;
            if (auto* h = std::get_if<heartbeat>(&r)) {
                in_.consume(h->consumed);
                continue;
            }
            if (auto* e = std::get_if<decode_error>(&r)) return fail(e->message, {});
            const auto consumed = std::get<decoded>(r).consumed;
            on_frame(frame_);
            in_.consume(consumed);
            if (over_watermark()) break;   // resume in on_write / completion
        }
    }

    // ---- frames ------------------------------------------------------------------------

    void on_frame(const frame& f) {
        if (disconnecting_) return;   // nothing after DISCONNECT
        const bool connect = f.cmd == command::connect || f.cmd == command::stomp;
        if (state_ == state::awaiting_connect && !connect)
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
        if (state_ != state::awaiting_connect) return fail("already connected", f);
        const auto v = negotiate(f.get("accept-version"));
        if (!v) {
            encode_command(out_, command::error);
            encode_header(out_, "version", "1.0,1.1,1.2", version::v1_0, false);
            encode_header(out_, "content-type", "text/plain", version::v1_0, false);
            encode_header(out_, "message", "Supported protocol versions are 1.0,1.1,1.2", version::v1_0, false);
            encode_body(out_, {});
            log()->warn("conn={} peer={} reason=unsupported_version", conn_, transport_->peer());
            return begin_closing();
        }
        version_ = *v;
        const auto login = f.get("login").value_or("");
        const auto passcode = f.get("passcode").value_or("");
        auto who = auth_.authenticate(login, passcode);
        if (!who) return fail("Authentication failed", f);
        user_ = who->user;
        client_id_ = std::string(f.get("client-id").value_or(""));

        std::uint32_t cx = 0, cy = 0;
        if (auto hb = f.get("heart-beat"); hb && version_ != version::v1_0) {
            const auto comma = hb->find(',');
            if (comma == std::string_view::npos || !parse_uint(hb->substr(0, comma), cx) ||
                !parse_uint(hb->substr(comma + 1), cy))
                return fail("invalid heart-beat header", f);
        }
        // STOMP 1.2 §Heart-beating: each side uses the larger of what one can do and the
        // other wants; we accept the client's rates, bounded below by the floor.
        const std::uint32_t floor = settings_->heartbeat_floor_ms;
        const std::uint32_t sx = cy ? std::max(cy, floor) : 0;  // we send every sx
        const std::uint32_t sy = cx ? std::max(cx, floor) : 0;  // we expect every sy
        send_interval_ = std::chrono::milliseconds(sx);
        receive_interval_ = std::chrono::milliseconds(sy);

        state_ = state::active;
        encode_command(out_, command::connected);
        encode_header(out_, "version", version_text(version_), version_, false);
        encode_header(out_, "server", settings_->server, version_, false);
        encode_header(out_, "session", std::to_string(conn_), version_, false);
        if (version_ != version::v1_0)
            encode_header(out_, "heart-beat", std::to_string(sx) + "," + std::to_string(sy), version_, false);
        encode_body(out_, {});
        flush();
        timer_.cancel();
        schedule_heartbeat();
        log()->debug("conn={} peer={} user={} version={} heart-beat={},{}", conn_, transport_->peer(),
                     user_, version_text(version_), sx, sy);
    }

    void on_send(const frame& f) {
        auto built = message_from_send(f);
        if (auto* e = std::get_if<mapping_error>(&built)) return fail(e->message, f);
        auto m = std::make_shared<core::message>(std::move(std::get<core::message>(built)));
        m->id = broker_.next_message_id();
        m->timestamp_ms = core::now_ms();
        m->origin_connection = conn_;
        if (auto txid = f.get("transaction")) {
            auto* tx = find_tx(*txid, f);
            if (!tx) return;
            if (tx->sends.size() + tx->settles.size() >= settings_->max_transaction_frames)
                return fail("transaction too large", f);
            tx->sends.push_back(std::move(m));
            return receipt_now(f);
        }
        auto* r = add_receipt(f, 1);
        publish(std::move(m), r);
    }

    void publish(core::message_ptr m, pending_receipt* r) {
        ++unconfirmed_;
        broker_.publish(std::move(m), [self = shared_from_this(), r](core::publish_status s) {
            self->on_published(s, r);
        });
    }

    void on_published(core::publish_status s, pending_receipt* r) {
        --unconfirmed_;
        if (state_ == state::closing) return;
        if (s != core::publish_status::ok) return fail("the broker could not store the message", {});
        if (r) --r->waiting;
        if (r || disconnecting_) flush_receipts();
        resume();
    }

    void on_subscribe(const frame& f) {
        const auto dest_text = f.get("destination");
        if (!dest_text) return fail("SUBSCRIBE requires a destination header", f);
        auto parsed = parse_destination(*dest_text, false);
        if (auto* e = std::get_if<mapping_error>(&parsed)) return fail(e->message, f);
        auto id = f.get("id");
        if (!id && version_ != version::v1_0) return fail("SUBSCRIBE requires an id header", f);
        std::string sub_id(id ? *id : *dest_text);   // 1.0: the destination names the subscription
        if (subs_.contains(sub_id)) return fail("subscription id already in use", f);
        if (subs_.size() >= settings_->max_subscriptions) return fail("too many subscriptions", f);

        ack_mode mode = ack_mode::auto_;
        const auto ack = f.get("ack").value_or("auto");
        if (ack == "client") mode = ack_mode::client;
        else if (ack == "client-individual") mode = ack_mode::client_individual;
        else if (ack != "auto") return fail("ack must be auto, client or client-individual", f);

        core::subscribe_options opt;
        opt.connection = conn_;
        if (auto p = f.get("activemq.prefetchSize")) {
            std::uint32_t n = 0;
            if (!parse_uint(*p, n) || n == 0) return fail("invalid activemq.prefetchSize", f);
            opt.prefetch = n;
        }
        opt.no_local = f.get("activemq.noLocal").value_or("false") == "true";

        auto sub = std::make_unique<subscription>();
        sub->id = sub_id;
        sub->consumer = broker_.next_consumer_id();
        sub->dest = std::move(std::get<core::destination>(parsed));
        sub->mode = mode;
        const auto durable = durable_name(f);
        if (durable && !sub->dest.is_topic()) return fail("durable subscriptions are for topics", f);
        if (durable && client_id_.empty()) return fail("a durable subscription needs a client-id header on CONNECT", f);
        by_consumer_[sub->consumer] = sub.get();
        auto* r = add_receipt(f, 1);
        auto done = [self = shared_from_this(), r]() { self->complete(r); };
        if (durable) {
            // ActiveMQ: the subscription is "<client-id>:<name>" and outlives the connection.
            const auto name = client_id_ + ":" + std::string(*durable);
            const auto topic = sub->dest;
            sub->dest = core::broker::durable_queue(name);   // acks and unsubscribe go there
            opt.want_retained = false;   // a durable subscriber is not retroactive (ActiveMQ)
            broker_.subscribe_durable(sub->consumer, name, topic, opt, weak_from_this(), std::move(done));
        } else {
            broker_.subscribe(sub->consumer, sub->dest, opt, weak_from_this(), std::move(done));
        }
        subs_.emplace(std::move(sub_id), std::move(sub));
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
        auto it = id ? subs_.find(std::string(*id)) : subs_.end();
        if (it == subs_.end() && !durable) return fail("no such subscription", f);
        auto* r = add_receipt(f, 1);
        auto done = [self = shared_from_this(), r]() { self->complete(r); };
        if (it != subs_.end()) {
            end_subscription(*it->second, durable ? std::function<void()>{} : done);
            subs_.erase(it);
        }
        if (durable) {
            // With the subscription name, UNSUBSCRIBE deletes the durable subscription itself.
            if (client_id_.empty()) return fail("a durable subscription needs a client-id header on CONNECT", f);
            broker_.unsubscribe_durable(client_id_ + ":" + std::string(*durable), std::move(done));
        }
    }

    void end_subscription(subscription& sub, std::function<void()> done) {
        // Unacknowledged messages are requeued by the kernel when the consumer ends.
        // Auto-ack messages already encoded or being written are settled first, so the kernel
        // does not hand them to another consumer as well.
        by_consumer_.erase(sub.consumer);
        flow_.forget(sub.consumer);   // kept, never encoded: unsettled, the kernel requeues them
        settlements_.settle_consumer(broker_, sub.consumer);
        broker_.unsubscribe(sub.consumer, sub.dest, std::move(done));
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
        for (auto& [sid, sub] : subs_) {
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
        transaction* tx = nullptr;
        if (auto txid = f.get("transaction")) {
            tx = find_tx(*txid, f);
            if (!tx) return;
        }
        if (!take_acked(f, sub, tags)) return;
        if (tx) {
            for (auto t : tags) tx->settles.push_back(tx_settle{sub->consumer, t, positive});
        } else if (positive) {
            // The RECEIPT follows the durable removal: an ACK confirmed to the client is never
            // undone by a crash (the message does not come back).
            if (auto* r = add_receipt(f, 1)) {
                broker_.ack(sub->consumer, std::move(tags), [self = shared_from_this(), r] { self->complete(r); });
                return;
            }
            broker_.ack(sub->consumer, std::move(tags));
        } else {
            broker_.nack(sub->consumer, std::move(tags));
        }
        receipt_now(f);
    }

    transaction* find_tx(std::string_view id, const frame& f) {
        auto it = txs_.find(std::string(id));
        if (it == txs_.end()) return fail("unknown transaction", f), nullptr;
        return &it->second;
    }

    void on_begin(const frame& f) {
        const auto id = f.get("transaction");
        if (!id) return fail("BEGIN requires a transaction header", f);
        if (txs_.contains(std::string(*id))) return fail("transaction already started", f);
        if (txs_.size() >= settings_->max_transactions) return fail("too many transactions", f);
        txs_.emplace(std::string(*id), transaction{});
        receipt_now(f);
    }

    void on_commit(const frame& f) {
        const auto id = f.get("transaction");
        if (!id) return fail("COMMIT requires a transaction header", f);
        auto it = txs_.find(std::string(*id));
        if (it == txs_.end()) return fail("unknown transaction", f);
        auto tx = std::move(it->second);
        txs_.erase(it);
        // The kernel commits the sends and acks as one unit: the RECEIPT follows the durable
        // removal of every acked message and the durable storage of every sent one, written
        // together (after a crash, all of the transaction or none of it).
        core::local_transaction work;
        work.sends = std::move(tx.sends);
        std::vector<tx_settle> nacks;
        for (const auto& s : tx.settles) {
            if (s.ack) work.acks.emplace_back(s.consumer, s.tag);
            else nacks.push_back(s);
        }
        give_back(nacks);   // the transaction's NACKs: nothing to make durable
        auto* r = add_receipt(f, 1);
        ++committing_;
        broker_.commit(std::move(work), [self = shared_from_this(), r](core::publish_status s) {
            self->on_committed(s, r);
        });
    }

    void on_committed(core::publish_status s, pending_receipt* r) {
        --committing_;
        if (state_ == state::closing) return;
        if (s != core::publish_status::ok) return fail("the broker could not store the transaction", {});
        if (r) --r->waiting;
        flush_receipts();
        resume();
    }

    void on_abort(const frame& f) {
        const auto id = f.get("transaction");
        if (!id) return fail("ABORT requires a transaction header", f);
        auto it = txs_.find(std::string(*id));
        if (it == txs_.end()) return fail("unknown transaction", f);
        auto tx = std::move(it->second);
        txs_.erase(it);
        // ActiveMQ redelivers what an aborted transaction acknowledged.
        give_back(tx.settles);
        receipt_now(f);
    }

    // Hands a transaction's deliveries back to the kernel, each counted as a redelivery (ABORT,
    // the connection closing, or the transaction's own NACKs at COMMIT).
    void give_back(const std::vector<tx_settle>& all) {
        std::unordered_map<core::consumer_id, std::vector<core::delivery_tag>> by;
        for (const auto& s : all) by[s.consumer].push_back(s.tag);
        for (auto& [consumer, tags] : by) broker_.nack(consumer, std::move(tags));
    }

    void on_disconnect(const frame& f) {
        disconnecting_ = true;
        if (f.get("receipt")) add_receipt(f, 0);
        flush_receipts();
    }

    // ---- receipts ----------------------------------------------------------------------

    // Registers a receipt for `f` (if it asks for one) that waits for `waiting` completions.
    pending_receipt* add_receipt(const frame& f, std::size_t waiting) {
        const auto id = f.get("receipt");
        if (!id) return nullptr;
        receipts_.push_back(pending_receipt{std::string(*id), waiting});
        return &receipts_.back();
    }

    void receipt_now(const frame& f) {
        if (add_receipt(f, 0)) flush_receipts();
    }

    void complete(pending_receipt* r) {
        if (state_ == state::closing || !r) return;
        --r->waiting;
        flush_receipts();
    }

    void flush_receipts() {
        // std::deque keeps element addresses stable on push_back/pop_front.
        while (!receipts_.empty() && receipts_.front().waiting == 0) {
            encode_command(out_, command::receipt);
            encode_header(out_, "receipt-id", receipts_.front().id, version_, true);
            encode_body(out_, {});
            receipts_.pop_front();
        }
        if (disconnecting_ && receipts_.empty() && unconfirmed_ == 0 && committing_ == 0) return begin_closing();
        flush();
    }

    // ---- writing -----------------------------------------------------------------------

    void flush() {
        if (!writing_ && !out_.empty()) do_write();
        flow_.grew(*this, out_.size() + wbuf_.size());
    }

    void do_write() {
        writing_ = true;
        std::swap(out_, wbuf_);
        settlements_.write_started();
        flow_.write_started(transport_->get_executor(), weak_from_this(), !subs_.empty());
        transport_->async_write(std::as_bytes(std::span(wbuf_.data(), wbuf_.size())), shared_from_this());
    }

    // ---- errors and closing ------------------------------------------------------------

    // The STOMP answer to a protocol error: an ERROR frame, then close this connection only.
    void fail(std::string_view message, const frame& f) {
        if (state_ == state::closing) return;
        log()->warn("conn={} peer={} proto=stomp reason=protocol_error detail=\"{}\"", conn_,
                    transport_->peer(), message);
        encode_command(out_, command::error);
        encode_header(out_, "content-type", "text/plain", version_, false);
        encode_header(out_, "message", message, version_, true);
        if (state_ != state::awaiting_connect || f.cmd != command::connect) {
            if (auto r = f.get("receipt")) encode_header(out_, "receipt-id", *r, version_, true);
        }
        encode_body(out_, std::span(reinterpret_cast<const std::uint8_t*>(message.data()), message.size()));
        begin_closing();
    }


    // Stops taking frames; flushes output; then shuts the send side and lingers briefly.
    void begin_closing() {
        if (state_ == state::closing) return;
        state_ = state::closing;
        for (auto& [id, sub] : subs_) end_subscription(*sub, {});
        subs_.clear();
        for (auto& [id, tx] : txs_) give_back(tx.settles);
        txs_.clear();
        receipts_.clear();
        flow_.stop();
        timer_.cancel();
        arm_timer(std::chrono::milliseconds(settings_->linger_ms));
        if (!writing_ && out_.empty()) return finish_close();
        flush();
    }

    void finish_close() {
        transport_->shutdown_send();
        if (paused_) {
            paused_ = false;
            do_read();
        }
    }

    void close_now() {
        if (closed_) return;
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

    void schedule_heartbeat() {
        using ms = std::chrono::milliseconds;
        ms next{0};
        if (send_interval_.count()) next = send_interval_;
        if (receive_interval_.count()) {
            const ms check = std::max(ms(10), receive_interval_ / 2);
            next = next.count() ? std::min(next, check) : check;
        }
        if (next.count()) arm_timer(next);
    }

    void on_timer() {
        if (closed_) return;
        if (state_ == state::awaiting_connect) {
            log()->info("conn={} peer={} reason=connect_timeout", conn_, transport_->peer());
            return close_now();
        }
        if (state_ == state::closing) return close_now();   // linger over
        const auto now = clock::now();
        if (receive_interval_.count() &&
            now - last_read_ > std::chrono::duration_cast<clock::duration>(receive_interval_ * settings_->heartbeat_grace)) {
            log()->info("conn={} peer={} reason=heartbeat_timeout", conn_, transport_->peer());
            return close_now();
        }
        if (send_interval_.count() && !writing_ && out_.empty() && now - last_write_ >= send_interval_) {
            out_.push_back('\n');
            flush();
        }
        schedule_heartbeat();
    }

    std::unique_ptr<net::transport> transport_;
    std::shared_ptr<const settings> settings_;
    core::broker& broker_;
    const core::authenticator& auth_;
    const std::uint64_t conn_;
    boost::asio::steady_timer timer_;

    state state_ = state::awaiting_connect;
    version version_ = version::v1_0;
    std::string user_;
    std::string client_id_;   // CONNECT client-id: names durable subscriptions
    bool reading_ = false, writing_ = false, paused_ = false, closed_ = false, disconnecting_ = false;

    net::read_buffer in_;
    std::size_t need_ = 0;
    frame frame_;
    std::string scratch_;
    std::string out_, wbuf_;
    net::write_settlements settlements_;   // ack:auto deliveries, settled once written
    net::output_flow flow_;                // bounds the output: pauses consumers, ends stalled ones

    std::unordered_map<std::string, std::unique_ptr<subscription>> subs_;
    std::unordered_map<core::consumer_id, subscription*> by_consumer_;
    std::unordered_map<std::string, transaction> txs_;
    std::deque<pending_receipt> receipts_;
    std::size_t unconfirmed_ = 0;
    std::size_t committing_ = 0;   // COMMITs handed to the kernel, not yet completed

    clock::time_point last_read_, last_write_;
    std::chrono::milliseconds send_interval_{0}, receive_interval_{0};
};

}  // namespace

std::shared_ptr<net::session> make_session(std::unique_ptr<net::transport> t,
                                           std::shared_ptr<const settings> s, core::broker& broker,
                                           const core::authenticator& auth,
                                           std::uint64_t connection_id) {
    return std::make_shared<session>(std::move(t), std::move(s), broker, auth, connection_id);
}

}  // namespace sb::stomp
