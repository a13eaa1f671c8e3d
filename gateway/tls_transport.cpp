// gateway/tls_transport.cpp — asio::ssl::stream behind the net::transport interface.
//
// async_wait_readable has no meaning below TLS (readable socket bytes may be a partial record,
// or decrypt to nothing): it reads into an internal buffer instead, and read_available serves
// that buffer. An error seen there (EOF, truncation) is handed out by the next read_available.
#include "gateway/tls_transport.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

namespace sb::gateway {

namespace asio = boost::asio;
namespace ssl = asio::ssl;

namespace {

class tls_transport final : public socket_transport {
public:
    tls_transport(asio::ip::tcp::socket socket, std::shared_ptr<ssl::context> ctx, std::function<void()> on_destroy)
        : ctx_(std::move(ctx)), stream_(std::move(socket), *ctx_), on_destroy_(std::move(on_destroy)) {
        net::error_code ec;
        const auto ep = stream_.next_layer().remote_endpoint(ec);
        peer_ = ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
        stream_.next_layer().set_option(asio::ip::tcp::no_delay(true), ec);
    }

    ~tls_transport() override {
        net::error_code ec;
        stream_.next_layer().close(ec);
        if (on_destroy_) on_destroy_();
    }

    void handshake(std::function<void(net::error_code)> done) {
        stream_.async_handshake(ssl::stream_base::server, std::move(done));
    }

    void async_read_some(std::span<std::byte> into, std::shared_ptr<net::stream_handler> h) override {
        if (buffered() > 0 || pending_error_) {
            net::error_code ec;
            const std::size_t n = read_available(into, ec);
            asio::post(get_executor(), [h = std::move(h), ec, n] { h->on_read(n ? net::error_code{} : ec, n); });
            return;
        }
        stream_.async_read_some(asio::buffer(into.data(), into.size()),
                                [h = std::move(h)](net::error_code ec, std::size_t n) { h->on_read(normal(ec), n); });
    }

    void async_wait_readable(std::shared_ptr<net::stream_handler> h) override {
        if (buffered() > 0 || pending_error_) {
            asio::post(get_executor(), [h = std::move(h)] { h->on_read({}, 0); });
            return;
        }
        if (!buf_) buf_ = std::make_unique<std::array<std::byte, 16 * 1024>>();
        begin_ = end_ = 0;
        stream_.async_read_some(asio::buffer(buf_->data(), buf_->size()),
                                [this, h = std::move(h)](net::error_code ec, std::size_t n) {
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
        asio::async_write(stream_, asio::buffer(data.data(), data.size()),
                          [h = std::move(h)](net::error_code ec, std::size_t n) { h->on_write(ec, n); });
    }

    void shutdown_send() noexcept override {
        net::error_code ec;
        stream_.next_layer().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    }

    void close() noexcept override {
        net::error_code ec;
        stream_.next_layer().close(ec);
    }

    asio::any_io_executor get_executor() override { return stream_.get_executor(); }
    const std::string& peer() const noexcept override { return peer_; }
    asio::ip::tcp::socket& socket() noexcept override { return stream_.next_layer(); }
    bool plain() const noexcept override { return false; }

private:
    // A peer that closes without close_notify is an ordinary EOF for a message protocol: its
    // frames carry their own lengths or terminators.
    static net::error_code normal(net::error_code ec) {
        return ec == ssl::error::stream_truncated ? net::error_code(asio::error::eof) : ec;
    }
    std::size_t buffered() const noexcept { return end_ - begin_; }

    std::shared_ptr<ssl::context> ctx_;
    ssl::stream<asio::ip::tcp::socket> stream_;
    std::function<void()> on_destroy_;
    std::string peer_;
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

std::unique_ptr<socket_transport> make_tls_transport(asio::ip::tcp::socket socket, std::shared_ptr<ssl::context> ctx,
                                                     std::function<void()> on_destroy) {
    return std::make_unique<tls_transport>(std::move(socket), std::move(ctx), std::move(on_destroy));
}

void tls_handshake(socket_transport& t, std::function<void(net::error_code)> done) {
    static_cast<tls_transport&>(t).handshake(std::move(done));
}

}  // namespace sb::gateway
