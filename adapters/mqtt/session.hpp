// adapters/mqtt/session.hpp — MQTT 3.1/3.1.1/5.0 connection state machine; talks to the kernel.
// Only the factory and the shared session registry are public: the gateway creates a session
// per accepted connection and drives it as an engine::connection. A session runs entirely on
// its connection's worker.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "adapters/engine/connection.hpp"
#include "adapters/mqtt/codec.hpp"
#include "core/store/store.hpp"

namespace sb::core {
class broker;
class auth_pool;
}  // namespace sb::core

namespace sb::mqtt {

// The engine's limits (connect_timeout_ms, output, linger_ms: after our last packet, drain
// input, then close) and MQTT's own. max_unconfirmed_sends is where reading stops: inbound
// QoS>0 packets not yet acknowledged plus QoS 0 publishes the kernel has not confirmed; set it
// to receive_maximum (the default of both is 1024).
struct settings : engine::limits {
    mqtt::limits packet_limits;                 // max_packet_size is also announced in CONNACK
    std::uint16_t receive_maximum = 1024;       // inbound QoS>0 unacknowledged per client
    std::uint16_t topic_alias_maximum = 64;     // client -> server aliases
    std::uint16_t max_keepalive_s = 65535;
    std::size_t max_queued_messages = 1000;     // per offline persistent session subscription
    std::uint32_t max_session_expiry_s = 0xFFFFFFFF;
    bool retain_available = true;
    std::uint32_t default_prefetch = 1000;
    std::string broker_name = "switchboard";
};

// Persistent sessions, client-id takeover and delayed wills across all workers of a process.
// Thread-safe (a mutex taken only on connect, disconnect and the expiry sweep).
class registry;
std::shared_ptr<registry> make_registry(core::broker& broker);

// Ends expired persistent sessions (their kernel subscriptions) and publishes the delayed wills
// that are due; call periodically (once a second) on a worker.
void sweep_expired(registry& r);

// At start, after the broker recovered: persistent sessions from the durable subscriptions the
// store kept (their clients find `session present` and their queued messages).
void restore_sessions(registry& r, const std::vector<core::subscription_record>& records);

// A session for one connection, to be driven (engine::connection::attach, start) on the worker
// that creates it. CONNECT's credentials are checked through `auth` (off the worker; the
// packets after CONNECT wait for the answer; `busy` is refused: v5 CONNACK 0x89 Server busy,
// v3 return code 3 Server unavailable).
std::shared_ptr<engine::connection> make_session(std::shared_ptr<const settings> s, core::broker& broker,
                                                 core::auth_pool& auth, std::shared_ptr<registry> reg,
                                                 std::uint64_t connection_id);

}  // namespace sb::mqtt
