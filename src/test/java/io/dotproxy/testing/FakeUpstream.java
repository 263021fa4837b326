package io.dotproxy.testing;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import io.netty.handler.codec.LengthFieldPrepender;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslHandler;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;
import org.xbill.DNS.TXTRecord;
import org.xbill.DNS.Type;

/**
 * An in-process DNS-over-TLS resolver on a free loopback port, for component tests: it answers
 * as its {@link Behaviour} says (answer, answer late, stay silent, close the connection), and
 * keeps every query it decoded and every byte that reached its socket before TLS, so a test can
 * check both sides of the proxy.
 */
public final class FakeUpstream implements AutoCloseable {
    /** What the resolver does with one query. */
    public sealed interface Reply {}

    /** Answer, possibly after a delay. */
    public record Answer(Message message, Duration delay) implements Reply {}

    /** Never answer. */
    public record Silence() implements Reply {}

    /** Close the connection without answering. */
    public record Close() implements Reply {}

    /** Answer, then close the connection at once, as a server that drops idle clients early. */
    public record AnswerThenClose(Message message) implements Reply {}

    /** Decides the reply to each query; {@code connection} counts accepted connections from 0. */
    @FunctionalInterface
    public interface Behaviour {
        Reply on(Message query, int connection);
    }

    private final EventLoopGroup group = new NioEventLoopGroup(1);
    private final List<Message> queries = new CopyOnWriteArrayList<>();
    private final List<Integer> queryConnections = new CopyOnWriteArrayList<>();
    private final ByteArrayOutputStream raw = new ByteArrayOutputStream();
    private final AtomicInteger connections = new AtomicInteger();
    private final AtomicInteger handshakes = new AtomicInteger();
    private volatile Behaviour behaviour;
    private final Channel server;

    private final List<Integer> frameLengths = new CopyOnWriteArrayList<>();

    private FakeUpstream(TestCa.Issued certificate, List<X509Certificate> chainTail, Behaviour behaviour, int port)
            throws IOException {
        this.behaviour = behaviour;
        List<X509Certificate> chain = new ArrayList<>();
        chain.add(certificate.certificate());
        chain.addAll(chainTail);
        SslContext ssl = SslContextBuilder.forServer(certificate.key(), chain.toArray(X509Certificate[]::new))
                // JKS stores any chain; PKCS#12, the default, refuses one whose names do not link up.
                .keyStoreType("JKS")
                .protocols("TLSv1.3", "TLSv1.2").build();
        server = new ServerBootstrap()
                .group(group)
                .channel(NioServerSocketChannel.class)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        int index = connections.getAndIncrement();
                        SslHandler tls = ssl.newHandler(ch.alloc());
                        tls.handshakeFuture().addListener(f -> {
                            if (f.isSuccess()) {
                                handshakes.incrementAndGet();
                            }
                        });
                        ch.pipeline().addLast(new RawCapture(), tls,
                                new LengthFieldBasedFrameDecoder(65535 + 2, 0, 2, 0, 2),
                                new LengthFieldPrepender(2), new Responder(index));
                    }
                })
                .bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port))
                .syncUninterruptibly().channel();
    }

    public static FakeUpstream start(TestCa.Issued certificate, Behaviour behaviour) {
        return start(certificate, behaviour, 0);
    }

    /**
     * Starts a resolver that presents {@code chainTail} after its own certificate, in that order:
     * intermediates, or whatever a hostile server chooses to send along.
     */
    public static FakeUpstream start(TestCa.Issued certificate, List<X509Certificate> chainTail, Behaviour behaviour) {
        try {
            return new FakeUpstream(certificate, chainTail, behaviour, 0);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Starts on a given loopback port, e.g. to bring a stopped resolver back where it was. */
    public static FakeUpstream start(TestCa.Issued certificate, Behaviour behaviour, int port) {
        try {
            return new FakeUpstream(certificate, List.of(), behaviour, port);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Answers every query at once with one A record, 192.0.2.1. */
    public static Behaviour answering() {
        return (query, connection) -> new Answer(answerA(query, "192.0.2.1"), Duration.ZERO);
    }

    /** An answer to {@code query} with one A record for its name. */
    public static Message answerA(Message query, String address) {
        Message answer = reply(query);
        try {
            answer.addRecord(new ARecord(query.getQuestion().getName(), query.getQuestion().getDClass(), 300,
                    InetAddress.getByName(address)), Section.ANSWER);
        } catch (IOException e) {
            throw new IllegalArgumentException(e);
        }
        return answer;
    }

    /** An answer with {@code records} TXT records of {@code size} characters each. */
    public static Message answerTxt(Message query, int records, int size) {
        Message answer = reply(query);
        Name name = query.getQuestion().getName();
        for (int i = 0; i < records; i++) {
            String text = String.valueOf((char) ('a' + i % 26)).repeat(size);
            answer.addRecord(new TXTRecord(name, query.getQuestion().getDClass(), 300, text), Section.ANSWER);
        }
        return answer;
    }

    /** A NOERROR response header and question for {@code query}, with its OPT echoed. */
    public static Message reply(Message query) {
        Message answer = new Message(query.getHeader().getID());
        answer.getHeader().setFlag(Flags.QR);
        answer.getHeader().setFlag(Flags.RA);
        if (query.getHeader().getFlag(Flags.RD)) {
            answer.getHeader().setFlag(Flags.RD);
        }
        answer.getHeader().setRcode(Rcode.NOERROR);
        answer.addRecord(query.getQuestion(), Section.QUESTION);
        if (query.getOPT() != null) {
            answer.addRecord(new org.xbill.DNS.OPTRecord(1232, 0, 0), Section.ADDITIONAL);
        }
        return answer;
    }

    public int port() {
        return ((InetSocketAddress) server.localAddress()).getPort();
    }

    public void behave(Behaviour newBehaviour) {
        behaviour = newBehaviour;
    }

    /** Every query decoded, in arrival order. */
    public List<Message> queries() {
        return queries;
    }

    /** For each of {@link #queries()}, the index of the connection it came on. */
    public List<Integer> queryConnections() {
        return queryConnections;
    }

    /** Length of each query message as it arrived, in arrival order. */
    public List<Integer> frameLengths() {
        return frameLengths;
    }

    /** Answers with SERVFAIL. */
    public static Behaviour servfail() {
        return (query, connection) -> {
            Message answer = reply(query);
            answer.getHeader().setRcode(Rcode.SERVFAIL);
            return new Answer(answer, Duration.ZERO);
        };
    }

    public int connectionsAccepted() {
        return connections.get();
    }

    public int handshakesCompleted() {
        return handshakes.get();
    }

    /** Every octet that reached the socket, before TLS. */
    public byte[] rawBytesReceived() {
        synchronized (raw) {
            return raw.toByteArray();
        }
    }

    @Override
    public void close() {
        server.close().syncUninterruptibly();
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    private final class RawCapture extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ByteBuf buf = (ByteBuf) msg;
            synchronized (raw) {
                raw.writeBytes(ByteBufUtil.getBytes(buf));
            }
            ctx.fireChannelRead(msg);
        }
    }

    private final class Responder extends ChannelInboundHandlerAdapter {
        private final int connection;

        Responder(int connection) {
            this.connection = connection;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) throws IOException {
            ByteBuf frame = (ByteBuf) msg;
            Message query;
            frameLengths.add(frame.readableBytes());
            try {
                query = new Message(ByteBufUtil.getBytes(frame));
            } finally {
                frame.release();
            }
            queries.add(query);
            queryConnections.add(connection);
            Reply reply = behaviour.on(query, connection);
            if (reply instanceof Answer answer) {
                byte[] wire = answer.message().toWire();
                if (answer.delay().isZero()) {
                    ctx.writeAndFlush(Unpooled.wrappedBuffer(wire));
                } else {
                    ctx.executor().schedule(() -> ctx.writeAndFlush(Unpooled.wrappedBuffer(wire)),
                            answer.delay().toMillis(), TimeUnit.MILLISECONDS);
                }
            } else if (reply instanceof Close) {
                ctx.close();
            } else if (reply instanceof AnswerThenClose answerThenClose) {
                ctx.writeAndFlush(Unpooled.wrappedBuffer(answerThenClose.message().toWire()))
                        .addListener(ChannelFutureListener.CLOSE);
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close(); // handshake failures end here: the proxy refused our certificate
        }
    }

    /** Convenience for tests: the type of the first question. */
    public static String qtype(Message query) {
        return Type.string(query.getQuestion().getType());
    }

    /** Convenience for tests: the record list of a section. */
    public static List<Record> section(Message message, int section) {
        return message.getSection(section);
    }
}
