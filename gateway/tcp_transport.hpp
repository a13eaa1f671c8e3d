// gateway/tcp_transport.hpp — the bottom of every connection's transport stack (net::transport
// over a TCP socket of ours), the stack itself, and the replay of bytes read while detecting.
//
// Transports stack: TCP at the bottom, then layers (TLS; WebSocket next), each a net::transport
// that wraps whatever net::transport is below it. Sessions and relays use the top; what only a
// socket can do (the PROXY header's addresses, splice(2), socket options) goes to the bottom.
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "gateway/fd_reactor.hpp"
#include "gateway/transport.hpp"
#include "gateway/worker.hpp"

namespace sb::gateway {

// A TCP socket bound to an io_context's own executor rather than any_io_executor: the socket
// and every operation pending on it are smaller (no type-erased executor inside; an idle
// connection's pending wait is one of those), and completions skip the erased dispatch.
using tcp_socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;

// What runs when a connection's transport is gone: a trivially copyable function object of at
// most one pointer (a lambda capturing one pointer or reference), held in place. Every idle
// connection has one: 16 bytes and no allocation, where std::function takes 32.
class destroy_hook {
public:
    destroy_hook() = default;
    template <class F>
        requires(!std::is_same_v<std::decay_t<F>, destroy_hook>)
    destroy_hook(F f) noexcept : call_([](void* p) { (*static_cast<F*>(p))(); }) {
        static_assert(std::is_trivially_copyable_v<F> && sizeof(F) <= sizeof(void*) && alignof(F) <= alignof(void*),
                      "destroy_hook holds one pointer's worth of trivially copyable state");
        std::memcpy(state_, &f, sizeof(F));
    }
    void operator()() noexcept {
        if (call_) call_(state_);
    }

private:
    void (*call_)(void*) = nullptr;
    alignas(void*) unsigned char state_[sizeof(void*)] = {};
};

// Plain TCP. The descriptor is watched by its worker's fd_reactor (no Asio socket, so no Asio
// reactor entry and no operation object while it waits: an idle connection is this object);
// writes go straight to the socket, and what it cannot take yet waits for it to be writable.
// socket() hands the descriptor to an Asio socket for what needs one (TLS, the relay's
// splice(2), socket options): every operation is then the Asio socket's.
class tcp_transport final : public net::transport {
public:
    // `on_destroy` runs when the transport (and so its connection) is gone. The socket is
    // taken from Asio and watched by the fd_reactor of its io_context.
    tcp_transport(tcp_socket socket, destroy_hook on_destroy);
    // A socket on any executor of an io_context.
    tcp_transport(boost::asio::ip::tcp::socket socket, destroy_hook on_destroy);
    ~tcp_transport() override;

    void async_read_some(std::span<std::byte> into, std::shared_ptr<net::stream_handler> h) override;
    void async_write(std::span<const std::byte> data, std::shared_ptr<net::stream_handler> h) override;
    void async_wait_readable(std::shared_ptr<net::stream_handler> h) override;
    std::size_t read_available(std::span<std::byte> into, net::error_code& ec) override;
    void shutdown_send() noexcept override;
    void close() noexcept override;
    boost::asio::any_io_executor get_executor() override;
    const std::string& peer() const noexcept override { return peer_; }
    // The socket as an Asio one (created on first use; no read or write of this transport may
    // be pending then). From then on the transport is a thin layer over it.
    tcp_socket& socket();
    // The connection's place in its worker's list of live sessions (worker::add_session).
    session_link& link() noexcept { return link_; }

private:
    friend class fd_reactor;
    struct extra;   // what few connections need: a write waiting for room, an Asio socket

    tcp_transport(boost::asio::io_context& ctx, int fd, destroy_hook on_destroy);
    // From the fd_reactor: epoll events of the descriptor.
    void on_events(std::uint32_t events) noexcept;
    // Shutdown of the reactor: the handlers waiting here go to `out`.
    void take_handlers(std::vector<std::shared_ptr<net::stream_handler>>& out) noexcept;
    bool send_some(std::size_t& done, std::span<const std::byte> data, net::error_code& ec) noexcept;
    void post_read(std::shared_ptr<net::stream_handler> h, net::error_code ec);
    void post_write(std::shared_ptr<net::stream_handler> h, net::error_code ec, std::size_t n);
    tcp_socket* asio_socket() const noexcept;

    fd_reactor* reactor_;
    int fd_ = -1;                       // -1: closed, or handed to the Asio socket
    std::uint32_t slot_;                // in the reactor (fd_reactor::npos: not watched)
    bool readable_ = false;             // input (or EOF) may be there: a wait completes at once
    bool hangup_ = false;               // EOF or an error seen: stays readable
    std::shared_ptr<net::stream_handler> reader_;   // waiting for input
    std::unique_ptr<extra> extra_;
    std::string peer_;
    destroy_hook on_destroy_;
    session_link link_;
};

// A connection's transports as the gateway holds them: the TCP transport at the bottom and the
// layers pushed on it; the top owns the layer below it, down to the bottom. Moved, never copied;
// used on the connection's worker.
class transport_stack {
public:
    explicit transport_stack(std::unique_ptr<tcp_transport> bottom) : bottom_(bottom.get()), top_(std::move(bottom)) {}

    // What sessions and relays read and write.
    net::transport& top() noexcept { return *top_; }
    // The TCP layer (owned through the top): socket options, addresses, splice(2).
    tcp_transport& bottom() noexcept { return *bottom_; }
    // True while no layer transforms the bytes: those on the socket are the stream's own, so a
    // relay may move them with splice(2).
    bool plain() const noexcept { return top_.get() == bottom_; }

    // Puts a layer on top: `make` takes the current top (std::unique_ptr<net::transport>) and
    // returns a std::unique_ptr to the layer that wraps it; returns that layer.
    template <class Make>
    auto& push(Make&& make) {
        auto layer = std::forward<Make>(make)(std::move(top_));
        auto& added = *layer;
        top_ = std::move(layer);
        return added;
    }

    // Hands the whole stack to a session (which sees only a net::transport).
    std::unique_ptr<net::transport> release() && noexcept { return std::move(top_); }

private:
    tcp_transport* bottom_;
    std::unique_ptr<net::transport> top_;
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
    const std::string& peer_identity() const noexcept override { return inner_->peer_identity(); }

private:
    std::size_t take(std::span<std::byte> into);
    std::unique_ptr<net::transport> inner_;
    std::string head_;
    std::size_t taken_ = 0;
};

}  // namespace sb::gateway
