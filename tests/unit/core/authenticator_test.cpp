// tests/unit/core/authenticator_test.cpp — users file parsing, PBKDF2 password checks and the
// anonymous / no-users-file policies.

#include "core/security/authenticator.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <unistd.h>

using namespace sb::core;

namespace {

// Few iterations: the tests check the logic, not the cost.
constexpr unsigned fast = 10;

// The std::runtime_error message parsing `text` throws, or "" if it parses.
std::string parse_error(const std::string& text) {
    try {
        users_authenticator a(text, "users.txt", false);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return {};
}

// A well-formed line's fields after the user name, to build malformed variants from.
const std::string good_tail = make_password_line("x", "pw", fast).substr(1);  // ":pbkdf2-sha256:..."

struct temp_file {
    std::string path;
    explicit temp_file(const std::string& content) {
        char name[] = "/tmp/sb_users_test_XXXXXX";
        const int fd = ::mkstemp(name);
        REQUIRE(fd >= 0);
        ::close(fd);
        path = name;
        std::ofstream(path) << content;
    }
    ~temp_file() { std::remove(path.c_str()); }
};

}  // namespace

TEST_CASE("make_password_line writes name, scheme, iterations, salt and hash", "[core][security]") {
    const std::string line = make_password_line("alice", "secret", 1234);
    CHECK_THAT(line, Catch::StartsWith("alice:pbkdf2-sha256:1234:"));
    // 16-byte salt -> 24 base64 chars, 32-byte hash -> 44 base64 chars.
    CHECK(line.size() == std::string("alice:pbkdf2-sha256:1234:").size() + 24 + 1 + 44);
    CHECK(line.find('\n') == std::string::npos);
    // A fresh salt each time: the same password never gives the same line twice.
    CHECK(make_password_line("alice", "secret", fast) != make_password_line("alice", "secret", fast));
}

TEST_CASE("make_password_line refuses names the file cannot hold", "[core][security]") {
    CHECK_THROWS_AS(make_password_line("", "pw"), std::invalid_argument);
    CHECK_THROWS_AS(make_password_line("a:b", "pw"), std::invalid_argument);
    CHECK_THROWS_AS(make_password_line("#a", "pw"), std::invalid_argument);
    CHECK_THROWS_AS(make_password_line(" a", "pw"), std::invalid_argument);
    CHECK_THROWS_AS(make_password_line("a\nb", "pw"), std::invalid_argument);
    CHECK_THROWS_AS(make_password_line("a", "pw", 0), std::invalid_argument);
    CHECK_NOTHROW(make_password_line("user.name-1@example.com", "pw", fast));
}

TEST_CASE("a password line round-trips through a users file", "[core][security]") {
    const temp_file f("# switchboard users\n\n" + make_password_line("alice", "secret", fast) + "\n" +
                      make_password_line("bob", "", fast) + "\r\n");
    const auto auth = make_authenticator(false, f.path);

    SECTION("the right password is accepted") {
        const auto p = auth->authenticate("alice", "secret");
        REQUIRE(p);
        CHECK(p->user == "alice");
        CHECK_FALSE(p->anonymous);
        CHECK(auth->authenticate("bob", ""));  // CRLF line endings and empty passwords work
    }
    SECTION("a wrong password is refused") {
        CHECK_FALSE(auth->authenticate("alice", "Secret"));
        CHECK_FALSE(auth->authenticate("alice", ""));
        CHECK_FALSE(auth->authenticate("alice", "secret "));
        CHECK_FALSE(auth->authenticate("bob", "x"));
    }
    SECTION("an unknown user is refused") {
        CHECK_FALSE(auth->authenticate("carol", "secret"));
        CHECK_FALSE(auth->authenticate("Alice", "secret"));
    }
    SECTION("no user name is refused when anonymous is off") {
        CHECK_FALSE(auth->authenticate("", ""));
        CHECK_FALSE(auth->authenticate("", "secret"));
    }
}

TEST_CASE("with a users file and anonymous on, only the empty user name skips the check",
          "[core][security]") {
    const temp_file f(make_password_line("alice", "secret", fast) + "\n");
    const auto auth = make_authenticator(true, f.path);
    const auto anon = auth->authenticate("", "");
    REQUIRE(anon);
    CHECK(anon->anonymous);
    CHECK(anon->user.empty());
    CHECK(auth->authenticate("alice", "secret"));
    CHECK_FALSE(auth->authenticate("alice", "wrong"));
    CHECK_FALSE(auth->authenticate("mallory", "anything"));
}

TEST_CASE("without a users file every user is accepted as given", "[core][security]") {
    const auto auth = make_authenticator(true, "");
    const auto named = auth->authenticate("guest", "whatever");
    REQUIRE(named);
    CHECK(*named == principal{"guest", false});
    const auto anon = auth->authenticate("", "");
    REQUIRE(anon);
    CHECK(*anon == principal{"", true});

    CHECK_THROWS_AS(make_authenticator(false, ""), std::runtime_error);
}

TEST_CASE("users_authenticator counts users and skips comments and blank lines", "[core][security]") {
    const users_authenticator a("# a comment\n   \n\t# indented comment\n" +
                                    make_password_line("u1", "p", fast) + "\n  " +
                                    make_password_line("u2", "p", fast),  // no final newline
                                "mem", false);
    CHECK(a.user_count() == 2);
    CHECK(a.authenticate("u2", "p"));
    CHECK(users_authenticator("", "mem", true).user_count() == 0);
}

TEST_CASE("a malformed users file line is reported with file and line number", "[core][security]") {
    const std::string ok = make_password_line("ok", "pw", fast) + "\n";
    CHECK_THAT(parse_error("# c\n" + ok + "broken line\n"),
               Catch::StartsWith("users.txt:3: expected name:pbkdf2-sha256:iterations:salt:hash"));
    CHECK(parse_error(ok + "\nbob:md5:1:AAAA:AAAA\n") ==
          "users.txt:3: unknown password scheme 'md5' (supported: pbkdf2-sha256)");
    CHECK(parse_error("bob:pbkdf2-sha256:0:AAAAAAAAAAA=:AAAA\n") ==
          "users.txt:1: iterations must be an integer 1..10000000");
    CHECK(parse_error("bob:pbkdf2-sha256:x1:AAAAAAAAAAA=:AAAA\n") ==
          "users.txt:1: iterations must be an integer 1..10000000");
    CHECK(parse_error("bob:pbkdf2-sha256:10:not*base64:AAAA\n") == "users.txt:1: salt is not valid base64");
    CHECK(parse_error("bob:pbkdf2-sha256:10:AAAA:AAAA\n") == "users.txt:1: salt must be 8..64 bytes, got 3");
    CHECK(parse_error("bob:pbkdf2-sha256:10:AAAAAAAAAAA=:AA=A\n") == "users.txt:1: hash is not valid base64");
    CHECK(parse_error("bob:pbkdf2-sha256:10:AAAAAAAAAAA=:AAAA\n") ==
          "users.txt:1: hash must be 32 bytes (PBKDF2-HMAC-SHA256), got 3");
    CHECK(parse_error(":" + good_tail.substr(1) + "\n") == "users.txt:1: empty user name");
    CHECK(parse_error("a b " + good_tail + "\n") == "users.txt:1: user name may not start or end with a blank");
    CHECK(parse_error(ok + "x" + good_tail + "\n" + "x" + good_tail + "\n") ==
          "users.txt:3: duplicate user 'x' (first on line 2)");
    CHECK(parse_error("x" + good_tail + ":extra\n") ==
          "users.txt:1: expected name:pbkdf2-sha256:iterations:salt:hash (5 fields separated by ':'), got 6 fields");
}

TEST_CASE("make_authenticator reports unreadable and malformed files with their path", "[core][security]") {
    CHECK_THROWS_WITH(make_authenticator(true, "/nonexistent/users"),
                      "cannot open /nonexistent/users: No such file or directory");
    const temp_file f(make_password_line("a", "pw", fast) + "\nb:pbkdf2-sha256\n");
    CHECK_THROWS_WITH(make_authenticator(true, f.path), Catch::StartsWith(f.path + ":2: expected name:"));
}

TEST_CASE("certificate users: 'name:certificate' lines, listed users only, no password matches them",
          "[core][security]") {
    const temp_file f("dev-1:certificate\n" + make_password_line("alice", "secret", fast) + "\n");
    const auto auth = make_authenticator(false, f.path);
    const auto dev = auth->authenticate_certificate("dev-1");
    REQUIRE(dev);
    CHECK(*dev == principal{"dev-1", false});
    CHECK(auth->authenticate_certificate("alice"));   // a password user may use a certificate too
    CHECK_FALSE(auth->authenticate_certificate("mallory"));
    CHECK_FALSE(auth->authenticate_certificate(""));
    CHECK_FALSE(auth->authenticate("dev-1", ""));   // certificate only
    CHECK_FALSE(auth->authenticate("dev-1", "certificate"));
    CHECK(auth->authenticate("alice", "secret"));
    CHECK(parse_error("dev-1:certificate\ndev-1:certificate\n") == "users.txt:2: duplicate user 'dev-1' (first on line 1)");
    CHECK(parse_error("a:b:certificate\n").find("expected name:pbkdf2-sha256") != std::string::npos);

    // No users file: the certificate's user as it is.
    const auto open = make_authenticator(true, "");
    CHECK(open->authenticate_certificate("anyone") == principal{"anyone", false});
}
