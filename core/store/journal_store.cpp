// core/store/journal_store.cpp — append-only segments, group commit, recovery, reclamation.
#include "core/store/journal_store.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/store/record.hpp"

namespace sb::core {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t unassigned = ~std::uint64_t{0};
constexpr std::string_view segment_prefix = "journal-";
constexpr std::string_view segment_suffix = ".log";

std::string errno_text() { return std::strerror(errno); }

bool write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= std::size_t(w);
    }
    return true;
}

void sync_dir(const std::string& dir) {
    const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (d < 0) return;
    ::fsync(d);
    ::close(d);
}

std::optional<std::uint64_t> segment_number(const fs::path& p) {
    const auto name = p.filename().string();
    if (!name.starts_with(segment_prefix) || !name.ends_with(segment_suffix)) return std::nullopt;
    const auto digits = name.substr(segment_prefix.size(), name.size() - segment_prefix.size() - segment_suffix.size());
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoull(digits);
}

}  // namespace

journal_store::journal_store(journal_settings s) : settings_(std::move(s)) {
    std::error_code ec;
    fs::create_directories(settings_.dir, ec);
    if (ec) throw std::runtime_error("cannot create data directory " + settings_.dir + ": " + ec.message());
    const auto lock_path = settings_.dir + "/lock";
    lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) throw std::runtime_error("cannot open " + lock_path + ": " + errno_text());
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        const auto why = errno == EWOULDBLOCK ? std::string("it is in use by another broker") : errno_text();
        ::close(lock_fd_);
        throw std::runtime_error("cannot lock data directory " + settings_.dir + ": " + why);
    }
    const auto pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(lock_fd_, 0) == 0) (void)!::write(lock_fd_, pid.data(), pid.size());
}

journal_store::~journal_store() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (writer_.joinable()) writer_.join();
    if (fd_ >= 0) ::close(fd_);
    if (lock_fd_ >= 0) ::close(lock_fd_);   // releases the flock
}

std::string journal_store::segment_path(std::uint64_t number) const {
    char name[64];
    std::snprintf(name, sizeof name, "%s%016llu%s", segment_prefix.data(), static_cast<unsigned long long>(number),
                  segment_suffix.data());
    return settings_.dir + "/" + name;
}

std::string journal_store::key_of(std::string_view queue, message_id id) {
    std::string k(queue);
    k.push_back('\0');
    k.append(reinterpret_cast<const char*>(&id), sizeof id);
    return k;
}

void journal_store::recover(const std::function<void(std::string_view, message_ptr)>& each) {
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::uint64_t> numbers;
    for (const auto& e : fs::directory_iterator(settings_.dir))
        if (e.is_regular_file())
            if (auto n = segment_number(e.path())) numbers.push_back(*n);
    std::sort(numbers.begin(), numbers.end());

    // Replay in file order; `order` keeps add order for the kernel, `live_` what survives.
    std::vector<std::string> order;
    std::vector<char> bytes;
    for (std::size_t i = 0; i < numbers.size(); ++i) {
        const auto n = numbers[i];
        const auto path = segment_path(n);
        {
            std::ifstream in(path, std::ios::binary);
            bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        }
        segments_[n];
        ++recovery_.segments;
        const auto data = std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
        std::size_t pos = 0;
        while (pos < data.size()) {
            auto r = read_record(data.subspan(pos));
            if (auto* problem = std::get_if<frame_problem>(&r)) {
                const bool last = i + 1 == numbers.size();
                if (*problem == frame_problem::torn && last) {
                    // A crash in the middle of a write: the tail was never confirmed.
                    recovery_.torn_bytes += data.size() - pos;
                    if (::truncate(path.c_str(), off_t(pos)) != 0) { /* read-only: harmless */ }
                    break;
                }
                ++recovery_.corrupt_records;
                pos += find_next_magic(data.subspan(pos));
                continue;
            }
            const auto& f = std::get<framed>(r);
            ++recovery_.records;
            if (f.type == record_type::message_add) {
                if (auto a = decode_add(f.payload)) {
                    auto key = key_of(a->queue, a->msg.id);
                    auto msg = std::make_shared<const message>(std::move(a->msg));
                    if (auto old = live_.find(key); old != live_.end()) {
                        // Written again by compaction: it now lives in this later segment.
                        auto& seg = segments_[old->second.segment];
                        --seg.live;
                        seg.live_bytes -= std::min(seg.live_bytes, old->second.bytes);
                        old->second.segment = n;
                        old->second.bytes = f.consumed;
                    } else {
                        order.push_back(key);
                        live_.emplace(std::move(key), live_entry{n, f.consumed, std::move(msg), std::move(a->queue)});
                    }
                    auto& seg = segments_[n];
                    ++seg.live;
                    seg.live_bytes += f.consumed;
                } else {
                    ++recovery_.corrupt_records;
                }
            } else if (f.type == record_type::subscription_put) {
                if (auto sp = decode_subscription(f.payload)) {
                    if (auto old = subscriptions_.find(sp->name); old != subscriptions_.end())
                        unpin(old->second.segment, old->second.bytes);
                    subscriptions_[sp->name] = live_subscription{n, f.consumed, *sp};
                    auto& seg = segments_[n];
                    ++seg.live;
                    seg.live_bytes += f.consumed;
                } else {
                    ++recovery_.corrupt_records;
                }
            } else if (f.type == record_type::retained_put) {
                if (auto a = decode_add(f.payload)) {
                    if (auto old = retained_.find(a->queue); old != retained_.end())
                        unpin(old->second.segment, old->second.bytes);
                    auto topic = a->queue;
                    retained_[topic] = live_entry{n, f.consumed, std::make_shared<const message>(std::move(a->msg)), topic};
                    auto& seg = segments_[n];
                    ++seg.live;
                    seg.live_bytes += f.consumed;
                } else {
                    ++recovery_.corrupt_records;
                }
            } else if (f.type == record_type::retained_remove) {
                const std::string topic(reinterpret_cast<const char*>(f.payload.data()), f.payload.size());
                if (auto old = retained_.find(topic); old != retained_.end()) {
                    unpin(old->second.segment, old->second.bytes);
                    retained_.erase(old);
                }
            } else if (f.type == record_type::subscription_remove) {
                const std::string name(reinterpret_cast<const char*>(f.payload.data()), f.payload.size());
                if (auto old = subscriptions_.find(name); old != subscriptions_.end()) {
                    unpin(old->second.segment, old->second.bytes);
                    subscriptions_.erase(old);
                }
            } else if (auto rm = decode_remove(f.payload)) {
                auto it = live_.find(key_of(rm->queue, rm->id));
                if (it != live_.end()) {
                    auto& seg = segments_[it->second.segment];
                    --seg.live;
                    seg.live_bytes -= std::min(seg.live_bytes, it->second.bytes);
                    live_.erase(it);
                }
            } else {
                ++recovery_.corrupt_records;
            }
            pos += f.consumed;
        }
    }
    std::unordered_map<std::string, bool> emitted;   // a key removed and added again is listed twice
    for (const auto& key : order) {
        auto it = live_.find(key);
        if (it == live_.end() || !emitted.emplace(key, true).second) continue;
        each(it->second.queue, it->second.msg);
        ++recovery_.messages;
    }
    recovery_.milliseconds =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();

    std::lock_guard lock(mutex_);
    reclaim();
    open_segment(numbers.empty() ? 1 : numbers.back() + 1);
    if (failed_) throw std::runtime_error(failure_);
    if (!writer_.joinable()) writer_ = std::thread([this] { writer_loop(); });
}

void journal_store::open_segment(std::uint64_t number) {
    const auto path = segment_path(number);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return fail_all("cannot open " + path + ": " + errno_text());
    sync_dir(settings_.dir);   // the new file's name must survive a crash too
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
    current_ = number;
    current_bytes_ = 0;
    segments_[number];
}

void journal_store::add(std::string_view queue, const message_ptr& msg, add_done done) {
    std::string payload;
    encode_add(payload, queue, *msg);
    {
        std::lock_guard lock(mutex_);
        if (!failed_ && writer_.joinable()) {
            const auto before = pending_.size();
            append_record(pending_, record_type::message_add, payload);
            live_[key_of(queue, msg->id)] = live_entry{unassigned, pending_.size() - before, msg, std::string(queue)};
            pending_keys_.push_back(key_of(queue, msg->id));
            pending_done_.push_back(std::move(done));
            wake_.notify_one();
            return;
        }
    }
    if (done) done(store_status::failed);
}

void journal_store::remove(std::string_view queue, message_id id) {
    std::string payload;
    encode_remove(payload, queue, id);
    std::lock_guard lock(mutex_);
    if (failed_) return;
    auto it = live_.find(key_of(queue, id));
    if (it == live_.end()) return;
    if (it->second.segment != unassigned) {
        auto& seg = segments_[it->second.segment];
        --seg.live;
        seg.live_bytes -= std::min(seg.live_bytes, it->second.bytes);
    }
    live_.erase(it);
    append_record(pending_, record_type::message_remove, payload);
    // No completion: a remove rides along with the next batch.
}

void journal_store::barrier(std::function<void()> done) {
    {
        std::lock_guard lock(mutex_);
        if (!failed_ && writer_.joinable()) {
            // Rides on the next batch: its completion runs after that batch is durable.
            pending_done_.push_back([done = std::move(done)](store_status) { if (done) done(); });
            wake_.notify_one();
            return;
        }
    }
    if (done) done();
}

void journal_store::unpin(std::uint64_t segment, std::size_t bytes) {
    if (segment == unassigned) return;
    auto& seg = segments_[segment];
    --seg.live;
    seg.live_bytes -= std::min(seg.live_bytes, bytes);
}

void journal_store::put_subscription(const subscription_record& s) {
    std::string payload;
    encode_subscription(payload, s);
    std::lock_guard lock(mutex_);
    if (failed_ || !writer_.joinable()) return;
    if (auto old = subscriptions_.find(s.name); old != subscriptions_.end()) unpin(old->second.segment, old->second.bytes);
    const auto before = pending_.size();
    append_record(pending_, record_type::subscription_put, payload);
    subscriptions_[s.name] = live_subscription{unassigned, pending_.size() - before, s};
    pending_subscriptions_.push_back(s.name);
    wake_.notify_one();
}

void journal_store::remove_subscription(std::string_view name) {
    std::lock_guard lock(mutex_);
    if (failed_) return;
    auto it = subscriptions_.find(std::string(name));
    if (it == subscriptions_.end()) return;
    unpin(it->second.segment, it->second.bytes);
    subscriptions_.erase(it);
    append_record(pending_, record_type::subscription_remove, name);
    wake_.notify_one();
}

void journal_store::put_retained(const message_ptr& msg) {
    std::string payload;
    encode_add(payload, msg->dest.name, *msg);
    std::lock_guard lock(mutex_);
    if (failed_ || !writer_.joinable()) return;
    const auto& topic = msg->dest.name;
    if (auto old = retained_.find(topic); old != retained_.end()) unpin(old->second.segment, old->second.bytes);
    const auto before = pending_.size();
    append_record(pending_, record_type::retained_put, payload);
    retained_[topic] = live_entry{unassigned, pending_.size() - before, msg, topic};
    pending_retained_.push_back(topic);
    wake_.notify_one();
}

void journal_store::remove_retained(std::string_view topic) {
    std::lock_guard lock(mutex_);
    if (failed_) return;
    auto it = retained_.find(std::string(topic));
    if (it == retained_.end()) return;
    unpin(it->second.segment, it->second.bytes);
    retained_.erase(it);
    append_record(pending_, record_type::retained_remove, topic);
    wake_.notify_one();
}

void journal_store::recover_retained(const std::function<void(message_ptr)>& each) {
    std::lock_guard lock(mutex_);
    for (const auto& [topic, e] : retained_) each(e.msg);
}

void journal_store::recover_subscriptions(const std::function<void(const subscription_record&)>& each) {
    std::lock_guard lock(mutex_);
    for (const auto& [name, s] : subscriptions_) each(s.record);
}

void journal_store::writer_loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || !pending_.empty() || !pending_done_.empty(); });
        if (pending_.empty() && pending_done_.empty() && stopping_) return;
        if (settings_.sync == sync_mode::batch && !stopping_) {
            // Gather for up to batch_ms: fewer, larger syncs.
            lock.unlock();
            std::this_thread::sleep_for(std::chrono::milliseconds(settings_.batch_ms));
            lock.lock();
        }
        if (!failed_ && current_bytes_ >= settings_.segment_bytes) open_segment(current_ + 1);
        for (const auto& key : pending_keys_) {
            auto it = live_.find(key);
            if (it == live_.end() || it->second.segment != unassigned) continue;
            it->second.segment = current_;
            auto& seg = segments_[current_];
            ++seg.live;
            seg.live_bytes += it->second.bytes;
        }
        pending_keys_.clear();
        for (const auto& name : pending_subscriptions_) {
            auto it = subscriptions_.find(name);
            if (it == subscriptions_.end() || it->second.segment != unassigned) continue;
            it->second.segment = current_;
            auto& seg = segments_[current_];
            ++seg.live;
            seg.live_bytes += it->second.bytes;
        }
        pending_subscriptions_.clear();
        for (const auto& topic : pending_retained_) {
            auto it = retained_.find(topic);
            if (it == retained_.end() || it->second.segment != unassigned) continue;
            it->second.segment = current_;
            auto& seg = segments_[current_];
            ++seg.live;
            seg.live_bytes += it->second.bytes;
        }
        pending_retained_.clear();
        std::string batch;
        batch.swap(pending_);
        auto done = std::move(pending_done_);
        pending_done_.clear();
        const int fd = fd_;
        bool ok = !failed_;
        lock.unlock();

        std::string error;
        if (ok && !batch.empty() && !write_all(fd, batch.data(), batch.size())) {
            ok = false;
            error = "write failed: " + errno_text();
        }
        if (ok && settings_.sync != sync_mode::never && ::fdatasync(fd) != 0) {
            ok = false;
            error = "fdatasync failed: " + errno_text();
        }

        lock.lock();
        current_bytes_ += batch.size();
        if (!ok && !failed_) fail_all(error);
        lock.unlock();
        // Confirmations run outside the lock; they only post to the producers' workers.
        for (auto& d : done)
            if (d) d(ok ? store_status::ok : store_status::failed);
        lock.lock();
        if (ok) reclaim();
    }
}

void journal_store::fail_all(const std::string& why) {
    // Nothing is confirmed from now on: a store that cannot write must not claim it did.
    failed_ = true;
    failure_ = settings_.dir + ": " + why;
}

void journal_store::reclaim() {
    while (!segments_.empty()) {
        auto head = segments_.begin();
        if (head->first == current_ && fd_ >= 0) break;
        if (head->second.live == 0) {
            ::unlink(segment_path(head->first).c_str());
            segments_.erase(head);
            continue;
        }
        // A few long-lived messages pinning the oldest segment: write them forward so that it
        // can go once that write is durable (a later reclaim, after the next batch).
        if (segments_.size() >= 3 && head->second.live_bytes < settings_.segment_bytes / 10) {
            for (auto& [key, e] : live_) {
                if (e.segment != head->first) continue;
                std::string payload;
                encode_add(payload, e.queue, *e.msg);
                const auto before = pending_.size();
                append_record(pending_, record_type::message_add, payload);
                e.bytes = pending_.size() - before;
                e.segment = unassigned;
                pending_keys_.push_back(key);
            }
            for (auto& [topic, e] : retained_) {
                if (e.segment != head->first) continue;
                std::string payload;
                encode_add(payload, topic, *e.msg);
                const auto before = pending_.size();
                append_record(pending_, record_type::retained_put, payload);
                e.bytes = pending_.size() - before;
                e.segment = unassigned;
                pending_retained_.push_back(topic);
            }
            for (auto& [name, sub] : subscriptions_) {
                if (sub.segment != head->first) continue;
                std::string payload;
                encode_subscription(payload, sub.record);
                const auto before = pending_.size();
                append_record(pending_, record_type::subscription_put, payload);
                sub.bytes = pending_.size() - before;
                sub.segment = unassigned;
                pending_subscriptions_.push_back(name);
            }
            head->second.live = 0;
            head->second.live_bytes = 0;
            wake_.notify_one();
        }
        break;
    }
}

std::size_t journal_store::segment_count() const {
    std::lock_guard lock(mutex_);
    return segments_.size();
}

bool journal_store::failed() const {
    std::lock_guard lock(mutex_);
    return failed_;
}

}  // namespace sb::core
