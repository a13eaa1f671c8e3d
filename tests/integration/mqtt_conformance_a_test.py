# tests/integration/mqtt_conformance_a_test.py — MQTT 3.1/3.1.1/5.0 behaviour clients expect
# (issue 16): duplicate filters in SUBSCRIBE and UNSUBSCRIBE, protocol errors in CONNECT and
# PUBLISH, the order of acknowledgements and deliveries, reason 0x10, will properties and will
# delay, the client's receive maximum and maximum packet size, the 3.1 CONNACK, and CONNECTs
# limited by bytes rather than counts. Exact bytes on raw sockets and paho; real binary.

import os
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import (MqttTestCase, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP,  # noqa: E402
                    SUBACK, UNSUBACK, ack_packet, connect_packet, publish_packet,
                    subscribe_packet, unsubscribe_packet, paho_props,
                    P_PAYLOAD_FORMAT, P_MESSAGE_EXPIRY, P_CONTENT_TYPE, P_RESPONSE_TOPIC,
                    P_CORRELATION_DATA, P_SUBSCRIPTION_ID, P_SESSION_EXPIRY, P_WILL_DELAY,
                    P_RECEIVE_MAXIMUM, P_USER_PROPERTY, P_MAXIMUM_PACKET_SIZE)

V31 = 3
V311 = 4
P_AUTH_DATA = 0x16


def raw_bytes(raw, count, timeout=sbtest.WAIT):
    """Exactly `count` bytes from a raw socket (what the server sent, unparsed)."""
    deadline = time.monotonic() + timeout
    while len(raw.buf) < count:
        raw._fill(deadline)
    out = bytes(raw.buf[:count])
    del raw.buf[:count]
    return out


class DuplicateFilterTest(MqttTestCase):
    """Defect 1: the same filter twice in one UNSUBSCRIBE touched the erased subscription."""

    def test_unsubscribe_repeating_a_filter_v5(self):
        raw = self.raw_mqtt(5, client_id=self.unique("du"))
        raw.subscribe([("dup/a", 1)], pid=6)
        raw.send(unsubscribe_packet(7, ["dup/a", "dup/a"]))
        # UNSUBACK, packet id 7, no properties, 0x00 for the first, 0x11 (no subscription
        # existed) for the second.
        self.assertEqual(raw_bytes(raw, 7), b"\xb0\x05\x00\x07\x00\x00\x11")
        # The session goes on; the filter is gone.
        raw.send(unsubscribe_packet(8, ["dup/a", "dup/b", "dup/a"]))
        self.assertEqual(raw_bytes(raw, 8), b"\xb0\x06\x00\x08\x00\x11\x11\x11")
        raw.ping()
        pub = self.paho()
        pub.publish("dup/a", "after", qos=1)
        self.assertEqual(raw.packets_within(0.3), [], "delivered after UNSUBSCRIBE")

    def test_unsubscribe_repeating_a_filter_v311(self):
        raw = self.raw_mqtt(V311, client_id=self.unique("du3"))
        raw.subscribe([("dup3/a", 1), ("dup3/b", 0)], pid=2)
        raw.send(unsubscribe_packet(9, ["dup3/a", "dup3/a", "dup3/b", "dup3/a"], version=V311))
        self.assertEqual(raw_bytes(raw, 4), b"\xb0\x02\x00\x09")
        raw.ping()

    def test_subscribe_repeating_a_filter_replaces_it(self):
        raw = self.raw_mqtt(5, client_id=self.unique("ds"))
        raw.send(subscribe_packet(3, [("dups/x", 0), ("dups/x", 2), ("dups/#", 1)]))
        # One SUBACK code per filter, in order.
        self.assertEqual(raw_bytes(raw, 8), b"\x90\x06\x00\x03\x00\x00\x02\x01")
        pub = self.paho()
        pub.publish("dups/x", "m", qos=2)
        # One copy (overlapping subscriptions of one client, MQTT 5 §3.3.4) at the highest QoS:
        # 2, so the repeated filter's later options replaced the first (QoS 0) ones.
        got = raw.expect(PUBLISH)
        self.assertEqual(got.qos, 2, "the repeated filter must replace the first (QoS 2)")
        raw.ack(got)
        self.assertEqual(raw.packets_within(0.3), [], "delivered more than once")
        raw.send(unsubscribe_packet(4, ["dups/x"]))
        self.assertEqual(raw_bytes(raw, 6), b"\xb0\x04\x00\x04\x00\x00")
        # One subscription went: only dups/# (QoS 1) is left, so nothing of dups/x was added.
        pub.publish("dups/x", "n", qos=2)
        again = raw.expect(PUBLISH)
        self.assertEqual((again.payload, again.qos), (b"n", 1), repr(again))
        raw.ack(again)
        self.assertEqual(raw.packets_within(0.3), [], "a second subscription to dups/x was left")


class ProtocolErrorTest(MqttTestCase):
    """Defect 17, MQTT parts."""

    def test_authentication_data_without_method_is_a_protocol_error(self):
        raw = self.raw_mqtt(5)
        raw.send(connect_packet(self.unique(), props={P_AUTH_DATA: b"secret"}))
        packets = raw.wait_closed()
        self.assertEqual([(p.type, p.code) for p in packets], [(CONNACK, 0x82)], repr(packets))

    def test_client_publish_with_subscription_identifier_is_a_protocol_error(self):
        watcher = self.raw_mqtt(5, client_id=self.unique("w"))
        watcher.subscribe([("sid/x", 0)])
        raw = self.raw_mqtt(5, client_id=self.unique("sid"))
        raw.send(publish_packet("sid/x", b"x", qos=1, pid=1, props={P_SUBSCRIPTION_ID: 5}))
        self.assert_disconnect_then_close(raw, 0x82, what="PUBLISH with a subscription id")
        self.assertEqual(watcher.packets_within(0.3), [], "the bad PUBLISH was delivered")


class OrderTest(MqttTestCase):
    """SUBACK before retained messages; PUBACK/PUBREC before the publisher's own copy."""

    def test_suback_before_retained_messages(self):
        pub = self.paho()
        for i in range(5):
            pub.publish(f"ret/{i}", f"r{i}", qos=1, retain=True)
        for round_ in range(10):
            raw = self.raw_mqtt(5, client_id=self.unique("sr"))
            raw.send(subscribe_packet(1, [("ret/+", 1)]))
            first = raw.read_packet()
            self.assertEqual(first.type, SUBACK, f"round {round_}: {first!r} before SUBACK")
            got = [raw.expect(PUBLISH) for _ in range(5)]
            self.assertTrue(all(p.retain for p in got))
            raw.close()

    def test_suback_before_retained_messages_v311_qos0(self):
        pub = self.paho()
        pub.publish("ret0/a", "r", qos=0, retain=True)
        pub.publish("ret0/sync", "s", qos=1)   # the retained one is in place once this is acked
        for round_ in range(10):
            raw = self.raw_mqtt(V311, client_id=self.unique("sr3"))
            raw.send(subscribe_packet(1, [("ret0/a", 0)], version=V311))
            self.assertEqual(raw_bytes(raw, 5), b"\x90\x03\x00\x01\x00", f"round {round_}")
            p = raw.expect(PUBLISH)
            self.assertEqual((p.topic, p.payload, p.retain), ("ret0/a", b"r", True))
            raw.close()

    def test_puback_before_own_message(self):
        raw = self.raw_mqtt(5, client_id=self.unique("own"))
        raw.subscribe([("own/x", 1)])
        for i in range(1, 21):
            raw.send(publish_packet("own/x", f"m{i}", qos=1, pid=i))
            first = raw.read_packet()
            self.assertEqual((first.type, first.pid), (PUBACK, i), f"message {i}: {first!r}")
            echo = raw.expect(PUBLISH)
            self.assertEqual(echo.payload, f"m{i}".encode())
            raw.ack(echo)

    def test_pubrec_before_own_message(self):
        raw = self.raw_mqtt(5, client_id=self.unique("own2"))
        raw.subscribe([("own2/x", 2)])
        for i in range(1, 11):
            raw.send(publish_packet("own2/x", f"m{i}", qos=2, pid=i))
            first = raw.read_packet()
            self.assertEqual((first.type, first.pid), (PUBREC, i), f"message {i}: {first!r}")
            echo = raw.expect(PUBLISH)
            self.assertEqual(echo.payload, f"m{i}".encode())
            raw.send(ack_packet(PUBREL, i))
            raw.expect(PUBCOMP)
            raw.ack(echo)

    def test_puback_before_own_message_v311(self):
        raw = self.raw_mqtt(V311, client_id=self.unique("own3"))
        raw.subscribe([("own3/x", 1)])
        for i in range(1, 21):
            raw.send(publish_packet("own3/x", f"m{i}", qos=1, pid=i, version=V311))
            self.assertEqual(raw_bytes(raw, 4), b"\x40\x02" + i.to_bytes(2, "big"), f"message {i}")
            echo = raw.expect(PUBLISH)
            self.assertEqual(echo.payload, f"m{i}".encode())
            raw.ack(echo)


class OrderUnderFlowControlTest(MqttTestCase):
    """Holding a delivery for its acknowledgement must never stall: a PUBACK can wait for the
    kernel's flow control (a congested subscriber), and that subscriber may be the publisher."""
    broker_config = {"mqtt": {"max_queued_messages": 20}}   # congested from 10 pending

    def test_own_message_while_own_subscription_is_congested(self):
        a = self.raw_mqtt(5)
        a.connect(self.unique("a"), props={P_RECEIVE_MAXIMUM: 2})   # kernel prefetch 2
        a.subscribe([("cong/x", 1)])
        # Sees each message as soon as the kernel fanned it out (QoS 0, never congested).
        observer = self.raw_mqtt(5, client_id=self.unique("o"))
        observer.subscribe([("cong/x", 0)])

        def seen(payload):
            observer.read_until(lambda p: p.type == PUBLISH and p.payload == payload)

        b = self.raw_mqtt(5, client_id=self.unique("b"))
        for i in range(30):   # no waiting for PUBACKs: they are held while `a` is congested
            b.send(publish_packet("cong/x", f"b{i}", qos=1, pid=i + 1))
        seen(b"b29")   # `a` has 2 in flight and 28 pending: congested
        first = [a.expect(PUBLISH), a.expect(PUBLISH)]   # receive maximum 2: then nothing
        # Its own message: the kernel holds its PUBACK until `a` drains.
        a.send(publish_packet("cong/x", b"own", qos=1, pid=100))
        seen(b"own")
        for i in range(30, 40):   # still congested when "own" reaches the front
            b.send(publish_packet("cong/x", f"b{i}", qos=1, pid=i + 1))
        seen(b"b39")
        for p in first:
            a.send(ack_packet(PUBACK, p.pid))
        payloads, own_acked = [p.payload for p in first], False
        deadline = time.monotonic() + 20
        while (len(payloads) < 41 or not own_acked) and time.monotonic() < deadline:
            try:
                p = a.read_packet(max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if p.type == PUBACK:
                self.assertEqual(p.pid, 100)
                own_acked = True
            elif p.type == PUBLISH:
                payloads.append(p.payload)
                a.send(ack_packet(PUBACK, p.pid))
        self.assertEqual(len(payloads), 41, f"stalled after {len(payloads)} deliveries")
        self.assertTrue(own_acked, "no PUBACK for the client's own message")
        self.assertIn(b"own", payloads)
        self.assertEqual([x for x in payloads if x != b"own"], [f"b{i}".encode() for i in range(40)])


class NoMatchingSubscribersTest(MqttTestCase):
    """MQTT 5 PUBACK/PUBREC reason 0x10 when nothing matched."""

    def test_puback_0x10_without_subscribers(self):
        raw = self.raw_mqtt(5, client_id=self.unique("nm"))
        raw.send(publish_packet("nobody/x", b"x", qos=1, pid=3))
        self.assertEqual(raw_bytes(raw, 5), b"\x40\x03\x00\x03\x10")
        raw.send(publish_packet("nobody/x", b"x", qos=2, pid=4))
        self.assertEqual(raw_bytes(raw, 5), b"\x50\x03\x00\x04\x10")
        raw.send(ack_packet(PUBREL, 4))
        self.assertEqual(raw_bytes(raw, 4), b"\x70\x02\x00\x04")

    def test_puback_0x00_with_a_subscriber(self):
        watcher = self.raw_mqtt(5, client_id=self.unique("w"))
        watcher.subscribe([("some/+", 0)])
        shared = self.raw_mqtt(5, client_id=self.unique("ws"))
        shared.subscribe([("$share/g/shr/x", 0)])
        raw = self.raw_mqtt(5, client_id=self.unique("m"))
        raw.send(publish_packet("some/x", b"x", qos=1, pid=3))
        self.assertEqual(raw_bytes(raw, 4), b"\x40\x02\x00\x03")
        raw.send(publish_packet("shr/x", b"x", qos=1, pid=4))
        self.assertEqual(raw_bytes(raw, 4), b"\x40\x02\x00\x04")
        # A persistent session's subscription matches while its client is away.
        cid = self.unique("away")
        away = self.raw_mqtt(5, client_id=cid, props={P_SESSION_EXPIRY: 60})
        away.subscribe([("away/x", 1)])
        away.send(b"\xe0\x00")
        away.wait_closed()
        raw.send(publish_packet("away/x", b"x", qos=1, pid=5))
        self.assertEqual(raw_bytes(raw, 4), b"\x40\x02\x00\x05")

    def test_no_local_only_counts_as_no_match(self):
        raw = self.raw_mqtt(5, client_id=self.unique("nl"))
        raw.subscribe([("nl/x", 0x04 | 1)])   # no local
        raw.send(publish_packet("nl/x", b"x", qos=1, pid=2))
        self.assertEqual(raw_bytes(raw, 5), b"\x40\x03\x00\x02\x10")

    def test_v311_puback_has_no_reason(self):
        raw = self.raw_mqtt(V311, client_id=self.unique("nm3"))
        raw.send(publish_packet("nobody3/x", b"x", qos=1, pid=3, version=V311))
        self.assertEqual(raw_bytes(raw, 4), b"\x40\x02\x00\x03")


class WillTest(MqttTestCase):

    def test_will_properties_reach_subscribers_as_properties(self):
        watcher = self.raw_mqtt(5, client_id=self.unique("w"))
        watcher.subscribe([("wprop/#", 1)])
        will_props = [(P_PAYLOAD_FORMAT, 1), (P_MESSAGE_EXPIRY, 600),
                      (P_CONTENT_TYPE, "text/plain"), (P_RESPONSE_TOPIC, "wprop/reply"),
                      (P_CORRELATION_DATA, b"\x00corr\xff"), (P_USER_PROPERTY, ("a", "1")),
                      (P_USER_PROPERTY, ("b", "2")), (P_USER_PROPERTY, ("a", "3"))]
        doomed = self.raw_mqtt(5)
        doomed.connect(self.unique("wd"), will={"topic": "wprop/will", "payload": b"gone",
                                               "qos": 1, "props": will_props})
        doomed.close()
        p = watcher.expect(PUBLISH, timeout=10)
        self.assertEqual((p.topic, p.payload), ("wprop/will", b"gone"))
        self.assertEqual(p.props.get(P_PAYLOAD_FORMAT), 1)
        self.assertTrue(590 <= p.props.get(P_MESSAGE_EXPIRY, 0) <= 600, repr(p.props))
        self.assertEqual(p.props.get(P_CONTENT_TYPE), "text/plain")
        self.assertEqual(p.props.get(P_RESPONSE_TOPIC), "wprop/reply")
        self.assertEqual(p.props.get(P_CORRELATION_DATA), b"\x00corr\xff")
        self.assertEqual(p.props.all(P_USER_PROPERTY), [("a", "1"), ("b", "2"), ("a", "3")])

    def test_will_properties_v5_paho(self):
        watcher = self.paho()
        watcher.subscribe("wpp/#", 1)
        props = paho_props("WILLMESSAGE", ContentType="application/json",
                           PayloadFormatIndicator=1, MessageExpiryInterval=300,
                           ResponseTopic="wpp/reply", CorrelationData=b"c-1",
                           UserProperty=[("k", "v")])
        doomed = self.paho(will={"topic": "wpp/will", "payload": "{}", "qos": 1, "props": props})
        doomed.abort()
        msg = self.assert_next_payload(watcher, "{}", timeout=10)
        self.assertEqual(msg.properties.ContentType, "application/json")
        self.assertEqual(msg.properties.PayloadFormatIndicator, 1)
        self.assertEqual(msg.properties.ResponseTopic, "wpp/reply")
        self.assertEqual(msg.properties.CorrelationData, b"c-1")
        self.assertEqual(msg.properties.UserProperty, [("k", "v")])
        self.assertLessEqual(msg.properties.MessageExpiryInterval, 300)

    def will_connect(self, cid, delay, expiry=60, clean=True):
        raw = self.raw_mqtt(5)
        raw.connect(cid, clean=clean, props={P_SESSION_EXPIRY: expiry},
                    will={"topic": "wdl/will", "payload": cid.encode(), "qos": 1,
                          "props": {P_WILL_DELAY: delay}})
        return raw

    def sentinel(self, watcher):
        other = self.raw_mqtt(5, client_id=self.unique("s"))
        other.publish("wdl/sentinel", b"sentinel", qos=1)
        p = watcher.expect(PUBLISH)
        self.assertEqual(p.payload, b"sentinel", f"unexpected {p!r} before the sentinel")

    def test_takeover_within_the_delay_sends_no_will(self):
        watcher = self.raw_mqtt(5, client_id=self.unique("w"))
        watcher.subscribe([("wdl/#", 1)])
        cid = self.unique("wt")
        old = self.will_connect(cid, delay=2)
        new = self.raw_mqtt(5)
        ack = new.connect(cid, clean=False, props={P_SESSION_EXPIRY: 60})
        self.assertEqual(ack.session_present, 1)
        self.assert_disconnect_then_close(old, 0x8E, what="the taken-over connection")
        got = watcher.packets_within(3.0)
        self.assertEqual(got, [], "will sent although the session was taken over in time")
        self.sentinel(watcher)

    def test_clean_start_takeover_ends_the_session_and_sends_the_will_now(self):
        watcher = self.raw_mqtt(5, client_id=self.unique("w"))
        watcher.subscribe([("wdl/#", 1)])
        cid = self.unique("wc")
        old = self.will_connect(cid, delay=30)
        started = time.monotonic()
        new = self.raw_mqtt(5)
        ack = new.connect(cid, clean=True, props={P_SESSION_EXPIRY: 60})
        self.assertEqual(ack.session_present, 0)
        p = watcher.expect(PUBLISH, timeout=10)
        self.assertEqual(p.payload, cid.encode())
        self.assertLess(time.monotonic() - started, 10, "will waited for the 30 s delay")

    def test_clean_reconnect_within_the_delay_sends_the_will_now(self):
        watcher = self.raw_mqtt(5, client_id=self.unique("w"))
        watcher.subscribe([("wdl/#", 1)])
        cid = self.unique("wr")
        old = self.will_connect(cid, delay=30)
        old.close()
        self.assertEqual(watcher.packets_within(0.5), [], "will before its delay")
        started = time.monotonic()
        new = self.raw_mqtt(5)
        new.connect(cid, clean=True)
        p = watcher.expect(PUBLISH, timeout=10)
        self.assertEqual(p.payload, cid.encode())
        self.assertLess(time.monotonic() - started, 10, "will waited for the 30 s delay")

    def test_will_after_the_delay(self):
        watcher = self.raw_mqtt(5, client_id=self.unique("w"))
        watcher.subscribe([("wdl/#", 1)])
        cid = self.unique("wa")
        old = self.will_connect(cid, delay=1)
        old.close()
        lost = time.monotonic()
        p = watcher.expect(PUBLISH, timeout=10)
        self.assertEqual(p.payload, cid.encode())
        self.assertGreaterEqual(time.monotonic() - lost, 0.8)

    def test_session_expiring_before_the_delay_sends_the_will_then(self):
        watcher = self.raw_mqtt(5, client_id=self.unique("w"))
        watcher.subscribe([("wdl/#", 1)])
        cid = self.unique("we")
        old = self.will_connect(cid, delay=60, expiry=1)
        old.close()
        lost = time.monotonic()
        p = watcher.expect(PUBLISH, timeout=10)
        self.assertEqual(p.payload, cid.encode())
        waited = time.monotonic() - lost
        self.assertTrue(0.8 <= waited < 10, f"will after {waited:.2f}s; the session expires at 1 s")


class ClientLimitsTest(MqttTestCase):
    """The client's Receive Maximum and Maximum Packet Size."""

    def run_receive_maximum_1(self, qos):
        raw = self.raw_mqtt(5)
        raw.connect(self.unique("rm1"), props={P_RECEIVE_MAXIMUM: 1})
        raw.subscribe([("rm1/x", qos)])
        pub = self.raw_mqtt(5, client_id=self.unique("p"))
        for i in range(5):
            pub.publish("rm1/x", f"r{i}".encode(), qos=qos, pid=i + 1)
        for i in range(5):
            p = raw.expect(PUBLISH)
            self.assertEqual((p.payload, p.qos), (f"r{i}".encode(), qos))
            self.assertEqual(raw.packets_within(0.2), [],
                             "a second unacknowledged PUBLISH with receive maximum 1")
            if qos == 1:
                raw.send(ack_packet(PUBACK, p.pid))
            else:
                raw.send(ack_packet(PUBREC, p.pid))
                rel = raw.expect(PUBREL)
                # Until PUBCOMP the QoS 2 message still counts against receive maximum.
                self.assertEqual(raw.packets_within(0.2), [], "PUBLISH before PUBCOMP")
                raw.send(ack_packet(PUBCOMP, rel.pid))
        self.assertEqual(raw.packets_within(0.2), [])

    def test_receive_maximum_1_qos1(self):
        self.run_receive_maximum_1(1)

    def test_receive_maximum_1_qos2(self):
        self.run_receive_maximum_1(2)

    def test_receive_maximum_1_paho(self):
        sub = self.paho(props={"ReceiveMaximum": 1})
        sub.subscribe("rmp/x", 1)
        pub = self.paho()
        for i in range(50):
            pub.publish("rmp/x", f"m{i}", qos=1, wait=False)
        msgs = sub.get_messages(50, timeout=20)
        self.assertEqual([m.payload.decode() for m in msgs], [f"m{i}" for i in range(50)])

    def test_maximum_packet_size_skips_larger_messages(self):
        for qos in (0, 1, 2):
            with self.subTest(qos=qos):
                raw = self.raw_mqtt(5)
                raw.connect(self.unique("mps"), props={P_MAXIMUM_PACKET_SIZE: 200})
                raw.subscribe([("mps/x", qos)])
                pub = self.raw_mqtt(5, client_id=self.unique("p"))
                pub.publish("mps/x", b"big" * 100, qos=qos, pid=1)
                pub.publish("mps/x", b"small", qos=qos, pid=2)
                p = raw.expect(PUBLISH)
                self.assertEqual(p.payload, b"small")
                if qos:
                    raw.ack(p)
                self.assertEqual(raw.packets_within(0.3), [], "the skipped message came back")
                raw.close()
                pub.close()

    def test_maximum_packet_size_persistent_session_does_not_retry(self):
        cid = self.unique("mpsp")
        raw = self.raw_mqtt(5)
        raw.connect(cid, clean=True, props={P_MAXIMUM_PACKET_SIZE: 200, P_SESSION_EXPIRY: 60})
        raw.subscribe([("mpsp/x", 1)])
        pub = self.raw_mqtt(5, client_id=self.unique("p"))
        for i in range(3):
            pub.publish("mpsp/x", b"big" * 100, qos=1, pid=10 + i)
        pub.publish("mpsp/x", b"small", qos=1, pid=2)
        p = raw.expect(PUBLISH)
        self.assertEqual(p.payload, b"small")
        raw.ack(p)
        raw.send(b"\xe0\x00")
        raw.wait_closed()
        again = self.raw_mqtt(5)
        ack = again.connect(cid, clean=False, props={P_MAXIMUM_PACKET_SIZE: 200,
                                                     P_SESSION_EXPIRY: 60})
        self.assertEqual(ack.session_present, 1)
        self.assertEqual(again.packets_within(0.5), [], "skipped messages sent again on resume")


class ConnectTest(MqttTestCase):

    def test_mqtt31_connack_has_no_session_present(self):
        cid = self.unique("v31")[:20]
        raw = self.raw_mqtt(V31)
        raw.send(connect_packet(cid, version=V31, clean=False))
        self.assertEqual(raw_bytes(raw, 4), b"\x20\x02\x00\x00")
        raw.subscribe([("v31/x", 1)])
        raw.send(b"\xe0\x00")
        raw.wait_closed()
        again = self.raw_mqtt(V31)
        again.send(connect_packet(cid, version=V31, clean=False))
        self.assertEqual(raw_bytes(again, 4), b"\x20\x02\x00\x00")
        # The session is there all the same: its subscription still delivers.
        pub = self.paho()
        pub.publish("v31/x", "kept", qos=1)
        p = again.expect(PUBLISH)
        self.assertEqual(p.payload, b"kept")

    def test_mqtt31_paho_resumes(self):
        cid = self.unique("p31")[:20]
        c = self.paho(cid, version=V31, clean=False)
        c.subscribe("p31/x", 1)
        c.disconnect()
        again = self.paho(cid, version=V31, clean=False, connect=False)
        present, rc, _ = again.connect()
        self.assertEqual((present, rc), (0, 0))

    def test_mqtt311_resumed_session_is_present(self):
        cid = self.unique("v311")
        raw = self.raw_mqtt(V311)
        raw.send(connect_packet(cid, version=V311, clean=False))
        self.assertEqual(raw_bytes(raw, 4), b"\x20\x02\x00\x00")
        raw.send(b"\xe0\x00")
        raw.wait_closed()
        again = self.raw_mqtt(V311)
        again.send(connect_packet(cid, version=V311, clean=False))
        self.assertEqual(raw_bytes(again, 4), b"\x20\x02\x01\x00")

    def test_5000_user_properties(self):
        props = [(P_USER_PROPERTY, (f"k{i}", f"v{i}")) for i in range(5000)]
        raw = self.raw_mqtt(5)
        ack = raw.connect(self.unique("up"), props=props)
        self.assertEqual(ack.code, 0)
        raw.ping()

    def test_5000_user_properties_in_publish(self):
        watcher = self.raw_mqtt(5, client_id=self.unique("w"))
        watcher.subscribe([("upp/x", 0)])
        raw = self.raw_mqtt(5, client_id=self.unique("upp"))
        props = [(P_USER_PROPERTY, (f"k{i}", "v")) for i in range(5000)]
        raw.publish("upp/x", b"x", qos=1, props=props)
        p = watcher.expect(PUBLISH)
        self.assertEqual(len(p.props.all(P_USER_PROPERTY)), 5000)

    def test_65000_byte_client_identifier(self):
        for version in (V311, 5):
            with self.subTest(version=version):
                cid = "c" * 65000
                raw = self.raw_mqtt(version)
                ack = raw.connect(cid)
                self.assertEqual(ack.code, 0)
                raw.subscribe([("long/x", 1)])
                raw.publish("long/x", b"hi", qos=1, pid=2)
                p = raw.expect(PUBLISH)
                self.assertEqual(p.payload, b"hi")
                raw.close()

    def test_65000_byte_client_identifier_persistent(self):
        cid = "p" * 65000
        raw = self.raw_mqtt(5)
        raw.connect(cid, props={P_SESSION_EXPIRY: 60})
        raw.subscribe([("longp/x", 1)])
        raw.send(b"\xe0\x00")
        raw.wait_closed()
        again = self.raw_mqtt(5)
        ack = again.connect(cid, clean=False, props={P_SESSION_EXPIRY: 60})
        self.assertEqual(ack.session_present, 1)


if __name__ == "__main__":
    sbtest.main()
