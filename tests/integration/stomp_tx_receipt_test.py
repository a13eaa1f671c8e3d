# tests/integration/stomp_tx_receipt_test.py — STOMP transactions (stomp.py) and receipts
# (raw socket, exact frames): commit/abort, acks in transactions, receipt per frame type and order.

import os
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import BrokerTestCase  # noqa: E402


class TransactionTest(BrokerTestCase):

    def begin(self, client, tx):
        rid = client.new_receipt()
        client.conn.begin(transaction=tx, headers={"receipt": rid})
        client.wait_receipt(rid)

    def commit(self, client, tx):
        rid = client.new_receipt()
        client.conn.commit(transaction=tx, headers={"receipt": rid})
        client.wait_receipt(rid)

    def abort(self, client, tx):
        rid = client.new_receipt()
        client.conn.abort(transaction=tx, headers={"receipt": rid})
        client.wait_receipt(rid)

    def test_commit_delivers_transacted_sends_in_order(self):
        consumer = self.client()
        consumer.subscribe("/queue/tx-commit", "sub-1")
        producer = self.client()
        self.begin(producer, "tx-1")
        producer.send("/queue/tx-commit", "in-tx-1", headers={"transaction": "tx-1"}, receipt=True)
        producer.send("/queue/tx-commit", "in-tx-2", headers={"transaction": "tx-1"}, receipt=True)
        producer.send("/queue/tx-commit", "outside", receipt=True)
        # Same destination: had a transacted SEND been delivered early it would come first.
        self.assertEqual(consumer.get_message().body, "outside",
                         "a transacted SEND was delivered before COMMIT")
        self.commit(producer, "tx-1")
        frames = consumer.get_messages(2)
        self.assertEqual([f.body for f in frames], ["in-tx-1", "in-tx-2"])
        self.assertNotIn("transaction", frames[0].headers)

    def test_abort_drops_transacted_sends(self):
        consumer = self.client()
        consumer.subscribe("/queue/tx-abort", "sub-1")
        producer = self.client()
        self.begin(producer, "tx-2")
        producer.send("/queue/tx-abort", "dropped", headers={"transaction": "tx-2"}, receipt=True)
        self.abort(producer, "tx-2")
        producer.send("/queue/tx-abort", "after-abort", receipt=True)
        self.assertEqual(consumer.get_message().body, "after-abort",
                         "a SEND of an aborted transaction was delivered")

    def test_disconnect_aborts_open_transaction(self):
        consumer = self.client()
        consumer.subscribe("/queue/tx-disc", "sub-1")
        producer = self.client()
        self.begin(producer, "tx-3")
        producer.send("/queue/tx-disc", "never", headers={"transaction": "tx-3"}, receipt=True)
        producer.close()
        self.assertTrue(producer.disconnected.is_set(), "DISCONNECT did not close the socket")
        other = self.client()
        other.send("/queue/tx-disc", "sentinel", receipt=True)
        self.assertEqual(consumer.get_message().body, "sentinel",
                         "an uncommitted transaction was committed at DISCONNECT")

    def test_ack_in_aborted_transaction_redelivers(self):
        consumer = self.client()
        consumer.subscribe("/queue/tx-ack", "sub-1", ack="client-individual")
        producer = self.client()
        producer.send("/queue/tx-ack", "m", receipt=True)
        first = consumer.get_message()
        self.assertEqual(first.body, "m")
        self.begin(consumer, "tx-4")
        consumer.ack(first, transaction="tx-4", receipt=True)
        self.abort(consumer, "tx-4")
        again = consumer.get_message(timeout=10)
        self.assertEqual(again.body, "m")
        self.assertEqual(again.headers.get("redelivered"), "true", f"headers: {again.headers}")
        consumer.ack(again, receipt=True)
        producer.send("/queue/tx-ack", "sentinel", receipt=True)
        self.assertEqual(consumer.get_message().body, "sentinel")

    def test_ack_in_committed_transaction_is_final(self):
        consumer = self.client()
        consumer.subscribe("/queue/tx-ack2", "sub-1", ack="client-individual")
        producer = self.client()
        producer.send("/queue/tx-ack2", "m", receipt=True)
        first = consumer.get_message()
        self.begin(consumer, "tx-5")
        consumer.ack(first, transaction="tx-5", receipt=True)
        self.commit(consumer, "tx-5")
        consumer.close()   # had the ack not counted, the message would go back to the queue
        other = self.client()
        other.subscribe("/queue/tx-ack2", "sub-2", ack="client-individual")
        producer.send("/queue/tx-ack2", "sentinel", receipt=True)
        self.assertEqual(other.get_message().body, "sentinel",
                         "a message acked in a committed transaction came back")


class CommitOrderTest(BrokerTestCase):
    # sync: batch(1000): a commit is durable (and its messages published) about a second after
    # its COMMIT is read, while a non-persistent SEND would be delivered at once.
    broker_config = {"store": {"type": "journal", "dir": "data", "sync": "batch(1000)"}}

    def test_a_send_after_commit_does_not_overtake_the_transaction(self):
        consumer = self.raw("1.2")
        consumer.send_frame("SUBSCRIBE", {"id": "s", "destination": "/queue/tx-order", "receipt": "r"})
        consumer.expect("RECEIPT")
        producer = self.raw("1.2")
        producer.send(sbtest.encode_frame("BEGIN", {"transaction": "t"})
                      + sbtest.encode_frame("SEND", {"destination": "/queue/tx-order", "transaction": "t",
                                                     "persistent": "true"}, b"in-tx")
                      + sbtest.encode_frame("COMMIT", {"transaction": "t", "receipt": "c"})
                      + sbtest.encode_frame("SEND", {"destination": "/queue/tx-order"}, b"after"))
        self.assertEqual(producer.expect("RECEIPT").headers.get("receipt-id"), "c")
        got = [consumer.expect("MESSAGE", timeout=10).body for _ in range(2)]
        self.assertEqual(got, [b"in-tx", b"after"], "a SEND after COMMIT overtook the transaction's message")


class ReceiptTest(BrokerTestCase):

    def receipts_and_messages(self, raw, receipt_ids, messages=0):
        """Reads until every receipt id and `messages` MESSAGEs arrived; returns both lists."""
        got, msgs = [], []
        while len(got) < len(receipt_ids) or len(msgs) < messages:
            try:
                frame = raw.read_frame()
            except TimeoutError:
                frame = None
            if frame is None:
                self.fail(f"within {sbtest.WAIT}s got receipts {got} of {receipt_ids} and "
                          f"{len(msgs)} of {messages} MESSAGEs")
            if frame.command == "RECEIPT":
                got.append(frame.headers.get("receipt-id"))
            elif frame.command == "MESSAGE":
                msgs.append(frame)
            else:
                self.fail(f"unexpected frame {frame!r}")
        self.assertEqual(got, receipt_ids)
        return msgs

    def test_receipt_for_every_frame_type(self):
        raw = self.raw("1.2")
        dest = "/queue/receipts"
        raw.send_frame("SUBSCRIBE", {"id": "s1", "destination": dest, "ack": "client-individual",
                                     "receipt": "r-subscribe"})
        raw.send_frame("SEND", {"destination": dest, "receipt": "r-send"}, b"one")
        (msg,) = self.receipts_and_messages(raw, ["r-subscribe", "r-send"], messages=1)
        self.assertEqual(msg.body, b"one")

        raw.send_frame("BEGIN", {"transaction": "t1", "receipt": "r-begin"})
        raw.send_frame("ACK", {"id": msg.headers["ack"], "transaction": "t1", "receipt": "r-ack"})
        raw.send_frame("COMMIT", {"transaction": "t1", "receipt": "r-commit"})
        raw.send_frame("BEGIN", {"transaction": "t2", "receipt": "r-begin2"})
        raw.send_frame("ABORT", {"transaction": "t2", "receipt": "r-abort"})
        self.receipts_and_messages(raw, ["r-begin", "r-ack", "r-commit", "r-begin2", "r-abort"])

        raw.send_frame("SEND", {"destination": dest, "receipt": "r-send2"}, b"two")
        (msg2,) = self.receipts_and_messages(raw, ["r-send2"], messages=1)
        raw.send_frame("NACK", {"id": msg2.headers["ack"], "receipt": "r-nack"})
        (again,) = self.receipts_and_messages(raw, ["r-nack"], messages=1)
        self.assertEqual((again.body, again.headers.get("redelivered")), (b"two", "true"))
        raw.send_frame("ACK", {"id": again.headers["ack"], "receipt": "r-ack2"})
        raw.send_frame("UNSUBSCRIBE", {"id": "s1", "receipt": "r-unsubscribe"})
        self.receipts_and_messages(raw, ["r-ack2", "r-unsubscribe"])

        raw.send_frame("DISCONNECT", {"receipt": "r-disconnect"})
        frame = raw.read_frame()
        self.assertEqual((frame.command, frame.headers.get("receipt-id")),
                         ("RECEIPT", "r-disconnect"), f"got {frame!r}")
        self.assertEqual(raw.wait_closed(), [], "frames after the DISCONNECT receipt")

    def test_receipts_follow_frame_order_across_destinations(self):
        raw = self.raw("1.2")
        frames = []
        expected = []
        for i in range(60):
            rid = f"r-{i:03d}"
            expected.append(rid)
            kind = i % 6
            if kind in (0, 1, 2):
                # Many destinations: they are owned by different shards, the order must hold.
                frames.append(sbtest.encode_frame(
                    "SEND", {"destination": f"/queue/order.{i % 7}", "receipt": rid}, f"b{i}"))
            elif kind == 3:
                frames.append(sbtest.encode_frame(
                    "SUBSCRIBE", {"id": f"s{i}", "destination": f"/topic/order.{i}",
                                  "receipt": rid}))
            elif kind == 4:
                frames.append(sbtest.encode_frame("UNSUBSCRIBE", {"id": f"s{i - 1}",
                                                                  "receipt": rid}))
            else:
                frames.append(sbtest.encode_frame("BEGIN", {"transaction": f"t{i}",
                                                            "receipt": rid}))
        raw.send(b"".join(frames))   # pipelined in one write
        self.receipts_and_messages(raw, expected)

    def test_commit_receipt_without_further_traffic(self):
        # Each RECEIPT must be written when its frame is done, not when the next frame arrives.
        raw = self.raw("1.2")
        raw.send_frame("BEGIN", {"transaction": "empty", "receipt": "r-begin"})
        raw.send_frame("COMMIT", {"transaction": "empty", "receipt": "r-commit"})
        self.receipts_and_messages(raw, ["r-begin", "r-commit"])
        raw.send_frame("BEGIN", {"transaction": "acks", "receipt": "r-begin2"})
        raw.send_frame("SUBSCRIBE", {"id": "s", "destination": "/queue/commit-ack",
                                     "ack": "client-individual", "receipt": "r-sub"})
        raw.send_frame("SEND", {"destination": "/queue/commit-ack", "receipt": "r-send"}, b"m")
        (msg,) = self.receipts_and_messages(raw, ["r-begin2", "r-sub", "r-send"], messages=1)
        raw.send_frame("ACK", {"id": msg.headers["ack"], "transaction": "acks", "receipt": "r-ack"})
        raw.send_frame("COMMIT", {"transaction": "acks", "receipt": "r-commit2"})
        self.receipts_and_messages(raw, ["r-ack", "r-commit2"])

    def test_disconnect_receipt_on_stomp_10(self):
        raw = self.raw()
        raw.send_frame("CONNECT", {})   # STOMP 1.0: no accept-version
        connected = raw.expect("CONNECTED")
        self.assertIn(connected.headers.get("version", "1.0"), ("1.0",))
        raw.send_frame("DISCONNECT", {"receipt": "bye"})
        frame = raw.expect("RECEIPT")
        self.assertEqual(frame.headers.get("receipt-id"), "bye")
        raw.wait_closed()

    def test_stomp_py_send_receipts(self):
        client = self.client()
        rids = [client.send("/queue/pyreceipts", f"x{i}", receipt=True) for i in range(20)]
        self.assertEqual(client.receipt_ids(), rids)


if __name__ == "__main__":
    sbtest.main()
