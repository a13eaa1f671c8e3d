// tests/fuzz/gateway_fuzz.cpp — libFuzzer target for what the gateway reads from strangers: the
// first bytes of a client (gateway/detect) and a backend server's replies to each health check
// (gateway/probe). Checks, trapping on any failure: detection of a prefix is need_more or the
// same answer (more bytes never change a decision); a decision needs at most detect_max_bytes;
// a probe's verdict on a prefix is need_more or final, and an `up` reply's goodbye is cut from
// that reply; refusals are well-formed for every protocol.
#include "gateway/detect.hpp"
#include "gateway/probe.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace {

using namespace sb::gateway;

#define SB_FUZZ_CHECK(cond)            \
    do {                               \
        if (!(cond)) __builtin_trap(); \
    } while (0)

void check_detection(std::span<const std::byte> in) {
    const detection whole = detect(in);
    if (whole.result != sniff_result::need_more) {
        // The decision stands whatever follows, and never needs more than detect_max_bytes.
        const detection capped = detect(in.first(std::min(in.size(), detect_max_bytes)));
        SB_FUZZ_CHECK(capped.result == whole.result);
        if (whole.result == sniff_result::known) SB_FUZZ_CHECK(capped.proto == whole.proto);
    }
    for (std::size_t n = 0; n < in.size() && n <= detect_max_bytes; ++n) {
        const detection part = detect(in.first(n));
        if (part.result == sniff_result::need_more) continue;
        SB_FUZZ_CHECK(part.result == whole.result);
        if (part.result == sniff_result::known) SB_FUZZ_CHECK(part.proto == whole.proto);
    }
}

void check_probes(std::string_view reply) {
    for (check_type t : {check_type::tcp, check_type::mqtt, check_type::stomp, check_type::amqp, check_type::openwire,
                         check_type::http}) {
        check_config c;
        c.type = t;
        const probe p = make_probe(c, "fuzz", "fuzz-check");
        std::string why;
        const auto whole = p.judge(reply, why);
        if (whole == probe::verdict::up) {
            const std::string bye = p.goodbye(reply);
            if (t == check_type::openwire) SB_FUZZ_CHECK(reply.starts_with(bye) && bye.size() >= 13);
        }
        // A final verdict on a prefix is the verdict on the whole reply.
        for (std::size_t n = 0; n < reply.size() && n < 64; ++n) {
            std::string w;
            const auto part = p.judge(reply.substr(0, n), w);
            if (part != probe::verdict::need_more) SB_FUZZ_CHECK(part == whole);
        }
    }
}

void check_refusals(std::string_view head) {
    if (const auto mqtt = refusal_for(wire::mqtt, head); mqtt && !mqtt->empty()) {
        SB_FUZZ_CHECK(mqtt->size() == 4 || mqtt->size() == 5);
        SB_FUZZ_CHECK((*mqtt)[0] == '\x20' && static_cast<std::size_t>((*mqtt)[1]) == mqtt->size() - 2);
    }
    const auto stomp = refusal_for(wire::stomp, head);
    SB_FUZZ_CHECK(stomp && stomp->starts_with("ERROR\n") && stomp->back() == '\0');
    SB_FUZZ_CHECK(refusal_for(wire::amqp, head) == std::string());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto bytes = std::as_bytes(std::span(data, size));
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    check_detection(bytes);
    check_probes(text);
    check_refusals(text);
    return 0;
}
