// tests/integration/mqtt_paho_cpp_client.cpp — a small Paho MQTT C++ (1.2) client for the
// integration tests: subscribes, publishes N messages to itself and checks it got each one once,
// in order, at the expected QoS (and, with --v5, with its user property). Exit 0 = pass, 1 = fail.
//
//   mqtt_paho_cpp_client --port P [--host 127.0.0.1] --mode pubsub --qos N --count N [--v5]
//                        [--topic T] [--timeout-ms MS]

#include <chrono>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <string>
#include <string_view>
#include <tuple>

#include <unistd.h>

#include <mqtt/async_client.h>

namespace {

struct options {
    std::string host = "127.0.0.1";
    int port = 0;
    std::string mode = "pubsub";
    int qos = 1;
    int count = 100;
    bool v5 = false;
    std::string topic = "cpp/pubsub";
    int timeout_ms = 10000;
};

[[noreturn]] void usage(std::string_view why) {
    std::cerr << "mqtt_paho_cpp_client: " << why << "\n"
              << "usage: mqtt_paho_cpp_client --port P [--host H] --mode pubsub --qos 0|1|2 "
                 "--count N [--v5] [--topic T] [--timeout-ms MS]\n";
    std::exit(2);
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage(std::string(arg) + " needs a value");
            return argv[++i];
        };
        try {
            if (arg == "--host") o.host = value();
            else if (arg == "--port") o.port = std::stoi(value());
            else if (arg == "--mode") o.mode = value();
            else if (arg == "--qos") o.qos = std::stoi(value());
            else if (arg == "--count") o.count = std::stoi(value());
            else if (arg == "--topic") o.topic = value();
            else if (arg == "--timeout-ms") o.timeout_ms = std::stoi(value());
            else if (arg == "--v5") o.v5 = true;
            else usage("unknown argument " + std::string(arg));
        } catch (const std::logic_error&) {
            usage("bad number for " + std::string(arg));
        }
    }
    if (o.port <= 0 || o.port > 65535) usage("--port is required");
    if (o.mode != "pubsub") usage("only --mode pubsub is supported");
    if (o.qos < 0 || o.qos > 2) usage("--qos must be 0, 1 or 2");
    if (o.count < 1) usage("--count must be positive");
    return o;
}

int fail(std::string_view what) {
    std::cerr << "FAIL: " << what << "\n";
    return 1;
}

int run(const options& o) {
    using namespace std::chrono;
    const auto timeout = milliseconds(o.timeout_ms);
    const std::string uri = "tcp://" + o.host + ":" + std::to_string(o.port);
    const std::string client_id = "cpp-" + std::to_string(::getpid()) + (o.v5 ? "-v5" : "-v311");
    const int version = o.v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;

    mqtt::async_client cli(uri, client_id, mqtt::create_options(version));
    auto conn = mqtt::connect_options_builder().mqtt_version(version).keep_alive_interval(
        seconds(30));
    if (o.v5) conn.clean_start(true);
    else conn.clean_session(true);

    // Consuming starts before connecting so no message can slip past the queue.
    cli.start_consuming();
    auto connect_tok = cli.connect(conn.finalize());
    if (!connect_tok->wait_for(timeout)) return fail("no CONNACK in time");
    if (!cli.is_connected()) return fail("not connected after CONNACK");

    auto sub_tok = cli.subscribe(o.topic, o.qos);
    if (!sub_tok->wait_for(timeout)) return fail("no SUBACK in time");
    const auto codes = sub_tok->get_subscribe_response().get_reason_codes();
    if (codes.size() != 1 || int(codes[0]) != o.qos)
        return fail("SUBACK did not grant QoS " + std::to_string(o.qos));

    // Publish with a window of outstanding messages below the C library's default in-flight
    // limit (10), waiting for the oldest completion (PUBACK / PUBCOMP) when it is full.
    constexpr std::size_t window = 8;
    std::deque<mqtt::delivery_token_ptr> pending;
    for (int i = 0; i < o.count; ++i) {
        auto msg = mqtt::make_message(o.topic, "cpp-" + std::to_string(i), o.qos, false);
        if (o.v5)
            msg->set_properties(mqtt::properties{
                mqtt::property(mqtt::property::USER_PROPERTY, "seq", std::to_string(i))});
        if (pending.size() == window) {
            if (!pending.front()->wait_for(timeout))
                return fail("a publish was not acknowledged in time");
            pending.pop_front();
        }
        pending.push_back(cli.publish(msg));
    }
    for (auto& tok : pending)
        if (!tok->wait_for(timeout)) return fail("a publish was not acknowledged in time");

    // Receive them all: each once, in order, at the subscription's QoS.
    for (int i = 0; i < o.count; ++i) {
        mqtt::const_message_ptr msg;
        if (!cli.try_consume_message_for(&msg, timeout) || !msg)
            return fail("received " + std::to_string(i) + " of " + std::to_string(o.count));
        const std::string want = "cpp-" + std::to_string(i);
        if (msg->get_payload_str() != want)
            return fail("message " + std::to_string(i) + " is '" + msg->get_payload_str() +
                        "', expected '" + want + "'");
        if (msg->get_topic() != o.topic) return fail("wrong topic " + msg->get_topic());
        if (msg->get_qos() != o.qos)
            return fail("delivered at QoS " + std::to_string(msg->get_qos()));
        if (o.v5) {
            const auto& props = msg->get_properties();
            if (!props.contains(mqtt::property::USER_PROPERTY))
                return fail("user property missing on message " + std::to_string(i));
            const auto pair = mqtt::get<mqtt::string_pair>(props, mqtt::property::USER_PROPERTY);
            if (std::get<0>(pair) != "seq" || std::get<1>(pair) != std::to_string(i))
                return fail("wrong user property on message " + std::to_string(i));
        }
    }

    // Nothing extra: a duplicate would be waiting in the queue now.
    mqtt::const_message_ptr extra;
    if (cli.try_consume_message_for(&extra, milliseconds(200)) && extra)
        return fail("an extra message arrived: '" + extra->get_payload_str() + "'");

    if (!cli.disconnect()->wait_for(timeout)) return fail("DISCONNECT did not complete");
    std::cout << "OK: " << o.count << " messages at QoS " << o.qos << " over MQTT "
              << (o.v5 ? "5" : "3.1.1") << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    try {
        return run(o);
    } catch (const mqtt::exception& e) {
        return fail(std::string("paho exception: ") + e.what());
    } catch (const std::exception& e) {
        return fail(std::string("exception: ") + e.what());
    }
}
