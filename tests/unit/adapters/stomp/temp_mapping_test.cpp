// tests/unit/adapters/stomp/temp_mapping_test.cpp — ActiveMQ's STOMP names for temporary
// destinations (/temp-queue/, /temp-topic/, /remote-temp-*/), reply-to rewriting, wildcard
// queue subscriptions and the browse end marker.
#include <catch2/catch.hpp>

#include <map>

#include "adapters/stomp/codec.hpp"
#include "adapters/stomp/mapping.hpp"

using namespace sb::stomp;
using namespace std::string_literals;
namespace core = sb::core;

namespace {

void decode_one(const std::string& wire, version v, frame& f, std::string& scratch) {
    auto r = decode(std::span(reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size()), limits{}, v, f, scratch);
    REQUIRE(std::holds_alternative<decoded>(r));
}

// A connection's temporary destinations as a session keeps them: created on first use.
struct fake_temps final : temp_destinations {
    std::map<std::string, core::destination> own;   // "/temp-queue/x" -> kernel destination
    std::map<std::string, std::string> names;       // kernel name -> "/temp-queue/x"
    std::size_t limit = 10;
    std::optional<core::destination> resolve(const temp_reference& r) override {
        if (r.remote) return core::destination{r.kind, std::string(r.name)};
        std::string key = std::string(r.kind == core::dest_kind::temp_queue ? "/temp-queue/" : "/temp-topic/") +
                          std::string(r.name);
        if (auto it = own.find(key); it != own.end()) return it->second;
        if (own.size() >= limit) return std::nullopt;
        core::destination d{r.kind, "ID:sb-1-" + std::to_string(own.size() + 1)};
        own.emplace(key, d);
        names.emplace(d.name, key);
        return d;
    }
    std::string_view own_name(const core::destination& d) const noexcept override {
        auto it = names.find(d.name);
        return it == names.end() ? std::string_view() : std::string_view(it->second);
    }
};

}  // namespace

TEST_CASE("ActiveMQ's temporary destination names parse as own or remote references", "[stomp][mapping][temporary]") {
    auto q = parse_temp_destination("/temp-queue/replies");
    REQUIRE(q);
    CHECK(q->kind == core::dest_kind::temp_queue);
    CHECK(q->name == "replies");
    CHECK(!q->remote);
    auto t = parse_temp_destination("/remote-temp-topic/ID:x-1-2");
    REQUIRE(t);
    CHECK(t->kind == core::dest_kind::temp_topic);
    CHECK(t->name == "ID:x-1-2");
    CHECK(t->remote);
    CHECK(!parse_temp_destination("/temp-queue/"));
    CHECK(!parse_temp_destination("/queue/a"));
    CHECK(format_destination(core::destination{core::dest_kind::temp_queue, "ID:x-1-2"}) == "/remote-temp-queue/ID:x-1-2");
}

TEST_CASE("a SEND to and a reply-to of a temporary destination resolve through the connection",
          "[stomp][mapping][temporary]") {
    fake_temps temps;
    frame f;
    std::string scratch;
    const auto wire = "SEND\ndestination:/temp-queue/box\nreply-to:/temp-topic/answers\n\nx\0"s;   // frame views point into it
    decode_one(wire, version::v1_2, f, scratch);
    auto m = message_from_send(f, &temps);
    REQUIRE(std::holds_alternative<core::message>(m));
    auto& msg = std::get<core::message>(m);
    CHECK(msg.dest == core::destination{core::dest_kind::temp_queue, "ID:sb-1-1"});
    REQUIRE(msg.reply_to);
    CHECK(*msg.reply_to == core::destination{core::dest_kind::temp_topic, "ID:sb-1-2"});
    CHECK(msg.properties.empty());
    // The same name again is the same destination.
    auto again = parse_stomp_destination("/temp-queue/box", true, &temps);
    REQUIRE(std::holds_alternative<core::destination>(again));
    CHECK(std::get<core::destination>(again).name == "ID:sb-1-1");

    // Without a connection's temporary destinations: refused as a destination, kept as a
    // plain property as a reply-to.
    const auto wire2 = "SEND\ndestination:/queue/q\nreply-to:/temp-queue/box\n\nx\0"s;
    decode_one(wire2, version::v1_2, f, scratch);
    auto plain = message_from_send(f);
    REQUIRE(std::holds_alternative<core::message>(plain));
    CHECK(!std::get<core::message>(plain).reply_to);
    CHECK(std::holds_alternative<mapping_error>(parse_stomp_destination("/temp-queue/x", true, nullptr)));

    // Too many: refused.
    temps.limit = 2;
    CHECK(std::holds_alternative<mapping_error>(parse_stomp_destination("/temp-queue/third", false, &temps)));
}

TEST_CASE("MESSAGE frames name a temporary destination by its owner's name for the owner only",
          "[stomp][mapping][temporary]") {
    fake_temps owner;
    auto d = owner.resolve(temp_reference{core::dest_kind::temp_queue, "replies", false});
    REQUIRE(d);
    core::message m;
    m.id = 7;
    m.dest = core::destination{core::dest_kind::queue, "service"};
    m.reply_to = *d;
    auto header = [](const std::string& wire, const char* name) {
        frame f;
        std::string scratch;
        decode_one(wire, version::v1_2, f, scratch);
        return std::string(f.get(name).value_or("-"));
    };
    std::string to_other, to_owner;
    encode_message(to_other, version::v1_2, m, 0, message_frame_args{"s", "", "sb"});
    CHECK(header(to_other, "reply-to") == "/remote-temp-queue/" + d->name);
    encode_message(to_owner, version::v1_2, m, 0, message_frame_args{"s", "", "sb", &owner});
    CHECK(header(to_owner, "reply-to") == "/temp-queue/replies");
    m.dest = *d;
    std::string in_own;
    encode_message(in_own, version::v1_2, m, 0, message_frame_args{"s", "", "sb", &owner});
    CHECK(header(in_own, "destination") == "/temp-queue/replies");
}

TEST_CASE("SUBSCRIBE accepts wildcards on queues; SEND does not", "[stomp][mapping]") {
    auto w = parse_stomp_destination("/queue/orders.>", false, nullptr);
    REQUIRE(std::holds_alternative<core::destination>(w));
    CHECK(std::get<core::destination>(w) == core::destination{core::dest_kind::queue, "orders.>"});
    CHECK(std::holds_alternative<mapping_error>(parse_stomp_destination("/queue/orders.>", true, nullptr)));
    CHECK(std::holds_alternative<mapping_error>(parse_stomp_destination("/queue/a.b*", false, nullptr)));
    auto plain = parse_stomp_destination("/queue/a.b", false, nullptr);
    REQUIRE(std::holds_alternative<core::destination>(plain));
    CHECK(std::get<core::destination>(plain) == core::destination{core::dest_kind::queue, "a.b"});
}

TEST_CASE("the browse end marker is ActiveMQ's", "[stomp][mapping]") {
    std::string out;
    encode_browse_end(out, version::v1_2, "br", core::destination{core::dest_kind::queue, "q"}, nullptr);
    frame f;
    std::string scratch;
    decode_one(out, version::v1_2, f, scratch);
    CHECK(f.cmd == command::message);
    CHECK(f.get("subscription") == "br");
    CHECK(f.get("destination") == "/queue/q");
    CHECK(f.get("browser") == "end");
    CHECK(f.get("message-id") == "0");
    CHECK(f.body.empty());
}
