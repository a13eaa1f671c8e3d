// core/executor.cpp — the thread-local "current worker" used to route completions home.
#include "core/executor.hpp"

namespace sb::core {

namespace {
thread_local executor* current_executor = nullptr;
}

executor* executor::current() noexcept { return current_executor; }
void executor::set_current(executor* e) noexcept { current_executor = e; }

}  // namespace sb::core
