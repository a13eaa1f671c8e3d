# tests/bench/bench_smoke_test.py — switchboard-bench against the real broker: a STOMP queue
# round trip (every message received, JSON complete), a topic fan-out, MQTT with background
# wildcard subscriptions that must match nothing, AMQP 1.0 queues (unsettled, every send
# accepted), topics (pre-settled) and durable sends, and bad arguments (non-zero exit with a
# message). And the Java OpenWire load client of `compare.sh --openwire` (java/OpenWireBench.java,
# ActiveMQ's JMS client; skipped without a JDK and Debian's libactivemq-java): async non-persistent
# 1→1 and synchronous persistent sends, every message received once, the JSON the script reads.
# Run as: python3 bench_smoke_test.py --bin SWITCHBOARD --bench BENCH
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
import sbtest  # noqa: E402  (the harness that starts the broker on a free port)

BENCH = None
RUN_TIMEOUT = 60  # seconds; the tool's own --timeout is 30


class BenchSmokeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.broker = sbtest.Broker(mqtt=True)
        # AMQP before MQTT: the listeners bind in order, and start() waits for the MQTT port.
        cls.broker.amqp_port = sbtest.free_port()
        cls.broker.config["listeners"].insert(1, {"name": "amqp", "protocol": "amqp", "address": sbtest.HOST,
                                                  "port": cls.broker.amqp_port})
        cls.broker.start()
        cls.tmp = tempfile.mkdtemp(prefix="sbbench-")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.broker.stop()
        finally:
            cls.broker.remove_dir()

    def bench(self, *args):
        return subprocess.run([BENCH, *args], capture_output=True, text=True, timeout=RUN_TIMEOUT)

    def run_json(self, name, *args, protocol="stomp"):
        out = os.path.join(self.tmp, name + ".json")
        port = {"stomp": self.broker.port, "mqtt": self.broker.mqtt_port, "amqp": self.broker.amqp_port}[protocol]
        r = self.bench("--protocol", protocol, "--port", str(port), "--timeout", "30",
                       "--quiet", "--json", out, *args)
        self.assertEqual(r.returncode, 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}\n{self.broker.describe()}")
        with open(out) as f:
            return json.load(f), r.stdout

    def check_common(self, j):
        for key in ("sent", "received", "expected", "send_msgs_per_s", "receive_msgs_per_s",
                    "send_mb_per_s", "receive_mb_per_s", "latency_us", "scenario", "complete",
                    "timed_out", "errors", "exit_code"):
            self.assertIn(key, j)
        for key in ("p50", "p99", "p99_9", "max", "min", "mean", "count"):
            self.assertIn(key, j["latency_us"])
        self.assertTrue(j["complete"])
        self.assertFalse(j["timed_out"])
        self.assertEqual(j["errors"], [])
        self.assertEqual(j["exit_code"], 0)
        self.assertGreater(j["receive_msgs_per_s"], 0)
        self.assertGreater(j["latency_us"]["p50"], 0)
        self.assertLessEqual(j["latency_us"]["p50"], j["latency_us"]["p99"])
        self.assertLessEqual(j["latency_us"]["p99"], j["latency_us"]["max"])

    def test_queue_round_trip_receives_every_message(self):
        j, text = self.run_json("queue", "--count", "2000")
        self.check_common(j)
        self.assertEqual(j["sent"], 2000)
        self.assertEqual(j["received"], j["sent"])
        self.assertEqual(j["expected"], 2000)
        self.assertEqual(j["latency_us"]["count"], 2000)
        self.assertEqual(j["reordered"], 0)
        self.assertIn("p99.9", text)

    def test_confirmed_persistent_sends_are_all_confirmed(self):
        j, _ = self.run_json("confirm", "--count", "2000", "--confirm", "--window", "50",
                             "--persistent", "--producers", "2", "--prefix", "confirm")
        self.check_common(j)
        self.assertEqual(j["confirmed"], 2000)
        self.assertEqual(j["received"], 2000)

    def test_topic_delivers_once_per_consumer(self):
        j, _ = self.run_json("topic", "--destination", "topic", "--count", "1000",
                             "--consumers", "3", "--threads", "2")
        self.check_common(j)
        self.assertEqual(j["sent"], 1000)
        self.assertEqual(j["expected"], 3000)
        self.assertEqual(j["received"], 3000)

    def test_mqtt_background_subscriptions_match_nothing(self):
        # A background connection fails the run on any PUBLISH: a filter matching wrongly.
        j, text = self.run_json("background", "--count", "2000", "--background-subs", "5000",
                                "--background-connections", "3", protocol="mqtt")
        self.check_common(j)
        self.assertEqual(j["scenario"]["background_subs"], 5000)
        self.assertEqual(j["received"], 2000)
        self.assertIn("background-subs=5000", text)

    def test_amqp_queue_confirms_every_send_and_delivers_each_once(self):
        j, text = self.run_json("amqp-queue", "--count", "3000", "--producers", "2", "--consumers", "2",
                                "--window", "100", "--prefix", "amqpq", protocol="amqp")
        self.check_common(j)
        self.assertEqual(j["scenario"]["protocol"], "amqp")
        self.assertTrue(j["scenario"]["confirm"])
        self.assertEqual(j["sent"], 3000)
        self.assertEqual(j["confirmed"], 3000)
        self.assertEqual(j["received"], 3000)
        self.assertEqual(j["reordered"], 0)
        self.assertIn("window=100", text)

    def test_amqp_presettled_topic_delivers_once_per_consumer(self):
        j, _ = self.run_json("amqp-topic", "--destination", "topic", "--presettled", "--count", "1000",
                             "--consumers", "3", "--threads", "2", "--prefix", "amqpt", protocol="amqp")
        self.check_common(j)
        self.assertFalse(j["scenario"]["confirm"])
        self.assertEqual(j["confirmed"], 0)
        self.assertEqual(j["expected"], 3000)
        self.assertEqual(j["received"], 3000)

    def test_amqp_durable_sends_from_many_producers_are_all_accepted(self):
        j, _ = self.run_json("amqp-durable", "--persistent", "--producers", "8", "--count", "2000",
                             "--window", "16", "--prefix", "amqpd", protocol="amqp")
        self.check_common(j)
        self.assertTrue(j["scenario"]["persistent"])
        self.assertEqual(j["confirmed"], 2000)
        self.assertEqual(j["received"], 2000)

    def test_bad_arguments_exit_non_zero_with_a_message(self):
        for args in (["--size", "8"], ["--protocol", "openwire"], ["--protocol", "amqp", "--qos", "1"],
                     ["--presettled"], ["--count", "5", "--duration", "1"],
                     ["--qos", "1"], ["--protocol", "mqtt", "--destination", "queue"], ["--bogus"]):
            r = self.bench(*args)
            self.assertEqual(r.returncode, 2, f"{args}: {r.stderr}")
            self.assertIn("switchboard-bench:", r.stderr, args)
            self.assertIn("--help", r.stderr, args)

    def test_an_unreachable_broker_is_an_error_not_a_hang(self):
        r = self.bench("--port", str(sbtest.free_port()), "--count", "10", "--timeout", "10", "--quiet")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("connect", r.stdout)


JAVA_LIB = "/usr/share/java"
OW_JARS = ["activemq-client.jar", "geronimo-jms_1.1_spec.jar", "geronimo-j2ee-management-1.1-spec.jar",
           "hawtbuf.jar", "slf4j-api.jar", "slf4j-nop.jar"]
OW_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java", "OpenWireBench.java")


def no_java_client():
    if not shutil.which("javac") or not shutil.which("java"):
        return "needs a JDK (scripts/install-deps.sh installs openjdk-17-jdk-headless)"
    absent = [j for j in OW_JARS if not os.path.isfile(os.path.join(JAVA_LIB, j))]
    return f"needs Debian's libactivemq-java ({', '.join(absent)})" if absent else None


@unittest.skipUnless(no_java_client() is None, no_java_client() or "")
class OpenWireBenchSmokeTest(unittest.TestCase):
    """java/OpenWireBench.java against Switchboard's OpenWire listener (the memory store)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sbbench-ow-")
        classes = os.path.join(cls.tmp, "classes")
        os.makedirs(classes)
        cls.classpath = ":".join([classes] + [os.path.join(JAVA_LIB, j) for j in OW_JARS])
        r = subprocess.run(["javac", "-nowarn", "-encoding", "UTF-8", "-d", classes, "-cp", cls.classpath, OW_SOURCE],
                           capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            raise AssertionError(f"javac {OW_SOURCE}:\n{r.stdout}{r.stderr}")
        cls.broker = sbtest.Broker()
        cls.broker.ow_port = sbtest.free_port()
        cls.broker.config["listeners"].append({"name": "openwire", "protocol": "openwire", "address": sbtest.HOST,
                                               "port": cls.broker.ow_port})
        cls.broker.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.broker.stop()
        finally:
            cls.broker.remove_dir()

    def client(self, *args):
        return subprocess.run(["java", "-Xmx128m", "-cp", self.classpath, "OpenWireBench", *args],
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)

    def run_json(self, name, *args):
        out = os.path.join(self.tmp, name + ".json")
        r = self.client("--port", str(self.broker.ow_port), "--timeout", "30", "--warmup-s", "0.2",
                        "--broker-pid", str(self.broker.proc.pid), "--prefix", name, "--json", out, *args)
        self.assertEqual(r.returncode, 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}\n{self.broker.describe()}")
        with open(out) as f:
            j = json.load(f)
        self.assertTrue(j["complete"])
        self.assertFalse(j["timed_out"])
        self.assertEqual(j["errors"], [])
        self.assertEqual(j["reordered"], 0)
        self.assertEqual(j["scenario"]["protocol"], "openwire")
        self.assertGreater(j["send_msgs_per_s"], 0)
        self.assertGreater(j["client_cpu_s"], 0)
        self.assertGreaterEqual(j["broker_cpu_s"], 0)   # read from /proc
        return j

    def test_async_non_persistent_queue_delivers_each_message_once(self):
        j = self.run_json("owq", "--async", "--count", "3000", "--window", "100")
        self.assertFalse(j["scenario"]["confirm"])
        self.assertFalse(j["scenario"]["persistent"])
        self.assertEqual(j["sent"], 3000)
        self.assertEqual(j["confirmed"], 0)
        self.assertEqual(j["received"], 3000)
        self.assertEqual(j["latency_us"]["count"], 3000)
        self.assertGreater(j["receive_msgs_per_s"], 0)
        self.assertLessEqual(j["latency_us"]["p50"], j["latency_us"]["p99"])

    def test_synchronous_persistent_sends_from_many_producers_are_all_answered(self):
        j = self.run_json("owp", "--persistent", "--producers", "4", "--consumers", "1", "--count", "1000",
                          "--receive")
        self.assertTrue(j["scenario"]["confirm"])
        self.assertEqual(j["sent"], 1000)
        self.assertEqual(j["confirmed"], 1000)
        self.assertEqual(j["received"], 1000)

    def test_sends_for_a_duration_without_consumers(self):
        j = self.run_json("owd", "--persistent", "--producers", "2", "--consumers", "0", "--duration", "1")
        self.assertEqual(j["scenario"]["consumers"], 0)
        self.assertGreater(j["confirmed"], 0)
        self.assertEqual(j["confirmed"], j["sent"])
        self.assertEqual(j["received"], 0)

    def test_bad_arguments_exit_2(self):
        for args in (["--count", "5"], ["--port", "1", "--size", "8"], ["--port", "1", "--ack", "sometimes"],
                     ["--port", "1", "--bogus"]):
            r = self.client(*args)
            self.assertEqual(r.returncode, 2, f"{args}: {r.stdout}{r.stderr}")
            self.assertIn("OpenWireBench:", r.stderr, args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--bench", required=True)
    args, rest = parser.parse_known_args()
    sbtest.BIN = os.path.abspath(args.bin)  # the broker runs in its own temp dir
    BENCH = os.path.abspath(args.bench)
    unittest.main(argv=[sys.argv[0], *rest])
