// AMQP 1.0 addresses <-> kernel destinations (adapters/amqp/address.hpp).
#include <catch2/catch.hpp>

#include "adapters/amqp/address.hpp"

using namespace sb;
using amqp::capability_hint;
using amqp::subscription_name;

namespace {

core::destination ok(std::string_view text, capability_hint hint = capability_hint::none, bool for_send = true) {
    auto r = amqp::parse_address(text, hint, for_send);
    REQUIRE(std::holds_alternative<core::destination>(r));
    return std::get<core::destination>(r);
}

std::string_view error(std::string_view text, capability_hint hint = capability_hint::none, bool for_send = true) {
    auto r = amqp::parse_address(text, hint, for_send);
    REQUIRE(std::holds_alternative<amqp::address_error>(r));
    return std::get<amqp::address_error>(r).message;
}

}  // namespace

TEST_CASE("amqp address: every accepted form names the same kernel destinations", "[amqp][address]") {
    const core::destination queue{core::dest_kind::queue, "orders.eu"};
    const core::destination topic{core::dest_kind::topic, "prices.eu"};
    CHECK(ok("orders.eu") == queue);
    CHECK(ok("queue://orders.eu") == queue);
    CHECK(ok("/queue/orders.eu") == queue);
    CHECK(ok("topic://prices.eu") == topic);
    CHECK(ok("/topic/prices.eu") == topic);
    CHECK(ok("temp-queue://ID:sb-1-1") == core::destination{core::dest_kind::temp_queue, "ID:sb-1-1"});
    CHECK(ok("temp-topic://ID:sb-1-2") == core::destination{core::dest_kind::temp_topic, "ID:sb-1-2"});
}

TEST_CASE("amqp address: capabilities decide a bare name; a prefix wins over them", "[amqp][address]") {
    CHECK(ok("prices", capability_hint::topic).kind == core::dest_kind::topic);
    CHECK(ok("orders", capability_hint::queue).kind == core::dest_kind::queue);
    CHECK(ok("queue://orders", capability_hint::topic).kind == core::dest_kind::queue);
    CHECK(ok("/topic/x", capability_hint::queue).kind == core::dest_kind::topic);
    const std::string topic_caps[] = {"shared", "topic"};
    CHECK(amqp::hint_of(topic_caps) == capability_hint::topic);
    const std::string queue_caps[] = {"queue"};
    CHECK(amqp::hint_of(queue_caps) == capability_hint::queue);
    const std::string temp_caps[] = {"temporary-queue"};
    CHECK(amqp::hint_of(temp_caps) == capability_hint::queue);
    const std::string none[] = {"global"};
    CHECK(amqp::hint_of(none) == capability_hint::none);
}

TEST_CASE("amqp address: wildcards only to subscribe to topics; bad names refused", "[amqp][address]") {
    CHECK(ok("topic://a.*.c", capability_hint::none, false).name == "a.*.c");
    CHECK(ok("/topic/a.>", capability_hint::none, false).kind == core::dest_kind::topic);
    CHECK(error("topic://a.*", capability_hint::none, true) == "cannot send to a wildcard address");
    CHECK(error("a.*", capability_hint::none, false) == "wildcards are only supported on topics");
    CHECK(error("") == "empty address");
    CHECK(error("queue://") == "empty address");
    CHECK(error("topic://a.>.b", capability_hint::none, false) == "invalid destination name");
    CHECK(error("a*b") == "invalid destination name");
}

TEST_CASE("amqp address: format_address is read back as the same destination", "[amqp][address]") {
    for (const auto& d : {core::destination{core::dest_kind::queue, "q.1"}, core::destination{core::dest_kind::topic, "t.1"},
                          core::destination{core::dest_kind::temp_queue, "ID:x-1-1"},
                          core::destination{core::dest_kind::temp_topic, "ID:x-1-2"}}) {
        CHECK(ok(amqp::format_address(d)) == d);
    }
    CHECK(amqp::format_address({core::dest_kind::queue, "q.1"}) == "q.1");
    CHECK(amqp::format_address({core::dest_kind::topic, "t.1"}) == "topic://t.1");
}

TEST_CASE("amqp subscription names: Qpid JMS link names, container scope, global, volatile", "[amqp][address]") {
    // An exclusive durable subscription: the whole link name, in the container's scope (the
    // STOMP durable subscription of client-id "app1" with that name).
    CHECK(subscription_name("app1", "sub", false, false, true) == "app1:sub");
    CHECK(subscription_name("app1", "odd|name", false, false, true) == "app1:odd|name");
    // Shared: every link of one subscription names the same kernel subscription.
    CHECK(subscription_name("app1", "sub", true, false, true) == "app1:sub");
    CHECK(subscription_name("app1", "sub|2", true, false, true) == "app1:sub");
    // Global: no container scope, so two containers share it.
    CHECK(subscription_name("app1", "sub|global", true, true, true) == ":sub");
    CHECK(subscription_name("app2", "sub|global2", true, true, true) == ":sub");
    // Shared non-durable ones apart from the durable one of the same name.
    CHECK(subscription_name("app1", "sub|volatile1", true, false, false) == "app1:sub|volatile");
    CHECK(subscription_name("app1", "sub|volatile2", true, false, false) == "app1:sub|volatile");
    CHECK(subscription_name("app1", "sub", true, false, false) != subscription_name("app1", "sub", true, false, true));
    CHECK(subscription_name("app1", "sub", false, false, true) != subscription_name("app2", "sub", false, false, true));
}
