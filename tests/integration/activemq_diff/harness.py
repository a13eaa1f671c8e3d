# tests/integration/activemq_diff/harness.py — the scenario API of the differential test
# (README.md in this directory describes it; activemq_diff_test.py runs it).
#
# A scenario is a function `f(ctx)` decorated with @scenario in a file scenarios_<family>.py of
# this directory. The runner calls it once against ActiveMQ and once against Switchboard, each
# time with a fresh Context bound to that broker, and compares the JSON-able values it returns
# after normalisation (Context.normalise): broker-generated values (message ids, temporary
# destination names) become stable aliases, the per-run destination tag disappears.

import json
import os
import queue
import sys
import time
import uuid

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))
import sbtest  # noqa: E402

WAIT = 5.0      # bound for one awaited event (a message that should come, a receipt)
QUIET = 0.5     # the bounded wait of a "nothing (more) arrives" check (Client.quiet)

# Headers of a MESSAGE frame that are the broker's own business: dropped from observations.
# message-id is kept as an alias (`id`: equal ids stay equal, e.g. on a redelivery); `ack` (STOMP
# 1.2) is an opaque token; timestamp is a clock; content-length is framing.
DROPPED_HEADERS = {"message-id", "ack", "timestamp", "content-length"}
# Headers whose absence means this value (JMS defaults): ActiveMQ always writes priority:4,
# Switchboard writes a priority only when it is not the default. Observations show the value.
DEFAULTED_HEADERS = {"priority": "4"}

# Every registered scenario, in definition order: Scenario objects.
SCENARIOS = []


class Difference:
    """A known, documented difference between ActiveMQ and Switchboard for one scenario.

    activemq / switchboard: what each returns where they differ. When the scenario returns a dict,
    these are dicts of the differing top-level keys (every other key must still be equal); for
    any other result, the whole result (pass it as {"*": value}).
    reason: why (a sentence; docs/activemq-differences.md must list the scenario's id)."""

    def __init__(self, reason, activemq, switchboard):
        if not isinstance(activemq, dict) or not isinstance(switchboard, dict) or \
                set(activemq) != set(switchboard):
            raise ValueError("Difference: activemq and switchboard must be dicts with the same keys")
        self.reason = reason
        self.activemq = activemq
        self.switchboard = switchboard


class Scenario:
    def __init__(self, fn, difference, timeout):
        self.fn = fn
        self.name = fn.__name__
        self.family = None       # set by the runner from the file name
        self.doc = (fn.__doc__ or "").strip()
        self.difference = difference
        self.timeout = timeout

    @property
    def id(self):
        return f"{self.family}.{self.name}"


def scenario(fn=None, *, difference=None, timeout=30.0):
    """Registers a scenario: `@scenario` or `@scenario(difference=Difference(...))`.
    timeout: the scenario's whole run on one broker must end within it."""
    def register(f):
        SCENARIOS.append(Scenario(f, difference, timeout))
        return f
    if fn is not None:
        return register(fn)
    return register


class Client(sbtest.StompClient):
    """python3-stomp (sbtest.StompClient) with the calls scenarios need; every wait bounded.

    Inherited: send(dest, body, headers=None, receipt=False), subscribe(dest, id, ack="auto",
    headers=None, receipt=True), unsubscribe(id), ack(frame), nack(frame), get_message(),
    is_connected(), errors (a queue of ERROR frames), conn (the stomp.py connection)."""

    def __init__(self, ctx, port, version):
        super().__init__(port, version=version)
        self.ctx = ctx

    def send(self, destination, body="", headers=None, receipt=True, **kw):
        """Receipted by default: when send() returns, the broker has the message."""
        return super().send(destination, body, headers=headers, receipt=receipt, **kw)

    def receive(self, count, timeout=WAIT):
        """Up to `count` MESSAGE frames, waiting at most `timeout` in all: fewer when fewer came
        (the observation shows it; this never raises on a shortfall)."""
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < count:
            try:
                out.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return out

    def receive_one(self, timeout=WAIT):
        """The next MESSAGE frame, or None if none came within `timeout`."""
        got = self.receive(1, timeout)
        return got[0] if got else None

    def quiet(self, timeout=QUIET):
        """The MESSAGE frames that arrive within a short bounded wait (QUIET): a "nothing more
        arrives" check returns this and expects []. Messages already queued count too."""
        return self.receive(1 << 30, timeout)

    def pending(self):
        """Frames already received and not yet taken (no wait)."""
        return self.receive(1 << 30, 0)

    def error_frames(self):
        """ERROR frames received so far (taken)."""
        out = []
        while True:
            try:
                out.append(self.errors.get_nowait())
            except queue.Empty:
                return out

    def begin(self, tx):
        self.conn.begin(transaction=tx)

    def commit(self, tx, receipt=True):
        rid = self.new_receipt() if receipt else None
        self.conn.commit(transaction=tx, headers={"receipt": rid} if rid else {})
        if rid:
            self.wait_receipt(rid)

    def rollback(self, tx, receipt=True):
        rid = self.new_receipt() if receipt else None
        self.conn.abort(transaction=tx, headers={"receipt": rid} if rid else {})
        if rid:
            self.wait_receipt(rid)

    def sync(self):
        """A round trip (a receipted SEND-less frame is not portable: a receipted UNSUBSCRIBE of
        an unknown id errors on ActiveMQ), so a receipted BEGIN+ABORT of a throwaway transaction:
        every frame this client sent before has been processed when it returns."""
        tx = "sync-" + uuid.uuid4().hex[:8]
        self.conn.begin(transaction=tx)
        self.rollback(tx)

    def disconnect(self):
        """A graceful DISCONNECT (with receipt), bounded."""
        self.close()

    def drop(self):
        """The socket closed without DISCONNECT (a crashed client)."""
        self.abort()


class Context:
    """What a scenario gets: fresh names, connected clients, observation helpers.

    target: "activemq" or "switchboard" (for messages and logs; a scenario must not branch on it).
    tag: a token unique to this run of this scenario on this broker; names built with it
    (queue(), topic(), name()) never meet another scenario's, and normalise() removes it."""

    def __init__(self, target, port, scenario_id):
        self.target = target
        self.port = port
        self.scenario_id = scenario_id
        self.tag = "d" + uuid.uuid4().hex[:10]
        self.clients = []
        self._aliases = {}        # broker value -> stable alias
        self._alias_counts = {}   # kind -> how many so far

    # -- names
    def name(self, base):
        """A fresh physical name: `<tag>.base` (normalised back to `base`)."""
        return f"{self.tag}.{base}"

    def queue(self, base):
        return "/queue/" + self.name(base)

    def topic(self, base):
        return "/topic/" + self.name(base)

    # -- clients
    def client(self, version="1.2", headers=None, login=None, passcode=None, client_id=None):
        """A connected STOMP client (closed at the end of the scenario). client_id sets the
        `client-id` CONNECT header (durable subscriptions); it is tagged like a name."""
        c = Client(self, self.port, version)
        self.clients.append(c)
        hdrs = dict(headers or {})
        if client_id is not None:
            hdrs["client-id"] = self.name(client_id)
        c.connect(login, passcode, headers=hdrs)
        return c

    def close_all(self):
        for c in self.clients:
            try:
                c.close(timeout=2.0)
            except Exception:
                pass

    # -- observations
    def alias(self, value, kind):
        """A stable stand-in for a broker-generated value: the n-th distinct value of a kind is
        `<kind#n>` on both brokers. Equal values get equal aliases."""
        if value is None:
            return None
        if value not in self._aliases:
            n = self._alias_counts.get(kind, 0) + 1
            self._alias_counts[kind] = n
            self._aliases[value] = f"<{kind}#{n}>"
        return self._aliases[value]

    def msg(self, frame, headers=None, body=True):
        """A MESSAGE frame as an observation: {"body", "id" (alias of message-id), "headers"}.
        headers=None keeps every header but DROPPED_HEADERS (and message-id, as "id");
        a list keeps only those named (present or None). body=False leaves the body out."""
        if frame is None:
            return None
        h = dict(frame.headers)
        for k, v in DEFAULTED_HEADERS.items():
            h.setdefault(k, v)
        out = {"id": self.alias(h.get("message-id"), "msg")}
        if body:
            out["body"] = frame.body
        if headers is None:
            out["headers"] = {k: v for k, v in h.items() if k not in DROPPED_HEADERS}
        else:
            out["headers"] = {k: h.get(k) for k in headers}
        return out

    def bodies(self, frames):
        """Just the bodies, in order."""
        return [f.body if f is not None else None for f in frames]

    def error(self, frame):
        """An ERROR frame as an observation: whether there was one (its text is broker-specific)."""
        return None if frame is None else "ERROR"

    def normalise(self, value):
        """The scenario's result with the tag removed and aliases applied, recursively."""
        if isinstance(value, str):
            value = value.replace(self.tag + ".", "").replace(self.tag, "")
            for raw, alias in self._aliases.items():
                if raw and raw in value:
                    value = value.replace(raw, alias)
            return value
        if isinstance(value, dict):
            return {self.normalise(k): self.normalise(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.normalise(v) for v in value]
        if isinstance(value, bytes):
            return self.normalise(value.decode("utf-8", errors="replace"))
        return value


def canonical(value):
    """The JSON text results are compared and shown as."""
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, default=repr)

