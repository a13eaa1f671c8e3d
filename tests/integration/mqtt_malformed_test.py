# tests/integration/mqtt_malformed_test.py — bad MQTT input over raw sockets: each case gets the
# exact MQTT 5 reason code (CONNACK or DISCONNECT, then close) or, for 3.1.1 and before CONNECT,
# a silent close — while a healthy paho client keeps publishing and receiving throughout, and
# the broker still exits cleanly. Real binary.

import os
import sys
import threading

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import (MqttTestCase, config_override, CONNACK, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL,  # noqa: E402
                    SUBACK, ack_packet, connect_packet, mqtt_packet, mqtt_str,
                    mqtt_varint, publish_packet, subscribe_packet, PINGREQ_PACKET,
                    P_CONTENT_TYPE, P_SESSION_EXPIRY, P_TOPIC_ALIAS, P_RECEIVE_MAXIMUM,
                    P_MAXIMUM_PACKET_SIZE, P_TOPIC_ALIAS_MAXIMUM)

V311 = 4

# PUBLISH with a 5-byte remaining length (MQTT 5 §1.5.5 allows at most 4).
LENGTH_5_BYTES = b"\x30\xff\xff\xff\xff\x01" + b"\x00" * 16


class Healthy:
    """A paho v5 client publishing QoS 1 messages to itself on its own thread; finish() checks
    every one came back once, in order, and the connection never dropped."""

    def __init__(self, test):
        self.client = test.paho()
        self.topic = "health/" + test.unique("h")
        self.client.subscribe(self.topic, 1)
        self.sent = 0
        self.errors = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                self.client.publish(self.topic, f"h-{self.sent}", qos=1)
            except AssertionError as e:
                self.errors.append(str(e))
                return
            self.sent += 1
            self.stop.wait(0.005)   # pace: keep going without flooding the 2 shared cores

    def finish(self, test):
        self.stop.set()
        self.thread.join(sbtest.WAIT * 2)
        test.assertFalse(self.thread.is_alive(), "healthy publisher hung")
        test.assertEqual(self.errors, [], "the healthy client was affected")
        test.assertTrue(self.client.is_connected(),
                        f"the healthy client was disconnected (rc={self.client.disconnect_rc})")
        msgs = self.client.get_messages(self.sent, 10)
        test.assertEqual([m.payload.decode() for m in msgs],
                         [f"h-{i}" for i in range(self.sent)])
        test.assertGreater(self.sent, 0)
        self.client.publish(self.topic, "last", qos=1)
        test.assert_next_payload(self.client, "last", what="healthy client after the bad input")


class MalformedTest(MqttTestCase):

    def setUp(self):
        super().setUp()
        self.healthy = Healthy(self)

    def tearDown(self):
        self.healthy.finish(self)
        super().tearDown()

    def v5(self, **kw):
        return self.raw_mqtt(5, client_id=self.unique("bad5"), **kw)

    def v3(self):
        return self.raw_mqtt(V311, client_id=self.unique("bad3"))

    # -- remaining length

    def test_remaining_length_over_4_bytes_before_connect(self):
        raw = self.raw_mqtt()
        raw.send(LENGTH_5_BYTES)
        self.assert_closed_silently(raw, what="5-byte remaining length before CONNECT")

    def test_remaining_length_over_4_bytes_v5(self):
        raw = self.v5()
        raw.send(LENGTH_5_BYTES)
        self.assert_disconnect_then_close(raw, 0x81, what="5-byte remaining length")

    def test_remaining_length_over_4_bytes_v311(self):
        raw = self.v3()
        raw.send(LENGTH_5_BYTES)
        self.assert_closed_silently(raw, what="5-byte remaining length")

    def test_packet_split_across_reads_is_one_packet(self):
        raw = self.v5()
        packet = publish_packet("trunc/x", b"x" * 100, qos=1, pid=7)
        raw.send(packet[:40])
        raw.send(packet[40:])
        ack = raw.expect(PUBACK)   # nothing came before it: the first half alone was no packet
        self.assertEqual(ack.pid, 7, repr(ack))

    def test_connection_ending_inside_a_packet_is_ended_cleanly(self):
        # A persistent session whose connection dies in the middle of a PUBLISH: the broker
        # drops the partial packet (never delivered) and keeps the session for its return.
        cid = self.unique("trunc")
        topic = "trunc/" + cid
        raw = self.raw_mqtt(5, client_id=cid, clean=False, props={P_SESSION_EXPIRY: 60})
        self.assertEqual(raw.subscribe([(topic, 1)]).codes, [1])
        raw.send(publish_packet(topic, b"partial", qos=1, pid=1)[:-3])
        raw.close()
        again = self.raw_mqtt(5)
        connack = again.connect(cid, clean=False, props={P_SESSION_EXPIRY: 60})
        self.assertEqual(connack.session_present, 1, repr(connack))
        self.raw_mqtt(5, client_id=self.unique("pub")).publish(topic, b"after", qos=1, pid=2)
        first = again.expect(PUBLISH)
        self.assertEqual((first.topic, first.payload), (topic, b"after"), repr(first))

    # -- topic names

    def test_invalid_utf8_topic_v5(self):
        raw = self.v5()
        raw.send(publish_packet(b"bad/\xff\xfe", b"x"))
        # MQTT 5 §1.5.4: ill-formed UTF-8 is a malformed packet (0x81); 0x90 (topic name
        # invalid) names the same fault.
        packets = raw.wait_closed()
        self.assertEqual(len(packets), 1, repr(packets))
        self.assertIn((packets[0].name, packets[0].code), (("DISCONNECT", 0x81),
                                                           ("DISCONNECT", 0x90)), repr(packets))

    def test_utf8_null_character_in_topic_v5(self):
        raw = self.v5()
        raw.send(publish_packet(b"bad/\x00/x", b"x"))
        packets = raw.wait_closed()
        self.assertEqual(len(packets), 1, repr(packets))
        self.assertIn((packets[0].name, packets[0].code), (("DISCONNECT", 0x81),
                                                           ("DISCONNECT", 0x90)), repr(packets))

    def test_invalid_utf8_topic_v311(self):
        raw = self.v3()
        raw.send(publish_packet(b"bad/\xc3\x28", b"x", version=V311))
        self.assert_closed_silently(raw, what="invalid UTF-8 topic")

    def test_wildcards_in_publish_topic_v5(self):
        for topic in ("a/+/b", "a/#", "+", "#"):
            with self.subTest(topic=topic):
                raw = self.v5()
                raw.send(publish_packet(topic, b"x", qos=1, pid=1))
                self.assert_disconnect_then_close(raw, 0x90, what=f"PUBLISH to {topic!r}")

    def test_wildcards_in_publish_topic_v311(self):
        raw = self.v3()
        raw.send(publish_packet("a/+/b", b"x", version=V311))
        self.assert_closed_silently(raw, what="wildcard in a PUBLISH topic")

    def test_empty_topic_without_alias_v5(self):
        raw = self.v5()
        raw.send(publish_packet("", b"x"))
        self.assert_disconnect_then_close(raw, 0x82, what="empty topic, no alias")

    # -- QoS and flag bits

    def test_qos3_v5(self):
        raw = self.v5()
        raw.send(publish_packet("q/x", b"x", qos=3, pid=1))
        self.assert_disconnect_then_close(raw, 0x81, what="QoS 3")

    def test_qos3_v311(self):
        raw = self.v3()
        raw.send(publish_packet("q/x", b"x", qos=3, pid=1, version=V311))
        self.assert_closed_silently(raw, what="QoS 3")

    def test_qos0_with_dup_v5(self):
        raw = self.v5()
        raw.send(publish_packet("q/x", b"x", qos=0, dup=True))   # MQTT 5 §3.3.1.1
        self.assert_disconnect_then_close(raw, 0x81, what="DUP on QoS 0")

    def test_reserved_flag_bits_v5(self):
        cases = {
            "SUBSCRIBE flags 0": subscribe_packet(1, [("a/b", 0)], flags=0x00),
            "PUBREL flags 0": mqtt_packet(PUBREL, 0x00, b"\x00\x01\x00"),
            "PINGREQ flags 1": b"\xc1\x00",
            "DISCONNECT flags 2": b"\xe2\x00",
            "subscription options reserved bits": subscribe_packet(1, [("a/b", 0xC0)]),
        }
        for what, data in cases.items():
            with self.subTest(case=what):
                raw = self.v5()
                raw.send(data)
                self.assert_disconnect_then_close(raw, 0x81, what=what)

    def test_reserved_flag_bits_v311(self):
        raw = self.v3()
        raw.send(subscribe_packet(1, [("a/b", 0)], version=V311, flags=0x00))
        self.assert_closed_silently(raw, what="SUBSCRIBE with flags 0")

    def test_reserved_connect_flag_v5(self):
        raw = self.raw_mqtt()
        raw.send(connect_packet(self.unique(), version=5, flags=0x03))   # bit 0 reserved
        packets = raw.wait_closed()
        self.assertEqual([(p.type, p.code) for p in packets], [(CONNACK, 0x81)], repr(packets))

    def test_reserved_connect_flag_v311(self):
        raw = self.raw_mqtt(V311)
        raw.send(connect_packet(self.unique(), version=V311, flags=0x03))
        self.assert_closed_silently(raw, what="reserved CONNECT flag")

    # -- connection state

    def test_packets_before_connect(self):
        cases = {
            "PUBLISH": publish_packet("a/b", b"x", version=V311),
            "SUBSCRIBE": subscribe_packet(1, [("a/b", 0)], version=V311),
            "PINGREQ": PINGREQ_PACKET,
            "DISCONNECT": b"\xe0\x00",
            "HTTP": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "STOMP": b"CONNECT\naccept-version:1.2\n\n\x00",
        }
        for what, data in cases.items():
            with self.subTest(first=what):
                raw = self.raw_mqtt()
                raw.send(data)
                self.assert_closed_silently(raw, what=f"{what} before CONNECT")

    def test_second_connect_v5(self):
        raw = self.v5()
        raw.send(connect_packet(self.unique(), version=5))
        self.assert_disconnect_then_close(raw, 0x82, what="second CONNECT")

    def test_second_connect_v311(self):
        raw = self.v3()
        raw.send(connect_packet(self.unique(), version=V311))
        self.assert_closed_silently(raw, what="second CONNECT")

    def test_server_only_packet_from_client_v5(self):
        raw = self.v5()
        raw.send(mqtt_packet(CONNACK, 0, b"\x00\x00\x00"))
        self.assert_disconnect_then_close(raw, 0x82, what="CONNACK from a client")

    # -- sizes

    @config_override({"mqtt": {"max_packet_size": 4096}})
    def test_oversize_packet_v5_refused_from_its_header(self):
        raw = self.v5()
        # Only the fixed header and a little of the body: the size is refused without waiting.
        raw.send(b"\x30" + mqtt_varint(10_000) + mqtt_str("big/x") + b"\x00" + b"x" * 100)
        self.assert_disconnect_then_close(raw, 0x95, what="10000-byte PUBLISH, limit 4096")

    @config_override({"mqtt": {"max_packet_size": 4096}})
    def test_oversize_packet_v5_whole(self):
        raw = self.v5()
        connack_limit = 4096
        raw.send(publish_packet("big/x", b"x" * (connack_limit + 10), qos=0))
        packets = raw.wait_closed()
        self.assertIn([(p.name, p.code) for p in packets], ([("DISCONNECT", 0x95)], []),
                      repr(packets))

    @config_override({"mqtt": {"max_packet_size": 4096}})
    def test_packet_at_the_limit_is_accepted(self):
        raw = self.v5()
        header_and_topic = 1 + 2 + len(mqtt_str("big/x")) + 1 + 2   # type, length, topic, props, pid
        payload = b"y" * (4096 - header_and_topic)
        data = publish_packet("big/x", payload, qos=1, pid=9)
        self.assertEqual(len(data), 4096)
        raw.send(data)
        self.assertEqual(raw.expect(4).pid, 9)   # PUBACK

    @config_override({"mqtt": {"max_packet_size": 4096}})
    def test_oversize_packet_v311(self):
        raw = self.v3()
        raw.send(b"\x30" + mqtt_varint(10_000) + mqtt_str("big/x") + b"x" * 100)
        self.assert_closed_silently(raw, what="10000-byte PUBLISH, limit 4096")

    # -- protocol name and level

    def test_unknown_protocol_level_v5_style(self):
        raw = self.raw_mqtt()
        raw.send(connect_packet(self.unique(), version=5, level=6))
        packets = raw.wait_closed()
        self.assertEqual([(p.type, p.code) for p in packets], [(CONNACK, 0x84)], repr(packets))

    def test_unknown_protocol_level_v3_style(self):
        for name, level in (("MQTT", 2), ("MQTT", 3), ("MQIsdp", 4)):
            with self.subTest(name=name, level=level):
                raw = self.raw_mqtt(V311)
                raw.send(connect_packet(self.unique(), version=V311, protocol_name=name,
                                        level=level))
                packets = raw.wait_closed()
                self.assertEqual([(p.type, p.code) for p in packets], [(CONNACK, 0x01)],
                                 repr(packets))

    # -- v5 properties

    def test_property_not_allowed_in_publish_v5(self):
        raw = self.v5()
        raw.send(publish_packet("p/x", b"x", props=[(P_SESSION_EXPIRY, 10)]))
        self.assert_disconnect_then_close(raw, 0x81, what="session expiry in a PUBLISH")

    def test_duplicate_property_v5(self):
        raw = self.v5()
        raw.send(publish_packet("p/x", b"x", props=[(P_CONTENT_TYPE, "a"),
                                                    (P_CONTENT_TYPE, "b")]))
        self.assert_disconnect_then_close(raw, 0x82, what="content type twice")

    def test_property_length_past_the_packet_v5(self):
        body = mqtt_str("p/x") + mqtt_varint(50) + b"\x03\x00\x01a"
        raw = self.v5()
        raw.send(mqtt_packet(3, 0, body))
        self.assert_disconnect_then_close(raw, 0x81, what="property length past the end")

    def test_receive_maximum_zero_in_connect_v5(self):
        raw = self.raw_mqtt()
        raw.send(connect_packet(self.unique(), version=5, props={P_RECEIVE_MAXIMUM: 0}))
        packets = raw.wait_closed()
        self.assertEqual([(p.type, p.code) for p in packets], [(CONNACK, 0x82)], repr(packets))

    def test_maximum_packet_size_zero_in_connect_v5(self):
        raw = self.raw_mqtt()
        raw.send(connect_packet(self.unique(), version=5, props={P_MAXIMUM_PACKET_SIZE: 0}))
        packets = raw.wait_closed()
        self.assertEqual([(p.type, p.code) for p in packets], [(CONNACK, 0x82)], repr(packets))

    # -- topic aliases

    def test_topic_alias_zero_v5(self):
        raw = self.v5()
        raw.send(publish_packet("ta/x", b"x", props={P_TOPIC_ALIAS: 0}))
        self.assert_disconnect_then_close(raw, 0x94, what="topic alias 0")

    @config_override({"mqtt": {"topic_alias_maximum": 5}})
    def test_topic_alias_above_maximum_v5(self):
        raw = self.raw_mqtt()
        connack = raw.connect(self.unique())
        self.assertEqual(connack.props.get(P_TOPIC_ALIAS_MAXIMUM), 5, repr(connack))
        raw.publish("ta/x", b"ok", qos=1, pid=1, props={P_TOPIC_ALIAS: 5})
        raw.send(publish_packet("ta/x", b"x", props={P_TOPIC_ALIAS: 6}))
        self.assert_disconnect_then_close(raw, 0x94, what="topic alias 6 > maximum 5")

    def test_unknown_topic_alias_v5(self):
        raw = self.v5()
        raw.send(publish_packet("", b"x", props={P_TOPIC_ALIAS: 3}))
        self.assert_disconnect_then_close(raw, 0x82, what="alias 3 never defined")

    # -- flow control

    @config_override({"mqtt": {"receive_maximum": 2}})
    def test_receive_maximum_exceeded_v5(self):
        raw = self.raw_mqtt()
        connack = raw.connect(self.unique())
        self.assertEqual(connack.props.get(P_RECEIVE_MAXIMUM), 2, repr(connack))
        # QoS 2 without PUBREL keeps each one unacknowledged on the server (MQTT 5 §4.9).
        raw.send(publish_packet("rm/x", b"1", qos=2, pid=1))
        self.assertEqual(raw.expect(PUBREC).pid, 1)
        raw.send(publish_packet("rm/x", b"2", qos=2, pid=2))
        self.assertEqual(raw.expect(PUBREC).pid, 2)
        raw.send(publish_packet("rm/x", b"3", qos=2, pid=3))
        self.assert_disconnect_then_close(raw, 0x93, what="third QoS 2 PUBLISH, receive max 2")

    @config_override({"mqtt": {"receive_maximum": 2}})
    def test_receive_maximum_window_reopens_after_pubcomp(self):
        raw = self.raw_mqtt()
        raw.connect(self.unique())
        for pid in range(1, 8):   # one at a time: never more than 2 outstanding
            raw.publish("rm/y", b"m", qos=2, pid=pid)
        raw.ping()

    def test_pubrel_for_unknown_packet_id_v5(self):
        raw = self.v5()
        raw.send(ack_packet(PUBREL, 4242))
        pubcomp = raw.expect(PUBCOMP)
        self.assertEqual((pubcomp.pid, pubcomp.code), (4242, 0x92), repr(pubcomp))
        raw.ping()   # still open

    def test_pubrel_for_unknown_packet_id_v311(self):
        raw = self.v3()
        raw.send(ack_packet(PUBREL, 4242))
        self.assertEqual(raw.expect(PUBCOMP).pid, 4242)   # MQTT 3.1.1 §4.3.3
        raw.ping()

    # -- SUBSCRIBE filters (the connection stays open)

    def test_invalid_subscribe_filters_v5(self):
        raw = self.v5()
        suback = raw.subscribe([("a/#/b", 1), ("ok/x", 1), ("a#", 0), ("a/b+", 0),
                                ("+/ok", 2)])
        self.assertEqual(suback.type, SUBACK)
        self.assertEqual(suback.codes, [0x8F, 1, 0x8F, 0x8F, 2], repr(suback))
        raw.ping()
        pub = self.paho()
        pub.publish("ok/x", "still-works", qos=1)
        self.assertEqual(raw.expect(3).payload, b"still-works")

    def test_invalid_subscribe_filter_v311(self):
        raw = self.v3()
        suback = raw.subscribe([("a/#/b", 1), ("ok/x", 1)])
        self.assertEqual(suback.codes, [0x80, 1], repr(suback))
        raw.ping()

    def test_subscribe_without_filters_v5(self):
        raw = self.v5()
        raw.send(subscribe_packet(1, []))
        packets = raw.wait_closed()
        self.assertEqual(len(packets), 1, repr(packets))
        self.assertIn((packets[0].name, packets[0].code), (("DISCONNECT", 0x82),
                                                           ("DISCONNECT", 0x81)), repr(packets))

    def test_many_bad_connections_in_a_row(self):
        for i in range(30):
            raw = self.raw_mqtt()
            raw.send([LENGTH_5_BYTES, b"\x00\x00", PINGREQ_PACKET, b"\xff" * 10][i % 4])
            raw.wait_closed()
            raw.close()


if __name__ == "__main__":
    sbtest.main()
