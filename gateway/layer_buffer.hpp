// gateway/layer_buffer.hpp — what a stacked layer (TLS, WebSocket) read for async_wait_readable()
// and has not handed up yet: one 16 KiB buffer while bytes wait and none while the connection
// is idle (idle connections hold no plaintext), and the error that ended the read, reported by
// take() once the bytes before it are taken.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>

#include <boost/asio/error.hpp>

#include "gateway/transport.hpp"

namespace sb::gateway {

class layer_buffer {
public:
    // Whether a read would complete at once: bytes wait, or the error that ended the stream.
    bool ready() const noexcept { return end_ > begin_ || error_; }

    // The space for the next read from below: allocated now, emptied first.
    std::span<std::byte> prepare() {
        if (!buf_) buf_ = std::make_unique<storage>();
        begin_ = end_ = 0;
        return {buf_->data(), buf_->size()};
    }
    // That read brought `n` bytes / ended with `ec`.
    void filled(std::size_t n) noexcept { end_ = n; }
    void fail(net::error_code ec) noexcept { error_ = ec; }

    // transport::read_available(): the bytes waiting (the buffer goes once all are taken), else
    // 0 with the error that ended the stream, else 0 with would_block.
    std::size_t take(std::span<std::byte> into, net::error_code& ec) noexcept {
        ec = {};
        if (end_ > begin_) {
            const std::size_t n = std::min(into.size(), end_ - begin_);
            std::memcpy(into.data(), buf_->data() + begin_, n);
            begin_ += n;
            if (begin_ == end_) {
                begin_ = end_ = 0;
                buf_.reset();
            }
            return n;
        }
        ec = error_ ? error_ : net::error_code(boost::asio::error::would_block);
        return 0;
    }

private:
    using storage = std::array<std::byte, 16 * 1024>;
    std::unique_ptr<storage> buf_;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    net::error_code error_;
};

}  // namespace sb::gateway
