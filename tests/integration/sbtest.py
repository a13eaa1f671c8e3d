# tests/integration/sbtest.py — harness: runs the real switchboard binary on free loopback ports
# and gives tests third-party clients (stomp.py, paho-mqtt) and raw-socket STOMP and MQTT clients.
#
# Every test file is a unittest program run as `python3 X.py --bin /path/to/switchboard`
# (or with SB_BIN in the environment). Only the standard library, stomp.py and (for the MQTT
# tests, imported lazily) paho-mqtt 1.6 are used.
# Every wait here is bounded: a hung broker fails a test, it never hangs ctest.

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

import stomp

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 10.0     # broker must accept TCP within this
SHUTDOWN_TIMEOUT = 10.0    # broker must exit 0 within this after SIGTERM
WAIT = 5.0                 # default bound for one expected event (a frame, a receipt)
LOG_TAIL_LINES = 60

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))
BIN = os.environ.get("SB_BIN") or os.path.join(_REPO, "build", "switchboard")


# ---------------------------------------------------------------------------------------------
# Config: the harness writes YAML itself (no PyYAML): a small block-style dumper is enough.

def deep_merge(base, extra):
    """Returns base updated by extra, merging nested dicts (lists and scalars replace)."""
    out = dict(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _yaml_scalar(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(str(value))


def to_yaml(obj, indent=0):
    pad = "  " * indent
    lines = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, dict) and value:
                lines.append(f"{pad}{key}:")
                lines.extend(to_yaml(value, indent + 1))
            elif isinstance(value, list) and value:
                lines.append(f"{pad}{key}:")
                lines.extend(to_yaml(value, indent + 1))
            elif isinstance(value, dict):
                lines.append(f"{pad}{key}: {{}}")
            elif isinstance(value, list):
                lines.append(f"{pad}{key}: []")
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(value)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)):
                sub = to_yaml(item, 0)
                lines.append(f"{pad}- {sub[0]}")
                lines.extend(f"{pad}  {line}" for line in sub[1:])
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        lines.append(pad + _yaml_scalar(obj))
    return lines


def free_port():
    """A port that was free a moment ago (bind to :0 and close). Races are rare on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def base_config(port):
    return {
        "workers": 2,
        "log": {"level": "info"},
        "store": {"type": "memory"},
        "listeners": [
            {"name": "stomp", "protocol": "stomp", "address": HOST, "port": port},
        ],
    }


def config_override(extra):
    """Decorator: extra config sections for one test method (merged over the class's)."""
    def wrap(fn):
        fn.sb_config = extra
        return fn
    return wrap


# ---------------------------------------------------------------------------------------------
# The broker process.

class Broker:
    def __init__(self, extra=None, workdir=None, mqtt=False):
        """mqtt=True adds an MQTT listener on another free port (self.mqtt_port); self.port
        stays the STOMP one. Listeners given in `extra` replace both."""
        self.owns_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="sbtest-")
        self.port = free_port()
        self.mqtt_port = free_port() if mqtt else None
        base = base_config(self.port)
        if mqtt:
            base["listeners"].append({"name": "mqtt", "protocol": "mqtt", "address": HOST,
                                      "port": self.mqtt_port})
        self.config = deep_merge(base, extra or {})
        self.config_path = os.path.join(self.dir, "switchboard.yaml")
        self.log_path = os.path.join(self.dir, "broker.log")
        self.proc = None
        self.reaped = False      # a test saw the process exit on purpose (a signal it sent)
        self._log = None

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write("# written by tests/integration/sbtest.py\n")
            f.write("\n".join(to_yaml(self.config)) + "\n")

    def start(self):
        self.write_config()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "run", "-c", self.config_path], cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        waiting = [p for p in (self.port, self.mqtt_port) if p is not None]
        while True:
            code = self.proc.poll()
            if code is not None:
                raise AssertionError(f"broker exited with code {code} during startup\n"
                                     f"{self.describe()}")
            try:
                with socket.create_connection((HOST, waiting[0]), timeout=0.5):
                    waiting.pop(0)
                    if not waiting:
                        return self
                    continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"broker did not accept on {HOST}:{waiting[0]} within "
                                     f"{STARTUP_TIMEOUT}s\n{self.describe()}")
            time.sleep(0.05)  # polling with a deadline: there is no event to await here

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Exit code, or None if still running after timeout."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.reaped = True
        return code

    def kill(self):
        if self.alive():
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()

    def stop(self):
        """SIGTERM; the broker must exit 0 within SHUTDOWN_TIMEOUT (else kill -9 and fail)."""
        if self.proc is None or self.reaped:
            self._close_log()
            return
        code = self.proc.poll()
        if code is not None:
            self._close_log()
            raise AssertionError(f"broker had already exited with code {code} before teardown\n"
                                 f"{self.describe()}")
        self.proc.send_signal(signal.SIGTERM)
        code = self.wait_exit(SHUTDOWN_TIMEOUT)
        if code is None:
            self.kill()
            raise AssertionError(f"broker did not exit within {SHUTDOWN_TIMEOUT}s of SIGTERM "
                                 f"(killed)\n{self.describe()}")
        self._close_log()
        if code != 0:
            raise AssertionError(f"broker exited with code {code} after SIGTERM\n"
                                 f"{self.describe()}")

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines=LOG_TAIL_LINES):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return "(no broker log)"
        text = data.decode("utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def describe(self):
        return (f"--- broker log tail ({self.log_path}) ---\n{self.log_tail()}\n"
                f"--- end of broker log ---")

    def cleanup(self):
        self.kill()

    def remove_dir(self):
        if self.owns_dir and not os.environ.get("SB_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# A raw-socket STOMP client: exact bytes out, exact frames in.

class ConnectionClosed(Exception):
    pass


class Frame:
    def __init__(self, command, headers, body, header_list=None):
        self.command = command
        self.headers = headers          # first occurrence of a repeated header wins (spec)
        self.header_list = header_list or list(headers.items())
        self.body = body

    def __repr__(self):
        body = self.body if len(self.body) <= 200 else self.body[:200] + b"..."
        return f"Frame({self.command!r}, {self.headers!r}, {body!r})"


_UNESCAPE = {"n": "\n", "r": "\r", "c": ":", "\\": "\\"}


def _unescape(text):
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _UNESCAPE:
            out.append(_UNESCAPE[text[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def escape_header(text):
    return (text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
            .replace(":", "\\c"))


def encode_frame(command, headers=(), body=b"", escape=True):
    """headers: dict or list of pairs, written in order. No content-length is added."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    if isinstance(body, str):
        body = body.encode()
    out = [command.encode(), b"\n"]
    for key, value in headers:
        key, value = str(key), str(value)
        if escape and command not in ("CONNECT", "STOMP"):
            key, value = escape_header(key), escape_header(value)
        out.append(f"{key}:{value}\n".encode())
    out.append(b"\n")
    out.append(body)
    out.append(b"\0")
    return b"".join(out)


class RawSocket:
    """One blocking socket with a receive buffer; the raw protocol clients build on it."""

    def __init__(self, port, timeout=WAIT):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Reads more into self.buf before `deadline`: TimeoutError, or ConnectionClosed at EOF."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for data")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("timed out waiting for data") from None
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            raise ConnectionClosed(f"connection closed by peer ({len(self.buf)} bytes unparsed: "
                                   f"{bytes(self.buf[:200])!r})")
        self.buf += chunk


class RawStomp(RawSocket):
    """A blocking STOMP client over one socket. read_frame() skips and counts heart-beat EOLs."""

    def __init__(self, port, timeout=WAIT):
        super().__init__(port, timeout)
        self.heartbeats = 0
        self.version = None

    # -- sending

    def send_frame(self, command, headers=(), body=b"", escape=True):
        self.send(encode_frame(command, headers, body, escape))

    # -- receiving

    def _skip_eols(self):
        """Drops leading EOLs (counting them); True when a frame's first byte is buffered."""
        while True:
            if self.buf[:1] == b"\n":
                del self.buf[:1]
            elif self.buf[:2] == b"\r\n":
                del self.buf[:2]
            else:
                break
            self.heartbeats += 1
        return bool(self.buf) and self.buf != b"\r"

    def _take_line(self, start, deadline):
        while True:
            idx = self.buf.find(b"\n", start)
            if idx >= 0:
                return idx
            self._fill(deadline)

    def read_frame(self, timeout=WAIT):
        """Next frame; raises TimeoutError or ConnectionClosed."""
        deadline = time.monotonic() + timeout
        while not self._skip_eols():   # heart-beats: EOLs between frames
            self._fill(deadline)
        pos = 0
        lines = []
        while True:
            idx = self._take_line(pos, deadline)
            line = bytes(self.buf[pos:idx])
            pos = idx + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                break
            lines.append(line.decode("utf-8", errors="replace"))
        command = lines[0]
        headers = {}
        header_list = []
        for raw in lines[1:]:
            key, _, value = raw.partition(":")
            if command != "CONNECTED":
                key, value = _unescape(key), _unescape(value)
            header_list.append((key, value))
            headers.setdefault(key, value)
        if "content-length" in headers:
            length = int(headers["content-length"])
            while len(self.buf) < pos + length + 1:
                self._fill(deadline)
            body = bytes(self.buf[pos:pos + length])
            if self.buf[pos + length] != 0:
                raise AssertionError(f"frame {command} body not followed by NUL")
            end = pos + length + 1
        else:
            while True:
                idx = self.buf.find(b"\0", pos)
                if idx >= 0:
                    break
                self._fill(deadline)
            body = bytes(self.buf[pos:idx])
            end = idx + 1
        del self.buf[:end]
        return Frame(command, headers, body, header_list)

    def expect(self, command, timeout=WAIT):
        frame = self.read_frame(timeout)
        if frame.command != command:
            raise AssertionError(f"expected {command}, got {frame!r}")
        return frame

    def read_until(self, predicate, timeout=WAIT):
        """Reads frames until predicate(frame); returns (matching frame, frames skipped)."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            frame = self.read_frame(max(0.0, deadline - time.monotonic()))
            if predicate(frame):
                return frame, skipped
            skipped.append(frame)

    def wait_heartbeats(self, count, timeout):
        """Waits until `count` heart-beat EOLs have arrived; frames seen meanwhile are returned."""
        deadline = time.monotonic() + timeout
        frames = []
        while self.heartbeats < count:
            if not self._skip_eols():
                if self.heartbeats >= count:
                    break
                self._fill(deadline)
            elif self.heartbeats < count:
                frames.append(self.read_frame(max(0.0, deadline - time.monotonic())))
        return frames

    def wait_closed(self, timeout=WAIT):
        """Reads (and returns) whatever frames arrive until EOF; fails if no EOF in time."""
        deadline = time.monotonic() + timeout
        frames = []
        try:
            while True:
                frames.append(self.read_frame(max(0.0, deadline - time.monotonic())))
        except ConnectionClosed:
            return frames
        except TimeoutError:
            raise AssertionError(f"connection still open after {timeout}s; frames seen: "
                                 f"{frames!r}, unparsed {bytes(self.buf[:200])!r}") from None

    # -- session
    def connect(self, version="1.2", headers=None, command="CONNECT", timeout=WAIT):
        hdrs = {"accept-version": version, "host": "localhost"}
        hdrs.update(headers or {})
        self.send_frame(command, hdrs)
        frame = self.read_frame(timeout)
        if frame.command != "CONNECTED":
            raise AssertionError(f"expected CONNECTED, got {frame!r}")
        self.version = frame.headers.get("version", "1.0")
        return frame

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# stomp.py, wrapped so every wait is bounded and every callback lands in a queue.

_STOMP_CLASSES = {"1.0": stomp.Connection10, "1.1": stomp.Connection11,
                  "1.2": stomp.Connection12}


class StompClient(stomp.ConnectionListener):
    def __init__(self, port, version="1.2", heartbeats=(0, 0), auto_decode=True,
                 on_message=None):
        self.version = version
        self.messages = queue.Queue()
        self.errors = queue.Queue()
        self.on_message_hook = on_message   # called on stomp.py's receiver thread instead of queueing
        self.received_heartbeats = 0
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self._outcome = threading.Event()    # CONNECTED, ERROR or socket closed
        self._receipts = []
        self._cond = threading.Condition()
        kwargs = dict(host_and_ports=[(HOST, port)], reconnect_attempts_max=1, timeout=WAIT,
                      auto_decode=auto_decode, try_loopback_connect=False)
        if version != "1.0":
            kwargs["heartbeats"] = heartbeats
        self.conn = _STOMP_CLASSES[version](**kwargs)
        self.conn.set_listener("sbtest", self)

    # -- stomp.py callbacks (receiver thread)
    def on_connected(self, frame):
        self.connected.set()
        self._outcome.set()

    def on_error(self, frame):
        self.errors.put(frame)
        self._outcome.set()

    def on_disconnected(self):
        self.disconnected.set()
        self._outcome.set()
        with self._cond:
            self._cond.notify_all()

    def on_heartbeat(self):
        self.received_heartbeats += 1

    def on_receipt(self, frame):
        with self._cond:
            self._receipts.append(frame.headers.get("receipt-id"))
            self._cond.notify_all()

    def on_message(self, frame):
        if self.on_message_hook is not None:
            self.on_message_hook(self, frame)
        else:
            self.messages.put(frame)

    # -- session
    def connect(self, login=None, passcode=None, headers=None, timeout=WAIT):
        self.conn.connect(login, passcode, wait=False, headers=headers)
        if not self._outcome.wait(timeout):
            raise AssertionError(f"no CONNECTED/ERROR within {timeout}s")
        if not self.connected.is_set():
            errs = list(self.errors.queue)   # left in the queue for the test to inspect
            raise AssertionError(f"connect failed: {[_describe(e) for e in errs]}")
        return self

    def receipt_ids(self):
        with self._cond:
            return list(self._receipts)

    def wait_receipt(self, rid, timeout=WAIT):
        with self._cond:
            ok = self._cond.wait_for(lambda: rid in self._receipts or self.disconnected.is_set(),
                                     timeout)
            if rid not in self._receipts:
                why = "disconnected" if ok else f"timed out after {timeout}s"
                errs = list(self.errors.queue)
                raise AssertionError(f"no RECEIPT {rid} ({why}); errors: "
                                     f"{[_describe(e) for e in errs]}")

    def new_receipt(self):
        return "r-" + uuid.uuid4().hex[:12]

    def send(self, destination, body, headers=None, receipt=False, **kw):
        headers = dict(headers or {})
        rid = None
        if receipt:
            rid = self.new_receipt()
            headers["receipt"] = rid
        self.conn.send(destination, body, headers=headers, **kw)
        if rid:
            self.wait_receipt(rid)
        return rid

    def subscribe(self, destination, sub_id, ack="auto", headers=None, receipt=True):
        headers = dict(headers or {})
        rid = None
        if receipt:
            rid = self.new_receipt()
            headers["receipt"] = rid
        if self.version == "1.0":
            headers["id"] = sub_id
            self.conn.subscribe(destination, id=sub_id, ack=ack, headers=headers)
        else:
            self.conn.subscribe(destination, sub_id, ack=ack, headers=headers)
        if rid:
            self.wait_receipt(rid)

    def unsubscribe(self, sub_id, receipt=True):
        headers = {}
        rid = None
        if receipt:
            rid = self.new_receipt()
            headers["receipt"] = rid
        self.conn.unsubscribe(id=sub_id, headers=headers)
        if rid:
            self.wait_receipt(rid)

    def _ack_args(self, frame):
        if self.version == "1.2":
            return (frame.headers["ack"],)
        if self.version == "1.1":
            return (frame.headers["message-id"], frame.headers["subscription"])
        return (frame.headers["message-id"],)

    def ack(self, frame, receipt=False, transaction=None):
        rid = self.new_receipt() if receipt else None
        self.conn.ack(*self._ack_args(frame), transaction=transaction, receipt=rid)
        if rid:
            self.wait_receipt(rid)

    def nack(self, frame, receipt=False, transaction=None):
        rid = self.new_receipt() if receipt else None
        self.conn.nack(*self._ack_args(frame), transaction=transaction, receipt=rid)
        if rid:
            self.wait_receipt(rid)

    def get_message(self, timeout=WAIT):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            errs = list(self.errors.queue)
            raise AssertionError(f"no MESSAGE within {timeout}s (connected={self.is_connected()}, "
                                 f"errors={[_describe(e) for e in errs]})") from None

    def get_messages(self, count, timeout=WAIT):
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < count:
            remaining = deadline - time.monotonic()
            try:
                out.append(self.messages.get(timeout=max(0.0, remaining)))
            except queue.Empty:
                raise AssertionError(f"got {len(out)} of {count} messages within {timeout}s: "
                                     f"{[_body(m) for m in out][:20]}") from None
        return out

    def is_connected(self):
        return self.connected.is_set() and not self.disconnected.is_set()

    def close(self, timeout=WAIT):
        """Graceful: DISCONNECT with a receipt, wait for the socket to close (bounded)."""
        if self.is_connected():
            try:
                self.conn.disconnect()
            except Exception:
                pass
            self.disconnected.wait(timeout)
        self.abort()

    def abort(self):
        """Abrupt: close the socket without DISCONNECT."""
        try:
            self.conn.transport.disconnect_socket()
        except Exception:
            pass


def _body(frame):
    if frame is None:
        return None
    return frame.body


def _describe(frame):
    if frame is None:
        return "(none)"
    return f"{frame.cmd} {frame.headers} {frame.body!r}"


# ---------------------------------------------------------------------------------------------
# The test case base: one broker per test method, clients closed before it stops.

class BrokerSeries:
    """Brokers started one after another on one work directory (restarts and crashes of the
    same broker, e.g. on a journal store). On exit every one is killed, and when the block
    failed every one's log tail is printed."""

    def __init__(self, extra=None, mqtt=False, prefix="sbseries-"):
        self.workdir = tempfile.mkdtemp(prefix=prefix)
        self.extra = extra or {}
        self.mqtt = mqtt
        self.brokers = []

    def journal(self, sync="always"):
        """Config with a journal store in the series' directory."""
        return {"store": {"type": "journal", "dir": os.path.join(self.workdir, "data"), "sync": sync}}

    def start(self):
        b = Broker(self.extra, workdir=self.workdir, mqtt=self.mqtt)
        self.brokers.append(b)
        b.start()
        return b

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            for b in self.brokers:
                print(b.describe(), file=sys.stderr)
        for b in self.brokers:
            b.kill()
        if not os.environ.get("SB_KEEP_TMP"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        return False


class BrokerTestCase(unittest.TestCase):
    broker_config = {}      # extra config sections for every test of the class
    mqtt = False            # True: the broker also gets an MQTT listener (self.mqtt_port)

    def setUp(self):
        method = getattr(self, self._testMethodName)
        extra = deep_merge(self.broker_config, getattr(method, "sb_config", {}))
        self.broker = Broker(extra, mqtt=self.mqtt)
        self.addCleanup(self.broker.cleanup)
        self.addCleanup(self.broker.stop)   # runs before cleanup (LIFO), after client closes
        self.broker.start()

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        broker = getattr(self, "broker", None)
        if broker is not None:
            if len(result.failures) + len(result.errors) > before:
                sys.stderr.write(f"\n[{self.id()}] failed; {broker.describe()}\n")
                sys.stderr.flush()
            broker.remove_dir()
        return out

    @property
    def port(self):
        return self.broker.port

    @property
    def mqtt_port(self):
        return self.broker.mqtt_port

    def client(self, version="1.2", heartbeats=(0, 0), auto_decode=True, on_message=None,
               connect=True, login=None, passcode=None, headers=None):
        """A stomp.py client, connected unless connect=False; aborted at cleanup."""
        c = StompClient(self.port, version=version, heartbeats=heartbeats,
                        auto_decode=auto_decode, on_message=on_message)
        self.addCleanup(c.abort)
        if connect:
            c.connect(login=login, passcode=passcode, headers=headers)
        return c

    def raw(self, connect_version=None, headers=None):
        """A raw socket; CONNECTed with connect_version when given; closed at cleanup."""
        r = RawStomp(self.port)
        self.addCleanup(r.close)
        if connect_version:
            r.connect(connect_version, headers=headers)
        return r

    def assert_error_then_close(self, raw, timeout=WAIT, what=""):
        """The next frame is ERROR with a message header, then the server closes the socket."""
        try:
            frame = raw.read_frame(timeout)
        except ConnectionClosed as e:
            self.fail(f"{what}: connection closed without an ERROR frame ({e})")
        except TimeoutError:
            self.fail(f"{what}: no ERROR frame within {timeout}s "
                      f"(unparsed: {bytes(raw.buf[:200])!r})")
        self.assertEqual(frame.command, "ERROR", f"{what}: expected ERROR, got {frame!r}")
        self.assertIn("message", frame.headers, f"{what}: ERROR without message header: {frame!r}")
        rest = raw.wait_closed(timeout)
        self.assertEqual([f for f in rest if f.command != "ERROR"], [],
                         f"{what}: frames after ERROR before close")
        return frame


# ---------------------------------------------------------------------------------------------
# MQTT: a raw-socket client (exact bytes out, parsed packets in) and a paho-mqtt wrapper.
# paho is imported only when an MQTT client is made, so the STOMP tests never need it.

(CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE,
 UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH) = range(1, 16)
PACKET_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC",
                6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE",
                11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# MQTT 5 §2.2.2.2 property identifiers and their wire types.
P_PAYLOAD_FORMAT = 0x01
P_MESSAGE_EXPIRY = 0x02
P_CONTENT_TYPE = 0x03
P_RESPONSE_TOPIC = 0x08
P_CORRELATION_DATA = 0x09
P_SUBSCRIPTION_ID = 0x0B
P_SESSION_EXPIRY = 0x11
P_ASSIGNED_CLIENT_ID = 0x12
P_SERVER_KEEP_ALIVE = 0x13
P_REQUEST_PROBLEM_INFO = 0x17
P_WILL_DELAY = 0x18
P_REASON_STRING = 0x1F
P_RECEIVE_MAXIMUM = 0x21
P_TOPIC_ALIAS_MAXIMUM = 0x22
P_TOPIC_ALIAS = 0x23
P_MAXIMUM_QOS = 0x24
P_RETAIN_AVAILABLE = 0x25
P_USER_PROPERTY = 0x26
P_MAXIMUM_PACKET_SIZE = 0x27
P_WILDCARD_AVAILABLE = 0x28
P_SUB_ID_AVAILABLE = 0x29
P_SHARED_AVAILABLE = 0x2A

_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
_PROP_TYPES = {0x01: _BYTE, 0x02: _U32, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VARINT,
               0x11: _U32, 0x12: _STR, 0x13: _U16, 0x15: _STR, 0x16: _BIN, 0x17: _BYTE,
               0x18: _U32, 0x19: _BYTE, 0x1A: _STR, 0x1C: _STR, 0x1F: _STR, 0x21: _U16,
               0x22: _U16, 0x23: _U16, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _U32,
               0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE}


class MqttMalformed(Exception):
    """The server sent bytes this decoder cannot parse (a broker bug, reported as such)."""


def mqtt_varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    """A length-prefixed string; bytes are written as given (to send invalid UTF-8)."""
    data = s.encode() if isinstance(s, str) else bytes(s)
    return len(data).to_bytes(2, "big") + data


def mqtt_props(props):
    """props: None, a dict {id: value} or a list of (id, value) pairs (repeats allowed;
    a user property value is a (name, value) pair). Returns the length-prefixed block."""
    if props is None:
        return b"\x00"
    items = props.items() if isinstance(props, dict) else props
    body = bytearray()
    for pid, value in items:
        body += mqtt_varint(pid)
        kind = _PROP_TYPES[pid]
        if kind == _BYTE:
            body.append(value)
        elif kind == _U16:
            body += value.to_bytes(2, "big")
        elif kind == _U32:
            body += value.to_bytes(4, "big")
        elif kind == _VARINT:
            body += mqtt_varint(value)
        elif kind in (_STR, _BIN):
            body += mqtt_str(value)
        else:
            body += mqtt_str(value[0]) + mqtt_str(value[1])
    return mqtt_varint(len(body)) + bytes(body)


def mqtt_packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + mqtt_varint(len(body)) + bytes(body)


def connect_packet(client_id="", version=5, clean=True, keepalive=60, props=None, will=None,
                   username=None, password=None, protocol_name=None, level=None, flags=None):
    """will: dict(topic=, payload=, qos=0, retain=False, props=None). flags overrides the
    connect-flags byte (to send reserved bits)."""
    name = protocol_name if protocol_name is not None else ("MQIsdp" if version == 3 else "MQTT")
    cflags = 0x02 if clean else 0
    if will:
        cflags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if username is not None:
        cflags |= 0x80
    if password is not None:
        cflags |= 0x40
    body = bytearray(mqtt_str(name))
    body.append(level if level is not None else version)
    body.append(cflags if flags is None else flags)
    body += keepalive.to_bytes(2, "big")
    if version == 5:
        body += mqtt_props(props)
    body += mqtt_str(client_id)
    if will:
        if version == 5:
            body += mqtt_props(will.get("props"))
        body += mqtt_str(will["topic"]) + mqtt_str(will.get("payload", b""))
    if username is not None:
        body += mqtt_str(username)
    if password is not None:
        body += mqtt_str(password)
    return mqtt_packet(CONNECT, 0, body)


def publish_packet(topic, payload=b"", qos=0, pid=None, retain=False, dup=False, props=None,
                   version=5, flags=None):
    if isinstance(payload, str):
        payload = payload.encode()
    if flags is None:
        flags = (0x08 if dup else 0) | ((qos & 3) << 1) | (0x01 if retain else 0)
    body = bytearray(mqtt_str(topic))
    if qos:
        body += (pid if pid is not None else 1).to_bytes(2, "big")
    if version == 5:
        body += mqtt_props(props)
    body += payload
    return mqtt_packet(PUBLISH, flags, body)


def subscribe_packet(pid, filters, props=None, version=5, flags=0x02):
    """filters: list of (filter, options byte); options = qos | no_local 0x04 |
    retain_as_published 0x08 | retain_handling << 4."""
    body = bytearray(pid.to_bytes(2, "big"))
    if version == 5:
        body += mqtt_props(props)
    for topic_filter, options in filters:
        body += mqtt_str(topic_filter) + bytes([options])
    return mqtt_packet(SUBSCRIBE, flags, body)


def unsubscribe_packet(pid, filters, props=None, version=5):
    body = bytearray(pid.to_bytes(2, "big"))
    if version == 5:
        body += mqtt_props(props)
    for topic_filter in filters:
        body += mqtt_str(topic_filter)
    return mqtt_packet(UNSUBSCRIBE, 0x02, body)


def ack_packet(ptype, pid, reason=None, props=None):
    """PUBACK, PUBREC, PUBREL or PUBCOMP; reason/props only for v5 (omitted when None)."""
    body = bytearray(pid.to_bytes(2, "big"))
    if reason is not None or props is not None:
        body.append(reason or 0)
        if props is not None:
            body += mqtt_props(props)
    return mqtt_packet(ptype, 0x02 if ptype == PUBREL else 0, body)


def disconnect_packet(reason=None, props=None):
    body = bytearray()
    if reason is not None or props is not None:
        body.append(reason or 0)
        if props is not None:
            body += mqtt_props(props)
    return mqtt_packet(DISCONNECT, 0, body)


PINGREQ_PACKET = b"\xc0\x00"


class MqttProps:
    """Decoded properties: get(id) gives the first value, all(id) every value, in order."""

    def __init__(self, pairs=()):
        self.pairs = list(pairs)

    def get(self, pid, default=None):
        for key, value in self.pairs:
            if key == pid:
                return value
        return default

    def all(self, pid):
        return [value for key, value in self.pairs if key == pid]

    def __contains__(self, pid):
        return any(key == pid for key, _ in self.pairs)

    def __repr__(self):
        return "{" + ", ".join(f"0x{k:02x}: {v!r}" for k, v in self.pairs) + "}"


class _Reader:
    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0

    def left(self):
        return len(self.data) - self.pos

    def take(self, n):
        if self.pos + n > len(self.data):
            raise MqttMalformed(f"need {n} bytes at {self.pos} of {self.data!r}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self):
        return self.take(1)[0]

    def u16(self):
        return int.from_bytes(self.take(2), "big")

    def u32(self):
        return int.from_bytes(self.take(4), "big")

    def varint(self):
        value, shift = 0, 0
        for _ in range(4):
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
        raise MqttMalformed("variable byte integer over 4 bytes")

    def binary(self):
        return self.take(self.u16())

    def string(self):
        raw = self.binary()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MqttMalformed(f"invalid UTF-8 from the server: {raw!r}") from None

    def props(self):
        end = self.varint()
        end += self.pos
        pairs = []
        while self.pos < end:
            pid = self.varint()
            kind = _PROP_TYPES.get(pid)
            if kind is None:
                raise MqttMalformed(f"unknown property 0x{pid:02x}")
            value = {_BYTE: self.byte, _U16: self.u16, _U32: self.u32, _VARINT: self.varint,
                     _STR: self.string, _BIN: self.binary,
                     _PAIR: lambda: (self.string(), self.string())}[kind]()
            pairs.append((pid, value))
        if self.pos != end:
            raise MqttMalformed("property block length mismatch")
        return MqttProps(pairs)

    def rest(self):
        return self.take(self.left())


class MqttPacket:
    """A packet from the server. Fields by type: CONNACK session_present, code, props;
    PUBLISH topic, payload, qos, dup, retain, pid, props, alias; PUBACK..PUBCOMP pid, code,
    props; SUBACK/UNSUBACK pid, props, codes; DISCONNECT/AUTH code, props."""

    def __init__(self, first, body, version):
        self.type = first >> 4
        self.flags = first & 0x0F
        self.body = bytes(body)
        self.props = MqttProps()
        self.code = None
        self.pid = None
        self.alias = None
        r = _Reader(body)
        v5 = version == 5
        t = self.type
        if t == CONNACK:
            self.session_present = r.byte() & 1
            self.code = r.byte()
            if v5 and r.left():
                self.props = r.props()
        elif t == PUBLISH:
            self.qos = (self.flags >> 1) & 3
            self.dup = bool(self.flags & 0x08)
            self.retain = bool(self.flags & 0x01)
            self.topic = r.string()
            if self.qos:
                self.pid = r.u16()
            if v5:
                self.props = r.props()
            self.payload = r.rest()
        elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            self.pid = r.u16()
            self.code = r.byte() if (v5 and r.left()) else 0
            if v5 and r.left():
                self.props = r.props()
        elif t in (SUBACK, UNSUBACK):
            self.pid = r.u16()
            if v5:
                self.props = r.props()
            self.codes = list(r.rest())
        elif t in (DISCONNECT, AUTH):
            self.code = r.byte() if r.left() else 0
            if r.left():
                self.props = r.props()
        if r.left() and t not in (PUBLISH, SUBACK, UNSUBACK):
            raise MqttMalformed(f"{PACKET_NAMES.get(t)}: {r.left()} trailing bytes")

    @property
    def name(self):
        return PACKET_NAMES.get(self.type, f"type{self.type}")

    def __repr__(self):
        fields = [self.name]
        if self.type == PUBLISH:
            payload = self.payload if len(self.payload) <= 60 else self.payload[:60] + b"..."
            fields += [f"topic={self.topic!r}", f"qos={self.qos}", f"retain={int(self.retain)}",
                       f"dup={int(self.dup)}", f"payload={payload!r}"]
        if self.pid is not None:
            fields.append(f"pid={self.pid}")
        if self.code is not None:
            fields.append(f"code=0x{self.code:02x}")
        if self.type in (SUBACK, UNSUBACK):
            fields.append("codes=[" + ", ".join(f"0x{c:02x}" for c in self.codes) + "]")
        if self.type == CONNACK:
            fields.append(f"session_present={self.session_present}")
        if self.props.pairs:
            fields.append(f"props={self.props!r}")
        return "MqttPacket(" + " ".join(fields) + ")"


class RawMqtt(RawSocket):
    """A blocking MQTT client over one socket: send exact bytes, read parsed packets.
    Topic aliases the server sets in PUBLISH are resolved into .topic (and kept in .alias)."""

    def __init__(self, port, version=5, timeout=WAIT):
        super().__init__(port, timeout)
        self.version = version
        self.aliases = {}

    def read_packet(self, timeout=WAIT):
        """The next packet; raises TimeoutError or ConnectionClosed."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                length, shift, i = 0, 0, 1
                complete = False
                while i < len(self.buf) and i <= 4:
                    b = self.buf[i]
                    length |= (b & 0x7F) << shift
                    shift += 7
                    i += 1
                    if not b & 0x80:
                        complete = True
                        break
                if not complete and i > 4:
                    raise MqttMalformed(f"remaining length over 4 bytes: {bytes(self.buf[:8])!r}")
                if complete and len(self.buf) >= i + length:
                    first = self.buf[0]
                    body = bytes(self.buf[i:i + length])
                    del self.buf[:i + length]
                    packet = MqttPacket(first, body, self.version)
                    self._resolve_alias(packet)
                    return packet
            self._fill(deadline)

    def _resolve_alias(self, packet):
        if packet.type != PUBLISH or P_TOPIC_ALIAS not in packet.props:
            return
        alias = packet.props.get(P_TOPIC_ALIAS)
        packet.alias = alias
        if packet.topic:
            self.aliases[alias] = packet.topic
        elif alias in self.aliases:
            packet.topic = self.aliases[alias]
        else:
            raise MqttMalformed(f"server used topic alias {alias} before defining it")

    def expect(self, ptype, timeout=WAIT):
        try:
            packet = self.read_packet(timeout)
        except ConnectionClosed as e:
            raise AssertionError(f"expected {PACKET_NAMES[ptype]}, connection closed ({e})")
        except TimeoutError:
            raise AssertionError(f"expected {PACKET_NAMES[ptype]}, nothing within {timeout}s "
                                 f"(unparsed {bytes(self.buf[:100])!r})") from None
        if packet.type != ptype:
            raise AssertionError(f"expected {PACKET_NAMES[ptype]}, got {packet!r}")
        return packet

    def read_until(self, predicate, timeout=WAIT):
        """Reads until predicate(packet); returns (packet, packets skipped)."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            packet = self.read_packet(max(0.0, deadline - time.monotonic()))
            if predicate(packet):
                return packet, skipped
            skipped.append(packet)

    def packets_within(self, seconds):
        """Every packet that arrives within `seconds` (for asserting that none does)."""
        deadline = time.monotonic() + seconds
        out = []
        while True:
            try:
                out.append(self.read_packet(max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                return out

    def wait_closed(self, timeout=WAIT):
        """Reads packets until EOF and returns them; AssertionError if still open."""
        deadline = time.monotonic() + timeout
        packets = []
        try:
            while True:
                packets.append(self.read_packet(max(0.0, deadline - time.monotonic())))
        except ConnectionClosed:
            return packets
        except TimeoutError:
            raise AssertionError(f"connection still open after {timeout}s; packets seen: "
                                 f"{packets!r}, unparsed {bytes(self.buf[:100])!r}") from None

    def connect(self, client_id="", expect_code=0, timeout=WAIT, **kw):
        """Sends CONNECT (see connect_packet) and returns the CONNACK, checking its code."""
        kw.setdefault("version", self.version)
        self.send(connect_packet(client_id, **kw))
        connack = self.expect(CONNACK, timeout)
        if expect_code is not None and connack.code != expect_code:
            raise AssertionError(f"CONNACK code 0x{connack.code:02x}, expected "
                                 f"0x{expect_code:02x}: {connack!r}")
        return connack

    def subscribe(self, filters, pid=1, props=None, timeout=WAIT):
        """filters: [(filter, options)] or one filter string (QoS 0). Returns the SUBACK."""
        if isinstance(filters, str):
            filters = [(filters, 0)]
        self.send(subscribe_packet(pid, filters, props, self.version))
        suback = self.expect(SUBACK, timeout)
        if suback.pid != pid:
            raise AssertionError(f"SUBACK for packet id {suback.pid}, expected {pid}")
        return suback

    def publish(self, topic, payload=b"", qos=0, pid=1, retain=False, props=None, timeout=WAIT):
        """Publishes and completes the QoS handshake; returns the last ack (None for QoS 0)."""
        self.send(publish_packet(topic, payload, qos, pid, retain, props=props,
                                 version=self.version))
        if qos == 0:
            return None
        if qos == 1:
            return self.expect(PUBACK, timeout)
        self.expect(PUBREC, timeout)
        self.send(ack_packet(PUBREL, pid))
        return self.expect(PUBCOMP, timeout)

    def ack(self, publish, timeout=WAIT):
        """Acknowledges a received PUBLISH (QoS 1: PUBACK; QoS 2: PUBREC, PUBREL, PUBCOMP)."""
        if publish.qos == 1:
            self.send(ack_packet(PUBACK, publish.pid))
        elif publish.qos == 2:
            self.send(ack_packet(PUBREC, publish.pid))
            pubrel = self.expect(PUBREL, timeout)
            self.send(ack_packet(PUBCOMP, pubrel.pid))

    def ping(self, timeout=WAIT):
        self.send(PINGREQ_PACKET)
        return self.expect(PINGRESP, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class MqttClient:
    """A paho-mqtt 1.6 client on its own loop thread. Callbacks land in queues and events;
    every wait is bounded. version: 3 (3.1), 4 (3.1.1) or 5. Never reconnects by itself."""

    def __init__(self, port, client_id="", version=5, clean=True, keepalive=60, will=None,
                 username=None, password=None, max_inflight=100, on_message=None):
        import paho.mqtt.client as mqtt
        self.mqtt = mqtt
        self.port = port
        self.version = version
        self.keepalive = keepalive
        self.client_id = client_id
        proto = {3: mqtt.MQTTv31, 4: mqtt.MQTTv311, 5: mqtt.MQTTv5}[version]
        if version == 5:
            self.client = mqtt.Client(client_id, protocol=proto, reconnect_on_failure=False)
            self.clean_start = clean
        else:
            self.client = mqtt.Client(client_id, clean_session=clean, protocol=proto,
                                      reconnect_on_failure=False)
            self.clean_start = None
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        if will:
            self.client.will_set(will["topic"], will.get("payload"), will.get("qos", 0),
                                 will.get("retain", False), will.get("props"))
        if username is not None:
            self.client.username_pw_set(username, password)
        self.messages = queue.Queue()
        self.on_message_hook = on_message
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack = None           # (flags dict, rc as int, properties or None)
        self.disconnect_rc = None     # int: a reason code (v5 DISCONNECT) or paho's error code
        self.disconnect_props = None
        self._outcome = threading.Event()
        self._cond = threading.Condition()
        self._subacks = {}
        self._unsubacks = {}
        c = self.client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        self.loop_started = False

    # -- paho callbacks (its loop thread)
    def _on_connect(self, client, userdata, flags, rc, props=None):
        self.connack = (flags, int(getattr(rc, "value", rc)), props)
        if self.connack[1] == 0:
            self.connected.set()
        self._outcome.set()

    def _on_disconnect(self, client, userdata, rc, props=None):
        self.disconnect_rc = int(getattr(rc, "value", rc)) if rc is not None else None
        self.disconnect_props = props
        self.disconnected.set()
        self._outcome.set()
        with self._cond:
            self._cond.notify_all()

    def _on_message(self, client, userdata, msg):
        if self.on_message_hook is not None:
            self.on_message_hook(self, msg)
        else:
            self.messages.put(msg)

    def _on_subscribe(self, client, userdata, mid, granted, props=None):
        with self._cond:
            self._subacks[mid] = [int(getattr(g, "value", g)) for g in granted]
            self._cond.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, props=None, codes=None):
        with self._cond:
            if isinstance(codes, list):
                self._unsubacks[mid] = [int(getattr(c, "value", c)) for c in codes]
            elif codes is not None:
                self._unsubacks[mid] = [int(getattr(codes, "value", codes))]
            else:
                self._unsubacks[mid] = []
            self._cond.notify_all()

    # -- session
    def connect(self, props=None, clean_start=None, timeout=WAIT, expect_rc=0):
        """CONNECT and wait for CONNACK. Returns (session_present, rc, connack properties).
        props: a dict of paho property names (SessionExpiryInterval=…) for v5."""
        kw = {}
        if self.version == 5:
            kw["clean_start"] = self.clean_start if clean_start is None else clean_start
            if props:
                kw["properties"] = paho_props("CONNECT", **props)
        self.connected.clear()
        self.disconnected.clear()
        self._outcome.clear()
        self.connack = None
        self.client.connect(HOST, self.port, self.keepalive, **kw)
        if not self.loop_started:
            self.client.loop_start()
            self.loop_started = True
        if not self._outcome.wait(timeout):
            raise AssertionError(f"paho {self.client_id!r}: no CONNACK within {timeout}s")
        if self.connack is None:
            raise AssertionError(f"paho {self.client_id!r}: connection closed before CONNACK "
                                 f"(rc={self.disconnect_rc})")
        flags, rc, cprops = self.connack
        if expect_rc is not None and rc != expect_rc:
            raise AssertionError(f"paho {self.client_id!r}: CONNACK rc {rc}, expected "
                                 f"{expect_rc}")
        return flags.get("session present", 0), rc, cprops

    def subscribe(self, topic, qos=0, options=None, props=None, timeout=WAIT):
        """One filter (qos or paho SubscribeOptions) or a list of (filter, qos/options).
        Returns the granted QoS / reason codes as ints."""
        kw = {}
        if props:
            kw["properties"] = paho_props("SUBSCRIBE", **props)
        if isinstance(topic, list):
            rc, mid = self.client.subscribe(topic, **kw)
        elif options is not None:
            rc, mid = self.client.subscribe(topic, options=options, **kw)
        else:
            rc, mid = self.client.subscribe(topic, qos, **kw)
        if rc != 0:
            raise AssertionError(f"paho subscribe({topic!r}) failed locally: rc={rc}")
        with self._cond:
            ok = self._cond.wait_for(lambda: mid in self._subacks or self.disconnected.is_set(),
                                     timeout)
            if mid not in self._subacks:
                why = "disconnected" if ok else f"nothing within {timeout}s"
                raise AssertionError(f"no SUBACK for {topic!r} ({why}, rc={self.disconnect_rc})")
            return self._subacks.pop(mid)

    def unsubscribe(self, topic, timeout=WAIT):
        rc, mid = self.client.unsubscribe(topic)
        with self._cond:
            self._cond.wait_for(lambda: mid in self._unsubacks or self.disconnected.is_set(),
                                timeout)
            if mid not in self._unsubacks:
                raise AssertionError(f"no UNSUBACK for {topic!r} (rc={rc})")
            return self._unsubacks.pop(mid)

    def publish(self, topic, payload=b"", qos=0, retain=False, props=None, wait=True,
                timeout=WAIT):
        """props: a dict of paho property names (UserProperty=[(k, v)], ContentType=…).
        With wait, returns once PUBACK/PUBCOMP arrived (QoS 0: once written)."""
        kw = {}
        if props:
            kw["properties"] = paho_props("PUBLISH", **props)
        info = self.client.publish(topic, payload, qos, retain, **kw)
        if info.rc != 0:
            raise AssertionError(f"paho publish to {topic!r} failed locally: rc={info.rc}")
        if wait:
            self.wait_published(info, timeout)
        return info

    def wait_published(self, info, timeout=WAIT):
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as e:
            raise AssertionError(f"publish mid={info.mid} failed: {e}") from None
        if not info.is_published():
            raise AssertionError(f"publish mid={info.mid} not acknowledged within {timeout}s "
                                 f"(disconnected={self.disconnected.is_set()}, "
                                 f"rc={self.disconnect_rc})")

    def get_message(self, timeout=WAIT):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"paho {self.client_id!r}: no message within {timeout}s "
                                 f"(connected={self.is_connected()}, "
                                 f"rc={self.disconnect_rc})") from None

    def get_messages(self, count, timeout=WAIT):
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < count:
            try:
                out.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(
                    f"paho {self.client_id!r}: got {len(out)} of {count} messages within "
                    f"{timeout}s: {[m.payload[:40] for m in out][:10]}") from None
        return out

    def messages_within(self, seconds):
        """Every message arriving within `seconds` (to assert that none does)."""
        deadline = time.monotonic() + seconds
        out = []
        while True:
            try:
                out.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                return out

    def is_connected(self):
        return self.connected.is_set() and not self.disconnected.is_set()

    def wait_disconnected(self, timeout=WAIT):
        if not self.disconnected.wait(timeout):
            raise AssertionError(f"paho {self.client_id!r} still connected after {timeout}s")
        return self.disconnect_rc

    def disconnect(self, reason=None, props=None, timeout=WAIT):
        """Graceful DISCONNECT (v5: with `reason`), then wait until paho saw the close."""
        if self.is_connected():
            kw = {}
            if reason is not None:
                from paho.mqtt.reasoncodes import ReasonCodes
                from paho.mqtt.packettypes import PacketTypes
                kw["reasoncode"] = ReasonCodes(PacketTypes.DISCONNECT, identifier=reason)
            if props:
                kw["properties"] = paho_props("DISCONNECT", **props)
            self.client.disconnect(**kw)
            self.disconnected.wait(timeout)
        self._stop_loop()

    def abort(self):
        """Abrupt: the socket is shut without DISCONNECT (the broker must see a lost client)."""
        sock = self.client.socket()
        if sock is not None and not self.disconnected.is_set():
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.disconnected.wait(WAIT)
        self._stop_loop()

    def _stop_loop(self):
        if self.loop_started:
            self.client.loop_stop()
            self.loop_started = False
        sock = self.client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def close(self):
        """Cleanup: graceful when still connected, never raises."""
        try:
            self.disconnect(timeout=2)
        except Exception:
            pass
        try:
            self._stop_loop()
        except Exception:
            pass


def paho_props(packet, **values):
    """A paho Properties for `packet` ("PUBLISH", "CONNECT", "SUBSCRIBE", "WILLMESSAGE",
    "DISCONNECT") with the given attributes (UserProperty=[(k, v)], MessageExpiryInterval=…)."""
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes
    props = Properties(getattr(PacketTypes, packet))
    for name, value in values.items():
        setattr(props, name, value)
    return props


def msg_prop(msg, name, default=None):
    """A v5 property of a received paho message (None when absent)."""
    props = getattr(msg, "properties", None)
    if props is None:
        return default
    return getattr(props, name, default)


def sub_options(qos=0, no_local=False, retain_as_published=False, retain_handling=0):
    from paho.mqtt.subscribeoptions import SubscribeOptions
    return SubscribeOptions(qos=qos, noLocal=no_local, retainAsPublished=retain_as_published,
                            retainHandling=retain_handling)


class MqttTestCase(BrokerTestCase):
    """A broker with a STOMP (self.port) and an MQTT (self.mqtt_port) listener per test."""
    mqtt = True

    def unique(self, prefix="c"):
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def paho(self, client_id=None, version=5, connect=True, props=None, clean_start=None,
             **kw):
        """A paho client (connected unless connect=False), closed at cleanup."""
        c = MqttClient(self.mqtt_port, self.unique() if client_id is None else client_id,
                       version=version, **kw)
        self.addCleanup(c.close)
        if connect:
            c.connect(props=props, clean_start=clean_start)
        return c

    def raw_mqtt(self, version=5, client_id=None, **connect_kw):
        """A raw MQTT socket, CONNECTed when client_id is given; closed at cleanup."""
        r = RawMqtt(self.mqtt_port, version=version)
        self.addCleanup(r.close)
        if client_id is not None:
            r.connect(client_id, **connect_kw)
        return r

    def stomp(self, **kw):
        return self.client(**kw)

    def assert_next_payload(self, client, payload, timeout=WAIT, what=""):
        """The next message on a paho client has `payload` (nothing else was queued first)."""
        msg = client.get_message(timeout)
        self.assertEqual(msg.payload, payload if isinstance(payload, bytes) else payload.encode(),
                         f"{what}: unexpected message on {msg.topic!r}")
        return msg

    def assert_disconnect_then_close(self, raw, code, timeout=WAIT, what=""):
        """v5: the server sends DISCONNECT with `code` (after any other packets), then closes."""
        try:
            packets = raw.wait_closed(timeout)
        except MqttMalformed as e:
            self.fail(f"{what}: undecodable bytes from the server: {e}")
        discs = [p for p in packets if p.type == DISCONNECT]
        self.assertTrue(discs, f"{what}: closed without DISCONNECT; packets before close: "
                               f"{packets!r}")
        self.assertEqual(discs[-1].code, code, f"{what}: DISCONNECT reason 0x{discs[-1].code:02x}"
                                               f", expected 0x{code:02x}: {packets!r}")
        self.assertEqual(packets[-1].type, DISCONNECT, f"{what}: packets after DISCONNECT: "
                                                       f"{packets!r}")
        return discs[-1]

    def assert_closed_silently(self, raw, timeout=WAIT, what=""):
        """v3 (or before CONNECT): the server closes the connection without sending anything
        (a CONNACK counts as something)."""
        packets = raw.wait_closed(timeout)
        self.assertEqual(packets, [], f"{what}: packets before close")



class ClientProgram:
    """A client program a test drives, given as `OPTION PATH` (or `OPTION=PATH`) on the command
    line or in the environment variable `env`; without either, `name` in the build tree's tests/
    is tried and a missing one skips the test (a given one that is missing fails it)."""

    def __init__(self, option, env, name):
        self.option, self.name = option, name
        self.path = os.environ.get(env)
        self.given = self.path is not None

    def take_arg(self):
        """Takes the option out of sys.argv (before main())."""
        argv = sys.argv
        for i, arg in enumerate(argv):
            if arg == self.option and i + 1 < len(argv):
                self.path, self.given = argv[i + 1], True
                del argv[i:i + 2]
                return
            if arg.startswith(self.option + "="):
                self.path, self.given = arg.split("=", 1)[1], True
                del argv[i]
                return

    def require(self, test):
        """The program's absolute path for `test`, or fails / skips it."""
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = self.path or os.path.join(repo, "build", "tests", self.name)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            if self.given:
                test.fail(f"{self.name} not found or not executable: {path}")
            raise unittest.SkipTest(f"{self.name} not built ({path}); pass {self.option} PATH")
        return os.path.abspath(path)


def main():
    """unittest.main with --bin PATH (or --bin=PATH) taken out of argv first."""
    global BIN
    argv = list(sys.argv)
    for i, arg in enumerate(argv):
        if arg == "--bin" and i + 1 < len(argv):
            BIN = argv[i + 1]
            del argv[i:i + 2]
            break
        if arg.startswith("--bin="):
            BIN = arg.split("=", 1)[1]
            del argv[i]
            break
    BIN = os.path.abspath(BIN)
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        sys.stderr.write(f"switchboard binary not found or not executable: {BIN}\n"
                         f"(pass --bin PATH or set SB_BIN)\n")
        sys.exit(2)
    unittest.main(argv=argv, verbosity=2)
