// tests/unit/adapters/engine/reply_queue_test.cpp — ordered replies: released in request order
// once their completions came, tickets harmless after their entry is gone.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "adapters/engine/reply_queue.hpp"

using sb::engine::reply_queue;

TEST_CASE("reply_queue releases entries in order, each once its completions came", "[engine][reply_queue]") {
    reply_queue<std::string> q;
    std::vector<std::string> sent;
    auto emit = [&](const std::string& s) { sent.push_back(s); };
    const auto a = q.push("a", 2);
    const auto b = q.push("b", 0);
    const auto c = q.push("c", 1);
    CHECK(q.release(emit) == 0);   // "b" is ready but waits behind "a"
    CHECK(q.complete(a));
    CHECK(q.release(emit) == 0);
    CHECK(q.complete(c));          // "c" ready out of order
    CHECK(q.complete(a));
    CHECK(q.release(emit) == 3);
    CHECK(sent == std::vector<std::string>{"a", "b", "c"});
    CHECK(q.empty());
    CHECK_FALSE(q.complete(b));    // gone: nothing happens
    CHECK(q.find(c) == nullptr);
    CHECK(q.find(reply_queue<std::string>::none) == nullptr);
}

TEST_CASE("reply_queue tickets go stale when the queue is cleared", "[engine][reply_queue]") {
    reply_queue<int> q;
    const auto t = q.push(1, 1);
    q.clear();
    CHECK_FALSE(q.complete(t));
    const auto u = q.push(2, 1);
    CHECK(u != t);
    CHECK(q.find(t) == nullptr);
    REQUIRE(q.find(u) != nullptr);
    CHECK(*q.find(u) == 2);
}
