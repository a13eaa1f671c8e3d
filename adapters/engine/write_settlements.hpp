// adapters/engine/write_settlements.hpp — deliveries that count as consumed once their bytes are
// written (STOMP ack:auto, MQTT QoS 0). A session notes each one as it encodes it, marks the
// batch when a write starts, and settles that batch with the kernel when the write completes:
// the consumer's prefetch then bounds what sits in the connection's buffers.
#pragma once

#include <utility>
#include <vector>

#include "core/broker.hpp"

namespace sb::engine {

class write_settlements {
public:
    // Encoded into the output buffer, not yet being written.
    void note(core::consumer_id c, core::delivery_tag t) { queued_.emplace_back(c, t); }
    // A write of everything encoded so far has started.
    void write_started() { writing_.swap(queued_); }
    // That write completed: acknowledge its deliveries, one kernel call per consumer.
    void write_done(core::broker& broker);
    // A consumer ends: its deliveries encoded or being written were sent, so they are settled
    // now (the kernel must not hand them to another consumer as well).
    void settle_consumer(core::broker& broker, core::consumer_id c);
    // The connection goes: everything noted is settled.
    void settle_all(core::broker& broker);
    bool empty() const noexcept { return queued_.empty() && writing_.empty(); }
    // Nothing noted: the storage goes (an idle connection holds none).
    void release_if_empty() noexcept;

private:
    static void ack_grouped(core::broker& broker, std::vector<std::pair<core::consumer_id, core::delivery_tag>>& v);

    std::vector<std::pair<core::consumer_id, core::delivery_tag>> queued_, writing_;
};

}  // namespace sb::engine
