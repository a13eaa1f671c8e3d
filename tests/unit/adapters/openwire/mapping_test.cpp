// tests/unit/adapters/openwire/mapping_test.cpp — the OpenWire column of docs/mapping.md:
// destinations (temporary ones as each connection names them), JMS message ids, compressed
// bodies, and messages both ways.
#include <catch2/catch.hpp>

#include <zlib.h>

#include "adapters/openwire/mapping.hpp"

using namespace sb;
using namespace sb::openwire;

namespace {

// One connection's temporary destinations: "ID:client-1:1" is its own temporary queue, the
// kernel's "ID:sb-7-1".
struct temps final : temp_resolver {
    core::destination kernel{core::dest_kind::temp_queue, "ID:sb-7-1"};
    std::string client = "ID:client-1:1";
    std::optional<core::destination> own_temporary(std::string_view name, bool queue) const override {
        if (queue && name == client) return kernel;
        return std::nullopt;
    }
    std::string_view own_name(const core::destination& d) const override {
        return d == kernel ? std::string_view(client) : std::string_view();
    }
};

std::string deflate(std::string_view in) {
    uLongf n = compressBound(uLong(in.size()));
    std::string out(n, '\0');
    REQUIRE(compress(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(in.data()), uLong(in.size())) == Z_OK);
    out.resize(n);
    return out;
}

bytes bytes_of(std::string_view s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

}  // namespace

TEST_CASE("openwire mapping: destinations, options dropped, temporary ones per connection", "[openwire][mapping]") {
    temps t;
    CHECK(to_kernel(destination{type::activemq_queue, "orders.eu"}, t) == core::destination{core::dest_kind::queue, "orders.eu"});
    CHECK(to_kernel(destination{type::activemq_topic, "prices?consumer.prefetchSize=1"}, t) ==
          core::destination{core::dest_kind::topic, "prices"});
    CHECK(!to_kernel(destination{type::activemq_queue, {}}, t));
    CHECK(!to_kernel(destination{type::activemq_queue, ""}, t));
    // Our own temporary queue by the client's name; another connection's by the kernel's.
    CHECK(to_kernel(destination{type::activemq_temp_queue, "ID:client-1:1"}, t) == t.kernel);
    CHECK(to_kernel(destination{type::activemq_temp_queue, "ID:sb-9-4"}, t) ==
          core::destination{core::dest_kind::temp_queue, "ID:sb-9-4"});
    CHECK(to_wire(t.kernel, t) == destination{type::activemq_temp_queue, "ID:client-1:1"});
    const core::destination other{core::dest_kind::temp_topic, "ID:sb-9-5"};
    CHECK(to_wire(other, t) == destination{type::activemq_temp_topic, "ID:sb-9-5"});
    const core::destination topic{core::dest_kind::topic, "a.b"};
    CHECK(to_wire(topic, t) == destination{type::activemq_topic, "a.b"});
}

TEST_CASE("openwire mapping: JMS message ids parse from the right", "[openwire][mapping]") {
    message_id id;
    REQUIRE(parse_message_id("ID:host-41231-1670000000000-1:1:2:3:45", id));
    REQUIRE(id.producer_id);
    CHECK(id.producer_id->connection_id == "ID:host-41231-1670000000000-1:1");
    CHECK(id.producer_id->session_id == 2);
    CHECK(id.producer_id->value == 3);
    CHECK(id.producer_sequence_id == 45);
    CHECK_FALSE(parse_message_id("my-own-id", id));
    CHECK_FALSE(parse_message_id("ID:x:1:2:y", id));
    CHECK_FALSE(parse_message_id(":1:2:3", id));
}

TEST_CASE("openwire mapping: inflate takes java.util.zip's deflate, bounded", "[openwire][mapping]") {
    const std::string text(10000, 'x');
    const auto z = deflate(text);
    std::string out;
    REQUIRE(inflate(bytes_of(z), 1 << 20, out));
    CHECK(out == text);
    CHECK_FALSE(inflate(bytes_of(z), 100, out));                          // larger than allowed
    CHECK_FALSE(inflate(bytes_of(std::string_view(z).substr(0, z.size() / 2)), 1 << 20, out));   // truncated
    CHECK_FALSE(inflate(bytes_of("not zlib at all"), 1 << 20, out));
}

TEST_CASE("openwire mapping: a bytes message with headers, both ways", "[openwire][mapping]") {
    temps t;
    wire_format wf;
    const std::string body("\x00\x01\xff", 3);
    message m;
    m.data_structure_type = type::activemq_bytes_message;
    m.destination = destination{type::activemq_queue, "q"};
    m.reply_to = destination{type::activemq_temp_queue, "ID:client-1:1"};
    m.correlation_id = "corr";
    m.type = "kind";
    m.group_id = "g";
    m.group_sequence = 3;
    m.priority = 7;
    m.persistent = true;
    m.timestamp = 1000;
    m.expiration = 5000;
    message_id mid;
    REQUIRE(parse_message_id("ID:c-1:1:1:1:9", mid));
    m.message_id = mid;
    m.content = bytes_of(body);

    core::message k;
    REQUIRE_FALSE(message_from_wire(m, core::destination{core::dest_kind::queue, "q"}, wf, t, 1 << 20, k));
    CHECK(k.kind == core::body_kind::bytes);
    CHECK(k.body == body);
    CHECK(k.reply_to == t.kernel);
    CHECK(k.correlation_id == "corr");
    CHECK(k.type == "kind");
    CHECK(k.group_id == "g");
    CHECK(k.group_seq == 3);
    CHECK(k.priority == 7);
    CHECK(k.persistent);
    CHECK(k.timestamp_ms == 1000);
    CHECK(k.expiration_ms == 5000);
    const auto* id = k.find_property(message_id_property);
    REQUIRE(id);
    CHECK(std::get<std::string>(*id) == to_string(mid));

    wire_scratch s;
    message back;
    message_to_wire(k, t, "ID:sb-0", s, back);
    CHECK(back.data_structure_type == type::activemq_bytes_message);
    CHECK(std::string_view(reinterpret_cast<const char*>(back.content.data()), back.content.size()) == body);
    CHECK(back.reply_to == destination{type::activemq_temp_queue, "ID:client-1:1"});
    REQUIRE(back.message_id);
    CHECK(back.message_id->producer_id == mid.producer_id);
    CHECK(back.message_id->producer_sequence_id == 9);
    CHECK(back.priority == 7);
    CHECK(back.persistent);
    CHECK(back.correlation_id == "corr");
}

TEST_CASE("openwire mapping: a compressed bytes body is inflated; objects keep their content type", "[openwire][mapping]") {
    temps t;
    wire_format wf;
    const std::string payload(3000, 'b');
    std::string content("\x00\x00\x0b\xb8", 4);   // the uncompressed length, as ActiveMQBytesMessage writes it
    // ActiveMQBytesMessage deflates its whole write buffer: zeros follow the body.
    content += deflate(payload + std::string(1096, '\0'));
    message m;
    m.data_structure_type = type::activemq_bytes_message;
    m.compressed = true;
    m.content = bytes_of(content);
    core::message k;
    REQUIRE_FALSE(message_from_wire(m, core::destination{core::dest_kind::queue, "q"}, wf, t, 1 << 20, k));
    CHECK(k.body == payload);

    message bad = m;
    bad.content = bytes_of("\x00\x00\x00\x01garbage");
    core::message k2;
    const auto e = message_from_wire(bad, core::destination{core::dest_kind::queue, "q"}, wf, t, 1 << 20, k2);
    REQUIRE(e);
    CHECK(e->exception_class == "java.io.IOException");

    message obj;
    obj.data_structure_type = type::activemq_object_message;
    obj.content = bytes_of("\xac\xed\x00\x05");
    core::message k3;
    REQUIRE_FALSE(message_from_wire(obj, core::destination{core::dest_kind::queue, "q"}, wf, t, 1 << 20, k3));
    CHECK(k3.kind == core::body_kind::bytes);
    CHECK(k3.content_type == object_content_type);
    wire_scratch s;
    message back;
    message_to_wire(k3, t, "ID:sb-0", s, back);
    CHECK(back.data_structure_type == type::activemq_object_message);
    // A message from another protocol gets the broker's producer and the kernel id.
    REQUIRE(back.message_id);
    CHECK(back.message_id->producer_id->connection_id == "ID:sb-0");
}
