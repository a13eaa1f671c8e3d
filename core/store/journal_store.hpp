// core/store/journal_store.hpp — the persistent store: segmented append-only files of CRC'd
// records, written by one thread with group commit.
//
// Shards call add()/remove() from their workers; records go into the next batch. The writer
// thread writes a batch, makes it durable (fdatasync, per `sync`), then runs the batch's add
// completions: every add that arrived while an fsync was under way shares the next one. A
// segment is deleted once every message in it is gone (from the oldest segment on); a head
// segment pinned by a few long-lived messages is compacted by copying their records forward.
//
// Memory: a pending message costs its location (segment, offset, length) in an index, not its
// body. Bodies are held only until their batch is written; load() reads them back (pread) for
// the kernel's paging, and recover() reports ids without bodies.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/store/store.hpp"

namespace sb::core {

enum class sync_mode : std::uint8_t { always, batch, never };

struct journal_settings {
    std::string dir = "./data";
    sync_mode sync = sync_mode::always;
    std::uint32_t batch_ms = 10;                         // sync: batch — at most this late
    std::size_t segment_bytes = std::size_t{64} << 20;
    // A head segment pinned by a few messages is compacted (they are written forward) only once
    // nothing was removed from it for this long: one that a consumer is draining empties by
    // itself, and copying its last tenth forward would only write it twice.
    std::uint32_t compact_after_ms = 1000;
};

struct journal_recovery {
    std::size_t messages = 0;          // live messages handed to the kernel
    std::size_t records = 0;           // valid records read
    std::size_t corrupt_records = 0;   // skipped (bad CRC or framing in the middle)
    std::size_t torn_bytes = 0;        // dropped from the end of the last segment
    std::size_t segments = 0;
    std::size_t transactions = 0;        // committed transactions applied
    std::size_t torn_transactions = 0;   // incomplete or damaged transactions left out whole
    double milliseconds = 0;
};

class journal_store final : public store {
public:
    // Creates the directory if needed and takes its lock file: a second broker on the same
    // directory fails here. Throws std::runtime_error with the path and the reason.
    // recover() must run once before add()/remove(): it starts the writer thread.
    explicit journal_store(journal_settings s);
    ~journal_store() override;   // writes and syncs what is pending, then stops

    void add(std::string_view queue, const message_ptr& msg, add_done done) override;
    void remove(std::string_view queue, message_id id) override;
    // The transaction's records go into one batch as tx_begin, its adds and removes, tx_commit.
    void commit(store_transaction tx, add_done done) override;
    void recover(const recover_each& each) override;
    bool can_load() const noexcept override { return true; }
    std::size_t load(std::string_view queue, std::span<const message_id> ids, std::size_t max_bytes,
                     std::vector<message_ptr>& out) override;
    void barrier(std::function<void()> done) override;
    void put_subscription(const subscription_record& s) override;
    void remove_subscription(std::string_view name) override;
    void recover_subscriptions(const std::function<void(const subscription_record&)>& each) override;
    void put_retained(const message_ptr& msg) override;
    void remove_retained(std::string_view topic) override;
    void recover_retained(const std::function<void(message_ptr)>& each) override;
    std::string_view kind() const noexcept override { return "journal"; }

    const journal_recovery& last_recovery() const noexcept { return recovery_; }
    // Segment files on disk now (for tests and the admin API).
    std::size_t segment_count() const;
    bool failed() const;
    // Records written forward by compaction since the start (for tests and the admin API).
    std::size_t compacted_records() const;

private:
    // A pending message: its queue (an index into queue_names_) and id.
    struct message_key {
        message_id id = 0;
        std::uint32_t queue = 0;
        bool operator==(const message_key&) const = default;
    };
    struct key_hash {
        std::size_t operator()(const message_key& k) const noexcept {
            return std::size_t((k.id ^ (std::uint64_t(k.queue) << 40)) * 0x9E3779B97F4A7C15ull >> 16);
        }
    };
    // Where a pending message's record is. segment 0: not written yet; `offset` is then its
    // place in pending_ and the body is in unwritten_.
    struct location {
        std::uint64_t offset = 0;
        std::uint32_t segment = 0;
        std::uint32_t bytes = 0;
    };
    // An open segment for reading; shared so that a load in progress outlives a deletion.
    struct segment_reader {
        int fd = -1;
        ~segment_reader();
    };
    // Retained messages are few: they keep their body.
    struct live_entry {
        std::uint64_t segment;
        std::size_t bytes;
        message_ptr msg;
        std::string queue;
    };
    // A durable subscription's latest record: it pins its segment like a message does.
    struct live_subscription {
        std::uint64_t segment;
        std::size_t bytes;
        subscription_record record;
    };
    struct segment_info {
        std::size_t live = 0;
        std::size_t live_bytes = 0;
        std::chrono::steady_clock::time_point changed{};   // last removal of something in it
    };

    void open_segment(std::uint64_t number);   // under mutex_
    // The writer's parts of open_segment: creating the file (and syncing the directory), which
    // needs no lock, and making it the current segment (under mutex_; returns the old fd).
    int create_segment(std::uint64_t number, std::string& error) const;
    int install_segment(std::uint64_t number, int fd);
    void writer_loop();
    void reclaim();                            // under mutex_, after a durable batch
    // Segments reclaim() gave up: the writer deletes them (and drops their reader) outside the lock.
    struct doomed_segment {
        std::string path;
        std::shared_ptr<segment_reader> reader;
    };
    void fail_all(const std::string& why);     // under mutex_
    std::string segment_path(std::uint64_t number) const;
    std::uint32_t queue_index(std::string_view queue);              // under mutex_; adds it
    std::shared_ptr<segment_reader> reader(std::uint32_t segment);  // under mutex_
    // Reads [offset, offset + bytes) of `f` into `out`; false on a short read or an error.
    static bool read_at(const segment_reader& f, std::uint64_t offset, std::size_t bytes, std::string& out);

    journal_settings settings_;
    int lock_fd_ = -1;
    int fd_ = -1;
    std::uint64_t current_ = 0;          // segment being written
    std::size_t current_bytes_ = 0;
    journal_recovery recovery_;

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::string pending_;                // records not yet written
    std::vector<add_done> pending_done_;
    std::vector<message_key> pending_keys_;   // adds in pending_, assigned a segment when written
    std::unordered_map<message_key, location, key_hash> live_;
    std::unordered_map<message_key, message_ptr, key_hash> unwritten_;   // bodies not yet on disk
    std::map<std::string, std::uint32_t, std::less<>> queue_ids_;       // queue name -> index
    std::vector<std::string> queue_names_;                              // index -> queue name
    std::map<std::uint32_t, std::shared_ptr<segment_reader>> readers_;
    std::vector<doomed_segment> doomed_;   // under mutex_
    std::unordered_map<std::string, live_subscription> subscriptions_;   // by name
    std::unordered_map<std::string, live_entry> retained_;               // by topic (queue unused)
    std::vector<std::string> pending_retained_;
    std::vector<std::string> pending_subscriptions_;   // put in pending_, segment assigned when written
    void unpin(std::uint64_t segment, std::size_t bytes);   // under mutex_
    // Unpins owed by records in pending_ (a remove, a replaced subscription or retained
    // message): applied only once that record is durable, so that a segment holding the record
    // it supersedes is never deleted before it (a crash in between would lose the old record
    // without the new one: half of a transaction).
    std::vector<std::pair<std::uint64_t, std::size_t>> pending_unpins_;
    void unpin_when_written(std::uint64_t segment, std::size_t bytes);   // under mutex_
    std::uint64_t next_tx_ = 0;
    std::map<std::uint64_t, segment_info> segments_;   // every segment on disk, oldest first
    bool stopping_ = false;
    bool failed_ = false;
    std::size_t compacted_ = 0;
    std::string failure_;
    std::thread writer_;
};

}  // namespace sb::core
