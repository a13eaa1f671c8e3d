// core/kernel/credit.cpp — consumer credit: grant, set (take back), drain (broker::grant,
// set_credit, drain; the modes are described at credit_mode in core/broker.hpp).
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

void broker::shard::add_credit(consumer_id id, std::uint32_t n, bool set) {
    auto it = consumers.find(id);
    if (it == consumers.end()) return;
    auto& c = *it->second;
    if (forwards(c)) return;   // a link credit topic subscription's credit is on its credit shard
    if (c.window) {
        // credit == prefetch - unsettled holds through a change of the window.
        const std::uint32_t old = c.prefetch;
        c.prefetch = set ? n : std::uint32_t(std::min<std::uint64_t>(std::uint64_t(c.prefetch) + n, UINT32_MAX));
        c.credit += std::int64_t(c.prefetch) - std::int64_t(old);
    } else {
        c.credit = set ? std::int64_t(n) : c.credit + n;
    }
    after_settle(c);   // what waited for credit goes now
}

drain_result broker::shard::drain(consumer_id id) {
    auto it = consumers.find(id);
    if (it == consumers.end()) return {};
    auto& c = *it->second;
    if (forwards(c)) return {};
    const std::int64_t before = c.credit;
    after_settle(c);   // each delivery it makes uses one unit of credit, in both modes
    drain_result r;
    r.delivered = before > c.credit ? std::uint32_t(before - c.credit) : 0;
    r.unused = c.credit > 0 ? std::uint32_t(c.credit) : 0;
    if (c.window) {
        c.credit -= c.prefetch;   // a window of 0: its unsettled deliveries bring nothing back
        c.prefetch = 0;
    } else {
        c.credit = 0;
    }
    return r;
}

}  // namespace sb::core
