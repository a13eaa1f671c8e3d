#!/usr/bin/python3
# tests/integration/openwire_jms_test.py — issue 20: unmodified ActiveMQ JMS clients (Debian's
# libactivemq-java 5.17 on Java 17) against the real binary over OpenWire. The scenarios are
# Java (tests/integration/java/JmsScenarios.java, compiled with javac once per run); each runs
# against Switchboard once per broker URL variant: the client's default wire format (version 12,
# tight encoding, the marshalling cache), `wireFormat.version=1`, `=9`, `=10`, `=11`,
# `wireFormat.tightEncodingEnabled=false`, `wireFormat.cacheEnabled=false` and
# `jms.useCompression=true`. The reference class runs the same scenarios against Debian's
# ActiveMQ (amqtest.py), which shows the scenarios themselves are right (skipped without it).
#
# One JVM per variant runs every scenario (a JVM start costs a second or two); every scenario
# bounds its own waits (JmsScenarios.WAIT_MS), and each JVM run is bounded here too. The default
# variant's JVM also runs what needs one run only: XA refused (ActiveMQ: XA committed), scheduled
# delivery (AMQ_SCHEDULED_DELAY, both brokers) and `ssl://` to a TLS listener (Switchboard).

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import HOST  # noqa: E402
import amqtest  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
JAVA_LIB = amqtest.JAVA_LIB
CLIENT_JARS = ["activemq-client.jar", "geronimo-jms_1.1_spec.jar", "geronimo-j2ee-management-1.1-spec.jar",
               "hawtbuf.jar", "slf4j-api.jar", "slf4j-nop.jar"]
SOURCE = os.path.join(_HERE, "java", "JmsScenarios.java")

SCENARIOS = ["connect", "queue", "topic", "types", "client_ack_recover", "transaction", "request_reply",
             "selector", "prefetch0", "durable", "groups", "individual_ack", "dead_letter", "browse", "exclusive",
             "client_id", "no_local", "async_window"]

# The URL options of each variant (appended to tcp://HOST:PORT).
VARIANTS = {
    "default": "",
    "v1": "?wireFormat.version=1",
    "v9": "?wireFormat.version=9",
    "v10": "?wireFormat.version=10",
    "v11": "?wireFormat.version=11",
    "loose": "?wireFormat.tightEncodingEnabled=false",
    "nocache": "?wireFormat.cacheEnabled=false",
    "compressed": "?jms.useCompression=true",
    "noprefix": "?wireFormat.sizePrefixDisabled=true",
}

# Scenarios a variant cannot run, against any broker: version 1 has no MessagePull (the 5.17
# client's v1 marshallers fail a pull with "Unknown data type: 20", against ActiveMQ too).
NOT_IN = {"v1": {"prefetch0"}}

# Scenarios run once, in the default variant's JVM: Switchboard refuses XA clearly, ActiveMQ
# runs the same transaction manager's steps to a commit (the scenario's own check).
EXTRA = {"switchboard": ["xa:refused", "scheduled"], "activemq": ["xa:supported", "scheduled"]}

RUN_TIMEOUT = 240   # one JVM, every scenario (each bounded by its own waits)
TRUST_PASSWORD = "switchboard"


def make_tls_files(root):
    """A self-signed certificate for 127.0.0.1 and localhost (as subject alternative names: the
    client's ssl:// transport verifies the host name), its key, and a PKCS12 truststore holding
    it for the JVM (keytool): (cert, key, truststore)."""
    cert, key, trust = (os.path.join(root, n) for n in ("server.pem", "server.key", "trust.p12"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    subprocess.run([shutil.which("keytool"), "-importcert", "-noprompt", "-alias", "switchboard", "-file", cert,
                    "-keystore", trust, "-storetype", "PKCS12", "-storepass", TRUST_PASSWORD],
                   check=True, capture_output=True, timeout=60)
    return cert, key, trust


def missing():
    if not shutil.which("javac") or not shutil.which("java"):
        return "needs a JDK (scripts/install-deps.sh installs openjdk-17-jdk-headless)"
    absent = [j for j in CLIENT_JARS if not os.path.isfile(os.path.join(JAVA_LIB, j))]
    if absent:
        return f"needs Debian's libactivemq-java and its dependencies ({', '.join(absent)})"
    return None


class Scenarios:
    """JmsScenarios.java, compiled once into `root`."""

    def __init__(self, root):
        self.classes = os.path.join(root, "java-classes")
        os.makedirs(self.classes, exist_ok=True)
        self.classpath = ":".join([self.classes] + [os.path.join(JAVA_LIB, j) for j in CLIENT_JARS])
        r = subprocess.run([shutil.which("javac"), "-nowarn", "-encoding", "UTF-8", "-d", self.classes,
                            "-cp", self.classpath, SOURCE],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=180)
        if r.returncode != 0:
            raise AssertionError(f"javac {SOURCE} failed:\n{(r.stdout + r.stderr).decode(errors='replace')}")

    def command(self, url, prefix, scenarios):
        return [shutil.which("java"), "-Xmx96m"] + amqtest.JVM_FAST + ["-Dfile.encoding=UTF-8", "-cp", self.classpath,
                                                                      "JmsScenarios", url, prefix] + list(scenarios)

    def start(self, url, prefix, scenarios):
        """A JVM running `scenarios` in the background (stdin and stdout are pipes)."""
        return subprocess.Popen(self.command(url, prefix, scenarios), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def run(self, url, prefix, scenarios):
        """{scenario: None (passed) or why it failed}, and the JVM's output."""
        cmd = [shutil.which("java"), "-Xmx96m"] + amqtest.JVM_FAST + ["-Dfile.encoding=UTF-8", "-cp",
                                                                      self.classpath, "JmsScenarios", url, prefix]
        r = subprocess.run(cmd + list(scenarios), stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=RUN_TIMEOUT)
        out = r.stdout.decode(errors="replace")
        results = {}
        for line in out.splitlines():
            if line.startswith("PASS "):
                results[line[5:]] = None
            elif line.startswith("FAIL "):
                name, _, why = line[5:].partition(": ")
                results[name] = why
        for s in scenarios:
            results.setdefault(s, f"no verdict (exit {r.returncode})")
        return results, out + r.stderr.decode(errors="replace")[-3000:]


_compiled = None


def scenarios():
    global _compiled
    if _compiled is None:
        _compiled = Scenarios(tempfile.mkdtemp(prefix="sb-jms-"))
    return _compiled


class JmsCase(unittest.TestCase):
    def check_variant(self, url, prefix, key, extra=()):
        names = [n for n in SCENARIOS if n not in NOT_IN.get(key, ())] + list(extra)
        results, out = scenarios().run(url, prefix, names)
        failed = {k: v for k, v in results.items() if v is not None}
        for name in names:
            with self.subTest(scenario=name):
                self.assertIsNone(results[name], f"{name} via {url}: {results[name]}")
        return failed, out


@unittest.skipUnless(missing() is None, missing() or "")
class SwitchboardOpenWire(JmsCase):
    """Every scenario, once per URL variant, against one Switchboard with an OpenWire listener."""

    @classmethod
    def setUpClass(cls):
        cls.ow_port = sbtest.free_port()
        cls.tls_port = sbtest.free_port()
        cls.broker = sbtest.Broker({"broker": {"advisories": True}})
        cert, key, cls.truststore = make_tls_files(cls.broker.dir)
        cls.broker.config["listeners"] += [
            {"name": "openwire", "protocol": "openwire", "address": HOST, "port": cls.ow_port},
            {"name": "openwire-tls", "protocol": "openwire", "address": HOST, "port": cls.tls_port,
             "tls": {"cert": cert, "key": key}}]
        cls.broker.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.broker.stop()
        finally:
            cls.broker.cleanup()
            cls.broker.remove_dir()

    def variant(self, key):
        url = f"tcp://{HOST}:{self.ow_port}{VARIANTS[key]}"
        extra = EXTRA["switchboard"] + [f"tls:{self.tls_port}:{self.truststore}:{TRUST_PASSWORD}"] if key == "default" else []
        failed, out = self.check_variant(url, "sb-" + key, key, extra)
        if failed:
            sys.stderr.write(f"\n[{key}] JVM output:\n{out}\n{self.broker.describe()}\n")

    def test_default(self):
        self.variant("default")

    def test_version_1(self):
        self.variant("v1")

    def test_version_9(self):
        self.variant("v9")

    def test_version_10(self):
        self.variant("v10")

    def test_version_11(self):
        self.variant("v11")

    def test_loose_encoding(self):
        self.variant("loose")

    def test_no_cache(self):
        self.variant("nocache")

    def test_compression(self):
        self.variant("compressed")

    def test_size_prefix_disabled(self):
        self.variant("noprefix")


def verdicts(out, scenarios):
    results = {}
    for line in out.splitlines():
        if line.startswith("PASS "):
            results[line[5:]] = None
        elif line.startswith("FAIL "):
            name, _, why = line[5:].partition(": ")
            results[name] = why
    for s in scenarios:
        results.setdefault(s, "no verdict")
    return results


def wait_line(proc, want, timeout):
    """Reads proc's stdout until a line equal to `want` (True) or its end / the timeout (False)."""
    import select
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if line.rstrip("\n") == want:
            return True, seen
    return False, seen


@unittest.skipUnless(missing() is None, missing() or "")
class SwitchboardRestarts(JmsCase):
    """A durable subscription across a broker restart (the journal keeps it and its messages),
    and failover:(tcp://..,tcp://..) carrying on through one."""

    def setUp(self):
        self.ow_ports = [sbtest.free_port(), sbtest.free_port()]
        self.broker = sbtest.Broker({"store": {"type": "journal", "dir": "data", "sync": "always"},
                                     "broker": {"advisories": True}})
        for i, port in enumerate(self.ow_ports):
            self.broker.config["listeners"].append({"name": f"openwire{i}", "protocol": "openwire", "address": HOST,
                                                    "port": port})
        self.addCleanup(self.broker.remove_dir)
        self.addCleanup(self.broker.cleanup)
        self.broker.start()

    def restart(self):
        self.broker.stop()
        self.broker.start()

    def test_durable_subscriber_across_restart(self):
        url = f"tcp://{HOST}:{self.ow_ports[0]}"
        first = ["durable_subscribe", "durable_publish:3"]
        results, out = scenarios().run(url, "restart", first)
        self.assertEqual(results, {k: None for k in first}, out)
        self.restart()
        results, out = scenarios().run(url, "restart", ["durable_receive:3"])
        self.assertEqual(results, {"durable_receive:3": None}, f"{out}\n{self.broker.describe()}")

    def test_failover_through_restart(self):
        url = (f"failover:(tcp://{HOST}:{self.ow_ports[0]},tcp://{HOST}:{self.ow_ports[1]})"
               f"?initialReconnectDelay=50&maxReconnectDelay=500")
        proc = scenarios().start(url, "failover", ["failover:200"])
        try:
            ok, seen = wait_line(proc, "HALF", 120)
            self.assertTrue(ok, f"no HALF from the JVM: {seen}")
            self.restart()
            out, _ = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        results = verdicts("\n".join(seen) + "\n" + out, ["failover:200"])
        if os.environ.get("SB_VERBOSE"):
            sys.stderr.write(f"{seen}\n{out}\n{self.broker.log_tail(30)}\n")
        self.assertIsNone(results["failover:200"], f"{seen}\n{out}\n{self.broker.describe()}")


@unittest.skipUnless(missing() is None, missing() or "")
class CrossProtocol(JmsCase):
    """Done-when 3: JMS <-> STOMP, MQTT and AMQP with headers, property types and bodies as
    docs/mapping.md says."""

    @classmethod
    def setUpClass(cls):
        cls.ow_port = sbtest.free_port()
        cls.amqp_port = sbtest.free_port()
        cls.broker = sbtest.Broker({}, mqtt=True)
        cls.broker.config["listeners"] += [
            {"name": "openwire", "protocol": "openwire", "address": HOST, "port": cls.ow_port},
            {"name": "amqp", "protocol": "amqp", "address": HOST, "port": cls.amqp_port}]
        cls.broker.start()
        cls.url = f"tcp://{HOST}:{cls.ow_port}"

    @classmethod
    def tearDownClass(cls):
        try:
            cls.broker.stop()
        finally:
            cls.broker.cleanup()
            cls.broker.remove_dir()

    def jms_send(self, kind, name):
        results, out = scenarios().run(self.url, "x", [f"xsend:{kind}:{name}"])
        self.assertIsNone(results[f"xsend:{kind}:{name}"], out)

    def jms_receive(self, kind, name, count, send):
        """Starts a JMS consumer, runs send() once it is subscribed; its MSG lines."""
        role = f"xreceive:{kind}:{name}:{count}"
        proc = scenarios().start(self.url, "x", [role])
        try:
            ok, seen = wait_line(proc, "READY", 120)
            self.assertTrue(ok, f"the JMS consumer did not subscribe: {seen}")
            send()
            out, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertIsNone(verdicts(out, [role])[role], out)
        return [line for line in out.splitlines() if line.startswith("MSG ")]

    def test_jms_to_stomp(self):
        c = sbtest.StompClient(self.broker.port, auto_decode=False)
        self.addCleanup(c.abort)
        c.connect()
        c.subscribe("/queue/x.jms2stomp", "s1")
        self.jms_send("queue", "x.jms2stomp")
        text, data = c.get_messages(2)
        h = text.headers
        self.assertEqual(text.body, b"jms-text")
        self.assertEqual((h["correlation-id"], h["type"], h["priority"], h["persistent"]), ("c-1", "t-1", "7", "true"))
        self.assertEqual((h["s"], h["i"], h["l"], h["b"]), ("str", "42", str(1 << 40), "true"))
        self.assertEqual(float(h["d"]), 2.5)
        self.assertTrue(h["message-id"])
        self.assertEqual(data.headers.get("content-length"), "4")
        self.assertEqual(data.body, b"\x01\x02\x03\xff")

    def test_stomp_to_jms(self):
        c = sbtest.StompClient(self.broker.port)
        self.addCleanup(c.abort)
        c.connect()

        def send():
            c.send("/queue/x.stomp2jms", "from-stomp", headers={"correlation-id": "c-s", "type": "t-s", "priority": "7",
                                                                "persistent": "true", "color": "red"}, receipt=True)
            c.send("/queue/x.stomp2jms", b"\x01\x02", headers={"content-length": "2"}, receipt=True)
        lines = self.jms_receive("queue", "x.stomp2jms", 2, send)
        self.assertEqual(len(lines), 2, lines)
        # stomp.py always sends content-length: a bytes body (mapping.md), a BytesMessage.
        self.assertIn(f"MSG ActiveMQBytesMessage hex={b'from-stomp'.hex()} corr=c-s type=t-s prio=7 mode=2 ", lines[0])
        self.assertIn("color=String:red", lines[0])
        self.assertIn("MSG ActiveMQBytesMessage hex=0102 ", lines[1])

    def test_jms_to_mqtt(self):
        m = sbtest.MqttClient(self.broker.mqtt_port, client_id="x-jms2mqtt")
        self.addCleanup(m.abort)
        m.connect()
        m.subscribe("x/jms2mqtt", qos=1)
        self.jms_send("topic", "x.jms2mqtt")
        text, data = m.get_messages(2)
        self.assertEqual(text.payload, b"jms-text")
        self.assertEqual(data.payload, b"\x01\x02\x03\xff")

    def test_mqtt_to_jms(self):
        m = sbtest.MqttClient(self.broker.mqtt_port, client_id="x-mqtt2jms", version=4)
        self.addCleanup(m.abort)
        m.connect()
        lines = self.jms_receive("topic", "x.mqtt2jms", 1, lambda: m.publish("x/mqtt2jms", b"from-mqtt", qos=1))
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("MSG ActiveMQBytesMessage hex=" + b"from-mqtt".hex() + " ", lines[0])
        self.assertIn("mode=2", lines[0])   # QoS 1: persistent

    def test_jms_to_amqp(self):
        from proton.utils import BlockingConnection
        conn = BlockingConnection(f"amqp://{HOST}:{self.amqp_port}", timeout=sbtest.WAIT)
        self.addCleanup(conn.close)
        r = conn.create_receiver("x.jms2amqp")
        self.jms_send("queue", "x.jms2amqp")
        text = r.receive(timeout=sbtest.WAIT)
        r.accept()
        data = r.receive(timeout=sbtest.WAIT)
        r.accept()
        self.assertEqual(text.body, "jms-text")
        self.assertEqual((text.correlation_id, text.subject, text.priority, text.durable), ("c-1", "t-1", 7, True))
        p = text.properties
        self.assertEqual((p["s"], p["i"], p["l"], p["b"], p["d"]), ("str", 42, 1 << 40, True, 2.5))
        self.assertIsInstance(p["b"], bool)
        self.assertEqual(bytes(data.body), b"\x01\x02\x03\xff")

    def test_amqp_to_jms(self):
        from proton import Message
        from proton.utils import BlockingConnection
        conn = BlockingConnection(f"amqp://{HOST}:{self.amqp_port}", timeout=sbtest.WAIT)
        self.addCleanup(conn.close)
        snd = conn.create_sender("x.amqp2jms")

        def send():
            snd.send(Message(body="from-amqp", correlation_id="c-a", subject="t-a", priority=7, durable=True,
                             properties={"n": 7, "ok": False, "who": "amqp"}))
        lines = self.jms_receive("queue", "x.amqp2jms", 1, send)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("MSG ActiveMQTextMessage body=from-amqp corr=c-a type=t-a prio=7 mode=2 ", lines[0])
        self.assertIn("ok=Boolean:false", lines[0])
        self.assertIn("who=String:amqp", lines[0])
        self.assertIn("n=Long:7", lines[0])   # a Python int is an AMQP long


@unittest.skipUnless(missing() is None, missing() or "")
class Listeners(JmsCase):
    """Credentials through the authenticator, and OpenWire detected on an `auto` port."""

    def start_broker(self, extra, proto):
        port = sbtest.free_port()
        broker = sbtest.Broker(extra)
        broker.config["listeners"].append({"name": "ow", "protocol": proto, "address": HOST, "port": port})
        self.addCleanup(broker.remove_dir)
        self.addCleanup(broker.cleanup)
        broker.start()
        return broker, f"tcp://{HOST}:{port}"

    def test_credentials(self):
        from stomp_auth_test import passwd_line
        users_dir = tempfile.mkdtemp(prefix="sb-jms-users-")
        self.addCleanup(shutil.rmtree, users_dir, True)
        users = os.path.join(users_dir, "users")
        with open(users, "w") as f:
            f.write(passwd_line("jms", "s3cret") + "\n")
        broker, url = self.start_broker({"security": {"allow_anonymous": False, "users_file": users}}, "openwire")
        roles = ["login:jms:s3cret:accepted", "login:jms:wrong:refused", "login::x:refused"]
        results, out = scenarios().run(url, "auth", roles)
        self.assertEqual(results, {r: None for r in roles}, f"{out}\n{broker.describe()}")
        broker.stop()

    def test_auto_port(self):
        broker, url = self.start_broker({}, "auto")
        names = ["connect", "queue", "request_reply"]
        results, out = scenarios().run(url, "auto", names)
        self.assertEqual(results, {n: None for n in names}, f"{out}\n{broker.describe()}")
        broker.stop()


@unittest.skipUnless(missing() is None, missing() or "")
class TicketRegistry(JmsCase):
    """Done-when 2: two JVMs publish on one topic with their node id and a selector excluding
    their own; 10,000 each way arrive exactly once at the other node, none echoed back."""

    COUNT = 10000

    def test_two_nodes(self):
        port = sbtest.free_port()
        broker = sbtest.Broker({})
        broker.config["listeners"].append({"name": "openwire", "protocol": "openwire", "address": HOST, "port": port})
        self.addCleanup(broker.remove_dir)
        self.addCleanup(broker.cleanup)
        broker.start()
        url = f"tcp://{HOST}:{port}"
        a = scenarios().start(url, "registry", [f"registry:A:B:{self.COUNT}"])
        b = scenarios().start(url, "registry", [f"registry:B:A:{self.COUNT}"])
        try:
            for proc in (a, b):
                ok, seen = wait_line(proc, "READY", 120)
                self.assertTrue(ok, f"a node did not subscribe: {seen}")
            for proc in (a, b):
                proc.stdin.write("GO\n")
                proc.stdin.flush()
            outs = [proc.communicate(timeout=240)[0] for proc in (a, b)]
        finally:
            for proc in (a, b):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        for node, out in zip("AB", outs):
            name = f"registry:{node}:{'B' if node == 'A' else 'A'}:{self.COUNT}"
            self.assertIsNone(verdicts(out, [name])[name], f"node {node}: {out[-2000:]}\n{broker.describe()}")
        broker.stop()


@unittest.skipUnless(missing() is None and amqtest.missing() is None, missing() or amqtest.missing() or "")
class ActiveMQReference(JmsCase):
    """The same scenarios and variants against Debian's ActiveMQ 5.17: the scenarios' own check."""

    def test_reference(self):
        root = tempfile.mkdtemp(prefix="sb-jms-amq-")
        amq = amqtest.ActiveMQ("reference", root, persistent=False, advisory=True, scheduler=True)
        try:
            amq.start()
            amq.wait_ready()
            for key, options in VARIANTS.items():
                with self.subTest(variant=key):
                    extra = EXTRA["activemq"] if key == "default" else []
                    failed, out = self.check_variant(amq.url + options, "amq-" + key, key, extra)
                    if failed:
                        sys.stderr.write(f"\n[activemq {key}] JVM output:\n{out}\n{amq.describe()}\n")
        finally:
            amq.stop()
            if not os.environ.get("SB_KEEP_TMP"):
                shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sbtest.main()
