// tests/unit/core/journal_store_test.cpp — records, CRC, group commit, recovery (torn tail,
// corrupted middle, empty and missing directories), reclamation, compaction, failures.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <random>
#include <thread>

#include "core/store/crc32c.hpp"
#include "core/store/journal_store.hpp"
#include "core/store/record.hpp"

using namespace sb::core;
namespace fs = std::filesystem;

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::random_device rd;
        path = fs::temp_directory_path() / ("sb-journal-" + std::to_string(rd()) + std::to_string(rd()));
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string str() const { return path.string(); }
};

message_ptr make(message_id id, std::string body, std::string queue = "q") {
    auto m = std::make_shared<message>();
    m->id = id;
    m->dest = destination{dest_kind::queue, std::move(queue)};
    m->persistent = true;
    m->body = std::move(body);
    return m;
}

// Adds and waits (bounded) for the confirmation.
store_status add_sync(journal_store& j, std::string_view queue, const message_ptr& m) {
    std::promise<store_status> p;
    auto f = p.get_future();
    j.add(queue, m, [&p](store_status s) { p.set_value(s); });
    REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    return f.get();
}

std::vector<std::pair<std::string, std::string>> recover_all(journal_store& j) {
    std::vector<std::pair<std::string, std::string>> got;
    j.recover_loaded([&](std::string_view q, message_ptr m) { got.emplace_back(std::string(q), m->body); });
    return got;
}

journal_settings settings_for(const temp_dir& d, std::size_t segment = std::size_t{64} << 20) {
    journal_settings s;
    s.dir = d.str();
    s.segment_bytes = segment;
    s.compact_after_ms = 0;   // compaction as soon as a head segment qualifies
    return s;
}

std::vector<fs::path> segments(const temp_dir& d) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(d.path))
        if (e.path().filename().string().starts_with("journal-")) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEST_CASE("crc32c matches the Castagnoli check value", "[core][store]") {
    const std::string s = "123456789";
    CHECK(crc32c(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size())) == 0xE3069283u);
    // Incremental equals one pass.
    const auto a = crc32c(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), 4));
    CHECK(crc32c(std::span(reinterpret_cast<const std::uint8_t*>(s.data() + 4), 5), a) == 0xE3069283u);
}

TEST_CASE("a message survives the record encoding field by field", "[core][store]") {
    message m;
    m.id = 0x0102030405060708ull;
    m.dest = destination{dest_kind::topic, "a.b"};
    m.reply_to = destination{dest_kind::queue, "r"};
    m.correlation_id = "c";
    m.type = "t";
    m.content_type = "text/plain";
    m.group_id = "g";
    m.group_seq = -3;
    m.priority = 9;
    m.persistent = true;
    m.retain = true;
    m.timestamp_ms = 1;
    m.expiration_ms = 2;
    m.deliver_at_ms = 3;
    m.broker_path = {"b1", "b2"};
    m.properties = {{"n", std::monostate{}}, {"b", true}, {"i8", std::int8_t(-1)}, {"i16", std::int16_t(-2)},
                    {"i32", std::int32_t(-3)}, {"i64", std::int64_t(-4)}, {"f", 1.5f}, {"d", 2.25},
                    {"s", std::string("x")}, {"y", std::vector<std::uint8_t>{0, 255}}};
    m.kind = body_kind::bytes;
    m.body = std::string("\0\1\2", 3);
    m.origin_connection = 77;
    m.origin_qos = 2;
    std::string payload;
    encode_add(payload, "queue-1", m);
    auto back = decode_add(std::span(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()));
    REQUIRE(back);
    CHECK(back->queue == "queue-1");
    const auto& b = back->msg;
    CHECK(b.id == m.id);
    CHECK(b.dest == m.dest);
    CHECK(b.reply_to == m.reply_to);
    CHECK(b.correlation_id == "c");
    CHECK(b.type == "t");
    CHECK(b.content_type == "text/plain");
    CHECK(b.group_id == "g");
    CHECK(b.group_seq == -3);
    CHECK(b.priority == 9);
    CHECK(b.persistent);
    CHECK(b.retain);
    CHECK(b.timestamp_ms == 1);
    CHECK(b.expiration_ms == 2);
    CHECK(b.deliver_at_ms == 3);
    CHECK(b.broker_path == m.broker_path);
    REQUIRE(b.properties.size() == m.properties.size());
    for (std::size_t i = 0; i < m.properties.size(); ++i) {
        CHECK(b.properties[i].name == m.properties[i].name);
        CHECK(b.properties[i].value == m.properties[i].value);
    }
    CHECK(b.kind == body_kind::bytes);
    CHECK(b.body == m.body);
    CHECK(b.origin_connection == 77);
    CHECK(b.origin_qos == 2);
    // Every truncation is rejected, never read past the end.
    for (std::size_t n = 0; n < payload.size(); ++n)
        CHECK_FALSE(decode_add(std::span(reinterpret_cast<const std::uint8_t*>(payload.data()), n)));
}

TEST_CASE("the journal confirms adds and recovers what was not removed, in order", "[core][store]") {
    temp_dir d;
    {
        journal_store j(settings_for(d));
        CHECK(recover_all(j).empty());   // a missing directory is created empty
        for (int i = 1; i <= 5; ++i) CHECK(add_sync(j, "q", make(message_id(i), "m" + std::to_string(i))) == store_status::ok);
        CHECK(add_sync(j, "other", make(9, "o")) == store_status::ok);
        j.remove("q", 2);
        j.remove("q", 4);
        j.remove("q", 99);   // unknown: ignored
        CHECK(add_sync(j, "q", make(6, "m6")) == store_status::ok);   // the removes are written by now
    }
    journal_store j2(settings_for(d));
    const auto got = recover_all(j2);
    using p = std::pair<std::string, std::string>;
    CHECK(got == std::vector<p>{{"q", "m1"}, {"q", "m3"}, {"q", "m5"}, {"other", "o"}, {"q", "m6"}});
    CHECK(j2.last_recovery().messages == 5);
    CHECK(j2.last_recovery().corrupt_records == 0);
}

TEST_CASE("many concurrent adds share syncs and all complete", "[core][store]") {
    temp_dir d;
    journal_store j(settings_for(d));
    recover_all(j);
    constexpr int threads = 4, per_thread = 200;
    std::atomic<int> ok{0};
    std::vector<std::thread> producers;
    for (int t = 0; t < threads; ++t) {
        producers.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i)
                if (add_sync(j, "q", make(message_id(t * 1000 + i), "x")) == store_status::ok) ++ok;
        });
    }
    for (auto& p : producers) p.join();
    CHECK(ok == threads * per_thread);
}

TEST_CASE("a torn last record is dropped and everything before it recovered", "[core][store]") {
    temp_dir d;
    {
        journal_store j(settings_for(d));
        recover_all(j);
        for (int i = 1; i <= 3; ++i) add_sync(j, "q", make(message_id(i), "body" + std::to_string(i)));
    }
    auto segs = segments(d);
    REQUIRE(!segs.empty());
    const auto last = segs.back();
    fs::resize_file(last, fs::file_size(last) - 3);   // the crash cut the last record short
    journal_store j(settings_for(d));
    using p = std::pair<std::string, std::string>;
    CHECK(recover_all(j) == std::vector<p>{{"q", "body1"}, {"q", "body2"}});
    CHECK(j.last_recovery().torn_bytes > 0);
    CHECK(j.last_recovery().corrupt_records == 0);
}

TEST_CASE("a corrupted record in the middle is skipped and the rest recovered", "[core][store]") {
    temp_dir d;
    {
        journal_store j(settings_for(d));
        recover_all(j);
        add_sync(j, "q", make(1, "first"));
        add_sync(j, "q", make(2, "CORRUPTME"));
        add_sync(j, "q", make(3, "third"));
    }
    const auto seg = segments(d).back();
    std::string bytes;
    {
        std::ifstream in(seg, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    const auto at = bytes.find("CORRUPTME");
    REQUIRE(at != std::string::npos);
    bytes[at] = 'X';
    {
        std::ofstream out(seg, std::ios::binary | std::ios::trunc);
        out << bytes;
    }
    journal_store j(settings_for(d));
    using p = std::pair<std::string, std::string>;
    CHECK(recover_all(j) == std::vector<p>{{"q", "first"}, {"q", "third"}});
    CHECK(j.last_recovery().corrupt_records == 1);
}

TEST_CASE("an empty data directory recovers nothing", "[core][store]") {
    temp_dir d;
    fs::create_directories(d.path);
    journal_store j(settings_for(d));
    CHECK(recover_all(j).empty());
    CHECK(j.last_recovery().segments == 0);
}

TEST_CASE("a second journal on the same directory is refused", "[core][store]") {
    temp_dir d;
    journal_store j(settings_for(d));
    CHECK_THROWS_WITH(journal_store(settings_for(d)), Catch::Contains("in use by another broker"));
}

TEST_CASE("segments whose messages are all removed are deleted", "[core][store]") {
    temp_dir d;
    journal_store j(settings_for(d, 4096));
    recover_all(j);
    const std::string body(1000, 'x');
    for (int i = 1; i <= 40; ++i) add_sync(j, "q", make(message_id(i), body));
    CHECK(j.segment_count() >= 5);
    for (int i = 1; i <= 40; ++i) j.remove("q", message_id(i));
    // Each confirmed add is a batch after which reclamation runs.
    for (int i = 100; i < 103; ++i) add_sync(j, "q", make(message_id(i), "y"));
    CHECK(j.segment_count() <= 2);
}

// Message 1 stays while 59 others of 1000 bytes come and go, filling 4 KiB segments behind it;
// `after_each` runs after each of them went.
void churn_behind_long_lived(journal_store& j, const std::function<void()>& after_each = {}) {
    add_sync(j, "q", make(1, "long-lived"));
    const std::string body(1000, 'x');
    for (int i = 2; i <= 60; ++i) {
        add_sync(j, "q", make(message_id(i), body));
        j.remove("q", message_id(i));
        if (after_each) after_each();
    }
}

TEST_CASE("a long-lived message does not pin old segments: it is compacted forward", "[core][store]") {
    temp_dir d;
    {
        journal_store j(settings_for(d, 4096));
        recover_all(j);
        churn_behind_long_lived(j);
        for (int i = 0; i < 5; ++i) add_sync(j, "q", make(message_id(1000 + i), "z"));
        for (int i = 0; i < 5; ++i) j.remove("q", message_id(1000 + i));
        add_sync(j, "q", make(2000, "last"));
        CHECK(j.segment_count() <= 4);
    }
    journal_store j(settings_for(d, 4096));
    using p = std::pair<std::string, std::string>;
    CHECK(recover_all(j) == std::vector<p>{{"q", "long-lived"}, {"q", "last"}});
}

TEST_CASE("a store that cannot write confirms nothing and says so", "[core][store]") {
    temp_dir d;
    fs::create_directories(d.path);
    // After recovering segment 5 the journal writes segment 6, which is /dev/full: every write
    // fails with ENOSPC, like a full disk. (Recovery reads regular files only.)
    std::ofstream(d.path / "journal-0000000000000005.log").close();
    fs::create_symlink("/dev/full", d.path / "journal-0000000000000006.log");
    journal_store j(settings_for(d));
    recover_all(j);
    CHECK(add_sync(j, "q", make(1, "lost")) == store_status::failed);
    CHECK(j.failed());
    CHECK(add_sync(j, "q", make(2, "also")) == store_status::failed);
}

TEST_CASE("retained messages and durable subscriptions survive a reopen", "[core][store]") {
    temp_dir d;
    {
        journal_store j(settings_for(d));
        recover_all(j);
        auto r1 = make(1, "old");
        std::const_pointer_cast<message>(r1)->dest = destination{dest_kind::topic, "a.b"};
        auto r2 = make(2, "new");
        std::const_pointer_cast<message>(r2)->dest = destination{dest_kind::topic, "a.b"};
        auto r3 = make(3, "gone");
        std::const_pointer_cast<message>(r3)->dest = destination{dest_kind::topic, "x"};
        j.put_retained(r1);
        j.put_retained(r2);   // replaces
        j.put_retained(r3);
        j.remove_retained("x");
        j.put_subscription({"c:s", destination{dest_kind::topic, "a.>"}, "opaque"});
        j.put_subscription({"c:t", destination{dest_kind::topic, "b"}, ""});
        j.remove_subscription("c:t");
        add_sync(j, "q", make(9, "flush"));   // everything above rides in this batch
    }
    journal_store j(settings_for(d));
    recover_all(j);
    std::vector<std::string> retained;
    j.recover_retained([&](message_ptr m) { retained.push_back(m->dest.name + "=" + m->body); });
    CHECK(retained == std::vector<std::string>{"a.b=new"});
    std::vector<std::string> subs;
    j.recover_subscriptions([&](const subscription_record& s) { subs.push_back(s.name + "@" + s.filter.name + "#" + s.data); });
    CHECK(subs == std::vector<std::string>{"c:s@a.>#opaque"});
}

namespace {

// load() for a few ids of one queue, every id handled: the bodies ("" for a null).
std::vector<std::string> load_bodies(journal_store& j, std::string_view queue, std::vector<message_id> ids) {
    std::vector<message_ptr> got;
    CHECK(j.load(queue, ids, std::size_t(-1), got) == ids.size());
    std::vector<std::string> bodies;
    for (const auto& m : got) bodies.push_back(m ? m->body : "");
    return bodies;
}

}  // namespace

TEST_CASE("load reads messages back by id, written or not yet, and not removed ones", "[core][store]") {
    temp_dir d;
    journal_store j(settings_for(d));
    recover_all(j);
    for (int i = 1; i <= 4; ++i) CHECK(add_sync(j, "q", make(message_id(i), "m" + std::to_string(i))) == store_status::ok);
    CHECK(add_sync(j, "other", make(1, "o1")) == store_status::ok);   // same id, another queue
    j.remove("q", 3);
    // Written: read from the segment file, adjacent records in one read.
    CHECK(load_bodies(j, "q", {4, 1, 2, 3, 77}) == std::vector<std::string>{"m4", "m1", "m2", "", ""});
    CHECK(load_bodies(j, "other", {1}) == std::vector<std::string>{"o1"});
    CHECK(load_bodies(j, "nowhere", {1}) == std::vector<std::string>{""});
    // Not confirmed yet (maybe not written): still loadable.
    j.add("q", make(5, "m5"), {});
    CHECK(load_bodies(j, "q", {5}) == std::vector<std::string>{"m5"});
}

TEST_CASE("load stops at max_bytes but always reads one", "[core][store]") {
    temp_dir d;
    journal_store j(settings_for(d));
    recover_all(j);
    const std::string body(1000, 'b');
    for (int i = 1; i <= 10; ++i) add_sync(j, "q", make(message_id(i), body));
    const std::vector<message_id> ids{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    std::vector<message_ptr> got;
    CHECK(j.load("q", ids, 0, got) == 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0]->id == 1);
    got.clear();
    const auto n = j.load("q", ids, 3000, got);   // three records of ~1.1 KB pass 3000 bytes
    CHECK(n == 3);
    REQUIRE(got.size() == n);
    for (std::size_t i = 0; i < n; ++i) CHECK(got[i]->id == ids[i]);
}

TEST_CASE("recovery reports ids and priorities without bodies; load reads them", "[core][store]") {
    temp_dir d;
    {
        journal_store j(settings_for(d, 8192));
        recover_all(j);
        for (int i = 1; i <= 30; ++i) {
            auto m = std::make_shared<message>(*make(message_id(i), std::string(500, char('a' + i % 26))));
            m->priority = std::uint8_t(i % 10);
            CHECK(add_sync(j, "q", m) == store_status::ok);
        }
        for (int i = 1; i <= 30; i += 3) j.remove("q", message_id(i));
        add_sync(j, "q", make(31, "last"));
        CHECK(j.segment_count() >= 3);   // the reads below cross segments
    }
    journal_store j(settings_for(d, 8192));
    std::vector<recovered_message> got;
    j.recover([&](std::string_view queue, recovered_message r) {
        CHECK(queue == "q");
        got.push_back(std::move(r));
    });
    REQUIRE(got.size() == 21);
    std::vector<message_id> ids;
    for (const auto& r : got) {
        CHECK_FALSE(r.msg);
        CHECK(r.priority == (r.id == 31 ? default_priority : r.id % 10));
        ids.push_back(r.id);
    }
    CHECK(std::is_sorted(ids.begin(), ids.end()));
    std::vector<message_ptr> bodies;
    CHECK(j.load("q", ids, std::size_t(-1), bodies) == ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
        REQUIRE(bodies[i]);
        CHECK(bodies[i]->id == ids[i]);
        CHECK(bodies[i]->body == (ids[i] == 31 ? std::string("last") : std::string(500, char('a' + ids[i] % 26))));
    }
}

TEST_CASE("compaction copies records forward from disk and they stay loadable", "[core][store]") {
    temp_dir d;
    {
        journal_store j(settings_for(d, 4096));
        recover_all(j);
        // The long-lived message is read back right through every compaction.
        churn_behind_long_lived(j, [&] { REQUIRE(load_bodies(j, "q", {1}) == std::vector<std::string>{"long-lived"}); });
        add_sync(j, "q", make(2000, "last"));
        CHECK(j.segment_count() <= 4);
        // Its first segment is gone: the body comes from the copy.
        CHECK_FALSE(fs::exists(d.path / "journal-0000000000000001.log"));
        CHECK(load_bodies(j, "q", {1, 2000}) == std::vector<std::string>{"long-lived", "last"});
    }
    journal_store j(settings_for(d, 4096));
    using p = std::pair<std::string, std::string>;
    CHECK(recover_all(j) == std::vector<p>{{"q", "long-lived"}, {"q", "last"}});
}

TEST_CASE("a long run of removes is written without waiting for another add", "[core][store]") {
    temp_dir d;
    journal_store j(settings_for(d));
    recover_all(j);
    constexpr int n = 20000;   // 26 bytes of record each: twice the point that starts a batch
    for (int i = 1; i < n; ++i) j.add("q", make(message_id(i), "m"), {});
    CHECK(add_sync(j, "q", make(message_id(n), "m")) == store_status::ok);
    auto on_disk = [&] {
        std::uintmax_t bytes = 0;
        for (const auto& p : segments(d)) bytes += fs::file_size(p);
        return bytes;
    };
    const auto before = on_disk();
    for (int i = 1; i <= n; ++i) j.remove("q", message_id(i));
    // No add, no barrier: the removes must reach the file by themselves (polled, bounded).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (on_disk() < before + 250'000 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(on_disk() >= before + 250'000);
}

TEST_CASE("a head segment a consumer is draining empties by itself: it is not compacted", "[core][store]") {
    for (const std::uint32_t grace : {0u, 60000u}) {
        temp_dir d;
        auto s = settings_for(d, 4096);
        s.compact_after_ms = grace;
        journal_store j(s);
        recover_all(j);
        const std::string body(100, 'x');
        for (int i = 1; i <= 200; ++i) add_sync(j, "q", make(message_id(i), body));
        // A FIFO drain while other traffic goes on (each add is a batch; reclaim runs after it).
        for (int i = 1; i <= 200; ++i) {
            j.remove("q", message_id(i));
            add_sync(j, "r", make(message_id(1000 + i), "y"));
            j.remove("r", message_id(1000 + i));
        }
        add_sync(j, "r", make(message_id(5000), "last"));
        INFO("compact_after_ms " << grace);
        if (grace == 0) CHECK(j.compacted_records() > 0);   // the tail of every head segment written twice
        else CHECK(j.compacted_records() == 0);
        CHECK(j.segment_count() <= 3);                      // drained segments went either way
    }
}

// ---- local transactions: one group of records, recovered all or nothing ----------------------

namespace {

store_status commit_sync(journal_store& j, store_transaction tx) {
    std::promise<store_status> p;
    auto f = p.get_future();
    j.commit(std::move(tx), [&p](store_status s) { p.set_value(s); });
    REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    return f.get();
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
}

// m1 and m2 on "q" before the transaction; the transaction adds t1 to "q" and t2 to "r" and
// removes m1. Returns the segment's size before and after the transaction's records.
std::pair<std::size_t, std::size_t> write_transaction(const temp_dir& d) {
    journal_store j(settings_for(d));
    recover_all(j);
    add_sync(j, "q", make(1, "m1"));
    add_sync(j, "q", make(2, "m2"));
    const auto before = fs::file_size(segments(d).back());
    store_transaction tx;
    tx.adds.push_back({"q", make(10, "t1")});
    tx.adds.push_back({"r", make(11, "t2", "r")});
    tx.removes.push_back({"q", 1});
    REQUIRE(commit_sync(j, std::move(tx)) == store_status::ok);
    return {before, fs::file_size(segments(d).back())};
}

using pairs = std::vector<std::pair<std::string, std::string>>;
const pairs before_tx{{"q", "m1"}, {"q", "m2"}};
const pairs after_tx{{"q", "m2"}, {"q", "t1"}, {"r", "t2"}};

}  // namespace

TEST_CASE("a committed transaction's adds and removes are recovered together", "[core][store][transaction]") {
    temp_dir d;
    write_transaction(d);
    journal_store j(settings_for(d));
    CHECK(recover_all(j) == after_tx);
    CHECK(j.last_recovery().transactions == 1);
    CHECK(j.last_recovery().torn_transactions == 0);
    // The transaction's messages are loadable and removable like any other.
    std::vector<message_ptr> got;
    const message_id ids[] = {11};
    j.load("r", ids, 0, got);
    REQUIRE(got.size() == 1);
    REQUIRE(got[0]);
    CHECK(got[0]->body == "t2");
}

TEST_CASE("a transaction cut anywhere by a crash is recovered as if it never began", "[core][store][transaction]") {
    temp_dir d;
    const auto [before, after] = write_transaction(d);
    REQUIRE(after > before);
    const auto seg = segments(d).back();
    const auto whole = read_file(seg);
    REQUIRE(whole.size() == after);
    // Every length from "nothing of the transaction" to "all but its last byte".
    for (std::size_t cut = before; cut < after; ++cut) {
        temp_dir copy;
        fs::create_directories(copy.path);
        write_file(copy.path / seg.filename(), whole.substr(0, cut));
        journal_store j(settings_for(copy));
        INFO("cut at " << cut << " of " << before << ".." << after);
        CHECK(recover_all(j) == before_tx);
        CHECK(j.last_recovery().transactions == 0);
        // Recovery cut the partial transaction from the file: what is written next is not
        // taken for the rest of it by a later recovery.
        CHECK(fs::file_size(copy.path / seg.filename()) == before);
    }
    temp_dir copy;
    fs::create_directories(copy.path);
    write_file(copy.path / seg.filename(), whole);
    journal_store j(settings_for(copy));
    CHECK(recover_all(j) == after_tx);
}

TEST_CASE("a transaction with a damaged record is left out whole; records after it still count",
          "[core][store][transaction]") {
    temp_dir d;
    write_transaction(d);
    {
        journal_store j(settings_for(d));
        recover_all(j);
        add_sync(j, "q", make(20, "later"));
    }
    // Damage t2's body: the transaction's other records are intact, yet none may apply.
    const auto seg = segments(d).front();
    auto bytes = read_file(seg);
    const auto at = bytes.find("t2");
    REQUIRE(at != std::string::npos);
    bytes[at] = 'X';
    write_file(seg, bytes);
    journal_store j(settings_for(d));
    const auto got = recover_all(j);
    for (const auto& [q, b] : got) UNSCOPED_INFO(q << ":" << b);
    CHECK(got == pairs{{"q", "m1"}, {"q", "m2"}, {"q", "later"}});
    CHECK(j.last_recovery().torn_transactions == 1);
    CHECK(j.last_recovery().corrupt_records == 1);
}

TEST_CASE("removes of ids the journal does not hold are left out of a transaction", "[core][store][transaction]") {
    temp_dir d;
    {
        journal_store j(settings_for(d));
        recover_all(j);
        add_sync(j, "q", make(1, "m1"));
        store_transaction tx;
        tx.removes.push_back({"q", 1});
        tx.removes.push_back({"q", 1});        // twice
        tx.removes.push_back({"q", 99});       // never added
        tx.removes.push_back({"nowhere", 1});  // unknown queue
        CHECK(commit_sync(j, std::move(tx)) == store_status::ok);
        CHECK(commit_sync(j, store_transaction{}) == store_status::ok);   // an empty one completes
    }
    journal_store j(settings_for(d));
    CHECK(recover_all(j).empty());
    CHECK(j.last_recovery().transactions == 1);
    CHECK(j.last_recovery().torn_transactions == 0);
}
