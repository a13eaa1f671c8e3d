// gateway/tcp_transport.cpp — plain TCP: reads, whole-buffer writes, graceful shutdown.
#include "gateway/tcp_transport.hpp"

#include <algorithm>
#include <cstring>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace sb::gateway {

namespace asio = boost::asio;

namespace {

tcp_socket on_own_executor(asio::ip::tcp::socket s) {
    auto& ctx = static_cast<asio::io_context&>(asio::query(s.get_executor(), asio::execution::context));
    tcp_socket out(ctx);
    net::error_code ec;
    if (!s.is_open()) return out;
    const auto protocol = s.local_endpoint(ec).protocol();
    const auto fd = s.release(ec);
    if (!ec) out.assign(protocol, fd, ec);
    return out;
}

}  // namespace

tcp_transport::tcp_transport(asio::ip::tcp::socket socket, destroy_hook on_destroy)
    : tcp_transport(on_own_executor(std::move(socket)), on_destroy) {}

tcp_transport::tcp_transport(tcp_socket socket, destroy_hook on_destroy)
    : socket_(std::move(socket)), on_destroy_(on_destroy) {
    net::error_code ec;
    const auto ep = socket_.remote_endpoint(ec);
    peer_ = ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);   // read_available() never blocks
}

tcp_transport::~tcp_transport() {
    net::error_code ec;
    socket_.close(ec);
    on_destroy_();
}

void tcp_transport::async_read_some(std::span<std::byte> into, std::shared_ptr<net::stream_handler> h) {
    socket_.async_read_some(asio::buffer(into.data(), into.size()),
                            [h = std::move(h)](net::error_code ec, std::size_t n) { h->on_read(ec, n); });
}

void tcp_transport::async_write(std::span<const std::byte> data, std::shared_ptr<net::stream_handler> h) {
    asio::async_write(socket_, asio::buffer(data.data(), data.size()),
                      [h = std::move(h)](net::error_code ec, std::size_t n) { h->on_write(ec, n); });
}

void tcp_transport::async_wait_readable(std::shared_ptr<net::stream_handler> h) {
    socket_.async_wait(tcp_socket::wait_read,
                       [h = std::move(h)](net::error_code ec) { h->on_read(ec, 0); });
}

std::size_t tcp_transport::read_available(std::span<std::byte> into, net::error_code& ec) {
    return socket_.read_some(asio::buffer(into.data(), into.size()), ec);
}

void tcp_transport::shutdown_send() noexcept {
    net::error_code ec;
    socket_.shutdown(tcp_socket::shutdown_send, ec);
}

void tcp_transport::close() noexcept {
    net::error_code ec;
    socket_.close(ec);
}

asio::any_io_executor tcp_transport::get_executor() { return socket_.get_executor(); }

std::size_t prefixed_transport::take(std::span<std::byte> into) {
    const std::size_t n = std::min(into.size(), head_.size() - taken_);
    std::memcpy(into.data(), head_.data() + taken_, n);
    taken_ += n;
    if (taken_ == head_.size()) {
        head_.clear();
        head_.shrink_to_fit();
        taken_ = 0;
    }
    return n;
}

void prefixed_transport::async_read_some(std::span<std::byte> into, std::shared_ptr<net::stream_handler> h) {
    if (head_.empty()) return inner_->async_read_some(into, std::move(h));
    const std::size_t n = take(into);
    asio::post(inner_->get_executor(), [h = std::move(h), n] { h->on_read({}, n); });
}

void prefixed_transport::async_wait_readable(std::shared_ptr<net::stream_handler> h) {
    if (head_.empty()) return inner_->async_wait_readable(std::move(h));
    asio::post(inner_->get_executor(), [h = std::move(h)] { h->on_read({}, 0); });
}

std::size_t prefixed_transport::read_available(std::span<std::byte> into, net::error_code& ec) {
    if (head_.empty()) return inner_->read_available(into, ec);
    ec = {};
    return take(into);
}

}  // namespace sb::gateway
