package io.dotproxy.server;

import io.dotproxy.net.ChannelTypes;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.Future;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ProtocolFamily;
import java.net.StandardProtocolFamily;
import java.net.UnknownHostException;
import java.nio.channels.DatagramChannel;
import java.nio.channels.ServerSocketChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.jboss.logging.Logger;

/**
 * The UDP and the TCP listeners on one address and port: a pair for each lane (event loop), each
 * feeding its lane's {@link QueryPipeline}. With several lanes every socket is bound with
 * SO_REUSEPORT and the kernel spreads datagrams and connections over them. With port 0 every
 * listener gets the same free port, so one number reaches them all. They stop gracefully
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
     * @param eventLoops how many lanes serve queries, each on an event loop of its own: its own
     *     listeners, pipeline and upstream connections
     */
    public record Settings(String host, int port, TcpListener.Settings tcp, Duration drainDelay, int eventLoops) {}

    /** Where one lane's queries go: its event loop and its pipeline. */
    public record Lane(EventLoop loop, QueryPipeline pipeline) {}

    private static final Logger LOG = Logger.getLogger(ProxyServer.class);
    private static final int BIND_ATTEMPTS = 5;

    /** How often a drain looks at the count of queries in flight. */
    private static final long IN_FLIGHT_POLL_MILLIS = 10;

    /** One lane's listeners and their sockets. */
    private static final class Listeners {
        final EventLoop loop;
        final UdpListener udp;
        final TcpListener tcp;
        volatile Channel udpChannel;
        volatile Channel tcpChannel;

        Listeners(EventLoop loop, UdpListener udp, TcpListener tcp) {
            this.loop = loop;
            this.udp = udp;
            this.tcp = tcp;
        }
    }

    private final Settings settings;
    private final ServerMetrics metrics;
    private final List<Listeners> lanes = new ArrayList<>();
    /** A stop has begun: not ready, and a listener closing is no failure. */
    private volatile boolean stopping;

    /** The listeners of every lane; the lanes' pipelines share {@code metrics} (the count in flight too). */
    public ProxyServer(Settings settings, List<Lane> lanes, ServerMetrics metrics) {
        if (lanes.isEmpty()) {
            throw new IllegalArgumentException("at least one lane");
        }
        this.settings = settings;
        this.metrics = metrics;
        ConnectionsPerClient perClient = new ConnectionsPerClient();
        for (Lane lane : lanes) {
            this.lanes.add(new Listeners(lane.loop(), new UdpListener(lane.pipeline()),
                    new TcpListener(lane.pipeline(), metrics, settings.tcp(), perClient)));
        }
    }

    /** Client TCP connections accepted from now on get {@code next} (a reload); open ones keep theirs. */
    public void reconfigure(TcpListener.Settings next) {
        lanes.forEach(lane -> lane.tcp.reconfigure(next));
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
        boolean shared = lanes.size() > 1;
        for (int i = 0; i < attempts; i++) {
            List<Channel> bound = new ArrayList<>();
            try {
                // SO_REUSEPORT lets a socket join a port that another of the same user holds with it
                // (unbound sets it by default), and a port 0 bind may even pick such a port: a probe
                // without it finds a port that is really free, or fails as a single lane would.
                int port = shared ? freePort(address, settings.port()) : settings.port();
                for (Listeners lane : lanes) {
                    Channel udp = bind(lane.udp.bind(lane.loop, new InetSocketAddress(address, port), shared));
                    bound.add(udp);
                    port = ((InetSocketAddress) udp.localAddress()).getPort(); // port 0 on one lane: the one it got
                    bound.add(bind(lane.tcp.bind(lane.loop, new InetSocketAddress(address, port), shared)));
                }
                for (int l = 0; l < lanes.size(); l++) {
                    lanes.get(l).udpChannel = bound.get(2 * l);
                    lanes.get(l).tcpChannel = bound.get(2 * l + 1);
                }
                LOG.infof("Listening for DNS on %s port %d (UDP and TCP, %s, %d event loop%s)", address.getHostAddress(),
                        port, ChannelTypes.isEpoll(lanes.get(0).loop) ? "epoll" : "NIO", lanes.size(),
                        lanes.size() == 1 ? "" : "s");
                return;
            } catch (IOException e) {
                bound.forEach(channel -> channel.close().syncUninterruptibly());
                last = e; // the free UDP port may be taken for TCP: try another
            }
        }
        throw last;
    }

    /**
     * {@code port} (or, for 0, a free one) after checking that no socket holds it for UDP or TCP,
     * by binding both there without SO_REUSEPORT for a moment.
     */
    private static int freePort(InetAddress address, int port) throws IOException {
        ProtocolFamily family = address instanceof Inet4Address ? StandardProtocolFamily.INET : StandardProtocolFamily.INET6;
        DatagramChannel probe;
        try {
            probe = DatagramChannel.open(family);
        } catch (UnsupportedOperationException noIpv6) {
            throw new IOException("address family not supported", noIpv6); // start() then tries IPv4
        }
        try (DatagramChannel udp = probe) {
            udp.bind(new InetSocketAddress(address, port));
            int found = ((InetSocketAddress) udp.getLocalAddress()).getPort();
            try (ServerSocketChannel tcp = ServerSocketChannel.open()) {
                tcp.bind(new InetSocketAddress(address, found));
            }
            return found;
        }
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
        return ((InetSocketAddress) lanes.get(0).udpChannel.localAddress()).getPort();
    }

    /** Both listeners are bound and open, and no stop (not even a drain's serving part) has begun. */
    public boolean isServing() {
        if (stopping) {
            return false;
        }
        for (Listeners lane : lanes) {
            Channel u = lane.udpChannel;
            Channel t = lane.tcpChannel;
            if (u == null || t == null || !u.isOpen() || !t.isOpen()) {
                return false;
            }
        }
        return true;
    }

    /** Whether a listener that was bound has closed without being asked to (a broken process). */
    public boolean hasFailed() {
        if (stopping) {
            return false;
        }
        for (Listeners lane : lanes) {
            Channel u = lane.udpChannel;
            Channel t = lane.tcpChannel;
            if ((u != null && !u.isOpen()) || (t != null && !t.isOpen())) {
                return true;
            }
        }
        return false;
    }

    /** Whether a stop has begun: readiness is down from its first moment. */
    public boolean isStopping() {
        return stopping;
    }

    /** Closes both listeners at once; queries in flight get no answer over UDP. */
    public void stop() {
        stopping = true;
        for (Listeners lane : lanes) {
            if (lane.udpChannel != null) {
                lane.udpChannel.close().syncUninterruptibly();
            }
            if (lane.tcpChannel != null) {
                lane.tcpChannel.close().syncUninterruptibly();
            }
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
     * Every lane drains at once. Blocks the calling thread, which must not be an event loop of the
     * lanes: the waiting happens here, and every step on a lane's listeners is done on its loop.
     *
     * @param bound how long accepted queries may take to be answered: their deadline, and a little
     * @return the queries that were still unanswered when the listeners closed
     */
    public int drain(Duration bound) {
        if (lanes.stream().anyMatch(lane -> lane.loop.inEventLoop())) {
            throw new IllegalStateException("drain() waits: call it off the event loops");
        }
        stopping = true;
        Duration delay = settings.drainDelay();
        LOG.infof("Draining: not ready, still serving for %d ms", delay.toMillis());
        pause(delay.toMillis());
        onEveryLoop(ProxyServer::stopAccepting);
        int accepted = metrics.inFlight(); // every lane's: the lanes share the count
        LOG.infof("Stopped accepting queries; %d in flight", accepted);
        long giveUpAt = System.nanoTime() + bound.toNanos();
        // Nothing is read any more, so the count only falls as answers come back; the client
        // connections end a moment after their last answer (TcpListener: FIN, then the client's).
        while ((metrics.inFlight() > 0 || metrics.openConnections() > 0) && System.nanoTime() - giveUpAt < 0) {
            if (!pause(IN_FLIGHT_POLL_MILLIS)) {
                break;
            }
        }
        int unanswered = metrics.inFlight();
        onEveryLoop(ProxyServer::closeListeners);
        if (unanswered == 0) {
            LOG.info("Drained: every accepted query was answered; listeners closed");
        } else {
            LOG.warnf("Gave up with %d queries unanswered after the deadline (%d ms); listeners closed",
                    unanswered, bound.toMillis());
        }
        return unanswered;
    }

    /** On the lane's loop: nothing new is read. Queries already read go on. */
    private static void stopAccepting(Listeners lane) {
        Channel u = lane.udpChannel;
        if (u != null) {
            // Unread, not closed: the answers to the queries it took still leave through it.
            u.config().setAutoRead(false);
        }
        Channel t = lane.tcpChannel;
        if (t != null) {
            t.close(); // new connections are refused from here on
        }
        lane.tcp.retireAll();
    }

    /** On the lane's loop: the UDP socket (its answers flushed first), the acceptor, any client connection left. */
    private static void closeListeners(Listeners lane) {
        Channel u = lane.udpChannel;
        if (u != null) {
            u.close();
        }
        Channel t = lane.tcpChannel;
        if (t != null) {
            t.close();
        }
        lane.tcp.closeAll();
    }

    /** Runs {@code step} for every lane on its loop, and waits for them all. */
    private void onEveryLoop(Consumer<Listeners> step) {
        List<Future<?>> done = new ArrayList<>();
        for (Listeners lane : lanes) {
            done.add(lane.loop.submit(() -> step.accept(lane)));
        }
        done.forEach(Future::syncUninterruptibly);
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
