// core/security/authenticator.hpp — who may connect: user name + password → principal.
// Protocol-neutral (STOMP login/passcode, MQTT username/password, SASL PLAIN all land here).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sb::core {

struct principal {
    std::string user;  // empty for an anonymous connection
    bool anonymous = false;

    bool operator==(const principal&) const = default;
};

class authenticator {
public:
    virtual ~authenticator() = default;
    // Called on a worker thread; may take a few milliseconds (password hashing). Never throws.
    // Safe to call from several threads at once (no state changes after construction).
    // nullopt: refuse the connection. An empty `user` means the client gave no user name.
    virtual std::optional<principal> authenticate(std::string_view user,
                                                  std::string_view password) const noexcept = 0;

    // Whether authenticate(user, ...) does real work (password hashing), so that
    // auth_pool runs it off the worker loops; false when the answer is a lookup (no users file,
    // an anonymous login), which auth_pool then gives without its threads. Never throws.
    virtual bool hashes(std::string_view user) const noexcept {
        (void)user;
        return true;
    }

    // The user a verified TLS client certificate names (the transport checked the certificate;
    // no password). nullopt: refuse. This default (no users file) accepts any name. Never
    // throws; a lookup, no hashing.
    virtual std::optional<principal> authenticate_certificate(std::string_view user) const noexcept {
        try {
            return principal{std::string(user), false};
        } catch (...) {
            return std::nullopt;
        }
    }
};

// Checks passwords against a users file:
//   # comment
//   name:pbkdf2-sha256:<iterations>:<salt base64>:<hash base64>
//   name:certificate          (a user who logs in only with a TLS client certificate)
// An empty user name is accepted as anonymous only if allow_anonymous; a named user must be
// in the file with the right password; a certificate user must be in the file (either form).
class users_authenticator final : public authenticator {
public:
    // Parses the text of a users file; `source_name` (the path) prefixes error messages.
    // Throws std::runtime_error "<source>:<line>: <problem>" on a malformed line.
    users_authenticator(std::string_view text, std::string_view source_name, bool allow_anonymous);

    std::optional<principal> authenticate(std::string_view user,
                                          std::string_view password) const noexcept override;

    // An empty user name is decided without hashing; any other (even unknown: same cost, so
    // response time does not tell which names exist) hashes.
    bool hashes(std::string_view user) const noexcept override { return !user.empty(); }
    std::optional<principal> authenticate_certificate(std::string_view user) const noexcept override;

    std::size_t user_count() const noexcept { return users_.size(); }

private:
    struct password_hash {
        std::uint32_t iterations = 0;   // 0: a certificate-only user (no password matches)
        std::vector<unsigned char> salt;
        std::array<unsigned char, 32> hash{};  // PBKDF2-HMAC-SHA256 output
    };

    bool allow_anonymous_;
    std::map<std::string, password_hash, std::less<>> users_;
};

// The authenticator the security config asks for:
// - users_file empty, allow_anonymous: no checking at all (like ActiveMQ without a security
//   plugin): a named user is accepted as that user whatever the password, no name as anonymous;
// - users_file empty, !allow_anonymous: throws (nobody could ever log in);
// - users_file set: a users_authenticator over that file.
// Throws std::runtime_error "cannot open <path>: <reason>" or "<path>:<line>: <problem>".
std::unique_ptr<authenticator> make_authenticator(bool allow_anonymous, const std::string& users_file);

// Why a users file cannot hold the user name `name` (see make_password_line); null when it can.
const char* user_name_problem(std::string_view name) noexcept;

// One users-file line for `switchboard passwd USER`: a fresh random 16-byte salt and a 32-byte
// PBKDF2-HMAC-SHA256 hash, both base64. No trailing newline.
// Throws std::invalid_argument for a user name the file cannot hold (empty, ':', '#' first,
// control characters, surrounding blanks) or iterations outside 1..10,000,000;
// std::runtime_error if OpenSSL fails.
std::string make_password_line(std::string_view user, std::string_view password,
                               unsigned iterations = 10000);

}  // namespace sb::core
