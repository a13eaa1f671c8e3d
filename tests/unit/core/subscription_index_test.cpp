// tests/unit/core/subscription_index_test.cpp — the wildcard trie against matches(), which is
// the specification: fixed edge cases, then random filters and names checked against a
// brute-force scan.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "core/destination/destination.hpp"
#include "core/destination/subscription_index.hpp"

using sb::core::matches;
using sb::core::subscription_index;

namespace {

std::vector<int> match(subscription_index<int>& index, std::string_view name) {
    std::vector<int> out;
    index.match(name, out);
    return out;
}

// The reference: every (filter, value) added and not erased, in order, scanned with matches().
struct brute_force {
    std::vector<std::pair<std::string, int>> subs;

    std::vector<int> match(std::string_view name) const {
        std::vector<int> out;
        for (const auto& [f, v] : subs)
            if (matches(f, name)) out.push_back(v);
        return out;
    }
    bool erase(const std::string& filter, int v) {
        for (auto it = subs.begin(); it != subs.end(); ++it)
            if (it->first == filter && it->second == v) {
                subs.erase(it);
                return true;
            }
        return false;
    }
};

}  // namespace

TEST_CASE("index: exact, '*' and '>' filters", "[core][subscription_index]") {
    subscription_index<int> ix;
    ix.insert("a.b", 1);
    ix.insert("a.*", 2);
    ix.insert("a.>", 3);
    ix.insert("*.b", 4);
    ix.insert(">", 5);
    ix.insert("a.b.c", 6);
    ix.insert("a.*.c", 7);
    CHECK(ix.size() == 7);
    CHECK(match(ix, "a.b") == std::vector<int>{1, 2, 3, 4, 5});
    CHECK(match(ix, "a.b.c") == std::vector<int>{3, 5, 6, 7});
    CHECK(match(ix, "a") == std::vector<int>{3, 5});   // '>' matches the parent level too
    CHECK(match(ix, "x.b") == std::vector<int>{4, 5});
    CHECK(match(ix, "x") == std::vector<int>{5});
    CHECK(match(ix, "a.x.d") == std::vector<int>{3, 5});
}

TEST_CASE("index: leading wildcards do not match $-names, later ones do", "[core][subscription_index]") {
    subscription_index<int> ix;
    ix.insert(">", 1);
    ix.insert("*.broker", 2);
    ix.insert("$SYS.>", 3);
    ix.insert("$SYS.*", 4);
    ix.insert("$SYS.broker", 5);
    ix.insert("*", 6);
    CHECK(match(ix, "$SYS.broker") == std::vector<int>{3, 4, 5});
    CHECK(match(ix, "$SYS") == std::vector<int>{3});
    CHECK(match(ix, "SYS.broker") == std::vector<int>{1, 2});
    CHECK(match(ix, "a.$x") == std::vector<int>{1});
}

TEST_CASE("index: empty levels are levels", "[core][subscription_index]") {
    subscription_index<int> ix;
    ix.insert(".a", 1);     // MQTT "/a"
    ix.insert("*.a", 2);
    ix.insert("a..b", 3);
    ix.insert("a.*.b", 4);
    ix.insert("a.", 5);
    ix.insert("a.*", 6);
    CHECK(match(ix, ".a") == std::vector<int>{1, 2});
    CHECK(match(ix, "a..b") == std::vector<int>{3, 4});
    CHECK(match(ix, "a.") == std::vector<int>{5, 6});
    CHECK(match(ix, "a") == std::vector<int>{});
}

TEST_CASE("index: a wildcard level in a name is only matched by a wildcard", "[core][subscription_index]") {
    subscription_index<int> ix;
    ix.insert("a.*", 1);
    ix.insert("a.b", 2);
    CHECK(match(ix, "a.*") == std::vector<int>{1});
    CHECK(matches("a.*", "a.*"));
    CHECK_FALSE(matches("a.b", "a.*"));
}

TEST_CASE("index: results come in insertion order, across branches", "[core][subscription_index]") {
    subscription_index<int> ix;
    ix.insert("a.>", 1);
    ix.insert("a.b", 2);
    ix.insert("*.b", 3);
    ix.insert("a.*", 4);
    ix.insert("a.b", 5);
    CHECK(match(ix, "a.b") == std::vector<int>{1, 2, 3, 4, 5});
    // `out` is appended to, not replaced.
    std::vector<int> out{9};
    ix.match("a.b", out);
    CHECK(out == std::vector<int>{9, 1, 2, 3, 4, 5});
}

TEST_CASE("index: erase removes one add, prunes, and the index can grow again", "[core][subscription_index]") {
    subscription_index<int> ix;
    ix.insert("a.*.c", 1);
    ix.insert("a.*.c", 1);   // the same pair twice: two entries
    ix.insert("a.>", 2);
    CHECK(match(ix, "a.b.c") == std::vector<int>{1, 1, 2});
    CHECK(ix.erase("a.*.c", 1));
    CHECK(match(ix, "a.b.c") == std::vector<int>{1, 2});
    CHECK_FALSE(ix.erase("a.*.c", 7));   // no such value
    CHECK_FALSE(ix.erase("a.*.d", 1));   // no such filter
    CHECK_FALSE(ix.erase("a.b.c", 1));   // '*' in the filter is not the level "b"
    CHECK(ix.erase("a.*.c", 1));
    CHECK_FALSE(ix.erase("a.*.c", 1));
    CHECK(match(ix, "a.b.c") == std::vector<int>{2});
    CHECK(ix.erase("a.>", 2));
    CHECK(ix.empty());
    CHECK(match(ix, "a.b.c").empty());
    ix.insert("a.*.c", 3);   // reuses freed nodes
    ix.insert("x.y", 4);
    CHECK(match(ix, "a.q.c") == std::vector<int>{3});
    CHECK(match(ix, "x.y") == std::vector<int>{4});
}

TEST_CASE("index: match cost does not depend on non-matching filters", "[core][subscription_index]") {
    // Not a timing test: the index must find the one match among many that share no branch
    // with the name, and the many must all still be there.
    subscription_index<int> ix;
    for (int i = 0; i < 20000; ++i) ix.insert("bg." + std::to_string(i) + ".*.x", i);
    ix.insert("bench.>", -1);
    CHECK(match(ix, "bench.t.0") == std::vector<int>{-1});
    CHECK(match(ix, "bg.123.q.x") == std::vector<int>{123});
    for (int i = 0; i < 20000; ++i) REQUIRE(ix.erase("bg." + std::to_string(i) + ".*.x", i));
    CHECK(ix.size() == 1);
    CHECK(match(ix, "bg.123.q.x").empty());
}

TEST_CASE("index: random filters and names agree with a brute-force scan", "[core][subscription_index]") {
    std::mt19937 rng(20261207);
    const std::vector<std::string> name_levels{"a", "b", "c", "", "$s", "$"};
    const auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
    const auto random_name = [&] {
        std::string s;
        const std::size_t n = 1 + pick(4);
        for (std::size_t i = 0; i < n; ++i) {
            if (i) s += '.';
            s += name_levels[pick(name_levels.size())];
        }
        return s;
    };
    const auto random_filter = [&] {
        std::string s;
        const std::size_t n = 1 + pick(4);
        for (std::size_t i = 0; i < n; ++i) {
            if (i) s += '.';
            const std::size_t r = pick(name_levels.size() + 2);
            s += r < name_levels.size() ? name_levels[r] : "*";
        }
        if (pick(4) == 0) s += ".>";
        return s;
    };
    for (int round = 0; round < 20; ++round) {
        subscription_index<int> ix;
        brute_force ref;
        int next_value = 0;
        for (int op = 0; op < 400; ++op) {
            const std::size_t what = pick(10);
            if (what < 5 || ref.subs.empty()) {
                std::string f = pick(20) == 0 ? std::string(">") : random_filter();
                // Sometimes the same value twice under one filter, sometimes a shared value.
                const int v = pick(8) == 0 && !ref.subs.empty() ? ref.subs[pick(ref.subs.size())].second : next_value++;
                ix.insert(f, v);
                ref.subs.emplace_back(f, v);
            } else if (what < 7) {
                const auto& [f, v] = ref.subs[pick(ref.subs.size())];
                const std::string filter = f;
                const int value = v;
                REQUIRE(ix.erase(filter, value));
                REQUIRE(ref.erase(filter, value));
            } else if (what < 8) {
                const std::string f = random_filter();
                const int v = int(pick(std::size_t(next_value) + 1));
                REQUIRE(ix.erase(f, v) == ref.erase(f, v));
            }
            REQUIRE(ix.size() == ref.subs.size());
            for (int q = 0; q < 4; ++q) {
                const std::string name = random_name();
                INFO("name " << name);
                REQUIRE(match(ix, name) == ref.match(name));
            }
        }
        while (!ref.subs.empty()) {   // erase everything, checking as the trie shrinks
            const auto [f, v] = ref.subs.front();
            REQUIRE(ix.erase(f, v));
            ref.erase(f, v);
            const std::string name = random_name();
            REQUIRE(match(ix, name) == ref.match(name));
        }
        CHECK(ix.empty());
    }
}
