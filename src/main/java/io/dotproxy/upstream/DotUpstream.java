package io.dotproxy.upstream;

import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.EventLoop;
import java.time.Duration;
import java.util.List;
import org.jboss.logging.Logger;

/**
 * One DNS-over-TLS resolver (RFC 7858), reached over a persistent, pipelined connection that is
 * opened on first use, reused by every query, and opened again after it breaks or idles out.
 *
 * <p>Queries that were in flight on a connection that broke are sent once more on a new one while
 * their deadline allows. After a failed connect or handshake, the upstream is left alone for a
 * short hold-off and queries fail at once, so a dead resolver costs at most one timeout.
 *
 * <p>All state is confined to one event loop; {@link #query} hops onto it when called elsewhere.
 */
public final class DotUpstream implements Upstream, DotConnection.Owner {
    /**
     * Tuning of one DoT upstream.
     *
     * @param connectTimeout bound on TCP connect and on the TLS handshake, each
     * @param idleTimeout a connection with nothing in flight for this long is closed
     * @param maxInFlight queries in flight on one connection at most (below 65,536)
     * @param failureHoldOff how long to fail fast after a connect or handshake failure
     */
    public record Settings(Duration connectTimeout, Duration idleTimeout, int maxInFlight, Duration failureHoldOff) {
        public Settings {
            if (maxInFlight < 1 || maxInFlight >= 65536) {
                throw new IllegalArgumentException("maxInFlight must be 1..65535");
            }
        }
    }

    private static final Logger LOG = Logger.getLogger(DotUpstream.class);
    /** A query is written at most twice: once, and once more if its connection broke. */
    private static final int MAX_SENDS = 2;

    private final UpstreamAddress address;
    private final String name;
    private final TlsClientContext tls;
    private final EventLoop loop;
    private final Settings settings;
    private final UpstreamMetrics metrics;

    private DotConnection connection;
    private long holdOffUntilNanos;
    private boolean failing;
    private boolean closed;

    public DotUpstream(UpstreamAddress address, TlsClientContext tls, EventLoop loop, Settings settings,
                       UpstreamMetrics metrics) {
        this.address = address;
        this.name = address.toString();
        this.tls = tls;
        this.loop = loop;
        this.settings = settings;
        this.metrics = metrics;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public void query(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback) {
        int length = query.readableBytes();
        ByteBuf wire = ByteBufAllocator.DEFAULT.directBuffer(2 + length);
        wire.writeShort(length).writeBytes(query, query.readerIndex(), length);
        InFlight inFlight = new InFlight(wire, Header.id(query, query.readerIndex()), deadlineNanos, callback, metrics);
        if (loop.inEventLoop()) {
            dispatch(inFlight);
        } else {
            loop.execute(() -> dispatch(inFlight));
        }
    }

    private void dispatch(InFlight query) {
        long now = System.nanoTime();
        if (now - query.deadlineNanos >= 0) {
            query.fail(UpstreamFailure.TIMEOUT);
            return;
        }
        DotConnection current = connection;
        if (current == null || current.isClosed()) {
            if (closed || (failing && now - holdOffUntilNanos < 0)) {
                query.fail(UpstreamFailure.UNAVAILABLE);
                return;
            }
            current = DotConnection.open(loop, address, tls, settings, metrics, this);
            connection = current;
            if (current.isClosed()) { // failed synchronously, e.g. no route
                query.fail(UpstreamFailure.CONNECT);
                return;
            }
        }
        if (!current.hasRoom()) {
            query.fail(UpstreamFailure.OVERLOADED);
            return;
        }
        current.send(query);
    }

    @Override
    public void connectionReady(DotConnection readyConnection) {
        if (failing) {
            LOG.infof("Upstream %s is usable again", name);
            failing = false;
        }
    }

    @Override
    public void connectionClosed(DotConnection closedConnection, List<InFlight> unanswered, boolean wasReady,
                                 UpstreamMetrics.Error failure, Throwable cause) {
        if (connection == closedConnection) {
            connection = null;
        }
        if (failure != null) {
            metrics.error(failure);
        }
        if (!wasReady) {
            holdOffUntilNanos = System.nanoTime() + settings.failureHoldOff().toNanos();
            if (!failing) {
                LOG.warnf("Upstream %s unusable (%s): %s", name, failure == null ? "closed" : failure.tag(),
                        describe(cause));
            }
            failing = true;
            UpstreamFailure reason = failure == UpstreamMetrics.Error.CONNECT ? UpstreamFailure.CONNECT : UpstreamFailure.TLS;
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
            if (connection != null) {
                connection.closeQuietly();
            }
        });
    }
}
