// core/kernel/transaction.cpp — broker::commit: a local transaction across shards, one store
// transaction.
#include "core/kernel/shard.hpp"

namespace sb::core {

using namespace kernel;

// A commit in three steps (see broker.hpp): the acks are settled on the shards that issued
// them, each sending back the store removes it owes; one store transaction then holds those
// removes and the adds of every persistent send; once it is durable, the sends go to their
// destinations' shards, already stored.
struct broker::commit_state {
    std::mutex mutex;
    store_transaction batch;
    std::size_t shards_left = 0;
    std::vector<message_ptr> sends;
    // Per send: the durable subscription queues a persistent topic message was stored for.
    // (sched: with the message that queue gets: a virtual topic's consumer queue a copy of its own)
    std::vector<std::vector<std::pair<std::string, message_ptr>>> durable_copies;
    executor* home = nullptr;
    std::function<void(publish_status)> done;
};

void broker::commit(local_transaction tx, std::function<void(publish_status)> done) {
    executor* home = &calling_worker();
    auto st = std::make_shared<commit_state>();
    st->home = home;
    // sched: composite sends are split into their parts; scheduled sends go to the scheduler
    // once the rest of the transaction is committed (as ActiveMQ schedules them after commit).
    std::vector<message_ptr> later;
    expand_sends(tx.sends, later);
    if (!later.empty()) {
        done = [this, home, later = std::move(later), done = std::move(done)](publish_status s) mutable {
            if (s != publish_status::ok) {
                if (done) done(s);
                return;
            }
            auto join = std::make_shared<publish_join>();
            join->left = later.size();
            join->reply = on_home(home, std::move(done));
            for (auto& m : later) schedule(std::move(m), [join](publish_status r) { join->part(r); });
        };
    }
    st->done = std::move(done);
    st->sends = std::move(tx.sends);
    st->durable_copies.resize(st->sends.size());
    // The calling worker is a shard too, and every shard knows every durable subscription:
    // the durable copies of a persistent topic message are decided (and stored) here.
    auto& local = *shards_[home->index()];   // this worker's shard: its durables copy every shard's
    for (std::size_t i = 0; i < st->sends.size(); ++i) {
        const auto& m = st->sends[i];
        if (!m->persistent || m->dest.is_temporary()) continue;   // a temporary destination stores nothing
        if (m->dest.is_queue()) {
            st->batch.adds.push_back(store_transaction::add_op{m->dest.name, m});
            continue;
        }
        ++local.topic_publishes;   // one copy per subscriber, as publish_topic does
        for (const auto* d : local.match_durables(*m)) {
            auto copy = shard::copy_for(*d, m);
            st->batch.adds.push_back(store_transaction::add_op{d->queue, copy});
            st->durable_copies[i].emplace_back(d->queue, std::move(copy));
        }
    }
    // Acks by issuing shard, then by consumer.
    std::vector<std::unordered_map<consumer_id, std::vector<delivery_tag>>> acks(shards_.size());
    for (const auto& [consumer, tag] : tx.acks)
        if (const std::size_t i = tag >> tag_shard_shift; i < shards_.size()) acks[i][consumer].push_back(tag);
    for (const auto& a : acks) st->shards_left += a.empty() ? 0 : 1;
    if (st->shards_left == 0) return write_commit(std::move(st));
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        if (acks[i].empty()) continue;
        auto& s = *shards_[i];
        s.exec.post([this, &s, st, mine = std::move(acks[i])]() {
            std::vector<store_transaction::remove_op> removes;
            for (const auto& [consumer, tags] : mine) s.ack(consumer, tags, &removes);
            bool last = false;
            {
                std::lock_guard lock(st->mutex);
                for (auto& r : removes) st->batch.removes.push_back(std::move(r));
                last = --st->shards_left == 0;
            }
            if (last) write_commit(st);
        });
    }
}

// Any thread: once every shard settled its acks.
void broker::write_commit(std::shared_ptr<commit_state> st) {
    auto publish_all = [this, st](publish_status status) {
        st->home->post([this, st, status]() { publish_committed(st, status); });
    };
    if (st->batch.empty()) return publish_all(publish_status::ok);
    auto batch = std::move(st->batch);
    store_.commit(std::move(batch), [publish_all](store_status s) {
        publish_all(s == store_status::ok ? publish_status::ok : publish_status::store_failed);
    });
}

// On the committing worker, after the store transaction is durable: the sends go out, in order
// (one post per destination shard keeps their order), and `done` runs once all were accepted.
void broker::publish_committed(std::shared_ptr<commit_state> st, publish_status status) {
    if (status != publish_status::ok || st->sends.empty()) {
        if (st->done) st->done(status);
        return;
    }
    auto join = std::make_shared<publish_join>();
    std::size_t parts = 0;
    for (std::size_t i = 0; i < st->sends.size(); ++i) parts += 1 + st->durable_copies[i].size();
    join->left = parts;
    join->reply = on_home(st->home, std::move(st->done));
    auto part = [join](publish_status s) { join->part(s); };
    for (std::size_t i = 0; i < st->sends.size(); ++i) {
        auto& m = st->sends[i];
        for (const auto& [q, copy] : st->durable_copies[i]) {
            auto& target = *shards_[shard_of(q)];
            target.exec.post([&target, q, m = copy, part]() { target.publish_queue(q, m, part, false, true); });
        }
        auto& s = *shards_[shard_of(m->dest.name)];
        if (m->dest.is_temporary()) {
            // Deleted since it was sent: that send is dropped, the rest of the commit stands.
            s.exec.post([&s, m, part]() {
                s.publish_temporary(m, [part](publish_status r) {
                    part(r == publish_status::no_destination ? publish_status::ok : r);
                });
            });
        } else if (m->dest.is_queue()) {
            s.exec.post([&s, m, part]() { s.publish_queue(m->dest.name, m, part, false, m->persistent); });
        } else {
            const bool stored = m->persistent;
            s.exec.post([&s, m, part, stored]() { s.publish_topic(m, part, nullptr, stored); });
        }
    }
}

}  // namespace sb::core
