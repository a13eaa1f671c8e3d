// core/store/memory_store.cpp — RAM-only store; completes adds at once.
#include "core/store/memory_store.hpp"

namespace sb::core {

void memory_store::add(std::string_view queue, const message_ptr& msg, add_done done) {
    {
        std::lock_guard lock(mutex_);
        const auto s = ++seq_;
        entries_.emplace(s, entry{std::string(queue), msg});
        index_.emplace(std::pair{std::string(queue), msg->id}, s);
    }
    if (done) done(store_status::ok);
}

void memory_store::remove(std::string_view queue, message_id id) {
    std::lock_guard lock(mutex_);
    const auto it = index_.find(std::pair{std::string(queue), id});
    if (it == index_.end()) return;
    entries_.erase(it->second);
    index_.erase(it);
}

void memory_store::commit(store_transaction tx, add_done done) {
    {
        // One lock for the whole transaction: no reader sees half of it.
        std::lock_guard lock(mutex_);
        for (auto& a : tx.adds) {
            const auto s = ++seq_;
            index_.emplace(std::pair{a.queue, a.msg->id}, s);
            entries_.emplace(s, entry{std::move(a.queue), std::move(a.msg)});
        }
        for (const auto& r : tx.removes) {
            const auto it = index_.find(std::pair{r.queue, r.id});
            if (it == index_.end()) continue;
            entries_.erase(it->second);
            index_.erase(it);
        }
    }
    if (done) done(store_status::ok);
}

void memory_store::recover(const recover_each& each) {
    std::vector<entry> all;   // a copy: `each` may call load()
    {
        std::lock_guard lock(mutex_);
        for (const auto& [seq, e] : entries_) all.push_back(e);
    }
    for (const auto& e : all)
        each(e.queue, recovered_message{e.msg->id, e.msg->priority, loadable_ ? nullptr : e.msg});
}

std::size_t memory_store::load(std::string_view queue, std::span<const message_id> ids, std::size_t max_bytes,
                               std::vector<message_ptr>& out) {
    std::lock_guard lock(mutex_);
    std::size_t bytes = 0, n = 0;
    while (n < ids.size() && (n == 0 || bytes < max_bytes)) {
        const auto it = index_.find(std::pair{std::string(queue), ids[n++]});
        if (it == index_.end()) {
            out.push_back(nullptr);
            continue;
        }
        out.push_back(entries_.at(it->second).msg);
        bytes += out.back()->memory_size();
    }
    return n;
}

void memory_store::put_subscription(const subscription_record& s) {
    std::lock_guard lock(mutex_);
    subscriptions_[s.name] = s;
}

void memory_store::remove_subscription(std::string_view name) {
    std::lock_guard lock(mutex_);
    if (auto it = subscriptions_.find(name); it != subscriptions_.end()) subscriptions_.erase(it);
}

void memory_store::recover_subscriptions(const std::function<void(const subscription_record&)>& each) {
    std::lock_guard lock(mutex_);
    for (const auto& [name, s] : subscriptions_) each(s);
}

void memory_store::put_retained(const message_ptr& msg) {
    std::lock_guard lock(mutex_);
    retained_[msg->dest.name] = msg;
}

void memory_store::remove_retained(std::string_view topic) {
    std::lock_guard lock(mutex_);
    if (auto it = retained_.find(topic); it != retained_.end()) retained_.erase(it);
}

void memory_store::recover_retained(const std::function<void(message_ptr)>& each) {
    std::lock_guard lock(mutex_);
    for (const auto& [topic, m] : retained_) each(m);
}

std::size_t memory_store::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

}  // namespace sb::core
