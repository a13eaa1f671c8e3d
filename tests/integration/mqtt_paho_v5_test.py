# tests/integration/mqtt_paho_v5_test.py — MQTT 5 with paho-mqtt 1.6 (and a raw socket where paho
# cannot show the packets): properties, request/response, message and session expiry, topic
# aliases both ways, shared subscriptions, subscription identifiers and options, will delay,
# receive maximum, maximum packet size, CONNACK properties. Real binary.

import os
import sys
import threading
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import (MqttTestCase, config_override, msg_prop, paho_props,  # noqa: E402
                    sub_options, PUBLISH, PUBACK, ack_packet, publish_packet,
                    P_ASSIGNED_CLIENT_ID, P_MAXIMUM_PACKET_SIZE, P_REASON_STRING,
                    P_RECEIVE_MAXIMUM, P_REQUEST_PROBLEM_INFO, P_SERVER_KEEP_ALIVE,
                    P_TOPIC_ALIAS, P_TOPIC_ALIAS_MAXIMUM, P_USER_PROPERTY, P_MESSAGE_EXPIRY)


def body(msg):
    return msg.payload.decode("utf-8", errors="replace")


class PahoV5Test(MqttTestCase):

    # -- CONNACK

    def test_connack_properties_default(self):
        c = self.paho(connect=False)
        present, rc, props = c.connect()
        self.assertEqual((present, rc), (0, 0))
        self.assertEqual(getattr(props, "ReceiveMaximum", 65535), 1024, f"CONNACK {props}")
        self.assertEqual(getattr(props, "TopicAliasMaximum", 0), 64, f"CONNACK {props}")
        self.assertEqual(getattr(props, "RetainAvailable", 1), 1, f"CONNACK {props}")
        self.assertIn(getattr(props, "MaximumPacketSize", 1 << 20), (1 << 20,), f"{props}")

    @config_override({"mqtt": {"receive_maximum": 10, "topic_alias_maximum": 5,
                               "max_packet_size": 65536}})
    def test_connack_properties_follow_config(self):
        raw = self.raw_mqtt()
        connack = raw.connect(self.unique())
        self.assertEqual(connack.props.get(P_RECEIVE_MAXIMUM), 10, repr(connack))
        self.assertEqual(connack.props.get(P_TOPIC_ALIAS_MAXIMUM), 5, repr(connack))
        self.assertEqual(connack.props.get(P_MAXIMUM_PACKET_SIZE), 65536, repr(connack))

    def test_empty_client_id_gets_an_assigned_identifier(self):
        ids = []
        for _ in range(2):
            c = self.paho(client_id="", connect=False)
            _, rc, props = c.connect()
            assigned = getattr(props, "AssignedClientIdentifier", None)
            self.assertTrue(assigned, f"no assigned_client_identifier in CONNACK: {props}")
            ids.append(assigned)
        self.assertNotEqual(ids[0], ids[1])
        raw = self.raw_mqtt()
        connack = raw.connect("")
        self.assertTrue(connack.props.get(P_ASSIGNED_CLIENT_ID), repr(connack))

    @config_override({"mqtt": {"max_keepalive_s": 20}})
    def test_server_keep_alive_caps_the_client_keep_alive(self):
        for asked, expect in ((100, 20), (0, 20), (10, None)):
            with self.subTest(keepalive=asked):
                raw = self.raw_mqtt()
                connack = raw.connect(self.unique(), keepalive=asked)
                got = connack.props.get(P_SERVER_KEEP_ALIVE)
                if expect is None:
                    self.assertIn(got, (None, asked), repr(connack))
                else:
                    self.assertEqual(got, expect, repr(connack))

    # -- properties

    def test_user_properties_content_type_and_payload_format_round_trip(self):
        sub = self.paho()
        sub.subscribe("props/x", 1)
        pub = self.paho()
        pairs = [("k1", "v1"), ("k2", "v2"), ("k1", "again"), ("ünï", "cödé")]
        pub.publish("props/x", "héllo", qos=1,
                    props={"UserProperty": pairs, "ContentType": "text/plain; charset=utf-8",
                           "PayloadFormatIndicator": 1})
        msg = sub.get_message()
        self.assertEqual(msg.payload, "héllo".encode())
        self.assertEqual(msg_prop(msg, "UserProperty"), pairs, "user properties, order kept")
        self.assertEqual(msg_prop(msg, "ContentType"), "text/plain; charset=utf-8")
        self.assertEqual(msg_prop(msg, "PayloadFormatIndicator"), 1)

    def test_request_response_with_response_topic_and_correlation_data(self):
        responder = self.paho()
        responder.subscribe("svc/request", 1)
        requester = self.paho()
        requester.subscribe("svc/reply/me", 1)
        corr = b"\x00corr\xff-42"
        requester.publish("svc/request", "ping", qos=1,
                          props={"ResponseTopic": "svc/reply/me", "CorrelationData": corr})
        req = responder.get_message()
        self.assertEqual(msg_prop(req, "ResponseTopic"), "svc/reply/me")
        self.assertEqual(msg_prop(req, "CorrelationData"), corr)
        responder.publish(msg_prop(req, "ResponseTopic"), "pong", qos=1,
                          props={"CorrelationData": msg_prop(req, "CorrelationData")})
        reply = self.assert_next_payload(requester, "pong")
        self.assertEqual(msg_prop(reply, "CorrelationData"), corr)

    def test_v5_properties_not_sent_to_v311_subscriber_and_payload_kept(self):
        old = self.paho(version=4)
        old.subscribe("mix5/x", 1)
        pub = self.paho()
        pub.publish("mix5/x", b"\x00\x01", qos=1, props={"UserProperty": [("a", "b")]})
        msg = old.get_message()
        self.assertEqual(msg.payload, b"\x00\x01")

    # -- message expiry

    def test_message_expiry_for_offline_persistent_session(self):
        cid = self.unique("exp")
        sub = self.paho(cid, clean_start=True, props={"SessionExpiryInterval": 60})
        sub.subscribe("exp/x", 1)
        sub.disconnect()
        pub = self.paho()
        pub.publish("exp/x", "short", qos=1, props={"MessageExpiryInterval": 1})
        pub.publish("exp/x", "long", qos=1, props={"MessageExpiryInterval": 60})
        pub.publish("exp/x", "forever", qos=1)
        published = time.monotonic()
        time.sleep(2.2)   # the 1 s expiry has to pass: there is no event for "time went by"
        again = self.paho(cid, connect=False)
        present, _, _ = again.connect(clean_start=False, props={"SessionExpiryInterval": 60})
        self.assertEqual(present, 1)
        msgs = again.get_messages(2)
        elapsed = time.monotonic() - published
        self.assertEqual([body(m) for m in msgs], ["long", "forever"],
                         "the expired message was delivered (or others lost)")
        remaining = msg_prop(msgs[0], "MessageExpiryInterval")
        self.assertIsNotNone(remaining, "no message expiry interval on delivery")
        self.assertLessEqual(remaining, 60 - int(elapsed) + 1)
        self.assertLess(remaining, 60, "the remaining interval must be sent, not the original")
        self.assertGreaterEqual(remaining, 60 - int(elapsed) - 2)
        self.assertIsNone(msg_prop(msgs[1], "MessageExpiryInterval"))
        again.subscribe("exp/sentinel", 1)
        pub.publish("exp/sentinel", "sentinel", qos=1)
        self.assert_next_payload(again, "sentinel", what="a late copy of the expired message")

    def test_message_expiry_sent_to_live_subscriber(self):
        sub = self.paho()
        sub.subscribe("expl/x", 1)
        pub = self.paho()
        pub.publish("expl/x", "m", qos=1, props={"MessageExpiryInterval": 30})
        got = msg_prop(sub.get_message(), "MessageExpiryInterval")
        self.assertIsNotNone(got)
        self.assertTrue(28 <= got <= 30, f"expiry interval {got}")

    def test_retained_message_expires(self):
        pub = self.paho()
        pub.publish("expr/x", "soon-gone", qos=1, retain=True, props={"MessageExpiryInterval": 1})
        pub.publish("expr/y", "stays", qos=1, retain=True)
        time.sleep(1.6)   # let the retained message's 1 s expiry pass
        sub = self.paho()
        sub.subscribe([("expr/x", 1), ("expr/y", 1)])
        self.assert_next_payload(sub, "stays", what="an expired retained message was delivered")

    # -- topic aliases

    def test_client_to_server_topic_aliases(self):
        sub = self.paho()
        sub.subscribe("alias/+", 1)
        pub = self.paho()
        pub.publish("alias/x", "a1", qos=1, props={"TopicAlias": 3})
        pub.publish("", "a2", qos=1, props={"TopicAlias": 3})
        pub.publish("alias/y", "a3", qos=1, props={"TopicAlias": 3})    # remapped
        pub.publish("", "a4", qos=1, props={"TopicAlias": 3})
        pub.publish("alias/z", "a5", qos=1, props={"TopicAlias": 64})   # the maximum
        pub.publish("", "a6", qos=1, props={"TopicAlias": 64})
        msgs = sub.get_messages(6)
        self.assertEqual([(m.topic, body(m)) for m in msgs],
                         [("alias/x", "a1"), ("alias/x", "a2"), ("alias/y", "a3"),
                          ("alias/y", "a4"), ("alias/z", "a5"), ("alias/z", "a6")])
        for m in msgs:
            self.assertIsNone(msg_prop(m, "TopicAlias"),
                              "alias sent to a client whose topic alias maximum is 0")

    def test_server_to_client_topic_aliases(self):
        raw = self.raw_mqtt()
        raw.connect(self.unique(), props={P_TOPIC_ALIAS_MAXIMUM: 4})
        raw.subscribe([("salias/#", 0)])
        pub = self.paho()
        sent = [("salias/a", "1"), ("salias/a", "2"), ("salias/b", "3"), ("salias/a", "4"),
                ("salias/b", "5"), ("salias/b", "6")]
        for topic, payload in sent:
            pub.publish(topic, payload, qos=1)
        packets = [raw.expect(PUBLISH) for _ in sent]
        self.assertEqual([(p.topic, p.payload.decode()) for p in packets], sent,
                         f"packets: {packets}")
        aliases = [p.alias for p in packets if p.alias is not None]
        self.assertTrue(aliases, "the server never used a topic alias")
        self.assertTrue(all(1 <= a <= 4 for a in aliases), f"aliases {aliases} outside 1..4")
        self.assertTrue(any(p.body[:2] == b"\x00\x00" for p in packets),
                        f"no PUBLISH used an alias without the topic name: {packets}")

    def test_no_server_aliases_without_client_maximum(self):
        raw = self.raw_mqtt()
        raw.connect(self.unique())
        raw.subscribe([("nsalias/#", 0)])
        pub = self.paho()
        for i in range(3):
            pub.publish("nsalias/a", str(i), qos=1)
        for _ in range(3):
            p = raw.expect(PUBLISH)
            self.assertNotIn(P_TOPIC_ALIAS, p.props, repr(p))
            self.assertEqual(p.topic, "nsalias/a")

    # -- shared subscriptions

    def test_shared_subscription_splits_messages_between_members(self):
        lock = threading.Lock()
        got = {"a": [], "b": []}
        done = threading.Event()
        sentinel_seen = threading.Event()
        total = 200

        def member(name):
            def on_message(client, msg):
                with lock:
                    got[name].append((msg.topic, body(msg)))
                    if len(got["a"]) + len(got["b"]) >= total:
                        done.set()
                    if body(msg) == "sentinel":
                        sentinel_seen.set()
            return on_message

        a = self.paho(on_message=member("a"))
        b = self.paho(on_message=member("b"))
        self.assertEqual(a.subscribe("$share/g1/shared/x", 1), [1])
        self.assertEqual(b.subscribe("$share/g1/shared/x", 1), [1])
        everyone = self.paho()
        everyone.subscribe("shared/x", 1)
        pub = self.paho()
        infos = [pub.publish("shared/x", f"s-{i}", qos=1, wait=False) for i in range(total)]
        for info in infos:
            pub.wait_published(info, 20)
        self.assertTrue(done.wait(20), f"members got {len(got['a'])}+{len(got['b'])} of {total}")
        # A sentinel through the group proves nothing more is on its way.
        pub.publish("shared/x", "sentinel", qos=1)
        all_msgs = everyone.get_messages(total + 1)
        self.assertTrue(sentinel_seen.wait(sbtest.WAIT), "the sentinel reached no member")
        with lock:
            members = got["a"] + got["b"]
            counts = (len(got["a"]), len(got["b"]))
        payloads = [p for _, p in members if p != "sentinel"]
        self.assertEqual(sorted(payloads), sorted(f"s-{i}" for i in range(total)),
                         f"group got duplicates or lost messages (a={counts[0]}, b={counts[1]})")
        self.assertEqual(len(members), total + 1)
        self.assertGreater(counts[0], 0, "member a got nothing")
        self.assertGreater(counts[1], 0, "member b got nothing")
        self.assertEqual({t for t, _ in members}, {"shared/x"}, "topic must not carry $share")
        self.assertEqual(len(all_msgs), total + 1, "the non-shared subscriber gets everything")

    def test_two_share_groups_each_get_every_message(self):
        g1 = self.paho()
        g2 = self.paho()
        g1.subscribe("$share/one/sg/#", 1)
        g2.subscribe("$share/two/sg/#", 1)
        pub = self.paho()
        for i in range(10):
            pub.publish(f"sg/{i}", str(i), qos=1)
        self.assertEqual(sorted(body(m) for m in g1.get_messages(10)),
                         sorted(str(i) for i in range(10)))
        self.assertEqual(sorted(body(m) for m in g2.get_messages(10)),
                         sorted(str(i) for i in range(10)))

    # -- subscription identifiers and options

    def test_subscription_identifiers_in_delivered_publish(self):
        c = self.paho()
        c.subscribe("sid/a", 1, props={"SubscriptionIdentifier": 7})
        c.subscribe("sid/+", 1, props={"SubscriptionIdentifier": 9})
        c.subscribe("nosid/x", 1)
        pub = self.paho()
        pub.publish("sid/a", "both", qos=1)
        pub.publish("sid/b", "plus-only", qos=1)
        pub.publish("nosid/x", "none", qos=1)
        ids_for_a = []
        while True:
            msg = c.get_message()
            if body(msg) == "both":
                ids_for_a += msg_prop(msg, "SubscriptionIdentifier", [])
                continue
            break
        # One copy with both identifiers, or one copy per subscription (MQTT 5 §3.3.4).
        self.assertEqual(sorted(ids_for_a), [7, 9])
        self.assertEqual(body(msg), "plus-only")
        self.assertEqual(msg_prop(msg, "SubscriptionIdentifier"), [9])
        none = self.assert_next_payload(c, "none")
        self.assertIsNone(msg_prop(none, "SubscriptionIdentifier"))

    def test_no_local_skips_own_messages(self):
        me = self.paho()
        me.subscribe("nl/x", options=sub_options(qos=1, no_local=True))
        me.subscribe("nl/y", 1)
        other = self.paho()
        me.publish("nl/x", "own", qos=1)
        me.publish("nl/y", "own-y", qos=1)   # no_local only on nl/x
        other.publish("nl/x", "from-other", qos=1)
        got = [body(me.get_message()), body(me.get_message())]
        self.assertEqual(sorted(got), ["from-other", "own-y"])
        self.assertEqual(me.messages_within(0.3), [], "own message delivered despite no_local")

    def test_retain_as_published(self):
        rap = self.paho()
        plain = self.paho()
        rap.subscribe("rap/x", options=sub_options(qos=1, retain_as_published=True))
        plain.subscribe("rap/x", 1)
        pub = self.paho()
        pub.publish("rap/x", "retained", qos=1, retain=True)
        pub.publish("rap/x", "normal", qos=1)
        r1, r2 = rap.get_messages(2)
        p1, p2 = plain.get_messages(2)
        self.assertEqual((body(r1), r1.retain), ("retained", True), "rap=1 keeps the flag")
        self.assertEqual((body(r2), r2.retain), ("normal", False))
        self.assertEqual((body(p1), p1.retain), ("retained", False), "rap=0 clears it")
        self.assertEqual((body(p2), p2.retain), ("normal", False))

    def test_retain_handling(self):
        pub = self.paho()
        pub.publish("rh/x", "kept", qos=1, retain=True)

        def first_after_subscribe(client, options, what):
            client.subscribe("rh/x", options=options)
            pub.publish("rh/x", "sentinel", qos=1)
            msg = client.get_message()
            if body(msg) == "kept":
                self.assertTrue(msg.retain, f"{what}: retained delivery without the flag")
                self.assert_next_payload(client, "sentinel", what=what)
                return True
            self.assertEqual(body(msg), "sentinel", what)
            return False

        c0 = self.paho()
        self.assertTrue(first_after_subscribe(c0, sub_options(1, retain_handling=0), "rh=0 new"))
        self.assertTrue(first_after_subscribe(c0, sub_options(1, retain_handling=0),
                                              "rh=0 again: sent on every subscribe"))
        c1 = self.paho()
        self.assertTrue(first_after_subscribe(c1, sub_options(1, retain_handling=1), "rh=1 new"))
        self.assertFalse(first_after_subscribe(c1, sub_options(1, retain_handling=1),
                                               "rh=1 existing: not sent again"))
        c2 = self.paho()
        self.assertFalse(first_after_subscribe(c2, sub_options(1, retain_handling=2),
                                               "rh=2: never sent"))

    # -- sessions

    def test_session_expiry_ends_the_session(self):
        cid = self.unique("sexp")
        c = self.paho(cid, props={"SessionExpiryInterval": 1})
        c.subscribe("sexp/x", 1)
        c.disconnect()
        time.sleep(2.0)   # the session's 1 s expiry has to pass
        pub = self.paho()
        pub.publish("sexp/x", "lost", qos=1)
        again = self.paho(cid, connect=False)
        present, _, _ = again.connect(clean_start=False, props={"SessionExpiryInterval": 60})
        self.assertEqual(present, 0, "the session outlived its expiry interval")
        again.subscribe("sexp/sentinel", 1)
        pub.publish("sexp/sentinel", "sentinel", qos=1)
        self.assert_next_payload(again, "sentinel", what="expired session kept its messages")

    def test_session_within_expiry_is_resumed(self):
        cid = self.unique("skeep")
        c = self.paho(cid, props={"SessionExpiryInterval": 60})
        c.subscribe("skeep/x", 1)
        c.disconnect()
        pub = self.paho()
        pub.publish("skeep/x", "queued", qos=1)
        again = self.paho(cid, connect=False)
        present, _, _ = again.connect(clean_start=False, props={"SessionExpiryInterval": 60})
        self.assertEqual(present, 1)
        self.assert_next_payload(again, "queued")

    def test_session_expiry_zero_means_no_session_after_disconnect(self):
        cid = self.unique("szero")
        c = self.paho(cid)   # clean start, no session expiry interval = 0
        c.subscribe("szero/x", 1)
        c.disconnect()
        again = self.paho(cid, connect=False)
        present, _, _ = again.connect(clean_start=False)
        self.assertEqual(present, 0)

    def test_disconnect_can_set_session_expiry_to_zero(self):
        cid = self.unique("sdisc")
        c = self.paho(cid, props={"SessionExpiryInterval": 60})
        c.subscribe("sdisc/x", 1)
        c.disconnect(props={"SessionExpiryInterval": 0})
        again = self.paho(cid, connect=False)
        present, _, _ = again.connect(clean_start=False, props={"SessionExpiryInterval": 60})
        self.assertEqual(present, 0, "DISCONNECT with session expiry 0 must end the session")

    def test_clean_start_discards_existing_session(self):
        cid = self.unique("scs")
        c = self.paho(cid, props={"SessionExpiryInterval": 60})
        c.subscribe("scs/x", 1)
        c.disconnect()
        again = self.paho(cid, connect=False)
        present, _, _ = again.connect(clean_start=True, props={"SessionExpiryInterval": 60})
        self.assertEqual(present, 0)

    # -- wills

    def will_client(self, cid, delay, session_expiry=60):
        will = {"topic": "wd/will", "payload": "will-" + cid, "qos": 1,
                "props": paho_props("WILLMESSAGE", WillDelayInterval=delay)}
        return self.paho(cid, will=will, props={"SessionExpiryInterval": session_expiry})

    def test_will_delay_publishes_after_the_delay(self):
        watcher = self.paho()
        watcher.subscribe("wd/#", 1)
        cid = self.unique("wd")
        doomed = self.will_client(cid, delay=2)
        doomed.abort()
        lost_at = time.monotonic()
        msg = watcher.get_message(10)
        waited = time.monotonic() - lost_at
        self.assertEqual(body(msg), "will-" + cid)
        self.assertGreaterEqual(waited, 1.5, f"will published after {waited:.2f}s, delay is 2s")

    def test_will_delay_reconnect_within_delay_suppresses_the_will(self):
        watcher = self.paho()
        watcher.subscribe("wd/#", 1)
        cid = self.unique("wdr")
        doomed = self.will_client(cid, delay=2)
        doomed.abort()
        lost_at = time.monotonic()
        back = self.paho(cid, connect=False)
        present, _, _ = back.connect(clean_start=False, props={"SessionExpiryInterval": 60})
        self.assertEqual(present, 1)
        self.assertLess(time.monotonic() - lost_at, 1.5, "reconnect took too long for the test")
        # Past the delay (plus a margin), no will.
        self.assertEqual(watcher.messages_within(max(0.0, lost_at + 3.0 - time.monotonic())),
                         [], "will published although the client came back within the delay")
        back.disconnect()
        other = self.paho()
        other.publish("wd/sentinel", "sentinel", qos=1)
        self.assert_next_payload(watcher, "sentinel", what="will after normal DISCONNECT")

    def test_will_published_when_session_ends_before_the_delay(self):
        watcher = self.paho()
        watcher.subscribe("wd/#", 1)
        cid = self.unique("wds")
        doomed = self.will_client(cid, delay=30, session_expiry=1)
        doomed.abort()
        lost_at = time.monotonic()
        msg = watcher.get_message(10)
        waited = time.monotonic() - lost_at
        self.assertEqual(body(msg), "will-" + cid)
        self.assertLess(waited, 10, "will must go at session end, not after the 30 s delay")

    def test_disconnect_with_will_message_reason_publishes_the_will(self):
        watcher = self.paho()
        watcher.subscribe("w4/#", 1)
        c = self.paho(will={"topic": "w4/will", "payload": "w4", "qos": 1})
        c.disconnect(reason=0x04)
        self.assert_next_payload(watcher, "w4", timeout=10)

    def test_normal_disconnect_discards_the_will(self):
        watcher = self.paho()
        watcher.subscribe("w0/#", 1)
        c = self.paho(will={"topic": "w0/will", "payload": "w0", "qos": 1})
        c.disconnect(reason=0x00)
        other = self.paho()
        other.publish("w0/sentinel", "sentinel", qos=1)
        self.assert_next_payload(watcher, "sentinel", what="will after DISCONNECT 0x00")
        self.assertEqual(watcher.messages_within(0.3), [])

    def test_will_properties_are_passed_on(self):
        watcher = self.paho()
        watcher.subscribe("wp/#", 1)
        will = {"topic": "wp/will", "payload": "wp", "qos": 1,
                "props": paho_props("WILLMESSAGE", ContentType="text/plain",
                                    UserProperty=[("why", "crash")])}
        doomed = self.paho(will=will)
        doomed.abort()
        msg = self.assert_next_payload(watcher, "wp", timeout=10)
        self.assertEqual(msg_prop(msg, "ContentType"), "text/plain")
        self.assertEqual(msg_prop(msg, "UserProperty"), [("why", "crash")])

    # -- flow control and size limits towards the client

    def test_receive_maximum_of_the_client_is_respected(self):
        raw = self.raw_mqtt()
        raw.connect(self.unique(), props={P_RECEIVE_MAXIMUM: 2})
        raw.subscribe([("rm/x", 1)])
        pub = self.paho()
        for i in range(5):
            pub.publish("rm/x", f"r{i}", qos=1)
        first = [raw.expect(PUBLISH), raw.expect(PUBLISH)]
        self.assertEqual([p.payload for p in first], [b"r0", b"r1"])
        extra = raw.packets_within(0.5)
        self.assertEqual(extra, [], "more unacknowledged QoS 1 messages than receive maximum 2")
        raw.ack(first[0])
        third = raw.expect(PUBLISH)
        self.assertEqual(third.payload, b"r2")
        self.assertEqual(raw.packets_within(0.3), [], "window exceeded after one PUBACK")
        raw.ack(first[1])
        raw.ack(third)
        rest = [raw.expect(PUBLISH), raw.expect(PUBLISH)]
        self.assertEqual([p.payload for p in rest], [b"r3", b"r4"])
        for p in rest:
            raw.ack(p)
        raw.ping()

    def test_maximum_packet_size_of_the_client_is_respected(self):
        raw = self.raw_mqtt()
        raw.connect(self.unique(), props={P_MAXIMUM_PACKET_SIZE: 200})
        raw.subscribe([("mps/x", 1)])
        pub = self.paho()
        pub.publish("mps/x", b"x" * 1000, qos=1)
        pub.publish("mps/x", b"small", qos=1)
        p = raw.expect(PUBLISH)
        self.assertEqual(p.payload, b"small", "a PUBLISH bigger than the client's maximum")
        raw.ack(p)
        raw.ping()   # the connection is fine

    def test_request_problem_information_zero_suppresses_reason_strings(self):
        raw = self.raw_mqtt()
        raw.connect(self.unique(), props={P_REQUEST_PROBLEM_INFO: 0})
        suback = raw.subscribe([("a/#/b", 1), ("ok/x", 1)])
        self.assertEqual(suback.codes, [0x8F, 1], repr(suback))
        self.assertNotIn(P_REASON_STRING, suback.props, repr(suback))
        self.assertNotIn(P_USER_PROPERTY, suback.props, repr(suback))
        raw.ping()

    def test_puback_reason_codes_for_qos1_publish(self):
        raw = self.raw_mqtt()
        raw.connect(self.unique())
        ack = raw.publish("nobody/listens", b"x", qos=1, pid=3)
        self.assertEqual(ack.pid, 3)
        self.assertIn(ack.code, (0x00, 0x10), repr(ack))   # 0x10: no matching subscribers
        raw.subscribe([("somebody/x", 0)])
        raw.send(publish_packet("somebody/x", b"x", qos=1, pid=4))
        # Our own copy (QoS 0) and the PUBACK may come in either order.
        ack, skipped = raw.read_until(lambda p: p.type == PUBACK)
        self.assertEqual((ack.pid, ack.code), (4, 0x00), repr(ack))
        if not skipped:
            skipped.append(raw.expect(PUBLISH))
        self.assertEqual([(p.type, p.payload) for p in skipped], [(PUBLISH, b"x")])

    def test_message_expiry_header_not_added_when_absent(self):
        raw = self.raw_mqtt()
        raw.connect(self.unique())
        raw.subscribe([("noexp/x", 1)])
        pub = self.paho()
        pub.publish("noexp/x", "x", qos=1)
        p = raw.expect(PUBLISH)
        self.assertNotIn(P_MESSAGE_EXPIRY, p.props, repr(p))
        raw.send(ack_packet(PUBACK, p.pid))
        raw.ping()


if __name__ == "__main__":
    sbtest.main()
