// tests/unit/gateway/control_test.cpp — runtime control of a backend (server states, weights,
// slow start on a manual clock), the admin's control requests, the door's per-source and rate
// limits (manual clock), and the queue (its order, max_queue, and a relay that waits, then gets
// a slot or times out).

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <nlohmann/json.hpp>

#include "gateway/admin.hpp"
#include "gateway/backend.hpp"
#include "gateway/config.hpp"
#include "gateway/door.hpp"
#include "gateway/relay.hpp"
#include "gateway/tcp_transport.hpp"

using namespace sb::gateway;
namespace asio = boost::asio;
using clk = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct fake_relay final : bound_connection {
    std::vector<std::string> closed;
    void close_from_server(const char* why) noexcept override { closed.emplace_back(why); }
};

struct fake_waiter final : slot_waiter {
    int woken = 0;
    void slot_free() noexcept override { ++woken; }
};

server_config srv(std::string name, std::uint16_t port, bool backup = false, std::size_t max = 0, std::uint32_t w = 1) {
    server_config s;
    s.name = std::move(name);
    s.host = "127.0.0.1";
    s.port = port;
    s.backup = backup;
    s.max_connections = max;
    s.weight = w;
    return s;
}

std::shared_ptr<backend> make(balance_mode m, std::vector<server_config> servers, std::uint32_t slow_start_ms = 0) {
    backend_config c;
    c.name = "b";
    c.balance = m;
    c.servers = std::move(servers);
    c.slow_start_ms = slow_start_ms;
    return std::make_shared<backend>(c);
}

// Picks n times, each slot given back at once (the share of new connections).
std::map<std::string, int> share(backend& b, int n) {
    std::map<std::string, int> out;
    for (int i = 0; i < n; ++i) {
        server_state* s = b.pick({});
        REQUIRE(s);
        ++out[s->cfg.name];
        backend::release(*s);
    }
    return out;
}

}  // namespace

TEST_CASE("server state: drain takes no new connection and keeps its relays; maint closes them; ready again",
          "[gateway][control]") {
    for (auto m : {balance_mode::first, balance_mode::roundrobin, balance_mode::leastconn}) {
        auto b = make(m, {srv("a", 1), srv("b", 2), srv("spare", 3, true)});
        auto s = b->servers();
        auto on_a = std::make_shared<fake_relay>();
        s[0]->bind(1, on_a);

        CHECK(b->set_state(*s[0], admin_state::drain) == 0);
        CHECK(s[0]->admin == admin_state::drain);
        CHECK(on_a->closed.empty());   // existing relays stay
        for (int i = 0; i < 20; ++i) CHECK(share(*b, 1).count("a") == 0);

        CHECK(b->set_state(*s[0], admin_state::maint) == 1);
        REQUIRE(on_a->closed.size() == 1);
        CHECK(on_a->closed[0] == std::string("server in maintenance"));
        CHECK(s[0]->up);   // checks go on; only the operator's state changed
        CHECK(b->set_state(*s[0], admin_state::maint) == 0);   // already in maint: nothing more

        // Every primary out of service: the backup takes over, as when they are down.
        b->set_state(*s[1], admin_state::maint);
        CHECK(share(*b, 5) == std::map<std::string, int>{{"spare", 5}});

        b->set_state(*s[0], admin_state::ready);
        b->set_state(*s[1], admin_state::ready);
        const auto back = share(*b, 20);
        CHECK(back.count("spare") == 0);
        CHECK(back.at("a") >= 1);
        if (m != balance_mode::first) CHECK(back.at("b") >= 1);
    }
    CHECK(admin_state_named("drain") == admin_state::drain);
    CHECK(!admin_state_named("disabled"));
    CHECK(admin_state_name(admin_state::maint) == "maint");
}

TEST_CASE("weights change at runtime: roundrobin and leastconn follow", "[gateway][control]") {
    for (auto m : {balance_mode::roundrobin, balance_mode::leastconn}) {
        auto b = make(m, {srv("a", 1), srv("b", 2)});
        CHECK(share(*b, 100) == std::map<std::string, int>{{"a", 50}, {"b", 50}});
        b->set_weight(*b->servers()[0], 3);
        if (m == balance_mode::roundrobin) {
            CHECK(share(*b, 100) == std::map<std::string, int>{{"a", 75}, {"b", 25}});
        } else {   // leastconn: open connections settle at the weights' ratio
            std::map<std::string, int> open;
            for (int i = 0; i < 40; ++i) ++open[b->pick({})->cfg.name];
            CHECK(open == std::map<std::string, int>{{"a", 30}, {"b", 10}});
        }
    }
}

TEST_CASE("slow start: a server that came back ramps its weight linearly (manual clock)", "[gateway][control]") {
    clk::time_point now = clk::now();
    auto b = make(balance_mode::roundrobin, {srv("a", 1), srv("b", 2)}, 10000);
    b->set_clock([&] { return now; });
    auto s = b->servers();
    CHECK(b->effective_weight(*s[1], now) == 1000);   // at start: no ramp
    b->came_up(*s[1]);
    CHECK(b->effective_weight(*s[1], now) == 1);      // nearly nothing at first
    now += 1s;
    CHECK(b->effective_weight(*s[1], now) == 100);    // 10 % after 1 s of 10
    auto at_1s = share(*b, 1100);
    CHECK(at_1s["b"] == 100);                         // weights 1 : 0.1
    CHECK(at_1s["a"] == 1000);
    now += 4s;
    CHECK(b->effective_weight(*s[1], now) == 500);
    auto at_5s = share(*b, 1500);
    CHECK(at_5s["b"] == 500);
    now += 5s;
    CHECK(b->effective_weight(*s[1], now) == 1000);   // full weight after slow_start
    CHECK(share(*b, 100)["b"] == 50);

    // A per-server slow_start overrides the backend's; leaving maint ramps too.
    auto c = make(balance_mode::leastconn, {srv("a", 1), srv("b", 2)});
    c->set_clock([&] { return now; });
    auto t = c->servers();
    const_cast<server_config&>(t[1]->cfg).slow_start_ms = 4000;
    c->set_state(*t[1], admin_state::maint);
    c->set_state(*t[1], admin_state::ready);
    now += 1s;
    CHECK(c->effective_weight(*t[1], now) == 250);
    std::map<std::string, int> open;   // nothing released: leastconn holds b at a quarter of a
    for (int i = 0; i < 50; ++i) ++open[c->pick({})->cfg.name];
    CHECK(open["b"] >= 9);
    CHECK(open["b"] <= 11);
    CHECK(c->effective_weight(*t[0], now) == 1000);   // a never ramped
}

TEST_CASE("the queue: order, max_queue, a freed slot wakes the first waiter", "[gateway][control][queue]") {
    backend_config c;
    c.name = "q";
    c.servers = {srv("a", 1, false, 1)};
    c.queue_timeout_ms = 1000;
    c.max_queue = 2;
    backend b(c);
    auto& a = *b.servers()[0];
    CHECK_FALSE(b.should_queue() == false);   // a usable server, full or not: a refusal would queue
    REQUIRE(b.pick({}) == &a);
    CHECK(b.pick({}) == nullptr);            // full
    auto w1 = std::make_shared<fake_waiter>();
    auto w2 = std::make_shared<fake_waiter>();
    auto w3 = std::make_shared<fake_waiter>();
    CHECK(b.enqueue(1, w1));
    CHECK(b.enqueue(2, w2));
    CHECK_FALSE(b.enqueue(3, w3));           // max_queue 2
    CHECK(b.queued() == 2);
    backend::release(a);                     // the slot frees: the first waiter is told
    CHECK(w1->woken == 1);
    CHECK(w2->woken == 0);
    CHECK(b.queued() == 1);
    CHECK(b.enqueue(1, w1, true));           // lost the slot: back at the head, even when full
    b.dequeue(2);                            // w2 gave up
    b.wake_one();
    CHECK(w1->woken == 2);
    CHECK(b.queued() == 0);
    a.up = false;
    CHECK_FALSE(b.should_queue());           // nobody could ever take it: refused at once

    backend_config off = c;
    off.queue_timeout_ms = 0;
    CHECK_FALSE(backend(off).should_queue());
}

namespace {

bool run_until(asio::io_context& io, const std::function<bool()>& done) {
    const auto limit = clk::now() + 10s;
    io.restart();
    while (!done() && clk::now() < limit)
        if (io.run_one_for(std::chrono::milliseconds(50)) == 0) io.restart();
    return done();
}

}  // namespace

TEST_CASE("a relay waits in the queue: a slot that frees lets it connect; queue_timeout closes it",
          "[gateway][control][queue]") {
    asio::io_context io;
    using asio::ip::tcp;
    tcp::acceptor server(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::acceptor front(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    backend_config c;
    c.name = "q";
    c.servers = {srv("a", server.local_endpoint().port(), false, 1)};
    c.queue_timeout_ms = 300;
    auto b = std::make_shared<backend>(c);
    auto& a = *b->servers()[0];
    REQUIRE(b->pick({}) == &a);   // the one slot is taken

    auto client_pair = [&] {
        tcp::socket out(io);
        out.connect(front.local_endpoint());
        tcp::socket in = front.accept();
        return std::make_pair(std::move(out), std::move(in));
    };

    SECTION("the slot frees: the waiter gets the server") {
        auto [out, in] = client_pair();
        auto r = make_relay(transport_stack(std::make_unique<tcp_transport>(std::move(in), [] {})), "", b, std::nullopt, 1);
        r->start();
        REQUIRE(run_until(io, [&] { return b->queued() == 1; }));
        CHECK(b->queued_total == 1);
        tcp::socket accepted(io);
        bool got = false;
        server.async_accept(accepted, [&](boost::system::error_code ec) { got = !ec; });
        backend::release(a);
        REQUIRE(run_until(io, [&] { return got; }));
        CHECK(b->queued() == 0);
        CHECK(b->queue_timeouts == 0);
        CHECK(a.active == 1);
        r->stop();
    }
    SECTION("nothing frees: closed after queue_timeout, counted") {
        auto [out, in] = client_pair();
        auto r = make_relay(transport_stack(std::make_unique<tcp_transport>(std::move(in), [] {})), "", b, std::nullopt, 2);
        const auto started = clk::now();
        r->start();
        std::array<char, 8> buf;
        bool closed = false;
        out.async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t) { closed = bool(ec); });
        REQUIRE(run_until(io, [&] { return closed; }));
        CHECK(clk::now() - started >= 300ms);
        CHECK(b->queue_timeouts == 1);
        CHECK(b->refused == 1);
        CHECK(b->queued() == 0);
        CHECK(a.active == 1);   // still only the slot taken above
    }
}

TEST_CASE("door: connections per source, released when they end", "[gateway][door]") {
    door_limits d(2, 0, 0);
    const auto t = clk::now();
    CHECK(d.counts_open());
    CHECK(d.admit("10.0.0.1", t) == door_limits::verdict::admitted);
    CHECK(d.admit("10.0.0.1", t) == door_limits::verdict::admitted);
    CHECK(d.admit("10.0.0.1", t) == door_limits::verdict::max_connections_per_source);
    CHECK(d.admit("10.0.0.2", t) == door_limits::verdict::admitted);   // another source
    d.release("10.0.0.1");
    CHECK(d.admit("10.0.0.1", t) == door_limits::verdict::admitted);
    d.release("10.0.0.1");
    d.release("10.0.0.1");
    d.release("10.0.0.2");
    CHECK(d.tracked() == 0);   // forgotten once nothing is open
}

TEST_CASE("door: connection rate per source and per listener, token buckets on a manual clock", "[gateway][door]") {
    door_limits d(0, 5, 0);
    CHECK_FALSE(d.counts_open());
    auto t = clk::now();
    for (int i = 0; i < 5; ++i) CHECK(d.admit("a", t) == door_limits::verdict::admitted);   // a burst of 5
    CHECK(d.admit("a", t) == door_limits::verdict::max_rate_per_source);
    CHECK(d.admit("b", t) == door_limits::verdict::admitted);
    t += 200ms;   // one token back at 5/s
    CHECK(d.admit("a", t) == door_limits::verdict::admitted);
    CHECK(d.admit("a", t) == door_limits::verdict::max_rate_per_source);
    t += 10s;     // refilled, but never beyond one second's worth
    int admitted = 0;
    for (int i = 0; i < 20; ++i) admitted += d.admit("a", t) == door_limits::verdict::admitted;
    CHECK(admitted == 5);

    door_limits l(0, 3, 4);   // listener: 4/s whatever the source; sources 3/s each
    t = clk::now();
    CHECK(l.admit("a", t) == door_limits::verdict::admitted);
    CHECK(l.admit("b", t) == door_limits::verdict::admitted);
    CHECK(l.admit("c", t) == door_limits::verdict::admitted);
    CHECK(l.admit("d", t) == door_limits::verdict::admitted);
    CHECK(l.admit("e", t) == door_limits::verdict::max_rate);
    t += 250ms;
    CHECK(l.admit("e", t) == door_limits::verdict::admitted);
    // A refusal by the listener's rate does not spend the source's token.
    door_limits m(0, 1, 1);
    t = clk::now();
    CHECK(m.admit("a", t) == door_limits::verdict::admitted);
    CHECK(m.admit("b", t) == door_limits::verdict::max_rate);
    t += 1s;
    CHECK(m.admit("b", t) == door_limits::verdict::admitted);
}

TEST_CASE("admin control: POST state and weight, every way of giving the value; errors", "[gateway][control][admin]") {
    auto b = make(balance_mode::roundrobin, {srv("a", 1), srv("b", 2)});
    std::vector<std::shared_ptr<backend>> all{b};
    admin_view v;
    v.backends = &all;
    auto& a = *b->servers()[0];
    auto relay_on_a = std::make_shared<fake_relay>();
    a.bind(7, relay_on_a);

    auto r = control_server(v, "/backends/b/servers/a/state", "", "drain");
    CHECK(r.status == 200);
    CHECK(a.admin == admin_state::drain);
    CHECK(nlohmann::json::parse(r.body)["state"] == "drain");
    CHECK(control_server(v, "/backends/b/servers/a/state", "state=maint", "").status == 200);
    CHECK(a.admin == admin_state::maint);
    CHECK(relay_on_a->closed.size() == 1);
    CHECK(control_server(v, "/backends/b/servers/a/state", "", "{\"state\": \"ready\"}").status == 200);
    CHECK(a.admin == admin_state::ready);
    CHECK(control_server(v, "/backends/b/servers/a/state", "", "state=drain\n").status == 200);
    CHECK(a.admin == admin_state::drain);

    r = control_server(v, "/backends/b/servers/a/weight", "", "7");
    CHECK(r.status == 200);
    CHECK(a.weight == 7);
    CHECK(nlohmann::json::parse(r.body)["weight"] == 7);
    CHECK(control_server(v, "/backends/b/servers/a/weight", "weight=3", "").status == 200);
    CHECK(a.weight == 3);
    CHECK(control_server(v, "/backends/b/servers/a/weight", "", "{\"weight\": 2}").status == 200);
    CHECK(a.weight == 2);

    CHECK(control_server(v, "/backends/b/servers/a/weight", "", "0").status == 400);
    CHECK(control_server(v, "/backends/b/servers/a/weight", "", "300").status == 400);
    CHECK(control_server(v, "/backends/b/servers/a/weight", "", "x").status == 400);
    CHECK(control_server(v, "/backends/b/servers/a/state", "", "disabled").status == 400);
    CHECK(control_server(v, "/backends/b/servers/a/state", "", "").status == 400);
    CHECK(control_server(v, "/backends/nope/servers/a/state", "", "ready").status == 404);
    CHECK(control_server(v, "/backends/b/servers/nope/state", "", "ready").status == 404);
    CHECK(control_server(v, "/backends/b/servers/a/colour", "", "red").status == 404);
    CHECK(a.weight == 2);   // nothing changed by the errors
    CHECK(a.admin == admin_state::drain);

    a.set_check_result(check_status::l4con, 1234, "connect: Connection refused");
    const auto j = nlohmann::json::parse(render_backends(v));
    const auto& ja = j["backends"][0]["servers"][0];
    CHECK(ja["name"] == "a");
    CHECK(ja["state"] == "drain");
    CHECK(ja["weight"] == 2);
    CHECK(ja["check"]["status"] == "L4CON");
    CHECK(ja["check"]["duration_us"] == 1234);
    CHECK(ja["check"]["detail"] == "connect: Connection refused");
    CHECK(j["backends"][0]["queue"]["waiting"] == 0);
    const auto metrics = render_metrics(v, {});
    CHECK_THAT(metrics, Catch::Contains("switchboard_backend_server_check_status{backend=\"b\",server=\"a\",status=\"L4CON\"} 1"));
    CHECK_THAT(metrics, Catch::Contains("switchboard_backend_server_state{backend=\"b\",server=\"a\",state=\"drain\"} 1"));
    CHECK_THAT(metrics, Catch::Contains("switchboard_backend_server_state{backend=\"b\",server=\"a\",state=\"ready\"} 0"));
    CHECK_THAT(metrics, Catch::Contains("switchboard_backend_server_weight{backend=\"b\",server=\"a\"} 2"));
    CHECK_THAT(metrics, Catch::Contains("switchboard_backend_queue{backend=\"b\"} 0"));
}

TEST_CASE("check statuses have HAProxy's names", "[gateway][check]") {
    CHECK(check_status_name(check_status::l4ok) == "L4OK");
    CHECK(check_status_name(check_status::l4con) == "L4CON");
    CHECK(check_status_name(check_status::l4tout) == "L4TOUT");
    CHECK(check_status_name(check_status::l6ok) == "L6OK");
    CHECK(check_status_name(check_status::l6tout) == "L6TOUT");
    CHECK(check_status_name(check_status::l7ok) == "L7OK");
    CHECK(check_status_name(check_status::l7rsp) == "L7RSP");
    CHECK(check_status_name(check_status::l7tout) == "L7TOUT");
    CHECK(check_status_name(check_status::l7sts) == "L7STS");
}

TEST_CASE("control keys load: slow_start, queue, door limits, TLS checks", "[gateway][config]") {
    const auto c = load_config_text(R"(
listeners:
  - { name: l, port: 1, max_connections_per_source: 5, max_rate_per_source: 10, max_rate: 100 }
backends:
  - name: b
    slow_start: 30s
    queue_timeout: 2s
    max_queue: 50
    check: { type: mqtt, tls: true, sni: broker.example, verify: true, ca: /etc/ca.pem }
    servers:
      - { name: s, address: "127.0.0.1:1", slow_start: 5s }
      - { name: t, address: "127.0.0.1:2" }
)", "x.yaml");
    const auto& l = c.listeners.at(0);
    CHECK(l.max_connections_per_source == 5);
    CHECK(l.max_rate_per_source == 10);
    CHECK(l.max_rate == 100);
    const auto& b = c.backends.at(0);
    CHECK(b.slow_start_ms == 30000);
    CHECK(b.queue_timeout_ms == 2000);
    CHECK(b.max_queue == 50);
    CHECK(b.check.tls);
    CHECK(b.check.tls_sni == "broker.example");
    CHECK(b.check.tls_verify);
    CHECK(b.check.tls_ca_file == "/etc/ca.pem");
    CHECK(b.servers.at(0).slow_start_ms == 5000u);
    CHECK_FALSE(b.servers.at(1).slow_start_ms);   // the backend's
    const auto d = load_config_text("listeners: [{ name: l, port: 1 }]", "y.yaml");
    CHECK(d.listeners.at(0).max_connections_per_source == 0);
    CHECK(d.listeners.at(0).max_rate == 0);
}
