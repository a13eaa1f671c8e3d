// gateway/tcp_transport.hpp — net::transport over a plain TCP socket.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/ip/tcp.hpp>

#include "adapters/net/transport.hpp"

namespace sb::gateway {

class tcp_transport final : public net::transport {
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

private:
    boost::asio::ip::tcp::socket socket_;
    std::string peer_;
    std::function<void()> on_destroy_;
};

}  // namespace sb::gateway
