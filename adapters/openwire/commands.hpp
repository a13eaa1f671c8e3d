// adapters/openwire/commands.hpp — OpenWire (ActiveMQ 5.x) commands and data structures as plain
// values. Field names follow ActiveMQ's org.apache.activemq.command classes (snake_case), field
// order follows the wire (the v12 marshallers); a comment "vN" marks a field that the wire
// carries from version N on (older versions leave it at its default on decode and do not write
// it on encode).
//
// Ownership: strings and byte arrays are views. A decoded command's views point into the input
// bytes, into the wire_format's marshalling cache or into its scratch storage (strings that
// were converted from Java's modified UTF-8); they stay valid until the next decode() on the
// same wire_format (and as long as the input bytes). Whatever outlives that is copied by the
// session. On encode, the views point wherever the caller likes, valid during encode().
//
// Null: Java distinguishes null from "" (and null from an empty byte[]); so do we. A string or
// byte view whose data() is nullptr is null (a default-constructed view); "" and an empty
// std::string are not. is_null() tests it. Nullable objects are std::optional (value types) or
// pointers (polymorphic or recursive ones, see data_structure).
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

namespace sb::openwire {

using bytes = std::span<const std::uint8_t>;

inline bool is_null(std::string_view s) noexcept { return s.data() == nullptr; }
inline bool is_null(bytes b) noexcept { return b.data() == nullptr; }
// A non-null empty string / byte array, for encoding "" (a default view is null).
inline constexpr std::string_view empty_string{"", 0};
inline const std::uint8_t empty_bytes_storage[1] = {0};
inline const bytes empty_bytes{empty_bytes_storage, 0};

// The data structure type bytes (org.apache.activemq.command.CommandTypes).
namespace type {
inline constexpr std::uint8_t null = 0;
inline constexpr std::uint8_t wire_format_info = 1;
inline constexpr std::uint8_t broker_info = 2;
inline constexpr std::uint8_t connection_info = 3;
inline constexpr std::uint8_t session_info = 4;
inline constexpr std::uint8_t consumer_info = 5;
inline constexpr std::uint8_t producer_info = 6;
inline constexpr std::uint8_t transaction_info = 7;
inline constexpr std::uint8_t destination_info = 8;
inline constexpr std::uint8_t remove_subscription_info = 9;
inline constexpr std::uint8_t keep_alive_info = 10;
inline constexpr std::uint8_t shutdown_info = 11;
inline constexpr std::uint8_t remove_info = 12;
inline constexpr std::uint8_t control_command = 14;
inline constexpr std::uint8_t flush_command = 15;
inline constexpr std::uint8_t connection_error = 16;
inline constexpr std::uint8_t consumer_control = 17;
inline constexpr std::uint8_t connection_control = 18;
inline constexpr std::uint8_t producer_ack = 19;        // v3
inline constexpr std::uint8_t message_pull = 20;        // v2
inline constexpr std::uint8_t message_dispatch = 21;
inline constexpr std::uint8_t message_ack = 22;
inline constexpr std::uint8_t activemq_message = 23;
inline constexpr std::uint8_t activemq_bytes_message = 24;
inline constexpr std::uint8_t activemq_map_message = 25;
inline constexpr std::uint8_t activemq_object_message = 26;
inline constexpr std::uint8_t activemq_stream_message = 27;
inline constexpr std::uint8_t activemq_text_message = 28;
inline constexpr std::uint8_t activemq_blob_message = 29;   // v3
inline constexpr std::uint8_t response = 30;
inline constexpr std::uint8_t exception_response = 31;
inline constexpr std::uint8_t data_response = 32;
inline constexpr std::uint8_t data_array_response = 33;
inline constexpr std::uint8_t integer_response = 34;
inline constexpr std::uint8_t discovery_event = 40;
inline constexpr std::uint8_t message_dispatch_notification = 90;
inline constexpr std::uint8_t activemq_queue = 100;
inline constexpr std::uint8_t activemq_topic = 101;
inline constexpr std::uint8_t activemq_temp_queue = 102;
inline constexpr std::uint8_t activemq_temp_topic = 103;
inline constexpr std::uint8_t message_id = 110;
inline constexpr std::uint8_t local_transaction_id = 111;
inline constexpr std::uint8_t xa_transaction_id = 112;
inline constexpr std::uint8_t connection_id = 120;
inline constexpr std::uint8_t session_id = 121;
inline constexpr std::uint8_t consumer_id = 122;
inline constexpr std::uint8_t producer_id = 123;
inline constexpr std::uint8_t broker_id = 124;
}  // namespace type

inline constexpr bool is_message_type(std::uint8_t t) noexcept {
    return t >= type::activemq_message && t <= type::activemq_blob_message;
}
inline constexpr bool is_destination_type(std::uint8_t t) noexcept {
    return t >= type::activemq_queue && t <= type::activemq_temp_topic;
}

// ---------------------------------------------------------------------------------------------
// Ids (all marshalled as cached objects where a command refers to them)

struct connection_id {
    std::string_view value;
    friend bool operator==(const connection_id&, const connection_id&) = default;
};

struct session_id {
    std::string_view connection_id;
    std::int64_t value = 0;
    friend bool operator==(const session_id&, const session_id&) = default;
};

// Wire order: connection id, value, session id (as ActiveMQ's ProducerIdMarshaller).
struct producer_id {
    std::string_view connection_id;
    std::int64_t value = 0;
    std::int64_t session_id = 0;
    friend bool operator==(const producer_id&, const producer_id&) = default;
};

struct consumer_id {
    std::string_view connection_id;
    std::int64_t session_id = 0;
    std::int64_t value = 0;
    friend bool operator==(const consumer_id&, const consumer_id&) = default;
};

struct broker_id {
    std::string_view value;
    friend bool operator==(const broker_id&, const broker_id&) = default;
};

struct message_id {
    std::string_view text_view;                           // v10: a free-form id ("ID:..." as the client made it)
    std::optional<openwire::producer_id> producer_id;     // cached
    std::int64_t producer_sequence_id = 0;
    std::int64_t broker_sequence_id = 0;
    friend bool operator==(const message_id&, const message_id&) = default;
};

struct local_transaction_id {
    std::int64_t value = 0;
    std::optional<openwire::connection_id> connection_id;  // cached
    friend bool operator==(const local_transaction_id&, const local_transaction_id&) = default;
};

struct xa_transaction_id {
    std::int32_t format_id = 0;
    bytes global_transaction_id;
    bytes branch_qualifier;
    friend bool operator==(const xa_transaction_id& a, const xa_transaction_id& b) noexcept {
        auto same = [](bytes x, bytes y) {
            return is_null(x) == is_null(y) && std::equal(x.begin(), x.end(), y.begin(), y.end());
        };
        return a.format_id == b.format_id && same(a.global_transaction_id, b.global_transaction_id) &&
               same(a.branch_qualifier, b.branch_qualifier);
    }
};

using transaction_id = std::variant<local_transaction_id, xa_transaction_id>;

// ActiveMQQueue / ActiveMQTopic / ActiveMQTempQueue / ActiveMQTempTopic: `type` is one of the
// four type bytes. The physical name may be composite ("a,b") or carry options ("q?x=y"):
// that is the session's to interpret.
struct destination {
    std::uint8_t type = openwire::type::activemq_queue;
    std::string_view physical_name;
    friend bool operator==(const destination&, const destination&) = default;
};

// RemoveInfo's object id.
using object_id = std::variant<std::monostate, connection_id, session_id, consumer_id, producer_id>;

// A Java Throwable as OpenWire carries it: class name and message; with StackTraceEnabled also
// the stack trace and the cause (recursively). The pointee of `cause` lives where the
// throwable's views do.
struct stack_trace_element {
    std::string_view declaring_class;
    std::string_view method_name;
    std::string_view file_name;
    std::int32_t line_number = 0;
};
struct throwable {
    std::string_view class_name;
    std::string_view message;
    std::vector<stack_trace_element> stack_trace;
    const throwable* cause = nullptr;
};

struct data_structure;   // any of the below, for fields typed DataStructure in ActiveMQ

// ---------------------------------------------------------------------------------------------
// Commands

struct base_command {
    std::int32_t command_id = 0;
    bool response_required = false;
};

inline constexpr std::uint8_t openwire_magic[8] = {'A', 'c', 't', 'i', 'v', 'e', 'M', 'Q'};

// Not a BaseCommand (no command id). marshalled_properties is the primitive map of the
// settings (see wire_format_settings in codec.hpp, which reads and writes it).
struct wire_format_info {
    bytes magic;                  // 8 bytes, "ActiveMQ"; encode writes the magic when null
    std::int32_t version = 0;
    bytes marshalled_properties;
};

struct broker_info : base_command {
    std::optional<openwire::broker_id> broker_id;          // cached
    std::string_view broker_url;
    std::optional<std::vector<broker_info>> peer_broker_infos;
    std::string_view broker_name;
    bool slave_broker = false;
    bool master_broker = false;
    bool fault_tolerant_configuration = false;
    bool duplex_connection = false;                        // v2
    bool network_connection = false;                       // v2
    std::int64_t connection_id = 0;                        // v2
    std::string_view broker_upload_url;                    // v3
    std::string_view network_properties;                   // v3
};

struct connection_info : base_command {
    std::optional<openwire::connection_id> connection_id;  // cached
    std::string_view client_id;
    std::string_view password;
    std::string_view user_name;
    std::optional<std::vector<openwire::broker_id>> broker_path;
    bool broker_master_connector = false;
    bool manageable = false;
    bool client_master = false;                            // v2
    bool fault_tolerant = false;                           // v6
    bool failover_reconnect = false;                       // v6
    std::string_view client_ip;                            // v8
};

struct session_info : base_command {
    std::optional<openwire::session_id> session_id;        // cached
};

struct consumer_info : base_command {
    std::optional<openwire::consumer_id> consumer_id;      // cached
    bool browser = false;
    std::optional<openwire::destination> destination;      // cached
    std::int32_t prefetch_size = 0;
    std::int32_t maximum_pending_message_limit = 0;
    bool dispatch_async = false;
    std::string_view selector;
    std::string_view client_id;                            // v10
    std::string_view subscription_name;
    bool no_local = false;
    bool exclusive = false;
    bool retroactive = false;
    std::int8_t priority = 0;
    std::optional<std::vector<openwire::broker_id>> broker_path;
    const data_structure* additional_predicate = nullptr;  // nested (network bridges only)
    bool network_subscription = false;
    bool optimized_acknowledge = false;
    bool no_range_acks = false;
    std::optional<std::vector<openwire::consumer_id>> network_consumer_path;   // v4
};

struct producer_info : base_command {
    std::optional<openwire::producer_id> producer_id;      // cached
    std::optional<openwire::destination> destination;      // cached
    std::optional<std::vector<openwire::broker_id>> broker_path;
    bool dispatch_async = false;                           // v2
    std::int32_t window_size = 0;                          // v3
};

// TransactionInfo.type
namespace transaction_type {
inline constexpr std::int8_t begin = 0;
inline constexpr std::int8_t prepare = 1;
inline constexpr std::int8_t commit_one_phase = 2;
inline constexpr std::int8_t commit_two_phase = 3;
inline constexpr std::int8_t rollback = 4;
inline constexpr std::int8_t recover = 5;
inline constexpr std::int8_t forget = 6;
inline constexpr std::int8_t end = 7;
}  // namespace transaction_type

struct transaction_info : base_command {
    std::optional<openwire::connection_id> connection_id;  // cached
    std::optional<openwire::transaction_id> transaction_id;  // cached
    std::int8_t type = 0;
};

// DestinationInfo.operation_type
namespace destination_operation {
inline constexpr std::int8_t add = 0;
inline constexpr std::int8_t remove = 1;
}  // namespace destination_operation

struct destination_info : base_command {
    std::optional<openwire::connection_id> connection_id;  // cached
    std::optional<openwire::destination> destination;      // cached
    std::int8_t operation_type = 0;
    std::int64_t timeout = 0;
    std::optional<std::vector<openwire::broker_id>> broker_path;
};

struct remove_subscription_info : base_command {
    std::optional<openwire::connection_id> connection_id;  // cached
    std::string_view subscription_name;                    // "subcriptionName" in ActiveMQ v6+
    std::string_view client_id;
};

struct keep_alive_info : base_command {};
struct shutdown_info : base_command {};

struct remove_info : base_command {
    openwire::object_id object_id;                         // cached; monostate = null
    std::int64_t last_delivered_sequence_id = 0;           // v5
};

struct control_command : base_command {
    std::string_view command;
};

struct flush_command : base_command {};

struct connection_error : base_command {
    const throwable* exception = nullptr;
    std::optional<openwire::connection_id> connection_id;  // nested
};

struct consumer_control : base_command {
    std::optional<openwire::destination> destination;      // v6, nested
    bool close = false;
    std::optional<openwire::consumer_id> consumer_id;      // nested
    std::int32_t prefetch = 0;
    bool flush = false;                                    // v2
    bool start = false;                                    // v2
    bool stop = false;                                     // v2
};

struct connection_control : base_command {
    bool close = false;
    bool exit = false;
    bool fault_tolerant = false;
    bool resume = false;
    bool suspend = false;
    std::string_view connected_brokers;                    // v6
    std::string_view reconnect_to;                         // v6
    bool rebalance_connection = false;                     // v6
    bytes token;                                           // v8
};

struct producer_ack : base_command {                       // v3
    std::optional<openwire::producer_id> producer_id;      // nested
    std::int32_t size = 0;
};

struct message_pull : base_command {                       // v2
    std::optional<openwire::consumer_id> consumer_id;      // cached
    std::optional<openwire::destination> destination;      // cached
    std::int64_t timeout = 0;
    std::string_view correlation_id;                       // v3
    std::optional<openwire::message_id> message_id;        // v3, nested
};

struct message;

struct message_dispatch : base_command {
    std::optional<openwire::consumer_id> consumer_id;      // cached
    std::optional<openwire::destination> destination;      // cached
    const openwire::message* message = nullptr;            // nested
    std::int32_t redelivery_counter = 0;
};

// MessageAck.ack_type
namespace ack_type {
inline constexpr std::int8_t delivered = 0;
inline constexpr std::int8_t standard = 2;
inline constexpr std::int8_t poison = 1;
inline constexpr std::int8_t redelivered = 3;
inline constexpr std::int8_t individual = 4;
inline constexpr std::int8_t unmatched = 5;
inline constexpr std::int8_t expired = 6;
}  // namespace ack_type

struct message_ack : base_command {
    std::optional<openwire::destination> destination;      // cached
    std::optional<openwire::transaction_id> transaction_id;  // cached
    std::optional<openwire::consumer_id> consumer_id;      // cached
    std::int8_t ack_type = 0;
    std::optional<openwire::message_id> first_message_id;  // nested
    std::optional<openwire::message_id> last_message_id;   // nested
    std::int32_t message_count = 0;
    const throwable* poison_cause = nullptr;               // v7
};

// ActiveMQMessage and its subtypes (`data_structure_type`: activemq_message .. activemq_blob_message). The
// content is the body as the client marshalled it (possibly deflated, see `compressed`): text
// is a 4-byte length and modified UTF-8 (codec.hpp's text body helpers), a map the primitive
// map encoding, a stream a sequence of primitives, an object Java serialization.
struct message : base_command {
    std::uint8_t data_structure_type = openwire::type::activemq_message;
    std::optional<openwire::producer_id> producer_id;      // cached
    std::optional<openwire::destination> destination;      // cached
    std::optional<openwire::transaction_id> transaction_id;  // cached
    std::optional<openwire::destination> original_destination;  // cached
    std::optional<openwire::message_id> message_id;        // nested
    std::optional<openwire::transaction_id> original_transaction_id;  // cached
    std::string_view group_id;                             // JMSXGroupID
    std::int32_t group_sequence = 0;                       // JMSXGroupSeq
    std::string_view correlation_id;
    bool persistent = false;
    std::int64_t expiration = 0;
    std::int8_t priority = 0;
    std::optional<openwire::destination> reply_to;         // nested
    std::int64_t timestamp = 0;
    std::string_view type;                                 // JMSType
    bytes content;
    bytes marshalled_properties;                           // a primitive map, never compressed
    const openwire::data_structure* data_structure = nullptr;  // nested (advisories carry commands here)
    std::optional<openwire::consumer_id> target_consumer_id;  // cached
    bool compressed = false;
    std::int32_t redelivery_counter = 0;
    std::optional<std::vector<openwire::broker_id>> broker_path;
    std::int64_t arrival = 0;
    std::string_view user_id;                              // JMSXUserID
    bool recieved_by_dfbridge = false;                     // sic
    bool droppable = false;                                // v2
    std::optional<std::vector<openwire::broker_id>> cluster;  // v3
    std::int64_t broker_in_time = 0;                       // v3
    std::int64_t broker_out_time = 0;                      // v3
    bool jmsx_group_first_for_consumer = false;            // v10
    // ActiveMQBlobMessage only (v3):
    std::string_view remote_blob_url;
    std::string_view mime_type;
    bool deleted_by_broker = false;
};

struct response : base_command {
    std::int32_t correlation_id = 0;
};

struct exception_response : response {
    const throwable* exception = nullptr;
};

struct data_response : response {
    const data_structure* data = nullptr;                  // nested
};

struct integer_response : response {
    std::int32_t result = 0;
};

struct message_dispatch_notification : base_command {
    std::optional<openwire::consumer_id> consumer_id;      // cached
    std::optional<openwire::destination> destination;      // cached
    std::int64_t delivery_sequence_id = 0;
    std::optional<openwire::message_id> message_id;        // nested
};

// Any data structure this codec marshals, top-level or nested. The index of an alternative
// is not its type byte: use type_of().
struct data_structure {
    std::variant<wire_format_info, broker_info, connection_info, session_info, consumer_info, producer_info,
                 transaction_info, destination_info, remove_subscription_info, keep_alive_info, shutdown_info,
                 remove_info, control_command, flush_command, connection_error, consumer_control,
                 connection_control, producer_ack, message_pull, message_dispatch, message_ack, message,
                 response, exception_response, data_response, integer_response,
                 message_dispatch_notification, destination, message_id, local_transaction_id,
                 xa_transaction_id, connection_id, session_id, consumer_id, producer_id, broker_id>
        value;
};

// The type byte a data structure is marshalled with (messages and destinations: their `type`).
std::uint8_t type_of(const data_structure& d) noexcept;

// The data structure a command frame carries: a top-level frame is any data structure
// (ActiveMQ marshals ids and destinations top-level too, though no client sends them).
using command = data_structure;

// "Responses" answer a command whose response_required was set.
inline bool is_response_type(std::uint8_t t) noexcept {
    return t >= type::response && t <= type::integer_response;
}

}  // namespace sb::openwire
