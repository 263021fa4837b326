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
import org.jboss.logging.Logger;

/**
 * The UDP and the TCP listener on one address and port, both feeding one {@link QueryPipeline}.
 * With port 0 both get the same free port, so one number reaches both.
 */
public final class ProxyServer {
    /**
     * Where and how to listen.
     *
     * @param host address to bind; {@code ::} means every IPv6 and IPv4 address
     * @param port port for both UDP and TCP; 0 picks a free one
     * @param tcp the client TCP limits
     */
    public record Settings(String host, int port, TcpListener.Settings tcp) {}

    private static final Logger LOG = Logger.getLogger(ProxyServer.class);
    private static final int BIND_ATTEMPTS = 5;

    private final Settings settings;
    private final UdpListener udp;
    private final TcpListener tcp;
    private final EventLoop loop;
    private volatile Channel udpChannel;
    private volatile Channel tcpChannel;
    private volatile boolean stopping;

    public ProxyServer(Settings settings, QueryPipeline pipeline, ServerMetrics metrics, EventLoop loop) {
        this.settings = settings;
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

    /** Both listeners are bound and open, and no shutdown has begun. */
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

    /** Stops accepting queries. */
    public void stop() {
        stopping = true;
        if (udpChannel != null) {
            udpChannel.close().syncUninterruptibly();
        }
        if (tcpChannel != null) {
            tcpChannel.close().syncUninterruptibly();
        }
    }
}
