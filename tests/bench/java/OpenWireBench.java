// tests/bench/java/OpenWireBench.java — the OpenWire load client of `tests/bench/compare.sh
// --openwire`: ActiveMQ's own JMS client (Debian's libactivemq-java 5.17) driving one queue with N
// producers and M consumers, the same program against every broker. compare.sh compiles it with
// javac into its temp dir and runs one JVM per run.
//
// It takes switchboard-bench's option names (those compare.sh passes), so the script runs it
// where it runs the C++ bench, and writes the same JSON fields (--json), which the script's
// summary reads:
//
//   java -cp CLASSES:JARS OpenWireBench --port P [--host H] [--producers N] [--consumers M]
//        [--count C | --duration S] [--size B] [--window PREFETCH] [--persistent] [--async]
//        [--prefix NAME] [--warmup-s S] [--timeout S] [--label L] [--json FILE] [--quiet]
//        [--ack auto|dups_ok|optimize] [--receive] [--broker-pid PID]
//
// Each producer and each consumer has a connection and a session of its own: AUTO_ACKNOWLEDGE
// (--ack: DUPS_OK_ACKNOWLEDGE, or AUTO with `jms.optimizeAcknowledge=true`), consuming in a
// MessageListener called on the connection's transport thread (`jms.alwaysSessionAsync=false`;
// --receive: a thread calling receive() instead, a hand-off more per message).
// Messages are BytesMessages of --size bytes (at least 24): the send time (System.nanoTime, the
// one JVM's clock), the producer's number and its sequence number, then filler. --persistent:
// DeliveryMode.PERSISTENT; --async: `jms.useAsyncSend=true` (the send returns once the message is
// written; nothing confirms it), otherwise every send is synchronous (the client waits for the
// broker's Response: a persistent message once stored). --window: the consumers' prefetch
// (`jms.prefetchPolicy.all`, default 1000). --broker-pid: the broker's CPU time (user + system,
// /proc/PID/stat) over the measured part, beside the client's own.
//
// The run: consumers subscribe, producers connect; then --warmup-s seconds of the same traffic
// (not counted; consumers drain it before the measured part) so the client's JIT has compiled
// its paths; then --count messages (spread over the producers) or --duration seconds of sends,
// and the consumers receive until they have every measured message. t0 is the start of the
// measured sends; send_s runs to the last send returned, receive_s to the last receive.
// Everything is bounded by --timeout (whole seconds; partial results are still written, with
// timed_out). Exit 0 when complete without errors, 1 otherwise, 2 on a usage error.

import java.io.FileWriter;
import java.io.IOException;
import java.io.Writer;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import javax.jms.BytesMessage;
import javax.jms.Connection;
import javax.jms.DeliveryMode;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageListener;
import javax.jms.MessageProducer;
import javax.jms.Queue;
import javax.jms.Session;

import org.apache.activemq.ActiveMQConnectionFactory;

public final class OpenWireBench {
    private OpenWireBench() {}

    // ---- options ---------------------------------------------------------------------------
    static String host = "127.0.0.1";
    static int port = 0;
    static int producers = 1;
    static int consumers = 1;
    static long count = 100000;
    static double duration = 0;      // > 0: send for this long instead of --count
    static int size = 64;
    static int prefetch = 1000;
    static boolean persistent = false;
    static boolean async = false;
    static String prefix = "bench";
    static double warmupS = 1.0;
    static double timeoutS = 120;
    static String label = "";
    static String json = null;
    static boolean quiet = false;
    static String ack = "auto";      // auto | dups_ok | optimize (AUTO_ACKNOWLEDGE with jms.optimizeAcknowledge)
    static boolean listener = true;  // consume in a MessageListener (--receive: a receive() loop)
    static int brokerPid = 0;        // > 0: the broker's CPU time over the measured part, from /proc

    // ---- shared state ----------------------------------------------------------------------
    static final Object errorsLock = new Object();
    static final List<String> errors = new ArrayList<>();
    static volatile boolean stop = false;             // the deadline passed, or an error
    static volatile int phase = 0;                    // 0 warm-up, 1 measured
    static final AtomicLong warmSent = new AtomicLong();
    static final AtomicLong warmReceived = new AtomicLong();
    static final AtomicLong sent = new AtomicLong();
    static final AtomicLong confirmed = new AtomicLong();
    static final AtomicLong received = new AtomicLong();
    static final AtomicLong reordered = new AtomicLong();
    static final AtomicLong lastSendDone = new AtomicLong();
    static final AtomicLong lastReceive = new AtomicLong();
    static volatile boolean sendsOver = false;
    static long t0;
    static long deadline;

    static void error(String what, Throwable t) {
        synchronized (errorsLock) {
            if (errors.size() < 20) errors.add(what + ": " + t);
        }
        stop = true;
    }

    static void maxOf(AtomicLong a, long v) {
        long cur;
        while ((cur = a.get()) < v && !a.compareAndSet(cur, v)) {
            // retry
        }
    }

    public static void main(String[] args) throws Exception {
        try {
            parse(args);
        } catch (RuntimeException e) {
            System.err.println("OpenWireBench: " + e.getMessage());
            Runtime.getRuntime().halt(2);
        }
        int code;
        try {
            code = run();
        } catch (Throwable t) {
            error("run", t);
            code = 1;
        }
        System.out.flush();
        // The client's transport threads need not end by themselves: leave at once.
        Runtime.getRuntime().halt(code);
    }

    static void parse(String[] a) {
        for (int i = 0; i < a.length; ++i) {
            final String k = a[i];
            final boolean flag = k.equals("--persistent") || k.equals("--async") || k.equals("--quiet") || k.equals("--receive");
            if (!flag && i + 1 >= a.length) throw new IllegalArgumentException(k + ": needs a value");
            switch (k) {
            case "--persistent": persistent = true; break;
            case "--async": async = true; break;
            case "--quiet": quiet = true; break;
            case "--host": host = a[++i]; break;
            case "--port": port = Integer.parseInt(a[++i]); break;
            case "--producers": producers = Integer.parseInt(a[++i]); break;
            case "--consumers": consumers = Integer.parseInt(a[++i]); break;
            case "--count": count = Long.parseLong(a[++i]); break;
            case "--duration": duration = Double.parseDouble(a[++i]); break;
            case "--size": size = Integer.parseInt(a[++i]); break;
            case "--window": prefetch = Integer.parseInt(a[++i]); break;
            case "--prefix": prefix = a[++i]; break;
            case "--warmup-s": warmupS = Double.parseDouble(a[++i]); break;
            case "--timeout": timeoutS = Double.parseDouble(a[++i]); break;
            case "--label": label = a[++i]; break;
            case "--ack": ack = a[++i]; break;
            case "--receive": listener = false; break;
            case "--broker-pid": brokerPid = Integer.parseInt(a[++i]); break;
            case "--json": json = a[++i]; break;
            // switchboard-bench options compare.sh passes that mean nothing here
            case "--protocol":
            case "--destination": ++i; break;
            default: throw new IllegalArgumentException("unknown option " + k);
            }
        }
        if (port <= 0) throw new IllegalArgumentException("--port is required");
        if (producers < 1 || consumers < 0) throw new IllegalArgumentException("--producers >= 1, --consumers >= 0");
        if (size < 24) throw new IllegalArgumentException("--size: at least 24 bytes");
        if (count < 1 && duration <= 0) throw new IllegalArgumentException("--count or --duration");
        if (timeoutS <= 0) throw new IllegalArgumentException("--timeout: positive seconds");
        if (!ack.equals("auto") && !ack.equals("dups_ok") && !ack.equals("optimize"))
            throw new IllegalArgumentException("--ack: auto, dups_ok or optimize");
    }

    static ActiveMQConnectionFactory factory() {
        // The same URL options against every broker. No advisory watcher (the brokers run without
        // advisories); the message object is not copied on send (each send makes its own).
        final String url = "tcp://" + host + ":" + port + "?jms.useAsyncSend=" + async + "&jms.alwaysSyncSend=" + !async
                           + "&jms.prefetchPolicy.all=" + prefetch + "&jms.watchTopicAdvisories=false"
                           + "&jms.copyMessageOnSend=false" + "&jms.optimizeAcknowledge=" + ack.equals("optimize")
                           + (listener ? "&jms.alwaysSessionAsync=false" : "");
        final ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(url);
        f.setConnectResponseTimeout(10000);
        // A synchronous send that gets no answer fails rather than hanging past --timeout.
        f.setSendTimeout((int) Math.max(1000, Math.min(timeoutS * 1000, 60000)));
        return f;
    }

    static int run() throws Exception {
        final long start = System.nanoTime();
        deadline = start + (long) (timeoutS * 1e9);
        final ActiveMQConnectionFactory factory = factory();
        final String queueName = prefix + ".0";
        final List<Connection> connections = new ArrayList<>();
        final byte[] filler = new byte[size - 24];
        Arrays.fill(filler, (byte) 'x');

        // Consumers first, so that no message waits for its consumer to subscribe.
        final List<Consumer> cs = new ArrayList<>();
        for (int i = 0; i < consumers; ++i) {
            final Connection c = factory.createConnection();
            connections.add(c);
            c.start();
            final Session s = c.createSession(false, ack.equals("dups_ok") ? Session.DUPS_OK_ACKNOWLEDGE
                                                                           : Session.AUTO_ACKNOWLEDGE);
            cs.add(new Consumer(s.createConsumer(s.createQueue(queueName))));
        }
        final List<Producer> ps = new ArrayList<>();
        final long per = count / producers, extra = count % producers;
        for (int i = 0; i < producers; ++i) {
            final Connection c = factory.createConnection();
            connections.add(c);
            c.start();
            final Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            final Queue q = s.createQueue(queueName);
            final MessageProducer p = s.createProducer(q);
            p.setDeliveryMode(persistent ? DeliveryMode.PERSISTENT : DeliveryMode.NON_PERSISTENT);
            p.setDisableMessageID(false);
            ps.add(new Producer(i, s, p, duration > 0 ? Long.MAX_VALUE : per + (i < extra ? 1 : 0), filler));
        }
        final double setupS = (System.nanoTime() - start) / 1e9;
        final CountDownLatch go = new CountDownLatch(1);
        final CountDownLatch warmDone = new CountDownLatch(producers);
        final CountDownLatch measure = new CountDownLatch(1);
        final List<Thread> threads = new ArrayList<>();
        for (Consumer c : cs) threads.add(new Thread(c::run, "consumer"));
        for (Producer p : ps) {
            threads.add(new Thread(() -> p.run(go, warmDone, measure), "producer-" + p.index));
        }
        for (Thread t : threads) t.start();

        // Warm-up: the same traffic for --warmup-s, drained by the consumers before t0.
        go.countDown();
        warmDone.await(Math.max(1, (deadline - System.nanoTime()) / 1000000), TimeUnit.MILLISECONDS);
        if (consumers > 0) {
            while (!stop && warmReceived.get() < warmSent.get() && System.nanoTime() < deadline) Thread.sleep(1);
        }
        final com.sun.management.OperatingSystemMXBean os =
            (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        final long cpu0 = os.getProcessCpuTime();
        final long broker0 = brokerTicks();
        t0 = System.nanoTime();
        phase = 1;
        measure.countDown();

        // Until the producers are done and the consumers have every measured message.
        boolean timedOut = false;
        for (Thread t : threads) {
            if (!t.getName().startsWith("producer")) continue;
            final long left = (deadline - System.nanoTime()) / 1000000;
            if (left > 0) t.join(left);
            if (t.isAlive()) timedOut = true;
        }
        sendsOver = true;
        synchronized (progress) {
            progress.notifyAll();
        }
        for (Thread t : threads) {
            final long left = (deadline - System.nanoTime()) / 1000000;
            if (left > 0) t.join(left);
            if (t.isAlive()) timedOut = true;
        }
        stop = true;
        final long cpu1 = os.getProcessCpuTime();
        final long broker1 = brokerTicks();
        final double brokerCpuS = broker0 < 0 || broker1 < 0 ? -1 : (broker1 - broker0) / 100.0;
        final long end = System.nanoTime();
        for (Connection c : connections) {
            try {
                c.close();
            } catch (Exception e) {
                // the results are taken; a close failing changes nothing
            }
        }

        final long expected = consumers > 0 ? sent.get() : 0;
        final boolean complete = !timedOut && received.get() >= expected && (duration > 0 || sent.get() == count);
        final double sendS = Math.max(1e-9, (lastSendDone.get() - t0) / 1e9);
        final double receiveS = Math.max(1e-9, ((consumers > 0 ? lastReceive.get() : lastSendDone.get()) - t0) / 1e9);
        final long[] lat = merge(cs);
        final double sendRate = sent.get() / sendS;
        final double recvRate = consumers > 0 ? received.get() / receiveS : 0;
        final String errs;
        synchronized (errorsLock) {
            errs = String.join("; ", errors);
        }
        {
            System.out.printf(Locale.ROOT, "scenario    openwire queue %d->%d  size=%d B  %s  %s  prefetch=%d  %s:%d%n",
                              producers, consumers, size, persistent ? "persistent" : "non-persistent",
                              async ? "async sends" : "sync sends", prefetch, host, port);
            System.out.printf(Locale.ROOT, "sent        %d msgs in %.3f s   %.0f msgs/s   confirmed %d%n", sent.get(), sendS,
                              sendRate, confirmed.get());
            System.out.printf(Locale.ROOT, "received    %d of %d in %.3f s   %.0f msgs/s   reordered/duplicate %d%n",
                              received.get(), expected, receiveS, recvRate, reordered.get());
            System.out.printf(Locale.ROOT, "latency     p50 %.1f us   p99 %.1f us   p99.9 %.1f us   (%d samples)%n",
                              pct(lat, 0.50) / 1e3, pct(lat, 0.99) / 1e3, pct(lat, 0.999) / 1e3, lat.length);
            System.out.printf(Locale.ROOT, "cpu         client %.3f s, broker %s over %.3f s%n", (cpu1 - cpu0) / 1e9,
                              brokerCpuS < 0 ? "not measured" : String.format(Locale.ROOT, "%.2f s", brokerCpuS),
                              (end - t0) / 1e9);
            System.out.println("result      " + (!errs.isEmpty() ? "ERROR: " + errs
                                                 : timedOut ? "TIMED OUT" : complete ? "ok" : "INCOMPLETE"));
        }
        if (json != null) {
            try (Writer w = new FileWriter(json)) {
                w.write(String.format(Locale.ROOT,
                    "{\"label\": %s, \"client\": \"OpenWireBench (ActiveMQ JMS client)\", \"scenario\": {\"protocol\": \"openwire\","
                    + " \"destination\": \"queue\", \"host\": %s, \"port\": %d, \"producers\": %d, \"consumers\": %d,"
                    + " \"size\": %d, \"count\": %d, \"duration_s\": %s, \"confirm\": %b, \"persistent\": %b, \"async\": %b,"
                    + " \"prefetch\": %d, \"window\": %d, \"timeout_s\": %s, \"warmup_s\": %s},"
                    + " \"sent\": %d, \"confirmed\": %d, \"received\": %d, \"expected\": %d, \"reordered\": %d, \"stale\": 0,"
                    + " \"warmup_sent\": %d, \"setup_s\": %s, \"send_s\": %s, \"receive_s\": %s,"
                    + " \"send_msgs_per_s\": %s, \"receive_msgs_per_s\": %s, \"client_cpu_s\": %s, \"broker_cpu_s\": %s,"
                    + " \"latency_us\": {\"count\": %d, \"p50\": %s, \"p90\": %s, \"p99\": %s, \"p99_9\": %s, \"max\": %s},"
                    + " \"timed_out\": %b, \"complete\": %b, \"errors\": [%s]}%n",
                    str(label), str(host), port, producers, consumers, size, duration > 0 ? 0 : count, num(duration),
                    !async, persistent, async, prefetch, prefetch, num(timeoutS), num(warmupS),
                    sent.get(), confirmed.get(), received.get(), expected, reordered.get(), warmSent.get(),
                    num(setupS), num(sendS), num(receiveS), num(sendRate), num(recvRate), num((cpu1 - cpu0) / 1e9), brokerCpuS < 0 ? "null" : num(brokerCpuS),
                    lat.length, num(pct(lat, 0.5) / 1e3), num(pct(lat, 0.9) / 1e3), num(pct(lat, 0.99) / 1e3),
                    num(pct(lat, 0.999) / 1e3), num(lat.length == 0 ? 0 : lat[lat.length - 1] / 1e3),
                    timedOut, complete, errs.isEmpty() ? "" : str(errs)));
            }
        }
        return errs.isEmpty() && complete ? 0 : 1;
    }

    // The broker process's user + system time in clock ticks (/proc/PID/stat fields 14 and 15,
    // every thread; USER_HZ is 100 on Linux), or -1.
    static long brokerTicks() {
        if (brokerPid <= 0) return -1;
        try {
            final String stat = new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get("/proc/" + brokerPid + "/stat")),
                                           java.nio.charset.StandardCharsets.US_ASCII);
            // After the command name in parentheses (which may hold spaces): field 3 onwards.
            final String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            return Long.parseLong(f[11]) + Long.parseLong(f[12]);
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    static String num(double v) {
        return String.format(Locale.ROOT, "%.6f", v);
    }

    static String str(String s) {
        final StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    static double pct(long[] sorted, double p) {
        if (sorted.length == 0) return 0;
        return sorted[(int) Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
    }

    static long[] merge(List<Consumer> cs) {
        int n = 0;
        for (Consumer c : cs) n += c.nlat;
        final long[] all = new long[n];
        int at = 0;
        for (Consumer c : cs) {
            System.arraycopy(c.lat, 0, all, at, c.nlat);
            at += c.nlat;
        }
        Arrays.sort(all);
        return all;
    }

    // ---- producers -------------------------------------------------------------------------

    static final class Producer {
        final int index;
        final Session session;
        final MessageProducer producer;
        final long quota;
        final byte[] filler;
        long seq = 0;

        Producer(int index, Session session, MessageProducer producer, long quota, byte[] filler) {
            this.index = index;
            this.session = session;
            this.producer = producer;
            this.quota = quota;
            this.filler = filler;
        }

        void sendOne(int ph) throws Exception {
            final BytesMessage m = session.createBytesMessage();
            m.writeLong(System.nanoTime());
            m.writeInt(index);
            m.writeInt(ph);
            m.writeLong(seq++);
            m.writeBytes(filler);
            producer.send(m);
        }

        void run(CountDownLatch go, CountDownLatch warmDone, CountDownLatch measure) {
            try {
                go.await();
                final long warmEnd = System.nanoTime() + (long) (warmupS * 1e9);
                try {
                    while (!stop && System.nanoTime() < warmEnd) {
                        sendOne(0);
                        warmSent.incrementAndGet();
                    }
                } finally {
                    warmDone.countDown();
                }
                measure.await();
                final long stopAt = duration > 0 ? t0 + (long) (duration * 1e9) : Long.MAX_VALUE;
                long n = 0;
                while (!stop && n < quota) {
                    // The deadline and the duration, read every 64 sends (nanoTime is cheap, not free).
                    if ((n & 63) == 0) {
                        final long now = System.nanoTime();
                        if (now >= stopAt || now >= deadline) break;
                    }
                    sendOne(1);
                    ++n;
                    sent.incrementAndGet();
                    if (!async) confirmed.incrementAndGet();   // a synchronous send returned: answered
                }
                maxOf(lastSendDone, System.nanoTime());
            } catch (Exception e) {
                if (!stop) error("producer " + index, e);
            }
        }
    }

    // ---- consumers -------------------------------------------------------------------------

    static final Object progress = new Object();   // notified when the consumers may be done

    static boolean consumersDone() {
        return sendsOver && received.get() >= sent.get();
    }

    static final class Consumer implements MessageListener {
        final MessageConsumer consumer;
        long[] lat = new long[1 << 16];
        int nlat = 0;
        final long[] lastSeq = new long[producers];

        Consumer(MessageConsumer consumer) {
            this.consumer = consumer;
            Arrays.fill(lastSeq, -1);
        }

        void run() {
            try {
                if (listener) {
                    consumer.setMessageListener(this);
                    synchronized (progress) {
                        while (!stop && !consumersDone()) {
                            final long left = (deadline - System.nanoTime()) / 1000000;
                            if (left <= 0) break;
                            progress.wait(Math.min(left, 100));
                        }
                    }
                    return;
                }
                while (!stop && System.nanoTime() < deadline && !consumersDone()) {
                    final Message m = consumer.receive(100);
                    if (m != null) handle(m);
                }
            } catch (Exception e) {
                if (!stop) error("consumer", e);
            }
        }

        @Override
        public void onMessage(Message m) {
            try {
                handle(m);
                if (consumersDone()) {
                    synchronized (progress) {
                        progress.notifyAll();
                    }
                }
            } catch (Exception e) {
                if (!stop) error("consumer", e);
            }
        }

        void handle(Message m) throws Exception {
            final BytesMessage b = (BytesMessage) m;
            final long sentAt = b.readLong();
            final int producer = b.readInt();
            final int ph = b.readInt();
            final long seq = b.readLong();
            final long now = System.nanoTime();
            if (producer >= 0 && producer < lastSeq.length) {
                if (seq <= lastSeq[producer]) reordered.incrementAndGet();
                else lastSeq[producer] = seq;
            }
            if (ph == 0) {
                warmReceived.incrementAndGet();
                return;
            }
            if (nlat == lat.length && lat.length < (1 << 24)) lat = Arrays.copyOf(lat, lat.length * 2);
            if (nlat < lat.length) lat[nlat++] = now - sentAt;
            maxOf(lastReceive, now);
            received.incrementAndGet();   // last: whoever sees the count sees the sample too
        }
    }
}
