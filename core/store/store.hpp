// core/store/store.hpp — where persistent queue messages live across restarts.
//
// Called only by kernel shards, each on its own worker thread; an implementation must be safe
// for concurrent calls from different shards. A persistent send is confirmed to its producer
// only after `add`'s completion reports it durable, so a journal can group many adds into one
// fsync and complete them together. Non-persistent messages never reach the store.
//
// Local transactions: commit() takes every add and remove of one transaction (from any queues,
// so from any shards) and makes them durable as one unit: after a crash, all of them are there
// or none is. The journal frames them in one group of records (tx_begin ... tx_commit) that
// recovery applies only when whole.
//
// Paging: a store that can read its messages back (`can_load()`) lets the kernel keep only an
// id for a queued message beyond the queue's memory limit and load the body again when the
// queue drains, so a large backlog costs disk, not RAM.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/message/message.hpp"

namespace sb::core {

enum class store_status : std::uint8_t { ok, failed };

// A durable topic subscription: it outlives its consumers and the process.
struct subscription_record {
    std::string name;          // unique (STOMP: "<client-id>:<subscription name>")
    destination filter;        // the topic (pattern) it collects from
    std::string data;          // the owner's (an adapter's) own settings, kept as they are
    std::string selector = {}; // its message selector's text; empty = none (records may omit it)
};

// One pending message as recovery reports it. `msg` is null when the store left the body on
// disk: the kernel queues the id and load()s the body when it needs it.
struct recovered_message {
    message_id id = 0;
    std::uint8_t priority = default_priority;
    message_ptr msg;
};

// One local transaction's changes: persistent messages it sends (`queue` is the queue that
// holds the message: its own, or a durable subscription's) and ids it acknowledged.
struct store_transaction {
    struct add_op {
        std::string queue;
        message_ptr msg;
    };
    struct remove_op {
        std::string queue;
        message_id id = 0;
    };
    std::vector<add_op> adds;
    std::vector<remove_op> removes;
    bool empty() const noexcept { return adds.empty() && removes.empty(); }
};

class store {
public:
    using add_done = std::function<void(store_status)>;
    using recover_each = std::function<void(std::string_view queue, recovered_message)>;

    virtual ~store() = default;

    // Record `msg` as pending on `queue`. `done` runs once the record is durable (or failed),
    // on a thread of the store's choosing: the kernel posts it back to the shard itself.
    virtual void add(std::string_view queue, const message_ptr& msg, add_done done) = 0;

    // Forget `id` on `queue` (acknowledged, expired, or moved to a DLQ). No confirmation.
    virtual void remove(std::string_view queue, message_id id) = 0;

    // Applies a transaction's adds and removes atomically with respect to a crash. `done` runs
    // (on a thread of the store's choosing) once all of it is durable, or failed: then none of
    // it is confirmed. A remove of an id the store does not hold is ignored.
    virtual void commit(store_transaction tx, add_done done) = 0;

    // `done` runs (on a thread of the store's choosing) once everything added or removed
    // before this call is durable: an acknowledgement confirmed after it is never undone.
    virtual void barrier(std::function<void()> done) = 0;

    // Record (or replace) a durable subscription / forget one. Durable once the next barrier
    // or add completes.
    virtual void put_subscription(const subscription_record& s) = 0;
    virtual void remove_subscription(std::string_view name) = 0;

    // A topic's retained message (MQTT): kept until replaced or removed.
    virtual void put_retained(const message_ptr& msg) = 0;
    virtual void remove_retained(std::string_view topic) = 0;

    // At start, before any worker runs: every pending message, in the order it was added.
    // A store that can_load() may report messages without their body.
    virtual void recover(const recover_each& each) = 0;

    // recover() with every body read (tests and small stores).
    void recover_loaded(const std::function<void(std::string_view queue, message_ptr)>& each) {
        recover([&](std::string_view queue, recovered_message r) {
            if (!r.msg) {
                std::vector<message_ptr> got;
                const message_id id[1] = {r.id};
                load(queue, id, 0, got);
                if (got.empty() || !got.front()) return;
                r.msg = std::move(got.front());
            }
            each(queue, std::move(r.msg));
        });
    }

    // Whether load() works: the kernel pages queues out to this store only then.
    virtual bool can_load() const noexcept { return false; }

    // Reads back messages of `queue` added and not yet removed, in the order of `ids`,
    // appending one entry per id to `out` (null: the store does not hold that id). Stops after
    // the message that brings the bytes read to `max_bytes` (at least one is read) and returns
    // how many ids it handled. Synchronous: the kernel calls it on a shard's worker, in
    // batches it keeps small.
    virtual std::size_t load(std::string_view queue, std::span<const message_id> ids, std::size_t max_bytes,
                             std::vector<message_ptr>& out) {
        (void)queue;
        (void)max_bytes;
        out.insert(out.end(), ids.size(), nullptr);
        return ids.size();
    }
    // After recover(): the durable subscriptions.
    virtual void recover_subscriptions(const std::function<void(const subscription_record&)>& each) = 0;
    virtual void recover_retained(const std::function<void(message_ptr)>& each) = 0;

    // A short name for logs and the admin API ("memory", "journal").
    virtual std::string_view kind() const noexcept = 0;
};

}  // namespace sb::core
