// gateway/tcp_transport.hpp — net::transport over a plain TCP socket, and the socket-level view
// of a transport that the gateway needs (PROXY headers, splice).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/ip/tcp.hpp>

#include "gateway/transport.hpp"

namespace sb::gateway {

// A transport on a TCP socket of ours: plain or TLS.
class socket_transport : public net::transport {
public:
    virtual boost::asio::ip::tcp::socket& socket() noexcept = 0;   // the TCP layer
    virtual bool plain() const noexcept = 0;                        // bytes on the socket are the stream's
};

class tcp_transport final : public socket_transport {
public:
    // `on_destroy` runs when the transport (and so its connection) is gone.
    tcp_transport(boost::asio::ip::tcp::socket socket, std::function<void()> on_destroy);
    ~tcp_transport() override;

    void async_read_some(std::span<std::byte> into, std::shared_ptr<net::stream_handler> h) override;
    void async_write(std::span<const std::byte> data, std::shared_ptr<net::stream_handler> h) override;
    void async_wait_readable(std::shared_ptr<net::stream_handler> h) override;
    std::size_t read_available(std::span<std::byte> into, net::error_code& ec) override;
    void shutdown_send() noexcept override;
    void close() noexcept override;
    boost::asio::any_io_executor get_executor() override;
    const std::string& peer() const noexcept override { return peer_; }
    boost::asio::ip::tcp::socket& socket() noexcept override { return socket_; }
    bool plain() const noexcept override { return true; }

private:
    boost::asio::ip::tcp::socket socket_;
    std::string peer_;
    std::function<void()> on_destroy_;
};

// Serves `head` (bytes already read while detecting the protocol) before the inner
// transport's own; everything else is the inner transport's.
class prefixed_transport final : public net::transport {
public:
    prefixed_transport(std::unique_ptr<net::transport> inner, std::string head)
        : inner_(std::move(inner)), head_(std::move(head)) {}

    void async_read_some(std::span<std::byte> into, std::shared_ptr<net::stream_handler> h) override;
    void async_write(std::span<const std::byte> data, std::shared_ptr<net::stream_handler> h) override {
        inner_->async_write(data, std::move(h));
    }
    void async_wait_readable(std::shared_ptr<net::stream_handler> h) override;
    std::size_t read_available(std::span<std::byte> into, net::error_code& ec) override;
    void shutdown_send() noexcept override { inner_->shutdown_send(); }
    void close() noexcept override { inner_->close(); }
    boost::asio::any_io_executor get_executor() override { return inner_->get_executor(); }
    const std::string& peer() const noexcept override { return inner_->peer(); }

private:
    std::size_t take(std::span<std::byte> into);
    std::unique_ptr<net::transport> inner_;
    std::string head_;
    std::size_t taken_ = 0;
};

}  // namespace sb::gateway
