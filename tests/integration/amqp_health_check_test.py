# tests/integration/amqp_health_check_test.py — the gateway's `amqp` health check against a real
# Switchboard AMQP listener: it does the SASL exchange (ANONYMOUS, pipelined) and passes on the
# open that follows; a broker that refuses ANONYMOUS still answers (up, as an MQTT check's
# "not authorized"); a server that sends the SASL header and closes is down (the header alone
# passes no more).

import os
import socket
import sys
import tempfile
import threading
import unittest

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import HOST  # noqa: E402
from gateway_relay_test import GatewayTestCase, backend, wait_for  # noqa: E402
from stomp_auth_test import passwd_line  # noqa: E402


class AmqpCheckTest(GatewayTestCase):

    def amqp_broker(self, extra=None):
        port = sbtest.free_port()
        b = sbtest.Broker(sbtest.deep_merge({"log": {"level": "debug"}}, extra))
        self.backend_broker = b
        b.config["listeners"].append({"name": "amqp", "protocol": "amqp", "address": HOST, "port": port})
        self.addCleanup(b.remove_dir)
        self.addCleanup(b.cleanup)
        self.addCleanup(b.stop)
        b.start()
        return port

    def gateway_checking(self, port):
        return self.start_gateway(
            [{"name": "front", "protocol": "tcp", "backend": "amqp"}],
            [backend("amqp", [{"name": "s", "address": f"{HOST}:{port}"}], check="amqp")])

    @staticmethod
    def log_of(b):
        with open(b.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def test_sasl_exchange_then_open(self):
        g = self.gateway_checking(self.amqp_broker())
        wait_for(lambda: g.server("amqp", "s")["checks_passed"] >= 2, 5, "passed checks")
        self.assertTrue(g.server("amqp", "s")["up"])
        # The broker saw the probe's open after SASL ANONYMOUS (its container-id is the check's).
        self.assertRegex(self.log_of(self.backend_broker), r"proto=amqp user= container=switchboard-check")

    def test_broker_refusing_anonymous_still_answers(self):
        users_dir = tempfile.TemporaryDirectory(prefix="sbtest-users-")
        self.addCleanup(users_dir.cleanup)
        users = os.path.join(users_dir.name, "users")
        with open(users, "w") as f:
            f.write(passwd_line("alice", "pw") + "\n")
        g = self.gateway_checking(self.amqp_broker({"security": {"allow_anonymous": False, "users_file": users}}))
        wait_for(lambda: g.server("amqp", "s")["checks_passed"] >= 2, 5, "passed checks")
        self.assertTrue(g.server("amqp", "s")["up"])
        self.assertIn("reason=authentication_failed", self.log_of(self.backend_broker))

    def test_sasl_header_alone_is_down(self):
        # A server that answers every connection with the SASL header and closes.
        srv = socket.socket()
        srv.bind((HOST, 0))
        srv.listen(16)
        srv.settimeout(0.2)
        self.addCleanup(srv.close)
        stop = threading.Event()
        self.addCleanup(stop.set)

        def serve():
            while not stop.is_set():
                try:
                    c, _ = srv.accept()
                except OSError:
                    continue
                with c:
                    c.sendall(b"AMQP\x03\x01\x00\x00")
        threading.Thread(target=serve, daemon=True).start()
        g = self.gateway_checking(srv.getsockname()[1])
        wait_for(lambda: g.server("amqp", "s")["checks_failed"] >= 2, 5, "failed checks")
        s = g.server("amqp", "s")
        self.assertFalse(s["up"], s)
        self.assertEqual(s["checks_passed"], 0, s)


if __name__ == "__main__":
    sbtest.main()
