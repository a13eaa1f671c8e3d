// gateway/tls_transport.cpp — asio::ssl::stream behind the net::transport interface, over any
// inner net::transport.
//
// The stream's next layer is the TCP socket itself when the inner transport is the stack's TCP
// bottom (as fast as a TLS socket), and otherwise `transport_stream`: the inner net::transport
// presented as the Asio AsyncReadStream / AsyncWriteStream that ssl::stream wants.
//
// async_wait_readable has no meaning below TLS (readable socket bytes may be a partial record,
// or decrypt to nothing): it reads into an internal buffer instead, and read_available serves
// that buffer. An error seen there (EOF, truncation) is handed out by the next read_available.
#include "gateway/tls_transport.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <type_traits>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "gateway/layer_buffer.hpp"
#include "gateway/tcp_transport.hpp"

namespace sb::gateway {

namespace asio = boost::asio;
namespace ssl = asio::ssl;

namespace {

// A net::transport as an Asio AsyncReadStream / AsyncWriteStream. ssl::stream has at most one
// read and one write of its next layer pending, which is what a net::transport allows. The inner
// transport completes to this object (a stream_handler) through a shared_ptr that shares
// ownership with `owner`: whatever keeps the whole stack alive while an operation is pending.
class transport_stream final : public net::stream_handler {
public:
    using executor_type = asio::any_io_executor;
    using lowest_layer_type = transport_stream;

    explicit transport_stream(net::transport& inner) : inner_(inner) {}

    executor_type get_executor() { return inner_.get_executor(); }
    lowest_layer_type& lowest_layer() noexcept { return *this; }

    // Set by the layer above for as long as one of its operations is pending.
    std::shared_ptr<void> owner;

    template <class MutableBuffers, class Handler>
    auto async_read_some(const MutableBuffers& buffers, Handler&& handler) {
        return asio::async_initiate<Handler, void(net::error_code, std::size_t)>(
            [this](auto h, const MutableBuffers& b) {
                const asio::mutable_buffer buf = *asio::buffer_sequence_begin(b);   // ssl::stream passes one
                handler_type(std::move(h)).swap(read_);
                if (buf.size() == 0) return asio::post(get_executor(), [this] { on_read({}, 0); });
                inner_.async_read_some(std::span(static_cast<std::byte*>(buf.data()), buf.size()), self());
            },
            handler, buffers);
    }

    template <class ConstBuffers, class Handler>
    auto async_write_some(const ConstBuffers& buffers, Handler&& handler) {
        return asio::async_initiate<Handler, void(net::error_code, std::size_t)>(
            [this](auto h, const ConstBuffers& b) {
                const asio::const_buffer buf = *asio::buffer_sequence_begin(b);
                handler_type(std::move(h)).swap(write_);
                if (buf.size() == 0) return asio::post(get_executor(), [this] { on_write({}, 0); });
                inner_.async_write(std::span(static_cast<const std::byte*>(buf.data()), buf.size()), self());
            },
            handler, buffers);
    }

    void on_read(net::error_code ec, std::size_t n) override { take(read_)(ec, n); }
    void on_write(net::error_code ec, std::size_t n) override { take(write_)(ec, n); }

private:
    using handler_type = asio::any_completion_handler<void(net::error_code, std::size_t)>;

    // Moves by swap: Boost 1.81's move assignment of any_completion_handler wraps the handler in
    // another one, without end.
    static handler_type take(handler_type& h) {
        handler_type out;
        out.swap(h);
        return out;
    }

    std::shared_ptr<net::stream_handler> self() { return {owner, this}; }

    net::transport& inner_;
    // The ssl::stream's pending operations (their memory comes from Asio's per-thread recycling
    // allocator: nothing is allocated per record in the steady state).
    handler_type read_;
    handler_type write_;
};

// `Next` is the ssl::stream's next layer: the TCP socket (a reference) or a transport_stream.
template <class Next>
class tls_layer final : public tls_transport {
    static constexpr bool over_socket = std::is_same_v<Next, tcp_socket&>;

public:
    tls_layer(std::unique_ptr<net::transport> inner, std::shared_ptr<ssl::context> ctx, tls_role role)
        : inner_(std::move(inner)), adapter_(adapter_for(*inner_)), ctx_(std::move(ctx)), stream_(next(), *ctx_),
          role_(role) {}

    void async_handshake(std::shared_ptr<void> owner, std::function<void(net::error_code)> done) override {
        set_owner(owner);
        owned_.handshake = true;
        stream_.async_handshake(role_ == tls_role::server ? ssl::stream_base::server : ssl::stream_base::client,
                                [this, owner = std::move(owner), done = std::move(done)](net::error_code ec) {
                                    owned_.handshake = false;
                                    release_owner();
                                    done(ec);
                                });
    }

    void async_read_some(std::span<std::byte> into, std::shared_ptr<net::stream_handler> h) override {
        if (pending_.ready()) {
            net::error_code ec;
            const std::size_t n = read_available(into, ec);
            asio::post(get_executor(), [h = std::move(h), ec, n] { h->on_read(n ? net::error_code{} : ec, n); });
            return;
        }
        set_owner(h);
        owned_.read = true;
        stream_.async_read_some(asio::buffer(into.data(), into.size()),
                                [this, h = std::move(h)](net::error_code ec, std::size_t n) {
                                    owned_.read = false;
                                    release_owner();
                                    h->on_read(normal(ec), n);
                                });
    }

    void async_wait_readable(std::shared_ptr<net::stream_handler> h) override {
        if (pending_.ready()) {
            asio::post(get_executor(), [h = std::move(h)] { h->on_read({}, 0); });
            return;
        }
        const auto space = pending_.prepare();
        set_owner(h);
        owned_.read = true;
        stream_.async_read_some(asio::buffer(space.data(), space.size()),
                                [this, h = std::move(h)](net::error_code ec, std::size_t n) {
                                    owned_.read = false;
                                    release_owner();
                                    if (ec == asio::error::operation_aborted) return h->on_read(ec, 0);
                                    pending_.filled(n);
                                    if (ec) pending_.fail(normal(ec));
                                    h->on_read({}, 0);
                                });
    }

    std::size_t read_available(std::span<std::byte> into, net::error_code& ec) override {
        return pending_.take(into, ec);
    }

    void async_write(std::span<const std::byte> data, std::shared_ptr<net::stream_handler> h) override {
        set_owner(h);
        owned_.write = true;
        asio::async_write(stream_, asio::buffer(data.data(), data.size()),
                          [this, h = std::move(h)](net::error_code ec, std::size_t n) {
                              owned_.write = false;
                              release_owner();
                              h->on_write(ec, n);
                          });
    }

    // As before TLS was a layer: the send side of what is below ends, without close_notify
    // (message protocols frame their own ends).
    void shutdown_send() noexcept override { inner_->shutdown_send(); }
    void close() noexcept override { inner_->close(); }

    asio::any_io_executor get_executor() override { return inner_->get_executor(); }
    const std::string& peer() const noexcept override { return inner_->peer(); }
    const std::string& peer_identity() const noexcept override {
        return identity_.empty() ? inner_->peer_identity() : identity_;
    }

    const std::string& identify(cert_field field) override {
        SSL* ssl = const_cast<ssl::stream<Next>&>(stream_).native_handle();
        identity_.clear();
        // Present and verified: with verify_client none nothing was asked for (and a certificate
        // sent anyway is not checked); SSL_get_verify_result is X509_V_OK only after a check.
        if (X509* cert = SSL_get1_peer_certificate(ssl)) {
            if (SSL_get_verify_result(ssl) == X509_V_OK &&
                (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER))
                identity_ = certificate_user(cert, field);
            X509_free(cert);
        }
        return identity_;
    }
    std::string_view version() const noexcept override { return SSL_get_version(handle()); }
    std::string_view cipher() const noexcept override {
        const char* c = SSL_get_cipher_name(handle());
        return c ? c : "";
    }
    std::string_view alpn() const noexcept override {
        const unsigned char* p = nullptr;
        unsigned n = 0;
        SSL_get0_alpn_selected(handle(), &p, &n);
        return p ? std::string_view(reinterpret_cast<const char*>(p), n) : std::string_view();
    }

private:
    SSL* handle() const noexcept { return const_cast<ssl::stream<Next>&>(stream_).native_handle(); }

    static std::optional<transport_stream> adapter_for(net::transport& inner) {
        if constexpr (over_socket) return std::nullopt;
        else return std::optional<transport_stream>(std::in_place, inner);
    }

    Next next() {
        if constexpr (over_socket) return static_cast<tcp_transport&>(*inner_).socket();
        else return *adapter_;
    }

    // The owner of the stack while an operation of this layer is pending (for the inner
    // transport's completions; see transport_stream). Released when none is, so that the
    // stack does not keep its own owner alive.
    void set_owner(const std::shared_ptr<void>& o) {
        if constexpr (!over_socket) adapter_->owner = o;
        else (void)o;
    }
    void release_owner() {
        if constexpr (!over_socket)
            if (!owned_.read && !owned_.write && !owned_.handshake) adapter_->owner.reset();
    }

    // A peer that closes without close_notify is an ordinary EOF for a message protocol: its
    // frames carry their own lengths or terminators.
    static net::error_code normal(net::error_code ec) {
        return ec == ssl::error::stream_truncated ? net::error_code(asio::error::eof) : ec;
    }

    std::unique_ptr<net::transport> inner_;
    std::optional<transport_stream> adapter_;   // over any transport but the TCP bottom
    std::shared_ptr<ssl::context> ctx_;
    ssl::stream<Next> stream_;
    tls_role role_;
    struct {
        bool read = false;
        bool write = false;
        bool handshake = false;
    } owned_;
    layer_buffer pending_;   // plaintext read by async_wait_readable, not yet taken
    std::string identity_;   // identify(): the user the client certificate names
};

}  // namespace

namespace {

// OpenSSL's reason for the last failure (its queue emptied), for the operator.
std::string openssl_error() {
    std::string out;
    while (const unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "not accepted by OpenSSL" : out;
}

// A context and what its callbacks read, in one allocation (the context is what is shared).
struct server_context {
    ssl::context ctx{ssl::context::tls_server};
    std::string alpn;   // the listener's protocols in ALPN wire form (length-prefixed)
};

// The first of the server's protocols (in its order) that the client offers; none: no ALPN
// (the client may still speak what it wants; detection decides on `auto` ports).
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
                void* arg) {
    const auto& server = *static_cast<const std::string*>(arg);
    unsigned char* chosen = nullptr;
    if (SSL_select_next_proto(&chosen, outlen, reinterpret_cast<const unsigned char*>(server.data()),
                              static_cast<unsigned>(server.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

std::string text_of(const ASN1_STRING* s) {
    unsigned char* utf8 = nullptr;
    const int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n < 0) return {};
    std::string out(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
    OPENSSL_free(utf8);
    return out;
}

}  // namespace

std::string certificate_user(const x509_st* cert, cert_field field) {
    if (!cert) return {};
    std::string out;
    const X509_NAME* subject = X509_get_subject_name(cert);
    switch (field) {
    case cert_field::cn: {
        const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
        if (at >= 0) out = text_of(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
        break;
    }
    case cert_field::dn: {
        BIO* b = BIO_new(BIO_s_mem());
        if (!b) return {};
        if (X509_NAME_print_ex(b, subject, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
            char* data = nullptr;
            const long n = BIO_get_mem_data(b, &data);
            if (n > 0) out.assign(data, static_cast<std::size_t>(n));
        }
        BIO_free(b);
        break;
    }
    case cert_field::san_dns:
    case cert_field::san_email:
    case cert_field::san_uri: {
        const int type = field == cert_field::san_dns ? GEN_DNS : field == cert_field::san_email ? GEN_EMAIL : GEN_URI;
        auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
        if (!names) return {};
        for (int i = 0; i < sk_GENERAL_NAME_num(names) && out.empty(); ++i) {
            const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
            if (g->type == type) out = text_of(g->d.ia5);
        }
        GENERAL_NAMES_free(names);
        break;
    }
    }
    // A NUL or control character inside would let one certificate pass for another name.
    for (char c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return {};
    return out;
}

std::string tls_files_stamp(const tls_config& c) {
    std::string out;
    for (const std::string* f : {&c.cert_file, &c.key_file, &c.ca_file}) {
        struct stat st {};
        if (!f->empty() && ::stat(f->c_str(), &st) == 0)
            out += std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ":" +
                   std::to_string(st.st_size) + ":" + std::to_string(st.st_ino);
        out += '|';
    }
    return out;
}

std::shared_ptr<ssl::context> make_tls_context(const tls_config& c) {
    auto holder = std::make_shared<server_context>();
    auto& ctx = holder->ctx;
    SSL_CTX* native = ctx.native_handle();
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    ERR_clear_error();
    auto check = [](bool ok, const std::string& what) {
        if (!ok) throw std::runtime_error(what + ": " + openssl_error());
    };
    check(SSL_CTX_set_min_proto_version(native, c.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION) == 1,
          "tls.min_version " + c.min_version);
    if (!c.ciphers.empty()) check(SSL_CTX_set_cipher_list(native, c.ciphers.c_str()) == 1, "tls.ciphers " + c.ciphers);
    if (!c.ciphersuites.empty())
        check(SSL_CTX_set_ciphersuites(native, c.ciphersuites.c_str()) == 1, "tls.ciphersuites " + c.ciphersuites);
    if (!c.groups.empty()) check(SSL_CTX_set1_groups_list(native, c.groups.c_str()) == 1, "tls.groups " + c.groups);
    net::error_code ec;
    ctx.use_certificate_chain_file(c.cert_file, ec);
    if (ec) throw std::runtime_error("tls.cert " + c.cert_file + ": " + ec.message());
    ctx.use_private_key_file(c.key_file, ssl::context::pem, ec);   // checks it matches the certificate
    if (ec) throw std::runtime_error("tls.key " + c.key_file + ": " + ec.message());
    for (const auto& p : c.alpn) {
        holder->alpn += static_cast<char>(p.size());
        holder->alpn += p;
    }
    if (!holder->alpn.empty()) SSL_CTX_set_alpn_select_cb(native, select_alpn, &holder->alpn);
    if (c.verify != verify_client::none) {
        ctx.load_verify_file(c.ca_file, ec);
        if (ec) throw std::runtime_error("tls.ca " + c.ca_file + ": " + ec.message());
        // The CAs named in the CertificateRequest, so that a client picks a certificate they signed.
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(c.ca_file.c_str());
        check(names != nullptr, "tls.ca " + c.ca_file);
        SSL_CTX_set_client_CA_list(native, names);
        ctx.set_verify_mode(ssl::verify_peer |
                            (c.verify == verify_client::required ? ssl::verify_fail_if_no_peer_cert : 0));
    }
    // Sessions resumed with a client certificate need a context id (else OpenSSL fails them).
    static constexpr unsigned char sid[] = "switchboard";
    SSL_CTX_set_session_id_context(native, sid, sizeof sid - 1);
    return {holder, &holder->ctx};
}

std::unique_ptr<tls_transport> make_tls_transport(std::unique_ptr<net::transport> inner, std::shared_ptr<ssl::context> ctx,
                                                  tls_role role) {
    if (dynamic_cast<tcp_transport*>(inner.get()))
        return std::make_unique<tls_layer<tcp_socket&>>(std::move(inner), std::move(ctx), role);
    return std::make_unique<tls_layer<transport_stream&>>(std::move(inner), std::move(ctx), role);
}

}  // namespace sb::gateway
