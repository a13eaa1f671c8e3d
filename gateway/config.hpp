// gateway/config.hpp — the process configuration: plain structs, and the YAML loader that
// validates a file and reports every problem as "file:line:col: key.path: what is wrong".
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sb::gateway {

// What a listener speaks: one protocol, `automatic` (detected from the first bytes: `auto` in
// YAML), or `tcp` (bytes relayed to a backend as they are, nothing inspected).
enum class protocol { stomp, mqtt, automatic, tcp, amqp, openwire };

// A protocol recognised on the wire; the keys of a listener's `routes`.
enum class wire { stomp, mqtt, amqp, openwire, http };
inline constexpr std::size_t wire_count = 5;

// Where a connection goes: the broker's own kernel, or a backend (by name) it is relayed to.
struct route {
    std::string backend;  // empty: the kernel
    bool to_kernel() const noexcept { return backend.empty(); }
    bool operator==(const route&) const = default;
};

// Whether a TLS listener asks clients for a certificate (checked against tls_config::ca_file).
enum class verify_client { none, optional, required };
// The part of a verified client certificate that names its broker user (docs/gateway.md, TLS).
enum class cert_field { cn, dn, san_dns, san_email, san_uri };

// TLS termination on a listener: every connection must start a TLS handshake.
struct tls_config {
    std::string cert_file;   // PEM chain
    std::string key_file;    // PEM private key
    std::string min_version = "1.2";   // "1.2" or "1.3"; nothing older is ever accepted
    std::string ciphers;        // TLS 1.2 cipher list (OpenSSL syntax); empty: OpenSSL's default
    std::string ciphersuites;   // TLS 1.3 suites; empty: OpenSSL's default
    std::string groups;         // key exchange groups ("X25519:P-256"); empty: OpenSSL's default
    std::vector<std::string> alpn;   // protocols offered, in the server's order of preference
    verify_client verify = verify_client::none;
    std::string ca_file;        // PEM CAs client certificates are checked against (verify != none)
    cert_field user_from = cert_field::cn;
    std::uint32_t reload_interval_ms = 1000;   // files polled for changes this often (0: SIGHUP only)
    bool operator==(const tls_config&) const = default;
};

struct listener_config {
    std::string name;
    protocol proto = protocol::stomp;
    std::string address = "0.0.0.0";
    std::uint16_t port = 0;  // always 1..65535 after loading
    std::size_t max_connections = 10000;
    bool tls = false;        // tls_settings holds the files when true
    tls_config tls_settings;
    // Per detected protocol; unset entries fall back to `fallback`, then to the kernel for
    // the protocols it speaks (STOMP, MQTT, AMQP). `backend: X` on a listener sets `fallback`.
    std::array<std::optional<route>, wire_count> routes{};
    std::optional<route> fallback;
    std::uint32_t detect_timeout_ms = 5000;   // auto: the first bytes must arrive within this

    bool operator==(const listener_config&) const = default;
};

enum class balance_mode { first, roundrobin, leastconn };
enum class check_type { none, tcp, mqtt, stomp, amqp, openwire, http };

// HAProxy's `option tcp-check` + `check inter 3s fall 3 rise 2`, with protocol handshakes.
struct check_config {
    check_type type = check_type::tcp;
    std::uint32_t interval_ms = 2000;
    std::uint32_t timeout_ms = 1000;
    std::uint32_t fall = 3;          // consecutive failures that take a server down
    std::uint32_t rise = 2;          // consecutive successes that bring it back
    std::string http_path = "/";     // type http: GET this path ...
    std::uint32_t http_status = 200; // ... and expect this status
    bool operator==(const check_config&) const = default;
};

struct server_config {
    std::string name;
    std::string host;                // IP address or host name (resolved at start)
    std::uint16_t port = 0;
    bool backup = false;             // used only while no other server is up
    std::size_t max_connections = 0; // 0: unlimited
    std::uint32_t weight = 1;        // roundrobin / leastconn share
    bool operator==(const server_config&) const = default;
};

enum class proxy_protocol { none, v1, v2 };

// What a server coming up does to the relays of the servers it outranks (HAProxy's
// `on-marked-up shutdown-backup-sessions`): with close_backups, when a non-backup server comes
// up, the relays on backup servers (and, with balance first, on the servers declared after
// it) are closed, so that their clients reconnect and converge on it.
enum class server_up_action { none, close_backups };

struct backend_config {
    std::string name;
    balance_mode balance = balance_mode::first;
    check_config check;
    std::vector<server_config> servers;   // never empty after loading
    std::uint32_t connect_timeout_ms = 3000;
    std::uint32_t retries = 0;            // further servers tried after a failed connect; 0: all
    std::uint32_t idle_timeout_ms = 0;    // relayed connection silent both ways this long: closed (0: never)
    proxy_protocol send_proxy = proxy_protocol::none;
    server_up_action on_server_up = server_up_action::none;
    bool operator==(const backend_config&) const = default;
};

enum class dead_letter_policy { shared, per_destination };

struct broker_config {
    std::string name = "switchboard";
    std::uint32_t max_redeliveries = 6;
    dead_letter_policy dead_letter = dead_letter_policy::shared;
    std::uint32_t default_prefetch = 1000;
    std::size_t queue_memory_limit = 64u << 20;
    std::size_t topic_max_pending = 10000;
    // A consumer's connection whose output has not been read for this long is closed (0: never).
    std::uint32_t slow_consumer_timeout_ms = 30000;
    // Advisory topics (ActiveMQ.Advisory.*), off by default (docs/activemq-advisories.md).
    bool advisories = false;

    // ---- sched: scheduled delivery, virtual topics, dead-letter policies (core::broker_settings) ----
    bool scheduler_support = true;
    std::string virtual_topic_name = "VirtualTopic.>";
    std::string virtual_topic_prefix = "Consumer.*.";
    std::string virtual_topic_postfix;
    std::string dead_letter_queue = "ActiveMQ.DLQ";
    std::string dead_letter_prefix = "DLQ.";
    std::string dead_letter_suffix;
    bool dead_letter_expired = true;
    bool dead_letter_non_persistent = true;
    struct dead_letter_rule {
        std::string pattern;
        dead_letter_policy strategy = dead_letter_policy::shared;
        std::string queue = "ActiveMQ.DLQ";
        std::string prefix = "DLQ.";
        std::string suffix;
        bool expired = true;
        bool non_persistent = true;
        bool operator==(const dead_letter_rule&) const = default;
    };
    std::vector<dead_letter_rule> dead_letter_policies;

    bool operator==(const broker_config&) const = default;
};

enum class store_type { memory, journal };
enum class sync_policy { always, batch, never };
struct store_config {
    store_type type = store_type::journal;
    std::string dir = "./data";
    sync_policy sync = sync_policy::always;
    std::uint32_t batch_ms = 10;                 // sync: batch(N) — N ms
    std::size_t segment_size = 64u << 20;

    bool operator==(const store_config&) const = default;
};

struct security_config {
    bool allow_anonymous = true;
    std::string users_file;  // empty: no users file (allow_anonymous must then be true)
    // Threads checking passwords (PBKDF2) for CONNECT off the workers (core::auth_pool).
    std::uint32_t auth_threads = 2;

    bool operator==(const security_config&) const = default;
};

struct stomp_config {
    std::size_t max_frame_bytes = 16u << 20;
    std::size_t max_headers = 1000;
    std::size_t max_header_bytes = 10240;
    std::uint32_t connect_timeout_ms = 10000;
    std::uint32_t heartbeat_floor_ms = 100;
    double heartbeat_grace = 1.5;
    std::size_t write_high_watermark = 4u << 20;   // output bytes queued before reading stops
    std::size_t max_unconfirmed_sends = 1024;      // unconfirmed SENDs before reading stops

    bool operator==(const stomp_config&) const = default;
};

struct mqtt_config {
    std::size_t max_packet_size = 1u << 20;
    std::uint16_t receive_maximum = 1024;
    std::uint16_t topic_alias_maximum = 64;
    std::uint16_t max_keepalive_s = 65535;
    std::uint32_t connect_timeout_ms = 10000;
    std::size_t max_queued_messages = 1000;
    std::uint32_t max_session_expiry_s = 0xFFFFFFFF;
    bool retain_available = true;

    bool operator==(const mqtt_config&) const = default;
};

struct amqp_config {
    std::uint32_t max_frame_size = 1u << 20;     // announced in open; bigger frames close the connection
    std::uint16_t channel_max = 1024;            // sessions per connection
    std::uint32_t idle_timeout_ms = 60000;       // announced in open; silence this long closes (0: none)
    std::uint32_t connect_timeout_ms = 10000;    // SASL and open must be done within this
    std::uint32_t link_credit = 1000;            // credit per client sender link, refilled as messages are accepted
    std::size_t max_unconfirmed_sends = 1024;    // messages awaiting the kernel before input stops

    bool operator==(const amqp_config&) const = default;
};

struct openwire_config {
    std::uint32_t max_frame_size = 100u << 20;      // announced in WireFormatInfo; bigger commands close the connection
    std::uint32_t max_inactivity_ms = 30000;        // announced; a connection silent this long is closed (0 = none)
    std::uint32_t max_inactivity_initial_delay_ms = 10000;   // announced; no inactivity check before this
    std::uint32_t connect_timeout_ms = 10000;       // WireFormatInfo and ConnectionInfo must be done within this
    std::size_t max_unconfirmed_sends = 1024;       // messages awaiting the kernel before input stops

    bool operator==(const openwire_config&) const = default;
};

// The admin HTTP endpoint: GET /metrics (Prometheus text), GET /status (JSON), GET /healthz
// and /readyz. Off when port is 0. Bind it to loopback or a management network: it has no
// authentication.
struct admin_config {
    std::string address = "127.0.0.1";
    std::uint16_t port = 0;
    std::uint32_t stall_timeout_ms = 5000;   // a worker loop stalled this long: /healthz 503

    bool operator==(const admin_config&) const = default;
};

// The log level names, the same in the config, on the command line (--log-level) and in the
// log lines; in spdlog's order (a name's index is its spdlog::level::level_enum).
inline constexpr std::array<std::string_view, 7> log_levels{"trace", "debug",    "info", "warn",
                                                            "error", "critical", "off"};

struct log_config {
    std::string level = "info";  // one of log_levels

    bool operator==(const log_config&) const = default;
};

struct config {
    std::string source;  // file path or "<embedded default>"
    unsigned workers = 0;  // 0: one per hardware thread
    log_config log;
    broker_config broker;
    store_config store;
    security_config security;
    stomp_config stomp;
    mqtt_config mqtt;
    amqp_config amqp;
    openwire_config openwire;
    std::vector<listener_config> listeners;  // never empty after loading
    std::vector<backend_config> backends;
    admin_config admin;

    bool operator==(const config&) const = default;
};

// Thrown by the loaders only; what() is one line, ready for the operator:
//   conf/x.yaml:12:11: listeners[0].port: expected an integer 1..65535, got "abc"
struct config_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The text of conf/switchboard.yaml, compiled into the binary. Implemented by a source file
// that CMake generates (gateway_default_config.cpp); never throws.
std::string_view default_config_text() noexcept;

// The name used as `source` for the embedded default.
inline constexpr std::string_view embedded_source_name = "<embedded default>";

// Reads and validates a YAML file. Throws config_error ("cannot open <path>: <reason>", YAML
// syntax errors, unknown keys at any level, wrong types, values out of range).
// Omitted sections keep their defaults; an omitted `listeners` section means the one default
// STOMP listener (0.0.0.0:61613), while an explicit empty list is an error.
// Sizes are integers in bytes, optionally suffixed KiB, MiB or GiB ("64 MiB").
config load_config_file(const std::string& path);

// Same, from text; `source_name` is what error messages and config::source show.
config load_config_text(std::string_view yaml, std::string source_name);

}  // namespace sb::gateway
