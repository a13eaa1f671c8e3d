# tests/integration/amqp_features_test.py — AMQP 1.0 features beyond the basics, against the real
# binary with python3-qpid-proton (Debian's, /usr/bin/python3): local transactions over the
# coordinator link (declare / discharge, transactional sends and dispositions; committed, rolled
# back, unknown ids, and across a restart on the journal store), durable and shared
# subscriptions (Qpid JMS naming; across reconnect and restart; closed=true unsubscribes),
# selector and no-local filters, amqp:link:stolen, credit withheld from a sender while its queue
# is over the memory limit, the offered capabilities and a delivery delay. Every wait is bounded
# (BlockingConnection timeouts).

import os
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402
from sbtest import HOST, WAIT  # noqa: E402

from proton import (Array, Data, Delivery, Described, Endpoint, Message, Terminus, symbol,  # noqa: E402
                    ulong, UNDESCRIBED)
from proton import Timeout  # noqa: E402
from proton.reactor import Container, DurableSubscription, Filter, ReceiverOption, Selector  # noqa: E402
from proton.utils import BlockingConnection, ConnectionClosed, LinkDetached  # noqa: E402

from amqp_basic_test import AmqpTestCase  # noqa: E402

DECLARED, TRANSACTIONAL_STATE = 0x33, 0x34
ACCEPTED = ulong(0x24)
QUIET = 0.5   # bound for "nothing more arrives" (there is no event to await for an absence)
JOURNAL = {"store": {"type": "journal", "dir": "data", "sync": "always"}}


class Capabilities(ReceiverOption):
    """Source capabilities (shared, global...) as an array of symbols."""

    def __init__(self, *caps):
        self.caps = caps

    def apply(self, receiver):
        receiver.source.capabilities.put_object(Array(UNDESCRIBED, Data.SYMBOL, *[symbol(c) for c in self.caps]))


def filters_of(receiver):
    """The filter set the broker's attach echoed (those in force)."""
    d = receiver.link.remote_source.filter
    d.rewind()
    d.next()
    return d.get_object() or {}


def no_local():
    # Qpid JMS's form: the descriptor symbol with its ":list" suffix, a string value.
    return Filter({symbol("no-local"): Described(symbol("apache.org:no-local-filter:list"), "NoLocalFilter{}")})


class Coordinator:
    """A transaction controller on a BlockingConnection: the coordinator link, declare and
    discharge, and the transactional-state on sends and dispositions."""

    def __init__(self, conn, name="txn-ctrl"):
        self.conn = conn
        ssn = conn.conn.session()
        ssn.open()
        self.link = ssn.sender(name)
        self.link.target.type = Terminus.COORDINATOR
        self.link.target.capabilities.put_object(Array(UNDESCRIBED, Data.SYMBOL, symbol("amqp:local-transactions")))
        self.link.open()
        conn.wait(lambda: self.link.state & Endpoint.REMOTE_ACTIVE, msg="coordinator attach")

    def control(self, body):
        self.conn.wait(lambda: self.link.credit > 0, msg="coordinator credit")
        dlv = self.link.send(Message(body=body))
        self.conn.wait(lambda: dlv.settled, msg="control outcome")
        return dlv

    def declare(self):
        dlv = self.control(Described(symbol("amqp:declare:list"), [None]))
        assert dlv.remote_state == DECLARED, dlv.remote_state
        return dlv.remote.data[0]

    def discharge(self, txid, fail=False):
        return self.control(Described(symbol("amqp:discharge:list"), [txid, fail]))

    def send(self, sender, txid, msg):
        """A transactional send on a BlockingSender: settled by the broker with a
        transactional-state."""
        self.conn.wait(lambda: sender.link.credit > 0, msg="sender credit")
        dlv = sender.link.send(msg)
        dlv.local.data = [txid]
        dlv.update(TRANSACTIONAL_STATE)
        self.conn.wait(lambda: dlv.settled, msg="transactional send outcome")
        return dlv

    @staticmethod
    def settle(receiver, txid, outcome):
        """Settles the oldest unsettled delivery of a BlockingReceiver with `outcome` (a
        described outcome) in the transaction."""
        dlv = receiver.fetcher.unsettled.popleft()
        dlv.local.data = [txid, outcome]
        dlv.update(TRANSACTIONAL_STATE)
        dlv.settle()

    @staticmethod
    def accept(receiver, txid, settle=True):
        """Accepts the oldest unsettled delivery of a BlockingReceiver in the transaction:
        settled (Qpid JMS), or left unsettled until the discharge (python-qpid-proton's own
        Transaction.accept)."""
        dlv = receiver.fetcher.unsettled.popleft()
        dlv.local.data = [txid, Described(ACCEPTED, [])]
        dlv.update(TRANSACTIONAL_STATE)
        if settle:
            dlv.settle()
        return dlv


class FeaturesTestCase(AmqpTestCase):

    def connect_as(self, container_id, **kw):
        cont = Container()
        cont.container_id = container_id
        return self.connect(container=cont, **kw)

    def drain(self, receiver, n):
        got = []
        for _ in range(n):
            got.append(receiver.receive().body)
            receiver.accept()
        return got

    def restart(self):
        """A second broker on the same directory (and a fresh AMQP port)."""
        self.broker.stop()
        self.broker.reaped = True
        self.amqp_port = sbtest.free_port()
        second = self._start_broker(workdir=self.broker.dir)
        self.addCleanup(second.cleanup)
        self.addCleanup(second.stop)
        second.start()
        self.broker = second


class TransactionTest(FeaturesTestCase):

    def test_committed_sends_and_acks(self):
        c = self.connect()
        old = c.create_sender("q.acked")
        old.send(Message(body="old1"))
        old.send(Message(body="old2"))
        txn = Coordinator(c)
        txid = txn.declare()
        s = c.create_sender("q.tx")
        for i in range(2):
            dlv = txn.send(s, txid, Message(body=f"t{i}", durable=True))
            self.assertEqual(dlv.remote_state, TRANSACTIONAL_STATE)
            self.assertEqual(dlv.remote.data[0], txid)
            self.assertEqual(dlv.remote.data[1], Described(ACCEPTED, []), "accepted within the transaction")
        r = c.create_receiver("q.acked", credit=10)
        self.assertEqual(r.receive().body, "old1")
        txn.accept(r, txid)
        self.assertEqual(r.receive().body, "old2")
        unsettled = txn.accept(r, txid, settle=False)
        # Nothing of the transaction is visible before the commit.
        watcher = self.connect().create_receiver("q.tx", credit=10)
        self.assert_nothing(watcher, "before the commit")
        dlv = txn.discharge(txid)
        self.assertEqual(dlv.remote_state, Delivery.ACCEPTED, "the commit completed")
        c.wait(lambda: unsettled.settled, msg="the unsettled transactional ack settled by the discharge")
        self.assertEqual(self.drain(watcher, 2), ["t0", "t1"])
        # The acks took effect: the acked messages are gone once their receiver is.
        r.close()
        self.assert_nothing(self.connect().create_receiver("q.acked", credit=10), "after the committed acks")

    def test_rolled_back_sends_and_acks(self):
        c = self.connect()
        c.create_sender("q.rb.acked").send(Message(body="keep-me"))
        txn = Coordinator(c)
        txid = txn.declare()
        txn.send(c.create_sender("q.rb"), txid, Message(body="never"))
        r = c.create_receiver("q.rb.acked", credit=1)
        self.assertEqual(r.receive().body, "keep-me")
        txn.accept(r, txid)
        dlv = txn.discharge(txid, fail=True)
        self.assertEqual(dlv.remote_state, Delivery.ACCEPTED, "the rollback completed")
        self.assert_nothing(self.connect().create_receiver("q.rb", credit=10), "a rolled-back send")
        # The acked message comes back (to the same receiver, which has credit again), counted
        # as a redelivery.
        r.link.flow(1)
        m = r.receive()
        self.assertEqual((m.body, m.delivery_count), ("keep-me", 1))
        r.accept()

    def test_other_outcomes_take_effect_at_the_commit(self):
        c = self.connect()
        s = c.create_sender("q.outcomes")
        s.send(Message(body="bad"))
        s.send(Message(body="retry"))
        txn = Coordinator(c)
        txid = txn.declare()
        r = c.create_receiver("q.outcomes", credit=2)
        self.assertEqual(r.receive().body, "bad")
        txn.settle(r, txid, Described(ulong(0x25), [None]))             # rejected
        self.assertEqual(r.receive().body, "retry")
        txn.settle(r, txid, Described(ulong(0x27), [True, False]))      # modified, delivery-failed
        dlq = self.connect().create_receiver("ActiveMQ.DLQ", credit=10)
        self.assert_nothing(dlq, "a rejection before the commit")
        self.assertEqual(txn.discharge(txid).remote_state, Delivery.ACCEPTED)
        self.assertEqual(self.drain(dlq, 1), ["bad"])
        r.link.flow(1)
        m = r.receive()
        self.assertEqual((m.body, m.delivery_count), ("retry", 1), "redelivered, the failure counted")
        r.accept()

    def test_unknown_transaction_ids_are_refused(self):
        c = self.connect()
        txn = Coordinator(c)
        dlv = txn.discharge(b"\x00" * 7 + b"\x63")
        self.assertEqual(dlv.remote_state, Delivery.REJECTED)
        self.assertEqual(dlv.remote.condition.name, "amqp:transaction:unknown-id")
        dlv = txn.send(c.create_sender("q.unknown"), b"\x00" * 7 + b"\x63", Message(body="x"))
        self.assertEqual(dlv.remote_state, Delivery.REJECTED)
        self.assertEqual(dlv.remote.condition.name, "amqp:transaction:unknown-id")
        # A discharged transaction is unknown afterwards.
        txid = txn.declare()
        self.assertEqual(txn.discharge(txid).remote_state, Delivery.ACCEPTED)
        dlv = txn.discharge(txid)
        self.assertEqual(dlv.remote.condition.name, "amqp:transaction:unknown-id")
        self.assert_nothing(self.connect().create_receiver("q.unknown", credit=10))

    def test_two_transactions_are_independent(self):
        c = self.connect()
        txn = Coordinator(c)
        a, b = txn.declare(), txn.declare()
        self.assertNotEqual(a, b)
        s = c.create_sender("q.two")
        txn.send(s, a, Message(body="a"))
        txn.send(s, b, Message(body="b"))
        self.assertEqual(txn.discharge(b, fail=True).remote_state, Delivery.ACCEPTED)
        self.assertEqual(txn.discharge(a).remote_state, Delivery.ACCEPTED)
        r = self.connect().create_receiver("q.two", credit=10)
        self.assertEqual(self.drain(r, 1), ["a"])
        self.assert_nothing(r)

    def test_closing_the_coordinator_rolls_back(self):
        c = self.connect()
        c.create_sender("q.cc.acked").send(Message(body="back"))
        txn = Coordinator(c)
        txid = txn.declare()
        txn.send(c.create_sender("q.cc"), txid, Message(body="dropped"))
        r = c.create_receiver("q.cc.acked", credit=1)
        self.assertEqual(r.receive().body, "back")
        txn.accept(r, txid)
        txn.link.close()
        c.wait(lambda: txn.link.state & Endpoint.REMOTE_CLOSED, msg="coordinator detach")
        self.assert_nothing(self.connect().create_receiver("q.cc", credit=10), "a send of a rolled back transaction")
        r.link.flow(1)
        m = r.receive()
        self.assertEqual((m.body, m.delivery_count), ("back", 1))


class TransactionRestartTest(FeaturesTestCase):
    broker_config = JOURNAL

    def test_committed_transaction_survives_a_restart_and_an_open_one_does_not(self):
        c = self.connect()
        s_in = c.create_sender("q.j.in")
        for body in ("acked", "kept"):
            s_in.send(Message(body=body, durable=True))
        txn = Coordinator(c)
        txid = txn.declare()
        s_out = c.create_sender("q.j.out")
        txn.send(s_out, txid, Message(body="committed", durable=True))
        r = c.create_receiver("q.j.in", credit=1)
        self.assertEqual(r.receive().body, "acked")
        txn.accept(r, txid)
        self.assertEqual(txn.discharge(txid).remote_state, Delivery.ACCEPTED)
        # An open transaction at the restart: none of it happened.
        open_tx = txn.declare()
        txn.send(s_out, open_tx, Message(body="uncommitted", durable=True))
        r.link.flow(1)
        self.assertEqual(r.receive().body, "kept")
        txn.accept(r, open_tx)
        c.close()
        self.restart()
        c2 = self.connect()
        out = c2.create_receiver("q.j.out", credit=10)
        self.assertEqual(self.drain(out, 1), ["committed"])
        self.assert_nothing(out, "the open transaction's send")
        rin = c2.create_receiver("q.j.in", credit=10)
        m = rin.receive()
        self.assertEqual(m.body, "kept", "the committed ack removed 'acked' from the store")
        rin.accept()
        self.assert_nothing(rin)


class DurableSubscriptionTest(FeaturesTestCase):
    broker_config = JOURNAL

    def test_durable_subscription_across_reconnect_and_restart(self):
        c = self.connect_as("app1")
        r = c.create_receiver("topic://news", name="sub1", options=DurableSubscription(), credit=10)
        self.assertEqual(r.link.remote_source.durability, Terminus.DELIVERIES)
        self.assertEqual(r.link.remote_source.expiry_policy, Terminus.EXPIRE_NEVER)
        pub = self.connect().create_sender("topic://news")
        pub.send(Message(body="n1", durable=True))
        self.assertEqual(self.drain(r, 1), ["n1"])
        c.close()   # detached, not closed: the subscription stays
        pub.send(Message(body="n2", durable=True))
        c = self.connect_as("app1")
        r = c.create_receiver("topic://news", name="sub1", options=DurableSubscription(), credit=10)
        self.assertEqual(self.drain(r, 1), ["n2"], "kept while detached")
        c.close()
        pub.send(Message(body="n3", durable=True))
        pub.connection.close()
        self.restart()
        c = self.connect_as("app1")
        r = c.create_receiver("topic://news", name="sub1", options=DurableSubscription(), credit=10)
        self.assertEqual(self.drain(r, 1), ["n3"], "kept across the restart")
        # Known by name after the restart too (the store's record).
        r.link.detach()
        c.close()
        c = self.connect_as("app1")
        self.assertEqual(c.create_receiver(None, name="sub1", credit=0).link.remote_source.address, "topic://news")
        # Another container's link of the same name is another subscription.
        other = self.connect_as("app2").create_receiver("topic://news", name="sub1",
                                                        options=DurableSubscription(), credit=10)
        self.assert_nothing(other)

    def test_closing_the_link_deletes_the_subscription(self):
        c = self.connect_as("app3")
        r = c.create_receiver("topic://gone", name="sub", options=DurableSubscription(), credit=10)
        pub = self.connect().create_sender("topic://gone")
        r.close()   # detach with closed=true: JMS unsubscribe
        pub.send(Message(body="after-unsubscribe", durable=True))
        r = c.create_receiver("topic://gone", name="sub", options=DurableSubscription(), credit=10)
        self.assert_nothing(r, "a deleted subscription kept a message")
        pub.send(Message(body="new"))
        self.assertEqual(self.drain(r, 1), ["new"])

    def test_lookup_by_link_name_then_unsubscribe(self):
        # Qpid JMS's unsubscribe: a link with the subscription's name and no source gets the
        # subscription's source back; closing it deletes the subscription.
        c = self.connect_as("app7")
        c.create_receiver("topic://looked.up", name="mysub", options=DurableSubscription(), credit=1)
        c.close()
        c = self.connect_as("app7")
        r = c.create_receiver(None, name="mysub", credit=0)
        self.assertEqual(r.link.remote_source.address, "topic://looked.up")
        self.assertEqual(r.link.remote_source.durability, Terminus.DELIVERIES)
        r.close()
        pub = self.connect().create_sender("topic://looked.up")
        pub.send(Message(body="nobody subscribed"))
        with self.assertRaises(LinkDetached) as cm:
            c.create_receiver(None, name="mysub", credit=0)
        self.assertEqual(cm.exception.link.remote_condition.name, "amqp:not-found")
        # (On a new connection: the client does not detach its side of the refused link.)
        r = self.connect_as("app7").create_receiver("topic://looked.up", name="mysub",
                                                     options=DurableSubscription(), credit=10)
        self.assert_nothing(r, "the deleted subscription kept a message")

    def test_shared_durable_subscription_across_reconnect_and_restart(self):
        # Qpid JMS without a client id: the `global` capability, links "name|global", "name|global2".
        opts = lambda: [DurableSubscription(), Capabilities("shared", "global")]  # noqa: E731
        c1, c2 = self.connect(), self.connect()
        r1 = c1.create_receiver("topic://jobs", name="workers|global", options=opts(), credit=100)
        r2 = c2.create_receiver("topic://jobs", name="workers|global2", options=opts(), credit=100)
        pub = self.connect().create_sender("topic://jobs")
        for i in range(10):
            pub.send(Message(body=f"j{i}", durable=True))
        got = []
        deadline = time.time() + WAIT
        while len(got) < 10 and time.time() < deadline:
            for r in (r1, r2):
                try:
                    got.append(r.receive(timeout=0.2).body)
                    r.accept()
                except Timeout:
                    pass
        self.assertEqual(sorted(got), sorted(f"j{i}" for i in range(10)), "each message once, to one link")
        c1.close()
        c2.close()
        pub.send(Message(body="while-away", durable=True))
        pub.connection.close()
        self.restart()
        r = self.connect().create_receiver("topic://jobs", name="workers|global", options=opts(), credit=10)
        self.assertEqual(self.drain(r, 1), ["while-away"])

    def test_shared_container_scoped_links_compete(self):
        c = self.connect_as("app4")
        opts = lambda: [DurableSubscription(), Capabilities("shared")]  # noqa: E731
        r1 = c.create_receiver("topic://scoped", name="s", options=opts(), credit=100)
        r2 = c.create_receiver("topic://scoped", name="s|2", options=opts(), credit=100)
        pub = self.connect().create_sender("topic://scoped")
        for i in range(6):
            pub.send(Message(body=f"m{i}"))
        got = []
        deadline = time.time() + WAIT
        while len(got) < 6 and time.time() < deadline:
            for r in (r1, r2):
                try:
                    got.append(r.receive(timeout=0.2).body)
                    r.accept()
                except Timeout:
                    pass
        self.assertEqual(sorted(got), [f"m{i}" for i in range(6)])

    def test_shared_non_durable_subscription_goes_with_its_last_link(self):
        opts = lambda: [Capabilities("shared")]  # noqa: E731
        c1 = self.connect_as("app5")
        r1 = c1.create_receiver("topic://vol", name="v|volatile1", options=opts(), credit=10)
        r2 = c1.create_receiver("topic://vol", name="v|volatile2", options=opts(), credit=10)
        pub = self.connect().create_sender("topic://vol")
        pub.send(Message(body="one"))
        got = None
        for r in (r1, r2):
            try:
                got = r.receive(timeout=WAIT / 2).body
                r.accept()
                break
            except Timeout:
                pass
        self.assertEqual(got, "one")
        r1.close()
        pub.send(Message(body="two"))
        self.assertEqual(self.drain(r2, 1), ["two"], "the subscription lives while a link is left")
        r2.close()
        pub.send(Message(body="three"))
        r3 = c1.create_receiver("topic://vol", name="v|volatile1", options=opts(), credit=10)
        self.assert_nothing(r3, "the subscription should have gone with its last link")


class FilterTest(FeaturesTestCase):

    def test_selector_on_a_queue_leaves_the_others(self):
        c = self.connect()
        s = c.create_sender("q.sel")
        for i, color in enumerate(["red", "blue", "red", "green"]):
            s.send(Message(body=f"{color}{i}", properties={"color": color, "n": i}))
        r = c.create_receiver("q.sel", credit=10, options=Selector("color = 'red' AND n >= 0"))
        # The filter is echoed: it is in force.
        f = filters_of(r)
        self.assertEqual(f[symbol("selector")].descriptor, ulong(0x0000468C00000004))
        self.assertEqual(f[symbol("selector")].value, "color = 'red' AND n >= 0")
        self.assertEqual(self.drain(r, 2), ["red0", "red2"])
        self.assert_nothing(r)
        rest = self.connect().create_receiver("q.sel", credit=10)
        self.assertEqual(self.drain(rest, 2), ["blue1", "green3"])

    def test_selector_on_a_topic(self):
        c = self.connect()
        r = c.create_receiver("topic://t.sel", credit=10, options=Selector("JMSPriority > 5"))
        s = self.connect().create_sender("topic://t.sel")
        s.send(Message(body="low", priority=1))
        s.send(Message(body="high", priority=9))
        self.assertEqual(self.drain(r, 1), ["high"])
        self.assert_nothing(r)

    def test_invalid_selector_refuses_the_link(self):
        c = self.connect()
        with self.assertRaises(LinkDetached) as cm:
            c.create_receiver("q.badsel", options=Selector("color = = 'red'"))
        self.assertEqual(cm.exception.link.remote_condition.name, "amqp:invalid-field")
        c.create_sender("q.badsel").send(Message(body="still fine"))

    def test_no_local_on_a_topic(self):
        c = self.connect()
        r = c.create_receiver("topic://t.nl", credit=10, options=no_local())
        f = filters_of(r)
        self.assertIn(symbol("no-local"), f, "no-local echoed")
        c.create_sender("topic://t.nl").send(Message(body="mine"))
        self.connect().create_sender("topic://t.nl").send(Message(body="theirs"))
        self.assertEqual(self.drain(r, 1), ["theirs"])
        self.assert_nothing(r)

    def test_durable_subscription_with_a_selector(self):
        c = self.connect_as("app6")
        r = c.create_receiver("topic://t.dsel", name="d", credit=10,
                              options=[DurableSubscription(), Selector("kind = 'a'")])
        s = self.connect().create_sender("topic://t.dsel")
        s.send(Message(body="b1", properties={"kind": "b"}))
        s.send(Message(body="a1", properties={"kind": "a"}))
        self.assertEqual(self.drain(r, 1), ["a1"])
        self.assert_nothing(r)


class LinkTest(FeaturesTestCase):

    def test_same_container_and_link_name_steals_the_link(self):
        c1 = self.connect_as("thief-test")
        r1 = c1.create_receiver("q.steal", name="the-link", credit=10)
        c2 = self.connect_as("thief-test")
        r2 = c2.create_receiver("q.steal", name="the-link", credit=10)
        with self.assertRaises(LinkDetached) as cm:
            c1.wait(lambda: r1.link.state & Endpoint.REMOTE_CLOSED, msg="the stolen link's detach")
        self.assertEqual(cm.exception.link.remote_condition.name, "amqp:link:stolen")
        # The new link works; the old connection too.
        s2 = c2.create_sender("q.steal")
        s2.send(Message(body="to the new one"))
        self.assertEqual(self.drain(r2, 1), ["to the new one"])
        c1.create_sender("q.still").send(Message(body="ok"))
        # Another container may use the same link name.
        self.connect_as("someone-else").create_receiver("q.steal", name="the-link", credit=1)
        s2.send(Message(body="x"))
        self.assertEqual(r2.link.state & Endpoint.REMOTE_ACTIVE, Endpoint.REMOTE_ACTIVE)

    def test_stolen_within_one_connection(self):
        # Another session of the same connection attaches the name: the old link goes.
        c = self.connect_as("thief-2")
        r1 = c.create_receiver("q.steal2", name="named", credit=10)
        ssn = c.conn.session()
        ssn.open()
        r2 = ssn.receiver("named")
        r2.source.address = "q.steal2"
        r2.flow(10)
        r2.open()
        with self.assertRaises(LinkDetached) as cm:
            c.wait(lambda: r1.link.state & Endpoint.REMOTE_CLOSED, msg="the stolen link's detach")
        self.assertEqual(cm.exception.link.remote_condition.name, "amqp:link:stolen")
        c.wait(lambda: r2.state & Endpoint.REMOTE_ACTIVE, msg="the new link attached")
        s = c.create_sender("q.steal2")
        s.send(Message(body="for r2"))
        c.wait(lambda: r2.current is not None, msg="delivery on the new link")
        m = Message()
        m.decode(r2.recv(r2.current.pending))
        self.assertEqual(m.body, "for r2")

    def test_one_capability_alone_is_read(self):
        # AMQP's `multiple`: one symbol needs no array (a receiver of a bare name with `topic`).
        class One(ReceiverOption):
            def apply(self, receiver):
                receiver.source.capabilities.put_symbol(symbol("topic"))
        c = self.connect()
        r = c.create_receiver("single.cap", options=One(), credit=5)
        c.create_sender("topic://single.cap").send(Message(body="to the topic"))
        self.assertEqual(self.drain(r, 1), ["to the topic"])

    def test_undecodable_message_closes_with_decode_error(self):
        # Proton's C++ layer throws decoding it (application-properties that are a string), and
        # its dispatch swallows that: the session notices and closes the connection.
        c = self.connect()
        s = c.create_sender("q.garbage")
        c.wait(lambda: s.link.credit > 0, msg="credit")
        s.link.delivery("t1")
        s.link.stream(b"\x00\x53\x74\xa1\x03abc\x00\x53\x77\xa1\x01x")
        s.link.advance()
        with self.assertRaises(ConnectionClosed) as cm:
            c.wait(lambda: False, msg="the broker's close")
        self.assertEqual(cm.exception.connection.remote_condition.name, "amqp:decode-error")
        self.connect().create_sender("q.garbage").send(Message(body="others unaffected"))

    def test_offered_capabilities(self):
        c = self.connect()
        caps = set(c.conn.remote_offered_capabilities or [])
        for cap in ("ANONYMOUS-RELAY", "SHARED-SUBS", "DELAYED_DELIVERY"):
            self.assertIn(symbol(cap), caps)

    def test_delivery_delay(self):
        c = self.connect()
        r = c.create_receiver("q.delay", credit=10)
        s = c.create_sender("q.delay")
        sent = time.time()
        s.send(Message(body="later", annotations={symbol("x-opt-delivery-delay"): 1500}))
        s.send(Message(body="now"))
        self.assertEqual(self.drain(r, 1), ["now"])
        m = r.receive(timeout=WAIT)
        self.assertEqual(m.body, "later")
        self.assertGreaterEqual(time.time() - sent, 1.4, "delivered before its delay")
        r.accept()


class CreditTest(FeaturesTestCase):
    # A small queue memory limit: non-persistent sends beyond it are held (producer flow
    # control), and their credit is not given back until the queue drains.
    broker_config = {"broker": {"queue_memory_limit": 4096}, "amqp": {"link_credit": 10}}

    def test_credit_withheld_while_over_the_memory_limit_and_granted_again(self):
        c = self.connect()
        s = c.create_sender("q.full")
        link = s.link
        c.wait(lambda: link.credit > 0, msg="initial credit")
        body = "x" * 1000
        sent = []
        deadline = time.time() + WAIT
        # Send while there is credit; the broker takes the first few and then holds the rest.
        while time.time() < deadline:
            if link.credit > 0:
                sent.append(link.send(Message(body=f"{len(sent)}:{body}", durable=False)))
                continue
            try:
                c.wait(lambda: link.credit > 0, timeout=QUIET)
            except Timeout:
                break   # no credit for QUIET: withheld
        self.assertEqual(link.credit, 0, "credit should be withheld")
        unsettled = [d for d in sent if not d.settled]
        self.assertGreater(len(unsettled), 0, "the sends beyond the limit wait")
        self.assertLess(len(sent), 40, "withheld after a bounded number of sends")
        self.assertTrue(link.state & Endpoint.REMOTE_ACTIVE, "back-pressure without closing")
        # A consumer drains the queue: the held sends are accepted and credit comes back.
        r = self.connect().create_receiver("q.full", credit=100)
        got = []
        for _ in range(len(sent)):
            got.append(r.receive().body.split(":")[0])
            r.accept()
        self.assertEqual(got, [str(i) for i in range(len(sent))])
        c.wait(lambda: all(d.settled for d in sent) and link.credit > 0, msg="credit granted again")
        self.assertTrue(all(d.remote_state == Delivery.ACCEPTED for d in sent))
        # A blocking receiver writes its acceptances only while waited on: the last ones (of
        # messages that came in one batch) are written before the next send, or they would
        # keep the queue over its limit and that send held.
        rc = r.connection
        rc.wait(lambda: rc.conn.transport.pending() == 0, msg="the receiver's acceptances written")
        after = link.send(Message(body="after"))
        c.wait(lambda: after.settled, msg="a send after the queue drained")
        self.assertEqual(r.receive().body, "after")


if __name__ == "__main__":
    sbtest.main()
