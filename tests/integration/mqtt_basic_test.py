# tests/integration/mqtt_basic_test.py — MQTT round trips with the mosquitto command-line clients
# (mosquitto_pub / mosquitto_sub, -V 311 and -V 5): QoS 0/1/2, QoS downgrade, retained messages,
# wildcards, $-topics, v5 properties. Real binary, third-party clients.

import os
import queue
import shutil
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import HOST, MqttTestCase  # noqa: E402

SUB_TIMEOUT_S = 10    # mosquitto_sub -W: it exits 27 when its messages did not all arrive
FORMAT = "MSG|%t|%q|%r|%P|%C|%p"


class MosquittoSub:
    """mosquitto_sub in debug mode: SUBACK and messages are read from its stdout as they come."""

    def __init__(self, port, topics, version="311", qos=0, count=1, timeout_s=SUB_TIMEOUT_S,
                 client_id=None, extra=()):
        # stdbuf: line-buffered stdout, so the SUBACK line arrives when it happens.
        cmd = ["stdbuf", "-oL", "mosquitto_sub", "-h", HOST, "-p", str(port), "-V", version,
               "-q", str(qos), "-d", "-C", str(count), "-W", str(timeout_s), "-F", FORMAT]
        if client_id:
            cmd += ["-i", client_id]
        for topic in topics:
            cmd += ["-t", topic]
        cmd += list(extra)
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.lines = queue.Queue()
        self.all_lines = []
        self.messages = []
        self.granted = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.lines.put(line)
        self.lines.put(None)

    def _next_line(self, deadline):
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"mosquitto_sub: nothing within the deadline; output so far: "
                                 f"{self.all_lines[-10:]}") from None
        if line is not None:
            self.all_lines.append(line)
            if line.startswith("MSG|"):
                self.messages.append(parse_msg(line))
        return line

    def wait_subscribed(self, timeout=sbtest.WAIT):
        """Blocks until mosquitto_sub printed its SUBACK; returns the granted QoS list.
        MQTT 3.1.1 §3.8.4 lets the server send matching (retained) messages before the SUBACK,
        so mosquitto_sub may reach its -C count and exit first: then None is returned."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._next_line(deadline)
            if line is None:
                if self.messages:
                    self.lines.put(None)   # finish() still sees the end of the output
                    return None
                raise AssertionError(f"mosquitto_sub exited before SUBACK (rc="
                                     f"{self.proc.wait(5)}): {self.all_lines[-10:]}")
            if line.startswith("Subscribed (mid"):
                # "Subscribed (mid: 1): 1, 2"
                self.granted = [int(x) for x in line.rsplit(":", 1)[1].split(",")]
                return self.granted

    def next_message(self, timeout=sbtest.WAIT):
        deadline = time.monotonic() + timeout
        seen = len(self.messages)
        while len(self.messages) == seen:
            if self._next_line(deadline) is None:
                raise AssertionError(f"mosquitto_sub exited; output: {self.all_lines[-10:]}")
        return self.messages[seen]

    def finish(self, timeout=SUB_TIMEOUT_S + 5):
        """Waits for the process to exit; returns (exit code, messages)."""
        deadline = time.monotonic() + timeout
        while self._next_line(deadline) is not None:
            pass
        try:
            rc = self.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"mosquitto_sub did not exit: {self.all_lines[-10:]}")
        return rc, self.messages

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc.stdout.close()


def parse_msg(line):
    _, topic, qos, retain, props, content_type, payload = line.split("|", 6)
    return {"topic": topic, "qos": int(qos), "retain": int(retain), "props": props,
            "content_type": content_type, "payload": payload}


class MosquittoClientsTest(MqttTestCase):

    def setUp(self):
        for tool in ("mosquitto_pub", "mosquitto_sub"):
            if shutil.which(tool) is None:
                self.fail(f"{tool} not installed (package mosquitto-clients)")
        super().setUp()

    def sub(self, topics, **kw):
        s = MosquittoSub(self.mqtt_port, topics, **kw)
        self.addCleanup(s.kill)
        return s

    def pub(self, topic, message=None, lines=None, version="311", qos=0, retain=False,
            null=False, extra=(), expect_rc=0):
        cmd = ["mosquitto_pub", "-h", HOST, "-p", str(self.mqtt_port), "-V", version,
               "-q", str(qos), "-t", topic, "-i", self.unique("pub")]
        if retain:
            cmd.append("-r")
        stdin = None
        if null:
            cmd.append("-n")
        elif lines is not None:
            cmd.append("-l")
            stdin = ("\n".join(lines) + "\n").encode()
        else:
            cmd += ["-m", message]
        cmd += list(extra)
        try:
            done = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=20)
        except subprocess.TimeoutExpired:
            self.fail(f"mosquitto_pub hung: {cmd}")
        if expect_rc is not None:
            self.assertEqual(done.returncode, expect_rc,
                             f"mosquitto_pub {cmd} exited {done.returncode}: {done.stdout!r}")
        return done

    # -- round trips at every QoS, both versions

    def round_trip(self, version, qos, count=200):
        topic = f"rt/v{version}/q{qos}"
        sub = self.sub([topic], version=version, qos=qos, count=count,
                       client_id=self.unique("sub"))
        self.assertEqual(sub.wait_subscribed(), [qos], "granted QoS")
        bodies = [f"m-{version}-{qos}-{i}" for i in range(count)]
        self.pub(topic, lines=bodies, version=version, qos=qos)
        rc, msgs = sub.finish()
        self.assertEqual(rc, 0, f"mosquitto_sub exit code {rc} (27 = timed out): got "
                                f"{len(msgs)} of {count} messages; its last lines: "
                                f"{sub.all_lines[-6:]}")
        self.assertEqual([m["payload"] for m in msgs], bodies, "payloads, in publish order")
        self.assertEqual({m["topic"] for m in msgs}, {topic})
        self.assertEqual({m["qos"] for m in msgs}, {qos}, "delivered QoS")
        self.assertEqual({m["retain"] for m in msgs}, {0}, "live messages must not be retained")

    def test_v311_qos0_round_trip(self):
        self.round_trip("311", 0)

    def test_v311_qos1_round_trip(self):
        self.round_trip("311", 1)

    def test_v311_qos2_round_trip(self):
        self.round_trip("311", 2)

    def test_v5_qos0_round_trip(self):
        self.round_trip("5", 0)

    def test_v5_qos1_round_trip(self):
        self.round_trip("5", 1)

    def test_v5_qos2_round_trip(self):
        self.round_trip("5", 2)

    def test_v31_round_trip(self):
        sub = self.sub(["rt/v31"], version="31", qos=1, count=3, client_id=self.unique("s31"))
        self.assertEqual(sub.wait_subscribed(), [1])
        self.pub("rt/v31", lines=["a", "b", "c"], version="31", qos=1)
        rc, msgs = sub.finish()
        self.assertEqual(rc, 0)
        self.assertEqual([m["payload"] for m in msgs], ["a", "b", "c"])

    def test_delivered_qos_is_min_of_publish_and_subscription(self):
        for version in ("311", "5"):
            for sub_qos, pub_qos in ((2, 1), (1, 2), (0, 2), (2, 0), (1, 1)):
                with self.subTest(version=version, sub_qos=sub_qos, pub_qos=pub_qos):
                    topic = f"min/v{version}/{sub_qos}{pub_qos}"
                    sub = self.sub([topic], version=version, qos=sub_qos, count=1)
                    sub.wait_subscribed()
                    self.pub(topic, message="x", version=version, qos=pub_qos)
                    rc, msgs = sub.finish()
                    self.assertEqual(rc, 0, "message not delivered")
                    self.assertEqual(msgs[0]["qos"], min(sub_qos, pub_qos))

    # -- retained messages

    def retained(self, version):
        topic = f"ret/v{version}/t"
        sentinel_topic = f"ret/v{version}/sentinel"
        self.pub(topic, message="first", version=version, qos=1, retain=True)
        self.pub(topic, message="second", version=version, qos=1, retain=True)

        # A new subscriber gets the last retained message, with the retain flag.
        sub = self.sub([topic], version=version, qos=1, count=1)
        sub.wait_subscribed()
        rc, msgs = sub.finish()
        self.assertEqual(rc, 0, "retained message not delivered to a new subscriber")
        self.assertEqual(msgs[0]["payload"], "second", "only the last retained message is kept")
        self.assertEqual(msgs[0]["retain"], 1, "retain flag must be set on a retained delivery")

        # Exactly one: after the retained message comes the sentinel, nothing in between.
        sub = self.sub([topic, sentinel_topic], version=version, qos=1, count=2)
        sub.wait_subscribed()
        self.pub(sentinel_topic, message="sentinel", version=version, qos=1)
        rc, msgs = sub.finish()
        self.assertEqual(rc, 0)
        self.assertEqual([m["payload"] for m in msgs], ["second", "sentinel"])

        # An empty retained payload clears it: the next subscriber's first message is the
        # sentinel published after its SUBACK.
        self.pub(topic, null=True, version=version, qos=1, retain=True)
        sub = self.sub([topic, sentinel_topic], version=version, qos=1, count=1)
        sub.wait_subscribed()
        self.pub(sentinel_topic, message="sentinel-2", version=version, qos=1)
        rc, msgs = sub.finish()
        self.assertEqual(rc, 0)
        self.assertEqual([(m["topic"], m["payload"]) for m in msgs],
                         [(sentinel_topic, "sentinel-2")],
                         "the cleared retained message (or its empty payload) was delivered")

    def test_v311_retained_message_and_clearing(self):
        self.retained("311")

    def test_v5_retained_message_and_clearing(self):
        self.retained("5")

    def test_retained_messages_of_every_matching_topic_on_wildcard_subscribe(self):
        for i in range(3):
            self.pub(f"many/r{i}", message=f"r{i}", qos=1, retain=True)
        self.pub("other/r", message="no", qos=1, retain=True)
        sub = self.sub(["many/+"], qos=1, count=3)
        sub.wait_subscribed()
        rc, msgs = sub.finish()
        self.assertEqual(rc, 0, f"got {len(msgs)} of 3 retained messages")
        self.assertEqual(sorted((m["topic"], m["payload"], m["retain"]) for m in msgs),
                         [(f"many/r{i}", f"r{i}", 1) for i in range(3)])

    # -- wildcards and $-topics

    def test_single_and_multi_level_wildcards(self):
        plus = self.sub(["wc/+/c"], qos=1, count=1)
        hash_ = self.sub(["wc/#"], qos=1, count=3)
        plus.wait_subscribed()
        hash_.wait_subscribed()
        self.pub("wc/b/d", message="bd", qos=1)      # not wc/+/c
        self.pub("wc/b/c/e", message="bce", qos=1)   # not wc/+/c
        self.pub("wc/b/c", message="bc", qos=1)
        rc, msgs = plus.finish()
        self.assertEqual(rc, 0)
        self.assertEqual([(m["topic"], m["payload"]) for m in msgs], [("wc/b/c", "bc")])
        rc, msgs = hash_.finish()
        self.assertEqual(rc, 0)
        self.assertEqual([m["payload"] for m in msgs], ["bd", "bce", "bc"])

    def test_dots_in_mqtt_topic_levels_are_kept(self):
        sub = self.sub(["dot/a.b/+"], qos=1, count=1)
        sub.wait_subscribed()
        self.pub("dot/a/b", message="wrong", qos=1)     # kernel dot.a.b, not dot.a/b.x
        self.pub("dot/a.b/x", message="right", qos=1)
        rc, msgs = sub.finish()
        self.assertEqual(rc, 0)
        self.assertEqual([(m["topic"], m["payload"]) for m in msgs], [("dot/a.b/x", "right")])

    def test_leading_wildcards_do_not_match_dollar_topics(self):
        everything = self.sub(["#"], qos=1, count=1)
        plus = self.sub(["+/x"], qos=1, count=1)
        dollar = self.sub(["$app/#"], qos=1, count=1)
        for s in (everything, plus, dollar):
            s.wait_subscribed()
        self.pub("$app/x", message="dollar", qos=1)
        self.pub("norm/x", message="normal", qos=1)
        for name, s, want in (("#", everything, ("norm/x", "normal")),
                              ("+/x", plus, ("norm/x", "normal")),
                              ("$app/#", dollar, ("$app/x", "dollar"))):
            rc, msgs = s.finish()
            self.assertEqual(rc, 0, f"{name}: nothing delivered")
            self.assertEqual((msgs[0]["topic"], msgs[0]["payload"]), want, f"filter {name}")

    # -- v5 properties through the command-line clients

    def test_v5_user_properties_and_content_type_pass_through(self):
        sub = self.sub(["props/x"], version="5", qos=1, count=1)
        sub.wait_subscribed()
        self.pub("props/x", message="p", version="5", qos=1,
                 extra=["-D", "publish", "user-property", "k1", "v1",
                        "-D", "publish", "user-property", "k2", "v2",
                        "-D", "publish", "content-type", "text/x-test"])
        rc, msgs = sub.finish()
        self.assertEqual(rc, 0)
        self.assertEqual(msgs[0]["props"], "k1:v1 k2:v2", "user properties, in order")
        self.assertEqual(msgs[0]["content_type"], "text/x-test")

    def test_v311_subscriber_gets_v5_publish_without_properties(self):
        sub = self.sub(["mixed/x"], version="311", qos=1, count=1)
        sub.wait_subscribed()
        self.pub("mixed/x", message="from-v5", version="5", qos=1,
                 extra=["-D", "publish", "user-property", "k", "v"])
        rc, msgs = sub.finish()
        self.assertEqual(rc, 0)
        self.assertEqual((msgs[0]["payload"], msgs[0]["props"]), ("from-v5", ""))

    def test_persistent_session_with_mosquitto_sub(self):
        client_id = self.unique("persist")
        first = self.sub(["persist/x"], version="5", qos=1, count=1, client_id=client_id,
                         extra=["-c", "-x", "60"])
        first.wait_subscribed()
        self.pub("persist/x", message="online", qos=1)
        rc, _ = first.finish()
        self.assertEqual(rc, 0)
        # Offline now (mosquitto_sub sent DISCONNECT after -C 1): messages are queued.
        self.pub("persist/x", lines=["off-1", "off-2"], qos=1)
        again = MosquittoSub(self.mqtt_port, [], version="5", qos=1, count=2,
                             client_id=client_id, extra=["-c", "-x", "60", "-t", "persist/x"])
        self.addCleanup(again.kill)
        rc, msgs = again.finish()
        self.assertEqual(rc, 0, f"queued messages not delivered: {again.all_lines[-10:]}")
        self.assertEqual([m["payload"] for m in msgs], ["off-1", "off-2"])


if __name__ == "__main__":
    sbtest.main()
