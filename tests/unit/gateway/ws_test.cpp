// tests/unit/gateway/ws_test.cpp — the WebSocket layer: the handshake's decisions (paths,
// subprotocols, Origin), and the layer over a TCP stack driven by a raw client socket on one
// io_context run by the test (no threads, no sleeps; every run bounded).
#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "gateway/tcp_transport.hpp"
#include "gateway/ws_transport.hpp"

namespace asio = boost::asio;
using namespace sb;
using namespace sb::gateway;

namespace {

websocket_config defaults() { return {}; }

std::string frame(unsigned opcode, std::string_view payload, bool fin = true, bool mask = true) {
    std::string out;
    out += static_cast<char>((fin ? 0x80 : 0) | opcode);
    const unsigned bit = mask ? 0x80 : 0;
    if (payload.size() < 126) {
        out += static_cast<char>(bit | payload.size());
    } else {
        out += static_cast<char>(bit | 126);
        out += static_cast<char>(payload.size() >> 8);
        out += static_cast<char>(payload.size() & 0xFF);
    }
    const char key[4] = {0x11, 0x22, 0x33, 0x44};
    if (mask) out.append(key, 4);
    for (std::size_t i = 0; i < payload.size(); ++i) out += static_cast<char>(payload[i] ^ (mask ? key[i % 4] : 0));
    return out;
}

struct probe_handler final : net::stream_handler {
    std::function<void(net::error_code, std::size_t)> read, write;
    void on_read(net::error_code ec, std::size_t n) override { read(ec, n); }
    void on_write(net::error_code ec, std::size_t n) override { write(ec, n); }
};

template <class Pred>
void run_until(asio::io_context& io, Pred done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
        io.restart();
        io.run_for(std::chrono::milliseconds(10));
    }
    REQUIRE(done());
}

// A client socket (blocking) and the server's stack with the WebSocket layer on it.
struct ws_pair {
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
    asio::ip::tcp::socket client{io};
    std::optional<transport_stack> server;
    ws_transport* ws = nullptr;
    websocket_config cfg = defaults();
    std::shared_ptr<int> owner = std::make_shared<int>(0);
    std::string client_in;

    ws_pair() {
        client.connect(acceptor.local_endpoint());
        server.emplace(std::make_unique<tcp_transport>(acceptor.accept(), [] {}));
    }

    void push(bool plain_http_404 = false) {
        ws = &server->push([&](std::unique_ptr<net::transport> t) { return make_ws_transport(std::move(t), cfg, plain_http_404); });
    }

    // Sends `request` (and whatever follows it) and runs the handshake: its error and protocol.
    // A refused client reads the answer (head) and ends its send side, which ends the drain.
    std::pair<net::error_code, std::optional<wire>> accept(const std::string& request) {
        push();
        asio::write(client, asio::buffer(request));
        bool done = false;
        std::pair<net::error_code, std::optional<wire>> out;
        ws->async_accept(owner, [&](net::error_code ec, std::optional<wire> w) {
            out = {ec, w};
            done = true;
        });
        run_until(io, [&] { return done || client.available() > 0; });
        if (!done) {
            head = response();
            if (!head.starts_with("HTTP/1.1 101")) client.shutdown(asio::socket_base::shutdown_send);
            run_until(io, [&] { return done; });
        } else if (head.empty()) {
            head = response();
        }
        return out;
    }
    std::string head;   // the response's, once accept() read it

    // The HTTP response head the client got.
    std::string response() {
        asio::streambuf b;
        const std::size_t n = asio::read_until(client, b, "\r\n\r\n");
        std::string all(asio::buffers_begin(b.data()), asio::buffers_end(b.data()));
        client_in = all.substr(n);
        return all.substr(0, n);
    }

    // The next frame from the server: (first byte, payload).
    std::pair<unsigned, std::string> next_frame() {
        auto need = [&](std::size_t k) {
            while (client_in.size() < k) {
                char buf[4096];
                const std::size_t n = client.read_some(asio::buffer(buf));
                client_in.append(buf, n);
            }
        };
        need(2);
        std::size_t len = static_cast<unsigned char>(client_in[1]) & 0x7F, at = 2;
        REQUIRE((static_cast<unsigned char>(client_in[1]) & 0x80) == 0);   // servers do not mask
        if (len == 126) {
            need(4);
            len = (static_cast<unsigned char>(client_in[2]) << 8) | static_cast<unsigned char>(client_in[3]);
            at = 4;
        }
        need(at + len);
        std::pair<unsigned, std::string> f{static_cast<unsigned char>(client_in[0]), client_in.substr(at, len)};
        client_in.erase(0, at + len);
        return f;
    }

    // Reads through the layer until `want` bytes arrived (or an error): what was read.
    std::string read(std::size_t want, net::error_code* err = nullptr) {
        std::string got;
        auto h = std::make_shared<probe_handler>();
        std::array<std::byte, 64> buf{};
        bool pending = false;
        net::error_code last;
        h->read = [&](net::error_code ec, std::size_t n) {
            pending = false;
            last = ec;
            got.append(reinterpret_cast<const char*>(buf.data()), n);
        };
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (got.size() < want && !last && std::chrono::steady_clock::now() < deadline) {
            if (!pending) {
                pending = true;
                server->top().async_read_some(buf, std::shared_ptr<net::stream_handler>(owner, h.get()));
            }
            io.restart();
            io.run_for(std::chrono::milliseconds(10));
        }
        if (err) *err = last;
        UNSCOPED_INFO("read: " << last.message());
        return got;
    }
};

std::string upgrade(std::string_view path, std::string_view protocols = {}, std::string_view more = {}) {
    std::string r = "GET " + std::string(path) +
                    " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    if (!protocols.empty()) r += "Sec-WebSocket-Protocol: " + std::string(protocols) + "\r\n";
    return r + std::string(more) + "\r\n";
}

}  // namespace

TEST_CASE("ws: subprotocol negotiation, paths and origins", "[gateway][ws]") {
    const websocket_config c = defaults();
    SECTION("the highest STOMP version offered wins, whatever the order, and is echoed") {
        const auto d = ws_negotiate(c, "/stomp", "v10.stomp, v12.stomp,v11.stomp", std::nullopt);
        CHECK(d.status == 101);
        CHECK(d.proto == wire::stomp);
        CHECK(d.subprotocol == "v12.stomp");
        CHECK(ws_negotiate(c, "/stomp", "v10.stomp,v11.stomp", std::nullopt).subprotocol == "v11.stomp");
    }
    SECTION("mqtt over mqttv3.1; unknown offers are skipped") {
        CHECK(ws_negotiate(c, "/mqtt", "mqttv3.1, mqtt", std::nullopt).subprotocol == "mqtt");
        CHECK(ws_negotiate(c, "/mqtt", "xmpp, mqttv3.1", std::nullopt).subprotocol == "mqttv3.1");
        CHECK(ws_negotiate(c, "/amqp", "amqp", std::nullopt).proto == wire::amqp);
    }
    SECTION("none offered: the path's protocol, none echoed; `/` leaves it to detection") {
        const auto d = ws_negotiate(c, "/mqtt?x=1", "", std::nullopt);
        CHECK(d.status == 101);
        CHECK(d.proto == wire::mqtt);
        CHECK(d.subprotocol.empty());
        const auto root = ws_negotiate(c, "/", "", std::nullopt);
        CHECK(root.status == 101);
        CHECK(!root.proto);
    }
    SECTION("on `/` the client's first usable offer picks the protocol") {
        const auto d = ws_negotiate(c, "/", "foo, v11.stomp, mqtt, v12.stomp", std::nullopt);
        CHECK(d.proto == wire::stomp);
        CHECK(d.subprotocol == "v12.stomp");
    }
    SECTION("only unknown offers: 400, or the path with fail_if_no_subprotocol false") {
        CHECK(ws_negotiate(c, "/", "xmpp", std::nullopt).status == 400);
        CHECK(ws_negotiate(c, "/mqtt", "v12.stomp", std::nullopt).status == 400);
        websocket_config lax = c;
        lax.fail_if_no_subprotocol = false;
        const auto d = ws_negotiate(lax, "/mqtt", "v12.stomp", std::nullopt);
        CHECK(d.status == 101);
        CHECK(d.proto == wire::mqtt);
        CHECK(d.subprotocol.empty());
    }
    SECTION("unknown paths: 404; the Origin allow-list: 403") {
        CHECK(ws_negotiate(c, "/ws", "mqtt", std::nullopt).status == 404);
        websocket_config o = c;
        o.allowed_origins = {"https://app.example"};
        CHECK(ws_negotiate(o, "/mqtt", "mqtt", std::string_view("https://evil.example")).status == 403);
        CHECK(ws_negotiate(o, "/mqtt", "mqtt", std::string_view("HTTPS://App.Example")).status == 101);
        CHECK(ws_negotiate(o, "/mqtt", "mqtt", std::nullopt).status == 101);   // not a browser
        CHECK(ws_negotiate(c, "/mqtt", "mqtt", std::string_view("https://any.example")).status == 101);
    }
}

TEST_CASE("ws: the layer over TCP: handshake, a byte stream across and within messages, binary out, close 1000",
          "[gateway][ws]") {
    ws_pair p;
    // The client's first frames arrive right behind its request (in the same segment).
    const std::string first = frame(0x2, "hel") + frame(0x2, "") + frame(0x2, "lo", false) + frame(0x0, " ", false) +
                              frame(0x9, "ping") + frame(0x0, "world", true);
    const auto [ec, w] = p.accept(upgrade("/stomp", "v11.stomp, v12.stomp") + first);
    REQUIRE(!ec);
    CHECK(w == wire::stomp);
    CHECK(p.ws->subprotocol() == "v12.stomp");
    const std::string head = p.head;
    CHECK(head.starts_with("HTTP/1.1 101"));
    CHECK(head.find("Sec-WebSocket-Protocol: v12.stomp") != std::string::npos);
    CHECK(head.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string::npos);

    CHECK(p.read(11) == "hello world");
    // The ping was answered (while reading) with its payload.
    auto pong = p.next_frame();
    CHECK(pong.first == 0x8A);
    CHECK(pong.second == "ping");

    // A write is one binary message.
    auto h = std::make_shared<probe_handler>();
    std::size_t written = 0;
    h->write = [&](net::error_code e, std::size_t n) {
        CHECK(!e);
        written = n;
    };
    const std::string out = "CONNECTED\nversion:1.2\n\n";
    p.server->top().async_write(std::as_bytes(std::span(out)), std::shared_ptr<net::stream_handler>(p.owner, h.get()));
    run_until(p.io, [&] { return written == out.size(); });
    auto f = p.next_frame();
    CHECK(f.first == 0x82);
    CHECK(f.second == out);

    // shutdown_send with a read pending: close 1000; the client's close ends the read with EOF.
    std::array<std::byte, 16> buf{};
    net::error_code read_ec;
    bool read_done = false;
    h->read = [&](net::error_code e, std::size_t) {
        read_ec = e;
        read_done = true;
    };
    p.server->top().async_read_some(buf, std::shared_ptr<net::stream_handler>(p.owner, h.get()));
    p.server->top().shutdown_send();
    p.io.restart();
    p.io.run_for(std::chrono::milliseconds(20));
    auto close = p.next_frame();
    CHECK(close.first == 0x88);
    CHECK(close.second == std::string("\x03\xe8", 2));
    asio::write(p.client, asio::buffer(frame(0x8, std::string("\x03\xe8", 2))));
    run_until(p.io, [&] { return read_done; });
    CHECK(read_ec == asio::error::eof);
}

TEST_CASE("ws: refusals answer with an HTTP status and fail the handshake", "[gateway][ws]") {
    SECTION("unknown path: 404") {
        ws_pair p;
        CHECK(p.accept(upgrade("/nowhere", "mqtt")).first);
        CHECK(p.head.starts_with("HTTP/1.1 404"));
    }
    SECTION("no key: Beast's 400") {
        ws_pair p;
        CHECK(p.accept("GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n")
                  .first);
        CHECK(p.head.starts_with("HTTP/1.1 400"));
    }
    SECTION("version 8: 426 with the version we speak") {
        ws_pair p;
        std::string r = upgrade("/mqtt", "mqtt");
        r.replace(r.find("Version: 13"), 11, "Version: 8");
        CHECK(p.accept(r).first);
        const auto head = p.head;
        CHECK(head.starts_with("HTTP/1.1 426"));
        CHECK(head.find("Sec-WebSocket-Version: 13") != std::string::npos);
    }
    SECTION("garbage: 400") {
        ws_pair p;
        CHECK(p.accept(std::string("\x16\x03\x01garbage\r\n\r\n", 14)).first);
        CHECK(p.head.starts_with("HTTP/1.1 400"));
    }
}

TEST_CASE("ws: protocol errors close with their codes", "[gateway][ws]") {
    auto code_after = [](const std::string& frames, std::size_t max_message = 1 << 20, bool mqtt = false) {
        ws_pair p;
        p.cfg.max_message_bytes = max_message;
        REQUIRE(!p.accept(upgrade("/mqtt", "mqtt")).first);
        if (mqtt) p.ws->set_protocol(wire::mqtt);
        asio::write(p.client, asio::buffer(frames));
        net::error_code ec;
        p.read(1 << 20, &ec);
        CHECK(ec);
        auto f = p.next_frame();
        REQUIRE(f.first == 0x88);
        REQUIRE(f.second.size() >= 2);
        return (static_cast<unsigned char>(f.second[0]) << 8) | static_cast<unsigned char>(f.second[1]);
    };
    CHECK(code_after(frame(0x2, "abc", true, false)) == 1002);        // unmasked
    CHECK(code_after(frame(0x9, std::string(126, 'x'))) == 1002);      // control frame > 125
    CHECK(code_after(frame(0x9, "x", false)) == 1002);                 // fragmented control frame
    CHECK(code_after(frame(0x1, "\xff\xfe")) == 1007);                 // invalid UTF-8 text
    CHECK(code_after(frame(0x2, std::string(3000, 'x')), 2048) == 1009);
    CHECK(code_after(frame(0x1, "text"), 1 << 20, true) == 1003);       // MQTT takes binary only
}
