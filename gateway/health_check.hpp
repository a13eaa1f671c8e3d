// gateway/health_check.hpp — periodic health checks of a backend's servers, HAProxy-style
// (`check inter 3s fall 3 rise 2`), with the real handshake of each protocol:
//   tcp       the connection is accepted
//   mqtt      CONNECT (3.1.1, clean session) → CONNACK accepted (or refused for credentials:
//             the broker answers, so it is up), then DISCONNECT
//   stomp     CONNECT → CONNECTED (ERROR: down), then DISCONNECT
//   amqp      protocol header + open → header + open (a SASL header in reply: up, it speaks AMQP)
//   openwire  the server's WireFormatInfo is read, and the same capabilities are sent back
//   http      GET path → the expected status
// One check at a time per server, bounded by `timeout`; a server goes down after `fall`
// failures in a row and up after `rise` successes. Transitions are logged, counted and close
// the connections relayed to a server that went down (and, with on_server_up: close_backups,
// those on the servers that a server coming up outranks).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>

#include "gateway/backend.hpp"
#include "gateway/probe.hpp"

namespace sb::gateway {

// Runs the checks of every server of one backend on `ex` until stop().
class health_checker {
public:
    // The checks keep `b` alive until they have ended (after stop()).
    health_checker(boost::asio::any_io_executor ex, std::shared_ptr<backend> b);
    ~health_checker();
    void start();
    void stop();   // thread-safe; pending checks are cancelled on the executor

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace sb::gateway
