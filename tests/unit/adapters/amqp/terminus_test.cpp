// Unit tests for adapters/amqp/terminus.hpp: capabilities, filter sets, the coordinator's
// controls and transactional states, built and read with Proton's C codec.
#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include <proton/codec.h>

#include "adapters/amqp/terminus.hpp"

using namespace sb;

namespace {

using data_ptr = std::unique_ptr<pn_data_t, void (*)(pn_data_t*)>;
data_ptr make_data() { return data_ptr(pn_data(16), pn_data_free); }

void symbol(pn_data_t* d, std::string_view s) { pn_data_put_symbol(d, pn_bytes(s.size(), s.data())); }
void string(pn_data_t* d, std::string_view s) { pn_data_put_string(d, pn_bytes(s.size(), s.data())); }

// key -> described(descriptor symbol, string value)
void filter_entry(pn_data_t* d, std::string_view key, std::string_view descriptor, std::string_view value) {
    symbol(d, key);
    pn_data_put_described(d);
    pn_data_enter(d);
    symbol(d, descriptor);
    string(d, value);
    pn_data_exit(d);
}

}  // namespace

TEST_CASE("amqp capabilities: an array of symbols, or one symbol alone", "[amqp][terminus]") {
    auto d = make_data();
    CHECK(amqp::capabilities_of(d.get()).empty());
    symbol(d.get(), "topic");
    CHECK(amqp::capabilities_of(d.get()) == std::vector<std::string>{"topic"});
    pn_data_clear(d.get());
    pn_data_put_array(d.get(), false, PN_SYMBOL);
    pn_data_enter(d.get());
    symbol(d.get(), "shared");
    symbol(d.get(), "global");
    pn_data_exit(d.get());
    CHECK(amqp::capabilities_of(d.get()) == std::vector<std::string>{"shared", "global"});
    pn_data_clear(d.get());
    string(d.get(), "not a symbol");
    CHECK(amqp::capabilities_of(d.get()).empty());
}

TEST_CASE("amqp filters: selector and no-local by symbol or code, others ignored, echo", "[amqp][terminus]") {
    auto d = make_data();
    pn_data_put_map(d.get());
    pn_data_enter(d.get());
    filter_entry(d.get(), "jms-selector", "apache.org:selector-filter:string", "color = 'red'");
    filter_entry(d.get(), "no-local", "apache.org:no-local-filter:list", "NoLocalFilter{}");
    filter_entry(d.get(), "other", "example.org:unknown-filter", "x");
    symbol(d.get(), "not-described");
    string(d.get(), "plain value");
    pn_data_exit(d.get());

    amqp::link_filters f;
    REQUIRE(amqp::read_filters(d.get(), f));
    REQUIRE(f.selector);
    CHECK(*f.selector == "color = 'red'");
    CHECK(f.selector_key == "jms-selector");
    CHECK(f.no_local);
    CHECK(f.no_local_key == "no-local");

    // The echo has exactly the two in force, with numeric descriptors, and reads back the same.
    auto echo = make_data();
    amqp::echo_filters(echo.get(), f);
    amqp::link_filters back;
    REQUIRE(amqp::read_filters(echo.get(), back));
    CHECK(back.selector == f.selector);
    CHECK(back.no_local);
    pn_data_rewind(echo.get());
    REQUIRE(pn_data_next(echo.get()));
    CHECK(pn_data_get_map(echo.get()) == 4);   // two keys, two values

    // Descriptors as codes.
    pn_data_clear(d.get());
    pn_data_put_map(d.get());
    pn_data_enter(d.get());
    symbol(d.get(), "s");
    pn_data_put_described(d.get());
    pn_data_enter(d.get());
    pn_data_put_ulong(d.get(), amqp::selector_filter_code);
    string(d.get(), "n > 1");
    pn_data_exit(d.get());
    pn_data_exit(d.get());
    amqp::link_filters by_code;
    REQUIRE(amqp::read_filters(d.get(), by_code));
    CHECK(by_code.selector == std::optional<std::string>("n > 1"));
    CHECK_FALSE(by_code.no_local);

    // None: an empty echo. Not a map: refused.
    auto none = make_data();
    amqp::echo_filters(none.get(), amqp::link_filters{});
    CHECK(pn_data_size(none.get()) == 0);
    pn_data_clear(d.get());
    string(d.get(), "not a map");
    amqp::link_filters bad;
    CHECK_FALSE(amqp::read_filters(d.get(), bad));
}

TEST_CASE("amqp coordinator controls: declare, discharge, and anything else", "[amqp][terminus]") {
    auto d = make_data();
    // declare(null), the descriptor as a symbol (python-qpid-proton)
    pn_data_put_described(d.get());
    pn_data_enter(d.get());
    symbol(d.get(), "amqp:declare:list");
    pn_data_put_list(d.get());
    pn_data_enter(d.get());
    pn_data_put_null(d.get());
    pn_data_exit(d.get());
    pn_data_exit(d.get());
    CHECK(amqp::read_control(d.get()).code == amqp::declare_code);

    // discharge(txn-id, true), the descriptor as a code
    pn_data_clear(d.get());
    pn_data_put_described(d.get());
    pn_data_enter(d.get());
    pn_data_put_ulong(d.get(), amqp::discharge_code);
    pn_data_put_list(d.get());
    pn_data_enter(d.get());
    amqp::put_txn_id(d.get(), 0x0102030405060708);
    pn_data_put_bool(d.get(), true);
    pn_data_exit(d.get());
    pn_data_exit(d.get());
    auto c = amqp::read_control(d.get());
    CHECK(c.code == amqp::discharge_code);
    CHECK(c.txid == std::optional<std::uint64_t>(0x0102030405060708));
    CHECK(c.fail);

    // A discharge with a txn-id that is not ours (not 8 bytes): no id.
    pn_data_clear(d.get());
    pn_data_put_described(d.get());
    pn_data_enter(d.get());
    pn_data_put_ulong(d.get(), amqp::discharge_code);
    pn_data_put_list(d.get());
    pn_data_enter(d.get());
    pn_data_put_binary(d.get(), pn_bytes(3, "abc"));
    pn_data_exit(d.get());
    pn_data_exit(d.get());
    c = amqp::read_control(d.get());
    CHECK(c.code == amqp::discharge_code);
    CHECK_FALSE(c.txid);
    CHECK_FALSE(c.fail);

    // Not a control.
    pn_data_clear(d.get());
    string(d.get(), "hello");
    CHECK(amqp::read_control(d.get()).code == 0);
    pn_data_clear(d.get());
    pn_data_put_described(d.get());
    pn_data_enter(d.get());
    pn_data_put_ulong(d.get(), 0x77);
    pn_data_put_list(d.get());
    pn_data_exit(d.get());
    CHECK(amqp::read_control(d.get()).code == 0);
}

TEST_CASE("amqp transactional state: written and read back, modified flags", "[amqp][terminus]") {
    auto d = make_data();
    amqp::put_transactional_state(d.get(), 42, amqp::accepted_code);
    auto st = amqp::transactional_state(d.get());
    CHECK(st.id == std::optional<std::uint64_t>(42));
    CHECK(st.code == amqp::accepted_code);

    // [txn-id, modified(true, true)]
    pn_data_clear(d.get());
    pn_data_put_list(d.get());
    pn_data_enter(d.get());
    amqp::put_txn_id(d.get(), 7);
    pn_data_put_described(d.get());
    pn_data_enter(d.get());
    pn_data_put_ulong(d.get(), amqp::modified_code);
    pn_data_put_list(d.get());
    pn_data_enter(d.get());
    pn_data_put_bool(d.get(), true);
    pn_data_put_bool(d.get(), true);
    pn_data_exit(d.get());
    pn_data_exit(d.get());
    pn_data_exit(d.get());
    st = amqp::transactional_state(d.get());
    CHECK(st.id == std::optional<std::uint64_t>(7));
    CHECK(st.code == amqp::modified_code);
    CHECK(st.delivery_failed);
    CHECK(st.undeliverable_here);

    // [txn-id] alone (a transactional send): no outcome.
    pn_data_clear(d.get());
    pn_data_put_list(d.get());
    pn_data_enter(d.get());
    amqp::put_txn_id(d.get(), 9);
    pn_data_exit(d.get());
    st = amqp::transactional_state(d.get());
    CHECK(st.id == std::optional<std::uint64_t>(9));
    CHECK(st.code == 0);

    // declared's fields: [txn-id]
    amqp::put_declared(d.get(), 0xFFFFFFFFFFFFFFFF);
    pn_data_rewind(d.get());
    REQUIRE(pn_data_next(d.get()));
    pn_data_enter(d.get());
    REQUIRE(pn_data_next(d.get()));
    CHECK(amqp::txn_id_of(d.get()) == std::optional<std::uint64_t>(0xFFFFFFFFFFFFFFFF));
}
