// tests/integration/java/OpenWireClient.java — a real OpenWire client (ActiveMQ's own JMS client,
// Debian's libactivemq-java) driven by tests/integration/gateway_activemq_test.py, which compiles
// it with javac at test time. One JVM per call; every wait is bounded; results go to stdout, one
// line each, for the test to parse:
//
//   send URL QUEUE COUNT PREFIX      sends COUNT text messages PREFIX-0 .. PREFIX-(COUNT-1)
//                                    prints "BROKER name", then "SENT n"
//   receive URL QUEUE COUNT WAIT_MS  receives up to COUNT messages, WAIT_MS at most for each
//                                    prints "BROKER name", "RECEIVED text" per message, "DONE n"
//   hold URL QUEUE WAIT_MS           connects with a consumer on QUEUE, prints "BROKER name" and
//                                    waits until the connection fails ("CLOSED reason"), stdin
//                                    ends ("STDIN_CLOSED") or WAIT_MS pass ("STILL_OPEN")
//
// URL is a plain tcp://HOST:PORT (no failover: a closed connection must be seen, not hidden).
// Exit code 0 when the command did what it was asked (all COUNT received, CLOSED seen for hold),
// 1 otherwise, 2 on a usage error.

import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import javax.jms.BytesMessage;
import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.JMSException;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Queue;
import javax.jms.Session;
import javax.jms.TextMessage;

import org.apache.activemq.ActiveMQConnection;
import org.apache.activemq.ActiveMQConnectionFactory;

public final class OpenWireClient {
    private OpenWireClient() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 3) usage();
        final String mode = args[0];
        final ActiveMQConnectionFactory factory = new ActiveMQConnectionFactory(args[1]);
        factory.setConnectResponseTimeout(10000);   // a relay that never answers fails the call
        factory.setSendTimeout(10000);
        int code;
        switch (mode) {
        case "send":
            if (args.length != 5) usage();
            code = send(factory, args[2], Integer.parseInt(args[3]), args[4]);
            break;
        case "receive":
            if (args.length != 5) usage();
            code = receive(factory, args[2], Integer.parseInt(args[3]), Long.parseLong(args[4]));
            break;
        case "hold":
            if (args.length != 4) usage();
            code = hold(factory, args[2], Long.parseLong(args[3]));
            break;
        default:
            usage();
            return;
        }
        System.out.flush();
        // The client's transport threads are not daemons everywhere: leave at once.
        Runtime.getRuntime().halt(code);
    }

    private static void usage() {
        System.err.println("usage: OpenWireClient send URL QUEUE COUNT PREFIX | receive URL QUEUE COUNT WAIT_MS"
                           + " | hold URL QUEUE WAIT_MS");
        System.exit(2);
    }

    private static Connection open(ActiveMQConnectionFactory factory) throws JMSException {
        final Connection c = factory.createConnection();
        c.start();   // the OpenWire handshake (WireFormatInfo, ConnectionInfo) happens here
        System.out.println("BROKER " + ((ActiveMQConnection) c).getBrokerName());
        System.out.flush();
        return c;
    }

    private static int send(ActiveMQConnectionFactory factory, String queue, int count, String prefix)
            throws JMSException {
        final Connection c = open(factory);
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final MessageProducer p = s.createProducer(s.createQueue(queue));
            // Persistent sends are synchronous: each one is acknowledged by the broker.
            p.setDeliveryMode(DeliveryMode.PERSISTENT);
            for (int i = 0; i < count; ++i) p.send(s.createTextMessage(prefix + "-" + i));
            System.out.println("SENT " + count);
            return 0;
        } finally {
            c.close();
        }
    }

    private static int receive(ActiveMQConnectionFactory factory, String queue, int count, long waitMs)
            throws JMSException {
        final Connection c = open(factory);
        try {
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final MessageConsumer consumer = s.createConsumer(s.createQueue(queue));
            int got = 0;
            while (got < count) {
                final Message m = consumer.receive(waitMs);
                if (m == null) break;
                System.out.println("RECEIVED " + text(m));
                ++got;
            }
            System.out.println("DONE " + got);
            return got == count ? 0 : 1;
        } finally {
            c.close();
        }
    }

    // A TextMessage's text; a BytesMessage's bytes as UTF-8 (what ActiveMQ makes of a STOMP SEND
    // with a content-length).
    private static String text(Message m) throws JMSException {
        if (m instanceof TextMessage) return ((TextMessage) m).getText();
        if (m instanceof BytesMessage) {
            final BytesMessage b = (BytesMessage) m;
            final byte[] data = new byte[(int) b.getBodyLength()];
            b.readBytes(data);
            return new String(data, StandardCharsets.UTF_8);
        }
        return m.getClass().getSimpleName();
    }

    private static int hold(ActiveMQConnectionFactory factory, String queue, long waitMs) throws Exception {
        final CountDownLatch failed = new CountDownLatch(1);
        final AtomicReference<String> reason = new AtomicReference<>("?");
        final Connection c = open(factory);
        c.setExceptionListener(e -> {
            reason.set(String.valueOf(e.getMessage()));
            failed.countDown();
        });
        final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        final Queue q = s.createQueue(queue);
        s.createConsumer(q);
        System.out.println("HOLDING");
        System.out.flush();
        // Stdin closing (the test ending early) ends the wait too.
        final Thread stdin = new Thread(() -> {
            try {
                while (System.in.read() >= 0) {
                    // nothing: only the end matters
                }
            } catch (java.io.IOException e) {
                // treated as closed
            }
            System.out.println("STDIN_CLOSED");
            System.out.flush();
            Runtime.getRuntime().halt(1);
        });
        stdin.setDaemon(true);
        stdin.start();
        if (failed.await(waitMs, TimeUnit.MILLISECONDS)) {
            System.out.println("CLOSED " + reason.get().replace('\n', ' '));
            return 0;
        }
        System.out.println("STILL_OPEN");
        return 1;
    }
}
