# tests/integration/docs_examples_test.py — what the docs tell a new user holds: the README's
# quick-start client commands work as written (and give the same output every time), and the
# default configuration file shows every configuration key the docs describe.

import os
import re
import shlex
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import HOST, MqttTestCase  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(rel):
    with open(os.path.join(REPO, rel), encoding="utf-8") as f:
        return f.read()


def readme_try_it_commands():
    """The shell lines of the README's "Try it" block, comments stripped."""
    text = read("README.md")
    m = re.search(r"Try it with any STOMP or MQTT client.*?```sh\n(.*?)```", text, re.S)
    assert m, "README.md has no 'Try it' block"
    lines = []
    for line in m.group(1).splitlines():
        line = line.split("  #", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def uncommented_default_config():
    """conf/switchboard.yaml with its commented-out key lines (`# key: …`, `# - …`) enabled."""
    out = []
    for line in read("conf/switchboard.yaml").splitlines():
        m = re.match(r"^(\s*)# ( *)([a-z_]+:|- )(.*)$", line)
        out.append(m.group(1) + m.group(2) + m.group(3) + m.group(4) if m else line)
    return "\n".join(out) + "\n"


def documented_keys():
    """Key paths from the configuration tables: docs/configuration.md (full paths) and
    docs/mqtt.md's `mqtt:` table (names within the section)."""
    keys = []
    for line in read("docs/configuration.md").splitlines():
        m = re.match(r"^\| `([^`]+)`( / `([^`]+)`)? \|", line)
        if m:
            keys += [k for k in (m.group(1), m.group(3)) if k]
    mqtt = read("docs/mqtt.md")
    section = mqtt[mqtt.index("## Configuration"):]
    for line in section.splitlines():
        m = re.match(r"^\| `([a-z_]+)` \|", line)
        if m:
            keys.append("mqtt." + m.group(1))
    return keys


def has_path(doc, path):
    node = doc
    for part in path.split("."):
        if part.endswith("[]"):
            node = node.get(part[:-2]) if isinstance(node, dict) else None
            if not isinstance(node, list) or not node:
                return False
            # Any element that has the rest of the path will do.
            rest = path.split(part + ".", 1)[1] if part + "." in path else ""
            return not rest or any(has_path(e, rest) for e in node)
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


class ReadmeExampleTest(MqttTestCase):

    def test_try_it_commands_work_as_written(self):
        lines = readme_try_it_commands()
        self.assertTrue(any(l.startswith("mosquitto_sub") for l in lines), lines)
        outputs = []
        for line in lines:
            argv = shlex.split(line)
            if argv[0].startswith("mosquitto_"):
                argv += ["-h", HOST, "-p", str(self.mqtt_port)]
            elif argv[0] == "/usr/bin/python3" and argv[1].endswith("stomp_hello.py"):
                argv = [argv[0], os.path.join(REPO, argv[1]), str(self.port)]
            else:
                self.fail(f"the README's example has a command this test does not know: {line}")
            # Run one after the other, each to its end (bounded): nothing is left running.
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                                  stdin=subprocess.DEVNULL)
            self.assertEqual(proc.returncode, 0, f"{line}: {proc.stdout}{proc.stderr}")
            outputs.append(proc.stdout.strip())
        self.assertIn("received on /queue/hello: hello from STOMP", outputs)
        self.assertEqual(outputs[-1], "greetings/en hello", outputs)


class DefaultConfigTest(unittest.TestCase):

    def test_every_documented_key_is_in_the_default_config(self):
        doc = yaml.safe_load(uncommented_default_config())
        keys = documented_keys()
        self.assertGreater(len(keys), 30, keys)
        missing = [k for k in keys if not has_path(doc, k)]
        self.assertEqual(missing, [], "documented keys that conf/switchboard.yaml does not show")

    def test_the_commented_sections_are_a_valid_configuration(self):
        with tempfile.TemporaryDirectory(prefix="sbtest-conf-") as d:
            cert, key = os.path.join(d, "server.pem"), os.path.join(d, "server.key")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                            "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                           check=True, capture_output=True, timeout=60)
            text = uncommented_default_config()
            text = text.replace("/etc/switchboard/server.pem", cert).replace("/etc/switchboard/server.key", key)
            text = text.replace("./data", os.path.join(d, "data"))
            path = os.path.join(d, "full.yaml")
            with open(path, "w") as f:
                f.write(text)
            proc = subprocess.run([sbtest.BIN, "check", "-c", path], capture_output=True, text=True,
                                  timeout=30, stdin=subprocess.DEVNULL)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            self.assertIn("(7 listeners)", proc.stdout)   # stomp, mqtt, amqp, openwire, websocket + the two commented ones


if __name__ == "__main__":
    sbtest.main()
