// adapters/amqp/session.hpp — AMQP 1.0 connections served by the kernel, on Qpid Proton's
// protocol engine (proton::io::connection_driver) inside the connection engine: no Proton
// container and no second event loop. Only the factory is public (no Proton in this header):
// the gateway creates a session per accepted connection and drives it like any other. Runs
// entirely on the connection's worker.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "adapters/engine/connection.hpp"

namespace sb::core {
class broker;
class auth_pool;
}  // namespace sb::core

namespace sb::amqp {

// What the AMQP sessions of one broker share: link names by container (amqp:link:stolen), the
// links of each shared or durable subscription, the durable subscriptions by name. Made with
// the settings, which all of a broker's AMQP sessions share (one per kernel adapter).
struct link_registry;
std::shared_ptr<link_registry> make_link_registry();

// engine::limits: connect_timeout_ms (SASL and open by then), max_unconfirmed_sends (publishes
// awaiting the kernel before reading stops), output, linger_ms.
struct settings : engine::limits {
    std::uint32_t max_frame_size = 1u << 20;   // announced in open; Proton refuses bigger frames
    std::uint16_t channel_max = 1024;          // sessions per connection
    std::uint32_t idle_timeout_ms = 60000;     // announced in open: silence this long closes (0: none)
    std::uint32_t link_credit = 1000;          // credit given to each client sender link, refilled as publishes complete
    bool allow_anonymous = true;               // offer SASL ANONYMOUS, accept clients that skip SASL
    std::string broker_name = "switchboard";   // the container-id, and message-ids' prefix
    std::shared_ptr<link_registry> registry = make_link_registry();
};

// SASL PLAIN credentials (and ANONYMOUS, or no SASL at all, as the anonymous user) are checked
// through `auth` (off the worker). Temporary queues of dynamic nodes belong to connection
// `connection_id`.
std::shared_ptr<engine::connection> make_session(std::shared_ptr<const settings> s, core::broker& broker,
                                                 core::auth_pool& auth, std::uint64_t connection_id);

}  // namespace sb::amqp
