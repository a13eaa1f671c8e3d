// adapters/net/read_buffer.cpp — scratch-first reads with owned storage only for partial frames.
#include "adapters/net/read_buffer.hpp"

#include <algorithm>
#include <cstring>

namespace sb::net {

namespace {

constexpr std::size_t scratch_bytes = 64 * 1024;

// One per worker thread: sessions of a worker never read concurrently.
std::vector<std::byte>& scratch() {
    thread_local std::vector<std::byte> s(scratch_bytes);
    return s;
}

}  // namespace

std::size_t read_buffer::fill(transport& t, error_code& ec) {
    if (size_ == 0 && !in_scratch_) {
        // Nothing pending: read straight into the scratch buffer.
        auto& s = scratch();
        const std::size_t n = t.read_available(std::span(s.data(), s.size()), ec);
        view_ = s.data();
        size_ = n;
        in_scratch_ = n > 0;
        return n;
    }
    compact();
    // An unfinished frame: append to owned storage, growing it for a frame larger than a read.
    const std::size_t used = size_;
    if (owned_.size() - used < scratch_bytes / 4) owned_.resize(std::max(owned_.size() * 2, used + scratch_bytes / 2));
    const std::size_t n = t.read_available(std::span(owned_.data() + used, owned_.size() - used), ec);
    view_ = owned_.data();
    size_ = used + n;
    return n;
}

void read_buffer::compact() {
    if (in_scratch_) {
        in_scratch_ = false;
        if (size_ == 0) return;
        owned_.assign(view_, view_ + size_);
        view_ = owned_.data();
        return;
    }
    if (size_ == 0) {
        std::vector<std::byte>().swap(owned_);   // idle: hold nothing
        view_ = nullptr;
        return;
    }
    if (view_ != owned_.data()) {
        std::memmove(owned_.data(), view_, size_);
        view_ = owned_.data();
    }
    owned_.resize(std::max(size_, owned_.size()));
}

}  // namespace sb::net
