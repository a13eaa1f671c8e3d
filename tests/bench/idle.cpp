// tests/bench/idle.cpp — `switchboard-bench idle`: opens K connections (at most --concurrency
// attempts in flight), holds them for --hold seconds, and reports the connect rate and, given
// --broker-pid, the broker's resident memory per connection (VmRSS before and after, read from
// /proc, 1 s after the last connection was accepted). One thread; bounded by --timeout.
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <fstream>
#include <iostream>
#include <optional>
#include <unistd.h>

#include "adapters/stomp/codec.hpp"
#include "tests/bench/commands.hpp"
#include "tests/bench/mqtt_wire.hpp"
#include "tests/bench/payload.hpp"
#include "tests/bench/peer.hpp"

namespace sb::bench {
namespace {

// VmRSS of a process in KiB, from /proc/PID/status.
std::optional<std::uint64_t> read_rss_kb(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
    }
    return std::nullopt;
}

struct idle_state {
    const idle_options& opt;
    tcp::endpoint endpoint;
    std::uint32_t launched = 0;
    std::uint32_t finished = 0;    // attempts that succeeded or failed
    std::uint32_t connected = 0;
    std::uint32_t failed = 0;
    std::uint32_t dropped = 0;     // closed by the broker after connecting
    std::string first_error;
    std::function<void()> on_attempt_done;
};

class idle_conn final : public peer {
public:
    idle_conn(asio::io_context& ioc, idle_state& st, std::uint32_t index)
        : peer(ioc), st_(st), index_(index), ping_(ioc) {}

    void start() {
        socket().async_connect(st_.endpoint, [self = self()](const error_code& ec) {
            if (ec) return self->attempt_failed("connect: " + ec.message());
            self->send_connect();
            self->flush();
            self->start_reading();
        });
    }

    void stop() {
        ping_.cancel();
        if (st_.opt.proto == protocol::mqtt && connected_) mqtt_encode_disconnect(out_);
        close_after_flush();
    }

private:
    std::shared_ptr<idle_conn> self() { return std::static_pointer_cast<idle_conn>(shared_from_this()); }

    void send_connect() {
        if (st_.opt.proto == protocol::mqtt) {
            const std::string id = "sbi" + std::to_string(::getpid() % 1000000) + "c" + std::to_string(index_);
            mqtt_encode_connect(out_, id, static_cast<std::uint16_t>(st_.opt.keepalive_s), true);
        } else {
            out_.append("CONNECT\naccept-version:1.1,1.2\nhost:/\nheart-beat:0,0\n\n");
            out_.push_back('\0');
        }
    }

    void attempt_failed(const std::string& why) {
        if (done_) return;
        done_ = true;
        ++st_.failed;
        if (st_.first_error.empty()) st_.first_error = why;
        close();
        st_.on_attempt_done();
    }

    void on_connected() {
        if (done_) return;
        done_ = true;
        connected_ = true;
        ++st_.connected;
        if (st_.opt.keepalive_s > 0) schedule_ping();
        st_.on_attempt_done();
    }

    void schedule_ping() {
        ping_.expires_after(std::chrono::milliseconds(st_.opt.keepalive_s * 500));
        ping_.async_wait([self = self()](const error_code& ec) {
            if (ec || self->closed()) return;
            mqtt_encode_pingreq(self->out_);
            self->flush();
            self->schedule_ping();
        });
    }

    std::size_t on_bytes(std::span<const std::uint8_t> in) override {
        if (st_.opt.proto == protocol::mqtt) {
            std::size_t used = 0;
            while (true) {
                const auto r = mqtt_decode(in.subspan(used), 1u << 20);
                const auto* d = std::get_if<mqtt_decoded>(&r);
                if (!d) {
                    if (std::holds_alternative<mqtt_malformed>(r)) attempt_failed("malformed packet");
                    return used;
                }
                used += d->consumed;
                if (d->packet.type == mqtt_type::connack) {
                    const auto rc = mqtt_parse_connack(d->packet);
                    if (!rc || *rc != 0) {
                        attempt_failed("CONNACK return code " + std::to_string(rc.value_or(255)));
                        return used;
                    }
                    on_connected();
                }
            }
        }
        using namespace sb::stomp;
        std::size_t used = 0;
        while (true) {
            const auto r = decode(in.subspan(used), limits_, version::v1_2, frame_, scratch_);
            if (const auto* hb = std::get_if<heartbeat>(&r)) {
                used += hb->consumed;
                continue;
            }
            const auto* d = std::get_if<decoded>(&r);
            if (!d) {
                if (std::holds_alternative<decode_error>(r)) attempt_failed("undecodable frame");
                return used;
            }
            used += d->consumed;
            if (frame_.cmd == command::connected) on_connected();
            else if (frame_.cmd == command::error) {
                attempt_failed("ERROR frame: " + std::string(frame_.get("message").value_or("")));
                return used;
            }
        }
    }

    void on_io_error(const error_code& ec, std::string_view op) override {
        if (connected_) ++st_.dropped;
        else attempt_failed(std::string(op) + ": " + ec.message());
    }

    idle_state& st_;
    const std::uint32_t index_;
    asio::steady_timer ping_;
    bool done_ = false;
    bool connected_ = false;
    sb::stomp::limits limits_{};
    sb::stomp::frame frame_;
    std::string scratch_;
};

}  // namespace

int run_idle(const idle_options& o) {
    const std::uint64_t fd_limit = raise_fd_limit();
    if (fd_limit < o.connections + 64ull) {
        std::cerr << "switchboard-bench idle: the open-file limit is " << fd_limit << ", below " << o.connections
                  << " connections; raise it (ulimit -n) first\n";
        return exit_usage;
    }
    asio::io_context ioc{1};
    idle_state st{o, {}, 0, 0, 0, 0, 0, {}, {}};
    {
        tcp::resolver resolver(ioc);
        error_code ec;
        const auto found = resolver.resolve(o.host, std::to_string(o.port), ec);
        if (ec || found.empty()) {
            std::cerr << "switchboard-bench idle: cannot resolve " << o.host << "\n";
            return exit_error;
        }
        st.endpoint = found.begin()->endpoint();
    }

    std::optional<std::uint64_t> rss_before, rss_after;
    if (o.broker_pid > 0) {
        rss_before = read_rss_kb(o.broker_pid);
        if (!rss_before) {
            std::cerr << "switchboard-bench idle: no /proc/" << o.broker_pid << "/status\n";
            return exit_usage;
        }
    }

    std::vector<std::shared_ptr<idle_conn>> conns;
    conns.reserve(o.connections);
    const std::uint64_t t_start = now_ns();
    std::uint64_t t_connected = 0;
    bool timed_out = false;
    asio::steady_timer phase(ioc), hard(ioc), bye(ioc);

    auto finish = [&] {
        phase.cancel();
        hard.cancel();
        for (auto& c : conns) c->stop();
        // Closing is bounded: whatever has not said goodbye in 2 s is dropped with the loop.
        bye.expires_after(std::chrono::seconds(2));
        bye.async_wait([&](const error_code& ec) { if (!ec) ioc.stop(); });
    };
    auto launch = [&] {
        auto c = std::make_shared<idle_conn>(ioc, st, st.launched++);
        conns.push_back(c);
        c->start();
    };
    st.on_attempt_done = [&] {
        ++st.finished;
        if (st.launched < o.connections) return launch();
        if (st.finished < o.connections) return;
        t_connected = now_ns();
        if (!o.quiet)
            std::fprintf(stderr, "[idle] %u connected, %u failed in %.2f s; holding %.0f s\n", st.connected, st.failed,
                         static_cast<double>(t_connected - t_start) / 1e9, o.hold_s);
        // Let the broker finish its per-connection set-up before reading its memory.
        phase.expires_after(std::chrono::seconds(1));
        phase.async_wait([&](const error_code& ec) {
            if (ec) return;
            if (o.broker_pid > 0) rss_after = read_rss_kb(o.broker_pid);
            phase.expires_after(std::chrono::milliseconds(static_cast<long long>(std::max(0.0, o.hold_s - 1) * 1000)));
            phase.async_wait([&](const error_code& ec2) { if (!ec2) finish(); });
        });
    };
    hard.expires_after(std::chrono::milliseconds(static_cast<long long>(o.timeout_s * 1000)));
    hard.async_wait([&](const error_code& ec) {
        if (ec) return;
        timed_out = true;
        finish();
    });
    for (std::uint32_t i = 0; i < std::min(o.concurrency, o.connections); ++i) launch();

    ioc.run();

    const double connect_s = t_connected ? static_cast<double>(t_connected - t_start) / 1e9 : 0;
    nlohmann::json j;
    j["label"] = o.label;
    j["mode"] = "idle";
    j["protocol"] = to_string(o.proto);
    j["connections"] = o.connections;
    j["connected"] = st.connected;
    j["failed"] = st.failed;
    j["dropped"] = st.dropped;
    j["first_error"] = st.first_error;
    j["connect_s"] = connect_s;
    j["connects_per_s"] = connect_s > 0 ? st.connected / connect_s : 0;
    j["timed_out"] = timed_out;
    j["broker_pid"] = o.broker_pid;
    if (rss_before) j["rss_before_kb"] = *rss_before;
    if (rss_after) j["rss_after_kb"] = *rss_after;
    double per_conn = 0;
    if (rss_before && rss_after && st.connected > 0)
        per_conn = (static_cast<double>(*rss_after) - static_cast<double>(*rss_before)) * 1024.0 / st.connected;
    j["rss_bytes_per_connection"] = per_conn;

    std::printf("idle        %s  %u connections to %s:%u  concurrency %u\n", std::string(to_string(o.proto)).c_str(),
                o.connections, o.host.c_str(), o.port, o.concurrency);
    std::printf("connected   %u (failed %u, dropped %u) in %.3f s   %.0f connects/s\n", st.connected, st.failed,
                st.dropped, connect_s, connect_s > 0 ? st.connected / connect_s : 0.0);
    if (rss_before && rss_after)
        std::printf("broker rss  %llu KiB -> %llu KiB   %.0f bytes per connection\n",
                    static_cast<unsigned long long>(*rss_before), static_cast<unsigned long long>(*rss_after), per_conn);
    if (!st.first_error.empty()) std::printf("first error %s\n", st.first_error.c_str());
    if (timed_out) std::printf("result      TIMED OUT after %.0f s\n", o.timeout_s);
    if (!o.json_path.empty() && !write_json(o.json_path, j)) return exit_error;

    conns.clear();
    if (timed_out) return exit_timeout;
    if (st.connected < o.connections) return exit_error;
    return exit_ok;
}

}  // namespace sb::bench
