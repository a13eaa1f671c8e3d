// gateway/admin.hpp — the admin HTTP endpoint (Beast stays in admin.cpp):
//   GET /metrics  Prometheus text: connections; per destination its depth (paged part too),
//                 in-flight, consumers, memory and counters; per backend server its state,
//                 check latency, active and total connections, connect failures, transitions
//   GET /status   the same as JSON
//   GET /healthz, /readyz  200 "ok" (liveness and readiness probes)
// Runs on the main thread's io_context; every request is answered and the connection closed.
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

struct admin_view {
    using destinations_done = std::function<void(std::vector<core::destination_stats>)>;
    std::function<std::size_t()> live_connections;
    const std::vector<std::unique_ptr<backend>>* backends = nullptr;
    // Gathers the kernel's destination counters; `done` may run on any thread.
    std::function<void(destinations_done)> destinations;
};

// A Prometheus label value (text format 0.0.4): backslash, double quote and line feed
// escaped; control characters and bytes that are not UTF-8 shown as the text \xHH (so
// "a\x1fb" renders as a\\x1fb). Without the surrounding quotes.
std::string label_value(std::string_view v);

std::string render_metrics(const admin_view& v, const std::vector<core::destination_stats>& dests);
std::string render_status(const admin_view& v, const std::vector<core::destination_stats>& dests);

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
