# tests/integration/activemq_diff/scenarios_groups.py — consumer choice on queues over STOMP:
# message groups (JMSXGroupID / JMSXGroupSeq), exclusive consumers (activemq.exclusive) and
# consumer priority (activemq.priority), compared with ActiveMQ's Queue dispatch.
#
# Consumers subscribe (receipted) before the sends, in a fixed order, so which consumer gets
# which group is the same program on both brokers: ActiveMQ orders consumers by priority, then by
# the groups they own (fewer first), moving the one that took a message behind its equals.

from harness import scenario, Difference


def grouped(p, q, items):
    """Sends (group, seq, body) items; seq 0 = no JMSXGroupSeq header."""
    for group, seq, body in items:
        headers = {"JMSXGroupID": group}
        if seq:
            headers["JMSXGroupSeq"] = str(seq)
        p.send(q, body, headers=headers)


def consumers(ctx, q, n, ack="client-individual", headers=None):
    out = []
    for i in range(n):
        c = ctx.client()
        c.subscribe(q, f"c{i + 1}", ack=ack, headers=dict(headers or {}))
        out.append(c)
    return out


@scenario
def groups_two_consumers(ctx):
    """Four groups interleaved over two consumers: each group sticks to one consumer, new groups
    going to the consumer owning fewer."""
    q = ctx.queue("g2")
    c1, c2 = consumers(ctx, q, 2)
    p = ctx.client()
    grouped(p, q, [(g, 0, f"{g}{i}") for i, g in enumerate("ABCDABCDAB")])
    got1, got2 = c1.receive(5), c2.receive(5)
    return {"c1": ctx.bodies(got1), "c2": ctx.bodies(got2),
            "more": ctx.bodies(c1.quiet() + c2.quiet())}


@scenario
def groups_close_with_seq_minus_one(ctx):
    """JMSXGroupSeq -1 ends the group: that message still goes to the owner, the next message of
    the same id opens a new group with the next consumer in turn."""
    q = ctx.queue("close")
    c1, c2 = consumers(ctx, q, 2)
    p = ctx.client()
    grouped(p, q, [("A", 0, "a1"), ("A", 0, "a2"), ("A", -1, "a3"), ("A", 0, "a4")])
    got1, got2 = c1.receive(3), c2.receive(1)
    return {"c1": ctx.bodies(got1), "c2": ctx.bodies(got2),
            "more": ctx.bodies(c1.quiet() + c2.quiet())}


@scenario
def groups_close_of_unowned_group(ctx):
    """A -1 for a group nobody owns assigns it like any first message (it stays open)."""
    q = ctx.queue("unowned")
    c1, c2 = consumers(ctx, q, 2)
    p = ctx.client()
    grouped(p, q, [("A", -1, "a1"), ("A", 0, "a2"), ("B", 0, "b1")])
    got1, got2 = c1.receive(2), c2.receive(1)
    return {"c1": ctx.bodies(got1), "c2": ctx.bodies(got2),
            "more": ctx.bodies(c1.quiet() + c2.quiet())}


@scenario
def groups_seq_one_reopens(ctx):
    """JMSXGroupSeq 1 opens the group anew with whichever consumer is first in turn."""
    q = ctx.queue("seq1")
    c1, c2 = consumers(ctx, q, 2)
    p = ctx.client()
    grouped(p, q, [("A", 1, "a1"), ("A", 2, "a2"), ("A", 1, "a1'"), ("A", 2, "a2'")])
    got1, got2 = c1.receive(2), c2.receive(2)
    return {"c1": ctx.bodies(got1), "c2": ctx.bodies(got2),
            "more": ctx.bodies(c1.quiet() + c2.quiet())}


@scenario
def groups_owner_disconnects(ctx):
    """The owner leaves with unacknowledged messages of its group: they are redelivered to the
    other consumer, which owns the group from then on."""
    q = ctx.queue("leave")
    c1, c2 = consumers(ctx, q, 2)
    p = ctx.client()
    grouped(p, q, [("A", 0, "a1"), ("B", 0, "b1"), ("A", 0, "a2")])
    got1, got2 = c1.receive(2), c2.receive(1)
    c1.ack(got1[0])
    c1.sync()
    c1.disconnect()
    moved = c2.receive(1)
    grouped(p, q, [("A", 0, "a3")])
    later = c2.receive(1)
    return {"c1": ctx.bodies(got1), "c2": ctx.bodies(got2),
            "moved": [ctx.msg(m, headers=["redelivered"]) for m in moved],
            "later": [ctx.msg(m, headers=["redelivered"]) for m in later],
            "more": ctx.bodies(c2.quiet())}


@scenario
def groups_owner_unsubscribes(ctx):
    """UNSUBSCRIBE of the owner: as its leaving, its groups and unacked messages move."""
    q = ctx.queue("unsub")
    c1, c2 = consumers(ctx, q, 2)
    p = ctx.client()
    grouped(p, q, [("A", 0, "a1"), ("B", 0, "b1"), ("A", 0, "a2")])
    got1, got2 = c1.receive(2), c2.receive(1)
    c1.unsubscribe("c1")
    moved = c2.receive(2)
    grouped(p, q, [("A", 0, "a3"), ("B", 0, "b2")])
    later = c2.receive(2)
    return {"c1": ctx.bodies(got1), "c2": ctx.bodies(got2), "moved": ctx.bodies(moved),
            "later": ctx.bodies(later), "more": ctx.bodies(c1.quiet() + c2.quiet())}


@scenario
def groups_full_owner_waits(ctx):
    """The owner (prefetch 1) holds a group's message unacked: the group's next message waits
    for it while another group's message overtakes it to the other consumer."""
    q = ctx.queue("full")
    c1, c2 = consumers(ctx, q, 2, headers={"activemq.prefetchSize": "1"})
    p = ctx.client()
    grouped(p, q, [("A", 0, "a1"), ("A", 0, "a2"), ("B", 0, "b1")])
    first1, first2 = c1.receive(1), c2.receive(1)
    waiting = c1.quiet(0.3) + c2.quiet(0.3)
    c1.ack(first1[0])
    after = c1.receive(1)
    return {"c1": ctx.bodies(first1), "c2": ctx.bodies(first2), "waiting": ctx.bodies(waiting),
            "after_ack": ctx.bodies(after)}


@scenario
def groups_mixed_with_ungrouped(ctx):
    """Ungrouped messages among grouped ones: the consumer owning fewer groups ranks first, so
    it takes the ungrouped ones while the other holds the group."""
    q = ctx.queue("mixed")
    c1, c2 = consumers(ctx, q, 2)
    p = ctx.client()
    p.send(q, "p0")
    grouped(p, q, [("A", 0, "a1")])
    for i in range(1, 4):
        p.send(q, f"p{i}")
    grouped(p, q, [("A", 0, "a2")])
    got1 = c1.receive(1) + c1.quiet(0.3)
    got2 = c2.quiet(0.3)
    return {"c1": sorted(ctx.bodies(got1)), "c2": sorted(ctx.bodies(got2)),
            "c1_order": ctx.bodies(got1), "c2_order": ctx.bodies(got2)}


@scenario(difference=Difference(
    reason="ActiveMQ's STOMP MESSAGE carries none of the JMSX group headers (its frame translator "
           "drops the group id and sequence); Switchboard writes JMSXGroupID and JMSXGroupSeq as "
           "sent, and JMSXGroupFirstForConsumer:true on the message that assigned the group, so a "
           "STOMP consumer can see them as a JMS one does",
    activemq={"headers": [[None, None, None], [None, None, None], [None, None, None]]},
    switchboard={"headers": [["A", "0", "true"], ["A", "2", None], ["A", "-1", None]]}))
def groups_headers_on_message(ctx):
    """The group headers a STOMP consumer sees on grouped messages."""
    q = ctx.queue("hdr")
    (c1,) = consumers(ctx, q, 1)
    p = ctx.client()
    grouped(p, q, [("A", 0, "a1"), ("A", 2, "a2"), ("A", -1, "a3")])
    got = c1.receive(3)
    names = ["JMSXGroupID", "JMSXGroupSeq", "JMSXGroupFirstForConsumer"]
    return {"bodies": ctx.bodies(got),
            "headers": [[m.headers.get(n) for n in names] for m in got]}


@scenario
def exclusive_takes_all(ctx):
    """The first exclusive consumer gets every message; a normal one and a later exclusive one
    get none."""
    q = ctx.queue("excl")
    normal = ctx.client()
    normal.subscribe(q, "n", ack="client-individual")
    x1, x2 = consumers(ctx, q, 2, headers={"activemq.exclusive": "true"})
    p = ctx.client()
    for i in range(4):
        p.send(q, f"m{i}")
    got = x1.receive(4)
    return {"x1": ctx.bodies(got), "others": ctx.bodies(normal.quiet() + x2.quiet())}


@scenario
def exclusive_failover_to_exclusive(ctx):
    """The exclusive consumer leaves with unacked messages: the next exclusive consumer gets
    them (redelivered) and what follows; the normal consumer still nothing."""
    q = ctx.queue("xfail")
    normal = ctx.client()
    normal.subscribe(q, "n", ack="client-individual")
    x1, x2 = consumers(ctx, q, 2, headers={"activemq.exclusive": "true"})
    p = ctx.client()
    for i in range(4):
        p.send(q, f"m{i}")
    got = x1.receive(4)
    x1.ack(got[0])
    x1.sync()
    x1.disconnect()
    moved = x2.receive(3)
    p.send(q, "m4")
    later = x2.receive(1)
    return {"x1": ctx.bodies(got), "moved": [ctx.msg(m, headers=["redelivered"]) for m in moved],
            "later": ctx.bodies(later), "normal": ctx.bodies(normal.quiet())}


@scenario
def exclusive_failover_to_normal(ctx):
    """No exclusive consumer left: the normal consumers share the queue again (round robin)."""
    q = ctx.queue("xnorm")
    n1, n2 = consumers(ctx, q, 2)
    x = ctx.client()
    x.subscribe(q, "x", ack="client-individual", headers={"activemq.exclusive": "true"})
    p = ctx.client()
    p.send(q, "m0")
    got = x.receive(1)
    x.unsubscribe("x")
    moved = n1.receive(1)
    for i in range(1, 5):
        p.send(q, f"m{i}")
    r1, r2 = n1.receive(2), n2.receive(2)
    return {"x": ctx.bodies(got), "moved": ctx.bodies(moved),
            "n1": ctx.bodies(r1), "n2": ctx.bodies(r2), "more": ctx.bodies(n1.quiet() + n2.quiet())}


@scenario
def exclusive_higher_priority_takes_over(ctx):
    """A later exclusive consumer of higher priority becomes the exclusive one; a later one of
    lower priority does not."""
    q = ctx.queue("xprio")
    x1 = ctx.client()
    x1.subscribe(q, "x1", headers={"activemq.exclusive": "true"})
    p = ctx.client()
    p.send(q, "m0")
    first = x1.receive(1)
    x2, x3 = ctx.client(), ctx.client()
    x2.subscribe(q, "x2", headers={"activemq.exclusive": "true", "activemq.priority": "3"})
    x3.subscribe(q, "x3", headers={"activemq.exclusive": "true", "activemq.priority": "1"})
    p.send(q, "m1")
    p.send(q, "m2")
    got2 = x2.receive(2)
    return {"x1": ctx.bodies(first), "x2": ctx.bodies(got2), "others": ctx.bodies(x1.quiet() + x3.quiet())}


@scenario
def exclusive_full_holds_queue(ctx):
    """An exclusive consumer with prefetch 1 holding a message: nothing goes to the normal one;
    its ack lets the next through."""
    q = ctx.queue("xfull")
    x = ctx.client()
    x.subscribe(q, "x", ack="client-individual",
                headers={"activemq.exclusive": "true", "activemq.prefetchSize": "1"})
    normal = ctx.client()
    normal.subscribe(q, "n", ack="client-individual")
    p = ctx.client()
    p.send(q, "m0")
    p.send(q, "m1")
    first = x.receive(1)
    held = normal.quiet(0.3) + x.quiet(0.3)
    x.ack(first[0])
    after = x.receive(1)
    return {"first": ctx.bodies(first), "held": ctx.bodies(held), "after_ack": ctx.bodies(after)}


@scenario
def priority_limited_prefetch(ctx):
    """Consumers of priority 5 (two) and 1, prefetch 2 each: the high ones take turns until
    full, the low one gets the rest; an ack to a high one brings the next message there."""
    q = ctx.queue("prio")
    low = ctx.client()
    low.subscribe(q, "low", ack="client-individual",
                  headers={"activemq.priority": "1", "activemq.prefetchSize": "2"})
    h1, h2 = ctx.client(), ctx.client()
    for name, c in (("h1", h1), ("h2", h2)):
        c.subscribe(q, name, ack="client-individual",
                    headers={"activemq.priority": "5", "activemq.prefetchSize": "2"})
    p = ctx.client()
    for i in range(7):
        p.send(q, f"m{i}")
    g1, g2, gl = h1.receive(2), h2.receive(2), low.receive(2)
    h2.ack(g2[0])
    after = h2.receive(1)
    return {"h1": ctx.bodies(g1), "h2": ctx.bodies(g2), "low": ctx.bodies(gl),
            "h2_after_ack": ctx.bodies(after), "more": ctx.bodies(h1.quiet() + low.quiet())}


@scenario
def priority_highest_takes_all(ctx):
    """With the default prefetch the highest-priority consumer takes everything, whichever
    subscribed first."""
    q = ctx.queue("prioall")
    low, high = ctx.client(), ctx.client()
    low.subscribe(q, "low", headers={"activemq.priority": "2"})
    high.subscribe(q, "high", headers={"activemq.priority": "9"})
    p = ctx.client()
    for i in range(5):
        p.send(q, f"m{i}")
    got = high.receive(5)
    return {"high": ctx.bodies(got), "low": ctx.bodies(low.quiet())}


@scenario
def priority_invalid_ignored(ctx):
    """An activemq.priority that is not a byte is ignored: the subscription works at the
    default priority, sharing the queue with a default consumer."""
    q = ctx.queue("priobad")
    a = ctx.client()
    status = a.try_subscribe(q, "a", headers={"activemq.priority": "high"})
    b = ctx.client()
    b.subscribe(q, "b")
    p = ctx.client()
    for i in range(4):
        p.send(q, f"m{i}")
    ga, gb = a.receive(2), b.receive(2)
    return {"status": status, "a": ctx.bodies(ga), "b": ctx.bodies(gb),
            "more": ctx.bodies(a.quiet() + b.quiet())}


@scenario
def groups_with_priority_consumers(ctx):
    """Groups across consumers of different priority: the high one (prefetch 1) takes new groups
    while it has room; when it is full a new group goes to the low one and stays there."""
    q = ctx.queue("gprio")
    low, high = ctx.client(), ctx.client()
    low.subscribe(q, "low", ack="client-individual", headers={"activemq.priority": "1"})
    high.subscribe(q, "high", ack="client-individual",
                   headers={"activemq.priority": "5", "activemq.prefetchSize": "1"})
    p = ctx.client()
    grouped(p, q, [("A", 0, "a1"), ("B", 0, "b1"), ("A", 0, "a2"), ("B", 0, "b2")])
    gh = high.receive(1)
    gl = low.receive(2)
    high.ack(gh[0])
    gh2 = high.receive(1)
    return {"high": ctx.bodies(gh), "low": ctx.bodies(gl), "high_after_ack": ctx.bodies(gh2),
            "more": ctx.bodies(high.quiet() + low.quiet())}
