// tests/unit/gateway/transport_test.cpp — stackable transports: the TLS layer over any
// net::transport (an in-memory pipe, another TLS layer) and over the TCP bottom of a stack, on one
// io_context run by the test (no threads, no sleeps; every run bounded).
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "gateway/tcp_transport.hpp"
#include "gateway/tls_transport.hpp"

namespace asio = boost::asio;
using namespace sb;
using namespace sb::gateway;

namespace {

// Two ends of an in-memory byte stream; each end is a net::transport that completes
// asynchronously (posted), as a socket does.
struct duplex {
    std::string inbound[2];          // bytes waiting to be read by end i
    bool eof[2] = {false, false};    // the other end shut its send side (or closed)
    bool closed[2] = {false, false};
    std::shared_ptr<net::stream_handler> reader[2];
    std::span<std::byte> into[2];    // empty: the reader waits for readability only
};

class pipe_end final : public net::transport {
public:
    pipe_end(asio::io_context& io, std::shared_ptr<duplex> d, int side) : io_(io), d_(std::move(d)), side_(side) {}

    void async_read_some(std::span<std::byte> into, std::shared_ptr<net::stream_handler> h) override {
        d_->reader[side_] = std::move(h);
        d_->into[side_] = into;
        wake(side_);
    }
    void async_wait_readable(std::shared_ptr<net::stream_handler> h) override {
        d_->reader[side_] = std::move(h);
        d_->into[side_] = {};
        wake(side_);
    }
    std::size_t read_available(std::span<std::byte> into, net::error_code& ec) override {
        return take(side_, into, ec);
    }
    void async_write(std::span<const std::byte> data, std::shared_ptr<net::stream_handler> h) override {
        const int other = 1 - side_;
        if (d_->closed[side_]) {
            asio::post(io_, [h] { h->on_write(asio::error::operation_aborted, 0); });
            return;
        }
        d_->inbound[other].append(reinterpret_cast<const char*>(data.data()), data.size());
        wake(other);
        asio::post(io_, [h, n = data.size()] { h->on_write({}, n); });
    }
    void shutdown_send() noexcept override {
        d_->eof[1 - side_] = true;
        wake(1 - side_);
    }
    void close() noexcept override {
        d_->closed[side_] = true;
        d_->eof[1 - side_] = true;
        wake(side_);
        wake(1 - side_);
    }
    asio::any_io_executor get_executor() override { return io_.get_executor(); }
    const std::string& peer() const noexcept override { return peer_; }

private:
    std::size_t take(int i, std::span<std::byte> into, net::error_code& ec) {
        ec = {};
        auto& in = d_->inbound[i];
        if (in.empty()) {
            ec = d_->closed[i] ? net::error_code(asio::error::operation_aborted)
                 : d_->eof[i]  ? net::error_code(asio::error::eof)
                               : net::error_code(asio::error::would_block);
            return 0;
        }
        const std::size_t n = std::min(into.size(), in.size());
        std::memcpy(into.data(), in.data(), n);
        in.erase(0, n);
        return n;
    }

    // Completes end i's pending read if it can.
    void wake(int i) {
        auto& h = d_->reader[i];
        if (!h || (d_->inbound[i].empty() && !d_->eof[i] && !d_->closed[i])) return;
        auto handler = std::move(h);
        if (d_->into[i].empty()) {
            asio::post(io_, [handler] { handler->on_read({}, 0); });
            return;
        }
        net::error_code ec;
        const std::size_t n = take(i, d_->into[i], ec);
        asio::post(io_, [handler, n, ec] { handler->on_read(n ? net::error_code{} : ec, n); });
    }

    asio::io_context& io_;
    std::shared_ptr<duplex> d_;
    int side_;
    std::string peer_ = "memory";
};

// A stream_handler whose completions call back into the test.
struct probe_handler final : net::stream_handler {
    std::function<void(net::error_code, std::size_t)> read, write;
    void on_read(net::error_code ec, std::size_t n) override { read(ec, n); }
    void on_write(net::error_code ec, std::size_t n) override { write(ec, n); }
};

// A self-signed certificate made in memory: a server context with it, a client that does not
// verify (the test is about the layering, not the PKI).
struct tls_contexts {
    std::shared_ptr<asio::ssl::context> server = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    std::shared_ptr<asio::ssl::context> client = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    tls_contexts() {
        EVP_PKEY* key = EVP_EC_gen("P-256");
        X509* cert = X509_new();
        X509_set_version(cert, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
        X509_gmtime_adj(X509_getm_notBefore(cert), 0);
        X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
        X509_set_pubkey(cert, key);
        X509_NAME* name = X509_get_subject_name(cert);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
        X509_set_issuer_name(cert, name);
        X509_sign(cert, key, EVP_sha256());
        REQUIRE(SSL_CTX_use_certificate(server->native_handle(), cert) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey(server->native_handle(), key) == 1);
        client->set_verify_mode(asio::ssl::verify_none);
        X509_free(cert);
        EVP_PKEY_free(key);
    }
};

// Runs `io` until `done()` or 10 s; returns done().
bool run_until(asio::io_context& io, const std::function<bool()>& done) {
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    io.restart();
    while (!done() && std::chrono::steady_clock::now() < limit) {
        if (io.run_one_for(std::chrono::milliseconds(100)) == 0) io.restart();
    }
    return done();
}

// Handshakes both ends (a server and a client layer) to completion.
void handshake(asio::io_context& io, tls_transport& server, tls_transport& client, const std::shared_ptr<void>& owner) {
    int done = 0;
    net::error_code s_ec, c_ec;
    server.async_handshake(owner, [&](net::error_code ec) { s_ec = ec, ++done; });
    client.async_handshake(owner, [&](net::error_code ec) { c_ec = ec, ++done; });
    REQUIRE(run_until(io, [&] { return done == 2; }));
    REQUIRE_FALSE(s_ec);
    REQUIRE_FALSE(c_ec);
}

// Sends `data` from `from` and reads it at `to` the way a session does (wait for readability,
// then read_available until would_block); returns what arrived.
std::string transfer(asio::io_context& io, net::transport& from, net::transport& to, const std::string& data) {
    auto w = std::make_shared<probe_handler>();
    bool written = false;
    w->write = [&](net::error_code ec, std::size_t n) {
        CHECK_FALSE(ec);
        CHECK(n == data.size());
        written = true;
    };
    from.async_write(std::as_bytes(std::span(data)), w);
    std::string got;
    auto r = std::make_shared<probe_handler>();
    std::array<std::byte, 4096> chunk;
    r->read = [&](net::error_code ec, std::size_t) {
        REQUIRE_FALSE(ec);
        for (;;) {
            net::error_code rec;
            const std::size_t n = to.read_available(chunk, rec);
            if (n == 0) break;
            got.append(reinterpret_cast<const char*>(chunk.data()), n);
        }
        if (got.size() < data.size()) to.async_wait_readable(r);
    };
    to.async_wait_readable(r);
    REQUIRE(run_until(io, [&] { return written && got.size() >= data.size(); }));
    r->read = nullptr;   // breaks the cycle of the lambda holding r
    return got;
}

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 7) & 0xFF);
    return s;
}

}  // namespace

TEST_CASE("transports: TLS over an in-memory transport, both ways, then EOF", "[gateway][transport]") {
    asio::io_context io;
    tls_contexts ctx;
    auto d = std::make_shared<duplex>();
    auto owner = std::make_shared<int>(0);
    auto server = make_tls_transport(std::make_unique<pipe_end>(io, d, 0), ctx.server, tls_role::server);
    auto client = make_tls_transport(std::make_unique<pipe_end>(io, d, 1), ctx.client, tls_role::client);
    handshake(io, *server, *client, owner);
    CHECK(d->inbound[0].empty());   // the pipe carried only records: nothing left undecrypted

    const std::string up = pattern(200 * 1024);   // many records
    CHECK(transfer(io, *client, *server, up) == up);
    const std::string down = "pong";
    CHECK(transfer(io, *server, *client, down) == down);
    // A plain async_read_some sees the next bytes too.
    auto h = std::make_shared<probe_handler>();
    std::array<std::byte, 64> buf;
    std::size_t got = 0;
    h->read = [&](net::error_code ec, std::size_t n) {
        CHECK_FALSE(ec);
        got = n;
    };
    h->write = [](net::error_code ec, std::size_t) { CHECK_FALSE(ec); };
    server->async_write(std::as_bytes(std::span(std::string_view("abc"))), h);
    client->async_read_some(buf, h);
    REQUIRE(run_until(io, [&] { return got > 0; }));
    CHECK(std::string(reinterpret_cast<const char*>(buf.data()), got) == "abc");

    // The client's send side ends (no close_notify, as a message client may): an ordinary EOF.
    client->shutdown_send();
    net::error_code end;
    bool ended = false;
    h->read = [&](net::error_code ec, std::size_t) {
        end = ec;
        ended = true;
    };
    server->async_read_some(buf, h);
    REQUIRE(run_until(io, [&] { return ended; }));
    CHECK(end == asio::error::eof);
    // Nothing pending: the layers hold no reference to their owner (no cycle through the stack).
    CHECK(owner.use_count() == 1);
}

TEST_CASE("transports: TLS over TLS (a layer wraps any layer)", "[gateway][transport]") {
    asio::io_context io;
    tls_contexts ctx;
    auto d = std::make_shared<duplex>();
    auto owner = std::make_shared<int>(0);
    std::unique_ptr<tls_transport> s_inner = make_tls_transport(std::make_unique<pipe_end>(io, d, 0), ctx.server);
    std::unique_ptr<tls_transport> c_inner = make_tls_transport(std::make_unique<pipe_end>(io, d, 1), ctx.client, tls_role::client);
    handshake(io, *s_inner, *c_inner, owner);
    auto server = make_tls_transport(std::move(s_inner), ctx.server, tls_role::server);
    auto client = make_tls_transport(std::move(c_inner), ctx.client, tls_role::client);
    handshake(io, *server, *client, owner);
    const std::string data = pattern(64 * 1024 + 17);
    CHECK(transfer(io, *client, *server, data) == data);
    CHECK(transfer(io, *server, *client, "ok") == "ok");
    server->close();   // closes down to the pipe: the peer reads EOF
    auto h = std::make_shared<probe_handler>();
    std::array<std::byte, 16> buf;
    bool ended = false;
    h->read = [&](net::error_code ec, std::size_t n) {
        CHECK(ec);
        CHECK(n == 0);
        ended = true;
    };
    client->async_read_some(buf, h);
    REQUIRE(run_until(io, [&] { return ended; }));
    CHECK(owner.use_count() == 1);
}

TEST_CASE("transports: a stack over TCP, plain until TLS is pushed; the socket stays reachable", "[gateway][transport]") {
    asio::io_context io;
    tls_contexts ctx;
    using asio::ip::tcp;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::socket out(io);
    out.connect(acceptor.local_endpoint());
    tcp::socket in = acceptor.accept();
    int destroyed = 0;
    transport_stack server(std::make_unique<tcp_transport>(std::move(in), [&] { ++destroyed; }));
    transport_stack client(std::make_unique<tcp_transport>(std::move(out), [&] { ++destroyed; }));
    CHECK(server.plain());
    CHECK(&server.top() == static_cast<net::transport*>(&server.bottom()));
    const auto local = server.bottom().socket().local_endpoint();
    const std::string peer = server.top().peer();

    auto& tls = server.push([&](std::unique_ptr<net::transport> t) { return make_tls_transport(std::move(t), ctx.server); });
    auto& ctls = client.push([&](std::unique_ptr<net::transport> t) {
        return make_tls_transport(std::move(t), ctx.client, tls_role::client);
    });
    CHECK_FALSE(server.plain());
    CHECK(&server.top() == static_cast<net::transport*>(&tls));
    CHECK(server.bottom().socket().local_endpoint() == local);   // the PROXY header's addresses
    CHECK(server.top().peer() == peer);
    auto owner = std::make_shared<int>(0);
    handshake(io, tls, ctls, owner);
    const std::string data = pattern(300 * 1024);
    CHECK(transfer(io, client.top(), server.top(), data) == data);
    CHECK(transfer(io, server.top(), client.top(), "bye") == "bye");

    // Handed to a session as one transport; the TCP bottom goes with it.
    auto whole = std::move(server).release();
    CHECK(whole.get() == static_cast<net::transport*>(&tls));
    whole.reset();
    CHECK(destroyed == 1);
}

TEST_CASE("transports: plain TCP on the worker's epoll set: a write bigger than the socket takes, reads, EOF, close",
          "[gateway][transport]") {
    asio::io_context io;
    using asio::ip::tcp;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::socket out(io);
    out.connect(acceptor.local_endpoint());
    const auto client_port = out.local_endpoint().port();
    tcp::socket in = acceptor.accept();
    int destroyed = 0;
    // No socket() call: both ends stay on the fd_reactor, with no Asio socket.
    auto server = std::make_unique<tcp_transport>(std::move(in), [&] { ++destroyed; });
    auto client = std::make_unique<tcp_transport>(std::move(out), [&] { ++destroyed; });
    CHECK(server->peer() == "127.0.0.1:" + std::to_string(client_port));

    // Far more than the socket buffers hold: the write completes once the reader took it all
    // (the rest waited for the socket to be writable again).
    const std::string up = pattern(16 * 1024 * 1024);
    CHECK(transfer(io, *client, *server, up) == up);
    CHECK(transfer(io, *server, *client, "pong") == "pong");

    // async_read_some: a wait, then a read.
    auto h = std::make_shared<probe_handler>();
    std::array<std::byte, 64> buf;
    std::size_t got = 0;
    h->read = [&](net::error_code ec, std::size_t n) {
        CHECK_FALSE(ec);
        got = n;
    };
    h->write = [](net::error_code ec, std::size_t) { CHECK_FALSE(ec); };
    client->async_write(std::as_bytes(std::span(std::string_view("abc"))), h);
    server->async_read_some(buf, h);
    REQUIRE(run_until(io, [&] { return got > 0; }));
    CHECK(std::string(reinterpret_cast<const char*>(buf.data()), got) == "abc");

    // The client's send side ends: the server's wait completes and its read says EOF.
    client->shutdown_send();
    net::error_code end;
    bool ended = false;
    h->read = [&](net::error_code ec, std::size_t) {
        CHECK_FALSE(ec);
        end = {};
        server->read_available(buf, end);
        ended = true;
    };
    server->async_wait_readable(h);
    REQUIRE(run_until(io, [&] { return ended; }));
    CHECK(end == asio::error::eof);

    // A wait pending when the transport closes completes with operation_aborted and is let go.
    auto w = std::make_shared<probe_handler>();
    net::error_code aborted;
    bool done = false;
    w->read = [&](net::error_code ec, std::size_t) {
        aborted = ec;
        done = true;
    };
    client->async_wait_readable(w);
    client->close();
    REQUIRE(run_until(io, [&] { return done; }));
    CHECK(aborted == asio::error::operation_aborted);
    CHECK(w.use_count() == 1);

    client.reset();
    server.reset();
    CHECK(destroyed == 2);
}
