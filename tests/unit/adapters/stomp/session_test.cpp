// tests/unit/adapters/stomp/session_test.cpp — the STOMP session in its connection engine,
// driven deterministically: a manual clock, the manual executor with the memory store, no
// threads and no sleeps (tests/unit/adapters/engine_harness.hpp).
#include <optional>
#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>
#include <utility>

#include "adapters/stomp/session.hpp"
#include "tests/unit/adapters/engine_harness.hpp"
#include "tests/unit/adapters/stomp/frame_text.hpp"

using namespace std::chrono_literals;
using sb::engine::phase;
using sb::test::engine_harness;

namespace {

using headers = sb::test::stomp_headers;
using sb::test::frame;

std::shared_ptr<sb::stomp::settings> settings() {
    auto s = std::make_shared<sb::stomp::settings>();
    s->connect_timeout_ms = 1000;
    s->linger_ms = 500;
    return s;
}

void open(engine_harness& h, std::shared_ptr<const sb::stomp::settings> s = settings()) {
    h.open(sb::stomp::make_session(std::move(s), h.broker(), h.auth(), 7));
}

std::string connect_frame(std::string_view heart_beat = "0,0", std::string_view login = "guest") {
    return frame("CONNECT", {{"accept-version", "1.0,1.1,1.2"}, {"host", "x"}, {"login", login}, {"heart-beat", heart_beat}});
}

std::size_t count(const std::string& s, std::string_view what) {
    std::size_t n = 0;
    for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
    return n;
}

}  // namespace

TEST_CASE("STOMP CONNECT negotiates the highest common version and opens the connection", "[stomp][session][engine]") {
    engine_harness h;
    open(h);
    CHECK(h.conn->state() == phase::opening);
    h.send(connect_frame());
    const auto out = h.take();
    CHECK(out.rfind("CONNECTED\n", 0) == 0);
    CHECK_THAT(out, Catch::Contains("version:1.2"));
    CHECK_THAT(out, Catch::Contains("session:7"));
    CHECK(h.conn->state() == phase::open);
    CHECK(h.conn->next_deadline() == sb::engine::never);   // no heart-beats: nothing to wait for
    CHECK_FALSE(h.conn->holds_buffers());                    // idle: no input, no output storage
}

TEST_CASE("STOMP CONNECT without a common version gets ERROR and the connection closes", "[stomp][session][engine]") {
    engine_harness h;
    open(h);
    h.send(frame("CONNECT", {{"accept-version", "2.0"}}));
    const auto out = h.take();
    CHECK(out.rfind("ERROR\n", 0) == 0);
    CHECK_THAT(out, Catch::Contains("version:1.0,1.1,1.2"));
    CHECK(h.conn->state() == phase::closing);
    CHECK(h.shut);   // ERROR written, the send side shut
}

TEST_CASE("STOMP CONNECT with refused credentials gets ERROR and closes", "[stomp][session][engine]") {
    engine_harness h;
    open(h);
    h.send(connect_frame("0,0", "intruder"));
    const auto out = h.take();
    CHECK(out.rfind("ERROR\n", 0) == 0);
    CHECK_THAT(out, Catch::Contains("message:Authentication failed"));
    CHECK(h.conn->state() == phase::closing);
}

TEST_CASE("a STOMP connection without CONNECT in time is closed at the connect deadline", "[stomp][session][engine]") {
    engine_harness h;
    open(h);
    h.advance(999ms);
    CHECK(h.conn->state() == phase::opening);
    h.send("CONN");   // a partial frame does not count as connecting
    h.advance(1ms);
    CHECK(h.conn->closed());
    CHECK(h.take().empty());
}

TEST_CASE("STOMP heart-beats: silence past the grace period closes, our own go out when idle", "[stomp][session][engine]") {
    engine_harness h;
    open(h);
    // The client sends every 400 ms and wants ours every 300 ms.
    h.send(connect_frame("400,300"));
    CHECK_THAT(h.take(), Catch::Contains("heart-beat:300,400"));

    SECTION("our heart-beats") {
        h.advance(299ms);
        CHECK(h.take().empty());
        h.advance(1ms);
        CHECK(h.take() == "\n");
        h.send("\n");   // the client's, in time
        h.advance(300ms);
        CHECK(h.take() == "\n");
    }
    SECTION("the client's expire after 1.5 x 400 ms without input") {
        h.advance(500ms);
        h.send("\n");   // a heart-beat resets the expiry
        h.advance(599ms);
        CHECK(h.conn->state() == phase::open);
        h.advance(1ms);
        CHECK(h.conn->closed());
    }
}

TEST_CASE("STOMP stops reading at max_unconfirmed_sends and resumes as publishes complete", "[stomp][session][engine]") {
    auto s = settings();
    s->max_unconfirmed_sends = 2;
    engine_harness h;
    open(h, s);
    h.send(connect_frame());
    h.take();
    std::string sends;
    for (const char* r : {"r1", "r2", "r3"}) sends += frame("SEND", {{"destination", "/queue/a"}, {"receipt", r}}, "x");
    h.feed_only(sends);   // the kernel has not answered yet
    CHECK(h.conn->unconfirmed() == 2);
    CHECK_FALSE(h.conn->wants_read());
    CHECK(h.conn->buffered_input() > 0);   // the third SEND waits, decoded later
    h.pump();
    const auto out = h.take();
    CHECK(count(out, "RECEIPT") == 3);
    CHECK(out.find("receipt-id:r1") < out.find("receipt-id:r2"));
    CHECK(out.find("receipt-id:r2") < out.find("receipt-id:r3"));
    CHECK(h.conn->wants_read());
    CHECK(h.conn->unconfirmed() == 0);
    CHECK(h.conn->buffered_input() == 0);
}

TEST_CASE("STOMP frames split across reads: each decoded once, in order, only an unfinished frame's bytes kept",
          "[stomp][session][engine]") {
    engine_harness h;
    open(h);
    h.send(connect_frame());
    h.take();
    // A large first frame (held over several 4 KiB steps), whole frames after it in the same
    // read, and an unfinished one at the read's end.
    std::string all, last;
    for (int i = 1; i <= 12; ++i) {
        const auto r = "r" + std::to_string(i);
        const auto f = frame("SEND", {{"destination", "/queue/split"}, {"receipt", r}},
                             i == 1 ? std::string(10000, 'a') : std::string(static_cast<std::size_t>(i), 'b'));
        if (i == 12) last = f;
        all += f;
    }
    const std::size_t cut1 = 5000, cut2 = all.size() - last.size() / 2;
    h.send(all.substr(0, cut1));
    CHECK(h.conn->buffered_input() == cut1);
    h.send(all.substr(cut1, cut2 - cut1));
    CHECK(h.conn->buffered_input() == last.size() - last.size() / 2);   // frame 12's first half
    auto out = h.take();
    CHECK(count(out, "RECEIPT") == 11);
    h.send(all.substr(cut2));
    CHECK(h.conn->buffered_input() == 0);
    out += h.take();
    REQUIRE(count(out, "RECEIPT") == 12);
    for (int i = 1; i < 12; ++i)
        CHECK(out.find("receipt-id:r" + std::to_string(i) + "\n") < out.find("receipt-id:r" + std::to_string(i + 1) + "\n"));
}

TEST_CASE("STOMP input held while reading is paused is decoded a frame per completion, in order, then released",
          "[stomp][session][engine]") {
    auto s = settings();
    s->max_unconfirmed_sends = 1;
    engine_harness h;
    open(h, s);
    h.send(connect_frame());
    h.take();
    std::string sends;
    for (int i = 1; i <= 20; ++i)
        sends += frame("SEND", {{"destination", "/queue/held"}, {"receipt", "r" + std::to_string(i)}}, std::string(40, 'x'));
    h.feed_only(sends);
    CHECK(h.conn->unconfirmed() == 1);
    const auto first = frame("SEND", {{"destination", "/queue/held"}, {"receipt", "r1"}}, std::string(40, 'x')).size();
    CHECK(h.conn->buffered_input() == sends.size() - first);   // 19 frames wait
    h.pump();   // each completion lets one more frame through
    const auto out = h.take();
    REQUIRE(count(out, "RECEIPT") == 20);
    for (int i = 1; i < 20; ++i)
        CHECK(out.find("receipt-id:r" + std::to_string(i) + "\n") < out.find("receipt-id:r" + std::to_string(i + 1) + "\n"));
    CHECK(h.conn->buffered_input() == 0);
    CHECK(h.conn->wants_read());
}

TEST_CASE("STOMP output over the high watermark pauses consumers and reading until it drains", "[stomp][session][engine]") {
    auto s = settings();
    s->output.high_watermark = 400;
    s->output.low_watermark = 100;
    engine_harness h;
    open(h, s);
    h.send(connect_frame());
    h.send(frame("SUBSCRIBE", {{"id", "s"}, {"destination", "/queue/a"}, {"receipt", "sub"}}));
    CHECK_THAT(h.take(), Catch::Contains("receipt-id:sub"));

    h.hold_writes = true;   // the peer stops reading
    const std::string body(150, 'b');
    for (int i = 0; i < 6; ++i) h.send(frame("SEND", {{"destination", "/queue/a"}}, body));
    const auto first = h.start_held_write();
    CHECK(first > 0);
    h.pump();
    CHECK(h.conn->queued_output() > 400);
    CHECK(h.conn->consumers_paused());
    CHECK_FALSE(h.conn->wants_read());
    h.send(frame("SEND", {{"destination", "/queue/a"}, {"receipt", "late"}}, "y"));   // waits in the socket
    CHECK(h.unread.size() > 0);

    // The peer reads: the output drains, the consumers resume, the waiting SEND is decoded.
    h.hold_writes = false;
    h.finish_held_write();
    const auto out = h.take();
    CHECK_FALSE(h.conn->consumers_paused());
    CHECK(h.conn->wants_read());
    CHECK(h.unread.empty());
    CHECK(count(out, "MESSAGE\n") >= 6);
    CHECK_THAT(out, Catch::Contains("receipt-id:late"));
}

TEST_CASE("STOMP receipts go out in frame order: a ready one waits behind one awaiting the kernel", "[stomp][session][engine]") {
    engine_harness h;
    open(h);
    h.send(connect_frame());
    h.take();
    h.feed_only(frame("SEND", {{"destination", "/queue/a"}, {"receipt", "r1"}}, "x") +
                frame("BEGIN", {{"transaction", "t"}, {"receipt", "r2"}}));
    // BEGIN's receipt is ready now, but the SEND's publish has not completed: nothing goes yet.
    CHECK(h.conn->queued_output() == 0);
    h.pump();
    const auto out = h.take();
    REQUIRE(out.find("receipt-id:r1") != std::string::npos);
    CHECK(out.find("receipt-id:r1") < out.find("receipt-id:r2"));
}

TEST_CASE("STOMP protocol error: ERROR, the send side shut, input drained during the linger, then closed", "[stomp][session][engine]") {
    engine_harness h;
    open(h);
    h.send(connect_frame());
    h.take();
    h.send(std::string("SEND\nno colon here\n\nx\0", 22));
    const auto out = h.take();
    CHECK(out.rfind("ERROR\n", 0) == 0);
    CHECK_THAT(out, Catch::Contains("message:malformed header"));
    CHECK(h.shut);
    CHECK(h.conn->state() == phase::closing);

    SECTION("the linger ends") {
        h.send(frame("SEND", {{"destination", "/queue/a"}, {"receipt", "r10"}}, "x"));   // dropped
        CHECK(h.take().empty());
        CHECK(h.conn->wants_read());   // still draining
        h.advance(499ms);
        CHECK(h.conn->state() == phase::closing);
        h.advance(1ms);
        CHECK(h.conn->closed());
    }
    SECTION("the peer closes first") {
        h.peer_close();
        CHECK(h.conn->closed());
    }
}

TEST_CASE("STOMP DISCONNECT with a receipt: the RECEIPT after every earlier one, then closing", "[stomp][session][engine]") {
    engine_harness h;
    open(h);
    h.send(connect_frame());
    h.take();
    h.feed_only(frame("SEND", {{"destination", "/queue/a"}, {"receipt", "s1"}}, "x") +
                frame("DISCONNECT", {{"receipt", "bye"}}));
    CHECK(h.conn->state() == phase::open);   // the publish is not confirmed yet
    h.pump();
    const auto out = h.take();
    CHECK(out.find("receipt-id:s1") < out.find("receipt-id:bye"));
    CHECK(h.conn->state() == phase::closing);
    CHECK(h.shut);
}

TEST_CASE("a STOMP subscription delivers, and its auto-ack deliveries settle once written", "[stomp][session][engine]") {
    engine_harness h;
    open(h);
    h.send(connect_frame());
    h.send(frame("SUBSCRIBE", {{"id", "s"}, {"destination", "/queue/a"}}) +
           frame("SEND", {{"destination", "/queue/a"}}, "hello"));
    const auto out = h.take();
    CHECK_THAT(out, Catch::Contains("MESSAGE\nsubscription:s"));
    CHECK_THAT(out, Catch::Contains("hello"));
    // Written and settled: the queue holds nothing in flight any more.
    std::vector<sb::core::destination_stats> stats;
    h.on_worker([&] { h.broker().stats([&](std::vector<sb::core::destination_stats> s) { stats = std::move(s); }); });
    h.run_kernel();
    REQUIRE(stats.size() == 1);
    CHECK(stats[0].inflight == 0);
    CHECK(stats[0].dequeued == 1);
    // Writing again and again, it keeps its output storage; after a quiet second, the next
    // write done leaves it holding nothing (idle connections hold no buffers).
    CHECK(h.conn->holds_buffers());
    h.advance(std::chrono::seconds(2));
    h.send(frame("SEND", {{"destination", "/queue/b"}, {"receipt", "r"}}, "x"));
    CHECK_THAT(h.take(), Catch::Contains("receipt-id:r"));
    CHECK_FALSE(h.conn->holds_buffers());
}

// ---- the kernel API v2: asynchronous authentication, kernel transactions, connection_closed ----

namespace {

// The value of header `name` in the first frame of `out` that has it.
std::string header(const std::string& out, std::string_view name) {
    const auto key = "\n" + std::string(name) + ":";
    const auto at = out.find(key);
    if (at == std::string::npos) return {};
    const auto from = at + key.size();
    return out.substr(from, out.find('\n', from) - from);
}

std::vector<sb::core::destination_stats> stats_of(engine_harness& h) {
    std::vector<sb::core::destination_stats> stats;
    h.on_worker([&] { h.broker().stats([&](std::vector<sb::core::destination_stats> s) { stats = std::move(s); }); });
    h.run_kernel();
    return stats;
}

// A copy: the snapshot it comes from is often a temporary.
std::optional<sb::core::destination_stats> stats_for(const std::vector<sb::core::destination_stats>& all,
                                                     std::string_view name) {
    for (const auto& s : all)
        if (s.dest.name == name) return s;
    return std::nullopt;
}

// A client-individual subscriber of /queue/q that received one message; returns its ack id.
std::string received_one(engine_harness& h) {
    h.send(connect_frame());
    h.send(frame("SUBSCRIBE", {{"id", "s"}, {"destination", "/queue/q"}, {"ack", "client-individual"}}) +
           frame("SEND", {{"destination", "/queue/q"}}, "m1"));
    const auto out = h.take();
    REQUIRE_THAT(out, Catch::Contains("MESSAGE\n"));
    CHECK(out.find("redelivered:true") == std::string::npos);
    return header(out, "ack");
}

}  // namespace

TEST_CASE("STOMP frames right after CONNECT wait for the asynchronous authentication, then go in order",
          "[stomp][session][engine][auth]") {
    engine_harness h;
    open(h);
    h.feed_only(connect_frame() + frame("SEND", {{"destination", "/queue/a"}, {"receipt", "r1"}}, "x") +
                frame("BEGIN", {{"transaction", "t"}, {"receipt", "r2"}}));
    // The answer is posted to the worker: until it runs, nothing is answered and the frames
    // after CONNECT wait, undecoded, with reading paused.
    CHECK(h.conn->state() == phase::opening);
    CHECK(h.conn->queued_output() == 0);
    CHECK_FALSE(h.conn->wants_read());
    CHECK(h.conn->buffered_input() > 0);
    CHECK(h.conn->unconfirmed() == 0);   // the SEND was not handled
    REQUIRE(h.worker().run_one());       // the authentication's answer
    CHECK(h.conn->state() == phase::open);
    CHECK(h.conn->buffered_input() == 0);   // then the held frames were handled
    h.pump();
    const auto out = h.take();
    REQUIRE(out.rfind("CONNECTED\n", 0) == 0);
    REQUIRE(out.find("receipt-id:r1") != std::string::npos);
    CHECK(out.find("receipt-id:r1") < out.find("receipt-id:r2"));
    CHECK(h.conn->wants_read());
}

TEST_CASE("STOMP CONNECT is refused with ERROR server busy when the authentication queue is full",
          "[stomp][session][engine][auth]") {
    engine_harness h({}, {1, 0});   // no request may wait for the hashing thread
    h.authenticator().hashing = true;
    open(h);
    h.send(connect_frame() + frame("SEND", {{"destination", "/queue/a"}, {"receipt", "r1"}}, "x"));
    const auto out = h.take();
    CHECK(out.rfind("ERROR\n", 0) == 0);
    CHECK_THAT(out, Catch::Contains("message:server busy"));
    CHECK(out.find("RECEIPT") == std::string::npos);   // nothing after CONNECT was handled
    CHECK(h.conn->state() == phase::closing);
}

TEST_CASE("STOMP CONNECT refusals after the credentials keep their order: credentials first",
          "[stomp][session][engine][auth]") {
    engine_harness h;
    open(h);
    SECTION("a bad heart-beat with good credentials") {
        h.send(connect_frame("x,y"));
        CHECK_THAT(h.take(), Catch::Contains("message:invalid heart-beat header"));
    }
    SECTION("a bad heart-beat with refused credentials") {
        h.send(connect_frame("x,y", "intruder"));
        CHECK_THAT(h.take(), Catch::Contains("message:Authentication failed"));
    }
    SECTION("a STOMP frame's receipt is named by its ERROR") {
        h.send(frame("STOMP", {{"accept-version", "1.2"}, {"host", "x"}, {"login", "intruder"}, {"receipt", "c1"}}));
        const auto out = h.take();
        CHECK_THAT(out, Catch::Contains("message:Authentication failed"));
        CHECK_THAT(out, Catch::Contains("receipt-id:c1"));
    }
    CHECK(h.conn->state() == phase::closing);
}

TEST_CASE("a STOMP connection that closes while its authentication is pending ignores the answer",
          "[stomp][session][engine][auth]") {
    engine_harness h;
    open(h);
    h.feed_only(connect_frame());
    h.on_worker([&] { h.conn->read_closed(); });   // the peer leaves before the answer
    CHECK(h.conn->closed());
    h.pump();   // the answer arrives: the connection stays closed, says nothing
    CHECK(h.conn->closed());
    CHECK(h.take().empty());
}

TEST_CASE("a STOMP transaction's sends are invisible until COMMIT, whose RECEIPT follows the commit",
          "[stomp][session][engine][transaction]") {
    engine_harness h;
    open(h);
    h.send(connect_frame());
    h.send(frame("SUBSCRIBE", {{"id", "s"}, {"destination", "/queue/t"}}) + frame("BEGIN", {{"transaction", "t1"}}) +
           frame("SEND", {{"destination", "/queue/t"}, {"transaction", "t1"}, {"receipt", "s1"}}, "one") +
           frame("SEND", {{"destination", "/queue/t"}, {"transaction", "t1"}}, "two"));
    auto out = h.take();
    CHECK_THAT(out, Catch::Contains("receipt-id:s1"));
    CHECK(out.find("MESSAGE") == std::string::npos);
    const auto t = stats_for(stats_of(h), "t");
    CHECK((!t || t->enqueued == 0));   // the kernel transaction holds them

    h.feed_only(frame("COMMIT", {{"transaction", "t1"}, {"receipt", "c1"}}) +
                frame("SEND", {{"destination", "/queue/t"}}, "three"));
    CHECK_FALSE(h.conn->wants_read());   // a commit under way holds the input
    h.pump();
    out = h.take();
    CHECK_THAT(out, Catch::Contains("receipt-id:c1"));
    REQUIRE(count(out, "MESSAGE\n") == 3);
    // The SEND after COMMIT never overtakes the transaction's messages.
    CHECK(out.find("one") < out.find("two"));
    CHECK(out.find("two") < out.find("three"));
}

TEST_CASE("STOMP ABORT gives what the transaction acknowledged back, counted as a redelivery",
          "[stomp][session][engine][transaction]") {
    engine_harness h;
    open(h);
    const auto ack = received_one(h);
    h.send(frame("BEGIN", {{"transaction", "t"}}) + frame("ACK", {{"id", ack}, {"transaction", "t"}}) +
           frame("ABORT", {{"transaction", "t"}, {"receipt", "a"}}));
    const auto out = h.take();
    CHECK_THAT(out, Catch::Contains("receipt-id:a"));
    // Back to the queue and to its consumer again, marked redelivered.
    REQUIRE_THAT(out, Catch::Contains("MESSAGE\n"));
    CHECK_THAT(out, Catch::Contains("redelivered:true"));
    auto q = stats_for(stats_of(h), "q");
    REQUIRE(q);
    CHECK(q->dequeued == 0);
    CHECK(q->inflight == 1);

    SECTION("a committed ACK consumes it") {
        const auto again = header(out, "ack");
        h.send(frame("BEGIN", {{"transaction", "t2"}}) + frame("ACK", {{"id", again}, {"transaction", "t2"}}) +
               frame("COMMIT", {{"transaction", "t2"}, {"receipt", "c"}}));
        CHECK_THAT(h.take(), Catch::Contains("receipt-id:c"));
        q = stats_for(stats_of(h), "q");
        REQUIRE(q);
        CHECK(q->dequeued == 1);
        CHECK(q->inflight == 0);
    }
}

TEST_CASE("a STOMP transaction is bounded by stomp max_transaction_frames, SENDs and ACKs together",
          "[stomp][session][engine][transaction]") {
    auto s = settings();
    s->max_transaction_frames = 2;
    engine_harness h;
    open(h, s);
    const auto ack = received_one(h);
    h.send(frame("BEGIN", {{"transaction", "t"}}) + frame("ACK", {{"id", ack}, {"transaction", "t"}}) +
           frame("SEND", {{"destination", "/queue/q"}, {"transaction", "t"}}, "a") +
           frame("SEND", {{"destination", "/queue/q"}, {"transaction", "t"}}, "b"));
    const auto out = h.take();
    CHECK_THAT(out, Catch::Contains("message:transaction too large"));
    CHECK(h.conn->state() == phase::closing);
}

TEST_CASE("a STOMP connection's close rolls its open transaction back and deletes its temporary queue",
          "[stomp][session][engine][transaction]") {
    engine_harness h;
    open(h);
    const auto ack = received_one(h);
    h.send(frame("BEGIN", {{"transaction", "t"}}) + frame("ACK", {{"id", ack}, {"transaction", "t"}}));
    // A temporary queue the kernel keeps for this connection (id 7).
    sb::core::destination temp;
    h.on_worker([&] { temp = h.broker().create_temporary(7, sb::core::dest_kind::temp_queue); });
    h.run_kernel();
    REQUIRE(stats_for(stats_of(h), temp.name).has_value());

    h.peer_close();
    REQUIRE(h.conn->closed());
    // The transaction's ACK never took effect: the message is back, waiting.
    const auto all = stats_of(h);
    const auto q = stats_for(all, "q");
    REQUIRE(q);
    CHECK(q->dequeued == 0);
    CHECK(q->depth == 1);
    CHECK(q->inflight == 0);
    CHECK_FALSE(stats_for(all, temp.name).has_value());   // gone with its connection
    std::optional<sb::core::publish_status> sent;
    h.on_worker([&] {
        auto m = std::make_shared<sb::core::message>();
        m->dest = temp;
        m->id = h.broker().next_message_id();
        h.broker().publish(m, [&](sb::core::publish_status st) { sent = st; });
    });
    h.run_kernel();
    CHECK(sent == sb::core::publish_status::no_destination);

    // The next consumer gets it marked redelivered (counted once).
    open(h);
    h.send(connect_frame());
    h.send(frame("SUBSCRIBE", {{"id", "s"}, {"destination", "/queue/q"}}));
    const auto out = h.take();
    REQUIRE_THAT(out, Catch::Contains("MESSAGE\n"));
    CHECK_THAT(out, Catch::Contains("redelivered:true"));
}

TEST_CASE("a STOMP durable subscription ended before the kernel attached it leaves no consumer behind", "[stomp][session][engine]") {
    // The kernel attaches a durable consumer only after every shard registered the subscription:
    // the session's unsubscribe must not overtake that (found by stomp_session_fuzz).
    engine_harness h;
    open(h);
    h.send(frame("CONNECT", {{"accept-version", "1.2"}, {"client-id", "c"}}));
    h.feed_only(frame("SUBSCRIBE", {{"id", "d"}, {"destination", "/topic/t"}, {"activemq.subscriptionName", "n"}}) +
                frame("UNSUBSCRIBE", {{"id", "d"}}));
    h.pump();
    std::vector<sb::core::destination_stats> stats;
    h.on_worker([&] { h.broker().stats([&](std::vector<sb::core::destination_stats> s) { stats = std::move(s); }); });
    h.run_kernel();
    bool found = false;
    for (const auto& st : stats) {
        if (st.dest.name.find("c:n") == std::string::npos) continue;
        found = true;
        CHECK(st.consumers == 0);   // the subscription stays (no name on UNSUBSCRIBE), its consumer went
    }
    CHECK(found);
}
