// core/store/journal_store.hpp — the persistent store: segmented append-only files of CRC'd
// records, written by one thread with group commit.
//
// Shards call add()/remove() from their workers; records go into the next batch. The writer
// thread writes a batch, makes it durable (fdatasync, per `sync`), then runs the batch's add
// completions: every add that arrived while an fsync was under way shares the next one. A
// segment is deleted once every message in it is gone (from the oldest segment on); a head
// segment pinned by a few long-lived messages is compacted by writing those forward.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
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
};

struct journal_recovery {
    std::size_t messages = 0;          // live messages handed to the kernel
    std::size_t records = 0;           // valid records read
    std::size_t corrupt_records = 0;   // skipped (bad CRC or framing in the middle)
    std::size_t torn_bytes = 0;        // dropped from the end of the last segment
    std::size_t segments = 0;
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
    void recover(const std::function<void(std::string_view, message_ptr)>& each) override;
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

private:
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
    };

    void open_segment(std::uint64_t number);   // under mutex_
    void writer_loop();
    void reclaim();                            // under mutex_, after a durable batch
    void fail_all(const std::string& why);     // under mutex_
    std::string segment_path(std::uint64_t number) const;
    static std::string key_of(std::string_view queue, message_id id);

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
    std::vector<std::string> pending_keys_;   // adds in pending_, assigned a segment when written
    std::unordered_map<std::string, live_entry> live_;
    std::unordered_map<std::string, live_subscription> subscriptions_;   // by name
    std::unordered_map<std::string, live_entry> retained_;               // by topic (queue unused)
    std::vector<std::string> pending_retained_;
    std::vector<std::string> pending_subscriptions_;   // put in pending_, segment assigned when written
    void unpin(std::uint64_t segment, std::size_t bytes);   // under mutex_
    std::map<std::uint64_t, segment_info> segments_;   // every segment on disk, oldest first
    bool stopping_ = false;
    bool failed_ = false;
    std::string failure_;
    std::thread writer_;
};

}  // namespace sb::core
