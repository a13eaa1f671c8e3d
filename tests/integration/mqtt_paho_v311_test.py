# tests/integration/mqtt_paho_v311_test.py — MQTT 3.1.1 with paho-mqtt 1.6: exact counts at QoS
# 0/1/2, ordering per publisher, retained messages, wills on abnormal disconnect, persistent
# sessions across reconnects, client-id takeover, QoS 2 exactly-once. Real binary.

import os
import sys
import threading

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import (MqttTestCase, PUBLISH, PUBREC, PUBREL, PUBCOMP, ack_packet,  # noqa: E402
                    publish_packet)

V311 = 4


class PahoV311Test(MqttTestCase):

    def exact_count(self, qos, total, timeout=30):
        sub = self.paho(version=V311)
        self.assertEqual(sub.subscribe("count/x", qos), [qos])
        pub = self.paho(version=V311)
        infos = [pub.publish("count/x", f"n-{i}", qos=qos, wait=False) for i in range(total)]
        for info in infos:
            pub.wait_published(info, timeout)
        msgs = sub.get_messages(total, timeout)
        self.assertEqual([m.payload.decode() for m in msgs], [f"n-{i}" for i in range(total)],
                         "every message once, in publish order")
        self.assertEqual({m.qos for m in msgs}, {qos})
        self.assertEqual({m.topic for m in msgs}, {"count/x"})
        self.assertFalse(any(m.retain for m in msgs), "live messages must not carry retain")
        # Nothing extra: the next message is one published now.
        pub.publish("count/x", "sentinel", qos=qos)
        self.assert_next_payload(sub, "sentinel", what="a duplicate or extra message")

    def test_qos0_thousand_messages_exact(self):
        self.exact_count(0, 1000)

    def test_qos1_thousand_messages_exact_and_in_order(self):
        self.exact_count(1, 1000)

    def test_qos2_five_hundred_messages_exact_and_in_order(self):
        self.exact_count(2, 500)

    def test_two_publishers_keep_their_own_order(self):
        sub = self.paho(version=V311)
        sub.subscribe("order/+", 1)
        pubs = [self.paho(version=V311) for _ in range(2)]
        errors = []

        def run(index, client):
            try:
                infos = [client.publish(f"order/p{index}", f"{index}-{i}", qos=1, wait=False)
                         for i in range(300)]
                for info in infos:
                    client.wait_published(info, 20)
            except AssertionError as e:
                errors.append(e)

        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(pubs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        msgs = sub.get_messages(600, 20)
        for index in range(2):
            mine = [m.payload.decode() for m in msgs if m.topic == f"order/p{index}"]
            self.assertEqual(mine, [f"{index}-{i}" for i in range(300)], f"publisher {index}")

    def test_delivered_qos_is_min_of_publish_and_granted(self):
        sub = self.paho(version=V311)
        self.assertEqual(sub.subscribe("down/q1", 1), [1])
        self.assertEqual(sub.subscribe("down/q0", 0), [0])
        self.assertEqual(sub.subscribe("down/q2", 2), [2])
        pub = self.paho(version=V311)
        pub.publish("down/q1", "a", qos=2)
        self.assertEqual(self.assert_next_payload(sub, "a").qos, 1)
        pub.publish("down/q0", "b", qos=1)
        self.assertEqual(self.assert_next_payload(sub, "b").qos, 0)
        pub.publish("down/q2", "c", qos=1)
        self.assertEqual(self.assert_next_payload(sub, "c").qos, 1)
        pub.publish("down/q2", "d", qos=2)
        self.assertEqual(self.assert_next_payload(sub, "d").qos, 2)

    def test_binary_payload_and_empty_payload_kept(self):
        sub = self.paho(version=V311)
        sub.subscribe("bin/x", 1)
        pub = self.paho(version=V311)
        body = bytes(range(256)) * 8 + b"\0\0\xff"
        pub.publish("bin/x", body, qos=1)
        pub.publish("bin/x", b"", qos=1)
        self.assertEqual(sub.get_message().payload, body)
        self.assertEqual(sub.get_message().payload, b"")

    def test_large_payload_below_max_packet_size(self):
        sub = self.paho(version=V311)
        sub.subscribe("big/x", 1)
        pub = self.paho(version=V311)
        body = os.urandom(512 * 1024)
        pub.publish("big/x", body, qos=1, timeout=10)
        self.assertEqual(sub.get_message(10).payload, body)

    # -- retained

    def test_retained_message_replaced_cleared_and_flagged(self):
        pub = self.paho(version=V311)
        live = self.paho(version=V311)
        live.subscribe("keep/x", 1)
        pub.publish("keep/x", "r1", qos=1, retain=True)
        pub.publish("keep/x", "r2", qos=1, retain=True)
        # MQTT 3.1.1 §3.3.1.3: a message forwarded to an existing subscription has retain 0.
        for body in ("r1", "r2"):
            msg = self.assert_next_payload(live, body)
            self.assertFalse(msg.retain, "retain flag on a live delivery")

        late = self.paho(version=V311)
        late.subscribe([("keep/x", 1), ("keep/sentinel", 1)])
        msg = self.assert_next_payload(late, "r2", what="only the last retained message")
        self.assertTrue(msg.retain, "retain flag missing on the retained delivery")
        self.assertEqual(msg.qos, 1)
        pub.publish("keep/sentinel", "s", qos=1)
        self.assert_next_payload(late, "s", what="a second retained copy")

        # Subscribing again to the same filter re-sends the retained message (3.1.1 §3.3.1.3).
        late.subscribe("keep/x", 1)
        self.assertTrue(self.assert_next_payload(late, "r2").retain)

        pub.publish("keep/x", b"", qos=1, retain=True)       # clears it
        self.assert_next_payload(live, b"", what="the clearing publish itself is delivered")
        fresh = self.paho(version=V311)
        fresh.subscribe([("keep/x", 1), ("keep/sentinel", 1)])
        pub.publish("keep/sentinel", "s2", qos=1)
        self.assert_next_payload(fresh, "s2", what="a cleared retained message was delivered")

    def test_retained_qos0_message_kept(self):
        pub = self.paho(version=V311)
        pub.publish("keep0/x", "zero", qos=0, retain=True)
        pub.publish("keep0/sync", "sync", qos=1)   # QoS 1 after it: the QoS 0 one was handled
        sub = self.paho(version=V311)
        sub.subscribe("keep0/x", 1)
        msg = self.assert_next_payload(sub, "zero")
        self.assertEqual((msg.qos, msg.retain), (0, True))

    # -- wills

    def test_will_published_when_the_socket_dies(self):
        watcher = self.paho(version=V311)
        watcher.subscribe("will/+", 1)
        doomed = self.paho(version=V311, will={"topic": "will/doomed", "payload": b"gone\0!",
                                               "qos": 1})
        doomed.publish("will/alive", "alive", qos=1)
        self.assert_next_payload(watcher, "alive")
        doomed.abort()   # socket shut without DISCONNECT
        msg = watcher.get_message(10)
        self.assertEqual((msg.topic, msg.payload, msg.qos), ("will/doomed", b"gone\0!", 1))

    def test_no_will_on_normal_disconnect(self):
        watcher = self.paho(version=V311)
        watcher.subscribe("nowill/+", 1)
        polite = self.paho(version=V311, will={"topic": "nowill/polite", "payload": "will",
                                               "qos": 1})
        polite.disconnect()
        self.assertTrue(polite.disconnected.is_set())
        other = self.paho(version=V311)
        other.publish("nowill/sentinel", "sentinel", qos=1)
        self.assert_next_payload(watcher, "sentinel", what="will after a normal DISCONNECT")
        self.assertEqual(watcher.messages_within(0.3), [])

    def test_retained_will(self):
        doomed = self.paho(version=V311, will={"topic": "rwill/x", "payload": "offline",
                                               "qos": 1, "retain": True})
        watcher = self.paho(version=V311)
        watcher.subscribe("rwill/x", 1)
        doomed.abort()
        self.assert_next_payload(watcher, "offline", timeout=10)
        late = self.paho(version=V311)
        late.subscribe("rwill/x", 1)
        self.assertTrue(self.assert_next_payload(late, "offline").retain)

    # -- persistent sessions

    def test_persistent_session_queues_while_offline(self):
        cid = self.unique("persist")
        sub = self.paho(cid, version=V311, clean=False)
        self.assertEqual(sub.subscribe("sess/x", 1), [1])
        sub.disconnect()

        pub = self.paho(version=V311)
        for i in range(20):
            pub.publish("sess/x", f"off-{i}", qos=1)
        pub.publish("sess/x", "off-q2", qos=2)

        again = self.paho(cid, version=V311, clean=False, connect=False)
        present, rc, _ = again.connect()
        self.assertEqual(present, 1, "session present must be 1 for a kept session")
        msgs = again.get_messages(21, 10)
        self.assertEqual([m.payload.decode() for m in msgs],
                         [f"off-{i}" for i in range(20)] + ["off-q2"])
        self.assertEqual([m.qos for m in msgs], [1] * 21, "QoS 2 downgraded to the granted 1")
        # The subscription is still there without SUBSCRIBE.
        pub.publish("sess/x", "online", qos=1)
        self.assert_next_payload(again, "online")
        again.disconnect()

        # clean session 1 discards it: session present 0 and nothing queued.
        clean = self.paho(cid, version=V311, clean=True, connect=False)
        present, _, _ = clean.connect()
        self.assertEqual(present, 0)
        clean.subscribe("sess/sentinel", 1)
        pub.publish("sess/x", "after-clean", qos=1)
        pub.publish("sess/sentinel", "sentinel", qos=1)
        self.assert_next_payload(clean, "sentinel", what="old subscription survived clean=1")

    def test_clean_session_has_no_session_present(self):
        cid = self.unique("clean")
        c = self.paho(cid, version=V311, clean=True, connect=False)
        present, _, _ = c.connect()
        self.assertEqual(present, 0)
        c.disconnect()
        c2 = self.paho(cid, version=V311, clean=False, connect=False)
        present, _, _ = c2.connect()
        self.assertEqual(present, 0, "a clean session must not be kept after disconnect")

    def test_qos0_messages_not_required_but_qos1_queued(self):
        cid = self.unique("mixq")
        sub = self.paho(cid, version=V311, clean=False)
        sub.subscribe("mix/x", 1)
        sub.disconnect()
        pub = self.paho(version=V311)
        pub.publish("mix/x", "q1-a", qos=1)
        pub.publish("mix/x", "q0", qos=0)
        pub.publish("mix/x", "q1-b", qos=1)
        again = self.paho(cid, version=V311, clean=False)
        again.subscribe("mix/sentinel", 1)
        pub.publish("mix/sentinel", "sentinel", qos=1)
        got = []
        while not got or got[-1] != b"sentinel":
            got.append(again.get_message().payload)
        self.assertEqual([g for g in got if g != b"q0"], [b"q1-a", b"q1-b", b"sentinel"])

    # -- takeover

    def test_second_connection_with_same_client_id_takes_over(self):
        cid = self.unique("dup")
        first = self.paho(cid, version=V311)
        first.subscribe("take/x", 1)
        second = self.paho(cid, version=V311)
        first.wait_disconnected(sbtest.WAIT)
        second.subscribe("take/x", 1)
        pub = self.paho(version=V311)
        pub.publish("take/x", "to-second", qos=1)
        self.assert_next_payload(second, "to-second")
        self.assertTrue(second.is_connected())
        self.assertTrue(first.messages.empty(), "the old connection got a message")

    def test_takeover_keeps_persistent_session(self):
        cid = self.unique("dupp")
        first = self.paho(cid, version=V311, clean=False)
        first.subscribe("takep/x", 1)
        second = self.paho(cid, version=V311, clean=False, connect=False)
        present, _, _ = second.connect()
        first.wait_disconnected()
        self.assertEqual(present, 1, "the taken-over session must be kept")
        pub = self.paho(version=V311)
        pub.publish("takep/x", "kept", qos=1)
        self.assert_next_payload(second, "kept")

    # -- QoS 2 exactly once with a retransmitted PUBLISH

    def test_qos2_duplicate_publish_before_pubrel_delivered_once(self):
        sub = self.paho(version=V311)
        sub.subscribe("once/x", 2)
        raw = self.raw_mqtt(version=V311, client_id=self.unique("raw"))
        raw.send(publish_packet("once/x", b"exactly-once", qos=2, pid=7, version=V311))
        self.assertEqual(raw.expect(PUBREC).pid, 7)
        raw.send(publish_packet("once/x", b"exactly-once", qos=2, pid=7, dup=True,
                                version=V311))
        self.assertEqual(raw.expect(PUBREC).pid, 7)
        raw.send(ack_packet(PUBREL, 7))
        self.assertEqual(raw.expect(PUBCOMP).pid, 7)
        # The packet id is free again: a new message with it is a new message.
        raw.publish("once/x", b"second", qos=2, pid=7)
        self.assert_next_payload(sub, "exactly-once")
        self.assert_next_payload(sub, "second", what="the DUP retransmission was delivered")

    def test_raw_subscriber_gets_qos2_flow(self):
        raw = self.raw_mqtt(version=V311, client_id=self.unique("rawsub"))
        suback = raw.subscribe([("flow/x", 2)])
        self.assertEqual(suback.codes, [2])
        pub = self.paho(version=V311)
        pub.publish("flow/x", "q2", qos=2)
        p = raw.expect(PUBLISH)
        self.assertEqual((p.topic, p.payload, p.qos, p.dup), ("flow/x", b"q2", 2, False))
        self.assertNotEqual(p.pid, 0, "QoS 2 PUBLISH with packet id 0")
        raw.ack(p)   # PUBREC, expects PUBREL, sends PUBCOMP
        raw.ping()


if __name__ == "__main__":
    sbtest.main()
