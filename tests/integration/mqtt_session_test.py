# tests/integration/mqtt_session_test.py — MQTT connection and session lifecycle: keep-alive,
# CONNECT timeout, wills on every kind of abnormal end, client-id takeover (v3 and v5), empty
# client ids, offline queue limit, redelivery of unacknowledged messages on resume. Real binary.

import os
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import (MqttTestCase, RawMqtt, config_override, CONNACK, DISCONNECT,  # noqa: E402
                    PUBLISH, PUBREC, PUBREL, PUBCOMP, P_SESSION_EXPIRY, ack_packet,
                    connect_packet, disconnect_packet, publish_packet, subscribe_packet)

V311 = 4


class SessionTest(MqttTestCase):

    def watcher(self, topic_filter):
        w = self.paho()
        w.subscribe(topic_filter, 1)
        return w

    # -- keep-alive

    def test_keep_alive_timeout_closes_and_publishes_will(self):
        w = self.watcher("ka/#")
        raw = self.raw_mqtt(V311, client_id=self.unique("ka"), keepalive=1,
                            will={"topic": "ka/will", "payload": b"timed-out", "qos": 1})
        started = time.monotonic()
        packets = raw.wait_closed(timeout=6)
        elapsed = time.monotonic() - started
        self.assertEqual(packets, [], "v3.1.1: no packet before the close")
        self.assertGreaterEqual(elapsed, 1.0, f"closed after {elapsed:.2f}s: keep-alive is 1 s "
                                              f"and the grace is 1.5 x")
        self.assertLessEqual(elapsed, 3.5, f"closed only after {elapsed:.2f}s (1.5 s expected)")
        self.assert_next_payload(w, "timed-out", what="will after keep-alive timeout")

    def test_keep_alive_timeout_v5(self):
        raw = self.raw_mqtt(5, client_id=self.unique("ka5"), keepalive=1)
        started = time.monotonic()
        packets = raw.wait_closed(timeout=6)
        elapsed = time.monotonic() - started
        self.assertTrue(1.0 <= elapsed <= 3.5, f"closed after {elapsed:.2f}s")
        # MQTT 5 §4.13: the server may send DISCONNECT 0x8D (keep alive timeout) first.
        self.assertIn([(p.type, p.code) for p in packets], ([], [(DISCONNECT, 0x8D)]),
                      repr(packets))

    def test_pings_keep_the_connection_alive(self):
        raw = self.raw_mqtt(V311, client_id=self.unique("ping"), keepalive=1)
        for _ in range(6):            # 3 s, twice the 1.5 s timeout
            raw.ping()
            time.sleep(0.5)           # the client's pace: a ping every half keep-alive
        raw.ping()

    def test_publishes_also_count_as_activity(self):
        raw = self.raw_mqtt(V311, client_id=self.unique("act"), keepalive=1)
        for i in range(6):
            raw.publish("act/x", b"tick", qos=1, pid=i + 1)
            time.sleep(0.5)           # the client's pace
        raw.ping()

    def test_keep_alive_zero_disables_the_timeout(self):
        raw = self.raw_mqtt(V311, client_id=self.unique("ka0"), keepalive=0)
        self.assertEqual(raw.packets_within(2.5), [], "server sent something unprompted")
        raw.ping()

    @config_override({"mqtt": {"connect_timeout_ms": 500}})
    def test_connection_without_connect_is_closed_after_connect_timeout(self):
        raw = self.raw_mqtt(V311)
        started = time.monotonic()
        packets = raw.wait_closed(timeout=5)
        elapsed = time.monotonic() - started
        self.assertEqual(packets, [])
        self.assertGreaterEqual(elapsed, 0.3, f"closed after {elapsed:.2f}s")
        self.assertLessEqual(elapsed, 3.0, f"closed after {elapsed:.2f}s (500 ms configured)")

    # -- wills

    def test_will_on_socket_close_v311(self):
        w = self.watcher("wc/#")
        raw = self.raw_mqtt(V311, client_id=self.unique("wc"),
                            will={"topic": "wc/will", "payload": b"\x00bin\xff", "qos": 2})
        raw.close()
        msg = self.assert_next_payload(w, b"\x00bin\xff", timeout=10)
        self.assertEqual((msg.topic, msg.qos), ("wc/will", 1))   # granted QoS 1

    def test_will_on_protocol_error(self):
        # MQTT 3.1.1 §3.1.2.5: the will is published when the server closes the connection
        # because of a protocol error.
        w = self.watcher("wpe/#")
        raw = self.raw_mqtt(V311, client_id=self.unique("wpe"),
                            will={"topic": "wpe/will", "payload": b"bad", "qos": 1})
        raw.send(publish_packet("wpe/x", b"q3", qos=3, pid=1, version=V311))
        self.assertEqual(raw.wait_closed(), [])
        self.assert_next_payload(w, "bad", timeout=10)

    def test_will_on_protocol_error_v5(self):
        w = self.watcher("wpe5/#")
        raw = self.raw_mqtt(5, client_id=self.unique("wpe5"),
                            will={"topic": "wpe5/will", "payload": b"bad5", "qos": 1})
        raw.send(publish_packet("wpe5/x", b"q3", qos=3, pid=1))
        self.assert_disconnect_then_close(raw, 0x81, what="QoS 3")
        self.assert_next_payload(w, "bad5", timeout=10)

    def test_will_with_v31_client(self):
        w = self.watcher("w31/#")
        doomed = self.paho(version=3, will={"topic": "w31/will", "payload": "v31", "qos": 1})
        doomed.abort()
        self.assert_next_payload(w, "v31", timeout=10)

    # -- takeover

    def test_takeover_v5_sends_disconnect_8e_to_the_old_connection(self):
        cid = self.unique("take5")
        old = self.raw_mqtt(5, client_id=cid)
        new = self.raw_mqtt(5, client_id=cid)
        self.assert_disconnect_then_close(old, 0x8E, what="old connection on takeover")
        new.ping()

    def test_takeover_v311_closes_the_old_connection(self):
        cid = self.unique("take3")
        old = self.raw_mqtt(V311, client_id=cid)
        new = self.raw_mqtt(V311, client_id=cid)
        self.assertEqual(old.wait_closed(), [], "v3.1.1 has no DISCONNECT from the server")
        new.ping()

    def test_takeover_across_versions(self):
        cid = self.unique("takex")
        old = self.raw_mqtt(V311, client_id=cid)
        new = self.raw_mqtt(5, client_id=cid)
        self.assertEqual(old.wait_closed(), [])
        new.ping()

    def test_repeated_takeovers_leave_one_live_connection(self):
        cid = self.unique("taken")
        conns = [self.raw_mqtt(V311, client_id=cid) for _ in range(5)]
        for old in conns[:-1]:
            old.wait_closed()
        conns[-1].ping()

    # -- client identifiers

    def test_empty_client_id_v311_clean_session_is_accepted(self):
        raw = self.raw_mqtt(V311)
        connack = raw.connect("", version=V311, clean=True)
        self.assertEqual((connack.code, connack.session_present), (0, 0))
        raw.subscribe([("anon/x", 1)])
        pub = self.paho()
        pub.publish("anon/x", "hi", qos=1)
        self.assertEqual(raw.expect(PUBLISH).payload, b"hi")

    def test_two_empty_client_ids_do_not_take_each_other_over(self):
        a = self.raw_mqtt(V311)
        a.connect("", version=V311, clean=True)
        b = self.raw_mqtt(V311)
        b.connect("", version=V311, clean=True)
        a.ping()
        b.ping()

    def test_empty_client_id_v311_persistent_is_rejected_with_code_2(self):
        raw = self.raw_mqtt(V311)
        connack = raw.connect("", version=V311, clean=False, expect_code=None)
        self.assertEqual(connack.code, 2, f"{connack!r}: 2 = identifier rejected")
        self.assertEqual(connack.session_present, 0)
        self.assertEqual(raw.wait_closed(), [])

    # -- persistent sessions

    @config_override({"mqtt": {"max_queued_messages": 10}})
    def test_offline_queue_is_bounded_by_max_queued_messages(self):
        cid = self.unique("bound")
        sub = self.paho(cid, version=V311, clean=False)
        sub.subscribe("bound/x", 1)
        sub.disconnect()
        pub = self.paho()
        for i in range(25):
            pub.publish("bound/x", f"b-{i:02d}", qos=1)
        again = self.paho(cid, version=V311, clean=False, connect=False)
        present, _, _ = again.connect()
        self.assertEqual(present, 1)
        again.subscribe("bound/sentinel", 1)
        pub.publish("bound/sentinel", "sentinel", qos=1)
        got = []
        while True:
            payload = again.get_message().payload.decode()
            if payload == "sentinel":
                break
            got.append(payload)
        self.assertEqual(len(got), 10, f"queued {len(got)} messages, limit 10: {got}")
        self.assertEqual(got, sorted(got), "queued messages out of order")

    def test_unacknowledged_qos1_is_resent_with_dup_on_resume(self):
        cid = self.unique("dup1")
        raw = self.raw_mqtt(V311, client_id=cid, clean=False)
        raw.subscribe([("redo/x", 1)])
        pub = self.paho()
        pub.publish("redo/x", "unacked", qos=1)
        first = raw.expect(PUBLISH)
        self.assertEqual((first.payload, first.dup), (b"unacked", False))
        raw.close()                                  # no PUBACK

        again = RawMqtt(self.mqtt_port, version=V311)
        self.addCleanup(again.close)
        connack = again.connect(cid, version=V311, clean=False)
        self.assertEqual(connack.session_present, 1)
        redo = again.expect(PUBLISH)
        self.assertEqual((redo.payload, redo.qos), (b"unacked", 1))
        self.assertTrue(redo.dup, f"resent PUBLISH without DUP: {redo!r}")
        again.ack(redo)
        pub.publish("redo/x", "next", qos=1)
        nxt = again.expect(PUBLISH)
        self.assertEqual((nxt.payload, nxt.dup), (b"next", False))
        again.ack(nxt)

    def test_qos2_pubrel_is_resent_on_resume(self):
        cid = self.unique("dup2")
        raw = self.raw_mqtt(V311, client_id=cid, clean=False)
        raw.subscribe([("redo2/x", 2)])
        pub = self.paho()
        pub.publish("redo2/x", "q2", qos=2)
        p = raw.expect(PUBLISH)
        raw.send(ack_packet(PUBREC, p.pid))
        self.assertEqual(raw.expect(PUBREL).pid, p.pid)
        raw.close()                                  # no PUBCOMP

        again = RawMqtt(self.mqtt_port, version=V311)
        self.addCleanup(again.close)
        self.assertEqual(again.connect(cid, version=V311, clean=False).session_present, 1)
        # MQTT 3.1.1 §4.4: the PUBREL is resent, not the PUBLISH.
        pkt = again.read_packet()
        self.assertEqual((pkt.type, pkt.pid), (PUBREL, p.pid), repr(pkt))
        again.send(ack_packet(PUBCOMP, p.pid))
        again.ping()

    def offline_session_with_two_queued(self, version, cid, topic):
        """A persistent session subscribed to `topic` at QoS 1, offline, with q-1 and q-2
        queued for it."""
        kw = {"props": {P_SESSION_EXPIRY: 60}} if version == 5 else {}
        raw = self.raw_mqtt(version, client_id=cid, clean=False, **kw)
        raw.subscribe([(topic, 1)])
        raw.send(disconnect_packet())
        self.assertEqual(raw.wait_closed(), [])
        pub = self.paho()
        pub.publish(topic, "q-1", qos=1)
        pub.publish(topic, "q-2", qos=1)
        return kw

    def test_messages_queued_offline_are_first_deliveries_without_dup(self):
        # MQTT 3.1.1 §3.3.1.1 / MQTT 5 §3.3.1.1: DUP is 1 only on a re-delivery; these two were
        # never sent to any connection.
        cid = self.unique("nodup")
        self.offline_session_with_two_queued(V311, cid, "nodup/x")
        again = RawMqtt(self.mqtt_port, version=V311)
        self.addCleanup(again.close)
        self.assertEqual(again.connect(cid, version=V311, clean=False).session_present, 1)
        got = [again.expect(PUBLISH), again.expect(PUBLISH)]
        self.assertEqual([p.payload for p in got], [b"q-1", b"q-2"])
        self.assertEqual([p.dup for p in got], [False, False], f"packets: {got}")
        for p in got:
            again.ack(p)

    def test_resubscribe_on_resume_keeps_the_queued_messages(self):
        # What mosquitto_sub -c does: CONNECT (clean 0) then SUBSCRIBE to the same filter at
        # once. MQTT 5 §3.8.4: the new subscription replaces the old one, but "the flow of
        # publications MUST NOT be interrupted" [MQTT-3.8.4-3].
        for version in (V311, 5):
            with self.subTest(version=version):
                cid = self.unique("resub")
                topic = f"resub/v{version}"
                kw = self.offline_session_with_two_queued(version, cid, topic)
                again = RawMqtt(self.mqtt_port, version=version)
                self.addCleanup(again.close)
                props = kw.get("props")
                again.send(connect_packet(cid, version=version, clean=False, props=props)
                           + subscribe_packet(1, [(topic, 1)], version=version))
                self.assertEqual(again.expect(CONNACK).session_present, 1)
                got = []
                deadline = time.monotonic() + sbtest.WAIT
                while len(got) < 2 and time.monotonic() < deadline:
                    try:
                        p = again.read_packet(max(0.0, deadline - time.monotonic()))
                    except TimeoutError:
                        break
                    if p.type == PUBLISH:
                        got.append(p.payload)
                        again.ack(p)
                self.assertEqual(got, [b"q-1", b"q-2"],
                                 "queued messages lost when the resumed session re-subscribed")

    def test_session_survives_many_reconnects(self):
        cid = self.unique("many")
        pub = self.paho()
        sub = self.paho(cid, version=V311, clean=False)
        sub.subscribe("many/x", 1)
        sub.disconnect()
        for round_ in range(5):
            pub.publish("many/x", f"r{round_}", qos=1)
            c = self.paho(cid, version=V311, clean=False, connect=False)
            present, _, _ = c.connect()
            self.assertEqual(present, 1)
            self.assert_next_payload(c, f"r{round_}")
            c.disconnect()


if __name__ == "__main__":
    sbtest.main()
