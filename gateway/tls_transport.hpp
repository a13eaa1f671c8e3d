// gateway/tls_transport.hpp — the TLS layer of a transport stack: net::transport over an OpenSSL
// stream that wraps any inner net::transport (TCP, another layer, an in-memory pipe in the tests),
// so that kernel sessions, relays and the layers above run unchanged on it. Beast and the SSL
// headers stay in the .cpp; this header only names the context.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "gateway/transport.hpp"
#include "gateway/config.hpp"

namespace boost::asio::ssl {
class context;
}

namespace sb::gateway {

// A listener's server context (certificate chain and key, TLS 1.2+). Throws
// std::runtime_error naming the file when it cannot be loaded.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const tls_config& c);

class tls_transport : public net::transport {
public:
    // Completes with done(ec) on the transport's executor; no read or write before it did
    // without error. `owner` (the object that owns this transport, or any shared_ptr that keeps
    // it alive) is held while the handshake's reads and writes of the inner transport are
    // pending: an inner transport holds its handler alive, and this layer is that handler.
    virtual void async_handshake(std::shared_ptr<void> owner, std::function<void(net::error_code)> done) = 0;
};

enum class tls_role { server, client };

// The layer over `inner`, which it owns. Over the TCP transport the OpenSSL stream uses the
// socket directly (no extra call per record); over any other transport it goes through it.
std::unique_ptr<tls_transport> make_tls_transport(std::unique_ptr<net::transport> inner,
                                                  std::shared_ptr<boost::asio::ssl::context> ctx,
                                                  tls_role role = tls_role::server);

}  // namespace sb::gateway
