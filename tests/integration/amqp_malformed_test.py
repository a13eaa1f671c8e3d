# tests/integration/amqp_malformed_test.py — bad AMQP 1.0 input against the real binary: wrong
# protocol headers (answered with the header we speak, then closed), garbage and oversize frames,
# frames for unknown channels and handles, too many sessions, credit abuse, SASL exchanges that
# never end, and 1,000 links on one connection. Each bad connection gets an AMQP close with the
# right error condition (or a plain close before the AMQP header), and only that connection is
# affected: a client connected before it keeps working. Raw sockets (frames encoded with
# python3-qpid-proton's codec) for the malformed input.

import os
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import HOST, WAIT  # noqa: E402
from amqp_basic_test import AmqpTestCase  # noqa: E402

from proton import Data, Described, Message, symbol, uint, ulong  # noqa: E402

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"

# Performative descriptors (AMQP 1.0 §2.7) and the error's.
OPEN, BEGIN, ATTACH, FLOW, TRANSFER, DISPOSITION, DETACH, END, CLOSE = range(0x10, 0x19)
ERROR = 0x1D
SASL_MECHANISMS, SASL_INIT, SASL_OUTCOME = 0x40, 0x41, 0x44


def performative(code, fields):
    d = Data()
    d.put_object(Described(ulong(code), fields))
    return d.encode()


def frame(body, channel=0, ftype=0):
    return struct.pack(">IBBH", 8 + len(body), 2, ftype, channel) + body


def source(address):
    return Described(ulong(0x28), [address])


def target(address):
    return Described(ulong(0x29), [address])


class Frame:
    def __init__(self, channel, code, fields):
        self.channel, self.code, self.fields = channel, code, fields

    @property
    def condition(self):
        """The error condition of a close, end or detach (None when it has none)."""
        index = {CLOSE: 0, END: 0, DETACH: 2}.get(self.code)
        if index is None or len(self.fields) <= index or self.fields[index] is None:
            return None
        return str(self.fields[index].value[0])

    def __repr__(self):
        return f"Frame(ch={self.channel}, 0x{self.code or 0:02x}, {self.fields!r})"


class RawAmqp(sbtest.RawSocket):
    """Exact bytes out; the protocol header and decoded frames in."""

    def __init__(self, port, timeout=WAIT):
        super().__init__(port, timeout)
        self.header = None
        self.pending = []   # parsed, not yet taken by expect()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def frames(self, timeout=WAIT):
        """Every complete frame buffered or arriving within timeout, until the server closes
        (returns then, with closed=True) or a read times out."""
        out, self.pending = self.pending, []
        deadline = time.monotonic() + timeout
        while True:
            out.extend(self._parse())
            try:
                self._fill(deadline)
            except sbtest.ConnectionClosed:
                out.extend(self._parse())
                return out, True
            except TimeoutError:
                return out, False

    def _parse(self):
        out = []
        if self.header is None:
            if len(self.buf) < 8:
                return out
            self.header = bytes(self.buf[:8])
            del self.buf[:8]
        while len(self.buf) >= 8:
            size, doff, _, channel = struct.unpack(">IBBH", self.buf[:8])
            if len(self.buf) < size:
                break
            body = bytes(self.buf[doff * 4:size])
            del self.buf[:size]
            if not body:
                out.append(Frame(channel, None, None))   # an empty frame (heart-beat)
                continue
            d = Data()
            d.decode(body)
            d.rewind()
            d.next()
            o = d.get_object()
            out.append(Frame(channel, int(o.descriptor), list(o.value)))
        return out

    def expect(self, code, timeout=WAIT):
        """Reads until a frame with this descriptor; returns it (the frames before it are
        dropped, those after it kept)."""
        deadline = time.monotonic() + timeout
        while True:
            self.pending.extend(self._parse())
            while self.pending:
                f = self.pending.pop(0)
                if f.code == code:
                    return f
            self._fill(deadline)

    def open(self, container="raw"):
        self.send(AMQP_HEADER + frame(performative(OPEN, [container])))
        self.expect(OPEN)
        assert self.header == AMQP_HEADER, self.header

    def begin(self, channel=0):
        self.send(frame(performative(BEGIN, [None, uint(0), uint(1 << 20), uint(1 << 20)]), channel))
        return self.expect(BEGIN)

    def attach(self, name, handle, sender, address, channel=0, wait=True):
        # role: false for the sender (§2.7.3).
        self.send(frame(performative(ATTACH, [name, uint(handle), not sender, None, None,
                                              source(address), target(address)]), channel))
        return self.expect(ATTACH) if wait else None


def transfer(handle, delivery_id, body="x", channel=0):
    payload = Message(body=body).encode()
    return frame(performative(TRANSFER, [uint(handle), uint(delivery_id), b"t%d" % delivery_id, uint(0)])
                 + payload, channel)


class MalformedTestCase(AmqpTestCase):
    broker_config = {"amqp": {"connect_timeout_ms": 600, "link_credit": 5, "channel_max": 4}}

    def setUp(self):
        super().setUp()
        # A client connected before the bad one: it must keep working after it.
        self.bystander = self.connect()
        self.by_sender = self.bystander.create_sender("q.bystander")
        self.by_receiver = self.bystander.create_receiver("q.bystander", credit=10)

    def assert_bystander_works(self):
        body = f"still here {time.monotonic()}"
        self.by_sender.send(Message(body=body))
        self.assertEqual(self.by_receiver.receive().body, body)
        self.by_receiver.accept()
        # And a new connection is served.
        c = self.connect()
        c.create_sender("q.after").send(Message(body="new"))
        self.assertEqual(c.create_receiver("q.after").receive().body, "new")

    def raw_amqp(self):
        r = RawAmqp(self.amqp_port)
        self.addCleanup(r.close)
        return r

    def assert_closed_with(self, raw, condition, what=""):
        """The server sends close with `condition` (after any other frames), then ends the
        connection."""
        frames, closed = raw.frames()
        closes = [f for f in frames if f.code == CLOSE]
        self.assertTrue(closes, f"{what}: no close; frames: {frames!r} (closed={closed})")
        self.assertEqual(closes[-1].condition, condition, f"{what}: {closes[-1]!r}")
        self.assertTrue(closed, f"{what}: the connection stayed open after the close")
        self.assertEqual(frames[-1].code, CLOSE, f"{what}: frames after the close: {frames!r}")
        return closes[-1]

    def assert_plain_close(self, raw, reply, what=""):
        """Before AMQP: `reply` (a protocol header, or b"") and then the end, nothing else."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                raw._fill(deadline)
            except sbtest.ConnectionClosed:
                break
        self.assertEqual(bytes(raw.buf), reply, what)


def sasl_frame(code, fields):
    return frame(performative(code, fields), ftype=1)


class HeaderTest(MalformedTestCase):

    def test_wrong_protocol_headers_get_ours_then_the_end(self):
        for wrong in (b"AMQP\x00\x00\x09\x01",    # AMQP 0-9-1
                      b"AMQP\x01\x01\x00\x0a",    # AMQP 0-10
                      b"AMQP\x02\x01\x00\x00",    # TLS: not on this listener
                      b"AMQP\x00\x01\x00\x01",    # AMQP 1.0.1
                      b"GET / HTTP/1.1\r\n\r\n",  # not AMQP at all
                      b"\x00" * 8):
            with self.subTest(header=wrong):
                raw = self.raw_amqp()
                raw.send(wrong)
                self.assert_plain_close(raw, SASL_HEADER, f"after {wrong!r}")
        self.assert_bystander_works()


class FrameTest(MalformedTestCase):

    def test_undecodable_frames_are_closed_with_decode_error(self):
        for name, body in (("not a described type", b"\xff" * 8),
                           ("unknown performative", b"\x00\x53\x99\x45"),
                           ("truncated open", b"\x00\x53\x10"),
                           ("truncated begin", b"\x00\x53\x11\xc0\x05\x02\x40\xa1\x09")):
            with self.subTest(name):
                raw = self.raw_amqp()
                raw.open()
                raw.send(frame(body))
                self.assert_closed_with(raw, "amqp:decode-error", name)
        self.assert_bystander_works()

    def test_bad_frame_headers_are_closed_with_framing_error(self):
        for name, data in (("data offset below 2", b"\x00\x00\x00\x08\x01\x00\x00\x00"),
                           ("64 MiB frame", struct.pack(">IBBH", 64 << 20, 2, 0, 0) + b"x" * 100),
                           ("one byte over max-frame-size", struct.pack(">IBBH", (1 << 20) + 1, 2, 0, 0) + b"x" * 100)):
            with self.subTest(name):
                raw = self.raw_amqp()
                raw.open()
                raw.send(data)
                self.assert_closed_with(raw, "amqp:connection:framing-error", name)
        self.assert_bystander_works()

    def test_frames_for_unknown_channels_and_handles(self):
        cases = (
            # A channel no begin opened.
            ("attach on an unknown channel", "amqp:not-allowed",
             lambda raw: raw.send(frame(performative(ATTACH, ["l", uint(0), False, None, None, source("q.x"),
                                                              target("q.x")]), channel=3))),
            ("end of an unknown channel", "amqp:not-allowed",
             lambda raw: raw.send(frame(performative(END, []), channel=2))),
            # A channel above the channel-max we announced (4).
            ("begin above channel-max", "amqp:connection:framing-error",
             lambda raw: raw.send(frame(performative(BEGIN, [None, uint(0), uint(100), uint(100)]), channel=5))),
            # Handles no attach named.
            ("transfer on an unknown handle", "amqp:invalid-field",
             lambda raw: (raw.begin(), raw.send(transfer(9, 0)))),
            ("flow on an unknown handle", "amqp:invalid-field",
             lambda raw: (raw.begin(), raw.send(frame(performative(FLOW, [uint(0), uint(100), uint(0), uint(100), uint(7),
                                                                         uint(0), uint(10)]))))),
            ("detach of an unknown handle", "amqp:invalid-field",
             lambda raw: (raw.begin(), raw.send(frame(performative(DETACH, [uint(3), True]))))),
        )
        for name, condition, act in cases:
            with self.subTest(name):
                raw = self.raw_amqp()
                raw.open()
                act(raw)
                self.assert_closed_with(raw, condition, name)
        self.assert_bystander_works()

    def test_sessions_up_to_channel_max_are_served(self):
        raw = self.raw_amqp()
        raw.open()
        for channel in range(5):   # channel-max 4: channels 0 to 4
            self.assertEqual(raw.begin(channel).channel, channel)
        frames, closed = raw.frames(timeout=sbtest_quiet())
        self.assertFalse(closed, f"closed: {frames!r}")
        self.assertFalse([f for f in frames if f.code == CLOSE], frames)

    def test_disposition_for_an_unknown_delivery_is_ignored(self):
        raw = self.raw_amqp()
        raw.open()
        raw.begin()
        raw.send(frame(performative(DISPOSITION, [True, uint(55), None, True, Described(ulong(0x24), [])])))
        # The connection goes on: a link still attaches.
        self.assertEqual(raw.attach("after", 0, True, "q.disp").code, ATTACH)
        self.assert_bystander_works()


class CreditTest(MalformedTestCase):

    def test_transfers_beyond_the_link_credit_end_the_link(self):
        raw = self.raw_amqp()
        raw.open()
        raw.begin()
        raw.attach("greedy", 0, True, "q.greedy")
        flow = raw.expect(FLOW)
        self.assertEqual(flow.fields[6], 5, f"link credit (amqp.link_credit): {flow!r}")
        raw.send(b"".join(transfer(0, i, body=f"g{i}") for i in range(8)))
        frames, _ = raw.frames(timeout=sbtest_quiet())
        detaches = [f for f in frames if f.code == DETACH]
        self.assertEqual([d.condition for d in detaches], ["amqp:link:transfer-limit-exceeded"], frames)
        self.assertTrue(detaches[0].fields[1], "the detach closes the link")
        outcomes = {int(f.fields[1]): int(f.fields[4].descriptor) for f in frames if f.code == DISPOSITION}
        self.assertEqual(outcomes.get(5), 0x25, f"the sixth is rejected: {outcomes}")
        # The five within credit were taken (below: in the queue); their dispositions go out
        # only if the kernel confirmed them before the link was detached.
        self.assertEqual({d: o for d, o in outcomes.items() if d != 5 and o != 0x24}, {}, outcomes)
        self.assertFalse(set(outcomes) & {6, 7}, f"transfers after the detach were read: {outcomes}")
        # The session and connection go on: another link attaches; the five are in the queue.
        self.assertFalse([f for f in frames if f.code in (END, CLOSE)], frames)
        self.assertEqual(raw.attach("next", 1, True, "q.other").code, ATTACH)
        r = self.connect().create_receiver("q.greedy", credit=10)
        self.assertEqual([r.receive().body for _ in range(5)], [f"g{i}" for i in range(5)])
        r.accept()
        self.assert_nothing(r, "beyond the credit")
        self.assert_bystander_works()

    def test_absurd_credit_from_a_receiver_is_served(self):
        self.by_sender.send(Message(body="one"))
        self.by_receiver.receive()
        self.by_receiver.accept()
        s = self.connect().create_sender("q.absurd")
        for i in range(3):
            s.send(Message(body=f"a{i}"))
        raw = self.raw_amqp()
        raw.open()
        raw.begin()
        raw.attach("wide", 0, False, "q.absurd")
        # The most credit Proton keeps (a signed int: more reads as none, docs/amqp.md), then a
        # drain with it and a delivery-count from nowhere.
        raw.send(frame(performative(FLOW, [uint(0), uint(1 << 20), uint(0), uint(1 << 20), uint(0), uint(0),
                                           uint(0x7FFFFFFF)])))
        got = [raw.expect(TRANSFER) for _ in range(3)]
        self.assertEqual([int(t.fields[1]) for t in got], [0, 1, 2])
        raw.send(frame(performative(FLOW, [uint(3), uint(1 << 20), uint(0), uint(1 << 20), uint(0), uint(12345),
                                           uint(0x7FFFFFFF), None, True])))
        frames, closed = raw.frames(timeout=sbtest_quiet())
        self.assertFalse(closed, frames)
        self.assertFalse([f for f in frames if f.code in (DETACH, END, CLOSE)], frames)
        self.assert_bystander_works()


class SaslDeadlineTest(MalformedTestCase):
    """amqp.connect_timeout_ms (600 ms here): SASL and open must be done by then."""

    def assert_closed_in_time(self, raw, started, what):
        deadline = time.monotonic() + WAIT
        while True:
            try:
                raw._fill(deadline)
            except sbtest.ConnectionClosed:
                break
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 3.0, f"{what}: closed only after {elapsed:.1f}s")
        self.assertGreater(elapsed, 0.4, f"{what}: closed before the deadline ({elapsed:.2f}s)")
        return bytes(raw.buf)

    def test_sasl_header_then_silence(self):
        raw = self.raw_amqp()
        started = time.monotonic()
        raw.send(SASL_HEADER)
        got = self.assert_closed_in_time(raw, started, "silence after the SASL header")
        self.assertTrue(got.startswith(SASL_HEADER), got)
        self.assertIn(b"\x00\x53\x40", got, "no sasl-mechanisms")
        self.assertNotIn(b"\x00\x53\x44", got, "an outcome without an init")
        self.assert_bystander_works()

    def test_a_sasl_init_that_never_completes(self):
        raw = self.raw_amqp()
        started = time.monotonic()
        raw.send(SASL_HEADER + struct.pack(">IBBH", 200, 2, 1, 0) + b"\x00\x53\x41")   # 200 bytes promised
        got = self.assert_closed_in_time(raw, started, "a partial sasl-init")
        self.assertNotIn(b"\x00\x53\x44", got, got)
        self.assert_bystander_works()

    def test_sasl_done_but_no_amqp_header(self):
        raw = self.raw_amqp()
        started = time.monotonic()
        raw.send(SASL_HEADER + sasl_frame(SASL_INIT, [symbol("ANONYMOUS"), b"anonymous"]))
        got = self.assert_closed_in_time(raw, started, "no AMQP header after SASL")
        self.assertIn(b"\x00\x53\x44\xc0\x03\x01\x50\x00", got, "sasl-outcome ok")
        self.assertNotIn(AMQP_HEADER, got)
        self.assert_bystander_works()

    def test_amqp_header_but_no_open(self):
        raw = self.raw_amqp()
        started = time.monotonic()
        raw.send(AMQP_HEADER)
        self.assert_closed_in_time(raw, started, "no open")
        frames, closed = raw.frames()
        self.assertEqual(raw.header, AMQP_HEADER)
        self.assertEqual([f.code for f in frames], [OPEN, CLOSE], frames)
        self.assertEqual(frames[1].condition, "amqp:resource-limit-exceeded", frames)
        self.assertEqual(frames[1].fields[0].value[1], "connection not opened in time", frames)
        self.assert_bystander_works()

    def test_a_second_sasl_init_instead_of_the_amqp_header(self):
        raw = self.raw_amqp()
        init = sasl_frame(SASL_INIT, [symbol("ANONYMOUS"), b"anonymous"])
        raw.send(SASL_HEADER + init + init)
        self.assert_plain_close(raw, raw_sasl_ok_reply(self, raw), "a second sasl-init")
        self.assert_bystander_works()


def raw_sasl_ok_reply(test, raw):
    """What the server sent before closing: the SASL header, mechanisms and outcome ok (checked)."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            raw._fill(deadline)
        except sbtest.ConnectionClosed:
            break
    got = bytes(raw.buf)
    test.assertTrue(got.startswith(SASL_HEADER), got)
    test.assertTrue(got.endswith(b"\x00\x53\x44\xc0\x03\x01\x50\x00"), f"ends with the outcome: {got!r}")
    return got


def sbtest_quiet():
    return 0.5   # bound for "nothing more arrives" (there is no event to await for an absence)


class ManyLinksTest(MalformedTestCase):
    broker_config = {"amqp": {"connect_timeout_ms": 600, "link_credit": 5}}

    def test_1000_links_on_one_connection(self):
        c = self.connect()
        # Each link its own name (python3-qpid-proton names them after the address otherwise).
        receivers = [c.create_receiver("topic://links.fan", credit=1, name=f"fan-{i}") for i in range(500)]
        senders = [c.create_sender(f"links.q{i}", name=f"to-q{i}") for i in range(500)]
        c.create_sender("topic://links.fan").send(Message(body="to all"))
        for i, r in enumerate(receivers):
            self.assertEqual(r.receive().body, "to all", f"receiver {i}")
        for i, s in enumerate(senders):
            s.send(Message(body=f"q{i}"))
        r = c.create_receiver("links.q499", credit=1)
        self.assertEqual(r.receive().body, "q499")
        self.assert_bystander_works()


if __name__ == "__main__":
    sbtest.main()
