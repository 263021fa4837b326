package io.dotproxy.upstream;

import io.dotproxy.dns.Header;
import io.dotproxy.net.ChannelTypes;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import io.netty.handler.flush.FlushConsolidationHandler;
import io.netty.handler.ssl.ReferenceCountedOpenSslEngine;
import io.netty.handler.ssl.SslHandler;
import io.netty.internal.tcnative.SSL;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.ScheduledFuture;
import java.security.GeneralSecurityException;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import org.jboss.logging.Logger;

/**
 * One TLS connection to a DoT resolver carrying many queries at once (RFC 7766 §6.2.1.1, RFC 7858).
 *
 * <p>Each query gets a message ID that is unique on this connection, written into its wire copy;
 * an answer is matched by that ID and by its question, and handed on with the client's own ID put
 * back. Queries written before the handshake completes wait inside this class, never in a buffer
 * that could reach the socket unencrypted. Deadlines are enforced by a sweep that runs only while
 * queries are pending, instead of a timer per query.
 *
 * <p>All methods run on the connection's event loop.
 */
final class DotConnection extends ChannelInboundHandlerAdapter {
    /** Told when the connection is gone, with the queries that got no answer on it. */
    interface Owner {
        /** The handshake completed; queries flow. */
        void connectionReady(DotConnection connection);

        /** A query left this connection (answered or timed out): there is room for another. */
        void roomFreed(DotConnection connection);

        /**
         * @param unanswered queries still waiting, in send order; the owner decides their fate
         * @param wasReady whether the TLS handshake had completed (else: connect or TLS failure)
         * @param failure why the connection could not be used, or null for an orderly close
         */
        void connectionClosed(DotConnection connection, List<InFlight> unanswered, boolean wasReady,
                              UpstreamMetrics.Fault failure, Throwable cause);
    }

    private static final Logger LOG = Logger.getLogger(DotConnection.class);
    private static final long SWEEP_INTERVAL_MILLIS = 25;
    /** Largest frame: a 65,535-octet message plus its 2-octet length (Netty counts both). */
    private static final int MAX_FRAME = 65535 + 2;

    private final IdTable<InFlight> ids;
    private final List<InFlight> pending = new ArrayList<>();
    private final Owner owner;
    private final UpstreamMetrics metrics;
    private final int maxInFlight;
    private final long idleNanos;
    /** The longest silence asked of a dead path: as long as a connect may take. */
    private final long deadSilenceNanos;
    private final EventLoop loop;
    private final TlsClientContext tls;
    private final Set<String> spkiPins;

    private Channel channel;
    private ChannelHandlerContext ctx;
    private SslHandler ssl;
    private final long openedAtMillis = System.currentTimeMillis();
    private int inFlight;
    private boolean ready;
    private boolean closed;
    private boolean sweepScheduled;
    private ScheduledFuture<?> idleCheck;
    private long lastReadNanos = System.nanoTime();
    private long lastWriteNanos;

    private DotConnection(EventLoop loop, DotResolver resolver, TlsClientContext tls, Owner owner,
                          UpstreamMetrics metrics, DotUpstream.Settings settings) {
        this.loop = loop;
        this.tls = tls;
        this.maxInFlight = settings.maxInFlight();
        this.ids = new IdTable<>(maxInFlight);
        this.idleNanos = settings.idleTimeout().toNanos();
        this.deadSilenceNanos = settings.connectTimeout().toNanos();
        this.spkiPins = resolver.spkiPins();
        this.owner = owner;
        this.metrics = metrics;
    }

    /** Starts connecting; queries may be sent at once and are written after the handshake. */
    static DotConnection open(EventLoop loop, DotResolver resolver, TlsClientContext tls,
                              DotUpstream.Settings settings, UpstreamMetrics metrics, Owner owner) {
        DotConnection connection = new DotConnection(loop, resolver, tls, owner, metrics, settings);
        int timeoutMillis = (int) Math.min(Integer.MAX_VALUE, settings.connectTimeout().toMillis());
        Bootstrap bootstrap = new Bootstrap()
                .group(loop)
                .channel(ChannelTypes.socket(loop))
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, timeoutMillis)
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.ALLOCATOR, TlsBuffers.ALLOCATOR)
                .handler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        SslHandler ssl = tls.newHandler(ch.alloc(), resolver.address());
                        ssl.setHandshakeTimeoutMillis(timeoutMillis);
                        connection.ssl = ssl;
                        ssl.handshakeFuture().addListener(connection::handshakeDone);
                        // Idleness is checked by a timer of our own, not Netty's IdleStateHandler,
                        // which turns every write's void promise into a real one plus a listener
                        // (measured: the largest share of the bytes allocated per query).
                        ch.pipeline().addLast(
                                ssl,
                                new LengthFieldBasedFrameDecoder(MAX_FRAME, 0, 2, 0, 2),
                                // Queries written in one event-loop turn leave in one TLS record.
                                new FlushConsolidationHandler(256, true),
                                connection);
                    }
                });
        ChannelFuture connect = bootstrap.connect(resolver.address().socketAddress());
        connection.channel = connect.channel();
        connect.addListener(f -> {
            if (!f.isSuccess()) {
                connection.shutdown(UpstreamMetrics.Fault.CONNECT, f.cause());
            }
        });
        return connection;
    }

    boolean isClosed() {
        return closed;
    }

    /** The handshake completed and queries are written as they come. */
    boolean isReady() {
        return ready && !closed;
    }

    int inFlight() {
        return inFlight;
    }

    /** Whether one more query may be sent now. */
    boolean hasRoom() {
        return !closed && inFlight < maxInFlight;
    }

    /** Sends a query; the caller has checked {@link #hasRoom()}. */
    void send(InFlight query) {
        query.upstreamId = ids.add(query);
        query.sends++;
        inFlight++;
        pending.add(query);
        if (ready) {
            write(query);
            ctx.flush();
        }
        scheduleSweep();
    }

    private void write(InFlight query) {
        query.wire.setShort(InFlight.ID_OFFSET, query.upstreamId);
        query.sentAtNanos = System.nanoTime();
        lastWriteNanos = query.sentAtNanos;
        ctx.write(query.wire.retainedDuplicate(), ctx.voidPromise());
    }

    private void handshakeDone(Future<? super Channel> handshake) {
        if (!handshake.isSuccess()) {
            shutdown(UpstreamMetrics.Fault.TLS, handshake.cause());
            return;
        }
        if (closed) {
            return;
        }
        SSLSession session = ssl.engine().getSession();
        try {
            Certificate[] chain = session.getPeerCertificates();
            Exception refused = spkiPins.isEmpty() ? null : pinRefusal(chain);
            if (refused != null) {
                shutdown(UpstreamMetrics.Fault.PIN, refused); // before any query is written: they wait for ready
                return;
            }
            if (chain.length > 0 && chain[0] instanceof X509Certificate leaf) {
                metrics.certificateExpires(leaf.getNotAfter().toInstant());
            }
        } catch (SSLPeerUnverifiedException e) {
            shutdown(UpstreamMetrics.Fault.TLS, e);
            return;
        }
        ready = true;
        metrics.handshake();
        if (wasResumed(session)) {
            metrics.resumedHandshake();
        }
        metrics.connectionOpened();
        owner.connectionReady(this);
        lastWriteNanos = System.nanoTime();
        lastReadNanos = lastWriteNanos; // the handshake's answer: the path was alive until now
        scheduleIdleCheck(idleNanos);
        for (InFlight query : pending) {
            if (!query.isDone()) {
                write(query);
            }
        }
        ctx.flush();
        owner.roomFreed(this); // a newly opened connection takes queries that waited for room
    }

    /**
     * Why the pins refuse the server, or null when one matches a certificate on the path that
     * validation builds from {@code chain}, leaf to trust anchor. Not {@code chain} itself: a
     * server with any valid certificate for the name could append the pinned one to it.
     */
    private Exception pinRefusal(Certificate[] chain) {
        try {
            return SpkiPins.matches(spkiPins, tls.validatedPath(chain)) ? null : new SSLPeerUnverifiedException(
                    "no certificate on the validated path matches the configured SPKI pins");
        } catch (GeneralSecurityException e) {
            return e; // the handshake validated a path, yet none is found again: refuse rather than guess
        }
    }

    /** Whether the handshake resumed an earlier session instead of making a new one. */
    private boolean wasResumed(SSLSession session) {
        if (ssl.engine() instanceof ReferenceCountedOpenSslEngine openSsl) {
            return SSL.isSessionReused(openSsl.sslPointer());
        }
        return session.getCreationTime() < openedAtMillis; // JDK: the session predates this connection
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        lastReadNanos = System.nanoTime();
        ByteBuf answer = (ByteBuf) msg;
        int start = answer.readerIndex();
        if (!AnswerVerdict.isResponse(answer)) {
            metrics.error(UpstreamMetrics.Fault.MALFORMED);
            answer.release();
            return;
        }
        int id = Header.id(answer, start);
        InFlight query = ids.get(id);
        if (query == null) {
            metrics.error(UpstreamMetrics.Fault.LATE);
            answer.release();
            return;
        }
        // An error answer may omit the question: over TLS there is no spoofed answer to guard against.
        if (AnswerVerdict.of(query.wire, InFlight.ID_OFFSET, query.wire.writerIndex(), answer, true)
                != AnswerVerdict.MATCH) {
            // Not the answer to this query (RFC 5452 §9.1 asks for the question to match, too);
            // the query keeps waiting for the right one until its deadline.
            metrics.error(UpstreamMetrics.Fault.MISMATCH);
            answer.release();
            return;
        }
        ids.remove(id, query);
        inFlight--;
        Header.setId(answer, start, query.clientId);
        query.answer(answer, System.nanoTime());
        owner.roomFreed(this);
    }

    private void scheduleIdleCheck(long delayNanos) {
        idleCheck = loop.schedule(this::checkIdle, delayNanos, TimeUnit.NANOSECONDS);
    }

    /** Closes the connection once nothing was in flight, read or written for the idle timeout. */
    private void checkIdle() {
        if (closed) {
            return;
        }
        long lastActivity = lastReadNanos - lastWriteNanos > 0 ? lastReadNanos : lastWriteNanos;
        long quietFor = System.nanoTime() - lastActivity;
        if (inFlight > 0) {
            scheduleIdleCheck(idleNanos);
        } else if (quietFor >= idleNanos) {
            LOG.debugf("DoT connection %s idle: closing it", channel.remoteAddress());
            closeQuietly(); // idle: not a failure; marked closed at once so no query is handed to it
        } else {
            scheduleIdleCheck(idleNanos - quietFor);
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        LOG.debugf(cause, "DoT connection %s failed", ctx.channel().remoteAddress());
        ctx.close();
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        if (ready && !closed) {
            LOG.debugf("DoT connection %s closed by the server, %d queries in flight", ctx.channel().remoteAddress(), inFlight);
        }
        shutdown(ready ? UpstreamMetrics.Fault.CLOSED : UpstreamMetrics.Fault.TLS, null);
    }

    /** Closes the connection now; queries in flight go back to the owner. */
    void closeQuietly() {
        shutdown(UpstreamMetrics.Fault.CLOSED, null);
    }

    /** Closes the connection and hands every unanswered query back to the owner, once. */
    private void shutdown(UpstreamMetrics.Fault failure, Throwable cause) {
        if (closed) {
            return;
        }
        closed = true;
        if (idleCheck != null) {
            idleCheck.cancel(false); // else the timer would keep this connection and its ID table alive
        }
        if (ready) {
            metrics.connectionClosed();
        }
        List<InFlight> unanswered = new ArrayList<>(inFlight);
        for (InFlight query : pending) {
            if (!query.isDone() && ids.remove(query.upstreamId, query)) {
                unanswered.add(query);
            }
        }
        pending.clear();
        inFlight = 0;
        channel.close();
        boolean orderly = ready && unanswered.isEmpty();
        owner.connectionClosed(this, unanswered, ready, orderly ? null : failure, cause);
    }

    private void scheduleSweep() {
        if (!sweepScheduled) {
            sweepScheduled = true;
            loop.schedule(this::sweep, SWEEP_INTERVAL_MILLIS, TimeUnit.MILLISECONDS);
        }
    }

    /** Fails queries past their deadline and forgets answered ones. */
    private void sweep() {
        sweepScheduled = false;
        if (closed) {
            return;
        }
        long now = System.nanoTime();
        int kept = 0;
        boolean deadPath = false;
        for (int i = 0; i < pending.size(); i++) {
            InFlight query = pending.get(i);
            if (query.isDone()) {
                continue;
            }
            if (query.expiredAt(now)) {
                // Written, timed out, and nothing at all read (nor a handshake finished) during
                // its whole attempt, or for as long as a connect may take: the path may be dead
                // (a NAT or load balancer that dropped the flow without a reset). A query that
                // waited for room while answers arrived, and timed out soon after it was written,
                // only says the upstream is slow; re-opening the connection would add a
                // handshake per timeout, under load when it hurts most.
                long silence = Math.min(deadSilenceNanos, query.deadlineNanos - query.startedNanos);
                deadPath |= ready && query.sentAtNanos != 0 && query.sentAtNanos - lastReadNanos > 0
                        && now - lastReadNanos >= silence;
                ids.remove(query.upstreamId, query);
                inFlight--;
                query.fail(UpstreamFailure.TIMEOUT);
                continue;
            }
            pending.set(kept++, query);
        }
        boolean freed = kept < pending.size();
        pending.subList(kept, pending.size()).clear();
        if (!pending.isEmpty()) {
            scheduleSweep();
        }
        if (deadPath) {
            closeQuietly(); // its other queries are resent on a fresh connection
            return;
        }
        if (freed) {
            owner.roomFreed(this);
        }
    }
}
