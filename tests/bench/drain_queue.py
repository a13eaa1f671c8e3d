#!/usr/bin/python3
# tests/bench/drain_queue.py — drains one STOMP queue filled by switchboard-bench and checks what
# came out against what the bench said was confirmed: used by `compare.sh --persistent` after a
# broker restart, to check that every confirmed persistent message survived it, once.
#
#   drain_queue.py --port P --queue NAME [--host H] [--expect N] [--idle S] [--timeout S] [--label T]
#
# Subscribes (ack:auto) and reads until nothing arrives for --idle seconds. Every bench payload
# carries its sequence in bytes 8..15 (little endian: producer index in the top 24 bits, message
# number in the low 40), so the check is exact: per producer, the numbers must be 0..n-1 with
# no gap and no duplicate (a producer's messages are confirmed in order). Prints one JSON object;
# exit status 0 when it matches --expect (or no --expect), 1 when not, 3 on a connection or
# protocol error. Raw sockets rather than stomp.py: a few hundred thousand messages must drain
# in seconds.
import argparse
import json
import socket
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description="drain a bench queue and check it")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--queue", required=True, help="name without /queue/")
    p.add_argument("--expect", type=int, help="messages that must come out")
    p.add_argument("--idle", type=float, default=1.5)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--label", default="", help="copied into the JSON")
    return p.parse_args()


class Stomp:
    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = bytearray()

    def send(self, command, headers, body=b""):
        lines = [command] + [f"{k}:{v}" for k, v in headers.items()]
        self.sock.sendall(("\n".join(lines) + "\n\n").encode() + body + b"\0")

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        self.buf += chunk

    def frame(self):
        """Returns (command, headers, body); raises socket.timeout when nothing arrives."""
        while True:
            # Heart-beats and the EOLs allowed between frames.
            while self.buf[:1] in (b"\n", b"\r"):
                del self.buf[:1]
            end = self.buf.find(b"\n\n")
            if end >= 0:
                break
            self._fill()
        head = self.buf[:end].decode("utf-8", "replace").replace("\r", "").split("\n")
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers.setdefault(k, v)   # the first of repeated headers wins (STOMP 1.2)
        start = end + 2
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buf) < start + n + 1:
                self._fill()
            body = bytes(self.buf[start:start + n])
            del self.buf[:start + n + 1]
        else:
            while (nul := self.buf.find(b"\0", start)) < 0:
                self._fill()
            body = bytes(self.buf[start:nul])
            del self.buf[:nul + 1]
        return head[0], headers, body


def main():
    a = parse_args()
    result = {"label": a.label, "queue": a.queue, "received": 0, "expected": a.expect, "producers": 0,
              "duplicates": 0, "gaps": 0, "short_payloads": 0, "ok": False, "error": None}
    seen = {}   # producer -> set of message numbers
    try:
        c = Stomp(a.host, a.port, a.timeout)
        c.send("CONNECT", {"accept-version": "1.2", "host": "/", "login": "guest", "passcode": "guest"})
        cmd, h, body = c.frame()
        if cmd != "CONNECTED":
            raise RuntimeError(f"{cmd}: {h.get('message', '')} {body[:200]!r}")
        c.send("SUBSCRIBE", {"id": "0", "destination": f"/queue/{a.queue}", "ack": "auto"})
        deadline = time.monotonic() + a.timeout
        c.sock.settimeout(a.idle)
        while time.monotonic() < deadline:
            try:
                cmd, h, body = c.frame()
            except socket.timeout:
                break
            if cmd == "ERROR":
                raise RuntimeError(f"ERROR: {h.get('message', '')} {body[:200]!r}")
            if cmd != "MESSAGE":
                continue
            result["received"] += 1
            if len(body) < 16:
                result["short_payloads"] += 1
                continue
            seq = int.from_bytes(body[8:16], "little")
            nums = seen.setdefault(seq >> 40, set())
            number = seq & ((1 << 40) - 1)
            if number in nums:
                result["duplicates"] += 1
            nums.add(number)
        else:
            result["error"] = f"still receiving after --timeout {a.timeout} s"
        try:
            c.send("DISCONNECT", {})
            c.sock.close()
        except OSError:
            pass
    except (OSError, ConnectionError, RuntimeError, ValueError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(result))
        return 3
    result["producers"] = len(seen)
    # Numbers missing below each producer's highest one.
    result["gaps"] = sum(max(nums) + 1 - len(nums) for nums in seen.values() if nums)
    result["ok"] = (result["error"] is None and result["duplicates"] == 0 and result["gaps"] == 0
                    and result["short_payloads"] == 0
                    and (a.expect is None or result["received"] == a.expect))
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
