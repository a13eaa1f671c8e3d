// adapters/stomp/session.hpp — STOMP 1.0–1.2 connection state machine; talks to the kernel.
// Only the factory is public: the gateway creates a session per accepted connection and holds
// it as a net::session. Runs entirely on the connection's worker.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "adapters/net/output_flow.hpp"
#include "adapters/net/transport.hpp"
#include "adapters/stomp/codec.hpp"

namespace sb::core {
class broker;
class authenticator;
}  // namespace sb::core

namespace sb::stomp {

struct settings {
    limits frame_limits;
    std::uint32_t connect_timeout_ms = 10000;
    std::uint32_t heartbeat_floor_ms = 100;
    double heartbeat_grace = 1.5;
    std::size_t max_unconfirmed_sends = 1024;          // stop reading past this many
    net::output_limits output;                         // past its high watermark reading stops, consumers pause
    std::size_t max_subscriptions = 1000;
    std::size_t max_transactions = 100;
    std::size_t max_transaction_frames = 100000;
    std::uint32_t linger_ms = 2000;                    // after ERROR: drain input, then close
    std::string broker_name = "switchboard";
    std::string server = "Switchboard/0.1";
};


std::shared_ptr<net::session> make_session(std::unique_ptr<net::transport> t,
                                           std::shared_ptr<const settings> s, core::broker& broker,
                                           const core::authenticator& auth,
                                           std::uint64_t connection_id);

}  // namespace sb::stomp
