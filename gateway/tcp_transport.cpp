// gateway/tcp_transport.cpp — plain TCP on the worker's fd_reactor: readiness, reads, whole-buffer
// writes, graceful shutdown; an Asio socket when one is asked for.
#include "gateway/tcp_transport.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace sb::gateway {

namespace asio = boost::asio;

namespace {

// async_read_some without an Asio socket: waits for input, then reads it.
class read_some_op final : public net::stream_handler, public std::enable_shared_from_this<read_some_op> {
public:
    read_some_op(tcp_transport& t, std::span<std::byte> into, std::shared_ptr<net::stream_handler> h)
        : t_(t), into_(into), h_(std::move(h)) {}

    void on_read(net::error_code ec, std::size_t) override {
        std::size_t n = 0;
        if (!ec) {
            n = t_.read_available(into_, ec);
            if (ec == asio::error::would_block) return t_.async_wait_readable(shared_from_this());
        }
        std::exchange(h_, {})->on_read(ec, n);
    }
    void on_write(net::error_code, std::size_t) override {}

private:
    tcp_transport& t_;   // alive: h_ holds its owner
    std::span<std::byte> into_;
    std::shared_ptr<net::stream_handler> h_;
};

asio::io_context& context_of(const asio::any_io_executor& ex) {
    return static_cast<asio::io_context&>(asio::query(ex, asio::execution::context));
}

int take_fd(asio::ip::tcp::socket& s) {
    net::error_code ec;
    if (!s.is_open()) return -1;
    const int fd = s.release(ec);
    return ec ? -1 : fd;
}

int take_fd(tcp_socket& s) {
    net::error_code ec;
    if (!s.is_open()) return -1;
    const int fd = s.release(ec);
    return ec ? -1 : fd;
}

std::string peer_of(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (fd < 0 || ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
    asio::ip::tcp::endpoint ep;
    if (len > ep.capacity()) return "?";
    std::memcpy(ep.data(), &ss, len);
    ep.resize(len);
    return ep.address().to_string() + ":" + std::to_string(ep.port());
}

}  // namespace

struct tcp_transport::extra {
    // A write the socket could not take at once: the rest goes when it is writable.
    std::span<const std::byte> data;
    std::size_t done = 0;
    std::shared_ptr<net::stream_handler> writer;
    std::optional<tcp_socket> asio;   // socket() was called
};

tcp_transport::tcp_transport(asio::ip::tcp::socket socket, destroy_hook on_destroy)
    : tcp_transport(context_of(socket.get_executor()), take_fd(socket), on_destroy) {}

tcp_transport::tcp_transport(tcp_socket socket, destroy_hook on_destroy)
    : tcp_transport(socket.get_executor().context(), take_fd(socket), on_destroy) {}

tcp_transport::tcp_transport(asio::io_context& ctx, int fd, destroy_hook on_destroy)
    : reactor_(&fd_reactor::of(ctx)), fd_(fd), slot_(fd_reactor::npos), peer_(peer_of(fd)), on_destroy_(on_destroy) {
    if (fd_ < 0) return;
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int nb = 1;
    ::ioctl(fd_, FIONBIO, &nb);   // read_available() never blocks
    if (!reactor_->add(*this)) {  // not watched: it can do nothing, so it is closed
        ::close(fd_);
        fd_ = -1;
    }
}

tcp_transport::~tcp_transport() {
    if (auto* s = asio_socket()) {
        net::error_code ec;
        s->close(ec);
    } else if (fd_ >= 0) {
        reactor_->remove(*this);
        ::close(fd_);
    }
    on_destroy_();
}

tcp_socket* tcp_transport::asio_socket() const noexcept {
    return extra_ && extra_->asio ? &*extra_->asio : nullptr;
}

tcp_socket& tcp_transport::socket() {
    if (auto* s = asio_socket()) return *s;
    if (!extra_) extra_ = std::make_unique<extra>();
    auto& s = extra_->asio.emplace(reactor_->context());
    if (fd_ >= 0) {
        reactor_->remove(*this);
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
        net::error_code ec;
        s.assign(ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd_, ec);
        if (ec) ::close(fd_);
        else s.non_blocking(true, ec);
        fd_ = -1;
    }
    // A wait begun before the hand-over continues on the Asio socket.
    if (reader_) async_wait_readable(std::exchange(reader_, {}));
    return s;
}

void tcp_transport::post_read(std::shared_ptr<net::stream_handler> h, net::error_code ec) {
    asio::post(reactor_->context(), [h = std::move(h), ec] { h->on_read(ec, 0); });
}

void tcp_transport::post_write(std::shared_ptr<net::stream_handler> h, net::error_code ec, std::size_t n) {
    asio::post(reactor_->context(), [h = std::move(h), ec, n] { h->on_write(ec, n); });
}

void tcp_transport::async_read_some(std::span<std::byte> into, std::shared_ptr<net::stream_handler> h) {
    if (auto* s = asio_socket())
        return s->async_read_some(asio::buffer(into.data(), into.size()),
                                  [h = std::move(h)](net::error_code ec, std::size_t n) { h->on_read(ec, n); });
    async_wait_readable(std::make_shared<read_some_op>(*this, into, std::move(h)));
}

void tcp_transport::async_write(std::span<const std::byte> data, std::shared_ptr<net::stream_handler> h) {
    if (auto* s = asio_socket())
        return asio::async_write(*s, asio::buffer(data.data(), data.size()),
                                 [h = std::move(h)](net::error_code ec, std::size_t n) { h->on_write(ec, n); });
    if (fd_ < 0) return post_write(std::move(h), asio::error::bad_descriptor, 0);
    std::size_t done = 0;
    net::error_code ec;
    if (send_some(done, data, ec) || ec) return post_write(std::move(h), ec, done);
    // The socket's buffer is full: the rest waits for the next output event.
    if (!extra_) extra_ = std::make_unique<extra>();
    extra_->data = data;
    extra_->done = done;
    extra_->writer = std::move(h);
}

// Sends from data[done]; true when all of it went, false when the socket is full or failed (ec).
bool tcp_transport::send_some(std::size_t& done, std::span<const std::byte> data, net::error_code& ec) noexcept {
    while (done < data.size()) {
        const ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
        if (n >= 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) ec = net::error_code(errno, asio::error::get_system_category());
        return false;
    }
    return true;
}

void tcp_transport::async_wait_readable(std::shared_ptr<net::stream_handler> h) {
    if (auto* s = asio_socket())
        return s->async_wait(tcp_socket::wait_read, [h = std::move(h)](net::error_code ec) { h->on_read(ec, 0); });
    if (fd_ < 0) return post_read(std::move(h), asio::error::bad_descriptor);
    if (readable_) return post_read(std::move(h), {});
    reader_ = std::move(h);
}

std::size_t tcp_transport::read_available(std::span<std::byte> into, net::error_code& ec) {
    if (auto* s = asio_socket()) return s->read_some(asio::buffer(into.data(), into.size()), ec);
    ec = {};
    if (fd_ < 0) {
        ec = asio::error::bad_descriptor;
        return 0;
    }
    for (;;) {
        const ssize_t n = ::recv(fd_, into.data(), into.size(), 0);
        if (n > 0) {
            // Edge-triggered: a read that did not fill the buffer took everything there was (new
            // bytes bring a new event), unless EOF or an error is pending, which stays readable.
            if (static_cast<std::size_t>(n) < into.size() && !hangup_) readable_ = false;
            return static_cast<std::size_t>(n);
        }
        if (n == 0) {
            if (into.empty()) return 0;
            ec = asio::error::eof;
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!hangup_) readable_ = false;
            ec = asio::error::would_block;
        } else {
            ec = net::error_code(errno, asio::error::get_system_category());
        }
        return 0;
    }
}

void tcp_transport::on_events(std::uint32_t events) noexcept {
    // Handlers are called after both halves are looked at, and held until then: either may end
    // the connection, and with it this transport.
    std::shared_ptr<net::stream_handler> r, w;
    net::error_code wec;
    std::size_t wn = 0;
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        if (extra_ && extra_->writer) {
            auto& x = *extra_;
            if (send_some(x.done, x.data, wec) || wec) {
                w = std::move(x.writer);
                wn = x.done;
                x.data = {};
                x.done = 0;
            }
        }
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        readable_ = true;
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) hangup_ = true;
        r = std::move(reader_);
    }
    if (w) w->on_write(wec, wn);
    if (r) r->on_read({}, 0);
}

void tcp_transport::take_handlers(std::vector<std::shared_ptr<net::stream_handler>>& out) noexcept {
    if (reader_) out.push_back(std::move(reader_));
    if (extra_ && extra_->writer) out.push_back(std::move(extra_->writer));
}

void tcp_transport::shutdown_send() noexcept {
    if (auto* s = asio_socket()) {
        net::error_code ec;
        s->shutdown(tcp_socket::shutdown_send, ec);
        return;
    }
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void tcp_transport::close() noexcept {
    if (auto* s = asio_socket()) {
        net::error_code ec;
        s->close(ec);
        return;
    }
    if (fd_ < 0) return;
    reactor_->remove(*this);
    ::close(fd_);
    fd_ = -1;
    // As an Asio socket's: what waits completes with operation_aborted.
    if (reader_) post_read(std::move(reader_), asio::error::operation_aborted);
    if (extra_ && extra_->writer) {
        post_write(std::move(extra_->writer), asio::error::operation_aborted, extra_->done);
        extra_->data = {};
        extra_->done = 0;
    }
}

asio::any_io_executor tcp_transport::get_executor() {
    if (auto* s = asio_socket()) return s->get_executor();
    return reactor_->context().get_executor();
}

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
