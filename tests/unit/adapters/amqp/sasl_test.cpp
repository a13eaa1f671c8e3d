// The server side of AMQP 1.0 SASL frames (adapters/amqp/sasl.hpp).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "adapters/amqp/sasl.hpp"

using namespace sb::amqp;

namespace {

std::span<const std::uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// A sasl-init frame as Proton's client writes it: list8 of (sym8 mechanism, vbin8 response, str8 host).
std::string init_frame(std::string_view mech, std::string_view response, bool with_response = true) {
    std::string list;
    list += '\xA3';
    list += char(mech.size());
    list += mech;
    if (with_response) {
        list += '\xA0';
        list += char(response.size());
        list += response;
    } else {
        list += '\x40';
    }
    list += std::string("\xA1\x09localhost", 11);
    std::string body("\x00\x53\x41\xC0", 4);
    body += char(list.size() + 1);
    body += char(3);
    body += list;
    std::string f;
    const auto size = std::uint32_t(8 + body.size());
    f += char(size >> 24);
    f += char(size >> 16);
    f += char(size >> 8);
    f += char(size);
    f += std::string("\x02\x01\x00\x00", 4);
    return f + body;
}

}  // namespace

TEST_CASE("sasl: a PLAIN sasl-init is decoded with its response", "[amqp][sasl]") {
    const auto f = init_frame("PLAIN", std::string("\0alice\0secret", 13));
    auto r = sasl::decode_init(bytes(f));
    REQUIRE(std::holds_alternative<sasl::decoded>(r));
    const auto& d = std::get<sasl::decoded>(r);
    CHECK(d.consumed == f.size());
    CHECK(d.value.mechanism == "PLAIN");
    std::string_view user, password;
    REQUIRE(sasl::parse_plain(d.value.response, user, password));
    CHECK(user == "alice");
    CHECK(password == "secret");
}

TEST_CASE("sasl: partial frames ask for more; bad ones are errors", "[amqp][sasl]") {
    const auto f = init_frame("ANONYMOUS", "", false);
    for (std::size_t n = 0; n < f.size(); ++n) {
        auto r = sasl::decode_init(bytes(f.substr(0, n)));
        CHECK(std::holds_alternative<sasl::need_more>(r));
    }
    auto whole = sasl::decode_init(bytes(f));
    REQUIRE(std::holds_alternative<sasl::decoded>(whole));
    CHECK(std::get<sasl::decoded>(whole).value.mechanism == "ANONYMOUS");
    CHECK(std::get<sasl::decoded>(whole).value.response.empty());

    std::string big = f;
    big[0] = '\x00', big[1] = '\x01', big[2] = '\x00', big[3] = '\x00';   // 65536 bytes
    CHECK(std::holds_alternative<sasl::frame_error>(sasl::decode_init(bytes(big))));
    std::string other = f;
    other[10] = '\x44';   // sasl-outcome: not something a client sends
    CHECK(std::holds_alternative<sasl::frame_error>(sasl::decode_init(bytes(other))));
    std::string amqp_type = f;
    amqp_type[5] = '\x00';   // an AMQP frame where a SASL frame belongs
    CHECK(std::holds_alternative<sasl::frame_error>(sasl::decode_init(bytes(amqp_type))));
    std::string truncated = f.substr(0, 14);   // size says 14: the list is cut
    truncated[3] = 14;
    CHECK(std::holds_alternative<sasl::frame_error>(sasl::decode_init(bytes(truncated))));
}

TEST_CASE("sasl: PLAIN responses without two NULs or a user are refused", "[amqp][sasl]") {
    std::string_view u, p;
    CHECK_FALSE(sasl::parse_plain("alice", u, p));
    CHECK_FALSE(sasl::parse_plain(std::string_view("\0alice", 6), u, p));
    CHECK_FALSE(sasl::parse_plain(std::string_view("\0\0pw", 4), u, p));
    CHECK(sasl::parse_plain(std::string_view("admin\0bob\0pw", 12), u, p));
    CHECK(u == "bob");
}

TEST_CASE("sasl: mechanisms and outcome frames have the wire form of AMQP 1.0 §5.3", "[amqp][sasl]") {
    std::string out;
    const std::string_view mechs[] = {"PLAIN", "ANONYMOUS"};
    sasl::encode_mechanisms(out, mechs);
    const std::string expected_body = std::string("\x00\x53\x40\xC0\x15\x01\xE0\x12\x02\xA3", 10) + "\x05PLAIN" + "\x09" "ANONYMOUS";
    REQUIRE(out.size() == 8 + expected_body.size());
    CHECK(static_cast<unsigned char>(out[3]) == out.size());
    CHECK(out.substr(4, 4) == std::string("\x02\x01\x00\x00", 4));
    CHECK(out.substr(8) == expected_body);
    out.clear();
    sasl::encode_outcome(out, sasl::code::auth);
    CHECK(out == std::string("\x00\x00\x00\x10\x02\x01\x00\x00\x00\x53\x44\xC0\x03\x01\x50\x01", 16));
}
