// gateway/config.cpp — YAML → config, validated; every error names file, line, column and key.
// The only place (with main) where exceptions are normal: yaml-cpp's are caught and re-thrown
// as config_error with the position translated to 1-based line:column.

#include "gateway/config.hpp"
#include "gateway/kernel_adapters.hpp"
#include "gateway/registry.hpp"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <span>
#include <utility>

namespace sb::gateway {
namespace {

using YAML::Node;

// A position in the text, 0-based like yaml-cpp's Mark; printed 1-based.
struct place {
    int line = 0;
    int column = 0;
};

place place_of(const Node& n, place fallback) {
    const YAML::Mark m = n.Mark();
    if (m.is_null() || m.line < 0 || m.column < 0) return fallback;
    return {m.line, m.column};
}

// One key of a mapping with where it and its value are. An empty value (`key:` or `key: ~`)
// is placed at its key: yaml-cpp marks it where the next token starts, often the next line.
struct entry {
    std::string key;
    std::string path;  // "listeners[0].port"
    Node value;
    place key_at;
    place value_at;
};

std::string join(std::span<const std::string_view> words, std::string_view sep) {
    std::string out;
    for (auto w : words) {
        if (!out.empty()) out += sep;
        out += w;
    }
    return out;
}

// How a value is shown after "got": scalars quoted (and shortened), others by kind.
std::string describe(const Node& n) {
    switch (n.Type()) {
        case YAML::NodeType::Null:
        case YAML::NodeType::Undefined: return "an empty value";
        case YAML::NodeType::Sequence: return "a list";
        case YAML::NodeType::Map: return "a mapping";
        case YAML::NodeType::Scalar: break;
    }
    const std::string& s = n.Scalar();
    constexpr std::size_t max_shown = 60;
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size() && i < max_shown; ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    if (s.size() > max_shown) out += "...";
    out += '"';
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Plain decimal digits only: yaml-cpp's own conversion would also take "0x10", "-1" into
// unsigned wrap-around, or "1e3", none of which an operator means for a port.
bool parse_unsigned(std::string_view s, std::uint64_t& out) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && end == s.data() + s.size();
}

// "4096", "64MiB", "64 MiB". IEC suffixes only: "MB" would leave 10^6 vs 2^20 to guesswork.
bool parse_size(std::string_view s, std::uint64_t& out) {
    s = trim(s);
    std::size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    std::uint64_t n = 0;
    if (!parse_unsigned(s.substr(0, digits), n)) return false;
    const std::string_view suffix = trim(s.substr(digits));
    unsigned shift = 0;
    if (suffix.empty()) shift = 0;
    else if (suffix == "KiB") shift = 10;
    else if (suffix == "MiB") shift = 20;
    else if (suffix == "GiB") shift = 30;
    else return false;
    if (n > (std::numeric_limits<std::uint64_t>::max() >> shift)) return false;
    out = n << shift;
    return true;
}

// "3s", "500ms", "2m", "1500" (milliseconds); returns milliseconds.
bool parse_duration_ms(std::string_view s, std::uint64_t& out) {
    s = trim(s);
    std::size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    std::uint64_t n = 0;
    if (!parse_unsigned(s.substr(0, digits), n)) return false;
    const std::string_view unit = trim(s.substr(digits));
    std::uint64_t scale = 1;
    if (unit.empty() || unit == "ms") scale = 1;
    else if (unit == "s") scale = 1000;
    else if (unit == "m" || unit == "min") scale = 60'000;
    else return false;
    if (n > std::numeric_limits<std::uint32_t>::max() / scale) return false;
    out = n * scale;
    return true;
}

std::string range_text(std::uint64_t lo, std::uint64_t hi) {
    if (hi == std::numeric_limits<std::uint64_t>::max()) return ">= " + std::to_string(lo);
    return std::to_string(lo) + ".." + std::to_string(hi);
}

bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

class loader {
public:
    explicit loader(std::string source) : source_(std::move(source)) {}

    config load(std::string_view text) {
        Node root;
        try {
            const std::vector<Node> docs = YAML::LoadAll(std::string(text));
            if (docs.size() > 1)
                fail(place_of(docs[1], {}), "", "only one YAML document is allowed, found " +
                                                    std::to_string(docs.size()));
            if (!docs.empty()) root = docs.front();
        } catch (const YAML::ParserException& e) {
            fail({e.mark.line, e.mark.column}, "", "YAML syntax error: " + e.msg);
        } catch (const YAML::Exception& e) {
            fail({e.mark.line, e.mark.column}, "", std::string("YAML error: ") + e.what());
        }

        config cfg;
        cfg.source = source_;
        bool has_listeners = false;
        for (const entry& e : entries(root, {}, "",
                                      {"workers", "log", "broker", "store", "security", "stomp",
                                       "mqtt", "amqp", "openwire", "listeners", "backends", "admin"})) {
            if (e.key == "workers") cfg.workers = static_cast<unsigned>(integer(e, 0, 256));
            else if (e.key == "log") cfg.log = load_log(e);
            else if (e.key == "broker") cfg.broker = load_broker(e);
            else if (e.key == "store") cfg.store = load_store(e);
            else if (e.key == "security") cfg.security = load_security(e);
            else if (e.key == "stomp") cfg.stomp = load_stomp(e);
            else if (e.key == "mqtt") cfg.mqtt = load_mqtt(e);
            else if (e.key == "amqp") cfg.amqp = load_amqp(e);
            else if (e.key == "openwire") cfg.openwire = load_openwire(e);
            else if (e.key == "listeners") {
                cfg.listeners = load_listeners(e);
                has_listeners = true;
            } else if (e.key == "backends") {
                cfg.backends = load_backends(e);
            } else if (e.key == "admin") {
                for (const entry& a : entries(e.value, e.value_at, e.path, {"address", "port", "stall_timeout"})) {
                    if (a.key == "address") cfg.admin.address = this->text(a);
                    else if (a.key == "stall_timeout") cfg.admin.stall_timeout_ms = duration_ms(a, 10);
                    else cfg.admin.port = static_cast<std::uint16_t>(integer(a, 0, 65535));
                }
            }
        }
        // Routes name backends that may be declared after the listeners.
        for (const auto& ref : backend_refs_) {
            bool found = false;
            for (const auto& b : cfg.backends) found = found || b.name == ref.name;
            if (!found) fail(ref.at, ref.path, "no backend named '" + ref.name + "' (declare it under backends)");
        }
        if (!has_listeners) {
            // The section left out: the same listeners as conf/switchboard.yaml.
            listener_config l;
            l.name = "stomp";
            l.port = 61613;
            cfg.listeners.push_back(std::move(l));
            listener_config m;
            m.name = "mqtt";
            m.proto = protocol::mqtt;
            m.port = 1883;
            m.max_connections = 100000;
            cfg.listeners.push_back(std::move(m));
            listener_config a;
            a.name = "amqp";
            a.proto = protocol::amqp;
            a.port = 5672;
            cfg.listeners.push_back(std::move(a));
            listener_config o;
            o.name = "openwire";
            o.proto = protocol::openwire;
            o.port = 61616;
            cfg.listeners.push_back(std::move(o));
        }
        return cfg;
    }

private:
    [[noreturn]] void fail(place at, std::string_view path, std::string_view what) const {
        std::string msg = source_;
        msg += ':';
        msg += std::to_string(at.line + 1);
        msg += ':';
        msg += std::to_string(at.column + 1);
        msg += ": ";
        if (!path.empty()) {
            msg += path;
            msg += ": ";
        }
        msg += what;
        throw config_error(msg);
    }

    [[noreturn]] void expected(const entry& e, std::string_view what) const {
        fail(e.value_at, e.path, "expected " + std::string(what) + ", got " + describe(e.value));
    }

    // The keys of a mapping in file order. A blank section (`log:`) is an empty mapping.
    // Unknown keys are errors at every level so that a typo never falls back to a default.
    std::vector<entry> entries(const Node& map, place at, const std::string& path,
                               std::initializer_list<std::string_view> known) const {
        return entries(map, at, path, std::span(known.begin(), known.size()));
    }

    std::vector<entry> entries(const Node& map, place at, const std::string& path,
                               std::span<const std::string_view> known) const {
        std::vector<entry> out;
        if (map.IsNull() || !map.IsDefined()) return out;
        if (!map.IsMap())
            fail(place_of(map, at), path,
                 "expected a mapping with keys " + join(known, ", ") + ", got " + describe(map));
        for (auto it = map.begin(); it != map.end(); ++it) {
            entry e;
            e.key_at = place_of(it->first, at);
            if (!it->first.IsScalar())
                fail(e.key_at, path, "expected a plain key, got " + describe(it->first));
            e.key = it->first.Scalar();
            bool is_known = false;
            for (auto k : known) is_known = is_known || k == e.key;
            if (!is_known)
                fail(e.key_at, path,
                     "unknown key '" + e.key + "' (known: " + join(known, ", ") + ")");
            for (const entry& prev : out)
                if (prev.key == e.key)
                    fail(e.key_at, path,
                         "duplicate key '" + e.key + "' (first on line " +
                             std::to_string(prev.key_at.line + 1) + ")");
            e.path = path.empty() ? e.key : path + "." + e.key;
            e.value = it->second;
            e.value_at = it->second.IsNull() ? e.key_at : place_of(it->second, e.key_at);
            out.push_back(std::move(e));
        }
        return out;
    }

    std::uint64_t integer(const entry& e, std::uint64_t lo, std::uint64_t hi) const {
        std::uint64_t v = 0;
        if (!e.value.IsScalar() || !parse_unsigned(e.value.Scalar(), v) || v < lo || v > hi)
            expected(e, "an integer " + range_text(lo, hi));
        return v;
    }

    std::uint32_t uint32(const entry& e, std::uint32_t lo = 0) const {
        return static_cast<std::uint32_t>(integer(e, lo, std::numeric_limits<std::uint32_t>::max()));
    }

    std::size_t size_bytes(const entry& e, std::uint64_t lo) const {
        std::uint64_t v = 0;
        if (!e.value.IsScalar() || !parse_size(e.value.Scalar(), v) || v < lo ||
            v > std::numeric_limits<std::size_t>::max())
            expected(e, "a size in bytes >= " + std::to_string(lo) +
                            " (an integer, optionally followed by KiB, MiB or GiB)");
        return static_cast<std::size_t>(v);
    }

    // A count of things; accepts only plain integers (a KiB suffix would mean nothing here).
    std::size_t count(const entry& e, std::uint64_t lo) const {
        return static_cast<std::size_t>(integer(e, lo, std::numeric_limits<std::size_t>::max()));
    }

    double real(const entry& e, double lo, std::string_view lo_text) const {
        double v = 0;
        bool ok = e.value.IsScalar();
        if (ok) {
            const std::string_view s = trim(e.value.Scalar());
            const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
            ok = !s.empty() && ec == std::errc{} && end == s.data() + s.size() && std::isfinite(v) &&
                 v >= lo;
        }
        if (!ok) expected(e, "a number >= " + std::string(lo_text));
        return v;
    }

    bool boolean(const entry& e) const {
        if (e.value.IsScalar()) {
            std::string s = e.value.Scalar();
            for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            if (s == "true" || s == "yes" || s == "on") return true;
            if (s == "false" || s == "no" || s == "off") return false;
        }
        expected(e, "true or false");
    }

    // A string; an empty value reads as "".
    std::string text(const entry& e) const {
        if (e.value.IsNull()) return {};
        if (!e.value.IsScalar()) expected(e, "a string");
        return e.value.Scalar();
    }

    template <class Enum>
    Enum choice(const entry& e, std::initializer_list<std::pair<std::string_view, Enum>> known,
                std::initializer_list<std::string_view> not_yet = {}) const {
        std::string names;
        for (const auto& [name, value] : known) {
            if (e.value.IsScalar() && e.value.Scalar() == name) return value;
            if (!names.empty()) names += ", ";
            names += name;
        }
        if (e.value.IsScalar())
            for (auto later : not_yet)
                if (e.value.Scalar() == later)
                    fail(e.value_at, e.path,
                         "'" + std::string(later) + "' is not supported yet (supported: " + names + ")");
        expected(e, "one of " + names);
    }

    log_config load_log(const entry& section) const {
        log_config out;
        for (const entry& e : entries(section.value, section.key_at, section.path, {"level"})) {
            bool ok = false;
            std::string names;
            for (auto l : log_levels) {
                ok = ok || (e.value.IsScalar() && e.value.Scalar() == l);
                names += (names.empty() ? "" : ", ") + std::string(l);
            }
            if (!ok) expected(e, "one of " + names);
            out.level = e.value.Scalar();
        }
        return out;
    }

    broker_config load_broker(const entry& section) const {
        broker_config out;
        for (const entry& e :
             entries(section.value, section.key_at, section.path,
                     {"name", "max_redeliveries", "dead_letter", "default_prefetch",
                      "queue_memory_limit", "topic_max_pending", "slow_consumer_timeout",
                      // grp
                      "advisories",
                      // sched
                      "scheduler_support", "virtual_topic", "dead_letter_policy"})) {
            if (e.key == "name") {
                out.name = text(e);
                if (out.name.empty()) expected(e, "a non-empty name");
            } else if (e.key == "max_redeliveries") {
                out.max_redeliveries = uint32(e);
            } else if (e.key == "dead_letter") {
                out.dead_letter = choice<dead_letter_policy>(
                    e, {{"shared", dead_letter_policy::shared},
                        {"per_destination", dead_letter_policy::per_destination}});
            } else if (e.key == "default_prefetch") {
                out.default_prefetch = uint32(e, 1);  // 0 would stall every consumer
            } else if (e.key == "queue_memory_limit") {
                out.queue_memory_limit = size_bytes(e, 1024);
            } else if (e.key == "topic_max_pending") {
                out.topic_max_pending = count(e, 1);
            } else if (e.key == "slow_consumer_timeout") {
                out.slow_consumer_timeout_ms = duration_ms(e, 0);
            } else if (e.key == "advisories") {
                out.advisories = boolean(e);
            } else {
                load_broker_sched(e, out);
            }
        }
        return out;
    }

    // sched: broker.scheduler_support, .virtual_topic, .dead_letter_policy (docs/activemq-*.md).
    void load_broker_sched(const entry& e, broker_config& out) const {
        auto pattern = [&](const entry& p) {
            std::string v = text(p);
            if (v.empty() || v.find_first_of(" ,/") != std::string::npos) expected(p, "a destination name pattern");
            return v;
        };
        if (e.key == "scheduler_support") {
            out.scheduler_support = boolean(e);
        } else if (e.key == "virtual_topic") {
            for (const entry& v : entries(e.value, e.value_at, e.path, {"name", "prefix", "postfix"})) {
                if (v.key == "name") out.virtual_topic_name = text(v);   // "" = no virtual topics
                else if (v.key == "prefix") out.virtual_topic_prefix = text(v);
                else out.virtual_topic_postfix = text(v);
            }
        } else if (e.key == "dead_letter_policy") {
            // The broker-wide values first: rules start from them.
            const entry* rules = nullptr;
            const auto all = entries(e.value, e.value_at, e.path,
                                     {"queue", "prefix", "suffix", "expired", "non_persistent", "rules"});
            for (const entry& p : all) {
                if (p.key == "queue") out.dead_letter_queue = pattern(p);
                else if (p.key == "prefix") out.dead_letter_prefix = text(p);
                else if (p.key == "suffix") out.dead_letter_suffix = text(p);
                else if (p.key == "expired") out.dead_letter_expired = boolean(p);
                else if (p.key == "non_persistent") out.dead_letter_non_persistent = boolean(p);
                else rules = &p;
            }
            if (!rules || rules->value.IsNull()) return;
            if (!rules->value.IsSequence()) expected(*rules, "a list of rules");
            for (std::size_t i = 0; i < rules->value.size(); ++i) {
                const std::string path = rules->path + "[" + std::to_string(i) + "]";
                const place at = place_of(rules->value[i], rules->value_at);
                broker_config::dead_letter_rule r;
                r.strategy = out.dead_letter;
                r.queue = out.dead_letter_queue;
                r.prefix = out.dead_letter_prefix;
                r.suffix = out.dead_letter_suffix;
                r.expired = out.dead_letter_expired;
                r.non_persistent = out.dead_letter_non_persistent;
                bool has_pattern = false;
                for (const entry& p : entries(rules->value[i], at, path,
                                              {"pattern", "strategy", "queue", "prefix", "suffix", "expired",
                                               "non_persistent"})) {
                    if (p.key == "pattern") {
                        r.pattern = pattern(p);
                        has_pattern = true;
                    } else if (p.key == "strategy") {
                        r.strategy = choice<dead_letter_policy>(
                            p, {{"shared", dead_letter_policy::shared},
                                {"per_destination", dead_letter_policy::per_destination}});
                    } else if (p.key == "queue") {
                        r.queue = pattern(p);
                    } else if (p.key == "prefix") {
                        r.prefix = text(p);
                    } else if (p.key == "suffix") {
                        r.suffix = text(p);
                    } else if (p.key == "expired") {
                        r.expired = boolean(p);
                    } else {
                        r.non_persistent = boolean(p);
                    }
                }
                if (!has_pattern) fail(at, path + ".pattern", "missing (expected a queue name pattern)");
                out.dead_letter_policies.push_back(std::move(r));
            }
        }
    }

    store_config load_store(const entry& section) const {
        store_config out;
        for (const entry& e :
             entries(section.value, section.key_at, section.path, {"type", "dir", "sync", "segment_size"})) {
            if (e.key == "type") {
                out.type = choice<store_type>(e, {{"memory", store_type::memory}, {"journal", store_type::journal}});
            } else if (e.key == "dir") {
                out.dir = text(e);
                if (out.dir.empty()) expected(e, "a directory path");
            } else if (e.key == "sync") {
                // always | never | batch | batch(N) (N ms between syncs, 1..1000)
                const std::string v = e.value.IsScalar() ? e.value.Scalar() : std::string();
                if (v == "always") out.sync = sync_policy::always;
                else if (v == "never") out.sync = sync_policy::never;
                else if (v == "batch") out.sync = sync_policy::batch;
                else if (v.starts_with("batch(") && v.ends_with(")")) {
                    auto n = v.substr(6, v.size() - 7);
                    if (n.ends_with("ms")) n.resize(n.size() - 2);
                    if (n.empty() || n.size() > 4 || n.find_first_not_of("0123456789") != std::string::npos ||
                        std::stoul(n) < 1 || std::stoul(n) > 1000)
                        expected(e, "always, never, batch or batch(N) with N in 1..1000 ms");
                    out.sync = sync_policy::batch;
                    out.batch_ms = static_cast<std::uint32_t>(std::stoul(n));
                } else {
                    expected(e, "always, never, batch or batch(N) with N in 1..1000 ms");
                }
            } else if (e.key == "segment_size") {
                out.segment_size = size_bytes(e, 1 << 20);
            }
        }
        return out;
    }

    security_config load_security(const entry& section) const {
        security_config out;
        place anonymous_at = section.key_at;
        for (const entry& e : entries(section.value, section.key_at, section.path,
                                      {"allow_anonymous", "users_file", "auth_threads"})) {
            if (e.key == "allow_anonymous") {
                out.allow_anonymous = boolean(e);
                anonymous_at = e.value_at;
            } else if (e.key == "users_file") {
                out.users_file = text(e);
            } else if (e.key == "auth_threads") {
                out.auth_threads = static_cast<std::uint32_t>(integer(e, 1, 64));
            }
        }
        // Without a users file there is nobody to check a password against; refusing here
        // beats a broker that starts and then rejects every client.
        if (!out.allow_anonymous && out.users_file.empty())
            fail(anonymous_at, "security.allow_anonymous",
                 "false needs security.users_file (otherwise nobody can log in)");
        return out;
    }

    stomp_config load_stomp(const entry& section) const {
        stomp_config out;
        for (const entry& e :
             entries(section.value, section.key_at, section.path,
                     {"max_frame_bytes", "max_headers", "max_header_bytes", "connect_timeout_ms",
                      "heartbeat_floor_ms", "heartbeat_grace", "write_high_watermark", "max_unconfirmed_sends"})) {
            if (e.key == "max_frame_bytes") out.max_frame_bytes = size_bytes(e, 1024);
            else if (e.key == "max_headers") out.max_headers = count(e, 1);
            else if (e.key == "max_header_bytes") out.max_header_bytes = size_bytes(e, 64);
            else if (e.key == "connect_timeout_ms") out.connect_timeout_ms = uint32(e, 1);
            else if (e.key == "heartbeat_floor_ms") out.heartbeat_floor_ms = uint32(e);
            else if (e.key == "heartbeat_grace") out.heartbeat_grace = real(e, 1.0, "1.0");
            else if (e.key == "write_high_watermark") out.write_high_watermark = size_bytes(e, 4096);
            else if (e.key == "max_unconfirmed_sends") out.max_unconfirmed_sends = count(e, 1);
        }
        return out;
    }

    mqtt_config load_mqtt(const entry& section) const {
        mqtt_config out;
        for (const entry& e :
             entries(section.value, section.key_at, section.path,
                     {"max_packet_size", "receive_maximum", "topic_alias_maximum", "max_keepalive_s",
                      "connect_timeout_ms", "max_queued_messages", "max_session_expiry_s", "retain_available"})) {
            if (e.key == "max_packet_size") out.max_packet_size = size_bytes(e, 64);
            else if (e.key == "receive_maximum") out.receive_maximum = static_cast<std::uint16_t>(integer(e, 1, 65535));
            else if (e.key == "topic_alias_maximum") out.topic_alias_maximum = static_cast<std::uint16_t>(integer(e, 0, 65535));
            else if (e.key == "max_keepalive_s") out.max_keepalive_s = static_cast<std::uint16_t>(integer(e, 1, 65535));
            else if (e.key == "connect_timeout_ms") out.connect_timeout_ms = uint32(e, 1);
            else if (e.key == "max_queued_messages") out.max_queued_messages = count(e, 1);
            else if (e.key == "max_session_expiry_s") out.max_session_expiry_s = uint32(e);
            else if (e.key == "retain_available") out.retain_available = boolean(e);
        }
        return out;
    }

    amqp_config load_amqp(const entry& section) const {
        amqp_config out;
        for (const entry& e : entries(section.value, section.key_at, section.path,
                                      {"max_frame_size", "channel_max", "idle_timeout_ms", "connect_timeout_ms",
                                       "link_credit", "max_unconfirmed_sends"})) {
            // AMQP 1.0 §2.7.1: max-frame-size is at least 512.
            if (e.key == "max_frame_size") out.max_frame_size = static_cast<std::uint32_t>(integer(e, 512, 0xFFFFFFFF));
            else if (e.key == "channel_max") out.channel_max = static_cast<std::uint16_t>(integer(e, 1, 65535));
            else if (e.key == "idle_timeout_ms") out.idle_timeout_ms = uint32(e);
            else if (e.key == "connect_timeout_ms") out.connect_timeout_ms = uint32(e, 1);
            else if (e.key == "link_credit") out.link_credit = static_cast<std::uint32_t>(integer(e, 1, 1000000));
            else if (e.key == "max_unconfirmed_sends") out.max_unconfirmed_sends = count(e, 1);
        }
        return out;
    }

    openwire_config load_openwire(const entry& section) const {
        openwire_config out;
        for (const entry& e : entries(section.value, section.key_at, section.path,
                                      {"max_frame_size", "max_inactivity_ms", "max_inactivity_initial_delay_ms",
                                       "connect_timeout_ms", "max_unconfirmed_sends"})) {
            // A WireFormatInfo alone is a few hundred bytes.
            if (e.key == "max_frame_size") out.max_frame_size = static_cast<std::uint32_t>(integer(e, 1024, 0x7FFFFFFF));
            else if (e.key == "max_inactivity_ms") out.max_inactivity_ms = uint32(e);
            else if (e.key == "max_inactivity_initial_delay_ms") out.max_inactivity_initial_delay_ms = uint32(e);
            else if (e.key == "connect_timeout_ms") out.connect_timeout_ms = uint32(e, 1);
            else if (e.key == "max_unconfirmed_sends") out.max_unconfirmed_sends = count(e, 1);
        }
        return out;
    }

    std::vector<listener_config> load_listeners(const entry& section) const {
        if (!section.value.IsSequence() || section.value.size() == 0)
            fail(section.value_at, section.path,
                 "expected a list of at least one listener, got " + describe(section.value));

        struct seen {
            place name_at;
            place port_at;
        };
        std::vector<listener_config> out;
        std::vector<seen> where;
        for (std::size_t i = 0; i < section.value.size(); ++i) {
            const Node item = section.value[i];
            const std::string path = section.path + "[" + std::to_string(i) + "]";
            const place item_at = place_of(item, section.value_at);
            if (!item.IsMap())
                fail(item_at, path,
                     "expected a mapping with keys name, protocol, address, port, max_connections, got " +
                         describe(item));
            listener_config l;
            seen at{item_at, item_at};
            bool has_name = false, has_port = false;
            place proto_at = item_at;
            for (const entry& e : entries(item, item_at, path,
                                          {"name", "protocol", "address", "port", "max_connections", "tls",
                                           "routes", "backend", "detect_timeout"})) {
                if (e.key == "name") {
                    l.name = text(e);
                    // Names show up in logs, metrics labels and admin URLs.
                    bool ok = !l.name.empty();
                    for (char c : l.name) ok = ok && is_name_char(c);
                    if (!ok) expected(e, "a non-empty name of letters, digits, '-', '_' or '.'");
                    has_name = true;
                    at.name_at = e.value_at;
                } else if (e.key == "protocol") {
                    l.proto = choice<protocol>(e, {{"stomp", protocol::stomp}, {"mqtt", protocol::mqtt},
                                                   {"amqp", protocol::amqp}, {"openwire", protocol::openwire},
                                                   {"auto", protocol::automatic}, {"tcp", protocol::tcp}},
                                               {"websocket"});
                    proto_at = e.value_at;
                } else if (e.key == "tls") {
                    l.tls = true;
                    l.tls_settings = load_tls(e);
                } else if (e.key == "routes") {
                    l.routes = load_routes(e, l.fallback);
                } else if (e.key == "backend") {
                    entry r = e;
                    r.value = YAML::Node("backend:" + text(e));
                    l.fallback = load_route(r);
                    backend_refs_.back().at = e.value_at;
                } else if (e.key == "detect_timeout") {
                    l.detect_timeout_ms = duration_ms(e, 1);
                } else if (e.key == "address") {
                    l.address = text(e);
                    bool ok = !l.address.empty();
                    for (char c : l.address) ok = ok && c != ' ' && c != '\t';
                    if (!ok) expected(e, "an IP address or host name");
                } else if (e.key == "port") {
                    l.port = static_cast<std::uint16_t>(integer(e, 1, 65535));
                    has_port = true;
                    at.port_at = e.value_at;
                } else if (e.key == "max_connections") {
                    l.max_connections = count(e, 1);
                }
            }
            if (!has_name) fail(item_at, path + ".name", "missing (every listener needs a name)");
            if (!has_port) fail(item_at, path + ".port", "missing (expected an integer 1..65535)");
            if (l.proto == protocol::tcp && (!l.fallback || l.fallback->to_kernel()))
                fail(proto_at, path + ".protocol", "tcp relays bytes to a backend: set backend: NAME");

            for (std::size_t j = 0; j < out.size(); ++j) {
                const listener_config& o = out[j];
                if (o.name == l.name)
                    fail(at.name_at, path + ".name",
                         "duplicate listener name '" + l.name + "' (first on line " +
                             std::to_string(where[j].name_at.line + 1) + ")");
                // A wildcard address takes the port on every interface (dual-stack for "::").
                const bool overlap = o.address == l.address || o.address == "0.0.0.0" ||
                                     l.address == "0.0.0.0" || o.address == "::" || l.address == "::";
                if (o.port == l.port && overlap)
                    fail(at.port_at, path + ".port",
                         l.address + ":" + std::to_string(l.port) + " is already used by listener '" +
                             o.name + "' (" + o.address + ":" + std::to_string(o.port) + ", line " +
                             std::to_string(where[j].port_at.line + 1) + ")");
            }
            out.push_back(std::move(l));
            where.push_back(at);
        }
        return out;
    }

    struct backend_ref {
        std::string name;
        std::string path;
        place at;
    };
    mutable std::vector<backend_ref> backend_refs_;

    std::uint32_t duration_ms(const entry& e, std::uint64_t lo) const {
        std::uint64_t v = 0;
        if (!e.value.IsScalar() || !parse_duration_ms(e.value.Scalar(), v) || v < lo)
            expected(e, "a duration >= " + std::to_string(lo) + " ms (\"500ms\", \"3s\", \"1m\" or milliseconds)");
        return static_cast<std::uint32_t>(v);
    }

    // A name for logs, metrics labels and admin URLs.
    std::string name_of(const entry& e) const {
        std::string n = text(e);
        bool ok = !n.empty();
        for (char c : n) ok = ok && is_name_char(c);
        if (!ok) expected(e, "a non-empty name of letters, digits, '-', '_' or '.'");
        return n;
    }

    // `kernel`, or `{ backend: NAME }`, or the shorthand `backend:NAME`.
    route load_route(const entry& e) const {
        route r;
        if (e.value.IsScalar() && e.value.Scalar() == "kernel") return r;
        if (e.value.IsScalar() && e.value.Scalar().starts_with("backend:")) {
            r.backend = std::string(trim(std::string_view(e.value.Scalar()).substr(8)));
        } else if (e.value.IsMap()) {
            for (const entry& k : entries(e.value, e.value_at, e.path, {"backend"})) r.backend = name_of(k);
        }
        if (r.backend.empty()) expected(e, "kernel or { backend: NAME }");
        backend_refs_.push_back({r.backend, e.path, e.value_at});
        return r;
    }

    std::array<std::optional<route>, wire_count> load_routes(const entry& section, std::optional<route>& fallback) const {
        std::array<std::optional<route>, wire_count> out{};
        std::vector<std::string_view> keys;   // every protocol of the registry, then "default"
        for (const auto* p : protocols()) keys.push_back(p->name);
        keys.push_back("default");
        for (const entry& e : entries(section.value, section.value_at, section.path, keys)) {
            route r = load_route(e);
            if (e.key == "default") {
                fallback = std::move(r);
                continue;
            }
            const wire w = protocol_named(e.key)->id;
            if (r.to_kernel() && !kernel_speaks(w))
                fail(e.value_at, e.path, "the kernel has no " + e.key + " adapter yet: route it to a backend");
            out[static_cast<std::size_t>(w)] = std::move(r);
        }
        return out;
    }

    tls_config load_tls(const entry& section) const {
        tls_config out;
        for (const entry& e : entries(section.value, section.value_at, section.path,
                                      {"cert", "key", "min_version", "ciphers", "ciphersuites", "groups", "alpn",
                                       "verify_client", "ca", "user_from", "reload_interval"})) {
            if (e.key == "cert") out.cert_file = text(e);
            else if (e.key == "key") out.key_file = text(e);
            else if (e.key == "ca") out.ca_file = text(e);
            else if (e.key == "ciphers") out.ciphers = text(e);
            else if (e.key == "ciphersuites") out.ciphersuites = text(e);
            else if (e.key == "groups") out.groups = text(e);
            else if (e.key == "reload_interval") out.reload_interval_ms = duration_ms(e, 0);
            else if (e.key == "min_version") {
                // YAML reads 1.2 as a number; its scalar text is what counts.
                out.min_version = text(e);
                if (out.min_version != "1.2" && out.min_version != "1.3") expected(e, "1.2 or 1.3 (older TLS is refused)");
            } else if (e.key == "verify_client") {
                out.verify = choice<verify_client>(e, {{"none", verify_client::none},
                                                       {"optional", verify_client::optional},
                                                       {"required", verify_client::required}});
            } else if (e.key == "user_from") {
                out.user_from = choice<cert_field>(e, {{"cn", cert_field::cn}, {"dn", cert_field::dn},
                                                       {"san_dns", cert_field::san_dns},
                                                       {"san_email", cert_field::san_email},
                                                       {"san_uri", cert_field::san_uri}});
            } else if (e.key == "alpn") {
                out.alpn = string_list(e);
                for (const auto& a : out.alpn)
                    if (a.empty() || a.size() > 255) expected(e, "a list of protocol names of 1..255 bytes");
            }
        }
        if (out.cert_file.empty()) fail(section.value_at, section.path + ".cert", "missing (a PEM certificate chain file)");
        if (out.key_file.empty()) fail(section.value_at, section.path + ".key", "missing (a PEM private key file)");
        if (out.verify != verify_client::none && out.ca_file.empty())
            fail(section.value_at, section.path + ".ca", "missing (verify_client needs the PEM CA file client certificates are checked against)");
        return out;
    }

    // A list of strings, or one string (a list of one).
    std::vector<std::string> string_list(const entry& e) const {
        std::vector<std::string> out;
        if (e.value.IsScalar()) return {e.value.Scalar()};
        if (!e.value.IsSequence()) expected(e, "a list of strings");
        for (std::size_t i = 0; i < e.value.size(); ++i) {
            if (!e.value[i].IsScalar()) expected(e, "a list of strings");
            out.push_back(e.value[i].Scalar());
        }
        return out;
    }

    check_config load_check(const entry& section) const {
        check_config out;
        for (const entry& e : entries(section.value, section.value_at, section.path,
                                      {"type", "interval", "timeout", "fall", "rise", "path", "status"})) {
            if (e.key == "type") {
                out.type = choice<check_type>(e, {{"none", check_type::none}, {"tcp", check_type::tcp},
                                                  {"mqtt", check_type::mqtt}, {"stomp", check_type::stomp},
                                                  {"amqp", check_type::amqp}, {"openwire", check_type::openwire},
                                                  {"http", check_type::http}});
            } else if (e.key == "interval") out.interval_ms = duration_ms(e, 10);
            else if (e.key == "timeout") out.timeout_ms = duration_ms(e, 1);
            else if (e.key == "fall") out.fall = static_cast<std::uint32_t>(integer(e, 1, 1000));
            else if (e.key == "rise") out.rise = static_cast<std::uint32_t>(integer(e, 1, 1000));
            else if (e.key == "path") {
                out.http_path = text(e);
                if (!out.http_path.starts_with('/') || out.http_path.find_first_of(" \r\n") != std::string::npos)
                    expected(e, "an absolute path without spaces (\"/health\")");
            } else if (e.key == "status") out.http_status = static_cast<std::uint32_t>(integer(e, 100, 599));
        }
        return out;
    }

    server_config load_server(const Node& item, const std::string& path, place item_at) const {
        server_config s;
        bool has_address = false;
        for (const entry& e : entries(item, item_at, path, {"name", "address", "backup", "max_connections", "weight"})) {
            if (e.key == "name") s.name = name_of(e);
            else if (e.key == "address") {
                // host:port or [v6]:port
                const std::string a = text(e);
                const auto colon = a.rfind(':');
                std::uint64_t port = 0;
                std::string host = colon == std::string::npos ? std::string() : a.substr(0, colon);
                if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
                if (host.empty() || host.find_first_of(" \t") != std::string::npos ||
                    !parse_unsigned(std::string_view(a).substr(colon + 1), port) || port < 1 || port > 65535)
                    expected(e, "HOST:PORT (\"127.0.0.1:61616\", \"[::1]:1883\", \"broker-a:5672\")");
                s.host = host;
                s.port = static_cast<std::uint16_t>(port);
                has_address = true;
            } else if (e.key == "backup") s.backup = boolean(e);
            else if (e.key == "max_connections") s.max_connections = count(e, 0);
            else if (e.key == "weight") s.weight = static_cast<std::uint32_t>(integer(e, 1, 256));
        }
        if (!has_address) fail(item_at, path + ".address", "missing (expected HOST:PORT)");
        if (s.name.empty()) s.name = s.host + ":" + std::to_string(s.port);
        return s;
    }

    std::vector<backend_config> load_backends(const entry& section) const {
        if (!section.value.IsSequence())
            fail(section.value_at, section.path, "expected a list of backends, got " + describe(section.value));
        std::vector<backend_config> out;
        for (std::size_t i = 0; i < section.value.size(); ++i) {
            const Node item = section.value[i];
            const std::string path = section.path + "[" + std::to_string(i) + "]";
            const place item_at = place_of(item, section.value_at);
            backend_config b;
            bool has_servers = false;
            place name_at = item_at;
            for (const entry& e : entries(item, item_at, path,
                                          {"name", "balance", "check", "servers", "connect_timeout", "retries",
                                           "idle_timeout", "send_proxy", "on_server_up"})) {
                if (e.key == "name") {
                    b.name = name_of(e);
                    name_at = e.value_at;
                } else if (e.key == "balance") {
                    b.balance = choice<balance_mode>(e, {{"first", balance_mode::first},
                                                         {"roundrobin", balance_mode::roundrobin},
                                                         {"leastconn", balance_mode::leastconn}});
                } else if (e.key == "check") b.check = load_check(e);
                else if (e.key == "connect_timeout") b.connect_timeout_ms = duration_ms(e, 1);
                else if (e.key == "retries") b.retries = static_cast<std::uint32_t>(integer(e, 0, 1000));
                else if (e.key == "idle_timeout") b.idle_timeout_ms = duration_ms(e, 0);
                else if (e.key == "send_proxy") {
                    b.send_proxy = choice<proxy_protocol>(e, {{"none", proxy_protocol::none},
                                                              {"v1", proxy_protocol::v1}, {"v2", proxy_protocol::v2}});
                } else if (e.key == "on_server_up") {
                    b.on_server_up = choice<server_up_action>(e, {{"none", server_up_action::none},
                                                                  {"close_backups", server_up_action::close_backups}});
                } else if (e.key == "servers") {
                    if (!e.value.IsSequence() || e.value.size() == 0)
                        expected(e, "a list of at least one server");
                    for (std::size_t j = 0; j < e.value.size(); ++j) {
                        const std::string spath = e.path + "[" + std::to_string(j) + "]";
                        const place sat = place_of(e.value[j], e.value_at);
                        if (!e.value[j].IsMap())
                            fail(sat, spath, "expected a mapping with keys name, address, backup, max_connections, weight");
                        server_config s = load_server(e.value[j], spath, sat);
                        for (const auto& o : b.servers)
                            if (o.name == s.name) fail(sat, spath + ".name", "duplicate server name '" + s.name + "'");
                        b.servers.push_back(std::move(s));
                    }
                    has_servers = true;
                }
            }
            if (b.name.empty()) fail(item_at, path + ".name", "missing (every backend needs a name)");
            if (!has_servers) fail(item_at, path + ".servers", "missing (a list of at least one server)");
            if (b.check.type != check_type::none && b.check.timeout_ms > b.check.interval_ms)
                fail(item_at, path + ".check.timeout", "must not exceed check.interval");
            for (const auto& o : out)
                if (o.name == b.name) fail(name_at, path + ".name", "duplicate backend name '" + b.name + "'");
            out.push_back(std::move(b));
        }
        return out;
    }

    std::string source_;
};

}  // namespace

config load_config_text(std::string_view yaml, std::string source_name) {
    return loader(std::move(source_name)).load(yaml);
}

config load_config_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw config_error("cannot open " + path + ": " + std::strerror(errno));
    std::string text;
    char buf[8192];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    const bool failed = std::ferror(f) != 0;
    const int err = errno;  // e.g. EISDIR: fopen of a directory succeeds, the read fails
    std::fclose(f);
    if (failed) throw config_error("cannot read " + path + ": " + std::strerror(err));
    return load_config_text(text, path);
}

}  // namespace sb::gateway
