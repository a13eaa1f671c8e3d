// gateway/fd_reactor.cpp — one epoll set per worker for its TCP transports.
#include "gateway/fd_reactor.hpp"

#include <cerrno>
#include <memory>
#include <system_error>

#include <boost/asio/post.hpp>

#include "gateway/tcp_transport.hpp"

namespace sb::gateway {

namespace asio = boost::asio;

fd_reactor::fd_reactor(asio::io_context& ctx) : service(ctx), ctx_(ctx), ep_(ctx) {
    const int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    ep_.assign(fd);
}

fd_reactor::~fd_reactor() = default;

bool fd_reactor::add(tcp_transport& t) noexcept {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = &t;
    if (shut_ || ::epoll_ctl(ep_.native_handle(), EPOLL_CTL_ADD, t.fd_, &ev) != 0) return false;
    t.slot_ = static_cast<std::uint32_t>(sources_.size());
    sources_.push_back(&t);
    arm();
    return true;
}

void fd_reactor::remove(tcp_transport& t) noexcept {
    const std::uint32_t i = t.slot_;
    if (i == npos) return;
    t.slot_ = npos;
    if (!shut_) ::epoll_ctl(ep_.native_handle(), EPOLL_CTL_DEL, t.fd_, nullptr);
    if (i < sources_.size()) {
        sources_[i] = sources_.back();
        sources_[i]->slot_ = i;
        sources_.pop_back();
    }
    // Events of this batch not handed out yet: none for a transport that is gone.
    for (int k = batch_i_ + 1; k < batch_n_; ++k)
        if (batch_[k].data.ptr == &t) batch_[k].data.ptr = nullptr;
}

void fd_reactor::arm() {
    if (waiting_ || shut_) return;
    waiting_ = true;
    ep_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
        waiting_ = false;
        if (!ec) run();
    });
}

void fd_reactor::run() {
    if (shut_) return;
    epoll_event events[batch];
    int n;
    do n = ::epoll_wait(ep_.native_handle(), events, batch, 0);
    while (n < 0 && errno == EINTR);
    batch_ = events;
    batch_n_ = n > 0 ? n : 0;
    for (batch_i_ = 0; batch_i_ < batch_n_; ++batch_i_)
        if (auto* t = static_cast<tcp_transport*>(events[batch_i_].data.ptr)) t->on_events(events[batch_i_].events);
    batch_ = nullptr;
    batch_n_ = batch_i_ = 0;
    // A full batch may have left events behind; the epoll descriptor (edge-triggered in the
    // io_context's reactor) signals only new ones, so the rest are taken in a handler of their own.
    if (n == batch) asio::post(ctx_, [this] { run(); });
    else arm();
}

void fd_reactor::shutdown() {
    shut_ = true;
    // The handlers waiting in transports hold their connections: dropped here, as Asio drops
    // its pending operations, after the loop (a connection destroyed with them removes itself).
    std::vector<std::shared_ptr<net::stream_handler>> pending;
    for (auto* t : sources_) t->take_handlers(pending);
    pending.clear();
    boost::system::error_code ec;
    ep_.close(ec);
}

}  // namespace sb::gateway
