// adapters/stomp/codec.cpp — STOMP 1.0/1.1/1.2 frame decoder and encoder.
// Decoding is two passes over the header section: the first finds and checks the lines and
// keeps raw views, the second unescapes only the fields that hold a backslash.
#include "adapters/stomp/codec.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>

namespace sb::stomp {
namespace {

// No STOMP command is longer than 11 bytes ("UNSUBSCRIBE"); anything past 32 without an EOL is
// not a command, and waiting for more would let a peer make us buffer garbage.
constexpr std::size_t max_command_line = 32;

constexpr std::string_view unknown_command = "unknown command";
constexpr std::string_view malformed_header = "malformed header";
constexpr std::string_view too_many_headers = "too many headers";
constexpr std::string_view header_too_long = "header too long";
constexpr std::string_view invalid_escape = "invalid escape";
constexpr std::string_view bad_content_length = "bad content-length";
constexpr std::string_view frame_too_large = "frame too large";

constexpr std::size_t saturating_add(std::size_t a, std::size_t b) noexcept {
    return a > std::numeric_limits<std::size_t>::max() - b ? std::numeric_limits<std::size_t>::max()
                                                           : a + b;
}

const char* find(const char* p, char c, std::size_t n) noexcept {
    return n == 0 ? nullptr : static_cast<const char*>(std::memchr(p, c, n));
}

// STOMP 1.2 §Value Encoding: CONNECT and CONNECTED frames are never escaped, so that 1.0
// clients and servers can read them before a version is agreed (STOMP is the 1.2 CONNECT).
constexpr bool escapes_apply(command c, version v) noexcept {
    return v != version::v1_0 && c != command::connect && c != command::stomp &&
           c != command::connected;
}

// Appends the unescaped form of `s` to `scratch` (whose capacity the caller has reserved) and
// returns a view of it. \r is a 1.2 escape; 1.1 peers never send it, so accepting it there
// costs nothing and keeps one rule for both versions.
bool unescape(std::string_view s, std::string& scratch, std::string_view& out) noexcept {
    const std::size_t start = scratch.size();
    for (;;) {
        const char* bs = find(s.data(), '\\', s.size());
        if (!bs) break;
        const std::size_t run = static_cast<std::size_t>(bs - s.data());
        scratch.append(s.data(), run);
        if (run + 1 >= s.size()) return false;  // a lone backslash at the end
        switch (s[run + 1]) {
        case '\\': scratch.push_back('\\'); break;
        case 'n': scratch.push_back('\n'); break;
        case 'c': scratch.push_back(':'); break;
        case 'r': scratch.push_back('\r'); break;
        default: return false;  // STOMP 1.2: undefined escapes are a fatal protocol error
        }
        s.remove_prefix(run + 2);
    }
    scratch.append(s.data(), s.size());
    out = std::string_view(scratch.data() + start, scratch.size() - start);
    return true;
}

// content-length: plain decimal digits only; a sign, blank or overflow is an error rather
// than a guess, because a wrong length desynchronises the whole connection.
bool parse_length(std::string_view s, std::size_t& out) noexcept {
    if (s.empty()) return false;
    std::size_t n = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') return false;
        const auto d = static_cast<std::size_t>(c - '0');
        if (n > (std::numeric_limits<std::size_t>::max() - d) / 10) return false;
        n = n * 10 + d;
    }
    out = n;
    return true;
}

void append_escaped(std::string& out, std::string_view s) {
    std::size_t run = 0;  // start of the bytes not yet copied
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char* esc = nullptr;
        switch (s[i]) {
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case ':': esc = "\\c"; break;
        case '\r': esc = "\\r"; break;
        default: continue;
        }
        out.append(s.data() + run, i - run);
        out.append(esc, 2);
        run = i + 1;
    }
    out.append(s.data() + run, s.size() - run);
}

}  // namespace

decode_result decode(std::span<const std::uint8_t> in, const limits& lim, version v, frame& out,
                     std::string& scratch) noexcept {
    out.headers.clear();
    out.body = {};
    out.has_content_length = false;
    scratch.clear();

    const std::size_t n = in.size();
    if (n == 0) return need_more{0};
    const char* const p = reinterpret_cast<const char*>(in.data());

    // STOMP 1.2 §Heart-beating: EOLs between frames are heart-beats; return them all at once.
    if (p[0] == '\n' || p[0] == '\r') {
        std::size_t i = 0;
        while (i < n) {
            if (p[i] == '\n') ++i;
            else if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') i += 2;
            else break;
        }
        if (i > 0) return heartbeat{i};
        if (n == 1) return need_more{0};  // a lone CR: the next byte says if it is an EOL
        // CR + anything else falls through and fails as an unknown command.
    }

    // Look only at the first max_frame_bytes: a frame must end inside this window, so running
    // out of it means "frame too large" where a shorter buffer would mean "need more". Because
    // every check below depends only on bytes inside the window, any split of the same input
    // gives the same frame or the same error.
    const std::size_t w = std::min(n, lim.max_frame_bytes);
    const bool window_full = n >= lim.max_frame_bytes;
    const auto out_of_bytes = [window_full]() -> decode_result {
        if (window_full) return decode_error{frame_too_large};
        return need_more{0};
    };

    // Command line.
    const std::size_t cmd_scan = std::min(w, max_command_line + 2);  // + CR LF
    const char* eol = find(p, '\n', cmd_scan);
    if (!eol) {
        std::size_t len = cmd_scan;
        if (len > 0 && p[len - 1] == '\r') --len;  // may be the CR of a CRLF
        if (len > max_command_line) return decode_error{unknown_command};
        return out_of_bytes();
    }
    std::size_t len = static_cast<std::size_t>(eol - p);
    if (len > 0 && p[len - 1] == '\r') --len;
    const std::optional<command> cmd = parse_command(std::string_view(p, len));
    if (!cmd) return decode_error{unknown_command};
    out.cmd = *cmd;

    // Header lines, first pass: find each line, check it, keep raw (escaped) views.
    std::size_t pos = static_cast<std::size_t>(eol - p) + 1;
    const std::size_t line_scan = saturating_add(lim.max_header_bytes, 2);  // + CR LF
    for (;;) {
        const std::size_t scan = std::min(w - pos, line_scan);
        eol = find(p + pos, '\n', scan);
        if (!eol) {
            // Reject an over-long line as soon as it is buffered, not when its EOL arrives.
            len = scan;
            if (len > 0 && p[pos + len - 1] == '\r') --len;
            if (len > lim.max_header_bytes) return decode_error{header_too_long};
            return out_of_bytes();
        }
        const std::size_t next = static_cast<std::size_t>(eol - p) + 1;
        len = next - 1 - pos;
        if (len > 0 && p[pos + len - 1] == '\r') --len;
        if (len > lim.max_header_bytes) return decode_error{header_too_long};
        if (len == 0) {  // the blank line ends the headers
            pos = next;
            break;
        }
        if (out.headers.size() >= lim.max_headers) return decode_error{too_many_headers};
        const std::string_view line(p + pos, len);
        const std::size_t colon = line.find(':');  // the first ':' splits; values may hold more
        if (colon == std::string_view::npos) return decode_error{malformed_header};
        out.headers.push_back(header{line.substr(0, colon), line.substr(colon + 1)});
        pos = next;
    }
    const std::size_t body_start = pos;

    // Second pass: unescape the fields that hold a backslash into `scratch`. Reserve once, for
    // every byte from the first escaped field to the end of the headers (unescaping never
    // grows text), so that `scratch` never reallocates under the views already taken.
    if (escapes_apply(out.cmd, v)) {
        bool reserved = false;
        for (header& h : out.headers) {
            for (std::string_view* field : {&h.name, &h.value}) {
                if (!find(field->data(), '\\', field->size())) continue;
                if (!reserved) {
                    scratch.reserve(static_cast<std::size_t>(p + body_start - field->data()));
                    reserved = true;
                }
                [[maybe_unused]] const char* before = scratch.data();
                if (!unescape(*field, scratch, *field)) return decode_error{invalid_escape};
                assert(scratch.data() == before);
            }
        }
    }

    // Body: STOMP 1.2 §Header content-length — exactly that many octets, then a NUL.
    if (const std::optional<std::string_view> cl = out.get("content-length")) {
        out.has_content_length = true;
        std::size_t body_len = 0;
        if (!parse_length(*cl, body_len)) return decode_error{bad_content_length};
        // Refuse before the body arrives: the length alone says the frame is too large.
        if (body_start >= lim.max_frame_bytes || body_len > lim.max_frame_bytes - body_start - 1)
            return decode_error{frame_too_large};
        const std::size_t total = body_start + body_len + 1;
        if (n < total) return need_more{total};
        if (p[total - 1] != '\0') return decode_error{bad_content_length};
        out.body = in.subspan(body_start, body_len);
        return decoded{total};
    }

    // No content-length: the body runs to the first NUL, which must fall inside the window.
    const char* nul = find(p + body_start, '\0', w - body_start);
    if (!nul) return out_of_bytes();
    const auto end = static_cast<std::size_t>(nul - p);
    out.body = in.subspan(body_start, end - body_start);
    return decoded{end + 1};
}

void encode_command(std::string& out, command c) {
    out.append(to_string(c));
    out.push_back('\n');
}

void encode_header(std::string& out, std::string_view name, std::string_view value, version v,
                   bool escape) {
    if (!escape || v == version::v1_0) {
        out.reserve(out.size() + name.size() + value.size() + 2);
        out.append(name);
        out.push_back(':');
        out.append(value);
        out.push_back('\n');
        return;
    }
    append_escaped(out, name);
    out.push_back(':');
    append_escaped(out, value);
    out.push_back('\n');
}

void encode_body(std::string& out, std::span<const std::uint8_t> body) {
    out.push_back('\n');
    if (!body.empty()) out.append(reinterpret_cast<const char*>(body.data()), body.size());
    out.push_back('\0');
}

void encode(std::string& out, const frame& f, version v) {
    const bool escape = escapes_apply(f.cmd, v);
    encode_command(out, f.cmd);
    for (const header& h : f.headers) encode_header(out, h.name, h.value, v, escape);
    encode_body(out, f.body);
}

}  // namespace sb::stomp
