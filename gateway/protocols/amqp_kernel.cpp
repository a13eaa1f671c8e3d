// gateway/protocols/amqp_kernel.cpp — AMQP 1.0 served by the kernel: the session settings from
// the `amqp`, `broker` and `security` sections, and the sessions' factory.
#include "adapters/amqp/session.hpp"
#include "gateway/protocols/engine_kernel.hpp"

namespace sb::gateway {

namespace {

amqp::settings settings_of(const config& cfg) {
    amqp::settings s;
    s.max_frame_size = cfg.amqp.max_frame_size;
    s.channel_max = cfg.amqp.channel_max;
    s.idle_timeout_ms = cfg.amqp.idle_timeout_ms;
    s.connect_timeout_ms = cfg.amqp.connect_timeout_ms;
    s.link_credit = cfg.amqp.link_credit;
    s.max_unconfirmed_sends = cfg.amqp.max_unconfirmed_sends;
    s.allow_anonymous = cfg.security.allow_anonymous;
    s.output.stall_timeout = std::chrono::milliseconds(cfg.broker.slow_consumer_timeout_ms);
    s.broker_name = cfg.broker.name;
    return s;
}

}  // namespace

std::unique_ptr<kernel_adapter> make_amqp_kernel(const kernel_env& env) {
    return std::make_unique<engine_kernel<amqp::settings, &amqp::make_session>>(settings_of(env.cfg), env);
}

}  // namespace sb::gateway
