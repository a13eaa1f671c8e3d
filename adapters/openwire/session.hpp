// adapters/openwire/session.hpp — OpenWire (ActiveMQ 5.x JMS clients) connection state machine;
// talks to the kernel. Only the factory is public: the gateway creates a session per accepted
// connection and has a driver (gateway/engine_driver) run it over the connection's transport.
// Runs entirely on the connection's worker. docs/openwire.md describes what it does.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "adapters/engine/connection.hpp"
#include "adapters/openwire/codec.hpp"
#include "core/selector/selector.hpp"

namespace sb::core {
class broker;
class auth_pool;
}  // namespace sb::core

namespace sb::openwire {

// The JMS client ids connected to this process (every OpenWire listener and worker): a client
// id is taken by one connection at a time (JMS 1.1 §4.3.2). Thread-safe.
class client_ids {
public:
    bool acquire(const std::string& id) {
        std::lock_guard lock(mutex_);
        return ids_.insert(id).second;
    }
    void release(const std::string& id) {
        std::lock_guard lock(mutex_);
        ids_.erase(id);
    }

private:
    std::mutex mutex_;
    std::unordered_set<std::string> ids_;
};

// engine::limits: connect_timeout_ms (the client's WireFormatInfo must arrive within it),
// max_unconfirmed_sends (stop reading past this many), output, linger_ms.
struct settings : engine::limits {
    openwire::limits codec;                             // max_frame_size: announced, enforced on input
    std::uint32_t max_inactivity_ms = 30000;            // announced; 0: no inactivity monitor
    std::uint32_t max_inactivity_initial_delay_ms = 10000;
    std::size_t max_consumers = 10000;                  // per connection
    std::size_t max_transactions = 100;                 // open at once per connection
    std::size_t max_transaction_frames = 100000;        // the kernel transaction's max_frames
    std::size_t max_temporaries = 1000;                 // temporary destinations per connection
    core::selector_limits selector_limits;
    std::string broker_name = "switchboard";
    std::shared_ptr<client_ids> clients = std::make_shared<client_ids>();
};

// ConnectionInfo's credentials are checked through `auth` (off the worker; the commands after
// it wait for the answer). Transactions are kernel transactions (broker::begin_transaction) of
// connection `connection_id`; temporary destinations the kernel's (broker::create_temporary).
std::shared_ptr<engine::connection> make_session(std::shared_ptr<const settings> s, core::broker& broker,
                                                 core::auth_pool& auth, std::uint64_t connection_id);

}  // namespace sb::openwire
