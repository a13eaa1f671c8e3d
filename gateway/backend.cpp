// gateway/backend.cpp — server selection (first / roundrobin / leastconn, backups, slots).
#include "gateway/backend.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

namespace sb::gateway {

namespace asio = boost::asio;
using asio::ip::tcp;

std::string_view admin_state_name(admin_state s) {
    switch (s) {
    case admin_state::ready: return "ready";
    case admin_state::drain: return "drain";
    case admin_state::maint: return "maint";
    }
    return "?";
}

std::optional<admin_state> admin_state_named(std::string_view name) {
    if (name == "ready") return admin_state::ready;
    if (name == "drain") return admin_state::drain;
    if (name == "maint") return admin_state::maint;
    return std::nullopt;
}

std::string_view check_status_name(check_status s) {
    switch (s) {
    case check_status::unknown: return "UNK";
    case check_status::l4ok: return "L4OK";
    case check_status::l4con: return "L4CON";
    case check_status::l4tout: return "L4TOUT";
    case check_status::l6ok: return "L6OK";
    case check_status::l6tout: return "L6TOUT";
    case check_status::l6rsp: return "L6RSP";
    case check_status::l7ok: return "L7OK";
    case check_status::l7rsp: return "L7RSP";
    case check_status::l7tout: return "L7TOUT";
    case check_status::l7sts: return "L7STS";
    }
    return "?";
}

void server_state::set_check_result(check_status st, std::uint32_t duration_us, std::string detail) {
    std::lock_guard lock(check_mutex_);
    check_.status = st;
    check_.duration_us = duration_us;
    check_.detail = std::move(detail);
}

server_state::check_result server_state::last_check() const {
    std::lock_guard lock(check_mutex_);
    return check_;
}

void server_state::bind(std::uint64_t id, std::weak_ptr<bound_connection> c) {
    std::lock_guard lock(mutex_);
    bound_.emplace(id, std::move(c));
}

void server_state::unbind(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    bound_.erase(id);
}

std::size_t server_state::close_bound(const char* why) {
    std::vector<std::shared_ptr<bound_connection>> live;
    {
        std::lock_guard lock(mutex_);
        for (auto it = bound_.begin(); it != bound_.end();) {
            if (auto c = it->second.lock()) {
                live.push_back(std::move(c));
                ++it;
            } else {
                it = bound_.erase(it);   // one taken over from a replaced backend, since ended
            }
        }
    }
    for (auto& c : live) c->close_from_server(why);
    return live.size();
}

void server_state::take_bound(server_state& from) {
    std::unordered_map<std::uint64_t, std::weak_ptr<bound_connection>> moved;
    {
        std::lock_guard lock(from.mutex_);
        moved.swap(from.bound_);
    }
    std::lock_guard lock(mutex_);
    for (auto& [id, w] : moved)
        if (!w.expired()) bound_.emplace(id, std::move(w));
}

backend::backend(backend_config cfg) : cfg_(std::move(cfg)) {
    if (cfg_.check.tls && cfg_.check.tls_verify && !cfg_.check.tls_ca_file.empty()) {
        std::FILE* f = std::fopen(cfg_.check.tls_ca_file.c_str(), "rb");
        if (!f)
            throw std::runtime_error("backend " + cfg_.name + " check.ca: cannot open " + cfg_.check.tls_ca_file + ": " +
                                     std::strerror(errno));
        std::fclose(f);
    }
    asio::io_context ctx;
    tcp::resolver resolver(ctx);
    for (const auto& s : cfg_.servers) {
        auto st = std::make_unique<server_state>(s);
        boost::system::error_code ec;
        const auto addr = asio::ip::make_address(s.host, ec);
        if (!ec) {
            st->endpoints.emplace_back(addr, s.port);
        } else {
            const auto results = resolver.resolve(s.host, std::to_string(s.port), ec);
            if (ec || results.empty())
                throw std::runtime_error("backend " + cfg_.name + " server " + s.name + ": cannot resolve " + s.host +
                                         ": " + (ec ? ec.message() : std::string("no address")));
            for (const auto& r : results) st->endpoints.push_back(r.endpoint());
        }
        st->owner = this;
        servers_.push_back(std::move(st));
    }
    rr_score_.assign(servers_.size(), 0);
}

bool backend::try_reserve(server_state& s) noexcept {
    std::size_t a = s.active.load(std::memory_order_relaxed);
    do {
        if (s.cfg.max_connections && a >= s.cfg.max_connections) return false;
    } while (!s.active.compare_exchange_weak(a, a + 1, std::memory_order_acq_rel));
    return true;
}

void backend::release(server_state& s) noexcept {
    s.active.fetch_sub(1, std::memory_order_acq_rel);
    if (s.owner) s.owner->wake_one();
}

std::uint64_t backend::effective_weight(const server_state& s, clock::time_point now) const noexcept {
    const std::uint64_t full = std::uint64_t{s.weight.load()} * 1000;
    const std::int64_t from = s.ramp_start.load();
    const std::uint32_t ramp_ms = s.cfg.slow_start_ms.value_or(cfg_.slow_start_ms);
    if (from == 0 || ramp_ms == 0 || full == 0) return std::max<std::uint64_t>(full, 1);
    const auto elapsed = now - clock::time_point(clock::duration(from));
    const auto ramp = std::chrono::milliseconds(ramp_ms);
    if (elapsed >= ramp) return full;
    if (elapsed <= clock::duration::zero()) return 1;
    const auto num = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
    const auto den = std::chrono::duration_cast<std::chrono::microseconds>(ramp).count();
    return std::max<std::uint64_t>(full * static_cast<std::uint64_t>(num) / static_cast<std::uint64_t>(den), 1);
}

std::size_t backend::set_state(server_state& s, admin_state st) {
    const admin_state was = s.admin.exchange(st);
    if (st == admin_state::ready && was != admin_state::ready) {
        s.ramp_start = now().time_since_epoch().count();
        wake_one();
    }
    return st == admin_state::maint && was != admin_state::maint ? s.close_bound("server in maintenance") : 0;
}

void backend::set_weight(server_state& s, std::uint32_t w) {
    s.weight = w;
    wake_one();
}

void backend::came_up(server_state& s) {
    s.ramp_start = now().time_since_epoch().count();
    wake_one();
}

bool backend::should_queue() const {
    if (cfg_.queue_timeout_ms == 0) return false;
    {
        std::lock_guard lock(queue_mutex_);
        if (!queue_.empty()) return true;
    }
    // Someone could take it once a slot frees: a usable server (backups count when no primary is).
    for (const auto& s : servers_)
        if (s->usable()) return true;
    return false;
}

bool backend::enqueue(std::uint64_t id, std::weak_ptr<slot_waiter> w, bool front) {
    std::lock_guard lock(queue_mutex_);
    if (!front && cfg_.max_queue && queue_.size() >= cfg_.max_queue) return false;
    if (front) queue_.emplace_front(id, std::move(w));
    else queue_.emplace_back(id, std::move(w));
    return true;
}

void backend::dequeue(std::uint64_t id) {
    std::lock_guard lock(queue_mutex_);
    const auto it = std::find_if(queue_.begin(), queue_.end(), [id](const auto& e) { return e.first == id; });
    if (it != queue_.end()) queue_.erase(it);
}

void backend::wake_one() {
    std::shared_ptr<slot_waiter> w;
    {
        std::lock_guard lock(queue_mutex_);
        while (!w && !queue_.empty()) {
            w = queue_.front().second.lock();
            queue_.pop_front();
        }
    }
    if (w) w->slot_free();
}

std::size_t backend::queued() const {
    std::lock_guard lock(queue_mutex_);
    return queue_.size();
}

std::size_t backend::close_outranked_by(const server_state& up) {
    if (cfg_.on_server_up != server_up_action::close_backups || up.cfg.backup) return 0;
    std::size_t closed = 0;
    bool after = false;   // declared after `up`
    for (const auto& s : servers_) {
        if (s.get() == &up) {
            after = true;
            continue;
        }
        if (s->cfg.backup || (after && cfg_.balance == balance_mode::first))
            closed += s->close_bound("a higher-priority server came up");
    }
    return closed;
}

server_state* backend::pick(std::span<server_state* const> tried) {
    bool primary_up = false;
    for (const auto& s : servers_)
        primary_up = primary_up || (!s->cfg.backup && s->usable() &&
                                    !(cfg_.redispatch && std::find(tried.begin(), tried.end(), s.get()) != tried.end()));
    return pick_from(!primary_up, tried);
}

server_state* backend::pick_from(bool backups, std::span<server_state* const> tried) {
    auto eligible = [&](const server_state& s) {
        return s.cfg.backup == backups && s.usable() && std::find(tried.begin(), tried.end(), &s) == tried.end();
    };
    const auto t = now();
    switch (cfg_.balance) {
    case balance_mode::first:
        for (auto& s : servers_)
            if (eligible(*s) && try_reserve(*s)) return s.get();
        return nullptr;
    case balance_mode::roundrobin: {
        // Smooth weighted round robin: every candidate's score grows by its effective weight,
        // the highest wins and pays the total back. Full or unusable servers sit out.
        std::lock_guard lock(rr_mutex_);
        std::vector<bool> out(servers_.size(), false);
        for (std::size_t attempt = 0; attempt < servers_.size(); ++attempt) {
            std::int64_t total = 0;
            std::size_t best = servers_.size();
            for (std::size_t i = 0; i < servers_.size(); ++i) {
                auto& s = *servers_[i];
                if (out[i] || !eligible(s)) continue;
                if (s.cfg.max_connections && s.active.load() >= s.cfg.max_connections) continue;
                const auto w = static_cast<std::int64_t>(effective_weight(s, t));
                rr_score_[i] += w;
                total += w;
                if (best == servers_.size() || rr_score_[i] > rr_score_[best]) best = i;
            }
            if (best == servers_.size()) return nullptr;
            rr_score_[best] -= total;
            if (try_reserve(*servers_[best])) return servers_[best].get();
            out[best] = true;   // lost a race for its last slot
        }
        return nullptr;
    }
    case balance_mode::leastconn: {
        // Ties go round: the scan starts one further on each call.
        const std::size_t n = servers_.size();
        const std::uint64_t start = next_.fetch_add(1, std::memory_order_relaxed);
        for (int attempt = 0; attempt < 4; ++attempt) {
            server_state* best = nullptr;
            std::uint64_t best_w = 1;
            for (std::size_t k = 0; k < n; ++k) {
                auto& s = *servers_[(start + k) % n];
                if (!eligible(s)) continue;
                const std::size_t a = s.active.load();
                if (s.cfg.max_connections && a >= s.cfg.max_connections) continue;
                // (active + 1) / weight, as HAProxy: a slow-starting server with no connection
                // yet still has to earn its share.
                const std::uint64_t w = effective_weight(s, t);
                if (!best || (a + 1) * best_w < (best->active.load() + 1) * w) {
                    best = &s;
                    best_w = w;
                }
            }
            if (!best) return nullptr;
            if (try_reserve(*best)) return best;   // lost a race for the last slot: look again
        }
        return nullptr;
    }
    }
    return nullptr;
}

}  // namespace sb::gateway
