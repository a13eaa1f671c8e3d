// tests/unit/core/selector_test.cpp — the JMS selector language: a table of expressions and
// what they select on two messages (one with typed and STOMP-like string properties and every
// header set, one with nothing), NULL / UNKNOWN logic, and compile errors with positions.
#include <catch2/catch.hpp>

#include "core/selector/selector.hpp"

using sb::core::message;
using sb::core::selector;
using sb::core::selector_context;
using sb::core::selector_error;
using sb::core::selector_limits;

namespace {

message full_message() {
    message m;
    m.id = 42;
    m.priority = 7;
    m.persistent = true;
    m.type = "car";
    m.correlation_id = "c1";
    m.group_id = "g";
    m.group_seq = 3;
    m.timestamp_ms = 1000;
    m.expiration_ms = 0;
    m.properties = {
        {"s", std::string("abc")},
        {"i", std::int32_t(5)},
        {"l", std::int64_t(10000000000LL)},
        {"d", 2.5},
        {"b", true},
        {"f", false},
        {"n", std::string("5")},        // as STOMP carries a header
        {"nd", std::string("3.0")},
        {"t", std::string("true")},
        {"u", std::string("a_b%c")},
        {"e", std::string("")},
        {"neg", std::int16_t(-3)},
        {"by", std::int8_t(1)},
        {"fl", float(1.5)},
        {"utf", std::string("h\xC3\xA9llo")},   // héllo
        {"bytes", std::vector<std::uint8_t>{1, 2}},
        {"Case", std::string("upper")},
    };
    return m;
}

message empty_message() {
    message m;
    m.id = 7;
    return m;
}

struct row {
    const char* text;
    bool on_full;
    bool on_empty;
};

// clang-format off
const row table[] = {
    // literals and booleans
    {"TRUE", true, true},
    {"FALSE", false, false},
    {"true", true, true},
    {"NOT FALSE", true, true},
    {"NOT TRUE", false, false},
    {"TRUE AND TRUE", true, true},
    {"TRUE AND FALSE", false, false},
    {"FALSE OR TRUE", true, true},
    {"FALSE OR FALSE", false, false},
    {"b", true, false},
    {"f", false, false},
    {"NOT b", false, false},
    {"NOT f", true, false},
    {"b = TRUE", true, false},
    {"b <> FALSE", true, false},
    {"f = FALSE", true, false},
    {"b = f", false, false},
    // numeric comparison
    {"i = 5", true, false},
    {"i <> 5", false, false},
    {"i < 6", true, false},
    {"i <= 5", true, false},
    {"i > 4", true, false},
    {"i >= 6", false, false},
    {"5 = i", true, false},
    {"6 > i", true, false},
    {"l = 10000000000", true, false},
    {"l > i", true, false},
    {"d = 2.5", true, false},
    {"d > 2", true, false},
    {"d < 3", true, false},
    {"i = 5.0", true, false},
    {"i > 4.99", true, false},
    {"fl = 1.5", true, false},
    {"by = 1", true, false},
    {"neg = -3", true, false},
    {"neg < 0", true, false},
    {"d = 25E-1", true, false},
    {"d = .25e1", true, false},
    {"i = 0x5", true, false},
    {"i = 05", true, false},
    {"i = 5L", true, false},
    {"i = 0X05", true, false},
    {"by = 01", true, false},
    {"l = 012", false, false},
    {"10 = 012", true, true},
    {"l < 9223372036854775807", true, false},
    {"l > 9223372036854775808", false, false},
    // arithmetic
    {"i + 1 = 6", true, false},
    {"i - 1 = 4", true, false},
    {"i * 2 = 10", true, false},
    {"i / 2 = 2.5", true, false},
    {"10 / 4 = 2.5", true, true},
    {"i % 3 = 2", true, false},
    {"7 % 4 = 3", true, true},
    {"-i = -5", true, false},
    {"-(i) < 0", true, false},
    {"+i = 5", true, false},
    {"- -i = 5", true, false},
    {"i + d = 7.5", true, false},
    {"i * d = 12.5", true, false},
    {"1 + 2 * 3 = 7", true, true},
    {"(1 + 2) * 3 = 9", true, true},
    {"10 - 2 - 3 = 5", true, true},
    {"2 * 3 % 4 = 2", true, true},
    {"i / 0 > 1", true, false},           // a double division: +infinity
    {"i % 0 = 0", false, false},          // integer modulo by zero: NULL
    {"NOT (i % 0 = 0)", false, false},
    {"d % 2 = 0.5", true, false},
    {"i + x = 5", false, false},          // NULL operand
    {"i + s = 5", false, false},          // a string is no number in arithmetic
    {"NOT (i + s = 5)", false, false},
    {"-s < 0", false, false},
    {"l * 2 = 20000000000", true, false},
    {"9223372036854775807 + 1 < 0", true, true},   // wraps as Java's long
    // strings
    {"s = 'abc'", true, false},
    {"s <> 'abc'", false, false},
    {"s = 'ABC'", false, false},
    {"'abc' = s", true, false},
    {"s = 'ab'", false, false},
    {"e = ''", true, false},
    {"e IS NULL", false, true},
    {"'it''s' = 'it''s'", true, true},
    {"s = n", false, false},
    {"utf = 'h\xC3\xA9llo'", true, false},
    {"Case = 'upper'", true, false},
    {"case = 'upper'", false, false},     // identifiers are case sensitive
    {"CASE = 'upper'", false, false},
    // ActiveMQ's string conversion (STOMP headers are strings)
    {"n = 5", true, false},
    {"n > 3", true, false},
    {"n < 3", false, false},
    {"3 < n", true, false},
    {"n = 5.0", true, false},
    {"n > 2.5", true, false},
    {"nd > 2.5", true, false},
    {"nd = 3", false, false},             // "3.0" is no long
    {"NOT (nd = 3)", true, false},
    {"nd <> 3", true, false},
    {"s > 3", false, false},              // unparseable: FALSE, not UNKNOWN
    {"NOT (s > 3)", true, false},
    {"s <> 3", true, false},
    {"n BETWEEN 1 AND 9", true, false},
    {"n NOT BETWEEN 1 AND 9", false, false},
    {"t = TRUE", true, false},
    {"TRUE = t", false, false},           // ActiveMQ converts only with the string on the left
    {"s = TRUE", false, false},
    {"t", false, false},                  // a string is no condition
    {"NOT t", true, false},
    {"n = '5'", true, false},
    {"n + 1 = 6", false, false},
    // type mismatch
    {"i = 'abc'", false, false},
    {"s = 5", false, false},
    {"b = 1", false, false},
    {"i = TRUE", false, false},
    {"NOT (i = TRUE)", true, false},
    {"i <> TRUE", true, false},
    {"bytes = 1", false, false},
    {"bytes IS NULL", false, true},
    {"i", false, false},
    {"NOT i", true, false},
    // NULL / UNKNOWN
    {"x = 1", false, false},
    {"NOT (x = 1)", false, false},
    {"x <> 1", false, false},
    {"x IS NULL", true, true},
    {"x IS NOT NULL", false, false},
    {"i IS NULL", false, true},
    {"i IS NOT NULL", true, false},
    {"x = 1 OR TRUE", true, true},
    {"x = 1 OR FALSE", false, false},
    {"NOT (x = 1 OR FALSE)", false, false},
    {"x = 1 AND FALSE", false, false},
    {"NOT (x = 1 AND FALSE)", true, true},
    {"x = 1 AND TRUE", false, false},
    {"NOT (x = 1 AND TRUE)", false, false},
    {"x = NULL", false, false},
    {"NULL IS NULL", true, true},
    {"x", false, false},
    {"NOT x", false, false},
    {"x > 1 OR i = 5", true, false},
    {"i = 5 OR x > 1", true, false},
    {"NOT (x > 1) OR i = 5", true, false},
    {"(x = 1 OR x <> 1) AND TRUE", false, false},
    {"x BETWEEN 1 AND 2", false, false},
    {"x NOT BETWEEN 1 AND 2", false, false},
    {"i BETWEEN x AND 9", false, false},
    {"i BETWEEN x AND 4", false, false},
    {"NOT (i BETWEEN x AND 4)", true, false},    // FALSE AND UNKNOWN is FALSE
    {"x IN ('a')", false, false},
    {"x NOT IN ('a')", false, false},
    {"x LIKE 'a%'", false, false},
    {"x NOT LIKE 'a%'", false, false},
    {"x + 1 IS NULL", true, true},
    // BETWEEN
    {"i BETWEEN 1 AND 5", true, false},
    {"i BETWEEN 5 AND 9", true, false},
    {"i BETWEEN 6 AND 9", false, false},
    {"i NOT BETWEEN 6 AND 9", true, false},
    {"i NOT BETWEEN 1 AND 9", false, false},
    {"d BETWEEN 2 AND 3", true, false},
    {"i BETWEEN 4.5 AND 5.5", true, false},
    {"i between 1 and 9 and s = 'abc'", true, false},
    {"i BETWEEN 9 AND 1", false, false},
    {"i + 1 BETWEEN 2 * 3 AND 7", true, false},
    // IN
    {"s IN ('abc')", true, false},
    {"s IN ('x', 'abc', 'y')", true, false},
    {"s IN ('x', 'y')", false, false},
    {"s NOT IN ('x', 'y')", true, false},
    {"s NOT IN ('abc')", false, false},
    {"s in ('ABC')", false, false},
    {"i IN ('5')", false, false},
    {"i NOT IN ('5')", false, false},
    {"JMSType IN ('car', 'bus')", true, false},
    // LIKE
    {"s LIKE 'abc'", true, false},
    {"s LIKE 'a%'", true, false},
    {"s LIKE '%c'", true, false},
    {"s LIKE '%b%'", true, false},
    {"s LIKE 'a_c'", true, false},
    {"s LIKE '_b_'", true, false},
    {"s LIKE '__'", false, false},
    {"s LIKE '%'", true, false},
    {"e LIKE '%'", true, false},
    {"e LIKE '_'", false, false},
    {"s LIKE 'A%'", false, false},
    {"s NOT LIKE 'a%'", false, false},
    {"s NOT LIKE 'x%'", true, false},
    {"u LIKE 'a\\_b\\%c' ESCAPE '\\'", true, false},
    {"u LIKE 'a!_b!%c' ESCAPE '!'", true, false},
    {"s LIKE 'a!_c' ESCAPE '!'", false, false},
    {"u LIKE '%!%%' ESCAPE '!'", true, false},
    {"s LIKE '%!%%' ESCAPE '!'", false, false},
    {"u LIKE 'a__b%'", false, false},
    {"utf LIKE 'h_llo'", true, false},    // '_' is one character, not one byte
    {"utf LIKE 'h__llo'", false, false},
    {"s LIKE '%%%c'", true, false},
    {"s LIKE 'ab%c%'", true, false},
    {"i LIKE '5'", false, false},
    {"NOT (i LIKE '5')", true, false},
    // JMS headers
    {"JMSPriority = 7", true, false},
    {"JMSPriority = 4", false, true},
    {"JMSPriority > 5", true, false},
    {"JMSPriority BETWEEN 0 AND 9", true, true},
    {"JMSDeliveryMode = 'PERSISTENT'", true, false},
    {"JMSDeliveryMode = 'NON_PERSISTENT'", false, true},
    {"JMSType = 'car'", true, false},
    {"JMSType IS NULL", false, true},
    {"JMSCorrelationID = 'c1'", true, false},
    {"JMSCorrelationID IS NULL", false, true},
    {"JMSXGroupID = 'g'", true, false},
    {"JMSXGroupID IS NULL", false, true},
    {"JMSXGroupSeq = 3", true, false},
    {"JMSXGroupSeq = 0", false, true},
    {"JMSXGroupSeq IS NULL", false, false},
    {"JMSTimestamp = 1000", true, false},
    {"JMSTimestamp > 0", true, false},
    {"JMSExpiration = 0", true, true},
    {"JMSMessageID = 'ID:b-42'", true, false},
    {"JMSMessageID LIKE 'ID:%'", true, true},
    {"JMSMessageID = 'ID:b-7'", false, true},
    {"JMSRedelivered", false, false},
    {"JMSRedelivered = FALSE", true, true},
    {"NOT JMSRedelivered", true, true},
    {"jmspriority = 7", false, false},    // a user property of that name: absent
    // keywords in any case, precedence
    {"s = 'abc' and i = 5", true, false},
    {"s = 'x' Or i = 5", true, false},
    {"not s = 'x'", true, false},
    {"TRUE OR FALSE AND FALSE", true, true},    // AND binds tighter
    {"(TRUE OR FALSE) AND FALSE", false, false},
    {"NOT TRUE OR TRUE", true, true},
    {"NOT (TRUE OR TRUE)", false, false},
    {"i IS NOT NULL AND s IS NOT NULL AND d IS NOT NULL", true, false},
    {"i=5 AND(s='abc')", true, false},
    {" \t i = 5 \n", true, false},
    {"i = 5 AND b AND NOT f", true, false},
    {"$x IS NULL AND _y IS NULL", true, true},
};
// clang-format on

}  // namespace

TEST_CASE("selector table: each expression selects what the JMS rules and ActiveMQ say", "[core][selector]") {
    const message full = full_message();
    const message empty = empty_message();
    selector_context ctx;
    ctx.broker_name = "b";
    STATIC_REQUIRE(std::size(table) >= 150);
    for (const auto& r : table) {
        INFO(r.text);
        selector_error err;
        auto s = selector::compile(r.text, err);
        REQUIRE(s);
        CHECK(s->matches(full, ctx) == r.on_full);
        CHECK(s->matches(empty, ctx) == r.on_empty);
    }
}

TEST_CASE("selector: JMSRedelivered follows the context", "[core][selector]") {
    selector_error err;
    auto s = selector::compile("JMSRedelivered = TRUE", err);
    REQUIRE(s);
    const message m = empty_message();
    selector_context ctx;
    CHECK_FALSE(s->matches(m, ctx));
    ctx.redeliveries = 1;
    CHECK(s->matches(m, ctx));
}

TEST_CASE("selector: the text is kept", "[core][selector]") {
    selector_error err;
    auto s = selector::compile("a = 1", err);
    REQUIRE(s);
    CHECK(s->text() == "a = 1");
}

namespace {

struct bad {
    const char* text;
    std::size_t position;
    const char* says;
};

// clang-format off
const bad errors[] = {
    {"", 1, "empty selector"},
    {"   ", 1, "empty selector"},
    {"x >>> 3", 4, "unexpected '>'"},
    {"x = 'unterminated", 5, "unterminated string"},
    {"(x > 1", 7, "expected ')'"},
    {"x > 1)", 6, "unexpected ')'"},
    {"x = 'a' AND", 12, "unexpected end of selector"},
    {"x > 'a'", 3, "strings compare only with = and <>"},
    {"'a' <= x", 5, "strings compare only with = and <>"},
    {"x IN (1, 2)", 7, "IN takes string literals"},
    {"x IN 'a'", 6, "expected '(' after IN"},
    {"x IN ('a' 'b')", 11, "expected ',' or ')'"},
    {"x LIKE 5", 8, "LIKE takes a string literal"},
    {"x LIKE 'a' ESCAPE 'ab'", 19, "ESCAPE must be one character"},
    {"x LIKE 'a' ESCAPE ''", 19, "ESCAPE must be one character"},
    {"x IS 5", 6, "expected NULL after IS"},
    {"x NOT 5", 7, "expected BETWEEN, IN or LIKE after NOT"},
    {"x BETWEEN 1 OR 2", 13, "expected AND in BETWEEN"},
    {"x BETWEEN 'a' AND 'b'", 11, "expected a number"},
    {"5", 1, "expected a condition"},
    {"'abc'", 1, "expected a condition"},
    {"i + 1", 1, "expected a condition"},
    {"x = 1 AND 5", 11, "expected a condition"},
    {"NOT 5", 5, "expected a condition"},
    {"'a' + 1 = 2", 1, "expected a number"},
    {"x # 1", 3, "unexpected character '#'"},
    {"x = 0x", 5, "invalid hexadecimal number"},
    {"x = 12abc", 5, "invalid number"},
    {"x = 09", 5, "invalid number"},
    {"x = 1 = 2", 7, "unexpected '='"},
    {"AND x", 1, "unexpected 'AND'"},
    {"x = ,", 5, "unexpected ','"},
    {"(x = 1 AND (y = 2)", 19, "expected ')'"},
    {"(i = 1) > 2", 1, "expected a value"},
};
// clang-format on

}  // namespace

TEST_CASE("selector compile errors say what and where", "[core][selector]") {
    for (const auto& b : errors) {
        INFO(b.text);
        selector_error err;
        CHECK_FALSE(selector::compile(b.text, err));
        CHECK(err.position == b.position);
        CHECK_THAT(err.message, Catch::Matchers::Contains(b.says));
        CHECK_THAT(err.message, Catch::Matchers::Contains("at position " + std::to_string(b.position)));
    }
}

TEST_CASE("selector limits: length and nesting depth", "[core][selector]") {
    selector_limits lim;
    lim.max_length = 64;
    lim.max_depth = 8;
    selector_error err;
    CHECK(selector::compile("a = 1", err, lim));
    CHECK_FALSE(selector::compile(std::string(70, ' ') + "a = 1", err, lim));
    CHECK_THAT(err.message, Catch::Matchers::Contains("longer than 64 bytes"));
    CHECK(selector::compile("((((a = 1))))", err, lim));
    CHECK_FALSE(selector::compile("((((((((((a = 1))))))))))", err, lim));
    CHECK_THAT(err.message, Catch::Matchers::Contains("nested deeper than 8"));
    CHECK_FALSE(selector::compile("NOT NOT NOT NOT NOT NOT NOT NOT NOT a", err, lim));
    CHECK_THAT(err.message, Catch::Matchers::Contains("nested deeper"));
    CHECK_FALSE(selector::compile("- - - - - - - - - - a = 1", err, lim));

    // The default bound: 4 KiB; a long flat OR chain is no nesting.
    std::string chain = "a = 0";
    for (int k = 1; k < 300; ++k) chain += " OR a = " + std::to_string(k);
    REQUIRE(chain.size() < 4096);
    auto s = selector::compile(chain, err);
    REQUIRE(s);
    message m;
    m.properties = {{"a", std::int32_t(299)}};
    CHECK(s->matches(m));
    CHECK_FALSE(selector::compile(std::string(5000, '('), err));
    CHECK_THAT(err.message, Catch::Matchers::Contains("longer than 4096"));
    CHECK_FALSE(selector::compile(std::string(2000, '(') + "a = 1" + std::string(2000, ')'), err));
    CHECK_THAT(err.message, Catch::Matchers::Contains("nested deeper than 64"));
}
