// gateway/protocols/engine_kernel.hpp — the kernel adapter of a protocol whose sessions need
// only their settings, the broker and the authenticator (STOMP, AMQP): each accepted transport
// gets a session from the adapter's make_session, driven by the engine driver.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include "gateway/engine_driver.hpp"
#include "gateway/kernel_adapters.hpp"

namespace sb::gateway {

// `Make` is the adapter's make_session(std::shared_ptr<const Settings>, core::broker&,
// core::auth_pool&, connection id).
template <class Settings, auto Make>
class engine_kernel final : public kernel_adapter {
public:
    engine_kernel(Settings s, const kernel_env& env)
        : settings_(std::make_shared<const Settings>(std::move(s))), broker_(env.broker), auth_(env.auth) {}

    session_factory sessions() const override {
        return [s = settings_, &broker = broker_, &auth = auth_](std::unique_ptr<net::transport> t, std::uint64_t conn) {
            return drive(Make(s, broker, auth, conn), std::move(t));
        };
    }

private:
    std::shared_ptr<const Settings> settings_;
    core::broker& broker_;
    core::auth_pool& auth_;
};

}  // namespace sb::gateway
