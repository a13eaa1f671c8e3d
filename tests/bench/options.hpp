// tests/bench/options.hpp — switchboard-bench's command line: scenario, sink and idle options,
// parsed by CLI11 and checked by validate() (pure, so the unit tests can call it directly).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace sb::bench {

enum class protocol : std::uint8_t { stomp, mqtt, amqp };
enum class dest_kind : std::uint8_t { queue, topic };

constexpr std::string_view to_string(protocol p) noexcept {
    return p == protocol::stomp ? "stomp" : p == protocol::mqtt ? "mqtt" : "amqp";
}
constexpr std::string_view to_string(dest_kind d) noexcept { return d == dest_kind::queue ? "queue" : "topic"; }
constexpr std::uint16_t default_port(protocol p) noexcept {
    return p == protocol::stomp ? 61613 : p == protocol::mqtt ? 1883 : 5672;
}

// `switchboard-bench [options]`: one load scenario.
struct run_options {
    protocol proto = protocol::stomp;
    dest_kind dest = dest_kind::queue;  // default: queue for STOMP, topic for MQTT
    bool dest_given = false;
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;               // 0: the protocol's default port
    std::uint32_t producers = 1;
    std::uint32_t consumers = 1;
    std::uint32_t destinations = 1;       // producer i and consumer j use destination i % D, j % D
    std::string prefix = "bench";         // /queue/<prefix>.N, /topic/<prefix>.N, <prefix>/N
    std::uint64_t size_bytes = 128;       // payload bytes per message, >= 16 (the stamp)
    std::uint64_t count = 0;              // messages sent by all producers together
    double duration_s = 0;                // or: send for this long
    double timeout_s = 120;               // hard bound on the whole run
    double drain_idle_s = 3;              // after the last send: give up when nothing arrives for this long
    std::uint32_t window = 1000;          // unconfirmed messages in flight per producer (AMQP: also each consumer's link credit)
    unsigned qos = 0;                     // MQTT
    bool confirm = false;                 // STOMP: receipt on every SEND
    bool persistent = false;              // STOMP persistent:true; AMQP header durable=true (and durable termini)
    bool presettled = false;              // AMQP: senders settle on send (nothing confirmed), consumers get settled deliveries
    unsigned threads = 1;                 // client threads, each with its own io_context
    // MQTT: wildcard subscriptions that match nothing the run sends ("+/bg<i>/#"), made over
    // background_connections extra connections before the run starts and held through it:
    // the broker's cost of subscriptions a publish does not match. 0 connections: one per
    // 1,000 filters (a session's own cost per subscription may grow with its subscriptions).
    std::uint32_t background_subs = 0;
    std::uint32_t background_connections = 0;
    // STOMP queues: consumer j subscribes with the selector "k = <j mod selectors>" and every
    // message carries a header k scattered over 0..selectors-1 by a hash of its sequence, so
    // each consumer selects 1/selectors of the traffic. 0: no selectors.
    std::uint32_t selectors = 0;
    std::string user;
    std::string password;
    std::string vhost = "/";              // STOMP CONNECT host header (RabbitMQ's virtual host)
    std::string json_path;
    std::string label;                    // free text copied into the JSON (the compare script's name)
    bool quiet = false;
};

// Whether the broker confirms each send: STOMP with --confirm (receipts), MQTT QoS 1/2, AMQP
// unless --presettled (the accepted outcome). Confirmed sends keep at most --window in flight.
inline bool confirms(const run_options& o) noexcept {
    return o.proto == protocol::amqp ? !o.presettled : o.confirm || o.qos > 0;
}

// `switchboard-bench sink`: a discarding server (forwarding to subscribers of the same
// destination when there are any) that measures the client's own ceiling.
struct sink_options {
    protocol proto = protocol::stomp;
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    double for_s = 0;                     // stop after this long; 0 = until SIGINT/SIGTERM
};

// `switchboard-bench idle`: K connections held open, for connect rate and broker memory.
struct idle_options {
    protocol proto = protocol::mqtt;
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    std::uint32_t connections = 1000;
    std::uint32_t concurrency = 64;       // attempts in flight (under the usual listen backlogs of 100-128)
    double hold_s = 5;
    unsigned keepalive_s = 0;             // MQTT keep-alive (PINGREQ every half of it); 0 = none
    int broker_pid = 0;                   // read VmRSS of this process before and after
    double timeout_s = 120;
    std::string json_path;
    std::string label;
    bool quiet = false;
};

// --help: exit_code 0 and the help text; a bad argument: exit_code 2 and the reason.
struct parse_failure {
    int exit_code = 2;
    std::string message;
};

using parsed_command = std::variant<run_options, sink_options, idle_options, parse_failure>;

// Parses and validates; never exits, never prints.
parsed_command parse_args(int argc, const char* const* argv);

// The reason a scenario cannot run, or "" when it can. Fills the defaults that depend on other
// options (port, destination kind).
std::string validate(run_options& o);
std::string validate(sink_options& o);
std::string validate(idle_options& o);

// The expected number of deliveries for a run: each message sent to a destination with c
// consumers is received c times on a topic and once on a queue (never when c == 0).
std::uint64_t expected_deliveries(dest_kind d, std::uint64_t sent_to_dest, std::uint32_t consumers_on_dest) noexcept;

// Consumers on destination d when consumer j uses d = j % destinations.
std::uint32_t consumers_on(std::uint32_t consumers, std::uint32_t destinations, std::uint32_t d) noexcept;

// Messages producer i sends out of `count` shared by `producers` (the first count % P send one more).
std::uint64_t quota_of(std::uint64_t count, std::uint32_t producers, std::uint32_t i) noexcept;

}  // namespace sb::bench
