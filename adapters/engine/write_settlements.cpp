// adapters/engine/write_settlements.cpp — batching the kernel acks of written deliveries.
#include "adapters/engine/write_settlements.hpp"

#include <algorithm>

namespace sb::engine {

void write_settlements::ack_grouped(core::broker& broker,
                                    std::vector<std::pair<core::consumer_id, core::delivery_tag>>& v) {
    if (v.empty()) return;
    std::sort(v.begin(), v.end());
    std::vector<core::delivery_tag> tags;
    for (std::size_t i = 0; i < v.size(); ++i) {
        tags.push_back(v[i].second);
        if (i + 1 == v.size() || v[i + 1].first != v[i].first) {
            broker.ack(v[i].first, std::move(tags));
            tags.clear();
        }
    }
    v.clear();
}

void write_settlements::write_done(core::broker& broker) { ack_grouped(broker, writing_); }

void write_settlements::settle_consumer(core::broker& broker, core::consumer_id c) {
    std::vector<core::delivery_tag> sent;
    for (auto* v : {&queued_, &writing_}) {
        std::erase_if(*v, [&](const auto& a) {
            if (a.first != c) return false;
            sent.push_back(a.second);
            return true;
        });
    }
    if (!sent.empty()) broker.ack(c, std::move(sent));
}

void write_settlements::settle_all(core::broker& broker) {
    ack_grouped(broker, queued_);
    ack_grouped(broker, writing_);
}

void write_settlements::release_if_empty() noexcept {
    if (queued_.empty() && queued_.capacity()) std::vector<std::pair<core::consumer_id, core::delivery_tag>>().swap(queued_);
    if (writing_.empty() && writing_.capacity()) std::vector<std::pair<core::consumer_id, core::delivery_tag>>().swap(writing_);
}

}  // namespace sb::engine
