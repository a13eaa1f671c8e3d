# tests/integration/stomp_topic_test.py — topics over STOMP with stomp.py: fan-out, wildcard
# subscriptions, no retroactive delivery, header pass-through. Real binary, third-party client.

import os
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import BrokerTestCase  # noqa: E402

N = 1_000


class TopicTest(BrokerTestCase):

    def test_fan_out_to_three_subscribers_in_order(self):
        subscribers = [self.client() for _ in range(3)]
        for i, s in enumerate(subscribers):
            s.subscribe("/topic/fan", f"sub-{i}")
        producer = self.client()
        for i in range(N):
            producer.send("/topic/fan", f"f-{i}", receipt=(i % 250 == 249))
        expected = [f"f-{i}" for i in range(N)]
        for i, s in enumerate(subscribers):
            frames = s.get_messages(N, timeout=30)
            self.assertEqual([f.body for f in frames], expected, f"subscriber {i}")
            for f in frames[:5]:
                self.assertEqual(f.headers.get("destination"), "/topic/fan")
                self.assertEqual(f.headers.get("subscription"), f"sub-{i}")
                self.assertTrue(f.headers.get("message-id"))

    def test_wildcards_star_is_one_level_and_gt_is_the_rest(self):
        star = self.client()
        rest = self.client()
        star.subscribe("/topic/a.*", "star")
        rest.subscribe("/topic/a.>", "rest")
        producer = self.client()
        # Destinations live on different shards, so arrival order across them is not promised:
        # compare sorted lists, then allow a short grace window for deliveries that must not come.
        sent = ["/topic/b.x", "/topic/ab.c", "/topic/x.a.b", "/topic/b.a", "/topic/aa",
                "/topic/a.b", "/topic/a.b.c", "/topic/a.c", "/topic/a.b.c.d"]
        for dest in sent:
            producer.send(dest, dest, receipt=True)
        want_star = ["/topic/a.b", "/topic/a.c"]
        want_rest = ["/topic/a.b", "/topic/a.b.c", "/topic/a.b.c.d", "/topic/a.c"]

        star_frames = star.get_messages(len(want_star))
        rest_frames = rest.get_messages(len(want_rest))
        self.assertEqual(sorted(f.body for f in star_frames), want_star)
        self.assertEqual(sorted(f.body for f in rest_frames), want_rest)
        for f in star_frames + rest_frames:
            # The MESSAGE names the destination it was sent to, not the pattern.
            self.assertEqual(f.headers.get("destination"), f.body)
        self.assertEqual({f.headers.get("subscription") for f in star_frames}, {"star"})
        self.assertEqual({f.headers.get("subscription") for f in rest_frames}, {"rest"})

        grace = 0.5   # a negative assertion: nothing more may arrive
        extra = []
        for client in (star, rest):
            try:
                extra.append(client.messages.get(timeout=grace).body)
            except sbtest.queue.Empty:
                pass
        self.assertEqual(extra, [], "a wildcard matched a destination it must not match")

    def test_messages_sent_before_subscribing_are_not_received(self):
        producer = self.client()
        producer.send("/topic/late", "before", receipt=True)
        consumer = self.client()
        consumer.subscribe("/topic/late", "sub-1")
        producer.send("/topic/late", "after", receipt=True)
        frame = consumer.get_message()
        self.assertEqual(frame.body, "after", "a topic delivered a message sent before SUBSCRIBE")

    def test_unsubscribe_stops_delivery(self):
        consumer = self.client()
        consumer.subscribe("/topic/unsub", "gone")
        producer = self.client()
        producer.send("/topic/unsub", "one", receipt=True)
        self.assertEqual(consumer.get_message().body, "one")
        consumer.unsubscribe("gone")                 # waits for its RECEIPT
        producer.send("/topic/unsub", "two", receipt=True)
        consumer.subscribe("/topic/unsub", "again")
        producer.send("/topic/unsub", "three", receipt=True)
        # Same destination, same order: had "two" been delivered it would come first.
        frame = consumer.get_message()
        self.assertEqual((frame.body, frame.headers.get("subscription")), ("three", "again"),
                         "delivered after the UNSUBSCRIBE receipt")

    def test_custom_headers_reply_to_and_correlation_id_are_preserved(self):
        consumer = self.client()
        consumer.subscribe("/topic/headers", "sub-1")
        producer = self.client()
        expires = str(int(time.time() * 1000) + 600_000)
        sent = {
            "x-custom": "value one",
            "x-with-colon": "a:b",          # escaped as \c on the wire (1.2)
            "x-with-backslash": "c\\d",     # escaped as \\ on the wire
            "reply-to": "/queue/replies",
            "correlation-id": "corr-42",
            "type": "order",
            "priority": "9",
            "expires": expires,
            "persistent": "true",
        }
        producer.send("/topic/headers", "payload", content_type="application/json",
                      headers=sent, receipt=True)
        frame = consumer.get_message()
        self.assertEqual(frame.body, "payload")
        for key, value in sent.items():
            self.assertEqual(frame.headers.get(key), value, f"header {key}: {frame.headers}")
        self.assertTrue(frame.headers.get("content-type", "").startswith("application/json"))
        self.assertNotIn("receipt", frame.headers, "the SEND's receipt header leaked into MESSAGE")

    def test_stomp_10_and_11_clients_share_a_topic(self):
        c10 = self.client(version="1.0")
        c11 = self.client(version="1.1")
        c10.subscribe("/topic/versions", "v10")
        c11.subscribe("/topic/versions", "v11")
        producer = self.client()
        producer.send("/topic/versions", "hello all", receipt=True)
        self.assertEqual(c10.get_message().body, "hello all")
        self.assertEqual(c11.get_message().body, "hello all")


if __name__ == "__main__":
    sbtest.main()
