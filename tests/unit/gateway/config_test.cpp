// tests/unit/gateway/config_test.cpp — the YAML loader: defaults, and that every kind of error
// names the file, the line and column, and the key path.

#include "gateway/config.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace sb::gateway;

namespace {

// The message of the config_error that loading `yaml` as "conf/x.yaml" throws, or "" if none.
std::string error_of(std::string_view yaml) {
    try {
        load_config_text(yaml, "conf/x.yaml");
    } catch (const config_error& e) {
        return e.what();
    }
    return {};
}

// The listeners of conf/switchboard.yaml: STOMP on 61613, MQTT on 1883, AMQP on 5672 and
// OpenWire on 61616.
config defaults_with_default_listeners(std::string source) {
    config c;
    c.source = std::move(source);
    listener_config l;
    l.name = "stomp";
    l.port = 61613;
    c.listeners.push_back(l);
    listener_config m;
    m.name = "mqtt";
    m.proto = protocol::mqtt;
    m.port = 1883;
    m.max_connections = 100000;
    c.listeners.push_back(m);
    listener_config a;
    a.name = "amqp";
    a.proto = protocol::amqp;
    a.port = 5672;
    c.listeners.push_back(a);
    listener_config o;
    o.name = "openwire";
    o.proto = protocol::openwire;
    o.port = 61616;
    c.listeners.push_back(o);
    return c;
}

// A listener section around `body` (the keys of one listener, indented 4), from line 1.
std::string with_listener(std::string_view body) {
    return "listeners:\n  - name: a\n" + std::string(body);
}

}  // namespace

TEST_CASE("the embedded default loads and equals the struct defaults plus STOMP, MQTT, AMQP and OpenWire listeners",
          "[gateway][config]") {
    const config c = load_config_text(default_config_text(), std::string(embedded_source_name));
    CHECK(c == defaults_with_default_listeners("<embedded default>"));
    REQUIRE(c.listeners.size() == 4);
    CHECK(c.listeners[0].proto == protocol::stomp);
    CHECK(c.listeners[0].address == "0.0.0.0");
    CHECK(c.listeners[0].port == 61613);
    CHECK(c.listeners[1].proto == protocol::mqtt);
    CHECK(c.listeners[1].port == 1883);
    CHECK(c.listeners[2].proto == protocol::amqp);
    CHECK(c.listeners[2].port == 5672);
    CHECK(c.listeners[3].proto == protocol::openwire);
    CHECK(c.listeners[3].port == 61616);
}

TEST_CASE("omitted sections keep their defaults", "[gateway][config]") {
    SECTION("an empty file") {
        CHECK(load_config_text("", "e.yaml") == defaults_with_default_listeners("e.yaml"));
    }
    SECTION("only comments") {
        CHECK(load_config_text("# nothing\n", "e.yaml") == defaults_with_default_listeners("e.yaml"));
    }
    SECTION("blank sections") {
        CHECK(load_config_text("log:\nbroker:\nstomp: {}\n", "e.yaml") ==
              defaults_with_default_listeners("e.yaml"));
    }
    SECTION("one key set, the rest default") {
        const config c = load_config_text("workers: 4\nbroker:\n  name: b1\n", "e.yaml");
        config want = defaults_with_default_listeners("e.yaml");
        want.workers = 4;
        want.broker.name = "b1";
        CHECK(c == want);
    }
    SECTION("a listener with only name and port") {
        const config c = load_config_text("listeners:\n  - {name: s, port: 1234}\n", "e.yaml");
        REQUIRE(c.listeners.size() == 1);
        CHECK(c.listeners[0].name == "s");
        CHECK(c.listeners[0].port == 1234);
        CHECK(c.listeners[0].address == "0.0.0.0");
        CHECK(c.listeners[0].max_connections == 10000);
    }
}

TEST_CASE("every field can be set", "[gateway][config]") {
    const config c = load_config_text(R"(workers: 3
log: {level: debug}
broker:
  name: edge
  max_redeliveries: 0
  dead_letter: per_destination
  default_prefetch: 1
  queue_memory_limit: 1 MiB
  topic_max_pending: 5
  slow_consumer_timeout: 2s
store: {type: memory, dir: /var/lib/sb, sync: batch(20), segment_size: 8MiB}
security: {allow_anonymous: false, users_file: /etc/sb/users}
stomp:
  max_frame_bytes: 2KiB
  max_headers: 10
  max_header_bytes: 128
  connect_timeout_ms: 500
  heartbeat_floor_ms: 0
  heartbeat_grace: 2.25
listeners:
  - {name: a, protocol: stomp, address: 127.0.0.1, port: 1, max_connections: 2}
  - {name: b, address: 127.0.0.2, port: 1}
  - {name: c, address: 127.0.0.1, port: 65535}
)",
                                      "all.yaml");
    CHECK(c.workers == 3);
    CHECK(c.log.level == "debug");
    CHECK(c.broker.name == "edge");
    CHECK(c.broker.max_redeliveries == 0);
    CHECK(c.broker.dead_letter == dead_letter_policy::per_destination);
    CHECK(c.broker.default_prefetch == 1);
    CHECK(c.broker.queue_memory_limit == 1u << 20);
    CHECK(c.broker.topic_max_pending == 5);
    CHECK(c.broker.slow_consumer_timeout_ms == 2000);
    CHECK(c.store.type == store_type::memory);
    CHECK(c.store.dir == "/var/lib/sb");
    CHECK(c.store.sync == sync_policy::batch);
    CHECK(c.store.batch_ms == 20);
    CHECK(c.store.segment_size == 8u << 20);
    CHECK_FALSE(c.security.allow_anonymous);
    CHECK(c.security.users_file == "/etc/sb/users");
    CHECK(c.stomp.max_frame_bytes == 2048);
    CHECK(c.stomp.max_headers == 10);
    CHECK(c.stomp.max_header_bytes == 128);
    CHECK(c.stomp.connect_timeout_ms == 500);
    CHECK(c.stomp.heartbeat_floor_ms == 0);
    CHECK(c.stomp.heartbeat_grace == 2.25);
    REQUIRE(c.listeners.size() == 3);
    CHECK(c.listeners[0].max_connections == 2);
    CHECK(c.listeners[2].port == 65535);
}

TEST_CASE("sizes accept KiB, MiB and GiB suffixes", "[gateway][config]") {
    auto frame = [](std::string v) {
        return load_config_text("stomp:\n  max_frame_bytes: " + v + "\n", "s.yaml").stomp.max_frame_bytes;
    };
    CHECK(frame("1024") == 1024);
    CHECK(frame("4KiB") == 4096);
    CHECK(frame("4 KiB") == 4096);
    CHECK(frame("16MiB") == 16u << 20);
    CHECK(frame("1 GiB") == std::size_t(1) << 30);
    CHECK(error_of("stomp:\n  max_frame_bytes: 16 MB\n") ==
          "conf/x.yaml:2:20: stomp.max_frame_bytes: expected a size in bytes >= 1024 (an integer, "
          "optionally followed by KiB, MiB or GiB), got \"16 MB\"");
    CHECK_THAT(error_of("stomp:\n  max_frame_bytes: 1023\n"),
               Catch::Contains("conf/x.yaml:2:20: stomp.max_frame_bytes: expected a size in bytes >= 1024"));
    CHECK_THAT(error_of("stomp:\n  max_frame_bytes: 0 KiB\n"), Catch::Contains("got \"0 KiB\""));
    CHECK(frame("1 KiB") == 1024);
    CHECK_THAT(error_of("stomp:\n  max_frame_bytes: 99999999999999999999 GiB\n"),
               Catch::Contains("stomp.max_frame_bytes: expected a size"));
    CHECK_THAT(error_of("stomp:\n  max_frame_bytes: -5\n"), Catch::Contains("got \"-5\""));
}

TEST_CASE("STOMP watermarks are settings, validated", "[gateway][config]") {
    const auto c = load_config_text("stomp:\n  write_high_watermark: 64 KiB\n  max_unconfirmed_sends: 8\n", "w.yaml");
    CHECK(c.stomp.write_high_watermark == 64u << 10);
    CHECK(c.stomp.max_unconfirmed_sends == 8);
    CHECK(config{}.stomp.write_high_watermark == 4u << 20);
    CHECK(config{}.stomp.max_unconfirmed_sends == 1024);
    CHECK_THAT(error_of("stomp:\n  write_high_watermark: 4095\n"),
               Catch::Contains("conf/x.yaml:2:25: stomp.write_high_watermark: expected a size in bytes >= 4096"));
    CHECK_THAT(error_of("stomp:\n  max_unconfirmed_sends: 0\n"),
               Catch::Contains("conf/x.yaml:2:26: stomp.max_unconfirmed_sends: expected an integer >= 1"));
    CHECK_THAT(error_of("stomp:\n  max_unconfirmed_sends: 1 KiB\n"), Catch::Contains("stomp.max_unconfirmed_sends"));
}

TEST_CASE("an unknown key is an error at every level", "[gateway][config]") {
    CHECK(error_of("workers: 1\n\nwrokers: 2\n") ==
          "conf/x.yaml:3:1: unknown key 'wrokers' (known: workers, log, broker, store, security, "
          "stomp, mqtt, amqp, openwire, listeners, backends, admin)");
    CHECK(error_of("broker:\n  name: b\n  nmae: c\n") ==
          "conf/x.yaml:3:3: broker: unknown key 'nmae' (known: name, max_redeliveries, dead_letter, "
          "default_prefetch, queue_memory_limit, topic_max_pending, slow_consumer_timeout, advisories, "
          "scheduler_support, virtual_topic, dead_letter_policy)");
    CHECK(error_of("log: {lvl: info}\n") == "conf/x.yaml:1:7: log: unknown key 'lvl' (known: level)");
    CHECK(error_of(with_listener("    port: 1\n    prot: stomp\n")) ==
          "conf/x.yaml:4:5: listeners[0]: unknown key 'prot' (known: name, protocol, address, port, "
          "max_connections, tls, routes, backend, detect_timeout)");
    CHECK_THAT(error_of("stomp:\n  heartbeat_floor: 1\n"),
               Catch::StartsWith("conf/x.yaml:2:3: stomp: unknown key 'heartbeat_floor'"));
    CHECK_THAT(error_of("security:\n  anonymous: true\n"),
               Catch::StartsWith("conf/x.yaml:2:3: security: unknown key 'anonymous'"));
    CHECK_THAT(error_of("store:\n  kind: memory\n"),
               Catch::StartsWith("conf/x.yaml:2:3: store: unknown key 'kind'"));
}

TEST_CASE("a duplicate key is an error", "[gateway][config]") {
    CHECK(error_of("workers: 1\nlog: {}\nworkers: 2\n") ==
          "conf/x.yaml:3:1: duplicate key 'workers' (first on line 1)");
}

TEST_CASE("a value of the wrong type or out of range names line, column and key path",
          "[gateway][config]") {
    SECTION("port") {
        CHECK(error_of(with_listener("    protocol: stomp\n    port: abc\n")) ==
              "conf/x.yaml:4:11: listeners[0].port: expected an integer 1..65535, got \"abc\"");
        CHECK_THAT(error_of(with_listener("    port: 0\n")),
                   Catch::StartsWith("conf/x.yaml:3:11: listeners[0].port: expected an integer 1..65535, got \"0\""));
        CHECK_THAT(error_of(with_listener("    port: 65536\n")), Catch::Contains("got \"65536\""));
        CHECK_THAT(error_of(with_listener("    port: 0x10\n")), Catch::Contains("got \"0x10\""));
        CHECK_THAT(error_of(with_listener("    port: [1]\n")),
                   Catch::EndsWith("listeners[0].port: expected an integer 1..65535, got a list"));
    }
    SECTION("an empty value is reported on its key's line") {
        CHECK(error_of("workers:\nlog: {}\n") ==
              "conf/x.yaml:1:1: workers: expected an integer 0..256, got an empty value");
    }
    SECTION("workers") {
        CHECK(error_of("workers: 257\n") ==
              "conf/x.yaml:1:10: workers: expected an integer 0..256, got \"257\"");
        CHECK(load_config_text("workers: 256\n", "w").workers == 256);
    }
    SECTION("log level") {
        CHECK(error_of("log:\n  level: verbose\n") ==
              "conf/x.yaml:2:10: log.level: expected one of trace, debug, info, warn, error, critical, "
              "off, got \"verbose\"");
    }
    SECTION("heartbeat_grace") {
        CHECK(error_of("stomp:\n  heartbeat_grace: 0.5\n") ==
              "conf/x.yaml:2:20: stomp.heartbeat_grace: expected a number >= 1.0, got \"0.5\"");
        CHECK_THAT(error_of("stomp:\n  heartbeat_grace: .nan\n"), Catch::Contains("stomp.heartbeat_grace"));
        CHECK(load_config_text("stomp: {heartbeat_grace: 1}\n", "g").stomp.heartbeat_grace == 1.0);
    }
    SECTION("dead letter policy") {
        CHECK(error_of("broker:\n  dead_letter: DLQ\n") ==
              "conf/x.yaml:2:16: broker.dead_letter: expected one of shared, per_destination, got \"DLQ\"");
    }
    SECTION("booleans") {
        CHECK_THAT(error_of("security:\n  allow_anonymous: maybe\n"),
                   Catch::StartsWith("conf/x.yaml:2:20: security.allow_anonymous: expected true or false"));
    }
    SECTION("a section that is not a mapping") {
        CHECK_THAT(error_of("workers: 1\nbroker: fast\n"),
                   Catch::StartsWith("conf/x.yaml:2:9: broker: expected a mapping with keys name, "));
        CHECK_THAT(error_of("- a\n- b\n"), Catch::StartsWith("conf/x.yaml:1:1: expected a mapping"));
    }
    SECTION("store type") {
        CHECK(error_of("store:\n  type: journal\n").empty());
        CHECK_THAT(error_of("store:\n  type: disk\n"),
                   Catch::EndsWith("expected one of memory, journal, got \"disk\""));
    }
    SECTION("store sync") {
        CHECK(error_of("store:\n  sync: batch(5ms)\n").empty());
        CHECK(load_config_text("store:\n  sync: batch(5)\n", "s.yaml").store.batch_ms == 5);
        CHECK(load_config_text("store:\n  sync: never\n", "s.yaml").store.sync == sync_policy::never);
        CHECK_THAT(error_of("store:\n  sync: sometimes\n"),
                   Catch::StartsWith("conf/x.yaml:2:9: store.sync: expected always, never, batch"));
        CHECK_THAT(error_of("store:\n  sync: batch(0)\n"), Catch::Contains("store.sync"));
    }
}

TEST_CASE("listener protocols must be known", "[gateway][config]") {
    CHECK(error_of(with_listener("    protocol: stomp2\n    port: 1\n")) ==
          "conf/x.yaml:3:15: listeners[0].protocol: expected one of stomp, mqtt, amqp, openwire, auto, tcp, got \"stomp2\"");
    CHECK(error_of(with_listener("    protocol: websocket\n    port: 1\n")) ==
          "conf/x.yaml:3:15: listeners[0].protocol: 'websocket' is not supported yet (supported: stomp, mqtt, amqp, openwire, auto, tcp)");
    CHECK(error_of(with_listener("    protocol: openwire\n    port: 1\n")).empty());
    CHECK(error_of(with_listener("    protocol: amqp\n    port: 1\n")).empty());
    CHECK(error_of(with_listener("    protocol: mqtt\n    port: 1\n")).empty());
}

TEST_CASE("listeners need unique non-empty names and distinct addresses", "[gateway][config]") {
    SECTION("at least one listener") {
        CHECK(error_of("workers: 1\nlisteners: []\n") ==
              "conf/x.yaml:2:12: listeners: expected a list of at least one listener, got a list");
        CHECK_THAT(error_of("listeners:\n"), Catch::StartsWith("conf/x.yaml:1:1: listeners: expected a list"));
    }
    SECTION("empty name") {
        CHECK_THAT(error_of("listeners:\n  - name: \"\"\n    port: 1\n"),
                   Catch::StartsWith("conf/x.yaml:2:11: listeners[0].name: expected a non-empty name"));
    }
    SECTION("missing name or port") {
        CHECK(error_of("listeners:\n  - port: 1\n") ==
              "conf/x.yaml:2:5: listeners[0].name: missing (every listener needs a name)");
        CHECK(error_of("listeners:\n  - name: a\n    port: 1\n  - name: b\n") ==
              "conf/x.yaml:4:5: listeners[1].port: missing (expected an integer 1..65535)");
    }
    SECTION("duplicate name") {
        CHECK(error_of("listeners:\n  - name: a\n    port: 1\n  - name: a\n    port: 2\n") ==
              "conf/x.yaml:4:11: listeners[1].name: duplicate listener name 'a' (first on line 2)");
    }
    SECTION("same address and port") {
        CHECK(error_of("listeners:\n"
                       "  - {name: a, address: 127.0.0.1, port: 7}\n"
                       "  - {name: b, address: 127.0.0.1, port: 7}\n") ==
              "conf/x.yaml:3:41: listeners[1].port: 127.0.0.1:7 is already used by listener 'a' "
              "(127.0.0.1:7, line 2)");
    }
    SECTION("a wildcard address overlaps every address on that port") {
        CHECK_THAT(error_of("listeners:\n"
                            "  - {name: a, port: 7}\n"
                            "  - {name: b, address: 10.0.0.1, port: 7}\n"),
                   Catch::StartsWith("conf/x.yaml:3:40: listeners[1].port: 10.0.0.1:7 is already used by "
                                     "listener 'a' (0.0.0.0:7, line 2)"));
    }
    SECTION("a list item that is not a mapping") {
        CHECK_THAT(error_of("listeners:\n  - stomp\n"),
                   Catch::StartsWith("conf/x.yaml:2:5: listeners[0]: expected a mapping"));
    }
}

TEST_CASE("allow_anonymous false needs a users file", "[gateway][config]") {
    CHECK(error_of("security:\n  allow_anonymous: false\n") ==
          "conf/x.yaml:2:20: security.allow_anonymous: false needs security.users_file (otherwise "
          "nobody can log in)");
}

TEST_CASE("YAML syntax errors carry file, line and column", "[gateway][config]") {
    const std::string e = error_of("workers: 1\nlisteners: [\n  {name: a\n");
    CHECK_THAT(e, Catch::StartsWith("conf/x.yaml:"));
    CHECK_THAT(e, Catch::Contains("YAML syntax error"));
    CHECK_THAT(error_of("a: b: c\n"), Catch::StartsWith("conf/x.yaml:1:5: YAML syntax error: "));
    CHECK_THAT(error_of("workers: 1\n---\nworkers: 2\n"),
               Catch::StartsWith("conf/x.yaml:3:1: only one YAML document is allowed"));
}

TEST_CASE("files: a missing file is reported with the reason, errors name the path",
          "[gateway][config]") {
    CHECK_THROWS_WITH(load_config_file("/nonexistent/sb.yaml"),
                      "cannot open /nonexistent/sb.yaml: No such file or directory");
    CHECK_THROWS_WITH(load_config_file("/"), Catch::StartsWith("cannot read /: "));

    char path[] = "/tmp/sb_config_test_XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    {
        std::ofstream out(path);
        out << "workers: 2\nlisteners:\n  - name: s\n    port: 99999\n";
    }
    CHECK_THROWS_WITH(load_config_file(path),
                      std::string(path) + ":4:11: listeners[0].port: expected an integer 1..65535, got \"99999\"");
    {
        std::ofstream out(path);
        out << "workers: 2\n";
    }
    const config c = load_config_file(path);
    CHECK(c.source == path);
    CHECK(c.workers == 2);
    std::remove(path);
}

TEST_CASE("backends and routes: servers, balance, checks, durations, and every reference checked",
          "[gateway][config]") {
    const config c = load_config_text(R"(
backends:
  - name: amq
    balance: leastconn
    connect_timeout: 2s
    retries: 1
    idle_timeout: 1m
    send_proxy: v2
    check: { type: openwire, interval: 1500ms, timeout: 1s, fall: 4, rise: 1 }
    servers:
      - { name: a, address: 127.0.0.1:61616, max_connections: 10, weight: 3 }
      - { address: "[::1]:61617", backup: true }
listeners:
  - name: front
    protocol: auto
    port: 7000
    detect_timeout: 2s
    routes: { openwire: { backend: amq }, mqtt: kernel, default: { backend: amq } }
  - { name: relay, protocol: tcp, port: 7001, backend: amq }
)", "conf/x.yaml");
    REQUIRE(c.backends.size() == 1);
    const backend_config& b = c.backends[0];
    CHECK(b.balance == balance_mode::leastconn);
    CHECK(b.connect_timeout_ms == 2000);
    CHECK(b.retries == 1);
    CHECK(b.idle_timeout_ms == 60000);
    CHECK(b.send_proxy == proxy_protocol::v2);
    CHECK(b.check == check_config{check_type::openwire, 1500, 1000, 4, 1, "/", 200});
    REQUIRE(b.servers.size() == 2);
    CHECK(b.servers[0] == server_config{"a", "127.0.0.1", 61616, false, 10, 3});
    CHECK(b.servers[1] == server_config{"::1:61617", "::1", 61617, true, 0, 1});
    REQUIRE(c.listeners.size() == 2);
    const listener_config& f = c.listeners[0];
    CHECK(f.proto == protocol::automatic);
    CHECK(f.detect_timeout_ms == 2000);
    CHECK(f.routes[static_cast<std::size_t>(wire::openwire)] == route{"amq"});
    CHECK(f.routes[static_cast<std::size_t>(wire::mqtt)] == route{});
    CHECK(!f.routes[static_cast<std::size_t>(wire::stomp)]);
    CHECK(f.fallback == route{"amq"});
    CHECK(c.listeners[1].proto == protocol::tcp);
    CHECK(c.listeners[1].fallback == route{"amq"});

    const std::string servers = "    servers: [{ address: 127.0.0.1:1 }]\n";
    CHECK(error_of("listeners:\n  - { name: a, port: 1, backend: nope }\n") ==
          "conf/x.yaml:2:34: listeners[0].backend: no backend named 'nope' (declare it under backends)");
    CHECK(error_of("listeners:\n  - { name: a, port: 1, protocol: tcp }\n") ==
          "conf/x.yaml:2:35: listeners[0].protocol: tcp relays bytes to a backend: set backend: NAME");
    CHECK(error_of("backends:\n  - name: b\n" + servers +
                   "listeners:\n  - { name: a, port: 1, routes: { http: kernel } }\n") ==
          "conf/x.yaml:5:41: listeners[0].routes.http: the kernel has no http adapter yet: route it to a backend");
    CHECK(error_of("backends:\n  - name: b\n    servers: [{ address: 127.0.0.1 }]\n") ==
          "conf/x.yaml:3:26: backends[0].servers[0].address: expected HOST:PORT (\"127.0.0.1:61616\", \"[::1]:1883\", "
          "\"broker-a:5672\"), got \"127.0.0.1\"");
    CHECK(error_of("backends:\n  - name: b\n    balance: random\n" + servers) ==
          "conf/x.yaml:3:14: backends[0].balance: expected one of first, roundrobin, leastconn, got \"random\"");
    CHECK(error_of("backends:\n  - name: b\n    check: { interval: 3 hours }\n" + servers) ==
          "conf/x.yaml:3:24: backends[0].check.interval: expected a duration >= 10 ms (\"500ms\", \"3s\", \"1m\" or "
          "milliseconds), got \"3 hours\"");
    CHECK(error_of("backends:\n  - name: b\n    check: { interval: 1s, timeout: 2s }\n" + servers) ==
          "conf/x.yaml:2:5: backends[0].check.timeout: must not exceed check.interval");
    CHECK(error_of("backends:\n  - name: b\n") == "conf/x.yaml:2:5: backends[0].servers: missing (a list of at least one server)");
    CHECK(error_of("backends:\n  - name: b\n" + servers + "  - name: b\n" + servers) ==
          "conf/x.yaml:4:11: backends[1].name: duplicate backend name 'b'");
    CHECK(error_of("listeners:\n  - { name: a, port: 1, tls: { cert: a.pem } }\n") ==
          "conf/x.yaml:2:30: listeners[0].tls.key: missing (a PEM private key file)");
}

TEST_CASE("security.auth_threads sizes the password-checking pool, validated", "[gateway][config]") {
    CHECK(config{}.security.auth_threads == 2);
    CHECK(load_config_text("security:\n  auth_threads: 4\n", "a.yaml").security.auth_threads == 4);
    CHECK_THAT(error_of("security:\n  auth_threads: 0\n"),
               Catch::Contains("conf/x.yaml:2:17: security.auth_threads: expected an integer"));
    CHECK_THAT(error_of("security:\n  auth_threads: 65\n"), Catch::Contains("security.auth_threads"));
}

TEST_CASE("the amqp section: limits and their ranges", "[gateway][config]") {
    const config c = load_config_text(
        "amqp:\n  max_frame_size: 4096\n  channel_max: 8\n  idle_timeout_ms: 0\n  connect_timeout_ms: 500\n"
        "  link_credit: 5\n  max_unconfirmed_sends: 7\n",
        "a.yaml");
    CHECK(c.amqp.max_frame_size == 4096);
    CHECK(c.amqp.channel_max == 8);
    CHECK(c.amqp.idle_timeout_ms == 0);
    CHECK(c.amqp.connect_timeout_ms == 500);
    CHECK(c.amqp.link_credit == 5);
    CHECK(c.amqp.max_unconfirmed_sends == 7);
    CHECK(load_config_text("", "e.yaml").amqp == amqp_config{});
    CHECK_THAT(error_of("amqp:\n  max_frame_size: 100\n"), Catch::Contains("amqp.max_frame_size"));
    CHECK_THAT(error_of("amqp:\n  link_credit: 0\n"), Catch::Contains("amqp.link_credit"));
    CHECK_THAT(error_of("amqp:\n  credit: 5\n"), Catch::Contains("unknown key 'credit'"));
}

TEST_CASE("broker: scheduler, virtual topic and dead-letter policy keys (sched)", "[gateway][config]") {
    const auto c = load_config_text("broker:\n"
                                    "  scheduler_support: false\n"
                                    "  virtual_topic: {name: \">\", prefix: \"VTC.*.\", postfix: .m}\n"
                                    "  dead_letter_policy:\n"
                                    "    queue: All.DLQ\n"
                                    "    expired: false\n"
                                    "    rules:\n"
                                    "      - {pattern: orders.>, strategy: per_destination, prefix: D., suffix: .x}\n"
                                    "      - {pattern: \">\", non_persistent: false}\n",
                                    "conf/x.yaml");
    CHECK_FALSE(c.broker.scheduler_support);
    CHECK(c.broker.virtual_topic_name == ">");
    CHECK(c.broker.virtual_topic_prefix == "VTC.*.");
    CHECK(c.broker.virtual_topic_postfix == ".m");
    CHECK(c.broker.dead_letter_queue == "All.DLQ");
    CHECK_FALSE(c.broker.dead_letter_expired);
    REQUIRE(c.broker.dead_letter_policies.size() == 2);
    const auto& r0 = c.broker.dead_letter_policies[0];
    CHECK(r0.pattern == "orders.>");
    CHECK(r0.strategy == dead_letter_policy::per_destination);
    CHECK(r0.prefix == "D.");
    CHECK(r0.suffix == ".x");
    CHECK_FALSE(r0.expired);   // from the broker-wide value
    const auto& r1 = c.broker.dead_letter_policies[1];
    CHECK(r1.queue == "All.DLQ");
    CHECK_FALSE(r1.non_persistent);
    CHECK_THAT(error_of("broker:\n  dead_letter_policy:\n    rules: [{queue: X}]\n"),
               Catch::Contains("broker.dead_letter_policy.rules[0].pattern: missing"));
    CHECK_THAT(error_of("broker:\n  virtual_topic: {nam: x}\n"), Catch::Contains("unknown key 'nam'"));
}

TEST_CASE("listener tls: versions, ciphers, groups, ALPN, client certificates, reload interval", "[gateway][config]") {
    const auto c = load_config_text(
        "listeners:\n"
        "  - name: a\n"
        "    port: 8883\n"
        "    protocol: auto\n"
        "    tls:\n"
        "      cert: s.pem\n"
        "      key: s.key\n"
        "      min_version: 1.3\n"
        "      ciphers: ECDHE+AESGCM\n"
        "      ciphersuites: TLS_AES_128_GCM_SHA256\n"
        "      groups: X25519:P-256\n"
        "      alpn: [mqtt, amqp]\n"
        "      verify_client: required\n"
        "      ca: ca.pem\n"
        "      user_from: san_email\n"
        "      reload_interval: 500ms\n",
        "a.yaml");
    const tls_config& t = c.listeners.at(0).tls_settings;
    CHECK(c.listeners[0].tls);
    CHECK(t.min_version == "1.3");
    CHECK(t.ciphers == "ECDHE+AESGCM");
    CHECK(t.ciphersuites == "TLS_AES_128_GCM_SHA256");
    CHECK(t.groups == "X25519:P-256");
    CHECK(t.alpn == std::vector<std::string>{"mqtt", "amqp"});
    CHECK(t.verify == verify_client::required);
    CHECK(t.ca_file == "ca.pem");
    CHECK(t.user_from == cert_field::san_email);
    CHECK(t.reload_interval_ms == 500);

    const tls_config d = load_config_text("listeners:\n  - { name: a, port: 1, tls: { cert: a, key: b } }\n", "a.yaml")
                             .listeners.at(0).tls_settings;
    CHECK(d.min_version == "1.2");
    CHECK(d.verify == verify_client::none);
    CHECK(d.user_from == cert_field::cn);
    CHECK(d.reload_interval_ms == 1000);
    CHECK(d.alpn.empty());
    CHECK(load_config_text("listeners:\n  - { name: a, port: 1, tls: { cert: a, key: b, alpn: stomp } }\n", "a.yaml")
              .listeners.at(0).tls_settings.alpn == std::vector<std::string>{"stomp"});

    CHECK(error_of("listeners:\n  - { name: a, port: 1, tls: { cert: a, key: b, min_version: 1.1 } }\n") ==
          "conf/x.yaml:2:62: listeners[0].tls.min_version: expected 1.2 or 1.3 (older TLS is refused), got \"1.1\"");
    CHECK(error_of("listeners:\n  - { name: a, port: 1, tls: { cert: a, key: b, verify_client: required } }\n") ==
          "conf/x.yaml:2:30: listeners[0].tls.ca: missing (verify_client needs the PEM CA file client certificates "
          "are checked against)");
    CHECK(error_of("listeners:\n  - { name: a, port: 1, tls: { cert: a, key: b, verify_client: maybe } }\n") ==
          "conf/x.yaml:2:64: listeners[0].tls.verify_client: expected one of none, optional, required, got \"maybe\"");
    CHECK(error_of("listeners:\n  - { name: a, port: 1, tls: { cert: a, key: b, user_from: ou } }\n") ==
          "conf/x.yaml:2:60: listeners[0].tls.user_from: expected one of cn, dn, san_dns, san_email, san_uri, got \"ou\"");
    CHECK(error_of("listeners:\n  - { name: a, port: 1, tls: { cert: a, key: b, alpn: [\"\"] } }\n") ==
          "conf/x.yaml:2:55: listeners[0].tls.alpn: expected a list of protocol names of 1..255 bytes, got a list");
}
