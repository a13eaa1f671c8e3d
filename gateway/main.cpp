// gateway/main.cpp — the `switchboard` command line: run, check, passwd, version.
//
// Exit codes: 0 success, 1 runtime failure (a port that cannot be bound, a store that cannot
// open), 2 usage or configuration error. Every failure is one line on stderr.
#include <algorithm>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/security/authenticator.hpp"
#include "gateway/config.hpp"
#include "gateway/server.hpp"

namespace {

constexpr const char* version_text = "switchboard 0.1.0";
constexpr int exit_runtime_error = 1;
constexpr int exit_usage_error = 2;   // also a configuration error

// The level column: the names of the config and --log-level ("warn", not spdlog's "warning"),
// padded to 5 like spdlog's %-5l.
class level_flag final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& m, const std::tm&, spdlog::memory_buf_t& dest) override {
        const auto i = static_cast<std::size_t>(m.level);
        const std::string_view name = i < sb::gateway::log_levels.size() ? sb::gateway::log_levels[i] : "?";
        dest.append(name.data(), name.data() + name.size());
        for (auto n = name.size(); n < 5; ++n) dest.push_back(' ');
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<level_flag>(); }
};

// One named logger per area, all on one stderr sink, so lines say where they come from.
// `level` is one of log_levels (the config loader and the command line checked it).
void setup_logging(const std::string& level) {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto main_logger = std::make_shared<spdlog::logger>("switchboard", sink);
    spdlog::set_default_logger(main_logger);
    for (const char* area : {"gateway", "core", "store", "stomp", "mqtt"})
        spdlog::register_logger(std::make_shared<spdlog::logger>(area, sink));
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<level_flag>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%*%$ [%n] %v");
    spdlog::set_formatter(std::move(formatter));
    auto lvl = spdlog::level::info;
    for (std::size_t i = 0; i < sb::gateway::log_levels.size(); ++i)
        if (sb::gateway::log_levels[i] == level) lvl = static_cast<spdlog::level::level_enum>(i);
    spdlog::set_level(lvl);
    spdlog::flush_on(spdlog::level::info);
}

sb::gateway::config load(const std::string& path) {
    return path.empty() ? sb::gateway::load_config_text(sb::gateway::default_config_text(), "<embedded default>")
                        : sb::gateway::load_config_file(path);
}

int usage_error(const std::string& what) {
    std::cerr << "switchboard: " << what << " (see switchboard --help)\n";
    return exit_usage_error;
}

// A command line CLI11 rejected: one line, naming a mistyped command as such.
int parse_error(const CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
    std::vector<std::string> names;
    std::string commands;
    for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
        names.push_back(sub->get_name());
        commands += (commands.empty() ? "" : ", ") + sub->get_name();
    }
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg.empty() || arg.front() == '-') continue;
        if (std::find(names.begin(), names.end(), arg) == names.end())
            return usage_error("unknown command '" + arg + "'; commands: " + commands);
        break;
    }
    if (argc < 2) return usage_error("a command is required: " + commands);
    std::string what = e.what();
    for (char& c : what)
        if (c == '\n') c = ' ';
    while (!what.empty() && what.back() == ' ') what.pop_back();
    if (what == "A subcommand is required") return usage_error("a command is required: " + commands);
    return usage_error(what);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Switchboard: a multi-protocol message broker and protocol gateway"};
    app.require_subcommand(1);
    app.set_version_flag("--version", version_text);

    std::string levels;
    for (auto l : sb::gateway::log_levels) levels += (levels.empty() ? "" : ", ") + std::string(l);
    std::string run_config, run_level;
    auto* run = app.add_subcommand("run", "Start the broker (the embedded default config without -c)");
    run->add_option("-c,--config", run_config, "YAML configuration file");
    run->add_option("--log-level", run_level, "Override log.level: one of " + levels)
        ->check(CLI::Validator(
            [levels](std::string& v) -> std::string {
                for (auto l : sb::gateway::log_levels)
                    if (v == l) return {};
                return "unknown level '" + v + "', expected one of " + levels;
            },
            "LEVEL"));

    std::string check_config;
    auto* check = app.add_subcommand("check", "Validate a configuration file and what it names (certificates, "
                                              "users file, data directory, backend hosts), then exit");
    check->add_option("-c,--config", check_config, "YAML configuration file")->required();

    std::string user;
    unsigned iterations = 10000;
    auto* passwd = app.add_subcommand("passwd", "Print a users-file line for USER; the password is read from stdin");
    passwd->add_option("user", user, "User name")->required();
    passwd->add_option("--iterations", iterations, "PBKDF2 iterations")->check(CLI::Range(1000u, 10000000u));

    app.add_subcommand("version", "Print the version");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        return parse_error(app, e, argc, argv);
    }

    if (app.got_subcommand("version")) {
        std::cout << version_text << "\n";
        return 0;
    }
    if (passwd->parsed()) {
        if (const char* problem = sb::core::user_name_problem(user)) {
            std::cerr << "switchboard passwd: " << problem << "\n";
            return exit_usage_error;
        }
        std::string password;
        if (!std::getline(std::cin, password) || password.empty()) {
            std::cerr << "switchboard passwd: no password on standard input\n";
            return exit_usage_error;
        }
        try {
            std::cout << sb::core::make_password_line(user, password, iterations) << "\n";
        } catch (const std::invalid_argument& e) {   // a user name the users file cannot hold
            std::cerr << "switchboard passwd: " << e.what() << "\n";
            return exit_usage_error;
        } catch (const std::exception& e) {
            std::cerr << "switchboard passwd: " << e.what() << "\n";
            return exit_runtime_error;
        }
        return 0;
    }

    try {
        if (check->parsed()) {
            const auto cfg = load(check_config);
            sb::gateway::check_server(cfg);
            std::cout << check_config << ": OK (" << cfg.listeners.size() << " listeners)\n";
            return 0;
        }
        auto cfg = load(run_config);
        if (!run_level.empty()) cfg.log.level = run_level;
        setup_logging(cfg.log.level);
        return sb::gateway::run_server(cfg);
    } catch (const sb::gateway::config_error& e) {
        std::cerr << e.what() << "\n";
        return exit_usage_error;
    } catch (const std::exception& e) {
        std::cerr << "switchboard: " << e.what() << "\n";
        return exit_runtime_error;
    }
}
