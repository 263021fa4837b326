package io.dotproxy.upstream;

import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.dotproxy.net.ChannelTypes;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.FixedRecvByteBufAllocator;
import io.netty.channel.socket.DatagramChannel;
import io.netty.channel.socket.DatagramPacket;
import io.netty.channel.socket.InternetProtocolFamily;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import io.netty.util.NetUtil;
import io.netty.util.concurrent.ScheduledFuture;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.security.SecureRandom;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * A plain DNS server (UDP, then TCP when the answer is truncated), for the opt-in fallback only.
 *
 * <p>Clear text can be spoofed, so each query gets a fresh random message ID and its own socket
 * (a random source port), the UDP socket is connected (the kernel drops datagrams from any other
 * address), and an answer counts only if its ID and question match (RFC 5452). Sockets are
 * bounded: beyond {@code maxInFlight} queries at once a query fails at once (OVERLOADED).
 */
public final class PlainUpstream implements Upstream {
    private static final SecureRandom IDS = new SecureRandom();

    private final InetSocketAddress server;
    private final String name;
    private final EventLoop loop;
    private final UpstreamMetrics metrics;
    private final int maxInFlight;
    /** Queries with a socket open, over every lane's member of this server ({@link Standing}). */
    private final AtomicInteger inFlight;

    /**
     * @param maxInFlight queries (each with its own socket) at once at most
     * @param inFlight the count of queries in flight that every lane's member of this server shares
     */
    PlainUpstream(InetSocketAddress server, EventLoop loop, UpstreamMetrics metrics, int maxInFlight,
                  AtomicInteger inFlight) {
        this.server = server;
        this.name = nameOf(server);
        this.loop = loop;
        this.metrics = metrics;
        this.maxInFlight = maxInFlight;
        this.inFlight = inFlight;
    }

    /** The name of the plain server at {@code server}, as in logs and metric tags: {@code ip:port#plain}. */
    public static String nameOf(InetSocketAddress server) {
        return NetUtil.toSocketAddressString(server) + "#plain";
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public void query(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback) {
        ByteBuf wire = ByteBufAllocator.DEFAULT.directBuffer(parsed.length());
        wire.writeBytes(query, parsed.start(), parsed.length());
        int id;
        synchronized (IDS) {
            id = IDS.nextInt(1 << 16);
        }
        wire.setShort(0, id);
        metrics.sent();
        PlainQuery plainQuery = new PlainQuery(wire, Header.id(query, parsed.start()), callback);
        if (loop.inEventLoop()) {
            plainQuery.start(deadlineNanos);
        } else {
            try {
                loop.execute(() -> plainQuery.start(deadlineNanos));
            } catch (RejectedExecutionException shuttingDown) {
                plainQuery.fail(UpstreamFailure.UNAVAILABLE);
            }
        }
    }

    @Override
    public void close() {
        // Nothing persistent: every query has its own socket.
    }

    /** One query: UDP first, TCP if truncated. Runs on {@link #loop}. */
    private final class PlainQuery {
        private final ByteBuf wire;
        private final int clientId;
        private final QueryCallback callback;
        private final long startedNanos = System.nanoTime();
        private ScheduledFuture<?> timeout;
        private Channel channel;
        private boolean done;
        /** Whether it took a place in {@link #inFlight}. */
        private boolean counted;

        PlainQuery(ByteBuf wire, int clientId, QueryCallback callback) {
            this.wire = wire;
            this.clientId = clientId;
            this.callback = callback;
        }

        void start(long deadlineNanos) {
            if (inFlight.incrementAndGet() > maxInFlight) {
                inFlight.decrementAndGet();
                fail(UpstreamFailure.OVERLOADED); // one socket per query: bounded, never queued
                return;
            }
            counted = true;
            timeout = loop.schedule(() -> fail(UpstreamFailure.TIMEOUT), deadlineNanos - System.nanoTime(), TimeUnit.NANOSECONDS);
            InternetProtocolFamily family = server.getAddress() instanceof Inet4Address
                    ? InternetProtocolFamily.IPv4 : InternetProtocolFamily.IPv6;
            ChannelFuture connect = new Bootstrap().group(loop)
                    .channelFactory(ChannelTypes.datagram(loop, family))
                    // Netty reads 2 KiB by default and cuts longer datagrams without a trace.
                    .option(ChannelOption.RCVBUF_ALLOCATOR, new FixedRecvByteBufAllocator(65535))
                    .handler(new ChannelInitializer<DatagramChannel>() {
                        @Override
                        protected void initChannel(DatagramChannel ch) {
                            ch.pipeline().addLast(new Answers(false));
                        }
                    })
                    .connect(server);
            sendOnceConnected(connect, () -> new DatagramPacket(wire.retainedDuplicate(), server));
        }

        private void retryOverTcp() {
            channel.close();
            ChannelFuture connect = new Bootstrap().group(loop)
                    .channel(ChannelTypes.socket(loop))
                    .handler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel ch) {
                            ch.pipeline().addLast(new LengthFieldBasedFrameDecoder(65535 + 2, 0, 2, 0, 2), new Answers(true));
                        }
                    })
                    .connect(server);
            sendOnceConnected(connect, () -> channel.alloc().buffer(2 + wire.readableBytes())
                    .writeShort(wire.readableBytes()).writeBytes(wire, wire.readerIndex(), wire.readableBytes()));
        }

        /** Makes {@code connect}'s channel the current one and writes the query when it is up. */
        private void sendOnceConnected(ChannelFuture connect, Supplier<Object> message) {
            channel = connect.channel();
            connect.addListener(f -> {
                if (!f.isSuccess()) {
                    fail(UpstreamFailure.CONNECT);
                } else if (!done) {
                    channel.writeAndFlush(message.get());
                }
            });
        }

        /** Takes an answer that matched; restores the client's ID. */
        private void answer(ByteBuf answer) {
            done = true;
            inFlight.decrementAndGet();
            timeout.cancel(false);
            channel.close();
            wire.release();
            metrics.settled();
            metrics.answered(System.nanoTime() - startedNanos);
            Header.setId(answer, answer.readerIndex(), clientId);
            callback.onAnswer(answer);
        }

        private void fail(UpstreamFailure failure) {
            if (done) {
                return;
            }
            done = true;
            if (counted) {
                inFlight.decrementAndGet();
            }
            if (timeout != null) {
                timeout.cancel(false); // null when it failed before it started
            }
            if (channel != null) {
                channel.close();
            }
            wire.release();
            metrics.settled();
            metrics.failed(failure);
            callback.onFailure(failure);
        }

        /** Accepts only answers to this query; anything else is counted and dropped. */
        private final class Answers extends ChannelInboundHandlerAdapter {
            private final boolean tcp;

            Answers(boolean tcp) {
                this.tcp = tcp;
            }

            @Override
            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                ByteBuf answer = msg instanceof DatagramPacket packet ? packet.content() : (ByteBuf) msg;
                int start = answer.readerIndex();
                // Clear text can be spoofed: even an error answer must carry the question.
                boolean matches = AnswerVerdict.of(wire, 0, wire.writerIndex(), answer, false) == AnswerVerdict.MATCH;
                if (done || !matches) {
                    if (!done) {
                        metrics.error(UpstreamMetrics.Fault.MISMATCH); // malformed ones too: all are dropped alike
                    }
                    answer.release();
                    return;
                }
                if (!tcp && (Header.flags(answer, start) & Header.FLAG_TC) != 0) {
                    answer.release();
                    retryOverTcp();
                    return;
                }
                answer(answer);
            }

            @Override
            public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                fail(UpstreamFailure.CLOSED); // e.g. ICMP port unreachable on the connected socket
            }

            @Override
            public void channelInactive(ChannelHandlerContext ctx) {
                if (tcp) {
                    fail(UpstreamFailure.CLOSED);
                }
            }
        }
    }
}
