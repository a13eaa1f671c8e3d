// tests/unit/adapters/output_flow_test.cpp — a connection's output bound: deliveries kept past
// the high watermark and handed back in order, consumers paused and resumed at the watermarks.
// (The stall timer is covered by tests/integration/slow_consumer_test.py.)
#include <catch2/catch.hpp>

#include <vector>

#include "adapters/engine/output_flow.hpp"

using sb::engine::output_flow;
using sb::engine::output_limits;

namespace {

// The pause transitions output_flow reports (the engine applies them to its consumers).
struct target {
    std::vector<bool> signals;   // true: pause, false: resume
    void grew(output_flow& f, std::size_t queued) {
        if (f.grew(queued)) signals.push_back(true);
    }
    template <typename Queued, typename Deliver>
    void written(output_flow& f, Queued&& queued, Deliver&& deliver) {
        if (f.written(std::forward<Queued>(queued), std::forward<Deliver>(deliver))) signals.push_back(false);
    }
};

sb::core::delivery delivery_of(sb::core::delivery_tag tag) {
    sb::core::delivery d;
    d.msg = std::make_shared<sb::core::message>();
    d.tag = tag;
    return d;
}

output_limits limits() {
    output_limits l;
    l.high_watermark = 100;
    l.low_watermark = 20;
    return l;
}

}  // namespace

TEST_CASE("output past the high watermark keeps deliveries, pauses, and resumes below the low one",
          "[adapters][flow]") {
    const auto l = limits();
    output_flow flow(l);
    target t;
    std::size_t queued = 0;   // bytes the session has encoded, not yet written
    auto d1 = delivery_of(1);
    CHECK_FALSE(flow.hold(7, d1, queued));     // room: encode now
    queued = 120;
    t.grew(flow, queued);
    CHECK(t.signals == std::vector<bool>{true});
    CHECK(flow.paused());
    for (sb::core::delivery_tag tag = 2; tag <= 5; ++tag) {
        auto d = delivery_of(tag);
        CHECK(flow.hold(tag == 3 ? 8 : 7, d, queued));   // over the watermark: kept, in order
    }

    // A write completed: 60 bytes left; each delivery handed back encodes 30 bytes.
    queued = 60;
    std::vector<sb::core::delivery_tag> handed;
    auto deliver = [&](sb::core::consumer_id, sb::core::delivery d) {
        // What the session's on_delivery does: hold() lets it through while handing back.
        CHECK_FALSE(flow.hold(0, d, queued));
        handed.push_back(d.tag);
        queued += 30;
    };
    t.written(flow, [&] { return queued; }, deliver);
    CHECK(handed == std::vector<sb::core::delivery_tag>{2, 3});   // up to the high watermark
    CHECK(t.signals == std::vector<bool>{true});                  // still paused

    // A delivery arriving now waits behind the kept ones, even with room.
    queued = 0;
    auto d6 = delivery_of(6);
    CHECK(flow.hold(7, d6, queued));
    flow.forget(8);   // consumer 8's subscription ended: nothing of it is handed back
    t.written(flow, [&] { return queued; }, deliver);
    CHECK(handed == std::vector<sb::core::delivery_tag>{2, 3, 4, 5, 6});
    CHECK(t.signals == std::vector<bool>{true});   // 90 bytes queued: above the low watermark
    queued = 20;
    t.written(flow, [&] { return queued; }, deliver);
    CHECK(t.signals == std::vector<bool>{true, false});
    CHECK_FALSE(flow.paused());
}

TEST_CASE("a consumer whose subscription ended has its kept deliveries dropped", "[adapters][flow]") {
    const auto l = limits();
    output_flow flow(l);
    target t;
    for (sb::core::delivery_tag tag = 1; tag <= 3; ++tag) {
        auto d = delivery_of(tag);
        CHECK(flow.hold(tag == 2 ? 8 : 7, d, 200));
    }
    flow.forget(7);
    std::vector<sb::core::delivery_tag> handed;
    t.written(flow, [] { return std::size_t(0); },
              [&](sb::core::consumer_id, sb::core::delivery d) { handed.push_back(d.tag); });
    CHECK(handed == std::vector<sb::core::delivery_tag>{2});
    flow.stop();
    auto d = delivery_of(9);
    CHECK_FALSE(flow.hold(7, d, 0));
}
