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
struct x509_st;   // OpenSSL's X509

namespace sb::gateway {

// A listener's server context: certificate chain and key, TLS 1.2 or 1.3 only (c.min_version),
// c's ciphers, suites and groups, ALPN (the first of c.alpn the client offers; none agreed:
// the handshake goes on without), and client certificates per c.verify checked against
// c.ca_file. Throws std::runtime_error naming the key and file (or setting) that cannot be
// loaded or is not understood.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const tls_config& c);

// The broker user a client certificate names: `field` of `cert` (the subject's CN; the subject
// DN in RFC 2253 form, "CN=device-1,O=Acme"; or the first DNS / email / URI subject alternative
// name). Empty when the certificate has none (or it is not text a user name can be).
std::string certificate_user(const x509_st* cert, cert_field field);

// What the files of `c` (certificate, key, CA) are now: their modification times, sizes and
// inodes as text. Another value later: one of them changed (or appeared, or went).
std::string tls_files_stamp(const tls_config& c);

class tls_transport : public net::transport {
public:
    // Completes with done(ec) on the transport's executor; no read or write before it did
    // without error. `owner` (the object that owns this transport, or any shared_ptr that keeps
    // it alive) is held while the handshake's reads and writes of the inner transport are
    // pending: an inner transport holds its handler alive, and this layer is that handler.
    virtual void async_handshake(std::shared_ptr<void> owner, std::function<void(net::error_code)> done) = 0;

    // After the handshake: the client certificate, when one was sent and verified against the
    // listener's CA, names the connection's user (certificate_user); peer_identity() is it
    // from now on. Returns it (empty: none).
    virtual const std::string& identify(cert_field field) = 0;
    // After the handshake: what it agreed on, for the log ("TLSv1.3", the cipher, the ALPN
    // protocol or empty).
    virtual std::string_view version() const noexcept = 0;
    virtual std::string_view cipher() const noexcept = 0;
    virtual std::string_view alpn() const noexcept = 0;
};

enum class tls_role { server, client };

// The layer over `inner`, which it owns. Over the TCP transport the OpenSSL stream uses the
// socket directly (no extra call per record); over any other transport it goes through it.
std::unique_ptr<tls_transport> make_tls_transport(std::unique_ptr<net::transport> inner,
                                                  std::shared_ptr<boost::asio::ssl::context> ctx,
                                                  tls_role role = tls_role::server);

}  // namespace sb::gateway
