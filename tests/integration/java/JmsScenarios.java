// tests/integration/java/JmsScenarios.java — JMS scenarios on ActiveMQ's own OpenWire client
// (Debian's libactivemq-java 5.17), driven by tests/integration/openwire_jms_test.py, which
// compiles it with javac at test time and runs it against Switchboard (and, as the reference
// that shows the scenario itself is right, against Debian's ActiveMQ).
//
//   java JmsScenarios URL PREFIX SCENARIO...
//
// URL is a broker URL as an application gives it (tcp://host:port?wireFormat.version=9&...);
// PREFIX makes the destination names and client ids of one run unique, so that several runs
// can share a broker. Each scenario prints "PASS name" or "FAIL name: why" (one line); the exit
// code is 0 when every scenario passed. Every receive is bounded (WAIT_MS for what must come,
// QUIET_MS for what must not), and every connection is closed by the scenario.

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import javax.jms.BytesMessage;
import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.Destination;
import javax.jms.JMSException;
import javax.jms.MapMessage;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.ObjectMessage;
import javax.jms.Queue;
import javax.jms.Session;
import javax.jms.StreamMessage;
import javax.jms.TemporaryQueue;
import javax.jms.TextMessage;
import javax.jms.Topic;
import javax.jms.TopicSubscriber;
import javax.jms.XAConnection;
import javax.jms.XASession;
import javax.transaction.xa.XAException;
import javax.transaction.xa.XAResource;
import javax.transaction.xa.Xid;

import javax.jms.InvalidClientIDException;
import javax.jms.QueueBrowser;

import org.apache.activemq.ActiveMQConnection;
import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.ActiveMQSession;
import org.apache.activemq.ActiveMQSslConnectionFactory;
import org.apache.activemq.ActiveMQXAConnectionFactory;
import org.apache.activemq.RedeliveryPolicy;

public final class JmsScenarios {
    static final long WAIT_MS = 5000;
    static final long QUIET_MS = 300;

    static String url;
    static String prefix;

    private JmsScenarios() {}

    // A failed expectation: the scenario's FAIL line says why.
    static final class Failure extends Exception {
        Failure(String why) { super(why); }
    }

    interface Scenario { void run() throws Exception; }

    public static void main(String[] args) {
        if (args.length < 3) {
            System.err.println("usage: JmsScenarios URL PREFIX SCENARIO...");
            Runtime.getRuntime().halt(2);
        }
        url = args[0];
        prefix = args[1];
        boolean all = true;
        for (String name : Arrays.asList(args).subList(2, args.length)) {
            final Scenario s = scenario(name);
            String verdict;
            try {
                if (s == null) throw new Failure("no such scenario");
                s.run();
                verdict = "PASS " + name;
            } catch (Throwable t) {
                all = false;
                verdict = "FAIL " + name + ": " + (t instanceof Failure ? "" : t.getClass().getName() + " ")
                          + String.valueOf(t.getMessage()).replace('\n', ' ');
            }
            System.out.println(verdict);
            System.out.flush();
        }
        // The client's transport threads are not daemons everywhere: leave at once.
        Runtime.getRuntime().halt(all ? 0 : 1);
    }

    static Scenario scenario(String name) {
        // Roles driven by openwire_jms_test.py across broker restarts and JVMs: NAME:ARGS.
        final String[] a = name.split(":");
        switch (a[0]) {
        case "durable_subscribe": return JmsScenarios::durableSubscribe;
        case "durable_publish": return () -> durablePublish(Integer.parseInt(a[1]));
        case "durable_receive": return () -> durableReceive(Integer.parseInt(a[1]));
        case "failover": return () -> failover(Integer.parseInt(a[1]));
        case "registry": return () -> registry(a[1], a[2], Integer.parseInt(a[3]));
        case "xsend": return () -> crossSend(a[1], a[2]);
        case "login": return () -> login(a[1], a[2], a[3].equals("accepted"));
        case "xreceive": return () -> crossReceive(a[1], a[2], Integer.parseInt(a[3]));
        case "xa": return () -> xa(a[1].equals("supported"));
        case "tls": return () -> tls(a[1], a[2], a[3]);
        default: break;
        }
        switch (name) {
        case "connect": return JmsScenarios::connect;
        case "queue": return JmsScenarios::queue;
        case "topic": return JmsScenarios::topic;
        case "types": return JmsScenarios::types;
        case "client_ack_recover": return JmsScenarios::clientAckRecover;
        case "transaction": return JmsScenarios::transaction;
        case "request_reply": return JmsScenarios::requestReply;
        case "selector": return JmsScenarios::selector;
        case "prefetch0": return JmsScenarios::prefetch0;
        case "durable": return JmsScenarios::durable;
        case "groups": return JmsScenarios::groups;
        case "individual_ack": return JmsScenarios::individualAck;
        case "dead_letter": return JmsScenarios::deadLetter;
        case "browse": return JmsScenarios::browse;
        case "exclusive": return JmsScenarios::exclusive;
        case "client_id": return JmsScenarios::clientId;
        case "no_local": return JmsScenarios::noLocal;
        case "async_window": return JmsScenarios::asyncWindow;
        case "scheduled": return JmsScenarios::scheduled;
        default: return null;
        }
    }

    // ---- helpers ---------------------------------------------------------------------------

    static ActiveMQConnectionFactory factory() {
        final ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(url);
        f.setConnectResponseTimeout(10000);   // a broker that never answers fails the call
        f.setSendTimeout(10000);
        // ObjectMessage: the test's own Payload class is deserialized by the client only.
        f.setTrustAllPackages(true);
        return f;
    }

    static Connection open(ActiveMQConnectionFactory f, String clientId) throws JMSException {
        final Connection c = f.createConnection();
        if (clientId != null) c.setClientID(clientId);
        c.start();
        return c;
    }

    static Connection open() throws JMSException { return open(factory(), null); }

    static String name(String what) { return prefix + "." + what; }

    static void check(boolean ok, String why) throws Failure {
        if (!ok) throw new Failure(why);
    }

    static void equal(Object expected, Object got, String what) throws Failure {
        if (expected == null ? got != null : !expected.equals(got))
            throw new Failure(what + ": expected " + expected + ", got " + got);
    }

    static Message receive(MessageConsumer c, String what) throws JMSException, Failure {
        final Message m = c.receive(WAIT_MS);
        if (m == null) throw new Failure("nothing received: " + what);
        return m;
    }

    static String text(MessageConsumer c, String what) throws JMSException, Failure {
        final Message m = receive(c, what);
        if (!(m instanceof TextMessage)) throw new Failure(what + ": not a TextMessage but " + m.getClass().getName());
        return ((TextMessage) m).getText();
    }

    static void nothing(MessageConsumer c, String what) throws JMSException, Failure {
        final Message m = c.receive(QUIET_MS);
        if (m != null) throw new Failure("unexpected message (" + what + "): " + describe(m));
    }

    static String describe(Message m) throws JMSException {
        return m instanceof TextMessage ? "text '" + ((TextMessage) m).getText() + "'" : m.getClass().getSimpleName();
    }

    // ---- scenarios -------------------------------------------------------------------------

    // The handshake: the broker's name and id come with its BrokerInfo.
    static void connect() throws Exception {
        final Connection c = open();
        try {
            final ActiveMQConnection a = (ActiveMQConnection) c;
            check(a.getBrokerName() != null && !a.getBrokerName().isEmpty(), "no broker name");
            check(a.getBrokerInfo() != null && a.getBrokerInfo().getBrokerId() != null, "no broker id");
            check(c.getMetaData().getJMSProviderName() != null, "no provider name");
        } finally {
            c.close();
        }
    }

    // AUTO_ACKNOWLEDGE queue send/receive, persistent (synchronous) and not (asynchronous), in
    // order; consumed messages are gone for the next consumer.
    static void queue() throws Exception {
        final Connection c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Queue q = s.createQueue(name("queue"));
            final MessageProducer p = s.createProducer(q);
            for (int i = 0; i < 5; ++i) p.send(s.createTextMessage("p-" + i));
            p.setDeliveryMode(DeliveryMode.NON_PERSISTENT);
            for (int i = 0; i < 5; ++i) p.send(s.createTextMessage("n-" + i));
            final MessageConsumer consumer = s.createConsumer(q);
            for (int i = 0; i < 5; ++i) equal("p-" + i, text(consumer, "persistent " + i), "message " + i);
            for (int i = 0; i < 5; ++i) equal("n-" + i, text(consumer, "non-persistent " + i), "message " + (5 + i));
            consumer.close();
            final MessageConsumer again = s.createConsumer(q);
            nothing(again, "the queue was consumed");
        } finally {
            c.close();
        }
    }

    // Topic pub/sub: two subscribers (one on another connection) each get every message.
    static void topic() throws Exception {
        final Connection c = open();
        final Connection c2 = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Session s2 = c2.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Topic t = s.createTopic(name("topic"));
            final MessageConsumer a = s.createConsumer(t);
            final MessageConsumer b = s2.createConsumer(s2.createTopic(name("topic")));
            final MessageProducer p = s.createProducer(t);
            for (int i = 0; i < 5; ++i) p.send(s.createTextMessage("t-" + i));
            for (int i = 0; i < 5; ++i) {
                equal("t-" + i, text(a, "subscriber a " + i), "a's message " + i);
                equal("t-" + i, text(b, "subscriber b " + i), "b's message " + i);
            }
            nothing(a, "only 5 published");
        } finally {
            c.close();
            c2.close();
        }
    }

    static final class Payload implements Serializable {
        private static final long serialVersionUID = 1L;
        final String name;
        final int n;
        Payload(String name, int n) { this.name = name; this.n = n; }
        @Override public boolean equals(Object o) {
            return o instanceof Payload && ((Payload) o).name.equals(name) && ((Payload) o).n == n;
        }
        @Override public int hashCode() { return name.hashCode() + n; }
    }

    // Each message type round trip, with the JMS headers and typed properties.
    static void types() throws Exception {
        final Connection c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Queue q = s.createQueue(name("types"));
            final Queue replyTo = s.createQueue(name("types.reply"));
            final MessageProducer p = s.createProducer(q);
            final List<Message> sent = new ArrayList<>();

            final TextMessage text = s.createTextMessage("héllo wörld");
            sent.add(text);
            final BytesMessage bytes = s.createBytesMessage();
            bytes.writeBytes(new byte[] {0, 1, 2, (byte) 0xff, 127});
            sent.add(bytes);
            final MapMessage map = s.createMapMessage();
            map.setString("s", "str");
            map.setInt("i", 42);
            map.setLong("l", 1L << 40);
            map.setBoolean("b", true);
            map.setDouble("d", 2.5);
            map.setBytes("y", new byte[] {9, 8});
            sent.add(map);
            final StreamMessage stream = s.createStreamMessage();
            stream.writeString("one");
            stream.writeInt(2);
            stream.writeBoolean(false);
            sent.add(stream);
            sent.add(s.createObjectMessage(new Payload("obj", 7)));
            sent.add(s.createMessage());

            int i = 0;
            for (Message m : sent) {
                m.setJMSCorrelationID("corr-" + i);
                m.setJMSType("type-" + i);
                m.setJMSReplyTo(replyTo);
                m.setStringProperty("sp", "v" + i);
                m.setIntProperty("ip", i);
                m.setLongProperty("lp", 1L << 33);
                m.setBooleanProperty("bp", true);
                m.setDoubleProperty("dp", 1.25);
                m.setFloatProperty("fp", 0.5f);
                m.setShortProperty("shp", (short) 300);
                m.setByteProperty("byp", (byte) -3);
                p.send(m, DeliveryMode.PERSISTENT, 7, 60000);
                ++i;
            }
            final MessageConsumer consumer = s.createConsumer(q);
            i = 0;
            for (Message m : sent) {
                final String what = "message " + i + " (" + m.getClass().getSimpleName() + ")";
                final Message r = receive(consumer, what);
                equal(m.getJMSMessageID(), r.getJMSMessageID(), what + " JMSMessageID");
                equal("corr-" + i, r.getJMSCorrelationID(), what + " JMSCorrelationID");
                equal("type-" + i, r.getJMSType(), what + " JMSType");
                equal(replyTo, r.getJMSReplyTo(), what + " JMSReplyTo");
                equal(7, r.getJMSPriority(), what + " JMSPriority");
                equal(DeliveryMode.PERSISTENT, r.getJMSDeliveryMode(), what + " JMSDeliveryMode");
                check(r.getJMSExpiration() > System.currentTimeMillis(), what + " JMSExpiration " + r.getJMSExpiration());
                check(r.getJMSTimestamp() > 0, what + " JMSTimestamp");
                check(!r.getJMSRedelivered(), what + " JMSRedelivered");
                equal(q, r.getJMSDestination(), what + " JMSDestination");
                equal("v" + i, r.getStringProperty("sp"), what + " string property");
                equal(i, r.getObjectProperty("ip"), what + " int property");
                equal(1L << 33, r.getObjectProperty("lp"), what + " long property");
                equal(Boolean.TRUE, r.getObjectProperty("bp"), what + " boolean property");
                equal(1.25, r.getObjectProperty("dp"), what + " double property");
                equal(0.5f, r.getObjectProperty("fp"), what + " float property");
                equal((short) 300, r.getObjectProperty("shp"), what + " short property");
                equal((byte) -3, r.getObjectProperty("byp"), what + " byte property");
                check(r.getClass() == m.getClass() || m.getClass().isAssignableFrom(r.getClass()),
                      what + " came back as " + r.getClass().getSimpleName());
                if (m instanceof TextMessage) {
                    equal("héllo wörld", ((TextMessage) r).getText(), what + " text");
                } else if (m instanceof BytesMessage) {
                    final BytesMessage b = (BytesMessage) r;
                    final byte[] data = new byte[(int) b.getBodyLength()];
                    b.readBytes(data);
                    check(Arrays.equals(new byte[] {0, 1, 2, (byte) 0xff, 127}, data), what + " bytes " + Arrays.toString(data));
                } else if (m instanceof MapMessage) {
                    final MapMessage mm = (MapMessage) r;
                    equal("str", mm.getString("s"), what + " s");
                    equal(42, mm.getInt("i"), what + " i");
                    equal(1L << 40, mm.getLong("l"), what + " l");
                    equal(true, mm.getBoolean("b"), what + " b");
                    equal(2.5, mm.getDouble("d"), what + " d");
                    check(Arrays.equals(new byte[] {9, 8}, mm.getBytes("y")), what + " y");
                } else if (m instanceof StreamMessage) {
                    final StreamMessage sm = (StreamMessage) r;
                    equal("one", sm.readString(), what + " 1st");
                    equal(2, sm.readInt(), what + " 2nd");
                    equal(false, sm.readBoolean(), what + " 3rd");
                } else if (m instanceof ObjectMessage) {
                    equal(new Payload("obj", 7), ((ObjectMessage) r).getObject(), what + " object");
                } else {
                    check(!(r instanceof TextMessage || r instanceof BytesMessage || r instanceof MapMessage
                            || r instanceof StreamMessage || r instanceof ObjectMessage),
                          what + " came back as " + r.getClass().getSimpleName());
                }
                ++i;
            }
        } finally {
            c.close();
        }
    }

    // CLIENT_ACKNOWLEDGE: recover() redelivers what was not acknowledged (JMSRedelivered,
    // JMSXDeliveryCount 2); acknowledged messages are gone, unacknowledged ones come back to the
    // next consumer when the connection closes.
    static void clientAckRecover() throws Exception {
        final String qn = name("clientack");
        Connection c = open();
        try {
            final Session s = c.createSession(false, Session.CLIENT_ACKNOWLEDGE);
            final Queue q = s.createQueue(qn);
            final MessageProducer p = s.createProducer(q);
            for (int i = 0; i < 3; ++i) p.send(s.createTextMessage("c-" + i));
            final MessageConsumer consumer = s.createConsumer(q);
            final Message m0 = receive(consumer, "first");
            equal("c-0", ((TextMessage) m0).getText(), "first");
            check(!m0.getJMSRedelivered(), "first delivery marked redelivered");
            equal("c-1", text(consumer, "second"), "second");
            s.recover();
            final Message again = receive(consumer, "after recover");
            equal("c-0", ((TextMessage) again).getText(), "after recover");
            check(again.getJMSRedelivered(), "redelivery not marked JMSRedelivered");
            equal(2, again.getIntProperty("JMSXDeliveryCount"), "JMSXDeliveryCount");
            equal("c-1", text(consumer, "second after recover"), "second after recover");
            again.acknowledge();   // acknowledges c-0 and c-1 (everything delivered to the session)
            equal("c-2", text(consumer, "third"), "third");
            // c-2 is not acknowledged: it goes back to the queue when the connection closes.
        } finally {
            c.close();
        }
        c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final MessageConsumer consumer = s.createConsumer(s.createQueue(qn));
            final Message m = receive(consumer, "unacknowledged after close");
            equal("c-2", ((TextMessage) m).getText(), "unacknowledged after close");
            check(m.getJMSRedelivered(), "c-2 not marked redelivered");
            nothing(consumer, "c-0 and c-1 were acknowledged");
        } finally {
            c.close();
        }
    }

    // Local transactions: sends are invisible until commit and dropped by rollback; received
    // messages come back (redelivered) after a rollback and are gone after a commit.
    static void transaction() throws Exception {
        final Connection c = open();
        try {
            final Session tx = c.createSession(true, Session.SESSION_TRANSACTED);
            final Session plain = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Queue q = tx.createQueue(name("tx"));
            final MessageProducer p = tx.createProducer(q);
            final MessageConsumer watcher = plain.createConsumer(q);
            p.send(tx.createTextMessage("rolled-back"));
            nothing(watcher, "a send before commit");
            tx.rollback();
            nothing(watcher, "a rolled-back send");
            p.send(tx.createTextMessage("tx-0"));
            p.send(tx.createTextMessage("tx-1"));
            nothing(watcher, "sends before commit");
            tx.commit();
            equal("tx-0", text(watcher, "first committed send"), "first committed");
            equal("tx-1", text(watcher, "second committed send"), "second committed");
            watcher.close();

            // Transacted receive.
            plain.createProducer(q).send(plain.createTextMessage("r-0"));
            final MessageConsumer consumer = tx.createConsumer(q);
            equal("r-0", text(consumer, "transacted receive"), "transacted receive");
            tx.rollback();
            final Message again = receive(consumer, "after rollback");
            equal("r-0", ((TextMessage) again).getText(), "after rollback");
            check(again.getJMSRedelivered(), "rolled-back receive not marked redelivered");
            tx.commit();
            consumer.close();
            final MessageConsumer after = plain.createConsumer(q);
            nothing(after, "a committed receive");
        } finally {
            c.close();
        }
    }

    // Request/reply: the requester's temporary queue as JMSReplyTo, a responder on another
    // connection answering with the request's correlation id.
    static void requestReply() throws Exception {
        final Connection server = open();
        final Connection client = open();
        try {
            final Session ss = server.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final MessageConsumer requests = ss.createConsumer(ss.createQueue(name("rpc")));
            final MessageProducer replies = ss.createProducer(null);
            requests.setMessageListener(m -> {
                try {
                    final TextMessage answer = ss.createTextMessage("re: " + ((TextMessage) m).getText());
                    answer.setJMSCorrelationID(m.getJMSMessageID());
                    replies.send(m.getJMSReplyTo(), answer);
                } catch (JMSException e) {
                    throw new RuntimeException(e);
                }
            });
            final Session cs = client.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final TemporaryQueue tq = cs.createTemporaryQueue();
            final MessageConsumer answers = cs.createConsumer(tq);
            final MessageProducer p = cs.createProducer(cs.createQueue(name("rpc")));
            for (int i = 0; i < 3; ++i) {
                final TextMessage req = cs.createTextMessage("q" + i);
                req.setJMSReplyTo(tq);
                p.send(req);
                final Message answer = receive(answers, "reply " + i);
                equal("re: q" + i, ((TextMessage) answer).getText(), "reply " + i);
                equal(req.getJMSMessageID(), answer.getJMSCorrelationID(), "reply " + i + " correlation id");
                equal(tq, answer.getJMSDestination(), "reply " + i + " destination");
            }
            answers.close();   // a temporary queue with a consumer cannot be deleted
            tq.delete();
        } finally {
            client.close();
            server.close();
        }
    }

    // Selectors: on a queue (each message to the consumer that selects it) and on a topic.
    static void selector() throws Exception {
        final Connection c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Queue q = s.createQueue(name("selector"));
            final MessageProducer p = s.createProducer(q);
            final String[] colors = {"red", "blue", "red", "green", "blue"};
            for (int i = 0; i < colors.length; ++i) {
                final TextMessage m = s.createTextMessage(colors[i] + "-" + i);
                m.setStringProperty("color", colors[i]);
                m.setIntProperty("n", i);
                p.send(m);
            }
            final MessageConsumer blue = s.createConsumer(q, "color = 'blue' AND n > 1");
            equal("blue-4", text(blue, "the blue one past 1"), "blue selector");
            nothing(blue, "one blue message past 1");
            final MessageConsumer red = s.createConsumer(q, "color IN ('red') OR JMSPriority > 8");
            equal("red-0", text(red, "first red"), "red selector");
            equal("red-2", text(red, "second red"), "red selector");
            nothing(red, "two red messages");
            blue.close();
            red.close();
            final MessageConsumer rest = s.createConsumer(q);
            equal("blue-1", text(rest, "left: blue-1"), "left");
            equal("green-3", text(rest, "left: green-3"), "left");
            nothing(rest, "everything consumed");

            final Topic t = s.createTopic(name("selector.topic"));
            final MessageConsumer sub = s.createConsumer(t, "weight >= 10");
            final MessageProducer tp = s.createProducer(t);
            for (int w : new int[] {5, 10, 20}) {
                final TextMessage m = s.createTextMessage("w" + w);
                m.setIntProperty("weight", w);
                tp.send(m);
            }
            equal("w10", text(sub, "w10"), "topic selector");
            equal("w20", text(sub, "w20"), "topic selector");
            nothing(sub, "w5 not selected");
        } finally {
            c.close();
        }
    }

    // Prefetch 0: the consumer pulls (MessagePull) each message; two pull consumers share a
    // queue without either holding messages it has not asked for.
    static void prefetch0() throws Exception {
        final ActiveMQConnectionFactory f = factory();
        f.getPrefetchPolicy().setAll(0);
        final Connection c = open(f, null);
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Queue q = s.createQueue(name("pull"));
            final MessageConsumer a = s.createConsumer(q);
            final MessageConsumer b = s.createConsumer(q);
            nothing(a, "an empty queue");
            final MessageProducer p = s.createProducer(q);
            for (int i = 0; i < 4; ++i) p.send(s.createTextMessage("m-" + i));
            equal("m-0", text(a, "a's pull"), "a's first pull");
            equal("m-1", text(b, "b's pull"), "b's first pull");
            final Message nowait = a.receiveNoWait();
            // receiveNoWait pulls with a timeout of -1: the broker answers at once, with the
            // message or with nothing; ActiveMQ answers with the message when one is queued.
            equal("m-2", nowait == null ? null : ((TextMessage) nowait).getText(), "receiveNoWait");
            equal("m-3", text(b, "b's second pull"), "b's second pull");
            nothing(a, "the queue is empty");
        } finally {
            c.close();
        }
    }

    // A durable subscriber across a reconnect: what was published while it was away is kept
    // for it; unsubscribe deletes it.
    static void durable() throws Exception {
        final String clientId = prefix + "-durable";
        final String tn = name("durable");
        Connection c = open(factory(), clientId);
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final TopicSubscriber sub = s.createDurableSubscriber(s.createTopic(tn), "sub", "keep = true", false);
            final MessageProducer p = s.createProducer(s.createTopic(tn));
            final TextMessage m = s.createTextMessage("online");
            m.setBooleanProperty("keep", true);
            p.send(m);
            equal("online", text(sub, "while online"), "while online");
            sub.close();
        } finally {
            c.close();
        }
        final Connection other = open();
        try {
            final Session s = other.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final MessageProducer p = s.createProducer(s.createTopic(tn));
            for (int i = 0; i < 3; ++i) {
                final TextMessage m = s.createTextMessage("away-" + i);
                m.setBooleanProperty("keep", i != 1);
                p.send(m);
            }
        } finally {
            other.close();
        }
        c = open(factory(), clientId);
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final TopicSubscriber sub = s.createDurableSubscriber(s.createTopic(tn), "sub", "keep = true", false);
            equal("away-0", text(sub, "kept while away"), "kept while away");
            equal("away-2", text(sub, "kept while away"), "kept while away");
            nothing(sub, "away-1 not selected");
            sub.close();
            s.unsubscribe("sub");
        } finally {
            c.close();
        }
        // Unsubscribed: a new subscription with the same name starts empty.
        final Connection pub = open();
        try {
            final Session s = pub.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final TextMessage m = s.createTextMessage("after unsubscribe");
            m.setBooleanProperty("keep", true);
            s.createProducer(s.createTopic(tn)).send(m);
        } finally {
            pub.close();
        }
        c = open(factory(), clientId);
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final TopicSubscriber sub = s.createDurableSubscriber(s.createTopic(tn), "sub", "keep = true", false);
            nothing(sub, "the subscription was deleted");
            sub.close();
            s.unsubscribe("sub");
        } finally {
            c.close();
        }
    }

    // Message groups: every message of a group goes to the consumer that took its first one.
    static void groups() throws Exception {
        final Connection c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Queue q = s.createQueue(name("groups"));
            final MessageConsumer a = s.createConsumer(q);
            final MessageConsumer b = s.createConsumer(q);
            final MessageProducer p = s.createProducer(q);
            for (int i = 0; i < 10; ++i) {
                final TextMessage m = s.createTextMessage((i % 2 == 0 ? "A" : "B") + "-" + i);
                m.setStringProperty("JMSXGroupID", i % 2 == 0 ? "gA" : "gB");
                p.send(m);
            }
            final Set<String> groupsOfA = new HashSet<>();
            final Set<String> groupsOfB = new HashSet<>();
            int got = 0;
            for (MessageConsumer consumer : new MessageConsumer[] {a, b}) {
                while (true) {
                    final Message m = consumer.receive(QUIET_MS * 3);
                    if (m == null) break;
                    ++got;
                    (consumer == a ? groupsOfA : groupsOfB).add(m.getStringProperty("JMSXGroupID"));
                }
            }
            equal(10, got, "messages received");
            final Set<String> both = new HashSet<>(groupsOfA);
            both.retainAll(groupsOfB);
            check(both.isEmpty(), "a group went to both consumers: " + both);
        } finally {
            c.close();
        }
    }

    // INDIVIDUAL_ACKNOWLEDGE: acknowledging one message leaves the others unacknowledged.
    static void individualAck() throws Exception {
        final String qn = name("individual");
        Connection c = open();
        try {
            final Session s = c.createSession(false, ActiveMQSession.INDIVIDUAL_ACKNOWLEDGE);
            final Queue q = s.createQueue(qn);
            final MessageProducer p = s.createProducer(q);
            for (int i = 0; i < 3; ++i) p.send(s.createTextMessage("i-" + i));
            final MessageConsumer consumer = s.createConsumer(q);
            receive(consumer, "i-0");
            final Message m1 = receive(consumer, "i-1");
            receive(consumer, "i-2");
            m1.acknowledge();
        } finally {
            c.close();
        }
        c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final MessageConsumer consumer = s.createConsumer(s.createQueue(qn));
            equal("i-0", text(consumer, "unacknowledged i-0"), "first left");
            equal("i-2", text(consumer, "unacknowledged i-2"), "second left");
            nothing(consumer, "i-1 was acknowledged");
        } finally {
            c.close();
        }
    }

    // Past the client's redelivery policy a message goes to the dead-letter queue, with the
    // client's cause in dlqDeliveryFailureCause.
    static void deadLetter() throws Exception {
        final ActiveMQConnectionFactory f = factory();
        final RedeliveryPolicy policy = new RedeliveryPolicy();
        policy.setMaximumRedeliveries(1);
        policy.setInitialRedeliveryDelay(0);
        policy.setRedeliveryDelay(0);
        f.setRedeliveryPolicy(policy);
        final Connection c = open(f, null);
        try {
            final Session tx = c.createSession(true, Session.SESSION_TRANSACTED);
            final Queue q = tx.createQueue(name("poison"));
            final MessageProducer p = tx.createProducer(q);
            final TextMessage m = tx.createTextMessage("poison");
            m.setStringProperty("marker", prefix);
            p.send(m);
            tx.commit();
            final MessageConsumer consumer = tx.createConsumer(q);
            equal("poison", text(consumer, "first delivery"), "first delivery");
            tx.rollback();
            equal("poison", text(consumer, "redelivery"), "redelivery");
            tx.rollback();   // past maximumRedeliveries: a poison ack
            nothing(consumer, "dead-lettered");
            final Session plain = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final MessageConsumer dlq = plain.createConsumer(plain.createQueue("ActiveMQ.DLQ"), "marker = '" + prefix + "'");
            final Message dead = receive(dlq, "the dead-lettered message");
            equal("poison", ((TextMessage) dead).getText(), "dead-lettered body");
            final String cause = dead.getStringProperty("dlqDeliveryFailureCause");
            // Version 1 has no poison cause on the wire (a v7 field): no cause then, as ActiveMQ.
            if (url.matches(".*wireFormat\\.version=1(&.*)?$")) check(cause == null, "dlqDeliveryFailureCause in v1: " + cause);
            else check(cause != null && cause.contains("redelivery policy"), "dlqDeliveryFailureCause: " + cause);
        } finally {
            c.close();
        }
    }

    // A QueueBrowser sees the queue's messages in order without consuming them.
    static void browse() throws Exception {
        final Connection c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Queue q = s.createQueue(name("browse"));
            final MessageProducer p = s.createProducer(q);
            for (int i = 0; i < 3; ++i) p.send(s.createTextMessage("b-" + i));
            final QueueBrowser browser = s.createBrowser(q);
            final java.util.Enumeration<?> e = browser.getEnumeration();
            final List<String> seen = new ArrayList<>();
            final long deadline = System.currentTimeMillis() + WAIT_MS;
            while (e.hasMoreElements() && System.currentTimeMillis() < deadline)
                seen.add(((TextMessage) e.nextElement()).getText());
            browser.close();
            equal(Arrays.asList("b-0", "b-1", "b-2"), seen, "browsed");
            final MessageConsumer consumer = s.createConsumer(q);
            for (int i = 0; i < 3; ++i) equal("b-" + i, text(consumer, "after browsing"), "still queued");
        } finally {
            c.close();
        }
    }

    // An exclusive consumer gets every message while it is subscribed.
    static void exclusive() throws Exception {
        final Connection c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final MessageConsumer other = s.createConsumer(s.createQueue(name("exclusive")));
            final MessageConsumer only = s.createConsumer(s.createQueue(name("exclusive") + "?consumer.exclusive=true"));
            final MessageProducer p = s.createProducer(s.createQueue(name("exclusive")));
            for (int i = 0; i < 4; ++i) p.send(s.createTextMessage("e-" + i));
            for (int i = 0; i < 4; ++i) equal("e-" + i, text(only, "exclusive " + i), "exclusive consumer");
            nothing(other, "the exclusive consumer takes everything");
        } finally {
            c.close();
        }
    }

    // A client id is taken by one connection at a time.
    static void clientId() throws Exception {
        final Connection a = open(factory(), prefix + "-unique");
        try {
            try {
                final Connection b = open(factory(), prefix + "-unique");
                b.close();
                throw new Failure("a second connection with the same client id was accepted");
            } catch (InvalidClientIDException expected) {
                // as ActiveMQ
            }
        } finally {
            a.close();
        }
        open(factory(), prefix + "-unique").close();   // free again once closed
    }

    // noLocal: a topic subscriber does not get its own connection's messages.
    static void noLocal() throws Exception {
        final Connection c = open();
        final Connection other = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Topic t = s.createTopic(name("nolocal"));
            final MessageConsumer sub = s.createConsumer(t, null, true);
            s.createProducer(t).send(s.createTextMessage("mine"));
            final Session os = other.createSession(false, Session.AUTO_ACKNOWLEDGE);
            os.createProducer(os.createTopic(name("nolocal"))).send(os.createTextMessage("theirs"));
            equal("theirs", text(sub, "the other connection's"), "no-local");
            nothing(sub, "its own message");
        } finally {
            c.close();
            other.close();
        }
    }

    // Asynchronous sends with a producer window (ProducerAcks) and compressed or not: all arrive.
    static void asyncWindow() throws Exception {
        final ActiveMQConnectionFactory f = factory();
        f.setUseAsyncSend(true);
        f.setProducerWindowSize(4096);
        final Connection c = open(f, null);
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Queue q = s.createQueue(name("async"));
            final MessageProducer p = s.createProducer(q);
            final int n = 2000;
            for (int i = 0; i < n; ++i) p.send(s.createTextMessage("a-" + i));
            final MessageConsumer consumer = s.createConsumer(q);
            for (int i = 0; i < n; ++i) equal("a-" + i, text(consumer, "async " + i), "async " + i);
        } finally {
            c.close();
        }
    }

    // Scheduled delivery: a message with the long property AMQ_SCHEDULED_DELAY (ms) arrives no
    // earlier than that after its send; one sent after it without a delay arrives first, at once.
    static void scheduled() throws Exception {
        final long delay = 1500;
        final Connection c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Queue q = s.createQueue(name("scheduled"));
            final MessageConsumer consumer = s.createConsumer(q);
            final MessageProducer p = s.createProducer(q);
            final TextMessage later = s.createTextMessage("later");
            later.setLongProperty("AMQ_SCHEDULED_DELAY", delay);
            final long sent = System.nanoTime();
            p.send(later);
            p.send(s.createTextMessage("now"));
            equal("now", text(consumer, "the message without a delay"), "first message");
            final Message m = consumer.receive(delay + WAIT_MS);
            final long took = (System.nanoTime() - sent) / 1_000_000;
            if (m == null) throw new Failure("the delayed message did not arrive within " + (delay + WAIT_MS) + " ms");
            check(m instanceof TextMessage && "later".equals(((TextMessage) m).getText()), "second: " + describe(m));
            check(took >= delay, "the delayed message arrived " + took + " ms after its send, before its delay " + delay);
        } finally {
            c.close();
        }
    }

    static Xid xid(final String tag) {
        return new Xid() {
            public int getFormatId() { return 0x5342; }
            public byte[] getGlobalTransactionId() { return (tag + "-g").getBytes(); }
            public byte[] getBranchQualifier() { return (tag + "-b").getBytes(); }
        };
    }

    // XA through ActiveMQXAConnectionFactory: the steps of a transaction manager (a recovery
    // scan, start, a send in the transaction, end, prepare, commit). "supported" (ActiveMQ, the
    // reference): the message is committed. "refused" (Switchboard, docs/openwire.md): every step
    // that reaches the broker fails with its "XA transactions are not supported" — the send as a
    // JMSException, the others as XAExceptions (start is asynchronous in the client, so its
    // refusal is not seen) — nothing is enqueued, and the connections go on working.
    static void xa(boolean supported) throws Exception {
        final ActiveMQXAConnectionFactory f = new ActiveMQXAConnectionFactory(url);
        f.setConnectResponseTimeout(10000);
        f.setAlwaysSyncSend(true);   // the send waits for the broker's answer
        final XAConnection c = f.createXAConnection();
        final Connection plain = open();
        try {
            c.start();
            final XASession xs = c.createXASession();
            final XAResource r = xs.getXAResource();
            final Queue q = xs.createQueue(name("xa"));
            final Xid id = xid(prefix);
            final List<String> refused = new ArrayList<>();
            try {
                r.recover(XAResource.TMSTARTRSCAN);
            } catch (XAException e) {
                refused.add("recover: " + e.getMessage());
            }
            r.start(id, XAResource.TMNOFLAGS);
            try {
                xs.createProducer(q).send(xs.createTextMessage("xa"));
            } catch (JMSException e) {
                refused.add("send: " + e.getMessage());
            }
            try {
                r.end(id, XAResource.TMSUCCESS);
            } catch (XAException e) {
                refused.add("end: " + e.getMessage());
            }
            try {
                equal(XAResource.XA_OK, r.prepare(id), "prepare");
            } catch (XAException e) {
                refused.add("prepare: " + e.getMessage());
            }
            try {
                r.commit(id, false);
            } catch (XAException e) {
                refused.add("commit: " + e.getMessage());
            }
            final Session s = plain.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final MessageConsumer consumer = s.createConsumer(q);
            if (supported) {
                check(refused.isEmpty(), "XA refused: " + refused);
                equal("xa", text(consumer, "the committed XA send"), "the XA message");
                return;
            }
            equal(5, refused.size(), "steps refused " + refused);
            for (String why : refused)
                check(why.endsWith("XA transactions are not supported"), "not the broker's refusal: " + why);
            nothing(consumer, "the refused XA send");
            // Both connections go on: the XA one still answers (a consumer is a synchronous
            // ConsumerInfo; its sessions send only inside XA transactions), the other sends.
            xs.createConsumer(xs.createQueue(name("xa.alive"))).close();
            s.createProducer(q).send(s.createTextMessage("after"));
            equal("after", text(consumer, "a send after the refusals"), "after the refusals");
        } finally {
            c.close();
            plain.close();
        }
    }

    // ssl://: ActiveMQ's SSL transport, trusting the broker's self-signed certificate from a
    // truststore (keytool), to a TLS listener on PORT of the URL's host; a queue round trip.
    static void tls(String port, String truststore, String password) throws Exception {
        final String host = new java.net.URI(url).getHost();
        final ActiveMQSslConnectionFactory f = new ActiveMQSslConnectionFactory("ssl://" + host + ":" + port);
        f.setConnectResponseTimeout(10000);
        f.setTrustStore(truststore);
        f.setTrustStorePassword(password);
        final Connection c = open(f, null);
        try {
            final ActiveMQConnection a = (ActiveMQConnection) c;
            check(a.getTransport().narrow(org.apache.activemq.transport.tcp.SslTransport.class) != null,
                  "not an SSL transport: " + a.getTransport());
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Queue q = s.createQueue(name("tls"));
            s.createProducer(q).send(s.createTextMessage("over tls"));
            equal("over tls", text(s.createConsumer(q), "over TLS"), "over TLS");
        } finally {
            c.close();
        }
    }

    // ---- roles across restarts and JVMs (openwire_jms_test.py drives them) -------------------

    static void durableSubscribe() throws Exception {
        final Connection c = open(factory(), prefix + "-restart");
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            s.createDurableSubscriber(s.createTopic(name("restart")), "sub").close();
        } finally {
            c.close();
        }
    }

    static void durablePublish(int n) throws Exception {
        final Connection c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final MessageProducer p = s.createProducer(s.createTopic(name("restart")));
            p.setDeliveryMode(DeliveryMode.PERSISTENT);
            for (int i = 0; i < n; ++i) p.send(s.createTextMessage("kept-" + i));
        } finally {
            c.close();
        }
    }

    static void durableReceive(int n) throws Exception {
        final Connection c = open(factory(), prefix + "-restart");
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final TopicSubscriber sub = s.createDurableSubscriber(s.createTopic(name("restart")), "sub");
            for (int i = 0; i < n; ++i) equal("kept-" + i, text(sub, "kept across the restart " + i), "after restart");
            nothing(sub, "only " + n + " were published");
            sub.close();
            s.unsubscribe("sub");
        } finally {
            c.close();
        }
    }

    // Request/reply to itself through failover:(...): prints HALF after half of the messages
    // (the test restarts the broker then) and must see every message once despite it.
    static void failover(int n) throws Exception {
        final Connection c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Queue q = s.createQueue(name("failover"));
            final MessageProducer p = s.createProducer(q);
            p.setDeliveryMode(DeliveryMode.PERSISTENT);
            final MessageConsumer consumer = s.createConsumer(q);
            final Set<String> got = new HashSet<>();
            for (int i = 0; i < n; ++i) {
                p.send(s.createTextMessage("f-" + i));
                if (i == n / 2) {
                    System.out.println("HALF");
                    System.out.flush();
                }
                final Message m = consumer.receive(30000);
                if (m == null) throw new Failure("nothing received after f-" + i + " (" + got.size() + " so far)");
                got.add(((TextMessage) m).getText());
            }
            while (got.size() < n) {
                final Message m = consumer.receive(5000);
                if (m == null) break;
                got.add(((TextMessage) m).getText());
            }
            equal(n, got.size(), "distinct messages received through the restart");
        } finally {
            c.close();
        }
    }

    // The clustered ticket registry: each node publishes on one topic with its node id and
    // subscribes with a selector that excludes its own; every message of the other node arrives
    // exactly once, none of its own. READY once subscribed; publishing starts at a line on stdin.
    static void registry(String node, String other, int n) throws Exception {
        final Connection c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Topic t = s.createTopic(name("registry"));
            final MessageConsumer sub = s.createConsumer(t, "node <> '" + node + "'");
            System.out.println("READY");
            System.out.flush();
            if (new java.io.BufferedReader(new java.io.InputStreamReader(System.in)).readLine() == null)
                throw new Failure("no GO");
            final Session ps = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final MessageProducer pp = ps.createProducer(ps.createTopic(name("registry")));
            pp.setDeliveryMode(DeliveryMode.NON_PERSISTENT);
            final Thread publisher = new Thread(() -> {
                try {
                    for (int i = 0; i < n; ++i) {
                        final TextMessage m = ps.createTextMessage("ticket-" + node + "-" + i);
                        m.setStringProperty("node", node);
                        m.setIntProperty("seq", i);
                        pp.send(m);
                    }
                } catch (JMSException e) {
                    throw new RuntimeException(e);
                }
            });
            publisher.start();
            final boolean[] seen = new boolean[n];
            int got = 0;
            while (got < n) {
                final Message m = sub.receive(15000);
                if (m == null) throw new Failure("received " + got + " of " + n + " from " + other);
                final String from = m.getStringProperty("node");
                if (!other.equals(from)) throw new Failure("a message of node " + from + " echoed back");
                final int seq = m.getIntProperty("seq");
                if (seq < 0 || seq >= n || seen[seq]) throw new Failure("ticket " + seq + " received twice or out of range");
                seen[seq] = true;
                ++got;
            }
            publisher.join(30000);
            nothing(sub, "exactly " + n + " from " + other);
        } finally {
            c.close();
        }
    }

    // ---- cross-protocol roles: the other side is a STOMP, MQTT or AMQP client in the test ----

    static Destination dest(Session s, String kind, String n) throws JMSException {
        return kind.equals("topic") ? s.createTopic(n) : s.createQueue(n);
    }

    // A TextMessage with headers and typed properties, then a BytesMessage.
    static void crossSend(String kind, String n) throws Exception {
        final Connection c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final MessageProducer p = s.createProducer(dest(s, kind, n));
            final TextMessage t = s.createTextMessage("jms-text");
            t.setJMSCorrelationID("c-1");
            t.setJMSType("t-1");
            t.setStringProperty("s", "str");
            t.setIntProperty("i", 42);
            t.setLongProperty("l", 1L << 40);
            t.setBooleanProperty("b", true);
            t.setDoubleProperty("d", 2.5);
            p.send(t, DeliveryMode.PERSISTENT, 7, 0);
            final BytesMessage b = s.createBytesMessage();
            b.writeBytes(new byte[] {1, 2, 3, (byte) 0xff});
            p.send(b, DeliveryMode.NON_PERSISTENT, 4, 0);
        } finally {
            c.close();
        }
    }

    // Prints READY once subscribed, then one MSG line per message (n of them, within WAIT_MS each).
    static void crossReceive(String kind, String n, int count) throws Exception {
        final Connection c = open();
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final MessageConsumer consumer = s.createConsumer(dest(s, kind, n));
            System.out.println("READY");
            System.out.flush();
            for (int i = 0; i < count; ++i) {
                final Message m = consumer.receive(WAIT_MS * 3);
                if (m == null) throw new Failure("received " + i + " of " + count);
                final StringBuilder line = new StringBuilder("MSG ").append(m.getClass().getSimpleName());
                if (m instanceof TextMessage) line.append(" body=").append(((TextMessage) m).getText());
                if (m instanceof BytesMessage) {
                    final BytesMessage b = (BytesMessage) m;
                    final byte[] data = new byte[(int) b.getBodyLength()];
                    b.readBytes(data);
                    line.append(" hex=");
                    for (byte x : data) line.append(String.format("%02x", x));
                }
                line.append(" corr=").append(m.getJMSCorrelationID()).append(" type=").append(m.getJMSType())
                    .append(" prio=").append(m.getJMSPriority()).append(" mode=").append(m.getJMSDeliveryMode())
                    .append(" props=");
                final List<String> props = new ArrayList<>();
                for (java.util.Enumeration<?> e = m.getPropertyNames(); e.hasMoreElements();) {
                    final String p = (String) e.nextElement();
                    final Object v = m.getObjectProperty(p);
                    props.add(p + "=" + (v == null ? "null" : v.getClass().getSimpleName() + ":" + v));
                }
                java.util.Collections.sort(props);
                line.append(String.join(";", props));
                System.out.println(line);
                System.out.flush();
            }
        } finally {
            c.close();
        }
    }

    // ConnectionInfo's credentials: accepted (a queue round trip works) or refused (the client
    // throws a JMSSecurityException from start()).
    static void login(String user, String password, boolean accepted) throws Exception {
        final ActiveMQConnectionFactory f = factory();
        f.setUserName(user);
        f.setPassword(password);
        Connection c = null;
        try {
            c = open(f, null);
            if (!accepted) throw new Failure("connected with user " + user + " and a wrong password");
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Queue q = s.createQueue(name("login"));
            s.createProducer(q).send(s.createTextMessage("in"));
            equal("in", text(s.createConsumer(q), "after login"), "after login");
        } catch (javax.jms.JMSSecurityException e) {
            if (accepted) throw new Failure("refused: " + e.getMessage());
        } finally {
            if (c != null) c.close();
        }
    }
}
