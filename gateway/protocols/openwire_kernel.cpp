// gateway/protocols/openwire_kernel.cpp — OpenWire (ActiveMQ JMS clients) served by the kernel:
// the session settings from the `openwire`, `broker` and `security` sections, and the sessions'
// factory.
#include "adapters/openwire/session.hpp"
#include "gateway/protocols/engine_kernel.hpp"

namespace sb::gateway {

namespace {

openwire::settings settings_of(const config& cfg) {
    openwire::settings s;
    s.codec.max_frame_size = cfg.openwire.max_frame_size;
    s.max_inactivity_ms = cfg.openwire.max_inactivity_ms;
    s.max_inactivity_initial_delay_ms = cfg.openwire.max_inactivity_initial_delay_ms;
    s.connect_timeout_ms = cfg.openwire.connect_timeout_ms;
    s.max_unconfirmed_sends = cfg.openwire.max_unconfirmed_sends;
    s.output.stall_timeout = std::chrono::milliseconds(cfg.broker.slow_consumer_timeout_ms);
    s.broker_name = cfg.broker.name;
    return s;
}

}  // namespace

std::unique_ptr<kernel_adapter> make_openwire_kernel(const kernel_env& env) {
    return std::make_unique<engine_kernel<openwire::settings, &openwire::make_session>>(settings_of(env.cfg), env);
}

}  // namespace sb::gateway
