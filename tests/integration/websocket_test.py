# tests/integration/websocket_test.py — the WebSocket transport against the real binary: MQTT
# 3.1.1 and 5 with paho-mqtt's WebSocket transport, STOMP and AMQP through websocket-client
# (python3-websocket) carrying each protocol's frames, on a `protocol: websocket` listener and
# on an `auto` port, with and without TLS; subprotocol negotiation, paths, Origin allow-list,
# max_connections; protocol packets split across WebSocket messages and several in one; messages
# crossing to plain-TCP clients of other protocols through the same broker. And bad input (done
# when 3 of issue 21): garbage on the upgrade, no key, wrong version, a stalled handshake,
# unmasked frames, oversize messages, invalid UTF-8, long and fragmented control frames — each
# answered with its HTTP status or close code, a bystander WebSocket connection unaffected.

import base64
import os
import socket
import ssl
import struct
import sys
import threading
import time
import unittest
import uuid

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import HOST, WAIT  # noqa: E402

import websocket  # noqa: E402  (python3-websocket: websocket-client)

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    """One WebSocket frame as a client sends it (masked unless mask=False)."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def upgrade_request(path="/", protocols=None, origin=None, key=True, version="13", extra=""):
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}", "Upgrade: websocket", "Connection: Upgrade"]
    if key:
        lines.append("Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode())
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    if protocols:
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
    if origin:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


class RawWs(sbtest.RawSocket):
    """A WebSocket client on a raw socket: exact bytes out, the HTTP response and frames in."""

    def __init__(self, port, tls=False):
        super().__init__(port)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock)
        self.status = None
        self.headers = {}

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def response(self, timeout=WAIT):
        """Reads the HTTP response head: (status, headers with lower-case names)."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        return self.status, self.headers

    def handshake(self, path="/", protocols=None, **kw):
        self.send(upgrade_request(path, protocols, **kw))
        status, headers = self.response()
        assert status == 101, (status, headers, bytes(self.buf))
        return headers

    def frame(self, timeout=WAIT):
        """The next frame: (fin, opcode, payload)."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                n, at = b1 & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    n, at = struct.unpack(">H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, at = struct.unpack(">Q", self.buf[2:10])[0], 10
                if n < 126 or at > 2:
                    assert not b1 & 0x80, "a server frame must not be masked"
                    if len(self.buf) >= at + n:
                        payload = bytes(self.buf[at:at + n])
                        del self.buf[:at + n]
                        return bool(b0 & 0x80), b0 & 0x0F, payload
            self._fill(deadline)

    def data(self, timeout=WAIT):
        """The payload of the next data message (control frames other than close skipped)."""
        out = b""
        while True:
            fin, op, payload = self.frame(timeout)
            if op == OP_CLOSE:
                raise sbtest.ConnectionClosed(f"close frame {payload!r}")
            if op in (OP_PING, OP_PONG):
                continue
            out += payload
            if fin:
                return op, out

    def close_code(self, timeout=WAIT):
        """Reads until the server's close frame: its status code (None without one). The
        connection must then end."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fin, op, payload = self.frame(max(0.01, deadline - time.monotonic()))
            except sbtest.ConnectionClosed:
                return None
            if op == OP_CLOSE:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                self.wait_end(deadline)
                return code

    def wait_end(self, deadline):
        while True:
            try:
                self._fill(deadline)
            except sbtest.ConnectionClosed:
                return


def stomp_frame(command, headers=None, body=b""):
    return sbtest.encode_frame(command, list((headers or {}).items()), body)


def parse_stomp(data):
    """(command, headers, body) of one STOMP frame (its NUL and trailing EOLs dropped)."""
    text = data.rstrip(b"\n\r")
    assert text.endswith(b"\0"), data
    head, _, body = text[:-1].partition(b"\n\n")
    lines = head.decode().split("\n")
    while lines and lines[0] == "":
        lines.pop(0)
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k, v)
    return lines[0], headers, body


def mqtt_connect(client_id, version=4):
    return sbtest.connect_packet(client_id=client_id, version=version)


def self_signed():
    """A self-signed certificate and key for localhost in a temp dir: (cert, key)."""
    import subprocess
    import tempfile
    d = tempfile.mkdtemp(prefix="sbws-tls-")
    cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class WebSocketTestCase(sbtest.BrokerTestCase):
    """A broker with a STOMP TCP listener (self.port), an MQTT one (self.mqtt_tcp_port), a
    websocket listener (self.ws_port) with the class's ws_settings, an auto port
    (self.auto_port) and, with tls = True, a TLS websocket listener (self.wss_port) and a TLS
    auto port (self.auto_tls_port)."""
    ws_settings = {}
    tls = False
    max_connections = 100

    def setUp(self):
        self.ws_port, self.auto_port, self.mqtt_tcp_port = (sbtest.free_port(), sbtest.free_port(),
                                                            sbtest.free_port())
        ws = {"name": "ws", "protocol": "websocket", "address": HOST, "port": self.ws_port,
              "max_connections": self.max_connections}
        if self.ws_settings:
            ws["websocket"] = self.ws_settings
        extra_listeners = [
            {"name": "mqtt", "protocol": "mqtt", "address": HOST, "port": self.mqtt_tcp_port},
            ws,
            {"name": "front", "protocol": "auto", "address": HOST, "port": self.auto_port},
        ]
        if self.tls:
            cert, key = self_signed()
            self.wss_port, self.auto_tls_port = sbtest.free_port(), sbtest.free_port()
            extra_listeners += [
                {"name": "wss", "protocol": "websocket", "address": HOST, "port": self.wss_port,
                 "tls": {"cert": cert, "key": key}},
                {"name": "front-tls", "protocol": "auto", "address": HOST, "port": self.auto_tls_port,
                 "tls": {"cert": cert, "key": key}},
            ]
        method = getattr(self, self._testMethodName)
        extra = sbtest.deep_merge(self.broker_config, getattr(method, "sb_config", {}))
        self.broker = sbtest.Broker(extra)
        self.broker.config["listeners"] = self.broker.config["listeners"] + extra_listeners
        self.addCleanup(self.broker.cleanup)
        self.addCleanup(self.broker.stop)
        self.broker.start()

    def ws(self, path="/", protocols=None, port=None, secure=False, **kw):
        """A websocket-client connection, closed at cleanup."""
        scheme = "wss" if secure else "ws"
        sslopt = {"cert_reqs": ssl.CERT_NONE, "check_hostname": False} if secure else None
        c = websocket.create_connection(f"{scheme}://{HOST}:{port or self.ws_port}{path}",
                                        subprotocols=protocols, timeout=WAIT, sslopt=sslopt, **kw)
        self.addCleanup(c.close)
        return c

    def raw_ws(self, port=None, tls=False):
        r = RawWs(port or self.ws_port, tls=tls)
        self.addCleanup(r.close)
        return r

    def stomp_ws(self, path="/stomp", protocols=("v10.stomp", "v11.stomp", "v12.stomp"), port=None,
                 secure=False):
        """A STOMP 1.2 session over websocket-client, CONNECTed."""
        c = self.ws(path, list(protocols) if protocols else None, port=port, secure=secure)
        c.send_binary(stomp_frame("CONNECT", {"accept-version": "1.2", "host": "/"}))
        command, headers, _ = parse_stomp(c.recv_data()[1])
        self.assertEqual(command, "CONNECTED", headers)
        return c

    def stomp_subscribe(self, c, destination, sub_id="1"):
        c.send_binary(stomp_frame("SUBSCRIBE", {"destination": destination, "id": sub_id,
                                                "receipt": "r-" + sub_id}))
        command, headers, _ = parse_stomp(c.recv_data()[1])
        self.assertEqual((command, headers.get("receipt-id")), ("RECEIPT", "r-" + sub_id))

    def stomp_receive(self, c):
        command, headers, body = parse_stomp(c.recv_data()[1])
        self.assertEqual(command, "MESSAGE", (headers, body))
        return headers, body

    def paho_ws(self, version, path="/mqtt", port=None, secure=False):
        """A connected paho-mqtt client on the WebSocket transport, and wait(count) for the
        messages it received."""
        import paho.mqtt.client as mqtt
        got = []
        cond = threading.Condition()
        connected = threading.Event()
        c = mqtt.Client(client_id=f"ws-{uuid.uuid4().hex[:8]}", protocol=version, transport="websockets")
        c.ws_set_options(path=path)
        if secure:
            c.tls_set(cert_reqs=ssl.CERT_NONE)
            c.tls_insecure_set(True)

        def on_message(_c, _u, msg):
            with cond:
                got.append(msg)
                cond.notify_all()

        c.on_message = on_message
        c.on_connect = lambda *a: connected.set()
        c.connect(HOST, port or self.ws_port, keepalive=30)
        c.loop_start()
        self.addCleanup(c.loop_stop)
        self.addCleanup(c.disconnect)
        self.assertTrue(connected.wait(WAIT), "paho over WebSocket: no CONNACK")

        def wait(count, timeout=WAIT):
            with cond:
                cond.wait_for(lambda: len(got) >= count, timeout)
                return list(got)
        return c, wait

    def mqtt_ws_raw(self, client_id, path="/mqtt", port=None):
        """A raw WebSocket with an MQTT 3.1.1 session: (socket, CONNACK payload)."""
        r = self.raw_ws(port)
        r.handshake(path, ["mqtt"])
        r.send(ws_frame(OP_BINARY, mqtt_connect(client_id)))
        op, connack = r.data()
        self.assertEqual((op, connack[:1]), (OP_BINARY, b"\x20"))
        return r


class ClientsTest(WebSocketTestCase):
    """Third-party clients over WebSocket, and messages crossing to TCP clients."""
    broker_config = {"mqtt": {"connect_timeout_ms": 5000}}

    def test_paho_mqtt_311_and_5_over_websocket(self):
        import paho.mqtt.client as mqtt
        for version, name in ((mqtt.MQTTv311, "v311"), (mqtt.MQTTv5, "v5")):
            with self.subTest(version=name):
                c, wait = self.paho_ws(version)
                topic = f"ws/paho/{name}"
                if version == mqtt.MQTTv5:
                    c.subscribe(topic, qos=1)
                else:
                    c.subscribe(topic, 1)
                # The subscription is in place once a QoS 1 publish to it comes back.
                c.publish(topic, b"hello " + name.encode(), qos=1)
                got = wait(1)
                self.assertEqual([m.payload for m in got], [b"hello " + name.encode()])

    def test_stomp_over_websocket_highest_version_wins_and_is_echoed(self):
        c = self.ws("/stomp", ["v10.stomp", "v12.stomp", "v11.stomp"])
        self.assertEqual(c.getsubprotocol(), "v12.stomp")
        c.send_binary(stomp_frame("CONNECT", {"accept-version": "1.0,1.1,1.2", "host": "/"}))
        command, headers, _ = parse_stomp(c.recv_data()[1])
        self.assertEqual((command, headers.get("version")), ("CONNECTED", "1.2"))
        self.stomp_subscribe(c, "/queue/ws.stomp")
        # A text message from the client (as stompjs sends) works too; the broker answers binary.
        c.send(stomp_frame("SEND", {"destination": "/queue/ws.stomp"}, b"over ws").decode())
        opcode, data = c.recv_data()
        self.assertEqual(opcode, websocket.ABNF.OPCODE_BINARY)
        command, headers, body = parse_stomp(data)
        self.assertEqual((command, body), ("MESSAGE", b"over ws"))

    def test_mqtt_packets_split_across_messages_and_coalesced(self):
        """MQTT-6.0.0-2: a packet across several WebSocket messages (and frames), empty messages,
        and several packets in one message."""
        r = self.raw_ws()
        r.handshake("/mqtt", ["mqtt"])
        connect = mqtt_connect("ws-split")
        r.send(ws_frame(OP_BINARY, connect[:3]))
        r.send(ws_frame(OP_BINARY, b""))
        # The rest as one fragmented message: two frames and a continuation.
        r.send(ws_frame(OP_BINARY, connect[3:7], fin=False) + ws_frame(OP_CONT, connect[7:]))
        op, connack = r.data()
        self.assertEqual(connack[:1], b"\x20")
        # SUBSCRIBE and PUBLISH (to the same topic, after the SUBSCRIBE) in one message; a ping
        # in between frames is answered.
        sub = sbtest.subscribe_packet(1, [("ws/split", 0)], version=4)
        pub = sbtest.publish_packet("ws/split", b"together", version=4)
        r.send(ws_frame(OP_PING, b"hi") + ws_frame(OP_BINARY, sub + pub))
        seen = b""
        pong = False
        deadline = time.monotonic() + WAIT
        while b"together" not in seen and time.monotonic() < deadline:
            fin, op, payload = r.frame()
            if op == OP_PONG:
                pong = payload == b"hi"
            else:
                seen += payload
        self.assertTrue(pong, "no pong with the ping's payload")
        self.assertEqual(seen[:1], b"\x90", seen)   # SUBACK first
        self.assertIn(b"together", seen)

    def test_cross_protocol_through_one_broker(self):
        import paho.mqtt.client as mqtt
        # MQTT over WebSocket -> STOMP over TCP.
        tcp = self.client()
        tcp.subscribe("/topic/ws.cross", "1")
        pub, _ = self.paho_ws(mqtt.MQTTv311)
        pub.publish("ws/cross", b"from mqtt-ws", qos=1).wait_for_publish(WAIT)
        self.assertEqual(sbtest._body(tcp.get_message()), "from mqtt-ws")
        # STOMP over TCP -> STOMP over WebSocket; MQTT over TCP -> STOMP over WebSocket.
        c = self.stomp_ws()
        self.stomp_subscribe(c, "/queue/ws.cross.q")
        tcp.send("/queue/ws.cross.q", "from stomp-tcp")
        self.assertEqual(self.stomp_receive(c)[1], b"from stomp-tcp")
        self.stomp_subscribe(c, "/topic/ws.cross.t", sub_id="2")
        m = mqtt.Client(client_id="tcp-pub", protocol=mqtt.MQTTv311)
        m.connect(HOST, self.mqtt_tcp_port)
        m.loop_start()
        self.addCleanup(m.loop_stop)
        m.publish("ws/cross/t", b"from mqtt-tcp", qos=1).wait_for_publish(WAIT)
        self.assertEqual(self.stomp_receive(c)[1], b"from mqtt-tcp")

    def test_amqp_over_websocket_to_stomp(self):
        """AMQP 1.0 frames (encoded with python3-qpid-proton's codec) over WebSocket with the
        `amqp` subprotocol: open, begin, attach, transfer; a STOMP TCP client receives it."""
        import amqp_malformed_test as amq
        tcp = self.client()
        tcp.subscribe("/queue/ws.amqp", "1")
        c = self.ws("/amqp", ["amqp"])
        self.assertEqual(c.getsubprotocol(), "amqp")
        got = bytearray()

        def frames_until(code):
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                at = 8 if got[:4] == b"AMQP" else 0
                while len(got) >= at + 8:
                    size = struct.unpack(">I", got[at:at + 4])[0]
                    if len(got) < at + size:
                        break
                    body = bytes(got[at + 4 * got[at + 4]:at + size])
                    del got[at:at + size]
                    if body[:2] == b"\x00\x53" and body[2] == code:   # 0x00 0x53 <code>: a small-ulong descriptor
                        return True
                got.extend(c.recv_data()[1])
            return False

        c.send_binary(amq.AMQP_HEADER + amq.frame(amq.performative(amq.OPEN, ["ws-amqp"])))
        self.assertTrue(frames_until(amq.OPEN), "no open")
        self.assertEqual(bytes(got[:8]) if got[:4] == b"AMQP" else amq.AMQP_HEADER, amq.AMQP_HEADER)
        c.send_binary(amq.frame(amq.performative(amq.BEGIN, [None, amq.uint(0), amq.uint(1 << 20),
                                                             amq.uint(1 << 20)])))
        self.assertTrue(frames_until(amq.BEGIN), "no begin")
        c.send_binary(amq.frame(amq.performative(amq.ATTACH, ["s", amq.uint(0), False, None, None,
                                                              amq.source("ws.amqp"),
                                                              amq.target("ws.amqp")])))
        self.assertTrue(frames_until(amq.FLOW), "no credit")
        c.send_binary(amq.transfer(0, 0, body="from amqp-ws"))
        self.assertEqual(sbtest._body(tcp.get_message()), "from amqp-ws")

    def test_auto_port_upgrade_and_plain_http_404(self):
        c = self.stomp_ws(port=self.auto_port)
        self.stomp_subscribe(c, "/queue/ws.auto")
        self.client().send("/queue/ws.auto", "via auto")
        self.assertEqual(self.stomp_receive(c)[1], b"via auto")
        # Another HTTP request on the auto port: 404.
        r = self.raw_ws(self.auto_port)
        r.send(f"GET /index.html HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        self.assertEqual(r.response()[0], 404)
        # MQTT over plain TCP on the same auto port still works.
        m = sbtest.RawSocket(self.auto_port)
        self.addCleanup(m.sock.close)
        m.send(mqtt_connect("auto-tcp"))
        deadline = time.monotonic() + WAIT
        while len(m.buf) < 4:
            m._fill(deadline)
        self.assertEqual(bytes(m.buf[:1]), b"\x20")

    def test_detection_inside_websocket_on_root_path_without_subprotocol(self):
        """Path `/` is auto: no subprotocol offered (none echoed, RFC 6455 §4.2.2), the protocol
        is detected from the first bytes inside the WebSocket."""
        r = self.raw_ws()
        headers = r.handshake("/")
        self.assertNotIn("sec-websocket-protocol", headers)
        r.send(ws_frame(OP_BINARY, stomp_frame("CONNECT", {"accept-version": "1.2", "host": "/"})))
        self.assertEqual(parse_stomp(r.data()[1])[0], "CONNECTED")
        m = self.raw_ws()
        m.handshake("/", ["mqtt"])
        self.assertEqual(m.headers.get("sec-websocket-protocol"), "mqtt")
        m.send(ws_frame(OP_BINARY, mqtt_connect("root-mqtt")))
        self.assertEqual(m.data()[1][:1], b"\x20")

    def test_negotiation_refusals(self):
        for path, protocols, status in (("/nowhere", ["mqtt"], 404),
                                        ("/mqtt", ["v12.stomp"], 400),
                                        ("/", ["xmpp", "wamp"], 400)):
            with self.subTest(path=path, protocols=protocols):
                r = self.raw_ws()
                r.send(upgrade_request(path, protocols))
                self.assertEqual(r.response()[0], status)
                r.wait_end(time.monotonic() + WAIT)
        # No subprotocol on /mqtt: MQTT by the path, nothing echoed.
        r = self.raw_ws()
        self.assertNotIn("sec-websocket-protocol", r.handshake("/mqtt"))
        r.send(ws_frame(OP_BINARY, mqtt_connect("by-path")))
        self.assertEqual(r.data()[1][:1], b"\x20")

    def test_websocket_session_closed_gracefully(self):
        """DISCONNECT: the broker ends the session with a close frame (1000)."""
        r = self.mqtt_ws_raw("bye")
        r.send(ws_frame(OP_BINARY, b"\xe0\x00"))
        self.assertEqual(r.close_code(), 1000)
        # A client's close is echoed.
        r = self.mqtt_ws_raw("bye2")
        r.send(ws_frame(OP_CLOSE, struct.pack(">H", 1000)))
        self.assertEqual(r.close_code(), 1000)


class SettingsTest(WebSocketTestCase):
    ws_settings = {"allowed_origins": ["https://app.example"], "max_message_bytes": 4096,
                   "handshake_timeout": "700ms", "fail_if_no_subprotocol": False,
                   "paths": {"/mqtt": "mqtt", "/s": "stomp", "/": "auto"}}
    max_connections = 3

    def test_origin_allow_list(self):
        r = self.raw_ws()
        r.send(upgrade_request("/mqtt", ["mqtt"], origin="https://evil.example"))
        self.assertEqual(r.response()[0], 403)
        r = self.raw_ws()
        r.handshake("/mqtt", ["mqtt"], origin="https://APP.example")
        r.send(ws_frame(OP_BINARY, mqtt_connect("origin-ok")))
        self.assertEqual(r.data()[1][:1], b"\x20")

    def test_configured_paths_and_unknown_subprotocol_falls_back_to_the_path(self):
        r = self.raw_ws()
        headers = r.handshake("/s", ["unknown.proto"])
        self.assertNotIn("sec-websocket-protocol", headers)
        r.send(ws_frame(OP_BINARY, stomp_frame("CONNECT", {"accept-version": "1.2", "host": "/"})))
        self.assertEqual(parse_stomp(r.data()[1])[0], "CONNECTED")
        r = self.raw_ws()
        r.send(upgrade_request("/stomp", ["v12.stomp"]))
        self.assertEqual(r.response()[0], 404)

    def test_max_connections_on_the_websocket_listener(self):
        held = [self.mqtt_ws_raw(f"held-{i}") for i in range(3)]
        r = self.raw_ws()
        try:
            r.send(upgrade_request("/mqtt", ["mqtt"]))
            r.response(timeout=WAIT)
            self.fail("a fourth connection was served")
        except (sbtest.ConnectionClosed, ConnectionResetError, BrokenPipeError):
            pass
        held[0].close()
        # Its slot comes back once the broker saw the close.
        deadline = time.monotonic() + WAIT
        while True:
            try:
                self.mqtt_ws_raw("after")
                break
            except (sbtest.ConnectionClosed, ConnectionResetError, BrokenPipeError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)   # polling with a deadline: the broker's close is not observable


class BadInputTest(WebSocketTestCase):
    """Issue 21, done when 3: each bad connection gets its HTTP status or close code, and a
    WebSocket client connected before it keeps working."""
    ws_settings = {"max_message_bytes": 2048, "handshake_timeout": "600ms"}

    def setUp(self):
        super().setUp()
        self.bystander = self.stomp_ws()
        self.stomp_subscribe(self.bystander, "/queue/bystander")

    def tearDown(self):
        body = f"still here {time.monotonic()}".encode()
        self.bystander.send_binary(stomp_frame("SEND", {"destination": "/queue/bystander"}, body))
        self.assertEqual(self.stomp_receive(self.bystander)[1], body)

    def status_of(self, request):
        r = self.raw_ws()
        r.send(request)
        status = r.response()[0]
        r.wait_end(time.monotonic() + WAIT)
        return status

    def test_garbage_on_upgrade(self):
        self.assertEqual(self.status_of(b"GET /\x00\x01\x02 garbage\r\n\r\n"), 400)
        self.assertEqual(self.status_of(b"GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n"), 400)

    def test_garbage_instead_of_http_on_a_websocket_listener(self):
        r = self.raw_ws()
        r.send(os.urandom(64) + b"\r\n\r\n")
        self.assertEqual(r.response()[0], 400)

    def test_upgrade_without_key_or_version(self):
        self.assertEqual(self.status_of(upgrade_request("/mqtt", ["mqtt"], key=False)), 400)
        self.assertEqual(self.status_of(upgrade_request("/mqtt", ["mqtt"], version=None)), 400)
        r = self.raw_ws()
        r.send(upgrade_request("/mqtt", ["mqtt"], version="8"))
        status, headers = r.response()
        self.assertEqual((status, headers.get("sec-websocket-version")), (426, "13"))

    def test_not_an_upgrade_on_a_websocket_listener(self):
        self.assertEqual(self.status_of(f"GET /mqtt HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()), 426)

    def test_stalled_handshake_closed_after_the_timeout(self):
        r = self.raw_ws()
        started = time.monotonic()
        r.send(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n")
        with self.assertRaises(sbtest.ConnectionClosed):
            r._fill(started + WAIT)
        took = time.monotonic() - started
        self.assertGreater(took, 0.5)
        self.assertLess(took, 3.0)

    def test_unmasked_client_frame(self):
        r = self.mqtt_ws_raw("unmasked")
        r.send(ws_frame(OP_BINARY, b"\xc0\x00", mask=False))
        self.assertEqual(r.close_code(), 1002)

    def test_oversize_message(self):
        r = self.mqtt_ws_raw("big")
        r.send(ws_frame(OP_BINARY, b"\x30" + b"\x00" * 4000))
        self.assertEqual(r.close_code(), 1009)
        # Spread over fragments too (the first one the start of an MQTT PUBLISH that waits for more).
        r = self.mqtt_ws_raw("big2")
        start = b"\x30" + sbtest.mqtt_varint(2996) + b"\x00\x01t"
        r.send(ws_frame(OP_BINARY, start.ljust(1500, b"\x00"), fin=False) + ws_frame(OP_CONT, b"\x00" * 1500))
        self.assertEqual(r.close_code(), 1009)

    def test_invalid_utf8_in_a_text_message(self):
        r = self.raw_ws()
        r.handshake("/stomp", ["v12.stomp"])
        r.send(ws_frame(OP_TEXT, b"CONNECT\n\xff\xfe\n\n\x00"))
        self.assertEqual(r.close_code(), 1007)

    def test_text_message_to_mqtt(self):
        r = self.mqtt_ws_raw("text")
        r.send(ws_frame(OP_TEXT, b"hello"))   # valid UTF-8: refused for being text
        self.assertEqual(r.close_code(), 1003)

    def test_control_frame_over_125_bytes(self):
        r = self.mqtt_ws_raw("long-ping")
        r.send(ws_frame(OP_PING, b"x" * 126))
        self.assertEqual(r.close_code(), 1002)

    def test_fragmented_control_frame(self):
        r = self.mqtt_ws_raw("frag-ping")
        r.send(ws_frame(OP_PING, b"x", fin=False))
        self.assertEqual(r.close_code(), 1002)

    def test_reserved_bits_and_unknown_opcode(self):
        r = self.mqtt_ws_raw("rsv")
        r.send(ws_frame(OP_BINARY, b"\xc0\x00", rsv=4))
        self.assertEqual(r.close_code(), 1002)
        r = self.mqtt_ws_raw("opcode")
        r.send(ws_frame(0x3, b"\xc0\x00"))
        self.assertEqual(r.close_code(), 1002)


class TlsTest(WebSocketTestCase):
    """wss:// on a websocket listener with tls, and a WebSocket upgrade on a TLS auto port."""
    tls = True

    def test_paho_and_stomp_over_wss(self):
        import paho.mqtt.client as mqtt
        c, wait = self.paho_ws(mqtt.MQTTv5, port=self.wss_port, secure=True)
        c.subscribe("wss/t", qos=1)
        c.publish("wss/t", b"secure", qos=1)
        self.assertEqual([m.payload for m in wait(1)], [b"secure"])
        s = self.stomp_ws(port=self.wss_port, secure=True)
        self.stomp_subscribe(s, "/queue/wss")
        self.client().send("/queue/wss", "to wss")
        self.assertEqual(self.stomp_receive(s)[1], b"to wss")

    def test_websocket_on_a_tls_auto_port(self):
        s = self.stomp_ws(port=self.auto_tls_port, secure=True)
        self.stomp_subscribe(s, "/queue/wss.auto")
        self.client().send("/queue/wss.auto", "via tls auto")
        self.assertEqual(self.stomp_receive(s)[1], b"via tls auto")
        r = self.raw_ws(self.auto_tls_port, tls=True)
        r.send(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        self.assertEqual(r.response()[0], 404)


if __name__ == "__main__":
    sbtest.main()
