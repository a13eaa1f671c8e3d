// gateway/transport.hpp — the byte stream a connection runs on (TCP, TLS, WebSocket, or an
// in-memory pair in tests), and the gateway's handle on a live connection. The engine driver
// (gateway/engine_driver) pumps a protocol's engine over it; protocols never see it (adapters/
// has no Asio). Its namespace is still sb::net, the name every transport already uses.
//
// All calls and completions happen on the connection's worker thread. One read and one write
// may be in flight at a time. Completions go to the session through `stream_handler`; the
// transport holds the handler alive (a shared_ptr) for as long as an operation is pending.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/system/error_code.hpp>

namespace sb::net {

using error_code = boost::system::error_code;

class stream_handler {
public:
    virtual void on_read(error_code ec, std::size_t n) = 0;
    virtual void on_write(error_code ec, std::size_t n) = 0;

protected:
    ~stream_handler() = default;
};

class transport {
public:
    virtual ~transport() = default;

    // Reads at most `into.size()` bytes; completes with h->on_read.
    virtual void async_read_some(std::span<std::byte> into, std::shared_ptr<stream_handler> h) = 0;
    // Completes with h->on_read(ec, 0) once bytes (or EOF) can be read without blocking; then
    // read_available() takes them. Lets idle connections hold no read buffer.
    virtual void async_wait_readable(std::shared_ptr<stream_handler> h) = 0;
    // Non-blocking read: the bytes read, or 0 with `ec` (would_block, eof, ...).
    virtual std::size_t read_available(std::span<std::byte> into, error_code& ec) = 0;
    // Writes all of `data` (which stays valid until completion); completes with h->on_write.
    virtual void async_write(std::span<const std::byte> data, std::shared_ptr<stream_handler> h) = 0;
    // Stops sending after pending writes (graceful); then close() follows.
    virtual void shutdown_send() noexcept = 0;
    // Closes at once; pending operations complete with an error.
    virtual void close() noexcept = 0;

    virtual boost::asio::any_io_executor get_executor() = 0;
    virtual const std::string& peer() const noexcept = 0;  // "127.0.0.1:51544"
    // Who the peer proved to be below the protocol (the user a verified TLS client certificate
    // maps to); empty when nobody. A layer forwards its inner transport's.
    virtual const std::string& peer_identity() const noexcept {
        static const std::string nobody;
        return nobody;
    }
};

// What the gateway holds for every live connection, whatever its protocol.
class session {
public:
    virtual ~session() = default;
    virtual void start() = 0;
    // Graceful stop at shutdown: finish queued output, then close. Idempotent.
    virtual void stop() = 0;
};

}  // namespace sb::net
