// tests/unit/core/destination_test.cpp — names and wildcard matching.
#include <catch2/catch.hpp>

#include "core/destination/destination.hpp"

using sb::core::has_wildcard;
using sb::core::matches;
using sb::core::valid_name;

TEST_CASE("'*' matches exactly one level", "[core][destination]") {
    CHECK(matches("a.*", "a.b"));
    CHECK(matches("*.b", "a.b"));
    CHECK(matches("a.*.c", "a.x.c"));
    CHECK_FALSE(matches("a.*", "a"));
    CHECK_FALSE(matches("a.*", "a.b.c"));
    CHECK_FALSE(matches("a.*.c", "a.x.d"));
}

TEST_CASE("'>' matches the rest, including no level at all", "[core][destination]") {
    CHECK(matches("a.>", "a.b"));
    CHECK(matches("a.>", "a.b.c.d"));
    CHECK(matches("a.>", "a"));
    CHECK(matches(">", "x.y"));
    CHECK_FALSE(matches("a.>", "b.c"));
    CHECK_FALSE(matches("a.b.>", "a.c.d"));
}

TEST_CASE("exact patterns match only the same name", "[core][destination]") {
    CHECK(matches("a.b", "a.b"));
    CHECK_FALSE(matches("a.b", "a.bc"));
    CHECK_FALSE(matches("a.b", "a.b.c"));
    CHECK_FALSE(matches("a.b.c", "a.b"));
}

TEST_CASE("leading wildcards do not match $-names", "[core][destination]") {
    CHECK_FALSE(matches(">", "$SYS.broker"));
    CHECK_FALSE(matches("*.broker", "$SYS.broker"));
    CHECK(matches("$SYS.>", "$SYS.broker"));
    CHECK(matches("$SYS.*", "$SYS.broker"));
}

TEST_CASE("names are validated: wildcards whole levels, '>' only last", "[core][destination]") {
    CHECK(valid_name("a"));
    CHECK(valid_name("a.b.c"));
    CHECK(valid_name("a.>"));
    CHECK(valid_name(">"));
    CHECK(valid_name("a.*.c"));
    // Empty levels are allowed: MQTT topics such as "/a/b" and "a//b" have them.
    CHECK(valid_name(".a"));
    CHECK(valid_name("a."));
    CHECK(valid_name("a..b"));
    CHECK_FALSE(valid_name(""));
    CHECK_FALSE(valid_name("a.>.b"));
    CHECK_FALSE(valid_name("a>"));
    CHECK_FALSE(valid_name("a.b*"));
}

TEST_CASE("empty levels are matched like any other level", "[core][destination]") {
    CHECK(matches("*.a", ".a"));
    CHECK(matches("a.*", "a."));
    CHECK(matches("a.*.b", "a..b"));
    CHECK(matches("a.>", "a."));
    CHECK_FALSE(matches("a", "a."));
    CHECK_FALSE(matches("a.*", "a..b"));
}

TEST_CASE("has_wildcard sees whole-level wildcards only", "[core][destination]") {
    CHECK(has_wildcard("a.*"));
    CHECK(has_wildcard("a.>"));
    CHECK(has_wildcard("*"));
    CHECK_FALSE(has_wildcard("a.b"));
    CHECK_FALSE(has_wildcard("a*b.c"));
}
