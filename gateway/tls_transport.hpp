// gateway/tls_transport.hpp — TLS termination: net::transport over an OpenSSL stream, so that
// kernel sessions and relays run unchanged behind it. Beast and the SSL headers stay in the
// .cpp; this header only names the context.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "gateway/config.hpp"
#include "gateway/tcp_transport.hpp"

namespace boost::asio::ssl {
class context;
}

namespace sb::gateway {

// A listener's server context (certificate chain and key, TLS 1.2+). Throws
// std::runtime_error naming the file when it cannot be loaded.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const tls_config& c);

// Creates the transport; `handshake` must complete (done(ec) with no error) before any read or
// write. `on_destroy` as for tcp_transport.
std::unique_ptr<socket_transport> make_tls_transport(boost::asio::ip::tcp::socket socket,
                                                     std::shared_ptr<boost::asio::ssl::context> ctx,
                                                     std::function<void()> on_destroy);
void tls_handshake(socket_transport& t, std::function<void(net::error_code)> done);

}  // namespace sb::gateway
