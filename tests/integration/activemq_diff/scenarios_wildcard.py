# tests/integration/activemq_diff/scenarios_wildcard.py — wildcard consumers on queues
# (/queue/a.> and /queue/a.*), as on topics: '.' separates, '*' one segment, '>' the rest.

from harness import scenario


@scenario
def wildcard_queue_gt(ctx):
    """A consumer of /queue/orders.> gets the messages of orders.eu, orders.eu.fr and orders
    itself ('>' matches zero or more levels), each with its real destination, not other.x's."""
    c = ctx.client()
    c.subscribe(ctx.queue("orders.>"), "w")
    p = ctx.client()
    p.send(ctx.queue("orders.eu"), "eu")
    p.send(ctx.queue("other.x"), "other")
    p.send(ctx.queue("orders"), "bare")
    p.send(ctx.queue("orders.eu.fr"), "fr")
    got = c.receive(3)
    # Sorted by body, without the ids: they are numbered in arrival order, which is not defined
    # across queues (it differed between the brokers under load).
    seen = [{k: v for k, v in ctx.msg(m, ["destination", "subscription"]).items() if k != "id"} for m in got]
    return {"got": sorted(seen, key=lambda m: m["body"]),
            "more": ctx.bodies(c.quiet())}


@scenario
def wildcard_queue_star(ctx):
    """/queue/orders.* matches one segment only."""
    c = ctx.client()
    c.subscribe(ctx.queue("orders.*"), "w")
    p = ctx.client()
    p.send(ctx.queue("orders.eu.fr"), "deep")
    p.send(ctx.queue("orders.us"), "us")
    got = c.receive(1)
    return {"got": [ctx.msg(m, ["destination"]) for m in got], "more": ctx.bodies(c.quiet())}


@scenario
def wildcard_queue_existing_messages(ctx):
    """Messages already waiting in matching queues go to a wildcard consumer that comes later;
    per queue, in order. (ActiveMQ 5.17 dispatches a queue's waiting messages to a new wildcard
    consumer only at the queue's next send, at times: each queue gets one more message after the
    subscription, so that both brokers have something to act on.)"""
    p = ctx.client()
    for i in range(3):
        p.send(ctx.queue("jobs.a"), f"a{i}")
        p.send(ctx.queue("jobs.b"), f"b{i}")
    c = ctx.client()
    c.subscribe(ctx.queue("jobs.>"), "w")
    p.send(ctx.queue("jobs.a"), "a3")
    p.send(ctx.queue("jobs.b"), "b3")
    got = c.receive(8)
    bodies = ctx.bodies(got)
    return {"a": [b for b in bodies if b.startswith("a")], "b": [b for b in bodies if b.startswith("b")],
            "more": ctx.bodies(c.quiet())}


@scenario
def wildcard_queue_consumes(ctx):
    """What a wildcard consumer acks is gone: a later direct consumer of the queue gets nothing
    but what was sent after."""
    c = ctx.client()
    c.subscribe(ctx.queue("eat.>"), "w", ack="client-individual")
    p = ctx.client()
    p.send(ctx.queue("eat.one"), "x")
    got = c.receive(1)
    for m in got:
        c.ack(m, receipt=True)
    c.disconnect()
    p.send(ctx.queue("eat.one"), "y")
    d = ctx.client()
    d.subscribe(ctx.queue("eat.one"), "d")
    return {"wild": ctx.bodies(got), "direct": ctx.bodies(d.receive(1)) + ctx.bodies(d.quiet())}


@scenario
def wildcard_queue_unacked_back_to_its_queue(ctx):
    """A wildcard consumer drops its connection with a message unacked: it goes back to the
    queue it came from, redelivered."""
    c = ctx.client()
    c.subscribe(ctx.queue("back.>"), "w", ack="client-individual")
    p = ctx.client()
    p.send(ctx.queue("back.one"), "x")
    got = c.receive(1)
    c.drop()
    d = ctx.client()
    d.subscribe(ctx.queue("back.one"), "d")
    return {"wild": ctx.bodies(got), "direct": [ctx.msg(m, ["destination", "redelivered"]) for m in d.receive(1)]}


@scenario
def wildcard_queue_shares_with_direct_consumer(ctx):
    """A wildcard consumer and a direct consumer of one queue compete: each message goes to one
    of them (prefetch 1, client acks: one each while neither acks)."""
    w, d = ctx.client(), ctx.client()
    w.subscribe(ctx.queue("share.>"), "w", ack="client-individual", headers={"activemq.prefetchSize": "1"})
    d.subscribe(ctx.queue("share.q"), "d", ack="client-individual", headers={"activemq.prefetchSize": "1"})
    p = ctx.client()
    for i in range(3):
        p.send(ctx.queue("share.q"), f"m{i}")
    gw, gd = w.receive(1), d.receive(1)
    rest = w.quiet(0.3) + d.quiet(0.3)
    return {"one_each": sorted(ctx.bodies(gw + gd)), "rest": ctx.bodies(rest)}
