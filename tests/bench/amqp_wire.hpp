// tests/bench/amqp_wire.hpp — the bench's AMQP 1.0 client side: one connection with one session
// and one link (a sender or a receiver), framed by hand in amqp_wire.cpp over the bench's own
// socket (peer). This header is all the scenario sees.
//
// The caller moves bytes: feed() what the socket read, take_output() what to write. Callbacks
// (amqp_events) run inside feed(), never inside send(); settlements and credit are reported once
// per feed(), after every frame of it was processed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace sb::bench {

struct amqp_link_config {
    bool sender = true;
    std::string address;       // the target (sender) or source (receiver) address
    std::string container_id;  // open's container-id
    std::string link_name;
    std::string hostname;      // open's hostname (RabbitMQ: "vhost:/" selects the virtual host)
    std::string user;          // SASL PLAIN with user and password; empty: SASL ANONYMOUS
    std::string password;
    bool presettled = false;   // settle-on-send: sender mode settled, nothing is confirmed
    bool durable = false;      // header durable=true on every message; terminus durability
                               // unsettled-state (RabbitMQ declares the queue durable then)
    std::uint32_t credit = 1000;  // receiver: the credit kept granted (topped up at half)
};

class amqp_events {
public:
    virtual void amqp_ready() = 0;                                   // the peer attached the link
    virtual void amqp_writable() = 0;                                // sender: credit grew
    virtual void amqp_settled(std::uint64_t accepted) = 0;           // sender: deliveries accepted
    virtual void amqp_message(std::span<const std::uint8_t> body) = 0;  // receiver: one message's body
    virtual void amqp_failed(std::string why) = 0;                   // refused, closed, bad frame

protected:
    ~amqp_events() = default;
};

class amqp_endpoint {
public:
    amqp_endpoint(amqp_link_config cfg, amqp_events& events);
    ~amqp_endpoint();
    amqp_endpoint(const amqp_endpoint&) = delete;
    amqp_endpoint& operator=(const amqp_endpoint&) = delete;

    // Queues the protocol headers, SASL, open, begin and attach (take_output() to write them).
    void open();
    // Processes every byte of `in` (what is not a whole frame yet is kept for the next call).
    void feed(std::span<const std::uint8_t> in);
    // Sender: messages that may be sent now (the peer's credit minus what is queued).
    std::uint32_t sendable() const;
    // Sender: one message with `body` as its single data section.
    void send(std::span<const std::uint8_t> body);
    // Bytes encoded by send() since the last take_output() (an estimate of what it will give).
    std::size_t unflushed() const noexcept { return unflushed_; }
    // Appends everything encoded since the last call to `out`.
    void take_output(std::string& out);
    // Closes the connection (a close frame; take_output() writes it).
    void close();

private:
    struct impl;
    std::unique_ptr<impl> p_;
    std::size_t unflushed_ = 0;
};

// Pure, unit-tested: the bytes of a bare message with `body` as one data section, preceded by a
// header section with durable=true when `durable`.
void amqp_encode_message(std::string& out, std::span<const std::uint8_t> body, bool durable);
// The body of an encoded message: its (first) data section, or an amqp-value holding binary;
// nullopt when neither is there or the encoding is malformed.
std::optional<std::span<const std::uint8_t>> amqp_message_body(std::span<const std::uint8_t> message);

}  // namespace sb::bench
