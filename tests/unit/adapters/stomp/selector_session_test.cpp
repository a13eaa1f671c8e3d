// tests/unit/adapters/stomp/selector_session_test.cpp — SUBSCRIBE's `selector` header: compiled
// for the kernel (numeric comparison of a STOMP header as ActiveMQ does it), a blank one is none,
// an invalid one an ERROR with the compiler's message.
#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>
#include <utility>

#include "adapters/stomp/session.hpp"
#include "tests/unit/adapters/engine_harness.hpp"
#include "tests/unit/adapters/stomp/frame_text.hpp"

using sb::engine::phase;
using sb::test::engine_harness;

namespace {

using headers = sb::test::stomp_headers;
using sb::test::frame;

void open(engine_harness& h) {
    auto s = std::make_shared<sb::stomp::settings>();
    s->connect_timeout_ms = 1000;
    s->linger_ms = 500;
    s->selector_limits.max_length = 64;
    h.open(sb::stomp::make_session(std::move(s), h.broker(), h.auth(), 7));
    h.send(frame("CONNECT", {{"accept-version", "1.2"}, {"host", "x"}, {"login", "guest"}, {"heart-beat", "0,0"}}));
    REQUIRE_THAT(h.take(), Catch::Contains("CONNECTED"));
}

}  // namespace

TEST_CASE("STOMP selector header: a consumer gets only what it selects, headers compared as numbers",
          "[stomp][session][selector]") {
    engine_harness h;
    open(h);
    h.send(frame("SUBSCRIBE", {{"id", "s"}, {"destination", "/queue/a"}, {"selector", "x > 3 AND JMSType = 'car'"}}));
    h.send(frame("SEND", {{"destination", "/queue/a"}, {"x", "5"}, {"type", "car"}}, "five") +
           frame("SEND", {{"destination", "/queue/a"}, {"x", "2"}, {"type", "car"}}, "two") +
           frame("SEND", {{"destination", "/queue/a"}, {"x", "9"}, {"type", "bus"}}, "bus") +
           frame("SEND", {{"destination", "/queue/a"}, {"x", "10"}, {"type", "car"}}, "ten"));
    const auto out = h.take();
    CHECK_THAT(out, Catch::Contains("five"));
    CHECK_THAT(out, Catch::Contains("ten"));
    CHECK_THAT(out, !Catch::Contains("two"));
    CHECK_THAT(out, !Catch::Contains("bus"));
    CHECK(h.conn->state() == phase::open);
}

TEST_CASE("STOMP selector header: blank means no selector", "[stomp][session][selector]") {
    engine_harness h;
    open(h);
    h.send(frame("SUBSCRIBE", {{"id", "s"}, {"destination", "/topic/t"}, {"selector", "  "}}));
    h.send(frame("SEND", {{"destination", "/topic/t"}}, "any"));
    CHECK_THAT(h.take(), Catch::Contains("any"));
}

TEST_CASE("STOMP selector header: an invalid selector is an ERROR naming what and where", "[stomp][session][selector]") {
    engine_harness h;
    open(h);
    h.send(frame("SUBSCRIBE", {{"id", "s"}, {"destination", "/queue/a"}, {"selector", "x >>> 3"}, {"receipt", "r1"}}));
    const auto out = h.take();
    CHECK_THAT(out, Catch::StartsWith("ERROR"));
    CHECK_THAT(out, Catch::Contains("invalid selector: unexpected '>' at position 4"));
    CHECK_THAT(out, Catch::Contains("receipt-id:r1"));
    CHECK(h.conn->state() >= phase::closing);
}

TEST_CASE("STOMP selector header: longer than the limit is an ERROR", "[stomp][session][selector]") {
    engine_harness h;
    open(h);
    const std::string longer = "x = '" + std::string(80, 'a') + "'";
    h.send(frame("SUBSCRIBE", {{"id", "s"}, {"destination", "/queue/a"}, {"selector", longer}}));
    CHECK_THAT(h.take(), Catch::Contains("selector longer than 64 bytes"));
}
