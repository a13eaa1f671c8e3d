// tests/unit/gateway/front_test.cpp — the gateway's pure parts: protocol detection from first
// bytes, routing, server choice per balance mode, health-check probes, PROXY headers and the
// refusals a client gets when no server is available.

#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "gateway/backend.hpp"
#include "gateway/detect.hpp"
#include "gateway/front.hpp"
#include "gateway/health_check.hpp"
#include "gateway/relay.hpp"

using namespace sb::gateway;

namespace {

detection sniff(std::string_view s) { return detect(std::as_bytes(std::span(s.data(), s.size()))); }

bool known_as(std::string_view s, wire w) {
    const auto d = sniff(s);
    return d.result == sniff_result::known && d.proto == w;
}

backend make_backend(balance_mode m, std::vector<server_config> servers) {
    backend_config c;
    c.name = "b";
    c.balance = m;
    c.servers = std::move(servers);
    return backend(c);
}

server_config server(std::string name, std::uint16_t port, bool backup = false, std::size_t max = 0, std::uint32_t w = 1) {
    return server_config{std::move(name), "127.0.0.1", port, backup, max, w};
}

}  // namespace

TEST_CASE("detection: each protocol from its first bytes, decided as early as possible", "[gateway][detect]") {
    CHECK(known_as("\x10", wire::mqtt));
    CHECK(known_as(std::string_view("\x10\x0c\x00\x04MQTT\x04\x02", 10), wire::mqtt));
    CHECK(known_as("CONNECT\n", wire::stomp));
    CHECK(known_as("STOMP\r\naccept-version:1.2", wire::stomp));
    CHECK(known_as("\n\nCONNECT\n", wire::stomp));          // heart-beats first
    CHECK(known_as(std::string_view("AMQP\x00\x01\x00\x00", 8), wire::amqp));
    CHECK(known_as(std::string_view("AMQP\x03", 5), wire::amqp));
    CHECK(known_as(std::string_view("\x00\x00\x01\x0a\x01" "ActiveMQ\x00", 14), wire::openwire));
    CHECK(known_as("GET /mqtt HTTP/1.1\r\n", wire::http));
    CHECK(known_as("CONNECT host:1 HTTP/1.1\r\n", wire::http));   // HTTP CONNECT, not STOMP

    // Not enough yet: wait for more.
    for (std::string_view partial : {"", "C", "CONN", "CONNECT", "STOM", "AMQ", "GE", "\n"})
        CHECK(sniff(partial).result == sniff_result::need_more);
    CHECK(sniff(std::string_view("\x00\x00\x01", 3)).result == sniff_result::need_more);
    CHECK(sniff(std::string_view("\x00\x00\x01\x0a\x01" "Activ", 10)).result == sniff_result::need_more);

    CHECK(sniff("\x16\x03\x01").result == sniff_result::tls);
    for (std::string_view junk : {"HELLO", "CONNECTX", "SSH-2.0-OpenSSH", "\xff\xff", "AMQX"})
        CHECK(sniff(junk).result == sniff_result::unknown);
    CHECK(sniff(std::string_view("\x00\x00\x01\x0a\x02" "ActiveMQ", 13)).result == sniff_result::unknown);
    CHECK(sniff(std::string_view("\x00\x00\x01\x0a\x01" "ActiveXX", 13)).result == sniff_result::unknown);
    CHECK(sniff("\n\n\n\n\n\n\n\n\n").result == sniff_result::unknown);   // EOLs alone, forever
    // Found by the fuzzer: eight EOLs may still be followed by CONNECT (16 bytes in all).
    CHECK(sniff("\n\n\n\r\n\n\n\n").result == sniff_result::need_more);
    CHECK(known_as("\n\n\n\r\n\n\n\nCONNECT\n", wire::stomp));
}

TEST_CASE("routing: per-protocol route, then the default, then the kernel for STOMP, MQTT and AMQP", "[gateway][detect]") {
    listener_config l;
    l.proto = protocol::automatic;
    CHECK(route_for(l, wire::mqtt) == route{});
    CHECK(route_for(l, wire::stomp) == route{});
    CHECK(route_for(l, wire::amqp) == route{});
    CHECK(!route_for(l, wire::openwire));
    CHECK(!route_for(l, std::nullopt));
    l.routes[static_cast<std::size_t>(wire::openwire)] = route{"amq"};
    CHECK(route_for(l, wire::openwire) == route{"amq"});
    CHECK(!route_for(l, wire::http));
    l.fallback = route{"other"};
    CHECK(route_for(l, wire::amqp) == route{"other"});
    CHECK(route_for(l, wire::http) == route{"other"});
    CHECK(route_for(l, wire::mqtt) == route{"other"});
    CHECK(route_for(l, std::nullopt) == route{"other"});
    l.fallback = route{};   // `default: kernel`: only for what the kernel speaks
    CHECK(route_for(l, wire::mqtt) == route{});
    CHECK(route_for(l, wire::amqp) == route{});
    CHECK(!route_for(l, wire::http));
    CHECK(!route_for(l, std::nullopt));
    l.fallback = route{"other"};
    CHECK(needs_front(l));
    listener_config plain;
    CHECK(!needs_front(plain));
    plain.tls = true;
    CHECK(needs_front(plain));
}

TEST_CASE("balance first: declared order, slots, backups only while no other server is up", "[gateway][backend]") {
    backend b = make_backend(balance_mode::first, {server("a", 1, false, 2), server("b", 2), server("c", 3, true)});
    auto s = b.servers();
    CHECK(b.pick({}) == s[0].get());
    CHECK(b.pick({}) == s[0].get());
    CHECK(b.pick({}) == s[1].get());   // a is full (max_connections 2)
    backend::release(*s[0]);
    CHECK(b.pick({}) == s[0].get());
    CHECK(s[0]->active == 2);
    s[0]->up = false;
    CHECK(b.pick({}) == s[1].get());
    s[1]->up = false;
    CHECK(b.pick({}) == s[2].get());   // the backup, now that no other server is up
    s[2]->up = false;
    CHECK(b.pick({}) == nullptr);
    s[1]->up = true;
    s[2]->up = true;
    CHECK(b.pick({}) == s[1].get());   // b is back: the backup is idle again
    server_state* tried[] = {s[1].get()};
    CHECK(b.pick(tried) == nullptr);   // only backups left, while b counts as up
}

TEST_CASE("balance roundrobin: weighted rotation, skips down and full servers", "[gateway][backend]") {
    backend b = make_backend(balance_mode::roundrobin, {server("a", 1, false, 0, 3), server("b", 2), server("c", 3, false, 2)});
    auto s = b.servers();
    std::map<std::string, int> count;
    for (int i = 0; i < 50; ++i) {
        server_state* p = b.pick({});
        REQUIRE(p);
        ++count[p->cfg.name];
        if (p->cfg.name == "c") backend::release(*p);   // c stays under its limit
    }
    // 5 per rotation of a a a b c (weights 3, 1, 1), interleaved: a b c a a.
    CHECK(count["a"] == 30);
    CHECK(count["b"] == 10);
    CHECK(count["c"] == 10);
    s[0]->up = false;
    for (int i = 0; i < 10; ++i) CHECK(b.pick({})->cfg.name != "a");
}

TEST_CASE("balance leastconn: fewest active per weight, ties go round", "[gateway][backend]") {
    backend b = make_backend(balance_mode::leastconn, {server("a", 1), server("b", 2), server("c", 3, false, 0, 2)});
    auto s = b.servers();
    std::map<std::string, int> count;
    for (int i = 0; i < 40; ++i) ++count[b.pick({})->cfg.name];   // nothing released
    CHECK(count["a"] == 10);
    CHECK(count["b"] == 10);
    CHECK(count["c"] == 20);    // weight 2: twice the connections
    for (int i = 0; i < 10; ++i) backend::release(*s[0]);
    CHECK(b.pick({}) == s[0].get());
    s[0]->up = false;
    CHECK(b.pick({}) != s[0].get());
}

TEST_CASE("probes: the handshake of each check type and how replies are judged", "[gateway][check]") {
    std::string why;
    check_config c;
    c.type = check_type::mqtt;
    probe p = make_probe(c, "h", "id1");
    CHECK(p.request == std::string("\x10\x0f\x00\x04MQTT\x04\x02\x00\x1e\x00\x03id1", 17));
    CHECK(p.judge(std::string_view("\x20\x02", 2), why) == probe::verdict::need_more);
    CHECK(p.judge(std::string_view("\x20\x02\x00\x00", 4), why) == probe::verdict::up);
    CHECK(p.judge(std::string_view("\x20\x02\x00\x05", 4), why) == probe::verdict::up);   // auth: answering
    CHECK(p.judge(std::string_view("\x20\x02\x00\x03", 4), why) == probe::verdict::down);
    CHECK(why == "CONNACK refused rc=3");
    CHECK(p.judge("HTTP/1.1 400", why) == probe::verdict::down);
    CHECK(p.goodbye("") == std::string("\xe0\x00", 2));

    c.type = check_type::stomp;
    p = make_probe(c, "h", "id");
    CHECK(p.request == std::string("CONNECT\naccept-version:1.0,1.1,1.2\nhost:h\n\n\0", 44));
    CHECK(p.judge("CONNEC", why) == probe::verdict::need_more);
    CHECK(p.judge("CONNECTED\r", why) == probe::verdict::need_more);   // found by the fuzzer
    CHECK(p.judge("CONNECTED\r\n", why) == probe::verdict::up);
    CHECK(p.judge("\nCONNECTED\nversion:1.2\n", why) == probe::verdict::up);
    CHECK(p.judge("ERROR\nmessage:go away", why) == probe::verdict::need_more);
    CHECK(p.judge(std::string_view("ERROR\nmessage:go away\n\n\0", 24), why) == probe::verdict::down);
    CHECK(why.starts_with("ERROR go away"));
    CHECK(p.judge("SSH-2.0", why) == probe::verdict::down);

    c.type = check_type::amqp;
    p = make_probe(c, "h", "id");
    // The SASL exchange, pipelined: SASL header + sasl-init(ANONYMOUS), AMQP header + open.
    const std::string sasl_header("AMQP\x03\x01\x00\x00", 8), amqp_header("AMQP\x00\x01\x00\x00", 8);
    CHECK(p.request == sasl_header + std::string("\x00\x00\x00\x19\x02\x01\x00\x00", 8) +
                           std::string("\x00\x53\x41\xc0\x0c\x01\xa3\x09" "ANONYMOUS", 17) + amqp_header +
                           std::string("\x00\x00\x00\x12\x02\x00\x00\x00", 8) + std::string("\x00\x53\x10\xc0\x05\x01\xa1\x02" "id", 10));
    const std::string open = amqp_header + std::string("\x00\x00\x00\x14\x02\x00\x00\x00", 8) +
                             std::string("\x00\x53\x10\xc0\x03\x01\xa1\x00", 8);
    CHECK(p.judge(open.substr(0, 12), why) == probe::verdict::need_more);
    CHECK(p.judge(open, why) == probe::verdict::up);   // a server without SASL
    const std::string mechanisms = std::string("\x00\x00\x00\x18\x02\x01\x00\x00", 8) +
                                   std::string("\x00\x53\x40\xc0\x0b\x01\xe0\x08\x01\xa3\x05PLAIN", 16);
    const auto outcome = [](char code) {
        return std::string("\x00\x00\x00\x10\x02\x01\x00\x00", 8) + std::string("\x00\x53\x44\xc0\x03\x01\x50", 7) + code;
    };
    CHECK(p.judge(sasl_header, why) == probe::verdict::need_more);   // the SASL header alone passes no more
    CHECK(p.judge(sasl_header + mechanisms, why) == probe::verdict::need_more);
    CHECK(p.judge(sasl_header + mechanisms + outcome('\x00'), why) == probe::verdict::need_more);
    CHECK(p.judge(sasl_header + mechanisms + outcome('\x00') + open.substr(0, 10), why) == probe::verdict::need_more);
    CHECK(p.judge(sasl_header + mechanisms + outcome('\x00') + open, why) == probe::verdict::up);
    CHECK(why == "SASL ok, open");
    CHECK(p.judge(sasl_header + mechanisms + outcome('\x01'), why) == probe::verdict::up);   // auth: answering
    CHECK(p.judge(sasl_header + mechanisms + outcome('\x04'), why) == probe::verdict::down);
    CHECK(why == "SASL outcome sys-temp");
    CHECK(p.judge(sasl_header + mechanisms + outcome('\x00') + "HTTP/1.1", why) == probe::verdict::down);
    CHECK(p.judge(sasl_header + std::string("\x00\x00\x00\x02\x02\x01\x00\x00", 8), why) == probe::verdict::down);
    CHECK(p.judge(std::string_view("AMQP\x00\x00\x09\x01", 8), why) == probe::verdict::down);   // AMQP 0-9-1
    CHECK(p.judge("HTTP/1.1", why) == probe::verdict::down);

    c.type = check_type::openwire;
    p = make_probe(c, "h", "id");
    CHECK(p.request.empty());
    const std::string wfi = std::string("\x00\x00\x00\x0d\x01" "ActiveMQ\x00\x00\x00\x0c", 17);
    CHECK(p.judge(wfi.substr(0, 10), why) == probe::verdict::need_more);
    CHECK(p.judge(wfi, why) == probe::verdict::up);
    CHECK(p.goodbye(wfi + "more") == wfi);   // the server's own capabilities go back
    CHECK(p.judge(std::string_view("\x00\x00\x00\x0d\x02" "ActiveMQ\x00\x00\x00\x0c", 17), why) == probe::verdict::down);

    c.type = check_type::http;
    c.http_path = "/health";
    c.http_status = 204;
    p = make_probe(c, "h", "id");
    CHECK(p.request.starts_with("GET /health HTTP/1.1\r\nHost: h\r\n"));
    CHECK(p.judge("HTTP/1.1 204 No Content", why) == probe::verdict::need_more);
    CHECK(p.judge("HTTP/1.1 204 No Content\r\n", why) == probe::verdict::up);
    CHECK(p.judge("HTTP/1.0 500 Oops\r\n", why) == probe::verdict::down);
    CHECK(why == "HTTP 500");
}

TEST_CASE("PROXY protocol headers, v1 and v2, IPv4 and IPv6", "[gateway][relay]") {
    using boost::asio::ip::make_address;
    using boost::asio::ip::tcp;
    const tcp::endpoint from(make_address("192.168.0.1"), 56324), to(make_address("10.0.0.2"), 443);
    CHECK(proxy_header(proxy_protocol::v1, from, to) == "PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n");
    CHECK(proxy_header(proxy_protocol::none, from, to).empty());
    const std::string v2 = proxy_header(proxy_protocol::v2, from, to);
    CHECK(v2 == std::string("\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\xa8\x00\x01\x0a\x00\x00\x02\xdc\x04\x01\xbb", 28));
    const tcp::endpoint from6(make_address("::1"), 1000);
    CHECK(proxy_header(proxy_protocol::v1, from6, to) == "PROXY TCP6 ::1 ::ffff:10.0.0.2 1000 443\r\n");
    const std::string v26 = proxy_header(proxy_protocol::v2, from6, to);
    CHECK(v26.size() == 16 + 36);
    CHECK(v26.substr(12, 4) == std::string("\x21\x21\x00\x24", 4));
}

TEST_CASE("refusals: MQTT CONNACK server unavailable (3.1.1 and 5), STOMP ERROR, others closed", "[gateway][relay]") {
    const std::string v311("\x10\x0f\x00\x04MQTT\x04\x02\x00\x1e\x00\x03id1", 17);
    // MQTT 5: the same with an empty property length after keep alive.
    const std::string v5("\x10\x10\x00\x04MQTT\x05\x02\x00\x1e\x00\x00\x03id1", 18);
    const std::string v31("\x10\x11\x00\x06MQIsdp\x03\x02\x00\x1e\x00\x03id1", 19);
    CHECK(refusal_for(wire::mqtt, v311) == std::string("\x20\x02\x00\x03", 4));
    CHECK(refusal_for(wire::mqtt, v5) == std::string("\x20\x03\x00\x88\x00", 5));
    CHECK(refusal_for(wire::mqtt, v31) == std::string("\x20\x02\x00\x03", 4));
    const std::string e = refusal_for(wire::stomp, std::string("CONNECT\naccept-version:1.2\n\n\0", 29)).value();
    CHECK(e.starts_with("ERROR\n"));
    CHECK(e.find("message:no server available\n") != std::string::npos);
    CHECK(e.back() == '\0');
    CHECK(refusal_for(wire::openwire, "") == std::string());
    CHECK(refusal_for(std::nullopt, "") == std::string());
}

TEST_CASE("refusals: an MQTT CONNECT is read whole before its version decides", "[gateway][relay]") {
    const std::string v5("\x10\x10\x00\x04MQTT\x05\x02\x00\x1e\x00\x00\x03id1", 18);
    // Nothing of it, or any part of it: more is needed (no detection ran on a `protocol: mqtt`
    // listener, so the relay may have nothing).
    for (std::size_t n = 0; n < v5.size(); ++n) CHECK_FALSE(refusal_for(wire::mqtt, v5.substr(0, n)).has_value());
    // Malformed, another packet first, a wrong protocol level: closed without a CONNACK.
    CHECK(refusal_for(wire::mqtt, std::string("\x10\x0f\x00\x04MQTX\x04\x02\x00\x1e\x00\x03id1", 17)) == std::string());
    CHECK(refusal_for(wire::mqtt, std::string("\xc0\x00", 2)) == std::string());
    // Larger than refusal_max_connect_bytes: decided from the fixed header alone.
    CHECK(refusal_for(wire::mqtt, std::string("\x10\xff\xff\x7f", 4)) == std::string());
}

TEST_CASE("refusals: a STOMP CONNECT is read whole before the ERROR", "[gateway][relay]") {
    const std::string connect("\n\r\nCONNECT\naccept-version:1.2\nhost:h\n\n\0", 39);
    for (std::size_t n = 0; n < connect.size(); ++n)
        CHECK_FALSE(refusal_for(wire::stomp, connect.substr(0, n)).has_value());
    const std::string e = refusal_for(wire::stomp, connect).value();
    CHECK(e.starts_with("ERROR\n"));
    // Not STOMP after all, or past the size bound: the ERROR comes at once.
    CHECK(refusal_for(wire::stomp, "CONNECT\nno colon here\n\n").value().starts_with("ERROR\n"));
    CHECK(refusal_for(wire::stomp, "CONNECT\nx:" + std::string(refusal_max_connect_bytes, 'y')).value().starts_with("ERROR\n"));
}
