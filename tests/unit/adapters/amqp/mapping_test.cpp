// AMQP 1.0 messages <-> kernel messages (adapters/amqp/mapping.hpp; the table in docs/mapping.md).
#include <catch2/catch.hpp>

#include <proton/annotation_key.hpp>
#include <proton/binary.hpp>
#include <proton/message.hpp>
#include <proton/message_id.hpp>
#include <proton/codec/vector.hpp>
#include <proton/timestamp.hpp>
#include <proton/value.hpp>

#include "adapters/amqp/mapping.hpp"

using namespace sb;

namespace {

core::message from(const proton::message& m, std::optional<core::destination> target = core::destination{
                                                  core::dest_kind::queue, "q"}) {
    auto r = amqp::message_from_amqp(m, target, 1000000);
    REQUIRE(std::holds_alternative<core::message>(r));
    return std::get<core::message>(r);
}

const core::property_value* prop(const core::message& m, std::string_view name) { return m.find_property(name); }

}  // namespace

TEST_CASE("amqp mapping: header and properties into the kernel message", "[amqp][mapping]") {
    proton::message m;
    m.id("msg-1");
    m.durable(true);
    m.priority(7);
    m.ttl(proton::duration(5000));
    m.subject("order.created");
    m.reply_to("/queue/replies");
    m.correlation_id("corr-9");
    m.content_type("application/json");
    m.group_id("g1");
    m.group_sequence(3);
    m.properties().put("color", "blue");
    m.properties().put("n", std::int32_t(7));
    m.properties().put("big", std::int64_t(1) << 40);
    m.properties().put("yes", true);
    m.properties().put("pi", 3.5);
    m.body(std::string("{\"a\":1}"));
    const auto k = from(m);
    CHECK(k.dest == core::destination{core::dest_kind::queue, "q"});
    CHECK(k.persistent);
    CHECK(k.priority == 7);
    CHECK(k.expiration_ms == 1005000);   // now + ttl
    CHECK(k.type == "order.created");
    REQUIRE(k.reply_to);
    CHECK(*k.reply_to == core::destination{core::dest_kind::queue, "replies"});
    CHECK(k.correlation_id == "corr-9");
    CHECK(k.content_type == "application/json");
    CHECK(k.group_id == "g1");
    CHECK(k.group_seq == 3);
    CHECK(k.kind == core::body_kind::text);
    CHECK(k.body == "{\"a\":1}");
    REQUIRE(prop(k, "message-id"));
    CHECK(std::get<std::string>(*prop(k, "message-id")) == "msg-1");
    CHECK(std::get<std::string>(*prop(k, "color")) == "blue");
    CHECK(std::get<std::int32_t>(*prop(k, "n")) == 7);
    CHECK(std::get<std::int64_t>(*prop(k, "big")) == std::int64_t(1) << 40);
    CHECK(std::get<bool>(*prop(k, "yes")));
    CHECK(std::get<double>(*prop(k, "pi")) == 3.5);
}

TEST_CASE("amqp mapping: bodies — data is bytes, a string is text, others refused", "[amqp][mapping]") {
    proton::message m;
    const std::string raw("\x00\xff\x01zz", 5);
    m.body(proton::binary(raw));
    m.inferred(true);
    auto k = from(m);
    CHECK(k.kind == core::body_kind::bytes);
    CHECK(k.body == raw);

    proton::message none;
    CHECK(from(none).kind == core::body_kind::none);

    proton::message list;
    proton::value v;
    proton::get(proton::value(std::vector<int>{1, 2}), v);
    list.body(v);
    auto r = amqp::message_from_amqp(list, core::destination{}, 0);
    REQUIRE(std::holds_alternative<amqp::mapping_error>(r));
    CHECK(std::get<amqp::mapping_error>(r).condition == "amqp:not-implemented");
}

TEST_CASE("amqp mapping: the anonymous relay takes the destination from `to`", "[amqp][mapping]") {
    proton::message m;
    m.to("topic://prices.eu");
    m.expiry_time(proton::timestamp(123456));
    auto k = from(m, std::nullopt);
    CHECK(k.dest == core::destination{core::dest_kind::topic, "prices.eu"});
    CHECK(k.expiration_ms == 123456);   // absolute-expiry-time wins over ttl
    proton::message no_to;
    auto r = amqp::message_from_amqp(no_to, std::nullopt, 0);
    REQUIRE(std::holds_alternative<amqp::mapping_error>(r));
    proton::message wildcard;
    wildcard.to("topic://a.*");
    CHECK(std::holds_alternative<amqp::mapping_error>(amqp::message_from_amqp(wildcard, std::nullopt, 0)));
}

TEST_CASE("amqp mapping: a kernel message out to AMQP, and back the same", "[amqp][mapping]") {
    core::message k;
    k.id = 42;
    k.dest = {core::dest_kind::topic, "t.x"};
    k.persistent = true;
    k.priority = 2;
    k.timestamp_ms = 5000;
    k.expiration_ms = 9000;
    k.reply_to = core::destination{core::dest_kind::temp_queue, "ID:sb-1-1"};
    k.correlation_id = "c";
    k.type = "subj";
    k.content_type = "text/plain";
    k.group_id = "g";
    k.group_seq = 9;
    k.properties.push_back({"s", std::string("v")});
    k.properties.push_back({"i8", std::int8_t(-3)});
    k.properties.push_back({"bin", std::vector<std::uint8_t>{1, 2}});
    k.kind = core::body_kind::bytes;
    k.body = std::string("\x00\x01", 2);
    proton::message m;
    amqp::message_to_amqp(k, 2, "sb", 6000, m);
    CHECK(proton::get<std::string>(m.id()) == "ID:sb-42");
    CHECK(m.to() == "topic://t.x");
    CHECK(m.durable());
    CHECK(m.priority() == 2);
    CHECK(m.delivery_count() == 2);
    CHECK(m.expiry_time().milliseconds() == 9000);
    CHECK(m.ttl().milliseconds() == 3000);   // what is left of its life
    CHECK(m.creation_time().milliseconds() == 5000);
    CHECK(m.reply_to() == "temp-queue://ID:sb-1-1");
    CHECK(proton::get<std::string>(m.correlation_id()) == "c");
    CHECK(m.subject() == "subj");
    CHECK(m.content_type() == "text/plain");
    CHECK(m.group_id() == "g");
    CHECK(m.group_sequence() == 9);
    CHECK(m.inferred());
    CHECK(proton::get<proton::binary>(m.body()) == proton::binary(std::string("\x00\x01", 2)));
    CHECK(proton::get<std::string>(m.properties().get("s")) == "v");
    CHECK(proton::get<std::int8_t>(m.properties().get("i8")) == -3);

    // Through the encoding and back: the kernel message as it was (but for the relayed fields).
    proton::message decoded;
    decoded.decode(m.encode());
    const auto back = from(decoded, k.dest);
    CHECK(back.reply_to == k.reply_to);
    CHECK(back.correlation_id == k.correlation_id);
    CHECK(back.body == k.body);
    CHECK(back.kind == core::body_kind::bytes);
    CHECK(back.expiration_ms == 9000);
    CHECK(std::get<std::vector<std::uint8_t>>(*prop(back, "bin")) == std::vector<std::uint8_t>{1, 2});
    CHECK(std::get<std::string>(*prop(back, "message-id")) == "ID:sb-42");

    // A client's own message-id goes back out as it came; a text body is an amqp-value string.
    core::message t;
    t.properties.push_back({"message-id", std::string("client-7")});
    t.kind = core::body_kind::text;
    t.body = "hi";
    amqp::message_to_amqp(t, 0, "sb", 0, m);
    CHECK(proton::get<std::string>(m.id()) == "client-7");
    CHECK_FALSE(m.properties().exists("message-id"));
    CHECK_FALSE(m.inferred());
    CHECK(proton::get<std::string>(m.body()) == "hi");
}

namespace {

// encode_amqp's bytes decoded by Proton, against what message_to_amqp fills for the same message.
void check_encoded_like_proton(const core::message& k, std::uint32_t redeliveries, std::int64_t now) {
    std::string bytes = "prefix";   // appended to, never cleared
    amqp::encode_amqp(k, redeliveries, "sb", now, bytes);
    REQUIRE(bytes.substr(0, 6) == "prefix");
    proton::message got;
    got.decode(std::vector<char>(bytes.begin() + 6, bytes.end()));
    proton::message want;
    amqp::message_to_amqp(k, redeliveries, "sb", now, want);
    CHECK(got.id() == want.id());
    CHECK(got.to() == want.to());
    CHECK(got.durable() == want.durable());
    CHECK(got.priority() == want.priority());
    CHECK(got.delivery_count() == want.delivery_count());
    CHECK(got.ttl() == want.ttl());
    CHECK(got.expiry_time() == want.expiry_time());
    CHECK(got.creation_time() == want.creation_time());
    CHECK(got.reply_to() == want.reply_to());
    CHECK(got.correlation_id() == want.correlation_id());
    CHECK(got.subject() == want.subject());
    CHECK(got.content_type() == want.content_type());
    CHECK(got.group_id() == want.group_id());
    CHECK(got.group_sequence() == want.group_sequence());
    CHECK(got.inferred() == want.inferred());
    CHECK(got.body().type() == want.body().type());
    if (want.body().type() != proton::NULL_TYPE) CHECK(proton::to_string(got.body()) == proton::to_string(want.body()));
    CHECK(got.properties().size() == want.properties().size());
    CHECK(proton::to_string(got.properties().value()) == proton::to_string(want.properties().value()));
    // And back into the kernel as message_to_amqp's message would come back.
    const auto a = from(got, k.dest), b = from(want, k.dest);
    CHECK(a.body == b.body);
    CHECK(a.kind == b.kind);
    CHECK(a.properties.size() == b.properties.size());
}

}  // namespace

TEST_CASE("amqp mapping: the hand encoder writes what Proton's message would", "[amqp][mapping]") {
    core::message k;
    k.id = 42;
    k.dest = {core::dest_kind::topic, "t.x"};
    k.persistent = true;
    k.priority = 2;
    k.timestamp_ms = 5000;
    k.expiration_ms = 9000;
    k.reply_to = core::destination{core::dest_kind::temp_queue, "ID:sb-1-1"};
    k.correlation_id = "c";
    k.type = "subj";
    k.content_type = "text/plain";
    k.group_id = "g";
    k.group_seq = 9;
    k.properties.push_back({"s", std::string("v")});
    k.properties.push_back({"i8", std::int8_t(-3)});
    k.properties.push_back({"i16", std::int16_t(-300)});
    k.properties.push_back({"i32", std::int32_t(-70000)});
    k.properties.push_back({"i64", std::int64_t(1) << 40});
    k.properties.push_back({"f", 1.5f});
    k.properties.push_back({"d", -2.25});
    k.properties.push_back({"t", true});
    k.properties.push_back({"none", std::monostate{}});
    k.properties.push_back({"bin", std::vector<std::uint8_t>{1, 2}});
    k.properties.push_back({"s", std::string("last wins")});
    k.kind = core::body_kind::bytes;
    k.body = std::string("\x00\x01", 2);
    SECTION("every field") { check_encoded_like_proton(k, 2, 6000); }
    SECTION("no header, a generated id, long strings and a long binary body") {
        core::message m;
        m.id = 7;
        m.dest = {core::dest_kind::queue, std::string(300, 'q')};
        m.type = std::string(256, 's');
        m.kind = core::body_kind::bytes;
        m.body = std::string(70000, 'b');
        check_encoded_like_proton(m, 0, 0);
        std::string bytes;
        amqp::encode_amqp(m, 0, "sb", 0, bytes);
        CHECK(bytes.substr(0, 3) == std::string("\x00\x53\x73", 3));   // properties first: no header
    }
    SECTION("a client's message-id and a text body; no body at all") {
        core::message t;
        t.dest = {core::dest_kind::queue, "q"};
        t.properties.push_back({"message-id", std::string("client-7")});
        t.kind = core::body_kind::text;
        t.body = "hi";
        check_encoded_like_proton(t, 0, 0);
        t.kind = core::body_kind::none;
        t.body.clear();
        check_encoded_like_proton(t, 1, 0);
    }
}

namespace {

std::string encoded(const proton::message& m) {
    std::vector<char> b;
    m.encode(b);
    return std::string(b.begin(), b.end());
}

// decode_amqp on the bytes, against message_from_amqp on Proton's decoding of them.
void check_decoded_like_proton(const proton::message& m, std::optional<core::destination> target) {
    const std::string bytes = encoded(m);
    const auto fast = amqp::decode_amqp(bytes, target, 1000000);
    REQUIRE(fast);
    proton::message slow_m;
    slow_m.decode(std::vector<char>(bytes.begin(), bytes.end()));
    const auto slow = amqp::message_from_amqp(slow_m, target, 1000000);
    REQUIRE(fast->index() == slow.index());
    if (const auto* e = std::get_if<amqp::mapping_error>(&slow)) {
        CHECK(std::get<amqp::mapping_error>(*fast).condition == e->condition);
        return;
    }
    const auto& a = std::get<core::message>(*fast);
    const auto& b = std::get<core::message>(slow);
    CHECK(a.dest == b.dest);
    CHECK(a.persistent == b.persistent);
    CHECK(a.priority == b.priority);
    CHECK(a.expiration_ms == b.expiration_ms);
    CHECK(a.reply_to == b.reply_to);
    CHECK(a.correlation_id == b.correlation_id);
    CHECK(a.type == b.type);
    CHECK(a.content_type == b.content_type);
    CHECK(a.group_id == b.group_id);
    CHECK(a.group_seq == b.group_seq);
    CHECK(a.kind == b.kind);
    CHECK(a.body == b.body);
    REQUIRE(a.properties.size() == b.properties.size());
    for (std::size_t i = 0; i < a.properties.size(); ++i) {
        CHECK(a.properties[i].name == b.properties[i].name);
        CHECK(a.properties[i].value == b.properties[i].value);
    }
}

}  // namespace

TEST_CASE("amqp mapping: the byte decoder reads what Proton's message gives", "[amqp][mapping]") {
    const core::destination q{core::dest_kind::queue, "q"};
    SECTION("every field it handles") {
        proton::message m;
        m.id("msg-1");
        m.durable(true);
        m.priority(7);
        m.ttl(proton::duration(5000));
        m.delivery_count(3);
        m.subject("order.created");
        m.reply_to("/queue/replies");
        m.correlation_id("corr-9");
        m.content_type("application/json");
        m.group_id("g1");
        m.group_sequence(3);
        m.creation_time(proton::timestamp(1234));
        m.properties().put("color", "blue");
        m.properties().put("b", true);
        m.properties().put("u8", std::uint8_t(200));
        m.properties().put("i8", std::int8_t(-5));
        m.properties().put("u16", std::uint16_t(60000));
        m.properties().put("i16", std::int16_t(-600));
        m.properties().put("u32", std::uint32_t(4000000000u));
        m.properties().put("i32", std::int32_t(-7));
        m.properties().put("u64", std::uint64_t(1) << 50);
        m.properties().put("i64", std::int64_t(-1) << 40);
        m.properties().put("f", 0.5f);
        m.properties().put("d", 2.5);
        m.properties().put("ts", proton::timestamp(99));
        m.properties().put("sym", proton::symbol("s"));
        m.properties().put("bin", proton::binary(std::string("\x01\x02", 2)));
        m.properties().put("message-id", "ignored");
        m.body(proton::binary(std::string(300, 'x')));
        m.inferred(true);
        check_decoded_like_proton(m, q);
    }
    SECTION("bodies: a string, a symbol, binary and null amqp-values, none; expiry and a foreign reply-to") {
        proton::message m;
        m.expiry_time(proton::timestamp(777));
        m.reply_to("http://elsewhere/x");
        m.body(std::string(400, 't'));
        check_decoded_like_proton(m, q);
        m.body(proton::symbol("sym"));
        check_decoded_like_proton(m, q);
        m.body(proton::binary(std::string("ab")));
        m.inferred(false);
        check_decoded_like_proton(m, q);
        proton::message empty;
        check_decoded_like_proton(empty, q);
    }
    SECTION("the anonymous relay: `to`, or an error without it") {
        proton::message m;
        m.to("topic://t.1");
        m.body(std::string("x"));
        check_decoded_like_proton(m, std::nullopt);
        m.to("");
        check_decoded_like_proton(m, std::nullopt);
    }
    SECTION("other shapes are left to Proton") {
        proton::message ulong_id;
        ulong_id.id(std::uint64_t(5));
        CHECK_FALSE(amqp::decode_amqp(encoded(ulong_id), q, 0));
        proton::message annotated;
        annotated.message_annotations().put(proton::annotation_key(proton::symbol("x-opt-delivery-delay")), std::int64_t(100));
        CHECK_FALSE(amqp::decode_amqp(encoded(annotated), q, 0));
        proton::message int_body;
        int_body.body(42);
        CHECK_FALSE(amqp::decode_amqp(encoded(int_body), q, 0));
        proton::message list_prop;
        list_prop.body(std::string("x"));
        const std::string good = encoded(list_prop);
        CHECK(amqp::decode_amqp(good, q, 0));
        for (std::size_t k = 1; k <= 3; ++k) CHECK_FALSE(amqp::decode_amqp(good.substr(0, good.size() - k), q, 0));   // the body cut
        for (std::size_t cut = 0; cut < good.size(); ++cut) (void)amqp::decode_amqp(good.substr(0, cut), q, 0);   // never past the end
        CHECK_FALSE(amqp::decode_amqp(good + std::string("\x00\x53\x78\x45", 4), q, 0));   // a footer
        CHECK_FALSE(amqp::decode_amqp(std::string("\x00\x53\x75\xa0\x05" "ab", 7), q, 0));  // cut short
    }
}
