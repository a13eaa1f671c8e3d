# tests/integration/amqp_proton_cpp_test.py — the Qpid Proton C++ client (amqp_proton_cpp_client.cpp)
# against the real binary: queue send/receive with acknowledgement, topic fan-out, each outcome,
# request/reply over a dynamic node and the anonymous relay, and a 10 MiB message; then
# python3-qpid-proton reads what the C++ client sent.
#
#   python3 amqp_proton_cpp_test.py --bin build/switchboard --cpp-client build/tests/amqp_proton_cpp_client
# (or SB_AMQP_CPP_CLIENT in the environment; without either the default build path is tried).

import os
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from amqp_basic_test import AmqpTestCase  # noqa: E402

CPP_CLIENT = sbtest.ClientProgram("--cpp-client", "SB_AMQP_CPP_CLIENT", "amqp_proton_cpp_client")
MIB = 1 << 20


class ProtonCppTest(AmqpTestCase):

    def setUp(self):
        self.cpp_client = CPP_CLIENT.require(self)
        super().setUp()

    def run_cpp(self, scenario, *args, timeout=45):
        cmd = [self.cpp_client, "--port", str(self.amqp_port), "--scenario", scenario, *args]
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"C++ client hung: {cmd}")
        out = done.stdout.decode(errors="replace")
        self.assertEqual(done.returncode, 0, f"C++ client {scenario} {' '.join(args)} failed: {out.strip()}")
        self.assertIn(f"OK: {scenario}", out)
        return out

    def test_queue_send_receive_with_acknowledgement(self):
        self.run_cpp("queue", "--count", "500", "--address", "cpp.orders")

    def test_topic_fan_out(self):
        self.run_cpp("topic", "--count", "200", "--address", "cpp.prices")

    def test_each_outcome(self):
        self.run_cpp("outcomes", "--address", "cpp.outcomes")

    def test_request_reply_over_a_dynamic_node(self):
        self.run_cpp("request_reply", "--count", "20", "--address", "cpp.service")

    def test_a_10_mib_message(self):
        # Ten times the broker's max frame size (1 MiB): split into transfers both ways.
        self.run_cpp("queue", "--count", "2", "--size", str(10 * MIB), "--address", "cpp.big")

    def test_python_receiver_reads_what_the_cpp_client_sent(self):
        # The C++ client's queue run leaves nothing behind; a topic run seen from Python.
        c = self.connect()
        r = c.create_receiver("topic://cpp.watched", credit=100)
        self.run_cpp("topic", "--count", "20", "--address", "cpp.watched")
        got = [r.receive().body for _ in range(20)]
        self.assertEqual(got, [f"t{i}" for i in range(20)])
        r.accept()


if __name__ == "__main__":
    CPP_CLIENT.take_arg()
    sbtest.main()
