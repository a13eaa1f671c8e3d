// tests/unit/adapters/openwire/GoldenWriter.java — writes the OpenWire golden streams that
// codec_test.cpp decodes and re-encodes: a fixed sequence of commands marshalled by ActiveMQ's
// own OpenWireFormat (Debian's libactivemq-java: activemq-client for versions 1 and 9-12,
// activemq-openwire-legacy for 2-8), one file per wire format:
//
//   v<N>-<tight|loose>-<cache|nocache>.bin      N = 1..12, stack traces on, size prefix on
//   v12-tight-cache-noprefix.bin                size prefix disabled
//   v12-loose-nocache-nostack.bin               stack traces off
//   v12-tight-cache120.bin                      a negotiated cache of 120 entries (evictions)
//   v<N>-wireformatinfo.bin                     the WireFormatInfo a client of version N sends
//
// Each file is the frames one after another, in one OpenWireFormat (so later frames use the
// cache entries earlier ones made). Everything is fixed (ids, times, stack traces), so the
// output depends only on the jars. Regenerate (and commit) with
//   tests/unit/adapters/openwire/make_goldens.sh tests/unit/adapters/openwire/golden
// The ctest openwire.goldens_current checks that the committed files are what the jars write.

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.DeflaterOutputStream;

import org.apache.activemq.command.*;
import org.apache.activemq.openwire.OpenWireFormat;
import org.apache.activemq.util.ByteSequence;

public final class GoldenWriter {
    private GoldenWriter() {}

    static final ConnectionId CONN = new ConnectionId("ID:golden-host-40125-1700000000000-1:1");
    static final SessionId SESS = new SessionId(CONN, 1);
    static final ProducerId PROD = new ProducerId(SESS, 1);
    static final ConsumerId CONS = new ConsumerId(SESS, 1);
    static final ActiveMQQueue QUEUE = new ActiveMQQueue("golden.queue");
    static final ActiveMQTopic TOPIC = new ActiveMQTopic("golden.topic");
    static final ActiveMQTempQueue TEMPQ = new ActiveMQTempQueue("ID:golden-host-40125-1700000000000-1:1:1");
    static final ActiveMQTempTopic TEMPT = new ActiveMQTempTopic("ID:golden-host-40125-1700000000000-1:1:2");

    public static void main(String[] args) throws Exception {
        File dir = new File(args[0]);
        dir.mkdirs();
        for (int v = 1; v <= 12; v++) {
            for (boolean tight : new boolean[] {true, false}) {
                for (boolean cache : new boolean[] {true, false}) {
                    OpenWireFormat wf = format(v, tight, cache, true, false, 0);
                    write(dir, "v" + v + "-" + (tight ? "tight" : "loose") + "-" + (cache ? "cache" : "nocache"), wf, v);
                }
            }
            write(dir, "v" + v + "-wireformatinfo", new OpenWireFormat(v), 0);
        }
        write(dir, "v12-tight-cache-noprefix", format(12, true, true, true, true, 0), 12);
        write(dir, "v12-loose-nocache-nostack", format(12, false, false, false, false, 0), 12);
        write(dir, "v12-tight-cache120", format(12, true, true, true, false, 120), 12);
    }

    static OpenWireFormat format(int v, boolean tight, boolean cache, boolean stack, boolean noPrefix, int cacheSize)
            throws IOException {
        OpenWireFormat wf = new OpenWireFormat(v);
        if (cacheSize > 0) {
            // A negotiated cache size: through renegotiateWireFormat, as a connection gets it.
            WireFormatInfo ours = info(v);
            ours.setCacheSize(cacheSize);
            wf.setPreferedWireFormatInfo(ours);
            WireFormatInfo theirs = info(v);
            theirs.setTightEncodingEnabled(tight);
            theirs.setCacheEnabled(cache);
            theirs.setStackTraceEnabled(stack);
            theirs.setSizePrefixDisabled(noPrefix);
            wf.renegotiateWireFormat(theirs);
            return wf;
        }
        wf.setTightEncodingEnabled(tight);
        wf.setCacheEnabled(cache);
        wf.setStackTraceEnabled(stack);
        wf.setSizePrefixDisabled(noPrefix);
        return wf;
    }

    static WireFormatInfo info(int v) throws IOException {
        WireFormatInfo info = new WireFormatInfo();
        info.setVersion(v);
        info.setStackTraceEnabled(true);
        info.setCacheEnabled(true);
        info.setTcpNoDelayEnabled(true);
        info.setTightEncodingEnabled(true);
        info.setSizePrefixDisabled(false);
        info.setMaxInactivityDuration(30000);
        info.setMaxInactivityDurationInitalDelay(10000);
        info.setCacheSize(1024);
        info.setMaxFrameSize(104857600L);
        info.setProviderName("ActiveMQ");
        info.setProviderVersion("5.17.2");
        return info;
    }

    static void write(File dir, String name, OpenWireFormat wf, int v) throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DataOutputStream out = new DataOutputStream(bytes);
        if (v == 0) {
            wf.marshal(info(wf.getVersion()), out);
        } else {
            for (DataStructure d : commands(v, name.endsWith("cache120"))) wf.marshal(d, out);
        }
        out.flush();
        try (FileOutputStream f = new FileOutputStream(new File(dir, name + ".bin"))) {
            f.write(bytes.toByteArray());
        }
    }

    static Throwable exception(boolean cause) {
        Exception e = new IllegalStateException("golden failure \u00e9\u0000\uD83D\uDE00");
        e.setStackTrace(new StackTraceElement[] {
            new StackTraceElement("org.example.Golden", "run", "Golden.java", 42),
            new StackTraceElement("org.example.Native", "call", null, -2)});
        if (cause) {
            Exception c = new java.io.IOException("root cause");
            c.setStackTrace(new StackTraceElement[] {new StackTraceElement("org.example.Io", "read", "Io.java", 7)});
            e.initCause(c);
        }
        return e;
    }

    static <T extends Message> T fill(T m, int seq) throws Exception {
        m.setCommandId(100 + seq);
        m.setResponseRequired(seq % 2 == 0);
        m.setProducerId(PROD);
        m.setDestination(QUEUE);
        m.setMessageId(new MessageId(PROD, seq));
        m.setPersistent(seq % 2 == 1);
        m.setPriority((byte) 4);
        m.setTimestamp(1700000000123L + seq);
        return m;
    }

    static byte[] deflate(byte[] in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        try (DeflaterOutputStream d = new DeflaterOutputStream(b)) {
            d.write(in);
        }
        return b.toByteArray();
    }

    static List<DataStructure> commands(int v, boolean manyDestinations) throws Exception {
        List<DataStructure> l = new ArrayList<>();

        ConnectionInfo ci = new ConnectionInfo(CONN);
        ci.setCommandId(1);
        ci.setResponseRequired(true);
        ci.setClientId("golden-client");
        ci.setUserName("user");
        ci.setPassword("");
        ci.setManageable(true);
        ci.setFaultTolerant(true);
        ci.setClientIp("tcp://127.0.0.1:40125");
        l.add(ci);

        SessionInfo si = new SessionInfo(SESS);
        si.setCommandId(2);
        l.add(si);

        ConsumerInfo cons = new ConsumerInfo(CONS);
        cons.setCommandId(3);
        cons.setResponseRequired(true);
        cons.setDestination(QUEUE);
        cons.setPrefetchSize(1000);
        cons.setMaximumPendingMessageLimit(0);
        cons.setDispatchAsync(true);
        cons.setSelector("color = 'red' AND size > 3");
        cons.setClientId("golden-client");
        cons.setSubscriptionName("golden-sub");
        cons.setNoLocal(true);
        cons.setExclusive(true);
        cons.setPriority((byte) -2);
        cons.setBrokerPath(new BrokerId[] {new BrokerId("broker-a")});
        cons.setNetworkConsumerPath(new ConsumerId[] {new ConsumerId(SESS, 9)});
        l.add(cons);

        ProducerInfo pi = new ProducerInfo(PROD);
        pi.setCommandId(4);
        pi.setDestination(null);
        pi.setWindowSize(1048576);
        pi.setDispatchAsync(true);
        l.add(pi);

        // A text message with every field set and every property type.
        ActiveMQTextMessage text = fill(new ActiveMQTextMessage(), 1);
        text.setText("hello \u00e9\u00e8 \u4e16\u754c \uD83D\uDE00 nul\u0000end");
        LocalTransactionId ltx = new LocalTransactionId(CONN, 7);
        text.setTransactionId(ltx);
        text.setOriginalDestination(TOPIC);
        text.setOriginalTransactionId(ltx);
        text.getMessageId().setTextView("ID:golden-text-view:1:1:1");
        text.setGroupID("group-1");
        text.setGroupSequence(3);
        text.setCorrelationId("corr-\u00fc");
        text.setExpiration(1700000060000L);
        text.setPriority((byte) 9);
        text.setReplyTo(TEMPQ);
        text.setType("golden-type");
        text.setTargetConsumerId(CONS);
        text.setRedeliveryCounter(2);
        text.setBrokerPath(new BrokerId[] {new BrokerId("broker-a"), new BrokerId("broker-b")});
        text.setArrival(-1);
        text.setUserID("user");
        text.setDroppable(true);
        text.setCluster(new BrokerId[] {});
        text.setBrokerInTime(65535);
        text.setBrokerOutTime(70000);
        text.setJMSXGroupFirstForConsumer(true);
        text.setProperty("bool", Boolean.TRUE);
        text.setProperty("byte", Byte.valueOf((byte) -5));
        text.setProperty("char", Character.valueOf('\u00e9'));
        text.setProperty("short", Short.valueOf((short) -300));
        text.setProperty("int", Integer.valueOf(123456789));
        text.setProperty("long", Long.valueOf(-1234567890123L));
        text.setProperty("float", Float.valueOf(1.5f));
        text.setProperty("double", Double.valueOf(-2.25));
        text.setProperty("string", "s\u00e9\u0000\uD83D\uDE00");
        text.setProperty("empty", "");
        text.setProperty("nullvalue", null);
        text.setProperty("bytes", new byte[] {1, 2, 3, (byte) 0xff});
        if (v == 12) {   // a big string (8191 UTF-16 units or more): once, it is 9 KB
            char[] big = new char[9000];
            Arrays.fill(big, 'x');
            big[8999] = '\u00e9';
            text.setProperty("bigstring", new String(big));
        }
        Map<String, Object> nested = new HashMap<>();
        nested.put("k", Integer.valueOf(1));
        nested.put("l", new ArrayList<Object>(Arrays.asList("a", Long.valueOf(2), null)));
        text.setProperty("map", nested);
        text.setProperty("list", new ArrayList<Object>(Arrays.asList(Boolean.FALSE, "b", new byte[0])));
        l.add(text);

        // The same producer and destination again: cache hits.
        ActiveMQTextMessage text2 = fill(new ActiveMQTextMessage(), 2);
        text2.setText(null);
        l.add(text2);

        ActiveMQBytesMessage bm = fill(new ActiveMQBytesMessage(), 3);
        bm.writeBytes(new byte[] {0, 1, 2, 3, (byte) 0x80, (byte) 0xff});
        bm.setDestination(TOPIC);
        bm.storeContent();   // as send() does
        l.add(bm);

        ActiveMQMapMessage mm = fill(new ActiveMQMapMessage(), 4);
        mm.setString("name", "value");
        mm.setInt("n", 42);
        mm.setBytes("b", new byte[] {9});
        mm.setChar("c", 'z');
        l.add(mm);

        ActiveMQStreamMessage sm = fill(new ActiveMQStreamMessage(), 5);
        sm.writeString("first");
        sm.writeLong(1L << 40);
        sm.writeBoolean(true);
        sm.writeObject(null);
        sm.writeDouble(0.5);
        sm.storeContent();
        l.add(sm);

        ActiveMQObjectMessage om = fill(new ActiveMQObjectMessage(), 6);
        om.setContent(new ByteSequence(new byte[] {(byte) 0xac, (byte) 0xed, 0, 5, 't', 0, 1, 'x'}));
        l.add(om);

        ActiveMQMessage plain = fill(new ActiveMQMessage(), 7);
        plain.setDestination(TEMPT);
        plain.setCorrelationId("");
        l.add(plain);

        // A compressed body, as jms.useCompression makes it.
        ActiveMQBytesMessage cm = fill(new ActiveMQBytesMessage(), 8);
        byte[] raw = new byte[200];
        Arrays.fill(raw, (byte) 'a');
        cm.setContent(new ByteSequence(deflate(raw)));
        cm.setCompressed(true);
        l.add(cm);

        if (v >= 3) {
            ActiveMQBlobMessage blob = fill(new ActiveMQBlobMessage(), 9);
            blob.setRemoteBlobUrl("http://127.0.0.1/blob/1");
            blob.setMimeType("application/octet-stream");
            blob.setDeletedByBroker(true);
            l.add(blob);
        }

        // An advisory: a command as the message's data structure.
        ActiveMQMessage adv = fill(new ActiveMQMessage(), 10);
        adv.setDestination(new ActiveMQTopic("ActiveMQ.Advisory.TempQueue"));
        DestinationInfo advInfo = new DestinationInfo(CONN, DestinationInfo.ADD_OPERATION_TYPE, TEMPQ);
        adv.setDataStructure(advInfo);
        adv.setProperty("originBrokerName", "golden-broker");
        l.add(adv);

        // Dispatch of a message (the nested message is marshall-aware: an extra bit in tight).
        MessageDispatch md = new MessageDispatch();
        md.setCommandId(0);
        md.setConsumerId(CONS);
        md.setDestination(QUEUE);
        md.setMessage(fill(new ActiveMQTextMessage(), 11));
        ((ActiveMQTextMessage) md.getMessage()).setText("dispatched");
        md.setRedeliveryCounter(1);
        l.add(md);
        MessageDispatch empty = new MessageDispatch();
        empty.setConsumerId(CONS);
        empty.setDestination(QUEUE);
        l.add(empty);

        MessageAck ack = new MessageAck();
        ack.setCommandId(20);
        ack.setDestination(QUEUE);
        ack.setConsumerId(CONS);
        ack.setAckType(MessageAck.STANDARD_ACK_TYPE);
        ack.setFirstMessageId(new MessageId(PROD, 1));
        ack.setLastMessageId(new MessageId(PROD, 11));
        ack.setMessageCount(11);
        ack.setTransactionId(ltx);
        l.add(ack);

        MessageAck poison = new MessageAck();
        poison.setCommandId(21);
        poison.setDestination(QUEUE);
        poison.setConsumerId(CONS);
        poison.setAckType(MessageAck.POISON_ACK_TYPE);
        poison.setLastMessageId(new MessageId(PROD, 5));
        poison.setMessageCount(1);
        poison.setPoisonCause(exception(true));
        l.add(poison);

        XATransactionId xa = new XATransactionId();
        xa.setFormatId(0x1234);
        xa.setGlobalTransactionId(new byte[] {1, 2, 3});
        xa.setBranchQualifier(new byte[] {});
        MessageAck xaAck = new MessageAck();
        xaAck.setCommandId(22);
        xaAck.setDestination(QUEUE);
        xaAck.setConsumerId(CONS);
        xaAck.setAckType(MessageAck.INDIVIDUAL_ACK_TYPE);
        xaAck.setLastMessageId(new MessageId(PROD, 6));
        xaAck.setMessageCount(1);
        xaAck.setTransactionId(xa);
        l.add(xaAck);

        if (v >= 2) {
            MessagePull pull = new MessagePull();
            pull.setCommandId(23);
            pull.setConsumerId(CONS);
            pull.setDestination(QUEUE);
            pull.setTimeout(-1);
            pull.setCorrelationId("pull-1");
            pull.setMessageId(new MessageId(PROD, 3));
            l.add(pull);
        }
        if (v >= 3) l.add(new ProducerAck(PROD, 4096));

        l.add(new TransactionInfo(CONN, ltx, TransactionInfo.BEGIN));
        l.add(new TransactionInfo(CONN, ltx, TransactionInfo.COMMIT_ONE_PHASE));
        l.add(new TransactionInfo(CONN, xa, TransactionInfo.PREPARE));

        DestinationInfo di = new DestinationInfo(CONN, DestinationInfo.ADD_OPERATION_TYPE, TEMPQ);
        di.setCommandId(30);
        di.setResponseRequired(true);
        di.setTimeout(5000);
        l.add(di);

        RemoveInfo rc = new RemoveInfo(CONS);
        rc.setLastDeliveredSequenceId(123456);
        l.add(rc);
        l.add(new RemoveInfo(PROD));
        l.add(new RemoveInfo(SESS));
        RemoveInfo rconn = new RemoveInfo(CONN);
        rconn.setLastDeliveredSequenceId(-2);
        l.add(rconn);

        RemoveSubscriptionInfo rs = new RemoveSubscriptionInfo();
        rs.setConnectionId(CONN);
        rs.setClientId("golden-client");
        rs.setSubscriptionName("golden-sub");
        l.add(rs);

        l.add(new KeepAliveInfo());
        KeepAliveInfo ka = new KeepAliveInfo();
        ka.setResponseRequired(true);
        l.add(ka);

        Response r = new Response();
        r.setCorrelationId(3);
        l.add(r);
        ExceptionResponse er = new ExceptionResponse(exception(false));
        er.setCorrelationId(4);
        l.add(er);
        l.add(new DataResponse(new ConsumerInfo(new ConsumerId(SESS, 2))));
        IntegerResponse ir = new IntegerResponse(-7);
        ir.setCorrelationId(5);
        l.add(ir);

        ConnectionControl cc = new ConnectionControl();
        cc.setFaultTolerant(true);
        cc.setConnectedBrokers("tcp://a:61616,tcp://b:61616");
        cc.setReconnectTo("tcp://b:61616");
        cc.setRebalanceConnection(true);
        cc.setToken(new byte[] {5, 6});
        l.add(cc);

        ConsumerControl ctl = new ConsumerControl();
        ctl.setDestination(QUEUE);
        ctl.setConsumerId(CONS);
        ctl.setPrefetch(10);
        ctl.setStart(true);
        l.add(ctl);

        ConnectionError ce = new ConnectionError();
        ce.setException(exception(true));
        ce.setConnectionId(CONN);
        l.add(ce);

        BrokerInfo peer = new BrokerInfo();
        peer.setBrokerId(new BrokerId("peer-id"));
        peer.setBrokerName("peer");
        BrokerInfo bi = new BrokerInfo();
        bi.setBrokerId(new BrokerId("ID:golden-broker-1"));
        bi.setBrokerURL("tcp://127.0.0.1:61616");
        bi.setPeerBrokerInfos(new BrokerInfo[] {peer});
        bi.setBrokerName("golden-broker");
        bi.setFaultTolerantConfiguration(true);
        bi.setNetworkConnection(true);
        bi.setConnectionId(1L << 33);
        bi.setBrokerUploadUrl("http://127.0.0.1/upload");
        bi.setNetworkProperties("a=b");
        l.add(bi);

        ControlCommand ctrl = new ControlCommand();
        ctrl.setCommand("shutdown");
        l.add(ctrl);
        l.add(new FlushCommand());
        l.add(new ShutdownInfo());

        MessageDispatchNotification mdn = new MessageDispatchNotification();
        mdn.setConsumerId(CONS);
        mdn.setDestination(QUEUE);
        mdn.setDeliverySequenceId(99);
        mdn.setMessageId(new MessageId(PROD, 9));
        l.add(mdn);

        if (manyDestinations) {
            // More distinct cached objects than the cache holds: the sweep evicts.
            for (int i = 0; i < 60; i++) {
                ActiveMQTextMessage m = fill(new ActiveMQTextMessage(), 100 + i);
                m.setDestination(new ActiveMQQueue("golden.many." + i));
                m.setProducerId(new ProducerId(SESS, 100 + i % 7));
                m.setMessageId(new MessageId(m.getProducerId(), i));
                m.setText("m" + i);
                l.add(m);
            }
        }
        return l;
    }
}
