// tests/bench/scenario.cpp — one load scenario: N producers and M consumers over STOMP, MQTT or
// AMQP 1.0 (one link per connection, amqp_wire.hpp),
// spread over --threads client threads (one io_context each), driven by the main thread.
//
// Phases, all bounded by --timeout from the start of the run:
//   0. background (--background-subs): extra MQTT connections subscribe to filters that match
//      nothing the run sends, and stay idle until the goodbye.
//   1. connect: every client connects; consumers subscribe (confirmed by a receipt / SUBACK).
//   2. send: the clock starts (t0); producers send --count messages between them, or send for
//      --duration, each with at most --window unconfirmed messages when sends are confirmed.
//   3. drain: once every producer is done, wait until the consumers have the expected
//      deliveries, or until nothing arrived for --drain-idle.
//   4. goodbye: DISCONNECT, close, stop the threads.
// The main thread only posts work to the client threads and polls atomics (every 2 ms): the
// clients never wait for it, so it costs the measurement nothing.
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <sys/resource.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <mutex>
#include <thread>
#include <unistd.h>

#include "adapters/stomp/codec.hpp"
#include "tests/bench/amqp_wire.hpp"
#include "tests/bench/commands.hpp"
#include "tests/bench/mqtt_wire.hpp"
#include "tests/bench/payload.hpp"
#include "tests/bench/peer.hpp"

namespace sb::bench {

std::uint64_t raise_fd_limit() noexcept {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

namespace {

// Shared by the main thread and the client threads.
struct run_state {
    explicit run_state(const run_options& o) : opt(o) {}
    const run_options& opt;
    std::uint64_t setup_start_ns = 0;  // a stamp older than this was sent by an earlier run
    std::atomic<bool> failed{false};
    std::atomic<bool> stopping{false};
    std::atomic<std::uint32_t> ready{0};           // connected (producers) or subscribed (consumers)
    std::atomic<std::uint32_t> background_ready{0};   // background connections with every SUBACK
    std::atomic<std::uint32_t> producers_done{0};
    std::atomic<std::uint32_t> closed{0};
    std::mutex mu;
    std::vector<std::string> errors;

    void fail(std::string why) {
        {
            std::lock_guard lock(mu);
            if (errors.size() < 16) errors.push_back(std::move(why));
        }
        failed.store(true);
    }
};

// Single writer (its thread); the main thread reads the atomics for progress and completion.
void bump(std::atomic<std::uint64_t>& a, std::uint64_t by = 1) noexcept {
    a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

class client;

struct thread_ctx {
    asio::io_context ioc{1};
    std::atomic<std::uint64_t> received{0};
    std::atomic<std::uint64_t> last_receive_ns{0};
    std::uint64_t stale = 0;      // read after the thread stopped
    std::uint64_t reordered = 0;
    histogram latency;
    std::thread thread;
};

class client : public peer {
public:
    enum class role : std::uint8_t { producer, consumer };

    client(run_state& run, thread_ctx& t, role r, std::uint32_t index, std::uint32_t dest)
        : peer(t.ioc), run_(run), t_(t), role_(r), index_(index), dest_(dest),
          confirm_(confirms(run.opt)), pad_(run.opt.size_bytes - stamp_bytes, 'x') {
        if (r == role::consumer) next_expected_.assign(run.opt.producers, 0);
    }

    role kind() const noexcept { return role_; }
    std::uint32_t dest() const noexcept { return dest_; }

    void connect(const tcp::endpoint& ep) {
        socket().async_connect(ep, [self = self()](const error_code& ec) {
            if (ec) return self->fail("connect to " + self->run_.opt.host + ":" +
                                      std::to_string(self->run_.opt.port) + ": " + ec.message());
            error_code ignored;
            self->socket().set_option(tcp::no_delay(true), ignored);
            self->send_connect();
            self->flush();
            self->start_reading();
        });
    }

    // Producers: start sending. quota == 0 means "until stop_at_ns".
    void begin(std::uint64_t quota, std::uint64_t stop_at_ns) {
        quota_ = quota;
        stop_at_ns_ = stop_at_ns;
        sending_ = true;
        pump();
    }

    void goodbye() {
        if (closed()) return;
        send_disconnect();
        close_after_flush();
    }

    std::atomic<std::uint64_t> sent{0};
    std::atomic<std::uint64_t> confirmed{0};
    std::atomic<std::uint64_t> done_ns{0};

protected:
    virtual void send_connect() = 0;
    virtual void send_subscribe() = 0;
    // Appends one message with `seq` to out_ and returns its stamp's send time.
    virtual std::uint64_t append_message(std::uint64_t seq) = 0;
    virtual void send_disconnect() = 0;

    std::shared_ptr<client> self() { return std::static_pointer_cast<client>(shared_from_this()); }

    void on_handshake() {
        if (role_ == role::consumer) {
            send_subscribe();
            flush();
        } else {
            run_.ready.fetch_add(1);
        }
    }

    void on_subscribed() { run_.ready.fetch_add(1); }

    void on_confirmed(std::uint64_t n = 1) {
        if (role_ != role::producer || inflight_ < n) return fail("unexpected confirmation");
        inflight_ -= n;
        bump(confirmed, n);
        pump();
    }

    // AMQP: the link's credit; the bytes a send has queued outside out_, moved there before a flush.
    virtual bool can_send() { return true; }
    virtual std::size_t queued_bytes() const { return out_.size(); }
    virtual void collect_output() {}

    void on_delivery(std::span<const std::uint8_t> payload) {
        const std::uint64_t now = now_ns();
        const auto s = read_stamp(payload);
        if (!s || s->sent_ns < run_.setup_start_ns || s->sent_ns > now ||
            seq_producer(s->seq) >= next_expected_.size()) {
            ++t_.stale;
            return;
        }
        t_.latency.record(now - s->sent_ns);
        bump(t_.received);
        t_.last_receive_ns.store(now, std::memory_order_relaxed);
        auto& next = next_expected_[seq_producer(s->seq)];
        if (seq_number(s->seq) < next) ++t_.reordered;
        else next = seq_number(s->seq) + 1;
    }

    void fail(std::string why) {
        if (!run_.stopping.load()) {
            run_.fail((role_ == role::producer ? "producer " : "consumer ") + std::to_string(index_) + ": " + why);
        }
        close();
    }

    void on_io_error(const error_code& ec, std::string_view op) override {
        if (run_.stopping.load()) return;
        fail(std::string(op) + ": " + (ec == asio::error::eof ? "connection closed by the broker" : ec.message()));
    }

    void on_closed() override { run_.closed.fetch_add(1); }

    void on_written() override {
        if (role_ == role::producer) pump();
    }

    void pump() {
        if (!sending_ || finished_ || closed()) return;
        const run_options& o = run_.opt;
        // Fill up to ~64 KiB per write: big enough to amortise the syscall, small enough that
        // the stamps are taken close to the moment the bytes leave.
        const std::size_t max_out = std::max<std::size_t>(64 * 1024, o.size_bytes + 256);
        std::uint64_t now = quota_ > 0 ? 0 : now_ns();
        while (queued_bytes() < max_out && (!confirm_ || inflight_ < o.window) && can_send()) {
            if (quota_ > 0 ? next_ >= quota_ : now >= stop_at_ns_) break;
            now = append_message(make_seq(index_, next_));
            ++next_;
            if (confirm_) ++inflight_;
        }
        if (next_ != sent.load(std::memory_order_relaxed)) sent.store(next_, std::memory_order_relaxed);
        if (quota_ > 0 ? next_ >= quota_ : now_ns() >= stop_at_ns_) sending_over_ = true;
        collect_output();
        flush();
        // Done: every message confirmed, or (unconfirmed) handed to the kernel.
        if (sending_over_ && !finished_ && (confirm_ ? inflight_ == 0 : (!writing() && out_.empty()))) {
            finished_ = true;
            done_ns.store(now_ns());
            run_.producers_done.fetch_add(1);
        }
    }

    run_state& run_;
    thread_ctx& t_;
    const role role_;
    const std::uint32_t index_;
    const std::uint32_t dest_;
    const bool confirm_;
    const std::string pad_;               // payload bytes after the stamp
    std::uint64_t quota_ = 0;
    std::uint64_t stop_at_ns_ = 0;
    std::uint64_t next_ = 0;              // messages appended so far
    std::uint64_t inflight_ = 0;          // unconfirmed
    bool sending_ = false;
    bool sending_over_ = false;
    bool finished_ = false;
    std::vector<std::uint64_t> next_expected_;  // consumers: per producer, the next number expected

    // Writes the stamp and the padding (the payload) at the end of out_.
    std::uint64_t append_payload(std::uint64_t seq) {
        const std::size_t pos = out_.size();
        out_.resize(pos + stamp_bytes);
        const std::uint64_t now = now_ns();
        write_stamp(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(out_.data() + pos), stamp_bytes),
                    stamp{now, seq});
        out_.append(pad_);
        return now;
    }
};

// ---- STOMP ----------------------------------------------------------------------------------

class stomp_client final : public client {
public:
    stomp_client(run_state& run, thread_ctx& t, role r, std::uint32_t index, std::uint32_t dest)
        : client(run, t, r, index, dest) {
        const run_options& o = run.opt;
        destination_ = std::string(o.dest == dest_kind::queue ? "/queue/" : "/topic/") + o.prefix + "." + std::to_string(dest);
        using namespace sb::stomp;
        encode_command(send_prefix_, command::send);
        encode_header(send_prefix_, "destination", destination_, version::v1_2, true);
        encode_header(send_prefix_, "content-length", std::to_string(o.size_bytes), version::v1_2, true);
        if (o.persistent) encode_header(send_prefix_, "persistent", "true", version::v1_2, true);
    }

private:
    void send_connect() override {
        using namespace sb::stomp;
        const run_options& o = run_.opt;
        frame f;
        f.cmd = command::connect;
        f.headers = {{"accept-version", "1.1,1.2"}, {"host", o.vhost}, {"heart-beat", "0,0"}};
        if (!o.user.empty()) {
            f.headers.push_back({"login", o.user});
            f.headers.push_back({"passcode", o.password});
        }
        encode(out_, f, version::v1_2);
    }

    void send_subscribe() override {
        using namespace sb::stomp;
        encode_command(out_, command::subscribe);
        encode_header(out_, "destination", destination_, version_, true);
        encode_header(out_, "id", "0", version_, true);
        encode_header(out_, "ack", "auto", version_, true);
        encode_header(out_, "receipt", "sub", version_, true);
        if (const std::uint32_t n = run_.opt.selectors; n > 0)
            encode_header(out_, "selector", "k = " + std::to_string(index_ % n), version_, true);
        encode_body(out_, {});
    }

    void send_disconnect() override {
        sb::stomp::encode_command(out_, sb::stomp::command::disconnect);
        sb::stomp::encode_body(out_, {});
    }

    std::size_t on_bytes(std::span<const std::uint8_t> in) override {
        using namespace sb::stomp;
        std::size_t used = 0;
        while (!closed()) {
            const auto r = decode(in.subspan(used), limits_, version_, frame_, scratch_);
            if (const auto* hb = std::get_if<heartbeat>(&r)) {
                used += hb->consumed;
                continue;
            }
            if (const auto* e = std::get_if<decode_error>(&r)) {
                fail("undecodable frame from the broker: " + std::string(e->message));
                break;
            }
            const auto* d = std::get_if<decoded>(&r);
            if (!d) break;  // need_more
            on_frame();
            used += d->consumed;
        }
        return used;
    }

    void on_frame() {
        using namespace sb::stomp;
        switch (frame_.cmd) {
        case command::message:
            return on_delivery(frame_.body);
        case command::receipt:
            if (frame_.get("receipt-id") == std::optional<std::string_view>("sub")) return on_subscribed();
            return on_confirmed();
        case command::connected: {
            const auto v = frame_.get("version").value_or("1.0");
            version_ = v == "1.2" ? version::v1_2 : v == "1.1" ? version::v1_1 : version::v1_0;
            return on_handshake();
        }
        case command::error: {
            std::string why = "ERROR frame";
            if (auto m = frame_.get("message")) why += ": " + std::string(*m);
            return fail(why);
        }
        default:
            return fail("unexpected " + std::string(to_string(frame_.cmd)) + " frame");
        }
    }

    std::uint64_t append_message(std::uint64_t seq) override {
        out_.append(send_prefix_);
        if (confirm_) {
            char buf[24];
            const auto end = std::to_chars(buf, buf + sizeof buf, ++receipt_seq_).ptr;
            out_.append("receipt:");
            out_.append(buf, end);
            out_.push_back('\n');
        }
        if (const std::uint32_t n = run_.opt.selectors; n > 0) {
            // Scattered, not round robin: a counter would always match the next consumer in
            // the queue's rotation first, the selectors' best case.
            char buf[24];
            const auto end = std::to_chars(buf, buf + sizeof buf, (seq * 0x9E3779B97F4A7C15ull >> 32) % n).ptr;
            out_.append("k:");
            out_.append(buf, end);
            out_.push_back('\n');
        }
        out_.push_back('\n');
        const std::uint64_t now = append_payload(seq);
        out_.push_back('\0');
        return now;
    }

    std::string destination_;
    std::string send_prefix_;  // "SEND\ndestination:...\ncontent-length:N\n[persistent:true\n]"
    std::uint64_t receipt_seq_ = 0;
    sb::stomp::limits limits_{};
    sb::stomp::version version_ = sb::stomp::version::v1_2;
    sb::stomp::frame frame_;
    std::string scratch_;
};

// ---- MQTT 3.1.1 -----------------------------------------------------------------------------

class mqtt_client final : public client {
public:
    mqtt_client(run_state& run, thread_ctx& t, role r, std::uint32_t index, std::uint32_t dest)
        : client(run, t, r, index, dest), qos_(static_cast<std::uint8_t>(run.opt.qos)) {
        topic_ = run.opt.prefix + "/" + std::to_string(dest);
        // §3.1.3.1: 1..23 characters of [0-9a-zA-Z] are what every server must accept.
        client_id_ = "sbb" + std::to_string(::getpid() % 1000000) + (r == role::producer ? "p" : "c") +
                     std::to_string(index);
        if (r == role::producer && qos_ > 0) in_use_.assign(65536, false);
    }

private:
    void send_connect() override {
        // Keep-alive 0: the broker never times a bench connection out (§3.1.2.10).
        mqtt_encode_connect(out_, client_id_, 0, true, run_.opt.user, run_.opt.password);
    }

    void send_subscribe() override { mqtt_encode_subscribe(out_, 1, topic_, qos_); }

    void send_disconnect() override { mqtt_encode_disconnect(out_); }

    std::uint64_t append_message(std::uint64_t seq) override {
        std::uint16_t id = 0;
        if (qos_ > 0) {
            // The window (<= 65535) keeps a free identifier; brokers confirm in order, so the
            // search is one step in practice.
            do id = static_cast<std::uint16_t>(id_cursor_ = id_cursor_ % 65535 + 1);
            while (in_use_[id]);
            in_use_[id] = true;
        }
        mqtt_encode_publish_header(out_, topic_, qos_, id, run_.opt.size_bytes);
        return append_payload(seq);
    }

    void release(std::uint16_t id) {
        if (in_use_.empty() || !in_use_[id]) return fail("confirmation for unknown packet id " + std::to_string(id));
        in_use_[id] = false;
        on_confirmed();
    }

    std::size_t on_bytes(std::span<const std::uint8_t> in) override {
        std::size_t used = 0;
        while (!closed()) {
            const auto r = mqtt_decode(in.subspan(used), 256u << 20);
            if (const auto* m = std::get_if<mqtt_malformed>(&r)) {
                fail("malformed packet from the broker: " + std::string(m->why));
                break;
            }
            const auto* d = std::get_if<mqtt_decoded>(&r);
            if (!d) break;
            on_packet(d->packet);
            used += d->consumed;
        }
        return used;
    }

    void on_packet(const mqtt_packet& p) {
        switch (p.type) {
        case mqtt_type::publish: {
            const auto v = mqtt_parse_publish(p);
            if (!v) return fail("malformed PUBLISH");
            if (v->qos == 1) mqtt_encode_ack(out_, mqtt_type::puback, v->packet_id);
            // QoS 2 is counted at PUBLISH: our side of the exactly-once handshake is PUBREC/PUBCOMP.
            if (v->qos == 2) mqtt_encode_ack(out_, mqtt_type::pubrec, v->packet_id);
            return on_delivery(v->payload);
        }
        case mqtt_type::puback:
        case mqtt_type::pubcomp: {
            const auto id = mqtt_parse_packet_id(p);
            if (!id) return fail("malformed acknowledgement");
            return release(*id);
        }
        case mqtt_type::pubrec: {
            const auto id = mqtt_parse_packet_id(p);
            if (!id) return fail("malformed PUBREC");
            mqtt_encode_ack(out_, mqtt_type::pubrel, *id);
            return;
        }
        case mqtt_type::pubrel: {
            const auto id = mqtt_parse_packet_id(p);
            if (!id) return fail("malformed PUBREL");
            mqtt_encode_ack(out_, mqtt_type::pubcomp, *id);
            return;
        }
        case mqtt_type::connack: {
            const auto rc = mqtt_parse_connack(p);
            if (!rc) return fail("malformed CONNACK");
            if (*rc != 0) return fail("CONNACK refused the connection, return code " + std::to_string(*rc));
            return on_handshake();
        }
        case mqtt_type::suback: {
            const auto rc = mqtt_parse_suback(p);
            if (!rc || *rc == 0x80) return fail("SUBACK refused the subscription to " + topic_);
            return on_subscribed();
        }
        case mqtt_type::pingresp:
            return;
        default:
            return fail("unexpected packet type " + std::to_string(static_cast<int>(p.type)));
        }
    }

    const std::uint8_t qos_;
    std::string topic_;
    std::string client_id_;
    std::vector<bool> in_use_;       // producer packet identifiers awaiting PUBACK / PUBCOMP
    std::uint32_t id_cursor_ = 0;
};

// ---- AMQP 1.0 ------------------------------------------------------------------------------------

// One connection, one session, one link: a sender to the destination (producers) or a receiver
// from it (consumers, with --window credit). Unsettled sends are confirmed by the broker's
// accepted outcome; --presettled settles on send both ways.
class amqp_client final : public client, private amqp_events {
public:
    amqp_client(run_state& run, thread_ctx& t, role r, std::uint32_t index, std::uint32_t dest)
        : client(run, t, r, index, dest), ep_(config(run.opt, r, index, dest), *this),
          payload_(run.opt.size_bytes, 'x') {}

private:
    static amqp_link_config config(const run_options& o, role r, std::uint32_t index, std::uint32_t dest) {
        amqp_link_config c;
        c.sender = r == role::producer;
        // /queue/<name> and /topic/<name>: Switchboard's and RabbitMQ 3.x's plugin's common form.
        c.address = std::string(o.dest == dest_kind::queue ? "/queue/" : "/topic/") + o.prefix + "." + std::to_string(dest);
        const std::string who = (c.sender ? "p" : "c") + std::to_string(index);
        c.container_id = "sbb" + std::to_string(::getpid()) + who;
        c.link_name = "sbb-" + who;
        c.hostname = o.host;
        c.user = o.user;
        c.password = o.password;
        c.presettled = o.presettled;
        c.durable = o.persistent;
        c.credit = o.window;
        return c;
    }

    void send_connect() override {
        ep_.open();
        ep_.take_output(out_);
    }
    void send_subscribe() override {}  // the receiver is attached with the connection
    void send_disconnect() override {
        ep_.close();
        ep_.take_output(out_);
    }

    std::uint64_t append_message(std::uint64_t seq) override {
        const std::uint64_t now = now_ns();
        write_stamp(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(payload_.data()), stamp_bytes), stamp{now, seq});
        ep_.send(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(payload_.data()), payload_.size()));
        return now;
    }

    bool can_send() override { return ep_.sendable() > 0; }
    std::size_t queued_bytes() const override { return out_.size() + ep_.unflushed(); }
    void collect_output() override { ep_.take_output(out_); }

    std::size_t on_bytes(std::span<const std::uint8_t> in) override {
        ep_.feed(in);
        if (!closed()) ep_.take_output(out_);
        return in.size();
    }

    void amqp_ready() override {
        if (kind() == role::consumer) on_subscribed();
        else on_handshake();
    }
    void amqp_writable() override { pump(); }
    void amqp_settled(std::uint64_t n) override { on_confirmed(n); }
    void amqp_message(std::span<const std::uint8_t> body) override { on_delivery(body); }
    void amqp_failed(std::string why) override { fail(std::move(why)); }

    amqp_endpoint ep_;
    std::string payload_;  // the stamp, then padding
};

// ---- background subscriptions ----------------------------------------------------------------

// One MQTT connection holding `count` subscriptions, filters "+/bg<i>/#" for i in
// [first, first + count): a wildcard in the first level, as a publish's name can take, but a
// second level no run's topic has (<prefix>/<n>), so they match nothing. Sent as SUBSCRIBE
// packets of up to 1000 filters; ready once every filter of every SUBACK was granted.
class background_client final : public peer {
public:
    background_client(run_state& run, asio::io_context& ioc, std::uint32_t index, std::uint32_t first,
                      std::uint32_t count)
        : peer(ioc), run_(run), index_(index), first_(first), count_(count),
          client_id_("sbb" + std::to_string(::getpid() % 1000000) + "g" + std::to_string(index)) {}

    void connect(const tcp::endpoint& ep) {
        auto self = std::static_pointer_cast<background_client>(shared_from_this());
        socket().async_connect(ep, [self](const error_code& ec) {
            if (ec) return self->fail("connect: " + ec.message());
            error_code ignored;
            self->socket().set_option(tcp::no_delay(true), ignored);
            mqtt_encode_connect(self->out_, self->client_id_, 0, true, self->run_.opt.user, self->run_.opt.password);
            self->flush();
            self->start_reading();
        });
    }

    void goodbye() {
        if (closed()) return;
        mqtt_encode_disconnect(out_);
        close_after_flush();
    }

private:
    static constexpr std::uint32_t per_packet = 1000;

    void subscribe_all() {
        std::vector<std::string> filters;
        std::uint16_t id = 0;
        for (std::uint32_t i = 0; i < count_; i += per_packet) {
            filters.clear();
            for (std::uint32_t k = i; k < std::min(count_, i + per_packet); ++k)
                filters.push_back("+/bg" + std::to_string(first_ + k) + "/#");
            mqtt_encode_subscribe(out_, ++id, filters, 0);
            ++packets_;
        }
        if (packets_ == 0) run_.background_ready.fetch_add(1);
        flush();
    }

    std::size_t on_bytes(std::span<const std::uint8_t> in) override {
        std::size_t used = 0;
        while (!closed()) {
            const auto r = mqtt_decode(in.subspan(used), 256u << 20);
            if (const auto* m = std::get_if<mqtt_malformed>(&r)) {
                fail("malformed packet from the broker: " + std::string(m->why));
                break;
            }
            const auto* d = std::get_if<mqtt_decoded>(&r);
            if (!d) break;
            on_packet(d->packet);
            used += d->consumed;
        }
        return used;
    }

    void on_packet(const mqtt_packet& p) {
        if (p.type == mqtt_type::connack) {
            const auto rc = mqtt_parse_connack(p);
            if (!rc || *rc != 0) return fail("CONNACK refused the background connection");
            return subscribe_all();
        }
        if (p.type == mqtt_type::suback) {
            const auto a = mqtt_parse_suback_all(p);
            if (!a) return fail("malformed SUBACK");
            for (const auto code : a->codes)
                if (code == 0x80) return fail("SUBACK refused a background subscription");
            if (++acked_ == packets_) run_.background_ready.fetch_add(1);
            return;
        }
        if (p.type == mqtt_type::pingresp) return;
        // A background filter matches nothing: a PUBLISH here means the broker matched wrongly.
        fail("unexpected packet type " + std::to_string(static_cast<int>(p.type)));
    }

    void fail(std::string why) {
        if (!run_.stopping.load()) run_.fail("background connection " + std::to_string(index_) + ": " + why);
        close();
    }

    void on_io_error(const error_code& ec, std::string_view op) override {
        if (run_.stopping.load()) return;
        fail(std::string(op) + ": " + (ec == asio::error::eof ? "connection closed by the broker" : ec.message()));
    }

    void on_closed() override { run_.closed.fetch_add(1); }

    run_state& run_;
    const std::uint32_t index_, first_, count_;
    const std::string client_id_;
    std::uint32_t packets_ = 0;   // SUBSCRIBE packets sent
    std::uint32_t acked_ = 0;     // and their SUBACKs
};

std::shared_ptr<client> make_client(run_state& run, thread_ctx& t, client::role r, std::uint32_t index,
                                    std::uint32_t dest) {
    if (run.opt.proto == protocol::stomp) return std::make_shared<stomp_client>(run, t, r, index, dest);
    if (run.opt.proto == protocol::amqp) return std::make_shared<amqp_client>(run, t, r, index, dest);
    return std::make_shared<mqtt_client>(run, t, r, index, dest);
}

double seconds(std::uint64_t from_ns, std::uint64_t to_ns) {
    return to_ns > from_ns ? static_cast<double>(to_ns - from_ns) / 1e9 : 0.0;
}

}  // namespace

run_result run_scenario(const run_options& o) {
    run_result result;
    run_state run(o);
    run.setup_start_ns = now_ns();
    const std::uint64_t deadline = run.setup_start_ns + static_cast<std::uint64_t>(o.timeout_s * 1e9);
    raise_fd_limit();

    tcp::endpoint endpoint;
    {
        asio::io_context resolver_ioc;
        tcp::resolver resolver(resolver_ioc);
        error_code ec;
        const auto found = resolver.resolve(o.host, std::to_string(o.port), ec);
        if (ec || found.empty()) {
            result.errors.push_back("cannot resolve " + o.host + ": " + (ec ? ec.message() : "no address"));
            return result;
        }
        endpoint = found.begin()->endpoint();
    }

    // Consumers first, then producers, dealt round-robin over the threads.
    std::vector<std::unique_ptr<thread_ctx>> threads;
    for (unsigned i = 0; i < o.threads; ++i) threads.push_back(std::make_unique<thread_ctx>());
    std::vector<std::shared_ptr<client>> consumers, producers;
    std::vector<thread_ctx*> home;  // per client (consumers, then producers)
    std::size_t k = 0;
    for (std::uint32_t j = 0; j < o.consumers; ++j, ++k) {
        auto& t = *threads[k % threads.size()];
        consumers.push_back(make_client(run, t, client::role::consumer, j, j % o.destinations));
        home.push_back(&t);
    }
    for (std::uint32_t i = 0; i < o.producers; ++i, ++k) {
        auto& t = *threads[k % threads.size()];
        producers.push_back(make_client(run, t, client::role::producer, i, i % o.destinations));
        home.push_back(&t);
    }
    auto all = consumers;
    all.insert(all.end(), producers.begin(), producers.end());
    // Background connections (--background-subs), dealt over the threads after the clients.
    std::vector<std::shared_ptr<background_client>> background;
    std::vector<thread_ctx*> background_home;
    if (o.background_subs > 0) {
        const std::uint32_t n = std::min(
            o.background_connections ? o.background_connections : (o.background_subs + 999) / 1000, o.background_subs);
        for (std::uint32_t i = 0, first = 0; i < n; ++i, ++k) {
            const std::uint32_t count = quota_of(o.background_subs, n, i);
            auto& t = *threads[k % threads.size()];
            background.push_back(std::make_shared<background_client>(run, t.ioc, i, first, count));
            background_home.push_back(&t);
            first += count;
        }
    }
    const auto background_count = static_cast<std::uint32_t>(background.size());

    using guard_t = asio::executor_work_guard<asio::io_context::executor_type>;
    std::vector<guard_t> guards;
    for (auto& t : threads) {
        guards.emplace_back(t->ioc.get_executor());
        t->thread = std::thread([&ioc = t->ioc] { ioc.run(); });
    }

    const std::uint32_t clients = o.producers + o.consumers;
    auto progress = [&, last = std::uint64_t{0}](std::uint64_t now, bool force = false) mutable {
        if (o.quiet || (!force && now < last + 1'000'000'000)) return;
        last = now;
        std::uint64_t sent = 0, confirmed = 0, received = 0;
        for (auto& p : producers) sent += p->sent.load(std::memory_order_relaxed), confirmed += p->confirmed.load(std::memory_order_relaxed);
        for (auto& t : threads) received += t->received.load(std::memory_order_relaxed);
        std::fprintf(stderr, "[bench] %6.1fs sent=%llu confirmed=%llu received=%llu\n", seconds(run.setup_start_ns, now),
                     static_cast<unsigned long long>(sent), static_cast<unsigned long long>(confirmed),
                     static_cast<unsigned long long>(received));
    };
    auto owed = [&] {
        std::uint64_t n = 0;
        for (std::uint32_t i = 0; i < o.producers; ++i)
            n += expected_deliveries(o.dest, producers[i]->sent.load(),
                                     consumers_on(o.consumers, o.destinations, i % o.destinations));
        return n;
    };
    auto sleep_a_bit = [] { std::this_thread::sleep_for(std::chrono::milliseconds(2)); };

    // 0. background subscriptions, all in place before any client connects
    for (std::size_t i = 0; i < background.size(); ++i)
        asio::post(background_home[i]->ioc, [c = background[i], endpoint] { c->connect(endpoint); });
    while (run.background_ready.load() < background_count && !run.failed.load() && now_ns() < deadline) sleep_a_bit();

    // 1. connect and subscribe
    for (std::size_t i = 0; i < all.size(); ++i)
        asio::post(home[i]->ioc, [c = all[i], endpoint] { c->connect(endpoint); });
    while (run.background_ready.load() == background_count && run.ready.load() < clients && !run.failed.load() &&
           now_ns() < deadline)
        sleep_a_bit();
    const std::uint64_t t0 = now_ns();
    result.setup_s = seconds(run.setup_start_ns, t0);

    // 2. send, 3. drain
    if (run.background_ready.load() == background_count && run.ready.load() == clients && !run.failed.load()) {
        const std::uint64_t stop_at = o.duration_s > 0 ? t0 + static_cast<std::uint64_t>(o.duration_s * 1e9) : 0;
        for (std::uint32_t i = 0; i < o.producers; ++i) {
            const std::uint64_t quota = o.count > 0 ? quota_of(o.count, o.producers, i) : 0;
            if (o.count > 0 && quota == 0) {  // more producers than messages: nothing to do
                run.producers_done.fetch_add(1);
                continue;
            }
            asio::post(home[o.consumers + i]->ioc, [p = producers[i], quota, stop_at] { p->begin(quota, stop_at); });
        }
        bool expected_known = false;
        std::uint64_t last_received = 0, last_change = now_ns();
        while (true) {
            sleep_a_bit();
            const std::uint64_t now = now_ns();
            progress(now);
            if (run.failed.load()) break;
            if (now >= deadline) {
                result.timed_out = true;
                break;
            }
            std::uint64_t received = 0;
            for (auto& t : threads) received += t->received.load(std::memory_order_relaxed);
            if (received != last_received) last_received = received, last_change = now;
            if (run.producers_done.load() < o.producers) continue;
            if (!expected_known) {
                // Every producer is done: what they sent fixes what the consumers are owed,
                // and the drain clock starts now (or at the last delivery, if later).
                expected_known = true;
                result.expected = owed();
                last_change = std::max(last_change, now);
            }
            if (received >= result.expected) {
                result.complete = true;
                break;
            }
            if (now - last_change >= static_cast<std::uint64_t>(o.drain_idle_s * 1e9)) break;
        }
    } else if (!run.failed.load()) {
        // Nothing was measured: that is a failure to run, not partial results.
        if (run.background_ready.load() < background_count)
            run.fail("only " + std::to_string(run.background_ready.load()) + " of " + std::to_string(background_count) +
                     " background connections had their subscriptions within --timeout");
        else
            run.fail("only " + std::to_string(run.ready.load()) + " of " + std::to_string(clients) +
                     " clients were connected (and subscribed) within --timeout");
    }
    const std::uint64_t end_ns = now_ns();
    progress(end_ns, true);

    // 4. goodbye: bounded at 2 s, then the event loops are stopped whatever is pending.
    run.stopping.store(true);
    for (std::size_t i = 0; i < all.size(); ++i) asio::post(home[i]->ioc, [c = all[i]] { c->goodbye(); });
    for (std::size_t i = 0; i < background.size(); ++i)
        asio::post(background_home[i]->ioc, [c = background[i]] { c->goodbye(); });
    const std::uint64_t goodbye_deadline = now_ns() + 2'000'000'000;
    while (run.closed.load() < clients + background_count && now_ns() < goodbye_deadline) sleep_a_bit();
    for (auto& g : guards) g.reset();
    for (auto& t : threads) t->ioc.stop();
    for (auto& t : threads) t->thread.join();

    // Results (the threads are stopped: plain reads are safe).
    std::uint64_t last_done = t0, last_receive = t0;
    for (auto& p : producers) {
        result.sent += p->sent.load();
        result.confirmed += p->confirmed.load();
        last_done = std::max(last_done, p->done_ns.load());
    }
    for (auto& t : threads) {
        result.received += t->received.load();
        result.stale += t->stale;
        result.reordered += t->reordered;
        result.latency_ns.merge(t->latency);
        last_receive = std::max(last_receive, t->last_receive_ns.load());
    }
    if (run.producers_done.load() < o.producers) {
        // Partial results: what is owed for what was sent so far; the send phase ended with the run.
        result.expected = owed();
        last_done = std::max(last_done, end_ns);
    }
    result.send_s = seconds(t0, last_done);
    result.receive_s = seconds(t0, last_receive);
    {
        std::lock_guard lock(run.mu);
        result.errors = run.errors;
    }
    // Clients hold sockets of the stopped io_contexts: release them before the contexts go.
    all.clear();
    consumers.clear();
    producers.clear();
    background.clear();
    return result;
}

}  // namespace sb::bench
