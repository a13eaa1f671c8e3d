// tests/unit/adapters/stomp/codec_test.cpp — STOMP codec: round trips, splits, limits, escapes.
// Frames are compared as owned copies, so a view that outlives its buffer shows up as a failure.
#include "adapters/stomp/codec.hpp"
#include "tests/unit/bytes.hpp"
#include "tests/unit/split_checks.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using namespace std::string_literals;
using namespace std::string_view_literals;
using sb::stomp::command;
using sb::stomp::decode_error;
using sb::stomp::decode_result;
using sb::stomp::decoded;
using sb::stomp::frame;
using sb::stomp::heartbeat;
using sb::stomp::limits;
using sb::stomp::need_more;
using sb::stomp::version;

constexpr std::array all_versions{version::v1_0, version::v1_1, version::v1_2};
constexpr std::array all_commands{
    command::connect, command::stomp,   command::connected,  command::send,
    command::subscribe, command::unsubscribe, command::ack,  command::nack,
    command::begin,   command::commit,  command::abort,      command::disconnect,
    command::message, command::receipt, command::error};

using sb::test::bytes;
using sb::test::text;

const char* version_name(version v) {
    switch (v) {
    case version::v1_0: return "1.0";
    case version::v1_1: return "1.1";
    case version::v1_2: return "1.2";
    }
    return "?";
}

// A frame that owns its text, for comparing results across buffers.
struct owned_frame {
    command cmd{};
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool has_content_length = false;
    bool operator==(const owned_frame&) const = default;
};

std::ostream& operator<<(std::ostream& os, const owned_frame& f) {
    os << sb::stomp::to_string(f.cmd) << (f.has_content_length ? " [content-length]" : "") << " {";
    for (const auto& [n, v] : f.headers) os << '"' << n << "\":\"" << v << "\" ";
    return os << "} body(" << f.body.size() << ")=\"" << f.body << '"';
}

owned_frame own(const frame& f) {
    owned_frame o{f.cmd, {}, std::string(text(f.body)), f.has_content_length};
    for (const auto& h : f.headers) o.headers.emplace_back(h.name, h.value);
    return o;
}

// Views of an owned frame, for the encoder.
struct frame_view {
    frame f;
    explicit frame_view(const owned_frame& o) {
        f.cmd = o.cmd;
        for (const auto& [n, v] : o.headers) f.headers.push_back({n, v});
        f.body = bytes(o.body);
        f.has_content_length = o.has_content_length;
    }
};

// One decoder with its reused buffers, as a session holds it.
struct decoder {
    limits lim{};
    version v = version::v1_2;
    frame out;
    std::string scratch;
    decode_result run(std::string_view in) { return sb::stomp::decode(bytes(in), lim, v, out, scratch); }
};

std::string error_of(const decode_result& r) {
    if (const auto* e = std::get_if<decode_error>(&r)) return std::string(e->message);
    if (std::holds_alternative<decoded>(r)) return "<decoded>";
    if (std::holds_alternative<heartbeat>(r)) return "<heartbeat>";
    return "<need_more>";
}

// Decodes a whole frame that must take exactly all of `wire`.
owned_frame decode_all(std::string_view wire, version v, const limits& lim = {}) {
    decoder d{lim, v, {}, {}};
    const decode_result r = d.run(wire);
    INFO("wire: " << wire << " result: " << error_of(r));
    REQUIRE(std::holds_alternative<decoded>(r));
    CHECK(std::get<decoded>(r).consumed == wire.size());
    return own(d.out);
}

// What a session sees when the peer's bytes arrive in the given chunks: the frames, the
// heart-beat bytes, the first error (if any) and the bytes still buffered at the end (when
// there is no error; after an error how much was buffered depends on the chunks).
struct stream_result {
    std::vector<owned_frame> frames;
    std::size_t heartbeat_bytes = 0;
    std::string error;
    std::size_t leftover = 0;
    bool operator==(const stream_result&) const = default;
};

std::ostream& operator<<(std::ostream& os, const stream_result& s) {
    os << s.frames.size() << " frames, " << s.heartbeat_bytes << " heart-beat bytes, error \""
       << s.error << "\", " << s.leftover << " left over";
    for (const auto& f : s.frames) os << "\n  " << f;
    return os;
}

stream_result feed(std::string_view wire, const std::vector<std::size_t>& cuts, version v,
                   const limits& lim = {}) {
    decoder d{lim, v, {}, {}};
    stream_result res;
    std::string buf;
    std::size_t from = 0;
    auto chunks = cuts;
    chunks.push_back(wire.size());
    for (const std::size_t to : chunks) {
        buf.append(wire.substr(from, to - from));
        from = to;
        for (;;) {
            const decode_result r = d.run(buf);
            if (const auto* f = std::get_if<decoded>(&r)) {
                REQUIRE(f->consumed > 0);
                REQUIRE(f->consumed <= buf.size());
                res.frames.push_back(own(d.out));
                buf.erase(0, f->consumed);
            } else if (const auto* h = std::get_if<heartbeat>(&r)) {
                REQUIRE(h->consumed > 0);
                REQUIRE(h->consumed <= buf.size());
                res.heartbeat_bytes += h->consumed;
                buf.erase(0, h->consumed);
            } else if (const auto* m = std::get_if<need_more>(&r)) {
                REQUIRE((m->at_least == 0 || m->at_least > buf.size()));
                break;
            } else {
                res.error = std::string(std::get<decode_error>(r).message);
                return res;
            }
        }
    }
    res.leftover = buf.size();
    return res;
}

std::string repeat(char c, std::size_t n) { return std::string(n, c); }

// A stream exercising most of the grammar: CRLF, escapes, binary bodies, heart-beats,
// repeated headers. Escapes are valid in 1.1/1.2 and literal text in 1.0.
const std::string mixed_stream{
    "\n"
    "CONNECT\r\naccept-version:1.0,1.1,1.2\r\nhost:/\r\nlogin:a\\cb\r\n\r\n\0"
    "\r\n\n"
    "SEND\ndestination:/queue/a\ncontent-length:5\n\nx\0y\0z\0"
    "SEND\r\ndestination:/queue/b\r\n\r\nplain text body\0\n"
    "SUBSCRIBE\nid:0\ndestination:/topic/a\\cb\\\\c\nack:client\n\n\0"
    "MESSAGE\nsubscription:0\nmessage-id:1\nfoo:first\nfoo:second\ncontent-length:0\n\n\0"
    "\n\n\n"
    "ACK\nid:1\n\n\0"
    "DISCONNECT\nreceipt:77\n\n\0\r\n"sv};

}  // namespace

TEST_CASE("every command name parses back to its command", "[stomp][codec]") {
    for (const command c : all_commands) {
        INFO(sb::stomp::to_string(c));
        const auto parsed = sb::stomp::parse_command(sb::stomp::to_string(c));
        REQUIRE(parsed.has_value());
        CHECK(*parsed == c);
    }
}

TEST_CASE("parse_command rejects lowercase, padded, prefixed and unknown names", "[stomp][codec]") {
    for (const std::string_view s : {"send"sv, "Send"sv, "SEND "sv, " SEND"sv, "SEN"sv, "SENDX"sv,
                                     "CONNECTE"sv, ""sv, "FOO"sv, "SEND\r"sv, "\0SEND"sv}) {
        INFO('"' << s << '"');
        CHECK_FALSE(sb::stomp::parse_command(s).has_value());
    }
}

TEST_CASE("encode then decode gives the same frame for every command and version", "[stomp][codec]") {
    for (const version v : all_versions) {
        for (const command c : all_commands) {
            const bool escaped = v != version::v1_0 && c != command::connect &&
                                 c != command::stomp && c != command::connected;
            owned_frame text_frame{c, {{"destination", "/queue/a"}, {"x", "a:b:c"}, {"x", "second"},
                                       {"empty", ""}, {"", "empty name"}}, "hello", false};
            if (escaped)
                text_frame.headers.push_back({"we:ird\\na\nme", "line1\nline2:x\\y\r"});
            owned_frame binary_frame{c, {{"content-length", "7"}, {"destination", "/queue/b"}},
                                     std::string("\0bin\0\n\0", 7), true};
            owned_frame empty_frame{c, {}, "", false};

            for (const owned_frame& original : {text_frame, binary_frame, empty_frame}) {
                std::string wire;
                sb::stomp::encode(wire, frame_view(original).f, v);
                INFO("version " << version_name(v) << " frame " << original);
                CHECK(decode_all(wire, v) == original);
            }
        }
    }
}

TEST_CASE("encode writes the frame parts in wire format", "[stomp][codec]") {
    std::string out;
    sb::stomp::encode_command(out, command::unsubscribe);
    CHECK(out == "UNSUBSCRIBE\n");

    out.clear();
    sb::stomp::encode_header(out, "id", "7", version::v1_2, true);
    CHECK(out == "id:7\n");

    out.clear();
    sb::stomp::encode_body(out, bytes("a\0b"sv));
    CHECK(out == "\na\0b\0"sv);

    out = "prefix|";  // appends, never replaces
    sb::stomp::encode_body(out, {});
    CHECK(out == "prefix|\n\0"sv);
}

TEST_CASE("encode escapes headers per version and never in CONNECT, STOMP or CONNECTED", "[stomp][codec]") {
    std::string out;
    sb::stomp::encode_header(out, "a:b", "c\nd\\e\rf:", version::v1_2, true);
    CHECK(out == "a\\cb:c\\nd\\\\e\\rf\\c\n");

    out.clear();
    sb::stomp::encode_header(out, "a:b", "c\nd\\e\rf:", version::v1_1, true);
    CHECK(out == "a\\cb:c\\nd\\\\e\\rf\\c\n");

    out.clear();
    sb::stomp::encode_header(out, "a", "b\\c:d", version::v1_0, true);
    CHECK(out == "a:b\\c:d\n");

    out.clear();
    sb::stomp::encode_header(out, "a", "b\\c:d", version::v1_2, false);
    CHECK(out == "a:b\\c:d\n");

    for (const command c : {command::connect, command::stomp, command::connected}) {
        const owned_frame f{c, {{"login", "a\\b:c"}}, "", false};
        out.clear();
        sb::stomp::encode(out, frame_view(f).f, version::v1_2);
        CHECK(out == std::string(sb::stomp::to_string(c)) + "\nlogin:a\\b:c\n\n" + '\0');
    }

    const owned_frame send{command::send, {{"k", "a\\b:c"}}, "body", false};
    out.clear();
    sb::stomp::encode(out, frame_view(send).f, version::v1_2);
    CHECK(out == "SEND\nk:a\\\\b\\cc\n\nbody"s + '\0');
    out.clear();
    sb::stomp::encode(out, frame_view(send).f, version::v1_0);
    CHECK(out == "SEND\nk:a\\b:c\n\nbody"s + '\0');
}

TEST_CASE("encode does not add content-length", "[stomp][codec]") {
    const owned_frame f{command::send, {{"destination", "/queue/a"}}, "abc", true};
    std::string out;
    sb::stomp::encode(out, frame_view(f).f, version::v1_2);
    CHECK(out == "SEND\ndestination:/queue/a\n\nabc"s + '\0');
}

TEST_CASE("decode unescapes names and values in 1.1 and 1.2", "[stomp][codec]") {
    for (const version v : {version::v1_1, version::v1_2}) {
        const owned_frame f = decode_all("SEND\nk\\c\\n\\\\\\r:v\\c\\n\\\\\\r end\n\n\0"sv, v);
        REQUIRE(f.headers.size() == 1);
        CHECK(f.headers[0].first == "k:\n\\\r");
        CHECK(f.headers[0].second == "v:\n\\\r end");
    }
}

TEST_CASE("decode keeps backslashes as text in 1.0", "[stomp][codec]") {
    const owned_frame f = decode_all("SEND\nk\\c:v\\n\\t\\\n\n\0"sv, version::v1_0);
    REQUIRE(f.headers.size() == 1);
    CHECK(f.headers[0].first == "k\\c");
    CHECK(f.headers[0].second == "v\\n\\t\\");
}

TEST_CASE("decode rejects undefined escapes and a trailing backslash in 1.1 and 1.2", "[stomp][codec]") {
    for (const version v : {version::v1_1, version::v1_2}) {
        for (const std::string_view wire :
             {"SEND\nk:a\\tb\n\n\0"sv, "SEND\nk:a\\\n\n\0"sv, "SEND\nk\\:v\n\n\0"sv,
              "SEND\nk\\x:v\n\n\0"sv, "SEND\nk:\\C\n\n\0"sv, "SEND\nok:\\n\nk:\\0\n\n\0"sv,
              "MESSAGE\nk:\\\\\\\n\n\0"sv}) {
            decoder d;
            d.v = v;
            INFO("version " << version_name(v) << " wire " << wire);
            CHECK(error_of(d.run(wire)) == "invalid escape");
        }
    }
}

TEST_CASE("decode does not unescape CONNECT, STOMP or CONNECTED frames", "[stomp][codec]") {
    for (const version v : all_versions) {
        for (const std::string_view cmd : {"CONNECT"sv, "STOMP"sv, "CONNECTED"sv}) {
            // \c would be ':' and \t would be an error in any other frame.
            const std::string wire = std::string(cmd) + "\nlogin:a\\cb\npasscode:p\\t\\\n\n" + '\0';
            INFO("version " << version_name(v) << " wire " << wire);
            const owned_frame f = decode_all(wire, v);
            REQUIRE(f.headers.size() == 2);
            CHECK(f.headers[0].second == "a\\cb");
            CHECK(f.headers[1].second == "p\\t\\");
        }
    }
}

TEST_CASE("decode accepts CRLF line ends in every version", "[stomp][codec]") {
    for (const version v : all_versions) {
        INFO("version " << version_name(v));
        const owned_frame f =
            decode_all("SEND\r\ndestination:/queue/a\r\nreceipt:1\r\n\r\nhi\r\n\0"sv, v);
        const owned_frame expected{command::send, {{"destination", "/queue/a"}, {"receipt", "1"}},
                                   "hi\r\n", false};
        CHECK(f == expected);
    }
}

TEST_CASE("decode strips one CR before LF, so a value may still end in CR", "[stomp][codec]") {
    const owned_frame f = decode_all("SEND\nk:v\r\r\nk2:a\rb\n\n\0"sv, version::v1_2);
    REQUIRE(f.headers.size() == 2);
    CHECK(f.headers[0].second == "v\r");
    CHECK(f.headers[1].second == "a\rb");
}

TEST_CASE("decode reports leading EOLs as one heartbeat", "[stomp][codec]") {
    decoder d;
    auto hb = [&](std::string_view s) -> std::size_t {
        const decode_result r = d.run(s);
        INFO("input " << s.size() << " bytes, result " << error_of(r));
        REQUIRE(std::holds_alternative<heartbeat>(r));
        return std::get<heartbeat>(r).consumed;
    };
    CHECK(hb("\n") == 1);
    CHECK(hb("\r\n") == 2);
    CHECK(hb("\n\r\n\n\r\n") == 6);
    CHECK(hb("\n\nSEND\n\n\0"sv) == 2);
    CHECK(hb("\r\n\r") == 2);  // the last CR may start the next CRLF: left for later

    // A lone CR may be the start of a CRLF heart-beat: wait for the next byte.
    const decode_result lone = d.run("\r");
    REQUIRE(std::holds_alternative<need_more>(lone));
    CHECK(std::get<need_more>(lone).at_least == 0);
    // A CR that is not followed by LF is not an EOL.
    CHECK(error_of(d.run("\rSEND\n\n\0"sv)) == "unknown command");
}

TEST_CASE("decoded consumed stops at the NUL; EOLs after it come back as a heartbeat", "[stomp][codec]") {
    decoder d;
    const std::string_view wire = "RECEIPT\nreceipt-id:1\n\n\0\r\n\nERROR\n\n\0"sv;
    const decode_result r = d.run(wire);
    REQUIRE(std::holds_alternative<decoded>(r));
    const std::size_t n = std::get<decoded>(r).consumed;
    CHECK(n == "RECEIPT\nreceipt-id:1\n\n\0"sv.size());
    const decode_result h = d.run(wire.substr(n));
    REQUIRE(std::holds_alternative<heartbeat>(h));
    CHECK(std::get<heartbeat>(h).consumed == 3);
    CHECK(decode_all(wire.substr(n + 3), version::v1_2).cmd == command::error);
}

TEST_CASE("heart-beats between frames leave the frames unchanged", "[stomp][codec]") {
    const stream_result without = feed("ACK\nid:1\n\n\0NACK\nid:2\n\n\0"sv, {}, version::v1_2);
    const stream_result with =
        feed("\n\r\nACK\nid:1\n\n\0\n\n\r\n\nNACK\nid:2\n\n\0\n"sv, {}, version::v1_2);
    REQUIRE(without.frames.size() == 2);
    CHECK(with.frames == without.frames);
    CHECK(with.heartbeat_bytes == 9);
    CHECK(with.error.empty());
    CHECK(with.leftover == 0);
}

TEST_CASE("decode gives the same frames for every split and one byte at a time", "[stomp][codec]") {
    for (const version v : all_versions) {
        INFO("version " << version_name(v));
        const stream_result whole = feed(mixed_stream, {}, v);
        REQUIRE(whole.error.empty());
        REQUIRE(whole.frames.size() == 7);
        REQUIRE(whole.leftover == 0);

        sb::test::check_every_split(
            mixed_stream.size(), whole, [&](const std::vector<std::size_t>& cuts) { return feed(mixed_stream, cuts, v); },
            3, 5);
    }
}

TEST_CASE("the mixed stream decodes to the expected frames", "[stomp][codec]") {
    const stream_result s = feed(mixed_stream, {}, version::v1_2);
    REQUIRE(s.frames.size() == 7);
    // CONNECT is never unescaped.
    CHECK(s.frames[0] == owned_frame{command::connect,
                                     {{"accept-version", "1.0,1.1,1.2"}, {"host", "/"}, {"login", "a\\cb"}},
                                     "", false});
    CHECK(s.frames[1] == owned_frame{command::send,
                                     {{"destination", "/queue/a"}, {"content-length", "5"}},
                                     std::string("x\0y\0z", 5), true});
    CHECK(s.frames[2] == owned_frame{command::send, {{"destination", "/queue/b"}}, "plain text body", false});
    CHECK(s.frames[3] == owned_frame{command::subscribe,
                                     {{"id", "0"}, {"destination", "/topic/a:b\\c"}, {"ack", "client"}},
                                     "", false});
    CHECK(s.frames[4].headers.size() == 5);
    CHECK(s.frames[5] == owned_frame{command::ack, {{"id", "1"}}, "", false});
    CHECK(s.frames[6] == owned_frame{command::disconnect, {{"receipt", "77"}}, "", false});
    CHECK(s.heartbeat_bytes == 1 + 3 + 1 + 3 + 2);

    // In 1.0 the same bytes are literal text.
    const stream_result s10 = feed(mixed_stream, {}, version::v1_0);
    REQUIRE(s10.frames.size() == 7);
    CHECK(s10.frames[3].headers[1].second == "/topic/a\\cb\\\\c");
}

TEST_CASE("decode reports need_more for every strict prefix of a frame", "[stomp][codec]") {
    const std::string_view with_length = "SEND\ndestination:/q\ncontent-length:4\n\nab\0c\0"sv;
    const std::size_t headers_end = with_length.find("\n\n") + 2;
    const std::string_view without_length = "SEND\r\ndestination:/q\r\n\r\nabc\0"sv;
    decoder d;
    for (std::size_t i = 1; i < with_length.size(); ++i) {
        INFO("prefix " << i);
        const decode_result r = d.run(with_length.substr(0, i));
        REQUIRE(std::holds_alternative<need_more>(r));
        // Once the headers are in, the total is known exactly.
        CHECK(std::get<need_more>(r).at_least == (i < headers_end ? 0 : with_length.size()));
    }
    for (std::size_t i = 1; i < without_length.size(); ++i) {
        INFO("prefix " << i);
        const decode_result r = d.run(without_length.substr(0, i));
        REQUIRE(std::holds_alternative<need_more>(r));
        CHECK(std::get<need_more>(r).at_least == 0);
    }
    const decode_result empty = d.run("");
    REQUIRE(std::holds_alternative<need_more>(empty));
    CHECK(std::get<need_more>(empty).at_least == 0);
}

TEST_CASE("max_frame_bytes accepts a frame of exactly that size and rejects one byte more", "[stomp][codec]") {
    const std::string without_length = "SEND\ndestination:/q\n\n" + repeat('b', 100) + '\0';
    const std::string with_length =
        "SEND\ncontent-length:100\n\n" + repeat('\0', 100) + '\0';
    for (const std::string& wire : {without_length, with_length}) {
        INFO("wire size " << wire.size());
        limits lim;
        lim.max_frame_bytes = wire.size();
        CHECK(decode_all(wire, version::v1_2, lim).body.size() == 100);

        lim.max_frame_bytes = wire.size() - 1;
        decoder d{lim, version::v1_2, {}, {}};
        CHECK(error_of(d.run(wire)) == "frame too large");
    }
}

TEST_CASE("a content-length that exceeds max_frame_bytes is rejected before the body arrives", "[stomp][codec]") {
    decoder d;
    d.lim.max_frame_bytes = 1000;
    const std::string head = "SEND\ncontent-length:";  // 20 bytes; + "NNN\n\n" = 25
    // 25 bytes of headers + 975 of body + NUL = 1001 > 1000: refused with no body buffered.
    CHECK(error_of(d.run(head + "975\n\n")) == "frame too large");
    // 974 fits exactly: the decoder asks for the whole 1000 bytes.
    const decode_result r = d.run(head + "974\n\n");
    REQUIRE(std::holds_alternative<need_more>(r));
    CHECK(std::get<need_more>(r).at_least == 1000);
    // A length near SIZE_MAX must not overflow the arithmetic.
    CHECK(error_of(d.run(head + std::to_string(SIZE_MAX) + "\n\n")) == "frame too large");
}

TEST_CASE("without content-length, a buffer past max_frame_bytes with no NUL is too large", "[stomp][codec]") {
    decoder d;
    d.lim.max_frame_bytes = 64;
    const std::string head = "SEND\ndestination:/q\n\n";
    const std::string almost = head + repeat('x', 64 - head.size() - 1);  // 63 bytes, NUL may come
    CHECK(std::holds_alternative<need_more>(d.run(almost)));
    CHECK(error_of(d.run(almost + 'x')) == "frame too large");       // 64 bytes, no NUL
    CHECK(error_of(d.run(almost + "xx" + '\0')) == "frame too large");  // NUL at byte 66
    CHECK(std::holds_alternative<decoded>(d.run(almost + '\0')));     // exactly 64
    // Headers that never end are bounded by the same limit.
    CHECK(error_of(d.run("SEND\n" + repeat('h', 10) + ":" + repeat('v', 50))) == "frame too large");
    CHECK(error_of(d.run(repeat('A', 40))) == "unknown command");
    d.lim.max_frame_bytes = 4;
    CHECK(error_of(d.run("SEND\n\n\0"sv)) == "frame too large");
}

TEST_CASE("max_headers accepts that many headers and rejects one more", "[stomp][codec]") {
    for (const std::size_t max : {std::size_t{0}, std::size_t{3}, limits{}.max_headers}) {
        INFO("max_headers " << max);
        auto frame_with = [](std::size_t count) {
            std::string s = "SEND\n";
            for (std::size_t i = 0; i < count; ++i) s += "h" + std::to_string(i) + ":v\n";
            return s + "\n" + '\0';
        };
        limits lim;
        lim.max_headers = max;
        CHECK(decode_all(frame_with(max), version::v1_2, lim).headers.size() == max);
        decoder d{lim, version::v1_2, {}, {}};
        CHECK(error_of(d.run(frame_with(max + 1))) == "too many headers");
    }
}

TEST_CASE("max_header_bytes accepts a line of exactly that size and rejects one byte more", "[stomp][codec]") {
    for (const std::size_t max : {std::size_t{16}, limits{}.max_header_bytes}) {
        INFO("max_header_bytes " << max);
        limits lim;
        lim.max_header_bytes = max;
        const std::string at_limit = "k:" + repeat('v', max - 2);
        const std::string past_limit = at_limit + "v";
        for (const std::string_view eol : {"\n"sv, "\r\n"sv}) {
            const std::string ok = "SEND\n" + at_limit + std::string(eol) + "\n" + '\0';
            CHECK(decode_all(ok, version::v1_2, lim).headers[0].second.size() == max - 2);
            decoder d{lim, version::v1_2, {}, {}};
            CHECK(error_of(d.run("SEND\n" + past_limit + std::string(eol) + "\n" + '\0')) ==
                  "header too long");
        }
    }
}

TEST_CASE("an over-long header line is rejected before its EOL arrives", "[stomp][codec]") {
    decoder d;
    d.lim.max_header_bytes = 16;
    const std::string at_limit = "SEND\nk:" + repeat('v', 14);
    CHECK(std::holds_alternative<need_more>(d.run(at_limit)));
    CHECK(std::holds_alternative<need_more>(d.run(at_limit + "\r")));  // CR may end the line
    CHECK(error_of(d.run(at_limit + "v")) == "header too long");
    CHECK(error_of(d.run(at_limit + "\r\r")) == "header too long");    // the first CR is text
    CHECK(error_of(d.run(at_limit + "v" + repeat('v', 100000))) == "header too long");
}

TEST_CASE("max_header_bytes counts the escaped form", "[stomp][codec]") {
    limits lim;
    lim.max_header_bytes = 8;
    // "k:\\n\\n\\n" is 8 bytes escaped (5 unescaped): accepted; one more escape is not.
    CHECK(decode_all("SEND\nk:\\n\\n\\n\n\n\0"sv, version::v1_2, lim).headers[0].second == "\n\n\n");
    decoder d{lim, version::v1_2, {}, {}};
    CHECK(error_of(d.run("SEND\nk:\\n\\n\\n\\n\n\n\0"sv)) == "header too long");
}

TEST_CASE("repeated headers keep wire order and the first occurrence wins", "[stomp][codec]") {
    const owned_frame f = decode_all("MESSAGE\nfoo:1\nbar:x\nfoo:2\nfoo:3\n\n\0"sv, version::v1_2);
    REQUIRE(f.headers.size() == 4);
    CHECK(f.headers[0] == std::pair<std::string, std::string>{"foo", "1"});
    CHECK(f.headers[2] == std::pair<std::string, std::string>{"foo", "2"});
    CHECK(f.headers[3] == std::pair<std::string, std::string>{"foo", "3"});

    decoder d;
    REQUIRE(std::holds_alternative<decoded>(d.run("MESSAGE\nfoo:1\nbar:x\nfoo:2\n\n\0"sv)));
    CHECK(d.out.get("foo") == "1");
    CHECK(d.out.get("bar") == "x");
    CHECK_FALSE(d.out.get("baz").has_value());
    CHECK_FALSE(d.out.get("FOO").has_value());  // names are case-sensitive

    // The first content-length decides where the body ends.
    const owned_frame cl = decode_all("SEND\ncontent-length:2\ncontent-length:5\n\nab\0"sv, version::v1_2);
    CHECK(cl.body == "ab");
}

TEST_CASE("get finds a header whose name was unescaped", "[stomp][codec]") {
    decoder d;
    REQUIRE(std::holds_alternative<decoded>(d.run("SEND\na\\cb:1\na:b:2\n\n\0"sv)));
    CHECK(d.out.get("a:b") == "1");
    CHECK(d.out.get("a") == "b:2");
}

TEST_CASE("content-length carries a binary body with NULs", "[stomp][codec]") {
    std::string body;
    for (int i = 0; i < 256; ++i) body.push_back(static_cast<char>(i));
    body += std::string("\0\0\n\r\n", 5);
    const std::string wire =
        "SEND\ncontent-length:" + std::to_string(body.size()) + "\n\n" + body + '\0';
    for (const version v : all_versions) {
        const owned_frame f = decode_all(wire, v);
        CHECK(f.body == body);
        CHECK(f.has_content_length);
    }
    const owned_frame empty = decode_all("SEND\ncontent-length:0\n\n\0"sv, version::v1_2);
    CHECK(empty.body.empty());
    CHECK(empty.has_content_length);
    CHECK_FALSE(decode_all("SEND\n\n\0"sv, version::v1_2).has_content_length);
}

TEST_CASE("bad content-length forms are rejected", "[stomp][codec]") {
    for (const std::string_view value :
         {"abc"sv, "1a"sv, "-1"sv, "+1"sv, ""sv, " 1"sv, "1 "sv, "0x10"sv, "1.0"sv,
          "99999999999999999999999"sv, "18446744073709551616"sv}) {
        decoder d;
        const std::string wire = "SEND\ncontent-length:" + std::string(value) + "\n\nx\0"s;
        INFO("content-length \"" << value << '"');
        CHECK(error_of(d.run(wire)) == "bad content-length");
    }
    decoder d;
    // The byte after the counted body must be the NUL.
    CHECK(error_of(d.run("SEND\ncontent-length:2\n\nabc\0"sv)) == "bad content-length");
    CHECK(error_of(d.run("SEND\ncontent-length:2\n\nab\n"sv)) == "bad content-length");
    // A shorter body waits for the counted bytes, even across a NUL.
    const decode_result r = d.run("SEND\ncontent-length:4\n\na\0"sv);
    REQUIRE(std::holds_alternative<need_more>(r));
    CHECK(std::get<need_more>(r).at_least == "SEND\ncontent-length:4\n\n"sv.size() + 5);
    // Leading zeros are still plain decimal digits.
    CHECK(decode_all("SEND\ncontent-length:002\n\nab\0"sv, version::v1_2).body == "ab");
}

TEST_CASE("unknown and lowercase commands are rejected", "[stomp][codec]") {
    for (const std::string_view wire :
         {"send\n\n\0"sv, "Send\n\n\0"sv, "SEND \n\n\0"sv, " SEND\n\n\0"sv, "FOO\n\n\0"sv,
          "\0\n"sv, "SEN\n\n\0"sv, "CONNECTEDX\r\n\r\n\0"sv, "SEND\r\r\n\n\0"sv, "GET / HTTP/1.1\r\n"sv}) {
        for (const version v : all_versions) {
            decoder d;
            d.v = v;
            INFO("wire \"" << wire << "\" version " << version_name(v));
            CHECK(error_of(d.run(wire)) == "unknown command");
        }
    }
}

TEST_CASE("a command line longer than 32 bytes is rejected without waiting for its EOL", "[stomp][codec]") {
    decoder d;
    CHECK(std::holds_alternative<need_more>(d.run(repeat('X', 32))));
    CHECK(std::holds_alternative<need_more>(d.run(repeat('X', 32) + "\r")));
    CHECK(error_of(d.run(repeat('X', 33))) == "unknown command");
    CHECK(error_of(d.run(repeat('X', 32) + "\r\r")) == "unknown command");
    CHECK(error_of(d.run(repeat('X', 100000))) == "unknown command");
    // A partial command waits, even when it is clearly not a command: 32 bytes is the bound.
    CHECK(std::holds_alternative<need_more>(d.run("SEN")));
}

TEST_CASE("a header line without a colon is malformed and the first colon splits", "[stomp][codec]") {
    decoder d;
    CHECK(error_of(d.run("SEND\ndestination\n\n\0"sv)) == "malformed header");
    CHECK(error_of(d.run("SEND\nok:1\nbroken\r\n\r\n\0"sv)) == "malformed header");
    CHECK(error_of(d.run("SEND\nk:v\n\r\r\n\0"sv)) == "malformed header");  // "\r" is not blank
    // An escaped colon does not split, in 1.1 and 1.2.
    CHECK(error_of(d.run("SEND\nk\\cv\n\n\0"sv)) == "malformed header");

    const owned_frame f = decode_all("SEND\nk:a:b:c\n:empty name\nempty value:\n\n\0"sv, version::v1_2);
    const owned_frame expected{command::send,
                               {{"k", "a:b:c"}, {"", "empty name"}, {"empty value", ""}}, "", false};
    CHECK(f == expected);
}

TEST_CASE("header views point into the input unless a field was unescaped", "[stomp][codec]") {
    const std::string wire = "SEND\nplain:value\nesc:a\\nb\n\nbody"s + '\0';
    decoder d;
    REQUIRE(std::holds_alternative<decoded>(d.run(wire)));
    auto in_wire = [&](std::string_view s) {
        return s.data() >= wire.data() && s.data() + s.size() <= wire.data() + wire.size();
    };
    REQUIRE(d.out.headers.size() == 2);
    CHECK(in_wire(d.out.headers[0].name));
    CHECK(in_wire(d.out.headers[0].value));
    CHECK(in_wire(d.out.headers[1].name));
    CHECK_FALSE(in_wire(d.out.headers[1].value));
    CHECK(d.out.headers[1].value == "a\nb");
    CHECK(d.out.body.data() == reinterpret_cast<const std::uint8_t*>(wire.data()) + wire.find("body"));
}

TEST_CASE("decode reuses the caller's frame and scratch between calls", "[stomp][codec]") {
    decoder d;
    std::string first = "SEND\n";
    for (int i = 0; i < 50; ++i) first += "k" + std::to_string(i) + ":v\\c" + std::to_string(i) + "\n";
    first += "\n"s + '\0';
    REQUIRE(std::holds_alternative<decoded>(d.run(first)));
    REQUIRE(d.out.headers.size() == 50);
    CHECK(d.out.headers[49].value == "v:49");
    // Every unescaped view is still intact after all fifty were written to scratch.
    for (int i = 0; i < 50; ++i) CHECK(d.out.headers[i].value == "v:" + std::to_string(i));

    const std::size_t headers_capacity = d.out.headers.capacity();
    const std::size_t scratch_capacity = d.scratch.capacity();
    const char* scratch_data = d.scratch.data();
    REQUIRE(std::holds_alternative<decoded>(d.run("ACK\nid:\\c7\n\n\0"sv)));
    CHECK(own(d.out) == owned_frame{command::ack, {{"id", ":7"}}, "", false});
    CHECK(d.out.headers.capacity() == headers_capacity);
    CHECK(d.scratch.capacity() == scratch_capacity);
    CHECK(d.scratch.data() == scratch_data);

    // A failed decode leaves no stale headers behind for the next one.
    CHECK(error_of(d.run("ACK\nid:\\t\n\n\0"sv)) == "invalid escape");
    REQUIRE(std::holds_alternative<decoded>(d.run("NACK\n\n\0"sv)));
    CHECK(d.out.headers.empty());
}

TEST_CASE("frames sent by stomp.py 8 decode as expected", "[stomp][codec]") {
    // Captured from python3-stomp 8 (Connection12) against a socket that answered CONNECTED.
    // Note its quirk: the ':' in the header *name* "weird:key" was sent unescaped, so the
    // first colon splits it; the value's LF and backslash were escaped.
    const std::string_view wire =
        "STOMP\naccept-version:1.2\nclient-id:fixture\nhost:127.0.0.1\nlogin:guest\npasscode:guest\n\n\0"
        "SEND\ncontent-length:5\ndestination:/queue/a\nweird:key:line1\\nline2\\\\x\n\nhello\0"
        "SEND\ncontent-length:7\ncontent-type:application/octet-stream\ndestination:/queue/a\n\nbin\0ary\0"
        "SUBSCRIBE\nack:client-individual\ndestination:/queue/a\nid:1\n\n\0"
        "DISCONNECT\nreceipt:5f98339b-a3b2-492e-8716-21b55f22648b\n\n\0"sv;
    const stream_result s = feed(wire, {}, version::v1_2);
    REQUIRE(s.error.empty());
    REQUIRE(s.frames.size() == 5);
    CHECK(s.frames[0].cmd == command::stomp);
    CHECK(s.frames[0].headers[0] == std::pair<std::string, std::string>{"accept-version", "1.2"});
    CHECK(s.frames[1].headers[2] ==
          std::pair<std::string, std::string>{"weird", "key:line1\nline2\\x"});
    CHECK(s.frames[1].body == "hello");
    CHECK(s.frames[2].body == std::string("bin\0ary", 7));
    CHECK(s.frames[3].cmd == command::subscribe);
    CHECK(s.frames[4].headers[0].second == "5f98339b-a3b2-492e-8716-21b55f22648b");
    // And byte at a time.
    std::vector<std::size_t> every_byte;
    for (std::size_t i = 1; i < wire.size(); ++i) every_byte.push_back(i);
    CHECK(feed(wire, every_byte, version::v1_2) == s);
}

TEST_CASE("errors are the same for every split of the input", "[stomp][codec]") {
    limits lim;
    lim.max_headers = 2;
    lim.max_header_bytes = 20;
    lim.max_frame_bytes = 60;
    for (const std::string_view wire :
         {"ACK\nid:1\n\n\0SEND\na:1\nb:2\nc:3\n\n\0"sv,             // too many headers
          "ACK\nid:1\n\n\0SEND\nabcdefghijklmnopqrstu:\n\n\0"sv,     // header too long
          "ACK\nid:1\n\n\0SEND\nk:\\q\n\n\0"sv,                      // invalid escape
          "ACK\nid:1\n\n\0SEND\ncontent-length:x\n\n\0"sv,           // bad content-length
          "ACK\nid:1\n\n\0SEND\ncontent-length:99\n\n\0"sv,          // frame too large
          "ACK\nid:1\n\n\0SEND\nk:v\n\n0123456789012345678901234567890123456789012345678901234\0"sv,
          "ACK\nid:1\n\n\0\nsend\n\n\0"sv}) {                         // unknown command
        const stream_result whole = feed(wire, {}, version::v1_2, lim);
        INFO("wire " << wire << " -> " << whole);
        REQUIRE(whole.frames.size() == 1);
        REQUIRE_FALSE(whole.error.empty());
        for (std::size_t i = 0; i <= wire.size(); ++i) {
            INFO("split at " << i);
            REQUIRE(feed(wire, {i}, version::v1_2, lim) == whole);
        }
    }
}
