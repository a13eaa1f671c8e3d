// core/transaction.cpp — a kernel transaction's buffer, and its place in its connection's table.
#include "core/transaction.hpp"

#include <algorithm>
#include <cassert>
#include <unordered_map>
#include <utility>

namespace sb::core {

transaction::transaction(broker& b, std::size_t home, std::uint64_t connection, std::size_t max_frames)
    : broker_(b), home_(home), connection_(connection), max_frames_(max_frames) {}

transaction::~transaction() {
    if (open_) rollback();
}

tx_status transaction::send(message_ptr msg) {
    if (!open_) return tx_status::ended;
    if (frames() >= max_frames_) return tx_status::too_large;
    sends_.push_back(std::move(msg));
    return tx_status::ok;
}

tx_status transaction::ack(consumer_id id, std::vector<delivery_tag> tags) {
    return settle(id, std::move(tags), settle_outcome::accepted());
}

tx_status transaction::nack(consumer_id id, std::vector<delivery_tag> tags) {
    return settle(id, std::move(tags), settle_outcome::modified(true, false));
}

tx_status transaction::settle(consumer_id id, std::vector<delivery_tag> tags, settle_outcome outcome) {
    if (!open_) return tx_status::ended;
    if (frames() + tags.size() > max_frames_) return tx_status::too_large;
    for (auto t : tags) settles_.push_back(settlement{id, t, outcome});
    return tx_status::ok;
}

tx_status transaction::commit(std::function<void(publish_status)> done) {
    if (!open_) return tx_status::ended;
    end();
    local_transaction work;
    work.sends = std::move(sends_);
    // The other outcomes take effect now, before the acks and sends, in runs of one consumer
    // and one outcome (what they write to the store, a dead-lettered copy, is not part of
    // the transaction's store batch: the message leaves its queue either way).
    std::vector<delivery_tag> run;
    for (std::size_t i = 0; i < settles_.size(); ++i) {
        const auto& s = settles_[i];
        if (s.outcome.what == settle_outcome::kind::accepted) {
            work.acks.emplace_back(s.consumer, s.tag);
            continue;
        }
        run.push_back(s.tag);
        std::size_t j = i + 1;
        while (j < settles_.size() && settles_[j].outcome.what == settle_outcome::kind::accepted) ++j;
        const bool same = j < settles_.size() && settles_[j].consumer == s.consumer &&
                          settles_[j].outcome.what == s.outcome.what &&
                          settles_[j].outcome.delivery_failed == s.outcome.delivery_failed &&
                          settles_[j].outcome.undeliverable_here == s.outcome.undeliverable_here &&
                          settles_[j].outcome.reason == s.outcome.reason;
        if (!same) {
            std::sort(run.begin(), run.end());
            broker_.settle(s.consumer, std::move(run), s.outcome);
            run.clear();
        }
    }
    settles_.clear();
    broker_.commit(std::move(work), std::move(done));
    return tx_status::ok;
}

tx_status transaction::rollback() {
    if (!open_) return tx_status::ended;
    end();
    sends_.clear();
    give_back(settles_);
    settles_.clear();
    return tx_status::ok;
}

void transaction::give_back(const std::vector<settlement>& all) {
    if (all.empty()) return;
    // One nack per consumer, its tags in the order they were settled: the queue gets them
    // back at its head in delivery order.
    std::vector<std::pair<consumer_id, std::vector<delivery_tag>>> by;
    for (const auto& s : all) {
        auto it = std::find_if(by.begin(), by.end(), [&](const auto& b) { return b.first == s.consumer; });
        if (it == by.end()) it = by.insert(by.end(), {s.consumer, {}});
        it->second.push_back(s.tag);
    }
    for (auto& [consumer, tags] : by) {
        std::sort(tags.begin(), tags.end());
        broker_.nack(consumer, std::move(tags));
    }
}

void transaction::end() {
    open_ = false;
    broker_.forget_transaction(home_, *this);
}

std::unique_ptr<transaction> broker::begin_transaction(std::uint64_t connection, std::size_t max_frames) {
    const std::size_t w = executor::current() ? executor::current()->index() : 0;
    assert(executor::current() && "kernel calls are made on a worker thread");
    std::unique_ptr<transaction> tx(
        new transaction(*this, w, connection, max_frames ? max_frames : settings_.max_transaction_frames));
    connections_[w].by_id[connection].transactions.push_back(tx.get());
    return tx;
}

void broker::forget_transaction(std::size_t worker, const transaction& tx) noexcept {
    auto& table = connections_[worker].by_id;
    auto it = table.find(tx.connection());
    if (it == table.end()) return;
    auto& e = it->second;
    std::erase(e.transactions, &tx);
    if (e.empty()) table.erase(it);
}

}  // namespace sb::core
