// adapters/openwire/codec.cpp — OpenWire marshalling, the counterpart of ActiveMQ's
// OpenWireFormat and its generated v1..v12 marshallers.
//
// Each command's fields are listed once, in wire order with the version that added them
// (`*_fields` below), as a template over a visitor. Five visitors walk those lists: the tight
// encoding's two passes (bits, then data: OpenWire writes all booleans of a command first, as
// a BooleanStream), the loose writer, and the tight and loose readers. Ids, destinations and
// transaction ids — what the marshalling cache holds — travel as a `flat` value (one type byte,
// two strings, three numbers), so the cache and its map handle one shape.
//
// Caches: encoding keeps ActiveMQ's marshall cache exactly (the same index for the same value,
// the same round-robin and eviction sweep), so our frames equal OpenWireFormat's byte for byte.
// Decoding keeps the unmarshall cache; its entries own their bytes, and an entry replaced
// during a decode is kept until the next one, both for views into it and to undo the decode
// when it turns out incomplete (size prefix disabled) or fails.
#include "adapters/openwire/codec.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <type_traits>
#include <unordered_map>

namespace sb::openwire {

namespace {

constexpr std::string_view truncated = "command shorter than its fields";
constexpr std::string_view trailing = "command longer than its fields";
constexpr std::string_view unknown_type = "unknown data type";
constexpr std::string_view unexpected_type = "unexpected data type for the field";
constexpr std::string_view bad_utf = "malformed modified UTF-8 string";
constexpr std::string_view negative_length = "negative length";
constexpr std::string_view too_deep = "data structures nested too deeply";
constexpr std::string_view too_long_array = "array longer than the limit";
constexpr std::string_view cache_range = "marshalling cache index out of range";
constexpr std::string_view cache_off = "marshalling cache index out of range (no cache)";
constexpr std::string_view bits_overrun = "boolean stream overrun";
constexpr std::string_view string_too_long = "string too long for OpenWire";
constexpr std::string_view frame_too_large = "frame larger than the maximum frame size";
constexpr std::string_view not_in_version = "data type not in the negotiated OpenWire version";
constexpr std::string_view cached_form = "cached marshalled form not supported";
constexpr std::string_view null_element = "null array element";
constexpr std::string_view null_command = "null command";

// ---------------------------------------------------------------------------------------------
// Bytes

// The few helpers every field goes through: inlined even into the big field-list functions.
#define SB_OW_INLINE [[gnu::always_inline]] inline

// Small writes go through a sink: a buffer on the stack, appended to the output when full and
// before anything large (a body) is appended directly, so no field costs a std::string call.
struct sink {
    explicit sink(std::string& o) noexcept : out(o) {}
    std::string& out;
    std::size_t len = 0;
    char buf[480];   // not initialized: written before read

    void flush() {
        out.append(buf, len);
        len = 0;
    }
    SB_OW_INLINE void append(const char* p, std::size_t n) {
        if (len + n > sizeof buf) return append_slow(p, n);
        std::memcpy(buf + len, p, n);
        len += n;
    }
    [[gnu::noinline]] void append_slow(const char* p, std::size_t n) {
        flush();
        if (n > sizeof buf / 2) {
            out.append(p, n);
            return;
        }
        std::memcpy(buf + len, p, n);
        len += n;
    }
    SB_OW_INLINE void append(std::string_view v) { append(v.data(), v.size()); }
    SB_OW_INLINE void push_back(char c) {
        if (len == sizeof buf) flush();
        buf[len++] = c;
    }
};

template <class Out>
SB_OW_INLINE void put8(Out& o, std::uint8_t v) { o.push_back(static_cast<char>(v)); }
template <class Out>
SB_OW_INLINE void put16(Out& o, std::uint16_t v) {
    const char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
    o.append(b, 2);
}
template <class Out>
SB_OW_INLINE void put32(Out& o, std::uint32_t v) {
    const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
    o.append(b, 4);
}
template <class Out>
SB_OW_INLINE void put64(Out& o, std::uint64_t v) {
    const char b[8] = {static_cast<char>(v >> 56), static_cast<char>(v >> 48), static_cast<char>(v >> 40),
                       static_cast<char>(v >> 32), static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
    o.append(b, 8);
}
inline std::uint16_t get16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
inline std::uint32_t get32(const std::uint8_t* p) {
    return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}
inline std::uint64_t get64(const std::uint8_t* p) { return std::uint64_t(get32(p)) << 32 | get32(p + 4); }

inline std::string_view as_sv(const std::uint8_t* p, std::size_t n) { return {reinterpret_cast<const char*>(p), n}; }
inline bytes as_bytes(std::string_view s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }
inline std::string_view as_sv(bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// ---------------------------------------------------------------------------------------------
// Modified UTF-8

enum class utf_class { as_is, convert, malformed };

// Java's DataInput.readUTF accepts: 0xxxxxxx, 110xxxxx 10xxxxxx, 1110xxxx 10xxxxxx 10xxxxxx.
// The bytes are already UTF-8 unless they hold an encoded NUL (C0 80), another overlong form,
// or surrogates (ED A0..BF ..), which become one 4-byte sequence per pair.
utf_class classify_modified(std::string_view s) noexcept {
    const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
    const auto* end = p + s.size();
    // ASCII fast path, 8 bytes at a time.
    while (end - p >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        if (w & 0x8080808080808080ull) break;
        p += 8;
    }
    utf_class c = utf_class::as_is;
    while (p < end) {
        const std::uint8_t b = *p;
        if (b < 0x80) {
            ++p;
        } else if ((b & 0xE0) == 0xC0) {
            if (end - p < 2 || (p[1] & 0xC0) != 0x80) return utf_class::malformed;
            if (b < 0xC2) c = utf_class::convert;   // overlong (C0 80 is NUL)
            p += 2;
        } else if ((b & 0xF0) == 0xE0) {
            if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return utf_class::malformed;
            if (b == 0xE0 && p[1] < 0xA0) c = utf_class::convert;   // overlong
            if (b == 0xED && p[1] >= 0xA0) c = utf_class::convert;  // a surrogate
            p += 3;
        } else {
            return utf_class::malformed;
        }
    }
    return c;
}

template <class Out>
void append_utf8(Out& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | cp >> 6));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | cp >> 12));
        out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | cp >> 18));
        out.push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

// One code point of (possibly ill-formed) UTF-8: ill-formed bytes read as U+FFFD, one byte each.
// Lone surrogates encoded as 3 bytes (as modified UTF-8 passes them) come through as themselves.
std::uint32_t next_cp(const std::uint8_t*& p, const std::uint8_t* end) noexcept {
    const std::uint8_t b = *p;
    if (b < 0x80) { ++p; return b; }
    auto cont = [&](std::ptrdiff_t i) { return end - p > i && (p[i] & 0xC0) == 0x80; };
    if (b >= 0xC2 && b < 0xE0 && cont(1)) {
        const std::uint32_t cp = (b & 0x1Fu) << 6 | (p[1] & 0x3Fu);
        p += 2;
        return cp;
    }
    if (b >= 0xE0 && b < 0xF0 && cont(1) && cont(2)) {
        const std::uint32_t cp = (b & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
        if (cp >= 0x800) { p += 3; return cp; }
    }
    if (b >= 0xF0 && b < 0xF5 && cont(1) && cont(2) && cont(3)) {
        const std::uint32_t cp = (b & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu);
        if (cp >= 0x10000 && cp <= 0x10FFFF) { p += 4; return cp; }
    }
    ++p;
    return 0xFFFD;
}

// What Java's writeUTF makes of the string: its length and whether it is "only ASCII" in
// OpenWire's sense (every char in 1..0x7F: then the bytes are the same).
struct utf_measure {
    std::size_t modified = 0;
    std::size_t utf16 = 0;
    bool ascii = true;
    bool same = true;   // the UTF-8 bytes are the modified UTF-8 bytes
};

utf_measure measure(std::string_view s) noexcept {
    utf_measure m;
    const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
    const auto* end = p + s.size();
    while (p < end) {
        const std::uint8_t b = *p;
        if (b != 0 && b < 0x80) {
            ++p;
            ++m.modified;
            ++m.utf16;
            continue;
        }
        m.ascii = false;
        const auto* start = p;
        const std::uint32_t cp = next_cp(p, end);
        if (cp == 0) {
            m.modified += 2;
            m.utf16 += 1;
            m.same = false;
        } else if (cp < 0x800) {
            m.modified += 2;
            m.utf16 += 1;
        } else if (cp < 0x10000) {
            m.modified += 3;
            m.utf16 += 1;
            if (cp == 0xFFFD && p - start != 3) m.same = false;
        } else {
            m.modified += 6;
            m.utf16 += 2;
            m.same = false;
        }
        if (p - start == 2 && b < 0xC2) m.same = false;
    }
    return m;
}

template <class Out>
void write_modified(std::string_view s, Out& out) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
    const auto* end = p + s.size();
    while (p < end) {
        const std::uint32_t cp = next_cp(p, end);
        if (cp == 0) {
            out.push_back(static_cast<char>(0xC0));
            out.push_back(static_cast<char>(0x80));
        } else if (cp >= 0x10000) {
            const std::uint32_t v = cp - 0x10000;
            append_utf8(out, 0xD800 + (v >> 10));
            append_utf8(out, 0xDC00 + (v & 0x3FF));
        } else {
            append_utf8(out, cp);
        }
    }
}

// Modified UTF-8 (already classified well-formed) to UTF-8: NUL and overlong forms decoded,
// surrogate pairs joined; a lone surrogate stays as its 3 bytes.
void convert_modified(std::string_view s, std::string& out) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
    const auto* end = p + s.size();
    out.reserve(out.size() + s.size());
    auto unit = [&](const std::uint8_t*& q) -> std::uint32_t {
        const std::uint8_t b = *q;
        if (b < 0x80) { ++q; return b; }
        if ((b & 0xE0) == 0xC0) { const std::uint32_t c = (b & 0x1Fu) << 6 | (q[1] & 0x3Fu); q += 2; return c; }
        const std::uint32_t c = (b & 0x0Fu) << 12 | (q[1] & 0x3Fu) << 6 | (q[2] & 0x3Fu);
        q += 3;
        return c;
    };
    while (p < end) {
        std::uint32_t c = unit(p);
        if (c >= 0xD800 && c < 0xDC00 && p < end) {
            const std::uint8_t* q = p;
            const std::uint32_t lo = unit(q);
            if (lo >= 0xDC00 && lo < 0xE000) {
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                p = q;
            }
        }
        append_utf8(out, c);
    }
}

// ---------------------------------------------------------------------------------------------
// Flat values: what the marshalling cache holds

struct flat {
    std::uint8_t type = 0;       // 0: null
    std::string_view s1;         // connection id value, physical name, broker id, XA global id
    std::string_view s2;         // XA branch qualifier; local transaction: its connection id
    std::int64_t a = 0;
    std::int64_t b = 0;
    std::int32_t fmt = 0;
    std::uint8_t inner = 0;      // local transaction: type of the inner connection id (0: null)
};

struct flat_hash {
    using is_transparent = void;
    std::size_t operator()(const flat& f) const noexcept {
        std::size_t h = std::hash<std::string_view>{}(f.s1);
        h ^= std::hash<std::string_view>{}(f.s2) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
        h ^= static_cast<std::size_t>(f.a) * 0x100000001b3ull + static_cast<std::size_t>(f.b) * 31 + f.type + (std::size_t(f.fmt) << 8);
        return h;
    }
};

// A flat value that owns its bytes; heap-allocated and never moved, so views into it stay put.
struct owned {
    std::string s1, s2;
    flat v;   // views into s1 and s2 (null where the value's were)

    explicit owned(const flat& f) : s1(f.s1), s2(f.s2), v(f) {
        if (!is_null(f.s1)) v.s1 = std::string_view(s1.data(), s1.size());
        if (!is_null(f.s2)) v.s2 = std::string_view(s2.data(), s2.size());
    }
    owned(const owned&) = delete;
    owned& operator=(const owned&) = delete;
    const flat& view() const noexcept { return v; }
};

// owned == flat, cheapest test first.
inline bool same(const owned& o, const flat& f) noexcept {
    const flat& v = o.v;
    return v.type == f.type && v.a == f.a && v.b == f.b && v.fmt == f.fmt && v.inner == f.inner &&
           v.s1.size() == f.s1.size() && v.s2.size() == f.s2.size() && is_null(v.s1) == is_null(f.s1) &&
           is_null(v.s2) == is_null(f.s2) && (f.s1.empty() || std::memcmp(v.s1.data(), f.s1.data(), f.s1.size()) == 0) &&
           (f.s2.empty() || std::memcmp(v.s2.data(), f.s2.data(), f.s2.size()) == 0);
}

// Key of the marshall cache's map: an owned value compared as its flat view.
struct key_hash {
    using is_transparent = void;
    std::size_t operator()(const flat& f) const noexcept { return flat_hash{}(f); }
    std::size_t operator()(const std::unique_ptr<owned>& o) const noexcept { return flat_hash{}(o->view()); }
};
struct key_eq {
    using is_transparent = void;
    bool operator()(const std::unique_ptr<owned>& x, const std::unique_ptr<owned>& y) const noexcept { return same(*x, y->view()); }
    bool operator()(const flat& x, const std::unique_ptr<owned>& y) const noexcept { return same(*y, x); }
    bool operator()(const std::unique_ptr<owned>& x, const flat& y) const noexcept { return same(*x, y); }
};

// Typed values <-> flat.
flat to_flat(const connection_id& x) { flat f; f.type = type::connection_id; f.s1 = x.value; return f; }
flat to_flat(const session_id& x) { flat f; f.type = type::session_id; f.s1 = x.connection_id; f.a = x.value; return f; }
flat to_flat(const producer_id& x) { flat f; f.type = type::producer_id; f.s1 = x.connection_id; f.a = x.value; f.b = x.session_id; return f; }
flat to_flat(const consumer_id& x) { flat f; f.type = type::consumer_id; f.s1 = x.connection_id; f.a = x.session_id; f.b = x.value; return f; }
flat to_flat(const broker_id& x) { flat f; f.type = type::broker_id; f.s1 = x.value; return f; }
flat to_flat(const destination& x) { flat f; f.type = x.type; f.s1 = x.physical_name; return f; }
flat to_flat(const local_transaction_id& x) {
    flat f;
    f.type = type::local_transaction_id;
    f.a = x.value;
    if (x.connection_id) { f.inner = type::connection_id; f.s2 = x.connection_id->value; }
    return f;
}
flat to_flat(const xa_transaction_id& x) {
    flat f;
    f.type = type::xa_transaction_id;
    f.fmt = x.format_id;
    f.s1 = as_sv(x.global_transaction_id);
    f.s2 = as_sv(x.branch_qualifier);
    return f;
}
flat to_flat(const transaction_id& x) { return std::visit([](const auto& v) { return to_flat(v); }, x); }
flat to_flat(const object_id& x) {
    return std::visit([](const auto& v) {
        if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::monostate>) return flat{};
        else return to_flat(v);
    }, x);
}
template <class T>
flat to_flat(const std::optional<T>& x) { return x ? to_flat(*x) : flat{}; }

// Which flat types a field of type T accepts (ActiveMQ would fail the cast otherwise).
template <class T> bool accepts(std::uint8_t t) noexcept;
template <> bool accepts<connection_id>(std::uint8_t t) noexcept { return t == type::connection_id; }
template <> bool accepts<session_id>(std::uint8_t t) noexcept { return t == type::session_id; }
template <> bool accepts<producer_id>(std::uint8_t t) noexcept { return t == type::producer_id; }
template <> bool accepts<consumer_id>(std::uint8_t t) noexcept { return t == type::consumer_id; }
template <> bool accepts<broker_id>(std::uint8_t t) noexcept { return t == type::broker_id; }
template <> bool accepts<destination>(std::uint8_t t) noexcept { return is_destination_type(t); }
template <> bool accepts<transaction_id>(std::uint8_t t) noexcept {
    return t == type::local_transaction_id || t == type::xa_transaction_id;
}
template <> bool accepts<object_id>(std::uint8_t t) noexcept { return t >= type::connection_id && t <= type::producer_id; }

bool is_flat_type(std::uint8_t t) noexcept {
    return is_destination_type(t) || t == type::local_transaction_id || t == type::xa_transaction_id ||
           (t >= type::connection_id && t <= type::broker_id);
}

void from_flat(const flat& f, connection_id& x) { x.value = f.s1; }
void from_flat(const flat& f, session_id& x) { x.connection_id = f.s1; x.value = f.a; }
void from_flat(const flat& f, producer_id& x) { x.connection_id = f.s1; x.value = f.a; x.session_id = f.b; }
void from_flat(const flat& f, consumer_id& x) { x.connection_id = f.s1; x.session_id = f.a; x.value = f.b; }
void from_flat(const flat& f, broker_id& x) { x.value = f.s1; }
void from_flat(const flat& f, destination& x) { x.type = f.type; x.physical_name = f.s1; }
void from_flat(const flat& f, transaction_id& x) {
    if (f.type == type::local_transaction_id) {
        local_transaction_id l;
        l.value = f.a;
        if (f.inner) l.connection_id = openwire::connection_id{f.s2};
        x = l;
    } else {
        xa_transaction_id t;
        t.format_id = f.fmt;
        t.global_transaction_id = as_bytes(f.s1);
        t.branch_qualifier = as_bytes(f.s2);
        x = t;
    }
}
void from_flat(const flat& f, object_id& x) {
    switch (f.type) {
    case type::connection_id: { connection_id v; from_flat(f, v); x = v; break; }
    case type::session_id: { session_id v; from_flat(f, v); x = v; break; }
    case type::consumer_id: { consumer_id v; from_flat(f, v); x = v; break; }
    case type::producer_id: { producer_id v; from_flat(f, v); x = v; break; }
    default: x = std::monostate{};
    }
}
template <class T>
void assign(const flat& f, std::optional<T>& x) {
    if (f.type == 0) { x.reset(); return; }
    from_flat(f, x.emplace());
}
void assign(const flat& f, object_id& x) { from_flat(f, x); }

template <class T> struct unwrap { using type = T; };
template <class T> struct unwrap<std::optional<T>> { using type = T; };

}  // namespace

// ---------------------------------------------------------------------------------------------
// The connection's state

struct wire_format::impl {
    // Unmarshall cache: slots own their values.
    std::vector<std::unique_ptr<owned>> in_cache;
    // Replaced during the current decode: (slot, previous value), to undo or to keep alive.
    std::vector<std::pair<std::int32_t, std::unique_ptr<owned>>> in_journal;

    // Marshall cache (OpenWireFormat's marshallCache / marshallCacheMap).
    std::vector<std::unique_ptr<owned>> out_slots;   // null pointer: empty (or a cached null)
    std::unordered_map<std::unique_ptr<owned>, std::int16_t, key_hash, key_eq> out_map;
    std::int16_t next_index = 0;
    std::int16_t next_eviction = 0;
    struct out_undo {
        std::int16_t index;
        std::unique_ptr<owned> previous;   // the slot's previous value
        bool previous_mapped;              // it was in the map at this index (we dropped it)
    };
    std::vector<out_undo> out_journal;
    std::int16_t saved_next = 0;

    // Tight encoding scratch: the bits of pass one, the cache indexes pass two writes.
    std::vector<std::uint8_t> bits;
    std::vector<std::int16_t> indexes;

    // Decoded storage, reused frame after frame.
    data_structure top;
    std::vector<std::unique_ptr<data_structure>> nested;
    std::size_t nested_used = 0;
    std::vector<std::unique_ptr<throwable>> throwables;
    std::size_t throwables_used = 0;
    std::deque<std::string> scratch;

    data_structure& next_nested() {
        if (nested_used == nested.size()) nested.push_back(std::make_unique<data_structure>());
        return *nested[nested_used++];
    }
    throwable& next_throwable() {
        if (throwables_used == throwables.size()) throwables.push_back(std::make_unique<throwable>());
        throwable& t = *throwables[throwables_used++];
        t.stack_trace.clear();
        t.cause = nullptr;
        t.class_name = {};
        t.message = {};
        return t;
    }

    // -- unmarshall cache ----------------------------------------------------------------------
    void in_set(std::int32_t index, const flat& f) {
        in_journal.emplace_back(index, std::move(in_cache[static_cast<std::size_t>(index)]));
        in_cache[static_cast<std::size_t>(index)] = std::make_unique<owned>(f);
    }
    void in_undo() {
        for (auto it = in_journal.rbegin(); it != in_journal.rend(); ++it)
            in_cache[static_cast<std::size_t>(it->first)] = std::move(it->second);
        in_journal.clear();
    }

    // -- marshall cache ------------------------------------------------------------------------
    // The last value found per type (by the low bits of its type byte), so that a dispatch to
    // the same consumer hashes no connection id: its key lives in the map, and whatever erases
    // from the map (an add, a sweep that evicts, a rollback) forgets them all.
    struct memo_entry {
        const owned* key = nullptr;
        std::int16_t index = 0;
    };
    std::array<memo_entry, 16> memo{};
    void forget() noexcept { memo.fill(memo_entry{}); }

    std::optional<std::int16_t> out_find(const flat& f) {
        memo_entry& m = memo[f.type & 15];
        if (m.key && same(*m.key, f)) return m.index;
        auto it = out_map.find(f);
        if (it == out_map.end()) return std::nullopt;
        m = memo_entry{it->first.get(), it->second};
        return it->second;
    }
    std::int16_t out_add(const flat& f) {
        forget();
        const std::int16_t i = next_index++;
        if (next_index >= static_cast<std::int32_t>(out_slots.size())) next_index = 0;
        if (out_map.size() >= out_slots.size()) return -1;   // full: not cached (as ActiveMQ)
        auto& slot = out_slots[static_cast<std::size_t>(i)];
        bool mapped = false;
        if (slot) {
            // ActiveMQ would leave the old value mapped to a slot it no longer holds; the sweep
            // keeps that from happening short of 100 new values in one command. Drop it.
            auto it = out_map.find(slot->view());
            if (it != out_map.end() && it->second == i) {
                out_map.erase(it);
                mapped = true;
            }
        }
        out_journal.push_back(out_undo{i, std::move(slot), mapped});
        slot = std::make_unique<owned>(f);
        out_map.emplace(std::make_unique<owned>(f), i);
        return i;
    }
    void out_begin() {
        out_journal.clear();
        saved_next = next_index;
    }
    void out_rollback() {
        if (!out_journal.empty()) forget();
        for (auto it = out_journal.rbegin(); it != out_journal.rend(); ++it) {
            auto& slot = out_slots[static_cast<std::size_t>(it->index)];
            if (slot) {
                auto m = out_map.find(slot->view());
                if (m != out_map.end() && m->second == it->index) out_map.erase(m);
            }
            slot = std::move(it->previous);
            if (it->previous_mapped && slot) out_map.emplace(std::make_unique<owned>(slot->view()), it->index);
        }
        out_journal.clear();
        next_index = saved_next;
    }
    // OpenWireFormat.runMarshallCacheEvictionSweep: keep 100 slots free ahead of next_index. A
    // null slot stands for a cached null too (as in ActiveMQ's array), so erasing "its" key
    // erases the null key.
    void sweep() {
        const std::size_t n = out_slots.size();
        const std::size_t high = n > 100 ? n - 100 : 0;
        std::size_t guard = 0;
        while (out_map.size() > high && guard++ <= n) {
            forget();
            auto& slot = out_slots[static_cast<std::size_t>(next_eviction)];
            auto it = out_map.find(slot ? slot->view() : flat{});
            if (it != out_map.end()) out_map.erase(it);
            slot.reset();
            if (++next_eviction >= static_cast<std::int32_t>(n)) next_eviction = 0;
        }
    }
    void reset_caches(std::int32_t size) {
        in_cache.clear();
        in_cache.resize(static_cast<std::size_t>(size));
        in_journal.clear();
        out_slots.clear();
        out_slots.resize(static_cast<std::size_t>(size));
        out_map.clear();
        forget();
        next_index = 0;
        next_eviction = 0;
    }

    void begin_decode() {
        in_journal.clear();
        nested_used = 0;
        throwables_used = 0;
        scratch.clear();
    }
};

namespace {

using impl = wire_format::impl;

// ---------------------------------------------------------------------------------------------
// Field lists. `v` is a visitor; `c` a command (const when encoding).

template <class V, class C>
bool base_fields(V& v, C& c) {
    return v.i32(c.command_id) && v.boolean(c.response_required);
}

template <class V, class F>
bool flat_body(V& v, F& f);

template <class V, class C>
bool message_id_body(V& v, C& c) {
    return (v.version < 10 || v.string(c.text_view)) && v.cached(c.producer_id) && v.i64(c.producer_sequence_id) &&
           v.i64(c.broker_sequence_id);
}

template <class V, class C>
bool wire_format_info_fields(V& v, C& c) {
    return v.magic(c.magic) && v.i32(c.version) && v.bytes(c.marshalled_properties);
}

template <class V, class C>
bool broker_info_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.broker_id) && v.string(c.broker_url) && v.array(c.peer_broker_infos) &&
           v.string(c.broker_name) && v.boolean(c.slave_broker) && v.boolean(c.master_broker) &&
           v.boolean(c.fault_tolerant_configuration) &&
           (v.version < 2 || (v.boolean(c.duplex_connection) && v.boolean(c.network_connection) && v.i64(c.connection_id))) &&
           (v.version < 3 || (v.string(c.broker_upload_url) && v.string(c.network_properties)));
}

template <class V, class C>
bool connection_info_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.connection_id) && v.string(c.client_id) && v.string(c.password) &&
           v.string(c.user_name) && v.array(c.broker_path) && v.boolean(c.broker_master_connector) &&
           v.boolean(c.manageable) && (v.version < 2 || v.boolean(c.client_master)) &&
           (v.version < 6 || (v.boolean(c.fault_tolerant) && v.boolean(c.failover_reconnect))) &&
           (v.version < 8 || v.string(c.client_ip));
}

template <class V, class C>
bool session_info_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.session_id);
}

template <class V, class C>
bool consumer_info_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.consumer_id) && v.boolean(c.browser) && v.cached(c.destination) &&
           v.i32(c.prefetch_size) && v.i32(c.maximum_pending_message_limit) && v.boolean(c.dispatch_async) &&
           v.string(c.selector) && (v.version < 10 || v.string(c.client_id)) && v.string(c.subscription_name) &&
           v.boolean(c.no_local) && v.boolean(c.exclusive) && v.boolean(c.retroactive) && v.i8(c.priority) &&
           v.array(c.broker_path) && v.any(c.additional_predicate) && v.boolean(c.network_subscription) &&
           v.boolean(c.optimized_acknowledge) && v.boolean(c.no_range_acks) &&
           (v.version < 4 || v.array(c.network_consumer_path));
}

template <class V, class C>
bool producer_info_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.producer_id) && v.cached(c.destination) && v.array(c.broker_path) &&
           (v.version < 2 || v.boolean(c.dispatch_async)) && (v.version < 3 || v.i32(c.window_size));
}

template <class V, class C>
bool transaction_info_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.connection_id) && v.cached(c.transaction_id) && v.i8(c.type);
}

template <class V, class C>
bool destination_info_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.connection_id) && v.cached(c.destination) && v.i8(c.operation_type) &&
           v.i64(c.timeout) && v.array(c.broker_path);
}

template <class V, class C>
bool remove_subscription_info_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.connection_id) && v.string(c.subscription_name) && v.string(c.client_id);
}

template <class V, class C>
bool remove_info_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.object_id) && (v.version < 5 || v.i64(c.last_delivered_sequence_id));
}

template <class V, class C>
bool control_command_fields(V& v, C& c) {
    return base_fields(v, c) && v.string(c.command);
}

template <class V, class C>
bool connection_error_fields(V& v, C& c) {
    return base_fields(v, c) && v.throwable(c.exception) && v.nested(c.connection_id);
}

template <class V, class C>
bool consumer_control_fields(V& v, C& c) {
    return base_fields(v, c) && (v.version < 6 || v.nested(c.destination)) && v.boolean(c.close) &&
           v.nested(c.consumer_id) && v.i32(c.prefetch) &&
           (v.version < 2 || (v.boolean(c.flush) && v.boolean(c.start) && v.boolean(c.stop)));
}

template <class V, class C>
bool connection_control_fields(V& v, C& c) {
    return base_fields(v, c) && v.boolean(c.close) && v.boolean(c.exit) && v.boolean(c.fault_tolerant) &&
           v.boolean(c.resume) && v.boolean(c.suspend) &&
           (v.version < 6 || (v.string(c.connected_brokers) && v.string(c.reconnect_to) && v.boolean(c.rebalance_connection))) &&
           (v.version < 8 || v.bytes(c.token));
}

template <class V, class C>
bool producer_ack_fields(V& v, C& c) {
    return base_fields(v, c) && v.nested(c.producer_id) && v.i32(c.size);
}

template <class V, class C>
bool message_pull_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.consumer_id) && v.cached(c.destination) && v.i64(c.timeout) &&
           (v.version < 3 || (v.string(c.correlation_id) && v.nested(c.message_id)));
}

template <class V, class C>
bool message_dispatch_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.consumer_id) && v.cached(c.destination) && v.message(c.message) &&
           v.i32(c.redelivery_counter);
}

template <class V, class C>
bool message_ack_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.destination) && v.cached(c.transaction_id) && v.cached(c.consumer_id) &&
           v.i8(c.ack_type) && v.nested(c.first_message_id) && v.nested(c.last_message_id) && v.i32(c.message_count) &&
           (v.version < 7 || v.throwable(c.poison_cause));
}

template <class V, class C>
bool message_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.producer_id) && v.cached(c.destination) && v.cached(c.transaction_id) &&
           v.cached(c.original_destination) && v.nested(c.message_id) && v.cached(c.original_transaction_id) &&
           v.string(c.group_id) && v.i32(c.group_sequence) && v.string(c.correlation_id) && v.boolean(c.persistent) &&
           v.i64(c.expiration) && v.i8(c.priority) && v.nested(c.reply_to) && v.i64(c.timestamp) && v.string(c.type) &&
           v.bytes(c.content) && v.bytes(c.marshalled_properties) && v.any(c.data_structure) &&
           v.cached(c.target_consumer_id) && v.boolean(c.compressed) && v.i32(c.redelivery_counter) &&
           v.array(c.broker_path) && v.i64(c.arrival) && v.string(c.user_id) && v.boolean(c.recieved_by_dfbridge) &&
           (v.version < 2 || v.boolean(c.droppable)) &&
           (v.version < 3 || (v.array(c.cluster) && v.i64(c.broker_in_time) && v.i64(c.broker_out_time))) &&
           (v.version < 10 || v.boolean(c.jmsx_group_first_for_consumer)) &&
           (c.data_structure_type != type::activemq_blob_message ||
            (v.string(c.remote_blob_url) && v.string(c.mime_type) && v.boolean(c.deleted_by_broker)));
}

template <class V, class C>
bool response_fields(V& v, C& c) {
    return base_fields(v, c) && v.i32(c.correlation_id);
}

template <class V, class C>
bool exception_response_fields(V& v, C& c) {
    return response_fields(v, c) && v.throwable(c.exception);
}

template <class V, class C>
bool data_response_fields(V& v, C& c) {
    return response_fields(v, c) && v.any(c.data);
}

template <class V, class C>
bool integer_response_fields(V& v, C& c) {
    return response_fields(v, c) && v.i32(c.result);
}

template <class V, class C>
bool message_dispatch_notification_fields(V& v, C& c) {
    return base_fields(v, c) && v.cached(c.consumer_id) && v.cached(c.destination) && v.i64(c.delivery_sequence_id) &&
           v.nested(c.message_id);
}

// Ids, destinations, transaction ids.
template <class V, class F>
bool flat_body(V& v, F& f) {
    switch (f.type) {
    case type::connection_id:
    case type::broker_id:
    case type::activemq_queue:
    case type::activemq_topic:
    case type::activemq_temp_queue:
    case type::activemq_temp_topic:
        return v.string(f.s1);
    case type::session_id:
        return v.string(f.s1) && v.i64(f.a);
    case type::consumer_id:
    case type::producer_id:
        return v.string(f.s1) && v.i64(f.a) && v.i64(f.b);
    case type::local_transaction_id:
        return v.i64(f.a) && v.inner_connection(f);
    case type::xa_transaction_id: {
        return v.i32(f.fmt) && v.bytes_sv(f.s1) && v.bytes_sv(f.s2);
    }
    default:
        return v.fail(unexpected_type);
    }
}

// Whether a type exists in version v (ActiveMQ's MarshallerFactory of that version).
bool in_version(std::uint8_t t, std::int32_t v) noexcept {
    if (t == type::message_pull) return v >= 2;
    if (t == type::producer_ack || t == type::activemq_blob_message) return v >= 3;
    return true;
}

// The marshall-aware types get one more bit when nested in tight encoding (ActiveMQ's
// "cached marshalled form", never used).
bool marshall_aware(std::uint8_t t) noexcept { return is_message_type(t) || t == type::wire_format_info; }

// Runs the field list of whatever `d` holds.
template <class V>
bool any_fields(V& v, const data_structure& d) {
    return std::visit(
        [&](const auto& x) -> bool {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, wire_format_info>) return wire_format_info_fields(v, x);
            else if constexpr (std::is_same_v<T, broker_info>) return broker_info_fields(v, x);
            else if constexpr (std::is_same_v<T, connection_info>) return connection_info_fields(v, x);
            else if constexpr (std::is_same_v<T, session_info>) return session_info_fields(v, x);
            else if constexpr (std::is_same_v<T, consumer_info>) return consumer_info_fields(v, x);
            else if constexpr (std::is_same_v<T, producer_info>) return producer_info_fields(v, x);
            else if constexpr (std::is_same_v<T, transaction_info>) return transaction_info_fields(v, x);
            else if constexpr (std::is_same_v<T, destination_info>) return destination_info_fields(v, x);
            else if constexpr (std::is_same_v<T, remove_subscription_info>) return remove_subscription_info_fields(v, x);
            else if constexpr (std::is_same_v<T, keep_alive_info> || std::is_same_v<T, shutdown_info> ||
                               std::is_same_v<T, flush_command>) return base_fields(v, x);
            else if constexpr (std::is_same_v<T, remove_info>) return remove_info_fields(v, x);
            else if constexpr (std::is_same_v<T, control_command>) return control_command_fields(v, x);
            else if constexpr (std::is_same_v<T, connection_error>) return connection_error_fields(v, x);
            else if constexpr (std::is_same_v<T, consumer_control>) return consumer_control_fields(v, x);
            else if constexpr (std::is_same_v<T, connection_control>) return connection_control_fields(v, x);
            else if constexpr (std::is_same_v<T, producer_ack>) return producer_ack_fields(v, x);
            else if constexpr (std::is_same_v<T, message_pull>) return message_pull_fields(v, x);
            else if constexpr (std::is_same_v<T, message_dispatch>) return message_dispatch_fields(v, x);
            else if constexpr (std::is_same_v<T, message_ack>) return message_ack_fields(v, x);
            else if constexpr (std::is_same_v<T, message>) return message_fields(v, x);
            else if constexpr (std::is_same_v<T, exception_response>) return exception_response_fields(v, x);
            else if constexpr (std::is_same_v<T, data_response>) return data_response_fields(v, x);
            else if constexpr (std::is_same_v<T, integer_response>) return integer_response_fields(v, x);
            else if constexpr (std::is_same_v<T, response>) return response_fields(v, x);
            else if constexpr (std::is_same_v<T, message_dispatch_notification>) return message_dispatch_notification_fields(v, x);
            else if constexpr (std::is_same_v<T, message_id>) return message_id_body(v, x);
            else {
                const flat f = to_flat(x);
                return flat_body(v, f);
            }
        },
        d.value);
}

// Decodes the fields of type `t` into `d`.
template <class V>
bool read_any_fields(V& v, std::uint8_t t, data_structure& d) {
    switch (t) {
    case type::wire_format_info: return wire_format_info_fields(v, d.value.emplace<wire_format_info>());
    case type::broker_info: return broker_info_fields(v, d.value.emplace<broker_info>());
    case type::connection_info: return connection_info_fields(v, d.value.emplace<connection_info>());
    case type::session_info: return session_info_fields(v, d.value.emplace<session_info>());
    case type::consumer_info: return consumer_info_fields(v, d.value.emplace<consumer_info>());
    case type::producer_info: return producer_info_fields(v, d.value.emplace<producer_info>());
    case type::transaction_info: return transaction_info_fields(v, d.value.emplace<transaction_info>());
    case type::destination_info: return destination_info_fields(v, d.value.emplace<destination_info>());
    case type::remove_subscription_info: return remove_subscription_info_fields(v, d.value.emplace<remove_subscription_info>());
    case type::keep_alive_info: return base_fields(v, d.value.emplace<keep_alive_info>());
    case type::shutdown_info: return base_fields(v, d.value.emplace<shutdown_info>());
    case type::remove_info: return remove_info_fields(v, d.value.emplace<remove_info>());
    case type::control_command: return control_command_fields(v, d.value.emplace<control_command>());
    case type::flush_command: return base_fields(v, d.value.emplace<flush_command>());
    case type::connection_error: return connection_error_fields(v, d.value.emplace<connection_error>());
    case type::consumer_control: return consumer_control_fields(v, d.value.emplace<consumer_control>());
    case type::connection_control: return connection_control_fields(v, d.value.emplace<connection_control>());
    case type::producer_ack: return producer_ack_fields(v, d.value.emplace<producer_ack>());
    case type::message_pull: return message_pull_fields(v, d.value.emplace<message_pull>());
    case type::message_dispatch: return message_dispatch_fields(v, d.value.emplace<message_dispatch>());
    case type::message_ack: return message_ack_fields(v, d.value.emplace<message_ack>());
    case type::response: return response_fields(v, d.value.emplace<response>());
    case type::exception_response: return exception_response_fields(v, d.value.emplace<exception_response>());
    case type::data_response: return data_response_fields(v, d.value.emplace<data_response>());
    case type::integer_response: return integer_response_fields(v, d.value.emplace<integer_response>());
    case type::message_dispatch_notification:
        return message_dispatch_notification_fields(v, d.value.emplace<message_dispatch_notification>());
    case type::message_id: return message_id_body(v, d.value.emplace<message_id>());
    default: break;
    }
    if (is_message_type(t)) {
        auto& m = d.value.emplace<message>();
        m.data_structure_type = t;
        return message_fields(v, m);
    }
    if (is_flat_type(t)) {
        flat f;
        f.type = t;
        if (!flat_body(v, f)) return false;
        switch (t) {
        case type::connection_id: from_flat(f, d.value.emplace<connection_id>()); break;
        case type::session_id: from_flat(f, d.value.emplace<session_id>()); break;
        case type::consumer_id: from_flat(f, d.value.emplace<consumer_id>()); break;
        case type::producer_id: from_flat(f, d.value.emplace<producer_id>()); break;
        case type::broker_id: from_flat(f, d.value.emplace<broker_id>()); break;
        case type::local_transaction_id: {
            transaction_id x;
            from_flat(f, x);
            d.value.emplace<local_transaction_id>(std::get<local_transaction_id>(x));
            break;
        }
        case type::xa_transaction_id: {
            transaction_id x;
            from_flat(f, x);
            d.value.emplace<xa_transaction_id>(std::get<xa_transaction_id>(x));
            break;
        }
        default: from_flat(f, d.value.emplace<destination>()); break;
        }
        return true;
    }
    return v.fail(unknown_type);
}

// ---------------------------------------------------------------------------------------------
// Visitors: common state

struct visitor_base {
    impl& im;
    std::int32_t version;
    bool cache;
    bool stack;
    const limits& lim;
    std::size_t depth = 0;
    std::string_view err{};

    bool fail(std::string_view why) noexcept {
        if (err.empty()) err = why;
        return false;
    }
    bool enter() noexcept { return ++depth <= lim.max_nesting || fail(too_deep); }
    void leave() noexcept { --depth; }
};

// ---------------------------------------------------------------------------------------------
// Encoding

// The BooleanStream being written: bits from the lowest of each byte up, gathered 64 at a time
// in a word (little-endian, so its bytes are the stream's bytes).
struct bit_writer {
    std::vector<std::uint8_t>& data;
    std::uint64_t word = 0;
    std::size_t n = 0;
    SB_OW_INLINE void put(bool b) {
        word |= std::uint64_t{b} << (n & 63);
        if ((++n & 63) == 0) store();
    }
    void store() {
        const std::size_t at = ((n - 1) >> 6) << 3;
        if (data.size() < at + 8) data.resize(std::max(at + 8, data.size() * 2));
        for (int i = 0; i < 8; ++i) data[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(word >> (8 * i));
        word = 0;
    }
    // The last partial word, then the stream's length in bytes.
    std::size_t finish() {
        if (n & 63) store();
        return (n + 7) >> 3;
    }
};

// Tight pass one: the BooleanStream, and the marshall cache entries (as ActiveMQ's
// tightMarshal1 makes them: a value's nested cached values before the value itself).
struct tight_bits : visitor_base {
    bit_writer bs;
    std::vector<std::int16_t>& idx;

    bool boolean(bool x) { bs.put(x); return true; }
    bool i8(std::int8_t) { return true; }
    bool i32(std::int32_t) { return true; }
    bool i64(std::int64_t x) {
        const auto u = static_cast<std::uint64_t>(x);
        if (u == 0) { bs.put(false); bs.put(false); }
        else if ((u & 0xFFFFFFFFFFFF0000ull) == 0) { bs.put(false); bs.put(true); }
        else if ((u & 0xFFFFFFFF00000000ull) == 0) { bs.put(true); bs.put(false); }
        else { bs.put(true); bs.put(true); }
        return true;
    }
    bool string(std::string_view s) {
        bs.put(!is_null(s));
        if (is_null(s)) return true;
        const utf_measure m = measure(s);
        if (m.modified >= 32767) return fail(string_too_long);
        bs.put(m.ascii);
        return true;
    }
    bool bytes(openwire::bytes b) { bs.put(!is_null(b)); return true; }
    bool bytes_sv(std::string_view b) { bs.put(!is_null(b)); return true; }
    bool magic(openwire::bytes) { return true; }

    bool flat_nested(const flat& f) {
        bs.put(f.type != 0);
        if (f.type == 0) return true;
        if (!enter()) return false;
        const bool ok = flat_body(*this, f);
        leave();
        return ok;
    }
    bool flat_cached(const flat& f) {
        if (!cache) return flat_nested(f);
        if (auto i = im.out_find(f)) {
            bs.put(false);
            idx.push_back(*i);
            return true;
        }
        bs.put(true);
        const std::size_t at = idx.size();
        idx.push_back(0);
        if (!flat_nested(f)) return false;
        idx[at] = im.out_add(f);
        return true;
    }
    bool inner_connection(const flat& f) {
        flat c;
        if (f.inner) { c.type = type::connection_id; c.s1 = f.s2; }
        return flat_cached(c);
    }
    template <class T>
    bool cached(const T& x) { return flat_cached(to_flat(x)); }
    template <class T>
    bool nested(const std::optional<T>& x) {
        if constexpr (std::is_same_v<T, message_id>) {
            bs.put(x.has_value());
            if (!x) return true;
            if (!enter()) return false;
            const bool ok = message_id_body(*this, *x);
            leave();
            return ok;
        } else {
            return flat_nested(to_flat(x));
        }
    }
    bool any_nested(const data_structure* d, std::uint8_t t) {
        bs.put(d != nullptr);
        if (!d) return true;
        if (!in_version(t, version)) return fail(not_in_version);
        if (marshall_aware(t)) bs.put(false);
        if (!enter()) return false;
        const bool ok = any_fields(*this, *d);
        leave();
        return ok;
    }
    bool any(const data_structure* d) { return any_nested(d, d ? type_of(*d) : 0); }
    bool message(const openwire::message* m) {
        bs.put(m != nullptr);
        if (!m) return true;
        if (!in_version(m->data_structure_type, version)) return fail(not_in_version);
        bs.put(false);   // marshall-aware
        if (!enter()) return false;
        const bool ok = message_fields(*this, *m);
        leave();
        return ok;
    }
    template <class T>
    bool array(const std::optional<std::vector<T>>& a) {
        bs.put(a.has_value());
        if (!a) return true;
        if (a->size() > 32767) return fail(too_long_array);
        for (const auto& e : *a) {
            if constexpr (std::is_same_v<T, broker_info>) {
                bs.put(true);
                if (!enter()) return false;
                const bool ok = broker_info_fields(*this, e);
                leave();
                if (!ok) return false;
            } else {
                if (!flat_nested(to_flat(e))) return false;
            }
        }
        return true;
    }
    bool throwable(const openwire::throwable* t) {
        bs.put(t != nullptr);
        if (!t) return true;
        if (!enter()) return false;
        bool ok = string(t->class_name) && string(t->message);
        if (ok && stack) {
            if (t->stack_trace.size() > 32767) ok = fail(too_long_array);
            for (std::size_t i = 0; ok && i < t->stack_trace.size(); ++i) {
                const auto& e = t->stack_trace[i];
                ok = string(e.declaring_class) && string(e.method_name) && string(e.file_name);
            }
            ok = ok && throwable(t->cause);
        }
        leave();
        return ok;
    }
};

struct bit_reader {
    const std::uint8_t* data = nullptr;
    std::size_t n = 0;
    std::size_t pos = 0;
    SB_OW_INLINE bool get(bool& b) noexcept {
        if (pos >= n) return false;
        b = (data[pos >> 3] >> (pos & 7)) & 1;
        ++pos;
        return true;
    }
};

// Writes a string as writeUTF does (length, modified UTF-8), or the ASCII form.
template <class Out>
bool write_utf(Out& out, std::string_view s, std::size_t limit) {
    const utf_measure m = measure(s);
    if (m.modified > limit) return false;
    put16(out, static_cast<std::uint16_t>(m.modified));
    if (m.same) out.append(s);
    else write_modified(s, out);
    return true;
}

// Tight pass two: the data, reading pass one's bits back as ActiveMQ's tightMarshal2 does.
struct tight_data : visitor_base {
    bit_reader bs;
    const std::vector<std::int16_t>& idx;
    std::size_t next_idx = 0;
    sink& out;

    SB_OW_INLINE bool bit() {
        bool b = false;
        bs.get(b);
        return b;
    }
    bool boolean(bool) { bit(); return true; }
    bool i8(std::int8_t x) { put8(out, static_cast<std::uint8_t>(x)); return true; }
    bool i32(std::int32_t x) { put32(out, static_cast<std::uint32_t>(x)); return true; }
    bool i64(std::int64_t x) {
        const auto u = static_cast<std::uint64_t>(x);
        if (bit()) {
            if (bit()) put64(out, u);
            else put32(out, static_cast<std::uint32_t>(u));
        } else if (bit()) {
            put16(out, static_cast<std::uint16_t>(u));
        }
        return true;
    }
    bool string(std::string_view s) {
        if (!bit()) return true;
        if (bit()) {
            put16(out, static_cast<std::uint16_t>(s.size()));
            out.append(s);
            return true;
        }
        return write_utf(out, s, 65535) || fail(string_too_long);
    }
    bool bytes(openwire::bytes b) {
        if (!bit()) return true;
        put32(out, static_cast<std::uint32_t>(b.size()));
        out.append(as_sv(b));
        return true;
    }
    bool bytes_sv(std::string_view b) { return bytes(as_bytes(b)); }
    bool magic(openwire::bytes b) {
        if (b.size() == 8) out.append(as_sv(b));
        else out.append(reinterpret_cast<const char*>(openwire_magic), 8);
        return true;
    }
    bool flat_nested(const flat& f) {
        if (!bit()) return true;
        put8(out, f.type);
        return flat_body(*this, f);
    }
    bool flat_cached(const flat& f) {
        if (!cache) return flat_nested(f);
        const std::int16_t i = idx[next_idx++];
        put16(out, static_cast<std::uint16_t>(i));
        if (bit()) return flat_nested(f);
        return true;
    }
    bool inner_connection(const flat& f) {
        flat c;
        if (f.inner) { c.type = type::connection_id; c.s1 = f.s2; }
        return flat_cached(c);
    }
    template <class T>
    bool cached(const T& x) { return flat_cached(to_flat(x)); }
    template <class T>
    bool nested(const std::optional<T>& x) {
        if constexpr (std::is_same_v<T, message_id>) {
            if (!bit()) return true;
            put8(out, type::message_id);
            return message_id_body(*this, *x);
        } else {
            return flat_nested(to_flat(x));
        }
    }
    bool any(const data_structure* d) {
        if (!bit()) return true;
        const std::uint8_t t = type_of(*d);
        put8(out, t);
        if (marshall_aware(t)) bit();
        return any_fields(*this, *d);
    }
    bool message(const openwire::message* m) {
        if (!bit()) return true;
        put8(out, m->data_structure_type);
        bit();
        return message_fields(*this, *m);
    }
    template <class T>
    bool array(const std::optional<std::vector<T>>& a) {
        if (!bit()) return true;
        put16(out, static_cast<std::uint16_t>(a->size()));
        for (const auto& e : *a) {
            if constexpr (std::is_same_v<T, broker_info>) {
                bit();
                put8(out, type::broker_info);
                if (!broker_info_fields(*this, e)) return false;
            } else {
                if (!flat_nested(to_flat(e))) return false;
            }
        }
        return true;
    }
    bool throwable(const openwire::throwable* t) {
        if (!bit()) return true;
        if (!string(t->class_name) || !string(t->message)) return false;
        if (stack) {
            put16(out, static_cast<std::uint16_t>(t->stack_trace.size()));
            for (const auto& e : t->stack_trace) {
                if (!string(e.declaring_class) || !string(e.method_name) || !string(e.file_name)) return false;
                put32(out, static_cast<std::uint32_t>(e.line_number));
            }
            return throwable(t->cause);
        }
        return true;
    }
};

// Loose: everything in order, booleans as bytes, longs as 8 bytes.
struct loose_writer : visitor_base {
    sink& out;

    bool boolean(bool x) { put8(out, x ? 1 : 0); return true; }
    bool i8(std::int8_t x) { put8(out, static_cast<std::uint8_t>(x)); return true; }
    bool i32(std::int32_t x) { put32(out, static_cast<std::uint32_t>(x)); return true; }
    bool i64(std::int64_t x) { put64(out, static_cast<std::uint64_t>(x)); return true; }
    bool string(std::string_view s) {
        boolean(!is_null(s));
        if (is_null(s)) return true;
        return write_utf(out, s, 65535) || fail(string_too_long);
    }
    bool bytes(openwire::bytes b) {
        boolean(!is_null(b));
        if (is_null(b)) return true;
        put32(out, static_cast<std::uint32_t>(b.size()));
        out.append(as_sv(b));
        return true;
    }
    bool bytes_sv(std::string_view b) { return bytes(as_bytes(b)); }
    bool magic(openwire::bytes b) {
        if (b.size() == 8) out.append(as_sv(b));
        else out.append(reinterpret_cast<const char*>(openwire_magic), 8);
        return true;
    }
    bool flat_nested(const flat& f) {
        boolean(f.type != 0);
        if (f.type == 0) return true;
        if (!enter()) return false;
        put8(out, f.type);
        const bool ok = flat_body(*this, f);
        leave();
        return ok;
    }
    bool flat_cached(const flat& f) {
        if (!cache) return flat_nested(f);
        if (auto i = im.out_find(f)) {
            boolean(false);
            put16(out, static_cast<std::uint16_t>(*i));
            return true;
        }
        boolean(true);
        put16(out, static_cast<std::uint16_t>(im.out_add(f)));
        return flat_nested(f);
    }
    bool inner_connection(const flat& f) {
        flat c;
        if (f.inner) { c.type = type::connection_id; c.s1 = f.s2; }
        return flat_cached(c);
    }
    template <class T>
    bool cached(const T& x) { return flat_cached(to_flat(x)); }
    template <class T>
    bool nested(const std::optional<T>& x) {
        if constexpr (std::is_same_v<T, message_id>) {
            boolean(x.has_value());
            if (!x) return true;
            put8(out, type::message_id);
            if (!enter()) return false;
            const bool ok = message_id_body(*this, *x);
            leave();
            return ok;
        } else {
            return flat_nested(to_flat(x));
        }
    }
    bool any(const data_structure* d) {
        boolean(d != nullptr);
        if (!d) return true;
        const std::uint8_t t = type_of(*d);
        if (!in_version(t, version)) return fail(not_in_version);
        put8(out, t);
        if (!enter()) return false;
        const bool ok = any_fields(*this, *d);
        leave();
        return ok;
    }
    bool message(const openwire::message* m) {
        boolean(m != nullptr);
        if (!m) return true;
        if (!in_version(m->data_structure_type, version)) return fail(not_in_version);
        put8(out, m->data_structure_type);
        if (!enter()) return false;
        const bool ok = message_fields(*this, *m);
        leave();
        return ok;
    }
    template <class T>
    bool array(const std::optional<std::vector<T>>& a) {
        boolean(a.has_value());
        if (!a) return true;
        if (a->size() > 32767) return fail(too_long_array);
        put16(out, static_cast<std::uint16_t>(a->size()));
        for (const auto& e : *a) {
            if constexpr (std::is_same_v<T, broker_info>) {
                boolean(true);
                put8(out, type::broker_info);
                if (!enter()) return false;
                const bool ok = broker_info_fields(*this, e);
                leave();
                if (!ok) return false;
            } else {
                if (!flat_nested(to_flat(e))) return false;
            }
        }
        return true;
    }
    bool throwable(const openwire::throwable* t) {
        boolean(t != nullptr);
        if (!t) return true;
        if (!enter()) return false;
        bool ok = string(t->class_name) && string(t->message);
        if (ok && stack) {
            if (t->stack_trace.size() > 32767) ok = fail(too_long_array);
            if (ok) put16(out, static_cast<std::uint16_t>(t->stack_trace.size()));
            for (std::size_t i = 0; ok && i < t->stack_trace.size(); ++i) {
                const auto& e = t->stack_trace[i];
                ok = string(e.declaring_class) && string(e.method_name) && string(e.file_name);
                if (ok) put32(out, static_cast<std::uint32_t>(e.line_number));
            }
            ok = ok && throwable(t->cause);
        }
        leave();
        return ok;
    }
};

// ---------------------------------------------------------------------------------------------
// Decoding

struct byte_reader {
    const std::uint8_t* p;
    const std::uint8_t* end;
    bool short_input = false;   // ran past `end`

    std::size_t left() const noexcept { return static_cast<std::size_t>(end - p); }
    bool need(std::size_t n) noexcept {
        if (left() >= n) return true;
        short_input = true;
        return false;
    }
};

// What both readers share: strings, the cache, the pools.
struct reader_base : visitor_base {
    byte_reader in;

    bool need(std::size_t n) { return in.need(n) || fail(truncated); }
    bool u8(std::uint8_t& x) {
        if (!need(1)) return false;
        x = *in.p++;
        return true;
    }
    bool i8(std::int8_t& x) {
        std::uint8_t b = 0;
        if (!u8(b)) return false;
        x = static_cast<std::int8_t>(b);
        return true;
    }
    bool u16(std::uint16_t& x) {
        if (!need(2)) return false;
        x = get16(in.p);
        in.p += 2;
        return true;
    }
    bool i32(std::int32_t& x) {
        if (!need(4)) return false;
        x = static_cast<std::int32_t>(get32(in.p));
        in.p += 4;
        return true;
    }
    bool raw64(std::int64_t& x) {
        if (!need(8)) return false;
        x = static_cast<std::int64_t>(get64(in.p));
        in.p += 8;
        return true;
    }
    // n bytes of modified UTF-8 as UTF-8.
    bool utf(std::size_t n, std::string_view& s) {
        if (!need(n)) return false;
        const std::string_view raw = as_sv(in.p, n);
        in.p += n;
        switch (classify_modified(raw)) {
        case utf_class::as_is: s = raw.data() ? raw : empty_string; return true;
        case utf_class::malformed: return fail(bad_utf);
        case utf_class::convert: break;
        }
        std::string conv;
        convert_modified(raw, conv);
        im.scratch.push_back(std::move(conv));
        s = im.scratch.back();
        if (s.data() == nullptr) s = empty_string;
        return true;
    }
    // The ASCII form of a tight string: bytes taken as Latin-1 (as `new String(bytes, 0)`).
    bool latin1(std::size_t n, std::string_view& s) {
        if (!need(n)) return false;
        const std::string_view raw = as_sv(in.p, n);
        in.p += n;
        if (std::none_of(raw.begin(), raw.end(), [](char c) { return static_cast<std::uint8_t>(c) >= 0x80; })) {
            s = raw.data() ? raw : empty_string;
            return true;
        }
        std::string conv;
        for (char c : raw) append_utf8(conv, static_cast<std::uint8_t>(c));
        im.scratch.push_back(std::move(conv));
        s = im.scratch.back();
        return true;
    }
    bool len_bytes(std::string_view& s) {
        std::int32_t n = 0;
        if (!i32(n)) return false;
        if (n < 0) return fail(negative_length);
        if (!need(static_cast<std::size_t>(n))) return false;
        s = as_sv(in.p, static_cast<std::size_t>(n));
        if (s.data() == nullptr) s = empty_string;
        in.p += n;
        return true;
    }
    bool magic(openwire::bytes& b) {
        if (!need(8)) return false;
        b = {in.p, 8};
        in.p += 8;
        return true;
    }
    // A cache slot's value.
    bool cache_get(std::int16_t index, flat& f) {
        if (im.in_cache.empty()) return fail(cache_off);
        if (index < 0 || static_cast<std::size_t>(index) >= im.in_cache.size()) return fail(cache_range);
        const auto& slot = im.in_cache[static_cast<std::size_t>(index)];
        f = slot ? slot->view() : flat{};
        return true;
    }
    bool cache_set(std::int16_t index, const flat& f) {
        if (index == -1) return true;   // the sender's cache was full: not cached
        if (im.in_cache.empty()) return fail(cache_off);
        if (index < 0 || static_cast<std::size_t>(index) >= im.in_cache.size()) return fail(cache_range);
        im.in_set(index, f);
        return true;
    }
    template <class T>
    bool check(const flat& f) {
        return f.type == 0 || accepts<T>(f.type) || fail(unexpected_type);
    }
    bool array_length(std::int16_t n) {
        if (n < 0) return fail(negative_length);
        if (static_cast<std::size_t>(n) > lim.max_array_length) return fail(too_long_array);
        return true;
    }
};

// The walks both readers share, written once over the reader's flag source: `Self::boolean`
// is a bit of the BooleanStream (tight) or a byte in line (loose). Everything else that differs
// (longs, strings, the marshall-aware bit of a nested object) is the reader's own. Static
// dispatch through `self()`: each reader gets its own copy, as fast as one written by hand.
template <class Self>
struct field_reader : reader_base {
    SB_OW_INLINE Self& self() { return static_cast<Self&>(*this); }

    bool bytes(openwire::bytes& b) {
        bool present = false;
        if (!self().boolean(present)) return false;
        if (!present) { b = {}; return true; }
        std::string_view s;
        if (!len_bytes(s)) return false;
        b = as_bytes(s);
        return true;
    }
    bool bytes_sv(std::string_view& b) {
        openwire::bytes x;
        if (!bytes(x)) return false;
        b = as_sv(x);
        return true;
    }
    // A nested value that must be one of the flat types `ok` accepts.
    template <class Accept>
    bool flat_nested(flat& f, Accept ok) {
        bool present = false;
        if (!self().boolean(present)) return false;
        if (!present) { f = {}; return true; }
        std::uint8_t t = 0;
        if (!u8(t)) return false;
        if (!ok(t)) return fail(is_flat_type(t) || is_message_type(t) ? unexpected_type : unknown_type);
        if (!enter()) return false;
        f = {};
        f.type = t;
        const bool r = flat_body(self(), f);
        leave();
        return r;
    }
    template <class Accept>
    bool flat_cached(flat& f, Accept ok) {
        if (!cache) return flat_nested(f, ok);
        bool fresh = false;
        if (!self().boolean(fresh)) return false;
        std::uint16_t i = 0;
        if (!u16(i)) return false;
        const auto index = static_cast<std::int16_t>(i);
        if (fresh) {
            if (!flat_nested(f, ok)) return false;
            return cache_set(index, f);
        }
        if (!cache_get(index, f)) return false;
        return f.type == 0 || ok(f.type) || fail(unexpected_type);
    }
    bool inner_connection(flat& f) {
        flat c;
        if (!flat_cached(c, accepts<connection_id>)) return false;
        f.inner = c.type;
        f.s2 = c.s1;
        return true;
    }
    template <class T>
    bool cached(T& x) {
        flat f;
        using V = typename unwrap<T>::type;
        if (!flat_cached(f, accepts<V>)) return false;
        assign(f, x);
        return true;
    }
    template <class T>
    bool nested(std::optional<T>& x) {
        if constexpr (std::is_same_v<T, message_id>) {
            bool present = false;
            if (!self().boolean(present)) return false;
            if (!present) { x.reset(); return true; }
            std::uint8_t t = 0;
            if (!u8(t)) return false;
            if (t != type::message_id) return fail(unexpected_type);
            if (!enter()) return false;
            const bool r = message_id_body(self(), x.emplace());
            leave();
            return r;
        } else {
            flat f;
            if (!flat_nested(f, accepts<T>)) return false;
            assign(f, x);
            return true;
        }
    }
    // Any data structure, into the pool.
    bool any_into(const data_structure*& d, bool messages_only) {
        bool present = false;
        if (!self().boolean(present)) return false;
        if (!present) { d = nullptr; return true; }
        std::uint8_t t = 0;
        if (!u8(t)) return false;
        if (messages_only && !is_message_type(t)) return fail(unexpected_type);
        if (!in_version(t, version)) return fail(unknown_type);
        if (!self().marshall_aware_prefix(t)) return false;
        if (!enter()) return false;
        data_structure& slot = im.next_nested();
        const bool r = read_any_fields(self(), t, slot);
        leave();
        d = &slot;
        return r;
    }
    bool any(const data_structure*& d) { return any_into(d, false); }
    bool message(const openwire::message*& m) {
        const data_structure* d = nullptr;
        if (!any_into(d, true)) return false;
        m = d ? &std::get<openwire::message>(d->value) : nullptr;
        return true;
    }
    template <class T>
    bool array(std::optional<std::vector<T>>& a) {
        bool present = false;
        if (!self().boolean(present)) return false;
        if (!present) { a.reset(); return true; }
        std::uint16_t n = 0;
        if (!u16(n) || !array_length(static_cast<std::int16_t>(n))) return false;
        auto& v = a.emplace();
        v.reserve(std::min<std::size_t>(n, in.left()));
        for (std::uint16_t i = 0; i < n; ++i) {
            if constexpr (std::is_same_v<T, broker_info>) {
                bool p = false;
                if (!self().boolean(p)) return false;
                if (!p) return fail(null_element);
                std::uint8_t t = 0;
                if (!u8(t)) return false;
                if (t != type::broker_info) return fail(unexpected_type);
                if (!enter()) return false;
                const bool r = broker_info_fields(self(), v.emplace_back());
                leave();
                if (!r) return false;
            } else {
                flat f;
                if (!flat_nested(f, accepts<T>)) return false;
                if (f.type == 0) return fail(null_element);
                from_flat(f, v.emplace_back());
            }
        }
        return true;
    }
    bool throwable(const openwire::throwable*& t) {
        bool present = false;
        if (!self().boolean(present)) return false;
        if (!present) { t = nullptr; return true; }
        if (!enter()) return false;
        auto& x = im.next_throwable();
        t = &x;
        bool ok = self().string(x.class_name) && self().string(x.message);
        if (ok && stack) {
            std::uint16_t n = 0;
            ok = u16(n) && array_length(static_cast<std::int16_t>(n));
            if (ok) x.stack_trace.reserve(std::min<std::size_t>(n, in.left()));
            for (std::uint16_t i = 0; ok && i < n; ++i) {
                auto& e = x.stack_trace.emplace_back();
                ok = self().string(e.declaring_class) && self().string(e.method_name) &&
                     self().string(e.file_name) && i32(e.line_number);
            }
            ok = ok && throwable(x.cause);
        }
        leave();
        return ok;
    }
};

struct tight_reader : field_reader<tight_reader> {
    bit_reader bs;

    SB_OW_INLINE bool bit(bool& b) { return bs.get(b) || fail(bits_overrun); }
    SB_OW_INLINE bool boolean(bool& x) { return bit(x); }
    bool i64(std::int64_t& x) {
        bool b1 = false, b2 = false;
        if (!bit(b1) || !bit(b2)) return false;
        if (b1) {
            if (b2) return raw64(x);
            std::int32_t v = 0;
            if (!i32(v)) return false;
            x = static_cast<std::int64_t>(static_cast<std::uint32_t>(v));
            return true;
        }
        if (b2) {
            std::uint16_t v = 0;
            if (!u16(v)) return false;
            x = v;
            return true;
        }
        x = 0;
        return true;
    }
    bool string(std::string_view& s) {
        bool present = false;
        if (!bit(present)) return false;
        if (!present) { s = {}; return true; }
        bool ascii = false;
        if (!bit(ascii)) return false;
        std::uint16_t n = 0;
        if (!u16(n)) return false;
        if (ascii) {
            if (n & 0x8000) return fail(negative_length);   // readShort, as ActiveMQ
            return latin1(n, s);
        }
        return utf(n, s);
    }
    // Tight only: a marshall-aware type's "cached marshalled form" bit, which we never accept.
    bool marshall_aware_prefix(std::uint8_t t) {
        if (!marshall_aware(t)) return true;
        bool cached_form_bit = false;
        if (!bit(cached_form_bit)) return false;
        return !cached_form_bit || fail(cached_form);
    }
};

struct loose_reader : field_reader<loose_reader> {
    SB_OW_INLINE bool boolean(bool& x) {
        std::uint8_t b = 0;
        if (!u8(b)) return false;
        x = b != 0;
        return true;
    }
    bool i64(std::int64_t& x) { return raw64(x); }
    bool string(std::string_view& s) {
        bool present = false;
        if (!boolean(present)) return false;
        if (!present) { s = {}; return true; }
        std::uint16_t n = 0;
        return u16(n) && utf(n, s);
    }
    static bool marshall_aware_prefix(std::uint8_t) { return true; }
};

}  // namespace

// ---------------------------------------------------------------------------------------------

static_assert(std::variant_size_v<decltype(data_structure::value)> == 36, "type_of lists every alternative");

std::uint8_t type_of(const data_structure& d) noexcept {
    switch (d.value.index()) {
    case 0: return type::wire_format_info;
    case 1: return type::broker_info;
    case 2: return type::connection_info;
    case 3: return type::session_info;
    case 4: return type::consumer_info;
    case 5: return type::producer_info;
    case 6: return type::transaction_info;
    case 7: return type::destination_info;
    case 8: return type::remove_subscription_info;
    case 9: return type::keep_alive_info;
    case 10: return type::shutdown_info;
    case 11: return type::remove_info;
    case 12: return type::control_command;
    case 13: return type::flush_command;
    case 14: return type::connection_error;
    case 15: return type::consumer_control;
    case 16: return type::connection_control;
    case 17: return type::producer_ack;
    case 18: return type::message_pull;
    case 19: return type::message_dispatch;
    case 20: return type::message_ack;
    case 21: return std::get<message>(d.value).data_structure_type;
    case 22: return type::response;
    case 23: return type::exception_response;
    case 24: return type::data_response;
    case 25: return type::integer_response;
    case 26: return type::message_dispatch_notification;
    case 27: return std::get<destination>(d.value).type;
    case 28: return type::message_id;
    case 29: return type::local_transaction_id;
    case 30: return type::xa_transaction_id;
    case 31: return type::connection_id;
    case 32: return type::session_id;
    case 33: return type::consumer_id;
    case 34: return type::producer_id;
    case 35: return type::broker_id;
    }
    return type::null;
}

wire_format::wire_format(const limits& l, std::int32_t version)
    : version_(std::clamp(version, min_version, max_version)), max_frame_size_(l.max_frame_size), limits_(l),
      impl_(std::make_unique<impl>()) {}
wire_format::~wire_format() = default;

void wire_format::apply(const negotiated& n) {
    version_ = std::clamp(n.version, min_version, max_version);
    tight_ = n.tight_encoding;
    cache_size_ = n.cache_enabled ? (n.cache_size <= 0 || n.cache_size > max_cache_size ? max_cache_size : n.cache_size) : 0;
    size_prefix_disabled_ = n.size_prefix_disabled;
    stack_trace_ = n.stack_trace_enabled;
    max_frame_size_ = limits_.max_frame_size;
    if (n.max_frame_size > 0 && static_cast<std::uint64_t>(n.max_frame_size) < max_frame_size_)
        max_frame_size_ = static_cast<std::size_t>(n.max_frame_size);
    impl_->reset_caches(cache_size_);
}

std::string_view wire_format::keep(std::string&& s) {
    impl_->scratch.push_back(std::move(s));
    return impl_->scratch.back();
}

decode_result wire_format::decode(bytes in) {
    impl& im = *impl_;
    im.begin_decode();
    std::size_t start = 0;
    const std::uint8_t* end = in.data() + in.size();
    if (!size_prefix_disabled_) {
        if (in.size() < 4) return need_more{4};
        const std::uint32_t size = get32(in.data());
        if (size & 0x80000000u) return decode_error{"negative frame size"};
        if (size > max_frame_size_) return decode_error{frame_too_large};
        if (size == 0) return decode_error{"empty frame"};
        if (in.size() - 4 < size) return need_more{4 + static_cast<std::size_t>(size)};
        start = 4;
        end = in.data() + 4 + size;
    }
    const visitor_base base{im, version_, cache_size_ > 0, stack_trace_, limits_};
    byte_reader r{in.data() + start, end};
    std::uint8_t t = 0;
    if (!r.need(1)) return need_more{in.size() + 1};
    t = *r.p++;
    std::string_view err;
    bool short_input = false;
    const std::uint8_t* stop = nullptr;
    if (t == type::null) return decode_error{null_command};
    if (!in_version(t, version_)) return decode_error{unknown_type};
    if (tight_) {
        tight_reader v{{{base, r}}, {}};
        // The BooleanStream: its length (1, 2 or 3 bytes), then the bits.
        std::uint8_t b = 0;
        std::size_t n = 0;
        bool ok = v.u8(b);
        if (ok) {
            n = b;
            if (b == 0xC0) {
                std::uint8_t m = 0;
                ok = v.u8(m);
                n = m;
            } else if (b == 0x80) {
                std::uint16_t m = 0;
                ok = v.u16(m);
                n = m;
                if (ok && (m & 0x8000)) ok = v.fail(negative_length);
            }
        }
        ok = ok && v.need(n);
        if (ok) {
            v.bs = bit_reader{v.in.p, n * 8, 0};
            v.in.p += n;
            ok = read_any_fields(v, t, im.top);
        }
        err = ok ? std::string_view{} : v.err;
        short_input = v.in.short_input;
        stop = v.in.p;
    } else {
        loose_reader v{{{base, r}}};
        const bool ok = read_any_fields(v, t, im.top);
        err = ok ? std::string_view{} : v.err;
        short_input = v.in.short_input;
        stop = v.in.p;
    }
    if (size_prefix_disabled_ && short_input) {
        im.in_undo();
        if (in.size() >= max_frame_size_) return decode_error{frame_too_large};
        return need_more{in.size() + 1};
    }
    if (!err.empty()) {
        im.in_undo();
        return decode_error{err};
    }
    if (!size_prefix_disabled_ && stop != end) {
        im.in_undo();
        return decode_error{trailing};
    }
    const auto consumed = static_cast<std::size_t>(stop - in.data());
    if (size_prefix_disabled_ && consumed > max_frame_size_) {
        im.in_undo();
        return decode_error{frame_too_large};
    }
    return decoded{&im.top, consumed};
}

namespace {

template <class C, class Fields>
std::string_view encode_frame(impl& im, std::int32_t version, bool tight, bool cache, bool stack, bool prefix,
                              std::size_t max_frame, const limits& lim, std::uint8_t t, const C& c, Fields fields,
                              std::string& out) {
    if (!in_version(t, version)) return not_in_version;
    if (cache) im.sweep();
    im.out_begin();
    const std::size_t mark = out.size();
    const visitor_base base{im, version, cache, stack, lim};
    std::string_view err;
    sink o{out};
    if (prefix) put32(o, 0);
    put8(o, t);
    if (tight) {
        im.indexes.clear();
        tight_bits one{base, bit_writer{im.bits}, im.indexes};
        const bool ok = fields(one, c);
        const std::size_t n = one.bs.finish();
        if (!ok) {
            err = one.err;
        } else {
            if (n < 64) {
                put8(o, static_cast<std::uint8_t>(n));
            } else if (n < 256) {
                put8(o, 0xC0);
                put8(o, static_cast<std::uint8_t>(n));
            } else {
                put8(o, 0x80);
                put16(o, static_cast<std::uint16_t>(n));
            }
            o.append(reinterpret_cast<const char*>(im.bits.data()), n);
            tight_data two{base, bit_reader{im.bits.data(), one.bs.n, 0}, im.indexes, 0, o};
            if (!fields(two, c)) err = two.err;
        }
    } else {
        loose_writer w{base, o};
        if (!fields(w, c)) err = w.err;
    }
    o.flush();
    if (err.empty()) {
        const std::size_t size = out.size() - mark - (prefix ? 4 : 0);
        if (size > max_frame) {
            err = frame_too_large;
        } else if (prefix) {
            const auto s = static_cast<std::uint32_t>(size);
            out[mark] = static_cast<char>(s >> 24);
            out[mark + 1] = static_cast<char>(s >> 16);
            out[mark + 2] = static_cast<char>(s >> 8);
            out[mark + 3] = static_cast<char>(s);
        }
    }
    if (!err.empty()) {
        out.resize(mark);
        im.out_rollback();
        return err;
    }
    return {};
}

}  // namespace

#define SB_OW_ENCODE(T, TYPE, FIELDS)                                                                                  \
    std::string_view wire_format::encode(const T& c, std::string& out) {                                              \
        return encode_frame(*impl_, version_, tight_, cache_size_ > 0, stack_trace_, !size_prefix_disabled_,          \
                            max_frame_size_, limits_, TYPE, c, [](auto& v, const T& x) { return FIELDS(v, x); }, out); \
    }

SB_OW_ENCODE(message_dispatch, type::message_dispatch, message_dispatch_fields)
SB_OW_ENCODE(response, type::response, response_fields)
SB_OW_ENCODE(exception_response, type::exception_response, exception_response_fields)
SB_OW_ENCODE(wire_format_info, type::wire_format_info, wire_format_info_fields)
SB_OW_ENCODE(broker_info, type::broker_info, broker_info_fields)
SB_OW_ENCODE(keep_alive_info, type::keep_alive_info, base_fields)
SB_OW_ENCODE(connection_error, type::connection_error, connection_error_fields)
SB_OW_ENCODE(producer_ack, type::producer_ack, producer_ack_fields)
SB_OW_ENCODE(connection_control, type::connection_control, connection_control_fields)
SB_OW_ENCODE(consumer_control, type::consumer_control, consumer_control_fields)
#undef SB_OW_ENCODE

std::string_view wire_format::encode(const message& c, std::string& out) {
    return encode_frame(*impl_, version_, tight_, cache_size_ > 0, stack_trace_, !size_prefix_disabled_, max_frame_size_,
                        limits_, c.data_structure_type, c, [](auto& v, const message& x) { return message_fields(v, x); }, out);
}

std::string_view wire_format::encode(const command& c, std::string& out) {
    return encode_frame(*impl_, version_, tight_, cache_size_ > 0, stack_trace_, !size_prefix_disabled_, max_frame_size_,
                        limits_, type_of(c), c, [](auto& v, const command& x) { return any_fields(v, x); }, out);
}

// ---------------------------------------------------------------------------------------------
// Negotiation

negotiated negotiate(std::int32_t our_version, const wire_format_settings& ours, std::int32_t their_version,
                     const wire_format_settings& theirs) noexcept {
    // OpenWireFormat.min: the smaller of two values, where 0 or less means "unset".
    auto min_set = [](auto a, auto b) { return (a < b && a > 0) || b <= 0 ? a : b; };
    negotiated n;
    n.version = std::clamp(min_set(our_version, their_version), min_version, max_version);
    n.tight_encoding = ours.tight_encoding_enabled && theirs.tight_encoding_enabled;
    n.cache_enabled = ours.cache_enabled && theirs.cache_enabled;
    n.cache_size = n.cache_enabled ? std::min(ours.cache_size, theirs.cache_size) : 0;
    if (n.cache_enabled && (n.cache_size <= 0 || n.cache_size > max_cache_size)) n.cache_size = max_cache_size;
    n.size_prefix_disabled = ours.size_prefix_disabled && theirs.size_prefix_disabled;
    n.stack_trace_enabled = ours.stack_trace_enabled && theirs.stack_trace_enabled;
    n.tcp_no_delay_enabled = ours.tcp_no_delay_enabled && theirs.tcp_no_delay_enabled;
    n.max_frame_size = min_set(ours.max_frame_size, theirs.max_frame_size);
    if (n.max_frame_size < 0) n.max_frame_size = 0;
    return n;
}

// ---------------------------------------------------------------------------------------------
// Primitive maps

namespace {
constexpr std::string_view prim_truncated = "primitive value truncated";
constexpr std::string_view prim_type = "unknown primitive type";
constexpr std::string_view prim_depth = "primitive maps nested too deeply";
}  // namespace

namespace {
struct prim_in {
    const std::uint8_t*& p;
    const std::uint8_t* end;
    bool need(std::size_t n) const noexcept { return static_cast<std::size_t>(end - p) >= n; }
};

// Skips one encoded value of type `t` (its type byte read), for nested maps and lists.
bool skip_value(prim_in& in, std::uint8_t t, std::size_t depth, const limits& lim, std::string_view& err);

bool skip_map_entries(prim_in& in, std::int64_t n, std::size_t depth, const limits& lim, std::string_view& err, bool keys) {
    for (std::int64_t i = 0; i < n; ++i) {
        if (keys) {
            if (!in.need(2)) { err = prim_truncated; return false; }
            const std::size_t k = get16(in.p);
            in.p += 2;
            if (!in.need(k)) { err = prim_truncated; return false; }
            in.p += k;
        }
        if (!in.need(1)) { err = prim_truncated; return false; }
        const std::uint8_t t = *in.p++;
        if (!skip_value(in, t, depth, lim, err)) return false;
    }
    return true;
}

bool skip_value(prim_in& in, std::uint8_t t, std::size_t depth, const limits& lim, std::string_view& err) {
    auto fixed = [&](std::size_t n) {
        if (!in.need(n)) { err = prim_truncated; return false; }
        in.p += n;
        return true;
    };
    switch (static_cast<primitive_type>(t)) {
    case primitive_type::null: return true;
    case primitive_type::boolean:
    case primitive_type::byte: return fixed(1);
    case primitive_type::char_:
    case primitive_type::short_: return fixed(2);
    case primitive_type::integer:
    case primitive_type::float_: return fixed(4);
    case primitive_type::long_:
    case primitive_type::double_: return fixed(8);
    case primitive_type::string: {
        if (!in.need(2)) { err = prim_truncated; return false; }
        const std::size_t n = get16(in.p);
        in.p += 2;
        return fixed(n);
    }
    case primitive_type::byte_array:
    case primitive_type::big_string: {
        if (!in.need(4)) { err = prim_truncated; return false; }
        const auto n = static_cast<std::int32_t>(get32(in.p));
        in.p += 4;
        if (n < 0) { if (t == 13 && n == -1) return true; err = negative_length; return false; }
        return fixed(static_cast<std::size_t>(n));
    }
    case primitive_type::map:
    case primitive_type::list: {
        if (depth + 1 > lim.max_nesting) { err = prim_depth; return false; }
        if (!in.need(4)) { err = prim_truncated; return false; }
        const auto n = static_cast<std::int32_t>(get32(in.p));
        in.p += 4;
        if (n < 0) return true;
        if (static_cast<std::size_t>(n) > lim.max_array_length) { err = too_long_array; return false; }
        return skip_map_entries(in, n, depth + 1, lim, err, t == 11);
    }
    }
    err = prim_type;
    return false;
}
}  // namespace

bool primitive_reader::read_map_size(std::int32_t& n) {
    if (end_ - p_ < 4) return fail(prim_truncated);
    n = static_cast<std::int32_t>(get32(p_));
    p_ += 4;
    if (n < -1) return fail(negative_length);
    if (n > 0 && static_cast<std::size_t>(n) > lim_.max_array_length) return fail(too_long_array);
    return true;
}

bool primitive_reader::read_key(std::string_view& key) {
    if (end_ - p_ < 2) return fail(prim_truncated);
    const std::size_t n = get16(p_);
    p_ += 2;
    if (static_cast<std::size_t>(end_ - p_) < n) return fail(prim_truncated);
    const std::string_view raw = as_sv(p_, n);
    p_ += n;
    switch (classify_modified(raw)) {
    case utf_class::as_is: key = raw.data() ? raw : empty_string; return true;
    case utf_class::malformed: return fail(bad_utf);
    case utf_class::convert: break;
    }
    std::string conv;
    convert_modified(raw, conv);
    key = wf_.keep(std::move(conv));
    return true;
}

bool primitive_reader::read_value(primitive& v) {
    if (p_ == end_) return fail(prim_truncated);
    const std::uint8_t t = *p_++;
    v = primitive{};
    auto need = [&](std::size_t n) { return static_cast<std::size_t>(end_ - p_) >= n || fail(prim_truncated); };
    auto text = [&](std::size_t n) {
        if (!need(n)) return false;
        const std::string_view raw = as_sv(p_, n);
        p_ += n;
        switch (classify_modified(raw)) {
        case utf_class::as_is: v.s = raw.data() ? raw : empty_string; return true;
        case utf_class::malformed: return fail(bad_utf);
        case utf_class::convert: break;
        }
        std::string conv;
        convert_modified(raw, conv);
        v.s = wf_.keep(std::move(conv));
        return true;
    };
    v.type = static_cast<primitive_type>(t);
    switch (v.type) {
    case primitive_type::null: return true;
    case primitive_type::boolean:
        if (!need(1)) return false;
        v.b = *p_++ != 0;
        return true;
    case primitive_type::byte:
        if (!need(1)) return false;
        v.i = static_cast<std::int8_t>(*p_++);
        return true;
    case primitive_type::char_:
        if (!need(2)) return false;
        v.i = get16(p_);
        p_ += 2;
        return true;
    case primitive_type::short_:
        if (!need(2)) return false;
        v.i = static_cast<std::int16_t>(get16(p_));
        p_ += 2;
        return true;
    case primitive_type::integer:
        if (!need(4)) return false;
        v.i = static_cast<std::int32_t>(get32(p_));
        p_ += 4;
        return true;
    case primitive_type::long_:
        if (!need(8)) return false;
        v.i = static_cast<std::int64_t>(get64(p_));
        p_ += 8;
        return true;
    case primitive_type::float_: {
        if (!need(4)) return false;
        v.d = std::bit_cast<float>(get32(p_));
        p_ += 4;
        return true;
    }
    case primitive_type::double_: {
        if (!need(8)) return false;
        v.d = std::bit_cast<double>(get64(p_));
        p_ += 8;
        return true;
    }
    case primitive_type::string: {
        if (!need(2)) return false;
        const std::size_t n = get16(p_);
        p_ += 2;
        return text(n);
    }
    case primitive_type::big_string: {
        if (!need(4)) return false;
        const auto n = static_cast<std::int32_t>(get32(p_));
        p_ += 4;
        if (n == -1) { v.type = primitive_type::null; return true; }   // a null big string
        if (n < 0) return fail(negative_length);
        return text(static_cast<std::size_t>(n));
    }
    case primitive_type::byte_array: {
        if (!need(4)) return false;
        const auto n = static_cast<std::int32_t>(get32(p_));
        p_ += 4;
        if (n < 0) return fail(negative_length);
        if (!need(static_cast<std::size_t>(n))) return false;
        v.s = as_sv(p_, static_cast<std::size_t>(n));
        if (v.s.data() == nullptr) v.s = empty_string;
        p_ += n;
        return true;
    }
    case primitive_type::map:
    case primitive_type::list: {
        if (depth_ + 1 > lim_.max_nesting) return fail(prim_depth);
        if (!need(4)) return false;
        const auto n = static_cast<std::int32_t>(get32(p_));
        p_ += 4;
        const std::uint8_t* start = p_;
        if (n < 0) {
            v.count = -1;   // a null map / list
        } else {
            if (static_cast<std::size_t>(n) > lim_.max_array_length) return fail(too_long_array);
            v.count = n;
            prim_in in{p_, end_};
            std::string_view e;
            if (!skip_map_entries(in, n, depth_ + 1, lim_, e, t == 11)) return fail(e);
        }
        v.s = as_sv(start, static_cast<std::size_t>(p_ - start));
        if (v.s.data() == nullptr) v.s = empty_string;
        return true;
    }
    }
    return fail(prim_type);
}

void primitive_writer::map_size(std::int32_t n) { put32(out_, static_cast<std::uint32_t>(n)); }
void primitive_writer::key(std::string_view k) { write_utf(out_, k, 65535); }
void primitive_writer::null() { put8(out_, 0); }
void primitive_writer::boolean(bool v) { put8(out_, 1); put8(out_, v ? 1 : 0); }
void primitive_writer::byte(std::int8_t v) { put8(out_, 2); put8(out_, static_cast<std::uint8_t>(v)); }
void primitive_writer::char_(std::uint16_t v) { put8(out_, 3); put16(out_, v); }
void primitive_writer::short_(std::int16_t v) { put8(out_, 4); put16(out_, static_cast<std::uint16_t>(v)); }
void primitive_writer::integer(std::int32_t v) { put8(out_, 5); put32(out_, static_cast<std::uint32_t>(v)); }
void primitive_writer::long_(std::int64_t v) { put8(out_, 6); put64(out_, static_cast<std::uint64_t>(v)); }
void primitive_writer::double_(double v) { put8(out_, 7); put64(out_, std::bit_cast<std::uint64_t>(v)); }
void primitive_writer::float_(float v) { put8(out_, 8); put32(out_, std::bit_cast<std::uint32_t>(v)); }
void primitive_writer::string(std::string_view utf8) {
    const utf_measure m = measure(utf8);
    // MarshallingSupport.marshalString: by length in UTF-16 units.
    if (m.utf16 < 8191) {
        put8(out_, 9);
        put16(out_, static_cast<std::uint16_t>(m.modified));
    } else {
        put8(out_, 13);
        put32(out_, static_cast<std::uint32_t>(m.modified));
    }
    if (m.same) out_.append(utf8);
    else write_modified(utf8, out_);
}
void primitive_writer::byte_array(bytes v) {
    put8(out_, 10);
    put32(out_, static_cast<std::uint32_t>(v.size()));
    out_.append(as_sv(v));
}
void primitive_writer::begin_map(std::int32_t n) { put8(out_, 11); put32(out_, static_cast<std::uint32_t>(n)); }
void primitive_writer::begin_list(std::int32_t n) { put8(out_, 12); put32(out_, static_cast<std::uint32_t>(n)); }
void primitive_writer::value(const primitive& v) {
    switch (v.type) {
    case primitive_type::null: null(); return;
    case primitive_type::boolean: boolean(v.b); return;
    case primitive_type::byte: byte(static_cast<std::int8_t>(v.i)); return;
    case primitive_type::char_: char_(static_cast<std::uint16_t>(v.i)); return;
    case primitive_type::short_: short_(static_cast<std::int16_t>(v.i)); return;
    case primitive_type::integer: integer(static_cast<std::int32_t>(v.i)); return;
    case primitive_type::long_: long_(v.i); return;
    case primitive_type::double_: double_(v.d); return;
    case primitive_type::float_: float_(static_cast<float>(v.d)); return;
    case primitive_type::string:
    case primitive_type::big_string: string(v.s); return;
    case primitive_type::byte_array: byte_array(as_bytes(v.s)); return;
    case primitive_type::map:
    case primitive_type::list:
        put8(out_, static_cast<std::uint8_t>(v.type));
        put32(out_, static_cast<std::uint32_t>(v.count));
        out_.append(v.s);
        return;
    }
}

// ---------------------------------------------------------------------------------------------
// WireFormatInfo settings

std::string_view read_settings(bytes props, wire_format_settings& out, wire_format& wf) {
    out = wire_format_settings{};
    if (is_null(props)) return {};
    primitive_reader r(props, wf);
    std::int32_t n = 0;
    if (!r.read_map_size(n)) return r.error();
    for (std::int32_t i = 0; i < n; ++i) {
        std::string_view k;
        primitive v;
        if (!r.read_key(k) || !r.read_value(v)) return r.error();
        auto want_bool = [&](bool& x) {
            if (v.type != primitive_type::boolean) return false;
            x = v.b;
            return true;
        };
        auto want_int = [&](auto& x) {
            if (v.type != primitive_type::integer && v.type != primitive_type::long_ && v.type != primitive_type::short_ &&
                v.type != primitive_type::byte)
                return false;
            x = static_cast<std::remove_reference_t<decltype(x)>>(v.i);
            return true;
        };
        auto want_string = [&](std::string_view& x) {
            if (v.type == primitive_type::null) { x = {}; return true; }
            if (v.type != primitive_type::string && v.type != primitive_type::big_string) return false;
            x = v.s;
            return true;
        };
        bool ok = true;
        if (k == "TightEncodingEnabled") ok = want_bool(out.tight_encoding_enabled);
        else if (k == "CacheEnabled") ok = want_bool(out.cache_enabled);
        else if (k == "CacheSize") ok = want_int(out.cache_size);
        else if (k == "SizePrefixDisabled") ok = want_bool(out.size_prefix_disabled);
        else if (k == "StackTraceEnabled") ok = want_bool(out.stack_trace_enabled);
        else if (k == "TcpNoDelayEnabled") ok = want_bool(out.tcp_no_delay_enabled);
        else if (k == "MaxInactivityDuration") ok = want_int(out.max_inactivity_duration);
        else if (k == "MaxInactivityDurationInitalDelay") ok = want_int(out.max_inactivity_duration_initial_delay);
        else if (k == "MaxFrameSize") ok = want_int(out.max_frame_size);
        else if (k == "Host") ok = want_string(out.host);
        else if (k == "ProviderName") ok = want_string(out.provider_name);
        else if (k == "ProviderVersion") ok = want_string(out.provider_version);
        else if (k == "PlatformDetails") ok = want_string(out.platform_details);
        if (!ok) return "WireFormatInfo property of the wrong type";
    }
    return {};
}

void write_settings(const wire_format_settings& s, std::string& out) {
    primitive_writer w(out);
    const int strings = !is_null(s.host) + !is_null(s.provider_name) + !is_null(s.provider_version) + !is_null(s.platform_details);
    w.map_size(9 + strings);
    w.key("TightEncodingEnabled"); w.boolean(s.tight_encoding_enabled);
    w.key("CacheEnabled"); w.boolean(s.cache_enabled);
    w.key("CacheSize"); w.integer(s.cache_size);
    w.key("SizePrefixDisabled"); w.boolean(s.size_prefix_disabled);
    w.key("StackTraceEnabled"); w.boolean(s.stack_trace_enabled);
    w.key("TcpNoDelayEnabled"); w.boolean(s.tcp_no_delay_enabled);
    w.key("MaxInactivityDuration"); w.long_(s.max_inactivity_duration);
    w.key("MaxInactivityDurationInitalDelay"); w.long_(s.max_inactivity_duration_initial_delay);
    w.key("MaxFrameSize"); w.long_(s.max_frame_size);
    if (!is_null(s.host)) { w.key("Host"); w.string(s.host); }
    if (!is_null(s.provider_name)) { w.key("ProviderName"); w.string(s.provider_name); }
    if (!is_null(s.provider_version)) { w.key("ProviderVersion"); w.string(s.provider_version); }
    if (!is_null(s.platform_details)) { w.key("PlatformDetails"); w.string(s.platform_details); }
}

// ---------------------------------------------------------------------------------------------
// Bodies and strings

std::string_view read_text_body(bytes content, std::string_view& text, wire_format& wf) {
    text = {};
    if (is_null(content)) return {};
    if (content.size() < 4) return "text body truncated";
    const auto n = static_cast<std::int32_t>(get32(content.data()));
    if (n == -1) return {};
    if (n < 0 || static_cast<std::size_t>(n) != content.size() - 4) return "text body length mismatch";
    const std::string_view raw = as_sv(content.data() + 4, static_cast<std::size_t>(n));
    switch (classify_modified(raw)) {
    case utf_class::as_is: text = raw.data() ? raw : empty_string; return {};
    case utf_class::malformed: return bad_utf;
    case utf_class::convert: break;
    }
    std::string conv;
    convert_modified(raw, conv);
    text = wf.keep(std::move(conv));
    return {};
}

void write_text_body(std::string_view utf8, std::string& out) {
    if (is_null(utf8)) {
        put32(out, 0xFFFFFFFFu);
        return;
    }
    const utf_measure m = measure(utf8);
    put32(out, static_cast<std::uint32_t>(m.modified));
    if (m.same) out.append(utf8);
    else write_modified(utf8, out);
}

bool modified_utf8_to_utf8(std::string_view in, std::string& out) {
    switch (classify_modified(in)) {
    case utf_class::as_is: out.append(in); return true;
    case utf_class::malformed: return false;
    case utf_class::convert: convert_modified(in, out); return true;
    }
    return false;
}

void utf8_to_modified_utf8(std::string_view in, std::string& out) {
    if (measure(in).same) out.append(in);
    else write_modified(in, out);
}

std::size_t modified_utf8_length(std::string_view utf8) noexcept { return measure(utf8).modified; }
std::size_t utf16_length(std::string_view utf8) noexcept { return measure(utf8).utf16; }

std::string to_string(const connection_id& id) { return std::string(id.value); }
std::string to_string(const session_id& id) { return std::string(id.connection_id) + ":" + std::to_string(id.value); }
std::string to_string(const producer_id& id) {
    return std::string(id.connection_id) + ":" + std::to_string(id.session_id) + ":" + std::to_string(id.value);
}
std::string to_string(const consumer_id& id) {
    return std::string(id.connection_id) + ":" + std::to_string(id.session_id) + ":" + std::to_string(id.value);
}
std::string to_string(const message_id& id) {
    if (!is_null(id.text_view))   // MessageId.toString(): the text view, "ID:" first
        return id.text_view.starts_with("ID:") ? std::string(id.text_view) : "ID:" + std::string(id.text_view);
    std::string s = id.producer_id ? to_string(*id.producer_id) : std::string("null");
    return s + ":" + std::to_string(id.producer_sequence_id);
}
std::string to_string(const destination& d) {
    std::string_view scheme = "queue://";
    switch (d.type) {
    case type::activemq_topic: scheme = "topic://"; break;
    case type::activemq_temp_queue: scheme = "temp-queue://"; break;
    case type::activemq_temp_topic: scheme = "temp-topic://"; break;
    default: break;
    }
    return std::string(scheme) + std::string(d.physical_name);
}

}  // namespace sb::openwire
