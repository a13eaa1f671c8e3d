// tests/unit/gateway/tls_test.cpp — the TLS settings of a listener: which part of a client
// certificate names the broker user, what a context refuses to be made from, and the file
// stamps the certificate reload polls.
#include "gateway/tls_transport.hpp"

#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <unistd.h>

using namespace sb::gateway;

namespace {

struct cert_deleter {
    void operator()(X509* x) const { X509_free(x); }
};
using cert_ptr = std::unique_ptr<X509, cert_deleter>;
struct key_deleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using key_ptr = std::unique_ptr<EVP_PKEY, key_deleter>;

// A self-signed certificate with `subject` entries ({"CN", "device-1"}, ...) and the subject
// alternative names `san` ("email:a@b,URI:urn:x"; empty: none), signed by `key`.
cert_ptr make_cert(EVP_PKEY* key, std::initializer_list<std::pair<const char*, std::string>> subject,
                   const std::string& san = {}) {
    cert_ptr cert(X509_new());
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 7);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    for (const auto& [field, value] : subject)
        X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0);
    X509_set_issuer_name(cert.get(), name);
    if (!san.empty()) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
        REQUIRE(ext);
        X509_add_ext(cert.get(), ext, -1);
        X509_EXTENSION_free(ext);
    }
    REQUIRE(X509_sign(cert.get(), key, EVP_sha256()) > 0);
    return cert;
}

struct temp_dir {
    std::string path;
    temp_dir() {
        char name[] = "/tmp/sb_tls_test_XXXXXX";
        REQUIRE(::mkdtemp(name));
        path = name;
    }
    ~temp_dir() { std::system(("rm -rf " + path).c_str()); }
    std::string file(const std::string& n) const { return path + "/" + n; }
};

void write_pem(const std::string& path, X509* cert) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    PEM_write_X509(f, cert);
    std::fclose(f);
}
void write_pem(const std::string& path, EVP_PKEY* key) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
}

std::string error_of(const tls_config& c) {
    try {
        make_tls_context(c);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return {};
}

}  // namespace

TEST_CASE("tls: the client certificate's CN, DN or first SAN of a kind is its user", "[gateway][tls]") {
    key_ptr key(EVP_EC_gen("P-256"));
    const auto cert = make_cert(key.get(), {{"O", "Acme, Inc"}, {"CN", "device-1"}},
                                "DNS:d1.example,DNS:d2.example,email:device-1@devices.test,URI:urn:sb:device-1");
    CHECK(certificate_user(cert.get(), cert_field::cn) == "device-1");
    CHECK(certificate_user(cert.get(), cert_field::dn) == "CN=device-1,O=Acme\\, Inc");
    CHECK(certificate_user(cert.get(), cert_field::san_dns) == "d1.example");
    CHECK(certificate_user(cert.get(), cert_field::san_email) == "device-1@devices.test");
    CHECK(certificate_user(cert.get(), cert_field::san_uri) == "urn:sb:device-1");

    // What it lacks names nobody.
    const auto bare = make_cert(key.get(), {{"O", "Acme"}});
    CHECK(certificate_user(bare.get(), cert_field::cn).empty());
    CHECK(certificate_user(bare.get(), cert_field::san_email).empty());
    CHECK(certificate_user(nullptr, cert_field::cn).empty());

    // A UTF-8 CN comes out as UTF-8; one with a NUL or a control character inside names nobody
    // (it could pass for the name before the NUL).
    const auto utf8 = make_cert(key.get(), {{"CN", "g\xC3\xA9rard"}});
    CHECK(certificate_user(utf8.get(), cert_field::cn) == "g\xC3\xA9rard");
    const auto nul = make_cert(key.get(), {{"CN", std::string("admin\0.evil", 11)}});
    CHECK(certificate_user(nul.get(), cert_field::cn).empty());
}

TEST_CASE("tls: a context is made from the listener's settings; what OpenSSL refuses is named", "[gateway][tls]") {
    temp_dir d;
    key_ptr key(EVP_EC_gen("P-256"));
    key_ptr other(EVP_EC_gen("P-256"));
    const auto cert = make_cert(key.get(), {{"CN", "localhost"}});
    write_pem(d.file("c.pem"), cert.get());
    write_pem(d.file("k.pem"), key.get());
    write_pem(d.file("other.pem"), other.get());

    tls_config c;
    c.cert_file = d.file("c.pem");
    c.key_file = d.file("k.pem");
    c.min_version = "1.3";
    c.ciphers = "ECDHE+AESGCM";
    c.ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";
    c.groups = "X25519:P-256";
    c.alpn = {"mqtt", "stomp"};
    c.verify = verify_client::required;
    c.ca_file = d.file("c.pem");
    CHECK(error_of(c).empty());

    tls_config bad = c;
    bad.ciphers = "NO-SUCH-CIPHER";
    CHECK(error_of(bad).starts_with("tls.ciphers NO-SUCH-CIPHER: "));
    bad = c;
    bad.ciphersuites = "TLS_NOPE";
    CHECK(error_of(bad).starts_with("tls.ciphersuites TLS_NOPE: "));
    bad = c;
    bad.groups = "P-999";
    CHECK(error_of(bad).starts_with("tls.groups P-999: "));
    bad = c;
    bad.key_file = d.file("other.pem");   // not the certificate's key (a half-replaced pair)
    CHECK(error_of(bad).starts_with("tls.key " + d.file("other.pem") + ": "));
    bad = c;
    bad.ca_file = d.file("missing.pem");
    CHECK(error_of(bad).starts_with("tls.ca " + d.file("missing.pem") + ": "));
    bad = c;
    bad.cert_file = d.file("missing.pem");
    CHECK(error_of(bad).starts_with("tls.cert " + d.file("missing.pem") + ": "));
}

TEST_CASE("tls: the files' stamp changes when one of them is rewritten, replaced or removed", "[gateway][tls]") {
    temp_dir d;
    tls_config c;
    c.cert_file = d.file("c.pem");
    c.key_file = d.file("k.pem");
    std::ofstream(c.cert_file) << "a";
    std::ofstream(c.key_file) << "b";
    const std::string first = tls_files_stamp(c);
    CHECK(tls_files_stamp(c) == first);
    std::ofstream(c.key_file) << "bb";   // another size
    const std::string second = tls_files_stamp(c);
    CHECK(second != first);
    std::ofstream(d.file("new.pem")) << "a";
    REQUIRE(std::rename(d.file("new.pem").c_str(), c.cert_file.c_str()) == 0);   // another inode
    const std::string third = tls_files_stamp(c);
    CHECK(third != second);
    std::remove(c.cert_file.c_str());
    CHECK(tls_files_stamp(c) != third);
}
