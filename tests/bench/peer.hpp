// tests/bench/peer.hpp — one TCP connection with a growing read buffer and a double-buffered
// write queue; the base of the bench's clients, its sink connections and its idle connections.
// Runs on one io_context thread; lives by shared_from_this while I/O is pending.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sb::bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

class peer : public std::enable_shared_from_this<peer> {
public:
    explicit peer(asio::io_context& ioc) : sock_(ioc) {}
    explicit peer(tcp::socket s) : sock_(std::move(s)) {}
    virtual ~peer() = default;
    peer(const peer&) = delete;
    peer& operator=(const peer&) = delete;

    tcp::socket& socket() noexcept { return sock_; }
    bool closed() const noexcept { return closed_; }

    // Closes the socket now; pending handlers complete with operation_aborted and are ignored.
    void close();
    // Closes once everything queued in out_ has been written.
    void close_after_flush();

protected:
    // Begins the read loop (call once the socket is connected or accepted).
    void start_reading();
    // Stops asking for bytes after the current read (back-pressure); resume_reading() continues.
    void pause_reading() noexcept { paused_ = true; }
    void resume_reading();

    // Decodes what it can from `in` and returns how many bytes it consumed; the rest stays
    // buffered for the next call. Called after every read; may append to out_ and close().
    virtual std::size_t on_bytes(std::span<const std::uint8_t> in) = 0;
    // A write finished; out_ may be refilled (flush() follows).
    virtual void on_written() {}
    // A read or write failed (including end of stream). Not called after close().
    virtual void on_io_error(const error_code& ec, std::string_view op) = 0;
    // The socket was closed (by either side), exactly once.
    virtual void on_closed() {}

    // Starts writing out_ unless a write is in flight (its completion writes the rest).
    void flush();
    bool writing() const noexcept { return writing_; }
    // Bytes queued and not yet written.
    std::size_t pending_out() const noexcept { return out_.size() + wbuf_.size(); }

    std::string out_;  // frames to send: append, then flush()

private:
    void do_read();
    void on_read(const error_code& ec, std::size_t n);
    void on_write(const error_code& ec);

    static constexpr std::size_t initial_buffer = 64 * 1024;
    static constexpr std::size_t min_free = 16 * 1024;
    static constexpr std::size_t max_buffer = 256ull << 20;

    tcp::socket sock_;
    std::vector<std::uint8_t> in_;
    std::size_t in_len_ = 0;
    std::string wbuf_;  // the bytes of the write in flight
    bool reading_ = false;
    bool writing_ = false;
    bool paused_ = false;
    bool closed_ = false;
    bool close_when_flushed_ = false;
};

}  // namespace sb::bench
