// gateway/log.hpp — the gateway's logger ("gateway", set up by main), or spdlog's default one
// when it does not exist (tests, tools).
#pragma once

#include <memory>

#include <spdlog/spdlog.h>

namespace sb::gateway {

inline std::shared_ptr<spdlog::logger> log() {
    static const auto l = spdlog::get("gateway");
    return l ? l : spdlog::default_logger();
}

}  // namespace sb::gateway
