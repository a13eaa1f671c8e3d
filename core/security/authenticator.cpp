// core/security/authenticator.cpp — users file parsing and PBKDF2-HMAC-SHA256 password checks
// (OpenSSL). Reading the file happens once at start-up; authenticate() only hashes and compares.

#include "core/security/authenticator.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace sb::core {
namespace {

constexpr std::string_view scheme = "pbkdf2-sha256";
constexpr unsigned default_iterations = 10000;
constexpr std::uint32_t max_iterations = 10'000'000;  // a typo with more zeros would stall logins
constexpr std::size_t salt_bytes = 16;
constexpr std::size_t min_salt_bytes = 8;
constexpr std::size_t max_salt_bytes = 64;
constexpr std::size_t hash_bytes = 32;

}  // namespace

// Why each rule: ':' separates fields, a leading '#' would read back as a comment, blanks and
// control characters would be trimmed away or break the line.
const char* user_name_problem(std::string_view name) noexcept {
    if (name.empty()) return "empty user name";
    if (name.front() == '#') return "user name may not start with '#'";
    if (name.front() == ' ' || name.front() == '\t' || name.back() == ' ' || name.back() == '\t')
        return "user name may not start or end with a blank";
    for (char c : name) {
        if (c == ':') return "user name may not contain ':'";
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            return "user name may not contain control characters";
    }
    return nullptr;
}

namespace {

bool derive(std::string_view password, const unsigned char* salt, std::size_t salt_len,
            std::uint32_t iterations, unsigned char* out) noexcept {
    if (password.size() > INT_MAX || salt_len > INT_MAX || iterations > INT_MAX) return false;
    return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt,
                             static_cast<int>(salt_len), static_cast<int>(iterations), EVP_sha256(),
                             static_cast<int>(hash_bytes), out) == 1;
}

std::string encode_base64(const unsigned char* data, std::size_t n) {
    std::string out(4 * ((n + 2) / 3) + 1, '\0');  // EVP_EncodeBlock writes a NUL
    const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
    out.resize(static_cast<std::size_t>(len));
    return out;
}

// Strict: EVP_DecodeBlock skips blanks and does not strip the padding bytes it decodes, so the
// shape is checked here and the padding taken off the length.
std::optional<std::vector<unsigned char>> decode_base64(std::string_view s) {
    if (s.empty() || s.size() % 4 != 0 || s.size() > 1024) return std::nullopt;
    std::size_t pad = 0;
    if (s.back() == '=') ++pad;
    if (s[s.size() - 2] == '=') ++pad;
    if (pad == 1 && s[s.size() - 2] == '=') return std::nullopt;  // "x=y=" style
    for (std::size_t i = 0; i < s.size() - pad; ++i) {
        const char c = s[i];
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                        c == '+' || c == '/';
        if (!ok) return std::nullopt;
    }
    std::vector<unsigned char> out(s.size() / 4 * 3);
    const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(s.data()),
                                  static_cast<int>(s.size()));
    if (n < 0 || static_cast<std::size_t>(n) < pad) return std::nullopt;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::string read_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    std::string text;
    char buf[8192];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    const bool failed = std::ferror(f) != 0;
    const int err = errno;
    std::fclose(f);
    if (failed) throw std::runtime_error("cannot read " + path + ": " + std::strerror(err));
    return text;
}

// No users file: nothing to check against, as in ActiveMQ without a security plugin.
class open_authenticator final : public authenticator {
public:
    std::optional<principal> authenticate(std::string_view user,
                                          std::string_view) const noexcept override {
        try {
            return principal{std::string(user), user.empty()};
        } catch (...) {  // bad_alloc: refusing one login beats terminating the broker
            return std::nullopt;
        }
    }
    bool hashes(std::string_view) const noexcept override { return false; }
};

}  // namespace

users_authenticator::users_authenticator(std::string_view text, std::string_view source_name,
                                         bool allow_anonymous)
    : allow_anonymous_(allow_anonymous) {
    std::map<std::string, std::size_t, std::less<>> first_line;
    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        const std::size_t nl = text.find('\n');
        const std::string_view line = trim(text.substr(0, nl));
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (line.empty() || line.front() == '#') continue;

        auto fail = [&](const std::string& what) {
            throw std::runtime_error(std::string(source_name) + ":" + std::to_string(line_no) + ": " + what);
        };

        std::string_view fields[5];
        std::size_t count = 0;
        for (std::string_view rest = line;;) {
            const std::size_t colon = rest.find(':');
            if (count < 5) fields[count] = rest.substr(0, colon);
            ++count;
            if (colon == std::string_view::npos) break;
            rest.remove_prefix(colon + 1);
        }
        if (count == 2 && fields[1] == "certificate") {
            if (const char* problem = user_name_problem(fields[0])) fail(problem);
            const auto [at, fresh] = first_line.emplace(std::string(fields[0]), line_no);
            if (!fresh)
                fail("duplicate user '" + std::string(fields[0]) + "' (first on line " + std::to_string(at->second) + ")");
            users_.emplace(std::string(fields[0]), password_hash{});
            continue;
        }
        // The line itself is never quoted back: it holds a password hash.
        if (count != 5)
            fail("expected name:pbkdf2-sha256:iterations:salt:hash (5 fields separated by ':'), got " +
                 std::to_string(count) + " fields");

        const std::string_view name = fields[0];
        if (const char* problem = user_name_problem(name)) fail(problem);
        if (fields[1] != scheme)
            fail("unknown password scheme '" + std::string(fields[1]) + "' (supported: " +
                 std::string(scheme) + ")");

        password_hash h;
        const std::string_view iters = fields[2];
        const auto [end, ec] = std::from_chars(iters.data(), iters.data() + iters.size(), h.iterations);
        if (iters.empty() || ec != std::errc{} || end != iters.data() + iters.size() || h.iterations < 1 ||
            h.iterations > max_iterations)
            fail("iterations must be an integer 1.." + std::to_string(max_iterations));

        auto salt = decode_base64(fields[3]);
        if (!salt) fail("salt is not valid base64");
        if (salt->size() < min_salt_bytes || salt->size() > max_salt_bytes)
            fail("salt must be " + std::to_string(min_salt_bytes) + ".." + std::to_string(max_salt_bytes) +
                 " bytes, got " + std::to_string(salt->size()));
        h.salt = std::move(*salt);

        const auto hash = decode_base64(fields[4]);
        if (!hash) fail("hash is not valid base64");
        if (hash->size() != hash_bytes)
            fail("hash must be " + std::to_string(hash_bytes) + " bytes (PBKDF2-HMAC-SHA256), got " +
                 std::to_string(hash->size()));
        std::memcpy(h.hash.data(), hash->data(), hash_bytes);

        const auto [at, fresh] = first_line.emplace(std::string(name), line_no);
        if (!fresh)
            fail("duplicate user '" + std::string(name) + "' (first on line " + std::to_string(at->second) +
                 ")");
        users_.emplace(std::string(name), std::move(h));
    }
}

std::optional<principal> users_authenticator::authenticate(std::string_view user,
                                                           std::string_view password) const noexcept {
    if (user.empty()) {
        if (!allow_anonymous_) return std::nullopt;
        return principal{{}, true};
    }
    // An unknown user costs the same hashing as a known one, so response time does not tell
    // which user names exist.
    static constexpr unsigned char dummy_salt[salt_bytes] = {};
    const auto it = users_.find(user);
    // A certificate-only user (no hash) costs what an unknown one does, and matches no password.
    const bool known = it != users_.end() && it->second.iterations != 0;
    const unsigned char* salt = known ? it->second.salt.data() : dummy_salt;
    const std::size_t salt_len = known ? it->second.salt.size() : sizeof dummy_salt;
    const std::uint32_t iterations = known ? it->second.iterations : default_iterations;

    std::array<unsigned char, hash_bytes> got{};
    if (!derive(password, salt, salt_len, iterations, got.data())) return std::nullopt;
    if (!known) return std::nullopt;
    if (CRYPTO_memcmp(got.data(), it->second.hash.data(), hash_bytes) != 0) return std::nullopt;
    try {
        return principal{std::string(user), false};
    } catch (...) {  // bad_alloc
        return std::nullopt;
    }
}

std::optional<principal> users_authenticator::authenticate_certificate(std::string_view user) const noexcept {
    if (user.empty() || users_.find(user) == users_.end()) return std::nullopt;
    try {
        return principal{std::string(user), false};
    } catch (...) {  // bad_alloc
        return std::nullopt;
    }
}

std::unique_ptr<authenticator> make_authenticator(bool allow_anonymous, const std::string& users_file) {
    if (users_file.empty()) {
        if (!allow_anonymous)
            throw std::runtime_error("allow_anonymous is false but no users file is set: nobody could log in");
        return std::make_unique<open_authenticator>();
    }
    return std::make_unique<users_authenticator>(read_file(users_file), users_file, allow_anonymous);
}

std::string make_password_line(std::string_view user, std::string_view password, unsigned iterations) {
    if (const char* problem = user_name_problem(user)) throw std::invalid_argument(problem);
    if (iterations < 1 || iterations > max_iterations)
        throw std::invalid_argument("iterations must be 1.." + std::to_string(max_iterations));

    unsigned char salt[salt_bytes];
    if (RAND_bytes(salt, sizeof salt) != 1) throw std::runtime_error("RAND_bytes failed");
    unsigned char hash[hash_bytes];
    if (!derive(password, salt, sizeof salt, iterations, hash))
        throw std::runtime_error("PKCS5_PBKDF2_HMAC failed");

    std::string line(user);
    line += ':';
    line += scheme;
    line += ':';
    line += std::to_string(iterations);
    line += ':';
    line += encode_base64(salt, sizeof salt);
    line += ':';
    line += encode_base64(hash, sizeof hash);
    return line;
}

}  // namespace sb::core
