# tests/integration/stomp_heartbeat_test.py — STOMP heart-beats and the CONNECT timeout, timed on
# raw sockets (and stomp.py's own heart-beating): who closes what, and how soon.

import os
import sys
import threading
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import BrokerTestCase  # noqa: E402

FLOOR_MS = 50


def parse_heart_beat(frame):
    value = frame.headers.get("heart-beat")
    if value is None:
        raise AssertionError(f"CONNECTED without heart-beat header: {frame!r}")
    sx, sy = value.split(",")
    return int(sx), int(sy)


class HeartbeatTest(BrokerTestCase):
    broker_config = {"stomp": {"heartbeat_floor_ms": FLOOR_MS, "heartbeat_grace": 1.5,
                               "connect_timeout_ms": 300}}

    def assert_closed_between(self, raw, started, low, high, what):
        frames = raw.wait_closed(timeout=high + 2)
        elapsed = time.monotonic() - started
        self.assertEqual([f for f in frames if f.command != "ERROR"], [],
                         f"{what}: unexpected frames before close")
        self.assertGreater(elapsed, low, f"{what}: closed too early ({elapsed:.3f}s)")
        self.assertLess(elapsed, high, f"{what}: closed too late ({elapsed:.3f}s)")
        return elapsed

    def test_silent_client_is_closed_after_grace_times_interval(self):
        raw = self.raw()
        raw.send_frame("CONNECT", {"accept-version": "1.2", "host": "localhost",
                                   "heart-beat": "100,0"})
        connected = raw.expect("CONNECTED")
        started = time.monotonic()
        _, sy = parse_heart_beat(connected)
        self.assertEqual(sy, 100, f"sy = max(cx, floor) = 100: {connected.headers}")
        # Expected close after 1.5 x 100 ms of silence; allow scheduling slack up to 3 s.
        self.assert_closed_between(raw, started, 0.1, 3.0, "heart-beat:100,0 then silence")

    def test_client_interval_below_floor_is_raised_to_floor(self):
        raw = self.raw()
        raw.send_frame("CONNECT", {"accept-version": "1.2", "host": "localhost",
                                   "heart-beat": "10,0"})
        connected = raw.expect("CONNECTED")
        started = time.monotonic()
        _, sy = parse_heart_beat(connected)
        self.assertEqual(sy, FLOOR_MS, f"sy = max(cx, floor): {connected.headers}")
        self.assert_closed_between(raw, started, FLOOR_MS / 1000.0, 3.0,
                                   "heart-beat:10,0 then silence")

    def test_client_heart_beats_keep_the_connection_open(self):
        raw = self.raw()
        raw.send_frame("CONNECT", {"accept-version": "1.2", "host": "localhost",
                                   "heart-beat": "100,0"})
        raw.expect("CONNECTED")
        pace = threading.Event()     # never set: wait() is only a bounded pacing delay
        end = time.monotonic() + 1.0  # ~7 close deadlines (150 ms) pass meanwhile
        while time.monotonic() < end:
            raw.send(b"\n")
            pace.wait(0.05)
        raw.send_frame("SEND", {"destination": "/queue/hb", "receipt": "alive"}, b"x")
        frame = raw.expect("RECEIPT")
        self.assertEqual(frame.headers.get("receipt-id"), "alive")

    def test_server_sends_heart_beats_when_asked(self):
        raw = self.raw()
        raw.send_frame("CONNECT", {"accept-version": "1.2", "host": "localhost",
                                   "heart-beat": "0,100"})
        connected = raw.expect("CONNECTED")
        sx, _ = parse_heart_beat(connected)
        self.assertGreater(sx, 0, f"server offers no heart-beats: {connected.headers}")
        started = time.monotonic()
        try:
            frames = raw.wait_heartbeats(3, timeout=2.0)
        except TimeoutError:
            self.fail(f"only {raw.heartbeats} heart-beats within 2 s")
        self.assertEqual(frames, [])
        elapsed = time.monotonic() - started
        # max(cy=100, floor=50) = 100 ms apart: 3 beats need at least ~200 ms.
        self.assertGreater(elapsed, 0.15, f"3 heart-beats in {elapsed:.3f}s: too fast")
        # cx = 0: the server expects nothing from us and must not have closed.
        raw.send_frame("SEND", {"destination": "/queue/hb", "receipt": "still-here"}, b"x")
        frame = raw.expect("RECEIPT")
        self.assertEqual(frame.headers.get("receipt-id"), "still-here")

    def test_no_heart_beats_without_request(self):
        raw = self.raw()
        raw.send_frame("CONNECT", {"accept-version": "1.2", "host": "localhost"})
        raw.expect("CONNECTED")
        # Silent for 0.5 s (> 3 floors): neither beats nor a close may happen.
        try:
            frame = raw.read_frame(timeout=0.5)
            self.fail(f"unexpected frame {frame!r}")
        except TimeoutError:
            pass
        self.assertEqual(raw.heartbeats, 0)

    def test_stomp_py_heart_beating_client_stays_connected_and_works(self):
        client = self.client(heartbeats=(200, 200))
        client.subscribe("/queue/hb-py", "sub-1")
        self.assertFalse(client.disconnected.wait(1.5), "stomp.py client dropped within 1.5 s")
        self.assertGreaterEqual(client.received_heartbeats, 3,
                                "server sent fewer than 3 heart-beats in 1.5 s at 200 ms")
        client.send("/queue/hb-py", "after-idle", receipt=True)
        self.assertEqual(client.get_message().body, "after-idle")

    def test_connect_timeout_closes_a_silent_socket(self):
        raw = self.raw()
        started = time.monotonic()
        self.assert_closed_between(raw, started, 0.2, 3.0, "no CONNECT within 300 ms")

    def test_connect_timeout_closes_a_partial_connect(self):
        raw = self.raw()
        started = time.monotonic()
        raw.send(b"CONNECT\naccept-version:1.2\n")   # never finished
        self.assert_closed_between(raw, started, 0.2, 3.0, "partial CONNECT")

    def test_connect_in_time_is_not_closed(self):
        raw = self.raw()
        raw.connect("1.2")
        # Well past the 300 ms connect timeout, the session is still open.
        try:
            frame = raw.read_frame(timeout=0.6)
            self.fail(f"unexpected frame {frame!r}")
        except TimeoutError:
            pass
        raw.send_frame("DISCONNECT", {"receipt": "done"})
        self.assertEqual(raw.expect("RECEIPT").headers.get("receipt-id"), "done")


if __name__ == "__main__":
    sbtest.main()
