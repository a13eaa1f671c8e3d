# tests/integration/stomp_malformed_test.py — bad STOMP input over raw sockets, table-driven: every
# case gets an ERROR frame with a message header and then EOF, while a healthy stomp.py client
# keeps sending and receiving on /queue/healthy and must lose nothing.

import os
import sys
import threading

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import BrokerTestCase, StompClient  # noqa: E402

MAX_FRAME = 65536
MAX_HEADERS = 50
MAX_HEADER_BYTES = 1024

GARBAGE = bytes([0x8F, 0x00, 0xD3, 0x0A, 0x01, 0x02, 0xFF, 0x0A, 0x0A, 0x00, 0x7F, 0xC3, 0x28,
                 0x0A, 0x00, 0xFE, 0xED, 0xFA, 0xCE, 0x0A, 0x0A, 0x00])


def send(headers, body=b"", nul=True):
    head = b"SEND\n" + b"".join(h + b"\n" for h in headers) + b"\n"
    return head + body + (b"\0" if nul else b"")


# (name, CONNECT version first or None, bytes to send, extra check on the ERROR frame or None)
CASES = [
    ("missing NUL after content-length body", "1.2",
     send([b"destination:/queue/m", b"content-length:5"], b"helloXYZ"), None),
    ("oversize header line", "1.2",
     send([b"destination:/queue/m", b"x-big:" + b"a" * (2 * MAX_HEADER_BYTES)], b"x"), None),
    ("too many headers", "1.2",
     send([b"destination:/queue/m"] + [b"x-h%d:v" % i for i in range(MAX_HEADERS + 10)], b"x"),
     None),
    ("body over max_frame_bytes with content-length", "1.2",
     send([b"destination:/queue/m", b"content-length:%d" % (MAX_FRAME + 34464)],
          b"a" * (MAX_FRAME + 34464)), None),
    ("body over max_frame_bytes without content-length (no NUL)", "1.2",
     send([b"destination:/queue/m"], b"a" * (MAX_FRAME + 34464), nul=False), None),
    ("non-numeric content-length", "1.2",
     send([b"destination:/queue/m", b"content-length:abc"], b"abc"), None),
    ("negative content-length", "1.2",
     send([b"destination:/queue/m", b"content-length:-5"], b"abc"), None),
    ("overflowing content-length", "1.2",
     send([b"destination:/queue/m", b"content-length:99999999999999999999"], b"abc"), None),
    ("unknown command", "1.2", b"FROBNICATE\nx:y\n\n\0", None),
    ("lowercase send", "1.2", b"send\ndestination:/queue/m\n\nbody\0", None),
    ("invalid escape \\t in a 1.2 header", "1.2",
     send([b"destination:/queue/m", b"x-h:a\\tb"], b"x"), None),
    ("frame before CONNECT", None, send([b"destination:/queue/m"], b"x"), None),
    ("header line without colon", "1.2",
     send([b"destination:/queue/m", b"no-colon-here"], b"x"), None),
    ("SUBSCRIBE without destination", "1.2", b"SUBSCRIBE\nid:1\nack:auto\n\n\0", None),
    ("SUBSCRIBE without id (1.2)", "1.2", b"SUBSCRIBE\ndestination:/queue/m\n\n\0", None),
    ("ACK without id (1.2)", "1.2", b"ACK\nsubscription:1\nmessage-id:1\n\n\0", None),
    ("NACK without id (1.2)", "1.2", b"NACK\nsubscription:1\nmessage-id:1\n\n\0", None),
    ("UNSUBSCRIBE without id (1.2)", "1.2", b"UNSUBSCRIBE\ndestination:/queue/m\n\n\0", None),
    ("second CONNECT", "1.2", b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\0", None),
    ("unsupported accept-version 9.9", None, b"CONNECT\naccept-version:9.9\nhost:localhost\n\n\0",
     "version"),
    ("SEND without destination", "1.2", send([], b"x"), None),
    ("destination with unknown prefix /foo/bar", "1.2", send([b"destination:/foo/bar"], b"x"),
     None),
    ("SUBSCRIBE to unknown prefix /foo/bar", "1.2",
     b"SUBSCRIBE\nid:1\ndestination:/foo/bar\n\n\0", None),
    ("COMMIT of an unknown transaction", "1.2", b"COMMIT\ntransaction:nope\n\n\0", None),
    ("ABORT of an unknown transaction", "1.2", b"ABORT\ntransaction:nope\n\n\0", None),
    ("BEGIN of an existing transaction", "1.2",
     b"BEGIN\ntransaction:t1\n\n\0BEGIN\ntransaction:t1\n\n\0", None),
    # Refusals after a valid frame: every ERROR closes the connection, whatever caused it.
    ("too many subscriptions (1001)", "1.2",
     b"".join(b"SUBSCRIBE\nid:s%d\ndestination:/topic/many.%d\n\n\0" % (i, i) for i in range(1001)), None),
    ("too many transactions (101)", "1.2",
     b"".join(b"BEGIN\ntransaction:t%d\n\n\0" % i for i in range(101)), None),
    ("transaction too large (100001 frames)", "1.2",
     b"BEGIN\ntransaction:big\n\n\0"
     + b"SEND\ndestination:/queue/m\ntransaction:big\n\nx\0" * 100001, None),
    ("SUBSCRIBE with an id already in use", "1.2",
     b"SUBSCRIBE\nid:1\ndestination:/queue/m\n\n\0SUBSCRIBE\nid:1\ndestination:/queue/n\n\n\0", None),
    ("SUBSCRIBE with an unknown ack mode", "1.2",
     b"SUBSCRIBE\nid:1\ndestination:/queue/m\nack:sometimes\n\n\0", None),
    ("SUBSCRIBE with prefetch 0", "1.2",
     b"SUBSCRIBE\nid:1\ndestination:/queue/m\nactivemq.prefetchSize:0\n\n\0", None),
    ("durable SUBSCRIBE to a queue", "1.2",
     b"SUBSCRIBE\nid:1\ndestination:/queue/m\nactivemq.subscriptionName:d\n\n\0", None),
    ("durable SUBSCRIBE without client-id", "1.2",
     b"SUBSCRIBE\nid:1\ndestination:/topic/m\nactivemq.subscriptionName:d\n\n\0", None),
    ("UNSUBSCRIBE of an unknown subscription", "1.2", b"UNSUBSCRIBE\nid:nope\n\n\0", None),
    ("durable UNSUBSCRIBE without client-id", "1.2",
     b"UNSUBSCRIBE\nactivemq.subscriptionName:d\n\n\0", None),
    ("ACK of an unknown id (1.2)", "1.2", b"ACK\nid:12345\n\n\0", None),
    ("ACK with a non-numeric id (1.2)", "1.2", b"ACK\nid:abc\n\n\0", None),
    ("ACK of an unknown message-id (1.1)", "1.1", b"ACK\nsubscription:1\nmessage-id:zz\n\n\0", None),
    ("ACK in an unknown transaction", "1.2", b"ACK\nid:1\ntransaction:nope\n\n\0", None),
    ("SEND in an unknown transaction", "1.2", send([b"destination:/queue/m", b"transaction:nope"], b"x"), None),
    ("BEGIN without transaction header", "1.2", b"BEGIN\n\n\0", None),
    ("COMMIT without transaction header", "1.2", b"COMMIT\n\n\0", None),
    ("ABORT without transaction header", "1.2", b"ABORT\n\n\0", None),
    ("CONNECT with an invalid heart-beat", None,
     b"CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:x,1\n\n\0", None),
    ("server frame from a client", "1.2", b"MESSAGE\ndestination:/queue/m\n\n\0", None),
    ("garbage binary bytes before CONNECT", None, GARBAGE, None),
    ("garbage binary bytes after CONNECT", "1.2", GARBAGE, None),
]


class Healthy(threading.Thread):
    """Sends h-0, h-1, ... with receipts to /queue/healthy and receives them on the same client."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.cond = threading.Condition()
        self.received = []
        self.client = StompClient(port, on_message=self._on_message)
        self.client.connect()
        self.client.subscribe("/queue/healthy", "healthy")
        self.stop = threading.Event()
        self.sent = []
        self.failure = None

    def _on_message(self, client, frame):
        with self.cond:
            self.received.append(frame.body)
            self.cond.notify_all()

    def run(self):
        i = 0
        try:
            while not self.stop.is_set():
                self.client.send("/queue/healthy", f"h-{i}", receipt=True)
                self.sent.append(f"h-{i}")
                i += 1
                self.stop.wait(0.005)   # pacing; set() ends it at once
        except Exception as e:   # reported by the test
            self.failure = f"{type(e).__name__}: {e}"

    def wait_progress(self, more=2, timeout=sbtest.WAIT):
        """Waits until `more` further messages made the round trip: proves traffic interleaves."""
        with self.cond:
            target = len(self.received) + more
            return self.cond.wait_for(lambda: len(self.received) >= target, timeout)

    def wait_all(self, timeout=10):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.received) >= len(self.sent), timeout)

    def finish(self, timeout=10):
        self.stop.set()
        self.join(timeout)
        return not self.is_alive()


class MalformedTest(BrokerTestCase):
    broker_config = {"stomp": {"max_frame_bytes": MAX_FRAME, "max_headers": MAX_HEADERS,
                               "max_header_bytes": MAX_HEADER_BYTES}}

    def run_case(self, name, version, payload, extra):
        raw = self.raw()
        if version:
            raw.connect(version)
        # Big payloads go from a second thread: the broker may stop reading (and close) midway,
        # and the ERROR frame must still be read here.
        send_error = []

        def sender():
            try:
                view = memoryview(payload)
                for i in range(0, len(view), 16384):
                    raw.sock.sendall(view[i:i + 16384])
            except OSError as e:
                send_error.append(e)   # expected when the broker closes first

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        try:
            frame = self.assert_error_then_close(raw, timeout=sbtest.WAIT, what=name)
        finally:
            t.join(sbtest.WAIT)
            raw.close()
        if extra == "version":
            self.assertIn("1.2", frame.headers.get("version", ""),
                          f"{name}: ERROR must list the supported versions: {frame!r}")
        return frame

    def test_every_malformed_case_gets_error_then_close(self):
        self.assertGreaterEqual(len(CASES), 18)
        healthy = Healthy(self.port)
        self.addCleanup(healthy.client.abort)
        self.addCleanup(healthy.stop.set)
        healthy.start()

        for name, version, payload, extra in CASES:
            with self.subTest(case=name):
                self.run_case(name, version, payload, extra)
                self.assertTrue(self.broker.alive(), f"broker died on case {name!r}")
                self.assertTrue(healthy.wait_progress(),
                                f"healthy client made no progress after {name!r} "
                                f"(failure: {healthy.failure})")

        self.assertTrue(healthy.finish(), "healthy sender thread did not stop")
        self.assertIsNone(healthy.failure)
        self.assertTrue(healthy.wait_all(), f"healthy client received {len(healthy.received)} "
                                            f"of {len(healthy.sent)}")
        self.assertEqual(healthy.received, healthy.sent,
                         "healthy client lost, duplicated or reordered messages")
        self.assertTrue(healthy.client.is_connected())
        self.assertTrue(healthy.client.errors.empty(), "healthy client got an ERROR")

if __name__ == "__main__":
    sbtest.main()
