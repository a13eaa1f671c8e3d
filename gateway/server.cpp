// gateway/server.cpp — start-up, accept loops, SIGHUP reloads, readiness, graceful shutdown.
//
// Threads: the main thread runs the acceptors, the admin endpoint and the signal sets; each
// worker runs its own io_context. An accepted socket is bound to the next worker (round-robin)
// and its session is created and lives on that worker.
#include "gateway/server.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <mutex>
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
#include "core/security/auth_pool.hpp"
#include "core/security/authenticator.hpp"
#include "core/store/journal_store.hpp"
#include "core/store/memory_store.hpp"
#include "gateway/admin.hpp"
#include "gateway/backend.hpp"
#include "gateway/engine_driver.hpp"
#include "gateway/front.hpp"
#include "gateway/health_check.hpp"
#include "gateway/log.hpp"
#include "gateway/tcp_transport.hpp"
#include "gateway/tls_transport.hpp"
#include "gateway/worker.hpp"

#include <spdlog/spdlog.h>

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
          routes_(std::move(routes)), active_(std::make_shared<std::atomic<std::size_t>>(0)), retry_(ctx) {}

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
        accepting_ = true;
        log()->info("listener up name={} proto={}{} address={}:{} max_connections={}", cfg_.name,
                    protocol_name(cfg_.proto), cfg_.tls ? "+tls" : "", cfg_.address, cfg_.port, cfg_.max_connections);
        do_accept();
    }

    void close() {
        accepting_ = false;
        retry_.cancel();
        net::error_code ec;
        acceptor_.close(ec);
    }

    // Main thread (the admin's): open, and its last accept did not fail.
    bool accepting() const noexcept { return accepting_; }
    const listener_config& config() const noexcept { return cfg_; }

    // New connections get `ctx` (SIGHUP reloaded the certificate); those accepted before keep
    // theirs. Main thread.
    void set_tls(std::shared_ptr<asio::ssl::context> ctx) {
        auto r = std::make_shared<front_routes>(*routes_);
        r->tls = std::move(ctx);
        routes_ = std::move(r);
    }

private:
    void do_accept() {
        auto& w = *workers_[next_worker_++ % workers_.size()];
        acceptor_.async_accept(w.context(), [this, &w](net::error_code ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
            if (!ec) {
                on_accept(w, std::move(socket));
                return do_accept();
            }
            // Out of file descriptors (EMFILE, ENFILE) or memory: the connection stays in the
            // backlog and another accept now would fail the same way at once, in a loop. The
            // listener pauses (not ready meanwhile) and tries again every 100 ms.
            log()->warn("listener={} accept failed: {}; not accepting, retrying every 100 ms", cfg_.name, ec.message());
            accepting_ = false;
            pause();
        });
    }

    void pause() {
        retry_.expires_after(std::chrono::milliseconds(100));
        retry_.async_wait([this](net::error_code ec) {
            if (!ec && acceptor_.is_open()) retry();
        });
    }

    // One non-blocking accept decides: a connection is taken, or none is waiting (the next one
    // is awaited as usual): accepting again; the same failure: paused for another 100 ms.
    void retry() {
        auto& w = *workers_[next_worker_++ % workers_.size()];
        tcp::socket socket(w.context());
        net::error_code ec;
        acceptor_.non_blocking(true, ec);
        if (!ec) acceptor_.accept(socket, ec);
        if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
            log()->debug("listener={} accept failed again: {}", cfg_.name, ec.message());
            return pause();
        }
        log()->warn("listener={} accepting again", cfg_.name);
        accepting_ = true;
        if (!ec) on_accept(w, std::move(socket));
        do_accept();
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
        asio::post(w.context(), [this, &w, conn, socket = std::move(socket), active = active_, routes = routes_]() mutable {
            auto on_destroy = [&w, conn, active, shared = &shared_]() {
                --*active;
                --shared->live_connections;
                w.remove_session(conn);
            };
            std::unique_ptr<socket_transport> t;
            if (routes && routes->tls) t = make_tls_transport(std::move(socket), routes->tls, std::move(on_destroy));
            else t = std::make_unique<tcp_transport>(std::move(socket), std::move(on_destroy));
            log()->debug("conn={} peer={} listener={} accepted", conn, t->peer(), cfg_.name);
            auto s = routes ? make_front(std::move(t), std::move(routes), conn) : make_(std::move(t), conn);
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
    asio::steady_timer retry_;   // after a failed accept
    bool accepting_ = false;
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
    s.max_unconfirmed_sends = s.receive_maximum;   // reading stops there (see mqtt::settings)
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

// The users check of the running configuration. Sessions hold a reference to this one for
// their life; SIGHUP swaps what it delegates to (new logins see the new users file).
class reloadable_authenticator final : public core::authenticator {
public:
    explicit reloadable_authenticator(std::shared_ptr<const core::authenticator> a) : current_(std::move(a)) {}

    std::optional<core::principal> authenticate(std::string_view user,
                                                 std::string_view password) const noexcept override {
        std::shared_ptr<const core::authenticator> a;
        {
            std::lock_guard lock(mutex_);
            a = current_;
        }
        return a->authenticate(user, password);
    }

    // Asked by core::auth_pool before authenticate(): whether the authenticator of the moment
    // hashes (a reload may swap one that does for one that does not; either answer is safe).
    bool hashes(std::string_view user) const noexcept override {
        std::shared_ptr<const core::authenticator> a;
        {
            std::lock_guard lock(mutex_);
            a = current_;
        }
        return a->hashes(user);
    }

    void replace(std::shared_ptr<const core::authenticator> a) {
        std::lock_guard lock(mutex_);
        current_ = std::move(a);
    }

private:
    mutable std::mutex mutex_;
    std::shared_ptr<const core::authenticator> current_;
};

// The backends running now, by name, as the workers see them (a reload replaces entries; a
// relay keeps the backend it started with).
class backend_table {
public:
    std::shared_ptr<backend> find(const std::string& name) const {
        std::lock_guard lock(mutex_);
        for (const auto& b : list_)
            if (b->config().name == name) return b;
        return nullptr;
    }
    void set(std::vector<std::shared_ptr<backend>> list) {
        std::lock_guard lock(mutex_);
        list_ = std::move(list);
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::shared_ptr<backend>> list_;
};

std::shared_ptr<backend> named(const std::vector<std::shared_ptr<backend>>& list, const std::string& name) {
    for (const auto& b : list)
        if (b->config().name == name) return b;
    return nullptr;
}

void log_backend(const backend& b) {
    log()->info("backend {} balance={} servers={} check={} every {} ms (fall {} rise {}){}", b.config().name,
                b.config().balance == balance_mode::first        ? "first"
                : b.config().balance == balance_mode::roundrobin ? "roundrobin"
                                                                 : "leastconn",
                b.servers().size(), check_type_name(b.config().check.type), b.config().check.interval_ms,
                b.config().check.fall, b.config().check.rise,
                b.config().on_server_up == server_up_action::close_backups ? " on_server_up=close_backups" : "");
}

// The backends a listener's connections can reach, and whether the kernel is one of the places.
struct listener_targets {
    bool kernel = false;
    std::vector<std::string> backends;
};

listener_targets targets_of(const listener_config& l) {
    std::vector<std::optional<wire>> wires;
    switch (l.proto) {
    case protocol::stomp: wires = {wire::stomp}; break;
    case protocol::mqtt: wires = {wire::mqtt}; break;
    case protocol::tcp: wires = {std::nullopt}; break;
    case protocol::automatic:
        for (std::size_t i = 0; i < wire_count; ++i) wires.push_back(static_cast<wire>(i));
        break;
    }
    listener_targets t;
    for (const auto& w : wires) {
        const auto r = route_for(l, w);
        if (!r) continue;
        if (r->to_kernel()) t.kernel = true;
        else if (std::find(t.backends.begin(), t.backends.end(), r->backend) == t.backends.end())
            t.backends.push_back(r->backend);
    }
    return t;
}

// What SIGHUP cannot apply: one line per change ("listener stomp: 127.0.0.1:61613 -> ...").
std::vector<std::string> changes_needing_restart(const config& now, const config& next) {
    std::vector<std::string> out;
    if (now.workers != next.workers) out.push_back("workers");
    if (!(now.broker == next.broker)) out.push_back("broker");
    if (!(now.store == next.store)) out.push_back("store");
    if (now.security.auth_threads != next.security.auth_threads) out.push_back("security.auth_threads");
    if (!(now.stomp == next.stomp)) out.push_back("stomp");
    if (!(now.mqtt == next.mqtt)) out.push_back("mqtt");
    if (!(now.admin == next.admin)) out.push_back("admin");
    for (const auto& n : next.listeners) {
        const auto o = std::find_if(now.listeners.begin(), now.listeners.end(),
                                    [&n](const listener_config& l) { return l.name == n.name; });
        if (o == now.listeners.end()) {
            out.push_back("listener " + n.name + " (new)");
            continue;
        }
        if (o->address != n.address || o->port != n.port) {
            out.push_back("listener " + n.name + " address " + host_port(o->address, o->port) + " -> " +
                          host_port(n.address, n.port));
            continue;
        }
        listener_config a = *o, b = n;   // the TLS files are reloaded, not a restart
        a.tls_settings = b.tls_settings = {};
        if (!(a == b)) out.push_back("listener " + n.name);
    }
    for (const auto& o : now.listeners)
        if (std::none_of(next.listeners.begin(), next.listeners.end(),
                         [&o](const listener_config& l) { return l.name == o.name; }))
            out.push_back("listener " + o.name + " (removed)");
    return out;
}

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
    std::vector<std::shared_ptr<backend>> backends;            // host names resolved
    std::unique_ptr<core::authenticator> auth;                 // the users file read
    std::vector<std::shared_ptr<asio::ssl::context>> tls;      // per listener; null without TLS
};

resources load_resources(const config& cfg) {
    auto fail = [&cfg](const std::string& what) { throw config_error(cfg.source + ": " + what); };
    resources r;
    for (const auto& b : cfg.backends) {
        try {
            r.backends.push_back(std::make_shared<backend>(b));
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

// What SIGHUP may change while every connection stays: the log level, the users (security),
// the TLS certificates of the listeners, the backends (servers, checks, every setting).
// Everything else is logged as needing a restart and not applied.
struct reloadable {
    config running;                                        // as started, plus what reloads applied
    reloadable_authenticator auth;
    std::vector<std::shared_ptr<backend>> backends;        // main thread (the admin reads it there)
    backend_table table;                                   // the workers' view of `backends`
    std::vector<std::unique_ptr<health_checker>> checkers; // one per backend, same order
};

// Reads running.source again and applies what it can. Main thread. Nothing is applied unless
// the whole file is valid and everything it names (users file, certificates, server addresses)
// loads; otherwise the error is logged and the running configuration stays.
template <class Listeners>
void reload(reloadable& live, Listeners& listeners, const asio::any_io_executor& checks) {
    const std::string path = live.running.source;
    if (path == embedded_source_name) {
        log()->warn("SIGHUP: running the embedded default configuration (no -c file): nothing to reload");
        return;
    }
    log()->info("SIGHUP: reloading {}", path);
    // Loaded as `run` loads it (users file, certificates, server addresses, data directory).
    config next;
    resources loaded;
    std::vector<std::pair<std::size_t, std::shared_ptr<asio::ssl::context>>> certs;   // listener index
    try {
        next = load_config_file(path);
        loaded = load_resources(next);
        for (std::size_t i = 0; i < listeners.size(); ++i) {
            const auto& l = listeners[i]->config();
            if (!l.tls) continue;
            const auto n = std::find_if(next.listeners.begin(), next.listeners.end(),
                                        [&l](const listener_config& c) { return c.name == l.name && c.tls; });
            if (n != next.listeners.end()) {
                certs.emplace_back(i, loaded.tls[std::size_t(n - next.listeners.begin())]);
                continue;
            }
            try {   // the file has it without TLS now (a restart applies that): same files again
                certs.emplace_back(i, make_tls_context(live.running.listeners[i].tls_settings));
            } catch (const std::exception& e) {
                throw std::runtime_error("listener " + l.name + ": " + e.what());
            }
        }
    } catch (const std::exception& e) {
        log()->error("reload failed: {}; the running configuration stays", e.what());
        return;
    }
    std::shared_ptr<const core::authenticator> auth = std::move(loaded.auth);
    std::vector<std::shared_ptr<backend>> backends;   // an unchanged one keeps running
    for (std::size_t k = 0; k < next.backends.size(); ++k) {
        auto old = named(live.backends, next.backends[k].name);
        backends.push_back(old && old->config() == next.backends[k] ? old : loaded.backends[k]);
    }
    // The running listeners keep routing to the backends they named at start.
    for (const auto& old : live.backends) {
        if (named(backends, old->config().name)) continue;
        for (const auto& l : listeners) {
            const auto t = targets_of(l->config());
            if (std::find(t.backends.begin(), t.backends.end(), old->config().name) == t.backends.end()) continue;
            log()->warn("reload: backend {} is gone from the file but listener {} routes to it: kept until a restart",
                        old->config().name, l->config().name);
            backends.push_back(old);
            break;
        }
    }
    for (const auto& what : changes_needing_restart(live.running, next))
        log()->warn("reload: {} changed: needs a restart, not applied", what);

    // Everything loaded: apply.
    if (next.log.level != live.running.log.level) {
        log()->info("reload: log level {} -> {}", live.running.log.level, next.log.level);
        for (std::size_t i = 0; i < log_levels.size(); ++i)   // the loader checked the name
            if (log_levels[i] == next.log.level) spdlog::set_level(static_cast<spdlog::level::level_enum>(i));
        live.running.log = next.log;
    }
    live.auth.replace(auth);
    const auto auth_threads = live.running.security.auth_threads;   // the pool's threads stay
    live.running.security = next.security;
    live.running.security.auth_threads = auth_threads;
    if (auto* u = dynamic_cast<const core::users_authenticator*>(auth.get()))
        log()->info("reload: users file {} ({} users), allow_anonymous={}", next.security.users_file, u->user_count(),
                    next.security.allow_anonymous);
    for (auto& [i, ctx] : certs) {
        listeners[i]->set_tls(std::move(ctx));
        const auto n = std::find_if(next.listeners.begin(), next.listeners.end(),
                                    [&](const listener_config& c) { return c.name == listeners[i]->config().name && c.tls; });
        if (n != next.listeners.end()) live.running.listeners[i].tls_settings = n->tls_settings;
        log()->info("reload: listener {} TLS certificate {} (new handshakes)", listeners[i]->config().name,
                    live.running.listeners[i].tls_settings.cert_file);
    }
    // Backends: an unchanged one keeps running as it is; a changed one is replaced (its servers'
    // state and counters carried over by name and address); relays keep the one they started on.
    std::vector<std::unique_ptr<health_checker>> checkers;
    for (const auto& b : backends) {
        const auto at = std::find(live.backends.begin(), live.backends.end(), b);
        if (at != live.backends.end()) {
            checkers.push_back(std::move(live.checkers[at - live.backends.begin()]));
            continue;
        }
        if (auto old = named(live.backends, b->config().name)) {
            b->refused = old->refused.load();
            for (const auto& s : b->servers())
                for (const auto& o : old->servers())
                    if (o->cfg.name == s->cfg.name && o->cfg.host == s->cfg.host && o->cfg.port == s->cfg.port) {
                        s->up = o->up.load();
                        s->total = o->total.load();
                        s->connect_failures = o->connect_failures.load();
                        s->checks_ok = o->checks_ok.load();
                        s->checks_failed = o->checks_failed.load();
                        s->transitions = o->transitions.load();
                        s->check_latency_us = o->check_latency_us.load();
                        s->take_bound(*o);
                    }
            log()->info("reload: backend {} replaced (connections relayed now stay on their server)", b->config().name);
        } else {
            log()->info("reload: backend {} added", b->config().name);
        }
        log_backend(*b);
        checkers.push_back(std::make_unique<health_checker>(checks, b));
        checkers.back()->start();
    }
    for (std::size_t i = 0; i < live.backends.size(); ++i) {
        if (!live.checkers[i]) continue;   // moved: still running
        live.checkers[i]->stop();
        if (!named(backends, live.backends[i]->config().name))
            log()->info("reload: backend {} removed", live.backends[i]->config().name);
    }
    live.backends = std::move(backends);
    live.checkers = std::move(checkers);
    live.table.set(live.backends);
    live.running.backends.clear();
    for (const auto& b : live.backends) live.running.backends.push_back(b->config());
    log()->info("reload: done ({})", path);
}

// The sweeper's and the health checks' timers belong to worker 0's context: they go first.
// Sessions still held by handlers die with their worker, while everything they refer to
// (broker, backends, counters) is still alive.
void stop_workers(std::vector<std::unique_ptr<worker>>& workers, std::unique_ptr<session_sweeper>& sweeper,
                  std::vector<std::unique_ptr<health_checker>>& checkers, std::unique_ptr<core::auth_pool>& auth) {
    for (auto& w : workers) w->stop();
    for (auto& w : workers) w->join();
    // Its threads post answers to the workers: they end (and its queue is dropped) first.
    auth.reset();
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
    // A SIGHUP before the reload handler is installed (during a long recovery) must not end
    // the process (its default action); it is ignored until then.
    std::signal(SIGHUP, SIG_IGN);
    // First: relays, checks and sessions on the workers refer to them until the workers are gone.
    resources res = load_resources(cfg);
    reloadable live{cfg, reloadable_authenticator(std::move(res.auth)), std::move(res.backends), {}, {}};
    auto& backends = live.backends;
    live.table.set(backends);
    const unsigned n = cfg.workers ? cfg.workers : std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::unique_ptr<worker>> workers;
    std::vector<core::executor*> executors;
    for (unsigned i = 0; i < n; ++i) {
        workers.push_back(std::make_unique<worker>(i));
        executors.push_back(workers.back().get());
    }

    // Password checks run off the workers (CONNECT of STOMP and MQTT), over the reloadable users.
    auto auth_owner = std::make_unique<core::auth_pool>(live.auth, core::auth_pool_settings{cfg.security.auth_threads});
    core::auth_pool* const auth = auth_owner.get();
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
    std::size_t recovered = 0;   // the admin opens once recovery is done: /readyz cannot answer before
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
    auto& checkers = live.checkers;
    const asio::any_io_executor checks_ex = workers.front()->context().get_executor();
    for (auto& b : backends) {
        checkers.push_back(std::make_unique<health_checker>(checks_ex, b));
        log_backend(*b);
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
                return drive(stomp::make_session(stomp_cfg, broker, *auth, conn), std::move(t));
            };
            break;
        case protocol::mqtt:
            make = [&, mqtt_cfg](std::unique_ptr<net::transport> t, std::uint64_t conn) {
                return drive(mqtt::make_session(mqtt_cfg, broker, *auth, mqtt_registry, conn), std::move(t));
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
                return w == wire::mqtt ? drive(mqtt::make_session(mqtt_cfg, broker, *auth, mqtt_registry, conn), std::move(t))
                                       : drive(stomp::make_session(stomp_cfg, broker, *auth, conn), std::move(t));
            };
            routes->backend_named = [&table = live.table](const std::string& name) { return table.find(name); };
            routes->adopt = [](std::uint64_t conn, const std::shared_ptr<net::session>& s) {
                static_cast<worker*>(core::executor::current())->add_session(conn, s);
            };
        }
        listeners.push_back(std::make_unique<listener>(main_ctx, l, workers, shared, std::move(make), std::move(routes)));
    }
    // The watchdog ticks a few times per stall_timeout: a stall is seen within about 1.25 x.
    const auto stall_limit = std::chrono::milliseconds(cfg.admin.stall_timeout_ms);
    const auto tick = std::clamp(stall_limit / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
    for (auto& w : workers) w->start_watchdog(tick);
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
                       },
                       [&] {
                           std::vector<std::string> why;
                           for (const auto& l : listeners)
                               if (!l->accepting())
                                   why.push_back("listener " + l->config().name + " (" +
                                                 host_port(l->config().address, l->config().port) +
                                                 "): not accepting connections");
                           if (auto* j = dynamic_cast<core::journal_store*>(&store); j && j->failed())
                               why.push_back("store: the journal in " + cfg.store.dir +
                                             " cannot be written (a write failed: disk full or I/O error)");
                           for (const auto& l : listeners) {
                               const auto t = targets_of(l->config());
                               if (t.kernel || t.backends.empty()) continue;
                               bool any_up = false;
                               for (const auto& name : t.backends)
                                   if (auto b = named(backends, name))
                                       for (const auto& srv : b->servers()) any_up = any_up || srv->up.load();
                               if (any_up) continue;
                               for (const auto& name : t.backends)
                                   why.push_back("listener " + l->config().name + ": backend " + name + " has no server up");
                           }
                           return why;
                       },
                       [&workers, stall_limit] {
                           std::vector<std::string> why;
                           const auto now = std::chrono::steady_clock::now();
                           for (const auto& w : workers)
                               if (const auto late = w->stalled_for(now); late >= stall_limit)
                                   why.push_back("worker " + std::to_string(w->index()) + ": event loop stalled for " +
                                                 std::to_string(late.count()) + " ms (admin.stall_timeout " +
                                                 std::to_string(stall_limit.count()) + " ms)");
                           return why;
                       }});
    try {
        for (auto& l : listeners) l->open();
        if (admin) admin->open();
    } catch (const std::exception& e) {
        log()->error("{}", e.what());
        // The listeners opened so far have an accept in progress, holding a socket of a
        // worker's context: it must complete (aborted) before the workers go (as at a stop).
        for (auto& l : listeners) l->close();
        if (admin) admin->close();
        main_ctx.run_for(std::chrono::seconds(5));
        stop_workers(workers, sweeper, checkers, auth_owner);
        return 1;
    }
    log()->info("switchboard started workers={} listeners={} config={}", n, listeners.size(), cfg.source);

    // SIGHUP: reload the configuration file (connections stay).
    asio::signal_set hup(main_ctx, SIGHUP);
    std::function<void()> await_hup = [&] {
        hup.async_wait([&](net::error_code ec, int) {
            if (ec) return;
            try {
                reload(live, listeners, checks_ex);
            } catch (const std::exception& e) {   // never expected: reload catches what loading throws
                log()->error("reload failed: {}", e.what());
            }
            await_hup();
        });
    };
    await_hup();
    asio::signal_set signals(main_ctx, SIGINT, SIGTERM);
    signals.async_wait([&](net::error_code ec, int sig) {
        if (ec) return;
        net::error_code ignored;
        hup.cancel(ignored);
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
    stop_workers(workers, sweeper, checkers, auth_owner);
    log()->info("switchboard stopped");
    return 0;
}

}  // namespace sb::gateway
