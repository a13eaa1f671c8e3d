// core/store/store.hpp — where persistent queue messages live across restarts.
//
// Called only by kernel shards, each on its own worker thread; an implementation must be safe
// for concurrent calls from different shards. A persistent send is confirmed to its producer
// only after `add`'s completion reports it durable, so a journal can group many adds into one
// fsync and complete them together. Non-persistent messages never reach the store.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/message/message.hpp"

namespace sb::core {

enum class store_status : std::uint8_t { ok, failed };

// A durable topic subscription: it outlives its consumers and the process.
struct subscription_record {
    std::string name;          // unique (STOMP: "<client-id>:<subscription name>")
    destination filter;        // the topic (pattern) it collects from
    std::string data;          // the owner's (an adapter's) own settings, kept as they are
};

class store {
public:
    using add_done = std::function<void(store_status)>;

    virtual ~store() = default;

    // Record `msg` as pending on `queue`. `done` runs once the record is durable (or failed),
    // on a thread of the store's choosing: the kernel posts it back to the shard itself.
    virtual void add(std::string_view queue, const message_ptr& msg, add_done done) = 0;

    // Forget `id` on `queue` (acknowledged, expired, or moved to a DLQ). No confirmation.
    virtual void remove(std::string_view queue, message_id id) = 0;

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
    virtual void recover(const std::function<void(std::string_view queue, message_ptr)>& each) = 0;
    // After recover(): the durable subscriptions.
    virtual void recover_subscriptions(const std::function<void(const subscription_record&)>& each) = 0;
    virtual void recover_retained(const std::function<void(message_ptr)>& each) = 0;

    // A short name for logs and the admin API ("memory", "journal").
    virtual std::string_view kind() const noexcept = 0;
};

}  // namespace sb::core
