// tests/bench/amqp_wire_test.cpp — the bench's AMQP message encoding (byte layout from the AMQP
// 1.0 spec, part 3) and the body decoder: round trips, the sections brokers add before the body,
// and malformed input refused rather than over-read.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

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

// ---- the hand-framed link, against bytes a broker sends (captured from Switchboard) ----------

namespace {

std::string hex(std::string_view h) {
    std::string out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
    return out;
}

// An AMQP frame on channel 0 around a performative (and payload).
std::string frame(const std::string& body) {
    std::string f;
    const auto n = static_cast<std::uint32_t>(8 + body.size());
    for (int s = 24; s >= 0; s -= 8) f.push_back(static_cast<char>(n >> s));
    f += std::string("\x02\x00\x00\x00", 4);
    return f + body;
}

struct recorder final : amqp_events {
    recorder() = default;
    virtual ~recorder() = default;
    int ready = 0, writable = 0;
    std::uint64_t settled = 0;
    std::vector<std::string> bodies;
    std::vector<std::string> failures;
    void amqp_ready() override { ++ready; }
    void amqp_writable() override { ++writable; }
    void amqp_settled(std::uint64_t n) override { settled += n; }
    void amqp_message(std::span<const std::uint8_t> body) override { bodies.push_back(text(body)); }
    void amqp_failed(std::string why) override { failures.push_back(std::move(why)); }
};

const std::string sasl_in = hex(
    "414d5150030100000000002202010000005340c01501e01202a305504c41494e09414e4f4e594d4f5553");
const std::string outcome_ok = hex("0000001002010000005344c003015000");
// AMQP header, open (max-frame-size 1 MiB, offered capabilities), begin.
const std::string open_begin = hex(
    "414d5150000100000000006d02000000005310c0600aa10b737769746368626f61726440700010000060040070000075304040f0000000"
    "3b00000003b30000000f414e4f4e594d4f55532d52454c41590000000b5348415245442d535542530000001044454c415945445f44454c"
    "495645525940400000001c02000000005311c00f0460000043707fffffff707fffffff");
// The broker's attach for our sender (its target echoed), then a flow of 1000 credit.
const std::string attach_sender = hex(
    "0000003e02000000005312c0310ea1067362622d703043415002500040005329c01507a10c2f71756575652f6361702e304340434240"
    "40404043444040400000002302000000005313c0160943707fffffff43707fffffff434370000003e84042");
// The broker's attach for our receiver (its source echoed).
const std::string attach_receiver = hex(
    "0000004e02000000005312c0410ea1067362622d6330434250025000005328c0190ba10c2f71756575652f6361702e30434043424040"
    "40404040005329c008074043404342404040404344404040");

amqp_link_config link(bool sender) {
    amqp_link_config c;
    c.sender = sender;
    c.address = "/queue/cap.0";
    c.container_id = "sbb1";
    c.link_name = sender ? "sbb-p0" : "sbb-c0";
    c.hostname = "127.0.0.1";
    c.credit = 10;
    return c;
}

void handshake(amqp_endpoint& ep, std::string& out, const std::string& attach) {
    ep.open();
    ep.take_output(out);
    REQUIRE(out == std::string("AMQP\x03\x01\x00\x00", 8));
    out.clear();
    ep.feed(bytes(sasl_in));
    ep.take_output(out);
    // sasl-init (a list32): ANONYMOUS with the initial response Proton sends
    CHECK(out == hex("0000002a02010000005341d00000001a00000002a309414e4f4e594d4f5553a009616e6f6e796d6f7573"));
    out.clear();
    ep.feed(bytes(outcome_ok));
    ep.take_output(out);
    REQUIRE(out.substr(0, 8) == std::string("AMQP\x00\x01\x00\x00", 8));
    CHECK(out.find("/queue/cap.0") != std::string::npos);
    out.clear();
    ep.feed(bytes(open_begin + attach));
}

}  // namespace

TEST_CASE("a sender: SASL, attach, credit, transfers, accepted ranges", "[bench][amqp]") {
    recorder r;
    amqp_endpoint ep(link(true), r);
    std::string out;
    handshake(ep, out, attach_sender);
    CHECK(r.failures.empty());
    CHECK(r.ready == 1);
    CHECK(ep.sendable() == 1000);
    for (int i = 0; i < 3; ++i) ep.send(bytes("abc"));
    CHECK(ep.sendable() == 997);
    ep.take_output(out);
    // Three transfers: handle 0, delivery-ids 0, 1, 2, an 8-byte tag, format 0; one data section.
    REQUIRE(out.size() > 3 * 8);
    std::size_t at = 0;
    for (int i = 0; i < 3; ++i) {
        REQUIRE(at + 4 <= out.size());
        const std::uint32_t n = (std::uint32_t(std::uint8_t(out[at])) << 24) | (std::uint32_t(std::uint8_t(out[at + 1])) << 16) |
                                (std::uint32_t(std::uint8_t(out[at + 2])) << 8) | std::uint8_t(out[at + 3]);
        const std::string f = out.substr(at, n);
        CHECK(f.substr(4, 4) == std::string("\x02\x00\x00\x00", 4));
        CHECK(f.substr(8, 3) == std::string("\x00\x53\x14", 3));
        CHECK(f.ends_with(std::string("\x00\x53\x75\xa0\x03" "abc", 8)));
        at += n;
    }
    CHECK(at == out.size());
    // The broker accepts 0..2 in one settled disposition (as captured).
    ep.feed(bytes(hex("0000001702000000005315c00a05414352024100532445")));
    CHECK(r.settled == 3);
    CHECK(r.failures.empty());
    // A later flow renews the credit: delivery-count 3 + link-credit 1000 - 3 sent.
    ep.feed(bytes(hex("0000002502000000005313c018095203707fffffff43707fffffff43520370000003e84042")));
    CHECK(ep.sendable() == 1000);
    CHECK(r.writable >= 1);
    // A rejection fails the run with the broker's condition.
    ep.feed(bytes(hex("0000002a02000000005315c01d05415203520341005325c0110100531dc00b01a308616d71703a626164")));
    REQUIRE(r.failures.size() == 1);
    CHECK(r.failures[0] == "a message was rejected: amqp:bad");
}

TEST_CASE("a receiver: credit, messages split across reads, one disposition range, top-ups", "[bench][amqp]") {
    recorder r;
    amqp_endpoint ep(link(false), r);
    std::string out;
    handshake(ep, out, attach_receiver);
    REQUIRE(r.failures.empty());
    CHECK(r.ready == 1);
    ep.take_output(out);
    // The first flow: delivery-count 0, link-credit 10.
    CHECK(out == frame(std::string("\x00\x53\x13\xd0\x00\x00\x00\x16\x00\x00\x00\x09\x43\x70\x7f\xff\xff\xff\x43\x70\x7f\xff"
                                   "\xff\xff\x43\x43\x52\x0a\x40\x42", 30)));
    out.clear();
    // Six transfers (delivery-ids 0..5), fed one byte at a time.
    std::string in;
    for (int i = 0; i < 6; ++i) {
        std::string t("\x00\x53\x14\xc0\x08\x04\x43\x52", 8);
        t += static_cast<char>(i);
        t += std::string("\xa0\x01", 2);
        t += static_cast<char>(i);
        t += '\x43';
        t += std::string("\x00\x53\x75\xa0\x02" "m", 6);
        t += static_cast<char>('0' + i);
        in += frame(t);
    }
    for (char c : in) ep.feed(bytes(std::string(1, c)));
    REQUIRE(r.failures.empty());
    REQUIRE(r.bodies.size() == 6);
    CHECK(r.bodies[5] == "m5");
    ep.take_output(out);
    // Each delivery accepted (settled) once; with a byte per read, one disposition per delivery.
    std::size_t dispositions = 0, flows = 0;
    for (std::size_t at = 0; at + 11 <= out.size();) {
        const std::uint32_t n = (std::uint32_t(std::uint8_t(out[at + 2])) << 8) | std::uint8_t(out[at + 3]);
        const auto code = static_cast<std::uint8_t>(out[at + 10]);
        dispositions += code == 0x15;
        flows += code == 0x13;
        at += n;
    }
    CHECK(dispositions == 6);
    CHECK(flows == 1);   // topped up once the credit fell below half
    // In one read: one range.
    out.clear();
    std::string more;
    for (int i = 6; i < 9; ++i) {
        std::string t("\x00\x53\x14\xc0\x08\x04\x43\x52", 8);
        t += static_cast<char>(i);
        t += std::string("\xa0\x01", 2);
        t += static_cast<char>(i);
        t += '\x43';
        t += std::string("\x00\x53\x75\xa0\x02" "m", 6);
        t += static_cast<char>('0' + i);
        more += frame(t);
    }
    ep.feed(bytes(more));
    ep.take_output(out);
    CHECK(r.bodies.size() == 9);
    CHECK(out.find(std::string("\x00\x53\x15\xd0", 4)) != std::string::npos);
    CHECK(out.find(std::string("\x41\x52\x06\x52\x08\x41", 6)) != std::string::npos);   // receiver, first 6, last 8, settled
    // A detach with an error fails the run with the broker's condition.
    ep.feed(bytes(hex("0000002902000000005316c01c03434100531dc01402a30e616d71703a6e6f742d666f756e64a10178")));
    REQUIRE(r.failures.size() == 1);
    CHECK(r.failures[0] == "the broker detached the link: amqp:not-found x");
}

TEST_CASE("a refused SASL exchange or another protocol fails the link", "[bench][amqp]") {
    {
        recorder r;
        amqp_endpoint ep(link(true), r);
        ep.open();
        ep.feed(bytes(sasl_in + hex("0000001002010000005344c003015001")));
        REQUIRE(r.failures.size() == 1);
        CHECK(r.failures[0].find("SASL") != std::string::npos);
    }
    {
        recorder r;
        amqp_endpoint ep(link(true), r);
        ep.open();
        ep.feed(bytes("HTTP/1.1 400 Bad Request\r\n"));
        REQUIRE(r.failures.size() == 1);
        CHECK(r.failures[0].find("protocol header") != std::string::npos);
    }
}
