#!/usr/bin/python3
# tests/integration/stomp_selector_test.py — selectors over STOMP on the real binary with the
# journal store: a durable subscription's selector survives a clean restart and a kill -9 (the
# recovered subscription selects before its subscriber is back), a queue consumer's selector
# passes an unselected head, and an invalid selector is an ERROR naming where.
import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from stomp_durable_test import WAIT, Client  # noqa: E402


class SelectorTest(unittest.TestCase):
    def setUp(self):
        self.series = sbtest.BrokerSeries(prefix="sbselector-")
        self.series.extra = self.series.journal()

    def tearDown(self):
        self.series.__exit__(None, None, None)

    def subscribe(self, c, destination, sub_id, selector, **extra):
        rid = c.receipt()
        headers = {"selector": selector, "receipt": rid}
        headers.update(extra)
        c.conn.subscribe(destination, id=sub_id, ack="client-individual", headers=headers)
        c.wait_receipt(rid)

    def send(self, c, destination, body, **headers):
        rid = c.receipt()
        headers.update({"persistent": "true", "receipt": rid})
        c.conn.send(destination, body, headers=headers)
        c.wait_receipt(rid)

    def test_durable_selector_survives_restarts(self):
        b = self.series.start()
        sub = Client(b.port, "app-1")
        self.subscribe(sub, "/topic/orders", "1", "region = 'eu' AND amount > 100",
                       **{"activemq.subscriptionName": "big-eu"})
        sub.close()
        pub = Client(b.port)
        for body, region, amount in (("eu-500", "eu", "500"), ("eu-50", "eu", "50"), ("us-500", "us", "500")):
            self.send(pub, "/topic/orders", body, region=region, amount=amount)
        pub.close()
        b.stop()                                      # a clean restart

        b = self.series.start()
        pub = Client(b.port)                          # the recovered subscription selects at once
        for body, region, amount in (("eu-900", "eu", "900"), ("us-900", "us", "900")):
            self.send(pub, "/topic/orders", body, region=region, amount=amount)
        pub.close()
        b.kill()                                      # and a crash

        b = self.series.start()
        sub = Client(b.port, "app-1")
        self.subscribe(sub, "/topic/orders", "1", "region = 'eu' AND amount > 100",
                       **{"activemq.subscriptionName": "big-eu"})
        self.assertEqual(sub.take(2), ["eu-500", "eu-900"])
        sub.nothing_more()
        sub.close()
        b.stop()

    def test_queue_selector_passes_an_unselected_head(self):
        b = self.series.start()
        pub = Client(b.port)
        self.send(pub, "/queue/work", "nobody's", kind="other")
        self.send(pub, "/queue/work", "mine-1", kind="mine")
        c = Client(b.port)
        self.subscribe(c, "/queue/work", "1", "kind = 'mine'")
        self.send(pub, "/queue/work", "mine-2", kind="mine")
        self.assertEqual(c.take(2), ["mine-1", "mine-2"])
        c.nothing_more()
        other = Client(b.port)
        self.subscribe(other, "/queue/work", "2", "kind <> 'mine'")
        self.assertEqual(other.take(1), ["nobody's"])
        for x in (c, other, pub):
            x.close()
        b.stop()

    def test_invalid_selector_is_an_error_with_its_position(self):
        b = self.series.start()
        c = Client(b.port)
        c.conn.subscribe("/queue/q", id="1", headers={"selector": "amount BETWEEN 1 OR 2"})
        err = c.listener.errors.get(timeout=WAIT)
        self.assertEqual(err.headers.get("message"),
                         "invalid selector: expected AND in BETWEEN, found 'OR' at position 18")
        c.close()
        b.stop()


if __name__ == "__main__":
    sbtest.main()
