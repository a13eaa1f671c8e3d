// tests/unit/gateway/ops_test.cpp — operating the gateway: on_server_up: close_backups (which
// relays a server coming up closes), the worker watchdog behind /healthz, and the keys that
// configure them.

#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gateway/backend.hpp"
#include "gateway/config.hpp"
#include "gateway/worker.hpp"

using namespace sb::gateway;

namespace {

struct fake_relay final : bound_connection {
    std::vector<std::string> closed;
    void close_from_server(const char* why) noexcept override { closed.emplace_back(why); }
};

backend make_backend(balance_mode m, server_up_action a) {
    backend_config c;
    c.name = "b";
    c.balance = m;
    c.on_server_up = a;
    c.servers = {server_config{"m1", "127.0.0.1", 1, false, 0, 1}, server_config{"m2", "127.0.0.1", 2, false, 0, 1},
                 server_config{"spare", "127.0.0.1", 3, true, 0, 1}};
    return backend(c);
}

// One relay bound to each server; returns them in server order.
std::vector<std::shared_ptr<fake_relay>> bind_one_each(backend& b) {
    std::vector<std::shared_ptr<fake_relay>> out;
    std::uint64_t id = 1;
    for (const auto& s : b.servers()) {
        out.push_back(std::make_shared<fake_relay>());
        s->bind(id++, out.back());
    }
    return out;
}

std::vector<std::size_t> closed_counts(const std::vector<std::shared_ptr<fake_relay>>& r) {
    std::vector<std::size_t> out;
    for (const auto& x : r) out.push_back(x->closed.size());
    return out;
}

}  // namespace

TEST_CASE("close_backups: balance first closes the backups and the servers declared after", "[gateway][backend]") {
    auto b = make_backend(balance_mode::first, server_up_action::close_backups);
    auto relays = bind_one_each(b);
    CHECK(b.close_outranked_by(*b.servers()[0]) == 2);
    CHECK(closed_counts(relays) == std::vector<std::size_t>{0, 1, 1});
    CHECK(relays[2]->closed.front() == std::string("a higher-priority server came up"));
    CHECK(b.close_outranked_by(*b.servers()[1]) == 1);   // m1 comes before it: untouched
    CHECK(closed_counts(relays) == std::vector<std::size_t>{0, 1, 2});
    CHECK(b.close_outranked_by(*b.servers()[2]) == 0);   // a backup coming up outranks nobody
}

TEST_CASE("close_backups: roundrobin and leastconn close the backups only", "[gateway][backend]") {
    for (auto m : {balance_mode::roundrobin, balance_mode::leastconn}) {
        auto b = make_backend(m, server_up_action::close_backups);
        auto relays = bind_one_each(b);
        CHECK(b.close_outranked_by(*b.servers()[0]) == 1);
        CHECK(closed_counts(relays) == std::vector<std::size_t>{0, 0, 1});
    }
}

TEST_CASE("on_server_up none (the default) closes nothing", "[gateway][backend]") {
    auto b = make_backend(balance_mode::first, server_up_action::none);
    auto relays = bind_one_each(b);
    CHECK(b.close_outranked_by(*b.servers()[0]) == 0);
    CHECK(closed_counts(relays) == std::vector<std::size_t>{0, 0, 0});
}

TEST_CASE("on_server_up and admin.stall_timeout load, and bad values name their place", "[gateway][config]") {
    const auto c = load_config_text(R"(
admin: { port: 8161, stall_timeout: 2s }
backends:
  - name: b
    on_server_up: close_backups
    servers: [{ name: s, address: "127.0.0.1:1" }]
)", "x.yaml");
    CHECK(c.admin.stall_timeout_ms == 2000);
    CHECK(c.backends.at(0).on_server_up == server_up_action::close_backups);
    CHECK(load_config_text("listeners: [{ name: s, port: 1 }]", "y.yaml").admin.stall_timeout_ms == 5000);
    try {
        load_config_text("backends: [{ name: b, on_server_up: shutdown, servers: [{ name: s, address: \"h:1\" }] }]",
                         "z.yaml");
        FAIL("accepted");
    } catch (const config_error& e) {
        CHECK_THAT(e.what(), Catch::Contains("z.yaml:1:") && Catch::Contains("backends[0].on_server_up"));
    }
}

TEST_CASE("watchdog: a worker whose loop is held up reports how long; a turning one reports 0", "[gateway][watchdog]") {
    worker w(0);
    w.start_watchdog(std::chrono::milliseconds(10));
    w.start();
    // The first tick has run once a task posted after it has.
    std::promise<void> ticked;
    w.post([&] { ticked.set_value(); });
    ticked.get_future().wait();
    CHECK(w.stalled_for(std::chrono::steady_clock::now()) < std::chrono::milliseconds(100));

    std::promise<void> release;
    std::promise<void> holding;
    w.post([&] {
        holding.set_value();
        release.get_future().wait();   // the loop is stuck in this handler
    });
    holding.get_future().wait();
    // Time has to pass here (no event marks it): polled, bounded by 5 s.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    auto late = w.stalled_for(std::chrono::steady_clock::now());
    while (late < std::chrono::milliseconds(100) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        late = w.stalled_for(std::chrono::steady_clock::now());
    }
    CHECK(late >= std::chrono::milliseconds(100));
    release.set_value();
    // Turning again: the next tick stamps the time (polled, bounded by 5 s).
    const auto again = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (w.stalled_for(std::chrono::steady_clock::now()) >= std::chrono::milliseconds(100) &&
           std::chrono::steady_clock::now() < again)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(w.stalled_for(std::chrono::steady_clock::now()) < std::chrono::milliseconds(100));
    w.stop();
    w.join();
}
