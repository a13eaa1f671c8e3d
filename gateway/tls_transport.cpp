// gateway/tls_transport.cpp — asio::ssl::stream behind the net::transport interface, over any
// inner net::transport.
//
// The stream's next layer is the TCP socket itself when the inner transport is the stack's TCP
// bottom (as fast as a TLS socket), and otherwise `transport_stream`: the inner net::transport
// presented as the Asio AsyncReadStream / AsyncWriteStream that ssl::stream wants.
//
// async_wait_readable has no meaning below TLS (readable socket bytes may be a partial record,
// or decrypt to nothing): it reads into an internal buffer instead, and read_available serves
// that buffer. An error seen there (EOF, truncation) is handed out by the next read_available.
#include "gateway/tls_transport.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <type_traits>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include "gateway/tcp_transport.hpp"

namespace sb::gateway {

namespace asio = boost::asio;
namespace ssl = asio::ssl;

namespace {

// A net::transport as an Asio AsyncReadStream / AsyncWriteStream. ssl::stream has at most one
// read and one write of its next layer pending, which is what a net::transport allows. The inner
// transport completes to this object (a stream_handler) through a shared_ptr that shares
// ownership with `owner`: whatever keeps the whole stack alive while an operation is pending.
class transport_stream final : public net::stream_handler {
public:
    using executor_type = asio::any_io_executor;
    using lowest_layer_type = transport_stream;

    explicit transport_stream(net::transport& inner) : inner_(inner) {}

    executor_type get_executor() { return inner_.get_executor(); }
    lowest_layer_type& lowest_layer() noexcept { return *this; }

    // Set by the layer above for as long as one of its operations is pending.
    std::shared_ptr<void> owner;

    template <class MutableBuffers, class Handler>
    auto async_read_some(const MutableBuffers& buffers, Handler&& handler) {
        return asio::async_initiate<Handler, void(net::error_code, std::size_t)>(
            [this](auto h, const MutableBuffers& b) {
                const asio::mutable_buffer buf = *asio::buffer_sequence_begin(b);   // ssl::stream passes one
                handler_type(std::move(h)).swap(read_);
                if (buf.size() == 0) return asio::post(get_executor(), [this] { on_read({}, 0); });
                inner_.async_read_some(std::span(static_cast<std::byte*>(buf.data()), buf.size()), self());
            },
            handler, buffers);
    }

    template <class ConstBuffers, class Handler>
    auto async_write_some(const ConstBuffers& buffers, Handler&& handler) {
        return asio::async_initiate<Handler, void(net::error_code, std::size_t)>(
            [this](auto h, const ConstBuffers& b) {
                const asio::const_buffer buf = *asio::buffer_sequence_begin(b);
                handler_type(std::move(h)).swap(write_);
                if (buf.size() == 0) return asio::post(get_executor(), [this] { on_write({}, 0); });
                inner_.async_write(std::span(static_cast<const std::byte*>(buf.data()), buf.size()), self());
            },
            handler, buffers);
    }

    void on_read(net::error_code ec, std::size_t n) override { take(read_)(ec, n); }
    void on_write(net::error_code ec, std::size_t n) override { take(write_)(ec, n); }

private:
    using handler_type = asio::any_completion_handler<void(net::error_code, std::size_t)>;

    // Moves by swap: Boost 1.81's move assignment of any_completion_handler wraps the handler in
    // another one, without end.
    static handler_type take(handler_type& h) {
        handler_type out;
        out.swap(h);
        return out;
    }

    std::shared_ptr<net::stream_handler> self() { return {owner, this}; }

    net::transport& inner_;
    // The ssl::stream's pending operations (their memory comes from Asio's per-thread recycling
    // allocator: nothing is allocated per record in the steady state).
    handler_type read_;
    handler_type write_;
};

// `Next` is the ssl::stream's next layer: the TCP socket (a reference) or a transport_stream.
template <class Next>
class tls_layer final : public tls_transport {
    static constexpr bool over_socket = std::is_same_v<Next, tcp_socket&>;

public:
    tls_layer(std::unique_ptr<net::transport> inner, std::shared_ptr<ssl::context> ctx, tls_role role)
        : inner_(std::move(inner)), adapter_(adapter_for(*inner_)), ctx_(std::move(ctx)), stream_(next(), *ctx_),
          role_(role) {}

    void async_handshake(std::shared_ptr<void> owner, std::function<void(net::error_code)> done) override {
        set_owner(owner);
        owned_.handshake = true;
        stream_.async_handshake(role_ == tls_role::server ? ssl::stream_base::server : ssl::stream_base::client,
                                [this, owner = std::move(owner), done = std::move(done)](net::error_code ec) {
                                    owned_.handshake = false;
                                    release_owner();
                                    done(ec);
                                });
    }

    void async_read_some(std::span<std::byte> into, std::shared_ptr<net::stream_handler> h) override {
        if (buffered() > 0 || pending_error_) {
            net::error_code ec;
            const std::size_t n = read_available(into, ec);
            asio::post(get_executor(), [h = std::move(h), ec, n] { h->on_read(n ? net::error_code{} : ec, n); });
            return;
        }
        set_owner(h);
        owned_.read = true;
        stream_.async_read_some(asio::buffer(into.data(), into.size()),
                                [this, h = std::move(h)](net::error_code ec, std::size_t n) {
                                    owned_.read = false;
                                    release_owner();
                                    h->on_read(normal(ec), n);
                                });
    }

    void async_wait_readable(std::shared_ptr<net::stream_handler> h) override {
        if (buffered() > 0 || pending_error_) {
            asio::post(get_executor(), [h = std::move(h)] { h->on_read({}, 0); });
            return;
        }
        if (!buf_) buf_ = std::make_unique<std::array<std::byte, 16 * 1024>>();
        begin_ = end_ = 0;
        set_owner(h);
        owned_.read = true;
        stream_.async_read_some(asio::buffer(buf_->data(), buf_->size()),
                                [this, h = std::move(h)](net::error_code ec, std::size_t n) {
                                    owned_.read = false;
                                    release_owner();
                                    if (ec == asio::error::operation_aborted) return h->on_read(ec, 0);
                                    end_ = n;
                                    if (ec) pending_error_ = normal(ec);
                                    h->on_read({}, 0);
                                });
    }

    std::size_t read_available(std::span<std::byte> into, net::error_code& ec) override {
        ec = {};
        if (buffered() > 0) {
            const std::size_t n = std::min(into.size(), buffered());
            std::memcpy(into.data(), buf_->data() + begin_, n);
            begin_ += n;
            if (begin_ == end_) {
                begin_ = end_ = 0;
                buf_.reset();   // idle TLS connections hold no plaintext buffer
            }
            return n;
        }
        ec = pending_error_ ? pending_error_ : net::error_code(asio::error::would_block);
        return 0;
    }

    void async_write(std::span<const std::byte> data, std::shared_ptr<net::stream_handler> h) override {
        set_owner(h);
        owned_.write = true;
        asio::async_write(stream_, asio::buffer(data.data(), data.size()),
                          [this, h = std::move(h)](net::error_code ec, std::size_t n) {
                              owned_.write = false;
                              release_owner();
                              h->on_write(ec, n);
                          });
    }

    // As before TLS was a layer: the send side of what is below ends, without close_notify
    // (message protocols frame their own ends).
    void shutdown_send() noexcept override { inner_->shutdown_send(); }
    void close() noexcept override { inner_->close(); }

    asio::any_io_executor get_executor() override { return inner_->get_executor(); }
    const std::string& peer() const noexcept override { return inner_->peer(); }

private:
    static std::optional<transport_stream> adapter_for(net::transport& inner) {
        if constexpr (over_socket) return std::nullopt;
        else return std::optional<transport_stream>(std::in_place, inner);
    }

    Next next() {
        if constexpr (over_socket) return static_cast<tcp_transport&>(*inner_).socket();
        else return *adapter_;
    }

    // The owner of the stack while an operation of this layer is pending (for the inner
    // transport's completions; see transport_stream). Released when none is, so that the
    // stack does not keep its own owner alive.
    void set_owner(const std::shared_ptr<void>& o) {
        if constexpr (!over_socket) adapter_->owner = o;
        else (void)o;
    }
    void release_owner() {
        if constexpr (!over_socket)
            if (!owned_.read && !owned_.write && !owned_.handshake) adapter_->owner.reset();
    }

    // A peer that closes without close_notify is an ordinary EOF for a message protocol: its
    // frames carry their own lengths or terminators.
    static net::error_code normal(net::error_code ec) {
        return ec == ssl::error::stream_truncated ? net::error_code(asio::error::eof) : ec;
    }
    std::size_t buffered() const noexcept { return end_ - begin_; }

    std::unique_ptr<net::transport> inner_;
    std::optional<transport_stream> adapter_;   // over any transport but the TCP bottom
    std::shared_ptr<ssl::context> ctx_;
    ssl::stream<Next> stream_;
    tls_role role_;
    struct {
        bool read = false;
        bool write = false;
        bool handshake = false;
    } owned_;
    std::unique_ptr<std::array<std::byte, 16 * 1024>> buf_;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    net::error_code pending_error_;
};

}  // namespace

std::shared_ptr<ssl::context> make_tls_context(const tls_config& c) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    net::error_code ec;
    ctx->use_certificate_chain_file(c.cert_file, ec);
    if (ec) throw std::runtime_error("tls.cert " + c.cert_file + ": " + ec.message());
    ctx->use_private_key_file(c.key_file, ssl::context::pem, ec);
    if (ec) throw std::runtime_error("tls.key " + c.key_file + ": " + ec.message());
    return ctx;
}

std::unique_ptr<tls_transport> make_tls_transport(std::unique_ptr<net::transport> inner, std::shared_ptr<ssl::context> ctx,
                                                  tls_role role) {
    if (dynamic_cast<tcp_transport*>(inner.get()))
        return std::make_unique<tls_layer<tcp_socket&>>(std::move(inner), std::move(ctx), role);
    return std::make_unique<tls_layer<transport_stream&>>(std::move(inner), std::move(ctx), role);
}

}  // namespace sb::gateway
