// tests/unit/core/memory_store_test.cpp — the in-memory store's contract.
#include <catch2/catch.hpp>

#include "core/store/memory_store.hpp"

using namespace sb::core;

namespace {
message_ptr msg(message_id id) {
    auto m = std::make_shared<message>();
    m->id = id;
    m->persistent = true;
    return m;
}
}  // namespace

TEST_CASE("memory store confirms adds and recovers pending messages in order", "[core][store]") {
    memory_store s;
    int confirmed = 0;
    s.add("q1", msg(1), [&](store_status st) { confirmed += st == store_status::ok; });
    s.add("q2", msg(2), [&](store_status st) { confirmed += st == store_status::ok; });
    s.add("q1", msg(3), [&](store_status st) { confirmed += st == store_status::ok; });
    CHECK(confirmed == 3);
    s.remove("q1", 1);
    s.remove("q1", 99);   // unknown: ignored
    s.remove("q2", 3);    // wrong queue: ignored
    std::vector<std::pair<std::string, message_id>> got;
    s.recover_loaded([&](std::string_view q, message_ptr m) { got.emplace_back(std::string(q), m->id); });
    REQUIRE(got.size() == 2);
    CHECK(got[0] == std::pair<std::string, message_id>{"q2", 2});
    CHECK(got[1] == std::pair<std::string, message_id>{"q1", 3});
    CHECK(s.size() == 2);
}
