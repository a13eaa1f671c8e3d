// core/selector/selector.cpp — the selector compiler (a recursive-descent parser over a small
// tokenizer) and evaluator (a walk of the node array, allocation free). See selector.hpp.
#include "core/selector/selector.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <variant>

namespace sb::core {

namespace {

// ---- tokens ----------------------------------------------------------------------------------

enum class tok : std::uint8_t {
    end, ident, string, exact, approx,
    kw_not, kw_and, kw_or, kw_between, kw_like, kw_escape, kw_in, kw_is, kw_null, kw_true, kw_false,
    eq, ne, lt, le, gt, ge, plus, minus, star, slash, percent, lparen, rparen, comma,
};

struct token {
    tok kind = tok::end;
    std::size_t pos = 0;        // 0-based offset of its first byte
    std::string_view text;      // as written (a string literal: with its quotes)
    std::int64_t i = 0;
    double f = 0;
};

bool ieq(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t k = 0; k < a.size(); ++k) {
        char x = a[k], y = b[k];
        if (x >= 'a' && x <= 'z') x = char(x - 'a' + 'A');
        if (y >= 'a' && y <= 'z') y = char(y - 'a' + 'A');
        if (x != y) return false;
    }
    return true;
}

bool ident_start(unsigned char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' || c >= 0x80;
}
bool ident_part(unsigned char c) noexcept { return ident_start(c) || (c >= '0' && c <= '9'); }
bool digit(char c) noexcept { return c >= '0' && c <= '9'; }

// Java's Long.valueOf: an optional sign and decimal digits, nothing else.
bool parse_java_long(std::string_view s, std::int64_t& out) noexcept {
    if (s.size() > 1 && s[0] == '+' && digit(s[1])) s.remove_prefix(1);
    if (s.empty()) return false;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

// Close to Java's Double.valueOf for what a header carries (no hex floats, no 'd' suffix).
bool parse_java_double(std::string_view s, double& out) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.remove_prefix(1);
    if (s.empty()) return false;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

// ---- values ----------------------------------------------------------------------------------

enum class vk : std::uint8_t { null, boolean, exact, approx, string, other };

struct val {
    vk kind = vk::null;
    bool b = false;
    std::int64_t i = 0;
    double f = 0;
    std::string_view s;

    bool numeric() const noexcept { return kind == vk::exact || kind == vk::approx; }
    double as_double() const noexcept { return kind == vk::exact ? double(i) : f; }
};

val null_val() noexcept { return {}; }
val bool_val(bool b) noexcept { return {vk::boolean, b, 0, 0, {}}; }
val exact_val(std::int64_t i) noexcept { return {vk::exact, false, i, 0, {}}; }
val approx_val(double f) noexcept { return {vk::approx, false, 0, f, {}}; }
val string_val(std::string_view s) noexcept { return {vk::string, false, 0, 0, s}; }

// Three-valued logic.
enum class tri : std::uint8_t { f, t, u };
tri tri_not(tri x) noexcept { return x == tri::u ? tri::u : (x == tri::t ? tri::f : tri::t); }
tri tri_of(bool b) noexcept { return b ? tri::t : tri::f; }
val val_of(tri x) noexcept { return x == tri::u ? null_val() : bool_val(x == tri::t); }
// A value used as a condition: NULL is UNKNOWN, anything not boolean FALSE (ActiveMQ).
tri cond_of(const val& v) noexcept {
    if (v.kind == vk::null) return tri::u;
    if (v.kind == vk::boolean) return tri_of(v.b);
    return tri::f;
}

// The static type the parser knows of an expression, for the checks ActiveMQ makes when it
// parses (a string literal beside '<', a number used as a condition...).
enum class st : std::uint8_t { any, condition, number, string, null };

}  // namespace

// ---- the compiler ----------------------------------------------------------------------------

struct selector_compiler {
    std::string_view text;
    const selector_limits& limits;
    selector& out;
    selector_error& error;
    std::size_t at = 0;        // tokenizer position
    token cur;
    std::size_t depth = 0;
    bool failed = false;

    struct expr {
        std::uint32_t node = 0;
        st type = st::any;
    };

    bool fail(std::size_t pos, std::string what) {
        if (failed) return false;
        failed = true;
        error.position = pos + 1;
        error.message = std::move(what) + " at position " + std::to_string(pos + 1);
        return false;
    }

    std::string describe(const token& t) const {
        if (t.kind == tok::end) return "end of selector";
        return "'" + std::string(t.text.substr(0, 40)) + "'";
    }

    // Reads the next token into `cur`; false (with the error set) when the text is malformed.
    bool next() {
        while (at < text.size() && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r' ||
                                    text[at] == '\f'))
            ++at;
        cur = token{};
        cur.pos = at;
        if (at >= text.size()) {
            cur.kind = tok::end;
            return true;
        }
        const std::size_t start = at;
        const char c = text[at];
        auto one = [&](tok k, std::size_t n) {
            cur.kind = k;
            at += n;
            cur.text = text.substr(start, n);
            return true;
        };
        const char n1 = at + 1 < text.size() ? text[at + 1] : '\0';
        switch (c) {
        case '=': return one(tok::eq, 1);
        case '<':
            if (n1 == '>') return one(tok::ne, 2);
            if (n1 == '=') return one(tok::le, 2);
            return one(tok::lt, 1);
        case '>':
            if (n1 == '=') return one(tok::ge, 2);
            return one(tok::gt, 1);
        case '+': return one(tok::plus, 1);
        case '-': return one(tok::minus, 1);
        case '*': return one(tok::star, 1);
        case '/': return one(tok::slash, 1);
        case '%': return one(tok::percent, 1);
        case '(': return one(tok::lparen, 1);
        case ')': return one(tok::rparen, 1);
        case ',': return one(tok::comma, 1);
        default: break;
        }
        if (c == '\'') {
            ++at;
            for (;;) {
                if (at >= text.size()) return fail(start, "unterminated string");
                if (text[at] == '\'') {
                    if (at + 1 < text.size() && text[at + 1] == '\'') {
                        at += 2;
                        continue;
                    }
                    ++at;
                    break;
                }
                ++at;
            }
            cur.kind = tok::string;
            cur.text = text.substr(start, at - start);
            return true;
        }
        if (digit(c) || (c == '.' && digit(n1))) return number(start);
        if (ident_start(static_cast<unsigned char>(c))) {
            while (at < text.size() && ident_part(static_cast<unsigned char>(text[at]))) ++at;
            cur.text = text.substr(start, at - start);
            static constexpr std::array<std::pair<std::string_view, tok>, 11> keywords = {{
                {"NOT", tok::kw_not}, {"AND", tok::kw_and}, {"OR", tok::kw_or}, {"BETWEEN", tok::kw_between},
                {"LIKE", tok::kw_like}, {"ESCAPE", tok::kw_escape}, {"IN", tok::kw_in}, {"IS", tok::kw_is},
                {"NULL", tok::kw_null}, {"TRUE", tok::kw_true}, {"FALSE", tok::kw_false},
            }};
            cur.kind = tok::ident;
            for (const auto& [word, k] : keywords)
                if (ieq(cur.text, word)) cur.kind = k;
            return true;
        }
        return fail(start, "unexpected character '" + std::string(1, c) + "'");
    }

    bool number(std::size_t start) {
        // Hex (0x..), octal (0..), decimal, each with an optional L; else a floating point
        // literal: digits [. digits] [e [sign] digits], or . digits [...].
        std::size_t p = start;
        auto digits = [&](auto pred) {
            const std::size_t from = p;
            while (p < text.size() && pred(text[p])) ++p;
            return p - from;
        };
        const bool hex = text[p] == '0' && p + 1 < text.size() && (text[p + 1] == 'x' || text[p + 1] == 'X');
        if (hex) {
            p += 2;
            auto is_hex = [](char c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); };
            const std::size_t from = p;
            if (digits(is_hex) == 0) return fail(start, "invalid hexadecimal number");
            std::uint64_t v = 0;
            const auto [e, ec] = std::from_chars(text.data() + from, text.data() + p, v, 16);
            if (ec != std::errc{}) return fail(start, "number out of range");
            (void)e;
            if (p < text.size() && (text[p] == 'l' || text[p] == 'L')) ++p;
            cur.kind = tok::exact;
            cur.i = std::int64_t(v);
        } else {
            digits(digit);
            bool floating = false;
            if (p < text.size() && text[p] == '.') {
                floating = true;
                ++p;
                digits(digit);
            }
            if (p < text.size() && (text[p] == 'e' || text[p] == 'E')) {
                std::size_t q = p + 1;
                if (q < text.size() && (text[q] == '+' || text[q] == '-')) ++q;
                if (q < text.size() && digit(text[q])) {
                    floating = true;
                    p = q;
                    digits(digit);
                }
            }
            const std::string_view lit = text.substr(start, p - start);
            if (floating) {
                double f = 0;
                const auto [e, ec] = std::from_chars(lit.data(), lit.data() + lit.size(), f);
                if (ec != std::errc{} || e != lit.data() + lit.size()) return fail(start, "invalid number");
                cur.kind = tok::approx;
                cur.f = f;
            } else {
                const bool octal = lit.size() > 1 && lit[0] == '0';
                std::uint64_t v = 0;
                const auto [e, ec] = std::from_chars(lit.data() + (octal ? 1 : 0), lit.data() + lit.size(), v,
                                                     octal ? 8 : 10);
                if (ec == std::errc::result_out_of_range || (!octal && v > std::uint64_t(INT64_MAX))) {
                    // Beyond a long: kept as an approximate number, as a double holds it.
                    double f = 0;
                    std::from_chars(lit.data(), lit.data() + lit.size(), f);
                    cur.kind = tok::approx;
                    cur.f = f;
                } else {
                    if (ec != std::errc{} || e != lit.data() + lit.size()) return fail(start, "invalid number");
                    cur.kind = tok::exact;
                    cur.i = std::int64_t(v);
                }
                if (p < text.size() && (text[p] == 'l' || text[p] == 'L')) ++p;
            }
        }
        if (p < text.size() && ident_part(static_cast<unsigned char>(text[p])))
            return fail(start, "invalid number");
        at = p;
        cur.text = text.substr(start, p - start);
        return true;
    }

    // ---- building nodes

    std::uint32_t add(selector::node n) {
        out.nodes_.push_back(n);
        return std::uint32_t(out.nodes_.size() - 1);
    }
    std::uint32_t intern(std::string_view s) {
        const auto off = std::uint32_t(out.pool_.size());
        out.pool_.append(s);
        return off;
    }
    // A string literal's content ('' -> ') into the pool.
    std::pair<std::uint32_t, std::uint32_t> intern_literal(std::string_view quoted) {
        const auto off = std::uint32_t(out.pool_.size());
        for (std::size_t k = 1; k + 1 < quoted.size(); ++k) {
            out.pool_.push_back(quoted[k]);
            if (quoted[k] == '\'') ++k;
        }
        return {off, std::uint32_t(out.pool_.size() - off)};
    }

    bool enter() {
        if (++depth > limits.max_depth)
            return fail(cur.pos, "selector nested deeper than " + std::to_string(limits.max_depth) + " levels");
        return true;
    }

    bool want_condition(const expr& e, std::size_t pos) {
        if (e.type == st::number || e.type == st::string)
            return fail(pos, "expected a condition (a comparison, a boolean property, TRUE or FALSE)");
        return true;
    }
    bool want_value(const expr& e, std::size_t pos) {
        if (e.type == st::condition) return fail(pos, "expected a value, not a condition");
        return true;
    }
    bool want_number(const expr& e, std::size_t pos) {
        if (e.type == st::condition || e.type == st::string) return fail(pos, "expected a number");
        return true;
    }

    // or: and { OR and }
    bool parse_or(expr& e) {
        const std::size_t pos = cur.pos;
        if (!parse_and(e)) return false;
        if (cur.kind == tok::kw_or) {
            if (!want_condition(e, pos)) return false;
            std::vector<std::uint32_t> kids{e.node};
            while (cur.kind == tok::kw_or) {
                if (!next()) return false;
                expr r;
                const std::size_t rpos = cur.pos;
                if (!parse_and(r) || !want_condition(r, rpos)) return false;
                kids.push_back(r.node);
            }
            e = expr{flat(selector::op::or_, kids), st::condition};
        }
        return true;
    }

    std::uint32_t flat(selector::op code, const std::vector<std::uint32_t>& kids) {
        selector::node n;
        n.code = code;
        n.a = std::uint32_t(out.kids_.size());
        n.c = std::uint32_t(kids.size());
        out.kids_.insert(out.kids_.end(), kids.begin(), kids.end());
        return add(n);
    }

    // and: not { AND not }
    bool parse_and(expr& e) {
        const std::size_t pos = cur.pos;
        if (!parse_not(e)) return false;
        if (cur.kind == tok::kw_and) {
            if (!want_condition(e, pos)) return false;
            std::vector<std::uint32_t> kids{e.node};
            while (cur.kind == tok::kw_and) {
                if (!next()) return false;
                expr r;
                const std::size_t rpos = cur.pos;
                if (!parse_not(r) || !want_condition(r, rpos)) return false;
                kids.push_back(r.node);
            }
            e = expr{flat(selector::op::and_, kids), st::condition};
        }
        return true;
    }

    // not: NOT not | predicate
    bool parse_not(expr& e) {
        if (cur.kind != tok::kw_not) return parse_predicate(e);
        if (!enter() || !next()) return false;
        const std::size_t pos = cur.pos;
        expr inner;
        if (!parse_not(inner) || !want_condition(inner, pos)) return false;
        selector::node n;
        n.code = selector::op::not_;
        n.a = inner.node;
        e = expr{add(n), st::condition};
        --depth;
        return true;
    }

    bool parse_predicate(expr& e) {
        const std::size_t pos = cur.pos;
        if (!parse_sum(e)) return false;
        selector::node n;
        switch (cur.kind) {
        case tok::eq: case tok::ne: case tok::lt: case tok::le: case tok::gt: case tok::ge: {
            const tok k = cur.kind;
            const std::size_t opos = cur.pos;
            if (!next()) return false;
            expr r;
            if (!parse_sum(r)) return false;
            const bool ordered = k != tok::eq && k != tok::ne;
            if (ordered) {
                if (e.type == st::string || r.type == st::string)
                    return fail(opos, "strings compare only with = and <>");
                if (!want_value(e, pos) || !want_value(r, opos)) return false;
            }
            using o = selector::op;
            n.code = k == tok::eq ? o::eq : k == tok::ne ? o::ne : k == tok::lt ? o::lt
                   : k == tok::le ? o::le : k == tok::gt ? o::gt : o::ge;
            n.a = e.node;
            n.c = r.node;
            e = expr{add(n), st::condition};
            return true;
        }
        case tok::kw_is: {
            if (!next()) return false;
            bool negated = false;
            if (cur.kind == tok::kw_not) {
                negated = true;
                if (!next()) return false;
            }
            if (cur.kind != tok::kw_null) return fail(cur.pos, "expected NULL after IS, found " + describe(cur));
            if (!next()) return false;
            n.code = negated ? selector::op::is_not_null : selector::op::is_null;
            n.a = e.node;
            e = expr{add(n), st::condition};
            return true;
        }
        case tok::kw_not: case tok::kw_between: case tok::kw_in: case tok::kw_like: {
            bool negated = false;
            if (cur.kind == tok::kw_not) {
                negated = true;
                if (!next()) return false;
                if (cur.kind != tok::kw_between && cur.kind != tok::kw_in && cur.kind != tok::kw_like)
                    return fail(cur.pos, "expected BETWEEN, IN or LIKE after NOT, found " + describe(cur));
            }
            if (cur.kind == tok::kw_between) return between(e, negated, pos);
            if (cur.kind == tok::kw_in) return in(e, negated);
            return like(e, negated);
        }
        default:
            return true;
        }
    }

    bool between(expr& e, bool negated, std::size_t pos) {
        if (!want_number(e, pos) || !next()) return false;
        expr lo, hi;
        const std::size_t lpos = cur.pos;
        if (!parse_sum(lo) || !want_number(lo, lpos)) return false;
        if (cur.kind != tok::kw_and) return fail(cur.pos, "expected AND in BETWEEN, found " + describe(cur));
        if (!next()) return false;
        const std::size_t hpos = cur.pos;
        if (!parse_sum(hi) || !want_number(hi, hpos)) return false;
        selector::node n;
        n.code = negated ? selector::op::not_between : selector::op::between;
        n.a = e.node;
        n.c = lo.node;
        n.d = hi.node;
        e = expr{add(n), st::condition};
        return true;
    }

    bool in(expr& e, bool negated) {
        if (!next()) return false;
        if (cur.kind != tok::lparen) return fail(cur.pos, "expected '(' after IN, found " + describe(cur));
        selector::node n;
        n.code = negated ? selector::op::not_in : selector::op::in;
        n.a = e.node;
        n.d = std::uint32_t(out.in_lists_.size());
        for (;;) {
            if (!next()) return false;
            if (cur.kind != tok::string) return fail(cur.pos, "IN takes string literals, found " + describe(cur));
            out.in_lists_.push_back(intern_literal(cur.text));
            if (!next()) return false;
            if (cur.kind == tok::rparen) break;
            if (cur.kind != tok::comma) return fail(cur.pos, "expected ',' or ')' in IN, found " + describe(cur));
        }
        if (!next()) return false;
        n.c = std::uint32_t(out.in_lists_.size()) - n.d;
        n.a = e.node;
        // kids a = operand, in list = in_lists_[d .. d + c)
        e = expr{add(n), st::condition};
        return true;
    }

    bool like(expr& e, bool negated) {
        if (!next()) return false;
        if (cur.kind != tok::string) return fail(cur.pos, "LIKE takes a string literal, found " + describe(cur));
        selector::node n;
        n.code = negated ? selector::op::not_like : selector::op::like;
        n.a = e.node;
        std::tie(n.str, n.len) = intern_literal(cur.text);
        if (!next()) return false;
        if (cur.kind == tok::kw_escape) {
            if (!next()) return false;
            if (cur.kind != tok::string) return fail(cur.pos, "ESCAPE takes a string literal, found " + describe(cur));
            const auto [off, len] = intern_literal(cur.text);
            if (len != 1) return fail(cur.pos, "ESCAPE must be one character");
            n.escape = static_cast<unsigned char>(out.pool_[off]);
            if (!next()) return false;
        }
        e = expr{add(n), st::condition};
        return true;
    }

    // sum: product { (+ | -) product }
    bool parse_sum(expr& e) {
        std::size_t pos = cur.pos;
        if (!parse_product(e)) return false;
        while (cur.kind == tok::plus || cur.kind == tok::minus) {
            const auto code = cur.kind == tok::plus ? selector::op::add : selector::op::sub;
            const std::size_t opos = cur.pos;
            if (!want_number(e, pos) || !next()) return false;
            expr r;
            if (!parse_product(r) || !want_number(r, opos + 1)) return false;
            e = binary(code, e, r);
            pos = opos;
        }
        return true;
    }

    // product: unary { (* | / | %) unary }
    bool parse_product(expr& e) {
        std::size_t pos = cur.pos;
        if (!parse_unary(e)) return false;
        while (cur.kind == tok::star || cur.kind == tok::slash || cur.kind == tok::percent) {
            const auto code = cur.kind == tok::star ? selector::op::mul
                            : cur.kind == tok::slash ? selector::op::div : selector::op::mod;
            const std::size_t opos = cur.pos;
            if (!want_number(e, pos) || !next()) return false;
            expr r;
            if (!parse_unary(r) || !want_number(r, opos + 1)) return false;
            e = binary(code, e, r);
            pos = opos;
        }
        return true;
    }

    expr binary(selector::op code, const expr& l, const expr& r) {
        selector::node n;
        n.code = code;
        n.a = l.node;
        n.c = r.node;
        return expr{add(n), st::number};
    }

    // unary: (+ | -) unary | primary
    bool parse_unary(expr& e) {
        if (cur.kind != tok::plus && cur.kind != tok::minus) return parse_primary(e);
        const bool minus = cur.kind == tok::minus;
        if (!enter() || !next()) return false;
        const std::size_t pos = cur.pos;
        if (!parse_unary(e) || !want_number(e, pos)) return false;
        if (minus) {
            // A negated literal is folded into the literal.
            auto& inner = out.nodes_[e.node];
            if (inner.code == selector::op::lit_long) {
                inner.i = std::int64_t(0 - std::uint64_t(inner.i));
            } else if (inner.code == selector::op::lit_double) {
                inner.f = -inner.f;
            } else {
                selector::node n;
                n.code = selector::op::neg;
                n.a = e.node;
                e.node = add(n);
            }
            e.type = st::number;
        }
        --depth;
        return true;
    }

    bool parse_primary(expr& e) {
        selector::node n;
        switch (cur.kind) {
        case tok::lparen: {
            if (!enter() || !next()) return false;
            if (!parse_or(e)) return false;
            if (cur.kind != tok::rparen) return fail(cur.pos, "expected ')', found " + describe(cur));
            --depth;
            return next();
        }
        case tok::string:
            n.code = selector::op::lit_string;
            std::tie(n.str, n.len) = intern_literal(cur.text);
            e = expr{add(n), st::string};
            return next();
        case tok::exact:
            n.code = selector::op::lit_long;
            n.i = cur.i;
            e = expr{add(n), st::number};
            return next();
        case tok::approx:
            n.code = selector::op::lit_double;
            n.f = cur.f;
            e = expr{add(n), st::number};
            return next();
        case tok::kw_true: case tok::kw_false:
            n.code = selector::op::lit_bool;
            n.b = cur.kind == tok::kw_true;
            e = expr{add(n), st::condition};
            return next();
        case tok::kw_null:
            n.code = selector::op::lit_null;
            e = expr{add(n), st::null};
            return next();
        case tok::ident: {
            using h = selector::header_field;
            static constexpr std::array<std::pair<std::string_view, h>, 10> headers = {{
                {"JMSDeliveryMode", h::delivery_mode}, {"JMSPriority", h::priority},
                {"JMSMessageID", h::msg_id}, {"JMSTimestamp", h::timestamp},
                {"JMSExpiration", h::expiration}, {"JMSCorrelationID", h::correlation_id},
                {"JMSType", h::type}, {"JMSRedelivered", h::redelivered},
                {"JMSXGroupID", h::group_id}, {"JMSXGroupSeq", h::group_seq},
            }};
            n.code = selector::op::property;
            for (const auto& [name, field] : headers)
                if (cur.text == name) {
                    n.code = selector::op::header;
                    n.field = field;
                }
            st type = st::any;
            if (n.code == selector::op::header) {
                switch (n.field) {
                case h::priority: case h::timestamp: case h::expiration: case h::group_seq: type = st::number; break;
                case h::redelivered: type = st::condition; break;
                default: type = st::any; break;   // strings that may be NULL: compared with = / <> / LIKE
                }
            } else {
                n.str = intern(cur.text);
                n.len = std::uint32_t(cur.text.size());
            }
            e = expr{add(n), type};
            return next();
        }
        default:
            return fail(cur.pos, "unexpected " + describe(cur));
        }
    }

    bool run() {
        if (text.size() > limits.max_length)
            return fail(limits.max_length, "selector longer than " + std::to_string(limits.max_length) + " bytes");
        if (!next()) return false;
        if (cur.kind == tok::end) return fail(0, "empty selector");
        expr e;
        const std::size_t pos = cur.pos;
        if (!parse_or(e)) return false;
        if (cur.kind != tok::end) return fail(cur.pos, "unexpected " + describe(cur));
        if (!want_condition(e, pos)) return false;
        out.root_ = e.node;
        return true;
    }
};

// ---- the evaluator ---------------------------------------------------------------------------

struct selector_evaluator {
    const selector& s;
    const message& m;
    const selector_context& ctx;
    std::array<char, 320> id_buf;   // JMSMessageID's text (written before it is read; not zeroed per call)

    selector_evaluator(const selector& sel, const message& msg, const selector_context& context) noexcept
        : s(sel), m(msg), ctx(context) {}

    std::string_view pool(std::uint32_t off, std::uint32_t len) const noexcept {
        return std::string_view(s.pool_.data() + off, len);   // the compiler made them in range
    }

    static val of(const property_value& v) noexcept {
        return std::visit(
            [](const auto& x) -> val {
                using T = std::decay_t<decltype(x)>;
                if constexpr (std::is_same_v<T, std::monostate>) return null_val();
                else if constexpr (std::is_same_v<T, bool>) return bool_val(x);
                else if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) return approx_val(double(x));
                else if constexpr (std::is_integral_v<T>) return exact_val(std::int64_t(x));
                else if constexpr (std::is_same_v<T, std::string>) return string_val(x);
                else return val{vk::other, false, 0, 0, {}};
            },
            v);
    }

    val header(selector::header_field f) noexcept {
        using h = selector::header_field;
        auto text_or_null = [](const std::string& t) { return t.empty() ? null_val() : string_val(t); };
        switch (f) {
        case h::delivery_mode: return string_val(m.persistent ? "PERSISTENT" : "NON_PERSISTENT");
        case h::priority: return exact_val(m.priority);
        case h::timestamp: return exact_val(m.timestamp_ms);
        case h::expiration: return exact_val(m.expiration_ms);
        case h::correlation_id: return text_or_null(m.correlation_id);
        case h::type: return text_or_null(m.type);
        case h::redelivered: return bool_val(ctx.redeliveries > 0);
        case h::group_id: return text_or_null(m.group_id);
        case h::group_seq: return exact_val(m.group_seq);
        case h::msg_id: {
            constexpr std::string_view prefix = "ID:";
            if (ctx.broker_name.size() + prefix.size() + 22 > id_buf.size()) return null_val();
            char* p = id_buf.data();
            for (char c : prefix) *p++ = c;
            for (char c : ctx.broker_name) *p++ = c;
            *p++ = '-';
            const auto r = std::to_chars(p, id_buf.data() + id_buf.size(), m.id);
            return string_val(std::string_view(id_buf.data(), std::size_t(r.ptr - id_buf.data())));
        }
        }
        return null_val();
    }

    // ActiveMQ's conversions before comparing unlike types; false when they are incomparable.
    static bool unify(val& l, val& r) noexcept {
        if (l.kind == r.kind) return true;
        if (l.numeric() && r.numeric()) {
            l = approx_val(l.as_double());
            r = approx_val(r.as_double());
            return true;
        }
        auto to_number = [](val& str, const val& like) {
            if (like.kind == vk::exact) {
                std::int64_t i = 0;
                if (!parse_java_long(str.s, i)) return false;
                str = exact_val(i);
                return true;
            }
            double f = 0;
            if (!parse_java_double(str.s, f)) return false;
            str = approx_val(f);
            return true;
        };
        if (l.kind == vk::string && r.numeric()) return to_number(l, r);
        if (r.kind == vk::string && l.numeric()) return to_number(r, l);
        if (l.kind == vk::string && r.kind == vk::boolean) {   // ActiveMQ converts only this way round
            l = bool_val(ieq(l.s, "true"));
            return true;
        }
        return false;
    }

    static tri compare(selector::op code, val l, val r) noexcept {
        using o = selector::op;
        if (l.kind == vk::null || r.kind == vk::null) return tri::u;
        if (code == o::ne) return tri_not(compare(o::eq, l, r));
        if (!unify(l, r)) return tri::f;
        int c = 0;   // <0, 0, >0
        switch (l.kind) {
        case vk::exact: c = l.i < r.i ? -1 : (l.i > r.i ? 1 : 0); break;
        case vk::approx:
            if (std::isnan(l.f) || std::isnan(r.f)) return tri::f;
            c = l.f < r.f ? -1 : (l.f > r.f ? 1 : 0);
            break;
        case vk::string: c = l.s.compare(r.s); break;
        case vk::boolean:
            if (code != o::eq) return tri::f;
            c = l.b == r.b ? 0 : 1;
            break;
        default: return tri::f;
        }
        switch (code) {
        case o::eq: return tri_of(c == 0);
        case o::lt: return tri_of(c < 0);
        case o::le: return tri_of(c <= 0);
        case o::gt: return tri_of(c > 0);
        case o::ge: return tri_of(c >= 0);
        default: return tri::f;
        }
    }

    static val arith(selector::op code, const val& l, const val& r) noexcept {
        using o = selector::op;
        if (!l.numeric() || !r.numeric()) return null_val();   // NULL, or not a number
        if (code == o::div) return approx_val(l.as_double() / r.as_double());
        if (l.kind == vk::exact && r.kind == vk::exact) {
            const auto a = std::uint64_t(l.i), b = std::uint64_t(r.i);   // wraps as Java's long does
            switch (code) {
            case o::add: return exact_val(std::int64_t(a + b));
            case o::sub: return exact_val(std::int64_t(a - b));
            case o::mul: return exact_val(std::int64_t(a * b));
            case o::mod:
                if (r.i == 0) return null_val();
                if (r.i == -1) return exact_val(0);
                return exact_val(l.i % r.i);
            default: return null_val();
            }
        }
        const double a = l.as_double(), b = r.as_double();
        switch (code) {
        case o::add: return approx_val(a + b);
        case o::sub: return approx_val(a - b);
        case o::mul: return approx_val(a * b);
        case o::mod: return approx_val(std::fmod(a, b));
        default: return null_val();
        }
    }

    // SQL LIKE: '_' one character (a UTF-8 sequence), '%' any run, `esc` makes the next
    // pattern character literal. Backtracks to the last '%' only: linear space, no allocation.
    static std::size_t next_char(std::string_view s, std::size_t i) noexcept {
        ++i;
        while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
        return i;
    }
    static bool like(std::string_view s, std::string_view p, std::int32_t esc) noexcept {
        std::size_t si = 0, pi = 0;
        std::size_t star_p = std::string_view::npos, star_s = 0;
        while (si < s.size()) {
            if (pi < p.size()) {
                const unsigned char c = static_cast<unsigned char>(p[pi]);
                if (esc >= 0 && c == unsigned(esc) && pi + 1 < p.size()) {
                    if (s[si] == p[pi + 1]) {
                        ++si;
                        pi += 2;
                        continue;
                    }
                } else if (c == '%') {
                    star_p = ++pi;
                    star_s = si;
                    continue;
                } else if (c == '_') {
                    si = next_char(s, si);
                    ++pi;
                    continue;
                } else if (s[si] == p[pi]) {
                    ++si;
                    ++pi;
                    continue;
                }
            }
            if (star_p == std::string_view::npos) return false;
            star_s = next_char(s, star_s);
            si = star_s;
            pi = star_p;
        }
        while (pi < p.size() && p[pi] == '%') ++pi;
        return pi == p.size();
    }

    tri cond(std::uint32_t i) noexcept {
        using o = selector::op;
        const auto& n = s.nodes_[i];
        switch (n.code) {
        case o::and_: {
            tri r = tri::t;
            for (std::uint32_t k = 0; k < n.c; ++k) {
                const tri x = cond(s.kids_[n.a + k]);
                if (x == tri::f) return tri::f;
                if (x == tri::u) r = tri::u;
            }
            return r;
        }
        case o::or_: {
            tri r = tri::f;
            for (std::uint32_t k = 0; k < n.c; ++k) {
                const tri x = cond(s.kids_[n.a + k]);
                if (x == tri::t) return tri::t;
                if (x == tri::u) r = tri::u;
            }
            return r;
        }
        case o::not_: return tri_not(cond(n.a));
        case o::eq: case o::ne: case o::lt: case o::le: case o::gt: case o::ge:
            return compare(n.code, eval(n.a), eval(n.c));
        case o::between: case o::not_between: {
            const val v = eval(n.a);
            const tri lo = compare(o::ge, v, eval(n.c));
            const tri hi = compare(o::le, v, eval(n.d));
            tri r = (lo == tri::f || hi == tri::f) ? tri::f : (lo == tri::u || hi == tri::u) ? tri::u : tri::t;
            return n.code == o::between ? r : tri_not(r);
        }
        case o::in: case o::not_in: {
            const val v = eval(n.a);
            if (v.kind == vk::null) return tri::u;
            if (v.kind != vk::string) return tri::f;
            bool found = false;
            for (std::uint32_t k = 0; k < n.c && !found; ++k) {
                const auto [off, len] = s.in_lists_[n.d + k];
                found = v.s == pool(off, len);
            }
            return tri_of(found == (n.code == o::in));
        }
        case o::like: case o::not_like: {
            const val v = eval(n.a);
            if (v.kind == vk::null) return tri::u;
            if (v.kind != vk::string) return tri::f;
            return tri_of(like(v.s, pool(n.str, n.len), n.escape) == (n.code == o::like));
        }
        case o::is_null: return tri_of(eval(n.a).kind == vk::null);
        case o::is_not_null: return tri_of(eval(n.a).kind != vk::null);
        default: return cond_of(eval(i));
        }
    }

    val eval(std::uint32_t i) noexcept {
        using o = selector::op;
        const auto& n = s.nodes_[i];
        switch (n.code) {
        case o::lit_null: return null_val();
        case o::lit_bool: return bool_val(n.b);
        case o::lit_long: return exact_val(n.i);
        case o::lit_double: return approx_val(n.f);
        case o::lit_string: return string_val(pool(n.str, n.len));
        case o::property: {
            const auto* p = m.find_property(pool(n.str, n.len));
            return p ? of(*p) : null_val();
        }
        case o::header: return header(n.field);
        case o::neg: {
            const val v = eval(n.a);
            if (v.kind == vk::exact) return exact_val(std::int64_t(0 - std::uint64_t(v.i)));
            if (v.kind == vk::approx) return approx_val(-v.f);
            return null_val();
        }
        case o::add: case o::sub: case o::mul: case o::div: case o::mod:
            return arith(n.code, eval(n.a), eval(n.c));
        default: return val_of(cond(i));
        }
    }
};

std::shared_ptr<const selector> selector::compile(std::string_view text, selector_error& error,
                                                  const selector_limits& limits) {
    std::shared_ptr<selector> s(new selector());
    selector_compiler c{text, limits, *s, error, 0, token{}, 0, false};
    if (!c.run()) return nullptr;
    s->text_ = std::string(text);
    s->nodes_.shrink_to_fit();
    return s;
}

bool selector::matches(const message& m, const selector_context& ctx) const noexcept {
    selector_evaluator e{*this, m, ctx};
    return e.cond(root_) == tri::t;
}

}  // namespace sb::core
