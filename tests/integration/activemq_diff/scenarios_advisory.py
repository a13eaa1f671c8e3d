# tests/integration/activemq_diff/scenarios_advisory.py — advisory topics over STOMP
# (ActiveMQ.Advisory.*), published by Switchboard's kernel when broker.advisories is on (it is
# off by default; ActiveMQ's advisorySupport is on here as by default).
#
# ActiveMQ writes an advisory's body as JSON of its own command objects (ids, command numbers);
# the scenarios compare what a watcher relies on: which advisories come, in which order, their
# type, consumerCount and transformation headers, and the body's command and destination.

import json
import time

from harness import scenario

SWITCHBOARD_CONFIG = {"broker": {"advisories": True}}

HEADERS = ["type", "transformation", "consumerCount", "priority", "destination"]


def advisory(ctx, frame):
    """What a watcher sees of one advisory."""
    try:
        body = json.loads(frame.body)
    except ValueError:
        body = None
    seen = {"headers": {h: frame.headers.get(h) for h in HEADERS}}
    if isinstance(body, dict) and len(body) == 1:
        (command, fields), = body.items()
        seen["command"] = command
        dest = fields.get("destination") if isinstance(fields, dict) else None
        if isinstance(dest, dict):
            name = dest.get("string", "")
            if name.startswith("ID:"):
                name = ctx.alias(name, "temp")
            seen["destination"] = [dest.get("@class"), name]
        if command == "DestinationInfo":
            seen["operationType"] = fields.get("operationType")
    else:
        seen["command"] = None
    return seen


@scenario
def advisory_queue_consumers(ctx):
    """Consumer.Queue.<name>: a ConsumerInfo per consumer arriving, a RemoveInfo per consumer
    leaving, each with the queue's consumer count after it."""
    q = ctx.queue("advq")
    w = ctx.client()
    w.subscribe("/topic/ActiveMQ.Advisory.Consumer.Queue." + ctx.name("advq"), "w")
    a, b = ctx.client(), ctx.client()
    a.subscribe(q, "a")
    b.subscribe(q, "b")
    a.unsubscribe("a")
    b.disconnect()
    got = w.receive(4)
    return {"advisories": [advisory(ctx, f) for f in got], "more": len(w.quiet())}


@scenario
def advisory_topic_consumers(ctx):
    """Consumer.Topic.<name>: the same for topic subscribers."""
    t = ctx.topic("advt")
    w = ctx.client()
    w.subscribe("/topic/ActiveMQ.Advisory.Consumer.Topic." + ctx.name("advt"), "w")
    a, b = ctx.client(), ctx.client()
    a.subscribe(t, "a")
    b.subscribe(t, "b")
    b.unsubscribe("b")
    got = w.receive(3)
    return {"advisories": [advisory(ctx, f) for f in got], "more": len(w.quiet())}


@scenario
def advisory_wildcard_watcher(ctx):
    """A watcher of ActiveMQ.Advisory.Consumer.Queue.<tag>.> sees the consumers of every queue
    under it, and nothing for a topic."""
    w = ctx.client()
    w.subscribe("/topic/ActiveMQ.Advisory.Consumer.Queue." + ctx.name("wild") + ".>", "w")
    c = ctx.client()
    c.subscribe(ctx.queue("wild.one"), "1")
    c.subscribe(ctx.queue("wild.two"), "2")
    c.subscribe(ctx.topic("wild.three"), "3")
    got = w.receive(2)
    return {"advisories": [advisory(ctx, f) for f in got], "more": len(w.quiet())}


@scenario
def advisory_temp_queue(ctx):
    """ActiveMQ.Advisory.TempQueue: a DestinationInfo when a connection's temporary queue is
    created (operationType 0) and when it goes with the connection (1)."""
    w = ctx.client()
    w.subscribe("/topic/ActiveMQ.Advisory.TempQueue", "w")
    c = ctx.client()
    c.subscribe("/temp-queue/replies", "r")
    created = w.receive(1)
    c.disconnect()
    deleted = w.receive(1)
    return {"created": [advisory(ctx, f) for f in created], "deleted": [advisory(ctx, f) for f in deleted],
            "more": len(w.quiet())}


@scenario
def advisory_expired(ctx):
    """Expired.Queue.<name>: a message found expired when the queue dispatches is advised with
    orignalMessageId (ActiveMQ's spelling); the body is the message (its JSON differs: compared
    by its destination only)."""
    name = ctx.name("advx")
    q = ctx.queue("advx")
    w = ctx.client()
    w.subscribe("/topic/ActiveMQ.Advisory.Expired.Queue." + name, "w")
    p = ctx.client()
    p.send(q, "old", headers={"expires": str(int(time.time() * 1000) + 300)})
    p.send(q, "new")
    early = w.quiet(0.6)   # past its expiry; nothing dispatched yet, so nothing advised yet
    c = ctx.client()
    c.subscribe(q, "c")
    got = c.receive(1)
    advised = w.receive(1)
    seen = []
    for f in advised:
        body = json.loads(f.body)
        (fields,) = body.values()
        seen.append({"headers": {h: f.headers.get(h) for h in HEADERS},
                     "has_original_id": bool(f.headers.get("orignalMessageId")),
                     "destination": [fields["destination"]["@class"], fields["destination"]["string"]]})
    return {"early": len(early), "consumer": ctx.bodies(got), "advisories": seen, "more": len(w.quiet())}


# ---- what a new watcher is sent first (ActiveMQ's AdvisoryBroker replays what exists) --------

def sorted_advisories(ctx, frames):
    """Replayed advisories, in a stable order: each broker sends them in an order of its own
    (ActiveMQ: the order the consumers came; Switchboard: per shard), which no client relies on."""
    return sorted((advisory(ctx, f) for f in frames), key=lambda a: json.dumps(a, sort_keys=True))


@scenario
def advisory_replay_queue_consumers(ctx):
    """A new watcher of Consumer.Queue.<name> is first sent a ConsumerInfo for each consumer
    the queue has, with the consumer count now; then live advisories as before."""
    q = ctx.queue("advr")
    a, b = ctx.client(), ctx.client()
    a.subscribe(q, "a")
    b.subscribe(q, "b")
    w = ctx.client()
    w.subscribe("/topic/ActiveMQ.Advisory.Consumer.Queue." + ctx.name("advr"), "w")
    replayed = w.receive(2)
    c = ctx.client()
    c.subscribe(q, "c")
    live = w.receive(1)
    return {"replayed": sorted_advisories(ctx, replayed), "live": [advisory(ctx, f) for f in live],
            "more": len(w.quiet())}


@scenario
def advisory_replay_wildcard_watcher(ctx):
    """A watcher of Consumer.Queue.<tag>.> is sent the consumers of every queue under it that
    exist, not a topic's; one of Consumer.Topic.<name> the topic's subscriptions."""
    c = ctx.client()
    c.subscribe(ctx.queue("rw.one"), "1")
    c.subscribe(ctx.queue("rw.two"), "2")
    c.subscribe(ctx.queue("rw.two"), "3")
    c.subscribe(ctx.topic("rw.three"), "4")
    w = ctx.client()
    w.subscribe("/topic/ActiveMQ.Advisory.Consumer.Queue." + ctx.name("rw") + ".>", "w")
    queues = w.receive(3)
    t = ctx.client()
    t.subscribe("/topic/ActiveMQ.Advisory.Consumer.Topic." + ctx.name("rw.three"), "t")
    topics = t.receive(1)
    return {"queues": sorted_advisories(ctx, queues), "topics": [advisory(ctx, f) for f in topics],
            "more": [len(w.quiet()), len(t.quiet())]}


@scenario
def advisory_replay_temp_queue(ctx):
    """A new watcher of ActiveMQ.Advisory.TempQueue is sent a DestinationInfo (operationType 0)
    for each temporary queue that exists; TempTopic's watcher only the temporary topics."""
    owner = ctx.client()
    owner.subscribe("/temp-queue/replies", "r")
    owner.subscribe("/temp-topic/events", "e")
    owner.sync()
    wq, wt = ctx.client(), ctx.client()
    wq.subscribe("/topic/ActiveMQ.Advisory.TempQueue", "wq")
    wt.subscribe("/topic/ActiveMQ.Advisory.TempTopic", "wt")
    queues, topics = wq.receive(1), wt.receive(1)
    owner.disconnect()
    deleted = wq.receive(1)
    return {"queues": [advisory(ctx, f) for f in queues], "topics": [advisory(ctx, f) for f in topics],
            "deleted": [advisory(ctx, f) for f in deleted], "more": [len(wq.quiet()), len(wt.quiet())]}


@scenario
def advisory_no_replay_to_everything(ctx):
    """A watcher of ActiveMQ.Advisory.> is not sent what exists (only Consumer.*, Producer.*,
    TempQueue and TempTopic watchers are), only what happens after it."""
    q = ctx.queue("advn")
    a = ctx.client()
    a.subscribe(q, "a")
    w = ctx.client()
    w.subscribe("/topic/ActiveMQ.Advisory.>", "w", headers={"selector": "consumerCount IS NOT NULL"})
    early = w.quiet()
    b = ctx.client()
    b.subscribe(q, "b")
    got = w.receive(1)
    return {"early": len(early), "live": [advisory(ctx, f) for f in got], "more": len(w.quiet())}


@scenario
def advisory_no_producer_for_stomp(ctx):
    """A STOMP SEND is no producer: a watcher of Producer.Queue.<name> gets nothing, before or
    after the sends (ActiveMQ's STOMP uses one anonymous producer; OpenWire and AMQP producers
    are advised)."""
    q = ctx.queue("advp")
    p = ctx.client()
    p.send(q, "one")
    w = ctx.client()
    w.subscribe("/topic/ActiveMQ.Advisory.Producer.Queue." + ctx.name("advp"), "w")
    w2 = ctx.client()
    w2.subscribe("/topic/ActiveMQ.Advisory.Producer.Queue.>", "w2")
    p.send(q, "two")
    p.disconnect()
    return {"watcher": len(w.quiet()), "wildcard": len(w2.quiet())}
