#!/usr/bin/python3
# tests/integration/journal_crash_test.py — crash safety of the journal store: producers send
# persistent messages with a receipt each and a consumer acknowledges with receipts while the
# broker is killed with SIGKILL at random moments. After every restart, every confirmed and
# unacknowledged message is still there, and no acknowledged message ever comes back.
# Transactions (raw STOMP frames): transacted producers commit groups of sends, some abort;
# a transacted mover takes each message off one queue and sends it on to another in the same
# transaction; every fifth move is aborted instead (its ACK rolled back: the message stays and
# comes again, its SEND dropped). After kill -9 and restart, every committed send is there, no
# committed ACK is undone, nothing of an aborted transaction is there (neither its sends nor
# the loss of what it acknowledged), and every transaction is there whole or not at all (a
# message is moved exactly once or not at all, never both left and moved).
import collections
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


def consume(port, acked, acking, lock, stop):
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
            # Until its RECEIPT arrives, a crash may keep the ACK or undo it: either is right.
            with lock:
                acking.add(text)
            c.send(f"ACK\nid:{h['ack']}\nreceipt:{text}\n\n\0".encode())
            # The receipt comes back in order with other frames; read until it arrives.
            while True:
                cmd2, h2, body2 = c.read()
                if cmd2 == "RECEIPT" and h2.get("receipt-id") == text:
                    with lock:
                        acking.discard(text)
                        acked.add(text)
                    break
                if cmd2 == "MESSAGE":
                    # Not acked: it stays unacknowledged and must survive.
                    pass
    except (OSError, ConnectionError, ValueError, KeyError):
        pass
    finally:
        c.close()


def drain(port, timeout=20.0, quiet=1.5, queue=QUEUE, want=()):
    """Consumes and acknowledges everything left; returns the bodies in arrival order. Ends after
    `quiet` seconds of silence once every body in `want` arrived (a slow page-in of the backlog
    is not taken for its end), else at `timeout`."""
    want = set(want)
    c = StompWire(port)
    c.send(f"SUBSCRIBE\nid:0\ndestination:{queue}\nack:auto\n\n\0".encode())
    c.sock.settimeout(quiet)
    got = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                cmd, _, body = c.read()
            except socket.timeout:
                if want <= set(got):
                    break
                continue
            if cmd == "MESSAGE":
                got.append(body.decode())
    finally:
        c.close()
    return got


TX_IN = "/queue/crash.tx.in"
TX_OUT = "/queue/crash.tx.out"
TX_SIZE = 3


def frame(command, headers, body=""):
    head = "".join(f"{k}:{v}\n" for k, v in headers.items())
    if body:
        head += f"content-length:{len(body.encode())}\n"
    return f"{command}\n{head}\n{body}\0".encode()


def read_receipt(c, rid, backlog=None):
    """Reads until RECEIPT `rid`; MESSAGEs met on the way go to `backlog`. False on ERROR."""
    while True:
        cmd, h, body = c.read()
        if cmd == "RECEIPT" and h.get("receipt-id") == rid:
            return True
        if cmd == "ERROR":
            return False
        if cmd == "MESSAGE" and backlog is not None:
            backlog.append((h, body))


def tx_produce(port, prefix, state, stop):
    """Transactions of TX_SIZE persistent sends to TX_IN; every fourth one is aborted."""
    try:
        c = StompWire(port)
    except OSError:
        return
    n = 0
    try:
        while not stop.is_set():
            tx = f"{prefix}-t{n}"
            bodies = tuple(f"{prefix}-{n}-{j}" for j in range(TX_SIZE))
            abort = n % 4 == 3
            data = frame("BEGIN", {"transaction": tx})
            for b in bodies:
                data += frame("SEND", {"destination": TX_IN, "persistent": "true", "transaction": tx}, b)
            with state.lock:
                (state.aborted if abort else state.uncertain).add(bodies)
            c.send(data + frame("ABORT" if abort else "COMMIT", {"transaction": tx, "receipt": tx}))
            if not read_receipt(c, tx):
                return
            if not abort:
                with state.lock:
                    state.uncertain.discard(bodies)
                    state.committed.update(bodies)
            n += 1
    except (OSError, ConnectionError, ValueError):
        pass
    finally:
        c.close()


def tx_move(port, state, stop):
    """Takes each message off TX_IN and sends it on to TX_OUT (as moved:<body>) in one
    transaction: its ACK and the SEND commit together. Every fifth attempt sends
    aborted:<body> and ACKs, then ABORTs: the message comes back (redelivered) to be moved by
    a later attempt."""
    try:
        c = StompWire(port)
        c.send(frame("SUBSCRIBE", {"id": "1", "destination": TX_IN, "ack": "client-individual"}))
    except OSError:
        return
    backlog = collections.deque()
    n = 0
    try:
        while not stop.is_set():
            if backlog:
                h, body = backlog.popleft()
            else:
                cmd, h, body = c.read()
                if cmd != "MESSAGE":
                    continue
            x = body.decode()
            tx = f"move-{x}-{n}"
            abort = n % 5 == 4
            n += 1
            if not abort:
                with state.lock:
                    state.moving.add(x)
            c.send(frame("BEGIN", {"transaction": tx})
                   + frame("SEND", {"destination": TX_OUT, "persistent": "true", "transaction": tx},
                           ("aborted:" if abort else "moved:") + x)
                   + frame("ACK", {"id": h["ack"], "transaction": tx})
                   + frame("ABORT" if abort else "COMMIT", {"transaction": tx, "receipt": tx}))
            if not read_receipt(c, tx, backlog):
                return
            with state.lock:
                if abort:
                    state.aborted_moves.add(x)
                else:
                    state.moving.discard(x)
                    state.moved.add(x)
    except (OSError, ConnectionError, ValueError, KeyError):
        pass
    finally:
        c.close()


class TxState:
    def __init__(self):
        self.lock = threading.Lock()
        self.committed = set()    # bodies of transactions whose COMMIT got its RECEIPT
        self.uncertain = set()    # tuples: COMMIT sent, no RECEIPT (the crash came first)
        self.aborted = set()      # tuples: ABORTed, never to be seen
        self.moved = set()        # bodies whose move transaction got its RECEIPT
        self.moving = set()       # bodies whose move COMMIT got no RECEIPT
        self.aborted_moves = set()   # bodies whose move was ABORTed (RECEIPT): ACK and SEND undone


class JournalCrashTest(unittest.TestCase):
    def test_a_committed_ack_is_durable_when_its_receipt_arrives(self):
        # sync: batch(1000) leaves up to a second between a record and its fsync: a RECEIPT
        # sent before the fsync would be followed by the kill before the record is on disk.
        with sbtest.BrokerSeries(prefix="sbcrash-") as brokers:
            brokers.extra = brokers.journal(sync="batch(1000)")
            b = brokers.start()
            c = StompWire(b.port)
            for body in ("keep", "gone"):
                c.send(frame("SEND", {"destination": TX_IN, "persistent": "true", "receipt": body}, body))
                self.assertTrue(read_receipt(c, body))
            c.send(frame("BEGIN", {"transaction": "t2"})
                   + b"".join(frame("SEND", {"destination": TX_IN, "persistent": "true", "transaction": "t2"}, x)
                              for x in ("s1", "s2", "s3"))
                   + frame("COMMIT", {"transaction": "t2", "receipt": "c2"}))
            self.assertTrue(read_receipt(c, "c2"))
            c.send(frame("BEGIN", {"transaction": "t3"})
                   + frame("SEND", {"destination": TX_IN, "persistent": "true", "transaction": "t3"}, "open")
                   + frame("SEND", {"destination": TX_IN, "persistent": "true", "receipt": "r-plain"}, "plain"))
            self.assertTrue(read_receipt(c, "r-plain"))
            # The journal is idle now: nothing else would carry the ACK's record to disk.
            c.send(frame("SUBSCRIBE", {"id": "1", "destination": TX_IN, "ack": "client-individual"}))
            acks = {}
            while len(acks) < 6:
                cmd, h, body = c.read()
                if cmd == "MESSAGE":
                    acks[body.decode()] = h["ack"]
            c.send(frame("BEGIN", {"transaction": "t1"})
                   + frame("ACK", {"id": acks["gone"], "transaction": "t1"})
                   + frame("COMMIT", {"transaction": "t1", "receipt": "c1"}))
            self.assertTrue(read_receipt(c, "c1"))
            b.kill()
            c.close()
            b = brokers.start()
            left = drain(b.port, queue=TX_IN)
            b.stop()
        self.assertEqual(len(left), len(set(left)), f"a message was recovered twice: {left}")
        self.assertNotIn("gone", left, "a message whose ACK was committed (RECEIPT) came back after kill -9")
        self.assertNotIn("open", left, "a SEND of a transaction never committed was kept")
        self.assertEqual(sorted(left), ["keep", "plain", "s1", "s2", "s3"])

    def test_transactions_survive_kill_9_whole_or_not_at_all(self):
        state = TxState()
        rng = random.Random(int(os.environ.get("SB_CRASH_SEED", "0")) or None)
        with sbtest.BrokerSeries(prefix="sbcrash-") as brokers:
            brokers.extra = brokers.journal()
            brokers.extra["store"]["segment_size"] = 1048576   # several segments: reclamation runs
            for cycle in range(CYCLES):
                b = brokers.start()
                stop = threading.Event()
                threads = [threading.Thread(target=tx_produce, args=(b.port, f"c{cycle}p{i}", state, stop))
                           for i in range(PRODUCERS)]
                threads.append(threading.Thread(target=tx_move, args=(b.port, state, stop)))
                for t in threads:
                    t.start()
                time.sleep(rng.uniform(0.2, 0.8))   # a random moment for the crash: the point
                b.kill()
                stop.set()
                for t in threads:
                    t.join(10)
                    self.assertFalse(t.is_alive(), "a client thread did not end after the kill")
            b = brokers.start()
            left_in = drain(b.port, queue=TX_IN, want=state.committed - state.moved - state.moving)
            left_out = drain(b.port, queue=TX_OUT, want={"moved:" + x for x in state.moved})
            b.stop()

        self.assertGreater(len(state.committed), 60, "too few committed sends to show anything")
        self.assertGreater(len(state.moved), 20, "too few committed moves to show anything")
        self.assertGreater(len(state.aborted_moves), 3, "too few aborted moves to show anything")
        self.assertEqual(len(left_in), len(set(left_in)), "a message was recovered twice")
        self.assertEqual(len(left_out), len(set(left_out)), "a message was moved twice")
        kept = [b for b in left_out if b.startswith("aborted:")]
        self.assertFalse(kept, f"{len(kept)} sends of aborted moves kept, e.g. {kept[:5]}")
        self.assertTrue(all(b.startswith("moved:") for b in left_out))
        still = set(left_in)
        moved = {b[len("moved:"):] for b in left_out}
        both = still & moved
        self.assertFalse(both, f"{len(both)} messages both moved and left (a move kept half), "
                               f"e.g. {sorted(both)[:5]}")
        present = still | moved
        lost = state.committed - present
        self.assertFalse(lost, f"{len(lost)} committed sends lost, e.g. {sorted(lost)[:5]}")
        # An aborted move's ACK was rolled back: its message is still there (or moved later).
        gone = state.aborted_moves - present
        self.assertFalse(gone, f"{len(gone)} messages lost by an aborted move, e.g. {sorted(gone)[:5]}")
        undone = state.moved - moved
        self.assertFalse(undone, f"{len(undone)} committed moves undone, e.g. {sorted(undone)[:5]}")
        for group in state.aborted:
            self.assertFalse(present & set(group), f"an aborted transaction's send was kept: {group}")
        for group in state.uncertain:
            n = len(present & set(group))
            self.assertIn(n, (0, TX_SIZE), f"a transaction cut by the crash was kept in part: {group}")
        known = set(state.committed)
        for group in state.uncertain:
            known.update(group)
        self.assertFalse(present - known, f"messages nobody committed: {sorted(present - known)[:5]}")
        print(f"tx committed={len(state.committed)} uncertain={len(state.uncertain)} "
              f"moved={len(state.moved)} aborted_moves={len(state.aborted_moves)} left_in={len(left_in)} left_out={len(left_out)}", file=sys.stderr)

    def test_confirmed_messages_survive_kill_9_and_acked_ones_stay_gone(self):
        confirmed, acked, acking, lock = set(), set(), set(), threading.Lock()
        rng = random.Random(int(os.environ.get("SB_CRASH_SEED", "0")) or None)
        with sbtest.BrokerSeries(prefix="sbcrash-") as brokers:
            brokers.extra = brokers.journal()
            brokers.extra["store"]["segment_size"] = 1048576   # several segments: reclamation runs
            for cycle in range(CYCLES):
                b = brokers.start()
                stop = threading.Event()
                threads = [threading.Thread(target=produce, args=(b.port, f"c{cycle}p{i}", confirmed, lock, stop))
                           for i in range(PRODUCERS)]
                threads.append(threading.Thread(target=consume, args=(b.port, acked, acking, lock, stop)))
                for t in threads:
                    t.start()
                time.sleep(rng.uniform(0.2, 0.8))   # a random moment for the crash: the point
                b.kill()                              # SIGKILL, no shutdown of any kind
                stop.set()
                for t in threads:
                    t.join(10)
                    self.assertFalse(t.is_alive(), "a client thread did not end after the kill")

            b = brokers.start()
            left = drain(b.port, want=confirmed - acked - acking)
            b.stop()

        self.assertGreater(len(confirmed), 100, "too few confirmed sends to show anything")
        self.assertGreater(len(acked), 10, "too few acknowledged messages to show anything")
        got = set(left)
        self.assertEqual(len(got), len(left), "a message was recovered twice")
        # An ACK whose RECEIPT the kill cut off may have been made durable: that message may be
        # gone without being lost.
        missing = (confirmed - acked - acking) - got
        self.assertFalse(missing, f"{len(missing)} confirmed messages lost, e.g. {sorted(missing)[:5]}")
        back = acked & got
        self.assertFalse(back, f"{len(back)} acknowledged messages came back, e.g. {sorted(back)[:5]}")
        print(f"confirmed={len(confirmed)} acked={len(acked)} recovered_at_end={len(left)}", file=sys.stderr)


if __name__ == "__main__":
    sbtest.main()
