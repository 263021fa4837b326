package io.dotproxy.server;

import io.dotproxy.net.ChannelTypes;
import io.dotproxy.net.Transport;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.channel.socket.DuplexChannel;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.codec.LengthFieldPrepender;
import io.netty.handler.flush.FlushConsolidationHandler;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.util.concurrent.ScheduledFuture;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import org.jboss.logging.Logger;

/**
 * The TCP side of the proxy (RFC 7766): messages framed by a 2-octet length, many queries per
 * connection, answers written as soon as each is ready (out of order), idle connections closed,
 * and caps on open connections, in all and per client. A connection with many queries outstanding
 * stops being read until answers drain, which pushes back on the client through TCP flow control.
 * A connection is retired after a number of queries or an age: it takes no more queries, and
 * ends (FIN) once its last answer is written, so that long-lived clients spread over the replicas
 * behind a Service as they reconnect. A graceful stop retires every connection the same way.
 */
public final class TcpListener {
    /**
     * Client TCP limits.
     *
     * @param idleTimeout a connection with no query outstanding is closed after this long (RFC 7766 §6.2.3)
     * @param maxConnections connections beyond this are closed as soon as they are accepted
     * @param maxConnectionsPerClient connections from one address beyond this are closed at once
     * @param frameTimeout once a frame's first octet has arrived, the whole frame must within this
     * @param maxQueries a connection is retired after this many queries; 0: never
     * @param maxAge a connection is retired this long after it opened; zero: never
     */
    public record Settings(Duration idleTimeout, int maxConnections, int maxConnectionsPerClient, Duration frameTimeout,
                           int maxQueries, Duration maxAge) {}

    private static final Logger LOG = Logger.getLogger(TcpListener.class);
    /** Answers queued for a client that does not read them: above this, reading pauses. */
    private static final WriteBufferWaterMark WRITE_LIMITS = new WriteBufferWaterMark(32 * 1024, 64 * 1024);
    /** Queries outstanding per connection before reading pauses. */
    static final int MAX_PIPELINED = 100;
    /** How long an ending connection waits for the client's FIN after its own (see ClientConnection#end). */
    static final long LINGER_MILLIS = 1000;

    private final QueryPipeline pipeline;
    private final ServerMetrics metrics;
    private volatile Settings settings; // replaced by reconfigure(); a connection keeps those it opened with
    private final ConnectionsPerClient perClient;
    /** Every open client connection, for a graceful stop; touched on the listener's event loop only. */
    private final Set<ClientConnection> open = new HashSet<>();

    /** A listener of one lane, counting connections per client with the other lanes' listeners. */
    TcpListener(QueryPipeline pipeline, ServerMetrics metrics, Settings settings, ConnectionsPerClient perClient) {
        this.pipeline = pipeline;
        this.metrics = metrics;
        this.settings = settings;
        this.perClient = perClient;
    }

    /**
     * Connections accepted from now on get {@code next} (a reload); those open keep the limits
     * they opened with, as a client expects of a connection it holds.
     */
    public void reconfigure(Settings next) {
        settings = next;
    }

    /**
     * Binds the server socket (the returned future's channel is the listener), with SO_REUSEPORT when {@code shared}: each lane binds its own
     * acceptor to the one port, and the kernel spreads new connections over them.
     */
    public ChannelFuture bind(EventLoopGroup group, InetSocketAddress address, boolean shared) {
        ServerBootstrap bootstrap = new ServerBootstrap();
        if (shared) {
            bootstrap.option(ChannelTypes.reusePort(group), true);
        }
        return bootstrap
                .group(group, group)
                .channel(ChannelTypes.serverSocket(group))
                .option(ChannelOption.SO_BACKLOG, 1024)
                .option(ChannelOption.SO_REUSEADDR, true)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childOption(ChannelOption.ALLOW_HALF_CLOSURE, true)
                .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, WRITE_LIMITS)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        Settings limits = settings;
                        if (!metrics.tryOpenConnection(limits.maxConnections())) {
                            ch.close();
                            return;
                        }
                        ch.closeFuture().addListener(f -> metrics.connectionClosed());
                        InetAddress client = ch.remoteAddress().getAddress();
                        if (!perClient.tryOpen(client, limits.maxConnectionsPerClient())) {
                            metrics.connectionRejected(ServerMetrics.Rejection.PER_CLIENT);
                            ch.close();
                            return;
                        }
                        ch.closeFuture().addListener(f -> perClient.closed(client));
                        ch.pipeline().addLast(
                                new IdleStateHandler(0, 0, limits.idleTimeout().toMillis(), TimeUnit.MILLISECONDS),
                                new FrameDecoder(limits.frameTimeout().toNanos(),
                                        () -> metrics.closedByProxy(ServerMetrics.Closing.FRAME_TIMEOUT)),
                                new LengthFieldPrepender(2),
                                new FlushConsolidationHandler(256, true),
                                new ClientConnection(limits));
                    }
                })
                .bind(address);
    }

    /**
     * The graceful stop's first step for clients (call on the event loop, once the acceptor is
     * closed): every connection takes no more queries; an idle one ends at once, a busy one once
     * its last answer is written (see ClientConnection#end).
     */
    void retireAll() {
        for (ClientConnection connection : List.copyOf(open)) {
            connection.retire(ServerMetrics.Closing.DRAIN);
        }
    }

    /** Closes the connections still open (call on the event loop): their clients had their time. */
    void closeAll() {
        for (ClientConnection connection : List.copyOf(open)) {
            connection.ctx.close();
        }
    }

    /** One client connection: counts what is outstanding, pauses reading, closes when idle or retired. */
    private final class ClientConnection extends ChannelInboundHandlerAdapter {
        private final Settings limits;
        private ChannelHandlerContext ctx;
        private EventLoop loop;
        private InetSocketAddress client;
        private int outstanding;
        private int queries;
        /** No more queries are read: the client half-closed, or the connection is retired. */
        private boolean inputClosed;
        /** The client half-closed: everything it sent has been read. */
        private boolean clientFinished;
        /** Every query answered on a connection that takes no more: it is ending ({@link #end}). */
        private boolean ending;
        private ScheduledFuture<?> ageLimit;
        private ScheduledFuture<?> lingerLimit;

        ClientConnection(Settings limits) {
            this.limits = limits;
        }

        @Override
        public void handlerAdded(ChannelHandlerContext ctx) {
            this.ctx = ctx;
            this.loop = ctx.channel().eventLoop();
            this.client = (InetSocketAddress) ctx.channel().remoteAddress();
            open.add(this);
            if (!limits.maxAge().isZero()) {
                ageLimit = loop.schedule(() -> retire(ServerMetrics.Closing.MAX_AGE), limits.maxAge().toNanos(),
                        TimeUnit.NANOSECONDS);
            }
        }

        @Override
        public void handlerRemoved(ChannelHandlerContext ctx) {
            open.remove(this);
            if (ageLimit != null) {
                ageLimit.cancel(false);
            }
            if (lingerLimit != null) {
                lingerLimit.cancel(false);
            }
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (inputClosed) {
                ((ByteBuf) msg).release(); // decoded after the connection was retired: not read, no answer
                return;
            }
            outstanding++;
            if (outstanding >= MAX_PIPELINED || !ctx.channel().isWritable()) {
                ctx.channel().config().setAutoRead(false);
            }
            pipeline.handle((ByteBuf) msg, new TcpExchange(this));
            if (++queries == limits.maxQueries()) {
                retire(ServerMetrics.Closing.MAX_QUERIES);
            }
        }

        /**
         * Takes no more queries and ends once the last answer is written ({@link #end}): between
         * answers, so nothing the client asked is lost. Queries it sent after this point are not read.
         */
        private void retire(ServerMetrics.Closing reason) {
            if (inputClosed || !ctx.channel().isActive()) {
                return;
            }
            metrics.closedByProxy(reason);
            inputClosed = true;
            ctx.channel().config().setAutoRead(false);
            if (outstanding == 0) {
                end();
            }
        }

        /**
         * Ends a connection that takes no more queries and has none outstanding, without losing an
         * answer: first every answer handed to the channel is written (a close would drop those still
         * queued); then, when the client has not half-closed, a FIN after them, and what the client
         * still sends is read and dropped until its own FIN, or {@link #LINGER_MILLIS}. A close with
         * client octets unread would send RST instead of FIN, and a RST discards the answers the
         * kernel has not sent yet (RFC 1122 §4.2.2.13).
         */
        private void end() {
            if (ending) {
                if (clientFinished && lingerLimit != null) {
                    ctx.close(); // its FIN came while lingering; before that, the write's listener closes
                }
                return;
            }
            ending = true;
            // Written below the framing, an empty buffer completes once every answer before it has.
            ctx.pipeline().context(LengthFieldPrepender.class).writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(written -> {
                if (clientFinished || !written.isSuccess()) {
                    ctx.close();
                    return;
                }
                ((DuplexChannel) ctx.channel()).shutdownOutput();
                ctx.channel().config().setAutoRead(true);
                lingerLimit = loop.schedule(() -> ctx.close(), LINGER_MILLIS, TimeUnit.MILLISECONDS);
            });
        }

        @Override
        public void channelWritabilityChanged(ChannelHandlerContext ctx) {
            resumeReadingIfDrained();
            ctx.fireChannelWritabilityChanged();
        }

        /** Reads again once both the queries outstanding and the answers queued are below their limits. */
        private void resumeReadingIfDrained() {
            if (!inputClosed && outstanding < MAX_PIPELINED && ctx.channel().isWritable()
                    && !ctx.channel().config().isAutoRead()) {
                ctx.channel().config().setAutoRead(true);
            }
        }

        /** Called for every query, answered or not, on any thread. */
        void completed(ByteBuf answer) {
            if (loop.inEventLoop()) {
                finish(answer);
            } else {
                try {
                    loop.execute(() -> finish(answer));
                } catch (RejectedExecutionException shuttingDown) {
                    if (answer != null) {
                        answer.release(); // the connection's loop is gone, and the connection with it
                    }
                }
            }
        }

        private void finish(ByteBuf answer) {
            outstanding--;
            if (answer != null) {
                ctx.writeAndFlush(answer, ctx.voidPromise());
            }
            if (inputClosed && outstanding == 0) {
                end();
            }
            resumeReadingIfDrained();
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object event) {
            if (event instanceof IdleStateEvent && outstanding == 0) {
                ctx.close();
            } else if (event instanceof ChannelInputShutdownEvent) {
                // The client sent all its queries (half-close): answer them, then close.
                inputClosed = true;
                clientFinished = true;
                if (outstanding == 0) {
                    end();
                }
            }
            ctx.fireUserEventTriggered(event);
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            LOG.debugf(cause, "TCP client connection %s failed", ctx.channel().remoteAddress());
            ctx.close();
        }
    }

    private static final class TcpExchange extends Exchange {
        private final ClientConnection connection;

        TcpExchange(ClientConnection connection) {
            this.connection = connection;
        }

        @Override
        Transport transport() {
            return Transport.TCP;
        }

        @Override
        InetSocketAddress client() {
            return connection.client;
        }

        @Override
        ByteBufAllocator alloc() {
            return connection.ctx.alloc();
        }

        @Override
        void send(ByteBuf answer) {
            connection.completed(answer);
        }

        @Override
        void abandon() {
            connection.completed(null);
        }
    }
}
