// gateway/front.hpp — the first moments of a connection on a routing listener: TLS handshake
// (when the listener terminates TLS), protocol detection (`auto`), then the hand-over to a
// kernel session or to a relay towards a backend, per the listener's routes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "gateway/backend.hpp"
#include "gateway/config.hpp"
#include "gateway/tcp_transport.hpp"

namespace boost::asio::ssl {
class context;
}

namespace sb::gateway {

struct front_routes {
    const listener_config* cfg = nullptr;
    std::shared_ptr<boost::asio::ssl::context> tls;   // set when the listener terminates TLS
    cert_field user_from = cert_field::cn;              // what of a client certificate names its user
    // A kernel session for a protocol the kernel speaks (kernel_adapters.hpp).
    std::function<std::shared_ptr<net::session>(wire, std::unique_ptr<net::transport>, std::uint64_t)> kernel;
    // The backend running now under that name (SIGHUP may replace it); null when none.
    std::function<std::shared_ptr<backend>(const std::string&)> backend_named;
    // Registers the session that takes the connection over (shutdown reaches it).
    std::function<void(session_link&, const std::shared_ptr<net::session>&)> adopt;
};

// Where a connection with protocol `w` (nullopt: not inspected) goes on listener `l`; nullopt
// when nowhere (the kernel has no adapter for it, kernel_speaks, and no route names a backend).
std::optional<route> route_for(const listener_config& l, std::optional<wire> w);

// True when connections of `l` need the front stage (TLS, detection or a backend route);
// otherwise they go straight to the kernel session of the listener's protocol.
bool needs_front(const listener_config& l);

// `t`: the connection's stack, TCP alone (the front pushes TLS when the listener terminates it).
std::shared_ptr<net::session> make_front(transport_stack t, std::shared_ptr<const front_routes> r,
                                         std::uint64_t conn);

}  // namespace sb::gateway
