// gateway/kernel_adapters.cpp — the protocols the kernel speaks (one line each), and how a
// listener's `protocol` names one.
#include "gateway/kernel_adapters.hpp"

namespace sb::gateway {

std::unique_ptr<kernel_adapter> make_stomp_kernel(const kernel_env& env);   // protocols/stomp_kernel.cpp
std::unique_ptr<kernel_adapter> make_mqtt_kernel(const kernel_env& env);    // protocols/mqtt_kernel.cpp
std::unique_ptr<kernel_adapter> make_amqp_kernel(const kernel_env& env);    // protocols/amqp_kernel.cpp
std::unique_ptr<kernel_adapter> make_openwire_kernel(const kernel_env& env);   // protocols/openwire_kernel.cpp

kernel_factory kernel_factory_for(wire w) noexcept {
    switch (w) {
    case wire::stomp: return make_stomp_kernel;
    case wire::mqtt: return make_mqtt_kernel;
    case wire::amqp: return make_amqp_kernel;
    case wire::openwire: return make_openwire_kernel;
    case wire::http: return nullptr;
    }
    return nullptr;
}

std::optional<wire> wire_of(protocol p) noexcept {
    switch (p) {
    case protocol::stomp: return wire::stomp;
    case protocol::mqtt: return wire::mqtt;
    case protocol::amqp: return wire::amqp;
    case protocol::openwire: return wire::openwire;
    case protocol::automatic:
    case protocol::websocket:
    case protocol::tcp: return std::nullopt;
    }
    return std::nullopt;
}

}  // namespace sb::gateway
