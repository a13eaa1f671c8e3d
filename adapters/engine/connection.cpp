// adapters/engine/connection.cpp — the connection engine: decode loop, output, deadlines, closing.
#include "adapters/engine/connection.hpp"

#include <algorithm>

namespace sb::engine {

namespace {

using ms = std::chrono::milliseconds;

time_point after(time_point t, std::uint32_t millis) noexcept { return t + ms(millis); }

}  // namespace

std::string_view to_string(error_kind k) noexcept {
    switch (k) {
    case error_kind::malformed: return "malformed";
    case error_kind::connect_timeout: return "connect_timeout";
    case error_kind::receive_timeout: return "receive_timeout";
    case error_kind::slow_consumer: return "slow_consumer";
    case error_kind::peer_closed: return "peer_closed";
    }
    return "error";
}

connection::~connection() = default;

// ---- driver side ----------------------------------------------------------------------------

void connection::start() {
    driver_scope scope(*this);
    last_read_ = last_write_ = now();
    phase_deadline_ = after(last_read_, limits_->connect_timeout_ms);
}

void connection::stop() {
    driver_scope scope(*this);
    if (phase_ < phase::closing) on_stop();
    close();
}

bool connection::blocked() const noexcept {
    return queued_output() > limits_->output.high_watermark || unconfirmed_ >= limits_->max_unconfirmed_sends ||
           input_held();
}

bool connection::wants_read() const noexcept {
    if (phase_ == phase::closed) return false;
    return phase_ == phase::closing || !blocked();
}

void connection::feed(std::span<const std::uint8_t> bytes) {
    driver_scope scope(*this);
    last_read_ = now();
    if (phase_ >= phase::closing) return;   // lingering: input is drained and dropped
    std::size_t off = 0;
    // A frame begun in an earlier read: append only as much of the new bytes as it needs (what
    // the decoder asked for, else growing steps) until it is whole, instead of copying the
    // whole read into the held storage.
    while (in_ && off < bytes.size() && phase_ < phase::closing) {
        auto& b = in_->bytes;
        if (in_->start) {   // what decode_held() consumed goes before the storage grows
            b.erase(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(in_->start));
            in_->start = 0;
        }
        const std::size_t step = in_->need > b.size() ? in_->need - b.size() : std::max<std::size_t>(b.size(), 4096);
        const std::size_t take = blocked() ? bytes.size() - off : std::min(step, bytes.size() - off);
        b.insert(b.end(), bytes.begin() + static_cast<std::ptrdiff_t>(off),
                 bytes.begin() + static_cast<std::ptrdiff_t>(off + take));
        off += take;
        decode_held();
        // The held frame was finished and what is left came from this read: decode the rest of
        // the read in place too (else every later frame of the read went through the held
        // storage, a copy and a shift per step).
        if (in_ && phase_ < phase::closing && buffered_input() <= take) {
            off -= buffered_input();
            in_.reset();
        }
    }
    if (!in_ && off < bytes.size() && phase_ < phase::closing) {
        // The usual case: decode straight from the driver's buffer, keep only what is left.
        const auto rest = bytes.subspan(off);
        std::size_t need = 0;
        bool starved = false;
        const std::size_t used = decode_from(rest, need, starved);
        if (phase_ < phase::closing && used < rest.size()) {
            in_ = std::make_unique<input_state>();
            in_->bytes.assign(rest.begin() + static_cast<std::ptrdiff_t>(used), rest.end());
            in_->need = need;
            in_->starved = starved;
        }
    }
    if (phase_ >= phase::closing) drop_input();
    if (!in_) on_input_drained();
}

void connection::decode_held() {
    const std::size_t used = decode_from(std::span(in_->bytes).subspan(in_->start), in_->need, in_->starved);
    // Closing during the loop: the frame being handled may still have pointed into the held
    // bytes, so they are dropped only now.
    if (phase_ >= phase::closing) return drop_input();
    auto& b = in_->bytes;
    in_->start += used;
    if (in_->start == b.size()) return in_.reset();   // idle: hold nothing
    // Consumed bytes are shifted out once they are at least half of the storage, not per call:
    // input held while reading is paused is decoded a frame per kernel completion, and shifting
    // a 64 KiB read after each frame was over a quarter of a busy MQTT QoS 0 4->1 broker's work.
    if (in_->start >= b.size() - in_->start) {
        b.erase(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(in_->start));
        in_->start = 0;
    }
}

std::size_t connection::decode_from(std::span<const std::uint8_t> in, std::size_t& need, bool& starved) {
    std::size_t used = 0;
    starved = false;
    while (phase_ < phase::closing && used < in.size() && !blocked()) {
        const auto rest = in.subspan(used);
        if (need > rest.size()) {
            starved = true;
            break;
        }
        const step s = decode(rest);
        need = 0;
        switch (s.what) {
        case step::kind::need_more:
            need = s.n;
            starved = true;
            return used;
        case step::kind::skip: used += s.n; break;
        case step::kind::frame:
            on_frame();
            used += s.n;
            break;
        case step::kind::error: failed(error{error_kind::malformed, s.detail}); return used;
        }
    }
    return used;
}

void connection::read_closed() {
    driver_scope scope(*this);
    if (phase_ == phase::closed) return;
    if (phase_ == phase::closing) return abort();   // the peer read our last frame and left
    failed(error{error_kind::peer_closed});
}

std::span<const std::uint8_t> connection::begin_write() {
    if (writing_ || phase_ == phase::closed || !io_) return {};
    auto& o = *io_;
    if (o.wbuf.empty()) {
        if (o.out.empty()) return {};
        std::swap(o.out, o.wbuf);
        o.settlements.write_started();
    }
    writing_ = true;
    flow_.write_started(now(), has_consumers());
    return std::span(reinterpret_cast<const std::uint8_t*>(o.wbuf.data()), o.wbuf.size());
}

void connection::write_done(std::size_t n) {
    driver_scope scope(*this);
    writing_ = false;
    last_write_ = now();
    if (!io_) return;
    io_->wbuf.erase(0, std::min(n, io_->wbuf.size()));
    if (phase_ == phase::closed) return release_output();
    if (!io_->wbuf.empty()) return;   // partly written: begin_write() continues with the rest
    io_->settlements.write_done(broker_);
    const bool resume = flow_.written([this] { return queued_output(); },
                                      [this](core::consumer_id id, core::delivery d) { on_delivery(id, std::move(d)); });
    if (resume && phase_ < phase::closing) pause_consumers(false);
    // A connection that writes again and again keeps its output storage: freeing it after each
    // write and growing it again for the next one cost a fifth of a busy worker's time in
    // malloc. One that wrote nothing for a while (or never: the CONNACK of an idle client) holds
    // nothing once its write is done.
    const auto done = last_write_;
    const bool busy = done - last_write_done_ < std::chrono::seconds(1);
    last_write_done_ = done;
    if (!busy && io_ && io_->out.empty()) release_output();
}

void connection::write_failed() {
    driver_scope scope(*this);
    writing_ = false;
    if (io_) io_->wbuf.clear();   // gone with the transport
    if (phase_ == phase::closed) return release_output();
    failed(error{error_kind::peer_closed});
}

// Nothing queued or being written: an idle connection holds no output storage (the next frame
// allocates again), unless written deliveries still wait for their settlement.
void connection::release_output() noexcept {
    if (!io_ || writing_ || !io_->wbuf.empty()) return;
    if (io_->settlements.empty()) io_.reset();
    else std::string().swap(io_->out);
}

time_point connection::next_deadline() const noexcept {
    switch (phase_) {
    case phase::closed: return never;
    case phase::opening:
    case phase::closing: return std::min(phase_deadline_, flow_.deadline());
    case phase::open: break;
    }
    time_point next = flow_.deadline();
    if (receive_timeout_ms_) next = std::min(next, after(last_read_, receive_timeout_ms_));
    if (send_idle_ms_) next = std::min(next, after(last_write_, send_idle_ms_));
    return next;
}

time_point connection::tick(time_point t) {
    driver_scope scope(*this);
    if (phase_ == phase::closed) return never;
    if (phase_ != phase::open && t >= phase_deadline_) {
        if (phase_ == phase::closing) abort();   // linger over
        else failed(error{error_kind::connect_timeout});
        return next_deadline();
    }
    if (flow_.deadline() <= t) {
        ms stuck{0};
        switch (flow_.on_deadline(t, stuck)) {
        case output_flow::verdict::none: break;
        case output_flow::verdict::pause: pause_consumers(true); break;
        case output_flow::verdict::stalled:
            if (phase_ < phase::closing && has_consumers()) {
                output_flow::count_slow_consumer();
                const auto detail = fmt::format("output not read for {} ms", stuck.count());
                failed(error{error_kind::slow_consumer, detail});
                return next_deadline();
            }
            break;
        }
    }
    if (phase_ != phase::open) return next_deadline();
    if (receive_timeout_ms_ && t >= after(last_read_, receive_timeout_ms_)) {
        failed(error{error_kind::receive_timeout});
        return next_deadline();
    }
    if (send_idle_ms_ && t >= after(last_write_, send_idle_ms_)) {
        if (!writing_ && queued_output() == 0) on_send_idle();
        last_write_ = t;   // nothing sent (a write is under way, or nothing to say): look again later
    }
    return next_deadline();
}

// ---- protocol side --------------------------------------------------------------------------

void connection::open(ms receive_timeout, ms send_idle) {
    if (phase_ != phase::opening) return;
    phase_ = phase::open;
    phase_deadline_ = never;
    last_read_ = last_write_ = now();
    set_receive_timeout(receive_timeout);
    set_send_idle(send_idle);
}

void connection::set_receive_timeout(ms t) noexcept { receive_timeout_ms_ = static_cast<std::uint32_t>(t.count()); }

void connection::set_send_idle(ms t) noexcept { send_idle_ms_ = static_cast<std::uint32_t>(t.count()); }

void connection::close() {
    if (phase_ >= phase::closing) return;
    event_scope scope(*this);
    phase_ = phase::closing;
    phase_deadline_ = after(now(), limits_->linger_ms);
    flow_.stop();
    on_closing();   // input held is dropped once no decode is under way (feed, decode_held, settle)
    // What the kernel keeps for the connection (open transactions: rolled back; temporary
    // destinations: deleted) ends with it, here once for every protocol, after the protocol
    // ended its subscriptions.
    broker_.connection_closed(id_);
}

void connection::abort() {
    if (phase_ == phase::closed) return;
    close();
    phase_ = phase::closed;
    phase_deadline_ = never;
    if (io_) io_->out.clear();   // never written; wbuf may still be the transport's until write_failed
    release_output();
}

void connection::drop_input() noexcept { in_.reset(); }

// Something ended the normal course: log it, let the protocol answer, and make sure it ends.
void connection::failed(const error& e) {
    if (phase_ >= phase::closing) {
        if (e.kind == error_kind::peer_closed) abort();
        return;
    }
    switch (e.kind) {
    case error_kind::malformed:
    case error_kind::peer_closed: break;
    case error_kind::connect_timeout:
    case error_kind::receive_timeout: log(spdlog::level::info, "reason={}", to_string(e.kind)); break;
    case error_kind::slow_consumer: log(spdlog::level::warn, "reason=slow_consumer detail=\"{}\"", e.detail); break;
    }
    fail(e);
    if (e.kind == error_kind::malformed || e.kind == error_kind::receive_timeout) close();
    else if (phase_ < phase::closing) abort();   // a protocol that closed (fail's contract) has its last word sent
}

void connection::add_consumer(consumer& c) {
    if (!consumers_) consumers_ = std::make_unique<std::unordered_map<core::consumer_id, consumer*>>();
    (*consumers_)[c.id] = &c;
}

consumer* connection::find_consumer(core::consumer_id id) const noexcept {
    if (!consumers_) return nullptr;
    auto it = consumers_->find(id);
    return it == consumers_->end() ? nullptr : it->second;
}

void connection::release_consumer(consumer& c) {
    if (consumers_) {
        consumers_->erase(c.id);
        if (consumers_->empty()) consumers_.reset();
    }
    flow_.forget(c.id);
    if (io_) io_->settlements.settle_consumer(broker_, c.id);
}

void connection::end_consumer(consumer& c, std::function<void()> done) {
    release_consumer(c);
    if (c.subscribing && !c.subscribing->done) {
        c.subscribing->then = [&b = broker_, id = c.id, dest = c.dest, done = std::move(done)]() mutable {
            b.unsubscribe(id, dest, std::move(done));
        };
        return;
    }
    broker_.unsubscribe(c.id, c.dest, std::move(done));
}

std::function<void()> connection::track_subscribe(consumer& c, std::function<void()> done) {
    c.subscribing = std::make_shared<subscribe_call>();
    return [call = c.subscribing, done = std::move(done)]() mutable {
        call->done = true;
        if (done) done();
        if (call->then) std::exchange(call->then, {})();
    };
}

void connection::pause_consumers(bool pause) {
    if (!consumers_) return;
    for (auto& [id, c] : *consumers_) {
        if (pause) broker_.pause(id, c->dest);
        else broker_.resume(id, c->dest);
    }
}

void connection::on_delivery(core::consumer_id id, core::delivery d) {
    event_scope scope(*this);
    if (phase_ >= phase::closing) return;   // the kernel requeues it
    auto* c = find_consumer(id);
    if (!c) return;
    if (flow_.hold(id, d, queued_output())) return;   // output full: encoded later, in order
    deliver(*c, std::move(d));
}

// After an event or a driver call, once the protocol's code returned: pause the consumers if
// the output grew past the high watermark, decode input held while reading was paused, and
// tell the driver (unless it is the caller: it looks by itself).
void connection::settle(bool in_driver) {
    ++depth_;   // nothing below settles again
    if (phase_ >= phase::closing && in_) drop_input();
    if (phase_ < phase::closing && flow_.grew(queued_output())) pause_consumers(true);
    if (phase_ < phase::closing && in_ && !in_->starved && !blocked()) {
        decode_held();
        if (phase_ < phase::closing && flow_.grew(queued_output())) pause_consumers(true);
        if (!in_) on_input_drained();
    }
    --depth_;
    if (!in_driver && driver_) driver_->wake();
}

}  // namespace sb::engine
