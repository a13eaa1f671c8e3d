// tests/fuzz/ws_fuzz.cpp — libFuzzer target for the WebSocket layer (gateway/ws_transport): the
// upgrade request and the frames after it, as a client sends them, through the layer as a
// session uses it (wait for readable, take what is there, write something back), over an
// in-memory transport that hands the input over in pieces of input-chosen sizes.
//
// Input: byte 0 picks the mode (bit 0: a valid upgrade request comes first, so that most inputs
// reach the framing; bit 1: MQTT, which takes binary messages only), byte 1 the size of the
// pieces the inner transport delivers (1..64), the rest is what the client sends.
// Checks, trapping on failure: the run ends (the layer never spins without input); no read after
// a failed handshake; the payload read is never more than the bytes sent; every operation
// completes.
#include "gateway/ws_transport.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace {

namespace asio = boost::asio;
using namespace sb;
using namespace sb::gateway;

#define SB_FUZZ_CHECK(cond)            \
    do {                               \
        if (!(cond)) __builtin_trap(); \
    } while (0)

// The client's bytes, in pieces; what the layer writes is counted and dropped.
class memory_transport final : public net::transport {
public:
    memory_transport(asio::io_context& io, std::string in, std::size_t piece)
        : io_(io), in_(std::move(in)), piece_(piece) {}

    void async_read_some(std::span<std::byte> into, std::shared_ptr<net::stream_handler> h) override {
        net::error_code ec;
        const std::size_t n = read_available(into.first(std::min(into.size(), piece_)), ec);
        asio::post(io_, [h = std::move(h), ec, n] { h->on_read(n ? net::error_code{} : ec, n); });
    }
    void async_wait_readable(std::shared_ptr<net::stream_handler> h) override {
        asio::post(io_, [h = std::move(h)] { h->on_read({}, 0); });
    }
    std::size_t read_available(std::span<std::byte> into, net::error_code& ec) override {
        ec = {};
        if (closed_) {
            ec = asio::error::operation_aborted;
            return 0;
        }
        const std::size_t n = std::min({into.size(), piece_, in_.size() - at_});
        if (n == 0) {
            ec = asio::error::eof;
            return 0;
        }
        std::memcpy(into.data(), in_.data() + at_, n);
        at_ += n;
        return n;
    }
    void async_write(std::span<const std::byte> data, std::shared_ptr<net::stream_handler> h) override {
        const bool ok = !closed_ && !shut_;
        written_ += ok ? data.size() : 0;
        asio::post(io_, [h = std::move(h), ok, n = data.size()] {
            h->on_write(ok ? net::error_code{} : net::error_code(asio::error::broken_pipe), ok ? n : 0);
        });
    }
    void shutdown_send() noexcept override { shut_ = true; }
    void close() noexcept override { closed_ = true; }
    asio::any_io_executor get_executor() override { return io_.get_executor(); }
    const std::string& peer() const noexcept override { return peer_; }

private:
    asio::io_context& io_;
    std::string in_;
    std::size_t piece_;
    std::size_t at_ = 0;
    std::size_t written_ = 0;
    bool shut_ = false;
    bool closed_ = false;
    std::string peer_ = "fuzz";
};

// Reads as the engine driver does, and answers each read with a write of its size.
struct session final : net::stream_handler, std::enable_shared_from_this<session> {
    ws_transport* ws = nullptr;
    std::size_t read = 0, reads = 0, writes_pending = 0;
    bool failed = false;
    std::array<std::byte, 512> scratch{};
    std::string echo;

    void start() { ws->async_wait_readable(shared_from_this()); }

    void on_read(net::error_code ec, std::size_t) override {
        ++reads;
        if (!ec) {
            const std::size_t n = ws->read_available(scratch, ec);
            read += n;
            if (n && !writes_pending) {
                echo.assign(reinterpret_cast<const char*>(scratch.data()), n);
                ++writes_pending;
                ws->async_write(std::as_bytes(std::span(echo)), shared_from_this());
            }
            if (ec == asio::error::would_block) ec = {};
        }
        if (ec) {
            failed = true;
            ws->shutdown_send();
            return;
        }
        ws->async_wait_readable(shared_from_this());
    }
    void on_write(net::error_code, std::size_t) override { --writes_pending; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const bool with_request = data[0] & 1;
    const bool mqtt = data[0] & 2;
    const std::size_t piece = 1 + data[1] % 64;
    std::string in;
    if (with_request)
        in = "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Protocol: mqtt\r\n\r\n";
    const std::size_t request_bytes = in.size();
    in.append(reinterpret_cast<const char*>(data + 2), size - 2);
    const std::size_t sent = in.size();

    static const websocket_config cfg = [] {
        websocket_config c;
        c.max_message_bytes = 4096;
        return c;
    }();
    asio::io_context io;
    auto owner = std::make_shared<int>(0);
    auto ws = make_ws_transport(std::make_unique<memory_transport>(io, std::move(in), piece), cfg, true);
    auto s = std::make_shared<session>();
    s->ws = ws.get();
    bool accepted = false, done = false;
    ws->async_accept(owner, [&](net::error_code ec, std::optional<wire> w) {
        done = true;
        accepted = !ec;
        if (!ec && mqtt) ws->set_protocol(wire::mqtt);
        (void)w;
        if (!ec) s->start();
        else ws->close();
    });
    // Bounded: every handler the layer runs is fed by the finite input.
    std::size_t handlers = 0;
    while (handlers < 1000000 && io.run_one()) ++handlers;
    SB_FUZZ_CHECK(handlers < 1000000);
    SB_FUZZ_CHECK(done);
    if (!accepted) SB_FUZZ_CHECK(s->reads == 0);
    SB_FUZZ_CHECK(s->read <= sent - std::min(sent, with_request ? request_bytes : std::size_t(0)));
    SB_FUZZ_CHECK(s->writes_pending == 0);
    ws->close();
    io.restart();
    io.run();
    return 0;
}
