// gateway/admin.hpp — the admin HTTP endpoint (Beast stays in admin.cpp):
//   GET /metrics  Prometheus text: connections; per destination its depth (paged part too),
//                 in-flight, consumers, memory and counters; per backend server its state,
//                 check latency, active and total connections, connect failures, transitions
//   GET /status   the same as JSON
//   GET /backends JSON: each backend, its queue, its servers with admin state, health, last
//                 check (status L4OK..L7STS, duration, detail), weights, connections
//   POST /backends/<b>/servers/<s>/state   ready | drain | maint (body, `state=` form or query,
//                 or JSON {"state": ...}): HAProxy's `set server state`
//   POST /backends/<b>/servers/<s>/weight  1..256 the same ways: `set server weight`
//   GET /healthz  liveness: 200 "ok", or 503 while a worker's event loop has not turned for
//                 admin.stall_timeout (one line per stalled worker)
//   GET /readyz   readiness: 200 "ok", or 503 with one line per reason: a listener not
//                 accepting, the store not recovered or not writable, a listener whose every
//                 route leads to backends without a server up
// Runs on the main thread's io_context; every request is answered and the connection closed.
// /healthz and /readyz read atomics only: they answer even while a worker is stuck.
// Destination counters come from the kernel's shards (broker::stats), gathered on a worker
// and handed back to the main thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "core/broker.hpp"
#include "gateway/backend.hpp"
#include "gateway/config.hpp"

namespace sb::gateway {

// Connections a listener closed at accept, by the limit they hit.
struct listener_refusals {
    std::string name;
    std::uint64_t max_connections = 0;
    std::uint64_t max_connections_per_source = 0;
    std::uint64_t max_rate_per_source = 0;
    std::uint64_t max_rate = 0;
};

struct admin_view {
    using destinations_done = std::function<void(std::vector<core::destination_stats>)>;
    std::function<std::size_t()> live_connections;
    const std::vector<std::shared_ptr<backend>>* backends = nullptr;   // read on the admin's thread
    // Gathers the kernel's destination counters; `done` may run on any thread.
    std::function<void(destinations_done)> destinations;
    // Why the process is not ready (/readyz) or not alive (/healthz): one line per reason, none
    // when it is. Called on the admin's thread; must not block.
    std::function<std::vector<std::string>()> not_ready;
    std::function<std::vector<std::string>()> not_healthy;
    // Door refusals per listener (main thread).
    std::function<std::vector<listener_refusals>()> refusals;
};

// A Prometheus label value (text format 0.0.4): backslash, double quote and line feed
// escaped; control characters and bytes that are not UTF-8 shown as the text \xHH (so
// "a\x1fb" renders as a\\x1fb). Without the surrounding quotes.
std::string label_value(std::string_view v);

std::string render_metrics(const admin_view& v, const std::vector<core::destination_stats>& dests);
std::string render_status(const admin_view& v, const std::vector<core::destination_stats>& dests);
std::string render_backends(const admin_view& v);

// POST /backends/<b>/servers/<s>/<what> with `value` (the request's body, form or JSON, or its
// query): applies it and answers the status code and body. Exposed for the unit tests.
struct admin_answer {
    unsigned status;
    std::string body;
};
admin_answer control_server(const admin_view& v, std::string_view path, std::string_view query, std::string_view body);

class admin_server {
public:
    admin_server(boost::asio::io_context& ctx, const admin_config& cfg, admin_view view);
    ~admin_server();
    void open();    // throws a one-line std::runtime_error when it cannot listen
    void close();

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace sb::gateway
