# tests/integration/activemq_diff/scenarios_temp.py — temporary destinations over STOMP as
# ActiveMQ does them: /temp-queue/<name> and /temp-topic/<name> name a temporary destination of
# the connection that uses them (created on first use), a reply-to naming one reaches other
# connections as /remote-temp-queue/<generated name>, which they can send to; the destination
# goes with its connection. Generated names are aliased (<temp#n>) by ctx.msg.

from harness import Difference, scenario


def request_reply(ctx, kind):
    service = ctx.queue("service")
    server = ctx.client()
    server.subscribe(service, "srv")
    requester = ctx.client()
    replies = f"/temp-{kind}/" + ctx.name("replies")
    requester.subscribe(replies, "rep")
    requester.send(service, "question", headers={"reply-to": replies, "correlation-id": "c1"})
    request = server.receive_one()
    out = {"request": ctx.msg(request, ["destination", "reply-to", "correlation-id"])}
    if request is not None:
        server.send(request.headers["reply-to"], "answer",
                    headers={"correlation-id": request.headers.get("correlation-id", "")})
    reply = requester.receive_one()
    out["reply"] = ctx.msg(reply, ["destination", "correlation-id", "subscription"])
    return out


@scenario
def temp_queue_request_reply(ctx):
    """A request carries reply-to:/temp-queue/replies; the server sees a remote name it can send
    to, and the reply reaches the requester's subscription to /temp-queue/replies."""
    return request_reply(ctx, "queue")


@scenario
def temp_topic_request_reply(ctx):
    """The same with /temp-topic/replies."""
    return request_reply(ctx, "topic")


@scenario
def temp_queue_holds_until_subscribed(ctx):
    """The owner sends to its /temp-queue/box before subscribing: the messages wait there."""
    c = ctx.client()
    box = "/temp-queue/" + ctx.name("box")
    c.send(box, "one")
    c.send(box, "two")
    c.subscribe(box, "s")
    return [ctx.msg(m, ["destination", "persistent"]) for m in c.receive(2)]


@scenario(difference=Difference(
    reason="Switchboard's kernel takes a persistent send to a temporary destination as the "
           "non-persistent message it is there (nothing of it is stored) and delivers it so; "
           "ActiveMQ keeps the flag (and does not store it either).",
    activemq={"*": [{"body": "p", "headers": {"destination": "/temp-queue/pbox", "persistent": "true"},
                     "id": "<msg#1>"}]},
    switchboard={"*": [{"body": "p", "headers": {"destination": "/temp-queue/pbox", "persistent": None},
                        "id": "<msg#1>"}]}))
def temp_queue_persistent_send_kept_in_memory(ctx):
    """persistent:true to a temporary queue: delivered, and what its MESSAGE says."""
    c = ctx.client()
    box = "/temp-queue/" + ctx.name("pbox")
    c.subscribe(box, "s")
    c.send(box, "p", headers={"persistent": "true"})
    return [ctx.msg(m, ["destination", "persistent"]) for m in c.receive(1)]


@scenario
def temp_queue_names_are_per_connection(ctx):
    """Two connections using the same /temp-queue/x name get two different destinations."""
    a, b = ctx.client(), ctx.client()
    name = "/temp-queue/" + ctx.name("x")
    a.subscribe(name, "a")
    b.subscribe(name, "b")
    a.send(name, "from-a")
    b.send(name, "from-b")
    return {"a": ctx.bodies(a.receive(1)) + ctx.bodies(a.quiet()),
            "b": ctx.bodies(b.receive(1)) + ctx.bodies(b.quiet())}


@scenario
def temp_queue_remote_send_from_third_party(ctx):
    """A third connection that learns the remote name (from a reply-to) can send to it too, and
    the owner sees its own name in the destination header."""
    service = ctx.queue("svc")
    server, requester, other = ctx.client(), ctx.client(), ctx.client()
    server.subscribe(service, "srv")
    replies = "/temp-queue/" + ctx.name("r")
    requester.subscribe(replies, "rep")
    requester.send(service, "q", headers={"reply-to": replies})
    request = server.receive_one()
    if request is not None:
        other.send(request.headers["reply-to"], "from-other")
    got = requester.receive(1)
    return {"reply_to": ctx.msg(request, ["reply-to"], body=False),
            "got": [ctx.msg(m, ["destination"]) for m in got]}


@scenario
def temp_queue_gone_with_its_connection(ctx):
    """The requester disconnects: its temporary queue goes, and a receipted send to it is
    refused with an ERROR."""
    service = ctx.queue("svc")
    server, requester = ctx.client(), ctx.client()
    server.subscribe(service, "srv")
    replies = "/temp-queue/" + ctx.name("gone")
    requester.subscribe(replies, "rep")
    requester.send(service, "q", headers={"reply-to": replies})
    request = server.receive_one()
    requester.disconnect()
    sender = ctx.client()
    outcome = sender.try_send(request.headers["reply-to"], "too late")
    return {"send": outcome, "errors": [ctx.error(e) for e in sender.error_frames()]}


@scenario(difference=Difference(
    reason="Switchboard enforces the JMS rule that only the connection that created a temporary "
           "destination consumes from it (ERROR on SUBSCRIBE); ActiveMQ checks it in its JMS "
           "client only, so over STOMP another connection can consume from it.",
    activemq={"subscribe": "receipt", "errors": [], "thief": ["r1"]},
    switchboard={"subscribe": "ERROR", "errors": ["ERROR"], "thief": []}))
def temp_queue_consumer_of_another_connection(ctx):
    """Another connection subscribes to the remote name of someone's temporary queue, then
    messages are sent to it: the owner gets the first (prefetch 1, unacked); the other one?"""
    service = ctx.queue("svc")
    server, requester = ctx.client(), ctx.client()
    server.subscribe(service, "srv")
    replies = "/temp-queue/" + ctx.name("mine")
    requester.subscribe(replies, "rep", headers={"activemq.prefetchSize": "1"}, ack="client-individual")
    requester.send(service, "q", headers={"reply-to": replies})
    request = server.receive_one()
    thief = ctx.client()
    outcome = thief.try_subscribe(request.headers["reply-to"], "steal")
    errors = [ctx.error(e) for e in thief.error_frames()]
    sender = ctx.client()
    for i in range(2):
        sender.send(request.headers["reply-to"], f"r{i}")
    got_owner = requester.receive(1)
    got_thief = thief.quiet() if outcome == "receipt" else []
    return {"subscribe": outcome, "errors": errors, "owner": ctx.bodies(got_owner), "thief": ctx.bodies(got_thief)}


@scenario
def temp_topic_gone_with_its_connection(ctx):
    """A temporary topic goes with its connection too: a send to its remote name is refused."""
    service = ctx.queue("svc")
    server, requester = ctx.client(), ctx.client()
    server.subscribe(service, "srv")
    replies = "/temp-topic/" + ctx.name("gone")
    requester.subscribe(replies, "rep")
    requester.send(service, "q", headers={"reply-to": replies})
    request = server.receive_one()
    before = server.try_send(request.headers["reply-to"], "in time")
    got = ctx.bodies(requester.receive(1))
    requester.disconnect()
    sender = ctx.client()
    return {"before": before, "got": got, "after": sender.try_send(request.headers["reply-to"], "too late")}


@scenario
def temp_queue_reply_to_plain_queue_unchanged(ctx):
    """A reply-to naming a plain queue or topic reaches the consumer as it was sent."""
    q = ctx.queue("plain")
    c = ctx.client()
    c.subscribe(q, "c")
    p = ctx.client()
    p.send(q, "a", headers={"reply-to": ctx.queue("answers")})
    p.send(q, "b", headers={"reply-to": ctx.topic("answers")})
    return [ctx.msg(m, ["reply-to"]) for m in c.receive(2)]
