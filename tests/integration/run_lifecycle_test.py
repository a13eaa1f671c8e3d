# tests/integration/run_lifecycle_test.py — the process from outside: `switchboard check` on good
# and bad configs (errors name file, line and key), and clean exits on SIGINT/SIGTERM with clients.

import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import BrokerTestCase  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(*args, timeout=30):
    return subprocess.run([sbtest.BIN, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class CheckTest(unittest.TestCase):

    def setUp(self):
        d = tempfile.TemporaryDirectory(prefix="sbtest-check-")
        self.addCleanup(d.cleanup)
        self.dir = d.name

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text).lstrip("\n"))
        return path

    def assert_config_error(self, path, line, key, *args):
        proc = run_cli(*(args or ("check", "-c")), path)
        self.assertNotEqual(proc.returncode, 0, f"accepted a bad config:\n{proc.stdout}")
        err = proc.stderr
        self.assertIn(path, err, f"stderr does not name the file: {err!r}")
        self.assertTrue(re.search(re.escape(path) + rf":{line}\b", err) or
                        re.search(rf"\bline {line}\b", err),
                        f"stderr does not name line {line}: {err!r}")
        self.assertIn(key, err, f"stderr does not name the key {key!r}: {err!r}")
        return err

    def test_check_accepts_a_good_config(self):
        path = self.write("good.yaml", "\n".join(sbtest.to_yaml(
            sbtest.deep_merge(sbtest.base_config(61613),
                              {"stomp": {"heartbeat_floor_ms": 50},
                               "broker": {"max_redeliveries": 2}}))) + "\n")
        proc = run_cli("check", "-c", path)
        self.assertEqual(proc.returncode, 0, f"stdout={proc.stdout!r} stderr={proc.stderr!r}")

    def test_check_accepts_the_shipped_default_config(self):
        path = os.path.join(REPO, "conf", "switchboard.yaml")
        if not os.path.exists(path):
            self.skipTest(f"{path} not present")
        proc = run_cli("check", "-c", path)
        self.assertEqual(proc.returncode, 0, f"stdout={proc.stdout!r} stderr={proc.stderr!r}")

    def test_check_accepts_every_example_config(self):
        examples = os.path.join(REPO, "conf", "examples")
        names = sorted(n for n in os.listdir(examples) if n.endswith(".yaml"))
        self.assertGreaterEqual(len(names), 2)
        for name in names:
            proc = run_cli("check", "-c", os.path.join(examples, name))
            self.assertEqual(proc.returncode, 0, f"{name}: stdout={proc.stdout!r} stderr={proc.stderr!r}")

    def test_check_names_file_line_and_key_of_a_typo(self):
        path = self.write("typo.yaml", """
            # a typo in a key must not fall back to a default
            workers: 2
            log:
              level: info
            stomp:
              max_frame_byts: 1000
            listeners:
              - name: stomp
                protocol: stomp
                address: 127.0.0.1
                port: 61613
            """)
        self.assert_config_error(path, 6, "max_frame_byts")

    def test_check_names_file_line_and_key_of_an_out_of_range_port(self):
        path = self.write("port.yaml", """
            workers: 2
            listeners:
              - name: stomp
                protocol: stomp
                address: 127.0.0.1
                port: 70000
            """)
        self.assert_config_error(path, 6, "port")

    def test_check_names_file_line_and_key_of_a_non_numeric_port(self):
        path = self.write("port2.yaml", """
            workers: 2
            log:
              level: info
            listeners:
              - name: stomp
                protocol: stomp
                address: 127.0.0.1
                port: sixty
            """)
        self.assert_config_error(path, 8, "port")

    def test_check_rejects_a_bad_top_level_value(self):
        path = self.write("workers.yaml", """
            workers: many
            listeners:
              - name: stomp
                protocol: stomp
                address: 127.0.0.1
                port: 61613
            """)
        self.assert_config_error(path, 1, "workers")

    def test_run_with_a_bad_config_exits_non_zero_naming_the_key(self):
        path = self.write("typo-run.yaml", """
            workers: 2
            broker:
              max_redelivries: 3
            listeners:
              - name: stomp
                protocol: stomp
                address: 127.0.0.1
                port: 61613
            """)
        self.assert_config_error(path, 3, "max_redelivries", "run", "-c")

    def test_check_of_a_missing_file_fails(self):
        proc = run_cli("check", "-c", os.path.join(self.dir, "nope.yaml"))
        self.assertNotEqual(proc.returncode, 0)

    def test_version(self):
        proc = run_cli("version")
        self.assertEqual(proc.returncode, 0)
        self.assertIn("switchboard", proc.stdout)


class SignalTest(BrokerTestCase):

    def stop_with(self, sig):
        raw = self.raw("1.2")
        raw.send_frame("SUBSCRIBE", {"id": "s", "destination": "/queue/life", "receipt": "sub"})
        self.assertEqual(raw.expect("RECEIPT").headers.get("receipt-id"), "sub")
        py = self.client()
        py.subscribe("/topic/life", "t")

        self.broker.signal(sig)
        code = self.broker.wait_exit(5)
        if code is None:
            self.fail(f"broker still running 5 s after {sig.name}\n{self.broker.describe()}")
        self.assertEqual(code, 0, f"exit code after {sig.name}\n{self.broker.describe()}")
        frames = raw.wait_closed(timeout=5)   # the client sees its connection closed
        self.assertEqual([f for f in frames if f.command not in ("ERROR", "RECEIPT")], [])
        self.assertTrue(py.disconnected.wait(5), "stomp.py client not disconnected")

    def test_sigint_with_connected_clients_exits_zero(self):
        self.stop_with(signal.SIGINT)

    def test_sigterm_with_connected_clients_exits_zero(self):
        self.stop_with(signal.SIGTERM)

    def test_sigterm_with_unacked_messages_exits_zero(self):
        consumer = self.client()
        consumer.subscribe("/queue/pending", "s", ack="client-individual")
        producer = self.client()
        for i in range(100):
            producer.send("/queue/pending", f"p{i}", receipt=(i == 99))
        consumer.get_messages(100)
        self.stop_with(signal.SIGTERM)


if __name__ == "__main__":
    sbtest.main()
