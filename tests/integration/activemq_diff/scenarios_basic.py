# tests/integration/activemq_diff/scenarios_basic.py — plain queues and topics: the baseline the
# feature families build on (and the examples of README.md).

from harness import scenario


@scenario
def queue_order(ctx):
    """Five messages sent to a queue before anyone listens arrive in order, with their headers."""
    q = ctx.queue("order")
    p = ctx.client()
    for i in range(5):
        p.send(q, f"m{i}", headers={"color": "red" if i % 2 else "blue"})
    c = ctx.client()
    c.subscribe(q, "s1")
    got = c.receive(5)
    return {"messages": [ctx.msg(m) for m in got], "more": ctx.bodies(c.quiet())}


@scenario
def topic_fan_out(ctx):
    """Every topic subscriber gets every message published after it subscribed, in order; one
    that subscribes later gets only the later ones."""
    t = ctx.topic("news")
    a, b = ctx.client(), ctx.client()
    a.subscribe(t, "a")
    b.subscribe(t, "b")
    p = ctx.client()
    for i in range(3):
        p.send(t, f"n{i}")
    late = ctx.client()
    late.subscribe(t, "late")
    p.send(t, "n3")
    return {"a": [ctx.msg(m) for m in a.receive(4)],
            "b": ctx.bodies(b.receive(4)),
            "late": ctx.bodies(late.receive(1)) + ctx.bodies(late.quiet())}


@scenario
def client_individual_redelivery(ctx):
    """ack:client-individual, prefetch 3: the consumer gets m0..m2 and nothing more, acks m0 and
    m2 but not m1 (each ack lets one more in: m3, m4), then drops its connection; the next
    consumer gets m1, m3, m4, all marked redelivered (they had been dispatched), nothing else."""
    q = ctx.queue("ci")
    p = ctx.client()
    for i in range(5):
        p.send(q, f"m{i}")
    c1 = ctx.client()
    c1.subscribe(q, "s1", ack="client-individual", headers={"activemq.prefetchSize": "3"})
    first = c1.receive(3)
    first_extra = c1.quiet()
    for m in first:
        if m.body != "m1":
            c1.ack(m)
    c1.sync()
    # The two the acks let in are awaited before the drop: they are dispatched (so redelivered
    # later) on both brokers, not only when the broker dispatched them before the drop.
    let_in = c1.receive(2)
    c1.drop()
    c2 = ctx.client()
    c2.subscribe(q, "s2", ack="client-individual")
    second = c2.receive(3)
    for m in second:
        c2.ack(m)
    return {"first": [ctx.msg(m, ["redelivered", "subscription"]) for m in first],
            "beyond_prefetch": ctx.bodies(first_extra),
            "let_in": ctx.bodies(let_in),
            "second": [ctx.msg(m, ["redelivered", "subscription"]) for m in second],
            "more": ctx.bodies(c2.quiet())}


@scenario
def queue_competing_consumers_prefetch_1(ctx):
    """Two consumers with prefetch 1 in client ack mode: each holds one unacked message, the
    third waits until one of them acks."""
    q = ctx.queue("compete")
    a, b = ctx.client(), ctx.client()
    a.subscribe(q, "a", ack="client-individual", headers={"activemq.prefetchSize": "1"})
    b.subscribe(q, "b", ack="client-individual", headers={"activemq.prefetchSize": "1"})
    p = ctx.client()
    for i in range(3):
        p.send(q, f"m{i}")
    got_a, got_b = a.receive(1), b.receive(1)
    held = sorted(ctx.bodies(got_a + got_b))
    extra = ctx.bodies(a.quiet(0.3) + b.quiet(0.3))
    a.ack(got_a[0])
    after = ctx.bodies(a.receive(1))
    return {"held": held, "before_ack": extra, "after_ack_to_a": after}


@scenario
def queue_priority_order(ctx):
    """Messages of priorities 1, 9, 4 sent before a consumer subscribes: the order it gets them."""
    q = ctx.queue("prio")
    p = ctx.client()
    for i, prio in enumerate([1, 9, 4]):
        p.send(q, f"m{i}", headers={"priority": str(prio)})
    c = ctx.client()
    c.subscribe(q, "c")
    return ctx.bodies(c.receive(3))
