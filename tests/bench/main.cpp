// tests/bench/main.cpp — switchboard-bench: a load generator for STOMP and MQTT brokers
// (scenarios, a null-broker sink for the client's own ceiling, idle-connection scale).
#include <iostream>

#include "tests/bench/commands.hpp"

int main(int argc, char** argv) {
    using namespace sb::bench;
    const parsed_command cmd = parse_args(argc, argv);
    if (const auto* f = std::get_if<parse_failure>(&cmd)) {
        (f->exit_code == 0 ? std::cout : std::cerr) << f->message << "\n";
        return f->exit_code;
    }
    try {
        if (const auto* s = std::get_if<sink_options>(&cmd)) return run_sink(*s);
        if (const auto* i = std::get_if<idle_options>(&cmd)) return run_idle(*i);
        const auto& o = std::get<run_options>(cmd);
        const run_result r = run_scenario(o);
        std::cout << format_table(o, r) << std::flush;
        if (!o.json_path.empty() && !write_json(o.json_path, to_json(o, r))) return exit_error;
        return exit_code(r);
    } catch (const std::exception& e) {
        // Only set-up can throw (thread creation, allocation); the data path reports by result.
        std::cerr << "switchboard-bench: " << e.what() << "\n";
        return exit_error;
    }
}
