// gateway/server.hpp — the process: workers, kernel, store, listeners, signals, shutdown.
#pragma once

#include <memory>

#include "gateway/config.hpp"

namespace sb::gateway {

// Runs the broker described by `cfg` until SIGINT/SIGTERM; returns the process exit code (1
// when it cannot start: a listener that cannot bind, a store that cannot open). Throws
// config_error, before it starts anything, for what check_server reports.
int run_server(const config& cfg);

// Loads what run_server loads from `cfg` before it binds ports, by the same code: backend host
// names, TLS certificates and keys, the users file, the data directory (that it exists and is
// writable, or can be created). Throws config_error with a one-line message. Creates nothing
// and opens no store (a running broker holds its lock).
void check_server(const config& cfg);

}  // namespace sb::gateway
