// gateway/fd_reactor.hpp — readiness of a worker's TCP connections without Asio's per-socket
// state: one epoll set per io_context, itself one descriptor in the io_context's reactor.
//
// An Asio socket costs every connection its reactor entry (`descriptor_state`, 168 bytes with
// a mutex and three operation queues) and, while it waits for input, an operation object (112
// bytes and more): most of what an idle connection holds. A tcp_transport registers its
// descriptor here instead, once, edge-triggered for input and output (data.ptr = the
// transport), and keeps what it waits for in itself: the reactor holds no per-connection
// allocation but one slot in a vector (used to drop the pending handlers at shutdown).
//
// When the epoll set has events, the io_context runs one handler that takes them (at most
// `batch` at once; more: the rest in a posted handler, so that other work interleaves) and
// hands each to its transport. A transport removed while a batch is being handed out gets
// none of the batch's remaining events. All calls on the io_context's thread.
#pragma once

#include <cstdint>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <sys/epoll.h>

namespace sb::gateway {

class tcp_transport;

class fd_reactor final : public boost::asio::execution_context::service {
public:
    using key_type = fd_reactor;
    static inline boost::asio::execution_context::id id;
    static constexpr std::uint32_t npos = static_cast<std::uint32_t>(-1);

    explicit fd_reactor(boost::asio::io_context& ctx);
    ~fd_reactor() override;

    static fd_reactor& of(boost::asio::io_context& ctx) { return boost::asio::use_service<fd_reactor>(ctx); }
    boost::asio::io_context& context() noexcept { return ctx_; }

    // Watches t's descriptor (input, output, peer hang-up; edge-triggered). False: epoll_ctl
    // failed (errno).
    bool add(tcp_transport& t) noexcept;
    // Stops watching it (before its descriptor is closed or handed to Asio).
    void remove(tcp_transport& t) noexcept;

private:
    static constexpr int batch = 256;

    void shutdown() override;
    void arm();
    void run();

    boost::asio::io_context& ctx_;
    boost::asio::posix::stream_descriptor ep_;   // the epoll set, waited on by the io_context
    std::vector<tcp_transport*> sources_;        // every registered transport (its slot_)
    epoll_event* batch_ = nullptr;               // the events being handed out, if any
    int batch_n_ = 0, batch_i_ = 0;
    bool waiting_ = false, shut_ = false;
};

}  // namespace sb::gateway
