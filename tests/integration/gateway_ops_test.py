# tests/integration/gateway_ops_test.py — operating the gateway (issue 16): /readyz and /healthz
# that say why, SIGHUP reloads that keep every connection, and on_server_up: close_backups
# (HAProxy's shutdown-backup-sessions) with two mosquitto processes.
#
#   python3 gateway_ops_test.py --bin build/switchboard

import ctypes
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import HOST, WAIT, Broker, RawMqtt, RawStomp, free_port, to_yaml  # noqa: E402
from gateway_relay_test import INTERVAL_MS, FALL, RISE, GatewayTestCase, backend, wait_for  # noqa: E402


def http_get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path, whatever the status."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=WAIT) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Listening:
    """A plain TCP listener on a given loopback port (a server that passes a tcp check):
    accepts and closes."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, port))
        self.sock.listen(64)
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def passwd_line(user, password):
    proc = subprocess.run([sbtest.BIN, "passwd", user], input=password + "\n",
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise AssertionError(f"switchboard passwd {user} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout.strip()


# ---------------------------------------------------------------------------------------------
# One thread of another process stopped, the others running: ptrace(2) stops a single task
# (SIGSTOP would stop the whole process). The tracer must be allowed to trace the broker (its
# parent is: Yama's ptrace_scope 1 lets a parent trace its child).

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207


class ThreadStop:
    def __init__(self, tid):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        self.libc.ptrace.restype = ctypes.c_long
        self.tid = tid
        self.attached = False

    def _call(self, request):
        if self.libc.ptrace(request, self.tid, None, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"ptrace({request:#x}, {self.tid}): {os.strerror(err)}")

    def stop(self):
        self._call(PTRACE_SEIZE)
        self.attached = True
        self._call(PTRACE_INTERRUPT)

    def resume(self):
        if self.attached:
            self.attached = False
            self._call(PTRACE_DETACH)


def thread_named(pid, name):
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == name:
                    return int(tid)
        except OSError:
            continue
    return None


def thread_state(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


class ProbeTest(GatewayTestCase):
    def test_readyz_503_with_the_reason_while_the_only_backend_has_no_server_up(self):
        port = free_port()
        server = Listening(port)
        self.addCleanup(server.close)
        g = self.start_gateway(
            [{"name": "relay", "protocol": "tcp", "backend": "b"}],
            [backend("b", [{"name": "s1", "address": f"{HOST}:{port}"}])])
        wait_for(lambda: g.server("b", "s1")["checks_passed"] >= 1, 5, "a first passed check")
        self.assertEqual(http_get(g.admin_port, "/readyz"), (200, "ok\n"))
        self.assertEqual(http_get(g.admin_port, "/healthz"), (200, "ok\n"))

        server.close()   # no server of the listener's only backend listens any more
        status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(http_get(g.admin_port, "/readyz")),
                                INTERVAL_MS * (FALL + 2) / 1000 + 3, "/readyz 503 once s1 is down")
        self.assertEqual(body, "listener relay: backend b has no server up\n")
        self.assertEqual(http_get(g.admin_port, "/healthz"), (200, "ok\n"), "alive all the same")

        server = Listening(port)   # back: passes a tcp check
        self.addCleanup(server.close)
        wait_for(lambda: http_get(g.admin_port, "/readyz") == (200, "ok\n"),
                 INTERVAL_MS * (RISE + 2) / 1000 + 3, "/readyz 200 once s1 is up again")

    def limited_broker(self, limits, extra):
        """A broker started through bash with `limits` (ulimit arguments) and SIGXFSZ ignored;
        an admin endpoint on g.admin_port."""
        wrapper_dir = tempfile.mkdtemp(prefix="sbtest-limits-")
        self.addCleanup(shutil.rmtree, wrapper_dir, True)
        wrapper = os.path.join(wrapper_dir, "switchboard-limited")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/bash\ntrap '' XFSZ\nulimit {limits}\nexec {shlex.quote(sbtest.BIN)} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        admin_port = free_port()
        g = Broker(dict(extra, admin={"address": HOST, "port": admin_port}))
        g.admin_port = admin_port
        self.addCleanup(g.remove_dir)
        self.addCleanup(g.cleanup)
        self.addCleanup(self._stop_checked, g)
        real_bin, sbtest.BIN = sbtest.BIN, wrapper
        try:
            g.start()
        finally:
            sbtest.BIN = real_bin
        self.gw = g
        return g

    def test_readyz_503_while_a_listener_cannot_accept_and_no_accept_loop(self):
        # 64 file descriptors: the broker runs out after some 50 connections.
        g = self.limited_broker("-n 64", {})
        admin = socket.create_connection((HOST, g.admin_port), timeout=WAIT)   # accepted now, asked later
        self.addCleanup(admin.close)
        clients = []
        self.addCleanup(lambda: [c.close() for c in clients])
        for _ in range(100):
            clients.append(socket.create_connection((HOST, g.port), timeout=WAIT))
        wait_for(lambda: "accept failed" in g.log_tail(400), 5, "the listener's accept failing")
        admin.sendall(b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.endswith(b"\n"):
            chunk = admin.recv(4096)
            if not chunk:
                break
            reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 503"), reply)
        self.assertTrue(reply.endswith(f"\r\n\r\nlistener stomp ({HOST}:{g.port}): not accepting connections\n".encode()),
                        reply)
        # A line when it starts failing, not one per retry: an accept loop would spin and log
        # thousands (a freed descriptor may let one more in, and the next fail again).
        self.assertLessEqual(g.log_tail(400).count("accept failed"), 3, g.log_tail(20))
        for c in clients:
            c.close()
        wait_for(lambda: "listener=stomp accepting again" in g.log_tail(400), 10, "accepting again")
        try:
            wait_for(lambda: http_get(g.admin_port, "/readyz") == (200, "ok\n"), 10, "/readyz 200 again")
        except AssertionError:
            kinds = {}
            for fd in os.listdir(f"/proc/{g.proc.pid}/fd"):
                try:
                    k = os.readlink(f"/proc/{g.proc.pid}/fd/{fd}").split(":")[0]
                except OSError:
                    continue
                kinds[k] = kinds.get(k, 0) + 1
            ss = subprocess.run(["ss", "-tan"], capture_output=True, text=True).stdout
            mine = [l for l in ss.splitlines() if f":{g.port} " in l or f":{g.admin_port} " in l]
            raise AssertionError(f"fds: {kinds}; sockets: {mine[:20]} ({len(mine)}); log: {g.log_tail(30)}")

    def test_readyz_503_once_the_journal_cannot_write(self):
        # The broker runs under a 1 MiB file size limit (SIGXFSZ ignored, so the write fails
        # with EFBIG as on a full disk): the first big persistent message cannot be journaled.
        g = self.limited_broker("-f 1024", {"store": {"type": "journal", "dir": "data", "sync": "never"}})
        admin_port = g.admin_port
        self.assertEqual(http_get(admin_port, "/readyz"), (200, "ok\n"))
        s = RawStomp(g.port)
        self.addCleanup(s.close)
        s.connect("1.2")
        s.send_frame("SEND", {"destination": "/queue/big", "persistent": "true", "receipt": "r1",
                              "content-length": str(2 << 20)}, b"x" * (2 << 20))
        reply = s.read_frame(timeout=10)
        self.assertEqual(reply.command, "ERROR", "a message the journal could not write is not confirmed")
        self.assertEqual(http_get(admin_port, "/readyz"),
                         (503, f"store: the journal in data cannot be written (a write failed: disk full or I/O error)\n"))
        self.assertEqual(http_get(admin_port, "/healthz"), (200, "ok\n"))

    def test_readyz_stays_200_while_the_kernel_takes_what_the_backend_cannot(self):
        # auto: MQTT goes to a backend whose server is down, STOMP to the kernel: still ready.
        g = self.start_gateway(
            [{"name": "front", "protocol": "auto", "routes": {"mqtt": {"backend": "b"}}}],
            [backend("b", [{"name": "gone", "address": f"{HOST}:{free_port()}"}])])
        wait_for(lambda: not g.server("b", "gone")["up"], INTERVAL_MS * (FALL + 2) / 1000 + 3, "gone down")
        self.assertEqual(http_get(g.admin_port, "/readyz"), (200, "ok\n"))

    def test_healthz_503_names_a_stalled_worker_and_recovers(self):
        admin_port = free_port()
        g = Broker({"workers": 2, "admin": {"address": HOST, "port": admin_port, "stall_timeout": "300ms"}})
        g.admin_port = admin_port
        self.addCleanup(g.remove_dir)
        self.addCleanup(g.cleanup)
        self.addCleanup(self._stop_checked, g)
        g.start()
        self.gw = g
        self.assertEqual(http_get(g.admin_port, "/healthz"), (200, "ok\n"))
        tid = thread_named(g.proc.pid, "sb-worker-0")
        self.assertIsNotNone(tid, "worker threads are named sb-worker-<index>")
        stopper = ThreadStop(tid)
        try:
            stopper.stop()
        except OSError as e:
            self.skipTest(f"ptrace is not permitted here: {e}")
        self.addCleanup(stopper.resume)
        wait_for(lambda: thread_state(g.proc.pid, tid) == "t", 5, "worker 0 in a tracing stop")
        status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(http_get(g.admin_port, "/healthz")),
                                5, "/healthz 503 while worker 0 is stalled")
        self.assertRegex(body, r"^worker 0: event loop stalled for \d+ ms \(admin\.stall_timeout 300 ms\)\n$")
        self.assertEqual(http_get(g.admin_port, "/readyz"), (200, "ok\n"), "/readyz does not wait for a worker")
        stopper.resume()
        wait_for(lambda: http_get(g.admin_port, "/healthz") == (200, "ok\n"), 5, "/healthz 200 once it turns again")


# ---------------------------------------------------------------------------------------------

class ReloadTest(unittest.TestCase):
    """The broker run with -c FILE; the test rewrites FILE and sends SIGHUP."""

    def broker_with(self, extra, mqtt=False):
        self.broker = Broker(extra, mqtt=mqtt)
        self.dir = self.broker.dir
        self.addCleanup(self.broker.remove_dir)
        self.addCleanup(self.broker.cleanup)
        self.addCleanup(self._stop_checked)
        return self.broker

    def _stop_checked(self):
        try:
            self.broker.stop()
        except AssertionError:
            sys.stderr.write(self.broker.describe() + "\n")
            raise

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before and hasattr(self, "broker"):
            sys.stderr.write(f"\n[{self.id()}] failed; {self.broker.describe()}\n")
        return out

    def log(self):
        with open(self.broker.log_path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")

    def hup_and_wait(self, marker):
        """SIGHUP, then waits for `marker` (a regex) in the log after this point."""
        start = len(self.log())
        self.broker.signal(signal.SIGHUP)
        found = wait_for(lambda: re.search(marker, self.log()[start:]), 5, f"log line {marker!r} after SIGHUP")
        self.assertTrue(self.broker.alive(), "the process must survive SIGHUP")
        return self.log()[start:], found

    def write(self, text):
        tmp = self.broker.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.broker.config_path)

    def stomp_login(self, user, password):
        """CONNECT on a raw socket: True for CONNECTED, False for ERROR."""
        raw = RawStomp(self.broker.port)
        try:
            raw.send_frame("CONNECT", {"accept-version": "1.2", "host": "localhost", "login": user, "passcode": password})
            return raw.read_frame().command == "CONNECTED"
        finally:
            raw.close()

    def servers_of(self, name):
        import json
        status, body = http_get(self.admin_port, "/status")
        self.assertEqual(status, 200)
        return [s["name"] for b in json.loads(body)["backends"] if b["name"] == name for s in b["servers"]]

    def test_sighup_reloads_users_log_level_and_backends_and_keeps_connections(self):
        self.alice = passwd_line("alice", "alice-pw")
        self.bob = passwd_line("bob", "bob-pw")
        self.admin_port = free_port()
        b = self.broker_with({
            "admin": {"address": HOST, "port": self.admin_port},
            "backends": [{"name": "b", "check": {"type": "none"},
                          "servers": [{"name": "s1", "address": f"{HOST}:{free_port()}"}]}],
        }, mqtt=True)
        self.users = os.path.join(b.dir, "users")
        with open(self.users, "w") as f:
            f.write(self.alice + "\n")
        b.config["security"] = {"allow_anonymous": False, "users_file": self.users}
        b.start()
        stomp = RawStomp(b.port)
        self.addCleanup(stomp.close)
        stomp.send_frame("CONNECT", {"accept-version": "1.2", "host": "localhost", "login": "alice", "passcode": "alice-pw"})
        stomp.expect("CONNECTED")
        stomp.send_frame("SUBSCRIBE", {"destination": "/queue/reload", "id": "s1", "receipt": "sub"})
        stomp.expect("RECEIPT")
        mqtt = RawMqtt(b.mqtt_port, version=4)
        self.addCleanup(mqtt.close)
        mqtt.connect("reload-m", username="alice", password=b"alice-pw")
        mqtt.subscribe("reload/t")
        self.assertFalse(self.stomp_login("bob", "bob-pw"), "bob is not a user yet")
        self.assertEqual(self.servers_of("b"), ["s1"])

        # New users file, log level and backend servers.
        with open(self.users, "w") as f:
            f.write(self.alice + "\n" + self.bob + "\n")
        cfg = dict(b.config)
        cfg["log"] = {"level": "debug"}
        cfg["backends"] = [{"name": "b", "check": {"type": "none"},
                            "servers": [{"name": "s1", "address": f"{HOST}:{free_port()}"},
                                        {"name": "s2", "address": f"{HOST}:{free_port()}"}]}]
        self.write("\n".join(to_yaml(cfg)) + "\n")
        text, _ = self.hup_and_wait(r"reload: done")
        self.assertIn("reload: log level info -> debug", text)
        self.assertNotIn("needs a restart", text)

        # The connections made before are still served.
        stomp.send_frame("SEND", {"destination": "/queue/reload", "receipt": "s"}, b"after hup")
        self.assertEqual(stomp.read_until(lambda f: f.command == "MESSAGE")[0].body, b"after hup")
        mqtt.publish("reload/t", b"mqtt after hup")
        self.assertEqual(mqtt.read_until(lambda p: p.type == sbtest.PUBLISH)[0].payload, b"mqtt after hup")
        # The changes took effect.
        self.assertTrue(self.stomp_login("bob", "bob-pw"), "bob logs in with the new users file")
        self.assertEqual(self.servers_of("b"), ["s1", "s2"])
        wait_for(lambda: re.search(r"debug\s+\[gateway\] conn=\d+ .*accepted", self.log()), 5,
                 "a debug line once the level is debug")

        # An invalid file: the error with file:line:col, and the running configuration stays.
        self.write("log:\n  level: chatty\n")
        text, _ = self.hup_and_wait(r"reload failed")
        self.assertRegex(text, re.escape(b.config_path) + r":2:10: log\.level: .*; the running configuration stays")
        self.assertTrue(self.stomp_login("bob", "bob-pw"), "the users loaded before stay")
        self.assertEqual(self.servers_of("b"), ["s1", "s2"])
        mqtt.ping()

        # A port change needs a restart: logged, not applied.
        new_port = free_port()
        cfg["listeners"] = [dict(cfg["listeners"][0], port=new_port), cfg["listeners"][1]]
        self.write("\n".join(to_yaml(cfg)) + "\n")
        text, _ = self.hup_and_wait(r"reload: done")
        self.assertIn(f"listener stomp address {HOST}:{b.port} -> {HOST}:{new_port} changed: needs a restart, "
                      f"not applied", text)
        self.assertTrue(self.stomp_login("alice", "alice-pw"), "still on the port it started with")
        stomp.send_frame("SEND", {"destination": "/queue/reload", "receipt": "s2"}, b"still here")
        self.assertEqual(stomp.read_until(lambda f: f.command == "MESSAGE")[0].body, b"still here")
        with self.assertRaises(OSError):
            socket.create_connection((HOST, new_port), timeout=1).close()

    def test_sighup_reloads_the_tls_certificate_for_new_handshakes(self):
        import shutil
        import ssl
        from gateway_relay_test import make_cert
        cert_a, key_a = make_cert()
        cert_b, key_b = make_cert()
        for p in (cert_a, cert_b):
            self.addCleanup(shutil.rmtree, os.path.dirname(p), True)
        b = self.broker_with({})
        cert, key = os.path.join(b.dir, "c.pem"), os.path.join(b.dir, "k.pem")
        shutil.copy(cert_a, cert)
        shutil.copy(key_a, key)
        port = b.port
        b.config["listeners"] = [{"name": "stomps", "protocol": "stomp", "address": HOST, "port": port,
                                  "tls": {"cert": cert, "key": key}}]
        b.start()

        def served_cert():
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with socket.create_connection((HOST, port), timeout=WAIT) as s:
                with ctx.wrap_socket(s) as t:
                    return t.getpeercert(binary_form=True)

        def der(path):
            with open(path) as f:
                return ssl.PEM_cert_to_DER_cert(f.read())

        self.assertEqual(served_cert(), der(cert_a))
        held = ssl.create_default_context()
        held.check_hostname = False
        held.verify_mode = ssl.CERT_NONE
        old = held.wrap_socket(socket.create_connection((HOST, port), timeout=WAIT))
        self.addCleanup(old.close)
        old.sendall(b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\0")
        self.assertTrue(old.recv(4096).startswith(b"CONNECTED"))
        shutil.copy(cert_b, cert)
        shutil.copy(key_b, key)
        self.hup_and_wait(r"reload: done")
        self.assertEqual(served_cert(), der(cert_b), "new handshakes use the new certificate")
        old.sendall(b"SEND\ndestination:/queue/tls\nreceipt:r1\n\nx\0")
        self.assertIn(b"RECEIPT", old.recv(4096), "the connection made before the reload stays")


class ReloadBackendTest(GatewayTestCase):
    def test_sighup_replaces_a_backend_while_a_relay_on_it_goes_on(self):
        a, b = self.fake(), self.fake()
        g = self.start_gateway([{"name": "relay", "protocol": "tcp", "backend": "fleet"}],
                               [backend("fleet", [{"name": "a", "address": f"{HOST}:{a.port}"}])])
        old = socket.create_connection((HOST, g.port), timeout=WAIT)
        self.addCleanup(old.close)
        old.sendall(b"one")
        self.assertEqual(old.recv(64), b"one")

        # The backend's only server is replaced by another one.
        g.config["backends"] = [backend("fleet", [{"name": "b", "address": f"{HOST}:{b.port}"}])]
        g.write_config()
        start = len(g.log_tail(10000))
        g.signal(signal.SIGHUP)
        wait_for(lambda: "reload: done" in g.log_tail(10000)[start:], 5, "the reload")
        self.assertIn("reload: backend fleet replaced", g.log_tail(10000)[start:])
        self.assertEqual([s["name"] for s in g.status()["backends"][0]["servers"]], ["b"])

        old.sendall(b"two")   # the relay made before stays with its server
        self.assertEqual(old.recv(64), b"two")
        new = socket.create_connection((HOST, g.port), timeout=WAIT)
        self.addCleanup(new.close)
        new.sendall(b"three")
        self.assertEqual(new.recv(64), b"three")
        self.assertEqual((a.relayed(), b.relayed()), (1, 1), "the new connection goes to the new server")
        old.close()   # the last user of the replaced backend ends
        new.sendall(b"four")
        self.assertEqual(new.recv(64), b"four")
        wait_for(lambda: a.open == 0, 5, "the old relay closed on the old server's side")


# ---------------------------------------------------------------------------------------------

class CloseBackupsTest(GatewayTestCase):
    def failback(self, close_backups, before_primary=None):
        """A client relayed to the backup while the primary is down; before_primary(gateway,
        client) runs; the primary comes up. Returns (client, primary, backup)."""
        spare = self.mosquitto()
        primary_port = free_port()
        extra = {"on_server_up": "close_backups"} if close_backups else {}
        g = self.start_gateway(
            [{"name": "front", "protocol": "mqtt", "backend": "fleet"}],
            [backend("fleet", [{"name": "primary", "address": f"{HOST}:{primary_port}"},
                               {"name": "spare", "address": f"{HOST}:{spare.port}", "backup": True}],
                     check="mqtt", **extra)])
        wait_for(lambda: not g.server("fleet", "primary")["up"], INTERVAL_MS * (FALL + 2) / 1000 + 3, "primary down")
        a = self.mqtt(g.port, "a")
        a.subscribe("cb/a")
        self.assertIs(self.lands_on(a, "cb/a", [spare]), spare, "the backup while the primary is down")
        if before_primary:
            before_primary(g, a)
        primary = self.mosquitto(primary_port)
        wait_for(lambda: g.server("fleet", "primary")["up"], INTERVAL_MS * (RISE + 2) / 1000 + 3, "primary up")
        return a, primary, spare

    def test_close_backups_moves_clients_back_to_the_primary(self):
        a, primary, spare = self.failback(close_backups=True)
        a.wait_closed(timeout=5)   # closed by the gateway: the client reconnects ...
        b = self.mqtt(self.gw.port, "a")
        b.subscribe("cb/b")
        self.assertIs(self.lands_on(b, "cb/b", [primary, spare]), primary, "... and lands on the primary")
        self.assertEqual(self.gw.server("fleet", "spare")["active"], 0)
        self.assertRegex(self.gw.log_tail(200), r"server=primary on_server_up=close_backups: closing 1 relayed")

    def test_close_backups_reaches_the_relays_made_before_a_reload(self):
        def reload_changed_backend(g, a):
            g.config["backends"][0]["connect_timeout"] = "2s"
            g.write_config()
            start = len(g.log_tail(10000))
            g.signal(signal.SIGHUP)
            wait_for(lambda: "reload: done" in g.log_tail(10000)[start:], 5, "the reload")
            self.assertIn("reload: backend fleet replaced", g.log_tail(10000)[start:])
            a.ping()   # the relay made before the reload goes on
        a, primary, spare = self.failback(close_backups=True, before_primary=reload_changed_backend)
        a.wait_closed(timeout=5)   # the replaced backend's relay is closed too

    def test_without_close_backups_the_client_stays_on_the_backup(self):
        a, primary, spare = self.failback(close_backups=False)
        # The check that brought the primary up has run: no relay is closed by it.
        self.assertIs(self.lands_on(a, "cb/a", [primary, spare]), spare)
        a.ping()
        self.assertEqual(self.gw.server("fleet", "spare")["active"], 1)


if __name__ == "__main__":
    sbtest.main()
