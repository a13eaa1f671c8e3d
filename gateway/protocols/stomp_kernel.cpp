// gateway/protocols/stomp_kernel.cpp — STOMP served by the kernel: the session settings from the
// `stomp` and `broker` sections, and the sessions' factory.
#include <algorithm>

#include "adapters/stomp/session.hpp"
#include "gateway/protocols/engine_kernel.hpp"

namespace sb::gateway {

namespace {

stomp::settings settings_of(const config& cfg) {
    stomp::settings s;
    s.frame_limits.max_frame_bytes = cfg.stomp.max_frame_bytes;
    s.frame_limits.max_headers = cfg.stomp.max_headers;
    s.frame_limits.max_header_bytes = cfg.stomp.max_header_bytes;
    s.connect_timeout_ms = cfg.stomp.connect_timeout_ms;
    s.heartbeat_floor_ms = cfg.stomp.heartbeat_floor_ms;
    s.heartbeat_grace = cfg.stomp.heartbeat_grace;
    s.output.high_watermark = cfg.stomp.write_high_watermark;
    s.output.low_watermark = std::min(s.output.low_watermark, s.output.high_watermark / 4);
    s.output.stall_timeout = std::chrono::milliseconds(cfg.broker.slow_consumer_timeout_ms);
    s.max_unconfirmed_sends = cfg.stomp.max_unconfirmed_sends;
    s.broker_name = cfg.broker.name;
    return s;
}

}  // namespace

std::unique_ptr<kernel_adapter> make_stomp_kernel(const kernel_env& env) {
    return std::make_unique<engine_kernel<stomp::settings, &stomp::make_session>>(settings_of(env.cfg), env);
}

}  // namespace sb::gateway
