// tests/bench/stream_bench.cpp — switchboard-stream-bench: raw TCP bulk streams through a proxy
// (issue 22, done-when 2: the relay's bulk MB/s beside HAProxy's).
//
//   switchboard-stream-bench sink --port P [--for S]
//       accepts on 127.0.0.1:P and discards what arrives (recv with MSG_TRUNC: the sink copies
//       nothing, so the proxy in front of it is what the run measures); closes a connection at
//       its EOF. Runs until SIGINT/SIGTERM or S seconds. The proxies' health checks connect
//       here too.
//   switchboard-stream-bench send --port Q [--connections N] [--chunk B] [--seconds S]
//                                 [--json FILE] [--label L] [--timeout T]
//       N connections to 127.0.0.1:Q (the proxy), each writing B-byte chunks for S seconds, then
//       a half-close, then waiting for the sink's close: every byte written has arrived. The
//       rate is the bytes over the time from the first connect to the last close.
//
// Plain blocking sockets and one thread per connection: the client must not be the bottleneck
// and must cost the same whichever proxy is measured.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

using clock_type = std::chrono::steady_clock;

std::atomic<bool> stopping{false};

void on_signal(int) { stopping = true; }

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "switchboard-stream-bench: %s\n"
                 "usage: switchboard-stream-bench sink --port P [--for S]\n"
                 "       switchboard-stream-bench send --port Q [--connections N] [--chunk B] [--seconds S]\n"
                 "                                     [--json FILE] [--label L] [--timeout T]\n",
                 why);
    std::exit(2);
}

sockaddr_in loopback(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

int run_sink(int port, double for_s) {
    const int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto a = loopback(port);
    if (ls < 0 || ::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(ls, 1024) != 0) {
        std::fprintf(stderr, "sink: cannot listen on 127.0.0.1:%d: %s\n", port, std::strerror(errno));
        return 1;
    }
    const auto end = for_s > 0 ? clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                                         std::chrono::duration<double>(for_s))
                               : clock_type::time_point::max();
    while (!stopping && clock_type::now() < end) {
        pollfd p{ls, POLLIN, 0};
        if (::poll(&p, 1, 200) <= 0) continue;
        const int c = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        std::thread([c] {
            // MSG_TRUNC on TCP discards the bytes without copying them out.
            static thread_local std::vector<char> buf(1 << 20);
            for (;;) {
                const ssize_t n = ::recv(c, buf.data(), buf.size(), MSG_TRUNC);
                if (n > 0) continue;
                if (n < 0 && errno == EINTR) continue;
                break;
            }
            ::close(c);
        }).detach();
    }
    ::close(ls);
    return 0;
}

struct conn_result {
    std::uint64_t bytes = 0;
    clock_type::time_point closed{};
    std::string error;
};

int run_send(int port, int connections, std::size_t chunk, double seconds, double timeout_s, const std::string& json,
             const std::string& label) {
    std::vector<conn_result> results(static_cast<std::size_t>(connections));
    std::vector<std::thread> threads;
    const auto start = clock_type::now();
    const auto stop_at = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
    const auto give_up = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(timeout_s));
    for (int i = 0; i < connections; ++i) {
        threads.emplace_back([&, i] {
            auto& r = results[static_cast<std::size_t>(i)];
            const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            auto a = loopback(port);
            if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
                r.error = std::string("connect: ") + std::strerror(errno);
                if (s >= 0) ::close(s);
                return;
            }
            // Bounded: a proxy that stops taking bytes fails the run instead of hanging it.
            timeval tv{1, 0};
            ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            std::vector<char> buf(chunk, 'x');
            while (clock_type::now() < stop_at && !stopping) {
                const ssize_t n = ::send(s, buf.data(), buf.size(), MSG_NOSIGNAL);
                if (n > 0) {
                    r.bytes += static_cast<std::uint64_t>(n);
                    continue;
                }
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && clock_type::now() < give_up) continue;
                r.error = std::string("send: ") + std::strerror(n < 0 ? errno : EPIPE);
                break;
            }
            ::shutdown(s, SHUT_WR);
            char b[256];
            for (;;) {   // the sink closes once it has read everything: the bytes are through
                const ssize_t n = ::recv(s, b, sizeof b, 0);
                if (n == 0) break;
                if (n < 0 && errno == EINTR) continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && clock_type::now() < give_up) continue;
                if (r.error.empty()) r.error = n < 0 ? std::string("waiting for the close: ") + std::strerror(errno)
                                                     : std::string("unexpected bytes from the sink");
                break;
            }
            r.closed = clock_type::now();
            ::close(s);
        });
    }
    for (auto& t : threads) t.join();
    std::uint64_t bytes = 0;
    auto last = start;
    std::string error;
    for (const auto& r : results) {
        bytes += r.bytes;
        last = std::max(last, r.closed);
        if (error.empty() && !r.error.empty()) error = r.error;
    }
    const double elapsed = std::chrono::duration<double>(last - start).count();
    const double mb_s = elapsed > 0 ? static_cast<double>(bytes) / 1e6 / elapsed : 0;
    std::fprintf(stderr, "%s: %d connections x %zu-byte chunks: %.1f MB in %.3f s = %.1f MB/s%s%s\n", label.c_str(),
                 connections, chunk, static_cast<double>(bytes) / 1e6, elapsed, mb_s, error.empty() ? "" : "; error: ",
                 error.c_str());
    if (!json.empty()) {
        FILE* f = std::fopen(json.c_str(), "w");
        if (!f) {
            std::fprintf(stderr, "cannot write %s\n", json.c_str());
            return 1;
        }
        std::string err;   // JSON string: the messages are strerror texts, only quotes to escape
        for (char c : error) err += (c == '"' || c == '\\') ? ' ' : c;
        std::fprintf(f,
                     "{\"label\": \"%s\", \"connections\": %d, \"chunk\": %zu, \"bytes\": %llu, \"seconds\": %.6f, "
                     "\"mb_per_s\": %.3f, \"errors\": [%s%s%s], \"complete\": %s}\n",
                     label.c_str(), connections, chunk, static_cast<unsigned long long>(bytes), elapsed, mb_s,
                     err.empty() ? "" : "\"", err.c_str(), err.empty() ? "" : "\"", error.empty() ? "true" : "false");
        std::fclose(f);
    }
    return error.empty() ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) usage("a command is needed: sink or send");
    const std::string cmd = argv[1];
    int port = 0, connections = 4;
    std::size_t chunk = 64 * 1024;
    double seconds = 3, for_s = 0, timeout_s = 0;
    std::string json, label = "stream";
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) usage(("missing value for " + a).c_str());
        const char* v = argv[++i];
        if (a == "--port") port = std::atoi(v);
        else if (a == "--connections") connections = std::atoi(v);
        else if (a == "--chunk") chunk = static_cast<std::size_t>(std::atol(v));
        else if (a == "--seconds") seconds = std::atof(v);
        else if (a == "--for") for_s = std::atof(v);
        else if (a == "--timeout") timeout_s = std::atof(v);
        else if (a == "--json") json = v;
        else if (a == "--label") label = v;
        else usage(("unknown option " + a).c_str());
    }
    if (port <= 0 || port > 65535) usage("--port: expected 1..65535");
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    if (cmd == "sink") return run_sink(port, for_s);
    if (cmd != "send") usage("unknown command");
    if (connections < 1 || connections > 1024) usage("--connections: expected 1..1024");
    if (chunk < 1 || chunk > (64u << 20)) usage("--chunk: expected 1 byte .. 64 MiB");
    if (!(seconds > 0)) usage("--seconds: expected a positive number");
    if (!(timeout_s > 0)) timeout_s = seconds + 30;
    return run_send(port, connections, chunk, seconds, timeout_s, json, label);
}
