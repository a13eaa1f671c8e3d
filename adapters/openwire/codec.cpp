// adapters/openwire/codec.cpp — OpenWire marshalling (stub: the API is in place, the marshallers follow).
#include "adapters/openwire/codec.hpp"

namespace sb::openwire {

struct wire_format::impl {
    std::deque<std::string> scratch;
};

std::uint8_t type_of(const data_structure& d) noexcept {
    return std::visit(
        [](const auto& v) -> std::uint8_t {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, message>) return v.data_structure_type;
            else if constexpr (std::is_same_v<T, destination>) return v.type;
            else return 0;
        },
        d.value);
}

wire_format::wire_format(const limits& l, std::int32_t version)
    : version_(version), max_frame_size_(l.max_frame_size), limits_(l), impl_(std::make_unique<impl>()) {}
wire_format::~wire_format() = default;

void wire_format::apply(const negotiated& n) {
    version_ = n.version;
    tight_ = n.tight_encoding;
    cache_size_ = n.cache_enabled ? (n.cache_size == 0 ? max_cache_size : n.cache_size) : 0;
    size_prefix_disabled_ = n.size_prefix_disabled;
    stack_trace_ = n.stack_trace_enabled;
}

std::string_view wire_format::keep(std::string&& s) {
    impl_->scratch.push_back(std::move(s));
    return impl_->scratch.back();
}

decode_result wire_format::decode(bytes) { return decode_error{"not implemented"}; }
std::string_view wire_format::encode(const command&, std::string&) { return "not implemented"; }
std::string_view wire_format::encode(const message_dispatch&, std::string&) { return "not implemented"; }
std::string_view wire_format::encode(const response&, std::string&) { return "not implemented"; }
std::string_view wire_format::encode(const exception_response&, std::string&) { return "not implemented"; }
std::string_view wire_format::encode(const wire_format_info&, std::string&) { return "not implemented"; }
std::string_view wire_format::encode(const broker_info&, std::string&) { return "not implemented"; }
std::string_view wire_format::encode(const keep_alive_info&, std::string&) { return "not implemented"; }
std::string_view wire_format::encode(const connection_error&, std::string&) { return "not implemented"; }
std::string_view wire_format::encode(const producer_ack&, std::string&) { return "not implemented"; }
std::string_view wire_format::encode(const connection_control&, std::string&) { return "not implemented"; }
std::string_view wire_format::encode(const consumer_control&, std::string&) { return "not implemented"; }
std::string_view wire_format::encode(const message&, std::string&) { return "not implemented"; }

std::string_view read_settings(bytes, wire_format_settings&, wire_format&) { return "not implemented"; }
void write_settings(const wire_format_settings&, std::string&) {}
negotiated negotiate(std::int32_t, const wire_format_settings&, std::int32_t, const wire_format_settings&) noexcept { return {}; }

bool primitive_reader::read_map_size(std::int32_t&) { return fail("not implemented"); }
bool primitive_reader::read_key(std::string_view&) { return fail("not implemented"); }
bool primitive_reader::read_value(primitive&) { return fail("not implemented"); }

void primitive_writer::map_size(std::int32_t) {}
void primitive_writer::key(std::string_view) {}
void primitive_writer::null() {}
void primitive_writer::boolean(bool) {}
void primitive_writer::byte(std::int8_t) {}
void primitive_writer::char_(std::uint16_t) {}
void primitive_writer::short_(std::int16_t) {}
void primitive_writer::integer(std::int32_t) {}
void primitive_writer::long_(std::int64_t) {}
void primitive_writer::float_(float) {}
void primitive_writer::double_(double) {}
void primitive_writer::string(std::string_view) {}
void primitive_writer::byte_array(bytes) {}
void primitive_writer::begin_map(std::int32_t) {}
void primitive_writer::begin_list(std::int32_t) {}
void primitive_writer::value(const primitive&) {}

std::string_view read_text_body(bytes, std::string_view&, wire_format&) { return "not implemented"; }
void write_text_body(std::string_view, std::string&) {}
bool modified_utf8_to_utf8(std::string_view, std::string&) { return false; }
void utf8_to_modified_utf8(std::string_view, std::string&) {}
std::size_t modified_utf8_length(std::string_view) noexcept { return 0; }
std::size_t utf16_length(std::string_view) noexcept { return 0; }

std::string to_string(const connection_id&) { return {}; }
std::string to_string(const session_id&) { return {}; }
std::string to_string(const producer_id&) { return {}; }
std::string to_string(const consumer_id&) { return {}; }
std::string to_string(const message_id&) { return {}; }
std::string to_string(const destination&) { return {}; }

}  // namespace sb::openwire
