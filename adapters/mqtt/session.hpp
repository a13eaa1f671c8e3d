// adapters/mqtt/session.hpp — MQTT 3.1/3.1.1/5.0 connection state machine; talks to the kernel.
// Only the factory and the shared session registry are public: the gateway creates a session
// per accepted connection. A session runs entirely on its connection's worker.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "adapters/mqtt/codec.hpp"
#include "adapters/net/output_flow.hpp"
#include "adapters/net/transport.hpp"
#include "core/store/store.hpp"

namespace sb::core {
class broker;
class authenticator;
}  // namespace sb::core

namespace sb::mqtt {

struct settings {
    limits packet_limits;                       // max_packet_size is also announced in CONNACK
    std::uint16_t receive_maximum = 1024;       // inbound QoS>0 unacknowledged per client
    std::uint16_t topic_alias_maximum = 64;     // client -> server aliases
    std::uint16_t max_keepalive_s = 65535;
    std::uint32_t connect_timeout_ms = 10000;
    std::size_t max_queued_messages = 1000;     // per offline persistent session subscription
    std::uint32_t max_session_expiry_s = 0xFFFFFFFF;
    bool retain_available = true;
    net::output_limits output;                  // past its high watermark reading stops, consumers pause
    std::uint32_t linger_ms = 2000;             // after our last packet: drain input, then close
    std::uint32_t default_prefetch = 1000;
    std::string broker_name = "switchboard";
};

// Persistent sessions, client-id takeover and delayed wills across all workers of a process.
// Thread-safe (a mutex taken only on connect, disconnect and the expiry sweep).
class registry;
std::shared_ptr<registry> make_registry(core::broker& broker);

// Ends expired persistent sessions (their kernel subscriptions); call periodically on a worker.
void sweep_expired(registry& r);

// At start, after the broker recovered: persistent sessions from the durable subscriptions the
// store kept (their clients find `session present` and their queued messages).
void restore_sessions(registry& r, const std::vector<core::subscription_record>& records);

std::shared_ptr<net::session> make_session(std::unique_ptr<net::transport> t,
                                           std::shared_ptr<const settings> s, core::broker& broker,
                                           const core::authenticator& auth, std::shared_ptr<registry> reg,
                                           std::uint64_t connection_id);

}  // namespace sb::mqtt
