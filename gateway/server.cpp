// gateway/server.cpp — start-up, accept loops, graceful shutdown.
//
// Threads: the main thread runs the acceptors and the signal set; each worker runs its own
// io_context. An accepted socket is bound to the next worker (round-robin) and its session is
// created and lives on that worker.
#include "gateway/server.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <thread>

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "adapters/mqtt/session.hpp"
#include "adapters/stomp/session.hpp"
#include "core/broker.hpp"
#include "core/security/authenticator.hpp"
#include "core/store/journal_store.hpp"
#include "core/store/memory_store.hpp"
#include "gateway/admin.hpp"
#include "gateway/backend.hpp"
#include "gateway/front.hpp"
#include "gateway/health_check.hpp"
#include "gateway/log.hpp"
#include "gateway/tcp_transport.hpp"
#include "gateway/tls_transport.hpp"
#include "gateway/worker.hpp"

namespace sb::gateway {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::string host_port(const std::string& address, std::uint16_t port) {
    const bool v6 = address.find(':') != std::string::npos;
    return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

std::string_view protocol_name(protocol p) {
    switch (p) {
    case protocol::stomp: return "stomp";
    case protocol::mqtt: return "mqtt";
    case protocol::automatic: return "auto";
    case protocol::tcp: return "tcp";
    }
    return "?";
}

using session_factory =
    std::function<std::shared_ptr<net::session>(std::unique_ptr<net::transport>, std::uint64_t conn)>;

struct shared_state {
    std::atomic<std::uint64_t> next_connection{1};
    std::atomic<std::size_t> live_connections{0};
};

class listener {
public:
    // `make` creates the kernel session of a plain STOMP or MQTT listener; `routes` (set when
    // needs_front) takes connections through TLS, detection and routing instead.
    listener(asio::io_context& ctx, const listener_config& cfg, std::vector<std::unique_ptr<worker>>& workers,
             shared_state& shared, session_factory make, std::shared_ptr<front_routes> routes)
        : cfg_(cfg), acceptor_(ctx), workers_(workers), shared_(shared), make_(std::move(make)),
          routes_(std::move(routes)), active_(std::make_shared<std::atomic<std::size_t>>(0)) {}

    // Throws a one-line std::runtime_error naming the listener, its address and port.
    void open() {
        net::error_code ec;
        const tcp::endpoint ep(asio::ip::make_address(cfg_.address, ec), cfg_.port);
        if (!ec) acceptor_.open(ep.protocol(), ec);
        if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) acceptor_.bind(ep, ec);
        if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
        if (ec)
            throw std::runtime_error("listener " + cfg_.name + " cannot listen on " + host_port(cfg_.address, cfg_.port) +
                                     ": " + ec.message());
        log()->info("listener up name={} proto={}{} address={}:{} max_connections={}", cfg_.name,
                    protocol_name(cfg_.proto), cfg_.tls ? "+tls" : "", cfg_.address, cfg_.port, cfg_.max_connections);
        do_accept();
    }

    void close() {
        net::error_code ec;
        acceptor_.close(ec);
    }

private:
    void do_accept() {
        auto& w = *workers_[next_worker_++ % workers_.size()];
        acceptor_.async_accept(w.context(), [this, &w](net::error_code ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted) return;
            if (!ec) on_accept(w, std::move(socket));
            else log()->warn("listener={} accept failed: {}", cfg_.name, ec.message());
            do_accept();
        });
    }

    void on_accept(worker& w, tcp::socket socket) {
        // Reads must never block a worker: a socket that cannot be made non-blocking is closed.
        net::error_code nb;
        socket.non_blocking(true, nb);
        if (nb) {
            log()->warn("listener={} connection closed: cannot set non-blocking mode: {}", cfg_.name, nb.message());
            socket.close(nb);
            return;
        }
        if (active_->load() >= cfg_.max_connections) {
            ++refused_;
            log()->warn("listener={} reason=max_connections limit={} refused={}", cfg_.name,
                        cfg_.max_connections, refused_);
            net::error_code ec;
            socket.close(ec);
            return;
        }
        ++*active_;
        ++shared_.live_connections;
        const std::uint64_t conn = shared_.next_connection++;
        // The session is created on its worker: its timers and socket belong to that loop.
        asio::post(w.context(), [this, &w, conn, socket = std::move(socket), active = active_]() mutable {
            auto on_destroy = [&w, conn, active, shared = &shared_]() {
                --*active;
                --shared->live_connections;
                w.remove_session(conn);
            };
            std::unique_ptr<socket_transport> t;
            if (routes_ && routes_->tls) t = make_tls_transport(std::move(socket), routes_->tls, std::move(on_destroy));
            else t = std::make_unique<tcp_transport>(std::move(socket), std::move(on_destroy));
            log()->debug("conn={} peer={} listener={} accepted", conn, t->peer(), cfg_.name);
            auto s = routes_ ? make_front(std::move(t), routes_, conn) : make_(std::move(t), conn);
            w.add_session(conn, s);
            s->start();
        });
    }

    const listener_config& cfg_;
    tcp::acceptor acceptor_;
    std::vector<std::unique_ptr<worker>>& workers_;
    shared_state& shared_;
    session_factory make_;
    std::shared_ptr<front_routes> routes_;
    std::shared_ptr<std::atomic<std::size_t>> active_;
    std::size_t next_worker_ = 0;
    std::uint64_t refused_ = 0;
};

stomp::settings stomp_settings(const config& cfg) {
    stomp::settings s;
    s.frame_limits.max_frame_bytes = cfg.stomp.max_frame_bytes;
    s.frame_limits.max_headers = cfg.stomp.max_headers;
    s.frame_limits.max_header_bytes = cfg.stomp.max_header_bytes;
    s.connect_timeout_ms = cfg.stomp.connect_timeout_ms;
    s.heartbeat_floor_ms = cfg.stomp.heartbeat_floor_ms;
    s.heartbeat_grace = cfg.stomp.heartbeat_grace;
    s.output.high_watermark = cfg.stomp.write_high_watermark;
    s.output.low_watermark = std::min(s.output.low_watermark, s.output.high_watermark / 4);
    s.output.stall_timeout = std::chrono::milliseconds(cfg.broker.slow_consumer_timeout_ms);
    s.max_unconfirmed_sends = cfg.stomp.max_unconfirmed_sends;
    s.broker_name = cfg.broker.name;
    return s;
}

mqtt::settings mqtt_settings(const config& cfg) {
    mqtt::settings s;
    s.packet_limits.max_packet_size = cfg.mqtt.max_packet_size;
    s.receive_maximum = cfg.mqtt.receive_maximum;
    s.topic_alias_maximum = cfg.mqtt.topic_alias_maximum;
    s.max_keepalive_s = cfg.mqtt.max_keepalive_s;
    s.connect_timeout_ms = cfg.mqtt.connect_timeout_ms;
    s.max_queued_messages = cfg.mqtt.max_queued_messages;
    s.max_session_expiry_s = cfg.mqtt.max_session_expiry_s;
    s.retain_available = cfg.mqtt.retain_available;
    s.default_prefetch = cfg.broker.default_prefetch;
    s.output.stall_timeout = std::chrono::milliseconds(cfg.broker.slow_consumer_timeout_ms);
    s.broker_name = cfg.broker.name;
    return s;
}

// Ends expired persistent MQTT sessions once a second, on worker 0 (kernel calls need a worker).
class session_sweeper {
public:
    session_sweeper(worker& w, std::shared_ptr<mqtt::registry> reg) : timer_(w.context()), reg_(std::move(reg)) {}
    void start() {
        timer_.expires_after(std::chrono::seconds(1));
        timer_.async_wait([this](net::error_code ec) {
            if (ec) return;
            mqtt::sweep_expired(*reg_);
            start();
        });
    }
    void stop() { asio::post(timer_.get_executor(), [this] { timer_.cancel(); }); }

private:
    asio::steady_timer timer_;
    std::shared_ptr<mqtt::registry> reg_;
};

core::broker_settings broker_settings(const config& cfg) {
    core::broker_settings b;
    b.name = cfg.broker.name;
    b.max_redeliveries = cfg.broker.max_redeliveries;
    b.dead_letter = cfg.broker.dead_letter == dead_letter_policy::shared ? core::dead_letter_policy::shared
                                                                         : core::dead_letter_policy::per_destination;
    b.default_prefetch = cfg.broker.default_prefetch;
    b.queue_memory_limit = cfg.broker.queue_memory_limit;
    b.topic_max_pending = cfg.broker.topic_max_pending;
    return b;
}

// Why `dir` cannot be the data directory (empty: it can). It exists as a writable directory,
// or the nearest ancestor that exists is one (the journal creates the rest).
std::string data_dir_problem(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path p = fs::absolute(dir, ec);
    if (ec) return ec.message();
    for (bool first = true;; first = false) {
        const auto st = fs::status(p, ec);
        if (ec && ec != std::errc::no_such_file_or_directory) return p.string() + ": " + ec.message();
        if (fs::exists(st)) {
            if (!fs::is_directory(st))
                return first ? "not a directory" : "cannot be created: " + p.string() + " is not a directory";
            if (::access(p.c_str(), W_OK | X_OK) != 0)
                return (first ? "not writable: " : "cannot be created in " + p.string() + ": ") +
                       std::string(std::strerror(errno));
            return {};
        }
        if (!p.has_parent_path() || p.parent_path() == p) return "cannot be created: no existing parent";
        p = p.parent_path();
    }
}

// What run loads from the configuration before it binds ports; check loads the same.
struct resources {
    std::vector<std::unique_ptr<backend>> backends;            // host names resolved
    std::unique_ptr<core::authenticator> auth;                 // the users file read
    std::vector<std::shared_ptr<asio::ssl::context>> tls;      // per listener; null without TLS
};

resources load_resources(const config& cfg) {
    auto fail = [&cfg](const std::string& what) { throw config_error(cfg.source + ": " + what); };
    resources r;
    for (const auto& b : cfg.backends) {
        try {
            r.backends.push_back(std::make_unique<backend>(b));
        } catch (const std::exception& e) {
            fail(e.what());
        }
    }
    try {
        r.auth = core::make_authenticator(cfg.security.allow_anonymous, cfg.security.users_file);
    } catch (const std::exception& e) {
        fail(std::string("security.users_file: ") + e.what());
    }
    for (const auto& l : cfg.listeners) {
        std::shared_ptr<asio::ssl::context> tls;
        try {
            if (l.tls) tls = make_tls_context(l.tls_settings);
        } catch (const std::exception& e) {
            fail("listener " + l.name + ": " + e.what());
        }
        r.tls.push_back(std::move(tls));
    }
    if (cfg.store.type == store_type::journal)
        if (const auto why = data_dir_problem(cfg.store.dir); !why.empty()) fail("store.dir " + cfg.store.dir + ": " + why);
    return r;
}

// The sweeper's and the health checks' timers belong to worker 0's context: they go first.
// Sessions still held by handlers die with their worker, while everything they refer to
// (broker, backends, counters) is still alive.
void stop_workers(std::vector<std::unique_ptr<worker>>& workers, std::unique_ptr<session_sweeper>& sweeper,
                  std::vector<std::unique_ptr<health_checker>>& checkers) {
    for (auto& w : workers) w->stop();
    for (auto& w : workers) w->join();
    sweeper.reset();
    checkers.clear();
    workers.clear();
}

}  // namespace

void check_server(const config& cfg) { (void)load_resources(cfg); }

int run_server(const config& cfg) {
    // splice(2) into a socket whose peer is gone raises SIGPIPE (it takes no MSG_NOSIGNAL): a
    // relay must see EPIPE instead, and never the process die.
    std::signal(SIGPIPE, SIG_IGN);
    // First: relays, checks and sessions on the workers refer to them until the workers are gone.
    resources res = load_resources(cfg);
    auto& backends = res.backends;
    const unsigned n = cfg.workers ? cfg.workers : std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::unique_ptr<worker>> workers;
    std::vector<core::executor*> executors;
    for (unsigned i = 0; i < n; ++i) {
        workers.push_back(std::make_unique<worker>(i));
        executors.push_back(workers.back().get());
    }

    auto& auth = res.auth;
    std::unique_ptr<core::store> store_owner;
    if (cfg.store.type == store_type::journal) {
        core::journal_settings js;
        js.dir = cfg.store.dir;
        js.sync = cfg.store.sync == sync_policy::always  ? core::sync_mode::always
                  : cfg.store.sync == sync_policy::batch ? core::sync_mode::batch
                                                         : core::sync_mode::never;
        js.batch_ms = cfg.store.batch_ms;
        js.segment_bytes = cfg.store.segment_size;
        try {
            store_owner = std::make_unique<core::journal_store>(js);
        } catch (const std::exception& e) {
            log()->error("store: {}", e.what());
            return 1;
        }
    } else {
        store_owner = std::make_unique<core::memory_store>();
    }
    core::store& store = *store_owner;
    core::broker broker(broker_settings(cfg), executors, store);
    const auto started = std::chrono::steady_clock::now();
    std::size_t recovered = 0;
    try {
        recovered = broker.recover();
    } catch (const std::exception& e) {
        log()->error("store: recovery failed: {}", e.what());
        return 1;
    }
    const auto took_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    if (auto* j = dynamic_cast<core::journal_store*>(&store)) {
        const auto& r = j->last_recovery();
        log()->info("store=journal dir={} sync={} recovered={} records={} segments={} corrupt={} torn_bytes={} in {} ms",
                    cfg.store.dir, cfg.store.sync == sync_policy::always ? "always"
                                   : cfg.store.sync == sync_policy::batch ? "batch" : "never",
                    recovered, r.records, r.segments, r.corrupt_records, r.torn_bytes, took_ms);
        if (r.corrupt_records) log()->error("store: skipped {} corrupted journal records in {}", r.corrupt_records, cfg.store.dir);
    } else {
        log()->info("store={} recovered={} in {} ms", store.kind(), recovered, took_ms);
    }

    auto stomp_cfg = std::make_shared<const stomp::settings>(stomp_settings(cfg));
    auto mqtt_cfg = std::make_shared<const mqtt::settings>(mqtt_settings(cfg));
    auto mqtt_registry = mqtt::make_registry(broker);
    mqtt::restore_sessions(*mqtt_registry, broker.recovered_subscriptions());
    auto sweeper = std::make_unique<session_sweeper>(*workers.front(), mqtt_registry);
    // Health checks run on worker 0, like the sweeper: a few timers and short connections.
    std::vector<std::unique_ptr<health_checker>> checkers;
    for (auto& b : backends) {
        checkers.push_back(std::make_unique<health_checker>(workers.front()->context().get_executor(), *b));
        log()->info("backend {} balance={} servers={} check={} every {} ms (fall {} rise {})", b->config().name,
                    b->config().balance == balance_mode::first ? "first"
                    : b->config().balance == balance_mode::roundrobin ? "roundrobin" : "leastconn",
                    b->servers().size(), check_type_name(b->config().check.type), b->config().check.interval_ms,
                    b->config().check.fall, b->config().check.rise);
    }
    shared_state shared;
    asio::io_context main_ctx{1};
    std::vector<std::unique_ptr<listener>> listeners;
    for (std::size_t li = 0; li < cfg.listeners.size(); ++li) {
        const auto& l = cfg.listeners[li];
        session_factory make;
        switch (l.proto) {
        case protocol::stomp:
            make = [&, stomp_cfg](std::unique_ptr<net::transport> t, std::uint64_t conn) {
                return stomp::make_session(std::move(t), stomp_cfg, broker, *auth, conn);
            };
            break;
        case protocol::mqtt:
            make = [&, mqtt_cfg](std::unique_ptr<net::transport> t, std::uint64_t conn) {
                return mqtt::make_session(std::move(t), mqtt_cfg, broker, *auth, mqtt_registry, conn);
            };
            break;
        case protocol::automatic:
        case protocol::tcp:
            break;
        }
        std::shared_ptr<front_routes> routes;
        if (needs_front(l)) {
            routes = std::make_shared<front_routes>();
            routes->cfg = &l;
            routes->tls = res.tls[li];
            routes->kernel = [&, stomp_cfg, mqtt_cfg](wire w, std::unique_ptr<net::transport> t, std::uint64_t conn) {
                return w == wire::mqtt ? mqtt::make_session(std::move(t), mqtt_cfg, broker, *auth, mqtt_registry, conn)
                                       : stomp::make_session(std::move(t), stomp_cfg, broker, *auth, conn);
            };
            routes->backend_named = [&backends](const std::string& name) -> backend* {
                for (auto& b : backends)
                    if (b->config().name == name) return b.get();
                return nullptr;   // never: the config loader checked every name
            };
            routes->adopt = [](std::uint64_t conn, const std::shared_ptr<net::session>& s) {
                static_cast<worker*>(core::executor::current())->add_session(conn, s);
            };
        }
        listeners.push_back(std::make_unique<listener>(main_ctx, l, workers, shared, std::move(make), std::move(routes)));
    }
    for (auto& w : workers) w->start();
    asio::post(workers.front()->context(), [s = sweeper.get()] { s->start(); });
    for (auto& c : checkers) c->start();
    std::unique_ptr<admin_server> admin;
    if (cfg.admin.port)
        admin = std::make_unique<admin_server>(
            main_ctx, cfg.admin,
            admin_view{[&shared] { return shared.live_connections.load(); }, &backends,
                       [&broker, w = workers.front().get()](admin_view::destinations_done done) {
                           asio::post(w->context(), [&broker, done = std::move(done)]() mutable {
                               broker.stats(std::move(done));
                           });
                       }});
    try {
        for (auto& l : listeners) l->open();
        if (admin) admin->open();
    } catch (const std::exception& e) {
        log()->error("{}", e.what());
        stop_workers(workers, sweeper, checkers);
        return 1;
    }
    log()->info("switchboard started workers={} listeners={} config={}", n, listeners.size(), cfg.source);

    asio::signal_set signals(main_ctx, SIGINT, SIGTERM);
    signals.async_wait([&](net::error_code ec, int sig) {
        if (ec) return;
        log()->info("signal={} stopping: closing listeners and {} connections", sig, shared.live_connections.load());
        for (auto& l : listeners) l->close();
        if (admin) admin->close();
        sweeper->stop();
        for (auto& c : checkers) c->stop();
        for (auto& w : workers) asio::post(w->context(), [&w] { w->stop_sessions(); });
    });
    // Returns once the listeners are closed and their aborted accepts have completed (an
    // accept in progress holds a socket of a worker's context, so it must end first).
    main_ctx.run();

    // Sessions flush, shut down their send side and wait briefly for the peer: bounded.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (shared.live_connections.load() > 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (const auto left = shared.live_connections.load())
        log()->warn("closing {} connections that did not finish in time", left);
    stop_workers(workers, sweeper, checkers);
    log()->info("switchboard stopped");
    return 0;
}

}  // namespace sb::gateway
