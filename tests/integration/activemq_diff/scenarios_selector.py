# tests/integration/activemq_diff/scenarios_selector.py — JMS message selectors over STOMP (the
# SUBSCRIBE `selector` header): queues, topics, durable subscriptions, STOMP headers compared as
# numbers, JMS headers, NULL logic, invalid selectors (docs/activemq-selectors.md).

from harness import Difference, scenario


@scenario
def queue_split_by_selector(ctx):
    """Two queue consumers with complementary selectors each get exactly their messages, in
    order; a third selecting nothing gets nothing."""
    q = ctx.queue("split")
    red, blue, none = ctx.client(), ctx.client(), ctx.client()
    red.subscribe(q, "red", headers={"selector": "color = 'red'"})
    blue.subscribe(q, "blue", headers={"selector": "color = 'blue'"})
    none.subscribe(q, "none", headers={"selector": "color = 'green'"})
    p = ctx.client()
    for i in range(6):
        p.send(q, f"m{i}", headers={"color": "red" if i % 2 else "blue"})
    return {"red": [ctx.msg(m, ["color", "subscription"]) for m in red.receive(3)],
            "blue": ctx.bodies(blue.receive(3)),
            "none": ctx.bodies(none.quiet())}


@scenario
def queue_unselected_head_does_not_block(ctx):
    """Messages nobody selects at the head of a queue stay there without holding up the selected
    ones behind them; a consumer without a selector then gets them, in order."""
    q = ctx.queue("head")
    p = ctx.client()
    p.send(q, "x1", headers={"k": "x"})
    p.send(q, "none")
    c = ctx.client()
    c.subscribe(q, "a", headers={"selector": "k = 'a'"})
    p.send(q, "a1", headers={"k": "a"})
    p.send(q, "x2", headers={"k": "x"})
    p.send(q, "a2", headers={"k": "a"})
    selected = ctx.bodies(c.receive(2))
    more = ctx.bodies(c.quiet())
    rest = ctx.client()
    rest.subscribe(q, "all")
    return {"selected": selected, "more": more, "rest": ctx.bodies(rest.receive(3))}


@scenario
def queue_selector_with_prefetch_1(ctx):
    """Prefetch 1, client acks: a consumer holding its one message does not hold up the other
    consumer's messages queued behind its own; its own follow when it acks."""
    q = ctx.queue("credit")
    a, b = ctx.client(), ctx.client()
    a.subscribe(q, "a", ack="client-individual",
                headers={"activemq.prefetchSize": "1", "selector": "k = 'a'"})
    b.subscribe(q, "b", ack="client-individual",
                headers={"activemq.prefetchSize": "1", "selector": "k = 'b'"})
    p = ctx.client()
    for body in ("a1", "a2", "a3", "b1", "b2"):
        p.send(q, body, headers={"k": body[0]})
    first_a = a.receive(1)
    got_b = b.receive(1)
    b.ack(got_b[0])
    got_b += b.receive(1)
    b.ack(got_b[1])
    held_a = ctx.bodies(a.quiet(0.3))
    a.ack(first_a[0])
    second_a = a.receive(1)
    a.ack(second_a[0])
    third_a = a.receive(1)
    a.ack(third_a[0])
    return {"a": ctx.bodies(first_a + second_a + third_a), "a_while_holding": held_a,
            "b": ctx.bodies(got_b)}


@scenario
def stomp_header_compared_as_number(ctx):
    """STOMP headers are strings; ActiveMQ compares a string with a number by parsing it as that
    number's type: `x > 3` selects "5" and "10", not "2", "abc" or "3.5" (no long)."""
    q = ctx.queue("numeric")
    c = ctx.client()
    c.subscribe(q, "s", headers={"selector": "x > 3"})
    d = ctx.client()
    d.subscribe(q + ".d", "d", headers={"selector": "x >= 2.5 AND x <> 10"})
    p = ctx.client()
    for v in ("5", "2", "abc", "3.5", "10"):
        p.send(q, "x=" + v, headers={"x": v})
        p.send(q + ".d", "x=" + v, headers={"x": v})
    return {"long": ctx.bodies(c.receive(2)) + ctx.bodies(c.quiet()),
            "double": ctx.bodies(d.receive(2)) + ctx.bodies(d.quiet())}


@scenario
def jms_headers_priority_type_correlation(ctx):
    """JMSPriority, JMSType, JMSCorrelationID and JMSDeliveryMode come from the STOMP headers
    priority, type, correlation-id and persistent."""
    q = ctx.queue("jms")
    hi, typed, corr = ctx.client(), ctx.client(), ctx.client()
    hi.subscribe(q + ".hi", "hi", headers={"selector": "JMSPriority > 5"})
    typed.subscribe(q + ".type", "type",
                    headers={"selector": "JMSType = 'car' AND JMSDeliveryMode = 'PERSISTENT'"})
    corr.subscribe(q + ".corr", "corr",
                   headers={"selector": "JMSCorrelationID = 'c1' OR JMSCorrelationID IS NULL"})
    p = ctx.client()
    sends = [("p9", {"priority": "9"}), ("p4", {}), ("p6", {"priority": "6"}), ("p1", {"priority": "1"})]
    for body, h in sends:
        p.send(q + ".hi", body, headers=h)
    for body, h in [("car-p", {"type": "car", "persistent": "true"}), ("car", {"type": "car"}),
                    ("bus-p", {"type": "bus", "persistent": "true"})]:
        p.send(q + ".type", body, headers=h)
    for body, h in [("c1", {"correlation-id": "c1"}), ("c2", {"correlation-id": "c2"}), ("none", {})]:
        p.send(q + ".corr", body, headers=h)
    return {"priority": ctx.bodies(hi.receive(2)) + ctx.bodies(hi.quiet()),
            "type": ctx.bodies(typed.receive(1)) + ctx.bodies(typed.quiet()),
            "correlation": ctx.bodies(corr.receive(2)) + ctx.bodies(corr.quiet())}


@scenario
def topic_selector_per_subscriber(ctx):
    """Each topic subscriber gets what its selector selects; one without a selector gets all."""
    t = ctx.topic("prices")
    eur, big, all_ = ctx.client(), ctx.client(), ctx.client()
    eur.subscribe(t, "eur", headers={"selector": "currency = 'EUR'"})
    big.subscribe(t, "big", headers={"selector": "amount BETWEEN 100 AND 1000"})
    all_.subscribe(t, "all")
    p = ctx.client()
    for body, cur, amount in (("a", "EUR", "50"), ("b", "USD", "500"), ("c", "EUR", "700"), ("d", "GBP", "5000")):
        p.send(t, body, headers={"currency": cur, "amount": amount})
    return {"eur": ctx.bodies(eur.receive(2)) + ctx.bodies(eur.quiet()),
            "big": ctx.bodies(big.receive(2)) + ctx.bodies(big.quiet()),
            "all": ctx.bodies(all_.receive(4))}


@scenario
def durable_subscription_keeps_selector(ctx):
    """A durable subscription with a selector collects only what it selects while its subscriber
    is away; subscribing again with the same selector gets those."""
    t = ctx.topic("durable")
    c = ctx.client(client_id="dur1")
    sub = {"activemq.subscriptionName": "s", "selector": "k = 'a'"}
    c.subscribe(t, "d", headers=sub)
    c.unsubscribe("d")
    c.disconnect()
    p = ctx.client()
    for body in ("a1", "b1", "a2", "b2"):
        p.send(t, body, headers={"k": body[0], "persistent": "true"})
    c2 = ctx.client(client_id="dur1")
    c2.subscribe(t, "d", headers=sub)
    got = ctx.bodies(c2.receive(2)) + ctx.bodies(c2.quiet())
    c2.unsubscribe("d")
    c2.conn.unsubscribe(id="d", headers={"activemq.subscriptionName": "s"})
    c2.sync()
    return got


@scenario
def durable_subscription_new_selector_is_new(ctx):
    """Subscribing again to a durable subscription with another selector makes it a new
    subscription: what the old one collected is gone, the new selector applies from then on."""
    t = ctx.topic("reselect")
    c = ctx.client(client_id="dur2")
    c.subscribe(t, "d", headers={"activemq.subscriptionName": "s", "selector": "k = 'a'"})
    c.unsubscribe("d")
    c.disconnect()
    p = ctx.client()
    for body in ("a1", "b1"):
        p.send(t, body, headers={"k": body[0], "persistent": "true"})
    c2 = ctx.client(client_id="dur2")
    c2.subscribe(t, "d", headers={"activemq.subscriptionName": "s", "selector": "k = 'b'"})
    before = ctx.bodies(c2.quiet())
    for body in ("a2", "b2"):
        p.send(t, body, headers={"k": body[0], "persistent": "true"})
    after = ctx.bodies(c2.receive(1)) + ctx.bodies(c2.quiet())
    c2.unsubscribe("d")
    c2.conn.unsubscribe(id="d", headers={"activemq.subscriptionName": "s"})
    c2.sync()
    return {"held_from_old": before, "after": after}


@scenario
def like_escape_in_and_null_logic(ctx):
    """LIKE with an escape, IN, IS NULL and three-valued NOT: a missing property makes
    `NOT (k = 'a')` UNKNOWN (not selected) while `k IS NULL` selects."""
    q = ctx.queue("logic")
    like, in_, notk, isnull = ctx.client(), ctx.client(), ctx.client(), ctx.client()
    like.subscribe(q + ".like", "l", headers={"selector": "name LIKE 'a\\_%' ESCAPE '\\'"})
    in_.subscribe(q + ".in", "i", headers={"selector": "name NOT IN ('a_1', 'zz')"})
    notk.subscribe(q + ".not", "n", headers={"selector": "NOT (name = 'ab')"})
    isnull.subscribe(q + ".null", "u", headers={"selector": "name IS NULL OR name LIKE '%b'"})
    p = ctx.client()
    for body, name in (("m1", "a_1"), ("m2", "ab"), ("m3", None), ("m4", "zz"), ("m5", "a_b")):
        h = {"name": name} if name is not None else {}
        for suffix in (".like", ".in", ".not", ".null"):
            p.send(q + suffix, body, headers=h)
    out = {}
    for key, c, n in (("like", like, 2), ("not_in", in_, 2), ("not_eq", notk, 3), ("is_null", isnull, 3)):
        out[key] = ctx.bodies(c.receive(n)) + ctx.bodies(c.quiet(0.2))
    return out


@scenario(difference=Difference(
    reason="STOMP 1.2 says a server closes the connection after an ERROR frame, and Switchboard "
           "does so for every STOMP error; ActiveMQ sends the ERROR for the refused SUBSCRIBE and "
           "keeps the connection open.",
    activemq={"bad_still_connected": True}, switchboard={"bad_still_connected": False}))
def invalid_selector_is_an_error(ctx):
    """A selector that does not parse: ERROR for that SUBSCRIBE, no subscription; another
    connection is not affected (Switchboard then closes the erring connection, ActiveMQ not)."""
    q = ctx.queue("invalid")
    bad = ctx.client()
    refused = bad.try_subscribe(q, "bad", headers={"selector": "x >>> 3"})
    other = ctx.client()
    other.subscribe(q, "ok", headers={"selector": "x = 1"})
    p = ctx.client()
    p.send(q, "one", headers={"x": "1"})
    return {"refused": refused, "bad_still_connected": bad.connected_after(),
            "other": ctx.bodies(other.receive(1))}


@scenario
def selector_syntax_errors(ctx):
    """Each of these is refused with an ERROR: a string beside '>', numbers in IN, LIKE without
    a string, an unclosed parenthesis, a trailing AND."""
    q = ctx.queue("syntax")
    out = {}
    for i, sel in enumerate(("x > 'a'", "x IN (1, 2)", "x LIKE 5", "(x > 1", "x = 'a' AND")):
        c = ctx.client()
        out[sel] = c.try_subscribe(q, f"s{i}", headers={"selector": sel})
    return out


@scenario
def keywords_any_case_identifiers_exact(ctx):
    """Keywords are case insensitive, identifiers case sensitive: `color between 1 and 3 or
    Color = 'x'` reads header color numerically and header Color as itself."""
    q = ctx.queue("case")
    c = ctx.client()
    c.subscribe(q, "s", headers={"selector": "color between 1 and 3 or Color = 'x'"})
    p = ctx.client()
    for body, h in (("c2", {"color": "2"}), ("C-x", {"Color": "x"}), ("c-x", {"color": "x"}), ("c5", {"color": "5"})):
        p.send(q, body, headers=h)
    return ctx.bodies(c.receive(2)) + ctx.bodies(c.quiet())


@scenario
def browse_with_selector(ctx):
    """A queue browser with a selector sees only the messages it selects (then the end marker);
    nothing is consumed."""
    q = ctx.queue("browse")
    p = ctx.client()
    for i in range(4):
        p.send(q, f"m{i}", headers={"k": "a" if i % 2 else "b"})
    b = ctx.client()
    b.subscribe(q, "br", headers={"browser": "true", "selector": "k = 'a'"})
    seen = [ctx.msg(m, ["browser", "k"]) for m in b.receive(3)]
    c = ctx.client()
    c.subscribe(q, "c")
    return {"browsed": seen, "browser_more": ctx.bodies(b.quiet(0.2)), "consumed": ctx.bodies(c.receive(4))}
