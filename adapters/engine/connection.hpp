// adapters/engine/connection.hpp — the connection engine: everything a protocol session shares,
// with no I/O (the shape of Qpid Proton's connection_driver).
//
// A protocol session derives from engine::connection and supplies its decoder step, on_frame,
// deliver and fail (and, if it needs them, on_closing, on_send_idle, input_held,
// on_input_drained). A driver (gateway/engine_driver for Asio transports; tests and fuzzers
// drive it by hand) moves the bytes:
//
//   bytes in    feed(span)          what the driver read (e.g. into its worker's scratch
//                                   buffer); decoded in place, only an unfinished frame's bytes
//                                   are kept (in storage released once empty)
//   bytes out   begin_write()       everything queued, as one buffer for one gathered write
//               write_done(n)       (or write_failed())
//   time        tick(now)           handles due deadlines; next_deadline() says when to call it
//   end         read_closed()       EOF or a read error
//               send_finished()     closing and everything written: shut the send side
//               closed()            close the transport
//   interest    wants_read()        false while reading is paused (back-pressure)
//
// Kernel completions and deliveries arrive outside any driver call. The engine then tells the
// driver through driver_hooks::wake() that it should look again (output queued, read interest,
// deadline or close state changed) — once, after the protocol's code returned, and never
// during a driver call, so neither side is re-entered in the middle of its work. A protocol
// wraps each kernel completion in completion(f) to get this (and to keep the connection alive
// until it runs).
//
// It owns: input buffering and the decode loop; the output queue (out()) and the settlement of
// deliveries that count as consumed once written (settle_on_write); output flow (deliveries
// kept past the high watermark, consumers paused, slow consumers disconnected); the
// unconfirmed-publish count and the watermarks that pause reading; deadlines (connect,
// receive timeout, send-idle heart-beat, linger, output stall); the closing state machine
// (close(): stop taking frames -> flush -> shut the send side -> linger draining input ->
// closed; abort(): closed at once); the consumer table; the log context (conn, peer, proto).
// Generic ordered replies are engine::reply_queue (adapters/engine/reply_queue.hpp).
//
// A protocol taking raw bytes (AMQP over Proton's connection_driver) returns
// step::frame(in.size()) from decode and handles the bytes in on_frame(); it writes what its
// own engine produced into out().
//
// One allocation per connection (make_shared of the protocol's session); the driver is owned by
// the connection (attach). All calls on the connection's worker thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "adapters/engine/output_flow.hpp"
#include "adapters/engine/write_settlements.hpp"
#include "core/broker.hpp"

namespace sb::engine {

// What every connection is bounded by; a protocol's settings derive from it.
struct limits {
    std::uint32_t connect_timeout_ms = 10000;   // not open() by then: closed
    std::size_t max_unconfirmed_sends = 1024;   // kernel publishes outstanding: reading stops here
    output_limits output;                       // past its high watermark reading stops, consumers pause
    std::uint32_t linger_ms = 2000;             // closing: drain input this long for the peer to read our last frame
};

// One step of a protocol's decoder over the bytes not yet consumed.
struct step {
    enum class kind : std::uint8_t { frame, skip, need_more, error };
    kind what = kind::need_more;
    std::size_t n = 0;          // frame, skip: bytes consumed; need_more: bytes needed in all (0: unknown)
    std::string_view detail{};  // error: why (static text, or valid until fail() returns)

    // A frame was decoded from the first `consumed` bytes: on_frame() handles it, then the bytes go.
    static step frame(std::size_t consumed) noexcept { return {kind::frame, consumed, {}}; }
    // `consumed` bytes that are no frame (heart-beat EOLs): they go, nothing is called.
    static step skip(std::size_t consumed) noexcept { return {kind::skip, consumed, {}}; }
    static step need_more(std::size_t at_least = 0) noexcept { return {kind::need_more, at_least, {}}; }
    static step error(std::string_view why) noexcept { return {kind::error, 0, why}; }
};

// Why the engine calls the protocol's fail().
enum class error_kind : std::uint8_t {
    malformed,         // the decoder returned step::error
    connect_timeout,   // not open() within connect_timeout_ms
    receive_timeout,   // nothing read for the receive timeout (heart-beats, keep-alive)
    slow_consumer,     // a write pending for output.stall_timeout while consuming
    peer_closed,       // EOF, or the transport failed on read or write
};
std::string_view to_string(error_kind k) noexcept;

struct error {
    error_kind kind;
    std::string_view detail{};
};

// The driver as the engine sees it.
class driver_hooks {
public:
    virtual ~driver_hooks() = default;
    virtual time_point now() = 0;
    // Look again (write, read interest, deadline, close): see the header comment.
    virtual void wake() = 0;
    // "127.0.0.1:51544", for the log.
    virtual std::string_view peer() const noexcept = 0;
    // The user the transport authenticated (a verified TLS client certificate's); empty: none.
    virtual std::string_view peer_identity() const noexcept { return {}; }
};

// A kernel subscribe under way (see connection::track_subscribe).
struct subscribe_call {
    bool done = false;
    std::function<void()> then;   // the unsubscribe that waits for it
};

// The part of a protocol's subscription the engine knows; the protocol's own derives from it.
struct consumer {
    core::consumer_id id = 0;
    core::destination dest;
    std::shared_ptr<subscribe_call> subscribing;   // set by track_subscribe
};

enum class phase : std::uint8_t { opening, open, closing, closed };

class connection : public core::consumer_sink, public std::enable_shared_from_this<connection> {
public:
    virtual ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // ---- the driver's side ---------------------------------------------------------------

    // Before start(): the driver, owned by the connection from now on (it owns the transport,
    // which so lives exactly as long as the connection).
    void attach(std::unique_ptr<driver_hooks> d) noexcept { driver_ = std::move(d); }
    driver_hooks* driver() const noexcept { return driver_.get(); }

    // Arms the connect deadline.
    void start();
    // Graceful close at shutdown (idempotent): finish queued output, then close.
    void stop();

    // True while the driver should wait for input (false: paused by back-pressure, or closed).
    bool wants_read() const noexcept;
    // Bytes the driver read; `bytes` need to stay valid only during the call.
    void feed(std::span<const std::uint8_t> bytes);
    // The peer closed its side or the read failed.
    void read_closed();

    // Starts a write of everything queued: the buffer stays valid and unchanged until
    // write_done/write_failed. Empty when nothing is queued or a write is in flight.
    std::span<const std::uint8_t> begin_write();
    // `n` bytes of it were written (all of it, for a transport that writes everything).
    void write_done(std::size_t n);
    void write_failed();
    bool writing() const noexcept { return writing_; }

    // Closing, and nothing queued or being written: the driver shuts its send side.
    bool send_finished() const noexcept { return phase_ == phase::closing && !writing_ && queued_output() == 0; }
    // The driver closes the transport (pending operations may still complete, with errors).
    bool closed() const noexcept { return phase_ == phase::closed; }

    // Handles the deadlines due at `now`; returns the next one (never: none).
    time_point tick(time_point now);
    time_point next_deadline() const noexcept;

    // ---- observers -------------------------------------------------------------------------

    phase state() const noexcept { return phase_; }
    std::uint64_t id() const noexcept { return id_; }
    std::size_t queued_output() const noexcept { return io_ ? io_->out.size() + io_->wbuf.size() : 0; }
    std::size_t buffered_input() const noexcept { return in_ ? in_->bytes.size() - in_->start : 0; }
    // Storage held for input and output (none while idle).
    bool holds_buffers() const noexcept { return in_ || io_; }
    std::size_t unconfirmed() const noexcept { return unconfirmed_; }
    bool consumers_paused() const noexcept { return flow_.paused(); }

    // core::consumer_sink: routed to deliver() for a consumer in the table, while not closing,
    // unless output flow keeps it for later.
    void on_delivery(core::consumer_id id, core::delivery d) final;

protected:
    // `l` and `log` outlive the connection (the protocol's settings and logger).
    connection(core::broker& broker, const limits& l, std::uint64_t id, spdlog::logger& log) noexcept
        : broker_(broker), limits_(&l), log_(&log), id_(id), flow_(l.output) {}

    // ---- what a protocol supplies ----------------------------------------------------------

    // Decodes one frame (into the protocol's own frame state) from the start of `in`.
    virtual step decode(std::span<const std::uint8_t> in) = 0;
    // Handles the frame decode() just reported; its views into the input stay valid until it
    // returns.
    virtual void on_frame() = 0;
    // A delivery for one of the connection's consumers: encode it into out() (and
    // settle_on_write it when it counts as consumed once written).
    virtual void deliver(consumer& c, core::delivery d) = 0;
    // Something ended the connection's normal course (logged by the engine unless malformed).
    // The protocol answers (an error frame, a will) and closes: close() to send it, abort() to
    // end at once. When it does neither, the engine closes: malformed and receive_timeout
    // gracefully, the others at once.
    virtual void fail(const error& e) = 0;
    // stop() (a shutdown), before close(): a last word to the peer (MQTT 5's DISCONNECT 0x8B)
    // and what a shutdown does not do (publish wills). Not called once closing.
    virtual void on_stop() {}
    // Once, when closing begins: end the subscriptions, give back transactions...
    virtual void on_closing() {}
    // Open, nothing written for the send-idle interval: send a heart-beat.
    virtual void on_send_idle() {}
    // Stop reading for a reason of the protocol's own (an operation the next frames must not
    // overtake). Asked after every frame and event: once the completion that ends the reason
    // returns, reading resumes by itself.
    virtual bool input_held() const noexcept { return false; }
    // No input bytes are held any more: drop decoder storage kept between frames.
    virtual void on_input_drained() {}
    // Open, the time set_timer() asked for has come (OpenWire's MessagePull timeouts).
    virtual void on_timer(time_point now) { (void)now; }

    // ---- what the engine gives a protocol ---------------------------------------------------

    // Encode output here; it is written when the current event returns.
    std::string& out() {
        if (!io_) io_ = std::make_unique<output_state>();
        return io_->out;
    }

    // The handshake succeeded: the connect deadline ends; `receive_timeout` without input ends
    // the connection, and `send_idle` without output calls on_send_idle() (0: none).
    void open(std::chrono::milliseconds receive_timeout = {}, std::chrono::milliseconds send_idle = {});
    void set_receive_timeout(std::chrono::milliseconds t) noexcept;
    void set_send_idle(std::chrono::milliseconds t) noexcept;
    // One protocol timer: on_timer() once `at` has come, while open (never: none). Setting it
    // again replaces it.
    void set_timer(time_point at) noexcept { timer_ = at; }
    time_point timer() const noexcept { return timer_; }

    // Stops taking frames, calls on_closing(), then broker::connection_closed(id()) (the
    // kernel rolls back the connection's open transactions and deletes its temporary
    // destinations), writes what is queued, shuts the send side and drains input for
    // linger_ms, then closed. Idempotent: the kernel hears of the end once.
    void close();
    // Closed at once (what is queued is not written). Idempotent.
    void abort();

    // A kernel call whose completion the peer's next frames must wait for (publishes): at
    // max_unconfirmed_sends outstanding, reading pauses.
    void begin_unconfirmed() noexcept { ++unconfirmed_; }
    void end_unconfirmed() noexcept {
        if (unconfirmed_) --unconfirmed_;
    }

    // The consumer table: consumer_id -> the protocol's subscription (which outlives its entry).
    void add_consumer(consumer& c);
    consumer* find_consumer(core::consumer_id id) const noexcept;
    bool has_consumers() const noexcept { return consumers_ && !consumers_->empty(); }
    // Out of the table, its kept deliveries dropped (the kernel requeues them) and those
    // encoded or being written settled (they were sent). No kernel unsubscribe.
    void release_consumer(consumer& c);
    // release_consumer, then the kernel unsubscribe (`done` as broker::unsubscribe's); after a
    // track_subscribe'd subscribe that has not completed, the unsubscribe waits for it.
    void end_consumer(consumer& c, std::function<void()> done = {});
    // Wraps the `done` of the kernel subscribe of `c`: ending `c` before it ran defers the kernel
    // unsubscribe until then. (A durable subscribe attaches its consumer only once every shard
    // registered the subscription; an unsubscribe sent meanwhile would overtake the attach and
    // leave a consumer nobody ends, its deliveries in flight for good.)
    std::function<void()> track_subscribe(consumer& c, std::function<void()> done);

    // A delivery just encoded that counts as consumed once its bytes are written.
    void settle_on_write(core::consumer_id c, core::delivery_tag t) {
        out();
        io_->settlements.note(c, t);
    }
    // Settles every noted delivery now (a session handed over with its writes in flight).
    void settle_written_all() {
        if (io_) io_->settlements.settle_all(broker_);
    }

    // Wraps a kernel completion: keeps the connection alive until it runs, and runs it as an
    // event (output written, reading resumed, the driver told, once f returned).
    template <typename F>
    auto completion(F f) {
        return [self = shared_from_this(), f = std::move(f)](auto&&... args) mutable {
            event_scope scope(*self);
            f(std::forward<decltype(args)>(args)...);
        };
    }

    // "conn=<id> peer=<peer> proto=<proto> " + the message.
    template <typename... Args>
    void log(spdlog::level::level_enum lv, fmt::format_string<Args...> f, Args&&... args) {
        if (!log_->should_log(lv)) return;
        log_->log(lv, "conn={} peer={} proto={} {}", id_, peer(), log_->name(),
                  fmt::format(f, std::forward<Args>(args)...));
    }
    std::string_view peer() const noexcept { return driver_ ? driver_->peer() : std::string_view("-"); }
    // The user the transport vouches for (a TLS client certificate): a client that sends no
    // credentials logs in as this user (core::auth_pool::authenticate_certificate).
    std::string_view peer_identity() const noexcept { return driver_ ? driver_->peer_identity() : std::string_view(); }
    time_point now() const { return driver_ ? driver_->now() : clock::now(); }

    core::broker& broker_;

private:
    struct event_scope {
        explicit event_scope(connection& c) noexcept : c_(c) { ++c_.depth_; }
        ~event_scope() {
            if (--c_.depth_ == 0) c_.settle(false);
        }
        connection& c_;
    };
    struct driver_scope {
        explicit driver_scope(connection& c) noexcept : c_(c) { ++c_.depth_; }
        ~driver_scope() {
            if (--c_.depth_ == 0) c_.settle(true);
        }
        connection& c_;
    };
    friend struct event_scope;

    bool blocked() const noexcept;
    void settle(bool in_driver);
    std::size_t decode_from(std::span<const std::uint8_t> in, std::size_t& need, bool& starved);
    void decode_held();
    void drop_input() noexcept;
    void pause_consumers(bool pause);
    void release_output() noexcept;
    void failed(const error& e);

    const limits* limits_;
    spdlog::logger* log_;
    std::unique_ptr<driver_hooks> driver_;
    const std::uint64_t id_;

    // An idle connection holds none of these blocks: input exists while an unfinished frame's
    // bytes (or input held while reading is paused) wait, output while anything is queued,
    // being written, or waiting to be settled once written.
    struct input_state {
        std::vector<std::uint8_t> bytes;
        std::size_t start = 0;  // bytes[start..] are held; those before it are decoded
        std::size_t need = 0;   // bytes decode needs before it can progress
        // The decoder stopped at an unfinished frame (not because reading was paused): only new
        // bytes can make progress, so no event decodes the held bytes again.
        bool starved = false;
    };
    struct output_state {
        std::string out, wbuf;   // queued; being written
        write_settlements settlements;
    };
    std::unique_ptr<input_state> in_;
    std::unique_ptr<output_state> io_;
    std::unique_ptr<std::unordered_map<core::consumer_id, consumer*>> consumers_;
    output_flow flow_;

    time_point phase_deadline_ = never;   // opening: connect deadline; closing: linger end
    time_point last_read_{}, last_write_{};
    time_point timer_ = never;   // set_timer
    time_point last_write_done_{};   // the previous write's completion: busy connections keep their output storage
    std::uint32_t receive_timeout_ms_ = 0, send_idle_ms_ = 0;
    std::uint32_t unconfirmed_ = 0;
    std::uint16_t depth_ = 0;   // events and driver calls on the stack
    phase phase_ = phase::opening;
    bool writing_ = false;
};

}  // namespace sb::engine
