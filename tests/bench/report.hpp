// tests/bench/report.hpp — a scenario's results and how they are shown: a table for people and
// JSON for the compare script. Exit codes are defined here too.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/bench/histogram.hpp"
#include "tests/bench/options.hpp"

namespace sb::bench {

// Process exit codes of switchboard-bench.
enum exit_status : int {
    exit_ok = 0,          // every expected delivery arrived (or the sink/idle run finished)
    exit_timeout = 1,     // --timeout hit: the results are partial
    exit_usage = 2,       // bad arguments
    exit_error = 3,       // connection or protocol error (refused, ERROR frame, CONNACK refused)
    exit_incomplete = 4,  // producers finished but deliveries stopped short (--drain-idle passed)
};

struct run_result {
    std::uint64_t sent = 0;        // messages handed to the socket by producers
    std::uint64_t confirmed = 0;   // receipts / PUBACKs / PUBCOMPs received
    std::uint64_t received = 0;    // deliveries counted by consumers (this run's stamps only)
    std::uint64_t expected = 0;    // deliveries owed for `sent` (see expected_deliveries)
    std::uint64_t stale = 0;       // deliveries with another run's stamp (left in a queue), ignored
    std::uint64_t reordered = 0;   // deliveries older than one already seen from the same producer
    double setup_s = 0;            // connect + subscribe, before the clock starts
    double send_s = 0;             // from the start to the last producer's end (last write or confirm)
    double receive_s = 0;          // from the start to the last delivery
    histogram latency_ns;          // end to end: receive time minus the stamp's send time
    bool timed_out = false;
    bool complete = false;         // received >= expected once the producers finished
    std::vector<std::string> errors;

    double send_rate() const noexcept { return send_s > 0 ? static_cast<double>(sent) / send_s : 0; }
    double receive_rate() const noexcept { return receive_s > 0 ? static_cast<double>(received) / receive_s : 0; }
};

int exit_code(const run_result& r) noexcept;

// Human-readable, several lines, ends with a newline.
std::string format_table(const run_options& o, const run_result& r);

// The schema documented in docs/benchmarks.md ("JSON output").
nlohmann::json to_json(const run_options& o, const run_result& r);

// Writes `j` (indented) to `path`; false with a message on stderr if it cannot.
bool write_json(const std::string& path, const nlohmann::json& j);

}  // namespace sb::bench
