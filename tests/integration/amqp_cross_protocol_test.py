# tests/integration/amqp_cross_protocol_test.py — AMQP 1.0 <-> MQTT (3.1.1 and 5) and AMQP <-> STOMP
# through the kernel, both directions, each field checked against docs/mapping.md: destination
# names, durable <-> QoS / persistent, expiry, reply-to <-> response topic, correlation-id <->
# correlation data, content type, application properties <-> user properties / headers, and the
# body (a data section <-> bytes, an amqp-value string <-> text / MQTT 5 payload format 1).
# Real binary, python3-qpid-proton, paho-mqtt and stomp.py.

import os
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import MqttTestCase, msg_prop  # noqa: E402
from amqp_basic_test import AmqpTestCase  # noqa: E402

from proton import Message  # noqa: E402

BINARY = bytes(range(256)) + b"\x00\xff\xfe\xc3\x28"   # not UTF-8, NULs


class CrossTestCase(AmqpTestCase, MqttTestCase):
    """STOMP (self.port), MQTT (self.mqtt_port) and AMQP (self.amqp_port) on one broker."""

    def _start_broker(self, workdir=None):
        method = getattr(self, self._testMethodName)
        extra = sbtest.deep_merge(self.broker_config, getattr(method, "sb_config", {}))
        broker = sbtest.Broker(extra, workdir=workdir, mqtt=True)
        broker.config["listeners"].append({"name": "amqp", "protocol": "amqp", "address": sbtest.HOST,
                                           "port": self.amqp_port})
        return broker


class AmqpToMqttTest(CrossTestCase):

    def test_amqp_string_to_mqtt_v5_field_by_field(self):
        sub = self.paho()
        self.assertEqual(sub.subscribe("x/amqp", 2), [2])
        s = self.connect().create_sender("topic://x.amqp")
        before = time.time()
        s.send(Message(body="héllo", durable=True, ttl=60, content_type="text/plain",
                       reply_to="topic://replies.x", correlation_id="corr-1", subject="order.created",
                       properties={"color": "blue", "n": 7, "ok": True}))
        msg = sub.get_message()
        self.assertEqual(msg.topic, "x/amqp")
        self.assertEqual(msg.payload, "héllo".encode())
        self.assertEqual(msg.qos, 2, "durable, not from MQTT: QoS 2 (the subscription's maximum)")
        self.assertEqual(msg_prop(msg, "PayloadFormatIndicator"), 1, "an amqp-value string is UTF-8 text")
        self.assertEqual(msg_prop(msg, "ContentType"), "text/plain")
        self.assertEqual(msg_prop(msg, "ResponseTopic"), "replies/x")
        self.assertEqual(msg_prop(msg, "CorrelationData"), b"corr-1")
        expiry = msg_prop(msg, "MessageExpiryInterval")
        self.assertIsNotNone(expiry, "ttl must arrive as the message expiry interval")
        self.assertTrue(55 <= expiry <= 60 + 1, f"expiry {expiry}s after {time.time() - before:.1f}s")
        props = dict(msg_prop(msg, "UserProperty", []))
        self.assertEqual(props, {"color": "blue", "n": "7", "ok": "true"},
                         "application properties as strings, nothing else (subject is not carried)")

    def test_amqp_data_section_to_mqtt_v5_and_v311(self):
        v5 = self.paho()
        v5.subscribe("x/bin", 1)
        v3 = self.paho(version=4)
        v3.subscribe("x/bin", 1)
        s = self.connect().create_sender("/topic/x.bin")
        s.send(Message(body=BINARY, inferred=True, durable=False, content_type="application/octet-stream"))
        m5, m3 = v5.get_message(), v3.get_message()
        self.assertEqual((m5.topic, m5.payload, m5.qos), ("x/bin", BINARY, 0), "not durable: QoS 0")
        self.assertIn(msg_prop(m5, "PayloadFormatIndicator"), (None, 0), "bytes: no format indicator")
        self.assertEqual(msg_prop(m5, "ContentType"), "application/octet-stream")
        self.assertEqual((m3.topic, m3.payload, m3.qos), ("x/bin", BINARY, 0))

    def test_amqp_durable_to_mqtt_v311_keeps_the_subscription_qos(self):
        q1 = self.paho(version=4)
        q1.subscribe("x/qos", 1)
        s = self.connect().create_sender("topic://x.qos")
        s.send(Message(body="persistent", durable=True))
        s.send(Message(body="transient", durable=False))
        a, b = q1.get_messages(2)
        self.assertEqual([(a.payload, a.qos), (b.payload, b.qos)], [(b"persistent", 1), (b"transient", 0)])


class MqttToAmqpTest(CrossTestCase):

    def test_mqtt_v5_text_to_amqp_field_by_field(self):
        r = self.connect().create_receiver("topic://m.five", credit=10)
        pub = self.paho()
        pub.publish("m/five", "grüße", qos=1,
                    props={"PayloadFormatIndicator": 1, "ContentType": "text/plain; charset=utf-8",
                           "ResponseTopic": "reply/here", "CorrelationData": b"corr-9",
                           "MessageExpiryInterval": 120,
                           "UserProperty": [("x-color", "blue"), ("x-n", "7")]})
        m = r.receive()
        self.assertEqual(m.body, "grüße", "payload format 1: an amqp-value string")
        self.assertEqual(m.address, "topic://m.five")
        self.assertTrue(m.durable, "QoS 1: durable")
        self.assertEqual(m.content_type, "text/plain; charset=utf-8")
        self.assertEqual(m.reply_to, "topic://reply.here")
        self.assertEqual(m.correlation_id, "corr-9")
        self.assertEqual((m.properties.get("x-color"), m.properties.get("x-n")), ("blue", "7"))
        self.assertGreater(m.expiry_time, time.time() + 100, "absolute-expiry-time from the expiry interval")
        self.assertTrue(100 <= m.ttl <= 120, f"ttl {m.ttl}s: what is left of 120 s")
        r.accept()

    def test_mqtt_v5_bytes_to_amqp_data_section(self):
        r = self.connect().create_receiver("topic://m.bin", credit=10)
        self.paho().publish("m/bin", BINARY, qos=0)
        m = r.receive()
        self.assertEqual(bytes(m.body), BINARY, "format indicator 0: a data section")
        self.assertIsInstance(m.body, bytes)
        self.assertFalse(m.durable, "QoS 0: not durable")
        self.assertIsNone(m.reply_to)
        r.accept()

    def test_mqtt_v311_to_amqp(self):
        r = self.connect().create_receiver("/topic/m.three.*", credit=10)
        pub = self.paho(version=4)
        pub.publish("m/three/a", BINARY, qos=1)
        pub.publish("m/three/b", b"", qos=2)
        a, b = r.receive(), r.receive()
        self.assertEqual((bytes(a.body), a.durable, a.address), (BINARY, True, "topic://m.three.a"))
        self.assertIn(b.body, (None, b""), "an empty payload: no body")
        self.assertEqual((b.durable, b.address), (True, "topic://m.three.b"))
        r.accept()


class StompAmqpTest(CrossTestCase):
    """Fields amqp_basic_test's STOMP cases leave out: expiry both ways, text bodies both ways."""

    def test_amqp_text_and_expiry_to_stomp(self):
        stomp = self.stomp_client(auto_decode=False)
        stomp.subscribe("/topic/s.fields", "s1")
        c = self.connect()
        before_ms = int(time.time() * 1000)
        c.create_sender("topic://s.fields").send(Message(body="text ✓", ttl=30, durable=False))
        frame = stomp.get_message()
        h = frame.headers
        self.assertEqual(frame.body, "text ✓".encode())
        self.assertEqual(h.get("destination"), "/topic/s.fields")
        self.assertNotEqual(h.get("persistent"), "true")
        expires = int(h.get("expires", "0"))
        self.assertTrue(before_ms + 25_000 <= expires <= before_ms + 31_000, (before_ms, expires))
        self.assertIsNotNone(h.get("timestamp"), h)

    def test_stomp_expiry_and_text_to_amqp(self):
        r = self.connect().create_receiver("topic://s.back", credit=5)
        stomp = self.stomp_client()
        expires = int(time.time() * 1000) + 60_000
        raw = self.raw()
        raw.connect()
        raw.send_frame("SEND", {"destination": "/topic/s.back", "expires": str(expires),
                                "content-type": "text/plain", "receipt": "r1"}, "plain text ✓".encode())
        raw.expect("RECEIPT")
        m = r.receive()
        self.assertEqual(m.body, "plain text ✓", "no content-length: text, an amqp-value string")
        self.assertEqual(m.content_type, "text/plain")
        self.assertEqual(int(round(m.expiry_time * 1000)), expires)
        self.assertEqual(m.address, "topic://s.back")
        self.assertGreater(m.creation_time, 0)
        r.accept()
        del stomp


if __name__ == "__main__":
    sbtest.main()
