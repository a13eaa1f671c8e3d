# tests/integration/sbtest.py — harness: runs the real switchboard binary on a free loopback port
# and gives tests third-party STOMP clients (stomp.py) and a raw-socket STOMP client.
#
# Every test file is a unittest program run as `python3 X.py --bin /path/to/switchboard`
# (or with SB_BIN in the environment). Only the standard library and stomp.py are used.
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
    def __init__(self, extra=None, workdir=None):
        self.owns_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="sbtest-")
        self.port = free_port()
        self.config = deep_merge(base_config(self.port), extra or {})
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
        while True:
            code = self.proc.poll()
            if code is not None:
                raise AssertionError(f"broker exited with code {code} during startup\n"
                                     f"{self.describe()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"broker did not accept on {HOST}:{self.port} within "
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


class RawStomp:
    """A blocking STOMP client over one socket. read_frame() skips and counts heart-beat EOLs."""

    def __init__(self, port, timeout=WAIT):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = bytearray()
        self.eof = False
        self.heartbeats = 0
        self.version = None

    # -- sending
    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, command, headers=(), body=b"", escape=True):
        self.send(encode_frame(command, headers, body, escape))

    # -- receiving
    def _fill(self, deadline):
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

class BrokerTestCase(unittest.TestCase):
    broker_config = {}      # extra config sections for every test of the class

    def setUp(self):
        method = getattr(self, self._testMethodName)
        extra = deep_merge(self.broker_config, getattr(method, "sb_config", {}))
        self.broker = Broker(extra)
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
