// core/transaction.hpp — a local transaction kept by the kernel (STOMP BEGIN ... COMMIT, JMS
// transacted sessions, AMQP transactional work): sends and settlements buffered until commit.
//
// Obtained from broker::begin_transaction on a worker, and used only there (the worker of its
// connection): no locks. Nothing it buffers takes effect before commit(): the sends are not
// published, the settled deliveries stay in flight to their consumers (they count against
// their prefetch). commit() hands everything to broker::commit: the acknowledged persistent
// messages' removes and the persistent sends' adds are written as one store transaction, `done`
// follows its fsync, and the sends become visible only then. rollback() drops the sends and
// gives every settled delivery back to its queue, counted as a redelivery (dead-lettered past
// max_redeliveries), as ActiveMQ does for an aborted transaction. A transaction still open when
// its connection closes (broker::connection_closed) or when it is destroyed is rolled back.
//
// Bounded: at most max_frames sends and settled deliveries together; past it an operation is
// refused (tx_status::too_large) and the transaction is left as it was, for the caller to
// roll back or fail the client.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/broker.hpp"

namespace sb::core {

enum class tx_status : std::uint8_t {
    ok,
    too_large,   // max_frames reached: nothing was added
    ended,       // committed, rolled back, or its connection closed: nothing was done
};

class transaction {
public:
    // Rolls back if still open. On the transaction's worker (or once the workers stopped),
    // before the broker is destroyed.
    ~transaction();
    transaction(const transaction&) = delete;
    transaction& operator=(const transaction&) = delete;

    // Buffers a send (published at commit, in order with the transaction's other sends).
    tx_status send(message_ptr msg);

    // Buffers the acknowledgement of deliveries of consumer `id` (applied at commit; until then
    // they stay in flight). Tags the consumer does not hold at commit are ignored.
    tx_status ack(consumer_id id, std::vector<delivery_tag> tags);
    // Buffers a negative acknowledgement (STOMP NACK in a transaction): at commit the
    // deliveries go back to their queue, counted as a redelivery.
    tx_status nack(consumer_id id, std::vector<delivery_tag> tags);
    // Buffers a settlement with any outcome (AMQP transactional dispositions). accepted is
    // ack(); the others take effect at commit as broker::settle makes them (released,
    // modified, rejected), before the transaction's acks and sends.
    tx_status settle(consumer_id id, std::vector<delivery_tag> tags, settle_outcome outcome);

    // Ends the transaction: applies its settlements and publishes its sends as one unit (see
    // broker::commit). `done` runs on this worker after the store transaction is durable and
    // the sends were accepted (store_failed: the store holds none of it; the sends are dropped,
    // and the acknowledged messages, gone from memory, come back at the next start as after a
    // crash). ended: already ended, `done` is not called.
    tx_status commit(std::function<void(publish_status)> done);

    // Ends the transaction: drops the sends, gives every delivery it settled back to its queue
    // (counted as a redelivery). ended: already ended.
    tx_status rollback();

    bool open() const noexcept { return open_; }
    std::uint64_t connection() const noexcept { return connection_; }
    // Sends and settled deliveries buffered so far.
    std::size_t frames() const noexcept { return sends_.size() + settles_.size(); }
    std::size_t max_frames() const noexcept { return max_frames_; }

private:
    friend class broker;
    transaction(broker& b, std::size_t home, std::uint64_t connection, std::size_t max_frames);

    struct settlement {
        consumer_id consumer = 0;
        delivery_tag tag = 0;
        settle_outcome outcome;
    };

    // Gives `all` back to their consumers' queues, counted as a redelivery.
    void give_back(const std::vector<settlement>& all);
    void end();   // no longer open; leaves its connection's table

    broker& broker_;
    std::size_t home_;   // index of the worker it belongs to
    std::uint64_t connection_;
    std::size_t max_frames_;
    std::vector<message_ptr> sends_;
    std::vector<settlement> settles_;
    bool open_ = true;
};

}  // namespace sb::core
