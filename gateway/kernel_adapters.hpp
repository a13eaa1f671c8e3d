// gateway/kernel_adapters.hpp — the kernel's half of the adapter registry: the protocols the
// kernel speaks, each with its settings (built from the config), its process-wide state and the
// factory of its sessions. "Does the kernel speak X?" is asked here and nowhere else: config
// validation, routing, listeners.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "gateway/transport.hpp"
#include "gateway/config.hpp"

namespace sb::core {
class broker;
class auth_pool;
}  // namespace sb::core

namespace sb::gateway {

class worker;

// What a protocol's kernel sessions get from the process.
struct kernel_env {
    const config& cfg;
    core::broker& broker;
    core::auth_pool& auth;   // outlives every session
    worker& housekeeping;        // runs the adapter's process-wide timers (worker 0)
};

// The one signature every connection's session is created by: on the connection's worker,
// from the top of its transport stack and its connection number; not yet started.
using session_factory =
    std::function<std::shared_ptr<net::session>(std::unique_ptr<net::transport>, std::uint64_t conn)>;

// One protocol served by the kernel while the process runs. Created on the main thread once the
// store is recovered; start() once the workers run; stop() at shutdown (any thread); destroyed
// after the workers' threads have ended and before their contexts are.
class kernel_adapter {
public:
    virtual ~kernel_adapter() = default;
    virtual session_factory sessions() const = 0;
    virtual void start() {}
    virtual void stop() {}
};

using kernel_factory = std::unique_ptr<kernel_adapter> (*)(const kernel_env&);

// Null when the kernel does not speak `w` (no kernel adapter yet): route it to a backend.
kernel_factory kernel_factory_for(wire w) noexcept;
inline bool kernel_speaks(wire w) noexcept { return kernel_factory_for(w) != nullptr; }

// The protocol a single-protocol listener serves (nullopt: `auto`, detected; `tcp`, relayed).
std::optional<wire> wire_of(protocol p) noexcept;

}  // namespace sb::gateway
