// tests/integration/rhea/amqp_rhea_client.js — scenarios with the rhea AMQP 1.0 client (npm,
// pinned in package.json / package-lock.json beside this file) against a running Switchboard.
// Driven by tests/integration/amqp_rhea_test.py, one scenario per run:
//
//   NODE_PATH=<dir with node_modules> node amqp_rhea_client.js --port 5672 --scenario queue_ack
//
// Prints "OK: <scenario>" and exits 0 when every check passed; otherwise prints what failed and
// exits 1. Every wait is bounded (WAIT_MS for an expected event, QUIET_MS for "nothing more
// arrives"), and the whole run is bounded by RUN_MS.
'use strict';

const rhea = require('rhea');

const WAIT_MS = 5000;
const QUIET_MS = 500;
const RUN_MS = 30000;

function arg(name, fallback) {
    const i = process.argv.indexOf('--' + name);
    return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const PORT = Number(arg('port', '5672'));
const SCENARIO = arg('scenario', '');

class CheckFailed extends Error {}

function check(cond, what) {
    if (!cond) throw new CheckFailed(what);
}

function equal(got, want, what) {
    const g = JSON.stringify(got), w = JSON.stringify(want);
    if (g !== w) throw new CheckFailed(`${what}: got ${g}, expected ${w}`);
}

// Resolves with the context of the first `event` on `emitter`; rejects after `ms`, or on an
// error or close of the endpoint meanwhile.
function once(emitter, event, what, ms = WAIT_MS) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            emitter.removeListener(event, on);
            reject(new CheckFailed(`no ${event} within ${ms} ms: ${what}`));
        }, ms);
        function on(ctx) {
            clearTimeout(timer);
            emitter.removeListener(event, on);
            resolve(ctx);
        }
        emitter.on(event, on);
    });
}

const containers = [];

// A connection of its own container (container-id per connection, as separate clients).
async function connect(options = {}) {
    const container = rhea.create_container({id: `rhea-${SCENARIO}-${containers.length}`});
    containers.push(container);
    const conn = container.connect(Object.assign({host: '127.0.0.1', port: PORT, reconnect: false}, options));
    conn.on('disconnected', () => {});   // asserted where it matters, never fatal by itself
    conn.on('connection_error', () => {});
    await once(conn, 'connection_open', 'connection');
    return conn;
}

// Messages of a receiver, in order, with their deliveries.
class Inbox {
    constructor(receiver) {
        this.receiver = receiver;
        this.items = [];
        this.waiters = [];
        receiver.on('message', (ctx) => {
            this.items.push(ctx);
            const w = this.waiters.shift();
            if (w) w();
        });
    }

    async next(what, ms = WAIT_MS) {
        if (!this.items.length) {
            await new Promise((resolve, reject) => {
                const timer = setTimeout(() => {
                    this.waiters = this.waiters.filter((w) => w !== wake);
                    reject(new CheckFailed(`no message within ${ms} ms: ${what}`));
                }, ms);
                const wake = () => {
                    clearTimeout(timer);
                    resolve();
                };
                this.waiters.push(wake);
            });
        }
        return this.items.shift();
    }

    async nothing(what, ms = QUIET_MS) {
        // There is no event for an absence: a bounded quiet period.
        await new Promise((resolve) => setTimeout(resolve, ms));
        check(this.items.length === 0, `unexpected message ${what}: ${JSON.stringify(this.items.map((c) => c.message.body))}`);
    }
}

async function receiver(conn, source, options = {}) {
    const r = conn.open_receiver(Object.assign({source, autoaccept: false}, options));
    const ctx = await once(r, 'receiver_open', `receiver on ${JSON.stringify(source)}`);
    return {link: r, inbox: new Inbox(r), ctx};
}

async function sender(conn, target) {
    const s = conn.open_sender(target === null ? {target: {}} : target);
    await once(s, 'sender_open', `sender to ${JSON.stringify(target)}`);
    if (!s.sendable()) await once(s, 'sendable', `credit for the sender to ${JSON.stringify(target)}`);
    return s;
}

// Sends unsettled and resolves with the outcome's event name and context.
function send(s, message) {
    return new Promise((resolve, reject) => {
        const delivery = s.send(message);
        const events = ['accepted', 'rejected', 'released', 'modified'];
        const timer = setTimeout(() => {
            for (const e of events) s.removeListener(e, handlers[e]);
            reject(new CheckFailed(`no outcome within ${WAIT_MS} ms for ${JSON.stringify(message.body)}`));
        }, WAIT_MS);
        const handlers = {};
        for (const e of events) {
            handlers[e] = (ctx) => {
                if (ctx.delivery !== delivery) return;
                clearTimeout(timer);
                for (const x of events) s.removeListener(x, handlers[x]);
                resolve({outcome: e, ctx});
            };
            s.on(e, handlers[e]);
        }
    });
}

async function sendAccepted(s, message) {
    const {outcome, ctx} = await send(s, message);
    equal(outcome, 'accepted', `outcome of ${JSON.stringify(message.body)} (${JSON.stringify(ctx.delivery.remote_state)})`);
}

// ---- scenarios ----------------------------------------------------------------------------------

const scenarios = {
    // Unsettled sends accepted by the broker, a receiver that accepts each, and a queue that is
    // empty afterwards: accepted means consumed.
    async queue_ack() {
        const conn = await connect();
        const s = await sender(conn, 'rhea.orders');
        for (let i = 0; i < 3; i++) await sendAccepted(s, {body: `m${i}`, durable: true});
        const r = await receiver(conn, 'rhea.orders', {credit_window: 10});
        const got = [];
        for (let i = 0; i < 3; i++) {
            const ctx = await r.inbox.next(`m${i}`);
            got.push(ctx.message.body);
            check(ctx.message.durable === true, `durable lost on m${i}`);
            ctx.delivery.accept();
        }
        equal(got, ['m0', 'm1', 'm2'], 'queue order');
        await r.inbox.nothing('after three');
        r.link.close();
        await once(r.link, 'receiver_close', 'receiver detach');
        const r2 = await receiver(conn, 'queue://rhea.orders', {credit_window: 10});
        await r2.inbox.nothing('after accept: the queue should be empty');
        // A message left unsettled comes back to the next receiver, counted as a redelivery.
        await sendAccepted(s, {body: 'again'});
        const first = await r2.inbox.next('again');
        equal(first.message.body, 'again', 'body');
        r2.link.close();
        await once(r2.link, 'receiver_close', 'receiver detach');
        const r3 = await receiver(await connect(), '/queue/rhea.orders', {credit_window: 1});
        const back = await r3.inbox.next('redelivered');
        equal([back.message.body, back.message.delivery_count], ['again', 1], 'redelivery');
        back.delivery.accept();
    },

    // Every receiver of a topic (two connections, two address forms and a wildcard) gets each
    // message once.
    async topic_fanout() {
        const c1 = await connect(), c2 = await connect();
        const rs = [await receiver(c1, 'topic://rhea.prices.eu', {credit_window: 10}),
                    await receiver(c2, '/topic/rhea.prices.eu', {credit_window: 10}),
                    await receiver(c2, 'topic://rhea.prices.*', {credit_window: 10})];
        const s = await sender(await connect(), 'topic://rhea.prices.eu');
        await sendAccepted(s, {body: 'p1'});
        await sendAccepted(s, {body: 'p2'});
        for (const [i, r] of rs.entries()) {
            const a = await r.inbox.next(`p1 on receiver ${i}`), b = await r.inbox.next(`p2 on receiver ${i}`);
            equal([a.message.body, b.message.body], ['p1', 'p2'], `receiver ${i}`);
            a.delivery.accept();
            b.delivery.accept();
            await r.inbox.nothing(`on receiver ${i}`);
        }
        // A queue of the same name got nothing.
        const q = await receiver(c1, 'queue://rhea.prices.eu', {credit_window: 10});
        await q.inbox.nothing('on the queue of the same name');
    },

    // Deliveries stay within the link credit; a drain sends what there is, then the broker uses
    // up the rest of the credit and says so (the drain's flow echo).
    async credit_drain() {
        const s = await sender(await connect(), 'rhea.credit');
        for (let i = 0; i < 5; i++) await sendAccepted(s, {body: `c${i}`});
        const conn = await connect();
        const r = await receiver(conn, 'rhea.credit', {credit_window: 0});
        r.link.add_credit(2);
        const a = await r.inbox.next('c0'), b = await r.inbox.next('c1');
        equal([a.message.body, b.message.body], ['c0', 'c1'], 'within credit 2');
        await r.inbox.nothing('beyond the credit');
        a.delivery.accept();
        b.delivery.accept();
        r.link.drain = true;
        const drained = once(r.link, 'receiver_drained', 'drain echo');
        r.link.add_credit(10);
        await drained;
        r.link.drain = false;
        equal(r.link.credit, 0, 'credit after the drain');
        const got = [];
        while (r.inbox.items.length) {
            const ctx = r.inbox.items.shift();
            got.push(ctx.message.body);
            ctx.delivery.accept();
        }
        equal(got, ['c2', 'c3', 'c4'], 'what the drain delivered');
        // Nothing without new credit.
        await sendAccepted(s, {body: 'c5'});
        await r.inbox.nothing('after the drain, without credit');
        r.link.add_credit(1);
        equal((await r.inbox.next('c5 with new credit')).message.body, 'c5', 'after new credit');
    },

    // Each outcome on the kernel's: accepted (consumed), released (again, not counted),
    // modified delivery-failed (again, counted), modified undeliverable-here (to another
    // consumer), rejected (to the DLQ with the error).
    async outcomes() {
        const conn = await connect();
        const s = await sender(conn, 'rhea.out');
        const r = await receiver(conn, 'rhea.out', {credit_window: 0});

        await sendAccepted(s, {body: 'released'});
        r.link.add_credit(1);
        let ctx = await r.inbox.next('released, first');
        ctx.delivery.release();
        r.link.add_credit(1);
        ctx = await r.inbox.next('released, again');
        equal([ctx.message.body, ctx.message.delivery_count || 0], ['released', 0], 'released: not counted');
        ctx.delivery.accept();

        await sendAccepted(s, {body: 'failed'});
        r.link.add_credit(1);
        ctx = await r.inbox.next('modified, first');
        ctx.delivery.modified({delivery_failed: true});
        r.link.add_credit(1);
        ctx = await r.inbox.next('modified, again');
        equal([ctx.message.body, ctx.message.delivery_count], ['failed', 1], 'modified delivery-failed: counted');
        ctx.delivery.accept();

        await sendAccepted(s, {body: 'elsewhere'});
        r.link.add_credit(1);
        ctx = await r.inbox.next('undeliverable-here, first');
        ctx.delivery.modified({delivery_failed: true, undeliverable_here: true});
        r.link.add_credit(1);
        await r.inbox.nothing('undeliverable-here came back to the same link');
        const other = await receiver(await connect(), 'rhea.out', {credit_window: 1});
        ctx = await other.inbox.next('undeliverable-here, on another consumer');
        equal(ctx.message.body, 'elsewhere', 'on another consumer');
        ctx.delivery.accept();
        other.link.close();
        await once(other.link, 'receiver_close', 'other receiver detach');

        await sendAccepted(s, {body: 'bad', application_properties: {k: 'v'}});
        ctx = await r.inbox.next('to be rejected');   // the credit left from above
        equal(ctx.message.body, 'bad', 'the rejected one');
        ctx.delivery.reject({condition: 'amqp:invalid-field', description: 'cannot parse the order'});
        const dlq = await receiver(conn, 'ActiveMQ.DLQ', {credit_window: 1});
        const dead = await dlq.inbox.next('dead letter');
        equal([dead.message.body, dead.message.application_properties.k,
               dead.message.application_properties.dlqDeliveryFailureCause],
              ['bad', 'v', 'cannot parse the order'], 'dead letter');
        dead.delivery.accept();
        r.link.add_credit(1);
        await r.inbox.nothing('a rejected message came back');

        // Accepted: consumed, the queue is empty afterwards.
        await sendAccepted(s, {body: 'ok'});
        ctx = await r.inbox.next('accepted');
        ctx.delivery.accept();
        r.link.add_credit(1);
        await r.inbox.nothing('an accepted message came back');
    },

    // Request/reply: the requester's dynamic node (a temporary queue), the service answers on
    // the anonymous relay to the message's reply-to.
    async request_reply() {
        const requester = await connect();
        const replies = await receiver(requester, {dynamic: true}, {credit_window: 5});
        const replyTo = replies.link.source.address;
        check(typeof replyTo === 'string' && replyTo.startsWith('temp-queue://'), `dynamic address ${replyTo}`);
        const server = await connect();
        const service = await receiver(server, 'rhea.service', {credit_window: 5});
        await sendAccepted(await sender(requester, 'rhea.service'),
                           {body: 'ping', reply_to: replyTo, correlation_id: 'req-1', message_id: 'm-1'});
        const req = await service.inbox.next('request');
        equal([req.message.body, req.message.reply_to, req.message.correlation_id], ['ping', replyTo, 'req-1'], 'request');
        req.delivery.accept();
        const relay = await sender(server, null);
        await sendAccepted(relay, {to: req.message.reply_to, body: 'pong', correlation_id: req.message.correlation_id});
        const resp = await replies.inbox.next('reply');
        equal([resp.message.body, resp.message.correlation_id], ['pong', 'req-1'], 'reply');
        resp.delivery.accept();
        // The temporary queue is its owner's: another connection cannot consume from it.
        const thief = (await connect()).open_receiver({source: replyTo, autoaccept: false});
        const closed = await once(thief, 'receiver_close', 'refusal of a foreign temporary queue');
        check(closed.receiver.error, 'closed without an error condition');
        equal(closed.receiver.error.condition, 'amqp:unauthorized-access', 'condition');
    },

    // The anonymous relay: one sender without a target, the destination in each message's `to`.
    async anonymous_relay() {
        const conn = await connect();
        const q = await receiver(conn, 'rhea.relay.q', {credit_window: 10});
        const t = await receiver(conn, 'topic://rhea.relay.t', {credit_window: 10});
        const relay = await sender(conn, null);
        await sendAccepted(relay, {to: 'rhea.relay.q', body: 'to the queue'});
        await sendAccepted(relay, {to: 'topic://rhea.relay.t', body: 'to the topic'});
        await sendAccepted(relay, {to: '/queue/rhea.relay.q', body: 'STOMP form'});
        let ctx = await q.inbox.next('queue');
        equal([ctx.message.body, ctx.message.to], ['to the queue', 'rhea.relay.q'], 'queue message');
        ctx.delivery.accept();
        ctx = await q.inbox.next('queue, STOMP form');
        equal(ctx.message.body, 'STOMP form', 'queue message by /queue/');
        ctx.delivery.accept();
        ctx = await t.inbox.next('topic');
        equal([ctx.message.body, ctx.message.to], ['to the topic', 'topic://rhea.relay.t'], 'topic message');
        ctx.delivery.accept();
        // No `to`, and a temporary queue that is gone: rejected, the link goes on.
        let res = await send(relay, {body: 'nowhere'});
        equal([res.outcome, res.ctx.delivery.remote_state.error.condition], ['rejected', 'amqp:precondition-failed'], 'no to');
        const owner = await connect();
        const tmp = await receiver(owner, {dynamic: true}, {credit_window: 1});
        const gone = tmp.link.source.address;
        owner.close();
        await once(owner, 'connection_close', 'owner closed');
        res = await send(relay, {to: gone, body: 'nobody home'});
        equal([res.outcome, res.ctx.delivery.remote_state.error.condition], ['rejected', 'amqp:not-found'], 'gone temporary queue');
        await sendAccepted(relay, {to: 'rhea.relay.q', body: 'still going'});
        equal((await q.inbox.next('after the rejections')).message.body, 'still going', 'relay after rejections');
    },

    // Bodies and properties as rhea writes them: a data section, typed application properties,
    // the properties section.
    async message_fields() {
        const conn = await connect();
        const r = await receiver(conn, 'rhea.fields', {credit_window: 10});
        const s = await sender(conn, 'rhea.fields');
        const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff]);
        await sendAccepted(s, {body: rhea.message.data_section(bytes), content_type: 'application/octet-stream',
                               subject: 'typed', group_id: 'g', group_sequence: 3, priority: 7,
                               application_properties: {s: 'x', n: 42, f: 1.5, b: true}});
        const ctx = await r.inbox.next('fields');
        const m = ctx.message;
        check(m.body && m.body.typecode === 0x75, `not a data section: ${JSON.stringify(m.body)}`);
        check(Buffer.compare(m.body.content, bytes) === 0, `data changed: ${m.body.content.toString('hex')}`);
        equal([m.content_type, m.subject, m.group_id, m.group_sequence, m.priority],
              ['application/octet-stream', 'typed', 'g', 3, 7], 'properties');
        const props = m.application_properties || {};
        equal(['s', 'n', 'f', 'b'].map((k) => props[k]), ['x', 42, 1.5, true], 'application properties');
        check(typeof m.message_id === 'string' && m.message_id.startsWith('ID:'), `message-id ${m.message_id}`);
        ctx.delivery.accept();
    },
};

async function main() {
    const run = scenarios[SCENARIO];
    if (!run) {
        console.log(`unknown scenario '${SCENARIO}' (known: ${Object.keys(scenarios).join(', ')})`);
        process.exit(2);
    }
    const deadline = setTimeout(() => {
        console.log(`FAILED: ${SCENARIO}: not finished within ${RUN_MS} ms`);
        process.exit(1);
    }, RUN_MS);
    try {
        await run();
    } catch (e) {
        console.log(`FAILED: ${SCENARIO}: ${e instanceof CheckFailed ? e.message : e.stack}`);
        process.exit(1);
    }
    clearTimeout(deadline);
    console.log(`OK: ${SCENARIO}`);
    process.exit(0);
}

main();
