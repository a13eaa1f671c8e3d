#!/usr/bin/env python3
# tests/integration/slow_consumer_test.py — a subscriber that never reads its socket while a
# publisher floods its topic (MQTT, QoS 0 and 1) or queue (STOMP): the broker's memory stays
# bounded, the publisher and a normal subscriber keep going, and after
# broker.slow_consumer_timeout the stalled connection is closed and counted in /metrics.
#
# Raw sockets throughout (exact bytes out; the readers below only count what they get), so the
# flood is fast enough to matter and nothing but the broker buffers the stalled subscriber's
# share.

import re
import socket
import threading
import time
import urllib.request

import sbtest
from sbtest import (HOST, WAIT, MqttTestCase, PUBACK, RawMqtt, RawStomp,
                    SUBACK, encode_frame, free_port, publish_packet, subscribe_packet)

RSS_GROWTH_LIMIT = 64 << 20     # bytes the broker may grow by however long the flood lasts
STALL_TIMEOUT = "3s"            # broker.slow_consumer_timeout in this test's config
FLOOD_SECONDS = 4.0             # each flood lasts this long (the stalled one is closed in it)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc status")


class RssSampler(threading.Thread):
    """Samples the broker's RSS every 50 ms until stopped; .peak is the highest seen."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.base = rss_bytes(pid)
        self.peak = self.base
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.05):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except OSError:
                return

    def stop(self):
        self.done.set()
        self.join(WAIT)
        self.peak = max(self.peak, rss_bytes(self.pid))
        return self.peak - self.base


class Reader(threading.Thread):
    """Reads a socket to its end on its own thread; each subclass's parse() takes whole
    packets or frames off `buf` and returns what they say, record() keeps it (under `cond`)."""

    def __init__(self, sock, buf=b""):
        super().__init__(daemon=True)
        self.sock = sock
        self.buf = bytearray(buf)
        self.cond = threading.Condition()
        self.closed = False

    def run(self):
        self.sock.settimeout(None)
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                break
            self.buf += chunk
            got = self.parse()
            with self.cond:
                self.record(got)
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class MqttCounter(Reader):
    """Counts PUBLISH packets; records the payloads' sequence numbers (the first 8 bytes) in
    `seen`. QoS 0 subscription only: nothing is acknowledged."""

    def __init__(self, sock, buf=b""):
        super().__init__(sock, buf)
        self.count = 0
        self.seen = set()

    def parse(self):
        pos = 0
        n = len(self.buf)
        got = []
        while n - pos >= 2:
            length, shift, i = 0, 0, pos + 1
            while i < n and i <= pos + 4:
                b = self.buf[i]
                length |= (b & 0x7F) << shift
                shift += 7
                i += 1
                if not b & 0x80:
                    break
            else:
                break
            if n < i + length:
                break
            if self.buf[pos] >> 4 == 3:   # PUBLISH (QoS 0: topic, then the payload)
                tlen = int.from_bytes(self.buf[i:i + 2], "big")
                got.append(bytes(self.buf[i + 2 + tlen:i + 2 + tlen + 8]))
            pos = i + length
        del self.buf[:pos]
        return got

    def record(self, got):
        self.count += len(got)
        self.seen.update(got)

    def wait_for(self, payload_prefix, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: payload_prefix in self.seen or self.closed, timeout) \
                and payload_prefix in self.seen


class StompCounter(Reader):
    """Records the bodies' sequence numbers (the first 8 bytes) of the MESSAGE frames (the
    broker sends content-length)."""

    def __init__(self, sock, buf=b""):
        super().__init__(sock, buf)
        self.seen = []

    def record(self, got):
        self.seen.extend(got)

    def parse(self):
        got = []
        pos = 0
        while True:
            while self.buf[pos:pos + 1] == b"\n":
                pos += 1
            head_end = self.buf.find(b"\n\n", pos)
            if head_end < 0:
                break
            head = bytes(self.buf[pos:head_end]).decode()
            m = re.search(r"^content-length:(\d+)$", head, re.M)
            if not m:
                raise AssertionError(f"frame without content-length: {head!r}")
            length = int(m.group(1))
            end = head_end + 2 + length
            if len(self.buf) < end + 1:
                break
            if head.startswith("MESSAGE\n"):
                got.append(bytes(self.buf[head_end + 2:head_end + 10]))
            pos = end + 1
        del self.buf[:pos]
        return got

    def count(self):
        with self.cond:
            return len(self.seen)


class SlowConsumerTest(MqttTestCase):

    def setUp(self):
        self.admin_port = free_port()
        self.broker_config = {
            "workers": 2,
            "admin": {"address": HOST, "port": self.admin_port},
            "broker": {"slow_consumer_timeout": STALL_TIMEOUT, "topic_max_pending": 500,
                       # The normal consumer may lag too: its queue stays small, so what is
                       # measured is what the broker keeps for the stalled one.
                       "queue_memory_limit": "16 MiB"},
        }
        super().setUp()

    def metric(self, name):
        url = f"http://{HOST}:{self.admin_port}/metrics"
        with urllib.request.urlopen(url, timeout=WAIT) as r:
            text = r.read().decode()
        m = re.search(rf"^{name} (\d+)$", text, re.M)
        return int(m.group(1)) if m else None

    def wait_metric(self, name, value, timeout):
        deadline = time.monotonic() + timeout
        while True:
            got = self.metric(name)
            if got == value or time.monotonic() > deadline:
                return got
            time.sleep(0.1)   # polling an HTTP endpoint: there is no event to await

    def read_to_eof(self, sock, timeout, limit=256 << 20):
        """Reads a stalled socket until the broker's close shows (EOF or reset); returns the
        bytes read. Fails if the connection stays open."""
        sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        data = bytearray()
        while len(data) < limit:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(1 << 20)
            except socket.timeout:
                self.fail(f"the stalled connection is still open {timeout}s after its "
                          f"slow_consumer_timeout ({len(data)} bytes read)")
            except ConnectionResetError:
                return bytes(data)
            if not chunk:
                return bytes(data)
            data += chunk
        self.fail("the stalled connection sent more than its bound")

    def assert_stalled_closed_and_counted(self, stalled_sock):
        self.assertEqual(self.wait_metric("switchboard_slow_consumers_disconnected_total", 1, 15), 1,
                         "the stalled subscriber was not disconnected as a slow consumer")
        data = self.read_to_eof(stalled_sock, WAIT)
        with open(self.broker.log_path, "rb") as f:
            log = f.read().decode(errors="replace")
        self.assertEqual(log.count("reason=slow_consumer"), 1, "one log line for the disconnect")
        return data

    # -- MQTT: a topic, QoS 0 and QoS 1

    def test_mqtt_subscriber_that_never_reads(self):
        topic = "slow/flood"
        # The stalled subscriber: QoS 1, so QoS 1 publishes reach it as QoS 1 (unacknowledged).
        stalled = RawMqtt(self.mqtt_port, version=4)
        self.addCleanup(stalled.close)
        stalled.connect("stalled")
        stalled.send(subscribe_packet(1, [(topic, 1)], version=4))
        self.assertEqual(stalled.expect(SUBACK).codes, [1])
        # It never reads again.

        normal = RawMqtt(self.mqtt_port, version=4)
        self.addCleanup(normal.close)
        normal.connect("normal")
        normal.send(subscribe_packet(1, [(topic, 0)], version=4))
        self.assertEqual(normal.expect(SUBACK).codes, [0])
        counter = MqttCounter(normal.sock, normal.buf)
        counter.start()

        publisher = RawMqtt(self.mqtt_port, version=4)
        self.addCleanup(publisher.close)
        publisher.connect("flooder")

        sampler = RssSampler(self.broker.proc.pid)
        sampler.start()
        payload = b"x" * (16 * 1024)
        window = 200       # publishes per round: half QoS 0, half QoS 1 (PUBACKed)
        seq = 0
        started = time.monotonic()
        rounds = 0
        while time.monotonic() - started < FLOOD_SECONDS and seq < 1000000:
            batch = []
            for i in range(window):
                qos = i % 2
                batch.append(publish_packet(topic, b"%08d" % seq + payload, qos=qos,
                                            pid=i // 2 + 1 if qos else None, version=4))
                seq += 1
            publisher.send(b"".join(batch))
            for _ in range(window // 2):
                # Not held by the stalled subscriber: each round is acknowledged promptly.
                publisher.expect(PUBACK, timeout=WAIT)
            rounds += 1
        publisher.send(publish_packet(topic, b"%08d" % seq + b"last", qos=0, version=4))
        self.assertTrue(counter.wait_for(b"%08d" % seq, WAIT),
                        f"the normal subscriber did not get the message after the flood "
                        f"({counter.count} of {seq} received)")
        self.assertGreater(counter.count, 0)
        growth = sampler.stop()
        self.assertLess(growth, RSS_GROWTH_LIMIT,
                        f"broker RSS grew by {growth >> 20} MiB during a flood of {seq} messages "
                        f"of 16 KiB ({rounds} rounds)")
        self.assert_stalled_closed_and_counted(stalled.sock)
        # What the paused subscriber could not keep was dropped and counted on the topic.
        dropped = self.metric(re.escape('switchboard_destination_dropped_total{destination="topic://slow.flood"}'))
        self.assertGreater(dropped or 0, 0, "no dropped messages counted on the topic")

    # -- STOMP: a queue

    def test_stomp_queue_consumer_that_never_reads(self):
        queue = "/queue/slow.flood"
        stalled = RawStomp(self.port)
        self.addCleanup(stalled.close)
        stalled.connect("1.2")
        stalled.send_frame("SUBSCRIBE", {"destination": queue, "id": "s", "ack": "auto",
                                         "receipt": "sub"})
        self.assertEqual(stalled.expect("RECEIPT").headers.get("receipt-id"), "sub")
        # It never reads again.

        normal = RawStomp(self.port)
        self.addCleanup(normal.close)
        normal.connect("1.2")
        normal.send_frame("SUBSCRIBE", {"destination": queue, "id": "n", "ack": "auto",
                                        "receipt": "sub"})
        self.assertEqual(normal.expect("RECEIPT").headers.get("receipt-id"), "sub")
        counter = StompCounter(normal.sock, normal.buf)
        counter.start()

        publisher = RawStomp(self.port)
        self.addCleanup(publisher.close)
        publisher.connect("1.2")

        sampler = RssSampler(self.broker.proc.pid)
        sampler.start()
        body = b"y" * (64 * 1024)
        window = 50
        seq = 0
        started = time.monotonic()
        while time.monotonic() - started < FLOOD_SECONDS and seq < 200000:
            frames = []
            for i in range(window):
                headers = {"destination": queue}
                if i == window - 1:
                    headers["receipt"] = f"w{seq}"
                frames.append(encode_frame("SEND", headers, b"%08d" % seq + body))
                seq += 1
            publisher.send(b"".join(frames))
            receipt = publisher.expect("RECEIPT", timeout=WAIT)
            self.assertEqual(receipt.headers.get("receipt-id"), f"w{seq - 1}")
        sent = seq
        growth = sampler.stop()
        self.assertLess(growth, RSS_GROWTH_LIMIT,
                        f"broker RSS grew by {growth >> 20} MiB during a flood of {sent} "
                        f"messages of 64 KiB")

        data = self.assert_stalled_closed_and_counted(stalled.sock)
        # What reached the stalled socket before the close (whole frames).
        stalled_got = set(StompCounter(None, stalled.buf + data).parse())

        # The normal consumer gets every message the stalled one did not: all but those in
        # the stalled connection's unfinished output when it was closed (auto-ack: sent),
        # at most its high watermark (4 MiB) and one message.
        lost_bound = (4 << 20) // len(body) + 2
        deadline = time.monotonic() + WAIT * 2
        while counter.count() + len(stalled_got) < sent - lost_bound and time.monotonic() < deadline:
            with counter.cond:
                counter.cond.wait(0.2)
        normal_got = set(counter.seen)
        self.assertEqual(len(normal_got), counter.count(), "a message was delivered twice")
        self.assertFalse(normal_got & stalled_got, "a message reached both consumers")
        self.assertGreaterEqual(len(normal_got) + len(stalled_got), sent - lost_bound,
                                f"normal consumer got {len(normal_got)}, stalled "
                                f"{len(stalled_got)} of {sent}")


if __name__ == "__main__":
    sbtest.main()
