// core/security/auth_pool.cpp — a bounded queue of password checks and the threads that run them.
#include "core/security/auth_pool.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <utility>

#include "core/executor.hpp"

namespace sb::core {

struct auth_pool::request {
    std::string user;
    std::string password;   // wiped once checked
    executor* home = nullptr;
    std::function<void(auth_result)> done;
};

namespace {

auth_result decide(const authenticator& auth, std::string_view user, std::string_view password) {
    auto who = auth.authenticate(user, password);
    if (!who) return {auth_status::refused, {}};
    return {auth_status::accepted, std::move(*who)};
}

void complete(executor* home, std::function<void(auth_result)> done, auth_result r) {
    if (!done) return;
    if (!home) return done(std::move(r));
    home->post([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
}

void wipe(std::string& s) noexcept {
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
    s.clear();
}

}  // namespace

auth_pool::auth_pool(const authenticator& auth, auth_pool_settings settings) : auth_(auth), settings_(settings) {
    settings_.threads = std::max<std::size_t>(1, settings_.threads);
    threads_.reserve(settings_.threads);
    for (std::size_t i = 0; i < settings_.threads; ++i) threads_.emplace_back([this] { run(); });
}

auth_pool::~auth_pool() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        for (auto& r : queue_) wipe(r.password);
        queue_.clear();
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
}

void auth_pool::authenticate_async(std::string_view user, std::string_view password,
                                   std::function<void(auth_result)> done) {
    executor* home = executor::current();
    if (!auth_.hashes(user)) return complete(home, std::move(done), decide(auth_, user, password));
    {
        std::unique_lock lock(mutex_);
        if (!stopping_ && queue_.size() < settings_.max_queued) {
            queue_.push_back(request{std::string(user), std::string(password), home, std::move(done)});
            lock.unlock();
            wake_.notify_one();
            return;
        }
    }
    complete(home, std::move(done), {auth_status::busy, {}});
}

void auth_pool::authenticate_certificate_async(std::string_view user, std::function<void(auth_result)> done) {
    auto who = auth_.authenticate_certificate(user);
    complete(executor::current(), std::move(done),
             who ? auth_result{auth_status::accepted, std::move(*who)} : auth_result{auth_status::refused, {}});
}

std::size_t auth_pool::queued() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
}

void auth_pool::run() {
    for (;;) {
        request r;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            r = std::move(queue_.front());
            queue_.pop_front();
        }
        auto result = decide(auth_, r.user, r.password);
        wipe(r.password);
        complete(r.home, std::move(r.done), std::move(result));
    }
}

}  // namespace sb::core
