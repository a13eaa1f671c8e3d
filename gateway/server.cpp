// gateway/server.cpp — start-up, accept loops, SIGHUP reloads, readiness, graceful shutdown.
//
// Threads: the main thread runs the acceptors, the admin endpoint and the signal sets; each
// worker runs its own io_context. An accepted socket is bound to the next worker (round-robin)
// and its session is created and lives on that worker.
#include "gateway/server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
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

#include "core/broker.hpp"
#include "core/security/auth_pool.hpp"
#include "core/security/authenticator.hpp"
#include "core/store/journal_store.hpp"
#include "core/store/memory_store.hpp"
#include "gateway/admin.hpp"
#include "gateway/backend.hpp"
#include "gateway/front.hpp"
#include "gateway/health_check.hpp"
#include "gateway/kernel_adapters.hpp"
#include "gateway/log.hpp"
#include "gateway/registry.hpp"
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
    if (const auto w = wire_of(p)) return protocol_of(*w).name;
    return p == protocol::automatic ? "auto" : "tcp";
}

struct shared_state;

// What a connection's end updates: its listener's count and the process's. One per listener,
// kept by shared_state (which outlives every connection, and a listener's connections may
// outlive the listener after a reload), so that a transport's on_destroy captures one pointer
// (tcp_transport's destroy_hook holds that much, in place).
struct connection_owner {
    std::atomic<std::size_t>* active;   // the listener's
    shared_state* shared;
};

struct shared_state {
    std::atomic<std::uint64_t> next_connection{1};
    std::atomic<std::size_t> live_connections{0};
    // Main thread adds (listeners are made there); never removed: a few per reload at most.
    std::deque<std::atomic<std::size_t>> listener_active;
    std::deque<connection_owner> owners;
};

class listener {
public:
    // `make` creates the kernel session of a single-protocol listener; `routes` (set when
    // needs_front) takes connections through TLS, detection and routing instead.
    listener(asio::io_context& ctx, const listener_config& cfg, std::vector<std::unique_ptr<worker>>& workers,
             shared_state& shared, session_factory make, std::shared_ptr<front_routes> routes)
        : cfg_(cfg), acceptor_(ctx), workers_(workers), shared_(shared), make_(std::move(make)),
          routes_(std::move(routes)), active_(&shared.listener_active.emplace_back(0)), retry_(ctx) {
        owner_ = &shared.owners.emplace_back(connection_owner{active_, &shared});
    }

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
    void set_tls(std::shared_ptr<asio::ssl::context> ctx, const tls_config& settings) {
        auto r = std::make_shared<front_routes>(*routes_);
        r->tls = std::move(ctx);
        r->user_from = settings.user_from;
        routes_ = std::move(r);
    }

private:
    void do_accept() {
        auto& w = *workers_[next_worker_++ % workers_.size()];
        acceptor_.async_accept(w.context(), [this, &w](net::error_code ec, tcp_socket socket) {
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
        tcp_socket socket(w.context());
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

    void on_accept(worker& w, tcp_socket socket) {
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
        asio::post(w.context(), [this, &w, conn, socket = std::move(socket), owner = owner_, routes = routes_]() mutable {
            auto on_destroy = [owner]() {   // the worker's list: the transport's link leaves it
                --*owner->active;
                --owner->shared->live_connections;
            };
            transport_stack t(std::make_unique<tcp_transport>(std::move(socket), on_destroy));
            log()->debug("conn={} peer={} listener={} accepted", conn, t.top().peer(), cfg_.name);
            auto& link = t.bottom().link();
            auto s = routes ? make_front(std::move(t), std::move(routes), conn) : make_(std::move(t).release(), conn);
            w.add_session(link, s);
            s->start();
        });
    }

    const listener_config& cfg_;
    tcp::acceptor acceptor_;
    std::vector<std::unique_ptr<worker>>& workers_;
    shared_state& shared_;
    session_factory make_;
    std::shared_ptr<front_routes> routes_;
    std::atomic<std::size_t>* active_;           // in shared_ (outlives this listener's connections)
    connection_owner* owner_;                    // in shared_
    std::size_t next_worker_ = 0;
    std::uint64_t refused_ = 0;
    asio::steady_timer retry_;   // after a failed accept
    bool accepting_ = false;
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

    std::optional<core::principal> authenticate_certificate(std::string_view user) const noexcept override {
        std::shared_ptr<const core::authenticator> a;
        {
            std::lock_guard lock(mutex_);
            a = current_;
        }
        return a->authenticate_certificate(user);
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
    std::vector<std::optional<wire>> wires{wire_of(l.proto)};   // nullopt: `tcp`
    if (l.proto == protocol::automatic) {
        wires.clear();
        for (std::size_t i = 0; i < wire_count; ++i) wires.push_back(static_cast<wire>(i));
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
    b.advisories = cfg.broker.advisories;
    // sched
    b.scheduler_support = cfg.broker.scheduler_support;
    b.virtual_topic_name = cfg.broker.virtual_topic_name;
    b.virtual_topic_prefix = cfg.broker.virtual_topic_prefix;
    b.virtual_topic_postfix = cfg.broker.virtual_topic_postfix;
    b.dead_letter_queue = cfg.broker.dead_letter_queue;
    b.dead_letter_prefix = cfg.broker.dead_letter_prefix;
    b.dead_letter_suffix = cfg.broker.dead_letter_suffix;
    b.dead_letter_expired = cfg.broker.dead_letter_expired;
    b.dead_letter_non_persistent = cfg.broker.dead_letter_non_persistent;
    for (const auto& r : cfg.broker.dead_letter_policies)
        b.dead_letter_rules.push_back(core::dead_letter_rule{
            r.pattern,
            r.strategy == dead_letter_policy::shared ? core::dead_letter_policy::shared
                                                     : core::dead_letter_policy::per_destination,
            r.queue, r.prefix, r.suffix, r.expired, r.non_persistent});
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
        const auto n = std::find_if(next.listeners.begin(), next.listeners.end(),
                                    [&](const listener_config& c) { return c.name == listeners[i]->config().name && c.tls; });
        if (n != next.listeners.end()) live.running.listeners[i].tls_settings = n->tls_settings;
        listeners[i]->set_tls(std::move(ctx), live.running.listeners[i].tls_settings);
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

using worker_list = std::vector<std::unique_ptr<worker>>;
using listener_list = std::vector<std::unique_ptr<listener>>;

// The kernel adapters of the protocols the kernel speaks, by wire (null: it speaks none).
using kernel_table = std::array<std::unique_ptr<kernel_adapter>, wire_count>;

worker_list make_workers(const config& cfg) {
    const unsigned n = cfg.workers ? cfg.workers : std::max(1u, std::thread::hardware_concurrency());
    worker_list workers;
    for (unsigned i = 0; i < n; ++i) workers.push_back(std::make_unique<worker>(i));
    return workers;
}

// The store the configuration names. Throws std::runtime_error when it cannot be opened.
std::unique_ptr<core::store> open_store(const config& cfg) {
    if (cfg.store.type != store_type::journal) return std::make_unique<core::memory_store>();
    core::journal_settings js;
    js.dir = cfg.store.dir;
    js.sync = cfg.store.sync == sync_policy::always  ? core::sync_mode::always
              : cfg.store.sync == sync_policy::batch ? core::sync_mode::batch
                                                     : core::sync_mode::never;
    js.batch_ms = cfg.store.batch_ms;
    js.segment_bytes = cfg.store.segment_size;
    return std::make_unique<core::journal_store>(js);
}

// Replays the store into the broker and logs what was found. Throws when recovery fails.
void recover(core::broker& broker, core::store& store, const config& cfg) {
    const auto started = std::chrono::steady_clock::now();
    const std::size_t recovered = broker.recover();
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
}

// Asks the registry which protocols the kernel speaks and starts an adapter for each.
kernel_table make_kernels(const kernel_env& env) {
    kernel_table kernels;
    for (const auto* p : protocols())
        if (const auto make = kernel_factory_for(p->id)) kernels[static_cast<std::size_t>(p->id)] = make(env);
    return kernels;
}

// One listener per configured one: a single-protocol listener without TLS or routes hands its
// connections straight to its protocol's kernel sessions; the others go through the front stage
// (TLS, detection, routes), which asks the same kernel adapters for the protocols routed there.
listener_list make_listeners(asio::io_context& main_ctx, const config& cfg, const resources& res, worker_list& workers,
                             shared_state& shared, const kernel_table& kernels, const backend_table& table) {
    std::array<session_factory, wire_count> sessions;
    for (std::size_t i = 0; i < wire_count; ++i)
        if (kernels[i]) sessions[i] = kernels[i]->sessions();
    listener_list listeners;
    for (std::size_t li = 0; li < cfg.listeners.size(); ++li) {
        const auto& l = cfg.listeners[li];
        session_factory make;
        if (const auto w = wire_of(l.proto)) make = sessions[static_cast<std::size_t>(*w)];   // config checked it exists
        std::shared_ptr<front_routes> routes;
        if (needs_front(l)) {
            routes = std::make_shared<front_routes>();
            routes->cfg = &l;
            routes->tls = res.tls[li];
            routes->user_from = l.tls_settings.user_from;
            routes->kernel = [sessions](wire w, std::unique_ptr<net::transport> t, std::uint64_t conn) {
                return sessions[static_cast<std::size_t>(w)](std::move(t), conn);   // route_for: the kernel speaks w
            };
            routes->backend_named = [&table](const std::string& name) { return table.find(name); };
            routes->adopt = [](session_link& link, const std::shared_ptr<net::session>& s) {
                static_cast<worker*>(core::executor::current())->add_session(link, s);
            };
        }
        listeners.push_back(std::make_unique<listener>(main_ctx, l, workers, shared, std::move(make), std::move(routes)));
    }
    return listeners;
}

// /readyz: why the process is not ready (empty: ready). Main thread.
std::vector<std::string> not_ready(const config& cfg, const listener_list& listeners,
                                   const std::vector<std::shared_ptr<backend>>& backends, core::store& store) {
    std::vector<std::string> why;
    for (const auto& l : listeners)
        if (!l->accepting())
            why.push_back("listener " + l->config().name + " (" + host_port(l->config().address, l->config().port) +
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
}

// /healthz: the workers whose event loop has not turned for `limit` (empty: alive).
std::vector<std::string> stalled(const worker_list& workers, std::chrono::milliseconds limit) {
    std::vector<std::string> why;
    const auto now = std::chrono::steady_clock::now();
    for (const auto& w : workers)
        if (const auto late = w->stalled_for(now); late >= limit)
            why.push_back("worker " + std::to_string(w->index()) + ": event loop stalled for " +
                          std::to_string(late.count()) + " ms (admin.stall_timeout " + std::to_string(limit.count()) +
                          " ms)");
    return why;
}

// The admin endpoint (null when admin.port is 0); opened by the caller.
std::unique_ptr<admin_server> make_admin(asio::io_context& main_ctx, const config& cfg, shared_state& shared,
                                         reloadable& live, core::broker& broker, core::store& store,
                                         const worker_list& workers, const listener_list& listeners) {
    if (!cfg.admin.port) return nullptr;
    const auto stall_limit = std::chrono::milliseconds(cfg.admin.stall_timeout_ms);
    return std::make_unique<admin_server>(
        main_ctx, cfg.admin,
        admin_view{[&shared] { return shared.live_connections.load(); }, &live.backends,
                   [&broker, w = workers.front().get()](admin_view::destinations_done done) {
                       asio::post(w->context(), [&broker, done = std::move(done)]() mutable { broker.stats(std::move(done)); });
                   },
                   [&cfg, &listeners, &live, &store] { return not_ready(cfg, listeners, live.backends, store); },
                   [&workers, stall_limit] { return stalled(workers, stall_limit); }});
}

// The workers' threads end first; then the password-checking pool (its threads post answers to
// the workers); then what runs timers on their contexts (the kernel adapters' sweepers, the
// health checks, on worker 0); then the contexts. Sessions still held by handlers die with their
// worker, while everything they refer to (broker, backends, counters) is alive.
void stop_workers(worker_list& workers, std::unique_ptr<core::auth_pool>& auth, kernel_table& kernels,
                  std::vector<std::unique_ptr<health_checker>>& checkers) {
    for (auto& w : workers) w->stop();
    for (auto& w : workers) w->join();
    auth.reset();
    for (auto& k : kernels) k.reset();
    checkers.clear();
    workers.clear();
}

// Polls the certificate, key and CA files of the TLS listeners (tls.reload_interval): when they
// change, new handshakes get a context made from them, open connections keep theirs; files that
// do not load (a key not matching its certificate yet) are logged and the previous context stays.
// Main thread, as SIGHUP's reload.
class tls_watch {
public:
    tls_watch(asio::io_context& ctx, reloadable& live, listener_list& listeners)
        : live_(live), listeners_(listeners), timer_(ctx) {
        bool any = false;
        for (std::size_t i = 0; i < listeners_.size(); ++i) {
            any = any || listeners_[i]->config().tls;
            stamps_.push_back(listeners_[i]->config().tls ? tls_files_stamp(live_.running.listeners[i].tls_settings)
                                                          : std::string());
        }
        if (any) arm();
    }
    void stop() { timer_.cancel(); }

private:
    // The shortest interval of the moment (SIGHUP may change them); 1 s while none is set.
    void arm() {
        std::uint32_t every = 0;
        for (std::size_t i = 0; i < listeners_.size(); ++i)
            if (const auto ms = live_.running.listeners[i].tls_settings.reload_interval_ms; listeners_[i]->config().tls && ms)
                every = every ? std::min(every, ms) : ms;
        timer_.expires_after(std::chrono::milliseconds(every ? every : 1000));
        timer_.async_wait([this](net::error_code ec) {
            if (ec) return;
            check();
            arm();
        });
    }
    void check() {
        for (std::size_t i = 0; i < listeners_.size(); ++i) {
            const tls_config t = live_.running.listeners[i].tls_settings;
            if (!listeners_[i]->config().tls || !t.reload_interval_ms) continue;
            const std::string now = tls_files_stamp(t);
            if (now == stamps_[i]) continue;
            try {
                auto ctx = make_tls_context(t);
                // Still being written when it was read: the next look takes it again.
                if (tls_files_stamp(t) != now) continue;
                listeners_[i]->set_tls(std::move(ctx), t);
                log()->info("listener {}: TLS files changed: certificate {} reloaded (new handshakes)",
                            listeners_[i]->config().name, t.cert_file);
            } catch (const std::exception& e) {
                log()->error("listener {}: TLS files changed but do not load: {}; new handshakes keep the previous "
                             "certificate", listeners_[i]->config().name, e.what());
            }
            stamps_[i] = now;
        }
    }

    reloadable& live_;
    listener_list& listeners_;
    asio::steady_timer timer_;
    std::vector<std::string> stamps_;   // per listener
};

// Until SIGINT or SIGTERM: SIGHUP reloads; the stop closes the listeners and the admin endpoint
// and asks every session to finish. Returns once the listeners' aborted accepts have completed
// (an accept in progress holds a socket of a worker's context, so it must end first).
void serve(asio::io_context& main_ctx, reloadable& live, listener_list& listeners, admin_server* admin,
           kernel_table& kernels, worker_list& workers, shared_state& shared) {
    const asio::any_io_executor checks_ex = workers.front()->context().get_executor();
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
    tls_watch watch(main_ctx, live, listeners);
    asio::signal_set signals(main_ctx, SIGINT, SIGTERM);
    signals.async_wait([&](net::error_code ec, int sig) {
        if (ec) return;
        net::error_code ignored;
        hup.cancel(ignored);
        watch.stop();
        log()->info("signal={} stopping: closing listeners and {} connections", sig, shared.live_connections.load());
        for (auto& l : listeners) l->close();
        if (admin) admin->close();
        for (auto& k : kernels)
            if (k) k->stop();
        for (auto& c : live.checkers) c->stop();
        for (auto& w : workers) asio::post(w->context(), [&w] { w->stop_sessions(); });
    });
    main_ctx.run();
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
    live.table.set(live.backends);
    worker_list workers = make_workers(cfg);
    std::vector<core::executor*> executors;
    for (auto& w : workers) executors.push_back(w.get());
    // Password checks run off the workers (CONNECT of STOMP and MQTT), over the reloadable users.
    auto auth = std::make_unique<core::auth_pool>(live.auth, core::auth_pool_settings{cfg.security.auth_threads});

    std::unique_ptr<core::store> store;
    try {
        store = open_store(cfg);
    } catch (const std::exception& e) {
        log()->error("store: {}", e.what());
        return 1;
    }
    core::broker broker(broker_settings(cfg), executors, *store);
    try {   // before the admin opens: /readyz cannot answer during recovery
        recover(broker, *store, cfg);
    } catch (const std::exception& e) {
        log()->error("store: recovery failed: {}", e.what());
        return 1;
    }
    kernel_table kernels = make_kernels(kernel_env{cfg, broker, *auth, *workers.front()});
    // Health checks run on worker 0, like the kernel adapters' timers: a few timers and short
    // connections.
    for (auto& b : live.backends) {
        live.checkers.push_back(std::make_unique<health_checker>(workers.front()->context().get_executor(), b));
        log_backend(*b);
    }
    shared_state shared;
    asio::io_context main_ctx{1};
    listener_list listeners = make_listeners(main_ctx, cfg, res, workers, shared, kernels, live.table);
    // The watchdog ticks a few times per stall_timeout: a stall is seen within about 1.25 x.
    const auto stall_limit = std::chrono::milliseconds(cfg.admin.stall_timeout_ms);
    const auto tick = std::clamp(stall_limit / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
    for (auto& w : workers) w->start_watchdog(tick);
    for (auto& w : workers) w->start();
    for (auto& k : kernels)
        if (k) k->start();
    for (auto& c : live.checkers) c->start();
    auto admin = make_admin(main_ctx, cfg, shared, live, broker, *store, workers, listeners);
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
        broker.stop();
        stop_workers(workers, auth, kernels, live.checkers);
        return 1;
    }
    log()->info("switchboard started workers={} listeners={} config={}", workers.size(), listeners.size(), cfg.source);
    serve(main_ctx, live, listeners, admin.get(), kernels, workers, shared);

    // Sessions flush, shut down their send side and wait briefly for the peer: bounded.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (shared.live_connections.load() > 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (const auto left = shared.live_connections.load())
        log()->warn("closing {} connections that did not finish in time", left);
    broker.stop();   // while the workers run: the scheduler's store work ends on them
    stop_workers(workers, auth, kernels, live.checkers);
    log()->info("switchboard stopped");
    return 0;
}

}  // namespace sb::gateway
