# tests/integration/activemq_diff/scenarios_scheduling.py — scheduled and delayed delivery
# (AMQ_SCHEDULED_*), virtual topics, composite destinations and dead-letter policies, side by
# side with ActiveMQ (schedulerSupport on in the harness's ActiveMQ, the default on Switchboard).

import time

from harness import scenario

# Queues named <tag>.dlqind.* have individual dead-letter queues DLQ.<queue> on both brokers;
# non-persistent messages are not dead-lettered there (ActiveMQ's processNonPersistent default).
ACTIVEMQ_POLICY_ENTRIES = """
<policyEntry queue="*.dlqind.>">
  <deadLetterStrategy>
    <individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"/>
  </deadLetterStrategy>
</policyEntry>
"""

# ActiveMQ's STOMP NACK is a poison ack (straight to the DLQ); Switchboard's counts a redelivery,
# so this family's Switchboard dead-letters at the first NACK.
SWITCHBOARD_CONFIG = {
    "broker": {
        "max_redeliveries": 0,
        "dead_letter_policy": {
            "rules": [{"pattern": "*.dlqind.>", "strategy": "per_destination", "prefix": "DLQ.",
                       "non_persistent": False}],
        },
    },
}

HEADERS = ["destination", "persistent", "AMQ_SCHEDULED_DELAY", "AMQ_SCHEDULED_PERIOD",
           "AMQ_SCHEDULED_REPEAT", "original-destination"]


def has(frame, header):
    return header in frame.headers


@scenario
def delay_order(ctx):
    """Messages with delays 1500, 500 and 1000 ms and one without: the undelayed one first, then
    the others in the order of their times."""
    q = ctx.queue("delay.order")
    c = ctx.client()
    c.subscribe(q, "s")
    p = ctx.client()
    for body, delay in [("d1500", 1500), ("d500", 500), ("d1000", 1000)]:
        p.send(q, body, headers={"AMQ_SCHEDULED_DELAY": str(delay)})
    p.send(q, "now")
    return ctx.bodies(c.receive(4)) + ctx.bodies(c.quiet())


@scenario
def delay_holds_back(ctx):
    """A message delayed by 2 s is not there after half a second; then it arrives without the
    scheduling properties and with a scheduledJobId."""
    q = ctx.queue("delay.hold")
    c = ctx.client()
    c.subscribe(q, "s")
    p = ctx.client()
    p.send(q, "later", headers={"AMQ_SCHEDULED_DELAY": "2000", "persistent": "true", "k": "v"})
    early = ctx.bodies(c.quiet())
    got = c.receive(1)
    return {"early": early, "later": [ctx.msg(m, HEADERS + ["k"]) for m in got],
            "job_id": [has(m, "scheduledJobId") for m in got]}


@scenario
def repeat_count(ctx):
    """Delay 200, period 300, repeat 2: three copies, each with a message id of its own, then
    nothing more."""
    q = ctx.queue("repeat")
    c = ctx.client()
    c.subscribe(q, "s")
    p = ctx.client()
    p.send(q, "tick", headers={"AMQ_SCHEDULED_DELAY": "200", "AMQ_SCHEDULED_PERIOD": "300",
                               "AMQ_SCHEDULED_REPEAT": "2"})
    got = c.receive(3)
    return {"copies": [ctx.msg(m, HEADERS) for m in got], "more": ctx.bodies(c.quiet(1.0))}


@scenario
def period_without_delay(ctx):
    """A period without a delay or repeat: one delivery, a period later."""
    q = ctx.queue("period")
    c = ctx.client()
    c.subscribe(q, "s")
    p = ctx.client()
    p.send(q, "p", headers={"AMQ_SCHEDULED_PERIOD": "700"})
    early = ctx.bodies(c.pending())
    return {"early": early, "got": ctx.bodies(c.receive(1)), "more": ctx.bodies(c.quiet(1.0))}


@scenario
def repeat_without_schedule(ctx):
    """AMQ_SCHEDULED_REPEAT alone schedules nothing: delivered at once, the property kept."""
    q = ctx.queue("repeatonly")
    c = ctx.client()
    c.subscribe(q, "s")
    p = ctx.client()
    p.send(q, "r", headers={"AMQ_SCHEDULED_REPEAT": "3"})
    return [ctx.msg(m, HEADERS) for m in c.receive(1) + c.quiet()]


@scenario
def delayed_topic(ctx):
    """A delayed message to a topic reaches the subscribers there when it fires (one that
    subscribed meanwhile too), once each."""
    t = ctx.topic("delay.topic")
    a = ctx.client()
    a.subscribe(t, "a")
    p = ctx.client()
    p.send(t, "late-news", headers={"AMQ_SCHEDULED_DELAY": "1000"})
    b = ctx.client()
    b.subscribe(t, "b")
    return {"a": [ctx.msg(m, HEADERS) for m in a.receive(1)], "b": ctx.bodies(b.receive(1)),
            "more": ctx.bodies(a.quiet() + b.pending())}


@scenario
def delayed_in_transaction(ctx):
    """A delayed send inside a transaction: nothing before the commit, then the delay counts."""
    q = ctx.queue("delay.tx")
    c = ctx.client()
    c.subscribe(q, "s")
    p = ctx.client()
    p.begin("tx1")
    p.send(q, "tx-delayed", headers={"transaction": "tx1", "AMQ_SCHEDULED_DELAY": "500"}, receipt=False)
    p.send(q, "tx-now", headers={"transaction": "tx1"}, receipt=False)
    before = ctx.bodies(c.quiet())
    p.commit("tx1")
    return {"before_commit": before, "after": ctx.bodies(c.receive(2)), "more": ctx.bodies(c.quiet())}


@scenario
def virtual_topic_two_consumer_queues(ctx):
    """A publish to VirtualTopic.x reaches each consumer queue Consumer.A / Consumer.B once,
    addressed to that queue, and the topic's own subscriber."""
    topic = "/topic/VirtualTopic." + ctx.name("x")
    qa = "/queue/Consumer.A.VirtualTopic." + ctx.name("x")
    qb = "/queue/Consumer.B.VirtualTopic." + ctx.name("x")
    a, b, t = ctx.client(), ctx.client(), ctx.client()
    a.subscribe(qa, "a")
    b.subscribe(qb, "b")
    t.subscribe(topic, "t")
    p = ctx.client()
    p.send(topic, "v1")
    p.send(topic, "v2", headers={"persistent": "true"})
    return {"a": [ctx.msg(m, HEADERS) for m in a.receive(2)],
            "b": ctx.bodies(b.receive(2)),
            "topic": [ctx.msg(m, ["destination"]) for m in t.receive(2)],
            "more": ctx.bodies(a.quiet() + b.pending() + t.pending())}


@scenario
def virtual_topic_competing_consumers(ctx):
    """Two consumers on one consumer queue share its messages (each message once)."""
    topic = "/topic/VirtualTopic." + ctx.name("compete")
    qa = "/queue/Consumer.A.VirtualTopic." + ctx.name("compete")
    c1, c2 = ctx.client(), ctx.client()
    c1.subscribe(qa, "c1", headers={"activemq.prefetchSize": "1"})
    c2.subscribe(qa, "c2", headers={"activemq.prefetchSize": "1"})
    p = ctx.client()
    for i in range(4):
        p.send(topic, f"m{i}")
    got = c1.receive(2, timeout=2) + c2.receive(2, timeout=2)
    return sorted(ctx.bodies(got + c1.quiet() + c2.pending()))


@scenario
def virtual_topic_queue_outlives_consumer(ctx):
    """Once a consumer queue had a consumer, it keeps collecting while nobody consumes it."""
    topic = "/topic/VirtualTopic." + ctx.name("keep")
    qa = "/queue/Consumer.A.VirtualTopic." + ctx.name("keep")
    c = ctx.client()
    c.subscribe(qa, "c")
    c.unsubscribe("c")
    p = ctx.client()
    p.send(topic, "while-away", headers={"persistent": "true"})
    c2 = ctx.client()
    c2.subscribe(qa, "c2")
    return ctx.bodies(c2.receive(1)) + ctx.bodies(c2.quiet())


@scenario
def virtual_topic_without_consumer_queue(ctx):
    """A consumer queue nobody subscribed to before the publish gets nothing of it."""
    topic = "/topic/VirtualTopic." + ctx.name("none")
    qa = "/queue/Consumer.Z.VirtualTopic." + ctx.name("none")
    p = ctx.client()
    p.send(topic, "lost")
    c = ctx.client()
    c.subscribe(qa, "c")
    p.send(topic, "kept")
    return ctx.bodies(c.receive(1)) + ctx.bodies(c.quiet())


@scenario
def composite_queue_and_topic(ctx):
    """SEND to "/queue/a,/topic/b": the queue's consumer and the topic's subscriber each get the
    message, addressed to their own destination."""
    qa, tb = ctx.queue("comp.a"), ctx.topic("comp.b")
    c, s = ctx.client(), ctx.client()
    c.subscribe(qa, "c")
    s.subscribe(tb, "s")
    p = ctx.client()
    p.send(qa + "," + tb, "both", headers={"k": "v"})
    return {"queue": [ctx.msg(m, ["destination", "k"]) for m in c.receive(1)],
            "topic": [ctx.msg(m, ["destination", "k"]) for m in s.receive(1)],
            "more": ctx.bodies(c.quiet() + s.pending())}


@scenario
def composite_queue_shorthand(ctx):
    """"/queue/a,b" (no prefix on the second part): two queues."""
    qa = ctx.queue("short.a")
    qb = ctx.queue("short.b")
    p = ctx.client()
    p.send(qa + "," + qb[len("/queue/"):], "two")
    a, b = ctx.client(), ctx.client()
    a.subscribe(qa, "a")
    b.subscribe(qb, "b")
    return {"a": [ctx.msg(m, ["destination"]) for m in a.receive(1)], "b": ctx.bodies(b.receive(1))}


@scenario
def composite_delayed(ctx):
    """A delayed send to a composite destination: every part gets it when it fires."""
    qa, qb = ctx.queue("compdelay.a"), ctx.queue("compdelay.b")
    a, b = ctx.client(), ctx.client()
    a.subscribe(qa, "a")
    b.subscribe(qb, "b")
    p = ctx.client()
    p.send(qa + "," + qb, "later", headers={"AMQ_SCHEDULED_DELAY": "500"})
    return {"a": ctx.bodies(a.receive(1)), "b": ctx.bodies(b.receive(1))}


def dead_letter_via(ctx, q, body, headers):
    """Sends `body` to `q`, has a client-individual consumer NACK it, and returns what the
    individual DLQ (DLQ.<queue>) holds then, and what the queue still holds."""
    p = ctx.client()
    p.send(q, body, headers=headers)
    c = ctx.client()
    c.subscribe(q, "c", ack="client-individual")
    first = c.receive(1)
    for m in first:
        c.nack(m, receipt=True)
    # ActiveMQ redelivers NACKed messages to the client until its redelivery policy says poison;
    # collect every delivery until the queue is quiet.
    deliveries = len(first)
    for _ in range(10):
        more = c.receive(1, timeout=1.0)
        if not more:
            break
        deliveries += 1
        c.nack(more[0], receipt=True)
    c.unsubscribe("c")
    dlq = "/queue/DLQ." + q[len("/queue/"):]
    d = ctx.client()
    d.subscribe(dlq, "d")
    dead = d.receive(1, timeout=3)
    return {"deliveries": deliveries,
            "dlq": [ctx.msg(m, ["destination", "persistent", "original-destination"]) for m in dead]}


@scenario
def dlq_individual_after_nack(ctx):
    """A persistent message NACKed on a queue with an individual dead-letter strategy ends in
    DLQ.<queue>."""
    return dead_letter_via(ctx, ctx.queue("dlqind.nack"), "poison", {"persistent": "true"})


@scenario
def dlq_expired_persistent(ctx):
    """A persistent message that expired before anyone consumed it goes to DLQ.<queue> (not to the
    consumer), without an expiry of its own there."""
    q = ctx.queue("dlqind.exp")
    p = ctx.client()
    past = str(int(time.time() * 1000) - 60000)
    p.send(q, "stale", headers={"persistent": "true", "expires": past})
    p.send(q, "fresh", headers={"persistent": "true"})
    c = ctx.client()
    c.subscribe(q, "c")
    consumed = ctx.bodies(c.receive(1)) + ctx.bodies(c.quiet())
    d = ctx.client()
    d.subscribe("/queue/DLQ." + q[len("/queue/"):], "d")
    dead = d.receive(1, timeout=3)
    return {"consumed": consumed,
            "dlq": [ctx.msg(m, ["destination", "expires"]) for m in dead]}


@scenario
def dlq_expired_non_persistent_dropped(ctx):
    """A non-persistent expired message is dropped, not dead-lettered (processNonPersistent
    false on that policy)."""
    q = ctx.queue("dlqind.npexp")
    p = ctx.client()
    past = str(int(time.time() * 1000) - 60000)
    p.send(q, "stale", headers={"expires": past})
    p.send(q, "fresh")
    c = ctx.client()
    c.subscribe(q, "c")
    consumed = ctx.bodies(c.receive(1)) + ctx.bodies(c.quiet())
    d = ctx.client()
    d.subscribe("/queue/DLQ." + q[len("/queue/"):], "d")
    return {"consumed": consumed, "dlq": ctx.bodies(d.quiet())}
