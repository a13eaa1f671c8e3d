// adapters/amqp/terminus.hpp — AMQP 1.0 values a broker reads and writes that Proton's C++ API
// does not handle for it: terminus capabilities and filter sets, the transaction coordinator's
// controls, transaction ids and transactional delivery states. Pure functions over Proton's C
// codec (pn_data_t, which keeps described types), unit-tested on their own; only
// adapters/amqp/ includes this.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <proton/codec.h>

namespace sb::amqp {

// Transactions (AMQP 1.0 part 4): the coordinator's controls and delivery states.
inline constexpr std::uint64_t declare_code = 0x31, discharge_code = 0x32, declared_code = 0x33,
                               transactional_state_code = 0x34;
// The outcomes (AMQP 1.0 §3.4).
inline constexpr std::uint64_t accepted_code = 0x24, rejected_code = 0x25, released_code = 0x26,
                               modified_code = 0x27;
// Apache's filters (the AMQP filter registry): a JMS selector, and JMS no-local.
inline constexpr std::uint64_t no_local_filter_code = 0x0000468C00000003, selector_filter_code = 0x0000468C00000004;
inline constexpr std::string_view no_local_filter_name = "apache.org:no-local-filter",
                                  selector_filter_name = "apache.org:selector-filter:string";

// A terminus's capabilities (AMQP's `multiple` symbol: an array, or one symbol alone; Proton's
// C++ terminus::capabilities() throws on the latter). Other types are skipped.
std::vector<std::string> capabilities_of(pn_data_t* d);

// The filters of a source this broker applies; the others are left out of the echo, so the
// client knows they are not in force.
struct link_filters {
    std::optional<std::string> selector;   // apache.org:selector-filter:string
    bool no_local = false;                 // apache.org:no-local-filter (Qpid JMS: ...:list)
    std::string selector_key, no_local_key;   // the client's keys in its filter map
};
// Reads a filter set (a map of described values, descriptors as code or symbol). false: it is
// not a map.
bool read_filters(pn_data_t* d, link_filters& f);
// Writes our source's filter set: those of `f` in force, with the client's keys (defaults
// "jms-selector", "no-local") and numeric descriptors. Empty when none.
void echo_filters(pn_data_t* d, const link_filters& f);

// A transaction id: 8 bytes, big-endian (the ids this broker declares).
std::optional<std::uint64_t> txn_id_of(pn_data_t* d);
void put_txn_id(pn_data_t* d, std::uint64_t id);

// A coordinator's control message body: declare(global-id?) or discharge(txn-id, fail?);
// descriptors as code or symbol. code 0: neither (or malformed).
struct control {
    std::uint64_t code = 0;                // declare_code, discharge_code, or 0
    std::optional<std::uint64_t> txid;     // discharge: the id (nullopt: missing or not ours)
    bool fail = false;                     // discharge: roll back
};
control read_control(pn_data_t* body);
// The fields of `declared` (the disposition data): the new transaction's id.
void put_declared(pn_data_t* d, std::uint64_t txid);

// A transactional-state's fields (the delivery state's data): the txn-id and the outcome
// (code 0: none; a modified one's flags).
struct txn_state {
    std::optional<std::uint64_t> id;
    std::uint64_t code = 0;
    bool delivery_failed = false, undeliverable_here = false;
};
txn_state transactional_state(pn_data_t* d);
// Writes transactional-state(txn-id, outcome `code` with no fields).
void put_transactional_state(pn_data_t* d, std::uint64_t txid, std::uint64_t code);

}  // namespace sb::amqp
