# tests/integration/mqtt_paho_cpp_test.py — the Paho MQTT C++ client (mqtt_paho_cpp_client.cpp)
# against the real binary: publish to itself and receive every message once, in order, at QoS
# 0/1/2 over MQTT 3.1.1 and 5; then a paho-python cross-check of what the C++ client sent.
#
#   python3 mqtt_paho_cpp_test.py --bin build/switchboard --cpp-client build/tests/mqtt_paho_cpp_client
# (or SB_MQTT_CPP_CLIENT in the environment; without either the default build path is tried).

import os
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import MqttTestCase  # noqa: E402

CPP_CLIENT = sbtest.ClientProgram("--cpp-client", "SB_MQTT_CPP_CLIENT", "mqtt_paho_cpp_client")


class PahoCppTest(MqttTestCase):

    def setUp(self):
        self.cpp_client = CPP_CLIENT.require(self)
        super().setUp()

    def run_cpp(self, *args, timeout=40):
        cmd = [self.cpp_client, "--port", str(self.mqtt_port), "--mode", "pubsub", *args]
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"C++ client hung: {cmd}")
        return done.returncode, done.stdout.decode(errors="replace")

    def assert_pubsub(self, *args):
        rc, out = self.run_cpp(*args)
        self.assertEqual(rc, 0, f"C++ client {' '.join(args)} failed: {out.strip()}")
        self.assertIn("OK:", out)

    def test_qos1_v311(self):
        self.assert_pubsub("--qos", "1", "--count", "1000", "--topic", "cpp/q1/v311")

    def test_qos1_v5(self):
        self.assert_pubsub("--qos", "1", "--count", "1000", "--topic", "cpp/q1/v5", "--v5")

    def test_qos0_and_qos2_both_versions(self):
        for version in ([], ["--v5"]):
            for qos in ("0", "2"):
                with self.subTest(qos=qos, v5=bool(version)):
                    self.assert_pubsub("--qos", qos, "--count", "300",
                                       "--topic", f"cpp/q{qos}/{len(version)}", *version)

    def test_python_subscriber_sees_what_the_cpp_client_sent(self):
        watcher = self.paho()
        watcher.subscribe("cpp/watched", 1)
        self.assert_pubsub("--qos", "1", "--count", "50", "--topic", "cpp/watched", "--v5")
        msgs = watcher.get_messages(50)
        self.assertEqual([m.payload for m in msgs], [f"cpp-{i}".encode() for i in range(50)])
        self.assertEqual([dict(getattr(m.properties, "UserProperty", [])).get("seq")
                          for m in msgs], [str(i) for i in range(50)])

    def test_client_reports_failure_when_nothing_listens(self):
        # The client's own failure path, so a pass above means something.
        port = sbtest.free_port()
        done = subprocess.run([self.cpp_client, "--port", str(port), "--mode", "pubsub",
                               "--qos", "1", "--count", "1", "--timeout-ms", "2000"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(done.returncode, 1, done.stdout)


if __name__ == "__main__":
    CPP_CLIENT.take_arg()
    sbtest.main()
