// gateway/server.hpp — the process: workers, kernel, store, listeners, signals, shutdown.
#pragma once

#include <memory>

#include "gateway/config.hpp"

namespace sb::gateway {

// Runs the broker described by `cfg` until SIGINT/SIGTERM; returns the process exit code.
// Throws only at start-up (a listener that cannot bind, an unreadable users file).
int run_server(const config& cfg);

}  // namespace sb::gateway
