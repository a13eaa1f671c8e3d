// gateway/front.cpp — handshake, detection with a deadline, routing, hand-over.
#include "gateway/front.hpp"

#include <array>
#include <chrono>

#include <boost/asio/steady_timer.hpp>

#include "gateway/detect.hpp"
#include "gateway/kernel_adapters.hpp"
#include "gateway/log.hpp"
#include "gateway/relay.hpp"
#include "gateway/tls_transport.hpp"

namespace sb::gateway {

namespace asio = boost::asio;

namespace {

// Bytes read while detecting; whatever arrived with them is handed over too.
constexpr std::size_t head_buffer = 4096;

class front final : public net::session, public net::stream_handler, public std::enable_shared_from_this<front> {
public:
    front(transport_stack t, std::shared_ptr<const front_routes> r, std::uint64_t conn)
        : t_(std::move(t)), r_(std::move(r)), conn_(conn), timer_(t_->top().get_executor()) {}

    void start() override {
        timer_.expires_after(std::chrono::milliseconds(r_->cfg->detect_timeout_ms));
        timer_.async_wait([self = shared_from_this()](net::error_code ec) {
            if (ec || self->done_) return;
            log()->info("conn={} peer={} listener={} closed: nothing recognisable within {} ms", self->conn_,
                        self->peer(), self->r_->cfg->name, self->r_->cfg->detect_timeout_ms);
            self->finish_closed();
        });
        if (!r_->tls) return begin();
        // The rest runs on the decrypted stream: TLS is a layer on the TCP one.
        auto& tls = t_->push([this](std::unique_ptr<net::transport> tcp) { return make_tls_transport(std::move(tcp), r_->tls); });
        tls.async_handshake(shared_from_this(), [self = shared_from_this()](net::error_code ec) {
            if (self->done_) return;
            if (ec) {
                log()->info("conn={} peer={} listener={} TLS handshake failed: {}", self->conn_, self->peer(),
                            self->r_->cfg->name, ec.message());
                return self->finish_closed();
            }
            self->handshaken(static_cast<tls_transport&>(self->t_->top()));
            self->begin();
        });
    }

    void stop() override {
        if (!done_) finish_closed();
    }

    void on_read(net::error_code ec, std::size_t n) override {
        if (done_) return;
        if (ec) return finish_closed();
        head_.append(reinterpret_cast<const char*>(buf_->data()), n);
        const detection d = detect(std::as_bytes(std::span(head_)));
        switch (d.result) {
        case sniff_result::known: return dispatch(d.proto);
        case sniff_result::need_more:
            if (head_.size() < detect_max_bytes) return read();
            [[fallthrough]];
        case sniff_result::unknown:
            log()->info("conn={} peer={} listener={} closed: unrecognised protocol", conn_, peer(), r_->cfg->name);
            return finish_closed();
        case sniff_result::tls:
            log()->info("conn={} peer={} listener={} closed: TLS {} (listener without tls)", conn_, peer(),
                        r_->cfg->name, r_->tls ? "inside TLS" : "");
            return finish_closed();
        }
    }

    void on_write(net::error_code, std::size_t) override {}

private:
    void handshaken(tls_transport& tls) {
        const std::string& user = tls.identify(r_->user_from);
        if (!user.empty())
            log()->info("conn={} peer={} listener={} TLS client certificate: user={}", conn_, peer(), r_->cfg->name, user);
        log()->debug("conn={} peer={} listener={} TLS {} cipher={} alpn={}", conn_, peer(), r_->cfg->name, tls.version(),
                     tls.cipher(), tls.alpn().empty() ? std::string_view("-") : tls.alpn());
    }

    void begin() {
        if (r_->cfg->proto == protocol::automatic) return read();
        dispatch(wire_of(r_->cfg->proto));   // nullopt for `tcp`: nothing inspected
    }

    void read() {
        if (!buf_) buf_ = std::make_unique<std::array<std::byte, head_buffer>>();
        t_->top().async_read_some(std::span(*buf_), shared_from_this());
    }

    void dispatch(std::optional<wire> w) {
        done_ = true;
        timer_.cancel();
        buf_.reset();
        const auto r = route_for(*r_->cfg, w);
        const std::string proto_text = w ? std::string(wire_name(*w)) : std::string("tcp");
        std::shared_ptr<net::session> s;
        if (!r) {
            log()->info("conn={} peer={} listener={} closed: no route for {}", conn_, peer(), r_->cfg->name, proto_text);
            t_->top().close();
            return;
        }
        auto& link = t_->bottom().link();   // the stack's owner changes, not its bottom
        if (r->to_kernel()) {
            log()->debug("conn={} peer={} listener={} proto={} -> kernel", conn_, peer(), r_->cfg->name, proto_text);
            auto stack = std::move(*t_).release();
            t_.reset();
            s = r_->kernel(*w, std::make_unique<prefixed_transport>(std::move(stack), std::move(head_)), conn_);
        } else {
            auto b = r_->backend_named(r->backend);
            if (!b) {
                log()->warn("conn={} peer={} listener={} closed: no backend {}", conn_, peer(), r_->cfg->name, r->backend);
                t_->top().close();
                return;
            }
            log()->debug("conn={} peer={} listener={} proto={} -> backend {}", conn_, peer(), r_->cfg->name,
                         proto_text, r->backend);
            transport_stack stack = std::move(*t_);
            t_.reset();
            s = make_relay(std::move(stack), std::move(head_), std::move(b), w, conn_);
        }
        r_->adopt(link, s);
        s->start();
    }

    void finish_closed() {
        done_ = true;
        timer_.cancel();
        if (t_) t_->top().close();
    }

    const std::string& peer() { return t_->top().peer(); }

    std::optional<transport_stack> t_;   // empty once handed over
    std::shared_ptr<const front_routes> r_;
    std::uint64_t conn_;
    asio::steady_timer timer_;
    std::string head_;
    std::unique_ptr<std::array<std::byte, head_buffer>> buf_;
    bool done_ = false;
};

}  // namespace

std::optional<route> route_for(const listener_config& l, std::optional<wire> w) {
    std::optional<route> r;
    if (w) r = l.routes[static_cast<std::size_t>(*w)];
    if (!r) r = l.fallback;
    if (!r) r = route{};
    // Only to a protocol the kernel has an adapter for (`default: kernel` cannot send AMQP there).
    if (r->to_kernel() && !(w && kernel_speaks(*w))) return std::nullopt;
    return r;
}

bool needs_front(const listener_config& l) {
    if (l.tls || l.fallback || l.proto == protocol::automatic || l.proto == protocol::tcp) return true;
    for (const auto& r : l.routes)
        if (r) return true;
    return false;
}

std::shared_ptr<net::session> make_front(transport_stack t, std::shared_ptr<const front_routes> r,
                                         std::uint64_t conn) {
    return std::make_shared<front>(std::move(t), std::move(r), conn);
}

}  // namespace sb::gateway
