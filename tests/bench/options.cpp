// tests/bench/options.cpp — command-line parsing (CLI11) and validation of bench scenarios.
#include "tests/bench/options.hpp"

#include <CLI/CLI.hpp>


#include "tests/bench/payload.hpp"

namespace sb::bench {
namespace {

constexpr std::uint64_t max_size_bytes = 64ull << 20;
constexpr std::uint32_t max_clients = 10000;

// CLI11 2.1 cannot parse into an enum: the protocol is read as text, checked, then mapped.
struct endpoint_text {
    std::string proto;
};

void add_endpoint(CLI::App& app, endpoint_text& proto, std::string& host, std::uint16_t& port) {
    app.add_option("--protocol", proto.proto, "stomp | mqtt | amqp")->check(CLI::IsMember({"stomp", "mqtt", "amqp"}));
    app.add_option("--host", host, "broker address (an IP literal or localhost)");
    app.add_option("--port", port, "broker port (default: 61613 for STOMP, 1883 for MQTT, 5672 for AMQP)");
}

void apply(const endpoint_text& t, protocol& p) {
    if (t.proto == "stomp") p = protocol::stomp;
    if (t.proto == "mqtt") p = protocol::mqtt;
    if (t.proto == "amqp") p = protocol::amqp;
}

bool valid_host(const std::string& h) { return !h.empty() && h.find_first_of(" \t/") == std::string::npos; }

}  // namespace

std::uint64_t expected_deliveries(dest_kind d, std::uint64_t sent_to_dest, std::uint32_t consumers_on_dest) noexcept {
    if (consumers_on_dest == 0) return 0;
    return d == dest_kind::topic ? sent_to_dest * consumers_on_dest : sent_to_dest;
}

std::uint32_t consumers_on(std::uint32_t consumers, std::uint32_t destinations, std::uint32_t d) noexcept {
    if (destinations == 0 || d >= destinations) return 0;
    return consumers / destinations + (d < consumers % destinations ? 1 : 0);
}

std::uint64_t quota_of(std::uint64_t count, std::uint32_t producers, std::uint32_t i) noexcept {
    if (producers == 0 || i >= producers) return 0;
    return count / producers + (i < count % producers ? 1 : 0);
}

std::string validate(run_options& o) {
    if (!o.dest_given) o.dest = o.proto == protocol::mqtt ? dest_kind::topic : dest_kind::queue;
    if (o.port == 0) o.port = default_port(o.proto);
    if (!valid_host(o.host)) return "--host: expected an address, got \"" + o.host + "\"";
    if (o.producers < 1 || o.producers > max_clients) return "--producers: expected 1..10000";
    if (o.consumers > max_clients) return "--consumers: expected 0..10000";
    if (o.destinations < 1 || o.destinations > max_clients) return "--destinations: expected 1..10000";
    if (o.prefix.empty() || o.prefix.find_first_of("/+#*> \n:") != std::string::npos)
        return "--prefix: expected a non-empty name without / + # * > : or spaces";
    if (o.size_bytes < stamp_bytes || o.size_bytes > max_size_bytes)
        return "--size: expected 16..67108864 bytes (the first 16 carry the timestamp and sequence)";
    if (o.count > 0 && o.duration_s > 0) return "--count and --duration exclude each other";
    if (o.count == 0 && o.duration_s <= 0) o.count = 100000;
    if (o.count > seq_number_mask) return "--count: too large";
    if (!(o.timeout_s > 0)) return "--timeout: expected a positive number of seconds";
    if (o.duration_s > 0 && o.duration_s >= o.timeout_s)
        return "--duration must be shorter than --timeout (the hard bound on the whole run)";
    if (!(o.drain_idle_s > 0)) return "--drain-idle: expected a positive number of seconds";
    if (o.threads < 1 || o.threads > 64) return "--threads: expected 1..64";
    if (o.qos > 2) return "--qos: expected 0, 1 or 2";
    if (o.background_subs > 1000000) return "--background-subs: expected 0..1000000";
    if (o.background_connections > 10000) return "--background-connections: expected 0..10000";
    if (o.background_subs > 0 && o.proto != protocol::mqtt) return "--background-subs: MQTT only";
    if (o.selectors > 0) {
        if (o.proto != protocol::stomp || o.dest != dest_kind::queue) return "--selectors: STOMP queues only";
        if (o.destinations != 1) return "--selectors: one destination only";
        if (o.selectors > o.consumers) return "--selectors: at most --consumers (every k needs a consumer)";
    }
    if (o.presettled && o.proto != protocol::amqp) return "--presettled: AMQP only";
    if (o.proto == protocol::amqp) {
        if (o.qos != 0) return "--qos applies to MQTT; AMQP sends are confirmed (accepted) unless --presettled";
        if (o.confirm) return "--confirm applies to STOMP; AMQP sends are confirmed (accepted) unless --presettled";
        if (o.window < 1 || o.window > 1000000) return "--window: expected 1..1000000";
    } else if (o.proto == protocol::stomp) {
        if (o.qos != 0) return "--qos applies to MQTT; STOMP confirms sends with --confirm (receipts)";
        if (o.window < 1 || o.window > 1000000) return "--window: expected 1..1000000";
    } else {
        if (o.dest == dest_kind::queue) return "--destination queue: MQTT has topics only";
        if (o.confirm) return "--confirm applies to STOMP; MQTT confirms by --qos 1 or 2";
        if (o.persistent) return "--persistent applies to STOMP; MQTT persistence follows --qos";
        if (o.window < 1 || o.window > 65535) return "--window: expected 1..65535 (MQTT packet identifiers)";
    }
    return {};
}

std::string validate(sink_options& o) {
    if (o.proto == protocol::amqp) return "sink: STOMP or MQTT only";
    if (o.port == 0) return "sink: --port is required";
    if (!valid_host(o.host)) return "--host: expected an address, got \"" + o.host + "\"";
    if (o.for_s < 0) return "--for: expected seconds >= 0";
    return {};
}

std::string validate(idle_options& o) {
    if (o.proto == protocol::amqp) return "idle: STOMP or MQTT only";
    if (o.port == 0) o.port = default_port(o.proto);
    if (!valid_host(o.host)) return "--host: expected an address, got \"" + o.host + "\"";
    if (o.connections < 1 || o.connections > 1000000) return "--connections: expected 1..1000000";
    if (o.concurrency < 1 || o.concurrency > 10000) return "--concurrency: expected 1..10000";
    if (o.hold_s < 0) return "--hold: expected seconds >= 0";
    if (o.keepalive_s > 65535) return "--keepalive: expected 0..65535 seconds";
    if (!(o.timeout_s > 0)) return "--timeout: expected a positive number of seconds";
    if (o.hold_s >= o.timeout_s) return "--hold must be shorter than --timeout";
    if (o.broker_pid < 0) return "--broker-pid: expected a process id";
    return {};
}

parsed_command parse_args(int argc, const char* const* argv) {
    run_options run;
    sink_options sink;
    idle_options idle;

    CLI::App app{"switchboard-bench: load generator for STOMP, MQTT and AMQP 1.0 brokers.\n"
                 "Without a sub-command, runs one scenario and reports throughput and latency.",
                 "switchboard-bench"};
    app.require_subcommand(0, 1);
    app.footer("Exit status: 0 every expected delivery arrived; 1 --timeout hit (partial results); "
               "2 bad arguments;\n3 connection or protocol error; 4 deliveries missing after --drain-idle.\n"
               "Details, JSON fields and the broker comparison: docs/benchmarks.md");
    app.fallthrough(false);

    endpoint_text run_proto, sink_proto, idle_proto;
    add_endpoint(app, run_proto, run.host, run.port);
    std::string dest;
    app.add_option("--destination", dest, "queue | topic (default: queue for STOMP, topic for MQTT)")
        ->check(CLI::IsMember({"queue", "topic"}));
    app.add_option("--producers", run.producers, "producer connections");
    app.add_option("--consumers", run.consumers, "consumer connections (subscribed before producers start)");
    app.add_option("--destinations", run.destinations, "destinations; producer i and consumer j use i % D and j % D");
    app.add_option("--prefix", run.prefix, "destination name prefix");
    app.add_option("--size", run.size_bytes, "payload bytes per message (>= 16)");
    auto* count = app.add_option("--count", run.count, "messages sent by all producers together (default 100000)");
    auto* duration = app.add_option("--duration", run.duration_s, "send for this many seconds instead of --count");
    count->excludes(duration);
    app.add_option("--timeout", run.timeout_s, "hard bound on the whole run in seconds; hit = partial results, exit 1");
    app.add_option("--drain-idle", run.drain_idle_s, "after the producers finish, stop when nothing arrives for this long");
    app.add_option("--window", run.window,
                   "unconfirmed messages in flight per producer (--confirm, QoS 1/2, AMQP unsettled); AMQP: consumer credit too");
    app.add_option("--qos", run.qos, "MQTT QoS 0, 1 or 2 for publish and subscribe");
    app.add_flag("--confirm", run.confirm, "STOMP: ask a receipt for every SEND");
    app.add_flag("--persistent", run.persistent, "STOMP: persistent:true on every SEND; AMQP: durable messages and termini");
    app.add_flag("--presettled", run.presettled, "AMQP: pre-settled sends and deliveries (nothing confirmed)");
    app.add_option("--threads", run.threads, "client threads, each with its own event loop");
    app.add_option("--background-subs", run.background_subs,
                   "MQTT: first make this many idle wildcard subscriptions that match nothing (+/bg<i>/#)");
    app.add_option("--background-connections", run.background_connections,
                   "connections the --background-subs are spread over (default 0: one per 1000)");
    app.add_option("--selectors", run.selectors,
                   "STOMP queue: consumer j selects k = j mod N; messages scatter k over 0..N-1");
    app.add_option("--user", run.user, "login (STOMP login / MQTT user name)");
    app.add_option("--password", run.password, "passcode / password");
    app.add_option("--vhost", run.vhost, "STOMP CONNECT host header");
    app.add_option("--json", run.json_path, "also write the results as JSON to this file");
    app.add_option("--label", run.label, "a name copied into the JSON");
    app.add_flag("--quiet", run.quiet, "no progress lines on stderr");

    CLI::App* sink_cmd = app.add_subcommand("sink", "a null broker (forwards to exact subscribers, else discards): the client's own ceiling");
    add_endpoint(*sink_cmd, sink_proto, sink.host, sink.port);
    sink_cmd->add_option("--for", sink.for_s, "stop after this many seconds (default: at SIGINT/SIGTERM)");

    CLI::App* idle_cmd = app.add_subcommand("idle", "hold many idle connections open (connect rate, broker memory)");
    add_endpoint(*idle_cmd, idle_proto, idle.host, idle.port);
    idle_cmd->add_option("--connections", idle.connections, "connections to open");
    idle_cmd->add_option("--concurrency", idle.concurrency, "connection attempts in flight at once");
    idle_cmd->add_option("--hold", idle.hold_s, "seconds to hold them after the last one connected");
    idle_cmd->add_option("--keepalive", idle.keepalive_s, "MQTT keep-alive seconds (0 = none)");
    idle_cmd->add_option("--broker-pid", idle.broker_pid, "read this process's VmRSS before and after connecting");
    idle_cmd->add_option("--timeout", idle.timeout_s, "hard bound on the whole run in seconds");
    idle_cmd->add_option("--json", idle.json_path, "also write the results as JSON to this file");
    idle_cmd->add_option("--label", idle.label, "a name copied into the JSON");
    idle_cmd->add_flag("--quiet", idle.quiet, "no progress lines on stderr");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        return parse_failure{0, app.help()};
    } catch (const CLI::ParseError& e) {
        return parse_failure{2, "switchboard-bench: " + std::string(e.what()) +
                                    "\nRun with --help for more information."};
    }
    auto failed = [](const std::string& why) {
        return parse_failure{2, "switchboard-bench: " + why + "\nRun with --help for more information."};
    };
    apply(run_proto, run.proto);
    apply(sink_proto, sink.proto);
    apply(idle_proto, idle.proto);
    if (sink_cmd->parsed()) {
        if (auto why = validate(sink); !why.empty()) return failed(why);
        return sink;
    }
    if (idle_cmd->parsed()) {
        if (auto why = validate(idle); !why.empty()) return failed(why);
        return idle;
    }
    if (!dest.empty()) {
        run.dest = dest == "queue" ? dest_kind::queue : dest_kind::topic;
        run.dest_given = true;
    }
    if (auto why = validate(run); !why.empty()) return failed(why);
    return run;
}

}  // namespace sb::bench
