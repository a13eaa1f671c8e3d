// tests/bench/sink.cpp — `switchboard-bench sink`: a null broker that measures the client's own
// ceiling. It answers CONNECT, SUBSCRIBE, receipts and the MQTT acknowledgements; a message is
// forwarded to the subscribers of exactly its destination (every one on a topic, round-robin on
// a STOMP queue) and otherwise discarded. No storage, no wildcards, no redelivery; one thread.
// A publisher whose subscriber has 4 MiB unwritten stops being read until it drops below 1 MiB,
// so a slow consumer holds producers back through TCP instead of growing a buffer.
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <charconv>
#include <functional>
#include <iostream>
#include <unordered_map>

#include "adapters/stomp/codec.hpp"
#include "tests/bench/commands.hpp"
#include "tests/bench/mqtt_wire.hpp"
#include "tests/bench/peer.hpp"

namespace sb::bench {
namespace {

constexpr std::size_t high_watermark = 4u << 20;
constexpr std::size_t low_watermark = 1u << 20;

class sink_conn;

struct subscriber {
    std::shared_ptr<sink_conn> conn;
    std::string id;       // STOMP subscription id
    std::uint8_t qos = 0; // MQTT granted QoS
};

struct route {
    std::vector<subscriber> subs;
    std::size_t next = 0;  // round-robin cursor for queues
};

struct sink_state {
    protocol proto;
    std::unordered_map<std::string, route> routes;
    std::uint64_t messages = 0;
    std::uint64_t forwarded = 0;
    std::uint64_t connections = 0;
};

class sink_conn final : public peer {
public:
    sink_conn(tcp::socket s, sink_state& st) : peer(std::move(s)), st_(st) {}

    void start() {
        error_code ignored;
        socket().set_option(tcp::no_delay(true), ignored);
        start_reading();
    }

    // A publisher waiting for this connection's output to drain.
    void add_waiter(const std::shared_ptr<sink_conn>& w) { waiters_.push_back(w); }
    bool congested() const noexcept { return pending_out() > high_watermark; }

    // Appends one forwarded message; flushed after the publisher's read is processed.
    void deliver_stomp(std::string_view dest, const std::string& sub_id, std::span<const std::uint8_t> body) {
        using namespace sb::stomp;
        encode_command(out_, command::message);
        encode_header(out_, "destination", dest, version::v1_2, true);
        encode_header(out_, "subscription", sub_id, version::v1_2, true);
        char buf[24];
        const auto end = std::to_chars(buf, buf + sizeof buf, ++message_ids_).ptr;
        encode_header(out_, "message-id", std::string_view(buf, static_cast<std::size_t>(end - buf)), version::v1_2, true);
        encode_header(out_, "content-length", std::to_string(body.size()), version::v1_2, true);
        encode_body(out_, body);
        flush();
    }

    void deliver_mqtt(std::string_view topic, std::uint8_t qos, std::span<const std::uint8_t> payload) {
        std::uint16_t id = 0;
        if (qos > 0) id = static_cast<std::uint16_t>(packet_ids_ = packet_ids_ % 65535 + 1);
        mqtt_encode_publish(out_, topic, qos, id, payload);
        flush();
    }

private:
    std::shared_ptr<sink_conn> self() { return std::static_pointer_cast<sink_conn>(shared_from_this()); }

    std::size_t on_bytes(std::span<const std::uint8_t> in) override {
        const std::size_t used = st_.proto == protocol::stomp ? on_stomp(in) : on_mqtt(in);
        // Back-pressure: stop reading this publisher while a subscriber it feeds is congested.
        for (auto& c : congested_) {
            if (c->congested() && !c->closed()) {
                c->add_waiter(self());
                pause_reading();
            }
        }
        congested_.clear();
        return used;
    }

    void on_written() override {
        if (pending_out() >= low_watermark) return;
        auto waiters = std::move(waiters_);
        waiters_.clear();
        for (auto& w : waiters) w->resume();
    }

    void resume() { resume_reading(); }

    void on_io_error(const error_code& ec, std::string_view op) override {
        // End of stream and resets are how bench clients leave; anything else is worth a line.
        if (ec != asio::error::eof && ec != asio::error::connection_reset)
            std::cerr << "switchboard-bench sink: " << op << ": " << ec.message() << "\n";
    }

    void on_closed() override {
        for (auto& [name, r] : st_.routes)
            std::erase_if(r.subs, [this](const subscriber& s) { return s.conn.get() == this; });
        on_written();  // release publishers waiting on us
    }

    void forward(const std::string& dest, bool fan_out, auto&& deliver) {
        ++st_.messages;
        auto it = st_.routes.find(dest);
        if (it == st_.routes.end() || it->second.subs.empty()) return;
        route& r = it->second;
        auto one = [&](subscriber& s) {
            deliver(s);
            ++st_.forwarded;
            if (s.conn->congested()) congested_.push_back(s.conn);
        };
        if (fan_out) {
            for (auto& s : r.subs) one(s);
        } else {
            one(r.subs[r.next++ % r.subs.size()]);
        }
    }

    // ---- STOMP
    std::size_t on_stomp(std::span<const std::uint8_t> in) {
        using namespace sb::stomp;
        std::size_t used = 0;
        while (!closed()) {
            const auto r = decode(in.subspan(used), limits_, version::v1_2, frame_, scratch_);
            if (const auto* hb = std::get_if<heartbeat>(&r)) {
                used += hb->consumed;
                continue;
            }
            if (const auto* e = std::get_if<decode_error>(&r)) {
                std::cerr << "switchboard-bench sink: closing a connection: " << e->message << "\n";
                close();
                break;
            }
            const auto* d = std::get_if<decoded>(&r);
            if (!d) break;
            on_stomp_frame();
            used += d->consumed;
        }
        return used;
    }

    void on_stomp_frame() {
        using namespace sb::stomp;
        const auto dest = frame_.get("destination").value_or("");
        switch (frame_.cmd) {
        case command::connect:
        case command::stomp:
            out_.append("CONNECTED\nversion:1.2\nheart-beat:0,0\nserver:switchboard-bench-sink\n\n");
            out_.push_back('\0');
            break;
        case command::subscribe: {
            st_.routes[std::string(dest)].subs.push_back(
                subscriber{self(), std::string(frame_.get("id").value_or("0")), 0});
            break;
        }
        case command::send: {
            const std::string d(dest);
            forward(d, d.starts_with("/topic/"), [&](subscriber& s) { s.conn->deliver_stomp(d, s.id, frame_.body); });
            break;
        }
        default:
            break;
        }
        if (auto receipt = frame_.get("receipt")) {
            encode_command(out_, command::receipt);
            encode_header(out_, "receipt-id", *receipt, version::v1_2, true);
            encode_body(out_, {});
        }
        if (frame_.cmd == command::disconnect) close_after_flush();
    }

    // ---- MQTT
    std::size_t on_mqtt(std::span<const std::uint8_t> in) {
        std::size_t used = 0;
        while (!closed()) {
            const auto r = mqtt_decode(in.subspan(used), 256u << 20);
            if (const auto* m = std::get_if<mqtt_malformed>(&r)) {
                std::cerr << "switchboard-bench sink: closing a connection: " << m->why << "\n";
                close();
                break;
            }
            const auto* d = std::get_if<mqtt_decoded>(&r);
            if (!d) break;
            on_mqtt_packet(d->packet);
            used += d->consumed;
        }
        return used;
    }

    void on_mqtt_packet(const mqtt_packet& p) {
        switch (p.type) {
        case mqtt_type::connect:
            return mqtt_encode_connack(out_, 0);
        case mqtt_type::subscribe: {
            const auto s = mqtt_parse_subscribe(p);
            if (!s) return close();
            st_.routes[std::string(s->filter)].subs.push_back(subscriber{self(), {}, s->qos});
            return mqtt_encode_suback(out_, s->packet_id, s->qos);
        }
        case mqtt_type::publish: {
            const auto v = mqtt_parse_publish(p);
            if (!v) return close();
            const std::string topic(v->topic);
            forward(topic, true, [&](subscriber& s) {
                s.conn->deliver_mqtt(topic, std::min(v->qos, s.qos), v->payload);
            });
            if (v->qos == 1) mqtt_encode_ack(out_, mqtt_type::puback, v->packet_id);
            if (v->qos == 2) mqtt_encode_ack(out_, mqtt_type::pubrec, v->packet_id);
            return;
        }
        case mqtt_type::pubrel:
            if (auto id = mqtt_parse_packet_id(p)) mqtt_encode_ack(out_, mqtt_type::pubcomp, *id);
            return;
        case mqtt_type::pubrec:  // a subscriber at QoS 2
            if (auto id = mqtt_parse_packet_id(p)) mqtt_encode_ack(out_, mqtt_type::pubrel, *id);
            return;
        case mqtt_type::pingreq:
            return mqtt_encode_pingresp(out_);
        case mqtt_type::disconnect:
            return close();
        default:
            return;  // PUBACK, PUBCOMP from subscribers: nothing is kept to settle
        }
    }

    sink_state& st_;
    sb::stomp::limits limits_{};
    sb::stomp::frame frame_;
    std::string scratch_;
    std::uint64_t message_ids_ = 0;
    std::uint32_t packet_ids_ = 0;
    std::vector<std::shared_ptr<sink_conn>> congested_;
    // Paused publishers. Strong references: while paused, no I/O handler holds them.
    std::vector<std::shared_ptr<sink_conn>> waiters_;
};

}  // namespace

int run_sink(const sink_options& o) {
    raise_fd_limit();
    asio::io_context ioc{1};
    sink_state st{o.proto, {}, 0, 0, 0};
    tcp::acceptor acceptor(ioc);
    std::vector<std::weak_ptr<sink_conn>> conns;
    try {
        const tcp::endpoint ep(asio::ip::make_address(o.host), o.port);
        acceptor.open(ep.protocol());
        acceptor.set_option(tcp::acceptor::reuse_address(true));
        acceptor.bind(ep);
        acceptor.listen();
    } catch (const boost::system::system_error& e) {
        std::cerr << "switchboard-bench sink: cannot listen on " << o.host << ":" << o.port << ": "
                  << e.code().message() << "\n";
        return exit_error;
    }

    std::function<void()> do_accept = [&] {
        acceptor.async_accept([&](const error_code& ec, tcp::socket s) {
            if (ec) return;  // closed by stop()
            ++st.connections;
            auto c = std::make_shared<sink_conn>(std::move(s), st);
            std::erase_if(conns, [](const auto& w) { return w.expired(); });
            conns.push_back(c);
            c->start();
            do_accept();
        });
    };
    auto stop = [&] {
        error_code ignored;
        acceptor.close(ignored);
        for (auto& w : conns) if (auto c = w.lock()) c->close();
        ioc.stop();
    };
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const error_code& ec, int) { if (!ec) stop(); });
    asio::steady_timer timer(ioc);
    if (o.for_s > 0) {
        timer.expires_after(std::chrono::milliseconds(static_cast<long long>(o.for_s * 1000)));
        timer.async_wait([&](const error_code& ec) { if (!ec) stop(); });
    }
    std::cerr << "switchboard-bench sink: " << to_string(o.proto) << " on " << o.host << ":" << o.port << "\n";
    do_accept();
    ioc.run();
    std::cerr << "switchboard-bench sink: " << st.connections << " connections, " << st.messages
              << " messages in, " << st.forwarded << " forwarded\n";
    return exit_ok;
}

}  // namespace sb::bench
