// tests/unit/core/recording_sink.hpp — a consumer_sink that keeps every delivery, for kernel tests.
#pragma once

#include <string>
#include <vector>

#include "core/broker.hpp"

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

}  // namespace sb::test
