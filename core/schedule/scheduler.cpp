// core/schedule/scheduler.cpp — the job slab, the wheel under a lock, the firing thread.
#include "core/schedule/scheduler.hpp"

#include <chrono>
#include <cstring>

#include "core/store/record.hpp"

namespace sb::core {

namespace {

struct wall_clock final : time_source {
    std::int64_t now_ms() const noexcept override { return core::now_ms(); }
};

}  // namespace

time_source& system_time() noexcept {
    static wall_clock c;
    return c;
}

std::uint32_t scheduler::slab::alloc() {
    if (free_head != timer_wheel<slab>::none) {
        const auto h = free_head;
        free_head = at(h).next;
        return h;
    }
    if (count % chunk == 0) chunks.push_back(std::make_unique<slot[]>(chunk));
    return count++;
}

void scheduler::slab::release(std::uint32_t h) {
    auto& s = at(h);
    s.id = 0;   // no job: a prefetch under way finds it gone
    s.packed.reset();
    s.packed_size = 0;
    s.next = free_head;
    free_head = h;
}

scheduler::scheduler(time_source& time, fire_fn fire) : time_(&time), fire_(std::move(fire)) {}

scheduler::~scheduler() { stop(); }

void scheduler::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    // add() starts no thread once stopping_ is set (under the lock): thread_ no longer changes.
    if (thread_.joinable()) thread_.join();
}

void scheduler::prefetch(load_fn load, std::int64_t ahead_ms) {
    std::lock_guard lock(mutex_);
    load_ = std::move(load);
    ahead_ = ahead_ms;
}

void scheduler::use(time_source& time, bool threaded) {
    std::lock_guard lock(mutex_);
    time_ = &time;
    threaded_ = threaded;
}

void scheduler::add(std::int64_t due, message_id id, message_ptr msg) {
    std::unique_ptr<std::uint8_t[]> packed;
    std::uint32_t size = 0;
    if (msg) {
        std::string bytes;
        encode_add(bytes, {}, *msg);
        size = std::uint32_t(bytes.size());
        packed = std::make_unique_for_overwrite<std::uint8_t[]>(bytes.size());
        std::memcpy(packed.get(), bytes.data(), bytes.size());
        msg.reset();
    }
    bool wake = false;
    {
        std::lock_guard lock(mutex_);
        wheel_.start(time_->now_ms());
        const auto h = slab_.alloc();
        auto& s = slab_.at(h);
        s.due = due;
        s.id = id;
        s.packed = std::move(packed);
        s.packed_size = size;
        wheel_.insert(h);
        if (threaded_ && !stopping_ && !thread_.joinable()) thread_ = std::thread([this] { loop(); });
        wake = threaded_ && due < sleeping_until_;
    }
    if (wake) wake_.notify_one();
}

void scheduler::collect(std::int64_t now, std::vector<packed_job>& out) {
    std::vector<std::uint32_t> due;
    wheel_.advance(now, due);
    out.reserve(out.size() + due.size());
    for (const auto h : due) {
        auto& s = slab_.at(h);
        message_ptr loaded;
        if (!loaded_.empty() && !s.packed) {
            if (auto it = loaded_.find(h); it != loaded_.end()) {
                loaded = std::move(it->second);
                loaded_.erase(it);
            }
        }
        out.push_back(packed_job{s.due, s.id, s.packed_size, std::move(s.packed), std::move(loaded)});
        slab_.release(h);
    }
}

void scheduler::to_prefetch(std::int64_t now, std::vector<std::pair<std::uint32_t, job>>& out) {
    const std::int64_t until = now + ahead_;
    auto want = [&](std::uint32_t h) {
        const auto& s = slab_.at(h);
        if (!s.packed && s.due <= until && !loaded_.contains(h)) out.emplace_back(h, job{s.due, s.id, nullptr});
    };
    // The rest of the current 256 ms window slot by slot, each once; the next window's jobs (in
    // level 1 until it comes up) once, when the look ahead reaches it.
    const std::int64_t end = wheel_.window_end();
    std::int64_t t = std::max(prefetched_until_, now) + 1;
    for (; t <= until && t < end; ++t) wheel_.visit_slot(t, want);
    prefetched_until_ = std::max(prefetched_until_, t - 1);
    if (until >= end && next_window_seen_ != end) {
        next_window_seen_ = end;
        wheel_.visit_next_window(want);
        prefetched_until_ = std::max(prefetched_until_, until);
    }
}

void scheduler::unpack(std::vector<packed_job>& in, std::vector<job>& out) {
    out.reserve(out.size() + in.size());
    for (auto& p : in) {
        job j{p.due, p.id, std::move(p.loaded)};
        if (p.bytes) {
            if (auto rec = decode_add(std::span<const std::uint8_t>(p.bytes.get(), p.size)))
                j.msg = std::make_shared<const message>(std::move(rec->msg));
        }
        out.push_back(std::move(j));
    }
    in.clear();
}

std::size_t scheduler::run_due() {
    std::vector<packed_job> packed;
    std::vector<job> fired;
    {
        std::unique_lock lock(mutex_);
        const auto now = time_->now_ms();
        collect(now, packed);
        // As the thread does: with nothing due, load what is due soon.
        if (packed.empty() && load_) read_ahead(lock, now);
    }
    unpack(packed, fired);
    const auto n = fired.size();
    if (!fired.empty()) fire_(fired);
    return n;
}

std::size_t scheduler::size() const {
    std::lock_guard lock(mutex_);
    return wheel_.size();
}

// Loads the bodiless jobs due by now + ahead_ not asked for yet, outside the lock (held on entry
// and on return). False: there were none.
bool scheduler::read_ahead(std::unique_lock<std::mutex>& lock, std::int64_t now) {
    std::vector<std::pair<std::uint32_t, job>> ahead;
    to_prefetch(now, ahead);
    if (ahead.empty()) return false;
    sleeping_until_ = 0;
    lock.unlock();
    std::vector<job> jobs;
    jobs.reserve(ahead.size());
    for (auto& [h, j] : ahead) jobs.push_back(j);
    load_(jobs);
    lock.lock();
    for (std::size_t i = 0; i < ahead.size(); ++i) {
        const auto h = ahead[i].first;
        // Still that job (not fired meanwhile, its slot not reused)?
        if (jobs[i].msg && slab_.at(h).id == jobs[i].id && !slab_.at(h).packed) loaded_[h] = std::move(jobs[i].msg);
    }
    return true;
}

void scheduler::loop() {
    using namespace std::chrono;
    std::vector<packed_job> packed;
    std::vector<job> fired;
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        const auto now = time_->now_ms();
        collect(now, packed);
        if (!packed.empty()) {
            sleeping_until_ = 0;   // an add meanwhile need not wake us: we look again first
            lock.unlock();
            unpack(packed, fired);
            fire_(fired);
            fired.clear();
            lock.lock();
            continue;
        }
        if (load_ && read_ahead(lock, now)) continue;
        const auto next = wheel_.next_deadline();
        std::int64_t until = next;
        if (load_ && next != timer_wheel<slab>::never) {
            // Awake to read ahead: `ahead_` before the next job, then every millisecond while a
            // job is that close (each brings more into reach).
            until = next - ahead_ > now ? next - ahead_ : std::min(next, std::max(now + 1, prefetched_until_ + 1 - ahead_));
        }
        sleeping_until_ = until;
        if (until == timer_wheel<slab>::never) {
            wake_.wait(lock);
        } else {
            wake_.wait_until(lock, system_clock::time_point(milliseconds(until)));
        }
    }
}

}  // namespace sb::core
