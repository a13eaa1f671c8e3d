# tests/integration/activemq_diff/scenarios_browse.py — queue browsing over STOMP
# (SUBSCRIBE browser:true): every message once, nothing consumed, then an end marker.

from harness import Difference, scenario


def browse(ctx, c, q, sub, count):
    c.subscribe(q, sub, headers={"browser": "true"})
    got = c.receive(count + 1)
    return [ctx.msg(m, ["destination", "subscription", "browser", "color"]) for m in got]


@scenario
def browse_queue_then_consume(ctx):
    """A browser sees the three messages and the end marker; a consumer then still gets all."""
    q = ctx.queue("b")
    p = ctx.client()
    for i in range(3):
        p.send(q, f"m{i}", headers={"color": str(i)})
    b = ctx.client()
    seen = browse(ctx, b, q, "br", 3)
    c = ctx.client()
    c.subscribe(q, "c")
    return {"browsed": seen, "browser_more": ctx.bodies(b.quiet(0.2)), "consumed": ctx.bodies(c.receive(3))}


@scenario
def browse_empty_queue(ctx):
    """Browsing an empty queue: only the end marker."""
    q = ctx.queue("empty")
    b = ctx.client()
    return browse(ctx, b, q, "br", 0)


@scenario
def browse_does_not_see_later_messages(ctx):
    """After the end marker, messages sent to the queue are not sent to the browser."""
    q = ctx.queue("later")
    p = ctx.client()
    p.send(q, "before")
    b = ctx.client()
    seen = browse(ctx, b, q, "br", 1)
    p.send(q, "after")
    return {"browsed": seen, "after": ctx.bodies(b.quiet())}


@scenario(difference=Difference(
    reason="Switchboard's browser sees what is queued (a snapshot of the queue when the browse "
           "arrives), not messages in flight to consumers; ActiveMQ's sees those too.",
    activemq={"browsed": ["m0", "m1", "m2", ""], "end": [None, None, None, "end"]},
    switchboard={"browsed": ["m1", "m2", ""], "end": [None, None, "end"]}))
def browse_in_flight_messages(ctx):
    """A consumer holds m0 unacked (prefetch 1, client ack) while a browser looks."""
    q = ctx.queue("inflight")
    p = ctx.client()
    for i in range(3):
        p.send(q, f"m{i}")
    c = ctx.client()
    c.subscribe(q, "c", ack="client-individual", headers={"activemq.prefetchSize": "1"})
    held = c.receive(1)
    b = ctx.client()
    seen = browse(ctx, b, q, "br", 3)
    return {"held": ctx.bodies(held), "browsed": [s["body"] for s in seen if s],
            "end": [s["headers"]["browser"] for s in seen if s]}


@scenario
def browse_client_ack_mode(ctx):
    """A browser in ack:client mode gets the same frames."""
    q = ctx.queue("cack")
    p = ctx.client()
    p.send(q, "x")
    b = ctx.client()
    b.subscribe(q, "br", ack="client", headers={"browser": "true"})
    got = b.receive(2)
    return [ctx.msg(m, ["destination", "subscription", "browser"]) for m in got]


# Queues named *.prio.* are priority-ordered on ActiveMQ (as Switchboard's queues always are).
ACTIVEMQ_POLICY_ENTRIES = """
<policyEntry queue="*.prio.>" prioritizedMessages="true"/>
"""


@scenario
def browse_priority_order(ctx):
    """Messages of different priorities on a priority-ordered queue: a browser sees them in the
    order a consumer gets them."""
    q = ctx.queue("prio.q")
    p = ctx.client()
    for i, prio in enumerate([1, 9, 4]):
        p.send(q, f"m{i}", headers={"priority": str(prio)})
    b = ctx.client()
    seen = browse(ctx, b, q, "br", 3)
    c = ctx.client()
    c.subscribe(q, "c")
    return {"browsed": [s["body"] for s in seen if s], "consumed": ctx.bodies(c.receive(3))}
