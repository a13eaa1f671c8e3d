// core/selector/selector.hpp — JMS message selectors (the SQL-92 subset of JMS 1.1 §3.8.1 /
// JMS 2.0 §3.8.1), compiled once per consumer and evaluated against a core::message.
//
// No protocol knowledge: an adapter takes the selector text from its own field (STOMP's
// `selector` header, later OpenWire's and AMQP's filters) and hands the compiled form to the
// kernel in subscribe_options. The kernel evaluates it per message and consumer, on the
// destination's shard: evaluation allocates nothing and throws nothing (strings are compared
// as string_views into the message and the compiled selector).
//
// The language (keywords case insensitive, identifiers case sensitive):
//   or:         and { OR and }
//   and:        not { AND not }
//   not:        NOT not | predicate
//   predicate:  sum [ (= | <> | < | <= | > | >=) sum
//                   | [NOT] BETWEEN sum AND sum
//                   | [NOT] IN ( 'string' {, 'string'} )
//                   | [NOT] LIKE 'pattern' [ESCAPE 'c']
//                   | IS [NOT] NULL ]
//   sum:        product { (+ | -) product }
//   product:    unary { (* | / | %) unary }
//   unary:      (+ | -) unary | primary
//   primary:    literal | identifier | ( or )
//   literals:   'string' ('' is a quote), 123 / 123L / 0x1F / 017 (exact, 64-bit),
//               1.5 / .5 / 1e3 / 1.5E-2 (approximate, double), TRUE, FALSE
// Identifiers: the JMS headers JMSDeliveryMode ('PERSISTENT' / 'NON_PERSISTENT'),
// JMSPriority, JMSMessageID, JMSTimestamp, JMSExpiration, JMSCorrelationID, JMSType,
// JMSRedelivered, JMSXGroupID, JMSXGroupSeq; any other name is a user property
// (message::properties; absent = NULL).
//
// Semantics, as the JMS specification and ActiveMQ 5.17 (checked by running it) have them:
//   - three-valued logic: NULL operands make a comparison, BETWEEN, IN, LIKE and arithmetic
//     UNKNOWN; AND / OR / NOT follow SQL's truth tables; a message is selected only when the
//     whole selector is TRUE.
//   - comparing values of unlike types is FALSE (JMS 1.1 §3.8.1.2), not UNKNOWN; a value that
//     is neither boolean nor NULL used as a condition is FALSE.
//   - exact and approximate numbers compare and compute with promotion to double; `/` always
//     divides as double (ActiveMQ); integer `%` by zero is UNKNOWN.
//   - strings compare with = and <> (and, between two properties, lexicographically with the
//     others as ActiveMQ does); a string literal beside < <= > >= is a compile error.
//   - ActiveMQ's conversion of string properties in comparisons (what makes `x > 3` select a
//     STOMP message whose header x is "5"): a string compared with a number is parsed as that
//     number's type (a decimal long for an exact number, a double for an approximate one), a
//     string compared with a boolean to its right as Java's Boolean.valueOf; an unparseable
//     string compares FALSE. Arithmetic does not convert (a string operand is NULL).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/message/message.hpp"

namespace sb::core {

struct selector_limits {
    std::size_t max_length = 4096;   // bytes of selector text
    std::size_t max_depth = 64;      // nesting of parentheses and operators
};

struct selector_error {
    std::size_t position = 0;        // 1-based byte offset in the text where it went wrong
    std::string message;             // "expected ')' at position 7", ready for a client
};

// What the kernel knows about a delivery beyond the message itself.
struct selector_context {
    std::string_view broker_name;    // JMSMessageID is "ID:<broker name>-<id>" (as STOMP shows it)
    std::uint32_t redeliveries = 0;  // JMSRedelivered
};

class selector {
public:
    // Compiles `text`. On error returns null and fills `error`. An empty (or blank) text is an
    // error: "no selector" is the caller's null pointer.
    static std::shared_ptr<const selector> compile(std::string_view text, selector_error& error,
                                                   const selector_limits& limits = {});

    // Whether the message is selected (the selector is TRUE for it). No allocation.
    bool matches(const message& m, const selector_context& ctx = {}) const noexcept;

    const std::string& text() const noexcept { return text_; }

    // The compiled form (public for the compiler and evaluator in selector.cpp).
    enum class op : std::uint8_t {
        lit_null, lit_bool, lit_long, lit_double, lit_string,
        property, header,
        neg, add, sub, mul, div, mod,
        eq, ne, lt, le, gt, ge,
        and_, or_, not_,
        between, not_between, in, not_in, like, not_like, is_null, is_not_null,
    };
    enum class header_field : std::uint8_t {
        delivery_mode, priority, msg_id, timestamp, expiration, correlation_id, type,
        redelivered, group_id, group_seq,
    };
    struct node {
        op code = op::lit_null;
        header_field field = header_field::priority;
        bool b = false;
        std::int32_t escape = -1;       // LIKE: the escape byte, -1 when none
        // Operands (node indexes). AND / OR: kids_[a .. a + c); IN: in_lists_[a .. a + c).
        std::uint32_t a = 0, c = 0, d = 0;
        std::uint32_t str = 0, len = 0;  // string literal, LIKE pattern or property name in pool_
        std::int64_t i = 0;
        double f = 0;
    };

private:
    friend struct selector_compiler;
    friend struct selector_evaluator;
    selector() = default;
    std::string text_;
    std::string pool_;                                  // strings of the nodes
    std::vector<node> nodes_;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> in_lists_;   // (offset, length) in pool_
    std::vector<std::uint32_t> kids_;                   // AND / OR operands, flattened
    std::uint32_t root_ = 0;
};

using selector_ptr = std::shared_ptr<const selector>;

}  // namespace sb::core
