// adapters/net/read_buffer.hpp — input bytes of one connection without a buffer per idle
// connection: a session waits for readability, reads into its worker's scratch buffer, decodes
// in place, and keeps only an unfinished frame's bytes in storage of its own (released once
// empty). Thousands of idle connections then hold no read buffers at all.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "adapters/net/transport.hpp"

namespace sb::net {

class read_buffer {
public:
    // Reads what the transport has now (at most one scratch buffer's worth). Returns the bytes
    // added; 0 with `ec` = would_block when there was nothing, or another `ec` (eof, reset).
    std::size_t fill(transport& t, error_code& ec);

    // The bytes not yet consumed. Valid until the next fill() or compact().
    std::span<const std::uint8_t> data() const noexcept {
        return std::span(reinterpret_cast<const std::uint8_t*>(view_), size_);
    }
    std::size_t size() const noexcept { return size_; }
    void consume(std::size_t n) noexcept {
        view_ += n;
        size_ -= n;
    }
    void clear() noexcept { consume(size_); }

    // Before returning to the event loop: what is left moves out of the shared scratch buffer
    // into owned storage; owned storage is freed once empty.
    void compact();

    std::size_t owned_capacity() const noexcept { return owned_.capacity(); }

private:
    std::vector<std::byte> owned_;
    const std::byte* view_ = nullptr;
    std::size_t size_ = 0;
    bool in_scratch_ = false;
};

}  // namespace sb::net
