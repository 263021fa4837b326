package io.dotproxy.upstream;

import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.dotproxy.dns.Padding;
import io.netty.buffer.ByteBuf;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.List;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import org.jboss.logging.Logger;

/**
 * One DNS-over-TLS resolver (RFC 7858), reached over a small pool of persistent, pipelined
 * connections: opened on demand, reused by every query, re-opened after they break or idle out.
 *
 * <p>A query goes to the open connection with the fewest queries in flight (ties in turn: once a
 * burst has opened a second connection, any traffic that reaches each connection within the idle
 * timeout keeps both open, trading one idle connection for no handshake in the middle of
 * traffic; the pool is small and shrinks when traffic stops); another connection is
 * opened only while the pool is short and the least busy is a quarter full, and only when the
 * handshake budget allows. Steady traffic therefore costs no handshakes at all. When every
 * connection is full, queries wait in a bounded queue for room (until their deadline) rather than
 * fail at once; only a full queue refuses them (OVERLOADED). Queries that were
 * in flight on a connection that broke are written once more on another while their deadline
 * allows. Queries with EDNS are padded to a multiple of 128 octets (RFC 8467).
 *
 * <p>All state is confined to one event loop; {@link #query} hops onto it when called elsewhere.
 */
public final class DotUpstream implements Upstream, DotConnection.Owner {
    /**
     * Tuning of one DoT upstream.
     *
     * @param connectTimeout bound on TCP connect and on the TLS handshake, each; also the
     *                       longest a connection may read nothing, with a query timed out on
     *                       it, before it counts as dead and is replaced (a query's whole
     *                       attempt, when that is shorter)
     * @param idleTimeout a connection with nothing in flight for this long is closed
     * @param maxInFlight queries in flight on one connection at most (1 to 65,535: one message ID each)
     * @param poolSize connections open at most
     * @param handshakesPerSecond sustained rate of new connections
     * @param handshakeBurst new connections allowed at once before the rate applies
     */
    public record Settings(Duration connectTimeout, Duration idleTimeout, int maxInFlight, int poolSize,
                           double handshakesPerSecond, int handshakeBurst) {}

    private static final Logger LOG = Logger.getLogger(DotUpstream.class);
    /** A query is written at most twice: once, and once more if its connection broke. */
    private static final int MAX_SENDS = 2;

    private final DotResolver resolver;
    private final String name;
    private final TlsClientContext tls;
    private final EventLoop loop;
    private final Settings settings;
    private final UpstreamMetrics metrics;
    private final DotConnection[] pool;
    private final TokenBucket handshakeBudget;
    private final int openAnotherAt;

    /** Where the next search of the pool starts (after the last chosen): ties go in turn. */
    private int nextStart;
    private final ArrayDeque<InFlight> waiting = new ArrayDeque<>();
    /** Callers of connectAhead() waiting for its connection to be ready or to fail. */
    private final ArrayDeque<Promise<Void>> connectingAhead = new ArrayDeque<>();
    private final int maxWaiting;
    private boolean waitSweepScheduled;
    private boolean failing;
    private boolean closed;

    public DotUpstream(DotResolver resolver, TlsClientContext tls, EventLoop loop, Settings settings,
                       UpstreamMetrics metrics) {
        this(resolver, tls, loop, settings, metrics, new TokenBucket(settings.handshakeBurst(), settings.handshakesPerSecond()));
    }

    /** @param handshakeBudget shared with the members of other lanes ({@link Standing}) */
    DotUpstream(DotResolver resolver, TlsClientContext tls, EventLoop loop, Settings settings,
                UpstreamMetrics metrics, TokenBucket handshakeBudget) {
        this.resolver = resolver;
        this.name = resolver.toString();
        this.tls = tls;
        this.loop = loop;
        this.settings = settings;
        this.metrics = metrics;
        this.pool = new DotConnection[settings.poolSize()];
        this.handshakeBudget = handshakeBudget;
        this.openAnotherAt = Math.max(1, settings.maxInFlight() / 4);
        this.maxWaiting = settings.maxInFlight() * settings.poolSize() * 4;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public void query(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback) {
        ByteBuf wire = TlsBuffers.ALLOCATOR.directBuffer(2 + parsed.length() + Padding.maxGrowth(Padding.QUERY_BLOCK));
        wire.writeShort(0);
        Padding.writePadded(wire, query, parsed, Padding.QUERY_BLOCK);
        wire.setShort(0, wire.writerIndex() - 2);
        metrics.sent();
        InFlight inFlight = new InFlight(wire, Header.id(query, parsed.start()), deadlineNanos, callback, metrics);
        if (loop.inEventLoop()) {
            dispatch(inFlight);
        } else {
            try {
                loop.execute(() -> dispatch(inFlight));
            } catch (RejectedExecutionException shuttingDown) {
                inFlight.fail(UpstreamFailure.UNAVAILABLE);
            }
        }
    }

    private void dispatch(InFlight query) {
        long now = System.nanoTime();
        if (query.expiredAt(now)) {
            query.expire();
            return;
        }
        query.start(now);
        if (closed) {
            query.fail(UpstreamFailure.UNAVAILABLE);
            return;
        }
        DotConnection best = null;
        int bestSlot = -1;
        int freeSlot = -1;
        int open = 0;
        // The search starts after the connection chosen last, so light traffic (where every
        // connection has nothing in flight) takes the open connections in turn. Were it always
        // the first, the others would idle out between bursts and be opened again by the next
        // one: a TLS handshake on this event loop, in the middle of traffic.
        for (int k = 0; k < pool.length; k++) {
            int i = nextStart + k < pool.length ? nextStart + k : nextStart + k - pool.length;
            DotConnection connection = pool[i];
            if (connection == null || connection.isClosed()) {
                pool[i] = null;
                freeSlot = i;
                continue;
            }
            open++;
            if (connection.hasRoom() && (best == null || isBetter(connection, best))) {
                best = connection;
                bestSlot = i;
            }
        }
        if (bestSlot >= 0) {
            nextStart = bestSlot + 1 == pool.length ? 0 : bestSlot + 1;
        }
        boolean wantAnother = best == null || (best.isReady() && best.inFlight() >= openAnotherAt);
        if (wantAnother && freeSlot >= 0 && handshakeBudget.tryTake()) {
            DotConnection opened = DotConnection.open(loop, resolver, tls, settings, metrics, this);
            if (!opened.isClosed()) {
                pool[freeSlot] = opened;
                if (best == null) {
                    best = opened;
                }
            }
        }
        if (best == null) {
            if (open == 0) {
                query.fail(UpstreamFailure.UNAVAILABLE); // no connection, and the handshake budget is spent
            } else if (waiting.size() < maxWaiting) {
                waiting.add(query); // every connection is full: wait for room
                scheduleWaitSweep();
            } else {
                query.fail(UpstreamFailure.OVERLOADED);
            }
            return;
        }
        best.send(query);
    }

    private int openConnections() {
        int open = 0;
        for (DotConnection connection : pool) {
            if (connection != null && !connection.isClosed()) {
                open++;
            }
        }
        return open;
    }

    @Override
    public void roomFreed(DotConnection connection) {
        while (!waiting.isEmpty() && connection.hasRoom() && connection.isReady()) {
            InFlight query = waiting.poll();
            if (query.expiredAt(System.nanoTime())) {
                query.expire();
            } else {
                connection.send(query);
            }
        }
    }

    private void scheduleWaitSweep() {
        if (!waitSweepScheduled) {
            waitSweepScheduled = true;
            loop.schedule(this::sweepWaiting, 25, TimeUnit.MILLISECONDS);
        }
    }

    /** Fails waiting queries whose deadline passed, even when no connection frees room. */
    private void sweepWaiting() {
        waitSweepScheduled = false;
        long now = System.nanoTime();
        waiting.removeIf(query -> {
            if (query.expiredAt(now)) {
                query.expire();
                return true;
            }
            return false;
        });
        if (!waiting.isEmpty()) {
            scheduleWaitSweep();
        }
    }

    /** Ready beats connecting; then the fewest queries in flight. */
    private static boolean isBetter(DotConnection candidate, DotConnection current) {
        if (candidate.isReady() != current.isReady()) {
            return candidate.isReady();
        }
        return candidate.inFlight() < current.inFlight();
    }

    /**
     * Opens the first connection now, so that the first client query does not wait for a TCP
     * and TLS handshake. A failure here is logged and costs nothing else.
     *
     * @return done when that connection is ready or has failed (both bounded by the connect
     *     timeout), or at once when there was nothing to open
     */
    @Override
    public Future<Void> connectAhead() {
        Promise<Void> settled = loop.newPromise();
        loop.execute(() -> {
            if (!closed && openConnections() == 0 && handshakeBudget.tryTake()) {
                DotConnection opened = DotConnection.open(loop, resolver, tls, settings, metrics, this);
                if (!opened.isClosed()) {
                    pool[0] = opened;
                    connectingAhead.add(settled);
                    return;
                }
            }
            settled.trySuccess(null);
        });
        return settled;
    }

    @Override
    public void connectionReady(DotConnection readyConnection) {
        if (failing) {
            LOG.infof("Upstream %s accepts connections again", name);
            failing = false;
        }
        settleConnectAhead();
    }

    private void settleConnectAhead() {
        while (!connectingAhead.isEmpty()) {
            connectingAhead.poll().trySuccess(null);
        }
    }

    @Override
    public void connectionClosed(DotConnection closedConnection, List<InFlight> unanswered, boolean wasReady,
                                 UpstreamMetrics.Fault failure, Throwable cause) {
        for (int i = 0; i < pool.length; i++) {
            if (pool[i] == closedConnection) {
                pool[i] = null;
            }
        }
        if (failure != null) {
            metrics.error(failure);
        }
        if (!wasReady) {
            settleConnectAhead();
            if (!failing) {
                LOG.warnf("Upstream %s unusable (%s): %s", name, failure == null ? "closed" : failure.tag(),
                        describe(cause));
            }
            failing = true;
            UpstreamFailure reason = failure == UpstreamMetrics.Fault.CONNECT ? UpstreamFailure.CONNECT : UpstreamFailure.TLS;
            for (InFlight query : unanswered) {
                query.fail(reason);
            }
            return;
        }
        for (InFlight query : unanswered) {
            if (query.sends < MAX_SENDS && !closed) {
                dispatch(query);
            } else {
                query.fail(UpstreamFailure.CLOSED);
            }
        }
    }

    private static String describe(Throwable cause) {
        if (cause == null) {
            return "connection closed during the handshake";
        }
        // Handshake failures wrap the useful reason (certificate, name) a level or two down.
        Throwable root = cause;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String outer = String.valueOf(cause.getMessage());
        String inner = String.valueOf(root.getMessage());
        return outer.contains(inner) ? outer : outer + ": " + inner;
    }

    @Override
    public void close() {
        loop.execute(() -> {
            closed = true;
            settleConnectAhead();
            while (!waiting.isEmpty()) {
                waiting.poll().fail(UpstreamFailure.UNAVAILABLE);
            }
            for (DotConnection connection : pool) {
                if (connection != null) {
                    connection.closeQuietly();
                }
            }
        });
    }
}
