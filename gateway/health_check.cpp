// gateway/health_check.cpp — the probes and the timers, connects and reads that run them.
#include "gateway/health_check.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <unistd.h>

#include "gateway/log.hpp"
#include "gateway/passive_health.hpp"

namespace sb::gateway {

namespace asio = boost::asio;
using asio::ip::tcp;

// One server's check loop. Lives on the checker's executor.
struct check_loop : std::enable_shared_from_this<check_loop> {
    using tls_stream = asio::ssl::stream<tcp::socket>;

    check_loop(asio::any_io_executor ex, std::shared_ptr<backend> of, server_state& server, const std::string& client_id,
               std::shared_ptr<asio::ssl::context> tls_context)
        : keep(std::move(of)), b(*keep), s(server), timer(ex), deadline(ex), socket(ex),
          p(make_probe(b.config().check, server.cfg.host, client_id)), tls_ctx(std::move(tls_context)) {}

    // How far the check under way got: a timeout's status names the layer (L4TOUT, L6TOUT, L7TOUT).
    enum class stage { connect, tls, protocol };

    std::shared_ptr<backend> keep;   // a backend replaced by a reload lives while its checks end
    backend& b;
    server_state& s;
    asio::steady_timer timer;      // between checks
    asio::steady_timer deadline;   // of the check under way
    tcp::socket socket;            // plain checks
    probe p;
    std::shared_ptr<asio::ssl::context> tls_ctx;   // check.tls
    std::shared_ptr<tls_stream> tls;               // the attempt's, kept alive by its handlers
    std::string received;
    std::string bye;               // being written when the server passed
    std::chrono::steady_clock::time_point started;
    std::uint64_t attempt = 0;     // completions of an older attempt are ignored
    stage at = stage::connect;
    std::int64_t seen_down_at = 0; // the last mark-down this loop has taken into account
    bool stopped = false;

    tcp::socket& sock() { return tls ? tls->next_layer() : socket; }

    template <class Handler>
    void write(asio::const_buffer data, Handler&& h) {
        if (tls) return asio::async_write(*tls, data, [t = tls, h = std::forward<Handler>(h)](auto ec, auto n) { h(ec, n); });
        asio::async_write(socket, data, std::forward<Handler>(h));
    }
    template <class Handler>
    void read_some(asio::mutable_buffer into, Handler&& h) {
        if (tls) return tls->async_read_some(into, [t = tls, h = std::forward<Handler>(h)](auto ec, auto n) { h(ec, n); });
        socket.async_read_some(into, std::forward<Handler>(h));
    }

    void schedule(std::chrono::milliseconds after) {
        if (stopped) return;
        timer.expires_after(after);
        timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (!ec) self->run();
        });
    }

    void run() {
        if (stopped) return;   // a timer that expired just before stop() (its handler queued)
        const std::uint64_t me = ++attempt;
        received.clear();
        at = stage::connect;
        started = std::chrono::steady_clock::now();
        tls.reset();
        if (tls_ctx) tls = std::make_shared<tls_stream>(socket.get_executor(), *tls_ctx);
        deadline.expires_after(std::chrono::milliseconds(b.config().check.timeout_ms));
        deadline.async_wait([self = shared_from_this(), me](boost::system::error_code ec) {
            if (ec || me != self->attempt) return;
            const auto st = self->at == stage::connect ? check_status::l4tout
                            : self->at == stage::tls   ? check_status::l6tout
                                                       : check_status::l7tout;
            self->finish(me, st, "timeout");
        });
        asio::async_connect(sock(), s.endpoints,
                            [self = shared_from_this(), t = tls, me](boost::system::error_code ec, const tcp::endpoint&) {
                                if (me != self->attempt) return;
                                if (ec) return self->finish(me, check_status::l4con, "connect: " + ec.message());
                                if (self->tls) return self->handshake(me);
                                self->at = stage::protocol;
                                self->send();
                            });
    }

    void handshake(std::uint64_t me) {
        at = stage::tls;
        const auto& c = b.config().check;
        // SNI: the configured name, else the server's host when it is a name (not an address).
        std::string sni = c.tls_sni;
        boost::system::error_code ec;
        if (sni.empty() && (asio::ip::make_address(s.cfg.host, ec), ec)) sni = s.cfg.host;
        if (!sni.empty()) SSL_set_tlsext_host_name(tls->native_handle(), sni.c_str());
        if (c.tls_verify) {
            tls->set_verify_mode(asio::ssl::verify_peer);
            tls->set_verify_callback(asio::ssl::host_name_verification(sni.empty() ? s.cfg.host : sni));
        }
        tls->async_handshake(asio::ssl::stream_base::client, [self = shared_from_this(), t = tls, me](boost::system::error_code hec) {
            if (me != self->attempt) return;
            if (hec) return self->finish(me, check_status::l6rsp, "TLS handshake: " + hec.message());
            self->at = stage::protocol;
            self->send();
        });
    }

    check_status passed() const {
        if (p.conversation) return check_status::l7ok;
        return tls ? check_status::l6ok : check_status::l4ok;
    }

    void send() {
        const std::uint64_t me = attempt;
        if (p.request.empty()) return read_more(me);
        write(asio::buffer(p.request), [self = shared_from_this(), me](boost::system::error_code ec, std::size_t) {
            if (me != self->attempt) return;
            if (ec) return self->finish(me, check_status::l7rsp, "send: " + ec.message());
            self->read_more(me);
        });
    }

    void read_more(std::uint64_t me) {
        std::string why;
        const auto v = p.type == check_type::tcp || p.type == check_type::none ? probe::verdict::up
                                                                                : p.judge(received, why);
        if (v == probe::verdict::up) {
            bye = p.goodbye(received);
            if (bye.empty()) return finish(me, passed(), why.empty() ? "connected" : why);
            // Asynchronous, under the check's deadline: a server that does not take it in time
            // fails the check rather than block the worker. One that already closed (a refused
            // CONNACK) answered: up all the same.
            return write(asio::buffer(bye), [self = shared_from_this(), me, why](boost::system::error_code, std::size_t) {
                if (me != self->attempt) return;
                self->finish(me, self->passed(), why.empty() ? "connected" : why);
            });
        }
        if (v == probe::verdict::down) return finish(me, refused_status(), why);
        if (received.size() >= 64 * 1024) return finish(me, check_status::l7rsp, "reply too large");
        auto buf = std::make_shared<std::array<char, 4096>>();
        read_some(asio::buffer(*buf), [self = shared_from_this(), me, buf](boost::system::error_code ec, std::size_t n) {
            if (me != self->attempt) return;
            self->received.append(buf->data(), n);
            if (ec && n == 0) {
                std::string seen;
                if (!self->received.empty() && self->p.judge(self->received, seen) == probe::verdict::down)
                    return self->finish(me, self->refused_status(), seen);
                return self->finish(me, check_status::l7rsp,
                                    ec == asio::error::eof || ec == asio::ssl::error::stream_truncated
                                        ? "closed by the server"
                                        : "read: " + ec.message());
            }
            self->read_more(me);
        });
    }

    // A reply judged down: an HTTP status other than the expected one is L7STS, anything else L7RSP.
    check_status refused_status() const {
        return p.type == check_type::http && received.starts_with("HTTP/") ? check_status::l7sts : check_status::l7rsp;
    }

    void finish(std::uint64_t me, check_status st, const std::string& why) {
        if (me != attempt) return;
        ++attempt;   // late completions of this one are ignored from now on
        deadline.cancel();
        boost::system::error_code ec;
        sock().close(ec);
        tls.reset();   // its pending handlers hold it until they have run
        const bool ok = st == check_status::l4ok || st == check_status::l6ok || st == check_status::l7ok;
        const auto took = std::chrono::steady_clock::now() - started;
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
        s.set_check_result(st, static_cast<std::uint32_t>(us), why);
        const auto& c = b.config().check;
        // Taken down by the relays since the last check (observe: layer4): `rise` counts from
        // there, and a check that began before says nothing about the server now.
        if (const auto down_at = s.passive.down_at_ns.load(); down_at != seen_down_at) {
            seen_down_at = down_at;
            s.ok_streak = 0;
            s.fail_streak = std::max(s.fail_streak, c.fall);
            if (ok && started.time_since_epoch().count() < down_at) {
                ++s.checks_ok;
                log()->debug("backend={} server={} check passed but began before the server was marked down: not "
                             "counted towards rise", b.config().name, s.cfg.name);
                return schedule_next(took);
            }
        }
        if (ok) {
            ++s.checks_ok;
            s.check_latency_us = static_cast<std::uint32_t>(us);
            s.fail_streak = 0;
            ++s.ok_streak;
            if (!s.up.load() && s.ok_streak >= c.rise) {
                s.up = true;
                ++s.transitions;
                b.came_up(s);
                log()->warn("backend={} server={} is UP: check={} status={} {} in {} us ({} passed)", b.config().name,
                            s.cfg.name, check_type_name(c.type), check_status_name(st), why, us, s.ok_streak);
                if (const std::size_t closed = b.close_outranked_by(s))
                    log()->warn("backend={} server={} on_server_up=close_backups: closing {} relayed connections on "
                                "the servers it outranks", b.config().name, s.cfg.name, closed);
            }
        } else {
            ++s.checks_failed;
            s.ok_streak = 0;
            ++s.fail_streak;
            log()->debug("backend={} server={} check failed: status={} {} in {} us", b.config().name, s.cfg.name,
                         check_status_name(st), why, us);
            if (s.up.load() && s.fail_streak >= c.fall) {
                mark_down(b, s,
                          "check=" + std::string(check_type_name(c.type)) + " status=" +
                              std::string(check_status_name(st)) + " " + why + " (" + std::to_string(s.fail_streak) +
                              " failed)",
                          false);
                seen_down_at = s.passive.down_at_ns.load();   // our own mark-down
            }
        }
        schedule_next(took);
    }

    // Checks start every `interval` (a timed-out check does not push the next one back):
    // a server that stops answering is down within fall x interval.
    void schedule_next(std::chrono::steady_clock::duration took) {
        const auto next = std::chrono::milliseconds(b.config().check.interval_ms) -
                          std::chrono::duration_cast<std::chrono::milliseconds>(took);
        schedule(std::max(next, std::chrono::milliseconds(0)));
    }

    void stop() {
        stopped = true;
        ++attempt;
        timer.cancel();
        deadline.cancel();
        boost::system::error_code ec;
        sock().close(ec);
        tls.reset();
    }
};

struct health_checker::impl {
    asio::any_io_executor ex;
    std::vector<std::shared_ptr<check_loop>> loops;
};

health_checker::health_checker(asio::any_io_executor ex, std::shared_ptr<backend> of) : impl_(std::make_shared<impl>()) {
    impl_->ex = ex;
    const backend& b = *of;
    const auto& c = b.config().check;
    if (c.type == check_type::none) return;
    // One TLS context per backend (check.tls): verification against `ca`, else the system's.
    std::shared_ptr<asio::ssl::context> tls;
    if (c.tls) {
        tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
        tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
        if (c.tls_verify) {
            // The backend checked that the file reads; one that is not PEM fails every check (L6RSP).
            boost::system::error_code ec;
            if (!c.tls_ca_file.empty()) tls->load_verify_file(c.tls_ca_file, ec);
            else tls->set_default_verify_paths(ec);
            if (ec)
                log()->error("backend={} check.ca {}: {}; the TLS checks cannot verify", b.config().name,
                             c.tls_ca_file, ec.message());
        }
    }
    std::size_t i = 0;
    for (const auto& s : b.servers()) {
        const std::string id = "switchboard-check-" + std::to_string(::getpid()) + "-" + b.config().name + "-" + std::to_string(i++);
        impl_->loops.push_back(std::make_shared<check_loop>(ex, of, *s, id.substr(0, 100), tls));
    }
}

health_checker::~health_checker() = default;

void health_checker::start() {
    asio::post(impl_->ex, [i = impl_] {
        for (auto& l : i->loops) l->run();
    });
}

void health_checker::stop() {
    asio::post(impl_->ex, [i = impl_] {
        for (auto& l : i->loops) l->stop();
    });
}

}  // namespace sb::gateway
