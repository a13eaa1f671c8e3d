// core/security/auth_pool.hpp — authentication off the worker loops.
//
// Checking a password costs PBKDF2 (milliseconds of CPU by design). Run on a worker, each
// CONNECT would stall every connection and every destination that worker owns; a flood of
// them would stall the broker. auth_pool runs authenticator::authenticate on a few threads of
// its own and posts the answer back to the worker that asked, as the kernel posts its
// completions. Its queue is bounded: past it a request is answered `busy` at once (the session
// refuses the connection), so a flood of CONNECTs costs a bounded amount of memory and CPU.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/security/authenticator.hpp"

namespace sb::core {

enum class auth_status : std::uint8_t {
    accepted,   // `who` is the principal
    refused,    // wrong user name or password, or anonymous not allowed
    busy,       // the pool's queue is full: refuse the connection, the client may try again
};

struct auth_result {
    auth_status status = auth_status::refused;
    principal who;   // when accepted
};

struct auth_pool_settings {
    std::size_t threads = 2;        // hashing threads (at least 1)
    std::size_t max_queued = 256;   // requests waiting for a thread; beyond: busy
};

class auth_pool {
public:
    // `auth` outlives the pool (the gateway's reloadable authenticator: every request asks the
    // authenticator of the moment). Starts the threads.
    explicit auth_pool(const authenticator& auth, auth_pool_settings settings = {});
    // Stops the threads after the requests they are hashing; requests still queued are dropped
    // without completion (their callers are shutting down too).
    ~auth_pool();
    auth_pool(const auth_pool&) = delete;
    auth_pool& operator=(const auth_pool&) = delete;

    // Checks `user` / `password`. `done` runs later on the calling worker
    // (executor::current()), never inside this call. A decision that needs no hashing
    // (authenticator::hashes false: no users file, an anonymous login) is made here and only
    // its completion is posted; anything else is queued for a pool thread, or answered busy
    // when max_queued requests are waiting. Thread-safe. Called off a worker thread, `done`
    // runs on the thread that decided (this one or a pool thread).
    void authenticate_async(std::string_view user, std::string_view password,
                            std::function<void(auth_result)> done);

    // A client whose transport vouches for `user` (a verified TLS client certificate): asks
    // authenticator::authenticate_certificate (a lookup, no password). `done` runs later on the
    // calling worker, as for authenticate_async.
    void authenticate_certificate_async(std::string_view user, std::function<void(auth_result)> done);

    // Requests waiting for a thread (not counting those being hashed).
    std::size_t queued() const;
    const auth_pool_settings& settings() const noexcept { return settings_; }

private:
    struct request;
    void run();

    const authenticator& auth_;
    auth_pool_settings settings_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<request> queue_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace sb::core
