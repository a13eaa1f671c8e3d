// gateway/engine_driver.hpp — the one Asio driver of every protocol connection: pumps an
// engine::connection over any net::transport (TCP, TLS, prefixed, stacked).
//
// Waits for readability, reads into the worker's scratch buffer and feeds the engine (no read
// buffer per connection); starts a write whenever output is queued and none is in flight; shuts
// the send side and closes the transport when the engine says so. Deadlines go to one timer
// heap per worker (io_context), which holds (deadline, weak connection) — a connection holds no
// timer, so an idle one costs its engine, its transport and nothing else.
//
// The driver belongs to its connection (engine::connection::attach), and every pending
// transport operation and heap entry refers to the connection: it lives as long as a read, a
// write, or a kernel completion is pending. All on the connection's worker.
#pragma once

#include <memory>

#include "adapters/engine/connection.hpp"
#include "gateway/transport.hpp"

namespace sb::gateway {

// Runs `c` on `t`; the returned session (the same object as `c`) is what the worker registers
// and start()s.
std::shared_ptr<net::session> drive(std::shared_ptr<engine::connection> c, std::unique_ptr<net::transport> t);

}  // namespace sb::gateway
