#!/usr/bin/python3
# tests/integration/gateway_control_test.py — runtime control of the gateway (issue 22): server
# states drain and maint and weights through the admin's REST calls, slow start counts, the
# queue (a waiting client gets the slot that frees; queue_timeout closes it; max_queue refuses),
# limits at the door per source address and per listener, HAProxy-like check statuses, and TLS
# checks against a mosquitto that only speaks TLS. Real mosquitto processes where a broker
# matters; small in-test echo servers where connections are counted.
#
#   python3 gateway_control_test.py --bin build/switchboard

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
import urllib.error
import urllib.request

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import HOST, WAIT, free_port  # noqa: E402
import amqtest  # noqa: E402
from amqtest import ActiveMQ  # noqa: E402
from gateway_relay_test import (INTERVAL_MS, FALL, RISE, GatewayTestCase, Mosquitto, backend,  # noqa: E402
                                make_cert, wait_for)


def post(g, path, body):
    """POST body to the admin endpoint; returns (status, text)."""
    req = urllib.request.Request(f"http://{HOST}:{g.admin_port}{path}", data=body.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def backends(g):
    with urllib.request.urlopen(f"http://{HOST}:{g.admin_port}/backends", timeout=WAIT) as r:
        return json.load(r)["backends"]


def server_of(g, b, s):
    for x in backends(g):
        if x["name"] == b:
            for y in x["servers"]:
                if y["name"] == s:
                    return y
    raise AssertionError(f"no server {b}/{s} in /backends")


def queue_of(g, b):
    return next(x["queue"] for x in backends(g) if x["name"] == b)


def echo_client(port, payload=b"ping", source=None, timeout=WAIT):
    """A connection through an echo relay; returns the socket once the payload came back, or
    None when the gateway closed it without an answer."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((HOST, port))
    try:
        s.sendall(payload)
        got = s.recv(64)
    except (ConnectionResetError, BrokenPipeError):
        got = b""
    if got == payload:
        return s
    s.close()
    return None


class ControlTestCase(GatewayTestCase):
    def echo(self, port, **kw):
        s = echo_client(port, **kw)
        if s:
            self.addCleanup(s.close)
        return s


class StateTest(ControlTestCase):
    def test_drain_keeps_existing_relays_maint_closes_them_ready_takes_new_ones(self):
        m1, m2 = self.mosquitto(), self.mosquitto()
        g = self.start_gateway(
            [{"name": "front", "protocol": "mqtt", "backend": "fleet"}],
            [backend("fleet", [{"name": "m1", "address": f"{HOST}:{m1.port}"},
                               {"name": "m2", "address": f"{HOST}:{m2.port}"}], check="mqtt")])
        wait_for(lambda: server_of(g, "fleet", "m1")["check"]["status"] == "L7OK", 5, "a first L7OK of m1")
        a = self.mqtt(g.port, "a")
        a.subscribe("st/a")
        self.assertIs(self.lands_on(a, "st/a", [m1, m2]), m1)

        status, body = post(g, "/backends/fleet/servers/m1/state", "drain")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["state"], "drain")
        a.ping()   # the relay on m1 goes on
        b = self.mqtt(g.port, "b")
        b.subscribe("st/b")
        self.assertIs(self.lands_on(b, "st/b", [m1, m2]), m2, "no new connection on a draining server")
        self.assertEqual(server_of(g, "fleet", "m1")["active"], 1)

        status, _ = post(g, "/backends/fleet/servers/m1/state?state=maint", "")
        self.assertEqual(status, 200)
        a.wait_closed(timeout=5)   # maint: closed by the gateway
        wait_for(lambda: server_of(g, "fleet", "m1")["active"] == 0, 5, "m1's relay gone")
        s = server_of(g, "fleet", "m1")
        self.assertEqual((s["state"], s["up"]), ("maint", True), "checks go on; the server is only out of service")
        c = self.mqtt(g.port, "c")
        c.subscribe("st/c")
        self.assertIs(self.lands_on(c, "st/c", [m1, m2]), m2)
        b.ping()
        self.assertIn('switchboard_backend_server_state{backend="fleet",server="m1",state="maint"} 1', g.metrics())

        status, _ = post(g, "/backends/fleet/servers/m1/state", '{"state": "ready"}')
        self.assertEqual(status, 200)
        d = self.mqtt(g.port, "d")
        d.subscribe("st/d")
        self.assertIs(self.lands_on(d, "st/d", [m1, m2]), m1, "ready again: first takes it back")
        self.assertRegex(g.log_tail(200), r"backend=fleet server=m1 state drain -> maint \(admin\); closing 1 relayed")

        self.assertEqual(post(g, "/backends/fleet/servers/m1/state", "disabled")[0], 400)
        self.assertEqual(post(g, "/backends/fleet/servers/m9/state", "ready")[0], 404)
        self.assertEqual(post(g, "/backends/nope/servers/m1/state", "ready")[0], 404)
        self.assertEqual(server_of(g, "fleet", "m1")["state"], "ready")

    def test_weight_changed_at_runtime(self):
        a, b = self.fake(), self.fake()
        g = self.start_gateway(
            [{"name": "relay", "protocol": "tcp", "backend": "rr"}],
            [backend("rr", [{"name": "a", "address": f"{HOST}:{a.port}"},
                            {"name": "b", "address": f"{HOST}:{b.port}"}], balance="roundrobin")])
        status, body = post(g, "/backends/rr/servers/a/weight", "weight=3")
        self.assertEqual(status, 200, body)
        for _ in range(40):
            self.assertIsNotNone(self.echo(g.port))
        self.assertEqual((a.relayed(), b.relayed()), (30, 10))
        self.assertEqual(server_of(g, "rr", "a")["weight"], 3)
        self.assertEqual(post(g, "/backends/rr/servers/a/weight", "0")[0], 400)


class SlowStartTest(ControlTestCase):
    SLOW_START_S = 6

    def test_a_server_back_in_service_gets_its_share_by_the_ramp(self):
        a, b = self.fake(), self.fake()
        g = self.start_gateway(
            [{"name": "relay", "protocol": "tcp", "backend": "rr"}],
            [backend("rr", [{"name": "a", "address": f"{HOST}:{a.port}"},
                            {"name": "b", "address": f"{HOST}:{b.port}"}], balance="roundrobin",
                     slow_start=f"{self.SLOW_START_S}s")])
        self.assertEqual(server_of(g, "rr", "b")["effective_weight"], 1.0, "no ramp at start")
        post(g, "/backends/rr/servers/b/state", "maint")
        post(g, "/backends/rr/servers/b/state", "ready")   # back in service: ramps over 6 s
        started = time.monotonic()
        for _ in range(30):
            self.assertIsNotNone(self.echo(g.port))
        took = time.monotonic() - started
        ew = server_of(g, "rr", "b")["effective_weight"]
        # After `took` of the ramp b weighs at most took/6 of a: its share of 30 is bounded by it.
        bound = 30 * min(1.0, (took + 0.2) / self.SLOW_START_S) + 1
        self.assertLess(b.relayed(), bound, f"b got {b.relayed()} of 30 in {took:.2f}s of the ramp")
        self.assertLess(b.relayed(), 13, "b is still ramping: clearly less than its half")
        self.assertLess(ew, 1.0)
        wait_for(lambda: server_of(g, "rr", "b")["effective_weight"] == 1.0, self.SLOW_START_S + 2, "the ramp's end")
        before = (a.relayed(), b.relayed())
        for _ in range(30):
            self.assertIsNotNone(self.echo(g.port))
        got_a, got_b = a.relayed() - before[0], b.relayed() - before[1]
        self.assertLessEqual(abs(got_a - got_b), 2, f"full weight: an even share ({got_a}, {got_b})")


class QueueTest(ControlTestCase):
    def test_a_waiting_client_gets_the_slot_that_frees(self):
        m = self.mosquitto()
        g = self.start_gateway(
            [{"name": "front", "protocol": "mqtt", "backend": "q"}],
            [backend("q", [{"name": "m", "address": f"{HOST}:{m.port}", "max_connections": 1}], check="mqtt",
                     queue_timeout="5s")])
        first = self.mqtt(g.port, "first")
        second = sbtest.RawMqtt(g.port, version=4)
        self.addCleanup(second.close)
        second.send(sbtest.connect_packet("q2", version=4))
        wait_for(lambda: queue_of(g, "q")["waiting"] == 1, 5, "the second client queued")
        self.assertEqual(second.packets_within(0.3), [], "no CONNACK while it waits")
        first.close()
        connack = second.expect(sbtest.CONNACK, timeout=5)   # the slot freed: relayed to mosquitto
        self.assertEqual(connack.code, 0)
        q = queue_of(g, "q")
        self.assertEqual((q["waiting"], q["queued_total"], q["timeouts"]), (0, 1, 0))

    def test_queue_timeout_closes_and_max_queue_refuses(self):
        f = self.fake()
        g = self.start_gateway(
            [{"name": "relay", "protocol": "tcp", "backend": "q"}],
            [backend("q", [{"name": "e", "address": f"{HOST}:{f.port}", "max_connections": 1}],
                     queue_timeout="1s", max_queue=1)])
        self.assertIsNotNone(self.echo(g.port))   # holds the one slot
        waiting = socket.create_connection((HOST, g.port), timeout=WAIT)
        self.addCleanup(waiting.close)
        waiting.sendall(b"x")
        wait_for(lambda: queue_of(g, "q")["waiting"] == 1, 5, "queued")
        t0 = time.monotonic()
        self.assertIsNone(self.echo(g.port), "max_queue 1: a second waiter is refused at once")
        self.assertLess(time.monotonic() - t0, 0.9, "refused before the waiter's queue_timeout")
        try:   # closed with its byte unread: a reset, or an EOF
            self.assertEqual(waiting.recv(16), b"", "closed after queue_timeout")
        except ConnectionResetError:
            pass
        self.assertGreaterEqual(time.monotonic() - t0, 0.7)
        m = g.metrics()
        self.assertIn('switchboard_backend_queue_timeouts_total{backend="q"} 1', m)
        self.assertIn('switchboard_backend_queue_full_total{backend="q"} 1', m)
        self.assertIn('switchboard_backend_queued_total{backend="q"} 1', m)
        self.assertIn('switchboard_backend_queue{backend="q"} 0', m)


class DoorTest(ControlTestCase):
    def test_connections_per_source(self):
        f = self.fake()
        g = self.start_gateway(
            [{"name": "plain", "protocol": "tcp", "backend": "e"},
             {"name": "guarded", "protocol": "tcp", "backend": "e", "max_connections_per_source": 3}],
            [backend("e", [{"name": "e", "address": f"{HOST}:{f.port}"}])])
        port = g.config["listeners"][1]["port"]
        held = [self.echo(port) for _ in range(3)]
        self.assertTrue(all(held))
        self.assertIsNone(self.echo(port), "a fourth from 127.0.0.1 is closed")
        self.assertIsNotNone(self.echo(port, source="127.0.0.2"), "another source has its own count")
        held[0].close()
        wait_for(lambda: self.echo(port) is not None, 5, "a slot back once a connection ended")
        self.assertIsNotNone(self.echo(g.port), "the other listener has no limit")
        self.assertIn('switchboard_listener_refused_total{listener="guarded",reason="max_connections_per_source"}',
                      g.metrics())
        refused = json.loads(urllib.request.urlopen(f"http://{HOST}:{g.admin_port}/status", timeout=WAIT).read())
        guarded = next(x for x in refused["listeners"] if x["name"] == "guarded")
        self.assertGreaterEqual(guarded["refused"]["max_connections_per_source"], 1)

    def test_connection_rate_per_source_and_per_listener(self):
        f = self.fake()
        g = self.start_gateway(
            [{"name": "plain", "protocol": "tcp", "backend": "e"},
             {"name": "src", "protocol": "tcp", "backend": "e", "max_rate_per_source": 5},
             {"name": "all", "protocol": "tcp", "backend": "e", "max_rate": 4}],
            [backend("e", [{"name": "e", "address": f"{HOST}:{f.port}"}])])
        src, whole = g.config["listeners"][1]["port"], g.config["listeners"][2]["port"]

        def burst(port, sources):
            """Connects from each source at once (the gateway decides at accept, within
            milliseconds), then counts the connections that echo."""
            socks = []
            for source in sources:
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self.addCleanup(c.close)
                c.settimeout(WAIT)
                c.bind((source, 0))
                c.connect((HOST, port))
                socks.append(c)
            ok = 0
            for c in socks:
                try:
                    c.sendall(b"ping")
                    ok += c.recv(8) == b"ping"
                except OSError:
                    pass
            return ok

        # A burst of one second's worth (5), then refusals; a token comes back every 0.2 s.
        ok = burst(src, ["127.0.0.1"] * 10)
        self.assertGreaterEqual(ok, 5)
        self.assertLessEqual(ok, 6)
        self.assertEqual(burst(src, ["127.0.0.3"]), 1, "another source has its own rate")
        ok = burst(whole, [f"127.0.1.{i + 1}" for i in range(8)])
        self.assertGreaterEqual(ok, 4)
        self.assertLessEqual(ok, 5, "the listener's rate holds whatever the source")
        m = g.metrics()
        self.assertRegex(m, r'switchboard_listener_refused_total\{listener="src",reason="max_rate_per_source"\} [1-9]')
        self.assertRegex(m, r'switchboard_listener_refused_total\{listener="all",reason="max_rate"\} [1-9]')


class TlsMosquitto(Mosquitto):
    """A mosquitto whose only listener speaks TLS."""

    def __init__(self, cert, key):
        super().__init__()
        # Started as root, mosquitto reads its certificate after dropping to its own user.
        for p in (os.path.dirname(cert), cert, key):
            os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port} {HOST}\nallow_anonymous true\npersistence false\n"
                    f"certfile {cert}\nkeyfile {key}\n")

    def start(self):
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: sbtest_accepts(self.port), 10, f"mosquitto (TLS) on {self.port}")
        return self


def sbtest_accepts(port):
    try:
        with socket.create_connection((HOST, port), timeout=0.3):
            return True
    except OSError:
        return False


class CheckStatusTest(ControlTestCase):
    def test_tls_checks_against_a_tls_only_mosquitto(self):
        cert, key = make_cert()
        other_ca, _ = make_cert()
        m = TlsMosquitto(cert, key).start()
        self.addCleanup(m.kill)

        def check(**kw):
            return {"type": "mqtt", "interval": "500ms", "timeout": "400ms", "fall": FALL, "rise": RISE, **kw}
        g = self.start_gateway(
            [{"name": "front", "protocol": "tcp", "backend": "tls"}],
            [dict(backend("tls", [{"name": "m", "address": f"{HOST}:{m.port}"}]),
                  check=check(tls=True, sni="localhost")),
             dict(backend("verified", [{"name": "m", "address": f"{HOST}:{m.port}"}]),
                  check=check(tls=True, sni="localhost", verify=True, ca=cert)),
             dict(backend("wrong_ca", [{"name": "m", "address": f"{HOST}:{m.port}"}]),
                  check=check(tls=True, sni="localhost", verify=True, ca=other_ca)),
             dict(backend("plain", [{"name": "m", "address": f"{HOST}:{m.port}"}]), check=check()),
             backend("nobody", [{"name": "gone", "address": f"{HOST}:{free_port()}"}])])
        bound = 0.5 * (FALL + 3) + 2
        wait_for(lambda: server_of(g, "tls", "m")["check"]["status"] == "L7OK", bound, "the MQTT check inside TLS")
        s = server_of(g, "tls", "m")
        self.assertTrue(s["up"] and s["check"]["tls"])
        self.assertGreater(s["check"]["duration_us"], 0)
        wait_for(lambda: server_of(g, "verified", "m")["check"]["status"] == "L7OK", bound, "verified against its CA")
        wait_for(lambda: not server_of(g, "wrong_ca", "m")["up"], bound, "an unverifiable certificate: down")
        w = server_of(g, "wrong_ca", "m")["check"]
        self.assertEqual(w["status"], "L6RSP")
        self.assertIn("TLS handshake", w["detail"])
        wait_for(lambda: not server_of(g, "plain", "m")["up"], bound, "MQTT in clear to a TLS port: down")
        self.assertIn(server_of(g, "plain", "m")["check"]["status"], ("L7RSP", "L7TOUT"))
        wait_for(lambda: server_of(g, "nobody", "gone")["check"]["status"] == "L4CON", bound, "nothing listening: L4CON")
        self.assertIn("connect", server_of(g, "nobody", "gone")["check"]["detail"])
        metrics = g.metrics()
        self.assertIn('switchboard_backend_server_check_status{backend="tls",server="m",status="L7OK"} 1', metrics)
        self.assertIn('switchboard_backend_server_check_status{backend="nobody",server="gone",status="L4CON"} 1', metrics)
        st = json.loads(urllib.request.urlopen(f"http://{HOST}:{g.admin_port}/status", timeout=WAIT).read())
        tls = next(b for b in st["backends"] if b["name"] == "tls")
        self.assertEqual(tls["servers"][0]["check_status"], "L7OK")
        self.assertRegex(g.log_tail(500), r"backend=wrong_ca server=m is DOWN: check=mqtt status=L6RSP")

    def test_a_stalled_server_is_l7tout_a_tcp_check_l4ok(self):
        stall, echo = self.fake("stall"), self.fake()
        g = self.start_gateway(
            [{"name": "front", "protocol": "tcp", "backend": "e"}],
            [backend("e", [{"name": "e", "address": f"{HOST}:{echo.port}"}]),
             backend("s", [{"name": "s", "address": f"{HOST}:{stall.port}"}], check="mqtt")])
        bound = INTERVAL_MS * (FALL + 3) / 1000 + 2
        wait_for(lambda: server_of(g, "s", "s")["check"]["status"] == "L7TOUT", bound, "a check that got no CONNACK")
        wait_for(lambda: server_of(g, "e", "e")["check"]["status"] == "L4OK", bound, "a tcp check")


@unittest.skipUnless(amqtest.missing() is None,
                     "needs Debian's activemq package (scripts/install-deps.sh installs it)")
class ActiveMQStateTest(ControlTestCase):
    """drain and maint in front of two real ActiveMQ brokers (STOMP, balance first, STOMP
    checks). Which broker a relayed client reached is read back from each broker's own port."""

    def test_drain_and_maint_in_front_of_activemq(self):
        root = tempfile.mkdtemp(prefix="sbgwctl-amq-")
        self.addCleanup(shutil.rmtree, root, True)
        a, b = ActiveMQ("a", root), ActiveMQ("b", root)
        self.addCleanup(a.stop)
        self.addCleanup(b.stop)
        a.start()
        b.start()
        a.wait_ready()
        b.wait_ready()
        g = self.start_gateway(
            [{"name": "front", "protocol": "stomp", "backend": "amq"}],
            [dict(backend("amq", [{"name": "a", "address": f"{HOST}:{a.stomp}"},
                                  {"name": "b", "address": f"{HOST}:{b.stomp}"}], check="stomp"),
                  check={"type": "stomp", "interval": "500ms", "timeout": "400ms", "fall": FALL, "rise": RISE})])
        wait_for(lambda: server_of(g, "amq", "a")["check"]["status"] == "L7OK", 10, "a first L7OK of a")

        def client():
            c = sbtest.RawStomp(g.port)
            self.addCleanup(c.close)
            c.connect()
            return c

        def lands_on(c):
            """Sends a message through the relayed client `c`; returns the broker that has it."""
            q = f"/queue/ctl-{uuid.uuid4().hex[:10]}"
            c.send_frame("SEND", {"destination": q, "receipt": "r"}, b"where")
            c.expect("RECEIPT", timeout=10)
            for m in (a, b):
                direct = sbtest.RawStomp(m.stomp)
                try:
                    direct.connect()
                    direct.send_frame("SUBSCRIBE", {"destination": q, "id": "1", "ack": "auto"})
                    try:
                        if direct.read_frame(timeout=2).command == "MESSAGE":
                            return m
                    except TimeoutError:
                        continue
                finally:
                    direct.close()
            return None

        first = client()
        self.assertIs(lands_on(first), a)
        self.assertEqual(post(g, "/backends/amq/servers/a/state", "drain")[0], 200)
        self.assertIs(lands_on(first), a, "drain: the relay on a goes on")
        self.assertIs(lands_on(client()), b, "drain: new clients go to b")
        self.assertEqual(post(g, "/backends/amq/servers/a/state", "maint")[0], 200)
        first.wait_closed(timeout=5)
        self.assertIs(lands_on(client()), b)
        self.assertEqual(post(g, "/backends/amq/servers/a/state", "ready")[0], 200)
        self.assertIs(lands_on(client()), a, "ready: first takes a again")


if __name__ == "__main__":
    sbtest.main()
