# tests/integration/activemq_diff/scenarios_prefetch.py — prefetch per subscription
# (activemq.prefetchSize) over STOMP.

from harness import Difference, scenario


@scenario
def prefetch_window_client_individual(ctx):
    """prefetch 2: two messages in flight at most; each ack lets one more through."""
    q = ctx.queue("pf")
    p = ctx.client()
    for i in range(5):
        p.send(q, f"m{i}")
    c = ctx.client()
    c.subscribe(q, "c", ack="client-individual", headers={"activemq.prefetchSize": "2"})
    first = c.receive(2)
    extra = c.quiet()
    c.ack(first[0])
    after_one = c.receive(1)
    return {"first": ctx.bodies(first), "extra": ctx.bodies(extra), "after_one_ack": ctx.bodies(after_one)}


@scenario
def prefetch_client_mode_cumulative(ctx):
    """ack:client with prefetch 3: a cumulative ack of the third frees three slots."""
    q = ctx.queue("cum")
    p = ctx.client()
    for i in range(7):
        p.send(q, f"m{i}")
    c = ctx.client()
    c.subscribe(q, "c", ack="client", headers={"activemq.prefetchSize": "3"})
    first = c.receive(3)
    extra = c.quiet()
    c.ack(first[-1])
    second = c.receive(3)
    return {"first": ctx.bodies(first), "extra": ctx.bodies(extra), "second": ctx.bodies(second),
            "more": ctx.bodies(c.quiet())}


PREFETCH_ZERO = Difference(
    reason="activemq.prefetchSize:0 is ActiveMQ's pull consumer and STOMP has no pull: ActiveMQ "
           "accepts the subscription and never dispatches to it; Switchboard refuses it with an "
           "ERROR so that the client learns it at once.",
    activemq={"subscribe": "receipt", "errors": []},
    switchboard={"subscribe": "ERROR", "errors": ["ERROR"]})


@scenario(difference=PREFETCH_ZERO)
def prefetch_zero(ctx):
    """activemq.prefetchSize:0 on a queue with messages: nothing is delivered either way."""
    q = ctx.queue("zero")
    p = ctx.client()
    for i in range(2):
        p.send(q, f"m{i}")
    c = ctx.client()
    outcome = c.try_subscribe(q, "c", ack="client-individual", headers={"activemq.prefetchSize": "0"})
    return {"subscribe": outcome, "got": ctx.bodies(c.quiet()), "errors": [ctx.error(e) for e in c.error_frames()]}


@scenario
def prefetch_spreads_queue_between_consumers(ctx):
    """Two consumers, prefetch 1 each, subscribed before the sends: alternate deliveries while
    neither acks (each holds one), the rest wait."""
    q = ctx.queue("spread")
    a, b = ctx.client(), ctx.client()
    a.subscribe(q, "a", ack="client-individual", headers={"activemq.prefetchSize": "1"})
    b.subscribe(q, "b", ack="client-individual", headers={"activemq.prefetchSize": "1"})
    p = ctx.client()
    for i in range(4):
        p.send(q, f"m{i}")
    ga, gb = a.receive(1), b.receive(1)
    rest = a.quiet(0.3) + b.quiet(0.3)
    return {"one_each": sorted(ctx.bodies(ga + gb)), "rest": ctx.bodies(rest)}


@scenario
def prefetch_topic_subscriber_client_ack(ctx):
    """A topic subscriber with prefetch 1 in client-individual mode: the later messages wait
    for its acks (none lost, non-persistent sends, small count)."""
    t = ctx.topic("pt")
    c = ctx.client()
    c.subscribe(t, "c", ack="client-individual", headers={"activemq.prefetchSize": "1"})
    p = ctx.client()
    for i in range(3):
        p.send(t, f"m{i}")
    got = []
    first = c.receive(1)
    extra = c.quiet(0.3)
    got += first
    for _ in range(2):
        if got:
            c.ack(got[-1])
        got += c.receive(1)
    return {"first": ctx.bodies(first), "extra_before_ack": ctx.bodies(extra), "all": ctx.bodies(got)}


@scenario(difference=PREFETCH_ZERO)
def prefetch_zero_topic(ctx):
    """A topic subscriber with activemq.prefetchSize:0 gets nothing; another subscriber gets
    everything."""
    t = ctx.topic("zt")
    z, n = ctx.client(), ctx.client()
    outcome = z.try_subscribe(t, "z", headers={"activemq.prefetchSize": "0"})
    n.subscribe(t, "n")
    p = ctx.client()
    for i in range(3):
        p.send(t, f"m{i}")
    return {"subscribe": outcome, "normal": ctx.bodies(n.receive(3)), "zero": ctx.bodies(z.quiet()),
            "errors": [ctx.error(e) for e in z.error_frames()]}
