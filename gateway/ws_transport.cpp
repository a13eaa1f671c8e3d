// gateway/ws_transport.cpp — Beast's websocket::stream behind the net::transport interface, over
// any inner net::transport, and the upgrade handshake's decisions.
//
// The stream's next layer is `ws_next`: the inner net::transport presented as the Asio
// AsyncReadStream / AsyncWriteStream Beast wants (as tls_transport's transport_stream), which
// also serves first the bytes that arrived after the HTTP request (a client may send frames
// right behind its upgrade request), and gathers Beast's frame header and payload into one write
// of the inner transport. Beast's teardown (after a close handshake or a protocol error) shuts
// the inner transport's send side; the caller closes it when the session ends.
//
// async_wait_readable reads a message's payload into an internal buffer (bytes below the layer
// say nothing about payload: they may be a partial frame, a ping, a frame header), and
// read_available serves it, like the TLS layer.
#include "gateway/ws_transport.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "gateway/layer_buffer.hpp"
#include "gateway/registry.hpp"

namespace sb::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// The inner net::transport as Beast's next layer. Beast has at most one read and one write of
// its next layer pending. The inner transport completes to this object (a stream_handler)
// through a shared_ptr that shares ownership with `owner`: whatever keeps the whole stack alive
// while an operation is pending.
// Not final: Asio's executor traits derive from a stream type to look for members.
class ws_next : public net::stream_handler {
public:
    using executor_type = asio::any_io_executor;

    explicit ws_next(net::transport& inner) : inner_(inner) {}
    virtual ~ws_next() = default;

    executor_type get_executor() { return inner_.get_executor(); }
    net::transport& inner() noexcept { return inner_; }

    // Set by the layer for as long as one of its operations is pending.
    std::shared_ptr<void> owner;
    // Bytes read with the HTTP request that follow it: served before the inner transport's.
    std::string prefix;

    template <class MutableBuffers, class Handler>
    auto async_read_some(const MutableBuffers& buffers, Handler&& handler) {
        return asio::async_initiate<Handler, void(net::error_code, std::size_t)>(
            [this](auto h, const MutableBuffers& b) {
                asio::mutable_buffer buf;
                for (auto it = asio::buffer_sequence_begin(b); it != asio::buffer_sequence_end(b); ++it)
                    if (const asio::mutable_buffer one = *it; one.size()) {
                        buf = one;
                        break;
                    }
                handler_type(std::move(h)).swap(read_);
                if (buf.size() == 0 || prefix_at_ < prefix.size()) {
                    const std::size_t n = std::min(buf.size(), prefix.size() - prefix_at_);
                    if (n) std::memcpy(buf.data(), prefix.data() + prefix_at_, n);
                    prefix_at_ += n;
                    if (prefix_at_ == prefix.size()) {
                        prefix_at_ = 0;
                        std::string().swap(prefix);
                    }
                    return asio::post(get_executor(), [s = self(), n] { s->on_read({}, n); });
                }
                inner_.async_read_some(std::span(static_cast<std::byte*>(buf.data()), buf.size()), self());
            },
            handler, buffers);
    }

    template <class ConstBuffers, class Handler>
    auto async_write_some(const ConstBuffers& buffers, Handler&& handler) {
        return asio::async_initiate<Handler, void(net::error_code, std::size_t)>(
            [this](auto h, const ConstBuffers& b) {
                handler_type(std::move(h)).swap(write_);
                // A frame is a header and its payload: one write of the inner transport when
                // they are small enough to copy, else the first buffer (async_write loops).
                std::size_t total = 0, count = 0;
                asio::const_buffer first;
                for (auto it = asio::buffer_sequence_begin(b); it != asio::buffer_sequence_end(b); ++it) {
                    const asio::const_buffer one = *it;
                    if (!one.size()) continue;
                    if (!count++) first = one;
                    total += one.size();
                }
                if (count > 1 && total <= gather_max) {
                    gather_.resize(total);
                    asio::buffer_copy(asio::buffer(gather_), b);
                    first = asio::buffer(gather_);
                }
                if (first.size() == 0) return asio::post(get_executor(), [s = self()] { s->on_write({}, 0); });
                inner_.async_write(std::span(static_cast<const std::byte*>(first.data()), first.size()), self());
            },
            handler, buffers);
    }

    void on_read(net::error_code ec, std::size_t n) override { take(read_)(ec, n); }
    void on_write(net::error_code ec, std::size_t n) override {
        if (gather_.capacity() > 2 * gather_keep) std::vector<std::byte>().swap(gather_);
        take(write_)(ec, n);
    }

private:
    using handler_type = asio::any_completion_handler<void(net::error_code, std::size_t)>;
    static constexpr std::size_t gather_max = 64 * 1024;
    static constexpr std::size_t gather_keep = 4 * 1024;

    // Moves by swap: Boost 1.81's move assignment of any_completion_handler wraps the handler in
    // another one, without end.
    static handler_type take(handler_type& h) {
        handler_type out;
        out.swap(h);
        return out;
    }

    std::shared_ptr<ws_next> self() { return {owner, this}; }

    net::transport& inner_;
    handler_type read_;
    handler_type write_;
    std::size_t prefix_at_ = 0;
    std::vector<std::byte> gather_;
};

// Beast's customization points for a next layer of ours (found by argument-dependent lookup).
// Teardown: the send side ends; what the peer still sends is read by whoever reads next, and
// the session closes the transport.
template <class Handler>
void async_teardown(beast::role_type, ws_next& s, Handler&& handler) {
    s.inner().shutdown_send();
    asio::post(s.get_executor(), beast::bind_front_handler(std::forward<Handler>(handler), net::error_code{}));
}

[[maybe_unused]] void teardown(beast::role_type, ws_next& s, net::error_code& ec) {
    s.inner().shutdown_send();
    ec = {};
}

[[maybe_unused]] void beast_close_socket(ws_next& s) { s.inner().close(); }

const char* reason_of(int status) noexcept {
    switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 426: return "Upgrade Required";
    default: return "Error";
    }
}

class ws_layer final : public ws_transport {
public:
    ws_layer(std::unique_ptr<net::transport> inner, const websocket_config& cfg, bool plain_http_404)
        : inner_(std::move(inner)), cfg_(&cfg), plain_http_404_(plain_http_404), ws_(*inner_) {
        ws_.binary(true);
        ws_.auto_fragment(false);   // one frame per write: the header and payload in one inner write
        ws_.read_message_max(cfg.max_message_bytes);
    }

    // ---- the handshake
    void async_accept(std::shared_ptr<void> owner,
                      std::function<void(net::error_code, std::optional<wire>)> done) override {
        done_ = std::move(done);
        hold(owner, owned_.accept);
        parser_ = std::make_unique<http::request_parser<http::empty_body>>();
        parser_->header_limit(8 * 1024);
        parser_->body_limit(0);
        rbuf_ = std::make_unique<beast::flat_buffer>(16 * 1024);
        http::async_read(ws_.next_layer(), *rbuf_, *parser_, [this](net::error_code ec, std::size_t) { on_request(ec); });
    }

    void set_protocol(wire w) noexcept override { binary_only_ = w == wire::mqtt || w == wire::amqp; }
    const std::string& target() const noexcept override { return target_; }
    const std::string& subprotocol() const noexcept override { return subprotocol_; }
    const std::string& refusal() const noexcept override { return why_; }

    // ---- net::transport
    void async_read_some(std::span<std::byte> into, std::shared_ptr<net::stream_handler> h) override {
        if (pending_.ready()) {
            net::error_code ec;
            const std::size_t n = read_available(into, ec);
            asio::post(get_executor(), [h = std::move(h), ec, n] { h->on_read(n ? net::error_code{} : ec, n); });
            return;
        }
        hold(h, owned_.read);
        ws_.async_read_some(asio::buffer(into.data(), into.size()),
                            [this, into, h = std::move(h)](net::error_code ec, std::size_t n) mutable {
                                if (!ec && n == 0) return async_read_some_again(into, std::move(h));
                                if (!ec && text_refused()) ec = refuse_text();
                                owned_.read = false;
                                release();
                                h->on_read(normal(ec), ec ? 0 : n);
                            });
    }

    void async_wait_readable(std::shared_ptr<net::stream_handler> h) override {
        if (pending_.ready()) {
            asio::post(get_executor(), [h = std::move(h)] { h->on_read({}, 0); });
            return;
        }
        const auto space = pending_.prepare();
        hold(h, owned_.read);
        ws_.async_read_some(asio::buffer(space.data(), space.size()),
                            [this, h = std::move(h)](net::error_code ec, std::size_t n) mutable {
                                if (!ec && n == 0) {   // an empty message: wait for payload
                                    owned_.read = false;
                                    return async_wait_readable(std::move(h));
                                }
                                owned_.read = false;
                                release();
                                ec = normal(ec);
                                if (ec == asio::error::operation_aborted) return h->on_read(ec, 0);
                                if (!ec && text_refused()) ec = refuse_text();
                                if (ec) pending_.fail(ec);
                                else pending_.filled(n);
                                h->on_read({}, 0);
                            });
    }

    std::size_t read_available(std::span<std::byte> into, net::error_code& ec) override {
        return pending_.take(into, ec);
    }

    void async_write(std::span<const std::byte> data, std::shared_ptr<net::stream_handler> h) override {
        hold(h, owned_.write);
        ws_.async_write(asio::buffer(data.data(), data.size()),
                        [this, h = std::move(h)](net::error_code ec, std::size_t n) {
                            owned_.write = false;
                            release();
                            h->on_write(ec, n);
                        });
    }

    // The close handshake (1000): the close frame goes out now; the peer's answer is read by the
    // pending read (which then ends with EOF) and Beast's teardown shuts the send side. The
    // handshake holds the owner of the last operation (the session, which calls close() when it
    // is done with the connection); without one only the send side is shut.
    void shutdown_send() noexcept override {
        if (closing_) return;
        closing_ = true;
        auto keep = last_owner_.lock();
        if (!keep || !ws_.is_open()) return inner_->shutdown_send();
        hold(keep, owned_.close);
        ws_.async_close(websocket::close_code::normal, [this, keep](net::error_code) {
            owned_.close = false;
            release();
        });
    }
    void close() noexcept override { inner_->close(); }

    asio::any_io_executor get_executor() override { return inner_->get_executor(); }
    const std::string& peer() const noexcept override { return inner_->peer(); }
    const std::string& peer_identity() const noexcept override { return inner_->peer_identity(); }

private:
    void async_read_some_again(std::span<std::byte> into, std::shared_ptr<net::stream_handler> h) {
        owned_.read = false;
        async_read_some(into, std::move(h));
    }

    void on_request(net::error_code ec) {
        if (ec) return refuse(400, "unreadable HTTP request: " + ec.message());
        auto& req = parser_->get();
        target_ = std::string(req.target());
        if (!websocket::is_upgrade(req))
            return refuse(plain_http_404_ ? 404 : 426, "not a WebSocket upgrade: " + std::string(req.method_string()) +
                                                          " " + target_);
        std::string offered;
        for (auto [it, end] = req.equal_range(http::field::sec_websocket_protocol); it != end; ++it) {
            if (!offered.empty()) offered += ',';
            offered += it->value();
        }
        std::optional<std::string_view> origin;
        if (auto it = req.find(http::field::origin); it != req.end()) origin = it->value();
        ws_decision d = ws_negotiate(*cfg_, target_, offered, origin);
        if (d.status != 101) return refuse(d.status, std::move(d.why));
        proto_ = d.proto;
        subprotocol_ = std::move(d.subprotocol);
        // Whatever followed the request is the WebSocket's first bytes.
        ws_.next_layer().prefix = beast::buffers_to_string(rbuf_->data());
        rbuf_.reset();
        ws_.set_option(websocket::stream_base::decorator([sp = subprotocol_](websocket::response_type& res) {
            if (!sp.empty()) res.set(http::field::sec_websocket_protocol, sp);
            res.set(http::field::server, "switchboard");
        }));
        // Beast checks the rest (Host, key, version) and answers 400 / 426 itself.
        ws_.async_accept(req, [this](net::error_code refused) {
            parser_.reset();
            if (!refused) return finish({});
            why_ = "WebSocket handshake refused: " + refused.message();
            linger(refused);
        });
    }

    void refuse(int status, std::string why) {
        why_ = std::to_string(status) + " " + why;
        std::string body = why + "\n";
        response_ = "HTTP/1.1 " + std::to_string(status) + " " + reason_of(status) +
                    "\r\nServer: switchboard\r\nConnection: close\r\nContent-Type: text/plain\r\n";
        if (status == 426) response_ += "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
        response_ += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        parser_.reset();
        rbuf_.reset();
        asio::async_write(ws_.next_layer(), asio::buffer(response_), [this](net::error_code ec, std::size_t) {
            const net::error_code refused = make_error_code(boost::system::errc::connection_refused);
            if (ec) return finish(refused);
            linger(refused);
        });
    }

    // After a refusal: the send side ends and what the client still sends is read and dropped
    // (up to drain_max bytes, until its EOF; the caller's deadline bounds the time), so that the
    // refusal is not lost to a reset caused by unread input.
    void linger(net::error_code result) {
        inner_->shutdown_send();
        if (!rbuf_) rbuf_ = std::make_unique<beast::flat_buffer>(4096);
        rbuf_->clear();
        ws_.next_layer().async_read_some(rbuf_->prepare(4096), [this, result](net::error_code ec, std::size_t n) {
            drained_ += n;
            if (ec || drained_ >= drain_max) return finish(result);
            linger(result);
        });
    }

    void finish(net::error_code ec) {
        owned_.accept = false;
        release();
        rbuf_.reset();
        auto done = std::move(done_);
        done(ec, proto_);
    }

    bool text_refused() const noexcept { return binary_only_ && ws_.got_text(); }
    // MQTT-6.0.0-1 (and AMQP's WebSocket binding): data other than binary closes with 1003.
    net::error_code refuse_text() {
        if (!closing_) {
            closing_ = true;
            auto keep = last_owner_.lock();
            hold(keep, owned_.close);
            ws_.async_close(websocket::close_code::unknown_data, [this, keep](net::error_code) {
                owned_.close = false;
                release();
            });
        }
        return make_error_code(boost::system::errc::protocol_error);
    }

    // The owner of the stack while an operation of this layer is pending (for the inner
    // transport's completions; see ws_next), released when none is.
    void hold(const std::shared_ptr<void>& o, bool& flag) {
        ws_.next_layer().owner = o;
        if (last_owner_.owner_before(o) || o.owner_before(last_owner_)) last_owner_ = o;
        flag = true;
    }
    void release() {
        if (!owned_.read && !owned_.write && !owned_.accept && !owned_.close) ws_.next_layer().owner.reset();
    }

    // The peer's close frame ends the stream as EOF does; so does our own close handshake
    // (Beast ends a read pending meanwhile with operation_aborted).
    net::error_code normal(net::error_code ec) const {
        if (ec == websocket::error::closed || (closing_ && ec == asio::error::operation_aborted))
            return asio::error::eof;
        return ec;
    }

    static constexpr std::size_t drain_max = 64 * 1024;

    std::unique_ptr<net::transport> inner_;
    const websocket_config* cfg_;   // during the handshake only (the listener's, alive meanwhile)
    bool plain_http_404_;
    websocket::stream<ws_next, false> ws_;   // no permessage-deflate
    struct {
        bool read = false;
        bool write = false;
        bool accept = false;
        bool close = false;
    } owned_;
    std::weak_ptr<void> last_owner_;   // of the last operation: for a close handshake of our own
    bool closing_ = false;
    bool binary_only_ = false;
    // The handshake.
    std::function<void(net::error_code, std::optional<wire>)> done_;
    std::unique_ptr<http::request_parser<http::empty_body>> parser_;   // during the handshake only
    std::unique_ptr<beast::flat_buffer> rbuf_;
    std::string response_;
    std::size_t drained_ = 0;
    std::string target_;
    std::string subprotocol_;
    std::string why_;
    std::optional<wire> proto_;
    // Payload read by async_wait_readable, not yet taken.
    layer_buffer pending_;
};

}  // namespace

ws_decision ws_negotiate(const websocket_config& cfg, std::string_view target, std::string_view offered,
                         std::optional<std::string_view> origin) {
    ws_decision d;
    const std::string_view path = target.substr(0, target.find('?'));
    const auto route = std::find_if(cfg.paths.begin(), cfg.paths.end(), [&](const auto& p) { return p.path == path; });
    if (route == cfg.paths.end()) return {404, "no WebSocket endpoint at " + std::string(path), {}, {}};
    if (origin && !cfg.allowed_origins.empty() &&
        std::none_of(cfg.allowed_origins.begin(), cfg.allowed_origins.end(),
                     [&](const std::string& o) { return iequals(o, trim_ows(*origin)); }))
        return {403, "origin not allowed: " + std::string(*origin), {}, {}};

    // The offers, in the client's order.
    std::vector<std::string_view> names;
    while (!offered.empty()) {
        const auto comma = offered.find(',');
        const std::string_view name = trim_ows(offered.substr(0, comma));
        offered = comma == std::string_view::npos ? std::string_view() : offered.substr(comma + 1);
        if (!name.empty()) names.push_back(name);
    }
    const auto offers = [&](std::string_view s) { return std::find(names.begin(), names.end(), s) != names.end(); };
    // The protocol of the client's first usable offer ...
    for (std::string_view name : names) {
        for (const auto* p : protocols()) {
            if (route->proto && p->id != *route->proto) continue;
            const auto& subs = p->websocket_subprotocols;
            if (std::find(subs.begin(), subs.end(), name) != subs.end()) d.proto = p->id;
        }
        if (d.proto) break;
    }
    if (d.proto) {
        // ... and of its names offered, the one the registry lists first (the highest STOMP version).
        for (std::string_view s : protocol_of(*d.proto).websocket_subprotocols)
            if (offers(s)) {
                d.subprotocol = std::string(s);
                break;
            }
        return d;
    }
    const bool any_offered = !names.empty();
    if (any_offered && cfg.fail_if_no_subprotocol)
        return {400, "no supported subprotocol offered at " + std::string(path), {}, {}};
    d.proto = route->proto;
    return d;
}

std::unique_ptr<ws_transport> make_ws_transport(std::unique_ptr<net::transport> inner, const websocket_config& cfg,
                                                bool plain_http_404) {
    return std::make_unique<ws_layer>(std::move(inner), cfg, plain_http_404);
}

}  // namespace sb::gateway
