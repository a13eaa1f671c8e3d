# tests/integration/amqp_basic_test.py — AMQP 1.0 against the real binary with python3-qpid-proton
# (Debian's, /usr/bin/python3): queues with acknowledgement, topic fan-out, link credit and drain,
# each outcome (released, modified, rejected to the DLQ), request/reply over a dynamic node with
# the anonymous relay, a persistent message across a restart, SASL PLAIN/ANONYMOUS and clients
# skipping SASL, the address forms, and AMQP <-> STOMP with properties, content type and body
# checked against docs/mapping.md. Every wait is bounded (BlockingConnection timeouts).

import os
import socket
import sys
import tempfile

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import BrokerTestCase, HOST, WAIT  # noqa: E402

from proton import Condition, Data, Delivery, Message, symbol  # noqa: E402
from proton import ConnectionException, LinkException  # noqa: E402
from proton.utils import BlockingConnection, LinkDetached, SendException  # noqa: E402
from proton import Timeout  # noqa: E402

from stomp_auth_test import passwd_line  # noqa: E402

QUIET = 0.5   # bound for "nothing more arrives" (there is no event to await for an absence)


class AmqpTestCase(BrokerTestCase):
    """A broker with a STOMP (self.port) and an AMQP (self.amqp_port) listener per test."""

    def setUp(self):
        # As BrokerTestCase.setUp, with the AMQP listener added before the start.
        self.amqp_port = sbtest.free_port()
        self.broker = self._start_broker()
        self.addCleanup(self.broker.cleanup)
        self.addCleanup(self.broker.stop)
        self.broker.start()

    # BrokerTestCase.setUp builds the Broker; the AMQP listener is added before it starts.
    def _start_broker(self, workdir=None):
        method = getattr(self, self._testMethodName)
        extra = sbtest.deep_merge(self.broker_config, getattr(method, "sb_config", {}))
        broker = sbtest.Broker(extra, workdir=workdir)
        broker.config["listeners"].append({"name": "amqp", "protocol": "amqp", "address": HOST,
                                           "port": self.amqp_port})
        return broker

    def connect(self, **kw):
        kw.setdefault("timeout", WAIT)
        c = BlockingConnection(f"amqp://{HOST}:{self.amqp_port}", **kw)
        self.addCleanup(self._close, c)
        return c

    @staticmethod
    def _close(c):
        try:
            c.close()
        except Exception:   # already closed by the test or the broker
            pass

    def assert_nothing(self, receiver, what=""):
        with self.assertRaises(Timeout, msg=f"unexpected message {what}"):
            m = receiver.receive(timeout=QUIET)
            print("unexpected:", m)

    def stomp_client(self, **kw):
        return self.client(**kw)


class QueueTest(AmqpTestCase):

    def test_queue_send_receive_with_acknowledgement(self):
        c = self.connect()
        s = c.create_sender("orders")
        for i in range(3):
            s.send(Message(body=f"m{i}", durable=True))   # returns once the broker accepted it
        r = c.create_receiver("orders", credit=10)
        got = []
        for _ in range(3):
            got.append(r.receive().body)
            r.accept()   # settles the oldest unsettled one
        self.assertEqual(got, ["m0", "m1", "m2"])
        self.assert_nothing(r)
        r.close()
        # Accepted means consumed: a new receiver finds the queue empty.
        r2 = c.create_receiver("orders", credit=10)
        self.assert_nothing(r2, "after accept")

    def test_unsettled_message_comes_back_when_the_receiver_goes(self):
        c = self.connect()
        c.create_sender("q.back").send(Message(body="again"))
        r = c.create_receiver("q.back", credit=1)
        self.assertEqual(r.receive().body, "again")
        r.close()   # never settled
        r2 = self.connect().create_receiver("q.back", credit=1)
        m = r2.receive()
        self.assertEqual(m.body, "again")
        self.assertEqual(m.delivery_count, 1, "redelivered once")
        r2.accept()

    def test_address_forms_name_the_same_queue(self):
        c = self.connect()
        for address in ("same.q", "queue://same.q", "/queue/same.q"):
            c.create_sender(address).send(Message(body=address))
        r = c.create_receiver("queue://same.q", credit=10)
        self.assertEqual([r.receive().body for _ in range(3)], ["same.q", "queue://same.q", "/queue/same.q"])

    def test_bad_address_refuses_the_link_only(self):
        c = self.connect()
        with self.assertRaises(LinkDetached):
            c.create_sender("topic://a.*")   # no sending to a wildcard
        # The connection is still usable.
        c.create_sender("still.ok").send(Message(body="fine"))
        self.assertEqual(c.create_receiver("still.ok").receive().body, "fine")

    def test_presettled_sends_and_receives(self):
        from proton.reactor import AtMostOnce
        c = self.connect()
        s = c.create_sender("q.presettled", options=AtMostOnce())
        for i in range(3):
            s.send(Message(body=f"p{i}"))
        r = c.create_receiver("q.presettled", credit=10, options=AtMostOnce())
        self.assertEqual([r.receive().body for _ in range(3)], ["p0", "p1", "p2"])
        # Settled on the wire: consumed once written, nothing comes back.
        r.close()
        self.assert_nothing(c.create_receiver("q.presettled", credit=10), "after pre-settled delivery")


class TopicTest(AmqpTestCase):

    def test_topic_fan_out_to_every_receiver(self):
        c1, c2 = self.connect(), self.connect()
        r1 = c1.create_receiver("topic://prices.eu", credit=10)
        r2 = c2.create_receiver("/topic/prices.eu", credit=10)
        r3 = c2.create_receiver("topic://prices.*", credit=10)
        s = self.connect().create_sender("topic://prices.eu")
        s.send(Message(body="p1"))
        s.send(Message(body="p2"))
        for r in (r1, r2, r3):
            self.assertEqual([r.receive().body, r.receive().body], ["p1", "p2"])
            r.accept()

    def test_topic_capability_on_a_bare_name(self):
        from proton.reactor import LinkOption
        c = self.connect()

        class Caps(LinkOption):
            def __init__(self, cap):
                self.cap = cap

            def apply(self, link):
                terminus = link.source if link.is_receiver else link.target
                terminus.capabilities.put_array(False, Data.SYMBOL)
                terminus.capabilities.enter()
                terminus.capabilities.put_symbol(symbol(self.cap))
                terminus.capabilities.exit()
        r = c.create_receiver("capped", credit=10, options=Caps("topic"))
        c.create_sender("capped", options=Caps("topic")).send(Message(body="to the topic"))
        self.assertEqual(r.receive().body, "to the topic")
        r.accept()
        # The queue of the same name got nothing.
        self.assert_nothing(c.create_receiver("queue://capped", credit=10), "on the queue")


class CreditTest(AmqpTestCase):

    def fill(self, address, n):
        s = self.connect().create_sender(address)
        for i in range(n):
            s.send(Message(body=f"c{i}"))

    def test_link_credit_limits_deliveries(self):
        self.fill("q.credit", 5)
        c = self.connect()
        r = c.create_receiver("q.credit", credit=0)
        r.link.flow(2)
        c.wait(lambda: r.fetcher.has_message >= 2, timeout=WAIT, msg="two deliveries")
        with self.assertRaises(Timeout):
            c.wait(lambda: r.fetcher.has_message > 2, timeout=QUIET, msg="a third")
        self.assertEqual(r.link.credit, 0)
        r.link.flow(3)
        c.wait(lambda: r.fetcher.has_message == 5, timeout=WAIT, msg="all five")
        self.assertEqual([r.receive().body for _ in range(5)], [f"c{i}" for i in range(5)])
        r.accept()

    def test_drain_sends_what_there_is_then_uses_up_the_credit(self):
        self.fill("q.drain", 3)
        c = self.connect()
        r = c.create_receiver("q.drain", credit=0)
        r.link.drain(10)
        # The drain is over when the broker's flow says the credit is gone: 3 sent, 7 used up.
        c.wait(lambda: r.fetcher.has_message == 3 and r.link.credit == 0, timeout=WAIT, msg="drain echo")
        self.assertFalse(r.link.draining(), "drain still outstanding")
        self.assertEqual([r.fetcher.pop().body for _ in range(3)], ["c0", "c1", "c2"])
        # Nothing is delivered without new credit.
        self.fill("q.drain", 1)
        with self.assertRaises(Timeout):
            c.wait(lambda: r.fetcher.has_message > 0, timeout=QUIET, msg="after the drain")
        r.link.flow(1)
        self.assertEqual(r.receive().body, "c0")
        r.accept()


class OutcomeTest(AmqpTestCase):

    def one(self, c, address):
        r = c.create_receiver(address, credit=1)
        m = r.receive()
        return r, m, r.fetcher.unsettled.popleft()

    def test_released_is_redelivered_without_counting(self):
        c = self.connect()
        c.create_sender("q.rel").send(Message(body="r"))
        r, m, d = self.one(c, "q.rel")
        d.update(Delivery.RELEASED)
        d.settle()
        r.link.flow(1)
        m2 = r.receive()
        self.assertEqual(m2.body, "r")
        self.assertEqual(m2.delivery_count, 0, "released is not a failed delivery")
        r.accept()

    def test_modified_delivery_failed_counts_a_redelivery(self):
        c = self.connect()
        c.create_sender("q.mod").send(Message(body="m"))
        r, m, d = self.one(c, "q.mod")
        d.local.failed = True
        d.update(Delivery.MODIFIED)
        d.settle()
        r.link.flow(1)
        m2 = r.receive()
        self.assertEqual(m2.body, "m")
        self.assertEqual(m2.delivery_count, 1)
        r.accept()

    def test_modified_undeliverable_here_goes_to_another_consumer(self):
        c = self.connect()
        c.create_sender("q.undeliv").send(Message(body="u"))
        r, m, d = self.one(c, "q.undeliv")
        d.local.undeliverable = True
        d.local.failed = True
        d.update(Delivery.MODIFIED)
        d.settle()
        r.link.flow(1)
        with self.assertRaises(Timeout):
            c.wait(lambda: r.fetcher.has_message > 0, timeout=QUIET, msg="not here again")
        other = self.connect().create_receiver("q.undeliv", credit=1)
        self.assertEqual(other.receive().body, "u")
        other.accept()

    def test_rejected_goes_to_the_dlq_with_the_error(self):
        c = self.connect()
        c.create_sender("q.rej").send(Message(body="bad", properties={"k": "v"}))
        r, m, d = self.one(c, "q.rej")
        d.local.condition = Condition("amqp:invalid-field", "cannot parse the order")
        d.update(Delivery.REJECTED)
        d.settle()
        dlq = c.create_receiver("ActiveMQ.DLQ", credit=1)
        dead = dlq.receive()
        self.assertEqual(dead.body, "bad")
        self.assertEqual(dead.properties.get("k"), "v")
        self.assertEqual(dead.properties.get("dlqDeliveryFailureCause"), "cannot parse the order")
        dlq.accept()
        r.link.flow(1)
        with self.assertRaises(Timeout):
            c.wait(lambda: r.fetcher.has_message > 0, timeout=QUIET, msg="a rejected message came back")

    def test_unsupported_body_is_rejected_and_the_link_goes_on(self):
        c = self.connect()
        s = c.create_sender("q.body")
        with self.assertRaises(SendException):
            s.send(Message(body={"a": 1}))   # a map body: not supported yet (docs/amqp.md)
        s.send(Message(body="text is fine"))
        self.assertEqual(c.create_receiver("q.body").receive().body, "text is fine")


class RequestReplyTest(AmqpTestCase):

    def test_request_reply_over_a_dynamic_node_and_the_anonymous_relay(self):
        requester = self.connect()
        replies = requester.create_receiver(None, dynamic=True, credit=5)
        reply_to = replies.link.remote_source.address
        self.assertTrue(reply_to and reply_to.startswith("temp-queue://"), reply_to)
        requester.create_sender("service").send(
            Message(body="ping", reply_to=reply_to, correlation_id="req-1"))

        server = self.connect()
        req = server.create_receiver("service").receive()
        self.assertEqual(req.reply_to, reply_to)
        relay = server.create_sender(None)   # the anonymous relay: `to` on each message
        relay.send(Message(address=req.reply_to, body="pong", correlation_id=req.correlation_id))

        resp = replies.receive()
        self.assertEqual((resp.body, resp.correlation_id), ("pong", "req-1"))
        replies.accept()

    def test_temporary_queue_is_only_for_its_owner(self):
        owner = self.connect()
        replies = owner.create_receiver(None, dynamic=True, credit=1)
        address = replies.link.remote_source.address
        other = self.connect()
        with self.assertRaises(LinkDetached):
            other.create_receiver(address).receive(timeout=WAIT)

    def test_relay_to_a_gone_temporary_queue_is_rejected(self):
        owner = self.connect()
        address = owner.create_receiver(None, dynamic=True, credit=1).link.remote_source.address
        owner.close()
        s = self.connect().create_sender(None)
        with self.assertRaises(SendException):
            s.send(Message(address=address, body="nobody home"))


class PersistenceTest(AmqpTestCase):
    broker_config = {"store": {"type": "journal", "dir": "data", "sync": "always"}}

    def test_persistent_message_survives_a_restart(self):
        c = self.connect()
        s = c.create_sender("q.durable")
        s.send(Message(body="kept", durable=True, properties={"n": 1}))
        s.send(Message(body="lost", durable=False))
        c.close()
        self.broker.stop()
        self.broker.reaped = True
        # A second broker on the same directory (and a fresh AMQP port).
        self.amqp_port = sbtest.free_port()
        second = self._start_broker(workdir=self.broker.dir)
        self.addCleanup(second.cleanup)
        self.addCleanup(second.stop)
        second.start()
        r = self.connect().create_receiver("q.durable", credit=10)
        m = r.receive()
        self.assertEqual((m.body, m.durable, m.properties.get("n")), ("kept", True, 1))
        r.accept()
        self.assert_nothing(r, "the non-persistent message should not survive")


class SaslTest(AmqpTestCase):

    def setUp(self):
        users_dir = tempfile.TemporaryDirectory(prefix="sbtest-users-")
        self.addCleanup(users_dir.cleanup)
        users_file = os.path.join(users_dir.name, "users")
        with open(users_file, "w") as f:
            f.write(passwd_line("alice", "wonder land") + "\n")
        self.broker_config = {"security": {"allow_anonymous": False, "users_file": users_file}}
        super().setUp()

    def test_plain_with_the_right_password_works(self):
        c = self.connect(user="alice", password="wonder land", allowed_mechs="PLAIN",
                         allow_insecure_mechs=True)
        c.create_sender("q.auth").send(Message(body="in"))
        self.assertEqual(c.create_receiver("q.auth").receive().body, "in")

    def test_wrong_password_and_anonymous_are_refused(self):
        with self.assertRaises(ConnectionException):
            self.connect(user="alice", password="nope", allowed_mechs="PLAIN", allow_insecure_mechs=True)
        with self.assertRaises(ConnectionException):
            self.connect(allowed_mechs="ANONYMOUS")

    def test_skipping_sasl_is_answered_with_the_sasl_header(self):
        with socket.create_connection((HOST, self.amqp_port), timeout=WAIT) as s:
            s.sendall(b"AMQP\x00\x01\x00\x00")
            got = b""
            while True:
                chunk = s.recv(64)
                if not chunk:
                    break
                got += chunk
        self.assertEqual(got, b"AMQP\x03\x01\x00\x00")


class NoSaslTest(AmqpTestCase):

    def test_client_without_sasl_is_accepted_when_anonymous_is_on(self):
        c = self.connect(sasl_enabled=False)
        c.create_sender("q.nosasl").send(Message(body="plain"))
        self.assertEqual(c.create_receiver("q.nosasl").receive().body, "plain")

    def test_wrong_protocol_header_gets_ours_then_the_end(self):
        with socket.create_connection((HOST, self.amqp_port), timeout=WAIT) as s:
            s.sendall(b"AMQP\x01\x01\x00\x0a")
            got = read_until_closed(s)
        self.assertEqual(got, b"AMQP\x03\x01\x00\x00")
        # Only that connection: the broker still serves others.
        c = self.connect()
        c.create_sender("q.after").send(Message(body="ok"))


def read_until_closed(s):
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return got
        got += chunk


# The AMQP header and an open(container-id "raw") on channel 0, as gateway/protocols/amqp.cpp's probe.
RAW_OPEN = (b"AMQP\x00\x01\x00\x00" + b"\x00\x00\x00\x13\x02\x00\x00\x00"
            + b"\x00\x53\x10\xc0\x06\x01\xa1\x03raw")


class ConnectionTest(AmqpTestCase):
    broker_config = {"amqp": {"idle_timeout_ms": 600}}

    def test_silent_connection_is_closed_with_resource_limit_exceeded(self):
        with socket.create_connection((HOST, self.amqp_port), timeout=WAIT) as s:
            s.sendall(RAW_OPEN)
            got = read_until_closed(s)   # then nothing: the idle timeout ends it
        self.assertTrue(got.startswith(b"AMQP\x00\x01\x00\x00"), got[:16])
        self.assertIn(b"\x00\x53\x10", got, "no open")
        self.assertIn(b"\x00\x53\x18", got, "no close")
        self.assertIn(b"amqp:resource-limit-exceeded", got)

    def test_client_heartbeats_keep_the_connection(self):
        c = self.connect(heartbeat=0.2)   # empty frames every 0.1 s, well within 0.6 s
        s = c.create_sender("q.hb")
        r = c.create_receiver("q.hb", credit=1)
        with self.assertRaises(Timeout):
            c.wait(lambda: False, timeout=1.5, msg="idle")   # idle for over twice the broker's timeout
        s.send(Message(body="still here"))
        self.assertEqual(r.receive().body, "still here")
        r.accept()

    def test_a_second_sasl_header_after_sasl_ends_the_connection_only(self):
        # SASL ANONYMOUS by hand, then a SASL header again where the AMQP header belongs.
        init = b"\x00\x53\x41\xc0\x0c\x01\xa3\x09ANONYMOUS"
        frame = (8 + len(init)).to_bytes(4, "big") + b"\x02\x01\x00\x00" + init
        with socket.create_connection((HOST, self.amqp_port), timeout=WAIT) as s:
            s.sendall(b"AMQP\x03\x01\x00\x00" + frame + b"AMQP\x03\x01\x00\x00" + frame)
            got = read_until_closed(s)
        self.assertTrue(got.startswith(b"AMQP\x03\x01\x00\x00"), got[:16])
        self.assertIn(b"\x00\x53\x44\xc0\x03\x01\x50\x00", got, "no sasl-outcome ok")
        self.assertNotIn(b"\x00\x53\x10", got, "Proton must not have opened")
        c = self.connect()
        c.create_sender("q.alive").send(Message(body="alive"))


class AutoListenerTest(AmqpTestCase):

    def _start_broker(self, workdir=None):
        broker = sbtest.Broker({}, workdir=workdir)
        broker.config["listeners"].append({"name": "front", "protocol": "auto", "address": HOST,
                                           "port": self.amqp_port})
        return broker

    def test_amqp_on_an_auto_port_reaches_the_kernel(self):
        c = self.connect()
        c.create_sender("q.auto").send(Message(body="detected"))
        stomp = self.stomp_client()
        stomp.subscribe("/queue/q.auto", "s")
        self.assertEqual(stomp.get_message().body, "detected")


class CrossProtocolTest(AmqpTestCase):

    def test_amqp_to_stomp_field_by_field(self):
        stomp = self.stomp_client(auto_decode=False)
        stomp.subscribe("/queue/x.amqp", "s1")
        c = self.connect()
        c.create_sender("/queue/x.amqp").send(Message(
            body="héllo", durable=True, priority=7, subject="order.created", content_type="text/plain",
            correlation_id="corr-1", reply_to="topic://replies.x", group_id="g1", group_sequence=4,
            id="client-id-1", properties={"color": "blue", "n": 7, "ok": True}))
        frame = stomp.get_message()
        h = frame.headers
        self.assertEqual(frame.body, "héllo".encode())
        self.assertEqual(h.get("destination"), "/queue/x.amqp")
        self.assertEqual(h.get("persistent"), "true")
        self.assertEqual(h.get("priority"), "7")
        self.assertEqual(h.get("type"), "order.created")
        self.assertEqual(h.get("content-type"), "text/plain")
        self.assertEqual(h.get("correlation-id"), "corr-1")
        self.assertEqual(h.get("reply-to"), "/topic/replies.x")
        self.assertEqual(h.get("JMSXGroupID"), "g1")
        self.assertEqual(h.get("JMSXGroupSeq"), "4")
        self.assertEqual((h.get("color"), h.get("n"), h.get("ok")), ("blue", "7", "true"))
        self.assertTrue(h.get("message-id", "").startswith("ID:"), h)   # the broker's, as for STOMP senders

    def test_stomp_to_amqp_field_by_field(self):
        c = self.connect()
        r = c.create_receiver("queue://x.stomp", credit=5)
        stomp = self.stomp_client()
        stomp.send("/queue/x.stomp", b"\x00\x01binary", headers={
            "persistent": "true", "priority": "3", "type": "t1", "content-type": "application/octet-stream",
            "correlation-id": "c-2", "reply-to": "/queue/back", "color": "red"}, receipt=True)
        m = r.receive()
        self.assertEqual(bytes(m.body), b"\x00\x01binary")   # content-length: a data section
        self.assertTrue(m.durable)
        self.assertEqual(m.priority, 3)
        self.assertEqual(m.subject, "t1")
        self.assertEqual(m.content_type, "application/octet-stream")
        self.assertEqual(m.correlation_id, "c-2")
        self.assertEqual(m.reply_to, "back")   # a queue: the bare name
        self.assertEqual(m.properties.get("color"), "red")
        self.assertEqual(m.address, "x.stomp")
        self.assertTrue(str(m.id).startswith("ID:"), m.id)
        r.accept()

    def test_stomp_text_without_content_length_is_an_amqp_string(self):
        c = self.connect()
        r = c.create_receiver("queue://x.text", credit=5)
        raw = self.raw()
        raw.connect()
        raw.send_frame("SEND", {"destination": "/queue/x.text", "receipt": "r1"}, b"just text")
        raw.expect("RECEIPT")
        m = r.receive()
        self.assertEqual(m.body, "just text")
        r.accept()


if __name__ == "__main__":
    sbtest.main()
