// tests/bench/peer.cpp — a TCP connection's read loop and write queue.
#include "tests/bench/peer.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstring>

namespace sb::bench {

void peer::close() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    sock_.shutdown(tcp::socket::shutdown_both, ignored);
    sock_.close(ignored);
    on_closed();
}

void peer::close_after_flush() {
    if (closed_) return;
    if (!writing_ && out_.empty()) return close();
    close_when_flushed_ = true;
    flush();
}

void peer::start_reading() {
    if (in_.empty()) in_.resize(initial_buffer);
    do_read();
}

void peer::resume_reading() {
    if (!paused_) return;
    paused_ = false;
    do_read();
}

void peer::do_read() {
    if (reading_ || paused_ || closed_) return;
    if (in_.size() - in_len_ < min_free) {
        // A frame larger than the buffer, or a slow decoder: grow (bounded) rather than stall.
        const std::size_t want = std::max(in_.size() * 2, in_len_ + initial_buffer);
        if (want > max_buffer) {
            on_io_error(asio::error::message_size, "read (frame over 256 MiB)");
            return close();
        }
        in_.resize(want);
    }
    reading_ = true;
    sock_.async_read_some(asio::buffer(in_.data() + in_len_, in_.size() - in_len_),
                          [self = shared_from_this()](const error_code& ec, std::size_t n) {
                              self->on_read(ec, n);
                          });
}

void peer::on_read(const error_code& ec, std::size_t n) {
    reading_ = false;
    if (closed_) return;
    if (ec) {
        on_io_error(ec, "read");
        return close();
    }
    in_len_ += n;
    const std::size_t used = on_bytes(std::span<const std::uint8_t>(in_.data(), in_len_));
    if (closed_) return;
    if (used > 0) {
        std::memmove(in_.data(), in_.data() + used, in_len_ - used);
        in_len_ -= used;
    }
    flush();
    do_read();
}

void peer::flush() {
    if (writing_ || closed_) return;
    if (out_.empty()) {
        if (close_when_flushed_) close();
        return;
    }
    // Everything queued goes out in one write; frames appended meanwhile wait in out_.
    wbuf_.swap(out_);
    out_.clear();
    writing_ = true;
    asio::async_write(sock_, asio::buffer(wbuf_),
                      [self = shared_from_this()](const error_code& ec, std::size_t) {
                          self->on_write(ec);
                      });
}

void peer::on_write(const error_code& ec) {
    writing_ = false;
    wbuf_.clear();
    if (closed_) return;
    if (ec) {
        on_io_error(ec, "write");
        return close();
    }
    if (!close_when_flushed_) on_written();
    flush();
}

}  // namespace sb::bench
