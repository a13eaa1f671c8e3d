# tests/integration/stomp_queue_test.py — queues over STOMP with stomp.py: competing consumers,
# ack modes, redelivery, dead-lettering, binary bodies. Real binary, third-party client.

import os
import queue
import sys
import threading

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import BrokerTestCase, config_override  # noqa: E402

TOTAL = 10_000
RECEIPT_EVERY = 1_000


class QueueTest(BrokerTestCase):

    def assert_next_is(self, client, body, timeout=sbtest.WAIT, what=""):
        """The next message on client is `body` — proves nothing else was queued before it."""
        frame = client.get_message(timeout)
        self.assertEqual(frame.body, body, f"{what}: unexpected message {frame.headers}")
        return frame

    def test_ten_thousand_messages_two_individual_consumers_each_exactly_once(self):
        lock = threading.Lock()
        got = {"a": [], "b": []}
        done = threading.Event()
        bad_headers = []

        def consumer(name):
            def on_message(client, frame):
                # stomp.py's receiver thread: record, then ack this one message.
                if frame.headers.get("subscription") != f"sub-{name}" or "ack" not in frame.headers:
                    bad_headers.append(frame.headers)
                with lock:
                    got[name].append(frame.body)
                    if len(got["a"]) + len(got["b"]) >= TOTAL:
                        done.set()
                client.ack(frame)
            return on_message

        a = self.client(on_message=consumer("a"))
        b = self.client(on_message=consumer("b"))
        a.subscribe("/queue/q", "sub-a", ack="client-individual")
        b.subscribe("/queue/q", "sub-b", ack="client-individual")

        producer = self.client()
        for i in range(TOTAL):
            last = (i + 1) % RECEIPT_EVERY == 0 or i == TOTAL - 1
            producer.send("/queue/q", f"m-{i}", receipt=last)

        self.assertTrue(done.wait(60), f"only {len(got['a'])}+{len(got['b'])} of {TOTAL} "
                                       f"messages arrived within 60 s")
        # Graceful DISCONNECTs: the broker handles each consumer's acks before its RECEIPT, and
        # any MESSAGE already on the wire arrives before that RECEIPT too.
        a.close()
        b.close()
        with lock:
            all_bodies = got["a"] + got["b"]
            counts = (len(got["a"]), len(got["b"]))
        self.assertEqual(bad_headers[:3], [], "MESSAGE without the right subscription/ack header")
        self.assertEqual(len(all_bodies), TOTAL, f"received {len(all_bodies)} (a={counts[0]}, "
                                                 f"b={counts[1]}), duplicates or extras")
        self.assertEqual(len(set(all_bodies)), TOTAL, "duplicate deliveries")
        self.assertEqual(set(all_bodies), {f"m-{i}" for i in range(TOTAL)})
        self.assertGreater(counts[0], 0, "consumer a got nothing (no competing consumption)")
        self.assertGreater(counts[1], 0, "consumer b got nothing (no competing consumption)")

        # Everything was acked: a fresh consumer sees only a message sent now.
        c = self.client()
        c.subscribe("/queue/q", "sub-c", ack="client-individual")
        producer.send("/queue/q", "sentinel", receipt=True)
        self.assert_next_is(c, "sentinel", what="after all acks the queue must be empty")

    def test_message_frame_headers(self):
        consumer = self.client()
        consumer.subscribe("/queue/hdr", "sub-1", ack="client-individual")
        producer = self.client()
        producer.send("/queue/hdr", "héllo", content_type="text/plain",
                      headers={"x-custom": "v1", "priority": "7", "persistent": "true",
                               "correlation-id": "corr-9", "reply-to": "/queue/replies",
                               "type": "greeting"},
                      receipt=True)
        frame = consumer.get_message()
        h = frame.headers
        self.assertEqual(frame.body, "héllo")
        self.assertEqual(h.get("destination"), "/queue/hdr")
        self.assertTrue(h.get("message-id"), f"no message-id: {h}")
        self.assertEqual(h.get("subscription"), "sub-1")
        self.assertTrue(h.get("ack"), f"1.2 client-individual MESSAGE without ack header: {h}")
        self.assertEqual(h.get("content-length"), str(len("héllo".encode())), f"headers: {h}")
        self.assertTrue(h.get("content-type", "").startswith("text/plain"), f"headers: {h}")
        self.assertEqual(h.get("x-custom"), "v1")
        self.assertEqual(h.get("priority"), "7")
        self.assertEqual(h.get("persistent"), "true")
        self.assertEqual(h.get("correlation-id"), "corr-9")
        self.assertEqual(h.get("reply-to"), "/queue/replies")
        self.assertEqual(h.get("type"), "greeting")
        self.assertNotEqual(h.get("redelivered"), "true", "first delivery marked redelivered")
        consumer.ack(frame, receipt=True)

    def test_consumer_disconnect_redelivers_unacked_to_other_consumer(self):
        producer = self.client()
        a = self.client()
        a.subscribe("/queue/redeliver", "sub-a", ack="client-individual")
        for i in range(5):
            producer.send("/queue/redeliver", f"r-{i}", receipt=(i == 4))
        frames = a.get_messages(5)
        self.assertEqual([f.body for f in frames], [f"r-{i}" for i in range(5)])
        a.ack(frames[0])
        a.ack(frames[1], receipt=True)

        b = self.client()
        b.subscribe("/queue/redeliver", "sub-b", ack="client-individual")
        a.abort()   # socket closed without DISCONNECT, 3 messages unacked

        again = b.get_messages(3, timeout=10)
        self.assertEqual([f.body for f in again], ["r-2", "r-3", "r-4"])
        for f in again:
            self.assertEqual(f.headers.get("redelivered"), "true", f"headers: {f.headers}")
            b.ack(f)
        producer.send("/queue/redeliver", "sentinel", receipt=True)
        self.assert_next_is(b, "sentinel", what="acked messages must not come back")

    def test_nack_redelivers_with_redelivered_flag(self):
        consumer = self.client()
        consumer.subscribe("/queue/nack", "sub-1", ack="client-individual")
        producer = self.client()
        producer.send("/queue/nack", "n-1", receipt=True)
        first = consumer.get_message()
        self.assertEqual(first.body, "n-1")
        self.assertNotEqual(first.headers.get("redelivered"), "true")
        consumer.nack(first, receipt=True)
        second = consumer.get_message(timeout=10)
        self.assertEqual(second.body, "n-1")
        self.assertEqual(second.headers.get("redelivered"), "true", f"headers: {second.headers}")
        self.assertEqual(second.headers.get("message-id"), first.headers.get("message-id"))
        consumer.ack(second, receipt=True)
        producer.send("/queue/nack", "sentinel", receipt=True)
        self.assert_next_is(consumer, "sentinel", what="acked after NACK must not come back")

    def _dead_letter(self, source, dlq):
        consumer = self.client()
        consumer.subscribe(source, "sub-1", ack="client-individual")
        producer = self.client()
        producer.send(source, "poison", receipt=True)
        deliveries = []
        for _ in range(3):   # 1 + max_redeliveries(2)
            frame = consumer.get_message(timeout=10)
            self.assertEqual(frame.body, "poison")
            deliveries.append(frame.headers.get("redelivered"))
            consumer.nack(frame, receipt=True)
        self.assertNotEqual(deliveries[0], "true")
        self.assertEqual(deliveries[1:], ["true", "true"])

        dead = self.client()
        dead.subscribe(dlq, "sub-dlq", ack="client-individual")
        frame = dead.get_message(timeout=10)
        self.assertEqual(frame.body, "poison")
        dead.ack(frame, receipt=True)

        # No 4th delivery on the source: the next message there is a fresh one.
        producer.send(source, "sentinel", receipt=True)
        self.assert_next_is(consumer, "sentinel", what="poison delivered more than 3 times")

    @config_override({"broker": {"max_redeliveries": 2}})
    def test_dead_letter_after_max_redeliveries_shared_dlq(self):
        self._dead_letter("/queue/dlqsrc", "/queue/ActiveMQ.DLQ")

    @config_override({"broker": {"max_redeliveries": 2, "dead_letter": "per_destination"}})
    def test_dead_letter_per_destination(self):
        self._dead_letter("/queue/dlqsrc2", "/queue/DLQ.dlqsrc2")

    def test_client_ack_is_cumulative(self):
        producer = self.client()
        a = self.client()
        a.subscribe("/queue/cumulative", "sub-a", ack="client")
        for i in range(1, 11):
            producer.send("/queue/cumulative", f"c-{i}", receipt=(i == 10))
        frames = a.get_messages(10)
        self.assertEqual([f.body for f in frames], [f"c-{i}" for i in range(1, 11)])
        a.ack(frames[4], receipt=True)   # acks c-1 .. c-5
        a.close()                        # DISCONNECT: c-6 .. c-10 go back to the queue

        b = self.client()
        b.subscribe("/queue/cumulative", "sub-b", ack="client-individual")
        again = b.get_messages(5, timeout=10)
        self.assertEqual([f.body for f in again], [f"c-{i}" for i in range(6, 11)])
        for f in again:
            self.assertEqual(f.headers.get("redelivered"), "true", f"headers: {f.headers}")
            b.ack(f)
        producer.send("/queue/cumulative", "sentinel", receipt=True)
        self.assert_next_is(b, "sentinel", what="c-1..c-5 were acked cumulatively")

    def test_binary_body_with_nuls_round_trips(self):
        body = bytes(range(256)) * 4 + b"\0\0end\0"
        consumer = self.client(auto_decode=False)
        consumer.subscribe("/queue/binary", "sub-1")
        producer = self.client()
        producer.send("/queue/binary", body, receipt=True)   # stomp.py adds content-length
        frame = consumer.get_message()
        self.assertEqual(frame.headers.get("content-length"), str(len(body)))
        self.assertEqual(len(frame.body), len(body))
        self.assertEqual(frame.body, body)

    def test_round_robin_between_two_consumers(self):
        shared = queue.Queue()
        a = self.client(on_message=lambda c, f: shared.put(("a", f.body)))
        b = self.client(on_message=lambda c, f: shared.put(("b", f.body)))
        a.subscribe("/queue/rr", "sub-a")
        b.subscribe("/queue/rr", "sub-b")
        producer = self.client()
        for i in range(20):
            producer.send("/queue/rr", f"rr-{i}", receipt=(i == 19))
        got = []
        for _ in range(20):
            try:
                got.append(shared.get(timeout=sbtest.WAIT))
            except queue.Empty:
                self.fail(f"only {len(got)} of 20 messages arrived: {got}")
        self.assertEqual(sorted(body for _, body in got), sorted(f"rr-{i}" for i in range(20)))
        self.assertEqual({name for name, _ in got}, {"a", "b"}, "one consumer got everything")

    def test_unknown_destination_prefix_is_an_error(self):
        client = self.client()
        client.conn.send("/foo/bar", "x")
        self.assertTrue(client.disconnected.wait(sbtest.WAIT), "connection not closed after ERROR")
        self.assertFalse(client.errors.empty(), "no ERROR frame for /foo/bar")
        err = client.errors.get_nowait()
        self.assertIn("message", err.headers)


if __name__ == "__main__":
    sbtest.main()
