// core/kernel/schedule.cpp — scheduled and delayed delivery (ActiveMQ's AMQ_SCHEDULED_*
// properties): a message is held by the broker's scheduler instead of its destination until
// its time, then published like any other (core/schedule/ keeps the jobs and their wheel).
//
// What a job means, as ActiveMQ's JobSchedulerImpl:
//   - the first time: now (or the next cron time when AMQ_SCHEDULED_CRON is set) plus
//     AMQ_SCHEDULED_DELAY when > 0, else plus AMQ_SCHEDULED_PERIOD. (ActiveMQ rounds "now" up
//     to a multiple of 500 ms first; we do not.)
//   - without cron: delivered; with AMQ_SCHEDULED_REPEAT n != 0 it is delivered again every
//     period, n more times (n < 0: for ever).
//   - with cron and no repeat: delivered at every cron time. With cron and repeat: every cron
//     time starts a new job of its own (delay, period, repeat, no cron); the cron job itself
//     delivers nothing.
//   - the delivered copy has the AMQ_SCHEDULED_* properties removed and `scheduledJobId` set;
//     a new message id when the job repeats or has a cron entry; a message with an expiry gets
//     its time to live again from the delivery.
// Persistence: a persistent job (a persistent message, not to a temporary destination) is a
// record in the store on the reserved queue "$scheduled" (an ordinary message_add: no new
// journal record type), the message with deliver_at_ms = its next time and, once a cron job
// spawned it, without the cron property. The sender's receipt follows that record's write.
// A job's memory is then 40 bytes in the scheduler: its body is loaded back when it fires.
// When it fires, the copy is published (stored in its queue as any persistent message) and only
// once that is accepted is the job's record removed, with its next occurrence (a new record, if
// any) added in the same store transaction: a crash in between delivers a copy twice, never none.
// After a restart every job is back in the scheduler at its time; late ones fire at once.
//
// Threads: jobs fire on the scheduler's thread, which only routes the copy (and loads bodies
// kept on disk). What follows a firing, and the filing of a new persistent job, waits for the
// store: it runs where the store completes (the journal's thread), and is kept to what is cheap
// there: filing a job without its body, removing a record. A job's next occurrences (their
// records to encode and commit) are posted to the destination's worker. None of it uses the
// broker: it reaches the scheduler and the store through a schedule_link, which outlives the
// broker; after broker::stop() (the destructor's too) it does nothing, and stop() returns only
// once the store has run every completion of the scheduler's (a barrier). (Posting every
// completion to a worker instead cost a million scheduled messages 55 % more RSS, their
// closures queued behind the publisher, and 10 % more CPU, for no gain in safety.)
#include <charconv>
#include <condition_variable>
#include <shared_mutex>

#include "core/kernel/shard.hpp"
#include "core/schedule/cron.hpp"

namespace sb::core {

using namespace kernel;

namespace {

// The integer value of a property (STOMP carries every property as text).
std::optional<std::int64_t> integer(const property_value* v) {
    if (!v) return std::nullopt;
    return std::visit(
        [](const auto& x) -> std::optional<std::int64_t> {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::string>) {
                std::int64_t out = 0;
                const auto [p, ec] = std::from_chars(x.data(), x.data() + x.size(), out);
                if (ec != std::errc{} || p != x.data() + x.size()) return std::nullopt;
                return out;
            } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
                return std::int64_t(x);
            } else if constexpr (std::is_floating_point_v<T>) {
                return std::int64_t(x);
            } else {
                return std::nullopt;
            }
        },
        *v);
}

std::string text(const property_value* v) { return v ? to_text(*v) : std::string(); }

bool is_schedule_property(std::string_view name) {
    return name == scheduled_delay_property || name == scheduled_period_property ||
           name == scheduled_repeat_property || name == scheduled_cron_property;
}

void set_property(message& m, std::string_view name, property_value v) {
    for (auto& p : m.properties)
        if (p.name == name) {
            p.value = std::move(v);
            return;
        }
    m.properties.push_back(property{std::string(name), std::move(v)});
}

void remove_property(message& m, std::string_view name) {
    std::erase_if(m.properties, [name](const property& p) { return p.name == name; });
}

struct job_spec {
    std::int64_t delay = 0, period = 0, repeat = 0;
    std::string cron;
    std::optional<cron_schedule> parsed;
};

// Reads a job's properties; nullopt when one is malformed.
std::optional<job_spec> spec_of(const message& m) {
    job_spec s;
    auto num = [&](std::string_view name, std::int64_t& out) {
        const auto* v = m.find_property(name);
        if (!v) return true;
        const auto n = integer(v);
        if (!n) return false;
        out = *n;
        return true;
    };
    if (!num(scheduled_delay_property, s.delay) || !num(scheduled_period_property, s.period) ||
        !num(scheduled_repeat_property, s.repeat))
        return std::nullopt;
    if (s.delay < 0 || s.period < 0) return std::nullopt;
    s.cron = text(m.find_property(scheduled_cron_property));
    if (!s.cron.empty()) {
        s.parsed = parse_cron(s.cron);
        if (!s.parsed) return std::nullopt;
    }
    return s;
}

// How far ahead of their time the scheduler reads persistent jobs' bodies from the store:
// longer than the store's usual stalls, short enough that what is held meanwhile is small
// (at 50,000 firings a second, 2,500 messages).
constexpr std::int64_t prefetch_ahead_ms = 50;

}  // namespace

// See the top of the file. Each completion runs under `gate` (shared) and does nothing once it
// is closed; stop() closes it (exclusive), so none is using the scheduler or the store after.
struct broker::schedule_link : std::enable_shared_from_this<broker::schedule_link> {
    schedule_link(scheduler& j, store& s, bool p) : jobs(j), st(s), paging(p) {}

    scheduler& jobs;   // both only while open
    store& st;
    const bool paging;
    std::shared_mutex gate;
    bool open = true;   // guarded by gate
    std::atomic<std::size_t> firing{0};   // firings whose store work is under way
    std::mutex idle_mutex;
    std::condition_variable idle;   // firing reached 0

    void done_firing() {
        if (firing.fetch_sub(1) == 1) {
            std::lock_guard lock(idle_mutex);
            idle.notify_all();
        }
    }

    // A persistent job's record was stored: it goes into the scheduler (`msg` null when the
    // store can load it back).
    void file(std::int64_t due, message_id id, message_ptr msg) {
        std::shared_lock lock(gate);
        if (open) jobs.add(due, id, std::move(msg));
    }

    // After a firing's copy was accepted (or at once when it delivers none), where that
    // completed: a persistent job's record goes, and its next occurrences are stored (new
    // records, in the same store transaction, made on `worker`), then filed. A crash in between
    // fires the old one again: twice, never none.
    void reschedule(executor* worker, bool durable, message_id old, std::vector<std::shared_ptr<message>> next) {
        std::shared_lock lock(gate);
        if (!open) return done_firing();
        if (!durable) {
            // Nothing stored: the copy completed on its shard's worker.
            for (auto& n : next) {
                const std::int64_t due = n->deliver_at_ms;   // before the move
                const message_id id = n->id;
                jobs.add(due, id, std::move(n));
            }
            return done_firing();
        }
        if (next.empty()) {
            // Its last firing: only the record goes. Made after the copy's store add completed,
            // it is never durable before it; it rides on the store's next batch, no completion.
            st.remove(scheduled_store_queue, old);
            return done_firing();
        }
        worker->post([self = shared_from_this(), old, next = std::move(next)]() mutable { self->commit_next(old, next); });
    }

    void commit_next(message_id old, std::vector<std::shared_ptr<message>>& next) {
        std::shared_lock lock(gate);
        if (!open) return done_firing();
        store_transaction tx;
        tx.removes.push_back(store_transaction::remove_op{std::string(scheduled_store_queue), old});
        for (const auto& n : next) tx.adds.push_back(store_transaction::add_op{std::string(scheduled_store_queue), n});
        st.commit(std::move(tx), [self = shared_from_this(), next = std::move(next)](store_status s) {
            self->file_next(s, next);
        });
    }

    void file_next(store_status s, const std::vector<std::shared_ptr<message>>& next) {
        {
            std::shared_lock lock(gate);
            if (open) {
                if (s != store_status::ok) log()->error("reason=store_failed a scheduled job's next occurrence could not be stored");
                else
                    for (const auto& n : next) jobs.add(n->deliver_at_ms, n->id, paging ? nullptr : message_ptr(n));
            }
        }
        done_firing();
    }
};

void broker::start_scheduler() {
    scheduler_ = std::make_unique<scheduler>(system_time(), [this](std::vector<scheduler::job>& jobs) { fire(jobs); });
    sched_link_ = std::make_shared<schedule_link>(*scheduler_, store_, paging_);
    // Bodies kept in the store are read ahead of their time: a firing waits for no store (its
    // lock, a pread) unless its job came in less than that before it was due.
    if (paging_) scheduler_->prefetch([this](std::vector<scheduler::job>& jobs) { load_jobs(jobs); }, prefetch_ahead_ms);
}

std::size_t broker::firings_in_flight() const noexcept { return sched_link_->firing.load(); }

void broker::stop(std::chrono::milliseconds grace) {
    scheduler_->stop();   // nothing fires from now on
    auto& l = *sched_link_;
    {
        std::unique_lock lock(l.idle_mutex);
        l.idle.wait_for(lock, grace, [&] { return l.firing.load() == 0; });
    }
    {
        std::unique_lock lock(l.gate);
        if (!l.open) return;
        l.open = false;
    }
    if (const auto left = l.firing.load(); left > 0 && grace.count() > 0)
        log()->warn("scheduler stopped with {} firings unfinished: their persistent jobs fire again after a restart", left);
    // Every store call of the scheduler's was made before the gate closed: once a barrier after
    // it completes, so have theirs (the barrier completes after every earlier completion).
    std::mutex m;
    std::condition_variable cv;
    bool quiet = false;
    store_.barrier([&] {
        std::lock_guard lock(m);
        quiet = true;
        cv.notify_all();
    });
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return quiet; });
}

bool broker::scheduled(const message& m) const noexcept {
    if (!settings_.scheduler_support || m.properties.empty()) return false;
    bool any = false;
    for (const auto& p : m.properties) {
        if (p.name == scheduled_id_property) return false;   // ActiveMQ: a job id means "not again"
        any |= p.name == scheduled_delay_property || p.name == scheduled_period_property ||
               p.name == scheduled_cron_property;
    }
    return any;
}

message_id broker::next_scheduler_id() noexcept {
    // Top byte 0xFE: never a worker's (at most 255 workers, ids from 0), so never a collision.
    return (message_id(0xFE) << tag_shard_shift) | ++scheduler_ids_;
}

void broker::use_time_source(time_source& t) { scheduler_->use(t, false); }

std::size_t broker::run_scheduled() { return scheduler_->run_due(); }

std::size_t broker::scheduled_count() const { return scheduler_->size(); }

void broker::schedule(message_ptr msg, std::function<void(publish_status)> reply) {
    const auto spec = spec_of(*msg);
    if (!spec) {
        if (reply) reply(publish_status::invalid);
        return;
    }
    const std::int64_t now = scheduler_->time().now_ms();
    std::int64_t due = now;
    if (spec->parsed) {
        due = next_cron_time(*spec->parsed, now);
        if (due == 0) {
            if (reply) reply(publish_status::invalid);
            return;
        }
    }
    due += spec->delay > 0 ? spec->delay : spec->period;
    auto job = std::make_shared<message>(*msg);
    job->deliver_at_ms = due;
    // A job that fires more than once keeps its id in its record (its record's id changes with
    // each occurrence); a one-shot job's id is its message's, written when it fires.
    if ((spec->repeat != 0 || spec->parsed) && !job->find_property(scheduled_job_id_property))
        set_property(*job, scheduled_job_id_property, "ID:" + settings_.name + "-" + std::to_string(msg->id));
    // A one-shot job needs its schedule no more (its time is deliver_at_ms), and the delivered
    // copy has none: dropped here, the job's record and packed form are that much smaller.
    if (spec->repeat == 0 && !spec->parsed)
        std::erase_if(job->properties, [](const property& p) { return is_schedule_property(p.name); });
    const bool durable = job->persistent && !job->dest.is_temporary();
    if (!durable) {
        if (job->dest.is_temporary()) job->persistent = false;
        const auto id = job->id;   // before the move
        scheduler_->add(due, id, std::move(job));
        if (reply) reply(publish_status::ok);
        return;
    }
    message_ptr stored = job;
    // Filed once stored (without its body when the store can load it back), then the reply
    // (posted to the publisher's worker); a producer is confirmed even after stop(): its job is
    // stored and fires after a restart.
    store_.add(scheduled_store_queue, stored,
               [link = sched_link_, stored, due, reply = std::move(reply)](store_status s) {
                   if (s != store_status::ok) {
                       if (reply) reply(publish_status::store_failed);
                       return;
                   }
                   link->file(due, stored->id, link->paging ? nullptr : stored);
                   if (reply) reply(publish_status::ok);
               });
}

void broker::load_jobs(std::vector<scheduler::job>& jobs) {
    // Persistent jobs whose body is on disk: loaded in batches (one pread per adjacent run).
    std::vector<message_id> ids;
    std::vector<std::size_t> where;
    for (std::size_t i = 0; i < jobs.size(); ++i)
        if (!jobs[i].msg) {
            ids.push_back(jobs[i].id);
            where.push_back(i);
        }
    std::size_t done = 0;
    std::vector<message_ptr> got;
    while (done < ids.size()) {
        got.clear();
        const auto n = store_.load(scheduled_store_queue, std::span(ids).subspan(done, std::min<std::size_t>(page_in_ids, ids.size() - done)),
                                   page_in_bytes, got);
        if (n == 0) break;
        for (std::size_t k = 0; k < n && k < got.size(); ++k) jobs[where[done + k]].msg = std::move(got[k]);
        done += n;
    }
}

void broker::fire(std::vector<scheduler::job>& jobs) {
    load_jobs(jobs);   // those not prefetched
    for (auto& j : jobs) {
        if (!j.msg) {
            log()->warn("reason=store_lost_messages scheduled job {} could not be loaded; dropped", j.id);
            store_.remove(scheduled_store_queue, j.id);
            continue;
        }
        fire_one(std::move(j));
    }
}

void broker::fire_one(scheduler::job j) {
    const message& m = *j.msg;
    const std::int64_t now = scheduler_->time().now_ms();
    const auto spec = spec_of(m);   // valid: checked when it was scheduled
    const bool durable = m.persistent && !m.dest.is_temporary();
    // The next occurrences of this job (new records) and whether this firing delivers a copy.
    std::vector<std::shared_ptr<message>> next;
    bool deliver = true;
    if (spec && spec->parsed) {
        if (const auto t = next_cron_time(*spec->parsed, now); t != 0) {
            auto again = std::make_shared<message>(m);
            again->deliver_at_ms = t;
            next.push_back(std::move(again));
        }
        if (spec->repeat != 0) {
            // This cron time starts a job of its own: delay, period and repeat, no cron.
            deliver = false;
            auto run = std::make_shared<message>(m);
            remove_property(*run, scheduled_cron_property);
            run->deliver_at_ms = now + (spec->delay > 0 ? spec->delay : spec->period);
            next.push_back(std::move(run));
        }
    } else if (spec && spec->repeat != 0) {
        auto again = std::make_shared<message>(m);
        again->deliver_at_ms = std::max(j.due + spec->period, now);
        if (spec->repeat > 0) set_property(*again, scheduled_repeat_property, std::int64_t(spec->repeat - 1));
        next.push_back(std::move(again));
    }
    for (auto& n : next) n->id = next_scheduler_id();

    // Where a job's next occurrences are committed (schedule_link::reschedule).
    executor* worker = &shards_[shard_of(m.dest.name)]->exec;
    ++sched_link_->firing;
    auto reschedule = [link = sched_link_, worker, durable, old = j.id, next = std::move(next)]() mutable {
        link->reschedule(worker, durable, old, std::move(next));
    };
    if (!deliver) return reschedule();

    auto copy = std::make_shared<message>(m);
    std::erase_if(copy->properties, [](const property& p) { return is_schedule_property(p.name); });
    if (!copy->find_property(scheduled_job_id_property))
        copy->properties.push_back(
            property{std::string(scheduled_job_id_property), "ID:" + settings_.name + "-" + std::to_string(m.id)});
    copy->deliver_at_ms = 0;
    if (spec && (spec->repeat != 0 || spec->parsed)) copy->id = next_scheduler_id();
    if (copy->timestamp_ms > 0 && copy->expiration_ms > 0) {
        const auto ttl = copy->expiration_ms - copy->timestamp_ms;
        if (now + ttl > copy->expiration_ms) {
            copy->expiration_ms = now + ttl;
            copy->timestamp_ms = now;
        }
    }
    auto once = std::make_shared<decltype(reschedule)>(std::move(reschedule));
    route(std::move(copy), [once](publish_status) { (*once)(); });
}

void broker::recover_scheduled(std::vector<recovered_message> jobs) {
    std::size_t done = 0;
    std::vector<message_id> ids;
    for (const auto& r : jobs) ids.push_back(r.id);
    std::vector<message_ptr> got;
    for (std::size_t i = 0; i < jobs.size();) {
        if (jobs[i].msg) {
            const auto due = jobs[i].msg->deliver_at_ms;
            scheduler_->add(due, jobs[i].id, paging_ ? nullptr : std::move(jobs[i].msg));
            ++i;
            continue;
        }
        // A run of ids without bodies: their due times are in the bodies.
        std::size_t end = i;
        while (end < jobs.size() && !jobs[end].msg && end - i < page_in_ids) ++end;
        got.clear();
        const auto n = store_.load(scheduled_store_queue, std::span(ids).subspan(i, end - i), page_in_bytes, got);
        if (n == 0) break;
        for (std::size_t k = 0; k < n; ++k) {
            if (k < got.size() && got[k]) scheduler_->add(got[k]->deliver_at_ms, ids[i + k], paging_ ? nullptr : got[k]);
            else store_.remove(scheduled_store_queue, ids[i + k]);
        }
        i += n;
        done += n;
    }
    (void)done;
}

}  // namespace sb::core
