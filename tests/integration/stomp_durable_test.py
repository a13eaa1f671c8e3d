#!/usr/bin/python3
# tests/integration/stomp_durable_test.py — durable topic subscriptions over STOMP (ActiveMQ's
# client-id + activemq.subscriptionName) with the journal store: messages published while the
# subscriber is away, and across a broker restart (clean stop and kill -9), are delivered when
# it comes back; UNSUBSCRIBE with the name deletes the subscription.
import os
import queue
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
import stomp  # noqa: E402

HOST = "127.0.0.1"
WAIT = 5.0


class Collector(stomp.ConnectionListener):
    def __init__(self):
        self.messages = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = queue.Queue()

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers.get("receipt-id"))

    def on_error(self, frame):
        self.errors.put(frame)


class Client:
    def __init__(self, port, client_id=None):
        self.listener = Collector()
        self.conn = stomp.Connection12([(HOST, port)], heartbeats=(0, 0), auto_content_length=True)
        self.conn.set_listener("", self.listener)
        headers = {"client-id": client_id} if client_id else {}
        self.conn.connect(wait=True, headers=headers)
        self.n = 0

    def receipt(self):
        self.n += 1
        return f"r{self.n}"

    def wait_receipt(self, rid):
        while True:
            got = self.listener.receipts.get(timeout=WAIT)
            if got == rid:
                return

    def subscribe_durable(self, destination, name, sub_id="1"):
        rid = self.receipt()
        self.conn.subscribe(destination, id=sub_id, ack="client-individual",
                            headers={"activemq.subscriptionName": name, "receipt": rid})
        self.wait_receipt(rid)

    def send(self, destination, body, persistent=True):
        rid = self.receipt()
        self.conn.send(destination, body, headers={"persistent": "true" if persistent else "false",
                                                   "receipt": rid})
        self.wait_receipt(rid)

    def take(self, n):
        """n messages, each acked (with a receipt, so the ack is durable)."""
        bodies = []
        for _ in range(n):
            f = self.listener.messages.get(timeout=WAIT)
            bodies.append(f.body)
            rid = self.receipt()
            self.conn.ack(f.headers["ack"], receipt=rid)
            self.wait_receipt(rid)
        return bodies

    def nothing_more(self, within=0.5):
        try:
            f = self.listener.messages.get(timeout=within)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message {f.body!r}")

    def close(self):
        try:
            self.conn.disconnect()
        except Exception:
            pass


class DurableTest(unittest.TestCase):
    def setUp(self):
        self.series = sbtest.BrokerSeries(prefix="sbdurable-")
        self.series.extra = self.series.journal()

    def tearDown(self):
        self.series.__exit__(None, None, None)

    def start(self):
        return self.series.start()

    def test_messages_wait_for_the_subscriber_across_restarts(self):
        b = self.start()
        sub = Client(b.port, "app-1")
        sub.subscribe_durable("/topic/news.eu", "daily")
        pub = Client(b.port)
        pub.send("/topic/news.eu", "live")
        self.assertEqual(sub.take(1), ["live"])
        sub.close()                                   # away: the subscription stays

        pub.send("/topic/news.eu", "away-1")
        pub.send("/topic/news.eu", "away-2")
        pub.send("/topic/news.us", "other topic")
        pub.close()
        b.stop()                                      # a clean restart

        b = self.start()
        pub = Client(b.port)
        pub.send("/topic/news.eu", "after-restart")
        pub.close()
        b.kill()                                      # and a crash

        b = self.start()
        plain = Client(b.port)                        # a non-durable subscriber sees none of it
        plain.conn.subscribe("/topic/news.eu", id="p", ack="auto")
        sub = Client(b.port, "app-1")
        sub.subscribe_durable("/topic/news.eu", "daily")
        self.assertEqual(sub.take(3), ["away-1", "away-2", "after-restart"])
        sub.nothing_more()
        plain.nothing_more(0.2)

        # UNSUBSCRIBE with the name deletes it: nothing is collected any more.
        rid = sub.receipt()
        sub.conn.unsubscribe(id="1", headers={"activemq.subscriptionName": "daily", "receipt": rid})
        sub.wait_receipt(rid)
        sub.close()
        pub = Client(b.port)
        pub.send("/topic/news.eu", "after-unsubscribe")
        pub.close()
        sub = Client(b.port, "app-1")
        sub.subscribe_durable("/topic/news.eu", "daily")
        sub.nothing_more()
        sub.close()
        plain.close()
        b.stop()

    def test_a_durable_subscription_needs_a_client_id(self):
        b = self.start()
        c = Client(b.port)   # no client-id
        c.conn.subscribe("/topic/t", id="1", headers={"activemq.subscriptionName": "x"})
        err = c.listener.errors.get(timeout=WAIT)
        self.assertIn("client-id", err.headers.get("message", ""))
        c.close()
        b.stop()


if __name__ == "__main__":
    sbtest.main()
