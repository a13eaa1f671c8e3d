// adapters/net/lazy_deque.hpp — the engine's lazy_deque, under the name the sessions not yet on
// the engine use.
#pragma once

#include "adapters/engine/lazy_deque.hpp"

namespace sb::net {

using engine::lazy_deque;

}  // namespace sb::net
