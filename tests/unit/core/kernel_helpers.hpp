// tests/unit/core/kernel_helpers.hpp — what the kernel tests share: a consumer_sink that keeps
// every delivery, and one destination's counters read through broker::stats.
#pragma once

#include <string>
#include <vector>

#include "core/broker.hpp"
#include "tests/unit/core/manual_executor.hpp"

namespace sb::test {

struct sink final : core::consumer_sink {
    std::vector<core::delivery> got;
    void on_delivery(core::consumer_id, core::delivery d) override { got.push_back(std::move(d)); }
    std::vector<std::string> bodies() const {
        std::vector<std::string> b;
        for (const auto& d : got) b.push_back(d.msg->body);
        return b;
    }
};

// The counters of `d` (all zero when the broker does not know it), gathered from every shard.
inline core::destination_stats stats_of(workers& w, core::broker& b, const core::destination& d) {
    std::vector<core::destination_stats> all;
    w[0].call([&] { b.stats([&](std::vector<core::destination_stats> s) { all = std::move(s); }); });
    w.run();
    for (auto& s : all)
        if (s.dest == d) return s;
    return {};
}

}  // namespace sb::test
