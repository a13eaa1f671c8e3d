// tests/unit/core/kernel_fixture.hpp — a broker on two manual workers over a memory or a journal
// store, that can be restarted on the same journal: for kernel tests that must hold on both
// stores and across a restart. The journal completes from its writer thread; the helpers wait
// for that (bounded) with workers::run_until.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/broker.hpp"
#include "core/store/journal_store.hpp"
#include "core/store/memory_store.hpp"
#include "tests/unit/core/kernel_helpers.hpp"
#include "tests/unit/core/manual_executor.hpp"

namespace sb::test {

enum class store_kind { memory, journal };

inline const char* to_string(store_kind k) { return k == store_kind::memory ? "memory" : "journal"; }

struct kernel_fixture {
    explicit kernel_fixture(store_kind k, core::broker_settings s = {}) : kind(k), settings(std::move(s)), w(2) {
        std::random_device rd;
        dir = std::filesystem::temp_directory_path() / ("sb-kernel-" + std::to_string(rd()) + std::to_string(rd()));
        start();
    }
    ~kernel_fixture() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    kernel_fixture(const kernel_fixture&) = delete;
    kernel_fixture& operator=(const kernel_fixture&) = delete;

    void start() {
        if (kind == store_kind::memory) {
            st = std::make_unique<core::memory_store>();
        } else {
            core::journal_settings js;
            js.dir = dir.string();
            st = std::make_unique<core::journal_store>(js);
        }
        b = std::make_unique<core::broker>(settings, w.ptrs, *st);
        recovered = b->recover();
    }
    // The broker and the store go (the journal syncs what it has), then come back from the
    // same directory. What a crash would lose is what was never written: the kernel writes a
    // transaction only at its commit.
    void restart() {
        stop();
        start();
    }
    void stop() {
        w.run();
        b.reset();
        st.reset();
        w.run();   // completions the store posted while it stopped (none may touch the broker)
    }

    core::message_ptr make(const core::destination& d, std::string body, bool persistent = true,
                           std::uint64_t connection = 0) {
        auto m = std::make_shared<core::message>();
        w[0].call([&] { m->id = b->next_message_id(); });
        m->dest = d;
        m->body = std::move(body);
        m->persistent = persistent;
        m->origin_connection = connection;
        return m;
    }
    // Publishes from worker 0 and waits for the completion.
    core::publish_status publish(core::message_ptr m) {
        std::optional<core::publish_status> r;
        w[0].call([&] { b->publish(std::move(m), [&r](core::publish_status s) { r = s; }); });
        REQUIRE(w.run_until([&] { return r.has_value(); }));
        return *r;
    }
    core::publish_status publish(const core::destination& d, std::string body, bool persistent = true) {
        return publish(make(d, std::move(body), persistent));
    }
    struct subscription {
        core::consumer_id id = 0;
        std::shared_ptr<sink> s;
        core::subscribe_status status = core::subscribe_status::ok;
    };
    subscription subscribe(const core::destination& d, core::subscribe_options opt = {}) {
        subscription out{0, std::make_shared<sink>()};
        bool done = false;
        w[0].call([&] {
            out.id = b->next_consumer_id();
            b->subscribe_checked(out.id, d, opt, out.s, [&](core::subscribe_status s) {
                out.status = s;
                done = true;
            });
        });
        REQUIRE(w.run_until([&] { return done; }));
        return out;
    }
    void ack(const subscription& sub, std::vector<core::delivery_tag> tags) {
        bool done = false;
        w[0].call([&] { b->ack(sub.id, std::move(tags), [&] { done = true; }); });
        REQUIRE(w.run_until([&] { return done; }));
    }
    core::destination_stats stats_of(const core::destination& d) { return sb::test::stats_of(w, *b, d); }
    bool has_stats(const core::destination& d) {
        std::vector<core::destination_stats> all;
        w[0].call([&] { b->stats([&](std::vector<core::destination_stats> s) { all = std::move(s); }); });
        w.run();
        for (const auto& s : all)
            if (s.dest == d) return true;
        return false;
    }
    // Subscribes to `d` and returns the bodies delivered (all that was queued there).
    std::vector<std::string> drain(const core::destination& d) {
        auto sub = subscribe(d);
        w.run();
        return sub.s->bodies();
    }

    store_kind kind;
    core::broker_settings settings;
    std::filesystem::path dir;
    workers w;
    std::unique_ptr<core::store> st;
    std::unique_ptr<core::broker> b;
    std::size_t recovered = 0;   // by the last start()
};

}  // namespace sb::test
