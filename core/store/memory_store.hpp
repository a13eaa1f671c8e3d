// core/store/memory_store.hpp — a store that keeps pending messages in RAM: nothing survives the
// process, but recover() works within it (tests restart a kernel on the same store). Built
// `loadable`, it also answers load() and recovers ids without bodies, so that kernel tests can
// exercise paging without a disk; it still holds every message, so it saves no memory.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "core/store/store.hpp"

namespace sb::core {

class memory_store final : public store {
public:
    explicit memory_store(bool loadable = false) : loadable_(loadable) {}

    void add(std::string_view queue, const message_ptr& msg, add_done done) override;
    void remove(std::string_view queue, message_id id) override;
    void commit(store_transaction tx, add_done done) override;
    void recover(const recover_each& each) override;
    bool can_load() const noexcept override { return loadable_; }
    std::size_t load(std::string_view queue, std::span<const message_id> ids, std::size_t max_bytes,
                     std::vector<message_ptr>& out) override;
    void barrier(std::function<void()> done) override {
        if (done) done();
    }
    void put_subscription(const subscription_record& s) override;
    void remove_subscription(std::string_view name) override;
    void recover_subscriptions(const std::function<void(const subscription_record&)>& each) override;
    void put_retained(const message_ptr& msg) override;
    void remove_retained(std::string_view topic) override;
    void recover_retained(const std::function<void(message_ptr)>& each) override;
    std::string_view kind() const noexcept override { return "memory"; }

    std::size_t size() const;

private:
    // Keyed by insertion sequence so recovery keeps order across queues.
    struct entry { std::string queue; message_ptr msg; };
    bool loadable_;
    mutable std::mutex mutex_;
    std::uint64_t seq_ = 0;
    std::map<std::uint64_t, entry> entries_;
    std::map<std::pair<std::string, message_id>, std::uint64_t, std::less<>> index_;
    std::map<std::string, subscription_record, std::less<>> subscriptions_;
    std::map<std::string, message_ptr, std::less<>> retained_;
};

}  // namespace sb::core
