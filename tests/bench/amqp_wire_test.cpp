// tests/bench/amqp_wire_test.cpp — the bench's AMQP message encoding (byte layout from the AMQP
// 1.0 spec, part 3) and the body decoder: round trips, the sections brokers add before the body,
// and malformed input refused rather than over-read.
#include <catch2/catch.hpp>

#include <string>

#include "tests/bench/amqp_wire.hpp"

using namespace sb::bench;

namespace {

std::span<const std::uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string text(std::span<const std::uint8_t> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

}  // namespace

TEST_CASE("a message is one data section, after a durable header when asked", "[bench][amqp]") {
    std::string out;
    amqp_encode_message(out, bytes("abc"), false);
    CHECK(out == std::string{"\x00\x53\x75\xa0\x03" "abc", 8});
    out.clear();
    amqp_encode_message(out, bytes("abc"), true);
    CHECK(out == std::string{"\x00\x53\x70\xc0\x02\x01\x41" "\x00\x53\x75\xa0\x03" "abc", 15});
}

TEST_CASE("bodies over 255 bytes take vbin32", "[bench][amqp]") {
    const std::string body(300, 'x');
    std::string out;
    amqp_encode_message(out, bytes(body), false);
    REQUIRE(out.size() == 3 + 5 + 300);
    CHECK(out.substr(0, 8) == std::string{"\x00\x53\x75\xb0\x00\x00\x01\x2c", 8});
    const auto b = amqp_message_body(bytes(out));
    REQUIRE(b);
    CHECK(text(*b) == body);
}

TEST_CASE("the body is found after the sections a broker adds", "[bench][amqp]") {
    // header (durable), message-annotations {x-opt-a: 1}, properties (to "q"), then the data.
    std::string m{"\x00\x53\x70\xc0\x02\x01\x41", 7};
    m += std::string{"\x00\x53\x72\xc1\x0c\x02\xa3\x07x-opt-a\x52\x01", 17};
    m += std::string{"\x00\x53\x73\xc0\x06\x03\x40\x40\xa1\x01q", 11};
    amqp_encode_message(m, bytes("payload"), false);
    const auto b = amqp_message_body(bytes(m));
    REQUIRE(b);
    CHECK(text(*b) == "payload");
    // A descriptor spelled as a full ulong, and an amqp-value holding binary.
    const std::string v{"\x00\x80\x00\x00\x00\x00\x00\x00\x00\x77\xa0\x02hi", 14};
    const auto w = amqp_message_body(bytes(v));
    REQUIRE(w);
    CHECK(text(*w) == "hi");
}

TEST_CASE("malformed or body-less messages give no body", "[bench][amqp]") {
    CHECK_FALSE(amqp_message_body(bytes("")));
    CHECK_FALSE(amqp_message_body(bytes(std::string{"\x00\x53\x75\xa0\x05" "abc", 8})));   // runs past the end
    CHECK_FALSE(amqp_message_body(bytes(std::string{"\x00\x53\x70\xc0\x02\x01\x41", 7})));   // header only
    CHECK_FALSE(amqp_message_body(bytes(std::string{"\x53\x75\xa0\x01x", 5})));              // not described
    CHECK_FALSE(amqp_message_body(bytes(std::string{"\x00\x53\x77\xa1\x02hi", 7})));         // a string value
    CHECK_FALSE(amqp_message_body(bytes(std::string{"\x00\x53\x75\x20", 4})));               // unknown constructor
}
