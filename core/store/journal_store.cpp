// core/store/journal_store.cpp — append-only segments, group commit, recovery, reclamation.
#include "core/store/journal_store.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <limits>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/store/record.hpp"

namespace sb::core {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t unassigned = ~std::uint64_t{0};
constexpr std::size_t remove_flush_bytes = std::size_t{256} << 10;
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

std::uint32_t journal_store::queue_index(std::string_view queue) {
    if (auto it = queue_ids_.find(queue); it != queue_ids_.end()) return it->second;
    const auto index = std::uint32_t(queue_names_.size());
    queue_names_.emplace_back(queue);
    queue_ids_.emplace(std::string(queue), index);
    return index;
}

journal_store::segment_reader::~segment_reader() {
    if (fd >= 0) ::close(fd);
}

std::shared_ptr<journal_store::segment_reader> journal_store::reader(std::uint32_t segment) {
    auto& r = readers_[segment];
    if (!r) {
        auto f = std::make_shared<segment_reader>();
        f->fd = ::open(segment_path(segment).c_str(), O_RDONLY | O_CLOEXEC);
        if (f->fd < 0) {
            readers_.erase(segment);
            return nullptr;
        }
        r = std::move(f);
    }
    return r;
}

bool journal_store::read_at(const segment_reader& f, std::uint64_t offset, std::size_t bytes, std::string& out) {
    out.resize(bytes);
    std::size_t got = 0;
    while (got < bytes) {
        const ssize_t n = ::pread(f.fd, out.data() + got, bytes - got, off_t(offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        got += std::size_t(n);
    }
    return true;
}

namespace {

// The message in one whole record as read from disk; null when it is not a valid message_add.
message_ptr message_of_record(std::span<const std::uint8_t> rec) {
    auto r = read_record(rec);
    const auto* f = std::get_if<framed>(&r);
    if (!f || f->type != record_type::message_add || f->consumed != rec.size()) return nullptr;
    auto a = decode_add(f->payload);
    if (!a) return nullptr;
    return std::make_shared<const message>(std::move(a->msg));
}

std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

// A segment file mapped read-only for recovery's one pass over it. Pages already parsed are
// dropped from the process as it goes (release_before), so recovering a large journal does not
// show up as resident memory.
class mapped_file {
public:
    explicit mapped_file(const std::string& path) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw std::runtime_error("cannot read " + path + ": " + errno_text());
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            const auto why = errno_text();
            ::close(fd);
            throw std::runtime_error("cannot read " + path + ": " + why);
        }
        size_ = std::size_t(st.st_size);
        if (size_ > 0) {
            void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                const auto why = errno_text();
                ::close(fd);
                throw std::runtime_error("cannot map " + path + ": " + why);
            }
            data_ = static_cast<const std::uint8_t*>(p);
            ::madvise(p, size_, MADV_SEQUENTIAL);
        }
        ::close(fd);
    }
    ~mapped_file() {
        if (data_) ::munmap(const_cast<std::uint8_t*>(data_), size_);
    }
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;

    std::span<const std::uint8_t> bytes() const noexcept { return {data_, size_}; }

    // Parsing reached `offset`: give back the whole pages before it.
    void release_before(std::size_t offset) noexcept {
        constexpr std::size_t step = std::size_t{4} << 20;
        const auto page = std::size_t(::sysconf(_SC_PAGESIZE));
        const auto upto = offset / page * page;
        if (!data_ || upto < released_ + step) return;
        ::madvise(const_cast<std::uint8_t*>(data_ + released_), upto - released_, MADV_DONTNEED);
        released_ = upto;
    }

private:
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t released_ = 0;
};

}  // namespace

void journal_store::recover(const recover_each& each) {
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::uint64_t> numbers;
    for (const auto& e : fs::directory_iterator(settings_.dir))
        if (e.is_regular_file())
            if (auto n = segment_number(e.path())) numbers.push_back(*n);
    std::sort(numbers.begin(), numbers.end());

    // Replay in file order, keeping locations only: `order` is add order for the kernel,
    // `live_` what survives. No body is kept: the kernel loads what it needs.
    struct added { message_key key; std::uint8_t priority; };
    std::vector<added> order;
    for (std::size_t i = 0; i < numbers.size(); ++i) {
        const auto n = numbers[i];
        if (n > std::numeric_limits<std::uint32_t>::max())
            throw std::runtime_error("journal segment number out of range: " + segment_path(n));
        const auto seg_no = std::uint32_t(n);
        const auto path = segment_path(n);
        auto file = std::make_unique<mapped_file>(path);
        segments_[n];
        ++recovery_.segments;
        const auto data = file->bytes();
        // Applies one record outside a transaction, or one of a committed transaction's.
        auto apply = [&](record_type type, std::span<const std::uint8_t> payload, std::size_t pos,
                         std::size_t consumed) {
            if (type == record_type::message_add) {
                if (auto a = peek_add(payload)) {
                    const message_key key{a->id, queue_index(a->queue)};
                    const location loc{pos, seg_no, std::uint32_t(consumed)};
                    if (auto old = live_.find(key); old != live_.end()) {
                        // Written again by compaction: it now lives in this later segment.
                        unpin(old->second.segment, old->second.bytes);
                        old->second = loc;
                    } else {
                        order.push_back(added{key, a->priority});
                        live_.emplace(key, loc);
                    }
                    auto& seg = segments_[n];
                    ++seg.live;
                    seg.live_bytes += consumed;
                } else {
                    ++recovery_.corrupt_records;
                }
            } else if (type == record_type::subscription_put) {
                if (auto sp = decode_subscription(payload)) {
                    if (auto old = subscriptions_.find(sp->name); old != subscriptions_.end())
                        unpin(old->second.segment, old->second.bytes);
                    subscriptions_[sp->name] = live_subscription{n, consumed, *sp};
                    auto& seg = segments_[n];
                    ++seg.live;
                    seg.live_bytes += consumed;
                } else {
                    ++recovery_.corrupt_records;
                }
            } else if (type == record_type::retained_put) {
                if (auto a = decode_add(payload)) {
                    if (auto old = retained_.find(a->queue); old != retained_.end())
                        unpin(old->second.segment, old->second.bytes);
                    auto topic = a->queue;
                    retained_[topic] = live_entry{n, consumed, std::make_shared<const message>(std::move(a->msg)), topic};
                    auto& seg = segments_[n];
                    ++seg.live;
                    seg.live_bytes += consumed;
                } else {
                    ++recovery_.corrupt_records;
                }
            } else if (type == record_type::retained_remove) {
                const std::string topic(reinterpret_cast<const char*>(payload.data()), payload.size());
                if (auto old = retained_.find(topic); old != retained_.end()) {
                    unpin(old->second.segment, old->second.bytes);
                    retained_.erase(old);
                }
            } else if (type == record_type::subscription_remove) {
                const std::string name(reinterpret_cast<const char*>(payload.data()), payload.size());
                if (auto old = subscriptions_.find(name); old != subscriptions_.end()) {
                    unpin(old->second.segment, old->second.bytes);
                    subscriptions_.erase(old);
                }
            } else if (type == record_type::message_remove) {
                if (auto rm = decode_remove(payload)) {
                    if (auto q = queue_ids_.find(rm->queue); q != queue_ids_.end()) {
                        if (auto it = live_.find(message_key{rm->id, q->second}); it != live_.end()) {
                            unpin(it->second.segment, it->second.bytes);
                            live_.erase(it);
                        }
                    }
                } else {
                    ++recovery_.corrupt_records;
                }
            } else {
                ++recovery_.corrupt_records;   // a transaction marker inside a transaction
            }
        };
        // A transaction being read: its records are held until its tx_commit shows that all
        // of them are there. A transaction never spans segments (it is written in one batch).
        struct held_record {
            record_type type;
            std::span<const std::uint8_t> payload;
            std::size_t pos;
            std::size_t consumed;
        };
        bool in_tx = false;
        bool damaged = false;   // a record of the open transaction is corrupt: it cannot apply
        tx_begin_record open_tx{};
        std::size_t open_at = 0;
        std::vector<held_record> held;
        auto drop_open = [&] {
            if (!in_tx) return;
            ++recovery_.torn_transactions;
            in_tx = false;
            damaged = false;
            held.clear();
        };
        const bool last = i + 1 == numbers.size();
        std::size_t pos = 0;
        while (pos < data.size()) {
            file->release_before(pos);
            auto r = read_record(data.subspan(pos));
            if (auto* problem = std::get_if<frame_problem>(&r)) {
                if (*problem == frame_problem::torn && last) {
                    // A crash in the middle of a write: the tail was never confirmed, and
                    // neither was a transaction it cuts (it goes from its tx_begin on).
                    const auto cut = in_tx ? open_at : pos;
                    recovery_.torn_bytes += data.size() - cut;
                    drop_open();
                    file.reset();
                    if (::truncate(path.c_str(), off_t(cut)) != 0) { /* read-only: harmless */ }
                    break;
                }
                // A damaged record: a transaction it belongs to cannot be applied whole. Its
                // other records are still read as its own (up to its tx_commit), not applied.
                damaged = in_tx;
                ++recovery_.corrupt_records;
                pos += find_next_magic(data.subspan(pos));
                continue;
            }
            const auto& f = std::get<framed>(r);
            ++recovery_.records;
            if (f.type == record_type::tx_begin) {
                drop_open();   // a tx_begin inside a transaction: the earlier one never ended
                if (auto b = decode_tx_begin(f.payload)) {
                    in_tx = true;
                    open_tx = *b;
                    open_at = pos;
                } else {
                    ++recovery_.corrupt_records;
                }
            } else if (f.type == record_type::tx_commit) {
                const auto id = decode_tx_commit(f.payload);
                if (in_tx && !damaged && id && *id == open_tx.id && held.size() == open_tx.records) {
                    for (const auto& h : held) apply(h.type, h.payload, h.pos, h.consumed);
                    ++recovery_.transactions;
                    in_tx = false;
                    held.clear();
                } else {
                    drop_open();
                    if (!id) ++recovery_.corrupt_records;
                }
            } else if (in_tx && held.size() < open_tx.records) {
                held.push_back(held_record{f.type, f.payload, pos, f.consumed});
            } else {
                drop_open();   // more records than the transaction announced: it never ended
                apply(f.type, f.payload, pos, f.consumed);
            }
            pos += f.consumed;
        }
        if (in_tx) {
            // The segment ends inside a transaction: a crash before its tx_commit was written.
            if (last && file) {
                recovery_.torn_bytes += data.size() - open_at;
                drop_open();
                file.reset();
                if (::truncate(path.c_str(), off_t(open_at)) != 0) { /* read-only: harmless */ }
            } else {
                drop_open();
            }
        }
    }

    // A key removed and added again is listed twice: keep its first place only. The mark
    // (the top bit of `bytes`) is gone again before `each` runs, which may load().
    constexpr std::uint32_t seen = std::uint32_t{1} << 31;
    std::erase_if(order, [&](const added& a) {
        auto it = live_.find(a.key);
        if (it == live_.end() || (it->second.bytes & seen)) return true;
        it->second.bytes |= seen;
        return false;
    });
    for (auto& [key, loc] : live_) loc.bytes &= ~seen;
    for (const auto& a : order) {
        each(queue_names_[a.key.queue], recovered_message{a.key.id, a.priority, nullptr});
        ++recovery_.messages;
    }
    std::vector<added>().swap(order);
    recovery_.milliseconds =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();

    std::lock_guard lock(mutex_);
    reclaim();
    for (const auto& d : doomed_) ::unlink(d.path.c_str());   // at start: nothing waits for the lock
    doomed_.clear();
    open_segment(numbers.empty() ? 1 : numbers.back() + 1);
    if (failed_) throw std::runtime_error(failure_);
    if (!writer_.joinable()) writer_ = std::thread([this] { writer_loop(); });
}

std::size_t journal_store::load(std::string_view queue, std::span<const message_id> ids, std::size_t max_bytes,
                                std::vector<message_ptr>& out) {
    struct wanted {
        std::size_t slot;
        std::shared_ptr<segment_reader> file;
        std::uint32_t segment;
        std::uint64_t offset;
        std::uint32_t bytes;
    };
    std::vector<wanted> reads;
    std::size_t n = 0, bytes = 0;
    {
        std::lock_guard lock(mutex_);
        const auto q = queue_ids_.find(queue);
        while (n < ids.size() && (n == 0 || bytes < max_bytes)) {
            const auto id = ids[n++];
            out.push_back(nullptr);
            if (q == queue_ids_.end()) continue;
            const message_key key{id, q->second};
            if (auto u = unwritten_.find(key); u != unwritten_.end()) {
                out.back() = u->second;
                bytes += u->second->memory_size();
                continue;
            }
            const auto l = live_.find(key);
            if (l == live_.end() || l->second.segment == 0) continue;
            reads.push_back(wanted{out.size() - 1, reader(l->second.segment), l->second.segment, l->second.offset,
                                   l->second.bytes});
            bytes += l->second.bytes;
        }
    }
    // Outside the lock: records next to each other in a segment (a backlog written in order)
    // are read together, up to 1 MiB a read.
    constexpr std::uint64_t max_read = std::uint64_t{1} << 20;
    std::string buf;
    for (std::size_t i = 0; i < reads.size();) {
        const auto& first = reads[i];
        std::uint64_t end = first.offset + first.bytes;
        std::size_t j = i + 1;
        while (j < reads.size() && reads[j].segment == first.segment && reads[j].offset == end &&
               end - first.offset + reads[j].bytes <= max_read) {
            end += reads[j].bytes;
            ++j;
        }
        if (first.file && read_at(*first.file, first.offset, std::size_t(end - first.offset), buf)) {
            const auto all = bytes_of(buf);
            for (std::size_t k = i; k < j; ++k)
                out[reads[k].slot] = message_of_record(all.subspan(std::size_t(reads[k].offset - first.offset), reads[k].bytes));
        }
        i = j;
    }
    return n;
}

int journal_store::create_segment(std::uint64_t number, std::string& error) const {
    const auto path = segment_path(number);
    // Message locations keep 32-bit segment numbers, and 0 means "not written yet".
    if (number == 0 || number > std::numeric_limits<std::uint32_t>::max()) {
        error = "journal segment number out of range: " + path;
        return -1;
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        error = "cannot open " + path + ": " + errno_text();
        return -1;
    }
    sync_dir(settings_.dir);   // the new file's name must survive a crash too
    return fd;
}

int journal_store::install_segment(std::uint64_t number, int fd) {
    const int old = fd_;
    fd_ = fd;
    current_ = number;
    current_bytes_ = 0;
    segments_[number];
    return old;
}

void journal_store::open_segment(std::uint64_t number) {
    std::string error;
    const int fd = create_segment(number, error);
    if (fd < 0) return fail_all(error);
    if (const int old = install_segment(number, fd); old >= 0) ::close(old);
}

void journal_store::add(std::string_view queue, const message_ptr& msg, add_done done) {
    std::string payload;
    encode_add(payload, queue, *msg);
    {
        std::lock_guard lock(mutex_);
        if (!failed_ && writer_.joinable()) {
            const auto before = pending_.size();
            append_record(pending_, record_type::message_add, payload);
            const message_key key{msg->id, queue_index(queue)};
            live_[key] = location{before, 0, std::uint32_t(pending_.size() - before)};
            unwritten_[key] = msg;
            pending_keys_.push_back(key);
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
    const auto q = queue_ids_.find(queue);
    if (q == queue_ids_.end()) return;
    const message_key key{id, q->second};
    auto it = live_.find(key);
    if (it == live_.end()) return;
    unpin_when_written(it->second.segment, it->second.bytes);
    live_.erase(it);
    unwritten_.erase(key);
    append_record(pending_, record_type::message_remove, payload);
    // No completion: a remove rides along with the next batch. A long run of removes alone (a
    // backlog drained with auto-ack) starts one, so that they neither pile up in memory nor
    // keep emptied segments on disk.
    if (pending_.size() >= remove_flush_bytes) wake_.notify_one();
}

void journal_store::commit(store_transaction tx, add_done done) {
    std::vector<std::string> adds(tx.adds.size()), removes(tx.removes.size());
    for (std::size_t i = 0; i < tx.adds.size(); ++i) encode_add(adds[i], tx.adds[i].queue, *tx.adds[i].msg);
    for (std::size_t i = 0; i < tx.removes.size(); ++i) encode_remove(removes[i], tx.removes[i].queue, tx.removes[i].id);
    {
        std::lock_guard lock(mutex_);
        if (!failed_ && writer_.joinable()) {
            // Removes of ids no longer held write nothing, so that tx_begin's count is exact.
            std::vector<std::pair<std::size_t, message_key>> gone;
            for (std::size_t i = 0; i < tx.removes.size(); ++i) {
                const auto q = queue_ids_.find(tx.removes[i].queue);
                if (q == queue_ids_.end()) continue;
                const message_key key{tx.removes[i].id, q->second};
                if (!live_.contains(key)) continue;
                if (std::any_of(gone.begin(), gone.end(), [&](const auto& g) { return g.second == key; })) continue;
                gone.emplace_back(i, key);
            }
            const auto records = adds.size() + gone.size();
            if (records > 0) {
                // One contiguous group in one batch (never split across segments): recovery
                // applies it only when tx_begin, every record and tx_commit are intact.
                const auto id = ++next_tx_;
                std::string marker;
                encode_tx_begin(marker, id, std::uint32_t(records));
                append_record(pending_, record_type::tx_begin, marker);
                for (std::size_t i = 0; i < adds.size(); ++i) {
                    const auto before = pending_.size();
                    append_record(pending_, record_type::message_add, adds[i]);
                    const message_key key{tx.adds[i].msg->id, queue_index(tx.adds[i].queue)};
                    live_[key] = location{before, 0, std::uint32_t(pending_.size() - before)};
                    unwritten_[key] = tx.adds[i].msg;
                    pending_keys_.push_back(key);
                }
                for (const auto& [i, key] : gone) {
                    const auto it = live_.find(key);
                    unpin_when_written(it->second.segment, it->second.bytes);
                    live_.erase(it);
                    unwritten_.erase(key);
                    append_record(pending_, record_type::message_remove, removes[i]);
                }
                marker.clear();
                encode_tx_commit(marker, id);
                append_record(pending_, record_type::tx_commit, marker);
            }
            pending_done_.push_back(std::move(done));
            wake_.notify_one();
            return;
        }
    }
    if (done) done(store_status::failed);
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
    if (segment == unassigned || segment == 0) return;
    // A segment compacted (live set to 0) or deleted meanwhile owes nothing more.
    const auto it = segments_.find(segment);
    if (it == segments_.end()) return;
    auto& seg = it->second;
    if (seg.live > 0) --seg.live;
    seg.live_bytes -= std::min(seg.live_bytes, bytes);
    seg.changed = std::chrono::steady_clock::now();
}

void journal_store::unpin_when_written(std::uint64_t segment, std::size_t bytes) {
    if (segment == unassigned || segment == 0) return;
    pending_unpins_.emplace_back(segment, bytes);
}

void journal_store::put_subscription(const subscription_record& s) {
    std::string payload;
    encode_subscription(payload, s);
    std::lock_guard lock(mutex_);
    if (failed_ || !writer_.joinable()) return;
    if (auto old = subscriptions_.find(s.name); old != subscriptions_.end()) unpin_when_written(old->second.segment, old->second.bytes);
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
    unpin_when_written(it->second.segment, it->second.bytes);
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
    if (auto old = retained_.find(topic); old != retained_.end()) unpin_when_written(old->second.segment, old->second.bytes);
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
    unpin_when_written(it->second.segment, it->second.bytes);
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
        if (!failed_ && current_bytes_ >= settings_.segment_bytes) {
            // The next segment is made outside the lock: creating a file and syncing the
            // directory can take milliseconds, which the shards (adds, removes, loads) and the
            // scheduler's firing must not wait for. Only this thread changes the segment.
            const auto next = current_ + 1;
            lock.unlock();
            std::string error;
            const int fd = create_segment(next, error);
            lock.lock();
            int old = -1;
            if (fd < 0) fail_all(error);
            else old = install_segment(next, fd);
            if (old >= 0) {
                lock.unlock();
                ::close(old);
                lock.lock();
            }
        }
        // Records in this batch land at current_bytes_ + their place in pending_.
        std::vector<message_key> written;
        written.reserve(pending_keys_.size());
        for (const auto& key : pending_keys_) {
            auto it = live_.find(key);
            if (it == live_.end() || it->second.segment != 0) continue;
            it->second.segment = std::uint32_t(current_);
            it->second.offset += current_bytes_;
            auto& seg = segments_[current_];
            ++seg.live;
            seg.live_bytes += it->second.bytes;
            written.push_back(key);
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
        auto unpins = std::move(pending_unpins_);
        pending_unpins_.clear();
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
        if (ok) {
            // The records that supersede these are durable now: their segments may go.
            for (const auto& [segment, bytes] : unpins) unpin(segment, bytes);
            // On disk now: load() reads them from there. (A key added again since waits in
            // pending_ with segment 0 and keeps its body.)
            for (const auto& key : written)
                if (auto it = live_.find(key); it == live_.end() || it->second.segment != 0) unwritten_.erase(key);
        }
        lock.unlock();
        // Confirmations run outside the lock; they only post to the producers' workers.
        for (auto& d : done)
            if (d) d(ok ? store_status::ok : store_status::failed);
        lock.lock();
        if (ok) reclaim();
        if (!doomed_.empty()) {
            auto gone = std::move(doomed_);
            doomed_.clear();
            lock.unlock();
            for (auto& d : gone) ::unlink(d.path.c_str());
            gone.clear();   // closes the descriptors no load holds
            lock.lock();
        }
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
            // Deleted by the writer once it released the lock (deleting a large file, and
            // closing the last descriptor of a deleted one, frees its blocks: milliseconds).
            auto r = readers_.extract(std::uint32_t(head->first));   // a load under way keeps its file open
            doomed_.push_back(doomed_segment{segment_path(head->first), r.empty() ? nullptr : std::move(r.mapped())});
            segments_.erase(head);
            continue;
        }
        // A few long-lived messages pinning the oldest segment: write them forward so that it
        // can go once that write is durable (a later reclaim, after the next batch).
        const bool settled = std::chrono::steady_clock::now() - head->second.changed >=
                             std::chrono::milliseconds(settings_.compact_after_ms);
        if (segments_.size() >= 3 && head->second.live_bytes < settings_.segment_bytes / 10 && settled) {
            // Message records are copied as they are, read back from the head segment; the
            // body is held (unwritten_) until the copy is written, for load().
            const auto file = reader(std::uint32_t(head->first));
            std::string rec;
            for (auto& [key, loc] : live_) {
                if (loc.segment != head->first) continue;
                message_ptr msg;
                if (file && read_at(*file, loc.offset, loc.bytes, rec)) msg = message_of_record(bytes_of(rec));
                if (!msg) return fail_all("cannot read back a record of " + segment_path(head->first));
                loc.offset = pending_.size();
                loc.segment = 0;
                pending_.append(rec);
                unwritten_[key] = std::move(msg);
                pending_keys_.push_back(key);
                ++compacted_;
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

std::size_t journal_store::compacted_records() const {
    std::lock_guard lock(mutex_);
    return compacted_;
}

}  // namespace sb::core
