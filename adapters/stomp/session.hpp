// adapters/stomp/session.hpp — STOMP 1.0–1.2 connection state machine; talks to the kernel.
// Only the factory is public: the gateway creates a session per accepted connection and has a
// driver (gateway/engine_driver) run it over the connection's transport. Runs entirely on the
// connection's worker.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "adapters/engine/connection.hpp"
#include "adapters/stomp/codec.hpp"
#include "core/selector/selector.hpp"

namespace sb::core {
class broker;
class auth_pool;
}  // namespace sb::core

namespace sb::stomp {

// engine::limits: connect_timeout_ms, max_unconfirmed_sends (stop reading past this many),
// output (past its high watermark reading stops, consumers pause), linger_ms (after ERROR:
// drain input, then close).
struct settings : engine::limits {
    stomp::limits frame_limits;
    std::uint32_t heartbeat_floor_ms = 100;
    double heartbeat_grace = 1.5;
    std::size_t max_subscriptions = 1000;
    core::selector_limits selector_limits;         // SUBSCRIBE's `selector` header: length, nesting
    std::size_t max_transactions = 100;            // open at once per connection
    std::size_t max_transaction_frames = 100000;   // the kernel transaction's max_frames
    std::string broker_name = "switchboard";
    std::string server = "Switchboard/0.1";
};

// CONNECT's credentials are checked through `auth` (off the worker; the frames after CONNECT
// wait for the answer; `busy` is refused with ERROR "server busy"). Transactions are kernel
// transactions (broker::begin_transaction) of connection `connection_id`.
std::shared_ptr<engine::connection> make_session(std::shared_ptr<const settings> s, core::broker& broker,
                                                 core::auth_pool& auth, std::uint64_t connection_id);

}  // namespace sb::stomp
