// adapters/engine/lazy_deque.hpp — a std::deque that costs nothing until used. libstdc++'s deque
// allocates ~600 bytes when constructed; an idle connection should hold none of that.
#pragma once

#include <deque>
#include <memory>

namespace sb::engine {

template <typename T>
class lazy_deque {
public:
    std::deque<T>& operator*() {
        if (!d_) [[unlikely]] make();   // the rest inlines: queues are touched per message
        return *d_;
    }
    std::deque<T>* operator->() { return &**this; }
    bool empty() const noexcept { return !d_ || d_->empty(); }
    std::size_t size() const noexcept { return d_ ? d_->size() : 0; }
    void clear() noexcept { d_.reset(); }
    // Frees the storage when nothing is queued (call at quiet points; never while element
    // addresses are held).
    void release_if_empty() noexcept {
        if (d_ && d_->empty()) d_.reset();
    }

private:
    [[gnu::noinline]] void make() { d_ = std::make_unique<std::deque<T>>(); }

    std::unique_ptr<std::deque<T>> d_;
};

}  // namespace sb::engine
