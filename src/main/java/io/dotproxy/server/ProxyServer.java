package io.dotproxy.server;

import io.dotproxy.net.ChannelTypes;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.EventLoop;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.concurrent.Callable;
import org.jboss.logging.Logger;

/**
 * The UDP and the TCP listener on one address and port, both feeding one {@link QueryPipeline}.
 * With port 0 both get the same free port, so one number reaches both. They stop gracefully
 * ({@link #drain}) or at once ({@link #stop}).
 */
public final class ProxyServer {
    /**
     * Where and how to listen.
     *
     * @param host address to bind; {@code ::} means every IPv6 and IPv4 address
     * @param port port for both UDP and TCP; 0 picks a free one
     * @param tcp the client TCP limits
     * @param drainDelay how long the listeners keep serving once a graceful stop has begun ({@link #drain})
     */
    public record Settings(String host, int port, TcpListener.Settings tcp, Duration drainDelay) {}

    private static final Logger LOG = Logger.getLogger(ProxyServer.class);
    private static final int BIND_ATTEMPTS = 5;

    /** How often a drain looks at the count of queries in flight. */
    private static final long IN_FLIGHT_POLL_MILLIS = 10;

    private final Settings settings;
    private final QueryPipeline pipeline;
    private final ServerMetrics metrics;
    private final UdpListener udp;
    private final TcpListener tcp;
    private final EventLoop loop;
    private volatile Channel udpChannel;
    private volatile Channel tcpChannel;
    /** A stop has begun: not ready, and a listener closing is no failure. */
    private volatile boolean stopping;

    public ProxyServer(Settings settings, QueryPipeline pipeline, ServerMetrics metrics, EventLoop loop) {
        this.settings = settings;
        this.pipeline = pipeline;
        this.metrics = metrics;
        this.loop = loop;
        this.udp = new UdpListener(pipeline);
        this.tcp = new TcpListener(pipeline, metrics, settings.tcp());
    }

    /** Client TCP connections accepted from now on get {@code next} (a reload); open ones keep theirs. */
    public void reconfigure(TcpListener.Settings next) {
        tcp.reconfigure(next);
    }

    /**
     * Binds both listeners, blocking until done (call it at start-up, not on an event loop).
     *
     * @throws UncheckedIOException naming the address when a socket cannot be bound
     */
    public void start() {
        InetAddress address = resolve(settings.host());
        try {
            bindBoth(address);
        } catch (IOException e) {
            if (settings.host().equals("::") && e.getMessage() != null && e.getMessage().contains("not supported")) {
                LOG.info("IPv6 is not available here; listening on 0.0.0.0 (IPv4 only)");
                try {
                    bindBoth(resolve("0.0.0.0"));
                    return;
                } catch (IOException e4) {
                    e = e4;
                }
            }
            throw new UncheckedIOException("cannot listen on " + settings.host() + " port " + settings.port()
                    + ": " + e.getMessage(), e);
        }
    }

    private void bindBoth(InetAddress address) throws IOException {
        IOException last = null;
        int attempts = settings.port() == 0 ? BIND_ATTEMPTS : 1;
        for (int i = 0; i < attempts; i++) {
            Channel udpBound = bind(udp.bind(loop, new InetSocketAddress(address, settings.port())));
            int port = ((InetSocketAddress) udpBound.localAddress()).getPort();
            try {
                tcpChannel = bind(tcp.bind(loop, new InetSocketAddress(address, port)));
                udpChannel = udpBound;
                LOG.infof("Listening for DNS on %s port %d (UDP and TCP, %s)", address.getHostAddress(), port,
                        ChannelTypes.isEpoll(loop) ? "epoll" : "NIO");
                return;
            } catch (IOException e) {
                udpBound.close().syncUninterruptibly();
                last = e; // the free UDP port may be taken for TCP: try another
            }
        }
        throw last;
    }

    private static Channel bind(ChannelFuture future) throws IOException {
        future.awaitUninterruptibly();
        if (!future.isSuccess()) {
            Throwable cause = future.cause();
            throw cause instanceof IOException io ? io : new IOException(cause.getMessage(), cause);
        }
        return future.channel();
    }

    private static InetAddress resolve(String host) {
        try {
            return InetAddress.getByName(host);
        } catch (UnknownHostException e) {
            throw new UncheckedIOException("cannot listen on " + host + ": unknown address", e);
        }
    }

    /** The port both listeners are bound to, once started. */
    public int port() {
        return ((InetSocketAddress) udpChannel.localAddress()).getPort();
    }

    /** Both listeners are bound and open, and no stop (not even a drain's serving part) has begun. */
    public boolean isServing() {
        Channel u = udpChannel;
        Channel t = tcpChannel;
        return !stopping && u != null && t != null && u.isOpen() && t.isOpen();
    }

    /** Whether a listener that was bound has closed without being asked to (a broken process). */
    public boolean hasFailed() {
        Channel u = udpChannel;
        Channel t = tcpChannel;
        return !stopping && ((u != null && !u.isOpen()) || (t != null && !t.isOpen()));
    }

    /** Whether a stop has begun: readiness is down from its first moment. */
    public boolean isStopping() {
        return stopping;
    }

    /** Closes both listeners at once; queries in flight get no answer over UDP. */
    public void stop() {
        stopping = true;
        if (udpChannel != null) {
            udpChannel.close().syncUninterruptibly();
        }
        if (tcpChannel != null) {
            tcpChannel.close().syncUninterruptibly();
        }
    }

    /**
     * The graceful stop: from now on {@link #isStopping()} (readiness down), while both listeners
     * keep serving for the settings' drain delay, so that the Service's endpoints and kube-proxy
     * stop sending here; then stops accepting (no more datagrams read, the TCP acceptor closed,
     * client connections retired: idle ones end at once, busy ones once answered); waits until
     * every accepted query is answered and the client connections have ended, at most {@code
     * bound}; and closes the listeners. The UDP socket stays open, unread, until then: the answers
     * to the queries it took leave through it.
     * Blocks the calling thread, which must not be the event loop: the waiting happens here, and
     * every step on the listeners is done on their loop.
     *
     * @param bound how long accepted queries may take to be answered: their deadline, and a little
     * @return the queries that were still unanswered when the listeners closed
     */
    public int drain(Duration bound) {
        if (loop.inEventLoop()) {
            throw new IllegalStateException("drain() waits: call it off the event loop");
        }
        stopping = true;
        Duration delay = settings.drainDelay();
        LOG.infof("Draining: not ready, still serving for %d ms", delay.toMillis());
        pause(delay.toMillis());
        int accepted = onLoop(() -> {
            stopAccepting();
            return pipeline.inFlight();
        });
        LOG.infof("Stopped accepting queries; %d in flight", accepted);
        long giveUpAt = System.nanoTime() + bound.toNanos();
        // Nothing is read any more, so the count only falls as answers come back; the client
        // connections end a moment after their last answer (TcpListener: FIN, then the client's).
        while ((pipeline.inFlight() > 0 || metrics.openConnections() > 0) && System.nanoTime() - giveUpAt < 0) {
            if (!pause(IN_FLIGHT_POLL_MILLIS)) {
                break;
            }
        }
        int unanswered = onLoop(() -> {
            int left = pipeline.inFlight();
            closeListeners();
            return left;
        });
        if (unanswered == 0) {
            LOG.info("Drained: every accepted query was answered; listeners closed");
        } else {
            LOG.warnf("Gave up with %d queries unanswered after the deadline (%d ms); listeners closed",
                    unanswered, bound.toMillis());
        }
        return unanswered;
    }

    /** On the loop: nothing new is read. Queries already read go on. */
    private void stopAccepting() {
        Channel u = udpChannel;
        if (u != null) {
            // Unread, not closed: the answers to the queries it took still leave through it.
            u.config().setAutoRead(false);
        }
        Channel t = tcpChannel;
        if (t != null) {
            t.close(); // new connections are refused from here on
        }
        tcp.retireAll();
    }

    /** On the loop: the UDP socket (its answers flushed first), the acceptor, any client connection left. */
    private void closeListeners() {
        Channel u = udpChannel;
        if (u != null) {
            u.close();
        }
        Channel t = tcpChannel;
        if (t != null) {
            t.close();
        }
        tcp.closeAll();
    }

    /** Runs {@code step} on the loop and waits for it. */
    private <T> T onLoop(Callable<T> step) {
        try {
            return loop.submit(step).syncUninterruptibly().getNow();
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** Sleeps; false, with the thread's interrupt flag set again, when interrupted (the drain then goes on at once). */
    private static boolean pause(long millis) {
        try {
            Thread.sleep(millis);
            return true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }
}
