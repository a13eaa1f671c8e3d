# tests/integration/run_lifecycle_test.py — the process from outside: `switchboard check` on good
# and bad configs (errors name file, line and key; it loads what `run` loads), the command line's
# exit codes (0 success, 1 runtime failure, 2 usage or configuration error) and one-line
# messages, log level names, and clean exits on SIGINT/SIGTERM with clients.

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import BrokerTestCase  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(*args, timeout=30, input=None):
    return subprocess.run([sbtest.BIN, *args], capture_output=True, text=True, timeout=timeout,
                          **({"input": input} if input is not None else {"stdin": subprocess.DEVNULL}))


def make_cert(directory):
    """A self-signed certificate and key for localhost: (cert, key)."""
    cert, key = os.path.join(directory, "c.pem"), os.path.join(directory, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


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
        # check reads the certificates an example names: its site paths become test ones.
        cert, key = make_cert(self.dir)
        examples = os.path.join(REPO, "conf", "examples")
        names = sorted(n for n in os.listdir(examples) if n.endswith(".yaml"))
        self.assertGreaterEqual(len(names), 2)
        for name in names:
            with open(os.path.join(examples, name)) as f:
                text = f.read()
            text = re.sub(r"cert: /\S+?\.crt", f"cert: {cert}", text)
            text = re.sub(r"key: /\S+?\.key", f"key: {key}", text)
            path = os.path.join(self.dir, name)
            with open(path, "w") as f:
                f.write(text)
            proc = run_cli("check", "-c", path)
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

    # -- check loads what run loads (issue 16, item 5)

    def listener_config(self, **extra):
        return sbtest.deep_merge(sbtest.base_config(sbtest.free_port()), extra)

    def assert_check_and_run_reject(self, cfg, *needles):
        """check and run both exit 2 with one line naming the problem; run binds nothing."""
        path = self.write("cfg.yaml", "\n".join(sbtest.to_yaml(cfg)) + "\n")
        for args in (("check", "-c", path), ("run", "-c", path)):
            proc = run_cli(*args, timeout=20)
            self.assertEqual(proc.returncode, 2, f"{args[0]}: stdout={proc.stdout!r} stderr={proc.stderr!r}")
            lines = proc.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, f"{args[0]}: not one line: {proc.stderr!r}")
            for needle in needles:
                self.assertIn(needle, lines[0], f"{args[0]}: {proc.stderr!r}")

    def test_check_and_run_reject_a_missing_tls_certificate_or_key(self):
        cert, key = make_cert(self.dir)
        for files, needle in (({"cert": os.path.join(self.dir, "none.crt"), "key": key}, "none.crt"),
                              ({"cert": cert, "key": os.path.join(self.dir, "none.key")}, "none.key")):
            cfg = self.listener_config()
            cfg["listeners"][0]["tls"] = files
            self.assert_check_and_run_reject(cfg, "listener stomp", needle)
        cfg = self.listener_config()   # the same with files that exist: accepted
        cfg["listeners"][0]["tls"] = {"cert": cert, "key": key}
        path = self.write("tls-ok.yaml", "\n".join(sbtest.to_yaml(cfg)) + "\n")
        proc = run_cli("check", "-c", path)
        self.assertEqual(proc.returncode, 0, proc.stderr)

    def test_check_and_run_reject_a_missing_users_file(self):
        cfg = self.listener_config(security={"allow_anonymous": False,
                                             "users_file": os.path.join(self.dir, "no-users")})
        self.assert_check_and_run_reject(cfg, "users_file", "no-users")

    def test_check_and_run_reject_a_data_directory_that_cannot_be_created(self):
        blocker = self.write("a-file", "not a directory\n")
        cfg = self.listener_config(store={"type": "journal", "dir": os.path.join(blocker, "data")})
        self.assert_check_and_run_reject(cfg, "store.dir", blocker)
        self.assertFalse(os.path.exists(os.path.join(blocker, "data")))

    def test_check_creates_nothing(self):
        data = os.path.join(self.dir, "not", "yet", "data")
        cfg = self.listener_config(store={"type": "journal", "dir": data})
        path = self.write("creatable.yaml", "\n".join(sbtest.to_yaml(cfg)) + "\n")
        proc = run_cli("check", "-c", path)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "not")))


class CommandLineTest(unittest.TestCase):
    """Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error; every failure
    one line on stderr (issue 16, items 4, 6, 7, 10)."""

    def setUp(self):
        d = tempfile.TemporaryDirectory(prefix="sbtest-cli-")
        self.addCleanup(d.cleanup)
        self.dir = d.name

    def assert_usage_error(self, proc, *needles):
        self.assertEqual(proc.returncode, 2, f"stdout={proc.stdout!r} stderr={proc.stderr!r}")
        lines = proc.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, f"not one line: {proc.stderr!r}")
        for needle in needles:
            self.assertIn(needle, lines[0])
        return lines[0]

    def test_usage_errors_exit_2_with_one_line(self):
        self.assert_usage_error(run_cli(), "command")
        self.assert_usage_error(run_cli("rnu"), "unknown command 'rnu'", "run")
        self.assert_usage_error(run_cli("run", "--bogus"), "--bogus")
        self.assert_usage_error(run_cli("check"), "--config")
        self.assert_usage_error(run_cli("check", "-c", os.path.join(self.dir, "nope.yaml")), "nope.yaml")
        self.assert_usage_error(run_cli("run", "-c", os.path.join(self.dir, "missing.yaml")), "missing.yaml")
        self.assert_usage_error(run_cli("passwd", "--iterations", "5"), "--iterations")

    def test_version_flag_and_help_exit_0(self):
        for args in (("--version",), ("version",)):
            proc = run_cli(*args)
            self.assertEqual((proc.returncode, proc.stdout.strip()), (0, "switchboard 0.1.0"), args)
        proc = run_cli("--help")
        self.assertEqual(proc.returncode, 0)
        self.assertIn("run", proc.stdout)

    def test_unknown_log_level_is_a_usage_error_naming_the_valid_ones(self):
        for level in ("chatty", "WARN", "warning"):
            line = self.assert_usage_error(run_cli("run", "--log-level", level, timeout=10), level)
            for valid in ("trace", "debug", "info", "warn", "error", "critical", "off"):
                self.assertIn(valid, line)

    def test_passwd_rejects_user_names_the_users_file_cannot_hold(self):
        for user in ("#admin", " bob", "bob ", "a:b", "tab\there"):
            proc = run_cli("passwd", user, input="secret\n")
            self.assertEqual(proc.returncode, 2, f"{user!r}: {proc.stderr!r}")
            self.assertEqual(len(proc.stderr.strip().splitlines()), 1, f"{user!r}: {proc.stderr!r}")
            self.assertIn("user name", proc.stderr)
            self.assertEqual(proc.stdout, "")
        proc = run_cli("passwd", "alice", input="secret\n")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(proc.stdout.startswith("alice:pbkdf2-sha256:"), proc.stdout)

    def run_config(self, cfg):
        path = os.path.join(self.dir, "run.yaml")
        with open(path, "w") as f:
            f.write("\n".join(sbtest.to_yaml(cfg)) + "\n")
        return path

    def test_a_port_in_use_exits_1_naming_the_listener_address_and_port(self):
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind((sbtest.HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = sbtest.base_config(port)
        cfg["listeners"][0]["name"] = "stomp-front"
        proc = run_cli("run", "-c", self.run_config(cfg), timeout=20)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn(f"listener stomp-front cannot listen on {sbtest.HOST}:{port}: Address already in use",
                      proc.stderr)
        self.assertNotIn("system:", proc.stderr)
        self.assertNotIn(".hpp", proc.stderr)
        # The admin endpoint likewise.
        cfg = sbtest.base_config(sbtest.free_port())
        cfg["admin"] = {"address": sbtest.HOST, "port": port}
        proc = run_cli("run", "-c", self.run_config(cfg), timeout=20)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn(f"admin cannot listen on {sbtest.HOST}:{port}: Address already in use", proc.stderr)
        self.assertNotIn("system:", proc.stderr)

    def test_log_lines_use_the_config_level_names(self):
        # A warning at start-up: a relay to a server that is not there.
        dead = sbtest.free_port()
        port = sbtest.free_port()
        cfg = sbtest.base_config(port)
        cfg["listeners"] = [{"name": "relay", "protocol": "tcp", "address": sbtest.HOST, "port": port,
                             "backend": "gone"}]
        cfg["backends"] = [{"name": "gone", "check": {"type": "none"},
                            "servers": [{"name": "g1", "address": f"{sbtest.HOST}:{dead}"}]}]
        path = self.run_config(cfg)
        log_path = os.path.join(self.dir, "log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sbtest.BIN, "run", "-c", path, "--log-level", "warn"],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            text = ""
            while "connect failed" not in text and time.monotonic() < deadline:
                try:
                    with socket.create_connection((sbtest.HOST, port), timeout=1) as c:
                        c.settimeout(3)
                        c.recv(1)      # the relay closes it once no server took it
                except OSError:
                    time.sleep(0.05)   # not listening yet: polling, no event to await
                with open(log_path, "rb") as f:
                    text = f.read().decode(errors="replace")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        self.assertRegex(text, r"\bwarn +\[gateway\] conn=\d+ backend=gone server=g1 connect failed", text)
        self.assertNotIn("warning", text)
        self.assertNotIn(" info ", text, "--log-level warn let info lines through")


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
