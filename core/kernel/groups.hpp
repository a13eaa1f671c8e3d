// core/kernel/groups.hpp — consumer choice on a queue: message groups, exclusive consumers and
// consumer priority (ActiveMQ's Queue dispatch). Private to core/ (included by shard.hpp); the
// functions are broker::shard members defined in groups.cpp.
//
// A queue starts without a consumer_choice and dispatches round robin (queue.cpp, the fast
// path). It gets one, for good, when a consumer with a priority or the exclusive flag
// subscribes, or when a message with a group id reaches dispatch; from then on its consumers
// are kept in ActiveMQ's order and dispatched to as ActiveMQ's Queue.doActualDispatch does:
//   - the consumer list is ordered by priority (higher first), then by the number of groups
//     each owns (fewer first, so new groups go to the less loaded), stable otherwise;
//   - each message goes to the first consumer of the list that has credit and may take it
//     (the exclusive consumer only, while there is one; a group's owner only); the consumer
//     that took it moves behind the others of its rank (round robin within a priority), unless
//     it is the exclusive consumer;
//   - a message nobody may take now (its group's owner has no credit, no consumer with credit
//     selects it) waits, in order, while the messages behind it (up to choice_lookahead of
//     them) go to others. Selectors (selective.cpp) apply here too once a queue has a choice;
//     unlike selective.cpp's dispatch, more than choice_lookahead messages nobody selects hold
//     up those behind them (as in ActiveMQ, whose dispatch looks at a page of 200).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <utility>

namespace sb::core::kernel {

struct consumer_state;

// Messages a dispatch looks past when the ones in front wait for their group's owner (as
// ActiveMQ dispatches from a page of at most maxPageSize = 200 messages).
constexpr std::size_t choice_lookahead = 200;

// Message groups of one queue: group id -> owning consumer, at most `capacity` of them, the
// least recently used forgotten beyond (ActiveMQ's CachedMessageGroupMap, 1024 by default): a
// forgotten group gets a new owner with its next message.
class group_map {
public:
    explicit group_map(std::size_t capacity) : capacity_(capacity ? capacity : 1) {}

    // The owner, null when none (the group is then touched as the most recently used).
    consumer_state* get(const std::string& group);
    void put(const std::string& group, consumer_state* owner);
    void remove(const std::string& group);
    // Forgets every group `owner` owns.
    void remove_owner(const consumer_state* owner);
    std::size_t size() const noexcept { return index_.size(); }

private:
    using item = std::pair<std::string, consumer_state*>;
    std::size_t capacity_;
    std::list<item> lru_;   // most recently used first
    std::unordered_map<std::string, std::list<item>::iterator> index_;
};

struct consumer_choice {
    explicit consumer_choice(std::size_t max_groups) : groups(max_groups) {}
    consumer_state* exclusive = nullptr;   // while set, the only consumer dispatched to
    group_map groups;
};

}  // namespace sb::core::kernel
