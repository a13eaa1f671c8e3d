// tests/bench/report.cpp — results as a table and as JSON.
#include "tests/bench/report.hpp"

#include <cstdio>
#include <fstream>
#include <iostream>

namespace sb::bench {
namespace {

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

// Latency in the unit that keeps three significant digits readable.
std::string duration_text(std::uint64_t ns) {
    if (ns < 10'000) return std::to_string(ns) + " ns";
    if (ns < 10'000'000) return fmt("%.1f us", static_cast<double>(ns) / 1e3);
    return fmt("%.2f ms", static_cast<double>(ns) / 1e6);
}

double mb_per_s(std::uint64_t msgs, std::uint64_t size, double s) {
    return s > 0 ? static_cast<double>(msgs) * static_cast<double>(size) / 1e6 / s : 0;
}

double us(std::uint64_t ns) { return static_cast<double>(ns) / 1e3; }

}  // namespace

int exit_code(const run_result& r) noexcept {
    if (!r.errors.empty()) return exit_error;
    if (r.timed_out) return exit_timeout;
    if (!r.complete) return exit_incomplete;
    return exit_ok;
}

std::string format_table(const run_options& o, const run_result& r) {
    std::string s;
    s += "scenario    " + std::string(to_string(o.proto)) + " " + std::string(to_string(o.dest)) + " " +
         std::to_string(o.producers) + "->" + std::to_string(o.consumers) + "  size=" +
         std::to_string(o.size_bytes) + " B";
    if (o.proto == protocol::mqtt) s += "  qos=" + std::to_string(o.qos);
    if (o.confirm || (o.proto == protocol::amqp && !o.presettled)) s += "  confirm";
    if (o.presettled) s += "  presettled";
    if (o.persistent) s += "  persistent";
    if (confirms(o)) s += "  window=" + std::to_string(o.window);
    if (o.background_subs > 0) s += "  background-subs=" + std::to_string(o.background_subs);
    s += "  " + o.host + ":" + std::to_string(o.port) + "\n";
    s += "sent        " + std::to_string(r.sent) + " msgs in " + fmt("%.3f s", r.send_s) + "   " +
         fmt("%.0f msgs/s", r.send_rate()) + "   " + fmt("%.2f MB/s", mb_per_s(r.sent, o.size_bytes, r.send_s));
    if (confirms(o)) s += "   confirmed " + std::to_string(r.confirmed);
    s += "\n";
    s += "received    " + std::to_string(r.received) + " of " + std::to_string(r.expected) + " in " +
         fmt("%.3f s", r.receive_s) + "   " + fmt("%.0f msgs/s", r.receive_rate()) + "   " +
         fmt("%.2f MB/s", mb_per_s(r.received, o.size_bytes, r.receive_s));
    if (r.reordered) s += "   reordered/duplicate " + std::to_string(r.reordered);
    if (r.stale) s += "   stale (earlier runs) " + std::to_string(r.stale);
    s += "\n";
    const histogram& h = r.latency_ns;
    s += "latency     p50 " + duration_text(h.percentile(0.50)) + "   p99 " + duration_text(h.percentile(0.99)) +
         "   p99.9 " + duration_text(h.percentile(0.999)) + "   max " + duration_text(h.max()) + "\n";
    s += "result      ";
    if (!r.errors.empty()) s += "ERROR: " + r.errors.front();
    else if (r.timed_out) s += "TIMED OUT after " + fmt("%.0f s (partial results)", o.timeout_s);
    else if (!r.complete) s += "INCOMPLETE: " + std::to_string(r.expected - std::min(r.expected, r.received)) + " deliveries missing";
    else s += "ok";
    s += "\n";
    return s;
}

nlohmann::json to_json(const run_options& o, const run_result& r) {
    using nlohmann::json;
    const histogram& h = r.latency_ns;
    json j;
    j["label"] = o.label;
    j["scenario"] = {
        {"protocol", to_string(o.proto)}, {"destination", to_string(o.dest)},
        {"host", o.host}, {"port", o.port},
        {"producers", o.producers}, {"consumers", o.consumers}, {"destinations", o.destinations},
        {"size", o.size_bytes}, {"count", o.count}, {"duration_s", o.duration_s},
        {"qos", o.qos}, {"confirm", confirms(o)}, {"presettled", o.presettled}, {"persistent", o.persistent},
        {"window", o.window}, {"threads", o.threads}, {"timeout_s", o.timeout_s},
        {"background_subs", o.background_subs},
    };
    j["sent"] = r.sent;
    j["confirmed"] = r.confirmed;
    j["received"] = r.received;
    j["expected"] = r.expected;
    j["stale"] = r.stale;
    j["reordered"] = r.reordered;
    j["setup_s"] = r.setup_s;
    j["send_s"] = r.send_s;
    j["receive_s"] = r.receive_s;
    j["send_msgs_per_s"] = r.send_rate();
    j["send_mb_per_s"] = mb_per_s(r.sent, o.size_bytes, r.send_s);
    j["receive_msgs_per_s"] = r.receive_rate();
    j["receive_mb_per_s"] = mb_per_s(r.received, o.size_bytes, r.receive_s);
    j["latency_us"] = {
        {"count", h.count()}, {"min", us(h.min())}, {"mean", h.mean() / 1e3},
        {"p50", us(h.percentile(0.50))}, {"p90", us(h.percentile(0.90))},
        {"p99", us(h.percentile(0.99))}, {"p99_9", us(h.percentile(0.999))}, {"max", us(h.max())},
    };
    j["timed_out"] = r.timed_out;
    j["complete"] = r.complete;
    j["errors"] = r.errors;
    j["exit_code"] = exit_code(r);
    return j;
}

bool write_json(const std::string& path, const nlohmann::json& j) {
    std::ofstream f(path, std::ios::trunc);
    if (f) f << j.dump(2) << "\n";
    if (!f) {
        std::cerr << "switchboard-bench: cannot write " << path << "\n";
        return false;
    }
    return true;
}

}  // namespace sb::bench
