#!/usr/bin/python3
# tests/integration/gateway_activemq_test.py — Switchboard as the gateway in front of a real
# ActiveMQ 5.17 pair (Debian's activemq package), issue 9: `balance: first` with OpenWire and STOMP
# health checks, failover when the first broker dies or freezes, failback after `rise` checks,
# and one `protocol: auto` port serving MQTT from Switchboard's own kernel while OpenWire (the
# real ActiveMQ JMS client, tests/integration/java/OpenWireClient.java) and STOMP (stomp.py) go to
# ActiveMQ.
#
# Two ActiveMQ brokers (a, b) run as children of this test (amqtest.py), in parallel, each with its
# own temp dir and loopback ports (OpenWire and STOMP only: no web console, no JMX), 256 MiB heap,
# shared by every test (an ActiveMQ start takes seconds). Where a message went is proven by reading it
# straight from a broker's own port; which broker a JMS connection reached, by the broker name it
# reports. Every wait is bounded.

import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import HOST, StompClient, free_port  # noqa: E402
import amqtest  # noqa: E402
from amqtest import ActiveMQ, port_open  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))

JAVA_LIB = amqtest.JAVA_LIB
# ActiveMQ's JMS client and what it needs (Debian: libactivemq-java and its dependencies);
# slf4j-nop keeps the client quiet.
CLIENT_JARS = ["activemq-client.jar", "geronimo-jms_1.1_spec.jar", "geronimo-j2ee-management-1.1-spec.jar",
               "hawtbuf.jar", "slf4j-api.jar", "slf4j-nop.jar"]
CLIENT_SOURCE = os.path.join(_HERE, "java", "OpenWireClient.java")

JVM_FAST = amqtest.JVM_FAST

# The health checks: every INTERVAL, FALL failures in a row → down, RISE passes in a row → up.
INTERVAL = 0.5
TIMEOUT = 0.4
FALL = 2
RISE = 2
# Thread and process scheduling on a loaded machine (clients noticing a close, log lines read
# back): added to the bounds computed from the check settings, never to be relied upon otherwise.
SLACK = 1.0


# ---------------------------------------------------------------------------------------------
# The JMS client (OpenWireClient.java), compiled once per run into the temp dir.

def client_jars_missing():
    return [j for j in CLIENT_JARS if not os.path.isfile(os.path.join(JAVA_LIB, j))]


class JavaClient:
    def __init__(self, root):
        self.classes = os.path.join(root, "java-classes")
        os.makedirs(self.classes, exist_ok=True)
        self.classpath = ":".join([self.classes] + [os.path.join(JAVA_LIB, j) for j in CLIENT_JARS])
        self.compile_proc = subprocess.Popen(
            [shutil.which("javac"), "-nowarn", "-d", self.classes, "-cp", self.classpath, CLIENT_SOURCE],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def wait_compiled(self, timeout=120):
        out, _ = self.compile_proc.communicate(timeout=timeout)
        if self.compile_proc.returncode != 0:
            raise AssertionError(f"javac {CLIENT_SOURCE} failed:\n{out.decode(errors='replace')}")

    def command(self, *args):
        return [shutil.which("java"), "-Xmx64m"] + JVM_FAST + ["-cp", self.classpath, "OpenWireClient"] + \
            [str(a) for a in args]

    def run(self, *args, timeout=60):
        """Runs one command to its end: (exit code, stdout lines)."""
        r = subprocess.run(self.command(*args), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        lines = r.stdout.decode(errors="replace").splitlines()
        if r.stderr.strip():
            lines += ["stderr: " + line for line in r.stderr.decode(errors="replace").splitlines()]
        return r.returncode, lines

    def send(self, url, queue_name, count, prefix):
        code, lines = self.run("send", url, queue_name, count, prefix)
        if code != 0 or f"SENT {count}" not in lines:
            raise AssertionError(f"OpenWire send of {count} to {queue_name} via {url} failed (exit {code}): "
                                 f"{lines[-15:]}")
        return broker_of(lines)

    def receive(self, url, queue_name, count, wait_ms=5000):
        """(broker name, bodies received)."""
        code, lines = self.run("receive", url, queue_name, count, wait_ms)
        if not any(line.startswith("DONE ") for line in lines):
            raise AssertionError(f"OpenWire receive from {queue_name} via {url} failed (exit {code}): "
                                 f"{lines[-15:]}")
        return broker_of(lines), [line[len("RECEIVED "):] for line in lines if line.startswith("RECEIVED ")]


def broker_of(lines):
    for line in lines:
        if line.startswith("BROKER "):
            return line[len("BROKER "):]
    raise AssertionError(f"no BROKER line from the OpenWire client: {lines[-15:]}")


class JavaHold:
    """`OpenWireClient hold`: one JMS connection kept open; every stdout line is timestamped."""

    def __init__(self, client, url, queue_name, hold_ms=60000):
        self.proc = subprocess.Popen(client.command("hold", url, queue_name, hold_ms), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))
        self.lines.put((time.monotonic(), None))

    def expect(self, prefix, timeout):
        """(time seen, line) of the next line starting with `prefix`; other lines are kept."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                at, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"OpenWire hold: no {prefix!r} line within {timeout}s; "
                                     f"output: {self.seen[-15:]}") from None
            if line is None:
                self.lines.put((at, None))
                raise AssertionError(f"OpenWire hold exited (code {self.proc.wait(5)}) before {prefix!r}; "
                                     f"output: {self.seen[-15:]}")
            self.seen.append(line)
            if line.startswith(prefix):
                return at, line

    def connected_broker(self, timeout=30):
        _, line = self.expect("BROKER ", timeout)
        self.expect("HOLDING", timeout)   # the consumer exists: the connection is in use
        return line[len("BROKER "):]

    def close(self):
        try:
            self.proc.stdin.close()   # the client exits when its stdin ends
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc.stdout.close()


# ---------------------------------------------------------------------------------------------

def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@unittest.skipUnless(amqtest.missing() is None and shutil.which("javac"),
                     "needs Debian's activemq package and a JDK (scripts/install-deps.sh installs them)")
class GatewayActiveMQTest(unittest.TestCase):
    """One Switchboard and two ActiveMQ brokers for the whole class. Every test leaves a and b
    running and a up in Switchboard's eyes, as it found them."""

    @classmethod
    def setUpClass(cls):
        missing = client_jars_missing()
        if missing:
            raise unittest.SkipTest(f"ActiveMQ's JMS client jars are missing from {JAVA_LIB}: {missing} "
                                    f"(Debian libactivemq-java; scripts/install-deps.sh installs it)")
        cls.root = tempfile.mkdtemp(prefix="sbgwamq-")
        cls.addClassCleanup(cls._remove_root)
        cls.a = ActiveMQ("a", cls.root)
        cls.b = ActiveMQ("b", cls.root)
        cls.addClassCleanup(cls.a.stop)
        cls.addClassCleanup(cls.b.stop)
        # Both JVMs and the client's compilation at once: the slow part of the run.
        t0 = time.monotonic()
        cls.a.start()
        cls.b.start()
        cls.java = JavaClient(cls.root)
        cls.java.wait_compiled()
        ready_a = cls.a.wait_ready()
        ready_b = cls.b.wait_ready()
        sys.stderr.write(f"\n[setup] ActiveMQ a ready in {ready_a:.1f}s, b in {ready_b:.1f}s "
                         f"(both and javac: {time.monotonic() - t0:.1f}s)\n")

        # Switchboard: its kernel on a plain STOMP listener (sb.port) and on `auto` (the MQTT
        # route), ActiveMQ behind `auto` for OpenWire and STOMP.
        cls.sb = sbtest.Broker(workdir=os.path.join(cls.root, "switchboard"))
        os.makedirs(cls.sb.dir, exist_ok=True)
        cls.front = free_port()
        check = {"interval": f"{int(INTERVAL * 1000)}ms", "timeout": f"{int(TIMEOUT * 1000)}ms",
                 "fall": FALL, "rise": RISE}
        cls.sb.config["backends"] = [
            # `first`, two plain servers: a while it is up, b otherwise.
            {"name": "amq", "balance": "first", "connect_timeout": "2s",
             "check": dict(check, type="openwire"),
             "servers": [{"name": "a", "address": f"{HOST}:{cls.a.openwire}"},
                         {"name": "b", "address": f"{HOST}:{cls.b.openwire}"}]},
            # `first` with b as a backup: used only while a is down.
            {"name": "amqstomp", "balance": "first", "connect_timeout": "2s",
             "check": dict(check, type="stomp"),
             "servers": [{"name": "a", "address": f"{HOST}:{cls.a.stomp}"},
                         {"name": "b", "address": f"{HOST}:{cls.b.stomp}", "backup": True}]},
        ]
        cls.sb.config["listeners"].append(
            {"name": "front", "protocol": "auto", "address": HOST, "port": cls.front,
             "routes": {"openwire": {"backend": "amq"}, "stomp": {"backend": "amqstomp"}, "mqtt": "kernel"}})
        cls.addClassCleanup(cls.sb.cleanup)
        cls.addClassCleanup(cls.sb.stop)   # runs before cleanup (LIFO)
        cls.sb.start()
        deadline = time.monotonic() + sbtest.STARTUP_TIMEOUT
        while not port_open(cls.front):
            if time.monotonic() > deadline:
                raise AssertionError(f"switchboard: no listener on {cls.front}\n{cls.sb.describe()}")
            time.sleep(0.05)

    @classmethod
    def _remove_root(cls):
        if not os.environ.get("SB_KEEP_TMP"):
            shutil.rmtree(cls.root, ignore_errors=True)

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before and hasattr(self, "sb"):
            sys.stderr.write(f"\n[{self.id()}] failed; {self.sb.describe()}\n{self.a.describe()}\n"
                             f"{self.b.describe()}\n")
        return out

    def setUp(self):
        self.assertTrue(self.sb.alive(), f"switchboard died\n{self.sb.describe()}")
        self.assertTrue(self.a.alive() and self.b.alive(), "an ActiveMQ broker is not running")
        self.assertEqual(self.server_state("amq", "a"), "UP", "a test left server a down")

    # -- helpers

    def transitions(self, backend, server):
        """Switchboard's log lines saying `server` of `backend` went UP or DOWN, in order."""
        pattern = re.compile(rf"backend={re.escape(backend)} server={re.escape(server)} is (UP|DOWN)\b.*")
        with open(self.sb.log_path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        return [m.group(0) for m in pattern.finditer(text)]

    def server_state(self, backend, server):
        t = self.transitions(backend, server)
        return "UP" if not t else re.search(r" is (UP|DOWN)", t[-1]).group(1)   # servers start up

    def wait_transition(self, backend, server, state, after, timeout):
        """The first transition logged after the `after` earlier ones; it must be to `state`."""
        deadline = time.monotonic() + timeout
        while True:
            t = self.transitions(backend, server)
            if len(t) > after:
                self.assertIn(f" is {state}", t[after], f"{backend}/{server}: unexpected transition")
                return time.monotonic(), t[after]
            if time.monotonic() > deadline:
                self.fail(f"{backend}/{server}: not {state} within {timeout:.1f}s; transitions: {t}")
            time.sleep(0.02)   # the log file is the only signal

    def repair_a(self):
        self.a.thaw()
        if not self.a.alive():
            self.a.start()
            self.a.wait_ready()

    def stomp_via(self, port):
        c = StompClient(port)
        self.addCleanup(c.abort)
        c.connect()
        return c

    def hold(self, url, queue_name=None):
        h = JavaHold(self.java, url, queue_name or unique("gw.hold"))
        self.addCleanup(h.close)
        return h

    def assert_on_broker(self, amq, destination, body, what):
        """The message `body` sent to `destination` is waiting on broker `amq` (read from its port)."""
        c = self.stomp_via(amq.stomp)
        c.subscribe(destination, "direct")
        frame = c.get_message(timeout=5)
        self.assertEqual(frame.body, body, f"{what}: unexpected message on {amq.name}")
        c.close()

    def send_via_front(self, destination, body):
        c = self.stomp_via(self.front)
        c.send(destination, body, receipt=True)
        c.close()

    # -- the tests (unittest runs them in name order)

    def test_1_first_server_takes_openwire_and_stomp(self):
        # OpenWire: the JMS client through Switchboard reports broker a.
        dest = unique("gw.first")
        self.assertEqual(self.java.send(f"tcp://{HOST}:{self.front}", dest, 3, "ow"), "a")
        name, bodies = self.java.receive(self.a.url, dest, 3)
        self.assertEqual((name, bodies), ("a", ["ow-0", "ow-1", "ow-2"]), "OpenWire messages not on a")
        # STOMP: sent through Switchboard, read from a's own STOMP port.
        body = unique("stomp-first")
        self.send_via_front(f"/queue/{dest}", body)
        self.assert_on_broker(self.a, f"/queue/{dest}", body, "STOMP through the front")
        # Nothing fell over on the way.
        self.assertEqual(self.transitions("amq", "a") + self.transitions("amqstomp", "a"), [])

    def fail_over_and_back(self, break_a, mend_a, bound_down, closed_by_check):
        """Common part of the kill and freeze tests: sessions through Switchboard on a, break a,
        sessions closed and a DOWN within `bound_down`, new connections on b; repair a, UP after
        RISE checks, new connections on a."""
        self.addCleanup(self.repair_a)   # a failed test leaves a running for the next ones
        amq_before = len(self.transitions("amq", "a"))
        stomp_before = len(self.transitions("amqstomp", "a"))
        # Sessions relayed to a: a JMS connection with a consumer, and a STOMP session.
        h = self.hold(f"tcp://{HOST}:{self.front}")
        self.assertEqual(h.connected_broker(), "a")
        s = self.stomp_via(self.front)
        probe_dest = unique("/queue/gw.probe")
        s.send(probe_dest, "before", receipt=True)
        self.assert_on_broker(self.a, probe_dest, "before", "the STOMP session before the failure")

        t0 = time.monotonic()
        break_a()
        # Existing relayed sessions end.
        closed_at, _ = h.expect("CLOSED", bound_down + SLACK)
        self.assertTrue(s.disconnected.wait(max(0.0, t0 + bound_down + SLACK - time.monotonic())),
                        "the STOMP session relayed to a is still open")
        stomp_closed_at = time.monotonic()
        down_at, down = self.wait_transition("amq", "a", "DOWN", amq_before, bound_down + SLACK)
        _, stomp_down = self.wait_transition("amqstomp", "a", "DOWN", stomp_before, bound_down + SLACK)
        sys.stderr.write(f"\n[{self._testMethodName}] JMS session closed after {closed_at - t0:.2f}s, "
                         f"STOMP session after ≤{stomp_closed_at - t0:.2f}s, a DOWN after ≤{down_at - t0:.2f}s "
                         f"(bound {bound_down:.2f}s): {down}\n")
        self.assertLessEqual(closed_at - t0, bound_down + SLACK)
        self.assertIn(f"({FALL} failed)", down)
        if closed_by_check:
            # a did not close them itself: Switchboard did, on the DOWN transition.
            for line in (down, stomp_down):
                m = re.search(r"closing (\d+) relayed connections", line)
                self.assertTrue(m and int(m.group(1)) >= 1, f"the DOWN transition closed nothing: {line}")

        # New connections land on b: the JMS client says so, the STOMP message is on b.
        h2 = self.hold(f"tcp://{HOST}:{self.front}")
        self.assertEqual(h2.connected_broker(), "b", "a new JMS connection while a is down")
        body = unique("on-b")
        self.send_via_front(probe_dest, body)
        self.assert_on_broker(self.b, probe_dest, body, "STOMP through the front while a is down")
        h2.close()

        # a back: not used before RISE checks passed, used after.
        mend_a()
        body = unique("while-rising")
        self.send_via_front(probe_dest, body)
        if len(self.transitions("amqstomp", "a")) == stomp_before + 1:
            # Still DOWN once the message was confirmed: it must have gone to b.
            self.assert_on_broker(self.b, probe_dest, body, "STOMP through the front before a rose")
            rising = "checked: a STOMP session opened before the UP went to b"
        else:
            rising = "not checked: a was UP before the STOMP session was confirmed"
        up_bound = (RISE + 1) * (INTERVAL + TIMEOUT) + SLACK
        up_at, up = self.wait_transition("amq", "a", "UP", amq_before + 1, up_bound)
        self.wait_transition("amqstomp", "a", "UP", stomp_before + 1, up_bound)
        self.assertIn(f"({RISE} passed)", up)
        sys.stderr.write(f"[{self._testMethodName}] a UP {up_at - t0:.2f}s after the failure; rising: {rising}\n")
        h3 = self.hold(f"tcp://{HOST}:{self.front}")
        self.assertEqual(h3.connected_broker(), "a", "a new JMS connection after a is UP again")
        body = unique("back-on-a")
        self.send_via_front(probe_dest, body)
        self.assert_on_broker(self.a, probe_dest, body, "STOMP through the front after a rose")
        h3.close()
        # b stayed up all along.
        self.assertEqual(self.transitions("amq", "b") + self.transitions("amqstomp", "b"), [])

    def test_2_killed_first_server_fails_over_then_back(self):
        # SIGKILL: the kernel closes a's sockets, the checks are refused at once. The bound of the
        # issue: interval × fall for the checks, plus one interval for the first one to start.
        def restart():
            self.a.start()
            self.a.wait_ready()
        self.fail_over_and_back(self.a.kill, restart, bound_down=INTERVAL * (FALL + 1), closed_by_check=False)

    def test_3_frozen_first_server_is_cut_off_by_the_checks(self):
        # SIGSTOP: a's sockets stay open and silent; only the checks (timing out) can tell, and
        # only Switchboard can close the sessions relayed to it. Checks start every INTERVAL
        # whatever they last: the bound, interval x fall + one interval, holds here too.
        bound = INTERVAL * (FALL + 1)
        self.fail_over_and_back(self.a.freeze, self.a.thaw, bound_down=bound, closed_by_check=True)

    def test_4_auto_port_mqtt_to_kernel_openwire_to_activemq(self):
        # MQTT on the front port: Switchboard's kernel serves it (a STOMP subscriber on the
        # kernel's own STOMP listener sees the message; ActiveMQ has no MQTT transport at all).
        kernel_sub = self.stomp_via(self.sb.port)
        kernel_sub.subscribe("/topic/gw.mixed", "k")
        amq_sub = self.stomp_via(self.a.stomp)
        amq_sub.subscribe("/topic/gw.mixed", "a")
        mqtt = sbtest.MqttClient(self.front, unique("mqtt"), version=5)
        self.addCleanup(mqtt.close)
        mqtt.connect()
        mqtt.subscribe("gw/mixed", qos=1)

        # OpenWire on the same port while the MQTT client stays connected: to ActiveMQ a.
        dest = unique("gw.mixed")
        self.assertEqual(self.java.send(f"tcp://{HOST}:{self.front}", dest, 20, "mix"), "a")
        name, bodies = self.java.receive(self.a.url, dest, 20)
        self.assertEqual(name, "a")
        self.assertEqual(bodies, [f"mix-{i}" for i in range(20)], "OpenWire messages read from a's own port")
        # And the other way: sent to a's own STOMP port, received with OpenWire through the front.
        direct = self.stomp_via(self.a.stomp)
        for i in range(5):
            direct.send(f"/queue/{dest}", f"direct-{i}", receipt=True)
        name, bodies = self.java.receive(f"tcp://{HOST}:{self.front}", dest, 5)
        self.assertEqual((name, bodies), ("a", [f"direct-{i}" for i in range(5)]))

        mqtt.publish("gw/mixed", b"from-mqtt", qos=1)
        self.assertEqual(mqtt.get_message().payload, b"from-mqtt")
        frame = kernel_sub.get_message()
        self.assertEqual(frame.body, "from-mqtt", "MQTT publish seen on the kernel's STOMP listener")
        self.assertTrue(mqtt.is_connected(), "the MQTT session on the front port")
        self.assertIsNone(_poll(amq_sub.messages, 0.3), "ActiveMQ saw the MQTT message")


def _poll(q, seconds):
    try:
        return q.get(timeout=seconds)
    except queue.Empty:
        return None


if __name__ == "__main__":
    sbtest.main()
