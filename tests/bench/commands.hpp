// tests/bench/commands.hpp — the three things switchboard-bench does; main() picks one.
#pragma once

#include "tests/bench/options.hpp"
#include "tests/bench/report.hpp"

namespace sb::bench {

// One load scenario against a broker; returns when done, failed or timed out (never later than
// --timeout plus a few seconds of orderly shutdown). Prints progress to stderr unless --quiet.
run_result run_scenario(const run_options& o);

// The discarding/forwarding sink; runs until SIGINT/SIGTERM or --for. Returns an exit status.
int run_sink(const sink_options& o);

// K idle connections: connect rate and the broker's resident memory per connection.
int run_idle(const idle_options& o);

// Raises RLIMIT_NOFILE's soft limit to the hard limit (thousands of sockets); returns the new soft limit.
std::uint64_t raise_fd_limit() noexcept;

}  // namespace sb::bench
