#!/usr/bin/python3
# tests/integration/journal_crash_test.py — crash safety of the journal store: producers send
# persistent messages with a receipt each and a consumer acknowledges with receipts while the
# broker is killed with SIGKILL at random moments. After every restart, every confirmed and
# unacknowledged message is still there, and no acknowledged message ever comes back.
import os
import random
import socket
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402

HOST = "127.0.0.1"
QUEUE = "/queue/crash"
CYCLES = 10
PRODUCERS = 4


class StompWire:
    """A minimal blocking STOMP 1.2 client: enough to count receipts under a crash."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.buf = b""
        self.send(b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\0")
        cmd, _, _ = self.read()
        if cmd != "CONNECTED":
            raise ConnectionError(cmd)

    def send(self, data):
        self.sock.sendall(data)

    def read(self):
        while True:
            while self.buf.startswith(b"\n") or self.buf.startswith(b"\r\n"):
                self.buf = self.buf[1:] if self.buf.startswith(b"\n") else self.buf[2:]
            end = self.buf.find(b"\0")
            if end >= 0:
                frame, self.buf = self.buf[:end], self.buf[end + 1:]
                head, _, body = frame.partition(b"\n\n")
                lines = head.decode().split("\n")
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers.setdefault(k, v)
                return lines[0], headers, body
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def produce(port, prefix, confirmed, lock, stop):
    try:
        c = StompWire(port)
    except OSError:
        return
    n = 0
    try:
        while not stop.is_set():
            body = f"{prefix}-{n}"
            c.send(f"SEND\ndestination:{QUEUE}\npersistent:true\nreceipt:{body}\n"
                   f"content-length:{len(body)}\n\n{body}\0".encode())
            cmd, h, _ = c.read()
            if cmd != "RECEIPT" or h.get("receipt-id") != body:
                return
            with lock:
                confirmed.add(body)
            n += 1
    except (OSError, ConnectionError, ValueError):
        pass
    finally:
        c.close()


def consume(port, acked, lock, stop):
    try:
        c = StompWire(port)
        c.send(f"SUBSCRIBE\nid:0\ndestination:{QUEUE}\nack:client-individual\n\n\0".encode())
    except OSError:
        return
    try:
        while not stop.is_set():
            cmd, h, body = c.read()
            if cmd != "MESSAGE":
                continue
            text = body.decode()
            c.send(f"ACK\nid:{h['ack']}\nreceipt:{text}\n\n\0".encode())
            # The receipt comes back in order with other frames; read until it arrives.
            while True:
                cmd2, h2, body2 = c.read()
                if cmd2 == "RECEIPT" and h2.get("receipt-id") == text:
                    with lock:
                        acked.add(text)
                    break
                if cmd2 == "MESSAGE":
                    # Not acked: it stays unacknowledged and must survive.
                    pass
    except (OSError, ConnectionError, ValueError, KeyError):
        pass
    finally:
        c.close()


def drain(port, timeout=20.0, quiet=1.5):
    """Consumes and acknowledges everything left; returns the bodies in arrival order."""
    c = StompWire(port)
    c.send(f"SUBSCRIBE\nid:0\ndestination:{QUEUE}\nack:auto\n\n\0".encode())
    c.sock.settimeout(quiet)
    got = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                cmd, _, body = c.read()
            except socket.timeout:
                break
            if cmd == "MESSAGE":
                got.append(body.decode())
    finally:
        c.close()
    return got


class JournalCrashTest(unittest.TestCase):
    def test_confirmed_messages_survive_kill_9_and_acked_ones_stay_gone(self):
        confirmed, acked, lock = set(), set(), threading.Lock()
        rng = random.Random(int(os.environ.get("SB_CRASH_SEED", "0")) or None)
        with sbtest.BrokerSeries(prefix="sbcrash-") as brokers:
            brokers.extra = brokers.journal()
            brokers.extra["store"]["segment_size"] = 1048576   # several segments: reclamation runs
            for cycle in range(CYCLES):
                b = brokers.start()
                stop = threading.Event()
                threads = [threading.Thread(target=produce, args=(b.port, f"c{cycle}p{i}", confirmed, lock, stop))
                           for i in range(PRODUCERS)]
                threads.append(threading.Thread(target=consume, args=(b.port, acked, lock, stop)))
                for t in threads:
                    t.start()
                time.sleep(rng.uniform(0.2, 0.8))   # a random moment for the crash: the point
                b.kill()                              # SIGKILL, no shutdown of any kind
                stop.set()
                for t in threads:
                    t.join(10)
                    self.assertFalse(t.is_alive(), "a client thread did not end after the kill")

            b = brokers.start()
            left = drain(b.port)
            b.stop()

        self.assertGreater(len(confirmed), 100, "too few confirmed sends to show anything")
        self.assertGreater(len(acked), 10, "too few acknowledged messages to show anything")
        got = set(left)
        self.assertEqual(len(got), len(left), "a message was recovered twice")
        missing = (confirmed - acked) - got
        self.assertFalse(missing, f"{len(missing)} confirmed messages lost, e.g. {sorted(missing)[:5]}")
        back = acked & got
        self.assertFalse(back, f"{len(back)} acknowledged messages came back, e.g. {sorted(back)[:5]}")
        print(f"confirmed={len(confirmed)} acked={len(acked)} recovered_at_end={len(left)}", file=sys.stderr)


if __name__ == "__main__":
    sbtest.main()
