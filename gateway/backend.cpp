// gateway/backend.cpp — server selection (first / roundrobin / leastconn, backups, slots).
#include "gateway/backend.hpp"

#include <algorithm>
#include <stdexcept>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

namespace sb::gateway {

namespace asio = boost::asio;
using asio::ip::tcp;

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
        servers_.push_back(std::move(st));
    }
    // Weighted rotation, interleaved: weights 3,1 give a a b a rather than a a a b.
    std::uint32_t max_w = 0;
    for (const auto& s : cfg_.servers) max_w = std::max(max_w, s.weight);
    for (std::uint32_t round = 0; round < max_w; ++round)
        for (std::size_t i = 0; i < cfg_.servers.size(); ++i)
            if (cfg_.servers[i].weight > round) rotation_.push_back(i);
}

bool backend::try_reserve(server_state& s) noexcept {
    std::size_t a = s.active.load(std::memory_order_relaxed);
    do {
        if (s.cfg.max_connections && a >= s.cfg.max_connections) return false;
    } while (!s.active.compare_exchange_weak(a, a + 1, std::memory_order_acq_rel));
    return true;
}

void backend::release(server_state& s) noexcept { s.active.fetch_sub(1, std::memory_order_acq_rel); }

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
        primary_up = primary_up || (!s->cfg.backup && s->up.load() &&
                                    !(cfg_.redispatch && std::find(tried.begin(), tried.end(), s.get()) != tried.end()));
    return pick_from(!primary_up, tried);
}

server_state* backend::pick_from(bool backups, std::span<server_state* const> tried) {
    auto eligible = [&](const server_state& s) {
        return s.cfg.backup == backups && s.up.load() &&
               std::find(tried.begin(), tried.end(), &s) == tried.end();
    };
    switch (cfg_.balance) {
    case balance_mode::first:
        for (auto& s : servers_)
            if (eligible(*s) && try_reserve(*s)) return s.get();
        return nullptr;
    case balance_mode::roundrobin: {
        const std::size_t n = rotation_.size();
        const std::uint64_t start = next_.fetch_add(1, std::memory_order_relaxed);
        for (std::size_t k = 0; k < n; ++k) {
            auto& s = *servers_[rotation_[(start + k) % n]];
            if (eligible(s) && try_reserve(s)) return &s;
        }
        return nullptr;
    }
    case balance_mode::leastconn: {
        // Ties go round: the scan starts one further on each call.
        const std::size_t n = servers_.size();
        const std::uint64_t start = next_.fetch_add(1, std::memory_order_relaxed);
        for (int attempt = 0; attempt < 4; ++attempt) {
            server_state* best = nullptr;
            for (std::size_t k = 0; k < n; ++k) {
                auto& s = *servers_[(start + k) % n];
                if (!eligible(s)) continue;
                const std::size_t a = s.active.load();
                if (s.cfg.max_connections && a >= s.cfg.max_connections) continue;
                if (!best || a * best->cfg.weight < best->active.load() * s.cfg.weight) best = &s;
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
