// tests/unit/core/auth_pool_test.cpp — password checks off the worker loops: the answer comes
// back on the worker that asked, lookups skip the pool, and the pool's queue is bounded.
#include "core/security/auth_pool.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "core/executor.hpp"

using namespace sb::core;
using namespace std::chrono_literals;

namespace {

// A worker whose tasks may be posted from any thread (the pool's) and run on the test's thread.
class locked_executor final : public executor {
public:
    void post(task t) override {
        {
            std::lock_guard lock(mutex_);
            tasks_.push_back(std::move(t));
        }
        wake_.notify_one();
    }
    std::size_t index() const noexcept override { return 0; }

    // Runs `f` as a call made on this worker.
    void call(const std::function<void()>& f) {
        set_current(this);
        f();
        set_current(nullptr);
    }

    // Runs posted tasks until `done()` holds or 10 s passed; returns done().
    bool run_until(const std::function<bool()>& done) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!done()) {
            task t;
            {
                std::unique_lock lock(mutex_);
                if (!wake_.wait_until(lock, deadline, [this] { return !tasks_.empty(); })) return done();
                t = std::move(tasks_.front());
                tasks_.pop_front();
            }
            set_current(this);
            t();
            set_current(nullptr);
        }
        return true;
    }

private:
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<task> tasks_;
};

// An authenticator that hashes nothing but holds each named check until released, so the
// test knows which requests occupy the pool's threads.
class gated_authenticator final : public authenticator {
public:
    std::optional<principal> authenticate(std::string_view user, std::string_view password) const noexcept override {
        std::unique_lock lock(mutex_);
        if (user.empty()) return principal{{}, true};
        ++started_;
        changed_.notify_all();
        changed_.wait(lock, [this] { return open_; });
        if (password != "right") return std::nullopt;
        return principal{std::string(user), false};
    }
    bool hashes(std::string_view user) const noexcept override { return !user.empty(); }

    bool wait_started(int n) const {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, 10s, [&] { return started_ >= n; });
    }
    void open() {
        std::lock_guard lock(mutex_);
        open_ = true;
        changed_.notify_all();
    }

private:
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    mutable int started_ = 0;
    bool open_ = false;
};

struct answer {
    std::optional<auth_result> result;
    executor* ran_on = nullptr;
    std::thread::id thread;
};

std::function<void(auth_result)> record(answer& a) {
    return [&a](auth_result r) {
        a.result = std::move(r);
        a.ran_on = executor::current();
        a.thread = std::this_thread::get_id();
    };
}

}  // namespace

TEST_CASE("auth_pool checks passwords on its threads and answers on the calling worker", "[core][auth]") {
    const std::string text = make_password_line("alice", "secret", 10) + "\n";
    users_authenticator users(text, "users.txt", true);
    auth_pool pool(users, {.threads = 2, .max_queued = 8});
    locked_executor worker;
    answer good, bad, unknown, anon;
    worker.call([&] {
        pool.authenticate_async("alice", "secret", record(good));
        pool.authenticate_async("alice", "wrong", record(bad));
        pool.authenticate_async("mallory", "secret", record(unknown));
        pool.authenticate_async("", "", record(anon));
    });
    // Never inside the call, not even the anonymous decision.
    CHECK(!anon.result);
    REQUIRE(worker.run_until([&] { return good.result && bad.result && unknown.result && anon.result; }));
    CHECK(good.result->status == auth_status::accepted);
    CHECK(good.result->who == principal{"alice", false});
    CHECK(bad.result->status == auth_status::refused);
    CHECK(unknown.result->status == auth_status::refused);
    CHECK(anon.result->status == auth_status::accepted);
    CHECK(anon.result->who.anonymous);
    for (const auto* a : {&good, &bad, &unknown, &anon}) {
        CHECK(a->ran_on == &worker);
        CHECK(a->thread == std::this_thread::get_id());
    }
}

TEST_CASE("auth_pool answers a lookup without its threads and refuses beyond its queue", "[core][auth]") {
    gated_authenticator gate;
    auth_pool pool(gate, {.threads = 1, .max_queued = 2});
    locked_executor worker;
    answer first, queued1, queued2, over, anon;
    worker.call([&] { pool.authenticate_async("u1", "right", record(first)); });
    REQUIRE(gate.wait_started(1));   // the only thread holds the first request
    worker.call([&] {
        pool.authenticate_async("u2", "right", record(queued1));
        pool.authenticate_async("u3", "wrong", record(queued2));
        pool.authenticate_async("u4", "right", record(over));
    });
    CHECK(pool.queued() == 2);
    // The request past the queue is refused at once (posted), the others wait for the thread;
    // an anonymous login needs no thread and completes while every thread is busy.
    worker.call([&] { pool.authenticate_async("", "", record(anon)); });
    REQUIRE(worker.run_until([&] { return over.result && anon.result; }));
    CHECK(over.result->status == auth_status::busy);
    CHECK(anon.result->status == auth_status::accepted);
    CHECK(!first.result);
    CHECK(!queued1.result);
    CHECK(!queued2.result);

    gate.open();
    REQUIRE(worker.run_until([&] { return first.result && queued1.result && queued2.result; }));
    CHECK(first.result->status == auth_status::accepted);
    CHECK(queued1.result->status == auth_status::accepted);
    CHECK(queued2.result->status == auth_status::refused);
    CHECK(first.ran_on == &worker);
    CHECK(pool.queued() == 0);
}
