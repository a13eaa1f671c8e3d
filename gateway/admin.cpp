// gateway/admin.cpp — Beast HTTP/1.1 server for /metrics and /status; bounded requests, one
// response per connection, 5 s to send the request.
#include "gateway/admin.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "adapters/engine/output_flow.hpp"
#include "gateway/health_check.hpp"
#include "gateway/log.hpp"

namespace sb::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

std::string_view balance_name(balance_mode m) {
    switch (m) {
    case balance_mode::first: return "first";
    case balance_mode::roundrobin: return "roundrobin";
    case balance_mode::leastconn: return "leastconn";
    }
    return "?";
}

class http_session : public std::enable_shared_from_this<http_session> {
public:
    http_session(tcp::socket s, const admin_view& v) : stream_(std::move(s)), view_(v) {}

    void start() {
        parser_.header_limit(8 * 1024);
        parser_.body_limit(8 * 1024);
        stream_.expires_after(std::chrono::seconds(5));
        http::async_read(stream_, buffer_, parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return;
            // Only /metrics and /status show destinations: the probes must not wait for a worker.
            const auto target = self->parser_.get().target();
            const std::string_view path(target.data(), std::min(target.size(), target.find('?')));
            if (!self->view_.destinations || (path != "/metrics" && path != "/status")) return self->respond({});
            // The kernel answers on a worker; the response is written from this connection's own
            // executor again.
            self->view_.destinations([self](std::vector<core::destination_stats> d) {
                asio::post(self->stream_.get_executor(), [self, d = std::move(d)] { self->respond(d); });
            });
        });
    }

private:
    void respond(const std::vector<core::destination_stats>& dests) {
        const auto& req = parser_.get();
        auto res = std::make_shared<http::response<http::string_body>>();
        res->version(11);
        res->set(http::field::server, "switchboard");
        res->keep_alive(false);
        const std::string_view target(req.target().data(), req.target().size());
        const std::string_view path = target.substr(0, target.find('?'));
        const bool control = path.starts_with("/backends/");
        if (control && req.method() == http::verb::post) {
            const auto query = target.size() > path.size() ? target.substr(path.size() + 1) : std::string_view();
            const auto answer = control_server(view_, path, query, req.body());
            res->result(static_cast<http::status>(answer.status));
            res->set(http::field::content_type, answer.status == 200 ? "application/json" : "text/plain");
            res->body() = answer.body;
        } else if (control || (req.method() != http::verb::get && req.method() != http::verb::head)) {
            res->result(http::status::method_not_allowed);
            res->set(http::field::allow, control ? "POST" : "GET, HEAD");
        } else if (path == "/backends") {
            res->result(http::status::ok);
            res->set(http::field::content_type, "application/json");
            res->body() = render_backends(view_);
        } else if (path == "/metrics") {
            res->result(http::status::ok);
            res->set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
            res->body() = render_metrics(view_, dests);
        } else if (path == "/healthz" || path == "/readyz") {
            const auto& why = path == "/healthz" ? view_.not_healthy : view_.not_ready;
            const std::vector<std::string> reasons = why ? why() : std::vector<std::string>{};
            res->result(reasons.empty() ? http::status::ok : http::status::service_unavailable);
            res->set(http::field::content_type, "text/plain");
            res->body() = reasons.empty() ? "ok\n" : "";
            for (const auto& r : reasons) res->body() += r + "\n";
        } else if (path == "/status") {
            res->result(http::status::ok);
            res->set(http::field::content_type, "application/json");
            res->body() = render_status(view_, dests);
        } else {
            res->result(http::status::not_found);
            res->set(http::field::content_type, "text/plain");
            res->body() = "not found: try /metrics, /status, /backends, /healthz or /readyz\n";
        }
        if (req.method() == http::verb::head) {
            res->content_length(res->body().size());
            res->body().clear();
        } else {
            res->prepare_payload();
        }
        http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code, std::size_t) {
            beast::error_code ignored;
            self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        });
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    http::request_parser<http::string_body> parser_;
    const admin_view& view_;
};


}  // namespace

std::string label_value(std::string_view v) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(v.size());
    auto raw_byte = [&out](unsigned char c) {   // shown as the text \xHH, its backslash escaped
        out += "\\\\x";
        out += hex[c >> 4];
        out += hex[c & 0xf];
    };
    for (std::size_t i = 0; i < v.size();) {
        const auto c = static_cast<unsigned char>(v[i]);
        if (c == '\\' || c == '"') {
            out += '\\';
            out += static_cast<char>(c);
            ++i;
        } else if (c == '\n') {
            out += "\\n";
            ++i;
        } else if (c < 0x20 || c == 0x7f) {
            raw_byte(c);
            ++i;
        } else if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
        } else {   // a well-formed UTF-8 sequence is kept; a stray byte is shown as \xHH
            const std::size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
            bool ok = len != 0 && i + len <= v.size();
            for (std::size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(v[i + k]) & 0xc0) == 0x80;
            if (!ok) {
                raw_byte(c);
                ++i;
                continue;
            }
            out.append(v.substr(i, len));
            i += len;
        }
    }
    return out;
}

namespace {

std::string dest_label(const core::destination_stats& d) {
    return label_value((d.dest.is_queue() ? "queue://" : "topic://") + d.dest.name);
}

}  // namespace

std::string render_metrics(const admin_view& v, const std::vector<core::destination_stats>& dests) {
    std::string out;
    auto family = [&out](std::string_view name, std::string_view type, std::string_view help) {
        out += "# HELP ";
        out += name;
        out += ' ';
        out += help;
        out += "\n# TYPE ";
        out += name;
        out += ' ';
        out += type;
        out += '\n';
    };
    family("switchboard_connections", "gauge", "Client connections open now, all listeners.");
    out += "switchboard_connections " + std::to_string(v.live_connections ? v.live_connections() : 0) + "\n";
    family("switchboard_slow_consumers_disconnected_total", "counter",
           "Connections closed because their output was not read for broker.slow_consumer_timeout.");
    out += "switchboard_slow_consumers_disconnected_total " +
           std::to_string(engine::output_flow::slow_consumers_disconnected()) + "\n";

    struct dest_metric {
        std::string_view name, type, help;
        std::uint64_t core::destination_stats::*field;
    };
    using ds = core::destination_stats;
    static constexpr dest_metric dest_metrics[] = {
        {"switchboard_destination_depth", "gauge", "Messages queued, not yet delivered.", &ds::depth},
        {"switchboard_destination_paged", "gauge", "Of the depth: persistent messages whose body is on disk only.", &ds::paged},
        {"switchboard_destination_inflight", "gauge", "Delivered, not yet acknowledged.", &ds::inflight},
        {"switchboard_destination_consumers", "gauge", "Consumers and subscriptions.", &ds::consumers},
        {"switchboard_destination_memory_bytes", "gauge", "Bytes of message bodies held in memory.", &ds::memory_bytes},
        {"switchboard_destination_enqueued_total", "counter", "Messages accepted.", &ds::enqueued},
        {"switchboard_destination_dequeued_total", "counter", "Messages acknowledged (queues) or delivered (topics).", &ds::dequeued},
        {"switchboard_destination_dead_lettered_total", "counter", "Messages moved to a dead-letter queue.", &ds::dead_lettered},
        {"switchboard_destination_expired_total", "counter", "Messages expired.", &ds::expired},
        {"switchboard_destination_dropped_total", "counter", "Topic messages dropped for slow subscribers.", &ds::dropped},
    };
    if (!dests.empty()) {
        for (const auto& m : dest_metrics) {
            family(m.name, m.type, m.help);
            for (const auto& d : dests)
                out += std::string(m.name) + "{destination=\"" + dest_label(d) + "\"} " + std::to_string(d.*m.field) + "\n";
        }
    }
    if (v.refusals) {
        const auto listeners = v.refusals();
        family("switchboard_listener_refused_total", "counter",
               "Connections closed at accept, by the limit they hit (max_connections, max_connections_per_source, "
               "max_rate_per_source, max_rate).");
        for (const auto& l : listeners) {
            const std::pair<const char*, std::uint64_t> reasons[] = {
                {"max_connections", l.max_connections},
                {"max_connections_per_source", l.max_connections_per_source},
                {"max_rate_per_source", l.max_rate_per_source},
                {"max_rate", l.max_rate}};
            for (const auto& [reason, n] : reasons)
                out += "switchboard_listener_refused_total{listener=\"" + label_value(l.name) + "\",reason=\"" + reason +
                       "\"} " + std::to_string(n) + "\n";
        }
    }
    if (!v.backends || v.backends->empty()) return out;

    family("switchboard_backend_refused_total", "counter", "Connections refused because no server could take them.");
    for (const auto& b : *v.backends)
        out += "switchboard_backend_refused_total{backend=\"" + label_value(b->config().name) + "\"} " + std::to_string(b->refused.load()) + "\n";
    struct backend_metric {
        std::string_view name, type, help;
        std::function<std::uint64_t(const backend&)> value;
    };
    const backend_metric backend_metrics[] = {
        {"switchboard_backend_queue", "gauge", "Connections waiting for a server slot now (queue_timeout).",
         [](const backend& b) { return b.queued(); }},
        {"switchboard_backend_queued_total", "counter", "Connections that waited in the queue.",
         [](const backend& b) { return b.queued_total.load(); }},
        {"switchboard_backend_queue_timeouts_total", "counter", "Connections closed after waiting queue_timeout.",
         [](const backend& b) { return b.queue_timeouts.load(); }},
        {"switchboard_backend_queue_full_total", "counter", "Connections refused because max_queue were waiting.",
         [](const backend& b) { return b.queue_full.load(); }},
    };
    for (const auto& m : backend_metrics) {
        family(m.name, m.type, m.help);
        for (const auto& b : *v.backends)
            out += std::string(m.name) + "{backend=\"" + label_value(b->config().name) + "\"} " + std::to_string(m.value(*b)) + "\n";
    }
    auto labels = [](const backend& b, const server_state& s) {
        return "backend=\"" + label_value(b.config().name) + "\",server=\"" + label_value(s.cfg.name) + "\"";
    };
    family("switchboard_backend_server_state", "gauge", "The operator's state of the server (ready, drain, maint): 1 for the current one.");
    for (const auto& b : *v.backends)
        for (const auto& s : b->servers())
            for (auto st : {admin_state::ready, admin_state::drain, admin_state::maint})
                out += "switchboard_backend_server_state{" + labels(*b, *s) + ",state=\"" + std::string(admin_state_name(st)) +
                       "\"} " + (s->admin.load() == st ? "1" : "0") + "\n";
    family("switchboard_backend_server_check_status", "gauge",
           "The last health check's status (L4OK, L4CON, L4TOUT, L6OK, L6TOUT, L6RSP, L7OK, L7RSP, L7TOUT, L7STS; UNK before the first): 1.");
    for (const auto& b : *v.backends)
        for (const auto& s : b->servers())
            out += "switchboard_backend_server_check_status{" + labels(*b, *s) + ",status=\"" +
                   std::string(check_status_name(s->last_check().status)) + "\"} 1\n";
    family("switchboard_backend_server_check_duration_seconds", "gauge", "Duration of the last health check, passed or not.");
    for (const auto& b : *v.backends)
        for (const auto& s : b->servers())
            out += "switchboard_backend_server_check_duration_seconds{" + labels(*b, *s) + "} " +
                   std::to_string(s->last_check().duration_us / 1e6) + "\n";
    family("switchboard_backend_server_weight", "gauge", "The server's weight now (set at runtime by the admin).");
    for (const auto& b : *v.backends)
        for (const auto& s : b->servers())
            out += "switchboard_backend_server_weight{" + labels(*b, *s) + "} " + std::to_string(s->weight.load()) + "\n";
    family("switchboard_backend_server_effective_weight", "gauge", "The weight balancing uses now: lower during a slow start.");
    for (const auto& b : *v.backends) {
        const auto now = b->now();
        for (const auto& s : b->servers())
            out += "switchboard_backend_server_effective_weight{" + labels(*b, *s) + "} " +
                   std::to_string(static_cast<double>(b->effective_weight(*s, now)) / 1000) + "\n";
    }

    struct metric {
        std::string_view name, type, help;
        std::function<std::string(const server_state&)> value;
    };
    const metric metrics[] = {
        {"switchboard_backend_server_up", "gauge", "1 when the server passes its health checks.",
         [](const server_state& s) { return std::string(s.up.load() ? "1" : "0"); }},
        {"switchboard_backend_server_active_connections", "gauge", "Connections relayed to the server now.",
         [](const server_state& s) { return std::to_string(s.active.load()); }},
        {"switchboard_backend_server_connections_total", "counter", "Connections relayed to the server.",
         [](const server_state& s) { return std::to_string(s.total.load()); }},
        {"switchboard_backend_server_connect_failures_total", "counter", "Failed connects to the server.",
         [](const server_state& s) { return std::to_string(s.connect_failures.load()); }},
        {"switchboard_backend_server_check_latency_seconds", "gauge", "Duration of the last passed health check.",
         [](const server_state& s) { return std::to_string(s.check_latency_us.load() / 1e6); }},
        {"switchboard_backend_server_checks_passed_total", "counter", "Health checks passed.",
         [](const server_state& s) { return std::to_string(s.checks_ok.load()); }},
        {"switchboard_backend_server_checks_failed_total", "counter", "Health checks failed.",
         [](const server_state& s) { return std::to_string(s.checks_failed.load()); }},
        {"switchboard_backend_server_transitions_total", "counter", "Up/down state changes.",
         [](const server_state& s) { return std::to_string(s.transitions.load()); }},
        {"switchboard_backend_server_passive_errors_total", "counter",
         "Relays reset by the server and connects refused or timed out (observe: layer4).",
         [](const server_state& s) { return std::to_string(s.passive.errors_seen.load()); }},
        {"switchboard_backend_server_passive_downs_total", "counter", "Times the relays marked the server down (observe: layer4).",
         [](const server_state& s) { return std::to_string(s.passive.marked_down.load()); }},
        {"switchboard_backend_server_redispatched_total", "counter",
         "Connections moved on to another server after a failed connect to this one.",
         [](const server_state& s) { return std::to_string(s.passive.redispatched.load()); }},
    };
    for (const auto& m : metrics) {
        family(m.name, m.type, m.help);
        for (const auto& b : *v.backends)
            for (const auto& s : b->servers())
                out += std::string(m.name) + "{backend=\"" + label_value(b->config().name) + "\",server=\"" +
                       label_value(s->cfg.name) + "\"} " +
                       m.value(*s) + "\n";
    }
    return out;
}

namespace {

nlohmann::json server_json(const backend& b, const server_state& s, backend::clock::time_point now) {
    const auto check = s.last_check();
    const auto& c = b.config().check;
    nlohmann::json j{{"name", s.cfg.name},
                     {"address", s.cfg.host + ":" + std::to_string(s.cfg.port)},
                     {"backup", s.cfg.backup},
                     {"state", admin_state_name(s.admin.load())},
                     {"up", s.up.load()},
                     {"active", s.active.load()},
                     {"max_connections", s.cfg.max_connections},
                     {"weight", s.weight.load()},
                     {"effective_weight", static_cast<double>(b.effective_weight(s, now)) / 1000},
                     {"slow_start_ms", s.cfg.slow_start_ms.value_or(b.config().slow_start_ms)},
                     {"total", s.total.load()},
                     {"connect_failures", s.connect_failures.load()},
                     {"checks_passed", s.checks_ok.load()},
                     {"checks_failed", s.checks_failed.load()},
                     {"transitions", s.transitions.load()},
                     {"passive_errors", s.passive.errors_seen.load()},
                     {"passive_downs", s.passive.marked_down.load()},
                     {"redispatched", s.passive.redispatched.load()},
                     {"check_latency_us", s.check_latency_us.load()},
                     {"check_status", check_status_name(check.status)},
                     {"check_duration_us", check.duration_us},
                     {"check_detail", check.detail}};
    j["check"] = {{"type", check_type_name(c.type)},  {"tls", c.tls},
                  {"status", check_status_name(check.status)}, {"duration_us", check.duration_us},
                  {"detail", check.detail}};
    return j;
}

nlohmann::json backend_json(const backend& b) {
    const auto now = b.now();
    nlohmann::json jb{{"name", b.config().name},
                      {"balance", balance_name(b.config().balance)},
                      {"check", check_type_name(b.config().check.type)},
                      {"refused", b.refused.load()},
                      {"queue", {{"waiting", b.queued()},
                                 {"queue_timeout_ms", b.config().queue_timeout_ms},
                                 {"max_queue", b.config().max_queue},
                                 {"queued_total", b.queued_total.load()},
                                 {"timeouts", b.queue_timeouts.load()},
                                 {"full", b.queue_full.load()}}},
                      {"servers", nlohmann::json::array()}};
    for (const auto& s : b.servers()) jb["servers"].push_back(server_json(b, *s, now));
    return jb;
}

// The value of `key` given as the query (key=v), the body (v, key=v, or {"key": v}).
std::optional<std::string> control_value(std::string_view key, std::string_view query, std::string_view body) {
    auto from_form = [key](std::string_view text) -> std::optional<std::string> {
        while (!text.empty()) {
            const auto amp = text.find('&');
            const auto pair = text.substr(0, amp);
            const auto eq = pair.find('=');
            if (eq != std::string_view::npos && pair.substr(0, eq) == key) return std::string(pair.substr(eq + 1));
            if (amp == std::string_view::npos) break;
            text.remove_prefix(amp + 1);
        }
        return std::nullopt;
    };
    if (auto q = from_form(query)) return q;
    while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back()))) body.remove_suffix(1);
    while (!body.empty() && std::isspace(static_cast<unsigned char>(body.front()))) body.remove_prefix(1);
    if (body.empty()) return std::nullopt;
    if (body.front() == '{') {
        const auto j = nlohmann::json::parse(body, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains(key)) return std::nullopt;
        const auto& val = j[std::string(key)];
        if (val.is_string()) return val.get<std::string>();
        if (val.is_number_unsigned()) return std::to_string(val.get<std::uint64_t>());
        return std::nullopt;
    }
    if (body.find('=') != std::string_view::npos) return from_form(body);
    return std::string(body);
}

}  // namespace

admin_answer control_server(const admin_view& v, std::string_view path, std::string_view query, std::string_view body) {
    // /backends/<b>/servers/<s>/<what>
    std::vector<std::string_view> parts;
    for (std::string_view rest = path.substr(1); !rest.empty();) {
        const auto slash = rest.find('/');
        parts.push_back(rest.substr(0, slash));
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    if (parts.size() != 5 || parts[0] != "backends" || parts[2] != "servers" || (parts[4] != "state" && parts[4] != "weight"))
        return {404, "not found: POST /backends/<backend>/servers/<server>/state or .../weight\n"};
    backend* b = nullptr;
    if (v.backends)
        for (const auto& x : *v.backends)
            if (x->config().name == parts[1]) b = x.get();
    if (!b) return {404, "no backend named '" + std::string(parts[1]) + "'\n"};
    server_state* s = nullptr;
    for (const auto& x : b->servers())
        if (x->cfg.name == parts[3]) s = x.get();
    if (!s) return {404, "backend " + b->config().name + " has no server named '" + std::string(parts[3]) + "'\n"};
    const auto value = control_value(parts[4], query, body);
    if (parts[4] == "state") {
        const auto st = value ? admin_state_named(*value) : std::nullopt;
        if (!st) return {400, "expected state ready, drain or maint\n"};
        const auto was = s->admin.load();
        const std::size_t closed = b->set_state(*s, *st);
        log()->warn("backend={} server={} state {} -> {} (admin){}", b->config().name, s->cfg.name, admin_state_name(was),
                    admin_state_name(*st), closed ? "; closing " + std::to_string(closed) + " relayed connections" : "");
        // Back in service: as a server coming up, it may take its clients back (close_backups).
        if (*st == admin_state::ready && was != admin_state::ready && s->up.load())
            if (const std::size_t n = b->close_outranked_by(*s))
                log()->warn("backend={} server={} on_server_up=close_backups: closing {} relayed connections on the "
                            "servers it outranks", b->config().name, s->cfg.name, n);
    } else {
        std::uint64_t w = 0;
        bool ok = value && !value->empty() && value->size() <= 3;
        for (char c : value ? *value : std::string()) ok = ok && c >= '0' && c <= '9';
        if (ok) w = std::stoull(*value);
        if (!ok || w < 1 || w > 256) return {400, "expected a weight 1..256\n"};
        log()->warn("backend={} server={} weight {} -> {} (admin)", b->config().name, s->cfg.name, s->weight.load(), w);
        b->set_weight(*s, static_cast<std::uint32_t>(w));
    }
    return {200, server_json(*b, *s, b->now()).dump(2) + "\n"};
}

std::string render_backends(const admin_view& v) {
    nlohmann::json j;
    j["backends"] = nlohmann::json::array();
    if (v.backends)
        for (const auto& b : *v.backends) j["backends"].push_back(backend_json(*b));
    return j.dump(2) + "\n";
}

std::string render_status(const admin_view& v, const std::vector<core::destination_stats>& dests) {
    nlohmann::json j;
    j["connections"] = v.live_connections ? v.live_connections() : 0;
    j["slow_consumers_disconnected"] = engine::output_flow::slow_consumers_disconnected();
    j["destinations"] = nlohmann::json::array();
    for (const auto& d : dests)
        j["destinations"].push_back({{"type", d.dest.is_queue() ? "queue" : "topic"},
                                     {"name", d.dest.name},
                                     {"depth", d.depth},
                                     {"paged", d.paged},
                                     {"inflight", d.inflight},
                                     {"consumers", d.consumers},
                                     {"memory_bytes", d.memory_bytes},
                                     {"enqueued", d.enqueued},
                                     {"dequeued", d.dequeued},
                                     {"dead_lettered", d.dead_lettered},
                                     {"expired", d.expired},
                                     {"dropped", d.dropped},
                                     {"retained", d.retained}});
    j["backends"] = nlohmann::json::array();
    if (v.backends)
        for (const auto& b : *v.backends) j["backends"].push_back(backend_json(*b));
    j["listeners"] = nlohmann::json::array();
    if (v.refusals)
        for (const auto& l : v.refusals())
            j["listeners"].push_back({{"name", l.name},
                                      {"refused", {{"max_connections", l.max_connections},
                                                   {"max_connections_per_source", l.max_connections_per_source},
                                                   {"max_rate_per_source", l.max_rate_per_source},
                                                   {"max_rate", l.max_rate}}}});
    return j.dump(2) + "\n";
}

struct admin_server::impl : std::enable_shared_from_this<impl> {
    impl(asio::io_context& ctx, const admin_config& c, admin_view v) : cfg(c), view(std::move(v)), acceptor(ctx) {}
    void accept() {
        acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket s) {
            if (ec == asio::error::operation_aborted) return;
            if (!ec) std::make_shared<http_session>(std::move(s), self->view)->start();
            self->accept();
        });
    }
    admin_config cfg;
    admin_view view;
    tcp::acceptor acceptor;
};

admin_server::admin_server(asio::io_context& ctx, const admin_config& cfg, admin_view view)
    : impl_(std::make_shared<impl>(ctx, cfg, std::move(view))) {}

admin_server::~admin_server() { close(); }

void admin_server::open() {
    beast::error_code ec;
    const tcp::endpoint ep(asio::ip::make_address(impl_->cfg.address, ec), impl_->cfg.port);
    if (!ec) impl_->acceptor.open(ep.protocol(), ec);
    if (!ec) impl_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) impl_->acceptor.bind(ep, ec);
    if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::runtime_error("admin cannot listen on " + impl_->cfg.address + ":" + std::to_string(impl_->cfg.port) +
                                 ": " + ec.message());
    log()->info("admin up address={}:{} (GET /metrics, /status, /backends; POST /backends/B/servers/S/state|weight)",
                impl_->cfg.address, impl_->cfg.port);
    impl_->accept();
}

void admin_server::close() {
    beast::error_code ec;
    impl_->acceptor.close(ec);
}

}  // namespace sb::gateway
