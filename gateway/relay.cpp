// gateway/relay.cpp — connect (with retries), PROXY header, then the splice or buffered pumps.
#include "gateway/relay.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/detect.hpp"
#include "gateway/log.hpp"
#include "gateway/passive_health.hpp"

namespace sb::gateway {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr std::size_t splice_chunk = 1 << 16;
constexpr std::size_t buffer_bytes = 16 * 1024;
// A bulk direction's pipe is enlarged to this (F_SETPIPE_SZ; the default is 64 KiB): one
// splice(2) pair moves up to this much, fewer calls a megabyte.
constexpr int pipe_bytes = 256 * 1024;
// What a busy direction moves before it yields to the others on its worker.
constexpr std::size_t turn_bytes = 256 * 1024;
// A refused MQTT client's CONNECT (its version decides the CONNACK) must arrive within this.
constexpr std::chrono::milliseconds refusal_read_timeout{5000};

// Small reads of every relay of a worker pass through this buffer; nothing stays in it between
// two calls (what the other side cannot take yet is copied into the relay).
std::array<std::byte, splice_chunk>& relay_scratch() {
    thread_local std::array<std::byte, splice_chunk> scratch;
    return scratch;
}

// Empty splice pipes of the relays that ended on this thread (its worker), for the next bulk
// streams: pipe2 + F_SETPIPE_SZ + two closes saved per stream. Kept only while some relay of
// the worker holds a pipe (a busy worker reuses them; an idle one holds none, so its open
// descriptors go back to what they were). Bounded: pipes count against
// the user's pipe buffer allowance (pipe-user-pages-soft, 64 MiB by default; past it the
// kernel gives new pipes two pages), so at most `max_enlarged` pipes of the process are
// enlarged at a time (32 MiB), the others keep the default 64 KiB, as HAProxy's.
class pipe_pool {
public:
    struct pipe_fds {
        int r = -1, w = -1;
        std::size_t capacity = 0;
        bool enlarged = false;
    };
    ~pipe_pool() {
        for (const auto& p : free_) close_pipe(p);
    }
    static pipe_pool& local() {
        thread_local pipe_pool pool;
        return pool;
    }
    bool take(pipe_fds& out) {
        if (!free_.empty()) {
            out = free_.back();
            free_.pop_back();
            ++in_use_;
            return true;
        }
        int fds[2];
        if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
        ++in_use_;
        // May fail (over the allowance): the default size stays.
        bool enlarged = false;
        if (enlarged_.fetch_add(1, std::memory_order_relaxed) < max_enlarged)
            enlarged = ::fcntl(fds[1], F_SETPIPE_SZ, pipe_bytes) > 0;
        if (!enlarged) enlarged_.fetch_sub(1, std::memory_order_relaxed);
        const int cap = ::fcntl(fds[1], F_GETPIPE_SZ);
        out = {fds[0], fds[1], cap > 0 ? static_cast<std::size_t>(cap) : splice_chunk, enlarged};
        return true;
    }
    // A pipe taken here comes back (on this thread): kept if empty and another relay still
    // holds one, else closed, and with the last one in use the pool is emptied.
    void give(const pipe_fds& p, bool empty) {
        if (in_use_ > 0) --in_use_;
        if (empty && in_use_ > 0 && free_.size() < max_free) return free_.push_back(p);
        close_pipe(p);
        if (in_use_ == 0) {
            for (const auto& f : free_) close_pipe(f);
            free_.clear();
        }
    }
    static void close_pipe(const pipe_fds& p) {
        ::close(p.r);
        ::close(p.w);
        if (p.enlarged) enlarged_.fetch_sub(1, std::memory_order_relaxed);
    }

private:
    static constexpr std::size_t max_free = 16;
    static constexpr std::size_t max_enlarged = 128;
    std::vector<pipe_fds> free_;
    std::size_t in_use_ = 0;   // pipes taken from here and not given back
    static inline std::atomic<std::size_t> enlarged_{0};   // open pipes of the process with pipe_bytes
};

class relay final : public net::session,
                    public net::stream_handler,
                    public bound_connection,
                    public slot_waiter,
                    public std::enable_shared_from_this<relay> {
public:
    relay(transport_stack client, std::string head, std::shared_ptr<backend> b, std::optional<wire> proto,
          std::uint64_t conn)
        : stack_(std::move(client)), client_(&stack_.top()), head_(std::move(head)), keep_(std::move(b)), b_(*keep_),
          proto_(proto), conn_(conn), backend_(stack_.bottom().socket().get_executor()), connect_timer_(client_->get_executor()),
          idle_timer_(client_->get_executor()) {}

    ~relay() override {   // pipes are given back by close(), on the worker; any left (never closed) go
        for (direction* d : {&c2b_, &b2c_})
            if (d->pipe.r >= 0) pipe_pool::close_pipe(d->pipe);
    }

    void start() override { connect_next(); }
    void stop() override { close("shutdown"); }

    void close_from_server(const char* why) noexcept override {
        asio::post(backend_.get_executor(), [self = shared_from_this(), why] { self->close(why); });
    }

    // Woken in the backend's queue: try again, or pass the wake-up on when no longer waiting.
    void slot_free() noexcept override {
        asio::post(backend_.get_executor(), [self = shared_from_this()] {
            if (self->closed_ || !self->waiting_) return self->b_.wake_one();
            self->connect_next();
        });
    }

    // Client side of the buffered pump, the CONNECT read for a refusal, and the refusal write.
    void on_read(net::error_code ec, std::size_t n) override {
        if (closed_) return;
        if (refusing_) {
            if (ec || n == 0) return close("client: " + (ec ? ec.message() : std::string("closed")));
            head_.append(reinterpret_cast<const char*>(c2b_buf_->data()), n);
            return refuse();
        }
        if (ec || n == 0) {
            if (ec && ec != asio::error::eof) return close("client: " + ec.message());
            net::error_code ignored;
            backend_.shutdown(tcp::socket::shutdown_send, ignored);
            c2b_.done = true;
            return maybe_finish();
        }
        touch();
        c2b_.bytes += n;
        asio::async_write(backend_, asio::buffer(c2b_buf_->data(), n),
                          [self = shared_from_this()](net::error_code wec, std::size_t) {
                              if (self->closed_) return;
                              if (wec) return self->server_failed(wec);
                              self->read_client();
                          });
    }

    void on_write(net::error_code ec, std::size_t n) override {
        if (closed_) return;
        if (refusing_) return close("no server available");
        if (ec) return close("client: " + ec.message());
        b2c_.bytes += n;
        touch();
        read_backend();
    }

private:
    struct direction {
        pipe_pool::pipe_fds pipe;  // made (or taken from the pool) once the stream is a bulk one
        std::size_t in_pipe = 0;
        std::string held;          // read, not yet taken by the other side (small-read mode)
        std::size_t held_at = 0;
        bool splicing = false;     // bulk mode: socket -> pipe -> socket
        bool drained = false;      // the last read came back short: wait before reading again
        bool eof = false;
        bool done = false;
        std::uint64_t bytes = 0;
        tcp_socket* src = nullptr;
        tcp_socket* dst = nullptr;
    };

    std::size_t attempts_allowed() const {
        const auto n = b_.servers().size();
        return b_.config().retries == 0 ? n : std::min<std::size_t>(n, 1 + b_.config().retries);
    }

    void connect_next() {
        if (closed_) return;
        // The queue (backend queue_timeout): a first attempt waits behind those already waiting,
        // or when every usable server is full; it is closed after queue_timeout.
        const bool may_queue = tried_.empty() && b_.config().queue_timeout_ms > 0;
        server_state* s = nullptr;
        if (!(may_queue && !waiting_ && b_.queued() > 0))
            s = tried_.size() < attempts_allowed() ? b_.pick(tried_) : nullptr;
        if (!s && may_queue && (waiting_ || b_.should_queue())) return wait_for_slot();
        if (!s) return refuse();
        if (waiting_) {
            waiting_ = false;
            log()->debug("conn={} backend={} left the queue after {} us", conn_, b_.config().name,
                         std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                               queued_at_).count());
        }
        connect_to(s);
    }

    void wait_for_slot() {
        const bool first = !waiting_;
        if (!b_.enqueue(conn_, weak_from_this(), !first)) {
            ++b_.queue_full;
            log()->warn("conn={} peer={} backend={} reason=queue_full max_queue={}", conn_, client_->peer(),
                        b_.config().name, b_.config().max_queue);
            return refuse();
        }
        if (first) {
            waiting_ = true;
            ++b_.queued_total;
            queued_at_ = std::chrono::steady_clock::now();
            const std::uint64_t me = ++attempt_;
            connect_timer_.expires_after(std::chrono::milliseconds(b_.config().queue_timeout_ms));
            connect_timer_.async_wait([self = shared_from_this(), me](net::error_code ec) {
                if (ec || me != self->attempt_ || !self->waiting_ || self->closed_) return;
                self->waiting_ = false;
                self->b_.dequeue(self->conn_);
                ++self->b_.queue_timeouts;
                log()->warn("conn={} peer={} backend={} reason=queue_timeout after {} ms", self->conn_,
                            self->client_->peer(), self->b_.config().name, self->b_.config().queue_timeout_ms);
                self->refuse();
            });
        }
        // A slot freed between the pick and the enqueue woke nobody: look once more, in line.
        if (auto* s = b_.pick(tried_)) {
            b_.dequeue(conn_);
            waiting_ = false;
            connect_to(s);
        }
    }

    void connect_to(server_state* s) {
        if (!tried_.empty()) {   // the client does not see the failed connect (option redispatch)
            ++tried_.back()->passive.redispatched;
            log()->info("conn={} backend={} redispatched from server={} to server={}", conn_, b_.config().name,
                        tried_.back()->cfg.name, s->cfg.name);
        }
        server_ = s;
        tried_.push_back(s);
        const std::uint64_t me = ++attempt_;
        connect_timer_.expires_after(std::chrono::milliseconds(b_.config().connect_timeout_ms));
        connect_timer_.async_wait([self = shared_from_this(), me](net::error_code ec) {
            if (ec || me != self->attempt_) return;
            net::error_code ignored;
            self->backend_.close(ignored);   // the connect completes with operation_aborted
        });
        asio::async_connect(backend_, s->endpoints, [self = shared_from_this(), me](net::error_code ec, const tcp::endpoint&) {
            if (me != self->attempt_) return;
            ++self->attempt_;   // a timer that expired meanwhile (its handler queued) is stale now
            self->connect_timer_.cancel();
            if (self->closed_) return;
            if (ec == asio::error::operation_aborted) return self->connect_failed(ETIMEDOUT, "timeout");
            if (ec) return self->connect_failed(ec.category() == asio::error::get_system_category() ? ec.value() : 0,
                                                ec.message());
            self->on_connected();
        });
    }

    void connect_failed(int err, const std::string& why) {
        ++server_->connect_failures;
        log()->warn("conn={} backend={} server={} connect failed: {}", conn_, b_.config().name, server_->cfg.name, why);
        report_connect_failure(b_, *server_, err);   // observe: layer4 may mark it down now
        backend::release(*server_);
        server_ = nullptr;
        net::error_code ignored;
        backend_.close(ignored);
        connect_next();
    }

    void refuse() {
        if (!refusing_) {
            refusing_ = true;
            ++b_.refused;
            log()->warn("conn={} peer={} backend={} reason=no_server_available tried={}", conn_, client_->peer(),
                        b_.config().name, tried_.size());
        }
        auto refusal = refusal_for(proto_, head_);
        if (!refusal) return read_for_refusal();
        refusal_ = std::move(*refusal);
        if (refusal_.empty()) return close("no server available");
        connect_timer_.cancel();
        client_->async_write(std::as_bytes(std::span(refusal_)), shared_from_this());
    }

    // The rest of an MQTT CONNECT (the listener did not detect, or read only its start), in a
    // bounded time; refusal_for bounds its size.
    void read_for_refusal() {
        if (!c2b_buf_) {
            c2b_buf_ = std::make_unique<std::array<std::byte, buffer_bytes>>();
            connect_timer_.expires_after(refusal_read_timeout);
            connect_timer_.async_wait([self = shared_from_this()](net::error_code ec) {
                if (!ec) self->close("no server available; no complete CONNECT in time");
            });
        }
        client_->async_read_some(std::span(*c2b_buf_), shared_from_this());
    }

    void on_connected() {
        ++server_->total;
        server_->bind(conn_, weak_from_this());
        net::error_code ec;
        backend_.set_option(tcp::no_delay(true), ec);
        log()->debug("conn={} peer={} relayed to backend={} server={}", conn_, client_->peer(), b_.config().name,
                     server_->cfg.name);
        std::string preamble;
        if (b_.config().send_proxy != proxy_protocol::none) {
            const auto from = stack_.bottom().socket().remote_endpoint(ec);
            const auto to = stack_.bottom().socket().local_endpoint(ec);
            if (!ec) preamble = proxy_header(b_.config().send_proxy, from, to);
        }
        preamble += head_;
        head_.clear();
        head_.shrink_to_fit();
        if (preamble.empty()) return start_pumps();
        preamble_ = std::move(preamble);
        c2b_.bytes += preamble_.size();
        asio::async_write(backend_, asio::buffer(preamble_), [self = shared_from_this()](net::error_code wec, std::size_t) {
            if (self->closed_) return;
            if (wec) return self->server_failed(wec);
            self->preamble_.clear();
            self->preamble_.shrink_to_fit();
            self->start_pumps();
        });
    }

    void start_pumps() {
        arm_idle_timer();
        if (stack_.plain()) {   // pipes are made when a stream turns out to be a bulk one
            net::error_code ec;
            backend_.non_blocking(true, ec);
            if (!ec) stack_.bottom().socket().non_blocking(true, ec);
            if (ec) {   // a blocking read would stall the worker
                log()->warn("conn={} backend={} closed: cannot set non-blocking mode: {}", conn_, b_.config().name,
                            ec.message());
                return close("non-blocking mode: " + ec.message());
            }
            c2b_.src = &stack_.bottom().socket();
            c2b_.dst = &backend_;
            b2c_.src = &backend_;
            b2c_.dst = &stack_.bottom().socket();
            pump(c2b_);
            pump(b2c_);
            return;
        }
        c2b_buf_ = std::make_unique<std::array<std::byte, buffer_bytes>>();
        b2c_buf_ = std::make_unique<std::array<std::byte, buffer_bytes>>();
        read_client();
        read_backend();
    }

    // One direction between plain sockets, HAProxy's splice-auto way: small reads go through
    // the worker's scratch buffer (recv + send: two calls a segment); once a read fills it, the
    // stream is a bulk one and from then on moves socket -> pipe -> socket with splice(2)
    // (still two calls a segment, no copy to user space) through a pipe of up to 256 KiB. A
    // short read means the socket is drained: once its bytes are passed on, the wait is armed
    // at once rather than after a read that would only say EAGAIN (Asio's re-arm reports data
    // that arrived in between).
    void pump(direction& d) {
        std::size_t moved = 0;
        for (int round = 0; round < 16 && moved < turn_bytes; ++round) {
            if (closed_) return;
            // What was read and not yet taken by the other side goes first.
            if (d.in_pipe > 0) {
                const ssize_t n = ::splice(d.pipe.r, nullptr, d.dst->native_handle(), nullptr, d.in_pipe,
                                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n > 0) {
                    d.in_pipe -= static_cast<std::size_t>(n);
                    d.bytes += static_cast<std::uint64_t>(n);
                    moved += static_cast<std::size_t>(n);
                    continue;
                }
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && errno == EAGAIN) return wait(d, d.dst, tcp::socket::wait_write);
                return fail(d, true, n < 0 ? errno : EPIPE);
            }
            if (d.held_at < d.held.size()) {
                const ssize_t n = ::send(d.dst->native_handle(), d.held.data() + d.held_at, d.held.size() - d.held_at,
                                         MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) {
                    d.held_at += static_cast<std::size_t>(n);
                    d.bytes += static_cast<std::uint64_t>(n);
                    if (d.held_at == d.held.size()) {
                        d.held.clear();
                        d.held.shrink_to_fit();
                        d.held_at = 0;
                    }
                    continue;
                }
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && errno == EAGAIN) return wait(d, d.dst, tcp::socket::wait_write);
                return fail(d, true, n < 0 ? errno : EPIPE);
            }
            if (d.eof) {
                ::shutdown(d.dst->native_handle(), SHUT_WR);
                d.done = true;
                return maybe_finish();
            }
            if (d.drained) {   // everything read has been passed on
                d.drained = false;
                return wait(d, d.src, tcp::socket::wait_read);
            }
            if (d.splicing) {
                const ssize_t n = ::splice(d.src->native_handle(), nullptr, d.pipe.w, nullptr, d.pipe.capacity,
                                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n > 0) {
                    d.in_pipe += static_cast<std::size_t>(n);
                    touch();
                    d.drained = static_cast<std::size_t>(n) < d.pipe.capacity;
                    continue;
                }
                if (n == 0) {
                    d.eof = true;
                    continue;
                }
                if (errno == EINTR) continue;
                if (errno == EAGAIN) return wait(d, d.src, tcp::socket::wait_read);
                return fail(d, false, errno);
            }
            auto& scratch = relay_scratch();
            const ssize_t n = ::recv(d.src->native_handle(), scratch.data(), scratch.size(), MSG_DONTWAIT);
            if (n == 0) {
                d.eof = true;
                continue;
            }
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) return wait(d, d.src, tcp::socket::wait_read);
                return fail(d, false, errno);
            }
            touch();
            const auto got = static_cast<std::size_t>(n);
            const ssize_t sent = ::send(d.dst->native_handle(), scratch.data(), got, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (sent < 0 && errno != EAGAIN && errno != EINTR) return fail(d, true, errno);
            const std::size_t taken = sent > 0 ? static_cast<std::size_t>(sent) : 0;
            d.bytes += taken;
            moved += taken;
            if (taken < got) {   // the other side is slower: hold the rest, read nothing more
                d.held.assign(reinterpret_cast<const char*>(scratch.data()) + taken, got - taken);
                d.held_at = 0;
                return wait(d, d.dst, tcp::socket::wait_write);
            }
            if (got == scratch.size()) {
                d.splicing = pipe_pool::local().take(d.pipe);   // a bulk stream
                continue;
            }
            return wait(d, d.src, tcp::socket::wait_read);   // drained
        }
        // A busy stream yields to the other direction and the other connections of this worker
        // after 256 KiB (or a few calls): a flood one way must not delay the other way's
        // traffic by whole megabytes (measured: p99 of a QoS 0 flood 1.6x HAProxy's with 32).
        asio::post(backend_.get_executor(), [self = shared_from_this(), &d] { self->pump(d); });
    }

    // A reset by the server ends the relay: passive health counts it (observe: layer4).
    void server_error(int err) {
        if (server_ && (err == ECONNRESET || err == EPIPE)) report_relay_reset(b_, *server_);
    }

    void server_failed(const net::error_code& ec) {
        if (ec.category() == asio::error::get_system_category()) server_error(ec.value());
        close("server: " + ec.message());
    }

    // An error on the side this direction writes to (`writing`) or reads from.
    void fail(direction& d, bool writing, int err) {
        const bool client_side = (&d == &c2b_) != writing;
        if (!client_side) server_error(err);
        close(std::string(client_side ? "client: " : "server: ") + std::strerror(err));
    }

    void wait(direction& d, tcp_socket* s, tcp_socket::wait_type type) {
        s->async_wait(type, [self = shared_from_this(), &d](net::error_code ec) {
            if (self->closed_) return;
            if (ec) return self->close("wait: " + ec.message());
            self->pump(d);
        });
    }

    void read_client() {
        client_->async_read_some(std::span(*c2b_buf_), shared_from_this());
    }

    void read_backend() {
        backend_.async_read_some(asio::buffer(b2c_buf_->data(), b2c_buf_->size()),
                                 [self = shared_from_this()](net::error_code ec, std::size_t n) {
                                     if (self->closed_) return;
                                     if (ec) {
                                         if (ec != asio::error::eof) return self->server_failed(ec);
                                         self->client_->shutdown_send();
                                         self->b2c_.done = true;
                                         return self->maybe_finish();
                                     }
                                     self->touch();
                                     self->client_->async_write(std::span<const std::byte>(self->b2c_buf_->data(), n), self);
                                 });
    }

    void maybe_finish() {
        if (c2b_.done && b2c_.done) close("done");
    }

    void touch() { last_activity_ = std::chrono::steady_clock::now(); }

    void arm_idle_timer() {
        const auto idle = b_.config().idle_timeout_ms;
        if (idle == 0 || closed_) return;
        touch();
        rearm_idle_timer();
    }

    void rearm_idle_timer() {
        const auto idle = b_.config().idle_timeout_ms;
        idle_timer_.expires_after(std::chrono::milliseconds(std::max<std::uint32_t>(idle / 4, 10)));
        idle_timer_.async_wait([self = shared_from_this(), idle](net::error_code ec) {
            if (ec || self->closed_) return;
            if (std::chrono::steady_clock::now() - self->last_activity_ >= std::chrono::milliseconds(idle))
                return self->close("idle timeout");
            self->rearm_idle_timer();
        });
    }

    void close(const std::string& why) {
        if (closed_) return;
        closed_ = true;
        ++attempt_;
        if (waiting_) {
            waiting_ = false;
            b_.dequeue(conn_);
        }
        connect_timer_.cancel();
        idle_timer_.cancel();
        net::error_code ec;
        backend_.close(ec);
        client_->close();
        for (direction* d : {&c2b_, &b2c_}) {   // on the worker, whose pool they came from
            if (d->pipe.r >= 0) pipe_pool::local().give(d->pipe, d->in_pipe == 0);
            d->pipe = {};
            d->in_pipe = 0;
        }
        if (server_) {
            server_->unbind(conn_);
            backend::release(*server_);
            log()->debug("conn={} backend={} server={} closed: {} bytes_up={} bytes_down={}", conn_, b_.config().name,
                         server_->cfg.name, why, c2b_.bytes, b2c_.bytes);
            server_ = nullptr;
        } else {
            log()->debug("conn={} backend={} closed: {}", conn_, b_.config().name, why);
        }
    }

    transport_stack stack_;
    net::transport* client_;   // the top of stack_
    std::string head_;
    std::shared_ptr<backend> keep_;   // a backend replaced by a reload lives while its relays do
    backend& b_;
    std::optional<wire> proto_;
    std::uint64_t conn_;
    tcp_socket backend_;
    asio::steady_timer connect_timer_;
    asio::steady_timer idle_timer_;
    std::chrono::steady_clock::time_point last_activity_{};
    server_state* server_ = nullptr;
    std::vector<server_state*> tried_;
    std::uint64_t attempt_ = 0;
    bool waiting_ = false;   // in the backend's queue
    std::chrono::steady_clock::time_point queued_at_{};
    std::string preamble_;
    std::string refusal_;
    bool refusing_ = false;
    bool closed_ = false;
    direction c2b_;
    direction b2c_;
    std::unique_ptr<std::array<std::byte, buffer_bytes>> c2b_buf_;
    std::unique_ptr<std::array<std::byte, buffer_bytes>> b2c_buf_;
};

void put16(std::string& s, unsigned v) {
    s += static_cast<char>((v >> 8) & 0xFF);
    s += static_cast<char>(v & 0xFF);
}

}  // namespace

std::shared_ptr<net::session> make_relay(transport_stack client, std::string head,
                                         std::shared_ptr<backend> b, std::optional<wire> proto, std::uint64_t conn) {
    return std::make_shared<relay>(std::move(client), std::move(head), std::move(b), proto, conn);
}

std::string proxy_header(proxy_protocol v, const tcp::endpoint& client, const tcp::endpoint& local) {
    auto src = client.address();
    auto dst = local.address();
    const bool v4 = src.is_v4() && dst.is_v4();
    if (!v4) {   // one family for both: IPv4 becomes IPv4-mapped IPv6
        if (src.is_v4()) src = asio::ip::make_address_v6(asio::ip::v4_mapped, src.to_v4());
        if (dst.is_v4()) dst = asio::ip::make_address_v6(asio::ip::v4_mapped, dst.to_v4());
    }
    if (v == proxy_protocol::v1) {
        return std::string("PROXY ") + (v4 ? "TCP4 " : "TCP6 ") + src.to_string() + " " + dst.to_string() + " " +
               std::to_string(client.port()) + " " + std::to_string(local.port()) + "\r\n";
    }
    if (v != proxy_protocol::v2) return {};
    std::string h("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);
    h += '\x21';                       // version 2, PROXY command
    h += v4 ? '\x11' : '\x21';         // TCP over IPv4 / IPv6
    put16(h, v4 ? 12 : 36);
    auto append = [&h](const auto& bytes) { h.append(reinterpret_cast<const char*>(bytes.data()), bytes.size()); };
    if (v4) {
        append(src.to_v4().to_bytes());
        append(dst.to_v4().to_bytes());
    } else {
        append(src.to_v6().to_bytes());
        append(dst.to_v6().to_bytes());
    }
    put16(h, client.port());
    put16(h, local.port());
    return h;
}

}  // namespace sb::gateway
