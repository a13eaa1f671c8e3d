// tests/unit/gateway/admin_test.cpp — /metrics label values: escaped per the Prometheus text
// format (0.0.4) and printable whatever bytes a destination name holds.

#include <catch2/catch.hpp>

#include <string>

#include "gateway/admin.hpp"

using namespace sb::gateway;

TEST_CASE("metrics label values: Prometheus escapes, control bytes and stray bytes shown as \\xHH", "[gateway][admin]") {
    CHECK(label_value("queue://orders") == "queue://orders");
    CHECK(label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
    // The separator inside the name of a persistent MQTT session's subscription queue.
    CHECK(label_value(std::string("$durable.mqtt:pers1\x1fp/x")) == "$durable.mqtt:pers1\\\\x1fp/x");
    CHECK(label_value(std::string("\x00\x7f\t", 3)) == "\\\\x00\\\\x7f\\\\x09");
    CHECK(label_value("caf\xc3\xa9 \xe2\x82\xac") == "caf\xc3\xa9 \xe2\x82\xac");   // UTF-8 kept
    CHECK(label_value("a\xff" "b\xc3") == "a\\\\xffb\\\\xc3");                      // not UTF-8
}

TEST_CASE("metrics: a destination name with a control byte renders a parseable, printable line", "[gateway][admin]") {
    sb::core::destination_stats d;
    d.dest = {sb::core::dest_kind::queue, std::string("$durable.mqtt:pers1\x1fp/x")};
    d.depth = 3;
    const std::string text = render_metrics(admin_view{}, {d});
    for (char c : text) CHECK(((static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) || c == '\n'));
    CHECK(text.find("switchboard_destination_depth{destination=\"queue://$durable.mqtt:pers1\\\\x1fp/x\"} 3\n") !=
          std::string::npos);
}
