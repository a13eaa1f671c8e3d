// core/schedule/scheduler.hpp — the scheduled messages of a broker: one timer wheel holding
// every job, and a thread that sleeps until the next one is due (or none: the caller fires
// them, with a time source of its own, in tests).
//
// A job is 32 bytes here: its due time, its id and either its message, packed in the journal's
// binary form (one allocation of about the encoded size, not a message object and its
// strings), or nothing (a persistent job whose record the store can load back: its body stays
// on disk until it fires). Jobs are unpacked outside the lock, just before they fire. What a job
// means (AMQ_SCHEDULED_* properties, repeats, cron) is the kernel's (core/kernel/schedule.cpp):
// the scheduler only keeps jobs and hands the due ones to its `fire` function, outside its lock,
// on the firing thread. Thread-safe: add() may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/message/message.hpp"
#include "core/schedule/timer_wheel.hpp"

namespace sb::core {

// Where the kernel's scheduler reads the time: the wall clock (milliseconds since the epoch),
// or a manual one in tests.
class time_source {
public:
    virtual ~time_source() = default;
    virtual std::int64_t now_ms() const noexcept = 0;
};

// The wall clock (core::now_ms).
time_source& system_time() noexcept;

class scheduler {
public:
    struct job {
        std::int64_t due = 0;
        message_id id = 0;
        message_ptr msg;   // null: in the store, load it by id
    };
    using fire_fn = std::function<void(std::vector<job>&)>;

    scheduler(time_source& time, fire_fn fire);
    ~scheduler();
    scheduler(const scheduler&) = delete;
    scheduler& operator=(const scheduler&) = delete;

    // Another time source; `threaded` false: no thread fires jobs, run_due() does (tests).
    // Before the first add().
    void use(time_source& time, bool threaded);

    // Files a job; the thread (started by the first add, when threaded) wakes for it if it is
    // due before the time it sleeps until.
    void add(std::int64_t due, message_id id, message_ptr msg);

    // Stops the firing thread (a firing under way finishes first) for good: nothing fires after
    // it returns, and add() only files jobs from then on. Not on the firing thread.
    void stop();

    // Jobs without a body (their message in the store) are loaded by `load` (which sets each
    // job's msg it can) up to `ahead_ms` before they are due, by the firing thread while it
    // has nothing due, so that firing them waits for no store. A job not loaded in time is
    // handed to `fire` without its body, as before. Before the first add().
    using load_fn = std::function<void(std::vector<job>&)>;
    void prefetch(load_fn load, std::int64_t ahead_ms);

    // Fires what is due by the time source's now, on the calling thread; with nothing due, reads
    // ahead as the thread would (prefetch). Returns how many fired.
    std::size_t run_due();

    std::size_t size() const;
    const time_source& time() const noexcept { return *time_; }

private:
    struct slot {
        std::int64_t due = 0;
        message_id id = 0;
        std::uint32_t next = 0;
        std::uint32_t packed_size = 0;
        std::unique_ptr<std::uint8_t[]> packed;   // null: in the store
    };
    struct packed_job {
        std::int64_t due;
        message_id id;
        std::uint32_t size;
        std::unique_ptr<std::uint8_t[]> bytes;
        message_ptr loaded;   // prefetched
    };
    static void unpack(std::vector<packed_job>& in, std::vector<job>& out);
    // Jobs in chunks, so that a million of them never need one reallocation of everything.
    struct slab {
        static constexpr std::size_t chunk = 1u << 14;
        std::vector<std::unique_ptr<slot[]>> chunks;
        std::uint32_t free_head = timer_wheel<slab>::none;
        std::uint32_t count = 0;
        slot& at(std::uint32_t h) { return chunks[h / chunk][h % chunk]; }
        std::uint32_t& next(std::uint32_t h) { return at(h).next; }
        std::int64_t due(std::uint32_t h) { return at(h).due; }
        std::uint32_t alloc();
        void release(std::uint32_t h);
    };
    void collect(std::int64_t now, std::vector<packed_job>& out);
    void loop();
    bool read_ahead(std::unique_lock<std::mutex>& lock, std::int64_t now);
    // Under mutex_: the bodiless jobs due by now + ahead not yet asked for (prefetch).
    void to_prefetch(std::int64_t now, std::vector<std::pair<std::uint32_t, job>>& out);

    time_source* time_;
    bool threaded_ = true;
    fire_fn fire_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    slab slab_;
    timer_wheel<slab> wheel_{slab_};
    std::int64_t sleeping_until_ = 0;   // the thread's deadline (guarded by mutex_)
    // Prefetch (guarded by mutex_ but load_ and ahead_, set before the first add): the bodies
    // loaded, by slot, and how far ahead the wheel was looked at.
    load_fn load_;
    std::int64_t ahead_ = 0;
    std::unordered_map<std::uint32_t, message_ptr> loaded_;
    std::int64_t prefetched_until_ = 0;
    std::int64_t next_window_seen_ = 0;   // the window whose level-1 slot was looked at
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace sb::core
