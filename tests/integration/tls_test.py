#!/usr/bin/python3
# tests/integration/tls_test.py — issue 21, TLS: one `auto` TLS port served to real clients
# (mosquitto_pub/sub, stomp.py, Qpid Proton over amqps with SASL EXTERNAL, the ActiveMQ JMS client
# over ssl://), the chain shown by `openssl s_client -showcerts`, mutual TLS with the client
# certificate's CN as the broker user (a users file that lists `device-1:certificate` and no
# anonymous access: only the mapped user gets in without a password), certificates of another
# CA and missing ones refused, TLS 1.1 refused, ALPN, and a certificate replaced on disk served
# to new handshakes within 2 s while 1,000 open connections stay up.
#
# The certificates come from scripts/make-test-ca.sh (openssl). Every wait is bounded.

import asyncio
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import HOST, WAIT, StompClient, connect_packet  # noqa: E402
from stomp_auth_test import passwd_line  # noqa: E402

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAKE_CA = os.path.join(_REPO, "scripts", "make-test-ca.sh")
ALICE_PW = "alice-pw"


def make_ca(directory, *clients):
    subprocess.run(["sh", MAKE_CA, directory] + list(clients), check=True, capture_output=True, timeout=60)


def log_text(broker):
    with open(broker.log_path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def await_log(broker, pattern, start=0, timeout=WAIT):
    """The first match of `pattern` in the broker log after offset `start`, within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, log_text(broker)[start:])
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line matching {pattern!r} within {timeout}s\n{broker.describe()}")
        time.sleep(0.05)   # the log is a file: polled, bounded


class TlsPort(unittest.TestCase):
    """One broker: `tls` (auto, client certificates optional) and `mtls` (auto, required)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="sbtls-")
        cls.pki = os.path.join(cls.dir, "pki")
        make_ca(cls.pki, "device-1", "device-2")
        users = os.path.join(cls.dir, "users")
        with open(users, "w") as f:
            f.write("device-1:certificate\n" + passwd_line("alice", ALICE_PW) + "\n")
        cls.tls_port, cls.mtls_port = sbtest.free_port(), sbtest.free_port()
        tls = {"cert": cls.path("server.pem"), "key": cls.path("server.key"), "ca": cls.path("ca.pem"),
               "alpn": ["mqtt", "amqp", "stomp"]}
        cls.broker = sbtest.Broker({"log": {"level": "debug"},
                                    "security": {"allow_anonymous": False, "users_file": users}})
        cls.broker.config["listeners"] += [
            {"name": "tls", "protocol": "auto", "address": HOST, "port": cls.tls_port,
             "tls": dict(tls, verify_client="optional")},
            {"name": "mtls", "protocol": "auto", "address": HOST, "port": cls.mtls_port,
             "tls": dict(tls, verify_client="required")}]
        cls.broker.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.broker.stop()
        finally:
            cls.broker.cleanup()
            cls.broker.remove_dir()
            shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def path(cls, name):
        return os.path.join(cls.pki, name)

    def cert(self, name):
        return ["--cafile", self.path("ca.pem"), "--cert", self.path(f"client-{name}.pem"),
                "--key", self.path(f"client-{name}.key")]

    def mosquitto_pub(self, port, client, topic, message, extra=()):
        tls = self.cert(client) if client else ["--cafile", self.path("ca.pem")]
        return subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(port), "-t", topic, "-m", message, "-q", "1"]
                              + tls + list(extra), capture_output=True, text=True, timeout=15)

    def stomp(self, port, client=None):
        c = StompClient(port)
        kw = {"ca_certs": self.path("ca.pem")}
        if client:
            kw.update(cert_file=self.path(f"client-{client}.pem"), key_file=self.path(f"client-{client}.key"))
        c.conn.set_ssl(for_hosts=[(HOST, port)], **kw)
        self.addCleanup(c.abort)
        return c

    def stomp_refused(self, client, login=None, passcode=None):
        """CONNECT over TLS is answered ERROR "Authentication failed" (seen in the broker's log:
        stomp.py may see the close before it reads the ERROR frame)."""
        mark = len(log_text(self.broker))
        with self.assertRaisesRegex(AssertionError, "connect failed"):
            self.stomp(self.tls_port, client).connect(login=login, passcode=passcode)
        await_log(self.broker, r'proto=stomp reason=protocol_error detail="Authentication failed"', mark)

    # ---- every client on the one port ---------------------------------------------------------

    def test_mosquitto_sub_and_pub_with_a_client_certificate(self):
        start = len(log_text(self.broker))
        # Retained: the subscriber gets it whenever its SUBSCRIBE lands (no race to wait out).
        r = self.mosquitto_pub(self.tls_port, "device-1", "tls/mqtt", "over mutual tls", extra=["-r"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(self.mosquitto_pub, self.tls_port, "device-1", "tls/mqtt", "", ["-r"])   # cleared
        sub = subprocess.run(["mosquitto_sub", "-h", HOST, "-p", str(self.tls_port), "-t", "tls/mqtt", "-C", "1",
                              "-W", "10", "-q", "1", "-i", "tls-sub"] + self.cert("device-1"),
                             capture_output=True, text=True, timeout=15)
        self.assertEqual(sub.stdout.strip(), "over mutual tls", sub.stderr)
        self.assertEqual(len(re.findall(r"listener=tls TLS client certificate: user=device-1",
                                        log_text(self.broker)[start:])), 2)

    def test_stomp_py_over_tls_logs_in_as_the_certificate_user(self):
        c = self.stomp(self.tls_port, "device-1").connect()   # no login: the certificate's user
        c.subscribe("/queue/tls.stomp", "s1")
        c.send("/queue/tls.stomp", "hello over tls", receipt=True)
        self.assertEqual(c.get_message().body, "hello over tls")
        # Without a certificate nor a password nobody gets in (allow_anonymous: false).
        self.stomp_refused(None)

    def test_credentials_sent_win_over_the_certificate(self):
        self.stomp_refused("device-1", login="alice", passcode="wrong")
        self.stomp(self.tls_port, "device-1").connect(login="alice", passcode=ALICE_PW)
        self.stomp(self.tls_port).connect(login="alice", passcode=ALICE_PW)   # password users: unchanged

    def test_a_certificate_user_must_be_in_the_users_file(self):
        # device-2's certificate is from the right CA, but the users file does not list it.
        start = len(log_text(self.broker))
        r = self.mosquitto_pub(self.tls_port, "device-2", "tls/x", "m")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("bad user name or password", (r.stdout + r.stderr).lower())
        self.assertRegex(log_text(self.broker)[start:], r"TLS client certificate: user=device-2")
        self.stomp_refused("device-2")

    def proton(self, port, client, mechs="EXTERNAL"):
        from proton import SSLDomain
        from proton.utils import BlockingConnection
        d = SSLDomain(SSLDomain.MODE_CLIENT)
        d.set_trusted_ca_db(self.path("ca.pem"))
        d.set_peer_authentication(SSLDomain.VERIFY_PEER)   # Proton matches no IP address SAN
        if client:
            d.set_credentials(self.path(f"client-{client}.pem"), self.path(f"client-{client}.key"), None)
        c = BlockingConnection(f"amqps://{HOST}:{port}", ssl_domain=d, sasl_enabled=True, allowed_mechs=mechs,
                               timeout=WAIT)
        self.addCleanup(c.close)
        return c

    def test_proton_over_amqps_with_sasl_external(self):
        from proton import Message
        start = len(log_text(self.broker))
        c = self.proton(self.tls_port, "device-1")
        c.create_sender("tls.amqp").send(Message(body="amqps external"))
        self.assertEqual(c.create_receiver("tls.amqp").receive(timeout=WAIT).body, "amqps external")
        self.assertRegex(log_text(self.broker)[start:], r"proto=amqp user=device-1 ")
        # EXTERNAL is offered only with a verified certificate: without one it is refused.
        from proton import ConnectionException
        with self.assertRaises(ConnectionException):
            self.proton(self.tls_port, None)

    def test_jms_client_over_ssl(self):
        import openwire_jms_test as jms
        if jms.missing():
            self.skipTest(jms.missing())
        store = os.path.join(self.dir, "java")
        os.makedirs(store, exist_ok=True)
        trust, keys = os.path.join(store, "trust.p12"), os.path.join(store, "device-1.p12")
        if not os.path.exists(trust):
            subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", self.path("ca.pem"),
                            "-keystore", trust, "-storetype", "PKCS12", "-storepass", "changeit"],
                           check=True, capture_output=True, timeout=60)
            subprocess.run(["openssl", "pkcs12", "-export", "-in", self.path("client-device-1.pem"),
                            "-inkey", self.path("client-device-1.key"), "-name", "device-1", "-out", keys,
                            "-passout", "pass:changeit"], check=True, capture_output=True, timeout=60)
        s = jms.scenarios()
        start = len(log_text(self.broker))
        cmd = [shutil.which("java"), "-Xmx96m"] + jms.amqtest.JVM_FAST + [
            f"-Djavax.net.ssl.trustStore={trust}", "-Djavax.net.ssl.trustStorePassword=changeit",
            "-Djavax.net.ssl.trustStoreType=PKCS12", f"-Djavax.net.ssl.keyStore={keys}",
            "-Djavax.net.ssl.keyStorePassword=changeit", "-Djavax.net.ssl.keyStoreType=PKCS12",
            "-cp", s.classpath, "JmsScenarios", f"ssl://{HOST}:{self.mtls_port}", "tls-jms", "connect", "queue"]
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        self.assertIn("PASS connect", r.stdout, r.stdout + r.stderr[-2000:])
        self.assertIn("PASS queue", r.stdout, r.stdout + r.stderr[-2000:])
        self.assertRegex(log_text(self.broker)[start:], r"listener=mtls TLS client certificate: user=device-1")

    # ---- what the port shows and refuses ----------------------------------------------------

    def test_openssl_s_client_shows_the_chain(self):
        r = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{self.tls_port}", "-showcerts",
                            "-CAfile", self.path("ca.pem"), "-verify_return_error"],
                           input="", capture_output=True, text=True, timeout=15)
        self.assertEqual(r.stdout.count("-----BEGIN CERTIFICATE-----"), 2, r.stdout)
        self.assertRegex(r.stdout, r"0 s:.*CN ?= ?localhost")
        self.assertRegex(r.stdout, r"1 s:.*CN ?= ?Switchboard Test CA")
        self.assertIn("Verify return code: 0 (ok)", r.stdout)

    def handshake(self, port, client=None, **kw):
        ctx = ssl.create_default_context(cafile=self.path("ca.pem"))
        for k, v in kw.items():
            setattr(ctx, k, v) if k != "alpn" else ctx.set_alpn_protocols(v)
        if client:
            ctx.load_cert_chain(self.path(f"client-{client}.pem"), self.path(f"client-{client}.key"))
        s = ctx.wrap_socket(socket.create_connection((HOST, port), timeout=WAIT), server_hostname="localhost")
        self.addCleanup(s.close)
        return s

    def test_mutual_tls_takes_the_test_ca_and_refuses_others_and_none(self):
        start = len(log_text(self.broker))
        r = self.mosquitto_pub(self.mtls_port, "device-1", "tls/m", "m")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(log_text(self.broker)[start:], r"listener=mtls TLS client certificate: user=device-1")

        def refused(client):
            # TLS 1.3: the server's verdict on the client certificate arrives after the client's
            # handshake ended, with the first read.
            s = self.handshake(self.mtls_port, client)
            s.sendall(connect_packet(client_id="x", version=4))
            with self.assertRaises((ssl.SSLError, ConnectionError)):
                if not s.recv(16):
                    raise ConnectionError("closed")
        mark = len(log_text(self.broker))
        refused("stranger")
        await_log(self.broker, r"listener=mtls TLS handshake failed: certificate verify failed", mark)
        mark = len(log_text(self.broker))
        refused(None)
        await_log(self.broker, r"listener=mtls TLS handshake failed: peer did not return a certificate", mark)
        r = self.mosquitto_pub(self.mtls_port, "stranger", "tls/m", "m")
        self.assertNotEqual(r.returncode, 0)

    def test_tls_1_1_and_older_are_refused(self):
        mark = len(log_text(self.broker))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            ctx.set_ciphers("DEFAULT@SECLEVEL=0")
        except (ValueError, ssl.SSLError) as e:
            self.skipTest(f"this Python cannot offer TLS 1.1: {e}")
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            ctx.wrap_socket(socket.create_connection((HOST, self.tls_port), timeout=WAIT)).close()
        await_log(self.broker, r"listener=tls TLS handshake failed: unsupported protocol", mark)
        # 1.2 and 1.3 are taken.
        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            s = self.handshake(self.tls_port, minimum_version=v, maximum_version=v)
            self.assertEqual(s.version(), {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[v])

    def test_alpn_is_negotiated_in_the_listeners_order_and_logged(self):
        mark = len(log_text(self.broker))
        s = self.handshake(self.tls_port, alpn=["stomp", "amqp"])
        self.assertEqual(s.selected_alpn_protocol(), "amqp")   # the listener prefers amqp to stomp
        self.assertEqual(self.handshake(self.tls_port, alpn=["h2"]).selected_alpn_protocol(), None)
        s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\nlogin:alice\npasscode:" + ALICE_PW.encode() + b"\n\n\0")
        self.assertTrue(s.recv(4096).startswith(b"CONNECTED"))   # detection decides what it speaks
        await_log(self.broker, r"listener=tls TLS TLSv1\.3 cipher=\S+ alpn=amqp", mark)


class CertificateReload(unittest.TestCase):
    """A certificate replaced on disk reaches new handshakes within 2 s; 1,000 connections stay."""

    CONNECTIONS = 1000

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sbtls-reload-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        make_ca(os.path.join(self.dir, "a"))
        make_ca(os.path.join(self.dir, "b"))
        self.live = os.path.join(self.dir, "live")
        os.makedirs(self.live)
        for f in ("server.pem", "server.key"):
            shutil.copy(os.path.join(self.dir, "a", f), os.path.join(self.live, f))
        self.port = sbtest.free_port()
        b = sbtest.Broker({})
        b.config["listeners"].append(
            {"name": "mqtts", "protocol": "auto", "address": HOST, "port": self.port,
             "tls": {"cert": os.path.join(self.live, "server.pem"), "key": os.path.join(self.live, "server.key"),
                     "reload_interval": "500ms"}})
        self.broker = b
        self.addCleanup(b.remove_dir)
        self.addCleanup(b.cleanup)
        self.addCleanup(b.stop)
        b.start()

    def served(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection((HOST, self.port), timeout=WAIT) as s:
            with ctx.wrap_socket(s) as t:
                return t.getpeercert(binary_form=True)

    def der(self, which):
        with open(os.path.join(self.dir, which, "server.pem")) as f:
            first = f.read().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
            return ssl.PEM_cert_to_DER_cert(first)   # the first certificate of the chain

    def test_a_replaced_certificate_is_served_within_2s_while_1000_connections_stay_up(self):
        self.assertEqual(self.served(), self.der("a"))
        asyncio.run(asyncio.wait_for(self.scenario(), 120))

    async def scenario(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        limit = asyncio.Semaphore(50)   # handshakes in flight at once

        async def open_one(i):
            async with limit:
                r, w = await asyncio.wait_for(asyncio.open_connection(HOST, self.port, ssl=ctx), 30)
                w.write(connect_packet(client_id=f"held-{i}", version=4, keepalive=0))
                await w.drain()
                connack = await asyncio.wait_for(r.readexactly(4), 30)
                assert connack == b"\x20\x02\x00\x00", connack
                return r, w

        conns = await asyncio.gather(*(open_one(i) for i in range(self.CONNECTIONS)))
        try:
            # Another certificate (and key) replaces the files, the key first: for a moment the
            # pair does not match (logged; the old context stays), then it does.
            mark = len(log_text(self.broker))
            loop = asyncio.get_running_loop()
            for f in ("server.key", "server.pem"):
                tmp = os.path.join(self.live, f + ".new")
                shutil.copy(os.path.join(self.dir, "b", f), tmp)
                os.replace(tmp, os.path.join(self.live, f))
            replaced = time.monotonic()
            new = self.der("b")
            while True:
                got = await loop.run_in_executor(None, self.served)
                if got == new:
                    break
                self.assertEqual(got, self.der("a"), "the old certificate until the new one")
                self.assertLess(time.monotonic() - replaced, 2.0, "new handshakes get the new certificate within 2 s")
                await asyncio.sleep(0.05)
            took = time.monotonic() - replaced
            self.assertLess(took, 2.0)
            self.assertRegex(log_text(self.broker)[mark:], r"listener mqtts: TLS files changed: certificate .* reloaded")

            # Every connection made before still answers: PINGREQ -> PINGRESP.
            async def ping(rw):
                r, w = rw
                w.write(b"\xc0\x00")
                await w.drain()
                return await asyncio.wait_for(r.readexactly(2), 30)

            answers = await asyncio.gather(*(ping(c) for c in conns), return_exceptions=True)
            ok = sum(1 for a in answers if a == b"\xd0\x00")
            self.assertEqual(ok, self.CONNECTIONS, [a for a in answers if a != b"\xd0\x00"][:5])
        finally:
            for _, w in conns:
                w.close()


class BadFilesKeepTheOldContext(unittest.TestCase):
    def test_a_file_that_does_not_load_is_logged_and_handshakes_go_on_with_the_old_one(self):
        d = tempfile.mkdtemp(prefix="sbtls-bad-")
        self.addCleanup(shutil.rmtree, d, True)
        make_ca(os.path.join(d, "a"))
        cert, key = os.path.join(d, "server.pem"), os.path.join(d, "server.key")
        shutil.copy(os.path.join(d, "a", "server.pem"), cert)
        shutil.copy(os.path.join(d, "a", "server.key"), key)
        port = sbtest.free_port()
        b = sbtest.Broker({})
        b.config["listeners"].append({"name": "stomps", "protocol": "stomp", "address": HOST, "port": port,
                                      "tls": {"cert": cert, "key": key, "reload_interval": "200ms"}})
        self.addCleanup(b.remove_dir)
        self.addCleanup(b.cleanup)
        self.addCleanup(b.stop)
        b.start()
        mark = len(log_text(b))
        with open(cert + ".new", "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        os.replace(cert + ".new", cert)
        await_log(b, r"listener stomps: TLS files changed but do not load: tls.cert .*; new handshakes keep the "
                     r"previous certificate", mark)
        ctx = ssl.create_default_context(cafile=os.path.join(d, "a", "ca.pem"))
        with ctx.wrap_socket(socket.create_connection((HOST, port), timeout=WAIT), server_hostname="localhost") as s:
            s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
            self.assertTrue(s.recv(4096).startswith(b"CONNECTED"))
        # SIGHUP with the bad file: the reload fails as a whole, logged; the old context stays.
        mark = len(log_text(b))
        b.signal(__import__("signal").SIGHUP)
        await_log(b, r"reload failed: .*tls.cert", mark)
        with ctx.wrap_socket(socket.create_connection((HOST, port), timeout=WAIT), server_hostname="localhost") as s:
            s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
            self.assertTrue(s.recv(4096).startswith(b"CONNECTED"))


if __name__ == "__main__":
    sbtest.main()
