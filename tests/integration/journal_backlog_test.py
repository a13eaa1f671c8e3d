#!/usr/bin/python3
# tests/integration/journal_backlog_test.py — a persistent backlog far larger than the queue's
# memory limit: 100,000 persistent 1 KiB messages into one queue with queue_memory_limit 4 MiB
# and the journal store. Producers are not held (every SEND is confirmed), the broker's peak
# resident memory stays well under the data size while it fills, recovers (after kill -9) and
# drains, and the drain yields every message exactly once, in order.
# (The full 1,000,000-message measurement is tests/bench/backlog.sh.)
import os
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402

HOST = "127.0.0.1"
QUEUE = "/queue/backlog"
COUNT = 100_000
SIZE = 1024
RECEIPT_EVERY = 1000
# The data is ~100 MiB of bodies; with a 4 MiB queue limit the broker needs a few MiB for them,
# a few MiB of index (ids, journal locations) and its own baseline: about 20-30 MiB measured.
# Without paging the same backlog takes over 130 MiB (or holds the producer at 4 MiB).
RSS_LIMIT_KIB = 48 * 1024
FILL_TIMEOUT = 40.0
DRAIN_TIMEOUT = 40.0


def proc_status_kib(pid, field):
    """VmRSS / VmHWM of a process in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class Wire:
    """A minimal blocking STOMP 1.2 client over a raw socket: fast enough for 100k frames."""

    def __init__(self, port, timeout):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = bytearray()
        self.sock.sendall(b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\0")
        cmd, _, _ = self.read()
        if cmd != "CONNECTED":
            raise AssertionError(f"expected CONNECTED, got {cmd}")

    def read(self):
        """One frame: (command, headers, body). Bodies are found by content-length."""
        while True:
            while self.buf[:1] in (b"\n", b"\r"):
                del self.buf[:1]
            head_end = self.buf.find(b"\n\n")
            if head_end >= 0:
                lines = self.buf[:head_end].decode().split("\n")
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers.setdefault(k, v)
                start = head_end + 2
                if "content-length" in headers:
                    end = start + int(headers["content-length"])
                    if len(self.buf) > end:
                        body = bytes(self.buf[start:end])
                        del self.buf[:end + 1]
                        return lines[0], headers, body
                else:
                    end = self.buf.find(b"\0", start)
                    if end >= 0:
                        body = bytes(self.buf[start:end])
                        del self.buf[:end + 1]
                        return lines[0], headers, body
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("broker closed the connection")
            self.buf += chunk

    def close(self):
        try:
            self.sock.sendall(b"DISCONNECT\n\n\0")
        except OSError:
            pass
        self.sock.close()


def body_of(i):
    return i.to_bytes(8, "little") + bytes([i % 251]) * (SIZE - 8)


class BacklogTest(unittest.TestCase):
    def setUp(self):
        self.series = sbtest.BrokerSeries(prefix="sbbacklog-")
        self.series.extra = sbtest.deep_merge(self.series.journal(),
                                              {"broker": {"queue_memory_limit": "4MiB"}})

    def tearDown(self):
        self.series.__exit__(None, None, None)

    def fill(self, port):
        """Sends COUNT persistent messages, a receipt every RECEIPT_EVERY: all are confirmed."""
        w = Wire(port, FILL_TIMEOUT)
        receipts = 0
        head = f"SEND\ndestination:{QUEUE}\npersistent:true\ncontent-length:{SIZE}\n".encode()
        chunk = []
        for i in range(COUNT):
            receipt = b"receipt:r%d\n" % i if (i + 1) % RECEIPT_EVERY == 0 else b""
            chunk.append(head + receipt + b"\n" + body_of(i) + b"\0")
            if receipt:
                w.sock.sendall(b"".join(chunk))
                chunk = []
                receipts += 1
        if chunk:
            w.sock.sendall(b"".join(chunk))
        got = 0
        deadline = time.monotonic() + FILL_TIMEOUT
        while got < receipts:
            self.assertLess(time.monotonic(), deadline, f"only {got}/{receipts} receipts")
            cmd, headers, body = w.read()
            self.assertEqual(cmd, "RECEIPT", f"{cmd} {headers} {body[:200]!r}")
            got += 1
        w.close()

    def drain(self, port, expect):
        """Reads `expect` messages (ack:auto) and checks they are 0..expect-1 in order, then that
        nothing else was queued."""
        w = Wire(port, DRAIN_TIMEOUT)
        w.sock.sendall(b"SUBSCRIBE\nid:1\ndestination:" + QUEUE.encode() +
                       b"\nack:auto\nactivemq.prefetchSize:1000\n\n\0")
        deadline = time.monotonic() + DRAIN_TIMEOUT
        for i in range(expect):
            self.assertLess(time.monotonic(), deadline, f"only {i}/{expect} drained")
            cmd, headers, body = w.read()
            self.assertEqual(cmd, "MESSAGE", f"{cmd} {headers}")
            self.assertEqual(len(body), SIZE)
            seq = int.from_bytes(body[:8], "little")
            self.assertEqual(seq, i, "out of order or duplicated")
            self.assertEqual(body, body_of(i))
        # Nothing beyond: a receipt for a frame sent after the last message comes next.
        w.sock.sendall(b"SEND\ndestination:/queue/other\nreceipt:end\n\nx\0")
        cmd, headers, _ = w.read()
        self.assertEqual((cmd, headers.get("receipt-id")), ("RECEIPT", "end"))
        w.close()

    def test_backlog_pages_to_disk_survives_kill_and_drains_in_order(self):
        b = self.series.start()
        started = time.monotonic()
        self.fill(b.port)
        fill_s = time.monotonic() - started
        peak_fill = proc_status_kib(b.proc.pid, "VmHWM")
        self.assertLess(peak_fill, RSS_LIMIT_KIB, "peak RSS while filling")
        b.kill()                                        # a crash with the whole backlog queued

        started = time.monotonic()
        b = self.series.start()
        recover_s = time.monotonic() - started
        peak_recover = proc_status_kib(b.proc.pid, "VmHWM")
        self.assertLess(peak_recover, RSS_LIMIT_KIB, "peak RSS while recovering")

        started = time.monotonic()
        self.drain(b.port, COUNT)
        drain_s = time.monotonic() - started
        peak_drain = proc_status_kib(b.proc.pid, "VmHWM")
        self.assertLess(peak_drain, RSS_LIMIT_KIB, "peak RSS while draining")
        b.stop()

        # The acknowledgements are durable: nothing comes back after a restart.
        b = self.series.start()
        self.drain(b.port, 0)
        b.stop()
        print(f"\nbacklog {COUNT} x {SIZE} B: fill {fill_s:.1f} s (peak RSS {peak_fill // 1024} MiB), "
              f"restart {recover_s:.2f} s (peak {peak_recover // 1024} MiB), "
              f"drain {drain_s:.1f} s (peak {peak_drain // 1024} MiB)", file=sys.stderr)


if __name__ == "__main__":
    sbtest.main()
