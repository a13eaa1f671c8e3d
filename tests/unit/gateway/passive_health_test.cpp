// tests/unit/gateway/passive_health_test.cpp — passive health (observe: layer4) and redispatch:
// the error window, which connect errors mark a server down at once, the mark-down itself
// (one transition however many report it, relays closed), and the backups a redispatched
// connection may reach.

#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <memory>
#include <thread>
#include <vector>

#include "gateway/backend.hpp"
#include "gateway/passive_health.hpp"

using namespace sb::gateway;
using namespace std::chrono_literals;

namespace {

backend make_backend(bool observe, std::uint32_t limit = 3, bool redispatch = false) {
    backend_config c;
    c.name = "b";
    c.balance = balance_mode::first;
    c.observe_layer4 = observe;
    c.error_limit = limit;
    c.error_window_ms = 10000;
    c.redispatch = redispatch;
    c.servers = {server_config{"primary", "127.0.0.1", 1, false, 0, 1},
                 server_config{"spare", "127.0.0.1", 2, true, 0, 1}};
    return backend(c);
}

struct counting_connection final : bound_connection {
    std::atomic<int> closed{0};
    void close_from_server(const char*) noexcept override { ++closed; }
};

}  // namespace

TEST_CASE("error window: limit errors within the window are the signal, older ones expire", "[gateway][passive]") {
    error_window w;
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    CHECK_FALSE(w.add(t0, 3, 1000ms));
    CHECK_FALSE(w.add(t0 + 100ms, 3, 1000ms));
    CHECK(w.add(t0 + 200ms, 3, 1000ms));          // the third within 1 s
    CHECK(w.count(t0 + 200ms, 1000ms) == 0);      // and the window starts again
    CHECK_FALSE(w.add(t0 + 300ms, 3, 1000ms));

    error_window spread;
    CHECK_FALSE(spread.add(t0, 3, 1000ms));
    CHECK_FALSE(spread.add(t0 + 600ms, 3, 1000ms));
    CHECK_FALSE(spread.add(t0 + 1200ms, 3, 1000ms));   // the first has expired: two in the window
    CHECK(spread.count(t0 + 1200ms, 1000ms) == 2);
    CHECK(spread.add(t0 + 1300ms, 3, 1000ms));

    error_window never;
    for (int i = 0; i < 100; ++i) CHECK_FALSE(never.add(t0, 0, 1000ms));
}

TEST_CASE("connect errors: refused and reset mark down at once, a timeout counts, others do not", "[gateway][passive]") {
    CHECK(classify_connect_error(ECONNREFUSED) == connect_outcome::refused);
    CHECK(classify_connect_error(ECONNRESET) == connect_outcome::refused);
    CHECK(classify_connect_error(ETIMEDOUT) == connect_outcome::timeout);
    CHECK(classify_connect_error(EMFILE) == connect_outcome::other);
    CHECK(classify_connect_error(ENETUNREACH) == connect_outcome::other);
}

TEST_CASE("observe layer4: a refused connect takes the server down once and closes its relays", "[gateway][passive]") {
    backend b = make_backend(true);
    auto& primary = *b.servers()[0];
    auto relayed = std::make_shared<counting_connection>();
    primary.bind(7, relayed);

    report_connect_failure(b, primary, ECONNREFUSED);
    CHECK_FALSE(primary.up.load());
    CHECK(primary.transitions == 1);
    CHECK(primary.passive.marked_down == 1);
    CHECK(primary.passive.errors_seen == 1);
    CHECK(primary.passive.down_at_ns.load() > 0);
    CHECK(relayed->closed == 1);

    report_connect_failure(b, primary, ECONNREFUSED);   // already down: nothing more
    CHECK(primary.transitions == 1);
    CHECK(primary.passive.marked_down == 1);
    CHECK(relayed->closed == 1);
    primary.unbind(7);

    // The spare (a backup) is now the server for a new connection.
    server_state* s = b.pick({});
    REQUIRE(s != nullptr);
    CHECK(s->cfg.name == "spare");
    backend::release(*s);
}

TEST_CASE("observe layer4: timeouts and resets count towards error_limit", "[gateway][passive]") {
    backend b = make_backend(true, 3);
    auto& primary = *b.servers()[0];
    report_connect_failure(b, primary, ETIMEDOUT);
    report_relay_reset(b, primary);
    CHECK(primary.up.load());
    report_connect_failure(b, primary, EMFILE);   // ours, not the server's: not counted
    CHECK(primary.up.load());
    CHECK(primary.passive.errors_seen == 2);
    report_relay_reset(b, primary);               // the third within the window
    CHECK_FALSE(primary.up.load());
    CHECK(primary.passive.marked_down == 1);
}

TEST_CASE("without observe: the relays' errors change nothing", "[gateway][passive]") {
    backend b = make_backend(false, 1);
    auto& primary = *b.servers()[0];
    report_connect_failure(b, primary, ECONNREFUSED);
    for (int i = 0; i < 5; ++i) report_relay_reset(b, primary);
    CHECK(primary.up.load());
    CHECK(primary.transitions == 0);
    CHECK(primary.passive.errors_seen == 0);
}

TEST_CASE("mark_down: one transition however many threads take the server down at once", "[gateway][passive]") {
    backend b = make_backend(true);
    auto& primary = *b.servers()[0];
    std::atomic<int> took{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&, i] {
            if (mark_down(b, primary, "test", i % 2 == 0)) ++took;
        });
    for (auto& t : threads) t.join();
    CHECK(took == 1);
    CHECK(primary.transitions == 1);
    CHECK_FALSE(primary.up.load());
}

TEST_CASE("redispatch: after a failed connect to every primary the backups are candidates", "[gateway][passive]") {
    SECTION("without redispatch the spare waits for the primary to be marked down") {
        backend b = make_backend(false);
        server_state* primary = b.servers()[0].get();
        std::vector<server_state*> tried{primary};
        CHECK(b.pick(tried) == nullptr);
    }
    SECTION("with redispatch the spare takes the connection while the primary is still up") {
        backend b = make_backend(false, 3, true);
        server_state* primary = b.servers()[0].get();
        CHECK(b.pick({}) == primary);   // the primary first, as always
        backend::release(*primary);
        std::vector<server_state*> tried{primary};
        server_state* s = b.pick(tried);
        REQUIRE(s != nullptr);
        CHECK(s->cfg.name == "spare");
        backend::release(*s);
        tried.push_back(s);
        CHECK(b.pick(tried) == nullptr);   // every server tried: refused
    }
}
