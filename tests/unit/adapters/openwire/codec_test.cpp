// tests/unit/adapters/openwire/codec_test.cpp — the OpenWire codec against ActiveMQ's own
// OpenWireFormat: golden streams written by the real client (GoldenWriter.java, committed in
// golden/) are decoded frame by frame and re-encoded byte for byte, for every version 1-12 in
// tight and loose encoding, with and without the marshalling cache; then the fields of the
// decoded commands, split inputs, limits and malformed frames, primitive maps, negotiation.
#include "adapters/openwire/codec.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace ow = sb::openwire;
using namespace std::string_literals;
using namespace std::string_view_literals;

ow::bytes as_bytes(std::string_view s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }
std::string_view as_text(ow::bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

std::string golden(const std::string& name) {
    const std::string path = std::string(SB_SOURCE_DIR) + "/tests/unit/adapters/openwire/golden/" + name + ".bin";
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f.good());
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

struct options {
    int version = 12;
    bool tight = true;
    bool cache = true;
    bool stack = true;
    bool no_prefix = false;
    int cache_size = 0;
};

ow::negotiated negotiated_of(const options& o) {
    ow::negotiated n;
    n.version = o.version;
    n.tight_encoding = o.tight;
    n.cache_enabled = o.cache;
    n.cache_size = o.cache_size;
    n.stack_trace_enabled = o.stack;
    n.size_prefix_disabled = o.no_prefix;
    return n;
}

std::string name_of(const options& o) {
    return "v" + std::to_string(o.version) + "-" + (o.tight ? "tight" : "loose") + "-" + (o.cache ? "cache" : "nocache");
}

// Decodes every frame of `stream` and re-encodes each one in a second wire format with the same
// options; returns the type bytes of the frames. The re-encoded stream must equal the input.
std::vector<std::uint8_t> round_trip(const std::string& stream, const options& o) {
    ow::wire_format in, out;
    in.apply(negotiated_of(o));
    out.apply(negotiated_of(o));
    std::vector<std::uint8_t> types;
    std::string again;
    std::size_t at = 0;
    while (at < stream.size()) {
        auto r = in.decode(as_bytes(std::string_view(stream).substr(at)));
        if (auto* e = std::get_if<ow::decode_error>(&r)) FAIL("frame " << types.size() << " at " << at << ": " << e->detail);
        REQUIRE(std::holds_alternative<ow::decoded>(r));
        const auto& d = std::get<ow::decoded>(r);
        types.push_back(ow::type_of(*d.frame));
        const std::size_t before = again.size();
        const std::string_view err = out.encode(*d.frame, again);
        INFO("frame " << types.size() - 1 << " type " << int(types.back()));
        REQUIRE(err.empty());
        CHECK(std::string_view(again).substr(before) == std::string_view(stream).substr(at, d.consumed));
        at += d.consumed;
    }
    CHECK(again == stream);
    return types;
}

TEST_CASE("openwire: every golden stream decodes and re-encodes byte for byte", "[openwire][codec]") {
    for (int v = 1; v <= 12; ++v) {
        for (bool tight : {true, false}) {
            for (bool cache : {true, false}) {
                options o{v, tight, cache};
                INFO(name_of(o));
                const auto types = round_trip(golden(name_of(o)), o);
                CHECK(types.front() == ow::type::connection_info);
                CHECK(types.back() == ow::type::message_dispatch_notification);
                // The messages and the optional commands of the version.
                const auto count = [&](std::uint8_t t) { return std::count(types.begin(), types.end(), t); };
                CHECK(count(ow::type::activemq_text_message) == 2);
                CHECK(count(ow::type::message_pull) == (v >= 2 ? 1 : 0));
                CHECK(count(ow::type::producer_ack) == (v >= 3 ? 1 : 0));
                CHECK(count(ow::type::activemq_blob_message) == (v >= 3 ? 1 : 0));
                CHECK(count(ow::type::exception_response) == 1);
            }
        }
    }
}

TEST_CASE("openwire: size prefix off, stack traces off, a small cache with evictions", "[openwire][codec]") {
    round_trip(golden("v12-tight-cache-noprefix"), options{12, true, true, true, true});
    round_trip(golden("v12-loose-nocache-nostack"), options{12, false, false, false});
    const auto types = round_trip(golden("v12-tight-cache120"), options{12, true, true, true, false, 120});
    CHECK(std::count(types.begin(), types.end(), ow::type::activemq_text_message) == 62);
}

TEST_CASE("openwire: the WireFormatInfo of each version", "[openwire][codec]") {
    for (int v = 1; v <= 12; ++v) {
        INFO("v" << v);
        const std::string s = golden("v" + std::to_string(v) + "-wireformatinfo");
        ow::wire_format wf;   // before negotiation: loose, no cache, size prefix
        auto r = wf.decode(as_bytes(s));
        REQUIRE(std::holds_alternative<ow::decoded>(r));
        const auto& d = std::get<ow::decoded>(r);
        CHECK(d.consumed == s.size());
        const auto& info = std::get<ow::wire_format_info>(d.frame->value);
        CHECK(as_text(info.magic) == "ActiveMQ");
        CHECK(info.version == v);
        ow::wire_format_settings st;
        CHECK(ow::read_settings(info.marshalled_properties, st, wf).empty());
        CHECK(st.tight_encoding_enabled);
        CHECK(st.cache_enabled);
        CHECK(st.cache_size == 1024);
        CHECK(st.stack_trace_enabled);
        CHECK(st.tcp_no_delay_enabled);
        CHECK_FALSE(st.size_prefix_disabled);
        CHECK(st.max_inactivity_duration == 30000);
        CHECK(st.max_inactivity_duration_initial_delay == 10000);
        CHECK(st.max_frame_size == 104857600);
        CHECK(st.provider_name == "ActiveMQ");
        CHECK(st.provider_version == "5.17.2");
        std::string again;
        ow::wire_format out;
        CHECK(out.encode(info, again).empty());
        CHECK(again == s);
    }
}

TEST_CASE("openwire: decoded fields are what the Java client set", "[openwire][codec]") {
    for (bool tight : {true, false}) {
        for (bool cache : {true, false}) {
            options o{12, tight, cache};
            INFO(name_of(o));
            const std::string stream = golden(name_of(o));
            ow::wire_format wf;
            wf.apply(negotiated_of(o));
            std::size_t at = 0;
            auto next = [&]() -> const ow::command& {
                auto r = wf.decode(as_bytes(std::string_view(stream).substr(at)));
                REQUIRE(std::holds_alternative<ow::decoded>(r));
                at += std::get<ow::decoded>(r).consumed;
                return *std::get<ow::decoded>(r).frame;
            };
            const auto conn = "ID:golden-host-40125-1700000000000-1:1"sv;

            const auto& ci = std::get<ow::connection_info>(next().value);
            CHECK(ci.command_id == 1);
            CHECK(ci.response_required);
            REQUIRE(ci.connection_id);
            CHECK(ci.connection_id->value == conn);
            CHECK(ci.client_id == "golden-client");
            CHECK(ci.user_name == "user");
            CHECK_FALSE(ow::is_null(ci.password));   // "" is not null
            CHECK(ci.password.empty());
            CHECK(ci.manageable);
            CHECK(ci.fault_tolerant);
            CHECK(ci.client_ip == "tcp://127.0.0.1:40125");
            CHECK_FALSE(ci.broker_path);

            const auto& si = std::get<ow::session_info>(next().value);
            CHECK(si.session_id == ow::session_id{conn, 1});

            const auto& cons = std::get<ow::consumer_info>(next().value);
            CHECK(cons.consumer_id == ow::consumer_id{conn, 1, 1});
            REQUIRE(cons.destination);
            CHECK(cons.destination->type == ow::type::activemq_queue);
            CHECK(cons.destination->physical_name == "golden.queue");
            CHECK(cons.prefetch_size == 1000);
            CHECK(cons.selector == "color = 'red' AND size > 3");
            CHECK(cons.client_id == "golden-client");
            CHECK(cons.subscription_name == "golden-sub");
            CHECK(cons.no_local);
            CHECK(cons.exclusive);
            CHECK_FALSE(cons.retroactive);
            CHECK(cons.priority == -2);
            REQUIRE(cons.broker_path);
            REQUIRE(cons.broker_path->size() == 1);
            CHECK((*cons.broker_path)[0].value == "broker-a");
            REQUIRE(cons.network_consumer_path);
            CHECK((*cons.network_consumer_path)[0] == ow::consumer_id{conn, 1, 9});

            const auto& pi = std::get<ow::producer_info>(next().value);
            CHECK(pi.producer_id == ow::producer_id{conn, 1, 1});
            CHECK_FALSE(pi.destination);
            CHECK(pi.window_size == 1048576);
            CHECK(pi.dispatch_async);

            const auto& m = std::get<ow::message>(next().value);
            CHECK(m.data_structure_type == ow::type::activemq_text_message);
            CHECK(m.command_id == 101);
            CHECK(m.persistent);
            REQUIRE(m.message_id);
            CHECK(m.message_id->text_view == "ID:golden-text-view:1:1:1");
            CHECK(m.message_id->producer_id == ow::producer_id{conn, 1, 1});
            CHECK(m.message_id->producer_sequence_id == 1);
            REQUIRE(m.transaction_id);
            const auto& ltx = std::get<ow::local_transaction_id>(*m.transaction_id);
            CHECK(ltx.value == 7);
            REQUIRE(ltx.connection_id);
            CHECK(ltx.connection_id->value == conn);
            REQUIRE(m.original_destination);
            CHECK(m.original_destination->type == ow::type::activemq_topic);
            CHECK(m.group_id == "group-1");
            CHECK(m.group_sequence == 3);
            CHECK(m.correlation_id == "corr-\xc3\xbc");
            CHECK(m.expiration == 1700000060000);
            CHECK(m.priority == 9);
            REQUIRE(m.reply_to);
            CHECK(m.reply_to->type == ow::type::activemq_temp_queue);
            CHECK(m.timestamp == 1700000000124);
            CHECK(m.type == "golden-type");
            CHECK(m.target_consumer_id == ow::consumer_id{conn, 1, 1});
            CHECK(m.redelivery_counter == 2);
            REQUIRE(m.broker_path);
            REQUIRE(m.broker_path->size() == 2);
            CHECK((*m.broker_path)[1].value == "broker-b");
            CHECK(m.arrival == -1);
            CHECK(m.user_id == "user");
            CHECK(m.droppable);
            REQUIRE(m.cluster);
            CHECK(m.cluster->empty());
            CHECK(m.broker_in_time == 65535);
            CHECK(m.broker_out_time == 70000);
            CHECK(m.jmsx_group_first_for_consumer);
            CHECK_FALSE(m.compressed);
            std::string_view body;
            CHECK(ow::read_text_body(m.content, body, wf).empty());
            CHECK(body == "hello \xc3\xa9\xc3\xa8 \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80 nul\0end"sv);

            // Every property type.
            ow::primitive_reader pr(m.marshalled_properties, wf);
            std::int32_t n = 0;
            REQUIRE(pr.read_map_size(n));
            std::map<std::string, ow::primitive> props;
            for (std::int32_t i = 0; i < n; ++i) {
                std::string_view k;
                ow::primitive v;
                REQUIRE(pr.read_key(k));
                REQUIRE(pr.read_value(v));
                props[std::string(k)] = v;
            }
            CHECK(pr.at_end());
            CHECK(props.at("bool").type == ow::primitive_type::boolean);
            CHECK(props.at("bool").b);
            CHECK(props.at("byte").type == ow::primitive_type::byte);
            CHECK(props.at("byte").i == -5);
            CHECK(props.at("char").type == ow::primitive_type::char_);
            CHECK(props.at("char").i == 0xe9);
            CHECK(props.at("short").i == -300);
            CHECK(props.at("int").i == 123456789);
            CHECK(props.at("long").i == -1234567890123);
            CHECK(props.at("float").type == ow::primitive_type::float_);
            CHECK(props.at("float").d == 1.5);
            CHECK(props.at("double").d == -2.25);
            CHECK(props.at("string").s == "s\xc3\xa9\0\xf0\x9f\x98\x80"sv);
            CHECK(props.at("empty").type == ow::primitive_type::string);
            CHECK(props.at("empty").s.empty());
            CHECK(props.at("nullvalue").type == ow::primitive_type::null);
            CHECK(props.at("bytes").s == "\x01\x02\x03\xff"sv);
            CHECK(props.at("bigstring").type == ow::primitive_type::big_string);
            CHECK(props.at("bigstring").s.size() == 8999 + 2);
            const auto& nested = props.at("map");
            CHECK(nested.type == ow::primitive_type::map);
            CHECK(nested.count == 2);
            ow::primitive_reader nr(ow::bytes(reinterpret_cast<const std::uint8_t*>(nested.s.data()), nested.s.size()), wf);
            std::set<std::string> keys;
            for (int i = 0; i < nested.count; ++i) {
                std::string_view k;
                ow::primitive v;
                REQUIRE(nr.read_key(k));
                REQUIRE(nr.read_value(v));
                keys.insert(std::string(k));
                if (k == "l") {
                    CHECK(v.type == ow::primitive_type::list);
                    CHECK(v.count == 3);
                }
            }
            CHECK(nr.at_end());
            CHECK(keys == std::set<std::string>{"k", "l"});
            CHECK(props.at("list").type == ow::primitive_type::list);

            // The second text message: same producer and destination (cache hits), null text.
            const auto& m2 = std::get<ow::message>(next().value);
            CHECK(m2.producer_id == ow::producer_id{conn, 1, 1});
            REQUIRE(m2.destination);
            CHECK(m2.destination->physical_name == "golden.queue");
            CHECK_FALSE(m2.transaction_id);
            CHECK(ow::read_text_body(m2.content, body, wf).empty());
            CHECK(ow::is_null(body));

            const auto& bm = std::get<ow::message>(next().value);
            CHECK(bm.data_structure_type == ow::type::activemq_bytes_message);
            CHECK(as_text(bm.content) == "\x00\x01\x02\x03\x80\xff"sv);
            CHECK(bm.destination->type == ow::type::activemq_topic);

            const auto& mm = std::get<ow::message>(next().value);
            CHECK(mm.data_structure_type == ow::type::activemq_map_message);
            ow::primitive_reader mr(mm.content, wf);
            REQUIRE(mr.read_map_size(n));
            CHECK(n == 4);

            const auto& sm = std::get<ow::message>(next().value);
            CHECK(sm.data_structure_type == ow::type::activemq_stream_message);
            ow::primitive_reader sr(sm.content, wf);
            ow::primitive v;
            REQUIRE(sr.read_value(v));
            CHECK(v.s == "first");
            REQUIRE(sr.read_value(v));
            CHECK(v.i == std::int64_t{1} << 40);
            REQUIRE(sr.read_value(v));
            CHECK(v.b);
            REQUIRE(sr.read_value(v));
            CHECK(v.type == ow::primitive_type::null);
            REQUIRE(sr.read_value(v));
            CHECK(v.d == 0.5);
            CHECK(sr.at_end());

            CHECK(std::get<ow::message>(next().value).data_structure_type == ow::type::activemq_object_message);
            const auto& plain = std::get<ow::message>(next().value);
            CHECK(plain.data_structure_type == ow::type::activemq_message);
            CHECK(plain.destination->type == ow::type::activemq_temp_topic);
            CHECK_FALSE(ow::is_null(plain.correlation_id));
            CHECK(ow::is_null(plain.group_id));
            const auto& compressed = std::get<ow::message>(next().value);
            CHECK(compressed.compressed);
            const auto& blob = std::get<ow::message>(next().value);
            CHECK(blob.data_structure_type == ow::type::activemq_blob_message);
            CHECK(blob.remote_blob_url == "http://127.0.0.1/blob/1");
            CHECK(blob.deleted_by_broker);

            const auto& adv = std::get<ow::message>(next().value);
            REQUIRE(adv.data_structure);
            const auto& advinfo = std::get<ow::destination_info>(adv.data_structure->value);
            CHECK(advinfo.destination->type == ow::type::activemq_temp_queue);
            CHECK(advinfo.operation_type == ow::destination_operation::add);

            const auto& md = std::get<ow::message_dispatch>(next().value);
            REQUIRE(md.message);
            CHECK(md.message->data_structure_type == ow::type::activemq_text_message);
            CHECK(md.redelivery_counter == 1);
            CHECK(ow::read_text_body(md.message->content, body, wf).empty());
            CHECK(body == "dispatched");
            CHECK(std::get<ow::message_dispatch>(next().value).message == nullptr);

            const auto& ack = std::get<ow::message_ack>(next().value);
            CHECK(ack.ack_type == ow::ack_type::standard);
            CHECK(ack.first_message_id->producer_sequence_id == 1);
            CHECK(ack.last_message_id->producer_sequence_id == 11);
            CHECK(ack.message_count == 11);

            const auto& poison = std::get<ow::message_ack>(next().value);
            CHECK(poison.ack_type == ow::ack_type::poison);
            REQUIRE(poison.poison_cause);
            CHECK(poison.poison_cause->class_name == "java.lang.IllegalStateException");
            CHECK(poison.poison_cause->message == "golden failure \xc3\xa9\0\xf0\x9f\x98\x80"sv);
            REQUIRE(poison.poison_cause->stack_trace.size() == 2);
            CHECK(poison.poison_cause->stack_trace[0].declaring_class == "org.example.Golden");
            CHECK(poison.poison_cause->stack_trace[0].line_number == 42);
            CHECK(ow::is_null(poison.poison_cause->stack_trace[1].file_name));
            REQUIRE(poison.poison_cause->cause);
            CHECK(poison.poison_cause->cause->message == "root cause");

            const auto& xack = std::get<ow::message_ack>(next().value);
            REQUIRE(xack.transaction_id);
            const auto& xa = std::get<ow::xa_transaction_id>(*xack.transaction_id);
            CHECK(xa.format_id == 0x1234);
            CHECK(as_text(xa.global_transaction_id) == "\x01\x02\x03"sv);
            CHECK_FALSE(ow::is_null(xa.branch_qualifier));
            CHECK(xa.branch_qualifier.empty());

            const auto& pull = std::get<ow::message_pull>(next().value);
            CHECK(pull.timeout == -1);
            CHECK(pull.correlation_id == "pull-1");
            CHECK(std::get<ow::producer_ack>(next().value).size == 4096);
            CHECK(std::get<ow::transaction_info>(next().value).type == ow::transaction_type::begin);
            CHECK(std::get<ow::transaction_info>(next().value).type == ow::transaction_type::commit_one_phase);
            CHECK(std::get<ow::transaction_info>(next().value).type == ow::transaction_type::prepare);
            const auto& di = std::get<ow::destination_info>(next().value);
            CHECK(di.timeout == 5000);
            const auto& rc = std::get<ow::remove_info>(next().value);
            CHECK(std::get<ow::consumer_id>(rc.object_id) == ow::consumer_id{conn, 1, 1});
            CHECK(rc.last_delivered_sequence_id == 123456);
            CHECK(std::holds_alternative<ow::producer_id>(std::get<ow::remove_info>(next().value).object_id));
            CHECK(std::holds_alternative<ow::session_id>(std::get<ow::remove_info>(next().value).object_id));
            const auto& rconn = std::get<ow::remove_info>(next().value);
            CHECK(std::holds_alternative<ow::connection_id>(rconn.object_id));
            CHECK(rconn.last_delivered_sequence_id == -2);
            const auto& rs = std::get<ow::remove_subscription_info>(next().value);
            CHECK(rs.subscription_name == "golden-sub");
            CHECK_FALSE(std::get<ow::keep_alive_info>(next().value).response_required);
            CHECK(std::get<ow::keep_alive_info>(next().value).response_required);
            CHECK(std::get<ow::response>(next().value).correlation_id == 3);
            const auto& er = std::get<ow::exception_response>(next().value);
            CHECK(er.correlation_id == 4);
            REQUIRE(er.exception);
            CHECK(er.exception->cause == nullptr);
            const auto& dr = std::get<ow::data_response>(next().value);
            REQUIRE(dr.data);
            CHECK(std::get<ow::consumer_info>(dr.data->value).consumer_id->value == 2);
            CHECK(std::get<ow::integer_response>(next().value).result == -7);
            const auto& cc = std::get<ow::connection_control>(next().value);
            CHECK(cc.reconnect_to == "tcp://b:61616");
            CHECK(as_text(cc.token) == "\x05\x06"sv);
            const auto& ctl = std::get<ow::consumer_control>(next().value);
            CHECK(ctl.prefetch == 10);
            CHECK(ctl.start);
            const auto& ce = std::get<ow::connection_error>(next().value);
            REQUIRE(ce.exception);
            CHECK(ce.connection_id->value == conn);
            const auto& bi = std::get<ow::broker_info>(next().value);
            CHECK(bi.broker_name == "golden-broker");
            REQUIRE(bi.peer_broker_infos);
            CHECK((*bi.peer_broker_infos)[0].broker_name == "peer");
            CHECK(bi.connection_id == std::int64_t{1} << 33);
            CHECK(std::get<ow::control_command>(next().value).command == "shutdown");
            CHECK(std::holds_alternative<ow::flush_command>(next().value));
            CHECK(std::holds_alternative<ow::shutdown_info>(next().value));
            CHECK(std::get<ow::message_dispatch_notification>(next().value).delivery_sequence_id == 99);
            CHECK(at == stream.size());
        }
    }
}

// Feeds `stream` in pieces of `step` bytes (buffered as a connection would): the same frames.
void split_feed(const std::string& stream, const options& o, std::size_t step) {
    ow::wire_format wf, out;
    wf.apply(negotiated_of(o));
    out.apply(negotiated_of(o));
    std::string buffer, again;
    std::size_t fed = 0;
    int guard = 0;
    while (fed < stream.size() || !buffer.empty()) {
        REQUIRE(++guard < 1000000);
        auto r = wf.decode(as_bytes(buffer));
        if (auto* nm = std::get_if<ow::need_more>(&r)) {
            REQUIRE(fed < stream.size());
            CHECK(nm->at_least > buffer.size());
            const std::size_t n = std::min(step, stream.size() - fed);
            buffer.append(stream, fed, n);
            fed += n;
            continue;
        }
        if (auto* e = std::get_if<ow::decode_error>(&r)) FAIL(e->detail);
        const auto& d = std::get<ow::decoded>(r);
        REQUIRE(out.encode(*d.frame, again).empty());
        buffer.erase(0, d.consumed);
    }
    CHECK(again == stream);
}

TEST_CASE("openwire: a stream split anywhere decodes the same (cache undone on need-more)", "[openwire][codec]") {
    for (std::size_t step : {1, 3, 7, 64, 1000}) {
        INFO("step " << step);
        split_feed(golden("v12-tight-cache"), options{12, true, true}, step);
        split_feed(golden("v12-tight-cache-noprefix"), options{12, true, true, true, true}, step);
        split_feed(golden("v9-loose-cache"), options{9, false, true}, step);
    }
}

std::string frame(std::string_view body) {
    std::string s;
    const auto n = static_cast<std::uint32_t>(body.size());
    s.push_back(static_cast<char>(n >> 24));
    s.push_back(static_cast<char>(n >> 16));
    s.push_back(static_cast<char>(n >> 8));
    s.push_back(static_cast<char>(n));
    s.append(body);
    return s;
}

std::string_view error_of(ow::wire_format& wf, const std::string& in) {
    auto r = wf.decode(as_bytes(in));
    REQUIRE(std::holds_alternative<ow::decode_error>(r));
    return std::get<ow::decode_error>(r).detail;
}

TEST_CASE("openwire: malformed frames are errors with a reason", "[openwire][codec]") {
    ow::wire_format wf;
    wf.apply(negotiated_of(options{12, false, true}));   // loose with a cache: easy to write by hand

    CHECK(error_of(wf, frame("\x45"sv)) == "unknown data type");
    CHECK(error_of(wf, frame("\x00"sv)) == "null command");
    CHECK(error_of(wf, frame(""sv)) == "empty frame");
    CHECK(error_of(wf, "\xff\xff\xff\xff"s) == "negative frame size");
    // SessionInfo: command id, response required, cached session id referring to slot 9000
    // (the negotiated cache has max_cache_size slots) and to a slot past it.
    CHECK_NOTHROW(error_of(wf, frame("\x04\x00\x00\x00\x01\x00\x00\x7f\xff"sv)));
    CHECK(error_of(wf, frame("\x04\x00\x00\x00\x01\x00\x00\x7f\xff"sv)) == "marshalling cache index out of range");
    CHECK(error_of(wf, frame("\x04\x00\x00\x00\x01\x00\x00\xff\xfe"sv)) == "marshalling cache index out of range");
    // A reference to a slot never set reads as null, as in ActiveMQ.
    {
        auto r = wf.decode(as_bytes(frame("\x04\x00\x00\x00\x01\x00\x00\x00\x05"sv)));
        REQUIRE(std::holds_alternative<ow::decoded>(r));
        CHECK_FALSE(std::get<ow::session_info>(std::get<ow::decoded>(r).frame->value).session_id);
    }
    // A new cached value of the wrong type for the field (a queue where a session id goes).
    CHECK(error_of(wf, frame("\x04\x00\x00\x00\x01\x00\x01\x00\x05\x01\x64\x01\x00\x01q"sv)) ==
          "unexpected data type for the field");
    // Fields past the frame's size, and bytes after the fields.
    CHECK(error_of(wf, frame("\x04\x00\x00\x00\x01\x00\x01\x00\x05\x01\x79\x01\x00\x05" "ab"sv)) ==
          "command shorter than its fields");
    CHECK(error_of(wf, frame("\x0a\x00\x00\x00\x01\x00\x00"sv)) == "command longer than its fields");
    // Malformed modified UTF-8 in a string.
    CHECK(error_of(wf, frame("\x0e\x00\x00\x00\x01\x00\x01\x00\x02\xc3\x28"sv)) == "malformed modified UTF-8 string");
    // A negative byte-array length (ConnectionControl v8+: token).
    CHECK(error_of(wf, frame("\x12\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\xff\xff\xff\xff"sv)) ==
          "negative length");
    // MessagePull does not exist in version 1.
    ow::wire_format v1;
    v1.apply(negotiated_of(options{1, false, false}));
    CHECK(error_of(v1, frame("\x14\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"sv)) ==
          "unknown data type");
}

TEST_CASE("openwire: no cache negotiated, a cache index is an error", "[openwire][codec]") {
    // Loose without cache: a cached field is a plain nested one, so this reads the boolean 0 as
    // "null" and then finds two trailing bytes.
    ow::wire_format wf;
    wf.apply(negotiated_of(options{12, false, false}));
    CHECK(error_of(wf, frame("\x04\x00\x00\x00\x01\x00\x00\x00\x05"sv)) == "command longer than its fields");
}

TEST_CASE("openwire: a cache slot never filled reads as null, as in ActiveMQ", "[openwire][codec]") {
    // OpenWireFormat.getFromUnmarshallCache returns unmarshallCache[index]: null for a slot no
    // command filled, with no error (docs/openwire.md). The session then refuses the command
    // for its missing id (openwire_malformed_test.py). A slot filled with a value gives it back.
    auto session_of = [](ow::wire_format& wf, const std::string& body) {
        auto r = wf.decode(as_bytes(frame(body)));
        REQUIRE(std::holds_alternative<ow::decoded>(r));
        return std::get<ow::session_info>(std::get<ow::decoded>(r).frame->value).session_id;
    };
    SECTION("tight") {
        ow::wire_format wf;
        wf.apply(negotiated_of(options{12, true, true}));
        // SessionInfo: a BooleanStream of one byte (response required, not new), the command
        // id, the index 5.
        CHECK_FALSE(session_of(wf, "\x04\x01\x01\x00\x00\x00\x01\x00\x05"s));
        // New at 5: bits response required, new, present, string present, ASCII, then the
        // long as a short (0, 1); data: the command id, 5, the session id type, "c", 7. Then 5
        // again.
        const auto filled = session_of(wf, "\x04\x01\x5f\x00\x00\x00\x02\x00\x05\x79\x00\x01" "c\x00\x07"s);
        REQUIRE(filled);
        CHECK(filled->connection_id == "c");
        CHECK(filled->value == 7);
        const auto again = session_of(wf, "\x04\x01\x01\x00\x00\x00\x03\x00\x05"s);
        REQUIRE(again);
        CHECK(again->value == 7);
        // Another slot is still unfilled.
        CHECK_FALSE(session_of(wf, "\x04\x01\x01\x00\x00\x00\x04\x00\x06"s));
    }
    SECTION("loose") {
        ow::wire_format wf;
        wf.apply(negotiated_of(options{12, false, true}));
        CHECK_FALSE(session_of(wf, "\x04\x00\x00\x00\x01\x01\x00\x00\x05"s));
        const auto filled =
            session_of(wf, "\x04\x00\x00\x00\x02\x01\x01\x00\x05\x01\x79\x01\x00\x01" "c\x00\x00\x00\x00\x00\x00\x00\x07"s);
        REQUIRE(filled);
        CHECK(filled->value == 7);
        CHECK_FALSE(session_of(wf, "\x04\x00\x00\x00\x03\x01\x00\x00\x06"s));
    }
}

TEST_CASE("openwire: frame size limit, checked from the size prefix", "[openwire][codec]") {
    ow::limits lim;
    lim.max_frame_size = 1000;
    ow::wire_format wf(lim);
    auto r = wf.decode(as_bytes("\x00\x00\x03\xe9"s));   // 1001: refused before the body is in
    REQUIRE(std::holds_alternative<ow::decode_error>(r));
    CHECK(std::get<ow::decode_error>(r).detail == "frame larger than the maximum frame size");
    r = wf.decode(as_bytes("\x00\x00\x03\xe8"s));
    REQUIRE(std::holds_alternative<ow::need_more>(r));
    CHECK(std::get<ow::need_more>(r).at_least == 1004);

    // The negotiated maximum is smaller: it applies, to encoding too.
    ow::negotiated n;
    n.max_frame_size = 100;
    wf.apply(n);
    CHECK(wf.max_frame_size() == 100);
    ow::message m;
    m.data_structure_type = ow::type::activemq_bytes_message;
    std::string body(200, 'x'), out = "keep";
    m.content = as_bytes(body);
    CHECK(wf.encode(m, out) == "frame larger than the maximum frame size");
    CHECK(out == "keep");
}

TEST_CASE("openwire: nesting depth is bounded", "[openwire][codec]") {
    // Loose ExceptionResponse (stack traces on): a throwable whose causes nest deeper than the
    // limit. Each level: present, class "c", message null, 0 stack elements, then the cause.
    ow::limits lim;
    lim.max_nesting = 4;
    ow::wire_format wf(lim);
    ow::negotiated n;
    n.stack_trace_enabled = true;
    wf.apply(n);
    std::string body = "\x1f\x00\x00\x00\x01\x00\x00\x00\x00\x02"s;
    for (int i = 0; i < 6; ++i) body += "\x01\x01\x00\x01\x63\x00\x00\x00"s;
    body += "\x00"s;
    CHECK(error_of(wf, frame(body)) == "data structures nested too deeply");
}

TEST_CASE("openwire: an encoding error leaves the output and the cache unchanged", "[openwire][codec]") {
    ow::wire_format a, b;
    a.apply(negotiated_of(options{12, true, true}));
    b.apply(negotiated_of(options{12, true, true}));
    const std::string conn = "ID:conn-1";
    const std::string long_string(40000, '\xe9');   // not ASCII, and too long for tight encoding
    ow::message bad;
    bad.data_structure_type = ow::type::activemq_text_message;
    bad.producer_id = ow::producer_id{conn, 1, 1};
    bad.destination = ow::destination{ow::type::activemq_queue, "q"};
    bad.correlation_id = long_string;
    std::string out;
    CHECK(a.encode(bad, out) == "string too long for OpenWire");
    CHECK(out.empty());
    // The same message without the string: both encoders agree, so `a`'s cache did not keep
    // the producer id and destination of the failed frame.
    bad.correlation_id = "ok";
    std::string x, y;
    CHECK(a.encode(bad, x).empty());
    CHECK(b.encode(bad, y).empty());
    CHECK(x == y);
}

TEST_CASE("openwire: our frames decode back to the same command", "[openwire][codec]") {
    for (int v : {1, 6, 9, 12}) {
        for (bool tight : {true, false}) {
            for (bool cache : {true, false}) {
                const options o{v, tight, cache};
                INFO(name_of(o));
                ow::wire_format enc, dec;
                enc.apply(negotiated_of(o));
                dec.apply(negotiated_of(o));
                const std::string conn = "ID:broker-1";
                std::string props;
                ow::primitive_writer w(props);
                w.map_size(3);
                w.key("color");
                w.string("r\xc3\xa9""d\0x"sv);
                w.key("n");
                w.integer(-1);
                w.key("big");
                w.long_(std::int64_t{1} << 50);
                std::string content;
                ow::write_text_body("t\xf0\x9f\x98\x80", content);
                ow::message m;
                m.data_structure_type = ow::type::activemq_text_message;
                m.producer_id = ow::producer_id{conn, 3, 2};
                m.destination = ow::destination{ow::type::activemq_topic, "t.1"};
                m.message_id = ow::message_id{{}, ow::producer_id{conn, 3, 2}, 77, 0};
                m.persistent = true;
                m.priority = 4;
                m.timestamp = 1700000000000;
                m.content = as_bytes(content);
                m.marshalled_properties = as_bytes(props);
                ow::message_dispatch md;
                md.consumer_id = ow::consumer_id{conn, 1, 5};
                md.destination = m.destination;
                md.message = &m;
                md.redelivery_counter = 0;
                std::string out;
                for (int i = 0; i < 3; ++i) REQUIRE(enc.encode(md, out).empty());
                std::size_t at = 0;
                for (int i = 0; i < 3; ++i) {
                    auto r = dec.decode(as_bytes(std::string_view(out).substr(at)));
                    REQUIRE(std::holds_alternative<ow::decoded>(r));
                    at += std::get<ow::decoded>(r).consumed;
                    const auto& got = std::get<ow::message_dispatch>(std::get<ow::decoded>(r).frame->value);
                    CHECK(got.consumer_id == md.consumer_id);
                    REQUIRE(got.message);
                    CHECK(got.message->producer_id == m.producer_id);
                    CHECK(got.message->message_id->producer_sequence_id == 77);
                    CHECK(got.message->timestamp == m.timestamp);
                    std::string_view text;
                    CHECK(ow::read_text_body(got.message->content, text, dec).empty());
                    CHECK(text == "t\xf0\x9f\x98\x80");
                    ow::primitive_reader pr(got.message->marshalled_properties, dec);
                    std::int32_t n = 0;
                    REQUIRE(pr.read_map_size(n));
                    CHECK(n == 3);
                    std::string_view k;
                    ow::primitive val;
                    REQUIRE(pr.read_key(k));
                    REQUIRE(pr.read_value(val));
                    CHECK(k == "color");
                    CHECK(val.s == "r\xc3\xa9""d\0x"sv);
                }
                CHECK(at == out.size());
            }
        }
    }
}

TEST_CASE("openwire: negotiation takes the smaller and the common", "[openwire][codec]") {
    ow::wire_format_settings ours, theirs;
    ours.tight_encoding_enabled = true;
    ours.cache_enabled = true;
    ours.cache_size = 1024;
    ours.stack_trace_enabled = true;
    ours.max_frame_size = 104857600;
    theirs = ours;
    theirs.cache_size = 512;
    theirs.tight_encoding_enabled = false;
    theirs.max_frame_size = 0;   // unset: ours
    auto n = ow::negotiate(12, ours, 9, theirs);
    CHECK(n.version == 9);
    CHECK_FALSE(n.tight_encoding);
    CHECK(n.cache_enabled);
    CHECK(n.cache_size == 512);
    CHECK(n.stack_trace_enabled);
    CHECK(n.max_frame_size == 104857600);
    theirs.cache_size = 0;
    n = ow::negotiate(12, ours, 13, theirs);
    CHECK(n.version == 12);
    CHECK(n.cache_size == ow::max_cache_size);   // ActiveMQ: Math.min gives 0, which means the full cache
}

TEST_CASE("openwire: settings written are read back", "[openwire][codec]") {
    ow::wire_format_settings s;
    s.tight_encoding_enabled = true;
    s.cache_enabled = true;
    s.cache_size = 1024;
    s.max_inactivity_duration = 30000;
    s.max_frame_size = 1 << 20;
    s.provider_name = "Switchboard";
    std::string props;
    ow::write_settings(s, props);
    ow::wire_format wf;
    ow::wire_format_settings r;
    CHECK(ow::read_settings(as_bytes(props), r, wf).empty());
    CHECK(r.tight_encoding_enabled);
    CHECK(r.cache_size == 1024);
    CHECK(r.max_inactivity_duration == 30000);
    CHECK(r.max_frame_size == 1 << 20);
    CHECK(r.provider_name == "Switchboard");
    CHECK(ow::is_null(r.host));
}

// Re-writes a primitive map entry by entry (nested maps and lists value by value).
void rewrite_map(ow::primitive_reader& r, std::int32_t n, ow::primitive_writer& w, ow::wire_format& wf);

void rewrite_value(const ow::primitive& v, ow::primitive_writer& w, ow::wire_format& wf) {
    if (v.type != ow::primitive_type::map && v.type != ow::primitive_type::list) return w.value(v);
    ow::primitive_reader nr(as_bytes(v.s), wf);
    if (v.type == ow::primitive_type::map) {
        w.begin_map(v.count);
        rewrite_map(nr, v.count, w, wf);
    } else {
        w.begin_list(v.count);
        for (int i = 0; i < v.count; ++i) {
            ow::primitive e;
            REQUIRE(nr.read_value(e));
            rewrite_value(e, w, wf);
        }
    }
    CHECK(nr.at_end());
}

void rewrite_map(ow::primitive_reader& r, std::int32_t n, ow::primitive_writer& w, ow::wire_format& wf) {
    for (std::int32_t i = 0; i < n; ++i) {
        std::string_view k;
        ow::primitive v;
        REQUIRE(r.read_key(k));
        REQUIRE(r.read_value(v));
        w.key(k);
        rewrite_value(v, w, wf);
    }
}

TEST_CASE("openwire: primitive maps written as ActiveMQ writes them", "[openwire][codec]") {
    // The golden text message's properties (every type, a big string, a nested map and list)
    // and the MapMessage body, read and written back value by value: the same bytes.
    const options o{12, false, false};
    const std::string stream = golden(name_of(o));
    ow::wire_format wf;
    wf.apply(negotiated_of(o));
    std::size_t at = 0;
    int maps = 0;
    while (at < stream.size()) {
        auto r = wf.decode(as_bytes(std::string_view(stream).substr(at)));
        REQUIRE(std::holds_alternative<ow::decoded>(r));
        at += std::get<ow::decoded>(r).consumed;
        const auto* m = std::get_if<ow::message>(&std::get<ow::decoded>(r).frame->value);
        if (!m) continue;
        for (ow::bytes map : {m->marshalled_properties, m->data_structure_type == ow::type::activemq_map_message ? m->content : ow::bytes{}}) {
            if (ow::is_null(map)) continue;
            ow::primitive_reader pr(map, wf);
            std::int32_t n = 0;
            REQUIRE(pr.read_map_size(n));
            std::string again;
            ow::primitive_writer w(again);
            w.map_size(n);
            rewrite_map(pr, n, w, wf);
            CHECK(pr.at_end());
            CHECK(again == as_text(map));
            ++maps;
        }
    }
    CHECK(maps == 3);   // the text message's and the advisory's properties, the MapMessage body
}

TEST_CASE("openwire: primitive values both ways, limits on the reader", "[openwire][codec]") {
    std::string s;
    ow::primitive_writer w(s);
    w.map_size(3);
    w.key("short");
    w.short_(-2);
    w.key("big");
    w.string(std::string(8191, 'y'));   // 8191 UTF-16 units: a big string
    w.key("deep");
    w.begin_list(1);
    w.begin_list(1);
    w.begin_map(0);
    ow::wire_format wf;
    ow::primitive_reader r(as_bytes(s), wf);
    std::int32_t n = 0;
    REQUIRE(r.read_map_size(n));
    CHECK(n == 3);
    std::string_view k;
    ow::primitive v;
    REQUIRE(r.read_key(k));
    REQUIRE(r.read_value(v));
    CHECK(v.type == ow::primitive_type::short_);
    CHECK(v.i == -2);
    REQUIRE(r.read_key(k));
    REQUIRE(r.read_value(v));
    CHECK(v.type == ow::primitive_type::big_string);
    CHECK(v.s.size() == 8191);
    REQUIRE(r.read_key(k));
    REQUIRE(r.read_value(v));
    CHECK(v.type == ow::primitive_type::list);
    CHECK(r.at_end());

    ow::limits lim;
    lim.max_nesting = 2;   // the map inside two lists is one too deep
    ow::primitive_reader shallow(as_bytes(s), wf, lim);
    REQUIRE(shallow.read_map_size(n));
    for (int i = 0; i < 2; ++i) {
        REQUIRE(shallow.read_key(k));
        REQUIRE(shallow.read_value(v));
    }
    REQUIRE(shallow.read_key(k));
    CHECK_FALSE(shallow.read_value(v));
    CHECK(shallow.error() == "primitive maps nested too deeply");

    ow::primitive_reader cut(as_bytes(std::string_view(s).substr(0, s.size() - 1)), wf);
    REQUIRE(cut.read_map_size(n));
    bool ok = true;
    for (int i = 0; i < 3 && ok; ++i) ok = cut.read_key(k) && cut.read_value(v);
    CHECK_FALSE(ok);
    CHECK(cut.error() == "primitive value truncated");
}

TEST_CASE("openwire: modified UTF-8", "[openwire][codec]") {
    std::string out;
    ow::utf8_to_modified_utf8("a\0b\xf0\x9f\x98\x80"sv, out);
    CHECK(out == "a\xc0\x80" "b\xed\xa0\xbd\xed\xb8\x80"sv);
    std::string back;
    CHECK(ow::modified_utf8_to_utf8(out, back));
    CHECK(back == "a\0b\xf0\x9f\x98\x80"sv);
    CHECK(ow::modified_utf8_length("\xf0\x9f\x98\x80") == 6);
    CHECK(ow::utf16_length("\xf0\x9f\x98\x80x") == 3);
    back.clear();
    CHECK_FALSE(ow::modified_utf8_to_utf8("\xff", back));
}

TEST_CASE("openwire: id texts", "[openwire][codec]") {
    CHECK(ow::to_string(ow::consumer_id{"ID:c-1", 2, 3}) == "ID:c-1:2:3");
    CHECK(ow::to_string(ow::producer_id{"ID:c-1", 3, 2}) == "ID:c-1:2:3");
    CHECK(ow::to_string(ow::message_id{{}, ow::producer_id{"ID:c-1", 3, 2}, 9, 0}) == "ID:c-1:2:3:9");
    CHECK(ow::to_string(ow::message_id{"ID:x:1:1:1", {}, 0, 0}) == "ID:x:1:1:1");
    CHECK(ow::to_string(ow::message_id{"x:1:1:1", {}, 0, 0}) == "ID:x:1:1:1");
    CHECK(ow::to_string(ow::destination{ow::type::activemq_temp_queue, "x"}) == "temp-queue://x");
}

}  // namespace
