// tests/unit/adapters/stomp/mapping_test.cpp — SEND -> message -> MESSAGE, per the mapping table.
#include <catch2/catch.hpp>

#include "adapters/stomp/codec.hpp"
#include "adapters/stomp/mapping.hpp"

using namespace sb::stomp;
using namespace std::string_literals;
namespace core = sb::core;

namespace {

// Decodes exactly one frame from `wire` into `f` (views point into `wire` and `scratch`).
void decode_one(const std::string& wire, version v, frame& f, std::string& scratch) {
    auto r = decode(std::span(reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size()), limits{}, v, f, scratch);
    REQUIRE(std::holds_alternative<decoded>(r));
}

core::message from_send(const std::string& wire) {
    frame f;
    std::string scratch;
    decode_one(wire, version::v1_2, f, scratch);
    auto m = message_from_send(f);
    REQUIRE(std::holds_alternative<core::message>(m));
    return std::get<core::message>(std::move(m));
}

std::string send_error(const std::string& wire) {
    frame f;
    std::string scratch;
    decode_one(wire, version::v1_2, f, scratch);
    auto m = message_from_send(f);
    REQUIRE(std::holds_alternative<mapping_error>(m));
    return std::string(std::get<mapping_error>(m).message);
}

}  // namespace

TEST_CASE("destinations map /queue/ and /topic/ to kernel names", "[stomp][mapping]") {
    auto q = parse_destination("/queue/a.b", true);
    REQUIRE(std::holds_alternative<core::destination>(q));
    CHECK(std::get<core::destination>(q) == core::destination{core::dest_kind::queue, "a.b"});
    auto t = parse_destination("/topic/a.*", false);
    REQUIRE(std::holds_alternative<core::destination>(t));
    CHECK(std::get<core::destination>(t).is_topic());
    CHECK(format_destination(std::get<core::destination>(q)) == "/queue/a.b");
}

TEST_CASE("bad destinations are refused with a reason", "[stomp][mapping]") {
    CHECK(std::holds_alternative<mapping_error>(parse_destination("/foo/bar", true)));
    CHECK(std::holds_alternative<mapping_error>(parse_destination("/queue/", true)));
    CHECK(std::holds_alternative<mapping_error>(parse_destination("/queue/a.b*", true)));
    CHECK(std::holds_alternative<mapping_error>(parse_destination("/topic/a.*", true)));   // send
    CHECK(std::holds_alternative<mapping_error>(parse_destination("/queue/a.*", false)));  // queue
}

TEST_CASE("SEND headers become message fields and properties", "[stomp][mapping]") {
    auto m = from_send(
        "SEND\ndestination:/queue/orders\npersistent:true\npriority:7\nexpires:1700000000000\n"
        "reply-to:/topic/replies\ncorrelation-id:c-1\ntype:order\ncontent-type:text/plain\n"
        "JMSXGroupID:g1\nx-custom:v\\c1\nx-custom:second\n\nhello\0"s);
    CHECK(m.dest == core::destination{core::dest_kind::queue, "orders"});
    CHECK(m.persistent);
    CHECK(m.priority == 7);
    CHECK(m.expiration_ms == 1700000000000);
    REQUIRE(m.reply_to);
    CHECK(*m.reply_to == core::destination{core::dest_kind::topic, "replies"});
    CHECK(m.correlation_id == "c-1");
    CHECK(m.type == "order");
    CHECK(m.content_type == "text/plain");
    CHECK(m.group_id == "g1");
    CHECK(m.kind == core::body_kind::text);
    CHECK(m.body == "hello");
    REQUIRE(m.properties.size() == 1);   // the first x-custom wins
    CHECK(m.properties[0].name == "x-custom");
    CHECK(std::get<std::string>(m.properties[0].value) == "v:1");
}

TEST_CASE("content-length marks a bytes body that may hold NULs", "[stomp][mapping]") {
    auto m = from_send("SEND\ndestination:/queue/b\ncontent-length:3\n\na\0b\0"s);
    CHECK(m.kind == core::body_kind::bytes);
    CHECK(m.body == "a\0b"s);
}

TEST_CASE("invalid SEND headers are refused", "[stomp][mapping]") {
    CHECK_FALSE(send_error("SEND\n\nx\0"s).empty());
    CHECK_FALSE(send_error("SEND\ndestination:/queue/a\npriority:10\n\n\0"s).empty());
    CHECK_FALSE(send_error("SEND\ndestination:/queue/a\nexpires:soon\n\n\0"s).empty());
}

TEST_CASE("a MESSAGE frame carries the message back out, escaped and decodable", "[stomp][mapping]") {
    auto m = from_send("SEND\ndestination:/topic/t\ncorrelation-id:a\\nb\nx-k:v\n\nbody\0"s);
    m.id = 42;
    std::string out;
    encode_message(out, version::v1_2, m, 1, message_frame_args{"sub-1", "17", "sb"});
    frame f;
    std::string scratch;
    decode_one(out, version::v1_2, f, scratch);
    CHECK(f.cmd == command::message);
    CHECK(f.get("destination") == "/topic/t");
    CHECK(f.get("subscription") == "sub-1");
    CHECK(f.get("ack") == "17");
    CHECK(f.get("redelivered") == "true");
    CHECK(f.get("correlation-id") == "a\nb");
    CHECK(f.get("x-k") == "v");
    CHECK(f.get("content-length") == "4");
    CHECK(parse_message_id(*f.get("message-id")) == core::message_id{42});
    CHECK(std::string_view(reinterpret_cast<const char*>(f.body.data()), f.body.size()) == "body");
}

TEST_CASE("group headers: JMSXGroupSeq on SEND, JMSXGroupFirstForConsumer only on MESSAGE", "[stomp][mapping][groups]") {
    auto m = from_send(
        "SEND\ndestination:/queue/q\nJMSXGroupID:g\nJMSXGroupSeq:-1\nJMSXGroupFirstForConsumer:true\n\nx\0"s);
    CHECK(m.group_id == "g");
    CHECK(m.group_seq == -1);
    CHECK(m.properties.empty());   // the broker's to set, not a property
    CHECK_FALSE(send_error("SEND\ndestination:/queue/a\nJMSXGroupID:g\nJMSXGroupSeq:one\n\n\0"s).empty());

    std::string out;
    message_frame_args first{"s", "", "sb"};
    first.group_first = true;
    encode_message(out, version::v1_2, m, 0, first);
    frame f;
    std::string scratch;
    decode_one(out, version::v1_2, f, scratch);
    CHECK(f.get("JMSXGroupID") == "g");
    CHECK(f.get("JMSXGroupSeq") == "-1");
    CHECK(f.get("JMSXGroupFirstForConsumer") == "true");

    out.clear();
    encode_message(out, version::v1_2, m, 0, message_frame_args{"s", "", "sb"});
    frame later;
    decode_one(out, version::v1_2, later, scratch);
    CHECK(later.get("JMSXGroupID") == "g");
    CHECK_FALSE(later.get("JMSXGroupFirstForConsumer").has_value());
}
