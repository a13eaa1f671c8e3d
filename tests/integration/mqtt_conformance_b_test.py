# tests/integration/mqtt_conformance_b_test.py — MQTT behaviours clients expect from a broker
# written against Mosquitto (issue 16): topics of the full 65,535 bytes, CONNACK properties (as
# mosquitto 2.0 sends them, compared with a real mosquitto when one is installed), message
# expiry, client PUBLISHes to `$SYS`/`$share`, malformed 3.1.1 CONNECTs, QoS 2 retransmission,
# overlapping subscriptions of one client. Raw sockets (exact packets), paho and mosquitto_pub.
# Real binary.

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import (MqttTestCase, RawMqtt, BrokerSeries, config_override, free_port,  # noqa: E402
                    CONNACK, PUBLISH, UNSUBACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK,
                    ack_packet, connect_packet, disconnect_packet, publish_packet,
                    subscribe_packet, unsubscribe_packet,
                    P_ASSIGNED_CLIENT_ID, P_MAXIMUM_PACKET_SIZE, P_MAXIMUM_QOS,
                    P_MESSAGE_EXPIRY, P_RECEIVE_MAXIMUM, P_RETAIN_AVAILABLE,
                    P_SERVER_KEEP_ALIVE, P_SESSION_EXPIRY, P_SHARED_AVAILABLE,
                    P_SUBSCRIPTION_ID, P_SUB_ID_AVAILABLE, P_TOPIC_ALIAS_MAXIMUM,
                    P_WILDCARD_AVAILABLE)

V311 = 4
QUIET = 0.5     # how long "nothing more arrives" is watched for


def long_topic(prefix, size):
    """A topic name of exactly `size` bytes starting with `prefix`."""
    return prefix + "x" * (size - len(prefix))


def publishes(packets):
    return [p for p in packets if p.type == PUBLISH]


def subscribe_and_collect(client, filters, pid=1, props=None, quiet=QUIET):
    """SUBSCRIBE; returns (SUBACK, every PUBLISH around it within `quiet` after it): the order
    of SUBACK and the retained messages is not what these tests are about."""
    client.send(subscribe_packet(pid, filters, props, client.version))
    suback, before = client.read_until(lambda p: p.type == SUBACK)
    return suback, publishes(before) + publishes(client.packets_within(quiet))


def publish_and_collect(client, topic, payload, qos, pid=1, retain=False, props=None):
    """PUBLISH with its handshake; returns the PUBLISHes the client got back on the way."""
    client.send(publish_packet(topic, payload, qos, pid, retain, props=props, version=client.version))
    if qos == 0:
        return []
    ack, before = client.read_until(lambda p: p.type in (PUBACK, PUBREC))
    got = publishes(before)
    if qos == 2:
        client.send(ack_packet(PUBREL, pid))
        _, more = client.read_until(lambda p: p.type == PUBCOMP)
        got += publishes(more)
    return got


def short(packet):
    """A packet for a failure message, its topic cut (65,535-byte topics)."""
    if packet.type != PUBLISH:
        return repr(packet)
    return (f"PUBLISH(topic={packet.topic[:40]!r}... ({len(packet.topic)} bytes) qos={packet.qos} "
            f"retain={int(packet.retain)} payload={packet.payload[:40]!r})")


class LongTopicTest(MqttTestCase):
    """(a) MQTT strings are up to 65,535 bytes: topic names and filters of that size work."""

    def check_round_trip(self, version):
        topic = long_topic(f"long{version}/", 65535)
        sub = self.raw_mqtt(version, client_id=self.unique("ls"))
        self.assertEqual(sub.subscribe([(topic, 1)]).codes, [1])
        wild = self.raw_mqtt(version, client_id=self.unique("lw"))
        wild_filter = long_topic(f"long{version}/", 65533) + "/#"
        self.assertEqual(len(wild_filter), 65535)
        self.assertEqual(wild.subscribe([(f"long{version}/+", 1), (wild_filter, 1)]).codes, [1, 1])
        pub = self.raw_mqtt(version, client_id=self.unique("lp"))
        self.assertEqual(pub.publish(topic, b"big", qos=1, retain=True).code, 0)
        got = sub.expect(PUBLISH)
        self.assertTrue(got.topic == topic and (got.payload, got.retain) == (b"big", False), short(got))
        sub.ack(got)
        got = wild.expect(PUBLISH)
        self.assertTrue(got.topic == topic and got.payload == b"big", short(got))
        # Retained: a new subscriber gets it, with the retain flag.
        late = self.raw_mqtt(version, client_id=self.unique("ll"))
        suback, got = subscribe_and_collect(late, [(topic, 1)])
        self.assertEqual(suback.codes, [1])
        self.assertEqual(len(got), 1, [short(g) for g in got])
        self.assertTrue(got[0].topic == topic and (got[0].payload, got[0].retain) == (b"big", True),
                        short(got[0]))

    def test_65535_byte_topic_v5(self):
        self.check_round_trip(5)

    def test_65535_byte_topic_v311(self):
        self.check_round_trip(V311)

    def test_65535_byte_topic_retained_and_session_survive_a_restart(self):
        topic = long_topic("keep/", 65535)
        with BrokerSeries(mqtt=True, prefix="sbmqttlong-") as brokers:
            brokers.extra = brokers.journal()
            b = brokers.start()
            # A persistent session whose filter is 65,535 bytes (its durable name is longer).
            s = RawMqtt(b.mqtt_port, 5)
            s.connect("long-session", clean=False, props=[(P_SESSION_EXPIRY, 600)])
            self.assertEqual(s.subscribe([(topic, 1)]).codes, [1])
            s.send(disconnect_packet())
            s.wait_closed()
            s.close()
            p = RawMqtt(b.mqtt_port, 5)
            p.connect("long-pub")
            self.assertEqual(p.publish(topic, b"kept", qos=1, retain=True).code, 0)
            self.assertEqual(p.publish(topic, b"queued", qos=1).code, 0)
            p.close()
            b.kill()
            b = brokers.start()
            s = RawMqtt(b.mqtt_port, 5)
            self.assertEqual(s.connect("long-session", clean=False,
                                       props=[(P_SESSION_EXPIRY, 600)]).session_present, 1)
            got = [s.expect(PUBLISH) for _ in range(2)]
            self.assertTrue(all(g.topic == topic for g in got), [short(g) for g in got])
            self.assertEqual([g.payload for g in got], [b"kept", b"queued"])
            for g in got:
                s.ack(g)
            fresh = RawMqtt(b.mqtt_port, 5)
            fresh.connect("long-fresh")
            suback, got = subscribe_and_collect(fresh, [(topic, 0)])
            self.assertEqual(suback.codes, [0])
            self.assertEqual(len(got), 1, [short(g) for g in got])
            self.assertTrue(got[0].topic == topic and (got[0].payload, got[0].retain) == (b"kept", True),
                            short(got[0]))
            for c in (s, fresh):
                c.close()
            b.stop()


# The CONNACK properties mosquitto 2.0 sends with the limits configured like ours: every limit,
# and a capability only when it is missing (absent means available, MQTT 5 §3.2.2.3).
MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1024
max_topic_alias 64
max_packet_size 1048576
{extra}
"""


class ConnackTest(MqttTestCase):
    """(b) Assigned client identifier and the CONNACK properties mosquitto sends."""

    def connack(self, port, client_id, keepalive, props=None):
        raw = RawMqtt(port, 5)
        self.addCleanup(raw.close)
        return raw.connect(client_id, keepalive=keepalive, props=props)

    def test_empty_client_id_gets_an_assigned_identifier_and_mosquittos_properties(self):
        c = self.connack(self.mqtt_port, "", 60)
        props = dict(c.props.pairs)
        assigned = props.pop(P_ASSIGNED_CLIENT_ID, None)
        self.assertTrue(assigned, repr(c))
        self.assertEqual(props, {P_RECEIVE_MAXIMUM: 1024, P_TOPIC_ALIAS_MAXIMUM: 64,
                                 P_MAXIMUM_PACKET_SIZE: 1 << 20}, repr(c))
        # The assigned identifier is the session's: a client naming it is not assigned another.
        again = self.connack(self.mqtt_port, assigned, 60)
        self.assertNotIn(P_ASSIGNED_CLIENT_ID, again.props, repr(again))

    def test_keep_alive_0_gets_the_maximum_as_server_keep_alive(self):
        c = self.connack(self.mqtt_port, self.unique(), 0)
        self.assertEqual(c.props.get(P_SERVER_KEEP_ALIVE), 65535, repr(c))
        c = self.connack(self.mqtt_port, self.unique(), 60)
        self.assertNotIn(P_SERVER_KEEP_ALIVE, c.props, repr(c))

    @config_override({"mqtt": {"max_session_expiry_s": 50}})
    def test_session_expiry_is_sent_only_when_capped(self):
        c = self.connack(self.mqtt_port, self.unique(), 60, [(P_SESSION_EXPIRY, 100)])
        self.assertEqual(c.props.get(P_SESSION_EXPIRY), 50, repr(c))
        c = self.connack(self.mqtt_port, self.unique(), 60, [(P_SESSION_EXPIRY, 40)])
        self.assertNotIn(P_SESSION_EXPIRY, c.props, repr(c))

    @config_override({"mqtt": {"retain_available": False, "topic_alias_maximum": 0}})
    def test_missing_capabilities_are_announced(self):
        c = self.connack(self.mqtt_port, self.unique(), 60)
        self.assertEqual(c.props.get(P_RETAIN_AVAILABLE), 0, repr(c))
        self.assertNotIn(P_TOPIC_ALIAS_MAXIMUM, c.props, repr(c))
        for always in (P_WILDCARD_AVAILABLE, P_SUB_ID_AVAILABLE, P_SHARED_AVAILABLE, P_MAXIMUM_QOS):
            self.assertNotIn(always, c.props, repr(c))

    def mosquitto(self, extra=""):
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                            if os.path.exists("/usr/sbin/mosquitto") else None)
        if not exe:
            self.skipTest("mosquitto is not installed")
        workdir = tempfile.mkdtemp(prefix="sbmosq-")
        self.addCleanup(shutil.rmtree, workdir, True)
        port = free_port()
        conf = os.path.join(workdir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(MOSQUITTO_CONF.format(port=port, extra=extra))
        log = open(os.path.join(workdir, "mosquitto.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen([exe, "-c", conf], cwd=workdir, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def stop():
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.addCleanup(stop)
        deadline = time.monotonic() + sbtest.STARTUP_TIMEOUT
        while True:
            try:
                RawMqtt(port, 5).close()
                return port
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.fail("mosquitto did not start")
                time.sleep(0.05)   # polling with a deadline: there is no event to await

    def shape(self, connack):
        """Property ids and values, the assigned identifier's value left out."""
        return {k: (bool(v) if k == P_ASSIGNED_CLIENT_ID else v) for k, v in connack.props.pairs}

    def test_connack_properties_match_mosquitto(self):
        theirs = self.mosquitto()
        for client_id, keepalive, props in (("", 60, None), ("", 0, None), ("named-1", 30, None),
                                            ("named-2", 0, None),
                                            ("named-3", 60, [(P_SESSION_EXPIRY, 100)]),
                                            ("", 60, [(P_SESSION_EXPIRY, 0xFFFFFFFF)])):
            with self.subTest(client_id=client_id, keepalive=keepalive, props=props):
                ours = self.connack(self.mqtt_port, client_id, keepalive, props)
                ref = self.connack(theirs, client_id, keepalive, props)
                self.assertEqual((ours.code, ours.session_present), (ref.code, ref.session_present))
                self.assertEqual(self.shape(ours), self.shape(ref), f"ours {ours!r}, mosquitto {ref!r}")

    @config_override({"mqtt": {"retain_available": False}})
    def test_connack_without_retain_matches_mosquitto(self):
        theirs = self.mosquitto("retain_available false")
        ours = self.connack(self.mqtt_port, "nr", 60)
        ref = self.connack(theirs, "nr", 60)
        self.assertEqual(self.shape(ours), self.shape(ref), f"ours {ours!r}, mosquitto {ref!r}")


class ExpiryTest(MqttTestCase):
    """(c) Message expiry: the remaining interval is forwarded; expired messages are not."""

    def test_live_delivery_keeps_the_interval(self):
        sub = self.raw_mqtt(5, client_id=self.unique("es"))
        sub.subscribe([("exp/live", 1)])
        pub = self.raw_mqtt(5, client_id=self.unique("ep"))
        pub.publish("exp/live", b"l", qos=1, props=[(P_MESSAGE_EXPIRY, 10)])
        got = sub.expect(PUBLISH)
        self.assertEqual((got.payload, got.props.get(P_MESSAGE_EXPIRY)), (b"l", 10), repr(got))

    def test_the_time_spent_in_the_broker_is_taken_off(self):
        # 10 s, of which a few tenths are spent queued: the remaining interval is still 10 to
        # the nearest second (not cut to 9), and never more than what is left.
        cid = self.unique("eq")
        q = self.raw_mqtt(5)
        q.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 300)])
        q.subscribe([("exp/held", 1)])
        q.send(disconnect_packet())
        q.wait_closed()
        pub = self.raw_mqtt(5, client_id=self.unique("ep"))
        pub.publish("exp/held", b"held", qos=1, props=[(P_MESSAGE_EXPIRY, 10)])
        published = time.monotonic()
        time.sleep(0.3)   # the time the message spends queued is what is tested
        q = self.raw_mqtt(5)
        q.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 300)])
        got = q.expect(PUBLISH)
        waited = time.monotonic() - published
        self.assertLess(waited, 1.4, "too slow a machine for this check")
        self.assertEqual(got.payload, b"held")
        # The broker held it between 0.3 s and `waited`.
        self.assertIn(got.props.get(P_MESSAGE_EXPIRY), range(round(10 - waited), 11), repr(got))

    def test_retained_expired_is_not_sent_and_the_rest_carries_what_is_left(self):
        pub = self.raw_mqtt(5, client_id=self.unique("ep"))
        published = time.monotonic()
        pub.publish("exp/ret/short", b"short", qos=1, retain=True, props=[(P_MESSAGE_EXPIRY, 1)])
        pub.publish("exp/ret/long", b"long", qos=1, retain=True, props=[(P_MESSAGE_EXPIRY, 30)])
        pub.publish("exp/ret/none", b"none", qos=1, retain=True)
        time.sleep(1.6)   # the time the messages spend in the broker is what is tested
        sub = self.raw_mqtt(5, client_id=self.unique("es"))
        _, got = subscribe_and_collect(sub, [("exp/ret/#", 1)])
        waited = time.monotonic() - published
        self.assertEqual(sorted(p.payload for p in got), [b"long", b"none"], repr(got))
        by = {p.payload: p for p in got}
        self.assertNotIn(P_MESSAGE_EXPIRY, by[b"none"].props)
        left = by[b"long"].props.get(P_MESSAGE_EXPIRY)
        self.assertTrue(30 - waited - 1 <= left <= 30 - 1, f"{left} s left after {waited:.1f} s")

    def test_offline_session_queue_drops_expired_and_forwards_what_is_left(self):
        cid = self.unique("eq")
        q = self.raw_mqtt(5)
        q.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 300)])
        q.subscribe([("exp/q", 1)])
        q.send(disconnect_packet())
        q.wait_closed()
        pub = self.raw_mqtt(5, client_id=self.unique("ep"))
        published = time.monotonic()
        pub.publish("exp/q", b"short", qos=1, props=[(P_MESSAGE_EXPIRY, 1)])
        pub.publish("exp/q", b"long", qos=1, props=[(P_MESSAGE_EXPIRY, 20)])
        pub.publish("exp/q", b"none", qos=1)
        time.sleep(1.6)   # the time the messages spend queued is what is tested
        q = self.raw_mqtt(5)
        self.assertEqual(q.connect(cid, clean=False,
                                   props=[(P_SESSION_EXPIRY, 300)]).session_present, 1)
        got = publishes(q.packets_within(QUIET))
        waited = time.monotonic() - published
        self.assertEqual([p.payload for p in got], [b"long", b"none"], repr(got))
        left = got[0].props.get(P_MESSAGE_EXPIRY)
        self.assertTrue(20 - waited - 1 <= left <= 20 - 1, f"{left} s left after {waited:.1f} s")
        self.assertNotIn(P_MESSAGE_EXPIRY, got[1].props)


class ServerTopicTest(MqttTestCase):
    """(d) Clients cannot publish into `$SYS` or to a `$share` name."""

    def watchers(self):
        w = self.raw_mqtt(5, client_id=self.unique("w"))
        self.assertEqual(w.subscribe([("$SYS/#", 2)]).codes, [2])
        stomp = self.stomp(auto_decode=False)
        stomp.subscribe("/topic/$share.>", "s1")
        return w, stomp

    def assert_nothing_delivered(self, w, stomp, pub):
        # The publisher's next message on an ordinary topic comes first: nothing came before it.
        marker = "marker/" + self.unique()
        self.assertEqual(w.subscribe([(marker, 1)], pid=9).codes, [1])
        stomp.subscribe("/topic/" + marker.replace("/", "."), "s2")
        pub.publish(marker, b"marker", qos=1, pid=99)
        got = w.expect(PUBLISH)
        self.assertEqual((got.topic, got.payload), (marker, b"marker"))
        frame = stomp.get_message()
        self.assertEqual(frame.body, b"marker", repr(frame))

    def test_v5_publish_to_server_topics_is_refused_with_0x87(self):
        w, stomp = self.watchers()
        pub = self.raw_mqtt(5, client_id=self.unique("p"))
        self.assertEqual(pub.publish("$SYS/broker/version", b"fake", qos=1).code, 0x87)
        pub.send(publish_packet("$SYS/broker/x", b"fake", qos=2, pid=2))
        self.assertEqual(pub.expect(PUBREC).code, 0x87)
        pub.send(publish_packet("$SYS/broker/y", b"fake", qos=0))
        self.assertEqual(pub.publish("$share/g/t", b"fake", qos=1, pid=3).code, 0x87)
        self.assertEqual(pub.publish("$SYSTEM", b"fake", qos=1, pid=4).code, 0x87)
        self.assert_nothing_delivered(w, stomp, pub)

    def test_v311_publish_to_server_topics_is_dropped_with_an_ordinary_ack(self):
        w, stomp = self.watchers()
        pub = self.raw_mqtt(V311, client_id=self.unique("p"))
        self.assertEqual(pub.publish("$SYS/broker/version", b"fake", qos=1).code, 0)
        # QoS 2: the whole flow completes as usual.
        self.assertEqual(pub.publish("$SYS/broker/x", b"fake", qos=2, pid=2).type, PUBCOMP)
        pub.send(publish_packet("$SYS/broker/y", b"fake", qos=0, version=V311))
        self.assertEqual(pub.publish("$share/g/t", b"fake", qos=1, pid=3).code, 0)
        self.assert_nothing_delivered(w, stomp, pub)

    def test_mosquitto_pub_to_sys_exits_0_and_nothing_is_delivered(self):
        exe = shutil.which("mosquitto_pub")
        if not exe:
            self.skipTest("mosquitto_pub is not installed")
        w, stomp = self.watchers()
        for version in ("mqttv311", "mqttv5"):
            r = subprocess.run([exe, "-h", sbtest.HOST, "-p", str(self.mqtt_port), "-V", version,
                                "-q", "1", "-t", "$SYS/broker/uptime", "-m", "fake"],
                               capture_output=True, timeout=10)
            # v5: the 0x87 is reported by mosquitto_pub; v3.1.1 sees a normal PUBACK.
            if version == "mqttv311":
                self.assertEqual(r.returncode, 0, r.stderr)
        pub = self.raw_mqtt(5, client_id=self.unique("p"))
        self.assert_nothing_delivered(w, stomp, pub)

    def test_will_on_a_server_topic_is_never_published(self):
        w, stomp = self.watchers()
        bad = self.raw_mqtt(5)
        bad.connect(self.unique("bw"), will={"topic": "$SYS/broker/clients", "payload": b"x"})
        bad.close()   # abnormal end: the will would be published now
        # An ordinary will of a client closed after it is the next thing the watcher gets.
        marker = "marker/" + self.unique()
        self.assertEqual(w.subscribe([(marker, 1)], pid=9).codes, [1])
        good = self.raw_mqtt(5)
        good.connect(self.unique("gw"), will={"topic": marker, "payload": b"will"})
        good.close()
        got = w.expect(PUBLISH)
        self.assertEqual((got.topic, got.payload), (marker, b"will"))


class MalformedConnectTest(MqttTestCase):
    """(e) A malformed 3.1.1 CONNECT is closed without a CONNACK; QoS 2 retransmissions."""

    CASES = {
        "will QoS without the will flag": dict(flags=0x02 | 0x08),
        "will retain without the will flag": dict(flags=0x02 | 0x20),
        "will QoS 3": dict(will={"topic": "w/t", "qos": 3}),
        "empty will topic": dict(will={"topic": ""}),
        "wildcard in the will topic": dict(will={"topic": "w/+"}),
        "invalid UTF-8 in the client id": dict(client_id=b"id\xff"),
        "U+0000 in the client id": dict(client_id=b"id\x00x"),
        "invalid UTF-8 in the will topic": dict(will={"topic": b"w/\xc0\x80"}),
        "invalid UTF-8 in the user name": dict(username=b"u\xed\xa0\x80"),
    }

    def test_malformed_v311_connect_is_closed_without_connack(self):
        for what, kw in self.CASES.items():
            with self.subTest(what):
                raw = self.raw_mqtt(V311)
                kw = dict(kw)
                client_id = kw.pop("client_id", self.unique("m"))
                raw.send(connect_packet(client_id, version=V311, **kw))
                self.assert_closed_silently(raw, what=what)
        # The broker is fine: a well-formed CONNECT still gets its CONNACK.
        self.raw_mqtt(V311, client_id=self.unique("ok"))

    def check_qos2_retransmission(self, version):
        topic = "dup/" + self.unique()
        sub = self.raw_mqtt(version, client_id=self.unique("s"))
        sub.subscribe([(topic, 2)])
        pub = self.raw_mqtt(version, client_id=self.unique("p"))
        pub.send(publish_packet(topic, b"once", qos=2, pid=7, version=version))
        self.assertEqual((pub.expect(PUBREC).pid), 7)
        pub.send(publish_packet(topic, b"once", qos=2, pid=7, dup=True, version=version))
        rec = pub.expect(PUBREC)
        self.assertEqual((rec.pid, rec.code), (7, 0))
        pub.send(ack_packet(PUBREL, 7))
        self.assertEqual(pub.expect(PUBCOMP).pid, 7)
        # The packet id is free again: the same id now carries a new message.
        pub.publish(topic, b"twice", qos=2, pid=7)
        got = [sub.expect(PUBLISH) for _ in range(2)]
        self.assertEqual([g.payload for g in got], [b"once", b"twice"], repr(got))
        for g in got:
            sub.ack(g)
        self.assertEqual(publishes(sub.packets_within(QUIET)), [])

    def test_qos2_retransmission_is_not_delivered_twice_v311(self):
        self.check_qos2_retransmission(V311)

    def test_qos2_retransmission_is_not_delivered_twice_v5(self):
        self.check_qos2_retransmission(5)


class OverlapTest(MqttTestCase):
    """(f) MQTT 5 §3.3.4: one copy per client, at the highest QoS, with every subscription id;
    shared subscriptions are delivered on their own; retained messages per subscription."""

    def one(self, client, what=""):
        """The next PUBLISH (acknowledged), and nothing after it."""
        got = client.expect(PUBLISH)
        client.ack(got)
        more = publishes(client.packets_within(QUIET))
        self.assertEqual(more, [], f"{what}: more than one copy after {got!r}")
        return got

    def test_v5_one_copy_at_the_highest_qos_with_every_identifier(self):
        s = self.raw_mqtt(5, client_id=self.unique("ov"))
        s.subscribe([("ov/+", 0)], pid=1, props=[(P_SUBSCRIPTION_ID, 3)])
        s.subscribe([("ov/#", 1)], pid=2, props=[(P_SUBSCRIPTION_ID, 5)])
        s.subscribe([("ov/x", 2)], pid=3)
        other = self.raw_mqtt(5, client_id=self.unique("other"))
        other.subscribe([("ov/#", 1)], props=[(P_SUBSCRIPTION_ID, 9)])
        pub = self.raw_mqtt(5, client_id=self.unique("p"))
        pub.publish("ov/x", b"x", qos=2)
        got = self.one(s, "ov/x")
        self.assertEqual((got.payload, got.qos), (b"x", 2))
        self.assertEqual(sorted(got.props.all(P_SUBSCRIPTION_ID)), [3, 5], repr(got))
        got = self.one(other, "other client")
        self.assertEqual((got.qos, got.props.all(P_SUBSCRIPTION_ID)), (1, [9]))
        pub.publish("ov/y", b"y", qos=2, pid=2)
        got = self.one(s, "ov/y")
        self.assertEqual((got.payload, got.qos), (b"y", 1))
        self.assertEqual(sorted(got.props.all(P_SUBSCRIPTION_ID)), [3, 5], repr(got))
        # One subscription less: the rest still gets it, once, at its own QoS and id.
        s.send(unsubscribe_packet(4, ["ov/#"]))
        s.expect(UNSUBACK)
        pub.publish("ov/y", b"y2", qos=2, pid=3)
        got = self.one(s, "after unsubscribe")
        self.assertEqual((got.payload, got.qos, got.props.all(P_SUBSCRIPTION_ID)), (b"y2", 0, [3]))

    def test_shared_subscription_gets_its_own_copy(self):
        s = self.raw_mqtt(5, client_id=self.unique("ov"))
        s.subscribe([("sh/+", 0)], pid=1, props=[(P_SUBSCRIPTION_ID, 1)])
        s.subscribe([("sh/#", 1)], pid=2, props=[(P_SUBSCRIPTION_ID, 2)])
        s.subscribe([("$share/g/sh/x", 2)], pid=3, props=[(P_SUBSCRIPTION_ID, 7)])
        pub = self.raw_mqtt(5, client_id=self.unique("p"))
        pub.publish("sh/x", b"x", qos=2)
        got = [s.expect(PUBLISH) for _ in range(2)]
        for g in got:
            s.ack(g)
        self.assertEqual(publishes(s.packets_within(QUIET)), [])
        shapes = sorted((g.qos, tuple(sorted(g.props.all(P_SUBSCRIPTION_ID)))) for g in got)
        self.assertEqual(shapes, [(1, (1, 2)), (2, (7,))], repr(got))

    def test_v311_one_copy_at_the_highest_qos(self):
        s = self.raw_mqtt(V311, client_id=self.unique("ov"))
        s.subscribe([("ow/+", 0), ("ow/#", 1), ("ow/x", 0)])
        pub = self.raw_mqtt(V311, client_id=self.unique("p"))
        pub.publish("ow/x", b"x", qos=2)
        got = self.one(s, "3.1.1")
        self.assertEqual((got.payload, got.qos), (b"x", 1))

    def test_paho_v311_overlapping_filters_get_one_message(self):
        sub = self.paho(version=V311)
        sub.subscribe("pw/#", 1)
        sub.subscribe("pw/+/z", 2)
        pub = self.paho(version=V311)
        pub.publish("pw/a/z", "one", qos=2)
        pub.publish("pw/a/y", "two", qos=1)
        msgs = sub.get_messages(2)
        # Two topics: MQTT orders messages per topic only (§4.6), and pw/a/z and pw/a/y may be
        # owned by different shards, so the two may arrive in either order.
        self.assertEqual(sorted((m.payload, m.qos) for m in msgs), [(b"one", 2), (b"two", 1)])
        self.assertEqual(sub.messages_within(QUIET), [])

    def test_no_local_subscription_leaves_the_copy_to_the_other(self):
        s = self.raw_mqtt(5, client_id=self.unique("nl"))
        s.subscribe([("nl/+", 0x04 | 1)], pid=1, props=[(P_SUBSCRIPTION_ID, 1)])
        s.subscribe([("nl/#", 0)], pid=2, props=[(P_SUBSCRIPTION_ID, 2)])
        got = publish_and_collect(s, "nl/x", b"own", qos=1, pid=3)
        got += publishes(s.packets_within(QUIET))
        self.assertEqual(len(got), 1, repr(got))
        got = got[0]
        s.ack(got)
        self.assertEqual((got.payload, got.qos, got.props.all(P_SUBSCRIPTION_ID)), (b"own", 0, [2]))
        pub = self.raw_mqtt(5, client_id=self.unique("p"))
        pub.publish("nl/x", b"theirs", qos=1)
        got = self.one(s, "another client's message")
        self.assertEqual((got.payload, got.qos), (b"theirs", 1))
        self.assertEqual(sorted(got.props.all(P_SUBSCRIPTION_ID)), [1, 2])

    def test_persistent_session_gets_one_copy_online_and_after_reconnect(self):
        cid = self.unique("pd")
        s = self.raw_mqtt(5)
        s.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 300)])
        s.subscribe([("pd/+", 1)], pid=1, props=[(P_SUBSCRIPTION_ID, 1)])
        s.subscribe([("pd/#", 2)], pid=2, props=[(P_SUBSCRIPTION_ID, 2)])
        pub = self.raw_mqtt(5, client_id=self.unique("p"))
        pub.publish("pd/x", b"online", qos=2)
        got = self.one(s, "online")
        self.assertEqual((got.payload, got.qos), (b"online", 2))
        self.assertEqual(sorted(got.props.all(P_SUBSCRIPTION_ID)), [1, 2])
        s.send(disconnect_packet())
        s.wait_closed()
        for i in range(3):
            pub.publish("pd/x", f"offline-{i}", qos=1, pid=2 + i)
        s = self.raw_mqtt(5)
        self.assertEqual(s.connect(cid, clean=False,
                                   props=[(P_SESSION_EXPIRY, 300)]).session_present, 1)
        got = [s.expect(PUBLISH) for _ in range(3)]
        for g in got:
            s.ack(g)
        self.assertEqual(publishes(s.packets_within(QUIET)), [], "copies after the three")
        self.assertEqual([(g.payload, g.qos) for g in got],
                         [(f"offline-{i}".encode(), 1) for i in range(3)])
        for g in got:
            self.assertEqual(sorted(g.props.all(P_SUBSCRIPTION_ID)), [1, 2], repr(g))

    def test_retained_messages_go_to_each_new_subscription(self):
        pub = self.raw_mqtt(5, client_id=self.unique("p"))
        pub.publish("rt/x", b"kept", qos=1, retain=True)
        s = self.raw_mqtt(5, client_id=self.unique("rt"))
        _, got = subscribe_and_collect(s, [("rt/+", 1)], props=[(P_SUBSCRIPTION_ID, 1)])
        self.assertEqual([(g.payload, g.retain, g.props.all(P_SUBSCRIPTION_ID)) for g in got],
                         [(b"kept", True, [1])], repr(got))
        s.ack(got[0])
        _, got = subscribe_and_collect(s, [("rt/#", 1)], pid=2, props=[(P_SUBSCRIPTION_ID, 2)])
        self.assertEqual([(g.payload, g.retain, g.props.all(P_SUBSCRIPTION_ID)) for g in got],
                         [(b"kept", True, [2])], repr(got))
        s.ack(got[0])
        # A live message afterwards: once, with both.
        pub.publish("rt/x", b"live", qos=1, pid=2)
        got = self.one(s, "live")
        self.assertEqual((got.payload, got.retain), (b"live", False))
        self.assertEqual(sorted(got.props.all(P_SUBSCRIPTION_ID)), [1, 2])


if __name__ == "__main__":
    sbtest.main()
