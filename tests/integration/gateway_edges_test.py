# tests/integration/gateway_edges_test.py — the gateway's edges seen from outside (issue 16):
# the refusal an MQTT client gets from a `protocol: mqtt` listener whose backend has no server
# up (its own version's CONNACK, read from its CONNECT without detection), and /metrics label
# values that stay valid Prometheus text whatever bytes a destination name holds.
#
#   python3 gateway_edges_test.py --bin build/switchboard

import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import HOST, WAIT, MqttClient, free_port  # noqa: E402
from gateway_relay_test import GatewayTestCase, backend, wait_for  # noqa: E402

# MQTT 5 CONNECT, client id "v5", clean start, keep alive 30, no properties.
CONNECT_V5 = b"\x10\x0f\x00\x04MQTT\x05\x02\x00\x1e\x00\x00\x02v5"
# MQTT 3.1.1 CONNECT, client id "v4".
CONNECT_V311 = b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x1e\x00\x02v4"
CONNACK_V5_SERVER_UNAVAILABLE = b"\x20\x03\x00\x88\x00"     # reason 0x88, property length 0
CONNACK_V311_SERVER_UNAVAILABLE = b"\x20\x02\x00\x03"        # return code 3


def read_to_close(sock, timeout=WAIT):
    """Everything the server sends until it closes; raises on a reset (ConnectionResetError)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"not closed within {timeout}s; got {data!r}")


class MqttRefusalTest(GatewayTestCase):
    """A `protocol: mqtt` listener runs no detection: the refusal must still follow the
    version of the client's CONNECT."""

    def start_refusing(self):
        dead = free_port()
        g = self.start_gateway(
            [{"name": "mq", "protocol": "mqtt", "backend": "gone"}],
            [backend("gone", [{"name": "d1", "address": f"{HOST}:{dead}"}])])
        wait_for(lambda: not g.server("gone", "d1")["up"], 3, "d1 down")
        return g

    def raw(self, port):
        s = socket.create_connection((HOST, port), timeout=WAIT)
        self.addCleanup(s.close)
        return s

    def test_mqtt5_connect_gets_the_v5_connack_0x88_then_a_clean_close(self):
        g = self.start_refusing()
        s = self.raw(g.port)
        s.sendall(CONNECT_V5)
        self.assertEqual(read_to_close(s), CONNACK_V5_SERVER_UNAVAILABLE)

    def test_mqtt311_connect_gets_return_code_3_then_a_clean_close(self):
        g = self.start_refusing()
        s = self.raw(g.port)
        s.sendall(CONNECT_V311)
        self.assertEqual(read_to_close(s), CONNACK_V311_SERVER_UNAVAILABLE)

    def test_a_connect_in_pieces_is_answered_once_whole(self):
        g = self.start_refusing()
        s = self.raw(g.port)
        s.sendall(CONNECT_V5[:3])      # not even the protocol level yet
        s.settimeout(0.3)
        with self.assertRaises(socket.timeout, msg="answered before the CONNECT was complete"):
            s.recv(16)
        s.sendall(CONNECT_V5[3:])
        self.assertEqual(read_to_close(s), CONNACK_V5_SERVER_UNAVAILABLE)

    def test_paho_v5_and_v311_clients_read_their_refusal(self):
        g = self.start_refusing()
        for version, code in ((5, 0x88), (4, 3)):
            c = MqttClient(g.port, f"paho-refused-{version}", version=version)
            self.addCleanup(c.close)
            _, rc, _ = c.connect(expect_rc=None)
            self.assertEqual(rc, code, f"paho MQTT version {version}: CONNACK code")
        self.assertGreaterEqual(g.status()["backends"][0]["refused"], 2)


class StompRefusalTest(GatewayTestCase):
    """A `protocol: stomp` listener with no server up answers the client's whole CONNECT with
    an ERROR frame, then closes cleanly (no reset that would lose the ERROR)."""

    def test_connect_gets_an_error_frame_then_a_clean_close(self):
        dead = free_port()
        g = self.start_gateway(
            [{"name": "st", "protocol": "stomp", "backend": "gone"}],
            [backend("gone", [{"name": "d1", "address": f"{HOST}:{dead}"}])])
        wait_for(lambda: not g.server("gone", "d1")["up"], 3, "d1 down")
        s = socket.create_connection((HOST, g.port), timeout=WAIT)
        self.addCleanup(s.close)
        connect = b"\n\nCONNECT\naccept-version:1.2\nhost:localhost\nlogin:someone\npasscode:x\n\n\x00"
        s.sendall(connect[:20])        # part of the frame: nothing is answered yet
        s.settimeout(0.3)
        with self.assertRaises(socket.timeout, msg="answered before the CONNECT was complete"):
            s.recv(16)
        s.sendall(connect[20:])
        data = read_to_close(s)        # a reset raises ConnectionResetError here
        self.assertTrue(data.startswith(b"ERROR\n"), data)
        self.assertIn(b"\nmessage:no server available\n", data)
        self.assertTrue(data.endswith(b"\x00"), data)


# Prometheus text format 0.0.4: a label value is any UTF-8 with \\, \" and \n escaped, and
# those are the only escapes.
LABEL = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*="((?:[^"\\\n]|\\[\\"n])*)"')


class MetricsLabelTest(GatewayTestCase):
    def test_persistent_mqtt_session_labels_are_printable_and_escaped(self):
        g = self.start_gateway([{"name": "mqtt", "protocol": "mqtt"}], [])
        c = MqttClient(g.port, "pers1", version=4, clean=False)
        self.addCleanup(c.close)
        c.connect()
        c.subscribe("p/x", qos=1)
        text = g.metrics()
        lines = [l for l in text.splitlines() if l.startswith("switchboard_destination_depth{")]
        self.assertTrue(any("pers1" in l for l in lines), f"no durable queue in /metrics:\n{text}")
        for line in text.splitlines():
            bad = [ch for ch in line if ord(ch) < 0x20 or ord(ch) == 0x7f]
            self.assertEqual(bad, [], f"control characters in /metrics line {line!r}")
            if "{" in line and not line.startswith("#"):
                labels = line[line.index("{") + 1:line.rindex("}")]
                rest = LABEL.sub("", labels).replace(",", "")
                self.assertEqual(rest, "", f"labels that are not valid Prometheus text: {line!r}")
        self.assertIn('switchboard_destination_depth{destination="queue://$durable.mqtt:pers1\\\\x1fp/x"}',
                      text)


if __name__ == "__main__":
    sbtest.main()
