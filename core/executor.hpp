// core/executor.hpp — the kernel's view of a worker: somewhere to post work that runs later on
// one thread. The gateway implements it over an io_context; tests use a manual queue.
#pragma once

#include <cstddef>
#include <functional>

namespace sb::core {

using task = std::function<void()>;

class executor {
public:
    virtual ~executor() = default;

    // Thread-safe. `t` runs later on this executor's thread, never inside post().
    virtual void post(task t) = 0;

    // Index of this executor among the broker's workers (0..n-1).
    virtual std::size_t index() const noexcept = 0;

    // The executor whose thread is calling, or nullptr on a thread that is not a worker.
    static executor* current() noexcept;

protected:
    // Called by an implementation on its own thread before it runs any task.
    static void set_current(executor* e) noexcept;
};

}  // namespace sb::core
