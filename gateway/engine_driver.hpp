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

// While one lives on this thread, a driver woken by its engine (a kernel completion or delivery:
// engine::driver_hooks::wake) looks at its connection once when the outermost scope ends,
// however many events woke it: a worker running a batch of posted deliveries encodes them all
// and starts one write, instead of a write (and a look at reading and deadlines) per event.
// Wakes outside any scope are handled at once. Scopes: a worker's inbox batch, and each driver
// callback (input decoded there may complete kernel calls for other connections).
class wake_batch {
public:
    wake_batch() noexcept;
    ~wake_batch();
    wake_batch(const wake_batch&) = delete;
    wake_batch& operator=(const wake_batch&) = delete;
};

}  // namespace sb::gateway
