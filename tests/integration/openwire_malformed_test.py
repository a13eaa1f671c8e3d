#!/usr/bin/python3
# tests/integration/openwire_malformed_test.py — issue 20, done-when 4: bad OpenWire input against
# the real binary, byte for byte from a raw socket: a wrong magic, an unsupported version, a
# command larger than the negotiated maximum frame size, an unknown command type, a marshalling
# cache index out of range, a truncated command; each is answered with a ConnectionError (or
# just closed, for the truncated one) and ends that connection only: another connection,
# negotiated before, still answers a KeepAliveInfo. Commands for unknown connection ids, and a
# cached id naming a slot never filled (null, as in ActiveMQ), are refused with an
# ExceptionResponse without closing. And the inactivity monitor: a connection that negotiated a
# MaxInactivityDuration and then went silent is closed after it; one sending KeepAliveInfo stays.
#
# The frames are written in the loose encoding (the one every version starts with): [size]
# [type] then the fields; a WireFormatInfo is the magic, the version and its properties as a
# primitive map. Every wait is bounded.

import os
import socket
import struct
import sys
import time
import unittest

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import HOST, WAIT  # noqa: E402

WIRE_FORMAT_INFO, KEEP_ALIVE, SESSION_INFO, CONNECTION_INFO = 1, 10, 4, 3
BROKER_INFO, CONNECTION_ERROR, RESPONSE, EXCEPTION_RESPONSE = 2, 16, 30, 31
MAX_FRAME = 4096


def utf(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def props(entries):
    """A primitive map: {name: bool | int (as an int) | ("long", n)}."""
    out = struct.pack(">i", len(entries))
    for k, v in entries.items():
        out += utf(k)
        if isinstance(v, bool):
            out += bytes([1, int(v)])
        elif isinstance(v, tuple):
            out += bytes([6]) + struct.pack(">q", v[1])
        else:
            out += bytes([5]) + struct.pack(">i", v)
    return out


def frame(body):
    return struct.pack(">I", len(body)) + body


def wire_format_info(magic=b"ActiveMQ", version=12, cache=True, inactivity_ms=0):
    p = props({"TightEncodingEnabled": False, "CacheEnabled": cache, "CacheSize": 1024, "SizePrefixDisabled": False,
               "StackTraceEnabled": False, "MaxInactivityDuration": ("long", inactivity_ms),
               "MaxInactivityDurationInitalDelay": ("long", 0)})
    return frame(bytes([WIRE_FORMAT_INFO]) + magic + struct.pack(">i", version) + b"\x01" + struct.pack(">i", len(p)) + p)


def keep_alive(command_id):
    return frame(bytes([KEEP_ALIVE]) + struct.pack(">i", command_id) + b"\x01")


class RawOpenWire:
    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=WAIT)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_frame(self, timeout=WAIT):
        """(type, body) of the next frame; None at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 4:
                size = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + size:
                    body, self.buf = self.buf[4:4 + size], self.buf[4 + size:]
                    return body[0], body
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no frame within the timeout")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self.buf += data

    def handshake(self, cache=True, inactivity_ms=0):
        kind, _ = self.read_frame()
        assert kind == WIRE_FORMAT_INFO, kind
        self.send(wire_format_info(cache=cache, inactivity_ms=inactivity_ms))
        kind, _ = self.read_frame()
        assert kind == BROKER_INFO, kind

    def frames_until(self, deadline):
        """The types of the frames that arrive before `deadline` (time.monotonic()), and
        whether the connection ended before it."""
        kinds = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return kinds, False
            try:
                f = self.read_frame(timeout=left)
            except (AssertionError, TimeoutError):   # nothing more within the time
                return kinds, False
            if f is None:
                return kinds, True
            kinds.append(f[0])

    def expect_error_and_close(self, test, why):
        """A ConnectionError whose message contains `why`, then the end of the connection."""
        frames = []
        while True:
            f = self.read_frame()
            if f is None:
                break
            frames.append(f)
        errors = [body for kind, body in frames if kind == CONNECTION_ERROR]
        test.assertTrue(errors, f"no ConnectionError before the close: {[k for k, _ in frames]}")
        test.assertIn(why, errors[0])

    def expect_refusal_and_stay(self, test, why, command_id):
        """An ExceptionResponse whose message contains `why`, and the connection stays: it still
        answers a KeepAliveInfo (sent with `command_id`)."""
        kind, body = self.read_frame()
        test.assertEqual(kind, EXCEPTION_RESPONSE)
        test.assertIn(why, body)
        self.send(keep_alive(command_id))
        kind, _ = self.read_frame()
        test.assertEqual(kind, KEEP_ALIVE)

    def close(self):
        self.sock.close()


class OpenWireMalformed(sbtest.BrokerTestCase):
    broker_config = {"openwire": {"max_frame_size": MAX_FRAME}}

    def setUp(self):
        self.ow_port = sbtest.free_port()
        method = getattr(self, self._testMethodName)
        extra = sbtest.deep_merge(self.broker_config, getattr(method, "sb_config", {}))
        self.broker = sbtest.Broker(extra)
        self.broker.config["listeners"].append({"name": "openwire", "protocol": "openwire", "address": HOST,
                                                "port": self.ow_port})
        self.addCleanup(self.broker.cleanup)
        self.addCleanup(self.broker.stop)
        self.broker.start()
        # A bystander, negotiated before each bad connection: it must be unaffected.
        self.good = self.raw()
        self.good.handshake()

    def raw(self):
        c = RawOpenWire(self.ow_port)
        self.addCleanup(c.close)
        return c

    def tearDown(self):
        self.good.send(keep_alive(7))
        kind, _ = self.good.read_frame()
        self.assertEqual(kind, KEEP_ALIVE, "the other connection no longer answers")

    def test_wrong_magic(self):
        c = self.raw()
        c.read_frame()
        c.send(wire_format_info(magic=b"ActiveMX"))
        c.expect_error_and_close(self, b"magic")

    def test_unsupported_version(self):
        c = self.raw()
        c.read_frame()
        c.send(wire_format_info(version=0))
        c.expect_error_and_close(self, b"version")

    def test_first_command_not_wire_format(self):
        c = self.raw()
        c.read_frame()
        c.send(keep_alive(1))
        c.expect_error_and_close(self, b"WireFormatInfo")

    def test_oversize_command(self):
        c = self.raw()
        c.handshake()
        # Only the size prefix: the connection ends as soon as it is read.
        c.send(struct.pack(">I", MAX_FRAME * 4) + bytes([SESSION_INFO]))
        c.expect_error_and_close(self, b"maximum frame size")

    def test_unknown_command_type(self):
        c = self.raw()
        c.handshake()
        c.send(frame(bytes([99]) + b"\x00" * 8))
        c.expect_error_and_close(self, b"type")

    def test_cache_index_out_of_range(self):
        c = self.raw()
        c.handshake(cache=True)
        # SessionInfo: command id, response required, then its session id as a cached object
        # (loose: "not new" and the index) that names entry 2000 of a cache of 1024.
        c.send(frame(bytes([SESSION_INFO]) + struct.pack(">i", 1) + b"\x01" + b"\x00" + struct.pack(">h", 2000)))
        c.expect_error_and_close(self, b"cache")

    def test_cache_slot_never_filled(self):
        # A ConnectionInfo whose connection id names slot 5 of the cache, which no command
        # filled: null, as ActiveMQ's getFromUnmarshallCache reads it, and so refused for the
        # missing id with an ExceptionResponse; the connection stays.
        c = self.raw()
        c.handshake(cache=True)
        # Command id, response required, the cached id (not new, index 5), client id, password,
        # user name and broker path null, five false booleans, client ip null.
        c.send(frame(bytes([CONNECTION_INFO]) + struct.pack(">i", 3) + b"\x01" + b"\x00" + struct.pack(">h", 5) +
                     b"\x00" * 4 + b"\x00" * 5 + b"\x00"))
        c.expect_refusal_and_stay(self, b"without a connection id", 4)

    # The inactivity monitor: the broker announces 3000 ms and no initial delay, the client
    # 800 ms; the smaller one applies.
    INACTIVITY = {"openwire": {"max_inactivity_ms": 3000, "max_inactivity_initial_delay_ms": 0}}

    @sbtest.config_override(INACTIVITY)
    def test_inactivity_monitor_closes_a_silent_connection(self):
        c = self.raw()
        c.handshake(inactivity_ms=800)
        start = time.monotonic()
        kinds, ended = c.frames_until(start + 0.8 + WAIT)
        elapsed = time.monotonic() - start
        self.assertTrue(ended, f"still open {elapsed:.1f} s after the handshake")
        self.assertGreaterEqual(elapsed, 0.8 * 0.9, "closed before the negotiated 800 ms")
        self.assertLess(elapsed, 2.5, "closed only near the broker's 3000 ms: the smaller duration was not used")
        # Meanwhile the broker wrote a KeepAliveInfo after each third of it without output.
        self.assertIn(KEEP_ALIVE, kinds)

    @sbtest.config_override(INACTIVITY)
    def test_inactivity_monitor_keeps_a_connection_that_sends_keep_alives(self):
        c = self.raw()
        c.handshake(inactivity_ms=800)
        start = time.monotonic()
        command_id = 10
        # Three durations long, a KeepAliveInfo every 200 ms (each answered: it asks for a
        # response); the broker must not close.
        while time.monotonic() < start + 3 * 0.8:
            c.send(keep_alive(command_id))
            command_id += 1
            kinds, ended = c.frames_until(time.monotonic() + 0.2)
            self.assertFalse(ended, f"closed {time.monotonic() - start:.1f} s after the handshake despite keep-alives")
            self.assertIn(KEEP_ALIVE, kinds, "a KeepAliveInfo asking for a response is answered")
        c.send(keep_alive(command_id))
        kind, _ = c.read_frame()
        self.assertEqual(kind, KEEP_ALIVE)

    def test_truncated_command(self):
        c = self.raw()
        c.handshake()
        c.send(struct.pack(">I", 100) + bytes([SESSION_INFO]) + b"\x00" * 10)
        c.sock.shutdown(socket.SHUT_WR)
        self.assertIsNone(c.read_frame(), "a truncated command then EOF: closed without an answer")

    def test_command_before_connection_info(self):
        # A SessionInfo (nested session id, cache off) before any ConnectionInfo: an
        # ExceptionResponse, and the connection stays.
        c = self.raw()
        c.handshake(cache=False)
        session_id = b"\x01" + bytes([121]) + b"\x01" + utf("ID:nobody-1") + struct.pack(">q", 1)
        c.send(frame(bytes([SESSION_INFO]) + struct.pack(">i", 5) + b"\x01" + session_id))
        c.expect_refusal_and_stay(self, b"ConnectionInfo must come first", 6)


if __name__ == "__main__":
    sbtest.main()
