// tests/fuzz/mqtt_codec_fuzz.cpp — libFuzzer target for adapters/mqtt/codec.
// Input: byte 0 picks the version (% 3: seeds use '0' for 3.1, '1' for 3.1.1, '2' for 5) and,
// with its top bit, small limits; the rest is a stream of packets. Checks, trapping on any
// failure: every view of a decoded packet lies inside its bytes; every decoded packet
// re-encodes, decodes to an equal packet, and re-encodes to the same bytes; a prefix of the
// input gives need_more or the same result (so splits cannot change what a session sees).
#include "adapters/mqtt/codec.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <variant>

namespace {

using namespace sb::mqtt;

#define SB_FUZZ_CHECK(cond)            \
    do {                               \
        if (!(cond)) __builtin_trap(); \
    } while (0)

struct bounds {
    const std::uint8_t* begin;
    const std::uint8_t* end;

    bool holds(const void* p, std::size_t n) const {
        const auto* q = static_cast<const std::uint8_t*>(p);
        return n == 0 || (q >= begin && q + n <= end);
    }
    void check(std::string_view s) const { SB_FUZZ_CHECK(holds(s.data(), s.size())); }
    void check(std::span<const std::uint8_t> s) const { SB_FUZZ_CHECK(holds(s.data(), s.size())); }
    template <class T>
    void check(const std::optional<T>& o) const {
        if (o) check(*o);
    }
    void check(const properties& p) const {
        check(p.content_type);
        check(p.response_topic);
        check(p.correlation_data);
        check(p.assigned_client_identifier);
        check(p.authentication_method);
        check(p.authentication_data);
        check(p.response_information);
        check(p.server_reference);
        check(p.reason_string);
        for (const user_property& u : p.user_properties) {
            check(u.name);
            check(u.value);
        }
    }
};

// Every view of `p` points into the packet's own bytes.
void check_views(const packet& p, bounds b) {
    std::visit(
        [&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, connect>) {
                b.check(x.protocol_name);
                b.check(x.client_id);
                b.check(x.props);
                if (x.will_msg) {
                    b.check(x.will_msg->props);
                    b.check(x.will_msg->topic);
                    b.check(x.will_msg->payload);
                }
                b.check(x.username);
                b.check(x.password);
            } else if constexpr (std::is_same_v<T, publish>) {
                b.check(x.topic);
                b.check(x.payload);
                b.check(x.props);
            } else if constexpr (std::is_same_v<T, subscribe>) {
                b.check(x.props);
                for (const subscription& s : x.topics) b.check(s.filter);
            } else if constexpr (std::is_same_v<T, unsubscribe>) {
                b.check(x.props);
                for (const std::string_view f : x.filters) b.check(f);
            } else if constexpr (!std::is_same_v<T, pingreq> && !std::is_same_v<T, pingresp>) {
                b.check(x.props);
            }
        },
        p);
}

bool same_error(const decode_error& a, const decode_error& b) {
    return a.code == b.code && a.detail == b.detail;
}

struct state {
    limits lim;
    version v = version::v5;
    std::string wire, wire2;
};

// Decoding the first `cut` bytes must wait for more or agree with decoding all of `in`.
void check_prefix(const state& s, std::span<const std::uint8_t> in, std::size_t cut,
                  const decode_result& full) {
    const decode_result r = decode(in.first(cut), s.lim, s.v);
    if (const auto* m = std::get_if<need_more>(&r)) {
        SB_FUZZ_CHECK(m->at_least > cut);
        if (const auto* d = std::get_if<decoded>(&full)) {
            // One more than buffered while the fixed header is incomplete, then exact.
            SB_FUZZ_CHECK(m->at_least == d->consumed || m->at_least == cut + 1);
            SB_FUZZ_CHECK(cut < d->consumed);
        } else if (const auto* fm = std::get_if<need_more>(&full)) {
            SB_FUZZ_CHECK(m->at_least == fm->at_least || m->at_least == cut + 1);
        }
        return;
    }
    if (const auto* d = std::get_if<decoded>(&r)) {
        const auto* fd = std::get_if<decoded>(&full);
        SB_FUZZ_CHECK(fd && fd->consumed == d->consumed && fd->frame == d->frame);
    } else {
        const auto* fe = std::get_if<decode_error>(&full);
        SB_FUZZ_CHECK(fe && same_error(*fe, std::get<decode_error>(r)));
    }
}

void check_round_trip(state& s, const packet& p) {
    s.wire.clear();
    encode(p, s.v, s.wire);
    constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
    const limits wide{none, none, none};
    const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(s.wire.data()),
                                              s.wire.size());
    const decode_result r = decode(bytes, wide, s.v);
    const auto* d = std::get_if<decoded>(&r);
    SB_FUZZ_CHECK(d && d->consumed == s.wire.size());
    SB_FUZZ_CHECK(d->frame == p);
    // The encoding is canonical: a second pass writes the same bytes.
    s.wire2.clear();
    encode(d->frame, s.v, s.wire2);
    SB_FUZZ_CHECK(s.wire2 == s.wire);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    static state s;  // reused like a session's buffers
    constexpr version versions[] = {version::v3_1, version::v3_1_1, version::v5};
    s.v = versions[data[0] % 3];
    s.lim = (data[0] & 0x80) ? limits{96, 3, 3} : limits{};
    std::span<const std::uint8_t> in(data + 1, size - 1);

    for (std::size_t step = 0; !in.empty(); ++step) {
        const decode_result r = decode(in, s.lim, s.v);
        std::size_t end = in.size();
        if (const auto* d = std::get_if<decoded>(&r)) {
            SB_FUZZ_CHECK(d->consumed >= 2 && d->consumed <= in.size());
            SB_FUZZ_CHECK(d->consumed <= s.lim.max_packet_size);
            SB_FUZZ_CHECK(type_of(d->frame) == static_cast<packet_type>(in[0] >> 4));
            check_views(d->frame, bounds{in.data(), in.data() + d->consumed});
            end = d->consumed;
        } else if (const auto* m = std::get_if<need_more>(&r)) {
            SB_FUZZ_CHECK(m->at_least > in.size());
        } else {
            SB_FUZZ_CHECK(!std::get<decode_error>(r).detail.empty());
            SB_FUZZ_CHECK(is_error(std::get<decode_error>(r).code));
        }
        // Prefixes: the one just short of the result, one that moves around, and the first
        // five (where the fixed header is read).
        check_prefix(s, in, end - 1, r);
        check_prefix(s, in, (step * 7919 + size) % (end + 1), r);
        for (std::size_t i = 0; i < 5 && i < end; ++i) check_prefix(s, in, i, r);

        const auto* d = std::get_if<decoded>(&r);
        if (!d) break;  // need_more at the end of the input, or an error that closes the connection
        check_round_trip(s, d->frame);
        in = in.subspan(d->consumed);
    }
    return 0;
}
