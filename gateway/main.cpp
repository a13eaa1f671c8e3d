// gateway/main.cpp — the `switchboard` command line: run, check, passwd, version.
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/security/authenticator.hpp"
#include "gateway/config.hpp"
#include "gateway/server.hpp"

namespace {

constexpr const char* version_text = "switchboard 0.1.0";
constexpr int exit_config_error = 2;

// One named logger per area, all on one stderr sink, so lines say where they come from.
void setup_logging(const std::string& level) {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto main_logger = std::make_shared<spdlog::logger>("switchboard", sink);
    spdlog::set_default_logger(main_logger);
    for (const char* area : {"gateway", "core", "store", "stomp", "mqtt"})
        spdlog::register_logger(std::make_shared<spdlog::logger>(area, sink));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
    spdlog::set_level(spdlog::level::from_str(level));
    spdlog::flush_on(spdlog::level::info);
}

sb::gateway::config load(const std::string& path) {
    return path.empty() ? sb::gateway::load_config_text(sb::gateway::default_config_text(), "<embedded default>")
                        : sb::gateway::load_config_file(path);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Switchboard: a multi-protocol message broker and protocol gateway"};
    app.require_subcommand(1);

    std::string run_config, run_level;
    auto* run = app.add_subcommand("run", "Start the broker (the embedded default config without -c)");
    run->add_option("-c,--config", run_config, "YAML configuration file")->check(CLI::ExistingFile);
    run->add_option("--log-level", run_level, "Override log.level (trace..off)");

    std::string check_config;
    auto* check = app.add_subcommand("check", "Validate a configuration file and exit");
    check->add_option("-c,--config", check_config, "YAML configuration file")->required();

    std::string user;
    unsigned iterations = 10000;
    auto* passwd = app.add_subcommand("passwd", "Print a users-file line for USER; the password is read from stdin");
    passwd->add_option("user", user, "User name")->required();
    passwd->add_option("--iterations", iterations, "PBKDF2 iterations")->check(CLI::Range(1000u, 10000000u));

    app.add_subcommand("version", "Print the version");

    CLI11_PARSE(app, argc, argv);

    if (app.got_subcommand("version")) {
        std::cout << version_text << "\n";
        return 0;
    }
    if (passwd->parsed()) {
        if (user.empty() || user.find(':') != std::string::npos) {
            std::cerr << "switchboard passwd: a user name must be non-empty and contain no ':'\n";
            return 1;
        }
        std::string password;
        if (!std::getline(std::cin, password) || password.empty()) {
            std::cerr << "switchboard passwd: no password on standard input\n";
            return 1;
        }
        std::cout << sb::core::make_password_line(user, password, iterations) << "\n";
        return 0;
    }

    try {
        if (check->parsed()) {
            const auto cfg = load(check_config);
            std::cout << check_config << ": OK (" << cfg.listeners.size() << " listeners)\n";
            return 0;
        }
        auto cfg = load(run_config);
        if (!run_level.empty()) cfg.log.level = run_level;
        setup_logging(cfg.log.level);
        return sb::gateway::run_server(cfg);
    } catch (const sb::gateway::config_error& e) {
        std::cerr << e.what() << "\n";
        return exit_config_error;
    } catch (const std::exception& e) {
        std::cerr << "switchboard: " << e.what() << "\n";
        return 1;
    }
}
