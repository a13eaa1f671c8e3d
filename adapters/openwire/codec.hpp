// adapters/openwire/codec.hpp — the OpenWire wire format (ActiveMQ 5.x, versions 1 to 12): the
// framing (size prefix on or off), tight and loose encoding, the marshalling cache, and the
// per-version marshallers of the commands in commands.hpp; plus the primitive map / list
// encoding (WireFormatInfo properties, message properties, MapMessage and StreamMessage
// bodies) and the text body.
//
// A wire_format is one connection's state: the negotiated options and the two marshalling
// caches (what we sent, what we received). No I/O, no logging, no exceptions for bad input:
// every decode returns a frame, "need more bytes" or an error with static text. It is the
// exact counterpart of ActiveMQ's OpenWireFormat: a frame it writes, OpenWireFormat reads back
// to the same command, and re-encoding a frame OpenWireFormat wrote gives the same bytes
// (tests/unit/adapters/openwire/codec_test.cpp checks this against goldens written by the real
// client, tests/unit/adapters/openwire/golden/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "adapters/openwire/commands.hpp"

namespace sb::openwire {

// The versions this codec marshals. ActiveMQ 5.17's client ships 1 and 9 to 12 (the legacy jar
// 2 to 8); a version is negotiated as min(ours, theirs), so anything from 1 up works.
inline constexpr std::int32_t min_version = 1;
inline constexpr std::int32_t max_version = 12;

// ActiveMQ's MARSHAL_CACHE_SIZE (Short.MAX_VALUE / 2): the cache size when 0 is negotiated,
// and the largest we accept.
inline constexpr std::int32_t max_cache_size = 16383;

// Filled from the listener's config. Checked before the bytes they cover are buffered or copied.
struct limits {
    // A frame (size prefix excluded) larger than this is an error as soon as its size is read;
    // ActiveMQ's transport connectors default to 100 MiB. negotiate() lowers it to the peer's.
    std::size_t max_frame_size = 104857600;
    // Nested data structures in one frame (a message in a dispatch is 2; throwable causes count).
    std::size_t max_nesting = 16;
    // Elements of one array (broker paths, stack traces) and entries of one primitive map or list.
    std::size_t max_array_length = 65536;
};

// The options of a WireFormatInfo (its marshalled properties). A key that is absent reads as
// ActiveMQ reads it: false, or 0 (0 for max_frame_size and the durations: no limit / none).
struct wire_format_settings {
    bool tight_encoding_enabled = false;
    bool cache_enabled = false;
    std::int32_t cache_size = 0;
    bool size_prefix_disabled = false;
    bool stack_trace_enabled = false;
    bool tcp_no_delay_enabled = false;
    std::int64_t max_inactivity_duration = 0;                 // ms
    std::int64_t max_inactivity_duration_initial_delay = 0;   // ms ("MaxInactivityDurationInitalDelay", sic)
    std::int64_t max_frame_size = 0;
    std::string_view host;                                    // null when absent
    std::string_view provider_name;
    std::string_view provider_version;
    std::string_view platform_details;
};

// Reads a WireFormatInfo's marshalled properties. Unknown keys are skipped; a key with a value
// of the wrong type is an error. `out`'s views point into `props` (or the scratch of `wf`).
class wire_format;
std::string_view read_settings(bytes props, wire_format_settings& out, wire_format& wf);
// Appends `s` as a marshalled primitive map (the boolean, int and long keys always, the string
// keys when not null).
void write_settings(const wire_format_settings& s, std::string& out);

// What both sides use after the exchange of WireFormatInfos (OpenWireFormat's
// renegotiateWireFormat): each flag is on when both asked for it, version / max frame size /
// cache size are the smaller of the two (0 meaning "none" for the frame size).
struct negotiated {
    std::int32_t version = max_version;
    bool tight_encoding = false;
    bool cache_enabled = false;
    std::int32_t cache_size = 0;          // the cache's size when enabled (0 negotiated: max_cache_size)
    bool size_prefix_disabled = false;
    bool stack_trace_enabled = false;
    bool tcp_no_delay_enabled = false;
    std::int64_t max_frame_size = 0;      // 0: none beyond limits::max_frame_size
};
negotiated negotiate(std::int32_t our_version, const wire_format_settings& ours, std::int32_t their_version,
                     const wire_format_settings& theirs) noexcept;

// ---------------------------------------------------------------------------------------------
// Decoding results (the connection engine's step: frame / need more / error)

struct need_more {
    std::size_t at_least;   // bytes needed in all (exact once the size prefix is in)
};
struct decode_error {
    std::string_view detail;   // static text: "unknown data type", "marshalling cache index out of range", ...
};
struct decoded {
    const command* frame;      // valid until the next decode() (see commands.hpp, Ownership)
    std::size_t consumed;      // the whole frame, size prefix included
};
using decode_result = std::variant<decoded, need_more, decode_error>;

// One connection's wire format. Starts as OpenWire starts: version `version`, loose encoding,
// no cache, size prefix on (the WireFormatInfos are exchanged in this format, which is the
// same for every version); apply() switches to the negotiated options once both WireFormatInfos
// are through. Not thread-safe; one per connection.
class wire_format {
public:
    explicit wire_format(const limits& l = {}, std::int32_t version = max_version);
    ~wire_format();
    wire_format(const wire_format&) = delete;
    wire_format& operator=(const wire_format&) = delete;

    // Switches encoding and decoding to `n` (and resets both caches to n's size). `n.version`
    // must be within [min_version, max_version] (negotiate() keeps it there when ours is).
    void apply(const negotiated& n);

    std::int32_t version() const noexcept { return version_; }
    bool tight() const noexcept { return tight_; }
    bool cache_enabled() const noexcept { return cache_size_ > 0; }
    std::int32_t cache_size() const noexcept { return cache_size_; }
    bool size_prefix_disabled() const noexcept { return size_prefix_disabled_; }
    bool stack_trace_enabled() const noexcept { return stack_trace_; }
    std::size_t max_frame_size() const noexcept { return max_frame_size_; }

    // Decodes one frame from the start of `in`. On `decoded`, the caller consumes `consumed`
    // bytes (after using the frame) and calls again. A need_more or an error leaves the
    // marshalling cache as it was, so a frame split anywhere decodes the same. After an error
    // the connection is unusable (the cache may be out of step with the peer's): the session
    // answers (ConnectionError) and closes. With the size prefix disabled a frame's end is
    // known only by parsing it, so an incomplete frame is parsed again from its start as more
    // bytes come (need_more asks for one byte more): quadratic in the frame's size, which the
    // maximum frame size bounds. ActiveMQ clients never disable it unless the broker agrees.
    decode_result decode(bytes in);

    // Appends one frame carrying `c` to `out` (with its size prefix unless disabled). Returns
    // empty on success; otherwise why (a string too long for the encoding, a frame over the
    // maximum size, a version that lacks the command), with `out` and the cache unchanged.
    std::string_view encode(const command& c, std::string& out);
    // The same for the commands the broker sends most, without building a `command` first.
    std::string_view encode(const message_dispatch& c, std::string& out);
    std::string_view encode(const response& c, std::string& out);
    std::string_view encode(const exception_response& c, std::string& out);
    std::string_view encode(const wire_format_info& c, std::string& out);
    std::string_view encode(const broker_info& c, std::string& out);
    std::string_view encode(const keep_alive_info& c, std::string& out);
    std::string_view encode(const connection_error& c, std::string& out);
    std::string_view encode(const producer_ack& c, std::string& out);
    std::string_view encode(const connection_control& c, std::string& out);
    std::string_view encode(const consumer_control& c, std::string& out);
    std::string_view encode(const message& c, std::string& out);

    // Stable storage for strings converted from modified UTF-8, released at the next decode.
    // (Used by the decoders and the primitive readers; public for them.)
    std::string_view keep(std::string&& s);

    struct impl;

private:
    std::int32_t version_;
    bool tight_ = false;
    std::int32_t cache_size_ = 0;
    bool size_prefix_disabled_ = false;
    bool stack_trace_ = false;
    std::size_t max_frame_size_;
    limits limits_;
    std::unique_ptr<impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// Primitive maps and lists (ActiveMQ's MarshallingSupport): message properties, MapMessage and
// StreamMessage bodies, WireFormatInfo properties. Big-endian; strings are Java's modified
// UTF-8 (converted to and from UTF-8 here).

enum class primitive_type : std::uint8_t {
    null = 0, boolean = 1, byte = 2, char_ = 3, short_ = 4, integer = 5, long_ = 6, double_ = 7,
    float_ = 8, string = 9, byte_array = 10, map = 11, list = 12, big_string = 13,
};

// One value. `s` holds a string (UTF-8), a byte array, or the encoded entries of a nested map
// or list: `count` entries (-1: a null map or list), to read with another primitive_reader
// (for a map: count × (read_key, read_value); for a list: count × read_value).
struct primitive {
    primitive_type type = primitive_type::null;
    bool b = false;          // boolean
    std::int64_t i = 0;      // byte, short, integer, long; char (a UTF-16 code unit)
    double d = 0;            // double, float
    std::string_view s;      // string, big_string, byte_array; map / list: nested encoding
    std::int32_t count = 0;  // map / list: entries
};

// Pulls values from an encoded map (read_map_size, then count × (key, value)) or a stream
// body / list (value until at_end). Views point into the input, or into `wf`'s scratch for
// strings that needed converting (valid until wf's next decode).
class primitive_reader {
public:
    primitive_reader(bytes in, wire_format& wf, const limits& l = {}) noexcept : p_(in.data()), end_(in.data() + in.size()), wf_(wf), lim_(l) {}
    // A map starts with its entry count (-1: a null map, no entries).
    bool read_map_size(std::int32_t& n);
    bool read_key(std::string_view& key);
    bool read_value(primitive& v);
    bool at_end() const noexcept { return p_ == end_; }
    std::string_view error() const noexcept { return err_; }

private:
    bool fail(std::string_view why) noexcept { err_ = why; return false; }
    const std::uint8_t* p_;
    const std::uint8_t* end_;
    wire_format& wf_;
    limits lim_;
    std::size_t depth_ = 0;
    std::string_view err_;
};

// Appends encoded values to `out`. A map: map_size(n) then n × (key, value); a list value:
// begin_list(n) then n values; a nested map value: begin_map(n) then n × (key, value).
// Strings are UTF-8 in, modified UTF-8 out; a string of 8191 UTF-16 units or more is written
// as a big string, as ActiveMQ does.
class primitive_writer {
public:
    explicit primitive_writer(std::string& out) noexcept : out_(out) {}
    void map_size(std::int32_t n);
    void key(std::string_view k);
    void null();
    void boolean(bool v);
    void byte(std::int8_t v);
    void char_(std::uint16_t v);
    void short_(std::int16_t v);
    void integer(std::int32_t v);
    void long_(std::int64_t v);
    void float_(float v);
    void double_(double v);
    void string(std::string_view utf8);
    void byte_array(bytes v);
    void begin_map(std::int32_t n);
    void begin_list(std::int32_t n);
    // Any decoded value again (nested maps and lists are copied as encoded).
    void value(const primitive& v);

private:
    std::string& out_;
};

// ---------------------------------------------------------------------------------------------
// Bodies

// ActiveMQTextMessage's content (uncompressed): a 4-byte length (-1: null text) and modified
// UTF-8. `text` is null for a null text; views into `content` or wf's scratch.
std::string_view read_text_body(bytes content, std::string_view& text, wire_format& wf);
void write_text_body(std::string_view utf8, std::string& out);

// Modified UTF-8 (Java's DataOutput.writeUTF without the length) <-> UTF-8. `to_utf8` returns
// false for malformed input. Lone surrogates pass through as 3-byte sequences both ways.
bool modified_utf8_to_utf8(std::string_view in, std::string& out);
void utf8_to_modified_utf8(std::string_view in, std::string& out);
// The length Java's writeUTF would write, and the string's length in UTF-16 units.
std::size_t modified_utf8_length(std::string_view utf8) noexcept;
std::size_t utf16_length(std::string_view utf8) noexcept;

// "ID:host-1234-5678-1:2:3" style texts of ids, as ActiveMQ's toString() makes them.
std::string to_string(const connection_id& id);
std::string to_string(const session_id& id);
std::string to_string(const producer_id& id);
std::string to_string(const consumer_id& id);
std::string to_string(const message_id& id);    // text_view (with "ID:" before it if missing) when set, else producer id:sequence
std::string to_string(const destination& d);    // "queue://name", "topic://name", "temp-queue://..."

}  // namespace sb::openwire
