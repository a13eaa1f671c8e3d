// core/kernel/groups.cpp — consumer choice on queues: message groups, exclusive consumers and
// consumer priority, dispatched as ActiveMQ's Queue does (see groups.hpp).
#include <limits>

#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

// ---- group_map -------------------------------------------------------------------------------

consumer_state* group_map::get(const std::string& group) {
    auto it = index_.find(group);
    if (it == index_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
}

void group_map::put(const std::string& group, consumer_state* owner) {
    if (auto it = index_.find(group); it != index_.end()) {
        it->second->second = owner;
        lru_.splice(lru_.begin(), lru_, it->second);
        return;
    }
    lru_.emplace_front(group, owner);
    index_.emplace(group, lru_.begin());
    if (index_.size() > capacity_) {
        // As ActiveMQ's LRU map: the evicted group's owner keeps its count (it only orders).
        index_.erase(lru_.back().first);
        lru_.pop_back();
    }
}

void group_map::remove(const std::string& group) {
    auto it = index_.find(group);
    if (it == index_.end()) return;
    lru_.erase(it->second);
    index_.erase(it);
}

void group_map::remove_owner(const consumer_state* owner) {
    for (auto it = lru_.begin(); it != lru_.end();) {
        if (it->second != owner) {
            ++it;
            continue;
        }
        index_.erase(it->first);
        it = lru_.erase(it);
    }
}

// ---- the consumer list -------------------------------------------------------------------------

namespace {

// ActiveMQ's orderedCompare: higher priority first, then fewer groups.
bool ranks_before(const consumer_state* a, const consumer_state* b) noexcept {
    if (a->priority != b->priority) return a->priority > b->priority;
    return a->groups < b->groups;
}

// Inserts `c` behind every consumer of its rank or better (a stable sort of the list with `c`
// appended, the list being sorted).
void insert_ranked(std::vector<consumer_state*>& list, consumer_state* c) {
    list.insert(std::upper_bound(list.begin(), list.end(), c, ranks_before), c);
}

// ActiveMQ picks the exclusive consumer among those left: the first of the highest priority.
consumer_state* pick_exclusive(const std::vector<consumer_state*>& list) {
    consumer_state* best = nullptr;
    for (auto* c : list)
        if (c->exclusive && (!best || c->priority > best->priority)) best = c;
    return best;
}

}  // namespace

void broker::shard::start_choice(queue_state& q, const consumer_state* in_turn) {
    if (q.choice) return;
    q.choice = std::make_unique<consumer_choice>(settings().max_message_groups);
    // The round robin goes on from where it was, then the list is in ActiveMQ's order.
    if (!q.consumers.empty()) {
        auto first = q.consumers.begin() + std::ptrdiff_t(q.next_consumer % q.consumers.size());
        if (auto it = std::find(q.consumers.begin(), q.consumers.end(), in_turn); it != q.consumers.end()) first = it;
        std::rotate(q.consumers.begin(), first, q.consumers.end());
    }
    q.next_consumer = 0;
    std::stable_sort(q.consumers.begin(), q.consumers.end(), ranks_before);
    q.choice->exclusive = pick_exclusive(q.consumers);
}

void broker::shard::add_queue_consumer(queue_state& q, consumer_state& c, const subscribe_options& opt) {
    c.exclusive = opt.exclusive;
    c.priority = opt.priority;
    if (!q.choice && (opt.exclusive || opt.priority != 0)) start_choice(q);
    if (!q.choice) {
        q.consumers.push_back(&c);
        return;
    }
    insert_ranked(q.consumers, &c);
    if (!c.exclusive) return;
    // ActiveMQ: a later exclusive consumer takes over when of higher priority, or of the highest.
    auto*& current = q.choice->exclusive;
    if (!current || c.priority == std::numeric_limits<std::int8_t>::max() || c.priority > current->priority)
        current = &c;
}

void broker::shard::remove_queue_consumer(queue_state& q, consumer_state& c) {
    std::erase(q.consumers, &c);
    q.next_consumer = q.consumers.empty() ? 0 : q.next_consumer % q.consumers.size();
    if (!q.choice) return;
    // Its groups get new owners with their next messages; its unsettled messages, requeued
    // by the caller, go with them (ActiveMQ: redelivered, the groups removed from the map).
    q.choice->groups.remove_owner(&c);
    if (q.choice->exclusive == &c) q.choice->exclusive = pick_exclusive(q.consumers);
}

// ---- dispatch --------------------------------------------------------------------------------

consumer_state* broker::shard::choose(queue_state& q, const entry& e) {
    auto& ch = *q.choice;
    const std::vector<consumer_id>* refusers = nullptr;
    if (!q.refused.empty())
        if (auto r = q.refused.find(e.msg->id); r != q.refused.end()) refusers = &r->second;
    const message& m = *e.msg;
    consumer_state* holder = nullptr;
    bool owned = false;   // looked up once, only when a candidate is found
    for (auto* c : q.consumers) {
        if (!c->has_credit()) continue;
        if (ch.exclusive && c != ch.exclusive) continue;
        if (refusers && std::find(refusers->begin(), refusers->end(), c->id) != refusers->end()) continue;
        if (c->selector && !selects(*c, *e.msg, e.redeliveries)) continue;   // selective.cpp
        // ActiveMQ's assignMessageGroup: sequence 1 opens the group anew (with whoever takes
        // it); otherwise only the owner takes it, or anyone when the group has none.
        if (m.group_id.empty() || m.group_seq == 1) return c;
        if (!owned) {
            holder = ch.groups.get(m.group_id);
            owned = true;
        }
        if (!holder || holder == c) return c;
    }
    return nullptr;
}

void broker::shard::take_group(queue_state& q, consumer_state& c, entry& e) {
    const message& m = *e.msg;
    if (m.group_id.empty()) return;
    auto& groups = q.choice->groups;
    consumer_state* holder = m.group_seq == 1 ? nullptr : groups.get(m.group_id);
    if (holder != &c) {
        // Assigned (a sequence -1 to a group without owner too, as ActiveMQ: it stays open).
        groups.put(m.group_id, &c);
        ++c.groups;
        e.group_first = true;
    } else if (m.group_seq < 0) {
        // The end of the group: its owner got this last message; the next one opens it anew.
        groups.remove(m.group_id);
        if (c.groups > 0) --c.groups;
    }
}

void broker::shard::rotate(queue_state& q, consumer_state& c) {
    if (q.consumers.size() < 2 || q.choice->exclusive == &c) return;
    std::erase(q.consumers, &c);
    insert_ranked(q.consumers, &c);
}

void broker::shard::dispatch_chosen(queue_state& q) {
    const std::int64_t now = now_ms();
    std::vector<entry> waiting;   // nobody may take them now (their group's owner is full)
    auto can_take = [&] {
        if (auto* x = q.choice->exclusive) return x->has_credit();
        return std::any_of(q.consumers.begin(), q.consumers.end(),
                           [](const consumer_state* c) { return c->has_credit(); });
    };
    while (waiting.size() < choice_lookahead) {
        if (wants_page_in(q)) page_in(q);
        if (q.ready_count == 0 || !can_take()) break;
        entry e = q.pop();
        if (e.msg->expired_at(now)) {
            advise_message("Expired", q, *e.msg);
            expire(q, std::move(e));   // to the DLQ or dropped (dead_letter.cpp)
            continue;
        }
        auto* c = choose(q, e);
        if (!c) {
            waiting.push_back(std::move(e));
            continue;
        }
        take_group(q, *c, e);
        deliver(*c, std::move(e), &q);
        rotate(q, *c);
    }
    for (auto it = waiting.rbegin(); it != waiting.rend(); ++it) q.push_front(std::move(*it));
}

}  // namespace sb::core
