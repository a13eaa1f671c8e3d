# tests/integration/amqp_rhea_test.py — the rhea AMQP 1.0 client (npm, on Node.js) against the real
# binary: queue send/receive with acknowledgement, topic fan-out, credit and drain, each outcome,
# request/reply over a dynamic node, the anonymous relay, and the message fields rhea writes. The
# scenarios are in rhea/amqp_rhea_client.js, one node process per test.
#
#   python3 amqp_rhea_test.py --bin build/switchboard --node-modules build/tests/rhea/node_modules
# rhea comes from the package-lock.json beside the client; ctest's fixture
# integration.amqp_rhea_npm_ci installs it with `npm ci` into the build tree. Without
# --node-modules (or SB_RHEA_NODE_MODULES), tests/integration/rhea/node_modules is tried and, when
# missing, installed there the same way.

import os
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from amqp_basic_test import AmqpTestCase  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.join(_HERE, "rhea")
CLIENT = os.path.join(CLIENT_DIR, "amqp_rhea_client.js")
NODE_MODULES = os.environ.get("SB_RHEA_NODE_MODULES")


def take_node_modules_arg():
    """Takes --node-modules PATH (or --node-modules=PATH) out of sys.argv."""
    global NODE_MODULES
    argv = sys.argv
    for i, arg in enumerate(argv):
        if arg == "--node-modules" and i + 1 < len(argv):
            NODE_MODULES = argv[i + 1]
            del argv[i:i + 2]
            return
        if arg.startswith("--node-modules="):
            NODE_MODULES = arg.split("=", 1)[1]
            del argv[i]
            return


def ensure_rhea():
    """The node_modules directory holding rhea; installed with `npm ci` beside the client when
    none was given (a run outside ctest)."""
    global NODE_MODULES
    if NODE_MODULES:
        path = os.path.abspath(NODE_MODULES)
        if not os.path.isfile(os.path.join(path, "rhea", "package.json")):
            raise AssertionError(f"rhea is not installed in {path} (run `npm ci` where package-lock.json is)")
        return path
    path = os.path.join(CLIENT_DIR, "node_modules")
    if not os.path.isfile(os.path.join(path, "rhea", "package.json")):
        npm = shutil.which("npm")
        if not npm:
            raise AssertionError("npm not found: scripts/install-deps.sh installs Node.js and npm")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CLIENT_DIR, check=True,
                       stdin=subprocess.DEVNULL, timeout=300)
    return path


class RheaTest(AmqpTestCase):

    def setUp(self):
        self.node = shutil.which("node")
        if not self.node:
            self.fail("node not found: scripts/install-deps.sh installs Node.js")
        super().setUp()

    def run_scenario(self, name, timeout=45):
        env = dict(os.environ, NODE_PATH=NODE_MODULES_DIR)
        cmd = [self.node, CLIENT, "--port", str(self.amqp_port), "--scenario", name]
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            self.fail(f"rhea client hung: {cmd}")
        out = done.stdout.decode(errors="replace")
        self.assertEqual(done.returncode, 0, f"rhea scenario {name} failed:\n{out.strip()}")
        self.assertIn(f"OK: {name}", out)

    def test_queue_send_receive_with_acknowledgement(self):
        self.run_scenario("queue_ack")

    def test_topic_fan_out(self):
        self.run_scenario("topic_fanout")

    def test_credit_and_drain(self):
        self.run_scenario("credit_drain")

    def test_each_outcome(self):
        self.run_scenario("outcomes")

    def test_request_reply_over_a_dynamic_node(self):
        self.run_scenario("request_reply")

    def test_anonymous_relay(self):
        self.run_scenario("anonymous_relay")

    def test_message_fields_as_rhea_writes_them(self):
        self.run_scenario("message_fields")


if __name__ == "__main__":
    take_node_modules_arg()
    NODE_MODULES_DIR = ensure_rhea()
    sbtest.main()
