// adapters/amqp/terminus.cpp — capabilities, filter sets and transactional values on Proton's C
// codec (see terminus.hpp).
#include "adapters/amqp/terminus.hpp"

#include <initializer_list>
#include <utility>

namespace sb::amqp {

namespace {

// At a described value: enters it and moves to its value; returns the descriptor as a code
// (a ulong, or a symbol of `names`; 0 for any other). Not described: 0, nothing entered.
std::uint64_t enter_described(pn_data_t* d, std::initializer_list<std::pair<std::string_view, std::uint64_t>> names) {
    if (pn_data_type(d) != PN_DESCRIBED) return 0;
    pn_data_enter(d);
    if (!pn_data_next(d)) return 0;
    std::uint64_t code = 0;
    if (pn_data_type(d) == PN_ULONG) {
        code = pn_data_get_ulong(d);
    } else if (pn_data_type(d) == PN_SYMBOL) {
        const auto sym = pn_data_get_symbol(d);
        const std::string_view text(sym.start, sym.size);
        for (const auto& [n, c] : names)
            if (n == text) code = c;
    }
    pn_data_next(d);   // to the value
    return code;
}

void put_symbol(pn_data_t* d, std::string_view s) { pn_data_put_symbol(d, pn_bytes(s.size(), s.data())); }

}  // namespace

std::vector<std::string> capabilities_of(pn_data_t* d) {
    std::vector<std::string> out;
    pn_data_rewind(d);
    if (!pn_data_next(d)) return out;
    const auto take = [&] {
        if (pn_data_type(d) != PN_SYMBOL) return;
        const auto b = pn_data_get_symbol(d);
        out.emplace_back(b.start, b.size);
    };
    if (pn_data_type(d) == PN_ARRAY) {
        pn_data_enter(d);
        while (pn_data_next(d)) take();
        pn_data_exit(d);
    } else {
        take();
    }
    pn_data_rewind(d);
    return out;
}

bool read_filters(pn_data_t* d, link_filters& f) {
    pn_data_rewind(d);
    if (!pn_data_next(d)) return true;
    if (pn_data_type(d) != PN_MAP) return false;
    pn_data_enter(d);
    while (pn_data_next(d)) {
        std::string key;
        if (pn_data_type(d) == PN_SYMBOL || pn_data_type(d) == PN_STRING) {
            const auto b = pn_data_type(d) == PN_SYMBOL ? pn_data_get_symbol(d) : pn_data_get_string(d);
            key.assign(b.start, b.size);
        }
        if (!pn_data_next(d)) break;
        if (pn_data_type(d) != PN_DESCRIBED) continue;
        const auto code = enter_described(d, {{selector_filter_name, selector_filter_code},
                                              {no_local_filter_name, no_local_filter_code},
                                              {"apache.org:no-local-filter:list", no_local_filter_code}});
        if (code == selector_filter_code && pn_data_type(d) == PN_STRING) {
            const auto b = pn_data_get_string(d);
            f.selector.emplace(b.start, b.size);
            f.selector_key = std::move(key);
        } else if (code == no_local_filter_code) {
            f.no_local = true;
            f.no_local_key = std::move(key);
        }
        pn_data_exit(d);
    }
    pn_data_exit(d);
    pn_data_rewind(d);
    return true;
}

void echo_filters(pn_data_t* d, const link_filters& f) {
    pn_data_clear(d);
    if (!f.selector && !f.no_local) return;
    pn_data_put_map(d);
    pn_data_enter(d);
    if (f.selector) {
        put_symbol(d, f.selector_key.empty() ? std::string_view("jms-selector") : std::string_view(f.selector_key));
        pn_data_put_described(d);
        pn_data_enter(d);
        pn_data_put_ulong(d, selector_filter_code);
        pn_data_put_string(d, pn_bytes(f.selector->size(), f.selector->data()));
        pn_data_exit(d);
    }
    if (f.no_local) {
        put_symbol(d, f.no_local_key.empty() ? std::string_view("no-local") : std::string_view(f.no_local_key));
        pn_data_put_described(d);
        pn_data_enter(d);
        pn_data_put_ulong(d, no_local_filter_code);
        pn_data_put_list(d);
        pn_data_exit(d);
    }
    pn_data_exit(d);
}

std::optional<std::uint64_t> txn_id_of(pn_data_t* d) {
    if (pn_data_type(d) != PN_BINARY) return std::nullopt;
    const auto b = pn_data_get_binary(d);
    if (b.size != 8) return std::nullopt;
    std::uint64_t t = 0;
    for (std::size_t i = 0; i < 8; ++i) t = t << 8 | std::uint8_t(b.start[i]);
    return t;
}

void put_txn_id(pn_data_t* d, std::uint64_t id) {
    char b[8];
    for (int i = 7; i >= 0; --i, id >>= 8) b[i] = char(id & 0xFF);
    pn_data_put_binary(d, pn_bytes(8, b));
}

control read_control(pn_data_t* body) {
    control c;
    pn_data_rewind(body);
    if (!pn_data_next(body)) return c;
    const auto code =
        enter_described(body, {{"amqp:declare:list", declare_code}, {"amqp:discharge:list", discharge_code}});
    if ((code != declare_code && code != discharge_code) || pn_data_type(body) != PN_LIST) {
        pn_data_rewind(body);
        return c;
    }
    c.code = code;
    pn_data_enter(body);
    if (code == discharge_code) {
        if (pn_data_next(body)) c.txid = txn_id_of(body);
        if (pn_data_next(body) && pn_data_type(body) == PN_BOOL) c.fail = pn_data_get_bool(body);
    }
    pn_data_rewind(body);
    return c;
}

void put_declared(pn_data_t* d, std::uint64_t txid) {
    pn_data_clear(d);
    pn_data_put_list(d);
    pn_data_enter(d);
    put_txn_id(d, txid);
    pn_data_exit(d);
}

txn_state transactional_state(pn_data_t* d) {
    txn_state st;
    pn_data_rewind(d);
    if (pn_data_next(d) && pn_data_type(d) == PN_LIST) {
        pn_data_enter(d);
        if (pn_data_next(d)) st.id = txn_id_of(d);
        if (pn_data_next(d) && pn_data_type(d) == PN_DESCRIBED) {
            st.code = enter_described(d, {});
            if (st.code == modified_code && pn_data_type(d) == PN_LIST) {
                pn_data_enter(d);
                if (pn_data_next(d) && pn_data_type(d) == PN_BOOL) st.delivery_failed = pn_data_get_bool(d);
                if (pn_data_next(d) && pn_data_type(d) == PN_BOOL) st.undeliverable_here = pn_data_get_bool(d);
                pn_data_exit(d);
            }
            pn_data_exit(d);
        }
        pn_data_exit(d);
    }
    pn_data_rewind(d);
    return st;
}

void put_transactional_state(pn_data_t* d, std::uint64_t txid, std::uint64_t code) {
    pn_data_clear(d);
    pn_data_put_list(d);
    pn_data_enter(d);
    put_txn_id(d, txid);
    pn_data_put_described(d);
    pn_data_enter(d);
    pn_data_put_ulong(d, code);
    pn_data_put_list(d);
    pn_data_exit(d);
    pn_data_exit(d);
}

}  // namespace sb::amqp
