// tests/bench/options_test.cpp — argument parsing and validation: defaults, every refusal has a
// message and exit status 2, and the delivery arithmetic the completion check relies on.
#include <catch2/catch.hpp>

#include <initializer_list>
#include <vector>

#include "tests/bench/options.hpp"

using namespace sb::bench;

namespace {

parsed_command parse(std::initializer_list<const char*> args) {
    std::vector<const char*> argv{"switchboard-bench"};
    argv.insert(argv.end(), args.begin(), args.end());
    return parse_args(static_cast<int>(argv.size()), argv.data());
}

// The refusal message, or "" if the arguments were accepted.
std::string refusal(std::initializer_list<const char*> args) {
    const auto r = parse(args);
    if (const auto* f = std::get_if<parse_failure>(&r)) {
        REQUIRE(f->exit_code == 2);
        return f->message;
    }
    return {};
}

}  // namespace

TEST_CASE("no arguments give a STOMP queue scenario with defaults", "[bench][options]") {
    const auto r = parse({});
    const auto* o = std::get_if<run_options>(&r);
    REQUIRE(o);
    CHECK(o->proto == protocol::stomp);
    CHECK(o->dest == dest_kind::queue);
    CHECK(o->port == 61613);
    CHECK(o->count == 100000);
    CHECK(o->producers == 1);
    CHECK(o->consumers == 1);
}

TEST_CASE("MQTT defaults to topics on port 1883", "[bench][options]") {
    const auto r = parse({"--protocol", "mqtt", "--qos", "1", "--producers", "4"});
    const auto* o = std::get_if<run_options>(&r);
    REQUIRE(o);
    CHECK(o->proto == protocol::mqtt);
    CHECK(o->dest == dest_kind::topic);
    CHECK(o->port == 1883);
    CHECK(o->qos == 1);
    CHECK(o->producers == 4);
}

TEST_CASE("AMQP defaults to queues on port 5672, its sends confirmed unless pre-settled", "[bench][options]") {
    const auto r = parse({"--protocol", "amqp", "--producers", "4", "--persistent"});
    const auto* o = std::get_if<run_options>(&r);
    REQUIRE(o);
    CHECK(o->proto == protocol::amqp);
    CHECK(o->dest == dest_kind::queue);
    CHECK(o->port == 5672);
    CHECK(o->persistent);
    CHECK(confirms(*o));
    const auto p = parse({"--protocol", "amqp", "--presettled", "--destination", "topic"});
    const auto* q = std::get_if<run_options>(&p);
    REQUIRE(q);
    CHECK(q->presettled);
    CHECK(q->dest == dest_kind::topic);
    CHECK_FALSE(confirms(*q));
}

TEST_CASE("AMQP refuses the other protocols' confirmation options", "[bench][options]") {
    CHECK_THAT(refusal({"--protocol", "amqp", "--qos", "1"}), Catch::Contains("--qos"));
    CHECK_THAT(refusal({"--protocol", "amqp", "--confirm"}), Catch::Contains("--confirm"));
    CHECK_THAT(refusal({"--protocol", "amqp", "--window", "0"}), Catch::Contains("--window"));
    CHECK_THAT(refusal({"--presettled"}), Catch::Contains("AMQP only"));
    CHECK_THAT(refusal({"sink", "--protocol", "amqp", "--port", "5672"}), Catch::Contains("STOMP or MQTT"));
    CHECK_THAT(refusal({"idle", "--protocol", "amqp"}), Catch::Contains("STOMP or MQTT"));
}

TEST_CASE("every argument is parsed into its field", "[bench][options]") {
    const auto r = parse({"--protocol", "stomp", "--destination", "topic", "--host", "localhost", "--port", "7000",
                          "--producers", "3", "--consumers", "2", "--destinations", "2", "--size", "1024",
                          "--duration", "5", "--timeout", "30", "--window", "64", "--confirm", "--persistent",
                          "--threads", "2", "--json", "out.json", "--label", "x", "--quiet", "--prefix", "p1"});
    const auto* o = std::get_if<run_options>(&r);
    REQUIRE(o);
    CHECK(o->dest == dest_kind::topic);
    CHECK(o->host == "localhost");
    CHECK(o->port == 7000);
    CHECK(o->producers == 3);
    CHECK(o->consumers == 2);
    CHECK(o->destinations == 2);
    CHECK(o->size_bytes == 1024);
    CHECK(o->count == 0);
    CHECK(o->duration_s == 5);
    CHECK(o->timeout_s == 30);
    CHECK(o->window == 64);
    CHECK(o->confirm);
    CHECK(o->persistent);
    CHECK(o->threads == 2);
    CHECK(o->json_path == "out.json");
    CHECK(o->label == "x");
    CHECK(o->quiet);
    CHECK(o->prefix == "p1");
}

TEST_CASE("bad arguments are refused with a message naming the option", "[bench][options]") {
    CHECK_THAT(refusal({"--protocol", "openwire"}), Catch::Contains("--protocol"));
    CHECK_THAT(refusal({"--no-such-option"}), Catch::Contains("no-such-option"));
    CHECK_THAT(refusal({"--count", "abc"}), Catch::Contains("--count"));
    CHECK_THAT(refusal({"--count", "10", "--duration", "5"}), Catch::Contains("--count"));
    CHECK_THAT(refusal({"--size", "15"}), Catch::Contains("--size"));
    CHECK_THAT(refusal({"--producers", "0"}), Catch::Contains("--producers"));
    CHECK_THAT(refusal({"--consumers", "10001"}), Catch::Contains("--consumers"));
    CHECK_THAT(refusal({"--timeout", "0"}), Catch::Contains("--timeout"));
    CHECK_THAT(refusal({"--duration", "60", "--timeout", "30"}), Catch::Contains("--timeout"));
    CHECK_THAT(refusal({"--threads", "0"}), Catch::Contains("--threads"));
    CHECK_THAT(refusal({"--qos", "1"}), Catch::Contains("--qos applies to MQTT"));
    CHECK_THAT(refusal({"--protocol", "mqtt", "--qos", "3"}), Catch::Contains("--qos"));
    CHECK_THAT(refusal({"--protocol", "mqtt", "--destination", "queue"}), Catch::Contains("topics only"));
    CHECK_THAT(refusal({"--protocol", "mqtt", "--confirm"}), Catch::Contains("--confirm"));
    CHECK_THAT(refusal({"--protocol", "mqtt", "--persistent"}), Catch::Contains("--persistent"));
    CHECK_THAT(refusal({"--protocol", "mqtt", "--window", "70000"}), Catch::Contains("--window"));
    CHECK_THAT(refusal({"--window", "0"}), Catch::Contains("--window"));
    CHECK_THAT(refusal({"--background-subs", "10"}), Catch::Contains("MQTT only"));
    CHECK_THAT(refusal({"--protocol", "mqtt", "--background-subs", "1000001"}), Catch::Contains("--background-subs"));
    CHECK_THAT(refusal({"--protocol", "mqtt", "--background-subs", "10", "--background-connections", "10001"}),
               Catch::Contains("--background-connections"));
    CHECK_THAT(refusal({"--prefix", "a/b"}), Catch::Contains("--prefix"));
    CHECK_THAT(refusal({"--destination", "fifo"}), Catch::Contains("--destination"));
    CHECK_THAT(refusal({"--host", ""}), Catch::Contains("--host"));
    CHECK_THAT(refusal({"sink"}), Catch::Contains("--port"));
    CHECK_THAT(refusal({"idle", "--connections", "0"}), Catch::Contains("--connections"));
    CHECK_THAT(refusal({"idle", "--hold", "200", "--timeout", "100"}), Catch::Contains("--hold"));
}

TEST_CASE("background subscriptions are parsed for MQTT", "[bench][options]") {
    const auto r = parse({"--protocol", "mqtt", "--background-subs", "100000", "--background-connections", "8"});
    const auto* o = std::get_if<run_options>(&r);
    REQUIRE(o);
    CHECK(o->background_subs == 100000);
    CHECK(o->background_connections == 8);
    const auto d = parse({"--protocol", "mqtt"});
    REQUIRE(std::get_if<run_options>(&d));
    CHECK(std::get<run_options>(d).background_subs == 0);
    CHECK(std::get<run_options>(d).background_connections == 0);   // one per 1,000 filters
}

TEST_CASE("every refusal points at --help", "[bench][options]") {
    CHECK_THAT(refusal({"--size", "1"}), Catch::Contains("--help"));
}

TEST_CASE("--help is not a failure", "[bench][options]") {
    const auto r = parse({"--help"});
    const auto* f = std::get_if<parse_failure>(&r);
    REQUIRE(f);
    CHECK(f->exit_code == 0);
    CHECK_THAT(f->message, Catch::Contains("--producers"));
    const auto s = parse({"idle", "--help"});
    REQUIRE(std::get_if<parse_failure>(&s));
    CHECK_THAT(std::get<parse_failure>(s).message, Catch::Contains("--connections"));
}

TEST_CASE("sink and idle sub-commands parse their own options", "[bench][options]") {
    const auto s = parse({"sink", "--protocol", "mqtt", "--port", "9999", "--for", "3"});
    const auto* so = std::get_if<sink_options>(&s);
    REQUIRE(so);
    CHECK(so->proto == protocol::mqtt);
    CHECK(so->port == 9999);
    CHECK(so->for_s == 3);
    const auto i = parse({"idle", "--connections", "5000", "--hold", "2", "--broker-pid", "42"});
    const auto* io = std::get_if<idle_options>(&i);
    REQUIRE(io);
    CHECK(io->proto == protocol::mqtt);
    CHECK(io->port == 1883);
    CHECK(io->connections == 5000);
    CHECK(io->broker_pid == 42);
}

TEST_CASE("a queue delivers each message once, a topic once per consumer", "[bench][options]") {
    CHECK(expected_deliveries(dest_kind::queue, 1000, 4) == 1000);
    CHECK(expected_deliveries(dest_kind::topic, 1000, 4) == 4000);
    CHECK(expected_deliveries(dest_kind::queue, 1000, 0) == 0);
    CHECK(expected_deliveries(dest_kind::topic, 1000, 0) == 0);
}

TEST_CASE("consumers and messages are shared out evenly, the first ones taking the remainder", "[bench][options]") {
    CHECK(consumers_on(5, 2, 0) == 3);
    CHECK(consumers_on(5, 2, 1) == 2);
    CHECK(consumers_on(1, 3, 2) == 0);
    CHECK(quota_of(10, 3, 0) == 4);
    CHECK(quota_of(10, 3, 1) == 3);
    CHECK(quota_of(10, 3, 2) == 3);
    CHECK(quota_of(2, 4, 3) == 0);
    std::uint64_t total = 0;
    for (std::uint32_t i = 0; i < 7; ++i) total += quota_of(100003, 7, i);
    CHECK(total == 100003);
}

TEST_CASE("selectors are parsed for one STOMP queue with enough consumers", "[bench][options]") {
    const auto r = parse({"--consumers", "16", "--selectors", "16"});
    REQUIRE(std::holds_alternative<run_options>(r));
    CHECK(std::get<run_options>(r).selectors == 16);
    CHECK_THAT(refusal({"--consumers", "4", "--selectors", "16"}), Catch::Contains("--selectors"));
    CHECK_THAT(refusal({"--consumers", "16", "--selectors", "16", "--destination", "topic"}),
               Catch::Contains("STOMP queues only"));
    CHECK_THAT(refusal({"--consumers", "16", "--selectors", "16", "--destinations", "2"}),
               Catch::Contains("one destination"));
}
